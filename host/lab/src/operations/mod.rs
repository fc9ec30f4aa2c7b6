//! Operations: each is one guest image (`guest/operations/NAME`) and one
//! host module here implementing [`Operation`]: its flags, how they become
//! the config its guest reads, and how its guest's result becomes report
//! rows. [`OPERATIONS`] is the one list: it makes the subcommands, the
//! dispatch and the gauntlet's choices. The steps every operation shares
//! (images, VM run, judge, report, outputs) live here.

pub mod affinity;
pub mod common;
pub mod fanout;
pub mod ipc;
pub mod mixed;
pub mod periodic;
pub mod pingpong;
pub mod schbench;
pub mod spin;

use crate::judge::{self, JudgeInput};
use crate::outputs;
use crate::progress::Progress;
pub use crate::report::Summary;
use crate::report::{self, Report};
use crate::settings::RunSettings;
use analysis::Replay;
use clap::{ArgMatches, FromArgMatches};
use std::marker::PhantomData;
use vmm::exit::{EXIT_CODES_HELP, Failure, Result};
use vmm::images;
use vmm::signals::{self, StopFlag};
use vmm::vm::run::{self, LogEcho, RunOutcome, RunRequest, RunSpec};

/// Every operation the host offers, one line each, in `--help` order. A
/// unit test keeps it equal to the directories under `guest/operations/`.
pub static OPERATIONS: &[&dyn Entry] = &[
    &Registered::<spin::Spin>::NEW,
    &Registered::<ipc::Ipc>::NEW,
    &Registered::<pingpong::Pingpong>::NEW,
    &Registered::<fanout::Fanout>::NEW,
    &Registered::<periodic::Periodic>::NEW,
    &Registered::<mixed::Mixed>::NEW,
    &Registered::<schbench::Schbench>::NEW,
    &Registered::<crate::scenario::Scenario>::NEW,
];

/// The operation a subcommand runs.
pub fn by_subcommand(name: &str) -> Option<&'static dyn Entry> {
    OPERATIONS.iter().copied().find(|o| o.subcommand() == name)
}

/// An operation, as its host module implements it.
pub trait Operation: 'static {
    /// The guest image it runs: its directory under `guest/operations/`.
    const NAME: &'static str;
    /// The subcommand that runs it.
    const SUBCOMMAND: &'static str = Self::NAME;
    /// One line for `schedlab --help`.
    const ABOUT: &'static str;
    /// More for `schedlab NAME --help` (None: ABOUT alone).
    const LONG_ABOUT: Option<&'static str> = None;
    /// The config magic its image must say it reads.
    const CONFIG_MAGIC: u32;
    /// The flags a gauntlet run of it gets unless `--duration` is given;
    /// None keeps it out of the gauntlet (it needs a file, say). One
    /// second: over 200 ms a 1 ms slice's jitter alone can put a share
    /// 10 % off, and the verdict then says inconclusive instead of
    /// judging the policy.
    const GAUNTLET_FLAGS: Option<&'static [&'static str]> = Some(&["--duration", "1s"]);
    /// Its flags (flattening [`crate::settings::CommonArgs`]).
    type Args: clap::Args + FromArgMatches;
    /// Its validated flags.
    type Plan: 'static;
    /// Flags to plan and run settings; every error is a usage error
    /// (exit 64) found before any VM starts. `matches` says which flags
    /// the command line gave (a scenario file's settings yield to them).
    fn plan(args: &Self::Args, matches: &ArgMatches) -> Result<(Self::Plan, RunSettings)>;
    /// The `*Config` bytes its guest reads at OPERATION_CONFIG_ADDR.
    fn config(plan: &Self::Plan, s: &RunSettings) -> Vec<u8>;
    /// Its own keys of the report's `config` (the run settings are added
    /// by [`config_json`]).
    fn config_json(plan: &Self::Plan, s: &RunSettings) -> serde_json::Value;
    /// The first line of the human report.
    fn headline(plan: &Self::Plan, s: &RunSettings) -> String;
    /// Report rows, checks and numbers from the run's outcome.
    fn summarize(plan: &Self::Plan, out: &RunOutcome) -> Summary;
    /// A last touch to its subcommand (extra help).
    fn command(cmd: clap::Command) -> clap::Command {
        cmd
    }
}

