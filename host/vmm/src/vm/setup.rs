//! The machine state a vCPU starts in: page tables, GDT, TSS, segment and
//! control registers, boot info. This mirrors pvm-probe/hv.c, whose set-up
//! is known to work on this machine's PVM KVM; every address comes from
//! `abi::memmap`. Builders are pure so the tables can be unit-tested.

use abi::boot::{BOOT_MAGIC, BOOT_VERSION, BootInfo};
use abi::memmap::{
    GDT_ADDR, IDT_ADDR, IDT_SIZE, LAPIC_ADDR, NULL_GUARD_SIZE, PAGE_TABLES_ADDR, PAGE_TABLES_SIZE,
    kernel_stack_top, tss_base,
};
use abi::x86::{GDT_ENTRIES, SEL_KERNEL_CODE, SEL_KERNEL_DATA, SEL_TSS, Tss};
use kvm_bindings::{kvm_regs, kvm_segment, kvm_sregs};

/// The identity map's one PD covers 0-1 GiB with 2 MiB pages.
pub const MAX_RAM_BYTES: u64 = 1 << 30;

const PTE_P: u64 = 1 << 0;
const PTE_RW: u64 = 1 << 1;
/// CPL3 code (where all real work runs) must be allowed at every level.
const PTE_US: u64 = 1 << 2;
const PTE_PWT: u64 = 1 << 3;
const PTE_PCD: u64 = 1 << 4;
/// Accessed, and (on a page) dirty, set up front: the guest's first use
/// of an entry then writes nothing into the page tables, which the
/// hypervisor shadows and must otherwise track, and KVM may map a present
/// entry's neighbours with it (it prefetches only accessed ones).
const PTE_A: u64 = 1 << 5;
const PTE_D: u64 = 1 << 6;
const PTE_PS: u64 = 1 << 7;
const TABLE: u64 = PTE_P | PTE_RW | PTE_US | PTE_A;
/// A page (2 MiB through PTE_PS, or 4 KiB in the first page table).
const PAGE: u64 = TABLE | PTE_D;
const HUGE_2M: u64 = 2 << 20;
const ENTRIES: usize = 512;

/// Page offsets inside PAGE_TABLES_ADDR.
pub const PML4_OFF: u64 = 0x0000;
pub const PDPT_OFF: u64 = 0x1000;
pub const PD0_OFF: u64 = 0x2000;
pub const PD3_OFF: u64 = 0x3000;
pub const PT0_OFF: u64 = 0x4000;
const _: () = assert!(PT0_OFF + 0x1000 == PAGE_TABLES_SIZE);
/// The LAPIC window must sit in the 3-4 GiB PD.
const _: () = assert!(LAPIC_ADDR >> 30 == 3);
const _: () = assert!(NULL_GUARD_SIZE == 0x1000);

pub const CR0: u64 = 0x8005_0033; // PG | AM | WP | NE | ET | MP | PE
pub const CR4: u64 = 0x620; // OSXMMEXCPT | OSFXSR | PAE
pub const EFER: u64 = 0x501; // LMA | LME | SCE
pub const GDT_LIMIT: u16 = 0x4f;
pub const TSS_LIMIT: u32 = 0x67;
const _: () = assert!(size_of::<Tss>() == TSS_LIMIT as usize + 1);
/// Busy 64-bit TSS: the vCPU's TR is loaded through KVM_SET_SREGS, so the
/// descriptor must already say busy, as hv.c does.
const TSS_TYPE_BUSY: u8 = 0xb;

