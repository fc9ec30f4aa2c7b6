//! The policy ABI: how the core runs a scheduling policy that is its own
//! image, loaded at [`crate::memmap::POLICY_LOAD_ADDR`].
//!
//! The shape is sched_ext's. A policy exports a [`PolicyOps`] table (first
//! thing in its image) with one optional callback per `sched_ext_ops`
//! callback; a null pointer means the documented default. The core hands
//! the policy a [`PolicyServices`] table in `init`: dispatch queues, the
//! idle mask, kicks, the clock, logging and `error`. Per-task scheduling
//! state lives on the task, in the [`PolicyTask`] the core passes to every
//! callback (`slice_ns`, `dsq_vtime`, `weight` as `p->scx` holds them), so a
//! policy needs no private arrays for the basics.
//!
//! Versioning is append-only: a field is only ever added at the end, the
//! version goes up by one, and each side reads `size` to know which fields
//! the other has. The core runs a policy built for its own or an older
//! [`POLICY_ABI_VERSION`] and refuses a newer one; a policy checks the
//! services' version the same way.

use crate::tag;

pub const POLICY_OPS_MAGIC: u32 = tag(b"POPS");
pub const POLICY_SERVICES_MAGIC: u32 = tag(b"PSVC");
/// The version this build defines; see the module docs for the rule.
pub const POLICY_ABI_VERSION: u32 = 3;

/// `BootInfo::policy` when the policy is an image the VMM loaded at
/// `POLICY_LOAD_ADDR` rather than one built into the core.
pub const POLICY_IMAGE_ID: u32 = tag(b"IMAG");
/// The section a policy's [`PolicyOps`] lives in; the policy linker script
/// puts it first, at `POLICY_LOAD_ADDR`.
pub const POLICY_OPS_SECTION: &str = ".policy_ops";

/// The longest one callback may run, in ns of its vCPU's own CPU time,
/// before the host calls the policy hung and ends the run. Callbacks run
/// under the scheduler lock with the tick deferred, so a callback that
/// never returns cannot be caught by its own CPU: the core publishes which
/// callback each CPU is in and since when (`kstate::CpuRecord::
/// policy_callback`), and the host's monitor measures it. Ten
/// milliseconds is thousands of times what a real callback takes (stride's
/// take about a microsecond), so only a policy that loops is caught.
pub const POLICY_CALLBACK_BUDGET_NS: u64 = 10_000_000;

/// The callbacks' names, in [`PolicyOps`] order. A callback's id, as the
/// core publishes it in `CpuRecord::policy_callback`, is its index here
/// plus one (0: no callback is running).
pub const POLICY_CALLBACKS: [&str; 21] = [
    "select_cpu",
    "enqueue",
    "dequeue",
    "dispatch",
    "tick",
    "runnable",
    "running",
    "stopping",
    "quiescent",
    "yield",
    "set_weight",
    "set_cpumask",
    "update_idle",
    "init_task",
    "exit_task",
    "enable",
    "cpu_online",
    "cpu_offline",
    "init",
    "exit",
    "cpu_tick",
];
pub const CB_SELECT_CPU: u32 = 1;
pub const CB_ENQUEUE: u32 = 2;
pub const CB_DEQUEUE: u32 = 3;
pub const CB_DISPATCH: u32 = 4;
pub const CB_TICK: u32 = 5;
pub const CB_RUNNABLE: u32 = 6;
pub const CB_RUNNING: u32 = 7;
pub const CB_STOPPING: u32 = 8;
pub const CB_QUIESCENT: u32 = 9;
pub const CB_INIT_TASK: u32 = 14;
pub const CB_EXIT_TASK: u32 = 15;
pub const CB_ENABLE: u32 = 16;
pub const CB_CPU_ONLINE: u32 = 17;
pub const CB_INIT: u32 = 19;
pub const CB_EXIT: u32 = 20;
pub const CB_CPU_TICK: u32 = 21;

/// The name of callback `id` (see [`POLICY_CALLBACKS`]), None for 0 or an
/// id this ABI does not know.
pub fn callback_name(id: u64) -> Option<&'static str> {
    let i = usize::try_from(id.checked_sub(1)?).ok()?;
    POLICY_CALLBACKS.get(i).copied()
}

/// Name and description capacities in [`PolicyOps`] (NUL-padded UTF-8).
pub const POLICY_NAME_LEN: usize = 32;
pub const POLICY_DESC_LEN: usize = 160;

