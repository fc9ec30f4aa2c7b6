//! One task instance: subscribe, say ready, wait for the start, then go
//! through the kind's phases until its loop count or the scenario's
//! deadline, recording loop times and sleep overruns. Counters go to the
//! instance's [`Slot`] as they change, so the main task can report them
//! even for an instance it had to kill.

use crate::plan::Plan;
use crate::{
    DEADLINE_NS, FINISHED, MAIN, MSG_DATA, MSG_DONE, MSG_GO, MSG_READY, PIDS, SLOTS, START_NS,
    STARTED, TIMERS,
};
use abi::config::{
    PHASE_BARRIER, PHASE_BROADCAST, PHASE_FORK, PHASE_LOCK, PHASE_PUBLISH, PHASE_RECV, PHASE_RUN,
    PHASE_SEM_POST, PHASE_SEM_WAIT, PHASE_SEND, PHASE_SIGNAL, PHASE_SLEEP, PHASE_TIMER,
    PHASE_UNLOCK, PHASE_WAIT, PHASE_YIELD, Phase, SCENARIO_MAX_PHASES, SCENARIO_MAX_SYNCS,
    TIMER_ABSOLUTE,
};
use abi::ipc::{SEND_BLOCK, WAIT_FOREVER};
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use oplib::hist::{Histogram, SharedStats};
use oplib::sync::{Barrier, Condvar, Mutex, Semaphore};
use oplib::work::Busy;

/// A named sync object: rt-app's resources share one namespace, so each
/// name is a mutex, a condition variable, a barrier and a semaphore.
struct SyncObj {
    mutex: Mutex,
    cond: Condvar,
    barrier: Barrier,
    sem: Semaphore,
}

// `Runner::held` has a bit per object.
const _: () = assert!(SCENARIO_MAX_SYNCS <= 32);

static SYNCS: [SyncObj; SCENARIO_MAX_SYNCS] = [const {
    SyncObj {
        mutex: Mutex::new(),
        cond: Condvar::new(),
        barrier: Barrier::new(),
        sem: Semaphore::new(),
    }
}; SCENARIO_MAX_SYNCS];
use oplib::{Api, api, message};

/// What one instance shares with the main task.
pub struct Slot {
    pub loops: AtomicU64,
    pub sent: AtomicU64,
    pub received: AtomicU64,
    /// The instance's kind and number within it (set before it starts).
    pub kind: AtomicU32,
    pub instance: AtomicU32,
    /// Own work done in `run` phases, and time away from it meanwhile
    /// (interrupts, the host, other tasks), ns.
    pub run_ns: AtomicU64,
    pub run_away_ns: AtomicU64,
    /// Time blocked in `wait` and `barrier` phases, ns.
    pub sync_wait_ns: AtomicU64,
    /// 1 once the stats below are final.
    pub done: AtomicU32,
    /// The instance keeps its histograms on its own stack (two per
    /// instance would not fit the image's size cap as statics) and leaves
    /// only these figures behind.
    pub loop_time: SharedStats,
    pub sleep_overrun: SharedStats,
    /// From a `lock` phase to holding the mutex: how long it waited.
    pub lock_wait: SharedStats,
}

impl Slot {
    pub const fn new() -> Self {
        Slot {
            loops: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            received: AtomicU64::new(0),
            kind: AtomicU32::new(0),
            instance: AtomicU32::new(0),
            run_ns: AtomicU64::new(0),
            run_away_ns: AtomicU64::new(0),
            sync_wait_ns: AtomicU64::new(0),
            done: AtomicU32::new(0),
            loop_time: SharedStats::new(),
            sleep_overrun: SharedStats::new(),
            lock_wait: SharedStats::new(),
        }
    }
}

