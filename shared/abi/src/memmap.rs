//! The guest physical memory map. The guest is identity-mapped, so these
//! are also the guest's virtual addresses. Every region is named once here;
//! the `const` assertions at the bottom fail the build if two regions
//! overlap or a region leaves guest RAM.

/// Smallest guest RAM the map fits in.
pub const GUEST_RAM_MIN: u64 = 64 << 20;
/// Default guest RAM size.
pub const GUEST_RAM_DEFAULT: u64 = 64 << 20;

/// Most vCPUs the layout has room for (TSS slots, kernel stacks, rings).
pub const MAX_CPUS: usize = 64;
/// Most tasks alive at once (task table slots and task stacks).
pub const MAX_TASKS: usize = 256;

/// The first 4 KiB page is left unmapped so a null pointer faults.
pub const NULL_GUARD_SIZE: u64 = 0x1000;

/// GDT written by the VMM (Linux's selector layout, see [`crate::x86`]).
pub const GDT_ADDR: u64 = 0x1000;
pub const GDT_SIZE: u64 = 0x1000;
/// IDT: 256 16-byte gates, filled by the core.
pub const IDT_ADDR: u64 = 0x2000;
pub const IDT_SIZE: u64 = 0x1000;
/// One 128-byte TSS per vCPU, written by the VMM (rsp0 = kernel stack).
pub const TSS_ADDR: u64 = 0x3000;
pub const TSS_STRIDE: u64 = 0x80;
pub const TSS_SIZE: u64 = TSS_STRIDE * MAX_CPUS as u64;
/// VMM -> core: [`crate::boot::BootInfo`].
pub const BOOT_INFO_ADDR: u64 = 0x5000;
pub const BOOT_INFO_SIZE: u64 = 0x1000;
/// KVM steal-time records, one 64-byte `kvm_steal_time` per vCPU: the
/// host writes how long each vCPU was runnable but not running, so the
/// core can charge tasks only for time their vCPU really ran.
pub const STEAL_TIME_ADDR: u64 = 0x6000;
pub const STEAL_TIME_STRIDE: u64 = 64;
pub const STEAL_TIME_SIZE: u64 = STEAL_TIME_STRIDE * MAX_CPUS as u64;

/// Page tables written by the VMM: PML4, PDPT, PD for 0-1 GiB, PD for the
/// 3-4 GiB window (LAPIC), and a 4 KiB page table for the first 2 MiB
/// (which is what leaves page 0 unmapped).
pub const PAGE_TABLES_ADDR: u64 = 0x8000;
pub const PAGE_TABLES_SIZE: u64 = 0x5000;
/// The core writes the [`crate::calltable::CallTable`] here before it
/// starts the operation.
pub const CALL_TABLE_ADDR: u64 = 0x10000;
pub const CALL_TABLE_SIZE: u64 = 0x1000;
/// The operation's `*Config`, written by the VMM.
pub const OPERATION_CONFIG_ADDR: u64 = 0x11000;
pub const OPERATION_CONFIG_MAX: u64 = 0x1000;

/// CPL0 stacks, one per vCPU: the VMM starts each vCPU on its own and
/// points its TSS.rsp0 at it, so interrupts and exceptions land there.
pub const KERNEL_STACKS_ADDR: u64 = 0x2_0000;
pub const KERNEL_STACK_SIZE: u64 = 0x2000;
pub const KERNEL_STACKS_SIZE: u64 = KERNEL_STACK_SIZE * MAX_CPUS as u64;

/// CPL3 stacks, one per vCPU, for the core's own code before the first
/// task runs and for the idle loop.
pub const CPU_STACKS_ADDR: u64 = 0x10_0000;
pub const CPU_STACK_SIZE: u64 = 0x4000;
pub const CPU_STACKS_SIZE: u64 = CPU_STACK_SIZE * MAX_CPUS as u64;

/// The core image (ELF, loaded by segment).
pub const KERNEL_LOAD_ADDR: u64 = 0x20_0000;
/// Cap on the core's extent in memory, `.bss` included.
pub const KERNEL_MAX_SIZE: u64 = 512 << 10;
/// The operation image (flat binary; its entry is its first byte).
pub const OPERATION_LOAD_ADDR: u64 = 0x40_0000;
/// Cap on an operation's extent in memory, `.bss` included.
pub const OPERATION_MAX_SIZE: u64 = 384 << 10;

