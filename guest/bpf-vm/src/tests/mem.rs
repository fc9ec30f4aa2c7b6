//! Loads, stores and atomics: the stack, declared ranges, task views, and
//! [`Memory::allows`] on its own.

use core::mem::offset_of;

use abi::bpf::{ScxEntity, ScxTask};

use super::asm::*;
use super::{Buf, Run, eval, fault_of};
use crate::{FAULT_LOAD, FAULT_STORE, Memory, Range, TASK_VIEW_SIZE, TaskArea};

#[test]
fn stack_stores_and_loads_of_every_size() {
    // Store 0x1122334455667788 at fp-8, then read it back piecewise.
    let v = 0x1122_3344_5566_7788u64;
    let read = |size, off| {
        let p = [
            &ld_imm64(R1, v)[..],
            &[stx(DW, R10, R1, -8), ldx(size, R0, R10, off), exit()],
        ]
        .concat();
        eval(&p)
    };
    assert_eq!(read(DW, -8), v);
    assert_eq!(read(W, -8), 0x5566_7788);
    assert_eq!(read(W, -4), 0x1122_3344);
    assert_eq!(read(H, -6), 0x5566);
    assert_eq!(read(B, -1), 0x11);
    // Unaligned.
    assert_eq!(read(W, -7), 0x4455_6677);
    // Stores of each size from a register and from an immediate.
    let p = [
        st(DW, R10, -16, -1),
        mov64_imm(R1, 0x1234),
        stx(H, R10, R1, -16),
        st(B, R10, -14, 0x56),
        st(W, R10, -12, 0x0abc_def0),
        ldx(DW, R0, R10, -16),
        exit(),
    ];
    assert_eq!(eval(&p), 0x0abc_def0_ff56_1234);
    // An ST DW sign-extends its immediate.
    assert_eq!(
        eval(&[st(DW, R10, -8, -2), ldx(DW, R0, R10, -8), exit()]),
        -2i64 as u64
    );
}

#[test]
fn sign_extending_loads() {
    let p = |size| [st(DW, R10, -8, -2), ldsx(size, R0, R10, -8), exit()];
    assert_eq!(eval(&p(B)), -2i64 as u64);
    assert_eq!(eval(&p(H)), -2i64 as u64);
    assert_eq!(eval(&p(W)), -2i64 as u64);
    assert_eq!(
        eval(&[st(W, R10, -8, 0x80), ldsx(B, R0, R10, -8), exit()]),
        -128i64 as u64
    );
}

#[test]
fn the_whole_stack_is_addressable_and_nothing_past_it() {
    let words = crate::STACK_WORDS as i32;
    // The bottom byte of the deepest frame, from the entry frame.
    let bottom = -(words * 8);
    let p = [
        mov64_reg(R1, R10),
        alu64_imm(ADD, R1, bottom),
        st(B, R1, 0, 7),
        ldx(B, R0, R1, 0),
        exit(),
    ];
    assert_eq!(eval(&p), 7);
    // One byte below the stack, and r10 itself (one past the top).
    for (off, size, width) in [(bottom - 1, B, 1), (0, DW, 8), (-4, DW, 8)] {
        let p = [
            mov64_reg(R1, R10),
            alu64_imm(ADD, R1, off),
            ldx(size, R0, R1, 0),
            exit(),
        ];
        let f = fault_of(&Run::new(&p));
        assert_eq!((f.kind, f.insn, f.size), (FAULT_LOAD, 2, width));
    }
}

/// Memory with one read-only and one read-write buffer.
fn two_buffers(ro: &Buf, rw: &Buf) -> Memory {
    let mut m = Memory::default();
    m.ro[0] = ro.range();
    m.rw[2] = rw.range();
    m
}

