//! Write a schedlab scheduling policy in Rust.
//!
//! A policy is a `no_std` image the core loads beside itself; it exports
//! an `abi::policy::PolicyOps` table whose callbacks have sched_ext's
//! shapes. This crate turns a type implementing [`Scheduler`] (every
//! method has the documented default, so a policy writes only what it
//! changes) into that table with [`export_policy!`], and wraps the core's
//! services (dispatch queues, idle CPUs, kicks, the clock, logging) in safe
//! functions.
//!
//! ```ignore
//! #![no_std]
//! #![no_main]
//! use policy_sdk::{Scheduler, Shares, Task, dsq};
//! struct Fifo;
//! impl Scheduler for Fifo {
//!     const NAME: &'static str = "my-fifo";
//!     fn enqueue(&mut self, p: &mut Task, flags: u64) {
//!         dsq::insert(p, dsq::GLOBAL, policy_sdk::SLICE_INF, flags);
//!     }
//! }
//! policy_sdk::export_policy!(Fifo, Fifo);
//! ```
//!
//! Unit tests: with the `sim` feature (std) this crate also has
//! [`sim`], a host-side model of the core that drives a policy's exported
//! `PolicyOps` through the same callbacks the kernel calls. A policy crate
//! starts `#![cfg_attr(not(test), no_std)]` and
//! `#![cfg_attr(not(test), no_main)]`, takes this crate again as a
//! dev-dependency with `features = ["sim"]`, and `cargo test -p
//! policy-NAME` runs its tests on the host.
#![no_std]
#[cfg(feature = "sim")]
extern crate std;

pub use abi::memmap::{MAX_CPUS, MAX_TASKS};
/// A task as the policy sees it (`p` in sched_ext): `slice_ns`,
/// `dsq_vtime` and `data` are the policy's to write.
pub use abi::policy::PolicyTask as Task;
pub use abi::policy::{
    ENQ_HEAD, ENQ_NEW, ENQ_PREEMPT, ENQ_PREEMPTED, ENQ_WAKEUP, ENQ_YIELD, KICK_IDLE, KICK_PREEMPT,
    PICK_IDLE_CORE, POLICY_ABI_VERSION, PolicyOps, PolicyServices, SLICE_DFL, SLICE_INF,
};

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicPtr, Ordering};

pub mod dsq;
pub mod place;
pub mod rt;
#[cfg(feature = "sim")]
pub mod sim;

/// Virtual time advances by `ran_ns * VTIME_SCALE / weight`: fixed point
/// with 10 fractional bits, so any weight divides without visible rounding
/// and a weight-1 task's virtual time moves 1024 units per ns.
pub const VTIME_SCALE: u64 = 1024;

/// `ns` of run time of a task with `weight`, in virtual time (saturating;
/// a weight of 0 counts as 1).
pub const fn vtime_delta(ns: u64, weight: u32) -> u64 {
    let w = if weight == 0 { 1 } else { weight };
    let v = ns as u128 * VTIME_SCALE as u128 / w as u128;
    if v > u64::MAX as u128 {
        u64::MAX
    } else {
        v as u64
    }
}

/// A slice that never runs out in practice (2^62 ns, 146 years) and
/// doubles as a stopwatch: the core takes the time a task runs off
/// `slice_ns`, so [`ran_ns`] reads how long it has run this turn, in the
/// core's own CPU time (steal excluded). For policies that decide
/// preemption themselves in `tick` (setting `slice_ns = 0`) and need the
/// run time, which `PolicyTask` does not carry otherwise.
pub const SLICE_METERED: u64 = 1 << 62;

/// CPU time `p` has run since it last started running, for a task queued
/// with [`SLICE_METERED`] (as of the last tick or stop the core charged).
pub fn ran_ns(p: &Task) -> u64 {
    SLICE_METERED.saturating_sub(p.slice_ns)
}

/// What a policy promises about CPU shares (the host judges it on this).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Shares {
    /// None: whoever runs keeps the CPU.
    None,
    /// Equal shares whatever the weights.
    Equal,
    /// Shares in proportion to the weights.
    Weighted,
}

impl Shares {
    pub const fn code(self) -> u32 {
        match self {
            Shares::None => abi::policy::SHARES_NONE,
            Shares::Equal => abi::policy::SHARES_EQUAL,
            Shares::Weighted => abi::policy::SHARES_WEIGHTED,
        }
    }
}

