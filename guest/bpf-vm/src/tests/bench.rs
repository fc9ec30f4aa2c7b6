//! The interpreter's speed on a realistic loop: `cargo test --release
//! -p schedlab-bpf-vm -- --ignored --nocapture bench`.

use core::hint::black_box;
use core::mem::offset_of;
use std::boxed::Box;
use std::time::Instant;
use std::vec::Vec;

use abi::bpf::{ScxEntity, ScxTask};

use super::asm::*;
use super::{Buf, MockEnv};
use crate::{Call, CallCx, CallFault, Env, Insn, Memory, Program, STACK_WORDS, TaskArea, Vm};

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
    let mut p = scan_loop(N);
    let mut mem = Memory::default();
    mem.rw[0] = data.range();
    // One Vm and stack for every run, as the runtime keeps them.
    // SAFETY: `data` outlives the Vm and is not borrowed while it runs.
    let mut vm = unsafe { Vm::new(Program::check(&mut p, &[]), mem) };
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

/// Answers every call at once, recording nothing: helper 1
/// (`bpf_map_lookup_elem`) returns `value`, anything else `1`.
struct QuickEnv {
    value: u64,
}

impl Env for QuickEnv {
    fn call(&mut self, _: &CallCx<'_>, call: Call, _: [u64; 5]) -> Result<u64, CallFault> {
        Ok(match call {
            Call::Helper(1) => self.value,
            _ => 1,
        })
    }
}

const SLICE: i16 = (offset_of!(ScxTask, scx) + offset_of!(ScxEntity, slice)) as i16;
const VTIME: i16 = (offset_of!(ScxTask, scx) + offset_of!(ScxEntity, dsq_vtime)) as i16;
const WEIGHT: i16 = (offset_of!(ScxTask, scx) + offset_of!(ScxEntity, weight)) as i16;

/// Four callbacks shaped like scx_simple's (`BPF_PROG` context in r1, a
/// task view, a global in a map value at `map`, a helper call each):
/// their instructions and entry points.
fn callbacks(map: u64) -> (Vec<Insn>, Vec<u32>) {
    let mut p = Vec::new();
    let mut entries = Vec::new();
    let mut add = |p: &mut Vec<Insn>, code: &[Insn]| {
        entries.push(p.len() as u32);
        p.extend_from_slice(code);
    };
    let [m0, m1] = ld_imm64(R1, map);
    // select_cpu: prev_cpu unless the helper says otherwise; count it.
    add(
        &mut p,
        &[
            mov64_reg(R6, R1),
            ldx(DW, R7, R6, 0),
            ldx(W, R2, R6, 8),
            st(DW, R10, -8, 0),
            mov64_reg(R1, R7),
            ldx(DW, R3, R6, 16),
            mov64_reg(R4, R10),
            alu64_imm(ADD, R4, -8),
            call_helper(2),
            mov64_reg(R8, R0),
            ldx(B, R1, R10, -8),
            jmp_imm(JEQ, R1, 0, 5),
            m0,
            m1,
            ldx(DW, R2, R1, 0),
            alu64_imm(ADD, R2, 1),
            stx(DW, R1, R2, 0),
            mov64_reg(R0, R8),
            exit(),
        ],
    );
    // enqueue: vtime clamped to the global vtime_now less a slice, then
    // an insert.
    add(
        &mut p,
        &[
            mov64_reg(R6, R1),
            ldx(DW, R7, R6, 0),
            ldx(DW, R8, R6, 8),
            m0,
            m1,
            ldx(DW, R2, R1, 8),
            ldx(DW, R3, R7, VTIME),
            alu64_imm(SUB, R2, 20_000),
            jmp_reg(JSGE, R3, R2, 1),
            mov64_reg(R3, R2),
            mov64_reg(R1, R7),
            mov64_imm(R2, 0),
            mov64_imm(R4, 5000),
            alu64_imm(LSH, R4, 2),
            mov64_reg(R5, R8),
            call_helper(3),
            mov64_imm(R0, 0),
            exit(),
        ],
    );
    // running: stat_inc through a lookup, then vtime_now = max(...).
    add(
        &mut p,
        &[
            mov64_reg(R6, R1),
            ldx(DW, R7, R6, 0),
            st(W, R10, -4, 1),
            m0,
            m1,
            mov64_reg(R2, R10),
            alu64_imm(ADD, R2, -4),
            call_helper(1),
            jmp_imm(JEQ, R0, 0, 2),
            mov64_imm(R1, 1),
            atomic(DW, 0, R0, R1, 16),
            m0,
            m1,
            ldx(DW, R2, R1, 8),
            ldx(DW, R3, R7, VTIME),
            jmp_reg(JGE, R2, R3, 1),
            stx(DW, R1, R3, 8),
            mov64_imm(R0, 0),
            exit(),
        ],
    );
    // stopping: charge the used slice scaled by the inverse weight.
    add(
        &mut p,
        &[
            mov64_reg(R6, R1),
            ldx(DW, R7, R6, 0),
            ldx(DW, R1, R7, SLICE),
            mov64_imm(R2, 20_000),
            alu64_reg(SUB, R2, R1),
            alu64_imm(MUL, R2, 100),
            ldx(W, R1, R7, WEIGHT),
            jmp_imm(JEQ, R1, 0, 1),
            alu64_reg(DIV, R2, R1),
            ldx(DW, R3, R7, VTIME),
            alu64_reg(ADD, R3, R2),
            stx(DW, R7, R3, VTIME),
            mov64_imm(R1, 7),
            call_helper(4),
            mov64_imm(R0, 0),
            exit(),
        ],
    );
    (p, entries)
}

