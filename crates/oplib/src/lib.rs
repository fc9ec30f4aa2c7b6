//! What every schedlab operation links: the entry-point macro (ABI stamp,
//! call-table check), safe wrappers over the call table, message sending
//! and the panic handler. Operations are written against [`Api`] and never
//! touch the raw table.
#![no_std]

pub use guest_protocol as proto;
pub use shared;

use proto::GuestMessage;
use shared::calltable::{CallTable, JoinInfo, TableError, TaskEntry};
use shared::memmap::CALL_TABLE_ADDR;

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
        static ABI_STAMP: $crate::shared::calltable::AbiStamp =
            $crate::shared::calltable::AbiStamp::new(
                $crate::shared::calltable::IMAGE_OPERATION,
                $magic,
            );

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

    /// Encode and send a message to the host.
    pub fn send(&self, msg: &GuestMessage) -> Result<(), i64> {
        let mut buf = heapless::Vec::<u8, { proto::MAX_ENCODED }>::new();
        let len = proto::encode(msg, &mut buf).ok_or(shared::calltable::ERR_TOO_LONG)?;
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
}

#[cfg(target_os = "none")]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    let mut text = heapless::String::<240>::new();
    let _ = core::fmt::write(&mut text, format_args!("operation panicked: {info}"));
    api().fail(&text)
}
