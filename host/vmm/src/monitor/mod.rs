//! The monitor: a host thread that watches the guest's scheduler while it
//! runs by reading the introspection area straight out of guest RAM -- no
//! VM exit, no message, no guest code runs for it. It samples every CPU's
//! record at `--sample-hz`, drains every CPU's event ring, and runs the
//! live checks (stall, starvation) that end a broken run early.
//!
//! What it keeps is bounded, so a run of an hour stays well under 200 MB:
//! samples are thinned evenly when their store is full (MAX_SAMPLES, see
//! [`samples::SampleStore`]), events past MAX_EVENTS are counted as
//! dropped; both are reported, never silently lost, and dropped events
//! make the verdict inconclusive.

pub mod budget;
pub mod events;
pub mod live;
pub mod lost;
pub mod samples;
pub mod seqlock;
pub mod view;

use abi::kstate::{
    CpuRecord, EVENT_RING_ENTRIES, Event, KSTATE_MAGIC, KSTATE_VERSION, KernelStateHeader,
    TASK_RUNNABLE, TaskRecord, task_record_addr,
};
use abi::memmap::MAX_TASKS;
use analysis::{CpuSample, StallDetector};
use budget::BudgetWatch;
use events::{DrainStats, EventDrain};
use live::{Alarm, GuestClock};
use samples::SampleStore;
use serde::Serialize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::Instant;
use view::{KstateView, kstate_off};

const TASK_STATE_OFFSET: u64 = std::mem::offset_of!(TaskRecord, state) as u64;

/// Most CPU samples kept (2^19, 20 MiB of 40-byte samples); a full store
/// is thinned, so the samples cover the whole run at a lower rate. At the
/// default 1 kHz that is 4 minutes of 2 vCPUs before the first thinning.
/// A power of two, so the Vec's doubling ends exactly at the cap.
pub const MAX_SAMPLES: usize = 1 << 19;
/// Most events kept (2^19, 16 MiB of 32-byte events); beyond, events are
/// counted as dropped and the verdict is inconclusive. An hour of the
/// default `spin` makes about 1.8 million, so a long busy run is judged
/// on its first minutes and says so. Concluding a run with both stores
/// full (replay, judge, pictures, report: about 150 bytes per event in
/// all) stays well under 200 MB with the ~20 MB a run starts with
/// (host/lab/tests/memory.rs measures it; 2^21 events measured 343 MiB
/// once the replay was shared by the judge and the pictures). The caps
/// were 8 million events (256 MiB) and 2 million samples (80 MB): over
/// half a gigabyte at the end of an hour.
pub const MAX_EVENTS: usize = 1 << 19;
/// With sampling off the rings are still drained, at least this often.
const DRAIN_ONLY_PERIOD_NS: u64 = 5_000_000;
/// Between sweeps the rings are drained again whenever the busiest one
/// could otherwise fill: a ring holds 4096 events, and a same-CPU
/// ping-pong makes over 8 million a second (4 per 0.5 µs round trip), so a
/// drain only at the default 1 kHz sweep lost a third of them. The next
/// drain comes by the time the busiest ring, at the rate it just filled,
/// would be a quarter full, but not sooner than this.
const MIN_DRAIN_GAP_NS: u64 = 20_000;
/// The task table is scanned for starved tasks every max-wait / this (5 ms
/// for the default 100 ms), within the bounds below: a wait is then caught
/// at most 5 % late, and the 256-slot scan stays off the sampling path.
const TASK_SCANS_PER_MAX_WAIT: u64 = 20;
const TASK_SCAN_MIN_NS: u64 = 1_000_000;
const TASK_SCAN_MAX_NS: u64 = 10_000_000;
/// The monitor thread's nice value when allowed (see boost_priority).
const MONITOR_NICE: libc::c_int = -10;
/// How far behind schedule the sampler may fall and still catch up.
const MAX_LAG_NS: u64 = 2_000_000;

