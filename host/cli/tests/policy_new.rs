//! End-to-end test of `schedlab policy new` (issue 9), done the way a new
//! user does it: write the crate, build it with plain `cargo build
//! --release` outside schedlab's workspace, run the template, put a stride
//! scheduler in `src/main.rs`, build again and judge it on a real VM. The
//! builds go to a target directory inside the temp dir, so they depend on
//! nothing in the workspace's own `target/` (the first one compiles the
//! SDK and its dependencies: 15-25 s here).

mod common;

use common::*;
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

/// `cargo build --release` in `dir`, as the user types it.
fn cargo_build(dir: &Path, target: &Path) {
    let t = Instant::now();
    let out = Command::new("cargo")
        .args(["build", "--release"])
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", target)
        .output()
        .expect("run cargo");
    assert!(
        out.status.success(),
        "cargo build --release in {} failed:\n{}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("cargo build --release: {:.1} s", t.elapsed().as_secs_f64());
}

/// `cargo test-host` in `dir` (the alias the crate's .cargo/config.toml
/// defines): the crate's unit tests in the SDK's simulator, no KVM.
fn cargo_test_host(dir: &Path, target: &Path) -> String {
    let t = Instant::now();
    let out = Command::new("cargo")
        .args(["test-host"])
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", target)
        .output()
        .expect("run cargo");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "cargo test-host in {} failed:\n{stdout}\n{}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("cargo test-host: {:.1} s", t.elapsed().as_secs_f64());
    stdout
}

fn text(p: &Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}

#[test]
fn a_new_crate_builds_out_of_tree_and_a_stride_policy_in_it_passes() {
    let _vm = lock();
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("stride");
    let target = tmp.path().join("target");
    let env: &[(&str, &Path)] = &[("CARGO_TARGET_DIR", &target)];

    let r = schedlab(&["policy", "new", "stride", text(&dir)], env);
    assert_eq!(r.code, 0, "{}", r.stderr);
    for next in [
        format!("(cd {} && cargo build --release)", dir.display()),
        format!("schedlab spin --policy {}", dir.display()),
    ] {
        assert!(r.stdout.contains(&next), "{}", r.stdout);
    }
    for f in ["Cargo.toml", ".cargo/config.toml", "build.rs", "policy.ld"] {
        assert!(dir.join(f).is_file(), "{f}: {}", r.stdout);
    }

    // The template as written: a working round-robin on two CPUs. Its
    // shares are not asserted: on a busy 2-core host even `rr`'s 2-CPU
    // shares fail often (the vCPUs lose ticks); a CPU left idle or a task
    // left behind shows as an error or a failed wait, which are.
    cargo_build(&dir, &target);
    // Its unit test runs out of tree too, in the simulator.
    let tests = cargo_test_host(&dir, &target);
    assert!(
        tests.contains("test tests::equal_shares_on_one_cpu ... ok"),
        "{tests}"
    );
    let r = schedlab(
        &[
            "spin",
            "--cpus",
            "2",
            "--tasks",
            "4",
            "--duration",
            "500ms",
            "--policy",
            text(&dir),
            "--json",
        ],
        env,
    );
    let v: Value = json(&r);
    assert_eq!(v["status"], "ok", "exit {}: {}\n{v}", r.code, r.stderr);
    assert_eq!(v["config"]["policy"], "stride", "{}", v["config"]);
    assert_eq!(v["config"]["shares_judged"], "equal", "{}", v["config"]);
    let checks = v["verdict"]["checks"].as_array().expect("checks");
    let wait = checks
        .iter()
        .find(|c| c["name"] == "max_wait_ns")
        .expect("the template promises bounded wait");
    assert_eq!(wait["passed"], true, "{}", v["verdict"]);
    let tasks = v["tasks"].as_array().expect("tasks");
    assert_eq!(tasks.len(), 4, "{v}");
    assert!(
        tasks.iter().all(|t| t["runtime_ns"].as_f64() > Some(0.0)),
        "{v}"
    );

    // What the user writes next: stride scheduling, weighted shares --
    // the in-tree policy's source as it is, which builds in the new crate
    // unchanged (its unit test too). A second, not the default 200 ms:
    // task 0's ~30 slices in 200 ms put one slice at 3-5 % of its share.
    let stride =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../guest/policies/stride/src/main.rs");
    std::fs::copy(&stride, dir.join("src/main.rs")).expect("copy stride's source");
    cargo_build(&dir, &target);
    let r = schedlab(
        &[
            "spin",
            "--cpus",
            "1",
            "--tasks",
            "3",
            "--weights",
            "1,2,4",
            "--duration",
            "1s",
            "--policy",
            text(&dir),
            "--json",
        ],
        env,
    );
    let v: Value = json(&r);
    assert_judged(&r, &v);
    // (A pass, or inconclusive because the host froze the vCPU: a
    // 100.1 ms wait against the 100 ms limit was seen in CI.)
    assert_eq!(v["config"]["shares_judged"], "weighted", "{}", v["config"]);
    // --policy DIR found the ELF cargo made in CARGO_TARGET_DIR.
    let elf = target.join("x86_64-unknown-none/release/stride");
    assert_eq!(v["config"]["policy_path"], text(&elf), "{}", v["config"]);
    assert_shares_1_2_4(&v);
}

#[test]
fn bad_names_full_directories_and_missing_sdks_are_refused_writing_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("p");
    for (args, says) in [
        (
            vec!["policy", "new", "My Policy", text(&dir)],
            "not a crate name",
        ),
        (
            vec!["policy", "new", &"x".repeat(40), text(&dir)],
            "at most 31",
        ),
        (
            vec![
                "policy",
                "new",
                "ok",
                text(&dir),
                "--sdk",
                "/nonexistent/sdk",
            ],
            "--sdk /nonexistent/sdk",
        ),
    ] {
        let r = schedlab(&args, &[]);
        assert_eq!(r.code, 64, "{args:?}: {}", r.stderr);
        assert!(r.stderr.contains(says), "{args:?}: {}", r.stderr);
        assert!(r.stdout.is_empty(), "{}", r.stdout);
        assert!(!dir.exists(), "{args:?} wrote {}", dir.display());
    }
    std::fs::create_dir(&dir).expect("mkdir");
    std::fs::write(dir.join("mine"), "keep").expect("write");
    let r = schedlab(&["policy", "new", "ok", text(&dir)], &[]);
    assert_eq!(r.code, 64, "{}", r.stderr);
    assert!(r.stderr.contains("exists and is not empty"), "{}", r.stderr);
    assert_eq!(std::fs::read_dir(&dir).expect("ls").count(), 1);
}
