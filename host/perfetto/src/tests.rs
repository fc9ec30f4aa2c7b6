use super::*;
use abi::kstate::{PREV_IDLE, PREV_PREEMPTED};
use prost::Message;
use prost_types::{DescriptorProto, FileDescriptorSet};
use std::path::Path;
use std::process::Command;

fn names() -> Names {
    Names {
        process: "spin".into(),
        tasks: BTreeMap::from([(2, "ping#0".to_string())]),
    }
}

/// Every event once, in its CPU's bundle, with the names and the
/// tracepoints' fields; a CPU the run does not have is counted out.
#[test]
fn each_event_becomes_one_ftrace_event_on_its_cpu() {
    let events = [
        Event::new(1_000, EV_SPAWN, 0, 2, 1024, 0),
        Event::new(1_000, EV_SPAWN, 0, 3, 1024, 0),
        Event::new(2_000, EV_SWITCH, 0, 2, 0, PREV_IDLE),
        Event::new(3_000, EV_WAKEUP, 0, 3, 1, 2),
        Event::new(4_000, EV_SWITCH, 1, 3, 0, PREV_IDLE),
        Event::new(5_000, EV_MIGRATE, 1, 3, 1, 0),
        Event::new(6_000, EV_SWITCH, 0, 3, 2, PREV_PREEMPTED),
        Event::new(7_000, EV_SWITCH, 0, 0, 3, PREV_EXITED),
        Event::new(7_000, EV_EXIT, 0, 3, 0, 0),
        Event::new(8_000, EV_SWITCH, 9, 2, 0, PREV_IDLE),
    ];
    // 1 tick = 1 µs.
    let (bytes, skipped) = encode(&events, 2, 1_000, &names());
    assert_eq!(skipped, 1, "the event of CPU 9");
    let t = pb::Trace::decode(&bytes[..]).expect("decodes");
    let Some(pb::trace_packet::Data::ProcessTree(tree)) = &t.packet[0].data else {
        panic!("the process tree comes first: {:?}", t.packet[0]);
    };
    assert_eq!(tree.processes[0].cmdline, ["spin"]);
    assert_eq!(tree.processes[0].pid, Some(2));
    let threads: Vec<(i32, &str)> = tree
        .threads
        .iter()
        .map(|t| (t.tid.unwrap(), t.name.as_deref().unwrap()))
        .collect();
    assert_eq!(threads, [(2, "ping#0"), (3, "spin-3")]);
    let bundles: Vec<&pb::FtraceEventBundle> = t.packet[1..]
        .iter()
        .map(|p| match &p.data {
            Some(pb::trace_packet::Data::FtraceEvents(b)) => b,
            other => panic!("not a bundle: {other:?}"),
        })
        .collect();
    assert_eq!(bundles.len(), 2);
    assert_eq!(
        bundles.iter().map(|b| b.event.len()).collect::<Vec<_>>(),
        [7, 2]
    );
    let cpu0 = &bundles[0];
    assert_eq!(cpu0.cpu, Some(0));
    // ns since the first event.
    let ts: Vec<u64> = cpu0.event.iter().map(|e| e.timestamp.unwrap()).collect();
    assert_eq!(
        ts,
        [0, 0, 1_000_000, 2_000_000, 5_000_000, 6_000_000, 6_000_000]
    );
    use pb::ftrace_event::Event as E;
    match &cpu0.event[4].event {
        Some(E::SchedSwitch(s)) => {
            assert_eq!((s.prev_pid, s.next_pid), (Some(2), Some(3)));
            assert_eq!(s.prev_comm.as_deref(), Some("ping#0"));
            assert_eq!(s.prev_state, Some(STATE_RUNNABLE));
        }
        other => panic!("{other:?}"),
    }
    match &cpu0.event[5].event {
        Some(E::SchedSwitch(s)) => {
            assert_eq!(s.next_comm.as_deref(), Some("swapper/0"));
            assert_eq!(s.prev_state, Some(STATE_DEAD));
        }
        other => panic!("{other:?}"),
    }
    match &cpu0.event[3].event {
        Some(E::SchedWaking(w)) => {
            assert_eq!((w.pid, w.target_cpu), (Some(3), Some(1)));
            assert_eq!(cpu0.event[3].pid, Some(2), "woken by pid 2");
        }
        other => panic!("{other:?}"),
    }
    match &bundles[1].event[1].event {
        Some(E::SchedMigrateTask(m)) => {
            assert_eq!((m.orig_cpu, m.dest_cpu), (Some(1), Some(0)));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(cpu0.event[6].event, Some(E::SchedProcessExit(_))));
}

#[test]
fn a_long_cpu_track_is_split_into_bounded_bundles() {
    let events: Vec<Event> = (0..EVENTS_PER_BUNDLE as u64 * 2 + 1)
        .map(|i| Event::new(i, EV_SWITCH, 0, 2 + (i % 2) as u32, 3 - (i % 2) as u32, 0))
        .collect();
    let (bytes, _) = encode(&events, 1, 1_000, &names());
    let t = pb::Trace::decode(&bytes[..]).unwrap();
    assert_eq!(t.packet.len(), 1 + 3);
    let n: usize = t.packet[1..]
        .iter()
        .map(|p| match &p.data {
            Some(pb::trace_packet::Data::FtraceEvents(b)) => b.event.len(),
            _ => 0,
        })
        .sum();
    assert_eq!(n, events.len());
    // No events at all: still a trace, with its (empty) process.
    let (bytes, skipped) = encode(&[], 4, 0, &names());
    assert_eq!(
        (pb::Trace::decode(&bytes[..]).unwrap().packet.len(), skipped),
        (1, 0)
    );
}

/// The descriptors of `proto` (protoc, as the build runs it).
fn descriptors(proto: &Path) -> FileDescriptorSet {
    let out = tempfile_path(proto);
    let dir = proto.parent().unwrap();
    let status = Command::new("protoc")
        .arg(format!("--proto_path={}", dir.display()))
        .arg(format!("--descriptor_set_out={}", out.display()))
        .arg(proto)
        .status()
        .expect("protoc runs (./setup.sh installs it)");
    assert!(status.success(), "protoc failed on {}", proto.display());
    let bytes = std::fs::read(&out).unwrap();
    let _ = std::fs::remove_file(&out);
    FileDescriptorSet::decode(&bytes[..]).unwrap()
}

fn tempfile_path(proto: &Path) -> std::path::PathBuf {
    std::env::temp_dir().join(format!(
        "schedlab-perfetto-{}-{}.pb",
        std::process::id(),
        proto.file_stem().unwrap().to_string_lossy()
    ))
}

fn find<'a>(msgs: &'a [DescriptorProto], name: &str) -> Option<&'a DescriptorProto> {
    msgs.iter().find(|m| m.name() == name)
}

