//! Reads the guest's TLV message rings while the vCPUs run, with no VM
//! exit. The guest is not trusted: every position and length is checked
//! before it is used, nothing is allocated from a guest-supplied size, and
//! a ring that stops making sense ends the run with a clear error instead
//! of a panic or a silent resync on garbage.

use abi::memmap::{TLV_RING_DATA_SIZE, TLV_RING_HEADER_SIZE};
use abi::tlv::{
    FRAME_HEADER_SIZE, FrameHeader, MAX_PAYLOAD, MSG_PROTOBUF, MSG_TEXT, RING_MAGIC,
    RING_READ_POS_OFFSET, RING_WRITE_POS_OFFSET,
};
use guest_protocol::GuestMessage;
use serde::Serialize;
use std::sync::atomic::Ordering;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};
use zerocopy::FromBytes;

/// What a frame carried, once checked and decoded.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// Boxed: a decoded message reserves its fixed capacities (~5 KiB).
    Message(Box<GuestMessage>),
    Text(String),
}

/// Per-ring health counters, reported when anything was dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct FrameCounters {
    #[serde(rename = "ok")]
    pub frames_ok: u64,
    pub crc_errors: u64,
    pub unknown_tags: u64,
    pub decode_errors: u64,
    pub bytes: u64,
    /// Good frames the host did not keep: log lines, guest error texts
    /// and results past their caps (`vm::run::MAX_LOG_LINES`,
    /// `MAX_RESULTS`), so a guest that logs without end cannot grow the
    /// host without end. Live echoes to stderr still show them.
    pub not_kept: u64,
}

impl FrameCounters {
    pub fn add(&mut self, o: &FrameCounters) {
        self.frames_ok += o.frames_ok;
        self.crc_errors += o.crc_errors;
        self.unknown_tags += o.unknown_tags;
        self.decode_errors += o.decode_errors;
        self.bytes += o.bytes;
        self.not_kept += o.not_kept;
    }
    pub fn has_errors(&self) -> bool {
        self.crc_errors + self.unknown_tags + self.decode_errors > 0
    }
}

/// The stream can no longer be trusted; the text says why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed(pub String);

/// Splits a byte stream into frames. Bytes are consumed as they arrive, so
/// a frame split across polls reassembles, and the partial buffer never
/// holds more than one header plus [`MAX_PAYLOAD`] bytes.
#[derive(Debug)]
pub struct Framer {
    header: [u8; FRAME_HEADER_SIZE],
    header_len: usize,
    /// Set once a complete, checked header is in; then `payload` fills.
    current: Option<FrameHeader>,
    payload: Vec<u8>,
    pub counters: FrameCounters,
}

impl Default for Framer {
    fn default() -> Self {
        Framer {
            header: [0; FRAME_HEADER_SIZE],
            header_len: 0,
            current: None,
            payload: Vec::with_capacity(MAX_PAYLOAD),
            counters: FrameCounters::default(),
        }
    }
}

impl Framer {
    /// Feed bytes; complete, valid frames are appended to `out`. After an
    /// error the framer stays failed: the stream has lost sync.
    pub fn push(&mut self, mut bytes: &[u8], out: &mut Vec<Frame>) -> Result<(), Malformed> {
        self.counters.bytes += bytes.len() as u64;
        while !bytes.is_empty() {
            match self.current {
                None => {
                    let take = (FRAME_HEADER_SIZE - self.header_len).min(bytes.len());
                    self.header[self.header_len..self.header_len + take]
                        .copy_from_slice(&bytes[..take]);
                    self.header_len += take;
                    bytes = &bytes[take..];
                    if self.header_len == FRAME_HEADER_SIZE {
                        let h = FrameHeader::read_from_bytes(&self.header)
                            .map_err(|_| Malformed("frame header unreadable".into()))?;
                        check_header(&h)?;
                        self.current = Some(h);
                        self.payload.clear();
                    }
                }
                Some(h) => {
                    // check_header bounded length by MAX_PAYLOAD, which is
                    // the capacity reserved up front: no reallocation.
                    let need = h.length as usize - self.payload.len();
                    let take = need.min(bytes.len());
                    self.payload.extend_from_slice(&bytes[..take]);
                    bytes = &bytes[take..];
                }
            }
            if let Some(h) = self.current
                && self.payload.len() == h.length as usize
            {
                self.finish(&h, out);
                self.current = None;
                self.header_len = 0;
            }
        }
        Ok(())
    }

    /// True when no frame is half-received.
    pub fn is_idle(&self) -> bool {
        self.current.is_none() && self.header_len == 0
    }

