//! The run's machine shape in the report: the top-level `topology`
//! object, each CPU's core, LLC and node, and what the guest's CPUID
//! topology leaf told each CPU (checked against the shape: the guest must
//! see the machine the report describes).

use abi::kstate::CpuidTopo;
use abi::topology::Topology;
use serde::Serialize;

/// `result.json`'s `topology`: the four counts, the `--topology` form and
/// the preset's name if one was used.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TopologyInfo {
    pub sockets: u32,
    pub llcs_per_socket: u32,
    pub cores_per_llc: u32,
    pub threads_per_core: u32,
    /// `Ns,Nl,Nc,Nt`.
    pub shape: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preset: Option<&'static str>,
    /// Not serialized: the ABI value the rest is read from.
    #[serde(skip)]
    pub topology: Topology,
}

impl TopologyInfo {
    pub fn new(t: Topology, preset: Option<&'static str>) -> Self {
        TopologyInfo {
            sockets: t.sockets,
            llcs_per_socket: t.llcs_per_socket,
            cores_per_llc: t.cores_per_llc,
            threads_per_core: t.threads_per_core,
            shape: crate::settings::topology::format(&t),
            preset,
            topology: t,
        }
    }

    /// One LLC of single-thread cores: the shape every run had before
    /// topologies, whose report is left as it was.
    pub fn is_flat(&self) -> bool {
        self.topology == Topology::flat(self.topology.cpus())
    }

    /// `cpu`'s place; None for a CPU outside the shape (never trusted
    /// from the guest).
    pub fn place(&self, cpu: u32) -> Option<Place> {
        let t = &self.topology;
        (cpu < t.cpus()).then(|| Place {
            core: t.core_of(cpu),
            llc: t.llc_of(cpu),
            node: t.node_of(cpu),
        })
    }
}

/// A CPU's core, LLC and node, numbered across the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Place {
    pub core: u32,
    pub llc: u32,
    pub node: u32,
}

/// What CPUID leaf 0xB told one CPU at boot (`CpuRecord::cpuid_topo`),
/// and whether it matches the run's topology for that CPU.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct CpuidSeen {
    pub x2apic_id: u32,
    pub smt_shift: u8,
    pub core_shift: u8,
    /// Logical CPUs at the SMT level (threads per core).
    pub smt_cpus: u16,
    /// All four agree with `Topology::apic_id`, `smt_bits`,
    /// `package_shift` and `threads_per_core`.
    pub agrees: bool,
}

impl CpuidSeen {
    /// None when the guest published nothing (a record of zeros: the leaf
    /// is missing, or the CPU never booted).
    pub fn from_record(word: u64, t: &Topology, cpu: u32) -> Option<CpuidSeen> {
        if word == 0 {
            return None;
        }
        let c = CpuidTopo::unpack(word);
        let agrees = cpu < t.cpus()
            && c.x2apic_id == t.apic_id(cpu)
            && u32::from(c.smt_shift) == t.smt_bits()
            && u32::from(c.core_shift) == t.package_shift()
            && u32::from(c.smt_cpus) == t.threads_per_core;
        Some(CpuidSeen {
            x2apic_id: c.x2apic_id,
            smt_shift: c.smt_shift,
            core_shift: c.core_shift,
            smt_cpus: c.smt_cpus,
            agrees,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ODD: Topology = Topology {
        sockets: 1,
        llcs_per_socket: 2,
        cores_per_llc: 3,
        threads_per_core: 2,
    };

    #[test]
    fn places_come_from_the_shape_and_stop_at_its_edge() {
        let i = TopologyInfo::new(ODD, None);
        assert!(!i.is_flat());
        assert_eq!(i.shape, "1s,2l,3c,2t");
        assert_eq!(
            i.place(7),
            Some(Place {
                core: 3,
                llc: 1,
                node: 0
            })
        );
        assert_eq!(i.place(12), None);
        assert!(TopologyInfo::new(Topology::flat(4), None).is_flat());
        let v = serde_json::to_value(TopologyInfo::new(ODD, Some("x"))).unwrap();
        assert_eq!(v["cores_per_llc"], 3);
        assert_eq!(v["preset"], "x");
        assert!(v.get("topology").is_none());
    }

    #[test]
    fn cpuid_agrees_only_when_every_field_matches() {
        let seen = |x2apic_id, smt_shift, core_shift, smt_cpus| {
            CpuidTopo {
                x2apic_id,
                smt_shift,
                core_shift,
                smt_cpus,
            }
            .pack()
        };
        // CPU 7 of 1s,2l,3c,2t: APIC id 9, shifts 1 and 4, 2 threads.
        let ok = CpuidSeen::from_record(seen(9, 1, 4, 2), &ODD, 7).unwrap();
        assert!(ok.agrees);
        assert_eq!((ok.x2apic_id, ok.core_shift), (9, 4));
        for bad in [
            seen(7, 1, 4, 2),
            seen(9, 0, 4, 2),
            seen(9, 1, 3, 2),
            seen(9, 1, 4, 1),
        ] {
            assert!(!CpuidSeen::from_record(bad, &ODD, 7).unwrap().agrees);
        }
        assert!(
            !CpuidSeen::from_record(seen(9, 1, 4, 2), &ODD, 99)
                .unwrap()
                .agrees
        );
        assert_eq!(CpuidSeen::from_record(0, &ODD, 0), None);
    }
}
