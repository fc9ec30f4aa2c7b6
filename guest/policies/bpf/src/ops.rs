//! The policy callbacks: each refreshes the task views it hands out,
//! runs the program the object bound to it (with sched_ext's arguments)
//! or sched_ext's default, and copies the views back. The `extern "C"`
//! functions the `PolicyOps` table points at are thin: they call the
//! Rust ones below (which the tests call) and end the run with the
//! message when a program stopped it.

use crate::image;
use crate::rt::{Runtime, Stop};
use abi::bpf::{DISPATCH_MAX_BATCH, SCX_EXIT_UNREG, ScxInitTaskArgs};
use abi::memmap::BPF_PROGRAM_ADDR;
use abi::policy::{
    CB_DISPATCH, CB_ENQUEUE, CB_EXIT_TASK, CB_INIT, CB_INIT_TASK, CB_SELECT_CPU, DSQ_GLOBAL,
    DSQ_INVALID, DSQ_LOCAL_ON, PolicyServices, PolicyTask,
};
use core::cell::UnsafeCell;

/// The runtime's state, in `.bss`.
struct Global(UnsafeCell<Runtime>);

// SAFETY: the core runs one policy callback at a time (under its
// scheduler lock), so the state is never reached from two CPUs at once.
unsafe impl Sync for Global {}

static RT: Global = Global(UnsafeCell::new(Runtime::new()));

/// Where the program image is: `BPF_PROGRAM_ADDR` in the guest.
#[cfg(not(test))]
fn image_base() -> u64 {
    BPF_PROGRAM_ADDR
}

#[cfg(test)]
std::thread_local! {
    /// A test's own image buffer (per thread: tests build their images
    /// in parallel, then run one harness at a time).
    static IMAGE_BASE: core::cell::Cell<u64> = const { core::cell::Cell::new(BPF_PROGRAM_ADDR) };
}

#[cfg(test)]
fn image_base() -> u64 {
    IMAGE_BASE.with(|b| b.get())
}

#[cfg(test)]
pub fn set_image_base(addr: u64) {
    IMAGE_BASE.with(|b| b.set(addr));
}

/// The runtime. Callbacks are serialised by the core, and each takes
/// this once for its whole run, so no two references are alive at once.
#[allow(clippy::mut_from_ref)]
pub fn rt() -> &'static mut Runtime {
    // SAFETY: see `Global`: one callback at a time, one reference each.
    unsafe { &mut *RT.0.get() }
}

/// Index in `BpfHeader::callbacks` of callback id `id` (`CB_*`).
const fn cb(id: u32) -> usize {
    id as usize - 1
}
const CB_DEQUEUE_I: usize = 2;
const CB_TICK_I: usize = 4;
const CB_RUNNABLE_I: usize = 5;
const CB_RUNNING_I: usize = 6;
const CB_STOPPING_I: usize = 7;
const CB_QUIESCENT_I: usize = 8;
const CB_YIELD_I: usize = 9;
const CB_SET_WEIGHT_I: usize = 10;
const CB_SET_CPUMASK_I: usize = 11;
const CB_UPDATE_IDLE_I: usize = 12;
const CB_ENABLE_I: usize = 15;
const CB_CPU_ONLINE_I: usize = 16;
const CB_CPU_OFFLINE_I: usize = 17;

impl Runtime {
    /// Run the program bound to callback index `i` (None if unbound),
    /// then copy every view it was handed back to the core.
    pub fn callback(&mut self, i: usize, args: &[u64]) -> Result<Option<u64>, Stop> {
        let Some(prog) = self.rt.img().callback(i) else {
            return Ok(None);
        };
        let r = self.run_prog(prog, args);
        self.rt.sync_all_out();
        r.map(Some)
    }

    /// Start a callback: nothing handed out yet, no dispatch or
    /// select_cpu in progress.
    fn enter(&mut self) {
        self.rt.begin(0);
        self.rt.synced = [0; abi::memmap::MAX_TASKS / 64];
    }

    fn slice_dfl(&self) -> u64 {
        self.rt.svc().slice_dfl_ns
    }

