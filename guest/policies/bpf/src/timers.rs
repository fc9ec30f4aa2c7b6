//! `bpf_timer`s: a program's 16-byte `struct bpf_timer` (inside a map
//! value) names one of `MAX_TIMERS` runtime slots; the slot keeps the
//! callback, the expiry and the pinned CPU, and `cpu_tick` runs the due
//! ones with the kernel's callback arguments `(map, key, value)`. Since
//! the timer's bytes are the program's to overwrite, every use checks the
//! slot they name records that very address.

use crate::kfuncs::{EBUSY, EINVAL, neg};
use crate::maps::M;
use crate::mem::{rd, wr};
use crate::rt::{Fail, R, Rt, Runtime, Stop, Timer};
use abi::bpf::{
    FUNC_PTR_TAG, INSN_BUDGET, MAP_ARRAY, MAP_HASH, MAP_LRU_HASH, MAX_TIMERS, TIMER_F_ABS,
    TIMER_F_CPU_PIN,
};
use bpf_vm::CallCx;

/// What the runtime writes in a timer's first word: this tag | its slot.
const TIMER_TAG: u64 = 0x7131_3e00_0000_0000;
const ENOMEM: i64 = 12;

impl Rt {
    /// The slot the `struct bpf_timer` at `addr` names, if it is one.
    fn timer_slot(&self, addr: u64) -> Option<usize> {
        // SAFETY: callers checked 16 bytes at `addr` readable.
        let w = unsafe { rd::<u64>(addr) };
        let i = (w & !TIMER_TAG) as usize;
        (w & TIMER_TAG == TIMER_TAG && i < MAX_TIMERS)
            .then_some(i)
            .filter(|&i| self.timers[i].used && self.timers[i].addr == addr)
    }

    fn timer_arg(&self, cx: &CallCx<'_>, addr: u64) -> Result<Option<usize>, Fail> {
        if !cx.allows(addr, 16, true) {
            return Err(Fail::Bad(1));
        }
        Ok(self.timer_slot(addr))
    }

    /// Free the timers whose `struct bpf_timer` lies in `[addr, +len)` (a
    /// map element going away, as the kernel's `bpf_obj_free_timer`).
    pub fn release_timers(&mut self, addr: u64, len: u64) {
        for t in self.timers.iter_mut() {
            if t.used && t.addr >= addr && t.addr < addr + len {
                *t = Timer::default();
            }
        }
    }

    /// `bpf_timer_init(timer, map, flags)`.
    pub fn timer_init(&mut self, cx: &CallCx<'_>, addr: u64, h: u64) -> R {
        if self.timer_arg(cx, addr)?.is_some() {
            return Ok(neg(EBUSY));
        }
        let m = self.map_arg(h, 2)?;
        let end = m.values + m.l.values_len;
        if !matches!(m.map.kind, MAP_ARRAY | MAP_HASH | MAP_LRU_HASH)
            || addr < m.values
            || addr + 16 > end
        {
            return Err(Fail::Bad(2));
        }
        let Some(i) = self.timers.iter().position(|t| !t.used) else {
            return Ok(neg(ENOMEM));
        };
        self.timers[i] = Timer {
            used: true,
            addr,
            map: m.index,
            ..Timer::default()
        };
        // SAFETY: checked writable by `timer_arg`.
        unsafe { wr::<[u64; 2]>(addr, [TIMER_TAG | i as u64, 0]) };
        Ok(0)
    }

    /// `bpf_timer_set_callback(timer, callback)`: a function entry.
    pub fn timer_set_callback(&mut self, cx: &CallCx<'_>, addr: u64, f: u64) -> R {
        let Some(i) = self.timer_arg(cx, addr)? else {
            return Ok(neg(EINVAL));
        };
        let insn = f & !FUNC_PTR_TAG;
        if f & FUNC_PTR_TAG != FUNC_PTR_TAG
            || insn > u64::from(u32::MAX)
            || self.img().funcs.binary_search(&(insn as u32)).is_err()
        {
            return Err(Fail::Bad(2));
        }
        self.timers[i].callback = Some(insn as u32);
        Ok(0)
    }

