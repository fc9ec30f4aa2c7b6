//! One function per fuzz target, each taking the raw input bytes. A
//! target panics only when the code under test broke its promise: it
//! panicked itself, or an invariant the target checks afterwards does not
//! hold (a count that does not add up, a message that differs after a
//! round trip). Bad input by itself is never a failure: rejecting it is
//! the code's job.

mod bpf_object;
mod compare;
mod kstate;
mod protocol;
mod scenario;
mod tlv;

pub use bpf_object::bpf_object;
pub use compare::compare;
pub use kstate::kstate;
pub use protocol::protocol;
pub use scenario::scenario;
pub use tlv::tlv;

/// A target: the input bytes in, a panic out if the code broke a promise.
pub type Target = fn(&[u8]);

/// Every target by name: the name is its binary, `corpus/NAME/` and
/// `crashes/NAME/`.
pub const TARGETS: &[(&str, Target)] = &[
    ("tlv", tlv),
    ("protocol", protocol),
    ("kstate", kstate),
    ("scenario", scenario),
    ("compare", compare),
    ("bpf_object", bpf_object),
];
