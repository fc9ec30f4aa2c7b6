//! The host must never trust the guest. These tests boot tiny hand-made
//! "cores" (a few CPL0 instructions in a minimal ELF, next to the real
//! spin images) that misbehave in ways the real core never would, and
//! check that schedlab ends each run with a clear error instead of a
//! panic or a hang.

mod common;

use abi::memmap::{KERNEL_LOAD_ADDR, TLV_RING_DATA_SIZE, TLV_RING_HEADER_SIZE, tlv_ring_base};
use abi::tlv::{FrameHeader, MSG_TEXT, RING_MAGIC, RING_WRITE_POS_OFFSET};
use common::*;
use std::time::Duration;

/// Just enough of an x86-64 assembler for straight-line CPL0 code.
#[derive(Default)]
struct Asm(Vec<u8>);

impl Asm {
    fn mov_imm64(&mut self, reg: u8, v: u64) -> &mut Self {
        // REX.W B8+r: rax=0, rcx=1, rdx=2, rsp=4, rsi=6, rdi=7
        self.0.extend([0x48, 0xb8 + reg]);
        self.0.extend(v.to_le_bytes());
        self
    }
    /// mov dword [rax + disp8], imm32
    fn store32_rax(&mut self, disp: u8, v: u32) -> &mut Self {
        self.0.extend([0xc7, 0x40, disp]);
        self.0.extend(v.to_le_bytes());
        self
    }
    /// mov qword [rax + disp8], imm32 (sign-extended)
    fn store64_rax(&mut self, disp: u8, v: u32) -> &mut Self {
        self.0.extend([0x48, 0xc7, 0x40, disp]);
        self.0.extend(v.to_le_bytes());
        self
    }
    fn rep_movsb(&mut self) -> &mut Self {
        self.0.extend([0xf3, 0xa4]);
        self
    }
    /// mov edx, port; mov eax, value; out dx, eax
    fn out32(&mut self, port: u16, value: u32) -> &mut Self {
        self.0.push(0xba);
        self.0.extend((port as u32).to_le_bytes());
        self.0.push(0xb8);
        self.0.extend(value.to_le_bytes());
        self.0.push(0xef);
        self
    }
    /// mov edx, port; mov al, value; out dx, al
    fn out8(&mut self, port: u16, value: u8) -> &mut Self {
        self.0.push(0xba);
        self.0.extend((port as u32).to_le_bytes());
        self.0.extend([0xb0, value, 0xee]);
        self
    }
    fn spin_forever(&mut self) -> &mut Self {
        self.0.extend([0xeb, 0xfe]);
        self
    }
}

const RAX: u8 = 0;
const RCX: u8 = 1;
const RSP: u8 = 4;
const RSI: u8 = 6;
const RDI: u8 = 7;
const PORT_EXIT: u16 = abi::boot::PORT_EXIT;

