//! Per-CPU state, reached through the FS segment base: `_start` points
//! each vCPU's FS base at its own `PerCpu`, so `fs:[0]` is "this CPU" at
//! CPL3 and CPL0 alike, in one native instruction. Fields that must be
//! updated atomically with respect to a migration (the preemption count)
//! are only ever touched with single fs-relative instructions: a task can
//! be preempted and moved between any two instructions, never inside one.

use abi::memmap::MAX_CPUS;
use core::sync::atomic::{AtomicU32, AtomicU64};

#[repr(C, align(128))]
pub struct PerCpu {
    /// Address of this struct (what `fs:[0]` reads).
    pub this: u64,
    pub cpu: u32,
    /// Preemption disabled while > 0 (the scheduler lock, TLV writes).
    pub preempt_count: u32,
    /// A tick wanted to preempt while preemption was disabled.
    pub need_resched: AtomicU32,
    /// 1 while the idle loop is about to wait or waiting.
    pub idle: AtomicU32,
    /// Set by a waker before it kicks an idle CPU; checked by the CPL0
    /// idle path with interrupts off, so a kick can never be lost.
    pub wake_pending: AtomicU32,
    pub reserved: u32,
    /// TSC at which the running task's slice ends (for preempt_point).
    pub slice_end: AtomicU64,
    /// Saved rsp of this CPU's idle context.
    pub idle_rsp: u64,
    /// The CPU's steal time (ns) when the running task was last charged.
    pub steal_base: u64,
    /// 1 while the running task is monitored: a fault in operation code
    /// then ends just that task (reason "crashed") instead of the run.
    pub crash_ok: AtomicU32,
    /// The policy-image callback this CPU is in (`abi::policy` callback
    /// id), 0 outside one: a fault meanwhile is the policy's, never the
    /// running task's, so the exception stub sends it to the VMM.
    pub policy_callback: AtomicU32,
    /// Top of this CPU's crash stack.
    pub crash_stack: u64,
}

pub const PC_THIS: usize = core::mem::offset_of!(PerCpu, this);
pub const PC_PREEMPT_COUNT: usize = core::mem::offset_of!(PerCpu, preempt_count);
pub const PC_WAKE_PENDING: usize = core::mem::offset_of!(PerCpu, wake_pending);
pub const PC_CRASH_OK: usize = core::mem::offset_of!(PerCpu, crash_ok);
pub const PC_POLICY_CALLBACK: usize = core::mem::offset_of!(PerCpu, policy_callback);
pub const PC_CRASH_STACK: usize = core::mem::offset_of!(PerCpu, crash_stack);
pub const PERCPU_SIZE: usize = core::mem::size_of::<PerCpu>();
const _: () = {
    assert!(PC_THIS == 0);
    assert!(PERCPU_SIZE == 128);
};

impl PerCpu {
    // Only used as the array initialiser below, where a fresh copy per
    // element is exactly what is wanted.
    #[allow(clippy::declare_interior_mutable_const)]
    const INIT: PerCpu = PerCpu {
        this: 0,
        cpu: 0,
        preempt_count: 0,
        need_resched: AtomicU32::new(0),
        idle: AtomicU32::new(0),
        wake_pending: AtomicU32::new(0),
        reserved: 0,
        slice_end: AtomicU64::new(0),
        idle_rsp: 0,
        steal_base: 0,
        crash_ok: AtomicU32::new(0),
        policy_callback: AtomicU32::new(0),
        crash_stack: 0,
    };
}

/// One per possible CPU; `_start` sets FS base to `&PERCPU[cpu]`.
#[unsafe(no_mangle)]
pub static mut PERCPU: [PerCpu; MAX_CPUS] = [PerCpu::INIT; MAX_CPUS];

