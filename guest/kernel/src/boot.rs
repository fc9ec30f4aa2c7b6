//! The boot info is the VMM's word; the core checks every field it uses
//! before trusting it, and refuses to run with a reason the host can show.

use abi::boot::{
    BOOT_MAGIC, BOOT_VERSION, BootInfo, EXIT_BOOT_ERROR, IDLE_HALT, IDLE_POLL, MAX_SLICE_NS,
    MAX_TICK_HZ, MIN_SLICE_NS,
};
use abi::memmap::{BOOT_INFO_ADDR, MAP_END, MAX_CPUS, OPERATION_CONFIG_MAX};

pub fn read() -> BootInfo {
    // SAFETY: BOOT_INFO_ADDR is a fixed, identity-mapped region the VMM
    // fills before the vCPU starts; BootInfo is plain integers.
    unsafe { core::ptr::read_volatile(BOOT_INFO_ADDR as *const BootInfo) }
}

pub fn validate() -> Result<BootInfo, &'static str> {
    let b = read();
    if b.magic != BOOT_MAGIC {
        return Err("boot info: bad magic (the VMM did not write a BootInfo)");
    }
    if b.version != BOOT_VERSION {
        return Err("boot info: version mismatch between schedlab and the core: run make");
    }
    if b.cpu_count == 0 || b.cpu_count as usize > MAX_CPUS {
        return Err("boot info: cpu_count out of range (1..=64)");
    }
    if !b.topology.is_valid() || b.topology.cpus() != b.cpu_count {
        return Err("boot info: the topology does not have cpu_count CPUs");
    }
    if b.tick_hz == 0 || b.tick_hz > MAX_TICK_HZ {
        return Err("boot info: tick_hz out of range (1..=5000)");
    }
    if b.idle != IDLE_HALT && b.idle != IDLE_POLL {
        return Err("boot info: unknown idle mode");
    }
    if b.policy != abi::policy::POLICY_IMAGE_ID {
        return Err("boot info: policy is not POLICY_IMAGE_ID (a policy image must be loaded)");
    }
    if b.config_len as u64 > OPERATION_CONFIG_MAX {
        return Err("boot info: operation config longer than OPERATION_CONFIG_MAX");
    }
    if b.mem_size < MAP_END {
        return Err("boot info: guest RAM smaller than the memory map");
    }
    if !(100_000..=100_000_000).contains(&b.tsc_khz) {
        return Err("boot info: TSC frequency out of range (100 MHz..100 GHz)");
    }
    if !(MIN_SLICE_NS..=MAX_SLICE_NS).contains(&b.slice_ns) {
        return Err("boot info: slice out of range (1 us..1 s)");
    }
    Ok(b)
}

/// Report why the core will not run, and stop. Only the boot CPU gets
/// here before its ring exists, so (re)initialising ring 0 is safe.
pub fn refuse(why: &str) -> ! {
    crate::tlv::init(0);
    crate::tlv::error(2, why.as_bytes());
    crate::entry::exit_to_host(EXIT_BOOT_ERROR)
}
