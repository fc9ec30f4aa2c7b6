//! Consistent snapshots of the guest's per-CPU and per-task records. Each
//! record starts with a `seq` word the writer makes odd while it updates
//! the record and even again after, so a reader that saw the same even
//! value before and after copying has a snapshot no write tore.
//!
//! The guest is not trusted to ever make `seq` even again (a CPU can stall
//! mid-update), so the reader gives up after a bounded number of tries and
//! says so instead of spinning forever.

use super::view::{KstateView, kstate_off};
use abi::kstate::{
    CPU_RECORD_SIZE, CpuRecord, EVENT_SIZE, Event, TASK_RECORD_SIZE, TaskRecord, cpu_record_addr,
    task_record_addr,
};
use std::sync::atomic::{Ordering, fence};
use zerocopy::transmute;
#[cfg(test)]
use zerocopy::{Immutable, IntoBytes};

/// Tries before a read is reported torn. A guest update is a few dozen
/// native instructions, so a handful of retries covers any honest race.
pub const SEQ_RETRIES: u32 = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqError {
    /// `seq` stayed odd or kept changing for SEQ_RETRIES tries.
    Torn,
    /// The record lies outside the view.
    OutOfRange,
}

/// Copy W words at `off` under the seqlock whose `seq` is the first u32.
pub fn read_words<const W: usize>(v: &KstateView, off: u64) -> Result<[u64; W], SeqError> {
    let mut words = [0u64; W];
    for _ in 0..SEQ_RETRIES {
        let before = v
            .load_u32(off, Ordering::Acquire)
            .ok_or(SeqError::OutOfRange)?;
        if before & 1 != 0 {
            std::hint::spin_loop();
            continue;
        }
        if !v.copy_words(off, &mut words) {
            return Err(SeqError::OutOfRange);
        }
        // Order the copy before the second read of seq (the reader side of
        // the classic seqlock: acquire fence, then a relaxed re-read).
        fence(Ordering::Acquire);
        let after = v
            .load_u32(off, Ordering::Relaxed)
            .ok_or(SeqError::OutOfRange)?;
        if after == before {
            return Ok(words);
        }
        std::hint::spin_loop();
    }
    Err(SeqError::Torn)
}

pub const CPU_WORDS: usize = (CPU_RECORD_SIZE / 8) as usize;
const TASK_WORDS: usize = (TASK_RECORD_SIZE / 8) as usize;
const EVENT_WORDS: usize = (EVENT_SIZE / 8) as usize;
// `transmute!` below also checks these sizes, at compile time.
const _: () = {
    assert!(size_of::<CpuRecord>() == CPU_WORDS * 8);
    assert!(size_of::<TaskRecord>() == TASK_WORDS * 8);
    assert!(size_of::<Event>() == EVENT_WORDS * 8);
};

pub fn cpu_record(v: &KstateView, cpu: u32) -> Result<CpuRecord, SeqError> {
    read_words::<CPU_WORDS>(v, kstate_off(cpu_record_addr(cpu))).map(|w| transmute!(w))
}

pub fn task_record(v: &KstateView, slot: u32) -> Result<TaskRecord, SeqError> {
    read_words::<TASK_WORDS>(v, kstate_off(task_record_addr(slot))).map(|w| transmute!(w))
}

/// One event-ring entry (no seqlock: the ring protocol orders it).
pub fn event_at(v: &KstateView, off: u64) -> Option<Event> {
    let mut w = [0u64; EVENT_WORDS];
    v.copy_words(off, &mut w).then(|| transmute!(w))
}

/// Words of a record, for tests that build synthetic guest memory.
#[cfg(test)]
pub fn to_words<T: IntoBytes + Immutable, const W: usize>(r: &T) -> [u64; W] {
    let mut w = [0u64; W];
    w.as_mut_bytes().copy_from_slice(r.as_bytes());
    w
}

#[cfg(test)]
mod tests {
    use super::*;
    use abi::kstate::KSTATE_END;
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;

    fn view() -> KstateView {
        KstateView::synthetic(KSTATE_END)
    }

    fn put_cpu(v: &KstateView, r: &CpuRecord) {
        let w: [u64; CPU_WORDS] = to_words(r);
        assert!(v.write_words(kstate_off(cpu_record_addr(r.cpu)), &w));
    }

    #[test]
    fn a_quiet_record_reads_back_exactly() {
        let v = view();
        let r = CpuRecord {
            seq: 4,
            cpu: 3,
            current_pid: 7,
            rq_len: 2,
            switches: 99,
            clock_tsc: 0x1234_5678_9abc,
            idle: 0,
            online: 1,
            ..Default::default()
        };
        put_cpu(&v, &r);
        assert_eq!(cpu_record(&v, 3), Ok(r));
        let t = TaskRecord {
            seq: 2,
            pid: 9,
            state: abi::kstate::TASK_RUNNABLE,
            runnable_since_tsc: 555,
            lag: -3,
            ..Default::default()
        };
        let w: [u64; TASK_WORDS] = to_words(&t);
        assert!(v.write_words(kstate_off(task_record_addr(17)), &w));
        assert_eq!(task_record(&v, 17), Ok(t));
    }

    #[test]
    fn a_record_stuck_mid_update_is_torn_not_a_hang() {
        let v = view();
        put_cpu(
            &v,
            &CpuRecord {
                seq: 5,
                cpu: 1,
                ..Default::default()
            },
        );
        assert_eq!(cpu_record(&v, 1), Err(SeqError::Torn));
    }

    #[test]
    fn out_of_range_records_are_refused() {
        let v = KstateView::synthetic(0x1000);
        assert_eq!(cpu_record(&v, 0), Err(SeqError::OutOfRange));
        assert_eq!(task_record(&view(), u32::MAX), Err(SeqError::OutOfRange));
    }

    /// A writer thread keeps every field of the record equal to `seq / 2`
    /// and updates it under the seqlock; every snapshot the reader accepts
    /// must be internally consistent.
    #[test]
    fn snapshots_are_never_torn_under_a_concurrent_writer() {
        let v = Arc::new(view());
        let off = kstate_off(cpu_record_addr(2));
        let stop = Arc::new(AtomicBool::new(false));
        let writer = {
            let (v, stop) = (v.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut seq = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    v.store_u32(off, seq + 1, Ordering::Relaxed);
                    fence(Ordering::Release);
                    let x = u64::from(seq / 2 + 1);
                    for i in 1..CPU_WORDS as u64 {
                        v.store_u64(off + 8 * i, x, Ordering::Relaxed);
                    }
                    seq += 2;
                    v.store_u32(off, seq, Ordering::Release);
                    // A real CPU record changes a few thousand times a
                    // second, not back to back.
                    for _ in 0..200 {
                        std::hint::spin_loop();
                    }
                }
            })
        };
        let (mut ok, mut torn) = (0u32, 0u32);
        let t = std::time::Instant::now();
        while ok < 20_000 && t.elapsed().as_secs() < 10 {
            match read_words::<CPU_WORDS>(&v, off) {
                Ok(w) => {
                    ok += 1;
                    assert!(w[1..].iter().all(|x| *x == w[1]), "torn snapshot {w:?}");
                    let seq = w[0] as u32;
                    assert_eq!(seq % 2, 0);
                    assert_eq!(w[1], u64::from(seq / 2), "fields match their seq");
                }
                Err(SeqError::Torn) => torn += 1,
                Err(e) => panic!("{e:?}"),
            }
        }
        stop.store(true, Ordering::Relaxed);
        writer.join().unwrap();
        assert!(ok >= 20_000, "reads keep succeeding ({ok} ok, {torn} torn)");
    }
}
