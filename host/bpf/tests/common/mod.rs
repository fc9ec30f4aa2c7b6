//! What the tests share: finding the sched_ext material and clang, and
//! compiling a `.bpf.c` into a temporary object with the flags
//! sched_ext's own build uses (`build-bpf.sh`).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "material.rs"]
mod material;
pub use material::scx_dir;

/// `BPF_CLANG`, else `clang-19`.
pub fn clang() -> String {
    std::env::var("BPF_CLANG").unwrap_or_else(|_| "clang-19".to_string())
}

/// A fresh temporary directory for one test's objects.
pub fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("schedlab-bpf-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

/// Compiles `src` with build-bpf.sh and returns the object's bytes.
pub fn build(src: &Path, tag: &str) -> Vec<u8> {
    build_with(src, tag, &[])
}

/// As [`build`], with extra clang flags (e.g. `-DCASE`).
pub fn build_with(src: &Path, tag: &str, flags: &[&str]) -> Vec<u8> {
    let dir = scx_dir();
    let out = temp_dir(tag).join(format!("{tag}.bpf.o"));
    let status = Command::new("bash")
        .arg(dir.join("build-bpf.sh"))
        .arg(src)
        .arg(&out)
        .args(flags)
        .env("BPF_CLANG", clang())
        .status()
        .unwrap_or_else(|e| panic!("running build-bpf.sh: {e}"));
    assert!(status.success(), "build-bpf.sh {} failed", src.display());
    std::fs::read(&out).expect("object")
}

/// One of the shared schedulers, e.g. "scx_simple".
pub fn scheduler(name: &str) -> Vec<u8> {
    let src = scx_dir().join(format!("schedulers/{name}.bpf.c"));
    build(&src, name)
}

/// tests/bpf/cases.bpf.c built with `-D<case>` (None: the plain one).
pub fn case(case: Option<&str>) -> Vec<u8> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bpf/cases.bpf.c");
    match case {
        Some(c) => build_with(&src, &format!("cases-{c}"), &[&format!("-D{c}")]),
        None => build(&src, "cases"),
    }
}

