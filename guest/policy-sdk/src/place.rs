//! Choosing CPUs: which CPUs a task may use, how loaded a CPU is, where a
//! waking task goes, and which CPU an idle one steals from. What the
//! per-CPU policies (rr, eevdf) and the global-queue ones (fifo, vtime,
//! starve) share, over the core's services.

use crate::{
    Task, cpu_curr, dsq, idle_mask, nr_cpus, pick_idle_cpu, test_and_clear_cpu_idle, topology,
};
use abi::topology::Topology;

/// CPUs `0..nr_cpus` (bit n = CPU n).
pub fn online() -> u64 {
    match nr_cpus() {
        n if n >= 64 => u64::MAX,
        n => (1u64 << n) - 1,
    }
}

/// Whether `p` may run on `cpu`.
pub fn may_run(p: &Task, cpu: u32) -> bool {
    cpu < 64 && p.cpus_allowed & (1u64 << cpu) != 0
}

/// Where `p` may run: its CPUs within the online ones. The core promises
/// that is never empty; if it were, the raw mask is the better guess.
pub fn allowed(p: &Task) -> u64 {
    match p.cpus_allowed & online() {
        0 => p.cpus_allowed,
        a => a,
    }
}

/// The CPUs of a mask in ascending order.
pub fn cpus(mask: u64) -> impl Iterator<Item = u32> {
    let mut m = mask;
    core::iter::from_fn(move || {
        (m != 0).then(|| {
            let c = m.trailing_zeros();
            m &= m - 1;
            c
        })
    })
}

/// Tasks assigned to `cpu`: queued in its local queue plus the running one.
pub fn load(cpu: u32) -> usize {
    dsq::nr_queued(dsq::local_on(cpu)) + usize::from(cpu_curr(cpu).is_some())
}

/// Placement for per-CPU queues: keep `prev` if it is allowed and no
/// allowed CPU has fewer tasks assigned (cache warmth is worth as much as
/// a tie), else the allowed CPU with the fewest tasks, idle ones first,
/// then one sharing `prev`'s LLC (its cache may still hold the task's
/// data, as Linux's `select_idle_sibling` looks there first), lowest
/// number on ties. Keeping `prev` only when it is among the least loaded
/// is what makes N equal tasks settle evenly.
pub fn select_balanced(p: &Task, prev: u32) -> u32 {
    let allowed = allowed(p);
    let idle = idle_mask();
    let llc = if prev < 64 { topo().llc_mask(prev) } else { 0 };
    // (load, busy, other LLC, cpu): the smallest wins.
    let best = cpus(allowed)
        .map(|c| {
            let bit = 1u64 << c;
            (load(c), idle & bit == 0, llc & bit == 0, c)
        })
        .min();
    let Some((min_load, _, _, best)) = best else {
        return prev;
    };
    if prev < 64 && allowed & (1u64 << prev) != 0 && load(prev) <= min_load {
        prev
    } else {
        best
    }
}

/// Placement for a shared queue, where only the CPU to wake matters: an
/// idle allowed CPU no other wake-up has claimed (`prev` first), else
/// `prev` if allowed, else the first allowed CPU. The core forgets a
/// claim when the CPU looks for work, so wake-ups in a row spread over
/// the idle CPUs instead of all waking the same one.
pub fn select_idle_first(p: &Task, prev: u32) -> u32 {
    let allowed = allowed(p);
    let prev_ok = prev < 64 && allowed & (1u64 << prev) != 0;
    if prev_ok && test_and_clear_cpu_idle(prev) {
        return prev;
    }
    if let Some(c) = pick_idle_cpu(allowed) {
        return c;
    }
    if prev_ok {
        prev
    } else {
        cpus(allowed).next().unwrap_or(prev)
    }
}

/// The CPU to queue `p` on: the one the core says it is on (what
/// `select_cpu` chose, or where it last ran) if allowed, else its first
/// allowed CPU.
pub fn target_cpu(p: &Task) -> u32 {
    if may_run(p, p.cpu) {
        p.cpu
    } else {
        cpus(allowed(p)).next().unwrap_or(p.cpu)
    }
}

