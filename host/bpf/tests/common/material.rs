//! Where the sched_ext material is (`build-bpf.sh`, `include/`,
//! `vmlinux/`, `schedulers/`): one rule for every test that compiles a
//! scheduler (this crate's, and `host/cli`'s end-to-end tests, which
//! include this file). `scripts/build-scx.sh` follows the same rule.

use std::path::{Path, PathBuf};

/// `SCHEDLAB_SCX_DIR` if set; else `../shared/scx` beside the checkout if
/// it is there; else the copy kept in `third_party/scx`. A folder without
/// the material fails the test, saying so: these tests never pass by
/// skipping.
pub fn scx_dir() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = match std::env::var_os("SCHEDLAB_SCX_DIR") {
        Some(d) => PathBuf::from(d),
        None => {
            let beside = root.join("../shared/scx");
            if beside.join("build-bpf.sh").is_file() {
                beside
            } else {
                root.join("third_party/scx")
            }
        }
    };
    assert!(
        dir.join("build-bpf.sh").is_file() && dir.join("schedulers").is_dir(),
        "the sched_ext material is missing: {} has no build-bpf.sh and schedulers/. Set \
         SCHEDLAB_SCX_DIR to the folder with build-bpf.sh, include/, vmlinux/ and schedulers/ \
         (README: \"Run a sched_ext scheduler\")",
        dir.display()
    );
    dir
}
