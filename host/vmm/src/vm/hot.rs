//! The guest pages every run touches early, in about the order it does:
//! what [`super::memory::GuestRam::populate`] faults in on the host while
//! KVM creates the VM, so that neither the VMM's writes nor the guest's
//! boot wait for the kernel to allocate them one page fault at a time
//! (see `memory.rs` for the measured costs). Everything else faults in
//! when the guest reaches it. Only the parts of each region that
//! `cpus` CPUs and the first [`HOT_TASKS`] task slots use are listed, so
//! the list stays a few hundred pages (about 1.2 µs each to populate).

use abi::ipc::MAILBOX_SIZE;
use abi::kstate::{KSTATE_EVENTS_OFFSET, event_ring_addr};
use abi::memmap::{
    CPU_STACK_SIZE, CPU_STACKS_ADDR, GDT_ADDR, KERNEL_LOAD_ADDR, KERNEL_STACK_SIZE,
    KERNEL_STACKS_ADDR, KERNEL_STATE_ADDR, MAILBOXES_ADDR, MAX_TASKS, OPERATION_CONFIG_ADDR,
    OPERATION_CONFIG_MAX, OPERATION_LOAD_ADDR, POLICY_LOAD_ADDR, TASK_STACK_SIZE, TASK_STACKS_ADDR,
    TLV_RING_ADDR, TLV_RING_STRIDE,
};
use std::ops::Range;

/// Task slots whose stack ends and mailbox are populated: the operation's
/// main task and the first tasks it spawns.
pub const HOT_TASKS: u64 = 16;
/// Bytes at the top of a hot task's stack (where it starts) and at its
/// bottom (the overflow canary) that are populated. The operation's main
/// task (slot 0) parses its config on its stack and reaches 32 KiB down
/// (7 guest page faults in a row were traced there).
const MAIN_STACK_TOP: u64 = 32 << 10;
const STACK_TOP: u64 = 8 << 10;
const STACK_BOTTOM: u64 = 4 << 10;
const _: () = assert!(HOT_TASKS <= MAX_TASKS as u64);

/// Where each image ends in guest memory (`.bss` included where known).
pub struct ImageEnds {
    pub core: u64,
    pub operation: u64,
    pub policy: u64,
}

/// Guest-physical ranges a run with `cpus` CPUs touches first.
pub fn ranges(cpus: u32, ends: &ImageEnds) -> Vec<Range<u64>> {
    let cpus = u64::from(cpus);
    let mut r = vec![
        // vCPU entry: kernel and CPU stacks, then the tables the VMM
        // writes and the core fills (GDT .. operation config).
        KERNEL_STACKS_ADDR..KERNEL_STACKS_ADDR + cpus * KERNEL_STACK_SIZE,
        CPU_STACKS_ADDR..CPU_STACKS_ADDR + cpus * CPU_STACK_SIZE,
        GDT_ADDR..OPERATION_CONFIG_ADDR + OPERATION_CONFIG_MAX,
        KERNEL_LOAD_ADDR..ends.core,
        TLV_RING_ADDR..TLV_RING_ADDR + cpus * TLV_RING_STRIDE,
        // Header, every CPU and task record, then each CPU's event ring.
        KERNEL_STATE_ADDR..KERNEL_STATE_ADDR + KSTATE_EVENTS_OFFSET,
        event_ring_addr(0)..event_ring_addr(cpus as u32),
        POLICY_LOAD_ADDR..ends.policy,
        OPERATION_LOAD_ADDR..ends.operation,
        MAILBOXES_ADDR..MAILBOXES_ADDR + HOT_TASKS * MAILBOX_SIZE,
    ];
    for slot in 0..HOT_TASKS {
        let bottom = TASK_STACKS_ADDR + slot * TASK_STACK_SIZE;
        let top = bottom + TASK_STACK_SIZE;
        let depth = if slot == 0 { MAIN_STACK_TOP } else { STACK_TOP };
        r.push(top - depth..top);
        r.push(bottom..bottom + STACK_BOTTOM);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use abi::kstate::EVENT_RING_STRIDE;
    use abi::memmap::{GUEST_RAM_MIN, MAX_CPUS, REGIONS};

    fn ends() -> ImageEnds {
        ImageEnds {
            core: KERNEL_LOAD_ADDR + 0x1_8000,
            operation: OPERATION_LOAD_ADDR + 0x6000,
            policy: POLICY_LOAD_ADDR + 0x3000,
        }
    }

    fn pages(r: &[Range<u64>]) -> u64 {
        r.iter()
            .map(|r| r.end.div_ceil(4096) - r.start / 4096)
            .sum()
    }

    #[test]
    fn every_range_lies_in_one_region_of_the_map() {
        for cpus in [1, 2, MAX_CPUS as u32] {
            for r in ranges(cpus, &ends()) {
                assert!(r.start < r.end, "{r:x?}");
                assert!(r.end <= GUEST_RAM_MIN, "{r:x?}");
                assert!(
                    REGIONS.iter().any(|(_, s, e)| *s <= r.start && r.end <= *e)
                        || (GDT_ADDR..OPERATION_CONFIG_ADDR + OPERATION_CONFIG_MAX) == r,
                    "{r:x?} straddles regions"
                );
            }
        }
    }

    #[test]
    fn the_list_grows_with_cpus_and_stays_small() {
        let one = pages(&ranges(1, &ends()));
        let two = pages(&ranges(2, &ends()));
        // A CPU adds its stacks, TLV ring and event ring (the ring's
        // edges may share a page with its neighbour's).
        let added =
            (KERNEL_STACK_SIZE + CPU_STACK_SIZE + TLV_RING_STRIDE + EVENT_RING_STRIDE) / 4096;
        assert!((added..=added + 1).contains(&(two - one)), "{one} -> {two}");
        assert!(one < 300, "{one} pages for one CPU");
        assert!(pages(&ranges(MAX_CPUS as u32, &ends())) < 4096);
    }
}
