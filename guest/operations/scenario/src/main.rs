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
    SCENARIO_MAGIC, SCENARIO_MAX_INSTANCES, SCENARIO_MAX_TIMERS, SCENARIO_RESULT_CHUNK,
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
/// Instances still running at the end of the grace period, one bit each:
/// all of them are reported stuck, even one that a kill of another set
/// free to finish before its own kill (two tasks blocked sending to each
/// other are both stuck, whichever is killed first).
static STUCK: AtomicU64 = AtomicU64::new(0);
const _: () = assert!(SCENARIO_MAX_INSTANCES <= 64);
static PIDS: [AtomicU32; SCENARIO_MAX_INSTANCES] =
    [const { AtomicU32::new(0) }; SCENARIO_MAX_INSTANCES];
static SLOTS: [Slot; SCENARIO_MAX_INSTANCES] = [const { Slot::new() }; SCENARIO_MAX_INSTANCES];

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
    for (g, pid) in PIDS.iter().enumerate().take(plan.total as usize) {
        let (kind, _) = plan.locate(g);
        let t = plan.task(kind);
        let opts = SpawnOptions {
            affinity: t.affinity,
            rt: t.rt,
            ..SpawnOptions::new(t.weight)
        };
        match api.spawn_ex(instance::instance, g as u64, &opts) {
            Ok(p) => pid.store(p, Ordering::Relaxed),
            Err(_) => fail(api, "the core refused to spawn an instance"),
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
    wait_for_instances(api, &plan, deadline);
    let elapsed_ns = api.now_ns() - start;
    // In chunks: every field of 64 instances would not fit one message;
    // the host joins them.
    let mut g = 0;
    while g < plan.total as usize {
        let mut result = ScenarioResult {
            elapsed_ns,
            ..Default::default()
        };
        for i in g..(g + SCENARIO_RESULT_CHUNK).min(plan.total as usize) {
            // Capacity is SCENARIO_MAX_INSTANCES >= the chunk.
            let _ = result.tasks.push(task_result(&plan, i));
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
fn wait_for_instances(api: &Api, plan: &Plan, deadline: u64) {
    let give_up = deadline + GRACE_NS;
    loop {
        let now = api.now_ns();
        if FINISHED.load(Ordering::Acquire) == plan.total || now >= give_up {
            break;
        }
        if matches!(api.recv(give_up - now), Ok(m) if m.kind == MSG_DONE) {
            break;
        }
    }
    // Who is stuck is decided before anything is killed.
    let mut stuck = 0u64;
    for (g, slot) in SLOTS.iter().enumerate().take(plan.total as usize) {
        if slot.done.load(Ordering::Acquire) == 0 {
            stuck |= 1 << g;
        }
    }
    STUCK.store(stuck, Ordering::Release);
    let mut killed = 0u32;
    for (g, pid) in PIDS.iter().enumerate().take(plan.total as usize) {
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
    for pid in PIDS.iter().take(plan.total as usize) {
        let _ = api.join(pid.load(Ordering::Relaxed));
    }
}

fn task_result(plan: &Plan, g: usize) -> ScenarioTaskResult {
    let (kind, instance) = plan.locate(g);
    let s = &SLOTS[g];
    let mut t = ScenarioTaskResult {
        kind: kind as u32,
        instance,
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
