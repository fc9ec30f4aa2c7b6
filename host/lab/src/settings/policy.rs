//! What `--policy` names: a built-in policy (`rr`, `vtime`... images
//! embedded in the binary from `guest/policies/`) or a user's policy
//! image, given as the ELF or as the policy crate's directory (built here
//! with `cargo build --release`). Either way the run gets a [`Policy`]:
//! the checked image the VMM loads, its name and what it promises (which
//! the judge holds it to). Everything here happens before any VM exists.

use abi::policy::{SHARES_EQUAL, SHARES_WEIGHTED};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use vmm::exit::{ErrorKind, Failure, Result};
use vmm::policy_image::PolicyImage;

/// The policy a run gets without `--policy`.
pub const DEFAULT_POLICY: &str = "rr";

/// What a policy promises its tasks (from its image's `PolicyOps`). The
/// host judges a run by what its policy promises (a FIFO policy never
/// promised fair shares, so an unfair FIFO run is not a failure); the rest
/// is still measured and shown, and `--check` asks for it to be judged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Promises {
    /// How the CPU is shared among tasks that always want it.
    pub shares: Shares,
    /// No runnable task waits unboundedly while others run.
    pub bounded_wait: bool,
    /// Periodic tasks meet their deadlines while the load allows.
    pub deadlines: bool,
}

/// A policy's promise about CPU shares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shares {
    /// None: whoever runs keeps the CPU (FIFO).
    None,
    /// Equal shares, whatever the weights (round-robin).
    Equal,
    /// Shares in proportion to the weights.
    Weighted,
}

impl Shares {
    pub const fn name(self) -> &'static str {
        match self {
            Shares::None => "none",
            Shares::Equal => "equal",
            Shares::Weighted => "weighted",
        }
    }
}

/// The policy a run uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// The image's own name (its `PolicyOps::name`).
    pub name: String,
    pub summary: String,
    pub promises: Promises,
    /// Made for schedlab's own tests (`POLICY_FLAG_TEST_ONLY`).
    pub test_only: bool,
    /// The BPF runtime image (`POLICY_FLAG_BPF_RUNTIME`): it runs a
    /// sched_ext object and is never a policy by itself, so lists leave it
    /// out like a test-only one.
    pub bpf_runtime: bool,
    /// The checked image the VMM loads.
    pub image: Arc<PolicyImage>,
    /// The ELF it was read from; None for a built-in (embedded).
    pub path: Option<PathBuf>,
    /// A sched_ext BPF object the image (the BPF runtime) runs.
    pub bpf: Option<super::bpf_object::SharedBpfObject>,
}

impl Policy {
    /// The built-in policy `name`, if there is one.
    pub fn builtin(name: &str) -> Option<Result<Policy>> {
        Some(vmm::images::builtin_policy(name)?.map(|i| Policy::from_image(i, None)))
    }

    /// Every built-in policy (test-only ones included), by name.
    pub fn builtins() -> Result<Vec<Policy>> {
        vmm::images::policy_names()
            .filter_map(Policy::builtin)
            .collect()
    }

    pub fn from_image(image: PolicyImage, path: Option<PathBuf>) -> Policy {
        let h = &image.header;
        let shares = match h.shares {
            SHARES_EQUAL => Shares::Equal,
            SHARES_WEIGHTED => Shares::Weighted,
            // PolicyImage::parse accepts only the SHARES_* values.
            _ => Shares::None,
        };
        Policy {
            name: h.name.clone(),
            summary: h.description.clone(),
            promises: Promises {
                shares,
                bounded_wait: h.bounded_wait,
                deadlines: h.deadlines,
            },
            test_only: h.test_only,
            bpf_runtime: h.bpf_runtime,
            image: Arc::new(image),
            path,
            bpf: None,
        }
    }

    /// What the VMM writes for the policy besides its image.
    pub fn data(&self) -> Option<&vmm::vm::run::PolicyData> {
        self.bpf.as_ref().map(|b| b.data())
    }

    /// A sched_ext object run by the BPF runtime image. What it promises:
    /// bounded waits (sched_ext's watchdog ends a scheduler that leaves a
    /// task runnable too long); its shares are judged with `--check
    /// shares`, since an object does not say what it promises.
    pub fn from_bpf(obj: super::bpf_object::BpfObject) -> Result<Policy> {
        let runtime =
            vmm::images::builtin_policy(super::bpf_object::RUNTIME_POLICY).ok_or_else(|| {
                Failure::image("this schedlab binary has no BPF runtime image: run `make`")
            })??;
        let mut p = Policy::from_image(runtime, None);
        p.name = super::bpf_object::BpfObject::short_name(&obj.path);
        p.summary = format!(
            "sched_ext BPF object {} (ops {}), run by schedlab's BPF runtime",
            obj.path.display(),
            obj.loaded.name()
        );
        p.promises = Promises {
            shares: Shares::None,
            bounded_wait: true,
            deadlines: false,
        };
        p.test_only = false;
        p.bpf_runtime = false;
        p.path = Some(obj.path.clone());
        p.bpf = Some(Arc::new(obj));
        Ok(p)
    }
}

