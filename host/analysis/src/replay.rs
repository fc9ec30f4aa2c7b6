//! [`Replay`]: the guest's events walked once, in TSC order, into what
//! happened -- who ran on each CPU when, each task's stretches on a CPU
//! (with steal-time stamps), its runnable waits, its wake-up -> switch-in
//! latencies and each CPU's run-queue changes.
//!
//! The replay knows no analysis window and no clock rate, because its two
//! consumers need different ones: the metrics measure it over the judge's
//! window, and again over the fairness window ([`crate::analyze_replay`]),
//! while the host's pictures draw it over the whole trace in nanoseconds.
//! One walk serves all of them, so the verdict and the pictures cannot
//! disagree about what the events say. A stretch still open after the last
//! event (a task running, a wait never ended) is kept open (`end: None`)
//! and each consumer closes it at its own end.
//!
//! It keeps two views that the guest's events should agree on: what each
//! CPU is running ([`Replay::segments`], for utilisation, switch counts and
//! the timeline) and what state each task is in ([`Replay::runs`] and
//! [`Replay::waits`], for runtime and waits). They are kept separately, so
//! that when events were lost and the two disagree, CPU time is still
//! attributed to the CPU and task time to the task, and the disagreement is
//! counted as an anomaly instead of corrupting both.

use crate::Event;
use abi::kstate::{
    EV_EXIT, EV_MIGRATE, EV_SPAWN, EV_SWITCH, EV_WAKEUP, PREV_BLOCKED, PREV_EXITED, PREV_IDLE,
    PREV_PREEMPTED, PREV_YIELDED,
};
use std::collections::HashMap;

/// CPU `cpu` ran `pid` (0 = idle) from `start` to `end` (TSC), as the
/// CPU's own switch events tell it: every switch on the CPU ends one
/// segment and starts the next, so the segments of a CPU follow each other
/// without gaps from its first switch on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    pub cpu: u32,
    pub pid: u32,
    /// The switch-in. None for the task the CPU's first switch switched
    /// out: it was running since before the trace began.
    pub start: Option<u64>,
    /// The switch-out. None when it was still running at the last event.
    pub end: Option<u64>,
}

/// A TSC stamp with the cumulative steal time (ns) of the CPU the event
/// came from: the steal accrued between two stamps is time the host did
/// not run the vCPU, which a task switched in meanwhile did not get.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    pub tsc: u64,
    pub steal_ns: u64,
}

/// Task `pid` was on CPU `cpu` (where it was switched in), as the task's
/// own events tell it. Runtime is measured from these, less the steal
/// between the two stamps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Run {
    pub pid: u32,
    pub cpu: u32,
    /// The switch-in. None for a task found running at its CPU's first
    /// switch: no switch-in was seen, so there is no steal stamp either and
    /// the time is counted uncorrected.
    pub start: Option<Stamp>,
    /// The switch-out TSC. None when still running at the last event.
    pub end: Option<u64>,
    /// The steal time at the end: the switch-out's stamp, or for a run
    /// still open, the latest stamp of its CPU.
    pub end_steal_ns: u64,
}

/// Task `pid` was runnable but not running from `start` to `end` (TSC).
/// A spawn or wake-up of a task already waiting does not start another
/// wait: the wait runs from the earliest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Wait {
    pub pid: u32,
    pub start: u64,
    /// Switch-in (or exit while queued). None when still waiting at the
    /// last event: a task starved until the end still has its wait.
    pub end: Option<u64>,
}

/// One event about `pid` at `tsc` (a wake-up or a migration), kept so that
/// a measurement can count the ones inside its window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mark {
    pub pid: u32,
    pub tsc: u64,
}

/// Task `pid` was moved from CPU `from`'s queue to CPU `to`'s at `tsc`
/// (an EV_MIGRATE event; CPUs as the guest wrote them, maybe out of
/// range).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Migration {
    pub pid: u32,
    pub tsc: u64,
    pub from: u32,
    pub to: u32,
}

