//! Events as `listen` shows them: a JSON document for scripts, and for
//! people a line in their words, naming the group (by its name where this
//! device knows it) and saying what happened.

use convene_client::{Event, GroupId, GroupSummary};
use serde_json::{json, Value};

use super::{group, group_line, message, message_line, safe};

/// An event for `listen`: JSON, and a line for people (`None` for events
/// people need not see).
pub fn event(event: &Event, names: &GroupNames) -> (Value, Option<String>) {
    let name = |group: &GroupId| names.of(group);
    match event {
        Event::MessageReceived(m) => (
            json!({ "event": "message", "message": message(m) }),
            Some(format!("{}: {}", name(&m.group), message_line(m))),
        ),
        Event::MessageSent(m) => (json!({ "event": "sent", "message": message(m) }), None),
        Event::GroupCreated(g) => (
            json!({ "event": "group_created", "group": group(g) }),
            Some(format!("created {}", group_line(g))),
        ),
        Event::JoinedGroup(g) => (
            json!({ "event": "joined", "group": group(g) }),
            Some(format!("you were added to {}", group_line(g))),
        ),
        Event::MembersChanged {
            group,
            added,
            removed,
        } => (
            json!({ "event": "members_changed", "group": group.to_string(), "added": added, "removed": removed }),
            Some(membership_line(&name(group), added, removed)),
        ),
        Event::MemberDevicesChanged {
            group,
            user_id,
            added,
            removed,
        } => (
            json!({ "event": "member_devices_changed", "group": group.to_string(),
                    "user_id": user_id, "added": added, "removed": removed }),
            Some(devices_line(&name(group), user_id, *added, *removed)),
        ),
        Event::RemovedFromGroup { group } => (
            json!({ "event": "removed", "group": group.to_string() }),
            Some(format!("you were removed from {}", name(group))),
        ),
        Event::DeliveryFailed {
            group,
            message,
            reason,
        } => (
            json!({ "event": "delivery_failed", "group": group.to_string(),
                    "message": message.as_ref().map(ToString::to_string), "reason": reason }),
            Some(format!("{}: not delivered: {}", name(group), safe(reason))),
        ),
        Event::IdentityChanged { user_id, group } => (
            json!({ "event": "identity_changed", "user_id": user_id, "group": group.to_string() }),
            Some(format!(
                "WARNING: {user_id}'s identity key changed. Do not trust what they send until you \
                 have compared safety numbers again (convene verify {user_id}) in person or on a call."
            )),
        ),
        Event::Warning { group, detail } => (
            json!({ "event": "warning", "group": group.as_ref().map(ToString::to_string), "detail": detail }),
            Some(format!("warning: {}", safe(detail))),
        ),
        Event::ConnectionLost { reason } => {
            let reason = reason.to_string();
            (
                json!({ "event": "connection_lost", "reason": reason }),
                Some(format!("connection lost ({}); reconnecting", safe(&reason))),
            )
        }
        Event::ConnectionRestored => (
            json!({ "event": "connection_restored" }),
            Some("connection restored".into()),
        ),
        Event::CaughtUp => (json!({ "event": "caught_up" }), None),
        Event::GroupStalled { group, reason } => (
            json!({ "event": "group_stalled", "group": group.to_string(), "reason": reason }),
            Some(format!(
                "{}: this device cannot follow this group right now ({}); \
                 it asked to be added back, which happens once another member is online, \
                 and keeps what arrives meanwhile",
                name(group),
                safe(reason)
            )),
        ),
        Event::GroupRecovered { group, missed } => (
            json!({ "event": "group_recovered", "group": group.to_string(), "missed": missed }),
            Some(match missed {
                0 => format!("{}: this device follows the group again", name(group)),
                n => format!(
                    "{}: this device follows the group again; {n} message(s) sent meanwhile could not be read",
                    name(group)
                ),
            }),
        ),
        Event::EntriesDropped { group, count } => (
            json!({ "event": "entries_dropped", "group": group.to_string(), "count": count }),
            Some(format!(
                "{}: {count} message(s) were lost before this device could read them",
                name(group)
            )),
        ),
        Event::ClockSkew { offset_ms } => (
            json!({ "event": "clock_skew", "offset_ms": offset_ms }),
            Some(format!(
                "WARNING: this device's clock is {} minutes {} the relay's: set its date and time right, \
                 or others' certificates may be refused",
                offset_ms.unsigned_abs() / 60_000,
                if *offset_ms > 0 { "ahead of" } else { "behind" }
            )),
        ),
        Event::StateCopied => (
            json!({ "event": "state_copied" }),
            Some(
                "This device's state is a copy (restored from a backup, or cloned) and another copy \
                 has connected since, so it stopped. If this is the copy to keep, run `convene take-over`; \
                 otherwise link this device again (`convene link`) and remove the old one."
                    .into(),
            ),
        ),
        Event::CertificateRenewed { valid_until_ms } => (
            json!({ "event": "certificate_renewed", "valid_until_ms": valid_until_ms }),
            Some(format!(
                "your certificate was renewed; it is valid until {}",
                humantime::format_rfc3339_seconds(
                    std::time::UNIX_EPOCH + std::time::Duration::from_millis(*valid_until_ms)
                )
            )),
        ),
        Event::DelegationRevoked { user_id } => (
            json!({ "event": "delegation_revoked", "user_id": user_id }),
            Some(format!(
                "{} can no longer invite; users they certified that the authority has not \
                 renewed are refused",
                safe(user_id)
            )),
        ),
        _ => (json!({ "event": "other" }), None),
    }
}

