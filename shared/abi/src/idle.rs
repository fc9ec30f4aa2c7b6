//! sched_ext's idle-CPU selection (`kernel/sched/ext_idle.c`), defined
//! once: the core's `pick_idle_cpu` service and default `select_cpu`, the
//! simulation's services, the SDK's `select_cpu_dfl` and the BPF
//! runtime's `scx_bpf_select_cpu_dfl`/`scx_bpf_pick_idle_cpu` all follow
//! these functions, so a policy sees one behaviour whoever runs it.
//!
//! "Free" CPUs are the idle ones no wake-up has claimed yet (Linux clears a
//! CPU from its idle mask when `scx_idle_test_and_clear_cpu` claims it, and
//! with it the CPU's core from the idle-core mask).

use crate::policy::PICK_IDLE_CORE;
use crate::topology::Topology;

/// CPUs whose whole core is free (every SMT sibling in `free`): Linux's
/// `idle_masks.smt`, what `scx_bpf_get_idle_smtmask` returns.
pub const fn idle_cores(topo: &Topology, free: u64) -> u64 {
    let n = topo.threads_per_core;
    if n <= 1 {
        return free;
    }
    let mut out = 0u64;
    let mut cpu = 0u32;
    while cpu < topo.cpus() && cpu < 64 {
        let core = topo.smt_mask(cpu);
        if free & core == core {
            out |= core;
        }
        cpu += n;
    }
    out
}

/// The CPU `pick_idle_cpu(mask, flags)` claims among the free CPUs: the
/// lowest in `mask`, or with [`PICK_IDLE_CORE`] the lowest in `mask`
/// whose whole core is free (sched_ext's `SCX_PICK_IDLE_CORE`; Linux
/// takes any such CPU, "distributed", schedlab the lowest so runs repeat).
pub const fn pick_idle(topo: &Topology, free: u64, mask: u64, flags: u64) -> Option<u32> {
    let pool = if flags & PICK_IDLE_CORE != 0 {
        idle_cores(topo, free)
    } else {
        free
    };
    let m = pool & mask;
    if m == 0 {
        None
    } else {
        Some(m.trailing_zeros())
    }
}

