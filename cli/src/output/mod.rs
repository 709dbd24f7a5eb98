//! Printing: text for people, one JSON document per result for scripts
//! (`--json`). Errors go to standard error as text, or as
//! `{"error": {"code", "message"}}` on standard output with `--json`.

use std::io::Write;

use anyhow::Result;
use convene_client::ClientError;
use serde_json::{json, Value};

use crate::shapes::{GroupShape, IdentityShape, MessageShape};

mod events;
mod people;
mod requests;
mod text;

pub use events::event_line;
pub use text::render;

/// Standard output was closed by whoever read it (`convene listen |
/// head -1`): the command stops there and exits quietly, as a pipeline
/// expects.
#[derive(Debug)]
pub struct OutputClosed;

impl std::fmt::Display for OutputClosed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("standard output was closed")
    }
}

impl std::error::Error for OutputClosed {}

/// Writes one line to standard output and flushes it, so that a reader
/// sees each line as it comes.
///
/// # Errors
/// [`OutputClosed`] when the reader has gone (EPIPE), any other write
/// error with its cause.
pub fn line(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{text}").and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => Err(OutputClosed.into()),
        Err(err) => Err(anyhow::Error::new(err).context("cannot write to standard output")),
    }
}

/// Prints `value` as JSON, or `text` for people.
///
/// # Errors
/// As [`line`], and `text`'s own.
pub fn print(json: bool, value: &Value, text: impl FnOnce() -> Result<String>) -> Result<()> {
    if json {
        line(&value.to_string())
    } else {
        line(&text()?)
    }
}

/// `printed`, where what was printed is the only copy of something the
/// user must act on (an invite code, a link code): a reader that stopped
/// reading loses it, so that is a failure, not a quiet end.
pub fn must_be_read(printed: Result<()>, what: &str) -> Result<()> {
    match printed {
        Err(err) if err.is::<OutputClosed>() => Err(anyhow::anyhow!(
            "standard output was closed before the {what} could be shown"
        )),
        other => other,
    }
}

/// Prints a failure: on standard error for people, or as a JSON document
/// on standard output with `--json`. Where neither can be written there is
/// no one left to tell, and the exit status says it.
pub fn error(json: bool, err: &anyhow::Error) {
    let code = error_code(err);
    let message = chain_text(err);
    if json {
        let document = json!({ "error": { "code": code, "message": message } });
        let _ = line(&document.to_string());
    } else {
        let mut out = std::io::stderr().lock();
        let _ = writeln!(out, "{}", error_line(&message));
        if let Some(hint) = hint(code) {
            let _ = writeln!(out, "hint: {hint}");
        }
    }
}

/// The stable code `--json` gives for `err`: the same for the same
/// failure from every command, and through the daemon.
pub fn error_code(err: &anyhow::Error) -> &str {
    if let Some(err) = err.downcast_ref::<ClientError>() {
        return err.code();
    }
    if let Some(err) = err.downcast_ref::<crate::daemon::rpc::CallFailed>() {
        return &err.code;
    }
    if let Some(err) = err.downcast_ref::<crate::daemon::rpc::DaemonError>() {
        return err.code();
    }
    "error"
}

/// The line a person reads for an error whose causes are `message`. The
/// text may carry the relay's words (a refusal's message, a close reason)
/// or a name from another member's credential, so it goes through the one
/// safe path.
fn error_line(message: &str) -> String {
    format!("error: {}", safe(message))
}

