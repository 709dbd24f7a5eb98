//! User certificates renewed before they expire, with nothing asked of the
//! user but to be online.
//!
//! A device holding the organisation's authority key (staff's) looks, every
//! `certificate_check`, for users whose certificate ends within
//! `certificate_renewal`, and issues each a new one for the identity key its
//! devices are certified by; the relay keeps it. Every device looks for its
//! own user's renewed certificate, certifies itself under it with the
//! user's identity key, publishes the new chain, and renews its leaf in
//! every group (and its KeyPackages) so that the group sees it too. Members
//! verify the new chain like any other; the identity key, and so the
//! safety number, stays the same.

use bytes::Bytes;
use convene_proto::relay::{
    request, response, GetUser, ListUsers, RenewCertificate, UpdateCredential, User,
};
use convene_proto::trust::{chain_user_certificate, read_user_certificate, Signed};
use prost::Message as _;
use zeroize::Zeroizing;

use super::Engine;
use crate::error::ClientError;
use crate::events::Event;
use crate::store::records::{self, IdentityRecord};
use crate::transport::TransportError;
use crate::trust::{Authority, IdentityKey, UserDetails, CERTIFICATE_BACKDATE_MS};
use crate::types::Role;

/// Users listed per page while looking for certificates to renew.
const PAGE: u32 = 200;
/// Pages read at most in one look (100,000 users).
const MAX_PAGES: u32 = 500;
/// A re-certification made again at most this many times when another
/// staff device changed the certificate between its read and its write.
const RECERTIFY_ATTEMPTS: usize = 3;

impl Engine {
    /// Runs the certificate checks when they are due.
    pub(super) async fn check_certificates(&mut self) {
        let now = crate::now_ms();
        if now < self.certificates_at_ms {
            return;
        }
        self.certificates_at_ms = now + self.shared.lifecycle.certificate_check.as_millis() as u64;
        if let Err(err) = self.renew_expiring_certificates().await {
            tracing::warn!(
                error = &err as &dyn std::error::Error,
                "renewing users' certificates failed; will try again"
            );
        }
        if let Err(err) = self.adopt_renewed_certificate().await {
            tracing::warn!(
                error = &err as &dyn std::error::Error,
                "taking up a renewed certificate failed; will try again"
            );
        }
    }

    fn stored_identity(&self) -> Result<IdentityRecord, ClientError> {
        self.store()
            .get_record(&records::identity_key())?
            .ok_or(ClientError::NotEnrolled)
    }

    /// The organisation's authority key, if this device holds it.
    pub(super) fn authority(&self) -> Result<Option<Authority>, ClientError> {
        let mut identity = self.stored_identity()?;
        let secret = Zeroizing::new(std::mem::take(&mut identity.authority_secret));
        wipe(&mut identity);
        Ok(<&[u8; 32]>::try_from(secret.as_slice())
            .ok()
            .map(Authority::from_secret_bytes))
    }

    pub(super) async fn ask(
        &mut self,
        kind: request::Kind,
    ) -> Result<response::Result, ClientError> {
        self.request(kind).await.map_err(ClientError::from)
    }

    /// Staff holding the authority key: renews every certificate that ends
    /// within the renewal window, and every one a staff member signed under
    /// a delegation (so that revoking the delegation later leaves those
    /// users in place).
    async fn renew_expiring_certificates(&mut self) -> Result<(), ClientError> {
        let Some(authority) = self.authority()? else {
            return Ok(());
        };
        let lifecycle = self.shared.lifecycle;
        let now = self.mls.anchor().now_ms();
        let due_before = now.saturating_add(lifecycle.certificate_renewal.as_millis() as u64);
        let mut after = String::new();
        let mut pages = 0;
        loop {
            let page = match self
                .ask(request::Kind::ListUsers(ListUsers {
                    after_user_id: after.clone(),
                    limit: PAGE,
                }))
                .await?
            {
                response::Result::UserList(page) => page,
                _ => return Err(ClientError::unexpected_response()),
            };
            for listed in &page.users {
                let expires = listed.certificate_expires_at_ms;
                if (expires != 0 && expires < due_before) || listed.certified_by_delegate {
                    self.renew_one(&authority, &listed.user_id, now).await?;
                }
            }
            // Pages must move forward: a relay that says "more" for ever
            // gets no more of this device's time than the directory is long.
            match page.users.last() {
                Some(last) if page.more && last.user_id > after && pages < MAX_PAGES => {
                    after = last.user_id.clone();
                    pages += 1;
                }
                _ => return Ok(()),
            }
        }
    }

