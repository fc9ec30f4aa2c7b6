//! The CPL0 side of the core, in assembly because this machine emulates
//! every CPL0 instruction (~0.65 µs each): each path here is a handful of
//! instructions, and all real work happens at CPL3.
//!
//! - `_start`: where the VMM starts each vCPU (CPL0, rdi = cpu index, rsp
//!   = its kernel stack). Points TSS.rsp0 at that stack, loads IDTR, sets
//!   the FS base to the CPU's `PerCpu` and `iretq`s to CPL3 on the CPU's
//!   own CPL3 stack, interrupts still off.
//! - `exc_N`: exception stubs. They push the vector (and a zero error code
//!   where the CPU pushes none) and report to the VMM with one port write;
//!   the VMM reads `[vector, error, rip, cs, rflags, rsp, ss]` at rsp.
//! - `exc_3`: the DPL-3 service gate (`int3` is the one way from CPL3 to
//!   CPL0 that works here): exit, idle, send an IPI, start the timer,
//!   register steal time, read the CPUID topology leaf.
//! - `timer_entry`: the LAPIC tick. EOI, and if it interrupted CPL3, push
//!   the interrupted rip on the CPL3 stack and return to
//!   `tick_trampoline` instead, which runs the tick at CPL3 natively.
//! - `wake_entry`: the wake-up IPI: EOI only (its job is ending `hlt`).

use crate::percpu::{
    PC_CRASH_OK, PC_CRASH_STACK, PC_POLICY_CALLBACK, PC_WAKE_PENDING, PERCPU_SIZE,
};
use abi::boot::{EXIT_FAULT, PORT_EXIT};
use abi::memmap::{
    CPU_STACK_SIZE, IDT_ADDR, IDT_SIZE, LAPIC_ADDR, MAX_CPUS, OPERATION_LOAD_ADDR,
    OPERATION_MAX_SIZE, TSS_ADDR, TSS_STRIDE, cpu_stack_top,
};
use abi::topology::Topology;
use abi::x86::{SEL_USER_CODE, SEL_USER_DATA, Tss};
use core::sync::atomic::{AtomicU32, Ordering};

/// Service numbers for the `int3` gate (rax); rdi is the argument.
const SVC_EXIT: u64 = 1;
const SVC_IDLE: u64 = 2;
const SVC_IPI: u64 = 3;
const SVC_TIMER: u64 = 4;
const SVC_STEAL: u64 = 5;
const SVC_TOPO: u64 = 6;

/// Interrupt vectors.
pub const VEC_TIMER: u8 = 0x20;
pub const VEC_WAKE: u8 = 0x21;
pub const VEC_SPURIOUS: u8 = 0xFF;

const LAPIC_EOI: u64 = LAPIC_ADDR + 0xB0;
const LAPIC_SVR: u64 = 0xF0;
const LAPIC_ICR_LO: u64 = LAPIC_ADDR + 0x300;
const LAPIC_ICR_HI: u64 = LAPIC_ADDR + 0x310;
const LAPIC_LVT_TIMER: u64 = 0x320;
const LAPIC_TIMER_INIT: u64 = 0x380;
const LAPIC_TIMER_DIV: u64 = 0x3E0;
const MSR_FS_BASE: u32 = 0xC000_0100;
/// KVM paravirtual steal-time MSR, and its CPUID feature bit.
const MSR_KVM_STEAL_TIME: u32 = 0x4b56_4d03;
const KVM_CPUID_SIGNATURE_EBX: u32 = 0x4b4d_564b; // "KVMK"
const KVM_FEATURE_STEAL_TIME: u32 = 1 << 5;

const _: () = {
    assert!(TSS_STRIDE.is_power_of_two());
    assert!(CPU_STACK_SIZE.is_power_of_two());
    assert!(PERCPU_SIZE.is_power_of_two());
    // mov eax, imm32 zero-extends: the LAPIC must sit below 4 GiB.
    assert!(LAPIC_ADDR + 0x400 < 1 << 32);
};

