//! A host-side model of the core for policies' unit tests (feature `sim`,
//! std): no KVM, a simulated clock, deterministic.
//!
//! [`Harness`] is the core's side of a policy image, step by step: it owns
//! the dispatch queues (`policies::Dsqs` with `policies::DsqIds`, the code
//! the kernel's queue services use), one [`Task`] view per slot, idle
//! claims and kicks, and implements the whole `PolicyServices` table; it
//! calls the policy's exported `PolicyOps` callbacks -- the same function
//! pointers the kernel calls -- as the kernel's image adapter does
//! (`runnable` before `enqueue` of a new or waking task, `slice_ns`
//! consumed as the task runs and a tick preempting at 0, `quiescent` after
//! a blocking `stopping`, claims dropped at `dispatch` and `running`).
//! [`Sim`] adds time and workloads on top: tasks that spin, sleep or exit,
//! and a tick on every busy CPU.
//!
//! Contract checks on the way (a failure panics): after `enqueue` a task is
//! in a queue, local queues hold only tasks allowed there and never a
//! running one, `select_cpu` answers inside the task's CPUs, the core only
//! runs allowed tasks; plus any check the test adds ([`Harness::on_step`]).
//! A policy's own error (a bad queue id, `error()`) panics inside an
//! `extern "C"` service, which aborts the test binary with the message.
//!
//! The policy's state and the SDK's services pointer are process-wide
//! statics, so a `Harness` holds a lock for its lifetime: the tests of one
//! crate run one simulation at a time.
//!
//! ```ignore
//! // in a policy crate (export_policy! makes `sim_policy()` in tests):
//! let mut sim = policy_sdk::sim::Sim::new(crate::sim_policy(), 0, 1, MS);
//! ```

mod run;
mod services;

pub use abi::ipc::RtAttrs;
pub use policies::{CpuSet, DsqId, Slot};
pub use run::{Pattern, Sim, SimTask};

use crate::{ENQ_NEW, ENQ_WAKEUP, PolicyOps, PolicyServices, SLICE_DFL, SLICE_INF, Task};
use abi::memmap::{MAX_CPUS, MAX_TASKS};
use abi::policy::DSQ_GLOBAL;
pub use abi::topology::Topology;
use policies::{DsqIds, Dsqs};
use services::{core, insert};
use std::boxed::Box;
use std::sync::{Mutex, MutexGuard};
use std::vec;
use std::vec::Vec;

/// A policy image's table and how to put its state back to the start
/// (`export_policy!` makes `sim_policy()` returning this in tests).
#[derive(Clone, Copy)]
pub struct Policy {
    pub ops: &'static PolicyOps,
    pub reset: fn(),
}

/// One simulation at a time per process (see the module docs).
static LOCK: Mutex<()> = Mutex::new(());

/// What the core keeps about a task (the kernel's `TaskInfo`): views are
/// refreshed from it before each callback.
#[derive(Clone, Copy, Debug, Default)]
struct Info {
    pid: u32,
    weight: u32,
    affinity: u64,
    cpu: u32,
    rt: abi::ipc::RtAttrs,
}

/// The core's state the services act on (reached through a pointer while
/// a harness lives; see `services`).
struct Core {
    name: std::string::String,
    dsqs: Box<Dsqs>,
    ids: DsqIds,
    views: Box<[Task; MAX_TASKS]>,
    /// The slice each task started its turn with.
    turn_slice: Vec<u64>,
    /// `runtime_ns` when the task started its turn (as the kernel's).
    turn_runtime: Vec<u64>,
    infos: Vec<Info>,
    running: Vec<Option<Slot>>,
    now: u64,
    nr_cpus: u32,
    /// The machine's shape handed to the policy (`cpus() == nr_cpus`).
    topology: Topology,
    slice_ns: u64,
    /// Idle CPUs claimed for a wake-up and not yet given work.
    claimed: u64,
    /// The CPU a `dispatch` runs for.
    dispatch_cpu: Option<u32>,
    /// CPUs kicked (they look for work at the next step if idle).
    kicked: u64,
    /// CPUs told to reschedule (`KICK_PREEMPT`, `ENQ_PREEMPT`): the
    /// simulation runs their tick at the next step.
    resched: u64,
    /// CPUs whose running task's slice a kick or `ENQ_PREEMPT` ended: its
    /// next tick preempts it, as in the core.
    ended: u64,
    cpu_data: Vec<u8>,
}

