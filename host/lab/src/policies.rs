//! `schedlab policies`: the built-in policies, straight from the images
//! embedded in this binary (the folders under `guest/policies/`): each
//! image's own name, description and promises, so the list can never
//! disagree with what runs. Test-only images are left out.

use crate::settings::policy::{DEFAULT_POLICY, Policy};
use clap::Args;
use serde::Serialize;
use std::fmt::Write as _;
use vmm::exit::code;

#[derive(Debug, Clone, Args)]
pub struct PoliciesArgs {
    /// Print one JSON array instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Describe this sched_ext BPF object instead (`x.bpf.o`): which
    /// program each callback runs, what the loader noted, the program
    /// image's size and how long loading took. Refuses what `--policy`
    /// would refuse, with the same message.
    #[arg(value_name = "OBJECT")]
    pub object: Option<std::path::PathBuf>,
}

/// `schedlab policies x.bpf.o`.
#[derive(Debug, Serialize)]
struct ObjectInfo {
    object: String,
    ops_name: String,
    programs: Vec<crate::settings::bpf_object::BoundProgram>,
    notes: Vec<String>,
    image_bytes: usize,
    /// Reading and relocating the object on the host, microseconds.
    load_us: u64,
}

fn describe(path: &std::path::Path, json: bool) -> u8 {
    use crate::settings::bpf_object::{BoundProgram, BpfObject, DEFAULT_SLICE_NS};
    let t = std::time::Instant::now();
    let obj = match BpfObject::load("schedlab policies", path, 1, DEFAULT_SLICE_NS, &[]) {
        Ok(o) => o,
        Err(f) => {
            vmm::errln!("{f}");
            return f.exit_code();
        }
    };
    let info = ObjectInfo {
        load_us: t.elapsed().as_micros() as u64,
        object: obj.path.display().to_string(),
        ops_name: obj.loaded.name().to_string(),
        programs: obj
            .loaded
            .programs()
            .into_iter()
            .map(|(callback, program)| BoundProgram { callback, program })
            .collect(),
        notes: obj.loaded.notes().to_vec(),
        image_bytes: obj.loaded.image().len(),
    };
    if json {
        match serde_json::to_string_pretty(&info) {
            Ok(t) => vmm::outln!("{t}"),
            Err(e) => {
                vmm::errln!("schedlab policies: cannot encode: {e}");
                return code::ENVIRONMENT;
            }
        }
        return code::OK;
    }
    let mut s = String::new();
    let _ = writeln!(s, "{}: sched_ext ops \"{}\"", info.object, info.ops_name);
    for p in &info.programs {
        let _ = writeln!(s, "  {:<12} {}", p.callback, p.program);
    }
    for n in &info.notes {
        let _ = writeln!(s, "  note: {n}");
    }
    let _ = writeln!(
        s,
        "  program image {} bytes, loaded in {} us; run it with --policy {}",
        info.image_bytes,
        info.load_us,
        path.display()
    );
    vmm::out!("{s}");
    code::OK
}

#[derive(Debug, Serialize, PartialEq, Eq)]
struct Row {
    name: String,
    summary: String,
    default: bool,
    /// The image's size in guest memory, bytes (`.bss` included).
    size: u64,
    /// What the verdict holds its runs to.
    promises: Promises,
}

/// A policy's promises, as the verdict judges them.
#[derive(Debug, Serialize, PartialEq, Eq)]
struct Promises {
    /// "equal", "weighted" or "none".
    shares: &'static str,
    bounded_wait: bool,
    deadlines: bool,
}

impl Promises {
    /// "promises: weighted shares, bounded wait"
    fn text(&self) -> String {
        let mut p = Vec::new();
        if self.shares != "none" {
            p.push(format!("{} shares", self.shares));
        }
        if self.bounded_wait {
            p.push("bounded wait".into());
        }
        if self.deadlines {
            p.push("deadlines".into());
        }
        if p.is_empty() {
            "promises nothing (judged only with --check)".into()
        } else {
            format!("promises {}", p.join(", "))
        }
    }
}

fn rows() -> vmm::exit::Result<Vec<Row>> {
    Ok(Policy::builtins()?
        .into_iter()
        .filter(|p| !p.test_only && !p.bpf_runtime)
        .map(|p| Row {
            default: p.name == DEFAULT_POLICY,
            size: p.image.end.saturating_sub(abi::memmap::POLICY_LOAD_ADDR),
            name: p.name,
            summary: p.summary,
            promises: Promises {
                shares: p.promises.shares.name(),
                bounded_wait: p.promises.bounded_wait,
                deadlines: p.promises.deadlines,
            },
        })
        .collect())
}

fn table(rows: &[Row]) -> String {
    let width = rows.iter().map(|r| r.name.len()).max().unwrap_or(0);
    let mut s = String::new();
    for r in rows {
        let default = if r.default && !r.summary.contains("(default)") {
            " (default)"
        } else {
            ""
        };
        let _ = writeln!(s, "{:<width$}  {}{default}", r.name, r.summary);
        let _ = writeln!(s, "{:<width$}  {}", "", r.promises.text());
    }
    s
}

pub fn main(args: &PoliciesArgs) -> u8 {
    if let Some(obj) = &args.object {
        return describe(obj, args.json);
    }
    let rows = match rows() {
        Ok(r) => r,
        Err(f) => {
            vmm::errln!("schedlab policies: {f}");
            return f.exit_code();
        }
    };
    if args.json {
        match serde_json::to_string_pretty(&rows) {
            Ok(t) => vmm::outln!("{t}"),
            Err(e) => {
                vmm::errln!("schedlab policies: cannot encode the list: {e}");
                return code::ENVIRONMENT;
            }
        }
    } else {
        vmm::out!("{}", table(&rows));
    }
    code::OK
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_every_user_policy_once_with_its_summary() {
        let rows = rows().unwrap();
        for p in Policy::builtins().unwrap() {
            let n = rows.iter().filter(|r| r.name == p.name).count();
            assert_eq!(n, usize::from(!p.test_only && !p.bpf_runtime), "{}", p.name);
            assert!(!p.summary.is_empty(), "{} describes itself", p.name);
        }
        // One image per folder under guest/policies/, named as its folder.
        let names: Vec<&str> = vmm::images::policy_names().collect();
        for r in &rows {
            assert!(names.contains(&r.name.as_str()), "{}", r.name);
            assert!(r.size > 0 && r.size <= abi::memmap::POLICY_MAX_SIZE);
        }
        assert_eq!(rows.iter().filter(|r| r.default).count(), 1);
        let t = table(&rows);
        for r in &rows {
            let line = t.lines().find(|l| l.starts_with(&r.name)).unwrap();
            assert!(line.contains(&r.summary), "{line}");
        }
        assert!(!t.contains("starve"));
        assert!(t.contains("promises nothing"), "fifo: {t}");
        assert!(
            t.contains("promises weighted shares, bounded wait"),
            "vtime: {t}"
        );
        assert_eq!(t.matches("(default)").count(), 1, "{t}");
        let v = serde_json::to_value(&rows).unwrap();
        assert!(v[0].get("name").is_some() && v[0].get("summary").is_some());
    }
}