#[derive(Debug, Clone)]
pub struct MonitorConfig {
    pub cpus: u32,
    /// 0 = no sampling, no live checks (the rings are still drained).
    pub sample_hz: u32,
    pub tsc_khz: u64,
    pub stall_threshold_ns: u64,
    /// None = no starvation check.
    pub max_wait_ns: Option<u64>,
    /// The guest's tick rate (`--tick-hz`): a CPU that has not heard its
    /// timer for two periods is stalled now (see `lost`).
    pub tick_hz: u32,
    /// How long a policy-image callback may run (proven run time, see `budget`) before the
    /// run ends as hung; None = not watched (no policy image).
    pub policy_budget_ns: Option<u64>,
}

/// The `monitor` object of the report.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MonitorStats {
    /// CPU records sampled and kept (one per online CPU per sweep).
    pub samples: u64,
    /// Sweeps over all CPUs.
    pub sweeps: u64,
    pub sample_hz_requested: u32,
    /// Sweeps per second actually done, from the first to the last.
    pub sample_hz_achieved: f64,
    /// Events drained and kept.
    pub events: u64,
    /// Events the guest dropped because a ring stayed full.
    pub lost_events: u64,
    /// Time the guest's CPUs waited for this monitor to drain a full ring,
    /// ns, all CPUs (each wait is time taken from its CPU, like steal).
    pub ring_wait_ns: u64,
    /// Samples and events the host did not keep (over its caps).
    pub dropped_host: u64,
    /// Samples taken but not kept: thinned out of a full store.
    pub dropped_samples: u64,
    /// 1 while every sample is kept; N after thinning: one sample in N of
    /// each CPU is kept, evenly over the run.
    pub sample_stride: u64,
    /// Events not kept because the host's cap (MAX_EVENTS) was reached:
    /// the timeline ends early, and the verdict is inconclusive.
    pub dropped_events: u64,
    /// Seqlocked reads that never got a consistent snapshot.
    pub torn_reads: u64,
    pub malformed_rings: u64,
    pub bad_events: u64,
    /// The guest published a kernel-state header the host understands.
    pub kernel_state_seen: bool,
    /// The monitor thread got a higher scheduling priority than the vCPUs.
    pub boosted: bool,
}

/// Everything the monitor collected.
#[derive(Debug, Default)]
pub struct MonitorData {
    /// Timestamps in guest TSC (converted with the learnt offset), in the
    /// order taken; one in `stats.sample_stride` per CPU when thinned.
    pub samples: Vec<CpuSample>,
    pub events: Vec<Event>,
    pub stats: MonitorStats,
    /// Guest TSC when the monitor stopped, if the offset is known.
    pub guest_tsc_at_stop: Option<u64>,
    pub header: Option<KernelStateHeader>,
    /// Every CPU's record when the monitor stopped (CPUs whose record
    /// could not be read consistently are left out).
    pub final_cpus: Vec<CpuRecord>,
    /// The live check that fired, if any.
    pub alarm: Option<Alarm>,
}

/// A running monitor thread. Dropping it stops and joins the thread.
pub struct Monitor {
    stop: Arc<AtomicBool>,
    alarm: Arc<OnceLock<Alarm>>,
    vcpu_clocks: Arc<OnceLock<Vec<libc::clockid_t>>>,
    handle: Option<JoinHandle<MonitorData>>,
}

impl Monitor {
    pub fn start(view: KstateView, cfg: MonitorConfig) -> std::io::Result<Monitor> {
        let stop = Arc::new(AtomicBool::new(false));
        let alarm = Arc::new(OnceLock::new());
        let vcpu_clocks = Arc::new(OnceLock::new());
        let (s, a, c) = (stop.clone(), alarm.clone(), vcpu_clocks.clone());
        let handle = std::thread::Builder::new()
            .name("monitor".into())
            .spawn(move || {
                let mut sampler = Sampler::new(view, cfg, a);
                sampler.vcpu_clocks = c;
                sampler.run(&s)
            })?;
        Ok(Monitor {
            stop,
            alarm,
            vcpu_clocks,
            handle: Some(handle),
        })
    }

    /// The vCPU threads' CPU-time clocks (`pthread_getcpuclockid`), by
    /// vCPU, once they exist: the policy callback budget is counted in
    /// them. Until then (and for a clock that cannot be read) no callback
    /// is called hung.
    pub fn set_vcpu_clocks(&self, clocks: Vec<libc::clockid_t>) {
        let _ = self.vcpu_clocks.set(clocks);
    }