core::arch::global_asm!(
    ".pushsection .text.entry, \"ax\"",
    ".global _start",
    "_start:",
    "    mov rax, rdi",
    "    shl rax, {tss_shift}",
    "    add rax, {tss_addr}",
    "    mov [rax + {tss_rsp0}], rsp",
    "    lidt [rip + idtr_desc]",
    // FS = null selector (an iretq to CPL3 would null a DPL-0 one), base
    // = &PERCPU[cpu].
    "    xor eax, eax",
    "    mov fs, eax",
    "    lea rax, [rip + {percpu}]",
    "    mov rdx, rdi",
    "    shl rdx, {percpu_shift}",
    "    add rax, rdx",
    "    mov rdx, rax",
    "    shr rdx, 32",
    "    mov ecx, {msr_fs_base}",
    "    wrmsr",
    "    mov rax, rdi",
    "    shl rax, {cpu_stack_shift}",
    "    add rax, {cpu_stack_top0}",
    "    push {user_ss}",
    "    push rax",
    "    push 2",
    "    push {user_cs}",
    "    lea rax, [rip + cpl3_start]",
    "    push rax",
    "    iretq",
    ".popsection",
    "",
    ".pushsection .text, \"ax\"",
    // CPL3 from here: call kmain(cpu) with an ABI-aligned stack.
    "cpl3_start:",
    "    call {kmain}",
    "    ud2",
    "",
    // Exception stubs. Vectors whose exceptions push no error code get a 0
    // so every frame has the same shape.
    ".irp v, 0,1,2,4,5,6,7,9,15,16,18,19,20,22,23,24,25,26,27,28,31",
    "exc_\\v:",
    "    push 0",
    "    push \\v",
    "    jmp exc_common",
    ".endr",
    ".irp v, 8,10,11,12,13,14,17,21,29,30",
    "exc_\\v:",
    "    push \\v",
    "    jmp exc_common",
    ".endr",
    // A fault in operation code (CPL3, rip inside the operation image) of
    // a monitored task ends just that task: return to crash_trampoline at
    // CPL3 with rdi = vector, rsi = rip, rdx = error code. Anything else
    // (core code, CPL0, unmonitored tasks, and any fault while a policy
    // callback runs: the policy's, whoever's code it was in) ends the run
    // as before, and the VMM names the callback from the kernel state.
    "exc_common:",
    "    test byte ptr [rsp + 24], 3",
    "    jz exc_report",
    "    cmp dword ptr fs:[{pc_policy_cb}], 0",
    "    jne exc_report",
    "    cmp dword ptr fs:[{pc_crash_ok}], 0",
    "    je exc_report",
    "    mov rax, [rsp + 16]",
    "    sub rax, {op_addr}",
    "    cmp rax, {op_size}",
    "    jae exc_report",
    "    mov dword ptr fs:[{pc_crash_ok}], 0",
    "    mov rdi, [rsp]",
    "    mov rsi, [rsp + 16]",
    "    mov rdx, [rsp + 8]",
    "    add rsp, 16",
    "    lea rax, [rip + crash_trampoline]",
    "    mov [rsp], rax",
    "    iretq",
    "exc_report:",
    "    mov eax, {exit_fault}",
    "    mov dx, {port}",
    "    out dx, eax",
    "exc_halt:",
    "    hlt",
    "    jmp exc_halt",
    "",
    // Service gate (vector 3, DPL 3): rax = service, rdi = argument.
    "exc_3:",
    "    cmp rax, {svc_idle}",
    "    je svc_idle",
    "    cmp rax, {svc_ipi}",
    "    je svc_ipi",
    "    cmp rax, {svc_timer}",
    "    je svc_timer",
    "    cmp rax, {svc_steal}",
    "    je svc_steal",
    "    cmp rax, {svc_topo}",
    "    je svc_topo",
    "    cmp rax, {svc_exit}",
    "    jne svc_unknown",
    "    mov eax, edi",
    "    mov dx, {port}",
    "    out dx, eax",
    "svc_halt:",
    "    hlt",
    "    jmp svc_halt",
    // Halt unless a waker already flagged this CPU; `sti; hlt` cannot lose
    // an interrupt (sti's shadow covers hlt).
    "svc_idle:",
    "    cmp dword ptr fs:[{pc_wake}], 0",
    "    jne svc_ret",
    "    sti",
    "    hlt",
    "svc_ret:",
    "    iretq",
    "svc_ipi:",
    "    mov eax, {icr_hi}",
    "    shl edi, 24",
    "    mov dword ptr [rax], edi",
    "    mov eax, {icr_lo}",
    "    mov dword ptr [rax], {vec_wake}",
    "    iretq",
    // Start this CPU's periodic tick (rdi = initial count) and return to
    // CPL3 with interrupts on.
    "svc_timer:",
    "    mov eax, {lapic}",
    "    mov dword ptr [rax + {svr}], 0x1FF",
    "    mov dword ptr [rax + {div}], 0xB",
    "    mov dword ptr [rax + {lvt}], {lvt_periodic}",
    "    mov dword ptr [rax + {init}], edi",
    "    or qword ptr [rsp + 16], 0x200",
    "    iretq",
    // Register this CPU's steal-time record (rdi) if the hypervisor is
    // KVM and offers steal time; rax = 1 if it did. cpuid at CPL0 is
    // answered from the VMM's KVM_SET_CPUID2, unlike at CPL3.
    "svc_steal:",
    "    push rbx",
    "    push rcx",
    "    push rdx",
    "    mov eax, 0x40000000",
    "    cpuid",
    "    cmp ebx, {kvm_sig}",
    "    jne steal_no",
    "    mov eax, 0x40000001",
    "    cpuid",
    "    test eax, {kvm_steal_bit}",
    "    jz steal_no",
    "    mov rax, rdi",
    "    or rax, 1",
    "    mov rdx, rax",
    "    shr rdx, 32",
    "    mov ecx, {msr_steal}",
    "    wrmsr",
    "    mov eax, 1",
    "    jmp steal_done",
    "steal_no:",
    "    xor eax, eax",
    "steal_done:",
    "    pop rdx",
    "    pop rcx",
    "    pop rbx",
    "    iretq",
    // CPUID leaf 0xB as this CPU sees it, packed as abi::kstate::
    // CpuidTopo (rax; 0 if the CPU has no leaf 0xB). cpuid at CPL0 is the
    // VMM's answer, which the host then checks against the topology.
    "svc_topo:",
    "    push rbx",
    "    push rcx",
    "    push rdx",
    "    push rsi",
    "    xor eax, eax",
    "    cpuid",
    "    xor esi, esi",
    "    cmp eax, 0xb",
    "    jb topo_done",
    "    mov eax, 0xb",
    "    xor ecx, ecx",
    "    cpuid",
    "    mov esi, edx",
    "    and eax, 0x1f",
    "    shl rax, 32",
    "    or rsi, rax",
    "    movzx ebx, bx",
    "    shl rbx, 48",
    "    or rsi, rbx",
    "    mov eax, 0xb",
    "    mov ecx, 1",
    "    cpuid",
    "    and eax, 0x1f",
    "    shl rax, 40",
    "    or rsi, rax",
    "topo_done:",
    "    mov rax, rsi",
    "    pop rsi",
    "    pop rdx",
    "    pop rcx",
    "    pop rbx",
    "    iretq",
    "svc_unknown:",
    // A stray int3: report it as the #BP it is.
    "    push 0",
    "    push 3",
    "    jmp exc_common",
    "",
    // The tick. Frame after `push rax`: rip +8, cs +16, rflags +24, rsp
    // +32. Every instruction here is emulated (about 0.65 µs each on this
    // host), so the interrupted rip moves to the task's stack memory to
    // memory (push m64 then pop m64) instead of through a second register:
    // 13 instructions, not 16.
    "timer_entry:",
    "    push rax",
    "    mov eax, {eoi}",
    "    mov dword ptr [rax], 0",
    "    test byte ptr [rsp + 16], 3",
    "    jz timer_ret",
    "    sub qword ptr [rsp + 32], 8",
    "    mov rax, [rsp + 32]",
    "    push qword ptr [rsp + 8]",
    "    pop qword ptr [rax]",
    "    lea rax, [rip + tick_trampoline]",
    "    mov [rsp + 8], rax",
    "timer_ret:",
    "    pop rax",
    "    iretq",
    "wake_entry:",
    "    push rax",
    "    mov eax, {eoi}",
    "    mov dword ptr [rax], 0",
    "    pop rax",
    "    iretq",
    "spurious_entry:",
    "    iretq",
    "",
    // CPL3: a monitored task faulted in operation code. Its stack may be
    // the problem, so end it on this CPU's crash stack.
    "crash_trampoline:",
    "    mov rsp, fs:[{pc_crash_stack}]",
    "    call {task_crashed}",
    "    ud2",
    "",
    // CPL3: the interrupted task continues here with its rip on its
    // stack. Save what the ABI lets a call clobber, run the tick, return.
    "tick_trampoline:",
    "    pushfq",
    "    push rax",
    "    push rcx",
    "    push rdx",
    "    push rsi",
    "    push rdi",
    "    push r8",
    "    push r9",
    "    push r10",
    "    push r11",
    "    push rbp",
    "    mov rbp, rsp",
    "    and rsp, -16",
    "    call {on_tick}",
    "    mov rsp, rbp",
    "    pop rbp",
    "    pop r11",
    "    pop r10",
    "    pop r9",
    "    pop r8",
    "    pop rdi",
    "    pop rsi",
    "    pop rdx",
    "    pop rcx",
    "    pop rax",
    "    popfq",
    "    ret",
    ".popsection",
    "",
    ".pushsection .rodata, \"a\"",
    ".balign 16",
    "idtr_desc:",
    "    .word {idt_limit}",
    "    .quad {idt_addr}",
    ".balign 8",
    ".global exc_table",
    "exc_table:",
    ".irp v, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31",
    "    .quad exc_\\v",
    ".endr",
    ".global irq_table",
    "irq_table:",
    "    .quad timer_entry",
    "    .quad wake_entry",
    "    .quad spurious_entry",
    ".popsection",
    tss_shift = const TSS_STRIDE.trailing_zeros(),
    tss_addr = const TSS_ADDR,
    tss_rsp0 = const core::mem::offset_of!(Tss, rsp0),
    percpu = sym crate::percpu::PERCPU,
    percpu_shift = const PERCPU_SIZE.trailing_zeros(),
    msr_fs_base = const MSR_FS_BASE,
    cpu_stack_shift = const CPU_STACK_SIZE.trailing_zeros(),
    cpu_stack_top0 = const cpu_stack_top(0),
    user_ss = const SEL_USER_DATA,
    user_cs = const SEL_USER_CODE,
    kmain = sym crate::kmain,
    exit_fault = const EXIT_FAULT,
    port = const PORT_EXIT,
    svc_exit = const SVC_EXIT,
    svc_idle = const SVC_IDLE,
    svc_ipi = const SVC_IPI,
    svc_timer = const SVC_TIMER,
    svc_steal = const SVC_STEAL,
    svc_topo = const SVC_TOPO,
    kvm_sig = const KVM_CPUID_SIGNATURE_EBX,
    kvm_steal_bit = const KVM_FEATURE_STEAL_TIME,
    msr_steal = const MSR_KVM_STEAL_TIME,
    pc_wake = const PC_WAKE_PENDING,
    pc_crash_ok = const PC_CRASH_OK,
    pc_policy_cb = const PC_POLICY_CALLBACK,
    pc_crash_stack = const PC_CRASH_STACK,
    op_addr = const OPERATION_LOAD_ADDR,
    op_size = const OPERATION_MAX_SIZE,
    task_crashed = sym crate::sched::task_crashed,
    icr_hi = const LAPIC_ICR_HI,
    icr_lo = const LAPIC_ICR_LO,
    vec_wake = const VEC_WAKE,
    lapic = const LAPIC_ADDR,
    svr = const LAPIC_SVR,
    div = const LAPIC_TIMER_DIV,
    lvt = const LAPIC_LVT_TIMER,
    lvt_periodic = const (1u32 << 17) | VEC_TIMER as u32,
    init = const LAPIC_TIMER_INIT,
    eoi = const LAPIC_EOI,
    on_tick = sym crate::sched::on_tick,
    idt_limit = const IDT_SIZE - 1,
    idt_addr = const IDT_ADDR,
);

