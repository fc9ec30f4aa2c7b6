//! A sched_ext BPF object (`--policy scx_simple.bpf.o`) as a run's policy.
//!
//! The object is read and relocated on the host (`bpf::load`) before any
//! VM exists, so anything schedlab cannot run -- a kfunc, a helper, a map
//! type, a relocation -- is a usage error naming it. The run's policy
//! image is the built-in BPF runtime (`guest/policies/bpf`); the loader's
//! program image goes to the guest as the policy's data
//! (`vmm::vm::run::PolicyData`), and when the run ends the host reads back
//! the runtime's status (a sandbox fault's program and instruction, which
//! the object's line info turns into a C source line) and the object's
//! user-exit-info record.

use abi::bpf::{BpfHeader, BpfStatus, STATUS_ERROR, STATUS_EXIT, STATUS_FAULT, fault_text};
use abi::memmap::BPF_PROGRAM_ADDR;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use vmm::exit::{Failure, Result};
use vmm::vm::run::PolicyData;
use zerocopy::FromBytes;

/// The slice an object is first checked with (`--slice`'s default).
pub const DEFAULT_SLICE_NS: u64 = 1_000_000;

/// The built-in image that runs every BPF object.
pub const RUNTIME_POLICY: &str = "bpf";

/// Largest object read: clang's objects with debug info are under 1 MiB.
pub const MAX_OBJECT_BYTES: u64 = 64 << 20;

const OBJECT_FILE: vmm::files::InputFile = vmm::files::InputFile {
    what: "sched_ext BPF object",
    cap: MAX_OBJECT_BYTES,
    cap_name: "MAX_OBJECT_BYTES",
    kind: vmm::exit::ErrorKind::Usage,
    fix: "give the .bpf.o clang built (clang -target bpf -g -O2 -c x.bpf.c)",
};

/// ELF `e_machine` of eBPF objects.
const EM_BPF: u16 = 247;

/// Whether `bytes` start like an eBPF ELF object (what clang `-target bpf`
/// writes), as opposed to a policy image for x86-64.
pub fn is_bpf_object(bytes: &[u8]) -> bool {
    bytes.len() > 20
        && bytes.starts_with(b"\x7fELF")
        && u16::from_le_bytes([bytes[18], bytes[19]]) == EM_BPF
}

/// A loaded object, ready for a run of `nr_cpus` CPUs.
pub struct BpfObject {
    /// The file, absolute.
    pub path: PathBuf,
    object: Vec<u8>,
    pub loaded: bpf::Loaded,
    /// `--bpf-set` as given.
    pub sets: Vec<(String, String)>,
    data: PolicyData,
}

impl std::fmt::Debug for BpfObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BpfObject")
            .field("path", &self.path)
            .field("ops", &self.loaded.name())
            .field("sets", &self.sets)
            .finish_non_exhaustive()
    }
}

impl PartialEq for BpfObject {
    fn eq(&self, other: &Self) -> bool {
        self.path == other.path && self.sets == other.sets && self.data == other.data
    }
}
impl Eq for BpfObject {}

/// Where the exit record (`struct user_exit_info`) of scx's headers puts
/// its fields, from `UEI_DEFINE`: `int kind; s64 exit_code; char
/// reason[128]; char msg[1024]`.
const UEI_GLOBAL: &str = "uei";
const UEI_KIND: usize = 0;
const UEI_EXIT_CODE: usize = 8;
const UEI_REASON: usize = 16;
const UEI_REASON_LEN: usize = 128;
const UEI_MSG: usize = UEI_REASON + UEI_REASON_LEN;
/// Most of an exit record read back.
const UEI_MAX: usize = 4096;

impl BpfObject {
    /// Read and load the object at `path` for `nr_cpus` CPUs with slice
    /// `slice_ns` and `sets` (`NAME=VALUE`): every refusal is a usage
    /// error naming the flag, the file and what is unsupported.
    pub fn load(
        flag: &str,
        path: &Path,
        nr_cpus: u32,
        slice_ns: u64,
        sets: &[(String, String)],
    ) -> Result<BpfObject> {
        let object = vmm::files::read_bounded(path, &OBJECT_FILE)
            .map_err(|f| Failure::usage(format!("{flag}: {}", f.message)))?;
        Self::from_bytes(flag, path, object, nr_cpus, slice_ns, sets)
    }

