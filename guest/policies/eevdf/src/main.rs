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
//! tasks live in the CPU's local queue and after every change the pick is
//! moved to its head, so what the core takes is always the EEVDF choice.
//! (Local queues are FIFO, not vtime-ordered, for a policy image; only the
//! head matters, and ties between equal deadlines still go to the task
//! queued first.) `tick` preempts when the running task has used its
//! request and someone waits, or when a waiting eligible task has an
//! earlier deadline (how a woken task with positive lag gets the CPU).
//!
//! A task that sleeps keeps its lag (clamped to two slices' worth) and is
//! placed back at `V - lag`, scaled by `(W + w_i) / W` as Linux's
//! `place_entity` does, so that its lag is still `lag` once its own weight
//! is in the average. A new task starts at lag 0; a stolen task is moved
//! with its lag. Integer math only: sums are u128 (`w < 2^32`, `v < 2^64`,
//! at most 256 tasks).
//!
//! Load balancing, at the tick of a task that has used its slice (Linux
//! balances weighted load between run queues; a per-CPU EEVDF alone gives
//! `--weights 1,1,10` on 2 CPUs 4.5 / 4.5 / 91 % when the heavy task
//! shares a CPU):
//! - if moving the task to another allowed CPU makes the two CPUs'
//!   weighted loads (the weights of their running and queued tasks)
//!   strictly closer, it moves there (with its lag);
//! - else, if it runs alone while a task waiting on another CPU is more
//!   than a slice of weighted CPU time behind it (runtime / weight), it
//!   makes way there, and its idle CPU steals from that busier one: tasks
//!   that cannot divide evenly (3 on 2 CPUs) rotate to equal shares;
//! - else the CPU pulls a queued task from a busier group of its domains
//!   (`place::pull_from`: periodic balance, weighted load per CPU beyond
//!   the level's `imbalance_pct`, 110 % inside an LLC, 117 % between LLCs,
//!   125 % between nodes).
//!
//! All of it follows the topology as Linux's domains do: candidates in
//! the innermost domain (SMT siblings, then the LLC, node, machine) win,
//! a move to another LLC needs the level's tolerance on top of the
//! improvement (or a task two slices behind rather than one for the
//! rotation), and an idle CPU steals from its LLC before others
//! (`place::steal_from`), so tasks keep their caches and do not bounce
//! between LLCs.
#![cfg_attr(not(test), no_std)]
#![cfg_attr(not(test), no_main)]

mod rq;

use policy_sdk::{ENQ_HEAD, ENQ_YIELD, SLICE_METERED, Scheduler, Shares, Task, dsq, place};
use rq::Eevdf;

impl Scheduler for Eevdf {
    const NAME: &'static str = "eevdf";
    const DESCRIPTION: &'static str =
        "Linux's EEVDF per CPU: earliest eligible virtual deadline first, lag kept across sleeps";
    const SHARES: Shares = Shares::Weighted;
    const BOUNDED_WAIT: bool = true;

    fn init_task(&mut self, p: &mut Task) -> i32 {
        self.forget(p.slot as usize);
        0
    }

    fn exit_task(&mut self, p: &mut Task) {
        let s = p.slot as usize;
        if let Some(c) = self.curr.cpu_of(s) {
            self.update_curr(c, None);
            self.curr.clear(c);
        }
        let rq = self.rq_cpu(s);
        self.forget(s);
        if let Some(c) = rq {
            self.repick(c);
        }
    }

    fn select_cpu(&mut self, p: &mut Task, prev_cpu: u32, _wake_flags: u64) -> u32 {
        let cpu = place::select_balanced(p, prev_cpu);
        self.target.set(p.slot as usize, cpu);
        cpu
    }

    fn enqueue(&mut self, p: &mut Task, flags: u64) {
        let s = p.slot as usize;
        let want = self.target.take(s).or(self.rq_cpu(s));
        let cpu = match want {
            Some(c) if place::may_run(p, c) => c,
            _ => place::target_cpu(p),
        };
        if !rq::in_range(s, cpu) {
            return;
        }
        self.update_curr(cpu, None);
        self.ensure_on(p, cpu);
        if flags & ENQ_YIELD != 0 {
            // Linux's yield_task_fair: give up the rest of this request.
            let w = self.weight[s];
            self.deadline[s] = self.deadline[s].saturating_add(rq::vslice(w));
        }
        p.dsq_vtime = self.vruntime[s];
        dsq::insert(p, dsq::local_on(cpu), SLICE_METERED, 0);
        self.repick(cpu);
    }

