//! The runtime on the host: hand-assembled program images run in
//! `policy_sdk::sim`'s harness (the core's services, simulated), plus
//! direct calls of kfuncs and helpers with a sandbox of the runtime's own.

pub mod builder;
mod maps;

use crate::code;
use crate::ops::{rt, set_image_base};
use crate::rt::{Fail, Stop};
use abi::bpf::{
    FAULT_LOAD, FUNC_PTR_TAG, HELPERS, KFUNCS, MAP_ARRAY, MAP_HASH, SCX_EXIT_ERROR_BPF,
    STATUS_ERROR, STATUS_FAULT, ScxExitInfo,
};
use abi::policy::{DSQ_GLOBAL, ENQ_WAKEUP};
use bpf_vm::{CallCx, Range};
use builder::{Image, asm::*};
use policy_sdk::sim::{CpuSet, DsqId, Harness, Policy};

pub const MS: u64 = 1_000_000;

/// Callback indices in `BpfHeader::callbacks`.
pub const ENQUEUE: usize = 1;
pub const DISPATCH: usize = 3;
/// Never called by the harness: the tests run their programs through it.
pub const SPARE: usize = 12;
pub const INIT: usize = 18;
pub const EXIT: usize = 19;

fn noop() {}

/// The runtime over `img` in a harness of `cpus` CPUs (init has run).
pub fn harness(img: &mut Image, cpus: u32) -> Harness {
    set_image_base(img.finish());
    let policy = Policy {
        // SAFETY: tests run one at a time (the harness's lock); the table
        // changes only in the runtime's `init`.
        ops: unsafe { (&raw const crate::POLICY_OPS).as_ref() }.expect("the table"),
        reset: noop,
    };
    Harness::new(policy, 0, cpus, MS)
}

