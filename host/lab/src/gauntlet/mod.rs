//! `schedlab gauntlet`: run a matrix of workloads x policies x machines
//! (CPU counts, or topologies) and print one table of verdicts and key
//! metrics.
//!
//! Each run is a child process of this same binary (`schedlab WORKLOAD
//! --policy P --cpus N --json --out DIR/WORKLOAD-P-Ncpu`), several at once
//! (`--jobs`): a run that crashes or hangs its VM takes down only its own
//! process, every run keeps its outputs where `schedlab compare` can pair
//! them with another gauntlet's, and the runs are exactly what a person
//! would get typing the same command.
//!
//! SIGINT, SIGTERM and SIGHUP are passed on to the running children (see
//! `runner`); the gauntlet then writes `gauntlet.json` with the finished
//! and the interrupted runs, prints its table and exits 128 + the signal.

mod merge;
mod row;
mod runner;

use crate::settings::sched::resolve_policy;
use crate::settings::topology;
use crate::settings::{default_timeout, fmt_ns, parse_duration};
use clap::Args;
use row::RunRow;
use serde::Serialize;
use std::path::PathBuf;
use std::time::Duration;
use vmm::exit::{Failure, Result, code};
use vmm::signals::{self, Signal, StopFlag};

/// Shown at the end of `schedlab gauntlet --help`.
pub const EXIT_CODES: &str = "\
Exit codes:
  0   every run passed
  1   a run failed its verdict (and none errored)
  2   a run was inconclusive, or interrupted by a signal of its own (and none
      failed or errored)
  64  usage error (bad list, unknown policy or workload); nothing was started
  70  a run errored (its guest failed, it produced no report, or it was still
      going at its deadline: its --timeout + 5 s + 10 %)
  129, 130, 143
      interrupted by SIGHUP, SIGINT or SIGTERM (128 + the signal): the running
      runs got the same signal, gauntlet.json holds the finished and the
      interrupted ones; a second signal exits at once";

#[derive(Debug, Clone, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct GauntletArgs {
    #[command(subcommand)]
    pub tool: Option<GauntletTool>,
    /// Policies to run, comma-separated [default: every policy `schedlab
    /// policies` lists].
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub policies: Vec<String>,
    /// vCPU counts to run, comma-separated [default: 1,2 unless
    /// --topologies is given].
    #[arg(
        long,
        value_name = "LIST",
        value_delimiter = ',',
        allow_hyphen_values = true
    )]
    pub cpus: Vec<String>,
    /// Machine shapes to run instead of --cpus, separated by ';' (a shape
    /// has commas): each as --topology takes it, Ns,Nl,Nc,Nt or a preset,
    /// e.g. --topologies 'laptop;1s,2l,2c,2t'. Each implies its CPU count,
    /// so it cannot be combined with --cpus.
    #[arg(long, value_name = "LIST", value_delimiter = ';')]
    pub topologies: Vec<String>,
    /// Operations to run (any operation subcommand), comma-separated.
    #[arg(
        long,
        value_name = "LIST",
        value_delimiter = ',',
        default_value = "spin"
    )]
    pub workloads: Vec<String>,
    /// Runs (VMs) at once [default: as many as fit their vCPUs on the
    /// host's CPUs: host CPUs / the largest --cpus, at least 1].
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub jobs: Option<i64>,
    /// Where the runs keep their outputs: DIR/WORKLOAD-POLICY-Ncpu/ per
    /// run (result.json, timeline.svg, latency.svg), and DIR/gauntlet.json.
    #[arg(long, value_name = "DIR", default_value = "schedlab-gauntlet")]
    pub out: PathBuf,
    /// Every run's --duration [default: one per workload, e.g. 1s for
    /// spin].
    #[arg(long, value_name = "DUR", allow_hyphen_values = true)]
    pub duration: Option<String>,
    /// Every run's --timeout [default: each run's own, max(5s, 2 x
    /// duration + 5s)]. A run still going at its timeout + 5 s + 10 % (a
    /// stopped or hung process) gets SIGTERM, then SIGKILL, and is an
    /// error row.
    #[arg(long, value_name = "DUR", allow_hyphen_values = true)]
    pub timeout: Option<String>,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Run only part K of N of the matrix (1 <= K <= N): every N-th run
    /// from the K-th, in the matrix's order, the same split on every
    /// machine. Run K = 1..N on N machines (a CI matrix), then `schedlab
    /// gauntlet merge` their --out directories.
    #[arg(long, value_name = "K/N", allow_hyphen_values = true)]
    pub partition: Option<String>,
    /// Print the runs (of the partition, if one is given) and their
    /// commands instead of running them; with --json, for a CI system to
    /// fan out. Nothing is started or written.
    #[arg(long)]
    pub list: bool,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum GauntletTool {
    /// Join the --out directories of a partitioned gauntlet (`--partition
    /// K/N` on several machines) into one table and one gauntlet.json,
    /// rows in the matrix's order, as one machine would have printed.
    Merge(merge::MergeArgs),
}

