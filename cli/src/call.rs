//! What a command asks of a device's client, as one value: the daemon's
//! JSON-RPC methods are these calls (their `method` and `params`), and a
//! command run without a daemon executes the same value in its own
//! process. Commands that need no client (`ping`, `enrol`, `link`) or
//! that must have the state to themselves (`passphrase`) are not calls.

use serde::{Deserialize, Serialize};

use crate::{
    AskCommand, Command, DevicesCommand, GroupCommand, InviteArgs, NetworkCommand, PeopleCommand,
    ProfileCommand, RecertifyArgs, RequestsCommand, RoleArg,
};

/// One call: a JSON-RPC method name and its params (docs/JSON-RPC.md).
/// Its `Debug` names the method only: params can hold a link code.
#[derive(Clone, Serialize, Deserialize)]
#[serde(tag = "method", content = "params", deny_unknown_fields)]
pub enum Call {
    #[serde(rename = "whoami")]
    Whoami,
    #[serde(rename = "groups")]
    Groups,
    #[serde(rename = "group.create")]
    GroupCreate {
        name: String,
        #[serde(default)]
        members: Vec<String>,
    },
    #[serde(rename = "group.add")]
    GroupAdd { group: String, users: Vec<String> },
    #[serde(rename = "group.remove")]
    GroupRemove { group: String, users: Vec<String> },
    #[serde(rename = "group.show")]
    GroupShow { group: String },
    #[serde(rename = "group.leave")]
    GroupLeave { group: String },
    #[serde(rename = "dm")]
    Dm { user: String, text: String },
    #[serde(rename = "send")]
    Send { group: String, text: String },
    #[serde(rename = "read")]
    Read {
        group: String,
        #[serde(default = "default_limit")]
        limit: usize,
    },
    #[serde(rename = "users")]
    Users,
    #[serde(rename = "verify")]
    Verify { user: String },
    #[serde(rename = "invite")]
    Invite {
        user_id: String,
        name: String,
        #[serde(default)]
        sector: Option<String>,
        #[serde(default)]
        role: Role,
        #[serde(default)]
        region: Option<String>,
        #[serde(default)]
        title: Option<String>,
        #[serde(default)]
        organisation: Option<String>,
        #[serde(default)]
        programme: Option<String>,
        #[serde(default)]
        cohort: Option<String>,
    },
    #[serde(rename = "recertify")]
    Recertify {
        user_id: String,
        #[serde(default)]
        name: Option<String>,
        #[serde(default)]
        sector: Option<String>,
        #[serde(default)]
        region: Option<String>,
        #[serde(default)]
        title: Option<String>,
        #[serde(default)]
        organisation: Option<String>,
        #[serde(default)]
        programme: Option<String>,
        #[serde(default)]
        cohort: Option<String>,
    },
    #[serde(rename = "network.create")]
    NetworkCreate { name: String },
    #[serde(rename = "network.chat")]
    NetworkChat { on: bool },
    #[serde(rename = "people")]
    People {
        #[serde(default)]
        query: String,
        #[serde(default)]
        sector: Option<String>,
        #[serde(default)]
        region: Option<String>,
        #[serde(default)]
        topic: Option<String>,
        #[serde(default)]
        programme: Option<String>,
        #[serde(default)]
        cohort: Option<String>,
        #[serde(default)]
        all: bool,
    },
    #[serde(rename = "cohort")]
    Cohort,
    #[serde(rename = "introduce")]
    Introduce { users: Vec<String>, note: String },
    #[serde(rename = "people.show")]
    PeopleShow { user: String },
    #[serde(rename = "profile.show")]
    ProfileShow,
    #[serde(rename = "profile.set")]
    ProfileSet {
        #[serde(default)]
        topics: Option<Vec<String>>,
        #[serde(default)]
        working_on: Option<String>,
        #[serde(default)]
        bio: Option<String>,
        #[serde(default)]
        contact: Option<String>,
    },
    #[serde(rename = "ask")]
    Ask {
        title: String,
        #[serde(default)]
        text: String,
        #[serde(default)]
        topics: Vec<String>,
        #[serde(default)]
        sectors: Vec<String>,
        #[serde(default)]
        regions: Vec<String>,
        #[serde(default)]
        days: Option<u32>,
        #[serde(default)]
        via_staff: Option<String>,
    },
    #[serde(rename = "ask.close")]
    AskClose { request: String },
    #[serde(rename = "requests")]
    Requests {
        #[serde(default)]
        all: bool,
        #[serde(default)]
        mine: bool,
    },
    #[serde(rename = "requests.show")]
    RequestsShow { request: String },
    #[serde(rename = "offer")]
    Offer { request: String, text: String },
    #[serde(rename = "suspend")]
    Suspend { user: String },
    #[serde(rename = "delegate")]
    Delegate {
        user: String,
        #[serde(default)]
        may_certify_staff: bool,
    },
    #[serde(rename = "undelegate")]
    Undelegate { user: String },
    #[serde(rename = "devices")]
    Devices,
    #[serde(rename = "devices.approve")]
    DevicesApprove { code: String },
    #[serde(rename = "devices.name")]
    DevicesName { name: String },
    #[serde(rename = "devices.remove")]
    DevicesRemove { device: String },
    #[serde(rename = "take-over")]
    TakeOver,
}

