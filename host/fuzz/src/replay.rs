//! Running a target over files instead of under AFL++: the replay tests
//! (every corpus and crash file), and the binaries built without the
//! `afl` feature (reproducing one crash with a backtrace).

use crate::targets::Target;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The files directly in `dir`, sorted; none if it does not exist (a
/// target AFL++ never crashed has no crash directory).
pub fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_file() && !is_note(p))
        .collect();
    out.sort();
    out
}

/// README files beside the inputs explain them; they are not inputs.
fn is_note(p: &Path) -> bool {
    p.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("README"))
}

/// Run `target` on `file`'s bytes; Err says why it failed (the panic's
/// message, or the file could not be read).
pub fn run_file(target: Target, file: &Path) -> Result<(), String> {
    let bytes = std::fs::read(file).map_err(|e| format!("cannot read: {e}"))?;
    catch_unwind(AssertUnwindSafe(|| target(&bytes))).map_err(|p| {
        p.downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "panicked".into())
    })
}

/// `main` of a target binary built without AFL++: run every file (or
/// every file in every directory) named on the command line.
pub fn main(target: Target) -> ExitCode {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    if args.is_empty() {
        eprintln!(
            "usage: TARGET FILE|DIR...  (replays inputs; `make fuzz` runs the target under AFL++)"
        );
        return ExitCode::from(64);
    }
    let mut failed = 0;
    for arg in &args {
        let list = if arg.is_dir() {
            files(arg)
        } else {
            vec![arg.clone()]
        };
        for f in list {
            match run_file(target, &f) {
                Ok(()) => println!("ok {}", f.display()),
                Err(why) => {
                    failed += 1;
                    println!("FAILED {}: {why}", f.display());
                }
            }
        }
    }
    if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
