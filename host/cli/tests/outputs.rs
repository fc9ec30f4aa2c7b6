//! End-to-end tests of what runs leave behind and what reads it back:
//! `--out DIR`, `schedlab compare`, `schedlab gauntlet` and the progress
//! bar. One VM at a time (the lock), except inside the gauntlet, whose
//! point is running several.

mod common;

use common::*;
use serde_json::{Value, json};
use std::path::Path;

fn read_json(p: &Path) -> Value {
    let text = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", p.display()))
}

/// The text of every `<text>` element of an SVG file, which must parse.
fn svg_texts(p: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let doc = roxmltree::Document::parse(&text)
        .unwrap_or_else(|e| panic!("{} is not valid SVG/XML: {e}", p.display()));
    assert!(doc.root_element().has_tag_name("svg"), "{}", p.display());
    doc.descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text())
        .map(|t| t.trim().to_string())
        .collect()
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}

#[test]
fn out_keeps_the_result_the_versions_the_host_and_two_pictures() {
    let _vm = lock();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run/nested");
    let r = schedlab(
        &[
            "spin",
            "--cpus",
            "2",
            "--tasks",
            "3",
            "--duration",
            "100ms",
            "--json",
            "--out",
            path_str(&dir),
        ],
        &[],
    );
    assert!(matches!(r.code, 0..=2), "stderr: {}", r.stderr);
    let stdout = json(&r);
    let v = read_json(&dir.join("result.json"));
    assert_eq!(v["kind"], "schedlab-result");
    assert_eq!(v["status"], "ok");
    assert_eq!(v["config"]["cpus"], 2);
    assert_eq!(v["verdict"], stdout["verdict"], "the file is the report");
    assert_eq!(v["tasks"], stdout["tasks"]);
    assert_eq!(v["versions"]["schedlab"], env!("CARGO_PKG_VERSION"));
    assert_eq!(v["versions"]["core_abi"]["kind"], "CORE");
    assert_eq!(v["versions"]["operation_abi"]["config_magic"], "SPIN");
    assert_eq!(
        v["versions"]["core_abi"]["call_table_version"],
        v["versions"]["call_table"]
    );
    let host = &v["host"];
    assert!(
        host["kernel_release"]
            .as_str()
            .is_some_and(|s| !s.is_empty()),
        "{host}"
    );
    assert!(host["cpus"].as_u64().is_some_and(|n| n >= 1), "{host}");
    assert!(
        host["memory_bytes"].as_u64().is_some_and(|n| n > 0),
        "{host}"
    );
    assert!(host.get("cpu_model").is_some());

    let texts = svg_texts(&dir.join("timeline.svg"));
    let rows: Vec<&String> = texts.iter().filter(|t| t.starts_with("CPU ")).collect();
    assert_eq!(rows, ["CPU 0", "CPU 1"], "one row per CPU: {texts:?}");
    let pids = texts.iter().filter(|t| t.starts_with("pid ")).count();
    assert!(pids >= 3, "the three workers are in the legend: {texts:?}");
    let texts = svg_texts(&dir.join("latency.svg"));
    assert!(
        texts.iter().any(|t| t.contains("wake-up")),
        "latency.svg has its title: {texts:?}"
    );
    assert_eq!(v["files"]["timeline.svg"], "written");
}

#[test]
fn a_failed_run_still_writes_result_json() {
    let _vm = lock();
    let tmp = tempfile::tempdir().unwrap();
    let r = schedlab(
        &[
            "spin",
            "--test-fault",
            "panic",
            "--out",
            path_str(tmp.path()),
        ],
        &[],
    );
    assert_eq!(r.code, 70, "stderr: {}", r.stderr);
    let v = read_json(&tmp.path().join("result.json"));
    assert_eq!(v["status"], "error");
    assert_eq!(v["error"]["kind"], "guest_panic");
    assert!(v["logs"].as_array().is_some(), "partial data kept: {v}");
    // What the monitor saw before the panic is still drawn.
    svg_texts(&tmp.path().join("timeline.svg"));
}

#[test]
fn a_bad_out_is_refused_before_any_vm() {
    let _vm = lock();
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let r = schedlab(
        &["spin", "--out", path_str(&file)],
        &[("SCHEDLAB_KVM_PATH", Path::new(NO_KVM))],
    );
    assert_eq!(r.code, 64, "stderr: {}", r.stderr);
    assert!(r.stderr.contains("--out: "), "{}", r.stderr);
    // A run refused for another flag creates no directory.
    let dir = tmp.path().join("never");
    let r = schedlab(
        &["spin", "--tasks", "0", "--out", path_str(&dir)],
        &[("SCHEDLAB_KVM_PATH", Path::new(NO_KVM))],
    );
    assert_eq!(r.code, 64);
    assert!(!dir.exists());
}

