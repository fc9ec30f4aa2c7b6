//! The policy callback budget: a policy-image callback that runs longer
//! than `abi::policy::POLICY_CALLBACK_BUDGET_NS` is hung, and ends the run.
//!
//! The CPU running it cannot tell (callbacks run under the scheduler lock
//! with its tick deferred), so the core publishes in each `CpuRecord`
//! which callback the CPU is in and how many calls it has made (which
//! call that is), and the monitor watches that here. A false alarm is a
//! bug, and on this shared host a vCPU can be descheduled for tens of
//! milliseconds in the middle of a microsecond callback: guest time alone
//! would cry wolf. So the budget is counted in the vCPU thread's own CPU
//! time (its `pthread_getcpuclockid` clock), from the first sweep that
//! sees the same call still running a tenth of the budget after the sweep
//! that first saw it. A hung callback is then caught after about 1.1-1.2
//! budgets, and one the host froze is never blamed for it.

use super::view::{KstateView, kstate_off};
use abi::kstate::{
    CPU_RECORD_POLICY_CALL_SEQ_OFFSET, CPU_RECORD_POLICY_CALLBACK_OFFSET, cpu_record_addr,
};
use std::sync::atomic::Ordering;

/// One call seen running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Watch {
    id: u64,
    seq: u64,
    /// Guest TSC of the sweep that first saw it.
    seen_tsc: u64,
    /// The vCPU thread's CPU time when it had run a tenth of the budget
    /// (None until then: the clock is a system call, kept off short calls).
    cpu_ns0: Option<u64>,
}

/// A callback over its budget: which CPU, which callback, and for how
/// long it has run (guest time since a sweep first saw it, so at least
/// that; the vCPU's CPU time since it was watched).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overrun {
    pub cpu: u32,
    pub callback: &'static str,
    pub elapsed_ns: u64,
    pub cpu_ns: u64,
}

/// Per-CPU watches over the published callbacks.
#[derive(Debug)]
pub struct BudgetWatch {
    budget_ns: u64,
    tsc_khz: u64,
    watches: Vec<Option<Watch>>,
}

impl BudgetWatch {
    pub fn new(cpus: u32, budget_ns: u64, tsc_khz: u64) -> Self {
        BudgetWatch {
            budget_ns,
            tsc_khz,
            watches: vec![None; cpus as usize],
        }
    }

    /// Look at CPU `cpu`'s callback at guest TSC `guest_now`; `cpu_ns`
    /// reads its vCPU thread's CPU time (None: unknown, and then nothing
    /// is ever blamed). Every guest word is untrusted: ids this ABI does
    /// not know and torn pairs are ignored.
    pub fn observe(
        &mut self,
        view: &KstateView,
        cpu: u32,
        guest_now: Option<u64>,
        cpu_ns: impl FnOnce() -> Option<u64>,
    ) -> Option<Overrun> {
        let slot = self.watches.get_mut(cpu as usize)?;
        let base = kstate_off(cpu_record_addr(cpu));
        let id = view.load_u64(base + CPU_RECORD_POLICY_CALLBACK_OFFSET, Ordering::Acquire)?;
        let seq = view.load_u64(base + CPU_RECORD_POLICY_CALL_SEQ_OFFSET, Ordering::Acquire)?;
        let again = view.load_u64(base + CPU_RECORD_POLICY_CALLBACK_OFFSET, Ordering::Acquire)?;
        let name = abi::policy::callback_name(id);
        let (Some(name), Some(now), true) = (name, guest_now, id == again) else {
            *slot = None;
            return None;
        };
        let w = match *slot {
            Some(w) if w.id == id && w.seq == seq => w,
            // A new call (or the first look): watched from now.
            _ => {
                *slot = Some(Watch {
                    id,
                    seq,
                    seen_tsc: now,
                    cpu_ns0: None,
                });
                return None;
            }
        };
        let elapsed_ns = analysis::ticks_to_ns(now.saturating_sub(w.seen_tsc), self.tsc_khz);
        match w.cpu_ns0 {
            None if elapsed_ns >= self.budget_ns / 10 => {
                // Still in it a tenth of the budget later: its CPU time
                // counts from here (no clock, nothing is ever blamed).
                *slot = Some(Watch {
                    cpu_ns0: cpu_ns(),
                    ..w
                });
                None
            }
            None => None,
            Some(cpu_ns0) => {
                let ran = cpu_ns()?.saturating_sub(cpu_ns0);
                (ran >= self.budget_ns && elapsed_ns >= self.budget_ns).then_some(Overrun {
                    cpu,
                    callback: name,
                    elapsed_ns,
                    cpu_ns: ran,
                })
            }
        }
    }
}

