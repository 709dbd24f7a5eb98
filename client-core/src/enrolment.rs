//! Redeeming an invite: building this device's chain of trust and
//! registering it with the relay.
//!
//! Two cases:
//! - the relay's bootstrap invite (it names no authority): its redeemer
//!   becomes the first staff member and creates the organisation's
//!   authority key, which it keeps;
//! - a staff invite: the invite code names the authority's fingerprint, and
//!   staff certified an invite key derived from its secret. The device
//!   checks the authority the relay shows against the fingerprint and the
//!   certificate against the authority, makes the user's identity key and
//!   binds it with the invite key. The relay never sees the secret.
//!
//! Which case applies is read from the invite alone; a relay that answers
//! otherwise is refused.

use convene_proto::invite::{authority_fingerprint, Invite};
use convene_proto::relay::InviteDetails;
use convene_proto::trust::Signed;
use prost::Message;

use crate::error::{ClientError, InviteRefusal};
use crate::store::records::IdentityRecord;
use crate::transport::{enrol, get_invite, Connection, EnrolRequest, TransportError};
use crate::trust::{
    bind_identity, invite_public_key, Authority, IdentityKey, TrustAnchor, UserDetails,
};
use crate::types::Role;
use crate::DeviceKey;

/// What enrolling produced: the identity to store.
pub(crate) struct Enrolled {
    pub identity: IdentityRecord,
}

/// Redeems `invite` over `connection` for the new device `key`.
/// `user_id` and `display_name` are used only for the bootstrap invite.
pub(crate) async fn redeem(
    connection: &dyn Connection,
    key: &DeviceKey,
    invite: &Invite,
    user_id: &str,
    display_name: &str,
) -> Result<Enrolled, ClientError> {
    let token = invite.secret.relay_token();
    let details = get_invite(connection, token).await.map_err(invite_error)?;
    let now = crate::now_ms();
    let Issued {
        request,
        certified: details,
        identity_key,
        authority,
    } = match (invite.authority_fingerprint.is_some(), details.bootstrap) {
        // The path is the invite's, never the relay's word: an invite that
        // names an authority is checked against it, whatever the relay
        // says, and only an invite that names none makes an authority.
        (false, true) => bootstrap(&details, key, token, user_id, display_name, now)?,
        (true, false) => invited(&details, invite, key, token, now)?,
        (true, true) => {
            return Err(ClientError::Untrusted(
                "the relay offered to make this device the organisation's authority, \
                 but the invite names one: refused"
                    .into(),
            ))
        }
        (false, false) => {
            return Err(ClientError::Untrusted(
                "the invite names no authority, yet the relay did not offer it as the \
                 bootstrap invite: refused"
                    .into(),
            ))
        }
    };
    let authenticated = enrol(connection, key, &request)
        .await
        .map_err(invite_error)?;
    if authenticated.user_id != details.user_id {
        return Err(ClientError::Untrusted(format!(
            "the relay enrolled this device as {} but the certificate names {}",
            authenticated.user_id, details.user_id
        )));
    }
    let identity = IdentityRecord {
        user_id: details.user_id,
        display_name: details.display_name,
        role: authenticated.role,
        device_secret: key.to_secret_bytes().to_vec(),
        relay_url: String::new(),
        relay_id: connection.relay_id().to_vec(),
        enrolled_at_ms: now,
        pinned_certificate: Vec::new(),
        identity_secret: identity_key.to_secret_bytes().to_vec(),
        authority_key: details.authority_key,
        credential: request.credential.clone(),
        authority_secret: authority
            .map(|a| a.to_secret_bytes().to_vec())
            .unwrap_or_default(),
        sector: details.sector,
    };
    Ok(Enrolled { identity })
}

/// Who the new user is, as certified.
struct Certified {
    user_id: String,
    display_name: String,
    sector: String,
    authority_key: Vec<u8>,
}

/// What this device made to enrol: the request, and the keys to keep.
struct Issued {
    request: EnrolRequest,
    certified: Certified,
    identity_key: IdentityKey,
    /// Only for the first staff member.
    authority: Option<Authority>,
}

