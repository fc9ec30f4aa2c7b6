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

/// This thread's schedstat file, opened once so that reading it later is
/// one `pread`.
fn open_schedstat() -> Option<std::fs::File> {
    std::fs::File::open("/proc/thread-self/schedstat").ok()
}

fn read_schedstat(f: &std::fs::File) -> Option<(u64, u64)> {
    use std::os::unix::fs::FileExt;
    let mut buf = [0u8; 96];
    let n = f.read_at(&mut buf, 0).ok()?;
    parse_schedstat(std::str::from_utf8(&buf[..n]).ok()?)
}

/// Opened (`open`) and started (`begin`) in a thread; `finish` in the
/// same thread. Opening is separate so that a vCPU thread does it before
/// it waits for the go, and the read at `begin` is all that is left.
pub struct Meter {
    file: Option<std::fs::File>,
    t0: Instant,
    start: Option<(u64, u64)>,
}

impl Meter {
    pub fn open() -> Self {
        Meter {
            file: open_schedstat(),
            t0: Instant::now(),
            start: None,
        }
    }

    /// Count from now.
    pub fn begin(&mut self) {
        self.t0 = Instant::now();
        self.start = self.file.as_ref().and_then(read_schedstat);
    }

    /// None where schedstat is unavailable (no /proc, or an old kernel).
    pub fn finish(&self) -> Option<HostTime> {
        let (r0, w0) = self.start?;
        let (r1, w1) = read_schedstat(self.file.as_ref()?)?;
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
        let mut m = Meter::open();
        m.begin();
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
