//! Each CPU's idle context: the loop its boot stack ends in. It runs
//! whatever the policy hands this CPU and otherwise waits -- halted at
//! CPL0 with interrupts on (`--idle halt`, woken by a tick or a wake-up
//! IPI) or spinning at CPL3 on its wake flag (`--idle poll`).

use super::{LOCK, Prev, expire_timers, pick_next, publish_cpu, state, switch_to};
use crate::kstate;
use crate::percpu;
use crate::time::rdtsc;
use core::sync::atomic::Ordering;

pub fn idle_loop(cpu: u32, tick_ticks: u64) -> ! {
    let pc = percpu::cpu(cpu);
    // The lock is held at the top of every round: taken here, kept when a
    // task switched back to this context (it holds it then), and taken
    // once on waking. Each round used to take it twice more (once to look
    // for work after a switch back, once to note the wake-up), and on a
    // cross-CPU wake-up the waker is often holding it right then.
    LOCK.lock();
    // A task just switched back here: the reschedule that did it found
    // nothing to run, and the lock has been held since, so a second look
    // (the policy's `dispatch` again, and its `cpu_tick`, which is for
    // ticks) would find nothing either, unless a timer fell due meanwhile.
    // On a cross-CPU wake-up the woken CPU waits for this lock while the
    // waker blocks: that look was in its way.
    let mut just_left = false;
    loop {
        // SAFETY: LOCK held; switch_to returns with it held.
        let s = unsafe { state() };
        let now = rdtsc();
        if !just_left || super::timer_due(now) {
            expire_timers(s, now);
            super::policy_cpu_tick(s, cpu);
            // After the timers: a task they woke has its wake-up stamped
            // later than `now`, and its switch-in must not come before it.
            let at = rdtsc();
            if let Some(next) = pick_next(s, cpu, at) {
                switch_to(s, cpu, Prev::Idle, Some(next), at);
                just_left = true;
                continue;
            }
        }
        just_left = false;
        // Publishing "idle" under the lock closes the race with wakers:
        // one that queued work before we took the lock was seen by
        // pick_next; one that queues after we drop it sees idle = 1 and
        // kicks us.
        pc.idle.store(1, Ordering::SeqCst);
        let halt = super::HALT_IDLE.load(Ordering::Relaxed);
        kstate::cpu_record(cpu, |r| r.idle = 1);
        publish_cpu(s, cpu);
        LOCK.unlock_no_resched();

        let start = rdtsc();
        if halt {
            crate::entry::idle_halt();
        } else {
            // Until woken, the tick, or a timer's time (a sleep ends on
            // time, not at the next tick).
            loop {
                let now = rdtsc();
                if pc.wake_pending.load(Ordering::Acquire) != 0
                    || now - start >= tick_ticks
                    || super::timer_due(now)
                {
                    break;
                }
                core::hint::spin_loop();
            }
        }
        let end = rdtsc();
        kstate::note_timer(cpu, end);
        pc.wake_pending.store(0, Ordering::Relaxed);
        pc.idle.store(0, Ordering::SeqCst);
        LOCK.lock();
        kstate::cpu_record(cpu, |r| {
            r.idle = 0;
            r.idle_tsc += end - start;
            r.clock_tsc = end;
        });
    }
}
