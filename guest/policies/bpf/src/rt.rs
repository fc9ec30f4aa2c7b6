//! The runtime's state and how a program runs: the sandbox it gets
//! ([`Rt::memory`]), the interpreter call ([`Runtime::exec`]), and what
//! happens when a program stops the run (a sandbox fault, `scx_bpf_error`,
//! `scx_bpf_exit`): the status the host reads, the object's `exit`
//! program with a `scx_exit_info`, and the text `PolicyServices::error`
//! ends the run with.
//!
//! An error raised inside a kfunc does not end the run from inside the
//! interpreter: the kfunc records it ([`Rt::pending`]) and refuses the
//! call, the interpreter unwinds, and the callback's wrapper runs `exit`
//! on the (now free) stack and calls `error`. That is sched_ext's order
//! too (the kernel disables the scheduler after the program returns),
//! and it needs no second stack.

use crate::image::{Image, KEY_MAX, prog_name};
use crate::mem::Text;
use abi::bpf::{
    BpfStatus, Cpumask, FAULT_BAD_ARG, FAULT_LOAD, FAULT_STORE, INSN_BUDGET, KFUNCS, MAX_CPUMASKS,
    MAX_MAPS, MAX_TIMERS, SCX_EXIT_ERROR, STATUS_FAULT, ScxExitInfo, ScxInitTaskArgs, ScxTask,
    fault_text, helper_name,
};
use abi::memmap::MAX_TASKS;
use abi::policy::PolicyServices;
use bpf_vm::{Call, CallCx, CallFault, Env, Fault, Memory, Range, STACK_WORDS, TaskArea, Vm};
use core::cell::UnsafeCell;
use core::fmt::Write;

/// Bytes of an error message (and of `scx_exit_info.msg`).
pub const MSG_LEN: usize = 1024;

/// What a kfunc or helper reports instead of a result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fail {
    /// Argument `n` (1-based) is bad: a sandbox fault at the call.
    Bad(u8),
    /// The run ends ([`Rt::pending`] says how, [`Rt::text`] why).
    Stop,
}

pub type R = Result<u64, Fail>;

/// The run must end; [`Rt::text`] holds the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stop;

/// How a program asked to end the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pending {
    /// `STATUS_ERROR` or `STATUS_EXIT`.
    pub state: u32,
    /// `SCX_EXIT_*` and code for the exit program.
    pub kind: u32,
    pub code: i64,
    pub reason: &'static str,
}

/// What programs may read and the runtime writes: the exit info and its
/// texts, `init_task`'s args, the idle and online masks the kfuncs hand
/// out, the key a timer callback gets.
#[repr(C)]
pub struct RoArea {
    pub exit_info: ScxExitInfo,
    pub task_args: ScxInitTaskArgs,
    pub idle: Cpumask,
    pub smt: Cpumask,
    pub online: Cpumask,
    pub possible: Cpumask,
    pub key: [u8; KEY_MAX as usize],
    pub reason: [u8; 64],
    pub msg: [u8; MSG_LEN],
    /// A `struct_ops` program's context: its arguments as `u64`s, which
    /// `BPF_PROG` reads through r1 (the kernel's trampoline stores them
    /// the same way).
    pub ctx: [u64; 6],
}

/// One `bpf_timer` slot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Timer {
    pub used: bool,
    /// Where the program's `struct bpf_timer` is.
    pub addr: u64,
    pub map: u32,
    /// Instruction index of the callback.
    pub callback: Option<u32>,
    pub armed: bool,
    pub expires: u64,
    /// `BPF_F_TIMER_CPU_PIN`: the CPU that started it.
    pub pin: Option<u32>,
}

/// What programs touch directly (the interpreter reads and writes it
/// through raw pointers while they run): the task views, the read-only
/// area, the cpumask pool. Kept out of [`Rt`], which is lent to the
/// interpreter as `&mut` while it runs, so no Rust reference covers this
/// memory then; the runtime takes short-lived ones between accesses.
pub struct Shared {
    pub views: [View; MAX_TASKS],
    pub ro: RoArea,
    pub pool: [Cpumask; MAX_CPUMASKS],
}

