//! Target `compare`: the result files `schedlab compare A B` reads,
//! parsed, checked, compared and printed. A file that is not a result
//! must be a usage error, never a panic; see `lab::compare::fuzz_entry`.

/// The input is A's file, then a NUL byte and B's (no NUL: B is A).
pub fn compare(data: &[u8]) {
    lab::compare::fuzz_entry(data);
}
