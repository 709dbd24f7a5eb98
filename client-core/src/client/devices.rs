//! A user's devices: listing them, approving a new device's link request,
//! and removing a lost one, each followed through in every group.

use bytes::Bytes;
use convene_proto::relay::{
    request, response, ApproveLink, ErrorCode, GetUser, ListLinks, PendingLink, RemoveDevice,
};
use convene_proto::trust::{CredentialChain, LinkBundle};
use prost::Message as _;
use zeroize::{Zeroize, Zeroizing};

use super::Client;
use crate::error::ClientError;
use crate::link::{answer, request_tag, LinkCode};
use crate::store::records::{
    identity_key, DevicesIntent, IdentityRecord, IntentKind, IntentRecord,
};
use crate::trust::IdentityKey;

/// How long approving a link waits for the new device to take it (it
/// looks every half second while it waits).
pub const LINK_CONFIRM_PATIENCE: std::time::Duration = std::time::Duration::from_secs(15);
/// How often approving a link looks whether the new device took it.
const LINK_CONFIRM_POLL: std::time::Duration = std::time::Duration::from_millis(250);

/// One device of this user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// The device key (32 bytes).
    pub device: Vec<u8>,
    /// When the device enrolled, ms since the Unix epoch.
    pub created_at_ms: u64,
    /// The device this client runs on.
    pub this_device: bool,
    /// When the device last connected to the relay, to the minute (ms
    /// since the Unix epoch); `None` if the relay has not seen it since it
    /// began keeping this.
    pub last_seen_ms: Option<u64>,
    /// The name the device gave itself ([`Client::set_device_name`]), if
    /// it did and its label opened here; text from the device, to be shown
    /// through a safe path.
    pub name: Option<String>,
    /// The platform it runs on ("linux", "macos", ...), with the name.
    pub platform: Option<String>,
}

/// A new device waiting for this user to approve it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkRequest {
    /// The new device's key (32 bytes).
    pub device: Vec<u8>,
    /// The first 4 digits of the code the new device shows (the rest is
    /// known only to the person who sees its screen).
    pub code_start: String,
    /// When the request lapses at the relay, ms since the Unix epoch.
    pub expires_at_ms: u64,
}

impl Client {
    /// This user's devices that are in use (removed ones left out).
    pub async fn devices(&self) -> Result<Vec<DeviceInfo>, ClientError> {
        let request = request::Kind::GetUser(GetUser {
            user_id: self.user_id().to_string(),
        });
        let user = match self.relay(request).await? {
            response::Result::User(user) => user,
            _ => return Err(ClientError::unexpected_response()),
        };
        let own = self.device();
        // A device without the identity key lists its devices unnamed.
        let key = self.label_key().ok();
        Ok(user
            .devices
            .into_iter()
            .filter(|d| !d.revoked)
            .map(|d| {
                let label = key.as_ref().and_then(|key| {
                    super::device_label::open_label(key, &d.device_key, &d.sealed_label)
                });
                DeviceInfo {
                    this_device: d.device_key.as_ref() == own.as_slice(),
                    device: d.device_key.to_vec(),
                    created_at_ms: d.created_at_ms,
                    last_seen_ms: (d.last_seen_ms > 0).then_some(d.last_seen_ms),
                    name: label.as_ref().map(|l| l.name.clone()),
                    platform: label.map(|l| l.platform),
                }
            })
            .collect())
    }

    /// New devices waiting to be linked to this user, with the start of
    /// their codes.
    pub async fn link_requests(&self) -> Result<Vec<LinkRequest>, ClientError> {
        Ok(self
            .pending_links()
            .await?
            .into_iter()
            .map(|link| LinkRequest {
                code_start: request_tag(&link.device_key, &link.pake_message),
                device: link.device_key.to_vec(),
                expires_at_ms: link.expires_at_ms,
            })
            .collect())
    }

    /// Links the waiting device that shows `code` (typed here by the
    /// person who sees both screens): runs SPAKE2 with it, certifies the
    /// device with this user's identity key, and seals what it needs under
    /// the key SPAKE2 gave. Once the new device has opened that (it sets
    /// the credential only the bundle carries, within
    /// [`LINK_CONFIRM_PATIENCE`]), adds it to every group this device is
    /// in and returns its device key. A mistyped code shows as the new
    /// device never taking the approval: the device is removed again and
    /// nothing was linked.
    pub async fn approve_link(&self, code: &str) -> Result<Vec<u8>, ClientError> {
        let code = LinkCode::parse(code)?;
        let mut waiting: Vec<PendingLink> = self
            .pending_links()
            .await?
            .into_iter()
            .filter(|link| request_tag(&link.device_key, &link.pake_message) == code.tag())
            .collect();
        let link = match (waiting.pop(), waiting.is_empty()) {
            (Some(link), true) => link,
            (None, _) => {
                return Err(ClientError::InvalidArgument(
                    "no device waiting to be linked shows this code".into(),
                ))
            }
            (Some(_), false) => {
                return Err(ClientError::InvalidArgument(
                    "more than one waiting device shows a code starting with these digits; \
                     ask to link again on the new device"
                        .into(),
                ))
            }
        };
        let device: [u8; 32] = link
            .device_key
            .as_ref()
            .try_into()
            .map_err(|_| ClientError::InvalidArgument("a malformed link request".into()))?;
        let mut bundle = self.link_bundle(device)?;
        let answered = answer(self.user_id(), &device, &link.pake_message, &code, &bundle);
        bundle.identity_secret.zeroize();
        bundle.authority_secret.zeroize();
        let answered = answered?;
        let approve = request::Kind::ApproveLink(ApproveLink {
            device_key: Bytes::copy_from_slice(&device),
            sealed: Bytes::from(answered.sealed),
            pake_message: Bytes::from(answered.pake_message),
        });
        match self.relay(approve).await {
            Ok(response::Result::LinkApproved(_)) => {}
            Ok(_) => return Err(ClientError::unexpected_response()),
            Err(ClientError::Refused(r)) if r.code == ErrorCode::NotFound => {
                return Err(ClientError::InvalidArgument(
                    "the link request expired; ask to link again".into(),
                ))
            }
            Err(err) => return Err(err),
        }
        if !self.link_taken(&device).await? {
            // Nobody who could open the bundle asked: take back the
            // device the relay registered for it.
            let remove = request::Kind::RemoveDevice(RemoveDevice {
                device_key: Bytes::copy_from_slice(&device),
            });
            if let Err(err) = self.relay(remove).await {
                tracing::warn!(
                    error = &err as &dyn std::error::Error,
                    "cannot remove a link nobody took"
                );
            }
            return Err(ClientError::InvalidArgument(
                "the new device did not take the approval: the code typed here is not the one \
                 it shows (or it stopped waiting). Nothing was linked; ask to link again on the \
                 new device"
                    .into(),
            ));
        }
        self.in_every_group(device, true).await?;
        Ok(device.to_vec())
    }

