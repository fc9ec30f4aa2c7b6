//! TEST ONLY: a policy image that misbehaves as its argument
//! (`--policy-arg N`, `policy_sdk::arg()`) says, for schedlab's own tests
//! of how the core and the host treat untrusted policy code
//! (`host/cli/tests/hostile_policies.rs`). Until `MISBEHAVE_AFTER_NS` it
//! schedules like the SDK's default (one global FIFO queue), so a run has
//! measured something before it breaks and its partial results can be
//! checked.
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicU64, Ordering};
use policy_sdk::{Scheduler, Task, dsq};

/// Behave (global FIFO).
const BEHAVE: u64 = 0;
/// `enqueue` reads through a null pointer (#PF).
const NULL_IN_ENQUEUE: u64 = 1;
/// `dispatch` never returns.
const SPIN_IN_DISPATCH: u64 = 2;
/// `enqueue` does nothing: the task is lost.
const DROP_TASKS: u64 = 3;
/// `enqueue` queues the task twice.
const QUEUE_TWICE: u64 = 4;
/// `tick` executes `ud2` (#UD).
const UD_IN_TICK: u64 = 5;

/// Run time before misbehaving, ns.
const MISBEHAVE_AFTER_NS: u64 = 50_000_000;

/// When `init` ran, ns: misbehaving starts `MISBEHAVE_AFTER_NS` later.
static STARTED: AtomicU64 = AtomicU64::new(0);

struct Hostile;

fn now_misbehaving(mode: u64) -> bool {
    policy_sdk::arg() == mode
        && policy_sdk::now_ns().saturating_sub(STARTED.load(Ordering::Relaxed))
            >= MISBEHAVE_AFTER_NS
}

impl Scheduler for Hostile {
    const NAME: &'static str = "hostile";
    const DESCRIPTION: &'static str =
        "TEST ONLY: faults, hangs, loses or double-queues tasks as its argument says";
    const TEST_ONLY: bool = true;

    fn init(&mut self) -> i32 {
        STARTED.store(policy_sdk::now_ns(), Ordering::Relaxed);
        match policy_sdk::arg() {
            BEHAVE..=UD_IN_TICK => 0,
            // Anything else: refuse to start (tested too).
            _ => -1,
        }
    }

    fn enqueue(&mut self, p: &mut Task, flags: u64) {
        if now_misbehaving(NULL_IN_ENQUEUE) {
            let v: u64;
            // SAFETY: none, on purpose: reads address 0, which the guest
            // leaves unmapped, to fault in a callback.
            unsafe {
                core::arch::asm!("mov {v}, qword ptr [{z}]", v = out(reg) v, z = in(reg) 0usize)
            };
            core::hint::black_box(v);
        }
        if now_misbehaving(DROP_TASKS) {
            return;
        }
        dsq::insert(p, dsq::GLOBAL, policy_sdk::SLICE_DFL, flags);
        if now_misbehaving(QUEUE_TWICE) {
            dsq::insert(p, dsq::GLOBAL, policy_sdk::SLICE_DFL, flags);
        }
    }

    fn dispatch(&mut self, _cpu: u32) {
        if now_misbehaving(SPIN_IN_DISPATCH) {
            loop {
                core::hint::spin_loop();
            }
        }
    }

    fn tick(&mut self, _p: &mut Task) {
        if now_misbehaving(UD_IN_TICK) {
            // SAFETY: none, on purpose: an invalid opcode in a callback.
            unsafe { core::arch::asm!("ud2") };
        }
    }
}

policy_sdk::export_policy!(Hostile, Hostile);
