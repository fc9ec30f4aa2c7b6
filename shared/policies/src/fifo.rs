//! `fifo`: one global FIFO queue; a task runs until it blocks or yields
//! (the tick never preempts). Like SCHED_FIFO at one priority: a task that
//! was preempted anyway goes back to the head, a yielding one to the tail.

use crate::place::{self, Claims};
use crate::{Cpu, Ctx, DsqId, ENQ_PREEMPTED, ENQ_YIELD, Policy, PolicyFields, Slot, TaskInfo};

#[derive(Default)]
pub struct Fifo {
    /// Idle CPUs already chosen for a wake-up (see `select_idle_first`).
    claimed: Claims,
}

impl Fifo {
    pub const fn new() -> Self {
        Fifo {
            claimed: Claims::new(),
        }
    }
}

impl Policy for Fifo {
    fn init_task(&mut self, _ctx: &mut Ctx<'_>, _t: &TaskInfo) {}

    fn exit_task(&mut self, ctx: &mut Ctx<'_>, t: &TaskInfo) {
        ctx.dsqs.remove(t.slot);
    }

    /// The queue is global, so the choice only decides which CPU the core
    /// kicks: an idle one if the task may run there.
    fn select_cpu(&mut self, ctx: &mut Ctx<'_>, t: &TaskInfo, prev_cpu: Cpu) -> Cpu {
        place::select_idle_first(ctx, t, prev_cpu, &mut self.claimed)
    }

    fn enqueue(&mut self, ctx: &mut Ctx<'_>, t: &TaskInfo, flags: u32) {
        if flags & ENQ_PREEMPTED != 0 && flags & ENQ_YIELD == 0 {
            ctx.dsqs.insert_head(DsqId::Global, t.slot);
        } else {
            ctx.dsqs.insert_fifo(DsqId::Global, t.slot);
        }
    }

    fn dispatch(&mut self, _ctx: &mut Ctx<'_>, cpu: Cpu) {
        self.claimed.release(cpu);
    }

    fn running(&mut self, _ctx: &mut Ctx<'_>, _t: &TaskInfo, cpu: Cpu) {
        self.claimed.release(cpu);
    }

    fn stopping(&mut self, _: &mut Ctx<'_>, _: &TaskInfo, _: Cpu, _: u64, _: bool) {}

    fn tick(&mut self, _ctx: &mut Ctx<'_>, _t: &TaskInfo, _cpu: Cpu, _ran_ns: u64) -> bool {
        false
    }

    fn fields(&self, _slot: Slot) -> PolicyFields {
        PolicyFields::default()
    }
}
