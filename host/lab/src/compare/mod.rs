//! `schedlab compare A B`: did B get worse than A?
//!
//! A and B are result files (`--out`'s result.json, or a saved `--json`
//! report) or directories searched recursively for result.json; two
//! directories are paired by each result's path relative to its root, so
//! two gauntlet directories compare run by run. For every pair it prints
//! each metric's two values, the change and whether it crosses its
//! threshold (see [`metrics`] for which metrics and why those thresholds).
//! Exit 1 if anything regressed, 0 if not, 64 if the input is not two sets
//! of schedlab results.

mod metrics;
mod table;

use clap::Args;
use metrics::{Outcome, Row, Spec};
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use vmm::exit::{Failure, Result, code};

pub use metrics::{Direction, extract, spec_of};
pub use table::value;

/// Shown at the end of `schedlab compare --help`.
pub const EXIT_CODES: &str = "\
Exit codes:
  0   no metric regressed past its threshold (and no verdict got worse)
  1   at least one regression
  64  bad input: a missing file, something that is not a schedlab result,
      nothing to pair, a bad --threshold";

#[derive(Debug, Clone, Args)]
pub struct CompareArgs {
    /// The baseline: a result.json (or a saved `--json` report), or a
    /// directory searched recursively for result.json files.
    #[arg(value_name = "A")]
    pub a: PathBuf,
    /// The candidate, of the same kind as A.
    #[arg(value_name = "B")]
    pub b: PathBuf,
    /// Relative change that counts as a regression: FRACTION for every
    /// metric (e.g. 0.2 = 20 %) or METRIC=FRACTION for one (e.g.
    /// wake_p99_ns=0.1). Repeat or separate with commas. Changes under a
    /// metric's noise floor never count.
    #[arg(
        long,
        value_name = "[METRIC=]FRACTION",
        value_delimiter = ',',
        allow_hyphen_values = true
    )]
    pub threshold: Vec<String>,
    /// Print one JSON object instead of tables.
    #[arg(long)]
    pub json: bool,
}

/// `--threshold`, parsed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Thresholds {
    pub all: Option<f64>,
    pub per_metric: BTreeMap<String, f64>,
}

fn parse_fraction(text: &str, whole: &str) -> Result<f64> {
    let v: f64 = text.trim().parse().map_err(|_| {
        Failure::usage(format!(
            "--threshold: '{whole}' is not a fraction (write e.g. 0.2 or wake_p99_ns=0.1)"
        ))
    })?;
    if !v.is_finite() || v < 0.0 {
        return Err(Failure::usage(format!(
            "--threshold: '{whole}' must be a fraction of 0 or more (0.2 = 20 %)"
        )));
    }
    Ok(v)
}

impl Thresholds {
    pub fn parse(items: &[String]) -> Result<Thresholds> {
        let mut t = Thresholds::default();
        for item in items {
            match item.split_once('=') {
                None => {
                    if t.all.replace(parse_fraction(item, item)?).is_some() {
                        return Err(Failure::usage(
                            "--threshold: give the threshold for all metrics only once",
                        ));
                    }
                }
                Some((name, v)) => {
                    let name = name.trim();
                    if name.is_empty() {
                        return Err(Failure::usage(format!(
                            "--threshold: '{item}' names no metric"
                        )));
                    }
                    t.per_metric
                        .insert(name.to_string(), parse_fraction(v, item)?);
                }
            }
        }
        Ok(t)
    }

    /// `metric`'s spec with the overrides applied.
    fn spec(&self, metric: &str) -> Spec {
        let mut s = metrics::spec_of(metric);
        if s.direction == Direction::Info {
            return s;
        }
        if let Some(v) = self.per_metric.get(metric).or(self.all.as_ref()) {
            s.threshold = *v;
        }
        s
    }
}

/// One loaded result.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub path: PathBuf,
    /// Its directory relative to the root it was found under ("" for a
    /// file given directly).
    pub key: String,
    pub value: Value,
}

/// Is this a schedlab result (a `--out` result.json or a `--json` report)?
fn check_result(path: &Path, v: &Value) -> Result<()> {
    let op = v.get("operation").and_then(Value::as_str);
    let version = v.pointer("/versions/schedlab").and_then(Value::as_str);
    let kind_ok = v
        .get("kind")
        .is_none_or(|k| k == crate::outputs::RESULT_KIND);
    if op.is_none() || version.is_none() || !kind_ok {
        return Err(Failure::usage(format!(
            "{} is not a schedlab result (no \"operation\" and \"versions.schedlab\"): give a \
             result.json written by --out, or a saved --json report",
            path.display()
        )));
    }
    Ok(())
}

