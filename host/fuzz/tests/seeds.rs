//! The hand-made seeds of the binary targets, as code: each says what it
//! exercises, in the input language of its target (see the target's
//! module). `cargo test -p schedlab-fuzz -- --ignored write_seeds` writes
//! them into `corpus/NAME/seed-*`; the text targets' seeds (scenario
//! files, results) are written by hand there. The test that is not
//! ignored runs every seed through its target, so a change to a target's
//! input language that breaks a seed shows.

use abi::tlv::{FrameHeader, MSG_PROTOBUF, MSG_TEXT};
use guest_protocol::*;
use schedlab_fuzz::targets::TARGETS;
use std::path::Path;
use zerocopy::IntoBytes;

fn bytes_of(m: Msg) -> Vec<u8> {
    let msg = GuestMessage { msg: Some(m) };
    let mut buf = heapless::Vec::<u8, MAX_ENCODED>::new();
    encode(&msg, &mut buf).expect("a seed fits");
    buf.to_vec()
}

fn stats(count: u64) -> LatencyStats {
    LatencyStats {
        count,
        p50_ns: 1_000,
        p99_ns: 50_000,
        max_ns: 90_000,
        mean_ns: 2_000,
        p90_ns: 20_000,
        p999_ns: 80_000,
    }
}

/// One message of every kind the guest sends.
fn messages() -> Vec<(&'static str, Vec<u8>)> {
    let mut log = Log {
        level: 2,
        ..Default::default()
    };
    log.text.push_str("core up: 2 cpus").unwrap();
    let mut error = Error {
        code: 7,
        ..Default::default()
    };
    error.text.push_str("bad config").unwrap();
    let mut spin = SpinResult {
        elapsed_ns: 200_000_000,
        unit_iterations: 1000,
        preempt_point_ps: 1500,
        ..Default::default()
    };
    for pid in 2..5 {
        let t = SpinTask {
            pid,
            units: 1000 * u64::from(pid),
            runtime_ns: 60_000_000,
            weight: pid,
            switches: 40,
            cpu: pid % 2,
        };
        spin.tasks.push(t).unwrap();
    }
    let mut ipc = IpcResult {
        rounds: 100,
        rtt_p50_ns: 3000,
        rtt_p99_ns: 9000,
        rtt_max_ns: 20000,
        cpus: 2,
        ..Default::default()
    };
    let mut check = IpcCheck {
        passed: true,
        ..Default::default()
    };
    check.name.push_str("topic").unwrap();
    check.detail.push_str("3 of 3 delivered").unwrap();
    ipc.checks.push(check).unwrap();
    let mut pingpong = PingpongResult {
        pairs: 2,
        rounds: 1000,
        same_cpu: true,
        elapsed_ns: 5_000_000,
        round_trips: 2000,
        ..Default::default()
    };
    pingpong.set_rtt(stats(2000));
    let fanout = FanoutResult {
        groups: 2,
        senders: 3,
        receivers: 3,
        messages: 10,
        elapsed_ns: 4_000_000,
        delivered: 180,
    };
    let mut periodic = PeriodicResult {
        elapsed_ns: 100_000_000,
        ..Default::default()
    };
    let mut task = PeriodicTask {
        pid: 3,
        period_ns: 10_000_000,
        runtime_ns: 1_000_000,
        deadline_ns: 10_000_000,
        activations: 10,
        misses: 1,
        ..Default::default()
    };
    task.set_latency(stats(10));
    periodic.tasks.push(task).unwrap();
    let mut mixed = MixedResult {
        interactive: 2,
        hogs: 2,
        hog_units: 5000,
        elapsed_ns: 100_000_000,
        bursts: 80,
        ..Default::default()
    };
    mixed.set_wake(stats(80));
    let mut scenario = ScenarioResult {
        elapsed_ns: 200_000_000,
        ..Default::default()
    };
    for instance in 0..2 {
        let mut t = ScenarioTaskResult {
            kind: instance,
            instance: 0,
            pid: 3 + instance,
            loops: 50,
            sent: 50,
            received: 50,
            ..Default::default()
        };
        t.set_loop_time(stats(50));
        t.set_sleep_overrun(stats(0));
        scenario.tasks.push(t).unwrap();
    }
    vec![
        ("log", bytes_of(Msg::Log(log))),
        ("error", bytes_of(Msg::Error(error))),
        (
            "complete",
            bytes_of(Msg::Complete(Complete {
                exit_code: -3,
                elapsed_ns: 123_456_789,
                switches: 42,
            })),
        ),
        ("spin", bytes_of(Msg::SpinResult(spin))),
        ("ipc", bytes_of(Msg::IpcResult(ipc))),
        ("pingpong", bytes_of(Msg::PingpongResult(pingpong))),
        ("fanout", bytes_of(Msg::FanoutResult(fanout))),
        ("periodic", bytes_of(Msg::PeriodicResult(periodic))),
        ("mixed", bytes_of(Msg::MixedResult(mixed))),
        ("scenario", bytes_of(Msg::ScenarioResult(scenario))),
    ]
}

