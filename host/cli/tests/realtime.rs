//! End-to-end tests of the real-time policies `edf` and `fp` on real VMs:
//! periodic tasks carry their period, runtime, deadline (and priority and
//! pinning) to the policy, and the schedules meet or miss deadlines as
//! the theory says. One VM at a time (see common::lock).
//!
//! The host here can freeze a vCPU for tens of ms. A miss a job's time
//! away explains (`away_misses`) or that the vCPU's waits for the host
//! cover makes the verdict inconclusive ("the host, not the policy");
//! the tests then check only what the policy is blamed for.

mod common;

use common::*;
use serde_json::Value;

fn periodic(args: &[&str]) -> (Run, Value) {
    op_json("periodic", args)
}

fn tasks(v: &Value) -> &Vec<Value> {
    v["result"]["tasks"].as_array().expect("result.tasks")
}

/// Misses not explained by time the host took from the job.
fn blamed(t: &Value) -> u64 {
    u(&t["misses"]) - u(&t["away_misses"])
}

/// Every task's jobs ran (a response time per started job, no larger
/// than the run) and the policy is blamed for no miss: the run passed,
/// or the host explains its misses.
fn assert_met(r: &Run, v: &Value, what: &str) {
    let misses = u(&v["result"]["misses"]);
    if misses > 0 {
        assert!(
            r.code == 2 && host_explained(v),
            "{what}: {misses} deadline misses the host does not explain (code {}): {}\n{}",
            r.code,
            v["verdict"],
            v["result"]
        );
    } else {
        assert_eq!(r.code, 0, "{what}: stderr {}\n{}", r.stderr, v["verdict"]);
        assert_eq!(v["verdict"]["status"], "pass");
    }
    for t in tasks(v) {
        let resp = &t["response"];
        assert!(u(&resp["count"]) > 0, "{what}: no job finished: {t}");
        assert!(
            u(&resp["p50_ns"]) <= u(&resp["p99_ns"]) && u(&resp["p99_ns"]) <= u(&resp["max_ns"]),
            "{t}"
        );
        // A job's response includes its own run time.
        assert!(u(&resp["p50_ns"]) >= u(&t["runtime_ns"]), "{t}");
    }
}

/// `assert_met` if the tasks fit the CPUs they got: on each CPU (a
/// task's pinned CPU, else CPU 0), its tasks' sum of runtime/period plus
/// the time their jobs lost to the host and interrupts (`lost_ns`: this
/// host takes 7-10 % of a busy vCPU) at most 99 % of the run. A set that
/// did not fit is not judged (it is said on stderr); the accounting is
/// still checked.
fn assert_met_if_it_fit(r: &Run, v: &Value, what: &str) {
    let elapsed = u(&v["result"]["elapsed_ns"]) as f64;
    let mut load = [0f64; 64];
    for t in tasks(v) {
        let cpu = match u(&t["affinity"]) {
            0 => 0,
            a => a.trailing_zeros() as usize,
        };
        load[cpu] += u(&t["runtime_ns"]) as f64 / u(&t["period_ns"]) as f64
            + u(&t["lost_ns"]) as f64 / elapsed;
    }
    let worst = load.iter().copied().fold(0.0, f64::max);
    if worst <= 0.99 {
        assert_met(r, v, what);
        return;
    }
    eprintln!(
        "{what}: a CPU's tasks plus what the host and interrupts took from their jobs came to \
         {:.1} % of it: not judged ({} misses, {} away)",
        worst * 100.0,
        v["result"]["misses"],
        v["result"]["away_misses"]
    );
    assert!(r.code <= 2, "stderr: {}\n{}", r.stderr, v["verdict"]);
    for t in tasks(v) {
        assert!(u(&t["response"]["count"]) > 0, "{t}");
        assert!(u(&t["away_misses"]) <= u(&t["misses"]), "{t}");
    }
}

