//! One host thread per vCPU, looping on KVM_RUN until the guest ends the
//! run, fails, or the host stops it. The thread only gathers raw facts
//! (exit, registers, fault frame); naming and wording happen in
//! `vm::outcome`, where the symbols are.

use super::hoststat::{HostTime, Meter};
use super::memory::GuestRam;
use abi::boot::{EXIT_BOOT_ERROR, EXIT_DONE, EXIT_FAULT, EXIT_PANIC, FAULT_FRAME_WORDS, PORT_EXIT};
use kvm_bindings::{KVM_EXIT_INTERNAL_ERROR, kvm_regs};
use kvm_ioctls::{VcpuExit, VcpuFd};
use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use vm_memory::{Bytes, GuestAddress};
use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout};

/// Signal used to kick a vCPU thread out of KVM_RUN. It is installed
/// without SA_RESTART, so an interrupted KVM_RUN returns EINTR, and its
/// handler sets this thread's `kvm_run.immediate_exit`, so a kick that
/// lands just before KVM_RUN is entered still makes it return at once.
pub const KICK_SIGNAL: libc::c_int = libc::SIGUSR1;

thread_local! {
    /// This thread's `kvm_run.immediate_exit`, while its VcpuFd is alive.
    static IMMEDIATE_EXIT: Cell<*mut u8> = const { Cell::new(std::ptr::null_mut()) };
}

extern "C" fn on_kick(_: libc::c_int) {
    // try_with: never panics; const-initialised without a destructor, so
    // it is a plain thread-local read, safe in a signal handler.
    let _ = IMMEDIATE_EXIT.try_with(|p| {
        let p = p.get();
        if !p.is_null() {
            // SAFETY: set by `run` to a byte of this thread's kvm_run
            // mapping and cleared before the VcpuFd (and the mapping) is
            // dropped; a volatile byte store is async-signal-safe.
            unsafe { p.write_volatile(1) };
        }
    });
}

/// Install the kick handler (idempotent).
pub fn install_kick_handler() -> std::io::Result<()> {
    // SAFETY: a zeroed sigaction is a valid starting point; the handler is
    // async-signal-safe (above); flags exclude SA_RESTART on purpose.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_kick as *const () as libc::sighandler_t;
        sa.sa_flags = 0;
        libc::sigemptyset(&mut sa.sa_mask);
        if libc::sigaction(KICK_SIGNAL, &sa, std::ptr::null_mut()) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The fault frame the core's CPL0 stub leaves at rsp, in stack order.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct FaultFrame {
    pub vector: u64,
    pub error: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

const _: () = assert!(size_of::<FaultFrame>() == FAULT_FRAME_WORDS * 8);

/// Why a vCPU thread stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VcpuEnd {
    /// `out PORT_EXIT` with EXIT_DONE, EXIT_PANIC or EXIT_BOOT_ERROR.
    Exit(u32),
    /// `out PORT_EXIT, EXIT_FAULT`: the frame, or why it could not be read.
    Fault {
        frame: Result<FaultFrame, String>,
        stub_rsp: u64,
        cr2: u64,
    },
    UnexpectedIo {
        port: u16,
        write: bool,
        size: usize,
        value: u64,
    },
    Shutdown,
    InternalError {
        suberror: u32,
        data: Vec<u64>,
    },
    FailEntry {
        reason: u64,
    },
    Hlt,
    Mmio {
        addr: u64,
        write: bool,
        len: usize,
    },
    Other(String),
    RunError(String),
    /// The host asked it to stop (deadline, or another vCPU ended the run).
    Stopped,
}

impl VcpuEnd {
    /// Whether this ends the run by itself (everything but a host stop).
    pub fn is_terminal(&self) -> bool {
        !matches!(self, VcpuEnd::Stopped)
    }
}

#[derive(Debug, Clone)]
pub struct VcpuReport {
    pub cpu: u32,
    pub end: VcpuEnd,
    /// Registers when the thread stopped (None if even that failed).
    pub regs: Option<kvm_regs>,
    pub exits: u64,
    /// Host CPU the thread got while it ran the guest.
    pub host: Option<HostTime>,
}

/// Holds the vCPU threads until the VM is ready (`open`), or sends them
/// home (`stop`, which also stops threads that are running).
#[derive(Default)]
pub struct Gate {
    open: AtomicBool,
    pub stop: AtomicBool,
}

impl Gate {
    /// Let the waiting threads into the guest (after every write to guest
    /// memory: release ordering) and wake them.
    pub fn open(&self, threads: &[std::thread::Thread]) {
        self.open.store(true, Ordering::Release);
        threads.iter().for_each(std::thread::Thread::unpark);
    }