/// Task `pid` was woken, then switched in at `switched_in` (TSC).
///
/// Two starts, because the two consumers have always read lost events
/// differently: `woken` is the first wake-up since the task's previous
/// switch-in or exit, whatever state the task was in (the pictures' wake-up
/// latency); `woken_off_cpu` is the first wake-up that found the task off
/// its CPU, forgotten if the task switched out exiting (the metrics'). A
/// wake-up of a running task means events were lost; on a consistent
/// stream the two are equal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WakeLatency {
    pub pid: u32,
    pub woken: u64,
    pub woken_off_cpu: Option<u64>,
    pub switched_in: u64,
}

/// CPU's queue length changed by `delta` at `tsc`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RqChange {
    pub tsc: u64,
    pub delta: i32,
}

/// The events of one run of a machine with [`cpus`](Replay::cpus) CPUs,
/// replayed. Build it with [`Replay::from_events`]; measure it with
/// [`crate::analyze_replay`]. All times are guest TSC; the lists are in the
/// order the replay closed their entries (open ones last), so equal events
/// give equal replays.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Replay {
    pub cpus: u32,
    /// Events given, including any the replay could not use.
    pub events: u64,
    /// TSC of the earliest and the latest event; None without events.
    pub span: Option<(u64, u64)>,
    /// The CPUs' view, idle included; see [`Segment`].
    pub segments: Vec<Segment>,
    /// The tasks' view of who ran; see [`Run`].
    pub runs: Vec<Run>,
    pub waits: Vec<Wait>,
    /// Every wake-up event (pid != 0).
    pub wakeups: Vec<Mark>,
    /// Every migrate event (pid != 0).
    pub migrations: Vec<Migration>,
    /// In switch-in order.
    pub wake_latencies: Vec<WakeLatency>,
    /// Per CPU (index = CPU), in time order: how its queue of runnable
    /// tasks changed, as reconstructed from the events (spawns, wake-ups
    /// and preemptions queue, switch-ins and exits dequeue, migrations
    /// move).
    pub rq_changes: Vec<Vec<RqChange>>,
    /// Inconsistencies met: events out of order within a CPU's ring,
    /// unknown kinds, CPUs out of range, switch-outs without switch-ins,
    /// wake-ups of running tasks... (see the crate docs). Non-zero means
    /// some of the above are best guesses.
    pub anomalies: u64,
}

impl Replay {
    /// Replay `events` (from all CPUs, in any order: they are sorted by
    /// TSC, stably, so same-TSC events keep their given order) of a
    /// machine with `cpus` CPUs. The guest is not trusted: a switch on a
    /// CPU beyond `cpus` is counted as an anomaly and ignored, and a task
    /// queued on such a CPU is in no CPU's queue.
    pub fn from_events(events: &[Event], cpus: u32) -> Replay {
        let mut order: Vec<&Event> = events.iter().collect();
        order.sort_by_key(|e| e.tsc);
        let mut w = Walk {
            cpus: (0..cpus).map(|_| CpuState::default()).collect(),
            tasks: HashMap::new(),
            out: Replay {
                cpus,
                events: events.len() as u64,
                span: order.first().zip(order.last()).map(|(a, b)| (a.tsc, b.tsc)),
                rq_changes: vec![Vec::new(); cpus as usize],
                anomalies: backwards_events(events),
                ..Replay::default()
            },
        };
        for e in order {
            w.event(e);
        }
        w.finish();
        w.out
    }
}

