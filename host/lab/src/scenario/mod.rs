//! `schedlab run FILE.toml`: a declarative task mix in the spirit of
//! rt-app. The file names tasks, each with a count, a weight, an affinity
//! and a list of phases; it is parsed (`schema`), checked and compiled into
//! the guest's `ScenarioConfig` (`compile`), with its run-level settings
//! under the command line's (`settings`), all before any VM starts, and
//! every problem is reported with its file:line:column (`diag`). The
//! `scenario` operation interprets it in the guest; `summary` turns its
//! result into the report.

mod compile;
pub(crate) mod diag;
pub(crate) mod schema;
mod settings;
mod summary;

use crate::operations::affinity::fmt_cpu_list;
use crate::operations::{self as ops, common};
use crate::settings::{CommonArgs, RunSettings, fmt_ns};
use abi::config::{
    SCENARIO_MAGIC, SCENARIO_MAX_INSTANCES, SCENARIO_MAX_KINDS, SCENARIO_MAX_PHASES,
};
use clap::Args;
use compile::Compiled;
use diag::{Problem, render};
use serde_json::json;
use settings::Given;
use std::path::PathBuf;
use vmm::exit::{EXIT_CODES_HELP, ErrorKind, Failure, Result};
use vmm::files::{InputFile, read_bounded_text};
use vmm::vm::run::RunOutcome;
use zerocopy::IntoBytes;

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// The scenario file (TOML; see below and examples/*.toml), or an
    /// rt-app workload file (JSON).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// The file format, shown by `schedlab run --help`. The limits are
/// filled in from the constants that define them (`@NAME@`), so the help
/// cannot promise what the guest refuses.
const SCHEMA_HELP: &str = r#"Scenario file (TOML). Run-level keys are optional; a flag given on the command
line overrides the file's value:

  description = "one line shown in the headline"
  duration = "500ms"     # --duration (default 200ms)
  cpus = 2               # --cpus     (default 1, or the topology's count)
  topology = "1s,1l,1c,2t" # --topology: Ns,Nl,Nc,Nt or a preset (implies cpus)
  policy = "eevdf"       # --policy   (default rr)
  tick_hz = 1000         # --tick-hz  (default 1000)
  idle = "halt"          # --idle: halt or poll

  [[task]]               # up to @KINDS@ tasks, @INSTANCES@ instances in all
  name = "ping"          # unique: letters, digits, '-', '_', '.'
  count = 1              # instances of this task (default 1)
  weight = 1             # 1..@MAX_WEIGHT@ (default 1); or instead
  # nice = 0             # -20..19: Linux's weight for that nice value
  affinity = "0"         # CPU list, e.g. "0-3,6", or one CPU number (default: any)
  loop = 0               # passes through the phases; 0 = until the duration (default)
  delay = "5ms"          # sleep once before the first pass (default none)
  priority = 10          # a fixed priority 1..99, higher first, for fp (default none)
  # runtime = "2ms"      # a reservation, as SCHED_DEADLINE's: runtime per period,
  # period = "10ms"      # and deadline (default the period); edf reads them
  subscribe = ["news"]   # topics whose published messages this task receives
  phases = [             # 1..@PHASES@ phases, done in order, again and again
    { run = "1ms" },     # busy work for 1 ms of the task's own CPU time
    { sleep = "5ms" },   # sleep 5 ms (how late it wakes is recorded)
    { timer = "10ms" },  # wait for the next activation, 10 ms after the last
    # { timer = { period = "10ms", mode = "absolute", ref = "t" } }: keep the grid
    # after a miss; a ref is one timer for all who name it
    { send = "pong" },   # to the pong instance with this one's number (mod pong's count)
    { publish = "news" },# to every subscriber of the topic
    { recv = "10ms" },   # wait for a message, at most 10 ms ("forever": no limit)
    "yield",             # offer the CPU
    { lock = "m" },      # take mutex m (waits if another task holds it)
    { unlock = "m" },
    { wait = "c" },      # wait on condition variable c, releasing mutex c meanwhile
    # { wait = { ref = "c", mutex = "m" } } names another mutex
    { signal = "c" },    # wake the longest waiter on c ({ broadcast = "c" }: all)
    { barrier = "b" },   # wait until every instance that uses b reaches it
    { fork = "child" },  # start a new instance of child (count = 0: only forks start it)
    { sem_post = "s" },  # post to semaphore s ({ sem_wait = "s" }: take one, waiting for it)
  ]