    fn finish(&mut self, h: &FrameHeader, out: &mut Vec<Frame>) {
        if crc32fast::hash(&self.payload) != h.crc32 {
            self.counters.crc_errors += 1;
            return;
        }
        match h.msg_type {
            MSG_PROTOBUF => match guest_protocol::decode(&self.payload) {
                Ok(m) => {
                    self.counters.frames_ok += 1;
                    out.push(Frame::Message(Box::new(m)));
                }
                Err(_) => self.counters.decode_errors += 1,
            },
            MSG_TEXT => {
                self.counters.frames_ok += 1;
                out.push(Frame::Text(
                    String::from_utf8_lossy(&self.payload).into_owned(),
                ));
            }
            _ => self.counters.unknown_tags += 1,
        }
    }
}

fn check_header(h: &FrameHeader) -> Result<(), Malformed> {
    if h.length as usize > MAX_PAYLOAD {
        return Err(Malformed(format!(
            "frame length {} is over the {MAX_PAYLOAD}-byte limit (type {}): the stream lost sync",
            h.length,
            tag_str(h.msg_type)
        )));
    }
    if h.reserved != 0 {
        return Err(Malformed(format!(
            "frame header reserved word is {:#x}, not 0 (type {}): the stream lost sync",
            h.reserved,
            tag_str(h.msg_type)
        )));
    }
    Ok(())
}

fn tag_str(t: u32) -> String {
    String::from_utf8_lossy(&abi::tag_text(t)).into_owned()
}

/// The host side of one vCPU's ring in guest memory.
#[derive(Debug)]
pub struct RingReader {
    base: u64,
    /// Our own copy of read_pos: the guest could scribble on the shared
    /// one, and the host is its only writer anyway.
    read_pos: u64,
    framer: Framer,
    chunk: Vec<u8>,
}

impl RingReader {
    pub fn new(base: u64) -> Self {
        RingReader {
            base,
            read_pos: 0,
            framer: Framer::default(),
            chunk: Vec::new(),
        }
    }

    pub fn counters(&self) -> &FrameCounters {
        &self.framer.counters
    }

    /// Copy out whatever the guest has published since the last poll,
    /// free the space, and return the complete frames.
    pub fn poll(&mut self, mem: &GuestMemoryMmap, out: &mut Vec<Frame>) -> Result<(), Malformed> {
        let b = self.base;
        let rd = |off: u64| -> Result<u64, Malformed> {
            mem.load::<u64>(GuestAddress(b + off), Ordering::Acquire)
                .map_err(|_| {
                    Malformed(format!(
                        "ring header at {:#x} is outside guest RAM",
                        b + off
                    ))
                })
        };
        // Acquire on write_pos pairs with the guest's release store, so the
        // bytes below it are visible before we copy them.
        let write_pos = rd(RING_WRITE_POS_OFFSET)?;
        let magic_size = rd(0)?;
        let (magic, size) = (magic_size as u32, (magic_size >> 32) as u32);
        if write_pos == self.read_pos {
            // Nothing new. Before the core initialises its ring the header
            // is all zeroes; that is not an error while nothing was written.
            return Ok(());
        }
        if magic != RING_MAGIC {
            return Err(Malformed(format!(
                "bad magic {magic:#010x} (expected \"RING\")"
            )));
        }
        if size as u64 != TLV_RING_DATA_SIZE {
            return Err(Malformed(format!(
                "size is {size}, expected {TLV_RING_DATA_SIZE}"
            )));
        }
        if write_pos < self.read_pos {
            return Err(Malformed(format!(
                "write_pos went backwards ({} after {})",
                write_pos, self.read_pos
            )));
        }
        let avail = write_pos - self.read_pos;
        if avail > size as u64 {
            return Err(Malformed(format!(
                "write_pos {} is {avail} bytes ahead of read_pos {}, more than the ring's {size} bytes",
                write_pos, self.read_pos
            )));
        }
        // avail <= size <= TLV_RING_DATA_SIZE (32 KiB): bounded.
        self.chunk.resize(avail as usize, 0);
        let data = b + TLV_RING_HEADER_SIZE;
        let start = (self.read_pos % size as u64) as usize;
        let first = avail.min(size as u64 - start as u64) as usize;
        let bad = |_| Malformed("ring data is outside guest RAM".to_string());
        mem.read_slice(&mut self.chunk[..first], GuestAddress(data + start as u64))
            .map_err(bad)?;
        if first < avail as usize {
            mem.read_slice(&mut self.chunk[first..], GuestAddress(data))
                .map_err(bad)?;
        }
        self.read_pos = write_pos;
        // Release: our reads of the data happen before the guest may reuse it.
        mem.store(
            self.read_pos,
            GuestAddress(b + RING_READ_POS_OFFSET),
            Ordering::Release,
        )
        .map_err(|_| Malformed("ring header is outside guest RAM".to_string()))?;
        self.framer.push(&self.chunk, out)
    }

