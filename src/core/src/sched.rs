//! Round-robin scheduling on one CPU, cooperative: a task runs until it
//! yields, blocks, ends, or calls `preempt_point` after its TSC slice is
//! used up. Timer-driven preemption and pluggable policies come with SMP.

use crate::global::Global;
use crate::kstate;
use crate::task::{self, State, Task};
use crate::time::{now_ns, ns_to_ticks, rdtsc, ticks_to_ns};
use crate::tlv;
use guest_protocol::{Complete, GuestMessage, Msg};
use shared::boot::{BootInfo, EXIT_DONE, EXIT_PANIC};
use shared::calltable::{ERR_INVALID, ERR_NO_SLOTS, ERR_NO_TASK, JoinInfo, TaskEntry};
use shared::kstate::{RUN_FAILED, RUN_FINISHED};
use shared::memmap::{CALL_TABLE_ADDR, MAX_TASKS, OPERATION_LOAD_ADDR};

/// FIFO of runnable slots.
struct RunQueue {
    slots: [u16; MAX_TASKS],
    head: usize,
    len: usize,
}

impl RunQueue {
    fn push(&mut self, slot: usize) {
        // Each slot is queued at most once and there are MAX_TASKS slots.
        debug_assert!(self.len < MAX_TASKS);
        self.slots[(self.head + self.len) % MAX_TASKS] = slot as u16;
        self.len += 1;
    }

    fn pop(&mut self) -> Option<usize> {
        if self.len == 0 {
            return None;
        }
        let s = self.slots[self.head] as usize;
        self.head = (self.head + 1) % MAX_TASKS;
        self.len -= 1;
        Some(s)
    }
}

struct Sched {
    tasks: [Task; MAX_TASKS],
    runq: RunQueue,
    /// Slot of the running task; meaningful once `started`.
    current: usize,
    /// False until the first switch away from the boot context. (Every
    /// field starts at zero so SCHED lives in .bss, not in the image.)
    started: bool,
    /// Last pid handed out.
    last_pid: u32,
    main_pid: u32,
    slice_ticks: u64,
    /// TSC at which the running task's slice ends.
    slice_end: u64,
    /// Where the boot context's rsp goes on the first switch (never resumed).
    boot_rsp: u64,
    switches: u64,
    spawned: u64,
    start_ns: u64,
}

static SCHED: Global<Sched> = Global::new(Sched {
    tasks: [Task::FREE; MAX_TASKS],
    runq: RunQueue {
        slots: [0; MAX_TASKS],
        head: 0,
        len: 0,
    },
    current: 0,
    started: false,
    last_pid: 0,
    main_pid: 0,
    slice_ticks: 0,
    slice_end: 0,
    boot_rsp: 0,
    switches: 0,
    spawned: 0,
    start_ns: 0,
});

fn sched() -> &'static mut Sched {
    // SAFETY: one vCPU, no interrupts; callers keep the borrow short and
    // drop it before any context switch (see Global).
    unsafe { SCHED.get() }
}

/// Start the operation as the first task and run it. Never returns.
pub fn start(info: &BootInfo) -> ! {
    let s = sched();
    s.slice_ticks = ns_to_ticks(info.slice_ns).max(1);
    s.start_ns = now_ns();
    // SAFETY: the VMM loaded the operation's flat image at
    // OPERATION_LOAD_ADDR, whose first byte is its `extern "C"
    // fn(u64) -> i32` entry (operation.ld puts .text.entry first).
    let entry: TaskEntry = unsafe { core::mem::transmute(OPERATION_LOAD_ADDR as usize) };
    let pid = spawn(entry, CALL_TABLE_ADDR, 1);
    if pid <= 0 {
        fail_run(b"core: could not start the operation's main task");
    }
    sched().main_pid = pid as u32;
    kstate::set_running();
    switch_away();
    unreachable!("the boot context is never resumed");
}

/// Weights are accepted for the call-table contract; round-robin has no
/// use for them.
pub fn spawn(entry: TaskEntry, arg: u64, _weight: u32) -> i64 {
    let s = sched();
    let Some(slot) = s.tasks.iter().position(|t| t.state == State::Free) else {
        return ERR_NO_SLOTS;
    };
    s.last_pid += 1;
    let pid = s.last_pid;
    s.tasks[slot] = Task {
        pid,
        state: State::Runnable,
        rsp: task::prepare_stack(slot, entry, arg),
        ..Task::FREE
    };
    s.runq.push(slot);
    s.spawned += 1;
    kstate::set_counters(s.switches, s.spawned);
    pid as i64
}

