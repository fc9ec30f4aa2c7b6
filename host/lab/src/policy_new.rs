//! `schedlab policy new NAME [DIR]`: write a policy crate that builds out
//! of schedlab's tree with plain `cargo build --release`. The texts are
//! the files under `templates/policy/` with `{{placeholders}}`; the
//! numbers a policy image is linked with (load address, region size) are
//! filled in from `abi` here and the linker script is the tree's own
//! `guest/linker/policy.ld`, so nothing in a new crate is a hand-copied
//! constant. Every check (name, SDK, directory) happens before the first
//! file is written: a refused command leaves nothing behind.

use abi::memmap::{POLICY_LOAD_ADDR, POLICY_MAX_SIZE};
use abi::policy::{POLICY_ABI_VERSION, POLICY_NAME_LEN};
use clap::{Args, Subcommand};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use vmm::exit::{ErrorKind, Failure, Result, code};

/// `schedlab policy ...`: tools for policies that are their own images.
#[derive(Debug, Clone, Args)]
pub struct PolicyArgs {
    #[command(subcommand)]
    pub command: PolicyCommand,
}

#[derive(Debug, Clone, Subcommand)]
pub enum PolicyCommand {
    /// Write a new policy crate (Rust, no_std) that `cargo build --release`
    /// turns into an image `--policy` runs.
    #[command(long_about = NEW_LONG_ABOUT, after_help = NEW_AFTER_HELP)]
    New(NewArgs),
}

const NEW_LONG_ABOUT: &str = "\
Write a new scheduling policy crate: a Rust no_std binary against schedlab's
policy SDK (the Scheduler trait, whose callbacks have sched_ext's shapes).
It builds outside schedlab's tree with plain `cargo build --release` into an
image schedlab loads with `--policy DIR` (or the ELF). The crate starts as a
working round-robin policy with comments on where to go next.

Files: Cargo.toml (the SDK as a path dependency, a release profile fit for
a no_std image), Cargo.lock (the versions schedlab's tree builds with, so the
first build needs no network), .cargo/config.toml (target
x86_64-unknown-none), build.rs and policy.ld (link at the policy region;
numbers from schedlab's ABI), src/main.rs, README.md, .gitignore.

NAME must be a crate name of at most 31 characters (the ABI's policy name
field); it may be a built-in's (`--policy ./DIR` runs the crate, reports
name its ELF as config.policy_path); DIR (default ./NAME) must not exist or be
empty. Nothing is written if anything is refused (exit 64; 69 if the
SDK this schedlab was built with is gone and no --sdk is given).";

const NEW_AFTER_HELP: &str = "\
Example:
  schedlab policy new my-policy
  cd my-policy && cargo build --release
  schedlab spin --cpus 2 --tasks 4 --policy .";

#[derive(Debug, Clone, Args)]
pub struct NewArgs {
    /// The policy's name: its crate, its binary and what reports call it
    /// (a-z, 0-9, '-', '_', starting with a letter, at most 31 characters).
    pub name: String,
    /// Where to write the crate (created if missing; must be empty).
    /// Default: ./NAME.
    pub dir: Option<PathBuf>,
    /// The policy SDK to depend on: the guest/policy-sdk directory of a
    /// schedlab source tree. Default: the tree this schedlab was built
    /// from.
    #[arg(long, value_name = "PATH")]
    pub sdk: Option<PathBuf>,
}

/// The SDK of the tree this binary was built from, as the build saw it.
const BUILT_SDK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../guest/policy-sdk");
/// The SDK's package name, which the crate's dependency names.
const SDK_PACKAGE: &str = "schedlab-policy-sdk";

/// A file of the new crate: its path in the crate and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    pub path: &'static str,
    pub text: String,
}

/// Run `schedlab policy ...`; the exit code.
pub fn main(args: &PolicyArgs) -> u8 {
    match &args.command {
        PolicyCommand::New(a) => match new(a) {
            Ok((dir, files)) => {
                print_written(&dir, &files);
                code::OK
            }
            Err(f) => {
                vmm::errln!("schedlab policy new: {}", f.message);
                f.exit_code()
            }
        },
    }
}

/// Check everything, then write the crate; its directory and files.
fn new(a: &NewArgs) -> Result<(PathBuf, Vec<File>)> {
    check_name(&a.name)?;
    let dir = a.dir.clone().unwrap_or_else(|| PathBuf::from(&a.name));
    let sdk = find_sdk(a.sdk.as_deref())?;
    check_dir(&dir)?;
    let files = render(&a.name, &sdk)?;
    write(&dir, &files)?;
    Ok((dir, files))
}

