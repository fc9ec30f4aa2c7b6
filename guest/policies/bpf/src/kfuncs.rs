//! sched_ext's kfuncs (`abi::bpf::KFUNCS`; a call's `imm` is the index)
//! on the policy services, with sched_ext's semantics: the dispatch
//! buffer's slots, direct dispatch from `select_cpu`, the idle-CPU calls,
//! `scx_bpf_error`/`scx_bpf_exit`, cpumasks from a runtime pool, and the
//! open-coded number iterator exactly as the kernel's.

use crate::format::{format, read_str};
use crate::mem::{Text, rd, wr};
use crate::rt::{Direct, Fail, MSG_LEN, R, Rt};
use abi::bpf::{
    KFUNCS, MAX_CPUMASKS, SCX_EXIT_ERROR_BPF, SCX_EXIT_UNREG_BPF, STATUS_ERROR, STATUS_EXIT,
};
use abi::policy::{DSQ_LOCAL, DSQ_LOCAL_ON, KICK_IDLE, KICK_PREEMPT};
use bpf_vm::CallCx;

pub const EINVAL: i64 = 22;
pub const E2BIG: i64 = 7;
pub const EBUSY: i64 = 16;
/// `BPF_MAX_LOOPS`: the longest range `bpf_iter_num_new` accepts.
pub const BPF_MAX_LOOPS: i64 = 1 << 23;
/// Most words of a `bstr` data array (the kernel's `MAX_BPRINTF_VARARGS`
/// is 12; schedlab is lenient).
const BSTR_WORDS: usize = 32;

/// The index of `name` in `KFUNCS` (at compile time: a renamed kfunc
/// fails the build here instead of dispatching wrongly).
const fn k(name: &str) -> u32 {
    let mut i = 0;
    while i < KFUNCS.len() {
        let (a, b) = (KFUNCS[i].as_bytes(), name.as_bytes());
        if a.len() == b.len() {
            let mut j = 0;
            while j < a.len() && a[j] == b[j] {
                j += 1;
            }
            if j == a.len() {
                return i as u32;
            }
        }
        i += 1;
    }
    panic!("not a kfunc of abi::bpf::KFUNCS")
}

