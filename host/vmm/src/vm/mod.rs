//! The virtual machine: guest RAM, the start-up state of each vCPU, the
//! vCPU threads, and the run loop that drains messages and decides how a
//! run ended.

pub mod hoststat;
mod hot;
pub mod machine;
pub mod memory;
pub mod outcome;
pub mod run;
pub mod setup;
pub mod teardown;
pub mod vcpu;
