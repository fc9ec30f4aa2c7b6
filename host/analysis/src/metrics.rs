//! [`analyze`]: replay the events in TSC order and measure.
//!
//! The replay keeps two views that the guest's events should agree on: what
//! each CPU is running (for utilisation) and what state each task is in
//! (for runtime and waits). They are kept separately, so that when events
//! were lost and the two disagree, CPU time is still attributed to the
//! CPU and task time to the task, and the disagreement is counted as an
//! anomaly instead of corrupting both.

use crate::{
    CpuMetrics, CpuSample, Latency, Metrics, TaskMeta, TaskMetrics, Timeline, ticks_to_ns,
};
use abi::kstate::{
    EV_EXIT, EV_MIGRATE, EV_SPAWN, EV_SWITCH, EV_WAKEUP, Event, PREV_BLOCKED, PREV_EXITED,
    PREV_IDLE, PREV_PREEMPTED, PREV_YIELDED,
};
use std::collections::HashMap;

/// Nearest-rank percentile `p` (0..=100) of `sorted` (ascending): the
/// smallest value with at least `p` % of the values at or below it. 0 for
/// an empty slice.
pub fn percentile(sorted: &[u64], p: u32) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let n = sorted.len() as u64;
    let rank = (u64::from(p.min(100)) * n).div_ceil(100).max(1);
    sorted[(rank - 1) as usize]
}

/// Each task's entitled share of the judged tasks' total CPU time.
///
/// Weighted max-min fairness (water-filling): capacity is `cpus` CPUs for
/// the whole window, handed out in proportion to weight, except that no
/// task can use more than one CPU (a task is one thread) nor more than
/// its affinity allows. A task whose proportional slice exceeds its cap is
/// fixed at the cap and the rest is shared again among the others. The
/// allocations are then normalised to sum to 1, because the share they are
/// compared with is of the judged tasks' runtime, not of the machine:
/// 2 tasks on 4 CPUs are each entitled to 1/2 of what the judged tasks got,
/// not 1/4 of the machine.
///
/// This assumes the judged tasks are runnable for the whole window (CPU
/// hogs); a task that sleeps will look like it got less than its due.
pub fn entitled_shares(cpus: u32, tasks: &[TaskMeta]) -> Vec<f64> {
    let n = tasks.len();
    let mut alloc = vec![0.0f64; n];
    if n == 0 {
        return alloc;
    }
    let cpus = cpus.max(1);
    let cap = |t: &TaskMeta| -> f64 {
        let allowed = if t.affinity_cpus == 0 {
            cpus
        } else {
            t.affinity_cpus.min(cpus)
        };
        f64::from(allowed.min(1))
    };
    let weight = |t: &TaskMeta| f64::from(t.weight.max(1));
    let mut active: Vec<usize> = (0..n).collect();
    let mut remaining = f64::from(cpus);
    while !active.is_empty() && remaining > 0.0 {
        let wsum: f64 = active.iter().map(|&i| weight(&tasks[i])).sum();
        let (capped, free): (Vec<usize>, Vec<usize>) = active
            .iter()
            .copied()
            .partition(|&i| remaining * weight(&tasks[i]) / wsum >= cap(&tasks[i]));
        if capped.is_empty() {
            for &i in &active {
                alloc[i] = remaining * weight(&tasks[i]) / wsum;
            }
            break;
        }
        for &i in &capped {
            alloc[i] = cap(&tasks[i]);
            remaining -= alloc[i];
        }
        active = free;
    }
    let total: f64 = alloc.iter().sum();
    if total > 0.0 {
        for a in &mut alloc {
            *a /= total;
        }
    }
    alloc
}

/// Ticks of `[a, b]` that fall inside `[start, end]`.
fn clip(a: u64, b: u64, start: u64, end: u64) -> u64 {
    b.min(end).saturating_sub(a.max(start))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Not seen yet (or its last state was lost).
    Unknown,
    Running {
        cpu: u32,
        since: u64,
        /// The CPU's cumulative steal time (ns) at the switch-in.
        steal: u64,
    },
    /// Runnable, not running; `queued` = the CPU whose queue holds it.
    Waiting {
        since: u64,
        queued: Option<u32>,
    },
    Blocked,
    Exited,
}

#[derive(Debug)]
struct TaskState {
    phase: Phase,
    /// TSC of a wake-up not yet followed by a switch-in.
    wake_pending: Option<u64>,
    runtime: u64,
    max_wait: u64,
    total_wait: u64,
    wakeups: u64,
    /// Wake-up latencies in ticks.
    latencies: Vec<u64>,
    switches: u64,
    migrations: u64,
}

