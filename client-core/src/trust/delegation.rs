//! Staff certifying users under the authority's delegation.
//!
//! A programme team is several people, and the authority key should not
//! have to live on every staff device (or be online at all). The authority
//! signs a [`StaffDelegation`] for one staff member's identity key, with a
//! validity and a scope; that staff member then signs user certificates
//! themselves, and every chain they issue carries the delegation. A
//! verifier checks the delegation against the pinned authority, the
//! certificate against the delegated key, and that no revocation covers
//! the delegation (a revocation of it alone, or a suspension of the staff
//! member): revoking it refuses every certificate it signed.

use convene_proto::trust::{Revocation, SignaturePurpose, Signed, StaffDelegation};
use prost::Message;

use super::issue::{certify_user_with, sign, CertificateTerms};
use super::CHAIN_VERSION;
use super::{check_signature, within_validity, Authority, IdentityKey, TrustError, UserDetails};
use crate::types::Role;

/// How long a delegation lasts by default: a year, renewed as staff stay.
pub const DELEGATION_VALIDITY_MS: u64 = 366 * 24 * 3600 * 1000;

impl Authority {
    /// Lets `staff_user_id`'s identity key `delegate_key` certify users
    /// (leaders; staff too with `may_certify_staff`) from `not_before_ms`
    /// for `validity_ms`.
    pub fn delegate(
        &self,
        staff_user_id: &str,
        delegate_key: [u8; 32],
        may_certify_staff: bool,
        not_before_ms: u64,
        validity_ms: u64,
    ) -> Signed {
        let delegation = StaffDelegation {
            version: CHAIN_VERSION,
            authority_key: self.public().to_vec(),
            staff_user_id: staff_user_id.to_string(),
            delegate_key: delegate_key.to_vec(),
            not_before_ms,
            not_after_ms: not_before_ms.saturating_add(validity_ms),
            may_certify_staff,
        };
        sign(
            self.signer(),
            SignaturePurpose::StaffDelegation,
            delegation.encode_to_vec(),
        )
    }

    /// Ends `staff_user_id`'s delegation to `delegate_key` (the staff
    /// member stays): every certificate it signed is refused from then on.
    pub fn revoke_delegation(
        &self,
        staff_user_id: &str,
        delegate_key: [u8; 32],
        now_ms: u64,
    ) -> Signed {
        let revocation = Revocation {
            version: CHAIN_VERSION,
            authority_key: self.public().to_vec(),
            user_id: staff_user_id.to_string(),
            device_key: Vec::new(),
            issued_at_ms: now_ms,
            delegate_key: delegate_key.to_vec(),
        };
        sign(
            self.signer(),
            SignaturePurpose::Revocation,
            revocation.encode_to_vec(),
        )
    }
}

/// Who signs a user certificate: the authority itself, or a staff member
/// under its delegation.
pub enum Certifier {
    /// The authority itself, with its secret key.
    Authority(Authority),
    /// A staff member, under a delegation from the authority.
    Delegate {
        /// The staff member's identity key, the delegated one.
        key: IdentityKey,
        /// The signed delegation, which travels in every chain it issues.
        delegation: Signed,
        /// The organisation's authority.
        authority_key: [u8; 32],
        /// Whether the delegation covers staff as well as leaders.
        may_certify_staff: bool,
    },
}

impl Certifier {
    /// The organisation's authority key the certificates name.
    pub fn authority_key(&self) -> [u8; 32] {
        match self {
            Certifier::Authority(authority) => authority.public(),
            Certifier::Delegate { authority_key, .. } => *authority_key,
        }
    }

    /// Whether users with `role` may be certified here.
    pub fn may_certify(&self, role: Role) -> bool {
        match self {
            Certifier::Authority(_) => true,
            Certifier::Delegate {
                may_certify_staff, ..
            } => role != Role::Staff || *may_certify_staff,
        }
    }

    /// The delegation to carry with each certificate, if any.
    pub fn delegation(&self) -> Option<&Signed> {
        match self {
            Certifier::Authority(_) => None,
            Certifier::Delegate { delegation, .. } => Some(delegation),
        }
    }

    /// Certifies `details` with `terms`.
    pub fn certify_user(&self, details: &UserDetails, terms: &CertificateTerms) -> Signed {
        let signer = match self {
            Certifier::Authority(authority) => authority.signer(),
            Certifier::Delegate { key, .. } => key.signer(),
        };
        certify_user_with(signer, self.authority_key(), details, terms)
    }
}

impl std::fmt::Debug for Certifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Certifier::Authority(_) => f.write_str("Certifier::Authority(<redacted>)"),
            Certifier::Delegate { .. } => f.write_str("Certifier::Delegate(<redacted>)"),
        }
    }
}

/// A delegation that verified: who may certify, with which key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedDelegation {
    /// The staff member delegated to.
    pub staff_user_id: String,
    /// The staff member's identity key, which may sign user certificates.
    pub delegate_key: [u8; 32],
    /// Whether the delegation covers staff as well as leaders.
    pub may_certify_staff: bool,
    /// When the delegation ends, ms since the Unix epoch.
    pub not_after_ms: u64,
}

/// Checks a signed delegation against `authority_key` at `now_ms`, for a
/// certificate of a user with `role` (revocations are the anchor's to
/// check).
pub fn verify_delegation(
    authority_key: &[u8; 32],
    signed: &Signed,
    role: Option<Role>,
    now_ms: u64,
) -> Result<VerifiedDelegation, TrustError> {
    let delegation = StaffDelegation::decode(signed.body.as_slice())
        .map_err(|_| TrustError::Malformed("delegation"))?;
    if delegation.version != CHAIN_VERSION {
        return Err(TrustError::Malformed("delegation version"));
    }
    if delegation.authority_key.as_slice() != authority_key {
        return Err(TrustError::UnknownAuthority);
    }
    check_signature(
        authority_key,
        SignaturePurpose::StaffDelegation,
        signed,
        "delegation",
    )?;
    if !within_validity(delegation.not_before_ms, delegation.not_after_ms, now_ms) {
        return Err(TrustError::Expired);
    }
    if role == Some(Role::Staff) && !delegation.may_certify_staff {
        return Err(TrustError::Mismatch(
            "the delegation does not cover certifying staff",
        ));
    }
    let delegate_key = delegation
        .delegate_key
        .as_slice()
        .try_into()
        .map_err(|_| TrustError::Malformed("delegated key"))?;
    Ok(VerifiedDelegation {
        staff_user_id: delegation.staff_user_id,
        delegate_key,
        may_certify_staff: delegation.may_certify_staff,
        not_after_ms: delegation.not_after_ms,
    })
}
