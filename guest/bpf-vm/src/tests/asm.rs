//! A tiny assembler: one function per instruction form, encoded as the
//! kernel's `struct bpf_insn` (class | op | source, registers packed
//! dst low / src high).

use crate::Insn;

pub const R0: u8 = 0;
pub const R1: u8 = 1;
pub const R2: u8 = 2;
pub const R3: u8 = 3;
pub const R4: u8 = 4;
pub const R5: u8 = 5;
pub const R6: u8 = 6;
pub const R7: u8 = 7;
pub const R8: u8 = 8;
pub const R9: u8 = 9;
pub const R10: u8 = 10;

// Classes.
const LD: u8 = 0x00;
const LDX: u8 = 0x01;
const ST: u8 = 0x02;
const STX: u8 = 0x03;
const ALU: u8 = 0x04;
const JMP: u8 = 0x05;
const JMP32: u8 = 0x06;
const ALU64: u8 = 0x07;
const X: u8 = 0x08;

// ALU operations.
pub const ADD: u8 = 0x00;
pub const SUB: u8 = 0x10;
pub const MUL: u8 = 0x20;
pub const DIV: u8 = 0x30;
pub const OR: u8 = 0x40;
pub const AND: u8 = 0x50;
pub const LSH: u8 = 0x60;
pub const RSH: u8 = 0x70;
pub const NEG: u8 = 0x80;
pub const MOD: u8 = 0x90;
pub const XOR: u8 = 0xa0;
pub const MOV: u8 = 0xb0;
pub const ARSH: u8 = 0xc0;
const END: u8 = 0xd0;

// Jump conditions.
pub const JEQ: u8 = 0x10;
pub const JGT: u8 = 0x20;
pub const JGE: u8 = 0x30;
pub const JSET: u8 = 0x40;
pub const JNE: u8 = 0x50;
pub const JSGT: u8 = 0x60;
pub const JSGE: u8 = 0x70;
pub const JLT: u8 = 0xa0;
pub const JLE: u8 = 0xb0;
pub const JSLT: u8 = 0xc0;
pub const JSLE: u8 = 0xd0;
pub const CONDS: [u8; 11] = [JEQ, JGT, JGE, JSET, JNE, JSGT, JSGE, JLT, JLE, JSLT, JSLE];

// Access sizes and modes.
pub const B: u8 = 0x10;
pub const H: u8 = 0x08;
pub const W: u8 = 0x00;
pub const DW: u8 = 0x18;
const MEM: u8 = 0x60;
const MEMSX: u8 = 0x80;
const ATOMIC: u8 = 0xc0;

// Atomic operations (imm).
pub const FETCH: i32 = 0x01;
pub const XCHG: i32 = 0xe1;
pub const CMPXCHG: i32 = 0xf1;

pub fn ins(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: dst | src << 4,
        off,
        imm,
    }
}

pub fn alu64_imm(op: u8, dst: u8, imm: i32) -> Insn {
    ins(ALU64 | op, dst, 0, 0, imm)
}
pub fn alu64_reg(op: u8, dst: u8, src: u8) -> Insn {
    ins(ALU64 | op | X, dst, src, 0, 0)
}
pub fn alu32_imm(op: u8, dst: u8, imm: i32) -> Insn {
    ins(ALU | op, dst, 0, 0, imm)
}
pub fn alu32_reg(op: u8, dst: u8, src: u8) -> Insn {
    ins(ALU | op | X, dst, src, 0, 0)
}
/// v4 signed division and modulo (`off` 1).
pub fn sdiv64_reg(op: u8, dst: u8, src: u8) -> Insn {
    ins(ALU64 | op | X, dst, src, 1, 0)
}
pub fn sdiv32_reg(op: u8, dst: u8, src: u8) -> Insn {
    ins(ALU | op | X, dst, src, 1, 0)
}
/// v4 `movsx`: sign-extend the low `bits` of src.
pub fn movsx64(dst: u8, src: u8, bits: i16) -> Insn {
    ins(ALU64 | MOV | X, dst, src, bits, 0)
}
pub fn movsx32(dst: u8, src: u8, bits: i16) -> Insn {
    ins(ALU | MOV | X, dst, src, bits, 0)
}
pub fn mov64_imm(dst: u8, imm: i32) -> Insn {
    alu64_imm(MOV, dst, imm)
}
pub fn mov64_reg(dst: u8, src: u8) -> Insn {
    alu64_reg(MOV, dst, src)
}
pub fn end_le(dst: u8, bits: i32) -> Insn {
    ins(ALU | END, dst, 0, 0, bits)
}
pub fn end_be(dst: u8, bits: i32) -> Insn {
    ins(ALU | END | X, dst, 0, 0, bits)
}
pub fn bswap(dst: u8, bits: i32) -> Insn {
    ins(ALU64 | END, dst, 0, 0, bits)
}
pub fn ld_imm64(dst: u8, v: u64) -> [Insn; 2] {
    [
        ins(LD | DW, dst, 0, 0, v as u32 as i32),
        ins(0, 0, 0, 0, (v >> 32) as u32 as i32),
    ]
}

pub fn jmp_imm(op: u8, dst: u8, imm: i32, off: i16) -> Insn {
    ins(JMP | op, dst, 0, off, imm)
}
pub fn jmp_reg(op: u8, dst: u8, src: u8, off: i16) -> Insn {
    ins(JMP | op | X, dst, src, off, 0)
}
pub fn jmp32_imm(op: u8, dst: u8, imm: i32, off: i16) -> Insn {
    ins(JMP32 | op, dst, 0, off, imm)
}
pub fn jmp32_reg(op: u8, dst: u8, src: u8, off: i16) -> Insn {
    ins(JMP32 | op | X, dst, src, off, 0)
}
pub fn ja(off: i16) -> Insn {
    ins(JMP, 0, 0, off, 0)
}
/// v4 `gotol`: the offset in imm.
pub fn gotol(off: i32) -> Insn {
    ins(JMP32, 0, 0, 0, off)
}

pub fn ldx(size: u8, dst: u8, src: u8, off: i16) -> Insn {
    ins(LDX | MEM | size, dst, src, off, 0)
}
pub fn ldsx(size: u8, dst: u8, src: u8, off: i16) -> Insn {
    ins(LDX | MEMSX | size, dst, src, off, 0)
}
pub fn stx(size: u8, dst: u8, src: u8, off: i16) -> Insn {
    ins(STX | MEM | size, dst, src, off, 0)
}
pub fn st(size: u8, dst: u8, off: i16, imm: i32) -> Insn {
    ins(ST | MEM | size, dst, 0, off, imm)
}
pub fn atomic(size: u8, op: i32, dst: u8, src: u8, off: i16) -> Insn {
    ins(STX | ATOMIC | size, dst, src, off, op)
}

pub fn call_helper(n: i32) -> Insn {
    ins(JMP | 0x80, 0, 0, 0, n)
}
pub fn call_kfunc(index: i32) -> Insn {
    ins(JMP | 0x80, 0, abi::bpf::PSEUDO_KFUNC_CALL, 0, index)
}
/// A sub-program call, `rel` relative to the next instruction.
pub fn call_sub(rel: i32) -> Insn {
    ins(JMP | 0x80, 0, abi::bpf::PSEUDO_CALL, 0, rel)
}
pub fn exit() -> Insn {
    ins(JMP | 0x90, 0, 0, 0, 0)
}
