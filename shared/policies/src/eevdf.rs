//! `eevdf`: Linux's EEVDF (Earliest Eligible Virtual Deadline First), one
//! run queue per CPU, with rr's placement and stealing.
//!
//! Per CPU, over its runnable tasks (queued and running), with weights
//! `w_i` and vruntimes `v_i` (advancing by `ran_ns * 1024 / w_i`):
//! - `V = sum(w_i * v_i) / sum(w_i)`, the weighted average vruntime: where
//!   every task would be had the CPU been shared perfectly;
//! - `lag_i = V - v_i`: service the task is owed (> 0) or has had too much
//!   of (< 0);
//! - eligible iff `lag_i >= 0` (`v_i <= V`, tested as
//!   `v_i * sum(w) <= sum(w * v)`, exact, no division);
//! - virtual deadline `vd_i = v_i + slice * 1024 / w_i`, refreshed by
//!   another request once `v_i` reaches it (the slice is used up).
//!
//! The task to run is the eligible one with the earliest deadline (if none
//! is eligible, which rounding can cause, the earliest deadline). The queued
//! tasks live in the CPU's local DSQ, ordered by deadline, and after every
//! change the pick is moved to the head, so what the core pops is always
//! the EEVDF choice. `tick` preempts when the running task has used its
//! request and someone waits, or when a waiting eligible task has an
//! earlier deadline (how a woken task with positive lag gets the CPU).
//!
//! A task that sleeps keeps its lag (clamped to two slices' worth) and is
//! placed back at `V - lag`, scaled by `(W + w_i) / W` as Linux's
//! `place_entity` does, so that its lag is still `lag` once its own weight
//! is in the average. A new task starts at lag 0; a stolen task is moved
//! with its lag. Integer math only: sums are u128 (`w < 2^32`, `v < 2^64`,
//! at most 256 tasks).

use crate::place::{self, Curr, Remembered};
use crate::{Cpu, Ctx, DsqId, ENQ_YIELD, Policy, PolicyFields, Slot, TaskInfo, vtime_delta};
use abi::memmap::{MAX_CPUS, MAX_TASKS};

pub struct Eevdf {
    target: Remembered,
    curr: Curr,
    vruntime: [u64; MAX_TASKS],
    deadline: [u64; MAX_TASKS],
    /// Lag kept while the task is off every run queue.
    lag: [i64; MAX_TASKS],
    /// The weight the task is counted with in its CPU's sums.
    weight: [u32; MAX_TASKS],
    /// `cpu + 1` whose run queue (sums) counts the task; 0 = none.
    on_rq: [u8; MAX_TASKS],
    sum_w: [u64; MAX_CPUS],
    sum_wv: [u128; MAX_CPUS],
    /// Last `V` of each CPU, the reference while its run queue is empty.
    vclock: [u64; MAX_CPUS],
    /// Per CPU bit: the running task used up a request since the last tick.
    resched: u64,
}

impl Default for Eevdf {
    fn default() -> Self {
        Self::new()
    }
}

impl Eevdf {
    pub const fn new() -> Self {
        Eevdf {
            target: Remembered::new(),
            curr: Curr::new(),
            vruntime: [0; MAX_TASKS],
            deadline: [0; MAX_TASKS],
            lag: [0; MAX_TASKS],
            weight: [0; MAX_TASKS],
            on_rq: [0; MAX_TASKS],
            sum_w: [0; MAX_CPUS],
            sum_wv: [0; MAX_CPUS],
            vclock: [0; MAX_CPUS],
            resched: 0,
        }
    }

    /// `V` of `cpu`: the weighted average vruntime of its runnable tasks
    /// (as of the last callback), or its last value while it has none.
    pub fn avg_vruntime(&self, cpu: Cpu) -> u64 {
        let c = cpu as usize;
        if c >= MAX_CPUS {
            return 0;
        }
        if self.sum_w[c] == 0 {
            self.vclock[c]
        } else {
            (self.sum_wv[c] / u128::from(self.sum_w[c])) as u64
        }
    }