    /// True when no frame is half-received (for the final drain).
    pub fn is_idle(&self) -> bool {
        self.framer.is_idle()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use abi::memmap::{TLV_RING_STRIDE, tlv_ring_base};
    use guest_protocol::{Log, Msg};
    use zerocopy::IntoBytes;

    const SIZE: u64 = TLV_RING_DATA_SIZE;

    /// Plays the guest: writes frames into a ring in synthetic guest memory.
    struct Guest {
        mem: GuestMemoryMmap,
        base: u64,
        write_pos: u64,
    }

    impl Guest {
        fn new() -> Self {
            let base = tlv_ring_base(0);
            let mem = GuestMemoryMmap::<()>::from_ranges(&[(
                GuestAddress(base),
                TLV_RING_STRIDE as usize,
            )])
            .unwrap();
            mem.write_obj(RING_MAGIC, GuestAddress(base)).unwrap();
            mem.write_obj(SIZE as u32, GuestAddress(base + 4)).unwrap();
            Guest {
                mem,
                base,
                write_pos: 0,
            }
        }
        fn raw(&mut self, bytes: &[u8]) {
            for &byte in bytes {
                let at = self.base + TLV_RING_HEADER_SIZE + self.write_pos % SIZE;
                self.mem.write_obj(byte, GuestAddress(at)).unwrap();
                self.write_pos += 1;
            }
        }
        fn publish(&self) {
            self.mem
                .store(
                    self.write_pos,
                    GuestAddress(self.base + RING_WRITE_POS_OFFSET),
                    Ordering::Release,
                )
                .unwrap();
        }
        fn frame(&mut self, msg_type: u32, payload: &[u8]) {
            let h = FrameHeader::new(msg_type, payload, crc32fast::hash(payload));
            self.raw(h.as_bytes());
            self.raw(payload);
        }
        fn read_pos(&self) -> u64 {
            self.mem
                .load(
                    GuestAddress(self.base + RING_READ_POS_OFFSET),
                    Ordering::Acquire,
                )
                .unwrap()
        }
    }

    fn log_payload(text: &str) -> Vec<u8> {
        let mut log = Log {
            level: 2,
            ..Default::default()
        };
        log.text.push_str(text).unwrap();
        let msg = GuestMessage {
            msg: Some(Msg::Log(log)),
        };
        let mut buf = heapless::Vec::<u8, 8192>::new();
        guest_protocol::encode(&msg, &mut buf).unwrap();
        buf.to_vec()
    }

    fn texts(frames: &[Frame]) -> Vec<String> {
        frames
            .iter()
            .map(|f| match f {
                Frame::Text(t) => t.clone(),
                Frame::Message(m) => match &m.msg {
                    Some(Msg::Log(l)) => l.text.to_string(),
                    other => format!("{other:?}"),
                },
            })
            .collect()
    }

    #[test]
    fn frames_round_trip_including_wrap_around() {
        let mut g = Guest::new();
        let mut r = RingReader::new(g.base);
        let mut out = Vec::new();
        // Push well over two ring sizes through, in batches, so frames
        // straddle the end of the data area several times.
        let mut expected = Vec::new();
        let mut n = 0;
        while g.write_pos < 3 * SIZE {
            for _ in 0..7 {
                let text = format!("message {n} {}", "x".repeat(n % 200));
                if n % 2 == 0 {
                    g.frame(MSG_PROTOBUF, &log_payload(&text));
                } else {
                    g.frame(MSG_TEXT, text.as_bytes());
                }
                expected.push(text);
                n += 1;
            }
            g.publish();
            r.poll(&g.mem, &mut out).unwrap();
            assert_eq!(g.read_pos(), g.write_pos, "space is freed after each poll");
        }
        assert_eq!(texts(&out), expected);
        assert_eq!(r.counters().frames_ok, n as u64);
        assert!(!r.counters().has_errors());
        assert!(r.is_idle());
    }

    #[test]
    fn flipped_payload_byte_is_counted_and_skipped() {
        let mut g = Guest::new();
        let payload = b"hello".to_vec();
        let h = FrameHeader::new(MSG_TEXT, &payload, crc32fast::hash(&payload));
        g.raw(h.as_bytes());
        g.raw(b"hellp");
        g.frame(MSG_TEXT, b"after");
        g.publish();
        let mut r = RingReader::new(g.base);
        let mut out = Vec::new();
        r.poll(&g.mem, &mut out).unwrap();
        assert_eq!(texts(&out), ["after"]);
        assert_eq!(r.counters().crc_errors, 1);
        assert_eq!(r.counters().frames_ok, 1);
    }

    #[test]
    fn oversized_length_is_rejected_without_allocating() {
        let mut f = Framer::default();
        let cap = f.payload.capacity();
        let h = FrameHeader {
            msg_type: MSG_TEXT,
            length: u32::MAX,
            crc32: 0,
            reserved: 0,
        };
        let mut out = Vec::new();
        let err = f.push(h.as_bytes(), &mut out).unwrap_err();
        assert!(err.0.contains("over the 8192-byte limit"), "{}", err.0);
        assert_eq!(f.payload.capacity(), cap);
        let h = FrameHeader {
            msg_type: MSG_TEXT,
            length: 1,
            crc32: 0,
            reserved: 7,
        };
        assert!(
            Framer::default()
                .push(h.as_bytes(), &mut out)
                .unwrap_err()
                .0
                .contains("reserved")
        );
    }

    #[test]
    fn unknown_tag_is_skipped_and_counted() {
        let mut g = Guest::new();
        g.frame(abi::tag(b"ZZZZ"), b"whatever");
        g.frame(MSG_PROTOBUF, &[0xff; 9]);
        g.frame(MSG_TEXT, b"still in sync");
        g.publish();
        let mut r = RingReader::new(g.base);
        let mut out = Vec::new();
        r.poll(&g.mem, &mut out).unwrap();
        assert_eq!(texts(&out), ["still in sync"]);
        assert_eq!(r.counters().unknown_tags, 1);
        assert_eq!(r.counters().decode_errors, 1);
    }

    #[test]
    fn frame_split_across_polls_reassembles() {
        let mut g = Guest::new();
        let mut r = RingReader::new(g.base);
        let mut out = Vec::new();
        let payload = log_payload("split in three");
        let h = FrameHeader::new(MSG_PROTOBUF, &payload, crc32fast::hash(&payload));
        g.raw(&h.as_bytes()[..5]);
        g.publish();
        r.poll(&g.mem, &mut out).unwrap();
        g.raw(&h.as_bytes()[5..]);
        g.raw(&payload[..3]);
        g.publish();
        r.poll(&g.mem, &mut out).unwrap();
        assert!(out.is_empty() && !r.is_idle());
        g.raw(&payload[3..]);
        g.publish();
        r.poll(&g.mem, &mut out).unwrap();
        assert_eq!(texts(&out), ["split in three"]);
        assert!(r.is_idle());
    }

    #[test]
    fn write_pos_too_far_ahead_or_backwards_is_malformed() {
        let mut g = Guest::new();
        g.write_pos = SIZE + 1;
        g.publish();
        let mut out = Vec::new();
        let err = RingReader::new(g.base).poll(&g.mem, &mut out).unwrap_err();
        assert!(err.0.contains("more than the ring's"), "{}", err.0);

        let mut g = Guest::new();
        let mut r = RingReader::new(g.base);
        g.frame(MSG_TEXT, b"one");
        g.publish();
        r.poll(&g.mem, &mut out).unwrap();
        g.write_pos = 2;
        g.publish();
        assert!(
            r.poll(&g.mem, &mut out)
                .unwrap_err()
                .0
                .contains("backwards")
        );
    }

    #[test]
    fn bad_magic_or_size_is_malformed_but_an_untouched_ring_is_not() {
        let base = tlv_ring_base(0);
        let mem =
            GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(base), TLV_RING_STRIDE as usize)])
                .unwrap();
        let mut out = Vec::new();
        let mut r = RingReader::new(base);
        r.poll(&mem, &mut out).unwrap();
        mem.store(
            8u64,
            GuestAddress(base + RING_WRITE_POS_OFFSET),
            Ordering::Release,
        )
        .unwrap();
        assert!(r.poll(&mem, &mut out).unwrap_err().0.contains("bad magic"));
        mem.write_obj(RING_MAGIC, GuestAddress(base)).unwrap();
        mem.write_obj(100u32, GuestAddress(base + 4)).unwrap();
        assert!(
            r.poll(&mem, &mut out)
                .unwrap_err()
                .0
                .contains("size is 100")
        );
    }

    #[test]
    fn ring_outside_guest_ram_is_an_error_not_a_panic() {
        let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 0x1000)]).unwrap();
        let mut out = Vec::new();
        assert!(
            RingReader::new(tlv_ring_base(3))
                .poll(&mem, &mut out)
                .is_err()
        );
    }
}
