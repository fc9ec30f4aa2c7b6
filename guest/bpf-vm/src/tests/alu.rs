//! ALU, ALU64, byte swaps and ld_imm64.

use super::asm::*;
use super::eval;
use crate::Insn;

/// r0 = a; r1 = b; r0 op= r1 (through `op_insn`); exit.
fn binop(a: u64, b: u64, op_insn: Insn) -> u64 {
    let p = [&ld_imm64(R0, a)[..], &ld_imm64(R1, b), &[op_insn, exit()]].concat();
    eval(&p)
}

/// The kernel's semantics, written independently of the interpreter.
fn reference64(op: u8, a: u64, b: u64) -> u64 {
    match op {
        ADD => a.wrapping_add(b),
        SUB => a.wrapping_sub(b),
        MUL => a.wrapping_mul(b),
        DIV => a.checked_div(b).unwrap_or(0),
        OR => a | b,
        AND => a & b,
        LSH => a << (b % 64),
        RSH => a >> (b % 64),
        MOD => a.checked_rem(b).unwrap_or(a),
        XOR => a ^ b,
        MOV => b,
        ARSH => ((a as i64) >> (b % 64)) as u64,
        _ => unreachable!(),
    }
}

fn reference32(op: u8, a: u64, b: u64) -> u64 {
    let (a, b) = (a as u32, b as u32);
    (match op {
        ADD => a.wrapping_add(b),
        SUB => a.wrapping_sub(b),
        MUL => a.wrapping_mul(b),
        DIV => a.checked_div(b).unwrap_or(0),
        OR => a | b,
        AND => a & b,
        LSH => a << (b % 32),
        RSH => a >> (b % 32),
        MOD => a.checked_rem(b).unwrap_or(a),
        XOR => a ^ b,
        MOV => b,
        ARSH => ((a as i32) >> (b % 32)) as u32,
        _ => unreachable!(),
    }) as u64
}

const OPS: [u8; 12] = [ADD, SUB, MUL, DIV, OR, AND, LSH, RSH, MOD, XOR, MOV, ARSH];
const VALUES: [u64; 7] = [
    0,
    1,
    7,
    0xffff_ffff,
    0x8000_0000_0000_0003,
    0xdead_beef_1234_5678,
    u64::MAX,
];

#[test]
fn every_alu_op_with_register_source_matches_the_kernel() {
    for op in OPS {
        for a in VALUES {
            for b in VALUES {
                let b = if matches!(op, LSH | RSH | ARSH) {
                    b % 64
                } else {
                    b
                };
                assert_eq!(
                    binop(a, b, alu64_reg(op, R0, R1)),
                    reference64(op, a, b),
                    "alu64 {op:#x} {a:#x} {b:#x}"
                );
                let b = if matches!(op, LSH | RSH | ARSH) {
                    b % 32
                } else {
                    b
                };
                assert_eq!(
                    binop(a, b, alu32_reg(op, R0, R1)),
                    reference32(op, a, b),
                    "alu32 {op:#x} {a:#x} {b:#x}"
                );
            }
        }
    }
}

#[test]
fn every_alu_op_with_immediate_source_matches_the_kernel() {
    for op in OPS {
        for a in VALUES {
            for k in [0i32, 1, 5, -1, -7, i32::MIN, 31] {
                let k = if matches!(op, LSH | RSH | ARSH) {
                    k & 31
                } else {
                    k
                };
                // 64-bit ops sign-extend the immediate; 32-bit ones use its bits.
                let p64 = [&ld_imm64(R0, a)[..], &[alu64_imm(op, R0, k), exit()]].concat();
                assert_eq!(
                    eval(&p64),
                    reference64(op, a, k as i64 as u64),
                    "alu64 {op:#x} {a:#x} {k}"
                );
                let p32 = [&ld_imm64(R0, a)[..], &[alu32_imm(op, R0, k), exit()]].concat();
                assert_eq!(
                    eval(&p32),
                    reference32(op, a, k as u32 as u64),
                    "alu32 {op:#x} {a:#x} {k}"
                );
            }
        }
    }
}