/// Count events whose TSC is lower than the previous event from the same
/// CPU in the order given: each CPU's ring is written in time order, so
/// this means a broken clock or a corrupted ring (merging CPUs in any
/// order is fine and not counted).
fn backwards_events(events: &[Event]) -> u64 {
    let mut last: HashMap<u16, u64> = HashMap::new();
    let mut n = 0;
    for e in events {
        if let Some(&l) = last.get(&e.cpu)
            && e.tsc < l
        {
            n += 1;
        }
        last.insert(e.cpu, e.tsc);
    }
    n
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Not seen yet (or its last state was lost).
    Unknown,
    Running {
        cpu: u32,
        since: u64,
        /// The CPU's cumulative steal time (ns) at the switch-in.
        steal: u64,
    },
    /// Runnable, not running; `queued` = the CPU whose queue holds it.
    Waiting {
        since: u64,
        queued: Option<u32>,
    },
    Blocked,
    Exited,
}

#[derive(Debug)]
struct TaskState {
    phase: Phase,
    /// TSC of a wake-up not yet followed by a switch-in, as the metrics
    /// count it (see [`WakeLatency::woken_off_cpu`]).
    wake_pending: Option<u64>,
    /// The same as the pictures count it (see [`WakeLatency::woken`]).
    /// Set by every wake-up that sets `wake_pending` and cleared wherever
    /// it is except at an exiting switch-out, so it is never None while
    /// `wake_pending` is Some.
    woken: Option<u64>,
}

impl TaskState {
    fn new() -> Self {
        TaskState {
            phase: Phase::Unknown,
            wake_pending: None,
            woken: None,
        }
    }
}

#[derive(Debug, Default)]
struct CpuState {
    /// None until the first switch event on this CPU; Some(0) = idle.
    current: Option<u32>,
    since: u64,
    /// Cumulative steal time (ns) in this CPU's latest event.
    steal: u64,
}

/// The replay in progress: the state the events move, and what they
/// have produced so far.
struct Walk {
    cpus: Vec<CpuState>,
    tasks: HashMap<u32, TaskState>,
    out: Replay,
}

impl Walk {
    /// CPU `cpu`'s queue length changes by `delta` at `t`.
    fn rq_change(&mut self, cpu: u32, t: u64, delta: i32) {
        if let Some(q) = self.out.rq_changes.get_mut(cpu as usize) {
            q.push(RqChange { tsc: t, delta });
        }
    }

    fn task(&mut self, pid: u32) -> &mut TaskState {
        self.tasks.entry(pid).or_insert_with(TaskState::new)
    }

    fn anomaly(&mut self) {
        self.out.anomalies += 1;
    }

    /// `pid` becomes runnable at `t`, queued on `queued`. A task already
    /// waiting keeps its earliest start (spawn followed by a wake-up is one
    /// wait), but follows the queue it was moved to.
    fn start_wait(&mut self, pid: u32, t: u64, queued: Option<u32>) {
        let phase = self.task(pid).phase;
        match phase {
            Phase::Waiting { since, queued: old } => {
                if old != queued {
                    if let Some(c) = old {
                        self.rq_change(c, t, -1);
                    }
                    if let Some(c) = queued {
                        self.rq_change(c, t, 1);
                    }
                }
                self.task(pid).phase = Phase::Waiting { since, queued };
            }
            _ => {
                if let Some(c) = queued {
                    self.rq_change(c, t, 1);
                }
                self.task(pid).phase = Phase::Waiting { since: t, queued };
            }
        }
    }

    /// Close a wait at `t` (switch-in or exit). The caller sets the phase.
    fn end_wait(&mut self, pid: u32, t: u64) {
        if let Phase::Waiting { since, queued } = self.task(pid).phase {
            self.out.waits.push(Wait {
                pid,
                start: since,
                end: Some(t),
            });
            if let Some(c) = queued {
                self.rq_change(c, t, -1);
            }
        }
    }

    fn queue_cpu(&self, cpu: u32) -> Option<u32> {
        ((cpu as usize) < self.cpus.len()).then_some(cpu)
    }

