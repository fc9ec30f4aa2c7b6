//! Operations: each turns its flags into the config its guest image reads
//! and its guest's result into report rows. The steps every operation
//! shares (images, VM run, report) live here so an operation is only its
//! own flags, config and result.

pub mod affinity;
pub mod fanout;
pub mod ipc;
pub mod mixed;
pub mod periodic;
pub mod pingpong;
pub mod spin;
pub mod workload;

use crate::cli::RunSettings;
use crate::exit::{Failure, code};
use crate::images;
use crate::judge::{self, JudgeInput};
use crate::outputs;
use crate::progress::Progress;
use crate::report::{self, Report, TaskRow, Totals};
use crate::vm::run::{self, RunOutcome, RunRequest};
use analysis::{Replay, TaskMeta};

/// An operation ready to run.
pub struct Prepared {
    pub name: &'static str,
    /// The `*Config` bytes written at OPERATION_CONFIG_ADDR.
    pub config: Vec<u8>,
    /// The config magic the operation image must say it reads.
    pub config_magic: u32,
    pub config_json: serde_json::Value,
    /// First line of the human report.
    pub headline: String,
    pub settings: RunSettings,
}

/// What an operation makes of a run's outcome.
#[derive(Debug, Default)]
pub struct Summary {
    pub tasks: Vec<TaskRow>,
    pub totals: Option<Totals>,
    pub elapsed_ns: Option<u64>,
    /// A failure the result shows even though the guest ended cleanly.
    pub failure: Option<Failure>,
    /// The tasks whose shares and waits the verdict judges.
    pub judged: Vec<TaskMeta>,
    /// Checks the operation's own result makes (e.g. ipc's); with no
    /// judged tasks they are the verdict.
    pub checks: Vec<analysis::Check>,
    /// The operation's own result numbers, reported as `result`.
    pub extra: Option<serde_json::Value>,
    /// The same numbers for people: lines the human report prints after
    /// the task table (for operations whose result is not per-task units).
    pub lines: Vec<String>,
}

/// Images, VM, report: returns the process exit code.
pub fn execute(p: &Prepared, summarize: impl FnOnce(&RunOutcome) -> Summary) -> u8 {
    if let Err(f) = outputs::prepare(&p.settings) {
        return usage_error(p.name, p.settings.json, &f);
    }
    let mut report = Report::new(p.name, p.config_json.clone());
    let progress = Progress::for_settings(p.name, &p.settings);
    let mut outcome = match images::load(p.name, p.config_magic) {
        Ok(imgs) => {
            report.versions.call_table = Some(imgs.core.stamp.call_table_version);
            report.versions.call_table_needed = Some(imgs.op.stamp.call_table_version);
            report.versions.core_abi = Some((&imgs.core.stamp).into());
            report.versions.operation_abi = Some((&imgs.op.stamp).into());
            let req = RunRequest {
                images: &imgs,
                config: &p.config,
                settings: &p.settings,
            };
            run::run(&req)
        }
        Err(f) => RunOutcome {
            failure: Some(f),
            ..Default::default()
        },
    };
    drop(progress);
    let summary = summarize(&outcome);
    // Judged whenever the VM ran, failed or not: partial metrics of a
    // crashed run are still worth printing.
    let mut monitor = outcome.monitor.take();
    // The events replayed once, for the verdict and the pictures alike.
    let replay = monitor
        .as_ref()
        .map(|m| Replay::from_events(&m.events, p.settings.sched.cpus));
    let seen = monitor
        .as_mut()
        .map(|m| (m.stats.clone(), std::mem::take(&mut m.final_cpus)));
    let judgement = monitor.zip(replay.as_ref()).map(|(m, r)| {
        judge::judge(
            m,
            r,
            &JudgeInput {
                cpus: p.settings.sched.cpus,
                tsc_khz: outcome.tsc_khz,
                settings: &p.settings.judge,
                judged: &summary.judged,
                op_checks: &summary.checks,
                finished: outcome.finished,
                ended_early: outcome.ended_early.as_ref(),
            },
        )
    });
    let trace = outputs::trace(&p.settings, replay.as_ref(), outcome.tsc_khz);
    report.fill(outcome, summary, seen, judgement);
    let kept = outputs::keep(&p.settings, &mut report, trace.as_ref(), &p.headline);
    let code = report::print(&report, &p.headline, p.settings.json);
    outputs::announce(kept.as_deref(), p.settings.json);
    code
}

/// A flag that clap accepted but validation refused: exit 64, and in
/// `--json` mode still exactly one JSON object.
pub fn usage_error(name: &str, json: bool, f: &Failure) -> u8 {
    if json {
        let mut r = Report::new(name, serde_json::Value::Null);
        r.set_failure(f.clone());
        report::print(&r, "", true);
    } else {
        eprintln!("schedlab {name}: {f}");
        eprintln!("(see `schedlab {name} --help`)");
    }
    code::USAGE
}

/// The operation's worker tasks as the events saw them spawned, in order:
/// every spawn but the first (the operation's own main task).
pub fn worker_spawns(events: &[analysis::Event]) -> Vec<&analysis::Event> {
    let mut spawns: Vec<&analysis::Event> = events
        .iter()
        .filter(|e| e.kind == abi::kstate::EV_SPAWN)
        .collect();
    spawns.sort_by_key(|e| e.tsc);
    spawns.into_iter().skip(1).collect()
}
