//! The introspection area at [`crate::memmap::KERNEL_STATE_ADDR`]: state
//! the core publishes and the host reads straight out of guest memory
//! while vCPUs run -- no exit, no message, no guest code runs for it.
//!
//! Layout (offsets from KERNEL_STATE_ADDR, fixed and asserted here):
//! - `+0` [`KernelStateHeader`]: lifecycle and global counters;
//! - `+KSTATE_CPUS_OFFSET` one [`CpuRecord`] per CPU (MAX_CPUS slots);
//! - `+KSTATE_TASKS_OFFSET` one [`TaskRecord`] per task-table slot;
//! - `+KSTATE_EVENTS_OFFSET` one event ring per CPU ([`EventRingHeader`]
//!   then EVENT_RING_ENTRIES [`Event`]s), `EVENT_RING_STRIDE` apart.
//!
//! Records are written by one CPU each under a seqlock: `seq` is odd while
//! a write is in progress; a reader copies the record and retries if `seq`
//! was odd or changed. Event rings are single-producer (their CPU) and
//! single-consumer (the host): the guest publishes `write` with release
//! after the entry, the host publishes `read`. A full ring makes its CPU
//! wait for the host to drain it, at most `EVENT_RING_WAIT_MAX_NS`, as time
//! taken from the CPU (counted in `waited_ns`, charged to no task); only
//! then is the event dropped and counted in `lost`.

use crate::memmap::{KERNEL_STATE_ADDR, KERNEL_STATE_SIZE, MAX_CPUS, MAX_TASKS};
use crate::tag;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

pub const KSTATE_MAGIC: u32 = tag(b"KSTA");
pub const KSTATE_VERSION: u32 = 8;

/// `run_state` values.
pub const RUN_BOOTING: u32 = 0;
pub const RUN_RUNNING: u32 = 1;
pub const RUN_FINISHED: u32 = 2;
pub const RUN_FAILED: u32 = 3;

#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KernelStateHeader {
    pub magic: u32,
    pub version: u32,
    pub cpu_count: u32,
    /// One of the `RUN_*` values; written last, with release ordering.
    pub run_state: u32,
    pub tsc_khz: u64,
    /// Guest TSC when the core finished booting on CPU 0.
    pub boot_tsc: u64,
    /// Exit code of the operation's main task once `run_state` is
    /// RUN_FINISHED.
    pub exit_code: i64,
    /// Context switches so far, all CPUs.
    pub switches: u64,
    /// Tasks spawned so far (the operation's main task included).
    pub tasks_spawned: u64,
    /// CPUs that finished booting (online).
    pub cpus_online: u32,
    /// Policy id the core runs (see the policies crate).
    pub policy: u32,
    /// Version 8. Guest TSC at CPU 0's first instruction in Rust (`kmain`),
    /// and when the operation's main task was spawned (`run_state` became
    /// RUN_RUNNING): with the VMM's epoch they split a boot into the
    /// host's part, the vCPU's entry, and the core's own start.
    pub entry_tsc: u64,
    pub ready_tsc: u64,
}

pub const KSTATE_RUN_STATE_OFFSET: u64 = 12;
const _: () = {
    assert!(core::mem::offset_of!(KernelStateHeader, run_state) as u64 == KSTATE_RUN_STATE_OFFSET);
    assert!(core::mem::offset_of!(KernelStateHeader, tsc_khz) == 16);
    assert!(core::mem::offset_of!(KernelStateHeader, switches) == 40);
    assert!(core::mem::offset_of!(KernelStateHeader, cpus_online) == 56);
    assert!(core::mem::size_of::<KernelStateHeader>() == 80);
};

