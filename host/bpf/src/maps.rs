//! BTF-defined maps (`.maps`): each variable's struct says its type,
//! sizes and entries through pointer-to-array tricks (`__uint(type, N)`
//! is `int (*type)[N]`), which only BTF records.

use crate::btf::{Btf, Kind};
use crate::error::{Res, bail};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapDef {
    pub name: String,
    pub kind: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub flags: u32,
    /// The inner-map template of a map of maps.
    pub inner: Option<Box<MapDef>>,
    /// Byte offset of a map of maps' `values` member in its definition:
    /// where `.maps` relocations put its initial inner maps.
    pub values_off: u32,
}

/// Kernel map type names, for messages about types schedlab lacks.
pub fn map_type_name(kind: u32) -> String {
    if let Some((_, n)) = abi::bpf::MAP_TYPES.iter().find(|t| t.0 == kind) {
        return n.to_string();
    }
    let n = match kind {
        3 => "PROG_ARRAY",
        4 => "PERF_EVENT_ARRAY",
        7 => "STACK_TRACE",
        8 => "CGROUP_ARRAY",
        10 => "LRU_PERCPU_HASH",
        11 => "LPM_TRIE",
        14 => "DEVMAP",
        15 => "SOCKMAP",
        16 => "CPUMAP",
        17 => "XSKMAP",
        18 => "SOCKHASH",
        19 => "CGROUP_STORAGE",
        24 => "SK_STORAGE",
        25 => "DEVMAP_HASH",
        26 => "STRUCT_OPS",
        27 => "RINGBUF",
        28 => "INODE_STORAGE",
        30 => "BLOOM_FILTER",
        31 => "USER_RINGBUF",
        32 => "CGRP_STORAGE",
        33 => "ARENA",
        _ => return format!("type {kind}"),
    };
    format!("{n} ({kind})")
}

/// `int (*name)[N]` -> N.
fn ptr_array_len(btf: &Btf, ty: u32) -> Res<u32> {
    let Kind::Ptr(to) = btf.get(btf.skip_mods(ty)?)?.kind else {
        bail!("not a pointer");
    };
    match btf.get(btf.skip_mods(to)?)?.kind {
        Kind::Array { nelems, .. } => Ok(nelems),
        _ => bail!("not a pointer to an array"),
    }
}

/// `T *name` -> sizeof(T).
fn ptr_target_size(btf: &Btf, ty: u32) -> Res<u32> {
    let Kind::Ptr(to) = btf.get(btf.skip_mods(ty)?)?.kind else {
        bail!("not a pointer");
    };
    u32::try_from(btf.size_of(to)?).map_err(|_| "size too large".to_string())
}

/// Parses one map definition struct.
pub fn parse_def(btf: &Btf, name: &str, ty: u32, depth: u32) -> Res<MapDef> {
    if depth > 2 {
        bail!("map {name}: maps nested too deeply");
    }
    let mut d = MapDef {
        name: name.to_string(),
        kind: 0,
        key_size: 0,
        value_size: 0,
        max_entries: 0,
        flags: 0,
        inner: None,
        values_off: 0,
    };
    let sid = btf.skip_mods(ty)?;
    if !matches!(btf.get(sid)?.kind, Kind::Struct { .. }) {
        bail!("map {name}: its BTF is not a struct");
    }
    for m in btf.members(sid)? {
        let err = |e: String| format!("map {name}: member {}: {e}", m.name);
        match m.name.as_str() {
            "type" => d.kind = ptr_array_len(btf, m.ty).map_err(err)?,
            "max_entries" => d.max_entries = ptr_array_len(btf, m.ty).map_err(err)?,
            "map_flags" => d.flags = ptr_array_len(btf, m.ty).map_err(err)?,
            "key_size" => d.key_size = ptr_array_len(btf, m.ty).map_err(err)?,
            "value_size" => d.value_size = ptr_array_len(btf, m.ty).map_err(err)?,
            "key" => d.key_size = ptr_target_size(btf, m.ty).map_err(err)?,
            "value" => d.value_size = ptr_target_size(btf, m.ty).map_err(err)?,
            "values" => {
                // `struct inner *values[]`: array of pointers to the template.
                let Kind::Array { elem, .. } = btf.get(btf.skip_mods(m.ty)?)?.kind else {
                    bail!("map {name}: values is not an array");
                };
                let Kind::Ptr(to) = btf.get(btf.skip_mods(elem)?)?.kind else {
                    bail!("map {name}: values is not an array of pointers");
                };
                let inner = parse_def(btf, &format!("{name}.inner"), to, depth + 1)?;
                d.inner = Some(Box::new(inner));
                d.values_off = m.bit_offset / 8;
            }
            "pinning" | "numa_node" | "map_extra" => {}
            other => bail!("map {name}: definition member {other} is not supported"),
        }
    }
    if d.inner.is_some() {
        d.value_size = 4;
    }
    Ok(d)
}

/// Every map of the `.maps` DATASEC, in declaration order.
pub fn btf_maps(btf: &Btf) -> Res<Vec<MapDef>> {
    btf.datasec_vars(".maps")
        .into_iter()
        .map(|(name, ty)| parse_def(btf, &name, ty, 0))
        .collect()
}