    /// `init`: check the services and the image, then run the object's
    /// `init`. Nonzero refuses to start.
    pub fn init(&mut self, svc: *const PolicyServices) -> Result<i32, Stop> {
        self.reset();
        if svc.is_null() {
            return Ok(-1);
        }
        // SAFETY: the core passes its live services table.
        let s = unsafe { &*svc };
        if PolicyServices::check_header(s.magic, s.version, s.size).is_err() {
            return Ok(-1);
        }
        self.rt.svc = svc;
        // SAFETY: the VMM maps BPF_PROGRAM_SIZE bytes at BPF_PROGRAM_ADDR
        // for a BPF policy (a test maps its own buffer); `validate` reads
        // only inside the size the header claims after bounding it.
        let img = match unsafe { image::validate(image_base()) } {
            Ok(i) => i,
            Err(why) => {
                self.rt.log(b"bpf runtime: bad program image: ");
                self.rt.log(why.as_bytes());
                return Ok(-2);
            }
        };
        if s.nr_cpus > img.nr_cpus || s.nr_cpus == 0 {
            self.rt
                .log(b"bpf runtime: the program image was sized for fewer CPUs");
            return Ok(-3);
        }
        self.rt.img = Some(img);
        self.rt.nr_cpus = s.nr_cpus;
        let all = if s.nr_cpus >= 64 {
            u64::MAX
        } else {
            (1u64 << s.nr_cpus) - 1
        };
        self.rt.sh().ro.online.bits = [all];
        self.rt.sh().ro.possible.bits = [all];
        *self.rt.status() = abi::bpf::BpfStatus::default();
        self.rt.count_entries();
        self.bind_table();
        self.enter();
        match self.callback(cb(CB_INIT), &[])? {
            Some(v) if v as i32 != 0 => {
                self.rt
                    .log(b"bpf runtime: the object's init refused to start");
                Ok(v as i32)
            }
            _ => Ok(0),
        }
    }

    /// Leave in the ops table only what the object binds: an unbound
    /// callback's sched_ext default is what the core does itself when the
    /// table has none, so the call (the view copies around it) is saved.
    /// `init`, `exit`, `init_task` and `exit_task` stay (the runtime's own
    /// bookkeeping, and `disable`), and `select_cpu` (sched_ext's default
    /// queues the task straight to the idle CPU it found; the core's does
    /// not); `cpu_tick` stays only for an object that starts timers. The core reads the table at each call, and
    /// `cpu_tick` only after `init`.
    fn bind_table(&mut self) {
        let img = *self.rt.img();
        let bound = |id: u32| img.callback(cb(id)).is_some();
        let timers = img
            .insns
            .iter()
            .any(|i| i.code == 0x85 && i.src() == 0 && i.imm == 171);
        let t = &raw mut crate::POLICY_OPS;
        // SAFETY: `init` runs at boot on one CPU, before the core calls
        // any other callback; every pointer written is this image's own.
        unsafe {
            (*t).enqueue = bound(CB_ENQUEUE).then_some(enqueue as _);
            (*t).dequeue = bound(abi::policy::CB_DEQUEUE).then_some(dequeue as _);
            (*t).dispatch = bound(CB_DISPATCH).then_some(dispatch as _);
            (*t).tick = bound(abi::policy::CB_TICK).then_some(tick as _);
            (*t).runnable = bound(abi::policy::CB_RUNNABLE).then_some(runnable as _);
            (*t).running = bound(abi::policy::CB_RUNNING).then_some(running as _);
            (*t).stopping = bound(abi::policy::CB_STOPPING).then_some(stopping as _);
            (*t).quiescent = bound(abi::policy::CB_QUIESCENT).then_some(quiescent as _);
            (*t).yield_ = bound(CB_YIELD_I as u32 + 1).then_some(yield_ as _);
            (*t).set_weight = bound(CB_SET_WEIGHT_I as u32 + 1).then_some(set_weight as _);
            (*t).set_cpumask = bound(CB_SET_CPUMASK_I as u32 + 1).then_some(set_cpumask as _);
            (*t).update_idle = bound(CB_UPDATE_IDLE_I as u32 + 1).then_some(update_idle as _);
            (*t).enable = bound(abi::policy::CB_ENABLE).then_some(enable as _);
            (*t).cpu_online = bound(abi::policy::CB_CPU_ONLINE).then_some(cpu_online as _);
            (*t).cpu_offline = bound(CB_CPU_OFFLINE_I as u32 + 1).then_some(cpu_offline as _);
            (*t).cpu_tick = timers.then_some(cpu_tick as _);
        }
    }

    pub fn select_cpu(&mut self, p: *mut PolicyTask, prev: u32, wake: u64) -> Result<u32, Stop> {
        self.enter();
        let v = self.rt.sync_in(p);
        // SAFETY: the core's live task.
        let (slot, allowed) = unsafe { ((*p).slot as usize, (*p).cpus_allowed) };
        if self.rt.img().callback(cb(CB_SELECT_CPU)).is_some() {
            self.rt.select_slot = Some(slot);
            let r = self.callback(cb(CB_SELECT_CPU), &[v, u64::from(prev), wake]);
            self.rt.select_slot = None;
            let cpu = r?.unwrap_or(0) as i32 as u32;
            self.rt.apply_direct(slot, p, cpu);
            return Ok(cpu);
        }
        let (cpu, idle) = self.rt.dfl_cpu(allowed, prev);
        if idle {
            let slice = self.slice_dfl();
            self.rt.sync_out(slot, p);
            self.rt
                .do_insert(slot, p, DSQ_LOCAL_ON | u64::from(cpu), slice, None, 0);
        }
        Ok(cpu)
    }

