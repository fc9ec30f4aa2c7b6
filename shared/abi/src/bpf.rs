//! sched_ext BPF objects as a policy: the contract between the host's
//! loader (`host/bpf`, package schedlab-bpf) and the guest's BPF runtime
//! image (`guest/bpf-runtime`).
//!
//! The host reads a clang-built `.bpf.o`, applies its relocations (CO-RE
//! against the target layouts below, maps, globals, kfuncs, sub-program
//! calls) and writes one [`BpfHeader`]-led *program image* at
//! [`crate::memmap::BPF_PROGRAM_ADDR`]. The runtime (an ordinary policy
//! image at `POLICY_LOAD_ADDR`) interprets it; every memory access a
//! program makes is checked against the regions this module names.
//!
//! Layout of the program image (all offsets from its start, 8-aligned):
//! header, [`BpfProg`] table, [`BpfMap`] table, function-entry table
//! (`u32` instruction indices, sorted), instructions (8-byte `bpf_insn`),
//! then three data areas: read-only (`.rodata*`), read-write (`.data*`,
//! `.bss*`, then every map's values) and metadata (what only the runtime
//! touches: hash keys and slot states, queue heads, inner-map handles).
//!
//! The loader rewrites instructions so the runtime needs no relocation
//! logic of its own:
//! - `ld_imm64` is always a plain 64-bit constant (`src_reg` 0): a map
//!   handle ([`map_handle`]), a global's guest address, a kfunc's
//!   existence (1 or 0, `bpf_ksym_exists`), or a sub-program address
//!   tagged with [`FUNC_PTR_TAG`] (`bpf_timer_set_callback`);
//! - a helper call keeps `src_reg` 0 and the helper's number in `imm`
//!   (only numbers in [`HELPERS`]);
//! - a kfunc call has `src_reg` [`PSEUDO_KFUNC_CALL`] and its index in
//!   [`KFUNCS`] in `imm` ([`KFUNC_MISSING`] for an unresolved weak one,
//!   which faults only if it is reached);
//! - a sub-program call has `src_reg` [`PSEUDO_CALL`] and `imm` relative
//!   to the next instruction in the one instruction array, landing on a
//!   function entry.

use crate::memmap::MAX_TASKS;
use crate::policy::POLICY_CALLBACKS;
use crate::tag;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

pub const BPF_PROGRAM_MAGIC: u32 = tag(b"BPFO");
/// Bumped on any change to this module's layouts or encodings.
pub const BPF_PROGRAM_VERSION: u32 = 1;

/// `bpf_insn.src_reg` of a call to a sub-program (as in the kernel).
pub const PSEUDO_CALL: u8 = 1;
/// `bpf_insn.src_reg` of a kfunc call (as in the kernel).
pub const PSEUDO_KFUNC_CALL: u8 = 2;
/// `imm` of a call to a weak kfunc that did not resolve.
pub const KFUNC_MISSING: i32 = -1;
/// A sub-program's address as a value: this tag | its instruction index.
pub const FUNC_PTR_TAG: u64 = 0xF0F0_0000_0000_0000;
/// A map's handle as a value: this tag | (its index in the map table).
/// Never an address: a program that dereferences one faults.
pub const MAP_HANDLE_TAG: u64 = 0xF1F1_0000_0000_0000;

pub const fn map_handle(index: u32) -> u64 {
    MAP_HANDLE_TAG | index as u64
}

/// Limits the loader enforces and the runtime relies on.
pub const MAX_PROGS: usize = 64;
pub const MAX_MAPS: usize = 64;
pub const MAX_INSNS: usize = 1 << 17;
/// Stack bytes per BPF frame (the kernel's limit).
pub const STACK_SIZE: usize = 512;
/// Nested sub-program calls (the kernel's limit).
pub const MAX_CALL_DEPTH: usize = 8;
/// Instructions one callback (with its sub-programs and the timer
/// callbacks it runs) may execute before the runtime ends the run: the
/// kernel's verifier bounds loops statically, schedlab counts instead.
pub const INSN_BUDGET: u64 = 1 << 20;
/// `sched_ext`'s dispatch buffer (`SCX_DSP_DFL_MAX_BATCH`): inserts one
/// `dispatch` call may make; `scx_bpf_dispatch_nr_slots` counts down.
pub const DISPATCH_MAX_BATCH: u32 = 32;
/// Most `bpf_timer`s live at once.
pub const MAX_TIMERS: usize = 16;
/// Most cpumasks a program holds at once (`bpf_cpumask_create`).
pub const MAX_CPUMASKS: usize = 64;
/// Bytes of a program's or map's name (NUL-padded).
pub const NAME_LEN: usize = 48;

