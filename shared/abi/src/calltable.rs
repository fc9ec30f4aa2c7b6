//! The call table: how an operation reaches the core. It is the single
//! definition; the core fills it at [`crate::memmap::CALL_TABLE_ADDR`], the
//! operation library reads it, and host tests build a mock of the same
//! type. Fields are only ever appended: an operation checks that
//! `version >= ` the version it was built against and that `size` covers
//! every field it uses, so a newer core still runs older operations.

use crate::ipc::{Message, SpawnOptions};
use crate::tag;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

pub const CALL_TABLE_MAGIC: u32 = tag(b"CTBL");
/// Bump when appending functions; never reorder or remove.
/// Version 4 added no function: `spawn_ex` reads `SpawnOptions::rt` (the
/// real-time attributes) when `SpawnOptions::size` says the caller filled
/// it; an operation that passes them needs a core that reads them.
/// Version 5 added `futex_wait` and `futex_wake`.
pub const CALL_TABLE_VERSION: u32 = 5;

/// Entry point of a spawned task: receives the argument given to `spawn`;
/// its return value is the task's exit code.
pub type TaskEntry = unsafe extern "C" fn(arg: u64) -> i32;

/// Errors returned (negated) by call-table functions.
pub const ERR_INVALID: i64 = -1;
pub const ERR_NO_SLOTS: i64 = -2;
pub const ERR_NO_TASK: i64 = -3;
pub const ERR_TOO_LONG: i64 = -4;
pub const ERR_DEADLOCK: i64 = -5;
/// The receiver's mailbox is full and the sender asked not to wait.
pub const ERR_FULL: i64 = -6;
/// Nothing arrived before the timeout.
pub const ERR_TIMEOUT: i64 = -7;
/// `futex_wait`: the word no longer held the expected value (not an
/// error: the caller looks again).
pub const FUTEX_CHANGED: i64 = 1;

/// What `join` reports about a finished task.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JoinInfo {
    pub exit_code: i32,
    pub cpu: u32,
    /// Time the task spent running, by the TSC, in ns.
    pub runtime_ns: u64,
    /// Times the task was switched in.
    pub switches: u64,
}

#[repr(C)]
pub struct CallTable {
    pub magic: u32,
    pub version: u32,
    /// `size_of::<CallTable>()` as the core was built.
    pub size: u32,
    pub reserved: u32,
    /// Log a line of UTF-8 text (`level`: 0 error .. 4 trace).
    pub log: unsafe extern "C" fn(level: u32, text: *const u8, len: usize),
    /// Send an encoded `GuestMessage` to the host. Returns 0 or an error.
    pub send_message: unsafe extern "C" fn(msg: *const u8, len: usize) -> i64,
    /// The operation's config bytes; `*len` receives their length.
    pub config: unsafe extern "C" fn(len: *mut usize) -> *const u8,
    /// ns since the VMM created the VM.
    pub now_ns: unsafe extern "C" fn() -> u64,
    /// Start a task; returns its pid (> 0) or an error.
    pub spawn: unsafe extern "C" fn(entry: TaskEntry, arg: u64, weight: u32) -> i64,
    /// End the calling task with `code`.
    pub exit: unsafe extern "C" fn(code: i32) -> !,
    /// Wait for task `pid` to end; fills `info`. Returns 0 or an error.
    pub join: unsafe extern "C" fn(pid: u32, info: *mut JoinInfo) -> i64,
    /// Give the CPU to the next runnable task.
    pub yield_now: unsafe extern "C" fn(),
    /// Switch only if the caller's slice is used up: cheap enough to call
    /// in an inner loop.
    pub preempt_point: unsafe extern "C" fn(),
    /// The calling task's pid.
    pub current_pid: unsafe extern "C" fn() -> u32,
    /// End the whole run now as failed, with this UTF-8 reason (panics
    /// land here).
    pub fail: unsafe extern "C" fn(text: *const u8, len: usize) -> !,

