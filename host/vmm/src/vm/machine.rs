//! Creating the VM: /dev/kvm, RAM, vCPUs, and everything written into
//! guest memory before the first KVM_RUN (tables, images, config, boot
//! info). Errors here are environment problems (exit 69), worded so the
//! user knows what to fix.

use super::hot;
use super::memory::GuestRam;
use super::setup::{self, BootParams, SchedBoot};
use crate::exit::{Failure, Result};
use crate::images::Images;
use crate::policy_image::PolicyImage;
use abi::memmap::{
    BOOT_INFO_ADDR, GDT_ADDR, KERNEL_LOAD_ADDR, KERNEL_MAX_SIZE, OPERATION_CONFIG_ADDR,
    OPERATION_CONFIG_MAX, OPERATION_LOAD_ADDR, PAGE_TABLES_ADDR, tss_base,
};
use abi::topology::Topology;
use kvm_bindings::{
    CpuId, KVM_API_VERSION, KVM_CAP_DISABLE_QUIRKS2, KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
    KVM_MAX_CPUID_ENTRIES, KVM_MP_STATE_RUNNABLE, KVM_X86_QUIRK_FIX_HYPERCALL_INSN,
    kvm_cpuid_entry2, kvm_enable_cap, kvm_mp_state, kvm_userspace_memory_region,
};
use kvm_ioctls::{Kvm, VcpuFd, VmFd};
use linux_loader::loader::{Elf, KernelLoader};
use std::ffi::CString;
use std::io::Cursor;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use vm_memory::{Address, Bytes, GuestAddress};
use zerocopy::IntoBytes;

/// Env var naming the KVM device instead of /dev/kvm (tests use it to
/// simulate a machine without KVM).
pub const KVM_PATH_ENV: &str = "SCHEDLAB_KVM_PATH";

/// Field order is drop order: vCPU fds (if still here), the VM, then RAM,
/// so guest memory is unmapped only once nothing can run in it.
pub struct Machine {
    pub vcpus: Vec<VcpuFd>,
    /// Held only to keep the VM (and /dev/kvm) open for the run.
    _vm: VmFd,
    _kvm: Kvm,
    pub ram: Arc<GuestRam>,
    /// When creating the VM began (guest RAM first); all host timings
    /// count from here.
    pub t0: Instant,
    pub epoch_tsc: u64,
    pub tsc_khz: u64,
    /// How long each step of `create` took, µs: guest RAM mapped, the VM
    /// and its vCPUs set up in KVM, the images and tables written.
    pub ram_us: u64,
    pub kvm_us: u64,
    pub load_us: u64,
}

/// Everything a run puts into the guest besides the images.
pub struct MachineSpec<'a> {
    pub cpu_count: u32,
    pub mem_bytes: u64,
    pub config: &'a [u8],
    pub slice_ns: u64,
    pub seed: u64,
    pub sched: SchedBoot,
    /// Loaded at POLICY_LOAD_ADDR: the policy the core runs.
    pub policy: &'a PolicyImage,
    /// Written at its address: what the policy reads besides its image.
    pub policy_data: Option<&'a super::run::PolicyData>,
}

pub fn open_kvm() -> Result<Kvm> {
    let path = std::env::var(KVM_PATH_ENV).unwrap_or_else(|_| "/dev/kvm".to_string());
    open_kvm_at(&path)
}

fn open_kvm_at(path: &str) -> Result<Kvm> {
    let cpath = CString::new(path)
        .map_err(|_| Failure::usage(format!("{KVM_PATH_ENV} contains a NUL byte")))?;
    let kvm = Kvm::new_with_path(&cpath).map_err(|e| {
        Failure::kvm(format!(
            "cannot open {path}: {}. schedlab needs KVM: check that /dev/kvm exists and that you can \
             read and write it (e.g. run as root or add yourself to the kvm group)",
            std::io::Error::from_raw_os_error(e.errno())
        ))
    })?;
    let v = kvm.get_api_version();
    if v != KVM_API_VERSION as i32 {
        return Err(Failure::kvm(format!(
            "{path} speaks KVM API version {v}, schedlab needs {KVM_API_VERSION}: this kernel's KVM is not supported"
        )));
    }
    Ok(kvm)
}

