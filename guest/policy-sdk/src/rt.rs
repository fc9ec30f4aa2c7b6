//! A task's real-time attributes (`PolicyTask::rt_*`, policy ABI v3), as
//! the operation that spawned it gave them (`abi::ipc::RtAttrs`, Linux's
//! `sched_attr`): read-only for the policy. A task without a period is
//! not periodic (the operation's main task, every non-periodic workload).

use crate::Task;

/// The task's period, ns, if it is periodic.
pub fn period_ns(p: &Task) -> Option<u64> {
    (p.rt_period_ns != 0).then_some(p.rt_period_ns)
}

/// CPU time one job needs (its budget), ns; 0 if not periodic.
pub fn runtime_ns(p: &Task) -> u64 {
    p.rt_runtime_ns
}

/// Relative deadline of each job after its release, ns: the one given,
/// else the period; None if not periodic.
pub fn deadline_ns(p: &Task) -> Option<u64> {
    period_ns(p)?;
    Some(if p.rt_deadline_ns != 0 {
        p.rt_deadline_ns
    } else {
        p.rt_period_ns
    })
}

/// Explicit fixed priority (higher runs first), if one was given.
pub fn priority(p: &Task) -> Option<u32> {
    (p.rt_priority != 0).then_some(p.rt_priority)
}

/// The one CPU `p` may run on, if its affinity allows exactly one (a
/// pinned task: partitioned scheduling keeps it in that CPU's queue).
pub fn pinned_cpu(p: &Task) -> Option<u32> {
    (p.cpus_allowed.count_ones() == 1).then(|| p.cpus_allowed.trailing_zeros())
}

/// Where a real-time policy with one shared ordered queue sends a waking
/// task: its pinned CPU, else an idle CPU it may use if there is one
/// (the queue is shared, so this only decides which CPU the core wakes).
pub fn select_cpu(p: &Task, prev_cpu: u32) -> u32 {
    match pinned_cpu(p) {
        Some(c) => c,
        None => crate::place::select_idle_first(p, prev_cpu),
    }
}

/// For a real-time policy that orders tasks by a key (smaller runs first)
/// and has just queued a task with `key` that may run on `allowed`: wake
/// an idle CPU in `allowed` if there is one, else preempt the allowed CPU
/// whose running task has the largest key, if that is larger than `key`
/// (`key_of` gives a running task's key). Returns the CPU kicked.
pub fn kick_for(allowed: u64, key: u64, key_of: impl Fn(&Task) -> u64) -> Option<u32> {
    let idle = crate::idle_mask() & allowed;
    if idle != 0 {
        let c = idle.trailing_zeros();
        crate::kick_cpu(c, crate::KICK_IDLE);
        return Some(c);
    }
    let (cpu, worst) = crate::place::cpus(allowed & crate::place::online())
        .filter_map(|c| crate::cpu_curr(c).map(|t| (c, key_of(t))))
        .max_by_key(|&(_, k)| k)?;
    (worst > key).then(|| {
        crate::kick_cpu(cpu, crate::KICK_PREEMPT);
        cpu
    })
}

/// Whether `p`, running on its CPU with `key`, should give way (at a
/// tick) to the first task of the key-ordered queue `id` that may run
/// there: that task has a smaller key, no CPU it may use is idle, and no
/// CPU it may use runs a larger key than `p` (that one is the CPU to
/// preempt; `kick_for` already asked it). So a tick on another CPU does
/// not preempt a second task for one waiting task.
pub fn should_yield(id: u64, p: &Task, key: u64, key_of: impl Fn(&Task) -> u64) -> bool {
    let cpu = p.cpu;
    let Some(q) = crate::dsq::iter(id).find(|t| crate::place::may_run(t, cpu)) else {
        return false;
    };
    if q.dsq_vtime >= key {
        return false;
    }
    let allowed = crate::place::allowed(q) & crate::place::online();
    if crate::idle_mask() & allowed != 0 {
        return false;
    }
    crate::place::cpus(allowed)
        .filter(|&c| c != cpu)
        .filter_map(|c| crate::cpu_curr(c).map(|t| key_of(t)))
        .all(|k| k <= key)
}
