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
