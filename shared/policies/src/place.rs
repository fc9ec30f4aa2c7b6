//! What several policies share: choosing a CPU for a waking task, stealing
//! work for an idle CPU, remembering the CPU chosen for a task, and
//! tracking what runs where.

use crate::{Cpu, CpuSet, Ctx, DsqId, Slot, TaskInfo};
use abi::memmap::{MAX_CPUS, MAX_TASKS};

/// CPUs `0..nr_cpus`.
pub(crate) fn online(ctx: &Ctx<'_>) -> CpuSet {
    CpuSet::all(ctx.nr_cpus.min(MAX_CPUS as u32))
}

/// Where `t` may run: its affinity within the online CPUs. The core
/// promises that is never empty; if it were, the raw affinity is the
/// better guess.
pub(crate) fn allowed(ctx: &Ctx<'_>, t: &TaskInfo) -> CpuSet {
    let a = t.affinity.and(online(ctx));
    if a.is_empty() { t.affinity } else { a }
}

/// Whether the task in `slot` may run on `cpu` (false for a slot the core
/// did not pass).
pub(crate) fn slot_allowed(ctx: &Ctx<'_>, slot: Slot, cpu: Cpu) -> bool {
    ctx.tasks
        .get(slot as usize)
        .is_some_and(|t| t.affinity.contains(cpu))
}

/// Tasks assigned to `cpu`: queued in its local DSQ plus the running one.
pub(crate) fn load(ctx: &Ctx<'_>, cpu: Cpu) -> usize {
    let running = ctx.running.get(cpu as usize).is_some_and(|r| r.is_some());
    ctx.dsqs.len(DsqId::Local(cpu)) + usize::from(running)
}

/// Placement for the per-CPU policies (rr, vtime, eevdf): keep `prev` if it
/// is allowed and no allowed CPU has fewer tasks assigned (cache warmth is
/// worth as much as a tie), else the allowed CPU with the fewest tasks,
/// idle ones first, lowest number on ties. Keeping `prev` only when it is
/// among the least loaded is what makes N equal tasks settle evenly.
pub(crate) fn select_balanced(ctx: &Ctx<'_>, t: &TaskInfo, prev: Cpu) -> Cpu {
    let allowed = allowed(ctx, t);
    // (load, busy, cpu): the smallest wins.
    let best = allowed
        .iter()
        .map(|c| (load(ctx, c), !ctx.idle.contains(c), c))
        .min();
    let Some((min_load, _, best)) = best else {
        return prev;
    };
    if allowed.contains(prev) && load(ctx, prev) <= min_load {
        prev
    } else {
        best
    }
}

/// Placement for the global-queue policies (fifo, starve): the CPU to kick
/// matters, not where the task is queued, so pick an idle allowed CPU
/// (`prev` first) that no other wake-up has claimed yet, else `prev` if
/// allowed, else the first allowed one. An idle CPU chosen is added to
/// `claimed` until it picks up work ([`Claims`]), so that wake-ups in a row
/// (before any kicked CPU has run) spread over the idle CPUs instead of all
/// kicking the same one.
pub(crate) fn select_idle_first(
    ctx: &Ctx<'_>,
    t: &TaskInfo,
    prev: Cpu,
    claimed: &mut Claims,
) -> Cpu {
    let allowed = allowed(ctx, t);
    let idle = allowed.and(ctx.idle).and(CpuSet(!claimed.0));
    let cpu = if idle.contains(prev) {
        prev
    } else if let Some(c) = idle.first() {
        c
    } else if allowed.contains(prev) {
        prev
    } else {
        allowed.first().unwrap_or(prev)
    };
    if idle.contains(cpu) {
        claimed.0 |= CpuSet::single(cpu).0;
    }
    cpu
}

/// Idle CPUs a wake-up has been sent to that have not looked for work yet.
#[derive(Default)]
pub(crate) struct Claims(u64);

impl Claims {
    pub(crate) const fn new() -> Self {
        Claims(0)
    }

    /// `cpu` is looking for work (`dispatch`) or got some (`running`).
    pub(crate) fn release(&mut self, cpu: Cpu) {
        self.0 &= !CpuSet::single(cpu).0;
    }
}

/// The CPU to queue `t` on: `want` if allowed, else the CPU the core says
/// it is on if allowed, else its first allowed CPU.
pub(crate) fn resolve_target(ctx: &Ctx<'_>, t: &TaskInfo, want: Option<Cpu>) -> Cpu {
    let allowed = allowed(ctx, t);
    match want {
        Some(c) if allowed.contains(c) => c,
        _ if allowed.contains(t.cpu) => t.cpu,
        _ => allowed.first().unwrap_or(t.cpu),
    }
}