    fn dispatch(&mut self, cpu: u32) {
        if !rq::in_range(0, cpu) || dsq::nr_queued(dsq::local_on(cpu)) != 0 {
            return;
        }
        if let Some(from) = place::steal_from(cpu) {
            self.pull(from, cpu);
        }
    }

    fn running(&mut self, p: &mut Task) {
        let (s, cpu) = (p.slot as usize, p.cpu);
        self.target.take(s);
        if !rq::in_range(s, cpu) {
            return;
        }
        self.ensure_on(p, cpu);
        self.curr.set(cpu, s, policy_sdk::now_ns());
        self.resched &= !(1 << cpu);
        self.repick(cpu);
    }

    fn stopping(&mut self, p: &mut Task, runnable: bool) {
        let (s, cpu) = (p.slot as usize, p.cpu);
        if !rq::in_range(s, cpu) {
            return;
        }
        if self.curr.get(cpu) == Some(s) {
            self.update_curr(cpu, Some(policy_sdk::ran_ns(p)));
            self.curr.clear(cpu);
        }
        if !runnable {
            self.remove_from_rq(s);
        }
        p.dsq_vtime = self.vruntime[s];
        self.repick(cpu);
    }

    fn tick(&mut self, p: &mut Task) {
        let mut local = self.preempt_at_tick(p);
        let used = policy_sdk::ran_ns(p) >= policy_sdk::slice_dfl_ns();
        if used && let Some(to) = balance_to(p) {
            self.target.set(p.slot as usize, to);
            p.slice_ns = 0;
            local = false;
        } else if used {
            // Periodic balance (see the module docs), weighing tasks.
            let cpu = p.cpu;
            let movable = |c: u32| most_behind(c, cpu).map(|q| u64::from(q.weight.max(1)));
            if let Some((from, _)) = place::pull_from(cpu, weighted_load, movable) {
                // Its request used, it makes way for the task pulled here.
                local |= self.pull(from, cpu);
            }
        }
        if local {
            p.slice_ns = 0;
        }
        p.dsq_vtime = self.vruntime.get(p.slot as usize).copied().unwrap_or(0);
    }
}

/// The task queued on `from` that `cpu` would take: the one most behind
/// in CPU time for its weight (runtime / weight, compared without
/// division), the one balancing is for.
fn most_behind(from: u32, cpu: u32) -> Option<&'static mut Task> {
    dsq::iter(dsq::local_on(from))
        .filter(|p| place::may_run(p, cpu))
        .min_by(|a, b| {
            let ka = u128::from(a.runtime_ns) * u128::from(b.weight.max(1));
            let kb = u128::from(b.runtime_ns) * u128::from(a.weight.max(1));
            ka.cmp(&kb)
        })
}

/// The weights of the tasks assigned to `cpu`: running and queued.
fn weighted_load(cpu: u32) -> u64 {
    let queued: u64 = dsq::iter(dsq::local_on(cpu))
        .map(|q| u64::from(q.weight.max(1)))
        .sum();
    queued + policy_sdk::cpu_curr(cpu).map_or(0, |q| u64::from(q.weight.max(1)))
}

