//! Letting every staff member invite: the device holding the authority key
//! delegates to a colleague's identity key (and can take it back), and a
//! staff device without the authority key certifies under its delegation.

use bytes::Bytes;
use convene_proto::relay::{request, response, Delegate, ErrorCode, GetUser, Revoke, User};
use convene_proto::trust::Signed;
use prost::Message as _;
use zeroize::Zeroizing;

use super::Client;
use crate::error::ClientError;
use crate::store::records::{identity_key, IdentityRecord};
use crate::trust::{verify_delegation, Certifier, IdentityKey, DELEGATION_VALIDITY_MS};
use crate::types::Role;

impl Client {
    /// Lets staff member `user` invite and certify leaders (and staff too
    /// with `may_certify_staff`) with their own identity key for a year
    /// ([`DELEGATION_VALIDITY_MS`]), so that the authority key can stay on
    /// this device (staff holding the authority key only). Their devices
    /// find the delegation on the relay when they next invite.
    pub async fn delegate(&self, user: &str, may_certify_staff: bool) -> Result<(), ClientError> {
        let authority = self.authority()?;
        let anchor = self.anchor()?;
        let peer = self.verified_peer(user, &anchor).await?;
        if peer.role != Role::Staff {
            return Err(ClientError::InvalidArgument(format!(
                "{user} is not staff; only staff can be delegated to"
            )));
        }
        let delegation = authority.delegate(
            user,
            peer.identity_key,
            may_certify_staff,
            anchor
                .now_ms()
                .saturating_sub(crate::trust::CERTIFICATE_BACKDATE_MS),
            DELEGATION_VALIDITY_MS,
        );
        let request = request::Kind::Delegate(Delegate {
            user_id: user.to_string(),
            delegation: delegation.encode_to_vec().into(),
        });
        match self.relay(request).await? {
            response::Result::Delegated(_) => Ok(()),
            _ => Err(ClientError::unexpected_response()),
        }
    }

    /// Ends staff member `user`'s delegation (staff holding the authority
    /// key only): every certificate it signed is refused by every client
    /// from then on. The staff member stays enrolled.
    pub async fn revoke_delegation(&self, user: &str) -> Result<(), ClientError> {
        let authority = self.authority()?;
        let anchor = self.anchor()?;
        // The delegated key is the staff member's identity key, as their
        // verified chains name it: never a key the relay's copy of the
        // delegation names, which the relay could have made up.
        let mut keys = vec![self.verified_peer(user, &anchor).await?.identity_key];
        // A delegation the authority did sign for another key of theirs
        // (an identity issued again) is revoked too.
        let staff = self.user_record(user).await?;
        if let Ok(signed) = Signed::decode(staff.delegation.as_ref()) {
            if let Ok(other) = verify_delegation(&anchor.authority_key(), &signed, None, {
                // Checked at its own start, so that an expired one counts.
                convene_proto::trust::StaffDelegation::decode(signed.body.as_slice())
                    .map(|d| d.not_before_ms)
                    .unwrap_or(0)
            }) {
                if other.staff_user_id == user && !keys.contains(&other.delegate_key) {
                    keys.push(other.delegate_key);
                }
            }
        }
        for key in keys {
            let revocation = authority.revoke_delegation(user, key, anchor.now_ms());
            let request = request::Kind::Revoke(Revoke {
                revocation: revocation.encode_to_vec().into(),
                user_id: user.to_string(),
                device_key: Bytes::new(),
                delegation_only: true,
            });
            match self.relay(request).await? {
                response::Result::RevocationStored(_) => {}
                _ => return Err(ClientError::unexpected_response()),
            }
        }
        Ok(())
    }

    /// Who certifies the users this device invites: the authority, when it
    /// holds the key, or this staff member under the delegation the relay
    /// keeps for them (checked against the pinned authority first).
    pub(super) async fn certifier(&self) -> Result<Certifier, ClientError> {
        if let Ok(authority) = self.authority() {
            return Ok(Certifier::Authority(authority));
        }
        let no_delegation = || {
            ClientError::Forbidden(
                "only staff can invite, and this device can neither certify for the \
                 organisation nor under a delegation from it (staff holding the authority \
                 key can delegate to another staff member)"
                    .into(),
            )
        };
        let anchor = self.anchor()?;
        let own = self.user_record(self.user_id()).await?;
        if own.delegation.is_empty() {
            return Err(no_delegation());
        }
        let signed = Signed::decode(own.delegation.as_ref()).map_err(|_| no_delegation())?;
        let delegation = verify_delegation(&anchor.authority_key(), &signed, None, anchor.now_ms())
            .map_err(|err| {
                ClientError::Untrusted(format!("this staff member's delegation: {err}"))
            })?;
        let identity: IdentityRecord = self
            .store()
            .get_committed_record(&identity_key())?
            .ok_or(ClientError::NotEnrolled)?;
        let secret = Zeroizing::new(identity.identity_secret);
        let secret: &[u8; 32] = secret.as_slice().try_into().map_err(|_| no_delegation())?;
        let key = IdentityKey::from_secret_bytes(secret);
        if delegation.staff_user_id != self.user_id() || delegation.delegate_key != key.public() {
            return Err(ClientError::Untrusted(
                "the relay showed a delegation made for someone else".into(),
            ));
        }
        if anchor
            .revocations()
            .covers(&delegation.staff_user_id, &delegation.delegate_key)
        {
            return Err(ClientError::Forbidden(
                "the organisation revoked this staff member's delegation".into(),
            ));
        }
        Ok(Certifier::Delegate {
            key,
            delegation: signed,
            authority_key: anchor.authority_key(),
            may_certify_staff: delegation.may_certify_staff,
        })
    }

    /// The relay's record of `user`.
    pub(super) async fn user_record(&self, user: &str) -> Result<User, ClientError> {
        let request = request::Kind::GetUser(GetUser {
            user_id: user.to_string(),
        });
        match self.relay(request).await {
            Ok(response::Result::User(found)) => Ok(found),
            Ok(_) => Err(ClientError::unexpected_response()),
            Err(ClientError::Refused(r)) if r.code == ErrorCode::NotFound => {
                Err(ClientError::UnknownUser(user.to_string()))
            }
            Err(err) => Err(err),
        }
    }
}
