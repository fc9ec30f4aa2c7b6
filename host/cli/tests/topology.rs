//! End-to-end tests of `--topology`: the machine's shape reaches the VM
//! (its vCPU count), and a bad shape is refused before any VM starts. Real
//! VMs on /dev/kvm, one at a time (common::lock).

mod common;

use common::*;
use std::path::Path;

/// Every refusal must come before /dev/kvm is opened: with no KVM device
/// a VM start would be an environment error (exit 69), not 64.
fn refused(args: &[&str]) -> Run {
    let r = schedlab(args, &[("SCHEDLAB_KVM_PATH", Path::new(NO_KVM))]);
    assert_eq!(r.code, 64, "{args:?}: stderr: {}", r.stderr);
    assert!(!r.stderr.to_lowercase().contains("kvm"), "{}", r.stderr);
    r
}

#[test]
fn a_malformed_or_mismatched_topology_is_refused_naming_the_flag() {
    let _vm = lock();
    for bad in [
        "2s,2l,4c",
        "2s,2l,4c,2t,2t",
        "0s,1l,1c,1t",
        "1s,1l,xc,1t",
        "3s,3l,3c,3t",
        "nosuchpreset",
    ] {
        let r = refused(&["spin", "--topology", bad]);
        assert!(r.stderr.contains("--topology: "), "{bad}: {}", r.stderr);
        // The grammar and the presets, so the fix is on screen.
        assert!(r.stderr.contains("Ns,Nl,Nc,Nt"), "{}", r.stderr);
        assert!(r.stderr.contains("laptop (1s,1l,4c,2t)"), "{}", r.stderr);
    }
    let r = refused(&["spin", "--topology", "1s,2l,2c,2t", "--cpus", "4"]);
    assert!(
        r.stderr
            .contains("--topology 1s,2l,2c,2t has 8 CPUs but --cpus is 4"),
        "{}",
        r.stderr
    );
    // Every operation takes it.
    let r = refused(&["ipc", "--topology", "laptop", "--cpus", "2"]);
    assert!(
        r.stderr.contains("--topology laptop has 8 CPUs"),
        "{}",
        r.stderr
    );

    // A scenario file's topology: located, with the same rules.
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("t.toml");
    std::fs::write(
        &f,
        "cpus = 2\ntopology = \"1s,1l,2c,2t\"\n[[task]]\nname = \"a\"\nphases = [{ run = \"1ms\" }]\n",
    )
    .unwrap();
    let r = refused(&["run", f.to_str().unwrap()]);
    assert!(
        r.stderr
            .contains("topology '1s,1l,2c,2t' has 4 CPUs but cpus is 2"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("t.toml:2"), "{}", r.stderr);
}

#[test]
fn a_topology_alone_sets_the_vcpu_count() {
    let _vm = lock();
    let r = schedlab(
        &[
            "spin",
            "--topology",
            "1s,2l,2c,2t",
            "--tasks",
            "8",
            "--duration",
            "100ms",
            "--json",
        ],
        &[],
    );
    let v = json(&r);
    assert_eq!(r.code, code_the_json_promises(&v), "{}", r.stderr);
    assert_eq!(v["config"]["cpus"], 8, "{v}");
    assert_eq!(v["cpus"].as_array().map(Vec::len), Some(8), "{v}");
    let t = &v["topology"];
    assert_eq!(
        (
            &t["sockets"],
            &t["llcs_per_socket"],
            &t["cores_per_llc"],
            &t["threads_per_core"]
        ),
        (&1.into(), &2.into(), &2.into(), &2.into()),
        "{t}"
    );
    assert!(t.get("preset").is_none(), "{t}");
    // Thread-innermost numbering: CPU n is core n/2, LLC n/4, node 0.
    for c in v["cpus"].as_array().unwrap() {
        let n = c["cpu"].as_u64().unwrap();
        assert_eq!(
            (&c["core"], &c["llc"], &c["node"]),
            (&(n / 2).into(), &(n / 4).into(), &0.into()),
            "{c}"
        );
    }

    // Migrations are split by what they crossed: one socket, so none
    // crossed a node; the split adds up per task and in total.
    let m = &v["metrics"];
    let total = m["migrations"].as_u64().unwrap();
    let llc = m["migrations_cross_llc"].as_u64().unwrap();
    assert!(llc <= total, "{m}");
    assert_eq!(m["migrations_cross_node"], 0, "{m}");
    let per_task: u64 = v["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["migrations_cross_llc"].as_u64().unwrap())
        .sum();
    assert!(per_task <= llc, "{per_task} > {llc}");
    let r = schedlab(
        &[
            "spin",
            "--topology",
            "1s,2l,2c,2t",
            "--tasks",
            "8",
            "--duration",
            "100ms",
        ],
        &[],
    );
    assert!(
        r.stdout.contains("  LLC 1 (node 0): CPUs 4,5,6,7"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains(" xLLC xnode"), "{}", r.stdout);

    // From a scenario file too.
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("t.toml");
    std::fs::write(
        &f,
        "duration = \"50ms\"\ntopology = \"1s,1l,2c,2t\"\n[[task]]\nname = \"a\"\ncount = 4\n\
         phases = [{ run = \"1ms\" }]\n",
    )
    .unwrap();
    let r = schedlab(&["run", f.to_str().unwrap(), "--json"], &[]);
    let v = json(&r);
    assert_eq!(r.code, code_the_json_promises(&v), "{}", r.stderr);
    assert_eq!(v["config"]["cpus"], 4, "{v}");
    assert_eq!(v["cpus"].as_array().map(Vec::len), Some(4), "{v}");
}

/// Topologies whose levels are not powers of two have gaps in their APIC
/// ids; the guest must see, on each CPU, the x2APIC id and level shifts
/// `Topology::apic_id` packs, as CPUID leaf 0xB reports them.
#[test]
fn the_guests_cpuid_describes_the_topology_on_every_cpu() {
    let _vm = lock();
    /// Shape, each CPU's x2APIC id, and (SMT shift, core shift, SMT CPUs).
    type Case = (&'static str, Vec<u64>, (u64, u64, u64));
    let cases: [Case; 3] = [
        (
            "1s,2l,3c,2t",
            vec![0, 1, 2, 3, 4, 5, 8, 9, 10, 11, 12, 13],
            (1, 4, 2),
        ),
        ("2s,1l,2c,2t", (0..8).collect(), (1, 2, 2)),
        ("laptop", (0..8).collect(), (1, 3, 2)),
    ];
    for (shape, ids, (smt, core, smt_cpus)) in cases {
        let r = schedlab(
            &["spin", "--topology", shape, "--duration", "20ms", "--json"],
            &[],
        );
        let v = json(&r);
        assert_eq!(v["status"], "ok", "{shape}: {}", r.stderr);
        let cpus = v["cpus"].as_array().unwrap();
        assert_eq!(cpus.len(), ids.len(), "{shape}");
        for (c, id) in cpus.iter().zip(&ids) {
            let seen = &c["cpuid"];
            assert_eq!(seen["x2apic_id"], *id, "{shape}: {c}");
            assert_eq!(seen["smt_shift"], smt, "{shape}: {c}");
            assert_eq!(seen["core_shift"], core, "{shape}: {c}");
            assert_eq!(seen["smt_cpus"], smt_cpus, "{shape}: {c}");
            assert_eq!(seen["agrees"], true, "{shape}: {c}");
        }
    }
}

/// The core's wake-up IPIs go to the APIC id of the CPU, not its index:
/// with a 10 Hz tick, a ping-pong pair on CPUs 7 and 11 of `1s,2l,3c,2t`
/// (APIC ids 9 and 13) makes round trips only if each wake-up IPI reaches
/// its idle CPU; one sent to APIC id 11 (CPU 9) would leave CPU 11 asleep
/// until its next tick, 100 ms away, for at most a few round trips.
#[test]
fn wake_up_ipis_reach_cpus_with_gapped_apic_ids() {
    let _vm = lock();
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("pp.toml");
    std::fs::write(
        &f,
        "duration = \"200ms\"\ntopology = \"1s,2l,3c,2t\"\ntick_hz = 10\n\
         [[task]]\nname = \"ping\"\naffinity = 7\n\
         phases = [{ send = \"pong\" }, { recv = \"forever\" }]\n\
         [[task]]\nname = \"pong\"\naffinity = 11\n\
         phases = [{ recv = \"forever\" }, { send = \"ping\" }]\n",
    )
    .unwrap();
    let r = schedlab(&["run", f.to_str().unwrap(), "--json"], &[]);
    let v = json(&r);
    assert_eq!(v["status"], "ok", "{}", r.stderr);
    let loops = v["result"]["kinds"][0]["loops"].as_u64().unwrap();
    // Measured: about 1500 in 200 ms; a lost IPI per trip allows 2.
    assert!(loops >= 50, "{loops} round trips: {}", v["result"]);
}
