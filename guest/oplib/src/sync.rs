//! Mutexes, condition variables, barriers and semaphores on the core's futex (call
//! table v5), built the way glibc builds them on Linux's: the core only
//! blocks and wakes; the protocol lives here, in the operation. Every
//! wait is bounded by a deadline (guest clock, ns) so a workload whose
//! peer stopped still ends with its run.

use crate::Api;
use abi::calltable::ERR_TIMEOUT;
use core::sync::atomic::{AtomicU32, Ordering};

/// A mutex: 0 free, 1 held, 2 held and maybe waited for (Drepper's
/// "futexes are tricky", mutex 2), so an uncontended lock and unlock
/// never enter the core.
pub struct Mutex(AtomicU32);

impl Default for Mutex {
    fn default() -> Self {
        Self::new()
    }
}

impl Mutex {
    pub const fn new() -> Self {
        Mutex(AtomicU32::new(0))
    }

    /// Take it, waiting at most until `deadline`; false if the deadline
    /// came first (the mutex is then not held).
    pub fn lock(&self, api: &Api, deadline: u64) -> bool {
        if self
            .0
            .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            return true;
        }
        loop {
            if self.0.swap(2, Ordering::Acquire) == 0 {
                return true;
            }
            let now = api.now_ns();
            if now >= deadline {
                return false;
            }
            api.futex_wait(&self.0, 2, deadline - now);
        }
    }

    /// Release it (the caller holds it), waking one waiter if any may
    /// wait.
    pub fn unlock(&self, api: &Api) {
        if self.0.swap(0, Ordering::Release) == 2 {
            api.futex_wake(&self.0, 1);
        }
    }
}

/// A condition variable: a sequence number that every signal bumps, so a
/// signal between reading it and blocking is not lost.
pub struct Condvar(AtomicU32);

impl Default for Condvar {
    fn default() -> Self {
        Self::new()
    }
}

impl Condvar {
    pub const fn new() -> Self {
        Condvar(AtomicU32::new(0))
    }

    /// Wait for a signal or broadcast, at most until `deadline`, releasing
    /// `held` meanwhile and taking it back after (as `pthread_cond_wait`).
    /// Returns (woken before the deadline, `held` taken back); the second
    /// is true when there was no mutex to take back.
    pub fn wait(&self, api: &Api, held: Option<&Mutex>, deadline: u64) -> (bool, bool) {
        let seq = self.0.load(Ordering::Acquire);
        if let Some(m) = held {
            m.unlock(api);
        }
        let now = api.now_ns();
        let woken = now < deadline && api.futex_wait(&self.0, seq, deadline - now) != ERR_TIMEOUT;
        let relocked = held.is_none_or(|m| m.lock(api, deadline));
        (woken, relocked)
    }

    /// Wake the longest waiter.
    pub fn signal(&self, api: &Api) {
        self.0.fetch_add(1, Ordering::Release);
        api.futex_wake(&self.0, 1);
    }

    /// Wake every waiter.
    pub fn broadcast(&self, api: &Api) {
        self.0.fetch_add(1, Ordering::Release);
        api.futex_wake(&self.0, u32::MAX);
    }
}

/// A reusable barrier: the last of `parties` to arrive starts a new
/// generation and wakes the others.
pub struct Barrier {
    arrived: AtomicU32,
    generation: AtomicU32,
}

impl Default for Barrier {
    fn default() -> Self {
        Self::new()
    }
}

impl Barrier {
    pub const fn new() -> Self {
        Barrier {
            arrived: AtomicU32::new(0),
            generation: AtomicU32::new(0),
        }
    }

    /// Arrive and wait for the rest of `parties`, at most until
    /// `deadline`; false if the deadline came first.
    pub fn wait(&self, api: &Api, parties: u32, deadline: u64) -> bool {
        let generation = self.generation.load(Ordering::Acquire);
        if self.arrived.fetch_add(1, Ordering::AcqRel) + 1 >= parties {
            self.arrived.store(0, Ordering::Release);
            self.generation.fetch_add(1, Ordering::AcqRel);
            api.futex_wake(&self.generation, u32::MAX);
            return true;
        }
        loop {
            if self.generation.load(Ordering::Acquire) != generation {
                return true;
            }
            let now = api.now_ns();
            if now >= deadline {
                return false;
            }
            api.futex_wait(&self.generation, generation, deadline - now);
        }
    }
}

/// A counting semaphore (POSIX's, as rt-app's `sem_post`/`sem_wait` use
/// it): posts with no waiter are remembered.
pub struct Semaphore(AtomicU32);

impl Default for Semaphore {
    fn default() -> Self {
        Self::new()
    }
}

impl Semaphore {
    pub const fn new() -> Self {
        Semaphore(AtomicU32::new(0))
    }

    /// Add one, waking a waiter if any.
    pub fn post(&self, api: &Api) {
        self.0.fetch_add(1, Ordering::Release);
        api.futex_wake(&self.0, 1);
    }

    /// Take one, waiting while there is none, at most until `deadline`;
    /// false if the deadline came first.
    pub fn wait(&self, api: &Api, deadline: u64) -> bool {
        loop {
            let n = self.0.load(Ordering::Acquire);
            if n > 0 {
                if self
                    .0
                    .compare_exchange(n, n - 1, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    return true;
                }
                continue;
            }
            let now = api.now_ns();
            if now >= deadline {
                return false;
            }
            api.futex_wait(&self.0, 0, deadline - now);
        }
    }
}
