//! A small deterministic simulator of the core's scheduling loop, for the
//! policy tests: a simulated clock, N CPUs, tasks that spin or follow
//! run/sleep patterns, and a tick every `tick_ns` on each busy CPU. It
//! drives a policy exactly as the [`Policy`] docs say the core does and
//! checks the contract on the way (after `enqueue` a task is in one DSQ,
//! local queues hold only tasks allowed there, `select_cpu` answers inside
//! the affinity, the core only ever runs allowed tasks).
//!
//! [`Harness`] is the core's side of the callbacks, usable step by step;
//! [`Sim`] adds time and workloads on top.

use crate::{
    AnyPolicy, Cpu, CpuSet, Ctx, DsqId, Dsqs, ENQ_NEW, ENQ_PREEMPTED, ENQ_WAKEUP, Policy, Slot,
    TaskInfo,
};
use std::boxed::Box;
use std::vec;
use std::vec::Vec;

/// The core's side: owns the policy, the DSQs, the task infos and what
/// runs where, and makes the callbacks with a fresh [`Ctx`].
pub struct Harness {
    pub policy: Box<AnyPolicy>,
    pub dsqs: Box<Dsqs>,
    pub infos: Vec<TaskInfo>,
    pub running: Vec<Option<Slot>>,
    pub now: u64,
    pub nr_cpus: u32,
    pub slice_ns: u64,
    /// The local DSQ each task was last enqueued to.
    enqueued_on: Vec<Option<DsqId>>,
    /// (slot, from, to): a task enqueued on `from`'s local DSQ ran on `to`.
    pub steals: Vec<(Slot, Cpu, Cpu)>,
}

/// Build the context from the harness's fields and call `$m` on the policy.
macro_rules! call {
    ($h:expr, $m:ident($($arg:expr),*)) => {{
        let h = &mut *$h;
        let idle = h.idle();
        let mut ctx = Ctx {
            now_ns: h.now,
            nr_cpus: h.nr_cpus,
            idle,
            slice_ns: h.slice_ns,
            dsqs: &mut h.dsqs,
            tasks: &h.infos,
            running: &h.running,
        };
        h.policy.$m(&mut ctx, $($arg),*)
    }};
}

impl Harness {
    pub fn new(policy_id: u32, arg: u32, nr_cpus: u32, slice_ns: u64) -> Self {
        Harness {
            policy: Box::new(AnyPolicy::new(policy_id, arg).expect("known policy")),
            dsqs: Box::new(Dsqs::new()),
            infos: Vec::new(),
            running: vec![None; nr_cpus as usize],
            now: 0,
            nr_cpus,
            slice_ns,
            enqueued_on: Vec::new(),
            steals: Vec::new(),
        }
    }

    pub fn idle(&self) -> CpuSet {
        let mut s = CpuSet::EMPTY;
        for (c, r) in self.running.iter().enumerate() {
            if r.is_none() {
                s = s.with(c as Cpu);
            }
        }
        s
    }

    /// A task in the next slot (pid = slot + 1); `init_task` is called.
    pub fn add(&mut self, weight: u32, affinity: CpuSet, cpu: Cpu) -> Slot {
        let slot = self.infos.len() as Slot;
        self.infos.push(TaskInfo {
            slot,
            pid: u32::from(slot) + 1,
            weight,
            affinity,
            cpu,
        });
        let t = self.infos[slot as usize];
        call!(self, init_task(&t));
        slot
    }

    pub fn exit(&mut self, slot: Slot) {
        let t = self.infos[slot as usize];
        call!(self, exit_task(&t));
        assert_eq!(self.dsqs.queued_in(slot), None, "exited task still queued");
    }

    /// `select_cpu` then `enqueue`, as the core wakes a task; returns the
    /// CPU chosen (the caller kicks it if idle).
    pub fn wake(&mut self, slot: Slot, flags: u32) -> Cpu {
        let t = self.infos[slot as usize];
        let cpu = call!(self, select_cpu(&t, t.cpu));
        assert!(
            t.affinity.contains(cpu) && cpu < self.nr_cpus,
            "select_cpu chose {cpu} outside {:?}",
            t.affinity
        );
        self.infos[slot as usize].cpu = cpu;
        self.enqueue(slot, flags);
        cpu
    }

    pub fn enqueue(&mut self, slot: Slot, flags: u32) {
        let t = self.infos[slot as usize];
        call!(self, enqueue(&t, flags));
        let dsq = self.dsqs.queued_in(slot);
        assert!(dsq.is_some(), "task {slot} in no DSQ after enqueue");
        if self.enqueued_on.len() <= slot as usize {
            self.enqueued_on.resize(slot as usize + 1, None);
        }
        self.enqueued_on[slot as usize] = dsq;
        self.check();
    }

    /// The core's pick for `cpu`: local, else `dispatch` and local again,
    /// else the first task in `Global` allowed here. Calls `running`.
    pub fn pick(&mut self, cpu: Cpu) -> Option<Slot> {
        assert!(self.running[cpu as usize].is_none());
        let mut s = self.dsqs.pop_first(DsqId::Local(cpu));
        if s.is_none() {
            call!(self, dispatch(cpu));
            self.check();
            s = self.dsqs.pop_first(DsqId::Local(cpu));
        }
        if s.is_none() {
            let infos = &self.infos;
            s = self
                .dsqs
                .pop_first_where(DsqId::Global, |s| infos[s as usize].affinity.contains(cpu));
        }
        let s = s?;
        assert!(
            self.infos[s as usize].affinity.contains(cpu),
            "task {s} picked on CPU {cpu} outside its affinity"
        );
        if let Some(Some(DsqId::Local(from))) = self.enqueued_on.get(s as usize)
            && *from != cpu
        {
            self.steals.push((s, *from, cpu));
        }
        self.running[cpu as usize] = Some(s);
        self.infos[s as usize].cpu = cpu;
        let t = self.infos[s as usize];
        call!(self, running(&t, cpu));
        self.check();
        Some(s)
    }