/// KVM_CREATE_VM, its one memory slot (all of guest RAM) and its
/// interrupt controller.
fn create_vm(kvm: &Kvm, ram: &GuestRam) -> Result<VmFd> {
    let vm = kvm.create_vm().map_err(kvm_err("KVM_CREATE_VM"))?;
    let region = kvm_userspace_memory_region {
        slot: 0,
        flags: 0,
        guest_phys_addr: 0,
        memory_size: ram.size(),
        userspace_addr: ram.host_base(),
    };
    // SAFETY: the region is RAM we own; `Machine` keeps it mapped until
    // after the VM fd is closed (field order).
    unsafe { vm.set_user_memory_region(region) }.map_err(kvm_err("KVM_SET_USER_MEMORY_REGION"))?;
    disable_hypercall_patching(&vm);
    setup_interrupts(&vm)?;
    Ok(vm)
}

/// KVM's supported CPUID, asked once per process: it is the host's, the
/// same for every VM, and costs a few hundred µs here.
fn supported_cpuid(kvm: &Kvm) -> Result<CpuId> {
    static CACHE: OnceLock<CpuId> = OnceLock::new();
    if let Some(c) = CACHE.get() {
        return Ok(c.clone());
    }
    let c = kvm
        .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
        .map_err(kvm_err("KVM_GET_SUPPORTED_CPUID"))?;
    Ok(CACHE.get_or_init(|| c).clone())
}

fn kvm_err(what: &str) -> impl Fn(kvm_ioctls::Error) -> Failure + '_ {
    move |e| {
        Failure::kvm(format!(
            "{what} failed: {}",
            std::io::Error::from_raw_os_error(e.errno())
        ))
    }
}

impl Machine {
    /// Create the VM and its vCPUs, with guest RAM mapped and its hot
    /// pages populating on a helper thread (`vm::hot`); [`Machine::load`]
    /// then writes what the guest boots from. Two waits overlap here:
    /// the populating, and KVM's supported CPUID (a few hundred µs of
    /// trapped `cpuid`s on this nested host, asked once per process) on a
    /// second helper, while this thread creates the VM, its memory slot
    /// and its interrupt controller (KVM's own waits).
    pub fn create(kvm: Kvm, images: &Images, spec: &MachineSpec<'_>) -> Result<Machine> {
        if spec.config.len() as u64 > OPERATION_CONFIG_MAX {
            return Err(Failure::host(format!(
                "operation config is {} bytes, over OPERATION_CONFIG_MAX ({OPERATION_CONFIG_MAX})",
                spec.config.len()
            )));
        }
        // The guest's now_ns counts from this TSC value, so guest and host
        // timestamps share one origin (PVM runs the guest on the host TSC).
        // Boot timing starts here too: guest RAM is part of creating a VM.
        let epoch_tsc = rdtsc();
        let t0 = Instant::now();
        let ram = Arc::new(GuestRam::new(spec.mem_bytes)?);
        ram.populate(hot::ranges(
            spec.cpu_count,
            &hot::ImageEnds {
                core: images.core.end,
                operation: OPERATION_LOAD_ADDR + images.op.bin.len() as u64,
                policy: spec.policy.end,
            },
        ));
        let ram_us = t0.elapsed().as_micros() as u64;
        let (vm, cpuid) = std::thread::scope(|s| {
            let cpuid = s.spawn(|| supported_cpuid(&kvm));
            let vm = create_vm(&kvm, &ram);
            // A helper that could not finish leaves the question to us.
            let cpuid = cpuid.join().unwrap_or_else(|_| supported_cpuid(&kvm));
            (vm, cpuid)
        });
        let (vm, cpuid) = (vm?, cpuid?);
        let mut vcpus = Vec::new();
        for cpu in 0..spec.cpu_count {
            // KVM's vCPU id is its LAPIC id: the topology's packed id, so
            // the LAPIC, CPUID and the core's IPIs name the same CPU.
            let fd = vm
                .create_vcpu(u64::from(spec.sched.topology.apic_id(cpu)))
                .map_err(kvm_err("KVM_CREATE_VCPU"))?;
            fd.set_cpuid2(&cpuid_for(&cpuid, &spec.sched.topology, cpu))
                .map_err(kvm_err("KVM_SET_CPUID2"))?;
            if cpu > 0 {
                // With the in-kernel irqchip an AP starts in "wait for
                // INIT/SIPI" and would never run; the VMM sets its
                // registers itself, so it is made runnable directly.
                fd.set_mp_state(kvm_mp_state {
                    mp_state: KVM_MP_STATE_RUNNABLE,
                })
                .map_err(kvm_err("KVM_SET_MP_STATE"))?;
            }
            let sregs = fd.get_sregs().map_err(kvm_err("KVM_GET_SREGS"))?;
            fd.set_sregs(&setup::sregs(sregs, cpu))
                .map_err(kvm_err("KVM_SET_SREGS"))?;
            fd.set_regs(&setup::regs(images.core.entry, cpu, spec.cpu_count))
                .map_err(kvm_err("KVM_SET_REGS"))?;
            vcpus.push(fd);
        }
        let tsc_khz = match vcpus[0].get_tsc_khz() {
            Ok(k) if k > 0 => k as u64,
            _ => measure_tsc_khz(),
        };
        let kvm_done = t0.elapsed().as_micros() as u64;
        Ok(Machine {
            vcpus,
            _vm: vm,
            _kvm: kvm,
            ram,
            t0,
            epoch_tsc,
            tsc_khz,
            ram_us,
            kvm_us: kvm_done - ram_us,
            load_us: 0,
        })
    }

