//! The `convene-server` command line, run as a process.

use std::process::{Command, Output};

fn relay(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_convene-server"))
        .args(args)
        .env_remove("CONVENE_LISTEN")
        .env_remove("CONVENE_DATA_DIR")
        .env_remove("CONVENE_CONFIG")
        .output()
        .expect("run convene-server")
}

#[test]
fn refuses_plaintext_on_a_public_address() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = relay(&[
        "serve",
        "--listen",
        "0.0.0.0:0",
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not a loopback address"), "{stderr}");
    assert!(stderr.contains("--tls-cert"), "{stderr}");
    assert!(
        !data.exists(),
        "nothing is created when the configuration is refused"
    );
}

#[test]
fn a_bad_configuration_file_is_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("relay.toml");
    std::fs::write(
        &config,
        "listen = \"127.0.0.1:0\"\n[limits]\nmax_inbox = \"many\"\n",
    )
    .unwrap();
    let out = relay(&["--config", config.to_str().unwrap(), "serve"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("relay.toml") && stderr.contains("max_inbox"),
        "{stderr}"
    );
}

#[test]
fn gen_cert_writes_a_usable_pair_with_a_private_key_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = relay(&[
        "gen-cert",
        "--host",
        "relay.example",
        "--out",
        dir.path().to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    assert!(std::fs::read_to_string(&cert)
        .unwrap()
        .contains("BEGIN CERTIFICATE"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the key must not be readable by others");
    }
    convene_server::tls::acceptor(&cert, &key).expect("the pair loads");
}

#[test]
fn offline_invite_needs_existing_relay_data() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nothing-here");
    let out = relay(&["invite", "--data-dir", missing.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no relay data"));

    // With data (created by opening a store), it prints a code.
    let data = dir.path().join("data");
    drop(convene_server::store::Store::open(&data, Default::default()).unwrap());
    let out = relay(&["invite", "--data-dir", data.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout)
        .trim()
        .starts_with("cvn2_"));
}

#[test]
fn help_describes_the_commands() {
    let out = relay(&["--help"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for command in ["serve", "invite", "gen-cert"] {
        assert!(text.contains(command), "{text}");
    }
}

#[test]
fn options_work_with_and_without_the_serve_command() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("relay.toml");
    std::fs::write(&config, "listen = \"0.0.0.0:0\"\n").unwrap();
    // The file's public address is refused (no TLS) whichever way serve is
    // reached: proof that the file was read in both.
    for args in [
        vec!["--config", config.to_str().unwrap(), "serve"],
        vec!["--config", config.to_str().unwrap()],
    ] {
        let out = relay(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("not a loopback address"),
            "{args:?}: {stderr}"
        );
    }
    // A flag overrides the file, before or after the command.
    for args in [
        vec![
            "--config",
            config.to_str().unwrap(),
            "serve",
            "--listen",
            "203.0.113.9:1",
        ],
        vec![
            "--config",
            config.to_str().unwrap(),
            "--listen",
            "203.0.113.9:1",
        ],
    ] {
        let out = relay(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("203.0.113.9:1"), "{args:?}: {stderr}");
    }
}

#[test]
fn an_offline_invite_uses_the_data_directory_given_before_the_command() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    drop(
        convene_server::store::Store::open(&data, convene_server::store::StoreOptions::default())
            .unwrap(),
    );
    let out = relay(&["--data-dir", data.to_str().unwrap(), "invite"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.trim_start().starts_with("cvn2_"), "{stdout}");
}
