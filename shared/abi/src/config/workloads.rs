//! Configs of the classic scheduler workloads and of declarative
//! scenarios. Layouts are pinned by size assertions; every struct is plain
//! integers (see [`OperationConfig`]).

use super::{ConfigHeader, OperationConfig};
use crate::tag;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

pub const PINGPONG_MAGIC: u32 = tag(b"PING");
pub const PINGPONG_VERSION: u32 = 1;
pub const PINGPONG_MAX_PAIRS: usize = 64;

/// `pingpong`: `pairs` pairs of tasks exchanging `rounds` messages each
/// (like `perf bench sched pipe`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct PingpongConfig {
    pub header: ConfigHeader,
    pub pairs: u32,
    pub rounds: u32,
    /// 1: both tasks of a pair are pinned to the same CPU.
    pub same_cpu: u32,
    pub reserved: u32,
}

impl PingpongConfig {
    pub const fn new(pairs: u32, rounds: u32, same_cpu: bool) -> Self {
        PingpongConfig {
            header: ConfigHeader {
                magic: PINGPONG_MAGIC,
                version: PINGPONG_VERSION,
            },
            pairs,
            rounds,
            same_cpu: same_cpu as u32,
            reserved: 0,
        }
    }
}
impl OperationConfig for PingpongConfig {
    const MAGIC: u32 = PINGPONG_MAGIC;
    const VERSION: u32 = PINGPONG_VERSION;
}
const _: () = assert!(core::mem::size_of::<PingpongConfig>() == 24);

pub const FANOUT_MAGIC: u32 = tag(b"FANO");
pub const FANOUT_VERSION: u32 = 1;

/// `fanout`: `groups` groups of `senders` senders and `receivers`
/// receivers; every sender sends `messages` messages to every receiver in
/// its group (like hackbench).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct FanoutConfig {
    pub header: ConfigHeader,
    pub groups: u32,
    pub senders: u32,
    pub receivers: u32,
    pub messages: u32,
}

impl FanoutConfig {
    pub const fn new(groups: u32, senders: u32, receivers: u32, messages: u32) -> Self {
        FanoutConfig {
            header: ConfigHeader {
                magic: FANOUT_MAGIC,
                version: FANOUT_VERSION,
            },
            groups,
            senders,
            receivers,
            messages,
        }
    }
}
impl OperationConfig for FanoutConfig {
    const MAGIC: u32 = FANOUT_MAGIC;
    const VERSION: u32 = FANOUT_VERSION;
}
const _: () = assert!(core::mem::size_of::<FanoutConfig>() == 24);

pub const PERIODIC_MAGIC: u32 = tag(b"PERI");
/// Version 2 added `priority` and `affinity` per task.
pub const PERIODIC_VERSION: u32 = 2;
pub const PERIODIC_MAX_TASKS: usize = 32;

/// `periodic`: each task is activated every `period_ns`, runs
/// `runtime_ns` of work and should finish within `deadline_ns` of its
/// activation (rt-app's periodic phase), for `duration_ns`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct PeriodicConfig {
    pub header: ConfigHeader,
    pub tasks: u32,
    pub reserved: u32,
    pub duration_ns: u64,
    pub period_ns: [u64; PERIODIC_MAX_TASKS],
    pub runtime_ns: [u64; PERIODIC_MAX_TASKS],
    pub deadline_ns: [u64; PERIODIC_MAX_TASKS],
    /// CPUs each task may run on (bit n = CPU n); 0 = any.
    pub affinity: [u64; PERIODIC_MAX_TASKS],
    /// Each task's fixed priority (higher runs first; 0 = none, a
    /// fixed-priority policy orders by period), passed on in its
    /// real-time attributes.
    pub priority: [u32; PERIODIC_MAX_TASKS],
}

impl PeriodicConfig {
    pub const fn new(duration_ns: u64) -> Self {
        PeriodicConfig {
            header: ConfigHeader {
                magic: PERIODIC_MAGIC,
                version: PERIODIC_VERSION,
            },
            tasks: 0,
            reserved: 0,
            duration_ns,
            period_ns: [0; PERIODIC_MAX_TASKS],
            runtime_ns: [0; PERIODIC_MAX_TASKS],
            deadline_ns: [0; PERIODIC_MAX_TASKS],
            affinity: [0; PERIODIC_MAX_TASKS],
            priority: [0; PERIODIC_MAX_TASKS],
        }
    }
}
impl OperationConfig for PeriodicConfig {
    const MAGIC: u32 = PERIODIC_MAGIC;
    const VERSION: u32 = PERIODIC_VERSION;
}
const _: () = assert!(core::mem::size_of::<PeriodicConfig>() == 24 + 36 * PERIODIC_MAX_TASKS);

