//! Operation configs: the VMM writes one at
//! [`crate::memmap::OPERATION_CONFIG_ADDR`]; the operation reads it through
//! the call table. Each starts with a 4-byte ASCII magic naming its
//! operation and a version, so an operation never misreads another's config.

use crate::tag;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

mod workloads;
pub use workloads::*;

/// What every config is: repr(C), integers only, no padding (zerocopy's
/// derives prove it), starting with its [`ConfigHeader`]. The VMM writes a
/// config's [`IntoBytes::as_bytes`] into guest memory; the operation reads
/// it back with [`OperationConfig::from_bytes`].
pub trait OperationConfig: FromBytes + IntoBytes + Immutable + KnownLayout + Sized {
    /// The magic naming the operation this config is for.
    const MAGIC: u32;
    const VERSION: u32;

    /// Read a config from guest memory bytes (any alignment, trailing bytes
    /// ignored), checking magic and version.
    fn from_bytes(b: &[u8]) -> Option<Self> {
        let (c, _) = Self::read_from_prefix(b).ok()?;
        let h = ConfigHeader::ref_from_prefix(c.as_bytes()).ok()?.0;
        (h.magic == Self::MAGIC && h.version == Self::VERSION).then_some(c)
    }
}

/// The first 8 bytes of every config.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct ConfigHeader {
    pub magic: u32,
    pub version: u32,
}

/// Most tasks an operation can start besides its own main task: the
/// core's task table less that one. fanout's and mixed's limit, on both
/// sides.
pub const MAX_WORKERS: usize = crate::memmap::MAX_TASKS - 1;

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
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
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

impl OperationConfig for SpinConfig {
    const MAGIC: u32 = SPIN_MAGIC;
    const VERSION: u32 = SPIN_VERSION;
}

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
    use zerocopy::IntoBytes;

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
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
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

impl OperationConfig for IpcConfig {
    const MAGIC: u32 = IPC_MAGIC;
    const VERSION: u32 = IPC_VERSION;
}
const _: () = assert!(core::mem::size_of::<IpcConfig>() == 16);

// Every config fits the config region and starts with its header, which
// `OperationConfig::from_bytes` reads from the first 8 bytes.
const _: () = {
    use crate::memmap::OPERATION_CONFIG_MAX as MAX;
    use core::mem::{offset_of, size_of};
    assert!(offset_of!(SpinConfig, header) == 0 && size_of::<SpinConfig>() as u64 <= MAX);
    assert!(offset_of!(IpcConfig, header) == 0 && size_of::<IpcConfig>() as u64 <= MAX);
    assert!(offset_of!(PingpongConfig, header) == 0 && size_of::<PingpongConfig>() as u64 <= MAX);
    assert!(offset_of!(FanoutConfig, header) == 0 && size_of::<FanoutConfig>() as u64 <= MAX);
    assert!(offset_of!(PeriodicConfig, header) == 0 && size_of::<PeriodicConfig>() as u64 <= MAX);
    assert!(offset_of!(MixedConfig, header) == 0 && size_of::<MixedConfig>() as u64 <= MAX);
    assert!(offset_of!(ScenarioConfig, header) == 0 && size_of::<ScenarioConfig>() as u64 <= MAX);
};
