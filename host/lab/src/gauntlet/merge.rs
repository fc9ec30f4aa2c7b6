//! `schedlab gauntlet merge DIR...`: the parts of a partitioned gauntlet
//! (`--partition K/N` on N machines, each with its own `--out`) joined
//! into one `gauntlet.json` and one table, rows in the whole matrix's
//! order -- what one machine running the whole matrix would have printed.
//! A CI matrix (or nextest-style sharding) is the distributed engine; this
//! is only the join.
//!
//! Every part's `gauntlet.json` is untrusted input: read with a size cap,
//! checked to be a part of the same matrix as the others, and no run may
//! come from two parts.

use super::row::{RunRow, table};
use super::{GauntletReport, usage_error};
use clap::Args;
use serde::Deserialize;
use std::io::Read;
use std::path::{Path, PathBuf};
use vmm::exit::{Failure, Result, code};

/// The largest `gauntlet.json` read (a matrix of thousands of runs is a
/// few megabytes).
const MAX_FILE: u64 = 64 << 20;

#[derive(Debug, Clone, Args)]
pub struct MergeArgs {
    /// The parts' --out directories (each holds a gauntlet.json).
    #[arg(value_name = "DIR", required = true, num_args = 1..)]
    pub dirs: Vec<PathBuf>,
    /// Where the merged gauntlet.json goes (created if missing).
    #[arg(long, value_name = "DIR", default_value = "schedlab-gauntlet")]
    pub out: PathBuf,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// What merge reads of a part's `gauntlet.json`.
#[derive(Debug, Deserialize)]
struct Part {
    matrix: Vec<String>,
    runs: Vec<RunRow>,
    #[serde(default)]
    partition: Option<String>,
}

fn read_part(dir: &Path) -> Result<Part> {
    let file = dir.join("gauntlet.json");
    let shown = file.display();
    let f = std::fs::File::open(&file).map_err(|e| {
        Failure::usage(format!(
            "gauntlet merge: cannot read {shown}: {e} (give the --out directories of the parts)"
        ))
    })?;
    let mut text = String::new();
    f.take(MAX_FILE + 1)
        .read_to_string(&mut text)
        .map_err(|e| Failure::usage(format!("gauntlet merge: cannot read {shown}: {e}")))?;
    if text.len() as u64 > MAX_FILE {
        return Err(Failure::usage(format!(
            "gauntlet merge: {shown} is larger than {} MiB: not a gauntlet's summary",
            MAX_FILE >> 20
        )));
    }
    serde_json::from_str(&text).map_err(|e| {
        Failure::usage(format!(
            "gauntlet merge: {shown} is not a gauntlet.json this schedlab wrote ({e}); \
             partitioned gauntlets need the same schedlab version on every machine"
        ))
    })
}

/// The merged report: the parts' rows in matrix order, the runs no part
/// had as not started.
pub fn merge(dirs: &[PathBuf], out: &Path) -> Result<GauntletReport> {
    let mut matrix: Option<(Vec<String>, &Path)> = None;
    let mut rows: Vec<(usize, RunRow, &Path)> = Vec::new();
    for dir in dirs {
        let part = read_part(dir)?;
        match &matrix {
            None => matrix = Some((part.matrix.clone(), dir)),
            Some((m, first)) if *m != part.matrix => {
                return Err(Failure::usage(format!(
                    "gauntlet merge: {} and {} are parts of different matrices (give every \
                     part the same --policies, --workloads, --cpus or --topologies)",
                    first.display(),
                    dir.display()
                )));
            }
            Some(_) => {}
        }
        let m = &matrix.as_ref().expect("set above").0;
        for row in part.runs {
            let Some(at) = m.iter().position(|n| *n == row.name) else {
                return Err(Failure::usage(format!(
                    "gauntlet merge: {} has run '{}', which its matrix does not list",
                    dir.display(),
                    row.name
                )));
            };
            if let Some((_, _, other)) = rows.iter().find(|(i, _, _)| *i == at) {
                return Err(Failure::usage(format!(
                    "gauntlet merge: run '{}' is in both {} and {} (partition {}): give each \
                     part once",
                    row.name,
                    other.display(),
                    dir.display(),
                    part.partition.as_deref().unwrap_or("none")
                )));
            }
            rows.push((at, row, dir));
        }
    }
    let matrix = matrix.map(|(m, _)| m).unwrap_or_default();
    rows.sort_by_key(|(i, _, _)| *i);
    let missing: Vec<String> = matrix
        .iter()
        .enumerate()
        .filter(|(i, _)| !rows.iter().any(|(at, _, _)| at == i))
        .map(|(_, n)| n.clone())
        .collect();
    let runs: Vec<RunRow> = rows.into_iter().map(|(_, r, _)| r).collect();
    Ok(GauntletReport::new(
        out.display().to_string(),
        0,
        runs,
        missing,
        None,
        matrix,
    ))
}

/// Entry point of `gauntlet merge`; the exit code is the merged
/// gauntlet's, and a matrix with runs no part had cannot pass.
pub fn main(args: &MergeArgs) -> u8 {
    let report = match merge(&args.dirs, &args.out)
        .and_then(|r| crate::outputs::prepare_dir(&args.out).map(|_| r))
    {
        Ok(r) => r,
        Err(f) => return usage_error(&f, args.json),
    };
    let text = serde_json::to_string_pretty(&report).unwrap_or_default();
    let summary = args.out.join("gauntlet.json");
    if let Err(e) = std::fs::write(&summary, format!("{text}\n")) {
        vmm::errln!(
            "schedlab gauntlet merge: cannot write {}: {e}",
            summary.display()
        );
    }
    if args.json {
        vmm::outln!("{text}");
    } else {
        vmm::out!("{}", table(&report));
        if !report.not_started.is_empty() {
            vmm::errln!(
                "schedlab gauntlet merge: {} of the matrix's {} runs are in none of the parts: {}",
                report.not_started.len(),
                report.matrix.len(),
                report.not_started.join(", ")
            );
        }
    }
    match report.exit_code() {
        code::OK if !report.not_started.is_empty() => code::INCONCLUSIVE,
        c => c,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(dir: &Path, matrix: &[&str], runs: &[&str], partition: &str) {
        let rows: Vec<RunRow> = runs
            .iter()
            .map(|n| RunRow {
                name: n.to_string(),
                ..RunRow::for_test("pass")
            })
            .collect();
        let mut r = GauntletReport::new(
            "x".into(),
            1,
            rows,
            Vec::new(),
            None,
            matrix.iter().map(|s| s.to_string()).collect(),
        );
        r.partition = Some(partition.into());
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(
            dir.join("gauntlet.json"),
            serde_json::to_string(&r).unwrap(),
        )
        .unwrap();
    }

    #[test]
    fn parts_join_in_matrix_order_and_overlaps_or_strangers_are_refused() {
        let t = tempfile::tempdir().unwrap();
        let m = ["a", "b", "c", "d"];
        let (p1, p2) = (t.path().join("p1"), t.path().join("p2"));
        part(&p1, &m, &["a", "c"], "1/2");
        part(&p2, &m, &["b", "d"], "2/2");
        let r = merge(&[p2.clone(), p1.clone()], t.path()).unwrap();
        let names: Vec<&str> = r.runs.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "c", "d"]);
        assert!(r.not_started.is_empty());
        assert_eq!((r.passed, r.exit_code()), (4, code::OK));
        // One part missing: its runs are listed, never a pass.
        let r = merge(std::slice::from_ref(&p1), t.path()).unwrap();
        assert_eq!(r.not_started, ["b", "d"]);
        // The same part twice.
        let e = merge(&[p1.clone(), p1.clone()], t.path()).unwrap_err();
        assert!(e.message.contains("is in both"), "{}", e.message);
        // Another matrix.
        let p3 = t.path().join("p3");
        part(&p3, &["a", "b"], &["a"], "1/2");
        let e = merge(&[p1.clone(), p3], t.path()).unwrap_err();
        assert!(e.message.contains("different matrices"), "{}", e.message);
        // A run its matrix does not list; garbage; no directory.
        let p4 = t.path().join("p4");
        part(&p4, &m, &["zz"], "1/1");
        assert!(merge(&[p4], t.path()).is_err());
        let p5 = t.path().join("p5");
        std::fs::create_dir_all(&p5).unwrap();
        std::fs::write(p5.join("gauntlet.json"), "{\"matrix\": 3}").unwrap();
        let e = merge(&[p5], t.path()).unwrap_err();
        assert!(e.message.contains("not a gauntlet.json"), "{}", e.message);
        let e = merge(&[t.path().join("none")], t.path()).unwrap_err();
        assert_eq!(e.exit_code(), code::USAGE);
    }
}