/// [`PolicyOps::shares`]: how a policy shares the CPU among tasks that
/// always want it (what the host judges it on).
/// `PolicyOps::flags`: the policy exists for schedlab's own tests (it
/// misbehaves on purpose); `schedlab policies` does not offer it.
pub const POLICY_FLAG_TEST_ONLY: u32 = 1;
/// Every flag this ABI version knows; a table with others is refused.
pub const POLICY_FLAGS_KNOWN: u32 =
    POLICY_FLAG_TEST_ONLY | POLICY_FLAG_BPF_RUNTIME | POLICY_FLAG_CUSTODY;
/// `PolicyOps::flags`: the BPF runtime, which runs the sched_ext object
/// the host loaded at `BPF_PROGRAM_ADDR` (`abi::bpf`); chosen by giving
/// `--policy` a `.bpf.o`, never by name.
pub const POLICY_FLAG_BPF_RUNTIME: u32 = 2;
/// `PolicyOps::flags`: after `enqueue` the policy may keep a runnable task
/// in its own custody, in no dispatch queue, and queue it later (from
/// `dispatch`), as a sched_ext BPF scheduler may (scx_central keeps them
/// in a BPF queue map). Without it the core calls such a task lost and
/// ends the run; with it, only the bounded-wait check (the run's starvation
/// alarm) notices a task the policy forgets.
pub const POLICY_FLAG_CUSTODY: u32 = 4;

pub const SHARES_NONE: u32 = 0;
pub const SHARES_EQUAL: u32 = 1;
pub const SHARES_WEIGHTED: u32 = 2;

/// Dispatch-queue ids, as sched_ext numbers them: built-in queues carry
/// [`DSQ_FLAG_BUILTIN`]; anything else is a queue the policy created with
/// `dsq_create`.
pub const DSQ_FLAG_BUILTIN: u64 = 1 << 63;
pub const DSQ_FLAG_LOCAL_ON: u64 = 1 << 62;
pub const DSQ_INVALID: u64 = DSQ_FLAG_BUILTIN;
/// The queue every CPU takes from when its local queue is empty.
pub const DSQ_GLOBAL: u64 = DSQ_FLAG_BUILTIN | 1;
/// The local queue of the CPU the callback runs for.
pub const DSQ_LOCAL: u64 = DSQ_FLAG_BUILTIN | 2;
/// `DSQ_LOCAL_ON | cpu`: CPU `cpu`'s local queue.
pub const DSQ_LOCAL_ON: u64 = DSQ_FLAG_BUILTIN | DSQ_FLAG_LOCAL_ON;
pub const DSQ_LOCAL_CPU_MASK: u64 = 0xffff_ffff;

/// Slice values, as sched_ext's `SCX_SLICE_*`: `SLICE_DFL` asks for the
/// run's `--slice`; `SLICE_INF` never expires.
pub const SLICE_DFL: u64 = u64::MAX - 1;
pub const SLICE_INF: u64 = u64::MAX;

/// Enqueue flags (`enq_flags` of `enqueue`, `runnable`): why a task is
/// being queued.
pub const ENQ_WAKEUP: u64 = 1;
pub const ENQ_NEW: u64 = 2;
/// Its slice ran out.
pub const ENQ_PREEMPTED: u64 = 4;
pub const ENQ_YIELD: u64 = 8;
/// With a dispatch: put the task at the head of the queue.
pub const ENQ_HEAD: u64 = 1 << 4;
/// With a dispatch to a CPU's local queue: preempt what runs there.
pub const ENQ_PREEMPT: u64 = 1 << 32;

/// `kick_cpu` flags.
pub const KICK_IDLE: u64 = 1;
pub const KICK_PREEMPT: u64 = 2;

/// `pick_idle_cpu` flag (sched_ext's `SCX_PICK_IDLE_CORE`): only a CPU
/// whose whole core (every SMT sibling) is idle (`abi::idle::pick_idle`).
pub const PICK_IDLE_CORE: u64 = 1;

/// Words of per-task storage a policy may use as it likes
/// ([`PolicyTask::data`]).
pub const POLICY_TASK_DATA_WORDS: usize = 4;
/// Bytes of per-CPU storage a policy may use as it likes
/// ([`PolicyServices::cpu_data`]).
pub const POLICY_CPU_DATA_SIZE: u64 = 256;

