//! A policy that is its own image (`abi::policy`): the VMM loaded it at
//! `POLICY_LOAD_ADDR`, its `PolicyOps` table is the image's first byte.
//!
//! [`ImagePolicy`] implements the core's `Policy` trait by calling the
//! table's callbacks (a null one runs the documented default), and the
//! services it hands the policy act on the core's own dispatch queues. The
//! scheduling core around it is the one the built-ins run under, so both
//! kinds are scheduled, measured and published the same way.
//!
//! What the core adds for an image policy:
//! - `p.slice_ns` is consumed as the task runs; at 0 the tick preempts it
//!   (sched_ext's slice), and `SLICE_INF` never runs out;
//! - after `enqueue` a task must be in exactly one queue: a policy that
//!   loses one, queues one twice, or queues a task that is not runnable
//!   ends the run naming the task and the callback;
//! - every callback runs inside [`callback::call`], which tells the
//!   exception stub and the host which callback the CPU is in (a fault
//!   there is the policy's; one that never returns is caught by the host);
//! - ids, CPUs and tasks a policy passes to a service are checked, and a
//!   bad one ends the run naming the service.
//!
//! Every callback runs under the scheduler lock (one CPU at a time); the
//! services reach the core's state through the context of the callback in
//! progress ([`CTX`]), which is only set while one runs.

mod callback;

use super::policy::{Ctx, PolicyFields, TaskInfo};
use crate::global::Global;
use crate::percpu;
use abi::kstate::{TASK_RUNNABLE, TASK_RUNNING, TASK_SLEEPING};
use abi::memmap::{MAX_CPUS, MAX_TASKS, POLICY_LOAD_ADDR};
use abi::policy::{
    CB_CPU_ONLINE, CB_CPU_TICK, CB_DISPATCH, CB_ENABLE, CB_ENQUEUE, CB_EXIT, CB_EXIT_TASK, CB_INIT,
    CB_INIT_TASK, CB_QUIESCENT, CB_RUNNABLE, CB_RUNNING, CB_SELECT_CPU, CB_STOPPING, CB_TICK,
};
use abi::policy::{
    DSQ_GLOBAL, DSQ_INVALID, DSQ_LOCAL_ON, ENQ_HEAD, ENQ_NEW, ENQ_WAKEUP, KICK_PREEMPT,
    POLICY_ABI_VERSION, POLICY_CPU_DATA_SIZE, POLICY_SERVICES_MAGIC, PolicyOps, PolicyServices,
    PolicyTask, SLICE_DFL, SLICE_INF,
};
use abi::topology::Topology;
use callback::call;
use core::sync::atomic::{AtomicPtr, AtomicU64, Ordering};
use policies::{Cpu, DsqId, DsqIds, Slot};

/// The policy image's table, checked at boot (null until then).
static OPS: AtomicPtr<PolicyOps> = AtomicPtr::new(core::ptr::null_mut());
/// The table's `cpu_tick`, read at boot only from a table new enough to
/// have one (a version-1 table ends before it).
static CPU_TICK: Global<Option<unsafe extern "C" fn(u32, u64)>> = Global::new(None);
/// Set while `select_cpu` queued its task in `DSQ_LOCAL`: sched_ext means
/// the local queue of the CPU `select_cpu` returns, known only after it.
static SELECT_LOCAL: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);
/// CPUs whose running task's slice a kick or `ENQ_PREEMPT` ended: its
/// next tick switches whatever the slice's accounting says (a `SLICE_INF`
/// or metered slice would otherwise be recomputed from the run time).
static ENDED: AtomicU64 = AtomicU64::new(0);
/// Whether the policy has a `cpu_tick`: the ticks of a policy without one
/// build no callback context at all.
pub fn has_cpu_tick() -> bool {
    // SAFETY: written once at boot; read-only afterwards.
    unsafe { CPU_TICK.get().is_some() }
}