    pub fn enqueue(&mut self, p: *mut PolicyTask, flags: u64) -> Result<(), Stop> {
        self.enter();
        // SAFETY: the core's live task; a service of the live table.
        if unsafe { (self.rt.svc().dsq_of)(p) } != DSQ_INVALID {
            // Queued by select_cpu (direct dispatch): sched_ext skips
            // enqueue (the kernel does too; the simulator does not).
            return Ok(());
        }
        let v = self.rt.sync_in(p);
        if self.callback(cb(CB_ENQUEUE), &[v, flags])?.is_none() {
            // SAFETY: the core's live task.
            let slot = unsafe { (*p).slot } as usize;
            let slice = self.slice_dfl();
            self.rt.do_insert(slot, p, DSQ_GLOBAL, slice, None, flags);
        }
        Ok(())
    }

    pub fn dispatch(&mut self, cpu: u32, prev: *mut PolicyTask) -> Result<(), Stop> {
        self.enter();
        // SAFETY: the header was checked at init.
        let max = unsafe { (*self.rt.img().hdr).dispatch_max_batch };
        self.rt.dispatch_cpu = Some(cpu);
        self.rt.slots_left = if max == 0 { DISPATCH_MAX_BATCH } else { max };
        let pv = if prev.is_null() {
            0
        } else {
            self.rt.sync_in(prev)
        };
        let r = self.callback(cb(CB_DISPATCH), &[u64::from(cpu), pv]);
        self.rt.dispatch_cpu = None;
        r.map(|_| ())
    }

    /// A callback whose arguments are the task and `extra`.
    pub fn task_cb(&mut self, i: usize, p: *mut PolicyTask, extra: &[u64]) -> Result<u64, Stop> {
        self.enter();
        let v = self.rt.sync_in(p);
        let mut args = [v, 0, 0, 0, 0];
        args[1..1 + extra.len()].copy_from_slice(extra);
        Ok(self.callback(i, &args[..1 + extra.len()])?.unwrap_or(0))
    }

    pub fn yield_(&mut self, from: *mut PolicyTask, to: *mut PolicyTask) -> Result<u32, Stop> {
        self.enter();
        let f = self.rt.sync_in(from);
        let t = if to.is_null() { 0 } else { self.rt.sync_in(to) };
        Ok(u32::from(
            self.callback(CB_YIELD_I, &[f, t])?.unwrap_or(0) as u8 != 0,
        ))
    }

    pub fn set_cpumask(&mut self, p: *mut PolicyTask, mask: u64) -> Result<(), Stop> {
        self.enter();
        let v = self.rt.sync_in(p);
        // SAFETY: the core's live task.
        let slot = unsafe { (*p).slot } as usize % abi::memmap::MAX_TASKS;
        let view = &mut self.rt.sh().views[slot];
        view.cpus_mask.bits = [mask];
        view.nr_cpus_allowed = mask.count_ones() as i32;
        let m = &view.cpus_mask as *const _ as u64;
        self.callback(CB_SET_CPUMASK_I, &[v, m]).map(|_| ())
    }

    pub fn init_task(&mut self, p: *mut PolicyTask) -> Result<i32, Stop> {
        self.rt.sh().ro.task_args = ScxInitTaskArgs::default();
        let a = &self.rt.sh().ro.task_args as *const _ as u64;
        Ok(self.task_cb(cb(CB_INIT_TASK), p, &[a])? as i32)
    }

    /// `disable` then `exit_task` (args: `scx_exit_task_args`, whose
    /// `cancelled` is false, read from the same zeroed bytes).
    pub fn exit_task(&mut self, p: *mut PolicyTask) -> Result<(), Stop> {
        self.task_cb(abi::bpf::CB_DISABLE_INDEX, p, &[])?;
        self.rt.sh().ro.task_args = ScxInitTaskArgs::default();
        let a = &self.rt.sh().ro.task_args as *const _ as u64;
        self.task_cb(cb(CB_EXIT_TASK), p, &[a]).map(|_| ())
    }

    pub fn cpu_cb(&mut self, i: usize, args: &[u64]) -> Result<(), Stop> {
        self.enter();
        self.callback(i, args).map(|_| ())
    }

    /// `exit`: the object's `exit` with `SCX_EXIT_UNREG` (once).
    pub fn exit(&mut self) {
        self.enter();
        self.run_exit(SCX_EXIT_UNREG, 0, "schedlab: the run ended", "");
    }

