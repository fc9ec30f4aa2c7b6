//! Helpers shared by the end-to-end test binaries: run the real binary,
//! find the guest images, copy them for SCHEDLAB_GUEST_DIR. Each test
//! binary has its own lock; cargo runs test binaries one after another,
//! so there is still one VM at a time.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

// The one rule for finding the sched_ext material, shared with the BPF
// loader's tests.
#[path = "../../../bpf/tests/common/material.rs"]
pub mod material;

pub static ONE_VM_AT_A_TIME: Mutex<()> = Mutex::new(());

pub fn lock() -> MutexGuard<'static, ()> {
    // A failed test poisons the lock; the next test may still run.
    ONE_VM_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn guest_dir() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let target = if target.is_absolute() {
        target
    } else {
        root.join(target)
    };
    let dir = target.join("guest");
    for f in ["kernel.elf", "spin.bin", "spin.elf"] {
        assert!(
            dir.join(f).is_file(),
            "guest image {} is missing: run make (or ./build.sh) before the end-to-end tests",
            dir.join(f).display()
        );
    }
    dir
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub took: Duration,
}

pub fn schedlab(args: &[&str], env: &[(&str, &Path)]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_schedlab"));
    cmd.args(args)
        .env_remove("SCHEDLAB_GUEST_DIR")
        .env_remove("SCHEDLAB_KVM_PATH");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let t = Instant::now();
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().expect("run schedlab");
    Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
        took: t.elapsed(),
    }
}

pub fn json(r: &Run) -> serde_json::Value {
    serde_json::from_str(&r.stdout)
        .unwrap_or_else(|e| panic!("stdout is not exactly one JSON object ({e}):\n{}", r.stdout))
}

/// A copy of the guest images in a temp dir, for SCHEDLAB_GUEST_DIR.
pub fn image_copy() -> tempfile::TempDir {
    let src = guest_dir();
    let dir = tempfile::tempdir().unwrap();
    for f in ["kernel.elf", "spin.bin", "spin.elf"] {
        std::fs::copy(src.join(f), dir.path().join(f)).unwrap();
    }
    dir
}

pub const NO_KVM: &str = "/nonexistent/schedlab-test/kvm";

/// The exit code a report's JSON stands for, read from the JSON alone as a
/// script would, by the documented table (README, `schedlab --help`).
pub fn code_the_json_promises(v: &serde_json::Value) -> i32 {
    match v["status"].as_str().expect("status") {
        "interrupted" => match v["interrupted"]["signal"].as_str().expect("signal") {
            "SIGHUP" => 129,
            "SIGINT" => 130,
            "SIGTERM" => 143,
            s => panic!("undocumented signal {s}: {v}"),
        },
        "error" => match v["error"]["kind"].as_str().expect("error.kind") {
            "usage" => 64,
            "kvm" | "image" | "abi" | "host" => 69,
            _ => 70,
        },
        "ok" | "stopped" => match v["verdict"]["status"].as_str() {
            Some("pass") | None => 0,
            Some("fail") => 1,
            Some("inconclusive") => 2,
            Some(s) => panic!("undocumented verdict {s}: {v}"),
        },
        s => panic!("undocumented status {s}: {v}"),
    }
}

/// The verdict calls the run inconclusive because the host's waits or a
/// late tick can explain what failed (wall-time checks on this machine's
/// PVM host: a halted vCPU's tick has arrived 20 ms late).
pub fn host_explained(v: &serde_json::Value) -> bool {
    v["verdict"]["status"] == "inconclusive"
        && v["verdict"]["reasons"][0]
            .as_str()
            .is_some_and(|r| r.contains("the host, not the policy, may have caused it"))
}

/// The run passed, or was inconclusive because the host can explain what
/// failed (a vCPU this 2-core PVM host froze or ran late: waits and
/// latencies stretched beyond a limit by no more than it took). Anything
/// else -- a fail, an error, inconclusive for another reason -- is not.
pub fn passed_or_host_explained(r: &Run, v: &serde_json::Value) -> bool {
    r.code == 0 || (r.code == 2 && host_explained(v))
}

/// Assert [`passed_or_host_explained`], printing stderr and the verdict.
pub fn assert_judged(r: &Run, v: &serde_json::Value) {
    assert!(
        passed_or_host_explained(r, v),
        "{}\n{}",
        r.stderr,
        v["verdict"]
    );
}

/// Each task's share of the run's total runtime within 5 % (relative) of
/// 1/7, 2/7, 4/7: tickets 1:2:4, in the task order of `v["tasks"]`.
pub fn assert_shares_1_2_4(v: &serde_json::Value) {
    let tasks = v["tasks"].as_array().expect("tasks");
    assert_eq!(tasks.len(), 3, "{v}");
    let runtime: Vec<f64> = tasks
        .iter()
        .map(|t| t["runtime_ns"].as_f64().expect("runtime_ns"))
        .collect();
    let total: f64 = runtime.iter().sum();
    for (i, want) in [1.0 / 7.0, 2.0 / 7.0, 4.0 / 7.0].iter().enumerate() {
        let got = runtime[i] / total;
        assert!(
            (got - want).abs() <= 0.05 * want,
            "task {i}: share {got:.3}, entitled {want:.3} (1:2:4 within 5 %): {v}"
        );
    }
}

/// A temporary file named `*SUFFIX` (`.toml`, `.json`: how `run` tells
/// a scenario from an rt-app file) holding `text`.
pub fn temp_file(suffix: &str, text: &[u8]) -> tempfile::NamedTempFile {
    use std::io::Write;
    let mut f = tempfile::Builder::new().suffix(suffix).tempfile().unwrap();
    f.write_all(text).unwrap();
    f
}

/// `schedlab OP ARGS... --json`: the run and its JSON.
pub fn op_json(op: &str, args: &[&str]) -> (Run, serde_json::Value) {
    let mut argv = vec![op];
    argv.extend_from_slice(args);
    argv.push("--json");
    let r = schedlab(&argv, &[]);
    let v = json(&r);
    (r, v)
}

/// A JSON value that must be an unsigned number.
pub fn u(v: &serde_json::Value) -> u64 {
    v.as_u64()
        .unwrap_or_else(|| panic!("not an unsigned number: {v}"))
}

/// `src` (a `.bpf.c`) compiled with the sched_ext material's exact flags
/// (`build-bpf.sh`), once per test process.
pub fn bpf_object(src: &Path) -> PathBuf {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    let dir = DIR.get_or_init(|| tempfile::tempdir().unwrap());
    let name = src
        .file_name()
        .unwrap()
        .to_string_lossy()
        .replace(".c", ".o");
    let out = dir.path().join(&name);
    if !out.is_file() {
        let r = Command::new(material::scx_dir().join("build-bpf.sh"))
            .arg(src)
            .arg(&out)
            .output()
            .expect("run build-bpf.sh (is clang-19 installed? ./setup.sh installs it)");
        assert!(
            r.status.success(),
            "clang could not build {}:\n{}",
            src.display(),
            String::from_utf8_lossy(&r.stderr)
        );
    }
    out
}
