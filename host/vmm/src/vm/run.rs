//! Runs one VM from start to end: vCPU threads do KVM_RUN, this thread
//! drains the guest's message rings from shared memory (no exits), watches
//! the deadline, the kernel-state flag and the stop request (a signal),
//! then stops everything and says how the run ended. Whatever was collected
//! before a failure or an interruption is kept.

use super::hoststat::HostTime;
use super::machine::{Machine, MachineSpec, open_kvm};
use super::outcome::{PolicyAt, failure_with_policy};
use super::setup::SchedBoot;
use super::vcpu::{self, Gate, VcpuReport};
use crate::exit::{ErrorKind, Failure};
use crate::images::Images;
use crate::monitor::live::Alarm;
use crate::monitor::view::KstateView;
use crate::monitor::{Monitor, MonitorConfig, MonitorData};
use crate::policy_image::PolicyImage;
use crate::signals::{Signal, StopFlag};
use crate::symbols::Symbolizer;
use crate::tlv::{Frame, FrameCounters, RingReader};
use crate::units::fmt_ns;
use abi::kstate::{KSTATE_MAGIC, KSTATE_RUN_STATE_OFFSET, RUN_FAILED, RUN_FINISHED};
use abi::memmap::{KERNEL_STATE_ADDR, tlv_ring_base};
use guest_protocol::{Complete, Msg};
use serde::Serialize;
use std::os::unix::thread::JoinHandleExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

/// Poll interval while waiting for the first message (it sets the boot
/// timing's resolution), for at most FAST_POLL_FOR; then the normal one (a
/// full ring only makes the guest wait, it never drops).
const FAST_POLL: Duration = Duration::from_micros(100);
const FAST_POLL_FOR: Duration = Duration::from_millis(100);
const SLOW_POLL: Duration = Duration::from_millis(1);
/// How long the guest may take from "run finished" in kernel state to its
/// exit port write before the host stops it anyway.
const STATE_GRACE: Duration = Duration::from_secs(1);
/// How often stuck vCPU threads are re-signalled, and for how long.
const KICK_EVERY: Duration = Duration::from_millis(5);
const STOP_PATIENCE: Duration = Duration::from_secs(3);

/// One run, described in the VMM's own terms: what to boot and how to
/// watch it. The lab builds it from its validated settings; nothing here
/// knows where the numbers came from.
pub struct RunRequest<'a> {
    pub images: &'a Images,
    /// The operation's `*Config` bytes, written at OPERATION_CONFIG_ADDR.
    pub config: &'a [u8],
    /// The policy image loaded at POLICY_LOAD_ADDR (the core has no
    /// policy of its own).
    pub policy: &'a PolicyImage,
    /// What that policy reads besides its image (a sched_ext object's
    /// program image for the BPF runtime), and what to read back after.
    pub policy_data: Option<&'a PolicyData>,
    pub spec: RunSpec,
    /// Polled with the deadline: once set (by a signal), the VM is stopped
    /// as at a deadline and the run ends `interrupted`. None: nothing but
    /// the guest, the deadline and the live checks ends the run (a library
    /// caller that installed no handlers).
    pub stop: Option<&'a StopFlag>,
}

/// Bytes a policy image reads at a fixed address, and guest ranges the
/// host reads back when the run ends (the BPF runtime's status and the
/// object's exit record).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyData {
    /// Inside `[BPF_PROGRAM_ADDR, BPF_PROGRAM_ADDR + BPF_PROGRAM_SIZE)`,
    /// the only region set aside for it (checked before the VM starts).
    pub addr: u64,
    pub bytes: Vec<u8>,
    /// `(address, length)` pairs inside that region.
    pub read_back: Vec<(u64, usize)>,
}

impl PolicyData {
    /// Whether `[addr, addr + len)` lies inside the policy-data region.
    pub fn in_region(addr: u64, len: usize) -> bool {
        use abi::memmap::{BPF_PROGRAM_ADDR, BPF_PROGRAM_SIZE};
        addr >= BPF_PROGRAM_ADDR
            && (len as u64) <= BPF_PROGRAM_SIZE
            && addr - BPF_PROGRAM_ADDR <= BPF_PROGRAM_SIZE - len as u64
    }
}

