//! Which numbers of a result are compared, which way is better, and how
//! much change counts.
//!
//! Each metric has a direction (lower or higher is better, or "info":
//! shown, never judged), a default relative threshold (the change, as a
//! fraction of A's value, that counts as a regression or an improvement)
//! and an absolute noise floor in the metric's own unit: a change smaller
//! than the floor never counts, however large relative to A it is. The
//! floors are what this machine's measurements jitter by (a wake-up on
//! PVM varies by tens of microseconds run to run); without them a
//! 2 µs -> 4 µs p50 would be a "100 % regression".
//!
//! The host's own metrics have fixed names ([`CORE`]). An operation's
//! `result` object is flattened (`result.rtt_p99_ns`,
//! `result.tasks[0].misses`) and classified by its names ([`RULES`]), so a
//! new operation's numbers are compared without editing this file.

use serde::Serialize;
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Lower,
    Higher,
    /// Shown for context, never a regression.
    Info,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Spec {
    pub direction: Direction,
    /// Relative change (fraction of A) that counts.
    pub threshold: f64,
    /// Absolute change below which nothing counts (the metric's unit).
    pub floor: f64,
}

const fn spec(direction: Direction, threshold: f64, floor: f64) -> Spec {
    Spec {
        direction,
        threshold,
        floor,
    }
}

const INFO: Spec = spec(Direction::Info, 0.0, 0.0);
const US: f64 = 1_000.0;