impl TaskState {
    fn new() -> Self {
        TaskState {
            phase: Phase::Unknown,
            wake_pending: None,
            runtime: 0,
            max_wait: 0,
            total_wait: 0,
            wakeups: 0,
            latencies: Vec::new(),
            switches: 0,
            migrations: 0,
        }
    }
}

#[derive(Debug, Default)]
struct CpuState {
    /// None until the first switch event on this CPU; Some(0) = idle.
    current: Option<u32>,
    since: u64,
    busy: u64,
    switches: u64,
    /// Queue length reconstructed from events, integrated over time.
    rq: u32,
    rq_since: u64,
    rq_area: u128,
    rq_max: u32,
    /// Cumulative steal time (ns) in this CPU's latest event.
    steal: u64,
}

struct Replay {
    start: u64,
    end: u64,
    khz: u64,
    cpus: Vec<CpuState>,
    tasks: HashMap<u32, TaskState>,
    anomalies: u64,
    switches: u64,
    migrations: u64,
}

impl Replay {
    fn in_window(&self, t: u64) -> bool {
        self.start <= t && t <= self.end
    }

    /// CPU time of a run from `since` to `t`, clipped to the window, less
    /// the time the host did not run the vCPU meanwhile (the steal-time
    /// stamps of the two events): with more vCPUs than host cores, wall
    /// time while switched in is not CPU time received.
    fn run_time(&self, since: u64, t: u64, steal_in: u64, steal_out: u64) -> u64 {
        let clipped = clip(since, t, self.start, self.end);
        let raw = t.saturating_sub(since);
        if raw == 0 {
            return clipped;
        }
        let stolen = crate::ns_to_ticks(steal_out.saturating_sub(steal_in), self.khz).min(raw);
        clipped - (u128::from(stolen) * u128::from(clipped) / u128::from(raw)) as u64
    }

    /// Integrate CPU `cpu`'s queue length up to `t`, then change it.
    fn rq_change(&mut self, cpu: u32, t: u64, delta: i32) {
        let (start, end) = (self.start, self.end);
        let Some(c) = self.cpus.get_mut(cpu as usize) else {
            return;
        };
        let d = clip(c.rq_since, t, start, end);
        c.rq_area += u128::from(c.rq) * u128::from(d);
        if d > 0 {
            c.rq_max = c.rq_max.max(c.rq);
        }
        c.rq_since = c.rq_since.max(t);
        c.rq = c.rq.saturating_add_signed(delta);
        // A value set at or after the window opens counts for the max even
        // if it lasts no time at all (e.g. it changes again at the same TSC
        // or the window ends there).
        if (start..=end).contains(&t) {
            c.rq_max = c.rq_max.max(c.rq);
        }
    }

    fn task(&mut self, pid: u32) -> &mut TaskState {
        self.tasks.entry(pid).or_insert_with(TaskState::new)
    }

    fn add_runtime(&mut self, pid: u32, ticks: u64) {
        let ts = self.task(pid);
        ts.runtime = ts.runtime.saturating_add(ticks);
    }

    /// `pid` becomes runnable at `t`, queued on `queued`. A task already
    /// waiting keeps its earliest start (spawn followed by a wake-up is one
    /// wait), but follows the queue it was moved to.
    fn start_wait(&mut self, pid: u32, t: u64, queued: Option<u32>) {
        let phase = self.task(pid).phase;
        match phase {
            Phase::Waiting { since, queued: old } => {
                if old != queued {
                    if let Some(c) = old {
                        self.rq_change(c, t, -1);
                    }
                    if let Some(c) = queued {
                        self.rq_change(c, t, 1);
                    }
                }
                self.task(pid).phase = Phase::Waiting { since, queued };
            }
            _ => {
                if let Some(c) = queued {
                    self.rq_change(c, t, 1);
                }
                self.task(pid).phase = Phase::Waiting { since: t, queued };
            }
        }
    }

    /// Close a wait at `t` (switch-in or exit).
    fn end_wait(&mut self, pid: u32, t: u64) {
        let (start, end) = (self.start, self.end);
        if let Phase::Waiting { since, queued } = self.task(pid).phase {
            let d = clip(since, t, start, end);
            let ts = self.task(pid);
            ts.max_wait = ts.max_wait.max(d);
            ts.total_wait = ts.total_wait.saturating_add(d);
            if let Some(c) = queued {
                self.rq_change(c, t, -1);
            }
        }
    }

