//! The scheduler: task table, run-queue bookkeeping around a pluggable
//! policy image (`policy.rs` the interface, `image.rs` the adapter),
//! context switches, ticks and idle.
//!
//! Locking: one spinlock (`LOCK`) guards everything in `Sched`, the
//! policy and its dispatch queues, and every kernel-state record write.
//! Holding it disables preemption on the holding CPU. A context switch
//! happens with the lock held and the task switched to releases it, so
//! the lock is handed over across `switch_context`.

mod idle;
mod image;
mod ops;
mod policy;
mod tick;

pub use idle::idle_loop;
pub use ops::*;
pub use policy::ENQ_WAKEUP;
pub use tick::{arm_timer, deferred_resched, expire_timers, on_tick, preempt_point, timer_due};

use crate::events::emit_at;
use crate::global::Global;
use crate::kstate;
use crate::lock::SpinLock;
use crate::percpu;
use crate::task::{self, Task};
use crate::time::{rdtsc, ticks_to_ns};
use abi::kstate::{EV_MIGRATE, EV_SWITCH, EV_WAKEUP, TASK_RUNNABLE, TASK_RUNNING};
use abi::memmap::{MAX_CPUS, MAX_TASKS};
use policies::{Cpu, CpuSet, DsqId, Slot};
use policy::{Ctx, Policy, TaskInfo};

/// Whether idle CPUs halt (`--idle halt`, set once at boot): the idle
/// loop halts and a kick sends an IPI. A static rather than a `Sched`
/// field so an image policy's `kick_cpu` service reaches it too.
pub static HALT_IDLE: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

pub static LOCK: SpinLock = SpinLock::new();

pub struct Sched {
    pub tasks: [Task; MAX_TASKS],
    /// What the policy sees of each task, indexed by slot.
    pub infos: [TaskInfo; MAX_TASKS],
    /// Task running on each CPU (None = idle context).
    pub running: [Option<Slot>; MAX_CPUS],
    /// Runnable (not running) tasks assigned to each CPU.
    pub queued_on: [u32; MAX_CPUS],
    pub dsqs: policies::Dsqs,
    /// The policy image's adapter (all zeros until boot: SCHED stays in
    /// `.bss`).
    pub policy: image::ImagePolicy,
    pub nr_cpus: u32,
    pub last_pid: u32,
    pub main_pid: u32,
    pub slice_ns: u64,
    pub slice_ticks: u64,
    /// Earliest pending timer (sleep or receive timeout), TSC.
    pub next_timer: u64,
    pub switches: u64,
    pub spawned: u64,
    pub start_ns: u64,
    pub cpu_switches: [u64; MAX_CPUS],
    /// Blocks in `futex_wait` so far: orders a futex's waiters.
    pub futex_seq: u64,
    /// Tasks blocked in `send` on a full mailbox (TASK_SENDING): while
    /// none is, a receive need not look through the task table for one
    /// to wake (a scan of every slot, ~38 KiB, on each receive).
    pub senders_blocked: u32,
}

static SCHED: Global<Sched> = Global::new(Sched {
    tasks: [Task::FREE; MAX_TASKS],
    infos: [TaskInfo {
        slot: 0,
        pid: 0,
        weight: 0,
        affinity: CpuSet(0),
        cpu: 0,
        rt: abi::ipc::RtAttrs {
            period_ns: 0,
            runtime_ns: 0,
            deadline_ns: 0,
            priority: 0,
            reserved: 0,
        },
    }; MAX_TASKS],
    running: [None; MAX_CPUS],
    queued_on: [0; MAX_CPUS],
    dsqs: policies::Dsqs::new(),
    policy: image::ImagePolicy::new(),
    nr_cpus: 0,
    last_pid: 0,
    main_pid: 0,
    slice_ns: 0,
    slice_ticks: 0,
    next_timer: 0,
    switches: 0,
    spawned: 0,
    start_ns: 0,
    cpu_switches: [0; MAX_CPUS],
    futex_seq: 0,
    senders_blocked: 0,
});

/// The scheduler state.
///
/// # Safety
/// The caller holds LOCK (or is CPU 0 at boot, before other CPUs run), and
/// does not keep the reference across a point where the lock is released.
pub unsafe fn state() -> &'static mut Sched {
    // SAFETY: exclusivity comes from LOCK (the caller's obligation).
    unsafe { SCHED.get() }
}

/// Run `f` with the lock held.
pub fn locked<R>(f: impl FnOnce(&mut Sched) -> R) -> R {
    LOCK.lock();
    // SAFETY: LOCK is held until after f returns.
    let r = f(unsafe { state() });
    LOCK.unlock();
    r
}

