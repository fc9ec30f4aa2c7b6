//! Futexes: the one blocking primitive the operation library builds
//! mutexes, condition variables and barriers on (as glibc does on Linux),
//! so the core stays small and a contended lock is a task in
//! `TASK_BLOCKED` that the monitor and the policy see like any other
//! blocked task. Everything here runs with the scheduler lock held, so a
//! wake cannot slip between a waiter's check of the word and its block.

use crate::sched::{self, ENQ_WAKEUP, Sched, wake};
use crate::time::{ns_to_ticks, rdtsc};
use abi::calltable::{ERR_INVALID, ERR_TIMEOUT, FUTEX_CHANGED};
use abi::ipc::WAIT_FOREVER;
use abi::kstate::TASK_BLOCKED;
use core::sync::atomic::{AtomicU32, Ordering};

/// Block the caller while `*word == expected` (see `CallTable::futex_wait`).
pub fn wait(word: &AtomicU32, expected: u32, timeout_ns: u64) -> i64 {
    let addr = word as *const AtomicU32 as u64;
    sched::locked(|s| {
        let Some(cur) = sched::current_slot(s) else {
            return ERR_INVALID;
        };
        if word.load(Ordering::SeqCst) != expected {
            return FUTEX_CHANGED;
        }
        if timeout_ns == 0 {
            return ERR_TIMEOUT;
        }
        s.futex_seq += 1;
        let t = &mut s.tasks[cur];
        t.futex = addr;
        t.futex_seq = s.futex_seq;
        t.timed_out = false;
        if timeout_ns != WAIT_FOREVER {
            let at = rdtsc() + ns_to_ticks(timeout_ns).max(1);
            s.tasks[cur].wake_at = at;
            sched::arm_timer(s, at);
        }
        sched::block(s, TASK_BLOCKED);
        let t = &mut s.tasks[cur];
        t.futex = 0;
        t.wake_at = 0;
        if core::mem::take(&mut t.timed_out) {
            ERR_TIMEOUT
        } else {
            0
        }
    })
}

/// Wake up to `n` tasks waiting on `word`, longest waiting first.
pub fn wake_up(word: &AtomicU32, n: u32) -> i64 {
    let addr = word as *const AtomicU32 as u64;
    sched::locked(|s| {
        let mut woken = 0;
        while woken < n {
            let Some(w) = longest_waiting(s, addr) else {
                break;
            };
            let waker = sched::current_pid_locked(s);
            let t = &mut s.tasks[w];
            t.futex = 0;
            t.wake_at = 0;
            wake(s, w, ENQ_WAKEUP, waker);
            woken += 1;
        }
        i64::from(woken)
    })
}

fn longest_waiting(s: &Sched, addr: u64) -> Option<usize> {
    s.tasks
        .iter()
        .enumerate()
        .filter(|(_, t)| t.state == TASK_BLOCKED && t.futex == addr)
        .min_by_key(|(_, t)| t.futex_seq)
        .map(|(i, _)| i)
}
