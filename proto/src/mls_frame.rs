//! The few fields of MLS framing that the relay reads in the clear.
//!
//! The relay cannot decrypt anything, but RFC 9420 keeps some of every
//! message's framing in the clear so that a Delivery Service can do its job
//! (RFC 9420, section 6.2; RFC 9750, section 5): the group id and the epoch
//! of every `PublicMessage` and `PrivateMessage`, and the content type. The
//! relay uses them to refuse a message built on an epoch that is not the
//! group's current one (a reader who joined at the new epoch could never
//! decrypt it), and to check that a message names the group it is sent to.
//! It also reads a KeyPackage's lifetime (RFC 9420, section 10 and 7.2) so
//! that it never hands out an expired one.
//!
//! Only the leading fields are parsed, with the TLS presentation language's
//! variable-length vectors (RFC 9420, section 2.1.2); nothing here
//! authenticates anything, which is the clients' job. Every read is bounds
//! checked: malformed input is an [`MlsFrameError`], never a panic.

/// `ProtocolVersion` mls10 (RFC 9420, section 6).
pub const MLS10: u16 = 1;

/// `WireFormat` values (RFC 9420, section 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireFormat {
    /// `mls_public_message` (1): signed, not encrypted.
    PublicMessage,
    /// `mls_private_message` (2): encrypted.
    PrivateMessage,
}

/// `ContentType` values (RFC 9420, section 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentType {
    /// `application` (1).
    Application,
    /// `proposal` (2).
    Proposal,
    /// `commit` (3).
    Commit,
}

impl ContentType {
    fn from_wire(value: u8) -> Result<Self, MlsFrameError> {
        match value {
            1 => Ok(ContentType::Application),
            2 => Ok(ContentType::Proposal),
            3 => Ok(ContentType::Commit),
            other => Err(MlsFrameError::Unsupported(format!("content type {other}"))),
        }
    }

    fn to_wire(self) -> u8 {
        match self {
            ContentType::Application => 1,
            ContentType::Proposal => 2,
            ContentType::Commit => 3,
        }
    }
}

/// The clear fields at the front of an `MLSMessage` carrying a
/// `PublicMessage` or `PrivateMessage`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageHeader<'a> {
    /// Whether the message is a `PublicMessage` or a `PrivateMessage`.
    pub wire_format: WireFormat,
    /// The MLS group id.
    pub group_id: &'a [u8],
    /// The epoch the message was built in.
    pub epoch: u64,
    /// What the message carries: application data, a proposal or a commit.
    pub content_type: ContentType,
}

/// A KeyPackage's validity (RFC 9420, section 7.2), in seconds since the
/// Unix epoch. openmls takes a KeyPackage as valid strictly between the two
/// ends, and [`Lifetime::has_ended`] agrees at the end that matters here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetime {
    /// Start of the validity, seconds since the Unix epoch.
    pub not_before_secs: u64,
    /// End of the validity, seconds since the Unix epoch.
    pub not_after_secs: u64,
}

impl Lifetime {
    /// Whether the lifetime has ended at `now_ms` (milliseconds since the
    /// Unix epoch), as MLS clients judge it: at `not_after` it has.
    pub fn has_ended(&self, now_ms: u64) -> bool {
        now_ms / 1000 >= self.not_after_secs
    }

    /// A lifetime from one hour ago (the margin openmls gives) to
    /// `seconds` from `now_ms`.
    pub fn starting_at(now_ms: u64, seconds: u64) -> Lifetime {
        let now = now_ms / 1000;
        Lifetime {
            not_before_secs: now.saturating_sub(3600),
            not_after_secs: now.saturating_add(seconds),
        }
    }
}

/// Why the framing could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MlsFrameError {
    /// The bytes end before the field they must hold.
    #[error("the MLS message is cut short")]
    Truncated,
    /// A length prefix is not a valid variable-length integer.
    #[error("the MLS message has an invalid length prefix")]
    BadLength,
    /// A version, wire format or type this relay does not handle.
    #[error("unsupported MLS framing: {0}")]
    Unsupported(String),
}