pub const MIXED_MAGIC: u32 = tag(b"MIXD");
pub const MIXED_VERSION: u32 = 1;

/// `mixed`: `interactive` tasks (run `burst_ns`, sleep `sleep_ns`, again)
/// alongside `hogs` CPU hogs, for `duration_ns`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct MixedConfig {
    pub header: ConfigHeader,
    pub interactive: u32,
    pub hogs: u32,
    pub burst_ns: u64,
    pub sleep_ns: u64,
    pub duration_ns: u64,
}

impl MixedConfig {
    pub const fn new(
        interactive: u32,
        hogs: u32,
        burst_ns: u64,
        sleep_ns: u64,
        duration_ns: u64,
    ) -> Self {
        MixedConfig {
            header: ConfigHeader {
                magic: MIXED_MAGIC,
                version: MIXED_VERSION,
            },
            interactive,
            hogs,
            burst_ns,
            sleep_ns,
            duration_ns,
        }
    }
}
impl OperationConfig for MixedConfig {
    const MAGIC: u32 = MIXED_MAGIC;
    const VERSION: u32 = MIXED_VERSION;
}
const _: () = assert!(core::mem::size_of::<MixedConfig>() == 40);

pub const SCHBENCH_MAGIC: u32 = tag(b"SCHB");
pub const SCHBENCH_VERSION: u32 = 1;
/// Most message tasks `schbench` starts.
pub const SCHBENCH_MAX_MESSAGE_THREADS: usize = 16;
/// Most workers per message task (each message task keeps one send time
/// per worker on its stack). Message tasks and their workers together must
/// also fit the core's task table besides the main task:
/// [`SchbenchConfig::tasks`] `< MAX_TASKS`.
pub const SCHBENCH_MAX_WORKERS: usize = 128;

/// `schbench`: `message_threads` message tasks each own `workers` workers.
/// Until `duration_ns` has passed, a message task wakes each of its workers
/// with a message, every worker does `work_ns` of CPU work and replies,
/// and the next round starts when all have replied (like schbench).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct SchbenchConfig {
    pub header: ConfigHeader,
    pub message_threads: u32,
    /// Workers per message task.
    pub workers: u32,
    pub work_ns: u64,
    pub duration_ns: u64,
}

impl SchbenchConfig {
    pub const fn new(message_threads: u32, workers: u32, work_ns: u64, duration_ns: u64) -> Self {
        SchbenchConfig {
            header: ConfigHeader {
                magic: SCHBENCH_MAGIC,
                version: SCHBENCH_VERSION,
            },
            message_threads,
            workers,
            work_ns,
            duration_ns,
        }
    }

    /// Tasks the operation spawns: every message task and its workers.
    pub const fn tasks(&self) -> u64 {
        self.message_threads as u64 * (1 + self.workers as u64)
    }
}
impl OperationConfig for SchbenchConfig {
    const MAGIC: u32 = SCHBENCH_MAGIC;
    const VERSION: u32 = SCHBENCH_VERSION;
}
const _: () = {
    assert!(core::mem::size_of::<SchbenchConfig>() == 32);
    // One message task with the most workers fits beside the main task.
    assert!(1 + SCHBENCH_MAX_WORKERS < crate::memmap::MAX_TASKS);
};

pub const SCENARIO_MAGIC: u32 = tag(b"SCEN");
/// Version 2 added each task's real-time attributes (`ScenarioTask::rt`).
/// Version 3 added synchronisation objects (`ScenarioConfig::syncs`),
/// the phases on them (`PHASE_LOCK` to `PHASE_BARRIER`) and
/// `ScenarioTask::delay_ns`.
pub const SCENARIO_VERSION: u32 = 3;
/// Task kinds (named tasks in the file), phases per kind, topics.
pub const SCENARIO_MAX_KINDS: usize = 8;
pub const SCENARIO_MAX_PHASES: usize = 24;
pub const SCENARIO_MAX_TOPICS: usize = 8;
pub const SCENARIO_TOPIC_NAME: usize = 16;
/// Most task instances a scenario may start (all kinds' counts together).
pub const SCENARIO_MAX_INSTANCES: usize = 64;
/// Instances per `ScenarioResult` message: the operation reports its
/// instances in messages of at most this many (every field of 64 would
/// not fit one TLV payload) and the host joins them.
pub const SCENARIO_RESULT_CHUNK: usize = 16;
/// Named synchronisation objects: each is a mutex, a condition variable,
/// a barrier and a semaphore at once (rt-app's resources share one
/// namespace).
pub const SCENARIO_MAX_SYNCS: usize = 16;

