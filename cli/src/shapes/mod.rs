//! The JSON shapes of what commands answer: what `--json` prints and what
//! the daemon's JSON-RPC methods return (docs/JSON-RPC.md documents each).
//! Text for people is rendered from these shapes, never from the client's
//! own types, so that a command reads the same whether it ran in this
//! process or in the daemon.

use convene_client::{hex, DeviceInfo, GroupSummary, Identity, LinkRequest, Message, UserInfo};
use serde::{Deserialize, Serialize};

mod events;
mod people;
mod requests;

pub use events::{EventShape, GroupNames};
pub use people::{CohortShape, PersonShape, ProfileShape, TopicCount};
pub use requests::RequestShape;

/// Who a device belongs to (`whoami`, `enrol`, `link`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdentityShape {
    pub user_id: String,
    pub display_name: String,
    /// `leader` or `staff`.
    pub role: String,
    /// The device's public key, hex.
    pub device: String,
    /// The relay's address.
    pub relay: String,
}

impl From<&Identity> for IdentityShape {
    fn from(identity: &Identity) -> IdentityShape {
        IdentityShape {
            user_id: identity.user_id.clone(),
            display_name: identity.display_name.clone(),
            role: identity.role.as_str().to_string(),
            device: hex(&identity.device),
            relay: identity.relay_url.clone(),
        }
    }
}

/// The network channel's chat setting, as staff left it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NetworkChatShape {
    /// Whether every member may post ordinary text.
    pub chat: bool,
}

/// A group or direct channel.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GroupShape {
    /// The group id, hex.
    pub id: String,
    /// `cohort` or `direct` (see `GroupKind`).
    pub kind: String,
    /// Its name; for a direct channel, the other user's id.
    pub name: String,
    /// The MLS epoch (RFC 9420, section 8).
    pub epoch: u64,
    /// The members' user ids.
    pub members: Vec<String>,
    /// Each member's name as their certificate gives it, by user id
    /// (missing while this device has not read it).
    pub member_names: std::collections::BTreeMap<String, String>,
    /// False once this device was removed, or left to manage from outside.
    pub active: bool,
    /// The staff who may manage it from outside (its external senders).
    pub managers: Vec<String>,
    /// This device manages it from outside and cannot read it.
    pub managing: bool,
    /// Why this device cannot follow it right now.
    pub stalled: Option<String>,
}

impl From<&GroupSummary> for GroupShape {
    fn from(group: &GroupSummary) -> GroupShape {
        GroupShape {
            id: group.id.to_string(),
            kind: group.kind.as_str().to_string(),
            name: group.name.clone(),
            epoch: group.epoch,
            members: group.users(),
            member_names: group
                .members
                .iter()
                .filter(|m| !m.display_name.is_empty())
                .map(|m| (m.user_id.clone(), m.display_name.clone()))
                .collect(),
            active: group.active,
            managers: group.managers.clone(),
            managing: group.managing,
            stalled: group.stalled.clone(),
        }
    }
}

/// How a group is shown to people: its name, or its id if it has none.
pub fn shown_name(group: &GroupSummary) -> String {
    if group.name.is_empty() {
        group.id.to_string()
    } else {
        group.name.clone()
    }
}

/// A message, sent or received, or a notice of entries lost.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MessageShape {
    /// Its group's id, hex.
    pub group: String,
    /// How its group is shown to people (its name, or its id).
    pub group_name: String,
    /// Its place in the group's log.
    pub position: u64,
    /// Its id, chosen by its sender.
    pub id: String,
    /// The sender's user id.
    pub sender: String,
    /// How the sender is shown to people: their certified name, with their
    /// user id where another member has the same name (their user id
    /// alone while the name is not known).
    pub sender_shown: String,
    /// The sender's clock, ms since the Unix epoch.
    pub sent_at_ms: u64,
    /// When this device stored it, ms since the Unix epoch.
    pub received_at_ms: u64,
    pub text: String,
    /// Sent from this device.
    pub own: bool,
    /// Not zero: a notice that this many entries could not be read.
    pub lost: u64,
    /// `text`, `help_request` (text: its title), `help_offer`,
    /// `help_close` (text empty) or `introduction` (text: the note).
    #[serde(default = "text_kind")]
    pub kind: String,
    /// For a help request, offer or close: the request's id.
    #[serde(default)]
    pub request: Option<String>,
    /// For an offer staff passed on: the user id of the one who made it
    /// (`sender` is the staff member who passed it on).
    #[serde(default)]
    pub passed_on_from: Option<String>,
    /// For an offer or a close: the title of the request, if this device
    /// held it when the message came.
    #[serde(default)]
    pub request_title: Option<String>,
}

fn text_kind() -> String {
    "text".into()
}