/// Work stealing for an idle `cpu`: take the first task allowed on `cpu`
/// from the local queue of the most loaded other CPU that has one. A CPU
/// is only robbed if it has at least two tasks assigned, so a task just
/// queued on an idle CPU (which is about to run it) is left alone.
/// Returns the task (now in no DSQ) and the CPU it came from.
pub(crate) fn steal(ctx: &mut Ctx<'_>, cpu: Cpu) -> Option<(Slot, Cpu)> {
    if cpu as usize >= MAX_CPUS {
        return None;
    }
    let mut best: Option<(usize, Cpu)> = None;
    for c in online(ctx).without(cpu) {
        let l = load(ctx, c);
        if l < 2 || best.is_some_and(|(bl, _)| bl >= l) {
            continue;
        }
        if ctx
            .dsqs
            .iter(DsqId::Local(c))
            .any(|s| slot_allowed(ctx, s, cpu))
        {
            best = Some((l, c));
        }
    }
    let (_, from) = best?;
    let tasks = ctx.tasks;
    let s = ctx.dsqs.pop_first_where(DsqId::Local(from), |s| {
        tasks
            .get(s as usize)
            .is_some_and(|t| t.affinity.contains(cpu))
    })?;
    Some((s, from))
}

/// Per slot, a remembered CPU (`cpu + 1`, 0 = none): the one `select_cpu`
/// chose, or the one the task was preempted on, consumed by the next
/// `enqueue`. This keeps the built-ins correct whether or not the core
/// updates `TaskInfo::cpu` in between.
pub(crate) struct Remembered([u8; MAX_TASKS]);

const _: () = assert!(MAX_CPUS < u8::MAX as usize);

impl Remembered {
    pub(crate) const fn new() -> Self {
        Remembered([0; MAX_TASKS])
    }

    pub(crate) fn set(&mut self, slot: Slot, cpu: Cpu) {
        if let Some(e) = self.0.get_mut(slot as usize) {
            *e = if (cpu as usize) < MAX_CPUS {
                cpu as u8 + 1
            } else {
                0
            };
        }
    }

    pub(crate) fn take(&mut self, slot: Slot) -> Option<Cpu> {
        let e = self.0.get_mut(slot as usize)?;
        let v = core::mem::take(e);
        (v != 0).then(|| u32::from(v) - 1)
    }
}

/// Per CPU: the running task (`slot + 1`, 0 = none), when it started and
/// how much of its run has been charged so far, so that virtual time can
/// be brought up to date at any callback, not only at `tick`/`stopping`.
pub(crate) struct Curr {
    slot: [u16; MAX_CPUS],
    start_ns: [u64; MAX_CPUS],
    charged_ns: [u64; MAX_CPUS],
}

impl Curr {
    pub(crate) const fn new() -> Self {
        Curr {
            slot: [0; MAX_CPUS],
            start_ns: [0; MAX_CPUS],
            charged_ns: [0; MAX_CPUS],
        }
    }

    pub(crate) fn get(&self, cpu: Cpu) -> Option<Slot> {
        match self.slot.get(cpu as usize) {
            Some(&s) if s != 0 => Some(s - 1),
            _ => None,
        }
    }

    pub(crate) fn set(&mut self, cpu: Cpu, slot: Slot, now_ns: u64) {
        let c = cpu as usize;
        if c < MAX_CPUS {
            self.slot[c] = slot + 1;
            self.start_ns[c] = now_ns;
            self.charged_ns[c] = 0;
        }
    }

    pub(crate) fn clear(&mut self, cpu: Cpu) {
        if let Some(s) = self.slot.get_mut(cpu as usize) {
            *s = 0;
        }
    }

    /// The CPU `slot` is running on, if any.
    pub(crate) fn cpu_of(&self, slot: Slot) -> Option<Cpu> {
        self.slot
            .iter()
            .position(|&s| s == slot + 1)
            .map(|c| c as Cpu)
    }

    /// Time run since `running` per `now_ns`, for callbacks that get no
    /// `ran_ns`.
    pub(crate) fn ran_at(&self, cpu: Cpu, now_ns: u64) -> u64 {
        self.start_ns
            .get(cpu as usize)
            .map_or(0, |&s| now_ns.saturating_sub(s))
    }

    /// Charge the run up to `ran_ns`; returns the time not charged before.
    pub(crate) fn charge(&mut self, cpu: Cpu, ran_ns: u64) -> u64 {
        let Some(c) = self.charged_ns.get_mut(cpu as usize) else {
            return 0;
        };
        let d = ran_ns.saturating_sub(*c);
        *c = (*c).max(ran_ns);
        d
    }
}
