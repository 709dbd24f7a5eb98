//! The data an app sees: groups, members, messages, identities.

use std::fmt;

use convene_proto::content::GroupKind as WireKind;
use convene_proto::relay::Role as WireRole;

use crate::store::records::{GroupRecord, MessageRecord};
use crate::store::StoreError;

pub use convene_proto::ids::{hex, GroupId};

/// A message's id, chosen by its sender.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct MessageId(pub Vec<u8>);

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex(&self.0))
    }
}

impl fmt::Debug for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MessageId({self})")
    }
}

/// What a group is for; it decides the group's policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupKind {
    /// A cohort of leaders, run by staff.
    Cohort,
    /// A one-to-one channel.
    Direct,
    /// An announcement or help channel for everyone.
    Network,
    /// Two or three leaders introduced by staff.
    Introduction,
}

impl GroupKind {
    pub(crate) fn from_wire(kind: i32) -> GroupKind {
        match WireKind::try_from(kind) {
            Ok(WireKind::Direct) => GroupKind::Direct,
            Ok(WireKind::Network) => GroupKind::Network,
            Ok(WireKind::Introduction) => GroupKind::Introduction,
            _ => GroupKind::Cohort,
        }
    }

    /// A lowercase name: "cohort", "direct", "network" or
    /// "introduction".
    pub fn as_str(self) -> &'static str {
        match self {
            GroupKind::Cohort => "cohort",
            GroupKind::Direct => "direct",
            GroupKind::Network => "network",
            GroupKind::Introduction => "introduction",
        }
    }
}

/// A user's role in the programme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A participant in the programme.
    Leader,
    /// A member of the staff who run the programme: invites users and
    /// creates cohorts.
    Staff,
}

impl Role {
    pub(crate) fn from_wire(role: i32) -> Role {
        match WireRole::try_from(role) {
            Ok(WireRole::Staff) => Role::Staff,
            _ => Role::Leader,
        }
    }

    pub(crate) fn to_wire(self) -> WireRole {
        match self {
            Role::Leader => WireRole::Leader,
            Role::Staff => WireRole::Staff,
        }
    }

    /// "leader" or "staff".
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Leader => "leader",
            Role::Staff => "staff",
        }
    }
}

/// One device of one member of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The member's user.
    pub user_id: String,
    /// The device's public key.
    pub device: Vec<u8>,
    /// When the user's certificate, as this device's leaf carries it, stops
    /// being valid (ms since the Unix epoch).
    pub certificate_valid_until_ms: u64,
    /// The user's name, as their certificate gives it (verified when the
    /// leaf was accepted); empty if this device has not read it yet.
    pub display_name: String,
}

/// A group as this device sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupSummary {
    /// The group's id.
    pub id: GroupId,
    /// What the group is for.
    pub kind: GroupKind,
    /// The group's name; for a direct channel, the other user's id.
    pub name: String,
    /// The MLS epoch.
    pub epoch: u64,
    /// The MLS epoch authenticator: equal on every member in the same state.
    pub epoch_authenticator: Vec<u8>,
    /// Every member device.
    pub members: Vec<Member>,
    /// The certified name of every user this device saw in the group,
    /// current members and former ones, by user id.
    pub names: std::collections::BTreeMap<String, String>,
    /// False once this device was removed (or left to manage the group
    /// from outside).
    pub active: bool,
    /// The users who may manage the group from outside it (staff, as the
    /// group's MLS external senders; their chains verified).
    pub managers: Vec<String>,
    /// This device manages the group from outside: it sees who is in it
    /// and can change that, but cannot read it.
    pub managing: bool,
    /// Why this device cannot follow the group right now (it has asked to
    /// be added back); `None` while it follows it.
    pub stalled: Option<String>,
    /// When this device last renewed its own keys in the group (an update
    /// commit, or another commit of its own), ms since the Unix epoch;
    /// `None` while it still has the leaf it joined with.
    pub keys_renewed_at_ms: Option<u64>,
}