impl Core {
    /// A kick or `ENQ_PREEMPT` ends the slice of what runs on `cpu` (even
    /// `SLICE_INF`, as sched_ext), and its tick runs at the next step.
    fn end_slice(&mut self, cpu: u32) {
        self.resched |= 1u64 << cpu;
        if self.running.get(cpu as usize).is_some_and(|r| r.is_some()) {
            self.ended |= 1u64 << cpu;
        }
    }

    fn idle(&self) -> u64 {
        let mut m = 0;
        for (c, r) in self.running.iter().enumerate() {
            if r.is_none() {
                m |= 1u64 << c;
            }
        }
        m
    }

    /// Refresh what the core owns in slot `s`'s view.
    fn sync(&mut self, s: Slot, state: u32) -> *mut Task {
        let i = self.infos[s as usize];
        let v = &mut self.views[s as usize];
        v.pid = i.pid;
        v.slot = u32::from(s);
        v.weight = i.weight.max(1);
        v.cpu = i.cpu;
        v.cpus_allowed = i.affinity;
        v.rt_period_ns = i.rt.period_ns;
        v.rt_runtime_ns = i.rt.runtime_ns;
        v.rt_deadline_ns = i.rt.deadline_ns;
        v.rt_priority = i.rt.priority;
        v.state = state;
        v as *mut Task
    }

    /// Take what the task ran this turn off its slice.
    fn consume(&mut self, s: Slot, ran: u64) {
        let v = &mut self.views[s as usize];
        v.runtime_ns = self.turn_runtime[s as usize].saturating_add(ran);
        if v.slice_ns != SLICE_INF {
            v.slice_ns = self.turn_slice[s as usize].saturating_sub(ran);
        }
    }
}

/// A test's own check after every step ([`Harness::on_step`]).
type StepCheck = Box<dyn Fn(&Harness)>;

/// The core's side of a policy image, one callback at a time.
pub struct Harness {
    ops: &'static PolicyOps,
    core: *mut Core,
    /// The table handed to `init`; boxed so its address is stable.
    _svc: Box<PolicyServices>,
    /// The local queue each task was last enqueued to.
    enqueued_on: Vec<Option<DsqId>>,
    /// (slot, from, to): a task enqueued on `from`'s local queue ran on `to`.
    pub steals: Vec<(Slot, u32, u32)>,
    check: Option<StepCheck>,
    _lock: MutexGuard<'static, ()>,
}

impl Drop for Harness {
    fn drop(&mut self) {
        services::set_core(core::ptr::null_mut());
        // SAFETY: `core` came from Box::into_raw in `new` and nothing uses
        // it after this (the services pointer was cleared above).
        drop(unsafe { Box::from_raw(self.core) });
    }
}

use abi::kstate::{TASK_RUNNABLE, TASK_RUNNING, TASK_SLEEPING, TASK_ZOMBIE};

impl Harness {
    /// `policy` with its state reset, `arg` as the policy argument,
    /// `nr_cpus` CPUs and a `slice_ns` run slice; `init` and `cpu_online`
    /// are called.
    pub fn new(policy: Policy, arg: u64, nr_cpus: u32, slice_ns: u64) -> Self {
        Self::with_topology(policy, arg, Topology::flat(nr_cpus), slice_ns)
    }