/// One task as a policy sees it (sched_ext's `task_struct` plus `p->scx`).
/// The core owns one per task-table slot and passes a pointer to every
/// callback; a policy writes only `slice_ns`, `dsq_vtime` and `data`.
/// Size 104 up to version 2; version 3 appended the `rt_*` fields.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PolicyTask {
    pub pid: u32,
    /// Task-table slot, `< MAX_TASKS`: an index for a policy's own arrays.
    pub slot: u32,
    /// Relative weight >= 1 (1, 2, 4 -> shares 1:2:4).
    pub weight: u32,
    /// The CPU it last ran on or is queued for.
    pub cpu: u32,
    /// CPUs it may run on (bit n = CPU n), never empty, online CPUs only.
    pub cpus_allowed: u64,
    /// Slice left, ns: consumed as the task runs; at 0 the core preempts
    /// it at the next tick. `SLICE_INF` never runs out.
    pub slice_ns: u64,
    /// Key for `dsq_insert_vtime`, kept across callbacks as sched_ext's
    /// `p->scx.dsq_vtime` is.
    pub dsq_vtime: u64,
    /// The task's `TASK_*` state (see [`crate::kstate`]).
    pub state: u32,
    pub reserved: u32,
    /// The task's name, NUL-padded.
    pub name: [u8; 16],
    /// Free for the policy.
    pub data: [u64; POLICY_TASK_DATA_WORDS],
    /// CPU time the task has run in all, ns, as the core charged it at its
    /// last tick or stop (time the host kept its vCPU waiting is not in
    /// it): `p->se.sum_exec_runtime` in Linux. A policy's "ran this turn"
    /// is this at `stopping` minus this at `running`.
    pub runtime_ns: u64,
    /// Version 3: the task's real-time attributes as it was spawned with
    /// them (`abi::ipc::RtAttrs`; Linux's `sched_attr`): period, one job's
    /// CPU time (budget) and relative deadline, ns; all 0 for a task that
    /// is not periodic. Read-only for the policy (`policy_sdk::rt`).
    pub rt_period_ns: u64,
    pub rt_runtime_ns: u64,
    pub rt_deadline_ns: u64,
    /// Version 3: fixed priority, higher runs first; 0 = none given.
    pub rt_priority: u32,
    pub rt_reserved: u32,
}