impl MessageShape {
    /// `message`, in `group` as this device knows it (`None`: a group it
    /// does not know yet, shown by its id).
    pub fn new(message: &Message, group: Option<&GroupSummary>) -> MessageShape {
        let (group_name, sender_shown) = match group {
            Some(group) => (shown_name(group), group.shown_member(&message.sender)),
            None => (message.group.to_string(), message.sender.clone()),
        };
        MessageShape {
            group: message.group.to_string(),
            group_name,
            position: message.position,
            id: message.id.to_string(),
            sender: message.sender.clone(),
            sender_shown,
            sent_at_ms: message.sent_at_ms,
            received_at_ms: message.received_at_ms,
            text: message.text.clone(),
            own: message.own,
            lost: message.lost,
            kind: message.kind.as_str().to_string(),
            request: message.request.map(|r| r.to_hex()),
            passed_on_from: message.passed_on_from.clone(),
            request_title: message.request_title.clone(),
        }
    }
}

/// A user of the network (`users`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserShape {
    pub user_id: String,
    pub display_name: String,
    /// `leader` or `staff`.
    pub role: String,
}

impl From<&UserInfo> for UserShape {
    fn from(user: &UserInfo) -> UserShape {
        UserShape {
            user_id: user.user_id.clone(),
            display_name: user.display_name.clone(),
            role: user.role.as_str().to_string(),
        }
    }
}

/// A user's devices and the new ones waiting to be linked (`devices`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DevicesShape {
    pub devices: Vec<DeviceShape>,
    pub waiting: Vec<WaitingDeviceShape>,
}

/// One device in use.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeviceShape {
    /// Its public key, hex.
    pub device: String,
    /// When it enrolled, ms since the Unix epoch.
    pub created_at_ms: u64,
    /// The device that answers.
    pub this_device: bool,
    /// When it last connected to the relay, to the minute, ms since the
    /// Unix epoch; null if the relay has not seen it since it began
    /// keeping this.
    pub last_seen_ms: Option<u64>,
    /// The name the device gave itself, if any (text from the device).
    pub name: Option<String>,
    /// The platform it runs on, with its name.
    pub platform: Option<String>,
}

/// A new device waiting to be linked.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WaitingDeviceShape {
    /// Its public key, hex.
    pub device: String,
    /// The first 4 digits of the code it shows.
    pub code_start: String,
    /// When the request lapses, ms since the Unix epoch.
    pub expires_at_ms: u64,
}

impl DevicesShape {
    /// `devices` in use and `waiting` to be linked.
    pub fn new(devices: &[DeviceInfo], waiting: &[LinkRequest]) -> DevicesShape {
        DevicesShape {
            devices: devices
                .iter()
                .map(|d| DeviceShape {
                    device: hex(&d.device),
                    created_at_ms: d.created_at_ms,
                    this_device: d.this_device,
                    last_seen_ms: d.last_seen_ms,
                    name: d.name.clone(),
                    platform: d.platform.clone(),
                })
                .collect(),
            waiting: waiting
                .iter()
                .map(|l| WaitingDeviceShape {
                    device: hex(&l.device),
                    code_start: l.code_start.clone(),
                    expires_at_ms: l.expires_at_ms,
                })
                .collect(),
        }
    }
}

/// A safety number (`verify`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SafetyNumberShape {
    pub user_id: String,
    pub display_name: String,
    /// 60 digits in 12 groups of 5.
    pub safety_number: String,
}

/// An invite (`invite`). The code is a secret: it is shown once, and its
/// `Debug` leaves it out.
#[derive(Clone, Serialize, Deserialize)]
pub struct InviteShape {
    pub code: String,
    /// ms since the Unix epoch.
    pub expires_at_ms: u64,
    pub role: String,
    pub user_id: String,
    pub display_name: String,
}

impl std::fmt::Debug for InviteShape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InviteShape")
            .field("user_id", &self.user_id)
            .field("role", &self.role)
            .field("expires_at_ms", &self.expires_at_ms)
            .finish_non_exhaustive()
    }
}

/// What `suspend` did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SuspendedShape {
    pub suspended: String,
}

/// What `delegate` did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DelegatedShape {
    pub delegated: String,
    pub may_certify_staff: bool,
}

/// What `undelegate` did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UndelegatedShape {
    pub undelegated: String,
}

/// What `devices approve` did: the new device's key, hex.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LinkedShape {
    pub linked: String,
}

/// What `devices name` did: this device's new name.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NamedShape {
    pub named: String,
}

/// What `devices remove` did: the removed device's key, hex.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RemovedShape {
    pub removed: String,
}

/// What `take-over` did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TakenOverShape {
    pub taken_over: bool,
}