    fn event(&mut self, e: &Event) {
        if let Some(c) = self.cpus.get_mut(usize::from(e.cpu)) {
            c.steal = c.steal.max(e.steal_ns);
        }
        match e.kind {
            EV_SWITCH => self.switch(e),
            EV_WAKEUP => self.wakeup(e),
            EV_MIGRATE => self.migrate(e),
            EV_SPAWN => self.spawn(e),
            EV_EXIT => self.exit(e),
            _ => self.anomaly(),
        }
    }

    fn switch(&mut self, e: &Event) {
        let (t, cpu, next, prev, why) = (e.tsc, u32::from(e.cpu), e.pid, e.arg, e.arg2);
        if cpu as usize >= self.cpus.len() {
            self.anomaly();
            return;
        }

        // The CPU's view. The first switch on a CPU tells who ran before
        // it: since before the trace began (the trace usually starts
        // mid-run, so this is not an anomaly).
        let c = &mut self.cpus[cpu as usize];
        let first_on_cpu = c.current.is_none();
        let ended = match c.current {
            Some(cur) => Segment {
                cpu,
                pid: cur,
                start: Some(c.since),
                end: Some(t),
            },
            None => Segment {
                cpu,
                pid: prev,
                start: None,
                end: Some(t),
            },
        };
        // Segments never start before the last one ended, so busy time
        // cannot be counted twice even if the TSC went backwards.
        c.since = c.since.max(t);
        c.current = Some(next);
        if ended.pid != prev {
            self.anomaly();
        }
        self.out.segments.push(ended);

        // The outgoing task's view.
        if prev != 0 {
            match self.task(prev).phase {
                Phase::Running {
                    cpu: on,
                    since,
                    steal,
                } => {
                    if on != cpu {
                        self.anomaly();
                    }
                    self.out.runs.push(Run {
                        pid: prev,
                        cpu: on,
                        start: Some(Stamp {
                            tsc: since,
                            steal_ns: steal,
                        }),
                        end: Some(t),
                        end_steal_ns: e.steal_ns,
                    });
                }
                Phase::Unknown if first_on_cpu => self.out.runs.push(Run {
                    pid: prev,
                    cpu,
                    start: None,
                    end: Some(t),
                    end_steal_ns: e.steal_ns,
                }),
                Phase::Waiting { .. } => {
                    // Switched out while we thought it queued: its
                    // switch-in was lost. Its wait ended somewhere before.
                    self.anomaly();
                    self.end_wait(prev, t);
                }
                // Switch-out without switch-in.
                _ => self.anomaly(),
            }
            match why {
                PREV_PREEMPTED | PREV_YIELDED => {
                    self.task(prev).phase = Phase::Unknown;
                    let q = self.queue_cpu(cpu);
                    self.start_wait(prev, t, q);
                }
                PREV_BLOCKED => self.task(prev).phase = Phase::Blocked,
                PREV_EXITED => {
                    let ts = self.task(prev);
                    ts.phase = Phase::Exited;
                    ts.wake_pending = None;
                }
                _ => {
                    self.anomaly();
                    self.task(prev).phase = Phase::Unknown;
                }
            }
        } else if why > PREV_IDLE {
            self.anomaly();
        }

        // The incoming task's view.
        if next != 0 {
            match self.task(next).phase {
                Phase::Running {
                    cpu: on,
                    since,
                    steal,
                } => {
                    // Switched in twice without a switch-out: it ran
                    // until now somewhere.
                    self.anomaly();
                    self.out.runs.push(Run {
                        pid: next,
                        cpu: on,
                        start: Some(Stamp {
                            tsc: since,
                            steal_ns: steal,
                        }),
                        end: Some(t),
                        end_steal_ns: e.steal_ns,
                    });
                }
                Phase::Waiting { .. } => self.end_wait(next, t),
                Phase::Blocked | Phase::Exited => self.anomaly(),
                Phase::Unknown => {}
            }
            let ts = self.task(next);
            let off_cpu = ts.wake_pending.take();
            let woken = ts.woken.take();
            ts.phase = Phase::Running {
                cpu,
                since: t,
                steal: e.steal_ns,
            };
            debug_assert!(woken.is_some() || off_cpu.is_none());
            if let Some(woken) = woken {
                self.out.wake_latencies.push(WakeLatency {
                    pid: next,
                    woken,
                    woken_off_cpu: off_cpu,
                    switched_in: t,
                });
            }
        }
    }

