//! Where the command line's output goes: a reader that stops reading (as
//! `convene listen | head -1` does) ends the command quietly, never with a
//! panic, whether the command succeeded or failed.

use std::process::{Command, Output, Stdio};

use anyhow::{ensure, Context, Result};
use convene_tests::binaries::binary;
use convene_tests::InProcessRelay;

/// Runs `convene` with its standard output a pipe nobody reads: the read
/// end is closed before the command starts, so its first write fails with
/// EPIPE.
fn run_into_closed_pipe(args: &[&str], state: &std::path::Path) -> Result<Output> {
    let (read_end, write_end) = nix::unistd::pipe().context("cannot make a pipe")?;
    drop(read_end);
    Ok(Command::new(binary("convene"))
        .arg("--state-dir")
        .arg(state)
        .args(args)
        .env_remove("CONVENE_RELAY")
        .env_remove("CONVENE_PASSPHRASE_COMMAND")
        .env("CONVENE_PASSPHRASE", "passphrase of sam, for this test")
        .stdout(Stdio::from(write_end))
        .stderr(Stdio::piped())
        .output()?)
}

/// Enrols "sam" with the relay's bootstrap invite in `state`.
fn enrol_sam(relay: &InProcessRelay, state: &std::path::Path) -> Result<()> {
    let bootstrap = relay.bootstrap_invite.as_deref().context("no invite")?;
    let enrolled = Command::new(binary("convene"))
        .arg("--state-dir")
        .arg(state)
        .args(["--json", "enrol", bootstrap, "--user-id", "sam"])
        .env_remove("CONVENE_PASSPHRASE_COMMAND")
        .env("CONVENE_PASSPHRASE", "passphrase of sam, for this test")
        .output()?;
    ensure!(enrolled.status.success(), "enrol failed: {enrolled:?}");
    Ok(())
}

#[test]
fn output_to_a_closed_pipe_ends_the_command_quietly() -> Result<()> {
    let relay = InProcessRelay::start_default()?;
    let root = tempfile::tempdir()?;
    let state = root.path().join("sam");
    enrol_sam(&relay, &state)?;

    // A command that worked: its output had nowhere to go, which is the
    // reader's choice, not a failure.
    for args in [&["whoami"][..], &["--json", "whoami"][..]] {
        let out = run_into_closed_pipe(args, &state)?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        ensure!(
            out.status.success() && stderr.is_empty(),
            "convene {args:?} into a closed pipe: {:?}, stderr {stderr:?}",
            out.status
        );
    }

    // An invite code nobody read is lost: that is a failure.
    let out = run_into_closed_pipe(&["invite", "kim", "--name", "Kim"], &state)?;
    ensure!(
        out.status.code() == Some(1),
        "an invite code written into a closed pipe: {:?}, stderr {:?}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );

    // A command that failed still fails, and says nothing on a closed
    // output either.
    drop(relay);
    let out = run_into_closed_pipe(&["--json", "ping"], &state)?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(
        out.status.code() == Some(1) && !stderr.contains("panicked"),
        "a failed --json ping into a closed pipe: {:?}, stderr {stderr:?}",
        out.status
    );
    Ok(())
}

#[test]
fn a_clients_log_lines_say_whose_engine_it_is() -> Result<()> {
    let relay = InProcessRelay::start_default()?;
    let root = tempfile::tempdir()?;
    let state = root.path().join("sam");
    enrol_sam(&relay, &state)?;
    drop(relay);
    // With the relay gone, the engine logs its failed attempts; `groups`
    // waits a second for it, then shows what is stored.
    let out = Command::new(binary("convene"))
        .arg("--state-dir")
        .arg(&state)
        .args(["--timeout", "1", "groups"])
        .env_remove("CONVENE_PASSPHRASE_COMMAND")
        .env("CONVENE_PASSPHRASE", "passphrase of sam, for this test")
        .env("CONVENE_LOG", "convene_client=debug")
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let attempts: Vec<&str> = stderr
        .lines()
        .filter(|line| line.contains("cannot connect to the relay"))
        .collect();
    ensure!(!attempts.is_empty(), "no attempt was logged: {stderr}");
    for line in attempts {
        ensure!(
            line.contains("engine{") && line.contains("sam"),
            "a log line of the engine does not say whose it is: {line}"
        );
    }
    Ok(())
}
