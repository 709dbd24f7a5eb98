//! The organisation's chain of trust, with no I/O: issuing certificates,
//! verifying the chain that every MLS credential carries, and safety
//! numbers.
//!
//! The chain (see `proto/convene/trust/v1/trust.proto`):
//! authority key → user certificate → (identity binding, for invited users)
//! → device certificate. A client pins the authority key when it enrols and
//! from then on accepts a member, a KeyPackage or a message sender only if
//! its chain verifies up to that key and ends in the device key the MLS leaf
//! signs with. A relay holds none of these private keys, so it cannot make a
//! chain that verifies.

mod cache;
mod delegation;
mod issue;
mod revocations;
mod safety;
/// The user's identity key: the certificate's subject, or for a user
/// certified at invite time, the key the invite's one-time key bound to
/// them.
fn identity_key_of(
    user: &UserCertificate,
    binding: Option<Signed>,
) -> Result<[u8; 32], TrustError> {
    let subject = key32(&user.subject_key, "user certificate key")?;
    match (user.bound_by_invite, binding) {
        (false, None) => Ok(subject),
        (true, Some(signed_binding)) => {
            let binding: IdentityBinding = decode(&signed_binding, "identity binding")?;
            check_signature(
                &subject,
                SignaturePurpose::IdentityBinding,
                &signed_binding,
                "identity binding",
            )?;
            if binding.user_id != user.user_id {
                return Err(TrustError::Mismatch("identity binding names another user"));
            }
            key32(&binding.identity_key, "identity key")
        }
        (true, None) => Err(TrustError::Malformed("no identity binding")),
        (false, Some(_)) => Err(TrustError::Malformed("unexpected identity binding")),
    }
}

/// The device key the user's identity key certified for `user_id`.
fn certified_device_key(
    signed: Option<Signed>,
    identity_key: &[u8; 32],
    user_id: &str,
) -> Result<[u8; 32], TrustError> {
    let signed = signed.ok_or(TrustError::Malformed("no device certificate"))?;
    let device: DeviceCertificate = decode(&signed, "device certificate")?;
    check_signature(
        identity_key,
        SignaturePurpose::DeviceCertificate,
        &signed,
        "device certificate",
    )?;
    if device.user_id != user_id {
        return Err(TrustError::Mismatch(
            "device certificate names another user",
        ));
    }
    key32(&device.device_key, "device key")
}

#[cfg(test)]
mod tests;

use convene_proto::ids::DevicePublicKey;
use convene_proto::trust::{
    signed_bytes, CredentialChain, DeviceCertificate, IdentityBinding, Revocation,
    Role as WireRole, SignaturePurpose, Signed, UserCertificate,
};
use ed25519_dalek::{Signature, VerifyingKey};
use prost::Message;

pub use delegation::{verify_delegation, Certifier, VerifiedDelegation, DELEGATION_VALIDITY_MS};
pub use issue::{
    bind_identity, invite_public_key, Authority, CertificateTerms, CertifiedChange,
    CertifiedFields, IdentityKey, UserDetails, MAX_COHORT_CHARS, MAX_ORGANISATION_CHARS,
    MAX_PROGRAMME_CHARS, MAX_TITLE_CHARS,
};
pub use revocations::Revocations;
pub use safety::safety_number;

use crate::types::Role;

/// Version of every layout in the chain that this client writes and reads.
pub const CHAIN_VERSION: u32 = 1;

/// The user certificate layout issued: version 2 carries the certified
/// profile fields ([`CertifiedFields`]). Version 1 is still read.
pub const USER_CERTIFICATE_VERSION: u32 = 2;

/// Whether this client reads a user certificate of layout `version`.
fn readable_user_certificate(version: u32) -> bool {
    version == CHAIN_VERSION || version == USER_CERTIFICATE_VERSION
}

/// How far back a new certificate's validity starts: a device whose clock
/// is somewhat slow accepts a user certified a moment ago (certificate
/// authorities backdate for the same reason).
pub const CERTIFICATE_BACKDATE_MS: u64 = 60 * 60 * 1000;

/// How far the clock of the device that dated a certificate (staff's, for a
/// user certificate) and this device's clock may disagree: validity is
/// checked with this much leeway at each end, in milliseconds (15 minutes).
/// A device whose clock is further off than this from the relay's is told
/// (`Event::ClockSkew`).
pub const CLOCK_LEEWAY_MS: u64 = 15 * 60 * 1000;

