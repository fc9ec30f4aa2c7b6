//! The call-table implementation: the `extern "C"` functions operations
//! call, and the table itself at CALL_TABLE_ADDR. Pointers from the
//! operation are checked against guest RAM before use; the operation is
//! trusted not to lie about its own memory beyond that.

use crate::{sched, time, tlv};
use shared::calltable::{
    CALL_TABLE_MAGIC, CALL_TABLE_VERSION, CallTable, ERR_INVALID, ERR_TOO_LONG, JoinInfo, TaskEntry,
};
use shared::memmap::{CALL_TABLE_ADDR, NULL_GUARD_SIZE, OPERATION_CONFIG_ADDR};
use shared::tlv::{MAX_PAYLOAD, MSG_PROTOBUF};

/// `len` bytes at `ptr` as a slice, if the range is inside guest RAM.
fn guest_slice<'a>(ptr: *const u8, len: usize) -> Option<&'a [u8]> {
    let start = ptr as u64;
    let end = start.checked_add(len as u64)?;
    if start < NULL_GUARD_SIZE || end > crate::boot::read().mem_size {
        return None;
    }
    // SAFETY: the range is inside identity-mapped guest RAM (checked
    // above), and u8 has no validity requirements.
    Some(unsafe { core::slice::from_raw_parts(ptr, len) })
}

unsafe extern "C" fn log(level: u32, text: *const u8, len: usize) {
    if let Some(b) = guest_slice(text, len.min(1024)) {
        tlv::log_bytes(level, b);
    }
}

unsafe extern "C" fn send_message(msg: *const u8, len: usize) -> i64 {
    if len > MAX_PAYLOAD {
        return ERR_TOO_LONG;
    }
    match guest_slice(msg, len) {
        Some(b) => tlv::send(MSG_PROTOBUF, b).err().unwrap_or(0),
        None => ERR_INVALID,
    }
}

unsafe extern "C" fn config(len: *mut usize) -> *const u8 {
    if !len.is_null() {
        // SAFETY: the caller passes a pointer to its own usize.
        unsafe { *len = crate::boot::read().config_len as usize };
    }
    OPERATION_CONFIG_ADDR as *const u8
}

unsafe extern "C" fn now_ns() -> u64 {
    time::now_ns()
}

unsafe extern "C" fn spawn(entry: TaskEntry, arg: u64, weight: u32) -> i64 {
    sched::spawn(entry, arg, weight)
}

unsafe extern "C" fn exit(code: i32) -> ! {
    sched::exit_current(code)
}

unsafe extern "C" fn join(pid: u32, info: *mut JoinInfo) -> i64 {
    let mut out = JoinInfo::default();
    let r = sched::join(pid, &mut out);
    if r == 0 && !info.is_null() {
        // SAFETY: the caller passes a pointer to its own JoinInfo.
        unsafe { *info = out };
    }
    r
}

unsafe extern "C" fn yield_now() {
    sched::yield_now()
}

unsafe extern "C" fn preempt_point() {
    sched::preempt_point()
}

unsafe extern "C" fn current_pid() -> u32 {
    sched::current_pid()
}

unsafe extern "C" fn fail(text: *const u8, len: usize) -> ! {
    let msg = guest_slice(text, len.min(1024)).unwrap_or(b"operation failed (unreadable reason)");
    sched::fail_run(msg)
}

pub fn install_call_table() {
    let table = CallTable {
        magic: CALL_TABLE_MAGIC,
        version: CALL_TABLE_VERSION,
        size: core::mem::size_of::<CallTable>() as u32,
        reserved: 0,
        log,
        send_message,
        config,
        now_ns,
        spawn,
        exit,
        join,
        yield_now,
        preempt_point,
        current_pid,
        fail,
    };
    // SAFETY: CALL_TABLE_ADDR is the call-table region of the memory map,
    // identity-mapped and big enough (asserted in shared).
    unsafe { core::ptr::write_volatile(CALL_TABLE_ADDR as *mut CallTable, table) };
}
