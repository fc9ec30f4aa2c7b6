//! Run-level settings a scenario file may carry (duration, cpus,
//! topology, policy, tick_hz, idle), merged under the command line: a flag
//! given on the command line wins, else the file's value, else the flag's
//! default. `cpus` and `topology` are one machine: a `--topology` on the
//! command line replaces both of the file's, and a file's topology must
//! agree with whichever CPU count wins.
//! clap's derive hides whether a value came from the command line or from
//! a default, so the `run` subcommand's matches are read for that.

use super::diag::Problem;
use super::schema::File;
use crate::settings::sched::{IdleMode, policy_by_name};
use crate::settings::topology;
use crate::settings::{CommonArgs, HOUR_NS, parse_duration};
use abi::boot::MAX_TICK_HZ;
use abi::memmap::MAX_CPUS;
use clap::ArgMatches;
use clap::ValueEnum;
use clap::parser::ValueSource;
use std::path::{Path, PathBuf};

/// The flags a file's settings yield to, and the fairness limit (which a
/// scenario turns off unless asked for; see `mod.rs`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Given {
    pub duration: bool,
    pub cpus: bool,
    pub topology: bool,
    pub policy: bool,
    pub tick_hz: bool,
    pub idle: bool,
    pub max_fairness_error: bool,
}

impl Given {
    /// From the `run` subcommand's matches (ids are the derive's field
    /// names; a unit test checks each exists).
    pub fn from_matches(m: &ArgMatches) -> Self {
        let given = |id: &str| m.value_source(id) == Some(ValueSource::CommandLine);
        Given {
            duration: given("duration"),
            cpus: given("cpus"),
            topology: given("topology"),
            policy: given("policy"),
            tick_hz: given("tick_hz"),
            idle: given("idle"),
            max_fairness_error: given("max_fairness_error"),
        }
    }
}

/// `common` with the file's settings applied where the command line gave
/// none; problems with the file's values (which are then not applied).
/// A policy path in the file is relative to `base` (the file's
/// directory); with None, policy paths are refused.
pub fn merge(
    common: &CommonArgs,
    file: &File,
    given: Given,
    base: Option<&Path>,
) -> (CommonArgs, Vec<Problem>) {
    let mut c = common.clone();
    let mut problems = Vec::new();
    if let (Some(v), false) = (&file.duration, given.duration) {
        match parse_duration("duration", v.get_ref(), 1, HOUR_NS) {
            Ok(_) => c.duration = v.get_ref().clone(),
            Err(f) => problems.push(Problem::at(v.span(), f.message)),
        }
    }
    // The command line's --topology is the whole machine.
    let cpus_given = given.cpus || given.topology;
    if let (Some(v), false) = (&file.cpus, cpus_given) {
        match *v.get_ref() {
            n if (1..=MAX_CPUS as i64).contains(&n) => c.sched.cpus = Some(n),
            n => problems.push(Problem::at(
                v.span(),
                format!("cpus must be between 1 and {MAX_CPUS}, got {n}"),
            )),
        }
    }
    if let (Some(v), false) = (&file.topology, given.topology) {
        match topology::parse(v.get_ref()) {
            Err(why) => problems.push(Problem::at(
                v.span(),
                format!("topology: {why}; {}", topology::grammar()),
            )),
            Ok(p) => match c.sched.cpus {
                Some(n) if n != i64::from(p.topology.cpus()) => {
                    let from = if given.cpus { "--cpus" } else { "cpus" };
                    problems.push(Problem::at(
                        v.span(),
                        format!(
                            "topology '{}' has {} CPUs but {from} is {n}: drop {from} (the \
                             topology implies it) or make the two agree",
                            v.get_ref().trim(),
                            p.topology.cpus()
                        ),
                    ));
                }
                _ => c.sched.topology = Some(v.get_ref().clone()),
            },
        }
    }
    if let (Some(v), false) = (&file.tick_hz, given.tick_hz) {
        match *v.get_ref() {
            n if (1..=i64::from(MAX_TICK_HZ)).contains(&n) => c.sched.tick_hz = n,
            n => problems.push(Problem::at(
                v.span(),
                format!(
                    "tick_hz must be between 1 and {MAX_TICK_HZ} (KVM's LAPIC timer floor), \
                     got {n}"
                ),
            )),
        }
    }
    if let (Some(v), false) = (&file.policy, given.policy) {
        let text = v.get_ref();
        match (policy_file(text, base), base) {
            // Read (and built) with the other settings, in validate.
            (Some(path), Some(_)) if path.exists() => {
                c.sched.policy = path.display().to_string();
            }
            (Some(path), Some(_)) => problems.push(Problem::at(
                v.span(),
                format!(
                    "policy: {}: no such file or directory (a policy path is relative to the \
                     scenario file's directory)",
                    path.display()
                ),
            )),
            (Some(_), None) => problems.push(Problem::at(
                v.span(),
                "policy: a policy path is not read here",
            )),
            (None, _) => match policy_by_name(text) {
                Ok(_) => c.sched.policy = text.clone(),
                Err(f) => {
                    let why = f.message.strip_prefix("--policy: ").unwrap_or(&f.message);
                    problems.push(Problem::at(v.span(), format!("policy: {why}")));
                }
            },
        }
    }
    if let (Some(v), false) = (&file.idle, given.idle) {
        match IdleMode::from_str(v.get_ref(), false) {
            Ok(m) => c.sched.idle = m,
            Err(_) => problems.push(Problem::at(
                v.span(),
                format!(
                    "idle: '{}' is not an idle mode: use halt or poll",
                    v.get_ref()
                ),
            )),
        }
    }
    (c, problems)
}

