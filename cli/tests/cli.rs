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
