//! Assembling the one instruction array (every `struct_ops` program,
//! then `.text`) and rewriting it so the runtime needs no relocation
//! logic: CO-RE offsets, maps, globals, kfuncs, helpers, sub-program
//! calls and function addresses (see `abi::bpf`'s module docs).

use crate::btf::{Btf, BtfExt};
use crate::co_re;
use crate::data::DataSec;
use crate::elf::{Elf, R_BPF_64_32, R_BPF_64_64};
use crate::error::{Res, bail};
use abi::bpf::{
    FUNC_PTR_TAG, KFUNC_MISSING, KFUNCS, PSEUDO_CALL, PSEUDO_KFUNC_CALL, helper_name, kfunc_index,
    map_handle,
};
use std::collections::BTreeMap;

pub type Insn = [u8; 8];

#[derive(Clone, Debug)]
pub struct Func {
    pub name: String,
    pub start: u32,
    pub len: u32,
}

#[derive(Clone, Debug)]
pub struct Block {
    pub elf_index: usize,
    pub name: String,
    pub base: u32,
    pub len: u32,
}

#[derive(Clone, Debug, Default)]
pub struct Code {
    pub insns: Vec<Insn>,
    pub blocks: Vec<Block>,
    /// Sorted by start; struct_ops programs and `.text` functions.
    pub funcs: Vec<Func>,
    /// Indices of `funcs` that are struct_ops programs.
    pub programs: Vec<usize>,
    /// Insn index -> name of the kfunc or helper called there.
    pub calls: BTreeMap<u32, String>,
}

pub fn is_prog_section(name: &str) -> bool {
    name.starts_with("struct_ops/") || name.starts_with("struct_ops.s/")
}

pub fn assemble(elf: &Elf) -> Res<Code> {
    let mut code = Code::default();
    let order = elf
        .sections
        .iter()
        .filter(|s| is_prog_section(&s.name))
        .chain(elf.sections.iter().filter(|s| s.name == ".text"));
    for s in order {
        if s.data.len() % 8 != 0 {
            bail!("section {} is not a whole number of instructions", s.name);
        }
        let base = code.insns.len() as u32;
        let len = (s.data.len() / 8) as u32;
        if code.insns.len() + len as usize > abi::bpf::MAX_INSNS {
            bail!(
                "more than {} instructions (schedlab's limit)",
                abi::bpf::MAX_INSNS
            );
        }
        for c in s.data.chunks_exact(8) {
            let mut i = [0u8; 8];
            i.copy_from_slice(c);
            code.insns.push(i);
        }
        code.blocks.push(Block {
            elf_index: s.index,
            name: s.name.clone(),
            base,
            len,
        });
        if s.name == ".text" {
            for sym in elf.symbols_in(s.index).filter(|y| y.is_func) {
                if sym.value % 8 != 0
                    || sym.size % 8 != 0
                    || sym.value + sym.size > s.data.len() as u64
                {
                    bail!("function {} is not aligned to instructions", sym.name);
                }
                code.funcs.push(Func {
                    name: sym.name.clone(),
                    start: base + (sym.value / 8) as u32,
                    len: (sym.size / 8) as u32,
                });
            }
        } else {
            let Some(sym) = elf.symbols_in(s.index).find(|y| y.is_func && y.value == 0) else {
                bail!("section {} has no function symbol", s.name);
            };
            if len == 0 {
                bail!("program {} is empty", sym.name);
            }
            code.funcs.push(Func {
                name: sym.name.clone(),
                start: base,
                len,
            });
        }
    }
    code.funcs.sort_by_key(|f| f.start);
    code.funcs.dedup_by_key(|f| f.start);
    for w in code.funcs.windows(2) {
        if w[0].start + w[0].len > w[1].start {
            bail!("functions {} and {} overlap", w[0].name, w[1].name);
        }
    }
    let prog_starts: Vec<u32> = code
        .blocks
        .iter()
        .filter(|b| b.name != ".text")
        .map(|b| b.base)
        .collect();
    code.programs = (0..code.funcs.len())
        .filter(|&i| prog_starts.contains(&code.funcs[i].start))
        .collect();
    if code.programs.is_empty() {
        bail!("no struct_ops programs in the object");
    }
    Ok(code)
}

