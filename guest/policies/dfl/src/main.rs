//! sched_ext's defaults: a `PolicyOps` table with every callback null, so
//! the core does all the scheduling itself -- a waking task goes to its
//! previous CPU if idle else any idle CPU, every task is queued on the
//! global queue in FIFO order with the default slice, and a CPU takes the
//! first task there. That is round-robin across the CPUs: equal shares,
//! bounded waits. Written by hand, without the SDK (whose table always
//! has callbacks), so runs under it cost no callback at all: the baseline
//! `make bench` prices a callback against, and the core's null-callback
//! paths tested end to end.
#![no_std]
#![no_main]

use abi::policy::{PolicyOps, SHARES_EQUAL};

#[unsafe(link_section = ".policy_ops")]
#[unsafe(no_mangle)]
#[used]
pub static POLICY_OPS: PolicyOps = PolicyOps {
    shares: SHARES_EQUAL,
    bounded_wait: 1,
    ..PolicyOps::new(
        "dfl",
        "sched_ext's defaults, no callbacks: one global FIFO queue, default slice",
    )
};

/// Nothing here can panic (there is no code); the linker wants a handler.
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    loop {
        core::hint::spin_loop()
    }
}