pub const K_CREATE_DSQ: u32 = k("scx_bpf_create_dsq");
pub const K_DESTROY_DSQ: u32 = k("scx_bpf_destroy_dsq");
pub const K_DSQ_INSERT: u32 = k("scx_bpf_dsq_insert");
pub const K_DSQ_INSERT_VTIME: u32 = k("scx_bpf_dsq_insert_vtime");
pub const K_DSQ_MOVE_TO_LOCAL: u32 = k("scx_bpf_dsq_move_to_local");
pub const K_DSQ_NR_QUEUED: u32 = k("scx_bpf_dsq_nr_queued");
pub const K_DISPATCH_NR_SLOTS: u32 = k("scx_bpf_dispatch_nr_slots");
pub const K_DISPATCH: u32 = k("scx_bpf_dispatch");
pub const K_DISPATCH_VTIME: u32 = k("scx_bpf_dispatch_vtime");
pub const K_CONSUME: u32 = k("scx_bpf_consume");
pub const K_SELECT_CPU_DFL: u32 = k("scx_bpf_select_cpu_dfl");
pub const K_TEST_AND_CLEAR_CPU_IDLE: u32 = k("scx_bpf_test_and_clear_cpu_idle");
pub const K_PICK_IDLE_CPU: u32 = k("scx_bpf_pick_idle_cpu");
pub const K_PICK_ANY_CPU: u32 = k("scx_bpf_pick_any_cpu");
pub const K_GET_IDLE_CPUMASK: u32 = k("scx_bpf_get_idle_cpumask");
pub const K_GET_IDLE_SMTMASK: u32 = k("scx_bpf_get_idle_smtmask");
pub const K_PUT_IDLE_CPUMASK: u32 = k("scx_bpf_put_idle_cpumask");
pub const K_GET_ONLINE_CPUMASK: u32 = k("scx_bpf_get_online_cpumask");
pub const K_GET_POSSIBLE_CPUMASK: u32 = k("scx_bpf_get_possible_cpumask");
pub const K_PUT_CPUMASK: u32 = k("scx_bpf_put_cpumask");
pub const K_KICK_CPU: u32 = k("scx_bpf_kick_cpu");
pub const K_NR_CPU_IDS: u32 = k("scx_bpf_nr_cpu_ids");
pub const K_CPUPERF_CAP: u32 = k("scx_bpf_cpuperf_cap");
pub const K_CPUPERF_CUR: u32 = k("scx_bpf_cpuperf_cur");
pub const K_CPUPERF_SET: u32 = k("scx_bpf_cpuperf_set");
pub const K_NOW: u32 = k("scx_bpf_now");
pub const K_TASK_CPU: u32 = k("scx_bpf_task_cpu");
pub const K_TASK_RUNNING: u32 = k("scx_bpf_task_running");
pub const K_TASK_FROM_PID: u32 = k("bpf_task_from_pid");
pub const K_TASK_ACQUIRE: u32 = k("bpf_task_acquire");
pub const K_TASK_RELEASE: u32 = k("bpf_task_release");
pub const K_ERROR_BSTR: u32 = k("scx_bpf_error_bstr");
pub const K_EXIT_BSTR: u32 = k("scx_bpf_exit_bstr");
pub const K_DUMP_BSTR: u32 = k("scx_bpf_dump_bstr");
pub const K_CPUMASK_CREATE: u32 = k("bpf_cpumask_create");
pub const K_CPUMASK_ACQUIRE: u32 = k("bpf_cpumask_acquire");
pub const K_CPUMASK_RELEASE: u32 = k("bpf_cpumask_release");
pub const K_CPUMASK_TEST_CPU: u32 = k("bpf_cpumask_test_cpu");
pub const K_CPUMASK_SET_CPU: u32 = k("bpf_cpumask_set_cpu");
pub const K_CPUMASK_CLEAR_CPU: u32 = k("bpf_cpumask_clear_cpu");
pub const K_CPUMASK_TEST_AND_SET_CPU: u32 = k("bpf_cpumask_test_and_set_cpu");
pub const K_CPUMASK_TEST_AND_CLEAR_CPU: u32 = k("bpf_cpumask_test_and_clear_cpu");
pub const K_CPUMASK_SETALL: u32 = k("bpf_cpumask_setall");
pub const K_CPUMASK_CLEAR: u32 = k("bpf_cpumask_clear");
pub const K_CPUMASK_AND: u32 = k("bpf_cpumask_and");
pub const K_CPUMASK_OR: u32 = k("bpf_cpumask_or");
pub const K_CPUMASK_COPY: u32 = k("bpf_cpumask_copy");
pub const K_CPUMASK_FIRST: u32 = k("bpf_cpumask_first");
pub const K_CPUMASK_EMPTY: u32 = k("bpf_cpumask_empty");
pub const K_CPUMASK_WEIGHT: u32 = k("bpf_cpumask_weight");
pub const K_ITER_NUM_NEW: u32 = k("bpf_iter_num_new");
pub const K_ITER_NUM_NEXT: u32 = k("bpf_iter_num_next");
pub const K_ITER_NUM_DESTROY: u32 = k("bpf_iter_num_destroy");

/// `-errno` as a register value.
pub const fn neg(e: i64) -> u64 {
    (-e) as u64
}

/// An `s32` result as a register value.
fn s32(v: i32) -> u64 {
    i64::from(v) as u64
}

