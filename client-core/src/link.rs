//! Linking a user's second device: the short code both devices show, and
//! the bundle the approving device seals to the new one.
//!
//! The new device asks the relay to be linked, naming its device key and an
//! HPKE link key. The user's existing device lists the request and shows a
//! code computed from both keys; the user checks it against the code on the
//! new device. A relay that swapped in keys of its own would make the codes
//! differ (it would have to find other keys with the same 40-bit code within
//! the request's ten minutes). Only then does the existing device certify
//! the new device key and seal, to the link key, what the new device needs:
//! the authority it must pin, its credential chain, and the user's identity
//! key (and, for staff, the organisation's authority key).

use convene_proto::trust::LinkBundle;
use prost::Message;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use convene_proto::auth::AuthPurpose;
use convene_proto::relay::{request, response, ErrorCode, GetLink, RequestLink};

use crate::builder::settle_device;
use crate::error::ClientError;
use crate::sealing::SealingKey;
use crate::store::records::IdentityRecord;
use crate::store::LocalStore;
use crate::transport::{authenticate, Connection, Connector, TransportError};
use crate::trust::{Authority, IdentityKey, TrustAnchor};
use crate::types::{Identity, Role};
use crate::DeviceKey;

const HPKE_INFO: &[u8] = b"convene/link/v1";
/// Digits in a link code.
const CODE_DIGITS: usize = 12;
/// How often a new device asks whether it was approved.
const APPROVAL_POLL: Duration = Duration::from_millis(500);

