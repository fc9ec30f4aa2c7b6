//! The IDT, filled at CPL3: every page is user-accessible, and writing 32
//! gates natively costs nothing, where the same loop at CPL0 would be
//! hundreds of emulated instructions.

use crate::entry::{VEC_SPURIOUS, VEC_TIMER, VEC_WAKE, exc_table, irq_table};
use abi::memmap::IDT_ADDR;
use abi::x86::{SEL_KERNEL_CODE, VEC_SERVICE};

#[repr(C)]
#[derive(Clone, Copy)]
struct Gate {
    offset_lo: u16,
    selector: u16,
    ist: u8,
    attr: u8,
    offset_mid: u16,
    offset_hi: u32,
    reserved: u32,
}

const _: () = assert!(core::mem::size_of::<Gate>() == 16);

/// Present, 64-bit interrupt gate (IF cleared on entry), DPL 0.
const ATTR_KERNEL: u8 = 0x8E;
/// The same, callable from CPL3.
const ATTR_USER: u8 = 0xEE;

pub fn install() {
    // SAFETY: exc_table and irq_table are tables of code addresses
    // emitted by entry.rs; reading them is a plain read of rodata.
    let (exc, irq) = unsafe { (&exc_table, &irq_table) };
    let irqs = [VEC_TIMER, VEC_WAKE, VEC_SPURIOUS]
        .into_iter()
        .map(|v| v as usize)
        .zip(irq.iter());
    for (vector, &addr) in exc.iter().enumerate().chain(irqs) {
        let attr = if vector == VEC_SERVICE as usize {
            ATTR_USER
        } else {
            ATTR_KERNEL
        };
        let gate = Gate {
            offset_lo: addr as u16,
            selector: SEL_KERNEL_CODE,
            ist: 0,
            attr,
            offset_mid: (addr >> 16) as u16,
            offset_hi: (addr >> 32) as u32,
            reserved: 0,
        };
        // SAFETY: IDT_ADDR..+4 KiB is the IDT region of the memory map,
        // identity-mapped and writable from CPL3; vector < 256.
        unsafe {
            core::ptr::write_volatile((IDT_ADDR as *mut Gate).add(vector), gate);
        }
    }
}
