//! What the VMM tells the core at boot, and how the core tells the VMM it
//! is done. The boot info is the only input the core trusts less than its
//! own code: it validates every field before use.

use crate::tag;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

pub const BOOT_MAGIC: u32 = tag(b"BOOT");
pub const BOOT_VERSION: u32 = 3;

/// Written by the VMM at [`crate::memmap::BOOT_INFO_ADDR`] as its
/// [`IntoBytes::as_bytes`].
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct BootInfo {
    pub magic: u32,
    pub version: u32,
    /// vCPUs started by the VMM (1..=MAX_CPUS).
    pub cpu_count: u32,
    /// Bytes of the operation config at OPERATION_CONFIG_ADDR.
    pub config_len: u32,
    /// Guest RAM in bytes.
    pub mem_size: u64,
    /// TSC ticks per millisecond, from KVM_GET_TSC_KHZ.
    pub tsc_khz: u64,
    /// Round-robin slice used by `preempt_point`, in ns.
    pub slice_ns: u64,
    /// Seed for anything random in the guest.
    pub seed: u64,
    /// Host TSC when the VMM created the VM; the guest's `now_ns` counts
    /// from here, so guest and host timestamps share one origin.
    pub epoch_tsc: u64,
    /// Scheduling policy id (the policies crate lists them).
    pub policy: u32,
    /// Policy parameter (test-only policies: the pid they single out).
    pub policy_arg: u32,
    /// LAPIC timer ticks per second on every CPU (1..=5000).
    pub tick_hz: u32,
    /// What an idle CPU does: IDLE_HALT or IDLE_POLL.
    pub idle: u32,
    /// Version 3. The machine's shape; `topology.cpus() == cpu_count`.
    pub topology: crate::topology::Topology,
}

/// Idle CPUs halt at CPL0 with interrupts on; a wake-up sends an IPI.
pub const IDLE_HALT: u32 = 0;
/// Idle CPUs spin at CPL3 on a per-CPU flag: lower wake-up latency, and a
/// host CPU burnt per idle vCPU.
pub const IDLE_POLL: u32 = 1;
/// Highest tick rate: KVM's LAPIC timer floor is 200 µs.
pub const MAX_TICK_HZ: u32 = 5000;
/// The base time slice's range (`BootInfo::slice_ns`): the core refuses
/// to boot outside it, so the host refuses `--slice` outside it first.
pub const MIN_SLICE_NS: u64 = 1_000;
pub const MAX_SLICE_NS: u64 = 1_000_000_000;

const _: () = {
    assert!(core::mem::size_of::<BootInfo>() == 88);
    assert!(core::mem::offset_of!(BootInfo, topology) == 72);
    assert!(core::mem::offset_of!(BootInfo, tick_hz) == 64);
    assert!(core::mem::offset_of!(BootInfo, tsc_khz) == 24);
    assert!(core::mem::offset_of!(BootInfo, epoch_tsc) == 48);
    assert!(core::mem::size_of::<BootInfo>() as u64 <= crate::memmap::BOOT_INFO_SIZE);
};

/// Port the core writes (from CPL0, one `out`) when the run ends. The
/// value is one of the `EXIT_*` codes below. Everything else goes through
/// shared memory; this is the only exit on the normal path.
pub const PORT_EXIT: u16 = 0x0600;

/// The run finished; the result is in the TLV ring.
pub const EXIT_DONE: u32 = 1;
/// A CPU exception: the CPL0 stub left `[vector, error code, rip, cs,
/// rflags, rsp, ss]` at the vCPU's rsp for the VMM to read.
pub const EXIT_FAULT: u32 = 2;
/// The guest panicked; the message was sent as a TLV error frame first.
pub const EXIT_PANIC: u32 = 3;
/// The core refused to start (bad boot info or image); the reason was sent
/// as a TLV error frame first.
pub const EXIT_BOOT_ERROR: u32 = 4;

/// Number of u64 words the fault stub leaves on the stack.
pub const FAULT_FRAME_WORDS: usize = 7;