unsafe extern "C" {
    /// Addresses of the 32 exception entry points, for the IDT.
    pub static exc_table: [u64; 32];
    /// Timer, wake-up IPI and spurious entry points (VEC_TIMER, VEC_WAKE,
    /// VEC_SPURIOUS), for the IDT.
    pub static irq_table: [u64; 3];
}

/// Tell the VMM the run is over (one `out` from CPL0 via the service gate).
pub fn exit_to_host(code: u32) -> ! {
    // SAFETY: `int3` enters the DPL-3 gate installed by `idt::install`;
    // the SVC_EXIT path writes the port and halts, so control never comes
    // back. Before the IDT is installed this triple-faults, which the VMM
    // also reports.
    unsafe {
        core::arch::asm!("int3", in("rax") SVC_EXIT, in("rdi") code as u64, options(noreturn));
    }
}

/// Halt this CPU until an interrupt, unless its wake_pending flag is set.
pub fn idle_halt() {
    // SAFETY: the SVC_IDLE path only reads fs:[wake_pending] and halts
    // with interrupts enabled; it clobbers nothing but the flags.
    unsafe { core::arch::asm!("int3", in("rax") SVC_IDLE, in("rdi") 0u64) };
}

/// Each CPU's LAPIC id (`Topology::apic_id`: the VMM created each vCPU
/// with it), set by CPU 0 from the boot info before the others start.
static APIC_IDS: [AtomicU32; MAX_CPUS] = [const { AtomicU32::new(0) }; MAX_CPUS];

