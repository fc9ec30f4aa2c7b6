//! [`verdict`]: metrics and limits in, pass / fail / inconclusive out, with
//! reasons a person can act on (which task, how much, against what limit).

use crate::{Check, Metrics, Stall, Status, TaskMetrics, Thresholds, Verdict};

fn ms(ns: u64) -> String {
    format!("{:.1} ms", ns as f64 / 1e6)
}

/// Latencies are often well under a millisecond: show µs there so the
/// number is not "0.0 ms".
fn latency(ns: u64) -> String {
    if ns < 1_000_000 {
        format!("{:.1} µs", ns as f64 / 1e3)
    } else {
        ms(ns)
    }
}

fn pct(x: f64) -> String {
    format!("{:.1} %", x * 100.0)
}

/// A limit as given: "10 %", "2.5 %".
fn pct_limit(x: f64) -> String {
    let p = x * 100.0;
    if (p - p.round()).abs() < 1e-9 {
        format!("{p:.0} %")
    } else {
        format!("{p:.1} %")
    }
}

fn stall_reason(s: &Stall) -> String {
    let mut r = format!(
        "CPU {} stalled for {:.0} ms",
        s.cpu,
        s.stalled_ns as f64 / 1e6
    );
    if s.pid == 0 {
        r.push_str(" while idle");
    } else {
        r.push_str(&format!(" running pid {}", s.pid));
    }
    if let Some(rip) = s.rip {
        r.push_str(&format!(" at rip {rip:#x}"));
    }
    if let Some(f) = &s.function {
        r.push_str(&format!(" in {f}"));
    }
    r
}

/// "945.3 µs": the task's mean slice.
fn mean_slice(t: &TaskMetrics) -> String {
    latency(t.runtime_ns.checked_div(t.slices).unwrap_or(0))
}

/// A window for people: "850 ms", "6.7 s".
fn window_text(ns: f64) -> String {
    if ns >= 1e9 {
        format!("{:.1} s", ns / 1e9)
    } else {
        format!("{:.0} ms", (ns / 1e6).ceil())
    }
}

/// "a window of about 600 ms would decide a 10 % limit": the noise falls
/// as 1/window for the edge term and 1/sqrt(window) for the slice-length
/// term; solve noise(window) = limit for the window.
fn window_needed(t: &TaskMetrics, limit: f64, window_ns: u64) -> String {
    let (e, w) = (t.fairness_noise, window_ns as f64);
    if !e.is_finite() || e <= 0.0 || w <= 0.0 || limit <= 0.0 {
        return "a longer run would decide it".into();
    }
    // Split the noise evenly between the two terms as an estimate:
    // noise(W') = a/W' + b/sqrt(W') with a = e*w/2 and b = e*sqrt(w)/2.
    let (a, b) = (e * w / 2.0, e * w.sqrt() / 2.0);
    let x = (-b + (b * b + 4.0 * a * limit).sqrt()) / (2.0 * a);
    let needed = 1.0 / (x * x);
    format!(
        "a window of about {} would decide a {} limit (--duration)",
        window_text(needed),
        pct_limit(limit)
    )
}

fn worst_by<K: PartialOrd>(
    tasks: &[TaskMetrics],
    key: impl Fn(&TaskMetrics) -> K,
) -> Option<&TaskMetrics> {
    tasks
        .iter()
        .fold(None, |best: Option<&TaskMetrics>, t| match best {
            Some(b) if key(b) >= key(t) => Some(b),
            _ => Some(t),
        })
}