    /// Issues `user_id` a new certificate for the identity key its current
    /// certificate and its devices' chains name.
    async fn renew_one(
        &mut self,
        authority: &Authority,
        user_id: &str,
        now: u64,
    ) -> Result<(), ClientError> {
        let Some(renew) = self
            .user_certificate_for(authority, user_id, now, |_| Ok(()))
            .await?
        else {
            tracing::warn!(
                user = user_id,
                "no verifiable identity to renew the certificate of"
            );
            return Ok(());
        };
        let issued = renew.user_certificate.clone();
        match self.request(request::Kind::RenewCertificate(renew)).await {
            Ok(_) => {
                self.note_issued(user_id, &issued)?;
                tracing::info!(user = user_id, "renewed a user's certificate");
                Ok(())
            }
            // Another staff device renewed it first, or re-certified the
            // user meanwhile: the next check looks again.
            Err(TransportError::Refused(r)) => {
                tracing::debug!(refusal = %r, user = user_id, "a renewal was refused");
                Ok(())
            }
            Err(err) => Err(err.into()),
        }
    }

    /// Keeps the certificate this device issued `user_id` and the relay
    /// took, to build the next one on whatever the relay serves.
    fn note_issued(&mut self, user_id: &str, certificate: &[u8]) -> Result<(), ClientError> {
        self.store().put(
            records::issued_certificate_key(user_id),
            certificate.to_vec(),
        );
        self.store().commit_durably()?;
        Ok(())
    }

    /// A new certificate for `user_id`, for the identity key its devices
    /// are certified by and certifying what they are certified as, with
    /// `edit` applied; ready for the relay, which takes it only in place
    /// of the certificate read here. `None` when the user has no device
    /// whose chain verifies now (see [`Engine::certified_identity`]).
    pub(super) async fn user_certificate_for(
        &mut self,
        authority: &Authority,
        user_id: &str,
        now: u64,
        edit: impl FnOnce(&mut UserDetails) -> Result<(), ClientError>,
    ) -> Result<Option<RenewCertificate>, ClientError> {
        use sha2::{Digest, Sha256};
        let user = match self
            .ask(request::Kind::GetUser(GetUser {
                user_id: user_id.to_string(),
            }))
            .await?
        {
            response::Result::User(user) => user,
            _ => return Err(ClientError::unexpected_response()),
        };
        let Some((mut details, identity_key, relied_on)) = self.certified_identity(&user) else {
            return Ok(None);
        };
        let base = self.newest_certified(&user, &identity_key, relied_on, &mut details)?;
        edit(&mut details)?;
        // After the certificate it builds on, whatever this device's clock
        // says, so that the relay (which refuses an older one) takes it.
        let not_before = now
            .saturating_sub(CERTIFICATE_BACKDATE_MS)
            .max(base.saturating_add(1));
        let not_after =
            now.saturating_add(self.shared.lifecycle.certificate_validity.as_millis() as u64);
        let renewed = authority.certify_user(
            &details,
            identity_key,
            false,
            not_before,
            not_after.saturating_sub(not_before),
        );
        self.store().put(
            records::renewal_floor_key(user_id),
            relied_on.to_be_bytes().to_vec(),
        );
        self.store().commit_durably()?;
        Ok(Some(RenewCertificate {
            user_id: user_id.to_string(),
            user_certificate: Bytes::from(renewed.encode_to_vec()),
            replaces: if user.user_certificate.is_empty() {
                Bytes::new()
            } else {
                Bytes::copy_from_slice(&Sha256::digest(&user.user_certificate))
            },
        }))
    }

