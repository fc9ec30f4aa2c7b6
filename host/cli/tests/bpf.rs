//! sched_ext BPF objects as the policy, end to end: objects compiled here
//! with clang from the sched_ext material (`material::scx_dir`: two real
//! schedulers) and from `tests/bpf/` (schedlab's own, which check every
//! kfunc and helper the runtime provides), run in real VMs. One VM at a
//! time (the lock). The material missing is a failure, never a pass.

mod common;

use common::bpf_object as object;
use common::material::scx_dir;
use common::{json, lock, passed_or_host_explained, schedlab};
use std::path::{Path, PathBuf};

fn shared(name: &str) -> PathBuf {
    object(&scx_dir().join("schedulers").join(format!("{name}.bpf.c")))
}

fn ours(name: &str) -> PathBuf {
    object(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/bpf")
            .join(format!("{name}.bpf.c")),
    )
}

fn run(args: &[&str]) -> (common::Run, serde_json::Value) {
    let r = schedlab(args, &[]);
    let v = json(&r);
    (r, v)
}

/// Each task's share of the run's CPU time.
fn shares(v: &serde_json::Value) -> Vec<f64> {
    let rt: Vec<f64> = v["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .map(|t| t["runtime_ns"].as_f64().expect("runtime_ns"))
        .collect();
    let total: f64 = rt.iter().sum();
    rt.iter().map(|r| r / total).collect()
}

/// Task `i`'s mean wait for a CPU per turn, in ms.
fn mean_wait_ms(v: &serde_json::Value, i: usize) -> f64 {
    let t = &v["metrics"]["tasks"][i];
    let wait = t["total_wait_ns"].as_f64().expect("total_wait_ns");
    let slices = t["slices"].as_f64().expect("slices").max(1.0);
    wait / slices / 1e6
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn scx_simple_gives_weighted_shares_on_1_2_and_4_cpus() {
    let obj = shared("scx_simple");
    let _g = lock();
    // Short slices and long windows: the verdict will not pass an error
    // that the window's slicing alone could make (a 1 ms slice needs ~12 s
    // to decide a 10 % limit for the lightest of 8 tasks).
    for (cpus, duration) in [("1", "2s"), ("2", "2s"), ("4", "3s")] {
        let (r, v) = run(&[
            "spin",
            "--slice",
            "200us",
            "--cpus",
            cpus,
            "--tasks",
            "8",
            "--weights",
            "1,1,2,2,4,4,8,8",
            "--duration",
            duration,
            "--policy",
            path(&obj),
            "--check",
            "shares",
            "--json",
        ]);
        assert_eq!(v["bpf"]["state"], "ok", "{v}");
        assert_eq!(v["bpf"]["ops_name"], "simple");
        assert!(v["bpf"]["instructions"].as_u64().unwrap() > 1000, "{v}");
        let checks = v["verdict"]["checks"].as_array().expect("checks");
        assert!(
            checks.iter().any(|c| c["name"] == "max_fairness_error"),
            "shares were not judged: {v}"
        );
        // One vCPU has a host core to itself: the verdict must pass (or
        // blame the host), every share within 10 % of its entitlement. With more vCPUs than this
        // machine's 2 cores the host runs them at speeds up to ~60 % apart
        // (per-CPU queues pass that on), so the verdict may call an error
        // the host's doing (exit 2), never unfair (exit 1). When it passes,
        // shares are checked to follow the weights within 35 %; when the
        // host is blamed (a loaded host once gave a weight-1 task +61 %),
        // only the order of the weight classes is (ignoring the weights
        // would give every class the same share).
        let tasks = v["tasks"].as_array().expect("tasks");
        let pairs: Vec<(f64, f64)> = tasks
            .iter()
            .map(|t| {
                (
                    t["share"].as_f64().unwrap(),
                    t["entitled_share"].as_f64().unwrap(),
                )
            })
            .collect();
        let tolerance = match (cpus, r.code) {
            ("1", _) => {
                // Passed, or a wait the host explains (a vCPU frozen 40 ms
                // without its tick once made 8 tasks wait 114-126 ms
                // against the 100 ms limit): the shares still hold to 10 %.
                assert!(passed_or_host_explained(&r, &v), "{}", r.stdout);
                0.1
            }
            (_, 0) => 0.35,
            (_, 2) => {
                // Weights 1,1,2,2,4,4,8,8: each class's two tasks together,
                // for the classes whose entitlement is not capped at a
                // whole CPU per task (on 4 CPUs the weight-8 tasks are
                // entitled to one vCPU each, and a vCPU the host runs at
                // half speed gives them half: a slow vCPU, not a policy
                // ignoring weights; seen here at 0.34 of 0.5).
                let n: f64 = cpus.parse().unwrap();
                let class: Vec<f64> = pairs
                    .chunks(2)
                    .filter(|c| c[0].1 < 0.999 / n)
                    .map(|c| c[0].0 + c[1].0)
                    .collect();
                assert!(class.len() >= 3, "{cpus} CPUs: {pairs:?}");
                assert!(
                    class.windows(2).all(|w| w[0] < w[1]),
                    "{cpus} CPUs: class shares {class:?} do not follow the weights"
                );
                continue;
            }
            (_, code) => panic!("{cpus} CPUs: exit {code}: {}", r.stdout),
        };
        for (t, (got, due)) in tasks.iter().zip(pairs) {
            assert!(
                (got - due).abs() <= tolerance * due,
                "{cpus} CPUs: task {} got {got:.3}, entitled to {due:.3}",
                t["pid"]
            );
        }
    }
}

#[test]
fn scx_simple_with_fifo_sched_shares_equally_whatever_the_weights() {
    let obj = shared("scx_simple");
    let _g = lock();
    let go = |extra: &[&str]| {
        let mut a = vec![
            "spin",
            "--tasks",
            "2",
            "--weights",
            "1,8",
            "--duration",
            "500ms",
            "--policy",
            path(&obj),
            "--json",
        ];
        a.extend_from_slice(extra);
        run(&a)
    };
    // Weighted vtime (the default): about 1/9 and 8/9, and the light
    // task waits out several of the heavy one's slices each time.
    let (r, v) = go(&[]);
    assert!(passed_or_host_explained(&r, &v), "{}", r.stdout);
    let s = shares(&v);
    assert!(s[0] < 0.2 && s[1] > 0.8, "vtime mode shares {s:?}");
    let vtime_wait = mean_wait_ms(&v, 0);
    assert!(
        vtime_wait > 4.0,
        "vtime mode: light task waits {vtime_wait} ms"
    );
    // FIFO: the weights mean nothing, each slice (1 ms) goes to the
    // queue's head in turn, so each task waits about one slice: both
    // tasks alike, and the light one far less than behind vtime's eight
    // heavy slices. (Ratios, not milliseconds: a loaded host stretches
    // every wall-clock turn of both runs alike, and once made a FIFO
    // turn's wait 2.6 ms.)
    let (r, v) = go(&["--bpf-set", "fifo_sched=1"]);
    assert!(passed_or_host_explained(&r, &v), "{}", r.stdout);
    let s = shares(&v);
    assert!(
        (s[0] - 0.5).abs() < 0.05,
        "FIFO mode shares {s:?}, expected equal"
    );
    let w = [mean_wait_ms(&v, 0), mean_wait_ms(&v, 1)];
    assert!(
        w[0] < 1.5 * w[1] && w[1] < 1.5 * w[0],
        "FIFO mode: the tasks wait {w:?} ms per turn, expected alike"
    );
    assert!(
        w[0] * 3.0 < vtime_wait,
        "FIFO mode: the light task waits {} ms per turn, vtime mode {vtime_wait} ms",
        w[0]
    );
    assert_eq!(v["bpf"]["sets"][0], "fifo_sched=1");
}

/// The CPU that made most of the dispatch decisions for other CPUs.
fn remote_decisions(v: &serde_json::Value) -> Vec<u64> {
    v["cpus"]
        .as_array()
        .expect("cpus")
        .iter()
        .map(|c| c["policy_remote_inserts"].as_u64().expect("remote inserts"))
        .collect()
}

#[test]
fn scx_central_decides_on_cpu_0_and_starves_no_one() {
    let obj = shared("scx_central");
    let _g = lock();
    for op in [
        &["spin", "--cpus", "4", "--tasks", "8"][..],
        &["pingpong", "--cpus", "4"][..],
        &["mixed", "--cpus", "4"][..],
    ] {
        let mut a = op.to_vec();
        a.extend_from_slice(&["--policy", path(&obj), "--json"]);
        let (r, v) = run(&a);
        assert!(
            passed_or_host_explained(&r, &v),
            "{op:?}: exit {}: {}",
            r.code,
            r.stdout
        );
        // Every task ran, in each operation's own terms (spin reports
        // tasks; pingpong and mixed report what their tasks did).
        let res = &v["result"];
        match op[0] {
            "spin" => {
                let tasks = v["tasks"].as_array().expect("tasks");
                assert_eq!(tasks.len(), 8, "{v}");
                for t in tasks {
                    assert!(
                        t["runtime_ns"].as_u64().unwrap_or(0) > 0,
                        "a task never ran: {t}"
                    );
                }
            }
            "pingpong" => assert_eq!(res["round_trips"], res["rounds"], "{res}"),
            _ => {
                // Hogs made progress; interactive tasks burst and were
                // woken (a task's first burst follows no measured wake).
                let bursts = res["bursts"].as_u64().expect("bursts");
                let wakes = res["wake"]["count"].as_u64().expect("wake.count");
                let interactive = res["interactive"].as_u64().expect("interactive");
                assert!(res["hog_units"].as_u64().expect("hog_units") > 0, "{res}");
                assert!(wakes > 0 && wakes + interactive >= bursts, "{res}");
            }
        }
        let remote = remote_decisions(&v);
        let others: u64 = remote[1..].iter().sum();
        assert!(
            remote[0] > 0 && remote[0] > 10 * others,
            "{op:?}: CPU 0 should queue the other CPUs' tasks: {remote:?}"
        );
    }
}

#[test]
fn every_operation_runs_under_a_bpf_object() {
    let obj = shared("scx_simple");
    let _g = lock();
    for op in [
        "spin", "ipc", "pingpong", "fanout", "periodic", "mixed", "schbench",
    ] {
        let (r, v) = run(&[op, "--policy", path(&obj), "--duration", "200ms", "--json"]);
        assert!(
            [0, 1, 2].contains(&r.code),
            "{op}: exit {}: {}",
            r.code,
            r.stdout
        );
        assert_eq!(v["bpf"]["state"], "ok", "{op}: {v}");
    }
}

#[test]
fn a_scenario_file_and_the_gauntlet_take_a_bpf_object() {
    let obj = shared("scx_simple");
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(&obj, dir.path().join("simple.bpf.o")).unwrap();
    let file = dir.path().join("s.toml");
    std::fs::write(
        &file,
        "duration = \"300ms\"\npolicy = \"simple.bpf.o\"\n\n[[task]]\nname = \"a\"\nphases = \
         [{ run = \"1ms\" }, { sleep = \"1ms\" }]\n",
    )
    .unwrap();
    let _g = lock();
    let (r, v) = run(&["run", path(&file), "--json"]);
    assert!([0, 2].contains(&r.code), "{}", r.stdout);
    assert_eq!(v["bpf"]["ops_name"], "simple", "{v}");

    let out = dir.path().join("g");
    let policies = format!("eevdf,{}", path(&obj));
    let r = schedlab(
        &[
            "gauntlet",
            "--policies",
            &policies,
            "--cpus",
            "1",
            "--duration",
            "200ms",
            "--jobs",
            "1",
            "--out",
            path(&out),
            "--json",
        ],
        &[],
    );
    let g = json(&r);
    let rows = g["runs"].as_array().expect("runs");
    assert!(
        rows.iter().any(|row| row["policy"] == "scx_simple"),
        "no scx_simple row: {g}"
    );
    assert!(
        rows.iter().all(|row| row["verdict"] != "error"),
        "a run failed: {g}"
    );
}

#[test]
fn selftest_checks_every_kfunc_and_helper_in_a_real_run() {
    let obj = ours("selftest");
    let _g = lock();
    let (r, v) = run(&[
        "spin",
        "--cpus",
        "2",
        "--tasks",
        "4",
        "--duration",
        "300ms",
        "--policy",
        path(&obj),
        "--bpf-set",
        "knob=9",
        "--verbose",
        "--json",
    ]);
    assert!(passed_or_host_explained(&r, &v), "{}", r.stdout);
    let logs: Vec<&str> = v["logs"]
        .as_array()
        .expect("logs")
        .iter()
        .filter_map(|l| l["text"].as_str())
        .collect();
    assert!(
        logs.iter()
            .any(|l| l.contains("selftest: init checks passed on 2 CPUs, knob 9")),
        "no init line (bpf_printk): {logs:?}"
    );
    let exit = logs
        .iter()
        .find(|l| l.contains("selftest: exit:"))
        .unwrap_or_else(|| panic!("no exit line: {logs:?}"));
    // The timer re-arms itself until it has fired 5 times (2 ms apart);
    // the one cancelled before it was due never fires.
    assert!(exit.ends_with("cancelled fired 0, timer fired 5"), "{exit}");
    assert_eq!(v["bpf"]["exit_info"]["kind"], 64, "{v}");
}

#[test]
fn spread_queues_on_chosen_cpus_and_scx_bpf_exit_ends_the_run() {
    let obj = ours("spread");
    let _g = lock();
    let (r, v) = run(&[
        "spin",
        "--cpus",
        "2",
        "--tasks",
        "4",
        "--duration",
        "300ms",
        "--policy",
        path(&obj),
        "--json",
    ]);
    assert!(passed_or_host_explained(&r, &v), "{}", r.stdout);
    let (r, v) = run(&[
        "spin",
        "--cpus",
        "2",
        "--tasks",
        "4",
        "--policy",
        path(&obj),
        "--bpf-set",
        "exit_after=20",
        "--json",
    ]);
    assert_eq!(r.code, 70, "{}", r.stdout);
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(msg.contains("spread: exit after 20 enqueues"), "{msg}");
    assert_eq!(v["bpf"]["exit_info"]["exit_code"], 7, "{v}");
    assert_eq!(v["bpf"]["state"], "scx_bpf_exit");
}

#[test]
fn an_unknown_kfunc_is_refused_before_any_vm_starts() {
    let obj = ours("bad_kfunc");
    // No KVM at all: a refusal that came after VM creation would say so.
    let r = schedlab(
        &["spin", "--policy", path(&obj)],
        &[("SCHEDLAB_KVM_PATH", Path::new(common::NO_KVM))],
    );
    assert_eq!(r.code, 64, "{}", r.stderr);
    assert!(
        r.stderr.contains("scx_bpf_frobnicate") && r.stderr.contains("badk_enqueue"),
        "{}",
        r.stderr
    );
    let r = schedlab(
        &[
            "spin",
            "--policy",
            path(&shared("scx_simple")),
            "--bpf-set",
            "no_such_knob=1",
        ],
        &[("SCHEDLAB_KVM_PATH", Path::new(common::NO_KVM))],
    );
    assert_eq!(r.code, 64, "{}", r.stderr);
    assert!(r.stderr.contains("no_such_knob"), "{}", r.stderr);
    let r = schedlab(
        &["spin", "--policy", "vtime", "--bpf-set", "fifo_sched=1"],
        &[("SCHEDLAB_KVM_PATH", Path::new(common::NO_KVM))],
    );
    assert_eq!(r.code, 64, "{}", r.stderr);
}

#[test]
fn an_out_of_bounds_write_ends_in_a_sandbox_error_naming_its_source_line() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bpf/oob.bpf.c");
    let line = std::fs::read_to_string(&src)
        .unwrap()
        .lines()
        .position(|l| l.contains("OOB-WRITE"))
        .unwrap()
        + 1;
    let obj = ours("oob");
    let _g = lock();
    let (r, v) = run(&["spin", "--tasks", "2", "--policy", path(&obj), "--json"]);
    assert_eq!(r.code, 70, "{}", r.stdout);
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("sandbox") && msg.contains("oob_enqueue"),
        "{msg}"
    );
    assert!(msg.contains(&format!("oob.bpf.c:{line}")), "{msg}");
    assert_eq!(v["bpf"]["fault"]["program"], "oob_enqueue", "{v}");
}

