//! One [`Envelope`] per binary websocket message: encoding, decoding and the
//! small constructors both ends use to build envelopes.

use bytes::Bytes;
use prost::Message;

use crate::relay::{
    envelope::Body, push, request, response, Envelope, Error, ErrorCode, ProtocolVersion, Push,
    Request, Response,
};

/// The protocol version this crate speaks.
pub const VERSION: ProtocolVersion = ProtocolVersion::V1;

/// Why a received frame was refused.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The bytes are not a protobuf `Envelope`.
    #[error("frame is not a valid envelope")]
    Decode(#[from] prost::DecodeError),
    /// The envelope names a protocol version this end does not speak.
    #[error("unsupported protocol version {0}")]
    UnsupportedVersion(i32),
    /// The envelope carries no body.
    #[error("envelope has no body")]
    EmptyBody,
}

/// Encodes an envelope into the bytes of one websocket message.
pub fn encode_envelope(envelope: &Envelope) -> Bytes {
    Bytes::from(envelope.encode_to_vec())
}

/// Decodes one websocket message, checking the version and that a body is
/// present. `bytes` is shared, not copied, by the payload fields.
pub fn decode_envelope(bytes: Bytes) -> Result<Envelope, FrameError> {
    let envelope = Envelope::decode(bytes)?;
    if envelope.version != VERSION as i32 {
        return Err(FrameError::UnsupportedVersion(envelope.version));
    }
    if envelope.body.is_none() {
        return Err(FrameError::EmptyBody);
    }
    Ok(envelope)
}

impl Envelope {
    /// A request with the given id.
    pub fn request(request_id: u64, kind: request::Kind) -> Self {
        Envelope {
            version: VERSION as i32,
            request_id,
            body: Some(Body::Request(Request { kind: Some(kind) })),
        }
    }

    /// A response to the request with the given id.
    pub fn response(request_id: u64, result: response::Result) -> Self {
        Envelope {
            version: VERSION as i32,
            request_id,
            body: Some(Body::Response(Response {
                result: Some(result),
            })),
        }
    }

    /// A push (request id 0).
    pub fn push(kind: push::Kind) -> Self {
        Envelope {
            version: VERSION as i32,
            request_id: 0,
            body: Some(Body::Push(Push { kind: Some(kind) })),
        }
    }
}

impl Error {
    /// An error with a code and a sentence for humans.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Error {
            code: code as i32,
            message: message.into(),
            current_epoch: 0,
            retry_after_ms: 0,
            revocation: Default::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::relay::Ping;

    #[test]
    fn round_trip() {
        let env = Envelope::request(7, request::Kind::Ping(Ping {}));
        let decoded = decode_envelope(encode_envelope(&env)).unwrap();
        assert_eq!(decoded, env);
    }

    #[test]
    fn refuses_other_versions_and_empty_bodies() {
        let mut env = Envelope::request(7, request::Kind::Ping(Ping {}));
        env.version = 2;
        assert!(matches!(
            decode_envelope(encode_envelope(&env)),
            Err(FrameError::UnsupportedVersion(2))
        ));
        env.version = 1;
        env.body = None;
        assert!(matches!(
            decode_envelope(encode_envelope(&env)),
            Err(FrameError::EmptyBody)
        ));
        assert!(matches!(
            decode_envelope(Bytes::from_static(&[0xff, 0xff, 0xff])),
            Err(FrameError::Decode(_))
        ));
    }
}