    /// The CPU whose run queue counts `slot`.
    pub fn rq_cpu(&self, slot: Slot) -> Option<Cpu> {
        match self.on_rq.get(slot as usize) {
            Some(&c) if c != 0 => Some(u32::from(c) - 1),
            _ => None,
        }
    }

    /// Whether `slot` is on a run queue and eligible there (`v <= V`).
    pub fn eligible(&self, slot: Slot) -> bool {
        let Some(cpu) = self.rq_cpu(slot) else {
            return false;
        };
        let c = cpu as usize;
        u128::from(self.vruntime[slot as usize]) * u128::from(self.sum_w[c]) <= self.sum_wv[c]
    }

    /// The lag of `slot`: `V - v` on its run queue, the kept lag off it.
    pub fn lag(&self, slot: Slot) -> i64 {
        let s = slot as usize;
        match self.rq_cpu(slot) {
            Some(c) => {
                let l = i128::from(self.avg_vruntime(c)) - i128::from(self.vruntime[s]);
                l.clamp(i64::MIN.into(), i64::MAX.into()) as i64
            }
            None => self.lag.get(s).copied().unwrap_or(0),
        }
    }

    /// One slice of run time of a task of weight `w`, in virtual time.
    fn vslice(ctx: &Ctx<'_>, w: u32) -> u64 {
        vtime_delta(ctx.slice_ns, w)
    }

    /// Count `slot` in `cpu`'s sums.
    fn add(&mut self, cpu: Cpu, slot: Slot, w: u32) {
        let (c, s) = (cpu as usize, slot as usize);
        self.weight[s] = w;
        self.on_rq[s] = cpu as u8 + 1;
        self.sum_w[c] += u64::from(w);
        self.sum_wv[c] += u128::from(w) * u128::from(self.vruntime[s]);
    }

    /// Take `slot` out of its CPU's sums, keeping its lag (clamped to two
    /// slices of its own run time, as Linux's `update_entity_lag`).
    fn remove_from_rq(&mut self, ctx: &Ctx<'_>, slot: Slot) {
        let Some(cpu) = self.rq_cpu(slot) else {
            return;
        };
        let (c, s) = (cpu as usize, slot as usize);
        let w = self.weight[s];
        let v_avg = self.avg_vruntime(cpu);
        let limit = i128::from(vtime_delta(ctx.slice_ns.saturating_mul(2), w));
        let lag = (i128::from(v_avg) - i128::from(self.vruntime[s])).clamp(-limit, limit);
        self.lag[s] = lag as i64;
        self.vclock[c] = v_avg;
        self.sum_w[c] -= u64::from(w);
        self.sum_wv[c] -= u128::from(w) * u128::from(self.vruntime[s]);
        self.on_rq[s] = 0;
    }

    /// Put `slot` on `cpu`'s run queue at `V - lag` (see the module docs)
    /// with a fresh request.
    fn place(&mut self, ctx: &Ctx<'_>, cpu: Cpu, slot: Slot, w: u32, lag: i64) {
        let (c, s) = (cpu as usize, slot as usize);
        let big_w = i128::from(self.sum_w[c]);
        let (base, lag) = if big_w == 0 {
            // Nothing to be fair to: any base works, so pick one that keeps
            // v_i = base - lag non-negative.
            let lag = i128::from(lag);
            (i128::from(self.vclock[c]).max(lag), lag)
        } else {
            let scaled = i128::from(lag) * (big_w + i128::from(w)) / big_w;
            (i128::from(self.avg_vruntime(cpu)), scaled)
        };
        self.vruntime[s] = (base - lag).clamp(0, u64::MAX.into()) as u64;
        self.deadline[s] = self.vruntime[s].saturating_add(Self::vslice(ctx, w));
        self.add(cpu, slot, w);
    }