/// The image's first bytes.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct BpfHeader {
    pub magic: u32,
    pub version: u32,
    /// Bytes of the whole image, data areas included.
    pub size: u32,
    /// CPUs of the run (the loader sized per-CPU maps for them).
    pub nr_cpus: u32,
    pub nr_progs: u32,
    pub nr_maps: u32,
    pub nr_funcs: u32,
    pub nr_insns: u32,
    pub progs_off: u32,
    pub maps_off: u32,
    pub funcs_off: u32,
    pub insns_off: u32,
    /// Read-only data: `.rodata` and `.rodata.*`, loads only.
    pub ro_off: u32,
    pub ro_len: u32,
    /// Read-write data: `.data*`, `.bss*`, then the maps' values.
    pub rw_off: u32,
    pub rw_len: u32,
    /// The runtime's own map metadata; programs never reach it.
    pub meta_off: u32,
    pub meta_len: u32,
    /// Per [`POLICY_CALLBACKS`] entry (plus [`CB_EXTRA`]): program index
    /// + 1, 0 for sched_ext's default.
    pub callbacks: [u32; NR_CALLBACKS],
    /// `sched_ext_ops.flags`, `timeout_ms`, `dispatch_max_batch` as the
    /// object set them.
    pub ops_flags: u64,
    pub timeout_ms: u32,
    pub dispatch_max_batch: u32,
    /// `sched_ext_ops.name`, NUL-padded.
    pub name: [u8; 32],
    /// Written by the runtime; the host reads it after the run.
    pub status: BpfStatus,
}

/// Callbacks of `sched_ext_ops` beyond the policy ABI's that the runtime
/// calls itself: `disable` (before `exit_task`).
pub const CB_EXTRA: [&str; 1] = ["disable"];
pub const NR_CALLBACKS: usize = POLICY_CALLBACKS.len() + CB_EXTRA.len();
/// Index of `disable` in [`BpfHeader::callbacks`].
pub const CB_DISABLE_INDEX: usize = POLICY_CALLBACKS.len();
/// `sched_ext_ops` callbacks an object may set that are never called
/// (the loader says so): dumps exist for a kernel's debug output.
pub const CB_IGNORED: [&str; 3] = ["dump", "dump_cpu", "dump_task"];

/// What the runtime reports back (in [`BpfHeader::status`]).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct BpfStatus {
    /// One of `STATUS_*`.
    pub state: u32,
    /// With `STATUS_FAULT`: one of `FAULT_*`.
    pub fault: u32,
    /// Program index and instruction index (in the one array) of the
    /// fault.
    pub prog: u32,
    pub insn: u32,
    /// The address and size of a bad access; the helper or kfunc number
    /// of a bad call.
    pub addr: u64,
    pub size: u64,
    /// Instructions executed over the run, and callbacks entered.
    pub insns_run: u64,
    pub calls: u64,
}

pub const STATUS_OK: u32 = 0;
/// The sandbox stopped a program: see `fault`.
pub const STATUS_FAULT: u32 = 1;
/// The program called `scx_bpf_error` (its text went to `error`).
pub const STATUS_ERROR: u32 = 2;
/// The program called `scx_bpf_exit`.
pub const STATUS_EXIT: u32 = 3;

