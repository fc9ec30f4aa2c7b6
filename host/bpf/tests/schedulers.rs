//! The shared sched_ext schedulers, compiled with clang at test time and
//! loaded; the image is read back with `abi::bpf`'s layouts and checked
//! against the object as `llvm-objdump` shows it and the C sources say.

mod common;

use abi::bpf::{
    CB_DISABLE_INDEX, FUNC_PTR_TAG, KFUNC_MISSING, MAP_QUEUE, PSEUDO_CALL, PSEUDO_KFUNC_CALL,
    ScxEntity, ScxExitInfo, ScxTask, kfunc_index, map_handle, map_layout,
};
use abi::policy::POLICY_CALLBACKS;
use bpf::{LoadOptions, Loaded, load};
use common::{Image, annotations};
use core::mem::offset_of;
use std::sync::OnceLock;

const SLICE: u64 = 3_000_000;

fn opts(nr_cpus: u32, sets: &[(&str, &str)]) -> LoadOptions {
    LoadOptions {
        nr_cpus,
        slice_ns: SLICE,
        sets: sets
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect(),
    }
}

fn simple() -> &'static [u8] {
    static O: OnceLock<Vec<u8>> = OnceLock::new();
    O.get_or_init(|| common::scheduler("scx_simple"))
}

fn central() -> &'static [u8] {
    static O: OnceLock<Vec<u8>> = OnceLock::new();
    O.get_or_init(|| common::scheduler("scx_central"))
}

/// Image index of (section, byte offset) from objdump.
fn index_of(img: &Image, dump_progs: &[String], section: &str, off: u64) -> usize {
    let base = if let Some(f) = section.split_once('/').map(|s| s.1) {
        img.entry(f) as usize
    } else {
        assert_eq!(section, ".text");
        // .text follows every struct_ops program.
        dump_progs
            .iter()
            .map(|p| {
                let e = img.progs().into_iter().find(|x| &x.2 == p).unwrap();
                (e.0 + e.1) as usize
            })
            .max()
            .unwrap()
    };
    base + (off / 8) as usize
}

fn struct_ops_programs(dump: &str) -> Vec<String> {
    dump.lines()
        .filter_map(|l| l.strip_prefix("Disassembly of section struct_ops"))
        .map(|l| {
            l.split_once('/')
                .unwrap()
                .1
                .trim_end_matches(':')
                .to_string()
        })
        .collect()
}

fn callback(img: &Image, name: &str) -> Option<String> {
    let i = POLICY_CALLBACKS
        .iter()
        .position(|c| *c == name)
        .unwrap_or(CB_DISABLE_INDEX);
    let v = img.u32(offset_of!(abi::bpf::BpfHeader, callbacks) + 4 * i);
    (v != 0).then(|| img.progs()[v as usize - 1].2.clone())
}

