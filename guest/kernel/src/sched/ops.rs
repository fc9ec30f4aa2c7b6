//! Task operations behind the call table: spawn, exit, join, yield,
//! sleep, kill, and the run's start and end.

use super::policy::{ENQ_NEW, ENQ_PREEMPTED, ENQ_WAKEUP, ENQ_YIELD, Policy, TaskInfo};
use super::{
    LOCK, Prev, Sched, account, fail_run, pick_next, publish_task, state, switch_to, wake,
    with_policy,
};
use crate::events::emit;
use crate::kstate;
use crate::percpu;
use crate::task::{self, MAX_MONITORS, Task};
use crate::time::{now_ns, ns_to_ticks, rdtsc, ticks_to_ns};
use crate::tlv;
use abi::calltable::{ERR_INVALID, ERR_NO_SLOTS, ERR_NO_TASK, JoinInfo, TaskEntry};
use abi::ipc::{EXIT_KILLED, EXIT_NORMAL, MAX_WEIGHT, SpawnOptions};
use abi::kstate::{
    EV_EXIT, EV_SPAWN, PREV_BLOCKED, PREV_EXITED, PREV_PREEMPTED, PREV_YIELDED, RUN_FINISHED,
    TASK_FREE, TASK_JOINING, TASK_RUNNABLE, TASK_RUNNING, TASK_SLEEPING, TASK_ZOMBIE,
};
use guest_protocol::Complete;
use policies::{CpuSet, Slot};

/// How the running task leaves the CPU.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Leave {
    Yield,
    Preempt,
    /// Blocks in the given TASK_* state until something wakes it.
    Block(u32),
    Exit,
}

/// The running task on this CPU leaves it; returns (lock held) when the
/// task runs again -- never, for `Exit`.
pub fn reschedule(s: &mut Sched, how: Leave) {
    let cpu = percpu::cpu_id();
    let Some(cur) = s.running[cpu as usize].map(|x| x as usize) else {
        return;
    };
    // Killed while it was running (on this or another CPU): whatever it
    // was about to do, it ends here instead -- a task that blocks before
    // its next tick must not escape the kill.
    let how = if s.tasks[cur].kill_pending && how != Leave::Exit {
        end_task(s, cur, -1, EXIT_KILLED);
        Leave::Exit
    } else {
        how
    };
    let now = rdtsc();
    account(s, cur, now);
    let ran = super::ran_ns(s, cur);
    let runnable = matches!(how, Leave::Yield | Leave::Preempt);
    let info = s.infos[cur];
    with_policy(s, |p, c| p.stopping(c, &info, cpu, ran, runnable));
    let reason = match how {
        Leave::Yield => PREV_YIELDED,
        Leave::Preempt => PREV_PREEMPTED,
        Leave::Block(_) => PREV_BLOCKED,
        Leave::Exit => PREV_EXITED,
    };
    match how {
        Leave::Yield | Leave::Preempt => {
            let t = &mut s.tasks[cur];
            t.state = TASK_RUNNABLE;
            t.wait_since = now;
            let flags = if how == Leave::Yield {
                ENQ_YIELD
            } else {
                ENQ_PREEMPTED
            };
            with_policy(s, |p, c| p.enqueue(c, &info, flags));
            if let Some(policies::DsqId::Local(c)) = s.dsqs.queued_in(cur as Slot) {
                s.tasks[cur].cpu = c;
                s.infos[cur].cpu = c;
            }
            let c = s.tasks[cur].cpu as usize;
            s.queued_on[c] += 1;
        }
        Leave::Block(st) => s.tasks[cur].state = st,
        Leave::Exit => {
            with_policy(s, |p, c| p.exit_task(c, &info));
            s.tasks[cur].state = TASK_ZOMBIE;
        }
    }
    let next = pick_next(s, cpu, now);
    if next == Some(cur) {
        // Only itself to run: carry on without a switch.
        let t = &mut s.tasks[cur];
        t.state = TASK_RUNNING;
        t.wait_since = 0;
        t.slice_start = t.runtime_ticks;
        with_policy(s, |p, c| p.running(c, &info, cpu));
        percpu::this_cpu()
            .slice_end
            .store(now + s.slice_ticks, core::sync::atomic::Ordering::Relaxed);
        publish_task(s, cur);
        return;
    }
    switch_to(s, cpu, Prev::Task(cur, reason), next, now);
}