/// CPUs the run has, as a set.
pub fn all_cpus(s: &Sched) -> CpuSet {
    CpuSet(if s.nr_cpus >= 64 {
        u64::MAX
    } else {
        (1u64 << s.nr_cpus) - 1
    })
}

fn idle_set(s: &Sched) -> CpuSet {
    let mut m = 0u64;
    for c in 0..s.nr_cpus {
        if percpu::cpu(c)
            .idle
            .load(core::sync::atomic::Ordering::Relaxed)
            != 0
        {
            m |= 1 << c;
        }
    }
    CpuSet(m)
}

/// The idle CPUs a policy sees: those running no task. Linux counts a
/// CPU idle while it runs its idle task, interrupts and all; `idle_set`
/// (halted right now) drops a CPU at every tick its idle loop wakes for,
/// which made a wholly idle core look busy to `select_cpu_dfl` whenever
/// its CPU was checking timers -- often the very CPU waking the tasks.
/// A CPU awake in its idle loop looks for work again before it halts, so
/// a task queued for it is not left behind.
fn policy_idle_set(s: &Sched) -> CpuSet {
    let mut m = 0u64;
    for (c, r) in s.running[..s.nr_cpus as usize].iter().enumerate() {
        if r.is_none() {
            m |= 1 << c;
        }
    }
    CpuSet(m)
}

/// Call into the policy with a context built from the scheduler state.
pub fn with_policy<R>(s: &mut Sched, f: impl FnOnce(&mut image::ImagePolicy, &mut Ctx) -> R) -> R {
    let idle = policy_idle_set(s);
    let nr = s.nr_cpus as usize;
    let Sched {
        policy,
        dsqs,
        infos,
        running,
        nr_cpus,
        ..
    } = s;
    let mut ctx = Ctx {
        nr_cpus: *nr_cpus,
        idle,
        dsqs,
        tasks: &infos[..],
        running: &running[..nr],
    };
    f(policy, &mut ctx)
}

/// Make `slot` runnable and queue it where the policy says.
pub fn wake(s: &mut Sched, slot: usize, flags: u32, waker: u32) {
    wake_at(s, slot, flags, waker, rdtsc())
}

/// [`wake`] at TSC `now`, which a caller that just read the clock (a
/// send's stamp) passes on: the event and the wait are stamped with it,
/// and a `rdtsc` is saved.
pub fn wake_at(s: &mut Sched, slot: usize, flags: u32, waker: u32, now: u64) {
    let prev = s.tasks[slot].cpu;
    let info = s.infos[slot];
    let mut cpu = with_policy(s, |p, c| p.select_cpu(c, &info, prev));
    if !info.affinity.contains(cpu) {
        cpu = info.affinity.first().unwrap_or(0);
    }
    let t = &mut s.tasks[slot];
    t.state = TASK_RUNNABLE;
    t.wait_since = now;
    if flags & ENQ_WAKEUP != 0 {
        t.wakeups += 1;
    }
    let pid = t.pid;
    set_cpu(s, slot, cpu, now);
    emit_at(now, EV_WAKEUP, pid, cpu, waker);
    let info = s.infos[slot];
    with_policy(s, |p, c| p.enqueue(c, &info, flags));
    // The policy may have queued it for another CPU than it selected.
    if let Some(DsqId::Local(c)) = s.dsqs.queued_in(slot as Slot) {
        set_cpu(s, slot, c, now);
    }
    let cpu = s.tasks[slot].cpu;
    s.queued_on[cpu as usize] += 1;
    publish_task(s, slot);
    publish_cpu_at(s, cpu, Some(now));
    match s.dsqs.queued_in(slot as Slot) {
        Some(DsqId::Local(c)) => kick(c),
        _ => {
            // Shared queue: wake an idle CPU that may run it, if any.
            let idle = idle_set(s).0 & s.infos[slot].affinity.0;
            if idle != 0 {
                kick(idle.trailing_zeros());
            }
        }
    }
}

/// The policy's `cpu_tick` on `cpu`, if it has one (lock held).
pub fn policy_cpu_tick(s: &mut Sched, cpu: Cpu) {
    if image::has_cpu_tick() {
        with_policy(s, |p, c| p.cpu_tick(c, cpu));
    }
}