rt-app workload files (JSON, as rt-app reads them: comments, trailing commas,
repeated event keys such as run0, sleep1) run as they are: a FILE.json, or a
file starting with '{', is read as rt-app's and mapped onto the model above
(global.duration in seconds; tasks with instance, loop, cpus, phases; the
events run, runtime, sleep, timer, yield, mem, iorun, lock, unlock, wait,
signal, broad, sync, barrier, suspend, resume, fork, sem_post, sem_wait,
memrun). The report lists what was ignored or approximated; what the model
cannot hold (phases of one thread on different CPUs) is refused by its JSON
path.

Durations are "2ms", "500us", "1.5s", "100ns". Every instance stops at the
duration (checked between phases; runs, sleeps and receives never outlast it).
Reported per instance: passes through its phases (loops), the time of one pass
(for a ping task: the round trip), how late its sleeps and timers ended,
messages sent and received, and, with locks, how long each lock took to get
and the time blocked in wait and barrier phases. Sync objects (at most
@SYNCS@ names) are created on first use; each name is a mutex, a condition
variable, a barrier and a semaphore at once, as rt-app's resources are. Shares are judged against weights only when every
task just runs and yields (else pass --max-fairness-error to judge them).

"#;

/// `run --help`'s text after the flags: the file format, then the exit
/// codes every subcommand lists.
pub fn help() -> String {
    let schema = SCHEMA_HELP
        .replace("@KINDS@", &SCENARIO_MAX_KINDS.to_string())
        .replace("@INSTANCES@", &SCENARIO_MAX_INSTANCES.to_string())
        .replace("@PHASES@", &SCENARIO_MAX_PHASES.to_string())
        .replace("@SYNCS@", &abi::config::SCENARIO_MAX_SYNCS.to_string())
        .replace("@MAX_WEIGHT@", &crate::settings::MAX_WEIGHT.to_string());
    format!("{schema}{EXIT_CODES_HELP}")
}

/// The `scenario` operation, run as `schedlab run FILE.toml`.
pub struct Scenario;

/// A compiled scenario and what its report says of it.
pub struct ScenarioPlan {
    label: String,
    description: Option<String>,
    compiled: Compiled,
    fairness: bool,
    /// An rt-app file's notes (what was ignored or approximated); None
    /// for a TOML scenario.
    rtapp: Option<Vec<String>>,
}

impl ops::Operation for Scenario {
    const NAME: &'static str = "scenario";
    const SUBCOMMAND: &'static str = "run";
    const ABOUT: &'static str = "Run a scenario file (TOML): a task mix in the spirit of rt-app";
    const LONG_ABOUT: Option<&'static str> = Some(
        "Run a scenario file (TOML): a task mix in the spirit of rt-app.\n\n\
         Named tasks with counts, weights, affinities and phases (run, sleep, timer, send, \
         publish, recv, yield); the guest operation that runs them is `scenario`.",
    );
    const CONFIG_MAGIC: u32 = SCENARIO_MAGIC;
    // It needs a file.
    const GAUNTLET_FLAGS: Option<&'static [&'static str]> = None;
    type Args = RunArgs;
    type Plan = ScenarioPlan;

    fn plan(args: &RunArgs, m: &clap::ArgMatches) -> Result<(ScenarioPlan, RunSettings)> {
        prepare(args, Given::from_matches(m))
    }

    fn config(p: &ScenarioPlan, _: &RunSettings) -> Vec<u8> {
        p.compiled.config.as_bytes().to_vec()
    }

    fn config_json(p: &ScenarioPlan, s: &RunSettings) -> serde_json::Value {
        let mut v = config_json(&p.label, p.description.clone(), &p.compiled, s, p.fairness);
        if let Some(notes) = &p.rtapp {
            v["format"] = json!("rt-app");
            v["notes"] = json!(notes);
        }
        v
    }

    fn headline(p: &ScenarioPlan, s: &RunSettings) -> String {
        match &p.rtapp {
            None => headline(&p.label, p.description.as_deref(), &p.compiled, s),
            Some(notes) => {
                let mut h = headline(&format!("{} (rt-app)", p.label), None, &p.compiled, s);
                for n in notes {
                    h = format!("{h}\n  note: {n}");
                }
                h
            }
        }
    }

    fn summarize(p: &ScenarioPlan, out: &RunOutcome) -> ops::Summary {
        summary::summarize(&p.compiled, out)
    }

    fn command(cmd: clap::Command) -> clap::Command {
        cmd.after_long_help(help())
    }
}

