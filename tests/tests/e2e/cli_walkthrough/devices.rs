//! A device's own state through the command line: its passphrase, a
//! second device linked and removed, and a restored backup that must take
//! over before it is accepted.

use anyhow::{Context, Result};
use convene_tests::app::copy_dir;
use convene_tests::InProcessRelay;
use serde_json::{json, Value};
use std::process::Stdio;

use super::{enrol_first_staff, error_code, without_json, Cli};

#[test]
fn the_passphrase_locks_the_state_and_can_be_changed() -> Result<()> {
    let relay = InProcessRelay::start_default()?;
    let root = tempfile::tempdir()?;
    let cli = Cli {
        relay: &relay.url.clone(),
        root: root.path(),
    };
    // A passphrase too short to protect anything is refused however it
    // comes, the environment included.
    let bootstrap = relay.bootstrap_invite.as_deref().context("no bootstrap")?;
    let mut short = cli.command("sam", &["enrol", bootstrap, "--user-id", "sam"]);
    short.env("CONVENE_PASSPHRASE", "x");
    let short = short.output()?;
    assert!(
        !short.status.success(),
        "a one-character passphrase was taken"
    );
    assert!(
        String::from_utf8_lossy(&short.stdout).contains("at least 8 characters"),
        "{}",
        String::from_utf8_lossy(&short.stdout)
    );
    enrol_first_staff(&cli, &relay)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(cli.state("sam"))?.permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "the state directory is {mode:o}");
        let salt = std::fs::metadata(cli.state("sam").join("passphrase.salt"))?;
        assert_eq!(salt.permissions().mode() & 0o777, 0o600);
    }
    let with = |passphrase: &str, args: &[&str]| {
        let mut command = cli.command("sam", args);
        command.env("CONVENE_PASSPHRASE", passphrase);
        command.output()
    };

    let wrong = with("not the passphrase", &["whoami"])?;
    assert!(!wrong.status.success());
    assert_eq!(error_code(&wrong)?, "wrong_key");

    let mut change = cli.command("sam", &["passphrase"]);
    change.env("CONVENE_NEW_PASSPHRASE", "a brand new passphrase");
    let changed = change.output()?;
    assert!(
        changed.status.success(),
        "{}",
        String::from_utf8_lossy(&changed.stderr)
    );
    let old = with("passphrase of sam", &["whoami"])?;
    assert_eq!(error_code(&old)?, "wrong_key");
    let new = with("a brand new passphrase", &["whoami"])?;
    assert!(
        new.status.success(),
        "{}",
        String::from_utf8_lossy(&new.stderr)
    );
    let me: Value = serde_json::from_slice(&new.stdout)?;
    assert_eq!(me["user_id"], "sam");
    Ok(())
}

