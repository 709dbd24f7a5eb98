//! Issuing the chain: the authority certifies users, an invite key binds an
//! identity key, an identity key certifies devices. Each signing key is
//! wiped from memory on drop and never printed.

use convene_proto::trust::{
    signed_bytes, CredentialChain, DeviceCertificate, IdentityBinding, Role as WireRole,
    SignaturePurpose, Signed, UserCertificate,
};
use ed25519_dalek::{Signer, SigningKey};
use prost::Message;
use zeroize::Zeroizing;

use convene_proto::ids::DevicePublicKey;

use super::{CHAIN_VERSION, USER_CERTIFICATE_VERSION};
use crate::types::Role;

/// What the authority says about a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserDetails {
    /// The user's id.
    pub user_id: String,
    /// The name shown for the user.
    pub display_name: String,
    /// The user's role.
    pub role: Role,
    /// The user's sector: a [`Sector`](convene_proto::vocabulary::Sector)
    /// code ("police", "nhs-health", ...), or empty.
    pub sector: String,
    /// The rest of what staff certify about them (job title,
    /// organisation, region, programme, cohort).
    pub certified: CertifiedFields,
}

/// The profile fields a user certificate of version 2 carries beyond the
/// name, role and sector (`convene.trust.v1.UserCertificate`, fields 11 to
/// 15). Empty strings where staff gave none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CertifiedFields {
    /// The job title, at most [`MAX_TITLE_CHARS`] characters.
    pub job_title: String,
    /// The organisation, at most [`MAX_ORGANISATION_CHARS`] characters.
    pub organisation: String,
    /// An ITL1 [`Region`](convene_proto::vocabulary::Region) code ("TLC"),
    /// or empty.
    pub region: String,
    /// The programme ("CEO programme 2026"), at most
    /// [`MAX_PROGRAMME_CHARS`] characters.
    pub programme: String,
    /// The cohort within it ("cohort 2"), at most [`MAX_COHORT_CHARS`]
    /// characters.
    pub cohort: String,
}

/// Longest job title a certificate carries, in characters.
pub const MAX_TITLE_CHARS: usize = 120;
/// Longest organisation, in characters.
pub const MAX_ORGANISATION_CHARS: usize = 160;
/// Longest programme, in characters.
pub const MAX_PROGRAMME_CHARS: usize = 120;
/// Longest cohort, in characters.
pub const MAX_COHORT_CHARS: usize = 60;

impl UserDetails {
    /// Checks what is about to be certified for good: the sector and region
    /// are codes of their vocabularies (or empty), and each text field is
    /// within its length and shows as it reads (no control, bidi or
    /// invisible characters). The error says which field.
    pub fn check(&self) -> Result<(), String> {
        use convene_proto::vocabulary::{Region, Sector};
        if !self.sector.is_empty() && Sector::from_code(&self.sector).is_none() {
            return Err(format!("{:?} is not a sector code", self.sector));
        }
        let c = &self.certified;
        if !c.region.is_empty() && Region::from_code(&c.region).is_none() {
            return Err(format!("{:?} is not an ITL1 region code", c.region));
        }
        for (field, text, max) in [
            ("job title", &c.job_title, MAX_TITLE_CHARS),
            ("organisation", &c.organisation, MAX_ORGANISATION_CHARS),
            ("programme", &c.programme, MAX_PROGRAMME_CHARS),
            ("cohort", &c.cohort, MAX_COHORT_CHARS),
        ] {
            if text.chars().count() > max {
                return Err(format!("the {field} is longer than {max} characters"));
            }
            if text.chars().any(convene_proto::text::is_hidden) {
                return Err(format!(
                    "the {field} has a control, direction or invisible character"
                ));
            }
        }
        Ok(())
    }
}

/// What staff change when they re-certify a user: each field given
/// replaces the one certified, the rest stay. The user id, role and
/// identity key never change this way (a new role is a new enrolment).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CertifiedChange {
    /// The name shown for the user.
    pub display_name: Option<String>,
    /// A sector code, or empty for none.
    pub sector: Option<String>,
    /// The job title.
    pub job_title: Option<String>,
    /// The organisation.
    pub organisation: Option<String>,
    /// An ITL1 region code, or empty for none.
    pub region: Option<String>,
    /// The programme.
    pub programme: Option<String>,
    /// The cohort within it.
    pub cohort: Option<String>,
}

impl CertifiedChange {
    /// Whether it changes nothing.
    pub fn is_empty(&self) -> bool {
        *self == CertifiedChange::default()
    }