/// The file a scenario's `policy` names, relative to `base`, if it
/// names one: as `--policy` does (see `settings::policy::is_path`), but a
/// bare name counts as a path only if it exists next to the file.
fn policy_file(text: &str, base: Option<&Path>) -> Option<PathBuf> {
    let at = |t: &str| base.unwrap_or(Path::new("")).join(t);
    let path_like = text.contains('/') || text.ends_with(".elf");
    let builtin = vmm::images::policy_names().any(|n| n == text);
    let is_file = path_like || (!builtin && at(text).exists());
    is_file.then(|| at(text))
}

#[cfg(test)]
mod tests {
    use super::super::schema::parse;
    use super::*;
    use crate::operations::{Entry, Registered};
    use crate::scenario::{RunArgs, Scenario};
    use clap::FromArgMatches;

    fn run_args(argv: &[&str]) -> (CommonArgs, Given) {
        let mut full = vec!["run", "f.toml"];
        full.extend_from_slice(argv);
        let m = Registered::<Scenario>::NEW
            .command()
            .try_get_matches_from(full)
            .unwrap();
        let given = Given::from_matches(&m);
        let a = RunArgs::from_arg_matches(&m).unwrap();
        (a.common, given)
    }

    const FILE: &str = "duration = \"50ms\"\ncpus = 3\npolicy = \"eevdf\"\ntick_hz = 250\n\
                        idle = \"poll\"\n";

    #[test]
    fn the_file_fills_in_what_the_command_line_left_out() {
        let (common, given) = run_args(&[]);
        assert_eq!(given, Given::default());
        let (c, problems) = merge(&common, &parse(FILE).unwrap(), given, None);
        assert!(problems.is_empty(), "{problems:?}");
        let s = c.validate().unwrap();
        assert_eq!(s.duration_ns, 50_000_000);
        assert_eq!(
            (
                s.sched.cpus,
                s.sched.policy.name.as_str(),
                s.sched.tick_hz,
                s.sched.idle
            ),
            (3, "eevdf", 250, IdleMode::Poll)
        );
    }

    #[test]
    fn command_line_flags_win_even_at_their_default_values() {
        let (common, given) = run_args(&[
            "--duration",
            "200ms",
            "--cpus",
            "1",
            "--policy",
            "rr",
            "--tick-hz",
            "1000",
            "--idle",
            "halt",
            "--max-fairness-error",
            "0.2",
        ]);
        assert!(given.duration && given.cpus && given.policy && given.tick_hz && given.idle);
        assert!(given.max_fairness_error);
        let (c, _) = merge(&common, &parse(FILE).unwrap(), given, None);
        let s = c.validate().unwrap();
        assert_eq!(s.duration_ns, 200_000_000);
        assert_eq!(
            (
                s.sched.cpus,
                s.sched.policy.name.as_str(),
                s.sched.tick_hz,
                s.sched.idle
            ),
            (1, "rr", 1000, IdleMode::Halt)
        );
    }