impl GroupSummary {
    pub(crate) fn from_record(
        record: &GroupRecord,
        own_user: &str,
    ) -> Result<GroupSummary, StoreError> {
        let kind = GroupKind::from_wire(record.kind);
        let name = if kind == GroupKind::Direct {
            record
                .direct_pair
                .iter()
                .find(|u| u.as_str() != own_user)
                .cloned()
                .unwrap_or_default()
        } else {
            record.name.clone()
        };
        Ok(GroupSummary {
            id: record.group()?,
            kind,
            name,
            epoch: record.epoch,
            epoch_authenticator: record.epoch_authenticator.clone(),
            members: record
                .members
                .iter()
                .map(|m| Member {
                    user_id: m.user_id.clone(),
                    device: m.device.clone(),
                    certificate_valid_until_ms: m.certificate_valid_until_ms,
                    display_name: m.display_name.clone(),
                })
                .collect(),
            names: record
                .names
                .iter()
                .map(|(user, name)| (user.clone(), name.clone()))
                .collect(),
            active: record.active,
            managers: record.managers.clone(),
            managing: record.managing,
            stalled: (!record.stalled.is_empty()).then(|| record.stalled.clone()),
            keys_renewed_at_ms: (record.leaf_renewed_at_ms > 1)
                .then_some(record.leaf_renewed_at_ms),
        })
    }

    /// How a member is shown to people: their name as certified, with
    /// their user id after it wherever the name alone could be mistaken
    /// for someone else's (or the id alone while the name is not known).
    pub fn shown_member(&self, user_id: &str) -> String {
        let Some(name) = self
            .members
            .iter()
            .find(|m| m.user_id == user_id && !m.display_name.is_empty())
            .map(|m| m.display_name.as_str())
            .or_else(|| self.names.get(user_id).map(String::as_str))
            .filter(|name| !name.is_empty())
        else {
            return user_id.to_string();
        };
        // Everyone this device saw in the group, members or not any more.
        let others = self
            .members
            .iter()
            .map(|m| (m.user_id.as_str(), m.display_name.as_str()))
            .chain(self.names.iter().map(|(u, n)| (u.as_str(), n.as_str())))
            .filter(|(other, _)| *other != user_id);
        let mistakable = could_be_mistaken(name, user_id)
            || others.into_iter().any(|(other, other_name)| {
                comparable(other_name) == comparable(name) || comparable(other) == comparable(name)
            });
        if mistakable {
            format!("{name} ({user_id})")
        } else {
            name.to_string()
        }
    }

    /// The distinct user ids of the members, sorted.
    pub fn users(&self) -> Vec<String> {
        let mut users: Vec<String> = self.members.iter().map(|m| m.user_id.clone()).collect();
        users.sort();
        users.dedup();
        users
    }
}

/// A message of a group's history.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// The group it belongs to.
    pub group: GroupId,
    /// Its place in the conversation (the relay's log order).
    pub position: u64,
    /// Its id, chosen by its sender.
    pub id: MessageId,
    /// The sender's user id.
    pub sender: String,
    /// The sender's device key (32 bytes).
    pub sender_device: Vec<u8>,
    /// The sender's clock, ms since the Unix epoch.
    pub sent_at_ms: u64,
    /// When this device stored it, ms since the Unix epoch.
    pub received_at_ms: u64,
    /// The text.
    pub text: String,
    /// Sent from this device.
    pub own: bool,
    /// When not zero, this is no message but a notice in the history:
    /// this many entries of the group (messages or changes), up to
    /// `position`, could not be read on this device (the relay deleted
    /// them before it fetched them, or they were encrypted for a state it
    /// did not have). `sender` and `text` are empty.
    pub lost: u64,
    /// What kind of message it is; `text` is its words (a request's
    /// title, an offer, an introduction's note; empty for a close).
    pub kind: MessageKind,
    /// For a help request, offer or close: the request it is about.
    pub request: Option<crate::help::RequestId>,
    /// For an offer staff passed on: who made it (the sender is the staff
    /// member who passed it on).
    pub passed_on_from: Option<String>,
    /// For an offer or a close: the title of the request it is about, if
    /// this device held the request when the message came (text from
    /// another member: show it through the one safe path).
    pub request_title: Option<String>,
}