#[test]
fn a_second_device_is_linked_and_removed_from_the_command_line() -> Result<()> {
    use std::io::{BufRead, BufReader};

    let relay = InProcessRelay::start_default()?;
    let root = tempfile::tempdir()?;
    let cli = Cli {
        relay: &relay.url,
        root: root.path(),
    };
    enrol_first_staff(&cli, &relay)?;
    let invite = cli.run("sam", &["invite", "ana", "--name", "Ana Okafor"])?;
    cli.run("ana", &["enrol", invite["code"].as_str().context("code")?])?;

    // The new device shows a code and waits; the first device sees a device
    // waiting with a code that starts the same, and approves it with the
    // whole code.
    let mut linking = cli
        .command("ana-laptop", &["link", "ana"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut lines = BufReader::new(linking.stdout.take().context("stdout")?).lines();
    let shown: Value = serde_json::from_str(&lines.next().context("no code shown")??)?;
    let code = shown["code"].as_str().context("no code")?.to_string();
    let listed = cli.run("ana", &["devices"])?;
    let start = listed["waiting"][0]["code_start"]
        .as_str()
        .context("no code start")?;
    assert!(
        code.starts_with(start),
        "{code} does not start with {start}"
    );
    // The code comes through a pipe, as a script would give it.
    let mut approving = cli
        .command("ana", &["devices", "approve"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    {
        use std::io::Write;
        let mut stdin = approving.stdin.take().context("no stdin")?;
        writeln!(stdin, "{code}")?;
    }
    let out = approving.wait_with_output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let approved: Value = serde_json::from_slice(&out.stdout)?;
    let linked: Value = serde_json::from_str(&lines.next().context("no identity")??)?;
    assert!(linking.wait()?.success());
    assert_eq!(linked["user_id"], "ana");
    assert_eq!(linked["device"], approved["linked"]);
    let devices = cli.run("ana", &["devices"])?;
    assert_eq!(devices["devices"].as_array().map(Vec::len), Some(2));
    assert_eq!(cli.run("ana-laptop", &["whoami"])?["user_id"], "ana");

    // Each device named itself after its computer as it enrolled or
    // linked; the names reach ana's devices only sealed, and she renames
    // the laptop. The other device was seen when it last connected.
    let host = nix::unistd::gethostname()?
        .to_string_lossy()
        .trim()
        .to_string();
    for device in devices["devices"].as_array().context("a list")? {
        assert_eq!(device["name"], host.as_str(), "{device}");
        assert_eq!(device["platform"], std::env::consts::OS, "{device}");
    }
    cli.run("ana-laptop", &["devices", "name", "Ana's laptop"])?;
    let listed = cli.plain("ana", &["devices"])?;
    let expected = format!("\"Ana's laptop\" ({}), enrolled ", std::env::consts::OS);
    let laptop_line = listed
        .lines()
        .find(|line| line.contains(&expected))
        .with_context(|| format!("the laptop is not listed by its new name: {listed}"))?;
    assert!(laptop_line.contains(", last seen "), "{listed}");
    assert_eq!(
        cli.fails("ana", &["devices", "name", "  "])?,
        "invalid_argument"
    );

    // Ana loses the laptop and removes it from the first device.
    let laptop = approved["linked"].as_str().context("device")?;
    cli.run("ana", &["devices", "remove", &laptop[..12]])?;
    let devices = cli.run("ana", &["devices"])?;
    assert_eq!(devices["devices"].as_array().map(Vec::len), Some(1));
    let code = cli.fails("ana-laptop", &["users"])?;
    assert_eq!(code, "revoked");
    // What the removed device still shows says that it was removed.
    let shown = without_json(cli.command("ana-laptop", &["groups"])).output()?;
    let said = String::from_utf8_lossy(&shown.stderr);
    assert!(said.contains("it can no longer send or receive"), "{said}");
    let refused = without_json(cli.command("ana-laptop", &["users"])).output()?;
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        said.contains("hint: if this is still your device"),
        "{said}"
    );
    Ok(())
}

/// A device restored from a backup after it went on is refused as a copy,
/// with a code that says so, until its user takes over with it.
#[test]
fn a_restored_backup_is_refused_until_the_user_takes_over() -> Result<()> {
    let relay = InProcessRelay::start_default()?;
    let root = tempfile::tempdir()?;
    let cli = Cli {
        relay: &relay.url,
        root: root.path(),
    };
    enrol_first_staff(&cli, &relay)?;
    let backup = tempfile::tempdir()?;
    copy_dir(&cli.state("sam"), backup.path())?;
    // The device goes on (and connects) after the backup was taken.
    cli.run("sam", &["groups"])?;
    std::fs::remove_dir_all(cli.state("sam"))?;
    copy_dir(backup.path(), &cli.state("sam"))?;

    assert_eq!(cli.fails("sam", &["users"])?, "state_copied");
    // People are told what to do; `listen` stops rather than wait in vain.
    let out = without_json(cli.command("sam", &["users"])).output()?;
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("convene take-over"), "{said}");
    let listen = cli.command("sam", &["listen"]).output()?;
    let lines: Vec<Value> = String::from_utf8(listen.stdout)?
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    assert!(!listen.status.success());
    assert_eq!(
        lines.first().map(|l| &l["event"]),
        Some(&json!("state_copied"))
    );
    assert_eq!(
        lines.last().map(|l| &l["error"]["code"]),
        Some(&json!("state_copied"))
    );
    let taken = cli.run("sam", &["take-over"])?;
    assert_eq!(taken["taken_over"], true);
    // Once taken over, there is nothing more to take.
    let again = cli.run("sam", &["take-over"])?;
    assert_eq!(again["taken_over"], false);
    let users = cli.run("sam", &["users"])?;
    assert!(users.as_array().is_some_and(|u| !u.is_empty()), "{users}");
    Ok(())
}
