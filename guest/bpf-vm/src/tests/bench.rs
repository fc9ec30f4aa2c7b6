//! The interpreter's speed on a realistic loop: `cargo test --release
//! -p schedlab-bpf-vm -- --ignored --nocapture bench`.

use std::time::Instant;

use super::asm::*;
use std::boxed::Box;

use super::{Buf, MockEnv};
use crate::{Insn, Memory, STACK_WORDS, Vm};

/// Sums `n` words of a map value with a branch per element and a stack
/// spill, like a policy scanning per-CPU state: 14 instructions a turn.
fn scan_loop(n: i32) -> [Insn; 17] {
    [
        mov64_imm(R0, 0),
        mov64_imm(R2, 0),
        // loop (2):
        mov64_reg(R3, R2),
        alu64_imm(LSH, R3, 3),
        alu64_reg(ADD, R3, R1),
        ldx(DW, R4, R3, 0),
        alu64_reg(ADD, R0, R4),
        alu64_reg(XOR, R4, R2),
        stx(DW, R10, R4, -8),
        ldx(DW, R5, R10, -8),
        jmp_imm(JSET, R5, 1, 1),
        alu64_imm(ADD, R0, 1),
        alu32_imm(ADD, R2, 1),
        stx(W, R3, R2, 0),
        jmp_imm(JLT, R2, n, -13),
        exit(),
        exit(),
    ]
}

#[test]
#[ignore]
fn bench_interpreter() {
    const N: i32 = 64;
    let data = Buf::new(N as usize * 8);
    let p = scan_loop(N);
    let mut mem = Memory::default();
    mem.rw[0] = data.range();
    // One Vm and stack for every run, as the runtime keeps them.
    // SAFETY: `data` outlives the Vm and is not borrowed while it runs.
    let mut vm = unsafe { Vm::new(&p, &[], mem) };
    let mut stack = Box::new([0u64; STACK_WORDS]);
    let mut env = MockEnv::new(0);
    let args = [data.addr()];
    let mut best = f64::MAX;
    for _ in 0..5 {
        let before = vm.executed;
        let t = Instant::now();
        for _ in 0..20_000 {
            vm.run(&mut env, &mut stack, 0, &args, 1 << 20).unwrap();
        }
        let dt = t.elapsed();
        let insns = vm.executed - before;
        let ns = dt.as_nanos() as f64 / insns as f64;
        std::println!("bench: {insns} instructions in {dt:?}: {ns:.2} ns/insn");
        best = best.min(ns);
    }
    std::println!("bench: best {best:.2} ns/insn");
}
