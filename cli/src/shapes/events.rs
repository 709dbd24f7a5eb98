//! Events as `listen` and the daemon's `subscribe` give them: one JSON
//! document each, tagged by `event`, naming the group by id and by how it
//! is shown, so that the line people read can be rendered from the
//! document alone.

use convene_client::{hex, Client, Event, GroupId, GroupSummary};
use serde::{Deserialize, Serialize};

use super::{GroupShape, MessageShape};

/// One event (docs/JSON-RPC.md lists each with its fields).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum EventShape {
    /// A message arrived.
    Message { message: MessageShape },
    /// A message of this device's was delivered.
    Sent { message: MessageShape },
    /// This device created a group.
    GroupCreated { group: GroupShape },
    /// This device was added to a group.
    Joined { group: GroupShape },
    /// Users joined or left a group.
    MembersChanged {
        group: String,
        group_name: String,
        added: Vec<String>,
        removed: Vec<String>,
        /// Who proposed it, when one user did.
        by: Option<String>,
    },
    /// A member linked or removed devices of theirs.
    MemberDevicesChanged {
        group: String,
        group_name: String,
        user_id: String,
        added: usize,
        removed: usize,
    },
    /// This device was removed from a group.
    Removed { group: String, group_name: String },
    /// An operation was given up.
    DeliveryFailed {
        group: String,
        group_name: String,
        /// The message not sent, when the operation was a send.
        message: Option<String>,
        reason: String,
    },
    /// Staff suspended a user (`device` absent) or revoked a device.
    Revoked {
        user_id: String,
        device: Option<String>,
    },
    /// Something failed the chain of trust or a group's policy and was
    /// refused; the group stays as it was.
    Untrusted {
        group: Option<String>,
        group_name: Option<String>,
        detail: String,
    },
    /// A member's identity key changed.
    IdentityChanged {
        user_id: String,
        group: String,
        group_name: String,
    },
    /// Something people should know about.
    Warning {
        group: Option<String>,
        group_name: Option<String>,
        detail: String,
    },
    /// The connection to the relay was lost; the client reconnects.
    ConnectionLost { reason: String },
    /// The connection is back.
    ConnectionRestored,
    /// Everything the relay held has been processed.
    CaughtUp,
    /// This device cannot follow a group for now and asked to be re-added.
    GroupStalled {
        group: String,
        group_name: String,
        reason: String,
    },
    /// This device follows a stalled group again.
    GroupRecovered {
        group: String,
        group_name: String,
        missed: u64,
    },
    /// Entries were trimmed before this device fetched them.
    EntriesDropped {
        group: String,
        group_name: String,
        count: u64,
    },
    /// This device's clock is far from the relay's.
    ClockSkew { offset_ms: i64 },
    /// This device's state is a copy and another copy connected since.
    StateCopied,
    /// This device's certificate was renewed.
    CertificateRenewed { valid_until_ms: u64 },
    /// Staff member `user_id` can no longer certify users.
    DelegationRevoked { user_id: String },
    /// An event this version does not describe.
    #[serde(other)]
    Other,
}

