//! Checks on the built guest core that no type system can make: its
//! stack frames stay small, and it holds no policy code. They read the
//! core embedded in this binary, so they test what actually runs.

use crate::images::{embedded_core, policy_names};
use object::{Object, ObjectSection, ObjectSymbol};

/// The largest stack frame a core function may take. The CPU stacks are
/// CPU_STACK_SIZE (16 KiB) and a call chain nests several frames; a frame
/// over a page once put CPU 1's locals inside CPU 0's stack. LLVM probes
/// any frame of a page or more with `sub rsp, 0x1000` steps, so a frame
/// this size or larger shows as a `sub rsp, imm32` at or above it.
const MAX_FRAME: u32 = 4096;

fn core() -> object::File<'static> {
    let elf = embedded_core().expect("the guest images (run make first)");
    object::File::parse(elf).expect("the embedded core parses")
}

/// Every `sub rsp, imm32` (48 81 EC imm32) immediate in `code`.
fn rsp_subtractions(code: &[u8]) -> Vec<(usize, u32)> {
    code.windows(7)
        .enumerate()
        .filter(|(_, w)| w[..3] == [0x48, 0x81, 0xEC])
        .map(|(at, w)| (at, u32::from_le_bytes([w[3], w[4], w[5], w[6]])))
        .collect()
}

#[test]
fn the_scanner_sees_a_large_frame() {
    // sub rsp, 0x1000 ; sub rsp, 0x20 (imm8 form, not counted)
    let code = [
        0x48, 0x81, 0xEC, 0x00, 0x10, 0x00, 0x00, 0x48, 0x83, 0xEC, 0x20,
    ];
    assert_eq!(rsp_subtractions(&code), [(0, 0x1000)]);
}

#[test]
#[cfg_attr(not(guest_images), ignore = "needs the guest images: run make first")]
fn no_core_function_has_a_frame_of_a_page_or_more() {
    let core = core();
    let text = core.section_by_name(".text").expect(".text");
    let base = text.address();
    let code = text.data().unwrap();
    let big: Vec<String> = rsp_subtractions(code)
        .into_iter()
        .filter(|&(_, n)| n >= MAX_FRAME)
        .map(|(at, n)| {
            let addr = base + at as u64;
            let f = core
                .symbols()
                .filter(|s| s.address() <= addr && addr < s.address() + s.size().max(1))
                .filter_map(|s| s.name().ok())
                .next()
                .unwrap_or("?");
            format!("{:#} (sub rsp, {n:#x})", rustc_demangle::demangle(f))
        })
        .collect();
    assert!(
        big.is_empty(),
        "frames of {MAX_FRAME} bytes or more: {big:?}"
    );
}

#[test]
#[cfg_attr(not(guest_images), ignore = "needs the guest images: run make first")]
fn the_core_holds_no_policy_code() {
    let names: Vec<String> = policy_names().map(str::to_lowercase).collect();
    assert!(!names.is_empty(), "the built-in policies are images");
    let core = core();
    let mut found = Vec::new();
    for s in core.symbols() {
        let Ok(raw) = s.name() else { continue };
        let name = format!("{:#}", rustc_demangle::demangle(raw));
        // A path component named like a policy (`rr`, `Eevdf`...), not a
        // word inside one (`insert_vtime` is the DSQ service).
        let hit = name
            .split("::")
            .map(|c| c.split('<').next().unwrap_or(c).to_lowercase())
            .any(|c| names.contains(&c));
        if hit {
            found.push(name);
        }
    }
    assert!(found.is_empty(), "policy code in the core: {found:?}");
}
