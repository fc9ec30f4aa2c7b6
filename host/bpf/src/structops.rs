//! The `sched_ext_ops` value in `.struct_ops.link`: which program each
//! callback member names (relocations at the members' offsets), and the
//! scalar members the runtime needs. Offsets come from the object's own
//! BTF type `sched_ext_ops`, never from a copy.

use crate::btf::{Btf, Kind};
use crate::elf::{Elf, R_BPF_64_ABS64};
use crate::error::{Res, bail};

pub struct Ops {
    pub name: String,
    pub flags: u64,
    pub timeout_ms: u32,
    pub dispatch_max_batch: u32,
    /// (callback member, function symbol), in member order.
    pub bindings: Vec<(String, String)>,
}

pub fn read(elf: &Elf, btf: &Btf) -> Res<Ops> {
    let Some(sec) = elf
        .section(".struct_ops.link")
        .or_else(|| elf.section(".struct_ops"))
    else {
        bail!(
            "no sched_ext_ops value: the object has no .struct_ops.link section (SCX_OPS_DEFINE)"
        );
    };
    let vars = btf.datasec_vars(&sec.name);
    let mut found = None;
    for sym in elf.symbols_in(sec.index) {
        let ty = vars.iter().find(|v| v.0 == sym.name).map(|v| v.1);
        if let Some(ty) = ty {
            let id = btf.skip_mods(ty)?;
            if btf.get(id)?.name == "sched_ext_ops" {
                found = Some((sym.value, id));
                break;
            }
        }
    }
    let Some((base, ty)) = found else {
        bail!("no sched_ext_ops value in section {}", sec.name);
    };
    let size = btf.size_of(ty)?;
    if base
        .checked_add(size)
        .is_none_or(|e| e > sec.data.len() as u64)
    {
        bail!("the sched_ext_ops value lies outside {}", sec.name);
    }
    let bytes = &sec.data[base as usize..(base + size) as usize];
    let members = btf.members(ty)?;
    let field = |name: &str| -> Option<(usize, u64, u32)> {
        let m = members.iter().find(|m| m.name == name)?;
        let off = (m.bit_offset / 8) as usize;
        Some((off, btf.size_of(m.ty).ok()?, m.ty))
    };
    let int = |name: &str| -> u64 {
        let Some((off, sz, _)) = field(name) else {
            return 0;
        };
        let Some(b) = bytes.get(off..off + sz.min(8) as usize) else {
            return 0;
        };
        let mut v = [0u8; 8];
        v[..b.len()].copy_from_slice(b);
        u64::from_le_bytes(v)
    };
    let name = match field("name") {
        Some((off, sz, ty)) if matches!(btf.get(btf.skip_mods(ty)?)?.kind, Kind::Array { .. }) => {
            let b = bytes.get(off..off + sz as usize).unwrap_or(&[]);
            let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
            String::from_utf8_lossy(&b[..end]).into_owned()
        }
        _ => String::new(),
    };
    let mut bindings = Vec::new();
    for r in &sec.relocs {
        if r.r_type != R_BPF_64_ABS64 || r.offset < base || r.offset >= base + size {
            bail!("unexpected relocation in {} at {:#x}", sec.name, r.offset);
        }
        let off = r.offset - base;
        let Some(m) = members.iter().find(|m| (m.bit_offset / 8) as u64 == off) else {
            bail!("relocation in sched_ext_ops at offset {off} names no member");
        };
        let sym = &elf.symbols[r.symbol];
        if !sym.is_func {
            bail!(
                "sched_ext_ops.{} points at {}, which is not a program",
                m.name,
                sym.name
            );
        }
        bindings.push((m.name.clone(), sym.name.clone()));
    }
    Ok(Ops {
        name,
        flags: int("flags"),
        timeout_ms: int("timeout_ms") as u32,
        dispatch_max_batch: int("dispatch_max_batch") as u32,
        bindings,
    })
}
