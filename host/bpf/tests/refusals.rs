//! What the loader refuses, each with one line naming the culprit.

mod common;

use bpf::{LoadOptions, load};

fn opts() -> LoadOptions {
    LoadOptions {
        nr_cpus: 2,
        slice_ns: 1_000_000,
        sets: Vec::new(),
    }
}

fn refused(case: &str) -> String {
    let obj = common::case(Some(case));
    let e = load(&obj, &opts()).expect_err(case).to_string();
    assert_eq!(e.lines().count(), 1, "one line: {e}");
    e
}

#[test]
fn the_plain_case_loads() {
    let obj = common::case(None);
    let l = load(&obj, &opts()).unwrap();
    assert_eq!(l.name(), "cases");
    assert_eq!(
        l.programs(),
        vec![("enqueue".to_string(), "t_enqueue".to_string())]
    );
    // Integer knobs: ranges by size and sign.
    let mut o = opts();
    o.sets = vec![
        ("knob_s8".into(), "-128".into()),
        ("knob_u32".into(), "0xffffffff".into()),
    ];
    let l = load(&obj, &o).unwrap();
    let g = l.global("knob_s8").unwrap();
    let off = (g.addr - abi::memmap::BPF_PROGRAM_ADDR) as usize;
    assert_eq!(l.image()[off], 0x80);
    for (k, v) in [
        ("knob_s8", "128"),
        ("knob_u32", "0x100000000"),
        ("knob_u32", "-1"),
        ("knob_u32", "ten"),
    ] {
        o.sets = vec![(k.into(), v.into())];
        let e = load(&obj, &o).unwrap_err().to_string();
        assert!(e.contains(k) && e.contains(v), "{e}");
    }
}

#[test]
fn unknown_kfunc_is_named_with_its_program() {
    let e = refused("UNKNOWN_KFUNC");
    assert!(e.contains("kfunc scx_bpf_frobnicate"), "{e}");
    assert!(e.contains("t_enqueue"), "{e}");
    assert!(
        e.contains("scx_bpf_dsq_insert"),
        "lists what is provided: {e}"
    );
}

#[test]
fn unknown_map_type_is_named() {
    let e = refused("RINGBUF");
    assert!(e.contains("events") && e.contains("RINGBUF"), "{e}");
}

#[test]
fn unknown_callback_is_named() {
    let e = refused("UNKNOWN_CALLBACK");
    assert!(
        e.contains("cpu_acquire") && e.contains("t_cpu_acquire"),
        "{e}"
    );
}

#[test]
fn unknown_helper_is_named() {
    let e = refused("HELPER");
    assert!(
        e.contains("bpf_get_current_pid_tgid") && e.contains("t_enqueue"),
        "{e}"
    );
}

#[test]
fn unknown_scx_enum_is_named() {
    let e = refused("UNKNOWN_ENUM");
    assert!(
        e.contains("SCX_FROB_LEVEL") && e.contains("t_enqueue"),
        "{e}"
    );
}

#[test]
fn a_missing_sched_ext_ops_is_refused() {
    let e = refused("NO_OPS");
    assert!(e.contains("sched_ext_ops"), "{e}");
}

#[test]
fn ignored_callbacks_are_noted() {
    let obj = common::case(Some("DUMP"));
    let l = load(&obj, &opts()).unwrap();
    assert!(
        l.notes()
            .iter()
            .any(|n| n.contains("dump") && n.contains("never called")),
        "{:?}",
        l.notes()
    );
}

#[test]
fn not_bpf_objects_are_refused() {
    let e = load(b"hello, world", &opts()).unwrap_err().to_string();
    assert!(e.contains("not a BPF object"), "{e}");
    let host = std::fs::read(std::env::current_exe().unwrap()).unwrap();
    let e = load(&host, &opts()).unwrap_err().to_string();
    assert!(e.contains("not a BPF object"), "{e}");
}

#[test]
fn bad_cpu_counts_are_refused() {
    let obj = common::case(None);
    let mut o = opts();
    o.nr_cpus = 0;
    assert!(load(&obj, &o).is_err());
    o.nr_cpus = abi::memmap::MAX_CPUS as u32 + 1;
    assert!(load(&obj, &o).is_err());
}

/// Truncated and garbled copies of a real object never panic; truncated
/// ones are refused.
#[test]
fn garbled_objects_are_refused() {
    let obj = common::scheduler("scx_simple");
    assert!(load(&obj, &opts()).is_ok());
    let n = obj.len();
    for cut in (0..n).step_by((n / 300).max(1)) {
        assert!(load(&obj[..cut], &opts()).is_err(), "truncated at {cut}");
    }
    // Flip bytes across the file, a few at a time (a fixed LCG: repeatable).
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut loaded = 0;
    for _ in 0..400 {
        let mut g = obj.clone();
        for _ in 0..4 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let at = (x >> 33) as usize % n;
            g[at] ^= (x >> 8) as u8 | 1;
        }
        loaded += load(&g, &opts()).is_ok() as u32;
    }
    // Most flips land in DWARF, which the loader ignores.
    assert!(loaded > 0);
    // So flip inside what it reads: the code at the start, .BTF and
    // .BTF.ext (found by their magic), one byte at a time.
    let mut windows = Vec::new();
    windows.push(0..4096.min(n));
    for w in obj
        .windows(3)
        .enumerate()
        .filter(|w| w.1 == [0x9f, 0xeb, 0x01])
    {
        windows.push(w.0..(w.0 + 4096).min(n));
    }
    assert!(windows.len() >= 3, "found .BTF and .BTF.ext");
    for w in windows {
        for at in w.step_by(3) {
            let mut g = obj.clone();
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            g[at] ^= (x >> 8) as u8 | 1;
            let _ = load(&g, &opts());
        }
    }
}