/// Whether `--policy` text names a path rather than a built-in: it
/// contains '/', ends in `.elf`, or is no built-in's name but exists.
pub fn is_path(text: &str) -> bool {
    text.contains('/')
        || text.ends_with(".elf")
        || text.ends_with(".o")
        || (!vmm::images::policy_names().any(|n| n == text) && Path::new(text).exists())
}

const WHAT: &str = "give a built-in policy (`schedlab policies` lists them), a policy image \
                    (the ELF a policy crate builds), a policy crate's directory or a sched_ext \
                    BPF object (.bpf.o)";

/// The policy at `path` (a relative one from the current directory): an
/// ELF is read and checked, a directory is built as a policy crate first.
/// A path that does not exist, or a directory that is not a crate, is a
/// usage error naming it; an image that is not a usable policy is an
/// image error (exit 69).
pub fn load(flag: &str, path: &Path) -> Result<Policy> {
    let shown = path.display();
    let meta = std::fs::metadata(path)
        .map_err(|e| Failure::usage(format!("{flag}: {shown}: {}: {WHAT}", io_why(&e))))?;
    let elf = if meta.is_dir() {
        build_crate(flag, path)?
    } else {
        path.to_path_buf()
    };
    if is_bpf_file(&elf) {
        // Checked here for one CPU and the default slice; the run loads
        // it again for its own (`SchedArgs::validate`).
        let obj = super::bpf_object::BpfObject::load(
            flag,
            &elf,
            1,
            super::bpf_object::DEFAULT_SLICE_NS,
            &[],
        )?;
        return Policy::from_bpf(obj);
    }
    let image = PolicyImage::read(&elf).map_err(|f| {
        let message = f.message.replacen("policy image ", "", 1);
        Failure::new(f.kind, format!("{flag}: policy image {message}"))
    })?;
    let abs = std::path::absolute(&elf).unwrap_or(elf);
    Ok(Policy::from_image(image, Some(abs)))
}

/// Whether the file at `path` is an eBPF object (its first bytes say so).
fn is_bpf_file(path: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 64];
    std::fs::File::open(path)
        .and_then(|mut f| f.read(&mut head))
        .is_ok_and(|n| super::bpf_object::is_bpf_object(&head[..n]))
}

fn io_why(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".into(),
        _ => e.to_string(),
    }
}

/// The package name in `dir/Cargo.toml`.
fn package_name(flag: &str, dir: &Path) -> Result<String> {
    let manifest = dir.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).map_err(|e| {
        Failure::usage(format!(
            "{flag}: {}: a directory given as a policy must be a policy crate, and {} cannot be \
             read ({}): {WHAT}",
            dir.display(),
            manifest.display(),
            io_why(&e)
        ))
    })?;
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        Failure::usage(format!(
            "{flag}: {} is not valid TOML: {}",
            manifest.display(),
            e.message()
        ))
    })?;
    table
        .get("package")
        .and_then(|p| p.get("name"))
        .and_then(|n| n.as_str())
        .map(str::to_string)
        .ok_or_else(|| {
            Failure::usage(format!(
                "{flag}: {} has no [package] name (a workspace? give the policy crate's own \
                 directory)",
                manifest.display()
            ))
        })
}

/// `cargo build --release` in `dir`; the ELF it made.
fn build_crate(flag: &str, dir: &Path) -> Result<PathBuf> {
    let name = package_name(flag, dir)?;
    vmm::errln!(
        "building policy crate {} (cargo build --release)...",
        dir.display()
    );
    // Diagnostics go to our stderr as cargo renders them; stdout carries
    // the artifacts as JSON, which say where the binary is (a crate in a
    // workspace or with its own target dir builds elsewhere).
    let out = Command::new("cargo")
        .args([
            "build",
            "--release",
            "--message-format=json-render-diagnostics",
        ])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| {
            Failure::new(
                ErrorKind::Host,
                format!(
                    "{flag}: cannot run cargo to build the policy crate {}: {e}: install Rust \
                     (rustup) or give the built ELF instead",
                    dir.display()
                ),
            )
        })?;
    if !out.status.success() {
        return Err(Failure::image(format!(
            "{flag}: building the policy crate {} failed (cargo build --release: {}): see cargo's \
             messages above",
            dir.display(),
            out.status
        )));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let built = executables(&stdout);
    let pick = built
        .iter()
        .find(|p| p.file_name().is_some_and(|f| f == name.as_str()))
        .or(if built.len() == 1 {
            built.first()
        } else {
            None
        })
        .cloned();
    let elf = pick.unwrap_or_else(|| dir.join("target/x86_64-unknown-none/release").join(&name));
    if !elf.is_file() {
        return Err(Failure::image(format!(
            "{flag}: cargo built the policy crate {} but made no {} (a policy crate builds a \
             binary named after its package for x86_64-unknown-none: see the SDK's template)",
            dir.display(),
            elf.display()
        )));
    }
    Ok(elf)
}