/// What a policy exports, first in its image. Every callback is optional.
/// They all run on one CPU at a time (under the core's scheduler lock),
/// at CPL3 with interrupts on, and must return quickly.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct PolicyOps {
    pub magic: u32,
    /// The [`POLICY_ABI_VERSION`] the policy was built against.
    pub version: u32,
    /// `size_of::<PolicyOps>()` as the policy was built.
    pub size: u32,
    pub reserved: u32,
    pub name: [u8; POLICY_NAME_LEN],
    pub description: [u8; POLICY_DESC_LEN],
    /// One of `SHARES_*`.
    pub shares: u32,
    /// 1: no runnable task waits unboundedly while others run.
    pub bounded_wait: u32,
    /// 1: periodic tasks meet their deadlines while the load allows.
    pub deadlines: u32,
    /// `POLICY_FLAG_*` bits.
    pub flags: u32,
    /// The CPU to queue a waking or new task for (`prev_cpu` by default).
    pub select_cpu:
        Option<unsafe extern "C" fn(p: *mut PolicyTask, prev_cpu: u32, wake_flags: u64) -> u32>,
    /// Queue a runnable task. Default: the global queue, FIFO.
    pub enqueue: Option<unsafe extern "C" fn(p: *mut PolicyTask, enq_flags: u64)>,
    /// The task leaves the policy's custody (the core already took it off
    /// any dispatch queue).
    pub dequeue: Option<unsafe extern "C" fn(p: *mut PolicyTask, deq_flags: u64)>,
    /// `cpu`'s local queue is empty: move work there (`prev` is the task
    /// that just ran there if it is still runnable, else null).
    pub dispatch: Option<unsafe extern "C" fn(cpu: u32, prev: *mut PolicyTask)>,
    /// A timer tick on the CPU running `p`; set `p.slice_ns = 0` to
    /// preempt it.
    pub tick: Option<unsafe extern "C" fn(p: *mut PolicyTask)>,
    pub runnable: Option<unsafe extern "C" fn(p: *mut PolicyTask, enq_flags: u64)>,
    pub running: Option<unsafe extern "C" fn(p: *mut PolicyTask)>,
    /// `runnable` = 1 if it will be queued again (preempted or yielded).
    pub stopping: Option<unsafe extern "C" fn(p: *mut PolicyTask, runnable: u32)>,
    pub quiescent: Option<unsafe extern "C" fn(p: *mut PolicyTask, deq_flags: u64)>,
    /// `from` yields (`to` is null: to anyone). Return 1 to deny.
    pub yield_: Option<unsafe extern "C" fn(from: *mut PolicyTask, to: *mut PolicyTask) -> u32>,
    pub set_weight: Option<unsafe extern "C" fn(p: *mut PolicyTask, weight: u32)>,
    pub set_cpumask: Option<unsafe extern "C" fn(p: *mut PolicyTask, mask: u64)>,
    pub update_idle: Option<unsafe extern "C" fn(cpu: u32, idle: u32)>,
    /// A new task; nonzero refuses it (the run ends with the error).
    pub init_task: Option<unsafe extern "C" fn(p: *mut PolicyTask) -> i32>,
    pub exit_task: Option<unsafe extern "C" fn(p: *mut PolicyTask)>,
    pub enable: Option<unsafe extern "C" fn(p: *mut PolicyTask)>,
    pub cpu_online: Option<unsafe extern "C" fn(cpu: u32)>,
    pub cpu_offline: Option<unsafe extern "C" fn(cpu: u32)>,
    /// First call, before any task: the services. Nonzero ends the run.
    pub init: Option<unsafe extern "C" fn(svc: *const PolicyServices) -> i32>,
    /// Last call, when the run ends.
    pub exit: Option<unsafe extern "C" fn(code: i64)>,
    /// Version 2. Every timer tick on every CPU, busy or idle, before the
    /// running task's `tick`: for timers a policy keeps itself (the BPF
    /// runtime's `bpf_timer`s). `now_ns` is the services' clock.
    pub cpu_tick: Option<unsafe extern "C" fn(cpu: u32, now_ns: u64)>,
}

