//! TLV frames, guest -> host. Each frame is a 16-byte [`FrameHeader`] then
//! `length` payload bytes. Frames go into a per-vCPU byte ring in guest
//! memory ([`RingHeader`]) that the host drains while the vCPU runs, so
//! sending a message costs no VM exit.

use crate::tag;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Frame header. `crc32` is crc32fast (IEEE) over the payload only;
/// `reserved` must be zero.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct FrameHeader {
    pub msg_type: u32,
    pub length: u32,
    pub crc32: u32,
    pub reserved: u32,
}

pub const FRAME_HEADER_SIZE: usize = 16;
const _: () = {
    assert!(core::mem::size_of::<FrameHeader>() == FRAME_HEADER_SIZE);
    assert!(core::mem::offset_of!(FrameHeader, msg_type) == 0);
    assert!(core::mem::offset_of!(FrameHeader, length) == 4);
    assert!(core::mem::offset_of!(FrameHeader, crc32) == 8);
    assert!(core::mem::offset_of!(FrameHeader, reserved) == 12);
};

/// Largest payload either side accepts. The host checks this before it
/// allocates anything for a frame.
pub const MAX_PAYLOAD: usize = 8 << 10;
const _: () =
    assert!((MAX_PAYLOAD + FRAME_HEADER_SIZE) as u64 <= crate::memmap::TLV_RING_DATA_SIZE / 2);

/// Longest text, in bytes, of a `Log` or `Error` message (and of an ipc
/// check's detail): the guest cuts longer text at a character boundary
/// rather than fail to send it, and the host refuses a longer one while
/// decoding. Small enough that the core can encode a log line on its
/// stack in a 512-byte buffer.
pub const MAX_TEXT: usize = 240;
const _: () = assert!(MAX_TEXT < MAX_PAYLOAD);

/// Message types: 4-char ASCII tags, unique, never reused. A retired tag
/// stays listed here, commented out, so nobody picks it again.
/// A micropb-encoded `GuestMessage`.
pub const MSG_PROTOBUF: u32 = tag(b"PBUF");
/// Raw UTF-8 log text, for paths that cannot encode protobuf (panics).
pub const MSG_TEXT: u32 = tag(b"TEXT");

/// All known tags, for the uniqueness check and for the host's decoder.
pub const KNOWN_TAGS: [u32; 2] = [MSG_PROTOBUF, MSG_TEXT];
const _: () = {
    let mut i = 0;
    while i < KNOWN_TAGS.len() {
        let mut j = i + 1;
        while j < KNOWN_TAGS.len() {
            assert!(KNOWN_TAGS[i] != KNOWN_TAGS[j]);
            j += 1;
        }
        i += 1;
    }
};

impl FrameHeader {
    pub fn new(msg_type: u32, payload: &[u8], crc32: u32) -> Self {
        FrameHeader {
            msg_type,
            length: payload.len() as u32,
            crc32,
            reserved: 0,
        }
    }
}

pub const RING_MAGIC: u32 = tag(b"RING");

/// Header of one vCPU's ring at [`crate::memmap::tlv_ring_base`]. The data
/// area follows at `+TLV_RING_HEADER_SIZE`. Positions count bytes since the
/// start and only grow; byte `p` lives at `data[p % size]`. The guest owns
/// `write_pos` (stored with release after the bytes), the host owns
/// `read_pos`; they sit on separate cache lines. A frame may wrap.
#[repr(C, align(64))]
#[derive(Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct RingHeader {
    pub magic: u32,
    /// Data bytes (a power of two).
    pub size: u32,
    /// Frames the writer had to wait for space for (the ring never drops).
    pub full_waits: u64,
    _pad0: [u64; 6],
    pub write_pos: u64,
    _pad1: [u64; 7],
    pub read_pos: u64,
    _pad2: [u64; 7],
}

pub const RING_WRITE_POS_OFFSET: u64 = 64;
pub const RING_READ_POS_OFFSET: u64 = 128;
const _: () = {
    assert!(core::mem::offset_of!(RingHeader, write_pos) as u64 == RING_WRITE_POS_OFFSET);
    assert!(core::mem::offset_of!(RingHeader, read_pos) as u64 == RING_READ_POS_OFFSET);
    assert!(core::mem::offset_of!(RingHeader, full_waits) == 8);
    assert!(core::mem::size_of::<RingHeader>() as u64 <= crate::memmap::TLV_RING_HEADER_SIZE);
};

impl RingHeader {
    pub const fn new(size: u32) -> Self {
        RingHeader {
            magic: RING_MAGIC,
            size,
            full_waits: 0,
            _pad0: [0; 6],
            write_pos: 0,
            _pad1: [0; 7],
            read_pos: 0,
            _pad2: [0; 7],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_layout_is_pinned() {
        let h = FrameHeader {
            msg_type: MSG_PROTOBUF,
            length: 0x0102_0304,
            crc32: 0xAABB_CCDD,
            reserved: 0,
        };
        let b = h.as_bytes();
        assert_eq!(&b[0..4], b"PBUF");
        assert_eq!(&b[4..8], &[4, 3, 2, 1]);
        assert_eq!(&b[8..12], &[0xDD, 0xCC, 0xBB, 0xAA]);
        assert_eq!(&b[12..16], &[0, 0, 0, 0]);
        assert_eq!(FrameHeader::read_from_bytes(b).unwrap(), h);
    }
}
