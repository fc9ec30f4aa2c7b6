//! `schedlab`: the command line over the lab library. It parses the
//! command line with clap and dispatches: one subcommand per operation in
//! the lab's registry, plus the tools (policies, compare, gauntlet).
//! Everything else lives in the `lab` and `vmm` crates. It prints nothing
//! itself but clap's messages (whose errors are ignored, so a closed
//! stdout cannot panic it); reports go through `vmm::stdio`.
#![forbid(unsafe_code)]
#![deny(clippy::print_stdout, clippy::print_stderr)]

use clap::{FromArgMatches, Subcommand};
use lab::{EXIT_CODES_HELP, code, compare, gauntlet, policies, policy_new};
use std::process::ExitCode;

const ABOUT: &str = "schedlab: a laboratory for CPU schedulers";
const LONG_ABOUT: &str = "\
schedlab is a laboratory for CPU schedulers. It boots a tiny bare-metal guest
kernel on KVM in milliseconds, runs a scheduling workload (an \"operation\")
in it on real virtual CPUs, and reports what each task got, read straight out
of guest memory. There is no Linux in the guest.";

/// The subcommands that are not operations (they start no VM of their own).
#[derive(Debug, Subcommand)]
enum Tool {
    /// List the scheduling policies `--policy` accepts.
    Policies(policies::PoliciesArgs),
    /// Make your own policy: `schedlab policy new NAME` writes a policy
    /// crate that `--policy DIR` builds and runs.
    Policy(policy_new::PolicyArgs),
    /// Compare two results (files or directories of result.json from
    /// --out): each metric's change and whether it regressed.
    #[command(after_help = compare::EXIT_CODES)]
    Compare(compare::CompareArgs),
    /// Run a matrix of operations x policies x CPU counts, several VMs at a
    /// time, and print one table of verdicts and key metrics.
    #[command(after_help = gauntlet::EXIT_CODES)]
    Gauntlet(gauntlet::GauntletArgs),
}

/// The whole command line: the registry's operations, then the tools.
fn cli() -> clap::Command {
    let mut cmd = clap::Command::new("schedlab");
    for op in lab::OPERATIONS {
        cmd = cmd.subcommand(op.command());
    }
    // The texts go on last: augment_subcommands sets `about` from the
    // enum's doc comment.
    Tool::augment_subcommands(cmd)
        .version(env!("CARGO_PKG_VERSION"))
        .about(ABOUT)
        .long_about(LONG_ABOUT)
        .after_help(EXIT_CODES_HELP)
        .propagate_version(true)
        .subcommand_required(true)
        .arg_required_else_help(true)
}

fn main() -> ExitCode {
    lab::mark_process_start();
    // A VM's destruction (about 10 ms of the kernel's waiting here) is
    // left to a child after this process exits (see lab::exit).
    lab::defer_teardowns();
    // Only the documented exit codes: a panic (a bug in schedlab, or
    // stdout closed under it) would otherwise exit 101, which no script
    // expects. The default hook has already printed the panic message.
    let code = match std::panic::catch_unwind(dispatch) {
        Ok(code) => code,
        Err(_) => {
            lab::errln!("schedlab: internal error (see the panic message above): exit 70");
            code::GUEST
        }
    };
    lab::exit(code)
}

/// Parse the command line and run what it asks for; the exit code.
fn dispatch() -> u8 {
    let m = match cli().try_get_matches() {
        Ok(m) => m,
        Err(e) => {
            let _ = e.print();
            // --help and --version are not errors; everything else clap
            // refuses is a usage error (64), like our own validation.
            return if e.use_stderr() {
                code::USAGE
            } else {
                code::OK
            };
        }
    };
    let Some((name, sub)) = m.subcommand() else {
        return code::USAGE;
    };
    match lab::operations::by_subcommand(name) {
        Some(op) => op.main(sub),
        None => match Tool::from_arg_matches(&m) {
            Ok(Tool::Policies(a)) => policies::main(&a),
            Ok(Tool::Policy(a)) => policy_new::main(&a),
            Ok(Tool::Compare(a)) => compare::main(&a),
            Ok(Tool::Gauntlet(a)) => gauntlet::main(&a),
            Err(e) => {
                let _ = e.print();
                code::USAGE
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Subcommands that are not operations (they start no VM).
    const TOOL_SUBCOMMANDS: &[&str] = &["policies", "policy", "compare", "gauntlet"];

    /// Subcommands named otherwise than the operation they run.
    const RENAMED_SUBCOMMANDS: &[(&str, &str)] = &[("run", "scenario")];

    #[test]
    fn every_operation_has_a_subcommand_and_vice_versa() {
        let mut subcommands: Vec<String> = cli()
            .get_subcommands()
            .map(|c| c.get_name().to_string())
            .filter(|n| n != "help" && !TOOL_SUBCOMMANDS.contains(&n.as_str()))
            .map(
                |n| match RENAMED_SUBCOMMANDS.iter().find(|(sub, _)| *sub == n) {
                    Some((_, op)) => op.to_string(),
                    None => n,
                },
            )
            .collect();
        subcommands.sort();
        let mut ops: Vec<String> = vmm::images::operation_names().map(str::to_string).collect();
        ops.sort();
        assert!(
            !ops.is_empty(),
            "build.rs found no directories under guest/operations/"
        );
        assert_eq!(
            subcommands, ops,
            "the subcommands must be exactly the operations under guest/operations/"
        );
    }

    #[test]
    fn help_lists_exit_codes_and_hides_test_flags() {
        let help = cli().render_long_help().to_string();
        assert!(help.contains("Exit codes:"));
        assert!(help.contains("spin"));
        assert!(help.starts_with(LONG_ABOUT), "{help}");
        // Each operation's line is its own text, not its flags' doc.
        let short = cli().render_help().to_string();
        for op in lab::OPERATIONS {
            let line = short
                .lines()
                .find(|l| l.trim_start().starts_with(op.subcommand()))
                .unwrap_or_else(|| panic!("no line for {}: {short}", op.subcommand()));
            assert!(!line.contains("Flags every operation takes"), "{line}");
        }
        assert!(
            short.contains("spin      N tasks each repeating"),
            "{short}"
        );
        let mut cmd = cli();
        let spin = cmd
            .find_subcommand_mut("spin")
            .unwrap()
            .render_long_help()
            .to_string();
        assert!(spin.contains("--tasks"));
        assert!(!spin.contains("--test-fault"));
        assert!(!spin.contains("--starve-pid"));
        for flag in [
            "--cpus",
            "--policy",
            "--tick-hz",
            "--idle",
            "--sample-hz",
            "--max-wait",
        ] {
            assert!(spin.contains(flag), "spin --help lacks {flag}");
        }
    }
}
