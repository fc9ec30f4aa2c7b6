//! Typed messages between tasks: to a pid, to a named topic (every
//! subscriber gets a copy), or to every other live task. Each task has a
//! bounded mailbox in the mailbox region; a full mailbox blocks the sender
//! (SEND_BLOCK) or fails the send (SEND_NOWAIT) -- nothing is dropped
//! silently. Everything here runs with the scheduler lock held.

use crate::sched::ENQ_WAKEUP;
use crate::sched::{self, Sched, wake};
use crate::time::{now_ns, ns_to_ticks, rdtsc};
use abi::calltable::{ERR_FULL, ERR_INVALID, ERR_NO_SLOTS, ERR_NO_TASK, ERR_TIMEOUT};
use abi::ipc::{
    ExitNotice, MAILBOX_CAPACITY, MAILBOX_SIZE, MAX_TOPIC_NAME, MAX_TOPICS, MSG_EXIT_NOTICE,
    Message, SEND_NOWAIT, WAIT_FOREVER,
};
use abi::kstate::{TASK_FREE, TASK_RECEIVING, TASK_SENDING, TASK_ZOMBIE};
use abi::memmap::{MAILBOXES_ADDR, MAILBOXES_SIZE, MAX_TASKS};

#[repr(C)]
struct Mailbox {
    head: u32,
    len: u32,
    msgs: [Message; MAILBOX_CAPACITY],
}

const _: () = assert!(core::mem::size_of::<Mailbox>() as u64 == MAILBOX_SIZE);
const _: () = assert!(MAILBOX_SIZE * MAX_TASKS as u64 <= MAILBOXES_SIZE);

fn mailbox(slot: usize) -> &'static mut Mailbox {
    // SAFETY: slot < MAX_TASKS and the mailboxes fit the region (asserted);
    // the region is zeroed guest RAM (a valid empty Mailbox) and is only
    // touched with the scheduler lock held.
    unsafe { &mut *((MAILBOXES_ADDR as *mut Mailbox).add(slot)) }
}

/// Empty a slot's mailbox when a task is created in it.
pub fn reset(slot: usize) {
    let m = mailbox(slot);
    m.head = 0;
    m.len = 0;
}

struct Topic {
    name: [u8; MAX_TOPIC_NAME],
    len: usize,
    /// Subscribed slots, one bit each.
    subscribers: [u64; MAX_TASKS / 64],
}

static TOPICS: crate::global::Global<[Topic; MAX_TOPICS]> = crate::global::Global::new(
    [const {
        Topic {
            name: [0; MAX_TOPIC_NAME],
            len: 0,
            subscribers: [0; MAX_TASKS / 64],
        }
    }; MAX_TOPICS],
);

fn topics() -> &'static mut [Topic; MAX_TOPICS] {
    // SAFETY: only used with the scheduler lock held.
    unsafe { TOPICS.get() }
}

fn current(s: &Sched) -> Option<usize> {
    s.running[crate::percpu::cpu_id() as usize].map(|x| x as usize)
}

/// Put a message in `to`'s mailbox if there is room, waking it if it
/// waits in recv; `now` (TSC) stamps the wake-up.
fn try_deliver(s: &mut Sched, to: usize, msg: &Message, now: u64) -> bool {
    let m = mailbox(to);
    if m.len as usize >= MAILBOX_CAPACITY {
        return false;
    }
    m.msgs[(m.head as usize + m.len as usize) % MAILBOX_CAPACITY] = *msg;
    m.len += 1;
    if s.tasks[to].state == TASK_RECEIVING {
        s.tasks[to].wake_at = 0;
        s.tasks[to].timed_out = false;
        sched::wake_at(s, to, ENQ_WAKEUP, msg.from, now);
    }
    true
}