fn check_core_and_calls(obj: &[u8], l: &Loaded, tag: &str) -> usize {
    let img = Image(l.image());
    let dump = common::objdump(obj, tag);
    let progs = struct_ops_programs(&dump);
    let mut checked = 0;
    let slice = offset_of!(ScxTask, scx) + offset_of!(ScxEntity, slice);
    let vtime = offset_of!(ScxTask, scx) + offset_of!(ScxEntity, dsq_vtime);
    for (sec, off, note) in annotations(&dump) {
        let i = index_of(&img, &progs, &sec, off);
        if note.contains("CO-RE <byte_off>") {
            let want = if note.contains("task_struct::scx.slice ") {
                Some(slice)
            } else if note.contains("task_struct::scx.dsq_vtime ") {
                Some(vtime)
            } else if note.contains("scx_exit_info::exit_code ") {
                Some(offset_of!(ScxExitInfo, exit_code))
            } else if note.contains("scx_exit_info::msg ") {
                Some(offset_of!(ScxExitInfo, msg))
            } else if note.contains("task_struct::pid ") {
                Some(offset_of!(ScxTask, pid))
            } else {
                None
            };
            if let Some(w) = want {
                // A load/store carries it in `off`, an ALU op in `imm`.
                let class = img.insn(i)[0] & 7;
                let got = if (1..=3).contains(&class) {
                    img.off(i) as i64
                } else {
                    img.imm(i) as i64
                };
                assert_eq!(got, w as i64, "{note} at {sec}+{off:#x}");
                checked += 1;
            }
        } else if note.contains("CO-RE <field_exists>")
            && note.contains("scx_exit_info::exit_code ")
        {
            // schedlab's scx_exit_info has exit_code.
            let v = if img.insn(i)[0] == 0x18 {
                img.ld_imm64(i)
            } else {
                img.imm(i) as u64
            };
            assert_eq!(v, 1, "{note}");
            checked += 1;
        } else if note.contains("R_BPF_64_64") {
            // bpf_ksym_exists(kfunc): 1 for a kfunc schedlab provides.
            let sym = note.split_whitespace().last().unwrap();
            if sym.starts_with("scx_bpf_") || sym.starts_with("bpf_") {
                assert_eq!(img.ld_imm64(i), kfunc_index(sym).is_some() as u64, "{sym}");
                checked += 1;
            }
        } else if note.contains("R_BPF_64_32") {
            let sym = note.split_whitespace().last().unwrap();
            if let Some(k) = kfunc_index(sym) {
                assert_eq!(img.src(i), PSEUDO_KFUNC_CALL, "{sym}");
                assert_eq!(img.imm(i), k as i32, "{sym}");
                assert_eq!(l.call_at(i as u32).as_deref(), Some(sym));
                checked += 1;
            } else if sym == ".text" || !sym.starts_with("scx_") {
                // A call into .text: lands on a function start.
                if img.src(i) == PSEUDO_CALL {
                    let t = i as i64 + img.imm(i) as i64 + 1;
                    assert!(img.funcs().contains(&(t as u32)), "call at {i}");
                    checked += 1;
                }
            }
        }
    }
    checked
}

#[test]
fn simple_relocates_task_fields_kfuncs_and_globals() {
    let l = load(simple(), &opts(2, &[])).unwrap();
    let n = check_core_and_calls(simple(), &l, "simple-check");
    assert!(n > 10, "only {n} relocations checked");
    assert_eq!(l.name(), "simple");
    let img = Image(l.image());
    // Every sub-program call and jump is inside the array.
    for i in 0..img.nr_insns() {
        assert!(img.insn(i)[1] & 0x0f < 11);
    }
    // __SCX_DSQ_LOCAL is filled and the instructions load its address.
    let g = l.global("__SCX_DSQ_LOCAL").expect("__SCX_DSQ_LOCAL");
    assert!(g.read_only);
    assert_eq!(img.at(g.addr, 8), abi::policy::DSQ_LOCAL);
    let dfl = l.global("__SCX_SLICE_DFL").expect("__SCX_SLICE_DFL");
    assert_eq!(img.at(dfl.addr, 8), SLICE);
    let loads_dfl =
        (0..img.nr_insns() - 1).any(|i| img.insn(i)[0] == 0x18 && img.ld_imm64(i) == dfl.addr);
    assert!(loads_dfl, "no ld_imm64 of __SCX_SLICE_DFL's address");
    // No ld_imm64 keeps a pseudo source register.
    for i in 0..img.nr_insns() {
        if img.insn(i)[0] == 0x18 {
            assert_eq!(img.src(i), 0, "ld_imm64 at {i}");
        }
    }
}