    /// As [`Harness::new`] on a machine of shape `topology` (its CPUs
    /// numbered as `abi::topology` says), which the policy gets in its
    /// services and the core's idle selection follows.
    pub fn with_topology(policy: Policy, arg: u64, topology: Topology, slice_ns: u64) -> Self {
        assert!(topology.is_valid(), "invalid topology {topology:?}");
        let nr_cpus = topology.cpus();
        assert!(nr_cpus as usize <= MAX_CPUS);
        let lock = LOCK.lock().unwrap_or_else(|e| e.into_inner());
        (policy.reset)();
        let core = Box::into_raw(Box::new(Core {
            name: std::string::String::from(policy.ops.name_str()),
            dsqs: Box::new(Dsqs::new()),
            ids: DsqIds::new(),
            views: Box::new([Task::default(); MAX_TASKS]),
            turn_slice: vec![0; MAX_TASKS],
            turn_runtime: vec![0; MAX_TASKS],
            infos: Vec::new(),
            running: vec![None; nr_cpus as usize],
            now: 0,
            nr_cpus,
            topology,
            slice_ns,
            claimed: 0,
            dispatch_cpu: None,
            kicked: 0,
            resched: 0,
            ended: 0,
            cpu_data: vec![0; MAX_CPUS * abi::policy::POLICY_CPU_DATA_SIZE as usize],
        }));
        services::set_core(core);
        let svc = Box::new(services::table(topology, slice_ns, arg, core));
        let h = Harness {
            ops: policy.ops,
            core,
            _svc: svc,
            enqueued_on: Vec::new(),
            steals: Vec::new(),
            check: None,
            _lock: lock,
        };
        // The core's own defaults for callbacks a table leaves null run on
        // the SDK's helpers, whatever wrote the table (an SDK policy's
        // `init` sets this too).
        // SAFETY: the harness's services table lives as long as it does.
        unsafe { crate::init_services(&*h._svc) };
        if let Some(init) = h.ops.init {
            // SAFETY: the policy's own callback; the table lives as long as
            // the harness.
            assert_eq!(unsafe { init(&*h._svc) }, 0, "init refused to start");
        }
        if let Some(online) = h.ops.cpu_online {
            for c in 0..nr_cpus {
                // SAFETY: the policy's own callback.
                unsafe { online(c) }
            }
        }
        h
    }

    /// Run `f` after every step too (a policy's own invariants).
    pub fn on_step(&mut self, f: impl Fn(&Harness) + 'static) {
        self.check = Some(Box::new(f));
    }

