//! `rr`: per-CPU round-robin with a fixed slice (the default policy).
//!
//! Each CPU has its own FIFO (its local DSQ). A waking task stays on its
//! previous CPU unless another allowed CPU has fewer tasks, a running task
//! is preempted once it has run a full slice and someone is waiting behind
//! it, and a CPU that runs dry steals from the busiest CPU. No global
//! queue: the core's global fallback never fires.

use crate::place::{self, Remembered};
use crate::{Cpu, Ctx, DsqId, Policy, PolicyFields, Slot, TaskInfo};

pub struct Rr {
    /// CPU chosen by `select_cpu` / stopped on, for the next `enqueue`.
    target: Remembered,
}

impl Default for Rr {
    fn default() -> Self {
        Self::new()
    }
}

impl Rr {
    pub const fn new() -> Self {
        Rr {
            target: Remembered::new(),
        }
    }
}

impl Policy for Rr {
    fn init_task(&mut self, _ctx: &mut Ctx<'_>, t: &TaskInfo) {
        self.target.take(t.slot);
    }

    fn exit_task(&mut self, ctx: &mut Ctx<'_>, t: &TaskInfo) {
        ctx.dsqs.remove(t.slot);
        self.target.take(t.slot);
    }

    fn select_cpu(&mut self, ctx: &mut Ctx<'_>, t: &TaskInfo, prev_cpu: Cpu) -> Cpu {
        let cpu = place::select_balanced(ctx, t, prev_cpu);
        self.target.set(t.slot, cpu);
        cpu
    }

    fn enqueue(&mut self, ctx: &mut Ctx<'_>, t: &TaskInfo, _flags: u32) {
        let cpu = place::resolve_target(ctx, t, self.target.take(t.slot));
        ctx.dsqs.insert_fifo(DsqId::Local(cpu), t.slot);
    }

    fn dispatch(&mut self, ctx: &mut Ctx<'_>, cpu: Cpu) {
        if !ctx.dsqs.is_empty(DsqId::Local(cpu)) {
            return;
        }
        if let Some((s, _)) = place::steal(ctx, cpu) {
            ctx.dsqs.insert_fifo(DsqId::Local(cpu), s);
        }
    }

    fn running(&mut self, _ctx: &mut Ctx<'_>, t: &TaskInfo, _cpu: Cpu) {
        self.target.take(t.slot);
    }

    fn stopping(&mut self, _ctx: &mut Ctx<'_>, t: &TaskInfo, cpu: Cpu, _ran: u64, runnable: bool) {
        if runnable {
            // Preempted or yielded: it goes back to the end of this CPU's queue.
            self.target.set(t.slot, cpu);
        }
    }

    /// Preempt after a full slice, but only if someone is waiting here:
    /// preempting a lone task would just run it again.
    fn tick(&mut self, ctx: &mut Ctx<'_>, _t: &TaskInfo, cpu: Cpu, ran_ns: u64) -> bool {
        ran_ns >= ctx.slice_ns && !ctx.dsqs.is_empty(DsqId::Local(cpu))
    }

    fn fields(&self, _slot: Slot) -> PolicyFields {
        PolicyFields::default()
    }
}