/// The CPU time of a thread, by its `pthread_getcpuclockid` clock, ns.
pub fn thread_cpu_ns(clock: libc::clockid_t) -> Option<u64> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the timespec we pass; a clock of a
    // thread that has ended gives an error, not undefined behaviour.
    let rc = unsafe { libc::clock_gettime(clock, &mut ts) };
    (rc == 0).then(|| ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use abi::kstate::{KSTATE_END, cpu_record_addr};

    const KHZ: u64 = 1_000_000; // 1 tick = 1 ns
    const BUDGET: u64 = 10_000_000;

    fn set(v: &KstateView, cpu: u32, id: u64, seq: u64) {
        let base = kstate_off(cpu_record_addr(cpu));
        v.store_u64(
            base + CPU_RECORD_POLICY_CALL_SEQ_OFFSET,
            seq,
            Ordering::Relaxed,
        );
        v.store_u64(
            base + CPU_RECORD_POLICY_CALLBACK_OFFSET,
            id,
            Ordering::Relaxed,
        );
    }

    #[test]
    fn a_callback_that_runs_past_the_budget_of_cpu_time_is_hung() {
        let v = KstateView::synthetic(KSTATE_END);
        let mut b = BudgetWatch::new(2, BUDGET, KHZ);
        set(&v, 1, u64::from(abi::policy::CB_DISPATCH), 41);
        // First seen at 1 ms; too young for its CPU clock at 1.5 ms.
        assert_eq!(b.observe(&v, 1, Some(1_000_000), || Some(0)), None);
        assert_eq!(b.observe(&v, 1, Some(1_500_000), || Some(0)), None);
        // Watched from 2 ms, its CPU clock at 5 ms.
        assert_eq!(b.observe(&v, 1, Some(2_000_000), || Some(5_000_000)), None);
        assert_eq!(
            b.observe(&v, 1, Some(13_000_000), || Some(14_999_999)),
            None
        );
        assert_eq!(
            b.observe(&v, 1, Some(14_000_000), || Some(15_000_000)),
            Some(Overrun {
                cpu: 1,
                callback: "dispatch",
                elapsed_ns: 13_000_000,
                cpu_ns: 10_000_000
            })
        );
    }

    #[test]
    fn a_frozen_vcpu_or_a_new_call_is_never_blamed() {
        let v = KstateView::synthetic(KSTATE_END);
        let mut b = BudgetWatch::new(1, BUDGET, KHZ);
        set(&v, 0, u64::from(abi::policy::CB_ENQUEUE), 7);
        assert_eq!(b.observe(&v, 0, Some(1_000), || Some(100)), None);
        assert_eq!(b.observe(&v, 0, Some(3_000_000), || Some(100)), None);
        // A second of guest time, but the vCPU thread barely ran: the
        // host froze it.
        assert_eq!(b.observe(&v, 0, Some(1_000_000_000), || Some(200)), None);
        // The next call of the same callback starts over, however long
        // its vCPU has run.
        set(&v, 0, u64::from(abi::policy::CB_ENQUEUE), 8);
        assert_eq!(
            b.observe(&v, 0, Some(1_000_000_000), || Some(u64::MAX / 2)),
            None
        );
        assert_eq!(
            b.observe(&v, 0, Some(1_002_000_000), || Some(u64::MAX / 2)),
            None
        );
        assert_eq!(
            b.observe(&v, 0, Some(1_003_000_000), || Some(u64::MAX / 2 + 5)),
            None
        );
        // No CPU clock: nothing is blamed.
        set(&v, 0, u64::from(abi::policy::CB_TICK), 9);
        assert_eq!(b.observe(&v, 0, Some(2_000_000), || None), None);
        assert_eq!(b.observe(&v, 0, Some(4_000_000), || None), None);
        assert_eq!(b.observe(&v, 0, Some(900_000_000), || None), None);
    }

    #[test]
    fn garbage_ids_and_foreign_cpus_are_ignored() {
        let v = KstateView::synthetic(KSTATE_END);
        let mut b = BudgetWatch::new(1, BUDGET, KHZ);
        for id in [0, 21, u64::MAX] {
            set(&v, 0, id, 1);
            assert_eq!(b.observe(&v, 0, Some(1), || Some(0)), None);
            assert_eq!(b.observe(&v, 0, Some(u64::MAX), || Some(u64::MAX)), None);
        }
        set(&v, 0, 2, 5_000);
        assert_eq!(b.observe(&v, 0, None, || Some(0)), None, "no clock offset");
        assert_eq!(
            b.observe(&v, 7, Some(u64::MAX), || Some(0)),
            None,
            "no such CPU"
        );
    }
}