fn frame(msg_type: u32, payload: &[u8]) -> Vec<u8> {
    let h = FrameHeader::new(msg_type, payload, crc32fast::hash(payload));
    let mut v = h.as_bytes().to_vec();
    v.extend_from_slice(payload);
    v
}

/// `tlv` ring-mode operations (see targets/tlv.rs).
#[derive(Default)]
struct Ring(Vec<u8>);

impl Ring {
    /// Ring mode, with the flags byte and what it asks for.
    fn new(flags: u8, extra: &[u8]) -> Self {
        let mut v = vec![1, flags];
        v.extend_from_slice(extra);
        Ring(v)
    }
    fn frame(mut self, sel: u8, payload: &[u8]) -> Self {
        self.0.push(0);
        self.0.push(sel);
        self.0
            .extend_from_slice(&(payload.len() as u16).to_le_bytes());
        self.0.extend_from_slice(payload);
        self
    }
    fn raw(mut self, bytes: &[u8]) -> Self {
        self.0.push(1);
        self.0.push(bytes.len() as u8);
        self.0.extend_from_slice(bytes);
        self
    }
    fn publish(mut self) -> Self {
        self.0.push(2);
        self
    }
    fn poll(mut self) -> Self {
        self.0.push(3);
        self
    }
    fn set_write(mut self, pos: u64) -> Self {
        self.0.extend_from_slice(&[4, 1]);
        self.0.extend_from_slice(&pos.to_le_bytes());
        self
    }
    fn skip(mut self, n: u16) -> Self {
        self.0.extend_from_slice(&[4, 0]);
        self.0.extend_from_slice(&n.to_le_bytes());
        self
    }
    fn scribble(mut self, word: u8, v: u64) -> Self {
        self.0.extend_from_slice(&[5, word]);
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
}

fn tlv_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let msgs = messages();
    let log = msgs[0].1.clone();
    let spin = msgs[3].1.clone();
    // Framer mode: a stream of frames, pushed 1..7 bytes at a time.
    let mut stream = vec![0, 7, 0];
    stream.extend(frame(MSG_PROTOBUF, &log));
    stream.extend(frame(MSG_TEXT, b"panicked at core/src/lib.rs:10"));
    stream.extend(frame(abi::tag(b"ZZZZ"), b"unknown"));
    stream.extend(frame(MSG_PROTOBUF, &[0xff; 9]));
    stream.extend(frame(MSG_PROTOBUF, &spin));
    // The same with broken CRCs the harness fixes up.
    let mut fixed = vec![0, 3, 1];
    for f in [frame(MSG_TEXT, b"hello"), frame(MSG_PROTOBUF, &log)] {
        let mut f = f;
        f[8..12].copy_from_slice(&[0; 4]);
        fixed.extend(f);
    }
    // A header over the payload limit, then one with a reserved word.
    let mut oversize = vec![0, 0, 0];
    oversize.extend(
        FrameHeader {
            msg_type: MSG_TEXT,
            length: 8193,
            crc32: 0,
            reserved: 0,
        }
        .as_bytes(),
    );
    let mut reserved = vec![0, 0, 0];
    reserved.extend(
        FrameHeader {
            msg_type: MSG_TEXT,
            length: 1,
            crc32: 0,
            reserved: 7,
        }
        .as_bytes(),
    );
    let mut v = vec![
        ("framer-stream", stream),
        ("framer-fixed-crcs", fixed),
        ("framer-oversize", oversize),
        ("framer-reserved", reserved),
    ];
    // Ring mode.
    let many = (0..12).fold(Ring::new(0, &[]), |r, i| {
        r.frame(i % 2, if i % 2 == 0 { &log } else { b"text" })
    });
    v.push((
        "ring-frames-polls",
        Ring::new(0, &[])
            .frame(0, &log)
            .frame(1, b"core up")
            .publish()
            .poll()
            .frame(2, b"??")
            .frame(0, &spin)
            .publish()
            .poll()
            .0,
    ));
    v.push(("ring-many", many.publish().poll().0));
    v.push((
        "ring-wrap",
        // 24 bytes of frame, then 2046 empty frames (zeroes: tag 0,
        // length 0, the CRC of nothing), so the next header starts 8
        // bytes before the end of the data area.
        Ring::new(0, &[])
            .frame(1, b"12345678")
            .skip(0x8000 - 24 - 8)
            .poll()
            .frame(1, b"straddles the end of the ring")
            .publish()
            .poll()
            .0,
    ));
    v.push((
        "ring-split-frame",
        Ring::new(0, &[])
            .raw(&frame(MSG_TEXT, b"split in two")[..9])
            .publish()
            .poll()
            .raw(&frame(MSG_TEXT, b"split in two")[9..])
            .publish()
            .poll()
            .0,
    ));
    v.push((
        "ring-too-far-ahead",
        Ring::new(0, &[]).skip(0x8001).poll().0,
    ));
    v.push((
        "ring-backwards",
        Ring::new(0, &[])
            .frame(1, b"one")
            .publish()
            .poll()
            .set_write(2)
            .poll()
            .0,
    ));
    v.push((
        "ring-bad-magic-size",
        Ring::new(6, &[b'X', b'X', b'X', b'X', 0, 1, 0, 0])
            .frame(1, b"x")
            .publish()
            .poll()
            .0,
    ));
    v.push((
        "ring-short-memory",
        Ring::new(1, &[0x10, 0x02])
            .frame(1, b"x")
            .publish()
            .poll()
            .0,
    ));
    v.push((
        "ring-scribbled-header",
        Ring::new(0, &[])
            .frame(1, b"a")
            .publish()
            .scribble(16, 5)
            .poll()
            .scribble(0, 0)
            .frame(1, b"b")
            .publish()
            .poll()
            .0,
    ));
    v
}