    #[test]
    fn bad_file_settings_are_located_problems() {
        let text =
            "duration = \"-1ms\"\ncpus = 0\npolicy = \"nope\"\ntick_hz = 9000\nidle = \"x\"\n";
        let (common, given) = run_args(&[]);
        let (_, p) = merge(&common, &parse(text).unwrap(), given, None);
        let msgs: Vec<&str> = p.iter().map(|p| p.message.as_str()).collect();
        assert_eq!(msgs.len(), 5, "{msgs:?}");
        assert!(
            msgs[0].starts_with("duration: '-1ms' is negative"),
            "{msgs:?}"
        );
        assert!(
            msgs[1].starts_with("cpus must be between 1 and 64"),
            "{msgs:?}"
        );
        assert!(
            msgs[2].starts_with("tick_hz must be between 1 and 5000"),
            "{msgs:?}"
        );
        assert!(
            msgs[3].starts_with("policy: unknown policy 'nope'"),
            "{msgs:?}"
        );
        assert!(
            msgs[4].starts_with("idle: 'x' is not an idle mode"),
            "{msgs:?}"
        );
        assert_eq!(&text[p[1].span.clone().unwrap()], "0");
    }

    #[test]
    fn a_file_topology_implies_cpus_and_must_agree_with_the_count_that_wins() {
        let file = |t: &str| parse(t).unwrap();
        let (common, given) = run_args(&[]);
        let (c, p) = merge(&common, &file("topology = \"1s,2l,2c,2t\"\n"), given, None);
        assert!(p.is_empty(), "{p:?}");
        let s = c.validate().unwrap();
        assert_eq!((s.sched.cpus, s.sched.topology.llcs()), (8, 2));
        let (c, p) = merge(
            &common,
            &file("cpus = 8\ntopology = \"laptop\"\n"),
            given,
            None,
        );
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(c.validate().unwrap().sched.topology_preset, Some("laptop"));

        // The file's pair disagrees: located at the topology.
        let text = "cpus = 4\ntopology = \"1s,2l,2c,2t\"\n";
        let (_, p) = merge(&common, &file(text), given, None);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].message
                .starts_with("topology '1s,2l,2c,2t' has 8 CPUs but cpus is 4"),
            "{p:?}"
        );
        assert_eq!(&text[p[0].span.clone().unwrap()], "\"1s,2l,2c,2t\"");
        // The command line's --cpus wins over the file's and must agree.
        let (common, given) = run_args(&["--cpus", "2"]);
        let (_, p) = merge(&common, &file("topology = \"laptop\"\n"), given, None);
        assert!(p[0].message.contains("but --cpus is 2"), "{p:?}");
        // The command line's --topology replaces the file's whole machine.
        let (common, given) = run_args(&["--topology", "2s,1l,2c,2t"]);
        assert!(given.topology && !given.cpus);
        let (c, p) = merge(&common, &file(text), given, None);
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(c.validate().unwrap().sched.cpus, 8);
        assert_eq!(c.sched.topology.as_deref(), Some("2s,1l,2c,2t"));

        // Malformed: located, with the grammar.
        let text = "topology = \"2s,2s\"\n";
        let (common, given) = run_args(&[]);
        let (_, p) = merge(&common, &file(text), given, None);
        assert!(
            p[0].message
                .starts_with("topology: '2s,2s' gives sockets twice; give Ns,Nl")
        );
        assert!(p[0].message.contains("laptop (1s,1l,4c,2t)"), "{p:?}");
    }

    #[test]
    fn a_policy_path_is_relative_to_the_scenario_file() {
        let (common, given) = run_args(&[]);
        let dir = tempfile::tempdir().unwrap();
        let file = parse("policy = \"./my-policy\"\n").unwrap();
        let (_, p) = merge(&common, &file, given, Some(dir.path()));
        let m = &p[0].message;
        let want = dir.path().join("./my-policy");
        assert!(
            m.starts_with(&format!("policy: {}: no such file", want.display())),
            "{m}"
        );
        std::fs::create_dir(&want).unwrap();
        let (c, p) = merge(&common, &file, given, Some(dir.path()));
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(c.sched.policy, want.display().to_string());
        let (_, p) = merge(&common, &file, given, None);
        assert_eq!(p[0].message, "policy: a policy path is not read here");
    }
}