impl EventShape {
    /// `event`, with groups named as `names` knows them.
    pub fn new(event: &Event, names: &GroupNames) -> EventShape {
        let id = |group: &GroupId| group.to_string();
        let name = |group: &GroupId| names.of(group);
        let maybe = |group: &Option<GroupId>| group.as_ref().map(|g| (id(g), name(g)));
        match event {
            Event::MessageReceived(m) => EventShape::Message {
                message: MessageShape::new(m, names.group(&m.group)),
            },
            Event::MessageSent(m) => EventShape::Sent {
                message: MessageShape::new(m, names.group(&m.group)),
            },
            Event::GroupCreated(g) => EventShape::GroupCreated { group: g.into() },
            Event::JoinedGroup(g) => EventShape::Joined { group: g.into() },
            Event::MembersChanged {
                group,
                added,
                removed,
                by,
            } => EventShape::MembersChanged {
                group: id(group),
                group_name: name(group),
                added: added.clone(),
                removed: removed.clone(),
                by: by.clone(),
            },
            Event::MemberDevicesChanged {
                group,
                user_id,
                added,
                removed,
            } => EventShape::MemberDevicesChanged {
                group: id(group),
                group_name: name(group),
                user_id: user_id.clone(),
                added: *added,
                removed: *removed,
            },
            Event::RemovedFromGroup { group } => EventShape::Removed {
                group: id(group),
                group_name: name(group),
            },
            Event::DeliveryFailed {
                group,
                message,
                reason,
            } => EventShape::DeliveryFailed {
                group: id(group),
                group_name: name(group),
                message: message.as_ref().map(ToString::to_string),
                reason: reason.clone(),
            },
            Event::Revoked { user_id, device } => EventShape::Revoked {
                user_id: user_id.clone(),
                device: device.as_deref().map(hex),
            },
            Event::Untrusted { group, detail } => {
                let (group, group_name) = maybe(group).unzip();
                EventShape::Untrusted {
                    group,
                    group_name,
                    detail: detail.clone(),
                }
            }
            Event::IdentityChanged { user_id, group } => EventShape::IdentityChanged {
                user_id: user_id.clone(),
                group: id(group),
                group_name: name(group),
            },
            Event::Warning { group, detail } => {
                let (group, group_name) = maybe(group).unzip();
                EventShape::Warning {
                    group,
                    group_name,
                    detail: detail.clone(),
                }
            }
            Event::ConnectionLost { reason } => EventShape::ConnectionLost {
                reason: reason.to_string(),
            },
            Event::ConnectionRestored => EventShape::ConnectionRestored,
            Event::CaughtUp => EventShape::CaughtUp,
            Event::GroupStalled { group, reason } => EventShape::GroupStalled {
                group: id(group),
                group_name: name(group),
                reason: reason.clone(),
            },
            Event::GroupRecovered { group, missed } => EventShape::GroupRecovered {
                group: id(group),
                group_name: name(group),
                missed: *missed,
            },
            Event::EntriesDropped { group, count } => EventShape::EntriesDropped {
                group: id(group),
                group_name: name(group),
                count: *count,
            },
            Event::ClockSkew { offset_ms } => EventShape::ClockSkew {
                offset_ms: *offset_ms,
            },
            Event::StateCopied => EventShape::StateCopied,
            Event::CertificateRenewed { valid_until_ms } => EventShape::CertificateRenewed {
                valid_until_ms: *valid_until_ms,
            },
            Event::DelegationRevoked { user_id } => EventShape::DelegationRevoked {
                user_id: user_id.clone(),
            },
            _ => EventShape::Other,
        }
    }
}

/// The groups this device knows, by id, for naming groups and members in
/// what people read; a group it does not know (yet) is shown by its id.
/// Kept up to date from the events themselves.
#[derive(Default)]
pub struct GroupNames(std::collections::HashMap<GroupId, GroupSummary>);

impl GroupNames {
    /// The names of `groups`.
    pub fn of_groups(groups: &[GroupSummary]) -> GroupNames {
        let mut names = GroupNames::default();
        for group in groups {
            names.learn(group);
        }
        names
    }

    /// Learns (or updates) one group.
    pub fn learn(&mut self, group: &GroupSummary) {
        self.0.insert(group.id.clone(), group.clone());
    }

    /// Learns what `event` changes: a group made known, or members who
    /// came and went (read again from `client`).
    pub fn learn_from(&mut self, event: &Event, client: &Client) {
        let changed = match event {
            Event::GroupCreated(group) | Event::JoinedGroup(group) => {
                self.learn(group);
                return;
            }
            Event::MembersChanged { group, .. } | Event::MemberDevicesChanged { group, .. } => {
                group
            }
            _ => return,
        };
        match client.group(changed) {
            Ok(Some(group)) => self.learn(&group),
            Ok(None) => {}
            Err(err) => tracing::debug!(error = %err, "cannot read a group to name its members"),
        }
    }

    /// The group `id`, if this device knows it.
    pub fn group(&self, id: &GroupId) -> Option<&GroupSummary> {
        self.0.get(id)
    }

    /// How `group` is shown.
    pub fn of(&self, group: &GroupId) -> String {
        self.0
            .get(group)
            .map(super::shown_name)
            .unwrap_or_else(|| group.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::GroupNames;

    #[test]
    fn a_group_not_known_yet_is_shown_by_its_id() {
        let id = convene_client::GroupId::from([0xab; 16]);
        assert_eq!(GroupNames::default().of(&id), "ab".repeat(16));
    }
}