/// Group names by id, for lines people read; a group this device does not
/// know (yet) is shown by its id.
#[derive(Default)]
pub struct GroupNames(std::collections::HashMap<GroupId, String>);

impl GroupNames {
    /// The names of `groups`.
    pub fn of_groups(groups: &[GroupSummary]) -> GroupNames {
        let mut names = GroupNames::default();
        for group in groups {
            names.learn(group);
        }
        names
    }

    /// Learns (or updates) one group's name.
    pub fn learn(&mut self, group: &GroupSummary) {
        self.0.insert(group.id.clone(), shown_name(group));
    }

    /// How `group` is shown.
    pub fn of(&self, group: &GroupId) -> String {
        self.0
            .get(group)
            .cloned()
            .unwrap_or_else(|| group.to_string())
    }
}

/// How a group is shown to people: its name, or its id if it has none.
pub fn shown_name(group: &GroupSummary) -> String {
    if group.name.is_empty() {
        group.id.to_string()
    } else {
        safe(&group.name).into_owned()
    }
}

/// Who joined and left a group, in a sentence.
fn membership_line(group: &str, added: &[String], removed: &[String]) -> String {
    let mut parts = Vec::new();
    if !added.is_empty() {
        parts.push(format!("{} joined", people(added)));
    }
    if !removed.is_empty() {
        parts.push(format!("{} left", people(removed)));
    }
    format!("{group}: {}", parts.join("; "))
}

/// A member's devices that came and went, in a sentence.
fn devices_line(group: &str, user: &str, added: usize, removed: usize) -> String {
    let user = safe(user);
    let count = |n: usize| {
        if n == 1 {
            "a".to_string()
        } else {
            n.to_string()
        }
    };
    let devices = |n: usize| if n == 1 { "device" } else { "devices" };
    let mut parts = Vec::new();
    if added > 0 {
        parts.push(format!(
            "{user} linked {} new {}",
            count(added),
            devices(added)
        ));
    }
    if removed > 0 {
        parts.push(format!(
            "{user} removed {} {}",
            count(removed),
            devices(removed)
        ));
    }
    format!("{group}: {}", parts.join("; "))
}

/// Users named in a sentence: "ana", "ana and ben", "ana, ben and cara".
fn people(users: &[String]) -> String {
    let users: Vec<String> = users.iter().map(|u| safe(u).into_owned()).collect();
    match users.as_slice() {
        [] => String::new(),
        [one] => one.clone(),
        [first @ .., last] => format!("{} and {last}", first.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::{devices_line, membership_line, GroupNames};

    #[test]
    fn membership_and_device_changes_read_as_what_happened() {
        let users = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        assert_eq!(
            membership_line(
                "Cohort 2026",
                &users(&["ana", "ben", "cara"]),
                &users(&["sam"])
            ),
            "Cohort 2026: ana, ben and cara joined; sam left"
        );
        assert_eq!(
            devices_line("Cohort 2026", "ana", 1, 0),
            "Cohort 2026: ana linked a new device"
        );
        assert_eq!(
            devices_line("Cohort 2026", "ana", 0, 2),
            "Cohort 2026: ana removed 2 devices"
        );
    }

    #[test]
    fn a_group_not_known_yet_is_shown_by_its_id() {
        let id = convene_client::GroupId::from([0xab; 16]);
        assert_eq!(GroupNames::default().of(&id), "ab".repeat(16));
    }
}
