//! Turns how a vCPU ended into the error a person reads: what happened,
//! where (function names from the images' symbols), and what it means.

use super::vcpu::{FaultFrame, VcpuEnd, VcpuReport};
use crate::exit::{ErrorKind, Failure};
use crate::symbols::Symbolizer;
use abi::boot::{EXIT_BOOT_ERROR, EXIT_DONE, EXIT_PANIC};
use abi::memmap::{POLICY_LOAD_ADDR, POLICY_MAX_SIZE};
use abi::x86::exception_name;

/// The policy image a run loaded, and the callback the failing vCPU was
/// in when it ended (from its `CpuRecord::policy_callback`; None outside
/// one or when unreadable).
#[derive(Debug, Clone, Copy)]
pub struct PolicyAt<'a> {
    pub name: &'a str,
    pub callback: Option<&'static str>,
}

/// The failure a vCPU's end stands for, with the blame put where it
/// belongs: a fault while a policy callback runs, or in the policy's own
/// code, is the policy's (a policy image is untrusted code), and so is an
/// `error` the policy raised (its text starts "policy NAME:"). Their
/// message starts "policy NAME: in CALLBACK:" so the report's first line
/// names both; the kind and exit code stay those of the guest's end (70).
pub fn failure_with_policy(
    r: &VcpuReport,
    sym: &Symbolizer,
    guest_error: Option<&str>,
    policy: Option<PolicyAt<'_>>,
) -> Option<Failure> {
    let f = failure_for(r, sym, guest_error)?;
    let Some(p) = policy else {
        return Some(f);
    };
    let prefix = format!("policy {}: ", p.name);
    match &r.end {
        VcpuEnd::Fault {
            frame: Ok(frame),
            cr2,
            ..
        } => {
            let in_policy = frame.rip.wrapping_sub(POLICY_LOAD_ADDR) < POLICY_MAX_SIZE;
            if p.callback.is_none() && !in_policy {
                return Some(f);
            }
            let during = match p.callback {
                Some(cb) => format!("in {cb}: "),
                None => String::new(),
            };
            Some(Failure::new(
                f.kind,
                format!(
                    "{prefix}{during}{} (vCPU {}; the run was ended)",
                    fault_words(frame, *cr2, sym),
                    r.cpu
                ),
            ))
        }
        VcpuEnd::Exit(EXIT_PANIC) => match guest_error {
            Some(t) if t.starts_with(&prefix) => Some(Failure::new(
                f.kind,
                format!("{t} (vCPU {}; the run was ended)", r.cpu),
            )),
            _ => Some(f),
        },
        _ => Some(f),
    }
}

/// The failure a vCPU's end stands for, or None for a clean EXIT_DONE or a
/// host stop. `guest_error` is the last error text the guest sent (panic
/// and boot refusals send one before they exit).
pub fn failure_for(r: &VcpuReport, sym: &Symbolizer, guest_error: Option<&str>) -> Option<Failure> {
    let cpu = r.cpu;
    let at = || match &r.regs {
        Some(regs) => format!("at rip {:#x} {}", regs.rip, sym.locate(regs.rip)),
        None => "(registers unavailable)".to_string(),
    };
    let said = |what: &str| match guest_error {
        Some(t) => format!("{what}: {t}"),
        None => format!("{what} (it sent no message)"),
    };
    let (kind, message) = match &r.end {
        VcpuEnd::Exit(EXIT_DONE) | VcpuEnd::Stopped => return None,
        VcpuEnd::Exit(EXIT_PANIC) => (
            ErrorKind::GuestPanic,
            said(&format!("the guest panicked on vCPU {cpu}")),
        ),
        VcpuEnd::Exit(EXIT_BOOT_ERROR) => (
            ErrorKind::GuestBootError,
            said(&format!("the guest core refused to boot on vCPU {cpu}")),
        ),
        VcpuEnd::Exit(v) => (
            ErrorKind::UnexpectedIo,
            format!("vCPU {cpu} exited with unknown code {v} {}", at()),
        ),
        VcpuEnd::Fault {
            frame: Ok(f), cr2, ..
        } => (ErrorKind::GuestFault, fault_message(cpu, f, *cr2, sym)),
        VcpuEnd::Fault {
            frame: Err(why),
            stub_rsp,
            ..
        } => (
            ErrorKind::GuestFault,
            format!(
                "guest fault on vCPU {cpu}, but its fault frame is unreadable ({why}); stub rsp {stub_rsp:#x}"
            ),
        ),
        VcpuEnd::UnexpectedIo {
            port,
            write,
            size,
            value,
        } => {
            let dir = if *write {
                format!("out {value:#x} to")
            } else {
                "in from".to_string()
            };
            (
                ErrorKind::UnexpectedIo,
                format!(
                    "unexpected guest I/O on vCPU {cpu}: {dir} port {port:#x} ({size} bytes) {}",
                    at()
                ),
            )
        }
        VcpuEnd::Shutdown => (
            ErrorKind::TripleFault,
            format!(
                "vCPU {cpu} shut down (triple fault) {}: the guest faulted while it could not handle \
                 a fault (IDT, GDT or kernel stack unusable)",
                at()
            ),
        ),
        VcpuEnd::InternalError { suberror, data } => {
            let data: Vec<String> = data.iter().map(|d| format!("{d:#x}")).collect();
            (
                ErrorKind::EmulationFailure,
                format!(
                    "KVM internal error on vCPU {cpu} (suberror {suberror}{}) {}; data [{}]. On this machine \
                     CPL0 code is emulated: it must not use SSE/x87/AVX, popcnt, cmpxchg16b, rdtscp or int n",
                    if *suberror == 1 {
                        ": instruction emulation failed"
                    } else {
                        ""
                    },
                    at(),
                    data.join(", ")
                ),
            )
        }
        VcpuEnd::FailEntry { reason } => (
            ErrorKind::EntryFailure,
            format!(
                "KVM could not enter vCPU {cpu} (hardware entry failure reason {reason:#x}) {}",
                at()
            ),
        ),
        VcpuEnd::Hlt => (
            ErrorKind::UnexpectedExit,
            format!(
                "vCPU {cpu} halted {} with no interrupt that could wake it",
                at()
            ),
        ),
        VcpuEnd::Mmio { addr, write, len } => (
            ErrorKind::UnexpectedExit,
            format!(
                "vCPU {cpu} {} {len} bytes at guest-physical {addr:#x}, which is not RAM {}",
                if *write { "wrote" } else { "read" },
                at()
            ),
        ),
        VcpuEnd::Other(name) => (
            ErrorKind::UnexpectedExit,
            format!(
                "vCPU {cpu} stopped with unexpected KVM exit {name} {}",
                at()
            ),
        ),
        VcpuEnd::RunError(e) => (
            ErrorKind::UnexpectedExit,
            format!("KVM_RUN failed on vCPU {cpu}: {e} {}", at()),
        ),
    };
    Some(Failure::new(kind, message))
}