/// Reads the header of an `MLSMessage` that carries a `PublicMessage` or a
/// `PrivateMessage`.
pub fn read_message_header(bytes: &[u8]) -> Result<MessageHeader<'_>, MlsFrameError> {
    let mut reader = Reader(bytes);
    let version = reader.u16()?;
    if version != MLS10 {
        return Err(MlsFrameError::Unsupported(format!(
            "protocol version {version}"
        )));
    }
    match reader.u16()? {
        1 => {
            // FramedContent: group_id, epoch, sender, authenticated_data,
            // content_type.
            let group_id = reader.vector()?;
            let epoch = reader.u64()?;
            match reader.u8()? {
                // member, external: a u32 index follows.
                1 | 2 => {
                    reader.u32()?;
                }
                // new_member_proposal, new_member_commit: nothing follows.
                3 | 4 => {}
                other => return Err(MlsFrameError::Unsupported(format!("sender type {other}"))),
            }
            reader.vector()?;
            let content_type = ContentType::from_wire(reader.u8()?)?;
            Ok(MessageHeader {
                wire_format: WireFormat::PublicMessage,
                group_id,
                epoch,
                content_type,
            })
        }
        2 => {
            let group_id = reader.vector()?;
            let epoch = reader.u64()?;
            let content_type = ContentType::from_wire(reader.u8()?)?;
            Ok(MessageHeader {
                wire_format: WireFormat::PrivateMessage,
                group_id,
                epoch,
                content_type,
            })
        }
        other => Err(MlsFrameError::Unsupported(format!("wire format {other}"))),
    }
}

/// What the relay reads of a KeyPackage's leaf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPackageLeaf<'a> {
    /// The leaf's signature key: a Convene device key.
    pub signature_key: &'a [u8],
    /// The KeyPackage's validity, as its leaf states it.
    pub lifetime: Lifetime,
}

/// Reads the leaf of a TLS-serialised `KeyPackage` (RFC 9420, section 10;
/// not wrapped in an `MLSMessage`) whose leaf uses a basic or X.509
/// credential.
pub fn read_key_package(bytes: &[u8]) -> Result<KeyPackageLeaf<'_>, MlsFrameError> {
    let mut reader = Reader(bytes);
    let version = reader.u16()?;
    if version != MLS10 {
        return Err(MlsFrameError::Unsupported(format!(
            "protocol version {version}"
        )));
    }
    reader.u16()?; // cipher_suite
    reader.vector()?; // init_key
    reader.vector()?; // leaf_node.encryption_key
    let signature_key = reader.vector()?;
    match reader.u16()? {
        // basic: identity<V>; x509: certificates<V>.
        1 | 2 => {
            reader.vector()?;
        }
        other => {
            return Err(MlsFrameError::Unsupported(format!(
                "credential type {other}"
            )))
        }
    }
    // capabilities: versions, cipher_suites, extensions, proposals,
    // credentials.
    for _ in 0..5 {
        reader.vector()?;
    }
    match reader.u8()? {
        1 => Ok(KeyPackageLeaf {
            signature_key,
            lifetime: Lifetime {
                not_before_secs: reader.u64()?,
                not_after_secs: reader.u64()?,
            },
        }),
        other => Err(MlsFrameError::Unsupported(format!(
            "a KeyPackage leaf with source {other}"
        ))),
    }
}

