//! The caller's side of the socket: a command that finds a daemon running
//! for its state directory sends it the call instead of opening the state
//! itself.

use std::path::Path;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::UnixStream;

use super::rpc::{CallFailed, DaemonError, Outgoing, MAX_ANSWER_BYTES};
use crate::call::Call;
use crate::shapes::EventShape;

/// A connection to the daemon of one state directory.
pub struct Daemon {
    stream: BufReader<UnixStream>,
    next_id: u64,
}

impl Daemon {
    /// The daemon serving `state_dir`, or `None` when none runs (no socket,
    /// or one left by a daemon that stopped).
    pub async fn connect(state_dir: &Path) -> Option<Daemon> {
        let path = super::socket_path(state_dir);
        match UnixStream::connect(&path).await {
            Ok(stream) if served_by_owner(state_dir, &stream) => Some(Daemon {
                stream: BufReader::new(stream),
                next_id: 1,
            }),
            Ok(_) => {
                tracing::warn!(socket = %path.display(), "a socket not served by this user; not used");
                None
            }
            Err(err) => {
                tracing::debug!(error = %err, socket = %path.display(), "no daemon");
                None
            }
        }
    }

    /// Sends `call` and waits for its answer; notes the daemon sends
    /// meanwhile go to `notes`.
    ///
    /// # Errors
    /// [`CallFailed`] with the daemon's code and sentence when the call
    /// failed; [`DaemonError::Lost`] when the daemon went away.
    pub async fn call(&mut self, call: &Call, notes: impl Fn(&str)) -> anyhow::Result<Value> {
        let mut request = serde_json::to_value(call)?;
        if let Value::Object(map) = &mut request {
            map.insert("jsonrpc".into(), json!("2.0"));
            map.insert("id".into(), json!(self.next_id));
        }
        self.request(request, notes).await
    }

    /// Asks for the client's events as notifications.
    pub async fn subscribe(&mut self) -> anyhow::Result<()> {
        let request = json!({ "jsonrpc": "2.0", "id": self.next_id, "method": "subscribe" });
        self.request(request, |_| {}).await.map(drop)
    }

    /// The next event; `None` when the daemon stopped.
    pub async fn next_event(&mut self) -> Result<Option<EventShape>, DaemonError> {
        loop {
            let Some(message) = self.receive().await? else {
                return Ok(None);
            };
            if message.method.as_deref() == Some("event") {
                let params = message.params.unwrap_or_default();
                return serde_json::from_value(params).map(Some).map_err(|err| {
                    DaemonError::Lost(format!("an event it sent is unreadable: {err}"))
                });
            }
        }
    }

    async fn request(&mut self, request: Value, notes: impl Fn(&str)) -> anyhow::Result<Value> {
        let id = json!(self.next_id);
        self.next_id += 1;
        let mut line = request.to_string();
        line.push('\n');
        self.stream
            .get_mut()
            .write_all(line.as_bytes())
            .await
            .map_err(|err| DaemonError::Lost(err.to_string()))?;
        loop {
            let Some(message) = self.receive().await? else {
                return Err(DaemonError::Lost("it hung up".into()).into());
            };
            if message.method.as_deref() == Some("note") {
                let text = message.params.as_ref().and_then(|p| p["text"].as_str());
                if let Some(text) = text {
                    notes(text);
                }
                continue;
            }
            // An error answered with a null id is the daemon refusing a
            // request it could not read: ours.
            let unreadable = message.id == Some(Value::Null) && message.error.is_some();
            if message.id.as_ref() != Some(&id) && !unreadable {
                continue;
            }
            if let Some(error) = message.error {
                let code = error
                    .data
                    .map(|data| data.code)
                    .unwrap_or_else(|| "error".into());
                return Err(CallFailed {
                    code,
                    message: error.message,
                }
                .into());
            }
            return Ok(message.result.unwrap_or_default());
        }
    }

    /// The daemon's next line; `None` at its end.
    async fn receive(&mut self) -> Result<Option<Outgoing>, DaemonError> {
        let mut bytes = Vec::new();
        // The answer, its newline, and one byte more to tell a longer one.
        let mut limited = (&mut self.stream).take(MAX_ANSWER_BYTES as u64 + 2);
        let read = limited
            .read_until(b'\n', &mut bytes)
            .await
            .map_err(|err| DaemonError::Lost(err.to_string()))?;
        if read == 0 {
            return Ok(None);
        }
        if bytes.len() > MAX_ANSWER_BYTES + 1 {
            return Err(DaemonError::Lost("it sent an over-long line".into()));
        }
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|err| DaemonError::Lost(format!("it sent what is not JSON-RPC: {err}")))
    }
}

/// Whether `stream` is served by a process of this user, in a state
/// directory of this user's that no-one else may write: otherwise
/// whatever listens there could read what is sent to it.
fn served_by_owner(state_dir: &Path, stream: &UnixStream) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    let me = nix::unistd::geteuid().as_raw();
    let Ok(dir) = std::fs::metadata(state_dir) else {
        return false;
    };
    let peer = stream.peer_cred().map(|cred| cred.uid());
    dir.uid() == me && dir.mode() & 0o022 == 0 && matches!(peer, Ok(uid) if uid == me)
}
