//! The scheduler lock: a test-and-test-and-set spinlock at CPL3 that also
//! disables preemption on the CPU holding it. Ownership may pass across a
//! context switch (the task switched to releases the lock the switcher
//! took); the preemption count belongs to the CPU, which stays the same
//! across that switch, so the count stays balanced.
//!
//! vCPUs are host threads, and with more vCPUs than host cores the host
//! deschedules them at random, so two things here are about the host:
//! - Not a ticket lock: a FIFO lock hands the lock to a waiter the host is
//!   not running, and every other vCPU spins until the host runs it
//!   (measured with 4 vCPUs on 2 cores, 8 tasks, 1 kHz tick: a ticket lock
//!   gave 0.5 M units/s, this lock 3 M).
//! - A waiter that has spun for `SPIN_NS` halts its vCPU (through the idle
//!   gate) instead of burning the host core the lock holder may need; the
//!   releaser kicks one halted waiter with an IPI, and the tick wakes it
//!   anyway, so a lost kick costs at most one tick. Without this, 8 vCPUs
//!   on 2 host cores could spin for hundreds of milliseconds behind a
//!   descheduled holder.

use crate::percpu::{self, preempt_disable, preempt_enable};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// How long to spin before halting: well above a normal hold time (a few
/// µs), well below a host time slice.
const SPIN_NS: u64 = 30_000;

pub struct SpinLock {
    held: AtomicBool,
    /// CPUs halted waiting for this lock (bit n = CPU n).
    waiters: AtomicU64,
}

impl SpinLock {
    pub const fn new() -> Self {
        SpinLock {
            held: AtomicBool::new(false),
            waiters: AtomicU64::new(0),
        }
    }

    fn try_take(&self) -> bool {
        self.held
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    pub fn lock(&self) {
        preempt_disable();
        if self.try_take() {
            return;
        }
        let spin_ticks = crate::time::ns_to_ticks(SPIN_NS);
        loop {
            let start = crate::time::rdtsc();
            while self.held.load(Ordering::Relaxed) {
                core::hint::spin_loop();
                if crate::time::rdtsc() - start > spin_ticks {
                    self.halt_until_kicked();
                    break;
                }
            }
            if self.try_take() {
                return;
            }
        }
    }

    /// Halt this vCPU until the holder releases the lock (or a tick).
    fn halt_until_kicked(&self) {
        let pc = percpu::this_cpu();
        let bit = 1u64 << pc.cpu;
        self.waiters.fetch_or(bit, Ordering::SeqCst);
        // Either we see the lock free here, or the releaser sees our bit.
        if self.held.load(Ordering::SeqCst) {
            crate::entry::idle_halt();
        }
        self.waiters.fetch_and(!bit, Ordering::SeqCst);
        pc.wake_pending.store(0, Ordering::Relaxed);
    }

    fn release(&self) {
        self.held.store(false, Ordering::SeqCst);
        let w = self.waiters.load(Ordering::SeqCst);
        if w != 0 {
            let cpu = w.trailing_zeros();
            if percpu::cpu(cpu).wake_pending.swap(1, Ordering::SeqCst) == 0 {
                crate::entry::send_wake_ipi(cpu);
            }
        }
    }

    pub fn unlock(&self) {
        self.release();
        preempt_enable();
    }

    /// Release without the deferred-reschedule check (for paths that are
    /// about to reschedule anyway, or that run in the idle context).
    pub fn unlock_no_resched(&self) {
        self.release();
        crate::percpu::preempt_enable_no_resched();
    }
}