/// A scheduling policy. Every callback has sched_ext's default, so a
/// policy overrides only what it changes; all of them run one at a time
/// (under the core's scheduler lock) and must return quickly.
#[allow(unused_variables)]
pub trait Scheduler: 'static {
    /// Shown by `schedlab policies` and in every report.
    const NAME: &'static str;
    const DESCRIPTION: &'static str = "";
    const SHARES: Shares = Shares::None;
    /// No runnable task waits unboundedly while others run.
    const BOUNDED_WAIT: bool = false;
    /// Periodic tasks meet their deadlines while the load allows.
    const DEADLINES: bool = false;
    /// Exists for schedlab's own tests (misbehaves on purpose): not
    /// listed by `schedlab policies`.
    const TEST_ONLY: bool = false;

    /// Before any task; nonzero refuses to start (the run ends).
    fn init(&mut self) -> i32 {
        0
    }
    /// The CPU to queue a waking or new task for. Default: the previous
    /// CPU if idle, else an idle CPU it may use, else the previous CPU.
    fn select_cpu(&mut self, p: &mut Task, prev_cpu: u32, wake_flags: u64) -> u32 {
        select_cpu_dfl(p, prev_cpu)
    }
    /// Queue a runnable task. Default: the global queue, FIFO, with the
    /// run's slice.
    fn enqueue(&mut self, p: &mut Task, enq_flags: u64) {
        dsq::insert(p, dsq::GLOBAL, SLICE_DFL, enq_flags);
    }
    fn dequeue(&mut self, p: &mut Task, deq_flags: u64) {}
    /// `cpu`'s local queue is empty: move work there (the core then takes
    /// from the global queue).
    fn dispatch(&mut self, cpu: u32) {}
    /// A tick on the CPU running `p`; set `p.slice_ns = 0` to preempt.
    fn tick(&mut self, p: &mut Task) {}
    fn runnable(&mut self, p: &mut Task, enq_flags: u64) {}
    fn running(&mut self, p: &mut Task) {}
    fn stopping(&mut self, p: &mut Task, runnable: bool) {}
    fn quiescent(&mut self, p: &mut Task, deq_flags: u64) {}
    /// Nonzero refuses the task (the run ends).
    fn init_task(&mut self, p: &mut Task) -> i32 {
        0
    }
    fn exit_task(&mut self, p: &mut Task) {}
    fn enable(&mut self, p: &mut Task) {}
    fn cpu_online(&mut self, cpu: u32) {}
    fn cpu_offline(&mut self, cpu: u32) {}
    fn exit(&mut self, code: i64) {}
}

static SERVICES: AtomicPtr<PolicyServices> = AtomicPtr::new(core::ptr::null_mut());

/// The core's services (set by the exported `init` before anything else).
fn svc() -> &'static PolicyServices {
    let p = SERVICES.load(Ordering::Relaxed);
    assert!(!p.is_null(), "policy services used before init");
    // SAFETY: the core passes a table that lives for the whole run, and
    // `init_services` checked its header.
    unsafe { &*p }
}

/// Keep the core's services; 0 if this SDK can use them. Called by the
/// `init` that [`export_policy!`] generates.
///
/// # Safety
/// `s` is null or the table the core passed to `init`.
#[doc(hidden)]
pub unsafe fn init_services(s: *const PolicyServices) -> i32 {
    if s.is_null() {
        return -1;
    }
    // SAFETY: the core passes a valid table; only its header is read
    // before the check.
    let (m, v, z) = unsafe { ((*s).magic, (*s).version, (*s).size) };
    if PolicyServices::check_header(m, v, z).is_err() {
        return -2;
    }
    SERVICES.store(s.cast_mut(), Ordering::Relaxed);
    0
}

/// CPUs the run has.
pub fn nr_cpus() -> u32 {
    svc().nr_cpus
}

/// The run's `--slice`, ns.
pub fn slice_dfl_ns() -> u64 {
    svc().slice_dfl_ns
}

/// The policy argument given to the run (0 if none).
pub fn arg() -> u64 {
    svc().arg
}

/// Monotonic ns since the run began.
pub fn now_ns() -> u64 {
    // SAFETY: a service of the checked table.
    unsafe { (svc().now_ns)() }
}

/// Idle CPUs, bit n = CPU n.
pub fn idle_mask() -> u64 {
    // SAFETY: a service of the checked table.
    unsafe { (svc().idle_mask)() }
}

/// Claim idle `cpu` for a wake-up: true if it was idle and unclaimed.
pub fn test_and_clear_cpu_idle(cpu: u32) -> bool {
    // SAFETY: a service of the checked table.
    unsafe { (svc().test_and_clear_cpu_idle)(cpu) != 0 }
}

/// Claim an idle CPU in `mask`.
pub fn pick_idle_cpu(mask: u64) -> Option<u32> {
    pick_idle_cpu_flags(mask, 0)
}

/// Claim an idle CPU in `mask` with sched_ext's flags
/// ([`PICK_IDLE_CORE`]: only one whose whole core is idle).
pub fn pick_idle_cpu_flags(mask: u64, flags: u64) -> Option<u32> {
    // SAFETY: a service of the checked table.
    let c = unsafe { (svc().pick_idle_cpu)(mask, flags) };
    u32::try_from(c).ok()
}