/// What the core offers a policy, passed to `init`. All functions act
/// under the scheduler lock the callback already runs under.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct PolicyServices {
    pub magic: u32,
    /// The core's [`POLICY_ABI_VERSION`].
    pub version: u32,
    pub size: u32,
    /// CPUs the run has (`0..nr_cpus`).
    pub nr_cpus: u32,
    /// The run's `--slice`, ns (what `SLICE_DFL` means).
    pub slice_dfl_ns: u64,
    /// The policy argument (`BootInfo::policy_arg`).
    pub arg: u64,
    /// Base of `POLICY_CPU_DATA_SIZE` bytes per CPU, zeroed, free for the
    /// policy (CPU n's at `cpu_data + n * POLICY_CPU_DATA_SIZE`).
    pub cpu_data: *mut u8,
    /// Create queue `dsq_id` (no builtin flag). 0, or <0 if it exists or
    /// there is no room.
    pub dsq_create: unsafe extern "C" fn(dsq_id: u64) -> i32,
    /// Queue `p` at the tail (head with `ENQ_HEAD`) of `dsq_id`, with
    /// `slice_ns` (0 keeps its slice). A bad id, a task already in a queue
    /// (`dsq_remove` it first) or one that is not runnable ends the run.
    pub dsq_insert:
        unsafe extern "C" fn(p: *mut PolicyTask, dsq_id: u64, slice_ns: u64, enq_flags: u64),
    /// Queue `p` in `dsq_id` ordered by `vtime` (user queues only).
    pub dsq_insert_vtime: unsafe extern "C" fn(
        p: *mut PolicyTask,
        dsq_id: u64,
        slice_ns: u64,
        vtime: u64,
        enq_flags: u64,
    ),
    /// Move the first task of `dsq_id` that may run on `cpu` to `cpu`'s
    /// local queue; 1 if one moved.
    pub dsq_move_to_local: unsafe extern "C" fn(dsq_id: u64, cpu: u32) -> u32,
    /// Tasks in `dsq_id`, or <0 for an unknown queue.
    pub dsq_nr_queued: unsafe extern "C" fn(dsq_id: u64) -> i32,
    /// The first task of `dsq_id`, null if empty.
    pub dsq_first: unsafe extern "C" fn(dsq_id: u64) -> *mut PolicyTask,
    /// The task after `p` in its queue, null at the end.
    pub dsq_next: unsafe extern "C" fn(p: *mut PolicyTask) -> *mut PolicyTask,
    /// Take `p` off whatever queue holds it; 1 if it was queued.
    pub dsq_remove: unsafe extern "C" fn(p: *mut PolicyTask) -> u32,
    /// The queue holding `p`, `DSQ_INVALID` if none.
    pub dsq_of: unsafe extern "C" fn(p: *mut PolicyTask) -> u64,
    /// Idle CPUs (bit n = CPU n).
    pub idle_mask: unsafe extern "C" fn() -> u64,
    /// Claim idle `cpu` for a wake-up: 1 if it was idle and unclaimed.
    pub test_and_clear_cpu_idle: unsafe extern "C" fn(cpu: u32) -> u32,
    /// Claim an idle CPU in `mask`: its number, or <0 if none. With
    /// [`PICK_IDLE_CORE`] only a CPU whose whole core is idle; the choice is
    /// `abi::idle::pick_idle`'s.
    pub pick_idle_cpu: unsafe extern "C" fn(mask: u64, flags: u64) -> i32,
    /// Make `cpu` reschedule: wake it if idle (`KICK_IDLE`), or preempt
    /// what it runs (`KICK_PREEMPT`).
    pub kick_cpu: unsafe extern "C" fn(cpu: u32, flags: u64),
    /// The task running on `cpu`, null if idle.
    pub cpu_curr: unsafe extern "C" fn(cpu: u32) -> *mut PolicyTask,
    /// The task in slot `slot`, null if the slot is free.
    pub task_of_slot: unsafe extern "C" fn(slot: u32) -> *mut PolicyTask,
    /// Monotonic ns since the run began (the operations' clock).
    pub now_ns: unsafe extern "C" fn() -> u64,
    /// A line for the run's log (level as the call table's `log`).
    pub log: unsafe extern "C" fn(level: u32, text: *const u8, len: usize),
    /// End the run: the policy's `text` becomes the report's first line.
    pub error: unsafe extern "C" fn(text: *const u8, len: usize) -> !,
    /// Version 2. The CPU the current callback runs on (sched_ext's
    /// `bpf_get_smp_processor_id`; `enqueue` runs on the waker's CPU).
    pub cpu_id: unsafe extern "C" fn() -> u32,
    /// Version 3. The machine's shape (`topology.cpus() == nr_cpus`):
    /// each CPU's core, LLC and node and its sibling masks come from its
    /// methods (`smt_mask`, `llc_mask`, `node_mask`).
    pub topology: crate::topology::Topology,
}

/// Why a core refuses a policy's ops table (or a policy the services).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PolicyAbiError {
    BadMagic(u32),
    /// Built for a newer ABI than this side knows.
    TooNew {
        have: u32,
        know: u32,
    },
    /// `size` smaller than its version's fields need, or not a whole
    /// table.
    BadSize {
        size: u32,
        need: u32,
    },
}

/// Size of [`PolicyOps`] for each ABI version, indexed by version - 1:
/// append-only, so an older policy's table is a prefix of today's.
pub const POLICY_OPS_SIZES: [u32; POLICY_ABI_VERSION as usize] = [
    224 + 20 * 8,
    224 + 21 * 8,
    core::mem::size_of::<PolicyOps>() as u32,
];

impl PolicyOps {
    /// A table at this ABI version with every callback null (sched_ext's
    /// defaults throughout) and no promises: a base for `..` in a
    /// hand-written table or a test.
    pub const fn new(name: &str, description: &str) -> PolicyOps {
        PolicyOps {
            magic: POLICY_OPS_MAGIC,
            version: POLICY_ABI_VERSION,
            size: core::mem::size_of::<PolicyOps>() as u32,
            reserved: 0,
            name: padded(name),
            description: padded(description),
            shares: SHARES_NONE,
            bounded_wait: 0,
            deadlines: 0,
            flags: 0,
            select_cpu: None,
            enqueue: None,
            dequeue: None,
            dispatch: None,
            tick: None,
            runnable: None,
            running: None,
            stopping: None,
            quiescent: None,
            yield_: None,
            set_weight: None,
            set_cpumask: None,
            update_idle: None,
            init_task: None,
            exit_task: None,
            enable: None,
            cpu_online: None,
            cpu_offline: None,
            init: None,
            exit: None,
            cpu_tick: None,
        }
    }

