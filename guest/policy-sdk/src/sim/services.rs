//! The `PolicyServices` table of the simulated core: the same checks and
//! the same queue code (`policies::Dsqs`, `policies::DsqIds`) as the
//! kernel's image adapter, acting on the [`Core`] of the harness alive now.

use super::Core;
use crate::{ENQ_HEAD, ENQ_PREEMPT, KICK_PREEMPT, PolicyServices, SLICE_DFL, Task};
use abi::kstate::TASK_RUNNABLE;
use abi::memmap::MAX_TASKS;
use abi::policy::{DSQ_INVALID, POLICY_ABI_VERSION, POLICY_SERVICES_MAGIC};
use abi::topology::Topology;
use core::sync::atomic::{AtomicPtr, Ordering};
use policies::{DsqId, Slot};

/// The core of the harness alive now (null between harnesses).
static CORE: AtomicPtr<Core> = AtomicPtr::new(core::ptr::null_mut());

pub(super) fn set_core(c: *mut Core) {
    CORE.store(c, Ordering::Relaxed);
}

/// The live core. Sound as long as one harness exists at a time (its lock)
/// and references to it are short-lived: the harness and the services
/// take one per step, never across a policy callback that uses another.
#[allow(clippy::mut_from_ref)]
pub(super) fn core() -> &'static mut Core {
    let p = CORE.load(Ordering::Relaxed);
    assert!(!p.is_null(), "a policy service used outside a simulation");
    // SAFETY: p is the live harness's boxed core (set in Harness::new,
    // cleared before it is freed); one simulation at a time (LOCK).
    unsafe { &mut *p }
}

/// End the simulation for something the policy did, as the kernel ends
/// the run: "policy NAME: what".
fn policy_error(what: &str) -> ! {
    panic!("policy {}: {what}", core().name)
}

/// The slot a task pointer names, checked to be one of the core's views.
fn slot_of(p: *const Task) -> Slot {
    let base = core().views.as_ptr() as usize;
    let addr = p as usize;
    let size = core::mem::size_of::<Task>();
    if addr < base || addr >= base + MAX_TASKS * size || !(addr - base).is_multiple_of(size) {
        policy_error("passed a task pointer that is not one the core gave it");
    }
    ((addr - base) / size) as Slot
}

fn view(s: Slot) -> *mut Task {
    &mut core().views[s as usize] as *mut Task
}

fn resolve(id: u64, task_cpu: Option<u32>) -> DsqId {
    let c = core();
    let local = c.dispatch_cpu.or(task_cpu).unwrap_or(0);
    c.ids
        .resolve(id, c.nr_cpus, local)
        .unwrap_or_else(|e| policy_error(e))
}

/// `dsq_insert` / `dsq_insert_vtime`, as the kernel's.
pub(super) fn insert(p: *mut Task, id: u64, slice: u64, vtime: Option<u64>, flags: u64) {
    let s = slot_of(p);
    let c = core();
    let d = resolve(id, Some(c.views[s as usize].cpu));
    // As the kernel's: a task goes into one queue, once.
    if c.views[s as usize].state != TASK_RUNNABLE {
        policy_error("queued a task that is not runnable");
    }
    if c.dsqs.queued_in(s).is_some() {
        policy_error("queued a task twice (dsq_remove it first)");
    }
    let v = &mut c.views[s as usize];
    if let DsqId::Local(cpu) = d
        && v.cpus_allowed & (1u64 << cpu) == 0
    {
        policy_error("put a task in the local queue of a CPU it may not run on");
    }
    match slice {
        0 => {}
        SLICE_DFL => v.slice_ns = c.slice_ns,
        n => v.slice_ns = n,
    }
    match (vtime, d) {
        (Some(_), DsqId::Global | DsqId::Local(_)) => {
            policy_error("used dsq_insert_vtime on a built-in queue (only its own queues)")
        }
        (Some(key), _) => {
            v.dsq_vtime = key;
            c.dsqs.insert_vtime(d, s, key);
        }
        (None, _) if flags & ENQ_HEAD != 0 => c.dsqs.insert_head(d, s),
        (None, _) => c.dsqs.insert_fifo(d, s),
    }
    if let DsqId::Local(cpu) = d
        && flags & ENQ_PREEMPT != 0
    {
        c.end_slice(cpu);
    }
}

unsafe extern "C" fn dsq_create(id: u64) -> i32 {
    core().ids.create(id)
}

unsafe extern "C" fn dsq_insert(p: *mut Task, id: u64, slice: u64, flags: u64) {
    insert(p, id, slice, None, flags)
}

unsafe extern "C" fn dsq_insert_vtime(p: *mut Task, id: u64, slice: u64, vtime: u64, flags: u64) {
    insert(p, id, slice, Some(vtime), flags)
}