    // ---- version 2 ----
    /// Start a task with weight, affinity and a runtime limit (and, from
    /// version 4, real-time attributes; see `SpawnOptions::size`).
    pub spawn_ex:
        unsafe extern "C" fn(entry: TaskEntry, arg: u64, opts: *const SpawnOptions) -> i64,
    /// Sleep at least `ns` (granularity: the tick).
    pub sleep_ns: unsafe extern "C" fn(ns: u64),
    /// Send `msg` to task `to`. `flags`: SEND_BLOCK or SEND_NOWAIT.
    pub send: unsafe extern "C" fn(to: u32, msg: *const Message, flags: u32) -> i64,
    /// Take the oldest message, waiting up to `timeout_ns` (WAIT_FOREVER,
    /// or 0 to poll). Returns 0 or ERR_TIMEOUT.
    pub recv: unsafe extern "C" fn(out: *mut Message, timeout_ns: u64) -> i64,
    /// Subscribe the caller to a named topic (created on first use).
    pub subscribe: unsafe extern "C" fn(topic: *const u8, len: usize) -> i64,
    /// Send `msg` to every subscriber of `topic`; returns how many got it.
    pub publish:
        unsafe extern "C" fn(topic: *const u8, len: usize, msg: *const Message, flags: u32) -> i64,
    /// Send `msg` to every other live task; returns how many got it.
    pub broadcast: unsafe extern "C" fn(msg: *const Message, flags: u32) -> i64,
    /// When task `pid` ends, send the caller a MSG_EXIT_NOTICE.
    pub monitor: unsafe extern "C" fn(pid: u32) -> i64,
    /// End task `pid` with reason EXIT_KILLED.
    pub kill: unsafe extern "C" fn(pid: u32) -> i64,
    pub cpu_count: unsafe extern "C" fn() -> u32,
    /// The CPU the caller runs on (may change at any preemption point).
    pub current_cpu: unsafe extern "C" fn() -> u32,
    /// Version 3: how long the caller has waited runnable for a CPU in
    /// all, ns of wall time -- the time the policy gave its CPU to others.
    /// Time a task was away from a stretch of work beyond what it waited
    /// meanwhile was taken by interrupts or the host, not the policy.
    pub task_wait_ns: unsafe extern "C" fn() -> u64,
    /// Version 5: block while the aligned `u32` at `addr` holds
    /// `expected`, until `futex_wake` on it or `timeout_ns` (
    /// [`crate::ipc::WAIT_FOREVER`]: none). 0 when woken,
    /// [`FUTEX_CHANGED`] if it did not hold `expected`, [`ERR_TIMEOUT`].
    /// The one blocking primitive: mutexes, condition variables and
    /// barriers are built on it in the operation library, as on Linux.
    pub futex_wait: unsafe extern "C" fn(addr: *const u32, expected: u32, timeout_ns: u64) -> i64,
    /// Wake up to `n` tasks blocked in `futex_wait` on `addr`, longest
    /// waiting first; returns how many.
    pub futex_wake: unsafe extern "C" fn(addr: *const u32, n: u32) -> i64,
}

const _: () = {
    use core::mem::{offset_of, size_of};
    assert!(offset_of!(CallTable, magic) == 0);
    assert!(offset_of!(CallTable, version) == 4);
    assert!(offset_of!(CallTable, size) == 8);
    assert!(offset_of!(CallTable, log) == 16);
    assert!(offset_of!(CallTable, send_message) == 24);
    assert!(offset_of!(CallTable, config) == 32);
    assert!(offset_of!(CallTable, now_ns) == 40);
    assert!(offset_of!(CallTable, spawn) == 48);
    assert!(offset_of!(CallTable, exit) == 56);
    assert!(offset_of!(CallTable, join) == 64);
    assert!(offset_of!(CallTable, yield_now) == 72);
    assert!(offset_of!(CallTable, preempt_point) == 80);
    assert!(offset_of!(CallTable, current_pid) == 88);
    assert!(offset_of!(CallTable, fail) == 96);
    assert!(offset_of!(CallTable, spawn_ex) == 104);
    assert!(offset_of!(CallTable, current_cpu) == 184);
    assert!(offset_of!(CallTable, task_wait_ns) == 192);
    assert!(offset_of!(CallTable, futex_wait) == 200);
    assert!(offset_of!(CallTable, futex_wake) == 208);
    assert!(size_of::<CallTable>() == 216);
    assert!(size_of::<CallTable>() as u64 <= crate::memmap::CALL_TABLE_SIZE);
    assert!(size_of::<JoinInfo>() == 24);
};

