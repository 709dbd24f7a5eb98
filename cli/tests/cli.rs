//! The `convene` command line, run as a process.

use std::process::Command;

#[test]
fn an_unreachable_relay_gets_a_clear_error() {
    // Port 9 (discard) on loopback: nothing listens there in a test sandbox.
    let out = Command::new(env!("CARGO_BIN_EXE_convene"))
        .args(["--relay", "ws://127.0.0.1:9", "ping"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot reach the relay: no connection to ws://127.0.0.1:9"),
        "{stderr}"
    );
    assert_eq!(stderr.matches("cannot reach").count(), 1, "{stderr}");
}

#[test]
fn a_malformed_relay_address_is_named() {
    let out = Command::new(env!("CARGO_BIN_EXE_convene"))
        .args(["--relay", "http://example", "ping"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("invalid relay address"), "{stderr}");
}

/// The `--json` error code `convene` prints for `args`.
fn error_code(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_convene"))
        .args(["--json"])
        .args(args)
        .env("CONVENE_PASSPHRASE", "correct horse battery staple")
        .env_remove("CONVENE_RELAY")
        .output()
        .unwrap();
    assert!(!out.status.success(), "{args:?} succeeded");
    let error: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|err| panic!("{args:?}: {err}: {:?}", out.stdout));
    error["error"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn the_same_failure_has_the_same_code_from_every_command() {
    let root = tempfile::tempdir().unwrap();
    let empty = root.path().join("nobody");
    let dir = empty.to_str().unwrap();
    let not_enrolled: &[&[&str]] = &[
        &["groups"],
        &["whoami"],
        &["send", "Cohort", "hello"],
        &["read", "Cohort"],
        &["listen"],
        &["users"],
        &["devices"],
        &["group", "show", "Cohort"],
        &["group", "add", "Cohort", "ana"],
        &["verify", "ana"],
        &["dm", "ana", "hello"],
        &["invite", "bob", "--name", "Bob"],
        &["passphrase"],
    ];
    for args in not_enrolled {
        let with_dir: Vec<&str> = ["--state-dir", dir]
            .iter()
            .chain(args.iter())
            .copied()
            .collect();
        assert_eq!(error_code(&with_dir), "not_enrolled", "{args:?}");
    }
    let unreachable: &[&[&str]] = &[&["ping"], &["link", "ana"]];
    for args in unreachable {
        let with_relay: Vec<&str> = ["--state-dir", dir, "--relay", "ws://127.0.0.1:9"]
            .iter()
            .chain(args.iter())
            .copied()
            .collect();
        assert_eq!(error_code(&with_relay), "relay_unreachable", "{args:?}");
    }
    assert!(!empty.exists(), "a failed command left a state directory");
}
