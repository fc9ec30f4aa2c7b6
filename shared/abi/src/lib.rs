//! The ABI between the schedlab host (the VMM) and the guest (core and
//! operations). Everything both sides must agree on is defined here once:
//! the guest memory map, the call table, the boot info, the operation
//! configs, the TLV frame header and ring layout, and the kernel-state
//! layout the host reads for introspection. Every layout is `#[repr(C)]`
//! with its size and field offsets asserted at compile time, so a change
//! that would silently break the other side fails the build instead.
#![no_std]
#[cfg(test)]
extern crate std;

pub mod boot;
pub mod bpf;
pub mod calltable;
pub mod config;
pub mod idle;
pub mod ipc;
pub mod kstate;
pub mod memmap;
pub mod policy;
pub mod tlv;
pub mod topology;
pub mod x86;

/// A 4-byte ASCII tag read as a little-endian `u32`, so `tag(b"SPIN")`
/// shows up as the text "SPIN" in a hex dump of guest memory.
pub const fn tag(b: &[u8; 4]) -> u32 {
    u32::from_le_bytes(*b)
}

/// The inverse of [`tag`], for error messages: the tag's bytes, with any
/// non-printable byte replaced by `?`.
pub fn tag_text(t: u32) -> [u8; 4] {
    let mut b = t.to_le_bytes();
    for c in &mut b {
        if !c.is_ascii_graphic() {
            *c = b'?';
        }
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_reads_as_ascii_in_memory() {
        assert_eq!(tag(b"SPIN").to_le_bytes(), *b"SPIN");
        assert_eq!(&tag_text(tag(b"SPIN")), b"SPIN");
        assert_eq!(&tag_text(0x0000_4142), b"BA??");
    }
}