#[test]
fn hand_computed_alu_results() {
    // 32-bit ops zero-extend: (u32)0xffffffff + 1 == 0, high half cleared.
    assert_eq!(eval(&[mov64_imm(R0, -1), alu32_imm(ADD, R0, 1), exit()]), 0);
    assert_eq!(
        eval(&[mov64_imm(R0, -1), alu32_imm(MOV, R0, -1), exit()]),
        0xffff_ffff
    );
    assert_eq!(eval(&[mov64_imm(R0, -1), exit()]), u64::MAX);
    // Arithmetic vs logical shift of -16.
    assert_eq!(
        eval(&[mov64_imm(R0, -16), alu64_imm(ARSH, R0, 2), exit()]),
        -4i64 as u64
    );
    assert_eq!(
        eval(&[mov64_imm(R0, -16), alu64_imm(RSH, R0, 60), exit()]),
        15
    );
    // arsh32 sign-fills bit 31 down, then zero-extends.
    assert_eq!(
        eval(&[mov64_imm(R0, i32::MIN), alu32_imm(ARSH, R0, 4), exit()]),
        0xf800_0000
    );
    // Shift counts are masked: 1 << 65 == 2 (64-bit), 1 << 33 == 2 (32-bit).
    assert_eq!(
        eval(&[
            mov64_imm(R0, 1),
            mov64_imm(R1, 65),
            alu64_reg(LSH, R0, R1),
            exit()
        ]),
        2
    );
    assert_eq!(
        eval(&[
            mov64_imm(R0, 1),
            mov64_imm(R1, 33),
            alu32_reg(LSH, R0, R1),
            exit()
        ]),
        2
    );
    // neg.
    assert_eq!(
        eval(&[mov64_imm(R0, 5), alu64_imm(NEG, R0, 0), exit()]),
        -5i64 as u64
    );
    assert_eq!(
        eval(&[mov64_imm(R0, 5), alu32_imm(NEG, R0, 0), exit()]),
        0xffff_fffb
    );
    // 7 * -3 = -21; 100 / 7 = 14; 100 % 7 = 2.
    assert_eq!(
        eval(&[mov64_imm(R0, 7), alu64_imm(MUL, R0, -3), exit()]),
        -21i64 as u64
    );
    assert_eq!(
        eval(&[mov64_imm(R0, 100), alu64_imm(DIV, R0, 7), exit()]),
        14
    );
    assert_eq!(
        eval(&[mov64_imm(R0, 100), alu64_imm(MOD, R0, 7), exit()]),
        2
    );
}

#[test]
fn division_by_zero_follows_the_kernel_and_does_not_fault() {
    let big = 0x1234_5678_9abc_def0;
    assert_eq!(binop(big, 0, alu64_reg(DIV, R0, R1)), 0);
    assert_eq!(binop(big, 0, alu64_reg(MOD, R0, R1)), big);
    assert_eq!(binop(big, 0, alu32_reg(DIV, R0, R1)), 0);
    // 32-bit modulo by zero keeps the low half, zero-extended.
    assert_eq!(binop(big, 0, alu32_reg(MOD, R0, R1)), 0x9abc_def0);
    assert_eq!(binop(big, 0, sdiv64_reg(DIV, R0, R1)), 0);
    assert_eq!(binop(big, 0, sdiv64_reg(MOD, R0, R1)), big);
}

#[test]
fn signed_division_and_modulo() {
    let m7 = -7i64 as u64;
    assert_eq!(binop(m7, 2, sdiv64_reg(DIV, R0, R1)), -3i64 as u64);
    assert_eq!(binop(m7, 2, sdiv64_reg(MOD, R0, R1)), -1i64 as u64);
    // Unsigned view of the same bits is a huge number.
    assert_eq!(binop(m7, 2, alu64_reg(DIV, R0, R1)), m7 / 2);
    assert_eq!(
        binop(i64::MIN as u64, u64::MAX, sdiv64_reg(DIV, R0, R1)),
        i64::MIN as u64
    );
    assert_eq!(binop(i64::MIN as u64, u64::MAX, sdiv64_reg(MOD, R0, R1)), 0);
    assert_eq!(binop(m7, 2, sdiv32_reg(DIV, R0, R1)), 0xffff_fffd);
    assert_eq!(binop(m7, 2, sdiv32_reg(MOD, R0, R1)), 0xffff_ffff);
}

#[test]
fn movsx_sign_extends() {
    let p = |insn| binop(0, 0x1234_5680, insn);
    assert_eq!(p(movsx64(R0, R1, 8)), -128i64 as u64);
    assert_eq!(p(movsx64(R0, R1, 16)), 0x5680);
    assert_eq!(binop(0, 0xffff_8001, movsx64(R0, R1, 16)), -32767i64 as u64);
    assert_eq!(
        binop(0, 0x8000_0000, movsx64(R0, R1, 32)),
        0xffff_ffff_8000_0000
    );
    assert_eq!(p(movsx32(R0, R1, 8)), 0xffff_ff80);
}

#[test]
fn byte_swaps() {
    let v = 0x0102_0304_0506_0708u64;
    let swap = |insn| binop(v, 0, insn);
    assert_eq!(swap(end_be(R0, 16)), 0x0807);
    assert_eq!(swap(end_be(R0, 32)), 0x0807_0605);
    assert_eq!(swap(end_be(R0, 64)), 0x0807_0605_0403_0201);
    // To little-endian on a little-endian machine: truncation only.
    assert_eq!(swap(end_le(R0, 16)), 0x0708);
    assert_eq!(swap(end_le(R0, 32)), 0x0506_0708);
    assert_eq!(swap(end_le(R0, 64)), v);
    assert_eq!(swap(bswap(R0, 16)), 0x0807);
    assert_eq!(swap(bswap(R0, 64)), 0x0807_0605_0403_0201);
}

#[test]
fn ld_imm64_is_one_64_bit_constant_in_two_slots() {
    let p = [
        &ld_imm64(R3, 0xfedc_ba98_7654_3210)[..],
        &[mov64_reg(R0, R3), exit()],
    ]
    .concat();
    assert_eq!(eval(&p), 0xfedc_ba98_7654_3210);
    // A low half with bit 31 set is not sign-extended into the high one.
    let p = [&ld_imm64(R0, 0x0000_0001_8000_0000)[..], &[exit()]].concat();
    assert_eq!(eval(&p), 0x0000_0001_8000_0000);
}