/// One view per task-table slot, handed to callbacks.
static VIEWS: Global<[PolicyTask; MAX_TASKS]> = Global::new(
    [PolicyTask {
        pid: 0,
        slot: 0,
        weight: 0,
        cpu: 0,
        cpus_allowed: 0,
        slice_ns: 0,
        dsq_vtime: 0,
        state: 0,
        reserved: 0,
        name: [0; 16],
        data: [0; abi::policy::POLICY_TASK_DATA_WORDS],
        runtime_ns: 0,
        rt_period_ns: 0,
        rt_runtime_ns: 0,
        rt_deadline_ns: 0,
        rt_priority: 0,
        rt_reserved: 0,
    }; MAX_TASKS],
);
/// Per-CPU bytes the policy may use.
static CPU_DATA: Global<[[u8; POLICY_CPU_DATA_SIZE as usize]; MAX_CPUS]> =
    Global::new([[0; POLICY_CPU_DATA_SIZE as usize]; MAX_CPUS]);
/// The context of the callback in progress (null outside one).
static CTX: AtomicPtr<Ctx<'static>> = AtomicPtr::new(core::ptr::null_mut());
/// User queue ids the policy created, by `DsqId::Custom` index (+1; 0 =
/// free, so the table starts all-zero).
static USER_DSQS: Global<DsqIds> = Global::new(DsqIds::new());
/// Idle CPUs already claimed by `test_and_clear_cpu_idle`/`pick_idle_cpu`
/// and not yet given work.
static CLAIMED: AtomicU64 = AtomicU64::new(0);
/// The CPU a `dispatch` runs for (`DSQ_LOCAL` there means its queue).
static DISPATCH_CPU: AtomicU64 = AtomicU64::new(u64::MAX);
static SERVICES: Global<PolicyServices> = Global::new(PolicyServices {
    magic: POLICY_SERVICES_MAGIC,
    version: POLICY_ABI_VERSION,
    size: core::mem::size_of::<PolicyServices>() as u32,
    nr_cpus: 0,
    slice_dfl_ns: 0,
    arg: 0,
    cpu_data: core::ptr::null_mut(),
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
    topology: Topology::flat(1),
});

/// The core's side of an image policy: the slice each task started its
/// turn with (to consume it as the task runs).
pub struct ImagePolicy {
    turn_slice: [u64; MAX_TASKS],
    /// `runtime_ns` when the task started its turn.
    turn_runtime: [u64; MAX_TASKS],
}

impl ImagePolicy {
    /// All zeros, so the scheduler state stays in `.bss`.
    pub const fn new() -> ImagePolicy {
        ImagePolicy {
            turn_slice: [0; MAX_TASKS],
            turn_runtime: [0; MAX_TASKS],
        }
    }
}

fn ops() -> &'static PolicyOps {
    // SAFETY: set once at boot to POLICY_LOAD_ADDR after its header was
    // checked, never changed; the VMM loaded the image there, and only the
    // policy itself writes its table, in `init` (the BPF runtime leaves
    // out the callbacks its object does not bind) before any other
    // callback reads it; `load` reads the words `init` may change with
    // volatile reads.
    unsafe { &*OPS.load(Ordering::Relaxed) }
}

/// End the run for something the policy did: "policy NAME: in CALLBACK:
/// what" (the callback this CPU is in, if any).
fn policy_error(what: &[u8]) -> ! {
    let what = core::str::from_utf8(what).unwrap_or("(a message that is not UTF-8)");
    callback::fail(
        ops().name_str(),
        callback::current(),
        format_args!("{what}"),
    )
}

fn views() -> &'static mut [PolicyTask; MAX_TASKS] {
    // SAFETY: used only under the scheduler lock (callbacks and the
    // adapter run under it) or at boot on CPU 0.
    unsafe { VIEWS.get() }
}

fn ctx() -> &'static mut Ctx<'static> {
    let p = CTX.load(Ordering::Relaxed);
    if p.is_null() {
        policy_error(b"called a queue service outside a callback");
    }
    // SAFETY: CTX points at the live context of the callback in progress
    // (set and cleared around it, under the scheduler lock).
    unsafe { &mut *p }
}