    /// Takes into `details` what the newest certificate of `user` for
    /// `identity_key` certifies, and returns when it starts (at least
    /// `relied_on`, the start of the one the devices' chains carry).
    ///
    /// A re-certification the user's devices have not taken up yet is the
    /// newer word. The newest is chosen among the relay's copy, the last
    /// this device issued, and what this device's directory verified, so
    /// that a relay serving an older certificate (or none) cannot have old
    /// fields signed again.
    fn newest_certified(
        &self,
        user: &convene_proto::relay::User,
        identity_key: &[u8; 32],
        relied_on: u64,
        details: &mut UserDetails,
    ) -> Result<u64, ClientError> {
        let anchor = self.mls.anchor();
        let issued = self
            .store()
            .get(&records::issued_certificate_key(&user.user_id))?
            .map(|bytes| convene_proto::relay::User {
                user_certificate: bytes.into(),
                ..user.clone()
            });
        let newest = [Some(user), issued.as_ref()]
            .into_iter()
            .flatten()
            .filter_map(|held| {
                crate::directory::relay_certificate(anchor, held, identity_key, anchor.now_ms())
            })
            .filter(|c| c.not_before_ms >= relied_on && Role::from_wire(c.role) == details.role)
            .max_by_key(|c| c.not_before_ms);
        let mut base = relied_on;
        if let Some(current) = newest {
            base = current.not_before_ms;
            details.certified = crate::trust::certified_fields(&current);
            details.display_name = current.display_name;
            details.sector = current.sector;
        }
        let listed: Option<records::DirectoryRecord> = self
            .store()
            .get_record(&records::directory_key(&user.user_id))?;
        if let Some(listed) = listed.filter(|l| {
            l.certificate_from_ms > base
                && l.identity_key == identity_key
                && Role::from_wire(l.role) == details.role
        }) {
            base = listed.certificate_from_ms;
            details.display_name = listed.display_name;
            details.sector = listed.sector;
            details.certified = crate::trust::CertifiedFields {
                job_title: listed.job_title,
                organisation: listed.organisation,
                region: listed.region,
                programme: listed.programme,
                cohort: listed.cohort,
            };
        }
        Ok(base)
    }

    /// Issues `user_id` a certificate with `change` made to what it
    /// certifies, for the same identity key, and gives it to the relay;
    /// the user's devices take it up at their next certificate check, and
    /// everyone's directory shows it from their next sync.
    pub(super) async fn recertify(
        &mut self,
        user_id: &str,
        change: &crate::trust::CertifiedChange,
    ) -> Result<(), ClientError> {
        let authority = self.authority()?.ok_or_else(|| {
            ClientError::Forbidden(
                "re-certifying takes the organisation's authority key, which this device does \
                 not hold"
                    .into(),
            )
        })?;
        // Another staff device may renew or re-certify the user between
        // the read and the write: the relay then refuses, and the change
        // is made again on what it holds now.
        for _ in 0..RECERTIFY_ATTEMPTS {
            let now = self.mls.anchor().now_ms();
            let renew = self
                .user_certificate_for(&authority, user_id, now, |details| {
                    *details = change
                        .applied_to(details)
                        .map_err(ClientError::InvalidArgument)?;
                    Ok(())
                })
                .await?
                .ok_or_else(|| {
                    ClientError::InvalidArgument(format!(
                        "{user_id} has no device whose certificate verifies now: enrol them again"
                    ))
                })?;
            let issued = renew.user_certificate.clone();
            match self.request(request::Kind::RenewCertificate(renew)).await {
                Ok(response::Result::CertificateRenewed(_)) => {
                    self.note_issued(user_id, &issued)?;
                    tracing::info!(user = user_id, "re-certified a user");
                    return Ok(());
                }
                Ok(_) => return Err(ClientError::unexpected_response()),
                Err(TransportError::Refused(r)) if r.message.contains("changed since") => continue,
                Err(err) => return Err(err.into()),
            }
        }
        Err(ClientError::InvalidArgument(format!(
            "{user_id}'s certificate kept changing while this was made: try again"
        )))
    }

    /// What a user is certified as, and their identity key, from the device
    /// chain that verifies now with the newest user certificate.
    ///
    /// Only chains valid now count: a user whose certificate has already
    /// ended (staff offline for the whole renewal window, or the user let
    /// go) is enrolled again by staff, so that a relay cannot have an old
    /// identity key certified anew from a chain it kept. For the same
    /// reason this device remembers, per user, the start of the newest
    /// user certificate it relied on, and never relies on an older one.
    ///
    /// Every verifying chain must name the same identity key and role: a
    /// relay that lists a made-up device with a chain a delegate signed for
    /// another key must not get that key certified by the authority (the
    /// user's real devices would disagree).
    fn certified_identity(&self, user: &User) -> Option<(UserDetails, [u8; 32], u64)> {
        let anchor = self.mls.anchor();
        let floor = self.renewal_floor(&user.user_id);
        let now = anchor.now_ms();
        let verified: Vec<_> = user
            .devices
            .iter()
            .filter(|d| !d.revoked && !self.is_revoked(&user.user_id, &d.device_key))
            .filter_map(|device| {
                let verified = anchor
                    .verify(&device.credential, &device.device_key, now)
                    .ok()?;
                let (not_before, _) = crate::trust::claimed_validity(&device.credential)?;
                (verified.user_id == user.user_id
                    && not_before >= floor
                    && not_before <= now.saturating_add(crate::trust::CLOCK_LEEWAY_MS))
                .then_some((verified, not_before))
            })
            .collect();
        let agreed = verified.windows(2).all(|pair| {
            pair[0].0.identity_key == pair[1].0.identity_key && pair[0].0.role == pair[1].0.role
        });
        if !agreed {
            tracing::warn!(
                user = %user.user_id,
                "the user's devices are certified for different identity keys or roles; not renewing"
            );
            return None;
        }
        verified
            .into_iter()
            .max_by_key(|(_, not_before)| *not_before)
            .map(|(verified, not_before)| {
                (
                    UserDetails {
                        user_id: verified.user_id.clone(),
                        display_name: verified.display_name.clone(),
                        role: verified.role,
                        sector: verified.sector.clone(),
                        certified: verified.certified.clone(),
                    },
                    verified.identity_key,
                    not_before,
                )
            })
    }