/// What the registry needs of an operation, object-safe.
pub trait Entry: Sync {
    fn name(&self) -> &'static str;
    fn subcommand(&self) -> &'static str;
    /// Its subcommand with every flag.
    fn command(&self) -> clap::Command;
    fn gauntlet_flags(&self) -> Option<&'static [&'static str]>;
    /// Parse and validate its subcommand's matches into a run.
    fn prepare(&self, m: &ArgMatches) -> Result<Prepared>;
    /// `schedlab SUBCOMMAND ...`: validate, run, print; the exit code.
    fn main(&self, m: &ArgMatches) -> u8 {
        let json = m.try_get_one::<bool>("json").ok().flatten().copied() == Some(true);
        match self.prepare(m) {
            Ok(p) => execute(p),
            Err(f) => usage_error(self.name(), self.subcommand(), json, &f),
        }
    }
}

/// The registry's handle on operation `O`.
pub struct Registered<O>(PhantomData<fn() -> O>);

impl<O> Registered<O> {
    pub const NEW: Self = Registered(PhantomData);
}

impl<O: Operation> Entry for Registered<O> {
    fn name(&self) -> &'static str {
        O::NAME
    }
    fn subcommand(&self) -> &'static str {
        O::SUBCOMMAND
    }
    fn command(&self) -> clap::Command {
        // The texts go on after the flags: augment_args sets `about` from
        // the flags' own doc comments.
        let cmd = <O::Args as clap::Args>::augment_args(clap::Command::new(O::SUBCOMMAND))
            .about(O::ABOUT)
            .long_about(O::LONG_ABOUT)
            .after_help(EXIT_CODES_HELP);
        O::command(cmd)
    }
    fn gauntlet_flags(&self) -> Option<&'static [&'static str]> {
        O::GAUNTLET_FLAGS
    }
    fn prepare(&self, m: &ArgMatches) -> Result<Prepared> {
        let args = O::Args::from_arg_matches(m).map_err(|e| Failure::usage(e.to_string()))?;
        let (plan, settings) = O::plan(&args, m)?;
        Ok(prepared::<O>(plan, settings))
    }
}

/// Operation `O`'s run of `plan` under `settings`, ready for [`run`].
pub fn prepared<O: Operation>(plan: O::Plan, settings: RunSettings) -> Prepared {
    Prepared {
        name: O::NAME,
        subcommand: O::SUBCOMMAND,
        config: O::config(&plan, &settings),
        config_magic: O::CONFIG_MAGIC,
        config_json: config_json(&settings, O::config_json(&plan, &settings)),
        headline: O::headline(&plan, &settings),
        settings,
        summarize: Box::new(move |out| O::summarize(&plan, out)),
    }
}

/// The run settings every operation's `config` JSON carries, plus `own`
/// (whose keys win): one helper, so `compare` sees every setting of
/// every operation.
pub fn config_json(s: &RunSettings, own: serde_json::Value) -> serde_json::Value {
    let sched = &s.sched;
    let judge = &s.judge;
    let mut v = serde_json::json!({
        "cpus": sched.cpus,
        "policy": sched.policy.name,
        "policy_arg": sched.policy_arg,
        "policy_path": sched.policy.path.as_ref().map(|p| p.display().to_string()),
        "slice_ns": s.slice_ns,
        "tick_hz": sched.tick_hz,
        "idle": sched.idle.name(),
        "sample_hz": judge.sample_hz,
        "stall_threshold_ns": s.stall_threshold_ns(),
        "max_wait_ns": judge.max_wait_ns,
        "max_fairness_error": judge.max_fairness_error,
        "max_wake_p99_ns": judge.max_wake_p99_ns,
        "shares_judged": judge.shares.map(|s| s.name()),
        "wait_judged": judge.wait_judged,
        "seed": s.seed,
        "timeout_ns": s.timeout.as_nanos() as u64,
        "mem_bytes": s.mem_bytes,
    });
    if let (Some(o), serde_json::Value::Object(own)) = (v.as_object_mut(), own) {
        o.extend(own);
    }
    v
}

