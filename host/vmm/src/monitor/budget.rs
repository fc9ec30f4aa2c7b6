//! The policy callback budget: a policy-image callback that runs longer
//! than `abi::policy::POLICY_CALLBACK_BUDGET_NS` is hung, and ends the run.
//!
//! The CPU running it cannot tell (callbacks run under the scheduler lock
//! with its tick deferred), so the core publishes in each `CpuRecord`
//! which callback the CPU is in and how many calls it has made (which
//! call that is), and the monitor watches that here. A false alarm is a
//! bug, and on this shared host a vCPU can be descheduled for tens of
//! milliseconds in the middle of a microsecond callback: guest time alone
//! would cry wolf. Nor is the vCPU thread's CPU time enough: on this PVM
//! host a vCPU thread once burned 11 ms of CPU time in the host kernel
//! while its guest made no progress (CI, 4 vCPUs on 2 cores, an idle CPU
//! 42 ms into a microsecond `dispatch`). So a call is hung only when,
//! from the first sweep that sees it still running a tenth of the budget
//! after the sweep that first saw it, both its vCPU thread's CPU time
//! (`pthread_getcpuclockid`) and the guest's own proven run time
//! (`CpuRecord::live_tsc`: time between timer ticks heard at the tick
//! rate, which a vCPU not running guest code cannot hear) reach the
//! budget. A hung callback is then caught after about 1.1-1.2 budgets of
//! its own running, and one the host froze or stalled is never blamed.

use super::view::{KstateView, kstate_off};
use abi::kstate::{
    CPU_RECORD_LIVE_TSC_OFFSET, CPU_RECORD_POLICY_CALL_SEQ_OFFSET,
    CPU_RECORD_POLICY_CALLBACK_OFFSET, cpu_record_addr,
};
use std::sync::atomic::Ordering;

/// One call seen running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Watch {
    id: u64,
    seq: u64,
    /// Guest TSC of the sweep that first saw it.
    seen_tsc: u64,
    /// The vCPU thread's CPU time and the CPU's `live_tsc` when it had
    /// run a tenth of the budget (None until then: the clock is a system
    /// call, kept off short calls).
    start: Option<(u64, u64)>,
}

/// A callback over its budget: which CPU, which callback, and for how
/// long it has run (guest time since a sweep first saw it, so at least
/// that; the run time proven since it was watched: the lesser of the
/// vCPU thread's CPU time and the guest's live time).
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
                    start: None,
                });
                return None;
            }
        };
        let elapsed_ns = analysis::ticks_to_ns(now.saturating_sub(w.seen_tsc), self.tsc_khz);
        let live = view.load_u64(base + CPU_RECORD_LIVE_TSC_OFFSET, Ordering::Relaxed)?;
        match w.start {
            None if elapsed_ns >= self.budget_ns / 10 => {
                // Still in it a tenth of the budget later: its run time
                // counts from here (no clock, nothing is ever blamed).
                *slot = Some(Watch {
                    start: cpu_ns().map(|c| (c, live)),
                    ..w
                });
                None
            }
            None => None,
            Some((cpu_ns0, live0)) => {
                let cpu_ran = cpu_ns()?.saturating_sub(cpu_ns0);
                let live_ran = analysis::ticks_to_ns(live.saturating_sub(live0), self.tsc_khz);
                let ran = cpu_ran.min(live_ran);
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

    /// The guest's proven run time on `cpu` so far (TSC ticks).
    fn live(v: &KstateView, cpu: u32, tsc: u64) {
        let base = kstate_off(cpu_record_addr(cpu));
        v.store_u64(base + CPU_RECORD_LIVE_TSC_OFFSET, tsc, Ordering::Relaxed);
    }

    #[test]
    fn a_callback_that_runs_past_the_budget_of_cpu_time_is_hung() {
        let v = KstateView::synthetic(KSTATE_END);
        let mut b = BudgetWatch::new(2, BUDGET, KHZ);
        set(&v, 1, u64::from(abi::policy::CB_DISPATCH), 41);
        live(&v, 1, 7_000_000);
        // First seen at 1 ms; too young for its CPU clock at 1.5 ms.
        assert_eq!(b.observe(&v, 1, Some(1_000_000), || Some(0)), None);
        assert_eq!(b.observe(&v, 1, Some(1_500_000), || Some(0)), None);
        // Watched from 2 ms, its CPU clock at 5 ms.
        assert_eq!(b.observe(&v, 1, Some(2_000_000), || Some(5_000_000)), None);
        live(&v, 1, 17_000_000);
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
    fn cpu_time_the_guest_did_not_run_is_never_blamed() {
        // The CI case: the vCPU thread burned the budget of CPU time in
        // the host while its guest heard no tick (live time stood still),
        // and the other way round.
        let v = KstateView::synthetic(KSTATE_END);
        let mut b = BudgetWatch::new(1, BUDGET, KHZ);
        set(&v, 0, u64::from(abi::policy::CB_DISPATCH), 3);
        live(&v, 0, 1_000);
        assert_eq!(b.observe(&v, 0, Some(0), || Some(0)), None);
        assert_eq!(b.observe(&v, 0, Some(2_000_000), || Some(0)), None);
        live(&v, 0, 1_000 + 9_999_999);
        assert_eq!(
            b.observe(&v, 0, Some(42_000_000), || Some(500_000_000)),
            None,
            "live time below the budget"
        );
        live(&v, 0, 1_000 + 60_000_000);
        assert_eq!(
            b.observe(&v, 0, Some(80_000_000), || Some(9_999_999)),
            None,
            "CPU time below the budget"
        );
        assert_eq!(
            b.observe(&v, 0, Some(81_000_000), || Some(10_000_000))
                .map(|o| o.cpu_ns),
            Some(10_000_000)
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
