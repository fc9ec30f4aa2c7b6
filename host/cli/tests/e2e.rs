//! End-to-end tests: run the real `schedlab` binary and boot real VMs on
//! /dev/kvm with the guest images from `target/guest` (built by `make` /
//! ./build.sh before the tests). The machine has two cores and a VM takes
//! one, so every test holds one lock: one VM at a time.

mod common;

use common::*;
use object::{Object, ObjectSection};
use std::path::Path;
use std::time::Duration;

#[test]
fn one_task_runs_and_prints_a_table() {
    let _vm = lock();
    let r = schedlab(&["spin", "--tasks", "1"], &[]);
    assert_eq!(r.code, 0, "stderr: {}", r.stderr);
    assert!(
        r.stdout.starts_with("spin: 1 task for 200ms"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("100.0%"), "{}", r.stdout);
    assert!(
        r.stdout.contains("throughput:") && r.stdout.contains("boot:"),
        "{}",
        r.stdout
    );
}

#[test]
fn four_tasks_share_the_cpu_evenly_in_json() {
    let _vm = lock();
    let r = schedlab(&["spin", "--tasks", "4", "--json"], &[]);
    assert_eq!(r.code, 0, "stderr: {}", r.stderr);
    assert!(
        r.stderr.is_empty(),
        "--json keeps stderr quiet, got: {}",
        r.stderr
    );
    let v = json(&r);
    assert_eq!(v["status"], "ok");
    assert!(v["error"].is_null());
    assert_eq!(v["operation"], "spin");
    assert_eq!(v["config"]["tasks"], 4);
    assert_eq!(v["config"]["cpus"], 1);
    let tasks = v["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 4);
    let total: u64 = tasks
        .iter()
        .map(|t| t["runtime_ns"].as_u64().unwrap())
        .sum();
    assert_eq!(v["totals"]["runtime_ns"].as_u64().unwrap(), total);
    for t in tasks {
        assert!(t["units"].as_u64().unwrap() > 0, "{t}");
        let rt = t["runtime_ns"].as_u64().unwrap() as f64;
        let fair = total as f64 / 4.0;
        assert!(
            (rt - fair).abs() <= 0.1 * fair,
            "task runtime {rt} is not within 10% of {fair}: {t}"
        );
    }
    assert!(v["totals"]["units_per_sec"].as_f64().unwrap() > 0.0);
    assert!(v["timing"]["first_message_us"].as_u64().is_some());
    // Where the host's time went, step by step: each measured, and the
    // steps from guest RAM to the vCPUs started add up to vm_create_us.
    let t = &v["timing"];
    let step = |k: &str| {
        t[k].as_u64()
            .unwrap_or_else(|| panic!("timing.{k} missing: {t}"))
    };
    for k in [
        "prepare_us",
        "images_us",
        "open_us",
        "run_us",
        "stop_us",
        "analyse_us",
    ] {
        step(k);
    }
    // The binary leaves closing the VM to a child after its own exit, so
    // the run has no teardown of its own to time.
    assert!(t["teardown_us"].is_null(), "{t}");
    let created = step("ram_us") + step("kvm_us") + step("load_us") + step("start_us");
    assert!(created.abs_diff(step("vm_create_us")) <= 3, "{t}");
    // The guest's own milestones, on its clock: it enters its core only
    // after the VMM loaded it, and is ready (its operation spawned) before
    // the run ended.
    let loaded = step("ram_us") + step("kvm_us") + step("load_us");
    let (entry, ready) = (step("guest_entry_us"), step("guest_ready_us"));
    assert!(
        loaded <= entry && entry < ready && ready < step("vm_create_us") + step("run_us"),
        "{t}"
    );
    // The run itself lasts at least the default 200 ms of the guest's work.
    assert!(
        step("run_us") >= 200_000 && step("run_us") <= step("wall_us"),
        "{t}"
    );
    assert_eq!(v["frames"]["crc_errors"], 0);
    assert!(v["versions"]["call_table"].as_u64().unwrap() >= 1);
}

#[test]
fn bad_task_count_is_refused_before_any_vm() {
    let _vm = lock();
    // With no KVM device at all: a usage error must come first.
    for n in ["0", "500"] {
        let r = schedlab(
            &["spin", "--tasks", n],
            &[("SCHEDLAB_KVM_PATH", Path::new(NO_KVM))],
        );
        assert_eq!(r.code, 64, "stderr: {}", r.stderr);
        assert!(
            r.stderr.contains(&format!(
                "--tasks must be between 1 and 128 (the core's limit for spin), got {n}"
            )),
            "{}",
            r.stderr
        );
        assert!(!r.stderr.contains("kvm"), "{}", r.stderr);
    }
    let r = schedlab(&["spin", "--duration", "0ms"], &[]);
    assert_eq!(r.code, 64);
    assert!(
        r.stderr
            .contains("--duration: '0ms' must be greater than zero"),
        "{}",
        r.stderr
    );
    let r = schedlab(&["spin", "--no-such-flag"], &[]);
    assert_eq!(r.code, 64, "clap's own usage errors exit 64 too");
}

#[test]
fn help_explains_and_lists_exit_codes() {
    let r = schedlab(&["--help"], &[]);
    assert_eq!(r.code, 0);
    assert!(
        r.stdout.contains("spin") && r.stdout.contains("Exit codes:") && r.stdout.contains("69")
    );
    let r = schedlab(&[], &[]);
    assert_ne!(r.code, 0);
}

#[test]
fn missing_kvm_is_an_environment_error_naming_dev_kvm() {
    let _vm = lock();
    let r = schedlab(&["spin"], &[("SCHEDLAB_KVM_PATH", Path::new(NO_KVM))]);
    assert_eq!(r.code, 69, "stderr: {}", r.stderr);
    assert!(
        r.stderr.contains(&format!("cannot open {NO_KVM}")),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("/dev/kvm"), "{}", r.stderr);
    let r = schedlab(
        &["spin", "--json"],
        &[("SCHEDLAB_KVM_PATH", Path::new(NO_KVM))],
    );
    assert_eq!(r.code, 69);
    assert_eq!(json(&r)["error"]["kind"], "kvm");
}

fn expect_guest_failure(fault: &str, kind: &str, extra: &[&str]) -> (Run, serde_json::Value) {
    let _vm = lock();
    let mut args = vec!["spin", "--tasks", "2", "--test-fault", fault];
    args.extend_from_slice(extra);
    let r = schedlab(&args, &[]);
    assert_eq!(r.code, 70, "stdout: {}\nstderr: {}", r.stdout, r.stderr);
    assert!(r.took < Duration::from_secs(5), "took {:?}", r.took);
    assert!(
        !r.stderr.contains("panicked at src/vmm"),
        "the host panicked: {}",
        r.stderr
    );
    args.push("--json");
    let j = schedlab(&args, &[]);
    assert_eq!(j.code, 70);
    let v = json(&j);
    assert_eq!(v["status"], "error");
    assert_eq!(v["error"]["kind"], kind, "{v}");
    (r, v)
}

#[test]
fn ud2_is_reported_with_the_fault_and_function() {
    let (r, v) = expect_guest_failure("ud2", "guest_fault", &[]);
    assert!(
        r.stderr
            .contains("guest fault on vCPU 0: #UD invalid opcode at rip 0x"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains(" in spin::") && r.stderr.contains("(operation spin)"),
        "{}",
        r.stderr
    );
    assert!(v["logs"].as_array().is_some(), "partial data is kept");
}

#[test]
fn null_write_is_a_page_fault_at_address_zero() {
    let (r, _) = expect_guest_failure("null", "guest_fault", &[]);
    assert!(
        r.stderr.contains("#PF page fault at rip 0x"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("address 0x0 (cr2)"), "{}", r.stderr);
    assert!(r.stderr.contains("(operation spin)"), "{}", r.stderr);
}

#[test]
fn triple_fault_is_reported_as_shutdown() {
    let (r, _) = expect_guest_failure("triple", "triple_fault", &[]);
    assert!(
        r.stderr.contains("shut down (triple fault)"),
        "{}",
        r.stderr
    );
}

#[test]
fn panic_message_reaches_the_host() {
    let (r, v) = expect_guest_failure("panic", "guest_panic", &[]);
    assert!(
        r.stderr.contains("the guest panicked on vCPU 0: "),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("sent no message"), "{}", r.stderr);
    assert!(
        v["error"]["message"].as_str().unwrap().contains("panic"),
        "{v}"
    );
}

#[test]
fn a_hung_guest_meets_the_deadline() {
    let (r, _) = expect_guest_failure("hang", "deadline", &["--timeout", "1s"]);
    assert!(
        r.stderr.contains(
            "the guest did not finish within 1s (--timeout): run stopped on vCPU 0 at rip 0x"
        ),
        "{}",
        r.stderr
    );
    assert!(
        r.took >= Duration::from_secs(1) && r.took < Duration::from_secs(3),
        "took {:?}",
        r.took
    );
}

#[test]
fn missing_image_names_the_path_and_the_fix() {
    let _vm = lock();
    let dir = image_copy();
    std::fs::remove_file(dir.path().join("spin.bin")).unwrap();
    let r = schedlab(&["spin"], &[("SCHEDLAB_GUEST_DIR", dir.path())]);
    assert_eq!(r.code, 69, "stderr: {}", r.stderr);
    assert!(
        r.stderr
            .contains(&dir.path().join("spin.bin").display().to_string()),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("run `make`"), "{}", r.stderr);
}

#[test]
fn corrupt_images_are_refused_before_kvm_is_opened() {
    let _vm = lock();
    let no_kvm = ("SCHEDLAB_KVM_PATH", Path::new(NO_KVM));
    let dir = image_copy();
    let core = dir.path().join("kernel.elf");
    let bytes = std::fs::read(&core).unwrap();
    std::fs::write(&core, &bytes[..bytes.len() / 4]).unwrap();
    let r = schedlab(&["spin"], &[("SCHEDLAB_GUEST_DIR", dir.path()), no_kvm]);
    assert_eq!(r.code, 69, "stderr: {}", r.stderr);
    assert!(
        r.stderr.contains(&format!("{} is corrupt", core.display())),
        "{}",
        r.stderr
    );

    std::fs::write(&core, b"MZ not an elf at all").unwrap();
    let r = schedlab(&["spin"], &[("SCHEDLAB_GUEST_DIR", dir.path()), no_kvm]);
    assert_eq!(r.code, 69);
    assert!(r.stderr.contains("bad ELF magic"), "{}", r.stderr);

    let dir = image_copy();
    let bin = dir.path().join("spin.bin");
    std::fs::write(&bin, vec![0x90u8; 512 << 10]).unwrap();
    let r = schedlab(&["spin"], &[("SCHEDLAB_GUEST_DIR", dir.path()), no_kvm]);
    assert_eq!(r.code, 69);
    assert!(
        r.stderr.contains("spin.bin") && r.stderr.contains("OPERATION_MAX_SIZE"),
        "{}",
        r.stderr
    );
}

/// File offset and bytes of an image's ABI stamp.
fn stamp(path: &Path) -> (usize, [u32; 4]) {
    let data = std::fs::read(path).unwrap();
    let file = object::File::parse(&*data).unwrap();
    let sec = file
        .section_by_name(".schedlab_abi")
        .expect("image has a .schedlab_abi section");
    let (off, _) = sec.file_range().expect("stamp section has file bytes");
    let b = sec.data().unwrap();
    let w = |i: usize| u32::from_le_bytes(b[i * 4..i * 4 + 4].try_into().unwrap());
    (off as usize, [w(0), w(1), w(2), w(3)])
}

#[test]
fn operation_built_for_a_newer_call_table_is_refused() {
    let _vm = lock();
    let dir = image_copy();
    let elf = dir.path().join("spin.elf");
    let (off, _) = stamp(&elf);
    let mut bytes = std::fs::read(&elf).unwrap();
    bytes[off + 4..off + 8].copy_from_slice(&999u32.to_le_bytes());
    std::fs::write(&elf, bytes).unwrap();
    let (_, core) = stamp(&dir.path().join("kernel.elf"));
    let r = schedlab(
        &["spin"],
        &[
            ("SCHEDLAB_GUEST_DIR", dir.path()),
            ("SCHEDLAB_KVM_PATH", Path::new(NO_KVM)),
        ],
    );
    assert_eq!(r.code, 69, "stderr: {}", r.stderr);
    let want = format!(
        "operation image `spin` was built against call table v999, core provides v{}: run make",
        core[1]
    );
    assert!(r.stderr.contains(&want), "{}", r.stderr);
}

#[test]
fn image_without_a_stamp_is_not_a_schedlab_image() {
    let _vm = lock();
    let dir = image_copy();
    let elf = dir.path().join("spin.elf");
    let (off, _) = stamp(&elf);
    let mut bytes = std::fs::read(&elf).unwrap();
    bytes[off..off + 4].copy_from_slice(b"XXXX");
    std::fs::write(&elf, bytes).unwrap();
    let r = schedlab(
        &["spin"],
        &[
            ("SCHEDLAB_GUEST_DIR", dir.path()),
            ("SCHEDLAB_KVM_PATH", Path::new(NO_KVM)),
        ],
    );
    assert_eq!(r.code, 69);
    assert!(
        r.stderr.contains("not a schedlab guest image:"),
        "{}",
        r.stderr
    );
}

#[test]
fn guest_dir_override_runs_the_same_images() {
    let _vm = lock();
    let dir = image_copy();
    let r = schedlab(
        &[
            "spin",
            "--tasks",
            "2",
            "--duration",
            "20ms",
            // About images, not fairness: 20 ms is too short to judge it.
            "--max-fairness-error",
            "off",
        ],
        &[("SCHEDLAB_GUEST_DIR", dir.path())],
    );
    assert_eq!(r.code, 0, "stderr: {}", r.stderr);
}
