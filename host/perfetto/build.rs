//! Generates the Rust types of `proto/perfetto_subset.proto` (a strict
//! subset of Perfetto's published schema, see there) with prost-build,
//! which runs `protoc` (the set-up script installs it).

fn main() {
    println!("cargo:rerun-if-changed=proto/perfetto_subset.proto");
    prost_build::Config::new()
        .compile_protos(&["proto/perfetto_subset.proto"], &["proto"])
        .expect("protoc could not compile proto/perfetto_subset.proto: run ./setup.sh");
}