/// What kind of message a [`Message`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MessageKind {
    /// Words a member wrote.
    #[default]
    Text,
    /// A help request (its title; `convene requests` shows the rest).
    HelpRequest,
    /// An offer answering a help request, sent privately.
    HelpOffer,
    /// A help request closed.
    HelpClose,
    /// Staff's note introducing the members of an introduction group.
    Introduction,
}

impl MessageKind {
    /// The number kept in the store.
    pub(crate) fn to_i32(self) -> i32 {
        match self {
            MessageKind::Text => 0,
            MessageKind::HelpRequest => 1,
            MessageKind::HelpOffer => 2,
            MessageKind::HelpClose => 3,
            MessageKind::Introduction => 4,
        }
    }

    /// The kind a stored number stands for (an unknown one reads as text).
    pub(crate) fn from_i32(value: i32) -> MessageKind {
        match value {
            1 => MessageKind::HelpRequest,
            2 => MessageKind::HelpOffer,
            3 => MessageKind::HelpClose,
            4 => MessageKind::Introduction,
            _ => MessageKind::Text,
        }
    }

    /// The name used in `--json` and JSON-RPC.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::Text => "text",
            MessageKind::HelpRequest => "help_request",
            MessageKind::HelpOffer => "help_offer",
            MessageKind::HelpClose => "help_close",
            MessageKind::Introduction => "introduction",
        }
    }
}

impl Message {
    /// The message `record` holds, in `group` (the record's own group id,
    /// which the caller has already read).
    pub(crate) fn from_record(group: GroupId, record: MessageRecord) -> Message {
        Message {
            group,
            position: record.position,
            id: MessageId(record.message_id),
            sender: record.sender_user,
            sender_device: record.sender_device,
            sent_at_ms: record.sent_at_ms,
            received_at_ms: record.received_at_ms,
            text: record.text,
            own: record.own,
            lost: record.lost,
            kind: MessageKind::from_i32(record.kind),
            request: crate::help::RequestId::from_field(&record.request_id).ok(),
            passed_on_from: (!record.passed_on_from.is_empty()).then_some(record.passed_on_from),
            request_title: (!record.request_title.is_empty()).then_some(record.request_title),
        }
    }
}

/// Who this device belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// This device's user.
    pub user_id: String,
    /// The user's name, as certified.
    pub display_name: String,
    /// The user's role.
    pub role: Role,
    /// This device's public key.
    pub device: Vec<u8>,
    /// The relay's address.
    pub relay_url: String,
}

/// A user in the relay's directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    /// The user's id.
    pub user_id: String,
    /// The user's name.
    pub display_name: String,
    /// The user's role.
    pub role: Role,
    /// Public keys of the user's devices.
    pub devices: Vec<Vec<u8>>,
}

/// An invite created by staff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invite {
    /// The one-time code to hand over out of band. Treat it as a password.
    pub code: String,
    /// When it expires, ms since the Unix epoch.
    pub expires_at_ms: u64,
}

/// A name as two names are compared: case and spacing ignored, and the
/// ASCII letters and digits that pass for one another (0 and o; 1, i and l;
/// rn and m; vv and w) taken as one.
fn comparable(name: &str) -> String {
    let spaced = name
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase();
    let single: String = spaced
        .chars()
        .map(|c| match c {
            '0' => 'o',
            '1' | 'i' | '|' => 'l',
            '5' => 's',
            other => other,
        })
        .collect();
    single.replace("rn", "m").replace("vv", "w")
}