/// A policy image (ELF, loaded by segment; its [`crate::policy::PolicyOps`]
/// table is its first byte).
pub const POLICY_LOAD_ADDR: u64 = 0x48_0000;
/// Cap on a policy's extent in memory, `.bss` included.
pub const POLICY_MAX_SIZE: u64 = 1 << 20;

/// Guest -> host TLV rings, one per vCPU, single producer each.
pub const TLV_RING_ADDR: u64 = 0x60_0000;
/// Ring header page then data.
pub const TLV_RING_HEADER_SIZE: u64 = 0x1000;
pub const TLV_RING_DATA_SIZE: u64 = 0x8000;
pub const TLV_RING_STRIDE: u64 = TLV_RING_HEADER_SIZE + TLV_RING_DATA_SIZE;
pub const TLV_RINGS_SIZE: u64 = TLV_RING_STRIDE * MAX_CPUS as u64;

/// CPL3 stacks, one per vCPU, on which the core ends a task whose
/// operation code faulted (its own stack may be what faulted).
pub const CRASH_STACKS_ADDR: u64 = 0x90_0000;
pub const CRASH_STACK_SIZE: u64 = 0x2000;
pub const CRASH_STACKS_SIZE: u64 = CRASH_STACK_SIZE * MAX_CPUS as u64;

/// Task stacks, one slot per task-table entry.
pub const TASK_STACKS_ADDR: u64 = 0xC0_0000;
pub const TASK_STACK_SIZE: u64 = 64 << 10;
pub const TASK_STACKS_SIZE: u64 = TASK_STACK_SIZE * MAX_TASKS as u64;

/// Task mailboxes for IPC ([`crate::ipc`]), one per task-table slot.
pub const MAILBOXES_ADDR: u64 = 0x1C0_0000;
pub const MAILBOXES_SIZE: u64 = 4 << 20;

/// The introspection area the host reads ([`crate::kstate`]): header,
/// per-CPU records, task table, per-CPU event rings.
pub const KERNEL_STATE_ADDR: u64 = 0x200_0000;
pub const KERNEL_STATE_SIZE: u64 = 10 << 20;

/// A sched_ext BPF object's program image ([`crate::bpf`]), written by
/// the VMM when the policy is a `.bpf.o`; the BPF runtime image reads it.
pub const BPF_PROGRAM_ADDR: u64 = 0x2A0_0000;
pub const BPF_PROGRAM_SIZE: u64 = 16 << 20;

/// The local APIC, reached through the 3-4 GiB window of the page tables.
pub const LAPIC_ADDR: u64 = 0xFEE0_0000;

/// `[start, end)` of every region, in address order, for the overlap check.
pub const REGIONS: [(&str, u64, u64); 20] = [
    ("null guard", 0, NULL_GUARD_SIZE),
    ("gdt", GDT_ADDR, GDT_ADDR + GDT_SIZE),
    ("idt", IDT_ADDR, IDT_ADDR + IDT_SIZE),
    ("tss", TSS_ADDR, TSS_ADDR + TSS_SIZE),
    ("boot info", BOOT_INFO_ADDR, BOOT_INFO_ADDR + BOOT_INFO_SIZE),
    (
        "steal time",
        STEAL_TIME_ADDR,
        STEAL_TIME_ADDR + STEAL_TIME_SIZE,
    ),
    (
        "page tables",
        PAGE_TABLES_ADDR,
        PAGE_TABLES_ADDR + PAGE_TABLES_SIZE,
    ),
    (
        "call table",
        CALL_TABLE_ADDR,
        CALL_TABLE_ADDR + CALL_TABLE_SIZE,
    ),
    (
        "operation config",
        OPERATION_CONFIG_ADDR,
        OPERATION_CONFIG_ADDR + OPERATION_CONFIG_MAX,
    ),
    (
        "kernel stacks",
        KERNEL_STACKS_ADDR,
        KERNEL_STACKS_ADDR + KERNEL_STACKS_SIZE,
    ),
    (
        "cpu stacks",
        CPU_STACKS_ADDR,
        CPU_STACKS_ADDR + CPU_STACKS_SIZE,
    ),
    ("core", KERNEL_LOAD_ADDR, KERNEL_LOAD_ADDR + KERNEL_MAX_SIZE),
    (
        "operation",
        OPERATION_LOAD_ADDR,
        OPERATION_LOAD_ADDR + OPERATION_MAX_SIZE,
    ),
    (
        "policy",
        POLICY_LOAD_ADDR,
        POLICY_LOAD_ADDR + POLICY_MAX_SIZE,
    ),
    ("tlv rings", TLV_RING_ADDR, TLV_RING_ADDR + TLV_RINGS_SIZE),
    (
        "crash stacks",
        CRASH_STACKS_ADDR,
        CRASH_STACKS_ADDR + CRASH_STACKS_SIZE,
    ),
    (
        "task stacks",
        TASK_STACKS_ADDR,
        TASK_STACKS_ADDR + TASK_STACKS_SIZE,
    ),
    ("mailboxes", MAILBOXES_ADDR, MAILBOXES_ADDR + MAILBOXES_SIZE),
    (
        "kernel state",
        KERNEL_STATE_ADDR,
        KERNEL_STATE_ADDR + KERNEL_STATE_SIZE,
    ),
    (
        "bpf program",
        BPF_PROGRAM_ADDR,
        BPF_PROGRAM_ADDR + BPF_PROGRAM_SIZE,
    ),
];

