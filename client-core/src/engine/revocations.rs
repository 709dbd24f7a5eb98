//! Learning of revocations and acting on them.
//!
//! Staff sign each revocation with the authority key; the relay keeps them
//! in order and tells connected devices when there is a new one. This
//! device fetches the ones it has not seen, checks each signature against
//! the pinned authority (the relay cannot make one), remembers it, tells
//! the app, and removes the revoked devices from every group whose policy
//! lets it change the membership. Several members may try at once; the
//! relay's one-commit-per-epoch gate picks one, and the others' removals
//! find nobody left to remove.

use convene_proto::content::GroupKind as WireKind;
use convene_proto::relay::{request, response, ListRevocations, RevocationEntry};
use convene_proto::trust::Signed;
use prost::Message as _;

use super::relay_state::RelayState;
use super::Engine;
use crate::error::ClientError;
use crate::events::Event;
use crate::store::records::{
    self, DevicesIntent, GroupRecord, IntentKind, IntentRecord, ManageIntent, MembersIntent,
};
use crate::types::Role;

/// How long a device the relay refuses as revoked, with no signed
/// revocation to show, waits before trying again.
const RETRY_REFUSED_AS_REVOKED: std::time::Duration = std::time::Duration::from_secs(3600);

/// What the revocations taken in ask of this device, once they are kept.
#[derive(Default)]
struct TakenIn {
    /// Users revoked, with the one device revoked (or all of theirs).
    revoked_users: Vec<(String, Option<[u8; 32]>)>,
    /// A delegation was revoked or a user suspended: certificates someone
    /// signed may have lost their certifier.
    certifiers_revoked: bool,
    /// Told only once what they tell is on disk.
    events: Vec<Event>,
}

impl Engine {
    /// Fetches and applies the revocations after this device's cursor.
    pub(super) async fn sync_revocations(&mut self) -> Result<(), ClientError> {
        let Some((entries, last)) = self.new_revocations().await? else {
            return Ok(());
        };
        let mut taken = TakenIn::default();
        for entry in entries {
            self.take_in_revocation(&entry, &mut taken);
        }
        self.store().put(
            records::revocation_cursor_key(),
            last.to_be_bytes().to_vec(),
        );
        self.store().commit_durably()?;
        for event in std::mem::take(&mut taken.events) {
            self.emit(event);
        }
        self.publish();
        self.act_on_revocations(taken).await
    }

    /// The revocations the relay holds past this device's cursor, with the
    /// sequence of the last; `None` when there are none.
    async fn new_revocations(
        &mut self,
    ) -> Result<Option<(Vec<RevocationEntry>, u64)>, ClientError> {
        let after = self
            .store()
            .get(&records::revocation_cursor_key())?
            .and_then(|raw| raw.try_into().ok())
            .map(u64::from_be_bytes)
            .unwrap_or(0);
        let entries = match self
            .request(request::Kind::ListRevocations(ListRevocations { after }))
            .await?
        {
            response::Result::Revocations(list) => list.entries,
            _ => return Ok(None),
        };
        Ok(entries
            .last()
            .map(|e| e.sequence)
            .map(|last| (entries, last)))
    }

    /// Verifies one revocation and, if it holds, keeps it (in the open
    /// operation and in the trust anchor) and notes what it asks.
    fn take_in_revocation(&mut self, entry: &RevocationEntry, taken: &mut TakenIn) {
        let verified = Signed::decode(entry.revocation.as_ref())
            .map_err(|_| crate::trust::TrustError::Malformed("revocation"))
            .and_then(|signed| self.mls.anchor().verify_revocation(&signed));
        let revocation = match verified {
            Ok(revocation) => revocation,
            Err(err) => {
                // A relay cannot sign revocations; one that fails is
                // ignored, and said.
                tracing::warn!(
                    error = &err as &dyn std::error::Error,
                    "ignored a revocation that does not verify"
                );
                taken.events.push(Event::Untrusted {
                    group: None,
                    detail: format!("ignored a revocation: {}", crate::error::with_causes(&err)),
                });
                return;
            }
        };
        // A delegation's revocation names the delegated key: the
        // certificates it signed are refused from now on.
        let delegation_only = !revocation.delegate_key.is_empty();
        taken.certifiers_revoked |= delegation_only || revocation.device_key.is_empty();
        let revoked_key = match delegation_only {
            true => &revocation.delegate_key,
            false => &revocation.device_key,
        };
        self.store().put(
            records::revoked_key(&revocation.user_id, revoked_key),
            entry.revocation.to_vec(),
        );
        self.mls
            .anchor()
            .revocations()
            .add(&revocation.user_id, revoked_key);
        if delegation_only {
            taken.events.push(Event::DelegationRevoked {
                user_id: revocation.user_id.clone(),
            });
            return;
        }
        taken.events.push(Event::Revoked {
            user_id: revocation.user_id.clone(),
            device: (!revocation.device_key.is_empty()).then(|| revocation.device_key.clone()),
        });
        let device = <[u8; 32]>::try_from(revocation.device_key.as_slice()).ok();
        taken.revoked_users.push((revocation.user_id, device));
    }