/// The machine and the watch over it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSpec {
    pub cpus: u32,
    pub mem_bytes: u64,
    /// Base time slice the policy uses.
    pub slice_ns: u64,
    pub seed: u64,
    pub sched: SchedBoot,
    /// Wall-clock limit from VM creation.
    pub timeout: Duration,
    /// Monitor samples per second (0: rings drained, no samples).
    pub sample_hz: u32,
    pub stall_threshold_ns: u64,
    /// None: no live starvation check.
    pub max_wait_ns: Option<u64>,
    /// Which guest log lines are echoed to stderr as they arrive.
    pub echo: LogEcho,
}

/// Guest log lines echoed live to stderr (all are kept in the outcome).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogEcho {
    /// None (machine-readable output owns the streams).
    Off,
    /// Errors and warnings.
    Problems,
    /// Every line, info and debug too.
    All,
}

#[derive(Debug, Clone, Serialize)]
pub struct LogLine {
    pub cpu: u32,
    /// 0 error, 1 warn, 2 info, 3 debug, 4 trace.
    pub level: u32,
    pub text: String,
}

/// Where a run's host time went, each step measured with the monotonic
/// clock (µs). The steps from `ram_us` to `teardown_us` follow one
/// another; `vm_create_us`, `first_message_us` and `wall_us` are the
/// older totals counted from KVM_CREATE_VM's step (guest RAM included).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Timing {
    /// Set by the lab: process start until the run was asked for
    /// (parsing, checking, preparing the policy), when the binary marked
    /// its start.
    pub prepare_us: Option<u64>,
    /// Set by the lab: reading and checking the guest images.
    pub images_us: Option<u64>,
    /// Opening /dev/kvm.
    pub open_us: Option<u64>,
    /// Mapping guest RAM.
    pub ram_us: Option<u64>,
    /// KVM_CREATE_VM, the memory region, the irqchip, each vCPU's CPUID
    /// and registers.
    pub kvm_us: Option<u64>,
    /// Writing the images, page tables, boot info and config into RAM.
    pub load_us: Option<u64>,
    /// The monitor thread and the vCPU threads started.
    pub start_us: Option<u64>,
    /// vCPUs started until the run's end was seen (the guest's work).
    pub run_us: Option<u64>,
    /// Stopping the vCPU threads and the monitor, and the last reads.
    pub stop_us: Option<u64>,
    /// Closing the VM and unmapping its RAM; absent when the binary
    /// leaves that to a child after its own exit (`teardown`).
    pub teardown_us: Option<u64>,
    /// Set by the lab: the judge, the report and the `--out` files.
    pub analyse_us: Option<u64>,
    /// KVM_CREATE_VM until the vCPUs were started.
    pub vm_create_us: Option<u64>,
    /// KVM_CREATE_VM until the first guest message was seen.
    pub first_message_us: Option<u64>,
    /// From the guest's own clock (the TSC, which counts from the same
    /// start): CPU 0's first instruction in the core's Rust code, and the
    /// operation's main task spawned (the core booted).
    pub guest_entry_us: Option<u64>,
    pub guest_ready_us: Option<u64>,
    /// KVM_CREATE_VM until everything stopped.
    pub wall_us: Option<u64>,
    /// VM exits, all vCPUs (a clean run needs one: the final port write).
    pub vm_exits: u64,
}

/// Most guest log lines kept (and most guest error texts): about 3 MB at
/// the longest (240-byte) lines. A run logs a few dozen.
pub const MAX_LOG_LINES: usize = 10_000;
/// Most operation results kept: an operation sends one; each decoded
/// message reserves its containers' full capacities (several KiB).
pub const MAX_RESULTS: usize = 64;

/// Everything a run produced, successful or not.
#[derive(Debug, Default)]
pub struct RunOutcome {
    /// At most MAX_LOG_LINES from the guest (the host's own notes are
    /// always kept); `frames.not_kept` counts the rest.
    pub logs: Vec<LogLine>,
    /// Error texts the guest sent (Error messages), in order; at most
    /// MAX_LOG_LINES.
    pub guest_errors: Vec<String>,
    /// The last raw text frame (what a panic sends when it cannot encode).
    pub last_text: Option<String>,
    pub complete: Option<Complete>,
    /// Operation results (e.g. SpinResult), in arrival order; at most
    /// MAX_RESULTS.
    pub results: Vec<Msg>,
    pub frames: FrameCounters,
    pub timing: Timing,
    pub failure: Option<Failure>,
    /// The guest signalled EXIT_DONE.
    pub finished: bool,
    /// What the monitor collected (None if the VM never started).
    pub monitor: Option<MonitorData>,
    /// A live check that ended the run before the guest finished.
    pub ended_early: Option<EarlyEnd>,
    /// A stop request (this signal) ended the run before the guest
    /// finished; what was collected until then is all here.
    pub interrupted: Option<Signal>,
    /// TSC ticks per ms of the guest clock.
    pub tsc_khz: u64,
    /// Host CPU each vCPU thread got, by vCPU.
    pub vcpu_host: Vec<(u32, HostTime)>,
    /// `PolicyData::read_back`'s ranges as the run left them (empty if the
    /// VM never ran).
    pub read_back: Vec<(u64, Vec<u8>)>,
}