/// What one CPU is doing. Written only by that CPU, under `seq`.
#[repr(C, align(64))]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct CpuRecord {
    pub seq: u32,
    pub cpu: u32,
    /// Running task's pid, 0 when idle.
    pub current_pid: u32,
    /// Runnable tasks queued for this CPU, the running one not included.
    pub rq_len: u32,
    pub switches: u64,
    /// Time spent idle, in TSC ticks.
    pub idle_tsc: u64,
    /// TSC at this CPU's last tick, switch or idle wake-up: if it stops
    /// advancing the CPU is stalled.
    pub clock_tsc: u64,
    pub ticks: u64,
    /// 1 while the CPU is idle.
    pub idle: u32,
    /// 1 once the CPU has booted.
    pub online: u32,
    /// Wake-up IPIs this CPU sent.
    pub ipis_sent: u64,
    /// TSC when this CPU last heard its timer: a tick interrupt (even one
    /// the scheduler had to defer) or the end of an idle wait. Unlike
    /// `clock_tsc` it advances while the CPU is stuck in the scheduler:
    /// policy code runs with interrupts on, so only the host -- not
    /// running the vCPU, or delivering its timer late -- can hold it back.
    pub irq_tsc: u64,
    /// The longest stretch between two consecutive `irq_tsc` stamps so
    /// far, in TSC ticks: about a tick period unless the host froze the
    /// vCPU. Measured by the guest, it sees a freeze the host's samples
    /// miss (one that stopped the monitor too, as a stall of the whole
    /// host machine does).
    pub max_irq_gap: u64,
    /// The policy-image callback this CPU is in (`abi::policy::
    /// POLICY_CALLBACKS` id: index + 1), 0 outside one. With
    /// `policy_call_seq` it lets the host see a callback that never
    /// returns (the CPU cannot: it runs under the scheduler lock with its
    /// tick deferred) and name the callback of a fault.
    pub policy_callback: u64,
    /// How many callbacks this CPU has entered: which call the id belongs
    /// to (a count, not a TSC: reading the TSC here doubled what a
    /// callback costs on this PVM host, about 14 ns).
    pub policy_call_seq: u64,
    /// Tasks the policy's callbacks on this CPU put into a dispatch queue
    /// (its scheduling decisions), and of those, how many into another
    /// CPU's local queue (decisions made for other CPUs: a central
    /// scheduler shows them all on one CPU). Single aligned stores
    /// outside `seq`, as `policy_call_seq`.
    pub policy_inserts: u64,
    pub policy_remote_inserts: u64,
    /// Guest time this CPU has proven it was running, in TSC ticks: the
    /// sum of the gaps between consecutive `irq_tsc` stamps no longer
    /// than two tick periods. A vCPU the host is not running (or whose
    /// thread burns host CPU time without running guest code) hears no
    /// tick, and its gap is left out: the host's policy budget counts a
    /// callback's run time in this, so the host's own stalls never look
    /// like a hung policy.
    pub live_tsc: u64,
    /// What this CPU's CPUID topology leaf (0xB) told the core at boot,
    /// packed as [`CpuidTopo::pack`] (0: the leaf is missing). The
    /// host checks it against the run's topology: the guest must see the
    /// machine the report describes.
    pub cpuid_topo: u64,
}

/// CPUID leaf 0xB as one CPU saw it: its x2APIC id (EDX), the SMT
/// level's shift (sub-leaf 0 EAX[4:0]) and logical CPUs (EBX[15:0]), and
/// the core level's shift (sub-leaf 1 EAX[4:0]: the package's bits).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuidTopo {
    pub x2apic_id: u32,
    pub smt_shift: u8,
    pub core_shift: u8,
    pub smt_cpus: u16,
}

impl CpuidTopo {
    /// Bits 0..32 the x2APIC id, 32..40 the SMT shift, 40..48 the core
    /// shift, 48..64 the SMT level's CPU count.
    pub const fn pack(&self) -> u64 {
        self.x2apic_id as u64
            | (self.smt_shift as u64) << 32
            | (self.core_shift as u64) << 40
            | (self.smt_cpus as u64) << 48
    }

    /// The fields of a packed word (any u64 decodes: the host reads it
    /// from guest memory).
    pub const fn unpack(v: u64) -> CpuidTopo {
        CpuidTopo {
            x2apic_id: v as u32,
            smt_shift: (v >> 32) as u8,
            core_shift: (v >> 40) as u8,
            smt_cpus: (v >> 48) as u16,
        }
    }
}