    /// The live check that fired, if one has.
    pub fn alarm(&self) -> Option<Alarm> {
        self.alarm.get().copied()
    }

    /// Stop, drain one last time, and hand over what was collected. Call
    /// after the vCPUs stopped, so the final drain sees everything.
    pub fn finish(mut self) -> MonitorData {
        self.stop.store(true, Ordering::Release);
        if let Some(h) = &self.handle {
            h.thread().unpark();
        }
        match self.handle.take().map(JoinHandle::join) {
            Some(Ok(d)) => d,
            _ => MonitorData::default(),
        }
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(h) = self.handle.take() {
            h.thread().unpark();
            let _ = h.join();
        }
    }
}

/// The monitor's reading code driven by the caller instead of its thread:
/// the same drains, sweeps, task scans and final read as a [`Monitor`],
/// over a view the caller fills, at host TSC values the caller chooses,
/// with no sleeping and no clock. It exists for the fuzzer
/// (`host/fuzz`), which plays a hostile guest: every input then replays
/// exactly, and the live checks fire when the input says time has passed.
pub struct ManualMonitor {
    sampler: Sampler,
}

impl ManualMonitor {
    pub fn new(view: KstateView, cfg: MonitorConfig) -> Self {
        let mut sampler = Sampler::new(view, cfg, Arc::new(OnceLock::new()));
        sampler.manual_tsc = Some(0);
        ManualMonitor { sampler }
    }

    /// The guest memory the monitor reads, for the caller to write into.
    pub fn view(&self) -> &KstateView {
        &self.sampler.view
    }

    /// One round of the thread's loop at host TSC `host_tsc`; `scan` also
    /// scans the task table for starved tasks.
    pub fn poll(&mut self, host_tsc: u64, scan: bool) {
        self.sampler.manual_tsc = Some(host_tsc);
        self.sampler.poll(scan);
    }

    /// The live check that fired, if any.
    pub fn alarm(&self) -> Option<Alarm> {
        self.sampler.data.alarm
    }

    /// The final drain and read, as [`Monitor::finish`] does.
    pub fn finish(mut self, host_tsc: u64) -> MonitorData {
        self.sampler.manual_tsc = Some(host_tsc);
        self.sampler.finish()
    }
}

/// vCPU threads never sleep while their guest runs, and there may be more
/// of them than host CPUs: at the default priority the sampler then waits
/// behind them and samples late or not at all, which is exactly when a
/// stall must be seen. A higher (nice -10) weight lets it run when it
/// wakes; it sleeps between sweeps, so it takes little. Needs
/// CAP_SYS_NICE; without it the monitor runs as is and says so.
fn boost_priority() -> bool {
    // SAFETY: gettid has no preconditions; setpriority only changes this
    // thread's nice value (PRIO_PROCESS with a tid is per-thread on Linux).
    unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, MONITOR_NICE) == 0
    }
}

fn rdtsc() -> u64 {
    // SAFETY: rdtsc has no memory effects; every x86-64 CPU has it.
    unsafe { core::arch::x86_64::_rdtsc() }
}

fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the timespec we pass.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// How soon to drain again after a drain that found at most `fullest`
/// events in one ring, `since_ns` after the drain before (`last`: the
/// answer then): by the time that ring would be a quarter full at the same
/// rate (a late wake-up then still has three quarters of the ring), at
/// least MIN_DRAIN_GAP_NS from now; at once (MIN_DRAIN_GAP_NS) after a
/// ring half full or more, whose real rate may be higher than what it
/// held. An empty drain doubles the last answer rather than forget it: a
/// busy guest pauses (a tick, the host), and a drain that lands in the
/// pause must not leave the next one to the sweep a millisecond later
/// (measured: 3000 events a ring at that point).
fn next_drain_in(fullest: u64, since_ns: u64, last: u64) -> u64 {
    if fullest == 0 {
        return last.saturating_mul(2);
    }
    if fullest >= EVENT_RING_ENTRIES / 2 {
        return MIN_DRAIN_GAP_NS;
    }
    let quarter = u128::from(EVENT_RING_ENTRIES / 4);
    let ns = u128::from(since_ns) * quarter / u128::from(fullest);
    u64::try_from(ns).unwrap_or(u64::MAX).max(MIN_DRAIN_GAP_NS)
}