/// An error and its causes, joined by ": ", leaving out a cause whose text
/// an outer error already shows. Convene's own errors never print their
/// source; some of other crates' do, and keep it as their source too.
pub fn chain_text(err: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in err.chain() {
        let part = cause.to_string();
        if text.contains(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}

/// A note for people on standard error (never for scripts); lost, not a
/// panic, if standard error is closed.
pub fn note(text: &str) {
    // A note can carry the relay's words (a refusal) or come from the
    // daemon: it goes through the safe path too.
    let _ = writeln!(std::io::stderr().lock(), "note: {}", safe(text));
}

/// What to do about an error whose cause is this device's own state.
fn hint(code: &str) -> Option<&'static str> {
    match code {
        "not_enrolled" => Some(
            "run `convene enrol <invite>`, or `convene link <your user id>` on a new device \
             of yours; `--state-dir` chooses another state directory",
        ),
        "revoked" => Some(
            "if this is still your device, link it again (`convene link <your user id>` with a \
             new --state-dir) from one of your others; if your account was suspended, ask the \
             programme's staff",
        ),
        "unknown_user" => Some(
            "`convene people <name>` finds people by name, organisation or topic, with their \
             user ids",
        ),
        "state_copied" => Some(
            "if this is the copy to keep (the old device is gone), run `convene take-over`; \
             otherwise link this device again with `convene link` and remove the old one",
        ),
        _ => None,
    }
}

/// One line per item, or `none` when there are none.
pub fn lines_or<T>(items: &[T], none: &str, line: impl Fn(&T) -> String) -> String {
    if items.is_empty() {
        return none.to_string();
    }
    items.iter().map(line).collect::<Vec<_>>().join("\n")
}

/// The lines for who a device belongs to.
pub fn identity_text(identity: &IdentityShape) -> String {
    format!(
        "{} ({}), {}, on {}\ndevice {}",
        safe(&identity.user_id),
        safe(&identity.display_name),
        safe(&identity.role),
        safe(&identity.relay),
        safe(&identity.device)
    )
}

/// One line for a group: its id, kind, name, size, managers and this
/// device's standing in it.
pub fn group_line(group: &GroupShape) -> String {
    let label = match group.kind.as_str() {
        "direct" => format!("direct with {}", safe(&group.name)),
        kind => format!("{} \"{}\"", safe(kind), safe(&group.name)),
    };
    let state = if group.managing {
        " (you manage it from outside and cannot read it)".to_string()
    } else if let Some(reason) = &group.stalled {
        format!(
            " (this device cannot follow it right now: {}; it asked to be added back)",
            safe(reason)
        )
    } else if group.active {
        String::new()
    } else if group.kind == "introduction" {
        " (you are no longer in it)".to_string()
    } else {
        " (you were removed)".to_string()
    };
    let managers = if group.managers.is_empty() {
        String::new()
    } else {
        format!(", managed by {}", safe(&group.managers.join(", ")))
    };
    let members = match group.members.len() {
        1 => "1 member".to_string(),
        n => format!("{n} members"),
    };
    format!("{}  {label}, {members}{managers}{state}", safe(&group.id))
}

/// One line for a message, or for a notice of entries lost.
pub fn message_line(message: &MessageShape) -> String {
    if message.lost > 0 {
        let what = match message.lost {
            1 => "1 message or change here".to_string(),
            n => format!("{n} messages or changes here"),
        };
        return format!(
            "[{}] ({what} could not be read on this device)",
            time(message.received_at_ms)
        );
    }
    let sender = safe(&message.sender_shown);
    let request = message
        .request
        .as_deref()
        .map(|id| id.get(..8).unwrap_or(id).to_string())
        .unwrap_or_default();
    // An offer or a close names its request by title where this device
    // knows it, with the id to type.
    let about = match &message.request_title {
        Some(title) => format!("\u{201c}{}\u{201d} ({request})", safe(title)),
        None => request.clone(),
    };
    let said = match message.kind.as_str() {
        "help_request" => format!(
            "{sender} asked the network: {} (`convene requests show {request}`)",
            safe(&message.text)
        ),
        "help_offer" => match &message.passed_on_from {
            Some(from) => format!(
                "{sender} passed on an offer from {} for your request {about}: {}",
                safe(from),
                safe(&message.text)
            ),
            None => format!(
                "{sender} offered help with request {about}: {}",
                safe(&message.text)
            ),
        },
        "help_close" => format!("{sender} closed request {about}"),
        "introduction" => format!("{sender} introduced you: {}", safe(&message.text)),
        _ => format!("{sender}: {}", safe(&message.text)),
    };
    format!("[{}] {said}", time(message.sent_at_ms))
}

/// A time given in ms since the Unix epoch, as RFC 3339 in UTC, to the
/// second.
/// Times come from other members (a message's `sent_at_ms`) and from the
/// relay: one that RFC 3339 cannot write (year 10000 on) is shown as the
/// number it is, never a panic.
pub fn time(ms: u64) -> String {
    /// 9999-12-31T23:59:59Z, the last time RFC 3339 can write.
    const LAST_WRITABLE_MS: u64 = 253_402_300_799_999;
    if ms > LAST_WRITABLE_MS {
        return format!("{ms} ms after 1970");
    }
    let when = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    humantime::format_rfc3339_seconds(when).to_string()
}

/// Text someone else wrote, as it is safe to print (the one path for it;
/// see [`convene_proto::text`]).
pub fn safe(text: &str) -> std::borrow::Cow<'_, str> {
    convene_proto::text::safe_text(text)
}

#[cfg(test)]
mod tests {
    use super::{chain_text, error_line};

    #[test]
    fn a_time_no_calendar_can_write_is_shown_as_a_number() {
        assert_eq!(super::time(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::time(253_402_300_799_999), "9999-12-31T23:59:59Z");
        assert_eq!(super::time(u64::MAX), format!("{} ms after 1970", u64::MAX));
    }

    #[test]
    fn an_error_carrying_the_relays_words_is_shown_safely() {
        let line = error_line("the relay refused the request: \u{1b}[2Jgone\u{202e}");
        assert!(
            !line.contains('\u{1b}') && !line.contains('\u{202e}'),
            "{line:?}"
        );
        assert!(line.starts_with("error: the relay refused the request: "));
    }

    #[derive(Debug)]
    struct Locked;

    impl std::fmt::Display for Locked {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("could not acquire lock")
        }
    }

    impl std::error::Error for Locked {}

    /// Shows its source in its own text, and keeps it as its source too.
    #[derive(Debug)]
    struct CannotOpen(Locked);

    impl std::fmt::Display for CannotOpen {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "cannot open the state: {}", self.0)
        }
    }

    impl std::error::Error for CannotOpen {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn a_cause_an_outer_error_already_shows_is_not_repeated() {
        let err = anyhow::Error::new(CannotOpen(Locked)).context("no device in /tmp/x");
        assert_eq!(
            chain_text(&err),
            "no device in /tmp/x: cannot open the state: could not acquire lock"
        );
    }
}
