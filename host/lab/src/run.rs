//! A run described in code, for Rust tests of schedulers: pick an
//! operation, give it the flags a person would type, run it, read the
//! report and its verdict. Validation is the command line's own, so a bad
//! description fails the same way (a usage error, before any VM starts).

use crate::operations::{self, Entry, Prepared};
use crate::report::Report;
use vmm::exit::{Failure, Result};

/// One run: an operation and its flags.
#[derive(Clone)]
pub struct Run {
    entry: &'static dyn Entry,
    flags: Vec<String>,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "schedlab {} {}",
            self.entry.subcommand(),
            self.flags.join(" ")
        )
    }
}

impl Run {
    /// A run of `operation` (its name or its subcommand) with its defaults.
    pub fn new(operation: &str) -> Result<Self> {
        let entry = operations::OPERATIONS
            .iter()
            .copied()
            .find(|o| o.name() == operation || o.subcommand() == operation)
            .ok_or_else(|| {
                let names: Vec<&str> = operations::OPERATIONS.iter().map(|o| o.name()).collect();
                Failure::usage(format!(
                    "'{operation}' is not an operation; operations: {}",
                    names.join(", ")
                ))
            })?;
        // Machine-readable: no progress bar, no guest log on stderr.
        Ok(Run {
            entry,
            flags: vec!["--json".into()],
        })
    }

    /// `--NAME VALUE` (e.g. `.flag("--tasks", 3)`).
    pub fn flag(mut self, name: &str, value: impl ToString) -> Self {
        self.flags.push(name.to_string());
        self.flags.push(value.to_string());
        self
    }

    /// A flag without a value (e.g. `.switch("--same-cpu")`), or a
    /// positional argument (a scenario file).
    pub fn switch(mut self, name: &str) -> Self {
        self.flags.push(name.to_string());
        self
    }

    /// `--cpus N`.
    pub fn cpus(self, n: u32) -> Self {
        self.flag("--cpus", n)
    }

    /// `--policy NAME`.
    pub fn policy(self, name: &str) -> Self {
        self.flag("--policy", name)
    }

    /// `--duration DUR`, e.g. "200ms".
    pub fn duration(self, d: &str) -> Self {
        self.flag("--duration", d)
    }

    /// Validate everything, start nothing.
    pub fn prepare(&self) -> Result<Prepared> {
        let m = self
            .entry
            .command()
            .no_binary_name(true)
            .try_get_matches_from(&self.flags)
            .map_err(|e| Failure::usage(e.render().to_string().trim_end().to_string()))?;
        self.entry.prepare(&m)
    }

    /// Boot the VM, run, judge: the report whatever the run did (its
    /// `exit_code()` is the command line's). Err only for a description
    /// the command line would refuse.
    pub fn run(&self) -> Result<Report> {
        operations::run(self.prepare()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_descriptions_are_refused_before_any_vm() {
        let e = Run::new("nope").unwrap_err();
        assert!(e.message.contains("operations: spin"), "{e}");
        assert_eq!(e.exit_code(), 64);
        let e = Run::new("spin").unwrap().cpus(0).prepare().err().unwrap();
        assert!(e.message.starts_with("--cpus"), "{e}");
        let e = Run::new("spin")
            .unwrap()
            .flag("--bogus", 1)
            .prepare()
            .err()
            .unwrap();
        assert!(e.message.contains("--bogus"), "{e}");
    }

    #[test]
    fn a_description_becomes_its_operation_config() {
        let p = Run::new("run")
            .unwrap()
            .switch("/nonexistent/f.toml")
            .prepare()
            .err()
            .unwrap();
        assert!(p.message.contains("cannot read the scenario file"), "{p}");
        let p = Run::new("spin")
            .unwrap()
            .cpus(2)
            .policy("vtime")
            .flag("--tasks", 3)
            .prepare()
            .unwrap();
        assert_eq!(p.name, "spin");
        assert_eq!(p.config_json["cpus"], 2);
        assert_eq!(p.config_json["policy"], "vtime");
        assert_eq!(p.config_json["tasks"], 3);
        assert_eq!(p.config_magic, abi::config::SPIN_MAGIC);
    }
}
