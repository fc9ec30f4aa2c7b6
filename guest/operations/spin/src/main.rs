//! `spin`: N tasks, each repeating a fixed unit of integer work and
//! offering the CPU back (`preempt_point`) after every unit, until the
//! configured duration has passed. Units done per task and the runtime the
//! core charged each task say how the scheduler shared the CPU.
#![no_std]
#![no_main]

use abi::config::{
    SPIN_MAGIC, SPIN_MAX_TASKS, SpinConfig, TEST_FAULT_HANG, TEST_FAULT_NULL, TEST_FAULT_PANIC,
    TEST_FAULT_STALL, TEST_FAULT_TRIPLE, TEST_FAULT_UD2,
};
use abi::ipc::SpawnOptions;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use oplib::proto::{GuestMessage, Msg, SpinResult, SpinTask};
use oplib::{Api, api};

oplib::operation!(config_magic: SPIN_MAGIC, main: main);

/// xorshift rounds in one unit: about a quarter of a microsecond, well
/// under the smallest slice, so `preempt_point` is reached often.
const UNIT_ITERATIONS: u64 = 256;

static DEADLINE_NS: AtomicU64 = AtomicU64::new(0);
static TEST_FAULT: AtomicU32 = AtomicU32::new(0);
static UNITS: [AtomicU64; SPIN_MAX_TASKS] = [const { AtomicU64::new(0) }; SPIN_MAX_TASKS];

fn main(api: &Api) -> i32 {
    let Some(cfg) = SpinConfig::from_bytes(api.config_bytes()) else {
        api.fail("spin: the config is not a SpinConfig (magic SPIN, version 1): run make");
    };
    let n = cfg.tasks as usize;
    if n == 0 || n > SPIN_MAX_TASKS {
        api.fail("spin: task count out of range");
    }
    TEST_FAULT.store(cfg.test_fault, Ordering::Relaxed);
    let preempt_point_ps = time_preempt_point(api);
    let start = api.now_ns();
    DEADLINE_NS.store(start + cfg.duration_ns, Ordering::Relaxed);
    let mut pids = [0u32; SPIN_MAX_TASKS];
    for (i, pid) in pids.iter_mut().enumerate().take(n) {
        let opts = SpawnOptions {
            affinity: cfg.affinity[i],
            ..SpawnOptions::new(cfg.weights[i])
        };
        *pid = match api.spawn_ex(worker, i as u64, &opts) {
            Ok(pid) => pid,
            Err(_) => api.fail("spin: the core refused to spawn a task"),
        };
    }
    let mut result = SpinResult::default();
    for (i, &pid) in pids.iter().enumerate().take(n) {
        let Ok(info) = api.join(pid) else {
            api.fail("spin: join failed");
        };
        let t = SpinTask {
            pid,
            units: UNITS[i].load(Ordering::Relaxed),
            runtime_ns: info.runtime_ns,
            weight: cfg.weights[i],
            switches: info.switches,
            cpu: info.cpu,
        };
        // Capacity is SPIN_MAX_TASKS and n <= SPIN_MAX_TASKS.
        let _ = result.tasks.push(t);
    }
    result.elapsed_ns = api.now_ns() - start;
    result.unit_iterations = UNIT_ITERATIONS;
    result.preempt_point_ps = preempt_point_ps;
    if api
        .report(&GuestMessage {
            msg: Some(Msg::SpinResult(result)),
        })
        .is_err()
    {
        api.fail("spin: could not send the result");
    }
    0
}

/// Median cost of one `preempt_point()` that does not switch, in ps:
/// timed before any worker exists, so nothing can take the CPU, over 64
/// batches of 256 calls (the median drops batches a tick landed in).
fn time_preempt_point(api: &Api) -> u64 {
    const BATCH: u64 = 256;
    let mut per_batch = [0u64; 64];
    for b in per_batch.iter_mut() {
        let t = api.now_ns();
        for _ in 0..BATCH {
            api.preempt_point();
        }
        *b = (api.now_ns() - t) * 1000 / BATCH;
    }
    per_batch.sort_unstable();
    per_batch[per_batch.len() / 2]
}

extern "C" fn worker(index: u64) -> i32 {
    let api = api();
    if index == 0 {
        test_fault(TEST_FAULT.load(Ordering::Relaxed));
    }
    let deadline = DEADLINE_NS.load(Ordering::Relaxed);
    let mut x = index + 1;
    let mut units = 0u64;
    loop {
        x = unit(x);
        units += 1;
        api.preempt_point();
        if api.now_ns() >= deadline {
            break;
        }
    }
    core::hint::black_box(x);
    UNITS[index as usize].store(units, Ordering::Relaxed);
    0
}

/// One unit of integer work (xorshift64), opaque to the optimiser.
#[inline(never)]
fn unit(mut x: u64) -> u64 {
    for _ in 0..UNIT_ITERATIONS {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x = core::hint::black_box(x);
    }
    x
}

/// Test-only: make the guest fail in a chosen way so the host's fault
/// paths are exercised end to end.
fn test_fault(kind: u32) {
    match kind {
        TEST_FAULT_UD2 => trigger_fault(),
        TEST_FAULT_NULL => write_null(),
        TEST_FAULT_HANG => hang(),
        TEST_FAULT_TRIPLE => triple_fault(),
        TEST_FAULT_PANIC => panic!("test-only panic requested with --test-fault panic"),
        TEST_FAULT_STALL => stall(),
        _ => {}
    }
}

#[inline(never)]
fn trigger_fault() {
    // SAFETY: deliberately raises #UD; the core reports it and the run ends.
    unsafe { core::arch::asm!("ud2") }
}

#[inline(never)]
fn write_null() {
    // SAFETY: deliberately faults: page 0 is unmapped (null guard).
    unsafe { core::ptr::write_volatile(core::ptr::null_mut::<u64>(), 1) }
}

#[inline(never)]
fn hang() -> ! {
    loop {
        core::hint::spin_loop();
    }
}

/// Stop this CPU's tick and never offer the CPU back: its clock freezes,
/// which the host must report as a stall.
#[inline(never)]
fn stall() -> ! {
    const LAPIC_LVT_TIMER: u64 = abi::memmap::LAPIC_ADDR + 0x320;
    const MASKED: u32 = 1 << 16;
    // SAFETY: the LAPIC page is mapped for CPL3 here; masking the timer
    // is the deliberate, test-only effect.
    unsafe { core::ptr::write_volatile(LAPIC_LVT_TIMER as *mut u32, MASKED) };
    hang()
}

#[inline(never)]
fn triple_fault() {
    // SAFETY: deliberately wipes the IDT (user-writable here) and faults:
    // #UD finds no gate, nor does #NP, nor #DF, so the vCPU shuts down.
    unsafe {
        core::ptr::write_bytes(
            abi::memmap::IDT_ADDR as *mut u8,
            0,
            abi::memmap::IDT_SIZE as usize,
        );
        core::arch::asm!("ud2");
    }
}
