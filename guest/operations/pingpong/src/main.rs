//! `pingpong`: pairs of tasks bouncing a message back and forth `rounds`
//! times, like `perf bench sched pipe`. Each round trip is two wake-ups
//! and two context switches, so its time is the scheduler's wake-up path:
//! on one CPU the switch itself, across CPUs the wake-up IPI and the idle
//! CPU's way back to work.
#![no_std]
#![no_main]

use abi::config::{PINGPONG_MAGIC, PINGPONG_MAX_PAIRS, PingpongConfig};
use abi::ipc::{MSG_USER, SEND_BLOCK, SpawnOptions, WAIT_FOREVER};
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use oplib::hist::Histogram;
use oplib::proto::{GuestMessage, Msg, PingpongResult};
use oplib::{Api, api, message};

oplib::operation!(config_magic: PINGPONG_MAGIC, main: main);

const MSG_PING: u32 = MSG_USER + 1;
const MSG_PONG: u32 = MSG_USER + 2;
const MSG_STOP: u32 = MSG_USER + 3;
/// A reply later than this is lost, not slow: the pinger gives up and the
/// host sees fewer round trips than asked for.
const REPLY_TIMEOUT_NS: u64 = 2_000_000_000;

static ROUNDS: AtomicU32 = AtomicU32::new(0);
/// The ponger of each pair, for its pinger.
static PEER: [AtomicU32; PINGPONG_MAX_PAIRS] = [const { AtomicU32::new(0) }; PINGPONG_MAX_PAIRS];
static ROUND_TRIPS: AtomicU64 = AtomicU64::new(0);
static RTT: Histogram = Histogram::new();

fn main(api: &Api) -> i32 {
    let Some(cfg) = PingpongConfig::from_bytes(api.config_bytes()) else {
        api.fail("pingpong: the config is not a PingpongConfig (magic PING, version 1): run make");
    };
    let pairs = cfg.pairs as usize;
    if pairs == 0 || pairs > PINGPONG_MAX_PAIRS || cfg.rounds == 0 {
        api.fail("pingpong: pairs or rounds out of range");
    }
    ROUNDS.store(cfg.rounds, Ordering::Relaxed);
    let cpus = api.cpu_count().max(1) as usize;
    let start = api.now_ns();
    let mut pids = [(0u32, 0u32); PINGPONG_MAX_PAIRS];
    for (pair, p) in pids.iter_mut().enumerate().take(pairs) {
        let (ping_cpu, pong_cpu) = if cfg.same_cpu != 0 {
            (pair % cpus, pair % cpus)
        } else {
            // 2p and 2p+1 differ modulo any cpus >= 2.
            ((2 * pair) % cpus, (2 * pair + 1) % cpus)
        };
        let pong = spawn(api, ponger, 0, cpu_mask(pong_cpu));
        PEER[pair].store(pong, Ordering::Relaxed);
        let ping = spawn(api, pinger, pair as u64, cpu_mask(ping_cpu));
        *p = (ping, pong);
    }
    for &(ping, pong) in pids.iter().take(pairs) {
        let _ = api.join(ping);
        let _ = api.join(pong);
    }
    let mut r = PingpongResult {
        pairs: cfg.pairs,
        rounds: cfg.rounds,
        same_cpu: cfg.same_cpu != 0,
        elapsed_ns: api.now_ns() - start,
        round_trips: ROUND_TRIPS.load(Ordering::Relaxed),
        ..PingpongResult::default()
    };
    r.set_rtt(RTT.stats());
    if api
        .report(&GuestMessage {
            msg: Some(Msg::PingpongResult(r)),
        })
        .is_err()
    {
        api.fail("pingpong: could not send the result");
    }
    0
}

fn cpu_mask(cpu: usize) -> u64 {
    1u64 << cpu
}

fn spawn(api: &Api, entry: extern "C" fn(u64) -> i32, arg: u64, affinity: u64) -> u32 {
    let opts = SpawnOptions {
        affinity,
        ..SpawnOptions::new(1)
    };
    api.spawn_ex(entry, arg, &opts)
        .unwrap_or_else(|_| api.fail("pingpong: the core refused to spawn a task"))
}

/// Answer every ping with a pong carrying its correlation id.
extern "C" fn ponger(_: u64) -> i32 {
    let api = api();
    loop {
        let Ok(m) = api.recv(WAIT_FOREVER) else {
            return 1;
        };
        if m.kind == MSG_STOP {
            return 0;
        }
        if api
            .send(m.from, &message(MSG_PONG, m.corr, b""), SEND_BLOCK)
            .is_err()
        {
            return 2;
        }
    }
}

/// Time `rounds` round trips to this pair's ponger, then stop it. Gives up
/// at the first lost or wrong reply (exit code 1).
extern "C" fn pinger(pair: u64) -> i32 {
    let api = api();
    let peer = PEER[pair as usize].load(Ordering::Relaxed);
    let mut code = 0;
    for i in 0..ROUNDS.load(Ordering::Relaxed) as u64 {
        let t = api.now_ns();
        if api
            .send(peer, &message(MSG_PING, i, b""), SEND_BLOCK)
            .is_err()
        {
            code = 1;
            break;
        }
        match api.recv(REPLY_TIMEOUT_NS) {
            Ok(m) if m.kind == MSG_PONG && m.corr == i && m.from == peer => {}
            _ => {
                code = 1;
                break;
            }
        }
        RTT.record(api.now_ns() - t);
        ROUND_TRIPS.fetch_add(1, Ordering::Relaxed);
    }
    let _ = api.send(peer, &message(MSG_STOP, 0, b""), SEND_BLOCK);
    code
}