/// `llvm-objdump -d -r` of an object (`BPF_OBJDUMP`, else llvm-objdump-19).
pub fn objdump(object: &[u8], tag: &str) -> String {
    let path = temp_dir(tag).join("dump.o");
    std::fs::write(&path, object).expect("write object");
    let tool = std::env::var("BPF_OBJDUMP").unwrap_or_else(|_| "llvm-objdump-19".to_string());
    let out = Command::new(&tool)
        .args(["-d", "-r", "--no-show-raw-insn"])
        .arg(&path)
        .output()
        .unwrap_or_else(|e| panic!("running {tool}: {e}"));
    assert!(out.status.success(), "{tool} failed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Reads a program image with `abi::bpf`'s own layouts (`offset_of!`),
/// independently of the loader's writer.
pub struct Image<'a>(pub &'a [u8]);

pub use abi::bpf::{BpfHeader, BpfMap, BpfProg};
use core::mem::{offset_of, size_of};

pub struct MapRow {
    pub name: String,
    pub kind: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub values_off: u32,
    pub values_len: u32,
    pub meta_off: u32,
    pub meta_len: u32,
}

fn cstr(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

impl Image<'_> {
    pub fn u32(&self, off: usize) -> u32 {
        u32::from_le_bytes(self.0[off..off + 4].try_into().unwrap())
    }
    pub fn u64(&self, off: usize) -> u64 {
        u64::from_le_bytes(self.0[off..off + 8].try_into().unwrap())
    }
    pub fn progs(&self) -> Vec<(u32, u32, String)> {
        let base = self.u32(offset_of!(BpfHeader, progs_off)) as usize;
        (0..self.u32(offset_of!(BpfHeader, nr_progs)) as usize)
            .map(|i| {
                let o = base + i * size_of::<BpfProg>();
                let n = o + offset_of!(BpfProg, name);
                (
                    self.u32(o + offset_of!(BpfProg, entry)),
                    self.u32(o + offset_of!(BpfProg, len)),
                    cstr(&self.0[n..n + abi::bpf::NAME_LEN]),
                )
            })
            .collect()
    }
    pub fn maps(&self) -> Vec<MapRow> {
        let base = self.u32(offset_of!(BpfHeader, maps_off)) as usize;
        (0..self.u32(offset_of!(BpfHeader, nr_maps)) as usize)
            .map(|i| {
                let o = base + i * size_of::<BpfMap>();
                let n = o + offset_of!(BpfMap, name);
                MapRow {
                    name: cstr(&self.0[n..n + abi::bpf::NAME_LEN]),
                    kind: self.u32(o + offset_of!(BpfMap, kind)),
                    key_size: self.u32(o + offset_of!(BpfMap, key_size)),
                    value_size: self.u32(o + offset_of!(BpfMap, value_size)),
                    max_entries: self.u32(o + offset_of!(BpfMap, max_entries)),
                    values_off: self.u32(o + offset_of!(BpfMap, values_off)),
                    values_len: self.u32(o + offset_of!(BpfMap, values_len)),
                    meta_off: self.u32(o + offset_of!(BpfMap, meta_off)),
                    meta_len: self.u32(o + offset_of!(BpfMap, meta_len)),
                }
            })
            .collect()
    }
    pub fn funcs(&self) -> Vec<u32> {
        let base = self.u32(offset_of!(BpfHeader, funcs_off)) as usize;
        (0..self.u32(offset_of!(BpfHeader, nr_funcs)) as usize)
            .map(|i| self.u32(base + 4 * i))
            .collect()
    }
    pub fn nr_insns(&self) -> usize {
        self.u32(offset_of!(BpfHeader, nr_insns)) as usize
    }
    pub fn insn(&self, i: usize) -> [u8; 8] {
        let o = self.u32(offset_of!(BpfHeader, insns_off)) as usize + 8 * i;
        self.0[o..o + 8].try_into().unwrap()
    }
    pub fn imm(&self, i: usize) -> i32 {
        i32::from_le_bytes(self.insn(i)[4..8].try_into().unwrap())
    }
    pub fn off(&self, i: usize) -> i16 {
        i16::from_le_bytes(self.insn(i)[2..4].try_into().unwrap())
    }
    pub fn src(&self, i: usize) -> u8 {
        self.insn(i)[1] >> 4
    }
    /// The 64-bit constant of the ld_imm64 at `i`.
    pub fn ld_imm64(&self, i: usize) -> u64 {
        (self.imm(i) as u32 as u64) | ((self.imm(i + 1) as u32 as u64) << 32)
    }
    /// Entry of the program named `name`.
    pub fn entry(&self, name: &str) -> u32 {
        self.progs()
            .into_iter()
            .find(|p| p.2 == name)
            .unwrap_or_else(|| panic!("no program {name}"))
            .0
    }
    /// The value at a guest address inside the image.
    pub fn at(&self, addr: u64, size: usize) -> u64 {
        let o = (addr - abi::memmap::BPF_PROGRAM_ADDR) as usize;
        let mut v = [0u8; 8];
        v[..size].copy_from_slice(&self.0[o..o + size]);
        u64::from_le_bytes(v)
    }
}

/// Relocations and CO-RE records that `llvm-objdump -d -r` shows, per
/// instruction: (section, byte offset in it, the annotation line).
pub fn annotations(dump: &str) -> Vec<(String, u64, String)> {
    let mut out = Vec::new();
    let mut section = String::new();
    for line in dump.lines() {
        if let Some(s) = line.strip_prefix("Disassembly of section ") {
            section = s.trim_end_matches(':').to_string();
            continue;
        }
        let t = line.trim_start();
        let Some((hex, rest)) = t.split_once(':') else {
            continue;
        };
        if hex.len() == 16
            && (rest.contains("R_BPF_") || rest.contains("CO-RE"))
            && let Ok(off) = u64::from_str_radix(hex, 16)
        {
            out.push((section.clone(), off, rest.trim().to_string()));
        }
    }
    out
}
