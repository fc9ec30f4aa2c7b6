//! `rr`: per-CPU round-robin with a fixed slice (the default policy).
//!
//! Slices end on a tick, so a 1 ms slice on a 1 kHz tick runs 1 or 2 ms
//! depending on where in the tick period the task started. Each task
//! carries its overrun into its next slice (deficit round-robin), so over
//! k turns every task gets k slices to within one tick, not k slices
//! plus k random ticks: equal shares hold over short windows too.
//!
//! Each CPU has its own FIFO (its local DSQ). A waking task stays on its
//! previous CPU unless another allowed CPU has fewer tasks, a running task
//! is preempted once it has run a full slice and someone is waiting behind
//! it, and a CPU that runs dry steals from the busiest CPU. No global
//! queue: the core's global fallback never fires.

use crate::place::{self, Remembered};
use crate::{Cpu, Ctx, DsqId, MAX_TASKS, Policy, PolicyFields, Slot, TaskInfo};

pub struct Rr {
    /// CPU chosen by `select_cpu` / stopped on, for the next `enqueue`.
    target: Remembered,
    /// Per slot: how far past its slices the task ran (ns, at most one
    /// slice), taken off its next slice.
    overrun: [u32; MAX_TASKS],
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
            overrun: [0; MAX_TASKS],
        }
    }
}

impl Rr {
    fn overrun_of(&self, slot: Slot) -> u64 {
        self.overrun.get(slot as usize).map_or(0, |&o| u64::from(o))
    }

    fn set_overrun(&mut self, slot: Slot, ns: u64) {
        if let Some(o) = self.overrun.get_mut(slot as usize) {
            *o = ns.min(u64::from(u32::MAX)) as u32;
        }
    }
}

impl Policy for Rr {
    fn init_task(&mut self, _ctx: &mut Ctx<'_>, t: &TaskInfo) {
        self.target.take(t.slot);
        self.set_overrun(t.slot, 0);
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

    fn stopping(&mut self, ctx: &mut Ctx<'_>, t: &TaskInfo, cpu: Cpu, ran: u64, runnable: bool) {
        if runnable {
            // Preempted or yielded: it goes back to the end of this CPU's
            // queue, owing what it ran past its slice.
            self.target.set(t.slot, cpu);
            let used = ran.saturating_add(self.overrun_of(t.slot));
            let over = used.saturating_sub(ctx.slice_ns).min(ctx.slice_ns);
            self.set_overrun(t.slot, over);
        } else {
            // Blocked: a new slice when it wakes (no credit banked).
            self.set_overrun(t.slot, 0);
        }
    }

    /// Preempt after a full slice (less what the task overran its last
    /// one), but only if someone is waiting here: preempting a lone task
    /// would just run it again.
    fn tick(&mut self, ctx: &mut Ctx<'_>, t: &TaskInfo, cpu: Cpu, ran_ns: u64) -> bool {
        ran_ns.saturating_add(self.overrun_of(t.slot)) >= ctx.slice_ns
            && !ctx.dsqs.is_empty(DsqId::Local(cpu))
    }

    fn fields(&self, _slot: Slot) -> PolicyFields {
        PolicyFields::default()
    }
}
