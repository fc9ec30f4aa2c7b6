//! Dispatch queues (sched_ext's DSQs): one local queue per CPU, one global
//! queue, and [`MAX_CUSTOM_DSQS`] queues a policy may use as it likes.
//!
//! Every queue is an intrusive doubly-linked list threaded through per-slot
//! links, so a queue costs a few bytes whatever its length, a task can be in
//! at most one queue by construction, and removing a task from the middle
//! (it exited, it was stolen) is O(1). Links store `slot + 1` with 0 meaning
//! "none", so an empty [`Dsqs`] is all zeros and a `static` of it lands in
//! `.bss` rather than in the guest image.

use crate::{Cpu, Slot};
use abi::memmap::{MAX_CPUS, MAX_TASKS};

/// Number of policy-defined queues (`DsqId::Custom(0..MAX_CUSTOM_DSQS)`).
pub const MAX_CUSTOM_DSQS: usize = 8;

const GLOBAL_INDEX: usize = MAX_CPUS;
const CUSTOM_BASE: usize = MAX_CPUS + 1;
const NR_DSQS: usize = CUSTOM_BASE + MAX_CUSTOM_DSQS;

const _: () = {
    // `owner` stores a queue index + 1 in a u8; links store slot + 1 in a u16.
    assert!(NR_DSQS < u8::MAX as usize);
    assert!(MAX_TASKS < u16::MAX as usize);
};

/// Names one dispatch queue.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum DsqId {
    /// CPU `n`'s local queue: the core runs what is at its head.
    Local(Cpu),
    /// Shared by all CPUs: the core takes the first task allowed on the CPU
    /// when the CPU's local queue stays empty after `dispatch`.
    Global,
    /// Policy-private (`0..MAX_CUSTOM_DSQS`); the core never takes from it.
    Custom(u16),
}

impl DsqId {
    /// Position in `Dsqs::queues`, or `None` for an id out of range.
    const fn index(self) -> Option<usize> {
        match self {
            DsqId::Local(c) if (c as usize) < MAX_CPUS => Some(c as usize),
            DsqId::Global => Some(GLOBAL_INDEX),
            DsqId::Custom(n) if (n as usize) < MAX_CUSTOM_DSQS => Some(CUSTOM_BASE + n as usize),
            _ => None,
        }
    }

    const fn from_index(i: usize) -> DsqId {
        if i < MAX_CPUS {
            DsqId::Local(i as Cpu)
        } else if i == GLOBAL_INDEX {
            DsqId::Global
        } else {
            DsqId::Custom((i - CUSTOM_BASE) as u16)
        }
    }
}

/// `slot + 1`, 0 = none.
type Link = u16;

const fn link(slot: usize) -> Link {
    (slot + 1) as Link
}

#[derive(Clone, Copy, Debug)]
struct Queue {
    head: Link,
    tail: Link,
    len: u16,
}

impl Queue {
    const EMPTY: Queue = Queue {
        head: 0,
        tail: 0,
        len: 0,
    };
}

/// All dispatch queues of one machine. See the module docs for the layout.
///
/// Ordering: [`insert_fifo`](Dsqs::insert_fifo) appends,
/// [`insert_vtime`](Dsqs::insert_vtime) keeps the queue sorted by key with
/// ties in insertion order. Each queued slot carries a key: a FIFO append
/// takes the tail's key and [`insert_head`](Dsqs::insert_head) the head's,
/// so a queue that mixes the three stays sorted as far as the keys tell.
///
/// Inserting a slot that is already queued moves it (it is first removed),
/// which keeps "in at most one queue" true whatever the caller does.
///
/// Slots must be `< MAX_TASKS`; queue ids must be in range
/// (`Local(c)` with `c < MAX_CPUS`, `Custom(n)` with `n < MAX_CUSTOM_DSQS`).
/// An insert that breaks this panics (a core bug); queries about an
/// out-of-range slot or queue answer "empty" / "not queued".
pub struct Dsqs {
    next: [Link; MAX_TASKS],
    prev: [Link; MAX_TASKS],
    key: [u64; MAX_TASKS],
    /// Index + 1 of the queue holding the slot, 0 = not queued.
    owner: [u8; MAX_TASKS],
    queues: [Queue; NR_DSQS],
}

impl Default for Dsqs {
    fn default() -> Self {
        Self::new()
    }
}