    /// Write everything the guest boots from (tables, images, config,
    /// boot info) and time it as `load_us`. Before the first KVM_RUN that
    /// enters the guest; the vCPU threads may already be waiting.
    pub fn load(&mut self, images: &Images, spec: &MachineSpec<'_>) -> Result<()> {
        let t = Instant::now();
        self.write_guest_memory(images, spec)?;
        self.load_us = t.elapsed().as_micros() as u64;
        Ok(())
    }

    fn write_guest_memory(&self, images: &Images, spec: &MachineSpec<'_>) -> Result<()> {
        let mem = self.ram.memory();
        let oops = |what: &str| {
            let what = what.to_string();
            move |e: vm_memory::GuestMemoryError| {
                Failure::host(format!("writing {what} into guest RAM: {e}"))
            }
        };
        let tables = setup::page_tables(self.ram.size());
        mem.write_slice(tables.as_bytes(), GuestAddress(PAGE_TABLES_ADDR))
            .map_err(oops("page tables"))?;
        mem.write_slice(setup::gdt().as_bytes(), GuestAddress(GDT_ADDR))
            .map_err(oops("the GDT"))?;
        for cpu in 0..spec.cpu_count {
            mem.write_slice(setup::tss(cpu).as_bytes(), GuestAddress(tss_base(cpu)))
                .map_err(oops("a TSS"))?;
        }

        let core = &images.core;
        let loaded =
            Elf::load(mem, None, &mut Cursor::new(core.elf.as_ref()), None).map_err(|e| {
                Failure::image(format!(
                    "cannot load {} into the guest: {e}: run `make`",
                    core.label
                ))
            })?;
        let entry = loaded.kernel_load.raw_value();
        if entry != core.entry
            || !(KERNEL_LOAD_ADDR..KERNEL_LOAD_ADDR + KERNEL_MAX_SIZE).contains(&entry)
        {
            return Err(Failure::image(format!(
                "{}: loaded entry {entry:#x} is outside the core region",
                core.label
            )));
        }
        // linux-loader skips segments without file bytes (.bss); the image
        // check measured those too.
        let high_water = loaded.kernel_end.max(core.end);
        if high_water > KERNEL_LOAD_ADDR + KERNEL_MAX_SIZE {
            return Err(Failure::image(format!(
                "{}: image ends at {high_water:#x}, past KERNEL_LOAD_ADDR + KERNEL_MAX_SIZE: run `make`",
                core.label
            )));
        }
        mem.write_slice(&images.op.bin, GuestAddress(OPERATION_LOAD_ADDR))
            .map_err(oops("the operation"))?;
        mem.write_slice(spec.config, GuestAddress(OPERATION_CONFIG_ADDR))
            .map_err(oops("the config"))?;
        // Checked by PolicyImage::parse: every segment inside the policy
        // region, .bss written as zeros (fresh RAM is zero too, but a
        // segment's own bytes say so).
        for (addr, bytes) in &spec.policy.segments {
            mem.write_slice(bytes, GuestAddress(*addr))
                .map_err(oops("the policy image"))?;
        }
        if let Some(d) = spec.policy_data {
            if !super::run::PolicyData::in_region(d.addr, d.bytes.len()) {
                return Err(Failure::image(format!(
                    "the policy's data ({} bytes at {:#x}) does not fit the region set aside for                      it",
                    d.bytes.len(),
                    d.addr
                )));
            }
            mem.write_slice(&d.bytes, GuestAddress(d.addr))
                .map_err(oops("the policy's data"))?;
        }

        let info = setup::boot_info(&BootParams {
            cpu_count: spec.cpu_count,
            config_len: spec.config.len() as u32,
            mem_size: self.ram.size(),
            tsc_khz: self.tsc_khz,
            slice_ns: spec.slice_ns,
            seed: spec.seed,
            epoch_tsc: self.epoch_tsc,
            sched: spec.sched,
        });
        mem.write_slice(info.as_bytes(), GuestAddress(BOOT_INFO_ADDR))
            .map_err(oops("boot info"))?;
        Ok(())
    }
}

