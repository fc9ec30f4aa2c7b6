//! `scenario`: interprets a declarative task mix, in the spirit of rt-app.
//! The host compiles a TOML file into a `ScenarioConfig`: up to 8 task
//! kinds, each started `count` times with a weight and an affinity, each
//! going through a list of phases (run, sleep, timer, send, publish, recv,
//! yield) a number of times or until the scenario's duration.
//!
//! The main task spawns every instance, waits until all have subscribed to
//! their topics, starts them together with one broadcast, and sleeps until
//! the last one is done. Instances stop by themselves at the deadline
//! (checked between phases; runs, sleeps and receives never outlast it);
//! one still alive a grace period later (e.g. two senders blocked on each
//! other's full mailboxes) is killed, so the run always ends and reports.
#![no_std]
#![no_main]

mod instance;
mod plan;
mod work;

use abi::config::{
    SCENARIO_MAGIC, SCENARIO_MAX_INSTANCES, SCENARIO_MAX_KINDS, SCENARIO_MAX_TIMERS,
    SCENARIO_RESULT_CHUNK,
};
use abi::ipc::{MSG_USER, SEND_BLOCK, SpawnOptions};
use core::fmt::Write;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use instance::Slot;
use oplib::proto::{GuestMessage, Msg, ScenarioResult, ScenarioTaskResult};
use oplib::{Api, message};
use plan::Plan;

oplib::operation!(config_magic: SCENARIO_MAGIC, main: main);

const MSG_READY: u32 = MSG_USER + 1;
const MSG_GO: u32 = MSG_USER + 2;
const MSG_DATA: u32 = MSG_USER + 3;
const MSG_DONE: u32 = MSG_USER + 4;
const MS: u64 = 1_000_000;
/// How long past the duration instances may take to notice it before the
/// main task kills them. Only a deadlock (or a vCPU the host starves)
/// needs it: nothing an instance does outlasts the deadline by itself.
const GRACE_NS: u64 = 100 * MS;
/// How long the main task waits for each instance to get ready.
const START_TIMEOUT_NS: u64 = 1000 * MS;

static MAIN: AtomicU32 = AtomicU32::new(0);
/// The guest clock (ns) at which the instances started, and at which
/// every instance stops.
static START_NS: AtomicU64 = AtomicU64::new(0);
/// Shared timers' last activations (rt-app's timers without the `unique`
/// prefix), from the start.
static TIMERS: [AtomicU64; SCENARIO_MAX_TIMERS] =
    [const { AtomicU64::new(0) }; SCENARIO_MAX_TIMERS];
static DEADLINE_NS: AtomicU64 = AtomicU64::new(0);
/// Instances that finished on their own.
static FINISHED: AtomicU32 = AtomicU32::new(0);
/// Instances started so far: the plan's, then forked ones, which take
/// the next slots.
static STARTED: AtomicU32 = AtomicU32::new(0);
/// Forks refused: every slot taken, or the core out of task slots.
static FORKS_REFUSED: AtomicU32 = AtomicU32::new(0);
/// Instances forked so far per kind: a forked instance's number is its
/// kind's count plus this.
static FORKED: [AtomicU32; SCENARIO_MAX_KINDS] = [const { AtomicU32::new(0) }; SCENARIO_MAX_KINDS];
/// `instance`'s argument bit for a forked instance (it does not wait for
/// the start: the run is under way).
const FORK_BIT: u64 = 1 << 32;
/// Instances still running at the end of the grace period, one bit each:
/// all of them are reported stuck, even one that a kill of another set
/// free to finish before its own kill (two tasks blocked sending to each
/// other are both stuck, whichever is killed first).
static STUCK: AtomicU64 = AtomicU64::new(0);
const _: () = assert!(SCENARIO_MAX_INSTANCES <= 64);
static PIDS: [AtomicU32; SCENARIO_MAX_INSTANCES] =
    [const { AtomicU32::new(0) }; SCENARIO_MAX_INSTANCES];
static SLOTS: [Slot; SCENARIO_MAX_INSTANCES] = [const { Slot::new() }; SCENARIO_MAX_INSTANCES];

/// Start instance `idx` of `kind` in slot `g` (`flags`: `FORK_BIT` or 0).
fn spawn(api: &Api, plan: &Plan, g: usize, kind: usize, idx: u32, flags: u64) -> Result<(), i64> {
    let t = plan.task(kind);
    SLOTS[g].kind.store(kind as u32, Ordering::Relaxed);
    SLOTS[g].instance.store(idx, Ordering::Relaxed);
    let opts = SpawnOptions {
        affinity: t.affinity,
        rt: t.rt,
        ..SpawnOptions::new(t.weight)
    };
    let pid = api.spawn_ex(instance::instance, g as u64 | flags, &opts)?;
    PIDS[g].store(pid, Ordering::Release);
    Ok(())
}

/// rt-app's fork: a new instance of `kind` in the next free slot, unless
/// every slot is taken. A slot the core then refuses to run stays in the
/// result with no passes (the progress check names it).
pub fn fork(api: &Api, plan: &Plan, kind: usize) {
    let mut g = STARTED.load(Ordering::Acquire);
    loop {
        if g as usize >= SCENARIO_MAX_INSTANCES {
            FORKS_REFUSED.fetch_add(1, Ordering::Relaxed);
            return;
        }
        match STARTED.compare_exchange(g, g + 1, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => break,
            Err(now) => g = now,
        }
    }
    let idx = plan.task(kind).count + FORKED[kind].fetch_add(1, Ordering::Relaxed);
    if spawn(api, plan, g as usize, kind, idx, FORK_BIT).is_err() {
        FORKS_REFUSED.fetch_add(1, Ordering::Relaxed);
        SLOTS[g as usize].done.store(1, Ordering::Release);
        FINISHED.fetch_add(1, Ordering::AcqRel);
    }
}

