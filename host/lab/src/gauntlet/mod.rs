//! `schedlab gauntlet`: run a matrix of workloads x policies x CPU counts
//! and print one table of verdicts and key metrics.
//!
//! Each run is a child process of this same binary (`schedlab WORKLOAD
//! --policy P --cpus N --json --out DIR/WORKLOAD-P-Ncpu`), several at once
//! (`--jobs`): a run that crashes or hangs its VM takes down only its own
//! process, every run keeps its outputs where `schedlab compare` can pair
//! them with another gauntlet's, and the runs are exactly what a person
//! would get typing the same command.

mod row;
mod runner;

use crate::settings::parse_duration;
use crate::settings::sched::policy_by_name;
use clap::Args;
use row::RunRow;
use serde::Serialize;
use std::path::PathBuf;
use vmm::exit::{Failure, Result, code};

/// Shown at the end of `schedlab gauntlet --help`.
pub const EXIT_CODES: &str = "\
Exit codes:
  0   every run passed
  1   a run failed its verdict (and none errored)
  2   a run was inconclusive (and none failed or errored)
  64  usage error (bad list, unknown policy or workload); nothing was started
  70  a run errored (its guest failed, or it produced no report)";

#[derive(Debug, Clone, Args)]
pub struct GauntletArgs {
    /// Policies to run, comma-separated [default: every policy `schedlab
    /// policies` lists].
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub policies: Vec<String>,
    /// vCPU counts to run, comma-separated.
    #[arg(
        long,
        value_name = "LIST",
        value_delimiter = ',',
        default_value = "1,2",
        allow_hyphen_values = true
    )]
    pub cpus: Vec<String>,
    /// Operations to run (any operation subcommand), comma-separated.
    #[arg(
        long,
        value_name = "LIST",
        value_delimiter = ',',
        default_value = "spin"
    )]
    pub workloads: Vec<String>,
    /// Runs (VMs) at once [default: the host's CPU count].
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub jobs: Option<i64>,
    /// Where the runs keep their outputs: DIR/WORKLOAD-POLICY-Ncpu/ per
    /// run (result.json, timeline.svg, latency.svg), and DIR/gauntlet.json.
    #[arg(long, value_name = "DIR", default_value = "schedlab-gauntlet")]
    pub out: PathBuf,
    /// Every run's --duration [default: a short one per workload, e.g.
    /// 200ms for spin].
    #[arg(long, value_name = "DUR", allow_hyphen_values = true)]
    pub duration: Option<String>,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// Runs at most this many VMs at once, whatever `--jobs` says.
pub const MAX_JOBS: i64 = 64;

/// One run of the matrix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Job {
    pub workload: String,
    pub policy: String,
    pub cpus: u32,
    /// Its directory under `--out`.
    pub name: String,
    /// The arguments after `schedlab`.
    pub args: Vec<String>,
}

