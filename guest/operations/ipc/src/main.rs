//! `ipc`: exercises every IPC path of the core from inside the guest and
//! reports one check per property -- a message to a pid comes back with
//! its correlation id, a topic reaches each subscriber once, a broadcast
//! reaches every other task, monitors get exit notices with the right
//! reason, a full mailbox fails or blocks the sender, sleeps and receive
//! timeouts last as long as asked -- plus the round-trip times of a
//! ping-pong between two tasks pinned to different CPUs.
#![no_std]
#![no_main]

use abi::calltable::{ERR_FULL, ERR_TIMEOUT};
use abi::config::{IPC_CHECK_NAME_MAX, IPC_MAGIC, IpcConfig, OperationConfig};
use abi::ipc::{
    EXIT_CRASHED, EXIT_KILLED, EXIT_NORMAL, EXIT_TIMED_OUT, ExitNotice, MAILBOX_CAPACITY,
    MSG_EXIT_NOTICE, MSG_USER, Message, SEND_BLOCK, SEND_NOWAIT, SpawnOptions, WAIT_FOREVER,
};
use core::fmt::Write;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use oplib::proto::{GuestMessage, IpcCheck, IpcResult, Msg};
use oplib::{Api, api, message};

oplib::operation!(config_magic: IPC_MAGIC, main: main);

const MSG_PING: u32 = MSG_USER + 1;
const MSG_PONG: u32 = MSG_USER + 2;
const MSG_READY: u32 = MSG_USER + 3;
const MSG_NEWS: u32 = MSG_USER + 4;
const MSG_GOT: u32 = MSG_USER + 5;
const MSG_STOP: u32 = MSG_USER + 6;
const MS: u64 = 1_000_000;
const MAX_ROUNDS: usize = 4096;

/// The main task's pid, for helpers that report back to it.
static MAIN: AtomicU32 = AtomicU32::new(0);
static ROUNDS: AtomicU32 = AtomicU32::new(0);
static PEER: AtomicU32 = AtomicU32::new(0);
static SLEPT_NS: AtomicU64 = AtomicU64::new(0);
static WOKE_ON: AtomicU32 = AtomicU32::new(u32::MAX);
static mut RTT: [u64; MAX_ROUNDS] = [0; MAX_ROUNDS];

struct Report {
    result: IpcResult,
}

impl Report {
    fn check(&mut self, name: &str, passed: bool, detail: core::fmt::Arguments) {
        let mut c = IpcCheck::default();
        let _ = c.name.push_str(&name[..name.len().min(IPC_CHECK_NAME_MAX)]);
        c.passed = passed;
        let _ = c.detail.write_fmt(detail);
        let _ = self.result.checks.push(c);
    }
}

fn main(api: &Api) -> i32 {
    let Some(cfg) = IpcConfig::from_bytes(api.config_bytes()) else {
        api.fail("ipc: the config is not an IpcConfig (magic IPCX): run make");
    };
    MAIN.store(api.current_pid(), Ordering::Relaxed);
    let cpus = api.cpu_count();
    let mut r = Report {
        result: IpcResult {
            cpus,
            ..IpcResult::default()
        },
    };
    send_to_pid(api, &mut r, cpus);
    pingpong(
        api,
        &mut r,
        cpus,
        (cfg.rounds as usize).clamp(1, MAX_ROUNDS),
    );
    topic(api, &mut r);
    broadcast(api, &mut r);
    monitors(api, &mut r);
    full_mailbox(api, &mut r);
    sleep_and_timeout(api, &mut r, cpus);
    if api
        .report(&GuestMessage {
            msg: Some(Msg::IpcResult(r.result)),
        })
        .is_err()
    {
        api.fail("ipc: could not send the result");
    }
    0
}

/// The other CPU for cross-CPU checks (CPU 0 when there is only one).
fn far(cpus: u32) -> u64 {
    if cpus > 1 { 1 << 1 } else { 1 }
}

fn spawn(api: &Api, entry: extern "C" fn(u64) -> i32, arg: u64, affinity: u64) -> u32 {
    let opts = SpawnOptions {
        affinity,
        ..SpawnOptions::new(1)
    };
    api.spawn_ex(entry, arg, &opts)
        .unwrap_or_else(|_| api.fail("ipc: spawn failed"))
}