/// Move a task's CPU assignment, counting a migration when it changes
/// (its event stamped `now`, the clock reading of the wake-up or
/// scheduling round that moves it, so the events of one round share a
/// stamp and keep their order).
fn set_cpu(s: &mut Sched, slot: usize, cpu: u32, now: u64) {
    let t = &mut s.tasks[slot];
    if t.cpu != cpu {
        if t.ever_ran {
            t.migrations += 1;
            emit_at(now, EV_MIGRATE, t.pid, t.cpu, cpu);
        }
        t.cpu = cpu;
    }
    s.infos[slot].cpu = cpu;
}

/// Make sure an idle CPU notices new work: flag it, and in halt mode
/// send it the wake-up IPI. Called with the lock held.
pub fn kick(cpu: u32) {
    // This CPU is not idle (it runs this): no flag, and no fence, which
    // is a locked instruction on every same-CPU wake-up.
    if cpu == percpu::cpu_id() {
        return;
    }
    let pc = percpu::cpu(cpu);
    core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
    if pc.idle.load(core::sync::atomic::Ordering::Relaxed) == 0 {
        return;
    }
    if pc
        .wake_pending
        .swap(1, core::sync::atomic::Ordering::SeqCst)
        == 0
        && HALT_IDLE.load(core::sync::atomic::Ordering::Relaxed)
    {
        crate::entry::send_wake_ipi(cpu);
        kstate::cpu_record(percpu::cpu_id(), |r| r.ipis_sent += 1);
    }
}

/// Next task for `cpu`, taken off its queue (None: go idle), in the
/// scheduling round whose clock reading is `now`.
pub fn pick_next(s: &mut Sched, cpu: u32, now: u64) -> Option<usize> {
    let mut next = s.dsqs.pop_first(DsqId::Local(cpu));
    if next.is_none() {
        with_policy(s, |p, c| p.dispatch(c, cpu));
        next = s.dsqs.pop_first(DsqId::Local(cpu));
    }
    if next.is_none() {
        let infos = &s.infos;
        next = s.dsqs.pop_first_where(DsqId::Global, |sl| {
            infos[sl as usize].affinity.contains(cpu)
        });
    }
    let slot = next? as usize;
    let old = s.tasks[slot].cpu;
    s.queued_on[old as usize] = s.queued_on[old as usize].saturating_sub(1);
    set_cpu(s, slot, cpu, now);
    if old != cpu {
        publish_cpu(s, old);
    }
    Some(slot)
}

/// Why the previous context leaves the CPU (EV_SWITCH's arg2).
#[derive(Clone, Copy)]
pub enum Prev {
    Idle,
    Task(usize, u32),
}

/// Switch this CPU from `prev` to `next` (a task, or the idle context) at
/// TSC `now`, the one clock reading the caller's scheduling round took
/// (Linux's `__schedule` reads the run queue's clock once too, for
/// charging the previous task and starting the next): `prev` was charged
/// up to it already, and a second `rdtsc` here cost a same-CPU ping-pong
/// 16-32 ns of its round trip of about 490 (p50 495 -> 463-479 ns in
/// alternated runs; adding the read back took it to 495). Events the
/// round emits before this one (a migration) carry the same stamp, so
/// none sorts after the switch. Called with LOCK held; returns (lock
/// held) when `prev` runs again.
pub fn switch_to(s: &mut Sched, cpu: u32, prev: Prev, next: Option<usize>, now: u64) {
    let (prev_pid, reason) = match prev {
        Prev::Idle => (0, abi::kstate::PREV_IDLE),
        Prev::Task(p, reason) => {
            if !task::canary_intact(p) {
                fail_run(b"a task overflowed its 64 KiB stack");
            }
            // Charged up to `now` by the reschedule that called this.
            publish_task(s, p);
            (s.tasks[p].pid, reason)
        }
    };
    let next_rsp = match next {
        Some(n) => {
            let t = &mut s.tasks[n];
            t.state = TASK_RUNNING;
            t.last_in = now;
            t.slice_start = t.runtime_ticks;
            t.switches += 1;
            take_steal();
            t.ever_ran = true;
            if t.wait_since != 0 {
                t.wait_ticks += now.saturating_sub(t.wait_since);
                t.wait_since = 0;
            }
            s.running[cpu as usize] = Some(n as Slot);
            let info = s.infos[n];
            with_policy(s, |p, c| p.running(c, &info, cpu));
            emit_at(now, EV_SWITCH, s.tasks[n].pid, prev_pid, reason);
            publish_task(s, n);
            s.tasks[n].rsp
        }
        None => {
            s.running[cpu as usize] = None;
            emit_at(now, EV_SWITCH, 0, prev_pid, reason);
            percpu::cpu(cpu).idle_rsp
        }
    };
    percpu::cpu(cpu)
        .slice_end
        .store(now + s.slice_ticks, core::sync::atomic::Ordering::Relaxed);
    let monitored = next.is_some_and(|n| s.tasks[n].monitors.iter().any(|&m| m != 0));
    percpu::cpu(cpu)
        .crash_ok
        .store(monitored as u32, core::sync::atomic::Ordering::Relaxed);
    s.switches += 1;
    s.cpu_switches[cpu as usize] += 1;
    kstate::set_counters(s.switches, s.spawned);
    publish_cpu_at(s, cpu, Some(now));
    let save: *mut u64 = match prev {
        // SAFETY: this CPU's own PerCpu; only it writes idle_rsp.
        Prev::Idle => unsafe { core::ptr::addr_of_mut!((*percpu::cpu_mut(cpu)).idle_rsp) },
        Prev::Task(p, _) => core::ptr::addr_of_mut!(s.tasks[p].rsp),
    };
    // SAFETY: `save` points into SCHED or this CPU's PerCpu (both static);
    // next_rsp was saved by switch_context or built by prepare_stack; the
    // lock stays held and passes to whatever runs next.
    unsafe { task::switch_context(save, next_rsp) };
}

