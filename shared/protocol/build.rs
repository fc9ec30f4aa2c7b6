//! Compiles proto/guest.proto with micropb-gen. Containers are heapless
//! with fixed capacities on both sides, so decoding on the host is bounded
//! by the same limits the guest encodes under.
use micropb_gen::{Config, Generator};

/// Longest log or error text, in bytes.
const TEXT_MAX: u32 = 240;
/// Most tasks in one SpinResult (= abi::config::SPIN_MAX_TASKS; checked
/// by a test in lib.rs).
const SPIN_TASKS_MAX: u32 = 128;

/// Most checks in one IpcResult.
const IPC_CHECKS_MAX: u32 = 16;

fn main() {
    println!("cargo:rerun-if-changed=proto/guest.proto");
    let mut g = Generator::new();
    g.use_container_heapless()
        .configure(".schedlab.Log.text", Config::new().max_bytes(TEXT_MAX))
        .configure(".schedlab.Error.text", Config::new().max_bytes(TEXT_MAX))
        .configure(
            ".schedlab.SpinResult.tasks",
            Config::new().max_len(SPIN_TASKS_MAX),
        )
        .configure(
            ".schedlab.IpcResult.checks",
            Config::new().max_len(IPC_CHECKS_MAX),
        )
        .configure(".schedlab.IpcCheck.name", Config::new().max_bytes(32))
        .configure(".schedlab.PeriodicResult.tasks", Config::new().max_len(32))
        .configure(".schedlab.ScenarioResult.tasks", Config::new().max_len(64))
        .configure(
            ".schedlab.IpcCheck.detail",
            Config::new().max_bytes(TEXT_MAX),
        );
    let out = std::env::var("OUT_DIR").unwrap() + "/guest.rs";
    if let Err(e) = g.compile_protos(&["proto/guest.proto"], out) {
        panic!(
            "micropb-gen failed on proto/guest.proto: {e}\n\
             (it needs protoc: apt-get install protobuf-compiler, or run ./setup.sh)"
        );
    }
}
