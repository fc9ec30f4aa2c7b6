//! Called from the build scripts of the core and of every operation so
//! that the load address and size cap each image is linked with come from
//! `shared/abi` (named once there) instead of being repeated in linker
//! scripts. The cap also lands in the ELF as the absolute symbol
//! `__schedlab_cap`, which is where `scripts/check-binary-sizes.sh` reads
//! it from.
#![forbid(unsafe_code)]
use abi::memmap::{
    KERNEL_LOAD_ADDR, KERNEL_MAX_SIZE, OPERATION_LOAD_ADDR, OPERATION_MAX_SIZE, POLICY_LOAD_ADDR,
    POLICY_MAX_SIZE,
};
use std::path::PathBuf;

fn link(script: &str, load: u64, cap: u64) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let script = root.join("guest/linker").join(script);
    let script = script.canonicalize().unwrap_or(script);
    println!("cargo:rerun-if-changed={}", script.display());
    // Only the guest target links with these; host builds (clippy, unit
    // tests of pure modules) never see them.
    if std::env::var("TARGET").as_deref() != Ok("x86_64-unknown-none") {
        return;
    }
    println!("cargo:rustc-link-arg=-T{}", script.display());
    println!("cargo:rustc-link-arg=--defsym=__schedlab_load=0x{load:x}");
    println!("cargo:rustc-link-arg=--defsym=__schedlab_cap=0x{cap:x}");
    // A fixed-address image: no PIE, no dynamic relocations to apply.
    println!("cargo:rustc-link-arg=--no-pie");
    println!("cargo:rustc-link-arg=-znorelro");
}

/// Link the guest kernel at KERNEL_LOAD_ADDR.
pub fn link_kernel() {
    link("kernel.ld", KERNEL_LOAD_ADDR, KERNEL_MAX_SIZE);
}

/// Link an operation at OPERATION_LOAD_ADDR with the one operation script.
pub fn link_operation() {
    link("operation.ld", OPERATION_LOAD_ADDR, OPERATION_MAX_SIZE);
}

/// Link a policy image at POLICY_LOAD_ADDR with the one policy script.
pub fn link_policy() {
    link("policy.ld", POLICY_LOAD_ADDR, POLICY_MAX_SIZE);
}
