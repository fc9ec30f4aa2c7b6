//! [`CpuSet`]: a set of CPUs as one `u64` bitmask (MAX_CPUS = 64), so it is
//! `Copy`, fits in a register, and matches the `affinity` fields of the
//! shared ABI bit for bit.

use crate::Cpu;
use abi::memmap::MAX_CPUS;

const _: () = assert!(MAX_CPUS <= 64, "CpuSet is one u64");

/// A set of CPUs: bit `n` set means CPU `n` is in the set. CPUs at or above
/// 64 are never members (queries about them answer "no").
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct CpuSet(pub u64);

impl CpuSet {
    /// No CPU.
    pub const EMPTY: CpuSet = CpuSet(0);

    /// CPUs `0..n` (all of them for `n >= 64`).
    pub const fn all(n: u32) -> CpuSet {
        if n >= 64 {
            CpuSet(u64::MAX)
        } else {
            CpuSet((1u64 << n) - 1)
        }
    }

    /// Just `cpu` (empty if `cpu >= 64`).
    pub const fn single(cpu: Cpu) -> CpuSet {
        if cpu >= 64 {
            CpuSet(0)
        } else {
            CpuSet(1u64 << cpu)
        }
    }

    pub const fn contains(self, cpu: Cpu) -> bool {
        cpu < 64 && self.0 & (1u64 << cpu) != 0
    }

    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Lowest-numbered CPU in the set.
    pub const fn first(self) -> Option<Cpu> {
        if self.0 == 0 {
            None
        } else {
            Some(self.0.trailing_zeros())
        }
    }

    pub const fn count(self) -> u32 {
        self.0.count_ones()
    }

    /// This set plus `cpu`.
    pub const fn with(self, cpu: Cpu) -> CpuSet {
        CpuSet(self.0 | CpuSet::single(cpu).0)
    }

    /// This set minus `cpu`.
    pub const fn without(self, cpu: Cpu) -> CpuSet {
        CpuSet(self.0 & !CpuSet::single(cpu).0)
    }

    /// CPUs in both sets.
    pub const fn and(self, other: CpuSet) -> CpuSet {
        CpuSet(self.0 & other.0)
    }

    /// CPUs in either set.
    pub const fn or(self, other: CpuSet) -> CpuSet {
        CpuSet(self.0 | other.0)
    }

    /// The CPUs in ascending order.
    pub const fn iter(self) -> CpuSetIter {
        CpuSetIter(self.0)
    }
}

/// Ascending iterator over a [`CpuSet`].
#[derive(Clone, Debug)]
pub struct CpuSetIter(u64);

impl Iterator for CpuSetIter {
    type Item = Cpu;

    fn next(&mut self) -> Option<Cpu> {
        if self.0 == 0 {
            return None;
        }
        let cpu = self.0.trailing_zeros();
        // Clear the lowest set bit.
        self.0 &= self.0 - 1;
        Some(cpu)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.0.count_ones() as usize;
        (n, Some(n))
    }
}

impl ExactSizeIterator for CpuSetIter {}

impl IntoIterator for CpuSet {
    type Item = Cpu;
    type IntoIter = CpuSetIter;

    fn into_iter(self) -> CpuSetIter {
        self.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    #[test]
    fn basics() {
        assert_eq!(CpuSet::all(0), CpuSet::EMPTY);
        assert_eq!(CpuSet::all(3), CpuSet(0b111));
        assert_eq!(CpuSet::all(64), CpuSet(u64::MAX));
        assert_eq!(CpuSet::all(100), CpuSet(u64::MAX));
        let s = CpuSet::EMPTY.with(5).with(2).with(63);
        assert!(s.contains(2) && s.contains(5) && s.contains(63));
        assert!(!s.contains(3) && !s.contains(64) && !s.contains(u32::MAX));
        assert_eq!(s.first(), Some(2));
        assert_eq!(s.count(), 3);
        assert_eq!(s.iter().collect::<Vec<_>>(), [2, 5, 63]);
        assert_eq!(s.without(2).first(), Some(5));
        assert_eq!(CpuSet::EMPTY.first(), None);
        assert_eq!(CpuSet::single(64), CpuSet::EMPTY);
        assert_eq!(s.and(CpuSet::all(6)), CpuSet(0b100100));
        assert_eq!(CpuSet(1).or(CpuSet(2)), CpuSet(3));
    }
}