    /// Once the revocations are kept: this device stops if it is revoked;
    /// otherwise the revoked leave every group it can commit in, and, if a
    /// certifier was revoked, so do members certified by it (this device's
    /// own certificate first taken up anew if it was one of them).
    async fn act_on_revocations(&mut self, taken: TakenIn) -> Result<(), ClientError> {
        let own = self.shared.identity.user_id.clone();
        if self.is_revoked(&own, self.shared.device.as_bytes()) {
            // Whatever the relay does next, this device acts no more.
            return self.close_as_revoked();
        }
        for (user, device) in taken.revoked_users {
            self.remove_everywhere(&user, device)?;
        }
        if taken.certifiers_revoked {
            let anchor = self.mls.anchor();
            let own_chain_revoked = matches!(
                anchor.verify(
                    self.mls.chain(),
                    self.shared.device.as_bytes(),
                    anchor.now_ms()
                ),
                Err(crate::trust::TrustError::Revoked)
            );
            if own_chain_revoked {
                if let Err(err) = self.adopt_renewed_certificate().await {
                    tracing::warn!(
                        error = &err as &dyn std::error::Error,
                        "cannot take up a renewed certificate"
                    );
                }
            }
            self.remove_revoked_members().await?;
        }
        Ok(())
    }

    /// Whether a verified revocation covers this device of `user` (the
    /// device itself, or the whole user).
    pub(super) fn is_revoked(&self, user: &str, device: &[u8]) -> bool {
        self.mls.anchor().revocations().covers(user, device)
    }

    /// The relay refused this device as revoked. With a revocation the
    /// authority signed that covers it, the device stops for good; on the
    /// relay's word alone (a device its user removed has no signed
    /// revocation; a hostile relay could say anything) it only waits
    /// [`RETRY_REFUSED_AS_REVOKED`] before trying again.
    pub(super) fn refused_as_revoked(&mut self, signed: &[u8]) {
        let own_user = self.shared.identity.user_id.clone();
        let verified = Signed::decode(signed)
            .ok()
            .and_then(|s| self.mls.anchor().verify_revocation(&s).ok())
            .filter(|r| {
                r.user_id == own_user
                    && r.delegate_key.is_empty()
                    && (r.device_key.is_empty() || r.device_key == self.shared.device)
            });
        match verified {
            Some(revocation) => {
                self.store().put(
                    records::revoked_key(&revocation.user_id, &revocation.device_key),
                    signed.to_vec(),
                );
                self.mls
                    .anchor()
                    .revocations()
                    .add(&revocation.user_id, &revocation.device_key);
                if let Err(err) = self.close_as_revoked() {
                    tracing::warn!(
                        error = &err as &dyn std::error::Error,
                        "cannot record that this device was revoked"
                    );
                }
            }
            None => {
                tracing::warn!(
                    "the relay refuses this device as revoked without a revocation it can check; \
                     trying again later"
                );
                if let RelayState::Offline(offline) = &mut self.relay {
                    offline.retry_at = tokio::time::Instant::now() + RETRY_REFUSED_AS_REVOKED;
                }
            }
        }
    }

    /// This device was revoked (a revocation the authority signed names
    /// it): it stops connecting and acting, and every group it was in is
    /// shown closed.
    pub(super) fn close_as_revoked(&mut self) -> Result<(), ClientError> {
        tracing::warn!("this device was revoked by the organisation; it stops");
        let groups: Vec<GroupRecord> = self
            .store()
            .scan::<GroupRecord>(&records::groups_prefix())
            .map(|item| item.map(|(_, record)| record))
            .collect::<Result<_, _>>()?;
        for mut group in groups.into_iter().filter(|g| g.active) {
            group.active = false;
            self.store()
                .put_record(records::group_key(&group.group()?), &group);
        }
        self.store().commit_durably()?;
        self.relay.shut_out();
        self.shared.status.send_modify(|status| {
            status.state = crate::engine::ConnectionState::Offline;
            status.revoked = true;
            status.last_error = Some(crate::engine::ConnectionProblem::Revoked);
        });
        self.publish();
        Ok(())
    }

    /// Queues the removal of `user` (or only their `device`) from every
    /// group this device may change: staff change cohorts (as a member, or
    /// as the manager of one they left), either user a direct channel, and
    /// any user their own devices.
    fn remove_everywhere(
        &mut self,
        user: &str,
        device: Option<[u8; 32]>,
    ) -> Result<(), ClientError> {
        let groups: Vec<GroupRecord> = self
            .store()
            .scan::<GroupRecord>(&records::groups_prefix())
            .map(|item| item.map(|(_, record)| record))
            .collect::<Result<_, _>>()?;
        let own_user = self.shared.identity.user_id.clone();
        let staff = Role::from_wire(self.shared.identity.role) == Role::Staff;
        for group in groups {
            let kind = if group.managing {
                // The manager's list of members may be behind: the intent
                // reads the group as it is now, and ends at once if the
                // revoked user or device is not in it.
                if !staff {
                    continue;
                }
                IntentKind::Manage(ManageIntent {
                    remove_users: device
                        .is_none()
                        .then(|| user.to_string())
                        .into_iter()
                        .collect(),
                    remove_devices: device.map(|d| d.to_vec()).into_iter().collect(),
                    ..Default::default()
                })
            } else {
                let affected = group.members.iter().any(|m| {
                    m.user_id == user && device.is_none_or(|d| m.device.as_slice() == d.as_slice())
                });
                if !group.active || !affected {
                    continue;
                }
                let allowed = match WireKind::try_from(group.kind) {
                    Ok(WireKind::Direct) => group.direct_pair.contains(&own_user),
                    _ => staff || (device.is_some() && user == own_user),
                };
                if !allowed {
                    continue;
                }
                match device {
                    Some(device) => IntentKind::RemoveDevices(DevicesIntent {
                        device_keys: vec![device.to_vec()],
                    }),
                    None => IntentKind::Remove(MembersIntent {
                        user_ids: vec![user.to_string()],
                    }),
                }
            };
            let intent = IntentRecord {
                group_id: group.group_id.clone(),
                kind: Some(kind),
                ..Default::default()
            };
            self.persist_intent(intent)?;
            self.outbox_dirty = true;
        }
        Ok(())
    }
}