/// Entry of every instance; `g` is its global instance number.
pub extern "C" fn instance(g: u64) -> i32 {
    let api = api();
    let plan = match Plan::from_config(api.config_bytes()) {
        Ok(p) => p,
        Err(why) => crate::fail(&api, why),
    };
    let forked = g & crate::FORK_BIT != 0;
    let g = (g & !crate::FORK_BIT) as usize;
    let kind = SLOTS[g].kind.load(Ordering::Relaxed) as usize;
    let idx = SLOTS[g].instance.load(Ordering::Relaxed);
    let task = plan.task(kind);
    for topic in 0..plan.cfg.topics as usize {
        if task.subscribe & (1 << topic) != 0 && api.subscribe(plan.topic(topic)).is_err() {
            crate::fail(&api, "an instance could not subscribe to its topic");
        }
    }
    let main = MAIN.load(Ordering::Relaxed);
    // A forked instance starts at once: the run is under way. The others
    // say they are ready and wait for the start.
    if !forked {
        if api
            .send(main, &message(MSG_READY, g as u64, b""), SEND_BLOCK)
            .is_err()
        {
            crate::fail(&api, "an instance could not reach the main task");
        }
        // GO is the first message: the main task broadcasts it while every
        // mailbox is empty and before anyone else sends.
        loop {
            match api.recv(WAIT_FOREVER) {
                Ok(m) if m.kind == MSG_GO => break,
                Ok(_) => {}
                Err(_) => crate::fail(&api, "an instance could not wait for the start"),
            }
        }
    }
    // Every timer's first period starts when the scenario did, so
    // periodic instances are activated together, as rt-app's are; a
    // forked one's when it was forked.
    let t0 = if forked {
        api.now_ns()
    } else {
        START_NS.load(Ordering::Relaxed)
    };
    let mut r = Runner {
        api,
        plan: &plan,
        idx,
        slot: &SLOTS[g],
        deadline: DEADLINE_NS.load(Ordering::Acquire),
        loops: 0,
        sent: 0,
        received: 0,
        run: Busy::default(),
        next_activation: [t0; SCENARIO_MAX_PHASES],
        loop_time: Histogram::new(),
        sleep_overrun: Histogram::new(),
        lock_wait: Histogram::new(),
        held: 0,
        sync_wait: 0,
    };
    if task.delay_ns > 0 {
        // rt-app's delay: once, before the first pass, not part of it.
        let now = r.api.now_ns();
        r.api
            .sleep_ns(task.delay_ns.min(r.deadline.saturating_sub(now)).max(1));
    }
    r.go(task.repeat as u64, &task.phase[..task.phases as usize]);
    r.slot.loop_time.store(&r.loop_time.stats());
    r.slot.sleep_overrun.store(&r.sleep_overrun.stats());
    r.slot.lock_wait.store(&r.lock_wait.stats());
    // Mutexes still held when the deadline cut the pass short are let go,
    // so no other instance waits on an ended one.
    for (i, o) in SYNCS.iter().enumerate() {
        if r.held & (1 << i) != 0 {
            o.mutex.unlock(&r.api);
        }
    }
    r.slot.done.store(1, Ordering::Release);
    if FINISHED.fetch_add(1, Ordering::AcqRel) + 1 == STARTED.load(Ordering::Acquire) {
        let _ = api.send(main, &message(MSG_DONE, 0, b""), SEND_BLOCK);
    }
    0
}

struct Runner<'a> {
    api: Api,
    plan: &'a Plan,
    idx: u32,
    slot: &'a Slot,
    deadline: u64,
    loops: u64,
    sent: u64,
    received: u64,
    /// What the `run` phases did so far.
    run: Busy,
    /// Per `timer` phase: its last activation.
    next_activation: [u64; SCENARIO_MAX_PHASES],
    loop_time: Histogram,
    sleep_overrun: Histogram,
    lock_wait: Histogram,
    /// Sync objects whose mutex this instance holds (bit n = object n).
    held: u32,
    /// Time blocked in `wait` and `barrier` phases so far, ns.
    sync_wait: u64,
}