/// Frames opaque bytes as an `MLSMessage` carrying a `PrivateMessage` of
/// `group_id` at `epoch`: exactly the header the relay reads, around
/// bytes it cannot read anyway. For tests and load generators that drive
/// the relay without MLS state of their own.
pub fn frame_private_message(
    group_id: &[u8],
    epoch: u64,
    content_type: ContentType,
    body: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + group_id.len() + 24);
    out.extend_from_slice(&MLS10.to_be_bytes());
    out.extend_from_slice(&2u16.to_be_bytes());
    write_vector(&mut out, group_id);
    out.extend_from_slice(&epoch.to_be_bytes());
    out.push(content_type.to_wire());
    write_vector(&mut out, &[]); // authenticated_data
    write_vector(&mut out, &[0; 4]); // encrypted_sender_data
    write_vector(&mut out, body); // ciphertext
    out
}

/// A TLS-serialised `KeyPackage` whose leaf holds `signature_key`, a basic
/// credential with `identity` and `lifetime`, with empty keys, extensions
/// and signature: exactly what the relay reads of a KeyPackage, for tests
/// and load generators. No MLS client would accept it.
pub fn frame_key_package(signature_key: &[u8], identity: &[u8], lifetime: Lifetime) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + signature_key.len() + identity.len());
    out.extend_from_slice(&MLS10.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes()); // cipher_suite
    write_vector(&mut out, &[]); // init_key
    write_vector(&mut out, &[]); // leaf_node.encryption_key
    write_vector(&mut out, signature_key);
    out.extend_from_slice(&1u16.to_be_bytes()); // basic credential
    write_vector(&mut out, identity);
    for _ in 0..5 {
        write_vector(&mut out, &[]); // capabilities
    }
    out.push(1); // leaf_node_source: key_package
    out.extend_from_slice(&lifetime.not_before_secs.to_be_bytes());
    out.extend_from_slice(&lifetime.not_after_secs.to_be_bytes());
    write_vector(&mut out, &[]); // leaf extensions
    write_vector(&mut out, &[]); // leaf signature
    write_vector(&mut out, &[]); // KeyPackage extensions
    write_vector(&mut out, &[]); // KeyPackage signature
    out
}

/// The ciphertext of an `MLSMessage` carrying a `PrivateMessage`: the
/// opaque body that [`frame_private_message`] framed.
pub fn private_message_body(bytes: &[u8]) -> Result<&[u8], MlsFrameError> {
    let header = read_message_header(bytes)?;
    if header.wire_format != WireFormat::PrivateMessage {
        return Err(MlsFrameError::Unsupported("a public message".into()));
    }
    let mut reader = Reader(bytes);
    reader.take(4)?; // version, wire format
    reader.vector()?; // group id
    reader.take(9)?; // epoch, content type
    reader.vector()?; // authenticated_data
    reader.vector()?; // encrypted_sender_data
    reader.vector()
}

/// Appends `bytes` with its variable-length prefix (RFC 9420, 2.1.2).
fn write_vector(out: &mut Vec<u8>, bytes: &[u8]) {
    let len = bytes.len();
    if len < 1 << 6 {
        out.push(len as u8);
    } else if len < 1 << 14 {
        out.extend_from_slice(&((len as u16) | 0x4000).to_be_bytes());
    } else {
        // Frames are far below 2^30 bytes; larger is cut to what fits.
        let len = len.min((1 << 30) - 1);
        out.extend_from_slice(&((len as u32) | 0x8000_0000).to_be_bytes());
    }
    out.extend_from_slice(&bytes[..len.min(bytes.len())]);
}

