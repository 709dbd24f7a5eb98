//! The trust side of the client's API: inviting (staff holding the
//! authority key, or a delegation from it), revoking, and safety numbers.

use convene_proto::ids::{check_user_id, DevicePublicKey};
use convene_proto::invite::{authority_fingerprint, Invite as ProtoInvite, InviteSecret};
use convene_proto::relay::{request, response, CreateInvite, ErrorCode, Revoke};
use prost::Message as _;

use super::Client;
use crate::error::ClientError;
use crate::store::records::{identity_key, IdentityRecord};
use crate::store::StoreError;
use crate::trust::CERTIFICATE_BACKDATE_MS;
use crate::trust::{
    invite_public_key, safety_number, Authority, CertificateTerms, TrustAnchor, UserDetails,
    VerifiedDevice,
};
use crate::types::Invite;

/// What `convene verify` shows: the number two users compare out of band.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SafetyNumber {
    /// The other user's id.
    pub user_id: String,
    /// The other user's name, as their certificate gives it.
    pub display_name: String,
    /// 60 digits in 12 groups of 5, the same on both sides.
    pub number: String,
}

impl Client {
    /// Creates a one-time invite for the user `details` describes (staff
    /// holding the organisation's authority key, or a delegation from it:
    /// see [`Client::delegate`]). The user is certified here, on this
    /// device; the invite code carries the secret, which the relay never
    /// sees.
    pub async fn invite(&self, details: &UserDetails) -> Result<Invite, ClientError> {
        check_user_id(&details.user_id)
            .map_err(|err| ClientError::InvalidArgument(err.to_string()))?;
        let name = details.display_name.trim();
        // Refused at issue time: a name with a bidi override or an
        // invisible character would be certified for good.
        convene_proto::ids::check_display_name(name)
            .map_err(|err| ClientError::InvalidArgument(err.to_string()))?;
        details.check().map_err(ClientError::InvalidArgument)?;
        let certifier = self.certifier().await?;
        if !certifier.may_certify(details.role) {
            return Err(ClientError::Forbidden(
                "your delegation covers inviting leaders, not staff".into(),
            ));
        }
        let invite = ProtoInvite {
            secret: InviteSecret::generate(),
            authority_fingerprint: Some(authority_fingerprint(&certifier.authority_key())),
            relay_url: Some(self.inner.shared.identity.relay_url.clone()),
        };
        let details = UserDetails {
            display_name: name.to_string(),
            ..details.clone()
        };
        let now = self.anchor()?.now_ms();
        let terms = CertificateTerms {
            subject_key: invite_public_key(&invite.secret.invite_key_seed()),
            bound_by_invite: true,
            not_before_ms: now.saturating_sub(CERTIFICATE_BACKDATE_MS),
            validity_ms: self.inner.shared.lifecycle.certificate_validity.as_millis() as u64
                + CERTIFICATE_BACKDATE_MS,
        };
        let certificate = certifier.certify_user(&details, &terms);
        let request = request::Kind::CreateInvite(CreateInvite {
            role: details.role.to_wire() as i32,
            user_id: details.user_id.clone(),
            display_name: details.display_name.clone(),
            ttl_seconds: 0,
            invite_token: invite.secret.relay_token().to_vec().into(),
            user_certificate: certificate.encode_to_vec().into(),
            delegation: certifier
                .delegation()
                .map(|d| d.encode_to_vec().into())
                .unwrap_or_default(),
        });
        match self.relay(request).await {
            Ok(response::Result::InviteCreated(created)) => Ok(Invite {
                code: invite.to_code(),
                expires_at_ms: created.expires_at_ms,
            }),
            Ok(_) => Err(ClientError::unexpected_response()),
            Err(ClientError::Refused(r)) if r.code == ErrorCode::Forbidden => {
                Err(ClientError::Forbidden("only staff can invite".into()))
            }
            Err(err) => Err(err),
        }
    }