unsafe extern "C" fn dsq_move_to_local(id: u64, cpu: u32) -> u32 {
    if cpu >= core().nr_cpus {
        policy_error("dsq_move_to_local: no such CPU");
    }
    let d = resolve(id, None);
    let c = core();
    let infos = &c.infos;
    match c
        .dsqs
        .pop_first_where(d, |s| infos[s as usize].affinity & (1u64 << cpu) != 0)
    {
        Some(s) => {
            c.dsqs.insert_fifo(DsqId::Local(cpu), s);
            1
        }
        None => 0,
    }
}

unsafe extern "C" fn dsq_nr_queued(id: u64) -> i32 {
    let d = resolve(id, None);
    core().dsqs.len(d) as i32
}

unsafe extern "C" fn dsq_first(id: u64) -> *mut Task {
    let d = resolve(id, None);
    core().dsqs.first(d).map_or(core::ptr::null_mut(), view)
}

unsafe extern "C" fn dsq_next(p: *mut Task) -> *mut Task {
    let s = slot_of(p);
    core().dsqs.next_of(s).map_or(core::ptr::null_mut(), view)
}

unsafe extern "C" fn dsq_remove(p: *mut Task) -> u32 {
    u32::from(core().dsqs.remove(slot_of(p)))
}

unsafe extern "C" fn dsq_of(p: *mut Task) -> u64 {
    let s = slot_of(p);
    let c = core();
    c.dsqs.queued_in(s).map_or(DSQ_INVALID, |d| c.ids.id_of(d))
}

unsafe extern "C" fn idle_mask() -> u64 {
    core().idle()
}

/// Claim idle `cpu`: true if it was idle and unclaimed.
fn claim(cpu: u32) -> bool {
    let c = core();
    let bit = 1u64 << cpu;
    let ok = c.idle() & bit != 0 && c.claimed & bit == 0;
    if c.idle() & bit != 0 {
        c.claimed |= bit;
    }
    ok
}

unsafe extern "C" fn test_and_clear_cpu_idle(cpu: u32) -> u32 {
    u32::from(cpu < core().nr_cpus && claim(cpu))
}

unsafe extern "C" fn pick_idle_cpu(mask: u64, flags: u64) -> i32 {
    let c = core();
    let free = c.idle() & !c.claimed;
    let Some(cpu) = abi::idle::pick_idle(&c.topology, free, mask, flags) else {
        return -1;
    };
    claim(cpu);
    cpu as i32
}

unsafe extern "C" fn kick_cpu(cpu: u32, flags: u64) {
    let c = core();
    if cpu >= c.nr_cpus {
        policy_error("kick_cpu: no such CPU");
    }
    if flags & KICK_PREEMPT != 0 {
        c.end_slice(cpu);
    }
    c.kicked |= 1u64 << cpu;
}

unsafe extern "C" fn cpu_curr(cpu: u32) -> *mut Task {
    match core().running.get(cpu as usize) {
        Some(Some(s)) => view(*s),
        _ => core::ptr::null_mut(),
    }
}

unsafe extern "C" fn task_of_slot(slot: u32) -> *mut Task {
    match core().views.get(slot as usize) {
        Some(v) if v.pid != 0 => view(slot as Slot),
        _ => core::ptr::null_mut(),
    }
}

unsafe extern "C" fn now_ns() -> u64 {
    core().now
}

unsafe extern "C" fn log(_level: u32, text: *const u8, len: usize) {
    // SAFETY: the policy passes `len` readable bytes (the SDK's `log`
    // passes a &str).
    let b = unsafe { core::slice::from_raw_parts(text, len.min(200)) };
    std::eprintln!("policy log: {}", std::string::String::from_utf8_lossy(b));
}

unsafe extern "C" fn error(text: *const u8, len: usize) -> ! {
    // SAFETY: as in `log`.
    let b = unsafe { core::slice::from_raw_parts(text, len.min(160)) };
    policy_error(&std::string::String::from_utf8_lossy(b))
}

/// The CPU a callback runs on: the simulation knows it only for
/// `dispatch` (CPU 0 otherwise).
unsafe extern "C" fn cpu_id() -> u32 {
    core().dispatch_cpu.unwrap_or(0)
}

/// The table handed to the policy's `init`.
pub(super) fn table(topology: Topology, slice_ns: u64, arg: u64, c: *mut Core) -> PolicyServices {
    // SAFETY: c is the harness's live core; only its per-CPU area's
    // address is taken.
    let cpu_data = unsafe { (*c).cpu_data.as_mut_ptr() };
    PolicyServices {
        magic: POLICY_SERVICES_MAGIC,
        version: POLICY_ABI_VERSION,
        size: core::mem::size_of::<PolicyServices>() as u32,
        nr_cpus: topology.cpus(),
        slice_dfl_ns: slice_ns,
        arg,
        cpu_data,
        dsq_create,
        dsq_insert,
        dsq_insert_vtime,
        dsq_move_to_local,
        dsq_nr_queued,
        dsq_first,
        dsq_next,
        dsq_remove,
        dsq_of,
        idle_mask,
        test_and_clear_cpu_idle,
        pick_idle_cpu,
        kick_cpu,
        cpu_curr,
        task_of_slot,
        now_ns,
        log,
        error,
        cpu_id,
        topology,
    }
}
