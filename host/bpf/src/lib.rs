//! schedlab's sched_ext BPF object loader (host side).
//!
//! It reads a clang-built `.bpf.o` (a `sched_ext_ops` scheduler), applies
//! every relocation the kernel's libbpf would (CO-RE against schedlab's
//! target layouts, maps, globals, kfuncs, helpers, sub-program calls,
//! function addresses) and writes the program image `abi::bpf` defines,
//! which the guest's BPF runtime interprets without relocation logic of
//! its own. Anything the runtime could not honour is refused here, before
//! any VM, with one line naming the program and the symbol.
//!
//! Crates: ELF is read with `object` (maintained, bounds every offset,
//! already in the workspace). BTF and `.BTF.ext` are parsed by hand
//! (`btf.rs`, ~400 lines): `aya-obj` (0.2 and 0.6 checked) refuses
//! `struct_ops/` sections in `Object::parse`, so its
//! `Object::relocate_btf` cannot run on sched_ext objects, and its
//! `BtfExt::parse`, `Struct::new` and `Btf::type_by_id` are crate-private,
//! so neither the `.BTF.ext` records nor a target BTF with structs can be
//! built from outside; `btf-rs` parses `.BTF` only (no `.BTF.ext`, no
//! construction). The CO-RE resolution (`core.rs`) follows libbpf's
//! `relo_core.c` for the kinds sched_ext schedulers use.
//!
//! Never panics on input: every offset and length is checked (see the
//! `garbled_objects_are_refused` test).

#![forbid(unsafe_code)]

mod btf;
mod co_re;
mod data;
mod elf;
mod error;
mod helpers;
mod image;
mod link;
mod maps;
mod structops;

pub use error::LoadError;

use abi::bpf::{CB_DISABLE_INDEX, CB_EXTRA, CB_IGNORED, MAP_ARRAY, NR_CALLBACKS, map_layout};
use abi::memmap::{BPF_PROGRAM_ADDR, BPF_PROGRAM_SIZE};
use abi::policy::POLICY_CALLBACKS;
use error::{Res, bail};
use image::{Layout, MapRow, align8};
use std::collections::BTreeMap;

/// What a run decides about an object: CPUs (per-CPU maps, `nr_cpu_ids`,
/// resized per-CPU arrays), the slice (`SCX_SLICE_DFL`), and
/// `--bpf-set NAME=VALUE` pairs for globals.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    pub nr_cpus: u32,
    pub slice_ns: u64,
    pub sets: Vec<(String, String)>,
}

/// One line of the object's source (from `.BTF.ext` line info).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceLine {
    pub file: String,
    pub line: u32,
    pub text: String,
}

/// A global variable as the guest sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Global {
    /// Guest address.
    pub addr: u64,
    pub size: u64,
    pub read_only: bool,
    /// For a struct: its members (name, byte offset, bytes).
    pub members: Vec<(String, u64, u64)>,
}

impl Global {
    /// Guest address of member `name`.
    pub fn member_addr(&self, name: &str) -> Option<u64> {
        self.members
            .iter()
            .find(|m| m.0 == name)
            .map(|m| self.addr + m.1)
    }
}

/// A loaded object: the image and what the host needs to explain a run.
#[derive(Clone, Debug)]
pub struct Loaded {
    image: Vec<u8>,
    name: String,
    programs: Vec<(String, String)>,
    lines: Vec<(u32, SourceLine)>,
    funcs: Vec<(u32, u32, String)>,
    calls: BTreeMap<u32, String>,
    globals: Vec<(String, Global)>,
    notes: Vec<String>,
}

impl Loaded {
    /// Bytes to write at `abi::memmap::BPF_PROGRAM_ADDR`.
    pub fn image(&self) -> &[u8] {
        &self.image
    }

    /// `sched_ext_ops.name`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// (callback, program) for every callback the object sets.
    pub fn programs(&self) -> Vec<(String, String)> {
        self.programs.clone()
    }