struct SharedCell(UnsafeCell<Shared>);

// SAFETY: callbacks are serialised by the core (one at a time), as for
// the rest of the runtime's state.
unsafe impl Sync for SharedCell {}

static SHARED: SharedCell = SharedCell(UnsafeCell::new(Shared {
    views: [View(VIEW0); MAX_TASKS],
    ro: RoArea {
        exit_info: ScxExitInfo {
            kind: 0,
            pad: 0,
            exit_code: 0,
            reason: 0,
            bt: 0,
            bt_len: 0,
            pad2: 0,
            msg: 0,
            dump: 0,
        },
        task_args: ScxInitTaskArgs {
            fork: 0,
            pad: [0; 7],
            cgroup: 0,
        },
        idle: Cpumask { bits: [0] },
        smt: Cpumask { bits: [0] },
        online: Cpumask { bits: [0] },
        possible: Cpumask { bits: [0] },
        key: [0; KEY_MAX as usize],
        reason: [0; 64],
        msg: [0; MSG_LEN],
        ctx: [0; 6],
    },
    pool: [Cpumask { bits: [0] }; MAX_CPUMASKS],
}));

/// Everything but the interpreter stack and [`Shared`] (so a program can
/// run with this as its [`Env`] while the stack is lent to the
/// interpreter).
pub struct Rt {
    pub img: Option<Image>,
    pub svc: *const PolicyServices,
    pub nr_cpus: u32,
    /// Slots whose views were handed out this callback.
    pub synced: [u64; MAX_TASKS / 64],
    pub pool_refs: [u32; MAX_CPUMASKS],
    pub timers: [Timer; MAX_TIMERS],
    /// Entries in each hash map.
    pub counts: [u32; MAX_MAPS],
    pub rng: u64,
    /// Stamps for LRU hash entries.
    pub lru_clock: u64,
    /// The program running (for faults).
    pub prog: u32,
    /// In `dispatch`: its CPU and the dispatch buffer's free slots.
    pub dispatch_cpu: Option<u32>,
    pub slots_left: u32,
    pub slots_used: u32,
    /// In `select_cpu`: the task's slot and the insert it asked for
    /// (applied once the CPU is known, as sched_ext's direct dispatch).
    pub select_slot: Option<usize>,
    pub direct: Option<Direct>,
    pub in_exit: bool,
    /// The exit program ran (it runs once).
    pub exited: bool,
    pub pending: Option<Pending>,
    /// A bad call's number and argument, for the fault text.
    pub bad_call: Option<(Call, u8)>,
    pub text: Text<MSG_LEN>,
}

/// An insert `select_cpu` asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Direct {
    pub dsq: u64,
    pub slice: u64,
    pub vtime: Option<u64>,
    pub flags: u64,
}

pub struct Runtime {
    pub rt: Rt,
    pub stack: [u64; STACK_WORDS],
    /// The interpreter over the image, with the sandbox [`Rt::memory`]
    /// (which never changes after `init`): built once, not per run.
    pub vm: Option<Vm<'static>>,
}

/// A task view in its own 128 bytes: a power-of-two stride turns the
/// sandbox's "which view, which field" into a shift and a mask instead of
/// a division on every task access.
#[repr(C, align(128))]
#[derive(Clone, Copy, Debug)]
pub struct View(pub ScxTask);

impl core::ops::Deref for View {
    type Target = ScxTask;
    fn deref(&self) -> &ScxTask {
        &self.0
    }
}

impl core::ops::DerefMut for View {
    fn deref_mut(&mut self) -> &mut ScxTask {
        &mut self.0
    }
}

const _: () = assert!(core::mem::size_of::<View>().is_power_of_two());

const VIEW0: ScxTask = ScxTask {
    pid: 0,
    tgid: 0,
    flags: 0,
    nr_cpus_allowed: 0,
    cpus_ptr: 0,
    cpus_mask: Cpumask { bits: [0] },
    comm: [0; 16],
    scx: abi::bpf::ScxEntity {
        slice: 0,
        dsq_vtime: 0,
        weight: 0,
        flags: 0,
        dsq_id: 0,
        sticky_cpu: 0,
        holding_cpu: 0,
    },
};

