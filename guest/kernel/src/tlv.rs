//! The TLV writer: frames into this vCPU's ring in guest memory, which
//! the host drains while the vCPU runs. A full ring makes the writer wait
//! for the host; nothing is ever dropped. Preemption is off while a frame
//! is written, so each ring has one writer at a time.

use abi::memmap::{TLV_RING_DATA_SIZE, TLV_RING_HEADER_SIZE, tlv_ring_base};
use abi::tlv::{FRAME_HEADER_SIZE, FrameHeader, MAX_PAYLOAD, MSG_PROTOBUF, RingHeader};
use core::sync::atomic::{AtomicU64, Ordering};
use guest_protocol::MessageEncode;
use zerocopy::IntoBytes;

fn ring(cpu: u32) -> *mut RingHeader {
    tlv_ring_base(cpu) as *mut RingHeader
}

pub fn init(cpu: u32) {
    // SAFETY: the ring region of this CPU is fixed, identity-mapped and
    // large enough for the header (asserted in shared).
    unsafe { core::ptr::write_volatile(ring(cpu), RingHeader::new(TLV_RING_DATA_SIZE as u32)) };
}

fn atomic(p: *mut u64) -> &'static AtomicU64 {
    // SAFETY: p points at an 8-byte aligned u64 in a ring header that
    // lives for the whole run; the other side only accesses it atomically.
    unsafe { &*(p as *const AtomicU64) }
}

/// Send one frame. Errors only if the payload is too long.
pub fn send(msg_type: u32, payload: &[u8]) -> Result<(), i64> {
    if payload.len() > MAX_PAYLOAD {
        return Err(abi::calltable::ERR_TOO_LONG);
    }
    let header = FrameHeader::new(msg_type, payload, crc32fast::hash(payload));
    // The ring is this CPU's, single producer: no other task may run here
    // until the frame is published.
    crate::percpu::preempt_disable();
    let cpu = crate::percpu::cpu_id();
    let r = ring(cpu);
    // SAFETY: r is this CPU's ring header (see init); only this CPU writes
    // write_pos and full_waits, and the host only writes read_pos.
    unsafe {
        let write_pos = atomic(core::ptr::addr_of_mut!((*r).write_pos));
        let read_pos = atomic(core::ptr::addr_of_mut!((*r).read_pos));
        let w = write_pos.load(Ordering::Relaxed);
        let total = (FRAME_HEADER_SIZE + payload.len()) as u64;
        let mut waited = false;
        while (w + total).saturating_sub(read_pos.load(Ordering::Acquire)) > TLV_RING_DATA_SIZE {
            if !waited {
                waited = true;
                let fw = core::ptr::addr_of_mut!((*r).full_waits);
                core::ptr::write_volatile(fw, core::ptr::read_volatile(fw) + 1);
            }
            core::hint::spin_loop();
        }
        let data = (tlv_ring_base(cpu) + TLV_RING_HEADER_SIZE) as *mut u8;
        copy_in(data, w, header.as_bytes());
        copy_in(data, w + FRAME_HEADER_SIZE as u64, payload);
        write_pos.store(w + total, Ordering::Release);
    }
    crate::percpu::preempt_enable();
    Ok(())
}

/// Copy `bytes` into the ring data at stream position `pos`, wrapping.
///
/// # Safety
/// `data` is a ring data area of TLV_RING_DATA_SIZE bytes and the range
/// being written is free (checked against read_pos by the caller).
unsafe fn copy_in(data: *mut u8, pos: u64, bytes: &[u8]) {
    let size = TLV_RING_DATA_SIZE as usize;
    let start = (pos % TLV_RING_DATA_SIZE) as usize;
    let first = bytes.len().min(size - start);
    // SAFETY: start + first <= size and bytes.len() - first < size, so
    // both copies stay inside the data area; the caller made them free.
    unsafe {
        core::ptr::copy_nonoverlapping(bytes.as_ptr(), data.add(start), first);
        core::ptr::copy_nonoverlapping(bytes.as_ptr().add(first), data, bytes.len() - first);
    }
}

/// Encode a message the core itself sends (small ones only: a Log, an
/// Error, a Complete) as GuestMessage field `field`, and send it. Never
/// through a whole `GuestMessage`, whose largest variant would put
/// kilobytes on the small kernel stacks of every caller.
pub fn send_part<M: MessageEncode>(field: u32, part: &M) {
    let mut buf = heapless::Vec::<u8, 512>::new();
    if guest_protocol::encode_part(field, part, &mut buf).is_some() {
        let _ = send(MSG_PROTOBUF, &buf);
    }
}

/// The longest valid UTF-8 prefix of `bytes` that fits in N bytes.
pub fn text<const N: usize>(bytes: &[u8]) -> heapless::String<N> {
    let mut end = bytes.len().min(N);
    let s = loop {
        match core::str::from_utf8(&bytes[..end]) {
            Ok(s) => break s,
            Err(e) => end = e.valid_up_to(),
        }
    };
    let mut out = heapless::String::new();
    let _ = out.push_str(s);
    out
}

pub fn log_bytes(level: u32, bytes: &[u8]) {
    let log = guest_protocol::Log {
        level,
        text: text(bytes),
    };
    send_part(guest_protocol::FIELD_LOG, &log);
}

pub fn log(level: u32, s: &str) {
    log_bytes(level, s.as_bytes());
}

pub fn error(code: u32, bytes: &[u8]) {
    let e = guest_protocol::Error {
        code,
        text: text(bytes),
    };
    send_part(guest_protocol::FIELD_ERROR, &e);
}