/// A result with the given wake-up latencies (ns) written to `dir`.
fn with_wake_ups(base: &Value, dir: &Path, p99: u64, max: u64) -> std::path::PathBuf {
    let mut v = base.clone();
    v["metrics"]["wake_latency"] =
        json!({"count": 100, "p50_ns": 20_000, "p99_ns": p99, "max_ns": max});
    std::fs::create_dir_all(dir).unwrap();
    let p = dir.join("result.json");
    std::fs::write(&p, serde_json::to_string_pretty(&v).unwrap()).unwrap();
    p
}

#[test]
fn compare_finds_no_regression_against_itself_and_flags_slow_wake_ups() {
    let _vm = lock();
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let r = schedlab(
        &[
            "spin",
            "--duration",
            "100ms",
            "--json",
            "--out",
            path_str(&run),
        ],
        &[],
    );
    assert!(matches!(r.code, 0..=2), "stderr: {}", r.stderr);
    let result = run.join("result.json");

    let same = schedlab(&["compare", path_str(&result), path_str(&result)], &[]);
    assert_eq!(same.code, 0, "{}{}", same.stdout, same.stderr);
    assert!(
        same.stdout.contains("no regressions in 1 pair"),
        "{}",
        same.stdout
    );
    assert!(same.stdout.contains("throughput"), "{}", same.stdout);

    // The same run with 50x worse wake-up tails.
    let base = read_json(&result);
    let a = with_wake_ups(&base, &tmp.path().join("a"), 100_000, 200_000);
    let b = with_wake_ups(&base, &tmp.path().join("b"), 5_000_000, 200_000);
    let worse = schedlab(&["compare", path_str(&a), path_str(&b)], &[]);
    assert_eq!(worse.code, 1, "{}{}", worse.stdout, worse.stderr);
    let line = worse
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with("wake_p99_ns"))
        .unwrap_or_else(|| panic!("no wake_p99_ns line:\n{}", worse.stdout));
    assert!(line.ends_with("REGRESSED"), "{line}");
    assert!(line.contains("+4900.0%"), "{line}");

    let j = schedlab(&["compare", path_str(&a), path_str(&b), "--json"], &[]);
    assert_eq!(j.code, 1);
    let v = json(&j);
    assert_eq!(v["status"], "regressed");
    assert_eq!(v["regressions"], 1);
    let rows = v["pairs"][0]["metrics"].as_array().unwrap();
    let p99 = rows.iter().find(|m| m["metric"] == "wake_p99_ns").unwrap();
    assert_eq!(p99["outcome"], "regressed");
    assert_eq!(p99["direction"], "lower");

    // A threshold for that metric alone forgives it; one for all does too.
    for th in ["wake_p99_ns=100", "100"] {
        let ok = schedlab(
            &["compare", path_str(&a), path_str(&b), "--threshold", th],
            &[],
        );
        assert_eq!(ok.code, 0, "--threshold {th}: {}", ok.stdout);
    }
    // The other way round it is an improvement, not a regression.
    let better = schedlab(&["compare", path_str(&b), path_str(&a)], &[]);
    assert_eq!(better.code, 0, "{}", better.stdout);
    assert!(better.stdout.contains("better"), "{}", better.stdout);
}

