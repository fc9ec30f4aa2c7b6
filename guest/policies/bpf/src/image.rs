//! The program image the host's loader wrote (`abi::bpf`): checked once in
//! `init` before anything in it is trusted, so the rest of the runtime can
//! index its tables without re-checking. A bad image makes `init` refuse
//! to start (the loader and the runtime disagree; nothing else is safe).

use abi::bpf::{
    BPF_PROGRAM_MAGIC, BPF_PROGRAM_VERSION, BpfHeader, BpfMap, BpfProg, MAP_ARRAY,
    MAP_ARRAY_OF_MAPS, MAP_HASH, MAP_HASH_OF_MAPS, MAP_LRU_HASH, MAP_PERCPU_ARRAY, MAP_PERCPU_HASH,
    MAX_INSNS, MAX_MAPS, MAX_PROGS, MapLayout, NR_CALLBACKS, map_layout,
};
use abi::memmap::{BPF_PROGRAM_SIZE, MAX_CPUS};
use bpf_vm::{Insn, Program, Range};
use core::mem::size_of;

/// Longest hash key the runtime handles (timer callbacks get the key in a
/// scratch buffer of this size).
pub const KEY_MAX: u32 = 256;

/// The checked image: tables as slices, areas as absolute ranges.
#[derive(Clone, Copy)]
pub struct Image {
    pub hdr: *mut BpfHeader,
    pub progs: &'static [BpfProg],
    pub maps: &'static [BpfMap],
    pub funcs: &'static [u32],
    pub insns: &'static [Insn],
    /// `insns` checked for the interpreter (in place: see
    /// `bpf_vm::Program::check`).
    pub prog: Program<'static>,
    pub ro: Range,
    pub rw: Range,
    pub nr_cpus: u32,
}

/// `[off, off + len)` inside `[lo, size)`, 8-aligned: the absolute range.
fn area(base: u64, lo: u64, size: u64, off: u32, len: u64) -> Result<Range, &'static str> {
    let off = u64::from(off);
    let end = off.checked_add(len).ok_or("an area's end overflows")?;
    if off < lo || end > size {
        return Err("an area lies outside the image (or over its header)");
    }
    if !off.is_multiple_of(8) {
        return Err("an area is not 8-aligned");
    }
    Ok(Range {
        start: base + off,
        end: base + end,
    })
}

fn inside(outer: Range, inner: Range) -> bool {
    inner.start >= outer.start && inner.end <= outer.end && inner.start <= inner.end
}

/// Check the image at `base` (`BPF_PROGRAM_SIZE` bytes mapped there).
///
/// # Safety
/// `base` must point at `BPF_PROGRAM_SIZE` readable and writable bytes
/// that live for the rest of the program (or at least `header.size` of
/// them, which this checks first against that bound).
pub unsafe fn validate(base: u64) -> Result<Image, &'static str> {
    let hdr = base as *mut BpfHeader;
    // SAFETY: the caller promises the header's bytes are mapped; it is
    // read by value, nothing in it trusted yet.
    let h: BpfHeader = unsafe { hdr.read() };
    if h.magic != BPF_PROGRAM_MAGIC {
        return Err("no program image (bad magic)");
    }
    if h.version != BPF_PROGRAM_VERSION {
        return Err("program image of another version (rebuild the loader or the runtime)");
    }
    let size = u64::from(h.size);
    let hsize = size_of::<BpfHeader>() as u64;
    if size < hsize || size > BPF_PROGRAM_SIZE {
        return Err("program image size out of bounds");
    }
    if h.nr_cpus == 0 || h.nr_cpus as usize > MAX_CPUS {
        return Err("program image for an impossible number of CPUs");
    }
    if h.nr_progs as usize > MAX_PROGS
        || h.nr_maps as usize > MAX_MAPS
        || h.nr_insns as usize > MAX_INSNS
        || h.nr_funcs > h.nr_insns
    {
        return Err("program image counts over the limits");
    }
    let n = |c: u32, t: usize| u64::from(c) * t as u64;
    let progs = area(
        base,
        hsize,
        size,
        h.progs_off,
        n(h.nr_progs, size_of::<BpfProg>()),
    )?;
    let maps = area(
        base,
        hsize,
        size,
        h.maps_off,
        n(h.nr_maps, size_of::<BpfMap>()),
    )?;
    let funcs = area(base, hsize, size, h.funcs_off, n(h.nr_funcs, 4))?;
    let insns = area(
        base,
        hsize,
        size,
        h.insns_off,
        n(h.nr_insns, size_of::<Insn>()),
    )?;
    let ro = area(base, hsize, size, h.ro_off, u64::from(h.ro_len))?;
    let rw = area(base, hsize, size, h.rw_off, u64::from(h.rw_len))?;
    let meta = area(base, hsize, size, h.meta_off, u64::from(h.meta_len))?;
    // SAFETY: each table lies inside the image (checked above), is
    // 8-aligned (more than its element needs) and holds plain data for
    // which any bytes are valid; the image lives for the program and is
    // writable (the caller's promise); nothing else references the
    // instructions, which only the interpreter reads from here on.
    let (progs, maps, funcs, insns) = unsafe {
        (
            core::slice::from_raw_parts(progs.start as *const BpfProg, h.nr_progs as usize),
            core::slice::from_raw_parts(maps.start as *const BpfMap, h.nr_maps as usize),
            core::slice::from_raw_parts(funcs.start as *const u32, h.nr_funcs as usize),
            core::slice::from_raw_parts_mut(insns.start as *mut Insn, h.nr_insns as usize),
        )
    };
    if funcs.windows(2).any(|w| w[0] >= w[1]) || funcs.iter().any(|&f| f >= h.nr_insns) {
        return Err("function table not sorted or past the instructions");
    }
    for p in progs {
        let end = u64::from(p.entry) + u64::from(p.len);
        if p.entry >= h.nr_insns || end > u64::from(h.nr_insns) {
            return Err("a program's instructions lie outside the array");
        }
    }
    for &cb in &h.callbacks[..NR_CALLBACKS] {
        if cb > h.nr_progs {
            return Err("a callback names a program that does not exist");
        }
    }
    for m in maps {
        check_map(m, base, ro, rw, meta, h.nr_cpus, h.nr_maps)?;
    }
    // Last, once nothing can refuse the image: it is rewritten in place.
    let prog = Program::check(insns, funcs);
    Ok(Image {
        hdr,
        progs,
        maps,
        funcs,
        insns: prog.insns(),
        prog,
        ro,
        rw,
        nr_cpus: h.nr_cpus,
    })
}