fn bootstrap(
    details: &InviteDetails,
    key: &DeviceKey,
    token: [u8; 32],
    user_id: &str,
    display_name: &str,
    now: u64,
) -> Result<Issued, ClientError> {
    if !details.authority_key.is_empty() {
        return Err(ClientError::InvalidInvite(InviteRefusal::AuthorityExists));
    }
    let user_id = if details.user_id.is_empty() {
        user_id
    } else {
        &details.user_id
    };
    let display_name = match (details.display_name.as_str(), display_name) {
        ("", "") => user_id,
        ("", chosen) => chosen,
        (named, _) => named,
    };
    convene_proto::ids::check_user_id(user_id)
        .map_err(|err| ClientError::InvalidArgument(err.to_string()))?;
    let authority = Authority::generate();
    let user_details = UserDetails {
        user_id: user_id.to_string(),
        display_name: display_name.to_string(),
        role: Role::Staff,
        sector: String::new(),
        certified: Default::default(),
    };
    let (identity_key, chain) = authority.issue_direct_chain(
        &user_details,
        key.public(),
        now.saturating_sub(crate::trust::CERTIFICATE_BACKDATE_MS),
        crate::lifecycle::KeyLifecycle::default()
            .certificate_validity
            .as_millis() as u64
            + crate::trust::CERTIFICATE_BACKDATE_MS,
    );
    let request = EnrolRequest {
        invite_token: token,
        user_id: user_id.to_string(),
        display_name: display_name.to_string(),
        credential: chain,
        authority_key: Some(authority.public()),
    };
    let certified = Certified {
        user_id: user_details.user_id,
        display_name: user_details.display_name,
        sector: String::new(),
        authority_key: authority.public().to_vec(),
    };
    Ok(Issued {
        request,
        certified,
        identity_key,
        authority: Some(authority),
    })
}

fn invited(
    details: &InviteDetails,
    invite: &Invite,
    key: &DeviceKey,
    token: [u8; 32],
    now: u64,
) -> Result<Issued, ClientError> {
    let fingerprint = invite
        .authority_fingerprint
        .ok_or_else(|| ClientError::InvalidInvite(InviteRefusal::NoAuthority))?;
    let authority_key: [u8; 32] = details.authority_key.as_ref().try_into().map_err(|_| {
        ClientError::Untrusted("the relay did not show the organisation's authority key".into())
    })?;
    if authority_fingerprint(&authority_key) != fingerprint {
        return Err(ClientError::Untrusted(
            "the relay showed an authority key that is not the one the invite names".into(),
        ));
    }
    let anchor = TrustAnchor::new(authority_key);
    let signed = Signed::decode(details.user_certificate.as_ref())
        .map_err(|_| ClientError::Untrusted("the invite's certificate is damaged".into()))?;
    // A staff member other than the authority's holder signs under a
    // delegation, which the invitee checks against the authority too.
    let delegation = match details.delegation.is_empty() {
        true => None,
        false => Some(
            Signed::decode(details.delegation.as_ref())
                .map_err(|_| ClientError::Untrusted("the invite's delegation is damaged".into()))?,
        ),
    };
    let certificate = anchor
        .verify_user_certificate(&signed, delegation.as_ref(), now)
        .map_err(|err| ClientError::Untrusted(format!("the invite's certificate: {err}")))?;
    let seed = invite.secret.invite_key_seed();
    if !certificate.bound_by_invite || certificate.subject_key != invite_public_key(&seed) {
        return Err(ClientError::Untrusted(
            "the invite's certificate was made for another invite".into(),
        ));
    }
    let identity_key = IdentityKey::generate();
    let binding = bind_identity(&seed, &certificate.user_id, identity_key.public());
    let device_certificate = identity_key.certify_device(&certificate.user_id, key.public(), now);
    let request = EnrolRequest {
        invite_token: token,
        user_id: certificate.user_id.clone(),
        display_name: certificate.display_name.clone(),
        credential: IdentityKey::delegated_chain(
            signed,
            Some(binding),
            device_certificate,
            delegation,
        ),
        authority_key: None,
    };
    let certified = Certified {
        user_id: certificate.user_id,
        display_name: certificate.display_name,
        sector: certificate.sector,
        authority_key: authority_key.to_vec(),
    };
    Ok(Issued {
        request,
        certified,
        identity_key,
        authority: None,
    })
}

/// Enrolment refusals that are about the invite, said as such.
pub(crate) fn invite_error(err: TransportError) -> ClientError {
    use convene_proto::relay::ErrorCode;
    match err {
        TransportError::Refused(refusal) => match refusal.code {
            ErrorCode::InviteUnknown => ClientError::InvalidInvite(InviteRefusal::Unknown),
            ErrorCode::InviteUsed => ClientError::InvalidInvite(InviteRefusal::Used),
            ErrorCode::InviteExpired => ClientError::InvalidInvite(InviteRefusal::Expired),
            ErrorCode::AlreadyExists => {
                ClientError::InvalidArgument(format!("that user id is taken: {}", refusal.message))
            }
            ErrorCode::InvalidArgument => ClientError::InvalidArgument(refusal.message),
            _ => ClientError::Refused(refusal),
        },
        other => other.into(),
    }
}
