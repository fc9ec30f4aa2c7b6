//! sched_ext's defaults: a `PolicyOps` table with every callback null, so
//! the core does all the scheduling itself -- a waking task goes to its
//! previous CPU if idle else any idle CPU, every task is queued on the
//! global queue in FIFO order with the default slice, and a CPU takes the
//! first task there. That is round-robin across the CPUs: equal shares,
//! bounded waits. Written by hand, without the SDK (whose table always
//! has callbacks), so runs under it cost no callback at all: the baseline
//! `make bench` prices a callback against, and the core's null-callback
//! paths tested end to end.
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]

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

/// Nothing here can panic (there is no code); the linker wants a handler
/// in the image (a host build has std's).
#[cfg(target_os = "none")]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    loop {
        core::hint::spin_loop()
    }
}

/// A host build (`cargo test`) is an ordinary program around the table.
#[cfg(not(target_os = "none"))]
fn main() {}

#[cfg(test)]
mod tests {
    use super::POLICY_OPS as T;
    use abi::policy::PolicyOps;

    #[test]
    fn the_table_is_current_and_has_no_callback() {
        assert_eq!(PolicyOps::check_header(T.magic, T.version, T.size), Ok(()));
        assert_eq!(T.name_str(), "dfl");
        assert!(!T.description_str().is_empty());
        assert_eq!(
            (T.shares, T.bounded_wait, T.flags),
            (abi::policy::SHARES_EQUAL, 1, 0)
        );
        let none = PolicyOps::new("", "");
        // Every callback word is zero: compare the tables past the header.
        let words = |t: &PolicyOps| {
            let p = core::ptr::from_ref(&t.select_cpu).cast::<Option<fn()>>();
            let n = (core::mem::size_of::<PolicyOps>()
                - core::mem::offset_of!(PolicyOps, select_cpu))
                / core::mem::size_of::<usize>();
            // SAFETY: the callbacks are n consecutive Option<fn> words at
            // the end of the repr(C) table (their offsets are asserted in
            // the ABI), all of the same size and layout.
            (0..n)
                .map(|i| unsafe { (*p.add(i)).is_some() })
                .collect::<Vec<_>>()
        };
        assert!(words(&T).iter().all(|s| !s));
        assert_eq!(words(&T), words(&none));
    }
}