    /// Charge `cpu`'s running task up to `ran_ns` (or up to now) and start
    /// a new request if it reached its deadline.
    fn update_curr(&mut self, ctx: &Ctx<'_>, cpu: Cpu, ran_ns: Option<u64>) {
        let Some(slot) = self.curr.get(cpu) else {
            return;
        };
        let s = slot as usize;
        let ran = ran_ns.unwrap_or_else(|| self.curr.ran_at(cpu, ctx.now_ns));
        let d = self.curr.charge(cpu, ran);
        let w = self.weight[s].max(1);
        let dv = vtime_delta(d, w);
        self.vruntime[s] = self.vruntime[s].saturating_add(dv);
        if self.rq_cpu(slot) == Some(cpu) {
            self.sum_wv[cpu as usize] += u128::from(w) * u128::from(dv);
        }
        if self.vruntime[s] >= self.deadline[s] {
            self.deadline[s] = self.vruntime[s].saturating_add(Self::vslice(ctx, w));
            self.resched |= 1 << cpu;
        }
        if self.sum_w[cpu as usize] != 0 {
            self.vclock[cpu as usize] = self.avg_vruntime(cpu);
        }
    }

    /// Move the EEVDF pick among `cpu`'s queued tasks to the head of its
    /// local DSQ.
    fn repick(&mut self, ctx: &mut Ctx<'_>, cpu: Cpu) {
        let q = DsqId::Local(cpu);
        let Some(head) = ctx.dsqs.first(q) else {
            return;
        };
        let mut eligible: Option<Slot> = None;
        let mut any: Option<Slot> = None;
        let earlier = |a: Slot, b: Option<Slot>| {
            b.is_none_or(|b| self.deadline[a as usize] < self.deadline[b as usize])
        };
        for s in ctx.dsqs.iter(q) {
            if self.eligible(s) && earlier(s, eligible) {
                eligible = Some(s);
            }
            if earlier(s, any) {
                any = Some(s);
            }
        }
        let pick = eligible.or(any).unwrap_or(head);
        if pick != head {
            ctx.dsqs.insert_head(q, pick);
        }
    }

    /// Move `slot`'s accounting to `cpu`'s run queue, keeping its lag.
    fn migrate(&mut self, ctx: &mut Ctx<'_>, slot: Slot, cpu: Cpu) {
        let Some(from) = self.rq_cpu(slot) else {
            return;
        };
        if from == cpu {
            return;
        }
        self.update_curr(ctx, from, None);
        self.remove_from_rq(ctx, slot);
        self.repick(ctx, from);
        let w = self.weight[slot as usize];
        self.place(ctx, cpu, slot, w, self.lag[slot as usize]);
    }

    /// Make sure `slot` is on `cpu`'s run queue: moved there with its lag,
    /// or placed fresh from its kept lag.
    fn ensure_on(&mut self, ctx: &mut Ctx<'_>, t: &TaskInfo, cpu: Cpu) {
        match self.rq_cpu(t.slot) {
            Some(c) if c == cpu => {}
            Some(_) => self.migrate(ctx, t.slot, cpu),
            None => self.place(ctx, cpu, t.slot, t.weight.max(1), self.lag[t.slot as usize]),
        }
    }

    fn in_range(t: &TaskInfo, cpu: Cpu) -> bool {
        (t.slot as usize) < MAX_TASKS && (cpu as usize) < MAX_CPUS
    }
}

impl Policy for Eevdf {
    fn init_task(&mut self, ctx: &mut Ctx<'_>, t: &TaskInfo) {
        let s = t.slot as usize;
        if s >= MAX_TASKS {
            return;
        }
        self.remove_from_rq(ctx, t.slot);
        self.target.take(t.slot);
        self.vruntime[s] = 0;
        self.deadline[s] = 0;
        self.lag[s] = 0;
        self.weight[s] = 0;
    }

    fn exit_task(&mut self, ctx: &mut Ctx<'_>, t: &TaskInfo) {
        ctx.dsqs.remove(t.slot);
        if let Some(c) = self.curr.cpu_of(t.slot) {
            self.update_curr(ctx, c, None);
            self.curr.clear(c);
        }
        let rq = self.rq_cpu(t.slot);
        self.init_task(ctx, t);
        if let Some(c) = rq {
            self.repick(ctx, c);
        }
    }

    fn select_cpu(&mut self, ctx: &mut Ctx<'_>, t: &TaskInfo, prev_cpu: Cpu) -> Cpu {
        let cpu = place::select_balanced(ctx, t, prev_cpu);
        self.target.set(t.slot, cpu);
        cpu
    }