    fn queue_cpu(&self, cpu: u32) -> Option<u32> {
        ((cpu as usize) < self.cpus.len()).then_some(cpu)
    }

    fn event(&mut self, e: &Event) {
        if let Some(c) = self.cpus.get_mut(usize::from(e.cpu)) {
            c.steal = c.steal.max(e.steal_ns);
        }
        match e.kind {
            EV_SWITCH => self.switch(e),
            EV_WAKEUP => self.wakeup(e),
            EV_MIGRATE => self.migrate(e),
            EV_SPAWN => self.spawn(e),
            EV_EXIT => self.exit(e),
            _ => self.anomalies += 1,
        }
    }

    fn switch(&mut self, e: &Event) {
        let (t, cpu, next, prev, why) = (e.tsc, u32::from(e.cpu), e.pid, e.arg, e.arg2);
        let (start, end) = (self.start, self.end);
        if cpu as usize >= self.cpus.len() {
            self.anomalies += 1;
            return;
        }
        let in_window = self.in_window(t);

        // The CPU's view. The first switch on a CPU tells who ran before
        // it: assume that since the window opened (the trace usually
        // starts mid-run, so this is not an anomaly).
        let c = &mut self.cpus[cpu as usize];
        let first_on_cpu = c.current.is_none();
        match c.current {
            Some(cur) => {
                if cur != prev {
                    self.anomalies += 1;
                }
                if cur != 0 {
                    c.busy = c.busy.saturating_add(clip(c.since, t, start, end));
                }
            }
            None => {
                if prev != 0 {
                    c.busy = c.busy.saturating_add(clip(start, t, start, end));
                }
            }
        }
        // Segments never start before the last one ended, so busy time
        // cannot be counted twice even if the TSC went backwards.
        c.since = c.since.max(t);
        c.current = Some(next);
        if in_window {
            c.switches += 1;
            self.switches += 1;
        }

        // The outgoing task's view.
        if prev != 0 {
            match self.task(prev).phase {
                Phase::Running {
                    cpu: on,
                    since,
                    steal,
                } => {
                    if on != cpu {
                        self.anomalies += 1;
                    }
                    let ran = self.run_time(since, t, steal, e.steal_ns);
                    self.add_runtime(prev, ran);
                }
                Phase::Unknown if first_on_cpu => {
                    self.add_runtime(prev, clip(start, t, start, end));
                }
                Phase::Waiting { .. } => {
                    // Switched out while we thought it queued: its
                    // switch-in was lost. Its wait ended somewhere before.
                    self.anomalies += 1;
                    self.end_wait(prev, t);
                }
                // Switch-out without switch-in.
                _ => self.anomalies += 1,
            }
            match why {
                PREV_PREEMPTED | PREV_YIELDED => {
                    self.task(prev).phase = Phase::Unknown;
                    let q = self.queue_cpu(cpu);
                    self.start_wait(prev, t, q);
                }
                PREV_BLOCKED => self.task(prev).phase = Phase::Blocked,
                PREV_EXITED => {
                    let ts = self.task(prev);
                    ts.phase = Phase::Exited;
                    ts.wake_pending = None;
                }
                _ => {
                    self.anomalies += 1;
                    self.task(prev).phase = Phase::Unknown;
                }
            }
        } else if why > PREV_IDLE {
            self.anomalies += 1;
        }

        // The incoming task's view.
        if next != 0 {
            match self.task(next).phase {
                Phase::Running { since, steal, .. } => {
                    // Switched in twice without a switch-out: it ran
                    // until now somewhere.
                    self.anomalies += 1;
                    let ran = self.run_time(since, t, steal, e.steal_ns);
                    self.add_runtime(next, ran);
                }
                Phase::Waiting { .. } => self.end_wait(next, t),
                Phase::Blocked | Phase::Exited => self.anomalies += 1,
                Phase::Unknown => {}
            }
            let ts = self.task(next);
            if let Some(w) = ts.wake_pending.take()
                && (start..=end).contains(&w)
            {
                ts.latencies.push(t.saturating_sub(w));
            }
            ts.phase = Phase::Running {
                cpu,
                since: t,
                steal: e.steal_ns,
            };
            if in_window {
                ts.switches += 1;
            }
        }
    }