/// How a host metric is read from a result.
enum Source {
    /// A JSON pointer to a number.
    At(&'static str),
    /// The largest of a field over the `metrics.tasks` array.
    TaskMax(&'static str),
    /// The mean of a field over the `cpus` array.
    CpuMean(&'static str),
    /// A wake-up latency percentile, only when there were wake-ups (0 of
    /// nothing is not a latency).
    Wake(&'static str),
    /// The length of an array.
    Count(&'static str),
}

/// The host's metrics, in the order they are printed.
const CORE: &[(&str, Source, Spec)] = &[
    (
        "throughput",
        Source::At("/totals/units_per_sec"),
        spec(Direction::Higher, 0.10, 0.0),
    ),
    (
        "fairness_error",
        Source::At("/metrics/max_fairness_error"),
        spec(Direction::Lower, 0.50, 0.02),
    ),
    (
        "max_wait_ns",
        Source::TaskMax("max_wait_ns"),
        spec(Direction::Lower, 0.50, 500.0 * US),
    ),
    (
        "wake_p50_ns",
        Source::Wake("p50_ns"),
        spec(Direction::Lower, 0.25, 20.0 * US),
    ),
    (
        "wake_p99_ns",
        Source::Wake("p99_ns"),
        spec(Direction::Lower, 0.25, 50.0 * US),
    ),
    (
        "wake_max_ns",
        Source::Wake("max_ns"),
        spec(Direction::Lower, 1.00, 200.0 * US),
    ),
    (
        "nr_running_imbalance",
        Source::At("/metrics/nr_running_imbalance"),
        spec(Direction::Lower, 0.50, 0.25),
    ),
    (
        "stalls",
        Source::Count("/stalls"),
        spec(Direction::Lower, 0.0, 0.0),
    ),
    (
        "wake_count",
        Source::At("/metrics/wake_latency/count"),
        INFO,
    ),
    ("utilisation", Source::CpuMean("utilisation"), INFO),
    ("switches", Source::At("/metrics/switches"), INFO),
    ("migrations", Source::At("/metrics/migrations"), INFO),
    ("boot_us", Source::At("/timing/first_message_us"), INFO),
];

/// A rule for an operation's result numbers: the first whose every
/// `all` part and some `any` part occur in the lower-cased path applies.
struct Rule {
    all: &'static [&'static str],
    any: &'static [&'static str],
    spec: Spec,
}

/// Classification of `result.*` numbers by name, first match wins.
const RULES: &[Rule] = &[
    Rule {
        all: &[],
        any: &["per_sec", "throughput"],
        spec: spec(Direction::Higher, 0.10, 0.0),
    },
    // Counts of bad things: any real increase is news.
    Rule {
        all: &[],
        any: &[
            "miss", "late", "overrun", "error", "drop", "lost", "fail", "timeout",
        ],
        spec: spec(Direction::Lower, 0.25, 1.0),
    },
    Rule {
        all: &["_ns"],
        any: &["max"],
        spec: spec(Direction::Lower, 1.00, 200.0 * US),
    },
    Rule {
        all: &["_ns"],
        any: &["p99", "p999", "p95", "p90"],
        spec: spec(Direction::Lower, 0.25, 50.0 * US),
    },
    Rule {
        all: &["_ns"],
        any: &["p50", "median", "mean", "avg"],
        spec: spec(Direction::Lower, 0.25, 20.0 * US),
    },
    Rule {
        all: &["_ns"],
        any: &["rtt", "lat", "wait", "wake", "jitter", "delay", "response"],
        spec: spec(Direction::Lower, 0.25, 50.0 * US),
    },
];

/// Arrays in `result` longer than this are summarised by their first
/// elements only (a per-round array would flood the table).
const MAX_ARRAY: usize = 16;

/// The spec of metric `name`: the host table, then the rules for the
/// operation's result numbers, else info.
pub fn spec_of(name: &str) -> Spec {
    if let Some((_, _, s)) = CORE.iter().find(|(n, _, _)| *n == name) {
        return *s;
    }
    let lower = name.to_ascii_lowercase();
    if !lower.starts_with("result.") {
        return INFO;
    }
    RULES
        .iter()
        .find(|r| {
            r.all.iter().all(|p| lower.contains(p)) && r.any.iter().any(|p| lower.contains(p))
        })
        .map_or(INFO, |r| r.spec)
}

fn read(v: &Value, src: &Source) -> Option<f64> {
    match src {
        Source::At(p) => v.pointer(p)?.as_f64(),
        Source::TaskMax(f) => v
            .pointer("/metrics/tasks")?
            .as_array()?
            .iter()
            .filter_map(|t| t.get(*f)?.as_f64())
            .reduce(f64::max),
        Source::CpuMean(f) => {
            let xs: Vec<f64> = v
                .get("cpus")?
                .as_array()?
                .iter()
                .filter_map(|c| c.get(*f)?.as_f64())
                .collect();
            (!xs.is_empty()).then(|| xs.iter().sum::<f64>() / xs.len() as f64)
        }
        Source::Wake(f) => {
            let w = v.pointer("/metrics/wake_latency")?;
            if w.get("count")?.as_u64()? == 0 {
                return None;
            }
            w.get(*f)?.as_f64()
        }
        Source::Count(p) => Some(v.pointer(p)?.as_array()?.len() as f64),
    }
}

/// Most numbers taken from an operation's `result` (a real one has tens;
/// 256 tasks' rows are cut to [`MAX_ARRAY`] first). Each is a row in the
/// table, and a file of a million numbers would make the comparison
/// quadratic: 60 000 took 34 s before this limit.
pub const MAX_RESULT_METRICS: usize = 1000;
/// Longest metric name (its path in `result`). Every number under a long
/// key repeats the key in its name: a 2000-letter key over 20 000
/// numbers made 40 MB of names and two minutes of comparing.
pub const MAX_NAME_CHARS: usize = 200;

/// Numeric leaves of `result`: kept, and left out over the limits.
#[derive(Default)]
struct Leaves {
    kept: Vec<(String, f64)>,
    omitted: usize,
}

/// Every numeric leaf under `v`, named by its path from `prefix`, while
/// there is room; a name over [`MAX_NAME_CHARS`] is left out (and the
/// subtree under it, whose names are longer still, counted as one).
fn flatten(prefix: &str, v: &Value, out: &mut Leaves) {
    if prefix.len() > MAX_NAME_CHARS || out.kept.len() >= MAX_RESULT_METRICS {
        out.omitted += 1;
        return;
    }
    match v {
        Value::Number(n) => {
            if let Some(x) = n.as_f64().filter(|x| x.is_finite()) {
                out.kept.push((prefix.to_string(), x));
            }
        }
        Value::Object(o) => {
            for (k, x) in o {
                flatten(&format!("{prefix}.{k}"), x, out);
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().take(MAX_ARRAY).enumerate() {
                flatten(&format!("{prefix}[{i}]"), x, out);
            }
        }
        _ => {}
    }
}

/// The metrics of one result, host ones first, in a stable order.
pub fn extract(v: &Value) -> Vec<(String, f64)> {
    extract_counted(v).0
}

/// [`extract`], and how many values of `result` (or whole objects and
/// arrays, where their names were already too long) were left out, over
/// [`MAX_RESULT_METRICS`] or [`MAX_NAME_CHARS`].
pub fn extract_counted(v: &Value) -> (Vec<(String, f64)>, usize) {
    let mut out = Leaves {
        kept: CORE
            .iter()
            .filter_map(|(name, src, _)| Some((name.to_string(), read(v, src)?)))
            .filter(|(_, x)| x.is_finite())
            .collect(),
        omitted: 0,
    };
    let core = out.kept.len();
    if let Some(r) = v.get("result") {
        // The limit counts the operation's numbers only.
        let mut result = Leaves::default();
        flatten("result", r, &mut result);
        out.kept.extend(result.kept);
        out.omitted = result.omitted;
    }
    debug_assert!(out.kept.len() <= core + MAX_RESULT_METRICS);
    (out.kept, out.omitted)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Regressed,
    Improved,
    /// Within the threshold or the floor.
    Same,
    /// A direction-less metric.
    Info,
    /// Present on one side only.
    Missing,
}

/// A statistic over fewer samples than this on either side is judged with
/// [`widen`]ed limits: the p99 of 8 wake-ups is just their maximum, and
/// moved by up to 8x between identical spin runs here. (Ignoring such
/// statistics instead would hide the worst regressions, where a starved
/// task wakes twice in a run instead of fifty times.)
pub const MIN_SAMPLES: f64 = 20.0;

/// [`MIN_SAMPLES`]' limits: at least a 4x change ...
const FEW_THRESHOLD: f64 = 3.0;
/// ... and, for a duration, at least 1 ms.
const FEW_FLOOR_NS: f64 = 1_000_000.0;

/// `spec` for a statistic of few samples.
pub fn widen(metric: &str, spec: Spec) -> Spec {
    Spec {
        threshold: spec.threshold.max(FEW_THRESHOLD),
        floor: if metric.ends_with("_ns") {
            spec.floor.max(FEW_FLOOR_NS)
        } else {
            spec.floor
        },
        ..spec
    }
}

/// The metric counting the samples `metric` is a statistic of, if any:
/// `wake_count` for the host's wake-up latencies, and for an operation's
/// numbers a sibling `count` (`result.wake.p99_ns` -> `result.wake.count`).
pub fn sample_count_metric(metric: &str) -> Option<String> {
    if metric.starts_with("wake_") && metric.ends_with("_ns") {
        return Some("wake_count".into());
    }
    let (parent, leaf) = metric.rsplit_once('.')?;
    (parent.starts_with("result") && parent != "result" && leaf != "count")
        .then(|| format!("{parent}.count"))
}

/// One metric of one pair.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    pub metric: String,
    pub a: Option<f64>,
    pub b: Option<f64>,
    /// (B - A) / |A|; null when A is 0 and B is not (an infinite change).
    pub change: Option<f64>,
    pub direction: Direction,
    pub threshold: f64,
    pub floor: f64,
    pub outcome: Outcome,
    /// Judged with [`widen`]ed limits: too few samples on a side.
    pub few_samples: bool,
}

/// Judge one metric's A and B under `spec`.
pub fn judge(metric: &str, a: Option<f64>, b: Option<f64>, spec: Spec) -> Row {
    let mut row = Row {
        metric: metric.to_string(),
        a,
        b,
        change: None,
        direction: spec.direction,
        threshold: spec.threshold,
        floor: spec.floor,
        outcome: Outcome::Missing,
        few_samples: false,
    };
    let (Some(x), Some(y)) = (a, b) else {
        return row;
    };
    let delta = y - x;
    let rel = if x == 0.0 {
        if delta == 0.0 { 0.0 } else { f64::INFINITY }
    } else {
        delta.abs() / x.abs()
    };
    row.change = rel
        .is_finite()
        .then(|| if delta < 0.0 { -rel } else { rel });
    let counts = delta.abs() > spec.floor && rel > spec.threshold;
    let worse = match spec.direction {
        Direction::Lower => delta > 0.0,
        Direction::Higher => delta < 0.0,
        Direction::Info => {
            row.outcome = Outcome::Info;
            return row;
        }
    };
    row.outcome = match (counts, worse) {
        (false, _) => Outcome::Same,
        (true, true) => Outcome::Regressed,
        (true, false) => Outcome::Improved,
    };
    row
}

/// How bad a result's status is, for the verdict row: a pass that became
/// a fail (or an error) is a regression whatever the numbers say.
pub fn status_rank(v: &Value) -> (u8, String) {
    if v.get("status").and_then(Value::as_str) == Some("error") {
        let kind = v
            .pointer("/error/kind")
            .and_then(Value::as_str)
            .unwrap_or("unknown");
        return (3, format!("error ({kind})"));
    }
    match v.pointer("/verdict/status").and_then(Value::as_str) {
        Some("pass") => (0, "pass".into()),
        Some("inconclusive") => (1, "inconclusive".into()),
        Some("fail") => (2, "fail".into()),
        Some(other) => (2, other.to_string()),
        None => (1, "none".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn result() -> Value {
        json!({
            "operation": "spin",
            "status": "ok",
            "totals": {"units_per_sec": 1000.0},
            "metrics": {
                "max_fairness_error": 0.01,
                "wake_latency": {"count": 10, "p50_ns": 20000, "p99_ns": 90000, "max_ns": 100000},
                "nr_running_imbalance": 0.1,
                "switches": 50,
                "migrations": 2,
                "tasks": [{"max_wait_ns": 1000}, {"max_wait_ns": 3000}]
            },
            "cpus": [{"utilisation": 1.0}, {"utilisation": 0.5}],
            "stalls": [],
            "result": {"rtt_p99_ns": 40000, "rounds": 100, "per_task": [{"misses": 1}]},
            "verdict": {"status": "pass"}
        })
    }

    #[test]
    fn host_metrics_and_result_numbers_are_found() {
        let m = extract(&result());
        let get = |n: &str| m.iter().find(|(k, _)| k == n).map(|(_, v)| *v);
        assert_eq!(get("throughput"), Some(1000.0));
        assert_eq!(get("max_wait_ns"), Some(3000.0));
        assert_eq!(get("wake_p99_ns"), Some(90000.0));
        assert_eq!(get("utilisation"), Some(0.75));
        assert_eq!(get("stalls"), Some(0.0));
        assert_eq!(get("result.rtt_p99_ns"), Some(40000.0));
        assert_eq!(get("result.per_task[0].misses"), Some(1.0));
        assert_eq!(m[0].0, "throughput", "host metrics come first");
    }

    #[test]
    fn huge_results_are_cut_to_the_limits() {
        let many: serde_json::Map<String, Value> =
            (0..5000).map(|i| (format!("x{i}"), json!(i))).collect();
        let mut v = result();
        v["result"] = json!({ "many": many, "k".repeat(300): {"a": 1, "b": 2} });
        let (m, omitted) = extract_counted(&v);
        let result_rows = m.iter().filter(|(n, _)| n.starts_with("result.")).count();
        assert_eq!(result_rows, MAX_RESULT_METRICS);
        assert_eq!(
            omitted,
            5000 - MAX_RESULT_METRICS + 1,
            "the long key counts once"
        );
        assert!(m.iter().all(|(n, _)| n.len() <= MAX_NAME_CHARS));
    }

    #[test]
    fn no_wake_ups_means_no_latency_metric() {
        let mut v = result();
        v["metrics"]["wake_latency"]["count"] = json!(0);
        let m = extract(&v);
        assert!(
            !m.iter()
                .any(|(k, _)| k.starts_with("wake_") && k.ends_with("_ns"))
        );
        assert!(m.contains(&("wake_count".to_string(), 0.0)));
    }

    #[test]
    fn result_numbers_are_classified_by_name() {
        assert_eq!(spec_of("result.rtt_p99_ns").direction, Direction::Lower);
        assert_eq!(
            spec_of("result.interactive.wake_p99_ns").direction,
            Direction::Lower
        );
        assert_eq!(
            spec_of("result.tasks[1].misses").direction,
            Direction::Lower
        );
        assert_eq!(spec_of("result.msgs_per_sec").direction, Direction::Higher);
        assert_eq!(spec_of("result.rounds").direction, Direction::Info);
        assert_eq!(spec_of("result.cpus").direction, Direction::Info);
        assert_eq!(spec_of("wake_p99_ns"), CORE[4].2);
        assert_eq!(spec_of("unknown").direction, Direction::Info);
    }

    #[test]
    fn a_change_counts_past_both_the_threshold_and_the_floor() {
        let s = spec(Direction::Lower, 0.25, 50_000.0);
        let r = judge("x", Some(100_000.0), Some(200_000.0), s);
        assert_eq!((r.outcome, r.change), (Outcome::Regressed, Some(1.0)));
        // +100 % but only 20 µs: under the floor.
        let r = judge("x", Some(20_000.0), Some(40_000.0), s);
        assert_eq!(r.outcome, Outcome::Same);
        // -50 %: better.
        let r = judge("x", Some(200_000.0), Some(100_000.0), s);
        assert_eq!((r.outcome, r.change), (Outcome::Improved, Some(-0.5)));
        // Higher is better.
        let h = spec(Direction::Higher, 0.1, 0.0);
        assert_eq!(
            judge("t", Some(100.0), Some(80.0), h).outcome,
            Outcome::Regressed
        );
        assert_eq!(
            judge("t", Some(100.0), Some(95.0), h).outcome,
            Outcome::Same
        );
        // From zero: an infinite change, no number.
        let c = spec(Direction::Lower, 0.0, 0.0);
        let r = judge("stalls", Some(0.0), Some(1.0), c);
        assert_eq!((r.outcome, r.change), (Outcome::Regressed, None));
        assert_eq!(
            judge("stalls", Some(0.0), Some(0.0), c).outcome,
            Outcome::Same
        );
        assert_eq!(judge("x", None, Some(1.0), s).outcome, Outcome::Missing);
        assert_eq!(
            judge("i", Some(1.0), Some(9.0), INFO).outcome,
            Outcome::Info
        );
    }

    #[test]
    fn statistics_know_their_sample_counts() {
        assert_eq!(
            sample_count_metric("wake_p99_ns").as_deref(),
            Some("wake_count")
        );
        assert_eq!(
            sample_count_metric("result.wake.p99_ns").as_deref(),
            Some("result.wake.count")
        );
        assert_eq!(sample_count_metric("result.wake.count"), None);
        assert_eq!(sample_count_metric("result.rtt_p99_ns"), None);
        assert_eq!(sample_count_metric("throughput"), None);
    }

    #[test]
    fn few_samples_need_a_fourfold_change_and_a_millisecond() {
        let s = widen("wake_p99_ns", CORE[4].2);
        assert_eq!((s.threshold, s.floor), (3.0, 1_000_000.0));
        assert_eq!(s.direction, Direction::Lower);
        let j = |a: f64, b: f64| judge("wake_p99_ns", Some(a), Some(b), s).outcome;
        assert_eq!(j(1.4e6, 4.3e6), Outcome::Same, "3x: noise with few samples");
        assert_eq!(j(85e3, 720e3), Outcome::Same, "8x but under 1 ms");
        assert_eq!(j(3e6, 93e6), Outcome::Regressed);
        assert_eq!(widen("result.misses", RULES[1].spec).floor, 1.0);
    }

    #[test]
    fn status_ranks_order_pass_inconclusive_fail_error() {
        let mut v = result();
        assert_eq!(status_rank(&v).0, 0);
        v["verdict"]["status"] = json!("fail");
        assert_eq!(status_rank(&v), (2, "fail".into()));
        v["status"] = json!("error");
        v["error"] = json!({"kind": "guest_panic"});
        assert_eq!(status_rank(&v), (3, "error (guest_panic)".into()));
    }
}