/// Judge a run.
///
/// Each `Some` threshold yields a [`Check`]; a failed check or any stall
/// makes the run Fail, with one reason per offending task or CPU. The run
/// is Inconclusive when there is nothing trustworthy to judge: no events,
/// an empty window, no judged tasks, no judged task ran, or events were
/// lost (a lost switch can fake or hide a starvation). A Fail still wins
/// over Inconclusive: incomplete data that already shows a violation (or
/// a stall, which is measured from samples, not events) is a failure worth
/// reporting as one. The inconclusive reasons are listed after the
/// failures either way, so a reader knows how far to trust the numbers.
pub fn verdict(m: &Metrics, th: &Thresholds, stalls: &[Stall]) -> Verdict {
    let mut checks = Vec::new();
    let mut failures = Vec::new();
    // Excesses the run's own granularity can explain, and checks measured
    // but not judged: neither fails the run.
    let mut within_noise = Vec::new();
    let mut notes = Vec::new();
    // Saturating: runtimes come from guest timestamps, and a few tasks
    // each "running" for most of a window the guest stretched to 2^64
    // ticks overflowed a plain sum (found by fuzzing).
    let judged_runtime = m
        .tasks
        .iter()
        .map(|t| t.runtime_ns)
        .fold(0u64, u64::saturating_add);
    let not_judged = |name: &str| th.not_judged.iter().find(|(n, _)| *n == name);

    if let Some(limit) = th.max_wait_ns {
        let worst = worst_by(&m.tasks, |t| t.max_wait_ns);
        let value = worst.map_or(0, |t| t.max_wait_ns);
        let skip = not_judged("max_wait_ns");
        for t in m.tasks.iter().filter(|t| t.max_wait_ns > limit) {
            let r = format!(
                "task {} waited {} runnable (max-wait {})",
                t.pid,
                ms(t.max_wait_ns),
                ms(limit)
            );
            match skip {
                Some((_, why)) => notes.push(format!("note: not judged: {r} ({why})")),
                None => failures.push(r),
            }
        }
        checks.push(Check {
            name: "max_wait_ns".into(),
            value: value as f64,
            limit: limit as f64,
            passed: value <= limit,
            detail: match worst {
                Some(t) => format!(
                    "longest runnable wait: task {} {} (limit {})",
                    t.pid,
                    ms(t.max_wait_ns),
                    ms(limit)
                ),
                None => "no tasks to judge".into(),
            },
            judged: skip.is_none(),
        });
    }

    if let Some(limit) = th.max_fairness_error {
        let skip = not_judged("max_fairness_error");
        let (value, mut detail) = if judged_runtime == 0 {
            (0.0, "no judged task ran; nothing to compare".to_string())
        } else {
            let worst = worst_by(&m.tasks, |t| t.fairness_error.abs());
            let detail = match worst {
                Some(t) => format!(
                    "largest error: task {} got {}, entitled to {} ({:+.0} %, limit {})",
                    t.pid,
                    pct(t.share),
                    pct(t.entitled_share),
                    t.fairness_error * 100.0,
                    pct_limit(limit)
                ),
                None => "no tasks to judge".into(),
            };
            for t in m.tasks.iter().filter(|t| t.fairness_error.abs() > limit) {
                let r = format!(
                    "task {} got {} of the CPU, entitled to {} (error {:+.0} %, max {})",
                    t.pid,
                    pct(t.share),
                    pct(t.entitled_share),
                    t.fairness_error * 100.0,
                    pct_limit(limit)
                );
                if let Some((_, why)) = skip {
                    notes.push(format!("note: not judged: {r} ({why})"));
                } else if t.fairness_error.abs() <= t.fairness_noise {
                    within_noise.push(format!(
                        "{r}: within what its {} slices of {} on average can produce in this \
                         {} window with no unfairness (±{:.0} %); {}",
                        t.slices,
                        mean_slice(t),
                        ms(m.window_ns),
                        t.fairness_noise * 100.0,
                        window_needed(t, limit, m.window_ns)
                    ));
                } else {
                    failures.push(r);
                }
            }
            (m.max_fairness_error, detail)
        };
        let noise = m
            .tasks
            .iter()
            .map(|t| t.fairness_noise)
            .filter(|n| n.is_finite())
            .fold(0.0f64, f64::max);
        if judged_runtime > 0 && noise > limit {
            detail.push_str(&format!(
                "; this window's slicing alone can produce up to ±{:.0} %",
                noise * 100.0
            ));
        }
        checks.push(Check {
            name: "max_fairness_error".into(),
            value,
            limit,
            // Written so that a NaN value fails rather than passes.
            passed: matches!(value.partial_cmp(&limit), Some(o) if o.is_le()),
            detail,
            judged: skip.is_none(),
        });
    }

    if let Some(limit) = th.max_wake_p99_ns {
        let l = &m.wake_latency;
        let worst = worst_by(&m.tasks, |t| t.wake_latency.p99_ns);
        let passed = l.p99_ns <= limit;
        let detail = if l.count == 0 {
            "no wake-ups measured".to_string()
        } else {
            let mut d = format!(
                "wake-up latency p99 {} over {} wake-ups (p50 {}, max {})",
                latency(l.p99_ns),
                l.count,
                latency(l.p50_ns),
                latency(l.max_ns)
            );
            if let Some(t) = worst {
                d.push_str(&format!(
                    "; worst task {} p99 {} (max {})",
                    t.pid,
                    latency(t.wake_latency.p99_ns),
                    latency(t.wake_latency.max_ns)
                ));
            }
            d
        };
        if !passed {
            let mut r = format!(
                "wake-up latency p99 {} over {} wake-ups (max-wake-p99 {})",
                latency(l.p99_ns),
                l.count,
                latency(limit)
            );
            if let Some(t) = worst {
                r.push_str(&format!(
                    "; worst: task {} p99 {}, max {}",
                    t.pid,
                    latency(t.wake_latency.p99_ns),
                    latency(t.wake_latency.max_ns)
                ));
            }
            failures.push(r);
        }
        checks.push(Check {
            name: "max_wake_p99_ns".into(),
            value: l.p99_ns as f64,
            limit: limit as f64,
            passed,
            detail,
            judged: true,
        });
    }

    if !stalls.is_empty() {
        let longest = stalls.iter().map(|s| s.stalled_ns).max().unwrap_or(0);
        checks.push(Check {
            name: "stalls".into(),
            value: stalls.len() as f64,
            limit: 0.0,
            passed: false,
            detail: format!("{} CPU stall(s), longest {}", stalls.len(), ms(longest)),
            judged: true,
        });
        failures.extend(stalls.iter().map(stall_reason));
    }

    let mut inconclusive = Vec::new();
    if m.events == 0 {
        inconclusive.push("no events were recorded: nothing to judge".to_string());
    }
    if m.window_ns == 0 {
        inconclusive.push("the analysis window is empty (or the TSC rate is unknown)".to_string());
    }
    if m.tasks.is_empty() {
        inconclusive.push("no tasks to judge".to_string());
    } else if judged_runtime == 0 {
        inconclusive.push("no judged task ran in the analysis window".to_string());
    }
    if m.lost_events > 0 {
        inconclusive.push(format!(
            "{} events were lost (event ring full): the data is incomplete",
            m.lost_events
        ));
    }

    // A judged check failed beyond what the run's noise explains (a check
    // whose excess is all within the noise leaves the run inconclusive).
    let explained = |c: &Check| c.name == "max_fairness_error" && !within_noise.is_empty();
    let failed = !failures.is_empty()
        || checks
            .iter()
            .any(|c| c.judged && !c.passed && !explained(c));
    inconclusive.splice(0..0, within_noise);
    let status = if failed {
        Status::Fail
    } else if !inconclusive.is_empty() {
        Status::Inconclusive
    } else {
        Status::Pass
    };
    failures.extend(inconclusive);
    failures.extend(notes);
    Verdict {
        status,
        checks,
        reasons: failures,
    }
}