const TIMER0: Timer = Timer {
    used: false,
    addr: 0,
    map: 0,
    callback: None,
    armed: false,
    expires: 0,
    pin: None,
};

impl Runtime {
    /// All zeros, so the runtime lives in `.bss`.
    pub const fn new() -> Runtime {
        Runtime {
            rt: Rt {
                img: None,
                svc: core::ptr::null(),
                nr_cpus: 0,
                synced: [0; MAX_TASKS / 64],
                pool_refs: [0; MAX_CPUMASKS],
                timers: [TIMER0; MAX_TIMERS],
                counts: [0; MAX_MAPS],
                rng: 0,
                lru_clock: 0,
                prog: 0,
                dispatch_cpu: None,
                slots_left: 0,
                slots_used: 0,
                select_slot: None,
                direct: None,
                in_exit: false,
                exited: false,
                pending: None,
                bad_call: None,
                text: Text::new(),
            },
            stack: [0; STACK_WORDS],
            vm: None,
        }
    }

    /// Back to the state of [`Runtime::new`], field by field (no large
    /// temporary on a small guest stack).
    pub fn reset(&mut self) {
        self.vm = None;
        let r = &mut self.rt;
        r.img = None;
        r.svc = core::ptr::null();
        r.nr_cpus = 0;
        r.sh().views.iter_mut().for_each(|v| v.0 = VIEW0);
        r.synced = [0; MAX_TASKS / 64];
        r.sh().ro.exit_info = ScxExitInfo::default();
        r.sh().ro.task_args = ScxInitTaskArgs::default();
        r.sh().ro.key = [0; KEY_MAX as usize];
        r.sh().ro.reason = [0; 64];
        r.sh().ro.msg = [0; MSG_LEN];
        r.sh().pool = [Cpumask::default(); MAX_CPUMASKS];
        r.pool_refs = [0; MAX_CPUMASKS];
        r.timers = [TIMER0; MAX_TIMERS];
        r.counts = [0; MAX_MAPS];
        r.rng = 0;
        r.lru_clock = 0;
        r.begin(0);
        r.in_exit = false;
        r.exited = false;
        r.pending = None;
        r.text.clear();
    }
}

impl Default for Runtime {
    fn default() -> Self {
        Self::new()
    }
}

impl Rt {
    /// The memory programs touch. Callers keep the reference short: never
    /// across a program run.
    #[allow(clippy::mut_from_ref)]
    pub fn sh(&self) -> &mut Shared {
        // SAFETY: one callback at a time; while a program runs the
        // runtime only touches this inside an `Env` call, with no
        // reference kept past it (see `Shared`).
        unsafe { &mut *SHARED.0.get() }
    }

    pub fn svc(&self) -> &PolicyServices {
        // SAFETY: set in `init` from the core's table, which outlives the
        // run; no program runs before it is set.
        unsafe { &*self.svc }
    }

    pub fn img(&self) -> &Image {
        // `init` refuses to start without one; nothing runs before.
        match &self.img {
            Some(i) => i,
            None => unreachable_image(),
        }
    }

    pub fn status(&mut self) -> &mut BpfStatus {
        // SAFETY: the header was checked in `init`; only the runtime
        // writes its status.
        unsafe { &mut (*self.img().hdr).status }
    }

    /// Per-callback state back to "no callback".
    pub fn begin(&mut self, prog: u32) {
        self.prog = prog;
        self.dispatch_cpu = None;
        self.slots_left = 0;
        self.slots_used = 0;
        self.select_slot = None;
        self.direct = None;
        self.bad_call = None;
    }

    /// The sandbox: the image's data areas, the runtime's read-only area
    /// and cpumask pool, the task views.
    pub fn memory(&self) -> Memory {
        let img = self.img();
        let range = |start: u64, len: usize| Range {
            start,
            end: start + len as u64,
        };
        let mut m = Memory::default();
        m.ro[0] = img.ro;
        m.ro[1] = range(
            &self.sh().ro as *const RoArea as u64,
            core::mem::size_of::<RoArea>(),
        );
        m.rw[0] = img.rw;
        m.rw[1] = range(
            self.sh().pool.as_ptr() as u64,
            core::mem::size_of_val(&self.sh().pool),
        );
        m.tasks = TaskArea {
            base: self.views_base(),
            stride: crate::tasks::STRIDE,
            count: MAX_TASKS as u64,
        };
        m
    }

