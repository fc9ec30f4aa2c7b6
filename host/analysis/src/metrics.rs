//! [`analyze_replay`]: measure a [`Replay`] over a window; [`analyze`]:
//! replay a [`Timeline`]'s events and measure them over its window.
//!
//! The replay does the walk through the events (and decides what lost
//! events mean); measuring is clipping what it found to the window,
//! correcting runtime for steal time, and counting, so the same replay can
//! be measured over several windows.

use crate::replay::{Replay, Run};
use crate::{
    CpuMetrics, CpuSample, Latency, Metrics, Scope, TaskMeta, TaskMetrics, Timeline, ns_to_ticks,
    ticks_to_ns,
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

/// CPU time a task got from `run`, clipped to `[start, end]` (an open run
/// ends at `end`), less the time the host did not run the vCPU meanwhile
/// (the steal-time stamps of its two ends, spread evenly over the run):
/// with more vCPUs than host cores, wall time while switched in is not CPU
/// time received. A run found already going at its CPU's first switch has
/// no switch-in stamp and counts from the window's start, uncorrected.
fn run_ticks(run: &Run, start: u64, end: u64, khz: u64) -> u64 {
    let until = run.end.unwrap_or(end);
    let Some(from) = run.start else {
        return clip(start, until, start, end);
    };
    let clipped = clip(from.tsc, until, start, end);
    let raw = until.saturating_sub(from.tsc);
    if raw == 0 {
        return clipped;
    }
    let stolen = crate::ns_to_ticks(run.end_steal_ns.saturating_sub(from.steal_ns), khz).min(raw);
    clipped - (u128::from(stolen) * u128::from(clipped) / u128::from(raw)) as u64
}

/// A judged task's numbers in ticks, summed from the replay.
#[derive(Debug, Default)]
struct TaskSums {
    runtime: u64,
    /// Runs inside the window (slices), their sum of squares and the
    /// longest, in ticks: the run's own granularity.
    slices: u64,
    slice_sq: f64,
    slice_max: u64,
    max_wait: u64,
    total_wait: u64,
    wakeups: u64,
    /// Wake-up latencies in ticks.
    latencies: Vec<u64>,
    switches: u64,
    migrations: u64,
    migrations_cross_llc: u64,
    migrations_cross_node: u64,
}

/// How many standard deviations of slice-length noise a fair run can show
/// (one-sided tail under 1e-4 per task under a normal approximation).
pub const NOISE_SIGMAS: f64 = 4.0;

/// The largest `|share / entitled - 1|` a task can show with no unfairness
/// at all, from the run's own granularity: the window's edges can cut up
/// to one slice (`quantum`: the configured slice plus a tick) off one task
/// and not another, and slices of varying length (a policy that preempts
/// on the first tick after its slice gives 1-2 ms slices for a 1 ms slice
/// and a 1 kHz tick) add `NOISE_SIGMAS` standard deviations of their sum.
/// The slice-length spread is measured but never taken above `quantum`:
/// slices longer than the policy's own are not noise but its choice.
/// Relative to the task's entitled runtime; 0 when the quantum is unknown
/// or the task is entitled to nothing.
fn fairness_noise(s: &TaskSums, quantum: u64, entitled_ticks: f64) -> f64 {
    if quantum == 0 || entitled_ticks <= 0.0 {
        return 0.0;
    }
    let n = s.slices as f64;
    let sd = if s.slices == 0 {
        0.0
    } else {
        let mean = s.runtime as f64 / n;
        (s.slice_sq / n - mean * mean).max(0.0).sqrt()
    };
    let sd = sd.min(quantum as f64);
    (quantum as f64 + NOISE_SIGMAS * sd * n.sqrt()) / entitled_ticks
}

/// A CPU's numbers in ticks, summed from the replay.
#[derive(Debug, Default)]
struct CpuSums {
    busy: u64,
    switches: u64,
    /// Queue length at the end, and integrated over the window.
    rq: u32,
    rq_area: u128,
    rq_max: u32,
}

/// Integrate a CPU's queue length over `[start, end]` from its changes.
fn rq_sums(c: &mut CpuSums, changes: &[crate::replay::RqChange], start: u64, end: u64) {
    let mut since = start;
    let add = |c: &mut CpuSums, since: u64, t: u64| {
        let d = clip(since, t, start, end);
        c.rq_area += u128::from(c.rq) * u128::from(d);
        if d > 0 {
            c.rq_max = c.rq_max.max(c.rq);
        }
    };
    for ch in changes {
        add(c, since, ch.tsc);
        since = since.max(ch.tsc);
        c.rq = c.rq.saturating_add_signed(ch.delta);
        // A value set at or after the window opens counts for the max even
        // if it lasts no time at all (e.g. it changes again at the same TSC
        // or the window ends there).
        if (start..=end).contains(&ch.tsc) {
            c.rq_max = c.rq_max.max(c.rq);
        }
    }
    add(c, since, end);
}

/// Measure a run. See [`Metrics`] for what each number means; the module
/// docs of [`crate::replay`] say how disagreements in the data are handled.
/// The same as [`analyze_replay`] of the timeline's events replayed.
pub fn analyze(t: &Timeline, samples: &[CpuSample]) -> Metrics {
    analyze_replay(&Replay::from_events(&t.events, t.cpus), &t.scope(), samples)
}

/// Measure replayed events over `scope`'s window, judging its tasks:
/// time-based numbers are clipped to the window (waits and runs still open
/// at the last event end at the window's end), counts include only events
/// inside it. `samples` give the run-queue lengths where a CPU has them.
pub fn analyze_replay(r: &Replay, scope: &Scope<'_>, samples: &[CpuSample]) -> Metrics {
    let mut anomalies = r.anomalies;
    let start = scope.start_tsc;
    let end = if scope.end_tsc >= scope.start_tsc {
        scope.end_tsc
    } else {
        anomalies += 1;
        scope.start_tsc
    };
    if scope.tsc_khz == 0 {
        anomalies += 1;
    }
    let khz = scope.tsc_khz;
    let window = end - start;
    let ns = |ticks: u64| ticks_to_ns(ticks, khz);
    let in_window = |t: u64| (start..=end).contains(&t);

    // Judged tasks: the first entry for a pid wins.
    let mut judged: Vec<TaskMeta> = Vec::with_capacity(scope.tasks.len());
    for m in scope.tasks {
        if m.pid == 0 || judged.iter().any(|j| j.pid == m.pid) {
            anomalies += 1;
        } else {
            judged.push(*m);
        }
    }

    // The tasks' view, for the judged tasks.
    let mut sums: HashMap<u32, TaskSums> = judged
        .iter()
        .map(|m| (m.pid, TaskSums::default()))
        .collect();
    for run in &r.runs {
        if let Some(s) = sums.get_mut(&run.pid) {
            let t = run_ticks(run, start, end, khz);
            s.runtime = s.runtime.saturating_add(t);
            if t > 0 {
                s.slices += 1;
                s.slice_sq += (t as f64) * (t as f64);
                s.slice_max = s.slice_max.max(t);
            }
        }
    }
    for w in &r.waits {
        if let Some(s) = sums.get_mut(&w.pid) {
            let d = clip(w.start, w.end.unwrap_or(end), start, end);
            s.max_wait = s.max_wait.max(d);
            s.total_wait = s.total_wait.saturating_add(d);
        }
    }
    for m in r.wakeups.iter().filter(|m| in_window(m.tsc)) {
        if let Some(s) = sums.get_mut(&m.pid) {
            s.wakeups += 1;
        }
    }
    for l in &r.wake_latencies {
        if let Some(w) = l.woken_off_cpu.filter(|&w| in_window(w))
            && let Some(s) = sums.get_mut(&l.pid)
        {
            s.latencies.push(l.switched_in.saturating_sub(w));
        }
    }
    let mut migrations = 0;
    let (mut cross_llc, mut cross_node) = (0, 0);
    // A CPU outside the shape (the guest's word) crosses nothing.
    let crosses = |m: &crate::replay::Migration| match scope.topology {
        Some(t) if m.from < t.cpus() && m.to < t.cpus() => (
            t.llc_of(m.from) != t.llc_of(m.to),
            t.node_of(m.from) != t.node_of(m.to),
        ),
        _ => (false, false),
    };
    for m in r.migrations.iter().filter(|m| in_window(m.tsc)) {
        let (llc, node) = crosses(m);
        migrations += 1;
        cross_llc += u64::from(llc);
        cross_node += u64::from(node);
        if let Some(s) = sums.get_mut(&m.pid) {
            s.migrations += 1;
            s.migrations_cross_llc += u64::from(llc);
            s.migrations_cross_node += u64::from(node);
        }
    }

    // The CPUs' view; a switch is the start of a segment.
    let mut cpu_sums: Vec<CpuSums> = (0..r.cpus).map(|_| CpuSums::default()).collect();
    let mut switches = 0;
    for seg in &r.segments {
        let Some(c) = cpu_sums.get_mut(seg.cpu as usize) else {
            anomalies += 1;
            continue;
        };
        if seg.pid != 0 {
            let d = clip(
                seg.start.unwrap_or(start),
                seg.end.unwrap_or(end),
                start,
                end,
            );
            c.busy = c.busy.saturating_add(d);
        }
        if seg.start.is_some_and(in_window) {
            c.switches += 1;
            switches += 1;
            if let Some(s) = sums.get_mut(&seg.pid) {
                s.switches += 1;
            }
        }
    }
    for (i, c) in cpu_sums.iter_mut().enumerate() {
        let changes = r.rq_changes.get(i).map_or(&[][..], Vec::as_slice);
        rq_sums(c, changes, start, end);
    }

    let entitled = entitled_shares(r.cpus, &judged);
    let empty = TaskSums::default();
    let states: Vec<&TaskSums> = judged
        .iter()
        .map(|m| sums.get(&m.pid).unwrap_or(&empty))
        .collect();
    let total_runtime: u128 = states.iter().map(|s| u128::from(s.runtime)).sum();
    // The longest slice a policy keeping to its slice gives: how far apart
    // the window's edges can leave two tasks that are treated alike.
    let quantum = ns_to_ticks(scope.quantum_ns, khz);
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
            let fairness_noise = fairness_noise(s, quantum, ent * total_runtime as f64);
            let lat: Vec<u64> = s.latencies.iter().map(|&l| ns(l)).collect();
            all_latencies.extend_from_slice(&lat);
            TaskMetrics {
                pid: m.pid,
                weight: m.weight,
                runtime_ns: ns(s.runtime),
                share,
                entitled_share: ent,
                fairness_error,
                fairness_noise,
                slices: s.slices,
                max_wait_ns: ns(s.max_wait),
                total_wait_ns: ns(s.total_wait),
                wakeups: s.wakeups,
                wake_latency: Latency::from_ns(&lat),
                switches: s.switches,
                migrations: s.migrations,
                migrations_cross_llc: s.migrations_cross_llc,
                migrations_cross_node: s.migrations_cross_node,
            }
        })
        .collect();

    // Run-queue length: samples where a CPU has them, else the replay.
    let mut rq_samples: Vec<(u64, u64, u32)> = vec![(0, 0, 0); r.cpus as usize];
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
    let cpus: Vec<CpuMetrics> = cpu_sums
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
        switches,
        migrations,
        migrations_cross_llc: cross_llc,
        migrations_cross_node: cross_node,
        events: r.events,
        lost_events: scope.lost_events,
        samples: samples.len() as u64,
        window_ns,
        anomalies,
    }
}