/// Sandbox faults, as the host words them.
pub const FAULT_LOAD: u32 = 1;
pub const FAULT_STORE: u32 = 2;
pub const FAULT_BUDGET: u32 = 3;
pub const FAULT_BAD_INSN: u32 = 4;
pub const FAULT_DIV_ZERO: u32 = 5;
pub const FAULT_CALL_DEPTH: u32 = 6;
/// A call of a weak kfunc that did not resolve, or an instruction whose
/// CO-RE relocation schedlab's target could not satisfy (the loader
/// poisons it into such a call, as libbpf does).
pub const FAULT_MISSING_KFUNC: u32 = 7;
/// A helper or kfunc given a bad argument (map handle, pointer, CPU).
pub const FAULT_BAD_ARG: u32 = 8;

pub fn fault_text(fault: u32) -> &'static str {
    match fault {
        FAULT_LOAD => "load outside the program's memory",
        FAULT_STORE => "store outside the program's writable memory",
        FAULT_BUDGET => "instruction budget of one callback used up (a loop that does not end?)",
        FAULT_BAD_INSN => "invalid instruction",
        FAULT_DIV_ZERO => "division by zero",
        FAULT_CALL_DEPTH => "sub-program calls nested too deeply",
        FAULT_MISSING_KFUNC => {
            "reached a weak kfunc or a CO-RE field that schedlab does not provide"
        }
        FAULT_BAD_ARG => "bad argument to a helper or kfunc",
        _ => "unknown fault",
    }
}

/// One program: a `struct_ops` callback or the entry of a timer callback.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BpfProg {
    /// Instruction index of its entry, and its length (sub-programs it
    /// calls live elsewhere in the array).
    pub entry: u32,
    pub len: u32,
    /// Its function name (`simple_enqueue`), NUL-padded.
    pub name: [u8; NAME_LEN],
}

/// One map (including the global sections libbpf makes maps of: they
/// appear here too, as one-entry arrays, so `bpf_map_lookup_elem` works
/// on them as in the kernel).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BpfMap {
    /// `MAP_*` (the kernel's `BPF_MAP_TYPE_*` numbers).
    pub kind: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub flags: u32,
    /// For a map of maps: index of the inner-map template in the table.
    pub inner: u32,
    /// The map's values: offset in the image (inside the read-write area,
    /// or the read-only one for `.rodata`), bytes.
    pub values_off: u32,
    pub values_len: u32,
    /// Its metadata (inside the metadata area), bytes.
    pub meta_off: u32,
    pub meta_len: u32,
    pub name: [u8; NAME_LEN],
}

/// Map types (the kernel's numbers) the runtime implements.
pub const MAP_HASH: u32 = 1;
pub const MAP_ARRAY: u32 = 2;
pub const MAP_PERCPU_HASH: u32 = 5;
pub const MAP_PERCPU_ARRAY: u32 = 6;
pub const MAP_LRU_HASH: u32 = 9;
pub const MAP_ARRAY_OF_MAPS: u32 = 12;
pub const MAP_HASH_OF_MAPS: u32 = 13;
pub const MAP_QUEUE: u32 = 22;
pub const MAP_STACK: u32 = 23;
pub const MAP_TASK_STORAGE: u32 = 29;
/// Every supported type with its name, for the loader's messages.
pub const MAP_TYPES: [(u32, &str); 10] = [
    (MAP_HASH, "HASH"),
    (MAP_ARRAY, "ARRAY"),
    (MAP_PERCPU_HASH, "PERCPU_HASH"),
    (MAP_PERCPU_ARRAY, "PERCPU_ARRAY"),
    (MAP_LRU_HASH, "LRU_HASH"),
    (MAP_ARRAY_OF_MAPS, "ARRAY_OF_MAPS"),
    (MAP_HASH_OF_MAPS, "HASH_OF_MAPS"),
    (MAP_QUEUE, "QUEUE"),
    (MAP_STACK, "STACK"),
    (MAP_TASK_STORAGE, "TASK_STORAGE"),
];

/// Where a map's bytes go, as both sides compute it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapLayout {
    /// Bytes of values (in the read-write area).
    pub values_len: u64,
    /// Bytes of metadata.
    pub meta_len: u64,
    /// Value slots (hash tables have more than `max_entries`).
    pub slots: u64,
    /// Bytes between two values.
    pub stride: u64,
}