/// A sandbox for direct calls: the runtime's memory plus `stack` as the
/// program's stack.
pub fn with_cx<T>(stack: &mut [u64], f: impl FnOnce(&CallCx<'_>) -> T) -> T {
    let mem = rt().rt.memory();
    let start = stack.as_mut_ptr() as u64;
    let cx = CallCx {
        mem: &mem,
        stack: Range {
            start,
            end: start + 8 * stack.len() as u64,
        },
    };
    f(&cx)
}

#[test]
fn enqueue_inserts_into_a_user_queue_and_dispatch_moves_it_local() {
    let mut img = Image::new(1);
    img.prog(
        "init",
        Some(INIT),
        &code![mov(1, 7), mov(2, -1), kfunc("scx_bpf_create_dsq"), exit()],
    );
    img.prog(
        "enqueue",
        Some(ENQUEUE),
        &code![
            movr(4, 2),
            mov(2, 7),
            mov(3, 5_000_000),
            kfunc("scx_bpf_dsq_insert"),
            ret(0)
        ],
    );
    img.prog(
        "dispatch",
        Some(DISPATCH),
        &code![mov(1, 7), kfunc("scx_bpf_dsq_move_to_local"), ret(0)],
    );
    let mut h = harness(&mut img, 1);
    let s = h.add(1, CpuSet::all(1), 0);
    h.enqueue(s, ENQ_WAKEUP);
    assert_eq!(h.dsq_of(s), Some(7));
    assert_eq!(h.task(s).slice_ns, 5_000_000);
    assert_eq!(h.pick(0), Some(s));
    let st = img.header().status;
    assert!(st.calls >= 3 && st.insns_run > 0, "{st:?}");
    assert_eq!(st.state, 0);
}

#[test]
fn unbound_callbacks_do_sched_ext_s_defaults() {
    let mut img = Image::new(2);
    let mut h = harness(&mut img, 2);
    // An idle CPU: straight to its local queue (select_cpu's default).
    let a = h.add(1, CpuSet::all(2), 0);
    assert_eq!(h.wake(a, ENQ_WAKEUP), 0);
    assert_eq!(h.queued_in(a), Some(DsqId::Local(0)));
    assert_eq!(h.pick(0), Some(a));
    let b = h.add(1, CpuSet::all(2), 0);
    assert_eq!(h.wake(b, ENQ_WAKEUP), 1);
    assert_eq!(h.queued_in(b), Some(DsqId::Local(1)));
    // No idle CPU left: enqueue's default, the global queue.
    let c = h.add(1, CpuSet::all(2), 0);
    h.wake(c, ENQ_WAKEUP);
    assert_eq!(h.queued_in(c), Some(DsqId::Global));
    assert_eq!(h.task(c).slice_ns, MS);
}

#[test]
fn a_program_uses_array_and_hash_maps() {
    let mut img = Image::new(1);
    let (arr, arr_v) = img.map(MAP_ARRAY, 4, 8, 4);
    let (hash, _) = img.map(MAP_HASH, 4, 8, 8);
    let out = img.global(16);
    img.prog(
        "maps",
        Some(SPARE),
        &code![
            stw(10, -4, 2),
            ld64(1, arr),
            movr(2, 10),
            add(2, -4),
            helper(1),
            stdw(0, 0, 42),
            stw(10, -8, 5),
            stdw(10, -16, 99),
            ld64(1, hash),
            movr(2, 10),
            add(2, -8),
            movr(3, 10),
            add(3, -16),
            mov(4, 0),
            helper(2),
            movr(6, 0),
            ld64(1, hash),
            movr(2, 10),
            add(2, -8),
            helper(1),
            ldxdw(7, 0, 0),
            ld64(8, out),
            stxdw(8, 0, 7),
            stxdw(8, 8, 6),
            ret(0)
        ],
    );
    let _h = harness(&mut img, 1);
    assert_eq!(rt().cpu_cb(SPARE, &[]), Ok(()));
    // SAFETY: addresses inside the leaked image buffer.
    let (a2, o0, o1) = unsafe {
        (
            *((arr_v + 16) as *const u64),
            *(out as *const u64),
            *((out + 8) as *const u64),
        )
    };
    assert_eq!((a2, o0, o1), (42, 99, 0));
}

#[test]
fn open_coded_loops_iterate_as_the_kernel_s() {
    let mut img = Image::new(1);
    img.prog(
        "loop",
        Some(SPARE),
        &code![
            movr(1, 10),
            add(1, -8),
            mov(2, 0),
            mov(3, 5),
            kfunc("bpf_iter_num_new"),
            mov(6, 0),
            movr(1, 10),
            add(1, -8),
            kfunc("bpf_iter_num_next"),
            jeq(0, 0, 3),
            ldxw(1, 0, 0),
            addr(6, 1),
            ja(-7),
            movr(1, 10),
            add(1, -8),
            kfunc("bpf_iter_num_destroy"),
            movr(0, 6),
            exit()
        ],
    );
    let _h = harness(&mut img, 1);
    assert_eq!(rt().callback(SPARE, &[]), Ok(Some(10)));
    // start > end: -EINVAL and an iterator that ends at once.
    let mut stack = [0u64; 4];
    let it = stack.as_ptr() as u64;
    let k = |n: &str| abi::bpf::kfunc_index(n).unwrap();
    with_cx(&mut stack, |cx| {
        let r = &mut rt().rt;
        let e = r.kfunc(cx, k("bpf_iter_num_new"), [it, 5, 2, 0, 0]);
        assert_eq!(e, Ok((-22i64) as u64));
        assert_eq!(r.kfunc(cx, k("bpf_iter_num_next"), [it, 0, 0, 0, 0]), Ok(0));
        let big = r.kfunc(cx, k("bpf_iter_num_new"), [it, 0, 1 << 24, 0, 0]);
        assert_eq!(big, Ok((-7i64) as u64));
        assert_eq!(r.kfunc(cx, k("bpf_iter_num_new"), [it, 3, 4, 0, 0]), Ok(0));
        assert_eq!(
            r.kfunc(cx, k("bpf_iter_num_next"), [it, 0, 0, 0, 0]),
            Ok(it)
        );
        assert_eq!(r.kfunc(cx, k("bpf_iter_num_next"), [it, 0, 0, 0, 0]), Ok(0));
    });
}

#[test]
fn a_timer_fires_from_cpu_tick_once_due() {
    let mut img = Image::new(1);
    let (arr, _) = img.map(MAP_ARRAY, 4, 16, 1);
    let hits = img.global(16);
    let (_, cb) = img.prog(
        "timerfn",
        None,
        &code![
            ld64(6, hits),
            ldxw(2, 2, 0),
            stxdw(6, 8, 2),
            ldxdw(1, 6, 0),
            add(1, 1),
            stxdw(6, 0, 1),
            ret(0)
        ],
    );
    img.prog(
        "init",
        Some(INIT),
        &code![
            stw(10, -4, 0),
            ld64(1, arr),
            movr(2, 10),
            add(2, -4),
            helper(1),
            movr(6, 0),
            movr(1, 6),
            ld64(2, arr),
            mov(3, 0),
            helper(169),
            movr(1, 6),
            ld64(2, FUNC_PTR_TAG | u64::from(cb)),
            helper(170),
            movr(1, 6),
            mov(2, 1000),
            mov(3, 0),
            helper(171),
            ret(0)
        ],
    );
    let _h = harness(&mut img, 1);
    // SAFETY: inside the leaked image buffer.
    let count = || unsafe { *(hits as *const u64) };
    assert_eq!(rt().cpu_tick(0, 500), Ok(()));
    assert_eq!(count(), 0);
    assert_eq!(rt().cpu_tick(0, 1000), Ok(()));
    assert_eq!(count(), 1);
    // SAFETY: as above: the key the callback saw (index 0).
    assert_eq!(unsafe { *((hits + 8) as *const u64) }, 0);
    assert_eq!(rt().cpu_tick(0, 5000), Ok(()));
    assert_eq!(count(), 1, "a timer fires once per start");
}

#[test]
fn scx_bpf_error_formats_runs_exit_and_stops() {
    let mut img = Image::new(1);
    let fmt = img.rodata(b"%d-%s\0");
    let s = img.rodata(b"abc\0");
    let seen = img.global(8 + 64);
    let msg_off = core::mem::offset_of!(ScxExitInfo, msg) as i16;
    img.prog(
        "exit",
        Some(EXIT),
        &code![
            ldxw(2, 1, 0),
            ld64(3, seen),
            stxdw(3, 0, 2),
            ldxdw(3, 1, msg_off),
            ld64(1, seen + 8),
            mov(2, 64),
            helper(115),
            ret(0)
        ],
    );
    let (_, entry) = img.prog(
        "err",
        Some(SPARE),
        &code![
            stdw(10, -16, 42),
            ld64(1, s),
            stxdw(10, -8, 1),
            ld64(1, fmt),
            movr(2, 10),
            add(2, -16),
            mov(3, 16),
            kfunc("scx_bpf_error_bstr"),
            ret(0)
        ],
    );
    let _h = harness(&mut img, 1);
    assert_eq!(rt().cpu_cb(SPARE, &[]), Err(Stop));
    assert_eq!(rt().rt.text.as_str(), "42-abc");
    let st = img.header().status;
    assert_eq!((st.state, st.prog), (STATUS_ERROR, 1));
    assert_eq!(st.insn, entry + Image::PROLOGUE + 9, "the call instruction");
    // SAFETY: inside the leaked image buffer.
    let (kind, msg) = unsafe {
        (
            *(seen as *const u64),
            core::slice::from_raw_parts((seen + 8) as *const u8, 7),
        )
    };
    assert_eq!(kind, u64::from(SCX_EXIT_ERROR_BPF));
    assert_eq!(msg, b"42-abc\0");
}

#[test]
fn a_fault_names_the_program_and_instruction() {
    let mut img = Image::new(1);
    img.prog("first", Some(INIT), &code![ret(0)]);
    let (idx, entry) = img.prog(
        "faulty",
        Some(SPARE),
        &code![mov(1, 0), mov(2, 0), ldxdw(0, 1, 16), exit()],
    );
    let _h = harness(&mut img, 1);
    assert_eq!(rt().cpu_cb(SPARE, &[]), Err(Stop));
    let st = img.header().status;
    assert_eq!(
        (st.state, st.fault, st.prog, st.insn, st.addr, st.size),
        (
            STATUS_FAULT,
            FAULT_LOAD,
            idx,
            entry + Image::PROLOGUE + 2,
            16,
            8
        )
    );
    let t = rt().rt.text.as_str();
    let want = std::format!(
        "bpf program faulty: load outside the program's memory at instruction {}",
        entry + Image::PROLOGUE + 2
    );
    assert!(t.starts_with(&want), "{t}");
    assert!(t.ends_with("(address 0x10, 8 bytes)"), "{t}");
}

#[test]
fn a_bad_image_is_refused_by_init() {
    let mut img = Image::new(1);
    img.prog("init", Some(INIT), &code![ret(0)]);
    let _h = harness(&mut img, 1);
    let svc = rt().rt.svc;
    let h = img.header();
    h.progs_off = builder::SIZE - 8;
    assert_ne!(rt().init(svc), Ok(0), "a table past the end");
    img.finish();
    img.header().magic = 0;
    assert_ne!(rt().init(svc), Ok(0), "bad magic");
    img.finish();
    img.header().callbacks[3] = 9;
    assert_ne!(rt().init(svc), Ok(0), "a callback naming no program");
    img.finish();
    assert_eq!(rt().init(svc), Ok(0));
}

#[test]
fn every_kfunc_and_helper_is_handled() {
    let mut img = Image::new(1);
    let _h = harness(&mut img, 1);
    let mut stack = [0u64; 8];
    // Arguments no call can act on: each refuses, ends the run, or
    // answers; none reaches the catch-all arm (`Bad(0)`).
    let a = [DSQ_GLOBAL; 5];
    with_cx(&mut stack, |cx| {
        for (i, name) in KFUNCS.iter().enumerate() {
            let r = rt().rt.kfunc(cx, i as u32, a);
            assert_ne!(r, Err(Fail::Bad(0)), "{name}");
            rt().rt.pending = None;
        }
        for (id, name) in HELPERS {
            let r = rt().rt.helper(cx, id, a);
            assert_ne!(r, Err(Fail::Bad(0)), "{name}");
        }
    });
}
