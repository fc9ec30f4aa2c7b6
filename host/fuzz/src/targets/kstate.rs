//! Target `kstate`: the kernel-state area the monitor reads out of guest
//! RAM while the vCPUs run (`vmm::monitor`): the header, the per-CPU and
//! per-task records under their seqlocks, and the per-CPU event rings.
//!
//! The input plays the guest on a synthetic view
//! (`KstateView::synthetic`) whose size it picks, so records and rings may
//! lie partly or wholly outside it. It writes records raw or plausible
//! (even `seq`, a live clock, a runnable task), pushes events, publishes
//! ring positions that are right, behind, or far ahead, and drives a
//! [`ManualMonitor`] (the monitor thread's code, at host times the input
//! chooses). Whatever the monitor collects then goes through the lab's
//! judge and the timeline trace, as after a real run.

use crate::input::Input;
use abi::kstate::{
    CPU_RECORD_SIZE, CpuRecord, EV_EXIT, EV_SPAWN, EV_SWITCH, EVENT_RING_ENTRIES,
    EVENT_RING_HEADER_SIZE, EVENT_RING_STRIDE, EVENT_SIZE, Event, KSTATE_EVENTS_OFFSET,
    KSTATE_MAGIC, KSTATE_VERSION, TASK_RUNNABLE, TaskRecord, cpu_record_addr, event_ring_addr,
    task_record_addr,
};
use analysis::TaskMeta;

/// A CPU record as words, for writing it into the image.
const CPU_WORDS: usize = (CPU_RECORD_SIZE / 8) as usize;
use lab::judge::{JudgeInput, judge};
use lab::outputs::trace::Trace;
use lab::settings::judge::JudgeSettings;
use std::sync::atomic::Ordering;
use vmm::monitor::view::{KstateView, kstate_off};
use vmm::monitor::{MAX_EVENTS, ManualMonitor, MonitorConfig};
use vmm::vm::run::EarlyEnd;
use zerocopy::transmute;

/// Most operations one input plays, so a long input stays fast.
const MAX_STEPS: usize = 512;
/// CPUs the guest may claim; rings exist in the view for at most
/// [`MAX_RINGS`] of them (a full view is 8 MiB: too slow to clear per run).
const MAX_CPUS: u32 = 8;
const MAX_RINGS: u64 = 2;