/// With KVM's hypercall-patching quirk on, a stray vmcall at CPL0 livelocks
/// on this machine; with it off, it is a #UD the guest reports. Failure is
/// harmless (older kernels), so it is ignored.
fn disable_hypercall_patching(vm: &VmFd) {
    let supported = vm.check_extension_raw(KVM_CAP_DISABLE_QUIRKS2 as _);
    if supported > 0 && (supported as u32 & KVM_X86_QUIRK_FIX_HYPERCALL_INSN) != 0 {
        let cap = kvm_enable_cap {
            cap: KVM_CAP_DISABLE_QUIRKS2,
            args: [KVM_X86_QUIRK_FIX_HYPERCALL_INSN as u64, 0, 0, 0],
            ..Default::default()
        };
        let _ = vm.enable_cap(&cap);
    }
}

/// The in-kernel interrupt controller (IOAPIC, PIC and one LAPIC per
/// vCPU): the LAPIC timer drives preemption and wake-ups are IPIs, both
/// handled inside KVM without a VM exit. It must exist before the vCPUs
/// are created, or they get no LAPIC. No PIT: the core uses only the LAPIC
/// timer, so a stray PIT access exits and is reported.
fn setup_interrupts(vm: &VmFd) -> Result<()> {
    vm.create_irq_chip().map_err(kvm_err("KVM_CREATE_IRQCHIP"))
}

/// CPUID leaf 0 EBX of AMD CPUs ("Auth" of "AuthenticAMD").
const VENDOR_AMD_EBX: u32 = u32::from_le_bytes(*b"Auth");
/// Leaf 1 EDX: more than one logical CPU per package.
const CPUID_1_EDX_HTT: u32 = 1 << 28;
/// Leaf 0xB/0x1F level types (ECX[15:8]).
const LEVEL_SMT: u32 = 1;
const LEVEL_CORE: u32 = 2;