/// Bytes a value takes in a map (8-aligned, so every value is).
pub const fn value_stride(value_size: u32) -> u64 {
    (value_size as u64 + 7) & !7
}

/// Slots of a hash table with `max_entries`: a power of two at least
/// twice the entries (open addressing stays short).
pub const fn hash_slots(max_entries: u32) -> u64 {
    let want = max_entries as u64 * 2;
    let mut n = 8;
    while n < want {
        n *= 2;
    }
    n
}

/// Metadata per hash slot: a state word (0 free, 1 used, 2 deleted) then
/// the key, 8-aligned.
pub const fn hash_meta_stride(key_size: u32) -> u64 {
    8 + value_stride(key_size)
}

/// A map's layout, None for a type this ABI does not know or sizes that
/// overflow.
///
/// Per-CPU maps keep a slot's copies together: slot `i`'s copy for CPU
/// `c` is value `i * nr_cpus + c`. A hash-of-maps metadata slot is the
/// state word, the key (8-aligned), then the inner map's handle; the
/// runtime finds those entries by scanning, so a loader may place them in
/// any slot (plain hash tables start empty: the runtime alone fills them).
pub const fn map_layout(
    kind: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    nr_cpus: u32,
) -> Option<MapLayout> {
    let stride = value_stride(value_size);
    let n = max_entries as u64;
    let cpus = nr_cpus as u64;
    let (values_len, meta_len, slots) = match kind {
        MAP_ARRAY => (n * stride, 0, n),
        MAP_PERCPU_ARRAY => (n * stride * cpus, 0, n),
        MAP_HASH | MAP_LRU_HASH => {
            let s = hash_slots(max_entries);
            (s * stride, s * hash_meta_stride(key_size), s)
        }
        MAP_PERCPU_HASH => {
            let s = hash_slots(max_entries);
            (s * stride * cpus, s * hash_meta_stride(key_size), s)
        }
        // Head index and count, then the ring of values.
        MAP_QUEUE | MAP_STACK => (n * stride, 16, n),
        // One value per task-table slot; metadata: the owning pid per
        // slot (0: none).
        MAP_TASK_STORAGE => (
            MAX_TASKS as u64 * stride,
            MAX_TASKS as u64 * 8,
            MAX_TASKS as u64,
        ),
        // Inner-map handles (0: empty) live in metadata: a lookup returns
        // the handle itself, never a pointer programs could write through.
        MAP_ARRAY_OF_MAPS => (0, n * 8, n),
        MAP_HASH_OF_MAPS => {
            let s = hash_slots(max_entries);
            (0, s * (hash_meta_stride(key_size) + 8), s)
        }
        _ => return None,
    };
    Some(MapLayout {
        values_len,
        meta_len,
        slots,
        stride,
    })
}

