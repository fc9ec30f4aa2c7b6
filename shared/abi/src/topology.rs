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

    /// Bits a field needs to count `0..n`: ceil(log2(n)), 0 for n <= 1.
    const fn width(n: u32) -> u32 {
        if n <= 1 {
            0
        } else {
            32 - (n - 1).leading_zeros()
        }
    }

    /// Bits of the x2APIC id that number the thread within its core (the
    /// SMT level's shift in CPUID leaf 0xB).
    pub const fn smt_bits(&self) -> u32 {
        Self::width(self.threads_per_core)
    }

    /// Bits that number the core within its LLC.
    pub const fn core_bits(&self) -> u32 {
        Self::width(self.cores_per_llc)
    }

    /// Bits that number the LLC within its socket.
    pub const fn llc_bits(&self) -> u32 {
        Self::width(self.llcs_per_socket)
    }

    /// How far an x2APIC id shifts right to leave the CPUs that share an
    /// LLC (what CPUID leaf 4's sharing count rounds up to).
    pub const fn llc_shift(&self) -> u32 {
        self.smt_bits() + self.core_bits()
    }

    /// How far an x2APIC id shifts right to leave the socket (the core
    /// level's shift in CPUID leaf 0xB: everything below the package).
    pub const fn package_shift(&self) -> u32 {
        self.llc_shift() + self.llc_bits()
    }

    /// `cpu`'s APIC id, as real x86 machines pack it: thread, core, LLC
    /// and socket fields from the bottom, each as wide as its level's
    /// count rounded up to a power of two, so `id >> shift` names a core,
    /// an LLC or a socket. With a level that is not a power of two the ids
    /// are not contiguous (`1s,1l,3c,1t`: 0, 1, 2; `1s,2l,3c,1t`: 0, 1, 2,
    /// 4, 5, 6). The VMM creates each vCPU with this id, the guest's
    /// CPUID reports it, and the core's IPIs go to it. At most 127 for
    /// every valid shape (a test checks all of them), so it fits the
    /// xAPIC's 8-bit destination.
    pub const fn apic_id(&self, cpu: u32) -> u32 {
        let thread = cpu % self.threads_per_core;
        let core = self.core_of(cpu) % self.cores_per_llc;
        let llc = self.llc_of(cpu) % self.llcs_per_socket;
        let socket = self.node_of(cpu);
        (((socket << self.llc_bits()) | llc) << self.llc_shift())
            | (core << self.smt_bits())
            | thread
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
    fn apic_ids_pack_power_of_two_fields() {
        assert_eq!((T.smt_bits(), T.core_bits(), T.llc_bits()), (1, 2, 1));
        assert_eq!((T.llc_shift(), T.package_shift()), (3, 4));
        // Powers of two everywhere: the id is the CPU number.
        for cpu in 0..32 {
            assert_eq!(T.apic_id(cpu), cpu);
        }
        let odd = Topology {
            sockets: 1,
            llcs_per_socket: 2,
            cores_per_llc: 3,
            threads_per_core: 2,
        };
        assert_eq!(
            (odd.smt_bits(), odd.core_bits(), odd.package_shift()),
            (1, 2, 4)
        );
        let ids: [u32; 12] = core::array::from_fn(|c| odd.apic_id(c as u32));
        assert_eq!(ids, [0, 1, 2, 3, 4, 5, 8, 9, 10, 11, 12, 13]);
        let f3 = Topology::flat(3);
        assert_eq!(
            (f3.apic_id(2), f3.smt_bits(), f3.package_shift()),
            (2, 0, 2)
        );
    }

    /// Every valid shape: ids distinct, below 128, and each field of the
    /// id names the CPU's own thread, core, LLC and socket.
    #[test]
    fn every_valid_shape_has_distinct_decodable_apic_ids() {
        let mut shapes = 0;
        for s in 1..=64u32 {
            for l in 1..=64 / s {
                for c in 1..=64 / (s * l) {
                    for t in 1..=64 / (s * l * c) {
                        let topo = Topology {
                            sockets: s,
                            llcs_per_socket: l,
                            cores_per_llc: c,
                            threads_per_core: t,
                        };
                        assert!(topo.is_valid());
                        shapes += 1;
                        let mut seen = 0u128;
                        for cpu in 0..topo.cpus() {
                            let id = topo.apic_id(cpu);
                            assert!(id < 128, "{topo:?} cpu {cpu}: {id}");
                            assert_eq!(seen & (1 << id), 0, "{topo:?}: {id} twice");
                            seen |= 1 << id;
                            let smt = 1 << topo.smt_bits();
                            assert_eq!(id & (smt - 1), topo.thread_of(cpu));
                            assert_eq!(id >> topo.package_shift(), topo.node_of(cpu));
                            // Same LLC exactly when the same id >> llc_shift.
                            let other = (cpu + 1) % topo.cpus();
                            let same =
                                topo.apic_id(other) >> topo.llc_shift() == id >> topo.llc_shift();
                            assert_eq!(same, topo.llc_of(other) == topo.llc_of(cpu));
                            let same_core =
                                topo.apic_id(other) >> topo.smt_bits() == id >> topo.smt_bits();
                            assert_eq!(same_core, topo.core_of(other) == topo.core_of(cpu));
                        }
                    }
                }
            }
        }
        assert!(shapes > 500, "{shapes}");
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