/// KVM's supported CPUID told as this vCPU on this topology, so that the
/// guest's `cpuid` (answered from KVM_SET_CPUID2 at CPL0) describes the
/// machine the run's report does:
/// - leaf 1: EBX[31:24] the APIC id, EBX[23:16] the package's addressable
///   ids (`1 << package_shift`), HTT when that is more than one;
/// - leaves 0xB and (if the CPU has it) 0x1F: an SMT level (shift
///   `smt_bits`, `threads_per_core` CPUs), a core level (shift
///   `package_shift`, the package's CPUs) and the terminating level, each
///   with the x2APIC id in EDX. KVM's own entries are replaced: on this
///   host they are all zero;
/// - leaf 4 (and AMD's 0x8000001D): each cache's sharing, EAX[25:14] =
///   CPUs sharing it - 1 (an SMT core's for L1/L2, an LLC's for the
///   highest level), EAX[31:26] = cores per package - 1;
/// - on AMD, 0x8000001E (extended APIC id, core, threads per core, node)
///   and 0x80000008 ECX (CPUs per package - 1, APIC id size).
pub fn cpuid_for(base: &CpuId, topo: &Topology, cpu: u32) -> CpuId {
    let apic = topo.apic_id(cpu);
    let per_package = topo.cpus() / topo.sockets;
    let cores_per_package = topo.llcs_per_socket * topo.cores_per_llc;
    let llc_cpus = topo.threads_per_core * topo.cores_per_llc;
    let entries = base.as_slice();
    let leaf0 = entries.iter().find(|e| e.function == 0);
    let max_leaf = leaf0.map_or(0, |e| e.eax);
    let amd = leaf0.is_some_and(|e| e.ebx == VENDOR_AMD_EBX);
    let max_cache_level = |leaf: u32| {
        entries
            .iter()
            .filter(|e| e.function == leaf && e.eax & 0x1f != 0)
            .map(|e| (e.eax >> 5) & 7)
            .max()
            .unwrap_or(0)
    };
    let (llc4, llc_amd) = (max_cache_level(4), max_cache_level(0x8000_001d));
    let sharing = |eax: u32, llc_level: u32| {
        if eax & 0x1f == 0 {
            return eax; // no cache: the list's end
        }
        let shared = if (eax >> 5) & 7 == llc_level {
            llc_cpus
        } else {
            topo.threads_per_core
        };
        (eax & 0x3fff) | ((shared - 1) & 0xfff) << 14 | ((cores_per_package - 1) & 0x3f) << 26
    };
    let mut out: Vec<kvm_cpuid_entry2> = Vec::with_capacity(entries.len() + 6);
    for e in entries {
        let mut e = *e;
        match e.function {
            0xb | 0x1f => continue, // replaced below
            1 => {
                let ids = (1u32 << topo.package_shift()).min(0xff);
                e.ebx = (e.ebx & 0x0000_ffff) | (apic & 0xff) << 24 | ids << 16;
                e.edx = if per_package > 1 {
                    e.edx | CPUID_1_EDX_HTT
                } else {
                    e.edx & !CPUID_1_EDX_HTT
                };
            }
            4 => e.eax = sharing(e.eax, llc4),
            0x8000_001d if amd => e.eax = sharing(e.eax, llc_amd),
            0x8000_001e if amd => {
                e.eax = apic;
                e.ebx = (e.ebx & !0xffff)
                    | (topo.core_of(cpu) & 0xff)
                    | ((topo.threads_per_core - 1) & 0xff) << 8;
                e.ecx = (e.ecx & !0x7ff) | (topo.node_of(cpu) & 0xff);
            }
            0x8000_0008 if amd => {
                e.ecx = (e.ecx & !0xf0ff)
                    | ((per_package - 1) & 0xff)
                    | (topo.package_shift() & 0xf) << 12;
            }
            _ => {}
        }
        out.push(e);
    }
    for leaf in [0xb, 0x1f] {
        if max_leaf < leaf {
            continue;
        }
        let level = |index: u32, shift: u32, cpus: u32, kind: u32| kvm_cpuid_entry2 {
            function: leaf,
            index,
            flags: KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
            eax: shift,
            ebx: cpus & 0xffff,
            ecx: kind << 8 | index,
            edx: apic,
            ..Default::default()
        };
        out.push(level(0, topo.smt_bits(), topo.threads_per_core, LEVEL_SMT));
        out.push(level(1, topo.package_shift(), per_package, LEVEL_CORE));
        out.push(level(2, 0, 0, 0));
    }
    // At most KVM's list plus six entries; KVM_MAX_CPUID_ENTRIES is 256
    // and this host's list has about 70.
    CpuId::from_entries(&out).unwrap_or_else(|_| base.clone())
}

