//! The binaries' command lines: `--help` and `--version` answer and exit, without starting
//! anything; `--help` says where configuration comes from.

use std::{path::PathBuf, process::Command, time::Duration};

/// The built binaries (`scripts/test` builds the workspace first).
fn binary(name: &str) -> PathBuf {
    let api = PathBuf::from(env!("CARGO_BIN_EXE_api"));
    api.with_file_name(name)
}

fn run(name: &str, args: &[&str]) -> (bool, String) {
    let mut child = Command::new(binary(name))
        .args(args)
        .env("ABTEST_API__LISTEN", "127.0.0.1:1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{name}: {e} (build the workspace first)"));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while child.try_wait().expect("wait").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("{name} {args:?} did not exit: it must not start serving");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().expect("output");
    (output.status.success(), String::from_utf8_lossy(&output.stdout).into_owned())
}

#[test]
fn help_and_version_answer_without_serving() {
    for name in ["api", "ingest", "consumer"] {
        let (ok, help) = run(name, &["--help"]);
        assert!(ok, "{name} --help");
        assert!(help.contains("ABTEST_CONFIG_FILE") && help.contains(".env.example"), "{name}: {help}");
        let (ok, version) = run(name, &["--version"]);
        assert!(ok && version.trim() == format!("{name} {}", env!("CARGO_PKG_VERSION")), "{name}: {version}");
    }
    let (_, help) = run("api", &["--help"]);
    assert!(help.contains("migrate") && help.contains("serve"), "{help}");
    let (ok, _) = run("api", &["nonsense"]);
    assert!(!ok, "an unknown subcommand fails");
}