#[test]
fn simple_callbacks_bind_to_their_programs() {
    let l = load(simple(), &opts(2, &[])).unwrap();
    let img = Image(l.image());
    // From scx_simple.bpf.c's SCX_OPS_DEFINE.
    for (cb, prog) in [
        ("select_cpu", "simple_select_cpu"),
        ("enqueue", "simple_enqueue"),
        ("dispatch", "simple_dispatch"),
        ("running", "simple_running"),
        ("stopping", "simple_stopping"),
        ("enable", "simple_enable"),
        ("init", "simple_init"),
        ("exit", "simple_exit"),
    ] {
        assert_eq!(callback(&img, cb).as_deref(), Some(prog), "{cb}");
        assert!(
            l.programs().contains(&(cb.to_string(), prog.to_string())),
            "{cb}"
        );
        let e = img.entry(prog);
        assert_eq!(l.program_of(e), Some(prog));
        let line = l.source_line(e).expect("line info");
        assert_eq!(line.file, "scx_simple.bpf.c");
        assert!(line.line > 0 && !line.text.is_empty());
    }
    for cb in ["dequeue", "tick", "quiescent", "disable"] {
        assert_eq!(callback(&img, cb), None, "{cb}");
    }
    assert_eq!(
        img.u32(offset_of!(abi::bpf::BpfHeader, magic)),
        abi::bpf::BPF_PROGRAM_MAGIC
    );
    assert_eq!(
        img.u32(offset_of!(abi::bpf::BpfHeader, size)) as usize,
        l.image().len()
    );
}

#[test]
fn fifo_sched_set_lands_in_rodata() {
    let off = load(simple(), &opts(2, &[])).unwrap();
    let on = load(simple(), &opts(2, &[("fifo_sched", "1")])).unwrap();
    let hex = load(simple(), &opts(2, &[("fifo_sched", "0x1")])).unwrap();
    let g = on.global("fifo_sched").expect("fifo_sched");
    assert!(g.read_only);
    assert_eq!(g.size, 1);
    let ro = offset_of!(abi::bpf::BpfHeader, ro_off);
    let img = Image(on.image());
    let (ro_off, ro_len) = (img.u32(ro) as u64, img.u32(ro + 4) as u64);
    let rel = g.addr - abi::memmap::BPF_PROGRAM_ADDR;
    assert!(rel >= ro_off && rel < ro_off + ro_len);
    assert_eq!(img.at(g.addr, 1), 1);
    assert_eq!(Image(hex.image()).at(g.addr, 1), 1);
    assert_eq!(Image(off.image()).at(g.addr, 1), 0);
    // bool: 2 does not fit; unknown names are named.
    let e = load(simple(), &opts(2, &[("fifo_sched", "2")])).unwrap_err();
    assert!(e.to_string().contains("fifo_sched"), "{e}");
    let e = load(simple(), &opts(2, &[("no_such_knob", "1")])).unwrap_err();
    assert!(e.to_string().contains("no_such_knob"), "{e}");
    assert!(
        e.to_string().contains("fifo_sched"),
        "lists the settable: {e}"
    );
}