/// The kfuncs the runtime implements, by name; a kfunc call's `imm` is
/// its index here. Names are matched as libbpf does: `name___suffix`
/// (a `___compat` variant) resolves to `name`.
pub const KFUNCS: [&str; 53] = [
    // Dispatch queues.
    "scx_bpf_create_dsq",
    "scx_bpf_destroy_dsq",
    "scx_bpf_dsq_insert",
    "scx_bpf_dsq_insert_vtime",
    "scx_bpf_dsq_move_to_local",
    "scx_bpf_dsq_nr_queued",
    "scx_bpf_dispatch_nr_slots",
    // Pre-6.13 names of the same calls (the `___compat` fallbacks).
    "scx_bpf_dispatch",
    "scx_bpf_dispatch_vtime",
    "scx_bpf_consume",
    // CPU selection and idle CPUs.
    "scx_bpf_select_cpu_dfl",
    "scx_bpf_test_and_clear_cpu_idle",
    "scx_bpf_pick_idle_cpu",
    "scx_bpf_pick_any_cpu",
    "scx_bpf_get_idle_cpumask",
    "scx_bpf_get_idle_smtmask",
    "scx_bpf_put_idle_cpumask",
    "scx_bpf_get_online_cpumask",
    "scx_bpf_get_possible_cpumask",
    "scx_bpf_put_cpumask",
    "scx_bpf_kick_cpu",
    "scx_bpf_nr_cpu_ids",
    "scx_bpf_cpuperf_cap",
    "scx_bpf_cpuperf_cur",
    "scx_bpf_cpuperf_set",
    // Tasks and time.
    "scx_bpf_now",
    "scx_bpf_task_cpu",
    "scx_bpf_task_running",
    "bpf_task_from_pid",
    "bpf_task_acquire",
    "bpf_task_release",
    // Ending the run.
    "scx_bpf_error_bstr",
    "scx_bpf_exit_bstr",
    "scx_bpf_dump_bstr",
    // cpumasks.
    "bpf_cpumask_create",
    "bpf_cpumask_acquire",
    "bpf_cpumask_release",
    "bpf_cpumask_test_cpu",
    "bpf_cpumask_set_cpu",
    "bpf_cpumask_clear_cpu",
    "bpf_cpumask_test_and_set_cpu",
    "bpf_cpumask_test_and_clear_cpu",
    "bpf_cpumask_setall",
    "bpf_cpumask_clear",
    "bpf_cpumask_and",
    "bpf_cpumask_or",
    "bpf_cpumask_copy",
    "bpf_cpumask_first",
    "bpf_cpumask_empty",
    "bpf_cpumask_weight",
    // Open-coded loops (`bpf_for`, `bpf_repeat`).
    "bpf_iter_num_new",
    "bpf_iter_num_next",
    "bpf_iter_num_destroy",
];

/// The index of kfunc `name` in [`KFUNCS`] (after stripping a
/// `___suffix`), as libbpf resolves it.
pub fn kfunc_index(name: &str) -> Option<u32> {
    let base = match name.find("___") {
        Some(i) => &name[..i],
        None => name,
    };
    KFUNCS.iter().position(|k| *k == base).map(|i| i as u32)
}

/// The BPF helpers the runtime implements: (number, name).
pub const HELPERS: [(u32, &str); 21] = [
    (1, "bpf_map_lookup_elem"),
    (2, "bpf_map_update_elem"),
    (3, "bpf_map_delete_elem"),
    (5, "bpf_ktime_get_ns"),
    (6, "bpf_trace_printk"),
    (7, "bpf_get_prandom_u32"),
    (8, "bpf_get_smp_processor_id"),
    (87, "bpf_map_push_elem"),
    (88, "bpf_map_pop_elem"),
    (89, "bpf_map_peek_elem"),
    (113, "bpf_probe_read_kernel"),
    (115, "bpf_probe_read_kernel_str"),
    (125, "bpf_ktime_get_boot_ns"),
    (156, "bpf_task_storage_get"),
    (157, "bpf_task_storage_delete"),
    (169, "bpf_timer_init"),
    (170, "bpf_timer_set_callback"),
    (171, "bpf_timer_start"),
    (172, "bpf_timer_cancel"),
    (177, "bpf_trace_vprintk"),
    (194, "bpf_kptr_xchg"),
];

pub fn helper_name(id: u32) -> Option<&'static str> {
    HELPERS.iter().find(|h| h.0 == id).map(|h| h.1)
}

/// `bpf_timer_start` flag: run the callback on the CPU that started it.
pub const TIMER_F_CPU_PIN: u64 = 1 << 1;
/// `bpf_timer_start` flag: the time is absolute.
pub const TIMER_F_ABS: u64 = 1 << 0;
/// `bpf_task_storage_get` flag: create the value if missing.
pub const TASK_STORAGE_GET_F_CREATE: u64 = 1;
/// `bpf_map_update_elem` flags.
pub const BPF_ANY: u64 = 0;
pub const BPF_NOEXIST: u64 = 1;
pub const BPF_EXIST: u64 = 2;

