//! The sched_ext BPF runtime: a policy image that runs a compiled
//! sched_ext object. The host's loader relocated the object's programs
//! into a program image at `BPF_PROGRAM_ADDR` (`abi::bpf`); this image
//! checks it, then forwards every policy callback to the program the
//! object bound to it (or does sched_ext's default), interpreting it with
//! `bpf_vm` inside a sandbox of the image's data, the runtime's task views
//! and its own read-only and cpumask areas. sched_ext's kfuncs and the
//! BPF helpers are implemented on the policy services.
//!
//! Written by hand, not with the SDK: the table needs every callback
//! (each forwards or does the default itself) and raw control of the
//! task pointers the core passes.
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]

mod format;
mod helpers;
mod image;
mod kfuncs;
mod maps;
mod mem;
mod ops;
mod rt;
mod tasks;
mod timers;

#[cfg(test)]
mod tests;

use abi::policy::{POLICY_FLAG_BPF_RUNTIME, POLICY_FLAG_CUSTODY, PolicyOps, SHARES_NONE};

/// Mutable: `init` leaves in it only the callbacks the object binds (see
/// `ops::Runtime::bind_table`), so the core makes sched_ext's default
/// decisions itself, without a call, for the rest.
#[unsafe(link_section = ".policy_ops")]
#[unsafe(no_mangle)]
#[used]
pub static mut POLICY_OPS: PolicyOps = PolicyOps {
    shares: SHARES_NONE,
    bounded_wait: 0,
    deadlines: 0,
    flags: POLICY_FLAG_BPF_RUNTIME | POLICY_FLAG_CUSTODY,
    select_cpu: Some(ops::select_cpu),
    enqueue: Some(ops::enqueue),
    dequeue: Some(ops::dequeue),
    dispatch: Some(ops::dispatch),
    tick: Some(ops::tick),
    runnable: Some(ops::runnable),
    running: Some(ops::running),
    stopping: Some(ops::stopping),
    quiescent: Some(ops::quiescent),
    yield_: Some(ops::yield_),
    set_weight: Some(ops::set_weight),
    set_cpumask: Some(ops::set_cpumask),
    update_idle: Some(ops::update_idle),
    init_task: Some(ops::init_task),
    exit_task: Some(ops::exit_task),
    enable: Some(ops::enable),
    cpu_online: Some(ops::cpu_online),
    cpu_offline: Some(ops::cpu_offline),
    init: Some(ops::init),
    exit: Some(ops::exit),
    cpu_tick: Some(ops::cpu_tick),
    ..PolicyOps::new(
        "bpf",
        "runs the sched_ext BPF object given to --policy (its callbacks, kfuncs and helpers \
         interpreted in a sandbox)",
    )
};

#[cfg(target_os = "none")]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    ops::panicked()
}

/// A host build (`cargo test`) is an ordinary program around the table.
#[cfg(not(target_os = "none"))]
fn main() {}