/// A level of the machine's topology, as Linux's scheduling domains
/// (SMT, MC, NUMA...): balancing at a level moves load between its
/// groups, the next level down's domains.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// A core's SMT siblings; its groups are single CPUs.
    Smt,
    /// The cores sharing a last-level cache; its groups are cores.
    Llc,
    /// A socket (NUMA node); its groups are LLCs: a move here leaves the
    /// task's cache.
    Node,
    /// The whole machine; its groups are nodes.
    Machine,
}

impl Level {
    /// Linux's `imbalance_pct` for the level: how much busier (per CPU, in
    /// percent) a group must be than the local one before a periodic
    /// balance pulls from it. Inside an LLC a move costs little (the cache
    /// is shared), so 110 % as Linux's SMT domains (its MC domains use
    /// 117); a move to another LLC loses the task's cache, so 117 %
    /// between LLCs (Linux's default `sd_init` value) and 125 % between
    /// nodes (Linux's NUMA value before 5.x, which also pays for remote
    /// memory). With task counts, the "never make the pulling group the
    /// busier one" rule ([`pull_from`]) decides small imbalances; the
    /// percentage decides large ones, where one task more or less is
    /// within the tolerance.
    pub const fn imbalance_pct(self) -> u64 {
        match self {
            Level::Smt | Level::Llc => 110,
            Level::Node => 117,
            Level::Machine => 125,
        }
    }

    /// Whether a move between two groups of this level leaves an LLC.
    pub const fn crosses_llc(self) -> bool {
        matches!(self, Level::Node | Level::Machine)
    }

    /// The group of this level's domain that holds `cpu`.
    fn group_of(self, t: &Topology, cpu: u32) -> u64 {
        match self {
            Level::Smt => 1u64 << cpu,
            Level::Llc => t.smt_mask(cpu),
            Level::Node => t.llc_mask(cpu),
            Level::Machine => t.node_mask(cpu),
        }
    }
}

/// The run's topology, or a flat one if the services' does not match the
/// CPU count (it always does from this core; a guess beats a panic).
pub fn topo() -> Topology {
    let t = topology();
    if t.is_valid() && t.cpus() == nr_cpus() {
        t
    } else {
        Topology::flat(nr_cpus())
    }
}

/// `cpu`'s scheduling domains, innermost first: its SMT siblings, its
/// LLC, its node, the machine, each as (level, CPUs); a level that spans
/// no more than the one below it is left out (no SMT: no SMT level; one
/// LLC per node: no node level).
pub fn domains(cpu: u32) -> impl Iterator<Item = (Level, u64)> {
    let t = topo();
    let on = online();
    let c = cpu.min(63);
    let spans = [
        (Level::Smt, t.smt_mask(c)),
        (Level::Llc, t.llc_mask(c)),
        (Level::Node, t.node_mask(c)),
        (Level::Machine, t.all_mask()),
    ];
    let mut below = 1u64 << c;
    spans.into_iter().filter_map(move |(l, span)| {
        let span = span & on;
        (span != below && span & !below != 0).then(|| {
            below = span;
            (l, span)
        })
    })
}

/// For a task `p` alone on its CPU, the CPU to make way for (the rotation
/// that lets loads that do not divide share fairly): the busiest CPU
/// (first of equals) `p` may run on, of the innermost domain that has
/// one, whose queue holds a task that may run on `p`'s CPU and is behind
/// `p` by more than `margin` -- one slice, two if the CPU is in another
/// LLC (a move there costs the task its cache). `behind(q, margin)` says
/// what behind means to the policy (CPU time, or CPU time per weight).
pub fn behind_elsewhere(p: &Task, behind: impl Fn(&Task, u64) -> bool) -> Option<u32> {
    let slice = crate::slice_dfl_ns();
    let allowed = allowed(p);
    let mut seen = 1u64 << p.cpu.min(63);
    for (level, span) in domains(p.cpu) {
        let margin = if level.crosses_llc() {
            2 * slice
        } else {
            slice
        };
        let mut best: Option<(usize, u32)> = None;
        for c in cpus(span & allowed & !seen) {
            let waiting =
                dsq::iter(dsq::local_on(c)).any(|q| may_run(q, p.cpu) && behind(q, margin));
            let l = load(c);
            if waiting && best.is_none_or(|(bl, _)| l > bl) {
                best = Some((l, c));
            }
        }
        if let Some((_, c)) = best {
            return Some(c);
        }
        seen |= span;
    }
    None
}