#[test]
fn compare_refuses_what_is_not_a_pair_of_results() {
    let _vm = lock();
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("missing.json");
    let other = tmp.path().join("other.json");
    std::fs::write(&other, r#"{"name": "not a result"}"#).unwrap();
    let r = schedlab(&["compare", path_str(&missing), path_str(&other)], &[]);
    assert_eq!(r.code, 64, "{}", r.stderr);
    assert!(r.stderr.contains("does not exist"), "{}", r.stderr);
    let r = schedlab(&["compare", path_str(&other), path_str(&other)], &[]);
    assert_eq!(r.code, 64);
    assert!(
        r.stderr.contains("is not a schedlab result"),
        "{}",
        r.stderr
    );
    let r = schedlab(
        &["compare", path_str(&other), path_str(&other), "--json"],
        &[],
    );
    assert_eq!(r.code, 64);
    assert_eq!(json(&r)["error"]["kind"], "usage");
    let r = schedlab(
        &["compare", path_str(tmp.path()), path_str(tmp.path())],
        &[],
    );
    assert_eq!(r.code, 64);
    assert!(r.stderr.contains("no result.json"), "{}", r.stderr);
}

#[test]
fn compare_flags_fifo_wake_ups_against_eevdf_in_mixed() {
    let _vm = lock();
    let tmp = tempfile::tempdir().unwrap();
    for policy in ["eevdf", "fifo"] {
        // fifo never preempts the hogs, so the interactive tasks wait for
        // them: keep the run going (--max-wait off) to see how long.
        let out = tmp.path().join(policy);
        let r = schedlab(
            &[
                "mixed",
                "--policy",
                policy,
                "--duration",
                "100ms",
                "--max-wait",
                "off",
                "--json",
                "--out",
                path_str(&out),
            ],
            &[],
        );
        assert!(matches!(r.code, 0..=2), "{policy}: {}", r.stderr);
    }
    let r = schedlab(
        &[
            "compare",
            path_str(&tmp.path().join("eevdf/result.json")),
            path_str(&tmp.path().join("fifo/result.json")),
            "--json",
        ],
        &[],
    );
    assert_eq!(r.code, 1, "{}", r.stdout);
    let v = json(&r);
    let rows = v["pairs"][0]["metrics"].as_array().unwrap();
    let regressed: Vec<&str> = rows
        .iter()
        .filter(|m| m["outcome"] == "regressed")
        .filter_map(|m| m["metric"].as_str())
        .collect();
    assert!(
        regressed
            .iter()
            .any(|m| m.contains("wake") && m.contains("p99")),
        "the interactive tasks' wake-up p99 regressed: {regressed:?}"
    );
    assert_eq!(
        v["pairs"][0]["config_changes"]["policy"],
        json!(["eevdf", "fifo"])
    );
}

#[test]
fn gauntlet_runs_the_matrix_and_prints_one_row_per_run() {
    let _vm = lock();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("g");
    let r = schedlab(
        &[
            "gauntlet",
            "--policies",
            "rr,eevdf",
            "--cpus",
            "1,2",
            "--workloads",
            "spin,ipc",
            "--jobs",
            "2",
            "--out",
            path_str(&out),
        ],
        &[],
    );
    assert!(matches!(r.code, 0..=2), "{}\n{}", r.stdout, r.stderr);
    let mut names = Vec::new();
    for w in ["spin", "ipc"] {
        for p in ["rr", "eevdf"] {
            for c in [1, 2] {
                names.push(format!("{w}-{p}-{c}cpu"));
            }
        }
    }
    let rows: Vec<&str> = r
        .stdout
        .lines()
        .filter(|l| l.starts_with("spin ") || l.starts_with("ipc "))
        .collect();
    assert_eq!(rows.len(), 8, "{}", r.stdout);
    assert!(r.stdout.contains("8 runs: "), "{}", r.stdout);
    for n in &names {
        let v = read_json(&out.join(n).join("result.json"));
        assert_eq!(v["kind"], "schedlab-result", "{n}");
        svg_texts(&out.join(n).join("timeline.svg"));
    }
    let summary = read_json(&out.join("gauntlet.json"));
    let runs = summary["runs"].as_array().unwrap();
    let got: Vec<&str> = runs.iter().filter_map(|r| r["name"].as_str()).collect();
    assert_eq!(got, names, "rows in matrix order");
    for run in runs {
        assert!(
            ["pass", "fail", "inconclusive"].contains(&run["verdict"].as_str().unwrap()),
            "{run}"
        );
        let cpus = run["cpus"].as_u64().unwrap();
        let v = read_json(Path::new(run["result"].as_str().unwrap()));
        assert_eq!(v["config"]["cpus"].as_u64(), Some(cpus), "{run}");
        assert_eq!(v["config"]["policy"], run["policy"], "{run}");
    }
    assert!(
        runs.iter()
            .any(|r| r["key_result"]["metric"] == "result.rtt_p99_ns")
    );

    // Two gauntlet directories compare run by run.
    let c = schedlab(&["compare", path_str(&out), path_str(&out)], &[]);
    assert_eq!(c.code, 0, "{}", c.stdout);
    assert!(
        c.stdout.contains("no regressions in 8 pairs"),
        "{}",
        c.stdout
    );
}

#[test]
fn gauntlet_refuses_an_unknown_workload_before_any_vm() {
    let _vm = lock();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("g");
    let r = schedlab(
        &[
            "gauntlet",
            "--workloads",
            "spin,nosuch",
            "--out",
            path_str(&out),
        ],
        &[("SCHEDLAB_KVM_PATH", Path::new(NO_KVM))],
    );
    assert_eq!(r.code, 64, "{}", r.stderr);
    assert!(
        r.stderr.contains("'nosuch' is not an operation"),
        "{}",
        r.stderr
    );
    assert!(!out.exists(), "nothing was started");
}

#[test]
fn progress_bar_only_on_a_terminal() {
    let _vm = lock();
    // Through a pipe (as here): no bar, however long the run.
    let r = schedlab(&["spin", "--tasks", "1", "--duration", "1100ms"], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!r.stderr.contains("1.1s"), "no bar on a pipe: {}", r.stderr);
    // On a pseudo-terminal (util-linux `script`), a bar that counts the
    // time against the duration, cleared before the report.
    if !Path::new("/usr/bin/script").exists() {
        eprintln!("skipping the terminal half: /usr/bin/script is not installed");
        return;
    }
    let cmd = format!(
        "{} spin --tasks 1 --duration 1100ms",
        env!("CARGO_BIN_EXE_schedlab")
    );
    let out = std::process::Command::new("/usr/bin/script")
        .args(["-qec", &cmd, "/dev/null"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("/ 1.1s"), "a bar on a terminal: {text}");
    assert!(text.contains("verdict: pass"), "{text}");
}