#[test]
fn central_relocates_and_sizes_per_cpu_state() {
    let cpus = 3;
    let l = load(central(), &opts(cpus, &[("central_cpu", "2")])).unwrap();
    let n = check_core_and_calls(central(), &l, "central-check");
    assert!(n > 20, "only {n} relocations checked");
    let img = Image(l.image());
    assert_eq!(l.name(), "central");
    // .flags = SCX_OPS_ENQ_LAST, whose value vmlinux.h states.
    let vmlinux = std::fs::read_to_string(common::scx_dir().join("vmlinux/vmlinux.h")).unwrap();
    let enq_last: u64 = vmlinux
        .lines()
        .find_map(|l| l.trim().strip_prefix("SCX_OPS_ENQ_LAST = "))
        .map(|v| {
            v.trim_end_matches(',')
                .trim_end_matches("ULL")
                .parse()
                .unwrap()
        })
        .unwrap();
    assert_eq!(
        img.u64(offset_of!(abi::bpf::BpfHeader, ops_flags)),
        enq_last
    );
    // nr_cpu_ids and central_cpu.
    let g = l.global("nr_cpu_ids").unwrap();
    assert_eq!(img.at(g.addr, 4), cpus as u64);
    let g = l.global("central_cpu").unwrap();
    assert_eq!(img.at(g.addr, 4), 2);
    // RESIZABLE_ARRAY sections hold one element per CPU.
    let gimme = l.global("cpu_gimme_task").unwrap();
    assert_eq!(gimme.size, cpus as u64); // bool
    let started = l.global("cpu_started_at").unwrap();
    assert_eq!(started.size, 8 * cpus as u64); // u64
    let maps = img.maps();
    let row = maps
        .iter()
        .find(|m| m.name == ".data.cpu_started_at")
        .unwrap();
    assert_eq!(row.value_size, 8 * cpus);
    // The queue: QUEUE of s32, 4096 entries (the source's declaration).
    let (qi, q) = maps
        .iter()
        .enumerate()
        .find(|m| m.1.name == "central_q")
        .unwrap();
    assert_eq!(
        (q.kind, q.key_size, q.value_size, q.max_entries),
        (MAP_QUEUE, 0, 4, 4096)
    );
    let lay = map_layout(MAP_QUEUE, 0, 4, 4096, cpus).unwrap();
    assert_eq!(q.values_len as u64, lay.values_len);
    assert_eq!(q.meta_len as u64, lay.meta_len);
    let h = offset_of!(abi::bpf::BpfHeader, rw_off);
    let (rw, rw_len) = (img.u32(h), img.u32(h + 4));
    assert!(q.values_off >= rw && q.values_off + q.values_len <= rw + rw_len);
    let h = offset_of!(abi::bpf::BpfHeader, meta_off);
    let (meta, meta_len) = (img.u32(h), img.u32(h + 4));
    assert!(q.meta_off >= meta && q.meta_off + q.meta_len <= meta + meta_len);
    // Programs load the queue's handle.
    let handle = map_handle(qi as u32);
    assert!((0..img.nr_insns() - 1).any(|i| img.insn(i)[0] == 0x18 && img.ld_imm64(i) == handle));
    // The timer callback's address is a tagged function entry, and a program.
    let timer = img.entry("central_timerfn");
    assert_eq!(l.program_of(timer), Some("central_timerfn"));
    assert!(
        (0..img.nr_insns() - 1)
            .any(|i| img.insn(i)[0] == 0x18 && img.ld_imm64(i) == FUNC_PTR_TAG | timer as u64)
    );
    // uei's members for the host to read.
    let uei = l.global("uei").unwrap();
    let offs: Vec<u64> = ["kind", "exit_code", "reason", "msg"]
        .iter()
        .map(|m| uei.member_addr(m).unwrap_or_else(|| panic!("uei.{m}")) - uei.addr)
        .collect();
    assert!(offs.windows(2).all(|w| w[0] < w[1]), "{offs:?}");
    assert!(
        l.notes().iter().all(|n| !n.contains("weak kfunc")),
        "{:?}",
        l.notes()
    );
}

#[test]
fn weak_missing_kfunc_is_kfunc_missing() {
    let obj = common::case(Some("WEAK_KFUNC"));
    let l = load(&obj, &opts(2, &[])).unwrap();
    let img = Image(l.image());
    let calls: Vec<usize> = (0..img.nr_insns())
        .filter(|&i| l.call_at(i as u32).as_deref() == Some("scx_bpf_frobnicate"))
        .collect();
    assert_eq!(calls.len(), 1);
    assert_eq!(img.src(calls[0]), PSEUDO_KFUNC_CALL);
    assert_eq!(img.imm(calls[0]), KFUNC_MISSING);
    // bpf_ksym_exists() of it is a constant 0.
    let dump = common::objdump(&obj, "weak-check");
    let progs = struct_ops_programs(&dump);
    let exists: Vec<u64> = annotations(&dump)
        .into_iter()
        .filter(|a| a.2.contains("R_BPF_64_64") && a.2.ends_with("scx_bpf_frobnicate"))
        .map(|a| img.ld_imm64(index_of(&img, &progs, &a.0, a.1)))
        .collect();
    assert_eq!(exists, vec![0]);
    assert!(
        l.notes().iter().any(|n| n.contains("scx_bpf_frobnicate")),
        "{:?}",
        l.notes()
    );
}

#[test]
fn load_times() {
    for (name, obj) in [("scx_simple", simple()), ("scx_central", central())] {
        let t = std::time::Instant::now();
        let n = 20;
        for _ in 0..n {
            load(obj, &opts(4, &[])).unwrap();
        }
        println!("{name}: {:?} per load", t.elapsed() / n);
    }
}
