//! How long a CPU went without hearing its timer: time the host did not
//! run the vCPU or deliver its tick, which the guest lost too and which
//! the host's run-queue accounting does not show (on this PVM host: ticks
//! to a halted vCPU 11-21 ms late, busy vCPUs frozen for 6-107 ms with no
//! run-queue wait). A wait check is only a policy's fault beyond it.
//!
//! Two views, the larger wins:
//! - the host's: how far a CPU's last timer stamp (`irq_tsc`, stamped even
//!   when the scheduler must defer the tick, or `clock_tsc` at an idle
//!   wake-up) lagged behind a sample (idle CPUs and CPUs running a task;
//!   not one still booting);
//! - the guest's: `max_irq_gap`, when it grew after the CPU's first sample
//!   -- it sees a freeze that stopped the host's monitor too.
//!
//! Policy code cannot hold either back: it runs with interrupts on, and a
//! tick that lands inside it is still stamped. One tracker serves the
//! live monitor (sample by sample) and the judge (over a window's
//! samples), so both excuse the same thing.

use crate::CpuSample;

/// The longest lag seen so far, in TSC ticks.
#[derive(Debug, Clone, Default)]
pub struct ClockLag {
    sampled: u64,
    /// Per CPU: the guest's longest gap at its first sample and since.
    gaps: Vec<Option<(u64, u64)>>,
}

impl ClockLag {
    /// Take one sample; `now` is its time in guest TSC (a live sample's
    /// host time converted; a stored sample's `tsc`).
    pub fn observe(&mut self, s: &CpuSample, now: u64) {
        if s.idle || s.current_pid != 0 {
            self.sampled = self
                .sampled
                .max(now.saturating_sub(s.clock_tsc.max(s.irq_tsc)));
        }
        let i = s.cpu as usize;
        // Bounded by the run's CPU count (a CpuSample's cpu is the
        // monitor's own loop index, never the guest's word).
        if self.gaps.len() <= i {
            self.gaps.resize(i + 1, None);
        }
        let g = self.gaps[i].get_or_insert((s.max_irq_gap, s.max_irq_gap));
        g.1 = g.1.max(s.max_irq_gap);
    }

    /// The longest lag seen, in TSC ticks.
    pub fn ticks(&self) -> u64 {
        let grew = self
            .gaps
            .iter()
            .flatten()
            .filter(|(first, last)| last > first)
            .map(|&(_, last)| last)
            .max()
            .unwrap_or(0);
        self.sampled.max(grew)
    }

    /// Over stored samples (each at its own `tsc`, in time order).
    pub fn of(samples: &[CpuSample]) -> ClockLag {
        let mut l = ClockLag::default();
        for s in samples {
            l.observe(s, s.tsc);
        }
        l
    }
}
