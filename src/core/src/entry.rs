//! The CPL0 side of the core, in assembly because this machine emulates
//! every CPL0 instruction (~0.65 µs each): each path here is a handful of
//! instructions, and all real work happens at CPL3.
//!
//! - `_start`: where the VMM starts each vCPU (CPL0, rdi = cpu index, rsp
//!   = its kernel stack). Points TSS.rsp0 at that stack, loads the IDT
//!   register and `iretq`s to CPL3 on the CPU's own CPL3 stack.
//! - `exc_N`: exception stubs. They push the vector (and a zero error code
//!   where the CPU pushes none) and report to the VMM with one port write;
//!   the VMM reads `[vector, error, rip, cs, rflags, rsp, ss]` at rsp.
//! - `exc_3`: the DPL-3 service gate. `int3` is the one way from CPL3 to
//!   CPL0 that works on this machine; rax selects the service.

use shared::boot::{EXIT_FAULT, PORT_EXIT};
use shared::memmap::{CPU_STACK_SIZE, IDT_ADDR, IDT_SIZE, TSS_ADDR, TSS_STRIDE, cpu_stack_top};
use shared::x86::{SEL_USER_CODE, SEL_USER_DATA};

/// Service numbers for the `int3` gate (rax).
const SVC_EXIT: u64 = 1;

const _: () = {
    assert!(TSS_STRIDE.is_power_of_two());
    assert!(CPU_STACK_SIZE.is_power_of_two());
};

core::arch::global_asm!(
    ".pushsection .text.entry, \"ax\"",
    ".global _start",
    "_start:",
    "    mov rax, rdi",
    "    shl rax, {tss_shift}",
    "    add rax, {tss_addr}",
    "    mov [rax + 4], rsp",
    "    lidt [rip + idtr_desc]",
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
    // CPL3 from here: call kmain with an ABI-aligned stack.
    ".pushsection .text, \"ax\"",
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
    "exc_common:",
    "    mov eax, {exit_fault}",
    "    mov dx, {port}",
    "    out dx, eax",
    "exc_halt:",
    "    hlt",
    "    jmp exc_halt",
    "",
    // Service gate (vector 3, DPL 3): rax = service, rdi = argument.
    "exc_3:",
    "    cmp rax, {svc_exit}",
    "    jne svc_unknown",
    "    mov eax, edi",
    "    mov dx, {port}",
    "    out dx, eax",
    "svc_halt:",
    "    hlt",
    "    jmp svc_halt",
    "svc_unknown:",
    // A stray int3: report it as the #BP it is.
    "    push 0",
    "    push 3",
    "    jmp exc_common",
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
    ".popsection",
    tss_shift = const TSS_STRIDE.trailing_zeros(),
    tss_addr = const TSS_ADDR,
    cpu_stack_shift = const CPU_STACK_SIZE.trailing_zeros(),
    cpu_stack_top0 = const cpu_stack_top(0),
    user_ss = const SEL_USER_DATA,
    user_cs = const SEL_USER_CODE,
    kmain = sym crate::kmain,
    exit_fault = const EXIT_FAULT,
    port = const PORT_EXIT,
    svc_exit = const SVC_EXIT,
    idt_limit = const IDT_SIZE - 1,
    idt_addr = const IDT_ADDR,
);

unsafe extern "C" {
    /// Addresses of the 32 exception entry points, for the IDT.
    pub static exc_table: [u64; 32];
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
