//! Target `tlv`: the guest -> host message rings (`vmm::tlv`). The first
//! input byte picks one of two ways in:
//!
//! - the [`Framer`] alone over a raw byte stream, pushed whole and pushed
//!   in pieces: both must give the same frames, counters and outcome (a
//!   frame split across polls reassembles);
//! - a [`RingReader`] over a ring in synthetic guest memory, with the
//!   input playing the guest: well-formed frames, raw bytes, `write_pos`
//!   published, jumped or set to anything, header words scribbled, guest
//!   memory that ends inside the ring, polls in between.
//!
//! The guest's CRC would stop AFL++ at every frame, so the harness
//! computes it where the input asks for a well-formed frame (and fixes it
//! up in a raw stream when the first byte says so); the reader still
//! checks every one.

use crate::input::Input;
use abi::memmap::{TLV_RING_DATA_SIZE, TLV_RING_HEADER_SIZE, TLV_RING_STRIDE, tlv_ring_base};
use abi::tlv::{
    FRAME_HEADER_SIZE, FrameHeader, MAX_PAYLOAD, MSG_PROTOBUF, MSG_TEXT, RING_MAGIC,
    RING_READ_POS_OFFSET, RING_WRITE_POS_OFFSET,
};
use std::sync::atomic::Ordering;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};
use vmm::tlv::{Frame, FrameCounters, Framer, RingReader};
use zerocopy::{FromBytes, IntoBytes};

/// Most operations one input plays, so a long input stays fast.
const MAX_STEPS: usize = 512;

pub fn tlv(data: &[u8]) {
    let mut input = Input::new(data);
    match input.u8() % 2 {
        0 => framer(&mut input),
        _ => ring(&mut input),
    }
}

/// Everything a framer produced, to compare two of them.
#[derive(Debug, PartialEq)]
struct Outcome {
    frames: Vec<Frame>,
    counters: FrameCounters,
    failed: bool,
    idle: bool,
}

fn framer(input: &mut Input<'_>) {
    let piece = usize::from(input.u8()) + 1;
    let fix_crcs = input.bool();
    let mut stream = input.rest().to_vec();
    if fix_crcs {
        fix_up_crcs(&mut stream);
    }
    let whole = {
        let mut f = Framer::default();
        let mut frames = Vec::new();
        let failed = f.push(&stream, &mut frames).is_err();
        Outcome {
            frames,
            counters: f.counters,
            failed,
            idle: f.is_idle(),
        }
    };
    // The same stream in pieces of 1, 2, ... `piece` bytes, cycling.
    let mut f = Framer::default();
    let mut frames = Vec::new();
    let mut failed = false;
    let mut rest = &stream[..];
    let mut n = 0;
    while !rest.is_empty() {
        n = n % piece + 1;
        let (now, later) = rest.split_at(n.min(rest.len()));
        rest = later;
        let before = frames.len();
        let r = f.push(now, &mut frames);
        if failed {
            assert!(r.is_err(), "a framer that lost sync stays failed");
            assert_eq!(frames.len(), before, "nothing comes out after an error");
        }
        failed |= r.is_err();
        assert_eq!(frames.len() as u64, f.counters.frames_ok);
    }
    let pieces = Outcome {
        frames,
        counters: f.counters,
        failed,
        idle: f.is_idle(),
    };
    assert_eq!(pieces, whole, "pushing in pieces changes nothing");
}

/// Give every frame in a raw stream the CRC its header should have, as
/// far as its headers make sense, so mutations get past the CRC check.
fn fix_up_crcs(stream: &mut [u8]) {
    let mut at = 0;
    while at + FRAME_HEADER_SIZE <= stream.len() {
        let Ok(mut h) = FrameHeader::read_from_bytes(&stream[at..at + FRAME_HEADER_SIZE]) else {
            return;
        };
        let len = h.length as usize;
        if len > MAX_PAYLOAD {
            return;
        }
        let body = at + FRAME_HEADER_SIZE;
        let end = (body + len).min(stream.len());
        h.crc32 = crc32fast::hash(&stream[body..end]);
        stream[at..body].copy_from_slice(h.as_bytes());
        at = body + len;
    }
}

/// Plays the guest's side of one ring in synthetic guest memory.
struct Guest {
    mem: GuestMemoryMmap,
    base: u64,
    write_pos: u64,
}

