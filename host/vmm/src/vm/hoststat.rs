//! How much host CPU each vCPU thread actually got. With more vCPUs than
//! host CPUs (or other load on the host) a vCPU thread waits in the host's
//! run queue while its guest clock (the TSC) keeps running, so the guest's
//! shares and waits then measure the host's scheduling as much as the
//! guest's. The kernel's per-thread schedstat says how long that was.

use serde::Serialize;
use std::time::Instant;

/// One vCPU thread's time while it ran the guest.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct HostTime {
    pub wall_ns: u64,
    /// On a host CPU (guest and host mode together).
    pub run_ns: u64,
    /// Runnable but waiting for a host CPU (halted vCPUs sleep instead,
    /// which does not count).
    pub wait_ns: u64,
}

impl HostTime {
    /// Fraction of the wall time spent waiting for a host CPU.
    pub fn wait_fraction(&self) -> f64 {
        if self.wall_ns == 0 {
            0.0
        } else {
            self.wait_ns as f64 / self.wall_ns as f64
        }
    }
}

/// `/proc/<tid>/schedstat`: "run_ns wait_ns timeslices".
pub fn parse_schedstat(text: &str) -> Option<(u64, u64)> {
    let mut it = text.split_ascii_whitespace().map(|w| w.parse::<u64>().ok());
    Some((it.next()??, it.next()??))
}

fn thread_schedstat() -> Option<(u64, u64)> {
    parse_schedstat(&std::fs::read_to_string("/proc/thread-self/schedstat").ok()?)
}

/// Started in a thread; `finish` in the same thread.
pub struct Meter {
    t0: Instant,
    start: Option<(u64, u64)>,
}

impl Meter {
    pub fn start() -> Self {
        Meter {
            t0: Instant::now(),
            start: thread_schedstat(),
        }
    }

    /// None where schedstat is unavailable (no /proc, or an old kernel).
    pub fn finish(&self) -> Option<HostTime> {
        let (r0, w0) = self.start?;
        let (r1, w1) = thread_schedstat()?;
        Some(HostTime {
            wall_ns: self.t0.elapsed().as_nanos() as u64,
            run_ns: r1.saturating_sub(r0),
            wait_ns: w1.saturating_sub(w0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedstat_parses_and_garbage_does_not() {
        assert_eq!(parse_schedstat("827511 1200 1\n"), Some((827_511, 1200)));
        assert_eq!(parse_schedstat("1"), None);
        assert_eq!(parse_schedstat("x y z"), None);
        assert_eq!(parse_schedstat(""), None);
    }

    /// This thread's CPU time, from the kernel's other clock.
    fn thread_cpu_ns() -> u64 {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes one timespec through a valid,
        // exclusive pointer and keeps nothing.
        let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        assert_eq!(rc, 0);
        ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
    }

    #[test]
    fn a_busy_thread_is_measured() {
        let m = Meter::start();
        let t = Instant::now();
        // Busy for 20 ms of this thread's own CPU time (and at least 20 ms
        // of wall time), however loaded the host is: the test runs beside
        // others.
        let cpu0 = thread_cpu_ns();
        while t.elapsed().as_millis() < 20 || thread_cpu_ns() - cpu0 < 20_000_000 {
            std::hint::spin_loop();
        }
        let h = m.finish().expect("schedstat on Linux");
        assert!(h.run_ns >= 10_000_000, "{h:?}");
        assert!(h.wall_ns >= 20_000_000, "{h:?}");
        assert!(h.wait_fraction() <= 1.0);
    }
}