/// A run the monitor stopped: which check, the message a person reads,
/// and for a stall where the stalled vCPU was.
#[derive(Debug, Clone)]
pub struct EarlyEnd {
    pub alarm: Alarm,
    pub message: String,
    pub stall: Option<analysis::Stall>,
}

/// Run the VM; never panics on guest behaviour, always returns what it got.
pub fn run(req: &RunRequest<'_>) -> RunOutcome {
    let mut out = RunOutcome::default();
    if let Err(f) = run_inner(req, &mut out) {
        out.failure.get_or_insert(f);
    }
    out
}

fn run_inner(req: &RunRequest<'_>, out: &mut RunOutcome) -> Result<(), Failure> {
    let opened = Instant::now();
    let kvm = open_kvm()?;
    out.timing.open_us = Some(opened.elapsed().as_micros() as u64);
    let cpu_count = req.spec.cpus;
    let spec = MachineSpec {
        cpu_count,
        mem_bytes: req.spec.mem_bytes,
        config: req.config,
        slice_ns: req.spec.slice_ns,
        seed: req.spec.seed,
        sched: req.spec.sched,
        policy: req.policy,
        policy_data: req.policy_data,
    };
    let mut machine = Machine::create(kvm, req.images, &spec)?;
    let t0 = machine.t0;
    out.timing.ram_us = Some(machine.ram_us);
    out.timing.kvm_us = Some(machine.kvm_us);
    out.tsc_khz = machine.tsc_khz;
    let mut sym = Symbolizer::default();
    sym.add("core", req.images.core.symbols.clone());
    sym.add(
        format!("operation {}", req.images.op.name),
        req.images.op.symbols.clone(),
    );
    sym.add(
        format!("policy {}", req.policy.name()),
        req.policy.symbols.clone(),
    );

    vcpu::install_kick_handler()
        .map_err(|e| Failure::host(format!("cannot install signal handler: {e}")))?;
    // The vCPU threads start first and wait at the gate, getting ready
    // (see vcpu::run) while this thread loads the guest and starts the
    // monitor.
    let gate = Arc::new(Gate::default());
    let (tx, rx) = mpsc::channel::<VcpuReport>();
    let mut threads = Vec::new();
    for (cpu, fd) in machine.vcpus.drain(..).enumerate() {
        let (ram, g, tx) = (machine.ram.clone(), gate.clone(), tx.clone());
        let h = std::thread::Builder::new()
            .name(format!("vcpu{cpu}"))
            .spawn(move || vcpu::run(cpu as u32, fd, ram, g, tx))
            .map_err(|e| Failure::host(format!("cannot start a vCPU thread: {e}")));
        match h {
            Ok(h) => threads.push(Some(h)),
            Err(f) => {
                stop_all(&gate.stop, &mut threads, &rx, &mut Vec::new());
                return Err(f);
            }
        }
    }
    drop(tx);
    // Started before the vCPUs enter the guest so it sees the guest from
    // its first tick.
    let monitor = machine
        .load(req.images, &spec)
        .and_then(|()| start_monitor(&machine, &req.spec));
    out.timing.load_us = Some(machine.load_us);
    let monitor = match monitor {
        Ok(m) => m,
        Err(f) => {
            stop_all(&gate.stop, &mut threads, &rx, &mut Vec::new());
            return Err(f);
        }
    };
    monitor.set_vcpu_clocks(threads.iter().flatten().filter_map(cpu_clock).collect());
    machine.ram.wait_populated();
    let handles: Vec<_> = threads
        .iter()
        .flatten()
        .map(|h| h.thread().clone())
        .collect();
    gate.open(&handles);
    let started = t0.elapsed().as_micros() as u64;
    let created = machine.ram_us + machine.kvm_us + machine.load_us;
    out.timing.vm_create_us = Some(started);
    out.timing.start_us = Some(started.saturating_sub(created));

    let mem = machine.ram.memory();
    let mut drain = Drain::new(
        cpu_count,
        req.spec.echo == LogEcho::All,
        req.spec.echo != LogEcho::Off,
        t0,
    );
    let deadline = t0 + req.spec.timeout;
    let mut reports = Vec::new();
    let mut state_seen: Option<(u32, Instant)> = None;
    let ending = loop {
        let booting = !drain.seen_any && t0.elapsed() < FAST_POLL_FOR;
        let wait = if booting { FAST_POLL } else { SLOW_POLL };
        match rx.recv_timeout(wait) {
            Ok(r) => {
                let terminal = r.end.is_terminal();
                reports.push(r);
                if terminal {
                    break Ending::Vcpu(reports.len() - 1);
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                break Ending::Vcpu(reports.len().saturating_sub(1));
            }
        }
        if let Err(f) = drain.poll(mem, out) {
            break Ending::Failed(f);
        }
        if let Some(s) = run_state(mem).filter(|s| *s == RUN_FINISHED || *s == RUN_FAILED) {
            let (s, since) = *state_seen.get_or_insert((s, Instant::now()));
            if since.elapsed() > STATE_GRACE {
                break Ending::StateOnly(s);
            }
        }
        if let Some(a) = monitor.alarm() {
            break Ending::Alarm(a);
        }
        if let Some(sig) = req.stop.and_then(StopFlag::requested) {
            break Ending::Interrupted(sig);
        }
        if Instant::now() >= deadline {
            break Ending::Deadline;
        }
    };
    let ended = t0.elapsed().as_micros() as u64;
    out.timing.run_us = Some(ended.saturating_sub(started));
    stop_all(&gate.stop, &mut threads, &rx, &mut reports);
    let data = monitor.finish();
    if let Some(h) = &data.header {
        // Guest-written: a TSC before the epoch or beyond the run is no
        // figure at all.
        let us = |tsc: u64| {
            let us = tsc.checked_sub(machine.epoch_tsc)? / (machine.tsc_khz / 1000).max(1);
            (us <= t0.elapsed().as_micros() as u64).then_some(us)
        };
        out.timing.guest_entry_us = us(h.entry_tsc);
        out.timing.guest_ready_us = us(h.ready_tsc);
    }
    out.monitor = Some(data);
    out.timing.vm_exits = reports.iter().map(|r| r.exits).sum();
    out.vcpu_host = reports
        .iter()
        .filter_map(|r| Some((r.cpu, r.host?)))
        .collect();
    out.vcpu_host.sort_by_key(|(cpu, _)| *cpu);
    if let Some(d) = req.policy_data {
        out.read_back = d
            .read_back
            .iter()
            .filter(|(a, n)| PolicyData::in_region(*a, *n))
            .map(|&(a, n)| {
                let mut b = vec![0u8; n];
                // Inside guest RAM (the region is part of the map); a
                // failed read leaves zeros.
                let _ = mem.read_slice(&mut b, GuestAddress(a));
                (a, b)
            })
            .collect();
    }
    // The guest publishes everything before its exit: one last drain.
    let final_drain = drain.poll(mem, out);
    drain.note_partial_frames(out);
    out.frames = drain.counters();

    let last_error = out.guest_errors.last().or(out.last_text.as_ref()).cloned();
    let last_error = last_error.as_deref();
    let failure = match ending {
        Ending::Failed(f) => Some(f),
        Ending::Vcpu(i) => match reports.get(i) {
            Some(r) => {
                if matches!(r.end, vcpu::VcpuEnd::Exit(abi::boot::EXIT_DONE)) {
                    out.finished = true;
                    check_state_agrees(mem, out);
                }
                let policy = Some(PolicyAt {
                    name: req.policy.name(),
                    callback: callback_of(mem, r.cpu),
                });
                failure_with_policy(r, &sym, last_error, policy)
            }
            None => Some(Failure::host("every vCPU thread ended without a report")),
        },
        Ending::StateOnly(RUN_FINISHED) => {
            out.finished = true;
            host_log(
                out,
                1,
                "the guest marked the run finished but never signalled the host; it was stopped",
            );
            None
        }
        Ending::StateOnly(_) => Some(Failure::new(
            ErrorKind::GuestFailed,
            match last_error {
                Some(t) => format!("the guest marked the run failed: {t}"),
                None => "the guest marked the run failed without saying why".to_string(),
            },
        )),
        Ending::Deadline => Some(deadline_failure(&req.spec, &reports, &sym)),
        Ending::Alarm(a) => {
            out.ended_early = Some(early_end(a, &reports, &sym, req.policy));
            None
        }
        Ending::Interrupted(sig) => {
            out.interrupted = Some(sig);
            host_log(
                out,
                1,
                &format!(
                    "{} asked the run to stop; the VM was stopped after {:.3} s",
                    sig.name(),
                    t0.elapsed().as_secs_f64()
                ),
            );
            None
        }
    };
    let failure = failure.or_else(|| final_drain.err());
    out.failure = out.failure.take().or(failure);
    let stopped = t0.elapsed().as_micros() as u64;
    out.timing.stop_us = Some(stopped.saturating_sub(ended));
    drop(sym);
    // Kept for the binary's exit (see `teardown`), or closed now.
    let kept = super::teardown::retire(machine);
    let wall = t0.elapsed().as_micros() as u64;
    out.timing.teardown_us = (!kept).then_some(wall.saturating_sub(stopped));
    out.timing.wall_us = Some(wall);
    Ok(())
}

enum Ending {
    /// reports[i] ended the run.
    Vcpu(usize),
    Failed(Failure),
    /// Kernel state said finished/failed but no exit came.
    StateOnly(u32),
    Deadline,
    /// A live check of the monitor fired.
    Alarm(Alarm),
    /// A stop request (a signal) arrived.
    Interrupted(Signal),
}

/// A thread's CPU-time clock (for the policy callback budget).
fn cpu_clock(h: &std::thread::JoinHandle<()>) -> Option<libc::clockid_t> {
    let mut clock: libc::clockid_t = 0;
    // SAFETY: the thread is alive (joined only after the monitor stops);
    // pthread_getcpuclockid only writes the clock id we pass.
    let rc = unsafe { libc::pthread_getcpuclockid(h.as_pthread_t(), &mut clock) };
    (rc == 0).then_some(clock)
}

fn start_monitor(machine: &Machine, s: &RunSpec) -> Result<Monitor, Failure> {
    let view = KstateView::of_ram(machine.ram.clone())
        .ok_or_else(|| Failure::host("guest RAM does not cover the kernel-state area"))?;
    let cfg = MonitorConfig {
        cpus: s.cpus,
        sample_hz: s.sample_hz,
        tsc_khz: machine.tsc_khz,
        stall_threshold_ns: s.stall_threshold_ns,
        max_wait_ns: s.max_wait_ns,
        tick_hz: s.sched.tick_hz,
        // Every run runs a policy image, whose callbacks have a budget.
        policy_budget_ns: Some(abi::policy::POLICY_CALLBACK_BUDGET_NS),
    };
    Monitor::start(view, cfg)
        .map_err(|e| Failure::host(format!("cannot start the monitor thread: {e}")))
}

/// Name what the monitor saw; for a stall or a hung policy callback, say
/// where the vCPU was when it was stopped (its thread read its registers
/// on the way out).
fn early_end(a: Alarm, reports: &[VcpuReport], sym: &Symbolizer, policy: &PolicyImage) -> EarlyEnd {
    if let Alarm::PolicyHung { cpu, .. } = a {
        let at = rip_of(reports, cpu).map(|rip| format!("at rip {rip:#x} {}", sym.locate(rip)));
        let name = policy.name();
        return EarlyEnd {
            alarm: a,
            message: format!("policy {name}: {}", a.message(at.as_deref())),
            stall: None,
        };
    }
    let Alarm::Stall {
        cpu,
        pid,
        stalled_ns,
    } = a
    else {
        return EarlyEnd {
            alarm: a,
            message: a.message(None),
            stall: None,
        };
    };
    let rip = rip_of(reports, cpu);
    let at = rip.map(|rip| format!("at rip {rip:#x} {}", sym.locate(rip)));
    EarlyEnd {
        alarm: a,
        message: a.message(at.as_deref()),
        stall: Some(analysis::Stall {
            cpu,
            pid,
            stalled_ns,
            rip,
            function: rip.and_then(|r| sym.function(r)),
        }),
    }
}

/// Where vCPU `cpu` was when it was stopped, if its registers were read.
fn rip_of(reports: &[VcpuReport], cpu: u32) -> Option<u64> {
    reports
        .iter()
        .find(|r| r.cpu == cpu)
        .and_then(|r| r.regs.as_ref())
        .map(|r| r.rip)
}

fn deadline_failure(s: &RunSpec, reports: &[VcpuReport], sym: &Symbolizer) -> Failure {
    let mut r: Vec<&VcpuReport> = reports.iter().collect();
    r.sort_by_key(|r| r.cpu);
    let where_ = match r.first() {
        Some(VcpuReport {
            cpu,
            regs: Some(regs),
            ..
        }) => {
            format!(
                ": run stopped on vCPU {cpu} at rip {:#x} {}",
                regs.rip,
                sym.locate(regs.rip)
            )
        }
        _ => String::new(),
    };
    Failure::new(
        ErrorKind::Deadline,
        format!(
            "the guest did not finish within {} (--timeout){where_}",
            fmt_ns(s.timeout.as_nanos() as u64)
        ),
    )
}

/// Stop every vCPU thread that has not reported yet and collect reports.
/// Gives up after STOP_PATIENCE rather than hang (the process is about to
/// exit anyway, which ends the threads).
fn stop_all(
    stop: &AtomicBool,
    threads: &mut [Option<std::thread::JoinHandle<()>>],
    rx: &mpsc::Receiver<VcpuReport>,
    reports: &mut Vec<VcpuReport>,
) {
    stop.store(true, Ordering::Release);
    let give_up = Instant::now() + STOP_PATIENCE;
    loop {
        let pending: Vec<usize> = (0..threads.len())
            .filter(|&i| threads[i].is_some() && !reports.iter().any(|r| r.cpu as usize == i))
            .collect();
        if pending.is_empty() || Instant::now() > give_up {
            break;
        }
        for &i in &pending {
            if let Some(h) = &threads[i] {
                // A thread still at the gate parks; one in the guest
                // needs the signal.
                h.thread().unpark();
                vcpu::kick(h.as_pthread_t());
            }
        }
        if let Ok(r) = rx.recv_timeout(KICK_EVERY) {
            reports.push(r);
        }
    }
    for (i, slot) in threads.iter_mut().enumerate() {
        if reports.iter().any(|r| r.cpu as usize == i)
            && let Some(h) = slot.take()
        {
            let _ = h.join();
        }
    }
}

fn run_state(mem: &GuestMemoryMmap) -> Option<u32> {
    let magic: u32 = mem
        .load(GuestAddress(KERNEL_STATE_ADDR), Ordering::Acquire)
        .ok()?;
    if magic != KSTATE_MAGIC {
        return None;
    }
    mem.load(
        GuestAddress(KERNEL_STATE_ADDR + KSTATE_RUN_STATE_OFFSET),
        Ordering::Acquire,
    )
    .ok()
}

/// The policy callback CPU `cpu` is in, as its kernel-state record says
/// (None outside one, or for an id or CPU the record cannot have).
fn callback_of(mem: &GuestMemoryMmap, cpu: u32) -> Option<&'static str> {
    if cpu as usize >= abi::memmap::MAX_CPUS {
        return None;
    }
    let at = abi::kstate::cpu_record_addr(cpu) + abi::kstate::CPU_RECORD_POLICY_CALLBACK_OFFSET;
    let id: u64 = mem.load(GuestAddress(at), Ordering::Acquire).ok()?;
    abi::policy::callback_name(id)
}

