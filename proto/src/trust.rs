//! The organisation's chain of trust: the types generated from
//! `proto/convene/trust/v1/trust.proto`, and the exact bytes each signature
//! in the chain covers.
//!
//! Signatures cover a domain label and the raw body bytes as they travel,
//! never re-encoded protobuf, so that two implementations cannot disagree
//! about what was signed.

#[allow(missing_docs, clippy::all, clippy::pedantic)]
mod generated {
    include!(concat!(env!("OUT_DIR"), "/convene.trust.v1.rs"));
}

pub use generated::*;

/// What a signature in the chain vouches for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignaturePurpose {
    /// The authority certifies a user ([`UserCertificate`]).
    UserCertificate,
    /// An invite key binds a user's identity key ([`IdentityBinding`]).
    IdentityBinding,
    /// A user's identity key certifies a device ([`DeviceCertificate`]).
    DeviceCertificate,
    /// The authority revokes a device or suspends a user ([`Revocation`]).
    Revocation,
    /// The authority lets a staff member certify users
    /// ([`StaffDelegation`]).
    StaffDelegation,
    /// A user describes themselves ([`Profile`]).
    Profile,
}

impl SignaturePurpose {
    fn label(self) -> &'static [u8] {
        match self {
            SignaturePurpose::UserCertificate => b"user-certificate",
            SignaturePurpose::IdentityBinding => b"identity-binding",
            SignaturePurpose::DeviceCertificate => b"device-certificate",
            SignaturePurpose::Revocation => b"revocation",
            SignaturePurpose::StaffDelegation => b"staff-delegation",
            SignaturePurpose::Profile => b"profile",
        }
    }
}

/// The bytes signed for `body` with this purpose:
/// `"convene/trust/v1\0" || purpose || "\0" || body`.
pub fn signed_bytes(purpose: SignaturePurpose, body: &[u8]) -> Vec<u8> {
    let label = purpose.label();
    let mut out = Vec::with_capacity(18 + label.len() + body.len());
    out.extend_from_slice(b"convene/trust/v1\0");
    out.extend_from_slice(label);
    out.push(0);
    out.extend_from_slice(body);
    out
}

/// Reads a signed user certificate without verifying it: for the relay,
/// which only needs to know whose it is and when it expires. `None` when
/// the bytes are not one.
pub fn read_user_certificate(signed: &[u8]) -> Option<UserCertificate> {
    use prost::Message;
    let signed = Signed::decode(signed).ok()?;
    UserCertificate::decode(signed.body.as_slice()).ok()
}

/// The encoded, signed user certificate a credential chain carries,
/// unverified. `None` when the bytes are not a chain.
pub fn chain_user_certificate(chain: &[u8]) -> Option<Vec<u8>> {
    use prost::Message;
    let chain = CredentialChain::decode(chain).ok()?;
    Some(chain.user_certificate?.encode_to_vec())
}

/// The device key and user id a credential chain's device certificate
/// names, unverified.
pub fn chain_device(chain: &[u8]) -> Option<(Vec<u8>, String)> {
    use prost::Message;
    let chain = CredentialChain::decode(chain).ok()?;
    let device = DeviceCertificate::decode(chain.device_certificate?.body.as_slice()).ok()?;
    Some((device.device_key, device.user_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purposes_are_separated() {
        let a = signed_bytes(SignaturePurpose::UserCertificate, b"x");
        let b = signed_bytes(SignaturePurpose::DeviceCertificate, b"x");
        assert_ne!(a, b);
        assert!(a.starts_with(b"convene/trust/v1\0user-certificate\0"));
        assert!(a.ends_with(b"x"));
    }
}