    /// The source line of instruction `insn` (index in the one array).
    pub fn source_line(&self, insn: u32) -> Option<SourceLine> {
        let i = self.lines.partition_point(|l| l.0 <= insn);
        let (at, line) = self.lines.get(i.checked_sub(1)?)?;
        // Only within the same function.
        (self.program_of(*at) == self.program_of(insn)).then(|| line.clone())
    }

    /// The function (struct_ops program or `.text` function) holding `insn`.
    pub fn program_of(&self, insn: u32) -> Option<&str> {
        let i = self.funcs.partition_point(|f| f.0 <= insn);
        let f = self.funcs.get(i.checked_sub(1)?)?;
        (insn < f.0 + f.1).then_some(f.2.as_str())
    }

    /// The kfunc, helper or sub-program called at `insn`.
    pub fn call_at(&self, insn: u32) -> Option<String> {
        self.calls.get(&insn).cloned()
    }

    /// A global variable by name.
    pub fn global(&self, name: &str) -> Option<Global> {
        self.globals
            .iter()
            .find(|g| g.0 == name)
            .map(|g| g.1.clone())
    }

    /// What the loader wants the user to know (ignored callbacks,
    /// missing weak kfuncs, resized arrays).
    pub fn notes(&self) -> &[String] {
        &self.notes
    }
}

/// Loads `object`. Never panics; every refusal is a [`LoadError`].
pub fn load(object: &[u8], opts: &LoadOptions) -> Result<Loaded, LoadError> {
    let mut who = String::from("BPF object");
    load_inner(object, opts, &mut who).map_err(|message| LoadError {
        object: who,
        message,
    })
}