/// `kstate` operations (see targets/kstate.rs).
struct Ks(Vec<u8>);

impl Ks {
    /// cpus, rings, view cut (in words), flags, tsc_khz, stall threshold
    /// (ns), then max wait (ns) when flags & 4.
    fn new(cpus: u8, rings: u8, cut: u16, flags: u8, khz: u32, stall_ns: u32, wait_ns: u32) -> Ks {
        let mut v = vec![cpus, rings];
        v.extend_from_slice(&cut.to_le_bytes());
        v.push(flags);
        v.extend_from_slice(&khz.to_le_bytes());
        v.extend_from_slice(&stall_ns.to_le_bytes());
        if flags & 4 != 0 {
            v.extend_from_slice(&wait_ns.to_le_bytes());
        }
        Ks(v)
    }
    fn cpu(mut self, seq: u8, cpu: u8, pid: u8, rq: u8, back: u16, online: u8) -> Ks {
        self.0.extend_from_slice(&[2, seq, cpu, pid, rq]);
        self.0.extend_from_slice(&back.to_le_bytes());
        self.0.extend_from_slice(&[0, online]);
        self
    }
    fn task(mut self, slot: u8, pid: u8, state: u8, cpu: u8, waited: u32) -> Ks {
        self.0.extend_from_slice(&[4, slot, 2, pid, state, cpu]);
        self.0.extend_from_slice(&waited.to_le_bytes());
        self
    }
    #[allow(clippy::too_many_arguments)]
    fn event(mut self, ring: u8, ahead: u16, kind: u8, cpu: u8, pid: u8, arg: u8, arg2: u8) -> Ks {
        self.0.extend_from_slice(&[5, ring]);
        self.0.extend_from_slice(&ahead.to_le_bytes());
        self.0.extend_from_slice(&[kind, cpu, pid, arg, arg2, 0, 0]);
        self
    }
    fn set_write(mut self, ring: u8, w: u64) -> Ks {
        self.0.extend_from_slice(&[6, ring, 0]);
        self.0.extend_from_slice(&w.to_le_bytes());
        self
    }
    fn poll(mut self, advance: u32, scan: bool) -> Ks {
        self.0.push(8);
        self.0.extend_from_slice(&advance.to_le_bytes());
        self.0.push(u8::from(scan));
        self
    }
    fn raw_cpu(mut self, cpu: u8, words: [u64; 8]) -> Ks {
        self.0.extend_from_slice(&[1, cpu]);
        for w in words {
            self.0.extend_from_slice(&w.to_le_bytes());
        }
        self
    }
}