/// Whether `user_id`'s name could pass for another person on its own: one
/// that reads as another user id (how a member whose name is unknown, or
/// who left, is shown), one that copies the "Name (id)" form, or one with
/// letters outside ASCII (which look-alikes from other scripts hide
/// among).
fn could_be_mistaken(name: &str, user_id: &str) -> bool {
    let own = name
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase();
    (own != user_id && convene_proto::ids::check_user_id(&own).is_ok())
        || name.contains(['(', ')', ':', '[', ']'])
        || !name.is_ascii()
}

#[cfg(test)]
impl GroupSummary {
    /// A cohort `name` with id `[id; 16]` and these (user id, name)
    /// members, one device each: for unit tests.
    pub(crate) fn for_tests(id: u8, name: &str, members: &[(&str, &str)]) -> GroupSummary {
        GroupSummary {
            id: GroupId::from([id; 16]),
            kind: GroupKind::Cohort,
            name: name.into(),
            epoch: 1,
            epoch_authenticator: Vec::new(),
            members: members
                .iter()
                .map(|(user_id, name)| Member {
                    user_id: (*user_id).into(),
                    device: user_id.as_bytes().to_vec(),
                    certificate_valid_until_ms: 0,
                    display_name: (*name).into(),
                })
                .collect(),
            names: Default::default(),
            active: true,
            managers: Vec::new(),
            managing: false,
            stalled: None,
            keys_renewed_at_ms: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::GroupSummary;

    fn group_of(members: &[(&str, &str)]) -> GroupSummary {
        let mut group = GroupSummary::for_tests(7, "Cohort", members);
        group.names = [("left", "Lee Former")]
            .iter()
            .map(|(u, n)| (u.to_string(), n.to_string()))
            .collect();
        group
    }

    #[test]
    fn a_member_is_shown_by_name_with_the_user_id_only_where_names_clash() {
        let group = group_of(&[
            ("ana", "Ana Okafor"),
            ("ana.k", "ana okafor"),
            ("ben", "Ben Shah"),
            ("new", ""),
        ]);
        assert_eq!(group.shown_member("ben"), "Ben Shah");
        assert_eq!(group.shown_member("ana"), "Ana Okafor (ana)");
        assert_eq!(group.shown_member("ana.k"), "ana okafor (ana.k)");
        assert_eq!(group.shown_member("new"), "new");
        assert_eq!(group.shown_member("gone"), "gone");
        // A former member keeps the name this device saw.
        assert_eq!(group.shown_member("left"), "Lee Former");
    }

    #[test]
    fn a_name_made_to_pass_for_someone_else_is_shown_with_its_user_id() {
        let group = group_of(&[
            ("ana", "Ana Okafor"),
            ("eve", "Ana  okafor"),
            ("mal", "ben"),
            ("max", "Ana Okafor (ana)"),
            ("ivy", "Аna Okafor"),
            ("sian", "Siân Jones"),
            ("sam", "Sam"),
        ]);
        assert_eq!(group.shown_member("sam"), "Sam");
        let lookalikes = group_of(&[
            ("ana", "Ana Okafor"),
            ("zed", "Ana 0kafor"),
            ("iris", "Iris Brown"),
            ("lou", "lris Brown"),
            ("mo", "Ana Okafor: I quit"),
        ]);
        assert_eq!(lookalikes.shown_member("zed"), "Ana 0kafor (zed)");
        assert_eq!(lookalikes.shown_member("lou"), "lris Brown (lou)");
        assert_eq!(lookalikes.shown_member("mo"), "Ana Okafor: I quit (mo)");
        assert_eq!(group.shown_member("eve"), "Ana  okafor (eve)");
        assert_eq!(group.shown_member("ana"), "Ana Okafor (ana)");
        assert_eq!(group.shown_member("mal"), "ben (mal)");
        assert_eq!(group.shown_member("max"), "Ana Okafor (ana) (max)");
        assert_eq!(group.shown_member("ivy"), "Аna Okafor (ivy)");
        assert_eq!(group.shown_member("sian"), "Siân Jones (sian)");
    }
}