impl Rt {
    /// Kfunc `i` (an index in `KFUNCS`, checked by the caller) with r1..r5.
    pub fn kfunc(&mut self, cx: &CallCx<'_>, i: u32, a: [u64; 5]) -> R {
        match i {
            K_CREATE_DSQ => Ok(s32(
                // SAFETY: a service of the live table.
                unsafe { (self.svc().dsq_create)(a[0]) },
            )),
            K_DESTROY_DSQ => Ok(0),
            K_DSQ_INSERT | K_DISPATCH => self.insert(a[0], a[1], a[2], None, a[3]),
            K_DSQ_INSERT_VTIME | K_DISPATCH_VTIME => {
                self.insert(a[0], a[1], a[2], Some(a[3]), a[4])
            }
            K_DSQ_MOVE_TO_LOCAL | K_CONSUME => self.move_to_local(a[0]),
            K_DSQ_NR_QUEUED => Ok(s32(
                // SAFETY: a service of the live table.
                unsafe { (self.svc().dsq_nr_queued)(a[0]) },
            )),
            K_DISPATCH_NR_SLOTS => Ok(u64::from(self.slots_left)),
            K_SELECT_CPU_DFL => self.select_cpu_dfl(cx, a[0], a[1] as u32, a[3]),
            K_TEST_AND_CLEAR_CPU_IDLE => {
                let cpu = self.cpu_arg(a[0], "scx_bpf_test_and_clear_cpu_idle")?;
                // SAFETY: a service of the live table; a valid CPU.
                Ok(u64::from(
                    unsafe { (self.svc().test_and_clear_cpu_idle)(cpu) } != 0,
                ))
            }
            K_PICK_IDLE_CPU => {
                let m = self.mask_in(cx, a[0], 1)?;
                Ok(self.pick_idle(m, a[1]))
            }
            K_PICK_ANY_CPU => {
                let m = self.mask_in(cx, a[0], 1)? & self.online();
                let r = self.pick_idle(m, a[1]);
                if r as i64 >= 0 || m == 0 {
                    return Ok(r);
                }
                Ok(u64::from(m.trailing_zeros()))
            }
            K_GET_IDLE_CPUMASK => Ok(self.idle_mask_addr(false)),
            K_GET_IDLE_SMTMASK => Ok(self.idle_mask_addr(true)),
            K_PUT_IDLE_CPUMASK | K_PUT_CPUMASK => Ok(0),
            K_GET_ONLINE_CPUMASK => Ok(&self.sh().ro.online as *const _ as u64),
            K_GET_POSSIBLE_CPUMASK => Ok(&self.sh().ro.possible as *const _ as u64),
            K_KICK_CPU => {
                let cpu = self.cpu_arg(a[0], "scx_bpf_kick_cpu")?;
                // SAFETY: a service of the live table; a valid CPU.
                unsafe { (self.svc().kick_cpu)(cpu, a[1] & (KICK_IDLE | KICK_PREEMPT)) };
                Ok(0)
            }
            K_NR_CPU_IDS => Ok(u64::from(self.nr_cpus)),
            K_CPUPERF_CAP | K_CPUPERF_CUR => Ok(1024),
            K_CPUPERF_SET => Ok(0),
            // SAFETY: a service of the live table.
            K_NOW => Ok(unsafe { (self.svc().now_ns)() }),
            K_TASK_CPU => {
                let (_, p) = self.task_arg(a[0], 1)?;
                // SAFETY: a live core task.
                Ok(u64::from(unsafe { (*p).cpu }))
            }
            K_TASK_RUNNING => {
                let (_, p) = self.task_arg(a[0], 1)?;
                // SAFETY: a live core task; a service of the live table.
                let cur = unsafe { (self.svc().cpu_curr)((*p).cpu) };
                Ok(u64::from(cur == p))
            }
            K_TASK_FROM_PID => Ok(self.task_from_pid(a[0] as i32)),
            K_TASK_ACQUIRE => self.task_arg(a[0], 1).map(|_| a[0]),
            K_TASK_RELEASE => self.task_arg(a[0], 1).map(|_| 0),
            K_ERROR_BSTR => self.bstr(cx, a[0], a[1], a[2], None),
            K_EXIT_BSTR => self.bstr(cx, a[1], a[2], a[3], Some(a[0] as i64)),
            K_DUMP_BSTR => Ok(0),
            K_CPUMASK_CREATE..=K_CPUMASK_WEIGHT => self.cpumask_kfunc(cx, i, a),
            K_ITER_NUM_NEW => self.iter_new(cx, a[0], a[1] as i32, a[2] as i32),
            K_ITER_NUM_NEXT => self.iter_next(cx, a[0]),
            K_ITER_NUM_DESTROY => {
                self.iter_at(cx, a[0])?;
                Ok(0)
            }
            _ => Err(Fail::Bad(0)),
        }
    }

