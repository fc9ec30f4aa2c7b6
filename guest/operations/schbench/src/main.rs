//! `schbench`: the wake-up benchmark scheduler developers quote most.
//! Message tasks each own a group of workers. In rounds until the
//! duration ends, a message task sends every one of its workers a request
//! (waking it), each worker notes how long after the send it got to run
//! (the wake-up latency, schbench's headline number), does a fixed amount
//! of CPU work (the "think time") and replies; the message task notes each
//! request's time from send to reply and starts the next round when all
//! its workers have replied. A scheduler that is slow to run a woken task,
//! or that stacks the workers of a round on one CPU while others idle,
//! shows up in both latencies.
#![no_std]
#![no_main]

use abi::config::{
    OperationConfig, SCHBENCH_MAGIC, SCHBENCH_MAX_MESSAGE_THREADS, SCHBENCH_MAX_WORKERS,
    SchbenchConfig,
};
use abi::ipc::{MSG_USER, SEND_BLOCK, WAIT_FOREVER};
use abi::memmap::MAX_TASKS;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use oplib::hist::Histogram;
use oplib::proto::{GuestMessage, Msg, SchbenchResult};
use oplib::{Api, api, message, work};

oplib::operation!(config_magic: SCHBENCH_MAGIC, main: main);

const MSG_REQUEST: u32 = MSG_USER + 1;
const MSG_REPLY: u32 = MSG_USER + 2;
const MSG_STOP: u32 = MSG_USER + 3;
/// A reply later than this is lost, not slow: the message task gives up,
/// and the host sees a failed task rather than a hung run.
const REPLY_TIMEOUT_NS: u64 = 2_000_000_000;
/// Tasks schbench may start: the core's task table less the main task.
const MAX_SPAWNED: usize = MAX_TASKS - 1;

static DEADLINE: AtomicU64 = AtomicU64::new(0);
static WORK_NS: AtomicU64 = AtomicU64::new(0);
/// Workers per message task.
static WORKERS: AtomicU32 = AtomicU32::new(0);
/// Worker `g` (message task `g / workers`, its worker `g % workers`).
static WORKER_PID: [AtomicU32; MAX_SPAWNED] = [const { AtomicU32::new(0) }; MAX_SPAWNED];
/// Requests each worker answered, so the host can tell that every one
/// made progress.
static ANSWERED: [AtomicU64; MAX_SPAWNED] = [const { AtomicU64::new(0) }; MAX_SPAWNED];
static REQUESTS: AtomicU64 = AtomicU64::new(0);
static ROUNDS: AtomicU64 = AtomicU64::new(0);
static WAKEUP: Histogram = Histogram::new();
static REQUEST: Histogram = Histogram::new();

fn main(api: &Api) -> i32 {
    let Some(c) = SchbenchConfig::from_bytes(api.config_bytes()) else {
        api.fail("schbench: the config is not a SchbenchConfig (magic SCHB, version 1): run make");
    };
    let (m, w) = (c.message_threads as usize, c.workers as usize);
    // The host checked these against the same constants; a config that
    // gets here out of range was not written by this host.
    if m == 0
        || m > SCHBENCH_MAX_MESSAGE_THREADS
        || w == 0
        || w > SCHBENCH_MAX_WORKERS
        || c.tasks() > MAX_SPAWNED as u64
        || c.work_ns == 0
    {
        api.fail("schbench: message tasks, workers or work out of range");
    }
    WORKERS.store(c.workers, Ordering::Relaxed);
    WORK_NS.store(c.work_ns, Ordering::Relaxed);
    let start = api.now_ns();
    DEADLINE.store(start + c.duration_ns, Ordering::Relaxed);
    // Every worker exists before the first request is sent to it.
    for (g, pid) in WORKER_PID.iter().enumerate().take(m * w) {
        pid.store(spawn(api, worker, g as u64), Ordering::Relaxed);
    }
    let mut messengers = [0u32; SCHBENCH_MAX_MESSAGE_THREADS];
    for (i, pid) in messengers.iter_mut().enumerate().take(m) {
        *pid = spawn(api, message_task, i as u64);
    }
    // Message tasks first: they stop their workers when they end.
    let pids = messengers[..m].iter().copied().chain(
        WORKER_PID[..m * w]
            .iter()
            .map(|p| p.load(Ordering::Relaxed)),
    );
    let mut failed = 0u32;
    for pid in pids {
        if !matches!(api.join(pid), Ok(j) if j.exit_code == 0) {
            failed += 1;
        }
    }
    let answered = ANSWERED[..m * w].iter().map(|a| a.load(Ordering::Relaxed));
    let mut r = SchbenchResult {
        message_threads: c.message_threads,
        workers: c.workers,
        work_ns: c.work_ns,
        requests: REQUESTS.load(Ordering::Relaxed),
        answered: answered.clone().sum(),
        rounds: ROUNDS.load(Ordering::Relaxed),
        elapsed_ns: api.now_ns() - start,
        min_worker_requests: answered.clone().min().unwrap_or(0),
        max_worker_requests: answered.max().unwrap_or(0),
        failed_tasks: failed,
        ..SchbenchResult::default()
    };
    r.set_wakeup(WAKEUP.stats());
    r.set_request(REQUEST.stats());
    if api
        .report(&GuestMessage {
            msg: Some(Msg::SchbenchResult(r)),
        })
        .is_err()
    {
        api.fail("schbench: could not send the result");
    }
    0
}

