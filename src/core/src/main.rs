//! The schedlab guest kernel ("core").
//!
//! This machine's KVM emulates every CPL0 instruction (about 0.65 µs
//! each) and runs CPL3 natively, so the core is split in two:
//! - `entry` (CPL0, assembly): the vCPU entry, exception stubs and the
//!   service gate, each a handful of instructions;
//! - everything else (CPL3, native): boot-info checks, the IDT, the task
//!   table and scheduler, the call table and the TLV writer.
//!
//! Everything here runs on one vCPU for now, without interrupts, so the
//! `Global` cells below are only ever touched by one flow of control at a
//! time; SMP brings per-CPU state and locks.
#![no_std]
#![no_main]

// The guest profile (workspace Cargo.toml) turns debug assertions off; a
// debug build here means the profile did not apply.
#[cfg(debug_assertions)]
compile_error!(
    "build the core with `--profile guest` (see build.sh): the guest profile did not apply"
);

mod boot;
mod calls;
mod entry;
mod global;
mod idt;
mod kstate;
mod sched;
mod task;
mod time;
mod tlv;

use shared::calltable::{AbiStamp, IMAGE_CORE};

/// Read by the host before it starts a VM: which call-table version this
/// core provides.
#[used]
#[unsafe(link_section = ".schedlab_abi")]
static ABI_STAMP: AbiStamp = AbiStamp::new(IMAGE_CORE, 0);

/// First Rust code on each vCPU, at CPL3 on the CPU's own stack (see
/// `entry`). Never returns: the run ends with a port write from CPL0.
#[unsafe(no_mangle)]
extern "C" fn kmain(cpu: u32) -> ! {
    if cpu != 0 {
        // Only the boot CPU runs for now; a stray vCPU stops itself.
        entry::exit_to_host(shared::boot::EXIT_BOOT_ERROR);
    }
    let info = match boot::validate() {
        Ok(info) => info,
        Err(why) => boot::refuse(why),
    };
    idt::install();
    time::init(&info);
    tlv::init(0);
    kstate::init(&info);
    calls::install_call_table();
    tlv::log(2, "core up");
    sched::start(&info)
}

#[panic_handler]
fn panic(p: &core::panic::PanicInfo) -> ! {
    let mut text = heapless::String::<240>::new();
    let _ = core::fmt::write(&mut text, format_args!("core panic: {p}"));
    sched::fail_run(text.as_bytes())
}
