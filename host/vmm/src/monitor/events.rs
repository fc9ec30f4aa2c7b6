//! Drains the guest's per-CPU event rings (`abi::kstate`): the guest
//! publishes `write` with release after filling an entry, the host copies
//! entries `[read, write)` and then publishes `read` with release, which
//! frees the space. A full ring makes the guest drop (and count in `lost`),
//! never wait, so draining promptly is what keeps the timeline complete.
//!
//! The host keeps its own copy of `read` and never believes the guest's:
//! a `write` that went backwards or ran more than a ring ahead is counted
//! as malformed and the reader resynchronises to it; entries with an
//! unknown kind or CPU are counted and skipped. Nothing here can panic or
//! allocate past the caller's cap.

use super::seqlock::event_at;
use super::view::{KstateView, kstate_off};
use abi::kstate::{
    EV_EXIT, EV_SWITCH, EVENT_RING_ENTRIES, EVENT_RING_HEADER_SIZE, EVENT_RING_LOST_OFFSET,
    EVENT_RING_READ_OFFSET, EVENT_RING_WAITED_OFFSET, EVENT_RING_WRITE_OFFSET, EVENT_SIZE, Event,
    event_ring_addr,
};
use serde::Serialize;
use std::sync::atomic::Ordering;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct DrainStats {
    /// Events copied out and kept.
    pub events: u64,
    /// Times a ring's `write` was impossible (behind the host's cursor or
    /// more than a ring ahead); the reader skipped to it.
    pub malformed_rings: u64,
    /// Entries with an unknown kind or CPU, skipped.
    pub bad_events: u64,
    /// Good events not kept because the host's cap was reached.
    pub dropped: u64,
}

pub struct EventDrain {
    /// Host-side `read` cursor per CPU.
    next: Vec<u64>,
    cap: usize,
    pub stats: DrainStats,
    /// Most events one ring held at the last `drain`: how close the
    /// busiest CPU came to filling its ring since the drain before.
    pub fullest: u64,
}

impl EventDrain {
    /// Readers for `cpus` rings; at most `cap` events are kept in total.
    pub fn new(cpus: u32, cap: usize) -> Self {
        EventDrain {
            next: vec![0; cpus as usize],
            cap,
            stats: DrainStats::default(),
            fullest: 0,
        }
    }

    /// Copy every CPU's new events into `out`. Returns how many were seen
    /// (kept or not), so a caller can tell a quiet guest from a busy one.
    pub fn drain(&mut self, v: &KstateView, out: &mut Vec<Event>) -> u64 {
        let cpus = self.next.len() as u32;
        let mut seen = 0;
        self.fullest = 0;
        for cpu in 0..cpus {
            let n = self.drain_cpu(v, cpu, cpus, out);
            self.fullest = self.fullest.max(n);
            seen += n;
        }
        seen
    }

    fn drain_cpu(&mut self, v: &KstateView, cpu: u32, cpus: u32, out: &mut Vec<Event>) -> u64 {
        let hdr = kstate_off(event_ring_addr(cpu));
        let Some(write) = v.load_u64(hdr + EVENT_RING_WRITE_OFFSET, Ordering::Acquire) else {
            return 0;
        };
        let read = self.next[cpu as usize];
        if write == read {
            return 0;
        }
        if write < read || write - read > EVENT_RING_ENTRIES {
            self.stats.malformed_rings += 1;
            self.publish(v, hdr, cpu, write);
            return 0;
        }
        let entries = hdr + EVENT_RING_HEADER_SIZE;
        for i in read..write {
            let off = entries + (i % EVENT_RING_ENTRIES) * EVENT_SIZE;
            match event_at(v, off) {
                Some(e) if plausible(&e, cpus) => {
                    if out.len() < self.cap {
                        out.push(e);
                        self.stats.events += 1;
                    } else {
                        self.stats.dropped += 1;
                    }
                }
                _ => self.stats.bad_events += 1,
            }
        }
        self.publish(v, hdr, cpu, write);
        write - read
    }

    /// Hand `[.., upto)` back to the guest.
    fn publish(&mut self, v: &KstateView, hdr: u64, cpu: u32, upto: u64) {
        self.next[cpu as usize] = upto;
        v.store_u64(hdr + EVENT_RING_READ_OFFSET, upto, Ordering::Release);
    }

