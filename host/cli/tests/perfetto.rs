//! End to end: a run's events leave as a Perfetto trace and as
//! events.jsonl, decodable with Perfetto's published schema (by the same
//! crate that wrote them, and by Python's protobuf against the official
//! .proto), every switch once, every task a named thread.

mod common;

use common::{json, lock, schedlab};
use perfetto::pb;
use prost::Message;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// Per CPU, its ftrace events in order.
fn bundles(t: &pb::Trace) -> BTreeMap<u32, Vec<pb::FtraceEvent>> {
    let mut m: BTreeMap<u32, Vec<pb::FtraceEvent>> = BTreeMap::new();
    for p in &t.packet {
        if let Some(pb::trace_packet::Data::FtraceEvents(b)) = &p.data {
            m.entry(b.cpu.expect("a bundle names its CPU"))
                .or_default()
                .extend(b.event.iter().cloned());
        }
    }
    m
}

fn threads(t: &pb::Trace) -> BTreeMap<i32, String> {
    t.packet
        .iter()
        .filter_map(|p| match &p.data {
            Some(pb::trace_packet::Data::ProcessTree(tree)) => Some(tree),
            _ => None,
        })
        .flat_map(|tree| tree.threads.iter())
        .map(|th| (th.tid.unwrap(), th.name.clone().unwrap_or_default()))
        .collect()
}

fn read_trace(path: &Path) -> pb::Trace {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    pb::Trace::decode(&bytes[..]).expect("the trace decodes")
}

#[test]
fn a_run_s_trace_holds_every_switch_once_and_names_every_task() {
    let _g = lock();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let r = schedlab(
        &[
            "spin",
            "--cpus",
            "2",
            "--tasks",
            "3",
            "--duration",
            "200ms",
            "--out",
            out.to_str().unwrap(),
            "--json",
        ],
        &[],
    );
    let v: Value = json(&r);
    assert_eq!(v["monitor"]["lost_events"], 0, "{}", v["monitor"]);
    assert_eq!(v["monitor"]["dropped_host"], 0, "{}", v["monitor"]);
    let t = read_trace(&out.join("trace.perfetto-trace"));
    let per_cpu = bundles(&t);
    // Exactly the switches counted for each task: every switch-in the
    // guest counted in the task's own record is one sched_switch to it.
    let switched_in = |pid: i32| {
        per_cpu
            .values()
            .flatten()
            .filter(|e| match &e.event {
                Some(pb::ftrace_event::Event::SchedSwitch(s)) => s.next_pid == Some(pid),
                _ => false,
            })
            .count() as u64
    };
    for task in v["tasks"].as_array().unwrap() {
        let pid = task["pid"].as_i64().unwrap() as i32;
        assert_eq!(
            switched_in(pid),
            task["switches"].as_u64().unwrap(),
            "pid {pid}"
        );
    }
    // Every event once: as many as the monitor kept, as many as
    // events.jsonl has lines.
    let all: usize = per_cpu.values().map(Vec::len).sum();
    assert_eq!(all as u64, v["monitor"]["events"].as_u64().unwrap());
    let jsonl = std::fs::read_to_string(out.join("events.jsonl")).unwrap();
    let lines: Vec<Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(lines.len(), all);
    // Every task ran and has a named thread.
    let names = threads(&t);
    for task in v["tasks"].as_array().unwrap() {
        let pid = task["pid"].as_i64().unwrap() as i32;
        assert_eq!(
            names.get(&pid).map(String::as_str),
            Some(format!("spin-{pid}").as_str())
        );
    }
    // CPU 0's track against the timeline's numbers: its busy time from
    // the trace's switches is what the report measured from the events.
    let busy = busy_ns(&per_cpu[&0]);
    let reported = v["cpus"][0]["busy_ns"].as_f64().unwrap();
    assert!(
        (busy as f64 - reported).abs() <= reported * 0.01 + 1e6,
        "CPU 0 busy {busy} ns in the trace, {reported} in the report"
    );
    let files = &v["files"];
    assert!(files.is_null() || files["trace.perfetto-trace"] == "written");
    let saved: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("result.json")).unwrap()).unwrap();
    assert_eq!(saved["files"]["trace.perfetto-trace"], "written");
    assert_eq!(saved["files"]["events.jsonl"], "written");
    python_agrees(&out.join("trace.perfetto-trace"), all, &names);
}

/// Time some task ran on the CPU, from the trace's switches (pid 0 is
/// idle), up to the CPU's last event.
fn busy_ns(evs: &[pb::FtraceEvent]) -> u64 {
    let mut busy = 0;
    let mut running: Option<u64> = None;
    for e in evs {
        if let Some(pb::ftrace_event::Event::SchedSwitch(s)) = &e.event {
            let ts = e.timestamp.unwrap();
            if let Some(since) = running.take() {
                busy += ts - since;
            }
            if s.next_pid != Some(0) {
                running = Some(ts);
            }
        }
    }
    busy
}

