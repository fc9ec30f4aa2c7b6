//! What the pictures are drawn from: who ran on which CPU when, and every
//! wake-up's latency, in nanoseconds since the first event. A view of the
//! same [`Replay`] the verdict is measured from (the guest's exact events,
//! not the samples), made when a run keeps its pictures.

use analysis::{Replay, ticks_to_ns};

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
    /// From the first event to the last (or the window's length).
    pub span_ns: u64,
    /// Where the drawn span starts, ns since the first event: 0, or the
    /// start of `--timeline-window` (segments then count from it).
    pub origin_ns: u64,
    pub segments: Vec<Segment>,
    /// Wake-up to switch-in, every task, in event order.
    pub wake_latencies_ns: Vec<u64>,
    /// The machine's shape when it is not one flat LLC: the timeline
    /// groups its rows by LLC.
    pub topology: Option<abi::topology::Topology>,
}

impl Trace {
    /// The pictures' view of `replay`: its CPUs' segments with a task
    /// (idle is drawn as nothing) that last at least a nanosecond, a task
    /// running at either end of the trace drawn to the edge, and every
    /// wake-up -> switch-in latency (see [`analysis::replay::WakeLatency`]:
    /// the pictures count from the first wake-up). An unknown clock rate
    /// gives an empty trace rather than made-up times.
    pub fn from_replay(replay: &Replay, tsc_khz: u64) -> Trace {
        let mut trace = Trace {
            cpus: replay.cpus,
            ..Default::default()
        };
        let Some((base, last)) = replay.span.filter(|_| tsc_khz != 0) else {
            return trace;
        };
        let ns = |tsc: u64| ticks_to_ns(tsc.saturating_sub(base), tsc_khz);
        trace.span_ns = ns(last);
        trace.segments = replay
            .segments
            .iter()
            .filter(|s| s.pid != 0)
            .map(|s| Segment {
                cpu: s.cpu,
                pid: s.pid,
                start_ns: s.start.map_or(0, ns),
                end_ns: s.end.map_or(trace.span_ns, ns),
            })
            .filter(|s| s.end_ns > s.start_ns)
            .collect();
        // Both ends in ns since the first event, then the difference: how
        // the pictures have always rounded.
        trace.wake_latencies_ns = replay
            .wake_latencies
            .iter()
            .map(|l| ns(l.switched_in).saturating_sub(ns(l.woken)))
            .collect();
        trace
    }

    /// Replay `events` of a machine with `cpus` CPUs and take the view:
    /// the tests' shorthand.
    #[cfg(test)]
    pub fn from_events(events: &[analysis::Event], cpus: u32, tsc_khz: u64) -> Trace {
        Trace::from_replay(&Replay::from_events(events, cpus), tsc_khz)
    }

    /// The part of the trace in `[start_ns, end_ns)` (ns since the first
    /// event; `--timeline-window`), segments clipped to it and counted
    /// from its start, so a few slices fill the picture. The wake-up
    /// latencies stay the whole run's (the histogram is not windowed).
    /// A window past the run's end is empty.
    pub fn window(&self, start_ns: u64, end_ns: u64) -> Trace {
        let end = end_ns.min(self.span_ns);
        let start = start_ns.min(end);
        Trace {
            cpus: self.cpus,
            span_ns: end - start,
            origin_ns: self.origin_ns + start,
            segments: self
                .segments
                .iter()
                .filter(|s| s.start_ns < end && s.end_ns > start)
                .map(|s| Segment {
                    start_ns: s.start_ns.max(start) - start,
                    end_ns: s.end_ns.min(end) - start,
                    ..*s
                })
                .collect(),
            wake_latencies_ns: self.wake_latencies_ns.clone(),
            topology: self.topology,
        }
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
    use abi::kstate::{EV_SWITCH, EV_WAKEUP, Event, PREV_BLOCKED, PREV_IDLE, PREV_PREEMPTED};

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

    #[test]
    fn a_window_clips_and_shifts_the_segments() {
        let t = Trace::from_events(
            &[
                switch(0, 0, 2, 0, PREV_IDLE),
                switch(100, 0, 3, 2, PREV_PREEMPTED),
                switch(300, 0, 0, 3, PREV_BLOCKED),
                switch(400, 1, 4, 0, PREV_IDLE),
            ],
            2,
            KHZ,
        );
        let w = t.window(50, 350);
        assert_eq!((w.span_ns, w.origin_ns), (300, 50));
        let segs: Vec<(u32, u64, u64)> = w
            .segments
            .iter()
            .map(|s| (s.pid, s.start_ns, s.end_ns))
            .collect();
        assert_eq!(segs, [(2, 0, 50), (3, 50, 250)]);
        let past = t.window(1_000, 2_000);
        assert_eq!((past.span_ns, past.segments.len()), (0, 0));
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