#[test]
fn declared_ranges_load_and_store_every_size() {
    let mut ro = Buf::new(16);
    ro.0[1] = 0xaabb_ccdd_eeff_0011;
    let rw = Buf::new(32);
    // r1 = ro, r2 = rw: copy ro[8..16] to rw[0..8] with every size.
    let p = [
        ldx(DW, R3, R1, 8),
        stx(DW, R2, R3, 0),
        ldx(W, R3, R1, 12),
        stx(W, R2, R3, 8),
        ldx(H, R3, R1, 10),
        stx(H, R2, R3, 12),
        ldx(B, R3, R1, 9),
        stx(B, R2, R3, 14),
        st(B, R2, 15, 0x5a),
        st(DW, R2, 24, 77),
        mov64_imm(R0, 0),
        exit(),
    ];
    let mut run = Run::new(&p);
    run.mem = two_buffers(&ro, &rw);
    let args = [ro.addr(), rw.addr()];
    run.args = &args;
    assert_eq!(run.result(), Ok(0));
    let b = rw.bytes();
    assert_eq!(rw.0[0], 0xaabb_ccdd_eeff_0011);
    assert_eq!(&b[8..12], &[0xdd, 0xcc, 0xbb, 0xaa]);
    assert_eq!(&b[12..14], &[0xff, 0xee]);
    assert_eq!(b[14], 0x00);
    assert_eq!(b[15], 0x5a);
    assert_eq!(rw.0[3], 77);
}

#[test]
fn accesses_outside_the_declared_ranges_fault_with_insn_addr_and_size() {
    let ro = Buf::new(16);
    let rw = Buf::new(16);
    let cases = [
        // (program tail, fault kind, address relative to rw, size)
        (ldx(W, R0, R2, 16), FAULT_LOAD, 16, 4),
        (ldx(DW, R0, R2, 12), FAULT_LOAD, 12, 8),
        (ldx(B, R0, R2, -1), FAULT_LOAD, -1, 1),
        (stx(H, R2, R1, 15), FAULT_STORE, 15, 2),
        (st(DW, R2, 9, 0), FAULT_STORE, 9, 8),
    ];
    for (insn, kind, rel, size) in cases {
        let p = [mov64_imm(R0, 0), insn, exit()];
        let mut run = Run::new(&p);
        run.mem = two_buffers(&ro, &rw);
        let args = [ro.addr(), rw.addr()];
        run.args = &args;
        let f = fault_of(&run);
        assert_eq!(f.kind, kind);
        assert_eq!(f.insn, 1);
        assert_eq!(f.addr, rw.addr().wrapping_add(rel as u64));
        assert_eq!(f.size, size);
    }
    // Address 0 and an address near the top of the address space.
    for base in [0u64, u64::MAX - 3] {
        let p = [&ld_imm64(R1, base)[..], &[ldx(DW, R0, R1, 0), exit()]].concat();
        let f = fault_of(&Run::new(&p));
        assert_eq!((f.kind, f.insn, f.addr, f.size), (FAULT_LOAD, 2, base, 8));
    }
}

#[test]
fn a_read_only_range_refuses_stores_and_atomics() {
    let ro = Buf::new(16);
    let rw = Buf::new(16);
    for insn in [st(W, R1, 0, 1), stx(B, R1, R0, 3), atomic(DW, 0, R1, R0, 8)] {
        let p = [mov64_imm(R0, 0), ldx(DW, R3, R1, 0), insn, exit()];
        let mut run = Run::new(&p);
        run.mem = two_buffers(&ro, &rw);
        let args = [ro.addr()];
        run.args = &args;
        let f = fault_of(&run);
        assert_eq!((f.kind, f.insn), (FAULT_STORE, 2));
    }
}

