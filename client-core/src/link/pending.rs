//! The new device's side of a link: asking, showing the code, and
//! waiting for the approval it can open.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use convene_proto::auth::AuthPurpose;
use convene_proto::relay::{request, response, ErrorCode, GetLink, RequestLink, UpdateCredential};
use convene_proto::trust::LinkBundle;
use spake2::{Ed25519Group, Password, Spake2};
use zeroize::Zeroizing;

use super::{identities, request_tag, BundleKey, LinkCode, PASSWORD_DIGITS};
use crate::error::{ClientError, GaveUp};
use crate::settle::settle_device;
use crate::store::fresh::Before;
use crate::store::records::IdentityRecord;
use crate::store::LocalStore;
use crate::transport::{authenticate, Connection, Connector, TransportError};
use crate::trust::{Authority, IdentityKey, TrustAnchor};
use crate::types::{Identity, Role};
use crate::DeviceKey;

/// How often a new device asks whether it was approved.
const APPROVAL_POLL: Duration = Duration::from_millis(500);

/// A new device waiting for one of its user's devices to approve it.
pub struct PendingLink {
    store: Arc<LocalStore>,
    connector: Arc<dyn Connector>,
    relay_url: String,
    pinned_certificate: Vec<u8>,
    user_id: String,
    key: DeviceKey,
    code: LinkCode,
    /// SPAKE2's state until the first answer, then the key it gave: later
    /// answers are opened with that key, never another.
    pake: Mutex<PakeState>,
    expires_at_ms: u64,
    /// The state directory, and what it held before this device was set
    /// up in it: put back if the link is not approved.
    setup: Option<(std::path::PathBuf, Before)>,
}

enum PakeState {
    Waiting(Spake2<Ed25519Group>),
    Answered(BundleKey),
    Spent,
}

impl PendingLink {
    pub(crate) async fn request(
        store: Arc<LocalStore>,
        connector: Arc<dyn Connector>,
        relay_url: String,
        pinned_certificate: Vec<u8>,
        user_id: &str,
    ) -> Result<PendingLink, ClientError> {
        let key = DeviceKey::generate();
        let password = Zeroizing::new(random_digits(PASSWORD_DIGITS));
        let (new_device, approving) = identities(user_id, key.public().as_bytes());
        let (pake, pake_message) = Spake2::<Ed25519Group>::start_a(
            &Password::new(password.as_bytes()),
            &new_device,
            &approving,
        );
        let (connection, _pushes) = connector.connect().await?;
        let signature = key.sign_challenge(
            AuthPurpose::Link,
            &connection.relay_id(),
            &connection.nonce(),
        );
        let request = request::Kind::RequestLink(RequestLink {
            user_id: user_id.to_string(),
            device_key: Bytes::copy_from_slice(key.public().as_bytes()),
            signature: Bytes::copy_from_slice(&signature),
            pake_message: Bytes::copy_from_slice(&pake_message),
        });
        let expires_at_ms = match connection.request(request).await {
            Ok(response::Result::LinkRequested(requested)) => requested.expires_at_ms,
            Ok(_) => return Err(TransportError::Protocol("expected LinkRequested".into()).into()),
            Err(TransportError::Refused(r)) if r.code == ErrorCode::NotFound => {
                return Err(ClientError::UnknownUser(user_id.to_string()))
            }
            Err(TransportError::Refused(r)) if r.code == ErrorCode::QueueFull => {
                return Err(ClientError::InvalidArgument(format!(
                    "{user_id} has too many devices waiting to be linked; try again in ten minutes"
                )))
            }
            Err(err) => return Err(err.into()),
        };
        let code = LinkCode {
            tag: request_tag(key.public().as_bytes(), &pake_message),
            password,
        };
        Ok(PendingLink {
            store,
            connector,
            relay_url,
            pinned_certificate,
            user_id: user_id.to_string(),
            key,
            code,
            pake: Mutex::new(PakeState::Waiting(pake)),
            expires_at_ms,
            setup: None,
        })
    }