fn load_inner(object: &[u8], opts: &LoadOptions, who: &mut String) -> Res<Loaded> {
    let elf = elf::parse(object)?;
    if let Some(f) = &elf.file {
        *who = f.clone();
    }
    if opts.nr_cpus == 0 || opts.nr_cpus as usize > abi::memmap::MAX_CPUS {
        bail!(
            "{} CPUs: schedlab runs 1 to {}",
            opts.nr_cpus,
            abi::memmap::MAX_CPUS
        );
    }
    let Some(btf_sec) = elf.section(".BTF") else {
        bail!("not a BPF object schedlab can load: no .BTF section (compile with clang -g)");
    };
    let btf = btf::Btf::parse(&btf_sec.data).map_err(|e| format!(".BTF: {e}"))?;
    let ext = match elf.section(".BTF.ext") {
        Some(s) => btf::BtfExt::parse(&s.data, &btf).map_err(|e| format!(".BTF.ext: {e}"))?,
        None => btf::BtfExt::default(),
    };
    let mut notes = Vec::new();

    // Code and CO-RE.
    let mut code = link::assemble(&elf)?;
    link::apply_core(&mut code, &btf, &ext, &btf::target_btf(), &mut notes)?;

    // sched_ext_ops.
    let ops = structops::read(&elf, &btf)?;
    let mut callbacks = [0u32; NR_CALLBACKS];
    let mut programs = Vec::new();
    // Program table: struct_ops programs, then address-taken functions.
    let mut progs: Vec<(u32, u32, String)> = code
        .programs
        .iter()
        .map(|&i| {
            let f = &code.funcs[i];
            (f.start, f.len, f.name.clone())
        })
        .collect();
    for at in link::address_taken(&code, &elf)? {
        let Some(f) = code.func_at(at).filter(|f| f.start == at) else {
            bail!("a function address is not a function's start");
        };
        if !progs.iter().any(|p| p.0 == at) {
            progs.push((f.start, f.len, f.name.clone()));
        }
    }
    if progs.len() > abi::bpf::MAX_PROGS {
        bail!(
            "{} programs, more than schedlab's {}",
            progs.len(),
            abi::bpf::MAX_PROGS
        );
    }
    for (member, func) in &ops.bindings {
        let Some(p) = progs.iter().position(|p| &p.2 == func) else {
            bail!("sched_ext_ops.{member} names {func}, which is not a struct_ops program");
        };
        let slot = if let Some(i) = POLICY_CALLBACKS.iter().position(|c| c == member) {
            i
        } else if CB_EXTRA.contains(&member.as_str()) {
            CB_DISABLE_INDEX
        } else if CB_IGNORED.contains(&member.as_str()) {
            notes.push(format!(
                "callback {member} is set ({func}) but never called"
            ));
            programs.push((member.clone(), func.clone()));
            continue;
        } else {
            bail!(
                "program {func} is sched_ext_ops.{member}, a callback schedlab does not call (it calls: {}, {})",
                POLICY_CALLBACKS.join(", "),
                CB_EXTRA.join(", ")
            );
        };
        callbacks[slot] = p as u32 + 1;
        programs.push((member.clone(), func.clone()));
    }

    // Globals.
    let (mut secs, mut vars) = data::collect(&elf, &btf)?;
    data::resize_per_cpu(&mut secs, &mut vars, &btf, opts.nr_cpus, &mut notes)?;
    fill_scx_enums(&elf, &code, &mut secs, &vars, opts)?;
    data::apply_sets(&mut secs, &vars, &btf, &opts.sets)?;

    // Maps: global sections (one-entry arrays), then `.maps`.
    let mut rows: Vec<MapRow> = Vec::new();
    for s in &secs {
        rows.push(MapRow {
            name: s.name.clone(),
            kind: MAP_ARRAY,
            key_size: 4,
            value_size: s.bytes.len() as u32,
            max_entries: 1,
            ..MapRow::default()
        });
    }
    let maps_sec = elf.section(".maps");
    let mut map_offsets = Vec::new();
    // (row, offset in .maps, values_off, kind) of each map of maps.
    let mut outers = Vec::new();
    for def in maps::btf_maps(&btf)? {
        let off = maps_sec.and_then(|s| elf.symbols_in(s.index).find(|y| y.name == def.name));
        let Some(off) = off.map(|y| y.value) else {
            bail!("map {} has no symbol in .maps", def.name);
        };
        if def.inner.is_some() {
            outers.push((rows.len(), off, u64::from(def.values_off), def.kind));
        }
        map_offsets.push((off, rows.len() as u32));
        let inner = def.inner.clone();
        rows.push(map_row(&def, opts.nr_cpus)?);
        if let Some(inner) = inner {
            let at = rows.len() as u32;
            if let Some(r) = rows.last_mut() {
                r.inner = at;
            }
            rows.push(map_row(&inner, opts.nr_cpus)?);
        }
    }
    if rows.len() > abi::bpf::MAX_MAPS {
        bail!(
            "{} maps, more than schedlab's {}",
            rows.len(),
            abi::bpf::MAX_MAPS
        );
    }

    // Layout.
    let nr_funcs = code.funcs.len();
    let mut l = Layout::tables(progs.len(), rows.len(), nr_funcs, code.insns.len());
    // Each map's layout, once: global sections are one-entry arrays.
    let lays = rows
        .iter()
        .map(|r| {
            map_layout(
                r.kind,
                r.key_size,
                r.value_size,
                r.max_entries,
                opts.nr_cpus,
            )
            .ok_or("map layout overflows")
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut cur = l.ro_off;
    for (i, s) in secs.iter_mut().enumerate() {
        if !s.read_only && l.rw_off == 0 {
            l.ro_len = cur - l.ro_off;
            l.rw_off = cur;
        }
        s.image_off = cur;
        rows[i].values_off = cur;
        rows[i].values_len = lays[i].values_len;
        cur += lays[i].values_len;
    }
    if l.rw_off == 0 {
        l.ro_len = cur - l.ro_off;
        l.rw_off = cur;
    }
    for (r, lay) in rows.iter_mut().zip(&lays).skip(secs.len()) {
        r.values_off = cur;
        r.values_len = lay.values_len;
        cur = cur
            .checked_add(align8(lay.values_len))
            .ok_or("image too large")?;
    }
    l.rw_len = cur - l.rw_off;
    l.meta_off = cur;
    for (r, lay) in rows.iter_mut().zip(&lays) {
        r.meta_off = cur;
        r.meta_len = lay.meta_len;
        cur = cur
            .checked_add(align8(lay.meta_len))
            .ok_or("image too large")?;
    }
    l.meta_len = cur - l.meta_off;
    l.size = cur;
    if l.size > BPF_PROGRAM_SIZE {
        bail!(
            "the program image is {} bytes, more than schedlab's {} (maps too large?)",
            l.size,
            BPF_PROGRAM_SIZE
        );
    }

    // A map of maps' initial inner maps (`.values = { &inner }`): one
    // `.maps` relocation per slot, written as the inner map's handle.
    let mut inits: Vec<(u64, u64)> = Vec::new();
    for r in maps_sec.map(|m| m.relocs.as_slice()).unwrap_or(&[]) {
        let sym = &elf.symbols[r.symbol];
        let Some(&(row, base, values_off, kind)) = outers.iter().rev().find(|o| o.1 <= r.offset)
        else {
            bail!(
                "a .maps relocation at {:#x} ({}) is in no map of maps",
                r.offset,
                sym.name
            );
        };
        if kind != abi::bpf::MAP_ARRAY_OF_MAPS {
            bail!(
                "initial values of map {} (a HASH_OF_MAPS) are not supported",
                rows[row].name
            );
        }
        let Some(slot) = r.offset.checked_sub(base + values_off).map(|d| d / 8) else {
            bail!(
                "map {}: an initial value outside its values",
                rows[row].name
            );
        };
        if slot >= u64::from(rows[row].max_entries) {
            bail!(
                "map {}: initial value {slot} past max_entries",
                rows[row].name
            );
        }
        let Some(&(_, inner_row)) = map_offsets.iter().find(|m| m.0 == sym.value) else {
            bail!(
                "map {}: initial value {} is not a map of .maps",
                rows[row].name,
                sym.name
            );
        };
        inits.push((
            rows[row].meta_off + slot * 8,
            abi::bpf::map_handle(inner_row),
        ));
    }

    // Relocations, then the structural checks.
    let targets = link::Targets {
        data: &secs,
        base_addr: BPF_PROGRAM_ADDR,
        maps: &map_offsets,
        maps_elf: maps_sec.map(|s| s.index),
    };
    link::relocate(&mut code, &elf, &targets, &mut notes)?;
    image::verify(&code)?;

    // Bytes.
    let mut img = vec![0u8; l.size as usize];
    image::write_header(
        &mut img,
        &image::Header {
            nr_cpus: opts.nr_cpus,
            nr_progs: progs.len() as u32,
            nr_maps: rows.len() as u32,
            nr_funcs: nr_funcs as u32,
            nr_insns: code.insns.len() as u32,
            layout: &l,
            callbacks: &callbacks,
            ops_flags: ops.flags,
            timeout_ms: ops.timeout_ms,
            dispatch_max_batch: ops.dispatch_max_batch,
            name: &ops.name,
        },
    );
    for (i, p) in progs.iter().enumerate() {
        let off = l.progs_off as usize + i * core::mem::size_of::<abi::bpf::BpfProg>();
        image::write_prog(&mut img, off, p.0, p.1, &p.2);
    }
    for (i, r) in rows.iter().enumerate() {
        image::write_map(
            &mut img,
            l.maps_off as usize + i * core::mem::size_of::<abi::bpf::BpfMap>(),
            r,
        );
    }
    for (i, f) in code.funcs.iter().enumerate() {
        image::put32(&mut img, l.funcs_off as usize + 4 * i, f.start);
    }
    for (i, insn) in code.insns.iter().enumerate() {
        let o = l.insns_off as usize + 8 * i;
        img[o..o + 8].copy_from_slice(insn);
    }
    for s in &secs {
        let o = s.image_off as usize;
        img[o..o + s.bytes.len()].copy_from_slice(&s.bytes);
    }
    for (at, handle) in inits {
        let o = at as usize;
        img[o..o + 8].copy_from_slice(&handle.to_le_bytes());
    }

    // What the host reports with.
    let mut lines = Vec::new();
    for (sec, ls) in &ext.lines {
        let Some(b) = code.blocks.iter().find(|b| &b.name == sec) else {
            continue;
        };
        for li in ls {
            if li.insn_off % 8 == 0 && li.insn_off / 8 < b.len {
                let file = li.file.rsplit('/').next().unwrap_or(&li.file).to_string();
                let line = SourceLine {
                    file,
                    line: li.line,
                    text: li.text.trim().to_string(),
                };
                lines.push((b.base + li.insn_off / 8, line));
            }
        }
    }
    lines.sort_by_key(|l| l.0);
    let globals = vars
        .iter()
        .map(|v| {
            let s = &secs[v.sec];
            let g = Global {
                addr: BPF_PROGRAM_ADDR + s.image_off + v.offset,
                size: v.size,
                read_only: s.read_only,
                members: data::members(&btf, v.ty),
            };
            (v.name.clone(), g)
        })
        .collect();
    Ok(Loaded {
        image: img,
        name: ops.name,
        programs,
        lines,
        funcs: code
            .funcs
            .iter()
            .map(|f| (f.start, f.len, f.name.clone()))
            .collect(),
        calls: code.calls,
        globals,
        notes,
    })
}

fn map_row(def: &maps::MapDef, nr_cpus: u32) -> Res<MapRow> {
    if map_layout(def.kind, 0, 0, 0, nr_cpus).is_none() {
        let mut have: Vec<&str> = abi::bpf::MAP_TYPES.iter().map(|t| t.1).collect();
        have.sort();
        bail!(
            "map {} has type {}, which schedlab does not provide (it provides: {})",
            def.name,
            maps::map_type_name(def.kind),
            have.join(", ")
        );
    }
    // Bounds before any size arithmetic: a hostile object must not
    // overflow the layout (the image is at most BPF_PROGRAM_SIZE anyway).
    if def.key_size > 1 << 16 || def.value_size > 1 << 20 || def.max_entries > 1 << 24 {
        bail!(
            "map {} is too large (key {} bytes, value {} bytes, {} entries)",
            def.name,
            def.key_size,
            def.value_size,
            def.max_entries
        );
    }
    if def.max_entries == 0 && def.kind != abi::bpf::MAP_TASK_STORAGE {
        bail!("map {} has max_entries 0", def.name);
    }
    Ok(MapRow {
        name: def.name.clone(),
        kind: def.kind,
        key_size: def.key_size,
        value_size: def.value_size,
        max_entries: def.max_entries,
        flags: def.flags,
        ..MapRow::default()
    })
}

/// Fills the weak `__SCX_*` globals from `abi::bpf::SCX_ENUMS`
/// (`SCX_SLICE_DFL` is the run's slice) and `nr_cpu_ids` with the CPU
/// count; a referenced `__SCX_*` name schedlab lacks is refused.
fn fill_scx_enums(
    elf: &elf::Elf,
    code: &link::Code,
    secs: &mut [data::DataSec],
    vars: &[data::Var],
    opts: &LoadOptions,
) -> Res<()> {
    for v in vars {
        if !secs[v.sec].read_only {
            continue;
        }
        if v.name == "nr_cpu_ids" && !opts.sets.iter().any(|s| s.0 == v.name) {
            data::write(secs, v, opts.nr_cpus as u64);
            continue;
        }
        let Some(e) = v.name.strip_prefix("__") else {
            continue;
        };
        if !e.starts_with("SCX_") {
            continue;
        }
        let value = if e == "SCX_SLICE_DFL" {
            Some(opts.slice_ns)
        } else {
            abi::bpf::SCX_ENUMS.iter().find(|x| x.0 == e).map(|x| x.1)
        };
        match value {
            Some(x) => data::write(secs, v, x),
            None => {
                // Refused only if a program reads it.
                for b in &code.blocks {
                    let Some(s) = elf.section_by_index(b.elf_index) else {
                        continue;
                    };
                    if let Some(r) = s
                        .relocs
                        .iter()
                        .find(|r| elf.symbols[r.symbol].name == v.name)
                    {
                        bail!(
                            "program {} reads {e} (weak global {}), which schedlab does not define",
                            code.who(b.base + (r.offset / 8) as u32),
                            v.name
                        );
                    }
                }
            }
        }
    }
    Ok(())
}
