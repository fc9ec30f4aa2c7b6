//! Creating the VM: /dev/kvm, RAM, vCPUs, and everything written into
//! guest memory before the first KVM_RUN (tables, images, config, boot
//! info). Errors here are environment problems (exit 69), worded so the
//! user knows what to fix.

use super::memory::GuestRam;
use super::setup::{self, BootParams, SchedBoot};
use crate::exit::{Failure, Result};
use crate::images::Images;
use crate::policy_image::PolicyImage;
use abi::memmap::{
    BOOT_INFO_ADDR, GDT_ADDR, KERNEL_LOAD_ADDR, KERNEL_MAX_SIZE, OPERATION_CONFIG_ADDR,
    OPERATION_CONFIG_MAX, OPERATION_LOAD_ADDR, PAGE_TABLES_ADDR, tss_base,
};
use kvm_bindings::{
    CpuId, KVM_API_VERSION, KVM_CAP_DISABLE_QUIRKS2, KVM_MAX_CPUID_ENTRIES, KVM_MP_STATE_RUNNABLE,
    KVM_X86_QUIRK_FIX_HYPERCALL_INSN, kvm_enable_cap, kvm_mp_state, kvm_userspace_memory_region,
};
use kvm_ioctls::{Kvm, VcpuFd, VmFd};
use linux_loader::loader::{Elf, KernelLoader};
use std::ffi::CString;
use std::io::Cursor;
use std::sync::Arc;
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
    /// When KVM_CREATE_VM was called; all host timings count from here.
    pub t0: Instant,
    pub epoch_tsc: u64,
    pub tsc_khz: u64,
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

fn kvm_err(what: &str) -> impl Fn(kvm_ioctls::Error) -> Failure + '_ {
    move |e| {
        Failure::kvm(format!(
            "{what} failed: {}",
            std::io::Error::from_raw_os_error(e.errno())
        ))
    }
}

impl Machine {
    /// Create and fully prepare a VM; the vCPUs are ready for KVM_RUN.
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
        unsafe { vm.set_user_memory_region(region) }
            .map_err(kvm_err("KVM_SET_USER_MEMORY_REGION"))?;
        disable_hypercall_patching(&vm);
        setup_interrupts(&vm)?;

        let mut vcpus = Vec::new();
        let cpuid = kvm
            .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
            .map_err(kvm_err("KVM_GET_SUPPORTED_CPUID"))?;
        for cpu in 0..spec.cpu_count {
            let fd = vm
                .create_vcpu(cpu as u64)
                .map_err(kvm_err("KVM_CREATE_VCPU"))?;
            fd.set_cpuid2(&cpuid_for(&cpuid, cpu))
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
        let m = Machine {
            vcpus,
            _vm: vm,
            _kvm: kvm,
            ram,
            t0,
            epoch_tsc,
            tsc_khz,
        };
        m.write_guest_memory(images, spec)?;
        Ok(m)
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

/// Leaves whose EDX is the x2APIC id, one entry per sub-leaf.
const X2APIC_TOPOLOGY_LEAVES: [u32; 2] = [0xb, 0x1f];

/// KVM's supported CPUID with this vCPU's APIC id filled in (leaf 1
/// EBX[31:24], and the x2APIC id of the topology leaves), so CPL0 `cpuid`
/// and the LAPIC agree on which CPU this is.
pub fn cpuid_for(base: &CpuId, cpu: u32) -> CpuId {
    let mut c = base.clone();
    for e in c.as_mut_slice() {
        if e.function == 1 {
            e.ebx = (e.ebx & 0x00ff_ffff) | ((cpu & 0xff) << 24);
        } else if X2APIC_TOPOLOGY_LEAVES.contains(&e.function) {
            e.edx = cpu;
        }
    }
    c
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
    use kvm_bindings::{CpuId, kvm_cpuid_entry2};

    #[test]
    fn cpuid_carries_the_apic_id() {
        let entry = |function, index, ebx, edx| kvm_cpuid_entry2 {
            function,
            index,
            ebx,
            edx,
            ..Default::default()
        };
        let base = CpuId::from_entries(&[
            entry(1, 0, 0x0001_0800, 0x1234),
            entry(0xb, 0, 1, 0),
            entry(0xb, 1, 4, 0),
            entry(0x1f, 0, 1, 0),
            entry(7, 0, 0xffff, 0xffff),
        ])
        .unwrap();
        let c = super::cpuid_for(&base, 5);
        let e = c.as_slice();
        assert_eq!(e[0].ebx, 0x0501_0800, "leaf 1 EBX[31:24] = APIC id");
        assert_eq!(e[0].edx, 0x1234, "leaf 1 EDX untouched");
        assert_eq!((e[1].edx, e[2].edx, e[3].edx), (5, 5, 5));
        assert_eq!((e[1].ebx, e[2].ebx), (1, 4), "level info kept");
        assert_eq!((e[4].ebx, e[4].edx), (0xffff, 0xffff));
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
