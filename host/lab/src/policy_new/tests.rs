use super::*;

fn sdk() -> PathBuf {
    find_sdk(None).expect("the SDK of the tree this test was built from")
}

fn args(name: &str, dir: &Path, sdk: Option<&Path>) -> NewArgs {
    NewArgs {
        name: name.into(),
        dir: Some(dir.to_path_buf()),
        sdk: sdk.map(Path::to_path_buf),
    }
}

#[test]
fn crate_names_that_fit_the_abi_are_taken() {
    for ok in [
        "stride",
        "my-policy",
        "p2_x",
        &"a".repeat(POLICY_NAME_LEN - 1),
    ] {
        assert_eq!(check_name(ok), Ok(()), "{ok}");
    }
}

#[test]
fn other_names_are_refused_saying_why() {
    for (bad, why) in [
        ("", "is empty"),
        (&"a".repeat(POLICY_NAME_LEN) as &str, "at most 31"),
        ("My", "not a crate name"),
        ("1st", "not a crate name"),
        ("a b", "not a crate name"),
        ("-x", "not a crate name"),
        ("fn", "Rust keyword"),
        ("test", "cargo or the SDK reserves"),
        ("policy-sdk", "cargo or the SDK reserves"),
    ] {
        let f = check_name(bad).unwrap_err();
        assert_eq!(f.kind, ErrorKind::Usage, "{bad}");
        assert!(f.message.contains(why), "{bad}: {f}");
        assert!(f.message.starts_with("NAME "), "{f}");
    }
}

#[test]
fn a_directory_that_exists_and_is_not_empty_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    assert_eq!(check_dir(tmp.path()), Ok(()));
    assert_eq!(check_dir(&tmp.path().join("new/deeper")), Ok(()));
    std::fs::write(tmp.path().join("mine.txt"), "keep").unwrap();
    let f = check_dir(tmp.path()).unwrap_err();
    assert_eq!(f.exit_code(), 64);
    assert!(f.message.contains("exists and is not empty"), "{f}");
    let f = check_dir(&tmp.path().join("mine.txt")).unwrap_err();
    assert!(f.message.contains("is not a directory"), "{f}");
}

#[test]
fn a_refused_command_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("p");
    // A bad name, a missing SDK: the directory is not even created.
    assert_eq!(new(&args("Bad", &dir, None)).unwrap_err().exit_code(), 64);
    let f = new(&args("good", &dir, Some(&tmp.path().join("nosdk")))).unwrap_err();
    assert_eq!(f.exit_code(), 64);
    assert!(f.message.starts_with("--sdk "), "{f}");
    // A directory that is not the SDK is named as such.
    let f = new(&args("good", &dir, Some(tmp.path()))).unwrap_err();
    assert!(f.message.contains("not schedlab's policy SDK"), "{f}");
    assert!(!dir.exists());
    // A non-empty directory keeps exactly what it had.
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("notes"), "mine").unwrap();
    assert_eq!(new(&args("good", &dir, None)).unwrap_err().exit_code(), 64);
    let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
    assert_eq!(left.len(), 1);
}

#[test]
fn new_writes_every_file_of_the_crate() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a/b/mine");
    new(&args("mine", &dir, None)).unwrap();
    for f in render("mine", &sdk()).unwrap() {
        let got = std::fs::read_to_string(dir.join(f.path)).unwrap();
        assert_eq!(got, f.text, "{}", f.path);
    }
    // Again into the same (now full) directory: refused, untouched.
    assert_eq!(new(&args("mine", &dir, None)).unwrap_err().exit_code(), 64);
}

fn file<'a>(files: &'a [File], path: &str) -> &'a str {
    &files
        .iter()
        .find(|f| f.path == path)
        .unwrap_or_else(|| panic!("no {path}"))
        .text
}

#[test]
fn the_link_settings_are_the_abi_constants() {
    let files = render("mine", &sdk()).unwrap();
    let build = file(&files, "build.rs");
    assert!(
        build.contains(&format!(
            "const POLICY_LOAD_ADDR: u64 = {POLICY_LOAD_ADDR:#x};"
        )),
        "{build}"
    );
    assert!(
        build.contains(&format!(
            "const POLICY_MAX_SIZE: u64 = {POLICY_MAX_SIZE:#x};"
        )),
        "{build}"
    );
    assert!(build.contains("--defsym=__schedlab_load=") && build.contains("policy.ld"));
    let ld = file(&files, "policy.ld");
    assert!(ld.contains(abi::policy::POLICY_OPS_SECTION), "{ld}");
    assert!(ld.contains("__schedlab_load") && ld.contains("__schedlab_cap"));
    let config: toml::Table = file(&files, ".cargo/config.toml").parse().unwrap();
    assert_eq!(
        config["build"]["target"].as_str(),
        Some("x86_64-unknown-none")
    );
}

#[test]
fn the_manifest_names_the_policy_and_the_sdk() {
    // A path TOML must escape.
    let odd = Path::new("/tmp/a \"quoted\" \\ dir/guest/policy-sdk");
    let files = render("mine", odd).unwrap();
    let m: toml::Table = file(&files, "Cargo.toml").parse().unwrap();
    assert_eq!(m["package"]["name"].as_str(), Some("mine"));
    assert_eq!(m["bin"][0]["name"].as_str(), Some("mine"));
    let dep = &m["dependencies"]["policy-sdk"];
    assert_eq!(dep["package"].as_str(), Some(SDK_PACKAGE));
    assert_eq!(dep["path"].as_str(), odd.to_str());
    assert_eq!(m["profile"]["release"]["panic"].as_str(), Some("abort"));
    assert!(m.contains_key("workspace"));
    let main = file(&files, "src/main.rs");
    assert!(
        main.contains("const NAME: &'static str = \"mine\";"),
        "{main}"
    );
    assert!(files.iter().all(|f| !f.text.contains("{{")));
    assert!(file(&files, ".gitignore").contains("target"));
}

#[test]
fn the_next_commands_are_shell_words() {
    assert_eq!(policy_arg("mine"), "./mine");
    assert_eq!(policy_arg("/x/mine"), "/x/mine");
    assert_eq!(shell_word("a/b-c"), "a/b-c");
    assert_eq!(shell_word("it's here"), r"'it'\''s here'");
}
