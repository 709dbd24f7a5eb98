//! The README's walkthrough, run as processes: the relay's bootstrap
//! invite, staff inviting three leaders, a cohort conversation and a direct
//! message, every step through the `convene` binary with `--json`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use convene_tests::binaries::binary;
use convene_tests::{InProcessRelay, RelayProcess, RelayUnderTest};
use serde_json::Value;

mod daemon;
mod devices;
mod readme;

struct Cli<'a> {
    relay: &'a str,
    root: &'a Path,
}

impl Cli<'_> {
    fn state(&self, user: &str) -> PathBuf {
        self.root.join(user)
    }

    fn command(&self, user: &str, args: &[&str]) -> Command {
        let mut command = Command::new(binary("convene"));
        command
            .arg("--relay")
            .arg(self.relay)
            .arg("--state-dir")
            .arg(self.state(user))
            .arg("--json")
            .args(args)
            .env_remove("CONVENE_RELAY")
            .env_remove("CONVENE_STATE_DIR")
            .env_remove("CONVENE_PASSPHRASE_COMMAND")
            .env("CONVENE_PASSPHRASE", format!("passphrase of {user}"));
        command
    }

    /// Runs `convene` as `user`; returns its JSON output, or fails with its
    /// error output.
    fn run(&self, user: &str, args: &[&str]) -> Result<Value> {
        let out = self.command(user, args).output()?;
        let stdout = String::from_utf8(out.stdout)?;
        if !out.status.success() {
            bail!(
                "convene {args:?} as {user} failed: {stdout} {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        serde_json::from_str(&stdout).with_context(|| format!("not JSON: {stdout:?}"))
    }

    /// Runs `convene` as `user` for people (without `--json`); returns
    /// its standard output, or fails with its error output.
    fn plain(&self, user: &str, args: &[&str]) -> Result<String> {
        let out = without_json(self.command(user, args)).output()?;
        if !out.status.success() {
            bail!(
                "convene {args:?} as {user} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8(out.stdout)?)
    }

    /// Runs `convene` expecting failure; returns the error's code.
    fn fails(&self, user: &str, args: &[&str]) -> Result<String> {
        let out = self.command(user, args).output()?;
        if out.status.success() {
            bail!("convene {args:?} as {user} should have failed");
        }
        error_code(&out)
    }
}

/// Enrols "sam", the first staff member, with the relay's bootstrap invite.
fn enrol_first_staff(cli: &Cli, relay: &impl RelayUnderTest) -> Result<Value> {
    let bootstrap = relay.bootstrap_invite().context("no bootstrap invite")?;
    cli.run("sam", &["enrol", bootstrap, "--user-id", "sam"])
}

/// The same command, for people rather than scripts.
fn without_json(command: Command) -> Command {
    let mut plain = Command::new(command.get_program());
    plain.args(command.get_args().filter(|arg| *arg != "--json"));
    for (key, value) in command.get_envs() {
        match value {
            Some(value) => plain.env(key, value),
            None => plain.env_remove(key),
        };
    }
    plain
}

/// The stable code of the JSON error a failed `convene --json` printed.
fn error_code(out: &std::process::Output) -> Result<String> {
    let error: Value = serde_json::from_slice(&out.stdout)?;
    Ok(error["error"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_string())
}

#[test]
fn the_readme_walkthrough_works_from_the_command_line() -> Result<()> {
    // The relay binary as README.md runs it, and the bootstrap invite it
    // prints.
    let relay = RelayProcess::start_default()?;
    let root = tempfile::tempdir()?;
    let cli = Cli {
        relay: &relay.url,
        root: root.path(),
    };
    let bootstrap = relay
        .bootstrap_invite
        .clone()
        .context("no bootstrap invite")?;

    // Staff enrol with the relay's bootstrap invite and invite three leaders.
    let sam = cli.run(
        "sam",
        &[
            "enrol",
            &bootstrap,
            "--user-id",
            "sam",
            "--name",
            "Sam Patel",
        ],
    )?;
    assert_eq!(sam["user_id"], "sam");
    assert_eq!(sam["role"], "staff");
    // What people read is what README.md shows, line for line.
    let readme = readme::ReadmeOutputs::load()?;
    for (user, name) in [
        ("ana", "Ana Okafor"),
        ("ben", "Ben Shah"),
        ("cara", "Cara Lewis"),
    ] {
        let code = if user == "ana" {
            let shown = cli.plain("sam", &["invite", user, "--name", name])?;
            readme.check("invite", &shown)?;
            shown
                .lines()
                .map(str::trim)
                .find(|line| line.starts_with("cvn2_"))
                .context("no code in the invite")?
                .to_string()
        } else {
            let invite = cli.run("sam", &["invite", user, "--name", name])?;
            assert_eq!(invite["role"], "leader");
            invite["code"].as_str().context("no code")?.to_string()
        };
        let me = cli.run(user, &["enrol", &code])?;
        assert_eq!(me["user_id"], user);
        assert_eq!(me["display_name"], name);
        assert_eq!(me["role"], "leader");
    }
    let whoami = cli.run("ana", &["whoami"])?;
    assert_eq!(whoami["display_name"], "Ana Okafor");
    let users = cli.run("ana", &["users"])?;
    assert_eq!(users.as_array().map(Vec::len), Some(4));
    // Ana and Ben compare safety numbers out of band: the same digits.
    let ana_sees = cli.run("ana", &["verify", "ben"])?;
    let ben_sees = cli.run("ben", &["verify", "ana"])?;
    assert_eq!(ana_sees["safety_number"], ben_sees["safety_number"]);
    assert!(ana_sees["safety_number"]
        .as_str()
        .is_some_and(|n| n.len() == 71));

    // Staff create the cohort.
    let group = cli.run(
        "sam",
        &[
            "group",
            "create",
            "Cohort 2026",
            "-m",
            "ana",
            "-m",
            "ben",
            "-m",
            "cara",
        ],
    )?;
    assert_eq!(group["kind"], "cohort");
    assert_eq!(
        group["members"],
        serde_json::json!(["ana", "ben", "cara", "sam"])
    );

    // Cara listens while Ana and Ben talk.
    let listener = without_json(cli.command("cara", &["listen", "--count", "2"]))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let sent = cli.plain(
        "ana",
        &[
            "send",
            "Cohort 2026",
            "Morning all: who is free on Thursday?",
        ],
    )?;
    readme.check("send", &sent)?;
    cli.run("ben", &["send", "Cohort 2026", "Thursday works for me."])?;

    let out = listener.wait_with_output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    readme.check("listen", &String::from_utf8(out.stdout)?)?;
    readme.check("read", &cli.plain("ben", &["read", "Cohort 2026"])?)?;

    let history = cli.run("ben", &["read", "Cohort 2026"])?;
    let texts: Vec<&str> = history
        .as_array()
        .context("a list")?
        .iter()
        .filter_map(|m| m["text"].as_str())
        .collect();
    assert_eq!(
        texts,
        [
            "Morning all: who is free on Thursday?",
            "Thursday works for me."
        ]
    );

    // A direct message, read on the other side by the sender's user id.
    cli.run("ana", &["dm", "ben", "Can we talk about the inspection?"])?;
    readme.check("read direct", &cli.plain("ben", &["read", "ana"])?)?;
    let direct = cli.run("ben", &["read", "ana"])?;
    assert_eq!(direct[0]["text"], "Can we talk about the inspection?");
    assert_eq!(direct[0]["sender"], "ana");
    let groups = cli.run("ben", &["groups"])?;
    let kinds: Vec<&str> = groups
        .as_array()
        .context("a list")?
        .iter()
        .filter_map(|g| g["kind"].as_str())
        .collect();
    assert_eq!(kinds.len(), 2);
    assert!(kinds.contains(&"cohort") && kinds.contains(&"direct"));

    // Staff step out of the cohort and manage it from outside; Cara's
    // running client checks and commits each change.
    let mut cara_online = without_json(cli.command("cara", &["listen"]))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let left = cli.run("sam", &["group", "leave", "Cohort 2026"]);
    let removed = cli.run("sam", &["group", "remove", "Cohort 2026", "ben"]);
    // Cara is told who did what, once she has committed it.
    let out = cara_online.stdout.take().context("stdout")?;
    let (sender, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            if sender.send(line).is_err() {
                return;
            }
        }
    });
    let mut cara_saw = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let cara_heard = loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if line.starts_with("Cohort 2026: sam removed ben") => break true,
            Ok(line) => cara_saw.push(line),
            Err(_) => break false,
        }
    };
    cara_online.kill()?;
    cara_online.wait()?;
    assert!(
        cara_heard,
        "cara's listen did not say that sam removed ben: {cara_saw:?}"
    );
    let (left, removed) = (left?, removed?);
    assert_eq!(left["managing"], true);
    assert_eq!(left["members"], serde_json::json!(["ana", "ben", "cara"]));
    assert_eq!(removed["members"], serde_json::json!(["ana", "cara"]));
    readme.check(
        "group show",
        &cli.plain("ana", &["group", "show", "Cohort 2026"])?,
    )?;
    let shown = cli.run("ana", &["group", "show", "Cohort 2026"])?;
    // Ben is no longer a member; what he said still shows his name.
    let history = cli.plain("ana", &["read", "Cohort 2026"])?;
    assert!(
        history.contains("] Ben Shah: Thursday works for me."),
        "{history}"
    );
    assert_eq!(shown["managers"], serde_json::json!(["sam"]));
    assert_eq!(shown["members"], serde_json::json!(["ana", "cara"]));
    assert_eq!(
        cli.fails("sam", &["send", "Cohort 2026", "hello"])?,
        "not_a_member"
    );

    // Clear errors.
    assert_eq!(
        cli.fails("ana", &["send", "No such group", "hello"])?,
        "unknown_group"
    );
    assert_eq!(
        cli.fails("ana", &["dm", "nobody", "hello"])?,
        "unknown_user"
    );
    assert_eq!(
        cli.fails("ana", &["invite", "dora", "--name", "Dora"])?,
        "forbidden"
    );
    assert_eq!(
        cli.fails("dora", &["enrol", "cvn2_not-a-real-invite"])?,
        "invalid_invite"
    );
    assert_eq!(
        cli.fails("dora", &["enrol", &bootstrap, "--user-id", "dora"])?,
        "invalid_invite"
    );
    Ok(())
}

