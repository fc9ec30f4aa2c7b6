//! The interpreter's speed on a realistic loop: `cargo test --release
//! -p schedlab-bpf-vm -- --ignored --nocapture bench`.

use std::time::Instant;

use super::asm::*;
use super::{Buf, MockEnv, Run};
use crate::Insn;

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
    let mut run = Run::new(&p);
    run.mem.rw[0] = data.range();
    let args = [data.addr()];
    run.args = &args;
    let mut env = MockEnv::new(0);
    // Warm up, then time.
    run.go(&mut env).0.unwrap();
    let rounds = 20_000;
    let t = Instant::now();
    let mut insns = 0;
    for _ in 0..rounds {
        let (r, executed) = run.go(&mut env);
        r.unwrap();
        insns += executed;
    }
    let dt = t.elapsed();
    let ns = dt.as_nanos() as f64 / insns as f64;
    std::println!("bench: {insns} instructions in {dt:?}: {ns:.2} ns/insn");
}
