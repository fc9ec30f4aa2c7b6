//! The interface between the scheduler core and the policy it runs: the
//! core calls these callbacks (under its lock) and the policy image's
//! adapter (`image.rs`) turns them into the image's `PolicyOps` calls.
//! Kept as a trait so the core's call sites read as the sched_ext flow
//! they follow, whatever the adapter does underneath.

use policies::{Cpu, CpuSet, Dsqs, Slot};

/// Enqueue flags, the core's `u32` view of `abi::policy::ENQ_*` (one
/// source of truth: the values are the ABI's).
pub const ENQ_WAKEUP: u32 = abi::policy::ENQ_WAKEUP as u32;
pub const ENQ_NEW: u32 = abi::policy::ENQ_NEW as u32;
pub const ENQ_PREEMPTED: u32 = abi::policy::ENQ_PREEMPTED as u32;
pub const ENQ_YIELD: u32 = abi::policy::ENQ_YIELD as u32;

/// What the core knows about a task (indexed by slot).
#[derive(Clone, Copy, Debug, Default)]
pub struct TaskInfo {
    pub slot: Slot,
    pub pid: u32,
    /// Relative weight >= 1; a 0 is treated as 1.
    pub weight: u32,
    /// Already resolved by the core: never empty, only online CPUs.
    pub affinity: CpuSet,
    /// CPU it last ran on / is assigned to.
    pub cpu: Cpu,
    /// Real-time attributes it was spawned with (all 0: none), for the
    /// policy's `PolicyTask::rt_*`.
    pub rt: abi::ipc::RtAttrs,
}

/// Passed to every callback.
pub struct Ctx<'a> {
    pub nr_cpus: u32,
    /// CPUs currently idle.
    pub idle: CpuSet,
    pub dsqs: &'a mut Dsqs,
    /// Indexed by slot; only live tasks are meaningful.
    pub tasks: &'a [TaskInfo],
    /// Per CPU: the task running there now (len = nr_cpus).
    pub running: &'a [Option<Slot>],
}

/// A policy's per-task numbers for the task's kernel-state record (0
/// where a policy has no such notion).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PolicyFields {
    pub vruntime: u64,
    pub deadline: u64,
    pub lag: i64,
}

/// The callbacks, in sched_ext's order of events. After `enqueue` the
/// task is in exactly one dispatch queue. On a CPU needing work the core
/// pops its local queue; if empty it calls `dispatch(cpu)` and pops it
/// again; if still empty it takes the first task in the global queue
/// allowed on the CPU; else the CPU idles. `tick` returns true to
/// preempt the running task now.
pub trait Policy {
    fn init_task(&mut self, ctx: &mut Ctx<'_>, t: &TaskInfo);
    fn exit_task(&mut self, ctx: &mut Ctx<'_>, t: &TaskInfo);
    fn select_cpu(&mut self, ctx: &mut Ctx<'_>, t: &TaskInfo, prev_cpu: Cpu) -> Cpu;
    fn enqueue(&mut self, ctx: &mut Ctx<'_>, t: &TaskInfo, flags: u32);
    fn dispatch(&mut self, ctx: &mut Ctx<'_>, cpu: Cpu);
    fn running(&mut self, ctx: &mut Ctx<'_>, t: &TaskInfo, cpu: Cpu);
    fn stopping(&mut self, ctx: &mut Ctx<'_>, t: &TaskInfo, cpu: Cpu, ran_ns: u64, runnable: bool);
    fn tick(&mut self, ctx: &mut Ctx<'_>, t: &TaskInfo, cpu: Cpu, ran_ns: u64) -> bool;
    /// Every tick of `cpu`, busy or idle (an idle CPU: at each wake-up).
    fn cpu_tick(&mut self, ctx: &mut Ctx<'_>, cpu: Cpu);
    fn fields(&self, slot: Slot) -> PolicyFields;
}