/// EDF on one CPU over periods of 20, 40 and 80 ms with these run times,
/// ticking at 100 Hz (1 kHz takes 4-5 % of the jobs' CPU on this PVM
/// host) and polling when idle, so sleeps, and releases, end on time: a
/// pass, or misses the host explains. Also, the 20 ms task's job is due
/// first (or tied) whenever it is released, so it starts at once: 90 % of
/// its 50 jobs within `first_p90` of their release.
fn edf_on_one_cpu(runtimes: &str, utilisation: f64, first_p90: u64) {
    let _vm = lock();
    let (r, v) = periodic(&[
        "--policy",
        "edf",
        "--cpus",
        "1",
        "--period",
        "20ms,40ms,80ms",
        "--runtime",
        runtimes,
        "--duration",
        "1s",
        "--tick-hz",
        "100",
        "--idle",
        "poll",
    ]);
    assert!((v["config"]["utilisation"].as_f64().unwrap() - utilisation).abs() < 1e-9);
    assert_eq!(tasks(&v).len(), 3);
    for (t, period) in tasks(&v)
        .iter()
        .zip([20_000_000u64, 40_000_000, 80_000_000])
    {
        assert_eq!(u(&t["period_ns"]), period);
        assert_eq!(u(&t["deadline_ns"]), period);
    }
    let what = format!("edf at U {utilisation}");
    assert_met(&r, &v, &what);
    let first = &tasks(&v)[0]["latency"];
    assert!(
        u(&first["p90_ns"]) < first_p90,
        "{what}: the earliest-deadline task waited at its releases: {first}"
    );
}

/// (a) EDF on one CPU at U = 0.80 (6/20 + 12/40 + 16/80 ms) meets every
/// deadline. The 20 ms task's release latency: p90 6-45 us in 20 runs.
/// When a task woke just before its spent job's deadline and kept it
/// (fixed in `edf`'s `release`), that task ran ahead until the next tick:
/// this p90 was 1-2 ms in 9 of the 10 runs read.
#[test]
fn edf_meets_every_deadline_at_utilisation_080() {
    edf_on_one_cpu("6ms,12ms,16ms", 0.80, 500_000);
}

/// (a) The U = 0.95 (6/20 + 14/40 + 24/80 ms): with 5 % of slack
/// and this host taking 1.5-3.5 % of a busy vCPU, a pass in 14 runs of
/// 15 (no miss) and one inconclusive run (19 misses, 34 ms taken from the
/// jobs that second). With the spent-budget bug it missed 10-24 jobs in
/// most runs, and the 20 ms task's p90 release latency was 2-10 ms in 3
/// of 5 (10-376 us fixed). `cargo test -p policy-edf`'s
/// `meets_every_deadline_at_utilisation_095` holds the algorithm to U =
/// 0.95 exactly, with no overhead.
#[test]
fn edf_meets_every_deadline_at_utilisation_095() {
    edf_on_one_cpu("6ms,14ms,24ms", 0.95, 1_500_000);
}

/// (b) Rate-monotonic fixed priority below the Liu & Layland bound for 3
/// tasks (0.780): U = 0.70 (4/20 + 8/40 + 24/80 ms) meets every deadline.
#[test]
fn fp_meets_every_deadline_below_the_liu_layland_bound() {
    let _vm = lock();
    let (r, v) = periodic(&[
        "--policy",
        "fp",
        "--cpus",
        "1",
        "--period",
        "20ms,40ms,80ms",
        "--runtime",
        "4ms,8ms,24ms",
        "--duration",
        "1s",
    ]);
    let bound = 3.0 * (2f64.powf(1.0 / 3.0) - 1.0);
    assert!(v["config"]["utilisation"].as_f64().unwrap() < bound);
    // Harmonic periods: rate-monotonic order fits up to U = 1, so what
    // the host takes on top is judged as for edf.
    assert_met_if_it_fit(&r, &v, "fp at U 0.70");
    // Rate-monotonic: the shortest period has the highest priority, so
    // (the host's freezes aside) it never waits for the others.
    let first = &tasks(&v)[0];
    if blamed(first) == 0 && r.code == 0 {
        assert!(
            u(&first["response"]["p50_ns"]) < 8_000_000,
            "the highest-priority task waited: {first}"
        );
    }
}