/// Scrambles the branch predictors and the data caches a little, as the
/// guest's scheduler does between two callbacks.
#[inline(never)]
fn pollute(noise: &mut [u8], seed: &mut u64) -> u64 {
    let mut acc = 0u64;
    for b in noise.iter_mut() {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        let r = black_box(*seed);
        acc = match r & 7 {
            0 => acc.wrapping_add(r),
            1 => acc ^ r.rotate_left(3),
            2 => acc.wrapping_mul(r | 1),
            3 => acc.wrapping_sub(u64::from(*b)),
            4 => acc.rotate_right(5),
            5 => !acc,
            6 => acc | 1,
            _ => acc >> 1,
        };
        *b = acc as u8;
    }
    acc
}

/// The runtime's real pattern: short programs run once each, different
/// ones in turn: `cargo test --release -p schedlab-bpf-vm -- --ignored
/// --nocapture --test-threads=1 bench`. Reported warm (back to back) and
/// with the predictors and caches scrambled before each run, as in the
/// guest, where each callback is a different short program among the
/// scheduler's own work.
#[test]
#[ignore]
fn bench_callbacks_round_robin() {
    let map = Buf::new(64);
    let ctx = Buf::new(48);
    let views = Buf::new(4 * 128);
    let (mut p, entries) = callbacks(map.addr());
    let mut mem = Memory::default();
    mem.ro[0] = ctx.range();
    mem.rw[0] = map.range();
    mem.tasks = TaskArea {
        base: views.addr(),
        stride: 128,
        count: 4,
    };
    // The context: the second task's view, a CPU, flags.
    let ctx_words = [views.addr() + 128, 3, 0, 0, 0, 0];
    // SAFETY: writing the test's own buffer before any run.
    unsafe { std::ptr::copy_nonoverlapping(ctx_words.as_ptr(), ctx.addr() as *mut u64, 6) };
    // SAFETY: the weight field of that view, in the test's buffer.
    unsafe { *((views.addr() + 128 + WEIGHT as u64) as *mut u32) = 100 };
    // SAFETY: the buffers outlive the Vm and are not borrowed while it runs.
    let mut vm = unsafe { Vm::new(Program::check(&mut p, &entries), mem) };
    let mut stack = Box::new([0u64; STACK_WORDS]);
    let mut env = QuickEnv {
        value: map.addr() + 8,
    };
    let args = [ctx.addr()];
    let mut noise = std::vec![0u8; 1024];
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    const ROUNDS: usize = 20_000;
    // Median cycles of one run (or of an empty timed section), each run
    // timed alone with the TSC; the scrambling happens outside the timed
    // section.
    let mut time = |vm: &mut Vm<'_>, scramble: bool, run: bool| {
        let mut samples = Vec::with_capacity(ROUNDS * entries.len());
        for _ in 0..ROUNDS {
            for &e in &entries {
                if scramble {
                    black_box(pollute(&mut noise, &mut seed));
                }
                let t0 = tsc();
                if run {
                    vm.run(&mut env, &mut stack, e, &args, 1 << 20).unwrap();
                }
                samples.push(tsc() - t0);
            }
        }
        samples.sort_unstable();
        samples[samples.len() / 2] as f64
    };
    // TSC ticks per ns.
    let t = Instant::now();
    let c = tsc();
    std::thread::sleep(std::time::Duration::from_millis(50));
    let ghz = (tsc() - c) as f64 / t.elapsed().as_nanos() as f64;
    // The best of five medians: the machine is shared.
    let before = vm.executed;
    let (mut empty, mut warm, mut cold) = (f64::MAX, f64::MAX, f64::MAX);
    for _ in 0..5 {
        empty = empty.min(time(&mut vm, false, false));
        warm = warm.min(time(&mut vm, false, true));
        cold = cold.min(time(&mut vm, true, true));
    }
    let (warm, cold) = (warm - empty, cold - empty);
    let runs = (ROUNDS * entries.len()) as f64;
    let per_run = (vm.executed - before) as f64 / runs / 10.0;
    for (what, cycles) in [("warm", warm), ("scrambled", cold)] {
        let ns = cycles / ghz;
        std::println!(
            "bench callbacks {what}: {per_run:.1} insns/run, {ns:.1} ns/run ({cycles:.0} TSC ticks), {:.2} ns/insn",
            ns / per_run
        );
    }
}

/// The time stamp counter, fenced so the timed section stays between.
fn tsc() -> u64 {
    // SAFETY: `lfence` and `rdtsc` exist on every x86_64 CPU.
    unsafe {
        core::arch::x86_64::_mm_lfence();
        let t = core::arch::x86_64::_rdtsc();
        core::arch::x86_64::_mm_lfence();
        t
    }
}
