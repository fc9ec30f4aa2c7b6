//! A program image built by hand, as the host's loader would write one:
//! a fixed layout in a leaked buffer (so addresses are known before the
//! programs are assembled), and a small assembler.

use abi::bpf::{
    BPF_PROGRAM_MAGIC, BPF_PROGRAM_VERSION, BpfHeader, BpfMap, BpfProg, NAME_LEN, NR_CALLBACKS,
    PSEUDO_KFUNC_CALL, kfunc_index, map_handle, map_layout,
};
use bpf_vm::Insn;
use std::vec::Vec;

const PROGS_OFF: u32 = 0x400;
const MAPS_OFF: u32 = 0x1400;
const FUNCS_OFF: u32 = 0x3000;
const INSNS_OFF: u32 = 0x8000;
pub const RO_OFF: u32 = 0x18000;
const RO_LEN: u32 = 0x1000;
pub const RW_OFF: u32 = 0x19000;
const RW_LEN: u32 = 0x10000;
const META_OFF: u32 = 0x29000;
const META_LEN: u32 = 0x10000;
pub const SIZE: u32 = 0x39000;

pub struct Image {
    pub buf: &'static mut [u64],
    pub progs: Vec<BpfProg>,
    pub maps: Vec<BpfMap>,
    pub insns: Vec<Insn>,
    pub callbacks: [u32; NR_CALLBACKS],
    pub nr_cpus: u32,
    /// Bytes of the read-write area handed out (globals, then values).
    rw_used: u32,
    meta_used: u32,
    ro_used: u32,
}

impl Image {
    pub fn new(nr_cpus: u32) -> Image {
        let buf = Vec::leak(std::vec![0u64; SIZE as usize / 8]);
        Image {
            buf,
            progs: Vec::new(),
            maps: Vec::new(),
            insns: Vec::new(),
            callbacks: [0; NR_CALLBACKS],
            nr_cpus,
            rw_used: 0,
            meta_used: 0,
            ro_used: 0,
        }
    }

    pub fn base(&self) -> u64 {
        self.buf.as_ptr() as u64
    }

    fn bytes(&mut self) -> &mut [u8] {
        let len = self.buf.len() * 8;
        // SAFETY: the leaked buffer owns `len` initialized bytes; u8 has no
        // alignment or validity requirement.
        unsafe { std::slice::from_raw_parts_mut(self.buf.as_mut_ptr().cast::<u8>(), len) }
    }

    /// `n` bytes of globals in the read-write area: their address.
    pub fn global(&mut self, n: u32) -> u64 {
        let a = self.base() + u64::from(RW_OFF + self.rw_used);
        self.rw_used += n.div_ceil(8) * 8;
        a
    }

    /// Bytes in the read-only area (a string, say): their address.
    pub fn rodata(&mut self, b: &[u8]) -> u64 {
        let off = (RO_OFF + self.ro_used) as usize;
        self.bytes()[off..off + b.len()].copy_from_slice(b);
        self.ro_used += (b.len() as u32).div_ceil(8) * 8;
        self.base() + off as u64
    }

    /// A map: its handle and the address of its values.
    pub fn map(&mut self, kind: u32, key: u32, value: u32, max: u32) -> (u64, u64) {
        let l = map_layout(kind, key, value, max, self.nr_cpus).expect("a known map type");
        let values_off = RW_OFF + self.rw_used;
        self.rw_used += l.values_len as u32;
        let meta_off = META_OFF + self.meta_used;
        self.meta_used += l.meta_len as u32;
        self.maps.push(BpfMap {
            kind,
            key_size: key,
            value_size: value,
            max_entries: max,
            flags: 0,
            inner: 0,
            values_off,
            values_len: l.values_len as u32,
            meta_off,
            meta_len: l.meta_len as u32,
            name: [0; NAME_LEN],
        });
        (
            map_handle(self.maps.len() as u32 - 1),
            self.base() + u64::from(values_off),
        )
    }

    /// A program (and a function entry); bound to callback index `cb`
    /// if given. Its index in the program table and its entry.
    /// A callback program (`cb`: its index in the header's table) starts
    /// as `BPF_PROG` does: its arguments loaded from the context array r1
    /// points at into r1..r5 ([`PROLOGUE`] instructions); a plain function
    /// (a timer callback) takes them in registers.
    pub fn prog(&mut self, name: &str, cb: Option<usize>, code: &[Insn]) -> (u32, u32) {
        let entry = self.insns.len() as u32;
        if cb.is_some() {
            self.insns.extend_from_slice(&[
                Insn {
                    code: 0xbf, // mov64 r0, r1
                    regs: 0x10,
                    off: 0,
                    imm: 0,
                },
                asm::ldxdw(1, 0, 0),
                asm::ldxdw(2, 0, 8),
                asm::ldxdw(3, 0, 16),
                asm::ldxdw(4, 0, 24),
                asm::ldxdw(5, 0, 32),
            ]);
        }
        let code_len = code.len() as u32 + self.insns.len() as u32 - entry;
        self.insns.extend_from_slice(code);
        let mut n = [0u8; NAME_LEN];
        n[..name.len()].copy_from_slice(name.as_bytes());
        self.progs.push(BpfProg {
            entry,
            len: code_len,
            name: n,
        });
        let idx = self.progs.len() as u32 - 1;
        if let Some(i) = cb {
            self.callbacks[i] = idx + 1;
        }
        (idx, entry)
    }

    /// Instructions a callback program's prologue adds before its code.
    pub const PROLOGUE: u32 = 6;