    /// Re-certifies `user` with `change` made to what staff certify about
    /// them (staff holding the authority key): a new user certificate for
    /// the same identity key, kept by the relay, which every client checks
    /// against the authority. The user's devices take it up at their next
    /// certificate check (their leaves and KeyPackages then carry it);
    /// everyone's directory shows it from their next sync, this device's
    /// at once. Returns the user as this device's directory now shows them.
    ///
    /// Errors: `InvalidArgument` for an empty change or a field out of its
    /// bounds (named), or a user with no device whose chain verifies now;
    /// `Forbidden` without the authority key; `UnknownUser`.
    pub async fn recertify(
        &self,
        user: &str,
        change: &crate::trust::CertifiedChange,
    ) -> Result<crate::directory::Person, ClientError> {
        check_user_id(user).map_err(|err| ClientError::InvalidArgument(err.to_string()))?;
        if change.is_empty() {
            return Err(ClientError::InvalidArgument(
                "say what to change (a name, title, organisation, sector, region, programme \
                 or cohort)"
                    .into(),
            ));
        }
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.inner
            .commands
            .send(crate::engine::Command::Recertify {
                user_id: user.to_string(),
                change: change.clone(),
                reply,
            })
            .await
            .map_err(|_| ClientError::Stopped)?;
        match answer.await.map_err(|_| ClientError::Stopped)? {
            Err(ClientError::Refused(r)) if r.code == ErrorCode::NotFound => {
                return Err(ClientError::UnknownUser(user.to_string()))
            }
            other => other?,
        }
        self.sync_directory().await?;
        self.person(user)?
            .ok_or_else(|| ClientError::UnknownUser(user.to_string()))
    }

    /// Suspends `user` (staff holding the authority key): the relay cuts
    /// off every device of theirs at once, and every member's client that
    /// may change a group they are in removes them.
    pub async fn suspend_user(&self, user: &str) -> Result<(), ClientError> {
        self.revoke(user, None).await
    }

    /// Revokes one device of `user` (a lost phone, say), as
    /// [`Client::suspend_user`] does for all of them.
    pub async fn revoke_device(&self, user: &str, device: [u8; 32]) -> Result<(), ClientError> {
        self.revoke(user, Some(device)).await
    }

    async fn revoke(&self, user: &str, device: Option<[u8; 32]>) -> Result<(), ClientError> {
        check_user_id(user).map_err(|err| ClientError::InvalidArgument(err.to_string()))?;
        let authority = self.authority()?;
        let signed = authority.revoke(user, device.map(DevicePublicKey), crate::now_ms());
        let request = request::Kind::Revoke(Revoke {
            revocation: signed.encode_to_vec().into(),
            user_id: user.to_string(),
            device_key: device.map(|d| d.to_vec().into()).unwrap_or_default(),
            delegation_only: false,
        });
        match self.relay(request).await {
            Ok(response::Result::RevocationStored(_)) => Ok(()),
            Ok(_) => Err(ClientError::unexpected_response()),
            Err(ClientError::Refused(r)) if r.code == ErrorCode::NotFound => {
                Err(ClientError::UnknownUser(user.to_string()))
            }
            Err(err) => Err(err),
        }
    }

    /// The safety number of this user and `user`: both see the same digits
    /// when each holds the other's real identity key. The peer's key comes
    /// from its devices' certificate chains, verified against the pinned
    /// authority.
    pub async fn safety_number(&self, user: &str) -> Result<SafetyNumber, ClientError> {
        let anchor = self.anchor()?;
        let own = self.own_device(&anchor)?;
        let peer = self.verified_peer(user, &anchor).await?;
        Ok(SafetyNumber {
            number: safety_number(
                (&own.user_id, &own.identity_key),
                (&peer.user_id, &peer.identity_key),
            ),
            user_id: peer.user_id,
            display_name: peer.display_name,
        })
    }

