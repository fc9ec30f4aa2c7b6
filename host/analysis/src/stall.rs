//! Stall detection from host samples.
//!
//! Each CPU stamps `clock_tsc` in its record at every tick, switch and
//! idle wake-up, and idle CPUs are woken by their LAPIC tick too, so a
//! healthy CPU's clock always moves. If the host keeps sampling a CPU and
//! its clock stays put for longer than the threshold, the CPU is wedged
//! (interrupts off in a spin, a deadlock, a fault loop) whatever it
//! claims to be doing. The stall is timed with the samples' own
//! timestamps, from the first sample that saw the frozen value, so a
//! `clock_tsc` in a different time base or a CPU that never ticked
//! before the first sample cannot produce a false stall.

use crate::{CpuSample, Stall, ticks_to_ns};

#[derive(Clone, Copy, Debug, Default)]
struct Watch {
    /// The clock value seen, and the sample TSC when it was first seen.
    clock: Option<u64>,
    since: u64,
    last_sample: u64,
    pid: u32,
    /// This stall episode was already reported.
    reported: bool,
}

/// Watches per-CPU samples for a clock that stopped advancing. The host
/// feeds it live; [`find_stalls`] runs it over recorded samples.
#[derive(Clone, Debug)]
pub struct StallDetector {
    threshold_ns: u64,
    tsc_khz: u64,
    cpus: Vec<Watch>,
}

impl StallDetector {
    /// `threshold_ns`: how long a clock may stay frozen before it is a
    /// stall. With `tsc_khz` 0 no duration can be measured and nothing is
    /// ever reported.
    pub fn new(cpus: u32, threshold_ns: u64, tsc_khz: u64) -> Self {
        StallDetector {
            threshold_ns,
            tsc_khz,
            cpus: vec![Watch::default(); cpus as usize],
        }
    }

    /// Feed one sample. Returns `(cpu, pid, stalled_ns)` once per stall
    /// episode, on the first sample where the clock has been frozen for
    /// longer than the threshold; the episode ends (and the detector
    /// re-arms) when the clock moves. Samples for an unknown CPU are
    /// ignored; a sample older than the previous one for its CPU restarts
    /// the watch rather than producing a bogus duration.
    pub fn observe(&mut self, s: &CpuSample) -> Option<(u32, u32, u64)> {
        let tsc_khz = self.tsc_khz;
        let threshold = self.threshold_ns;
        let w = self.cpus.get_mut(s.cpu as usize)?;
        let same = w.clock == Some(s.clock_tsc) && s.tsc >= w.last_sample;
        if !same {
            *w = Watch {
                clock: Some(s.clock_tsc),
                since: s.tsc,
                last_sample: s.tsc,
                pid: s.current_pid,
                reported: false,
            };
            return None;
        }
        w.last_sample = s.tsc;
        w.pid = s.current_pid;
        let stalled = ticks_to_ns(s.tsc - w.since, tsc_khz);
        if stalled > threshold && !w.reported {
            w.reported = true;
            return Some((s.cpu, s.current_pid, stalled));
        }
        None
    }

    /// How long CPU `cpu`'s clock has been frozen as of its latest sample
    /// (0 if it just moved or the CPU is unknown).
    pub fn stalled_ns(&self, cpu: u32) -> u64 {
        self.cpus.get(cpu as usize).map_or(0, |w| {
            ticks_to_ns(w.last_sample.saturating_sub(w.since), self.tsc_khz)
        })
    }

    /// Whether CPU `cpu` is in a reported stall right now.
    pub fn is_stalled(&self, cpu: u32) -> bool {
        self.cpus.get(cpu as usize).is_some_and(|w| w.reported)
    }
}

/// Every stall episode in recorded `samples` (any order; sorted by TSC,
/// stable), each with its full length: up to the last sample before the
/// clock moved again, or the last sample of all if it never did. `rip`
/// and `function` are left for the host to fill in.
pub fn find_stalls(
    cpus: u32,
    threshold_ns: u64,
    tsc_khz: u64,
    samples: &[CpuSample],
) -> Vec<Stall> {
    let mut sorted: Vec<&CpuSample> = samples.iter().collect();
    sorted.sort_by_key(|s| s.tsc);
    let mut d = StallDetector::new(cpus, threshold_ns, tsc_khz);
    let mut out: Vec<Stall> = Vec::new();
    // Index in `out` of each CPU's open episode.
    let mut open: Vec<Option<usize>> = vec![None; cpus as usize];
    for s in sorted {
        if let Some((cpu, pid, stalled_ns)) = d.observe(s) {
            open[cpu as usize] = Some(out.len());
            out.push(Stall {
                cpu,
                pid,
                stalled_ns,
                rip: None,
                function: None,
            });
        } else if let Some(slot) = open.get_mut(s.cpu as usize) {
            match *slot {
                Some(i) if d.is_stalled(s.cpu) => out[i].stalled_ns = d.stalled_ns(s.cpu),
                _ => *slot = None,
            }
        }
    }
    out
}
