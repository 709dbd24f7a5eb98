//! One person's commands side by side: `listen` (alone, or attached to
//! `convene daemon`) holds the state directory while the same user sends,
//! reads and lists from other processes, with the output they would give
//! alone; and a program speaks JSON-RPC 2.0 to the daemon's socket.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use convene_tests::InProcessRelay;
use serde_json::{json, Value};

use super::{enrol_first_staff, without_json, Cli};

/// How long a test waits for a line it expects.
const PATIENCE: Duration = Duration::from_secs(60);

/// A `convene` process whose output lines are read as they come.
struct Running {
    child: Child,
    stdout: mpsc::Receiver<String>,
    stderr: mpsc::Receiver<String>,
}

impl Running {
    fn start(mut command: std::process::Command) -> Result<Running> {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let stdout = lines_of(child.stdout.take().context("no stdout")?);
        let stderr = lines_of(child.stderr.take().context("no stderr")?);
        Ok(Running {
            child,
            stdout,
            stderr,
        })
    }

    /// The next line of `which` output that contains `needle`.
    fn wait_for(which: &mpsc::Receiver<String>, needle: &str) -> Result<String> {
        let deadline = std::time::Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match which.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return Ok(line),
                Ok(_) => {}
                Err(err) => bail!("no line containing {needle:?}: {err}"),
            }
        }
    }

    /// Stops it as Ctrl-C would, and waits for it.
    fn interrupt(mut self) -> Result<std::process::ExitStatus> {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id())?);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM)?;
        Ok(self.child.wait()?)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn lines_of(stream: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { return };
            if sender.send(line).is_err() {
                return;
            }
        }
    });
    receiver
}

/// Sam (staff) and Ana (a leader), in a cohort "Cohort 2026".
fn cohort_of_sam_and_ana(cli: &Cli, relay: &InProcessRelay) -> Result<()> {
    enrol_first_staff(cli, relay)?;
    let invite = cli.run("sam", &["invite", "ana", "--name", "Ana Okafor"])?;
    cli.run("ana", &["enrol", invite["code"].as_str().context("code")?])?;
    cli.run("sam", &["group", "create", "Cohort 2026", "-m", "ana"])?;
    Ok(())
}

#[test]
fn listen_through_the_daemon_while_the_same_user_sends_reads_and_lists() -> Result<()> {
    let relay = InProcessRelay::start_default()?;
    let root = tempfile::tempdir()?;
    let cli = Cli {
        relay: &relay.url,
        root: root.path(),
    };
    cohort_of_sam_and_ana(&cli, &relay)?;

    let daemon = Running::start(without_json(cli.command("ana", &["daemon"])))?;
    Running::wait_for(&daemon.stdout, "Serving ana's device")?;
    let listen = Running::start(without_json(
        cli.command("ana", &["listen", "--count", "2"]),
    ))?;
    Running::wait_for(&listen.stderr, "listening through the convene process")?;

    // Ana's other commands work while the daemon holds her state.
    assert_eq!(
        cli.plain("ana", &["send", "cohort 2026", "Morning from Ana"])?
            .trim(),
        "sent to Cohort 2026"
    );
    let groups = cli.plain("ana", &["groups"])?;
    assert!(
        groups.contains("cohort \"Cohort 2026\", 2 members"),
        "{groups}"
    );
    let read = cli.plain("ana", &["read", "Cohort 2026"])?;
    assert!(read.contains("] Ana Okafor: Morning from Ana"), "{read}");
    let unknown = cli.fails("ana", &["send", "No such group", "hello"])?;
    assert_eq!(unknown, "unknown_group");

    // What others send appears in her listen, with the group's name.
    cli.run("sam", &["send", "Cohort 2026", "Welcome, Ana"])?;
    cli.run("sam", &["send", "Cohort 2026", "Thursday at ten"])?;
    let first = Running::wait_for(&listen.stdout, "Welcome, Ana")?;
    assert!(first.starts_with("Cohort 2026: ["), "{first}");
    assert!(first.ends_with("] sam: Welcome, Ana"), "{first}");
    Running::wait_for(&listen.stdout, "Cohort 2026: [")?;
    let mut listen = listen;
    let listened = listen.child.wait()?;
    assert!(listened.success(), "listen --count 2 ended with {listened}");

    // The same commands without the daemon read the same.
    let through_daemon = (
        cli.plain("ana", &["groups"])?,
        cli.plain("ana", &["read", "Cohort 2026"])?,
        cli.plain("ana", &["whoami"])?,
    );
    assert!(daemon.interrupt()?.success());
    assert!(
        !cli.state("ana").join("daemon.sock").exists(),
        "the daemon left its socket behind"
    );
    let alone = (
        cli.plain("ana", &["groups"])?,
        cli.plain("ana", &["read", "Cohort 2026"])?,
        cli.plain("ana", &["whoami"])?,
    );
    assert_eq!(through_daemon, alone);
    assert_eq!(
        cli.fails("ana", &["send", "No such group", "hello"])?,
        unknown
    );
    Ok(())
}

