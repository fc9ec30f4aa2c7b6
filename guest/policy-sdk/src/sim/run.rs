//! [`Sim`]: time and workloads over a [`Harness`]. A simulated clock, N
//! CPUs, tasks that spin or follow run/sleep patterns, and a tick every
//! `tick_ns` on each busy CPU, in the order the core handles them.

use super::{CpuSet, Harness, Policy, Slot, Topology};
use crate::{ENQ_NEW, ENQ_PREEMPTED, ENQ_WAKEUP};
use std::vec;
use std::vec::Vec;

/// What a simulated task does.
#[derive(Clone, Copy, Debug)]
pub enum Pattern {
    /// Always runnable.
    Spin,
    /// Run `run_ns` of CPU time, sleep `sleep_ns`, and again.
    RunSleep { run_ns: u64, sleep_ns: u64 },
    /// Run `run_ns`, sleep `sleep_ns` once, then spin.
    SleepOnce { run_ns: u64, sleep_ns: u64 },
    /// Run `run_ns` then exit.
    RunExit { run_ns: u64 },
    /// A periodic task (see [`Sim::spawn_periodic`]): a job of `run_ns`
    /// released every `period_ns` from its spawn, each due `deadline_ns`
    /// after its release; a job released while the last still runs
    /// starts when it ends.
    Periodic {
        period_ns: u64,
        run_ns: u64,
        deadline_ns: u64,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Unspawned,
    Queued,
    Running(u32),
    Sleeping { until: u64 },
    Exited,
}

/// One simulated task and what happened to it.
pub struct SimTask {
    pattern: Pattern,
    spawn_at: u64,
    state: State,
    /// CPU time left before it blocks (u64::MAX: never).
    burst_left: u64,
    slept: bool,
    pub runtime_ns: u64,
    pub ran_on: CpuSet,
    /// Times it started running.
    pub switches: u64,
    queued_since: u64,
    pub max_wait_ns: u64,
    /// Periodic tasks: release time of the current job, jobs completed,
    /// those completed past their deadline, and the longest response
    /// time (completion - release).
    release: u64,
    pub jobs: u64,
    pub misses: u64,
    pub max_response_ns: u64,
}

/// A simulation: the harness plus time and workloads.
pub struct Sim {
    pub h: Harness,
    pub tasks: Vec<SimTask>,
    pub tick_ns: u64,
    started: Vec<u64>,
    need_pick: Vec<bool>,
    /// (time, cpu, slot) for every switch-in.
    pub log: Vec<(u64, u32, Slot)>,
    pub preemptions: u64,
}

impl Sim {
    /// `policy` on `nr_cpus` CPUs with a `slice_ns` slice and a 1 ms tick;
    /// `arg` is the policy argument.
    pub fn new(policy: Policy, arg: u64, nr_cpus: u32, slice_ns: u64) -> Self {
        Self::with_topology(policy, arg, Topology::flat(nr_cpus), slice_ns)
    }

    /// As [`Sim::new`] on a machine of shape `topology`
    /// ([`Harness::with_topology`]).
    pub fn with_topology(policy: Policy, arg: u64, topology: Topology, slice_ns: u64) -> Self {
        let nr_cpus = topology.cpus();
        Sim {
            h: Harness::with_topology(policy, arg, topology, slice_ns),
            tasks: Vec::new(),
            tick_ns: 1_000_000,
            started: vec![0; nr_cpus as usize],
            need_pick: vec![false; nr_cpus as usize],
            log: Vec::new(),
            preemptions: 0,
        }
    }

    /// A task spawned at `spawn_at` (pid = slot + 1), with CPU 0 as its
    /// previous CPU (where its parent ran).
    pub fn spawn(
        &mut self,
        weight: u32,
        affinity: CpuSet,
        pattern: Pattern,
        spawn_at: u64,
    ) -> Slot {
        let slot = self.h.reserve(weight, affinity, 0);
        self.tasks.push(SimTask {
            pattern,
            spawn_at,
            state: State::Unspawned,
            burst_left: 0,
            slept: false,
            runtime_ns: 0,
            ran_on: CpuSet::EMPTY,
            switches: 0,
            queued_since: 0,
            max_wait_ns: 0,
            release: spawn_at,
            jobs: 0,
            misses: 0,
            max_response_ns: 0,
        });
        slot
    }

    /// A periodic task released at `spawn_at` and every `period_ns` after,
    /// each job `run_ns` of CPU time due `deadline_ns` after its release,
    /// with those as its real-time attributes (`priority` 0: none).
    pub fn spawn_periodic(
        &mut self,
        affinity: CpuSet,
        period_ns: u64,
        run_ns: u64,
        deadline_ns: u64,
        priority: u32,
        spawn_at: u64,
    ) -> Slot {
        let pattern = Pattern::Periodic {
            period_ns,
            run_ns,
            deadline_ns,
        };
        let s = self.spawn(1, affinity, pattern, spawn_at);
        self.h.set_rt(
            s,
            abi::ipc::RtAttrs {
                period_ns,
                runtime_ns: run_ns,
                deadline_ns,
                priority,
                reserved: 0,
            },
        );
        s
    }