/// End of everything the map uses; guest RAM must be at least this big.
pub const MAP_END: u64 = BPF_PROGRAM_ADDR + BPF_PROGRAM_SIZE;

const _: () = {
    let mut i = 1;
    while i < REGIONS.len() {
        // Sorted, non-empty and not overlapping the previous region.
        assert!(REGIONS[i].1 < REGIONS[i].2);
        assert!(REGIONS[i - 1].2 <= REGIONS[i].1);
        i += 1;
    }
    assert!(REGIONS[REGIONS.len() - 1].2 == MAP_END);
    assert!(MAP_END <= GUEST_RAM_MIN);
    assert!(GUEST_RAM_DEFAULT >= GUEST_RAM_MIN);
    // The identity map covers 0-1 GiB with 2 MiB pages; RAM must fit in it
    // and stay below the LAPIC window.
    assert!(GUEST_RAM_MIN <= 1 << 30);
    // Images start on 2 MiB boundaries so they never share a large page
    // with anything the VMM writes.
    assert!(KERNEL_LOAD_ADDR.is_multiple_of(2 << 20));
    assert!(OPERATION_LOAD_ADDR.is_multiple_of(2 << 20));
    // Kernel stacks are naturally aligned so CPL0 code can find its CPU
    // from rsp alone.
    assert!(KERNEL_STACK_SIZE.is_power_of_two());
    assert!(KERNEL_STACKS_ADDR.is_multiple_of(KERNEL_STACK_SIZE));
    assert!(TASK_STACK_SIZE.is_multiple_of(0x1000));
    assert!(TLV_RING_DATA_SIZE.is_power_of_two());
    assert!(IDT_SIZE == 256 * 16);
    assert!(TSS_STRIDE >= 0x68);
};

/// Top of the CPL0 stack of vCPU `cpu` (stacks grow down).
pub const fn kernel_stack_top(cpu: u32) -> u64 {
    KERNEL_STACKS_ADDR + (cpu as u64 + 1) * KERNEL_STACK_SIZE
}

/// Top of the CPL3 stack of vCPU `cpu`.
pub const fn cpu_stack_top(cpu: u32) -> u64 {
    CPU_STACKS_ADDR + (cpu as u64 + 1) * CPU_STACK_SIZE
}

/// Base of the TLV ring of vCPU `cpu`.
pub const fn tlv_ring_base(cpu: u32) -> u64 {
    TLV_RING_ADDR + cpu as u64 * TLV_RING_STRIDE
}

/// Base of the TSS of vCPU `cpu`.
pub const fn tss_base(cpu: u32) -> u64 {
    TSS_ADDR + cpu as u64 * TSS_STRIDE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_cpu_regions_stay_inside_their_area() {
        let last = MAX_CPUS as u32 - 1;
        assert_eq!(
            kernel_stack_top(last),
            KERNEL_STACKS_ADDR + KERNEL_STACKS_SIZE
        );
        assert_eq!(
            tlv_ring_base(last) + TLV_RING_STRIDE,
            TLV_RING_ADDR + TLV_RINGS_SIZE
        );
        assert_eq!(tss_base(last) + TSS_STRIDE, TSS_ADDR + TSS_SIZE);
    }
}