/// Runs at most this many VMs at once, whatever `--jobs` says.
pub const MAX_JOBS: i64 = 64;

/// What a run may take past its own --timeout before the gauntlet stops
/// it: the child stops its VM at the timeout, then judges and writes its
/// files (a moment for a short run; replaying and drawing an hour's events
/// takes longer, hence the 10 %).
pub const DEADLINE_MARGIN: Duration = Duration::from_secs(5);

/// A run's deadline from its --timeout (see [`DEADLINE_MARGIN`]).
pub fn deadline(timeout: Duration) -> Duration {
    timeout + DEADLINE_MARGIN + timeout / 10
}

/// One run of the matrix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Job {
    pub workload: String,
    pub policy: String,
    pub cpus: u32,
    /// Its `--topology`, as given, when the matrix is of topologies.
    pub topology: Option<String>,
    /// Its directory under `--out`.
    pub name: String,
    /// The arguments after `schedlab`.
    pub args: Vec<String>,
    /// How long the gauntlet lets it run (see [`deadline`]).
    pub deadline_ms: u64,
    /// Where the deadline comes from, for the row that reaches it.
    pub deadline_why: String,
}

/// One machine of the matrix: a CPU count, or a shape and its count.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Machine {
    cpus: u32,
    topology: Option<String>,
}

/// The validated matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The runs to do: the whole matrix, or the partition's part of it.
    pub jobs: Vec<Job>,
    pub parallel: usize,
    pub out: PathBuf,
    /// Every run of the whole matrix, by name, in order (what `merge`
    /// orders the partitions' rows by).
    pub matrix: Vec<String>,
    /// `--partition`, as (K, N).
    pub partition: Option<(u32, u32)>,
}

/// `--partition K/N`.
pub fn parse_partition(text: &str) -> Result<(u32, u32)> {
    let bad = || {
        Failure::usage(format!(
            "--partition: '{text}' is not K/N with 1 <= K <= N (e.g. 2/3: the second of three \
             parts)"
        ))
    };
    let (k, n) = text.split_once('/').ok_or_else(bad)?;
    let (k, n): (u32, u32) = (
        k.trim().parse().map_err(|_| bad())?,
        n.trim().parse().map_err(|_| bad())?,
    );
    if k == 0 || k > n {
        return Err(bad());
    }
    Ok((k, n))
}

fn list<'a>(flag: &str, items: &'a [String]) -> Result<Vec<&'a str>> {
    let mut out: Vec<&str> = Vec::new();
    for item in items.iter().map(|s| s.trim()) {
        if item.is_empty() {
            return Err(Failure::usage(format!(
                "{flag}: an empty entry in the list"
            )));
        }
        if out.contains(&item) {
            return Err(Failure::usage(format!("{flag}: '{item}' is listed twice")));
        }
        out.push(item);
    }
    Ok(out)
}