/// The port exit and the kernel-state flag are two signals of the same
/// event; say so when they disagree (it points at a core bug).
fn check_state_agrees(mem: &GuestMemoryMmap, out: &mut RunOutcome) {
    match run_state(mem) {
        Some(RUN_FINISHED) => {}
        Some(s) => host_log(
            out,
            1,
            &format!("the guest exited DONE but its kernel state says run_state {s}"),
        ),
        None => host_log(
            out,
            1,
            "the guest exited DONE but never published its kernel state",
        ),
    }
}

fn host_log(out: &mut RunOutcome, level: u32, text: &str) {
    out.logs.push(LogLine {
        cpu: 0,
        level,
        text: format!("host: {text}"),
    });
}

/// Ring readers for all vCPUs plus what to echo to stderr.
struct Drain {
    readers: Vec<RingReader>,
    frames: Vec<Frame>,
    /// Echo info/debug logs too (human mode with --verbose).
    verbose: bool,
    /// Echo warnings and errors (human mode).
    echo: bool,
    t0: Instant,
    seen_any: bool,
    /// Frames over the caps on what is kept.
    not_kept: u64,
}

impl Drain {
    fn new(cpus: u32, verbose: bool, echo: bool, t0: Instant) -> Self {
        let readers = (0..cpus)
            .map(|c| RingReader::new(tlv_ring_base(c)))
            .collect();
        Drain {
            readers,
            frames: Vec::new(),
            verbose,
            echo,
            t0,
            seen_any: false,
            not_kept: 0,
        }
    }

