//! Exit codes and the one error type every layer returns. Each error
//! carries a kind, so the process exit code and the `--json` `error.kind`
//! follow from where the failure came from, never from string matching.

use serde::Serialize;
use std::fmt;

/// Process exit codes (sysexits.h values, so scripts can tell a bad flag
/// from a missing /dev/kvm from a guest that crashed).
pub mod code {
    /// The run finished and its verdict is pass (or it had nothing to judge
    /// against, e.g. `schedlab policies`).
    pub const OK: u8 = 0;
    /// The run was judged and failed a check (a task waited too long, the
    /// shares were unfair, a CPU stalled).
    pub const VERDICT_FAIL: u8 = 1;
    /// The run finished but the data cannot support a verdict (no events,
    /// events lost, no samples).
    pub const INCONCLUSIVE: u8 = 2;
    /// Bad flags or arguments (EX_USAGE).
    pub const USAGE: u8 = 64;
    /// The environment is not usable: /dev/kvm, guest images (EX_UNAVAILABLE).
    pub const ENVIRONMENT: u8 = 69;
    /// The guest failed: fault, panic, deadline, malformed ring
    /// (EX_SOFTWARE); also schedlab's own internal errors (a panic).
    pub const GUEST: u8 = 70;
    /// Interrupted by SIGHUP (128 + 1; see `signals::Signal::exit_code`).
    pub const INTERRUPTED_HUP: u8 = 129;
    /// Interrupted by SIGINT (128 + 2), e.g. Ctrl-C.
    pub const INTERRUPTED_INT: u8 = 130;
    /// Interrupted by SIGTERM (128 + 15).
    pub const INTERRUPTED_TERM: u8 = 143;
}

/// Shown at the end of `schedlab --help`.
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0   the run finished and passed every check (verdict: pass)
  1   the run was judged and failed a check (task starved or waited too long,
      unfair shares, slow wake-ups, a stalled CPU, a hung policy callback)
  2   inconclusive: the run finished but the data cannot support a verdict
  64  usage error (bad flag or value); nothing was started
  69  environment problem (/dev/kvm not usable, guest images missing or stale)
  70  the guest failed (CPU fault, panic, deadline passed, malformed message ring),
      or schedlab hit an internal error
  129, 130, 143
      interrupted by SIGHUP, SIGINT (Ctrl-C) or SIGTERM (128 + the signal): the
      VM was stopped, the report holds what was measured until then (status
      \"interrupted\"; --out is still written); a second signal exits at once
With --json, \"status\" is \"error\" exactly when the code is 64, 69 or 70, and
\"interrupted\" when it is 129, 130 or 143.

A closed stdout (e.g. `| head`) does not change the exit code: the rest of
the output is dropped quietly.";

/// What went wrong, in a form that stays stable for `--json` consumers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    Usage,
    /// /dev/kvm missing, unreadable, or an ioctl the set-up needs failed.
    Kvm,
    /// A guest image is missing, truncated or not a schedlab image.
    Image,
    /// Core and operation images do not fit together (call-table version).
    Abi,
    /// The host itself could not do something (memory, threads).
    Host,
    GuestFault,
    GuestPanic,
    GuestBootError,
    /// The guest marked the run failed without a more specific reason.
    GuestFailed,
    Deadline,
    MalformedRing,
    TripleFault,
    EmulationFailure,
    EntryFailure,
    UnexpectedExit,
    UnexpectedIo,
    /// The guest ended without sending the result the operation expects.
    MissingResult,
}

impl ErrorKind {
    pub fn exit_code(self) -> u8 {
        use ErrorKind::*;
        match self {
            Usage => code::USAGE,
            Kvm | Image | Abi | Host => code::ENVIRONMENT,
            GuestFault | GuestPanic | GuestBootError | GuestFailed | Deadline | MalformedRing
            | TripleFault | EmulationFailure | EntryFailure | UnexpectedExit | UnexpectedIo
            | MissingResult => code::GUEST,
        }
    }
}

/// An error with its kind and a message that names the cause and the fix.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Failure {
    pub kind: ErrorKind,
    pub message: String,
}

impl Failure {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Failure {
            kind,
            message: message.into(),
        }
    }
    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Usage, message)
    }
    pub fn image(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Image, message)
    }
    pub fn kvm(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Kvm, message)
    }
    pub fn host(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Host, message)
    }
    pub fn exit_code(&self) -> u8 {
        self.kind.exit_code()
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

pub type Result<T> = std::result::Result<T, Failure>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_map_to_the_documented_codes() {
        assert_eq!(ErrorKind::Usage.exit_code(), 64);
        assert_eq!(ErrorKind::Kvm.exit_code(), 69);
        assert_eq!(ErrorKind::Abi.exit_code(), 69);
        assert_eq!(ErrorKind::Deadline.exit_code(), 70);
        assert_eq!(ErrorKind::MalformedRing.exit_code(), 70);
        for c in ["0 ", "1 ", "2 ", "64", "69", "70", "129", "130", "143"] {
            assert!(EXIT_CODES_HELP.contains(c));
        }
        for s in crate::signals::Signal::ALL {
            assert!(
                [
                    code::INTERRUPTED_HUP,
                    code::INTERRUPTED_INT,
                    code::INTERRUPTED_TERM
                ]
                .contains(&s.exit_code())
            );
        }
    }

    #[test]
    fn kind_serializes_in_snake_case() {
        let f = Failure::new(ErrorKind::GuestFault, "x");
        assert_eq!(
            serde_json::to_string(&f).unwrap(),
            r#"{"kind":"guest_fault","message":"x"}"#
        );
    }
}
