//! What the tests share: finding the sched_ext material and clang, and
//! compiling a `.bpf.c` into a temporary object with the flags
//! sched_ext's own build uses (`build-bpf.sh`).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// `SCHEDLAB_SCX_DIR`, else `<workspace>/../shared/scx`. A missing
/// folder fails the test: these tests never pass by skipping.
pub fn scx_dir() -> PathBuf {
    let dir = match std::env::var_os("SCHEDLAB_SCX_DIR") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/scx"),
    };
    assert!(
        dir.join("build-bpf.sh").is_file(),
        "sched_ext material not found at {} (set SCHEDLAB_SCX_DIR to the folder holding build-bpf.sh)",
        dir.display()
    );
    dir
}

/// `BPF_CLANG`, else `clang-19`.
pub fn clang() -> String {
    std::env::var("BPF_CLANG").unwrap_or_else(|_| "clang-19".to_string())
}

/// A fresh temporary directory for one test's objects.
pub fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("schedlab-bpf-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

/// Compiles `src` with build-bpf.sh and returns the object's bytes.
pub fn build(src: &Path, tag: &str) -> Vec<u8> {
    let dir = scx_dir();
    let out = temp_dir(tag).join(format!("{tag}.bpf.o"));
    let status = Command::new("bash")
        .arg(dir.join("build-bpf.sh"))
        .arg(src)
        .arg(&out)
        .env("BPF_CLANG", clang())
        .status()
        .unwrap_or_else(|e| panic!("running build-bpf.sh: {e}"));
    assert!(status.success(), "build-bpf.sh {} failed", src.display());
    std::fs::read(&out).expect("object")
}

/// One of the shared schedulers, e.g. "scx_simple".
pub fn scheduler(name: &str) -> Vec<u8> {
    let src = scx_dir().join(format!("schedulers/{name}.bpf.c"));
    build(&src, name)
}

/// One of this crate's test sources (tests/bpf/NAME.bpf.c).
pub fn test_object(name: &str) -> Vec<u8> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/bpf/{name}.bpf.c"));
    build(&src, name)
}