    /// Jobs `s` completed and how many of them missed their deadline.
    pub fn jobs_missed(&self, s: Slot) -> (u64, u64) {
        let t = &self.tasks[s as usize];
        (t.jobs, t.misses)
    }

    /// Each of `slots` completed at least `min_jobs` jobs and missed no
    /// deadline (a test's assertion, naming the task that did not).
    pub fn assert_no_misses(&self, slots: &[Slot], min_jobs: u64) {
        for &s in slots {
            let (jobs, misses) = self.jobs_missed(s);
            assert!(jobs >= min_jobs, "task {s}: only {jobs} jobs");
            assert_eq!(misses, 0, "task {s} missed {misses} of {jobs} deadlines");
        }
    }

    /// Longest response time (completion - release) of `s`'s jobs.
    pub fn max_response(&self, s: Slot) -> u64 {
        self.tasks[s as usize].max_response_ns
    }

    /// An always-runnable task on every CPU, spawned at 0.
    pub fn spin(&mut self, weight: u32) -> Slot {
        self.spawn(weight, CpuSet::all(self.h.nr_cpus()), Pattern::Spin, 0)
    }

    fn burst(p: Pattern, slept: bool) -> u64 {
        match p {
            Pattern::Spin => u64::MAX,
            Pattern::SleepOnce { .. } if slept => u64::MAX,
            Pattern::RunSleep { run_ns, .. }
            | Pattern::SleepOnce { run_ns, .. }
            | Pattern::RunExit { run_ns }
            | Pattern::Periodic { run_ns, .. } => run_ns,
        }
    }

    fn wake(&mut self, s: Slot, flags: u64) {
        let cpu = self.h.wake(s, flags);
        let now = self.h.now();
        let t = &mut self.tasks[s as usize];
        t.state = State::Queued;
        t.queued_since = now;
        t.burst_left = Self::burst(t.pattern, t.slept);
        if self.h.running(cpu).is_none() {
            self.need_pick[cpu as usize] = true;
        }
    }

    /// Everything that happens at `now`, in the order the core would.
    fn events(&mut self) {
        let now = self.h.now();
        let nr = self.h.nr_cpus();
        // Running tasks that used up their burst block (or exit).
        for c in 0..nr {
            let Some(s) = self.h.running(c) else {
                continue;
            };
            if self.tasks[s as usize].burst_left != 0 {
                continue;
            }
            let ran = now - self.started[c as usize];
            self.h.stop(c, ran, false, 0);
            self.need_pick[c as usize] = true;
            let t = &mut self.tasks[s as usize];
            match t.pattern {
                Pattern::RunExit { .. } => {
                    t.state = State::Exited;
                    self.h.exit(s);
                }
                Pattern::RunSleep { sleep_ns, .. } | Pattern::SleepOnce { sleep_ns, .. } => {
                    t.state = State::Sleeping {
                        until: now + sleep_ns,
                    };
                    t.slept = true;
                }
                Pattern::Periodic {
                    period_ns,
                    deadline_ns,
                    ..
                } => {
                    let response = now - t.release;
                    t.jobs += 1;
                    t.misses += u64::from(response > deadline_ns);
                    t.max_response_ns = t.max_response_ns.max(response);
                    t.release += period_ns;
                    t.state = State::Sleeping {
                        until: t.release.max(now),
                    };
                }
                Pattern::Spin => unreachable!(),
            }
        }
        // Spawns and wake-ups, in slot order.
        for s in 0..self.tasks.len() as Slot {
            match self.tasks[s as usize].state {
                State::Unspawned if self.tasks[s as usize].spawn_at <= now => {
                    self.h.init_task(s);
                    self.wake(s, ENQ_NEW);
                }
                State::Sleeping { until } if until <= now => self.wake(s, ENQ_WAKEUP),
                _ => {}
            }
        }
        // The policy's own timers, on every CPU at each tick.
        if now.is_multiple_of(self.tick_ns) {
            for c in 0..nr {
                self.h.cpu_tick(c);
            }
        }
        // The tick, on every busy CPU (and on CPUs told to reschedule).
        let resched = self.h.take_resched();
        for c in 0..nr {
            if self.h.running(c).is_none()
                || !(now.is_multiple_of(self.tick_ns) || resched & (1u64 << c) != 0)
            {
                continue;
            }
            let ran = now - self.started[c as usize];
            if self.h.tick(c, ran) {
                let s = self.h.stop(c, ran, true, ENQ_PREEMPTED);
                let t = &mut self.tasks[s as usize];
                t.state = State::Queued;
                t.queued_since = now;
                self.need_pick[c as usize] = true;
                self.preemptions += 1;
            }
        }
        // CPUs that need work (their task stopped, or they were kicked).
        let kicked = self.h.take_kicked();
        for c in 0..nr {
            let kick = kicked & (1u64 << c) != 0;
            if !(core::mem::take(&mut self.need_pick[c as usize]) || kick)
                || self.h.running(c).is_some()
            {
                continue;
            }
            if let Some(s) = self.h.pick(c) {
                self.started[c as usize] = now;
                self.log.push((now, c, s));
                let t = &mut self.tasks[s as usize];
                assert_eq!(t.state, State::Queued, "ran a task that was not queued");
                t.state = State::Running(c);
                t.ran_on = t.ran_on.with(c);
                t.switches += 1;
                t.max_wait_ns = t.max_wait_ns.max(now - t.queued_since);
            }
        }
    }