impl GauntletArgs {
    pub fn plan(&self) -> Result<Plan> {
        // (name for the job, what its --policy gets): a policy path is
        // read (a crate built) once here, and every run gets the ELF.
        let mut policies: Vec<(String, String)> = Vec::new();
        if self.policies.is_empty() {
            policies.extend(
                crate::settings::policy::Policy::builtins()?
                    .into_iter()
                    .filter(|p| !p.test_only && !p.bpf_runtime)
                    .map(|p| (p.name.clone(), p.name)),
            );
        }
        for p in list("--policies", &self.policies)? {
            let resolved = resolve_policy("--policies", p).map_err(|f| {
                Failure::new(f.kind, f.message.replacen("--policy:", "--policies:", 1))
            })?;
            if resolved.test_only || resolved.bpf_runtime {
                return Err(Failure::usage(format!(
                    "--policies: '{p}' is a test-only policy; it cannot run in a gauntlet"
                )));
            }
            let arg = match &resolved.path {
                Some(elf) => elf.display().to_string(),
                None => resolved.name.clone(),
            };
            if policies.iter().any(|(n, _)| *n == resolved.name) {
                return Err(Failure::usage(format!(
                    "--policies: '{p}' is named {}, like another policy listed: each run's \
                     directory is named after its policy",
                    resolved.name
                )));
            }
            policies.push((resolved.name, arg));
        }
        let machines = self.machines()?;
        let cpus: Vec<u32> = machines.iter().map(|m| m.cpus).collect();
        let workloads = list("--workloads", &self.workloads)?;
        // The registry's operations that can run without more input (the
        // scenario operation needs a file).
        let ops: Vec<&str> = crate::operations::OPERATIONS
            .iter()
            .filter(|o| o.gauntlet_flags().is_some())
            .map(|o| o.subcommand())
            .collect();
        for w in &workloads {
            if !ops.contains(w) {
                return Err(Failure::usage(format!(
                    "--workloads: '{w}' is not an operation; operations: {}",
                    ops.join(", ")
                )));
            }
        }
        if let Some(d) = &self.duration {
            parse_duration("--duration", d, 1, crate::settings::HOUR_NS)?;
        }
        let timeout = match &self.timeout {
            Some(t) => Some(Duration::from_nanos(parse_duration(
                "--timeout",
                t,
                1,
                crate::settings::HOUR_NS,
            )?)),
            None => None,
        };
        let parallel = match self.jobs {
            // As many VMs at once as fit their vCPUs on the host's CPUs: an
            // oversubscribed host runs vCPUs at different speeds, which
            // per-CPU policies pass on to their tasks (a verdict then says
            // inconclusive, and the matrix compares the host, not policies).
            None => {
                let host = std::thread::available_parallelism().map_or(1, |n| n.get());
                let widest = cpus.iter().copied().max().unwrap_or(1).max(1) as usize;
                (host / widest).max(1)
            }
            Some(j) if (1..=MAX_JOBS).contains(&j) => j as usize,
            Some(j) => {
                return Err(Failure::usage(format!(
                    "--jobs must be between 1 and {MAX_JOBS}, got {j}"
                )));
            }
        };
        crate::outputs::check_dir(&self.out)
            .map_err(|f| Failure::usage(f.message.replacen("--out", "gauntlet --out", 1)))?;
        let partition = match &self.partition {
            Some(p) => Some(parse_partition(p)?),
            None => None,
        };
        let mut jobs = Vec::new();
        for w in &workloads {
            for (name, arg) in &policies {
                for m in &machines {
                    jobs.push(self.job(w, name, arg, m, timeout));
                }
            }
        }
        let matrix = jobs.iter().map(|j| j.name.clone()).collect();
        // Round robin, so each part gets a mix of the matrix's workloads,
        // policies and machines (and so of its run times).
        if let Some((k, n)) = partition {
            jobs = jobs
                .into_iter()
                .enumerate()
                .filter(|(i, _)| *i as u32 % n == k - 1)
                .map(|(_, j)| j)
                .collect();
        }
        Ok(Plan {
            jobs,
            parallel,
            out: self.out.clone(),
            matrix,
            partition,
        })
    }

