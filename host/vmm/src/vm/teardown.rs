//! Closing a VM costs this host 1-17 ms (median 11.5 ms in `make bench`,
//! `timing.teardown_us`): the kernel's `kvm_destroy_vm` waits for SRCU
//! grace periods (`mmu_notifier_unregister`, `srcu_barrier`), a few
//! jiffies each, and stops the NX-recovery thread. A command that runs a
//! VM, prints its report and exits need not make its caller wait for
//! that. With deferral on (the binary turns it on; a library caller keeps
//! the default, closing each VM as its run ends), the last machine is
//! kept, and [`exit`] forks a child that holds the VM's file descriptors
//! until the parent has exited: the VM is destroyed in the child, after
//! the command has returned. The work is the same; it is just off the
//! caller's path. Runs before the last one (a gauntlet's) are closed as
//! the next one is kept, so at most one VM is ever held.

use super::machine::Machine;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

static DEFER: AtomicBool = AtomicBool::new(false);
static KEPT: Mutex<Option<Machine>> = Mutex::new(None);

/// Keep each run's machine for [`exit`] instead of closing it at the end
/// of the run.
pub fn defer_teardowns() {
    DEFER.store(true, Ordering::Relaxed);
}

/// The run is over: close `m` now, or keep it (closing the one kept
/// before). True if it was kept.
pub(crate) fn retire(m: Machine) -> bool {
    if !DEFER.load(Ordering::Relaxed) {
        drop(m);
        return false;
    }
    let old = KEPT.lock().unwrap_or_else(|e| e.into_inner()).replace(m);
    drop(old);
    true
}

/// End the process with `code`. A kept machine is left to a child, which
/// closes stdin, stdout and stderr at once (so a caller reading them sees
/// the end with the parent's exit), waits until the parent has exited
/// (the pipe's write end closes then) and exits, closing the VM.
/// Everything already printed was flushed before the clone.
///
/// The child shares this process's memory (`CLONE_VM`) but has its own
/// copy of the fd table, so it holds the VM's fds without a copy of the
/// page tables, and the parent's exit does not tear down its address
/// space (the child still uses it): that is left to the child too. A
/// plain `fork` copied the page tables (0.3-0.5 ms here) and the
/// parent's exit then unmapped everything, guest RAM included.
pub fn exit(code: u8) -> ! {
    let kept = KEPT.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(m) = kept {
        use std::io::Write;
        let _ = std::io::stdout().flush();
        let _ = std::io::stderr().flush();
        let mut fds = [0; 2];
        // SAFETY: pipe writes two fds into the array we own.
        if unsafe { libc::pipe(fds.as_mut_ptr()) } == 0 {
            READ_FD.store(fds[0], Ordering::Relaxed);
            WRITE_FD.store(fds[1], Ordering::Relaxed);
            let stack = CHILD_STACK.0.get().cast::<u8>();
            // SAFETY: the child runs `child` on CHILD_STACK, which nothing
            // else uses (exit runs once: it never returns), its top
            // 16-byte aligned; `child` makes only raw system calls (no
            // locks, no allocation, no errno) and never returns. Every
            // other thread (vCPUs, monitor) has been joined by now.
            let pid = unsafe {
                libc::clone(
                    child,
                    stack.add(CHILD_STACK_SIZE).cast(),
                    libc::CLONE_VM | libc::SIGCHLD,
                    core::ptr::null_mut(),
                )
            };
            if pid > 0 {
                // The child holds the VM; this process's copies of its
                // fds close with it, which destroys nothing.
                std::mem::forget(m);
                // SAFETY: ends the process without running destructors;
                // stdout and stderr were flushed.
                unsafe { libc::_exit(i32::from(code)) }
            }
            // SAFETY: closing the two pipe fds we just made.
            unsafe {
                libc::close(fds[0]);
                libc::close(fds[1]);
            }
        }
        // No pipe or no child: close it here.
        drop(m);
    }
    std::process::exit(i32::from(code))
}

/// The child's stack: it makes a few system calls, and a signal handler
/// of the parent's may run on it (a `CLONE_VM` child has no alternate
/// signal stack).
const CHILD_STACK_SIZE: usize = 64 * 1024;

#[repr(C, align(16))]
struct ChildStack(core::cell::UnsafeCell<[u8; CHILD_STACK_SIZE]>);

// SAFETY: only the child, one at most per process, ever touches it.
unsafe impl Sync for ChildStack {}

static CHILD_STACK: ChildStack = ChildStack(core::cell::UnsafeCell::new([0; CHILD_STACK_SIZE]));
static READ_FD: AtomicI32 = AtomicI32::new(-1);
static WRITE_FD: AtomicI32 = AtomicI32::new(-1);

/// The child: drop the standard streams, wait for the parent's end, exit
/// (closing the VM's fds, the last references to it, and the address
/// space it shared with the parent). Raw system calls only: libc's
/// wrappers would write errno, which is the parent's main thread's.
extern "C" fn child(_: *mut libc::c_void) -> libc::c_int {
    let (r, w) = (
        READ_FD.load(Ordering::Relaxed),
        WRITE_FD.load(Ordering::Relaxed),
    );
    // SAFETY: system calls on fds this process owns (its own copy of the
    // table), then exit without running anything of the parent's.
    unsafe {
        for fd in [w, 0, 1, 2] {
            raw(libc::SYS_close, fd as usize, 0, 0);
        }
        let mut b = 0u8;
        loop {
            let n = raw(libc::SYS_read, r as usize, (&raw mut b) as usize, 1);
            // -EINTR is -4: read again; EOF (0) or any other error: done.
            if n != -4 {
                break;
            }
        }
        raw(libc::SYS_exit, 0, 0, 0);
    }
    0
}

/// A system call with up to three arguments, its result or -errno:
/// unlike libc's wrappers, it writes no errno.
///
/// # Safety
/// As the system call itself.
unsafe fn raw(nr: libc::c_long, a: usize, b: usize, c: usize) -> isize {
    let ret: isize;
    // SAFETY: the x86-64 system-call convention: rax the number, rdi, rsi
    // and rdx the arguments, rcx and r11 clobbered; the caller answers
    // for what the call itself does.
    unsafe {
        core::arch::asm!(
            "syscall",
            inlateout("rax") nr as isize => ret,
            in("rdi") a,
            in("rsi") b,
            in("rdx") c,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret
}
