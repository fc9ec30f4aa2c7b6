//! The introspection area at [`crate::memmap::KERNEL_STATE_ADDR`]: state
//! the core publishes and the host reads straight out of guest memory
//! while vCPUs run, with no exit and no message. This version carries the
//! run's lifecycle; per-CPU records, the task table and event rings are
//! appended in later versions (the header's `version` says which).

use crate::tag;

pub const KSTATE_MAGIC: u32 = tag(b"KSTA");
pub const KSTATE_VERSION: u32 = 1;

/// `run_state` values.
pub const RUN_BOOTING: u32 = 0;
pub const RUN_RUNNING: u32 = 1;
pub const RUN_FINISHED: u32 = 2;
pub const RUN_FAILED: u32 = 3;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelStateHeader {
    pub magic: u32,
    pub version: u32,
    pub cpu_count: u32,
    /// One of the `RUN_*` values; written last, with release ordering.
    pub run_state: u32,
    pub tsc_khz: u64,
    /// Guest TSC when the core finished booting on CPU 0.
    pub boot_tsc: u64,
    /// Exit code of the operation's main task once `run_state` is
    /// RUN_FINISHED.
    pub exit_code: i64,
    /// Context switches so far, all CPUs.
    pub switches: u64,
    /// Tasks spawned so far (the operation's main task included).
    pub tasks_spawned: u64,
}

pub const KSTATE_RUN_STATE_OFFSET: u64 = 12;
const _: () = {
    assert!(core::mem::offset_of!(KernelStateHeader, run_state) as u64 == KSTATE_RUN_STATE_OFFSET);
    assert!(core::mem::offset_of!(KernelStateHeader, tsc_khz) == 16);
    assert!(core::mem::offset_of!(KernelStateHeader, switches) == 40);
    assert!(core::mem::size_of::<KernelStateHeader>() == 56);
    assert!(core::mem::size_of::<KernelStateHeader>() as u64 <= crate::memmap::KERNEL_STATE_SIZE);
};