/// Record every CPU's LAPIC id from the (validated) topology.
pub fn set_apic_ids(t: &Topology) {
    for (cpu, id) in APIC_IDS.iter().enumerate().take(t.cpus() as usize) {
        id.store(t.apic_id(cpu as u32), Ordering::Relaxed);
    }
}

/// Send the wake-up IPI to CPU `cpu` (its index, not its APIC id).
pub fn send_wake_ipi(cpu: u32) {
    let apic_id = APIC_IDS
        .get(cpu as usize)
        .map_or(0, |a| a.load(Ordering::Relaxed));
    // SAFETY: SVC_IPI writes the two ICR registers; it clobbers rax, rdi.
    unsafe {
        core::arch::asm!("int3", inout("rax") SVC_IPI => _, inout("rdi") apic_id as u64 => _);
    }
}

/// Start this CPU's periodic LAPIC tick and enable interrupts.
pub fn start_timer(initial_count: u32) {
    // SAFETY: SVC_TIMER programs this CPU's LAPIC timer and returns with
    // IF set; the IDT gates for its vectors are installed before any CPU
    // calls this. It clobbers rax.
    unsafe {
        core::arch::asm!("int3", inout("rax") SVC_TIMER => _, in("rdi") initial_count as u64);
    }
}

/// CPUID leaf 0xB as this CPU sees it, packed as `abi::kstate::CpuidTopo`.
pub fn cpuid_topology() -> u64 {
    let r: u64;
    // SAFETY: SVC_TOPO only runs cpuid (leaves 0 and 0xB) and preserves
    // every register but rax.
    unsafe { core::arch::asm!("int3", inout("rax") SVC_TOPO => r, in("rdi") 0u64) };
    r
}

/// Ask the hypervisor to keep this CPU's steal time at `record` (64-byte
/// aligned); false if it does not offer steal time.
pub fn enable_steal_time(record: u64) -> bool {
    let r: u64;
    // SAFETY: SVC_STEAL only runs cpuid and, if KVM offers steal time,
    // one wrmsr naming `record`, a 64-byte aligned guest-RAM record
    // reserved for this CPU; it preserves every register but rax.
    unsafe { core::arch::asm!("int3", inout("rax") SVC_STEAL => r, in("rdi") record) };
    r == 1
}