/// Where the running task `p`, which has used its slice, should go to
/// balance the CPUs (see the module docs), if anywhere: the innermost
/// domain with a candidate wins, and a move to another LLC needs the
/// level's tolerance on top (this CPU still busier than the other would
/// be after the move, by `Level::imbalance_pct`) or, for the rotation, a
/// task two slices behind instead of one.
fn balance_to(p: &Task) -> Option<u32> {
    let (c, w) = (p.cpu, u64::from(p.weight.max(1)));
    let others = place::allowed(p) & !(1u64 << c);
    let wc = weighted_load(c);
    let mut seen = 0u64;
    for (level, span) in place::domains(c) {
        let mut best: Option<(u64, u32)> = None;
        for d in place::cpus(others & span & !seen) {
            let wd = weighted_load(d);
            let after = wc.saturating_sub(w).abs_diff(wd + w);
            let worth = !level.crosses_llc() || wc * 100 > (wd + w) * level.imbalance_pct();
            if worth && after < wc.abs_diff(wd) && best.is_none_or(|(b, _)| after < b) {
                best = Some((after, d));
            }
        }
        if let Some((_, d)) = best {
            return Some(d);
        }
        seen |= span;
    }
    if dsq::nr_queued(dsq::local_on(c)) != 0 {
        return None;
    }
    // Alone: make way for a task waiting elsewhere that is behind,
    // comparing runtime / weight without division.
    place::behind_elsewhere(p, |q, margin| {
        (u128::from(q.runtime_ns) + u128::from(margin)) * u128::from(w)
            < u128::from(p.runtime_ns) * u128::from(q.weight.max(1))
    })
}

impl Eevdf {
    fn preempt_at_tick(&mut self, p: &Task) -> bool {
        let (s, cpu, ran) = (p.slot as usize, p.cpu, policy_sdk::ran_ns(p));
        if !rq::in_range(s, cpu) || self.curr.get(cpu) != Some(s) {
            return ran >= policy_sdk::slice_dfl_ns();
        }
        self.update_curr(cpu, Some(ran));
        let used_up = self.resched & (1 << cpu) != 0;
        self.resched &= !(1 << cpu);
        self.repick(cpu);
        let Some(head) = dsq::first(dsq::local_on(cpu)) else {
            return false;
        };
        let h = head.slot as usize;
        used_up || (self.eligible(h) && self.deadline[h] < self.deadline[s])
    }

    /// Move the EEVDF pick among `cpu`'s queued tasks to the head of its
    /// local queue.
    fn repick(&mut self, cpu: u32) {
        let q = dsq::local_on(cpu);
        let Some(head) = dsq::first(q).map(|p| p.slot as usize) else {
            return;
        };
        let mut eligible: Option<usize> = None;
        let mut any: Option<usize> = None;
        let earlier =
            |a: usize, b: Option<usize>| b.is_none_or(|b| self.deadline[a] < self.deadline[b]);
        for p in dsq::iter(q) {
            let s = p.slot as usize;
            if self.eligible(s) && earlier(s, eligible) {
                eligible = Some(s);
            }
            if earlier(s, any) {
                any = Some(s);
            }
        }
        let pick = eligible.or(any).unwrap_or(head);
        if pick != head
            && let Some(p) = policy_sdk::task_of_slot(pick as u32)
        {
            dsq::remove(p);
            dsq::insert(p, q, 0, ENQ_HEAD);
        }
    }

    /// Take [`most_behind`] from `from`'s queue onto `cpu`'s, with its
    /// lag.
    fn pull(&mut self, from: u32, cpu: u32) -> bool {
        let Some(p) = most_behind(from, cpu) else {
            return false;
        };
        dsq::remove(p);
        let s = p.slot as usize;
        self.migrate(s, cpu);
        dsq::insert(p, dsq::local_on(cpu), 0, 0);
        self.repick(cpu);
        true
    }

    /// Move `s`'s accounting to `cpu`'s run queue, keeping its lag.
    fn migrate(&mut self, s: usize, cpu: u32) {
        let Some(from) = self.rq_cpu(s) else {
            return;
        };
        if from == cpu {
            return;
        }
        self.update_curr(from, None);
        self.remove_from_rq(s);
        self.repick(from);
        let w = self.weight[s];
        self.place(cpu, s, w, self.lag[s]);
    }

    /// Make sure `p` is on `cpu`'s run queue: moved there with its lag, or
    /// placed fresh from its kept lag.
    fn ensure_on(&mut self, p: &Task, cpu: u32) {
        let s = p.slot as usize;
        match self.rq_cpu(s) {
            Some(c) if c == cpu => {}
            Some(_) => self.migrate(s, cpu),
            None => self.place(cpu, s, p.weight.max(1), self.lag[s]),
        }
    }
}

policy_sdk::export_policy!(Eevdf, Eevdf::new());

#[cfg(test)]
mod tests;