/// The machine's shape: which CPUs share a core, an LLC, a node.
pub fn topology() -> abi::topology::Topology {
    svc().topology
}

/// Wake `cpu` if idle, or preempt what it runs (`KICK_PREEMPT`).
pub fn kick_cpu(cpu: u32, flags: u64) {
    // SAFETY: a service of the checked table.
    unsafe { (svc().kick_cpu)(cpu, flags) }
}

/// The task running on `cpu`.
pub fn cpu_curr(cpu: u32) -> Option<&'static mut Task> {
    // SAFETY: the core returns null or one of its live task views.
    unsafe { (svc().cpu_curr)(cpu).as_mut() }
}

/// The task in task-table slot `slot` (None if the slot is free).
pub fn task_of_slot(slot: u32) -> Option<&'static mut Task> {
    // SAFETY: the core returns null or one of its live task views.
    unsafe { (svc().task_of_slot)(slot).as_mut() }
}

/// This CPU's `POLICY_CPU_DATA_SIZE` bytes of policy storage, zeroed at
/// boot.
pub fn cpu_data(cpu: u32) -> &'static mut [u8] {
    let size = abi::policy::POLICY_CPU_DATA_SIZE as usize;
    let cpu = (cpu as usize).min(MAX_CPUS - 1);
    // SAFETY: the core gives MAX_CPUS areas of `size` bytes; callbacks
    // run one at a time, so no two references are used at once.
    unsafe { core::slice::from_raw_parts_mut(svc().cpu_data.add(cpu * size), size) }
}

/// A line in the run's log (level 2 = info).
pub fn log(level: u32, text: &str) {
    // SAFETY: a service of the checked table; the text is valid for the call.
    unsafe { (svc().log)(level, text.as_ptr(), text.len()) }
}

/// End the run; `text` is the first line of its report.
pub fn error(text: &str) -> ! {
    // SAFETY: as in `log`.
    unsafe { (svc().error)(text.as_ptr(), text.len()) }
}

/// sched_ext's `scx_bpf_select_cpu_dfl` (`abi::idle::select_cpu_dfl`): a
/// wholly idle core (prev's, then in prev's LLC, node, anywhere), then an
/// idle CPU in the same order, else `prev`; the idle CPU is claimed.
pub fn select_cpu_dfl(p: &Task, prev: u32) -> u32 {
    abi::idle::select_cpu_dfl(&topology(), p.cpus_allowed, prev, pick_idle_cpu_flags).0
}

/// The policy's state, reachable from the exported callbacks. Sound
/// because the core runs one callback at a time (under its scheduler
/// lock), so no two `&mut` to the state are alive together.
#[doc(hidden)]
pub struct State<T>(UnsafeCell<T>);

// SAFETY: see the type's doc: callbacks are serialised by the core.
unsafe impl<T> Sync for State<T> {}

impl<T> State<T> {
    pub const fn new(v: T) -> Self {
        State(UnsafeCell::new(v))
    }

    /// # Safety
    /// Only from a callback (one runs at a time).
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn get(&self) -> &mut T {
        // SAFETY: the caller's obligation (above).
        unsafe { &mut *self.0.get() }
    }
}

/// Turn a raw task pointer from the core into a reference.
///
/// # Safety
/// `p` is a task view the core passed to a callback.
#[doc(hidden)]
pub unsafe fn task<'a>(p: *mut Task) -> &'a mut Task {
    // SAFETY: the caller's obligation.
    unsafe { &mut *p }
}

/// The ops table header for `T` (the callbacks are filled by
/// [`export_policy!`]).
#[doc(hidden)]
pub const fn header<T: Scheduler>() -> (u32, u32, u32, [u8; 32], [u8; 160], u32, u32, u32, u32) {
    (
        abi::policy::POLICY_OPS_MAGIC,
        POLICY_ABI_VERSION,
        core::mem::size_of::<PolicyOps>() as u32,
        abi::policy::padded::<32>(T::NAME),
        abi::policy::padded::<160>(T::DESCRIPTION),
        T::SHARES.code(),
        T::BOUNDED_WAIT as u32,
        T::DEADLINES as u32,
        if T::TEST_ONLY {
            abi::policy::POLICY_FLAG_TEST_ONLY
        } else {
            0
        },
    )
}