    fn online(&self) -> u64 {
        self.sh().ro.online.bits[0]
    }

    /// A CPU argument: a CPU of the run, else the run ends (as
    /// sched_ext's `ops_cpu_valid`).
    fn cpu_arg(&mut self, cpu: u64, what: &str) -> Result<u32, Fail> {
        if cpu < u64::from(self.nr_cpus) {
            return Ok(cpu as u32);
        }
        Err(self.misuse(format_args!("{what}: invalid CPU {}", cpu as i64)))
    }

    /// `scx_bpf_dsq_insert{,_vtime}` (and the old `scx_bpf_dispatch*`).
    fn insert(&mut self, p: u64, dsq: u64, slice: u64, vtime: Option<u64>, flags: u64) -> R {
        let (slot, t) = self.task_arg(p, 1)?;
        if self.dispatch_cpu.is_some() {
            if self.slots_left == 0 {
                return Err(self.misuse(format_args!("dispatch buffer overflow")));
            }
            self.slots_left -= 1;
            self.slots_used += 1;
        }
        if self.select_slot == Some(slot) {
            // sched_ext's direct dispatch: applied when select_cpu has
            // chosen the CPU (SCX_DSQ_LOCAL is that CPU's queue).
            if self.direct.is_some() {
                let pid = self.sh().views[slot].pid;
                return Err(self.misuse(format_args!("select_cpu inserted task pid {pid} twice")));
            }
            self.direct = Some(Direct {
                dsq,
                slice,
                vtime,
                flags,
            });
            return Ok(0);
        }
        self.do_insert(slot, t, dsq, slice, vtime, flags);
        Ok(0)
    }

    /// Queue task `t` (its view already copied out) through the services.
    pub fn do_insert(
        &mut self,
        slot: usize,
        t: *mut abi::policy::PolicyTask,
        dsq: u64,
        slice: u64,
        vtime: Option<u64>,
        flags: u64,
    ) {
        let svc = *self.svc();
        // SAFETY: services of the live table on a live core task; they
        // check the queue and the task and end the run on a bad one.
        unsafe {
            match vtime {
                Some(v) => (svc.dsq_insert_vtime)(t, dsq, slice, v, flags),
                None => (svc.dsq_insert)(t, dsq, slice, flags),
            }
        }
        self.refresh(slot, t);
    }

    /// Apply `select_cpu`'s direct dispatch now that `cpu` is chosen.
    pub fn apply_direct(&mut self, slot: usize, t: *mut abi::policy::PolicyTask, cpu: u32) {
        if let Some(d) = self.direct.take() {
            let dsq = if d.dsq == DSQ_LOCAL {
                DSQ_LOCAL_ON | u64::from(cpu)
            } else {
                d.dsq
            };
            self.sync_out(slot, t);
            self.do_insert(slot, t, dsq, d.slice, d.vtime, d.flags);
        }
    }

    fn move_to_local(&mut self, dsq: u64) -> R {
        let Some(cpu) = self.dispatch_cpu else {
            return Err(self.misuse(format_args!(
                "scx_bpf_dsq_move_to_local called outside dispatch"
            )));
        };
        // SAFETY: a service of the live table.
        Ok(u64::from(
            unsafe { (self.svc().dsq_move_to_local)(dsq, cpu) } != 0,
        ))
    }

    /// `scx_bpf_select_cpu_dfl(p, prev_cpu, wake_flags, &is_idle)`.
    fn select_cpu_dfl(&mut self, cx: &CallCx<'_>, p: u64, prev: u32, is_idle: u64) -> R {
        let (_, t) = self.task_arg(p, 1)?;
        if !cx.allows(is_idle, 1, true) {
            return Err(Fail::Bad(4));
        }
        // SAFETY: a live core task.
        let allowed = unsafe { (*t).cpus_allowed };
        let (cpu, idle) = self.dfl_cpu(allowed, prev);
        // SAFETY: the sandbox allowed the byte for writing.
        unsafe { wr::<u8>(is_idle, u8::from(idle)) };
        Ok(u64::from(cpu))
    }