/// Largest scenario file read. A scenario has at most 8 tasks of 24
/// phases, a few KiB; 1 MiB leaves room for comments and refuses anything
/// else (a device, a runaway file) before reading it.
pub const SCENARIO_FILE_CAP: u64 = 1 << 20;

/// How the scenario file is read (see `vmm::files`).
const SCENARIO_FILE: InputFile = InputFile {
    what: "scenario file",
    cap: SCENARIO_FILE_CAP,
    cap_name: "SCENARIO_FILE_CAP",
    kind: ErrorKind::Usage,
    fix: "give a scenario file (TOML; `schedlab run --help` shows the format)",
};

/// Read, check and compile the file, merged with the command line.
fn prepare(args: &RunArgs, given: Given) -> Result<(ScenarioPlan, RunSettings)> {
    let label = args.file.display().to_string();
    let text = read_bounded_text(&args.file, &SCENARIO_FILE)?;
    // A policy path in the file is relative to the file's directory.
    let base = args.file.parent().unwrap_or(std::path::Path::new(""));
    if crate::rtapp::is_rtapp(&args.file, &text) {
        return prepare_rtapp(label, &text, &args.common, given, Some(base));
    }
    prepare_text(label, &text, &args.common, given, Some(base))
}

/// [`prepare_text`] for an rt-app file: mapped onto the scenario model
/// (`crate::rtapp`), then merged, checked and compiled the same way.
fn prepare_rtapp(
    label: String,
    text: &str,
    common: &CommonArgs,
    given: Given,
    base: Option<&std::path::Path>,
) -> Result<(ScenarioPlan, RunSettings)> {
    let t = crate::rtapp::translate(text).map_err(|p| Failure::usage(render(&label, text, &p)))?;
    let parsed = Parsed {
        label,
        text,
        file: t.file,
        rtapp: Some(t.notes),
    };
    prepare_file(parsed, common, given, base)
}

/// A scenario file parsed: from TOML, or mapped from rt-app's JSON (its
/// spans are then the JSON's, so problems still point into the file).
struct Parsed<'a> {
    label: String,
    text: &'a str,
    file: schema::File,
    rtapp: Option<Vec<String>>,
}

/// [`prepare`] for a file already read: parse, merge under the command
/// line, check and compile. `base` is the directory a policy path in the
/// file is relative to; None refuses policy paths (the fuzzer's entry:
/// a path would read files or build crates).
fn prepare_text(
    label: String,
    text: &str,
    common: &CommonArgs,
    given: Given,
    base: Option<&std::path::Path>,
) -> Result<(ScenarioPlan, RunSettings)> {
    let file = schema::parse(text)
        .map_err(|e| Failure::usage(render(&label, text, &[Problem::from_toml(&e)])))?;
    let parsed = Parsed {
        label,
        text,
        file,
        rtapp: None,
    };
    prepare_file(parsed, common, given, base)
}

/// [`prepare_text`] after parsing: merge under the command line, check
/// and compile.
fn prepare_file(
    parsed: Parsed<'_>,
    common: &CommonArgs,
    given: Given,
    base: Option<&std::path::Path>,
) -> Result<(ScenarioPlan, RunSettings)> {
    let Parsed {
        label,
        text,
        file,
        rtapp,
    } = parsed;
    let bad = |p: &[Problem]| Failure::usage(render(&label, text, p));
    let (common, mut problems) = settings::merge(common, &file, given, base);
    // The file's values were checked in merge; what fails here is a flag.
    let mut settings = common.validate()?;
    let c = match compile::compile(&file, settings.sched.cpus, settings.duration_ns) {
        Ok(c) if problems.is_empty() => c,
        Ok(_) => return Err(bad(&problems)),
        Err(more) => {
            problems.extend(more);
            return Err(bad(&problems));
        }
    };
    let fairness = given.max_fairness_error || c.cpu_bound;
    if !fairness {
        settings.judge.max_fairness_error = None;
    }
    let description = file.description.as_ref().map(|d| d.get_ref().clone());
    let plan = ScenarioPlan {
        label,
        description,
        compiled: c,
        fairness,
        rtapp,
    };
    Ok((plan, settings))
}