fn recv_kind(api: &Api, kind: u32, timeout: u64) -> Option<Message> {
    match api.recv(timeout) {
        Ok(m) if m.kind == kind => Some(m),
        _ => None,
    }
}

extern "C" fn echo(_: u64) -> i32 {
    let api = api();
    loop {
        let Ok(m) = api.recv(WAIT_FOREVER) else {
            return 1;
        };
        if m.kind == MSG_STOP {
            return 0;
        }
        let reply = message(MSG_PONG, m.corr, &m.data[..m.len as usize]);
        let _ = api.send(m.from, &reply, SEND_BLOCK);
    }
}

fn send_to_pid(api: &Api, r: &mut Report, cpus: u32) {
    let e = spawn(api, echo, 0, far(cpus));
    let sent = api.send(e, &message(MSG_PING, 42, b"hello"), SEND_BLOCK);
    let got = recv_kind(api, MSG_PONG, 1000 * MS);
    let ok = sent.is_ok()
        && got
            .is_some_and(|m| m.corr == 42 && m.from == e && &m.data[..m.len as usize] == b"hello");
    r.check(
        "send_to_pid",
        ok,
        format_args!("echo pid {e}: reply {got:?}"),
    );
    let _ = api.send(e, &message(MSG_STOP, 0, b""), SEND_BLOCK);
    let _ = api.join(e);
}

extern "C" fn ping(rounds: u64) -> i32 {
    let api = api();
    let peer = PEER.load(Ordering::Relaxed);
    for i in 0..rounds as usize {
        let t = api.now_ns();
        if api
            .send(peer, &message(MSG_PING, i as u64, b""), SEND_BLOCK)
            .is_err()
        {
            return 1;
        }
        match api.recv(1000 * MS) {
            Ok(m) if m.kind == MSG_PONG && m.corr == i as u64 => {}
            _ => return 2,
        }
        // SAFETY: only this task writes RTT, and main reads it after join.
        unsafe { (*core::ptr::addr_of_mut!(RTT))[i] = api.now_ns() - t };
        ROUNDS.store(i as u32 + 1, Ordering::Relaxed);
    }
    let _ = api.send(peer, &message(MSG_STOP, 0, b""), SEND_BLOCK);
    0
}

fn pingpong(api: &Api, r: &mut Report, cpus: u32, rounds: usize) {
    let pong = spawn(api, echo, 0, far(cpus));
    PEER.store(pong, Ordering::Relaxed);
    let p = spawn(api, ping, rounds as u64, 1);
    let ping_code = api.join(p).map(|j| j.exit_code);
    let pong_code = api.join(pong).map(|j| j.exit_code);
    let done = ROUNDS.load(Ordering::Relaxed) as usize;
    // SAFETY: the ping task has ended; nothing writes RTT any more.
    let rtt = unsafe { &mut (&mut *core::ptr::addr_of_mut!(RTT))[..done] };
    rtt.sort_unstable();
    if done > 0 {
        r.result.rounds = done as u32;
        r.result.rtt_p50_ns = rtt[(done - 1) / 2];
        r.result.rtt_p99_ns = rtt[((done * 99).div_ceil(100)).max(1) - 1];
        r.result.rtt_max_ns = rtt[done - 1];
    }
    r.check(
        "pingpong_cross_cpu",
        done == rounds && ping_code == Ok(0) && pong_code == Ok(0),
        format_args!(
            "{done}/{rounds} round trips between CPU 0 and CPU {}",
            if cpus > 1 { 1 } else { 0 }
        ),
    );
}

extern "C" fn subscriber(_: u64) -> i32 {
    let api = api();
    let main = MAIN.load(Ordering::Relaxed);
    if api.subscribe("news").is_err() {
        return 1;
    }
    let _ = api.send(main, &message(MSG_READY, 0, b""), SEND_BLOCK);
    match api.recv(1000 * MS) {
        Ok(m) => {
            let _ = api.send(main, &message(MSG_GOT, m.corr, &[m.kind as u8]), SEND_BLOCK);
            0
        }
        Err(_) => 2,
    }
}

