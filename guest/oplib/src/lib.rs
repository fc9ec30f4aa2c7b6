//! What every schedlab operation links: the entry-point macro (ABI stamp,
//! call-table check), safe wrappers over the call table, message sending
//! and the panic handler. Operations are written against [`Api`] and never
//! touch the raw table.
#![no_std]

pub use abi;
pub use guest_protocol as proto;

pub mod hist;
pub mod sync;
pub mod work;

use abi::calltable::{CallTable, JoinInfo, TableError, TaskEntry};
use abi::ipc::{Message, SpawnOptions};
use abi::memmap::CALL_TABLE_ADDR;
use core::sync::atomic::AtomicU32;
use proto::GuestMessage;

/// Exit code of an operation that refused the core's call table.
pub const EXIT_ABI_MISMATCH: i32 = 125;

/// Declare an operation: its ABI stamp (read by the host before it boots
/// anything) and its entry point at the first byte of the image.
///
/// ```ignore
/// oplib::operation!(config_magic: SPIN_MAGIC, main: main);
/// fn main(api: &oplib::Api) -> i32 { 0 }
/// ```
#[macro_export]
macro_rules! operation {
    (config_magic: $magic:expr, main: $main:path) => {
        #[used]
        #[unsafe(link_section = ".schedlab_abi")]
        static ABI_STAMP: $crate::abi::calltable::AbiStamp =
            $crate::abi::calltable::AbiStamp::new($crate::abi::calltable::IMAGE_OPERATION, $magic);

        /// The operation's entry: the core runs it as the first task with
        /// the call table's address as its argument.
        #[unsafe(no_mangle)]
        #[unsafe(link_section = ".text.entry")]
        pub extern "C" fn _start(table: u64) -> i32 {
            $crate::run(table, $main)
        }
    };
}

/// Check the table the core handed over, then run `main`.
pub fn run(table: u64, main: fn(&Api) -> i32) -> i32 {
    // SAFETY: the core passes CALL_TABLE_ADDR, an identity-mapped region it
    // filled before starting this task; only the header is read until it
    // has been checked.
    let t = unsafe { &*(table as *const CallTable) };
    match t.check() {
        Ok(()) => main(&Api(t)),
        Err(TableError::BadMagic(_)) => EXIT_ABI_MISMATCH,
        Err(e) => {
            // The magic matched, so `log` (present since v1) can be called.
            let mut text = heapless::String::<160>::new();
            let _ = match e {
                TableError::TooOld { have, need } => core::fmt::write(
                    &mut text,
                    format_args!(
                        "operation image built against call table v{need}, core provides v{have}: run make"
                    ),
                ),
                _ => core::fmt::write(
                    &mut text,
                    format_args!("call table refused: {e:?}: run make"),
                ),
            };
            // SAFETY: log exists in every table version with this magic.
            unsafe { (t.log)(0, text.as_ptr(), text.len()) };
            EXIT_ABI_MISMATCH
        }
    }
}

