//! The protobuf messages inside "PBUF" TLV frames, generated from
//! `proto/guest.proto` by micropb-gen. The same generated code encodes in
//! the guest (`no_std`, no allocator) and decodes on the host, so the two
//! sides cannot drift apart.
#![forbid(unsafe_code)]
#![no_std]

#[allow(clippy::all, nonstandard_style, unused, irrefutable_let_patterns)]
mod generated {
    include!(concat!(env!("OUT_DIR"), "/guest.rs"));
}

pub use generated::schedlab_::GuestMessage_::Msg;
pub use generated::schedlab_::*;
pub use micropb::{MessageDecode, MessageEncode, PbDecoder, PbEncoder};

/// Longest encoded GuestMessage the guest may send: the TLV payload cap.
pub const MAX_ENCODED: usize = abi::tlv::MAX_PAYLOAD;

/// Encode `msg` into `buf`; returns the bytes used, or None if it does
/// not fit.
pub fn encode<const N: usize>(msg: &GuestMessage, buf: &mut heapless::Vec<u8, N>) -> Option<usize> {
    buf.clear();
    let mut enc = PbEncoder::new(&mut *buf);
    msg.encode(&mut enc).ok()?;
    Some(buf.len())
}

/// `GuestMessage` field numbers of the messages the guest core sends
/// itself (see [`encode_part`]).
pub const FIELD_LOG: u32 = 1;
pub const FIELD_ERROR: u32 = 2;
pub const FIELD_COMPLETE: u32 = 3;

/// Encode a GuestMessage whose `msg` is `part`, sent as field `field`,
/// without building the GuestMessage: its largest variant (an operation's
/// result) is kilobytes, and the guest core's stacks are small. The bytes
/// are the same as [`encode`]'s (tested).
pub fn encode_part<M: MessageEncode, const N: usize>(
    field: u32,
    part: &M,
    buf: &mut heapless::Vec<u8, N>,
) -> Option<usize> {
    buf.clear();
    let mut enc = PbEncoder::new(&mut *buf);
    // Key: field number, wire type 2 (length-delimited).
    enc.encode_varint32(field << 3 | 2).ok()?;
    part.encode_len_delimited(&mut enc).ok()?;
    Some(buf.len())
}

