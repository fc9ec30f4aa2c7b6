//! Fuzz targets for everything the host reads that it did not write: the
//! guest's TLV rings and protobuf messages, its kernel-state records and
//! event rings, and the files people hand it (scenarios, results to
//! compare). The rule they check is the host's: bound every length and
//! every read, count and report bad data, never panic, never hang.
//!
//! Each target is one function of the input bytes in [`targets`]. The
//! same function runs three ways: under AFL++ (`make fuzz`, a binary per
//! target built by cargo-afl with the `afl` feature), as a plain binary
//! replaying files (`cargo run -p schedlab-fuzz --bin NAME -- FILE`, to
//! reproduce a crash with a backtrace), and in `cargo test`, which
//! replays every file in `corpus/NAME/` and `crashes/NAME/`.
//!
//! The targets reach the code under test through its public API, or
//! through a small `fuzz_entry` where the parser's modules are private
//! (`lab::scenario`, `lab::compare`), so no parser code is copied here.
#![forbid(unsafe_code)]

pub mod input;
pub mod replay;
pub mod targets;

/// `main` for a target's binary: AFL++'s persistent loop with the `afl`
/// feature, else a replay of the files (or directories) on the command
/// line.
#[macro_export]
macro_rules! fuzz_main {
    ($target:path) => {
        #[cfg(feature = "afl")]
        fn main() {
            afl::fuzz!(|data: &[u8]| {
                $target(data);
            });
        }

        #[cfg(not(feature = "afl"))]
        fn main() -> std::process::ExitCode {
            $crate::replay::main($target)
        }
    };
}
