//! schedlab's scheduling policies as pure logic: no allocator, no floating
//! point, no `unsafe`, everything fixed-size and constructible in a
//! `const fn` (all-zero, so the core's `static` lands in `.bss`).
//!
//! The shape follows sched_ext: a [`Policy`] gets callbacks from the core
//! (`select_cpu`, `enqueue`, `dispatch`, `running`, `stopping`, `tick`, ...)
//! and moves tasks between dispatch queues ([`Dsqs`]); the core only ever
//! runs what a policy put in a CPU's local queue or the global queue. See
//! [`Policy`] for the exact contract.
//!
//! Built-ins: [`Rr`] (default), [`Fifo`], [`Vtime`], [`Eevdf`] and the
//! test-only [`Starve`]; [`POLICIES`] is the one list of them that the host
//! prints and parses `--policy` with, and [`AnyPolicy`] dispatches over them
//! statically.
#![forbid(unsafe_code)]
#![no_std]
#[cfg(test)]
extern crate std;

mod cpuset;
mod dsq;
mod eevdf;
mod fifo;
mod ids;
mod place;
mod rr;
mod starve;
mod vtime;

#[cfg(test)]
mod sim;
#[cfg(test)]
mod tests;

pub use cpuset::{CpuSet, CpuSetIter};
pub use dsq::{DsqId, DsqIter, Dsqs, MAX_CUSTOM_DSQS};
pub use eevdf::Eevdf;
pub use fifo::Fifo;
pub use ids::DsqIds;
pub use rr::Rr;
pub use starve::Starve;
pub use vtime::Vtime;

pub use abi::memmap::{MAX_CPUS, MAX_TASKS};

/// Task-table slot, `< MAX_TASKS`.
pub type Slot = u16;
/// CPU number, `< MAX_CPUS`.
pub type Cpu = u32;

/// Virtual time advances by `ran_ns * VTIME_SCALE / weight`: fixed point
/// with 10 fractional bits, so any weight divides without visible rounding
/// and a weight-1 task's vruntime moves 1024 units per ns.
pub const VTIME_SCALE: u64 = 1024;

/// `ns` of run time of a task with `weight`, in virtual time (saturating).
pub const fn vtime_delta(ns: u64, weight: u32) -> u64 {
    let w = if weight == 0 { 1 } else { weight };
    let v = ns as u128 * VTIME_SCALE as u128 / w as u128;
    if v > u64::MAX as u128 {
        u64::MAX
    } else {
        v as u64
    }
}

/// What the core knows about a task (the core owns these, indexed by slot).
#[derive(Clone, Copy, Debug, Default)]
pub struct TaskInfo {
    pub slot: Slot,
    pub pid: u32,
    /// Relative weight >= 1 (1 = default share; 1, 2, 4 -> shares 1:2:4).
    /// A 0 is treated as 1.
    pub weight: u32,
    /// Already resolved by the core: never empty, only online CPUs.
    pub affinity: CpuSet,
    /// CPU it last ran on / is assigned to.
    pub cpu: Cpu,
}

/// Passed to every callback.
pub struct Ctx<'a> {
    pub now_ns: u64,
    pub nr_cpus: u32,
    /// CPUs currently idle.
    pub idle: CpuSet,
    /// The run's base slice (`--slice`), e.g. 1 ms.
    pub slice_ns: u64,
    pub dsqs: &'a mut Dsqs,
    /// Indexed by slot; only live tasks are meaningful.
    pub tasks: &'a [TaskInfo],
    /// Per CPU: the task running there now (len = nr_cpus).
    pub running: &'a [Option<Slot>],
}

/// Enqueue flag: became runnable after sleeping/blocking.
pub const ENQ_WAKEUP: u32 = 1;
/// Enqueue flag: just spawned.
pub const ENQ_NEW: u32 = 2;
/// Enqueue flag: its slice ran out (tick said so).
pub const ENQ_PREEMPTED: u32 = 4;
/// Enqueue flag: it yielded voluntarily.
pub const ENQ_YIELD: u32 = 8;

/// A policy's per-task numbers, for introspection (the core copies them
/// into the task's kernel-state record; 0 where a policy has no such
/// notion). Virtual times are in [`VTIME_SCALE`] units.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PolicyFields {
    pub vruntime: u64,
    pub deadline: u64,
    pub lag: i64,
}

