//! Which policy callback each CPU is in, and the run's end when a policy
//! misbehaves.
//!
//! A policy image is untrusted code. Around every callback the core
//! publishes the callback's id twice: in this CPU's `PerCpu`, where the
//! exception stub sees it (a fault meanwhile is the policy's, so it goes
//! to the VMM rather than ending the running task as a crash), and in
//! this CPU's `CpuRecord` with the count of calls it has made, where the
//! host sees it: the host names the callback of a fault, and calls a callback that
//! runs past `abi::policy::POLICY_CALLBACK_BUDGET_NS` hung. The CPU itself
//! cannot: callbacks run under the scheduler lock with its tick deferred.

use crate::percpu;
use abi::kstate::{
    CPU_RECORD_POLICY_CALL_SEQ_OFFSET, CPU_RECORD_POLICY_CALLBACK_OFFSET,
    CPU_RECORD_POLICY_INSERTS_OFFSET, CPU_RECORD_POLICY_REMOTE_INSERTS_OFFSET, cpu_record_addr,
};
use core::sync::atomic::{AtomicU64, Ordering};

/// This CPU's `CpuRecord` word at `off`.
fn record_word(off: u64) -> &'static AtomicU64 {
    let addr = cpu_record_addr(percpu::cpu_id()) + off;
    // SAFETY: an 8-aligned u64 inside this CPU's record in the
    // kernel-state region, which lives for the run (offsets asserted in
    // the ABI); only this CPU writes it, and no `cpu_record` closure
    // touches it; the host only reads.
    unsafe { &*(addr as *const AtomicU64) }
}

/// Run policy code `f` as callback `cb` (an `abi::policy::CB_*` id).
/// Callbacks run under the scheduler lock (or at boot on CPU 0), so the
/// task cannot migrate in between and the words stay this CPU's.
#[inline(always)]
pub fn call<R>(cb: u32, f: impl FnOnce() -> R) -> R {
    let pc = percpu::this_cpu();
    pc.policy_callback.store(cb, Ordering::Relaxed);
    // The count first, then the id with release: a host that sees the id
    // sees this call's count (or a later one). No TSC read: on this PVM
    // host it cost as much as the rest of the call.
    let seq = record_word(CPU_RECORD_POLICY_CALL_SEQ_OFFSET);
    seq.store(
        seq.load(Ordering::Relaxed).wrapping_add(1),
        Ordering::Relaxed,
    );
    record_word(CPU_RECORD_POLICY_CALLBACK_OFFSET).store(u64::from(cb), Ordering::Release);
    let r = f();
    record_word(CPU_RECORD_POLICY_CALLBACK_OFFSET).store(0, Ordering::Release);
    pc.policy_callback.store(0, Ordering::Relaxed);
    r
}

/// Count one task this CPU's policy code queued, `remote` if into another
/// CPU's local queue (single-writer words, as the call count).
#[inline(always)]
pub fn count_insert(remote: bool) {
    let bump = |off| {
        let w = record_word(off);
        w.store(w.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
    };
    bump(CPU_RECORD_POLICY_INSERTS_OFFSET);
    if remote {
        bump(CPU_RECORD_POLICY_REMOTE_INSERTS_OFFSET);
    }
}

/// The callback this CPU is in, 0 if none.
pub fn current() -> u32 {
    percpu::this_cpu().policy_callback.load(Ordering::Relaxed)
}

/// The name of callback `cb` ("" for none).
pub fn name(cb: u32) -> &'static str {
    abi::policy::callback_name(u64::from(cb)).unwrap_or("")
}

/// End the run for something the policy did in callback `cb` (0: outside
/// any): "policy NAME: in CALLBACK: what". Formatted into a small buffer
/// (kernel stacks are 16 KB; no big frames).
pub fn fail(policy: &str, cb: u32, what: core::fmt::Arguments<'_>) -> ! {
    let mut text = heapless::String::<224>::new();
    let _ = core::fmt::write(&mut text, format_args!("policy {policy}: "));
    if cb != 0 {
        let _ = core::fmt::write(&mut text, format_args!("in {}: ", name(cb)));
    }
    let _ = core::fmt::write(&mut text, what);
    crate::sched::fail_run(text.as_bytes())
}