    /// True once opened, false once stopped first. Parks in between; the
    /// timeout only bounds a missed unpark.
    fn wait(&self) -> bool {
        loop {
            if self.stop.load(Ordering::Acquire) {
                return false;
            }
            if self.open.load(Ordering::Acquire) {
                return true;
            }
            std::thread::park_timeout(std::time::Duration::from_millis(5));
        }
    }
}

/// The loop body of a vCPU thread. Always sends exactly one report.
///
/// The thread is started while the VMM is still writing guest memory and
/// waits at the [`Gate`] before it enters the guest; meanwhile it
/// does what would otherwise stand between the VMM and the guest's first
/// instruction: its own start, opening its schedstat, and KVM's once-per-
/// VM work at the first KVM_RUN (starting the NX huge-page recovery
/// thread, 0.06-0.13 ms in `perf trace` here), which a KVM_RUN with
/// `immediate_exit` set does and then returns EINTR without entering the
/// guest.
pub fn run(cpu: u32, mut fd: VcpuFd, ram: Arc<GuestRam>, gate: Arc<Gate>, tx: Sender<VcpuReport>) {
    let mut exits = 0u64;
    fd.set_kvm_immediate_exit(1);
    let _ = fd.run();
    fd.set_kvm_immediate_exit(0);
    let mut meter = Meter::open();
    if !gate.wait() {
        let _ = tx.send(VcpuReport {
            cpu,
            end: VcpuEnd::Stopped,
            regs: None,
            exits,
            host: None,
        });
        return;
    }
    meter.begin();
    let stop = &gate.stop;
    IMMEDIATE_EXIT.with(|p| p.set(&mut fd.get_kvm_run().immediate_exit));
    let end = loop {
        if stop.load(Ordering::Acquire) {
            break VcpuEnd::Stopped;
        }
        let step = match fd.run() {
            Ok(exit) => {
                exits += 1;
                classify(exit)
            }
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => Step::Continue,
            Err(e) => Step::End(VcpuEnd::RunError(
                std::io::Error::from_raw_os_error(e.errno()).to_string(),
            )),
        };
        match step {
            Step::Continue => continue,
            Step::End(end) => break end,
            Step::Fault => break read_fault(&fd, &ram),
            Step::Internal => break internal_error(&mut fd),
        }
    };
    IMMEDIATE_EXIT.with(|p| p.set(std::ptr::null_mut()));
    // Make sure a stray later KVM_RUN on this fd could not run the guest.
    fd.set_kvm_immediate_exit(1);
    let regs = fd.get_regs().ok();
    let _ = tx.send(VcpuReport {
        cpu,
        end,
        regs,
        exits,
        host: meter.finish(),
    });
}

enum Step {
    Continue,
    End(VcpuEnd),
    /// Read the fault frame (needs the fd, which `exit` borrows).
    Fault,
    Internal,
}

fn classify(exit: VcpuExit<'_>) -> Step {
    match exit {
        VcpuExit::IoOut(port, data) => {
            let value = le_value(data);
            if port == PORT_EXIT && data.len() == 4 {
                match value as u32 {
                    EXIT_FAULT => return Step::Fault,
                    v @ (EXIT_DONE | EXIT_PANIC | EXIT_BOOT_ERROR) => {
                        return Step::End(VcpuEnd::Exit(v));
                    }
                    _ => {}
                }
            }
            Step::End(VcpuEnd::UnexpectedIo {
                port,
                write: true,
                size: data.len(),
                value,
            })
        }
        VcpuExit::IoIn(port, data) => {
            let size = data.len();
            data.fill(0);
            Step::End(VcpuEnd::UnexpectedIo {
                port,
                write: false,
                size,
                value: 0,
            })
        }
        VcpuExit::Intr | VcpuExit::IrqWindowOpen => Step::Continue,
        VcpuExit::Shutdown => Step::End(VcpuEnd::Shutdown),
        VcpuExit::InternalError => Step::Internal,
        VcpuExit::FailEntry(reason, _) => Step::End(VcpuEnd::FailEntry { reason }),
        VcpuExit::Hlt => Step::End(VcpuEnd::Hlt),
        VcpuExit::MmioRead(addr, data) => {
            let len = data.len();
            data.fill(0);
            Step::End(VcpuEnd::Mmio {
                addr,
                write: false,
                len,
            })
        }
        VcpuExit::MmioWrite(addr, data) => Step::End(VcpuEnd::Mmio {
            addr,
            write: true,
            len: data.len(),
        }),
        VcpuExit::SystemEvent(kind, _) => {
            Step::End(VcpuEnd::Other(format!("SYSTEM_EVENT (type {kind})")))
        }
        VcpuExit::Unsupported(r) => Step::End(VcpuEnd::Other(format!("exit reason {r}"))),
        other => Step::End(VcpuEnd::Other(exit_name(&other))),
    }
}