/// sched_ext's enum constants, as the loader fills the object's weak
/// `__SCX_*` globals (`SCX_SLICE_DFL` is the run's `--slice`, written by
/// the loader, not here). A referenced `__SCX_*` name not in this list
/// (nor `SCX_SLICE_DFL`) is refused.
pub const SCX_ENUMS: [(&str, u64); 24] = [
    ("SCX_DSQ_FLAG_BUILTIN", crate::policy::DSQ_FLAG_BUILTIN),
    ("SCX_DSQ_FLAG_LOCAL_ON", crate::policy::DSQ_FLAG_LOCAL_ON),
    ("SCX_DSQ_INVALID", crate::policy::DSQ_INVALID),
    ("SCX_DSQ_GLOBAL", crate::policy::DSQ_GLOBAL),
    ("SCX_DSQ_LOCAL", crate::policy::DSQ_LOCAL),
    ("SCX_DSQ_LOCAL_ON", crate::policy::DSQ_LOCAL_ON),
    ("SCX_DSQ_LOCAL_CPU_MASK", crate::policy::DSQ_LOCAL_CPU_MASK),
    ("SCX_SLICE_INF", u64::MAX),
    ("SCX_KICK_IDLE", crate::policy::KICK_IDLE),
    ("SCX_KICK_PREEMPT", crate::policy::KICK_PREEMPT),
    ("SCX_KICK_WAIT", 4),
    ("SCX_ENQ_WAKEUP", crate::policy::ENQ_WAKEUP),
    ("SCX_ENQ_HEAD", crate::policy::ENQ_HEAD),
    ("SCX_ENQ_PREEMPT", crate::policy::ENQ_PREEMPT),
    ("SCX_ENQ_REENQ", 1 << 40),
    ("SCX_ENQ_LAST", 1 << 41),
    ("SCX_ENQ_CLEAR_OPSS", 1 << 56),
    ("SCX_ENQ_DSQ_PRIQ", 1 << 57),
    ("SCX_DEQ_SLEEP", 1),
    ("SCX_DEQ_CORE_SCHED_EXEC", 1 << 32),
    ("SCX_OPS_NAME_LEN", 128),
    ("SCX_TASK_QUEUED", 1),
    ("SCX_PICK_IDLE_CORE", crate::policy::PICK_IDLE_CORE),
    ("SCX_EXIT_NONE", 0),
];

/// A `task_struct` as BPF programs see it: the runtime keeps one per
/// task-table slot, copied from the core's `PolicyTask` when a program
/// gets the pointer and `scx.slice`/`scx.dsq_vtime` copied back. The
/// loader's CO-RE target is generated from this layout
/// ([`TARGET_TYPES`]), so a program's `p->scx.slice` lands here.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScxTask {
    pub pid: i32,
    pub tgid: i32,
    /// `PF_*` flags (schedlab tasks are never `PF_KTHREAD`).
    pub flags: u32,
    pub nr_cpus_allowed: i32,
    /// Address of `cpus_mask` (the kernel's `p->cpus_ptr`).
    pub cpus_ptr: u64,
    pub cpus_mask: Cpumask,
    pub comm: [u8; 16],
    pub scx: ScxEntity,
}

/// `struct sched_ext_entity`: what sched_ext keeps per task.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScxEntity {
    /// Slice left, ns; the core consumes it as the task runs.
    pub slice: u64,
    pub dsq_vtime: u64,
    /// sched_ext's scale: 100 for a default task (schedlab weight × 100).
    pub weight: u32,
    /// `SCX_TASK_*` state bits.
    pub flags: u32,
    /// The dispatch queue holding the task (`SCX_DSQ_INVALID`: none).
    pub dsq_id: u64,
    pub sticky_cpu: i32,
    pub holding_cpu: i32,
}

/// `struct cpumask`: one word, schedlab runs at most 64 CPUs.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cpumask {
    pub bits: [u64; 1],
}

/// `struct scx_exit_info`, passed to `exit`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScxExitInfo {
    pub kind: u32,
    pub pad: u32,
    pub exit_code: i64,
    /// Addresses of NUL-terminated texts the runtime owns.
    pub reason: u64,
    pub bt: u64,
    pub bt_len: u32,
    pub pad2: u32,
    pub msg: u64,
    pub dump: u64,
}

/// `struct scx_init_task_args`, passed to `init_task`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScxInitTaskArgs {
    pub fork: u8,
    pub pad: [u8; 7],
    pub cgroup: u64,
}

