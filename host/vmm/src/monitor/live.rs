//! The monitor's live checks: they end a run early, while it happens,
//! instead of letting a broken scheduler run into the deadline.
//!
//! - A stall: an online CPU whose clock (`CpuRecord::clock_tsc`, advanced
//!   by every tick, switch and idle wake-up) stops moving; detected by
//!   `analysis::StallDetector` over the samples.
//! - Starvation: a runnable task that has waited for a CPU too long.
//! - A hung policy callback: one that has used its budget of its vCPU's
//!   CPU time without returning (`monitor::budget`).
//!
//! Guest timestamps are guest TSC ticks. Under PVM they equal the host's,
//! but on a VMX/SVM host KVM offsets the guest TSC, so the monitor learns
//! the offset from the samples instead of assuming it (see GuestClock).

use abi::kstate::{TASK_RUNNABLE, TaskRecord};

/// Estimates `guest TSC - host TSC`. Each sample shows a clock value the
/// guest wrote at or before the host's read, so `clock - host_tsc` is at
/// most the true offset; the largest seen is the estimate, short by at
/// most the time since the most recent tick. Guest-time estimates are
/// therefore never ahead of the guest, and waits never overstated.
#[derive(Debug, Clone, Copy, Default)]
pub struct GuestClock {
    offset: Option<i64>,
}

impl GuestClock {
    pub fn observe(&mut self, host_tsc: u64, clock_tsc: u64) {
        if clock_tsc == 0 {
            return;
        }
        let d = clock_tsc.wrapping_sub(host_tsc) as i64;
        self.offset = Some(self.offset.map_or(d, |o| o.max(d)));
    }

    pub fn offset(&self) -> Option<i64> {
        self.offset
    }

    /// Host TSC converted to guest TSC, if the offset is known.
    pub fn guest(&self, host_tsc: u64) -> Option<u64> {
        self.offset.map(|o| host_tsc.wrapping_add(o as u64))
    }
}

/// What made the monitor end a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alarm {
    Stall {
        cpu: u32,
        pid: u32,
        stalled_ns: u64,
    },
    Starved {
        pid: u32,
        cpu: u32,
        waited_ns: u64,
        limit_ns: u64,
        /// Allowed beyond the limit: the longest a CPU went without its
        /// timer (the host's doing) when the alarm was raised.
        allowance_ns: u64,
    },
    /// A policy-image callback ran past its budget on `cpu` (see
    /// `monitor::budget`): `cpu_ns` of run time proven since it was
    /// watched (vCPU thread CPU time and guest live time, the lesser),
    /// `elapsed_ns` of guest time since it began.
    PolicyHung {
        cpu: u32,
        pid: u32,
        callback: &'static str,
        cpu_ns: u64,
        elapsed_ns: u64,
        budget_ns: u64,
    },
}

pub fn ticks_to_ns(ticks: u64, tsc_khz: u64) -> u64 {
    analysis::ticks_to_ns(ticks, tsc_khz)
}

/// A runnable task that has waited longer than `limit_ns` plus
/// `allowance_ns` (time the host took from a CPU), at guest time
/// `guest_now`. Free, garbage or future timestamps never fire.
pub fn starved(
    r: &TaskRecord,
    guest_now: u64,
    limit_ns: u64,
    allowance_ns: u64,
    tsc_khz: u64,
) -> Option<Alarm> {
    if r.pid == 0 || r.state != TASK_RUNNABLE || r.runnable_since_tsc == 0 {
        return None;
    }
    let waited = guest_now.checked_sub(r.runnable_since_tsc)?;
    let waited_ns = ticks_to_ns(waited, tsc_khz);
    (waited_ns > limit_ns.saturating_add(allowance_ns)).then_some(Alarm::Starved {
        pid: r.pid,
        cpu: r.cpu,
        waited_ns,
        limit_ns,
        allowance_ns,
    })
}

fn ms(ns: u64) -> String {
    format!("{:.0} ms", ns as f64 / 1e6)
}