    fn wakeup(&mut self, e: &Event) {
        let (t, pid) = (e.tsc, e.pid);
        if pid == 0 {
            self.anomalies += 1;
            return;
        }
        let in_window = self.in_window(t);
        let q = self.queue_cpu(e.arg);
        let ts = self.task(pid);
        if in_window {
            ts.wakeups += 1;
        }
        if let Phase::Running { .. } = ts.phase {
            // Woken while on a CPU: nothing to wait for.
            self.anomalies += 1;
            return;
        }
        if ts.wake_pending.is_none() {
            ts.wake_pending = Some(t);
        }
        self.start_wait(pid, t, q);
    }

    fn spawn(&mut self, e: &Event) {
        let (t, pid) = (e.tsc, e.pid);
        if pid == 0 {
            self.anomalies += 1;
            return;
        }
        match self.task(pid).phase {
            // A pid may be reused once its task has exited.
            Phase::Unknown | Phase::Exited => {}
            _ => self.anomalies += 1,
        }
        if let Phase::Running { .. } = self.task(pid).phase {
            return;
        }
        // Spawned tasks are queued on the CPU that created them.
        let q = self.queue_cpu(u32::from(e.cpu));
        self.start_wait(pid, t, q);
    }

    fn migrate(&mut self, e: &Event) {
        let (t, pid, to) = (e.tsc, e.pid, e.arg2);
        if pid == 0 {
            self.anomalies += 1;
            return;
        }
        if e.arg as usize >= self.cpus.len() || to as usize >= self.cpus.len() {
            self.anomalies += 1;
        }
        if self.in_window(t) {
            self.migrations += 1;
            self.task(pid).migrations += 1;
        }
        if let Phase::Waiting { .. } = self.task(pid).phase {
            let q = self.queue_cpu(to);
            self.start_wait(pid, t, q);
        }
    }

    fn exit(&mut self, e: &Event) {
        let (t, pid) = (e.tsc, e.pid);
        if pid == 0 {
            self.anomalies += 1;
            return;
        }
        match self.task(pid).phase {
            // The switch-out (PREV_EXITED) ends the running stretch.
            Phase::Running { .. } => {}
            Phase::Waiting { .. } => {
                // Killed while queued.
                self.end_wait(pid, t);
                self.task(pid).phase = Phase::Exited;
            }
            _ => self.task(pid).phase = Phase::Exited,
        }
        self.task(pid).wake_pending = None;
    }

    /// Close everything still open at the end of the window: running
    /// stretches count as runtime, waits as (unfinished) waits.
    fn finish(&mut self) {
        let (start, end) = (self.start, self.end);
        let pids: Vec<u32> = self.tasks.keys().copied().collect();
        for pid in pids {
            match self.task(pid).phase {
                Phase::Running { cpu, since, steal } => {
                    let last = self.cpus.get(cpu as usize).map_or(steal, |c| c.steal);
                    let ran = self.run_time(since, end, steal, last);
                    self.add_runtime(pid, ran);
                }
                Phase::Waiting { since, .. } => {
                    let d = clip(since, end, start, end);
                    let ts = self.task(pid);
                    ts.max_wait = ts.max_wait.max(d);
                    ts.total_wait = ts.total_wait.saturating_add(d);
                }
                _ => {}
            }
        }
        for c in &mut self.cpus {
            if let Some(cur) = c.current
                && cur != 0
            {
                c.busy = c.busy.saturating_add(clip(c.since, end, start, end));
            }
            let d = clip(c.rq_since, end, start, end);
            c.rq_area += u128::from(c.rq) * u128::from(d);
            if d > 0 {
                c.rq_max = c.rq_max.max(c.rq);
            }
        }
    }
}

/// Count events whose TSC is lower than the previous event from the same
/// CPU in the order given: each CPU's ring is written in time order, so
/// this means a broken clock or a corrupted ring (merging CPUs in any
/// order is fine and not counted).
fn backwards_events(events: &[Event]) -> u64 {
    let mut last: HashMap<u16, u64> = HashMap::new();
    let mut n = 0;
    for e in events {
        if let Some(&l) = last.get(&e.cpu)
            && e.tsc < l
        {
            n += 1;
        }
        last.insert(e.cpu, e.tsc);
    }
    n
}