/// What was written, and the two commands that come next.
fn print_written(dir: &Path, files: &[File]) {
    let shown = dir.display().to_string();
    vmm::outln!("wrote the policy crate {shown}:");
    for f in files {
        vmm::outln!("  {}", dir.join(f.path).display());
    }
    vmm::outln!("next:");
    vmm::outln!("  (cd {} && cargo build --release)", shell_word(&shown));
    vmm::outln!(
        "  schedlab spin --policy {}",
        shell_word(&policy_arg(&shown))
    );
}

/// Rust keywords and names cargo reserves, which it refuses as package
/// names; and the SDK's own names, which the crate's dependency takes.
const RESERVED: &[&str] = &[
    "abstract",
    "as",
    "async",
    "await",
    "become",
    "box",
    "break",
    "const",
    "continue",
    "crate",
    "do",
    "dyn",
    "else",
    "enum",
    "extern",
    "false",
    "final",
    "fn",
    "for",
    "gen",
    "if",
    "impl",
    "in",
    "let",
    "loop",
    "macro",
    "match",
    "mod",
    "move",
    "mut",
    "override",
    "priv",
    "pub",
    "ref",
    "return",
    "self",
    "static",
    "struct",
    "super",
    "trait",
    "true",
    "try",
    "type",
    "typeof",
    "unsafe",
    "unsized",
    "use",
    "virtual",
    "where",
    "while",
    "yield",
    "alloc",
    "core",
    "std",
    "test",
    "proc_macro",
    "build",
    "deps",
    "examples",
    "incremental",
    "policy_sdk",
    "schedlab_policy_sdk",
    "abi",
    "schedlab_abi",
];

/// NAME is a crate name cargo accepts and fits the ABI's policy name
/// (NUL-padded, so one byte less than the field).
pub fn check_name(name: &str) -> Result<()> {
    let max = POLICY_NAME_LEN - 1;
    let why = if name.is_empty() {
        Some("is empty".to_string())
    } else if name.len() > max {
        Some(format!(
            "is {} characters long; a policy's name holds at most {max}",
            name.len()
        ))
    } else if !name.starts_with(|c: char| c.is_ascii_lowercase())
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
    {
        Some("is not a crate name: use a-z, 0-9, '-' and '_', starting with a letter".into())
    } else if RESERVED.contains(&name.replace('-', "_").as_str()) {
        Some("is a Rust keyword or a name cargo or the SDK reserves".into())
    } else {
        None
    };
    match why {
        Some(why) => Err(Failure::usage(format!("NAME {name:?} {why}"))),
        None => Ok(()),
    }
}

/// The SDK directory, canonical: `--sdk` or the tree this binary was built
/// from. Missing is a usage error when given, else an environment one
/// (schedlab moved away from its source tree), both naming `--sdk`.
pub fn find_sdk(given: Option<&Path>) -> Result<PathBuf> {
    let (path, fail): (&Path, fn(String) -> Failure) = match given {
        Some(p) => (p, Failure::usage),
        None => (Path::new(BUILT_SDK), |m| Failure::new(ErrorKind::Host, m)),
    };
    let dir = path.canonicalize().map_err(|e| {
        fail(match given {
            Some(_) => format!(
                "--sdk {}: {e}: give the guest/policy-sdk directory of a schedlab source tree",
                path.display()
            ),
            None => format!(
                "the policy SDK this schedlab was built with ({}) is gone ({e}): give --sdk PATH, \
                 the guest/policy-sdk directory of a schedlab source tree",
                path.display()
            ),
        })
    })?;
    let manifest = dir.join("Cargo.toml");
    let package = std::fs::read_to_string(&manifest)
        .ok()
        .and_then(|t| t.parse::<toml::Table>().ok())
        .and_then(|t| t.get("package")?.get("name")?.as_str().map(str::to_string));
    if package.as_deref() != Some(SDK_PACKAGE) {
        let flag = if given.is_some() {
            "--sdk "
        } else {
            "the built-in SDK path "
        };
        return Err(fail(format!(
            "{flag}{}: not schedlab's policy SDK ({} does not name the package {SDK_PACKAGE}): \
             give --sdk PATH, the guest/policy-sdk directory of a schedlab source tree",
            dir.display(),
            manifest.display()
        )));
    }
    if dir.to_str().is_none() {
        return Err(fail(format!(
            "the SDK path {} is not UTF-8, which Cargo.toml cannot hold: give --sdk PATH",
            dir.display()
        )));
    }
    Ok(dir)
}