fn rdtsc() -> u64 {
    // SAFETY: rdtsc has no memory effects; every x86-64 CPU has it.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Fallback when KVM_GET_TSC_KHZ is unavailable: count host TSC ticks
/// against CLOCK_MONOTONIC for about 10 ms (the guest runs on the host TSC).
pub fn measure_tsc_khz() -> u64 {
    let (t0, c0) = (Instant::now(), rdtsc());
    std::thread::sleep(Duration::from_millis(10));
    let (ns, c) = (
        t0.elapsed().as_nanos().max(1) as u64,
        rdtsc().wrapping_sub(c0),
    );
    (c as u128 * 1_000_000 / ns as u128) as u64
}

#[cfg(test)]
mod tests {
    use abi::topology::Topology;
    use kvm_bindings::{CpuId, kvm_cpuid_entry2};

    fn entry(function: u32, index: u32, eax: u32, ebx: u32, edx: u32) -> kvm_cpuid_entry2 {
        kvm_cpuid_entry2 {
            function,
            index,
            eax,
            ebx,
            edx,
            ..Default::default()
        }
    }

    fn find(c: &CpuId, function: u32, index: u32) -> kvm_cpuid_entry2 {
        *c.as_slice()
            .iter()
            .find(|e| e.function == function && e.index == index)
            .unwrap_or_else(|| panic!("no leaf {function:#x}.{index}"))
    }

    /// An Intel CPU like this host's: max leaf 0x1c (no 0x1F), L1d, L1i,
    /// L2 and L3 in leaf 4, an all-zero leaf 0xB.
    fn intel() -> CpuId {
        CpuId::from_entries(&[
            entry(0, 0, 0x1c, u32::from_le_bytes(*b"Genu"), 0),
            entry(1, 0, 0xc06f2, 0x0002_0800, 0x0f8b_fbff),
            entry(4, 0, 0x0400_0121, 0, 0),
            entry(4, 1, 0x0400_0122, 0, 0),
            entry(4, 2, 0x0400_0143, 0, 0),
            entry(4, 3, 0x0400_4163, 0, 0),
            entry(4, 4, 0, 0, 0),
            entry(0xb, 0, 0, 0, 0),
            entry(7, 0, 0, 0xffff, 0xffff),
        ])
        .unwrap()
    }

    const ODD: Topology = Topology {
        sockets: 1,
        llcs_per_socket: 2,
        cores_per_llc: 3,
        threads_per_core: 2,
    };

    #[test]
    fn cpuid_tells_the_topology_on_intel() {
        // CPU 7: LLC 1, its core 0, thread 1; APIC id 0b1_00_1 = 9.
        let c = super::cpuid_for(&intel(), &ODD, 7);
        let l1 = find(&c, 1, 0);
        assert_eq!(l1.ebx, 0x0910_0800, "APIC id 9, 16 addressable ids");
        assert_ne!(l1.edx & super::CPUID_1_EDX_HTT, 0);
        assert_eq!(
            l1.edx & !super::CPUID_1_EDX_HTT,
            0x0f8b_fbff & !super::CPUID_1_EDX_HTT
        );
        let (smt, core, end) = (find(&c, 0xb, 0), find(&c, 0xb, 1), find(&c, 0xb, 2));
        assert_eq!((smt.eax, smt.ebx, smt.ecx, smt.edx), (1, 2, 0x100, 9));
        assert_eq!((core.eax, core.ebx, core.ecx, core.edx), (4, 12, 0x201, 9));
        assert_eq!((end.eax, end.ebx, end.ecx >> 8, end.edx), (0, 0, 0, 9));
        assert!(
            c.as_slice().iter().all(|e| e.function != 0x1f),
            "max leaf 0x1c"
        );
        let sharing = |i| (find(&c, 4, i).eax >> 14) & 0xfff;
        let cores = |i| find(&c, 4, i).eax >> 26;
        // L1d, L1i, L2 per SMT core; L3 per LLC of 3 cores x 2 threads.
        assert_eq!(
            [sharing(0), sharing(1), sharing(2), sharing(3)],
            [1, 1, 1, 5]
        );
        assert_eq!([cores(0), cores(3)], [5, 5], "6 cores per package");
        assert_eq!(
            find(&c, 4, 3).eax & 0x3fff,
            0x0163,
            "cache type and level kept"
        );
        assert_eq!(find(&c, 4, 4).eax, 0, "the list's end stays empty");
        assert_eq!(find(&c, 7, 0).ebx, 0xffff, "other leaves untouched");

        // One CPU per package: no HTT, and a flat shape's ids are indexes.
        let one = super::cpuid_for(&intel(), &Topology::flat(1), 0);
        assert_eq!(find(&one, 1, 0).edx & super::CPUID_1_EDX_HTT, 0);
        assert_eq!(find(&one, 1, 0).ebx >> 16, 0x01);
        let flat = super::cpuid_for(&intel(), &Topology::flat(4), 3);
        assert_eq!((find(&flat, 0xb, 0).edx, find(&flat, 0xb, 1).eax), (3, 2));
    }

    #[test]
    fn cpuid_fills_leaf_1f_and_amds_leaves_when_the_cpu_has_them() {
        let base = CpuId::from_entries(&[
            entry(0, 0, 0x1f, super::VENDOR_AMD_EBX, 0),
            entry(1, 0, 0, 0, 0),
            entry(0x1f, 0, 0, 0, 0),
            entry(0x8000_0008, 0, 0x3030, 0, 0),
            entry(0x8000_001d, 0, 0x0000_0163, 0, 0),
            entry(0x8000_001e, 0, 0, 0, 0),
        ])
        .unwrap();
        let two = Topology {
            sockets: 2,
            llcs_per_socket: 1,
            cores_per_llc: 2,
            threads_per_core: 2,
        };
        // CPU 6: socket 1, core 3 (1 of its socket), thread 0: id 0b1_1_0.
        let c = super::cpuid_for(&base, &two, 6);
        assert_eq!((find(&c, 0x1f, 0).edx, find(&c, 0x1f, 1).eax), (6, 2));
        assert_eq!(find(&c, 0xb, 1).ebx, 4);
        let e = find(&c, 0x8000_001e, 0);
        assert_eq!((e.eax, e.ebx, e.ecx), (6, 0x103, 1));
        assert_eq!(find(&c, 0x8000_0008, 0).ecx, 0x2003);
        assert_eq!((find(&c, 0x8000_001d, 0).eax >> 14) & 0xfff, 3);
    }

    #[test]
    fn measured_tsc_is_plausible() {
        let khz = super::measure_tsc_khz();
        assert!((100_000..20_000_000).contains(&khz), "{khz} kHz");
    }

    #[test]
    fn missing_kvm_device_names_dev_kvm_and_the_fix() {
        let path = "/nonexistent/schedlab-test-kvm";
        let err = super::open_kvm_at(path).unwrap_err();
        assert!(
            err.message
                .starts_with(&format!("cannot open {path}: No such file")),
            "{err}"
        );
        assert!(err.message.contains("/dev/kvm exists"), "{err}");
        assert_eq!(err.exit_code(), 69);
    }
}
