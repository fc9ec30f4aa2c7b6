//! The task table, task stacks and the CPL3 context switch.
//!
//! A switch is a plain function call at CPL3: push the callee-saved
//! registers, swap stack pointers, pop, return. No privilege change, no
//! exit. Guest code is built soft-float (x86_64-unknown-none), so there is
//! no FPU/SSE state to carry.

use shared::calltable::TaskEntry;
use shared::memmap::{MAX_TASKS, TASK_STACK_SIZE, TASK_STACKS_ADDR};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum State {
    Free,
    Runnable,
    Running,
    /// Waiting in `join` for another task to end.
    Blocked,
    /// Ended; holds its exit code and stats until joined.
    Zombie,
}

#[derive(Clone, Copy)]
pub struct Task {
    pub pid: u32,
    pub state: State,
    /// Saved stack pointer while not running.
    pub rsp: u64,
    pub exit_code: i32,
    pub runtime_ticks: u64,
    pub switches: u64,
    /// TSC when last switched in.
    pub last_in: u64,
    /// Slot + 1 of the task waiting in `join` for this one, or 0.
    pub waiter: u16,
}

impl Task {
    pub const FREE: Task = Task {
        pid: 0,
        state: State::Free,
        rsp: 0,
        exit_code: 0,
        runtime_ticks: 0,
        switches: 0,
        last_in: 0,
        waiter: 0,
    };
}

/// Written at the lowest word of every task stack; a task that overflows
/// its stack overwrites it, and the next switch away notices.
pub const STACK_CANARY: u64 = 0x5354_4143_4b5f_4f4b; // "KO_KCATS"

pub fn stack_bottom(slot: usize) -> u64 {
    TASK_STACKS_ADDR + slot as u64 * TASK_STACK_SIZE
}

pub fn canary_intact(slot: usize) -> bool {
    // SAFETY: slot < MAX_TASKS, so the address is inside the task stacks
    // region of the memory map.
    unsafe { core::ptr::read_volatile(stack_bottom(slot) as *const u64) == STACK_CANARY }
}

/// Lay out a new task's stack so that the first `switch_context` to it
/// "returns" into `task_start` with the entry and argument in r13/r12.
/// Returns the initial saved rsp.
pub fn prepare_stack(slot: usize, entry: TaskEntry, arg: u64) -> u64 {
    debug_assert!(slot < MAX_TASKS);
    let bottom = stack_bottom(slot);
    let top = bottom + TASK_STACK_SIZE;
    // Pop order in switch_context: r15, r14, r13, r12, rbx, rbp, then ret.
    // The return address sits at top - 8 so task_start begins with rsp
    // 16-byte aligned, as the ABI wants before its `call`.
    let frame: [u64; 7] = [
        0,
        0,
        entry as *const () as u64,
        arg,
        0,
        0,
        task_start as *const () as u64,
    ];
    let rsp = top - 8 - 6 * 8;
    // SAFETY: [bottom, top) is this slot's stack in the task stacks region,
    // unused while the slot is free; rsp..top lies inside it.
    unsafe {
        core::ptr::write_volatile(bottom as *mut u64, STACK_CANARY);
        core::ptr::copy_nonoverlapping(frame.as_ptr(), rsp as *mut u64, frame.len());
    }
    rsp
}

unsafe extern "C" {
    /// Save callee-saved registers on the current stack, store rsp in
    /// `*save`, load `next` as rsp, restore and return there.
    pub fn switch_context(save: *mut u64, next: u64);
    fn task_start();
}

core::arch::global_asm!(
    ".pushsection .text, \"ax\"",
    ".global switch_context",
    "switch_context:",
    "    push rbp",
    "    push rbx",
    "    push r12",
    "    push r13",
    "    push r14",
    "    push r15",
    "    mov [rdi], rsp",
    "    mov rsp, rsi",
    "    pop r15",
    "    pop r14",
    "    pop r13",
    "    pop r12",
    "    pop rbx",
    "    pop rbp",
    "    ret",
    "",
    ".global task_start",
    "task_start:",
    "    mov rdi, r12",
    "    call r13",
    "    mov edi, eax",
    "    call {exit}",
    "    ud2",
    ".popsection",
    exit = sym crate::sched::exit_current,
);