/// A cursor over bytes, every read bounds checked.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], MlsFrameError> {
        if self.0.len() < n {
            return Err(MlsFrameError::Truncated);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, MlsFrameError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, MlsFrameError> {
        let mut raw = [0; 2];
        raw.copy_from_slice(self.take(2)?);
        Ok(u16::from_be_bytes(raw))
    }

    fn u32(&mut self) -> Result<u32, MlsFrameError> {
        let mut raw = [0; 4];
        raw.copy_from_slice(self.take(4)?);
        Ok(u32::from_be_bytes(raw))
    }

    fn u64(&mut self) -> Result<u64, MlsFrameError> {
        let mut raw = [0; 8];
        raw.copy_from_slice(self.take(8)?);
        Ok(u64::from_be_bytes(raw))
    }

    /// A vector with a variable-length size prefix, in its minimal
    /// encoding (RFC 9420, section 2.1.2).
    fn vector(&mut self) -> Result<&'a [u8], MlsFrameError> {
        let first = self.u8()?;
        let len = match first >> 6 {
            0 => u64::from(first & 0x3f),
            1 => {
                let len = u64::from(first & 0x3f) << 8 | u64::from(self.u8()?);
                if len < 1 << 6 {
                    return Err(MlsFrameError::BadLength);
                }
                len
            }
            2 => {
                let rest = self.take(3)?;
                let len = u64::from(first & 0x3f) << 24
                    | u64::from(rest[0]) << 16
                    | u64::from(rest[1]) << 8
                    | u64::from(rest[2]);
                if len < 1 << 14 {
                    return Err(MlsFrameError::BadLength);
                }
                len
            }
            _ => return Err(MlsFrameError::BadLength),
        };
        let len = usize::try_from(len).map_err(|_| MlsFrameError::BadLength)?;
        self.take(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_framed_private_message_reads_back() {
        for body_len in [0usize, 63, 64, 16_383, 16_384, 70_000] {
            let body = vec![7u8; body_len];
            let frame = frame_private_message(b"group", 42, ContentType::Application, &body);
            assert_eq!(private_message_body(&frame).unwrap(), body.as_slice());
            let header = read_message_header(&frame).unwrap();
            assert_eq!(
                header,
                MessageHeader {
                    wire_format: WireFormat::PrivateMessage,
                    group_id: b"group",
                    epoch: 42,
                    content_type: ContentType::Application,
                }
            );
        }
    }

    #[test]
    fn a_framed_key_package_reads_back() {
        let lifetime = Lifetime::starting_at(10_000_000, 60);
        let key_package = frame_key_package(&[7; 32], b"kp-1", lifetime);
        let leaf = read_key_package(&key_package).unwrap();
        assert_eq!(
            (leaf.signature_key, leaf.lifetime),
            (&[7u8; 32][..], lifetime)
        );
        assert!(!lifetime.has_ended(10_059_999));
        assert!(lifetime.has_ended(10_060_000));
    }

    #[test]
    fn a_public_message_header_reads() {
        let mut frame = vec![0, 1, 0, 1, 3];
        frame.extend_from_slice(b"abc");
        frame.extend_from_slice(&9u64.to_be_bytes());
        frame.extend_from_slice(&[2, 0, 0, 0, 0]); // external sender 0
        frame.push(0); // no authenticated data
        frame.push(2); // proposal
        let header = read_message_header(&frame).unwrap();
        assert_eq!(header.wire_format, WireFormat::PublicMessage);
        assert_eq!((header.group_id, header.epoch), (&b"abc"[..], 9));
        assert_eq!(header.content_type, ContentType::Proposal);
    }

    #[test]
    fn malformed_frames_are_errors() {
        let good = frame_private_message(b"g", 1, ContentType::Commit, b"x");
        // The header is the first 15 bytes: version, wire format, group id,
        // epoch, content type.
        for cut in 0..15 {
            assert!(read_message_header(&good[..cut]).is_err(), "cut at {cut}");
        }
        // A length prefix that is not minimal, and the reserved prefix.
        assert_eq!(
            read_message_header(&[0, 1, 0, 2, 0x40, 1, 0]),
            Err(MlsFrameError::BadLength)
        );
        assert_eq!(
            read_message_header(&[0, 1, 0, 2, 0xc0]),
            Err(MlsFrameError::BadLength)
        );
        assert!(matches!(
            read_message_header(&[0, 1, 0, 3]),
            Err(MlsFrameError::Unsupported(_))
        ));
        assert!(matches!(
            read_message_header(&[0, 2, 0, 2]),
            Err(MlsFrameError::Unsupported(_))
        ));
    }
}
