//! schedlab's VMM: everything that touches KVM and guest memory. It boots
//! the guest kernel and one operation image, runs the vCPU threads, drains
//! the guest's message rings and kernel-state records from shared memory,
//! watches the run (the monitor) and says how it ended.
//!
//! It takes a [`vm::run::RunRequest`] it owns and returns a
//! [`vm::run::RunOutcome`]; it knows nothing of the command line, JSON or
//! reports (those are the lab's). Imports point one way: the `schedlab`
//! binary uses the lab, the lab uses this crate, this crate uses the ABI.
//!
//! Nothing prints with `println!`/`eprintln!` (they panic on a closed
//! stream): everything goes through [`stdio`].
#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod exit;
pub mod files;
#[cfg(test)]
mod guest_checks;
pub mod images;
pub mod monitor;
pub mod policy_image;
pub mod signals;
pub mod stdio;
pub mod symbols;
pub mod tlv;
pub mod units;
pub mod vm;

pub use exit::{ErrorKind, Failure, Result};
pub use vm::run::{LogEcho, RunOutcome, RunRequest, RunSpec, run};
