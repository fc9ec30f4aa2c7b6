//! End-to-end tests of how schedlab ends when it is asked to or when its
//! reader goes away: SIGINT/SIGTERM/SIGHUP during a run and a gauntlet
//! (results kept, exit 128 + the signal, no process left behind), a
//! gauntlet child that is stopped (killed at its deadline), a closed
//! stdout (no panic), and the JSON status agreeing with the exit code on
//! every path. One VM at a time (the lock), except inside the gauntlets.

mod common;

use common::*;
use serde_json::Value;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

fn path_str(p: &Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}

fn read_json(p: &Path) -> Value {
    let text = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", p.display()))
}

/// The binary with `args`, its stdout and stderr piped.
fn start(args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_schedlab"))
        .args(args)
        .env_remove("SCHEDLAB_GUEST_DIR")
        .env_remove("SCHEDLAB_KVM_PATH")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start schedlab")
}

/// `kill -SIG pid` (util-linux's kill: no unsafe code in the tests).
fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .expect("run kill")
        .success();
    assert!(ok, "kill -{sig} {pid} failed");
}

/// Wait at most `limit` for `child`; kill it and fail if it takes longer.
fn wait_at_most(child: &mut Child, limit: Duration, what: &str) -> ExitStatus {
    let until = Instant::now() + limit;
    loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            return s;
        }
        if Instant::now() > until {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not end within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The processes whose command line mentions `dir` (pgrep -f).
fn processes_naming(dir: &Path) -> Vec<u32> {
    let out = Command::new("pgrep")
        .args(["-f", "--", path_str(dir)])
        .output()
        .expect("run pgrep");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// Kills whatever a failed test left behind under its directory.
struct Reaper<'a>(&'a Path);

impl Drop for Reaper<'_> {
    fn drop(&mut self) {
        for pid in processes_naming(self.0) {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    }
}

fn stdout_of(child: &mut Child) -> String {
    let mut s = String::new();
    if let Some(mut o) = child.stdout.take() {
        use std::io::Read;
        let _ = o.read_to_string(&mut s);
    }
    s
}

fn stderr_of(child: &mut Child) -> String {
    let mut s = String::new();
    if let Some(mut e) = child.stderr.take() {
        use std::io::Read;
        let _ = e.read_to_string(&mut s);
    }
    s
}

/// A 10 s spin run, `sig` after about a second: it stops at once, exits
/// 128 + the signal, and keeps what it measured in --out and on stdout.
fn a_signal_stops_a_run_and_keeps_its_results(sig: &str, name: &str, code: i32) {
    let _vm = lock();
    let tmp = tempfile::tempdir().unwrap();
    let _reaper = Reaper(tmp.path());
    let dir = tmp.path().join("run");
    let mut child = start(&[
        "spin",
        "--cpus",
        "2",
        "--duration",
        "10s",
        "--out",
        path_str(&dir),
        "--json",
    ]);
    std::thread::sleep(Duration::from_millis(1000));
    let sent = Instant::now();
    signal(child.id(), sig);
    let status = wait_at_most(&mut child, Duration::from_secs(5), "the interrupted run");
    let took = sent.elapsed();
    let stdout = stdout_of(&mut child);
    let stderr = stderr_of(&mut child);
    assert_eq!(status.code(), Some(code), "{stderr}");
    assert!(took < Duration::from_secs(3), "exit {took:?} after {sig}");
    eprintln!("{sig}: exit {code} {took:?} after the signal");
    let printed: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON object ({e}): {stdout}"));
    let v = read_json(&dir.join("result.json"));
    for v in [&v, &printed] {
        assert_eq!(v["status"], "interrupted", "{v}");
        assert_eq!(v["interrupted"]["signal"], name, "{v}");
        assert_eq!(v["interrupted"]["exit_code"], code, "{v}");
        assert_eq!(code_the_json_promises(v), code);
        assert!(v["error"].is_null(), "{v}");
        assert_ne!(
            v["verdict"]["status"], "pass",
            "an interrupted run proves nothing"
        );
    }
    let tasks = v["metrics"]["tasks"].as_array().expect("metrics.tasks");
    assert_eq!(tasks.len(), 4, "spin's 4 tasks, as measured: {v}");
    for t in tasks {
        assert!(t["runtime_ns"].as_u64().unwrap() > 0, "{t}");
    }
    // About a second of a 10 s run was measured, not the whole of it.
    let wall = v["timing"]["wall_us"].as_u64().unwrap();
    assert!((500_000..5_000_000).contains(&wall), "wall {wall} us");
    for f in ["timeline.svg", "latency.svg"] {
        assert_eq!(v["files"][f], "written", "{f}: {v}");
        let svg = std::fs::read_to_string(dir.join(f)).unwrap();
        roxmltree::Document::parse(&svg).unwrap_or_else(|e| panic!("{f}: {e}"));
    }
}

#[test]
fn sigint_stops_a_run_with_its_results_and_exit_130() {
    a_signal_stops_a_run_and_keeps_its_results("INT", "SIGINT", 130);
}

#[test]
fn sigterm_stops_a_run_with_its_results_and_exit_143() {
    a_signal_stops_a_run_and_keeps_its_results("TERM", "SIGTERM", 143);
}

#[test]
fn sighup_stops_a_run_with_its_results_and_exit_129() {
    a_signal_stops_a_run_and_keeps_its_results("HUP", "SIGHUP", 129);
}

#[test]
fn sigint_stops_a_gauntlet_and_leaves_no_process_behind() {
    let _vm = lock();
    let tmp = tempfile::tempdir().unwrap();
    let _reaper = Reaper(tmp.path());
    let out = tmp.path().join("g");
    let mut child = start(&[
        "gauntlet",
        "--policies",
        "rr,eevdf,vtime,fifo",
        "--cpus",
        "1",
        "--duration",
        "5s",
        "--jobs",
        "2",
        "--out",
        path_str(&out),
        "--json",
    ]);
    std::thread::sleep(Duration::from_millis(1000));
    let sent = Instant::now();
    signal(child.id(), "INT");
    let status = wait_at_most(&mut child, Duration::from_secs(10), "the gauntlet");
    let took = sent.elapsed();
    let stdout = stdout_of(&mut child);
    let stderr = stderr_of(&mut child);
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(took < Duration::from_secs(5), "exit {took:?} after SIGINT");
    eprintln!("gauntlet: exit 130 {took:?} after SIGINT");
    let left = processes_naming(&out);
    assert!(left.is_empty(), "processes left behind: {left:?}");
    let printed: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON object ({e}): {stdout}"));
    let g = read_json(&out.join("gauntlet.json"));
    assert_eq!(g, printed, "the file is what was printed");
    assert_eq!(g["status"], "interrupted");
    assert_eq!(g["interrupted"], "SIGINT");
    let runs = g["runs"].as_array().unwrap();
    let interrupted: Vec<&Value> = runs
        .iter()
        .filter(|r| r["verdict"] == "interrupted")
        .collect();
    assert_eq!(interrupted.len(), 2, "two ran at once: {g}");
    assert_eq!(g["interrupted_runs"], 2);
    assert_eq!(
        g["not_started"].as_array().unwrap().len(),
        2,
        "no job starts after the signal: {g}"
    );
    for r in interrupted {
        assert_eq!(r["exit_code"], 130, "{r}");
        let v = read_json(Path::new(r["result"].as_str().unwrap()));
        assert_eq!(v["status"], "interrupted", "{r}");
        assert!(r["max_wait_ns"].as_f64().is_some(), "partial numbers: {r}");
    }
}

#[test]
fn a_stopped_gauntlet_child_is_killed_at_its_deadline() {
    let _vm = lock();
    let tmp = tempfile::tempdir().unwrap();
    let _reaper = Reaper(tmp.path());
    let out = tmp.path().join("g");
    let started = Instant::now();
    // Deadline: --timeout 3s + 5 s + 10 % = 8.3 s, then 2 s of grace.
    let mut child = start(&[
        "gauntlet",
        "--policies",
        "rr",
        "--cpus",
        "1",
        "--duration",
        "2s",
        "--timeout",
        "3s",
        "--jobs",
        "1",
        "--out",
        path_str(&out),
        "--json",
    ]);
    let run_dir = out.join("spin-rr-1cpu");
    let run = loop {
        if let Some(&pid) = processes_naming(&run_dir).first() {
            break pid;
        }
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "the gauntlet's child never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    signal(run, "STOP");
    let status = wait_at_most(&mut child, Duration::from_secs(15), "the gauntlet");
    let took = started.elapsed();
    let stdout = stdout_of(&mut child);
    assert_eq!(status.code(), Some(70), "{}", stderr_of(&mut child));
    assert!(
        (Duration::from_secs(8)..Duration::from_secs(14)).contains(&took),
        "took {took:?}"
    );
    eprintln!("stopped child: gauntlet ended after {took:?}");
    assert!(
        processes_naming(&out).is_empty(),
        "the stopped child was killed"
    );
    let g: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(g["status"], "error");
    let row = &g["runs"][0];
    assert_eq!(row["verdict"], "error", "{row}");
    let note = row["note"].as_str().unwrap();
    assert!(
        note.starts_with("stopped at its deadline: no report 8.3 s after it started")
            && note.contains("--timeout 3s")
            && note.contains("SIGKILL"),
        "{note}"
    );
}

/// `schedlab ARGS` with stdout closed (`>&-`) and with a pipe whose reader
/// has gone: the exit code `expected` allows, never a panic (101).
fn with_stdout_gone(args: &[&str], expected: &[i32]) {
    // A run given `--out` leaves its verdict there: what a failure says
    // (its stdout is gone).
    let verdict = || {
        let dir = args.iter().position(|a| *a == "--out").map(|i| args[i + 1]);
        dir.and_then(|d| std::fs::read_to_string(Path::new(d).join("result.json")).ok())
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .map(|v| v["verdict"].to_string())
            .unwrap_or_default()
    };
    // Closed: the shell runs it with no fd 1 at all.
    let closed = Command::new("sh")
        .arg("-c")
        .arg("exec \"$0\" \"$@\" >&-")
        .arg(env!("CARGO_BIN_EXE_schedlab"))
        .args(args)
        .output()
        .expect("run sh");
    let closed_verdict = verdict();
    // A pipe read by nobody: the read end is closed before it writes.
    let mut piped = start(args);
    drop(piped.stdout.take());
    let status = wait_at_most(&mut piped, Duration::from_secs(30), "schedlab");
    let piped_err = stderr_of(&mut piped);
    for (how, code, stderr, verdict) in [
        (
            ">&-",
            closed.status.code(),
            String::from_utf8_lossy(&closed.stderr).into_owned(),
            closed_verdict,
        ),
        ("a closed pipe", status.code(), piped_err, verdict()),
    ] {
        assert!(
            !stderr.contains("panicked"),
            "schedlab {args:?} with {how}: {stderr}"
        );
        let code = code.unwrap_or(-1);
        assert!(
            expected.contains(&code),
            "schedlab {args:?} with {how}: exit {code}, expected {expected:?}: {stderr} {verdict}"
        );
    }
}

#[test]
fn a_closed_stdout_is_no_panic() {
    let _vm = lock();
    let tmp = tempfile::tempdir().unwrap();
    with_stdout_gone(&["policies", "--json"], &[0]);
    with_stdout_gone(&["policies"], &[0]);
    with_stdout_gone(&["--help"], &[0]);
    let dir = tmp.path().join("run");
    with_stdout_gone(
        &[
            "spin",
            "--duration",
            "100ms",
            "--json",
            "--out",
            path_str(&dir),
        ],
        &[0, 2],
    );
    // The run still kept its files.
    let v = read_json(&dir.join("result.json"));
    assert_eq!(v["status"], "ok", "{v}");
    let r = path_str(&dir);
    with_stdout_gone(&["compare", r, r], &[0]);
    with_stdout_gone(&["compare", r, r, "--json"], &[0]);
    let again = tmp.path().join("again");
    with_stdout_gone(
        &["spin", "--duration", "100ms", "--out", path_str(&again)],
        &[0, 2],
    );
}

/// Every way a run can end, from the command line: the JSON's status says
/// what the exit code says (the run-level half of the unit tests' table,
/// whose interrupted rows the signal tests above cover).
#[test]
fn the_json_status_agrees_with_the_exit_code_on_every_path() {
    let _vm = lock();
    let no_kvm = [("SCHEDLAB_KVM_PATH", Path::new(NO_KVM))];
    type Env<'a> = &'a [(&'a str, &'a Path)];
    let cases: Vec<(&str, Vec<&str>, Env, &[i32])> = vec![
        ("usage", vec!["spin", "--tasks", "0"], &no_kvm, &[64]),
        ("environment", vec!["spin"], &no_kvm, &[69]),
        (
            "guest",
            vec!["spin", "--tasks", "2", "--test-fault", "ud2"],
            &[],
            &[70],
        ),
        ("pass", vec!["spin", "--duration", "100ms"], &[], &[0, 2]),
    ];
    for (what, mut args, env, codes) in cases {
        args.push("--json");
        let r = schedlab(&args, env);
        assert!(codes.contains(&r.code), "{what}: {}\n{}", r.code, r.stderr);
        let v = json(&r);
        assert_eq!(code_the_json_promises(&v), r.code, "{what}: {v}");
    }
    // A failed verdict: a task the test-only policy starves.
    let r = schedlab(&["spin", "--tasks", "2", "--json"], &[]);
    let pid = json(&r)["tasks"][0]["pid"].as_u64().unwrap().to_string();
    let r = schedlab(
        &[
            "spin",
            "--tasks",
            "2",
            "--duration",
            "2s",
            "--policy",
            "starve",
            "--starve-pid",
            &pid,
            "--json",
        ],
        &[],
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_eq!(code_the_json_promises(&json(&r)), 1);
}