    /// sched_ext's default CPU choice (`abi::idle::select_cpu_dfl`, the
    /// core's own order over its `pick_idle_cpu` service: a wholly idle
    /// core, prev's first, then its LLC's, then an idle CPU in the same
    /// order, else `prev`); and whether an idle CPU was claimed.
    pub fn dfl_cpu(&mut self, allowed: u64, prev: u32) -> (u32, bool) {
        let svc = *self.svc();
        let online = self.online();
        let pick = |mask: u64, flags: u64| {
            // SAFETY: a service of the live table.
            u32::try_from(unsafe { (svc.pick_idle_cpu)(mask & online, flags) }).ok()
        };
        // A `prev` the run does not have is searched from nowhere and
        // given back when nothing is idle (the core then refuses it).
        let from = if prev < self.nr_cpus { prev } else { u32::MAX };
        match abi::idle::select_cpu_dfl(&svc.topology, allowed & online, from, pick) {
            (cpu, true) => (cpu, true),
            (_, false) => (prev, false),
        }
    }

    fn pick_idle(&mut self, mask: u64, flags: u64) -> u64 {
        // SAFETY: a service of the live table.
        let c = unsafe { (self.svc().pick_idle_cpu)(mask & self.online(), flags) };
        if c >= 0 { s32(c) } else { neg(EBUSY) }
    }

    /// A `const struct cpumask *` argument: any 8 readable bytes.
    fn mask_in(&self, cx: &CallCx<'_>, addr: u64, arg: u8) -> Result<u64, Fail> {
        if !cx.allows(addr, 8, false) {
            return Err(Fail::Bad(arg));
        }
        // SAFETY: the sandbox allowed the load.
        Ok(unsafe { rd::<u64>(addr) })
    }

    /// The idle mask, or with `smt` the CPUs whose whole core is idle
    /// (`abi::idle::idle_cores`, Linux's `idle_masks.smt`).
    fn idle_mask_addr(&mut self, smt: bool) -> u64 {
        // SAFETY: a service of the live table.
        let m = unsafe { (self.svc().idle_mask)() };
        if smt {
            self.sh().ro.smt.bits = [abi::idle::idle_cores(&self.svc().topology, m)];
            &self.sh().ro.smt as *const _ as u64
        } else {
            self.sh().ro.idle.bits = [m];
            &self.sh().ro.idle as *const _ as u64
        }
    }

    /// `scx_bpf_error_bstr` (code None) and `scx_bpf_exit_bstr`: format
    /// the message, then end the run.
    fn bstr(&mut self, cx: &CallCx<'_>, fmt: u64, data: u64, len: u64, code: Option<i64>) -> R {
        let base = if code.is_some() { 1 } else { 0 };
        if !len.is_multiple_of(8)
            || len > (BSTR_WORDS * 8) as u64
            || (len > 0 && !cx.allows(data, len, false))
        {
            return Err(Fail::Bad(base + 2));
        }
        let mut args = [0u64; BSTR_WORDS];
        for (k, w) in args.iter_mut().take((len / 8) as usize).enumerate() {
            // SAFETY: the sandbox allowed the whole array.
            *w = unsafe { rd::<u64>(data + 8 * k as u64) };
        }
        let readable = |a: u64, n: u64| cx.allows(a, n, false);
        let mut f: Text<MSG_LEN> = Text::new();
        read_str(&mut f, fmt, MSG_LEN as u64 - 1, &readable);
        self.text.clear();
        format(
            &mut self.text,
            f.bytes(),
            &args[..(len / 8) as usize],
            &readable,
        );
        Err(match code {
            None => self.raise(STATUS_ERROR, SCX_EXIT_ERROR_BPF, 0, "scx_bpf_error"),
            Some(c) => self.raise(STATUS_EXIT, SCX_EXIT_UNREG_BPF, c, "scx_bpf_exit"),
        })
    }

