//! Run a gauntlet's jobs as child processes, `plan.parallel` at a time.
//!
//! Each child bounds its own run (its `--timeout` stops a hung guest), but
//! a child that is itself stuck (stopped with SIGSTOP, hung writing its
//! results) would hold its worker forever, so each worker also watches a
//! deadline of its own: the child's timeout plus a margin for judging and
//! writing. Past it the child gets SIGTERM, then SIGKILL after a grace, and
//! its row is an error that names the deadline.
//!
//! Children run in process groups of their own, so a Ctrl-C on the
//! terminal reaches only the gauntlet, which forwards it once to each
//! running child (a second SIGINT would make a child exit at once, without
//! its results). A child that has not ended a grace after the forwarded
//! signal is killed; no job starts after the signal. Either way every
//! child is reaped before `run_all` returns, so none outlives the
//! gauntlet (unless the gauntlet itself is SIGKILLed: then each child still
//! ends at its own --timeout).

use super::row::RunRow;
use super::{Job, Plan};
use crate::progress::Progress;
use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use vmm::signals::{self, Signal, StopFlag};

/// How often a worker looks at its child, the stop flag and the deadline.
const POLL: Duration = Duration::from_millis(10);
/// How long a child may take to stop and write its results after the
/// gauntlet forwarded a signal to it (its VM stops within milliseconds;
/// judging and drawing a long run take a moment).
pub const INTERRUPT_GRACE: Duration = Duration::from_secs(5);
/// How long a child past its deadline gets between SIGTERM and SIGKILL.
pub const DEADLINE_GRACE: Duration = Duration::from_secs(2);

/// How a worker's wait for its child ended, besides the child's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Watch {
    /// The child ended by itself.
    Ended,
    /// The gauntlet was interrupted and passed `Signal` on; `killed` if
    /// the child then needed SIGKILL.
    Forwarded { sig: Signal, killed: bool },
    /// The child passed its deadline; `killed` if SIGTERM was not enough.
    Deadline { killed: bool },
}

/// What a child left: its status, its output, how the wait ended.
struct Finished {
    status: Option<ExitStatus>,
    stdout: String,
    stderr: String,
    watch: Watch,
}

/// Read a child's pipe to the end on a thread of its own (so a child that
/// fills one pipe while the worker waits cannot deadlock).
fn drain(pipe: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_end(&mut buf);
        }
        String::from_utf8_lossy(&buf).into_owned()
    })
}

/// Wait for `child`, forwarding a stop request and enforcing the deadline.
fn watch(child: &mut Child, deadline: Instant, stop: &StopFlag) -> (Option<ExitStatus>, Watch) {
    let pid = child.id();
    let mut watch = Watch::Ended;
    // When the last polite signal was sent and how long it may take.
    let mut sent: Option<(Instant, Duration)> = None;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return (Some(status), watch),
            Ok(None) => {}
            Err(_) => {
                let _ = child.kill();
                return (child.wait().ok(), watch);
            }
        }
        let now = Instant::now();
        if sent.is_none() {
            if let Some(sig) = stop.requested() {
                let _ = signals::send(pid, sig);
                sent = Some((now, INTERRUPT_GRACE));
                watch = Watch::Forwarded { sig, killed: false };
            } else if now >= deadline {
                let _ = signals::send(pid, Signal::Term);
                sent = Some((now, DEADLINE_GRACE));
                watch = Watch::Deadline { killed: false };
            }
        }
        if let Some((at, grace)) = sent
            && now.duration_since(at) >= grace
        {
            // SIGKILL also ends a stopped process, which SIGTERM does not.
            let _ = child.kill();
            watch = match watch {
                Watch::Forwarded { sig, .. } => Watch::Forwarded { sig, killed: true },
                _ => Watch::Deadline { killed: true },
            };
            return (child.wait().ok(), watch);
        }
        std::thread::sleep(POLL);
    }
}

