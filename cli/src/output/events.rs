//! Events as people read them in `listen`: a line in their words, naming
//! the group by how it is shown and saying what happened. Rendered from
//! the event's JSON shape, so that it reads the same through the daemon.

use super::{group_line, message_line, safe, time};
use crate::shapes::EventShape;

/// The line people read for `event`; `None` for events they need not see.
pub fn event_line(event: &EventShape) -> Option<String> {
    Some(match event {
        EventShape::Message { message } => {
            format!("{}: {}", safe(&message.group_name), message_line(message))
        }
        EventShape::Sent { .. } | EventShape::CaughtUp | EventShape::Other => return None,
        EventShape::GroupCreated { group } => format!("created {}", group_line(group)),
        EventShape::Joined { group } => format!("you were added to {}", group_line(group)),
        EventShape::MembersChanged {
            group_name,
            added,
            removed,
            by,
            ..
        } => membership_line(&safe(group_name), by.as_deref(), added, removed),
        EventShape::MemberDevicesChanged {
            group_name,
            user_id,
            added,
            removed,
            ..
        } => devices_line(&safe(group_name), user_id, *added, *removed),
        EventShape::Removed { group_name, .. } => {
            format!("you were removed from {}", safe(group_name))
        }
        EventShape::DeliveryFailed {
            group_name, reason, ..
        } => format!("{}: not delivered: {}", safe(group_name), safe(reason)),
        EventShape::Revoked {
            user_id,
            device: None,
        } => format!(
            "{} was suspended: their devices are cut off and leave their groups",
            safe(user_id)
        ),
        EventShape::Revoked {
            user_id,
            device: Some(_),
        } => format!(
            "a device of {} was revoked: it is cut off and leaves their groups",
            safe(user_id)
        ),
        EventShape::Untrusted {
            group_name, detail, ..
        } => match group_name {
            Some(name) => format!("{}: refused, not trusted: {}", safe(name), safe(detail)),
            None => format!("refused, not trusted: {}", safe(detail)),
        },
        EventShape::IdentityChanged { user_id, .. } => {
            let user_id = safe(user_id);
            format!(
                "WARNING: {user_id}'s identity key changed. Do not trust what they send until you \
                 have compared safety numbers again (convene verify {user_id}) in person or on a call."
            )
        }
        EventShape::Warning { detail, .. } => format!("warning: {}", safe(detail)),
        EventShape::ConnectionLost { reason } => {
            format!("connection lost ({}); reconnecting", safe(reason))
        }
        EventShape::ConnectionRestored => "connection restored".into(),
        EventShape::GroupStalled {
            group_name, reason, ..
        } => format!(
            "{}: this device cannot follow this group right now ({}); \
             it asked to be added back, which happens once another member is online, \
             and keeps what arrives meanwhile",
            safe(group_name),
            safe(reason)
        ),
        EventShape::GroupRecovered {
            group_name, missed, ..
        } => match missed {
            0 => format!("{}: this device follows the group again", safe(group_name)),
            n => format!(
                "{}: this device follows the group again; {n} message(s) sent meanwhile could not be read",
                safe(group_name)
            ),
        },
        EventShape::EntriesDropped {
            group_name, count, ..
        } => format!(
            "{}: {count} message(s) were lost before this device could read them",
            safe(group_name)
        ),
        EventShape::ClockSkew { offset_ms } => format!(
            "WARNING: this device's clock is {} minutes {} the relay's: set its date and time right, \
             or others' certificates may be refused",
            offset_ms.unsigned_abs() / 60_000,
            if *offset_ms > 0 { "ahead of" } else { "behind" }
        ),
        EventShape::StateCopied => "This device's state is a copy (restored from a backup, or cloned) and another copy \
             has connected since, so it stopped. If this is the copy to keep, run `convene take-over`; \
             otherwise link this device again (`convene link`) and remove the old one."
            .into(),
        EventShape::CertificateRenewed { valid_until_ms } => format!(
            "your certificate was renewed; it is valid until {}",
            time(*valid_until_ms)
        ),
        EventShape::DelegationRevoked { user_id } => format!(
            "{} can no longer invite; users they certified that the authority has not \
             renewed are refused",
            safe(user_id)
        ),
    })
}

/// Who joined a group and who is no longer in it, in a sentence: "sam
/// added ana", "sam removed ben", "ben left", or, when who proposed it
/// cannot be told, "ana joined" and "ben is no longer a member".
fn membership_line(group: &str, by: Option<&str>, added: &[String], removed: &[String]) -> String {
    let mut parts = Vec::new();
    let by = by.map(|by| safe(by).into_owned());
    if !added.is_empty() {
        parts.push(match &by {
            Some(by) if !added.contains(by) => format!("{by} added {}", people(added)),
            _ => format!("{} joined", people(added)),
        });
    }
    if !removed.is_empty() {
        let left: Vec<String> = removed
            .iter()
            .filter(|u| Some(*u) == by.as_ref())
            .cloned()
            .collect();
        let others: Vec<String> = removed
            .iter()
            .filter(|u| Some(*u) != by.as_ref())
            .cloned()
            .collect();
        if !left.is_empty() {
            parts.push(format!("{} left", people(&left)));
        }
        if !others.is_empty() {
            parts.push(match &by {
                Some(by) => format!("{by} removed {}", people(&others)),
                None if others.len() == 1 => format!("{} is no longer a member", people(&others)),
                None => format!("{} are no longer members", people(&others)),
            });
        }
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
    use super::{devices_line, membership_line};

    #[test]
    fn membership_and_device_changes_read_as_what_happened() {
        let users = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        assert_eq!(
            membership_line(
                "Cohort 2026",
                None,
                &users(&["ana", "ben", "cara"]),
                &users(&["sam"])
            ),
            "Cohort 2026: ana, ben and cara joined; sam is no longer a member"
        );
        assert_eq!(
            membership_line(
                "Cohort 2026",
                Some("sam"),
                &users(&["ana"]),
                &users(&["ben"])
            ),
            "Cohort 2026: sam added ana; sam removed ben"
        );
        assert_eq!(
            membership_line("Cohort 2026", Some("ben"), &[], &users(&["ben"])),
            "Cohort 2026: ben left"
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
}