    /// `user` as their devices' chains certify them (every set-up device
    /// must verify, and all under one identity key).
    pub(super) async fn verified_peer(
        &self,
        user: &str,
        anchor: &TrustAnchor,
    ) -> Result<VerifiedDevice, ClientError> {
        let found = self.user_record(user).await?;
        let now = anchor.now_ms();
        let mut peer: Option<VerifiedDevice> = None;
        // A linked device has no credential on the relay until it has
        // opened its approval and set it: it is no one's yet.
        // A revoked device is no one's, whatever the relay says of it.
        let set_up = |d: &&convene_proto::relay::Device| {
            !d.revoked
                && !d.credential.is_empty()
                && !anchor.revocations().covers(user, &d.device_key)
        };
        for device in found.devices.iter().filter(set_up) {
            let verified = anchor
                .verify(&device.credential, &device.device_key, now)
                .map_err(|err| ClientError::Untrusted(format!("{user}'s device: {err}")))?;
            if verified.user_id != user {
                return Err(ClientError::Untrusted(format!(
                    "the relay showed a device of {} as {user}'s",
                    verified.user_id
                )));
            }
            if peer
                .as_ref()
                .is_some_and(|p| p.identity_key != verified.identity_key)
            {
                return Err(ClientError::Untrusted(format!(
                    "{user}'s devices are certified by different identity keys"
                )));
            }
            peer = Some(verified);
        }
        peer.ok_or_else(|| ClientError::Untrusted(format!("{user} has no certified device")))
    }

    pub(super) fn anchor(&self) -> Result<TrustAnchor, ClientError> {
        let key: [u8; 32] = self
            .inner
            .shared
            .identity
            .authority_key
            .as_slice()
            .try_into()
            .map_err(|_| damaged("the pinned authority key"))?;
        Ok(TrustAnchor::new(key)
            .with_clock_offset(self.inner.shared.clock_offset_ms)
            .with_revocations(self.inner.shared.revocations.clone()))
    }

    /// This device's own chain, verified (as stored: it changes when its
    /// certificate is renewed).
    fn own_device(&self, anchor: &TrustAnchor) -> Result<VerifiedDevice, ClientError> {
        anchor
            .verify(
                &self.own_chain()?,
                self.inner.shared.device.as_bytes(),
                anchor.now_ms(),
            )
            .map_err(|err| ClientError::Untrusted(format!("this device's own certificate: {err}")))
    }

    fn own_chain(&self) -> Result<Vec<u8>, ClientError> {
        let mut identity: IdentityRecord = self
            .inner
            .shared
            .store
            .get_committed_record(&crate::store::records::identity_key())?
            .ok_or(ClientError::NotEnrolled)?;
        zeroize::Zeroize::zeroize(&mut identity.device_secret);
        zeroize::Zeroize::zeroize(&mut identity.identity_secret);
        zeroize::Zeroize::zeroize(&mut identity.authority_secret);
        Ok(identity.credential)
    }

    /// When this user's certificate, as this device holds it, stops being
    /// valid (ms since the Unix epoch): staff renew it well before.
    pub fn certificate_valid_until_ms(&self) -> Result<u64, ClientError> {
        crate::trust::claimed_validity(&self.own_chain()?)
            .map(|(_, until)| until)
            .ok_or_else(|| damaged("this device's credential"))
    }

    /// The authority key, if this device holds it.
    pub(super) fn authority(&self) -> Result<Authority, ClientError> {
        let identity: IdentityRecord = self
            .inner
            .shared
            .store
            .get_committed_record(&identity_key())?
            .ok_or(ClientError::NotEnrolled)?;
        let secret = zeroize::Zeroizing::new(identity.authority_secret);
        let secret: &[u8; 32] = secret.as_slice().try_into().map_err(|_| {
            ClientError::Forbidden(
                "this device does not hold the organisation's authority key".into(),
            )
        })?;
        Ok(Authority::from_secret_bytes(secret))
    }
}

fn damaged(what: &str) -> ClientError {
    ClientError::Storage(StoreError::Corrupt(format!("{what} is damaged")))
}
