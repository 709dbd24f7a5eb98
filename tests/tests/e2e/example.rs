//! client-core's example program, run against a real relay: what a
//! developer copies must work.

use std::process::Command;

use anyhow::{Context, Result};
use convene_tests::binaries::example;
use convene_tests::InProcessRelay;

#[test]
fn the_two_clients_example_exchanges_a_message() -> Result<()> {
    let relay = InProcessRelay::start_default()?;
    let invite = relay
        .bootstrap_invite
        .clone()
        .context("no bootstrap invite")?;
    let out = Command::new(example("two_clients"))
        .args([&relay.url, &invite])
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("leader joined \"Example cohort\""),
        "{stdout}"
    );
    assert!(
        stdout.contains("leader received from example.staff: Hello from the programme team"),
        "{stdout}"
    );
    Ok(())
}
