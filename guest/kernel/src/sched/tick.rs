//! The periodic tick (entered at CPL3 through `tick_trampoline`), timers
//! (sleeps and receive timeouts) and `preempt_point`.

use super::policy::{ENQ_WAKEUP, Policy};
use super::{
    LOCK, Leave, Sched, account, over_limit, publish_task, reschedule, state, wake, with_policy,
};
use crate::kstate;
use crate::percpu;
use crate::time::rdtsc;
use abi::ipc::{EXIT_KILLED, EXIT_TIMED_OUT};
use abi::kstate::{TASK_BLOCKED, TASK_RECEIVING, TASK_SENDING, TASK_SLEEPING};
use core::sync::atomic::{AtomicU64, Ordering};

/// `Sched::next_timer` for readers without the lock: `preempt_point` and
/// the polling idle loop end a sleep when its time comes, not at the next
/// tick (a periodic task's release was up to a tick late, and EDF, which
/// dates a job's deadline from its wake-up, ran it as if released late).
static NEXT_TIMER: AtomicU64 = AtomicU64::new(u64::MAX);

/// Arm a timer at TSC `at`. Lock held.
pub fn arm_timer(s: &mut Sched, at: u64) {
    s.next_timer = s.next_timer.min(at);
    NEXT_TIMER.store(s.next_timer, Ordering::Relaxed);
}

/// Whether a timer is due at TSC `now` (a read without the lock; the
/// tick path checks again under it).
#[inline]
pub fn timer_due(now: u64) -> bool {
    now >= NEXT_TIMER.load(Ordering::Relaxed)
}

/// The LAPIC tick, at CPL3 on whatever stack was interrupted.
pub extern "C" fn on_tick() {
    crate::kstate::note_timer(percpu::cpu_id(), rdtsc());
    if percpu::preempt_count() > 0 {
        // Inside the scheduler or a TLV write: do it when that ends.
        percpu::this_cpu().need_resched.store(1, Ordering::Relaxed);
        return;
    }
    tick(true);
}

/// A tick that arrived while preemption was off, run now that it is on.
pub fn deferred_resched() {
    tick(false);
}

/// The cheap check tasks call in inner loops: only when the slice has
/// run out (or a tick was deferred) does it ask the policy.
#[inline]
pub fn preempt_point() {
    let pc = percpu::this_cpu();
    let now = rdtsc();
    if now >= pc.slice_end.load(Ordering::Relaxed)
        || pc.need_resched.load(Ordering::Relaxed) != 0
        || timer_due(now)
    {
        tick(false);
    }
}

fn tick(real: bool) {
    LOCK.lock();
    // SAFETY: LOCK held; reschedule returns with it held.
    let s = unsafe { state() };
    let cpu = percpu::cpu_id();
    let pc = percpu::this_cpu();
    pc.need_resched.store(0, Ordering::Relaxed);
    let now = rdtsc();
    if !real {
        // A preemption point reached the tick: guest code ran now.
        crate::steal::heard(cpu, now, kstate::tick_period());
    }
    if real {
        kstate::cpu_record(cpu, |r| {
            r.ticks += 1;
            r.clock_tsc = now;
        });
    }
    expire_timers(s, now);
    if real {
        super::policy_cpu_tick(s, cpu);
    }
    if let Some(cur) = s.running[cpu as usize].map(|x| x as usize) {
        account(s, cur, now);
        let t = &s.tasks[cur];
        if t.kill_pending || over_limit(t) {
            let reason = if t.kill_pending {
                EXIT_KILLED
            } else {
                EXIT_TIMED_OUT
            };
            super::end_task(s, cur, -1, reason);
            reschedule(s, Leave::Exit);
        }
        let info = s.infos[cur];
        let ran = super::ran_ns(s, cur);
        let preempt = with_policy(s, |p, c| p.tick(c, &info, cpu, ran));
        publish_task(s, cur);
        if preempt {
            reschedule(s, Leave::Preempt);
        } else {
            pc.slice_end.store(now + s.slice_ticks, Ordering::Relaxed);
        }
    }
    LOCK.unlock_no_resched();
}

/// Wake every sleeper whose time has come and end every receive whose
/// timeout passed. Lock held.
pub fn expire_timers(s: &mut Sched, now: u64) {
    if now < s.next_timer {
        return;
    }
    let mut next = u64::MAX;
    for slot in 0..s.tasks.len() {
        let t = &mut s.tasks[slot];
        if t.wake_at == 0
            || !matches!(
                t.state,
                TASK_SLEEPING | TASK_RECEIVING | TASK_SENDING | TASK_BLOCKED
            )
        {
            continue;
        }
        if t.wake_at <= now {
            t.wake_at = 0;
            // A receive or a futex wait times out; a sleep simply ends.
            t.timed_out = matches!(t.state, TASK_RECEIVING | TASK_BLOCKED);
            wake(s, slot, ENQ_WAKEUP, 0);
        } else {
            next = next.min(t.wake_at);
        }
    }
    s.next_timer = next;
    NEXT_TIMER.store(next, Ordering::Relaxed);
}
