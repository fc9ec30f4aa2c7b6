//! The machine's shape: sockets (NUMA nodes), last-level caches per
//! socket, cores per LLC and SMT threads per core, as `--topology 2s,2l,
//! 4c,2t` gives it. Defined once here and carried to the core in the boot
//! info and to policies in their services, so the host's report, the
//! guest's CPUID leaves, the core's default CPU selection and every policy
//! agree on which CPUs share a core, a cache and a node.
//!
//! CPUs are numbered innermost level first, as `((socket x L + llc) x C +
//! core) x T + thread`: SMT siblings are adjacent, then the cores of one
//! LLC, then the LLCs of one socket. (Linux numbers Intel siblings `n` and
//! `n + cores` instead; a policy must use the masks, never arithmetic on
//! CPU numbers, to find them.)

use crate::memmap::MAX_CPUS;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// The four levels, each at least 1, their product at most `MAX_CPUS`.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct Topology {
    /// Sockets; each is one NUMA node.
    pub sockets: u32,
    /// Last-level caches per socket.
    pub llcs_per_socket: u32,
    /// Cores per last-level cache.
    pub cores_per_llc: u32,
    /// Hardware threads per core (SMT siblings).
    pub threads_per_core: u32,
}

const _: () = {
    assert!(core::mem::size_of::<Topology>() == 16);
    assert!(MAX_CPUS <= 64, "the masks are u64");
};

impl Topology {
    /// `cpus` cores sharing one cache on one socket, no SMT: the shape
    /// every run had before topologies.
    pub const fn flat(cpus: u32) -> Topology {
        Topology {
            sockets: 1,
            llcs_per_socket: 1,
            cores_per_llc: cpus,
            threads_per_core: 1,
        }
    }

    /// How many CPUs the shape has (saturating: an invalid one is caught
    /// by [`Topology::is_valid`]).
    pub const fn cpus(&self) -> u32 {
        self.sockets
            .saturating_mul(self.llcs_per_socket)
            .saturating_mul(self.cores_per_llc)
            .saturating_mul(self.threads_per_core)
    }

    /// Every level at least 1 and at most `MAX_CPUS` CPUs in all.
    pub const fn is_valid(&self) -> bool {
        self.sockets >= 1
            && self.llcs_per_socket >= 1
            && self.cores_per_llc >= 1
            && self.threads_per_core >= 1
            && self.cpus() as usize <= MAX_CPUS
    }

    /// Cores in the whole machine.
    pub const fn cores(&self) -> u32 {
        self.sockets * self.llcs_per_socket * self.cores_per_llc
    }

    /// LLCs in the whole machine.
    pub const fn llcs(&self) -> u32 {
        self.sockets * self.llcs_per_socket
    }

    /// `cpu`'s thread index within its core.
    pub const fn thread_of(&self, cpu: u32) -> u32 {
        cpu % self.threads_per_core
    }

    /// `cpu`'s core, numbered across the machine (`0..cores()`).
    pub const fn core_of(&self, cpu: u32) -> u32 {
        cpu / self.threads_per_core
    }

    /// `cpu`'s last-level cache, numbered across the machine
    /// (`0..llcs()`).
    pub const fn llc_of(&self, cpu: u32) -> u32 {
        cpu / (self.threads_per_core * self.cores_per_llc)
    }

    /// `cpu`'s socket, which is its NUMA node.
    pub const fn node_of(&self, cpu: u32) -> u32 {
        cpu / (self.threads_per_core * self.cores_per_llc * self.llcs_per_socket)
    }

    /// The CPUs `0..n` of a group of `n` starting at `first`, as a mask.
    const fn span(first: u32, n: u32) -> u64 {
        let ones = if n >= 64 { u64::MAX } else { (1u64 << n) - 1 };
        if first >= 64 { 0 } else { ones << first }
    }

    /// `cpu` and its SMT siblings (bit n = CPU n).
    pub const fn smt_mask(&self, cpu: u32) -> u64 {
        let n = self.threads_per_core;
        Self::span(self.core_of(cpu) * n, n)
    }

    /// The CPUs sharing `cpu`'s last-level cache.
    pub const fn llc_mask(&self, cpu: u32) -> u64 {
        let n = self.threads_per_core * self.cores_per_llc;
        Self::span(self.llc_of(cpu) * n, n)
    }

    /// The CPUs of `cpu`'s socket (NUMA node).
    pub const fn node_mask(&self, cpu: u32) -> u64 {
        let n = self.threads_per_core * self.cores_per_llc * self.llcs_per_socket;
        Self::span(self.node_of(cpu) * n, n)
    }

    /// Every CPU of the machine.
    pub const fn all_mask(&self) -> u64 {
        Self::span(0, self.cpus())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Topology = Topology {
        sockets: 2,
        llcs_per_socket: 2,
        cores_per_llc: 4,
        threads_per_core: 2,
    };

    #[test]
    fn cpus_are_numbered_thread_then_core_then_llc_then_socket() {
        assert_eq!(T.cpus(), 32);
        assert_eq!((T.cores(), T.llcs()), (16, 4));
        // CPU 13: socket 0, LLC 1, its core 2 of that LLC, thread 1.
        assert_eq!(
            (T.thread_of(13), T.core_of(13), T.llc_of(13), T.node_of(13)),
            (1, 6, 1, 0)
        );
        assert_eq!(T.smt_mask(13), 0b11 << 12);
        assert_eq!(T.llc_mask(13), 0xff << 8);
        assert_eq!(T.node_mask(13), 0xffff);
        assert_eq!(T.node_mask(31), 0xffff_0000);
        assert_eq!(T.all_mask(), 0xffff_ffff);
    }

    #[test]
    fn the_flat_shape_is_one_llc_of_single_thread_cores() {
        let f = Topology::flat(4);
        assert!(f.is_valid());
        assert_eq!((f.cpus(), f.llc_mask(3), f.smt_mask(3)), (4, 0xf, 0b1000));
        let full = Topology::flat(64);
        assert_eq!((full.all_mask(), full.llc_mask(0)), (u64::MAX, u64::MAX));
    }

    #[test]
    fn empty_levels_and_too_many_cpus_are_invalid() {
        assert!(!Topology::flat(0).is_valid());
        assert!(!Topology { sockets: 0, ..T }.is_valid());
        assert!(
            !Topology {
                threads_per_core: 8,
                ..T
            }
            .is_valid()
        );
        let huge = Topology {
            sockets: u32::MAX,
            ..T
        };
        assert!(!huge.is_valid(), "saturates, never wraps");
    }
}