/// End the run as failed, naming the operation.
fn fail(api: &Api, why: &str) -> ! {
    let mut text = heapless::String::<200>::new();
    let _ = write!(text, "scenario: {why}");
    api.fail(&text)
}

fn main(api: &Api) -> i32 {
    let plan = match Plan::from_config(api.config_bytes()) {
        Ok(p) => p,
        Err(why) => fail(api, why),
    };
    MAIN.store(api.current_pid(), Ordering::Relaxed);
    STARTED.store(plan.total, Ordering::Release);
    for g in 0..plan.total as usize {
        let (kind, idx) = plan.locate(g);
        if spawn(api, &plan, g, kind, idx, 0).is_err() {
            fail(api, "the core refused to spawn an instance");
        }
    }
    for _ in 0..plan.total {
        match api.recv(START_TIMEOUT_NS) {
            Ok(m) if m.kind == MSG_READY => {}
            _ => fail(api, "an instance did not get ready within 1 s"),
        }
    }
    let start = api.now_ns();
    let deadline = start + plan.cfg.duration_ns;
    START_NS.store(start, Ordering::Relaxed);
    for t in &TIMERS {
        t.store(start, Ordering::Relaxed);
    }
    DEADLINE_NS.store(deadline, Ordering::Release);
    match api.broadcast(&message(MSG_GO, deadline, b""), SEND_BLOCK) {
        Ok(n) if n == plan.total => {}
        _ => fail(api, "the start message did not reach every instance"),
    }
    wait_for_instances(api, deadline);
    let started = STARTED.load(Ordering::Acquire) as usize;
    let elapsed_ns = api.now_ns() - start;
    // In chunks: every field of 64 instances would not fit one message;
    // the host joins them.
    let mut g = 0;
    while g < started {
        let mut result = ScenarioResult {
            elapsed_ns,
            forks_refused: FORKS_REFUSED.load(Ordering::Relaxed),
            ..Default::default()
        };
        for i in g..(g + SCENARIO_RESULT_CHUNK).min(started) {
            // Capacity is SCENARIO_MAX_INSTANCES >= the chunk.
            let _ = result.tasks.push(task_result(i));
        }
        g += SCENARIO_RESULT_CHUNK;
        if api
            .report(&GuestMessage {
                msg: Some(Msg::ScenarioResult(result)),
            })
            .is_err()
        {
            fail(api, "could not send the result");
        }
    }
    0
}

/// Block until the last instance says it is done, or kill the ones still
/// running a grace period after the deadline; then join them all.
fn wait_for_instances(api: &Api, deadline: u64) {
    let give_up = deadline + GRACE_NS;
    loop {
        let now = api.now_ns();
        if FINISHED.load(Ordering::Acquire) == STARTED.load(Ordering::Acquire) || now >= give_up {
            break;
        }
        if matches!(api.recv(give_up - now), Ok(m) if m.kind == MSG_DONE) {
            break;
        }
    }
    // Who is stuck is decided before anything is killed. No fork comes
    // now: forks happen before the deadline, and a forker still running
    // is itself stuck.
    let started = STARTED.load(Ordering::Acquire) as usize;
    let mut stuck = 0u64;
    for (g, slot) in SLOTS.iter().enumerate().take(started) {
        if slot.done.load(Ordering::Acquire) == 0 {
            stuck |= 1 << g;
        }
    }
    STUCK.store(stuck, Ordering::Release);
    let mut killed = 0u32;
    for (g, pid) in PIDS.iter().enumerate().take(started) {
        if stuck & (1 << g) != 0 {
            let _ = api.kill(pid.load(Ordering::Relaxed));
            killed += 1;
        }
    }
    if killed > 0 {
        let mut text = heapless::String::<160>::new();
        let _ = write!(
            text,
            "scenario: killed {killed} instance(s) still running {} ms after the duration \
             (blocked on each other?); their loop times are not reported",
            GRACE_NS / MS
        );
        api.log(1, &text);
    }
    for pid in PIDS.iter().take(started) {
        match pid.load(Ordering::Acquire) {
            0 => {} // a fork the core refused
            p => {
                let _ = api.join(p);
            }
        }
    }
}

fn task_result(g: usize) -> ScenarioTaskResult {
    let s = &SLOTS[g];
    let mut t = ScenarioTaskResult {
        kind: s.kind.load(Ordering::Relaxed),
        instance: s.instance.load(Ordering::Relaxed),
        pid: PIDS[g].load(Ordering::Relaxed),
        loops: s.loops.load(Ordering::Relaxed),
        sent: s.sent.load(Ordering::Relaxed),
        received: s.received.load(Ordering::Relaxed),
        run_ns: s.run_ns.load(Ordering::Relaxed),
        run_away_ns: s.run_away_ns.load(Ordering::Relaxed),
        sync_wait_ns: s.sync_wait_ns.load(Ordering::Relaxed),
        ..Default::default()
    };
    let stuck = STUCK.load(Ordering::Acquire) & (1 << g) != 0;
    if s.done.load(Ordering::Acquire) == 1 && !stuck {
        t.set_loop_time(s.loop_time.load());
        t.set_sleep_overrun(s.sleep_overrun.load());
        t.set_lock_wait(s.lock_wait.load());
    }
    t
}
