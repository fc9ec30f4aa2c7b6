//! Conditional and unconditional jumps, the budget, bad instructions.

use super::asm::*;
use super::{Run, eval, fault_of};
use crate::{FAULT_BAD_INSN, FAULT_BUDGET, Insn};

/// Whether condition `op` holds, written independently of the VM.
fn holds64(op: u8, a: u64, b: u64) -> bool {
    let (sa, sb) = (a as i64, b as i64);
    match op {
        JEQ => a == b,
        JGT => a > b,
        JGE => a >= b,
        JSET => a & b != 0,
        JNE => a != b,
        JSGT => sa > sb,
        JSGE => sa >= sb,
        JLT => a < b,
        JLE => a <= b,
        JSLT => sa < sb,
        JSLE => sa <= sb,
        _ => unreachable!(),
    }
}

/// r0 = 0; r1 = a; r2 = b; if (jump) skip the exit; r0 = 1; exit.
fn taken(a: u64, b: u64, jump: Insn) -> bool {
    let p = [
        &[mov64_imm(R0, 0)][..],
        &ld_imm64(R1, a),
        &ld_imm64(R2, b),
        &[jump, exit(), mov64_imm(R0, 1), exit()],
    ]
    .concat();
    match eval(&p) {
        0 => false,
        1 => true,
        r => panic!("r0 = {r}"),
    }
}

const VALUES: [u64; 8] = [
    0,
    1,
    2,
    u64::MAX,
    0x7fff_ffff,
    0x8000_0000,
    0x1_0000_0001,
    0x8000_0000_0000_0000,
];

#[test]
fn every_condition_64_bit_register_and_immediate() {
    for op in CONDS {
        for a in VALUES {
            for b in VALUES {
                assert_eq!(
                    taken(a, b, jmp_reg(op, R1, R2, 1)),
                    holds64(op, a, b),
                    "{op:#x} {a:#x} {b:#x}"
                );
            }
            for k in [0i32, 1, -1, i32::MIN, 0x7fff_ffff] {
                // The immediate is sign-extended to 64 bits, even for
                // unsigned compares.
                let b = k as i64 as u64;
                assert_eq!(
                    taken(a, 0, jmp_imm(op, R1, k, 1)),
                    holds64(op, a, b),
                    "{op:#x} {a:#x} imm {k}"
                );
            }
        }
    }
}

#[test]
fn every_condition_32_bit_compares_the_low_halves() {
    let holds32 = |op, a: u64, b: u64| {
        let (a, b) = (a as u32, b as u32);
        // Sign-extending the halves makes the 64-bit compare a 32-bit one.
        let ext = |x: u32| match op {
            JSGT | JSGE | JSLT | JSLE => x as i32 as i64 as u64,
            _ => x as u64,
        };
        holds64(op, ext(a), ext(b))
    };
    for op in CONDS {
        for a in VALUES {
            for b in VALUES {
                assert_eq!(
                    taken(a, b, jmp32_reg(op, R1, R2, 1)),
                    holds32(op, a, b),
                    "{op:#x} {a:#x} {b:#x}"
                );
            }
            assert_eq!(
                taken(a, 0, jmp32_imm(op, R1, -1, 1)),
                holds32(op, a, u64::MAX),
                "{op:#x} {a:#x}"
            );
        }
    }
}

#[test]
fn signed_and_unsigned_compares_differ_on_negative_numbers() {
    // -1 is the largest unsigned value and the smaller signed one.
    assert!(taken(u64::MAX, 1, jmp_reg(JGT, R1, R2, 1)));
    assert!(!taken(u64::MAX, 1, jmp_reg(JSGT, R1, R2, 1)));
    assert!(taken(u64::MAX, 1, jmp_reg(JSLT, R1, R2, 1)));
    // 0x1_0000_0001 == 1 in 32 bits only.
    assert!(taken(0x1_0000_0001, 1, jmp32_reg(JEQ, R1, R2, 1)));
    assert!(!taken(0x1_0000_0001, 1, jmp_reg(JEQ, R1, R2, 1)));
}

#[test]
fn ja_and_gotol_jump_both_ways() {
    // r0 = 0; ja +2 (over r0 = 5); ...; loop back via gotol once.
    let p = [
        mov64_imm(R0, 0),
        ja(2),
        mov64_imm(R0, 5),
        exit(),
        alu64_imm(ADD, R0, 1),
        jmp_imm(JGE, R0, 3, 1),
        gotol(-3),
        exit(),
    ];
    // 0 -> +1 three times via gotol(-3) back to insn 4.
    assert_eq!(eval(&p), 3);
}

#[test]
fn an_endless_loop_runs_out_of_budget() {
    let p = [mov64_imm(R0, 0), alu64_imm(ADD, R0, 1), ja(-2)];
    let mut run = Run::new(&p);
    run.budget = 1000;
    let (r, executed) = run.go(&mut super::MockEnv::new(0));
    let f = r.unwrap_err();
    assert_eq!(f.kind, FAULT_BUDGET);
    assert_eq!(executed, 1000);
    // 1000 instructions = the mov, then 499 (add, ja) pairs and one add:
    // the next one is the ja at index 2.
    assert_eq!(f.insn, 2);
}