impl Dsqs {
    /// All queues empty (all-zero).
    pub const fn new() -> Self {
        Dsqs {
            next: [0; MAX_TASKS],
            prev: [0; MAX_TASKS],
            key: [0; MAX_TASKS],
            owner: [0; MAX_TASKS],
            queues: [Queue::EMPTY; NR_DSQS],
        }
    }

    fn checked(dsq: DsqId, slot: Slot) -> (usize, usize) {
        let Some(q) = dsq.index() else {
            panic!("dsq: queue id out of range");
        };
        assert!((slot as usize) < MAX_TASKS, "dsq: slot out of range");
        (q, slot as usize)
    }

    /// Link `s` into queue `q` right after `after` (0 = at the head).
    fn link_after(&mut self, q: usize, after: Link, s: usize) {
        let next = if after == 0 {
            self.queues[q].head
        } else {
            self.next[after as usize - 1]
        };
        self.prev[s] = after;
        self.next[s] = next;
        if after == 0 {
            self.queues[q].head = link(s);
        } else {
            self.next[after as usize - 1] = link(s);
        }
        if next == 0 {
            self.queues[q].tail = link(s);
        } else {
            self.prev[next as usize - 1] = link(s);
        }
        self.owner[s] = (q + 1) as u8;
        self.queues[q].len += 1;
    }

    /// Unlink `s` from whatever queue holds it; false if none.
    fn unlink(&mut self, s: usize) -> bool {
        let Some(&owner) = self.owner.get(s) else {
            return false;
        };
        if owner == 0 {
            return false;
        }
        let q = owner as usize - 1;
        let (prev, next) = (self.prev[s], self.next[s]);
        if prev == 0 {
            self.queues[q].head = next;
        } else {
            self.next[prev as usize - 1] = next;
        }
        if next == 0 {
            self.queues[q].tail = prev;
        } else {
            self.prev[next as usize - 1] = prev;
        }
        self.prev[s] = 0;
        self.next[s] = 0;
        self.owner[s] = 0;
        self.queues[q].len -= 1;
        true
    }

    /// Append `slot` to `dsq` (it takes the tail's key).
    pub fn insert_fifo(&mut self, dsq: DsqId, slot: Slot) {
        let (q, s) = Self::checked(dsq, slot);
        self.unlink(s);
        let tail = self.queues[q].tail;
        self.key[s] = if tail == 0 {
            0
        } else {
            self.key[tail as usize - 1]
        };
        self.link_after(q, tail, s);
    }

    /// Put `slot` at the head of `dsq` (it takes the head's key), like
    /// sched_ext's `SCX_ENQ_HEAD`: for a task that should run next.
    pub fn insert_head(&mut self, dsq: DsqId, slot: Slot) {
        let (q, s) = Self::checked(dsq, slot);
        self.unlink(s);
        let head = self.queues[q].head;
        self.key[s] = if head == 0 {
            0
        } else {
            self.key[head as usize - 1]
        };
        self.link_after(q, 0, s);
    }

    /// Insert `slot` into `dsq` ordered by `key` (smallest first), after
    /// every queued slot whose key is `<= key` (ties: FIFO). Walks from the
    /// tail, which is O(1) for the common case of growing keys and O(n)
    /// (n <= MAX_TASKS) at worst.
    pub fn insert_vtime(&mut self, dsq: DsqId, slot: Slot, key: u64) {
        let (q, s) = Self::checked(dsq, slot);
        self.unlink(s);
        let mut after = self.queues[q].tail;
        while after != 0 && self.key[after as usize - 1] > key {
            after = self.prev[after as usize - 1];
        }
        self.key[s] = key;
        self.link_after(q, after, s);
    }

    /// Remove `slot` from whichever queue holds it; false if it was in none.
    pub fn remove(&mut self, slot: Slot) -> bool {
        self.unlink(slot as usize)
    }

    /// The queue holding `slot`, if any.
    pub fn queued_in(&self, slot: Slot) -> Option<DsqId> {
        match self.owner.get(slot as usize) {
            Some(&o) if o != 0 => Some(DsqId::from_index(o as usize - 1)),
            _ => None,
        }
    }

    /// The slot after `slot` in its queue (`None` at the tail, or if
    /// `slot` is not queued): walking a queue one step at a time.
    pub fn next_of(&self, slot: Slot) -> Option<Slot> {
        self.queued_in(slot)?;
        match self.next[slot as usize] {
            0 => None,
            n => Some(n as Slot - 1),
        }
    }

