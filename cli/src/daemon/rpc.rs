//! The JSON-RPC 2.0 messages the daemon and its callers exchange, one per
//! line (newline-delimited JSON) on the daemon's socket, and the errors a
//! caller is given. See docs/JSON-RPC.md.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Longest request line the daemon accepts: a message's text is far
/// shorter.
pub const MAX_LINE_BYTES: usize = 1 << 20;
/// Longest answer line the daemon sends and a caller accepts; a longer
/// answer (a `read` of many long messages) is refused as such, asking for
/// less.
pub const MAX_ANSWER_BYTES: usize = 64 << 20;

/// JSON-RPC 2.0 error codes (section 5.1 of the specification).
pub mod code {
    /// The line is not JSON.
    pub const PARSE_ERROR: i64 = -32700;
    /// The JSON is not a request.
    pub const INVALID_REQUEST: i64 = -32600;
    /// No such method.
    pub const METHOD_NOT_FOUND: i64 = -32601;
    /// The method's params are not what it takes.
    pub const INVALID_PARAMS: i64 = -32602;
    /// The call ran and failed; `data.code` says how, in the CLI's
    /// `--json` error codes.
    pub const CALL_FAILED: i64 = -32000;
}

/// A request, or a notification when it has no `id`. Its `Debug` leaves
/// the params out (they can hold a link code).
#[derive(Deserialize)]
pub struct Request {
    pub jsonrpc: String,
    pub method: String,
    #[serde(default)]
    pub params: Option<Value>,
    /// `None` when the member is absent (a notification); `Some(Null)`
    /// for `"id": null`, which is answered like any id.
    #[serde(default, deserialize_with = "present")]
    pub id: Option<Value>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// A member that is present, even as `null`.
fn present<'de, D: serde::Deserializer<'de>>(value: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(value).map(Some)
}

/// What the daemon writes: a response (`id` set) or a notification
/// (`method` set). Its `Debug` leaves results and params out (an invite
/// code, a message's text).
#[derive(Serialize, Deserialize)]
pub struct Outgoing {
    pub jsonrpc: String,
    /// `Some(Null)` for an answer to a request whose id could not be read.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub id: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorObject>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<Value>,
}

impl std::fmt::Debug for Outgoing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outgoing")
            .field("id", &self.id)
            .field("method", &self.method)
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

impl Outgoing {
    /// A successful response.
    pub fn result(id: Value, result: Value) -> Outgoing {
        Outgoing {
            result: Some(result),
            ..Outgoing::to(Some(id))
        }
    }

    /// A failed response (`id` is `null` when the request's could not be
    /// read).
    pub fn error(id: Option<Value>, error: ErrorObject) -> Outgoing {
        Outgoing {
            error: Some(error),
            ..Outgoing::to(Some(id.unwrap_or(Value::Null)))
        }
    }

    /// A notification from the daemon.
    pub fn notification(method: &str, params: Value) -> Outgoing {
        Outgoing {
            method: Some(method.to_string()),
            params: Some(params),
            ..Outgoing::to(None)
        }
    }

    fn to(id: Option<Value>) -> Outgoing {
        Outgoing {
            jsonrpc: "2.0".into(),
            id,
            result: None,
            error: None,
            method: None,
            params: None,
        }
    }

    /// The message as one line, without its newline.
    pub fn line(&self) -> String {
        // A struct of strings and JSON values always serialises.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// A JSON-RPC error object.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorObject {
    pub code: i64,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<ErrorData>,
}

/// What an error object carries beyond JSON-RPC's own code.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorData {
    /// The stable code `--json` gives for the same failure
    /// (`unknown_group`, `relay_unreachable`, ...).
    pub code: String,
}

impl ErrorObject {
    /// An error of JSON-RPC itself.
    pub fn protocol(code: i64, message: impl Into<String>) -> ErrorObject {
        ErrorObject {
            code,
            message: message.into(),
            data: None,
        }
    }

    /// A call that ran and failed with the CLI's error `code`.
    pub fn failed(code: &str, message: String) -> ErrorObject {
        ErrorObject {
            code: code::CALL_FAILED,
            message,
            data: Some(ErrorData { code: code.into() }),
        }
    }
}

/// A call the daemon ran and that failed: its stable code and its
/// sentence, as the daemon gave them.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct CallFailed {
    pub code: String,
    pub message: String,
}

/// What stops a command from using a running daemon.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The command needs the state directory to itself.
    #[error("another convene process (`convene daemon` or `convene listen`) holds this state directory and serves it on {socket}; stop it first (Ctrl-C where it runs) to {what}")]
    Running { socket: String, what: &'static str },
    /// The daemon went away or broke the protocol mid-call.
    #[error("the convene daemon stopped answering ({0}); run the command again, or stop the daemon and run it alone")]
    Lost(String),
    /// The socket cannot be made.
    #[error("cannot listen on {socket}: {reason}")]
    Listen { socket: String, reason: String },
}

impl DaemonError {
    /// The stable `--json` code.
    pub fn code(&self) -> &'static str {
        match self {
            DaemonError::Running { .. } => "daemon_running",
            DaemonError::Lost(_) => "daemon_lost",
            DaemonError::Listen { .. } => "daemon_socket",
        }
    }
}
