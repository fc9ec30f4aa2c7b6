//! Task views: the `task_struct` (`abi::bpf::ScxTask`) a program sees for
//! each task-table slot, kept in the runtime's `.bss` because programs may
//! only touch memory the sandbox names. A view is refreshed from the
//! core's `PolicyTask` when a program is handed the task, and what a
//! program may write (`scx.slice`, `scx.dsq_vtime`) is copied back before
//! a service acts on the task and when the callback ends.

use crate::rt::{Fail, Rt};
use abi::bpf::ScxTask;
use abi::memmap::MAX_TASKS;
use abi::policy::PolicyTask;
use core::mem::size_of;

/// Bytes between two views.
pub const STRIDE: u64 = size_of::<crate::rt::View>() as u64;

impl Rt {
    /// Address of slot `slot`'s view.
    pub fn view_addr(&self, slot: usize) -> u64 {
        &self.sh().views[slot].0 as *const ScxTask as u64
    }

    pub fn views_base(&self) -> u64 {
        self.sh().views.as_ptr() as u64
    }

    /// The core's task in `slot`, null if the slot is free.
    pub fn task_of_slot(&self, slot: usize) -> *mut PolicyTask {
        // SAFETY: a service of the live table; any slot number is fine.
        unsafe { (self.svc().task_of_slot)(slot as u32) }
    }

    /// Refresh slot `p.slot`'s view from the core's task `p` and mark it
    /// handed out for this callback; its address.
    pub fn sync_in(&mut self, p: *mut PolicyTask) -> u64 {
        // SAFETY: `p` is a task the core passed the callback or returned
        // from `task_of_slot`: a live view it owns.
        let t = unsafe { *p };
        let slot = t.slot as usize % MAX_TASKS;
        if self.synced[slot / 64] & (1u64 << (slot % 64)) != 0 {
            // Handed out already: keep what the program wrote.
            self.sync_out(slot, p);
        }
        // SAFETY: as above (re-read after the copy back).
        let t = unsafe { *p };
        // SAFETY: as above.
        let dsq = unsafe { (self.svc().dsq_of)(p) };
        let v = &mut self.sh().views[slot];
        v.pid = t.pid as i32;
        v.tgid = t.pid as i32;
        v.flags = 0;
        v.nr_cpus_allowed = t.cpus_allowed.count_ones() as i32;
        v.cpus_mask.bits = [t.cpus_allowed];
        v.cpus_ptr = &v.cpus_mask as *const _ as u64;
        v.comm = t.name;
        v.scx.slice = t.slice_ns;
        v.scx.dsq_vtime = t.dsq_vtime;
        v.scx.weight = t.weight.saturating_mul(100);
        v.scx.dsq_id = dsq;
        v.scx.sticky_cpu = -1;
        v.scx.holding_cpu = -1;
        self.synced[slot / 64] |= 1u64 << (slot % 64);
        self.view_addr(slot)
    }

    /// Copy what a program may have written in slot `slot`'s view back to
    /// the core's task.
    pub fn sync_out(&mut self, slot: usize, p: *mut PolicyTask) {
        let v = &self.sh().views[slot];
        // SAFETY: `p` is the live core task of `slot`.
        unsafe {
            (*p).slice_ns = v.scx.slice;
            (*p).dsq_vtime = v.scx.dsq_vtime;
        }
    }

    /// After a service acted on the task: what it changed, into the view.
    pub fn refresh(&mut self, slot: usize, p: *mut PolicyTask) {
        // SAFETY: `p` is the live core task of `slot`; a service of the
        // live table.
        let (slice, vtime, dsq) =
            unsafe { ((*p).slice_ns, (*p).dsq_vtime, (self.svc().dsq_of)(p)) };
        let v = &mut self.sh().views[slot];
        v.scx.slice = slice;
        v.scx.dsq_vtime = vtime;
        v.scx.dsq_id = dsq;
    }

    /// A task pointer a program passed a kfunc or helper: exactly a view's
    /// address, of a live slot. Its view is brought in sync with the core
    /// (written fields out, or the whole view in if the program had not
    /// been handed it this callback). `arg` names the argument for the
    /// fault.
    pub fn task_arg(&mut self, addr: u64, arg: u8) -> Result<(usize, *mut PolicyTask), Fail> {
        let base = self.views_base();
        let off = addr.wrapping_sub(base);
        if addr < base || off >= STRIDE * MAX_TASKS as u64 || !off.is_multiple_of(STRIDE) {
            return Err(Fail::Bad(arg));
        }
        let slot = (off / STRIDE) as usize;
        let p = self.task_of_slot(slot);
        if p.is_null() {
            return Err(Fail::Bad(arg));
        }
        if self.synced[slot / 64] & (1u64 << (slot % 64)) == 0 {
            self.sync_in(p);
        } else {
            self.sync_out(slot, p);
        }
        Ok((slot, p))
    }

    /// End of a callback: every view handed out goes back to the core.
    pub fn sync_all_out(&mut self) {
        for w in 0..self.synced.len() {
            let mut bits = core::mem::take(&mut self.synced[w]);
            while bits != 0 {
                let slot = w * 64 + bits.trailing_zeros() as usize;
                bits &= bits - 1;
                let p = self.task_of_slot(slot);
                if !p.is_null() {
                    self.sync_out(slot, p);
                }
            }
        }
    }

    /// `bpf_task_from_pid`: the view of the live task `pid`, 0 if none.
    pub fn task_from_pid(&mut self, pid: i32) -> u64 {
        if pid <= 0 {
            return 0;
        }
        for slot in 0..MAX_TASKS {
            let p = self.task_of_slot(slot);
            // SAFETY: a live core task.
            if !p.is_null() && unsafe { (*p).pid } == pid as u32 {
                return self.sync_in(p);
            }
        }
        0
    }
}