/// The slot a `PolicyTask` pointer names, checked to be one of ours.
fn slot_of(p: *mut PolicyTask) -> Slot {
    let base = views().as_ptr() as usize;
    let addr = p as usize;
    let size = core::mem::size_of::<PolicyTask>();
    if addr < base || addr >= base + MAX_TASKS * size || !(addr - base).is_multiple_of(size) {
        policy_error(b"passed a task pointer that is not one the core gave it");
    }
    ((addr - base) / size) as Slot
}

fn view(slot: usize) -> *mut PolicyTask {
    &mut views()[slot] as *mut PolicyTask
}

/// Refresh what the core owns in a task's view.
fn sync(t: &TaskInfo, state: u32) -> *mut PolicyTask {
    let v = &mut views()[t.slot as usize];
    v.pid = t.pid;
    v.slot = u32::from(t.slot);
    v.weight = t.weight.max(1);
    v.cpu = t.cpu;
    v.cpus_allowed = t.affinity.0;
    v.rt_period_ns = t.rt.period_ns;
    v.rt_runtime_ns = t.rt.runtime_ns;
    v.rt_deadline_ns = t.rt.deadline_ns;
    v.rt_priority = t.rt.priority;
    v.state = state;
    v as *mut PolicyTask
}

fn slice_dfl() -> u64 {
    // SAFETY: written once at boot; read-only afterwards.
    unsafe { SERVICES.get().slice_dfl_ns }
}

fn set_slice(v: &mut PolicyTask, slice: u64) {
    match slice {
        0 => {}
        SLICE_DFL => v.slice_ns = slice_dfl(),
        s => v.slice_ns = s,
    }
}

/// Map a policy's queue id to the core's, for task `p` (`DSQ_LOCAL` is
/// the dispatching CPU's queue in `dispatch`, else the task's CPU), as
/// `policies::DsqIds` says (the simulator's too).
fn resolve(id: u64, p: Option<&PolicyTask>) -> DsqId {
    let d = DISPATCH_CPU.load(Ordering::Relaxed);
    let local = if d != u64::MAX {
        d as Cpu
    } else {
        p.map_or(0, |v| v.cpu)
    };
    // SAFETY: under the scheduler lock.
    let ids = unsafe { USER_DSQS.get() };
    ids.resolve(id, ctx().nr_cpus, local)
        .unwrap_or_else(|why| policy_error(why.as_bytes()))
}

/// A queue in words, for messages.
struct QueueName(DsqId);

impl core::fmt::Display for QueueName {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.0 {
            DsqId::Global => f.write_str("the global queue"),
            DsqId::Local(c) => write!(f, "CPU {c}'s local queue"),
            d => write!(f, "queue {}", unresolve(d)),
        }
    }
}

fn unresolve(d: DsqId) -> u64 {
    // SAFETY: under the scheduler lock.
    unsafe { USER_DSQS.get() }.id_of(d)
}

unsafe extern "C" fn dsq_create(id: u64) -> i32 {
    // SAFETY: under the scheduler lock, or at boot in `init`.
    unsafe { USER_DSQS.get() }.create(id)
}