/// Whether `a` and `b` share a last-level cache.
pub fn same_llc(a: u32, b: u32) -> bool {
    let t = topo();
    a < 64 && t.llc_mask(a) & (1u64 << b.min(63)) != 0
}

/// Work stealing for an idle `cpu` (Linux's newly-idle balance): the
/// most loaded CPU (the first of equals) whose local queue holds a task
/// allowed on `cpu`, searched domain by domain -- its SMT siblings, then
/// its LLC, then its node, then everything -- so a task stays in its
/// cache when a CPU there can take it. Only a CPU with at least two tasks
/// assigned is robbed, so a task just queued on an idle CPU (about to run
/// it) is left alone.
pub fn steal_from(cpu: u32) -> Option<u32> {
    if cpu >= 64 {
        return None;
    }
    let mut seen = 1u64 << cpu;
    for (_, span) in domains(cpu) {
        let mut best: Option<(usize, u32)> = None;
        for c in cpus(span & !seen) {
            let l = load(c);
            if l < 2 || best.is_some_and(|(bl, _)| bl >= l) {
                continue;
            }
            if dsq::iter(dsq::local_on(c)).any(|p| may_run(p, cpu)) {
                best = Some((l, c));
            }
        }
        if let Some((_, c)) = best {
            return Some(c);
        }
        seen |= span;
    }
    None
}

/// Periodic balancing for `cpu` (Linux's `load_balance`, walked up the
/// domains innermost first): at each level the busiest group (by `load`
/// per CPU: `weigh(c)` is CPU c's load as the policy measures it) is
/// compared with `cpu`'s own group; `cpu` pulls from it when
/// it is busier by more than the level's [`Level::imbalance_pct`] and
/// moving the task would not make `cpu`'s group the busier one (which is
/// what stops a task bouncing back and forth). The CPU pulled from is the
/// busiest of that group (by `weigh`) with at least two tasks assigned and a queued
/// task `cpu` may run; `movable(c)` says what that task weighs in `load`
/// (None: nothing to move from `c`). Returns that CPU and the level.
///
/// The percentage grows with the level, so a move across LLCs needs a
/// larger imbalance than one inside an LLC (the migration cost of a cold
/// cache), and levels are tried innermost first, so an imbalance is fixed
/// inside an LLC when it can be.
pub fn pull_from(
    cpu: u32,
    weigh: impl Fn(u32) -> u64,
    movable: impl Fn(u32) -> Option<u64>,
) -> Option<(u32, Level)> {
    if cpu >= 64 {
        return None;
    }
    let t = topo();
    let on = online();
    for (level, span) in domains(cpu) {
        let local = level.group_of(&t, cpu) & on;
        let group_load = |g: u64| (cpus(g).map(&weigh).sum::<u64>(), u64::from(g.count_ones()));
        let (tot_l, n_l) = group_load(local);
        // The busiest other group: the highest load per CPU.
        let mut seen = local;
        let mut busiest: Option<(u64, u64, u64)> = None;
        for c in cpus(span & !local) {
            if seen & (1u64 << c) != 0 {
                continue;
            }
            let g = level.group_of(&t, c) & span;
            seen |= g;
            let (tot, n) = group_load(g);
            if busiest.is_none_or(|(bt, bn, _)| tot * bn > bt * n) {
                busiest = Some((tot, n, g));
            }
        }
        let Some((tot_b, n_b, g)) = busiest else {
            continue;
        };
        if tot_b * n_l * 100 <= tot_l * n_b * level.imbalance_pct() {
            continue;
        }
        // The busiest CPU of that group with something to move.
        let mut from: Option<(u64, u32, u64)> = None;
        for c in cpus(g) {
            let l = weigh(c);
            if load(c) < 2 || from.is_some_and(|(fl, _, _)| fl >= l) {
                continue;
            }
            if let Some(w) = movable(c) {
                from = Some((l, c, w));
            }
        }
        let Some((_, c, w)) = from else {
            continue;
        };
        // After the move the local group must not be the busier one.
        if (tot_l + w) * n_b <= tot_b.saturating_sub(w) * n_l {
            return Some((c, level));
        }
    }
    None
}
