//! Stop requests from the terminal or a supervisor: SIGINT, SIGTERM and
//! SIGHUP set a flag that the run loop polls (it already wakes every
//! millisecond to drain the guest's rings), so an interrupted run stops
//! its VM the way a deadline does and keeps everything collected, instead
//! of dying with its results unwritten.
//!
//! The handlers come from `signal-hook` rather than a hand-written
//! `sigaction`: it is the maintained crate for exactly this (handlers that
//! only touch atomics, so they are async-signal-safe; chaining with any
//! handler already installed; a "second signal exits at once" action), and
//! it keeps the one piece of signal code here that needs `unsafe` (the
//! vCPU kick in `vm::vcpu`) from growing.
//!
//! The first signal only sets the flag. A second one (any of the three)
//! exits at once with that signal's code: someone who pressed Ctrl-C twice
//! does not want to wait for the pictures.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// The signals that ask a run to stop, and how the process then exits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Signal {
    #[serde(rename = "SIGHUP")]
    Hup,
    #[serde(rename = "SIGINT")]
    Int,
    #[serde(rename = "SIGTERM")]
    Term,
}

impl Signal {
    pub const ALL: [Signal; 3] = [Signal::Hup, Signal::Int, Signal::Term];

    pub fn number(self) -> libc::c_int {
        match self {
            Signal::Hup => libc::SIGHUP,
            Signal::Int => libc::SIGINT,
            Signal::Term => libc::SIGTERM,
        }
    }

    pub fn from_number(n: libc::c_int) -> Option<Signal> {
        Signal::ALL.into_iter().find(|s| s.number() == n)
    }

    /// "SIGINT", as `kill -l` and the JSON name it.
    pub fn name(self) -> &'static str {
        match self {
            Signal::Hup => "SIGHUP",
            Signal::Int => "SIGINT",
            Signal::Term => "SIGTERM",
        }
    }

    /// 128 + the signal number (129, 130, 143): what a shell reports for a
    /// command the signal ended, so scripts treat an interrupted run the
    /// same whether it died or stopped cleanly.
    pub fn exit_code(self) -> u8 {
        128 + self.number() as u8
    }
}

/// A stop request, shared by whoever may ask (the signal handlers, a test)
/// and the run loop that honours it. Cloning shares the request.
#[derive(Clone, Default)]
pub struct StopFlag(Arc<AtomicUsize>);

impl StopFlag {
    /// A flag nobody has set; only [`StopFlag::request`] sets it.
    pub fn new() -> Self {
        Self::default()
    }

    /// The signal that asked to stop, if one has (the last one, if several).
    pub fn requested(&self) -> Option<Signal> {
        match self.0.load(Ordering::SeqCst) {
            0 => None,
            n => Signal::from_number(n as libc::c_int),
        }
    }

    /// Ask to stop as if `sig` had arrived.
    pub fn request(&self, sig: Signal) {
        self.0.store(sig.number() as usize, Ordering::SeqCst);
    }
}

impl std::fmt::Debug for StopFlag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StopFlag({:?})", self.requested())
    }
}

/// The process's flag, once its handlers are installed (a lock, not a
/// `OnceLock`, so two threads installing at once register once).
static INSTALLED: Mutex<Option<StopFlag>> = Mutex::new(None);

/// Install the handlers for SIGINT, SIGTERM and SIGHUP (once per process;
/// later calls return the same flag). From then on the first of them sets
/// the flag and a second one exits the process at once with 128 + its
/// number.
pub fn install() -> io::Result<StopFlag> {
    let mut installed = INSTALLED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(f) = &*installed {
        return Ok(f.clone());
    }
    let flag = StopFlag::new();
    // Armed by the first signal; the shutdown action is registered first so
    // it sees the flag as it was before this signal set it.
    let armed = Arc::new(AtomicBool::new(false));
    for sig in Signal::ALL {
        let n = sig.number();
        signal_hook::flag::register_conditional_shutdown(
            n,
            i32::from(sig.exit_code()),
            armed.clone(),
        )?;
        signal_hook::flag::register(n, armed.clone())?;
        signal_hook::flag::register_usize(n, flag.0.clone(), n as usize)?;
    }
    *installed = Some(flag.clone());
    Ok(flag)
}

/// Send `sig` to process `pid` (a child this process started).
pub fn send(pid: u32, sig: Signal) -> io::Result<()> {
    let pid = libc::pid_t::try_from(pid)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "pid out of range"))?;
    if pid <= 0 {
        // 0 and negative pids name process groups: never what a caller
        // holding a child's id means.
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a single process",
        ));
    }
    // SAFETY: kill(2) with a positive pid and a valid signal number has no
    // memory effects in this process; it only sends the signal.
    if unsafe { libc::kill(pid, sig.number()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_are_128_plus_the_signal() {
        assert_eq!(Signal::Hup.exit_code(), 129);
        assert_eq!(Signal::Int.exit_code(), 130);
        assert_eq!(Signal::Term.exit_code(), 143);
        for s in Signal::ALL {
            assert_eq!(Signal::from_number(s.number()), Some(s));
            assert_eq!(
                serde_json::to_value(s).unwrap(),
                serde_json::Value::from(s.name())
            );
        }
        assert_eq!(Signal::from_number(libc::SIGUSR1), None);
    }

    #[test]
    fn a_request_is_seen_by_every_clone() {
        let f = StopFlag::new();
        let g = f.clone();
        assert_eq!(g.requested(), None);
        f.request(Signal::Term);
        assert_eq!(g.requested(), Some(Signal::Term));
        assert_eq!(StopFlag::new().requested(), None, "a new flag is clear");
    }

    #[test]
    fn send_refuses_process_groups() {
        assert!(send(0, Signal::Term).is_err());
        assert!(send(u32::MAX, Signal::Term).is_err());
    }
}
