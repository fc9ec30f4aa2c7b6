//! Every line schedlab prints goes through here, because `println!` and
//! `eprintln!` panic when their stream is gone: Rust ignores SIGPIPE, so
//! `schedlab compare A B | head -3` gets EPIPE on its next write, and a
//! panic there is exit 101 with a backtrace hint instead of a quiet end.
//!
//! A reader that went away is not an error of the run: the rest of that
//! stream is dropped quietly (EPIPE, or no stream at all: EBADF) and the
//! process goes on and exits with its own code, so a run with `--out`
//! still writes its files. SIGPIPE is not reset to its default on purpose:
//! that would kill a run mid-write, between its VM and its `result.json`.
//! Any other write error (a full disk behind `>file`) is said once on
//! stderr; the exit code stays the run's (the files under `--out` are the
//! record that counts).
//!
//! The workspace denies `clippy::print_stdout` and `print_stderr` in the
//! host crates, so a new `println!` cannot slip past this module.

use std::fmt;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};

static STDOUT_GONE: AtomicBool = AtomicBool::new(false);
static STDERR_GONE: AtomicBool = AtomicBool::new(false);

/// Whether an error means the reader is gone rather than a real failure.
fn reader_gone(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::BrokenPipe || e.raw_os_error() == Some(libc::EBADF)
}

fn write_to(w: &mut impl Write, args: fmt::Arguments<'_>) -> io::Result<()> {
    w.write_fmt(args)?;
    w.flush()
}

/// Write to stdout; false if it was not written (the reader is gone, or
/// the write failed, which is then said on stderr once).
pub fn out(args: fmt::Arguments<'_>) -> bool {
    if STDOUT_GONE.load(Ordering::Relaxed) {
        return false;
    }
    match write_to(&mut io::stdout().lock(), args) {
        Ok(()) => true,
        Err(e) => {
            STDOUT_GONE.store(true, Ordering::Relaxed);
            if !reader_gone(&e) {
                err(format_args!("schedlab: cannot write to stdout: {e}\n"));
            }
            false
        }
    }
}

/// Write to stderr; false if it was not written. Nothing else can be done
/// about a stderr that fails, so it is never reported.
pub fn err(args: fmt::Arguments<'_>) -> bool {
    if STDERR_GONE.load(Ordering::Relaxed) {
        return false;
    }
    match write_to(&mut io::stderr().lock(), args) {
        Ok(()) => true,
        Err(_) => {
            STDERR_GONE.store(true, Ordering::Relaxed);
            false
        }
    }
}

/// Whether stdout failed or its reader went away (later writes are
/// dropped).
pub fn stdout_gone() -> bool {
    STDOUT_GONE.load(Ordering::Relaxed)
}

/// `print!` that never panics (see the module docs).
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {{
        let _ = $crate::stdio::out(format_args!($($arg)*));
    }};
}

/// `println!` that never panics (see the module docs).
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {{
        let _ = $crate::stdio::out(format_args!("{}\n", format_args!($($arg)*)));
    }};
}

/// `eprintln!` that never panics (see the module docs).
#[macro_export]
macro_rules! errln {
    ($($arg:tt)*) => {{
        let _ = $crate::stdio::err(format_args!("{}\n", format_args!($($arg)*)));
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer whose reader has gone.
    struct Closed;
    impl Write for Closed {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::from(io::ErrorKind::BrokenPipe))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_closed_reader_is_an_error_not_a_panic() {
        let e = write_to(&mut Closed, format_args!("x {}\n", 1)).unwrap_err();
        assert!(reader_gone(&e));
        assert!(reader_gone(&io::Error::from_raw_os_error(libc::EBADF)));
        assert!(!reader_gone(&io::Error::from_raw_os_error(libc::ENOSPC)));
        let mut v = Vec::new();
        write_to(&mut v, format_args!("a {}\n", 2)).unwrap();
        assert_eq!(v, b"a 2\n");
    }
}
