//! Compiles proto/guest.proto with micropb-gen. Containers are heapless
//! with fixed capacities on both sides, so decoding on the host is bounded
//! by the same limits the guest encodes under. Every capacity is a named
//! constant of the ABI crate, the limit the guest already lives by (a
//! config's task table, the text the core cuts logs to), so the two cannot
//! drift apart; `tests::capacities_are_the_abi_limits` in lib.rs pins the
//! generated containers to them.
use abi::config::{
    IPC_CHECK_NAME_MAX, IPC_MAX_CHECKS, PERIODIC_MAX_TASKS, SCENARIO_MAX_INSTANCES, SPIN_MAX_TASKS,
};
use abi::tlv::MAX_TEXT;
use micropb_gen::{Config, Generator};

/// micropb-gen takes capacities as u32; every ABI limit is far below.
fn cap(n: usize) -> u32 {
    u32::try_from(n).expect("an ABI capacity over u32::MAX")
}

fn main() {
    println!("cargo:rerun-if-changed=proto/guest.proto");
    let text = || Config::new().max_bytes(cap(MAX_TEXT));
    let mut g = Generator::new();
    g.use_container_heapless()
        .configure(".schedlab.Log.text", text())
        .configure(".schedlab.Error.text", text())
        // One row per task the spin config can start.
        .configure(
            ".schedlab.SpinResult.tasks",
            Config::new().max_len(cap(SPIN_MAX_TASKS)),
        )
        .configure(
            ".schedlab.IpcResult.checks",
            Config::new().max_len(cap(IPC_MAX_CHECKS)),
        )
        .configure(
            ".schedlab.IpcCheck.name",
            Config::new().max_bytes(cap(IPC_CHECK_NAME_MAX)),
        )
        .configure(".schedlab.IpcCheck.detail", text())
        // One row per task the periodic config describes.
        .configure(
            ".schedlab.PeriodicResult.tasks",
            Config::new().max_len(cap(PERIODIC_MAX_TASKS)),
        )
        // One row per instance a scenario may start.
        .configure(
            ".schedlab.ScenarioResult.tasks",
            Config::new().max_len(cap(SCENARIO_MAX_INSTANCES)),
        );
    let out = std::env::var("OUT_DIR").unwrap() + "/guest.rs";
    if let Err(e) = g.compile_protos(&["proto/guest.proto"], out) {
        panic!(
            "micropb-gen failed on proto/guest.proto: {e}\n\
             (it needs protoc: apt-get install protobuf-compiler, or run ./setup.sh)"
        );
    }
}
