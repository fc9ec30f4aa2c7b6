//! Flags that shape the virtual machine's scheduling: how many vCPUs, which
//! policy, how often the timer ticks and what an idle CPU does. Validated
//! here, before /dev/kvm is opened, into the values the boot info carries.

pub use super::policy::DEFAULT_POLICY;
use super::policy::{self as policy_path, Policy};
use super::topology;
use abi::boot::{IDLE_HALT, IDLE_POLL, MAX_TICK_HZ};
use abi::memmap::MAX_CPUS;
use abi::topology::Topology;
use clap::{Args, ValueEnum};
use std::path::Path;
use vmm::exit::{Failure, Result};
use vmm::vm::setup::SchedBoot;

#[derive(Debug, Clone, Args)]
pub struct SchedArgs {
    /// Virtual CPUs, each a host thread (1..64) [default: the
    /// `--topology`'s count, else 1].
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub cpus: Option<i64>,
    /// The machine's shape: Ns,Nl,Nc,Nt (sockets, LLCs per socket, cores
    /// per LLC, threads per core, e.g. 2s,2l,4c,2t = 32 CPUs) or a preset
    /// (see --help); implies --cpus [default: flat, one LLC of --cpus
    /// single-thread cores].
    #[arg(long, value_name = "SHAPE", long_help = topology_help())]
    pub topology: Option<String>,
    /// Scheduling policy run by the guest kernel: a built-in (`schedlab
    /// policies` lists them), a policy image (its ELF, or its crate's
    /// directory, built with `cargo build --release`), or a sched_ext
    /// BPF object as clang built it (`x.bpf.o`; see `--bpf-set`).
    #[arg(long, value_name = "NAME|PATH", default_value = DEFAULT_POLICY)]
    pub policy: String,
    /// Set a sched_ext object's `const volatile` knob (or another global)
    /// before the run, as its loader's skeleton would: `--bpf-set
    /// fifo_sched=1`. Repeatable; only with a `.bpf.o` policy.
    #[arg(long = "bpf-set", value_name = "NAME=VALUE")]
    pub bpf_set: Vec<String>,
    /// TEST ONLY: the pid the `starve` policy never runs.
    #[arg(long, value_name = "PID", hide = true)]
    pub starve_pid: Option<u32>,
    /// TEST ONLY: the argument a policy image reads (`policy_sdk::arg()`);
    /// the test-only `hostile` image picks its misbehaviour by it.
    #[arg(long, value_name = "N", hide = true)]
    pub policy_arg: Option<u32>,
    /// LAPIC timer ticks per second on every vCPU (1..5000): preemption and
    /// the scheduler's clock.
    #[arg(
        long,
        value_name = "HZ",
        default_value_t = 1000,
        allow_negative_numbers = true
    )]
    pub tick_hz: i64,
    /// What an idle vCPU does: halt (sleep until an interrupt, costs the
    /// host nothing) or poll (spin on a flag: lower wake-up latency, burns
    /// a host CPU per idle vCPU).
    #[arg(long, value_enum, value_name = "MODE", default_value = "halt")]
    pub idle: IdleMode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum IdleMode {
    Halt,
    Poll,
}

impl IdleMode {
    pub fn code(self) -> u32 {
        match self {
            IdleMode::Halt => IDLE_HALT,
            IdleMode::Poll => IDLE_POLL,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            IdleMode::Halt => "halt",
            IdleMode::Poll => "poll",
        }
    }
}

/// `--topology`'s long help: the grammar, then each preset and what it
/// models.
fn topology_help() -> String {
    let mut h = String::from(
        "The machine's shape, which implies --cpus: Ns,Nl,Nc,Nt = sockets (each a NUMA node), \
         last-level caches per socket, cores per LLC, SMT threads per core, e.g. 2s,2l,4c,2t = \
         32 CPUs. CPUs are numbered thread first (SMT siblings adjacent), then core, LLC, \
         socket. Policies, the guest's CPUID and the report see this shape. [default: flat, one \
         LLC of --cpus single-thread cores]\n\nPresets:",
    );
    for p in topology::PRESETS {
        h.push_str(&format!(
            "\n  {:<8} {} = {} CPUs: {}",
            p.name,
            topology::format(&p.topology),
            p.topology.cpus(),
            p.models
        ));
    }
    h
}