#[test]
fn listen_alone_serves_the_same_users_other_commands() -> Result<()> {
    let relay = InProcessRelay::start_default()?;
    let root = tempfile::tempdir()?;
    let cli = Cli {
        relay: &relay.url,
        root: root.path(),
    };
    cohort_of_sam_and_ana(&cli, &relay)?;
    let listen = Running::start(without_json(
        cli.command("ana", &["listen", "--count", "1"]),
    ))?;
    Running::wait_for(&listen.stderr, "go through this one")?;
    assert_eq!(
        cli.plain("ana", &["send", "Cohort 2026", "Replying while I listen"])?
            .trim(),
        "sent to Cohort 2026"
    );
    cli.run("sam", &["send", "Cohort 2026", "Got it"])?;
    let line = Running::wait_for(&listen.stdout, "Got it")?;
    assert!(line.starts_with("Cohort 2026: ["), "{line}");
    Ok(())
}

/// A program speaking JSON-RPC 2.0 on the daemon's socket, one message per
/// line.
struct RpcCaller {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl RpcCaller {
    fn connect(path: &std::path::Path) -> Result<RpcCaller> {
        let stream = UnixStream::connect(path)?;
        stream.set_read_timeout(Some(PATIENCE))?;
        Ok(RpcCaller {
            writer: stream.try_clone()?,
            reader: BufReader::new(stream),
        })
    }

    fn send_line(&mut self, line: &str) -> Result<()> {
        self.writer.write_all(format!("{line}\n").as_bytes())?;
        Ok(())
    }

    fn next(&mut self) -> Result<Value> {
        let mut line = String::new();
        ensure!(self.reader.read_line(&mut line)? > 0, "the daemon hung up");
        Ok(serde_json::from_str(&line)?)
    }

    /// The response to request `id`, passing notifications by.
    fn response(&mut self, id: u64) -> Result<Value> {
        loop {
            let message = self.next()?;
            if message["id"] == json!(id) {
                assert_eq!(message["jsonrpc"], "2.0");
                return Ok(message);
            }
            ensure!(
                message.get("id").is_none(),
                "an answer to another request: {message}"
            );
        }
    }

    fn call(&mut self, id: u64, method: &str, params: Value) -> Result<Value> {
        let request = json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params });
        self.send_line(&request.to_string())?;
        self.response(id)
    }
}

