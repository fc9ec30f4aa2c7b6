//! The call-table implementation: the `extern "C"` functions operations
//! call, and the table itself at CALL_TABLE_ADDR. Pointers from the
//! operation are checked against guest RAM before use; the operation is
//! trusted not to lie about its own memory beyond that.

use crate::{ipc, sched, time, tlv};
use abi::calltable::{
    CALL_TABLE_MAGIC, CALL_TABLE_VERSION, CallTable, ERR_INVALID, ERR_TOO_LONG, JoinInfo, TaskEntry,
};
use abi::ipc::{Message, SPAWN_OPTIONS_SIZE, SPAWN_OPTIONS_V2_SIZE, SpawnOptions};
use abi::memmap::{CALL_TABLE_ADDR, NULL_GUARD_SIZE, OPERATION_CONFIG_ADDR};
use abi::tlv::{MAX_PAYLOAD, MSG_PROTOBUF};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

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
    sched::spawn(entry, arg, &SpawnOptions::new(weight))
}

unsafe extern "C" fn exit(code: i32) -> ! {
    sched::exit_current(code, abi::ipc::EXIT_NORMAL)
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

/// A `T` the operation passed by pointer, if it lies in guest RAM and is
/// aligned (zerocopy checks the alignment; any bytes are a valid `T`).
fn guest_ref<'a, T: FromBytes + KnownLayout + Immutable>(p: *const T) -> Option<&'a T> {
    let b = guest_slice(p.cast(), core::mem::size_of::<T>())?;
    T::ref_from_bytes(b).ok()
}

unsafe extern "C" fn spawn_ex(entry: TaskEntry, arg: u64, opts: *const SpawnOptions) -> i64 {
    // An operation built before call table v4 passed only the first
    // SPAWN_OPTIONS_V2_SIZE bytes (`size` 0, then `reserved`): read no
    // further than what the caller says it filled.
    let Some(head) = guest_slice(opts.cast(), SPAWN_OPTIONS_V2_SIZE as usize) else {
        return ERR_INVALID;
    };
    let size = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
    let o = if size == 0 {
        let mut o = SpawnOptions::new(1);
        o.as_mut_bytes()[..head.len()].copy_from_slice(head);
        o.size = SPAWN_OPTIONS_V2_SIZE;
        o
    } else if size >= SPAWN_OPTIONS_SIZE {
        match guest_ref(opts) {
            Some(o) => *o,
            None => return ERR_INVALID,
        }
    } else {
        return ERR_INVALID;
    };
    sched::spawn(entry, arg, &o)
}

unsafe extern "C" fn sleep_ns(ns: u64) {
    sched::sleep_ns(ns)
}

unsafe extern "C" fn send(to: u32, msg: *const Message, flags: u32) -> i64 {
    match guest_ref(msg) {
        Some(m) => ipc::send(to, m, flags),
        None => ERR_INVALID,
    }
}

unsafe extern "C" fn recv(out: *mut Message, timeout_ns: u64) -> i64 {
    if guest_ref(out as *const Message).is_none() {
        return ERR_INVALID;
    }
    let mut m = Message::default();
    let r = ipc::recv(&mut m, timeout_ns);
    if r == 0 {
        // SAFETY: checked above to be an aligned Message in guest RAM.
        unsafe { *out = m };
    }
    r
}

unsafe extern "C" fn subscribe(topic: *const u8, len: usize) -> i64 {
    match guest_slice(topic, len) {
        Some(t) => ipc::subscribe(t),
        None => ERR_INVALID,
    }
}

unsafe extern "C" fn publish(topic: *const u8, len: usize, msg: *const Message, flags: u32) -> i64 {
    match (guest_slice(topic, len), guest_ref(msg)) {
        (Some(t), Some(m)) => ipc::publish(t, m, flags),
        _ => ERR_INVALID,
    }
}

unsafe extern "C" fn broadcast(msg: *const Message, flags: u32) -> i64 {
    match guest_ref(msg) {
        Some(m) => ipc::broadcast(m, flags),
        None => ERR_INVALID,
    }
}

unsafe extern "C" fn monitor(pid: u32) -> i64 {
    ipc::monitor(pid)
}

unsafe extern "C" fn kill(pid: u32) -> i64 {
    sched::kill(pid)
}

unsafe extern "C" fn cpu_count() -> u32 {
    crate::boot::read().cpu_count
}

unsafe extern "C" fn current_cpu() -> u32 {
    crate::percpu::cpu_id()
}

unsafe extern "C" fn task_wait_ns() -> u64 {
    sched::task_wait_ns()
}

/// The futex word, if `addr` is an aligned `u32` in guest RAM.
fn futex_word<'a>(addr: *const u32) -> Option<&'a core::sync::atomic::AtomicU32> {
    let r: &u32 = guest_ref(addr)?;
    // SAFETY: an aligned u32 in guest RAM (checked just above); AtomicU32
    // has the same size and alignment, and tasks share the word only
    // through atomic operations.
    Some(unsafe { core::sync::atomic::AtomicU32::from_ptr(r as *const u32 as *mut u32) })
}

unsafe extern "C" fn futex_wait(addr: *const u32, expected: u32, timeout_ns: u64) -> i64 {
    match futex_word(addr) {
        Some(w) => crate::futex::wait(w, expected, timeout_ns),
        None => ERR_INVALID,
    }
}

unsafe extern "C" fn futex_wake(addr: *const u32, n: u32) -> i64 {
    match futex_word(addr) {
        Some(w) => crate::futex::wake_up(w, n),
        None => ERR_INVALID,
    }
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
        spawn_ex,
        sleep_ns,
        send,
        recv,
        subscribe,
        publish,
        broadcast,
        monitor,
        kill,
        cpu_count,
        current_cpu,
        task_wait_ns,
        futex_wait,
        futex_wake,
    };
    // SAFETY: CALL_TABLE_ADDR is the call-table region of the memory map,
    // identity-mapped and big enough (asserted in shared).
    unsafe { core::ptr::write_volatile(CALL_TABLE_ADDR as *mut CallTable, table) };
}