/// The executables cargo's JSON messages say it made.
fn executables(json_lines: &str) -> Vec<PathBuf> {
    json_lines
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["reason"] == "compiler-artifact")
        .filter_map(|v| v["executable"].as_str().map(PathBuf::from))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_a_slash_or_elf_are_paths_and_built_ins_are_not() {
        assert!(is_path("./nope"));
        assert!(is_path("my.elf"));
        assert!(is_path("/abs/dir"));
        assert!(!is_path("rr"));
        assert!(!is_path("no-such-policy"));
    }

    #[test]
    fn a_missing_path_is_a_usage_error_naming_it() {
        let f = load("--policy", Path::new("./nope")).unwrap_err();
        assert_eq!(f.kind, ErrorKind::Usage);
        assert!(
            f.message
                .starts_with("--policy: ./nope: no such file or directory: give a built-in"),
            "{f}"
        );
    }

    #[test]
    fn a_directory_without_cargo_toml_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let f = load("--policy", dir.path()).unwrap_err();
        assert_eq!(f.kind, ErrorKind::Usage);
        assert!(
            f.message
                .contains("a directory given as a policy must be a policy crate")
                && f.message
                    .contains("Cargo.toml cannot be read (no such file or directory)"),
            "{f}"
        );
        std::fs::write(dir.path().join("Cargo.toml"), "[workspace]\n").unwrap();
        let f = load("--policy", dir.path()).unwrap_err();
        assert!(f.message.contains("has no [package] name"), "{f}");
    }

    #[test]
    fn cargo_artifacts_name_the_binary() {
        let lines = r#"{"reason":"compiler-artifact","executable":null}
{"reason":"compiler-artifact","executable":"/t/x86_64-unknown-none/release/stride"}
{"reason":"build-finished","success":true}"#;
        assert_eq!(
            executables(lines),
            vec![PathBuf::from("/t/x86_64-unknown-none/release/stride")]
        );
    }

    #[test]
    fn an_operation_elf_is_not_a_policy() {
        let spin = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/guest/spin.elf");
        if !spin.exists() {
            // Not built yet (`make guests`); vmm's own test needs it.
            return;
        }
        let f = load("--policy", &spin).unwrap_err();
        assert_eq!(f.exit_code(), 69);
        assert!(f.message.starts_with("--policy: policy image "), "{f}");
        assert!(f.message.contains("outside the policy region"), "{f}");
    }

    #[test]
    fn an_image_is_judged_on_its_own_promises() {
        use vmm::policy_image::OpsHeader;
        let image = |shares, bounded_wait| PolicyImage {
            label: "p.elf".into(),
            segments: Vec::new(),
            end: 0,
            header: OpsHeader {
                version: 1,
                name: "stride".into(),
                description: "stride scheduling".into(),
                shares,
                bounded_wait,
                deadlines: false,
                test_only: false,
                bpf_runtime: false,
                callbacks: Vec::new(),
            },
            symbols: Default::default(),
        };
        let p = Policy::from_image(image(SHARES_WEIGHTED, true), Some("/x/p.elf".into()));
        assert_eq!(p.name, "stride");
        assert_eq!(p.promises.shares, Shares::Weighted);
        assert!(p.promises.bounded_wait && !p.test_only);
        let p = Policy::from_image(image(SHARES_EQUAL, false), None);
        assert_eq!(p.promises.shares, Shares::Equal);
        let p = Policy::from_image(image(abi::policy::SHARES_NONE, false), None);
        assert_eq!(p.promises.shares, Shares::None);
        let mut j = crate::settings::judge::JudgeArgs {
            sample_hz: 1000,
            stall_threshold: "250ms".into(),
            max_wait: "100ms".into(),
            max_fairness_error: "0.10".into(),
            max_wake_p99: None,
            check: Vec::new(),
        }
        .validate()
        .unwrap();
        j.apply_promises(&p.name, p.promises);
        assert_eq!(j.shares, None);
        assert!(
            j.unjudged[0]
                .why
                .starts_with("stride promises no fair shares")
        );
    }

    #[test]
    fn a_crate_that_does_not_build_says_so_with_cargos_status() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("Cargo.toml"),
            "[package]\nname = \"broken-policy\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\
             [workspace]\n",
        )
        .unwrap();
        std::fs::create_dir(dir.path().join("src")).unwrap();
        std::fs::write(dir.path().join("src/main.rs"), "fn main() { nope }\n").unwrap();
        let f = load("--policy", dir.path()).unwrap_err();
        assert_eq!(f.kind, ErrorKind::Image);
        assert!(
            f.message.starts_with(&format!(
                "--policy: building the policy crate {} failed (cargo build --release: exit \
                 status: 101)",
                dir.path().display()
            )),
            "{f}"
        );
    }
}
