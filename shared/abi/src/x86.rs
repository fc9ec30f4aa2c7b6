//! x86-64 constants both sides use. The selectors are Linux's: this
//! machine's PVM checks that STAR's user code selector is 0x33.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

pub const SEL_KERNEL_CODE: u16 = 0x10;
pub const SEL_KERNEL_DATA: u16 = 0x18;
pub const SEL_USER_DATA: u16 = 0x2b;
pub const SEL_USER_CODE: u16 = 0x33;
pub const SEL_TSS: u16 = 0x40;

/// GDT entries in selector order (index = selector / 8); the TSS
/// descriptor at 0x40 is filled per vCPU by the VMM.
pub const GDT_ENTRIES: [u64; 8] = [
    0,
    0x00cf_9a00_0000_ffff, // 0x08 kernel code 32
    0x00af_9a00_0000_ffff, // 0x10 kernel code 64
    0x00cf_9200_0000_ffff, // 0x18 kernel data
    0x00cf_fa00_0000_ffff, // 0x23 user code 32
    0x00cf_f200_0000_ffff, // 0x2b user data
    0x00af_fa00_0000_ffff, // 0x33 user code 64
    0,
];

const _: () = {
    assert!(GDT_ENTRIES.len() * 8 == SEL_TSS as usize);
    assert!(SEL_USER_CODE as usize / 8 == 6);
    assert!(SEL_USER_DATA as usize / 8 == 5);
};

/// The 64-bit task-state segment, one per vCPU at
/// [`crate::memmap::tss_base`]: the VMM writes it whole (rsp0 = the vCPU's
/// kernel stack, no I/O bitmap), the core's `_start` rewrites `rsp0`.
/// `packed(4)` because the CPU puts the 8-byte stack pointers at offset 4.
#[repr(C, packed(4))]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct Tss {
    pub reserved0: u32,
    /// Stack loaded on an interrupt or exception from CPL3.
    pub rsp0: u64,
    pub rsp1: u64,
    pub rsp2: u64,
    pub reserved1: u64,
    /// Interrupt stack table (IST1..IST7); unused.
    pub ist: [u64; 7],
    pub reserved2: u64,
    pub reserved3: u16,
    /// Offset of the I/O permission bitmap; at or past the limit = none.
    pub iomap_base: u16,
}

const _: () = {
    assert!(core::mem::size_of::<Tss>() == 0x68);
    assert!(core::mem::offset_of!(Tss, rsp0) == 4);
    assert!(core::mem::offset_of!(Tss, ist) == 0x24);
    assert!(core::mem::offset_of!(Tss, iomap_base) == 0x66);
    assert!(core::mem::size_of::<Tss>() as u64 <= crate::memmap::TSS_STRIDE);
};

/// The vector of the DPL-3 gate CPL3 code uses to enter CPL0 (`int3`, the
/// one software interrupt this machine delivers from CPL3).
pub const VEC_SERVICE: u8 = 3;
/// First vector not reserved for exceptions.
pub const VEC_FIRST_IRQ: u8 = 32;

/// Exception vectors that push an error code.
pub const fn has_error_code(vector: u8) -> bool {
    matches!(vector, 8 | 10..=14 | 17 | 21 | 29 | 30)
}

/// Short name of an exception vector for error messages.
pub const fn exception_name(vector: u64) -> &'static str {
    match vector {
        0 => "#DE divide error",
        1 => "#DB debug",
        2 => "NMI",
        3 => "#BP breakpoint",
        4 => "#OF overflow",
        5 => "#BR bound range",
        6 => "#UD invalid opcode",
        7 => "#NM device not available",
        8 => "#DF double fault",
        10 => "#TS invalid TSS",
        11 => "#NP segment not present",
        12 => "#SS stack fault",
        13 => "#GP general protection",
        14 => "#PF page fault",
        16 => "#MF x87 error",
        17 => "#AC alignment check",
        18 => "#MC machine check",
        19 => "#XM SIMD error",
        _ => "exception",
    }
}