#[test]
fn scx_bpf_error_s_message_comes_first_and_the_exit_record_keeps_it() {
    let obj = ours("error");
    let _g = lock();
    let r = schedlab(&["spin", "--tasks", "2", "--policy", path(&obj)], &[]);
    assert_eq!(r.code, 70, "{}\n{}", r.stdout, r.stderr);
    let first = r.stderr.lines().next().unwrap_or("");
    assert!(
        first.contains("error.bpf.c gives up: enqueue 4 of pid"),
        "first line: {first}\n{}",
        r.stderr
    );
    let (_, v) = run(&["spin", "--tasks", "2", "--policy", path(&obj), "--json"]);
    assert_eq!(v["bpf"]["state"], "scx_bpf_error");
    assert_eq!(v["bpf"]["exit_info"]["kind"], 1025, "{v}");
    assert!(
        v["bpf"]["exit_info"]["msg"]
            .as_str()
            .unwrap()
            .contains("gives up"),
        "{v}"
    );
}

#[test]
fn a_hostile_object_is_stopped_by_the_sandbox_and_named() {
    let obj = ours("hostile");
    let _g = lock();
    for (mode, want) in [
        ("1", "instruction budget of one callback used up"),
        ("2", "store outside the program's writable memory (4 bytes"),
        ("3", "argument 1 of scx_bpf_dsq_insert"),
        (
            "4",
            "load outside the program's memory (8 bytes at 0x200000)",
        ),
        ("5", "sub-program calls nested too deeply"),
        // Not a fault: the kernel's answer to an unreadable address.
        (
            "6",
            "probe_read_kernel of kernel memory returned -14, read 0",
        ),
    ] {
        let set = format!("mode={mode}");
        let (r, v) = run(&[
            "spin",
            "--tasks",
            "2",
            "--policy",
            path(&obj),
            "--bpf-set",
            &set,
            "--json",
        ]);
        assert_eq!(r.code, 70, "mode {mode}: {}", r.stdout);
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(
            msg.starts_with("policy hostile: in enqueue: ") && msg.contains(want),
            "mode {mode}: {msg}"
        );
        // The guest kernel ended the run itself: the policy's error, not
        // a crash of the core or a hung vCPU.
        assert_eq!(v["error"]["kind"], "guest_panic", "mode {mode}: {v}");
        if mode != "6" {
            assert!(msg.contains("hostile.bpf.c:"), "mode {mode}: {msg}");
            assert_eq!(v["bpf"]["state"], "sandbox fault", "mode {mode}");
        }
    }
}

#[test]
fn a_field_schedlab_lacks_loads_poisoned_and_faults_only_when_reached() {
    let obj = ours("missing_field");
    let _g = lock();
    // Guarded by bpf_core_field_exists: loads, runs, passes.
    let (r, v) = run(&["spin", "--tasks", "2", "--policy", path(&obj), "--json"]);
    assert!(passed_or_host_explained(&r, &v), "{}", r.stdout);
    let notes = v["bpf"]["notes"].to_string();
    assert!(notes.contains("task_struct has no field se"), "{notes}");
    // Reached: the poisoned instruction stops the program, naming it.
    let (r, v) = run(&[
        "spin",
        "--tasks",
        "2",
        "--policy",
        path(&obj),
        "--bpf-set",
        "reach=1",
        "--json",
    ]);
    assert_eq!(r.code, 70, "{}", r.stdout);
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("task_struct has no field static_prio")
            && msg.contains("missing_field.bpf.c:"),
        "{msg}"
    );
}