    /// Whether a core at [`POLICY_ABI_VERSION`] can run a policy whose
    /// table says `magic`, `version`, `size`.
    pub const fn check_header(magic: u32, version: u32, size: u32) -> Result<(), PolicyAbiError> {
        if magic != POLICY_OPS_MAGIC {
            return Err(PolicyAbiError::BadMagic(magic));
        }
        if version == 0 || version > POLICY_ABI_VERSION {
            return Err(PolicyAbiError::TooNew {
                have: version,
                know: POLICY_ABI_VERSION,
            });
        }
        let need = POLICY_OPS_SIZES[version as usize - 1];
        if size != need {
            return Err(PolicyAbiError::BadSize { size, need });
        }
        Ok(())
    }

    /// The name as text (up to the first NUL; empty if not UTF-8).
    pub fn name_str(&self) -> &str {
        text(&self.name)
    }

    pub fn description_str(&self) -> &str {
        text(&self.description)
    }
}

impl PolicyServices {
    /// Whether a policy built at [`POLICY_ABI_VERSION`] can use services
    /// that say `magic`, `version`, `size` (a newer core is fine).
    pub const fn check_header(magic: u32, version: u32, size: u32) -> Result<(), PolicyAbiError> {
        if magic != POLICY_SERVICES_MAGIC {
            return Err(PolicyAbiError::BadMagic(magic));
        }
        let need = core::mem::size_of::<PolicyServices>() as u32;
        if version < POLICY_ABI_VERSION || size < need {
            return Err(PolicyAbiError::BadSize { size, need });
        }
        Ok(())
    }
}

/// Bytes up to the first NUL, as UTF-8 ("" if they are not).
pub fn text(b: &[u8]) -> &str {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    core::str::from_utf8(&b[..end]).unwrap_or("")
}

/// `s` NUL-padded into `N` bytes, cut at a character boundary (for the
/// SDK's `const` ops table).
pub const fn padded<const N: usize>(s: &str) -> [u8; N] {
    let b = s.as_bytes();
    let mut out = [0u8; N];
    let mut n = if b.len() < N { b.len() } else { N - 1 };
    // Back up to a UTF-8 boundary.
    while n > 0 && n < b.len() && (b[n] & 0xC0) == 0x80 {
        n -= 1;
    }
    let mut i = 0;
    while i < n {
        out[i] = b[i];
        i += 1;
    }
    out
}