#[test]
fn a_program_sends_subscribes_and_receives_over_json_rpc() -> Result<()> {
    let relay = InProcessRelay::start_default()?;
    let root = tempfile::tempdir()?;
    let cli = Cli {
        relay: &relay.url,
        root: root.path(),
    };
    cohort_of_sam_and_ana(&cli, &relay)?;
    let daemon = Running::start(cli.command("ana", &["daemon"]))?;
    let started: Value = serde_json::from_str(&Running::wait_for(&daemon.stdout, "socket")?)?;
    let socket = std::path::PathBuf::from(started["socket"].as_str().context("socket")?);
    assert_eq!(socket, cli.state("ana").join("daemon.sock"));
    let mode = std::fs::metadata(&socket)?.permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o077,
        0,
        "the socket is the owner's alone"
    );

    let mut rpc = RpcCaller::connect(&socket)?;
    let version = rpc.call(1, "version", json!({}))?;
    assert!(version["result"]["version"].is_string(), "{version}");
    let subscribed = rpc.call(2, "subscribe", Value::Null)?;
    assert_eq!(subscribed["result"], json!({ "subscribed": true }));

    // A send answers with the message, as `convene --json send` prints it.
    let sent = rpc.call(
        3,
        "send",
        json!({ "group": "Cohort 2026", "text": "Hello over JSON-RPC" }),
    )?;
    let message = &sent["result"];
    assert_eq!(message["text"], "Hello over JSON-RPC");
    assert_eq!(message["group_name"], "Cohort 2026");
    assert_eq!(message["sender"], "ana");
    assert_eq!(message["own"], true);
    let by_cli = cli.run("ana", &["send", "Cohort 2026", "And from the CLI"])?;
    let keys = |v: &Value| {
        v.as_object()
            .map(|o| o.keys().cloned().collect::<Vec<_>>())
            .unwrap_or_default()
    };
    assert_eq!(keys(message), keys(&by_cli), "the shapes differ");

    let groups = rpc.call(4, "groups", Value::Null)?;
    assert_eq!(groups["result"][0]["name"], "Cohort 2026");
    assert_eq!(groups["result"][0]["members"], json!(["ana", "sam"]));

    // Another member's message arrives as an event notification.
    cli.run("sam", &["send", "Cohort 2026", "Seen it"])?;
    let heard = loop {
        let message = rpc.next()?;
        if message["method"] == "event" && message["params"]["event"] == "message" {
            break message;
        }
    };
    assert_eq!(heard["jsonrpc"], "2.0");
    assert!(heard.get("id").is_none(), "a notification has no id");
    assert_eq!(heard["params"]["message"]["text"], "Seen it");
    assert_eq!(heard["params"]["message"]["sender"], "sam");
    assert_eq!(heard["params"]["message"]["group_name"], "Cohort 2026");

    // Failures: the command's stable code, and JSON-RPC's own codes.
    let unknown = rpc.call(5, "send", json!({ "group": "Nope", "text": "x" }))?;
    assert_eq!(unknown["error"]["code"], -32000);
    assert_eq!(unknown["error"]["data"]["code"], "unknown_group");
    let no_method = rpc.call(6, "launch", Value::Null)?;
    assert_eq!(no_method["error"]["code"], -32601);
    let bad_params = rpc.call(7, "send", json!({ "group": "Cohort 2026" }))?;
    assert_eq!(bad_params["error"]["code"], -32602);
    // A request without an id is a notification: it gets no answer.
    rpc.send_line(r#"{"jsonrpc": "2.0", "method": "groups"}"#)?;
    let version = rpc.call(8, "version", Value::Null)?;
    assert!(version["result"].is_object(), "{version}");
    // `"id": null` is an id, and answered with it; a batch is refused.
    rpc.send_line(r#"{"jsonrpc": "2.0", "id": null, "method": "version"}"#)?;
    let null_id = loop {
        let message = rpc.next()?;
        if message.get("id") == Some(&Value::Null) {
            break message;
        }
    };
    assert!(null_id["result"]["version"].is_string(), "{null_id}");
    rpc.send_line(r#"[{"jsonrpc": "2.0", "id": 10, "method": "version"}]"#)?;
    let batch = loop {
        let message = rpc.next()?;
        if message.get("id") == Some(&Value::Null) {
            break message;
        }
    };
    assert_eq!(batch["error"]["code"], -32600, "{batch}");
    // A line that is not JSON has no id to answer to: the answer's is null.
    rpc.send_line("{not json")?;
    let parse = loop {
        let message = rpc.next()?;
        if message.get("id") == Some(&Value::Null) {
            break message;
        }
    };
    assert_eq!(parse["error"]["code"], -32700);
    Ok(())
}