/// Why an operation refuses a call table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableError {
    BadMagic(u32),
    TooOld { have: u32, need: u32 },
    TooSmall { have: u32, need: u32 },
}

impl CallTable {
    /// Check that this table can serve an operation built against
    /// [`CALL_TABLE_VERSION`]: right magic, a version at least as new, and
    /// every field this build knows about present.
    pub fn check(&self) -> Result<(), TableError> {
        Self::check_header(self.magic, self.version, self.size, CALL_TABLE_VERSION)
    }

    /// The rule behind [`CallTable::check`], separate so it can be tested
    /// against versions other than the one built in.
    pub const fn check_header(
        magic: u32,
        version: u32,
        size: u32,
        need: u32,
    ) -> Result<(), TableError> {
        if magic != CALL_TABLE_MAGIC {
            return Err(TableError::BadMagic(magic));
        }
        if version < need {
            return Err(TableError::TooOld {
                have: version,
                need,
            });
        }
        let want = core::mem::size_of::<CallTable>() as u32;
        if size < want {
            return Err(TableError::TooSmall {
                have: size,
                need: want,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newer_core_is_accepted_older_is_refused() {
        let size = core::mem::size_of::<CallTable>() as u32;
        assert_eq!(
            CallTable::check_header(CALL_TABLE_MAGIC, 1, size, 1),
            Ok(())
        );
        assert_eq!(
            CallTable::check_header(CALL_TABLE_MAGIC, 7, size + 64, 1),
            Ok(())
        );
        assert_eq!(
            CallTable::check_header(CALL_TABLE_MAGIC, 1, size, 2),
            Err(TableError::TooOld { have: 1, need: 2 })
        );
        assert_eq!(
            CallTable::check_header(CALL_TABLE_MAGIC, 2, size - 8, 1),
            Err(TableError::TooSmall {
                have: size - 8,
                need: size
            })
        );
        assert_eq!(
            CallTable::check_header(0xdead, 1, size, 1),
            Err(TableError::BadMagic(0xdead))
        );
    }
}

/// Every guest image carries one of these in its `.schedlab_abi` section so
/// the host can refuse a core/operation pair that cannot work together
/// before it starts a VM (the operation still checks the live table too).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct AbiStamp {
    pub magic: u32,
    /// For the core: the call-table version it provides. For an
    /// operation: the version it needs.
    pub call_table_version: u32,
    /// Which side built this: [`IMAGE_CORE`] or [`IMAGE_OPERATION`].
    pub kind: u32,
    /// For an operation: the config magic it reads. 0 for the core.
    pub config_magic: u32,
}

pub const ABI_STAMP_MAGIC: u32 = tag(b"ABIS");
pub const ABI_STAMP_SECTION: &str = ".schedlab_abi";
pub const IMAGE_CORE: u32 = tag(b"CORE");
pub const IMAGE_OPERATION: u32 = tag(b"OPER");

const _: () = assert!(core::mem::size_of::<AbiStamp>() == 16);

impl AbiStamp {
    pub const fn new(kind: u32, config_magic: u32) -> Self {
        AbiStamp {
            magic: ABI_STAMP_MAGIC,
            call_table_version: CALL_TABLE_VERSION,
            kind,
            config_magic,
        }
    }

    /// Parse a stamp from the raw bytes of an image's stamp section.
    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        let (s, _) = AbiStamp::read_from_prefix(b).ok()?;
        (s.magic == ABI_STAMP_MAGIC).then_some(s)
    }
}