fn topic(api: &Api, r: &mut Report) {
    let subs: [u32; 3] = core::array::from_fn(|_| spawn(api, subscriber, 0, 0));
    let ready = (0..3)
        .filter(|_| recv_kind(api, MSG_READY, 1000 * MS).is_some())
        .count();
    let n = api.publish("news", &message(MSG_NEWS, 7, b"x"), SEND_BLOCK);
    let got = (0..3)
        .filter(|_| {
            recv_kind(api, MSG_GOT, 1000 * MS)
                .is_some_and(|m| m.corr == 7 && m.data[0] == MSG_NEWS as u8)
        })
        .count();
    let nobody = api.publish("no-such-topic", &message(MSG_NEWS, 8, b""), SEND_NOWAIT);
    for s in subs {
        let _ = api.join(s);
    }
    r.check(
        "topic",
        ready == 3 && n == Ok(3) && got == 3 && nobody == Ok(0),
        format_args!("{ready} subscribed, publish reached {n:?}, {got} replied; unknown topic reached {nobody:?}"),
    );
}

extern "C" fn listener(_: u64) -> i32 {
    let api = api();
    let main = MAIN.load(Ordering::Relaxed);
    let _ = api.send(main, &message(MSG_READY, 0, b""), SEND_BLOCK);
    match api.recv(1000 * MS) {
        Ok(m) => {
            let _ = api.send(main, &message(MSG_GOT, m.corr, b""), SEND_BLOCK);
            0
        }
        Err(_) => 2,
    }
}

fn broadcast(api: &Api, r: &mut Report) {
    let ls: [u32; 3] = core::array::from_fn(|_| spawn(api, listener, 0, 0));
    let ready = (0..3)
        .filter(|_| recv_kind(api, MSG_READY, 1000 * MS).is_some())
        .count();
    let n = api.broadcast(&message(MSG_NEWS, 9, b""), SEND_BLOCK);
    let got = (0..3)
        .filter(|_| recv_kind(api, MSG_GOT, 1000 * MS).is_some_and(|m| m.corr == 9))
        .count();
    for l in ls {
        let _ = api.join(l);
    }
    r.check(
        "broadcast",
        ready == 3 && n == Ok(3) && got == 3,
        format_args!("broadcast reached {n:?} of 3 other tasks, {got} replied"),
    );
}

extern "C" fn exit_with(code: u64) -> i32 {
    api().sleep_ns(2 * MS);
    code as i32
}

extern "C" fn wait_forever(_: u64) -> i32 {
    let _ = api().recv(WAIT_FOREVER);
    0
}

extern "C" fn burn(_: u64) -> i32 {
    let api = api();
    loop {
        core::hint::black_box(api.now_ns());
    }
}

/// Waits until told, then executes an invalid instruction.
extern "C" fn crash_when_told(_: u64) -> i32 {
    let _ = api().recv(WAIT_FOREVER);
    // SAFETY: a deliberate #UD in operation code: the task is monitored,
    // so the core ends just this task with reason CRASHED.
    unsafe { core::arch::asm!("ud2") };
    0
}

fn notice(api: &Api) -> Option<ExitNotice> {
    let m = recv_kind(api, MSG_EXIT_NOTICE, 2000 * MS)?;
    Some(ExitNotice::from_data(&m.data))
}