    fn wakeup(&mut self, e: &Event) {
        let (t, pid) = (e.tsc, e.pid);
        if pid == 0 {
            self.anomaly();
            return;
        }
        self.out.wakeups.push(Mark { pid, tsc: t });
        let q = self.queue_cpu(e.arg);
        let ts = self.task(pid);
        ts.woken.get_or_insert(t);
        if let Phase::Running { .. } = ts.phase {
            // Woken while on a CPU: nothing to wait for.
            self.anomaly();
            return;
        }
        ts.wake_pending.get_or_insert(t);
        self.start_wait(pid, t, q);
    }

    fn spawn(&mut self, e: &Event) {
        let (t, pid) = (e.tsc, e.pid);
        if pid == 0 {
            self.anomaly();
            return;
        }
        match self.task(pid).phase {
            // A pid may be reused once its task has exited.
            Phase::Unknown | Phase::Exited => {}
            _ => self.anomaly(),
        }
        if let Phase::Running { .. } = self.task(pid).phase {
            return;
        }
        // Spawned tasks are queued on the CPU that created them.
        let q = self.queue_cpu(u32::from(e.cpu));
        self.start_wait(pid, t, q);
    }

    fn migrate(&mut self, e: &Event) {
        let (t, pid, to) = (e.tsc, e.pid, e.arg2);
        if pid == 0 {
            self.anomaly();
            return;
        }
        if e.arg as usize >= self.cpus.len() || to as usize >= self.cpus.len() {
            self.anomaly();
        }
        self.out.migrations.push(Migration {
            pid,
            tsc: t,
            from: e.arg,
            to,
        });
        if let Phase::Waiting { .. } = self.task(pid).phase {
            let q = self.queue_cpu(to);
            self.start_wait(pid, t, q);
        }
    }

    fn exit(&mut self, e: &Event) {
        let (t, pid) = (e.tsc, e.pid);
        if pid == 0 {
            self.anomaly();
            return;
        }
        match self.task(pid).phase {
            // The switch-out (PREV_EXITED) ends the running stretch.
            Phase::Running { .. } => {}
            Phase::Waiting { .. } => {
                // Killed while queued.
                self.end_wait(pid, t);
                self.task(pid).phase = Phase::Exited;
            }
            _ => self.task(pid).phase = Phase::Exited,
        }
        let ts = self.task(pid);
        ts.wake_pending = None;
        ts.woken = None;
    }

    /// Everything still open after the last event stays open (`end:
    /// None`), in pid order for the tasks and CPU order for the CPUs.
    fn finish(&mut self) {
        let mut pids: Vec<u32> = self.tasks.keys().copied().collect();
        pids.sort_unstable();
        for pid in pids {
            match self.task(pid).phase {
                Phase::Running { cpu, since, steal } => {
                    let last = self.cpus.get(cpu as usize).map_or(steal, |c| c.steal);
                    self.out.runs.push(Run {
                        pid,
                        cpu,
                        start: Some(Stamp {
                            tsc: since,
                            steal_ns: steal,
                        }),
                        end: None,
                        end_steal_ns: last,
                    });
                }
                Phase::Waiting { since, .. } => self.out.waits.push(Wait {
                    pid,
                    start: since,
                    end: None,
                }),
                _ => {}
            }
        }
        for (i, c) in self.cpus.iter().enumerate() {
            if let Some(pid) = c.current {
                self.out.segments.push(Segment {
                    cpu: i as u32,
                    pid,
                    start: Some(c.since),
                    end: None,
                });
            }
        }
    }
}