/// Largest result file read. A result.json is tens of KiB (256 tasks'
/// rows at most); the limit keeps a wrong file from being read whole.
pub const MAX_RESULT_BYTES: u64 = 64 << 20;

fn load_file(path: &Path, key: String) -> Result<Loaded> {
    use std::io::Read;
    let cannot = |e: std::io::Error| Failure::usage(format!("cannot read {}: {e}", path.display()));
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_RESULT_BYTES + 1).read_to_string(&mut text))
        .map_err(cannot)?;
    if text.len() as u64 > MAX_RESULT_BYTES {
        return Err(Failure::usage(format!(
            "{} is not a schedlab result (over {} MiB)",
            path.display(),
            MAX_RESULT_BYTES >> 20
        )));
    }
    parse_result(path, &text, key)
}

/// A result file's text, parsed and checked; `path` names it in messages.
fn parse_result(path: &Path, text: &str, key: String) -> Result<Loaded> {
    let value: Value = serde_json::from_str(text).map_err(|e| {
        Failure::usage(format!(
            "{} is not a schedlab result (not JSON: {e})",
            path.display()
        ))
    })?;
    check_result(path, &value)?;
    Ok(Loaded {
        path: path.to_path_buf(),
        key,
        value,
    })
}

/// Every `result.json` under `dir`, sorted by path. Symbolic links to
/// directories are not followed (no loops).
fn find_results(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| Failure::usage(format!("cannot read directory {}: {e}", dir.display())))?;
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok()).map(|e| e.path()).collect();
    paths.sort();
    for p in paths {
        let meta = std::fs::symlink_metadata(&p);
        if meta.as_ref().is_ok_and(|m| m.is_dir()) {
            find_results(&p, out)?;
        } else if p.file_name() == Some(crate::outputs::RESULT_FILE.as_ref()) {
            out.push(p);
        }
    }
    Ok(())
}

/// The results `arg` (A or B) names.
pub fn load(label: &str, path: &Path) -> Result<Vec<Loaded>> {
    if !path.exists() {
        return Err(Failure::usage(format!(
            "{label}: '{}' does not exist",
            path.display()
        )));
    }
    if !path.is_dir() {
        return Ok(vec![load_file(path, String::new())?]);
    }
    let mut files = Vec::new();
    find_results(path, &mut files)?;
    if files.is_empty() {
        return Err(Failure::usage(format!(
            "{label}: no {} under '{}'",
            crate::outputs::RESULT_FILE,
            path.display()
        )));
    }
    files
        .iter()
        .map(|f| {
            let rel = f
                .parent()
                .and_then(|d| d.strip_prefix(path).ok())
                .map(|d| d.to_string_lossy().into_owned())
                .unwrap_or_default();
            load_file(f, rel)
        })
        .collect()
}

/// A and B matched up: pairs, and what one side has alone.
pub struct Pairing {
    pub pairs: Vec<(Loaded, Loaded)>,
    pub only_a: Vec<String>,
    pub only_b: Vec<String>,
}

/// Single results pair directly; sets of them by relative path.
pub fn pair(a: Vec<Loaded>, b: Vec<Loaded>) -> Result<Pairing> {
    if a.len() == 1 && b.len() == 1 {
        let (mut a, mut b) = (a, b);
        return Ok(Pairing {
            pairs: vec![(a.remove(0), b.remove(0))],
            only_a: vec![],
            only_b: vec![],
        });
    }
    let mut bmap: BTreeMap<String, Loaded> = b.into_iter().map(|l| (l.key.clone(), l)).collect();
    let mut pairs = Vec::new();
    let mut only_a = Vec::new();
    for l in a {
        match bmap.remove(&l.key) {
            Some(m) => pairs.push((l, m)),
            None => only_a.push(l.key),
        }
    }
    let only_b: Vec<String> = bmap.into_keys().collect();
    if pairs.is_empty() {
        return Err(Failure::usage(
            "no result in A has a counterpart in B: results in directories are paired by their \
             path relative to A and B (e.g. A/spin-rr-1cpu/result.json with \
             B/spin-rr-1cpu/result.json)",
        ));
    }
    Ok(Pairing {
        pairs,
        only_a,
        only_b,
    })
}

