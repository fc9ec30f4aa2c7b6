//! The binary leaves closing its VM (1-17 ms of the kernel's SRCU waits)
//! to a child after its own exit (`vmm::vm::teardown`). That child must
//! exist, let go of the command's output at once, and end by itself soon
//! after: otherwise the caller waits on it, or VMs leak. Its own test
//! binary: it makes this process a subreaper, so the orphaned child is
//! reparented here, where it can be found and reaped.

mod common;

use common::*;
use std::time::{Duration, Instant};

/// Processes whose parent is this one (running or exited, not reaped).
fn children() -> Vec<i32> {
    let me = std::process::id() as i32;
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // "pid (comm) state ppid ...": comm may hold spaces and parens.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<i32>().ok());
        if ppid == Some(me) {
            out.push(pid);
        }
    }
    out
}

#[test]
fn a_child_closes_the_vm_after_the_command_has_ended() {
    let _vm = lock();
    // SAFETY: prctl with integer arguments only.
    let r = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    assert_eq!(r, 0, "PR_SET_CHILD_SUBREAPER");
    assert!(children().is_empty(), "{:?}", children());
    // `schedlab` returns once the command has exited and its output has
    // closed: the child let go of stdout and stderr at once.
    let r = schedlab(&["spin", "--duration", "20ms", "--json"], &[]);
    assert!(r.code == 0 || r.code == 2, "stderr: {}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).expect("the whole report");
    assert_eq!(v["status"], "ok");
    // The command itself did not close the VM.
    assert!(v["timing"]["teardown_us"].is_null(), "{}", v["timing"]);
    // Its one child, now ours, ends by itself (closing the VM) and
    // cleanly. A zombie stays listed until reaped, so it cannot be missed.
    let deadline = Instant::now() + Duration::from_secs(10);
    let kids = loop {
        let k = children();
        if !k.is_empty() || Instant::now() > deadline {
            break k;
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    assert_eq!(kids.len(), 1, "the VM was not left to one child: {kids:?}");
    let mut status = 0;
    loop {
        // SAFETY: waitpid on our own child, into a local.
        let w = unsafe { libc::waitpid(kids[0], &mut status, libc::WNOHANG) };
        if w == kids[0] {
            break;
        }
        assert_eq!(w, 0, "waitpid: {}", std::io::Error::last_os_error());
        assert!(
            Instant::now() < deadline,
            "the child holding the VM did not end"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "the child ended with status {status:#x}"
    );
}