/// This CPU's state. Stable only while preemption is disabled (a task can
/// migrate at any preemption point); the fields read without that are
/// either atomics or only used as hints.
#[inline(always)]
pub fn this_cpu() -> &'static PerCpu {
    let p: u64;
    // SAFETY: fs:[0] holds this CPU's PerCpu address (set in _start and
    // checked by `init`); reading it has no side effects.
    unsafe {
        core::arch::asm!("mov {}, fs:[0]", out(reg) p, options(nostack, readonly, preserves_flags))
    };
    // SAFETY: p points into PERCPU, a static that lives forever.
    unsafe { &*(p as *const PerCpu) }
}

/// Any CPU's state (for kicking it, or the idle loop's own).
pub fn cpu(n: u32) -> &'static PerCpu {
    // SAFETY: shared access to a static; mutation of non-atomic fields
    // happens only in `init` (boot, before the CPU is visible) and in the
    // owning CPU's idle path with preemption disabled.
    unsafe { &(*core::ptr::addr_of!(PERCPU))[n as usize] }
}

/// Raw pointer for the few non-atomic fields the owning CPU writes.
pub fn cpu_mut(n: u32) -> *mut PerCpu {
    // SAFETY: in bounds of the static array; callers write only fields
    // owned by CPU n, from CPU n.
    unsafe { core::ptr::addr_of_mut!(PERCPU[n as usize]) }
}

pub fn cpu_id() -> u32 {
    this_cpu().cpu
}

/// Check that the FS base set at CPL0 survived the drop to CPL3 (it is a
/// property of this hypervisor we rely on) and fill in the CPU number.
pub fn init(cpu_index: u32) -> Result<(), &'static str> {
    let me = cpu_mut(cpu_index);
    // SAFETY: only this CPU touches its own entry during its boot.
    unsafe {
        (*me).this = me as u64;
        (*me).cpu = cpu_index;
        (*me).crash_stack =
            abi::memmap::CRASH_STACKS_ADDR + (cpu_index as u64 + 1) * abi::memmap::CRASH_STACK_SIZE;
    }
    if this_cpu() as *const PerCpu as u64 != me as u64 {
        return Err("per-CPU: the FS base set at CPL0 did not survive the switch to CPL3");
    }
    Ok(())
}

#[inline(always)]
pub fn preempt_disable() {
    // SAFETY: one fs-relative instruction: cannot be split by preemption.
    unsafe {
        core::arch::asm!(
            "inc dword ptr fs:[{off}]",
            off = const PC_PREEMPT_COUNT,
            options(nostack)
        )
    };
    core::sync::atomic::compiler_fence(core::sync::atomic::Ordering::SeqCst);
}

/// Re-enable preemption; if a tick wanted to preempt meanwhile, do it now.
#[inline(always)]
pub fn preempt_enable() {
    core::sync::atomic::compiler_fence(core::sync::atomic::Ordering::SeqCst);
    let zero: u8;
    // SAFETY: as in preempt_disable; setz reads the flags of that dec.
    unsafe {
        core::arch::asm!(
            "dec dword ptr fs:[{off}]",
            "setz {z}",
            off = const PC_PREEMPT_COUNT,
            z = out(reg_byte) zero,
            options(nostack)
        )
    };
    if zero != 0
        && this_cpu()
            .need_resched
            .load(core::sync::atomic::Ordering::Relaxed)
            != 0
    {
        crate::sched::deferred_resched();
    }
}

pub fn preempt_count() -> u32 {
    let c: u32;
    // SAFETY: a plain fs-relative read.
    unsafe {
        core::arch::asm!(
            "mov {c:e}, dword ptr fs:[{off}]",
            off = const PC_PREEMPT_COUNT,
            c = out(reg) c,
            options(nostack, readonly, preserves_flags)
        )
    };
    c
}

/// preempt_enable without acting on need_resched.
#[inline(always)]
pub fn preempt_enable_no_resched() {
    core::sync::atomic::compiler_fence(core::sync::atomic::Ordering::SeqCst);
    // SAFETY: as in preempt_disable.
    unsafe {
        core::arch::asm!(
            "dec dword ptr fs:[{off}]",
            off = const PC_PREEMPT_COUNT,
            options(nostack)
        )
    };
}