const KHZ: u32 = 2_500_000;

fn kstate_seeds() -> Vec<(&'static str, Vec<u8>)> {
    // Two CPUs switching between three tasks, sampled and drained.
    let mut busy = Ks::new(2, 2, 0, 2 | 4 | 16, KHZ, 50_000_000, 100_000_000)
        .cpu(2, 0, 2, 1, 10, 1)
        .cpu(4, 1, 3, 0, 10, 1);
    for pid in 2..5u8 {
        busy = busy.event(0, 1, 4, 0, pid, 1, 0);
    }
    for i in 0..20u8 {
        let cpu = i % 2;
        busy = busy
            .event(cpu, u16::from(i) * 100, 1, cpu, 2 + i % 3, 0, 0)
            .event(
                cpu,
                u16::from(i) * 100 + 50,
                2,
                cpu,
                2 + (i + 1) % 3,
                cpu,
                0,
            );
        if i % 5 == 0 {
            busy = busy.poll(1000, true);
        }
    }
    let busy = busy
        .event(0, 9000, 5, 0, 2, 0, 0)
        .event(1, 9000, 3, 1, 3, 1, 0)
        .poll(1000, true);
    // A CPU whose clock stops while it runs pid 4.
    let mut stall = Ks::new(1, 1, 0, 2, KHZ, 1_000_000, 0).cpu(2, 0, 4, 0, 0, 1);
    for _ in 0..6 {
        stall = stall.poll(40_000, false);
    }
    // A runnable task that waits too long.
    let starve = Ks::new(1, 1, 0, 2 | 4, KHZ, 4_000_000_000, 1_000_000)
        .cpu(2, 0, 2, 1, 0, 1)
        .poll(10, false)
        .task(5, 7, 1, 0, 100_000_000)
        .poll(10, true);
    // Rings that lie: write behind, far ahead, garbage entries.
    let liar = Ks::new(2, 2, 0, 2, KHZ, 50_000_000, 0)
        .set_write(0, 5000)
        .poll(10, false)
        .set_write(0, 3)
        .poll(10, false)
        .event(1, 0, 6, 7, 1, 1, 1)
        .set_write(1, u64::MAX)
        .poll(10, false);
    // A record stuck mid-update, and one past the table.
    let torn = Ks::new(2, 0, 0, 2, KHZ, 50_000_000, 0)
        .cpu(3, 0, 2, 0, 0, 1)
        .raw_cpu(200, [1; 8])
        .poll(10, true);
    // A view that ends inside the CPU records, and a guest that never
    // publishes its header.
    let short = Ks::new(4, 0, 0x1200, 1 | 2, KHZ, 50_000_000, 0)
        .cpu(2, 3, 2, 0, 0, 1)
        .poll(10, true);
    let silent = Ks::new(1, 1, 0, 2 | 8, KHZ, 50_000_000, 0)
        .event(0, 1, 1, 0, 2, 0, 0)
        .poll(10, true);
    vec![
        ("busy", busy.0),
        ("stall", stall.0),
        ("starve", starve.0),
        ("lying-rings", liar.0),
        ("torn-records", torn.0),
        ("short-view", short.0),
        ("unpublished", silent.0),
    ]
}

fn all_seeds() -> Vec<(&'static str, String, Vec<u8>)> {
    let mut v = Vec::new();
    for (name, bytes) in messages() {
        v.push(("protocol", format!("seed-{name}"), bytes));
    }
    for (name, bytes) in tlv_seeds() {
        v.push(("tlv", format!("seed-{name}"), bytes));
    }
    for (name, bytes) in kstate_seeds() {
        v.push(("kstate", format!("seed-{name}"), bytes));
    }
    v
}

#[test]
fn every_seed_runs_clean() {
    for (target, name, bytes) in all_seeds() {
        let f = TARGETS.iter().find(|(n, _)| *n == target).unwrap().1;
        let r = std::panic::catch_unwind(|| f(&bytes));
        assert!(r.is_ok(), "{target}/{name} failed");
    }
}

#[test]
#[ignore = "writes corpus/NAME/seed-* files: run by hand after changing a seed"]
fn write_seeds() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    for (target, name, bytes) in all_seeds() {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}