    /// The key `slot` is queued with (`None` if not queued).
    pub fn key(&self, slot: Slot) -> Option<u64> {
        self.queued_in(slot).map(|_| self.key[slot as usize])
    }

    pub fn len(&self, dsq: DsqId) -> usize {
        dsq.index().map_or(0, |q| self.queues[q].len as usize)
    }

    pub fn is_empty(&self, dsq: DsqId) -> bool {
        self.len(dsq) == 0
    }

    pub fn first(&self, dsq: DsqId) -> Option<Slot> {
        let head = self.queues[dsq.index()?].head;
        (head != 0).then(|| head - 1)
    }

    pub fn last(&self, dsq: DsqId) -> Option<Slot> {
        let tail = self.queues[dsq.index()?].tail;
        (tail != 0).then(|| tail - 1)
    }

    /// Remove and return the head of `dsq`.
    pub fn pop_first(&mut self, dsq: DsqId) -> Option<Slot> {
        let s = self.first(dsq)?;
        self.unlink(s as usize);
        Some(s)
    }

    /// First slot in `dsq` for which `ok(slot)` holds, removed (e.g.
    /// "allowed on this CPU").
    pub fn pop_first_where(&mut self, dsq: DsqId, ok: impl Fn(Slot) -> bool) -> Option<Slot> {
        let s = self.iter(dsq).find(|&s| ok(s))?;
        self.unlink(s as usize);
        Some(s)
    }

    /// The slots in `dsq`, head first.
    pub fn iter(&self, dsq: DsqId) -> DsqIter<'_> {
        DsqIter {
            dsqs: self,
            next: dsq.index().map_or(0, |q| self.queues[q].head),
        }
    }
}

/// Iterator over one queue, head first (see [`Dsqs::iter`]).
pub struct DsqIter<'a> {
    dsqs: &'a Dsqs,
    next: Link,
}

