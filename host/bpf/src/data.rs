//! Global sections (`.rodata*`, `.data*`, `.bss*`): their bytes, the
//! values the loader fills in (`__SCX_*` enums, `nr_cpu_ids`,
//! `--bpf-set`), per-CPU resizing, and what [`crate::Global`] reports.

use crate::btf::{Btf, Kind};
use crate::elf::Elf;
use crate::error::{Res, bail};

#[derive(Clone, Debug)]
pub struct DataSec {
    pub name: String,
    pub elf_index: usize,
    pub bytes: Vec<u8>,
    pub read_only: bool,
    /// Offset in the image, set by the layout.
    pub image_off: u64,
}

/// A global variable of a data section.
#[derive(Clone, Debug)]
pub struct Var {
    pub name: String,
    /// Index in the data-section list.
    pub sec: usize,
    pub offset: u64,
    pub size: u64,
    /// BTF type (0 if the object's BTF does not describe it).
    pub ty: u32,
}

pub fn is_data_section(name: &str) -> bool {
    name.starts_with(".rodata") || name.starts_with(".data") || name.starts_with(".bss")
}

/// Data sections, read-only ones first, and their variables.
pub fn collect(elf: &Elf, btf: &Btf) -> Res<(Vec<DataSec>, Vec<Var>)> {
    let mut secs: Vec<DataSec> = elf
        .sections
        .iter()
        .filter(|s| is_data_section(&s.name) && !s.data.is_empty())
        .map(|s| DataSec {
            name: s.name.clone(),
            elf_index: s.index,
            bytes: s.data.clone(),
            read_only: s.name.starts_with(".rodata"),
            image_off: 0,
        })
        .collect();
    secs.sort_by_key(|s| !s.read_only);
    let mut vars = Vec::new();
    for (i, s) in secs.iter().enumerate() {
        let types = btf.datasec_vars(&s.name);
        for sym in elf.symbols_in(s.elf_index) {
            if sym.is_func {
                continue;
            }
            let end = sym.value.checked_add(sym.size);
            if end.is_none_or(|e| e > s.bytes.len() as u64) {
                bail!("global {} lies outside its section {}", sym.name, s.name);
            }
            let ty = types.iter().find(|t| t.0 == sym.name).map_or(0, |t| t.1);
            vars.push(Var {
                name: sym.name.clone(),
                sec: i,
                offset: sym.value,
                size: sym.size,
                ty,
            });
        }
    }
    Ok((secs, vars))
}

/// Resizes every `.data.NAME`/`.bss.NAME` section that holds exactly one
/// array variable of one element to `nr_cpus` elements, as the
/// `RESIZABLE_ARRAY` users' userspace does with `nr_cpu_ids`.
pub fn resize_per_cpu(
    secs: &mut [DataSec],
    vars: &mut [Var],
    btf: &Btf,
    nr_cpus: u32,
    notes: &mut Vec<String>,
) -> Res<()> {
    for (i, s) in secs.iter_mut().enumerate() {
        if !(s.name.starts_with(".data.") || s.name.starts_with(".bss.")) {
            continue;
        }
        let mut in_sec = vars.iter_mut().filter(|v| v.sec == i);
        let (Some(v), None) = (in_sec.next(), in_sec.next()) else {
            continue;
        };
        if v.ty == 0 {
            continue;
        }
        let Kind::Array { elem, nelems: 1 } = btf.get(btf.skip_mods(v.ty)?)?.kind else {
            continue;
        };
        let elem_size = btf.size_of(elem)?;
        let new = elem_size
            .checked_mul(nr_cpus as u64)
            .filter(|n| *n <= 1 << 24)
            .ok_or_else(|| format!("resized {} is too large", s.name))?;
        if v.offset != 0 {
            continue;
        }
        s.bytes.resize(new as usize, 0);
        v.size = new;
        notes.push(format!(
            "{} ({}) resized to {nr_cpus} elements, one per CPU",
            v.name, s.name
        ));
    }
    Ok(())
}

/// An integer global's shape: (bytes, signed, bool).
fn int_shape(btf: &Btf, v: &Var) -> Option<(u64, bool, bool)> {
    if v.ty != 0 {
        let id = btf.skip_mods(v.ty).ok()?;
        return match btf.get(id).ok()?.kind {
            Kind::Int {
                size,
                signed,
                bool_,
            } => Some((size as u64, signed, bool_)),
            Kind::Enum { size, .. } => Some((size as u64, false, false)),
            _ => None,
        };
    }
    matches!(v.size, 1 | 2 | 4 | 8).then_some((v.size, false, false))
}

pub fn write(secs: &mut [DataSec], v: &Var, value: u64) {
    let bytes = value.to_le_bytes();
    let s = &mut secs[v.sec];
    let (o, n) = (v.offset as usize, v.size.min(8) as usize);
    if let Some(dst) = s.bytes.get_mut(o..o + n) {
        dst.copy_from_slice(&bytes[..n]);
    }
}

/// Parses `value` for an integer global of `bytes` bytes.
fn parse_value(name: &str, value: &str, bytes: u64, signed: bool, bool_: bool) -> Res<u64> {
    let v = value.trim();
    let bad = || format!("--bpf-set {name}={value}: not a number (decimal or 0x hex)");
    let n: i128 = if bool_ && (v == "true" || v == "false") {
        (v == "true") as i128
    } else if let Some(h) = v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        i128::from_str_radix(h, 16).map_err(|_| bad())?
    } else {
        v.parse::<i128>().map_err(|_| bad())?
    };
    let bits = bytes * 8;
    let (lo, hi) = if bool_ {
        (0, 1)
    } else if signed {
        (-(1i128 << (bits - 1)), (1i128 << (bits - 1)) - 1)
    } else {
        (0, (1i128 << bits) - 1)
    };
    if n < lo || n > hi {
        bail!(
            "--bpf-set {name}={value}: does not fit {name} ({bytes} bytes{})",
            if signed {
                ", signed"
            } else if bool_ {
                ", bool"
            } else {
                ""
            }
        );
    }
    Ok(n as u64)
}

/// Applies `--bpf-set NAME=VALUE` pairs.
pub fn apply_sets(
    secs: &mut [DataSec],
    vars: &[Var],
    btf: &Btf,
    sets: &[(String, String)],
) -> Res<()> {
    for (name, value) in sets {
        let Some(v) = vars.iter().find(|v| &v.name == name) else {
            let mut known: Vec<&str> = vars
                .iter()
                .filter(|v| int_shape(btf, v).is_some() && !v.name.starts_with("__SCX_"))
                .map(|v| v.name.as_str())
                .collect();
            known.sort();
            bail!(
                "--bpf-set {name}: no such global (settable: {})",
                known.join(", ")
            );
        };
        let Some((bytes, signed, bool_)) =
            int_shape(btf, v).filter(|s| matches!(s.0, 1 | 2 | 4 | 8))
        else {
            bail!("--bpf-set {name}: {name} is not an integer or bool of 1, 2, 4 or 8 bytes");
        };
        let n = parse_value(name, value, bytes, signed, bool_)?;
        write(secs, v, n);
    }
    Ok(())
}

/// Member (name, byte offset, bytes) of a struct global, empty else.
pub fn members(btf: &Btf, ty: u32) -> Vec<(String, u64, u64)> {
    let Ok(ms) = btf.members(ty) else {
        return Vec::new();
    };
    ms.iter()
        .map(|m| {
            (
                m.name.clone(),
                (m.bit_offset / 8) as u64,
                btf.size_of(m.ty).unwrap_or(0),
            )
        })
        .collect()
}