    /// Puts `dir` back as `before` if this link fails.
    pub(crate) fn undo_on_failure(mut self, dir: std::path::PathBuf, before: Before) -> Self {
        self.setup = Some((dir, before));
        self
    }

    /// The code to type on one of the user's other devices (12 digits in
    /// groups of four). Show it only on this device's screen.
    pub fn code(&self) -> String {
        self.code.display()
    }

    /// When the request lapses if nobody approves it.
    pub fn expires_at_ms(&self) -> u64 {
        self.expires_at_ms
    }

    /// Waits until one of the user's devices approves the link (or
    /// `timeout`), then enrols this device with what it sealed. The new
    /// device joins the user's groups as the approving device adds it.
    pub async fn wait_for_approval(mut self, timeout: Duration) -> Result<Identity, ClientError> {
        let setup = self.setup.take();
        let linked = self.wait(timeout).await;
        if let (Err(_), Some((dir, before))) = (&linked, setup) {
            before.restore(&dir);
        }
        linked
    }

    async fn wait(self, timeout: Duration) -> Result<Identity, ClientError> {
        let deadline = tokio::time::Instant::now() + timeout;
        // One connection serves the polls until the relay ends it (it closes
        // connections that stay unauthenticated too long).
        let mut connection = None;
        loop {
            if let Some(identity) = self.try_complete(&mut connection).await? {
                return Ok(identity);
            }
            if tokio::time::Instant::now() + APPROVAL_POLL >= deadline {
                return Err(ClientError::GaveUp(GaveUp::LinkNotApproved));
            }
            tokio::time::sleep(APPROVAL_POLL).await;
        }
    }

    /// One look at the request: `None` while it waits.
    async fn try_complete(
        &self,
        connection: &mut Option<Arc<dyn Connection>>,
    ) -> Result<Option<Identity>, ClientError> {
        let current = match connection.take() {
            Some(open) => open,
            None => match self.connector.connect().await {
                Ok((open, _pushes)) => open,
                // The relay may be restarting: keep waiting.
                Err(err) => {
                    tracing::debug!(
                        error = &err as &dyn std::error::Error,
                        "link status not reachable"
                    );
                    return Ok(None);
                }
            },
        };
        let request = request::Kind::GetLink(GetLink {
            device_key: Bytes::copy_from_slice(self.key.public().as_bytes()),
        });
        let status = match current.request(request).await {
            Ok(response::Result::LinkStatus(status)) => status,
            Ok(_) => return Err(TransportError::Protocol("expected LinkStatus".into()).into()),
            Err(TransportError::Refused(r)) if r.code == ErrorCode::NotFound => {
                return Err(ClientError::GaveUp(GaveUp::LinkExpired))
            }
            Err(TransportError::Refused(r)) => return Err(ClientError::Refused(r)),
            Err(_) => return Ok(None),
        };
        if !status.approved {
            *connection = Some(current);
            return Ok(None);
        }
        let bundle = self.open_answer(&status.pake_message, &status.sealed)?;
        let mut identity = self.identity_from(&bundle)?;
        let authenticated = match authenticate(current.as_ref(), &self.key, None).await {
            Ok(authenticated) => authenticated,
            Err(TransportError::Refused(r)) => return Err(ClientError::Refused(r)),
            // The connection ended (its deadline, say): the approval stays,
            // and the next look authenticates on a new connection.
            Err(_) => return Ok(None),
        };
        if authenticated.user_id != identity.user_id {
            return Err(ClientError::Untrusted(format!(
                "the relay authenticated this device as {} but its certificate names {}",
                authenticated.user_id, identity.user_id
            )));
        }
        // The relay registered this device without a credential (only the
        // sealed bundle carries it): set it before anyone looks it up.
        let update = request::Kind::UpdateCredential(UpdateCredential {
            credential: Bytes::from(identity.credential.clone()),
        });
        match current.request(update).await {
            Ok(response::Result::CredentialUpdated(_)) => {}
            Ok(_) => {
                return Err(TransportError::Protocol("expected CredentialUpdated".into()).into())
            }
            Err(TransportError::Refused(r)) => return Err(ClientError::Refused(r)),
            Err(_) => return Ok(None),
        }
        identity.relay_id = current.relay_id().to_vec();
        let key = DeviceKey::from_secret_bytes(&self.key.to_secret_bytes());
        // The stock is replaced on the lifecycle the device is opened with.
        let lifecycle = crate::lifecycle::KeyLifecycle::default();
        settle_device(&self.store, current.as_ref(), key, identity, &lifecycle)
            .await
            .map(Some)
    }