#[test]
fn ping_uses_the_remembered_relay_and_an_unreachable_one_is_reported() -> Result<()> {
    let mut relay = RelayProcess::start_default()?;
    let root = tempfile::tempdir()?;
    let cli = Cli {
        relay: &relay.url.clone(),
        root: root.path(),
    };
    enrol_first_staff(&cli, &relay)?;
    // `ping` with no --relay tries the relay the device enrolled with (no
    // passphrase needed), not the default one.
    let mut ping = Command::new(binary("convene"));
    ping.arg("--state-dir")
        .arg(cli.state("sam"))
        .args(["--json", "ping"])
        .env_remove("CONVENE_RELAY")
        .env_remove("CONVENE_PASSPHRASE");
    let out = ping.output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pong: Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(pong["relay"], relay.url.as_str());
    relay.kill()?;
    let code = cli.fails("sam", &["send", "anything", "hello"])?;
    assert_eq!(code, "relay_unreachable");
    // `ping` says so with the same code.
    let out = ping.output()?;
    assert!(!out.status.success(), "ping reached a stopped relay");
    assert_eq!(error_code(&out)?, "relay_unreachable");
    Ok(())
}

/// Text from others reaches the terminal through one safe path: terminal
/// sequences, newlines and bidi overrides in a message are shown escaped,
/// and a name with a bidi override is refused when staff certify it.
#[test]
fn untrusted_text_is_shown_escaped_and_disguised_names_are_refused() -> Result<()> {
    let relay = InProcessRelay::start_default()?;
    let root = tempfile::tempdir()?;
    let cli = Cli {
        relay: &relay.url,
        root: root.path(),
    };
    enrol_first_staff(&cli, &relay)?;
    for name in ["\u{202e}nadroJ", "Sam\u{200b}", "Ana\u{1b}[2J"] {
        assert_eq!(
            cli.fails("sam", &["invite", "eve", "--name", name])?,
            "invalid_argument",
            "{name:?}"
        );
    }
    for (user, name) in [("ana", "Ana Okafor"), ("ben", "Ben Adeyemi")] {
        let invite = cli.run("sam", &["invite", user, "--name", name])?;
        cli.run(user, &["enrol", invite["code"].as_str().context("code")?])?;
    }
    let hostile =
        "hi\u{1b}[2J\u{1b}]0;owned\u{7}\n[2026-11-30T09:00:00Z] sam: fake \u{202e}txt.exe";
    cli.run("ana", &["dm", "ben", hostile])?;
    let read = without_json(cli.command("ben", &["read", "ana"])).output()?;
    assert!(
        read.status.success(),
        "{}",
        String::from_utf8_lossy(&read.stderr)
    );
    let shown = String::from_utf8(read.stdout)?;
    for raw in ['\u{1b}', '\u{7}', '\u{202e}'] {
        assert!(!shown.contains(raw), "{raw:?} printed raw: {shown:?}");
    }
    assert_eq!(
        shown.lines().count(),
        1,
        "the text drew a line of its own: {shown:?}"
    );
    assert!(shown.contains("\\u{1b}[2J"), "{shown:?}");
    Ok(())
}
