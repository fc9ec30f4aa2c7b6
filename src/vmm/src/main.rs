//! `schedlab`: the host side of the scheduler laboratory. It validates the
//! command line, checks the guest images, boots them on KVM, drains the
//! guest's messages from shared memory and reports.

mod cli;
mod exit;
mod images;
mod judge;
mod monitor;
mod ops;
mod policies_cmd;
mod report;
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
        Command::Policies(args) => policies_cmd::main(args),
    };
    ExitCode::from(code)
}
