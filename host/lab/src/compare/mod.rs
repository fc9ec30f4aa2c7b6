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
mod shape;
mod table;

use clap::Args;
use metrics::{Extracted, Outcome, Row, Spec};
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use vmm::exit::{ErrorKind, Failure, Result, code};
use vmm::files::{InputFile, read_bounded};

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

/// Largest result file read. A 128-task spin run's result.json is about
/// 80 KiB; 8 MiB is a hundred times that, and bounds what one file can
/// cost (parsed JSON takes several times its text).
pub const RESULT_FILE_CAP: u64 = 8 << 20;

/// How result files are read (see `vmm::files`).
const RESULT_INPUT: InputFile = InputFile {
    what: "result file",
    cap: RESULT_FILE_CAP,
    cap_name: "RESULT_FILE_CAP",
    kind: ErrorKind::Usage,
    fix: "give a result.json written by --out, or a saved --json report",
};

fn load_file(path: &Path, key: String) -> Result<Loaded> {
    let bytes = read_bounded(path, &RESULT_INPUT)?;
    parse_result(path, bytes, key)
}

/// A result file's bytes, parsed and checked; `path` names it in messages.
fn parse_result(path: &Path, bytes: Vec<u8>, key: String) -> Result<Loaded> {
    let value: Value = serde_json::from_slice(&bytes).map_err(|e| {
        Failure::usage(format!(
            "{} is not a schedlab result (not JSON: {e})",
            path.display()
        ))
    })?;
    drop(bytes);
    shape::check(path, &value)?;
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

fn operation(l: &Loaded) -> &str {
    l.value
        .get("operation")
        .and_then(Value::as_str)
        .unwrap_or("?")
}

/// Two results of different operations have no metrics in common worth
/// judging (a spin's throughput is not an ipc's): refuse the pair rather
/// than print a table of "missing on one side".
fn same_operation(a: &Loaded, b: &Loaded) -> Result<()> {
    let (oa, ob) = (operation(a), operation(b));
    if oa == ob {
        return Ok(());
    }
    Err(Failure::usage(format!(
        "{} and {} are results of different operations (field \"operation\": {oa:?} vs \
         {ob:?}): compare runs of the same operation",
        a.path.display(),
        b.path.display()
    )))
}

/// Single results pair directly; sets of them by relative path.
pub fn pair(a: Vec<Loaded>, b: Vec<Loaded>) -> Result<Pairing> {
    if a.len() == 1 && b.len() == 1 {
        let (mut a, mut b) = (a, b);
        same_operation(&a[0], &b[0])?;
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
    for (a, b) in &pairs {
        same_operation(a, b)?;
    }
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

/// A number that is something else on the other side: a changed shape,
/// not a change in the metric.
fn check_leaf_types(a: &Loaded, b: &Loaded, ea: &Extracted, eb: &Extracted) -> Result<()> {
    let clash = |nums: &Extracted, other: &Extracted, which: [&Loaded; 2]| -> Result<()> {
        for (name, _) in &nums.numbers {
            if let Some(t) = other.other_leaves.get(name.as_str()) {
                return Err(Failure::usage(format!(
                    "field \"{name}\" is a number in {} but {t} in {}: compare results of the \
                     same shape (the same operation and schedlab version)",
                    which[0].path.display(),
                    which[1].path.display()
                )));
            }
        }
        Ok(())
    };
    clash(ea, eb, [a, b])?;
    clash(eb, ea, [b, a])
}

pub fn compare_pair(a: &Loaded, b: &Loaded, th: &Thresholds) -> Result<PairReport> {
    let ea = metrics::extract_all(&a.value);
    let eb = metrics::extract_all(&b.value);
    check_leaf_types(a, b, &ea, &eb)?;
    let (ma, mb) = (&ea.numbers, &eb.numbers);
    // Hashed lookups: a result can hold a great many numbers, and a scan
    // per metric made comparing them quadratic (a 5 MB result took
    // minutes).
    fn index(m: &[(String, f64)]) -> HashMap<&str, f64> {
        m.iter().map(|(k, v)| (k.as_str(), *v)).collect()
    }
    let (ia, ib) = (index(ma), index(mb));
    // A's order, then what only B has.
    let mut seen: HashSet<&str> = HashSet::with_capacity(ma.len() + mb.len());
    let names: Vec<&str> = ma
        .iter()
        .chain(mb.iter())
        .map(|(n, _)| n.as_str())
        .filter(|n| seen.insert(n))
        .collect();
    let rows: Vec<Row> = names
        .iter()
        .map(|&n| {
            let few = |m: &HashMap<&str, f64>| {
                metrics::sample_count_metric(n)
                    .and_then(|c| m.get(c.as_str()).copied())
                    .is_some_and(|c| c < metrics::MIN_SAMPLES)
            };
            let few = few(&ia) || few(&ib);
            let spec = th.spec(n);
            let spec = if few { metrics::widen(n, spec) } else { spec };
            let mut row = metrics::judge(n, ia.get(n).copied(), ib.get(n).copied(), spec);
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
    let (oa, ob) = (operation(a), operation(b));
    Ok(PairReport {
        name,
        a: a.path.display().to_string(),
        b: b.path.display().to_string(),
        operation: if oa == ob {
            oa.to_string()
        } else {
            format!("{oa} vs {ob}")
        },
        config_changes: config_changes(&a.value, &b.value),
        verdict,
        metrics: rows,
        regressions,
    })
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
    report(&args.a, &args.b, pair(a, b)?, &th)
}

/// The comparison of paired results.
fn report(a: &Path, b: &Path, pairing: Pairing, th: &Thresholds) -> Result<CompareReport> {
    let pairs: Vec<PairReport> = pairing
        .pairs
        .iter()
        .map(|(a, b)| compare_pair(a, b, th))
        .collect::<Result<_>>()?;
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

/// The fuzzing entry point (host/fuzz): two results separated by a NUL
/// byte (or one compared with itself) go through the command's own parse,
/// check, comparison and printing. Whatever the bytes, the answer is a
/// report or a usage error, never a panic.
pub fn fuzz_entry(bytes: &[u8]) {
    let (a, b) = match bytes.iter().position(|&c| c == 0) {
        Some(i) => (&bytes[..i], &bytes[i + 1..]),
        None => (bytes, bytes),
    };
    let (pa, pb) = (Path::new("A/result.json"), Path::new("B/result.json"));
    let parse = |p: &Path, b: &[u8]| parse_result(p, b.to_vec(), String::new());
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
    // Results of different operations are refused when paired.
    let pairing = match pair(vec![la], vec![lb]) {
        Ok(p) => p,
        Err(f) => return usage(f),
    };
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
                vmm::outln!(
                    "{}",
                    serde_json::to_string_pretty(&r).unwrap_or_else(|_| "{}".into())
                );
            } else {
                vmm::out!("{}", table::human(&r));
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
                vmm::outln!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            } else {
                vmm::errln!("schedlab compare: {f}");
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
        let r = compare_pair(&a, &a.clone(), &Thresholds::default()).unwrap();
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
        let r = compare_pair(&a, &b, &Thresholds::default()).unwrap();
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
        assert_eq!(compare_pair(&a, &b, &th).unwrap().regressions, 1);
    }

    #[test]
    fn statistics_of_few_samples_need_a_bigger_change() {
        let a = loaded("x", result(100_000, "pass"));
        let mut bv = result(1_000_000, "pass");
        bv["metrics"]["wake_latency"]["count"] = json!(8);
        let r = compare_pair(&a, &loaded("x", bv.clone()), &Thresholds::default()).unwrap();
        let p99 = r
            .metrics
            .iter()
            .find(|m| m.metric == "wake_p99_ns")
            .unwrap();
        assert!(p99.few_samples);
        assert_eq!(p99.outcome, Outcome::Same, "10x but under 1 ms");
        assert_eq!(r.regressions, 0);
        bv["metrics"]["wake_latency"]["p99_ns"] = json!(50_000_000);
        let r = compare_pair(&a, &loaded("x", bv), &Thresholds::default()).unwrap();
        let p99 = r
            .metrics
            .iter()
            .find(|m| m.metric == "wake_p99_ns")
            .unwrap();
        assert_eq!(p99.outcome, Outcome::Regressed);
        let count = r.metrics.iter().find(|m| m.metric == "wake_count").unwrap();
        assert!(!count.few_samples, "info rows are not marked");
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
    fn results_of_different_operations_are_refused() {
        let mut other = result(1, "pass");
        other["operation"] = json!("ipc");
        let e = pair(
            vec![loaded("x", result(1, "pass"))],
            vec![loaded("x", other.clone())],
        )
        .err()
        .unwrap();
        assert_eq!(e.exit_code(), 64);
        assert!(
            e.message
                .contains("different operations (field \"operation\": \"spin\" vs \"ipc\")"),
            "{e}"
        );
        // In directories too, pair by pair.
        let e = pair(
            vec![
                loaded("p", result(1, "pass")),
                loaded("q", result(1, "pass")),
            ],
            vec![loaded("p", result(1, "pass")), loaded("q", other)],
        )
        .err()
        .unwrap();
        assert!(e.message.contains("q/result.json"), "{e}");
    }

    #[test]
    fn a_number_that_is_a_string_on_the_other_side_is_refused() {
        let mut av = result(1, "pass");
        av["result"] = json!({"rtt_p99_ns": 5, "name": "x"});
        let mut bv = av.clone();
        bv["result"]["rtt_p99_ns"] = json!("5");
        let e = compare_pair(
            &loaded("x", av.clone()),
            &loaded("x", bv),
            &Thresholds::default(),
        )
        .unwrap_err();
        assert_eq!(e.exit_code(), 64);
        assert!(
            e.message.starts_with(
                "field \"result.rtt_p99_ns\" is a number in x/result.json but a string"
            ),
            "{e}"
        );
        // Strings on both sides are fine: they are names, not metrics.
        compare_pair(
            &loaded("x", av.clone()),
            &loaded("x", av),
            &Thresholds::default(),
        )
        .unwrap();
    }

    #[test]
    fn wrong_shapes_are_refused_when_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("r.json");
        let mut v = result(1, "pass");
        v["totals"]["units_per_sec"] = json!("fast");
        std::fs::write(&f, v.to_string()).unwrap();
        let e = load("A", &f).unwrap_err();
        assert_eq!(e.exit_code(), 64);
        assert!(
            e.message
                .contains("field \"totals.units_per_sec\" is a string"),
            "{e}"
        );
        // What the report serializes passes.
        let report = serde_json::to_value(crate::report::tests::sample()).unwrap();
        std::fs::write(&f, report.to_string()).unwrap();
        load("A", &f).unwrap();
    }

    /// A result with a great many numbers compares in linear time (it was
    /// quadratic: a scan of every name per name).
    #[test]
    fn a_large_result_compares_quickly() {
        const KEYS: usize = 200_000;
        let mut big = serde_json::Map::new();
        for i in 0..KEYS {
            big.insert(format!("series_{i:06}_p99_ns"), json!(1000 + i));
        }
        let mut av = result(1, "pass");
        av["result"] = Value::Object(big);
        let (a, b) = (loaded("x", av.clone()), loaded("x", av));
        let t = std::time::Instant::now();
        let r = compare_pair(&a, &b, &Thresholds::default()).unwrap();
        assert!(r.metrics.len() > KEYS, "{}", r.metrics.len());
        assert!(
            t.elapsed() < std::time::Duration::from_secs(10),
            "took {:?}",
            t.elapsed()
        );
    }

    #[test]
    fn an_unknown_metric_threshold_is_refused() {
        let a = loaded("x", result(1, "pass"));
        let th = Thresholds::parse(&["wake_p98_ns=0.1".into()]).unwrap();
        let pairs = vec![compare_pair(&a, &a, &th).unwrap()];
        let e = check_metric_names(&th, &pairs).unwrap_err();
        assert!(e.message.contains("no metric named 'wake_p98_ns'"), "{e}");
        assert!(e.message.contains("wake_p99_ns"), "{e}");
        let th = Thresholds::parse(&["switches=0.1".into()]).unwrap();
        let mut v = result(1, "pass");
        v["metrics"]["switches"] = json!(5);
        let a = loaded("x", v);
        let pairs = vec![compare_pair(&a, &a, &th).unwrap()];
        assert!(check_metric_names(&th, &pairs).is_err());
    }
}