/// CPU time (ns, steal excluded) the running task has had since it was
/// switched in; call after `account`.
pub fn ran_ns(s: &Sched, slot: usize) -> u64 {
    let t = &s.tasks[slot];
    ticks_to_ns(t.runtime_ticks.saturating_sub(t.slice_start))
}

/// Charge the running task on this CPU for its time since it was last
/// charged, minus the time the host did not run this vCPU (steal).
pub fn account(s: &mut Sched, slot: usize, now: u64) -> u64 {
    let stolen = take_steal();
    let t = &mut s.tasks[slot];
    let ran = now
        .saturating_sub(t.last_in)
        .saturating_sub(crate::time::ns_to_ticks(stolen));
    t.runtime_ticks += ran;
    t.last_in = now;
    ran
}

/// Steal time on this CPU since the last call (lock held).
fn take_steal() -> u64 {
    let cpu = percpu::cpu_id();
    let now = crate::steal::taken_ns(cpu);
    // SAFETY: this CPU's own PerCpu; steal_base is only touched by it,
    // with the scheduler lock held.
    let base = unsafe { &mut (*percpu::cpu_mut(cpu)).steal_base };
    let d = now.saturating_sub(*base);
    *base = now;
    d
}

/// Copy a task's state into its kernel-state record.
pub fn publish_task(s: &Sched, slot: usize) {
    let t = &s.tasks[slot];
    let fields = s.policy.fields(slot as Slot);
    let info = &s.infos[slot];
    kstate::task_record(slot, |r| {
        r.pid = t.pid;
        r.state = t.state;
        r.cpu = t.cpu;
        r.weight = info.weight;
        r.affinity = info.affinity.0;
        r.runtime_ns = ticks_to_ns(t.runtime_ticks);
        r.wait_ns = ticks_to_ns(t.wait_ticks);
        r.runnable_since_tsc = t.wait_since;
        r.wakeups = t.wakeups;
        r.migrations = t.migrations;
        r.switches = t.switches;
        r.vruntime = fields.vruntime;
        r.deadline = fields.deadline;
        r.lag = fields.lag;
    });
}

/// Copy a CPU's state into its kernel-state record.
pub fn publish_cpu(s: &Sched, cpu: u32) {
    publish_cpu_at(s, cpu, None)
}

/// [`publish_cpu`] on a path that already read the TSC (`now`): that
/// reading advances the CPU's clock, and a `rdtsc` is saved.
fn publish_cpu_at(s: &Sched, cpu: u32, now: Option<u64>) {
    let current = s.running[cpu as usize]
        .map(|sl| s.tasks[sl as usize].pid)
        .unwrap_or(0);
    let rq = s.queued_on[cpu as usize];
    let switches = s.cpu_switches[cpu as usize];
    let mine = cpu == percpu::cpu_id();
    kstate::cpu_record(cpu, |r| {
        r.current_pid = current;
        r.rq_len = rq;
        r.switches = switches;
        // Only the CPU itself advances its clock: a stalled CPU's clock
        // must stop even while others touch its record.
        if mine {
            r.clock_tsc = now.unwrap_or_else(rdtsc);
        }
    });
}

/// End the run as failed with a reason the host will show.
pub fn fail_run(why: &[u8]) -> ! {
    crate::tlv::error(1, why);
    kstate::set_ended(abi::kstate::RUN_FAILED, -1);
    crate::entry::exit_to_host(abi::boot::EXIT_PANIC)
}