/// `scx_exit_kind` values the runtime reports.
pub const SCX_EXIT_DONE: u32 = 1;
pub const SCX_EXIT_UNREG: u32 = 64;
pub const SCX_EXIT_UNREG_BPF: u32 = 65;
pub const SCX_EXIT_ERROR: u32 = 1024;
pub const SCX_EXIT_ERROR_BPF: u32 = 1025;

/// What a target field is, for the loader's generated BTF.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetKind {
    /// An integer of the field's size.
    Int { signed: bool },
    /// A pointer to the named target struct (or `void` for "").
    Ptr(&'static str),
    /// A nested target struct.
    Struct(&'static str),
    /// An array of `n` integers of `elem` bytes (`char comm[16]`).
    IntArray { elem: usize, signed: bool },
}

/// One field of a target struct: its C name, where it is in the real
/// layout, whether programs may write it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TargetField {
    pub name: &'static str,
    pub offset: usize,
    pub size: usize,
    pub kind: TargetKind,
    pub writable: bool,
}

/// A target struct: its C name and fields, from the Rust layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TargetStruct {
    pub name: &'static str,
    pub size: usize,
    pub fields: &'static [TargetField],
}

macro_rules! field {
    ($t:ty, $f:ident, $kind:expr, $w:expr) => {
        field!($t, $f, stringify!($f), $kind, $w)
    };
    ($t:ty, $f:ident, $name:expr, $kind:expr, $w:expr) => {
        TargetField {
            name: $name,
            offset: core::mem::offset_of!($t, $f),
            size: {
                // The size of the field, from a null-free projection.
                const fn size_of_field<T, F>(_: fn(&T) -> &F) -> usize {
                    core::mem::size_of::<F>()
                }
                size_of_field(|x: &$t| &x.$f)
            },
            kind: $kind,
            writable: $w,
        }
    };
}

const I: TargetKind = TargetKind::Int { signed: true };
const U: TargetKind = TargetKind::Int { signed: false };

/// The CO-RE target: every struct a program may reach through a pointer
/// the runtime hands it, generated from the layouts above. The sandbox
/// lets a program touch a task only inside these fields (and write only
/// the writable ones).
pub const TARGET_TYPES: [TargetStruct; 6] = [
    TargetStruct {
        name: "task_struct",
        size: core::mem::size_of::<ScxTask>(),
        fields: &[
            field!(ScxTask, pid, I, false),
            field!(ScxTask, tgid, I, false),
            field!(ScxTask, flags, U, false),
            field!(ScxTask, nr_cpus_allowed, I, false),
            field!(ScxTask, cpus_ptr, TargetKind::Ptr("cpumask"), false),
            field!(ScxTask, cpus_mask, TargetKind::Struct("cpumask"), false),
            field!(
                ScxTask,
                comm,
                TargetKind::IntArray {
                    elem: 1,
                    signed: true
                },
                false
            ),
            field!(ScxTask, scx, TargetKind::Struct("sched_ext_entity"), false),
        ],
    },
    TargetStruct {
        name: "sched_ext_entity",
        size: core::mem::size_of::<ScxEntity>(),
        fields: &[
            field!(ScxEntity, slice, U, true),
            field!(ScxEntity, dsq_vtime, U, true),
            field!(ScxEntity, weight, U, false),
            field!(ScxEntity, flags, U, false),
            field!(ScxEntity, dsq_id, "dsq", U, false),
            field!(ScxEntity, sticky_cpu, I, false),
            field!(ScxEntity, holding_cpu, I, false),
        ],
    },
    TargetStruct {
        name: "cpumask",
        size: core::mem::size_of::<Cpumask>(),
        fields: &[field!(
            Cpumask,
            bits,
            TargetKind::IntArray {
                elem: 8,
                signed: false
            },
            false
        )],
    },
    TargetStruct {
        name: "scx_exit_info",
        size: core::mem::size_of::<ScxExitInfo>(),
        fields: &[
            field!(ScxExitInfo, kind, U, false),
            field!(ScxExitInfo, exit_code, I, false),
            field!(ScxExitInfo, reason, TargetKind::Ptr(""), false),
            field!(ScxExitInfo, bt, TargetKind::Ptr(""), false),
            field!(ScxExitInfo, bt_len, U, false),
            field!(ScxExitInfo, msg, TargetKind::Ptr(""), false),
            field!(ScxExitInfo, dump, TargetKind::Ptr(""), false),
        ],
    },
    TargetStruct {
        name: "scx_init_task_args",
        size: core::mem::size_of::<ScxInitTaskArgs>(),
        fields: &[
            field!(ScxInitTaskArgs, fork, U, false),
            field!(ScxInitTaskArgs, cgroup, TargetKind::Ptr(""), false),
        ],
    },
    // `struct bpf_cpumask` wraps a cpumask; programs pass it to kfuncs.
    TargetStruct {
        name: "bpf_cpumask",
        size: core::mem::size_of::<Cpumask>(),
        fields: &[field!(
            Cpumask,
            bits,
            "cpumask",
            TargetKind::Struct("cpumask"),
            false
        )],
    },
];

