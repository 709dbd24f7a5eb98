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

/// The command names `convene --help` lists.
fn commands_in_help() -> Vec<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_convene"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    help.lines()
        .skip_while(|line| !line.starts_with("Commands:"))
        .skip(1)
        .take_while(|line| !line.is_empty())
        // A command starts its line (two spaces in); wrapped help does not.
        .filter(|line| line.starts_with("  ") && !line.starts_with("   "))
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_string)
        .collect()
}

#[test]
fn the_readme_lists_every_command_help_lists() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let list: String = readme
        .split("\n\n")
        .find(|paragraph| paragraph.starts_with("All the commands"))
        .expect("README.md has its list of commands")
        .to_string();
    let mut listed: Vec<String> = list
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|code| {
            !code.contains(' ') && !code.starts_with("convene") && !code.starts_with('-')
        })
        .map(str::to_string)
        .collect();
    listed.sort();
    listed.dedup();
    let mut commands = commands_in_help();
    commands.sort();
    assert!(commands.len() > 15, "{commands:?}");
    assert_eq!(listed, commands);
}

#[test]
fn completions_and_the_manual_page_cover_the_commands() {
    for shell in ["bash", "zsh", "fish"] {
        let out = Command::new(env!("CARGO_BIN_EXE_convene"))
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(out.status.success(), "{shell}");
        let script = String::from_utf8(out.stdout).unwrap();
        assert!(
            script.contains("take-over") && script.contains("enrol"),
            "{shell}"
        );
    }
    let out = Command::new(env!("CARGO_BIN_EXE_convene"))
        .arg("man")
        .output()
        .unwrap();
    let page = String::from_utf8(out.stdout).unwrap();
    assert!(page.starts_with(".ie"), "not roff");
    for command in commands_in_help() {
        let entry = format!("convene\\-{}(1)", command.replace('-', "\\-"));
        assert!(page.contains(&entry), "the manual page lacks {entry}");
    }
}

/// A script that asked for JSON gets JSON even when the command line itself
/// is wrong; a person gets clap's message on standard error.
#[test]
fn a_command_line_it_cannot_read_is_a_usage_error_in_json_too() {
    assert_eq!(error_code(&["network", "chat", "maybe"]), "usage");
    assert_eq!(error_code(&["no-such-command"]), "usage");
    let out = Command::new(env!("CARGO_BIN_EXE_convene"))
        .args(["--json", "recertify"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let error: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let message = error["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("USER_ID"), "{message}");
    let out = Command::new(env!("CARGO_BIN_EXE_convene"))
        .args(["network", "chat", "maybe"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("maybe"));
}
