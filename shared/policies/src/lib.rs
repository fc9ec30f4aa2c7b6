//! What the core and `policy_sdk::sim` share to run a policy image: the
//! dispatch queues ([`Dsqs`], [`DsqId`]) and the mapping of the policy
//! ABI's queue ids onto them ([`DsqIds`]), CPU sets, and the core's view
//! of a task ([`TaskInfo`], [`Ctx`]). No allocator, no floating point, no
//! `unsafe`, everything fixed-size and constructible in a `const fn`
//! (all-zero, so the core's `static` lands in `.bss`).
//!
//! The policies themselves are images (`guest/policies/NAME`, written
//! against `policy_sdk`); the built-ins that lived here (`Rr`, `Fifo`,
//! `Vtime`, `Eevdf`, `Starve`, `AnyPolicy`, the `Policy` trait and the
//! `POLICIES` list) moved there (issue 9).
#![forbid(unsafe_code)]
#![no_std]
#[cfg(test)]
extern crate std;

mod cpuset;
mod dsq;
mod ids;

pub use cpuset::{CpuSet, CpuSetIter};
pub use dsq::{DsqId, DsqIter, Dsqs, MAX_CUSTOM_DSQS};
pub use ids::DsqIds;

pub use abi::memmap::{MAX_CPUS, MAX_TASKS};

/// Task-table slot, `< MAX_TASKS`.
pub type Slot = u16;
/// CPU number, `< MAX_CPUS`.
pub type Cpu = u32;

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

/// The core's state a policy callback runs against (what the queue
/// services act on).
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
/// notion).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PolicyFields {
    pub vruntime: u64,
    pub deadline: u64,
    pub lag: i64,
}

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