/// The code a link request shows on both devices: 12 digits in groups of
/// four, from the new device's key and link key.
pub fn link_code(device_key: &[u8], link_key: &[u8]) -> String {
    let digest = Sha256::new()
        .chain_update(b"convene/link-code/v1\0")
        .chain_update(device_key)
        .chain_update(link_key)
        .finalize();
    let mut value = u64::from_be_bytes(digest[..8].try_into().unwrap_or([0; 8]));
    let mut digits = Vec::with_capacity(CODE_DIGITS);
    for _ in 0..CODE_DIGITS {
        digits.push(char::from(b'0' + (value % 10) as u8));
        value /= 10;
    }
    digits
        .chunks(4)
        .map(|group| group.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A code as typed: only its digits count.
pub fn normalise_code(code: &str) -> String {
    let digits: String = code.chars().filter(char::is_ascii_digit).collect();
    digits
        .as_bytes()
        .chunks(4)
        .map(|group| String::from_utf8_lossy(group).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The new device's HPKE key pair for one link request.
pub struct LinkKey(SealingKey);

impl LinkKey {
    pub fn generate() -> Result<LinkKey, ClientError> {
        SealingKey::generate()
            .map(LinkKey)
            .map_err(|_| ClientError::Failed("cannot make a link key".into()))
    }

    pub fn public(&self) -> &[u8] {
        self.0.public()
    }

    /// Opens the bundle sealed to this key for `device_key`.
    pub fn open(&self, sealed: &[u8], device_key: &[u8]) -> Result<LinkBundle, ClientError> {
        let refused =
            || ClientError::Untrusted("the approval of this link could not be opened".into());
        let plain = self
            .0
            .open(HPKE_INFO, device_key, sealed)
            .map_err(|_| refused())?;
        LinkBundle::decode(plain.as_slice()).map_err(|_| refused())
    }
}

/// Seals `bundle` to a new device's link key, bound to its device key.
pub fn seal(
    bundle: &LinkBundle,
    link_key: &[u8],
    device_key: &[u8],
) -> Result<Vec<u8>, ClientError> {
    let plain = Zeroizing::new(bundle.encode_to_vec());
    crate::sealing::seal(link_key, HPKE_INFO, device_key, &plain)
        .map_err(|_| ClientError::InvalidArgument("the new device's link key is invalid".into()))
}

/// A new device waiting for one of its user's devices to approve it.
pub struct PendingLink {
    store: Arc<LocalStore>,
    connector: Arc<dyn Connector>,
    relay_url: String,
    pinned_certificate: Vec<u8>,
    user_id: String,
    key: DeviceKey,
    link_key: LinkKey,
    code: String,
    expires_at_ms: u64,
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
        let link_key = LinkKey::generate()?;
        let (connection, _pushes) = connector.connect().await?;
        let signature = key.sign_challenge(
            AuthPurpose::Link,
            &connection.relay_id(),
            &connection.nonce(),
        );
        let request = request::Kind::RequestLink(RequestLink {
            user_id: user_id.to_string(),
            device_key: Bytes::copy_from_slice(&key.public()),
            link_key: Bytes::copy_from_slice(link_key.public()),
            signature: Bytes::copy_from_slice(&signature),
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
        let code = link_code(&key.public(), link_key.public());
        Ok(PendingLink {
            store,
            connector,
            relay_url,
            pinned_certificate,
            user_id: user_id.to_string(),
            key,
            link_key,
            code,
            expires_at_ms,
        })
    }

    /// The code to compare with the one the user's other device shows.
    pub fn code(&self) -> &str {
        &self.code
    }

    /// When the request lapses if nobody approves it.
    pub fn expires_at_ms(&self) -> u64 {
        self.expires_at_ms
    }

    /// Waits until one of the user's devices approves the link (or
    /// `timeout`), then enrols this device with what it sealed. The new
    /// device joins the user's groups as the approving device adds it.
    pub async fn wait_for_approval(self, timeout: Duration) -> Result<Identity, ClientError> {
        let deadline = tokio::time::Instant::now() + timeout;
        // One connection serves the polls until the relay ends it (it closes
        // connections that stay unauthenticated too long).
        let mut connection = None;
        loop {
            if let Some(identity) = self.try_complete(&mut connection).await? {
                return Ok(identity);
            }
            if tokio::time::Instant::now() + APPROVAL_POLL >= deadline {
                return Err(ClientError::Failed(
                    "no device of this user approved the link in time".into(),
                ));
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
                    tracing::debug!(error = %err, "link status not reachable");
                    return Ok(None);
                }
            },
        };
        let request = request::Kind::GetLink(GetLink {
            device_key: Bytes::copy_from_slice(&self.key.public()),
        });
        let status = match current.request(request).await {
            Ok(response::Result::LinkStatus(status)) => status,
            Ok(_) => return Err(TransportError::Protocol("expected LinkStatus".into()).into()),
            Err(TransportError::Refused(r)) if r.code == ErrorCode::NotFound => {
                return Err(ClientError::Failed(
                    "the link request expired; ask to link again".into(),
                ))
            }
            Err(TransportError::Refused(r)) => return Err(ClientError::Refused(r)),
            Err(_) => return Ok(None),
        };
        if !status.approved {
            *connection = Some(current);
            return Ok(None);
        }
        let mut identity = self.identity_from(&status.sealed)?;
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
        identity.relay_id = current.relay_id().to_vec();
        let key = DeviceKey::from_secret_bytes(&self.key.to_secret_bytes());
        // The stock is replaced on the lifecycle the device is opened with.
        let lifecycle = crate::lifecycle::KeyLifecycle::default();
        settle_device(&self.store, current.as_ref(), key, identity, &lifecycle)
            .await
            .map(Some)
    }

    /// Opens and checks the approving device's bundle: the chain must
    /// certify this device as the requested user under the authority in
    /// the bundle, by the identity key in the bundle.
    fn identity_from(&self, sealed: &[u8]) -> Result<IdentityRecord, ClientError> {
        let bundle = self.link_key.open(sealed, &self.key.public())?;
        let bad = |what: &str| ClientError::Untrusted(format!("the link approval {what}"));
        let authority_key: [u8; 32] = bundle
            .authority_key
            .as_slice()
            .try_into()
            .map_err(|_| bad("names no authority"))?;
        let now = crate::now_ms();
        let verified = TrustAnchor::new(authority_key)
            .verify(&bundle.credential, &self.key.public(), now)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_swapped_key_shows_another_code() {
        let code = link_code(&[1; 32], &[2; 32]);
        assert_eq!(code.len(), 14);
        assert_ne!(code, link_code(&[9; 32], &[2; 32]));
        assert_ne!(code, link_code(&[1; 32], &[9; 32]));
        assert_eq!(normalise_code(&code.replace(' ', "")), code);
    }

    #[test]
    fn a_bundle_opens_only_with_its_key_and_device() {
        let key = LinkKey::generate().unwrap();
        let bundle = LinkBundle {
            version: 1,
            identity_secret: vec![5; 32],
            ..Default::default()
        };
        let sealed = seal(&bundle, key.public(), &[1; 32]).unwrap();
        assert!(!sealed.windows(32).any(|w| w == [5; 32]));
        assert_eq!(key.open(&sealed, &[1; 32]).unwrap(), bundle);
        assert!(key.open(&sealed, &[2; 32]).is_err());
        let other = LinkKey::generate().unwrap();
        assert!(other.open(&sealed, &[1; 32]).is_err());
    }
}
