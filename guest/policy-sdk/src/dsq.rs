//! Dispatch queues (sched_ext's DSQs), held by the core: every CPU's local
//! queue, the global queue, and queues the policy creates.

use super::{Task, svc};

pub use abi::policy::{DSQ_GLOBAL as GLOBAL, DSQ_LOCAL as LOCAL, DSQ_LOCAL_ON as LOCAL_ON};

/// CPU `cpu`'s local queue.
pub const fn local_on(cpu: u32) -> u64 {
    LOCAL_ON | cpu as u64
}

/// Create queue `id` (any id below 2^62). False if it exists or there is
/// no room for another.
pub fn create(id: u64) -> bool {
    // SAFETY: a service of the checked table.
    unsafe { (svc().dsq_create)(id) == 0 }
}

/// Queue `p` at the tail of `id` (head with `ENQ_HEAD`) with `slice_ns`
/// (`SLICE_DFL`: the run's slice; 0: keep its slice).
pub fn insert(p: &mut Task, id: u64, slice_ns: u64, enq_flags: u64) {
    // SAFETY: a service of the checked table; p is a live task view.
    unsafe { (svc().dsq_insert)(p, id, slice_ns, enq_flags) }
}

/// Queue `p` in one of the policy's own queues, ordered by `vtime`.
pub fn insert_vtime(p: &mut Task, id: u64, slice_ns: u64, vtime: u64, enq_flags: u64) {
    // SAFETY: as in `insert`.
    unsafe { (svc().dsq_insert_vtime)(p, id, slice_ns, vtime, enq_flags) }
}

/// Move the first task of `id` that may run on `cpu` to `cpu`'s local
/// queue; true if one moved.
pub fn move_to_local(id: u64, cpu: u32) -> bool {
    // SAFETY: a service of the checked table.
    unsafe { (svc().dsq_move_to_local)(id, cpu) != 0 }
}

/// Tasks queued in `id`.
pub fn nr_queued(id: u64) -> usize {
    // SAFETY: a service of the checked table.
    usize::try_from(unsafe { (svc().dsq_nr_queued)(id) }).unwrap_or(0)
}

/// The first task of `id`.
pub fn first(id: u64) -> Option<&'static mut Task> {
    // SAFETY: the core returns null or a live task view.
    unsafe { (svc().dsq_first)(id).as_mut() }
}

/// The task after `p` in its queue.
pub fn next(p: &mut Task) -> Option<&'static mut Task> {
    // SAFETY: as in `first`.
    unsafe { (svc().dsq_next)(p).as_mut() }
}

/// Take `p` off its queue; true if it was queued.
pub fn remove(p: &mut Task) -> bool {
    // SAFETY: a service of the checked table.
    unsafe { (svc().dsq_remove)(p) != 0 }
}

/// The queue holding `p` (`abi::policy::DSQ_INVALID` if none).
pub fn dsq_of(p: &mut Task) -> u64 {
    // SAFETY: a service of the checked table; p is a live task view.
    unsafe { (svc().dsq_of)(p) }
}

/// The tasks of queue `id`, head first. The next task is looked up before
/// one is handed out, so the policy may move the task it holds.
pub fn iter(id: u64) -> Iter {
    // SAFETY: the core returns null or a live task view.
    Iter(unsafe { (svc().dsq_first)(id) })
}

/// See [`iter`].
pub struct Iter(*mut Task);

impl Iterator for Iter {
    type Item = &'static mut Task;

    fn next(&mut self) -> Option<&'static mut Task> {
        let cur = self.0;
        if cur.is_null() {
            return None;
        }
        // SAFETY: cur is a live task view the core returned.
        self.0 = unsafe { (svc().dsq_next)(cur) };
        // SAFETY: as above; callbacks run one at a time.
        unsafe { cur.as_mut() }
    }
}