    pub fn tick(&mut self, cpu: Cpu, ran_ns: u64) -> bool {
        let s = self.running[cpu as usize].expect("tick on an idle CPU");
        let t = self.infos[s as usize];
        call!(self, tick(&t, cpu, ran_ns))
    }

    /// The running task on `cpu` stops; if `runnable` it is re-enqueued
    /// with `requeue_flags` (preempted or yielded).
    pub fn stop(&mut self, cpu: Cpu, ran_ns: u64, runnable: bool, requeue_flags: u32) -> Slot {
        let s = self.running[cpu as usize]
            .take()
            .expect("stop on an idle CPU");
        let t = self.infos[s as usize];
        call!(self, stopping(&t, cpu, ran_ns, runnable));
        if runnable {
            self.enqueue(s, requeue_flags);
        }
        self.check();
        s
    }

    /// Tasks assigned to `cpu`: queued locally plus running.
    pub fn assigned(&self, cpu: Cpu) -> usize {
        self.dsqs.len(DsqId::Local(cpu)) + usize::from(self.running[cpu as usize].is_some())
    }

    /// The contract and the policies' own invariants.
    pub fn check(&self) {
        for c in 0..self.nr_cpus {
            for s in self.dsqs.iter(DsqId::Local(c)) {
                assert!(
                    self.infos[s as usize].affinity.contains(c),
                    "task {s} queued on CPU {c} outside its affinity"
                );
                assert!(
                    self.running.iter().all(|r| *r != Some(s)),
                    "task {s} both running and queued"
                );
            }
        }
        if let AnyPolicy::Eevdf(e) = &*self.policy {
            e.check_sums(self.nr_cpus);
        }
    }
}

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
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Unspawned,
    Queued,
    Running(Cpu),
    Sleeping { until: u64 },
    Exited,
}

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
}

pub struct Sim {
    pub h: Harness,
    pub tasks: Vec<SimTask>,
    pub tick_ns: u64,
    started: Vec<u64>,
    need_pick: Vec<bool>,
    /// (time, cpu, slot) for every switch-in.
    pub log: Vec<(u64, Cpu, Slot)>,
    pub preemptions: u64,
}

impl Sim {
    /// 1 ms tick.
    pub fn new(policy_id: u32, arg: u32, nr_cpus: u32, slice_ns: u64) -> Self {
        Sim {
            h: Harness::new(policy_id, arg, nr_cpus, slice_ns),
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
        let slot = self.tasks.len() as Slot;
        // TaskInfo exists from the start (the slot is reserved); init_task
        // is called at spawn time.
        self.h.infos.push(TaskInfo {
            slot,
            pid: u32::from(slot) + 1,
            weight,
            affinity,
            cpu: 0,
        });
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
        });
        slot
    }

    pub fn spin(&mut self, weight: u32) -> Slot {
        self.spawn(weight, CpuSet::all(self.h.nr_cpus), Pattern::Spin, 0)
    }

    fn burst(p: Pattern, slept: bool) -> u64 {
        match p {
            Pattern::Spin => u64::MAX,
            Pattern::SleepOnce { .. } if slept => u64::MAX,
            Pattern::RunSleep { run_ns, .. }
            | Pattern::SleepOnce { run_ns, .. }
            | Pattern::RunExit { run_ns } => run_ns,
        }
    }

    fn wake(&mut self, s: Slot, flags: u32) {
        let cpu = self.h.wake(s, flags);
        let t = &mut self.tasks[s as usize];
        t.state = State::Queued;
        t.queued_since = self.h.now;
        t.burst_left = Self::burst(t.pattern, t.slept);
        if self.h.running[cpu as usize].is_none() {
            self.need_pick[cpu as usize] = true;
        }
    }

    /// Everything that happens at `now`, in the order the core would.
    fn events(&mut self) {
        let now = self.h.now;
        // Running tasks that used up their burst block (or exit).
        for c in 0..self.h.nr_cpus {
            let Some(s) = self.h.running[c as usize] else {
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
                Pattern::Spin => unreachable!(),
            }
        }
        // Spawns and wake-ups, in slot order.
        for s in 0..self.tasks.len() as Slot {
            match self.tasks[s as usize].state {
                State::Unspawned if self.tasks[s as usize].spawn_at <= now => {
                    let t = self.h.infos[s as usize];
                    call!(&mut self.h, init_task(&t));
                    self.wake(s, ENQ_NEW);
                }
                State::Sleeping { until } if until <= now => self.wake(s, ENQ_WAKEUP),
                _ => {}
            }
        }
        // The tick, on every busy CPU.
        if now.is_multiple_of(self.tick_ns) {
            for c in 0..self.h.nr_cpus {
                if self.h.running[c as usize].is_none() {
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
        }
        // CPUs that need work (their task stopped, or they were kicked).
        for c in 0..self.h.nr_cpus {
            if !core::mem::take(&mut self.need_pick[c as usize])
                || self.h.running[c as usize].is_some()
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
        while self.h.now < end {
            self.events();
            let now = self.h.now;
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
            self.h.now = next;
        }
    }

    pub fn runtime(&self, s: Slot) -> u64 {
        self.tasks[s as usize].runtime_ns
    }

    /// Longest time a task has waited runnable, including a wait still in
    /// progress.
    pub fn max_wait(&self, s: Slot) -> u64 {
        let t = &self.tasks[s as usize];
        match t.state {
            State::Queued => t.max_wait_ns.max(self.h.now - t.queued_since),
            _ => t.max_wait_ns,
        }
    }
}
