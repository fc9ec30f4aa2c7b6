//! Operation configs: the VMM writes one at
//! [`crate::memmap::OPERATION_CONFIG_ADDR`]; the operation reads it through
//! the call table. Each starts with a 4-byte ASCII magic naming its
//! operation and a version, so an operation never misreads another's config.

use crate::tag;

mod workloads;
pub use workloads::*;

/// `as_bytes` / `from_bytes` for a config struct: every config is repr(C),
/// made only of integers, with no padding (each asserts its size), so its
/// bytes are fully initialised and any bytes are a valid value.
#[macro_export]
macro_rules! plain_config {
    ($t:ty, $magic:expr, $version:expr) => {
        impl $t {
            /// The config as the bytes the VMM writes into guest memory.
            pub fn as_bytes(&self) -> &[u8] {
                // SAFETY: see plain_config!: repr(C), integers only, no
                // padding, so every byte is initialised.
                unsafe {
                    core::slice::from_raw_parts(
                        (self as *const Self).cast::<u8>(),
                        core::mem::size_of::<Self>(),
                    )
                }
            }

            /// Read a config from guest memory bytes, checking magic and
            /// version.
            pub fn from_bytes(b: &[u8]) -> Option<Self> {
                if b.len() < core::mem::size_of::<Self>() {
                    return None;
                }
                // SAFETY: the length was checked; read_unaligned copes with
                // any alignment; any bit pattern is a valid value.
                let c: Self = unsafe { core::ptr::read_unaligned(b.as_ptr().cast()) };
                (c.header.magic == $magic && c.header.version == $version).then_some(c)
            }
        }
        const _: () =
            assert!(core::mem::size_of::<$t>() as u64 <= $crate::memmap::OPERATION_CONFIG_MAX);
    };
}

/// The first 8 bytes of every config.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConfigHeader {
    pub magic: u32,
    pub version: u32,
}

pub const SPIN_MAGIC: u32 = tag(b"SPIN");
pub const SPIN_VERSION: u32 = 2;
/// Most tasks `spin` starts (the core's task table also holds the
/// operation's own main task).
pub const SPIN_MAX_TASKS: usize = 128;

/// Test-only triggers, so the fault paths can be exercised end to end.
pub const TEST_FAULT_NONE: u32 = 0;
/// Execute `ud2` in a task: a #UD the host must name.
pub const TEST_FAULT_UD2: u32 = 1;
/// Write through a null pointer: a #PF with CR2 = 0.
pub const TEST_FAULT_NULL: u32 = 2;
/// Spin forever, ignoring the duration: the host deadline must end it.
pub const TEST_FAULT_HANG: u32 = 3;
/// Wipe the IDT and fault: the vCPU triple-faults and shuts down.
pub const TEST_FAULT_TRIPLE: u32 = 4;
/// Panic in the operation: the message must reach the host.
pub const TEST_FAULT_PANIC: u32 = 5;
/// Mask this CPU's LAPIC timer and spin without preemption points: the
/// CPU's clock stops advancing and the host must report it stalled.
pub const TEST_FAULT_STALL: u32 = 6;

/// Config of the `spin` operation: N tasks each repeating a fixed unit of
/// integer work until `duration_ns` has passed.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpinConfig {
    pub header: ConfigHeader,
    pub tasks: u32,
    pub test_fault: u32,
    pub duration_ns: u64,
    /// Per-task weight; only the first `tasks` entries are used.
    pub weights: [u32; SPIN_MAX_TASKS],
    /// Per-task CPU mask (bit n = CPU n, 0 = any CPU).
    pub affinity: [u64; SPIN_MAX_TASKS],
}

impl SpinConfig {
    pub const fn new(tasks: u32, duration_ns: u64) -> Self {
        SpinConfig {
            header: ConfigHeader {
                magic: SPIN_MAGIC,
                version: SPIN_VERSION,
            },
            tasks,
            test_fault: TEST_FAULT_NONE,
            duration_ns,
            weights: [1; SPIN_MAX_TASKS],
            affinity: [0; SPIN_MAX_TASKS],
        }
    }
}

plain_config!(SpinConfig, SPIN_MAGIC, SPIN_VERSION);

const _: () = {
    use core::mem::{offset_of, size_of};
    assert!(size_of::<ConfigHeader>() == 8);
    assert!(offset_of!(SpinConfig, tasks) == 8);
    assert!(offset_of!(SpinConfig, test_fault) == 12);
    assert!(offset_of!(SpinConfig, duration_ns) == 16);
    assert!(offset_of!(SpinConfig, weights) == 24);
    assert!(offset_of!(SpinConfig, affinity) == 24 + 4 * SPIN_MAX_TASKS);
    assert!(size_of::<SpinConfig>() == 24 + 12 * SPIN_MAX_TASKS);
    assert!(size_of::<SpinConfig>() as u64 <= crate::memmap::OPERATION_CONFIG_MAX);
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spin_config_round_trips_and_checks_its_magic() {
        let mut c = SpinConfig::new(3, 5_000_000);
        c.weights[1] = 4;
        c.affinity[2] = 0b1010;
        let back = SpinConfig::from_bytes(c.as_bytes()).unwrap();
        assert_eq!(back, c);
        assert_eq!(&c.as_bytes()[..4], b"SPIN");
        let mut bad = [0u8; core::mem::size_of::<SpinConfig>()];
        bad.copy_from_slice(c.as_bytes());
        bad[0] = b'X';
        assert!(SpinConfig::from_bytes(&bad).is_none());
        assert!(SpinConfig::from_bytes(&c.as_bytes()[..20]).is_none());
    }
}

pub const IPC_MAGIC: u32 = tag(b"IPCX");
pub const IPC_VERSION: u32 = 1;
/// Most checks one `IpcResult` carries (the operation makes 11 today);
/// the guest drops any beyond, and the host refuses more while decoding.
pub const IPC_MAX_CHECKS: usize = 16;
/// Longest name of an ipc check, in bytes (the guest cuts longer ones).
pub const IPC_CHECK_NAME_MAX: usize = 32;

/// Config of the `ipc` operation: it exercises every IPC path of the core
/// (pid, topic, broadcast, monitors, full mailboxes, sleeps and timeouts)
/// and times `rounds` cross-CPU ping-pong round trips.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpcConfig {
    pub header: ConfigHeader,
    pub rounds: u32,
    pub reserved: u32,
}

impl IpcConfig {
    pub const fn new(rounds: u32) -> Self {
        IpcConfig {
            header: ConfigHeader {
                magic: IPC_MAGIC,
                version: IPC_VERSION,
            },
            rounds,
            reserved: 0,
        }
    }
}

plain_config!(IpcConfig, IPC_MAGIC, IPC_VERSION);
const _: () = assert!(core::mem::size_of::<IpcConfig>() == 16);
