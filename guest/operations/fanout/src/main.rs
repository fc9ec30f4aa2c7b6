//! `fanout`: groups of senders and receivers, like hackbench. Every
//! sender sends `messages` messages to every receiver of its group with
//! SEND_BLOCK, so a full mailbox (16 messages) puts the sender to sleep
//! until its receiver drains it: many tasks waking each other in bursts,
//! which stresses wake-up placement and the run queues' locking. Reports
//! how long it took from the first send to the last receive and how many
//! messages arrived; every receiver also checks that each sender's
//! messages arrive in the order they were sent.
#![no_std]
#![no_main]

use abi::calltable::ERR_TIMEOUT;
use abi::config::{FANOUT_MAGIC, FanoutConfig, MAX_WORKERS, OperationConfig};
use abi::ipc::{MSG_USER, SEND_BLOCK};
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use oplib::proto::{FanoutResult, GuestMessage, Msg};
use oplib::{Api, api, message};

oplib::operation!(config_magic: FANOUT_MAGIC, main: main);

const MSG_DATA: u32 = MSG_USER + 1;
/// A receiver that waits this long for its next message gives up: a lost
/// message becomes a short count the host reports, not a hung run.
const RECV_TIMEOUT_NS: u64 = 2_000_000_000;

static RECEIVER: [AtomicU32; MAX_WORKERS] = [const { AtomicU32::new(0) }; MAX_WORKERS];
static CFG: [AtomicU32; 4] = [const { AtomicU32::new(0) }; 4];
static DELIVERED: AtomicU64 = AtomicU64::new(0);
static FIRST_SEND: AtomicU64 = AtomicU64::new(u64::MAX);
static LAST_RECV: AtomicU64 = AtomicU64::new(0);

/// groups, senders, receivers, messages (in CFG).
fn cfg() -> (usize, usize, usize, u64) {
    let g = |i: usize| CFG[i].load(Ordering::Relaxed);
    (g(0) as usize, g(1) as usize, g(2) as usize, g(3) as u64)
}

fn main(api: &Api) -> i32 {
    let Some(c) = FanoutConfig::from_bytes(api.config_bytes()) else {
        api.fail("fanout: the config is not a FanoutConfig (magic FANO, version 1): run make");
    };
    let (groups, senders, receivers) =
        (c.groups as usize, c.senders as usize, c.receivers as usize);
    let tasks = groups.saturating_mul(senders + receivers);
    if groups == 0 || senders == 0 || receivers == 0 || c.messages == 0 || tasks > MAX_WORKERS {
        api.fail("fanout: groups, senders, receivers or messages out of range");
    }
    for (i, v) in [c.groups, c.senders, c.receivers, c.messages]
        .into_iter()
        .enumerate()
    {
        CFG[i].store(v, Ordering::Relaxed);
    }
    let mut pids = [0u32; MAX_WORKERS];
    let mut n = 0;
    // Receivers first: senders need their pids.
    for g in 0..groups {
        for r in 0..receivers {
            let pid = spawn(api, receiver, g as u64);
            RECEIVER[g * receivers + r].store(pid, Ordering::Relaxed);
            pids[n] = pid;
            n += 1;
        }
    }
    for g in 0..groups {
        for s in 0..senders {
            pids[n] = spawn(api, sender, ((g as u64) << 32) | s as u64);
            n += 1;
        }
    }
    for &pid in pids.iter().take(n) {
        let _ = api.join(pid);
    }
    let first = FIRST_SEND.load(Ordering::Relaxed);
    let r = FanoutResult {
        groups: c.groups,
        senders: c.senders,
        receivers: c.receivers,
        messages: c.messages,
        elapsed_ns: LAST_RECV.load(Ordering::Relaxed).saturating_sub(first),
        delivered: DELIVERED.load(Ordering::Relaxed),
    };
    if api
        .report(&GuestMessage {
            msg: Some(Msg::FanoutResult(r)),
        })
        .is_err()
    {
        api.fail("fanout: could not send the result");
    }
    0
}

fn spawn(api: &Api, entry: extern "C" fn(u64) -> i32, arg: u64) -> u32 {
    api.spawn(entry, arg, 1)
        .unwrap_or_else(|_| api.fail("fanout: the core refused to spawn a task"))
}

/// `messages` rounds of one message to every receiver of the group; the
/// payload is the sender's index in its group, the correlation id the
/// message's number.
extern "C" fn sender(arg: u64) -> i32 {
    let api = api();
    let (_, _, receivers, messages) = cfg();
    let group = (arg >> 32) as usize;
    let index = (arg as u32).to_le_bytes();
    FIRST_SEND.fetch_min(api.now_ns(), Ordering::Relaxed);
    for m in 0..messages {
        for r in 0..receivers {
            let to = RECEIVER[group * receivers + r].load(Ordering::Relaxed);
            if api
                .send(to, &message(MSG_DATA, m, &index), SEND_BLOCK)
                .is_err()
            {
                return 1;
            }
        }
    }
    0
}

/// Receive `senders x messages` messages, checking each sender's arrive in
/// order. A message out of order is a broken mailbox: the run fails.
extern "C" fn receiver(_group: u64) -> i32 {
    let api = api();
    let (_, senders, _, messages) = cfg();
    let expected = senders as u64 * messages;
    let mut next = [0u64; MAX_WORKERS];
    let mut got = 0u64;
    let mut last = 0u64;
    let mut code = 0;
    while got < expected {
        let m = match api.recv(RECV_TIMEOUT_NS) {
            Ok(m) => m,
            Err(e) => {
                code = if e == ERR_TIMEOUT { 1 } else { 2 };
                break;
            }
        };
        let s = u32::from_le_bytes([m.data[0], m.data[1], m.data[2], m.data[3]]) as usize;
        if m.kind != MSG_DATA || s >= senders || m.corr != next[s] {
            api.fail("fanout: a receiver got a message out of order or of the wrong kind");
        }
        next[s] += 1;
        got += 1;
        last = api.now_ns();
    }
    LAST_RECV.fetch_max(last, Ordering::Relaxed);
    DELIVERED.fetch_add(got, Ordering::Relaxed);
    code
}
