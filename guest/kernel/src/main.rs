//! The schedlab guest kernel ("core").
//!
//! This machine's KVM emulates every CPL0 instruction (about 0.65 µs
//! each) and runs CPL3 natively, so the core is split in two:
//! - `entry` (CPL0, assembly): the vCPU entry, exception stubs, the
//!   service gate, the tick and the wake-up IPI, each a handful of
//!   instructions;
//! - everything else (CPL3, native): boot-info checks, the IDT, per-CPU
//!   state, the scheduler around a pluggable policy, IPC, the call table,
//!   the TLV writer and the kernel-state records the host reads.
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
mod events;
mod futex;
mod global;
mod idt;
mod ipc;
mod kstate;
mod lock;
mod percpu;
mod sched;
mod steal;
mod task;
mod time;
mod tlv;

use abi::calltable::{AbiStamp, IMAGE_CORE, TaskEntry};
use abi::memmap::{CALL_TABLE_ADDR, OPERATION_LOAD_ADDR};
use core::sync::atomic::{AtomicU32, Ordering};

/// Read by the host before it starts a VM: which call-table version this
/// core provides.
#[used]
#[unsafe(link_section = ".schedlab_abi")]
static ABI_STAMP: AbiStamp = AbiStamp::new(IMAGE_CORE, 0);

/// Set by CPU 0 once the shared state is ready; the other CPUs wait for it.
static BOOT_GO: AtomicU32 = AtomicU32::new(0);
/// How long CPU 0 waits for the others to come online.
const ONLINE_TIMEOUT_NS: u64 = 2_000_000_000;

/// First Rust code on each vCPU, at CPL3 on the CPU's own stack with
/// interrupts off (see `entry`). Ends in the CPU's idle loop.
#[unsafe(no_mangle)]
extern "C" fn kmain(cpu: u32) -> ! {
    let entry_tsc = time::rdtsc();
    if let Err(why) = percpu::init(cpu) {
        boot::refuse(why);
    }
    // Before anything can fail: CPU 0's boot runs the policy's `init`,
    // whose refusal (or fault) must reach the host as a message.
    tlv::init(cpu);
    if cpu == 0 {
        boot_shared_state(entry_tsc);
        BOOT_GO.store(1, Ordering::Release);
    } else {
        while BOOT_GO.load(Ordering::Acquire) == 0 {
            core::hint::spin_loop();
        }
    }
    // Validated by CPU 0 before BOOT_GO.
    let info = boot::read();
    events::init(cpu);
    let stealing = steal::init(cpu);
    let cpuid_topo = entry::cpuid_topology();
    kstate::cpu_record(cpu, |r| {
        r.cpu = cpu;
        r.cpuid_topo = cpuid_topo;
        r.online = 1;
        r.clock_tsc = time::rdtsc();
        // The timer starts below: gaps are measured from here.
        r.irq_tsc = r.clock_tsc;
    });
    kstate::cpu_online();
    kstate::set_tick_period(time::ns_to_ticks(1_000_000_000 / info.tick_hz as u64));
    // The LAPIC timer counts at 1 GHz with divide-by-1 here.
    entry::start_timer(1_000_000_000 / info.tick_hz);
    if cpu == 0 {
        wait_for_cpus(&info);
        tlv::log(
            2,
            if stealing {
                "core up (steal time on)"
            } else {
                "core up (no steal time: runtimes include host preemption)"
            },
        );
        // SAFETY: the VMM loaded the operation's flat image at
        // OPERATION_LOAD_ADDR, whose first byte is its `extern "C"
        // fn(u64) -> i32` entry (operation.ld puts .text.entry first).
        let entry: TaskEntry = unsafe { core::mem::transmute(OPERATION_LOAD_ADDR as usize) };
        if let Err(why) = sched::start_main(entry, CALL_TABLE_ADDR) {
            sched::fail_run(why.as_bytes());
        }
        kstate::set_running();
    }
    sched::idle_loop(cpu, time::ns_to_ticks(1_000_000_000 / info.tick_hz as u64))
}

/// CPU 0 sets up what every CPU shares. Never inlined into `kmain`: its
/// locals would then be part of every CPU's `kmain` frame, and a frame
/// larger than the CPU stack puts one CPU's locals inside another's stack
/// (once seen as CPU 1 taking itself for CPU 0 and never publishing its
/// record). The guest-size check keeps every kernel frame under a page.
#[inline(never)]
fn boot_shared_state(entry_tsc: u64) {
    let info = boot::validate().unwrap_or_else(|why| boot::refuse(why));
    idt::install();
    entry::set_apic_ids(&info.topology);
    time::init(&info);
    kstate::init(&info, entry_tsc);
    calls::install_call_table();
    sched::init(&info).unwrap_or_else(|why| boot::refuse(why));
}

fn wait_for_cpus(info: &abi::boot::BootInfo) {
    let deadline = time::now_ns() + ONLINE_TIMEOUT_NS;
    let hdr = abi::memmap::KERNEL_STATE_ADDR as *const abi::kstate::KernelStateHeader;
    loop {
        // SAFETY: the header is in the kernel-state region; cpus_online is
        // only ever incremented atomically (kstate::cpu_online).
        let online = unsafe { core::ptr::read_volatile(core::ptr::addr_of!((*hdr).cpus_online)) };
        if online >= info.cpu_count {
            return;
        }
        if time::now_ns() > deadline {
            sched::fail_run(b"core: not every vCPU came online within 2 s");
        }
        core::hint::spin_loop();
    }
}

#[panic_handler]
fn panic(p: &core::panic::PanicInfo) -> ! {
    let mut text = heapless::String::<{ abi::tlv::MAX_TEXT }>::new();
    let _ = core::fmt::write(&mut text, format_args!("core panic: {p}"));
    sched::fail_run(text.as_bytes())
}
