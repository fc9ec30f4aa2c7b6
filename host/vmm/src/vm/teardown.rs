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
use std::sync::atomic::{AtomicBool, Ordering};

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

/// End the process with `code`. A kept machine is left to a forked child,
/// which closes stdin, stdout and stderr at once (so a caller reading
/// them sees the end with the parent's exit), waits until the parent has
/// exited (the pipe's write end closes then) and exits, closing the VM.
/// Everything already printed was flushed before the fork.
pub fn exit(code: u8) -> ! {
    let kept = KEPT.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(m) = kept {
        use std::io::Write;
        let _ = std::io::stdout().flush();
        let _ = std::io::stderr().flush();
        let mut fds = [0; 2];
        // SAFETY: pipe writes two fds into the array we own.
        if unsafe { libc::pipe(fds.as_mut_ptr()) } == 0 {
            // SAFETY: fork in a process whose other threads (vCPUs,
            // monitor) have all been joined by now; the child only makes
            // async-signal-safe calls (close, read, _exit) before exiting.
            match unsafe { libc::fork() } {
                0 => child(fds),
                pid if pid > 0 => {
                    // The child holds the VM; this process's copies of
                    // its fds close with it, which destroys nothing.
                    std::mem::forget(m);
                    // SAFETY: ends the process without running
                    // destructors; stdout and stderr were flushed.
                    unsafe { libc::_exit(i32::from(code)) }
                }
                _ => {
                    // SAFETY: closing the two pipe fds we just made.
                    unsafe {
                        libc::close(fds[0]);
                        libc::close(fds[1]);
                    }
                }
            }
        }
        // No pipe or no fork: close it here.
        drop(m);
    }
    std::process::exit(i32::from(code))
}

/// The forked child: drop the standard streams, wait for the parent's
/// end, exit (closing the VM's fds, the last references to it).
fn child(fds: [libc::c_int; 2]) -> ! {
    // SAFETY: only async-signal-safe calls on fds this process owns, then
    // _exit without running anything of the parent's.
    unsafe {
        libc::close(fds[1]);
        libc::close(0);
        libc::close(1);
        libc::close(2);
        let mut b = 0u8;
        loop {
            let r = libc::read(fds[0], (&mut b as *mut u8).cast(), 1);
            if r == 0 || (r < 0 && *libc::__errno_location() != libc::EINTR) {
                break;
            }
        }
        libc::_exit(0)
    }
}