    pub fn cpu_tick(&mut self, cpu: u32, now: u64) -> Result<(), Stop> {
        self.enter();
        self.run_timers(cpu, now)
    }
}

/// End the run with the message a stopped program left.
fn fail(r: &Runtime) -> ! {
    let t = &r.rt.text;
    // SAFETY: a service of the live table; the text lives in `.bss`.
    unsafe { (r.rt.svc().error)(t.buf.as_ptr(), t.len) }
}

/// Unwrap a callback's result, ending the run on a stop.
fn done<T>(r: Result<T, Stop>) -> T {
    match r {
        Ok(v) => v,
        Err(Stop) => fail(rt()),
    }
}

pub unsafe extern "C" fn init(svc: *const PolicyServices) -> i32 {
    done(rt().init(svc))
}

pub unsafe extern "C" fn exit(_code: i64) {
    rt().exit()
}

pub unsafe extern "C" fn select_cpu(p: *mut PolicyTask, prev: u32, wake: u64) -> u32 {
    done(rt().select_cpu(p, prev, wake))
}

pub unsafe extern "C" fn enqueue(p: *mut PolicyTask, flags: u64) {
    done(rt().enqueue(p, flags))
}

pub unsafe extern "C" fn dequeue(p: *mut PolicyTask, flags: u64) {
    done(rt().task_cb(CB_DEQUEUE_I, p, &[flags]));
}

pub unsafe extern "C" fn dispatch(cpu: u32, prev: *mut PolicyTask) {
    done(rt().dispatch(cpu, prev))
}

pub unsafe extern "C" fn tick(p: *mut PolicyTask) {
    done(rt().task_cb(CB_TICK_I, p, &[]));
}

pub unsafe extern "C" fn runnable(p: *mut PolicyTask, flags: u64) {
    done(rt().task_cb(CB_RUNNABLE_I, p, &[flags]));
}

pub unsafe extern "C" fn running(p: *mut PolicyTask) {
    done(rt().task_cb(CB_RUNNING_I, p, &[]));
}

pub unsafe extern "C" fn stopping(p: *mut PolicyTask, runnable: u32) {
    done(rt().task_cb(CB_STOPPING_I, p, &[u64::from(runnable != 0)]));
}

pub unsafe extern "C" fn quiescent(p: *mut PolicyTask, flags: u64) {
    done(rt().task_cb(CB_QUIESCENT_I, p, &[flags]));
}

pub unsafe extern "C" fn yield_(from: *mut PolicyTask, to: *mut PolicyTask) -> u32 {
    done(rt().yield_(from, to))
}

pub unsafe extern "C" fn set_weight(p: *mut PolicyTask, weight: u32) {
    let w = u64::from(weight).saturating_mul(100);
    done(rt().task_cb(CB_SET_WEIGHT_I, p, &[w]));
}

pub unsafe extern "C" fn set_cpumask(p: *mut PolicyTask, mask: u64) {
    done(rt().set_cpumask(p, mask))
}

pub unsafe extern "C" fn update_idle(cpu: u32, idle: u32) {
    done(rt().cpu_cb(CB_UPDATE_IDLE_I, &[u64::from(cpu), u64::from(idle != 0)]))
}

pub unsafe extern "C" fn init_task(p: *mut PolicyTask) -> i32 {
    done(rt().init_task(p))
}

pub unsafe extern "C" fn exit_task(p: *mut PolicyTask) {
    done(rt().exit_task(p))
}

pub unsafe extern "C" fn enable(p: *mut PolicyTask) {
    done(rt().task_cb(CB_ENABLE_I, p, &[]));
}

pub unsafe extern "C" fn cpu_online(cpu: u32) {
    done(rt().cpu_cb(CB_CPU_ONLINE_I, &[u64::from(cpu)]))
}

pub unsafe extern "C" fn cpu_offline(cpu: u32) {
    done(rt().cpu_cb(CB_CPU_OFFLINE_I, &[u64::from(cpu)]))
}

pub unsafe extern "C" fn cpu_tick(cpu: u32, now: u64) {
    done(rt().cpu_tick(cpu, now))
}

/// A panic inside the runtime is a bug of its own: end the run saying
/// so, if the services are known yet.
#[cfg(target_os = "none")]
pub fn panicked() -> ! {
    let r = rt();
    if !r.rt.svc.is_null() {
        let m = b"bpf runtime: internal error (a panic in the runtime)";
        // SAFETY: a service of the live table; a static text.
        unsafe { (r.rt.svc().error)(m.as_ptr(), m.len()) }
    }
    loop {
        core::hint::spin_loop()
    }
}