    /// `bpf_timer_start(timer, nsecs, flags)`.
    pub fn timer_start(&mut self, cx: &CallCx<'_>, addr: u64, ns: u64, flags: u64) -> R {
        let Some(i) = self.timer_arg(cx, addr)? else {
            return Ok(neg(EINVAL));
        };
        if flags & !(TIMER_F_ABS | TIMER_F_CPU_PIN) != 0 || self.timers[i].callback.is_none() {
            return Ok(neg(EINVAL));
        }
        let svc = *self.svc();
        // SAFETY: services of the live table.
        let (now, cpu) = unsafe { ((svc.now_ns)(), (svc.cpu_id)()) };
        let t = &mut self.timers[i];
        t.expires = if flags & TIMER_F_ABS != 0 {
            ns
        } else {
            now.saturating_add(ns)
        };
        t.pin = (flags & TIMER_F_CPU_PIN != 0).then_some(cpu);
        t.armed = true;
        Ok(0)
    }

    /// `bpf_timer_cancel(timer)`: 1 if it was armed.
    pub fn timer_cancel(&mut self, cx: &CallCx<'_>, addr: u64) -> R {
        let Some(i) = self.timer_arg(cx, addr)? else {
            return Ok(neg(EINVAL));
        };
        let was = core::mem::replace(&mut self.timers[i].armed, false);
        Ok(u64::from(was))
    }

    /// The callback's `(map, key, value)` for timer `t`: the key goes to
    /// the read-only scratch (an array's index, a hash table's key).
    fn timer_args(&mut self, t: &Timer) -> Option<[u64; 3]> {
        let h = abi::bpf::map_handle(t.map);
        let m: M = self.map_arg(h, 1).ok()?;
        let i = (t.addr.checked_sub(m.values)? / m.l.stride) / m.copies;
        let value = m.value(i, 0);
        self.sh().ro.key = [0; crate::image::KEY_MAX as usize];
        if m.map.kind == MAP_ARRAY {
            self.sh().ro.key[..4].copy_from_slice(&(i as u32).to_ne_bytes());
        } else {
            let ks = m.map.key_size as usize;
            // SAFETY: the key lies in slot `i`'s checked metadata.
            let k = unsafe { core::slice::from_raw_parts((m.slot(i) + 8) as *const u8, ks) };
            self.sh().ro.key[..ks].copy_from_slice(k);
        }
        Some([h, self.sh().ro.key.as_ptr() as u64, value])
    }
}

impl Runtime {
    /// `cpu_tick`: run every due timer pinned here or not pinned, once
    /// each, with one budget between them.
    pub fn run_timers(&mut self, cpu: u32, now: u64) -> Result<(), Stop> {
        let mut budget = INSN_BUDGET;
        for i in 0..MAX_TIMERS {
            let t = self.rt.timers[i];
            if !t.used || !t.armed || t.expires > now || t.pin.is_some_and(|p| p != cpu) {
                continue;
            }
            self.rt.timers[i].armed = false;
            let (Some(entry), Some(args)) = (t.callback, self.rt.timer_args(&t)) else {
                continue;
            };
            // The program the callback is, for faults (else past the table).
            let img = *self.rt.img();
            let prog = img
                .progs
                .iter()
                .position(|p| p.entry == entry)
                .map_or(img.progs.len() as u32, |p| p as u32);
            self.rt.begin(prog);
            let before = self.rt.status().insns_run;
            let r = self.exec(prog, entry, &args, budget);
            self.rt.sync_all_out();
            r?;
            let ran = self.rt.status().insns_run.wrapping_sub(before);
            budget = budget.saturating_sub(ran).max(1);
        }
        Ok(())
    }
}