    /// `details` with the change made (text trimmed), checked as for a new
    /// certificate ([`UserDetails::check`], and the display name's rules).
    pub fn applied_to(&self, details: &UserDetails) -> Result<UserDetails, String> {
        let mut changed = details.clone();
        let set = |field: &mut String, value: &Option<String>| {
            if let Some(value) = value {
                *field = value.trim().to_string();
            }
        };
        set(&mut changed.display_name, &self.display_name);
        set(&mut changed.sector, &self.sector);
        let c = &mut changed.certified;
        set(&mut c.job_title, &self.job_title);
        set(&mut c.organisation, &self.organisation);
        set(&mut c.region, &self.region);
        set(&mut c.programme, &self.programme);
        set(&mut c.cohort, &self.cohort);
        convene_proto::ids::check_display_name(&changed.display_name)
            .map_err(|err| err.to_string())?;
        changed.check()?;
        Ok(changed)
    }
}

pub(super) fn sign(key: &SigningKey, purpose: SignaturePurpose, body: Vec<u8>) -> Signed {
    let signature = key.sign(&signed_bytes(purpose, &body)).to_bytes().to_vec();
    Signed { body, signature }
}

pub(super) fn wire_role(role: Role) -> WireRole {
    match role {
        Role::Staff => WireRole::Staff,
        Role::Leader => WireRole::Leader,
    }
}

/// The organisation's authority key, held by staff.
pub struct Authority(SigningKey);

impl Authority {
    /// A new authority (made once, by the first staff member).
    pub fn generate() -> Self {
        Authority(SigningKey::generate(&mut rand::rngs::OsRng))
    }

    /// The authority with this ed25519 secret key.
    pub fn from_secret_bytes(secret: &[u8; 32]) -> Self {
        Authority(SigningKey::from_bytes(secret))
    }

    /// The ed25519 secret key (32 bytes), wiped when dropped.
    pub fn to_secret_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.0.to_bytes())
    }

    /// The authority's ed25519 public key, which its certificates name.
    pub fn public(&self) -> [u8; 32] {
        self.0.verifying_key().to_bytes()
    }

    pub(super) fn signer(&self) -> &SigningKey {
        &self.0
    }

    /// Certifies `details` for `subject_key`, valid from `not_before_ms` for
    /// `validity_ms`. `bound_by_invite` marks `subject_key` as an invite key
    /// that will bind the user's identity key.
    pub fn certify_user(
        &self,
        details: &UserDetails,
        subject_key: [u8; 32],
        bound_by_invite: bool,
        not_before_ms: u64,
        validity_ms: u64,
    ) -> Signed {
        let terms = CertificateTerms {
            subject_key,
            bound_by_invite,
            not_before_ms,
            validity_ms,
        };
        certify_user_with(&self.0, self.public(), details, &terms)
    }
}

/// What a user certificate vouches for, beyond the user's details.
#[derive(Debug, Clone, Copy)]
pub struct CertificateTerms {
    /// The user's identity key, or the invite key that will bind it.
    pub subject_key: [u8; 32],
    /// Whether `subject_key` is an invite key.
    pub bound_by_invite: bool,
    /// Validity start, ms since the Unix epoch.
    pub not_before_ms: u64,
    /// Validity length, ms.
    pub validity_ms: u64,
}

/// A user certificate for the authority `authority_key`, signed by
/// `signer` (the authority itself, or a staff member it delegated to).
pub(super) fn certify_user_with(
    signer: &SigningKey,
    authority_key: [u8; 32],
    details: &UserDetails,
    terms: &CertificateTerms,
) -> Signed {
    let certificate = UserCertificate {
        version: USER_CERTIFICATE_VERSION,
        authority_key: authority_key.to_vec(),
        user_id: details.user_id.clone(),
        display_name: details.display_name.clone(),
        role: wire_role(details.role) as i32,
        sector: details.sector.clone(),
        subject_key: terms.subject_key.to_vec(),
        bound_by_invite: terms.bound_by_invite,
        not_before_ms: terms.not_before_ms,
        not_after_ms: terms.not_before_ms.saturating_add(terms.validity_ms),
        job_title: details.certified.job_title.clone(),
        organisation: details.certified.organisation.clone(),
        region: details.certified.region.clone(),
        programme: details.certified.programme.clone(),
        cohort: details.certified.cohort.clone(),
    };
    sign(
        signer,
        SignaturePurpose::UserCertificate,
        certificate.encode_to_vec(),
    )
}