/// Port data as a little-endian number (at most 8 bytes are looked at).
fn le_value(data: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    let n = data.len().min(8);
    b[..n].copy_from_slice(&data[..n]);
    u64::from_le_bytes(b)
}

fn exit_name(exit: &VcpuExit<'_>) -> String {
    let debug = format!("{exit:?}");
    debug
        .split(['(', ' ', '{'])
        .next()
        .unwrap_or("unknown")
        .to_string()
}

fn read_fault(fd: &VcpuFd, ram: &GuestRam) -> VcpuEnd {
    let (stub_rsp, frame) = match fd.get_regs() {
        Ok(r) => (r.rsp, read_frame(ram, r.rsp)),
        Err(e) => (0, Err(format!("KVM_GET_REGS failed: {e}"))),
    };
    let cr2 = fd.get_sregs().map(|s| s.cr2).unwrap_or(0);
    VcpuEnd::Fault {
        frame,
        stub_rsp,
        cr2,
    }
}

/// The guest's rsp is not trusted: the read is bounds-checked.
pub fn read_frame(ram: &GuestRam, rsp: u64) -> Result<FaultFrame, String> {
    let len = (FAULT_FRAME_WORDS * 8) as u64;
    let end = rsp
        .checked_add(len)
        .ok_or("fault frame address overflows")?;
    if end > ram.size() {
        return Err(format!("fault frame at rsp {rsp:#x} is outside guest RAM"));
    }
    let mut f = FaultFrame::new_zeroed();
    ram.memory()
        .read_slice(f.as_mut_bytes(), GuestAddress(rsp))
        .map_err(|e| format!("cannot read fault frame at {rsp:#x}: {e}"))?;
    Ok(f)
}

fn internal_error(fd: &mut VcpuFd) -> VcpuEnd {
    let run = fd.get_kvm_run();
    if run.exit_reason != KVM_EXIT_INTERNAL_ERROR {
        return VcpuEnd::Other("INTERNAL_ERROR".into());
    }
    // SAFETY: exit_reason is KVM_EXIT_INTERNAL_ERROR, so the kernel filled
    // the `internal` member of the union; ndata is clamped to the array.
    let internal = unsafe { run.__bindgen_anon_1.internal };
    let n = (internal.ndata as usize).min(internal.data.len());
    VcpuEnd::InternalError {
        suberror: internal.suberror,
        data: internal.data[..n].to_vec(),
    }
}

/// Ask a vCPU thread to leave KVM_RUN: the flag is what stops it; the
/// signal only interrupts the ioctl (resend until the thread reports).
pub fn kick(thread: libc::pthread_t) {
    // SAFETY: `thread` belongs to a vCPU thread that has not been joined
    // (callers only kick threads whose report has not been collected, and
    // join only afterwards), so the pthread_t is still valid.
    unsafe { libc::pthread_kill(thread, KICK_SIGNAL) };
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_memory::Bytes;

    #[test]
    fn fault_frame_reads_are_bounds_checked() {
        let ram = GuestRam::new(2 << 20).unwrap();
        let words: [u64; 7] = [14, 6, 0x40_0123, 0x33, 0x202, 0xc0_ff00, 0x2b];
        for (i, w) in words.iter().enumerate() {
            ram.memory()
                .write_obj(*w, GuestAddress(0x1000 + 8 * i as u64))
                .unwrap();
        }
        let f = read_frame(&ram, 0x1000).unwrap();
        assert_eq!(
            (f.vector, f.error, f.rip, f.cs, f.ss),
            (14, 6, 0x40_0123, 0x33, 0x2b)
        );
        assert!(read_frame(&ram, (2 << 20) - 8).is_err());
        assert!(read_frame(&ram, u64::MAX - 8).is_err());
    }

    #[test]
    fn port_values_are_little_endian() {
        assert_eq!(le_value(&[2, 0, 0, 0]), 2);
        assert_eq!(le_value(&[0x34, 0x12]), 0x1234);
        assert_eq!(le_value(&[1; 16]), 0x0101_0101_0101_0101);
    }
}
