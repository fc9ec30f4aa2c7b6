//! Every corpus and crash input, replayed through its target as an
//! ordinary test: no AFL++ needed, so `make test` (and CI) keep every
//! input AFL++ ever found interesting, and every crash it found fixed.
//! A target that panics fails the test and names the file; one that runs
//! too long fails it too (the host must never hang on bad input).

use schedlab_fuzz::replay::{files, run_file};
use schedlab_fuzz::targets::{TARGETS, Target};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Per target, all its inputs together, in a debug build. Each takes
/// milliseconds; this only catches a hang.
const PATIENCE: Duration = Duration::from_secs(120);

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn target(name: &str) -> Target {
    TARGETS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, f)| *f)
        .unwrap_or_else(|| panic!("no target {name}"))
}

/// Replay `corpus/NAME` and `crashes/NAME`; panics listing every failure.
fn replay(name: &'static str) {
    let corpus = files(&root().join("corpus").join(name));
    assert!(
        !corpus.is_empty(),
        "host/fuzz/corpus/{name}/ has no inputs: the replay would prove nothing"
    );
    let crashes = files(&root().join("crashes").join(name));
    let all: Vec<PathBuf> = corpus.into_iter().chain(crashes).collect();
    let count = all.len();
    let f = target(name);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let started = Instant::now();
        let failures: Vec<String> = all
            .iter()
            .filter_map(|p| {
                run_file(f, p)
                    .err()
                    .map(|why| format!("{}: {why}", p.display()))
            })
            .collect();
        let _ = tx.send((failures, started.elapsed()));
    });
    match rx.recv_timeout(PATIENCE) {
        Ok((failures, took)) => {
            assert!(
                failures.is_empty(),
                "{} of {count} {name} inputs failed:\n{}",
                failures.len(),
                failures.join("\n")
            );
            eprintln!("{name}: {count} inputs replayed in {took:?}");
        }
        Err(_) => panic!("{name}: {count} inputs took over {PATIENCE:?}: a target hangs"),
    }
}

#[test]
fn tlv() {
    replay("tlv");
}

#[test]
fn protocol() {
    replay("protocol");
}

#[test]
fn kstate() {
    replay("kstate");
}

#[test]
fn scenario() {
    replay("scenario");
}

#[test]
fn compare() {
    replay("compare");
}

#[test]
fn bpf_object() {
    replay("bpf_object");
}

/// A target added to the list gets a test here too.
#[test]
fn every_target_is_replayed() {
    let names: Vec<&str> = TARGETS.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        names,
        [
            "tlv",
            "protocol",
            "kstate",
            "scenario",
            "compare",
            "bpf_object"
        ]
    );
}