/// Why a credential chain was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrustError {
    /// The bytes are not a chain of a version this client reads.
    #[error("the credential is not a Convene certificate chain: {0}")]
    Malformed(&'static str),
    /// A signature in the chain does not verify.
    #[error("the {0} is not validly signed")]
    BadSignature(&'static str),
    /// The user certificate was issued by another authority than the pinned one.
    #[error("the credential was not issued by this organisation's authority")]
    UnknownAuthority,
    /// The parts of the chain name different users or keys.
    #[error("the credential's certificates do not fit together: {0}")]
    Mismatch(&'static str),
    /// The user certificate is not valid now (by this device's clock, with
    /// [`CLOCK_LEEWAY_MS`] of leeway).
    #[error("the user's certificate is not valid at this time (is this device's clock right?)")]
    Expired,
    /// The chain is fine but names another device than the MLS leaf.
    #[error("the credential belongs to another device")]
    WrongDevice,
    /// The chain is fine but staff revoked the device, or suspended its
    /// user (a signed revocation this device holds).
    #[error("the device was revoked by the organisation")]
    Revoked,
}

/// Who a verified chain says a device belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedDevice {
    /// The user's id, as the user certificate gives it.
    pub user_id: String,
    /// The user's name, as the user certificate gives it.
    pub display_name: String,
    /// The user's role, as the user certificate gives it.
    pub role: Role,
    /// The user's sector, as the user certificate gives it; may be empty.
    pub sector: String,
    /// The rest of what the user certificate certifies (empty fields in a
    /// certificate of version 1).
    pub certified: CertifiedFields,
    /// The user's identity key, which certified the device.
    pub identity_key: [u8; 32],
    /// The device key (the MLS leaf's signature key).
    pub device_key: DevicePublicKey,
    /// When the user's certificate starts being valid (ms since the epoch).
    pub valid_from_ms: u64,
    /// When the user's certificate stops being valid (ms since the epoch).
    pub valid_until_ms: u64,
    /// The staff member and delegated key that signed the user certificate,
    /// when the authority did not sign it itself.
    pub certified_by: Option<(String, [u8; 32])>,
}

impl VerifiedDevice {
    /// Whether the user's certificate is valid at `now_ms`, within
    /// [`CLOCK_LEEWAY_MS`] at each end.
    pub fn valid_at(&self, now_ms: u64) -> bool {
        within_validity(self.valid_from_ms, self.valid_until_ms, now_ms)
    }
}

fn within_validity(not_before_ms: u64, not_after_ms: u64, now_ms: u64) -> bool {
    now_ms.saturating_add(CLOCK_LEEWAY_MS) >= not_before_ms
        && now_ms < not_after_ms.saturating_add(CLOCK_LEEWAY_MS)
}

/// The pinned authority key, against which chains are verified, the
/// revocations they are checked against, and the clock they are verified
/// by.
#[derive(Debug, Clone)]
pub struct TrustAnchor {
    authority_key: [u8; 32],
    clock_offset_ms: i64,
    revocations: Revocations,
}

impl TrustAnchor {
    /// An anchor pinning `authority_key` (the organisation's ed25519 public
    /// key), with no clock offset and no revocations.
    pub fn new(authority_key: [u8; 32]) -> Self {
        TrustAnchor {
            authority_key,
            clock_offset_ms: 0,
            revocations: Revocations::default(),
        }
    }

    /// This anchor, refusing the devices `revocations` covers (shared:
    /// what is added to it later counts too).
    pub fn with_revocations(mut self, revocations: Revocations) -> Self {
        self.revocations = revocations;
        self
    }

    /// The revocations this anchor checks chains against.
    pub fn revocations(&self) -> &Revocations {
        &self.revocations
    }

    /// This anchor, reading the time from a clock `offset_ms` ahead of the
    /// system's (behind, if negative): for tests of clock skew.
    pub fn with_clock_offset(mut self, offset_ms: i64) -> Self {
        self.clock_offset_ms = offset_ms;
        self
    }

    /// The time by this anchor's clock, ms since the Unix epoch.
    pub fn now_ms(&self) -> u64 {
        crate::now_ms().saturating_add_signed(self.clock_offset_ms)
    }

    /// The pinned authority key.
    pub fn authority_key(&self) -> [u8; 32] {
        self.authority_key
    }

    /// Verifies an encoded [`CredentialChain`] for the device whose key is
    /// `device_key`, at time `now_ms`, and that no revocation this anchor
    /// holds covers the device ([`TrustError::Revoked`]).
    ///
    /// A chain that verified before is not verified again until its
    /// certificate expires: members' chains are checked on every message,
    /// and three signature checks per message would cost more than the
    /// decryption itself.
    pub fn verify(
        &self,
        chain: &[u8],
        device_key: &[u8],
        now_ms: u64,
    ) -> Result<VerifiedDevice, TrustError> {
        let cache_key = cache::key(&self.authority_key, chain, device_key);
        let verified = match cache::get(&cache_key, now_ms) {
            Some(hit) => hit,
            None => {
                let verified = self.verify_uncached(chain, device_key, now_ms)?;
                cache::put(cache_key, &verified);
                verified
            }
        };
        if self
            .revocations
            .covers(&verified.user_id, verified.device_key.as_bytes())
        {
            return Err(TrustError::Revoked);
        }
        if let Some((staff, key)) = &verified.certified_by {
            if self.revocations.covers(staff, key) {
                return Err(TrustError::Revoked);
            }
        }
        Ok(verified)
    }

    fn verify_uncached(
        &self,
        chain: &[u8],
        device_key: &[u8],
        now_ms: u64,
    ) -> Result<VerifiedDevice, TrustError> {
        let chain =
            CredentialChain::decode(chain).map_err(|_| TrustError::Malformed("encoding"))?;
        if chain.version != CHAIN_VERSION {
            return Err(TrustError::Malformed("version"));
        }
        let signed_user = chain
            .user_certificate
            .ok_or(TrustError::Malformed("no user certificate"))?;
        let user: UserCertificate = decode(&signed_user, "user certificate")?;
        if !readable_user_certificate(user.version) {
            return Err(TrustError::Malformed("user certificate version"));
        }
        if user.authority_key.as_slice() != self.authority_key {
            return Err(TrustError::UnknownAuthority);
        }
        let role = match WireRole::try_from(user.role) {
            Ok(WireRole::Staff) => Role::Staff,
            Ok(WireRole::Leader) => Role::Leader,
            _ => return Err(TrustError::Malformed("role")),
        };
        let delegated = chain
            .delegation
            .as_ref()
            .map(|signed| verify_delegation(&self.authority_key, signed, Some(role), now_ms))
            .transpose()?;
        check_signature(
            &delegated
                .as_ref()
                .map_or(self.authority_key, |d| d.delegate_key),
            SignaturePurpose::UserCertificate,
            &signed_user,
            "user certificate",
        )?;
        if !within_validity(user.not_before_ms, user.not_after_ms, now_ms) {
            return Err(TrustError::Expired);
        }
        let identity_key = identity_key_of(&user, chain.identity_binding)?;
        let certified_device =
            certified_device_key(chain.device_certificate, &identity_key, &user.user_id)?;
        if certified_device.as_slice() != device_key {
            return Err(TrustError::WrongDevice);
        }
        let certified = certified_fields(&user);
        Ok(VerifiedDevice {
            user_id: user.user_id,
            display_name: user.display_name,
            role,
            certified,
            sector: user.sector,
            identity_key,
            device_key: DevicePublicKey(certified_device),
            valid_from_ms: user.not_before_ms,
            // A delegated certificate is good no longer than its delegation
            // (this is also how long the chain stays cached).
            valid_until_ms: delegated
                .as_ref()
                .map_or(user.not_after_ms, |d| d.not_after_ms.min(user.not_after_ms)),
            certified_by: delegated.map(|d| (d.staff_user_id, d.delegate_key)),
        })
    }

    /// Verifies a revocation signed by the authority.
    pub fn verify_revocation(&self, signed: &Signed) -> Result<Revocation, TrustError> {
        let revocation: Revocation = decode(signed, "revocation")?;
        if revocation.authority_key.as_slice() != self.authority_key {
            return Err(TrustError::UnknownAuthority);
        }
        check_signature(
            &self.authority_key,
            SignaturePurpose::Revocation,
            signed,
            "revocation",
        )?;
        if !revocation.device_key.is_empty() && revocation.device_key.len() != 32 {
            return Err(TrustError::Malformed("revoked device key"));
        }
        if !revocation.delegate_key.is_empty() && revocation.delegate_key.len() != 32 {
            return Err(TrustError::Malformed("revoked delegated key"));
        }
        Ok(revocation)
    }

    /// Verifies a signed user certificate on its own (an invitee checks the
    /// one staff made for it, under `delegation` when a staff member signed
    /// it), returning it.
    pub fn verify_user_certificate(
        &self,
        signed: &Signed,
        delegation: Option<&Signed>,
        now_ms: u64,
    ) -> Result<UserCertificate, TrustError> {
        let user: UserCertificate = decode(signed, "user certificate")?;
        if user.authority_key.as_slice() != self.authority_key {
            return Err(TrustError::UnknownAuthority);
        }
        let role = match WireRole::try_from(user.role) {
            Ok(WireRole::Staff) => Some(Role::Staff),
            _ => None,
        };
        let signer = match delegation {
            Some(delegation) => {
                let delegated = verify_delegation(&self.authority_key, delegation, role, now_ms)?;
                if self
                    .revocations
                    .covers(&delegated.staff_user_id, &delegated.delegate_key)
                {
                    return Err(TrustError::Revoked);
                }
                delegated.delegate_key
            }
            None => self.authority_key,
        };
        check_signature(
            &signer,
            SignaturePurpose::UserCertificate,
            signed,
            "user certificate",
        )?;
        if !within_validity(user.not_before_ms, user.not_after_ms, now_ms) {
            return Err(TrustError::Expired);
        }
        Ok(user)
    }
}

/// The profile fields of a user certificate (empty in version 1).
pub(crate) fn certified_fields(user: &UserCertificate) -> CertifiedFields {
    CertifiedFields {
        job_title: user.job_title.clone(),
        organisation: user.organisation.clone(),
        region: user.region.clone(),
        programme: user.programme.clone(),
        cohort: user.cohort.clone(),
    }
}

/// Reads a signed profile and checks that `identity_key` signed it.
pub(crate) fn verified_profile(
    identity_key: &[u8; 32],
    signed: &Signed,
) -> Result<convene_proto::trust::Profile, TrustError> {
    check_signature(identity_key, SignaturePurpose::Profile, signed, "profile")?;
    decode(signed, "profile")
}

fn decode<M: Message + Default>(signed: &Signed, what: &'static str) -> Result<M, TrustError> {
    M::decode(signed.body.as_slice()).map_err(|_| TrustError::Malformed(what))
}

fn key32(bytes: &[u8], what: &'static str) -> Result<[u8; 32], TrustError> {
    bytes.try_into().map_err(|_| TrustError::Malformed(what))
}

fn check_signature(
    key: &[u8; 32],
    purpose: SignaturePurpose,
    signed: &Signed,
    what: &'static str,
) -> Result<(), TrustError> {
    let key = VerifyingKey::from_bytes(key).map_err(|_| TrustError::BadSignature(what))?;
    let signature: [u8; 64] = signed
        .signature
        .as_slice()
        .try_into()
        .map_err(|_| TrustError::BadSignature(what))?;
    key.verify_strict(
        &signed_bytes(purpose, &signed.body),
        &Signature::from_bytes(&signature),
    )
    .map_err(|_| TrustError::BadSignature(what))
}

/// The user certificate a chain carries, and the chain, decoded without
/// verifying either.
fn unverified_user_certificate(chain: &[u8]) -> Option<(CredentialChain, UserCertificate)> {
    let chain = CredentialChain::decode(chain).ok()?;
    let user = UserCertificate::decode(chain.user_certificate.as_ref()?.body.as_slice()).ok()?;
    Some((chain, user))
}

/// Reads a chain's claims without verifying them: only for showing what an
/// already refused credential claimed to be.
pub fn claimed_user_id(chain: &[u8]) -> Option<String> {
    unverified_user_certificate(chain).map(|(_, user)| user.user_id)
}

/// Reads the name a chain's user certificate gives, without verifying it:
/// only for leaves whose chain was verified when they were accepted.
pub fn claimed_display_name(chain: &[u8]) -> Option<String> {
    unverified_user_certificate(chain).map(|(_, user)| user.display_name)
}

/// Reads the validity (not before, not after; ms since the epoch) of a
/// chain's user certificate, without verifying it.
pub fn claimed_validity(chain: &[u8]) -> Option<(u64, u64)> {
    unverified_user_certificate(chain).map(|(_, user)| (user.not_before_ms, user.not_after_ms))
}

/// Reads the user id and identity key a chain names, without verifying it:
/// only for leaves whose chain was verified when they were accepted.
pub fn claimed_identity(chain: &[u8]) -> Option<(String, [u8; 32])> {
    let (chain, user) = unverified_user_certificate(chain)?;
    let key = if user.bound_by_invite {
        let binding =
            convene_proto::trust::IdentityBinding::decode(chain.identity_binding?.body.as_slice())
                .ok()?;
        binding.identity_key
    } else {
        user.subject_key
    };
    Some((user.user_id, key.as_slice().try_into().ok()?))
}