    /// The machine dimension: `--cpus` counts (1,2 if neither is given) or
    /// `--topologies` shapes, never both.
    fn machines(&self) -> Result<Vec<Machine>> {
        if !self.topologies.is_empty() {
            if !self.cpus.is_empty() {
                return Err(Failure::usage(
                    "--topologies and --cpus cannot be combined: each topology implies its CPU \
                     count (give the shapes alone)",
                ));
            }
            return list("--topologies", &self.topologies)?
                .into_iter()
                .map(|text| {
                    let p = topology::parse(text).map_err(|why| {
                        Failure::usage(format!("--topologies: {why}; {}", topology::grammar()))
                    })?;
                    Ok(Machine {
                        cpus: p.topology.cpus(),
                        topology: Some(text.to_string()),
                    })
                })
                .collect();
        }
        let default = ["1".to_string(), "2".to_string()];
        let given = if self.cpus.is_empty() {
            &default[..]
        } else {
            &self.cpus
        };
        list("--cpus", given)?
            .into_iter()
            .map(|c| match c.parse::<u32>() {
                Ok(n) if n >= 1 && n as usize <= abi::memmap::MAX_CPUS => Ok(Machine {
                    cpus: n,
                    topology: None,
                }),
                _ => Err(Failure::usage(format!(
                    "--cpus: '{c}' is not a vCPU count between 1 and {}",
                    abi::memmap::MAX_CPUS
                ))),
            })
            .collect()
    }

