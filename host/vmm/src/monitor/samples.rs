//! The monitor's store of CPU samples, bounded without losing the end of
//! the run. Samples feed only the per-CPU run-queue means and maxima over
//! the analysis window (stalls are detected live, not from the store), so
//! an even thinning keeps them meaningful where a cut-off would not: a
//! store that simply stopped at its cap would describe only the first
//! minutes of an hour. When the store is full, every other kept sample of
//! each CPU is dropped and from then on one in `stride` of each CPU is
//! kept, the stride doubling at every further fill.

use analysis::CpuSample;

pub struct SampleStore {
    samples: Vec<CpuSample>,
    cap: usize,
    /// One sample in `stride` of each CPU is kept (a power of two).
    stride: u64,
    /// Samples of each CPU offered so far.
    seen: Vec<u64>,
    not_kept: u64,
}

impl SampleStore {
    /// A store for `cpus` CPUs keeping at most `cap` samples (`cap` >= 2).
    pub fn new(cpus: u32, cap: usize) -> Self {
        SampleStore {
            samples: Vec::new(),
            cap: cap.max(2),
            stride: 1,
            seen: vec![0; cpus as usize],
            not_kept: 0,
        }
    }

    /// Offer one sample; it is kept if it falls on its CPU's stride.
    /// Samples naming a CPU beyond the store's are not kept.
    pub fn push(&mut self, s: CpuSample) {
        let Some(n) = self.seen.get_mut(s.cpu as usize) else {
            self.not_kept += 1;
            return;
        };
        let index = *n;
        *n += 1;
        if !index.is_multiple_of(self.stride) {
            self.not_kept += 1;
            return;
        }
        if self.samples.len() >= self.cap {
            self.thin();
            if !index.is_multiple_of(self.stride) {
                self.not_kept += 1;
                return;
            }
        }
        self.samples.push(s);
    }

    /// Keep every other sample of each CPU (those at a multiple of twice
    /// the stride: the kept ones are exactly the multiples of the stride,
    /// in order) and double the stride.
    fn thin(&mut self) {
        let mut position = vec![0u64; self.seen.len()];
        let before = self.samples.len();
        self.samples.retain(|s| {
            let p = &mut position[s.cpu as usize];
            *p += 1;
            *p % 2 == 1
        });
        self.not_kept += (before - self.samples.len()) as u64;
        self.stride *= 2;
    }

    /// Samples offered but not kept.
    pub fn not_kept(&self) -> u64 {
        self.not_kept
    }

    /// 1 if every sample was kept, else one in this many per CPU was.
    pub fn stride(&self) -> u64 {
        self.stride
    }

    /// The kept samples, in the order they were taken.
    pub fn take(&mut self) -> Vec<CpuSample> {
        std::mem::take(&mut self.samples)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(cpu: u32, tsc: u64) -> CpuSample {
        CpuSample {
            tsc,
            cpu,
            current_pid: 1,
            rq_len: 0,
            clock_tsc: tsc,
            irq_tsc: tsc,
            max_irq_gap: 0,
            idle: false,
        }
    }

    #[test]
    fn everything_is_kept_under_the_cap() {
        let mut s = SampleStore::new(2, 100);
        for t in 0..50 {
            s.push(sample(0, t));
            s.push(sample(1, t));
        }
        assert_eq!((s.stride(), s.not_kept()), (1, 0));
        assert_eq!(s.take().len(), 100);
    }

    /// A store that is full keeps covering the whole run, evenly, never
    /// more than its cap.
    #[test]
    fn a_full_store_is_thinned_evenly_over_the_whole_run() {
        let mut s = SampleStore::new(2, 64);
        let n = 1000u64;
        for t in 0..n {
            s.push(sample(0, t));
            s.push(sample(1, t));
            assert!(s.samples.len() <= 64);
        }
        let stride = s.stride();
        assert_eq!(stride, 32, "2000 offered into 64: halved five times");
        let kept = s.take();
        assert_eq!(kept.len() as u64 + s.not_kept(), 2 * n);
        for cpu in 0..2 {
            let tscs: Vec<u64> = kept
                .iter()
                .filter(|x| x.cpu == cpu)
                .map(|x| x.tsc)
                .collect();
            let want: Vec<u64> = (0..n).step_by(stride as usize).collect();
            assert_eq!(tscs, want, "cpu {cpu}: every {stride}th sample, to the end");
        }
    }

    #[test]
    fn a_cpu_beyond_the_store_is_not_kept() {
        let mut s = SampleStore::new(1, 8);
        s.push(sample(5, 0));
        assert_eq!((s.not_kept(), s.take().len()), (1, 0));
    }
}