    /// Opens the approving device's answer. The first answer fixes the
    /// key: a relay cannot have a second guess by answering again.
    fn open_answer(&self, pake_message: &[u8], sealed: &[u8]) -> Result<LinkBundle, ClientError> {
        let malformed =
            || ClientError::Untrusted("the link approval is malformed; ask to link again".into());
        let mut pake = self.pake.lock().unwrap_or_else(|p| p.into_inner());
        *pake = match std::mem::replace(&mut *pake, PakeState::Spent) {
            PakeState::Waiting(state) => {
                let shared = Zeroizing::new(state.finish(pake_message).map_err(|_| malformed())?);
                PakeState::Answered(BundleKey::derive(&shared, self.key.public().as_bytes()))
            }
            settled => settled,
        };
        match &*pake {
            PakeState::Answered(key) => key.open(sealed),
            _ => Err(malformed()),
        }
    }

    /// Checks the approving device's bundle: the chain must certify this
    /// device as the requested user under the authority the approving
    /// device named, by the identity key it handed over. (The bundle is
    /// authenticated by the code: only a device that was given it could
    /// seal it.)
    fn identity_from(&self, bundle: &LinkBundle) -> Result<IdentityRecord, ClientError> {
        let bad = |what: &str| ClientError::Untrusted(format!("the link approval {what}"));
        let authority_key: [u8; 32] = bundle
            .authority_key
            .as_slice()
            .try_into()
            .map_err(|_| bad("names no authority"))?;
        let now = crate::now_ms();
        let verified = TrustAnchor::new(authority_key)
            .verify(&bundle.credential, self.key.public().as_bytes(), now)
            .map_err(|err| bad(&format!("carries a bad certificate: {err}")))?;
        if verified.user_id != self.user_id {
            return Err(bad(&format!("is for {}", verified.user_id)));
        }
        let identity_secret = Zeroizing::new(bundle.identity_secret.clone());
        let identity_secret: &[u8; 32] = identity_secret
            .as_slice()
            .try_into()
            .map_err(|_| bad("carries no identity key"))?;
        if IdentityKey::from_secret_bytes(identity_secret).public() != verified.identity_key {
            return Err(bad("carries another identity key"));
        }
        let authority_secret = Zeroizing::new(bundle.authority_secret.clone());
        if !authority_secret.is_empty() {
            let secret: &[u8; 32] = authority_secret
                .as_slice()
                .try_into()
                .map_err(|_| bad("carries a damaged authority key"))?;
            if Authority::from_secret_bytes(secret).public() != authority_key
                || verified.role != Role::Staff
            {
                return Err(bad("carries an authority key it should not"));
            }
        }
        Ok(IdentityRecord {
            user_id: verified.user_id,
            display_name: verified.display_name,
            role: verified.role.to_wire() as i32,
            device_secret: self.key.to_secret_bytes().to_vec(),
            relay_url: self.relay_url.clone(),
            relay_id: Vec::new(),
            enrolled_at_ms: now,
            pinned_certificate: self.pinned_certificate.clone(),
            identity_secret: identity_secret.to_vec(),
            authority_key: authority_key.to_vec(),
            credential: bundle.credential.clone(),
            authority_secret: authority_secret.to_vec(),
            sector: verified.sector,
        })
    }
}

/// `count` uniformly random decimal digits.
fn random_digits(count: usize) -> String {
    use rand::Rng;
    let mut rng = rand::rngs::OsRng;
    (0..count)
        .map(|_| char::from(b'0' + rng.gen_range(0..10u8)))
        .collect()
}
