use super::*;
use crate::{StallDetector, find_stalls};

const MS: u64 = 1_000_000; // ticks at NS khz

#[test]
fn stall_reported_after_the_threshold_not_before() {
    let mut d = StallDetector::new(2, 100 * MS, NS);
    // CPU 1's clock freezes at 5 ms; samples every 10 ms from 10 ms.
    assert_eq!(d.observe(&sample(10 * MS, 1, 4, 0, 5 * MS)), None);
    for t in (20..=110).step_by(10) {
        // At 110 ms it has been frozen exactly 100 ms: not longer.
        assert_eq!(
            d.observe(&sample(t * MS, 1, 4, 0, 5 * MS)),
            None,
            "at {t} ms"
        );
    }
    assert!(!d.is_stalled(1));
    assert_eq!(
        d.observe(&sample(120 * MS, 1, 4, 0, 5 * MS)),
        Some((1, 4, 110 * MS))
    );
    assert!(d.is_stalled(1));
    assert_eq!(d.stalled_ns(1), 110 * MS);
    // Reported once per episode.
    assert_eq!(d.observe(&sample(130 * MS, 1, 4, 0, 5 * MS)), None);
    assert_eq!(d.stalled_ns(1), 120 * MS);
    // The clock moves: re-armed, and a second freeze is reported again.
    assert_eq!(d.observe(&sample(140 * MS, 1, 4, 0, 139 * MS)), None);
    assert!(!d.is_stalled(1));
    assert_eq!(d.stalled_ns(1), 0);
    let mut hit = None;
    for t in (150..=300).step_by(10) {
        hit = hit.or(d.observe(&sample(t * MS, 1, 7, 0, 139 * MS)));
    }
    assert_eq!(hit, Some((1, 7, 110 * MS)));
    // CPU 0 was never sampled: not stalled.
    assert!(!d.is_stalled(0));
}

#[test]
fn an_advancing_clock_is_never_stalled() {
    let mut d = StallDetector::new(2, 10 * MS, NS);
    for i in 1..=10_000u64 {
        let t = i * MS;
        // CPU 0 ticks every sample; CPU 1 is idle but still ticks, slowly.
        assert_eq!(d.observe(&sample(t, 0, 1, 3, t - 1)), None);
        assert_eq!(
            d.observe(&sample(t, 1, 0, 0, (t / (5 * MS)) * 5 * MS)),
            None
        );
    }
    assert!(!d.is_stalled(0) && !d.is_stalled(1));
}

#[test]
fn cpus_are_watched_independently() {
    let mut d = StallDetector::new(2, 50 * MS, NS);
    let mut found = Vec::new();
    for i in 0..=100u64 {
        let t = i * MS;
        found.extend(d.observe(&sample(t, 0, 1, 0, t)));
        found.extend(d.observe(&sample(t, 1, 2, 0, 0)));
    }
    assert_eq!(found, [(1, 2, 51 * MS)]);
}

#[test]
fn odd_samples_do_not_panic_or_fake_a_stall() {
    let mut d = StallDetector::new(1, 10 * MS, NS);
    // Unknown CPU: ignored.
    assert_eq!(d.observe(&sample(5, 9, 1, 0, 0)), None);
    // Sample time going backwards restarts the watch instead of
    // underflowing into a huge stall.
    assert_eq!(d.observe(&sample(100 * MS, 0, 1, 0, 7)), None);
    assert_eq!(d.observe(&sample(MS, 0, 1, 0, 7)), None);
    assert_eq!(d.observe(&sample(5 * MS, 0, 1, 0, 7)), None);
    assert_eq!(
        d.observe(&sample(12 * MS, 0, 1, 0, 7)),
        Some((0, 1, 11 * MS))
    );
    // No TSC rate: no durations, never a stall.
    let mut d = StallDetector::new(1, 10, 0);
    assert_eq!(d.observe(&sample(0, 0, 1, 0, 7)), None);
    assert_eq!(d.observe(&sample(u64::MAX, 0, 1, 0, 7)), None);
}

#[test]
fn find_stalls_reports_whole_episodes() {
    let mut samples = Vec::new();
    for i in 0..=100u64 {
        let t = i * 10 * MS;
        // CPU 0: frozen from 100 ms to 400 ms (samples at 100..=400 see
        // the same clock; at 410 it moves), then fine.
        let c0 = if (100..=400).contains(&(i * 10)) {
            100 * MS
        } else {
            t
        };
        samples.push(sample(t, 0, 4, 0, c0));
        // CPU 1: frozen from 700 ms to the end.
        let c1 = if i * 10 >= 700 { 700 * MS } else { t };
        samples.push(sample(t, 1, 6, 0, c1));
    }
    samples.reverse(); // any order
    let s = find_stalls(2, 100 * MS, NS, &samples);
    assert_eq!(s.len(), 2);
    assert_eq!((s[0].cpu, s[0].pid, s[0].stalled_ns), (0, 4, 300 * MS));
    assert_eq!((s[1].cpu, s[1].pid, s[1].stalled_ns), (1, 6, 300 * MS));
    assert!(s.iter().all(|s| s.rip.is_none() && s.function.is_none()));
    // Below the threshold: nothing.
    assert!(find_stalls(2, 300 * MS, NS, &samples).is_empty());
}