/// Deliver to one task, blocking while its mailbox is full if asked to;
/// `now` is the TSC when the send began (read again after a block).
fn deliver(s: &mut Sched, to: usize, msg: &Message, flags: u32, mut now: u64) -> i64 {
    loop {
        if !s.tasks[to].live() {
            return ERR_NO_TASK;
        }
        if try_deliver(s, to, msg, now) {
            return 0;
        }
        let Some(cur) = current(s) else {
            return ERR_FULL;
        };
        if flags & SEND_NOWAIT != 0 || cur == to {
            return ERR_FULL;
        }
        s.tasks[cur].send_target = to as u16 + 1;
        // Counted while blocked; a task that never comes back (killed)
        // leaves it high, which only costs receives their scan.
        s.senders_blocked += 1;
        sched::block(s, TASK_SENDING);
        s.senders_blocked = s.senders_blocked.saturating_sub(1);
        s.tasks[cur].send_target = 0;
        now = rdtsc();
    }
}

/// The message as sent: its sender and time, and that time as a TSC
/// reading, which the wake-up it causes reuses.
fn stamp(s: &Sched, msg: &Message) -> (Message, u64) {
    let now = rdtsc();
    let mut m = *msg;
    m.from = current(s).map(|c| s.tasks[c].pid).unwrap_or(0);
    m.sent_ns = crate::time::ns_at(now);
    (m, now)
}

fn find(s: &Sched, pid: u32) -> Option<usize> {
    s.tasks.iter().position(|t| t.live() && t.pid == pid)
}

pub fn send(to: u32, msg: &Message, flags: u32) -> i64 {
    sched::locked(|s| match find(s, to) {
        Some(slot) => {
            let (m, now) = stamp(s, msg);
            deliver(s, slot, &m, flags, now)
        }
        None => ERR_NO_TASK,
    })
}

pub fn recv(out: &mut Message, timeout_ns: u64) -> i64 {
    sched::locked(|s| {
        let Some(cur) = current(s) else {
            return ERR_INVALID;
        };
        loop {
            let m = mailbox(cur);
            if m.len > 0 {
                *out = m.msgs[m.head as usize];
                m.head = (m.head + 1) % MAILBOX_CAPACITY as u32;
                m.len -= 1;
                wake_one_sender(s, cur);
                return 0;
            }
            if timeout_ns == 0 || s.tasks[cur].timed_out {
                s.tasks[cur].timed_out = false;
                return ERR_TIMEOUT;
            }
            if timeout_ns != WAIT_FOREVER {
                let at = rdtsc() + ns_to_ticks(timeout_ns).max(1);
                s.tasks[cur].wake_at = at;
                sched::arm_timer(s, at);
            }
            sched::block(s, TASK_RECEIVING);
        }
    })
}

/// Room appeared in `slot`'s mailbox: let one blocked sender retry.
fn wake_one_sender(s: &mut Sched, slot: usize) {
    if s.senders_blocked == 0 {
        return;
    }
    let tag = slot as u16 + 1;
    if let Some(w) = s
        .tasks
        .iter()
        .position(|t| t.state == TASK_SENDING && t.send_target == tag)
    {
        wake(s, w, ENQ_WAKEUP, s.tasks[slot].pid);
    }
}

/// A task ended: senders blocked on its mailbox must not wait forever.
pub fn target_ended(s: &mut Sched, slot: usize) {
    let tag = slot as u16 + 1;
    for w in 0..s.tasks.len() {
        if s.tasks[w].state == TASK_SENDING && s.tasks[w].send_target == tag {
            wake(s, w, ENQ_WAKEUP, s.tasks[slot].pid);
        }
    }
    // Unsubscribe it everywhere.
    for t in topics().iter_mut() {
        t.subscribers[slot / 64] &= !(1 << (slot % 64));
    }
}

/// Tell monitor `to` that `pid` ended. A notice never waits; if the
/// monitor's mailbox is full the loss is logged, not silent.
pub fn exit_notice(s: &mut Sched, to: usize, pid: u32, reason: u32, code: i32) {
    if !s.tasks[to].live() {
        return;
    }
    let mut m = Message {
        kind: MSG_EXIT_NOTICE,
        from: pid,
        sent_ns: now_ns(),
        len: core::mem::size_of::<ExitNotice>() as u32,
        ..Message::default()
    };
    m.data = ExitNotice {
        pid,
        reason,
        code,
        reserved: 0,
    }
    .to_data();
    if !try_deliver(s, to, &m, rdtsc()) {
        crate::tlv::log(
            1,
            "ipc: an exit notice was lost: the monitor's mailbox was full",
        );
    }
}