    fn from_bytes(
        flag: &str,
        path: &Path,
        object: Vec<u8>,
        nr_cpus: u32,
        slice_ns: u64,
        sets: &[(String, String)],
    ) -> Result<BpfObject> {
        let opts = bpf::LoadOptions {
            nr_cpus,
            slice_ns,
            sets: sets.to_vec(),
        };
        let loaded = bpf::load(&object, &opts)
            .map_err(|e| Failure::usage(format!("{flag}: {}: {e}", path.display())))?;
        let mut read_back = vec![(BPF_PROGRAM_ADDR, std::mem::size_of::<BpfHeader>())];
        if let Some(g) = loaded.global(UEI_GLOBAL) {
            read_back.push((g.addr, (g.size as usize).min(UEI_MAX)));
        }
        let data = PolicyData {
            addr: BPF_PROGRAM_ADDR,
            bytes: loaded.image().to_vec(),
            read_back,
        };
        Ok(BpfObject {
            path: std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()),
            object,
            loaded,
            sets: sets.to_vec(),
            data,
        })
    }

    /// The same object loaded again for a run's own CPU count, slice and
    /// `--bpf-set` values.
    pub fn reload(
        &self,
        flag: &str,
        nr_cpus: u32,
        slice_ns: u64,
        sets: &[(String, String)],
    ) -> Result<BpfObject> {
        Self::from_bytes(
            flag,
            &self.path,
            self.object.clone(),
            nr_cpus,
            slice_ns,
            sets,
        )
    }

    pub fn data(&self) -> &PolicyData {
        &self.data
    }

    /// The file name, without `.bpf.o` (`scx_simple`): the policy's name.
    pub fn short_name(path: &Path) -> String {
        let f = path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        f.strip_suffix(".bpf.o")
            .or_else(|| f.strip_suffix(".o"))
            .unwrap_or(&f)
            .to_string()
    }

    /// What the run left behind, from the ranges read back.
    pub fn outcome(&self, read_back: &[(u64, Vec<u8>)]) -> BpfOutcome {
        let mut out = BpfOutcome {
            object: self.path.display().to_string(),
            ops_name: self.loaded.name().to_string(),
            programs: self
                .loaded
                .programs()
                .into_iter()
                .map(|(callback, program)| BoundProgram { callback, program })
                .collect(),
            sets: self.sets.iter().map(|(k, v)| format!("{k}={v}")).collect(),
            notes: self.loaded.notes().to_vec(),
            ..Default::default()
        };
        let header = read_back
            .iter()
            .find(|(a, _)| *a == BPF_PROGRAM_ADDR)
            .and_then(|(_, b)| BpfHeader::read_from_prefix(b).ok())
            .map(|(h, _)| h);
        if let Some(h) = header {
            let s: BpfStatus = h.status;
            out.instructions = Some(s.insns_run);
            out.callbacks = Some(s.calls);
            out.state = Some(
                match s.state {
                    STATUS_FAULT => "sandbox fault",
                    STATUS_ERROR => "scx_bpf_error",
                    STATUS_EXIT => "scx_bpf_exit",
                    _ => "ok",
                }
                .to_string(),
            );
            if s.state == STATUS_FAULT {
                out.fault = Some(self.fault(&s));
            }
        }
        if let Some(g) = self.loaded.global(UEI_GLOBAL)
            && let Some((_, b)) = read_back.iter().find(|(a, _)| *a == g.addr)
        {
            out.exit_info = ExitInfo::parse(b);
        }
        out
    }

    fn fault(&self, s: &BpfStatus) -> FaultReport {
        let program = self
            .loaded
            .program_of(s.insn)
            .map(str::to_string)
            .unwrap_or_else(|| format!("#{}", s.prog));
        let what = match s.fault {
            abi::bpf::FAULT_LOAD | abi::bpf::FAULT_STORE => format!(
                "{} ({} bytes at {:#x})",
                fault_text(s.fault),
                s.size,
                s.addr
            ),
            abi::bpf::FAULT_BAD_ARG => format!(
                "{}: argument {} of {}",
                fault_text(s.fault),
                s.size,
                self.loaded
                    .call_at(s.insn)
                    .unwrap_or_else(|| "(unknown)".into())
            ),
            abi::bpf::FAULT_MISSING_KFUNC => format!(
                "{}: {}",
                fault_text(s.fault),
                self.loaded
                    .call_at(s.insn)
                    .unwrap_or_else(|| "(unknown)".into())
            ),
            f => fault_text(f).to_string(),
        };
        let source = self
            .loaded
            .source_line(s.insn)
            .map(|l| format!("{}:{}: {}", l.file, l.line, l.text.trim()));
        FaultReport {
            program,
            instruction: s.insn,
            what,
            source,
        }
    }
}

/// One `sched_ext_ops` callback and the program bound to it.
#[derive(Debug, Clone, Serialize, Default, PartialEq)]
pub struct BoundProgram {
    pub callback: String,
    pub program: String,
}

/// Where the sandbox stopped a program.
#[derive(Debug, Clone, Serialize, Default, PartialEq)]
pub struct FaultReport {
    pub program: String,
    pub instruction: u32,
    pub what: String,
    /// `file:line: text` from the object's line info.
    pub source: Option<String>,
}

impl FaultReport {
    /// One line for the report's error.
    pub fn message(&self) -> String {
        let mut m = format!(
            "sandbox: program {} at instruction {}: {}",
            self.program, self.instruction, self.what
        );
        if let Some(s) = &self.source {
            m.push_str(&format!(", at {s}"));
        }
        m
    }
}