/// The call table, checked. Copyable so tasks can carry it around.
#[derive(Clone, Copy)]
pub struct Api(&'static CallTable);

/// The API from inside any task the operation spawned (the main task
/// checked the table before anything could be spawned).
pub fn api() -> Api {
    // SAFETY: see `run`; spawned tasks only exist after the check passed.
    Api(unsafe { &*(CALL_TABLE_ADDR as *const CallTable) })
}

// Every method below calls a function pointer from the checked table with
// arguments that satisfy its contract (documented on CallTable).
impl Api {
    pub fn log(&self, level: u32, text: &str) {
        // SAFETY: see the impl comment.
        unsafe { (self.0.log)(level, text.as_ptr(), text.len()) }
    }

    pub fn info(&self, text: &str) {
        self.log(2, text)
    }

    /// Encode and send a message to the host (results, structured logs).
    pub fn report(&self, msg: &GuestMessage) -> Result<(), i64> {
        let mut buf = heapless::Vec::<u8, { proto::MAX_ENCODED }>::new();
        let len = proto::encode(msg, &mut buf).ok_or(abi::calltable::ERR_TOO_LONG)?;
        // SAFETY: see the impl comment.
        match unsafe { (self.0.send_message)(buf.as_ptr(), len) } {
            0 => Ok(()),
            e => Err(e),
        }
    }

    /// The config bytes the host wrote for this operation.
    pub fn config_bytes(&self) -> &'static [u8] {
        let mut len = 0usize;
        // SAFETY: see the impl comment; the core returns the fixed config
        // region and its length (<= OPERATION_CONFIG_MAX, checked at boot).
        unsafe {
            let p = (self.0.config)(&mut len);
            core::slice::from_raw_parts(p, len)
        }
    }

    pub fn now_ns(&self) -> u64 {
        // SAFETY: see the impl comment.
        unsafe { (self.0.now_ns)() }
    }

    pub fn spawn(&self, entry: TaskEntry, arg: u64, weight: u32) -> Result<u32, i64> {
        // SAFETY: see the impl comment.
        match unsafe { (self.0.spawn)(entry, arg, weight) } {
            pid if pid > 0 => Ok(pid as u32),
            e => Err(e),
        }
    }

    pub fn join(&self, pid: u32) -> Result<JoinInfo, i64> {
        let mut info = JoinInfo::default();
        // SAFETY: see the impl comment.
        match unsafe { (self.0.join)(pid, &mut info) } {
            0 => Ok(info),
            e => Err(e),
        }
    }

    pub fn yield_now(&self) {
        // SAFETY: see the impl comment.
        unsafe { (self.0.yield_now)() }
    }

    #[inline(always)]
    pub fn preempt_point(&self) {
        // SAFETY: see the impl comment.
        unsafe { (self.0.preempt_point)() }
    }

    pub fn current_pid(&self) -> u32 {
        // SAFETY: see the impl comment.
        unsafe { (self.0.current_pid)() }
    }

    pub fn exit(&self, code: i32) -> ! {
        // SAFETY: see the impl comment.
        unsafe { (self.0.exit)(code) }
    }

    /// End the whole run as failed, with a reason the host shows.
    pub fn fail(&self, why: &str) -> ! {
        // SAFETY: see the impl comment.
        unsafe { (self.0.fail)(why.as_ptr(), why.len()) }
    }

    pub fn spawn_ex(&self, entry: TaskEntry, arg: u64, opts: &SpawnOptions) -> Result<u32, i64> {
        // SAFETY: see the impl comment.
        match unsafe { (self.0.spawn_ex)(entry, arg, opts) } {
            pid if pid > 0 => Ok(pid as u32),
            e => Err(e),
        }
    }

    pub fn sleep_ns(&self, ns: u64) {
        // SAFETY: see the impl comment.
        unsafe { (self.0.sleep_ns)(ns) }
    }

    /// Send to one task; `flags` is SEND_BLOCK or SEND_NOWAIT.
    pub fn send(&self, to: u32, msg: &Message, flags: u32) -> Result<(), i64> {
        // SAFETY: see the impl comment.
        match unsafe { (self.0.send)(to, msg, flags) } {
            0 => Ok(()),
            e => Err(e),
        }
    }

    /// The next message, waiting up to `timeout_ns` (WAIT_FOREVER, 0 = poll).
    pub fn recv(&self, timeout_ns: u64) -> Result<Message, i64> {
        let mut m = Message::default();
        // SAFETY: see the impl comment.
        match unsafe { (self.0.recv)(&mut m, timeout_ns) } {
            0 => Ok(m),
            e => Err(e),
        }
    }

    pub fn subscribe(&self, topic: &str) -> Result<(), i64> {
        // SAFETY: see the impl comment.
        match unsafe { (self.0.subscribe)(topic.as_ptr(), topic.len()) } {
            0 => Ok(()),
            e => Err(e),
        }
    }

    /// Returns how many subscribers got the message.
    pub fn publish(&self, topic: &str, msg: &Message, flags: u32) -> Result<u32, i64> {
        // SAFETY: see the impl comment.
        match unsafe { (self.0.publish)(topic.as_ptr(), topic.len(), msg, flags) } {
            n if n >= 0 => Ok(n as u32),
            e => Err(e),
        }
    }

    /// Returns how many tasks got the message.
    pub fn broadcast(&self, msg: &Message, flags: u32) -> Result<u32, i64> {
        // SAFETY: see the impl comment.
        match unsafe { (self.0.broadcast)(msg, flags) } {
            n if n >= 0 => Ok(n as u32),
            e => Err(e),
        }
    }

    pub fn monitor(&self, pid: u32) -> Result<(), i64> {
        // SAFETY: see the impl comment.
        match unsafe { (self.0.monitor)(pid) } {
            0 => Ok(()),
            e => Err(e),
        }
    }

    pub fn kill(&self, pid: u32) -> Result<(), i64> {
        // SAFETY: see the impl comment.
        match unsafe { (self.0.kill)(pid) } {
            0 => Ok(()),
            e => Err(e),
        }
    }

    pub fn cpu_count(&self) -> u32 {
        // SAFETY: see the impl comment.
        unsafe { (self.0.cpu_count)() }
    }

    pub fn current_cpu(&self) -> u32 {
        // SAFETY: see the impl comment.
        unsafe { (self.0.current_cpu)() }
    }

    /// How long the caller has waited runnable for a CPU in all, ns (see
    /// `CallTable::task_wait_ns`).
    pub fn task_wait_ns(&self) -> u64 {
        // SAFETY: see the impl comment.
        unsafe { (self.0.task_wait_ns)() }
    }

    /// Block while `word` holds `expected`, at most `timeout_ns` (see
    /// `CallTable::futex_wait`): 0 woken, `FUTEX_CHANGED`, or an error.
    pub fn futex_wait(&self, word: &AtomicU32, expected: u32, timeout_ns: u64) -> i64 {
        // SAFETY: see the impl comment; `word` is a live, aligned u32.
        unsafe { (self.0.futex_wait)(word.as_ptr(), expected, timeout_ns) }
    }

    /// Wake up to `n` tasks waiting on `word`; how many woke.
    pub fn futex_wake(&self, word: &AtomicU32, n: u32) -> u32 {
        // SAFETY: see the impl comment; `word` is a live, aligned u32.
        let r = unsafe { (self.0.futex_wake)(word.as_ptr(), n) };
        r.max(0) as u32
    }
}