    /// The pool slot of a `struct bpf_cpumask *` the program holds.
    fn pool_slot(&self, addr: u64, arg: u8) -> Result<usize, Fail> {
        let base = self.sh().pool.as_ptr() as u64;
        let off = addr.wrapping_sub(base);
        let i = (off / 8) as usize;
        if addr < base || !off.is_multiple_of(8) || i >= MAX_CPUMASKS || self.pool_refs[i] == 0 {
            return Err(Fail::Bad(arg));
        }
        Ok(i)
    }

    fn cpumask_kfunc(&mut self, cx: &CallCx<'_>, i: u32, a: [u64; 5]) -> R {
        let all = self.online();
        let bit = |cpu: u64| if cpu < 64 { 1u64 << cpu } else { 0 };
        match i {
            // bpf_cpumask_create: a zeroed mask, NULL when the pool is full.
            K_CPUMASK_CREATE => Ok(match self.pool_refs.iter().position(|&r| r == 0) {
                Some(k) => {
                    self.pool_refs[k] = 1;
                    self.sh().pool[k].bits = [0];
                    &self.sh().pool[k] as *const _ as u64
                }
                None => 0,
            }),
            K_CPUMASK_ACQUIRE => {
                let k = self.pool_slot(a[0], 1)?;
                self.pool_refs[k] += 1;
                Ok(a[0])
            }
            K_CPUMASK_RELEASE => {
                let k = self.pool_slot(a[0], 1)?;
                self.pool_refs[k] -= 1;
                Ok(0)
            }
            K_CPUMASK_TEST_CPU => Ok(u64::from(self.mask_in(cx, a[1], 2)? & bit(a[0]) != 0)),
            K_CPUMASK_SET_CPU..=K_CPUMASK_TEST_AND_CLEAR_CPU => {
                let k = self.pool_slot(a[1], 2)?;
                let b = bit(a[0]) & all;
                let was = self.sh().pool[k].bits[0] & b != 0;
                match i {
                    K_CPUMASK_CLEAR_CPU | K_CPUMASK_TEST_AND_CLEAR_CPU => {
                        self.sh().pool[k].bits[0] &= !b
                    }
                    _ => self.sh().pool[k].bits[0] |= b,
                }
                Ok(u64::from(i >= K_CPUMASK_TEST_AND_SET_CPU && was))
            }
            K_CPUMASK_SETALL | K_CPUMASK_CLEAR => {
                let k = self.pool_slot(a[0], 1)?;
                self.sh().pool[k].bits = [if i == K_CPUMASK_SETALL { all } else { 0 }];
                Ok(0)
            }
            K_CPUMASK_AND..=K_CPUMASK_COPY => {
                let k = self.pool_slot(a[0], 1)?;
                let s1 = self.mask_in(cx, a[1], 2)?;
                let v = match i {
                    K_CPUMASK_AND => s1 & self.mask_in(cx, a[2], 3)?,
                    K_CPUMASK_OR => s1 | self.mask_in(cx, a[2], 3)?,
                    _ => s1,
                };
                self.sh().pool[k].bits = [v];
                Ok(u64::from(i == K_CPUMASK_AND && v != 0))
            }
            K_CPUMASK_FIRST => {
                let m = self.mask_in(cx, a[0], 1)?;
                Ok(if m == 0 {
                    u64::from(self.nr_cpus)
                } else {
                    u64::from(m.trailing_zeros())
                })
            }
            K_CPUMASK_EMPTY => Ok(u64::from(self.mask_in(cx, a[0], 1)? == 0)),
            _ => Ok(u64::from(self.mask_in(cx, a[0], 1)?.count_ones())),
        }
    }

    /// The 8-byte `struct bpf_iter_num` at `it`: (cur, end).
    fn iter_at(&self, cx: &CallCx<'_>, it: u64) -> Result<(i32, i32), Fail> {
        if !cx.allows(it, 8, true) {
            return Err(Fail::Bad(1));
        }
        // SAFETY: the sandbox allowed 8 bytes for reading and writing.
        Ok(unsafe { (rd::<i32>(it), rd::<i32>(it + 4)) })
    }