/// The fuzzing entry point (`host/fuzz`, target `scenario`): `bytes` as
/// a scenario file, checked and compiled as `schedlab run FILE` with no
/// flags does, then turned into all a run would send and print (config
/// bytes, JSON, headline). A bad file must come back as a usage error;
/// a panic or a hang is a bug for the fuzzer to report.
pub fn fuzz_entry(bytes: &[u8]) {
    use std::sync::LazyLock;
    // The flags' defaults, as clap gives them to `schedlab run f.toml`.
    static DEFAULTS: LazyLock<CommonArgs> = LazyLock::new(|| {
        use clap::{Args as _, FromArgMatches as _};
        let cmd = RunArgs::augment_args(clap::Command::new("run").no_binary_name(true));
        let m = cmd
            .try_get_matches_from(["fuzz.toml"])
            .expect("the defaults parse");
        RunArgs::from_arg_matches(&m)
            .expect("the defaults parse")
            .common
    });
    let text = String::from_utf8_lossy(bytes);
    // Text starting with `{` or `/` is an rt-app file, as `run` reads it.
    let r = if crate::rtapp::is_rtapp(std::path::Path::new("fuzz"), &text) {
        prepare_rtapp("fuzz.json".into(), &text, &DEFAULTS, Given::default(), None)
    } else {
        prepare_text("fuzz.toml".into(), &text, &DEFAULTS, Given::default(), None)
    };
    match r {
        Ok((plan, settings)) => {
            let p = ops::prepared::<Scenario>(plan, settings);
            assert_eq!(p.config.len(), size_of::<abi::config::ScenarioConfig>());
            let _ = p.config_json.to_string();
        }
        Err(f) => assert_eq!(f.exit_code(), vmm::exit::code::USAGE, "{f}"),
    }
}

fn plural(n: usize, word: &str) -> String {
    format!("{n} {word}{}", if n == 1 { "" } else { "s" })
}

fn headline(label: &str, description: Option<&str>, c: &Compiled, s: &RunSettings) -> String {
    let mut h = format!(
        "run {label}: {} ({}) for {} {}",
        plural(c.kinds.len(), "task"),
        plural(c.instances() as usize, "instance"),
        fmt_ns(s.duration_ns),
        common::machine(s)
    );
    if let Some(d) = description {
        h = format!("{h}\n  {d}");
    }
    h
}