/// Phase opcodes.
/// Run busy work for `value` ns of the task's own runtime.
pub const PHASE_RUN: u32 = 1;
/// Sleep `value` ns.
pub const PHASE_SLEEP: u32 = 2;
/// Send a message to the instance of kind `arg` with the sender's
/// instance number (modulo that kind's count).
pub const PHASE_SEND: u32 = 3;
/// Publish a message to topic `arg`.
pub const PHASE_PUBLISH: u32 = 4;
/// Wait for a message, at most `value` ns (0 = forever).
pub const PHASE_RECV: u32 = 5;
pub const PHASE_YIELD: u32 = 6;
/// Wait for the task's next activation, `value` ns after the previous one
/// (rt-app's `timer`): makes a loop periodic whatever its phases took.
/// How late the task woke counts as sleep overrun; an activation already
/// missed starts the next period from now (relative), or is run at once,
/// the next one staying on the grid (`TIMER_ABSOLUTE`). `arg`'s low byte
/// is a shared timer + 1 (rt-app's timers without the `unique` prefix:
/// every use by any instance moves the one activation on by a period), 0
/// for the phase's own timer.
pub const PHASE_TIMER: u32 = 7;
/// Start a new instance of kind `arg` (rt-app's `fork`), which goes
/// through its phases from the first, as the kind's first instances do.
/// A kind may start with no instances (`count` 0) and only be forked; at
/// most `SCENARIO_MAX_INSTANCES` run in all, a fork past that is refused
/// and counted.
pub const PHASE_FORK: u32 = 14;
/// Post to the semaphore of sync object `arg` (rt-app's `sem_post`).
pub const PHASE_SEM_POST: u32 = 15;
/// Take one from the semaphore of sync object `arg`, waiting while it is
/// zero (rt-app's `sem_wait`; the wait counts as blocked time).
pub const PHASE_SEM_WAIT: u32 = 16;
/// `PHASE_TIMER`'s `arg` bit: absolute mode.
pub const TIMER_ABSOLUTE: u32 = 1 << 8;
/// Shared timers a scenario may name.
pub const SCENARIO_MAX_TIMERS: usize = 8;
/// Lock the mutex of sync object `arg` (blocking; the time it took counts
/// as lock wait).
pub const PHASE_LOCK: u32 = 8;
/// Unlock the mutex of sync object `arg`, if this task holds it.
pub const PHASE_UNLOCK: u32 = 9;
/// Wait on the condition variable of sync object `arg` with the mutex of
/// object `value` (released while waiting if held, as
/// `pthread_cond_wait`).
pub const PHASE_WAIT: u32 = 10;
/// Wake the longest waiter on the condition variable of object `arg`.
pub const PHASE_SIGNAL: u32 = 11;
/// Wake every waiter on the condition variable of object `arg`.
pub const PHASE_BROADCAST: u32 = 12;
/// Wait at the barrier of object `arg` until all its parties
/// (`ScenarioConfig::sync_parties`) arrive.
pub const PHASE_BARRIER: u32 = 13;

#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct Phase {
    pub op: u32,
    pub arg: u32,
    pub value: u64,
}

/// One named task of a scenario, started `count` times.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct ScenarioTask {
    pub count: u32,
    pub weight: u32,
    /// CPU mask, 0 = any.
    pub affinity: u64,
    /// Times to go through the phases; 0 = until the scenario's duration.
    pub repeat: u32,
    pub phases: u32,
    /// Topics (bit n = topic n) the task subscribes to before its phases.
    pub subscribe: u32,
    pub reserved: u32,
    pub phase: [Phase; SCENARIO_MAX_PHASES],
    /// Real-time attributes each instance is spawned with: from a task
    /// with a `timer` phase, the timer's period, the run phases' time per
    /// loop and the deadline (the period unless given); all 0 otherwise.
    pub rt: crate::ipc::RtAttrs,
    /// Sleep this long once, before the first pass (rt-app's `delay`).
    pub delay_ns: u64,
}

