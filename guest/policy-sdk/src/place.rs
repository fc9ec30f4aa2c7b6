//! Choosing CPUs: which CPUs a task may use, how loaded a CPU is, where a
//! waking task goes, and which CPU an idle one steals from. What the
//! per-CPU policies (rr, eevdf) and the global-queue ones (fifo, vtime,
//! starve) share, over the core's services.

use crate::{Task, cpu_curr, dsq, idle_mask, nr_cpus, pick_idle_cpu, test_and_clear_cpu_idle};

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
/// lowest number on ties. Keeping `prev` only when it is among the least
/// loaded is what makes N equal tasks settle evenly.
pub fn select_balanced(p: &Task, prev: u32) -> u32 {
    let allowed = allowed(p);
    let idle = idle_mask();
    // (load, busy, cpu): the smallest wins.
    let best = cpus(allowed)
        .map(|c| (load(c), idle & (1u64 << c) == 0, c))
        .min();
    let Some((min_load, _, best)) = best else {
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

/// Work stealing for an idle `cpu`: the most loaded other CPU (the first
/// of equals) whose local queue holds a task allowed on `cpu`. Only a CPU
/// with at least two tasks assigned is robbed, so a task just queued on
/// an idle CPU (about to run it) is left alone.
pub fn steal_from(cpu: u32) -> Option<u32> {
    if cpu >= 64 {
        return None;
    }
    let mut best: Option<(usize, u32)> = None;
    for c in cpus(online() & !(1u64 << cpu)) {
        let l = load(c);
        if l < 2 || best.is_some_and(|(bl, _)| bl >= l) {
            continue;
        }
        if dsq::iter(dsq::local_on(c)).any(|p| may_run(p, cpu)) {
            best = Some((l, c));
        }
    }
    best.map(|(_, c)| c)
}