/// A minimal ELF64 executable: `code` (then `data`) loaded at
/// KERNEL_LOAD_ADDR, entry at its first byte, with a core ABI stamp new
/// enough for any operation.
fn core_elf(code: &[u8], data: &[u8]) -> Vec<u8> {
    const CODE_OFF: usize = 0x100;
    let mut image = code.to_vec();
    image.extend_from_slice(data);
    let stamp_off = (CODE_OFF + image.len()).next_multiple_of(8);
    let shstr = b"\0.schedlab_abi\0.shstrtab\0";
    let shstr_off = stamp_off + 16;
    let sh_off = (shstr_off + shstr.len()).next_multiple_of(8);
    let mut f = vec![0u8; sh_off + 3 * 64];
    let put = |f: &mut Vec<u8>, at: usize, b: &[u8]| f[at..at + b.len()].copy_from_slice(b);
    // ELF header
    put(&mut f, 0, b"\x7fELF\x02\x01\x01");
    put(&mut f, 16, &2u16.to_le_bytes()); // ET_EXEC
    put(&mut f, 18, &62u16.to_le_bytes()); // EM_X86_64
    put(&mut f, 20, &1u32.to_le_bytes());
    put(&mut f, 24, &KERNEL_LOAD_ADDR.to_le_bytes()); // e_entry
    put(&mut f, 32, &64u64.to_le_bytes()); // e_phoff
    put(&mut f, 40, &(sh_off as u64).to_le_bytes());
    put(&mut f, 52, &64u16.to_le_bytes()); // e_ehsize
    put(&mut f, 54, &56u16.to_le_bytes()); // e_phentsize
    put(&mut f, 56, &1u16.to_le_bytes()); // e_phnum
    put(&mut f, 58, &64u16.to_le_bytes()); // e_shentsize
    put(&mut f, 60, &3u16.to_le_bytes()); // e_shnum
    put(&mut f, 62, &2u16.to_le_bytes()); // e_shstrndx
    // One PT_LOAD, RWX.
    put(&mut f, 64, &1u32.to_le_bytes());
    put(&mut f, 68, &7u32.to_le_bytes());
    put(&mut f, 72, &(CODE_OFF as u64).to_le_bytes());
    put(&mut f, 80, &KERNEL_LOAD_ADDR.to_le_bytes());
    put(&mut f, 88, &KERNEL_LOAD_ADDR.to_le_bytes());
    put(&mut f, 96, &(image.len() as u64).to_le_bytes());
    put(&mut f, 104, &(image.len() as u64).to_le_bytes());
    put(&mut f, 112, &0x1000u64.to_le_bytes());
    put(&mut f, CODE_OFF, &image);
    for (i, w) in [b"ABIS", &1000u32.to_le_bytes(), b"CORE", &[0; 4]]
        .iter()
        .enumerate()
    {
        put(&mut f, stamp_off + 4 * i, &w[..]);
    }
    put(&mut f, shstr_off, shstr);
    // Section headers: null, .schedlab_abi, .shstrtab.
    let sh = |f: &mut Vec<u8>, i: usize, name: u32, ty: u32, off: usize, size: usize| {
        let at = sh_off + 64 * i;
        put(f, at, &name.to_le_bytes());
        put(f, at + 4, &ty.to_le_bytes());
        put(f, at + 24, &(off as u64).to_le_bytes());
        put(f, at + 32, &(size as u64).to_le_bytes());
        put(f, at + 48, &1u64.to_le_bytes());
    };
    sh(&mut f, 1, 1, 1, stamp_off, 16);
    sh(&mut f, 2, 15, 3, shstr_off, shstr.len());
    f
}

/// Run `spin` with the given fake core next to the real operation images.
fn run_core(code: &[u8], data: &[u8], args: &[&str]) -> (Run, serde_json::Value) {
    let _vm = lock();
    let dir = image_copy();
    std::fs::write(dir.path().join("kernel.elf"), core_elf(code, data)).unwrap();
    let mut argv = vec!["spin", "--json"];
    argv.extend_from_slice(args);
    let r = schedlab(&argv, &[("SCHEDLAB_GUEST_DIR", dir.path())]);
    assert!(
        !r.stderr.contains("panicked"),
        "the host panicked: {}",
        r.stderr
    );
    let v = json(&r);
    (r, v)
}

fn ring_header(a: &mut Asm, write_pos: u32) {
    a.mov_imm64(RAX, tlv_ring_base(0))
        .store32_rax(0, RING_MAGIC)
        .store32_rax(4, TLV_RING_DATA_SIZE as u32)
        .store64_rax(RING_WRITE_POS_OFFSET as u8, write_pos);
}