/// Measure a run. See [`Metrics`] for what each number means; the module
/// docs say how disagreements in the data are handled.
pub fn analyze(t: &Timeline, samples: &[CpuSample]) -> Metrics {
    let mut anomalies = 0u64;
    let start = t.start_tsc;
    let end = if t.end_tsc >= t.start_tsc {
        t.end_tsc
    } else {
        anomalies += 1;
        t.start_tsc
    };
    if t.tsc_khz == 0 {
        anomalies += 1;
    }
    let khz = t.tsc_khz;
    let window = end - start;
    let ns = |ticks: u64| ticks_to_ns(ticks, khz);

    anomalies += backwards_events(&t.events);
    let mut events: Vec<&Event> = t.events.iter().collect();
    events.sort_by_key(|e| e.tsc);

    let mut r = Replay {
        start,
        end,
        khz,
        cpus: (0..t.cpus)
            .map(|_| CpuState {
                rq_since: start,
                ..CpuState::default()
            })
            .collect(),
        tasks: HashMap::new(),
        anomalies: 0,
        switches: 0,
        migrations: 0,
    };
    for e in events {
        r.event(e);
    }
    r.finish();
    anomalies += r.anomalies;

    // Judged tasks: the first entry for a pid wins.
    let mut judged: Vec<TaskMeta> = Vec::with_capacity(t.tasks.len());
    for m in &t.tasks {
        if m.pid == 0 || judged.iter().any(|j| j.pid == m.pid) {
            anomalies += 1;
        } else {
            judged.push(*m);
        }
    }
    let entitled = entitled_shares(t.cpus, &judged);
    let empty = TaskState::new();
    let states: Vec<&TaskState> = judged
        .iter()
        .map(|m| r.tasks.get(&m.pid).unwrap_or(&empty))
        .collect();
    let total_runtime: u128 = states.iter().map(|s| u128::from(s.runtime)).sum();
    let mut all_latencies = Vec::new();
    let mut max_fairness_error = 0.0f64;
    let tasks: Vec<TaskMetrics> = judged
        .iter()
        .zip(&states)
        .zip(&entitled)
        .map(|((m, s), &ent)| {
            let share = if total_runtime > 0 {
                s.runtime as f64 / total_runtime as f64
            } else {
                0.0
            };
            let fairness_error = if total_runtime > 0 && ent > 0.0 {
                share / ent - 1.0
            } else {
                0.0
            };
            max_fairness_error = max_fairness_error.max(fairness_error.abs());
            let lat: Vec<u64> = s.latencies.iter().map(|&l| ns(l)).collect();
            all_latencies.extend_from_slice(&lat);
            TaskMetrics {
                pid: m.pid,
                weight: m.weight,
                runtime_ns: ns(s.runtime),
                share,
                entitled_share: ent,
                fairness_error,
                max_wait_ns: ns(s.max_wait),
                total_wait_ns: ns(s.total_wait),
                wakeups: s.wakeups,
                wake_latency: Latency::from_ns(&lat),
                switches: s.switches,
                migrations: s.migrations,
            }
        })
        .collect();

    // Run-queue length: samples where a CPU has them, else the replay.
    let mut rq_samples: Vec<(u64, u64, u32)> = vec![(0, 0, 0); t.cpus as usize];
    for s in samples {
        match rq_samples.get_mut(s.cpu as usize) {
            Some((sum, n, max)) => {
                *sum += u64::from(s.rq_len);
                *n += 1;
                *max = (*max).max(s.rq_len);
            }
            None => anomalies += 1,
        }
    }
    let window_ns = ns(window);
    let cpus: Vec<CpuMetrics> = r
        .cpus
        .iter()
        .zip(&rq_samples)
        .enumerate()
        .map(|(i, (c, &(sum, n, max)))| {
            let (mean_rq_len, max_rq_len) = if n > 0 {
                (sum as f64 / n as f64, max)
            } else if window > 0 {
                (c.rq_area as f64 / window as f64, c.rq_max)
            } else {
                (f64::from(c.rq), c.rq_max)
            };
            let busy_ns = ns(c.busy);
            CpuMetrics {
                cpu: i as u32,
                busy_ns,
                idle_ns: window_ns.saturating_sub(busy_ns),
                utilisation: if window > 0 {
                    c.busy as f64 / window as f64
                } else {
                    0.0
                },
                switches: c.switches,
                mean_rq_len,
                max_rq_len,
            }
        })
        .collect();
    let rq_imbalance = if cpus.is_empty() {
        0.0
    } else {
        let max = cpus.iter().map(|c| c.mean_rq_len).fold(f64::MIN, f64::max);
        let min = cpus.iter().map(|c| c.mean_rq_len).fold(f64::MAX, f64::min);
        max - min
    };

    Metrics {
        tasks,
        cpus,
        wake_latency: Latency::from_ns(&all_latencies),
        max_fairness_error,
        rq_imbalance,
        switches: r.switches,
        migrations: r.migrations,
        events: t.events.len() as u64,
        lost_events: t.lost_events,
        samples: samples.len() as u64,
        window_ns,
        anomalies,
    }
}