    fn enqueue(&mut self, ctx: &mut Ctx<'_>, t: &TaskInfo, flags: u32) {
        let want = self.target.take(t.slot).or(self.rq_cpu(t.slot));
        let cpu = place::resolve_target(ctx, t, want);
        if !Self::in_range(t, cpu) {
            return;
        }
        self.update_curr(ctx, cpu, None);
        self.ensure_on(ctx, t, cpu);
        let s = t.slot as usize;
        if flags & ENQ_YIELD != 0 {
            // Linux's yield_task_fair: give up the rest of this request.
            let w = self.weight[s];
            self.deadline[s] = self.deadline[s].saturating_add(Self::vslice(ctx, w));
        }
        ctx.dsqs
            .insert_vtime(DsqId::Local(cpu), t.slot, self.deadline[s]);
        self.repick(ctx, cpu);
    }

    fn dispatch(&mut self, ctx: &mut Ctx<'_>, cpu: Cpu) {
        if (cpu as usize) >= MAX_CPUS || !ctx.dsqs.is_empty(DsqId::Local(cpu)) {
            return;
        }
        if let Some((s, _)) = place::steal(ctx, cpu) {
            self.migrate(ctx, s, cpu);
            ctx.dsqs
                .insert_vtime(DsqId::Local(cpu), s, self.deadline[s as usize]);
            self.repick(ctx, cpu);
        }
    }

    fn running(&mut self, ctx: &mut Ctx<'_>, t: &TaskInfo, cpu: Cpu) {
        self.target.take(t.slot);
        if !Self::in_range(t, cpu) {
            return;
        }
        self.ensure_on(ctx, t, cpu);
        self.curr.set(cpu, t.slot, ctx.now_ns);
        self.resched &= !(1 << cpu);
        self.repick(ctx, cpu);
    }

    fn stopping(&mut self, ctx: &mut Ctx<'_>, t: &TaskInfo, cpu: Cpu, ran_ns: u64, runnable: bool) {
        if !Self::in_range(t, cpu) {
            return;
        }
        if self.curr.get(cpu) == Some(t.slot) {
            self.update_curr(ctx, cpu, Some(ran_ns));
            self.curr.clear(cpu);
        }
        if !runnable {
            self.remove_from_rq(ctx, t.slot);
        }
        self.repick(ctx, cpu);
    }

    fn tick(&mut self, ctx: &mut Ctx<'_>, t: &TaskInfo, cpu: Cpu, ran_ns: u64) -> bool {
        if !Self::in_range(t, cpu) || self.curr.get(cpu) != Some(t.slot) {
            return ran_ns >= ctx.slice_ns;
        }
        self.update_curr(ctx, cpu, Some(ran_ns));
        let used_up = self.resched & (1 << cpu) != 0;
        self.resched &= !(1 << cpu);
        self.repick(ctx, cpu);
        let Some(head) = ctx.dsqs.first(DsqId::Local(cpu)) else {
            return false;
        };
        used_up
            || (self.eligible(head)
                && self.deadline[head as usize] < self.deadline[t.slot as usize])
    }

    fn fields(&self, slot: Slot) -> PolicyFields {
        let s = slot as usize;
        if s >= MAX_TASKS {
            return PolicyFields::default();
        }
        PolicyFields {
            vruntime: self.vruntime[s],
            deadline: self.deadline[s],
            lag: self.lag(slot),
        }
    }
}

#[cfg(test)]
impl Eevdf {
    /// The per-CPU sums are exactly what the tasks on each run queue add
    /// up to (the simulator checks this after every step).
    pub(crate) fn check_sums(&self, nr_cpus: u32) {
        for c in 0..nr_cpus as usize {
            let (mut w, mut wv) = (0u64, 0u128);
            for s in 0..MAX_TASKS {
                if self.on_rq[s] as usize == c + 1 {
                    w += u64::from(self.weight[s]);
                    wv += u128::from(self.weight[s]) * u128::from(self.vruntime[s]);
                }
            }
            assert_eq!(
                (self.sum_w[c], self.sum_wv[c]),
                (w, wv),
                "eevdf sums of CPU {c}"
            );
        }
    }
}