/// Where a new task's first switch lands (task.rs): release the lock the
/// switcher held.
pub extern "C" fn finish_switch() {
    LOCK.unlock();
}

/// Where `crash_trampoline` lands, on this CPU's crash stack: a monitored
/// task faulted in operation code. It ends with reason CRASHED (its
/// monitors get the notice) and the run goes on.
pub extern "C" fn task_crashed(vector: u64, rip: u64, error: u64) -> ! {
    LOCK.lock();
    // SAFETY: LOCK held; it passes to the next task at the switch.
    let s = unsafe { state() };
    let Some(cur) = current_slot(s) else {
        fail_run(b"a crash outside any task")
    };
    let mut text = heapless::String::<160>::new();
    let _ = core::fmt::write(
        &mut text,
        format_args!(
            "task {} crashed: {} at rip {rip:#x} (error code {error:#x}); its monitors are told",
            s.tasks[cur].pid,
            abi::x86::exception_name(vector)
        ),
    );
    tlv::log(1, &text);
    end_task(s, cur, -1, abi::ipc::EXIT_CRASHED);
    reschedule(s, Leave::Exit);
    fail_run(b"a crashed task was switched back in")
}

/// Where a task's entry function returns to.
pub extern "C" fn task_returned(code: i32) -> ! {
    exit_current(code, EXIT_NORMAL)
}

pub fn current_slot(s: &Sched) -> Option<usize> {
    s.running[percpu::cpu_id() as usize].map(|x| x as usize)
}

fn find(s: &Sched, pid: u32) -> Option<usize> {
    s.tasks
        .iter()
        .position(|t| t.state != TASK_FREE && t.pid == pid)
}

/// Real-time attributes make sense: none at all, or 0 < runtime <=
/// deadline <= period (a priority alone, without a period, is allowed:
/// a fixed-priority policy may order aperiodic tasks by it).
fn rt_valid(rt: &abi::ipc::RtAttrs) -> bool {
    if rt.period_ns == 0 {
        rt.runtime_ns == 0 && rt.deadline_ns == 0
    } else {
        rt.runtime_ns > 0 && rt.runtime_ns <= rt.deadline_ns && rt.deadline_ns <= rt.period_ns
    }
}

pub fn spawn(entry: TaskEntry, arg: u64, opts: &SpawnOptions) -> i64 {
    LOCK.lock();
    // SAFETY: LOCK held until the unlock below.
    let r = spawn_locked(unsafe { state() }, entry, arg, opts);
    LOCK.unlock();
    r
}

fn spawn_locked(s: &mut Sched, entry: TaskEntry, arg: u64, opts: &SpawnOptions) -> i64 {
    let all = super::all_cpus(s).0;
    let affinity = if opts.affinity == 0 {
        all
    } else {
        opts.affinity & all
    };
    if affinity == 0 || opts.weight > MAX_WEIGHT || !rt_valid(&opts.rt) {
        return ERR_INVALID;
    }
    let Some(slot) = s.tasks.iter().position(|t| t.state == TASK_FREE) else {
        return ERR_NO_SLOTS;
    };
    s.last_pid += 1;
    let pid = s.last_pid;
    let cpu = current_slot(s).map(|c| s.tasks[c].cpu).unwrap_or(0);
    let cpu = if affinity & (1 << cpu) != 0 {
        cpu
    } else {
        affinity.trailing_zeros()
    };
    crate::ipc::reset(slot);
    s.tasks[slot] = Task {
        pid,
        state: TASK_RUNNABLE,
        rsp: task::prepare_stack(slot, entry, arg),
        cpu,
        runtime_limit_ticks: ns_to_ticks(opts.runtime_limit_ns),
        ..Task::FREE
    };
    s.infos[slot] = TaskInfo {
        slot: slot as Slot,
        pid,
        weight: opts.weight.max(1),
        affinity: CpuSet(affinity),
        cpu,
        rt: opts.rt,
    };
    let info = s.infos[slot];
    with_policy(s, |p, c| p.init_task(c, &info));
    s.spawned += 1;
    emit(EV_SPAWN, pid, info.weight, 0);
    let waker = current_pid_locked(s);
    wake(s, slot, ENQ_NEW, waker);
    pid as i64
}