impl Alarm {
    /// "CPU 2 stalled for 300 ms running pid 4 at rip 0x4001a3 in
    /// spin::stall+0x12 (operation spin)" -- `at` is where the vCPU was
    /// when it was stopped, if its registers could be read.
    pub fn message(&self, at: Option<&str>) -> String {
        match *self {
            Alarm::Stall {
                cpu,
                pid,
                stalled_ns,
            } => {
                let at = at.map(|a| format!(" {a}")).unwrap_or_default();
                let running = if pid == 0 {
                    "with no task".to_string()
                } else {
                    format!("running pid {pid}")
                };
                format!(
                    "CPU {cpu} stalled for {} {running}{at}: its clock stopped advancing \
                     (--stall-threshold)",
                    ms(stalled_ns)
                )
            }
            Alarm::Starved {
                pid,
                cpu,
                waited_ns,
                limit_ns,
                allowance_ns,
            } => {
                let beyond = if allowance_ns > 0 {
                    format!(
                        ", plus the {} the host took from a CPU meanwhile",
                        ms(allowance_ns)
                    )
                } else {
                    String::new()
                };
                format!(
                    "task {pid} waited {} runnable without getting a CPU (queued for CPU \
                     {cpu}; --max-wait {}{beyond}): the policy is not running it",
                    ms(waited_ns),
                    ms(limit_ns)
                )
            }
            Alarm::PolicyHung {
                cpu,
                pid,
                callback,
                cpu_ns,
                elapsed_ns,
                budget_ns,
            } => {
                let at = at.map(|a| format!(" {a}")).unwrap_or_default();
                let running = if pid == 0 {
                    "the CPU was idle".to_string()
                } else {
                    format!("pid {pid} was running")
                };
                format!(
                    "in {callback}: hung on CPU {cpu}{at}: the callback ran at least {} ({} of it \
                     proven running on its vCPU) without returning, over the {} budget of a policy \
                     callback ({running})",
                    ms(elapsed_ns),
                    ms(cpu_ns),
                    ms(budget_ns)
                )
            }
        }
    }

    pub fn check_name(&self) -> &'static str {
        match self {
            Alarm::Stall { .. } => "stall",
            Alarm::Starved { .. } => "starvation",
            Alarm::PolicyHung { .. } => "policy_budget",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KHZ: u64 = 1_000_000; // 1 tick = 1 ns

    #[test]
    fn the_guest_clock_offset_comes_from_the_freshest_sample() {
        let mut c = GuestClock::default();
        assert_eq!(c.guest(10), None);
        c.observe(1_000, 0);
        assert_eq!(c.offset(), None, "a zero clock says nothing");
        c.observe(10_000, 9_000); // guest ticked 1000 before this read
        c.observe(20_000, 19_900);
        assert_eq!(c.offset(), Some(-100));
        assert_eq!(c.guest(30_000), Some(29_900));
        // A VMX-style offset: guest TSC far behind the host's.
        let mut v = GuestClock::default();
        v.observe(1 << 40, 5_000);
        assert_eq!(v.guest((1 << 40) + 10), Some(5_010));
    }

    #[test]
    fn only_runnable_tasks_waiting_too_long_are_starved() {
        let t = TaskRecord {
            pid: 3,
            cpu: 1,
            state: TASK_RUNNABLE,
            runnable_since_tsc: 1_000,
            ..Default::default()
        };
        let limit = 100_000_000;
        assert_eq!(starved(&t, 1_000 + limit, limit, 0, KHZ), None);
        assert_eq!(
            starved(&t, 1_000 + limit + 1, limit, 0, KHZ),
            Some(Alarm::Starved {
                pid: 3,
                cpu: 1,
                waited_ns: limit + 1,
                limit_ns: limit,
                allowance_ns: 0,
            })
        );
        // A CPU the host froze for 107 ms: a 108 ms wait is its doing, a
        // wait past the limit beyond that is the policy's.
        let froze = 107_000_000;
        assert_eq!(starved(&t, 1_000 + 108_000_000, limit, froze, KHZ), None);
        assert!(starved(&t, 1_000 + limit + froze + 1, limit, froze, KHZ).is_some());
        assert_eq!(
            starved(&t, 500, limit, 0, KHZ),
            None,
            "since is in the future"
        );
        let running = TaskRecord {
            state: abi::kstate::TASK_RUNNING,
            ..t
        };
        assert_eq!(starved(&running, u64::MAX, limit, 0, KHZ), None);
        let free = TaskRecord { pid: 0, ..t };
        assert_eq!(starved(&free, u64::MAX, limit, 0, KHZ), None);
    }

    #[test]
    fn messages_name_the_cpu_task_and_place() {
        let s = Alarm::Stall {
            cpu: 2,
            pid: 4,
            stalled_ns: 300_000_000,
        };
        assert_eq!(
            s.message(Some("at rip 0x4001a3 in spin::stall (operation spin)")),
            "CPU 2 stalled for 300 ms running pid 4 at rip 0x4001a3 in spin::stall (operation \
             spin): its clock stopped advancing (--stall-threshold)"
        );
        let w = Alarm::Starved {
            pid: 5,
            cpu: 0,
            waited_ns: 101_000_000,
            limit_ns: 100_000_000,
            allowance_ns: 0,
        };
        assert!(w.message(None).starts_with("task 5 waited 101 ms runnable"));
        assert!(w.message(None).contains("--max-wait 100 ms)"));
        let w = Alarm::Starved {
            pid: 5,
            cpu: 0,
            waited_ns: 230_000_000,
            limit_ns: 100_000_000,
            allowance_ns: 107_000_000,
        };
        assert!(
            w.message(None)
                .contains("--max-wait 100 ms, plus the 107 ms the host took from a CPU meanwhile"),
            "{}",
            w.message(None)
        );
    }
}
