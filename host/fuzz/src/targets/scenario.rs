//! Target `scenario`: a scenario file (`schedlab run FILE.toml`), parsed,
//! merged with the default flags, checked and compiled. Every problem
//! must come back as a located usage error, never a panic; the checks
//! themselves are in `lab::scenario::fuzz_entry`.

/// The input is the file's text (invalid UTF-8 is replaced, as a lossy
/// read would, so the bytes still reach the TOML parser).
pub fn scenario(data: &[u8]) {
    lab::scenario::fuzz_entry(data);
}