fn insert(p: *mut PolicyTask, id: u64, slice: u64, vtime: Option<u64>, flags: u64) {
    let slot = slot_of(p);
    let v = &mut views()[slot as usize];
    let d = resolve(id, Some(v));
    let c = ctx();
    let cb = callback::current();
    if v.pid == 0 || v.state != TASK_RUNNABLE {
        callback::fail(
            ops().name_str(),
            cb,
            format_args!(
                "queued task pid {} (slot {slot}), which is not runnable (state {}): only a \
                 task being enqueued or already queued can be",
                v.pid, v.state
            ),
        );
    }
    if let Some(held) = c.dsqs.queued_in(slot) {
        callback::fail(
            ops().name_str(),
            cb,
            format_args!(
                "queued task pid {} (slot {slot}) twice: it is already in {} (dsq_remove \
                 it first)",
                v.pid,
                QueueName(held)
            ),
        );
    }
    if let DsqId::Local(cpu) = d
        && v.cpus_allowed & (1u64 << cpu) == 0
    {
        policy_error(b"put a task in the local queue of a CPU it may not run on");
    }
    set_slice(v, slice);
    match (vtime, d) {
        (Some(_), DsqId::Global | DsqId::Local(_)) => {
            policy_error(b"used dsq_insert_vtime on a built-in queue (only its own queues)")
        }
        (Some(key), _) => {
            v.dsq_vtime = key;
            c.dsqs.insert_vtime(d, slot, key);
        }
        (None, _) if flags & ENQ_HEAD != 0 => c.dsqs.insert_head(d, slot),
        (None, _) => c.dsqs.insert_fifo(d, slot),
    }
    if let DsqId::Local(cpu) = d {
        if id == abi::policy::DSQ_LOCAL && cb == CB_SELECT_CPU {
            SELECT_LOCAL.store(true, Ordering::Relaxed);
        }
        if flags & abi::policy::ENQ_PREEMPT != 0 {
            preempt(cpu);
        }
        callback::count_insert(cpu != percpu::cpu_id());
    } else {
        callback::count_insert(false);
    }
}

unsafe extern "C" fn dsq_insert(p: *mut PolicyTask, id: u64, slice: u64, flags: u64) {
    insert(p, id, slice, None, flags)
}

unsafe extern "C" fn dsq_insert_vtime(
    p: *mut PolicyTask,
    id: u64,
    slice: u64,
    vtime: u64,
    flags: u64,
) {
    insert(p, id, slice, Some(vtime), flags)
}

unsafe extern "C" fn dsq_move_to_local(id: u64, cpu: u32) -> u32 {
    let c = ctx();
    if cpu >= c.nr_cpus {
        policy_error(b"dsq_move_to_local: no such CPU");
    }
    let d = resolve(id, None);
    let tasks = c.tasks;
    match c
        .dsqs
        .pop_first_where(d, |s| tasks[s as usize].affinity.contains(cpu))
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
    ctx().dsqs.len(d) as i32
}

unsafe extern "C" fn dsq_first(id: u64) -> *mut PolicyTask {
    let d = resolve(id, None);
    ctx()
        .dsqs
        .first(d)
        .map_or(core::ptr::null_mut(), |s| view(s as usize))
}

unsafe extern "C" fn dsq_next(p: *mut PolicyTask) -> *mut PolicyTask {
    let slot = slot_of(p);
    ctx()
        .dsqs
        .next_of(slot)
        .map_or(core::ptr::null_mut(), |s| view(s as usize))
}

unsafe extern "C" fn dsq_remove(p: *mut PolicyTask) -> u32 {
    u32::from(ctx().dsqs.remove(slot_of(p)))
}

unsafe extern "C" fn dsq_of(p: *mut PolicyTask) -> u64 {
    ctx()
        .dsqs
        .queued_in(slot_of(p))
        .map_or(DSQ_INVALID, unresolve)
}

unsafe extern "C" fn idle_mask() -> u64 {
    ctx().idle.0
}

fn claim(cpu: u32) -> bool {
    let bit = 1u64 << cpu;
    ctx().idle.0 & bit != 0 && CLAIMED.fetch_or(bit, Ordering::Relaxed) & bit == 0
}

unsafe extern "C" fn test_and_clear_cpu_idle(cpu: u32) -> u32 {
    u32::from(cpu < ctx().nr_cpus && claim(cpu))
}

/// The run's topology, as the policy was given it.
fn topology() -> Topology {
    // SAFETY: written once at boot (before any callback); read-only after.
    unsafe { SERVICES.get().topology }
}