pub const CPU_RECORD_SIZE: u64 = 128;
/// `irq_tsc` and `max_irq_gap` are written with single aligned stores
/// outside `seq`: the tick interrupt that writes them may land inside a
/// seqlock write of the same record.
pub const CPU_RECORD_IRQ_TSC_OFFSET: u64 = 64;
pub const CPU_RECORD_MAX_IRQ_GAP_OFFSET: u64 = 72;
/// `policy_callback` and `policy_call_seq` are single aligned stores
/// outside `seq` too (one pair per callback: a seqlock write there would
/// double what a callback costs). The core bumps the count, then writes
/// the id on entry and zeroes the id on return; the host reads id, count,
/// id and believes the pair only if both ids agree.
pub const CPU_RECORD_POLICY_CALLBACK_OFFSET: u64 = 80;
pub const CPU_RECORD_POLICY_CALL_SEQ_OFFSET: u64 = 88;
pub const CPU_RECORD_POLICY_INSERTS_OFFSET: u64 = 96;
pub const CPU_RECORD_POLICY_REMOTE_INSERTS_OFFSET: u64 = 104;
/// `live_tsc`: a single aligned store outside `seq`, as `irq_tsc`.
pub const CPU_RECORD_LIVE_TSC_OFFSET: u64 = 112;
const _: () = {
    assert!(core::mem::size_of::<CpuRecord>() as u64 == CPU_RECORD_SIZE);
    assert!(core::mem::offset_of!(CpuRecord, clock_tsc) == 32);
    assert!(core::mem::offset_of!(CpuRecord, irq_tsc) as u64 == CPU_RECORD_IRQ_TSC_OFFSET);
    assert!(core::mem::offset_of!(CpuRecord, max_irq_gap) as u64 == CPU_RECORD_MAX_IRQ_GAP_OFFSET);
    assert!(
        core::mem::offset_of!(CpuRecord, policy_callback) as u64
            == CPU_RECORD_POLICY_CALLBACK_OFFSET
    );
    assert!(
        core::mem::offset_of!(CpuRecord, policy_call_seq) as u64
            == CPU_RECORD_POLICY_CALL_SEQ_OFFSET
    );
    assert!(
        core::mem::offset_of!(CpuRecord, policy_inserts) as u64 == CPU_RECORD_POLICY_INSERTS_OFFSET
    );
    assert!(
        core::mem::offset_of!(CpuRecord, policy_remote_inserts) as u64
            == CPU_RECORD_POLICY_REMOTE_INSERTS_OFFSET
    );
    assert!(core::mem::offset_of!(CpuRecord, live_tsc) as u64 == CPU_RECORD_LIVE_TSC_OFFSET);
    assert!(core::mem::offset_of!(CpuRecord, cpuid_topo) == 120);
    assert!(CPU_RECORD_IRQ_TSC_OFFSET.is_multiple_of(8));
    assert!(CPU_RECORD_MAX_IRQ_GAP_OFFSET.is_multiple_of(8));
};

/// Task states in [`TaskRecord::state`].
pub const TASK_FREE: u32 = 0;
pub const TASK_RUNNABLE: u32 = 1;
pub const TASK_RUNNING: u32 = 2;
/// Waiting in `join`.
pub const TASK_JOINING: u32 = 3;
pub const TASK_SLEEPING: u32 = 4;
/// Waiting in `recv`.
pub const TASK_RECEIVING: u32 = 5;
/// Waiting for room in a full mailbox.
pub const TASK_SENDING: u32 = 6;
/// Ended, not yet joined.
pub const TASK_ZOMBIE: u32 = 7;
/// Waiting in `futex_wait` (a mutex, condition variable or barrier).
pub const TASK_BLOCKED: u32 = 8;