/// Python's protobuf decodes the trace with Perfetto's own published
/// schema (compiled here with protoc) and finds the same events and
/// thread names.
fn python_agrees(trace: &Path, events: usize, names: &BTreeMap<i32, String>) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let schema_dir = root.join("third_party/perfetto");
    assert!(
        schema_dir.join("perfetto_trace.proto").exists(),
        "Perfetto's schema is missing from third_party/perfetto"
    );
    let py = ["/usr/bin/python3", "python3"]
        .into_iter()
        .find(|p| {
            Command::new(p)
                .args(["-c", "import google.protobuf"])
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .expect(
            "no python3 with the protobuf module: run ./setup.sh (it installs python3-protobuf)",
        );
    let pydir = tempfile::tempdir().unwrap();
    let status = Command::new("protoc")
        .arg(format!("--proto_path={}", schema_dir.display()))
        .arg(format!("--python_out={}", pydir.path().display()))
        .arg("perfetto_trace.proto")
        .status()
        .expect("protoc runs (./setup.sh installs it)");
    assert!(
        status.success(),
        "protoc could not compile Perfetto's schema"
    );
    let script = r#"
import sys
sys.path.insert(0, sys.argv[1])
import perfetto_trace_pb2 as p
t = p.Trace()
t.ParseFromString(open(sys.argv[2], "rb").read())
events = 0
names = {}
for pk in t.packet:
    if pk.HasField("ftrace_events"):
        events += len(pk.ftrace_events.event)
    if pk.HasField("process_tree"):
        for th in pk.process_tree.threads:
            names[th.tid] = th.name
print(events)
for tid in sorted(names):
    print(tid, names[tid])
"#;
    let out = Command::new(py)
        .args(["-c", script])
        .arg(pydir.path())
        .arg(trace)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "python: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next().unwrap().parse::<usize>().unwrap(), events);
    let theirs: BTreeMap<i32, String> = lines
        .map(|l| {
            let (tid, name) = l.split_once(' ').unwrap();
            (tid.parse().unwrap(), name.to_string())
        })
        .collect();
    assert_eq!(&theirs, names);
}

#[test]
fn trace_file_alone_and_scenario_names() {
    let _g = lock();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("s.perfetto-trace");
    let scenario = dir.path().join("pp.toml");
    std::fs::write(
        &scenario,
        "duration = \"100ms\"\n\n[[task]]\nname = \"ping\"\ncount = 2\n\
         phases = [{ run = \"1ms\" }, { timer = \"5ms\" }]\n",
    )
    .unwrap();
    let r = schedlab(
        &[
            "run",
            scenario.to_str().unwrap(),
            "--trace",
            file.to_str().unwrap(),
            "--json",
        ],
        &[],
    );
    let v: Value = json(&r);
    assert!(v["error"].is_null(), "{v}");
    let t = read_trace(&file);
    let names: Vec<String> = threads(&t).into_values().collect();
    assert!(names.contains(&"ping#0".to_string()), "{names:?}");
    assert!(names.contains(&"ping#1".to_string()), "{names:?}");
    assert!(
        bundles(&t).values().map(Vec::len).sum::<usize>() > 10,
        "the scenario's events"
    );
}

#[test]
fn a_bad_trace_path_is_refused_before_any_vm() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no/such/dir/t.pftrace");
    for (path, says) in [
        (dir.path().to_str().unwrap(), "is a directory"),
        (missing.to_str().unwrap(), "does not exist"),
    ] {
        let r = schedlab(&["spin", "--trace", path], &[]);
        assert_eq!(r.code, 64, "{}", r.stderr);
        assert!(
            r.stderr.contains("--trace") && r.stderr.contains(says),
            "{}",
            r.stderr
        );
    }
}

#[test]
fn a_timeline_window_draws_that_stretch_with_its_own_times() {
    let _g = lock();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("w");
    let r = schedlab(
        &[
            "spin",
            "--tasks",
            "2",
            "--duration",
            "200ms",
            "--out",
            out.to_str().unwrap(),
            "--timeline-window",
            "50ms..54ms",
            "--json",
        ],
        &[],
    );
    let v: Value = json(&r);
    assert!(v["error"].is_null(), "{v}");
    let svg = std::fs::read_to_string(out.join("timeline.svg")).unwrap();
    let doc = roxmltree::Document::parse(&svg).unwrap();
    // The x axis counts from the window's start, in ms.
    let ticks: Vec<f64> = doc
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text()?.trim().parse::<f64>().ok())
        .collect();
    assert!(ticks.len() >= 3, "axis labels {ticks:?}");
    assert!(
        ticks.iter().all(|&t| (50.0..=54.0).contains(&t)),
        "axis labels {ticks:?} outside 50..54 ms"
    );
    // Bad windows are refused before any VM, naming the flag.
    for (args, says) in [
        (
            &["--timeline-window", "54ms..50ms", "--out", "x"][..],
            "ends before",
        ),
        (&["--timeline-window", "50ms..54ms"][..], "--out"),
    ] {
        let mut a = vec!["spin"];
        a.extend_from_slice(args);
        let r = schedlab(&a, &[]);
        assert_eq!(r.code, 64, "{}", r.stderr);
        assert!(
            r.stderr.contains("--timeline-window") && r.stderr.contains(says),
            "{}",
            r.stderr
        );
    }
}