/// One map: a known type whose values and metadata fit where the header
/// says, as large as `map_layout` computes.
fn check_map(
    m: &BpfMap,
    base: u64,
    ro: Range,
    rw: Range,
    meta: Range,
    nr_cpus: u32,
    nr_maps: u32,
) -> Result<MapLayout, &'static str> {
    let l = map_layout(m.kind, m.key_size, m.value_size, m.max_entries, nr_cpus)
        .ok_or("a map of a type the runtime does not know")?;
    let values = Range {
        start: base.saturating_add(u64::from(m.values_off)),
        end: base
            .saturating_add(u64::from(m.values_off))
            .saturating_add(u64::from(m.values_len)),
    };
    let md = Range {
        start: base.saturating_add(u64::from(m.meta_off)),
        end: base
            .saturating_add(u64::from(m.meta_off))
            .saturating_add(u64::from(m.meta_len)),
    };
    if u64::from(m.values_len) < l.values_len || u64::from(m.meta_len) < l.meta_len {
        return Err("a map smaller than its layout");
    }
    if l.values_len > 0 && !(inside(rw, values) || inside(ro, values)) {
        return Err("a map's values lie outside the data areas");
    }
    if l.meta_len > 0 && !inside(meta, md) {
        return Err("a map's metadata lies outside the metadata area");
    }
    if !m.values_off.is_multiple_of(8) || !m.meta_off.is_multiple_of(8) {
        return Err("a map's values or metadata are not 8-aligned");
    }
    match m.kind {
        MAP_ARRAY | MAP_PERCPU_ARRAY | MAP_ARRAY_OF_MAPS if m.key_size != 4 => {
            return Err("an array map whose key is not 4 bytes");
        }
        MAP_HASH | MAP_LRU_HASH | MAP_PERCPU_HASH | MAP_HASH_OF_MAPS
            if m.key_size == 0 || m.key_size > KEY_MAX =>
        {
            return Err("a hash map with no key or a key over 256 bytes");
        }
        MAP_ARRAY_OF_MAPS | MAP_HASH_OF_MAPS if m.inner >= nr_maps => {
            return Err("a map of maps whose inner map does not exist");
        }
        _ => {}
    }
    Ok(l)
}

/// Whether the map's values lie in the read-only area (`.rodata`).
pub fn read_only(img: &Image, m: &BpfMap) -> bool {
    let start = img.hdr as u64 + u64::from(m.values_off);
    start >= img.ro.start && start < img.ro.end
}

/// A map's layout (checked at `validate`, so it exists).
pub fn layout(img: &Image, m: &BpfMap) -> MapLayout {
    map_layout(m.kind, m.key_size, m.value_size, m.max_entries, img.nr_cpus).unwrap_or(MapLayout {
        values_len: 0,
        meta_len: 0,
        slots: 0,
        stride: 8,
    })
}

/// A program's name (up to its NUL).
pub fn prog_name(p: &BpfProg) -> &str {
    abi::policy::text(&p.name)
}
