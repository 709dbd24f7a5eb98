//! Invites: staff create them, an invitee reads one before enrolling.

use convene_proto::ids::fixed;
use convene_proto::invite::lookup_hash;
use convene_proto::relay::{response, CreateInvite, GetInvite, InviteCreated, InviteDetails, Role};

use super::{Caller, Reply};
use crate::error::{Refusal, RelayResult};
use crate::relay::Relay;
use crate::store::{now_ms, NewInvite};

pub(super) fn create_invite(
    relay: &Relay,
    caller: &Caller,
    req: CreateInvite,
) -> RelayResult<Reply> {
    if caller.role != Role::Staff {
        return Err(Refusal::Forbidden("only staff may create invites").into());
    }
    let role = match Role::try_from(req.role) {
        Ok(role @ (Role::Leader | Role::Staff)) => role,
        _ => {
            return Err(Refusal::InvalidArgument(
                "the invite's role must be leader or staff".into(),
            )
            .into())
        }
    };
    let limits = &relay.config.limits;
    let ttl_secs = match req.ttl_seconds {
        0 => limits.invite_ttl_secs,
        asked => asked.min(limits.max_invite_ttl_secs),
    };
    let token: [u8; 32] = fixed("invite_token", &req.invite_token)?;
    if req.user_certificate.len() > MAX_CERTIFICATE_BYTES
        || req.delegation.len() > MAX_CERTIFICATE_BYTES
    {
        return Err(Refusal::TooLarge("user certificate".into()).into());
    }
    let invite = NewInvite {
        role,
        user_id: req.user_id,
        display_name: req.display_name,
        ttl_ms: u64::from(ttl_secs) * 1000,
        user_certificate: req.user_certificate.to_vec(),
        created_by: Some(caller.device),
        delegation: req.delegation.to_vec(),
    };
    let expires_at_ms = relay
        .store
        .create_invite(&lookup_hash(&token), &invite, now_ms())?;
    tracing::info!(by = %caller.user_id, role = super::role_name(role), "invite created");
    Ok(Reply::durable(response::Result::InviteCreated(
        InviteCreated { expires_at_ms },
    )))
}

/// Largest user certificate or credential chain the relay stores.
pub const MAX_CERTIFICATE_BYTES: usize = 4096;

/// Serves `GetInvite` (before authentication): what the invitee needs to
/// check the invite and build its credential.
pub(crate) fn invite_details(relay: &Relay, req: &GetInvite) -> RelayResult<response::Result> {
    let token: [u8; 32] =
        fixed("invite_token", &req.invite_token).map_err(|_| Refusal::InviteUnknown)?;
    let invite = relay
        .store
        .invite(&lookup_hash(&token))?
        .ok_or(Refusal::InviteUnknown)?;
    if invite.redeemed_at_ms != 0 {
        return Err(Refusal::InviteUsed.into());
    }
    if now_ms() >= invite.expires_at_ms {
        return Err(Refusal::InviteExpired.into());
    }
    Ok(response::Result::InviteDetails(InviteDetails {
        user_id: invite.user_id,
        display_name: invite.display_name,
        role: invite.role,
        user_certificate: invite.user_certificate.into(),
        authority_key: relay
            .store
            .authority_key()?
            .map(|key| key.to_vec().into())
            .unwrap_or_default(),
        expires_at_ms: invite.expires_at_ms,
        bootstrap: invite.created_by.is_empty(),
        delegation: invite.delegation.into(),
    }))
}