/// An operation ready to run: its config and how to read its result.
pub struct Prepared {
    pub name: &'static str,
    /// The subcommand that runs it (`run` for `scenario`), for messages
    /// that point at its `--help`.
    pub subcommand: &'static str,
    /// The `*Config` bytes written at OPERATION_CONFIG_ADDR.
    pub config: Vec<u8>,
    /// The config magic the operation image must say it reads.
    pub config_magic: u32,
    pub config_json: serde_json::Value,
    /// First line of the human report.
    pub headline: String,
    pub settings: RunSettings,
    /// The operation's reading of the outcome.
    pub summarize: Box<dyn FnOnce(&RunOutcome) -> Summary>,
}

impl RunSettings {
    /// The VMM's description of this run.
    pub fn spec(&self) -> RunSpec {
        RunSpec {
            cpus: self.sched.cpus,
            mem_bytes: self.mem_bytes,
            slice_ns: self.slice_ns,
            seed: self.seed,
            sched: self.sched.boot(),
            timeout: self.timeout,
            sample_hz: self.judge.sample_hz,
            stall_threshold_ns: self.stall_threshold_ns(),
            max_wait_ns: self.judge.live_max_wait_ns(),
            echo: match (self.json, self.verbose) {
                (true, _) => LogEcho::Off,
                (false, true) => LogEcho::All,
                (false, false) => LogEcho::Problems,
            },
        }
    }
}

/// Images, VM, judge, outputs: the report, whatever happened to the run.
/// Prints nothing (but the progress bar on a terminal). Err only when the
/// `--out` directory cannot be made (a usage error: no VM started). No
/// signal stops it (see [`run_until`]): a library caller's process keeps
/// its own signal handling.
pub fn run(p: Prepared) -> Result<Report> {
    run_until(p, None)
}

/// [`run`], stopped early when `stop` is set (by a signal: see
/// `vmm::signals`): the VM is stopped as at a deadline, and the report,
/// its verdict and the `--out` files are made from what was measured until
/// then, with status "interrupted".
pub fn run_until(p: Prepared, stop: Option<&StopFlag>) -> Result<Report> {
    let prepare_us = crate::since_process_start_us();
    outputs::prepare(&p.settings)?;
    let progress = Progress::for_settings(p.name, &p.settings);
    let t = std::time::Instant::now();
    let loaded = images::load(p.name, p.config_magic);
    let images_us = t.elapsed().as_micros() as u64;
    let mut outcome = match &loaded {
        Ok(imgs) => run::run(&RunRequest {
            images: imgs,
            config: &p.config,
            policy: &p.settings.sched.policy.image,
            policy_data: p.settings.sched.policy.data(),
            spec: p.settings.spec(),
            stop,
        }),
        Err(f) => RunOutcome {
            failure: Some(f.clone()),
            ..Default::default()
        },
    };
    drop(progress);
    outcome.timing.prepare_us = prepare_us;
    outcome.timing.images_us = Some(images_us);
    let t = std::time::Instant::now();
    let mut report = conclude(p, loaded.as_ref().ok(), outcome);
    report.timing.analyse_us = Some(t.elapsed().as_micros() as u64);
    Ok(report)
}

/// A BPF object's run that the runtime ended: say it in the object's
/// terms. The guest's message names the runtime image ("policy bpf: ...");
/// the report names the object, and a sandbox fault gets its program,
/// instruction and C source line from the object's line info.
fn explain_bpf_failure(
    name: &str,
    o: &crate::settings::bpf_object::BpfOutcome,
    outcome: &mut RunOutcome,
) {
    let Some(f) = outcome.failure.as_mut() else {
        return;
    };
    let prefix = format!("policy {}: ", crate::settings::bpf_object::RUNTIME_POLICY);
    if let Some(rest) = f.message.strip_prefix(&prefix) {
        f.message = format!("policy {name}: {rest}");
    }
    if let Some(fault) = &o.fault {
        // "policy NAME: in CALLBACK: " stays; the runtime's own words go.
        let head = match f.message.find(": bpf program") {
            Some(i) => f.message[..i].to_string(),
            None => format!("policy {name}"),
        };
        f.message = format!("{head}: {}", fault.message());
    }
}