/// A message of operation-defined `kind` with up to 32 bytes of payload.
pub fn message(kind: u32, corr: u64, data: &[u8]) -> Message {
    let mut m = Message {
        kind,
        corr,
        ..Message::default()
    };
    let n = data.len().min(m.data.len());
    m.data[..n].copy_from_slice(&data[..n]);
    m.len = n as u32;
    m
}

#[cfg(target_os = "none")]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    let mut text = heapless::String::<{ abi::tlv::MAX_TEXT }>::new();
    let _ = core::fmt::write(&mut text, format_args!("operation panicked: {info}"));
    api().fail(&text)
}

/// A host-side mock of the call table: the same `CallTable` type the core
/// fills, with host functions behind it, so operations' plumbing can be
/// tested without KVM.
#[cfg(test)]
mod mock {
    extern crate std;
    use super::*;
    use abi::calltable::{CALL_TABLE_MAGIC, CALL_TABLE_VERSION};
    use std::string::String;
    use std::sync::Mutex;
    use std::vec::Vec;

    static LOGS: Mutex<Vec<String>> = Mutex::new(Vec::new());
    static SENT: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());
    static CONFIG: [u8; 8] = *b"SPIN\x01\0\0\0";

    unsafe extern "C" fn log(_level: u32, text: *const u8, len: usize) {
        // SAFETY: callers pass a valid (ptr, len) pair.
        let b = unsafe { core::slice::from_raw_parts(text, len) };
        LOGS.lock()
            .unwrap()
            .push(String::from_utf8_lossy(b).into_owned());
    }
    unsafe extern "C" fn send_message(msg: *const u8, len: usize) -> i64 {
        // SAFETY: as in log.
        let b = unsafe { core::slice::from_raw_parts(msg, len) };
        SENT.lock().unwrap().push(b.to_vec());
        0
    }
    unsafe extern "C" fn config(len: *mut usize) -> *const u8 {
        // SAFETY: the caller passes its own usize.
        unsafe { *len = CONFIG.len() };
        CONFIG.as_ptr()
    }
    unsafe extern "C" fn now_ns() -> u64 {
        42
    }
    unsafe extern "C" fn spawn(_e: TaskEntry, _arg: u64, _w: u32) -> i64 {
        7
    }
    unsafe extern "C" fn exit(_code: i32) -> ! {
        panic!("exit called in mock")
    }
    unsafe extern "C" fn join(pid: u32, info: *mut JoinInfo) -> i64 {
        // SAFETY: the caller passes its own JoinInfo.
        unsafe { (*info).runtime_ns = pid as u64 * 10 };
        0
    }
    unsafe extern "C" fn nop() {}
    unsafe extern "C" fn current_pid() -> u32 {
        1
    }
    unsafe extern "C" fn fail(_t: *const u8, _l: usize) -> ! {
        panic!("fail called in mock")
    }
    unsafe extern "C" fn spawn_ex(_e: TaskEntry, _arg: u64, o: *const SpawnOptions) -> i64 {
        // SAFETY: the caller passes its own SpawnOptions.
        unsafe { (*o).weight as i64 }
    }
    unsafe extern "C" fn sleep_ns(_ns: u64) {}
    unsafe extern "C" fn send(to: u32, _m: *const Message, _f: u32) -> i64 {
        if to == 0 {
            abi::calltable::ERR_NO_TASK
        } else {
            0
        }
    }
    unsafe extern "C" fn recv(out: *mut Message, _t: u64) -> i64 {
        // SAFETY: the caller passes its own Message.
        unsafe { *out = message(0x123, 9, b"pong") };
        0
    }
    unsafe extern "C" fn subscribe(_t: *const u8, _l: usize) -> i64 {
        0
    }
    unsafe extern "C" fn publish(_t: *const u8, _l: usize, _m: *const Message, _f: u32) -> i64 {
        3
    }
    unsafe extern "C" fn broadcast(_m: *const Message, _f: u32) -> i64 {
        5
    }
    unsafe extern "C" fn pid_op(_pid: u32) -> i64 {
        0
    }
    unsafe extern "C" fn count() -> u32 {
        4
    }
    unsafe extern "C" fn waited() -> u64 {
        9
    }
    unsafe extern "C" fn futex_wait(_a: *const u32, _e: u32, _t: u64) -> i64 {
        abi::calltable::ERR_TIMEOUT
    }
    unsafe extern "C" fn futex_wake(_a: *const u32, n: u32) -> i64 {
        i64::from(n.min(2))
    }

    fn table(version: u32) -> &'static CallTable {
        std::boxed::Box::leak(std::boxed::Box::new(CallTable {
            magic: CALL_TABLE_MAGIC,
            version,
            size: core::mem::size_of::<CallTable>() as u32,
            reserved: 0,
            log,
            send_message,
            config,
            now_ns,
            spawn,
            exit,
            join,
            yield_now: nop,
            preempt_point: nop,
            current_pid,
            fail,
            spawn_ex,
            sleep_ns,
            send,
            recv,
            subscribe,
            publish,
            broadcast,
            monitor: pid_op,
            kill: pid_op,
            cpu_count: count,
            current_cpu: count,
            task_wait_ns: waited,
            futex_wait,
            futex_wake,
        }))
    }

    fn main_sends(api: &Api) -> i32 {
        assert_eq!(api.config_bytes(), &CONFIG);
        assert_eq!(api.spawn(nop_entry, 0, 1), Ok(7));
        assert_eq!(api.join(3).unwrap().runtime_ns, 30);
        assert_eq!(api.spawn_ex(nop_entry, 0, &SpawnOptions::new(11)), Ok(11));
        assert_eq!(
            api.send(0, &message(1, 0, b""), 0),
            Err(abi::calltable::ERR_NO_TASK)
        );
        let m = api.recv(0).unwrap();
        assert_eq!(
            (m.kind, m.corr, &m.data[..m.len as usize]),
            (0x123, 9, &b"pong"[..])
        );
        assert_eq!(api.publish("t", &m, 0), Ok(3));
        assert_eq!(api.broadcast(&m, 0), Ok(5));
        let log = proto::Log {
            level: 2,
            text: heapless::String::try_from("hello").unwrap(),
        };
        api.report(&GuestMessage {
            msg: Some(proto::Msg::Log(log)),
        })
        .unwrap();
        17
    }

    unsafe extern "C" fn nop_entry(_: u64) -> i32 {
        0
    }

    /// The mock clock reads 42 and its futex_wait always times out, so
    /// a wait that must block gives up at a deadline of 42 or less.
    #[test]
    fn sync_primitives_take_their_fast_paths_and_give_up_at_the_deadline() {
        use crate::sync::{Barrier, Condvar, Mutex};

        let api = Api(table(CALL_TABLE_VERSION));
        let m = Mutex::new();
        assert!(
            m.lock(&api, 0),
            "a free mutex is taken whatever the deadline"
        );
        assert!(
            !m.lock(&api, 42),
            "a held one is not, once the deadline passed"
        );
        m.unlock(&api);
        assert!(
            m.lock(&api, 0),
            "unlock frees it, even after a failed waiter"
        );
        let c = Condvar::new();
        assert_eq!(c.wait(&api, Some(&m), 42), (false, true));
        assert_eq!(
            c.wait(&api, None, 1_000),
            (false, true),
            "the mock times out"
        );
        let b = Barrier::new();
        assert!(b.wait(&api, 1, 0), "one party: released at once");
        assert!(!b.wait(&api, 2, 42), "the second never comes");
        assert!(b.wait(&api, 2, 0), "it does now: the first arrival counted");
        let s = crate::sync::Semaphore::new();
        assert!(!s.wait(&api, 42), "nothing posted");
        s.post(&api);
        s.post(&api);
        assert!(s.wait(&api, 0) && s.wait(&api, 0), "posts are remembered");
        assert!(!s.wait(&api, 42), "and used up");
    }

    #[test]
    fn a_checked_table_runs_main_and_messages_decode() {
        let t = table(CALL_TABLE_VERSION);
        assert_eq!(run(t as *const CallTable as u64, main_sends), 17);
        let sent = SENT.lock().unwrap();
        let msg = proto::decode(sent.last().unwrap()).unwrap();
        match msg.msg {
            Some(proto::Msg::Log(l)) => assert_eq!(l.text.as_str(), "hello"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn an_older_core_is_refused_with_a_message_naming_the_fix() {
        let t = table(CALL_TABLE_VERSION - 1);
        assert_eq!(run(t as *const CallTable as u64, |_| 0), EXIT_ABI_MISMATCH);
        let logs = LOGS.lock().unwrap();
        let want = std::format!(
            "operation image built against call table v{}, core provides v{}: run make",
            CALL_TABLE_VERSION,
            CALL_TABLE_VERSION - 1
        );
        assert!(logs.contains(&want), "logs: {logs:?}");
    }
}