/// Validated scheduling settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchedSettings {
    pub cpus: u32,
    pub policy: Policy,
    pub policy_arg: u32,
    pub tick_hz: u32,
    pub idle: IdleMode,
    /// The machine's shape; `topology.cpus() == cpus`.
    pub topology: Topology,
    /// The `--topology` preset's name, if one was given.
    pub topology_preset: Option<&'static str>,
}

impl SchedSettings {
    pub fn boot(&self) -> SchedBoot {
        SchedBoot {
            policy_arg: self.policy_arg,
            tick_hz: self.tick_hz,
            idle: self.idle.code(),
            topology: self.topology,
        }
    }
}

impl SchedArgs {
    /// `slice_ns` is the run's `--slice` (a BPF object's `SCX_SLICE_DFL`).
    pub fn validate(&self, slice_ns: u64) -> Result<SchedSettings> {
        if let Some(n) = self.cpus
            && !(1..=MAX_CPUS as i64).contains(&n)
        {
            return Err(Failure::usage(format!(
                "--cpus must be between 1 and {MAX_CPUS} (the guest memory layout has room for \
                 {MAX_CPUS} vCPUs), got {n}"
            )));
        }
        let (cpus, topology, topology_preset) = self.shape()?;
        if self.tick_hz < 1 {
            return Err(Failure::usage(format!(
                "--tick-hz must be at least 1, got {}",
                self.tick_hz
            )));
        }
        if self.tick_hz > MAX_TICK_HZ as i64 {
            return Err(Failure::usage(format!(
                "--tick-hz {} is above {MAX_TICK_HZ}: KVM's LAPIC timer cannot fire more often than \
                 every 200 µs (its min_timer_period_us), so a faster tick would silently run at \
                 {MAX_TICK_HZ} Hz",
                self.tick_hz
            )));
        }
        let mut policy = resolve_policy("--policy", &self.policy)?;
        let sets = super::bpf_object::parse_sets(&self.bpf_set)?;
        match &policy.bpf {
            Some(obj) => {
                let obj = obj.reload("--policy", cpus, slice_ns, &sets)?;
                policy.bpf = Some(std::sync::Arc::new(obj));
            }
            None if !sets.is_empty() => {
                return Err(Failure::usage(format!(
                    "--bpf-set applies to a sched_ext BPF object (--policy x.bpf.o); policy {} \
                     is not one",
                    policy.name
                )));
            }
            None => {}
        }
        // The test-only `starve` never runs the pid it is given.
        let starve = policy.test_only && policy.name == "starve";
        let policy_arg = match (starve, self.starve_pid) {
            (true, Some(pid)) if pid > 0 => pid,
            (true, _) => {
                return Err(Failure::usage(format!(
                    "--policy {} is test-only and needs --starve-pid PID (a pid > 0)",
                    policy.name
                )));
            }
            (false, Some(_)) => {
                return Err(Failure::usage(
                    "--starve-pid only applies to the test-only policy `starve`",
                ));
            }
            (false, None) => self.policy_arg.unwrap_or(0),
        };
        Ok(SchedSettings {
            cpus,
            policy,
            policy_arg,
            tick_hz: self.tick_hz as u32,
            idle: self.idle,
            topology,
            topology_preset,
        })
    }

    /// The CPU count and shape from `--cpus` (already range-checked) and
    /// `--topology`: either implies the other; both must agree.
    fn shape(&self) -> Result<(u32, Topology, Option<&'static str>)> {
        let Some(text) = &self.topology else {
            let n = self.cpus.unwrap_or(1) as u32;
            return Ok((n, Topology::flat(n), None));
        };
        let p = topology::parse(text)
            .map_err(|why| Failure::usage(format!("--topology: {why}; {}", topology::grammar())))?;
        let n = p.topology.cpus();
        match self.cpus {
            Some(c) if c != i64::from(n) => Err(Failure::usage(format!(
                "--topology {} has {n} CPUs but --cpus is {c}: drop --cpus (the topology \
                 implies it) or make the two agree",
                text.trim()
            ))),
            _ => Ok((n, p.topology, p.preset)),
        }
    }
}

