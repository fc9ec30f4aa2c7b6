//! Helper, kfunc and sub-program calls.

use super::asm::*;
use super::{MockEnv, Run, fault_of};
use crate::{
    Call, CallFault, FAULT_BAD_ARG, FAULT_BAD_INSN, FAULT_CALL_DEPTH, FAULT_MISSING_KFUNC,
    MAX_CALL_DEPTH, STACK_SIZE,
};

#[test]
fn a_helper_gets_r1_to_r5_and_its_result_lands_in_r0() {
    let p = [
        mov64_imm(R1, 11),
        mov64_imm(R2, 22),
        mov64_imm(R3, 33),
        mov64_imm(R4, 44),
        mov64_imm(R5, 55),
        mov64_imm(R6, 1),
        call_helper(5),
        alu64_reg(ADD, R0, R6),
        exit(),
    ];
    let mut env = MockEnv::new(1000);
    assert_eq!(Run::new(&p).go(&mut env).0, Ok(1001));
    assert_eq!(env.calls, [(Call::Helper(5), [11, 22, 33, 44, 55])]);
}

#[test]
fn a_kfunc_call_names_its_index() {
    let p = [mov64_imm(R1, 3), call_kfunc(2), exit()];
    let mut env = MockEnv::new(7);
    assert_eq!(Run::new(&p).go(&mut env).0, Ok(7));
    assert_eq!(env.calls, [(Call::Kfunc(2), [3, 0, 0, 0, 0])]);
    // An index past the kfunc table is a bad instruction.
    let n = abi::bpf::KFUNCS.len() as i32;
    let f = fault_of(&Run::new(&[call_kfunc(n), exit()]));
    assert_eq!((f.kind, f.insn), (FAULT_BAD_INSN, 0));
}

#[test]
fn a_call_fault_becomes_a_fault_at_the_call() {
    let p = [mov64_imm(R1, 8), mov64_imm(R0, 0), call_helper(1), exit()];
    let mut env = MockEnv::new(0);
    env.answer = Err(CallFault {
        kind: FAULT_BAD_ARG,
        addr: 0xdead,
        size: 3,
    });
    let f = Run::new(&p).go(&mut env).0.unwrap_err();
    assert_eq!(
        (f.kind, f.insn, f.addr, f.size),
        (FAULT_BAD_ARG, 2, 0xdead, 3)
    );
}

#[test]
fn helpers_can_check_pointers_into_the_stack() {
    // r1 = fp - 8: fine; r1 = fp: one past the stack, refused.
    let mut env = MockEnv::new(5);
    env.check_ptr = true;
    let p = [
        mov64_reg(R1, R10),
        alu64_imm(ADD, R1, -8),
        call_helper(1),
        exit(),
    ];
    assert_eq!(Run::new(&p).go(&mut env).0, Ok(5));
    let p = [mov64_reg(R1, R10), call_helper(1), exit()];
    let f = Run::new(&p).go(&mut env).0.unwrap_err();
    assert_eq!((f.kind, f.insn), (FAULT_BAD_ARG, 1));
}

#[test]
fn a_missing_kfunc_faults_only_when_reached() {
    let missing = call_kfunc(abi::bpf::KFUNC_MISSING);
    // if r1 == 0 skip the call.
    let p = [mov64_imm(R0, 4), jmp_imm(JEQ, R1, 0, 1), missing, exit()];
    let mut run = Run::new(&p);
    assert_eq!(run.result(), Ok(4));
    let args = [1];
    run.args = &args;
    let f = fault_of(&run);
    assert_eq!((f.kind, f.insn), (FAULT_MISSING_KFUNC, 2));
}

#[test]
fn a_sub_program_keeps_r6_to_r9_and_has_its_own_frame() {
    // main: r6..r9 = 6..9; [fp-8] = 100; r1 = fp; call f; r0 += r6..r9
    //       + [fp-8].
    // f (insn 13): clobbers r6..r9, writes its own [fp-8] = 1,
    //       returns caller_fp - own_fp (must be STACK_SIZE) after checking
    //       it can read the caller's frame through r1.
    let p = [
        mov64_imm(R6, 6),
        mov64_imm(R7, 7),
        mov64_imm(R8, 8),
        mov64_imm(R9, 9),
        st(DW, R10, -8, 100),
        mov64_reg(R1, R10),
        call_sub(7),
        alu64_reg(ADD, R0, R6),
        alu64_reg(ADD, R0, R7),
        alu64_reg(ADD, R0, R8),
        alu64_reg(ADD, R0, R9),
        ldx(DW, R1, R10, -8),
        alu64_reg(ADD, R0, R1),
        // 13: f
        mov64_imm(R6, 60),
        mov64_imm(R7, 70),
        mov64_imm(R8, 80),
        mov64_imm(R9, 90),
        st(DW, R10, -8, 1),
        mov64_reg(R0, R1),
        alu64_reg(SUB, R0, R10),
        // r0 += caller's [fp-8] (100), read through the pointer.
        ldx(DW, R2, R1, -8),
        alu64_reg(ADD, R0, R2),
        exit(),
    ];
    // The main function's exit goes after its last add.
    let mut p = p.to_vec();
    p.insert(13, exit());
    // call_sub(7) at 6: next is 7, + 7 = 14 = f after the insert.
    let funcs = [0, 14];
    let mut run = Run::new(&p);
    run.funcs = &funcs;
    let from_f = STACK_SIZE as u64 + 100;
    assert_eq!(run.result(), Ok(from_f + 6 + 7 + 8 + 9 + 100));
}

/// f(n) = n == 0 ? 0 : f(n - 1) + 1, keeping n in r6 across the call.
fn recursive() -> ([crate::Insn; 9], [u32; 2]) {
    let p = [
        // main: r1 = n (arg); call f; exit.
        call_sub(1),
        exit(),
        // 2: f
        mov64_imm(R0, 0),
        jmp_imm(JEQ, R1, 0, 5),
        mov64_reg(R6, R1),
        alu64_imm(SUB, R1, 1),
        call_sub(-5),
        alu64_imm(ADD, R0, 1),
        // r6 survived the call only if the callee restored it.
        alu64_reg(ADD, R0, R6),
    ];
    (p, [0, 2])
}

#[test]
fn recursion_up_to_the_depth_limit_then_a_fault() {
    let (p, funcs) = recursive();
    let mut p = p.to_vec();
    p.push(exit());
    // Frames: main + f(n) .. f(0) = n + 2.
    let n_ok = (MAX_CALL_DEPTH - 2) as u64;
    let mut run = Run::new(&p);
    run.funcs = &funcs;
    let args = [n_ok];
    run.args = &args;
    // Each level adds 1 + its n: sum over 1..=n of (k + 1).
    let want: u64 = (1..=n_ok).map(|k| k + 1).sum();
    assert_eq!(run.result(), Ok(want));
    let args = [n_ok + 1];
    run.args = &args;
    let f = fault_of(&run);
    assert_eq!((f.kind, f.insn), (FAULT_CALL_DEPTH, 6));
}

#[test]
fn a_call_must_land_on_a_function_entry() {
    let (p, _) = recursive();
    let mut p = p.to_vec();
    p.push(exit());
    let mut run = Run::new(&p);
    // Entry 2 is not listed.
    let funcs = [0, 3];
    run.funcs = &funcs;
    let f = fault_of(&run);
    assert_eq!((f.kind, f.insn, f.addr), (FAULT_BAD_INSN, 0, 2));
}