/// Every field of `ours` (and of its nested messages) is in `theirs`
/// with the same number, type, label and message type.
fn same_fields(path: &str, ours: &DescriptorProto, theirs: &DescriptorProto) -> usize {
    let mut n = 0;
    for f in &ours.field {
        let t = theirs
            .field
            .iter()
            .find(|t| t.name() == f.name())
            .unwrap_or_else(|| panic!("{path}.{} is not in Perfetto's schema", f.name()));
        assert_eq!(
            (f.number(), f.r#type(), f.label(), f.type_name()),
            (t.number(), t.r#type(), t.label(), t.type_name()),
            "{path}.{} differs from Perfetto's schema",
            f.name()
        );
        n += 1;
    }
    for nested in &ours.nested_type {
        let t = find(&theirs.nested_type, nested.name())
            .unwrap_or_else(|| panic!("{path}.{} is not in Perfetto's schema", nested.name()));
        n += same_fields(&format!("{path}.{}", nested.name()), nested, t);
    }
    n
}

#[test]
fn the_subset_is_perfetto_s_published_schema() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let official = root.join("../../third_party/perfetto/perfetto_trace.proto");
    assert!(
        official.exists(),
        "Perfetto's schema is missing at {}",
        official.display()
    );
    let ours = descriptors(&root.join("proto/perfetto_subset.proto"));
    let theirs = descriptors(&official);
    let (ours, theirs) = (&ours.file[0], &theirs.file[0]);
    assert_eq!(ours.package(), theirs.package());
    let mut fields = 0;
    for m in &ours.message_type {
        let t = find(&theirs.message_type, m.name())
            .unwrap_or_else(|| panic!("message {} is not in Perfetto's schema", m.name()));
        fields += same_fields(m.name(), m, t);
    }
    assert!(fields > 40, "only {fields} fields compared");
}