impl Iterator for DsqIter<'_> {
    type Item = Slot;

    fn next(&mut self) -> Option<Slot> {
        if self.next == 0 {
            return None;
        }
        let s = self.next - 1;
        self.next = self.dsqs.next[s as usize];
        Some(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::boxed::Box;
    use std::vec::Vec;

    fn items(d: &Dsqs, q: DsqId) -> Vec<Slot> {
        d.iter(q).collect()
    }

    /// The list is consistent: forward and backward walks agree, len and
    /// owners match.
    fn check(d: &Dsqs, q: DsqId) {
        let fwd = items(d, q);
        assert_eq!(fwd.len(), d.len(q));
        let mut back = Vec::new();
        let mut cur = d.last(q);
        while let Some(s) = cur {
            back.push(s);
            let p = d.prev[s as usize];
            cur = (p != 0).then(|| p - 1);
        }
        back.reverse();
        assert_eq!(fwd, back);
        for s in fwd {
            assert_eq!(d.queued_in(s), Some(q));
        }
    }

    #[test]
    fn next_of_walks_a_queue_and_stops_at_its_tail() {
        let mut d = Box::new(Dsqs::new());
        for s in [5, 1, 9] {
            d.insert_fifo(DsqId::Custom(2), s);
        }
        assert_eq!(d.next_of(5), Some(1));
        assert_eq!(d.next_of(1), Some(9));
        assert_eq!(d.next_of(9), None);
        // Not queued (never, or taken off): no successor.
        assert_eq!(d.next_of(4), None);
        d.remove(1);
        assert_eq!(d.next_of(1), None);
        assert_eq!(d.next_of(5), Some(9));
    }

    #[test]
    fn fifo_order() {
        let mut d = Box::new(Dsqs::new());
        for s in [5, 1, 9, 3] {
            d.insert_fifo(DsqId::Global, s);
        }
        check(&d, DsqId::Global);
        assert_eq!(items(&d, DsqId::Global), [5, 1, 9, 3]);
        assert_eq!(d.first(DsqId::Global), Some(5));
        assert_eq!(d.last(DsqId::Global), Some(3));
        assert_eq!(d.pop_first(DsqId::Global), Some(5));
        assert_eq!(d.pop_first(DsqId::Global), Some(1));
        d.insert_fifo(DsqId::Global, 5);
        assert_eq!(items(&d, DsqId::Global), [9, 3, 5]);
        d.insert_head(DsqId::Global, 7);
        assert_eq!(items(&d, DsqId::Global), [7, 9, 3, 5]);
        check(&d, DsqId::Global);
    }

    #[test]
    fn vtime_order_ties_fifo() {
        let mut d = Box::new(Dsqs::new());
        let q = DsqId::Local(3);
        for (s, k) in [(1, 50), (2, 10), (3, 50), (4, 30), (5, 10), (6, 60), (7, 0)] {
            d.insert_vtime(q, s, k);
            check(&d, q);
        }
        assert_eq!(items(&d, q), [7, 2, 5, 4, 1, 3, 6]);
        assert_eq!(d.key(4), Some(30));
        assert_eq!(d.key(100), None);
        // Re-inserting a queued slot moves it.
        d.insert_vtime(q, 2, 55);
        assert_eq!(items(&d, q), [7, 5, 4, 1, 3, 2, 6]);
        assert_eq!(d.len(q), 7);
        // A FIFO append in a vtime queue takes the tail's key, so a later
        // key-ordered insert still lands in order.
        d.insert_fifo(q, 8);
        assert_eq!(d.key(8), Some(60));
        d.insert_vtime(q, 9, 59);
        assert_eq!(items(&d, q), [7, 5, 4, 1, 3, 2, 9, 6, 8]);
        check(&d, q);
    }

    #[test]
    fn remove_middle_and_moves() {
        let mut d = Box::new(Dsqs::new());
        for s in 0..5 {
            d.insert_fifo(DsqId::Local(0), s);
        }
        assert!(d.remove(2));
        assert!(!d.remove(2));
        assert_eq!(d.queued_in(2), None);
        assert_eq!(items(&d, DsqId::Local(0)), [0, 1, 3, 4]);
        check(&d, DsqId::Local(0));
        // Head and tail removal.
        assert!(d.remove(0) && d.remove(4));
        assert_eq!(items(&d, DsqId::Local(0)), [1, 3]);
        check(&d, DsqId::Local(0));
        // A task is in one queue only: inserting elsewhere moves it.
        d.insert_fifo(DsqId::Custom(7), 3);
        assert_eq!(d.queued_in(3), Some(DsqId::Custom(7)));
        assert_eq!(items(&d, DsqId::Local(0)), [1]);
        assert_eq!(d.len(DsqId::Custom(7)), 1);
        assert!(d.remove(1) && d.remove(3));
        assert!(d.is_empty(DsqId::Local(0)) && d.is_empty(DsqId::Custom(7)));
        assert_eq!(d.first(DsqId::Local(0)), None);
        assert_eq!(d.pop_first(DsqId::Local(0)), None);
        // Out-of-range queries are just empty.
        assert_eq!(d.len(DsqId::Local(64)), 0);
        assert_eq!(d.first(DsqId::Custom(8)), None);
        assert!(!d.remove(MAX_TASKS as Slot));
    }

    #[test]
    fn pop_first_where_and_len() {
        let mut d = Box::new(Dsqs::new());
        let q = DsqId::Local(1);
        for s in [10, 11, 12, 13, 14] {
            d.insert_fifo(q, s);
        }
        assert_eq!(d.len(q), 5);
        assert_eq!(d.pop_first_where(q, |s| s % 2 == 1), Some(11));
        assert_eq!(d.pop_first_where(q, |s| s > 12), Some(13));
        assert_eq!(d.pop_first_where(q, |s| s > 100), None);
        assert_eq!(d.len(q), 3);
        assert_eq!(items(&d, q), [10, 12, 14]);
        check(&d, q);
        // Independent queues don't interfere.
        d.insert_fifo(DsqId::Local(2), 1);
        assert_eq!((d.len(q), d.len(DsqId::Local(2))), (3, 1));
    }

    #[test]
    fn full_table() {
        let mut d = Box::new(Dsqs::new());
        for s in 0..MAX_TASKS as Slot {
            d.insert_vtime(DsqId::Global, s, u64::from(MAX_TASKS as Slot - s));
        }
        assert_eq!(d.len(DsqId::Global), MAX_TASKS);
        assert_eq!(d.first(DsqId::Global), Some(MAX_TASKS as Slot - 1));
        check(&d, DsqId::Global);
    }

    #[test]
    #[should_panic(expected = "out of range")]
    fn insert_bad_queue_panics() {
        Dsqs::new().insert_fifo(DsqId::Custom(MAX_CUSTOM_DSQS as u16), 0);
    }
}