impl Runner<'_> {
    /// `repeat` passes through `phases` (0 = until the deadline).
    fn go(&mut self, repeat: u64, phases: &[Phase]) {
        while repeat == 0 || self.loops < repeat {
            let t0 = self.api.now_ns();
            for (i, p) in phases.iter().enumerate() {
                if self.api.now_ns() >= self.deadline || !self.phase(i, p) {
                    return;
                }
            }
            self.loops += 1;
            self.loop_time.record(self.api.now_ns() - t0);
            self.slot.loops.store(self.loops, Ordering::Relaxed);
        }
    }

    /// Run phase `i`; false when the deadline cut it short.
    fn phase(&mut self, i: usize, p: &Phase) -> bool {
        match p.op {
            PHASE_RUN => {
                let done = crate::work::run(&self.api, p.value, self.deadline, &mut self.run);
                self.slot
                    .run_ns
                    .store(self.run.worked_ns, Ordering::Relaxed);
                self.slot
                    .run_away_ns
                    .store(self.run.away_ns, Ordering::Relaxed);
                done
            }
            PHASE_SLEEP => self.sleep(p.value),
            PHASE_TIMER => self.timer(i, p.value, p.arg),
            PHASE_SEND => {
                let peer = self.plan.peer(p.arg as usize, self.idx);
                let pid = PIDS[peer].load(Ordering::Relaxed);
                // A peer that already ended refuses; the phase still ends.
                if self.api.send(pid, &self.data(), SEND_BLOCK).is_ok() {
                    self.sent += 1;
                    self.slot.sent.store(self.sent, Ordering::Relaxed);
                }
                true
            }
            PHASE_PUBLISH => {
                let topic = self.plan.topic(p.arg as usize);
                if let Ok(n) = self.api.publish(topic, &self.data(), SEND_BLOCK) {
                    self.sent += u64::from(n);
                    self.slot.sent.store(self.sent, Ordering::Relaxed);
                }
                true
            }
            PHASE_RECV => self.recv(p.value),
            PHASE_YIELD => {
                self.api.yield_now();
                true
            }
            PHASE_LOCK => self.lock(p.arg as usize),
            PHASE_FORK => {
                crate::fork(&self.api, self.plan, p.arg as usize);
                true
            }
            PHASE_UNLOCK => {
                let bit = 1 << p.arg;
                // Unlocking a mutex it does not hold is a no-op (rt-app
                // leaves it to pthreads, where it is undefined).
                if self.held & bit != 0 {
                    self.held &= !bit;
                    SYNCS[p.arg as usize].mutex.unlock(&self.api);
                }
                true
            }
            PHASE_WAIT => self.wait(p.arg as usize, p.value as usize),
            PHASE_SIGNAL => {
                SYNCS[p.arg as usize].cond.signal(&self.api);
                true
            }
            PHASE_BROADCAST => {
                SYNCS[p.arg as usize].cond.broadcast(&self.api);
                true
            }
            PHASE_SEM_POST => {
                SYNCS[p.arg as usize].sem.post(&self.api);
                true
            }
            PHASE_SEM_WAIT => {
                let t = self.api.now_ns();
                let done = SYNCS[p.arg as usize].sem.wait(&self.api, self.deadline);
                self.add_sync_wait(t);
                done
            }
            PHASE_BARRIER => {
                let t = self.api.now_ns();
                let parties = self.plan.cfg.sync_parties[p.arg as usize];
                let done = SYNCS[p.arg as usize]
                    .barrier
                    .wait(&self.api, parties, self.deadline);
                self.add_sync_wait(t);
                done
            }
            _ => true, // Plan::from_config refused every other opcode.
        }
    }

    /// Take object `i`'s mutex (a no-op if this instance holds it),
    /// recording how long that took; false if the deadline came first.
    fn lock(&mut self, i: usize) -> bool {
        let bit = 1 << i;
        if self.held & bit != 0 {
            return true;
        }
        let t = self.api.now_ns();
        if !SYNCS[i].mutex.lock(&self.api, self.deadline) {
            return false;
        }
        self.held |= bit;
        self.lock_wait.record(self.api.now_ns().saturating_sub(t));
        true
    }

    /// Wait on object `c`'s condition variable with object `m`'s mutex
    /// (released meanwhile if held); false if the deadline came first.
    fn wait(&mut self, c: usize, m: usize) -> bool {
        let t = self.api.now_ns();
        let bit = 1 << m;
        let held = (self.held & bit != 0).then_some(&SYNCS[m].mutex);
        let (woken, relocked) = SYNCS[c].cond.wait(&self.api, held, self.deadline);
        if !relocked {
            self.held &= !bit;
        }
        self.add_sync_wait(t);
        woken && relocked
    }

    fn add_sync_wait(&mut self, since: u64) {
        self.sync_wait += self.api.now_ns().saturating_sub(since);
        self.slot
            .sync_wait_ns
            .store(self.sync_wait, Ordering::Relaxed);
    }

    fn data(&self) -> abi::ipc::Message {
        message(MSG_DATA, self.loops, b"")
    }

    /// Sleep `ns`; one that would end past the deadline sleeps until the
    /// deadline and is not recorded (the task stops after it).
    fn sleep(&mut self, ns: u64) -> bool {
        let t = self.api.now_ns();
        let want = t.saturating_add(ns);
        if want > self.deadline {
            self.api.sleep_ns(self.deadline.saturating_sub(t).max(1));
            return false;
        }
        self.api.sleep_ns(ns);
        self.sleep_overrun
            .record(self.api.now_ns().saturating_sub(want));
        true
    }

    /// Wait for the next activation of timer phase `i` (or of the shared
    /// timer `arg` names), `period` after its last one. If that moment
    /// already passed the lateness is recorded and, in relative mode, the
    /// next period starts now; in absolute mode the grid stays.
    fn timer(&mut self, i: usize, period: u64, arg: u32) -> bool {
        let shared = match (arg & 0xff) as usize {
            0 => None,
            k => Some(&TIMERS[k - 1]),
        };
        // A shared timer moves on by a period at each use, by anyone.
        let target = match shared {
            None => self.next_activation[i].saturating_add(period),
            Some(t) => t.fetch_add(period, Ordering::AcqRel).saturating_add(period),
        };
        if target > self.deadline {
            let t = self.api.now_ns();
            self.api.sleep_ns(self.deadline.saturating_sub(t).max(1));
            return false;
        }
        let t = self.api.now_ns();
        let next = if t < target {
            self.api.sleep_ns(target - t);
            self.sleep_overrun
                .record(self.api.now_ns().saturating_sub(target));
            target
        } else {
            self.sleep_overrun.record(t - target);
            if arg & TIMER_ABSOLUTE != 0 { target } else { t }
        };
        match shared {
            None => self.next_activation[i] = next,
            Some(s) if next != target => s.store(next, Ordering::Release),
            Some(_) => {}
        }
        true
    }

    /// Wait for a message at most `timeout` ns (0 = forever), and never
    /// past the deadline, so a peer that stopped cannot hold this task.
    fn recv(&mut self, timeout: u64) -> bool {
        let t = self.api.now_ns();
        if t >= self.deadline {
            return false;
        }
        let left = self.deadline - t;
        let wait = if timeout == 0 {
            left
        } else {
            timeout.min(left)
        };
        match self.api.recv(wait) {
            Ok(m) => {
                if m.kind == MSG_DATA {
                    self.received += 1;
                    self.slot.received.store(self.received, Ordering::Relaxed);
                }
                true
            }
            // Cut short by the deadline: this pass does not count.
            Err(_) => wait < left,
        }
    }
}
