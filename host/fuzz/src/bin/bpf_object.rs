//! The `bpf_object` fuzz target (see `schedlab_fuzz::targets::bpf_object`):
//! under `cargo afl` (feature `afl`) AFL++ drives it; otherwise it replays
//! the files named on the command line, to reproduce a crash.
schedlab_fuzz::fuzz_main!(schedlab_fuzz::targets::bpf_object);