/// Export `$ty` (built by the const expression `$init`) as this image's
/// policy: the `PolicyOps` table in section `.policy_ops` and a panic
/// handler that ends the run. In a `cfg(test)` build there is no panic
/// handler (std has one) and a `sim_policy()` function hands the table to
/// [`sim`] (feature `sim`).
#[macro_export]
macro_rules! export_policy {
    ($ty:ty, $init:expr) => {
        static __POLICY_STATE: $crate::State<$ty> = $crate::State::new($init);

        fn __state() -> &'static mut $ty {
            // SAFETY: only called from the callbacks below, which the core
            // runs one at a time.
            unsafe { __POLICY_STATE.get() }
        }

        /// This policy for `policy_sdk::sim` (tests only): its table and a
        /// way to put its state back to `$init` before each simulation.
        #[cfg(test)]
        fn sim_policy() -> $crate::sim::Policy {
            fn reset() {
                *__state() = $init;
            }
            $crate::sim::Policy {
                ops: &POLICY_OPS,
                reset,
            }
        }

        #[cfg_attr(not(test), unsafe(link_section = ".policy_ops"))]
        #[unsafe(no_mangle)]
        #[used]
        pub static POLICY_OPS: $crate::PolicyOps = {
            use $crate::{Scheduler, Task};
            unsafe extern "C" fn select_cpu(p: *mut Task, prev: u32, f: u64) -> u32 {
                // SAFETY: p is a task view the core passed.
                __state().select_cpu(unsafe { $crate::task(p) }, prev, f)
            }
            unsafe extern "C" fn enqueue(p: *mut Task, f: u64) {
                // SAFETY: as above.
                __state().enqueue(unsafe { $crate::task(p) }, f)
            }
            unsafe extern "C" fn dequeue(p: *mut Task, f: u64) {
                // SAFETY: as above.
                __state().dequeue(unsafe { $crate::task(p) }, f)
            }
            unsafe extern "C" fn dispatch(cpu: u32, _prev: *mut Task) {
                __state().dispatch(cpu)
            }
            unsafe extern "C" fn tick(p: *mut Task) {
                // SAFETY: as above.
                __state().tick(unsafe { $crate::task(p) })
            }
            unsafe extern "C" fn runnable(p: *mut Task, f: u64) {
                // SAFETY: as above.
                __state().runnable(unsafe { $crate::task(p) }, f)
            }
            unsafe extern "C" fn running(p: *mut Task) {
                // SAFETY: as above.
                __state().running(unsafe { $crate::task(p) })
            }
            unsafe extern "C" fn stopping(p: *mut Task, r: u32) {
                // SAFETY: as above.
                __state().stopping(unsafe { $crate::task(p) }, r != 0)
            }
            unsafe extern "C" fn quiescent(p: *mut Task, f: u64) {
                // SAFETY: as above.
                __state().quiescent(unsafe { $crate::task(p) }, f)
            }
            unsafe extern "C" fn init_task(p: *mut Task) -> i32 {
                // SAFETY: as above.
                __state().init_task(unsafe { $crate::task(p) })
            }
            unsafe extern "C" fn exit_task(p: *mut Task) {
                // SAFETY: as above.
                __state().exit_task(unsafe { $crate::task(p) })
            }
            unsafe extern "C" fn enable(p: *mut Task) {
                // SAFETY: as above.
                __state().enable(unsafe { $crate::task(p) })
            }
            unsafe extern "C" fn cpu_online(cpu: u32) {
                __state().cpu_online(cpu)
            }
            unsafe extern "C" fn cpu_offline(cpu: u32) {
                __state().cpu_offline(cpu)
            }
            unsafe extern "C" fn init(s: *const $crate::PolicyServices) -> i32 {
                // SAFETY: s is the table the core passed to init.
                match unsafe { $crate::init_services(s) } {
                    0 => __state().init(),
                    e => e,
                }
            }
            unsafe extern "C" fn exit(code: i64) {
                __state().exit(code)
            }
            let (magic, version, size, name, description, shares, bounded_wait, deadlines, flags) =
                $crate::header::<$ty>();
            $crate::PolicyOps {
                magic,
                version,
                size,
                reserved: 0,
                name,
                description,
                shares,
                bounded_wait,
                deadlines,
                flags,
                select_cpu: Some(select_cpu),
                enqueue: Some(enqueue),
                dequeue: Some(dequeue),
                dispatch: Some(dispatch),
                tick: Some(tick),
                runnable: Some(runnable),
                running: Some(running),
                stopping: Some(stopping),
                quiescent: Some(quiescent),
                yield_: None,
                set_weight: None,
                set_cpumask: None,
                update_idle: None,
                init_task: Some(init_task),
                exit_task: Some(exit_task),
                enable: Some(enable),
                cpu_online: Some(cpu_online),
                cpu_offline: Some(cpu_offline),
                init: Some(init),
                exit: Some(exit),
                cpu_tick: None,
            }
        };

        // Only in the image: a host build (the policy's unit tests) has
        // std's.
        #[cfg(all(not(test), target_os = "none"))]
        #[panic_handler]
        fn __panic(_info: &core::panic::PanicInfo) -> ! {
            $crate::error("panicked")
        }
    };
}