impl Guest {
    /// Write `bytes` at `write_pos` (wrapping), unpublished. Bytes that
    /// fall outside guest memory are lost, as for a guest with too little.
    fn write(&mut self, bytes: &[u8]) {
        let size = TLV_RING_DATA_SIZE;
        let data = self.base + TLV_RING_HEADER_SIZE;
        let mut rest = bytes;
        while !rest.is_empty() {
            let at = self.write_pos % size;
            let n = rest.len().min((size - at) as usize);
            let _ = self.mem.write_slice(&rest[..n], GuestAddress(data + at));
            self.write_pos = self.write_pos.wrapping_add(n as u64);
            rest = &rest[n..];
        }
    }

    fn frame(&mut self, msg_type: u32, payload: &[u8]) {
        let h = FrameHeader::new(msg_type, payload, crc32fast::hash(payload));
        self.write(h.as_bytes());
        self.write(payload);
    }

    fn header_word(&self, off: u64) -> Option<u64> {
        self.mem
            .load(GuestAddress(self.base + off), Ordering::Acquire)
            .ok()
    }

    fn set_header_word(&self, off: u64, v: u64) {
        let _ = self
            .mem
            .store(v, GuestAddress(self.base + off), Ordering::Release);
    }

    fn publish(&self) {
        self.set_header_word(RING_WRITE_POS_OFFSET, self.write_pos);
    }
}

fn ring(input: &mut Input<'_>) {
    let flags = input.u8();
    let base = tlv_ring_base(0);
    // Guest RAM that covers the whole ring, or ends inside it.
    let len = if flags & 1 != 0 {
        (usize::from(input.u16()) * 8) % TLV_RING_STRIDE as usize
    } else {
        TLV_RING_STRIDE as usize
    };
    let ranges = if len == 0 {
        vec![(GuestAddress(0), 0x1000)]
    } else {
        vec![(GuestAddress(base), len)]
    };
    let Ok(mem) = GuestMemoryMmap::<()>::from_ranges(&ranges) else {
        return;
    };
    let mut g = Guest {
        mem,
        base,
        write_pos: 0,
    };
    let magic = if flags & 2 != 0 {
        input.u32()
    } else {
        RING_MAGIC
    };
    let size = if flags & 4 != 0 {
        input.u32()
    } else {
        TLV_RING_DATA_SIZE as u32
    };
    g.set_header_word(0, u64::from(magic) | u64::from(size) << 32);

    let mut r = RingReader::new(base);
    let mut out = Vec::new();
    // The host's position as the guest sees it; unknown once a poll fails
    // (a failed reader may have consumed bytes it then refused).
    let mut host_pos = Some(0u64);
    let mut steps = 0;
    while !input.is_empty() && steps < MAX_STEPS {
        steps += 1;
        match input.u8() % 6 {
            0 => {
                let msg_type = match input.u8() % 4 {
                    0 => MSG_PROTOBUF,
                    1 => MSG_TEXT,
                    2 => abi::tag(b"ZZZZ"),
                    _ => input.u32(),
                };
                let len = usize::from(input.u16()) % (MAX_PAYLOAD + 64);
                let payload = input.bytes(len);
                g.frame(msg_type, payload);
            }
            1 => {
                let n = usize::from(input.u8());
                let raw = input.bytes(n);
                g.write(raw);
            }
            2 => g.publish(),
            3 => poll(&mut r, &g, &mut out, &mut host_pos),
            4 => {
                g.write_pos = if input.bool() {
                    input.u64()
                } else {
                    g.write_pos.wrapping_add(u64::from(input.u16()))
                };
                g.publish();
            }
            _ => {
                let off = u64::from(input.u8() % 24) * 8;
                let v = input.u64();
                g.set_header_word(off, v);
            }
        }
    }
    g.publish();
    poll(&mut r, &g, &mut out, &mut host_pos);
}

/// One host poll, and what must hold after it.
fn poll(r: &mut RingReader, g: &Guest, out: &mut Vec<Frame>, host_pos: &mut Option<u64>) {
    let published = g.header_word(RING_WRITE_POS_OFFSET);
    let result = r.poll(&g.mem, out);
    assert_eq!(out.len() as u64, r.counters().frames_ok);
    match (result, *host_pos, published) {
        (Ok(()), Some(before), Some(w)) if w != before => {
            assert_eq!(
                g.header_word(RING_READ_POS_OFFSET),
                Some(w),
                "a good poll frees everything up to write_pos"
            );
            *host_pos = Some(w);
        }
        (Ok(()), _, _) => {}
        (Err(_), _, _) => *host_pos = None,
    }
}