/// The validated matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub jobs: Vec<Job>,
    pub parallel: usize,
    pub out: PathBuf,
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
        let policies: Vec<&str> = if self.policies.is_empty() {
            policies::POLICIES
                .iter()
                .filter(|p| !p.test_only)
                .map(|p| p.name)
                .collect()
        } else {
            list("--policies", &self.policies)?
        };
        for p in &policies {
            let desc = policy_by_name(p)
                .map_err(|f| Failure::usage(f.message.replacen("--policy:", "--policies:", 1)))?;
            if desc.test_only {
                return Err(Failure::usage(format!(
                    "--policies: '{p}' is a test-only policy; it cannot run in a gauntlet"
                )));
            }
        }
        let mut cpus = Vec::new();
        for c in list("--cpus", &self.cpus)? {
            match c.parse::<u32>() {
                Ok(n) if n >= 1 && n as usize <= abi::memmap::MAX_CPUS => cpus.push(n),
                _ => {
                    return Err(Failure::usage(format!(
                        "--cpus: '{c}' is not a vCPU count between 1 and {}",
                        abi::memmap::MAX_CPUS
                    )));
                }
            }
        }
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
        let parallel = match self.jobs {
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
            Some(j) if (1..=MAX_JOBS).contains(&j) => j as usize,
            Some(j) => {
                return Err(Failure::usage(format!(
                    "--jobs must be between 1 and {MAX_JOBS}, got {j}"
                )));
            }
        };
        crate::outputs::check_dir(&self.out)
            .map_err(|f| Failure::usage(f.message.replacen("--out", "gauntlet --out", 1)))?;
        let mut jobs = Vec::new();
        for w in &workloads {
            for p in &policies {
                for &n in &cpus {
                    jobs.push(self.job(w, p, n));
                }
            }
        }
        Ok(Plan {
            jobs,
            parallel,
            out: self.out.clone(),
        })
    }

    fn job(&self, workload: &str, policy: &str, cpus: u32) -> Job {
        let name = format!("{workload}-{policy}-{cpus}cpu");
        let dir = self.out.join(&name);
        let mut args: Vec<String> = [workload, "--policy", policy, "--cpus"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.push(cpus.to_string());
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
        Job {
            workload: workload.to_string(),
            policy: policy.to_string(),
            cpus,
            name,
            args,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct GauntletReport {
    pub out: String,
    pub jobs: usize,
    pub runs: Vec<RunRow>,
    pub passed: usize,
    pub failed: usize,
    pub inconclusive: usize,
    pub errors: usize,
}

impl GauntletReport {
    fn new(out: String, jobs: usize, runs: Vec<RunRow>) -> Self {
        let count = |s: &str| runs.iter().filter(|r| r.verdict == s).count();
        GauntletReport {
            out,
            jobs,
            passed: count("pass"),
            failed: count("fail"),
            inconclusive: count("inconclusive"),
            errors: count("error"),
            runs,
        }
    }

    /// 70 if any run errored, else 1 if any failed its verdict, else 2 if
    /// any was inconclusive, else 0.
    pub fn exit_code(&self) -> u8 {
        if self.errors > 0 {
            code::GUEST
        } else if self.failed > 0 {
            code::VERDICT_FAIL
        } else if self.inconclusive > 0 {
            code::INCONCLUSIVE
        } else {
            code::OK
        }
    }
}

/// Entry point of the subcommand; returns the process exit code.
pub fn main(args: &GauntletArgs) -> u8 {
    let plan = match args
        .plan()
        .and_then(|p| crate::outputs::prepare_dir(&p.out).map(|_| p))
    {
        Ok(p) => p,
        Err(f) => {
            if args.json {
                let v = serde_json::json!({"status": "error", "error": f});
                vmm::outln!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            } else {
                vmm::errln!("schedlab gauntlet: {f}");
            }
            return f.exit_code();
        }
    };
    if !args.json {
        vmm::errln!(
            "gauntlet: {} runs, {} at a time, outputs in {}",
            plan.jobs.len(),
            plan.parallel,
            plan.out.display()
        );
    }
    let rows = runner::run_all(&plan, args.json);
    let report = GauntletReport::new(plan.out.display().to_string(), plan.parallel, rows);
    let text = serde_json::to_string_pretty(&report).unwrap_or_default();
    let summary = plan.out.join("gauntlet.json");
    if let Err(e) = std::fs::write(&summary, format!("{text}\n")) {
        vmm::errln!("schedlab gauntlet: cannot write {}: {e}", summary.display());
    }
    if args.json {
        vmm::outln!("{text}");
    } else {
        vmm::out!("{}", row::table(&report));
    }
    report.exit_code()
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
        let users = policies::POLICIES.iter().filter(|p| !p.test_only).count();
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
        assert!(a.ends_with("spin-rr-1cpu --duration 200ms"), "{a}");
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
    fn exit_code_is_error_then_fail_then_inconclusive() {
        let row = |v: &str| RunRow::for_test(v);
        let code = |vs: &[&str]| {
            GauntletReport::new(String::new(), 1, vs.iter().map(|v| row(v)).collect()).exit_code()
        };
        assert_eq!(code(&["pass", "pass"]), 0);
        assert_eq!(code(&["pass", "inconclusive"]), 2);
        assert_eq!(code(&["inconclusive", "fail"]), 1);
        assert_eq!(code(&["fail", "error"]), 70);
    }
}