/// Sleep until CLOCK_MONOTONIC reaches `ns` (absolute, so the period does
/// not drift by the time each sweep took), or until [`Monitor::finish`]
/// sets `stop` and unparks the thread: a run's end then waits for one
/// last drain, not for the rest of a sampling period (up to 1 ms at the
/// default rate, measured as most of `timing.stop_us`). `park_timeout`
/// waits on a futex with an absolute CLOCK_MONOTONIC deadline, so the
/// 1 ns timer slack set in `run` applies to it as to a nanosleep; an
/// early or spurious return only loops.
fn sleep_until(ns: u64, stop: &AtomicBool) {
    loop {
        let now = monotonic_ns();
        if now >= ns || stop.load(Ordering::Acquire) {
            return;
        }
        std::thread::park_timeout(std::time::Duration::from_nanos(ns - now));
    }
}

/// The thread's state.
struct Sampler {
    view: KstateView,
    cfg: MonitorConfig,
    alarm: Arc<OnceLock<Alarm>>,
    drain: EventDrain,
    samples: SampleStore,
    data: MonitorData,
    clock: GuestClock,
    stalls: StallDetector,
    /// The longest any CPU went without its timer so far: time the host
    /// took, which a wait is allowed beyond its limit (see `scan_tasks`).
    lag: analysis::ClockLag,
    /// All the time the host took from each CPU, to allow a wait exactly
    /// what was taken while it lasted (see `lost`).
    lost: lost::LostTime,
    budget: Option<BudgetWatch>,
    /// See [`Monitor::set_vcpu_clocks`].
    vcpu_clocks: Arc<OnceLock<Vec<libc::clockid_t>>>,
    first_sweep: Option<Instant>,
    last_sweep: Option<Instant>,
    /// Set by [`ManualMonitor`]: the host TSC to use instead of rdtsc.
    manual_tsc: Option<u64>,
}

impl Sampler {
    fn new(view: KstateView, cfg: MonitorConfig, alarm: Arc<OnceLock<Alarm>>) -> Self {
        let mut data = MonitorData::default();
        data.stats.sample_hz_requested = cfg.sample_hz;
        Sampler {
            drain: EventDrain::new(cfg.cpus, MAX_EVENTS),
            samples: SampleStore::new(cfg.cpus, MAX_SAMPLES),
            stalls: StallDetector::new(cfg.cpus, cfg.stall_threshold_ns, cfg.tsc_khz),
            lost: lost::LostTime::new(
                cfg.cpus,
                analysis::ns_to_ticks(1_000_000_000 / u64::from(cfg.tick_hz.max(1)), cfg.tsc_khz),
            ),
            budget: cfg
                .policy_budget_ns
                .map(|b| BudgetWatch::new(cfg.cpus, b, cfg.tsc_khz)),
            vcpu_clocks: Arc::new(OnceLock::new()),
            view,
            cfg,
            alarm,
            data,
            clock: GuestClock::default(),
            lag: analysis::ClockLag::default(),
            first_sweep: None,
            last_sweep: None,
            manual_tsc: None,
        }
    }