#[test]
fn write_pos_beyond_the_ring_is_a_malformed_ring() {
    let mut a = Asm::default();
    ring_header(&mut a, TLV_RING_DATA_SIZE as u32 + 1);
    a.out32(PORT_EXIT, abi::boot::EXIT_DONE).spin_forever();
    let (r, v) = run_core(&a.0, &[], &[]);
    assert_eq!(r.code, 70);
    assert_eq!(v["error"]["kind"], "malformed_ring", "{v}");
    let m = v["error"]["message"].as_str().unwrap();
    assert!(
        m.starts_with("malformed TLV ring on vCPU 0: write_pos 32769"),
        "{m}"
    );
}

#[test]
fn bad_frames_are_counted_and_the_stream_goes_on() {
    // A frame with a bad CRC, one with an unknown tag, then the panic text.
    let mut bytes = Vec::new();
    let mut frame = |tag: u32, payload: &[u8], crc: u32| {
        let h = FrameHeader::new(tag, payload, crc);
        bytes.extend_from_slice(zerocopy::IntoBytes::as_bytes(&h));
        bytes.extend_from_slice(payload);
    };
    frame(MSG_TEXT, b"corrupted", 0x1234_5678);
    frame(abi::tag(b"WHAT"), b"??", crc32fast::hash(b"??"));
    let text = b"hostile core gave up";
    frame(MSG_TEXT, text, crc32fast::hash(text));
    let data_at = KERNEL_LOAD_ADDR + 0x200;
    let mut a = Asm::default();
    a.mov_imm64(RSI, data_at)
        .mov_imm64(RDI, tlv_ring_base(0) + TLV_RING_HEADER_SIZE)
        .mov_imm64(RCX, bytes.len() as u64)
        .rep_movsb();
    ring_header(&mut a, bytes.len() as u32);
    a.out32(PORT_EXIT, abi::boot::EXIT_PANIC).spin_forever();
    assert!(a.0.len() <= 0x200);
    let mut code = a.0.clone();
    code.resize(0x200, 0xcc);
    let (r, v) = run_core(&code, &bytes, &[]);
    assert_eq!(r.code, 70);
    assert_eq!(v["error"]["kind"], "guest_panic", "{v}");
    assert_eq!(
        v["error"]["message"],
        "the guest panicked on vCPU 0: hostile core gave up"
    );
    assert_eq!(v["frames"]["crc_errors"], 1);
    assert_eq!(v["frames"]["unknown_tags"], 1);
    assert_eq!(v["frames"]["ok"], 1);
}

#[test]
fn a_cpl0_loop_is_stopped_at_the_deadline() {
    let mut a = Asm::default();
    a.spin_forever();
    let (r, v) = run_core(&a.0, &[], &["--timeout", "1s"]);
    assert_eq!(r.code, 70);
    assert_eq!(v["error"]["kind"], "deadline", "{v}");
    let m = v["error"]["message"].as_str().unwrap();
    assert!(m.contains("run stopped on vCPU 0 at rip 0x200000"), "{m}");
    assert!(r.took < Duration::from_secs(3), "took {:?}", r.took);
}

#[test]
fn stray_port_io_is_reported_not_ignored() {
    let mut a = Asm::default();
    a.out8(0x3f8, b'A').spin_forever();
    let (r, v) = run_core(&a.0, &[], &[]);
    assert_eq!(r.code, 70);
    assert_eq!(v["error"]["kind"], "unexpected_io", "{v}");
    let m = v["error"]["message"].as_str().unwrap();
    assert!(m.contains("out 0x41 to port 0x3f8 (1 bytes)"), "{m}");
}

#[test]
fn fault_exit_with_a_wild_stack_pointer_is_still_reported() {
    let mut a = Asm::default();
    a.mov_imm64(RSP, 0xffff_ffff_ffff_fff0)
        .out32(PORT_EXIT, abi::boot::EXIT_FAULT)
        .spin_forever();
    let (r, v) = run_core(&a.0, &[], &[]);
    assert_eq!(r.code, 70);
    assert_eq!(v["error"]["kind"], "guest_fault", "{v}");
    let m = v["error"]["message"].as_str().unwrap();
    assert!(m.contains("fault frame is unreadable"), "{m}");
}