#[test]
fn allows_edges() {
    let mut m = Memory::default();
    // Empty ranges never match, even at their start.
    assert!(!m.allows(0, 1, false));
    assert!(!m.allows(0, 0, false));
    m.rw[0] = Range::new(0x1000, 0x100);
    m.ro[1] = Range::new(0x2000, 0x10);
    assert!(m.allows(0x1000, 8, true));
    assert!(m.allows(0x10f8, 8, true));
    assert!(!m.allows(0x10f9, 8, false));
    assert!(!m.allows(0x0fff, 2, false));
    assert!(!m.allows(0x1000, 0, false));
    assert!(m.allows(0x2008, 8, false));
    assert!(!m.allows(0x2008, 8, true));
    // Lengths and addresses that would overflow.
    assert!(!m.allows(0x1000, u64::MAX, false));
    assert!(!m.allows(u64::MAX, 2, false));
    m.rw[1] = Range {
        start: u64::MAX - 8,
        end: u64::MAX,
    };
    assert!(m.allows(u64::MAX - 8, 8, true));
    assert!(!m.allows(u64::MAX - 8, 9, true));
    assert!(!m.allows(u64::MAX - 1, u64::MAX, true));
    // Two adjacent ranges do not make one.
    m.rw[2] = Range::new(0x1100, 0x100);
    assert!(!m.allows(0x10fc, 8, true));
    // A backwards range holds nothing.
    m.rw[3] = Range {
        start: 0x5000,
        end: 0x4000,
    };
    assert!(!m.allows(0x4800, 1, false));
}

const PID: u64 = offset_of!(ScxTask, pid) as u64;
const TGID: u64 = offset_of!(ScxTask, tgid) as u64;
const COMM: u64 = offset_of!(ScxTask, comm) as u64;
const CPUS_MASK: u64 = offset_of!(ScxTask, cpus_mask) as u64;
const SCX: u64 = offset_of!(ScxTask, scx) as u64;
const SLICE: u64 = SCX + offset_of!(ScxEntity, slice) as u64;
const VTIME: u64 = SCX + offset_of!(ScxEntity, dsq_vtime) as u64;
const WEIGHT: u64 = SCX + offset_of!(ScxEntity, weight) as u64;

fn task_mem(base: u64, stride: u64, count: u64) -> Memory {
    Memory {
        tasks: TaskArea {
            base,
            stride,
            count,
        },
        ..Memory::default()
    }
}

#[test]
fn task_view_field_rules() {
    for stride in [128u64, 96, 100] {
        let m = task_mem(0x10_0000, stride, 4);
        let view = |k: u64, off: u64| 0x10_0000 + k * stride + off;
        for k in 0..4 {
            assert!(m.allows(view(k, PID), 4, false), "stride {stride}");
            assert!(!m.allows(view(k, PID), 4, true));
            assert!(m.allows(view(k, SLICE), 8, true));
            assert!(m.allows(view(k, VTIME), 8, true));
            assert!(m.allows(view(k, WEIGHT), 4, false));
            assert!(!m.allows(view(k, WEIGHT), 4, true));
            // Part of a field is fine; a nested struct's leaf too.
            assert!(m.allows(view(k, SLICE + 4), 4, true));
            assert!(m.allows(view(k, CPUS_MASK), 8, false));
            assert!(m.allows(view(k, COMM + 3), 8, false));
            // Across two fields: refused even though both are readable.
            assert!(!m.allows(view(k, PID), 8, false));
            assert!(!m.allows(view(k, TGID + 2), 4, false));
            assert!(!m.allows(view(k, SLICE + 4), 8, true));
            // Past the struct, in the gap before the next view.
            assert!(!m.allows(view(k, TASK_VIEW_SIZE as u64), 1, false));
            assert!(!m.allows(view(k, TASK_VIEW_SIZE as u64 - 2), 4, false));
        }
        // Past the last view, and before the first.
        assert!(!m.allows(view(4, PID), 4, false));
        assert!(!m.allows(0x10_0000 - 8, 4, false));
    }
    // A stride smaller than a view (overlapping views) is refused.
    assert!(!task_mem(0x1000, 16, 4).allows(0x1000, 4, false));
    // The size field of the ABI's own struct matches this crate's table.
    assert_eq!(TASK_VIEW_SIZE, core::mem::size_of::<ScxTask>());
}