/// One task-table slot. Written under `seq` by whichever CPU changes the
/// task (always while holding the scheduler lock).
#[repr(C, align(64))]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct TaskRecord {
    pub seq: u32,
    pub pid: u32,
    pub state: u32,
    /// CPU the task runs on or is queued for.
    pub cpu: u32,
    pub weight: u32,
    pub reserved: u32,
    pub affinity: u64,
    pub runtime_ns: u64,
    /// Total time spent runnable but not running.
    pub wait_ns: u64,
    /// TSC since when the task has been runnable and waiting (0 if not).
    pub runnable_since_tsc: u64,
    pub wakeups: u64,
    pub migrations: u64,
    pub switches: u64,
    /// Policy fields (see the policy's docs; 0 where unused).
    pub vruntime: u64,
    pub deadline: u64,
    pub lag: i64,
    /// Up to the record's 64-byte alignment: the bytes are named so the
    /// record has no padding (zerocopy checks) and its layout is unchanged.
    pub _pad: [u64; 3],
}

pub const TASK_RECORD_SIZE: u64 = 128;
const _: () = {
    assert!(core::mem::size_of::<TaskRecord>() as u64 == TASK_RECORD_SIZE);
    assert!(core::mem::offset_of!(TaskRecord, runnable_since_tsc) == 48);
    assert!(core::mem::offset_of!(TaskRecord, _pad) == 104);
};

/// Event kinds.
/// `pid` switched in on `cpu`; `arg` = previous pid (0 = idle), `arg2` =
/// what the previous task did: one of the `PREV_*` values.
pub const EV_SWITCH: u16 = 1;
/// `pid` became runnable and was queued for CPU `arg`; `arg2` = waker pid.
pub const EV_WAKEUP: u16 = 2;
/// `pid` moved from CPU `arg` to CPU `arg2`.
pub const EV_MIGRATE: u16 = 3;
/// `pid` was spawned with weight `arg`.
pub const EV_SPAWN: u16 = 4;
/// `pid` ended with exit code `arg` (as u32), reason `arg2`.
pub const EV_EXIT: u16 = 5;

/// Why the previous task left the CPU, in EV_SWITCH's `arg2`.
pub const PREV_PREEMPTED: u32 = 0;
pub const PREV_YIELDED: u32 = 1;
pub const PREV_BLOCKED: u32 = 2;
pub const PREV_EXITED: u32 = 3;
pub const PREV_IDLE: u32 = 4;

#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct Event {
    pub tsc: u64,
    pub kind: u16,
    pub cpu: u16,
    pub pid: u32,
    pub arg: u32,
    pub arg2: u32,
    /// The time taken from the CPU so far (ns) at this instant: its steal
    /// time (the host kept the vCPU from running) plus the time its timer
    /// went unheard beyond steal (the host kept the vCPU thread in its own
    /// kernel; see the core's `steal::heard`), to subtract from wall-clock
    /// intervals. Tasks are charged neither.
    pub steal_ns: u64,
}

pub const EVENT_SIZE: u64 = 32;
const _: () = assert!(core::mem::size_of::<Event>() as u64 == EVENT_SIZE);

impl Event {
    /// An event with no steal time stamped: what the host's tests and
    /// synthetic streams build (the core stamps its own).
    pub const fn new(tsc: u64, kind: u16, cpu: u16, pid: u32, arg: u32, arg2: u32) -> Event {
        Event {
            tsc,
            kind,
            cpu,
            pid,
            arg,
            arg2,
            steal_ns: 0,
        }
    }
}

#[repr(C, align(64))]
#[derive(Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct EventRingHeader {
    /// Events published (guest, release).
    pub write: u64,
    _pad0: [u64; 7],
    /// Events consumed (host, release).
    pub read: u64,
    _pad1: [u64; 7],
    /// Events dropped because the ring stayed full (see `waited_ns`).
    pub lost: u64,
    /// Version 8. Time the CPU waited for the host to make room in a full
    /// ring, ns (at most `EVENT_RING_WAIT_MAX_NS` a wait): the guest
    /// counts it as time taken from the CPU, like steal, and drops an
    /// event only when the host has not drained for that long.
    pub waited_ns: u64,
    _pad2: [u64; 6],
}

impl EventRingHeader {
    pub const fn new() -> Self {
        EventRingHeader {
            write: 0,
            _pad0: [0; 7],
            read: 0,
            _pad1: [0; 7],
            lost: 0,
            waited_ns: 0,
            _pad2: [0; 6],
        }
    }
}

