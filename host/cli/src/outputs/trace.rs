//! What the pictures are drawn from: who ran on which CPU when, and every
//! wake-up's latency, replayed from the guest's event rings (the same
//! exact events the verdict is computed from, not the samples).

use abi::kstate::{EV_EXIT, EV_SWITCH, EV_WAKEUP, Event};
use analysis::ticks_to_ns;
use std::collections::HashMap;

/// `pid` ran on `cpu` from `start_ns` to `end_ns` (ns since the first event).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub cpu: u32,
    pub pid: u32,
    pub start_ns: u64,
    pub end_ns: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trace {
    pub cpus: u32,
    /// From the first event to the last.
    pub span_ns: u64,
    pub segments: Vec<Segment>,
    /// Wake-up to switch-in, every task, in event order.
    pub wake_latencies_ns: Vec<u64>,
}

impl Trace {
    /// Replay `events` (any order: the rings are per CPU) of a machine
    /// with `cpus` CPUs. Events naming a CPU beyond `cpus` are ignored
    /// (the guest is not trusted); an unknown clock rate gives an empty
    /// trace rather than made-up times.
    pub fn from_events(events: &[Event], cpus: u32, tsc_khz: u64) -> Trace {
        let mut trace = Trace {
            cpus,
            ..Default::default()
        };
        if tsc_khz == 0 || events.is_empty() {
            return trace;
        }
        let mut order: Vec<&Event> = events.iter().collect();
        order.sort_by_key(|e| e.tsc);
        let base = order[0].tsc;
        let last = order[order.len() - 1].tsc;
        let ns = |tsc: u64| ticks_to_ns(tsc.saturating_sub(base), tsc_khz);
        trace.span_ns = ns(last);

        // Per CPU: who is running since when (None before its first switch).
        let mut running: Vec<Option<(u32, u64)>> = vec![None; cpus as usize];
        let mut woken: HashMap<u32, u64> = HashMap::new();
        for e in order {
            let t = ns(e.tsc);
            match e.kind {
                EV_SWITCH => {
                    let Some(slot) = running.get_mut(usize::from(e.cpu)) else {
                        continue;
                    };
                    // Before a CPU's first switch its previous task (if
                    // any) has been running since the trace began.
                    let (prev, since) = slot.unwrap_or((e.arg, 0));
                    if prev != 0 && t > since {
                        trace.segments.push(Segment {
                            cpu: u32::from(e.cpu),
                            pid: prev,
                            start_ns: since,
                            end_ns: t,
                        });
                    }
                    *slot = Some((e.pid, t));
                    if e.pid != 0
                        && let Some(w) = woken.remove(&e.pid)
                    {
                        trace.wake_latencies_ns.push(t.saturating_sub(w));
                    }
                }
                EV_WAKEUP if e.pid != 0 => {
                    woken.entry(e.pid).or_insert(t);
                }
                EV_EXIT => {
                    woken.remove(&e.pid);
                }
                _ => {}
            }
        }
        for (cpu, slot) in running.iter().enumerate() {
            if let Some((pid, since)) = *slot
                && pid != 0
                && trace.span_ns > since
            {
                trace.segments.push(Segment {
                    cpu: cpu as u32,
                    pid,
                    start_ns: since,
                    end_ns: trace.span_ns,
                });
            }
        }
        trace
    }

    /// Distinct pids that ran, ascending.
    pub fn pids(&self) -> Vec<u32> {
        let mut p: Vec<u32> = self.segments.iter().map(|s| s.pid).collect();
        p.sort_unstable();
        p.dedup();
        p
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use abi::kstate::{PREV_BLOCKED, PREV_IDLE, PREV_PREEMPTED};

    /// 1 tick = 1 ns at this rate.
    pub const KHZ: u64 = 1_000_000;

    pub fn switch(tsc: u64, cpu: u16, next: u32, prev: u32, why: u32) -> Event {
        Event {
            tsc,
            kind: EV_SWITCH,
            cpu,
            pid: next,
            arg: prev,
            arg2: why,
            ..Default::default()
        }
    }

    pub fn wake(tsc: u64, pid: u32, cpu: u32) -> Event {
        Event {
            tsc,
            kind: EV_WAKEUP,
            pid,
            arg: cpu,
            ..Default::default()
        }
    }

    #[test]
    fn switches_become_segments_per_cpu() {
        // Out of order on purpose: two rings drained one after the other.
        let events = [
            switch(1_300, 1, 3, 0, PREV_IDLE),
            switch(1_000, 0, 2, 0, PREV_IDLE),
            switch(1_500, 0, 0, 2, PREV_BLOCKED),
            switch(2_000, 1, 0, 3, PREV_BLOCKED),
        ];
        let t = Trace::from_events(&events, 2, KHZ);
        assert_eq!(t.span_ns, 1_000);
        let mut segs = t.segments.clone();
        segs.sort_by_key(|s| (s.cpu, s.start_ns));
        assert_eq!(
            segs,
            [
                Segment {
                    cpu: 0,
                    pid: 2,
                    start_ns: 0,
                    end_ns: 500
                },
                Segment {
                    cpu: 1,
                    pid: 3,
                    start_ns: 300,
                    end_ns: 1_000
                },
            ]
        );
        assert_eq!(t.pids(), [2, 3]);
    }

    #[test]
    fn a_task_running_at_either_end_is_drawn_to_the_edge() {
        let events = [
            wake(0, 9, 1),
            switch(100, 0, 4, 5, PREV_PREEMPTED),
            switch(300, 0, 5, 4, PREV_PREEMPTED),
            wake(400, 9, 1),
        ];
        let t = Trace::from_events(&events, 1, KHZ);
        let got: Vec<(u32, u64, u64)> = t
            .segments
            .iter()
            .map(|s| (s.pid, s.start_ns, s.end_ns))
            .collect();
        assert_eq!(got, [(5, 0, 100), (4, 100, 300), (5, 300, 400)]);
    }

    #[test]
    fn wake_latency_is_wake_up_to_switch_in() {
        let events = [
            wake(100, 7, 0),
            wake(150, 7, 0), // a second wake-up before it ran: still from 100
            switch(400, 0, 7, 0, PREV_IDLE),
            wake(1_000, 8, 1),
            switch(1_010, 1, 8, 0, PREV_IDLE),
            wake(2_000, 9, 0), // never ran
        ];
        let t = Trace::from_events(&events, 2, KHZ);
        assert_eq!(t.wake_latencies_ns, [300, 10]);
    }

    #[test]
    fn hostile_events_are_ignored_not_trusted() {
        let events = [
            switch(100, 40, 7, 0, PREV_IDLE), // CPU out of range
            switch(50, 0, 7, 0, PREV_IDLE),
        ];
        let t = Trace::from_events(&events, 1, KHZ);
        assert_eq!(t.segments.len(), 1);
        assert_eq!(t.segments[0].cpu, 0);
        assert_eq!(Trace::from_events(&events, 1, 0).segments.len(), 0);
        assert_eq!(Trace::from_events(&[], 4, KHZ).span_ns, 0);
    }
}