pub fn monitor(pid: u32) -> i64 {
    sched::locked(|s| {
        let Some(cur) = current(s) else {
            return ERR_INVALID;
        };
        let Some(slot) = find(s, pid) else {
            return ERR_NO_TASK;
        };
        let t = &mut s.tasks[slot];
        match t.monitors.iter_mut().find(|m| **m == 0) {
            Some(m) => {
                *m = cur as u16 + 1;
                // Already running somewhere: from now on a crash there is
                // the task's, not the run's.
                if t.state == abi::kstate::TASK_RUNNING {
                    crate::percpu::cpu(t.cpu)
                        .crash_ok
                        .store(1, core::sync::atomic::Ordering::Relaxed);
                }
                0
            }
            None => ERR_NO_SLOTS,
        }
    })
}

fn topic_index(name: &[u8], create: bool) -> Option<usize> {
    if name.is_empty() || name.len() > MAX_TOPIC_NAME {
        return None;
    }
    let ts = topics();
    if let Some(i) = ts
        .iter()
        .position(|t| t.len == name.len() && &t.name[..t.len] == name)
    {
        return Some(i);
    }
    if !create {
        return None;
    }
    let i = ts.iter().position(|t| t.len == 0)?;
    ts[i].name[..name.len()].copy_from_slice(name);
    ts[i].len = name.len();
    Some(i)
}

pub fn subscribe(name: &[u8]) -> i64 {
    sched::locked(|s| {
        let Some(cur) = current(s) else {
            return ERR_INVALID;
        };
        match topic_index(name, true) {
            Some(i) => {
                topics()[i].subscribers[cur / 64] |= 1 << (cur % 64);
                0
            }
            None => ERR_INVALID,
        }
    })
}

/// Deliver to every slot in `targets` (a bit set); returns how many got it,
/// or the first error if none did.
fn deliver_all(
    s: &mut Sched,
    targets: [u64; MAX_TASKS / 64],
    msg: &Message,
    flags: u32,
    sent: u64,
) -> i64 {
    let mut delivered = 0;
    let mut first_err = 0;
    let mut now = Some(sent);
    for slot in 0..MAX_TASKS {
        if targets[slot / 64] & (1 << (slot % 64)) == 0 {
            continue;
        }
        // The send's time for the first; an earlier delivery may have
        // blocked, so the clock again for each after it.
        let at = now.take().unwrap_or_else(rdtsc);
        match deliver(s, slot, msg, flags, at) {
            0 => delivered += 1,
            e if first_err == 0 => first_err = e,
            _ => {}
        }
    }
    if delivered == 0 && first_err != 0 {
        first_err
    } else {
        delivered
    }
}

pub fn publish(name: &[u8], msg: &Message, flags: u32) -> i64 {
    sched::locked(|s| {
        let Some(i) = topic_index(name, false) else {
            return 0;
        };
        let mut targets = topics()[i].subscribers;
        if let Some(cur) = current(s) {
            targets[cur / 64] &= !(1 << (cur % 64));
        }
        let (m, now) = stamp(s, msg);
        deliver_all(s, targets, &m, flags, now)
    })
}

pub fn broadcast(msg: &Message, flags: u32) -> i64 {
    sched::locked(|s| {
        let me = current(s);
        let mut targets = [0u64; MAX_TASKS / 64];
        for (slot, t) in s.tasks.iter().enumerate() {
            if t.state != TASK_FREE && t.state != TASK_ZOMBIE && Some(slot) != me {
                targets[slot / 64] |= 1 << (slot % 64);
            }
        }
        let (m, now) = stamp(s, msg);
        deliver_all(s, targets, &m, flags, now)
    })
}
