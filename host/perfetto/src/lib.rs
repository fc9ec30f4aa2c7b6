//! A run's scheduler events as a Perfetto trace: the format scheduler
//! developers open in the Perfetto UI and query with trace_processor.
//!
//! Each event the guest published becomes exactly one ftrace event, in
//! the form Linux's scheduler tracepoints take in a Perfetto trace:
//! a switch is `sched_switch`, a wake-up `sched_waking`, a spawn
//! `sched_wakeup_new`, a migration `sched_migrate_task` and an exit
//! `sched_process_exit`, each in its CPU's `FtraceEventBundle`. A
//! `ProcessTree` first names the operation (one process) and every task
//! (its threads), so tasks show under their operation's and scenario's
//! names. Timestamps are ns since the run's first event, as on the
//! timeline SVG.
//!
//! The messages are Perfetto's own (`proto/perfetto_subset.proto`, a
//! subset of the published schema checked against it by the tests),
//! encoded with prost: a maintained protobuf crate rather than
//! hand-written wire bytes.

use abi::kstate::{
    EV_EXIT, EV_MIGRATE, EV_SPAWN, EV_SWITCH, EV_WAKEUP, Event, PREV_BLOCKED, PREV_EXITED,
};
use std::collections::BTreeMap;

/// The generated types of `proto/perfetto_subset.proto`.
#[allow(clippy::all, missing_docs)]
pub mod pb {
    include!(concat!(env!("OUT_DIR"), "/perfetto.protos.rs"));
}

/// Events per `FtraceEventBundle`: a long run's millions of events go in
/// many packets, each small enough for any reader.
pub const EVENTS_PER_BUNDLE: usize = 4096;

/// The sequence every packet is on (one writer).
const SEQUENCE_ID: u32 = 1;

/// `sched_switch`'s `prev_state`, as Linux (4.14 and later) reports it:
/// R (runnable: preempted or yielded), S (blocked), X (exited).
const STATE_RUNNABLE: i64 = 0;
const STATE_SLEEPING: i64 = 1;
const STATE_DEAD: i64 = 16;

/// What to call the run's tasks.
#[derive(Debug, Clone, Default)]
pub struct Names {
    /// The process: the operation (`spin`, or a scenario file's name).
    pub process: String,
    /// Task names by pid (a scenario's `ping#0`); a task not named here
    /// is `PROCESS-PID`.
    pub tasks: BTreeMap<u32, String>,
}

impl Names {
    fn comm(&self, pid: u32, cpu: u32) -> String {
        match (pid, self.tasks.get(&pid)) {
            // Linux's name for the idle task.
            (0, _) => format!("swapper/{cpu}"),
            (_, Some(n)) => n.clone(),
            (_, None) => format!("{}-{pid}", self.process),
        }
    }
}

/// The trace of `events` (the monitor's, guest TSC) on `cpus` CPUs at
/// `tsc_khz`, as the bytes of a Perfetto `Trace`. Events of CPUs beyond
/// `cpus` (untrusted guest words) and of unknown kinds are left out, and
/// counted in the second value.
pub fn encode(events: &[Event], cpus: u32, tsc_khz: u64, names: &Names) -> (Vec<u8>, u64) {
    let base = events.iter().map(|e| e.tsc).min().unwrap_or(0);
    let ns = |tsc: u64| analysis::ticks_to_ns(tsc.saturating_sub(base), tsc_khz);
    let mut per_cpu: Vec<Vec<&Event>> = vec![Vec::new(); cpus as usize];
    let mut skipped = 0u64;
    for e in events {
        let known = matches!(
            e.kind,
            EV_SWITCH | EV_WAKEUP | EV_MIGRATE | EV_SPAWN | EV_EXIT
        );
        match per_cpu.get_mut(usize::from(e.cpu)) {
            Some(v) if known => v.push(e),
            _ => skipped += 1,
        }
    }
    // Packet by packet into the buffer (a `Trace` is its `packet` fields
    // one after another), so only one bundle's messages exist at a time:
    // an hour's million events would otherwise be built whole first.
    let mut out = Vec::with_capacity(events.len() * 24);
    let mut put = |p: &pb::TracePacket| prost::encoding::message::encode(1, p, &mut out);
    put(&process_tree(events, names));
    for (cpu, evs) in per_cpu.iter_mut().enumerate() {
        // Stable: events of one instant keep the order the guest wrote.
        evs.sort_by_key(|e| e.tsc);
        for chunk in evs.chunks(EVENTS_PER_BUNDLE) {
            let event = chunk
                .iter()
                .map(|e| ftrace_event(e, ns(e.tsc), names))
                .collect();
            put(&pb::TracePacket {
                timestamp: chunk.first().map(|e| ns(e.tsc)),
                data: Some(pb::trace_packet::Data::FtraceEvents(
                    pb::FtraceEventBundle {
                        cpu: Some(cpu as u32),
                        event,
                    },
                )),
                optional_trusted_packet_sequence_id: Some(sequence()),
            });
        }
    }
    (out, skipped)
}