/// (c) Fixed priority over a full CPU (U = 1.2: 3/10 + 6/20 + 24/40 ms):
/// misses are reported, fall on the lowest priority (longest period), and
/// fail the verdict -- or, when the host took more of the run than the
/// misses need to be excused, make it inconclusive "because of the host";
/// the lowest priority's misses are the schedule's either way.
#[test]
fn fp_over_a_full_cpu_misses_and_fails() {
    let _vm = lock();
    let (r, v) = periodic(&[
        "--policy",
        "fp",
        "--cpus",
        "1",
        "--period",
        "10ms,20ms,40ms",
        "--runtime",
        "3ms,6ms,24ms",
        "--duration",
        "800ms",
    ]);
    assert!((v["config"]["utilisation"].as_f64().unwrap() - 1.2).abs() < 1e-9);
    assert!(
        r.code == 1 || (r.code == 2 && host_explained(&v)),
        "stderr: {}\n{}",
        r.stderr,
        v["verdict"]
    );
    let check = v["verdict"]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "periodic_deadline_misses")
        .expect("a deadline-miss check");
    assert_eq!(check["passed"], false);
    let t = tasks(&v);
    let lowest = &t[2];
    // The two higher priorities take 60 % of the CPU, the lowest needs
    // 60 % and gets what is left: most of its jobs miss, by the schedule,
    // not by time the host took from them.
    assert!(
        u(&lowest["misses"]) * 2 >= u(&lowest["activations"]),
        "lowest priority: {lowest}"
    );
    assert!(u(&t[0]["misses"]) < u(&lowest["misses"]), "{}", v["result"]);
}

/// (d) Explicit priorities are obeyed: 2/10 and 20/40 ms (U = 0.7) meet
/// every deadline in rate-monotonic order, but with the long-period task
/// given the higher priority the short-period one waits out its 20 ms
/// jobs and misses two of every four.
#[test]
fn fp_obeys_explicit_priorities_over_rate_monotonic_order() {
    let _vm = lock();
    let base = [
        "--policy",
        "fp",
        "--cpus",
        "1",
        "--period",
        "10ms,40ms",
        "--runtime",
        "2ms,20ms",
        "--duration",
        "800ms",
    ];
    let (r, v) = periodic(&base);
    assert_met_if_it_fit(&r, &v, "fp rate-monotonic at U 0.7 (harmonic)");

    let mut inverted = base.to_vec();
    inverted.extend_from_slice(&["--priority", "1,2"]);
    let (r, v) = periodic(&inverted);
    assert_eq!(v["config"]["priority"], serde_json::json!([1, 2]));
    let t = tasks(&v);
    assert_eq!(u(&t[0]["priority"]), 1);
    let short = &t[0];
    // Released every 10 ms, two of every four jobs fall inside the long
    // task's 20 ms run and finish past their deadline (counted whether or
    // not a spike of host time in the same stretch could also excuse
    // them: the host only adds misses).
    assert!(
        u(&short["misses"]) * 4 >= u(&short["activations"]),
        "the low-priority short-period task: {short}"
    );
    assert!(u(&short["misses"]) > u(&t[1]["misses"]), "{}", v["result"]);
    // The misses fail the run, unless the host took enough of it to
    // excuse them (inconclusive; the short task's misses are the
    // schedule's either way, checked above).
    assert!(
        r.code == 1 || (r.code == 2 && host_explained(&v)),
        "{}",
        v["verdict"]
    );
}

