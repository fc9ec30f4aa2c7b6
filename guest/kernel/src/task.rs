//! The task table, task stacks and the CPL3 context switch.
//!
//! A switch is a plain function call at CPL3: push the callee-saved
//! registers, swap stack pointers, pop, return. No privilege change, no
//! exit. Guest code is built soft-float (x86_64-unknown-none), so there is
//! no FPU/SSE state to carry. Preemption enters through `tick_trampoline`,
//! which saves the caller-saved registers and flags on the task's stack
//! first, so a preempted task resumes exactly where it was.

use abi::calltable::TaskEntry;
use abi::memmap::{MAX_TASKS, TASK_STACK_SIZE, TASK_STACKS_ADDR};

/// Most tasks that can monitor one task.
pub const MAX_MONITORS: usize = 4;

/// One task-table slot. `state` uses the kernel-state TASK_* values so the
/// host reads the same numbers the core uses.
#[derive(Clone, Copy)]
pub struct Task {
    pub pid: u32,
    pub state: u32,
    /// Saved stack pointer while not running.
    pub rsp: u64,
    /// CPU it runs on or is queued for.
    pub cpu: u32,
    pub exit_code: i32,
    pub exit_reason: u32,
    pub runtime_ticks: u64,
    /// 0 = no limit.
    pub runtime_limit_ticks: u64,
    pub switches: u64,
    pub wakeups: u64,
    pub migrations: u64,
    /// TSC up to which its runtime has been accounted.
    pub last_in: u64,
    /// `runtime_ticks` when it last started running: the policy's slice is
    /// CPU time (steal excluded) counted from here.
    pub slice_start: u64,
    /// TSC since when it has been runnable and waiting, 0 if not.
    pub wait_since: u64,
    pub wait_ticks: u64,
    /// Has run at least once (placement before that is not a migration).
    pub ever_ran: bool,
    /// A kill arrived while it was running; it ends at its next tick.
    pub kill_pending: bool,
    /// Its last `recv` ended by timeout rather than by a message.
    pub timed_out: bool,
    /// Slot + 1 of the task waiting in `join` for this one, or 0.
    pub joiner: u16,
    /// Slot + 1 of the task whose full mailbox this one waits on, or 0.
    pub send_target: u16,
    /// Slots + 1 of tasks to notify when this one ends.
    pub monitors: [u16; MAX_MONITORS],
    /// TSC at which a sleep or receive timeout ends, 0 = none.
    pub wake_at: u64,
    /// Address of the futex word it waits on in `TASK_BLOCKED`, 0 = none.
    pub futex: u64,
    /// When it began to wait there (`Sched::futex_seq`): wakes go oldest
    /// first.
    pub futex_seq: u64,
}

impl Task {
    pub const FREE: Task = Task {
        pid: 0,
        state: abi::kstate::TASK_FREE,
        rsp: 0,
        cpu: 0,
        exit_code: 0,
        exit_reason: 0,
        runtime_ticks: 0,
        runtime_limit_ticks: 0,
        switches: 0,
        wakeups: 0,
        migrations: 0,
        last_in: 0,
        slice_start: 0,
        wait_since: 0,
        wait_ticks: 0,
        ever_ran: false,
        kill_pending: false,
        timed_out: false,
        joiner: 0,
        send_target: 0,
        monitors: [0; MAX_MONITORS],
        wake_at: 0,
        futex: 0,
        futex_seq: 0,
    };

    pub fn live(&self) -> bool {
        self.state != abi::kstate::TASK_FREE && self.state != abi::kstate::TASK_ZOMBIE
    }
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
    // The switch that got here holds the scheduler lock: release it.
    "    call {finish}",
    "    mov rdi, r12",
    "    call r13",
    "    mov edi, eax",
    "    call {exit}",
    "    ud2",
    ".popsection",
    exit = sym crate::sched::task_returned,
    finish = sym crate::sched::finish_switch,
);