impl std::fmt::Debug for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Call({})", self.method())
    }
}

/// How many messages `read` shows when not told.
pub const DEFAULT_READ_LIMIT: usize = 50;
/// The most messages one `read` shows.
pub const MAX_READ_LIMIT: usize = 1000;

fn default_limit() -> usize {
    DEFAULT_READ_LIMIT
}

/// A user's role, as `invite` takes it.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    #[default]
    Leader,
    Staff,
}

/// How much of the relay a call needs before it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// Only what is stored on this device.
    Stored,
    /// Caught up with the relay if it can be reached; otherwise what is
    /// stored, with a note saying so.
    Synced,
    /// Caught up with the relay, or the call fails.
    Connected,
}

impl Call {
    /// What the call needs of the relay before it runs.
    pub fn readiness(&self) -> Readiness {
        match self {
            Call::Whoami | Call::TakeOver => Readiness::Stored,
            Call::Groups
            | Call::Read { .. }
            | Call::GroupShow { .. }
            | Call::People { .. }
            | Call::PeopleShow { .. }
            | Call::ProfileShow
            | Call::Cohort
            | Call::Requests { .. }
            | Call::RequestsShow { .. } => Readiness::Synced,
            _ => Readiness::Connected,
        }
    }

    /// The JSON-RPC method name.
    pub fn method(&self) -> &'static str {
        match self {
            Call::Whoami => "whoami",
            Call::Groups => "groups",
            Call::GroupCreate { .. } => "group.create",
            Call::GroupAdd { .. } => "group.add",
            Call::GroupRemove { .. } => "group.remove",
            Call::GroupShow { .. } => "group.show",
            Call::GroupLeave { .. } => "group.leave",
            Call::Dm { .. } => "dm",
            Call::Send { .. } => "send",
            Call::Read { .. } => "read",
            Call::Users => "users",
            Call::Verify { .. } => "verify",
            Call::Invite { .. } => "invite",
            Call::Recertify { .. } => "recertify",
            Call::NetworkCreate { .. } => "network.create",
            Call::NetworkChat { .. } => "network.chat",
            Call::People { .. } => "people",
            Call::PeopleShow { .. } => "people.show",
            Call::Cohort => "cohort",
            Call::Introduce { .. } => "introduce",
            Call::ProfileShow => "profile.show",
            Call::ProfileSet { .. } => "profile.set",
            Call::Ask { .. } => "ask",
            Call::AskClose { .. } => "ask.close",
            Call::Requests { .. } => "requests",
            Call::RequestsShow { .. } => "requests.show",
            Call::Offer { .. } => "offer",
            Call::Suspend { .. } => "suspend",
            Call::Delegate { .. } => "delegate",
            Call::Undelegate { .. } => "undelegate",
            Call::Devices => "devices",
            Call::DevicesApprove { .. } => "devices.approve",
            Call::DevicesName { .. } => "devices.name",
            Call::DevicesRemove { .. } => "devices.remove",
            Call::TakeOver => "take-over",
        }
    }

    /// The call a command line makes, or `None` for a command that is not
    /// a call. `devices approve` with no code on the command line is a
    /// call once the code has been read (see `commands::devices`).
    pub fn of_command(command: &Command) -> Option<Call> {
        Some(match command {
            Command::Whoami => Call::Whoami,
            Command::Groups => Call::Groups,
            Command::Group(group) => match group {
                GroupCommand::Create { name, members } => Call::GroupCreate {
                    name: name.clone(),
                    members: members.clone(),
                },
                GroupCommand::Add { group, users } => Call::GroupAdd {
                    group: group.clone(),
                    users: users.clone(),
                },
                GroupCommand::Remove { group, users } => Call::GroupRemove {
                    group: group.clone(),
                    users: users.clone(),
                },
                GroupCommand::Show { group } => Call::GroupShow {
                    group: group.clone(),
                },
                GroupCommand::Leave { group } => Call::GroupLeave {
                    group: group.clone(),
                },
            },
            Command::Dm { user, text } => Call::Dm {
                user: user.clone(),
                text: text.clone(),
            },
            Command::Send { group, text } => Call::Send {
                group: group.clone(),
                text: text.clone(),
            },
            Command::Read { group, limit } => Call::Read {
                group: group.clone(),
                limit: *limit,
            },
            Command::Users => Call::Users,
            Command::Verify { user } => Call::Verify { user: user.clone() },
            Command::Invite(InviteArgs {
                user_id,
                name,
                role,
                fields,
            }) => Call::Invite {
                user_id: user_id.clone(),
                name: name.clone(),
                sector: fields.sector.clone(),
                role: match role {
                    RoleArg::Leader => Role::Leader,
                    RoleArg::Staff => Role::Staff,
                },
                region: fields.region.clone(),
                title: fields.title.clone(),
                organisation: fields.organisation.clone(),
                programme: fields.programme.clone(),
                cohort: fields.cohort.clone(),
            },
            Command::Recertify(RecertifyArgs {
                user_id,
                name,
                fields,
            }) => Call::Recertify {
                user_id: user_id.clone(),
                name: name.clone(),
                sector: fields.sector.clone(),
                region: fields.region.clone(),
                title: fields.title.clone(),
                organisation: fields.organisation.clone(),
                programme: fields.programme.clone(),
                cohort: fields.cohort.clone(),
            },
            Command::People { command, search } => match command {
                Some(PeopleCommand::Show { user }) => Call::PeopleShow { user: user.clone() },
                None => Call::People {
                    query: search.query.join(" "),
                    sector: search.sector.clone(),
                    region: search.region.clone(),
                    topic: search.topic.clone(),
                    programme: search.programme.clone(),
                    cohort: search.cohort.clone(),
                    all: search.all,
                },
            },
            Command::Cohort => Call::Cohort,
            Command::Introduce { users, note } => Call::Introduce {
                users: users.clone(),
                note: note.clone(),
            },
            Command::Network(NetworkCommand::Create { name }) => {
                Call::NetworkCreate { name: name.clone() }
            }
            Command::Network(NetworkCommand::Chat { state }) => Call::NetworkChat {
                on: *state == crate::peer_args::OnOff::On,
            },
            Command::Profile(ProfileCommand::Show) => Call::ProfileShow,
            Command::Profile(ProfileCommand::Set {
                topics,
                working_on,
                bio,
                contact,
            }) => Call::ProfileSet {
                topics: topics.clone(),
                working_on: working_on.clone(),
                bio: bio.clone(),
                contact: contact.clone(),
            },
            Command::Ask { command, ask } => match command {
                Some(AskCommand::Close { request }) => Call::AskClose {
                    request: request.clone(),
                },
                None => Call::Ask {
                    title: ask.title.clone().unwrap_or_default(),
                    text: ask.text.clone().unwrap_or_default(),
                    topics: ask.topics.clone(),
                    sectors: ask.sectors.clone(),
                    regions: ask.regions.clone(),
                    days: Some(ask.days),
                    via_staff: ask.via_staff.clone(),
                },
            },
            Command::Requests { command, all, mine } => match command {
                Some(RequestsCommand::Show { request }) => Call::RequestsShow {
                    request: request.clone(),
                },
                None => Call::Requests {
                    all: *all,
                    mine: *mine,
                },
            },
            Command::Offer { request, text } => Call::Offer {
                request: request.clone(),
                text: text.clone(),
            },
            Command::Suspend { user } => Call::Suspend { user: user.clone() },
            Command::Delegate {
                user,
                may_certify_staff,
            } => Call::Delegate {
                user: user.clone(),
                may_certify_staff: *may_certify_staff,
            },
            Command::Undelegate { user } => Call::Undelegate { user: user.clone() },
            Command::Devices { command } => match command {
                None => Call::Devices,
                Some(DevicesCommand::Remove { device }) => Call::DevicesRemove {
                    device: device.clone(),
                },
                Some(DevicesCommand::Name { name }) => Call::DevicesName { name: name.clone() },
                Some(DevicesCommand::Approve { .. }) => return None,
            },
            Command::TakeOver => Call::TakeOver,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Call;

    #[test]
    fn a_call_is_its_json_rpc_method_and_params() {
        let call: Call = serde_json::from_value(serde_json::json!({
            "method": "send", "params": { "group": "Cohort 2026", "text": "hello" }
        }))
        .expect("a send call");
        assert_eq!(call.method(), "send");
        let back = serde_json::to_value(&call).expect("serialises");
        assert_eq!(back["params"]["text"], "hello");

        let read: Call = serde_json::from_value(serde_json::json!({
            "method": "read", "params": { "group": "x" }
        }))
        .expect("a read call without a limit");
        assert!(matches!(read, Call::Read { limit: 50, .. }));

        let unit: Call = serde_json::from_value(serde_json::json!({ "method": "groups" }))
            .expect("a call with no params");
        assert_eq!(unit.method(), "groups");
    }

    #[test]
    fn a_calls_debug_names_the_method_and_never_a_code() {
        let call = Call::DevicesApprove {
            code: "1234 5678 9012".into(),
        };
        let shown = format!("{call:?}");
        assert_eq!(shown, "Call(devices.approve)");
        let invite = crate::shapes::InviteShape {
            code: "cvn2_secret".into(),
            expires_at_ms: 1,
            role: "leader".into(),
            user_id: "ana".into(),
            display_name: "Ana".into(),
        };
        assert!(!format!("{invite:?}").contains("cvn2_secret"));
    }
}