/// Start one job (this same binary with the job's arguments) and wait for
/// it as [`watch`] says.
fn start_and_wait(exe: &std::path::Path, job: &Job, stop: &StopFlag) -> std::io::Result<Finished> {
    let mut child = Command::new(exe)
        .args(&job.args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()?;
    let deadline = Instant::now() + Duration::from_millis(job.deadline_ms);
    let out = drain(child.stdout.take());
    let err = drain(child.stderr.take());
    let (status, watch) = watch(&mut child, deadline, stop);
    Ok(Finished {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
        watch,
    })
}

/// "exit code 3", "killed by signal 9".
fn describe(status: Option<ExitStatus>) -> String {
    match status {
        Some(s) => match (s.code(), s.signal()) {
            (Some(c), _) => format!("exit code {c}"),
            (None, Some(sig)) => format!("killed by signal {sig}"),
            _ => "ended".into(),
        },
        None => "not reaped".into(),
    }
}

/// Run one job and make its row.
fn run_one(exe: &std::path::Path, plan: &Plan, job: &Job, stop: &StopFlag) -> RunRow {
    let result = plan
        .out
        .join(&job.name)
        .join(crate::outputs::RESULT_FILE)
        .display()
        .to_string();
    let start = Instant::now();
    let finished = start_and_wait(exe, job, stop);
    let wall_ms = start.elapsed().as_millis() as u64;
    let f = match finished {
        Ok(f) => f,
        Err(e) => {
            return RunRow::from_output(
                job,
                -1,
                "",
                &format!("cannot start {}: {e}", exe.display()),
                wall_ms,
                result,
            );
        }
    };
    let code = f.status.and_then(|s| s.code()).unwrap_or(-1);
    let mut row = RunRow::from_output(job, code, &f.stdout, &f.stderr, wall_ms, result);
    match f.watch {
        Watch::Ended => {}
        Watch::Deadline { killed } => {
            row.verdict = "error".into();
            row.note = Some(format!(
                "stopped at its deadline: no report {:.1} s after it started ({}; SIGTERM{}, {})",
                job.deadline_ms as f64 / 1e3,
                job.deadline_why,
                if killed {
                    format!(", then SIGKILL after {} s", DEADLINE_GRACE.as_secs())
                } else {
                    String::new()
                },
                describe(f.status)
            ));
        }
        Watch::Forwarded { sig, killed } => {
            // A child that finished before the signal reached it keeps its
            // own verdict; one that stopped for it, or said nothing, is
            // interrupted.
            if killed || !row.reported {
                row.verdict = "interrupted".into();
                row.note = Some(format!(
                    "interrupted by {}{} ({})",
                    sig.name(),
                    if killed {
                        format!(
                            "; no report {} s later, so it was killed",
                            INTERRUPT_GRACE.as_secs()
                        )
                    } else {
                        String::new()
                    },
                    describe(f.status)
                ));
            }
        }
    }
    row
}

/// Every job's row in the plan's order (not the order they finished);
/// None for a job that never started because `stop` was set first.
pub fn run_all(plan: &Plan, json: bool, stop: &StopFlag) -> Vec<Option<RunRow>> {
    let exe = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => {
            let why = format!("cannot find the schedlab binary to run: {e}");
            return plan
                .jobs
                .iter()
                .map(|j| Some(RunRow::from_output(j, -1, "", &why, 0, String::new())))
                .collect();
        }
    };
    let next = AtomicUsize::new(0);
    let rows: Mutex<Vec<Option<RunRow>>> = Mutex::new(vec![None; plan.jobs.len()]);
    let bar = Progress::counter("gauntlet", plan.jobs.len() as u64, json);
    std::thread::scope(|s| {
        for _ in 0..plan.parallel.min(plan.jobs.len()) {
            s.spawn(|| {
                while stop.requested().is_none() {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(job) = plan.jobs.get(i) else {
                        break;
                    };
                    let row = run_one(&exe, plan, job, stop);
                    if let Some(b) = &bar {
                        b.inc(format!("{} {}", row.name, row.verdict));
                    }
                    rows.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(row);
                }
            });
        }
    });
    drop(bar);
    rows.into_inner().unwrap_or_else(|e| e.into_inner())
}
