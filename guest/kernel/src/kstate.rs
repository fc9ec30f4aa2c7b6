//! Publishes the core's state in the introspection area, where the host
//! reads it without any exit: the header (lifecycle), one record per CPU
//! and one per task-table slot, each under a seqlock. All record writes
//! happen with the scheduler lock held, so each record has one writer at a
//! time.

use abi::boot::BootInfo;
use abi::kstate::{
    CpuRecord, KSTATE_MAGIC, KSTATE_VERSION, KernelStateHeader, RUN_RUNNING, TaskRecord,
    cpu_record_addr, task_record_addr,
};
use abi::memmap::KERNEL_STATE_ADDR;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};

fn header() -> *mut KernelStateHeader {
    KERNEL_STATE_ADDR as *mut KernelStateHeader
}

/// `entry_tsc`: CPU 0's TSC when it entered `kmain`.
pub fn init(info: &BootInfo, entry_tsc: u64) {
    let h = KernelStateHeader {
        magic: KSTATE_MAGIC,
        version: KSTATE_VERSION,
        cpu_count: info.cpu_count,
        run_state: abi::kstate::RUN_BOOTING,
        tsc_khz: info.tsc_khz,
        boot_tsc: crate::time::rdtsc(),
        policy: info.policy,
        entry_tsc,
        ..KernelStateHeader::default()
    };
    // SAFETY: KERNEL_STATE_ADDR is the fixed, identity-mapped introspection
    // region, large enough for the header (asserted in shared).
    unsafe { core::ptr::write_volatile(header(), h) };
}

fn atomic_u32(p: *mut u32) -> &'static AtomicU32 {
    // SAFETY: p is a 4-byte aligned u32 inside the kernel-state region,
    // which lives for the whole run; the host only reads it.
    unsafe { &*(p as *const AtomicU32) }
}

pub fn set_running() {
    // SAFETY: field of the header (see init); written once, before the
    // release store below publishes it.
    unsafe {
        core::ptr::write_volatile(
            core::ptr::addr_of_mut!((*header()).ready_tsc),
            crate::time::rdtsc(),
        )
    };
    // SAFETY: field of the header (see init).
    atomic_u32(unsafe { core::ptr::addr_of_mut!((*header()).run_state) })
        .store(RUN_RUNNING, Ordering::Release);
}

pub fn cpu_online() {
    // SAFETY: field of the header (see init).
    atomic_u32(unsafe { core::ptr::addr_of_mut!((*header()).cpus_online) })
        .fetch_add(1, Ordering::Release);
}

/// Record the end of the run; `state` is RUN_FINISHED or RUN_FAILED.
pub fn set_ended(state: u32, exit_code: i64) {
    // SAFETY: the header region is ours (see init); plain stores before
    // the release store of run_state, which the host reads with acquire.
    unsafe { core::ptr::write_volatile(core::ptr::addr_of_mut!((*header()).exit_code), exit_code) };
    // SAFETY: field of the header (see init).
    atomic_u32(unsafe { core::ptr::addr_of_mut!((*header()).run_state) })
        .store(state, Ordering::Release);
}

/// Global counters; aligned u64 stores, so the host never sees a torn value.
pub fn set_counters(switches: u64, tasks_spawned: u64) {
    // SAFETY: as in set_ended.
    unsafe {
        core::ptr::write_volatile(core::ptr::addr_of_mut!((*header()).switches), switches);
        core::ptr::write_volatile(
            core::ptr::addr_of_mut!((*header()).tasks_spawned),
            tasks_spawned,
        );
    }
}

/// Seqlock write: make `seq` odd, let `f` change the record, make it even.
fn seq_write<T>(rec: *mut T, seq: *mut u32, f: impl FnOnce(&mut T)) {
    let s = atomic_u32(seq);
    let v = s.load(Ordering::Relaxed);
    s.store(v.wrapping_add(1), Ordering::Relaxed);
    fence(Ordering::Release);
    // SAFETY: rec points at a record in the kernel-state region; the
    // scheduler lock makes this the only writer; readers retry on seq.
    f(unsafe { &mut *rec });
    s.store(v.wrapping_add(2), Ordering::Release);
}

pub fn cpu_record(cpu: u32, f: impl FnOnce(&mut CpuRecord)) {
    let rec = cpu_record_addr(cpu) as *mut CpuRecord;
    // SAFETY: computing a field address inside the record.
    let seq = unsafe { core::ptr::addr_of_mut!((*rec).seq) };
    seq_write(rec, seq, f);
}

/// The tick period in TSC ticks (0 until set): `note_timer` counts a gap
/// between two timer stamps as proven run time only up to twice this.
static TICK_PERIOD: AtomicU64 = AtomicU64::new(0);

/// Set the tick period (every CPU sets the same value before its timer
/// starts).
pub fn set_tick_period(ticks: u64) {
    TICK_PERIOD.store(ticks, Ordering::Relaxed);
}

/// The tick period in TSC ticks (0 until set).
pub fn tick_period() -> u64 {
    TICK_PERIOD.load(Ordering::Relaxed)
}

/// This CPU heard its timer at `tsc` (a tick, or the end of an idle wait):
/// stamp `CpuRecord::irq_tsc`, grow `max_irq_gap`, and add a gap of at
/// most two tick periods to `live_tsc` (see there). Single aligned u64
/// accesses outside the seqlock, so it is safe from the tick interrupt
/// even when that lands inside a `cpu_record` write on this CPU; a tick
/// landing between this function's read and writes only makes the next
/// gap a few microseconds longer.
pub fn note_timer(cpu: u32, tsc: u64) {
    let base = cpu_record_addr(cpu);
    let last = (base + abi::kstate::CPU_RECORD_IRQ_TSC_OFFSET) as *mut u64;
    let gap = (base + abi::kstate::CPU_RECORD_MAX_IRQ_GAP_OFFSET) as *mut u64;
    let live = (base + abi::kstate::CPU_RECORD_LIVE_TSC_OFFSET) as *mut u64;
    let period = TICK_PERIOD.load(Ordering::Relaxed);
    crate::steal::heard(cpu, tsc, period);
    // SAFETY: 8-aligned u64s inside this CPU's record (offsets asserted in
    // the ABI); only this CPU writes them and no `cpu_record` closure
    // touches them after boot, so no other Rust write races these.
    unsafe {
        let prev = core::ptr::read_volatile(last);
        if prev != 0 && tsc > prev {
            let g = tsc - prev;
            if g > core::ptr::read_volatile(gap) {
                core::ptr::write_volatile(gap, g);
            }
            if g <= 2 * period {
                core::ptr::write_volatile(live, core::ptr::read_volatile(live) + g);
            }
        }
        core::ptr::write_volatile(last, tsc);
    }
}

pub fn task_record(slot: usize, f: impl FnOnce(&mut TaskRecord)) {
    let rec = task_record_addr(slot as u32) as *mut TaskRecord;
    // SAFETY: computing a field address inside the record.
    let seq = unsafe { core::ptr::addr_of_mut!((*rec).seq) };
    seq_write(rec, seq, f);
}