impl Authority {
    /// A new identity key for the user `details` describes, certified
    /// directly (no invite), and the chain for its device `device_key`.
    pub fn issue_direct_chain(
        &self,
        details: &UserDetails,
        device_key: DevicePublicKey,
        now_ms: u64,
        validity_ms: u64,
    ) -> (IdentityKey, Vec<u8>) {
        let identity = IdentityKey::generate();
        let user = self.certify_user(details, identity.public(), false, now_ms, validity_ms);
        let device = identity.certify_device(&details.user_id, device_key, now_ms);
        let chain = IdentityKey::chain(user, None, device);
        (identity, chain)
    }
}

impl Authority {
    /// Revokes `device_key` of `user_id`, or (with `None`) suspends the
    /// user: every device.
    pub fn revoke(
        &self,
        user_id: &str,
        device_key: Option<DevicePublicKey>,
        now_ms: u64,
    ) -> Signed {
        let revocation = convene_proto::trust::Revocation {
            version: CHAIN_VERSION,
            authority_key: self.public().to_vec(),
            user_id: user_id.to_string(),
            device_key: device_key.map(|k| k.to_vec()).unwrap_or_default(),
            issued_at_ms: now_ms,
            delegate_key: Vec::new(),
        };
        sign(
            &self.0,
            SignaturePurpose::Revocation,
            revocation.encode_to_vec(),
        )
    }
}

impl std::fmt::Debug for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Authority(<redacted>)")
    }
}

/// A user's identity key: certifies the user's devices.
pub struct IdentityKey(SigningKey);

impl IdentityKey {
    /// A fresh identity key from the operating system's random source.
    pub fn generate() -> Self {
        IdentityKey(SigningKey::generate(&mut rand::rngs::OsRng))
    }

    /// The identity key with this ed25519 secret key.
    pub fn from_secret_bytes(secret: &[u8; 32]) -> Self {
        IdentityKey(SigningKey::from_bytes(secret))
    }

    /// The ed25519 secret key (32 bytes), wiped when dropped.
    pub fn to_secret_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.0.to_bytes())
    }

    /// The identity key's ed25519 public key.
    pub fn public(&self) -> [u8; 32] {
        self.0.verifying_key().to_bytes()
    }

    /// Signs the user's own profile (purpose "profile").
    pub fn sign_profile(&self, profile: &convene_proto::trust::Profile) -> Signed {
        sign(&self.0, SignaturePurpose::Profile, profile.encode_to_vec())
    }

    pub(super) fn signer(&self) -> &SigningKey {
        &self.0
    }

    /// Certifies that `device_key` is one of `user_id`'s devices.
    pub fn certify_device(
        &self,
        user_id: &str,
        device_key: DevicePublicKey,
        now_ms: u64,
    ) -> Signed {
        let certificate = DeviceCertificate {
            version: CHAIN_VERSION,
            user_id: user_id.to_string(),
            device_key: device_key.to_vec(),
            issued_at_ms: now_ms,
        };
        sign(
            &self.0,
            SignaturePurpose::DeviceCertificate,
            certificate.encode_to_vec(),
        )
    }

    /// The encoded chain for one device: the user certificate, the identity
    /// binding when there is one, and the device certificate.
    pub fn chain(
        user_certificate: Signed,
        identity_binding: Option<Signed>,
        device_certificate: Signed,
    ) -> Vec<u8> {
        Self::delegated_chain(user_certificate, identity_binding, device_certificate, None)
    }

    /// [`IdentityKey::chain`], with the delegation under which a staff
    /// member signed the user certificate, if one did.
    pub fn delegated_chain(
        user_certificate: Signed,
        identity_binding: Option<Signed>,
        device_certificate: Signed,
        delegation: Option<Signed>,
    ) -> Vec<u8> {
        CredentialChain {
            version: CHAIN_VERSION,
            user_certificate: Some(user_certificate),
            identity_binding,
            device_certificate: Some(device_certificate),
            delegation,
        }
        .encode_to_vec()
    }
}

impl std::fmt::Debug for IdentityKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IdentityKey(<redacted>)")
    }
}

/// Signs, with the invite key derived from the invite's secret, that
/// `user_id`'s identity key is `identity_key`.
pub fn bind_identity(invite_key_seed: &[u8; 32], user_id: &str, identity_key: [u8; 32]) -> Signed {
    let invite_key = SigningKey::from_bytes(invite_key_seed);
    let binding = IdentityBinding {
        version: CHAIN_VERSION,
        user_id: user_id.to_string(),
        identity_key: identity_key.to_vec(),
    };
    sign(
        &invite_key,
        SignaturePurpose::IdentityBinding,
        binding.encode_to_vec(),
    )
}

/// The public invite key for an invite's key seed (what staff certify).
pub fn invite_public_key(invite_key_seed: &[u8; 32]) -> [u8; 32] {
    SigningKey::from_bytes(invite_key_seed)
        .verifying_key()
        .to_bytes()
}