pub const EVENT_RING_HEADER_SIZE: u64 = 192;
pub const EVENT_RING_WRITE_OFFSET: u64 = 0;
pub const EVENT_RING_READ_OFFSET: u64 = 64;
pub const EVENT_RING_LOST_OFFSET: u64 = 128;
pub const EVENT_RING_WAITED_OFFSET: u64 = 136;
/// Longest a CPU waits for room in its full event ring before it drops
/// the event. A same-CPU ping-pong makes over 8 million events a second,
/// which fill a ring in 0.5 ms, and this host has left the monitor thread
/// unscheduled for 1-10 ms: dropping at once lost a third of them.
pub const EVENT_RING_WAIT_MAX_NS: u64 = 20_000_000;
/// Events per CPU ring (a power of two).
pub const EVENT_RING_ENTRIES: u64 = 4096;
pub const EVENT_RING_STRIDE: u64 = EVENT_RING_HEADER_SIZE + EVENT_RING_ENTRIES * EVENT_SIZE;

pub const KSTATE_CPUS_OFFSET: u64 = 0x1000;
pub const KSTATE_TASKS_OFFSET: u64 = KSTATE_CPUS_OFFSET + CPU_RECORD_SIZE * MAX_CPUS as u64;
pub const KSTATE_EVENTS_OFFSET: u64 = KSTATE_TASKS_OFFSET + TASK_RECORD_SIZE * MAX_TASKS as u64;
pub const KSTATE_END: u64 = KSTATE_EVENTS_OFFSET + EVENT_RING_STRIDE * MAX_CPUS as u64;

const _: () = {
    assert!(core::mem::size_of::<EventRingHeader>() as u64 == EVENT_RING_HEADER_SIZE);
    assert!(core::mem::offset_of!(EventRingHeader, read) as u64 == EVENT_RING_READ_OFFSET);
    assert!(core::mem::offset_of!(EventRingHeader, lost) as u64 == EVENT_RING_LOST_OFFSET);
    assert!(core::mem::offset_of!(EventRingHeader, waited_ns) as u64 == EVENT_RING_WAITED_OFFSET);
    assert!(EVENT_RING_ENTRIES.is_power_of_two());
    assert!(core::mem::size_of::<KernelStateHeader>() as u64 <= KSTATE_CPUS_OFFSET);
    assert!(KSTATE_TASKS_OFFSET.is_multiple_of(64));
    assert!(KSTATE_EVENTS_OFFSET.is_multiple_of(64));
    assert!(EVENT_RING_STRIDE.is_multiple_of(64));
    assert!(KSTATE_END <= KERNEL_STATE_SIZE);
};

/// Guest address of CPU `cpu`'s record.
pub const fn cpu_record_addr(cpu: u32) -> u64 {
    KERNEL_STATE_ADDR + KSTATE_CPUS_OFFSET + cpu as u64 * CPU_RECORD_SIZE
}

/// Guest address of task-table slot `slot`'s record.
pub const fn task_record_addr(slot: u32) -> u64 {
    KERNEL_STATE_ADDR + KSTATE_TASKS_OFFSET + slot as u64 * TASK_RECORD_SIZE
}

/// Guest address of CPU `cpu`'s event ring header; entries follow it.
pub const fn event_ring_addr(cpu: u32) -> u64 {
    KERNEL_STATE_ADDR + KSTATE_EVENTS_OFFSET + cpu as u64 * EVENT_RING_STRIDE
}

#[cfg(test)]
mod tests {
    use super::CpuidTopo;

    #[test]
    fn cpuid_topo_round_trips_and_any_word_decodes() {
        let t = CpuidTopo {
            x2apic_id: 13,
            smt_shift: 1,
            core_shift: 4,
            smt_cpus: 2,
        };
        assert_eq!(t.pack(), 0x0002_0401_0000_000d);
        assert_eq!(CpuidTopo::unpack(t.pack()), t);
        let all = CpuidTopo::unpack(u64::MAX);
        assert_eq!((all.x2apic_id, all.smt_cpus), (u32::MAX, u16::MAX));
    }
}
