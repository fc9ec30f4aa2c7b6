//! Typed messages between tasks. Every task has a bounded mailbox of
//! [`MAILBOX_CAPACITY`] messages in the mailbox region; a full mailbox
//! blocks the sender or fails the send (the sender chooses), it never
//! drops a message silently.

use crate::tag;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// One message: a type chosen by the operation, the sender's pid, a
/// correlation id to pair a reply with its request, and a small payload.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct Message {
    /// Operation-defined; values below [`MSG_USER`] are the core's.
    pub kind: u32,
    /// Filled in by the core.
    pub from: u32,
    pub corr: u64,
    /// Core's clock when sent (ns), filled in by the core.
    pub sent_ns: u64,
    pub len: u32,
    pub reserved: u32,
    pub data: [u8; MESSAGE_DATA],
}

pub const MESSAGE_DATA: usize = 32;
const _: () = assert!(core::mem::size_of::<Message>() == 64);

/// First message kind free for operations.
pub const MSG_USER: u32 = 0x100;
/// A monitored task ended: data = [`ExitNotice`].
pub const MSG_EXIT_NOTICE: u32 = 1;

/// Why a task ended, in an exit notice.
pub const EXIT_NORMAL: u32 = 0;
pub const EXIT_CRASHED: u32 = 1;
pub const EXIT_KILLED: u32 = 2;
pub const EXIT_TIMED_OUT: u32 = 3;

/// Payload of MSG_EXIT_NOTICE.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExitNotice {
    pub pid: u32,
    pub reason: u32,
    pub code: i32,
    pub reserved: u32,
}

const _: () = assert!(core::mem::size_of::<ExitNotice>() <= MESSAGE_DATA);

impl ExitNotice {
    pub fn to_data(self) -> [u8; MESSAGE_DATA] {
        let mut d = [0u8; MESSAGE_DATA];
        d[0..4].copy_from_slice(&self.pid.to_le_bytes());
        d[4..8].copy_from_slice(&self.reason.to_le_bytes());
        d[8..12].copy_from_slice(&self.code.to_le_bytes());
        d
    }

    pub fn from_data(d: &[u8; MESSAGE_DATA]) -> Self {
        let w = |i: usize| u32::from_le_bytes([d[i], d[i + 1], d[i + 2], d[i + 3]]);
        ExitNotice {
            pid: w(0),
            reason: w(4),
            code: w(8) as i32,
            reserved: 0,
        }
    }
}

/// Messages a mailbox holds.
pub const MAILBOX_CAPACITY: usize = 16;
/// Topics that can exist at once, and subscribers per topic.
pub const MAX_TOPICS: usize = 32;
pub const MAX_TOPIC_NAME: usize = 24;

/// `send` flags: wait for room (default) or fail with ERR_FULL.
pub const SEND_BLOCK: u32 = 0;
pub const SEND_NOWAIT: u32 = 1;

/// `recv` timeout meaning "wait forever".
pub const WAIT_FOREVER: u64 = u64::MAX;

/// Largest task weight `spawn_ex` accepts (weights are relative shares;
/// a spawn with more fails with ERR_INVALID). One definition for both
/// sides: the host refuses a larger `--weights` or scenario `weight`
/// before any VM starts (it used to allow 100,000 while the core refused
/// over 10,000, so such a run ended in a guest panic). 10,000:1 is already
/// beyond any share a run of a few seconds can measure.
pub const MAX_WEIGHT: u32 = 10_000;

/// Options for `spawn_ex`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct SpawnOptions {
    /// Relative weight (1 = default share, at most [`MAX_WEIGHT`]); see
    /// the policies.
    pub weight: u32,
    pub reserved: u32,
    /// CPUs the task may run on (bit n = CPU n); 0 means all.
    pub affinity: u64,
    /// Runtime after which the core ends the task with reason TIMED_OUT;
    /// 0 = no limit.
    pub runtime_limit_ns: u64,
}

impl SpawnOptions {
    pub const fn new(weight: u32) -> Self {
        SpawnOptions {
            weight,
            reserved: 0,
            affinity: 0,
            runtime_limit_ns: 0,
        }
    }
}

const _: () = assert!(core::mem::size_of::<SpawnOptions>() == 24);

/// Magic of the mailbox region header, so the host can find it in a dump.
pub const MAILBOX_MAGIC: u32 = tag(b"MBOX");