    fn run(mut self, stop: &AtomicBool) -> MonitorData {
        // The default 50 µs timer slack would cap the rate near 20 kHz.
        // SAFETY: PR_SET_TIMERSLACK only changes this thread's timer slack.
        unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong) };
        self.data.stats.boosted = boost_priority();
        let period = match self.cfg.sample_hz {
            0 => DRAIN_ONLY_PERIOD_NS,
            hz => 1_000_000_000 / u64::from(hz),
        };
        let scan_period = self.cfg.max_wait_ns.map_or(TASK_SCAN_MAX_NS, |w| {
            (w / TASK_SCANS_PER_MAX_WAIT).clamp(TASK_SCAN_MIN_NS, TASK_SCAN_MAX_NS)
        });
        let mut next = monotonic_ns();
        let mut next_scan = next;
        let mut drained = next;
        let mut gap = u64::MAX;
        while !stop.load(Ordering::Acquire) {
            let now = monotonic_ns();
            if now >= next {
                let scan = now >= next_scan;
                if self.poll(scan) && scan {
                    next_scan = now + scan_period;
                }
                next += period;
                if now > next + MAX_LAG_NS {
                    // Far behind (the host was busy): give the missed
                    // sweeps up rather than burst; the achieved rate shows
                    // the shortfall.
                    next = now;
                }
            } else {
                self.drain_rings();
            }
            let now = monotonic_ns();
            gap = next_drain_in(self.drain.fullest, now.saturating_sub(drained), gap);
            drained = now;
            let wake = next.min(now.saturating_add(gap));
            if wake > now {
                sleep_until(wake, stop);
            }
            // Else slightly late (a slow wake-up): sweep again at once, so
            // wake-up jitter does not cost sweeps. Each sample carries its
            // own timestamp, so uneven spacing is harmless.
        }
        self.finish()
    }

    /// One round of reading: drain the event rings and, when sampling,
    /// sweep the CPU records and (if `scan`) the task table. Returns
    /// whether the task table was scanned.
    fn poll(&mut self, scan: bool) -> bool {
        if !self.drain_rings() || self.cfg.sample_hz == 0 {
            return false;
        }
        self.sweep();
        if scan {
            self.scan_tasks();
        }
        scan
    }

    /// Drain the event rings, once the guest has published its kernel
    /// state; whether it has.
    fn drain_rings(&mut self) -> bool {
        if !self.published() {
            return false;
        }
        self.drain.drain(&self.view, &mut self.data.events);
        true
    }

    /// The host TSC: the real one, or the caller's (see [`ManualMonitor`]).
    fn host_tsc(&self) -> u64 {
        self.manual_tsc.unwrap_or_else(rdtsc)
    }

    /// Whether the guest has published a kernel state this host reads.
    fn published(&mut self) -> bool {
        if self.data.stats.kernel_state_seen {
            return true;
        }
        let magic = self.view.load_u32(0, Ordering::Acquire);
        let version = self.view.load_u32(4, Ordering::Acquire);
        let ok = magic == Some(KSTATE_MAGIC) && version == Some(KSTATE_VERSION);
        self.data.stats.kernel_state_seen = ok;
        ok
    }

    fn sweep(&mut self) {
        let now = Instant::now();
        self.first_sweep.get_or_insert(now);
        self.last_sweep = Some(now);
        self.data.stats.sweeps += 1;
        for cpu in 0..self.cfg.cpus {
            let host_tsc = self.host_tsc();
            let r = match seqlock::cpu_record(&self.view, cpu) {
                Ok(r) => r,
                Err(_) => {
                    self.data.stats.torn_reads += 1;
                    continue;
                }
            };
            if r.online == 0 {
                continue;
            }
            self.clock.observe(host_tsc, r.clock_tsc);
            self.lost.observe(cpu, r.irq_tsc, r.live_tsc);
            // Host TSC for now (the detector only compares samples with
            // each other); converted to guest TSC at the end, once the
            // offset estimate is at its best.
            let sample = CpuSample {
                cpu,
                ..CpuSample::from_record(host_tsc, &r)
            };
            if let Some(now) = self.clock.guest(host_tsc) {
                self.lag.observe(&sample, now);
            }
            // A clock of 0 has not started yet: nothing to judge.
            let stall = (r.clock_tsc != 0)
                .then(|| self.stalls.observe(&sample))
                .flatten();
            if let Some((cpu, pid, stalled_ns)) = stall {
                self.raise(Alarm::Stall {
                    cpu,
                    pid,
                    stalled_ns,
                });
            }
            if let Some(a) = self.check_budget(cpu, host_tsc, r.current_pid) {
                self.raise(a);
            }
            self.samples.push(sample);
        }
    }

    /// A policy callback on `cpu` past its budget (see [`budget`]).
    fn check_budget(&mut self, cpu: u32, host_tsc: u64, pid: u32) -> Option<Alarm> {
        let budget_ns = self.cfg.policy_budget_ns?;
        let watch = self.budget.as_mut()?;
        let (manual, khz, clocks) = (self.manual_tsc, self.cfg.tsc_khz, &self.vcpu_clocks);
        // The manual monitor has no vCPU threads: its vCPUs run all the
        // time the caller says passes.
        let cpu_ns = || match manual {
            Some(t) => Some(live::ticks_to_ns(t, khz)),
            None => clocks
                .get()?
                .get(cpu as usize)
                .and_then(|&c| budget::thread_cpu_ns(c)),
        };
        let o = watch.observe(&self.view, cpu, self.clock.guest(host_tsc), cpu_ns)?;
        Some(Alarm::PolicyHung {
            cpu,
            pid,
            callback: o.callback,
            cpu_ns: o.cpu_ns,
            elapsed_ns: o.elapsed_ns,
            budget_ns,
        })
    }

    fn scan_tasks(&mut self) {
        let Some(limit) = self.cfg.max_wait_ns else {
            return;
        };
        let Some(now) = self.clock.guest(self.host_tsc()) else {
            return;
        };
        // A host that froze a vCPU (or delivered its timer late) made
        // every task queued there wait as long, through no fault of the
        // policy: the alarm allows that much beyond the limit -- the
        // longest lag, or all a CPU lost while the task waited if more.
        let lag = self.lag.ticks();
        for slot in 0..MAX_TASKS as u32 {
            // One load per slot first: only a runnable task can be starved,
            // and most slots are free or running or blocked.
            let state = self.view.load_u32(
                kstate_off(task_record_addr(slot)) + TASK_STATE_OFFSET,
                Ordering::Relaxed,
            );
            if state != Some(TASK_RUNNABLE) {
                continue;
            }
            match seqlock::task_record(&self.view, slot) {
                Ok(t) => {
                    let lost = self.lost.since(t.runnable_since_tsc, now);
                    let allowance = live::ticks_to_ns(lag.max(lost), self.cfg.tsc_khz);
                    if let Some(a) = live::starved(&t, now, limit, allowance, self.cfg.tsc_khz) {
                        self.raise(a);
                        return;
                    }
                }
                Err(_) => self.data.stats.torn_reads += 1,
            }
        }
    }

    /// Only the first alarm counts: it is what ends the run.
    fn raise(&mut self, a: Alarm) {
        if self.alarm.set(a).is_ok() {
            self.data.alarm = Some(a);
        }
    }

    fn finish(mut self) -> MonitorData {
        // The vCPUs are stopped: whatever they published is final.
        self.drain.drain(&self.view, &mut self.data.events);
        let stop_tsc = self.host_tsc();
        let d = &mut self.data;
        let s = &mut d.stats;
        let DrainStats {
            events,
            malformed_rings,
            bad_events,
            dropped,
        } = self.drain.stats;
        s.events = events;
        s.malformed_rings = malformed_rings;
        s.bad_events = bad_events;
        s.dropped_events = dropped;
        s.lost_events = self.drain.guest_lost(&self.view);
        s.ring_wait_ns = self.drain.guest_waited(&self.view);
        s.dropped_samples = self.samples.not_kept();
        s.sample_stride = self.samples.stride();
        s.dropped_host = dropped + s.dropped_samples;
        d.samples = self.samples.take();
        s.samples = d.samples.len() as u64;
        if let (Some(a), Some(b)) = (self.first_sweep, self.last_sweep) {
            let secs = b.duration_since(a).as_secs_f64();
            if s.sweeps > 1 && secs > 0.0 {
                s.sample_hz_achieved = (s.sweeps - 1) as f64 / secs;
            }
        }
        if let Some(off) = self.clock.offset() {
            for smp in &mut d.samples {
                smp.tsc = smp.tsc.wrapping_add(off as u64);
            }
        }
        d.guest_tsc_at_stop = self.clock.guest(stop_tsc);
        d.header = read_header(&self.view);
        if d.header.is_some() {
            d.final_cpus = (0..self.cfg.cpus)
                .filter_map(|c| seqlock::cpu_record(&self.view, c).ok())
                .collect();
        }
        self.data
    }
}