    fn iter_set(it: u64, cur: i32, end: i32) {
        // SAFETY: checked by `iter_at` before every call.
        unsafe {
            wr::<i32>(it, cur);
            wr::<i32>(it + 4, end);
        }
    }

    /// `bpf_iter_num_new(it, start, end)`, as the kernel's.
    fn iter_new(&mut self, cx: &CallCx<'_>, it: u64, start: i32, end: i32) -> R {
        self.iter_at(cx, it)?;
        if start > end {
            Self::iter_set(it, 0, 0);
            return Ok(neg(EINVAL));
        }
        if i64::from(end) - i64::from(start) > BPF_MAX_LOOPS {
            Self::iter_set(it, 0, 0);
            return Ok(neg(E2BIG));
        }
        Self::iter_set(it, start.wrapping_sub(1), end);
        Ok(0)
    }

    /// `bpf_iter_num_next(it)`: `&cur` after `cur++`, NULL at the end.
    fn iter_next(&mut self, cx: &CallCx<'_>, it: u64) -> R {
        let (cur, end) = self.iter_at(cx, it)?;
        if i64::from(cur.wrapping_add(1)) >= i64::from(end) || cur == i32::MAX {
            Self::iter_set(it, 0, 0);
            return Ok(0);
        }
        Self::iter_set(it, cur + 1, end);
        Ok(it)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The id constants are KFUNCS in order, one each (the dispatch
    /// match uses them; the end-to-end test in `tests` calls every one).
    #[test]
    fn kfunc_ids_cover_the_list() {
        let ids = [
            K_CREATE_DSQ,
            K_DESTROY_DSQ,
            K_DSQ_INSERT,
            K_DSQ_INSERT_VTIME,
            K_DSQ_MOVE_TO_LOCAL,
            K_DSQ_NR_QUEUED,
            K_DISPATCH_NR_SLOTS,
            K_DISPATCH,
            K_DISPATCH_VTIME,
            K_CONSUME,
            K_SELECT_CPU_DFL,
            K_TEST_AND_CLEAR_CPU_IDLE,
            K_PICK_IDLE_CPU,
            K_PICK_ANY_CPU,
            K_GET_IDLE_CPUMASK,
            K_GET_IDLE_SMTMASK,
            K_PUT_IDLE_CPUMASK,
            K_GET_ONLINE_CPUMASK,
            K_GET_POSSIBLE_CPUMASK,
            K_PUT_CPUMASK,
            K_KICK_CPU,
            K_NR_CPU_IDS,
            K_CPUPERF_CAP,
            K_CPUPERF_CUR,
            K_CPUPERF_SET,
            K_NOW,
            K_TASK_CPU,
            K_TASK_RUNNING,
            K_TASK_FROM_PID,
            K_TASK_ACQUIRE,
            K_TASK_RELEASE,
            K_ERROR_BSTR,
            K_EXIT_BSTR,
            K_DUMP_BSTR,
            K_CPUMASK_CREATE,
            K_CPUMASK_ACQUIRE,
            K_CPUMASK_RELEASE,
            K_CPUMASK_TEST_CPU,
            K_CPUMASK_SET_CPU,
            K_CPUMASK_CLEAR_CPU,
            K_CPUMASK_TEST_AND_SET_CPU,
            K_CPUMASK_TEST_AND_CLEAR_CPU,
            K_CPUMASK_SETALL,
            K_CPUMASK_CLEAR,
            K_CPUMASK_AND,
            K_CPUMASK_OR,
            K_CPUMASK_COPY,
            K_CPUMASK_FIRST,
            K_CPUMASK_EMPTY,
            K_CPUMASK_WEIGHT,
            K_ITER_NUM_NEW,
            K_ITER_NUM_NEXT,
            K_ITER_NUM_DESTROY,
        ];
        for (i, id) in ids.iter().enumerate() {
            assert_eq!(*id as usize, i, "{}", KFUNCS[i]);
        }
        assert_eq!(ids.len(), KFUNCS.len());
    }
}
