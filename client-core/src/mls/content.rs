//! What an application message's plaintext holds, once MLS has decrypted
//! it: the one decoder of member-written bytes outside MLS itself, so it is
//! a function of its own that the fuzz targets can reach. Every bound of
//! every kind is checked here, before anything is stored or shown.

use bytes::Bytes;
use convene_proto::content::{content, Content};
use prost::Message;

use super::MlsError;
use crate::help::{HelpOfferBody, HelpRequestBody, IntroductionBody, RequestId};

/// The longest text a message may carry, in bytes.
pub const MAX_TEXT_BYTES: usize = 64 * 1024;

/// A decrypted application message, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadContent {
    /// The sender's id for the message; receivers show it once per sender.
    pub message_id: Bytes,
    /// The sender's clock when it was written (informational).
    pub sent_at_ms: u64,
    /// What it carries.
    pub body: ContentBody,
}

/// What a decrypted application message carries.
#[derive(Debug, Clone, PartialEq)]
pub enum ContentBody {
    /// A text people read.
    Text(String),
    /// Network keys (in the network channel only), each 32 bytes with the
    /// epoch it was made in, at most [`crate::directory::MAX_NETWORK_KEYS`];
    /// zeroized when dropped.
    NetworkKeys(crate::directory::NetworkKeyRing),
    /// A help request.
    HelpRequest(HelpRequestBody),
    /// An offer answering a help request.
    HelpOffer(HelpOfferBody),
    /// A help request closed.
    HelpClose(RequestId),
    /// The note of an introduction.
    Introduction(IntroductionBody),
}

/// Reads decrypted plaintext: a known kind within its bounds, or a typed
/// refusal (never a panic) for anything else.
pub fn read_content(plaintext: &[u8]) -> Result<ReadContent, MlsError> {
    let content = Content::decode(plaintext)
        .map_err(|e| MlsError::Invalid(format!("message content: {e}")))?;
    let invalid = |what: String| MlsError::Invalid(what);
    let body = match content.body {
        Some(content::Body::Text(text)) if text.text.len() <= MAX_TEXT_BYTES => {
            ContentBody::Text(text.text)
        }
        Some(content::Body::Text(_)) => return Err(invalid("a text over the size limit".into())),
        Some(content::Body::NetworkKeys(keys))
            if keys.keys.len() <= crate::directory::MAX_NETWORK_KEYS
                && keys.keys.iter().all(|k| k.key.len() == 32) =>
        {
            let ring = crate::directory::NetworkKeyRing {
                entries: keys
                    .keys
                    .iter()
                    .map(|k| crate::directory::NetworkKeyEntry {
                        key: k.key.to_vec(),
                        epoch: k.epoch,
                    })
                    .collect(),
                removal_epoch: keys.removal_epoch,
            };
            // The decoded message's copies go as soon as they are read.
            drop(keys);
            ContentBody::NetworkKeys(ring)
        }
        Some(content::Body::NetworkKeys(_)) => {
            return Err(invalid("network keys out of bounds".into()))
        }
        Some(content::Body::HelpRequest(request)) => ContentBody::HelpRequest(
            HelpRequestBody::from_wire(&request, crate::now_ms())
                .map_err(|e| invalid(format!("help request: {e}")))?,
        ),
        Some(content::Body::HelpOffer(offer)) => ContentBody::HelpOffer(
            HelpOfferBody::from_wire(&offer).map_err(|e| invalid(format!("offer: {e}")))?,
        ),
        Some(content::Body::HelpClose(close)) => ContentBody::HelpClose(
            RequestId::from_field(&close.request_id).map_err(|e| invalid(format!("close: {e}")))?,
        ),
        Some(content::Body::Introduction(intro)) => ContentBody::Introduction(
            IntroductionBody::from_wire(&intro)
                .map_err(|e| invalid(format!("introduction: {e}")))?,
        ),
        None => {
            return Err(invalid(
                "a message of a kind this client does not know".into(),
            ))
        }
    };
    Ok(ReadContent {
        message_id: content.message_id,
        sent_at_ms: content.sent_at_ms,
        body,
    })
}
