//! What an application message's plaintext holds, once MLS has decrypted
//! it: the one decoder of member-written bytes outside MLS itself, so it is
//! a function of its own that the fuzz targets can reach.

use bytes::Bytes;
use convene_proto::content::{content, Content};
use prost::Message;

use super::MlsError;

/// The longest text a message may carry, in bytes.
pub const MAX_TEXT_BYTES: usize = 64 * 1024;

/// A text message as a member wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextContent {
    /// The sender's id for the message; receivers show it once per sender.
    pub message_id: Bytes,
    /// The sender's clock when it was written (informational).
    pub sent_at_ms: u64,
    /// The text.
    pub text: String,
}

/// What a decrypted application message carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadContent {
    /// A text people read.
    Text(TextContent),
    /// Network keys (in the network channel only): each 32 bytes, at most
    /// [`crate::directory::MAX_NETWORK_KEYS`], the current one last.
    NetworkKeys(Vec<Vec<u8>>),
}

/// Reads decrypted plaintext: a text within the size limit, network keys
/// within theirs, or a typed refusal (never a panic) for anything else.
pub fn read_content(plaintext: &[u8]) -> Result<ReadContent, MlsError> {
    let content = Content::decode(plaintext)
        .map_err(|e| MlsError::Invalid(format!("message content: {e}")))?;
    match content.body {
        Some(content::Body::Text(text)) if text.text.len() <= MAX_TEXT_BYTES => {
            Ok(ReadContent::Text(TextContent {
                message_id: content.message_id,
                sent_at_ms: content.sent_at_ms,
                text: text.text,
            }))
        }
        Some(content::Body::Text(_)) => Err(MlsError::Invalid("a text over the size limit".into())),
        Some(content::Body::NetworkKeys(keys))
            if keys.keys.len() <= crate::directory::MAX_NETWORK_KEYS
                && keys.keys.iter().all(|k| k.len() == 32) =>
        {
            Ok(ReadContent::NetworkKeys(
                keys.keys.iter().map(|k| k.to_vec()).collect(),
            ))
        }
        Some(content::Body::NetworkKeys(_)) => {
            Err(MlsError::Invalid("network keys out of bounds".into()))
        }
        None => Err(MlsError::Invalid(
            "a message of a kind this client does not know".into(),
        )),
    }
}