/// The comparison of one pair.
#[derive(Debug, Clone, Serialize)]
pub struct PairReport {
    /// The relative path, or "A/B" file names for two single files.
    pub name: String,
    pub a: String,
    pub b: String,
    pub operation: String,
    /// Config keys whose values differ: [A's, B's].
    pub config_changes: BTreeMap<String, [Value; 2]>,
    pub verdict: VerdictChange,
    pub metrics: Vec<Row>,
    /// Values of A's and B's `result` not compared: over
    /// `metrics::MAX_RESULT_METRICS` numbers, or names over
    /// `metrics::MAX_NAME_CHARS`.
    pub omitted: [usize; 2],
    pub regressions: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct VerdictChange {
    pub a: String,
    pub b: String,
    pub regressed: bool,
}

fn config_changes(a: &Value, b: &Value) -> BTreeMap<String, [Value; 2]> {
    let empty = serde_json::Map::new();
    let ao = a.get("config").and_then(Value::as_object).unwrap_or(&empty);
    let bo = b.get("config").and_then(Value::as_object).unwrap_or(&empty);
    let mut keys: Vec<&String> = ao.keys().chain(bo.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| ao.get(*k) != bo.get(*k))
        .map(|k| {
            let v = |o: &serde_json::Map<String, Value>| o.get(k).cloned().unwrap_or(Value::Null);
            (k.clone(), [v(ao), v(bo)])
        })
        .collect()
}

pub fn compare_pair(a: &Loaded, b: &Loaded, th: &Thresholds) -> PairReport {
    let (ma, omitted_a) = metrics::extract_counted(&a.value);
    let (mb, omitted_b) = metrics::extract_counted(&b.value);
    // Looked up by name: a result may have a thousand numbers.
    let index = |m: &[(String, f64)]| -> HashMap<String, f64> { m.iter().cloned().collect() };
    let (ia, ib) = (index(&ma), index(&mb));
    // A's order, then what only B has.
    let mut names: Vec<&String> = ma.iter().map(|(n, _)| n).collect();
    names.extend(mb.iter().map(|(n, _)| n).filter(|n| !ia.contains_key(*n)));
    let get = |m: &HashMap<String, f64>, n: &str| m.get(n).copied();
    let rows: Vec<Row> = names
        .iter()
        .map(|n| {
            let few = |m: &HashMap<String, f64>| {
                metrics::sample_count_metric(n)
                    .and_then(|c| get(m, &c))
                    .is_some_and(|c| c < metrics::MIN_SAMPLES)
            };
            let few = few(&ia) || few(&ib);
            let spec = th.spec(n);
            let spec = if few { metrics::widen(n, spec) } else { spec };
            let mut row = metrics::judge(n, get(&ia, n), get(&ib, n), spec);
            row.few_samples = few && spec.direction != Direction::Info;
            row
        })
        .collect();
    let (ra, sa) = metrics::status_rank(&a.value);
    let (rb, sb) = metrics::status_rank(&b.value);
    let verdict = VerdictChange {
        a: sa,
        b: sb,
        regressed: rb > ra,
    };
    let regressions = rows
        .iter()
        .filter(|r| r.outcome == Outcome::Regressed)
        .count()
        + usize::from(verdict.regressed);
    let name = if a.key.is_empty() && b.key.is_empty() {
        let file = |p: &Path| p.display().to_string();
        format!("{} vs {}", file(&a.path), file(&b.path))
    } else {
        a.key.clone()
    };
    let op = |v: &Value| {
        v.get("operation")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_string()
    };
    let (oa, ob) = (op(&a.value), op(&b.value));
    PairReport {
        name,
        a: a.path.display().to_string(),
        b: b.path.display().to_string(),
        operation: if oa == ob {
            oa
        } else {
            format!("{oa} vs {ob}")
        },
        config_changes: config_changes(&a.value, &b.value),
        verdict,
        metrics: rows,
        omitted: [omitted_a, omitted_b],
        regressions,
    }
}

#[derive(Debug, Serialize)]
pub struct CompareReport {
    pub a: String,
    pub b: String,
    pub pairs: Vec<PairReport>,
    pub only_in_a: Vec<String>,
    pub only_in_b: Vec<String>,
    pub regressions: usize,
    /// "regressed" or "ok".
    pub status: &'static str,
}

/// Check every `METRIC=` names a metric these results have, so a typo is
/// an error rather than a silently unused threshold.
fn check_metric_names(th: &Thresholds, pairs: &[PairReport]) -> Result<()> {
    for name in th.per_metric.keys() {
        let rows = pairs.iter().flat_map(|p| &p.metrics);
        let found: Vec<&Row> = rows.filter(|r| &r.metric == name).collect();
        if found.is_empty() {
            let mut known: Vec<&str> = pairs
                .iter()
                .flat_map(|p| &p.metrics)
                .filter(|r| r.direction != Direction::Info)
                .map(|r| r.metric.as_str())
                .collect();
            known.sort();
            known.dedup();
            return Err(Failure::usage(format!(
                "--threshold: no metric named '{name}' in these results (judged metrics: {})",
                known.join(", ")
            )));
        }
        if found.iter().all(|r| r.direction == Direction::Info) {
            return Err(Failure::usage(format!(
                "--threshold: '{name}' is shown for information only (neither lower nor higher is \
                 better), so it has no threshold"
            )));
        }
    }
    Ok(())
}

pub fn run(args: &CompareArgs) -> Result<CompareReport> {
    let th = Thresholds::parse(&args.threshold)?;
    let a = load("A", &args.a)?;
    let b = load("B", &args.b)?;
    let pairing = pair(a, b)?;
    report(&args.a, &args.b, pairing, &th)
}

/// Compare every pair and check the thresholds named metrics they have.
fn report(a: &Path, b: &Path, pairing: Pairing, th: &Thresholds) -> Result<CompareReport> {
    let pairs: Vec<PairReport> = pairing
        .pairs
        .iter()
        .map(|(a, b)| compare_pair(a, b, th))
        .collect();
    check_metric_names(th, &pairs)?;
    let regressions = pairs.iter().map(|p| p.regressions).sum();
    Ok(CompareReport {
        a: a.display().to_string(),
        b: b.display().to_string(),
        pairs,
        only_in_a: pairing.only_a,
        only_in_b: pairing.only_b,
        regressions,
        status: if regressions > 0 { "regressed" } else { "ok" },
    })
}

/// The fuzzing entry point (`host/fuzz`, target `compare`): `bytes` is
/// A's result file, then a NUL byte and B's (no NUL: B is A). Both are
/// parsed and checked as `schedlab compare A B` does, compared with a
/// threshold for all metrics and one for a named metric, and printed as
/// a table and as JSON. A file that is not a result must come back as a
/// usage error; a panic or a hang is a bug for the fuzzer to report.
pub fn fuzz_entry(bytes: &[u8]) {
    let (a, b) = match bytes.iter().position(|&c| c == 0) {
        Some(i) => (&bytes[..i], &bytes[i + 1..]),
        None => (bytes, bytes),
    };
    let (pa, pb) = (Path::new("A/result.json"), Path::new("B/result.json"));
    let parse = |p: &Path, b: &[u8]| parse_result(p, &String::from_utf8_lossy(b), String::new());
    let usage = |f: Failure| assert_eq!(f.exit_code(), code::USAGE, "{f}");
    let (la, lb) = match (parse(pa, a), parse(pb, b)) {
        (Ok(la), Ok(lb)) => (la, lb),
        (a, b) => {
            a.err().into_iter().chain(b.err()).for_each(usage);
            return;
        }
    };
    let th = Thresholds::parse(&["0.2".into(), "wake_p99_ns=0.1".into()])
        .expect("fixed thresholds parse");
    let pairing = pair(vec![la], vec![lb]).expect("two single results pair");
    match report(pa, pb, pairing, &th) {
        Ok(r) => {
            let _ = table::human(&r);
            let _ = serde_json::to_string_pretty(&r);
        }
        Err(f) => usage(f),
    }
}

/// Entry point of the subcommand; returns the process exit code.
pub fn main(args: &CompareArgs) -> u8 {
    match run(args) {
        Ok(r) => {
            if args.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&r).unwrap_or_else(|_| "{}".into())
                );
            } else {
                print!("{}", table::human(&r));
            }
            if r.regressions > 0 {
                code::VERDICT_FAIL
            } else {
                code::OK
            }
        }
        Err(f) => {
            if args.json {
                let v = serde_json::json!({"status": "error", "error": f});
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            } else {
                eprintln!("schedlab compare: {f}");
            }
            f.exit_code()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn result(p99: u64, status: &str) -> Value {
        json!({
            "kind": "schedlab-result",
            "operation": "spin",
            "status": "ok",
            "versions": {"schedlab": "0.1.0"},
            "config": {"policy": "rr", "cpus": 2},
            "totals": {"units_per_sec": 1000.0},
            "metrics": {"wake_latency": {"count": 50, "p50_ns": 1000, "p99_ns": p99, "max_ns": p99}},
            "verdict": {"status": status}
        })
    }

    fn loaded(key: &str, v: Value) -> Loaded {
        Loaded {
            path: PathBuf::from(format!("{key}/result.json")),
            key: key.into(),
            value: v,
        }
    }

    #[test]
    fn thresholds_parse_for_all_or_one_metric() {
        let t = Thresholds::parse(&["0.2".into(), "wake_p99_ns=0.1".into()]).unwrap();
        assert_eq!(t.all, Some(0.2));
        assert_eq!(t.per_metric["wake_p99_ns"], 0.1);
        assert_eq!(t.spec("wake_p99_ns").threshold, 0.1);
        assert_eq!(t.spec("throughput").threshold, 0.2);
        assert_eq!(t.spec("switches").direction, Direction::Info);
        for bad in ["x", "-0.1", "=0.1", "a=b", "inf"] {
            let e = Thresholds::parse(&[bad.into()]).unwrap_err();
            assert!(e.message.starts_with("--threshold:"), "{bad}: {e}");
        }
        assert!(Thresholds::parse(&["0.1".into(), "0.2".into()]).is_err());
    }

    #[test]
    fn a_result_compared_with_itself_has_no_regression() {
        let a = loaded("x", result(100_000, "pass"));
        let r = compare_pair(&a, &a.clone(), &Thresholds::default());
        assert_eq!(r.regressions, 0);
        assert!(r.config_changes.is_empty());
        assert!(
            r.metrics
                .iter()
                .all(|m| m.outcome != Outcome::Regressed && m.outcome != Outcome::Improved)
        );
    }

    #[test]
    fn worse_wake_ups_and_a_failed_verdict_are_regressions() {
        let a = loaded("x", result(100_000, "pass"));
        let mut bv = result(1_000_000, "fail");
        bv["config"]["policy"] = json!("fifo");
        let b = loaded("x", bv);
        let r = compare_pair(&a, &b, &Thresholds::default());
        let p99 = r
            .metrics
            .iter()
            .find(|m| m.metric == "wake_p99_ns")
            .unwrap();
        assert_eq!(p99.outcome, Outcome::Regressed);
        assert_eq!(p99.change, Some(9.0));
        assert!(r.verdict.regressed);
        assert_eq!(
            r.regressions, 3,
            "p99, max and the verdict: {:?}",
            r.metrics
        );
        assert_eq!(r.config_changes["policy"], [json!("rr"), json!("fifo")]);
        // A high enough threshold forgives the latencies, not the verdict.
        let th = Thresholds::parse(&["100".into()]).unwrap();
        assert_eq!(compare_pair(&a, &b, &th).regressions, 1);
    }

    #[test]
    fn statistics_of_few_samples_need_a_bigger_change() {
        let a = loaded("x", result(100_000, "pass"));
        let mut bv = result(1_000_000, "pass");
        bv["metrics"]["wake_latency"]["count"] = json!(8);
        let r = compare_pair(&a, &loaded("x", bv.clone()), &Thresholds::default());
        let p99 = r
            .metrics
            .iter()
            .find(|m| m.metric == "wake_p99_ns")
            .unwrap();
        assert!(p99.few_samples);
        assert_eq!(p99.outcome, Outcome::Same, "10x but under 1 ms");
        assert_eq!(r.regressions, 0);
        bv["metrics"]["wake_latency"]["p99_ns"] = json!(50_000_000);
        let r = compare_pair(&a, &loaded("x", bv), &Thresholds::default());
        let p99 = r
            .metrics
            .iter()
            .find(|m| m.metric == "wake_p99_ns")
            .unwrap();
        assert_eq!(p99.outcome, Outcome::Regressed);
        let count = r.metrics.iter().find(|m| m.metric == "wake_count").unwrap();
        assert!(!count.few_samples, "info rows are not marked");
    }

    /// 60 000 numbers took 34 s to compare, and 20 000 under one long key
    /// two minutes, before the limits.
    #[test]
    fn a_huge_result_is_compared_within_the_limits_and_says_so() {
        let wide: serde_json::Map<String, Value> =
            (0..20_000).map(|i| (format!("x{i}"), json!(i))).collect();
        let mut v = result(1, "pass");
        v["result"] = json!({ "k".repeat(2000): wide.clone(), "many": wide });
        let a = loaded("x", v);
        let t = std::time::Instant::now();
        let r = compare_pair(&a, &a, &Thresholds::default());
        assert!(t.elapsed().as_secs() < 5, "{:?}", t.elapsed());
        assert_eq!(r.omitted, [20_000 - metrics::MAX_RESULT_METRICS + 1; 2]);
        assert!(r.metrics.len() < metrics::MAX_RESULT_METRICS + 20);
        let text = table::human(&CompareReport {
            a: "A".into(),
            b: "B".into(),
            pairs: vec![r],
            only_in_a: vec![],
            only_in_b: vec![],
            regressions: 0,
            status: "ok",
        });
        assert!(
            text.contains("not compared: 19001 values of A's result"),
            "{text}"
        );
    }

    #[test]
    fn sets_pair_by_relative_path() {
        let a = vec![
            loaded("p", result(1, "pass")),
            loaded("q", result(1, "pass")),
        ];
        let b = vec![
            loaded("q", result(1, "pass")),
            loaded("r", result(1, "pass")),
        ];
        let p = pair(a, b).unwrap();
        assert_eq!(p.pairs.len(), 1);
        assert_eq!(p.pairs[0].0.key, "q");
        assert_eq!((p.only_a, p.only_b), (vec!["p".into()], vec!["r".into()]));
        let none = pair(
            vec![
                loaded("p", result(1, "pass")),
                loaded("q", result(1, "pass")),
            ],
            vec![
                loaded("r", result(1, "pass")),
                loaded("s", result(1, "pass")),
            ],
        );
        assert_eq!(none.err().unwrap().exit_code(), 64);
    }

    #[test]
    fn non_results_are_usage_errors() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("x.json");
        std::fs::write(&f, r#"{"hello": 1}"#).unwrap();
        let e = load("A", &f).unwrap_err();
        assert!(e.message.contains("is not a schedlab result"), "{e}");
        std::fs::write(&f, "not json").unwrap();
        assert!(load("A", &f).unwrap_err().message.contains("not JSON"));
        let e = load("B", &dir.path().join("missing")).unwrap_err();
        assert!(e.message.starts_with("B: '"), "{e}");
        let empty = tempfile::tempdir().unwrap();
        assert!(
            load("A", empty.path())
                .unwrap_err()
                .message
                .contains("no result.json")
        );
    }

    #[test]
    fn a_file_over_the_size_limit_is_refused_unread() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("result.json");
        let file = std::fs::File::create(&f).unwrap();
        // Sparse: no disk is written.
        file.set_len(MAX_RESULT_BYTES + 1).unwrap();
        let e = load("A", &f).unwrap_err();
        assert!(e.message.contains("over 64 MiB"), "{e}");
    }

    #[test]
    fn the_fuzz_entry_takes_results_and_non_results() {
        let r = result(1, "pass").to_string();
        fuzz_entry(r.as_bytes());
        fuzz_entry(format!("{r}\0{}", result(9_000_000, "fail")).as_bytes());
        fuzz_entry(b"{}\0not json");
    }

    #[test]
    fn directories_are_searched_recursively() {
        let dir = tempfile::tempdir().unwrap();
        for sub in ["spin-rr-1cpu", "deep/ipc-rr-2cpu"] {
            let d = dir.path().join(sub);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("result.json"), result(1, "pass").to_string()).unwrap();
        }
        std::fs::write(dir.path().join("other.json"), "{}").unwrap();
        let keys: Vec<String> = load("A", dir.path())
            .unwrap()
            .into_iter()
            .map(|l| l.key)
            .collect();
        assert_eq!(keys, ["deep/ipc-rr-2cpu", "spin-rr-1cpu"]);
    }

    #[test]
    fn an_unknown_metric_threshold_is_refused() {
        let a = loaded("x", result(1, "pass"));
        let th = Thresholds::parse(&["wake_p98_ns=0.1".into()]).unwrap();
        let pairs = vec![compare_pair(&a, &a, &th)];
        let e = check_metric_names(&th, &pairs).unwrap_err();
        assert!(e.message.contains("no metric named 'wake_p98_ns'"), "{e}");
        assert!(e.message.contains("wake_p99_ns"), "{e}");
        let th = Thresholds::parse(&["switches=0.1".into()]).unwrap();
        let mut v = result(1, "pass");
        v["metrics"]["switches"] = json!(5);
        let a = loaded("x", v);
        let pairs = vec![compare_pair(&a, &a, &th)];
        assert!(check_metric_names(&th, &pairs).is_err());
    }
}