    /// Write the header and tables; the image's address.
    pub fn finish(&mut self) -> u64 {
        let h = BpfHeader {
            magic: BPF_PROGRAM_MAGIC,
            version: BPF_PROGRAM_VERSION,
            size: SIZE,
            nr_cpus: self.nr_cpus,
            nr_progs: self.progs.len() as u32,
            nr_maps: self.maps.len() as u32,
            nr_funcs: self.progs.len() as u32,
            nr_insns: self.insns.len() as u32,
            progs_off: PROGS_OFF,
            maps_off: MAPS_OFF,
            funcs_off: FUNCS_OFF,
            insns_off: INSNS_OFF,
            ro_off: RO_OFF,
            ro_len: RO_LEN,
            rw_off: RW_OFF,
            rw_len: RW_LEN,
            meta_off: META_OFF,
            meta_len: META_LEN,
            callbacks: self.callbacks,
            ops_flags: 0,
            timeout_ms: 0,
            dispatch_max_batch: 0,
            name: [0; 32],
            status: Default::default(),
        };
        let base = self.base();
        // SAFETY: each table is written inside the leaked buffer at its
        // fixed offset (the sizes fit below the next table's).
        unsafe {
            (base as *mut BpfHeader).write(h);
            let p = (base + u64::from(PROGS_OFF)) as *mut BpfProg;
            for (i, x) in self.progs.iter().enumerate() {
                p.add(i).write(*x);
            }
            let m = (base + u64::from(MAPS_OFF)) as *mut BpfMap;
            for (i, x) in self.maps.iter().enumerate() {
                m.add(i).write(*x);
            }
            let f = (base + u64::from(FUNCS_OFF)) as *mut u32;
            for (i, x) in self.progs.iter().enumerate() {
                f.add(i).write(x.entry);
            }
            let n = (base + u64::from(INSNS_OFF)) as *mut Insn;
            for (i, x) in self.insns.iter().enumerate() {
                n.add(i).write(*x);
            }
        }
        base
    }

    #[allow(clippy::mut_from_ref)]
    pub fn header(&self) -> &mut BpfHeader {
        // SAFETY: the header lies at the start of the leaked buffer.
        unsafe { &mut *(self.base() as *mut BpfHeader) }
    }
}

/// The assembler: the encodings of the instructions the tests use.
pub mod asm {
    use super::*;

    const fn i(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
        Insn {
            code,
            regs: dst | (src << 4),
            off,
            imm,
        }
    }
    pub const fn mov(dst: u8, imm: i32) -> Insn {
        i(0xb7, dst, 0, 0, imm)
    }
    pub const fn movr(dst: u8, src: u8) -> Insn {
        i(0xbf, dst, src, 0, 0)
    }
    pub const fn add(dst: u8, imm: i32) -> Insn {
        i(0x07, dst, 0, 0, imm)
    }
    pub const fn addr(dst: u8, src: u8) -> Insn {
        i(0x0f, dst, src, 0, 0)
    }
    /// `ld_imm64`: two slots.
    pub fn ld64(dst: u8, v: u64) -> [Insn; 2] {
        [
            i(0x18, dst, 0, 0, v as u32 as i32),
            i(0, 0, 0, 0, (v >> 32) as u32 as i32),
        ]
    }
    pub const fn ldxdw(dst: u8, src: u8, off: i16) -> Insn {
        i(0x79, dst, src, off, 0)
    }
    pub const fn ldxw(dst: u8, src: u8, off: i16) -> Insn {
        i(0x61, dst, src, off, 0)
    }
    pub const fn stxdw(dst: u8, off: i16, src: u8) -> Insn {
        i(0x7b, dst, src, off, 0)
    }
    pub const fn stdw(dst: u8, off: i16, imm: i32) -> Insn {
        i(0x7a, dst, 0, off, imm)
    }
    pub const fn stw(dst: u8, off: i16, imm: i32) -> Insn {
        i(0x62, dst, 0, off, imm)
    }
    pub const fn jeq(dst: u8, imm: i32, off: i16) -> Insn {
        i(0x15, dst, 0, off, imm)
    }
    pub const fn ja(off: i16) -> Insn {
        i(0x05, 0, 0, off, 0)
    }
    pub const fn helper(id: i32) -> Insn {
        i(0x85, 0, 0, 0, id)
    }
    pub fn kfunc(name: &str) -> Insn {
        let k = kfunc_index(name).expect("a kfunc") as i32;
        i(0x85, 0, PSEUDO_KFUNC_CALL, 0, k)
    }
    pub const fn exit() -> Insn {
        i(0x95, 0, 0, 0, 0)
    }
    /// `r0 = v; exit`.
    pub fn ret(v: i32) -> [Insn; 2] {
        [mov(0, v), exit()]
    }
}

/// Flatten pieces of code.
#[macro_export]
macro_rules! code {
    ($($e:expr),* $(,)?) => {{
        let mut v: std::vec::Vec<bpf_vm::Insn> = std::vec::Vec::new();
        $( $crate::tests::builder::Push::push_to($e, &mut v); )*
        v
    }};
}

pub trait Push {
    fn push_to(self, v: &mut Vec<Insn>);
}
impl Push for Insn {
    fn push_to(self, v: &mut Vec<Insn>) {
        v.push(self)
    }
}
impl<const N: usize> Push for [Insn; N] {
    fn push_to(self, v: &mut Vec<Insn>) {
        v.extend_from_slice(&self)
    }
}
impl Push for Vec<Insn> {
    fn push_to(self, v: &mut Vec<Insn>) {
        v.extend(self)
    }
}