fn read_header(v: &KstateView) -> Option<KernelStateHeader> {
    let mut w = [0u64; size_of::<KernelStateHeader>() / 8];
    if !v.copy_words(0, &mut w) {
        return None;
    }
    let h: KernelStateHeader = zerocopy::transmute!(w);
    (h.magic == KSTATE_MAGIC).then_some(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drains_come_sooner_the_faster_a_ring_fills() {
        let q = EVENT_RING_ENTRIES / 4;
        // A quarter of a ring in 1 ms: the next drain in 1 ms.
        assert_eq!(next_drain_in(q, 1_000_000, u64::MAX), 1_000_000);
        // Twice the rate: half the time.
        assert_eq!(next_drain_in(2 * q, 1_000_000, u64::MAX), MIN_DRAIN_GAP_NS);
        assert_eq!(next_drain_in(q / 2, 1_000_000, u64::MAX), 2_000_000);
        // Never sooner than the floor; an empty drain backs off from the
        // last answer instead of waiting for the sweep.
        assert_eq!(next_drain_in(q, 1_000, u64::MAX), MIN_DRAIN_GAP_NS);
        assert_eq!(next_drain_in(0, 1_000_000, 300_000), 600_000);
        assert_eq!(next_drain_in(0, 1_000_000, u64::MAX), u64::MAX);
    }
    use abi::kstate::{KSTATE_END, TASK_RUNNABLE, TaskRecord, cpu_record_addr, task_record_addr};
    use seqlock::to_words;
    use view::kstate_off;

    fn guest() -> KstateView {
        let v = KstateView::synthetic(KSTATE_END);
        v.store_u32(0, KSTATE_MAGIC, Ordering::Release);
        v.store_u32(4, KSTATE_VERSION, Ordering::Release);
        v
    }

    fn cfg(sample_hz: u32) -> MonitorConfig {
        MonitorConfig {
            cpus: 2,
            sample_hz,
            tsc_khz: crate::vm::machine::measure_tsc_khz(),
            stall_threshold_ns: 30_000_000,
            max_wait_ns: Some(20_000_000),
            tick_hz: 1000,
            policy_budget_ns: None,
        }
    }

    fn put_cpu(v: &KstateView, r: CpuRecord) {
        let w: [u64; seqlock::CPU_WORDS] = to_words(&r);
        v.write_words(kstate_off(cpu_record_addr(r.cpu)), &w);
    }

    #[test]
    fn samples_at_the_requested_rate_and_finds_a_stalled_cpu() {
        let v = guest();
        // CPU 1's clock is frozen while it runs pid 4; CPU 0 is not online
        // (an offline CPU is not stalled).
        for cpu in 1..2 {
            put_cpu(
                &v,
                CpuRecord {
                    cpu,
                    current_pid: 3 + cpu,
                    clock_tsc: rdtsc(),
                    online: 1,
                    ..Default::default()
                },
            );
        }
        let m = Monitor::start(v, cfg(2000)).unwrap();
        let t = Instant::now();
        while m.alarm().is_none() && t.elapsed().as_secs() < 5 {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let d = m.finish();
        match d.alarm {
            Some(Alarm::Stall {
                cpu: 1,
                pid: 4,
                stalled_ns,
            }) => assert!(stalled_ns > 30_000_000, "{stalled_ns}"),
            other => panic!("expected a stall, got {other:?}"),
        }
        assert!(d.stats.kernel_state_seen);
        assert!(d.stats.sweeps > 10, "{:?}", d.stats);
        assert_eq!(d.stats.samples, d.samples.len() as u64);
        assert!(d.stats.sample_hz_achieved > 500.0, "{:?}", d.stats);
    }

    #[test]
    fn a_task_waiting_past_max_wait_is_starved() {
        let v = guest();
        let now = rdtsc();
        put_cpu(
            &v,
            CpuRecord {
                cpu: 0,
                current_pid: 2,
                clock_tsc: now,
                // Its timer stamp never falls behind a sample: no time the
                // host took, so no allowance beyond the limit (a record
                // this test cannot keep ticking).
                irq_tsc: u64::MAX,
                online: 1,
                ..Default::default()
            },
        );
        let t = TaskRecord {
            seq: 2,
            pid: 7,
            state: TASK_RUNNABLE,
            cpu: 0,
            runnable_since_tsc: now,
            ..Default::default()
        };
        let w: [u64; 16] = to_words(&t);
        v.write_words(kstate_off(task_record_addr(5)), &w);
        let m = Monitor::start(
            v,
            MonitorConfig {
                stall_threshold_ns: 10_000_000_000,
                ..cfg(1000)
            },
        )
        .unwrap();
        let start = Instant::now();
        while m.alarm().is_none() && start.elapsed().as_secs() < 5 {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let d = m.finish();
        match d.alarm {
            Some(Alarm::Starved {
                pid: 7, waited_ns, ..
            }) => {
                assert!(waited_ns > 20_000_000, "{waited_ns}")
            }
            other => panic!("expected starvation, got {other:?}"),
        }
    }

    #[test]
    fn nothing_is_read_before_the_guest_publishes_and_off_means_off() {
        let v = KstateView::synthetic(KSTATE_END);
        let m = Monitor::start(v, cfg(5000)).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let d = m.finish();
        assert!(!d.stats.kernel_state_seen);
        assert_eq!((d.stats.sweeps, d.samples.len()), (0, 0));
        let m = Monitor::start(guest(), cfg(0)).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let d = m.finish();
        assert!(d.stats.kernel_state_seen);
        assert_eq!(d.stats.sweeps, 0, "--sample-hz 0 takes no samples");
        assert!(d.alarm.is_none());
    }

    /// The same code without the thread: time passes when the caller says.
    #[test]
    fn a_manual_monitor_finds_a_stall_at_the_times_it_is_given() {
        let khz = 1_000_000; // 1 tick = 1 ns
        let m = ManualMonitor::new(
            guest(),
            MonitorConfig {
                cpus: 1,
                sample_hz: 1000,
                tsc_khz: khz,
                stall_threshold_ns: 10_000,
                max_wait_ns: None,
                tick_hz: 1000,
                policy_budget_ns: None,
            },
        );
        put_cpu(
            m.view(),
            CpuRecord {
                cpu: 0,
                current_pid: 4,
                clock_tsc: 1_000,
                online: 1,
                ..Default::default()
            },
        );
        let mut m = m;
        for t in [2_000, 7_000, 12_000] {
            m.poll(t, false);
            assert_eq!(m.alarm(), None, "frozen for {} ns", t - 2_000);
        }
        m.poll(12_001, false);
        assert_eq!(
            m.alarm(),
            Some(Alarm::Stall {
                cpu: 0,
                pid: 4,
                stalled_ns: 10_001
            })
        );
        let d = m.finish(13_000);
        assert_eq!((d.stats.sweeps, d.samples.len()), (4, 4));
        assert_eq!(d.guest_tsc_at_stop, Some(13_000 - 1_000));
    }

    /// A guest that writes garbage all over its kernel state: the monitor
    /// must neither panic nor hang nor keep more than its caps.
    #[test]
    fn garbage_kernel_state_is_survived() {
        let v = KstateView::synthetic(KSTATE_END);
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let words = KSTATE_END / 8;
        let mut w = vec![0u64; words as usize];
        for slot in &mut w {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *slot = x;
        }
        v.write_words(0, &w);
        v.store_u32(0, KSTATE_MAGIC, Ordering::Release);
        v.store_u32(4, KSTATE_VERSION, Ordering::Release);
        let m = Monitor::start(
            v,
            MonitorConfig {
                cpus: 64,
                ..cfg(5000)
            },
        )
        .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(30));
        let d = m.finish();
        assert!(d.stats.sweeps > 0);
        assert!(d.events.len() <= MAX_EVENTS && d.samples.len() <= MAX_SAMPLES);
        assert!(
            d.stats.malformed_rings > 0 || d.stats.bad_events > 0,
            "garbage rings are noticed: {:?}",
            d.stats
        );
    }
}