fn sequence() -> pb::trace_packet::OptionalTrustedPacketSequenceId {
    pb::trace_packet::OptionalTrustedPacketSequenceId::TrustedPacketSequenceId(SEQUENCE_ID)
}

/// One process for the operation (its pid the first task's), one thread
/// per task any event names.
fn process_tree(events: &[Event], names: &Names) -> pb::TracePacket {
    let mut pids: Vec<u32> = events
        .iter()
        .flat_map(|e| match e.kind {
            EV_SWITCH => [e.pid, e.arg],
            _ => [e.pid, 0],
        })
        .filter(|&p| p != 0)
        .collect();
    pids.extend(names.tasks.keys().copied());
    pids.sort_unstable();
    pids.dedup();
    let main = pids.first().copied().unwrap_or(1) as i32;
    let threads = pids
        .iter()
        .map(|&p| pb::process_tree::Thread {
            tid: Some(p as i32),
            tgid: Some(main),
            name: Some(names.comm(p, 0)),
        })
        .collect();
    pb::TracePacket {
        timestamp: Some(0),
        data: Some(pb::trace_packet::Data::ProcessTree(pb::ProcessTree {
            processes: vec![pb::process_tree::Process {
                pid: Some(main),
                ppid: Some(0),
                cmdline: vec![names.process.clone()],
            }],
            threads,
        })),
        optional_trusted_packet_sequence_id: Some(sequence()),
    }
}

fn ftrace_event(e: &Event, ts: u64, names: &Names) -> pb::FtraceEvent {
    use pb::ftrace_event::Event as E;
    let cpu = u32::from(e.cpu);
    let pid = e.pid as i32;
    let comm = || Some(names.comm(e.pid, cpu));
    // The task the event is about: the running one for a switch (the
    // tracepoint fires in the context of the task leaving).
    let (current, event) = match e.kind {
        EV_SWITCH => (
            e.arg,
            E::SchedSwitch(pb::SchedSwitchFtraceEvent {
                prev_comm: Some(names.comm(e.arg, cpu)),
                prev_pid: Some(e.arg as i32),
                prev_prio: None,
                prev_state: Some(match e.arg2 {
                    PREV_BLOCKED => STATE_SLEEPING,
                    PREV_EXITED => STATE_DEAD,
                    _ => STATE_RUNNABLE,
                }),
                next_comm: comm(),
                next_pid: Some(pid),
                next_prio: None,
            }),
        ),
        EV_WAKEUP => (
            e.arg2,
            E::SchedWaking(pb::SchedWakingFtraceEvent {
                comm: comm(),
                pid: Some(pid),
                prio: None,
                success: Some(1),
                target_cpu: Some(e.arg as i32),
            }),
        ),
        EV_SPAWN => (
            0,
            E::SchedWakeupNew(pb::SchedWakeupNewFtraceEvent {
                comm: comm(),
                pid: Some(pid),
                prio: None,
                success: Some(1),
                target_cpu: Some(cpu as i32),
            }),
        ),
        EV_MIGRATE => (
            0,
            E::SchedMigrateTask(pb::SchedMigrateTaskFtraceEvent {
                comm: comm(),
                pid: Some(pid),
                prio: None,
                orig_cpu: Some(e.arg as i32),
                dest_cpu: Some(e.arg2 as i32),
            }),
        ),
        _ => (
            e.pid,
            E::SchedProcessExit(pb::SchedProcessExitFtraceEvent {
                comm: comm(),
                pid: Some(pid),
                tgid: None,
                prio: None,
            }),
        ),
    };
    pb::FtraceEvent {
        timestamp: Some(ts),
        pid: Some(current),
        event: Some(event),
    }
}

#[cfg(test)]
mod tests;
