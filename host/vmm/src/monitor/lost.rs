//! Time the host took from each CPU, as the guest proved it, so a task's
//! wait is allowed beyond `--max-wait` by what the host took while it
//! waited -- all of it, not only the longest single stall.
//!
//! Each CPU counts in `CpuRecord::live_tsc` the gaps between its timer
//! stamps (`irq_tsc`) of at most two tick periods: time it was running
//! and hearing its tick. Everything else between two stamps is time the
//! host did not run the vCPU or delivered its timer late. So `irq_tsc -
//! live_tsc` only grows, by exactly the time lost, and the loss over any
//! stretch is its growth over that stretch. The tracker keeps the points
//! where it grew (stalls are rare, so they are few) and answers "how much
//! did the CPU lose since guest TSC t" with one search. A loaded host once
//! froze a vCPU 58 ms and then again, and a task waiting across both was
//! called starved against an allowance of only the longest (see
//! `monitor::scan_tasks`).

use std::collections::VecDeque;

/// Growth points kept per CPU; older ones are dropped, and a wait that
/// began before the oldest kept point is allowed everything since the
/// first look (generous, never a false alarm).
const MAX_MARKS: usize = 4096;

#[derive(Debug, Default, Clone)]
struct CpuLost {
    /// `irq_tsc - live_tsc` at the first look: what the CPU lost before
    /// the monitor started, not counted.
    base: Option<u64>,
    /// (timer stamp, lost so far) at each growth, in stamp order.
    marks: VecDeque<(u64, u64)>,
    /// The latest timer stamp seen.
    last_irq: u64,
}

impl CpuLost {
    fn lost(&self) -> u64 {
        self.marks.back().map_or(0, |m| m.1)
    }

    /// Lost as of timer stamp `t` (the last growth at or before it).
    fn lost_at(&self, t: u64) -> u64 {
        let i = self.marks.partition_point(|m| m.0 <= t);
        match i {
            0 => 0,
            i => self.marks[i - 1].1,
        }
    }
}

/// Per-CPU lost time (see the module docs).
#[derive(Debug, Clone)]
pub struct LostTime {
    cpus: Vec<CpuLost>,
    /// Two tick periods in TSC ticks: a gap longer than that since the
    /// last stamp is a stall still going on.
    stall_ticks: u64,
}

impl LostTime {
    pub fn new(cpus: u32, tick_ticks: u64) -> Self {
        LostTime {
            cpus: vec![CpuLost::default(); cpus as usize],
            stall_ticks: tick_ticks.saturating_mul(2),
        }
    }

    /// A read of CPU `cpu`'s record: its timer stamp and live time. Guest
    /// words: torn or garbage pairs never shrink what was lost.
    pub fn observe(&mut self, cpu: u32, irq_tsc: u64, live_tsc: u64) {
        let Some(c) = self.cpus.get_mut(cpu as usize) else {
            return;
        };
        let raw = irq_tsc.saturating_sub(live_tsc);
        let base = *c.base.get_or_insert(raw);
        let lost = raw.saturating_sub(base);
        if lost > c.lost() && irq_tsc >= c.last_irq {
            if c.marks.len() == MAX_MARKS {
                c.marks.pop_front();
            }
            c.marks.push_back((irq_tsc, lost));
        }
        c.last_irq = c.last_irq.max(irq_tsc);
    }

    /// The most any CPU lost between guest TSC `since` and `now`, in TSC
    /// ticks: its losses since then, plus a stall going on now (no stamp
    /// for over two tick periods).
    pub fn since(&self, since: u64, now: u64) -> u64 {
        self.cpus
            .iter()
            .filter(|c| c.base.is_some())
            .map(|c| {
                let ongoing = now.saturating_sub(c.last_irq);
                let ongoing = if ongoing > self.stall_ticks {
                    ongoing
                } else {
                    0
                };
                c.lost().saturating_sub(c.lost_at(since)) + ongoing
            })
            .max()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TICK: u64 = 1_000;

    #[test]
    fn every_stall_during_a_wait_counts_not_only_the_longest() {
        let mut l = LostTime::new(2, TICK);
        // CPU 0 lost 500 before the monitor looked: not counted.
        l.observe(0, 10_000, 9_500);
        l.observe(1, 10_000, 10_000);
        // A stall of 58_000 ends at 70_000, one of 40_000 at 121_000.
        l.observe(0, 70_000, 11_500);
        l.observe(0, 121_000, 22_500);
        l.observe(1, 121_000, 121_000);
        assert_eq!(l.since(5_000, 121_000), 58_000 + 40_000);
        assert_eq!(l.since(80_000, 121_000), 40_000, "only what came after");
        assert_eq!(l.since(121_000, 121_500), 0);
        // No stamp for 30_000: a stall going on now counts.
        assert_eq!(l.since(121_000, 151_000), 30_000);
        assert_eq!(l.since(0, 151_000), 98_000 + 30_000);
    }

    #[test]
    fn torn_garbage_and_foreign_cpus_never_shrink_or_panic() {
        let mut l = LostTime::new(1, TICK);
        l.observe(0, 1_000, 0);
        l.observe(0, 5_000, 1_000);
        assert_eq!(l.since(0, 5_000), 3_000);
        // A live count ahead of the stamp (torn), a stamp going back.
        l.observe(0, 6_000, u64::MAX);
        l.observe(0, 2_000, 0);
        assert_eq!(l.since(0, 6_000), 3_000);
        l.observe(7, u64::MAX, 0);
        assert_eq!(l.since(u64::MAX, 0), 0);
        assert_eq!(LostTime::new(0, TICK).since(0, u64::MAX), 0);
    }

    #[test]
    fn old_growth_points_are_dropped_generously() {
        let mut l = LostTime::new(1, 0);
        l.observe(0, 0, 0);
        for i in 1..=(MAX_MARKS as u64 + 10) {
            l.observe(0, i * 10, i * 10 - i);
        }
        let n = MAX_MARKS as u64 + 10;
        // Since stamp 50 the CPU lost n - 5; the dropped points make the
        // answer all of it since the first look instead, never less.
        assert!(l.since(50, n * 10) >= n - 5);
    }
}
