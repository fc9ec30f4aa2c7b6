//! A latency histogram operations can fill from many tasks at once
//! without locks or allocation: log-linear buckets (16 per power of two,
//! so about 3 % resolution), atomic counters, fixed size. Percentiles
//! come out as the upper edge of the bucket holding the rank, so they are
//! never under-reported.

use core::sync::atomic::{AtomicU64, Ordering};
use guest_protocol::LatencyStats;

const SUB_BITS: u32 = 4;
const SUB: usize = 1 << SUB_BITS;
/// Values up to 2^40 ns (about 18 minutes) are bucketed; larger clamp.
const MAX_EXP: usize = 40;
const BUCKETS: usize = MAX_EXP * SUB;

pub struct Histogram {
    buckets: [AtomicU64; BUCKETS],
    count: AtomicU64,
    sum: AtomicU64,
    max: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

fn bucket(v: u64) -> usize {
    if v < SUB as u64 {
        return v as usize;
    }
    let exp = 63 - v.leading_zeros(); // >= SUB_BITS
    let sub = (v >> (exp - SUB_BITS)) as usize & (SUB - 1);
    (((exp - SUB_BITS + 1) as usize) * SUB + sub).min(BUCKETS - 1)
}

/// Largest value that lands in bucket `b`.
fn upper(b: usize) -> u64 {
    if b < SUB {
        return b as u64;
    }
    let exp = (b / SUB) as u32 + SUB_BITS - 1;
    let sub = (b % SUB) as u64;
    ((SUB as u64 + sub + 1) << (exp - SUB_BITS)) - 1
}

impl Histogram {
    pub const fn new() -> Self {
        Histogram {
            buckets: [const { AtomicU64::new(0) }; BUCKETS],
            count: AtomicU64::new(0),
            sum: AtomicU64::new(0),
            max: AtomicU64::new(0),
        }
    }

    pub fn record(&self, ns: u64) {
        self.buckets[bucket(ns)].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(ns, Ordering::Relaxed);
        self.max.fetch_max(ns, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Nearest-rank percentile `p` (0..=100), as a bucket's upper edge
    /// (capped at the largest value seen).
    pub fn percentile(&self, p: u64) -> u64 {
        self.permille(p * 10)
    }

    /// Nearest-rank quantile in thousandths (`999` is p99.9): tail
    /// latencies past p99 are what wake-up benchmarks such as schbench
    /// quote.
    pub fn permille(&self, pm: u64) -> u64 {
        let n = self.count();
        if n == 0 {
            return 0;
        }
        // u128: no overflow whatever the count.
        let rank = ((u128::from(n) * u128::from(pm)).div_ceil(1000) as u64).max(1);
        let mut seen = 0;
        for (b, c) in self.buckets.iter().enumerate() {
            seen += c.load(Ordering::Relaxed);
            if seen >= rank {
                return upper(b).min(self.max.load(Ordering::Relaxed));
            }
        }
        self.max.load(Ordering::Relaxed)
    }

    pub fn stats(&self) -> LatencyStats {
        let count = self.count();
        LatencyStats {
            count,
            p50_ns: self.percentile(50),
            p90_ns: self.percentile(90),
            p99_ns: self.percentile(99),
            p999_ns: self.permille(999),
            max_ns: self.max.load(Ordering::Relaxed),
            mean_ns: self
                .sum
                .load(Ordering::Relaxed)
                .checked_div(count)
                .unwrap_or(0),
        }
    }
}

/// A [`LatencyStats`] in atomics, for a task that keeps its histogram on
/// its own stack (a static per task would not fit the image cap) and
/// leaves only the figures behind for the main task to report. Every
/// field is copied, so a field added to `LatencyStats` is added here too.
pub struct SharedStats([AtomicU64; 7]);

impl Default for SharedStats {
    fn default() -> Self {
        Self::new()
    }
}

impl SharedStats {
    pub const fn new() -> Self {
        SharedStats([const { AtomicU64::new(0) }; 7])
    }

    pub fn store(&self, s: &LatencyStats) {
        let v = [
            s.count, s.p50_ns, s.p90_ns, s.p99_ns, s.p999_ns, s.max_ns, s.mean_ns,
        ];
        for (a, v) in self.0.iter().zip(v) {
            a.store(v, Ordering::Relaxed);
        }
    }

    pub fn load(&self) -> LatencyStats {
        let v = |i: usize| self.0[i].load(Ordering::Relaxed);
        LatencyStats {
            count: v(0),
            p50_ns: v(1),
            p90_ns: v(2),
            p99_ns: v(3),
            p999_ns: v(4),
            max_ns: v(5),
            mean_ns: v(6),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_within_three_percent() {
        let mut last = 0;
        for v in (0..5000u64).chain([1 << 20, (1 << 20) + 12345, 1 << 39, u64::MAX]) {
            let b = bucket(v);
            assert!(b >= last || v > 5000);
            last = b;
            let u = upper(b);
            if v < 1 << 40 {
                assert!(u >= v, "upper({b}) = {u} < {v}");
                assert!(u - v <= v / 16 + 1, "bucket of {v} too wide: {u}");
            }
        }
    }

    #[test]
    fn percentiles_follow_the_data() {
        let h = Histogram::new();
        for v in 1..=1000u64 {
            h.record(v * 1000);
        }
        let s = h.stats();
        assert_eq!(s.count, 1000);
        assert!((500_000..=532_000).contains(&s.p50_ns), "{s:?}");
        assert!((900_000..=932_000).contains(&s.p90_ns), "{s:?}");
        assert!((990_000..=1_000_000).contains(&s.p99_ns), "{s:?}");
        assert!((999_000..=1_000_000).contains(&s.p999_ns), "{s:?}");
        assert!(s.p50_ns <= s.p90_ns && s.p90_ns <= s.p99_ns && s.p99_ns <= s.p999_ns);
        assert_eq!(s.max_ns, 1_000_000);
        assert_eq!(s.mean_ns, 500_500);
        let empty = Histogram::new().stats();
        assert_eq!((empty.p99_ns, empty.p999_ns), (0, 0));
    }

    #[test]
    fn p99_9_sees_a_tail_that_p99_hides() {
        let h = Histogram::new();
        for _ in 0..998 {
            h.record(1_000);
        }
        h.record(5_000_000);
        h.record(5_000_000);
        // 2 slow samples in 1000: above the 99th, inside the 99.9th.
        assert!(h.percentile(99) < 1_100, "{}", h.percentile(99));
        assert_eq!(h.permille(999), 5_000_000);
        assert_eq!(h.permille(1000), 5_000_000);
        assert_eq!(h.permille(0), h.percentile(0));
    }

    #[test]
    fn shared_stats_keep_every_field() {
        let s = LatencyStats {
            count: 1,
            p50_ns: 2,
            p90_ns: 3,
            p99_ns: 4,
            p999_ns: 5,
            max_ns: 6,
            mean_ns: 7,
        };
        let shared = SharedStats::new();
        shared.store(&s);
        assert_eq!(shared.load(), s);
    }
}