/// The five page-table pages, as 512-entry arrays in address order:
/// PML4, PDPT, PD for 0-1 GiB, PD for 3-4 GiB, PT for the first 2 MiB.
pub fn page_tables(ram_bytes: u64) -> Vec<u64> {
    let mut t = vec![0u64; 5 * ENTRIES];
    let at = |off: u64, i: usize| (off / 8) as usize + i;
    let base = PAGE_TABLES_ADDR;
    t[at(PML4_OFF, 0)] = (base + PDPT_OFF) | TABLE;
    t[at(PDPT_OFF, 0)] = (base + PD0_OFF) | TABLE;
    t[at(PDPT_OFF, 3)] = (base + PD3_OFF) | TABLE;
    // 0-2 MiB goes through 4 KiB pages so page 0 can be left out: a null
    // pointer then faults instead of reading the GDT.
    t[at(PD0_OFF, 0)] = (base + PT0_OFF) | TABLE;
    let ram_pages = ram_bytes.min(MAX_RAM_BYTES).div_ceil(HUGE_2M) as usize;
    for i in 1..ram_pages.min(ENTRIES) {
        t[at(PD0_OFF, i)] = (i as u64 * HUGE_2M) | PAGE | PTE_PS;
    }
    for i in 0..ENTRIES {
        t[at(PD3_OFF, i)] = ((3 << 30) + i as u64 * HUGE_2M) | PAGE | PTE_PS | PTE_PCD | PTE_PWT;
    }
    for i in 1..ENTRIES {
        t[at(PT0_OFF, i)] = (i as u64 * 0x1000) | PAGE;
    }
    t
}

/// A 16-byte 64-bit TSS descriptor for `base`.
pub fn tss_descriptor(base: u64) -> [u64; 2] {
    let low = TSS_LIMIT as u64
        | (base & 0xffff) << 16
        | ((base >> 16) & 0xff) << 32
        | (0x80 | TSS_TYPE_BUSY as u64) << 40
        | ((base >> 24) & 0xff) << 56;
    [low, base >> 32]
}

/// GDT: Linux's selectors, then the TSS descriptor at 0x40. One descriptor
/// serves every vCPU: each vCPU's TR is set through KVM_SET_SREGS, which
/// loads the hidden base directly.
pub fn gdt() -> [u64; 10] {
    let mut g = [0u64; 10];
    g[..GDT_ENTRIES.len()].copy_from_slice(&GDT_ENTRIES);
    let [lo, hi] = tss_descriptor(tss_base(0));
    g[SEL_TSS as usize / 8] = lo;
    g[SEL_TSS as usize / 8 + 1] = hi;
    g
}

/// The TSS of vCPU `cpu`: rsp0 is its kernel stack, the rest zero.
pub fn tss(cpu: u32) -> Tss {
    Tss {
        rsp0: kernel_stack_top(cpu),
        // I/O map base past the limit: no I/O bitmap.
        iomap_base: TSS_LIMIT as u16 + 1,
        ..Tss::default()
    }
}

fn segment(selector: u16, type_: u8, long: bool) -> kvm_segment {
    kvm_segment {
        base: 0,
        limit: 0xffff_ffff,
        selector,
        type_,
        present: 1,
        dpl: 0,
        db: u8::from(!long),
        s: 1,
        l: u8::from(long),
        g: 1,
        ..Default::default()
    }
}

/// Long mode, paging on, CPL0 flat segments, this vCPU's TSS.
pub fn sregs(mut s: kvm_sregs, cpu: u32) -> kvm_sregs {
    s.cs = segment(SEL_KERNEL_CODE, 11, true);
    let data = segment(SEL_KERNEL_DATA, 3, false);
    s.ds = data;
    s.es = data;
    s.fs = data;
    s.gs = data;
    s.ss = data;
    s.tr = kvm_segment {
        base: tss_base(cpu),
        limit: TSS_LIMIT,
        selector: SEL_TSS,
        type_: TSS_TYPE_BUSY,
        present: 1,
        s: 0,
        ..Default::default()
    };
    s.gdt.base = GDT_ADDR;
    s.gdt.limit = GDT_LIMIT;
    s.idt.base = IDT_ADDR;
    s.idt.limit = (IDT_SIZE - 1) as u16;
    s.cr0 = CR0;
    s.cr3 = PAGE_TABLES_ADDR;
    s.cr4 = CR4;
    s.efer = EFER;
    s
}

/// Entry registers: the core's entry point, on this vCPU's kernel stack,
/// with the CPU index in rdi (first argument) and the count in rsi.
pub fn regs(entry: u64, cpu: u32, cpu_count: u32) -> kvm_regs {
    kvm_regs {
        rip: entry,
        rsp: kernel_stack_top(cpu),
        rdi: cpu as u64,
        rsi: cpu_count as u64,
        rflags: 0x2,
        ..Default::default()
    }
}