    fn poll(&mut self, mem: &GuestMemoryMmap, out: &mut RunOutcome) -> Result<(), Failure> {
        for cpu in 0..self.readers.len() {
            let r = self.readers[cpu].poll(mem, &mut self.frames);
            let frames = std::mem::take(&mut self.frames);
            for f in frames {
                self.handle(cpu as u32, f, out);
            }
            r.map_err(|m| {
                Failure::new(
                    ErrorKind::MalformedRing,
                    format!("malformed TLV ring on vCPU {cpu}: {}", m.0),
                )
            })?;
        }
        Ok(())
    }

    fn handle(&mut self, cpu: u32, f: Frame, out: &mut RunOutcome) {
        if !self.seen_any {
            self.seen_any = true;
            out.timing.first_message_us = Some(self.t0.elapsed().as_micros() as u64);
        }
        // Guest Error messages end up in the failure message, so they are
        // echoed live only with --verbose, not printed twice.
        let (line, echo_level) = match f {
            Frame::Text(text) => {
                out.last_text = Some(text.clone());
                (
                    LogLine {
                        cpu,
                        level: 2,
                        text,
                    },
                    2,
                )
            }
            Frame::Message(m) => match m.msg {
                Some(Msg::Log(l)) => (
                    LogLine {
                        cpu,
                        level: l.level,
                        text: l.text.to_string(),
                    },
                    l.level,
                ),
                Some(Msg::Error(e)) => {
                    if out.guest_errors.len() < MAX_LOG_LINES {
                        out.guest_errors.push(e.text.to_string());
                    }
                    (
                        LogLine {
                            cpu,
                            level: 0,
                            text: format!("error {}: {}", e.code, e.text),
                        },
                        2,
                    )
                }
                Some(Msg::Complete(c)) => {
                    out.complete = Some(c);
                    return;
                }
                Some(other) => {
                    if out.results.len() < MAX_RESULTS {
                        out.results.push(other);
                    } else {
                        self.not_kept += 1;
                    }
                    return;
                }
                None => return,
            },
        };
        if self.verbose || (self.echo && echo_level <= 1) {
            crate::errln!("[guest vCPU {cpu}] {}", line.text);
        }
        if out.logs.len() < MAX_LOG_LINES {
            out.logs.push(line);
        } else {
            self.not_kept += 1;
        }
    }

