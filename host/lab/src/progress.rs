//! A progress bar on stderr, so a person watching a long run sees it is
//! alive and roughly when it ends. Only for a person: never under `--json`
//! (scripts read stdout and may capture stderr), never when stderr is not
//! a terminal, never with `--verbose` (guest log lines would tear it), and
//! only for runs expected to take more than a second.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Runs shorter than this get no bar: it would only flash.
pub const MIN_RUN: Duration = Duration::from_secs(1);
const REFRESH: Duration = Duration::from_millis(100);

/// Whether a bar should be shown for a run of `expected` length.
pub fn wanted(expected: Duration, json: bool, verbose: bool, terminal: bool) -> bool {
    terminal && !json && !verbose && expected > MIN_RUN
}

/// A bar for elapsed time against the expected duration, advanced by its
/// own thread; dropping it clears the bar and joins the thread.
pub struct Progress {
    bar: ProgressBar,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Progress {
    /// A time bar for a run expected to take `expected`, or None when no
    /// bar is wanted (see [`wanted`]).
    pub fn for_run(label: &str, expected: Duration, json: bool, verbose: bool) -> Option<Self> {
        if !wanted(expected, json, verbose, std::io::stderr().is_terminal()) {
            return None;
        }
        let total_ms = expected.as_millis().max(1) as u64;
        let bar = ProgressBar::with_draw_target(Some(total_ms), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{prefix} [{bar:40}] {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_prefix(label.to_string());
        let stop = Arc::new(AtomicBool::new(false));
        let (b, s) = (bar.clone(), stop.clone());
        let start = Instant::now();
        let thread = std::thread::Builder::new()
            .name("progress".into())
            .spawn(move || {
                while !s.load(Ordering::Relaxed) {
                    let ms = start.elapsed().as_millis() as u64;
                    b.set_position(ms.min(total_ms));
                    b.set_message(message(ms, total_ms));
                    std::thread::sleep(REFRESH);
                }
            })
            .ok()?;
        Some(Progress {
            bar,
            stop,
            thread: Some(thread),
        })
    }

    /// A time bar for an operation's run: its `--duration` is the
    /// expected length.
    pub fn for_settings(label: &str, s: &crate::settings::RunSettings) -> Option<Self> {
        let expected = Duration::from_nanos(s.duration_ns);
        Self::for_run(label, expected, s.json, s.verbose)
    }

    /// A bar counting `total` items (e.g. a gauntlet's runs), advanced by
    /// [`Progress::inc`]; None when no bar is wanted.
    pub fn counter(label: &str, total: u64, json: bool) -> Option<Self> {
        if json || !std::io::stderr().is_terminal() {
            return None;
        }
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{prefix} [{bar:40}] {pos}/{len} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_prefix(label.to_string());
        bar.tick();
        Some(Progress {
            bar,
            stop: Arc::new(AtomicBool::new(true)),
            thread: None,
        })
    }

    pub fn inc(&self, msg: String) {
        self.bar.set_message(msg);
        self.bar.inc(1);
    }
}

/// "1.2s / 5.0s", then "finishing" once the expected time has passed (boot
/// and reporting come on top of the workload's duration).
fn message(elapsed_ms: u64, total_ms: u64) -> String {
    if elapsed_ms >= total_ms {
        format!("{:.1}s, finishing", elapsed_ms as f64 / 1e3)
    } else {
        format!(
            "{:.1}s / {:.1}s",
            elapsed_ms as f64 / 1e3,
            total_ms as f64 / 1e3
        )
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.bar.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_long_runs_on_a_terminal_without_json_get_a_bar() {
        let long = Duration::from_secs(3);
        assert!(wanted(long, false, false, true));
        assert!(!wanted(long, true, false, true), "--json");
        assert!(!wanted(long, false, true, true), "--verbose");
        assert!(!wanted(long, false, false, false), "not a terminal");
        assert!(!wanted(Duration::from_millis(200), false, false, true));
        assert!(!wanted(MIN_RUN, false, false, true));
    }

    #[test]
    fn the_message_says_when_the_run_is_past_its_expected_end() {
        assert_eq!(message(1_200, 5_000), "1.2s / 5.0s");
        assert_eq!(message(5_300, 5_000), "5.3s, finishing");
    }

    #[test]
    fn no_bar_when_stderr_is_not_a_terminal() {
        // cargo test captures stderr through a pipe.
        if !std::io::stderr().is_terminal() {
            assert!(Progress::for_run("x", Duration::from_secs(5), false, false).is_none());
            assert!(Progress::counter("x", 3, false).is_none());
        }
    }
}