/// The target struct named `name`.
pub fn target_struct(name: &str) -> Option<&'static TargetStruct> {
    TARGET_TYPES.iter().find(|t| t.name == name)
}

const _: () = {
    use core::mem::{offset_of, size_of};
    assert!(size_of::<BpfStatus>() == 48);
    assert!(size_of::<BpfProg>() == 8 + NAME_LEN);
    assert!(size_of::<BpfMap>() == 40 + NAME_LEN);
    assert!(offset_of!(BpfHeader, callbacks) == 72);
    assert!(size_of::<BpfHeader>().is_multiple_of(8));
    assert!(size_of::<ScxTask>().is_multiple_of(8));
    assert!(size_of::<ScxExitInfo>() == 56);
    assert!(KFUNCS.len() < i32::MAX as usize);
    assert!(MAX_CPUMASKS > 0 && MAX_TIMERS > 0);
    // A task view has every target field inside it.
    let t = &TARGET_TYPES[0];
    let mut i = 0;
    while i < t.fields.len() {
        assert!(t.fields[i].offset + t.fields[i].size <= t.size);
        i += 1;
    }
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compat_variants_resolve_to_the_kfunc() {
        assert_eq!(
            kfunc_index("scx_bpf_dispatch___compat"),
            kfunc_index("scx_bpf_dispatch")
        );
        assert!(kfunc_index("scx_bpf_dsq_insert").is_some());
        assert_eq!(kfunc_index("scx_bpf_no_such_thing"), None);
    }

    #[test]
    fn kfunc_and_helper_names_are_unique() {
        for (i, a) in KFUNCS.iter().enumerate() {
            assert!(!KFUNCS[i + 1..].contains(a), "{a} twice");
        }
        for (i, a) in HELPERS.iter().enumerate() {
            assert!(HELPERS[i + 1..].iter().all(|b| b.0 != a.0 && b.1 != a.1));
        }
    }

    #[test]
    fn target_fields_come_from_the_layout() {
        let t = target_struct("task_struct").unwrap();
        let scx = t.fields.iter().find(|f| f.name == "scx").unwrap();
        assert_eq!(scx.offset, core::mem::offset_of!(ScxTask, scx));
        let e = target_struct("sched_ext_entity").unwrap();
        let slice = e.fields.iter().find(|f| f.name == "slice").unwrap();
        assert_eq!((slice.size, slice.writable), (8, true));
        let w = e.fields.iter().find(|f| f.name == "weight").unwrap();
        assert_eq!((w.size, w.writable), (4, false));
    }

    #[test]
    fn map_layouts_fit_their_entries() {
        let h = map_layout(MAP_HASH, 4, 12, 100, 2).unwrap();
        assert!(h.slots >= 200 && h.slots.is_power_of_two());
        assert_eq!(h.stride, 16);
        let p = map_layout(MAP_PERCPU_ARRAY, 4, 8, 3, 4).unwrap();
        assert_eq!(p.values_len, 3 * 8 * 4);
        assert_eq!(map_layout(99, 4, 4, 1, 1), None);
    }
}