/// Decode one GuestMessage from a whole payload. Fails (never panics) on
/// malformed input or on content over the fixed capacities.
pub fn decode(
    bytes: &[u8],
) -> Result<GuestMessage, micropb::DecodeError<core::convert::Infallible>> {
    let mut msg = GuestMessage::default();
    let mut dec = PbDecoder::new(bytes);
    msg.decode(&mut dec, bytes.len())?;
    Ok(msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_part_encodes_as_the_whole_message_would() {
        let log = Log {
            level: 2,
            text: heapless::String::try_from("core up").unwrap(),
        };
        let err = Error {
            code: 7,
            text: heapless::String::try_from("policy stride: no").unwrap(),
        };
        let done = Complete {
            exit_code: -3,
            ..Complete::default()
        };
        fn same<M: MessageEncode>(field: u32, part: &M, whole: GuestMessage) {
            let (mut a, mut b) = (
                heapless::Vec::<u8, 512>::new(),
                heapless::Vec::<u8, 512>::new(),
            );
            encode(&whole, &mut a).unwrap();
            encode_part(field, part, &mut b).unwrap();
            assert_eq!(a, b, "field {field}");
            assert_eq!(decode(&b).unwrap(), whole);
        }
        let msg = |m| GuestMessage { msg: Some(m) };
        same(FIELD_LOG, &log, msg(Msg::Log(log.clone())));
        same(FIELD_ERROR, &err, msg(Msg::Error(err.clone())));
        same(FIELD_COMPLETE, &done, msg(Msg::Complete(done)));
    }

    fn spin_result(n: usize) -> GuestMessage {
        let mut r = SpinResult::default();
        for i in 0..n {
            let t = SpinTask {
                pid: i as u32 + 2,
                units: u64::MAX - i as u64,
                runtime_ns: 1 << 40,
                weight: 1000,
                switches: 12345,
                cpu: 63,
            };
            r.tasks.push(t).unwrap();
        }
        r.elapsed_ns = u64::MAX;
        GuestMessage {
            msg: Some(Msg::SpinResult(r)),
        }
    }

    /// A container holds exactly `cap` items: the last push fits, the next
    /// is refused.
    fn holds_exactly<T: Clone, const N: usize>(
        v: &mut heapless::Vec<T, N>,
        item: T,
        cap: usize,
    ) -> bool {
        v.clear();
        for _ in 0..cap {
            if v.push(item.clone()).is_err() {
                return false;
            }
        }
        v.push(item).is_err() && v.capacity() == cap
    }

    #[test]
    fn capacities_are_the_abi_limits() {
        use abi::config::{
            IPC_CHECK_NAME_MAX, IPC_MAX_CHECKS, PERIODIC_MAX_TASKS, SCENARIO_MAX_INSTANCES,
            SPIN_MAX_TASKS,
        };
        use abi::tlv::MAX_TEXT;
        assert!(holds_exactly(
            &mut SpinResult::default().tasks,
            SpinTask::default(),
            SPIN_MAX_TASKS
        ));
        assert!(holds_exactly(
            &mut IpcResult::default().checks,
            IpcCheck::default(),
            IPC_MAX_CHECKS
        ));
        assert!(holds_exactly(
            &mut PeriodicResult::default().tasks,
            PeriodicTask::default(),
            PERIODIC_MAX_TASKS
        ));
        assert!(holds_exactly(
            &mut ScenarioResult::default().tasks,
            ScenarioTaskResult::default(),
            SCENARIO_MAX_INSTANCES
        ));
        assert_eq!(Log::default().text.capacity(), MAX_TEXT);
        assert_eq!(Error::default().text.capacity(), MAX_TEXT);
        assert_eq!(IpcCheck::default().detail.capacity(), MAX_TEXT);
        assert_eq!(IpcCheck::default().name.capacity(), IPC_CHECK_NAME_MAX);
        // Not a container, but the same kind of mirror: the encode buffer
        // is the TLV payload cap.
        assert_eq!(MAX_ENCODED, abi::tlv::MAX_PAYLOAD);
    }

    #[test]
    fn round_trips_and_the_largest_message_fits_a_frame() {
        let m = spin_result(abi::config::SPIN_MAX_TASKS);
        let mut buf = heapless::Vec::<u8, MAX_ENCODED>::new();
        let n = encode(&m, &mut buf).expect("the largest SpinResult fits MAX_ENCODED");
        assert!(n <= MAX_ENCODED);
        assert_eq!(decode(&buf).unwrap(), m);
    }

    /// The largest scenario result message: a chunk of instances
    /// (`SCENARIO_RESULT_CHUNK`; the operation sends as many as it needs)
    /// each reporting every field,
    /// times up to the scenario's one-hour limit and counts to a billion
    /// (a varint of a real value, not u64::MAX, which no run reaches).
    #[test]
    fn the_largest_scenario_result_chunk_fits_a_frame() {
        const HOUR_NS: u64 = 3_600_000_000_000;
        let stats = || LatencyStats {
            count: 1_000_000_000,
            p50_ns: HOUR_NS,
            p99_ns: HOUR_NS,
            p999_ns: HOUR_NS,
            max_ns: HOUR_NS,
            mean_ns: HOUR_NS,
            p90_ns: HOUR_NS,
        };
        let mut r = ScenarioResult {
            elapsed_ns: HOUR_NS,
            ..Default::default()
        };
        for i in 0..abi::config::SCENARIO_RESULT_CHUNK as u32 {
            let mut t = ScenarioTaskResult {
                kind: 7,
                instance: i,
                pid: 1000 + i,
                loops: 1_000_000_000,
                sent: 1_000_000_000,
                received: 1_000_000_000,
                run_ns: HOUR_NS,
                run_away_ns: HOUR_NS,
                sync_wait_ns: HOUR_NS,
                ..Default::default()
            };
            t.set_loop_time(stats());
            t.set_sleep_overrun(stats());
            t.set_lock_wait(stats());
            r.tasks.push(t).unwrap();
        }
        let m = GuestMessage {
            msg: Some(Msg::ScenarioResult(r)),
        };
        let mut buf = heapless::Vec::<u8, MAX_ENCODED>::new();
        let n = encode(&m, &mut buf).expect("the largest ScenarioResult fits MAX_ENCODED");
        assert_eq!(decode(&buf[..n]).unwrap(), m);
    }

    #[test]
    fn garbage_and_truncation_are_errors_not_panics() {
        let m = spin_result(3);
        let mut buf = heapless::Vec::<u8, MAX_ENCODED>::new();
        encode(&m, &mut buf).unwrap();
        for cut in 0..buf.len() {
            let _ = decode(&buf[..cut]);
        }
        assert!(decode(&buf[..buf.len() - 1]).is_err());
        assert!(decode(&[0xff; 32]).is_err());
    }

    #[test]
    fn text_over_capacity_is_refused_on_decode() {
        // A Log whose text field claims 241 bytes: over the 240-byte cap.
        let mut bytes = [0u8; 250];
        bytes[0] = 0x0a; // GuestMessage.log, length-delimited
        bytes[1] = 244;
        bytes[2] = 0x01; // ...
        bytes[3] = 0x12; // Log.text, length-delimited
        bytes[4] = 0xf1;
        bytes[5] = 0x01; // 241
        for b in &mut bytes[6..] {
            *b = b'a';
        }
        assert!(decode(&bytes[..6 + 241]).is_err());
    }
}