pub fn kstate(data: &[u8]) {
    let mut input = Input::new(data);
    let cpus = u32::from(input.u8()) % (MAX_CPUS + 1);
    let rings = u64::from(input.u8()) % (MAX_RINGS + 1);
    let cut = u64::from(input.u16());
    let flags = input.u8();
    let full = KSTATE_EVENTS_OFFSET + rings * EVENT_RING_STRIDE;
    let len = if flags & 1 != 0 {
        full.saturating_sub(cut * 8)
    } else {
        full
    };
    let cfg = MonitorConfig {
        cpus,
        sample_hz: if flags & 2 != 0 { 1000 } else { 0 },
        tsc_khz: u64::from(input.u32()),
        stall_threshold_ns: u64::from(input.u32()),
        max_wait_ns: (flags & 4 != 0).then(|| u64::from(input.u32())),
        // Always watched: the input writes the callback words as it likes.
        policy_budget_ns: Some(abi::policy::POLICY_CALLBACK_BUDGET_NS),
    };
    let view = KstateView::synthetic(len);
    if flags & 8 == 0 {
        // Published as the core does at boot (else the input must).
        view.store_u32(0, KSTATE_MAGIC, Ordering::Release);
        view.store_u32(4, KSTATE_VERSION, Ordering::Release);
    }
    let mut m = ManualMonitor::new(view, cfg.clone());
    let mut host_tsc = 1u64 << 32;
    let mut write = [0u64; MAX_CPUS as usize + 1];
    let mut steps = 0;
    while !input.is_empty() && steps < MAX_STEPS {
        steps += 1;
        let v = m.view();
        match input.u8() % 9 {
            0 => {
                let off = u64::from(input.u8() % 8) * 8;
                v.store_u64(off, input.u64(), Ordering::Release);
            }
            1 => {
                // Any CPU number, so records past the table are tried too.
                let cpu = u32::from(input.u8());
                let w: [u64; CPU_WORDS] = std::array::from_fn(|_| input.u64());
                v.write_words(kstate_off(cpu_record_addr(cpu)), &w);
            }
            2 => {
                let r = CpuRecord {
                    seq: u32::from(input.u8()) & !1,
                    cpu: u32::from(input.u8()) % (MAX_CPUS + 1),
                    current_pid: u32::from(input.u8()),
                    rq_len: u32::from(input.u8()),
                    clock_tsc: host_tsc.wrapping_sub(u64::from(input.u16())),
                    idle: u32::from(input.bool()),
                    online: u32::from(input.u8() != 0),
                    ..Default::default()
                };
                let w: [u64; CPU_WORDS] = transmute!(r);
                v.write_words(kstate_off(cpu_record_addr(r.cpu)), &w);
            }
            3 => {
                let slot = u32::from(input.u16() % 300);
                let w: [u64; 16] = std::array::from_fn(|_| input.u64());
                v.write_words(kstate_off(task_record_addr(slot)), &w);
            }
            4 => {
                let slot = u32::from(input.u8());
                let t = TaskRecord {
                    seq: u32::from(input.u8()) & !1,
                    pid: u32::from(input.u8()),
                    state: u32::from(input.u8() % 4).max(TASK_RUNNABLE),
                    cpu: u32::from(input.u8()),
                    runnable_since_tsc: host_tsc.wrapping_sub(u64::from(input.u32())),
                    ..Default::default()
                };
                let w: [u64; 16] = transmute!(t);
                v.write_words(kstate_off(task_record_addr(slot)), &w);
            }
            5 => {
                let cpu = usize::from(input.u8()) % write.len();
                let e = Event {
                    tsc: host_tsc.wrapping_add(u64::from(input.u16())),
                    kind: u16::from(input.u8() % 7),
                    cpu: u16::from(input.u8()) % (MAX_CPUS as u16 + 1),
                    pid: u32::from(input.u8()),
                    arg: u32::from(input.u8()),
                    arg2: u32::from(input.u8()),
                    steal_ns: u64::from(input.u16()),
                };
                let hdr = kstate_off(event_ring_addr(cpu as u32));
                let slot = write[cpu] % EVENT_RING_ENTRIES;
                let w: [u64; 4] = transmute!(e);
                v.write_words(hdr + EVENT_RING_HEADER_SIZE + slot * EVENT_SIZE, &w);
                write[cpu] = write[cpu].wrapping_add(1);
                v.store_u64(hdr, write[cpu], Ordering::Release);
            }
            6 => {
                let cpu = usize::from(input.u8()) % write.len();
                write[cpu] = match input.u8() % 3 {
                    0 => input.u64(),
                    1 => write[cpu].wrapping_add(u64::from(input.u16())),
                    _ => write[cpu].wrapping_sub(u64::from(input.u16())),
                };
                let hdr = kstate_off(event_ring_addr(cpu as u32));
                v.store_u64(hdr, write[cpu], Ordering::Release);
            }
            7 => {
                let off = u64::from(input.u32()) * 8;
                v.store_u64(off, input.u64(), Ordering::Relaxed);
            }
            _ => {
                host_tsc = host_tsc.wrapping_add(u64::from(input.u32()) << 8);
                let scan = input.bool();
                m.poll(host_tsc, scan);
            }
        }
    }
    let alarm = m.alarm();
    let d = m.finish(host_tsc);

    // What the monitor kept is bounded, counted and plausible.
    assert!(d.events.len() <= MAX_EVENTS);
    assert_eq!(d.stats.events, d.events.len() as u64);
    assert_eq!(d.stats.samples, d.samples.len() as u64);
    assert_eq!(d.alarm, alarm);
    for e in &d.events {
        assert!((EV_SWITCH..=EV_EXIT).contains(&e.kind), "{e:?}");
        assert!(u32::from(e.cpu) < cpus, "{e:?}");
    }
    assert!(d.samples.iter().all(|s| s.cpu < cpus));
    assert!(d.final_cpus.len() <= cpus as usize);

    // Then what a run does with it: the trace for the pictures, and the
    // judge over the tasks the events spawned.
    let replay = analysis::Replay::from_events(&d.events, cpus);
    let _ = Trace::from_replay(&replay, cfg.tsc_khz);
    let mut judged: Vec<TaskMeta> = d
        .events
        .iter()
        .filter(|e| e.kind == EV_SPAWN)
        .map(|e| TaskMeta {
            pid: e.pid,
            weight: e.arg,
            affinity_cpus: 0,
        })
        .collect();
    judged.dedup_by_key(|t| t.pid);
    judged.truncate(16);
    let settings = JudgeSettings {
        sample_hz: cfg.sample_hz,
        stall_threshold_ns: cfg.stall_threshold_ns,
        max_wait_ns: cfg.max_wait_ns,
        max_fairness_error: Some(0.1),
        max_wake_p99_ns: Some(1_000_000),
        extra: Vec::new(),
        shares: Some(lab::settings::policy::Shares::Weighted),
        wait_judged: true,
        unjudged: Vec::new(),
    };
    let ended_early = d.alarm.map(|a| EarlyEnd {
        alarm: a,
        message: a.message(None),
        stall: None,
    });
    let j = judge(
        d,
        &replay,
        &JudgeInput {
            cpus,
            topology: None,
            // A 1 ms slice on a 1 kHz tick, so the noise allowance is
            // exercised too.
            quantum_ns: 2_000_000,
            tsc_khz: cfg.tsc_khz,
            settings: &settings,
            judged: &judged,
            op_checks: &[],
            finished: flags & 16 != 0,
            ended_early: ended_early.as_ref(),
            interrupted: None,
        },
    );
    let _ = format!("{:?} {:?}", j.verdict, j.metrics);
}
