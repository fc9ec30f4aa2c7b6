//! Target `bpf_object`: a sched_ext `.bpf.o` as `--policy` reads it,
//! through the loader (`bpf::load`). Refusing it is fine; a panic is not,
//! and an object the loader accepts must give a program image the guest's
//! runtime would accept: the header's magic and version, every table and
//! area inside the image, the image inside its region, every call naming
//! a helper or kfunc the runtime has (or a missing weak kfunc) and every
//! sub-program call landing inside the code.

use abi::bpf::{
    BPF_PROGRAM_MAGIC, BPF_PROGRAM_VERSION, BpfHeader, KFUNC_MISSING, KFUNCS, PSEUDO_CALL,
    PSEUDO_KFUNC_CALL, helper_name,
};
use abi::memmap::BPF_PROGRAM_SIZE;
use zerocopy::FromBytes;

pub fn bpf_object(data: &[u8]) {
    for nr_cpus in [1, 4] {
        let opts = bpf::LoadOptions {
            nr_cpus,
            slice_ns: 1_000_000,
            sets: Vec::new(),
        };
        if let Ok(l) = bpf::load(data, &opts) {
            check(l.image());
        }
    }
}

fn check(img: &[u8]) {
    assert!(img.len() as u64 <= BPF_PROGRAM_SIZE, "image too large");
    let (h, _) = BpfHeader::read_from_prefix(img).expect("a header");
    assert_eq!(
        (h.magic, h.version),
        (BPF_PROGRAM_MAGIC, BPF_PROGRAM_VERSION)
    );
    assert_eq!(h.size as usize, img.len(), "header size");
    let inside = |off: u32, len: u64| u64::from(off) + len <= img.len() as u64;
    assert!(inside(h.insns_off, u64::from(h.nr_insns) * 8), "insns");
    assert!(inside(h.funcs_off, u64::from(h.nr_funcs) * 4), "funcs");
    assert!(inside(h.ro_off, u64::from(h.ro_len)), "ro area");
    assert!(inside(h.rw_off, u64::from(h.rw_len)), "rw area");
    assert!(inside(h.meta_off, u64::from(h.meta_len)), "meta area");
    let n = h.nr_insns as usize;
    for i in 0..n {
        let at = h.insns_off as usize + 8 * i;
        let (code, regs) = (img[at], img[at + 1]);
        let imm = i32::from_le_bytes(img[at + 4..at + 8].try_into().unwrap());
        if code != 0x85 {
            continue;
        }
        match regs >> 4 {
            0 => assert!(helper_name(imm as u32).is_some(), "helper {imm}"),
            s if s == PSEUDO_KFUNC_CALL => assert!(
                imm == KFUNC_MISSING || (imm >= 0 && (imm as usize) < KFUNCS.len()),
                "kfunc {imm}"
            ),
            s if s == PSEUDO_CALL => {
                let t = i as i64 + 1 + i64::from(imm);
                assert!(t >= 0 && (t as usize) < n, "call target {t}");
            }
            s => panic!("call with src_reg {s}"),
        }
    }
}