#[test]
fn budget_is_exact_and_executed_accumulates() {
    let mut p = [mov64_imm(R0, 1), alu64_imm(ADD, R0, 1), exit()];
    let mut run = Run::new(&p);
    run.budget = 3;
    assert_eq!(run.go(&mut super::MockEnv::new(0)), (Ok(2), 3));
    run.budget = 2;
    assert_eq!(fault_of(&run).kind, FAULT_BUDGET);
    assert_eq!(fault_of(&run).insn, 2);

    let mut stack = std::boxed::Box::new([0u64; crate::STACK_WORDS]);
    let prog = crate::Program::check(&mut p, &[]);
    // SAFETY: no memory besides the stack.
    let mut vm = unsafe { crate::Vm::new(prog, crate::Memory::default()) };
    let mut env = super::MockEnv::new(0);
    for _ in 0..4 {
        assert_eq!(vm.run(&mut env, &mut stack, 0, &[], 100), Ok(2));
    }
    assert_eq!(vm.executed, 12);
}

#[test]
fn bad_instructions_fault_where_they_are() {
    let check = |p: &[Insn], insn: u32| {
        let f = fault_of(&Run::new(p));
        assert_eq!((f.kind, f.insn), (FAULT_BAD_INSN, insn), "{p:?}");
        f
    };
    // Unknown opcode (0xff), legacy packet load (LD_ABS), callx.
    check(&[mov64_imm(R0, 0), ins(0xff, 0, 0, 0, 0), exit()], 1);
    check(&[ins(0x20, 0, 0, 0, 0), exit()], 0);
    check(&[mov64_imm(R0, 0), ins(0x8d, 0, 0, 0, 0), exit()], 1);
    // Register 11; writing r10; bad END width; bad movsx width.
    check(&[mov64_imm(11, 0), exit()], 0);
    check(&[mov64_reg(R0, 11), exit()], 0);
    check(&[mov64_imm(R10, 0), exit()], 0);
    check(&[ldx(DW, R10, R10, -8), exit()], 0);
    check(&[mov64_imm(R0, 0), end_be(R0, 24), exit()], 1);
    check(&[mov64_imm(R0, 0), movsx64(R0, R0, 4), exit()], 1);
    // Division with an `off` other than 0 or 1.
    check(&[mov64_imm(R0, 0), ins(0x3f, 0, 1, 2, 0), exit()], 1);
    // Running off the end: the pc past the last instruction.
    check(&[mov64_imm(R0, 0)], 1);
    // ld_imm64 missing its second slot.
    check(&[mov64_imm(R0, 0), ld_imm64(R0, 1)[0]], 1);
    // A jump out of the program names its target.
    let f = check(&[mov64_imm(R0, 0), ja(-3), exit()], 1);
    assert_eq!(f.addr as i64, -1);
    let f = check(&[jmp_imm(JEQ, R0, 0, 5), exit()], 0);
    assert_eq!(f.addr, 6);
    // Not taken: no fault.
    assert_eq!(
        eval(&[mov64_imm(R0, 1), jmp_imm(JEQ, R0, 0, 100), exit()]),
        1
    );
}

#[test]
fn check_traps_bad_registers_and_r10_writes_only() {
    let [lo, hi] = ld_imm64(R1, 0x1234_5678_9abc_def0);
    let mut p = [
        mov64_imm(11, 0),
        mov64_reg(R0, 12),
        mov64_imm(R10, 0),
        ldx(DW, R10, R1, 0),
        lo,
        hi,
        // Reading r10, storing through it, comparing it: all fine.
        stx(DW, R10, R1, -8),
        jmp_reg(JEQ, R10, R10, 0),
        mov64_reg(R0, R10),
        exit(),
    ];
    let want = p;
    let prog = crate::Program::check(&mut p, &[]);
    let trapped: std::vec::Vec<usize> = (0..want.len())
        .filter(|&i| prog.insns()[i].code == crate::TRAP)
        .collect();
    assert_eq!(trapped, [0, 1, 2, 3]);
    // A trapped instruction keeps its other fields; the rest are as given.
    for (i, (got, was)) in prog.insns().iter().zip(&want).enumerate() {
        assert_eq!((got.regs, got.off, got.imm), (was.regs, was.off, was.imm));
        if i >= 4 {
            assert_eq!(got, was);
        }
    }
    // Checking twice changes nothing more.
    let once = p;
    crate::Program::check(&mut p, &[]);
    assert_eq!(p, once);
}

#[test]
fn a_trapped_instruction_faults_only_when_reached() {
    // Skipped over: no fault.
    assert_eq!(
        eval(&[mov64_imm(R0, 4), ja(1), mov64_imm(R10, 0), exit()]),
        4
    );
    // Reached: a bad instruction at its index, as before the check.
    let f = fault_of(&Run::new(&[mov64_imm(R0, 4), mov64_imm(R10, 0), exit()]));
    assert_eq!((f.kind, f.insn, f.addr), (FAULT_BAD_INSN, 1, 0));
}
