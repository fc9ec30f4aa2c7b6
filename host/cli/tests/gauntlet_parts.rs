//! End to end: a gauntlet split across machines. `--partition K/N` runs
//! disjoint parts whose union is the matrix `--list --json` prints, and
//! `gauntlet merge` joins the parts' directories into the rows one machine
//! would have printed. One VM at a time (`--jobs 1`, the lock).

mod common;

use common::{lock, schedlab};
use serde_json::Value;
use std::path::Path;

const MATRIX: [&str; 8] = [
    "gauntlet",
    "--policies",
    "rr,fifo,eevdf",
    "--cpus",
    "1",
    "--workloads",
    "spin",
    "--duration",
];

fn args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut a: Vec<&str> = MATRIX.to_vec();
    a.extend(["50ms", "--jobs", "1"]);
    a.extend_from_slice(extra);
    a
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn read(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn names(v: &Value, key: &str) -> Vec<String> {
    v[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r["name"]
                .as_str()
                .unwrap_or_else(|| r.as_str().unwrap())
                .to_string()
        })
        .collect()
}

/// The table's run lines (workload, policy, CPUs), in order.
fn rows(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .filter(|l| l.starts_with("spin "))
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .collect()
}

#[test]
fn three_parts_merge_into_the_one_machine_table() {
    let _vm = lock();
    let tmp = tempfile::tempdir().unwrap();
    // The matrix, for a CI system: nothing runs, nothing is written.
    let listed = schedlab(
        &args(&["--list", "--json", "--out", s(&tmp.path().join("never"))]),
        &[],
    );
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    let list: Value = serde_json::from_str(&listed.stdout).unwrap();
    let matrix: Vec<String> = names(&list, "matrix");
    assert_eq!(
        matrix,
        ["spin-rr-1cpu", "spin-fifo-1cpu", "spin-eevdf-1cpu"]
    );
    assert!(!tmp.path().join("never").exists(), "--list writes nothing");
    // Each part on "its machine".
    let mut seen = Vec::new();
    let mut dirs = Vec::new();
    for k in 1..=3 {
        let part = format!("{k}/3");
        let out = tmp.path().join(format!("part{k}"));
        let r = schedlab(&args(&["--partition", &part, "--out", s(&out)]), &[]);
        assert!(
            matches!(r.code, 0..=2),
            "{part}: {}\n{}",
            r.stdout,
            r.stderr
        );
        let g = read(&out.join("gauntlet.json"));
        assert_eq!(g["partition"], part.as_str());
        assert_eq!(names(&g, "matrix"), matrix);
        let ran = names(&g, "runs");
        let planned = schedlab(&args(&["--partition", &part, "--list", "--json"]), &[]);
        let planned: Value = serde_json::from_str(&planned.stdout).unwrap();
        assert_eq!(ran, names(&planned, "runs"), "{part} ran what it listed");
        for n in &ran {
            assert!(!seen.contains(n), "{n} ran in two parts");
            assert!(out.join(n).join("result.json").is_file(), "{n}");
        }
        seen.extend(ran);
        dirs.push(out);
    }
    seen.sort();
    let mut all = matrix.clone();
    all.sort();
    assert_eq!(seen, all, "the parts' union is the matrix");
    // Merged, in any order of directories: the one-machine rows.
    let merged_out = tmp.path().join("merged");
    let m = schedlab(
        &[
            "gauntlet",
            "merge",
            s(&dirs[2]),
            s(&dirs[0]),
            s(&dirs[1]),
            "--out",
            s(&merged_out),
        ],
        &[],
    );
    assert!(matches!(m.code, 0..=2), "{}\n{}", m.stdout, m.stderr);
    let merged = read(&merged_out.join("gauntlet.json"));
    assert_eq!(names(&merged, "runs"), matrix);
    let whole = schedlab(&args(&["--out", s(&tmp.path().join("whole"))]), &[]);
    assert!(matches!(whole.code, 0..=2), "{}", whole.stderr);
    assert_eq!(rows(&m.stdout), rows(&whole.stdout));
    assert_eq!(rows(&m.stdout).len(), 3, "{}", m.stdout);
    // A part missing: its runs are named, and the merge cannot pass.
    let short = schedlab(
        &[
            "gauntlet",
            "merge",
            s(&dirs[0]),
            s(&dirs[1]),
            "--out",
            s(&tmp.path().join("short")),
        ],
        &[],
    );
    assert_eq!(short.code, 2, "{}", short.stderr);
    assert!(short.stderr.contains("spin-eevdf-1cpu"), "{}", short.stderr);
    // The same part twice is refused.
    let twice = schedlab(&["gauntlet", "merge", s(&dirs[0]), s(&dirs[0])], &[]);
    assert_eq!(twice.code, 64, "{}", twice.stderr);
    assert!(twice.stderr.contains("is in both"), "{}", twice.stderr);
}