    fn job(
        &self,
        workload: &str,
        policy: &str,
        policy_arg: &str,
        machine: &Machine,
        timeout: Option<Duration>,
    ) -> Job {
        let cpus = machine.cpus;
        // An image's own name may hold any character; the directory's
        // may not.
        let policy: String = policy
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        // A shape's directory: `1s2l2c2t` (no commas), or the preset.
        let name = match &machine.topology {
            Some(t) => format!("{workload}-{policy}-{}", t.replace(',', "")),
            None => format!("{workload}-{policy}-{cpus}cpu"),
        };
        let dir = self.out.join(&name);
        let mut args: Vec<String> = [workload, "--policy", policy_arg]
            .iter()
            .map(|s| s.to_string())
            .collect();
        match &machine.topology {
            Some(t) => args.extend(["--topology".to_string(), t.clone()]),
            None => args.extend(["--cpus".to_string(), cpus.to_string()]),
        }
        args.push("--json".into());
        args.push("--out".into());
        args.push(dir.display().to_string());
        match &self.duration {
            Some(d) => args.extend(["--duration".to_string(), d.clone()]),
            None => {
                // Each operation's own short-run flags (plan() checked
                // that it is one that has them).
                let flags = crate::operations::by_subcommand(workload)
                    .and_then(|o| o.gauntlet_flags())
                    .unwrap_or_default();
                args.extend(flags.iter().map(|s| s.to_string()));
            }
        }
        if let Some(t) = &self.timeout {
            args.extend(["--timeout".to_string(), t.clone()]);
        }
        // The child's own timeout: the one given, or its default for the
        // duration it runs (plan() checked every duration here parses).
        let (timeout, whose) = match timeout {
            Some(t) => (t, "--timeout"),
            None => {
                let duration = args
                    .iter()
                    .position(|a| a == "--duration")
                    .and_then(|i| args.get(i + 1))
                    .map_or("200ms", String::as_str);
                let ns = parse_duration("--duration", duration, 1, crate::settings::HOUR_NS)
                    .unwrap_or(crate::settings::HOUR_NS);
                (default_timeout(ns), "default timeout")
            }
        };
        let d = deadline(timeout);
        Job {
            workload: workload.to_string(),
            policy: policy.to_string(),
            cpus,
            topology: machine.topology.clone(),
            name,
            args,
            deadline_ms: d.as_millis() as u64,
            deadline_why: format!(
                "its {whose} {} + {:.1} s margin",
                fmt_ns(timeout.as_nanos() as u64),
                (d - timeout).as_secs_f64()
            ),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct GauntletReport {
    /// "pass", "fail", "inconclusive", "error" (a run errored) or
    /// "interrupted": always the exit code's meaning (see
    /// [`GauntletReport::exit_code`]).
    pub status: &'static str,
    /// The signal that interrupted the gauntlet, if one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interrupted: Option<Signal>,
    pub out: String,
    pub jobs: usize,
    /// The runs that started, finished or interrupted, in matrix order.
    pub runs: Vec<RunRow>,
    pub passed: usize,
    pub failed: usize,
    pub inconclusive: usize,
    pub errors: usize,
    pub interrupted_runs: usize,
    /// Runs of the matrix that never started (the gauntlet was
    /// interrupted first, or, merged, no directory had them), by name.
    pub not_started: Vec<String>,
    /// `--partition`'s "K/N", when this gauntlet ran one part.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
    /// Every run of the whole matrix, by name, in order: what `merge`
    /// checks the parts against and orders their rows by.
    pub matrix: Vec<String>,
}

impl GauntletReport {
    fn new(
        out: String,
        jobs: usize,
        runs: Vec<RunRow>,
        not_started: Vec<String>,
        interrupted: Option<Signal>,
        matrix: Vec<String>,
    ) -> Self {
        let count = |s: &str| runs.iter().filter(|r| r.verdict == s).count();
        let mut r = GauntletReport {
            status: "pass",
            interrupted,
            out,
            jobs,
            passed: count("pass"),
            failed: count("fail"),
            inconclusive: count("inconclusive"),
            errors: count("error"),
            interrupted_runs: count("interrupted"),
            not_started,
            runs,
            partition: None,
            matrix,
        };
        r.status = match r.exit_code() {
            code::OK => "pass",
            code::VERDICT_FAIL => "fail",
            code::INCONCLUSIVE => "inconclusive",
            code::GUEST => "error",
            _ => "interrupted",
        };
        r
    }

    /// 128 + the signal if the gauntlet was interrupted, else 70 if any
    /// run errored, else 1 if any failed its verdict, else 2 if any was
    /// inconclusive (or interrupted by a signal the gauntlet did not get,
    /// which proves as little), else 0.
    pub fn exit_code(&self) -> u8 {
        if let Some(sig) = self.interrupted {
            sig.exit_code()
        } else if self.errors > 0 {
            code::GUEST
        } else if self.failed > 0 {
            code::VERDICT_FAIL
        } else if self.inconclusive > 0 || self.interrupted_runs > 0 {
            code::INCONCLUSIVE
        } else {
            code::OK
        }
    }
}

/// Entry point of the subcommand; returns the process exit code.
pub fn main(args: &GauntletArgs) -> u8 {
    if let Some(GauntletTool::Merge(m)) = &args.tool {
        return merge::main(m);
    }
    if args.list {
        return match args.plan() {
            Ok(p) => list_runs(&p, args.json),
            Err(f) => usage_error(&f, args.json),
        };
    }
    let plan = match args
        .plan()
        .and_then(|p| crate::outputs::prepare_dir(&p.out).map(|_| p))
    {
        Ok(p) => p,
        Err(f) => return usage_error(&f, args.json),
    };
    // Without handlers (said, and unlikely) a signal ends the gauntlet as
    // it always did; its children then end at their own --timeout.
    let stop = signals::install().unwrap_or_else(|e| {
        vmm::errln!("schedlab gauntlet: cannot watch for SIGINT/SIGTERM/SIGHUP ({e})");
        StopFlag::new()
    });
    if !args.json {
        vmm::errln!(
            "gauntlet: {} runs, {} at a time, outputs in {}",
            plan.jobs.len(),
            plan.parallel,
            plan.out.display()
        );
    }
    let slots = runner::run_all(&plan, args.json, &stop);
    let interrupted = stop.requested();
    let mut rows = Vec::new();
    let mut not_started = Vec::new();
    for (slot, job) in slots.into_iter().zip(&plan.jobs) {
        match slot {
            Some(r) => rows.push(r),
            None if interrupted.is_some() => not_started.push(job.name.clone()),
            None => rows.push(RunRow::from_output(
                job,
                -1,
                "",
                "the run never started",
                0,
                String::new(),
            )),
        }
    }
    let mut report = GauntletReport::new(
        plan.out.display().to_string(),
        plan.parallel,
        rows,
        not_started,
        interrupted,
        plan.matrix.clone(),
    );
    report.partition = plan.partition.map(|(k, n)| format!("{k}/{n}"));
    let text = serde_json::to_string_pretty(&report).unwrap_or_default();
    let summary = plan.out.join("gauntlet.json");
    if let Err(e) = std::fs::write(&summary, format!("{text}\n")) {
        vmm::errln!("schedlab gauntlet: cannot write {}: {e}", summary.display());
    }
    if args.json {
        vmm::outln!("{text}");
    } else {
        vmm::out!("{}", row::table(&report));
        if let Some(sig) = interrupted {
            vmm::errln!(
                "schedlab gauntlet: interrupted by {}: {} finished, {} interrupted, {} not started",
                sig.name(),
                report.runs.len() - report.interrupted_runs,
                report.interrupted_runs,
                report.not_started.len()
            );
        }
    }
    report.exit_code()
}

/// A gauntlet that cannot start: the error, as JSON or on stderr.
fn usage_error(f: &Failure, json: bool) -> u8 {
    if json {
        let v = serde_json::json!({"status": "error", "error": f});
        vmm::outln!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        vmm::errln!("schedlab gauntlet: {f}");
    }
    f.exit_code()
}

/// `--list`: the runs and their commands; nothing starts.
fn list_runs(plan: &Plan, json: bool) -> u8 {
    if json {
        let v = serde_json::json!({
            "partition": plan.partition.map(|(k, n)| format!("{k}/{n}")),
            "total": plan.matrix.len(),
            "matrix": plan.matrix,
            "runs": plan.jobs,
        });
        vmm::outln!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        for j in &plan.jobs {
            vmm::outln!("{:<32} schedlab {}", j.name, j.args.join(" "));
        }
        vmm::errln!(
            "gauntlet: {} of the matrix's {} runs",
            plan.jobs.len(),
            plan.matrix.len()
        );
    }
    code::OK
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> GauntletArgs {
        let mut argv = vec!["schedlab", "gauntlet"];
        argv.extend_from_slice(extra);
        let a: crate::gauntlet::GauntletArgs = crate::parse_args(&argv);
        a
    }

    fn err(extra: &[&str]) -> String {
        args(extra).plan().unwrap_err().message
    }

    #[test]
    fn the_default_matrix_is_every_policy_on_one_and_two_cpus_with_spin() {
        let p = args(&[]).plan().unwrap();
        let users = crate::settings::policy::Policy::builtins()
            .unwrap()
            .iter()
            .filter(|p| !p.test_only && !p.bpf_runtime)
            .count();
        assert_eq!(p.jobs.len(), users * 2);
        assert!(p.jobs.iter().all(|j| j.workload == "spin"));
        assert!(!p.jobs.iter().any(|j| j.policy == "starve"));
        assert!(p.parallel >= 1);
        let j = &p.jobs[0];
        assert_eq!(j.name, format!("spin-{}-1cpu", j.policy));
        let a = j.args.join(" ");
        assert!(a.starts_with(&format!(
            "spin --policy {} --cpus 1 --json --out ",
            j.policy
        )));
        assert!(
            a.ends_with(&format!("spin-{}-1cpu --duration 1s", j.policy)),
            "{a}"
        );
        assert!(p.jobs.iter().any(|j| j.policy == "rr"));
    }

    #[test]
    fn topologies_are_the_machine_dimension_instead_of_cpus() {
        let p = args(&[
            "--policies",
            "rr",
            "--topologies",
            "laptop;1s,2l,2c,2t",
            "--duration",
            "50ms",
        ])
        .plan()
        .unwrap();
        let rows: Vec<(&str, u32, Option<&str>)> = p
            .jobs
            .iter()
            .map(|j| (j.name.as_str(), j.cpus, j.topology.as_deref()))
            .collect();
        assert_eq!(
            rows,
            [
                ("spin-rr-laptop", 8, Some("laptop")),
                ("spin-rr-1s2l2c2t", 8, Some("1s,2l,2c,2t"))
            ]
        );
        let a = p.jobs[1].args.join(" ");
        assert!(
            a.starts_with("spin --policy rr --topology 1s,2l,2c,2t --json"),
            "{a}"
        );
        assert!(!a.contains("--cpus"), "{a}");
        assert!(
            err(&["--topologies", "laptop", "--cpus", "2"])
                .starts_with("--topologies and --cpus cannot be combined")
        );
        let m = err(&["--topologies", "laptop;2s,2s"]);
        assert!(
            m.starts_with("--topologies: '2s,2s' gives sockets twice; give Ns,Nl"),
            "{m}"
        );
        assert!(err(&["--topologies", "laptop;laptop"]).contains("listed twice"));
    }

    #[test]
    fn the_matrix_is_workloads_by_policies_by_cpus() {
        let p = args(&[
            "--policies",
            "rr,eevdf",
            "--cpus",
            "1,2",
            "--workloads",
            "spin,ipc",
            "--jobs",
            "3",
            "--duration",
            "50ms",
        ])
        .plan()
        .unwrap();
        let names: Vec<&str> = p.jobs.iter().map(|j| j.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "spin-rr-1cpu",
                "spin-rr-2cpu",
                "spin-eevdf-1cpu",
                "spin-eevdf-2cpu",
                "ipc-rr-1cpu",
                "ipc-rr-2cpu",
                "ipc-eevdf-1cpu",
                "ipc-eevdf-2cpu"
            ]
        );
        assert_eq!(p.parallel, 3);
        assert!(
            p.jobs
                .iter()
                .all(|j| j.args.ends_with(&["--duration".into(), "50ms".into()]))
        );
        let ipc = args(&["--workloads", "ipc"]).plan().unwrap();
        assert!(
            ipc.jobs[0]
                .args
                .ends_with(&["--rounds".into(), "200".into()])
        );
    }

    #[test]
    fn bad_lists_name_the_flag() {
        assert!(err(&["--policies", "nope"]).starts_with("--policies: unknown policy 'nope'"));
        assert!(err(&["--policies", "starve"]).contains("test-only"));
        assert!(err(&["--policies", "rr,rr"]).contains("listed twice"));
        assert!(err(&["--cpus", "0"]).starts_with("--cpus: '0'"));
        assert!(err(&["--cpus", "x"]).starts_with("--cpus: 'x'"));
        assert!(err(&["--cpus", "1,,2"]).contains("empty entry"));
        let w = err(&["--workloads", "compare"]);
        assert!(
            w.starts_with("--workloads: 'compare' is not an operation"),
            "{w}"
        );
        assert!(w.contains("spin"), "{w}");
        assert!(err(&["--jobs", "0"]).starts_with("--jobs must be between 1"));
        assert!(err(&["--duration", "5"]).starts_with("--duration"));
    }

    #[test]
    fn the_json_status_always_agrees_with_the_exit_code() {
        let report = |vs: &[&str], sig| {
            GauntletReport::new(
                String::new(),
                1,
                vs.iter().map(|v| RunRow::for_test(v)).collect(),
                vec!["spin-fifo-1cpu".into()],
                sig,
                Vec::new(),
            )
        };
        for (vs, sig, status, code) in [
            (&["pass", "pass"][..], None, "pass", 0),
            (&["pass", "fail"], None, "fail", 1),
            (&["pass", "inconclusive"], None, "inconclusive", 2),
            (&["pass", "interrupted"], None, "inconclusive", 2),
            (&["fail", "error"], None, "error", 70),
            (
                &["pass", "interrupted"],
                Some(Signal::Hup),
                "interrupted",
                129,
            ),
            (
                &["error", "interrupted"],
                Some(Signal::Int),
                "interrupted",
                130,
            ),
            (&[], Some(Signal::Term), "interrupted", 143),
        ] {
            let r = report(vs, sig);
            let v = serde_json::to_value(&r).unwrap();
            assert_eq!((v["status"].as_str(), r.exit_code()), (Some(status), code));
            assert_eq!(v["interrupted"].as_str(), sig.map(Signal::name), "{v}");
        }
        let r = report(&["pass", "interrupted"], Some(Signal::Int));
        assert_eq!((r.passed, r.interrupted_runs), (1, 1));
        assert_eq!(r.not_started, ["spin-fifo-1cpu"]);
        let t = row::table(&r);
        assert!(t.contains("1 interrupted by SIGINT (1 not started)"), "{t}");
    }

    #[test]
    fn a_run_gets_a_deadline_past_its_own_timeout() {
        let p = args(&["--policies", "rr", "--cpus", "1"]).plan().unwrap();
        // spin's 1s: its default timeout is 2 x 1 s + 5 s; then + 5 s +
        // 10 %.
        assert_eq!(p.jobs[0].deadline_ms, 7_000 + 5_000 + 700);
        assert!(
            p.jobs[0].deadline_why.contains("default timeout 7s"),
            "{}",
            p.jobs[0].deadline_why
        );
        let p = args(&["--policies", "rr", "--cpus", "1", "--timeout", "2s"])
            .plan()
            .unwrap();
        assert_eq!(p.jobs[0].deadline_ms, 7_200);
        assert!(p.jobs[0].args.ends_with(&["--timeout".into(), "2s".into()]));
        let p = args(&["--policies", "rr", "--cpus", "1", "--duration", "10s"])
            .plan()
            .unwrap();
        assert_eq!(p.jobs[0].deadline_ms, 25_000 + 5_000 + 2_500);
        assert!(err(&["--timeout", "0"]).starts_with("--timeout"));
    }

    #[test]
    fn partitions_are_disjoint_round_robin_parts_of_one_matrix() {
        let base = [
            "--policies",
            "rr,fifo,eevdf",
            "--cpus",
            "1,2",
            "--workloads",
            "spin,ipc",
        ];
        let whole = args(&base).plan().unwrap();
        assert_eq!(whole.jobs.len(), 12);
        let mut seen: Vec<String> = Vec::new();
        for k in 1..=5 {
            let mut a = base.to_vec();
            let part = format!("{k}/5");
            a.extend(["--partition", &part]);
            let p = args(&a).plan().unwrap();
            assert_eq!(p.matrix, whole.matrix, "every part knows the whole matrix");
            assert_eq!(p.partition, Some((k, 5)));
            assert!(
                p.jobs.len() == 2 || p.jobs.len() == 3,
                "{k}/5 has {}",
                p.jobs.len()
            );
            for j in p.jobs {
                assert!(!seen.contains(&j.name), "{} in two parts", j.name);
                assert_eq!(
                    whole.matrix.iter().position(|n| *n == j.name).unwrap() % 5,
                    k as usize - 1
                );
                seen.push(j.name);
            }
        }
        seen.sort();
        let mut all = whole.matrix.clone();
        all.sort();
        assert_eq!(seen, all);
        for bad in ["0/3", "4/3", "3", "a/b", "1/0", "-1/2"] {
            let mut a = base.to_vec();
            a.extend(["--partition", bad]);
            assert!(err(&a).starts_with("--partition: "), "{bad}");
        }
    }

    #[test]
    fn exit_code_is_error_then_fail_then_inconclusive() {
        let row = |v: &str| RunRow::for_test(v);
        let code = |vs: &[&str]| {
            GauntletReport::new(
                String::new(),
                1,
                vs.iter().map(|v| row(v)).collect(),
                Vec::new(),
                None,
                Vec::new(),
            )
            .exit_code()
        };
        assert_eq!(code(&["pass", "pass"]), 0);
        assert_eq!(code(&["pass", "inconclusive"]), 2);
        assert_eq!(code(&["inconclusive", "fail"]), 1);
        assert_eq!(code(&["fail", "error"]), 70);
    }
}
