//! Where the command line's output goes: a reader that stops reading (as
//! `convene listen | head -1` does) ends the command quietly, never with a
//! panic, whether the command succeeded or failed.

use std::process::{Command, Output, Stdio};

use anyhow::{ensure, Context, Result};
use convene_tests::binaries::binary;
use convene_tests::RelayProcess;

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

#[test]
fn output_to_a_closed_pipe_ends_the_command_quietly() -> Result<()> {
    let relay = RelayProcess::start_default()?;
    let root = tempfile::tempdir()?;
    let state = root.path().join("sam");
    let bootstrap = relay.bootstrap_invite.as_deref().context("no invite")?;
    let enrolled = Command::new(binary("convene"))
        .arg("--state-dir")
        .arg(&state)
        .args(["--json", "enrol", bootstrap, "--user-id", "sam"])
        .env_remove("CONVENE_PASSPHRASE_COMMAND")
        .env("CONVENE_PASSPHRASE", "passphrase of sam, for this test")
        .output()?;
    ensure!(enrolled.status.success(), "enrol failed: {enrolled:?}");

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