impl Code {
    pub fn func_at(&self, insn: u32) -> Option<&Func> {
        let i = self.funcs.partition_point(|f| f.start <= insn);
        let f = self.funcs.get(i.checked_sub(1)?)?;
        (insn < f.start + f.len).then_some(f)
    }

    /// Function name holding `insn`, for messages.
    pub fn who(&self, insn: u32) -> String {
        self.func_at(insn)
            .map_or_else(|| format!("instruction {insn}"), |f| f.name.clone())
    }

    fn block_named(&self, name: &str) -> Option<&Block> {
        self.blocks.iter().find(|b| b.name == name)
    }

    pub fn is_entry(&self, insn: u32) -> bool {
        self.funcs.binary_search_by_key(&insn, |f| f.start).is_ok()
    }
}

/// Turns instruction `idx` (a CO-RE relocation schedlab's target cannot
/// satisfy) into a call of a missing kfunc, which the runtime faults on
/// when it is reached; the host names `why` then (`Loaded::call_at`). The
/// second half of an `ld_imm64` becomes a no-op jump.
fn poison(code: &mut Code, idx: u32, end: u32, why: &str) {
    let i = idx as usize;
    let wide = code.insns[i][0] == 0x18;
    let mut call = [0u8; 8];
    call[0] = 0x85;
    call[1] = abi::bpf::PSEUDO_KFUNC_CALL << 4;
    call[4..8].copy_from_slice(&abi::bpf::KFUNC_MISSING.to_le_bytes());
    code.insns[i] = call;
    if wide && idx + 1 < end {
        code.insns[i + 1] = [0x05, 0, 0, 0, 0, 0, 0, 0];
    }
    code.calls.insert(idx, why.to_string());
}

/// Applies the `.BTF.ext` CO-RE relocations against `target`; a relocation
/// the target lacks poisons its instruction (see [`poison`]) with a note.
pub fn apply_core(
    code: &mut Code,
    btf: &Btf,
    ext: &BtfExt,
    target: &Btf,
    notes: &mut Vec<String>,
) -> Res<()> {
    for (sec, relos) in &ext.core {
        let Some(b) = code.block_named(sec).cloned() else {
            bail!("CO-RE relocations for section {sec}, which holds no program");
        };
        for r in relos {
            if r.insn_off % 8 != 0 || r.insn_off / 8 >= b.len {
                bail!("CO-RE relocation at {sec}+{:#x} is outside it", r.insn_off);
            }
            let idx = b.base + r.insn_off / 8;
            let who = code.who(idx);
            let res = co_re::resolve(btf, target, r).map_err(|e| format!("program {who}: {e}"))?;
            if let Some(why) = res.missing {
                poison(code, idx, b.base + b.len, &why);
                notes.push(format!(
                    "program {who}: {why}; the instruction faults if the program reaches it \
                     (libbpf poisons it the same way)"
                ));
                continue;
            }
            let (a, rest) = code.insns.split_at_mut(idx as usize + 1);
            let insn = &mut a[idx as usize];
            let next = if idx + 1 < b.base + b.len {
                rest.first_mut()
            } else {
                None
            };
            co_re::patch(insn, next, r.kind, &res)
                .map_err(|e| format!("program {who}: {e} ({})", co_re::describe(btf, r)))?;
        }
    }
    Ok(())
}

/// `.text` function entries whose address an `ld_imm64` takes (timer
/// callbacks): they become programs too.
pub fn address_taken(code: &Code, elf: &Elf) -> Res<Vec<u32>> {
    let mut out = Vec::new();
    let Some(text) = code.block_named(".text").cloned() else {
        return Ok(out);
    };
    for b in &code.blocks {
        let Some(sec) = elf.section_by_index(b.elf_index) else {
            continue;
        };
        for r in sec.relocs.iter().filter(|r| r.r_type == R_BPF_64_64) {
            let sym = &elf.symbols[r.symbol];
            if sym.section != Some(text.elf_index) {
                continue;
            }
            let Some(insn) = code.insns.get(b.base as usize + (r.offset / 8) as usize) else {
                continue;
            };
            let imm = i32::from_le_bytes([insn[4], insn[5], insn[6], insn[7]]) as i128;
            let byte = sym.value as i128 + imm;
            if byte < 0 || byte % 8 != 0 || byte / 8 >= text.len as i128 {
                bail!(
                    "program {}: function address outside .text",
                    code.who(b.base)
                );
            }
            let at = text.base + (byte / 8) as u32;
            if !out.contains(&at) {
                out.push(at);
            }
        }
    }
    Ok(out)
}