    /// Run the simulation until `end` (events at `end` itself are left for
    /// the next call).
    pub fn run_until(&mut self, end: u64) {
        while self.h.now() < end {
            self.events();
            let now = self.h.now();
            let mut next = ((now / self.tick_ns) + 1) * self.tick_ns;
            next = next.min(end);
            for t in &self.tasks {
                match t.state {
                    State::Running(_) => next = next.min(now.saturating_add(t.burst_left)),
                    State::Sleeping { until } => next = next.min(until),
                    State::Unspawned => next = next.min(t.spawn_at.max(now + 1)),
                    _ => {}
                }
            }
            assert!(next > now, "simulation stuck at {now}");
            let dt = next - now;
            for t in &mut self.tasks {
                if let State::Running(_) = t.state {
                    t.runtime_ns += dt;
                    if t.burst_left != u64::MAX {
                        t.burst_left -= dt;
                    }
                }
            }
            self.h.set_now(next);
        }
    }

    /// Migrations so far, from the switch-in log: (within an LLC, across
    /// LLCs) -- a task that ran on one CPU and next on another.
    pub fn migrations(&self) -> (u64, u64) {
        let t = self.h.topology();
        let mut last: Vec<Option<u32>> = vec![None; self.tasks.len()];
        let (mut within, mut across) = (0, 0);
        for &(_, cpu, s) in &self.log {
            if let Some(Some(prev)) = last.get(s as usize)
                && *prev != cpu
            {
                if t.llc_of(*prev) == t.llc_of(cpu) {
                    within += 1;
                } else {
                    across += 1;
                }
            }
            if let Some(l) = last.get_mut(s as usize) {
                *l = Some(cpu);
            }
        }
        (within, across)
    }

    /// CPU time `s` has had.
    pub fn runtime(&self, s: Slot) -> u64 {
        self.tasks[s as usize].runtime_ns
    }

    /// Longest time a task has waited runnable, including a wait still in
    /// progress.
    pub fn max_wait(&self, s: Slot) -> u64 {
        let t = &self.tasks[s as usize];
        match t.state {
            State::Queued => t.max_wait_ns.max(self.h.now() - t.queued_since),
            _ => t.max_wait_ns,
        }
    }

    /// Each task's share of `total` is within `tol` (relative) of
    /// `expected`.
    pub fn assert_shares(&self, slots: &[Slot], expected: &[f64], total: u64, tol: f64) {
        for (&s, &e) in slots.iter().zip(expected) {
            let share = self.runtime(s) as f64 / total as f64;
            assert!(
                (share - e).abs() <= tol * e,
                "task {s}: share {share:.4}, expected {e:.4} ±{:.0}% (runtimes {:?})",
                tol * 100.0,
                slots.iter().map(|&s| self.runtime(s)).collect::<Vec<_>>()
            );
        }
    }

    /// A busy mixed workload on 4 CPUs for 400 ms: 24 tasks with weights
    /// 1-3, some pinned, spinning, napping, exiting and sleeping once,
    /// spawned over 6 ms. Asserts that nearly 4 CPUs' worth was used and
    /// returns the tasks. The simulation must have 4 CPUs.
    pub fn mixed_workload(&mut self) -> Vec<Slot> {
        const MS: u64 = 1_000_000;
        assert_eq!(self.h.nr_cpus(), 4);
        let all = CpuSet::all(4);
        let mut demand = Vec::new();
        for i in 0..24u64 {
            let aff = match i % 5 {
                0 => CpuSet::single((i % 4) as u32),
                1 => CpuSet(0b0110),
                _ => all,
            };
            let pattern = match i % 4 {
                0 => Pattern::Spin,
                1 => Pattern::RunSleep {
                    run_ns: 300_000 + i * 37_000,
                    sleep_ns: 2 * MS + i * 91_000,
                },
                2 => Pattern::RunExit {
                    run_ns: 20 * MS + i * MS,
                },
                _ => Pattern::SleepOnce {
                    run_ns: MS,
                    sleep_ns: 30 * MS,
                },
            };
            demand.push(self.spawn(1 + (i % 3) as u32, aff, pattern, i * 250_000));
        }
        self.run_until(400 * MS);
        let total: u64 = demand.iter().map(|&s| self.runtime(s)).sum();
        // Work-conserving enough: nearly 4 CPUs' worth was used.
        assert!(total > 4 * 400 * MS * 9 / 10, "only {total} ns run");
        demand
    }
}
