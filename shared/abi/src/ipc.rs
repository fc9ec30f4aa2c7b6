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
/// Bytes of one task's mailbox in the mailbox region, as the core lays it
/// out (a head and a length, then MAILBOX_CAPACITY messages; asserted in
/// the core), for the VMM to know which pages the first tasks touch.
pub const MAILBOX_SIZE: u64 = (8 + MAILBOX_CAPACITY * core::mem::size_of::<Message>()) as u64;
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
/// over 10,000, so such a run ended in a guest panic). Linux's weight of
/// nice -20, so every `--nice` maps to a weight.
pub const MAX_WEIGHT: u32 = NICE_TO_WEIGHT[0];

/// Nice values, as Linux's (`--nice`, scenario `nice`).
pub const MIN_NICE: i32 = -20;
pub const MAX_NICE: i32 = 19;

/// Linux's `sched_prio_to_weight`: the weight of nice `MIN_NICE + i`
/// (nice 0 is 1024; each step is about 1.25x, so a nice-0 task gets ~10 %
/// more CPU than a nice-1 one beside it).
pub const NICE_TO_WEIGHT: [u32; 40] = [
    88761, 71755, 56483, 46273, 36291, 29154, 23254, 18705, 14949, 11916, 9548, 7620, 6100, 4904,
    3906, 3121, 2501, 1991, 1586, 1277, 1024, 820, 655, 526, 423, 335, 272, 215, 172, 137, 110, 87,
    70, 56, 45, 36, 29, 23, 18, 15,
];

/// The weight of `nice` (None outside `MIN_NICE..=MAX_NICE`).
pub const fn nice_to_weight(nice: i32) -> Option<u32> {
    if nice < MIN_NICE || nice > MAX_NICE {
        None
    } else {
        Some(NICE_TO_WEIGHT[(nice - MIN_NICE) as usize])
    }
}

/// The nice value whose weight is exactly `weight`, if there is one.
pub fn weight_to_nice(weight: u32) -> Option<i32> {
    NICE_TO_WEIGHT
        .iter()
        .position(|&w| w == weight)
        .map(|i| i as i32 + MIN_NICE)
}

const _: () = {
    assert!(NICE_TO_WEIGHT[(0 - MIN_NICE) as usize] == 1024);
    assert!(NICE_TO_WEIGHT.len() == (MAX_NICE - MIN_NICE + 1) as usize);
};

/// A periodic (real-time) task's parameters, as Linux's `sched_attr`
/// gives SCHED_DEADLINE's (`sched_runtime`, `sched_deadline`,
/// `sched_period`) plus a fixed priority for fixed-priority policies. All
/// zero: not a periodic task. Policies read them in `PolicyTask`
/// (`rt_period_ns`...); the core only stores them.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct RtAttrs {
    /// Time between releases, ns; 0 = not periodic.
    pub period_ns: u64,
    /// CPU time one job needs (its budget), ns.
    pub runtime_ns: u64,
    /// Relative deadline of a job after its release, ns (<= period).
    pub deadline_ns: u64,
    /// Fixed priority: higher runs first; 0 = none given (a fixed-priority
    /// policy then orders by period, rate-monotonic).
    pub priority: u32,
    pub reserved: u32,
}

const _: () = assert!(core::mem::size_of::<RtAttrs>() == 32);

/// Options for `spawn_ex`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct SpawnOptions {
    /// Relative weight (1 = default share, at most [`MAX_WEIGHT`]); see
    /// the policies.
    pub weight: u32,
    /// Bytes of this struct the caller filled: 0 (an operation built
    /// before call table v4, which passed only the first
    /// [`SPAWN_OPTIONS_V2_SIZE`] bytes; this field was `reserved`, always
    /// 0) or [`SPAWN_OPTIONS_SIZE`]. The core reads `rt` only when it says
    /// so, so an older operation's options are never read past their end.
    pub size: u32,
    /// CPUs the task may run on (bit n = CPU n); 0 means all.
    pub affinity: u64,
    /// Runtime after which the core ends the task with reason TIMED_OUT;
    /// 0 = no limit.
    pub runtime_limit_ns: u64,
    /// Call table v4: the task's real-time parameters (all 0: none).
    pub rt: RtAttrs,
}

/// Size of `SpawnOptions` up to call table v3 (no `rt`).
pub const SPAWN_OPTIONS_V2_SIZE: u32 = 24;
/// Size of `SpawnOptions` since call table v4.
pub const SPAWN_OPTIONS_SIZE: u32 = core::mem::size_of::<SpawnOptions>() as u32;

impl SpawnOptions {
    pub const fn new(weight: u32) -> Self {
        SpawnOptions {
            weight,
            size: SPAWN_OPTIONS_SIZE,
            affinity: 0,
            runtime_limit_ns: 0,
            rt: RtAttrs {
                period_ns: 0,
                runtime_ns: 0,
                deadline_ns: 0,
                priority: 0,
                reserved: 0,
            },
        }
    }
}

const _: () = {
    use core::mem::{offset_of, size_of};
    // The first 24 bytes are the options every older operation passes.
    assert!(offset_of!(SpawnOptions, weight) == 0);
    assert!(offset_of!(SpawnOptions, size) == 4);
    assert!(offset_of!(SpawnOptions, affinity) == 8);
    assert!(offset_of!(SpawnOptions, runtime_limit_ns) == 16);
    assert!(offset_of!(SpawnOptions, rt) == SPAWN_OPTIONS_V2_SIZE as usize);
    assert!(size_of::<SpawnOptions>() == 56);
};

/// Magic of the mailbox region header, so the host can find it in a dump.
pub const MAILBOX_MAGIC: u32 = tag(b"MBOX");