/// `scenario`: a declarative task mix compiled by the host from a TOML
/// file, interpreted by the `scenario` operation.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct ScenarioConfig {
    pub header: ConfigHeader,
    pub kinds: u32,
    pub topics: u32,
    pub duration_ns: u64,
    pub topic_name: [[u8; SCENARIO_TOPIC_NAME]; SCENARIO_MAX_TOPICS],
    pub task: [ScenarioTask; SCENARIO_MAX_KINDS],
    /// Sync objects the phases name (indices below this).
    pub syncs: u32,
    pub reserved: u32,
    /// Per sync object: the task instances that reach its barrier, so the
    /// last one to arrive releases them.
    pub sync_parties: [u32; SCENARIO_MAX_SYNCS],
}

impl ScenarioConfig {
    pub const fn new(duration_ns: u64) -> Self {
        ScenarioConfig {
            header: ConfigHeader {
                magic: SCENARIO_MAGIC,
                version: SCENARIO_VERSION,
            },
            kinds: 0,
            topics: 0,
            duration_ns,
            topic_name: [[0; SCENARIO_TOPIC_NAME]; SCENARIO_MAX_TOPICS],
            task: [ScenarioTask {
                count: 0,
                weight: 1,
                affinity: 0,
                repeat: 0,
                phases: 0,
                subscribe: 0,
                reserved: 0,
                phase: [Phase {
                    op: 0,
                    arg: 0,
                    value: 0,
                }; SCENARIO_MAX_PHASES],
                rt: crate::ipc::RtAttrs {
                    period_ns: 0,
                    runtime_ns: 0,
                    deadline_ns: 0,
                    priority: 0,
                    reserved: 0,
                },
                delay_ns: 0,
            }; SCENARIO_MAX_KINDS],
            syncs: 0,
            reserved: 0,
            sync_parties: [0; SCENARIO_MAX_SYNCS],
        }
    }
}
impl OperationConfig for ScenarioConfig {
    const MAGIC: u32 = SCENARIO_MAGIC;
    const VERSION: u32 = SCENARIO_VERSION;
}
const _: () = {
    assert!(core::mem::size_of::<Phase>() == 16);
    assert!(core::mem::size_of::<ScenarioTask>() == 32 + 16 * SCENARIO_MAX_PHASES + 32 + 8);
    assert!(
        core::mem::size_of::<ScenarioConfig>()
            == 24
                + SCENARIO_TOPIC_NAME * SCENARIO_MAX_TOPICS
                + core::mem::size_of::<ScenarioTask>() * SCENARIO_MAX_KINDS
                + 8
                + 4 * SCENARIO_MAX_SYNCS
    );
};

#[cfg(test)]
mod tests {
    use super::*;
    use zerocopy::IntoBytes;

    #[test]
    fn every_workload_config_round_trips_and_checks_its_magic() {
        let p = PingpongConfig::new(2, 1000, true);
        assert_eq!(PingpongConfig::from_bytes(p.as_bytes()), Some(p));
        assert_eq!(&p.as_bytes()[..4], b"PING");
        assert!(FanoutConfig::from_bytes(p.as_bytes()).is_none());
        let f = FanoutConfig::new(2, 3, 4, 5);
        assert_eq!(FanoutConfig::from_bytes(f.as_bytes()), Some(f));
        let mut per = PeriodicConfig::new(1_000_000);
        per.tasks = 1;
        per.period_ns[0] = 10;
        assert_eq!(PeriodicConfig::from_bytes(per.as_bytes()), Some(per));
        let m = MixedConfig::new(2, 2, 1, 2, 3);
        assert_eq!(MixedConfig::from_bytes(m.as_bytes()), Some(m));
        let sb = SchbenchConfig::new(2, 4, 100_000, 200_000_000);
        assert_eq!(SchbenchConfig::from_bytes(sb.as_bytes()), Some(sb));
        assert_eq!(&sb.as_bytes()[..4], b"SCHB");
        assert_eq!(sb.tasks(), 10);
        assert!(MixedConfig::from_bytes(sb.as_bytes()).is_none());
        let mut sc = ScenarioConfig::new(5);
        sc.task[1].phase[3] = Phase {
            op: PHASE_SEND,
            arg: 1,
            value: 9,
        };
        assert_eq!(ScenarioConfig::from_bytes(sc.as_bytes()), Some(sc));
        assert!(ScenarioConfig::from_bytes(&sc.as_bytes()[..100]).is_none());
    }
}