/// What relocations resolve against, set up by the layout.
pub struct Targets<'a> {
    pub data: &'a [DataSec],
    /// Guest address of the image.
    pub base_addr: u64,
    /// (offset of the map's variable in `.maps`, its map index).
    pub maps: &'a [(u64, u32)],
    /// ELF index of `.maps`.
    pub maps_elf: Option<usize>,
}

fn set_imm(insn: &mut Insn, v: i32) {
    insn[4..8].copy_from_slice(&v.to_le_bytes());
}

fn imm(insn: &Insn) -> i32 {
    i32::from_le_bytes([insn[4], insn[5], insn[6], insn[7]])
}

fn set_src(insn: &mut Insn, src: u8) {
    insn[1] = (insn[1] & 0x0f) | (src << 4);
}

fn provided() -> String {
    KFUNCS.join(", ")
}

/// Rewrites every relocated instruction and every call.
pub fn relocate(code: &mut Code, elf: &Elf, t: &Targets, notes: &mut Vec<String>) -> Res<()> {
    let mut done = vec![false; code.insns.len()];
    let text = code.block_named(".text").cloned();
    for b in code.blocks.clone() {
        let Some(sec) = elf.section_by_index(b.elf_index) else {
            continue;
        };
        for r in &sec.relocs {
            if r.offset % 8 != 0 || r.offset / 8 >= b.len as u64 {
                bail!("relocation at {}+{:#x} is outside it", b.name, r.offset);
            }
            let idx = b.base + (r.offset / 8) as u32;
            let who = code.who(idx);
            let sym = &elf.symbols[r.symbol];
            let insn = code.insns[idx as usize];
            match r.r_type {
                R_BPF_64_64 => {
                    if insn[0] != 0x18 || idx + 1 >= b.base + b.len {
                        bail!(
                            "program {who}: relocation for {} on an instruction that is not ld_imm64",
                            sym.name
                        );
                    }
                    let addend = i64::try_from(sym.value as i128 + imm(&insn) as i128)
                        .map_err(|_| format!("program {who}: bad addend for {}", sym.name))?;
                    let value: u64 = match sym.section {
                        None => {
                            let found = kfunc_index(&sym.name).is_some();
                            if !found && !sym.weak {
                                bail!(
                                    "program {who} references kfunc {}, which schedlab does not provide (it provides: {})",
                                    sym.name,
                                    provided()
                                );
                            }
                            found as u64
                        }
                        Some(s) if Some(s) == t.maps_elf => {
                            match t.maps.iter().find(|m| m.0 as i64 == addend) {
                                Some(m) => map_handle(m.1),
                                None => {
                                    bail!("program {who}: reference to {} is not a map", sym.name)
                                }
                            }
                        }
                        Some(s) if text.as_ref().is_some_and(|x| x.elf_index == s) => {
                            let x = text.as_ref().map_or(0, |x| x.base);
                            let at = u32::try_from(x as i64 + addend / 8).unwrap_or(u32::MAX);
                            if addend % 8 != 0 || !code.is_entry(at) {
                                bail!("program {who}: function address is not a function's start");
                            }
                            FUNC_PTR_TAG | at as u64
                        }
                        Some(s) => match t.data.iter().find(|d| d.elf_index == s) {
                            Some(d) => {
                                if addend < 0 || addend as u64 > d.bytes.len() as u64 {
                                    bail!(
                                        "program {who}: reference to {} outside {}",
                                        sym.name,
                                        d.name
                                    );
                                }
                                t.base_addr + d.image_off + addend as u64
                            }
                            None => bail!(
                                "program {who} references {} in section {}, which schedlab does not load",
                                sym.name,
                                elf.section_name(s)
                            ),
                        },
                    };
                    let (lo, hi) = (value as u32 as i32, (value >> 32) as u32 as i32);
                    let i = &mut code.insns[idx as usize];
                    set_imm(i, lo);
                    set_src(i, 0);
                    set_imm(&mut code.insns[idx as usize + 1], hi);
                    done[idx as usize] = true;
                }
                R_BPF_64_32 => {
                    if insn[0] != 0x85 {
                        bail!(
                            "program {who}: call relocation for {} on an instruction that is not a call",
                            sym.name
                        );
                    }
                    match sym.section {
                        None => {
                            let index = match kfunc_index(&sym.name) {
                                Some(i) => i as i32,
                                None if sym.weak => {
                                    let n = format!(
                                        "weak kfunc {} is not provided by schedlab: program {who} faults if it reaches the call",
                                        sym.name
                                    );
                                    if !notes.contains(&n) {
                                        notes.push(n);
                                    }
                                    KFUNC_MISSING
                                }
                                None => bail!(
                                    "program {who} calls kfunc {}, which schedlab does not provide (it provides: {})",
                                    sym.name,
                                    provided()
                                ),
                            };
                            let i = &mut code.insns[idx as usize];
                            set_src(i, PSEUDO_KFUNC_CALL);
                            set_imm(i, index);
                            code.calls.insert(idx, sym.name.clone());
                        }
                        Some(s) if text.as_ref().is_some_and(|x| x.elf_index == s) => {
                            let x = text.as_ref().map_or(0, |x| x.base) as i64;
                            let target =
                                x + (sym.value / 8).min(1 << 40) as i64 + imm(&insn) as i64 + 1;
                            if target < 0
                                || target > u32::MAX as i64
                                || !code.is_entry(target as u32)
                            {
                                bail!(
                                    "program {who}: call to {} does not land on a function",
                                    sym.name
                                );
                            }
                            let i = &mut code.insns[idx as usize];
                            set_src(i, PSEUDO_CALL);
                            set_imm(i, (target - (idx as i64 + 1)) as i32);
                            if let Some(f) = code.func_at(target as u32) {
                                code.calls.insert(idx, f.name.clone());
                            }
                        }
                        Some(s) => bail!(
                            "program {who} calls {} in section {}, which is not .text",
                            sym.name,
                            elf.section_name(s)
                        ),
                    }
                    done[idx as usize] = true;
                }
                k => bail!(
                    "program {who}: relocation type {k} (for {}) is not supported",
                    sym.name
                ),
            }
        }
    }
    // Instructions without a relocation.
    for (idx, insn) in code.insns.iter_mut().enumerate() {
        if done[idx] {
            continue;
        }
        let src = insn[1] >> 4;
        if insn[0] == 0x85 {
            match src {
                0 => {
                    let n = imm(insn) as u32;
                    match helper_name(n) {
                        Some(name) => {
                            code.calls.insert(idx as u32, name.to_string());
                        }
                        None => {
                            let who = code
                                .funcs
                                .iter()
                                .rev()
                                .find(|f| f.start as usize <= idx)
                                .map_or("?", |f| f.name.as_str());
                            let name = crate::helpers::unsupported_helper_name(n)
                                .map_or(String::new(), |s| format!(" ({s})"));
                            bail!(
                                "program {who} calls BPF helper {n}{name}, which schedlab does not provide"
                            );
                        }
                    }
                }
                // A call inside one section: already relative.
                1 => {}
                // A poisoned CO-RE relocation (see `poison`).
                s if s == abi::bpf::PSEUDO_KFUNC_CALL
                    && imm(insn) == abi::bpf::KFUNC_MISSING
                    && code.calls.contains_key(&(idx as u32)) => {}
                s => bail!("call with src_reg {s} and no relocation at instruction {idx}"),
            }
        } else if insn[0] == 0x18 && src != 0 {
            bail!("ld_imm64 with src_reg {src} and no relocation at instruction {idx}");
        }
    }
    Ok(())
}
