//! Creating the VM: /dev/kvm, RAM, vCPUs, and everything written into
//! guest memory before the first KVM_RUN (tables, images, config, boot
//! info). Errors here are environment problems (exit 69), worded so the
//! user knows what to fix.

use super::memory::GuestRam;
use super::setup::{self, BootParams};
use crate::exit::{Failure, Result};
use crate::images::Images;
use kvm_bindings::{
    KVM_API_VERSION, KVM_CAP_DISABLE_QUIRKS2, KVM_MAX_CPUID_ENTRIES,
    KVM_X86_QUIRK_FIX_HYPERCALL_INSN, kvm_enable_cap, kvm_userspace_memory_region,
};
use kvm_ioctls::{Kvm, VcpuFd, VmFd};
use linux_loader::loader::{Elf, KernelLoader};
use shared::memmap::{
    BOOT_INFO_ADDR, CORE_LOAD_ADDR, CORE_MAX_SIZE, GDT_ADDR, OPERATION_CONFIG_ADDR,
    OPERATION_CONFIG_MAX, OPERATION_LOAD_ADDR, PAGE_TABLES_ADDR, tss_base,
};
use std::ffi::CString;
use std::io::Cursor;
use std::sync::Arc;
use std::time::{Duration, Instant};
use vm_memory::{Address, Bytes, GuestAddress};

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
            let mut c = cpuid.clone();
            for e in c.as_mut_slice() {
                if e.function == 1 {
                    // Initial APIC id, so CPL0 `cpuid` tells vCPUs apart.
                    e.ebx = (e.ebx & 0x00ff_ffff) | (cpu << 24);
                }
            }
            fd.set_cpuid2(&c).map_err(kvm_err("KVM_SET_CPUID2"))?;
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
        let tables: Vec<u8> = setup::page_tables(self.ram.size())
            .iter()
            .flat_map(|e| e.to_le_bytes())
            .collect();
        mem.write_slice(&tables, GuestAddress(PAGE_TABLES_ADDR))
            .map_err(oops("page tables"))?;
        let gdt: Vec<u8> = setup::gdt().iter().flat_map(|e| e.to_le_bytes()).collect();
        mem.write_slice(&gdt, GuestAddress(GDT_ADDR))
            .map_err(oops("the GDT"))?;
        for cpu in 0..spec.cpu_count {
            for (off, bytes) in setup::tss_fields(cpu) {
                mem.write_slice(&bytes, GuestAddress(tss_base(cpu) + off))
                    .map_err(oops("a TSS"))?;
            }
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
        if entry != core.entry || !(CORE_LOAD_ADDR..CORE_LOAD_ADDR + CORE_MAX_SIZE).contains(&entry)
        {
            return Err(Failure::image(format!(
                "{}: loaded entry {entry:#x} is outside the core region",
                core.label
            )));
        }
        // linux-loader skips segments without file bytes (.bss); the image
        // check measured those too.
        let high_water = loaded.kernel_end.max(core.end);
        if high_water > CORE_LOAD_ADDR + CORE_MAX_SIZE {
            return Err(Failure::image(format!(
                "{}: image ends at {high_water:#x}, past CORE_LOAD_ADDR + CORE_MAX_SIZE: run `make`",
                core.label
            )));
        }
        mem.write_slice(&images.op.bin, GuestAddress(OPERATION_LOAD_ADDR))
            .map_err(oops("the operation"))?;
        mem.write_slice(spec.config, GuestAddress(OPERATION_CONFIG_ADDR))
            .map_err(oops("the config"))?;

        let info = setup::boot_info(&BootParams {
            cpu_count: spec.cpu_count,
            config_len: spec.config.len() as u32,
            mem_size: self.ram.size(),
            tsc_khz: self.tsc_khz,
            slice_ns: spec.slice_ns,
            seed: spec.seed,
            epoch_tsc: self.epoch_tsc,
        });
        mem.write_slice(&setup::boot_info_bytes(&info), GuestAddress(BOOT_INFO_ADDR))
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

/// The place for the interrupt controller. Nothing yet: one vCPU and no
/// timer. Preemption by the LAPIC timer will need KVM_CREATE_IRQCHIP (and
/// KVM_CREATE_PIT2) here, before the vCPUs are created, and then
/// KVM_SET_MP_STATE(RUNNABLE) on every vCPU but the first, or they never run.
fn setup_interrupts(_vm: &VmFd) -> Result<()> {
    Ok(())
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
