//! The lab as a library, the way a scheduler's own `cargo test` would use
//! it: describe a run in code, boot it (a real VM on /dev/kvm, with the
//! guest images `make` built and the VMM embedded), read the report and
//! its verdict. One VM at a time: this binary holds one test.

use lab::Run;

#[test]
fn a_weighted_policy_described_in_code_gives_shares_by_weight() {
    let run = Run::new("spin")
        .expect("spin is an operation")
        .cpus(1)
        .policy("vtime")
        .flag("--tasks", 3)
        .flag("--weights", "1,2,4")
        .duration("500ms");
    let report = run.run().expect("a valid description");
    assert_eq!(report.exit_code(), 0, "{run:?}: {:?}", report.verdict);
    assert!(report.error.is_none(), "{:?}", report.error);
    assert_eq!(report.operation, "spin");
    assert_eq!(report.config["policy"], "vtime");
    assert_eq!(report.tasks.len(), 3);
    let verdict = report.verdict.as_ref().expect("a judged run");
    assert_eq!(verdict.status, analysis::Status::Pass);
    let want = [1.0 / 7.0, 2.0 / 7.0, 4.0 / 7.0];
    for (t, want) in report.tasks.iter().zip(want) {
        assert!(
            (t.share / want - 1.0).abs() <= 0.10,
            "task {} got {:.4}, entitled to {want:.4}",
            t.pid,
            t.share
        );
    }
    // The same description with a policy that does not exist never boots.
    let e = Run::new("spin")
        .unwrap()
        .policy("nosuch")
        .run()
        .unwrap_err();
    assert_eq!(e.exit_code(), 64);
    assert!(e.message.contains("nosuch"), "{e}");
}