/// sched_ext's `scx_select_cpu_dfl` for a task allowed on `allowed` that
/// last ran on `prev`, over a `pick(mask, flags)` that claims a free CPU
/// as [`pick_idle`] chooses it (each caller claims in its own state).
/// Returns the CPU and whether an idle one was claimed (`is_idle`).
///
/// The order, as Linux's (wake-sync aside: schedlab passes no wake flags):
/// with SMT, a wholly idle core is better than a partly idle `prev`, so
/// 1. `prev` if its whole core is idle, 2. a wholly idle core in `prev`'s
///    LLC, 3. in its node, 4. anywhere allowed; then (with or without SMT)
/// 5. `prev` if idle, 6. an idle CPU in `prev`'s LLC, 7. in its node,
///    8. anywhere allowed; else 9. `prev` (or, if the task may no longer
///    run there, its lowest allowed CPU), not idle. Linux searches the LLC
///    and node only when the task may run on every CPU; schedlab searches
///    their allowed part, which is the same for such a task.
pub fn select_cpu_dfl(
    topo: &Topology,
    allowed: u64,
    prev: u32,
    mut pick: impl FnMut(u64, u64) -> Option<u32>,
) -> (u32, bool) {
    let prev_bit = if prev < 64 { 1u64 << prev } else { 0 };
    let (llc, node) = if prev < topo.cpus() {
        (topo.llc_mask(prev), topo.node_mask(prev))
    } else {
        (0, 0)
    };
    let scopes = [prev_bit, llc, node, u64::MAX];
    let passes: &[u64] = if topo.threads_per_core > 1 {
        &[PICK_IDLE_CORE, 0]
    } else {
        &[0]
    };
    for &flags in passes {
        for scope in scopes {
            let m = scope & allowed;
            if m != 0
                && let Some(cpu) = pick(m, flags)
            {
                return (cpu, true);
            }
        }
    }
    if allowed & prev_bit != 0 || allowed == 0 {
        (prev, false)
    } else {
        (allowed.trailing_zeros(), false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 1 socket, 2 LLCs, 2 cores each, 2 threads: CPUs 0-3 LLC 0 (cores
    /// {0,1}, {2,3}), 4-7 LLC 1 (cores {4,5}, {6,7}).
    const T: Topology = Topology {
        sockets: 1,
        llcs_per_socket: 2,
        cores_per_llc: 2,
        threads_per_core: 2,
    };

    /// Run the selection over a free mask, claiming as the core does.
    fn select(topo: &Topology, free: &mut u64, allowed: u64, prev: u32) -> (u32, bool) {
        select_cpu_dfl(topo, allowed, prev, |m, f| {
            let c = pick_idle(topo, *free, m, f)?;
            *free &= !(1 << c);
            Some(c)
        })
    }

    #[test]
    fn idle_cores_are_the_wholly_free_ones() {
        assert_eq!(idle_cores(&T, 0b1011_0111), 0b0011_0011);
        assert_eq!(idle_cores(&Topology::flat(4), 0b0101), 0b0101);
        assert_eq!(
            pick_idle(&T, 0b1011_0111, 0b1111_0100, PICK_IDLE_CORE),
            Some(4)
        );
        assert_eq!(pick_idle(&T, 0b1011_0111, 0b1111_0100, 0), Some(2));
        assert_eq!(
            pick_idle(&T, 0b0000_0111, 0b1111_0100, PICK_IDLE_CORE),
            None
        );
    }

    #[test]
    fn a_wholly_idle_core_beats_an_idle_prev_whose_sibling_is_busy() {
        // CPU 3's sibling 2 is busy; core {0,1} is wholly idle.
        let mut free = 0b1111_1011;
        assert_eq!(select(&T, &mut free, 0xff, 3), (0, true));
        // prev's own core wholly idle: prev.
        let mut free = 0xff;
        assert_eq!(select(&T, &mut free, 0xff, 5), (5, true));
    }

    #[test]
    fn idle_cores_in_prev_llc_come_before_other_llcs() {
        // Busy: 0 and 5. Wholly idle cores: {2,3} (LLC 0), {6,7} (LLC 1).
        let mut free = 0b1101_1110;
        assert_eq!(select(&T, &mut free, 0xff, 4), (6, true));
        assert_eq!(select(&T, &mut free, 0xff, 1), (2, true));
        // The claims took both cores: now a partly idle one, prev first.
        assert_eq!(free, 0b1001_1010);
        assert_eq!(select(&T, &mut free, 0xff, 4), (4, true));
        assert_eq!(select(&T, &mut free, 0xff, 0), (1, true));
        assert_eq!(select(&T, &mut free, 0xff, 0), (3, true));
        assert_eq!(select(&T, &mut free, 0xff, 0), (7, true));
        assert_eq!(free, 0);
        // Nothing idle: prev, not idle; a disallowed prev gives the first
        // allowed CPU.
        assert_eq!(select(&T, &mut free, 0xff, 2), (2, false));
        assert_eq!(select(&T, &mut free, 0b1100_0000, 2), (6, false));
    }

    #[test]
    fn four_wakeups_take_four_cores() {
        let mut free = 0xff;
        let mut cores = 0u64;
        for _ in 0..4 {
            let (c, idle) = select(&T, &mut free, 0xff, 0);
            assert!(idle);
            cores |= 1 << T.core_of(c);
        }
        assert_eq!(cores, 0b1111, "one task per core");
    }

    #[test]
    fn without_smt_prev_then_its_llc_then_anywhere() {
        let flat2 = Topology {
            sockets: 1,
            llcs_per_socket: 2,
            cores_per_llc: 2,
            threads_per_core: 1,
        };
        let mut free = 0b1011;
        assert_eq!(select(&flat2, &mut free, 0xf, 3), (3, true));
        assert_eq!(select(&flat2, &mut free, 0xf, 2), (0, true));
        assert_eq!(select(&flat2, &mut free, 0xf, 2), (1, true));
        assert_eq!(select(&flat2, &mut free, 0xf, 2), (2, false));
        // Allowed only on CPU 1: prev's LLC is not searched outside it.
        let mut free = 0b1111;
        assert_eq!(select(&flat2, &mut free, 0b0010, 3), (1, true));
    }
}