fn config_json(
    label: &str,
    description: Option<String>,
    c: &Compiled,
    s: &RunSettings,
    fairness: bool,
) -> serde_json::Value {
    let tasks: Vec<serde_json::Value> = c
        .kinds
        .iter()
        .map(|k| {
            json!({
                "name": k.name,
                "count": k.count,
                "weight": k.weight,
                "affinity": fmt_cpu_list(k.affinity),
                "loop": k.repeat,
                "phases": k.phases,
            })
        })
        .collect();
    json!({
        "file": label,
        "description": description,
        "duration_ns": s.duration_ns,
        "tasks": tasks,
        "topics": c.topics,
        "instances": c.instances(),
        "max_fairness_error": s.judge.max_fairness_error,
        "fairness_judged": fairness,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn args(path: &std::path::Path, extra: &[&str]) -> RunArgs {
        let mut argv = vec!["schedlab", "run", path.to_str().unwrap()];
        argv.extend_from_slice(extra);
        let a: crate::scenario::RunArgs = crate::parse_args(&argv);
        a
    }

    /// The run the registry would prepare, and the compiled file.
    fn prepare(args: &RunArgs, given: Given) -> Result<(ops::Prepared, Compiled)> {
        let (plan, settings) = super::prepare(args, given)?;
        let c = plan.compiled.clone();
        Ok((ops::prepared::<Scenario>(plan, settings), c))
    }

    fn refused(args: &RunArgs) -> Failure {
        match prepare(args, Given::default()) {
            Ok(_) => panic!("{} was accepted", args.file.display()),
            Err(f) => f,
        }
    }

    /// A temporary scenario file named `*.SUFFIX` holding `text`.
    fn file_with(suffix: &str, text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::Builder::new().suffix(suffix).tempfile().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    fn file(text: &str) -> tempfile::NamedTempFile {
        file_with(".toml", text)
    }

    #[test]
    fn a_file_becomes_a_prepared_run_with_its_settings() {
        let f = file(
            "description = \"two hogs\"\nduration = \"30ms\"\ncpus = 2\n[[task]]\n\
             name = \"hog\"\ncount = 2\nphases = [{ run = \"1ms\" }]\n",
        );
        let (p, c) = prepare(&args(f.path(), &[]), Given::default()).unwrap();
        assert_eq!(p.name, "scenario");
        assert_eq!(p.settings.duration_ns, 30_000_000);
        assert_eq!(p.settings.sched.cpus, 2);
        assert!(
            p.headline
                .contains(": 1 task (2 instances) for 30ms on 2 vCPUs")
        );
        assert!(p.headline.ends_with("\n  two hogs"), "{}", p.headline);
        assert_eq!(p.config, c.config.as_bytes());
        assert_eq!(p.config_json["tasks"][0]["name"], "hog");
        assert_eq!(p.config_json["fairness_judged"], true);
        assert!(p.settings.judge.max_fairness_error.is_some());
    }

    #[test]
    fn fairness_is_off_for_tasks_that_sleep_unless_asked_for() {
        let f = file("[[task]]\nname = \"s\"\nphases = [{ sleep = \"1ms\" }]\n");
        let (p, _) = prepare(&args(f.path(), &[]), Given::default()).unwrap();
        assert_eq!(p.settings.judge.max_fairness_error, None);
        assert_eq!(p.config_json["fairness_judged"], false);
        let given = Given {
            max_fairness_error: true,
            ..Default::default()
        };
        let (p, _) = prepare(&args(f.path(), &[]), given).unwrap();
        assert!(p.settings.judge.max_fairness_error.is_some());
    }

    #[test]
    fn problems_in_settings_and_tasks_come_together_with_file_and_line() {
        let f = file(
            "cpus = 0\n[[task]]\nname = \"a\"\nphases = [{ send = \"b\" }, { sleep = \"-1ms\" }]\n",
        );
        let e = refused(&args(f.path(), &[]));
        assert_eq!(e.exit_code(), 64);
        let path = f.path().display().to_string();
        let lines: Vec<&str> = e.message.lines().collect();
        assert_eq!(lines.len(), 3, "{e}");
        assert!(
            lines[0].starts_with(&format!("{path}:1:8: cpus must be")),
            "{e}"
        );
        assert!(
            lines[1].starts_with(&format!(
                "{path}:4:20: task 'a' phase 1 (send): unknown task 'b'"
            )),
            "{e}"
        );
        assert!(
            lines[2].contains("phase 2 (sleep): '-1ms' is negative"),
            "{e}"
        );
    }

    #[test]
    fn unreadable_and_malformed_files_are_usage_errors() {
        let e = refused(&args(std::path::Path::new("/nonexistent/x.toml"), &[]));
        assert!(
            e.message.starts_with("/nonexistent/x.toml: cannot read"),
            "{e}"
        );
        let f = file("[[task]]\nname = \"a\"\nphases = [{ run = \"1ms\", sleep = \"1ms\" }]\n");
        let e = refused(&args(f.path(), &[]));
        assert!(
            e.message.contains(":3:11: a phase has exactly one key"),
            "{e}"
        );
    }

    #[test]
    fn a_file_over_the_size_limit_is_refused_unread() {
        let f = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
        f.as_file().set_len(SCENARIO_FILE_CAP + 1).unwrap();
        let e = refused(&args(f.path(), &[]));
        assert_eq!(e.exit_code(), 64);
        assert!(e.message.contains("the cap, SCENARIO_FILE_CAP"), "{e}");
    }

    #[test]
    fn the_fuzz_entry_takes_good_and_bad_files() {
        fuzz_entry(b"[[task]]\nname = \"a\"\nphases = [\"yield\"]\n");
        fuzz_entry(b"[[task]]\nname = \"a\"\nphases = []\n");
        fuzz_entry(b"\xff\xfe not toml");
        fuzz_entry(b"{\"tasks\": {\"t\": {\"run\": 10, \"timer\": {\"period\": 5}}}}");
        fuzz_entry(b"// rt-app\n{\"tasks\": {\"t\": {\"lock\": \"m\"}}}");
        fuzz_entry(b"{\"tasks\": {\"t\": {\"cpus\": [63], \"run\": 10}}}");
    }

    fn json(text: &str) -> tempfile::NamedTempFile {
        file_with(".json", text)
    }

    #[test]
    fn an_rt_app_file_is_a_scenario_with_its_notes() {
        let f = json(
            "// rt-app\n{\"global\": {\"duration\": 1, \"logdir\": \"/tmp\",},\n \
             \"tasks\": {\"t\": {\"instance\": 3, \"run\": 1000, \"sleep\": 5000,},},}\n",
        );
        let (p, c) = prepare(&args(f.path(), &["--cpus", "2"]), Given::default()).unwrap();
        assert_eq!(p.settings.duration_ns, 1_000_000_000);
        assert!(
            p.headline
                .contains(" (rt-app): 1 task (3 instances) for 1s"),
            "{}",
            p.headline
        );
        assert!(
            p.headline.contains("\n  note: global.logdir: ignored"),
            "{}",
            p.headline
        );
        assert_eq!(p.config_json["format"], "rt-app");
        assert!(
            p.config_json["notes"][0]
                .as_str()
                .unwrap()
                .starts_with("global.logdir")
        );
        assert_eq!(c.kinds[0].phases, ["run 1000us", "sleep 5000us"]);
        assert_eq!(c.config.task[0].count, 3);
        // A SCHED_DEADLINE thread with a timer reaches the policy as a
        // periodic task with its deadline.
        let f = json(
            "{\"tasks\": {\"d\": {\"policy\": \"SCHED_DEADLINE\", \"dl-runtime\": 3000, \
             \"dl-deadline\": 7000, \"dl-period\": 10000, \"run\": 3000, \
             \"timer\": {\"ref\": \"unique\", \"period\": 10000}}}}",
        );
        let (_, c) = prepare(&args(f.path(), &[]), Given::default()).unwrap();
        let rt = c.kinds[0].rt;
        assert_eq!(
            (rt.period_ns, rt.runtime_ns, rt.deadline_ns),
            (10_000_000, 3_000_000, 7_000_000)
        );
        // --duration still overrides the file's.
        let given = Given {
            duration: true,
            ..Default::default()
        };
        let (p, _) = prepare(&args(f.path(), &["--duration", "50ms"]), given).unwrap();
        assert_eq!(p.settings.duration_ns, 50_000_000);
        // A TOML file has neither.
        let t = file("[[task]]\nname = \"a\"\nphases = [\"yield\"]\n");
        let (p, _) = prepare(&args(t.path(), &[]), Given::default()).unwrap();
        assert!(p.config_json.get("format").is_none());
    }

    #[test]
    fn the_scenario_s_own_checks_point_into_the_json() {
        // cpus [3] on a 2-CPU VM: only the compiled scenario knows the
        // VM, and its problem still names the JSON's line and column.
        let f = json("{\"tasks\": {\n  \"t\": {\"cpus\": [3], \"run\": 10}}}\n");
        let e = refused(&args(f.path(), &["--cpus", "2"]));
        assert_eq!(e.exit_code(), 64);
        let path = f.path().display().to_string();
        assert!(
            e.message
                .starts_with(&format!("{path}:2:17: task 't': affinity: '3' names CPU 3")),
            "{e}"
        );
        // A periodic thread whose runs exceed its period: the scenario's
        // own rule, at the JSON's phases.
        let f = json(
            "{\"tasks\": {\"t\": {\"phases\": {\"p\": {\"run\": 20000, \"timer\": {\"period\": 10000}}}}}}",
        );
        let e = refused(&args(f.path(), &[]));
        assert!(
            e.message
                .contains(":1:28: task 't': a task with a timer is periodic and needs"),
            "{e}"
        );
        // A mutex name the scenario cannot hold, at the JSON's value.
        let f = json("{\"tasks\": {\"t\": {\"lock\": \"a b\"}}}");
        let e = refused(&args(f.path(), &[]));
        assert_eq!(e.exit_code(), 64);
        assert!(
            e.message
                .contains(":1:26: task 't' phase 1 (lock): 'a b' must be 1 to 64 letters"),
            "{e}"
        );
    }

    #[test]
    fn help_documents_every_phase_and_setting() {
        let h = help();
        for word in [
            "run =",
            "sleep =",
            "timer =",
            "send =",
            "publish =",
            "recv =",
            "\"yield\"",
            "duration =",
            "cpus =",
            "topology =",
            "policy =",
            "tick_hz =",
            "idle =",
            "count =",
            "weight =",
            "affinity =",
            "loop =",
            "subscribe =",
            "Exit codes:",
        ] {
            assert!(h.contains(word), "run --help lacks {word}");
        }
        // The limits come from their constants, all of them filled in.
        assert!(!h.contains('@'), "{h}");
        assert!(
            h.contains(&format!("# 1..{} (default 1)", crate::settings::MAX_WEIGHT)),
            "{h}"
        );
        assert!(h.contains("# up to 8 tasks, 64 instances in all"), "{h}");
    }
}