pub fn current_pid_locked(s: &Sched) -> u32 {
    current_slot(s).map(|c| s.tasks[c].pid).unwrap_or(0)
}

pub fn current_pid() -> u32 {
    super::locked(|s| current_pid_locked(s))
}

/// How long the calling task has waited runnable for a CPU in all, ns
/// (it is running now, so every wait is closed).
pub fn task_wait_ns() -> u64 {
    super::locked(|s| {
        current_slot(s).map_or(0, |slot| crate::time::ticks_to_ns(s.tasks[slot].wait_ticks))
    })
}

pub fn yield_now() {
    LOCK.lock();
    // SAFETY: LOCK held; reschedule returns with it held.
    reschedule(unsafe { state() }, Leave::Yield);
    LOCK.unlock();
}

/// Block the running task in `st` until something wakes it. Lock held.
pub fn block(s: &mut Sched, st: u32) {
    reschedule(s, Leave::Block(st));
}

pub fn sleep_ns(ns: u64) {
    LOCK.lock();
    // SAFETY: LOCK held; block returns with it held.
    let s = unsafe { state() };
    if let Some(cur) = current_slot(s) {
        let at = rdtsc() + ns_to_ticks(ns).max(1);
        s.tasks[cur].wake_at = at;
        super::tick::arm_timer(s, at);
        block(s, TASK_SLEEPING);
    }
    LOCK.unlock();
}

/// End the running task. Never returns.
pub fn exit_current(code: i32, reason: u32) -> ! {
    LOCK.lock();
    // SAFETY: LOCK held; it passes to the next task at the switch.
    let s = unsafe { state() };
    if let Some(cur) = current_slot(s) {
        end_task(s, cur, code, reason);
        reschedule(s, Leave::Exit);
    }
    fail_run(b"exit called outside a task")
}

/// Bookkeeping for a task that ends (running or not): notices, joiner,
/// blocked senders, and the run's end if it was the operation's main task.
pub fn end_task(s: &mut Sched, slot: usize, code: i32, reason: u32) {
    let now = rdtsc();
    if s.tasks[slot].state == TASK_RUNNING {
        account(s, slot, now);
    }
    let t = &mut s.tasks[slot];
    t.exit_code = code;
    t.exit_reason = reason;
    let pid = t.pid;
    let (joiner, monitors) = (t.joiner, t.monitors);
    t.joiner = 0;
    t.monitors = [0; MAX_MONITORS];
    emit(EV_EXIT, pid, code as u32, reason);
    if pid == s.main_pid {
        finish_run(s, code);
    }
    for m in monitors.into_iter().filter(|&m| m != 0) {
        crate::ipc::exit_notice(s, m as usize - 1, pid, reason, code);
    }
    if joiner != 0 {
        let j = joiner as usize - 1;
        if s.tasks[j].state == TASK_JOINING {
            wake(s, j, ENQ_WAKEUP, pid);
        }
    }
    crate::ipc::target_ended(s, slot);
}