/// Shaped like sched_ext's ops.
///
/// Contract: after `enqueue` the task is in exactly one DSQ; tasks put in
/// `Local(c)` must be allowed on `c`. The core runs: on a CPU needing work,
/// pop `Local(cpu)`; if empty call `dispatch(cpu)` and pop `Local(cpu)`
/// again; if still empty pop the first task in `Global` allowed on `cpu`;
/// else go idle. `select_cpu` picks the CPU a waking/new task is queued for
/// (it is in the task's affinity); the core then calls `enqueue` (and kicks
/// that CPU if idle). `running` when a task starts running on a CPU;
/// `stopping` when it stops (`runnable` = it will be enqueued again, i.e.
/// preempted/yielded, vs blocked/exited); `ran_ns` = time since `running`.
/// `tick` on every timer tick on a CPU running a task; return true to
/// preempt it now.
///
/// The built-ins remember the CPU `select_cpu` chose (and the CPU a task
/// stopped on) themselves, so they do not depend on the core updating
/// `TaskInfo::cpu` between `select_cpu` and `enqueue`; `TaskInfo::cpu` is
/// the fallback. All callbacks run under the core's scheduler lock.
pub trait Policy {
    /// A task took `t.slot` (before its first `select_cpu`/`enqueue`).
    fn init_task(&mut self, ctx: &mut Ctx<'_>, t: &TaskInfo);
    /// The task in `t.slot` is gone: forget it and drop it from any DSQ.
    fn exit_task(&mut self, ctx: &mut Ctx<'_>, t: &TaskInfo);
    fn select_cpu(&mut self, ctx: &mut Ctx<'_>, t: &TaskInfo, prev_cpu: Cpu) -> Cpu;
    fn enqueue(&mut self, ctx: &mut Ctx<'_>, t: &TaskInfo, flags: u32);
    fn dispatch(&mut self, ctx: &mut Ctx<'_>, cpu: Cpu);
    fn running(&mut self, ctx: &mut Ctx<'_>, t: &TaskInfo, cpu: Cpu);
    fn stopping(&mut self, ctx: &mut Ctx<'_>, t: &TaskInfo, cpu: Cpu, ran_ns: u64, runnable: bool);
    fn tick(&mut self, ctx: &mut Ctx<'_>, t: &TaskInfo, cpu: Cpu, ran_ns: u64) -> bool;
    /// Policy fields for introspection (0 where unused).
    fn fields(&self, slot: Slot) -> PolicyFields;
}

/// Policy ids (what `BootInfo::policy` carries).
pub const ID_RR: u32 = 0;
pub const ID_FIFO: u32 = 1;
pub const ID_VTIME: u32 = 2;
pub const ID_EEVDF: u32 = 3;
pub const ID_STARVE: u32 = 100;
/// The policy a run gets without `--policy`.
pub const DEFAULT_POLICY: u32 = ID_RR;

/// What a policy promises its tasks. The host judges a run by what its
/// policy promises (a FIFO policy never promised fair shares, so an unfair
/// FIFO run is not a failure); the rest is still measured and shown, and
/// `--check` asks for it to be judged too.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Promises {
    /// How the CPU is shared among tasks that always want it.
    pub shares: Shares,
    /// No runnable task waits unboundedly while others run.
    pub bounded_wait: bool,
    /// Periodic tasks meet their deadlines while the load allows.
    pub deadlines: bool,
}

/// A policy's promise about CPU shares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shares {
    /// None: whoever runs keeps the CPU (FIFO).
    None,
    /// Equal shares, whatever the weights (round-robin).
    Equal,
    /// Shares in proportion to the weights.
    Weighted,
}

impl Shares {
    pub const fn name(self) -> &'static str {
        match self {
            Shares::None => "none",
            Shares::Equal => "equal",
            Shares::Weighted => "weighted",
        }
    }
}

/// One entry of [`POLICIES`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PolicyDesc {
    pub id: u32,
    pub name: &'static str,
    pub summary: &'static str,
    pub promises: Promises,
    /// Exists for the host's own tests; not offered to users.
    pub test_only: bool,
}

/// Fair (by `shares`) and no unbounded waits.
const fn fair(shares: Shares) -> Promises {
    Promises {
        shares,
        bounded_wait: true,
        deadlines: false,
    }
}

/// The one list of policies (the host prints it for `schedlab policies`
/// and parses `--policy` with it). Every id here constructs with
/// [`AnyPolicy::new`].
pub const POLICIES: &[PolicyDesc] = &[
    PolicyDesc {
        id: ID_RR,
        name: "rr",
        summary: "per-CPU round-robin with a fixed slice; least-loaded placement, idle CPUs steal (default)",
        promises: fair(Shares::Equal),
        test_only: false,
    },
    PolicyDesc {
        id: ID_FIFO,
        name: "fifo",
        summary: "one global FIFO queue; a task runs until it blocks or yields",
        promises: Promises {
            shares: Shares::None,
            bounded_wait: false,
            deadlines: false,
        },
        test_only: false,
    },
    PolicyDesc {
        id: ID_VTIME,
        name: "vtime",
        summary: "weighted fair queueing: one global queue ordered by vruntime, shares proportional to weight",
        promises: fair(Shares::Weighted),
        test_only: false,
    },
    PolicyDesc {
        id: ID_EEVDF,
        name: "eevdf",
        summary: "Linux's EEVDF per CPU: earliest eligible virtual deadline first, lag kept across sleeps",
        promises: fair(Shares::Weighted),
        test_only: false,
    },
    PolicyDesc {
        id: ID_STARVE,
        name: "starve",
        summary: "global round-robin that never runs the task whose pid is the policy argument (host tests)",
        // It claims what round-robin promises, so the host catches it
        // breaking the promise.
        promises: fair(Shares::Equal),
        test_only: true,
    },
];

/// The policy called `name`.
pub fn by_name(name: &str) -> Option<&'static PolicyDesc> {
    POLICIES.iter().find(|p| p.name == name)
}

/// The policy with `id`.
pub fn by_id(id: u32) -> Option<&'static PolicyDesc> {
    POLICIES.iter().find(|p| p.id == id)
}

/// Static dispatch over the built-ins (no dyn, no alloc). `repr(u32)` with
/// the policy ids as discriminants, so `AnyPolicy::new(ID_RR, 0)` is all
/// zeros and a `static` holding it stays in `.bss`. The variants differ a
/// lot in size (eevdf's per-task arrays against fifo's nothing); that is
/// fine for the one instance the core keeps, and boxing needs an allocator.
#[allow(clippy::large_enum_variant)]
#[repr(u32)]
pub enum AnyPolicy {
    Rr(Rr) = ID_RR,
    Fifo(Fifo) = ID_FIFO,
    Vtime(Vtime) = ID_VTIME,
    Eevdf(Eevdf) = ID_EEVDF,
    Starve(Starve) = ID_STARVE,
}

impl AnyPolicy {
    /// The policy with `id`, fresh; `arg` is the policy argument (only
    /// `starve` uses it: the pid it never runs). `None` for an unknown id.
    pub const fn new(id: u32, arg: u32) -> Option<AnyPolicy> {
        Some(match id {
            ID_RR => AnyPolicy::Rr(Rr::new()),
            ID_FIFO => AnyPolicy::Fifo(Fifo::new()),
            ID_VTIME => AnyPolicy::Vtime(Vtime::new()),
            ID_EEVDF => AnyPolicy::Eevdf(Eevdf::new()),
            ID_STARVE => AnyPolicy::Starve(Starve::new(arg)),
            _ => return None,
        })
    }

    /// This policy's id.
    pub const fn id(&self) -> u32 {
        match self {
            AnyPolicy::Rr(_) => ID_RR,
            AnyPolicy::Fifo(_) => ID_FIFO,
            AnyPolicy::Vtime(_) => ID_VTIME,
            AnyPolicy::Eevdf(_) => ID_EEVDF,
            AnyPolicy::Starve(_) => ID_STARVE,
        }
    }
}

/// Forward one call to whichever policy `self` holds.
macro_rules! each {
    ($self:ident, $p:ident => $e:expr) => {
        match $self {
            AnyPolicy::Rr($p) => $e,
            AnyPolicy::Fifo($p) => $e,
            AnyPolicy::Vtime($p) => $e,
            AnyPolicy::Eevdf($p) => $e,
            AnyPolicy::Starve($p) => $e,
        }
    };
}

impl Policy for AnyPolicy {
    fn init_task(&mut self, ctx: &mut Ctx<'_>, t: &TaskInfo) {
        each!(self, p => p.init_task(ctx, t))
    }
    fn exit_task(&mut self, ctx: &mut Ctx<'_>, t: &TaskInfo) {
        each!(self, p => p.exit_task(ctx, t))
    }
    fn select_cpu(&mut self, ctx: &mut Ctx<'_>, t: &TaskInfo, prev_cpu: Cpu) -> Cpu {
        each!(self, p => p.select_cpu(ctx, t, prev_cpu))
    }
    fn enqueue(&mut self, ctx: &mut Ctx<'_>, t: &TaskInfo, flags: u32) {
        each!(self, p => p.enqueue(ctx, t, flags))
    }
    fn dispatch(&mut self, ctx: &mut Ctx<'_>, cpu: Cpu) {
        each!(self, p => p.dispatch(ctx, cpu))
    }
    fn running(&mut self, ctx: &mut Ctx<'_>, t: &TaskInfo, cpu: Cpu) {
        each!(self, p => p.running(ctx, t, cpu))
    }
    fn stopping(&mut self, ctx: &mut Ctx<'_>, t: &TaskInfo, cpu: Cpu, ran_ns: u64, runnable: bool) {
        each!(self, p => p.stopping(ctx, t, cpu, ran_ns, runnable))
    }
    fn tick(&mut self, ctx: &mut Ctx<'_>, t: &TaskInfo, cpu: Cpu, ran_ns: u64) -> bool {
        each!(self, p => p.tick(ctx, t, cpu, ran_ns))
    }
    fn fields(&self, slot: Slot) -> PolicyFields {
        each!(self, p => p.fields(slot))
    }
}
