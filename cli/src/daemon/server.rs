//! The daemon's side of the socket: accepts callers (owner only, a
//! bounded number at once), runs each request against the one client, and
//! sends a subscriber the client's events as notifications.

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use convene_client::{Client, Event};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;
use tracing::Instrument as _;

use super::rpc::{
    code, DaemonError, ErrorObject, Outgoing, Request, MAX_ANSWER_BYTES, MAX_LINE_BYTES,
};
use crate::call::Call;
use crate::execute::{execute, Ops};
use crate::shapes::{EventShape, GroupNames};

/// Callers served at once; one more waits to be accepted.
const MAX_CALLERS: usize = 32;
/// Lines waiting to be written to one caller. A subscriber that does not
/// read falls behind and loses events, never the daemon's memory.
const OUTBOX_LINES: usize = 256;

/// A task that ends when its handle is dropped, so that no task of a
/// caller outlives the caller, nor the daemon's serving.
pub struct Task(pub tokio::task::JoinHandle<()>);

impl Drop for Task {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The socket, bound and owner-only; removed when dropped.
pub struct Socket {
    listener: UnixListener,
    path: PathBuf,
    owner: u32,
    /// The socket file's device and inode: what is removed on drop must be
    /// this socket, not one a later daemon bound at the same path.
    file: (u64, u64),
}

impl Socket {
    /// Binds `path`, in the state directory `state_dir` (whose owner is
    /// the only caller served). A socket file left by a daemon that died
    /// is replaced; the caller holds the state's lock, so no daemon runs.
    pub fn bind(state_dir: &Path, path: &Path) -> Result<Socket, DaemonError> {
        let failed = |reason: String| DaemonError::Listen {
            socket: path.display().to_string(),
            reason,
        };
        let owner = std::fs::metadata(state_dir)
            .map_err(|err| failed(err.to_string()))?
            .uid();
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(failed(err.to_string())),
        }
        let listener = UnixListener::bind(path).map_err(|err| failed(err.to_string()))?;
        // The state directory is the owner's alone already; the socket is
        // too, whatever the umask.
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|err| failed(err.to_string()))?;
        let file = std::fs::metadata(path).map_err(|err| failed(err.to_string()))?;
        Ok(Socket {
            listener,
            path: path.to_path_buf(),
            owner,
            file: (file.dev(), file.ino()),
        })
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        let ours = std::fs::metadata(&self.path).is_ok_and(|f| (f.dev(), f.ino()) == self.file);
        if ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Serves callers on `socket` with `client` until the future is dropped.
pub async fn serve(socket: Socket, client: Client, timeout: Duration) {
    let permits = Arc::new(Semaphore::new(MAX_CALLERS));
    let mut callers = JoinSet::new();
    loop {
        // Reaps finished callers so the set stays as small as those served.
        while callers.try_join_next().is_some() {}
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let stream = match socket.listener.accept().await {
            Ok((stream, _)) => stream,
            Err(err) => {
                tracing::warn!(error = %err, "cannot accept a caller");
                // Out of descriptors, say: wait rather than spin.
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let uid = stream.peer_cred().map(|cred| cred.uid());
        if !matches!(uid, Ok(uid) if uid == socket.owner) {
            tracing::warn!(?uid, "refused a caller that is not the state's owner");
            continue;
        }
        let client = client.clone();
        callers.spawn(
            async move {
                caller(stream, client, timeout).await;
                drop(permit);
            }
            .instrument(tracing::info_span!("caller")),
        );
    }
}

/// Serves one caller until it hangs up or breaks the protocol.
async fn caller(stream: UnixStream, client: Client, timeout: Duration) {
    let (read, mut write) = stream.into_split();
    let (outbox, mut outgoing) = mpsc::channel::<String>(OUTBOX_LINES);
    let mut writer = Task(tokio::spawn(async move {
        while let Some(mut line) = outgoing.recv().await {
            line.push('\n');
            if write.write_all(line.as_bytes()).await.is_err() {
                break;
            }
        }
    }));
    let mut reader = BufReader::new(read);
    let mut subscription: Option<Task> = None;
    loop {
        let line = match read_line(&mut reader).await {
            Ok(Some(line)) => line,
            Ok(None) => break,
            Err(error) => {
                let _ = outbox.send(Outgoing::error(None, error).line()).await;
                break;
            }
        };
        let Some((id, answer)) = answer(&line, &client, timeout, &outbox, &mut subscription).await
        else {
            continue;
        };
        let response = match answer {
            Ok(result) => Outgoing::result(id, result),
            Err(error) => Outgoing::error(Some(id), error),
        };
        let mut line = response.line();
        if line.len() > MAX_ANSWER_BYTES {
            let too_long = ErrorObject::failed(
                "invalid_argument",
                format!(
                    "the answer is over {} MiB: ask for less",
                    MAX_ANSWER_BYTES >> 20
                ),
            );
            line = Outgoing::error(response.id, too_long).line();
        }
        if outbox.send(line).await.is_err() {
            break;
        }
    }
    drop(subscription);
    drop(outbox);
    // The writer sends what is queued, then ends with the queue.
    let _ = (&mut writer.0).await;
}

/// One line from the caller, at most [`MAX_LINE_BYTES`]; `None` at the end.
async fn read_line(
    reader: &mut BufReader<tokio::net::unix::OwnedReadHalf>,
) -> Result<Option<String>, ErrorObject> {
    let mut bytes = Vec::new();
    let mut limited = (&mut *reader).take(MAX_LINE_BYTES as u64 + 1);
    let read = limited.read_until(b'\n', &mut bytes).await;
    match read {
        Ok(0) => Ok(None),
        Ok(_) if bytes.len() > MAX_LINE_BYTES => Err(ErrorObject::protocol(
            code::INVALID_REQUEST,
            format!("a request is at most {MAX_LINE_BYTES} bytes"),
        )),
        Ok(_) => String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| ErrorObject::protocol(code::PARSE_ERROR, "a request is UTF-8 JSON")),
        Err(err) => Err(ErrorObject::protocol(code::PARSE_ERROR, err.to_string())),
    }
}

/// The answer to one line: `None` for a notification or a blank line,
/// which get none.
async fn answer(
    line: &str,
    client: &Client,
    timeout: Duration,
    outbox: &mpsc::Sender<String>,
    subscription: &mut Option<Task>,
) -> Option<(Value, Result<Value, ErrorObject>)> {
    if line.trim().is_empty() {
        return None;
    }
    let parsed: Value = match serde_json::from_str(line) {
        Ok(value) => value,
        Err(err) => {
            let error = ErrorObject::protocol(code::PARSE_ERROR, format!("not JSON: {err}"));
            return Some((Value::Null, Err(error)));
        }
    };
    // Only an object is a request (batches are not served).
    let request: Request = match parsed {
        Value::Object(_) => match serde_json::from_value(parsed) {
            Ok(request) => request,
            Err(err) => {
                let error = ErrorObject::protocol(
                    code::INVALID_REQUEST,
                    format!("not a JSON-RPC 2.0 request (jsonrpc, method, params, id): {err}"),
                );
                return Some((Value::Null, Err(error)));
            }
        },
        _ => {
            let error = ErrorObject::protocol(
                code::INVALID_REQUEST,
                "a request is one JSON object (batches are not served)",
            );
            return Some((Value::Null, Err(error)));
        }
    };
    if request.jsonrpc != "2.0" {
        let error = ErrorObject::protocol(code::INVALID_REQUEST, "jsonrpc must be \"2.0\"");
        return Some((request.id.unwrap_or(Value::Null), Err(error)));
    }
    // The method is the caller's text: logged escaped and short.
    let logged: String = request.method.chars().take(64).collect();
    let span = tracing::info_span!("request", method = ?logged);
    let result = async {
        match request.method.as_str() {
            "version" => Ok(json!({ "version": env!("CARGO_PKG_VERSION") })),
            "subscribe" => {
                if subscription.is_none() {
                    let events = forward_events(client.clone(), outbox.clone());
                    *subscription = Some(Task(tokio::spawn(events)));
                }
                Ok(json!({ "subscribed": true }))
            }
            "unsubscribe" => {
                // Dropping the task ends it.
                subscription.take();
                Ok(json!({ "subscribed": false }))
            }
            method => run(method, request.params, client, timeout, outbox).await,
        }
    }
    .instrument(span)
    .await;
    // A notification asks for no answer, even a failure.
    request.id.map(|id| (id, result))
}

/// Runs a call method.
async fn run(
    method: &str,
    params: Option<Value>,
    client: &Client,
    timeout: Duration,
    outbox: &mpsc::Sender<String>,
) -> Result<Value, ErrorObject> {
    let call = call_of(method, params)?;
    let notes = |text: &str| {
        let note = Outgoing::notification("note", json!({ "text": text }));
        // A note is for people; one that finds the caller's queue full is
        // dropped rather than delaying the answer.
        let _ = outbox.try_send(note.line());
    };
    let ops = Ops {
        timeout,
        progress: false,
        notes: &notes,
    };
    execute(&ops, client, &call).await.map_err(|err| {
        ErrorObject::failed(
            crate::output::error_code(&err),
            crate::output::chain_text(&err),
        )
    })
}

/// The call `method` names, with `params` (absent, `null` or `{}` for a
/// call that takes none).
fn call_of(method: &str, params: Option<Value>) -> Result<Call, ErrorObject> {
    let mut request = serde_json::Map::new();
    request.insert("method".into(), Value::String(method.into()));
    match params {
        None | Some(Value::Null) => {}
        Some(Value::Object(map)) if map.is_empty() => {}
        Some(params) => {
            request.insert("params".into(), params);
        }
    }
    match serde_json::from_value::<Call>(Value::Object(request)) {
        Ok(call) => Ok(call),
        Err(err) if err.to_string().starts_with("unknown variant") => Err(ErrorObject::protocol(
            code::METHOD_NOT_FOUND,
            format!("no method {method:?}"),
        )),
        Err(err) => {
            let bare = serde_json::json!({ "method": method });
            let message = match serde_json::from_value::<Call>(bare) {
                Ok(_) => format!("{method:?} takes no params"),
                Err(_) => format!(
                    "the params of {method:?} are not what it takes (docs/JSON-RPC.md): {err}"
                ),
            };
            Err(ErrorObject::protocol(code::INVALID_PARAMS, message))
        }
    }
}

/// Sends the client's events to one subscriber as `event` notifications,
/// until it unsubscribes, hangs up or the client stops.
async fn forward_events(client: Client, outbox: mpsc::Sender<String>) {
    let mut events = client.events();
    let mut status = client.watch_status();
    let mut names = match client.groups() {
        Ok(groups) => GroupNames::of_groups(&groups),
        Err(err) => {
            tracing::warn!(error = %err, "cannot read the groups' names; events name groups by id");
            GroupNames::default()
        }
    };
    let mut told_copied = false;
    loop {
        let event = tokio::select! {
            event = events.recv() => event,
            copied = status.wait_for(|s| s.copied), if !told_copied => {
                told_copied = true;
                // The client stopped if the status is gone.
                copied.ok().map(|_| Event::StateCopied)
            }
        };
        let Some(event) = event else { return };
        if matches!(event, Event::StateCopied) {
            told_copied = true;
        }
        names.learn_from(&event, &client);
        let params = serde_json::to_value(EventShape::new(&event, &names)).unwrap_or_default();
        if outbox
            .send(Outgoing::notification("event", params).line())
            .await
            .is_err()
        {
            return;
        }
    }
}
