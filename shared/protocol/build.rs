//! Compiles proto/guest.proto with micropb-gen. Containers are heapless
//! with fixed capacities on both sides, so decoding on the host is bounded
//! by the same limits the guest encodes under. Capacities that are an
//! operation's limits come from the ABI (a build dependency), so a limit
//! raised there cannot leave a result message too small for it.
use micropb_gen::{Config, Generator};

/// Longest log or error text, in bytes.
const TEXT_MAX: u32 = abi::tlv::MAX_TEXT as u32;
/// Most tasks in one SpinResult: spin's limit.
const SPIN_TASKS_MAX: u32 = abi::config::SPIN_MAX_TASKS as u32;
/// Most tasks in one PeriodicResult: periodic's limit.
const PERIODIC_TASKS_MAX: u32 = abi::config::PERIODIC_MAX_TASKS as u32;
/// Most instances in one ScenarioResult: a scenario's limit.
const SCENARIO_INSTANCES_MAX: u32 = abi::config::SCENARIO_MAX_INSTANCES as u32;

/// Most checks in one IpcResult (only the ipc operation fills it).
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
        .configure(
            ".schedlab.PeriodicResult.tasks",
            Config::new().max_len(PERIODIC_TASKS_MAX),
        )
        .configure(
            ".schedlab.ScenarioResult.tasks",
            Config::new().max_len(SCENARIO_INSTANCES_MAX),
        )
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