/// Claim the idle, unclaimed CPU in `mask` that sched_ext's
/// `pick_idle_cpu(mask, flags)` picks (`abi::idle::pick_idle`).
fn claim_idle_in(mask: u64, flags: u64) -> Option<u32> {
    let free = ctx().idle.0 & !CLAIMED.load(Ordering::Relaxed);
    let cpu = abi::idle::pick_idle(&topology(), free, mask, flags)?;
    claim(cpu);
    Some(cpu)
}

unsafe extern "C" fn pick_idle_cpu(mask: u64, flags: u64) -> i32 {
    claim_idle_in(mask, flags).map_or(-1, |c| c as i32)
}

/// Preempt what `cpu` runs, as sched_ext does: its slice ends now (even
/// `SLICE_INF`), so its next tick or preemption check switches.
fn preempt(cpu: u32) {
    if let Some(Some(s)) = ctx().running.get(cpu as usize) {
        views()[*s as usize].slice_ns = 0;
        ENDED.fetch_or(1u64 << cpu, Ordering::Relaxed);
    }
    percpu::cpu(cpu).need_resched.store(1, Ordering::Relaxed);
}

unsafe extern "C" fn kick_cpu(cpu: u32, flags: u64) {
    if cpu >= ctx().nr_cpus {
        policy_error(b"kick_cpu: no such CPU");
    }
    if flags & KICK_PREEMPT != 0 {
        preempt(cpu);
    }
    super::kick(cpu);
}

unsafe extern "C" fn cpu_curr(cpu: u32) -> *mut PolicyTask {
    match ctx().running.get(cpu as usize) {
        Some(Some(s)) => view(*s as usize),
        _ => core::ptr::null_mut(),
    }
}

unsafe extern "C" fn task_of_slot(slot: u32) -> *mut PolicyTask {
    match views().get(slot as usize) {
        Some(v) if v.pid != 0 => view(slot as usize),
        _ => core::ptr::null_mut(),
    }
}

unsafe extern "C" fn now_ns() -> u64 {
    crate::time::now_ns()
}

unsafe extern "C" fn log(level: u32, text: *const u8, len: usize) {
    // SAFETY: the policy promises `text` points at `len` readable bytes;
    // the length is capped to what a log line carries.
    let b = unsafe { core::slice::from_raw_parts(text, len.min(200)) };
    crate::tlv::log_bytes(level, b);
}

unsafe extern "C" fn error(text: *const u8, len: usize) -> ! {
    // SAFETY: as in `log`.
    let b = unsafe { core::slice::from_raw_parts(text, len.min(160)) };
    policy_error(b)
}

unsafe extern "C" fn cpu_id() -> u32 {
    crate::percpu::cpu_id()
}

