//! Hostile inputs: every file schedlab reads (a scenario, results to
//! compare, guest images under SCHEDLAB_GUEST_DIR) may be a named pipe,
//! /dev/zero, a directory or a 1 GiB sparse file. Each must be refused
//! with a clear message and the documented exit code within a second,
//! using little memory (on main a FIFO blocked forever and /dev/zero grew
//! to 8.4 GB). Each run is bounded by `timeout` and its peak RSS read
//! with wait4. Also: limits both sides share, exit codes that agree with
//! the JSON, and the `--help` a `run` error points to.

mod common;

use common::*;
use std::ffi::CString;
use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Seconds `timeout` allows a refusal; the test wants far less.
const KILL_AFTER_S: &str = "10";
/// A refusal must come this fast...
const QUICK: Duration = Duration::from_secs(1);
/// ... and cost at most this much memory.
const SMALL_RSS_KB: i64 = 100 << 10;

struct Bounded {
    code: i32,
    stdout: String,
    stderr: String,
    took: Duration,
    /// Peak RSS of `timeout` and schedlab under it, in KiB.
    max_rss_kb: i64,
}

/// Run schedlab under `timeout -s KILL`, and read its peak RSS from the
/// rusage wait4 returns (which covers the waited-for child's children).
#[expect(
    clippy::zombie_processes,
    reason = "the child is reaped by wait4, which also returns its peak RSS"
)]
fn bounded(args: &[&str], env: &[(&str, &Path)]) -> Bounded {
    let mut cmd = Command::new("timeout");
    cmd.args(["-s", "KILL", KILL_AFTER_S, env!("CARGO_BIN_EXE_schedlab")])
        .args(args)
        .env_remove("SCHEDLAB_GUEST_DIR")
        .env_remove("SCHEDLAB_KVM_PATH")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let t = Instant::now();
    let mut child = cmd.spawn().expect("run timeout(1)");
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let mut stderr = String::new();
    let _ = err.read_to_string(&mut stderr);
    let stdout = reader.join().unwrap();
    let mut status = 0;
    // SAFETY: rusage is plain data that wait4 fills; zeroed is valid.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child, by pid; std never waits for it
    // (we do not call Child::wait), so the pid is not reused meanwhile.
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as libc::pid_t, "wait4 failed");
    let took = t.elapsed();
    let status = std::process::ExitStatus::from_raw(status);
    Bounded {
        code: status.code().unwrap_or(-1),
        stdout,
        stderr,
        took,
        max_rss_kb: usage.ru_maxrss,
    }
}

/// The four kinds of file that are not a file schedlab should read, made
/// at `path`.
#[derive(Clone, Copy, Debug)]
enum Hostile {
    Fifo,
    DevZero,
    Directory,
    Sparse1G,
}

const HOSTILE: [Hostile; 4] = [
    Hostile::Fifo,
    Hostile::DevZero,
    Hostile::Directory,
    Hostile::Sparse1G,
];

impl Hostile {
    fn make(self, path: &Path) {
        match self {
            Hostile::Fifo => {
                let c = CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
                // SAFETY: a valid NUL-terminated path; mkfifo only makes a node.
                assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
            }
            Hostile::DevZero => std::os::unix::fs::symlink("/dev/zero", path).unwrap(),
            Hostile::Directory => std::fs::create_dir(path).unwrap(),
            Hostile::Sparse1G => std::fs::File::create(path)
                .unwrap()
                .set_len(1 << 30)
                .unwrap(),
        }
    }
    /// What the message says it is.
    fn said(self) -> &'static str {
        match self {
            Hostile::Fifo => "it is a named pipe (FIFO), not a regular file",
            Hostile::DevZero => "it is a character device, not a regular file",
            Hostile::Directory => "it is a directory, not a regular file",
            Hostile::Sparse1G => "it is 1073741824 bytes (1 GiB): the cap, ",
        }
    }
}

fn refused_quickly(r: &Bounded, code: i32, what: &str, path: &Path, kind: Hostile) {
    let ctx = format!("{kind:?} as {what}: exit {}, stderr: {}", r.code, r.stderr);
    assert_eq!(r.code, code, "{ctx}");
    assert!(
        r.stderr.contains(&format!(
            "{}: cannot read the {what}: {}",
            path.display(),
            kind.said()
        )),
        "{ctx}"
    );
    assert!(r.took < QUICK, "{ctx}: took {:?}", r.took);
    assert!(
        r.max_rss_kb < SMALL_RSS_KB,
        "{ctx}: peak RSS {} KiB",
        r.max_rss_kb
    );
}

