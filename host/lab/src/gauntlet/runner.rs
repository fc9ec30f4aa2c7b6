//! Run a gauntlet's jobs as child processes, `plan.parallel` at a time.
//! Each child bounds its own run (its `--timeout` default stops a hung
//! guest), so a worker simply waits for its child.

use super::row::RunRow;
use super::{Job, Plan};
use crate::progress::Progress;
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// Run one job: this same binary with the job's arguments.
fn run_one(exe: &std::path::Path, plan: &Plan, job: &Job) -> RunRow {
    let result = plan
        .out
        .join(&job.name)
        .join(crate::outputs::RESULT_FILE)
        .display()
        .to_string();
    let start = Instant::now();
    let output = Command::new(exe).args(&job.args).output();
    let wall_ms = start.elapsed().as_millis() as u64;
    match output {
        Ok(o) => RunRow::from_output(
            job,
            o.status.code().unwrap_or(-1),
            &String::from_utf8_lossy(&o.stdout),
            &String::from_utf8_lossy(&o.stderr),
            wall_ms,
            result,
        ),
        Err(e) => RunRow::from_output(
            job,
            -1,
            "",
            &format!("cannot start {}: {e}", exe.display()),
            wall_ms,
            result,
        ),
    }
}

/// Every job's row, in the plan's order (not the order they finished).
pub fn run_all(plan: &Plan, json: bool) -> Vec<RunRow> {
    let exe = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => {
            let why = format!("cannot find the schedlab binary to run: {e}");
            return plan
                .jobs
                .iter()
                .map(|j| RunRow::from_output(j, -1, "", &why, 0, String::new()))
                .collect();
        }
    };
    let next = AtomicUsize::new(0);
    let rows: Mutex<Vec<Option<RunRow>>> = Mutex::new(vec![None; plan.jobs.len()]);
    let bar = Progress::counter("gauntlet", plan.jobs.len() as u64, json);
    std::thread::scope(|s| {
        for _ in 0..plan.parallel.min(plan.jobs.len()) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(job) = plan.jobs.get(i) else {
                        break;
                    };
                    let row = run_one(&exe, plan, job);
                    if let Some(b) = &bar {
                        b.inc(format!("{} {}", row.name, row.verdict));
                    }
                    rows.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(row);
                }
            });
        }
    });
    drop(bar);
    let rows = rows.into_inner().unwrap_or_else(|e| e.into_inner());
    rows.into_iter()
        .zip(&plan.jobs)
        .map(|(r, j)| {
            r.unwrap_or_else(|| {
                RunRow::from_output(j, -1, "", "the run never started", 0, String::new())
            })
        })
        .collect()
}