pub fn current_pid() -> u32 {
    let s = sched();
    if s.started { s.tasks[s.current].pid } else { 0 }
}

/// Put the running task at the back of the queue and run the next one.
pub fn yield_now() {
    let s = sched();
    if s.runq.len == 0 {
        // Nothing else to run: keep going with a fresh slice.
        s.slice_end = rdtsc() + s.slice_ticks;
        return;
    }
    let cur = s.current;
    s.tasks[cur].state = State::Runnable;
    s.runq.push(cur);
    switch_away();
}

/// The cheap check tasks call in inner loops.
#[inline]
pub fn preempt_point() {
    if rdtsc() >= sched().slice_end {
        yield_now();
    }
}

/// End the running task (also where a task's entry function returns to).
pub extern "C" fn exit_current(code: i32) -> ! {
    let s = sched();
    let cur = s.current;
    account(s, cur, rdtsc());
    let t = &mut s.tasks[cur];
    t.state = State::Zombie;
    t.exit_code = code;
    if t.pid == s.main_pid {
        finish_run(code);
    }
    if t.waiter != 0 {
        let w = t.waiter as usize - 1;
        t.waiter = 0;
        s.tasks[w].state = State::Runnable;
        s.runq.push(w);
    }
    switch_away();
    unreachable!("a zombie is never switched back in");
}

/// Wait for `pid` to end and collect it.
pub fn join(pid: u32, info: &mut JoinInfo) -> i64 {
    let s = sched();
    let Some(slot) = s
        .tasks
        .iter()
        .position(|t| t.state != State::Free && t.pid == pid)
    else {
        return ERR_NO_TASK;
    };
    if slot == s.current || (s.tasks[slot].state != State::Zombie && s.tasks[slot].waiter != 0) {
        return ERR_INVALID;
    }
    if s.tasks[slot].state != State::Zombie {
        s.tasks[slot].waiter = s.current as u16 + 1;
        s.tasks[s.current].state = State::Blocked;
        switch_away();
    }
    let s = sched();
    let t = &mut s.tasks[slot];
    *info = JoinInfo {
        exit_code: t.exit_code,
        cpu: 0,
        runtime_ns: ticks_to_ns(t.runtime_ticks),
        switches: t.switches,
    };
    *t = Task::FREE;
    0
}

/// Charge the running task for the time since it was switched in.
fn account(s: &mut Sched, slot: usize, now: u64) {
    let t = &mut s.tasks[slot];
    t.runtime_ticks += now.saturating_sub(t.last_in);
    t.last_in = now;
}

/// Leave the current context (already queued, blocked or ended) for the
/// next runnable task. Returns when the current task is switched back in.
fn switch_away() {
    let s = sched();
    let Some(next) = s.runq.pop() else {
        fail_run(b"deadlock: every task is blocked and none can run");
    };
    let prev = s.current;
    let first = !s.started;
    let now = rdtsc();
    let save: *mut u64 = if first {
        s.started = true;
        &mut s.boot_rsp
    } else {
        if !task::canary_intact(prev) {
            fail_run(b"a task overflowed its 64 KiB stack");
        }
        if s.tasks[prev].state == State::Running {
            s.tasks[prev].state = State::Runnable;
        }
        account(s, prev, now);
        &mut s.tasks[prev].rsp
    };
    let n = &mut s.tasks[next];
    n.state = State::Running;
    n.last_in = now;
    n.switches += 1;
    let next_rsp = n.rsp;
    s.current = next;
    s.slice_end = now + s.slice_ticks;
    s.switches += 1;
    kstate::set_counters(s.switches, s.spawned);
    if !first && prev == next {
        return;
    }
    // SAFETY: `save` points into SCHED (static), next_rsp was produced by
    // prepare_stack or by an earlier switch_context of that task, and no
    // borrow of SCHED is used after this call until it returns.
    unsafe { task::switch_context(save, next_rsp) };
}

/// The operation's main task ended: report and stop the run.
fn finish_run(code: i32) -> ! {
    let s = sched();
    let c = Complete {
        exit_code: code,
        elapsed_ns: now_ns().saturating_sub(s.start_ns),
        switches: s.switches,
    };
    tlv::send_message(&GuestMessage {
        msg: Some(Msg::Complete(c)),
    });
    kstate::set_ended(RUN_FINISHED, code as i64);
    crate::entry::exit_to_host(EXIT_DONE)
}

/// End the run as failed with a reason the host will show.
pub fn fail_run(why: &[u8]) -> ! {
    tlv::error(1, why);
    kstate::set_ended(RUN_FAILED, -1);
    crate::entry::exit_to_host(EXIT_PANIC)
}