#[test]
fn hostile_scenario_files_are_refused_quickly_and_cheaply() {
    for kind in HOSTILE {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("scenario.toml");
        kind.make(&path);
        let r = bounded(&["run", path.to_str().unwrap()], &[]);
        refused_quickly(&r, 64, "scenario file", &path, kind);
        assert!(r.stderr.contains("`schedlab run --help`"), "{}", r.stderr);
        // --json: one object, status "error" with the same code.
        let r = bounded(&["run", path.to_str().unwrap(), "--json"], &[]);
        assert_eq!(r.code, 64);
        let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
        assert_eq!(
            (v["status"].as_str(), v["error"]["kind"].as_str()),
            (Some("error"), Some("usage"))
        );
        assert!(r.took < QUICK && r.max_rss_kb < SMALL_RSS_KB);
    }
}

/// A real result file to compare against.
fn a_result(dir: &Path) -> PathBuf {
    let p = dir.join("good.json");
    let v = serde_json::json!({
        "kind": "schedlab-result",
        "operation": "spin",
        "status": "ok",
        "versions": {"schedlab": "0.1.0"},
        "totals": {"units_per_sec": 1000.0},
    });
    std::fs::write(&p, v.to_string()).unwrap();
    p
}

#[test]
fn hostile_result_files_are_refused_quickly_and_cheaply() {
    for kind in HOSTILE {
        let dir = tempfile::tempdir().unwrap();
        let good = a_result(dir.path());
        // Named directly (a directory is a set of results, so that kind
        // is tried inside one, below).
        if !matches!(kind, Hostile::Directory) {
            let path = dir.path().join("bad.json");
            kind.make(&path);
            let r = bounded(
                &["compare", path.to_str().unwrap(), good.to_str().unwrap()],
                &[],
            );
            refused_quickly(&r, 64, "result file", &path, kind);
        }
        // Found by the directory walk: A/x/result.json is the hostile one.
        let a = dir.path().join("a");
        std::fs::create_dir_all(a.join("x")).unwrap();
        let path = a.join("x/result.json");
        kind.make(&path);
        let b = dir.path().join("b");
        std::fs::create_dir_all(b.join("x")).unwrap();
        std::fs::copy(&good, b.join("x/result.json")).unwrap();
        let r = bounded(&["compare", a.to_str().unwrap(), b.to_str().unwrap()], &[]);
        if matches!(kind, Hostile::Directory) {
            // A directory named result.json is searched, not read.
            assert_eq!(r.code, 64, "{}", r.stderr);
            assert!(r.stderr.contains("no result.json under"), "{}", r.stderr);
            assert!(r.took < QUICK && r.max_rss_kb < SMALL_RSS_KB);
        } else {
            refused_quickly(&r, 64, "result file", &path, kind);
        }
    }
}

#[test]
fn hostile_guest_images_are_refused_before_kvm_quickly_and_cheaply() {
    let no_kvm = ("SCHEDLAB_KVM_PATH", Path::new(NO_KVM));
    for file in ["kernel.elf", "spin.bin", "spin.elf"] {
        for kind in HOSTILE {
            let dir = image_copy();
            let path = dir.path().join(file);
            std::fs::remove_file(&path).unwrap();
            kind.make(&path);
            let r = bounded(&["spin"], &[("SCHEDLAB_GUEST_DIR", dir.path()), no_kvm]);
            refused_quickly(&r, 69, "guest image", &path, kind);
            assert!(r.stderr.contains("run `make`"), "{}", r.stderr);
        }
    }
}