fn spawn(api: &Api, entry: extern "C" fn(u64) -> i32, arg: u64) -> u32 {
    api.spawn(entry, arg, 1)
        .unwrap_or_else(|_| api.fail("schbench: the core refused to spawn a task"))
}

/// A request's correlation id: the round in the high half, the worker's
/// index in its group in the low half.
fn corr(round: u64, worker: usize) -> u64 {
    (round << 32) | worker as u64
}

/// Rounds of requests to this message task's workers until the deadline,
/// then stop them. Gives up (exit code 1) at the first lost or wrong reply.
extern "C" fn message_task(index: u64) -> i32 {
    let api = api();
    let w = WORKERS.load(Ordering::Relaxed) as usize;
    let deadline = DEADLINE.load(Ordering::Relaxed);
    let first = index as usize * w;
    let mut pids = [0u32; SCHBENCH_MAX_WORKERS];
    for (i, pid) in pids.iter_mut().enumerate().take(w) {
        *pid = WORKER_PID[first + i].load(Ordering::Relaxed);
    }
    let mut sent = [0u64; SCHBENCH_MAX_WORKERS];
    let mut rounds = 0u64;
    let mut code = 0;
    'rounds: while api.now_ns() < deadline {
        for (i, (&pid, t)) in pids[..w].iter().zip(&mut sent).enumerate() {
            *t = api.now_ns();
            let req = message(MSG_REQUEST, corr(rounds, i), b"");
            if api.send(pid, &req, SEND_BLOCK).is_err() {
                code = 1;
                break 'rounds;
            }
        }
        for _ in 0..w {
            let reply = api.recv(REPLY_TIMEOUT_NS);
            let now = api.now_ns();
            // Which worker answered: this round's request, from its pid.
            let from = match reply {
                Ok(m) if m.kind == MSG_REPLY && m.corr >> 32 == rounds => {
                    let i = (m.corr & 0xffff_ffff) as usize;
                    (i < w && pids[i] == m.from).then_some(i)
                }
                _ => None,
            };
            let Some(i) = from else {
                code = 1;
                break 'rounds;
            };
            REQUEST.record(now - sent[i]);
            REQUESTS.fetch_add(1, Ordering::Relaxed);
        }
        rounds += 1;
    }
    ROUNDS.fetch_add(rounds, Ordering::Relaxed);
    for &pid in &pids[..w] {
        let _ = api.send(pid, &message(MSG_STOP, 0, b""), SEND_BLOCK);
    }
    code
}

/// Answer requests until told to stop: note the wake-up latency (the
/// core stamps each message with its send time), do the work, reply.
extern "C" fn worker(g: u64) -> i32 {
    let api = api();
    let work_ns = WORK_NS.load(Ordering::Relaxed);
    loop {
        let Ok(m) = api.recv(WAIT_FOREVER) else {
            return 1;
        };
        if m.kind == MSG_STOP {
            return 0;
        }
        WAKEUP.record(api.now_ns().saturating_sub(m.sent_ns));
        work::busy_for(&api, work_ns);
        if api
            .send(m.from, &message(MSG_REPLY, m.corr, b""), SEND_BLOCK)
            .is_err()
        {
            return 2;
        }
        ANSWERED[g as usize].fetch_add(1, Ordering::Relaxed);
    }
}