    /// Events the guest dropped because a ring was full, all CPUs.
    pub fn guest_lost(&self, v: &KstateView) -> u64 {
        self.header_sum(v, EVENT_RING_LOST_OFFSET)
    }

    /// What the guest says its CPUs waited for room in full rings, ns.
    pub fn guest_waited(&self, v: &KstateView) -> u64 {
        self.header_sum(v, EVENT_RING_WAITED_OFFSET)
    }

    /// A ring-header word summed over the CPUs (saturating: guest data).
    fn header_sum(&self, v: &KstateView, off: u64) -> u64 {
        (0..self.next.len() as u32)
            .filter_map(|cpu| {
                let hdr = kstate_off(event_ring_addr(cpu));
                v.load_u64(hdr + off, Ordering::Acquire)
            })
            .fold(0u64, u64::saturating_add)
    }
}

fn plausible(e: &Event, cpus: u32) -> bool {
    (EV_SWITCH..=EV_EXIT).contains(&e.kind) && u32::from(e.cpu) < cpus
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::seqlock::to_words;
    use abi::kstate::{EV_SPAWN, EV_WAKEUP, KSTATE_END};

    /// A fake guest producer for one CPU's ring.
    struct Producer<'a> {
        v: &'a KstateView,
        cpu: u32,
        write: u64,
    }

    impl Producer<'_> {
        fn hdr(&self) -> u64 {
            kstate_off(event_ring_addr(self.cpu))
        }
        fn push(&mut self, e: Event) {
            let slot = self.write % EVENT_RING_ENTRIES;
            let off = self.hdr() + EVENT_RING_HEADER_SIZE + slot * EVENT_SIZE;
            let w: [u64; 4] = to_words(&e);
            assert!(self.v.write_words(off, &w));
            self.write += 1;
            self.v.store_u64(self.hdr(), self.write, Ordering::Release);
        }
        fn set_write(&mut self, w: u64) {
            self.write = w;
            self.v.store_u64(self.hdr(), w, Ordering::Release);
        }
        fn read(&self) -> u64 {
            self.v
                .load_u64(self.hdr() + EVENT_RING_READ_OFFSET, Ordering::Acquire)
                .unwrap()
        }
    }

    fn ev(cpu: u16, tsc: u64) -> Event {
        Event::new(tsc, EV_SWITCH, cpu, 2, 0, 0)
    }

    fn view() -> KstateView {
        KstateView::synthetic(KSTATE_END)
    }

    #[test]
    fn events_come_out_in_order_and_read_is_published() {
        let v = view();
        let mut p = Producer {
            v: &v,
            cpu: 1,
            write: 0,
        };
        let mut d = EventDrain::new(2, 100);
        let mut out = Vec::new();
        assert_eq!(d.drain(&v, &mut out), 0);
        for t in 0..5 {
            p.push(ev(1, 100 + t));
        }
        assert_eq!(d.drain(&v, &mut out), 5);
        assert_eq!(
            out.iter().map(|e| e.tsc).collect::<Vec<_>>(),
            [100, 101, 102, 103, 104]
        );
        assert_eq!(p.read(), 5, "the host hands the space back");
        assert_eq!(d.drain(&v, &mut out), 0, "nothing new");
        assert_eq!(d.stats.events, 5);
    }

    #[test]
    fn the_ring_wraps_around() {
        let v = view();
        let mut p = Producer {
            v: &v,
            cpu: 0,
            write: 0,
        };
        let mut d = EventDrain::new(1, usize::MAX);
        let mut out = Vec::new();
        let n = EVENT_RING_ENTRIES - 3;
        for t in 0..n {
            p.push(ev(0, t));
        }
        d.drain(&v, &mut out);
        // The next 10 straddle the end of the ring.
        for t in n..n + 10 {
            p.push(ev(0, t));
        }
        out.clear();
        assert_eq!(d.drain(&v, &mut out), 10);
        assert_eq!(out.first().unwrap().tsc, n);
        assert_eq!(out.last().unwrap().tsc, n + 9);
        assert!(out.windows(2).all(|w| w[1].tsc == w[0].tsc + 1));
        assert_eq!(p.read(), n + 10);
    }

    #[test]
    fn a_full_ring_is_drained_whole() {
        let v = view();
        let mut p = Producer {
            v: &v,
            cpu: 0,
            write: 0,
        };
        let mut d = EventDrain::new(1, usize::MAX);
        for t in 0..EVENT_RING_ENTRIES {
            p.push(ev(0, t));
        }
        let mut out = Vec::new();
        assert_eq!(d.drain(&v, &mut out), EVENT_RING_ENTRIES);
        assert_eq!(d.stats.malformed_rings, 0);
    }

    #[test]
    fn write_too_far_ahead_or_backwards_resyncs_without_reading() {
        let v = view();
        let mut p = Producer {
            v: &v,
            cpu: 0,
            write: 0,
        };
        let mut d = EventDrain::new(1, usize::MAX);
        let mut out = Vec::new();
        p.set_write(EVENT_RING_ENTRIES + 1);
        assert_eq!(d.drain(&v, &mut out), 0);
        assert!(out.is_empty());
        assert_eq!(d.stats.malformed_rings, 1);
        assert_eq!(p.read(), EVENT_RING_ENTRIES + 1, "resynchronised");
        p.push(ev(0, 7));
        assert_eq!(d.drain(&v, &mut out), 1, "and goes on from there");
        assert_eq!(out[0].tsc, 7);
        p.set_write(3);
        assert_eq!(d.drain(&v, &mut out), 0);
        assert_eq!(d.stats.malformed_rings, 2, "write went backwards");
        p.set_write(u64::MAX);
        d.drain(&v, &mut out);
        assert_eq!(d.stats.malformed_rings, 3);
    }

    #[test]
    fn garbage_entries_are_counted_and_skipped() {
        let v = view();
        let mut p = Producer {
            v: &v,
            cpu: 0,
            write: 0,
        };
        let mut d = EventDrain::new(2, usize::MAX);
        p.push(ev(0, 1));
        p.push(Event {
            kind: 999,
            ..ev(0, 2)
        });
        p.push(ev(7, 3)); // CPU 7 of a 2-CPU guest
        p.push(Event {
            kind: EV_WAKEUP,
            ..ev(1, 4)
        });
        let mut out = Vec::new();
        assert_eq!(d.drain(&v, &mut out), 4);
        assert_eq!(out.iter().map(|e| e.tsc).collect::<Vec<_>>(), [1, 4]);
        assert_eq!(d.stats.bad_events, 2);
    }

    #[test]
    fn the_host_cap_drops_and_counts_but_frees_the_ring() {
        let v = view();
        let mut p = Producer {
            v: &v,
            cpu: 0,
            write: 0,
        };
        let mut d = EventDrain::new(1, 3);
        for t in 0..5 {
            p.push(Event {
                kind: EV_SPAWN,
                ..ev(0, t)
            });
        }
        let mut out = Vec::new();
        d.drain(&v, &mut out);
        assert_eq!(out.len(), 3);
        assert_eq!((d.stats.events, d.stats.dropped), (3, 2));
        assert_eq!(p.read(), 5);
    }

    #[test]
    fn guest_losses_are_summed_over_cpus() {
        let v = view();
        let d = EventDrain::new(2, 1);
        for (cpu, lost) in [(0, 3u64), (1, 4)] {
            let hdr = kstate_off(event_ring_addr(cpu));
            v.store_u64(hdr + EVENT_RING_LOST_OFFSET, lost, Ordering::Release);
        }
        assert_eq!(d.guest_lost(&v), 7);
        for (cpu, ns) in [(0, 1_000u64), (1, u64::MAX)] {
            let hdr = kstate_off(event_ring_addr(cpu));
            v.store_u64(hdr + EVENT_RING_WAITED_OFFSET, ns, Ordering::Release);
        }
        assert_eq!(
            d.guest_waited(&v),
            u64::MAX,
            "guest words saturate, never wrap"
        );
    }

    #[test]
    fn the_busiest_ring_sets_the_next_drain() {
        let v = view();
        let mut d = EventDrain::new(2, 1 << 20);
        let mut out = Vec::new();
        for (cpu, n) in [(0u32, 3u64), (1, 9)] {
            let mut p = Producer {
                v: &v,
                cpu,
                write: 0,
            };
            for t in 0..n {
                p.push(ev(cpu as u16, t));
            }
        }
        d.drain(&v, &mut out);
        assert_eq!(d.fullest, 9);
        d.drain(&v, &mut out);
        assert_eq!(d.fullest, 0, "nothing new");
    }
}