#[test]
fn a_truncated_operation_image_is_refused_with_exit_69() {
    let no_kvm = ("SCHEDLAB_KVM_PATH", Path::new(NO_KVM));
    let dir = image_copy();
    let bin = dir.path().join("spin.bin");
    let bytes = std::fs::read(&bin).unwrap();
    // Past the first segment (.text), so only the data is missing: the
    // old check compared only the common prefix of the first segment.
    std::fs::write(&bin, &bytes[..bytes.len() - 8]).unwrap();
    let r = bounded(&["spin"], &[("SCHEDLAB_GUEST_DIR", dir.path()), no_kvm]);
    assert_eq!(r.code, 69, "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!(
            "guest image {} is unusable: it does not match",
            bin.display()
        )),
        "{}",
        r.stderr
    );
    // Altered in its last byte: same length, different bytes.
    let mut altered = bytes.clone();
    *altered.last_mut().unwrap() ^= 0x55;
    std::fs::write(&bin, &altered).unwrap();
    let r = bounded(&["spin"], &[("SCHEDLAB_GUEST_DIR", dir.path()), no_kvm]);
    assert_eq!(r.code, 69, "{}", r.stderr);
    assert!(r.stderr.contains("CRC32"), "{}", r.stderr);
}

/// Limits both sides share: the core refuses a weight over 10,000, so the
/// host does too, before any VM (it used to allow 100,000 and the run
/// ended in a guest panic, exit 70).
#[test]
fn weights_over_the_cores_limit_are_usage_errors() {
    let no_kvm = ("SCHEDLAB_KVM_PATH", Path::new(NO_KVM));
    let max = abi::ipc::MAX_WEIGHT;
    let over = (max + 1).to_string();
    let r = bounded(&["spin", "--weights", &over], &[no_kvm]);
    assert_eq!(r.code, 64, "{}", r.stderr);
    assert!(
        r.stderr
            .contains(&format!("between 1 and {max}, got {over}")),
        "{}",
        r.stderr
    );
    // The limit itself passes validation (then fails on the missing KVM).
    let r = bounded(&["spin", "--weights", &max.to_string()], &[no_kvm]);
    assert_eq!(r.code, 69, "{}", r.stderr);
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("w.toml");
    std::fs::write(
        &f,
        format!("[[task]]\nname = \"a\"\nweight = {over}\nphases = [\"yield\"]\n"),
    )
    .unwrap();
    let r = bounded(&["run", f.to_str().unwrap()], &[no_kvm]);
    assert_eq!(r.code, 64, "{}", r.stderr);
    assert!(
        r.stderr
            .contains(&format!("weight must be between 1 and {max}"))
    );
}

#[test]
fn an_hour_is_a_duration_as_the_help_says() {
    let no_kvm = ("SCHEDLAB_KVM_PATH", Path::new(NO_KVM));
    let r = bounded(&["spin", "--duration", "1h"], &[no_kvm]);
    assert_eq!(r.code, 69, "validated, then no KVM: {}", r.stderr);
    let r = bounded(&["spin", "--duration", "2h"], &[no_kvm]);
    assert_eq!(r.code, 64);
    assert!(r.stderr.contains("the maximum is 1h"), "{}", r.stderr);
}

/// `run`'s errors found after validation pointed at `schedlab scenario
/// --help`, which does not exist.
#[test]
fn run_errors_point_at_run_help() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/spin.toml");
    let r = bounded(
        &[
            "run",
            examples.to_str().unwrap(),
            "--out",
            "/proc/schedlab-test/out",
        ],
        &[],
    );
    assert_eq!(r.code, 64, "{}", r.stderr);
    assert!(
        r.stderr.contains("(see `schedlab run --help`)"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("scenario --help"), "{}", r.stderr);
}

/// `--timeout` shorter than the run: status "error", exit 70, and the
/// verdict must not say pass (it used to).
#[test]
fn a_deadline_error_is_never_a_pass() {
    let _vm = lock();
    let r = schedlab(&["spin", "--timeout", "100ms", "--json"], &[]);
    let v = json(&r);
    assert_eq!(r.code, 70, "{}", r.stderr);
    assert_eq!(v["status"], "error");
    assert_eq!(v["error"]["kind"], "deadline", "{v}");
    assert_ne!(v["verdict"]["status"], "pass", "{v}");
}

/// Printing to a full device made `println!` panic (exit 101, which no
/// script expects); every print now goes through `vmm::stdio`, which says
/// once that stdout cannot be written and carries on.
#[test]
fn a_full_stdout_is_said_not_panicked_on() {
    let full = std::fs::File::create("/dev/full").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_schedlab"))
        .arg("policies")
        .stdout(full)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(101), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        stderr.contains("cannot write to stdout: No space left on device"),
        "{stderr}"
    );
}
