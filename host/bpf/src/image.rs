//! The program image: structural checks of the final instruction array
//! (so the runtime can rely on them) and the bytes `abi::bpf` lays out.

use crate::error::{Res, bail};
use crate::link::{Code, Insn};
use abi::bpf::{
    BpfHeader, BpfMap, BpfProg, HELPERS, KFUNC_MISSING, KFUNCS, NAME_LEN, PSEUDO_CALL,
    PSEUDO_KFUNC_CALL,
};
use core::mem::{offset_of, size_of};

/// Checks what the runtime relies on: known opcodes, registers < 11,
/// whole `ld_imm64` pairs, jumps inside their function and not into the
/// second half of an `ld_imm64`, calls landing on function starts,
/// helper and kfunc numbers it knows, every function ending in `exit`
/// or a jump.
pub fn verify(code: &Code) -> Res<()> {
    let n = code.insns.len();
    let mut second_half = vec![false; n];
    let mut i = 0;
    while i < n {
        if code.insns[i][0] == 0x18 {
            if i + 1 >= n
                || code.func_at(i as u32 + 1).map(|f| f.start)
                    != code.func_at(i as u32).map(|f| f.start)
            {
                bail!(
                    "program {}: incomplete ld_imm64 at instruction {i}",
                    code.who(i as u32)
                );
            }
            let s = &code.insns[i + 1];
            if s[0] != 0 || s[1] != 0 || s[2] != 0 || s[3] != 0 {
                bail!(
                    "program {}: bad second half of ld_imm64 at instruction {i}",
                    code.who(i as u32)
                );
            }
            second_half[i + 1] = true;
            i += 2;
        } else {
            i += 1;
        }
    }
    for f in &code.funcs {
        let last = f.start + f.len - 1;
        let op = code.insns[last as usize][0];
        if op != 0x95 && op != 0x05 && op != 0x06 {
            bail!("function {} does not end in exit or a jump", f.name);
        }
    }
    for (i, insn) in code.insns.iter().enumerate() {
        if second_half[i] {
            continue;
        }
        let who = || code.who(i as u32);
        let Some(f) = code.func_at(i as u32) else {
            bail!("instruction {i} belongs to no function");
        };
        check_insn(insn).map_err(|e| format!("program {}: instruction {i}: {e}", who()))?;
        let class = insn[0] & 7;
        let op = insn[0] & 0xf0;
        let off = i16::from_le_bytes([insn[2], insn[3]]) as i64;
        let imm = i32::from_le_bytes([insn[4], insn[5], insn[6], insn[7]]);
        if class == 5 || class == 6 {
            if class == 5 && op == 0x80 {
                match insn[1] >> 4 {
                    0 if HELPERS.iter().any(|h| h.0 == imm as u32) => {}
                    PSEUDO_CALL => {
                        let t = i as i64 + imm as i64 + 1;
                        if t < 0 || t >= n as i64 || !code.is_entry(t as u32) {
                            bail!(
                                "program {}: call at instruction {i} does not land on a function",
                                who()
                            );
                        }
                    }
                    PSEUDO_KFUNC_CALL
                        if imm == KFUNC_MISSING || (imm >= 0 && (imm as usize) < KFUNCS.len()) => {}
                    _ => bail!("program {}: bad call at instruction {i}", who()),
                }
                continue;
            }
            if class == 5 && op == 0x90 {
                continue;
            }
            // gotol (JMP32|JA) jumps by imm, every other jump by off.
            let delta = if class == 6 && op == 0 {
                imm as i64
            } else {
                off
            };
            let t = i as i64 + delta + 1;
            if t < f.start as i64 || t >= (f.start + f.len) as i64 || second_half[t as usize] {
                bail!(
                    "program {}: jump at instruction {i} leaves its function",
                    who()
                );
            }
        }
    }
    Ok(())
}

fn check_insn(insn: &Insn) -> Res<()> {
    let (dst, src) = (insn[1] & 0x0f, insn[1] >> 4);
    let class = insn[0] & 7;
    let op = insn[0] & 0xf0;
    if dst >= 11 || (src >= 11 && !(class == 5 && op == 0x80)) {
        bail!("register out of range");
    }
    let ok = match class {
        0 => insn[0] == 0x18,
        1 => matches!(insn[0] & 0xe0, 0x60 | 0x80),
        2 => insn[0] & 0xe0 == 0x60,
        3 => matches!(insn[0] & 0xe0, 0x60 | 0xc0),
        4 | 7 => op <= 0xd0,
        5 => op <= 0xd0,
        _ => op <= 0xd0 && op != 0x80 && op != 0x90,
    };
    if !ok {
        bail!("opcode {:#04x} is not supported", insn[0]);
    }
    Ok(())
}

pub const fn align8(n: u64) -> u64 {
    (n + 7) & !7
}

/// Offsets of the image's tables and areas.
#[derive(Clone, Copy, Debug, Default)]
pub struct Layout {
    pub progs_off: u64,
    pub maps_off: u64,
    pub funcs_off: u64,
    pub insns_off: u64,
    pub ro_off: u64,
    pub ro_len: u64,
    pub rw_off: u64,
    pub rw_len: u64,
    pub meta_off: u64,
    pub meta_len: u64,
    pub size: u64,
}

