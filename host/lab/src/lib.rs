//! schedlab's laboratory, over the VMM library: operations (one registry,
//! [`operations::OPERATIONS`]), the judge, reports, outputs, comparisons,
//! gauntlets and scenario files. The `schedlab` binary is a thin command
//! line over this crate; a Rust test can use it directly:
//!
//! ```no_run
//! let run = lab::Run::new("spin")
//!     .unwrap()
//!     .cpus(1)
//!     .policy("vtime")
//!     .flag("--tasks", "3")
//!     .flag("--weights", "1,2,4");
//! let report = run.run().expect("valid flags");
//! assert_eq!(report.exit_code(), 0, "{:?}", report.verdict);
//! ```
//!
//! Imports point one way: binary -> lab -> vmm -> abi. Nothing here knows
//! the binary.
//!
//! Nothing prints with `println!`/`eprintln!`, which panic when the reader
//! of a pipe has gone (`schedlab compare A B | head`): everything goes
//! through `vmm::stdio` (`vmm::outln!`, `vmm::errln!`).
#![forbid(unsafe_code)]
#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod compare;
pub mod gauntlet;
pub mod judge;
pub mod operations;
pub mod outputs;
pub mod policies;
pub mod policy_new;
pub mod progress;
pub mod report;
pub mod rtapp;
pub mod run;
pub mod scenario;
pub mod settings;

pub use operations::{OPERATIONS, Operation};

static PROCESS_START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();

/// Mark the process's start (the binary calls it first thing), so a
/// run's `timing.prepare_us` counts from there.
pub fn mark_process_start() {
    let _ = PROCESS_START.set(std::time::Instant::now());
}

/// Time since [`mark_process_start`], µs, if it was called.
pub(crate) fn since_process_start_us() -> Option<u64> {
    PROCESS_START.get().map(|t| t.elapsed().as_micros() as u64)
}
pub use report::Report;
pub use run::Run;
pub use vmm::exit::{EXIT_CODES_HELP, ErrorKind, Failure, code};
/// Printing that never panics on a closed stream (see `vmm::stdio`).
pub use vmm::vm::teardown::{defer_teardowns, exit};
pub use vmm::{errln, out, outln};

/// Parse `argv` (`schedlab SUBCOMMAND FLAGS...`) as one subcommand's flags.
#[cfg(test)]
pub(crate) fn parse_args<A: clap::Args + clap::FromArgMatches>(argv: &[&str]) -> A {
    let cmd = A::augment_args(clap::Command::new("subcommand").no_binary_name(true));
    let m = cmd.try_get_matches_from(&argv[2..]).unwrap();
    A::from_arg_matches(&m).unwrap()
}
