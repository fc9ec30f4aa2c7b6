//! `starve` (test-only): global round-robin with a slice that never runs
//! the task whose pid is the policy argument. That task is parked in
//! `Custom(0)`, which the core never takes from, so it stays runnable and
//! queued forever: exactly what the host's "runnable task waited too long"
//! verdict must catch.

use crate::place::{self, Claims};
use crate::{Cpu, Ctx, DsqId, Policy, PolicyFields, Slot, TaskInfo};

/// Where the victim waits.
const PARKED: DsqId = DsqId::Custom(0);

pub struct Starve {
    /// Pid never dispatched.
    victim: u32,
    /// Idle CPUs already chosen for a wake-up (see `select_idle_first`).
    claimed: Claims,
}

impl Starve {
    pub const fn new(victim_pid: u32) -> Self {
        Starve {
            victim: victim_pid,
            claimed: Claims::new(),
        }
    }
}

impl Policy for Starve {
    fn init_task(&mut self, _ctx: &mut Ctx<'_>, _t: &TaskInfo) {}

    fn exit_task(&mut self, ctx: &mut Ctx<'_>, t: &TaskInfo) {
        ctx.dsqs.remove(t.slot);
    }

    fn select_cpu(&mut self, ctx: &mut Ctx<'_>, t: &TaskInfo, prev_cpu: Cpu) -> Cpu {
        place::select_idle_first(ctx, t, prev_cpu, &mut self.claimed)
    }

    fn enqueue(&mut self, ctx: &mut Ctx<'_>, t: &TaskInfo, _flags: u32) {
        let dsq = if t.pid == self.victim {
            PARKED
        } else {
            DsqId::Global
        };
        ctx.dsqs.insert_fifo(dsq, t.slot);
    }

    fn dispatch(&mut self, _ctx: &mut Ctx<'_>, cpu: Cpu) {
        self.claimed.release(cpu);
    }

    fn running(&mut self, _ctx: &mut Ctx<'_>, _t: &TaskInfo, cpu: Cpu) {
        self.claimed.release(cpu);
    }

    fn stopping(&mut self, _: &mut Ctx<'_>, _: &TaskInfo, _: Cpu, _: u64, _: bool) {}

    /// Round-robin through the global queue, one slice each.
    fn tick(&mut self, ctx: &mut Ctx<'_>, _t: &TaskInfo, _cpu: Cpu, ran_ns: u64) -> bool {
        ran_ns >= ctx.slice_ns && !ctx.dsqs.is_empty(DsqId::Global)
    }

    fn fields(&self, _slot: Slot) -> PolicyFields {
        PolicyFields::default()
    }
}