#[test]
fn task_views_through_the_interpreter() {
    let mut tasks = Buf::new(2 * 128);
    // Task 1 (word 16 on): pid 42 (the low half of its first word),
    // slice 1000.
    assert_eq!((PID, SLICE % 8), (0, 0));
    tasks.0[16] = 42;
    tasks.0[16 + (SLICE / 8) as usize] = 1000;
    let t1 = tasks.addr() + 128;
    let mem = task_mem(tasks.addr(), 128, 2);
    // r0 = p->pid; p->scx.slice += r0 (read-modify-write).
    let ok = [
        ldx(W, R0, R1, PID as i16),
        ldx(DW, R2, R1, SLICE as i16),
        alu64_reg(ADD, R2, R0),
        stx(DW, R1, R2, SLICE as i16),
        exit(),
    ];
    let mut run = Run::new(&ok);
    run.mem = mem;
    let args = [t1];
    run.args = &args;
    assert_eq!(run.result(), Ok(42));
    assert_eq!(tasks.0[16 + (SLICE / 8) as usize], 1042);

    let bad = [
        (st(W, R1, PID as i16, 7), FAULT_STORE, PID, 4),
        (ldx(DW, R0, R1, TGID as i16 - 4), FAULT_LOAD, TGID - 4, 8),
        (
            ldx(B, R0, R1, TASK_VIEW_SIZE as i16 + 1),
            FAULT_LOAD,
            TASK_VIEW_SIZE as u64 + 1,
            1,
        ),
        (st(W, R1, WEIGHT as i16, 1), FAULT_STORE, WEIGHT, 4),
    ];
    for (insn, kind, off, size) in bad {
        let p = [mov64_imm(R0, 0), insn, exit()];
        let mut run = Run::new(&p);
        run.mem = mem;
        run.args = &args;
        let f = fault_of(&run);
        assert_eq!((f.kind, f.insn, f.addr, f.size), (kind, 1, t1 + off, size));
    }
}

#[test]
fn atomics_64_bit() {
    let rw = Buf::new(16);
    let mut mem = Memory::default();
    mem.rw[0] = rw.range();
    // [0] = 10; fetch_add 5 (r2 gets 10); add 1 (no fetch); or 0x100;
    // and !1 (clears bit 0); xor 0xf0; xchg with 7 (r4 gets old);
    // cmpxchg expecting 7 (succeeds, writes 99), then expecting 7 again
    // (fails, r0 gets 99).
    let p = [
        st(DW, R1, 0, 10),
        mov64_imm(R2, 5),
        atomic(DW, FETCH, R1, R2, 0),
        mov64_imm(R3, 1),
        atomic(DW, 0, R1, R3, 0),
        mov64_imm(R3, 0x100),
        atomic(DW, 0x40, R1, R3, 0),
        mov64_imm(R3, !1),
        atomic(DW, 0x50, R1, R3, 0),
        mov64_imm(R3, 0xf0),
        atomic(DW, 0xa0 | FETCH, R1, R3, 0),
        mov64_reg(R5, R3),
        mov64_imm(R4, 7),
        atomic(DW, XCHG, R1, R4, 0),
        mov64_imm(R0, 7),
        mov64_imm(R6, 99),
        atomic(DW, CMPXCHG, R1, R6, 0),
        mov64_reg(R7, R0),
        mov64_imm(R0, 7),
        atomic(DW, CMPXCHG, R1, R6, 0),
        // r0 = old-of-fetch_add * 1e6 + old-of-xor * 1e3 + ... packed.
        stx(DW, R1, R2, 8),
        alu64_imm(MUL, R7, 1000),
        alu64_reg(ADD, R0, R7),
        alu64_imm(MUL, R4, 1_000_000),
        alu64_reg(ADD, R0, R4),
        exit(),
    ];
    let mut run = Run::new(&p);
    run.mem = mem;
    let args = [rw.addr()];
    run.args = &args;
    // 10 + 5 + 1 = 16; | 0x100 = 0x110; & !1 = 0x110; ^ 0xf0 = 0x1e0.
    let after_xor = (((10u64 + 5 + 1) | 0x100) & !1) ^ 0xf0;
    // xchg returned after_xor; first cmpxchg returned 7; second 99.
    assert_eq!(run.result(), Ok(after_xor * 1_000_000 + 7 * 1000 + 99));
    assert_eq!(rw.0[0], 99);
    assert_eq!(rw.0[1], 10, "fetch_add returns the old value");
}

