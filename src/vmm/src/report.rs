//! The run report: one JSON object for machines, tables for people. Both
//! are built from the same `Report`, so they cannot disagree, and a failed
//! run still shows everything that was collected before it failed.

use crate::exit::{Failure, code};
use crate::ops::Summary;
use crate::tlv::FrameCounters;
use crate::vm::run::{LogLine, RunOutcome, Timing};
use serde::Serialize;
use std::io::Write;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TaskRow {
    pub pid: u32,
    pub units: u64,
    pub runtime_ns: u64,
    /// Fraction (0..1) of all tasks' runtime this task got.
    pub share: f64,
    pub weight: u32,
    pub switches: u64,
    pub cpu: u32,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Totals {
    pub units: u64,
    pub runtime_ns: u64,
    pub units_per_sec: f64,
    pub switches: u64,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct Versions {
    pub schedlab: &'static str,
    /// Call-table version the core provides.
    pub call_table: Option<u32>,
    /// Call-table version the operation needs.
    pub call_table_needed: Option<u32>,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub operation: String,
    pub status: &'static str,
    pub error: Option<Failure>,
    pub config: serde_json::Value,
    pub tasks: Vec<TaskRow>,
    pub totals: Option<Totals>,
    pub elapsed_ns: Option<u64>,
    pub timing: Timing,
    pub frames: FrameCounters,
    pub logs: Vec<LogLine>,
    pub versions: Versions,
}

impl Report {
    pub fn new(operation: &str, config: serde_json::Value) -> Self {
        Report {
            operation: operation.to_string(),
            status: "ok",
            error: None,
            config,
            tasks: Vec::new(),
            totals: None,
            elapsed_ns: None,
            timing: Timing::default(),
            frames: FrameCounters::default(),
            logs: Vec::new(),
            versions: Versions {
                schedlab: env!("CARGO_PKG_VERSION"),
                ..Default::default()
            },
        }
    }

    pub fn set_failure(&mut self, f: Failure) {
        self.status = "error";
        self.error = Some(f);
    }

    pub fn fill(&mut self, out: RunOutcome, s: Summary) {
        self.tasks = s.tasks;
        self.totals = s.totals;
        self.elapsed_ns = s.elapsed_ns;
        self.timing = out.timing;
        self.frames = out.frames;
        self.logs = out.logs;
        // The run's own failure comes first; the summary's only counts
        // when the run itself ended cleanly.
        if let Some(f) = out.failure.or(s.failure) {
            self.set_failure(f);
        }
    }

    pub fn exit_code(&self) -> u8 {
        self.error.as_ref().map_or(code::OK, Failure::exit_code)
    }
}

/// Print the report; returns the exit code.
pub fn print(r: &Report, headline: &str, json: bool) -> u8 {
    if json {
        let text = serde_json::to_string_pretty(r).unwrap_or_else(|e| {
            format!(r#"{{"status":"error","error":{{"kind":"host","message":"cannot encode report: {e}"}}}}"#)
        });
        println!("{text}");
    } else {
        let mut s = String::new();
        human(r, headline, &mut s);
        let _ = std::io::stdout().write_all(s.as_bytes());
        if let Some(e) = &r.error {
            eprintln!("schedlab {}: error: {e}", r.operation);
        }
    }
    r.exit_code()
}

fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

/// The human report. Only parts with data are shown, so a failed run's
/// report is short but keeps whatever the guest did send.
pub fn human(r: &Report, headline: &str, s: &mut String) {
    use std::fmt::Write as _;
    if !r.tasks.is_empty() {
        let _ = writeln!(s, "{headline}");
        let _ = writeln!(
            s,
            "{:>6} {:>6} {:>14} {:>12} {:>7} {:>9}",
            "pid", "weight", "units", "runtime ms", "share", "switches"
        );
        for t in &r.tasks {
            let _ = writeln!(
                s,
                "{:>6} {:>6} {:>14} {:>12.3} {:>6.1}% {:>9}",
                t.pid,
                t.weight,
                t.units,
                ms(t.runtime_ns),
                t.share * 100.0,
                t.switches
            );
        }
    }
    if let Some(t) = &r.totals {
        let _ = writeln!(
            s,
            "{:>6} {:>6} {:>14} {:>12.3} {:>7} {:>9}",
            "total",
            "",
            t.units,
            ms(t.runtime_ns),
            "",
            t.switches
        );
        let elapsed = r
            .elapsed_ns
            .map(|e| format!(" over {:.3} ms elapsed", ms(e)))
            .unwrap_or_default();
        let _ = writeln!(s, "throughput: {}{elapsed}", per_sec(t.units_per_sec));
    }
    let us = |v: Option<u64>| {
        v.map(|v| format!("{:.1} ms", v as f64 / 1e3))
            .unwrap_or_else(|| "-".into())
    };
    if r.timing.wall_us.is_some() {
        let _ = writeln!(
            s,
            "boot: VM set up in {}, first guest message after {}; wall time {}",
            us(r.timing.vm_create_us),
            us(r.timing.first_message_us),
            us(r.timing.wall_us)
        );
    }
    let f = &r.frames;
    if f.has_errors() {
        let _ = writeln!(
            s,
            "frames: {} ok, {} CRC errors, {} unknown tags, {} undecodable (dropped)",
            f.frames_ok, f.crc_errors, f.unknown_tags, f.decode_errors
        );
    }
}

fn per_sec(v: f64) -> String {
    if v >= 1e9 {
        format!("{:.2} G units/s", v / 1e9)
    } else if v >= 1e6 {
        format!("{:.2} M units/s", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.2} k units/s", v / 1e3)
    } else {
        format!("{v:.1} units/s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::ErrorKind;

    fn sample() -> Report {
        let mut r = Report::new("spin", serde_json::json!({"tasks": 2}));
        let row = |pid| TaskRow {
            pid,
            units: 1000,
            runtime_ns: 100_000_000,
            share: 0.5,
            weight: 1,
            switches: 100,
            cpu: 0,
        };
        r.tasks = vec![row(2), row(3)];
        r.totals = Some(Totals {
            units: 2000,
            runtime_ns: 200_000_000,
            units_per_sec: 10_000.0,
            switches: 200,
        });
        r.elapsed_ns = Some(200_000_000);
        r.timing = Timing {
            vm_create_us: Some(2100),
            first_message_us: Some(5300),
            wall_us: Some(215_000),
            vm_exits: 1,
        };
        r
    }

    #[test]
    fn json_has_every_documented_field() {
        let v: serde_json::Value = serde_json::to_value(sample()).unwrap();
        for k in [
            "operation",
            "config",
            "status",
            "error",
            "tasks",
            "totals",
            "elapsed_ns",
            "timing",
            "frames",
            "logs",
            "versions",
        ] {
            assert!(v.get(k).is_some(), "missing {k}");
        }
        assert_eq!(v["status"], "ok");
        assert!(v["error"].is_null());
        for k in ["pid", "units", "runtime_ns", "share", "weight", "switches"] {
            assert!(v["tasks"][0].get(k).is_some(), "missing tasks[].{k}");
        }
        for k in ["units", "runtime_ns", "units_per_sec"] {
            assert!(v["totals"].get(k).is_some(), "missing totals.{k}");
        }
        for k in ["vm_create_us", "first_message_us", "wall_us"] {
            assert!(v["timing"].get(k).is_some(), "missing timing.{k}");
        }
        for k in ["ok", "crc_errors", "unknown_tags", "decode_errors"] {
            assert!(v["frames"].get(k).is_some(), "missing frames.{k}");
        }
        assert!(
            v["versions"].get("schedlab").is_some() && v["versions"].get("call_table").is_some()
        );
    }

    #[test]
    fn failure_keeps_partial_data_and_sets_the_exit_code() {
        let mut r = sample();
        r.set_failure(Failure::new(ErrorKind::GuestFault, "boom"));
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["status"], "error");
        assert_eq!(v["error"]["kind"], "guest_fault");
        assert_eq!(v["tasks"].as_array().unwrap().len(), 2);
        assert_eq!(r.exit_code(), 70);
    }

    #[test]
    fn human_report_has_table_totals_and_boot_line() {
        let mut s = String::new();
        human(&sample(), "spin: 2 tasks", &mut s);
        assert!(s.starts_with("spin: 2 tasks\n"), "{s}");
        assert!(s.contains("  50.0%"), "{s}");
        assert!(
            s.contains("throughput: 10.00 k units/s over 200.000 ms elapsed"),
            "{s}"
        );
        assert!(
            s.contains(
                "boot: VM set up in 2.1 ms, first guest message after 5.3 ms; wall time 215.0 ms"
            ),
            "{s}"
        );
        assert!(!s.contains("frames:"), "no frame line without errors");
    }
}