/// DIR does not exist or is an empty directory.
pub fn check_dir(dir: &Path) -> Result<()> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => match entries.next() {
            None => Ok(()),
            Some(_) => Err(Failure::usage(format!(
                "{} exists and is not empty: give a new or empty directory",
                dir.display()
            ))),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(_) if dir.exists() && !dir.is_dir() => Err(Failure::usage(format!(
            "{} exists and is not a directory: give a new or empty directory",
            dir.display()
        ))),
        Err(e) => Err(Failure::usage(format!("{}: {e}", dir.display()))),
    }
}

/// The crate's files for policy `name` against the SDK at `sdk`.
pub fn render(name: &str, sdk: &Path) -> Result<Vec<File>> {
    let sdk_text = sdk.to_str().unwrap_or_default();
    let tree = sdk.parent().and_then(Path::parent).unwrap_or(sdk);
    let values: &[(&str, String)] = &[
        ("name", name.to_string()),
        // A TOML string, quoted and escaped by the TOML writer.
        ("sdk_path", toml::Value::String(sdk_text.into()).to_string()),
        ("schedlab_dir", tree.display().to_string()),
        ("load_addr", format!("{POLICY_LOAD_ADDR:#x}")),
        ("max_size", format!("{POLICY_MAX_SIZE:#x}")),
        ("max_size_kib", (POLICY_MAX_SIZE / 1024).to_string()),
        ("abi_version", POLICY_ABI_VERSION.to_string()),
    ];
    let fill = |t: &str| {
        values.iter().fold(t.to_string(), |s, (k, v)| {
            s.replace(&format!("{{{{{k}}}}}"), v)
        })
    };
    let mut files = vec![File {
        path: "Cargo.toml",
        text: fill(include_str!("../templates/policy/Cargo.toml.tmpl")),
    }];
    // The tree's lock: the crate builds with the versions schedlab's own
    // build uses, already in cargo's cache (cargo drops the rest).
    if let Ok(lock) = std::fs::read_to_string(tree.join("Cargo.lock")) {
        files.push(File {
            path: "Cargo.lock",
            text: lock,
        });
    }
    files.extend([
        File {
            path: ".cargo/config.toml",
            text: fill(include_str!("../templates/policy/config.toml.tmpl")),
        },
        File {
            path: "build.rs",
            text: fill(include_str!("../templates/policy/build.rs.tmpl")),
        },
        File {
            path: "policy.ld",
            text: format!(
                "/* Copied by `schedlab policy new` from schedlab's guest/linker/policy.ld;\n   \
                 build.rs passes __schedlab_load and __schedlab_cap. */\n{}",
                include_str!("../../../guest/linker/policy.ld")
            ),
        },
        File {
            path: "src/main.rs",
            text: fill(include_str!("../templates/policy/main.rs.tmpl")),
        },
        File {
            path: "README.md",
            text: fill(include_str!("../templates/policy/README.md.tmpl")),
        },
        File {
            path: ".gitignore",
            text: fill(include_str!("../templates/policy/gitignore.tmpl")),
        },
    ]);
    if let Some(f) = files.iter().find(|f| f.text.contains("{{")) {
        return Err(Failure::new(
            ErrorKind::Host,
            format!(
                "internal error: the template for {} has an unknown placeholder",
                f.path
            ),
        ));
    }
    Ok(files)
}

/// Write `files` under `dir` (which `check_dir` accepted). `create_new`:
/// a file that appeared meanwhile is not overwritten.
fn write(dir: &Path, files: &[File]) -> Result<()> {
    for f in files {
        let path = dir.join(f.path);
        let fail = |e: std::io::Error| {
            Failure::new(
                ErrorKind::Host,
                format!("cannot write {}: {e}", path.display()),
            )
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(fail)?;
        }
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .and_then(|mut out| out.write_all(f.text.as_bytes()))
            .map_err(fail)?;
    }
    Ok(())
}

/// How `--policy` must be given DIR to take it as a path, not a name.
fn policy_arg(dir: &str) -> String {
    if dir.contains('/') {
        dir.to_string()
    } else {
        format!("./{dir}")
    }
}

/// `s` as one shell word.
fn shell_word(s: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._-+=:,@".contains(c);
    if !s.is_empty() && s.chars().all(plain) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests;