/// The object's exit record (scx's `user_exit_info`), as its `exit`
/// callback wrote it.
#[derive(Debug, Clone, Serialize, Default, PartialEq)]
pub struct ExitInfo {
    pub kind: i32,
    pub exit_code: i64,
    pub reason: String,
    pub msg: String,
}

impl ExitInfo {
    fn parse(b: &[u8]) -> Option<ExitInfo> {
        let int = |off: usize, n: usize| b.get(off..off + n);
        let kind = i32::from_le_bytes(int(UEI_KIND, 4)?.try_into().ok()?);
        let exit_code = i64::from_le_bytes(int(UEI_EXIT_CODE, 8)?.try_into().ok()?);
        let text = |r: Option<&[u8]>| {
            let r = r.unwrap_or(&[]);
            let end = r.iter().position(|&c| c == 0).unwrap_or(r.len());
            String::from_utf8_lossy(&r[..end]).into_owned()
        };
        let reason = text(b.get(UEI_REASON..(UEI_REASON + UEI_REASON_LEN).min(b.len())));
        let msg = text(b.get(UEI_MSG.min(b.len())..));
        // Never written (the object has no exit callback, or it did not run).
        if kind == 0 && reason.is_empty() && msg.is_empty() {
            return None;
        }
        Some(ExitInfo {
            kind,
            exit_code,
            reason,
            msg,
        })
    }
}

/// What a report says about a BPF object's run.
#[derive(Debug, Clone, Serialize, Default, PartialEq)]
pub struct BpfOutcome {
    pub object: String,
    /// `sched_ext_ops.name`.
    pub ops_name: String,
    pub programs: Vec<BoundProgram>,
    pub sets: Vec<String>,
    pub notes: Vec<String>,
    /// "ok", "sandbox fault", "scx_bpf_error", "scx_bpf_exit"; None if the
    /// runtime never reported.
    pub state: Option<String>,
    /// BPF instructions run, and callbacks entered.
    pub instructions: Option<u64>,
    pub callbacks: Option<u64>,
    pub fault: Option<FaultReport>,
    pub exit_info: Option<ExitInfo>,
}

/// A shared, loaded object, as `Policy` carries it.
pub type SharedBpfObject = Arc<BpfObject>;

/// `--bpf-set NAME=VALUE` items, split.
pub fn parse_sets(items: &[String]) -> Result<Vec<(String, String)>> {
    items
        .iter()
        .map(|s| match s.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() && !v.trim().is_empty() => {
                Ok((k.trim().to_string(), v.trim().to_string()))
            }
            _ => Err(Failure::usage(format!(
                "--bpf-set: '{s}' is not NAME=VALUE (e.g. --bpf-set fifo_sched=1)"
            ))),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ebpf_elf_objects_count_as_bpf() {
        let mut elf = vec![0u8; 64];
        elf[..4].copy_from_slice(b"\x7fELF");
        elf[18..20].copy_from_slice(&EM_BPF.to_le_bytes());
        assert!(is_bpf_object(&elf));
        elf[18..20].copy_from_slice(&62u16.to_le_bytes()); // x86-64
        assert!(!is_bpf_object(&elf));
        assert!(!is_bpf_object(b"\x7fELF"));
    }

    #[test]
    fn sets_need_a_name_and_a_value() {
        assert_eq!(
            parse_sets(&["fifo_sched=1".into(), " slice_ns = 5 ".into()]).unwrap(),
            vec![
                ("fifo_sched".to_string(), "1".to_string()),
                ("slice_ns".to_string(), "5".to_string())
            ]
        );
        for bad in ["fifo_sched", "=1", "x="] {
            let e = parse_sets(&[bad.into()]).unwrap_err();
            assert!(e.message.contains("NAME=VALUE"), "{bad}: {}", e.message);
        }
    }

    #[test]
    fn the_exit_record_reads_kind_code_and_texts() {
        let mut b = vec![0u8; UEI_MSG + 16];
        b[..4].copy_from_slice(&1025i32.to_le_bytes());
        b[8..16].copy_from_slice(&(-3i64).to_le_bytes());
        b[UEI_REASON..UEI_REASON + 5].copy_from_slice(b"boom\0");
        b[UEI_MSG..UEI_MSG + 3].copy_from_slice(b"hi\0");
        let e = ExitInfo::parse(&b).unwrap();
        assert_eq!((e.kind, e.exit_code), (1025, -3));
        assert_eq!((e.reason.as_str(), e.msg.as_str()), ("boom", "hi"));
        assert_eq!(ExitInfo::parse(&[0u8; UEI_MSG + 16]), None);
        // Short or garbled bytes never panic.
        assert_eq!(ExitInfo::parse(&b[..6]), None);
    }

    #[test]
    fn the_policy_is_named_after_the_file() {
        assert_eq!(
            BpfObject::short_name(Path::new("/x/scx_simple.bpf.o")),
            "scx_simple"
        );
        assert_eq!(BpfObject::short_name(Path::new("a.o")), "a");
    }
}