    fn note_partial_frames(&self, out: &mut RunOutcome) {
        for (cpu, r) in self.readers.iter().enumerate() {
            if !r.is_idle() {
                host_log(
                    out,
                    1,
                    &format!("vCPU {cpu}'s message ring ended in the middle of a frame"),
                );
            }
        }
    }

    fn counters(&self) -> FrameCounters {
        let mut c = FrameCounters::default();
        for r in &self.readers {
            c.add(r.counters());
        }
        c.not_kept = self.not_kept;
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A guest that logs (or sends results) without end costs the host a
    /// bounded amount: what is over the caps is counted, not kept.
    #[test]
    fn logs_and_results_past_their_caps_are_counted_not_kept() {
        let mut d = Drain::new(1, false, false, Instant::now());
        let mut out = RunOutcome::default();
        for i in 0..MAX_LOG_LINES + 5 {
            d.handle(0, Frame::Text(format!("line {i}")), &mut out);
        }
        for _ in 0..MAX_RESULTS + 3 {
            let m = guest_protocol::GuestMessage {
                msg: Some(Msg::SpinResult(Default::default())),
            };
            d.handle(0, Frame::Message(Box::new(m)), &mut out);
        }
        assert_eq!(out.logs.len(), MAX_LOG_LINES);
        assert_eq!(out.logs[0].text, "line 0", "the first lines are kept");
        assert_eq!(out.results.len(), MAX_RESULTS);
        assert_eq!(d.counters().not_kept, 8);
        assert_eq!(out.last_text.as_deref(), Some("line 10004"));
    }
}
