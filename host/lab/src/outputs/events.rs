//! The run's raw scheduling events, exported: `trace.perfetto-trace` (see
//! the `perfetto` crate) and `events.jsonl`, one JSON object per event in
//! the order the monitor drained them, for scripts (`jq`, pandas).
//!
//! Both are made from the monitor's events before the judge consumes
//! them, and only when the run keeps them (`--out` or `--trace`).

use abi::kstate::{
    EV_EXIT, EV_MIGRATE, EV_SPAWN, EV_SWITCH, EV_WAKEUP, Event, PREV_BLOCKED, PREV_EXITED,
    PREV_IDLE, PREV_PREEMPTED, PREV_YIELDED,
};
use serde_json::json;
use std::collections::BTreeMap;
use std::io::Write;

pub const PERFETTO_FILE: &str = "trace.perfetto-trace";
pub const EVENTS_FILE: &str = "events.jsonl";

/// What a run exports of its events.
#[derive(Debug, Clone, Default)]
pub struct Exported {
    /// A Perfetto `Trace`, encoded.
    pub perfetto: Vec<u8>,
    /// The events, for `events.jsonl` (written at the end, streamed).
    pub events: Vec<Event>,
    pub tsc_khz: u64,
    /// Events left out of the trace: of a CPU the run does not have or
    /// of a kind this version does not know (untrusted guest words).
    pub skipped: u64,
}

/// Export `events` of a run of operation `process` on `cpus` CPUs.
pub fn export(
    events: &[Event],
    cpus: u32,
    tsc_khz: u64,
    process: &str,
    names: &BTreeMap<u32, String>,
) -> Exported {
    let names = perfetto::Names {
        process: process.to_string(),
        tasks: names.clone(),
    };
    let (perfetto, skipped) = perfetto::encode(events, cpus, tsc_khz, &names);
    Exported {
        perfetto,
        events: events.to_vec(),
        tsc_khz,
        skipped,
    }
}

fn prev_state(arg2: u32) -> &'static str {
    match arg2 {
        PREV_PREEMPTED => "preempted",
        PREV_YIELDED => "yielded",
        PREV_BLOCKED => "blocked",
        PREV_EXITED => "exited",
        PREV_IDLE => "idle",
        _ => "unknown",
    }
}

/// One event as a JSON line: its time in ns since the first event (as
/// the trace and the timeline count), its CPU, what happened, and the
/// CPU's steal time so far (`steal_ns`: the host kept the vCPU from
/// running; subtract its growth from an interval's wall time for the CPU
/// time in it).
pub fn event_json(e: &Event, base_tsc: u64, tsc_khz: u64) -> serde_json::Value {
    let ns = analysis::ticks_to_ns(e.tsc.saturating_sub(base_tsc), tsc_khz);
    let mut v = match e.kind {
        EV_SWITCH => json!({"ts_ns": ns, "cpu": e.cpu, "event": "switch", "pid": e.pid,
            "prev_pid": e.arg, "prev_state": prev_state(e.arg2)}),
        EV_WAKEUP => json!({"ts_ns": ns, "cpu": e.cpu, "event": "wakeup", "pid": e.pid,
            "target_cpu": e.arg, "waker_pid": e.arg2}),
        EV_MIGRATE => json!({"ts_ns": ns, "cpu": e.cpu, "event": "migrate", "pid": e.pid,
            "from_cpu": e.arg, "to_cpu": e.arg2}),
        EV_SPAWN => json!({"ts_ns": ns, "cpu": e.cpu, "event": "spawn", "pid": e.pid,
            "weight": e.arg}),
        EV_EXIT => json!({"ts_ns": ns, "cpu": e.cpu, "event": "exit", "pid": e.pid,
            "code": e.arg as i32, "reason": e.arg2}),
        k => json!({"ts_ns": ns, "cpu": e.cpu, "event": "unknown", "kind": k, "pid": e.pid,
            "arg": e.arg, "arg2": e.arg2}),
    };
    v["steal_ns"] = json!(e.steal_ns);
    v
}

/// Write `events.jsonl` into `w`, one line per event.
pub fn write_jsonl(x: &Exported, w: &mut impl Write) -> std::io::Result<()> {
    let base = x.events.iter().map(|e| e.tsc).min().unwrap_or(0);
    for e in &x.events {
        serde_json::to_writer(&mut *w, &event_json(e, base, x.tsc_khz))?;
        w.write_all(b"\n")?;
    }
    w.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_is_one_line_with_its_fields_named() {
        let ev = |tsc, kind, pid, arg, arg2| Event {
            tsc,
            kind,
            cpu: 1,
            pid,
            arg,
            arg2,
            steal_ns: tsc * 7,
        };
        let x = Exported {
            perfetto: Vec::new(),
            events: vec![
                ev(10, EV_SPAWN, 2, 1024, 0),
                ev(12, EV_SWITCH, 2, 0, PREV_IDLE),
                ev(15, EV_MIGRATE, 2, 1, 0),
                ev(16, EV_EXIT, 2, u32::MAX, 0),
                ev(17, 99, 2, 0, 0),
            ],
            tsc_khz: 1_000_000,
            skipped: 0,
        };
        let mut out = Vec::new();
        write_jsonl(&x, &mut out).unwrap();
        let lines: Vec<serde_json::Value> = String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 5);
        assert_eq!(lines[1]["event"], "switch");
        assert_eq!(lines[1]["ts_ns"], 2);
        assert_eq!(lines[1]["prev_state"], "idle");
        assert_eq!(lines[1]["steal_ns"], 84);
        assert_eq!(lines[4]["steal_ns"], 119);
        assert_eq!(
            (lines[2]["from_cpu"].as_u64(), lines[2]["to_cpu"].as_u64()),
            (Some(1), Some(0))
        );
        assert_eq!(lines[3]["code"], -1);
        assert_eq!(lines[4]["event"], "unknown");
    }
}