/// The BootInfo for a run.
pub struct BootParams {
    pub cpu_count: u32,
    pub config_len: u32,
    pub mem_size: u64,
    pub tsc_khz: u64,
    pub slice_ns: u64,
    pub seed: u64,
    pub epoch_tsc: u64,
    pub sched: SchedBoot,
}

/// The scheduling part of the boot info, as validated from the flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchedBoot {
    /// Policy parameter (`PolicyServices::arg`; the starve policy's
    /// victim pid), 0 if none.
    pub policy_arg: u32,
    /// LAPIC timer ticks per second (1..=MAX_TICK_HZ).
    pub tick_hz: u32,
    /// IDLE_HALT or IDLE_POLL.
    pub idle: u32,
    /// The machine's shape (`--topology`); its CPU count is the run's.
    pub topology: abi::topology::Topology,
}

pub fn boot_info(p: &BootParams) -> BootInfo {
    BootInfo {
        magic: BOOT_MAGIC,
        version: BOOT_VERSION,
        cpu_count: p.cpu_count,
        config_len: p.config_len,
        mem_size: p.mem_size,
        tsc_khz: p.tsc_khz,
        slice_ns: p.slice_ns,
        seed: p.seed,
        epoch_tsc: p.epoch_tsc,
        // The core has no policy of its own: it always runs the image.
        policy: abi::policy::POLICY_IMAGE_ID,
        policy_arg: p.sched.policy_arg,
        tick_hz: p.sched.tick_hz,
        idle: p.sched.idle,
        topology: p.sched.topology,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::offset_of;
    use zerocopy::IntoBytes;

    fn entry(t: &[u64], page_off: u64, i: usize) -> u64 {
        t[(page_off / 8) as usize + i]
    }

    #[test]
    fn page_zero_is_not_present_and_the_rest_is_user_accessible() {
        let t = page_tables(64 << 20);
        assert_eq!(t.len() * 8, PAGE_TABLES_SIZE as usize);
        assert_eq!(entry(&t, PT0_OFF, 0), 0, "page 0 must fault (null guard)");
        // Tables P|RW|U/S|A (0x27); pages also D (0x67), 2 MiB ones PS.
        assert_eq!(entry(&t, PT0_OFF, 1), 0x1000 | 0x67);
        assert_eq!(entry(&t, PT0_OFF, 511), 0x1ff000 | 0x67);
        assert_eq!(entry(&t, PML4_OFF, 0), (PAGE_TABLES_ADDR + PDPT_OFF) | 0x27);
        assert_eq!(entry(&t, PDPT_OFF, 0), (PAGE_TABLES_ADDR + PD0_OFF) | 0x27);
        assert_eq!(entry(&t, PD0_OFF, 0), (PAGE_TABLES_ADDR + PT0_OFF) | 0x27);
        assert_eq!(entry(&t, PD0_OFF, 1), 0x20_0000 | 0xe7);
        assert_eq!(entry(&t, PD0_OFF, 31), (31 * 0x20_0000) | 0xe7);
        assert_eq!(entry(&t, PD0_OFF, 32), 0, "nothing mapped past RAM");
        for (i, e) in t.iter().enumerate() {
            if *e != 0 {
                assert_eq!(e & 7, 7, "entry {i} lacks P|RW|U/S");
            }
        }
    }

    #[test]
    fn lapic_window_is_mapped_uncached() {
        let t = page_tables(64 << 20);
        assert_eq!(entry(&t, PDPT_OFF, 3), (PAGE_TABLES_ADDR + PD3_OFF) | 0x27);
        let i = ((LAPIC_ADDR - (3 << 30)) / HUGE_2M) as usize;
        let e = entry(&t, PD3_OFF, i);
        assert_eq!(e & !0x1f_ffff, LAPIC_ADDR & !0x1f_ffff);
        assert_eq!(
            e & 0xff,
            0x80 | 0x40 | 0x20 | 0x10 | 0x08 | 7,
            "PS|D|A|PCD|PWT|US|RW|P"
        );
    }

    #[test]
    fn full_gib_of_ram_fills_the_pd() {
        let t = page_tables(MAX_RAM_BYTES);
        assert_eq!(entry(&t, PD0_OFF, 511), (511 * HUGE_2M) | 0xe7);
    }

    #[test]
    fn gdt_matches_hv_c() {
        let g = gdt();
        assert_eq!(g[2], 0x00af_9a00_0000_ffff, "0x10 kernel code 64");
        assert_eq!(g[6], 0x00af_fa00_0000_ffff, "0x33 user code 64");
        // hv.c: 0x67 | base bits | 0x8b << 40, for base 0x3000 here.
        assert_eq!(g[8], 0x67 | 0x3000 << 16 | 0x8b << 40);
        assert_eq!(g[9], 0);
        assert_eq!((GDT_LIMIT as usize + 1) / 8, g.len());
        let [lo, hi] = tss_descriptor(0x1234_5678_9abc_def0);
        assert_eq!(lo >> 16 & 0xffff, 0xdef0);
        assert_eq!(lo >> 32 & 0xff, 0xbc);
        assert_eq!(lo >> 56, 0x9a);
        assert_eq!(hi, 0x1234_5678);
    }

    #[test]
    fn registers_follow_the_memory_map() {
        let s = sregs(kvm_sregs::default(), 1);
        assert_eq!(
            (s.cs.selector, s.cs.l, s.cs.db, s.cs.type_),
            (0x10, 1, 0, 11)
        );
        assert_eq!((s.ss.selector, s.ss.db, s.ss.type_), (0x18, 1, 3));
        assert_eq!((s.tr.base, s.tr.limit, s.tr.type_), (tss_base(1), 0x67, 11));
        assert_eq!(
            (s.cr0, s.cr3, s.cr4, s.efer),
            (0x8005_0033, PAGE_TABLES_ADDR, 0x620, 0x501)
        );
        assert_eq!((s.gdt.limit, s.idt.limit), (0x4f, 0xfff));
        let r = regs(0x20_0000, 1, 2);
        assert_eq!(
            (r.rip, r.rsp, r.rdi, r.rflags),
            (0x20_0000, kernel_stack_top(1), 1, 2)
        );
        let tss = tss(0);
        let bytes = tss.as_bytes();
        let (o1, o2) = (offset_of!(Tss, rsp0), offset_of!(Tss, iomap_base));
        assert_eq!((o1, o2), (4, 0x66));
        assert_eq!(bytes[o1..o1 + 8], kernel_stack_top(0).to_le_bytes());
        assert_eq!(bytes[o2..o2 + 2], [0x68, 0]);
    }

    #[test]
    fn boot_info_bytes_have_the_pinned_layout() {
        let b = boot_info(&BootParams {
            cpu_count: 1,
            config_len: 536,
            mem_size: 64 << 20,
            tsc_khz: 2_596_098,
            slice_ns: 1_000_000,
            seed: 7,
            epoch_tsc: 0x1122_3344_5566_7788,
            sched: SchedBoot {
                policy_arg: 5,
                tick_hz: 4000,
                idle: abi::boot::IDLE_POLL,
                topology: abi::topology::Topology::flat(1),
            },
        });
        let bytes = b.as_bytes();
        assert_eq!(&bytes[0..4], b"BOOT");
        assert_eq!(u32::from_le_bytes(bytes[8..12].try_into().unwrap()), 1);
        assert_eq!(
            u64::from_le_bytes(bytes[24..32].try_into().unwrap()),
            2_596_098
        );
        assert_eq!(
            u64::from_le_bytes(bytes[48..56].try_into().unwrap()),
            0x1122_3344_5566_7788
        );
        let word = |off: usize| u32::from_le_bytes(bytes[off..off + 4].try_into().unwrap());
        assert_eq!(
            word(offset_of!(BootInfo, policy)),
            abi::policy::POLICY_IMAGE_ID
        );
        assert_eq!(word(offset_of!(BootInfo, policy_arg)), 5);
        assert_eq!(word(64), 4000, "tick_hz is pinned at offset 64");
        assert_eq!(word(offset_of!(BootInfo, idle)), 1);
        // The topology, from offset 72: sockets, LLCs, cores, threads.
        assert_eq!([word(72), word(76), word(80), word(84)], [1, 1, 1, 1]);
        assert_eq!(bytes.len(), 88);
    }
}
