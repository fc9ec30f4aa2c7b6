//! `schedlab`: the host side of the scheduler laboratory. It validates the
//! command line, checks the guest images, boots them on KVM, drains the
//! guest's messages from shared memory and reports.

mod cli;
mod compare;
mod exit;
mod gauntlet;
mod images;
mod judge;
mod monitor;
mod ops;
mod outputs;
mod policies_cmd;
mod progress;
mod report;
mod scenario;
mod symbols;
mod tlv;
mod vm;

use clap::Parser;
use cli::{Cli, Command};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            // --help and --version are not errors; everything else clap
            // refuses is a usage error (64), like our own validation.
            return ExitCode::from(if e.use_stderr() {
                exit::code::USAGE
            } else {
                exit::code::OK
            });
        }
    };
    let code = match &cli.command {
        Command::Spin(args) => ops::spin::main(args),
        Command::Ipc(args) => ops::ipc::main(args),
        Command::Pingpong(args) => ops::pingpong::main(args),
        Command::Fanout(args) => ops::fanout::main(args),
        Command::Periodic(args) => ops::periodic::main(args),
        Command::Mixed(args) => ops::mixed::main(args),
        Command::Schbench(args) => ops::schbench::main(args),
        Command::Run(args) => scenario::main(args),
        Command::Policies(args) => policies_cmd::main(args),
        Command::Compare(args) => compare::main(args),
        Command::Gauntlet(args) => gauntlet::main(args),
    };
    ExitCode::from(code)
}