    /// End the run from a kfunc: record how, and refuse the call.
    pub fn raise(&mut self, state: u32, kind: u32, code: i64, reason: &'static str) -> Fail {
        if self.pending.is_none() {
            self.pending = Some(Pending {
                state,
                kind,
                code,
                reason,
            });
        }
        Fail::Stop
    }

    /// A runtime-detected misuse (as sched_ext's `scx_ops_error`).
    pub fn misuse(&mut self, args: core::fmt::Arguments<'_>) -> Fail {
        self.text.clear();
        let _ = self.text.write_fmt(args);
        self.raise(abi::bpf::STATUS_ERROR, SCX_EXIT_ERROR, 0, "runtime error")
    }

    /// Log a line at info level.
    pub fn log(&self, b: &[u8]) {
        // SAFETY: a service of the live table; `b` is readable.
        unsafe { (self.svc().log)(2, b.as_ptr(), b.len()) }
    }
}

#[cold]
fn unreachable_image() -> ! {
    panic!("bpf runtime used before init")
}

impl Env for Rt {
    fn call(&mut self, cx: &CallCx<'_>, call: Call, a: [u64; 5]) -> Result<u64, CallFault> {
        let r = match call {
            Call::Kfunc(i) if (i as usize) < KFUNCS.len() => self.kfunc(cx, i, a),
            Call::Kfunc(i) => {
                return Err(CallFault {
                    kind: abi::bpf::FAULT_MISSING_KFUNC,
                    addr: u64::from(i),
                    size: 0,
                });
            }
            Call::Helper(h) if helper_name(h).is_some() => self.helper(cx, h, a),
            Call::Helper(h) => {
                return Err(CallFault {
                    kind: abi::bpf::FAULT_BAD_INSN,
                    addr: u64::from(h),
                    size: 0,
                });
            }
        };
        r.map_err(|f| {
            let n = match (f, call) {
                (Fail::Bad(n), _) => n,
                (Fail::Stop, _) => 0,
            };
            if n != 0 {
                self.bad_call = Some((call, n));
            }
            let number = match call {
                Call::Kfunc(i) | Call::Helper(i) => u64::from(i),
            };
            CallFault {
                kind: FAULT_BAD_ARG,
                addr: number,
                size: u64::from(n),
            }
        })
    }
}

impl Runtime {
    /// Run the function at `entry` as program `prog` with `budget`
    /// instructions. A stop (fault, error, exit) has been handled when
    /// this returns `Err`: status written, `exit` run, [`Rt::text`] set.
    pub fn exec(&mut self, prog: u32, entry: u32, args: &[u64], budget: u64) -> Result<u64, Stop> {
        self.rt.prog = prog;
        let vm = match &mut self.vm {
            Some(vm) => vm,
            None => {
                let img = *self.rt.img();
                // SAFETY: the ranges are the checked image's data areas
                // (mapped for the whole run) and `Shared`'s fields (a
                // static); no reference to either is held while a program
                // runs (see `Shared`).
                self.vm
                    .insert(unsafe { Vm::new(img.prog, self.rt.memory()) })
            }
        };
        let before = vm.executed;
        let r = vm.run(&mut self.rt, &mut self.stack, entry, args, budget);
        let ran = vm.executed - before;
        let st = self.rt.status();
        st.insns_run = st.insns_run.wrapping_add(ran);
        st.calls = st.calls.wrapping_add(1);
        match r {
            Ok(v) => Ok(v),
            Err(f) => Err(self.stopped(prog, f)),
        }
    }