impl Layout {
    pub fn tables(nr_progs: usize, nr_maps: usize, nr_funcs: usize, nr_insns: usize) -> Layout {
        let progs_off = align8(size_of::<BpfHeader>() as u64);
        let maps_off = align8(progs_off + (nr_progs * size_of::<BpfProg>()) as u64);
        let funcs_off = align8(maps_off + (nr_maps * size_of::<BpfMap>()) as u64);
        let insns_off = align8(funcs_off + 4 * nr_funcs as u64);
        let ro_off = insns_off + 8 * nr_insns as u64;
        Layout {
            progs_off,
            maps_off,
            funcs_off,
            insns_off,
            ro_off,
            ..Layout::default()
        }
    }
}

pub fn put32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_le_bytes());
}

pub fn put64(b: &mut [u8], off: usize, v: u64) {
    b[off..off + 8].copy_from_slice(&v.to_le_bytes());
}

pub fn put_name(b: &mut [u8], off: usize, len: usize, name: &str) {
    let n = name.len().min(len - 1);
    b[off..off + n].copy_from_slice(&name.as_bytes()[..n]);
}

/// The header's fields, by their `offset_of!` in `abi::bpf::BpfHeader`.
pub struct Header<'a> {
    pub nr_cpus: u32,
    pub nr_progs: u32,
    pub nr_maps: u32,
    pub nr_funcs: u32,
    pub nr_insns: u32,
    pub layout: &'a Layout,
    pub callbacks: &'a [u32],
    pub ops_flags: u64,
    pub timeout_ms: u32,
    pub dispatch_max_batch: u32,
    pub name: &'a str,
}

pub fn write_header(b: &mut [u8], h: &Header) {
    use abi::bpf::{BPF_PROGRAM_MAGIC, BPF_PROGRAM_VERSION};
    let l = h.layout;
    put32(b, offset_of!(BpfHeader, magic), BPF_PROGRAM_MAGIC);
    put32(b, offset_of!(BpfHeader, version), BPF_PROGRAM_VERSION);
    put32(b, offset_of!(BpfHeader, size), l.size as u32);
    put32(b, offset_of!(BpfHeader, nr_cpus), h.nr_cpus);
    put32(b, offset_of!(BpfHeader, nr_progs), h.nr_progs);
    put32(b, offset_of!(BpfHeader, nr_maps), h.nr_maps);
    put32(b, offset_of!(BpfHeader, nr_funcs), h.nr_funcs);
    put32(b, offset_of!(BpfHeader, nr_insns), h.nr_insns);
    put32(b, offset_of!(BpfHeader, progs_off), l.progs_off as u32);
    put32(b, offset_of!(BpfHeader, maps_off), l.maps_off as u32);
    put32(b, offset_of!(BpfHeader, funcs_off), l.funcs_off as u32);
    put32(b, offset_of!(BpfHeader, insns_off), l.insns_off as u32);
    put32(b, offset_of!(BpfHeader, ro_off), l.ro_off as u32);
    put32(b, offset_of!(BpfHeader, ro_len), l.ro_len as u32);
    put32(b, offset_of!(BpfHeader, rw_off), l.rw_off as u32);
    put32(b, offset_of!(BpfHeader, rw_len), l.rw_len as u32);
    put32(b, offset_of!(BpfHeader, meta_off), l.meta_off as u32);
    put32(b, offset_of!(BpfHeader, meta_len), l.meta_len as u32);
    for (i, &c) in h.callbacks.iter().enumerate() {
        put32(b, offset_of!(BpfHeader, callbacks) + 4 * i, c);
    }
    put64(b, offset_of!(BpfHeader, ops_flags), h.ops_flags);
    put32(b, offset_of!(BpfHeader, timeout_ms), h.timeout_ms);
    put32(
        b,
        offset_of!(BpfHeader, dispatch_max_batch),
        h.dispatch_max_batch,
    );
    put_name(b, offset_of!(BpfHeader, name), 32, h.name);
}

pub fn write_prog(b: &mut [u8], off: usize, entry: u32, len: u32, name: &str) {
    put32(b, off + offset_of!(BpfProg, entry), entry);
    put32(b, off + offset_of!(BpfProg, len), len);
    put_name(b, off + offset_of!(BpfProg, name), NAME_LEN, name);
}

/// One map-table row.
#[derive(Clone, Debug, Default)]
pub struct MapRow {
    pub name: String,
    pub kind: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub flags: u32,
    pub inner: u32,
    pub values_off: u64,
    pub values_len: u64,
    pub meta_off: u64,
    pub meta_len: u64,
}

pub fn write_map(b: &mut [u8], off: usize, m: &MapRow) {
    put32(b, off + offset_of!(BpfMap, kind), m.kind);
    put32(b, off + offset_of!(BpfMap, key_size), m.key_size);
    put32(b, off + offset_of!(BpfMap, value_size), m.value_size);
    put32(b, off + offset_of!(BpfMap, max_entries), m.max_entries);
    put32(b, off + offset_of!(BpfMap, flags), m.flags);
    put32(b, off + offset_of!(BpfMap, inner), m.inner);
    put32(b, off + offset_of!(BpfMap, values_off), m.values_off as u32);
    put32(b, off + offset_of!(BpfMap, values_len), m.values_len as u32);
    put32(b, off + offset_of!(BpfMap, meta_off), m.meta_off as u32);
    put32(b, off + offset_of!(BpfMap, meta_len), m.meta_len as u32);
    put_name(b, off + offset_of!(BpfMap, name), NAME_LEN, &m.name);
}