const _: () = {
    use core::mem::{offset_of, size_of};
    assert!(size_of::<PolicyTask>() == 136);
    assert!(offset_of!(PolicyTask, runtime_ns) == 96);
    assert!(offset_of!(PolicyTask, rt_period_ns) == 104);
    assert!(offset_of!(PolicyTask, rt_runtime_ns) == 112);
    assert!(offset_of!(PolicyTask, rt_deadline_ns) == 120);
    assert!(offset_of!(PolicyTask, rt_priority) == 128);
    assert!(offset_of!(PolicyTask, cpus_allowed) == 16);
    assert!(offset_of!(PolicyTask, slice_ns) == 24);
    assert!(offset_of!(PolicyTask, dsq_vtime) == 32);
    assert!(offset_of!(PolicyTask, name) == 48);
    assert!(offset_of!(PolicyTask, data) == 64);
    assert!(offset_of!(PolicyOps, name) == 16);
    assert!(offset_of!(PolicyOps, description) == 48);
    assert!(offset_of!(PolicyOps, shares) == 208);
    assert!(offset_of!(PolicyOps, select_cpu) == 224);
    assert!(offset_of!(PolicyOps, exit) == 224 + 19 * 8);
    assert!(size_of::<PolicyOps>() == 224 + 21 * 8);
    assert!(offset_of!(PolicyOps, cpu_tick) == 224 + (CB_CPU_TICK as usize - 1) * 8);
    assert!(offset_of!(PolicyServices, cpu_data) == 32);
    assert!(offset_of!(PolicyServices, dsq_create) == 40);
    assert!(offset_of!(PolicyServices, error) == 40 + 17 * 8);
    assert!(offset_of!(PolicyServices, cpu_id) == 40 + 18 * 8);
    assert!(offset_of!(PolicyServices, topology) == 40 + 19 * 8);
    assert!(size_of::<PolicyServices>() == 40 + 19 * 8 + 16);
    assert!(DSQ_LOCAL_ON & DSQ_LOCAL_CPU_MASK == 0);
    // One name per callback pointer, ids in table order.
    assert!(POLICY_CALLBACKS.len() == 21);
    assert!(offset_of!(PolicyOps, enqueue) == 224 + (CB_ENQUEUE as usize - 1) * 8);
    assert!(offset_of!(PolicyOps, dispatch) == 224 + (CB_DISPATCH as usize - 1) * 8);
    assert!(offset_of!(PolicyOps, init_task) == 224 + (CB_INIT_TASK as usize - 1) * 8);
    assert!(offset_of!(PolicyOps, cpu_online) == 224 + (CB_CPU_ONLINE as usize - 1) * 8);
    assert!(offset_of!(PolicyOps, exit) == 224 + (CB_EXIT as usize - 1) * 8);
    assert!(offset_of!(PolicyOps, init) == 224 + (CB_INIT as usize - 1) * 8);
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_core_runs_its_own_or_older_policies_and_refuses_newer_ones() {
        let size = core::mem::size_of::<PolicyOps>() as u32;
        assert_eq!(
            PolicyOps::check_header(POLICY_OPS_MAGIC, POLICY_ABI_VERSION, size),
            Ok(())
        );
        // A version-1 table (no `cpu_tick`) still runs.
        assert_eq!(
            PolicyOps::check_header(POLICY_OPS_MAGIC, 1, size - 8),
            Ok(())
        );
        assert_eq!(
            PolicyOps::check_header(POLICY_OPS_MAGIC, POLICY_ABI_VERSION + 1, size + 8),
            Err(PolicyAbiError::TooNew {
                have: POLICY_ABI_VERSION + 1,
                know: POLICY_ABI_VERSION
            })
        );
        // Version 2 added `cpu_tick`; version 3 only services and task
        // fields, so its table is version 2's size.
        assert_eq!(PolicyOps::check_header(POLICY_OPS_MAGIC, 2, size), Ok(()));
        assert_eq!(
            PolicyOps::check_header(POLICY_OPS_MAGIC, 2, size - 8),
            Err(PolicyAbiError::BadSize {
                size: size - 8,
                need: size
            })
        );
        assert_eq!(
            PolicyOps::check_header(tag(b"XXXX"), 1, size),
            Err(PolicyAbiError::BadMagic(tag(b"XXXX")))
        );
    }

    #[test]
    fn a_policy_accepts_newer_services_and_refuses_older_ones() {
        let size = core::mem::size_of::<PolicyServices>() as u32;
        assert_eq!(
            PolicyServices::check_header(POLICY_SERVICES_MAGIC, POLICY_ABI_VERSION, size),
            Ok(())
        );
        assert_eq!(
            PolicyServices::check_header(POLICY_SERVICES_MAGIC, 9, size + 64),
            Ok(())
        );
        assert!(
            PolicyServices::check_header(POLICY_SERVICES_MAGIC, POLICY_ABI_VERSION, size - 8)
                .is_err()
        );
        assert!(PolicyServices::check_header(0, 1, size).is_err());
    }

    #[test]
    fn callback_ids_name_the_table_s_callbacks() {
        assert_eq!(callback_name(0), None);
        assert_eq!(callback_name(u64::from(CB_SELECT_CPU)), Some("select_cpu"));
        assert_eq!(callback_name(u64::from(CB_ENQUEUE)), Some("enqueue"));
        assert_eq!(callback_name(u64::from(CB_DISPATCH)), Some("dispatch"));
        assert_eq!(callback_name(20), Some("exit"));
        assert_eq!(callback_name(21), Some("cpu_tick"));
        assert_eq!(callback_name(22), None);
        assert_eq!(callback_name(u64::MAX), None);
    }

    #[test]
    fn names_are_nul_padded_and_cut_at_a_character_boundary() {
        let p: [u8; 8] = padded("stride");
        assert_eq!(text(&p), "stride");
        // 'é' is two bytes: 6 + 2 does not fit in 7 usable bytes.
        let p: [u8; 8] = padded("abcdefé");
        assert_eq!(text(&p), "abcdef");
        assert_eq!(text(&[0xff, 0]), "");
    }
}
