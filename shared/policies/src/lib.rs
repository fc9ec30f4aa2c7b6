//! What the core and `policy_sdk::sim` share to run a policy image: the
//! dispatch queues ([`Dsqs`], [`DsqId`]) and the mapping of the policy
//! ABI's queue ids onto them ([`DsqIds`]) and CPU sets. The core's own
//! view of a task and its callback interface live in the kernel
//! (`sched::policy`), the promises a policy makes in the host
//! (`lab::settings::policy`). No allocator, no floating point, no
//! `unsafe`, everything fixed-size and constructible in a `const fn`
//! (all-zero, so the core's `static` lands in `.bss`).
//!
//! The policies themselves are images (`guest/policies/NAME`, written
//! against `policy_sdk`); the built-ins that lived here (`Rr`, `Fifo`,
//! `Vtime`, `Eevdf`, `Starve`, `AnyPolicy`, the `Policy` trait and the
//! `POLICIES` list) moved there (issue 9).
#![forbid(unsafe_code)]
#![no_std]
#[cfg(test)]
extern crate std;

mod cpuset;
mod dsq;
mod ids;

pub use cpuset::{CpuSet, CpuSetIter};
pub use dsq::{DsqId, DsqIter, Dsqs, MAX_CUSTOM_DSQS};
pub use ids::DsqIds;

pub use abi::memmap::{MAX_CPUS, MAX_TASKS};

/// Task-table slot, `< MAX_TASKS`.
pub type Slot = u16;
/// CPU number, `< MAX_CPUS`.
pub type Cpu = u32;