    /// The start of the newest user certificate this device relied on to
    /// renew `user_id`'s (0 if none).
    fn renewal_floor(&self, user_id: &str) -> u64 {
        match self.store().get(&records::renewal_floor_key(user_id)) {
            Ok(Some(raw)) => raw.try_into().map_or(0, u64::from_be_bytes),
            _ => 0,
        }
    }

    /// Every device: takes up its user's renewed certificate, if there is
    /// one that outlasts the one in its chain.
    pub(super) async fn adopt_renewed_certificate(&mut self) -> Result<(), ClientError> {
        let own = self.mls.user_id().to_string();
        let user = match self
            .ask(request::Kind::GetUser(GetUser {
                user_id: own.clone(),
            }))
            .await?
        {
            response::Result::User(user) => user,
            _ => return Err(ClientError::unexpected_response()),
        };
        let current = chain_user_certificate(self.mls.chain()).unwrap_or_default();
        if user.user_certificate.is_empty() || user.user_certificate.as_ref() == current {
            return Ok(());
        }
        let held_until = read_user_certificate(&current).map_or(0, |c| c.not_after_ms);
        let anchor = self.mls.anchor().clone();
        let signed = Signed::decode(user.user_certificate.as_ref())
            .map_err(|_| ClientError::Untrusted("an unreadable renewed certificate".into()))?;
        let renewed = anchor
            // Renewals come from the authority itself.
            .verify_user_certificate(&signed, None, anchor.now_ms())
            .map_err(|err| ClientError::Untrusted(format!("a renewed certificate: {err}")))?;
        if renewed.not_after_ms <= held_until {
            return Ok(());
        }
        let mut identity = self.stored_identity()?;
        let identity_secret = Zeroizing::new(identity.identity_secret.clone());
        let device_secret = Zeroizing::new(identity.device_secret.clone());
        let authority_secret = Zeroizing::new(identity.authority_secret.clone());
        let identity_secret: &[u8; 32] = identity_secret
            .as_slice()
            .try_into()
            .map_err(|_| ClientError::DamagedState("this device holds no identity key"))?;
        let identity_key = IdentityKey::from_secret_bytes(identity_secret);
        if renewed.user_id != own
            || renewed.bound_by_invite
            || renewed.subject_key != identity_key.public()
            || Role::from_wire(renewed.role) != Role::from_wire(identity.role)
        {
            return Err(ClientError::Untrusted(
                "a renewed certificate for another identity or role".into(),
            ));
        }
        let device = self.mls.key().public();
        let certificate = identity_key.certify_device(&own, device, anchor.now_ms());
        let chain = IdentityKey::chain(signed, None, certificate);
        anchor
            .verify(&chain, device.as_bytes(), anchor.now_ms())
            .map_err(|err| ClientError::Untrusted(format!("the renewed chain: {err}")))?;
        identity.credential = chain.clone();
        self.store().put_record(records::identity_key(), &identity);
        wipe(&mut identity);
        drop((device_secret, authority_secret));
        self.store().commit_durably()?;
        self.mls.set_chain(chain.clone());
        self.ask(request::Kind::UpdateCredential(UpdateCredential {
            credential: Bytes::from(chain),
        }))
        .await?;
        // Every leaf and KeyPackage carries the new chain from here.
        self.renew_all_keys()?;
        self.lifecycle_at = tokio::time::Instant::now();
        tracing::info!(
            valid_until_ms = renewed.not_after_ms,
            "this device's certificate was renewed"
        );
        self.emit(Event::CertificateRenewed {
            valid_until_ms: renewed.not_after_ms,
        });
        self.publish();
        Ok(())
    }
}

/// Wipes the secret keys from an identity record read for a moment.
fn wipe(identity: &mut IdentityRecord) {
    use zeroize::Zeroize;
    identity.device_secret.zeroize();
    identity.identity_secret.zeroize();
    identity.authority_secret.zeroize();
}