/// Wait for `pid` to end and collect it.
pub fn join(pid: u32, info: &mut JoinInfo) -> i64 {
    LOCK.lock();
    // SAFETY: LOCK held until the unlock below (block keeps it held).
    let s = unsafe { state() };
    let r = (|| {
        let cur = current_slot(s).ok_or(ERR_INVALID)?;
        let slot = find(s, pid).ok_or(ERR_NO_TASK)?;
        if slot == cur || (s.tasks[slot].state != TASK_ZOMBIE && s.tasks[slot].joiner != 0) {
            return Err(ERR_INVALID);
        }
        if s.tasks[slot].state != TASK_ZOMBIE {
            s.tasks[slot].joiner = cur as u16 + 1;
            block(s, TASK_JOINING);
        }
        let t = &s.tasks[slot];
        *info = JoinInfo {
            exit_code: t.exit_code,
            cpu: t.cpu,
            runtime_ns: ticks_to_ns(t.runtime_ticks),
            switches: t.switches,
        };
        s.tasks[slot] = Task::FREE;
        publish_task(s, slot);
        Ok(0)
    })();
    LOCK.unlock();
    r.unwrap_or_else(|e| e)
}

/// End task `pid` with reason KILLED: now if it is not running, at its
/// next tick if it is running on another CPU.
pub fn kill(pid: u32) -> i64 {
    LOCK.lock();
    // SAFETY: LOCK held until unlock (or forever, if it kills itself).
    let s = unsafe { state() };
    let r = match find(s, pid) {
        None => ERR_NO_TASK,
        Some(slot) if !s.tasks[slot].live() => ERR_NO_TASK,
        Some(slot) if Some(slot) == current_slot(s) => {
            end_task(s, slot, -1, EXIT_KILLED);
            reschedule(s, Leave::Exit);
            unreachable!()
        }
        Some(slot) if s.tasks[slot].state == TASK_RUNNING => {
            s.tasks[slot].kill_pending = true;
            0
        }
        Some(slot) => {
            if s.tasks[slot].state == TASK_RUNNABLE {
                s.dsqs.remove(slot as Slot);
                let c = s.tasks[slot].cpu as usize;
                s.queued_on[c] = s.queued_on[c].saturating_sub(1);
            }
            let info = s.infos[slot];
            with_policy(s, |p, c| p.exit_task(c, &info));
            s.tasks[slot].state = TASK_ZOMBIE;
            s.tasks[slot].wait_since = 0;
            end_task(s, slot, -1, EXIT_KILLED);
            publish_task(s, slot);
            0
        }
    };
    LOCK.unlock();
    r
}

/// Boot: start the operation's entry as the first task.
pub fn start_main(entry: TaskEntry, arg: u64) -> Result<(), &'static str> {
    LOCK.lock();
    // SAFETY: LOCK held until unlock.
    let s = unsafe { state() };
    s.start_ns = now_ns();
    let pid = spawn_locked(s, entry, arg, &SpawnOptions::new(1));
    if pid > 0 {
        s.main_pid = pid as u32;
    }
    LOCK.unlock();
    if pid > 0 {
        Ok(())
    } else {
        Err("core: could not start the operation's main task")
    }
}

/// The operation's main task ended: report and stop the run.
fn finish_run(s: &mut Sched, code: i32) -> ! {
    with_policy(s, |p, c| p.exit(c, i64::from(code)));
    let c = Complete {
        exit_code: code,
        elapsed_ns: now_ns().saturating_sub(s.start_ns),
        switches: s.switches,
    };
    tlv::send_part(guest_protocol::FIELD_COMPLETE, &c);
    kstate::set_ended(RUN_FINISHED, code as i64);
    crate::entry::exit_to_host(abi::boot::EXIT_DONE)
}

/// Initialise the scheduler (CPU 0, before other CPUs run).
pub fn init(info: &abi::boot::BootInfo) -> Result<(), &'static str> {
    // SAFETY: boot, single CPU: nothing else touches the state yet.
    let s = unsafe { state() };
    s.nr_cpus = info.cpu_count;
    s.slice_ns = info.slice_ns;
    s.slice_ticks = ns_to_ticks(info.slice_ns).max(1);
    super::HALT_IDLE.store(
        info.idle == abi::boot::IDLE_HALT,
        core::sync::atomic::Ordering::Relaxed,
    );
    super::with_policy(s, |_, c| super::image::load(info, c))
}

/// Runtime limit check for the running task (tick path).
pub fn over_limit(t: &Task) -> bool {
    t.runtime_limit_ticks != 0 && t.runtime_ticks >= t.runtime_limit_ticks
}