/// Everything after the VM: the operation's summary, the pictures' trace,
/// the judge, the report and `--out`'s files. Separate from [`run`] so
/// the memory a long run's data costs here can be measured on a made-up
/// outcome at the monitor's caps (host/lab/tests/memory.rs).
pub fn conclude(p: Prepared, imgs: Option<&images::Images>, mut outcome: RunOutcome) -> Report {
    let Prepared {
        name,
        config_json,
        headline,
        settings,
        summarize,
        ..
    } = p;
    let mut report = Report::new(name, config_json);
    report.topology = Some(crate::report::topology::TopologyInfo::new(
        settings.sched.topology,
        settings.sched.topology_preset,
    ));
    report.bpf = settings.sched.policy.bpf.clone().map(|b| {
        let o = b.outcome(&outcome.read_back);
        explain_bpf_failure(&settings.sched.policy.name, &o, &mut outcome);
        o
    });
    if let Some(imgs) = imgs {
        report.versions.call_table = Some(imgs.core.stamp.call_table_version);
        report.versions.call_table_needed = Some(imgs.op.stamp.call_table_version);
        report.versions.core_abi = Some((&imgs.core.stamp).into());
        report.versions.operation_abi = Some((&imgs.op.stamp).into());
    }
    let summary = summarize(&outcome);
    // Judged whenever the VM ran, failed or not: partial metrics of a
    // crashed run are still worth printing.
    let mut monitor = outcome.monitor.take();
    // The events replayed once, for the verdict and the pictures alike.
    let replay = monitor
        .as_ref()
        .map(|m| Replay::from_events(&m.events, settings.sched.cpus));
    let seen = monitor
        .as_mut()
        .map(|m| (m.stats.clone(), std::mem::take(&mut m.final_cpus)));
    // Exported before the judge takes the events.
    let exported = monitor.as_ref().and_then(|m| {
        outputs::export(
            &settings,
            &m.events,
            outcome.tsc_khz,
            &report.operation,
            &summary.names,
        )
    });
    let judgement = monitor.zip(replay.as_ref()).map(|(m, r)| {
        judge::judge(
            m,
            r,
            &JudgeInput {
                cpus: settings.sched.cpus,
                topology: Some(settings.sched.topology),
                quantum_ns: settings.slice_ns
                    + 1_000_000_000 / u64::from(settings.sched.tick_hz.max(1)),
                tsc_khz: outcome.tsc_khz,
                settings: &settings.judge,
                judged: &summary.judged,
                op_checks: &summary.checks,
                finished: outcome.finished,
                ended_early: outcome.ended_early.as_ref(),
                interrupted: outcome.interrupted,
            },
        )
    });
    let trace = outputs::trace(&settings, replay.as_ref(), outcome.tsc_khz);
    report.fill(outcome, summary, seen, judgement);
    report.kept = outputs::keep(
        &settings,
        &mut report,
        trace.as_ref(),
        exported.as_ref(),
        &headline,
    );
    report.headline = headline;
    report
}

/// Run, print the report, say where it was kept: the process exit code.
/// SIGINT, SIGTERM and SIGHUP stop the run (see [`run_until`]) and make the
/// exit code 128 + the signal; without handlers (they could not be
/// installed, which is said) a signal ends the process as it always did.
pub fn execute(p: Prepared) -> u8 {
    let (name, subcommand, json) = (p.name, p.subcommand, p.settings.json);
    let stop = signals::install()
        .map_err(|e| {
            vmm::errln!(
                "schedlab {subcommand}: cannot watch for SIGINT/SIGTERM/SIGHUP ({e}); a signal \
                 will end the run without its results"
            );
        })
        .ok();
    let report = match run_until(p, stop.as_ref()) {
        Ok(r) => r,
        Err(f) => return usage_error(name, subcommand, json, &f),
    };
    let code = report::print(&report, &report.headline, json);
    outputs::announce(report.kept.as_deref(), json);
    code
}

/// A flag that clap accepted but validation refused (or an input file
/// that cannot be read): its exit code (64 for anything a person typed),
/// and in `--json` mode still exactly one JSON object whose `error.kind`
/// says the same. `subcommand` is what the person typed (`run`, not the
/// `scenario` operation it runs), so the pointer to `--help` works.
pub fn usage_error(operation: &str, subcommand: &str, json: bool, f: &Failure) -> u8 {
    if json {
        let mut r = Report::new(operation, serde_json::Value::Null);
        r.set_failure(f.clone());
        report::print(&r, "", true)
    } else {
        vmm::errln!("schedlab {subcommand}: {f}");
        vmm::errln!("(see `schedlab {subcommand} --help`)");
        f.exit_code()
    }
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