    /// Waits until the relay shows `device` with a credential that
    /// certifies it as this user's: only a device that opened the sealed
    /// bundle holds one.
    async fn link_taken(&self, device: &[u8; 32]) -> Result<bool, ClientError> {
        let anchor = self.anchor()?;
        let deadline = tokio::time::Instant::now() + LINK_CONFIRM_PATIENCE;
        loop {
            let own = self.user_record(self.user_id()).await?;
            let taken = own.devices.iter().any(|d| {
                d.device_key.as_ref() == device.as_slice()
                    && anchor
                        .verify(&d.credential, device, anchor.now_ms())
                        .is_ok_and(|v| v.user_id == self.user_id())
            });
            if taken {
                return Ok(true);
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(false);
            }
            tokio::time::sleep(LINK_CONFIRM_POLL).await;
        }
    }

    /// Removes another device of this user (a lost one): the relay refuses
    /// it from then on and cuts it off, and it is removed from every group
    /// this device is in.
    pub async fn remove_device(&self, device: &[u8]) -> Result<(), ClientError> {
        let device: [u8; 32] = device
            .try_into()
            .map_err(|_| ClientError::InvalidArgument("a device key has 32 bytes".into()))?;
        if device == self.inner.shared.device {
            return Err(ClientError::InvalidArgument(
                "a device cannot remove itself; remove it from another of your devices".into(),
            ));
        }
        let request = request::Kind::RemoveDevice(RemoveDevice {
            device_key: Bytes::copy_from_slice(&device),
        });
        match self.relay(request).await {
            Ok(response::Result::DeviceRemoved(_)) => {}
            Ok(_) => return Err(ClientError::unexpected_response()),
            Err(ClientError::Refused(r)) if r.code == ErrorCode::NotFound => {
                return Err(ClientError::InvalidArgument(
                    "you have no such device".into(),
                ))
            }
            Err(err) => return Err(err),
        }
        self.in_every_group(device, false).await
    }

    /// The relay's list of this user's pending link requests.
    async fn pending_links(&self) -> Result<Vec<PendingLink>, ClientError> {
        match self.relay(request::Kind::ListLinks(ListLinks {})).await? {
            response::Result::Links(links) => Ok(links.links),
            _ => Err(ClientError::unexpected_response()),
        }
    }

    /// Adds `device` to (or removes it from) every group this device is
    /// in, waiting for each.
    async fn in_every_group(&self, device: [u8; 32], add: bool) -> Result<(), ClientError> {
        let groups: Vec<_> = self.groups()?.into_iter().filter(|g| g.active).collect();
        let changes = groups.iter().map(|group| {
            let devices = DevicesIntent {
                device_keys: vec![device.to_vec()],
            };
            self.submit(IntentRecord {
                group_id: group.id.to_vec(),
                kind: Some(if add {
                    IntentKind::AddDevices(devices)
                } else {
                    IntentKind::RemoveDevices(devices)
                }),
                ..Default::default()
            })
        });
        for result in futures_util::future::join_all(changes).await {
            result?;
        }
        Ok(())
    }

    /// What a linked device receives: its chain, certified here by this
    /// user's identity key, the authority to pin, and the user's keys.
    fn link_bundle(&self, device: [u8; 32]) -> Result<LinkBundle, ClientError> {
        let identity: IdentityRecord = self
            .store()
            .get_committed_record(&identity_key())?
            .ok_or(ClientError::NotEnrolled)?;
        let identity_secret = Zeroizing::new(identity.identity_secret);
        let authority_secret = Zeroizing::new(identity.authority_secret);
        let secret: &[u8; 32] = identity_secret.as_slice().try_into().map_err(|_| {
            ClientError::Forbidden("this device does not hold your identity key".into())
        })?;
        let identity_key = IdentityKey::from_secret_bytes(secret);
        let own_chain = CredentialChain::decode(identity.credential.as_slice())
            .map_err(|_| ClientError::DamagedState("this device's certificate is damaged"))?;
        let user_certificate = own_chain
            .user_certificate
            .ok_or_else(|| ClientError::DamagedState("this device's certificate is damaged"))?;
        let device_certificate =
            identity_key.certify_device(&identity.user_id, device.into(), crate::now_ms());
        let credential = IdentityKey::delegated_chain(
            user_certificate,
            own_chain.identity_binding,
            device_certificate,
            own_chain.delegation,
        );
        Ok(LinkBundle {
            version: 1,
            authority_key: identity.authority_key,
            identity_secret: identity_secret.to_vec(),
            credential,
            authority_secret: authority_secret.to_vec(),
        })
    }
}