#[test]
fn atomics_32_bit_touch_only_their_word() {
    // On the stack: [fp-8] = 0xffffffff_00000005; fetch_add 0xffffffff
    // on its low word: 5 + (2^32 - 1) wraps to 4, the high word stays.
    let p = [
        &ld_imm64(R1, 0xffff_ffff_0000_0005)[..],
        &[
            stx(DW, R10, R1, -8),
            mov64_imm(R2, -1),
            atomic(W, FETCH, R10, R2, -8),
            // r0 = memory ^ (old << 8).
            ldx(DW, R0, R10, -8),
            alu64_imm(LSH, R2, 8),
            alu64_reg(XOR, R0, R2),
            exit(),
        ],
    ]
    .concat();
    // old = 5, zero-extended (a sign-extended or 64-bit old would differ).
    assert_eq!(eval(&p), 0xffff_ffff_0000_0004 ^ (5 << 8));

    // 32-bit cmpxchg compares only r0's low half.
    let [lo, hi] = ld_imm64(R0, 0x7_0000_0009);
    let p = [
        st(W, R10, -4, 9),
        lo,
        hi,
        mov64_imm(R1, 3),
        atomic(W, CMPXCHG, R10, R1, -4),
        ldx(W, R2, R10, -4),
        alu64_imm(LSH, R2, 32),
        alu64_reg(OR, R0, R2),
        exit(),
    ];
    // Swapped in (memory 3); r0 = old 9, zero-extended.
    assert_eq!(eval(&p), (3 << 32) | 9);
}

#[test]
fn unaligned_atomics_still_work() {
    let p = [
        st(DW, R10, -16, 0),
        st(DW, R10, -8, 0),
        mov64_imm(R1, 40),
        atomic(DW, FETCH, R10, R1, -13),
        mov64_imm(R1, 2),
        atomic(DW, FETCH, R10, R1, -13),
        ldx(DW, R0, R10, -13),
        alu64_reg(MUL, R0, R1),
        exit(),
    ];
    // Memory 42; r1 = old 40 -> 42 * 40.
    assert_eq!(eval(&p), 42 * 40);
}

#[test]
fn an_unknown_atomic_operation_is_a_bad_instruction() {
    let f = fault_of(&Run::new(&[
        mov64_imm(R0, 0),
        atomic(DW, 0x10, R10, R0, -8),
        exit(),
    ]));
    assert_eq!((f.kind, f.insn), (crate::FAULT_BAD_INSN, 1));
}

#[test]
fn the_interpreters_arrangement_allows_exactly_what_memory_allows() {
    // Ranges with empty slots between them, views overlapping a range.
    let mut m = task_mem(0x4000, 128, 3);
    m.rw[1] = Range::new(0x1000, 0x100);
    m.rw[3] = Range::new(0x4080, 0x10);
    m.ro[2] = Range::new(0x2000, 0x40);
    m.ro[0] = Range::new(0x1100, 0x8);
    for mem in [m, Memory::default(), task_mem(0x4000, 64, 3)] {
        let sb = crate::memory::Sandbox::new(&mem);
        for addr in (0x0ff0..0x1120).chain(0x1ff0..0x2050).chain(0x3ff0..0x4200) {
            for len in [0, 1, 2, 4, 8, 16] {
                for write in [false, true] {
                    assert_eq!(
                        sb.allows(addr, len, write),
                        mem.allows(addr, len, write),
                        "{addr:#x} {len} {write}"
                    );
                }
            }
        }
    }
}