/// "guest fault on vCPU 0: #UD invalid opcode at rip 0x40012a in
/// op_spin::trigger_fault+0x12 (operation spin), CPL3, rsp 0x..., error code 0"
pub fn fault_message(cpu: u32, f: &FaultFrame, cr2: u64, sym: &Symbolizer) -> String {
    format!("guest fault on vCPU {cpu}: {}", fault_words(f, cr2, sym))
}

/// "#PF page fault at rip ... in FUNCTION (policy p), CPL3, ...".
fn fault_words(f: &FaultFrame, cr2: u64, sym: &Symbolizer) -> String {
    let name = if f.vector < 32 {
        exception_name(f.vector).to_string()
    } else {
        format!("vector {}", f.vector)
    };
    let mut m = format!(
        "{name} at rip {:#x} {}, CPL{}, rsp {:#x}, error code {:#x}",
        f.rip,
        sym.locate(f.rip),
        f.cs & 3,
        f.rsp,
        f.error
    );
    if f.vector == 14 {
        m.push_str(&format!(
            ", address {cr2:#x} (cr2): {}",
            page_fault_cause(f.error)
        ));
    }
    m
}

/// The page-fault error code in words.
fn page_fault_cause(err: u64) -> String {
    let who = if err & 4 != 0 { "user" } else { "kernel" };
    let what = if err & 16 != 0 {
        "instruction fetch"
    } else if err & 2 != 0 {
        "write"
    } else {
        "read"
    };
    let page = if err & 1 != 0 {
        "a protected page"
    } else {
        "a not-present page"
    };
    format!("{who} {what} of {page}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use kvm_bindings::kvm_regs;

    fn report(end: VcpuEnd) -> VcpuReport {
        VcpuReport {
            cpu: 0,
            end,
            regs: Some(kvm_regs {
                rip: 0x20_0010,
                ..Default::default()
            }),
            exits: 1,
            host: None,
        }
    }

    #[test]
    fn null_write_is_named_with_cr2() {
        let f = FaultFrame {
            vector: 14,
            error: 6,
            rip: 0x40_012a,
            cs: 0x33,
            rflags: 0x202,
            rsp: 0xc1_0000,
            ss: 0x2b,
        };
        let m = fault_message(0, &f, 0, &Symbolizer::default());
        assert_eq!(
            m,
            "guest fault on vCPU 0: #PF page fault at rip 0x40012a outside any known function, CPL3, \
             rsp 0xc10000, error code 0x6, address 0x0 (cr2): user write of a not-present page"
        );
    }

    #[test]
    fn ends_map_to_kinds() {
        let s = Symbolizer::default();
        assert!(failure_for(&report(VcpuEnd::Exit(EXIT_DONE)), &s, None).is_none());
        assert!(failure_for(&report(VcpuEnd::Stopped), &s, None).is_none());
        let p = failure_for(&report(VcpuEnd::Exit(EXIT_PANIC)), &s, Some("boom")).unwrap();
        assert_eq!(
            (p.kind, p.message.as_str()),
            (ErrorKind::GuestPanic, "the guest panicked on vCPU 0: boom")
        );
        let t = failure_for(&report(VcpuEnd::Shutdown), &s, None).unwrap();
        assert_eq!(t.kind, ErrorKind::TripleFault);
        assert!(t.message.contains("triple fault") && t.message.contains("0x200010"));
        let io = VcpuEnd::UnexpectedIo {
            port: 0x3f8,
            write: true,
            size: 1,
            value: 0x41,
        };
        let u = failure_for(&report(io), &s, None).unwrap();
        assert_eq!(u.kind, ErrorKind::UnexpectedIo);
        assert!(u.message.contains("port 0x3f8"), "{}", u.message);
        let e = failure_for(
            &report(VcpuEnd::InternalError {
                suberror: 1,
                data: vec![0x10],
            }),
            &s,
            None,
        )
        .unwrap();
        assert!(
            e.message.contains("emulation failed") && e.message.contains("[0x10]"),
            "{}",
            e.message
        );
    }
}