    /// Run callback program `prog` (an index in the table) with a full
    /// budget.
    pub fn run_prog(&mut self, prog: u32, args: &[u64]) -> Result<u64, Stop> {
        let entry = self.rt.img().progs[prog as usize].entry;
        let ctx = &mut self.rt.sh().ro.ctx;
        let n = args.len().min(ctx.len());
        ctx[..n].copy_from_slice(&args[..n]);
        let at = ctx.as_ptr() as u64;
        self.exec(prog, entry, &[at], INSN_BUDGET)
    }

    /// A program stopped: say why, in the status and the text, and run
    /// `exit` (unless `exit` itself is what stopped).
    fn stopped(&mut self, prog: u32, f: Fault) -> Stop {
        let pending = self.rt.pending.take();
        if self.rt.in_exit {
            return Stop;
        }
        let mut st = BpfStatus {
            prog,
            insn: f.insn,
            ..BpfStatus::default()
        };
        let (kind, code, reason) = match pending {
            Some(p) => {
                st.state = p.state;
                (p.kind, p.code, p.reason)
            }
            None => {
                st.state = STATUS_FAULT;
                st.fault = f.kind;
                st.addr = f.addr;
                st.size = f.size;
                self.fault_text(prog, &f);
                (SCX_EXIT_ERROR, 0, "bpf program fault")
            }
        };
        // Copy the message out: `exit` may overwrite the text buffer.
        let msg = self.rt.text;
        self.run_exit(kind, code, reason, msg.as_str());
        self.rt.text = msg;
        let s = self.rt.status();
        (st.insns_run, st.calls) = (s.insns_run, s.calls);
        *s = st;
        Stop
    }

    /// "bpf program NAME: what at instruction N (...)".
    fn fault_text(&mut self, prog: u32, f: &Fault) {
        let name = match self.rt.img().progs.get(prog as usize) {
            Some(p) => prog_name(p),
            None => "?",
        };
        let mut t: Text<MSG_LEN> = Text::new();
        let _ = write!(
            t,
            "bpf program {name}: {} at instruction {}",
            fault_text(f.kind),
            f.insn
        );
        match f.kind {
            FAULT_LOAD | FAULT_STORE => {
                let _ = write!(t, " (address {:#x}, {} bytes)", f.addr, f.size);
            }
            FAULT_BAD_ARG => {
                if let Some((call, n)) = self.rt.bad_call {
                    let what = match call {
                        Call::Kfunc(i) => KFUNCS.get(i as usize).copied().unwrap_or("?"),
                        Call::Helper(h) => helper_name(h).unwrap_or("?"),
                    };
                    let _ = write!(t, " ({what}, argument {n})");
                }
            }
            _ => {}
        }
        self.rt.text = t;
    }

    /// Run the object's `exit` program once with a `scx_exit_info`.
    pub fn run_exit(&mut self, kind: u32, code: i64, reason: &str, msg: &str) {
        if self.rt.exited || self.rt.in_exit {
            return;
        }
        self.rt.exited = true;
        let idx = self.rt.img().callback(abi::policy::CB_EXIT as usize - 1);
        let Some(prog) = idx else { return };
        let ro = &mut self.rt.sh().ro;
        ro.reason = [0; 64];
        ro.msg = [0; MSG_LEN];
        for (d, s) in ro.reason[..63].iter_mut().zip(reason.as_bytes()) {
            *d = *s;
        }
        for (d, s) in ro.msg[..MSG_LEN - 1].iter_mut().zip(msg.as_bytes()) {
            *d = *s;
        }
        ro.exit_info = ScxExitInfo {
            kind,
            exit_code: code,
            reason: ro.reason.as_ptr() as u64,
            msg: ro.msg.as_ptr() as u64,
            ..ScxExitInfo::default()
        };
        let ei = &ro.exit_info as *const ScxExitInfo as u64;
        self.rt.begin(prog);
        self.rt.in_exit = true;
        let _ = self.run_prog(prog, &[ei]);
        self.rt.in_exit = false;
        self.rt.pending = None;
    }
}

impl Image {
    /// The program bound to callback index `i` of `BpfHeader::callbacks`.
    pub fn callback(&self, i: usize) -> Option<u32> {
        // SAFETY: the header was checked at `validate`.
        let cb = unsafe { (*self.hdr).callbacks[i] };
        cb.checked_sub(1)
    }
}