fn monitors(api: &Api, r: &mut Report) {
    let x = spawn(api, exit_with, 7, 0);
    let _ = api.monitor(x);
    let n = notice(api);
    let _ = api.join(x);
    r.check(
        "monitor_normal_exit",
        n.is_some_and(|n| n.pid == x && n.reason == EXIT_NORMAL && n.code == 7),
        format_args!("pid {x}: notice {n:?}"),
    );
    let y = spawn(api, wait_forever, 0, 0);
    let _ = api.monitor(y);
    let killed = api.kill(y);
    let n = notice(api);
    let _ = api.join(y);
    r.check(
        "monitor_killed",
        killed.is_ok() && n.is_some_and(|n| n.pid == y && n.reason == EXIT_KILLED),
        format_args!("pid {y}: kill {killed:?}, notice {n:?}"),
    );
    // Monitored before it is told to fault, so the fault is its own.
    let c = spawn(api, crash_when_told, 0, 0);
    let _ = api.monitor(c);
    let _ = api.send(c, &message(MSG_PING, 0, b""), SEND_BLOCK);
    let n = notice(api);
    let _ = api.join(c);
    r.check(
        "monitor_crashed",
        n.is_some_and(|n| n.pid == c && n.reason == EXIT_CRASHED),
        format_args!("pid {c} executed ud2 while monitored: notice {n:?}, and the run went on"),
    );
    let opts = SpawnOptions {
        runtime_limit_ns: 5 * MS,
        ..SpawnOptions::new(1)
    };
    let z = api
        .spawn_ex(burn, 0, &opts)
        .unwrap_or_else(|_| api.fail("ipc: spawn failed"));
    let _ = api.monitor(z);
    let n = notice(api);
    let _ = api.join(z);
    r.check(
        "monitor_timed_out",
        n.is_some_and(|n| n.pid == z && n.reason == EXIT_TIMED_OUT),
        format_args!("pid {z} with a 5 ms runtime limit: notice {n:?}"),
    );
}

extern "C" fn sink(_: u64) -> i32 {
    let api = api();
    api.sleep_ns(20 * MS);
    let mut n = 0u64;
    while api.recv(0).is_ok() {
        n += 1;
    }
    // One more may arrive from the sender that was blocked on the full box.
    if api.recv(200 * MS).is_ok() {
        n += 1;
    }
    let _ = api.send(
        MAIN.load(Ordering::Relaxed),
        &message(MSG_GOT, n, b""),
        SEND_BLOCK,
    );
    0
}

fn full_mailbox(api: &Api, r: &mut Report) {
    let s = spawn(api, sink, 0, 0);
    let accepted = (0..MAILBOX_CAPACITY)
        .filter(|&i| {
            api.send(s, &message(MSG_NEWS, i as u64, b""), SEND_NOWAIT)
                .is_ok()
        })
        .count();
    let overflow = api.send(s, &message(MSG_NEWS, 99, b""), SEND_NOWAIT);
    let t = api.now_ns();
    let blocked = api.send(s, &message(MSG_NEWS, 100, b""), SEND_BLOCK);
    let waited = api.now_ns() - t;
    let drained = recv_kind(api, MSG_GOT, 2000 * MS).map(|m| m.corr);
    let _ = api.join(s);
    r.check(
        "full_mailbox",
        accepted == MAILBOX_CAPACITY
            && overflow == Err(ERR_FULL)
            && blocked.is_ok()
            && waited >= 5 * MS
            && drained == Some(MAILBOX_CAPACITY as u64 + 1),
        format_args!(
            "{accepted} accepted, next no-wait send {overflow:?}, blocking send {blocked:?} after {} us, sink drained {drained:?}",
            waited / 1000
        ),
    );
}

extern "C" fn sleeper(ns: u64) -> i32 {
    let api = api();
    let t = api.now_ns();
    api.sleep_ns(ns);
    SLEPT_NS.store(api.now_ns() - t, Ordering::Relaxed);
    WOKE_ON.store(api.current_cpu(), Ordering::Relaxed);
    0
}

fn sleep_and_timeout(api: &Api, r: &mut Report, cpus: u32) {
    let want_cpu = if cpus > 1 { 1 } else { 0 };
    let s = spawn(api, sleeper, 5 * MS, far(cpus));
    let _ = api.join(s);
    let slept = SLEPT_NS.load(Ordering::Relaxed);
    let cpu = WOKE_ON.load(Ordering::Relaxed);
    r.check(
        "sleep_wake",
        (5 * MS..100 * MS).contains(&slept) && cpu == want_cpu,
        format_args!("asked 5 ms, slept {} us, woke on CPU {cpu}", slept / 1000),
    );
    let t = api.now_ns();
    let got = api.recv(3 * MS);
    let waited = api.now_ns() - t;
    r.check(
        "recv_timeout",
        got.err() == Some(ERR_TIMEOUT) && (3 * MS..100 * MS).contains(&waited),
        format_args!(
            "empty mailbox, 3 ms timeout: {:?} after {} us",
            got.err(),
            waited / 1000
        ),
    );
}