/// (e) Partitioned EDF: tasks pinned to 2 CPUs, each CPU's set at
/// U <= 0.9 (0.8 and 0.75: this host takes 7-10 % of a busy vCPU's time
/// itself), meet every deadline and stay on their CPUs.
#[test]
fn partitioned_edf_meets_deadlines_on_each_cpu() {
    let _vm = lock();
    let (r, v) = periodic(&[
        "--policy",
        "edf",
        "--cpus",
        "2",
        "--period",
        "20ms,40ms,20ms,40ms",
        "--runtime",
        "8ms,16ms,7ms,16ms",
        "--pin",
        "0,0,1,1",
        "--duration",
        "1s",
    ]);
    assert_eq!(v["config"]["pin"], serde_json::json!([0, 0, 1, 1]));
    for (t, cpu) in tasks(&v).iter().zip([0u64, 0, 1, 1]) {
        assert_eq!(u(&t["affinity"]), 1 << cpu, "{t}");
        assert_eq!(u(&t["ran_on"]), 1 << cpu, "a pinned task moved: {t}");
    }
    assert_met_if_it_fit(&r, &v, "partitioned edf, U 0.8 and 0.75");
}

/// A pin naming a CPU the run does not have, or priority 0, is refused
/// before any VM starts.
#[test]
fn bad_pins_and_priorities_are_usage_errors() {
    let r = schedlab(&["periodic", "--cpus", "2", "--pin", "0,2"], &[]);
    assert_eq!(r.code, 64, "{}", r.stderr);
    assert!(
        r.stderr.contains("--pin: task 1 is pinned to CPU 2"),
        "{}",
        r.stderr
    );
    let r = schedlab(&["periodic", "--priority", "0"], &[]);
    assert_eq!(r.code, 64, "{}", r.stderr);
    assert!(
        r.stderr.contains("--priority: '0' is not a priority"),
        "{}",
        r.stderr
    );
}

/// (f) A scenario's `timer` tasks are periodic tasks to the policy: they
/// run under edf, and the result carries each kind's period, run time
/// per loop and deadline.
#[test]
fn scenario_timer_tasks_run_under_edf_with_their_periods() {
    let _vm = lock();
    let f = temp_file(
        ".toml",
        b"duration = \"500ms\"\npolicy = \"edf\"\n\n\
          [[task]]\nname = \"fast\"\nphases = [{ run = \"4ms\" }, { timer = \"20ms\" }]\n\n\
          [[task]]\nname = \"slow\"\ndeadline = \"30ms\"\n\
          phases = [{ run = \"3ms\" }, { run = \"5ms\" }, { timer = \"40ms\" }]\n\n\
          [[task]]\nname = \"bg\"\nphases = [{ run = \"1ms\" }, { sleep = \"5ms\" }]\n",
    );
    let (r, v) = op_json("run", &[f.path().to_str().unwrap()]);
    assert_judged(&r, &v);
    assert_eq!(v["config"]["policy"], "edf");
    let kinds = v["result"]["kinds"].as_array().expect("kinds");
    let rt: Vec<(Value, Value, Value)> = kinds
        .iter()
        .map(|k| {
            (
                k["period_ns"].clone(),
                k["runtime_ns"].clone(),
                k["deadline_ns"].clone(),
            )
        })
        .collect();
    let ms = |n: u64| serde_json::json!(n * 1_000_000);
    assert_eq!(
        rt,
        vec![
            (ms(20), ms(4), ms(20)),
            (ms(40), ms(8), ms(30)),
            (Value::Null, Value::Null, Value::Null)
        ]
    );
    // Every instance looped: 25 activations of fast, 12-13 of slow.
    for k in kinds {
        assert!(u(&k["loops"]) > 0, "{k}");
    }
    let fast = kinds.iter().find(|k| k["task"] == "fast").unwrap();
    assert!((20..=26).contains(&u(&fast["loops"])), "{fast}");
}