/// What `--policy` text names: a path (see [`policy_path::is_path`]) is
/// read as a policy image, anything else is a built-in's name.
pub fn resolve_policy(flag: &str, text: &str) -> Result<Policy> {
    if policy_path::is_path(text) {
        policy_path::load(flag, Path::new(text))
    } else {
        policy_by_name(text)
    }
}

/// The built-in policy `name`; the error lists every policy a user may
/// pick (test-only ones are left out: they exist for schedlab's own
/// tests).
pub fn policy_by_name(name: &str) -> Result<Policy> {
    if let Some(p) = Policy::builtin(name) {
        let p = p?;
        if p.bpf_runtime {
            return Err(Failure::usage(format!(
                "--policy: '{name}' is schedlab's runtime for sched_ext BPF objects, not a policy \
                 by itself: give the object, e.g. --policy scx_simple.bpf.o"
            )));
        }
        return Ok(p);
    }
    let valid: Vec<String> = Policy::builtins()?
        .into_iter()
        .filter(|p| !p.test_only && !p.bpf_runtime)
        .map(|p| p.name)
        .collect();
    Err(Failure::usage(format!(
        "--policy: unknown policy '{name}'; valid policies: {} (see `schedlab policies`, or give \
         a policy image's path)",
        valid.join(", ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sched(extra: &[&str]) -> Result<SchedSettings> {
        let mut argv = vec!["schedlab", "spin"];
        argv.extend_from_slice(extra);
        let a: crate::operations::spin::SpinArgs = crate::parse_args(&argv);
        a.common.sched.validate(1_000_000)
    }

    fn err(extra: &[&str]) -> String {
        sched(extra).unwrap_err().message
    }

    #[test]
    fn defaults_are_one_cpu_rr_1khz_halt() {
        let s = sched(&[]).unwrap();
        assert_eq!((s.cpus, s.policy.name.as_str(), s.tick_hz), (1, "rr", 1000));
        assert_eq!(s.idle, IdleMode::Halt);
        let b = s.boot();
        assert_eq!((b.policy_arg, b.idle), (0, IDLE_HALT));
        assert!(s.policy.path.is_none(), "a built-in is embedded");
    }

    #[test]
    fn cpu_count_is_bounded_and_names_the_flag() {
        assert_eq!(sched(&["--cpus", "64"]).unwrap().cpus, 64);
        assert_eq!(sched(&[]).unwrap().topology, Topology::flat(1));
        for bad in ["0", "65", "-1"] {
            let m = err(&["--cpus", bad]);
            assert!(m.starts_with("--cpus must be between 1 and 64"), "{m}");
            assert!(m.ends_with(&format!("got {bad}")), "{m}");
        }
    }

    #[test]
    fn a_topology_implies_the_cpu_count_and_must_agree_with_cpus() {
        let s = sched(&["--topology", "1s,2l,2c,2t"]).unwrap();
        assert_eq!((s.cpus, s.topology.llcs(), s.topology_preset), (8, 2, None));
        assert_eq!(s.boot().topology, s.topology);
        let s = sched(&["--topology", "laptop", "--cpus", "8"]).unwrap();
        assert_eq!((s.cpus, s.topology_preset), (8, Some("laptop")));
        let s = sched(&["--cpus", "3"]).unwrap();
        assert_eq!((s.topology, s.topology_preset), (Topology::flat(3), None));
        let m = err(&["--topology", "1s,2l,2c,2t", "--cpus", "4"]);
        assert!(
            m.starts_with("--topology 1s,2l,2c,2t has 8 CPUs but --cpus is 4"),
            "{m}"
        );
        // A bad --cpus is named first, as before.
        assert!(err(&["--topology", "laptop", "--cpus", "0"]).starts_with("--cpus must be"));
    }

    #[test]
    fn a_malformed_topology_names_the_flag_and_shows_the_grammar_and_presets() {
        for bad in [
            "",
            "2s,2l",
            "1s,1l,1c,1t,1t",
            "0s,1l,1c,1t",
            "xs,1l,1c,1t",
            "huge",
        ] {
            let f = sched(&["--topology", bad]).unwrap_err();
            assert_eq!(f.exit_code(), 64);
            let m = f.message;
            assert!(m.starts_with("--topology: "), "{m}");
            assert!(m.contains("give Ns,Nl,Nc,Nt"), "{m}");
            for p in topology::PRESETS {
                assert!(m.contains(p.name), "{m}");
            }
        }
        assert!(err(&["--topology", "3s,3l,3c,3t"]).contains("81 CPUs"));
    }

    #[test]
    fn the_help_lists_every_preset_with_what_it_models() {
        let h = topology_help();
        for p in topology::PRESETS {
            assert!(h.contains(p.name) && h.contains(p.models), "{h}");
        }
    }

    #[test]
    fn tick_rate_above_the_lapic_floor_is_explained() {
        assert_eq!(sched(&["--tick-hz", "5000"]).unwrap().tick_hz, 5000);
        let m = err(&["--tick-hz", "5001"]);
        assert!(m.starts_with("--tick-hz 5001 is above 5000"), "{m}");
        assert!(m.contains("200 µs"), "{m}");
        assert!(err(&["--tick-hz", "0"]).starts_with("--tick-hz must be at least 1"));
    }

    #[test]
    fn unknown_policy_lists_the_valid_ones_but_not_test_only_ones() {
        let m = err(&["--policy", "nope"]);
        assert!(
            m.starts_with("--policy: unknown policy 'nope'; valid policies: "),
            "{m}"
        );
        let all = Policy::builtins().unwrap();
        assert!(all.iter().any(|p| p.test_only) && all.iter().any(|p| !p.test_only));
        for p in &all {
            let offered = !p.test_only && !p.bpf_runtime;
            assert_eq!(m.contains(&format!(" {}", p.name)), offered, "{m}");
        }
        for p in all.iter().filter(|p| !p.test_only && !p.bpf_runtime) {
            assert_eq!(sched(&["--policy", &p.name]).unwrap().policy.name, p.name);
        }
        // The BPF runtime is never a policy by itself.
        let m = err(&["--policy", "bpf"]);
        assert!(m.contains("sched_ext BPF objects"), "{m}");
    }

    #[test]
    fn starve_needs_its_pid_and_the_pid_needs_starve() {
        let s = sched(&["--policy", "starve", "--starve-pid", "3"]).unwrap();
        assert_eq!((s.policy.name.as_str(), s.boot().policy_arg), ("starve", 3));
        assert!(err(&["--policy", "starve"]).contains("needs --starve-pid"));
        assert!(err(&["--policy", "starve", "--starve-pid", "0"]).contains("needs --starve-pid"));
        assert!(err(&["--starve-pid", "3"]).starts_with("--starve-pid only applies"));
    }

    #[test]
    fn a_policy_path_that_does_not_exist_is_a_usage_error_naming_it() {
        let f = sched(&["--policy", "./nope"]).unwrap_err();
        assert_eq!(f.exit_code(), 64);
        assert!(
            f.message.starts_with("--policy: ./nope: no such file"),
            "{f}"
        );
        let f = sched(&["--policy", "nope.elf"]).unwrap_err();
        assert!(
            f.message.starts_with("--policy: nope.elf: no such file"),
            "{f}"
        );
    }

    #[test]
    fn a_policy_directory_without_cargo_toml_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display().to_string();
        let f = sched(&["--policy", &d]).unwrap_err();
        assert_eq!(f.exit_code(), 64);
        assert!(
            f.message
                .starts_with(&format!("--policy: {d}: a directory given as a policy")),
            "{f}"
        );
    }

    #[test]
    fn idle_mode_maps_to_the_boot_info_codes() {
        assert_eq!(sched(&["--idle", "poll"]).unwrap().boot().idle, IDLE_POLL);
        assert_eq!(sched(&["--idle", "halt"]).unwrap().boot().idle, IDLE_HALT);
    }
}