/// Check the table the VMM loaded and give the policy its services.
/// `c` is the scheduler's context: `init` and `cpu_online` may use every
/// service (read the idle mask, queue nothing yet: there are no tasks).
pub fn load(info: &abi::boot::BootInfo, c: &mut Ctx<'_>) -> Result<(), &'static str> {
    let p = POLICY_LOAD_ADDR as *mut PolicyOps;
    // SAFETY: the VMM loaded a policy image at POLICY_LOAD_ADDR (it set
    // POLICY_IMAGE_ID only then); the header words are read before the
    // rest of the table is trusted.
    let (magic, version, size) = unsafe { ((*p).magic, (*p).version, (*p).size) };
    PolicyOps::check_header(magic, version, size)
        .map_err(|_| "policy image: bad PolicyOps header")?;
    OPS.store(p, Ordering::Relaxed);
    // SAFETY: boot, CPU 0, before any other CPU or callback runs.
    let svc = unsafe { SERVICES.get() };
    svc.nr_cpus = info.cpu_count;
    svc.topology = info.topology;
    svc.slice_dfl_ns = info.slice_ns;
    svc.arg = u64::from(info.policy_arg);
    // SAFETY: as above.
    svc.cpu_data = unsafe { CPU_DATA.get() }.as_mut_ptr().cast();
    if let Some(init) = ops().init {
        // SAFETY: a callback of the checked table (the host checked it
        // points into the image); services outlive the run.
        if with(c, || call(CB_INIT, || unsafe { init(svc) })) != 0 {
            policy_error(b"init refused to start");
        }
    }
    // Read after `init`, which may leave callbacks out of its table (the
    // table is read at every other call).
    // Volatile reads: `init` ran code the compiler cannot see that may have
    // written these words.
    if version >= 2 {
        // SAFETY: boot, CPU 0, before any other CPU or callback runs; a
        // version-2 table is long enough to hold the field, an aligned
        // `Option<fn>` word inside the checked table.
        unsafe { *CPU_TICK.get() = core::ptr::read_volatile(&raw const (*p).cpu_tick) };
    }
    // SAFETY: as above; every table version has `cpu_online`.
    if let Some(online) = unsafe { core::ptr::read_volatile(&raw const (*p).cpu_online) } {
        for cpu in 0..info.cpu_count {
            // SAFETY: as above.
            with(c, || call(CB_CPU_ONLINE, || unsafe { online(cpu) }))
        }
    }
    Ok(())
}

impl ImagePolicy {
    /// The run ends with the operation's exit `code`: the policy's `exit`
    /// callback, sched_ext's last call, with the services still usable
    /// (under the lock, so no other callback runs beside it).
    pub fn exit(&mut self, c: &mut Ctx<'_>, code: i64) {
        if let Some(f) = ops().exit {
            // SAFETY: a callback of the checked table; it takes no pointer.
            with(c, || call(CB_EXIT, || unsafe { f(code) }))
        }
    }
}

/// `cpu` got work: its idle claim ends. A plain load first (under the
/// scheduler lock, as every claim): the locked clear is rarely needed.
fn unclaim(cpu: Cpu) {
    if CLAIMED.load(Ordering::Relaxed) & (1u64 << cpu) != 0 {
        CLAIMED.fetch_and(!(1u64 << cpu), Ordering::Relaxed);
    }
}

/// Run `f` with the callback context published for the services.
fn with<R>(c: &mut Ctx<'_>, f: impl FnOnce() -> R) -> R {
    CTX.store((c as *mut Ctx<'_>).cast(), Ordering::Relaxed);
    let r = f();
    CTX.store(core::ptr::null_mut(), Ordering::Relaxed);
    r
}

impl super::policy::Policy for ImagePolicy {
    fn init_task(&mut self, c: &mut Ctx<'_>, t: &TaskInfo) {
        let v = sync(t, TASK_RUNNABLE);
        // SAFETY: v is this slot's view.
        unsafe {
            (*v).slice_ns = slice_dfl();
            (*v).dsq_vtime = 0;
            (*v).data = [0; abi::policy::POLICY_TASK_DATA_WORDS];
            (*v).runtime_ns = 0;
        }
        self.turn_slice[t.slot as usize] = 0;
        with(c, || {
            if let Some(f) = ops().init_task {
                // SAFETY: a checked callback; v is a live view.
                if call(CB_INIT_TASK, || unsafe { f(v) }) != 0 {
                    policy_error(b"init_task refused a task");
                }
            }
            if let Some(f) = ops().enable {
                // SAFETY: as above.
                call(CB_ENABLE, || unsafe { f(v) })
            }
        })
    }

    fn exit_task(&mut self, c: &mut Ctx<'_>, t: &TaskInfo) {
        c.dsqs.remove(t.slot);
        let v = sync(t, abi::kstate::TASK_ZOMBIE);
        with(c, || {
            if let Some(f) = ops().exit_task {
                // SAFETY: a checked callback; v is a live view.
                call(CB_EXIT_TASK, || unsafe { f(v) })
            }
        });
        views()[t.slot as usize].pid = 0;
    }

    fn select_cpu(&mut self, c: &mut Ctx<'_>, t: &TaskInfo, prev: Cpu) -> Cpu {
        let v = sync(t, TASK_RUNNABLE);
        let nr = c.nr_cpus;
        SELECT_LOCAL.store(false, Ordering::Relaxed);
        let cpu = with(c, || match ops().select_cpu {
            // SAFETY: a checked callback; v is a live view.
            Some(f) => call(CB_SELECT_CPU, || unsafe { f(v, prev, 0) }),
            None => select_cpu_dfl(v, t, prev),
        });
        if cpu >= nr {
            policy_error(b"select_cpu returned a CPU the run does not have");
        }
        // A direct dispatch to `DSQ_LOCAL` went to the queue of the CPU
        // the task was on; it belongs to the one chosen.
        // Plain load and store, not a swap: every access is under the
        // scheduler lock, and a locked instruction is what a
        // tick-sampled profile found hot in the wake-up path.
        let select_local = SELECT_LOCAL.load(Ordering::Relaxed);
        SELECT_LOCAL.store(false, Ordering::Relaxed);
        if select_local
            && let Some(DsqId::Local(q)) = c.dsqs.queued_in(t.slot)
            && q != cpu
            && t.affinity.contains(cpu)
        {
            c.dsqs.remove(t.slot);
            c.dsqs.insert_fifo(DsqId::Local(cpu), t.slot);
        }
        cpu
    }

    /// Every tick of every CPU (and every wake-up of an idle one): the
    /// policy's own timers.
    fn cpu_tick(&mut self, c: &mut Ctx<'_>, cpu: Cpu) {
        // SAFETY: written once at boot; read-only afterwards.
        if let Some(f) = unsafe { *CPU_TICK.get() } {
            let now = crate::time::now_ns();
            // SAFETY: a callback of the checked table; it takes no pointer.
            with(c, || call(CB_CPU_TICK, || unsafe { f(cpu, now) }))
        }
    }

    fn enqueue(&mut self, c: &mut Ctx<'_>, t: &TaskInfo, flags: u32) {
        let v = sync(t, TASK_RUNNABLE);
        let flags = u64::from(flags);
        let queued_before = c.dsqs.queued_in(t.slot).is_some();
        with(c, || {
            if flags & (ENQ_WAKEUP | ENQ_NEW) != 0
                && let Some(f) = ops().runnable
            {
                // SAFETY: a checked callback; v is a live view.
                call(CB_RUNNABLE, || unsafe { f(v, flags) })
            }
            if queued_before {
                // Queued by select_cpu already (sched_ext's direct
                // dispatch): enqueue is skipped, as there.
                return;
            }
            match ops().enqueue {
                // SAFETY: as above.
                Some(f) => call(CB_ENQUEUE, || unsafe { f(v, flags) }),
                None => insert(v, DSQ_GLOBAL, SLICE_DFL, None, flags),
            }
        });
        if c.dsqs.queued_in(t.slot).is_none() && ops().flags & abi::policy::POLICY_FLAG_CUSTODY == 0
        {
            callback::fail(
                ops().name_str(),
                CB_ENQUEUE,
                format_args!(
                    "lost task pid {} (slot {}): after enqueue it is in no dispatch queue \
                     (every runnable task must be queued: dsq_insert it)",
                    t.pid, t.slot
                ),
            );
        }
    }

    fn dispatch(&mut self, c: &mut Ctx<'_>, cpu: Cpu) {
        unclaim(cpu);
        DISPATCH_CPU.store(u64::from(cpu), Ordering::Relaxed);
        with(c, || {
            if let Some(f) = ops().dispatch {
                // SAFETY: a checked callback.
                call(CB_DISPATCH, || unsafe { f(cpu, core::ptr::null_mut()) })
            }
        });
        DISPATCH_CPU.store(u64::MAX, Ordering::Relaxed);
    }

    fn running(&mut self, c: &mut Ctx<'_>, t: &TaskInfo, cpu: Cpu) {
        unclaim(cpu);
        // A kick ends the slice of the task it found running, not the next
        // (a plain load first: the locked clear is rarely needed).
        if ENDED.load(Ordering::Relaxed) & (1u64 << cpu) != 0 {
            ENDED.fetch_and(!(1u64 << cpu), Ordering::Relaxed);
        }
        let v = sync(t, TASK_RUNNING);
        // SAFETY: v is this slot's view.
        let vr = unsafe { &mut *v };
        if vr.slice_ns == 0 {
            vr.slice_ns = slice_dfl();
        }
        self.turn_slice[t.slot as usize] = vr.slice_ns;
        self.turn_runtime[t.slot as usize] = vr.runtime_ns;
        with(c, || {
            if let Some(f) = ops().running {
                // SAFETY: a checked callback; v is a live view.
                call(CB_RUNNING, || unsafe { f(v) })
            }
        })
    }

    fn stopping(&mut self, c: &mut Ctx<'_>, t: &TaskInfo, _cpu: Cpu, ran: u64, runnable: bool) {
        let state = if runnable {
            TASK_RUNNABLE
        } else {
            TASK_SLEEPING
        };
        let v = sync(t, state);
        self.consume(v, t.slot, ran);
        with(c, || {
            if let Some(f) = ops().stopping {
                // SAFETY: a checked callback; v is a live view.
                call(CB_STOPPING, || unsafe { f(v, u32::from(runnable)) })
            }
            if !runnable && let Some(f) = ops().quiescent {
                // SAFETY: as above.
                call(CB_QUIESCENT, || unsafe { f(v, 0) })
            }
        })
    }

    fn tick(&mut self, c: &mut Ctx<'_>, t: &TaskInfo, cpu: Cpu, ran: u64) -> bool {
        let v = sync(t, TASK_RUNNING);
        self.consume(v, t.slot, ran);
        if ENDED.load(Ordering::Relaxed) & (1u64 << cpu) != 0
            && ENDED.fetch_and(!(1u64 << cpu), Ordering::Relaxed) & (1u64 << cpu) != 0
        {
            // SAFETY: v is this slot's view.
            unsafe { (*v).slice_ns = 0 };
            return true;
        }
        with(c, || {
            if let Some(f) = ops().tick {
                // SAFETY: a checked callback; v is a live view.
                call(CB_TICK, || unsafe { f(v) })
            }
        });
        // SAFETY: v is this slot's view.
        unsafe { (*v).slice_ns == 0 }
    }

    fn fields(&self, slot: Slot) -> PolicyFields {
        PolicyFields {
            vruntime: views().get(slot as usize).map_or(0, |v| v.dsq_vtime),
            ..PolicyFields::default()
        }
    }
}

impl ImagePolicy {
    /// Take what the task ran this turn off its slice, and add it to its
    /// run time.
    fn consume(&mut self, v: *mut PolicyTask, slot: Slot, ran: u64) {
        // SAFETY: v is this slot's view.
        let v = unsafe { &mut *v };
        v.runtime_ns = self.turn_runtime[slot as usize].saturating_add(ran);
        if v.slice_ns != SLICE_INF {
            v.slice_ns = self.turn_slice[slot as usize].saturating_sub(ran);
        }
    }
}

/// sched_ext's default `select_cpu` (`select_task_rq_scx` without an
/// `ops.select_cpu`): `abi::idle::select_cpu_dfl`'s choice (a wholly idle
/// core, prev's first, then an idle CPU, prev's LLC first, else prev),
/// and a task given an idle CPU goes straight to that CPU's local queue
/// with the default slice (sched_ext's direct dispatch), so the CPU the
/// selection claimed is the one that runs it.
fn select_cpu_dfl(v: *mut PolicyTask, t: &TaskInfo, prev: Cpu) -> Cpu {
    let (cpu, idle) = abi::idle::select_cpu_dfl(&topology(), t.affinity.0, prev, claim_idle_in);
    if idle {
        insert(v, DSQ_LOCAL_ON | u64::from(cpu), SLICE_DFL, None, 0);
    }
    cpu
}