    /// The core, for one step (see `services::core`).
    fn c(&self) -> &'static mut Core {
        core()
    }

    pub fn now(&self) -> u64 {
        self.c().now
    }

    pub fn set_now(&mut self, ns: u64) {
        self.c().now = ns;
    }

    pub fn nr_cpus(&self) -> u32 {
        self.c().nr_cpus
    }

    /// The machine's shape.
    pub fn topology(&self) -> Topology {
        self.c().topology
    }

    /// The task running on `cpu`.
    pub fn running(&self, cpu: u32) -> Option<Slot> {
        self.c().running[cpu as usize]
    }

    /// Slot `s`'s view as the policy left it.
    pub fn task(&self, s: Slot) -> Task {
        self.c().views[s as usize]
    }

    /// The queue holding `s`, as the core names it.
    pub fn queued_in(&self, s: Slot) -> Option<DsqId> {
        self.c().dsqs.queued_in(s)
    }

    /// The queue holding `s`, by the id the policy knows it by.
    pub fn dsq_of(&self, s: Slot) -> Option<u64> {
        let c = self.c();
        c.dsqs.queued_in(s).map(|d| c.ids.id_of(d))
    }

    /// The slots in the queue the policy calls `id`, head first.
    pub fn queue(&self, id: u64) -> Vec<Slot> {
        let c = self.c();
        let local = c.dispatch_cpu.unwrap_or(0);
        let d = c.ids.resolve(id, c.nr_cpus, local).expect("a queue id");
        c.dsqs.iter(d).collect()
    }

    /// Tasks assigned to `cpu`: queued locally plus running.
    pub fn assigned(&self, cpu: u32) -> usize {
        let c = self.c();
        c.dsqs.len(DsqId::Local(cpu)) + usize::from(c.running[cpu as usize].is_some())
    }

    /// Reserve the next slot (pid = slot + 1) without telling the policy.
    pub fn reserve(&mut self, weight: u32, affinity: CpuSet, cpu: u32) -> Slot {
        let c = self.c();
        let slot = c.infos.len() as Slot;
        assert!((slot as usize) < MAX_TASKS, "out of task slots");
        c.infos.push(Info {
            pid: u32::from(slot) + 1,
            weight,
            affinity: affinity.0,
            cpu,
            rt: abi::ipc::RtAttrs::default(),
        });
        slot
    }

    /// Give reserved slot `s` real-time attributes (as `spawn_ex` with
    /// `SpawnOptions::rt`), before it is initialised.
    pub fn set_rt(&mut self, s: Slot, rt: abi::ipc::RtAttrs) {
        self.c().infos[s as usize].rt = rt;
    }

    /// A task in the next slot (pid = slot + 1); `init_task` is called.
    pub fn add(&mut self, weight: u32, affinity: CpuSet, cpu: u32) -> Slot {
        let slot = self.reserve(weight, affinity, cpu);
        self.init_task(slot);
        slot
    }

    /// `n` new tasks of `weight`, allowed anywhere, queued on `cpu`,
    /// which then picks one if it runs nothing: a loaded CPU for the
    /// balancing tests.
    pub fn load_cpu(&mut self, cpu: u32, n: usize, weight: u32) -> Vec<Slot> {
        let all = CpuSet::all(self.nr_cpus());
        let slots: Vec<Slot> = (0..n).map(|_| self.add(weight, all, cpu)).collect();
        for &s in &slots {
            self.enqueue(s, ENQ_NEW);
        }
        if n > 0 && self.running(cpu).is_none() {
            self.pick(cpu);
        }
        slots
    }

    /// `init_task` and `enable` for a reserved slot, with a fresh view.
    pub fn init_task(&mut self, s: Slot) {
        let c = self.c();
        let v = c.sync(s, TASK_RUNNABLE);
        let view = &mut c.views[s as usize];
        view.slice_ns = c.slice_ns;
        view.dsq_vtime = 0;
        view.data = [0; abi::policy::POLICY_TASK_DATA_WORDS];
        view.runtime_ns = 0;
        c.turn_slice[s as usize] = 0;
        if let Some(f) = self.ops.init_task {
            // SAFETY: the policy's callback; v is this slot's live view.
            assert_eq!(unsafe { f(v) }, 0, "init_task refused task {s}");
        }
        if let Some(f) = self.ops.enable {
            // SAFETY: as above.
            unsafe { f(v) }
        }
    }

    /// The task in `s` is gone (it must not be running).
    pub fn exit(&mut self, s: Slot) {
        let c = self.c();
        c.dsqs.remove(s);
        let v = c.sync(s, TASK_ZOMBIE);
        if let Some(f) = self.ops.exit_task {
            // SAFETY: the policy's callback; v is a live view.
            unsafe { f(v) }
        }
        c.views[s as usize].pid = 0;
        assert_eq!(c.dsqs.queued_in(s), None, "exited task still queued");
        self.check();
    }

    /// `select_cpu` then `enqueue`, as the core wakes a task; returns the
    /// CPU chosen.
    pub fn wake(&mut self, s: Slot, flags: u64) -> u32 {
        let c = self.c();
        let prev = c.infos[s as usize].cpu;
        let v = c.sync(s, TASK_RUNNABLE);
        let cpu = match self.ops.select_cpu {
            // SAFETY: the policy's callback; v is a live view.
            Some(f) => unsafe { f(v, prev, 0) },
            // sched_ext's default: the idle CPU chosen gets the task in
            // its local queue at once (direct dispatch), as in the core.
            None => {
                let topo = c.topology;
                let (cpu, idle) =
                    abi::idle::select_cpu_dfl(&topo, c.infos[s as usize].affinity, prev, |m, f| {
                        crate::pick_idle_cpu_flags(m, f)
                    });
                if idle {
                    insert(
                        v,
                        abi::policy::DSQ_LOCAL_ON | u64::from(cpu),
                        SLICE_DFL,
                        None,
                        0,
                    );
                }
                cpu
            }
        };
        let aff = c.infos[s as usize].affinity;
        assert!(
            cpu < c.nr_cpus && aff & (1u64 << cpu) != 0,
            "select_cpu chose {cpu} outside {aff:#x}"
        );
        c.infos[s as usize].cpu = cpu;
        self.enqueue(s, flags);
        cpu
    }

    /// `enqueue` (after `runnable` for a new or waking task).
    pub fn enqueue(&mut self, s: Slot, flags: u64) {
        self.enqueue_unchecked(s, flags);
        self.check();
    }

    /// `enqueue` without the step's check (a stopping task is still its
    /// CPU's current one while it is queued again).
    fn enqueue_unchecked(&mut self, s: Slot, flags: u64) {
        let c = self.c();
        let v = c.sync(s, TASK_RUNNABLE);
        if flags & (ENQ_WAKEUP | ENQ_NEW) != 0
            && let Some(f) = self.ops.runnable
        {
            // SAFETY: the policy's callback; v is a live view.
            unsafe { f(v, flags) }
        }
        // Queued by `select_cpu` already (sched_ext's direct dispatch):
        // `enqueue` is skipped, as in the core.
        if c.dsqs.queued_in(s).is_none() {
            match self.ops.enqueue {
                // SAFETY: as above.
                Some(f) => unsafe { f(v, flags) },
                None => insert(v, DSQ_GLOBAL, SLICE_DFL, None, flags),
            }
        }
        let dsq = c.dsqs.queued_in(s);
        assert!(
            dsq.is_some() || self.ops.flags & abi::policy::POLICY_FLAG_CUSTODY != 0,
            "task {s} in no queue after enqueue"
        );
        if let Some(DsqId::Local(l)) = dsq {
            c.infos[s as usize].cpu = l;
            c.kicked |= 1u64 << l;
        }
        if self.enqueued_on.len() <= s as usize {
            self.enqueued_on.resize(s as usize + 1, None);
        }
        self.enqueued_on[s as usize] = dsq;
    }

    /// The core's pick for an idle `cpu`: its local queue, else `dispatch`
    /// and the local queue again, else the first task in the global queue
    /// allowed here. Calls `running`.
    pub fn pick(&mut self, cpu: u32) -> Option<Slot> {
        let c = self.c();
        assert!(c.running[cpu as usize].is_none(), "pick on a busy CPU");
        // A kick ends the slice of the task it found running, not the next.
        c.ended &= !(1u64 << cpu);
        let mut s = c.dsqs.pop_first(DsqId::Local(cpu));
        if s.is_none() {
            c.claimed &= !(1u64 << cpu);
            c.dispatch_cpu = Some(cpu);
            if let Some(f) = self.ops.dispatch {
                // SAFETY: the policy's callback.
                unsafe { f(cpu, core::ptr::null_mut()) }
            }
            c.dispatch_cpu = None;
            self.check();
            s = c.dsqs.pop_first(DsqId::Local(cpu));
        }
        if s.is_none() {
            let infos = &c.infos;
            s = c.dsqs.pop_first_where(DsqId::Global, |s| {
                infos[s as usize].affinity & (1u64 << cpu) != 0
            });
        }
        let s = s?;
        assert!(
            c.infos[s as usize].affinity & (1u64 << cpu) != 0,
            "task {s} picked on CPU {cpu} outside its CPUs"
        );
        if let Some(Some(DsqId::Local(from))) = self.enqueued_on.get(s as usize)
            && *from != cpu
        {
            self.steals.push((s, *from, cpu));
        }
        c.running[cpu as usize] = Some(s);
        c.infos[s as usize].cpu = cpu;
        c.claimed &= !(1u64 << cpu);
        let v = c.sync(s, TASK_RUNNING);
        let view = &mut c.views[s as usize];
        if view.slice_ns == 0 {
            view.slice_ns = c.slice_ns;
        }
        c.turn_slice[s as usize] = view.slice_ns;
        c.turn_runtime[s as usize] = view.runtime_ns;
        if let Some(f) = self.ops.running {
            // SAFETY: the policy's callback; v is a live view.
            unsafe { f(v) }
        }
        self.check();
        Some(s)
    }

    /// The policy's `cpu_tick` on `cpu` (every tick of every CPU, busy or
    /// idle, as the core calls it), if it has one.
    pub fn cpu_tick(&mut self, cpu: u32) {
        let now = self.c().now;
        if let Some(f) = self.ops.cpu_tick {
            // SAFETY: the policy's callback; it takes no pointer.
            unsafe { f(cpu, now) }
        }
        self.check();
    }

    /// A tick on busy `cpu` whose task has run `ran_ns` this turn: true if
    /// the task is to be preempted (its slice is 0).
    pub fn tick(&mut self, cpu: u32, ran_ns: u64) -> bool {
        let c = self.c();
        let s = c.running[cpu as usize].expect("tick on an idle CPU");
        let v = c.sync(s, TASK_RUNNING);
        c.consume(s, ran_ns);
        if c.ended & (1u64 << cpu) != 0 {
            c.ended &= !(1u64 << cpu);
            c.views[s as usize].slice_ns = 0;
            return true;
        }
        if let Some(f) = self.ops.tick {
            // SAFETY: the policy's callback; v is a live view.
            unsafe { f(v) }
        }
        self.check();
        c.views[s as usize].slice_ns == 0
    }

    /// The task on `cpu` stops after `ran_ns`; if `runnable` it is queued
    /// again with `requeue_flags` (preempted or yielded). As in the kernel,
    /// it is still `cpu`'s current task during `stopping` and `enqueue`.
    pub fn stop(&mut self, cpu: u32, ran_ns: u64, runnable: bool, requeue_flags: u64) -> Slot {
        let c = self.c();
        let s = c.running[cpu as usize].expect("stop on an idle CPU");
        let v = c.sync(
            s,
            if runnable {
                TASK_RUNNABLE
            } else {
                TASK_SLEEPING
            },
        );
        c.consume(s, ran_ns);
        if let Some(f) = self.ops.stopping {
            // SAFETY: the policy's callback; v is a live view.
            unsafe { f(v, u32::from(runnable)) }
        }
        if !runnable && let Some(f) = self.ops.quiescent {
            // SAFETY: as above.
            unsafe { f(v, 0) }
        }
        if runnable {
            self.enqueue_unchecked(s, requeue_flags);
        }
        c.running[cpu as usize] = None;
        self.check();
        s
    }

    /// CPUs kicked since the last call.
    pub fn take_kicked(&mut self) -> u64 {
        core::mem::take(&mut self.c().kicked)
    }

    /// CPUs told to reschedule since the last call.
    pub fn take_resched(&mut self) -> u64 {
        core::mem::take(&mut self.c().resched)
    }

    /// The contract, and the test's own check.
    pub fn check(&self) {
        let c = self.c();
        for cpu in 0..c.nr_cpus {
            for s in c.dsqs.iter(DsqId::Local(cpu)) {
                assert!(
                    c.infos[s as usize].affinity & (1u64 << cpu) != 0,
                    "task {s} queued on CPU {cpu} outside its CPUs"
                );
                assert!(
                    c.running.iter().all(|r| *r != Some(s)),
                    "task {s} both running and queued"
                );
            }
        }
        if let Some(f) = &self.check {
            f(self);
        }
    }
}
