//! The text people read for a call's answer, rendered from its JSON shape
//! alone: the same whether the call ran in this process or in the daemon.

use anyhow::{Context, Result};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::people::{cohort_text, person_entry, person_text, profile_text};
use super::requests::{request_entry, request_text};
use super::{group_line, identity_text, lines_or, message_line, safe, time};
use crate::call::Call;
use crate::shapes::{
    CohortShape, DelegatedShape, DevicesShape, GroupShape, IdentityShape, InviteShape, LinkedShape,
    MessageShape, NamedShape, NetworkChatShape, PersonShape, ProfileShape, RemovedShape,
    RequestShape, SafetyNumberShape, SuspendedShape, TakenOverShape, UndelegatedShape, UserShape,
};

/// The answer read as the shape `T`. A daemon of another version may
/// answer in another shape: that is said, with what to do.
fn read<T: DeserializeOwned>(call: &Call, value: &Value) -> Result<T> {
    T::deserialize(value).with_context(|| {
        format!(
            "the answer to `{}` is not in the shape this version of convene reads; \
             if a daemon of another version runs, restart it",
            call.method()
        )
    })
}

/// The text for `call`'s answer `value`.
///
/// # Errors
/// When `value` is not the shape the call answers with.
pub fn render(call: &Call, value: &Value) -> Result<String> {
    Ok(match call {
        Call::Whoami => identity_text(&read::<IdentityShape>(call, value)?),
        Call::Groups => lines_or(
            &read::<Vec<GroupShape>>(call, value)?,
            "no groups yet",
            group_line,
        ),
        Call::Introduce { .. } => format!(
            "introduced them in {}; you leave it once one of them is online to commit it",
            group_line(&read::<GroupShape>(call, value)?)
        ),
        Call::NetworkChat { .. } => match read::<NetworkChatShape>(call, value)?.chat {
            true => "chat in the network channel is on: every member may post text".to_string(),
            false => "chat in the network channel is off: staff announcements and help \
                      requests only"
                .to_string(),
        },
        Call::GroupCreate { .. } | Call::NetworkCreate { .. } => {
            format!("created {}", group_line(&read::<GroupShape>(call, value)?))
        }
        Call::GroupAdd { .. } | Call::GroupRemove { .. } | Call::GroupLeave { .. } => {
            group_line(&read::<GroupShape>(call, value)?)
        }
        Call::GroupShow { .. } => {
            let group = read::<GroupShape>(call, value)?;
            let mut text = group_line(&group);
            for user in &group.members {
                match group.member_names.get(user) {
                    Some(name) => text.push_str(&format!("\n  {} ({})", safe(name), safe(user))),
                    None => text.push_str(&format!("\n  {}", safe(user))),
                }
            }
            text
        }
        Call::Dm { user, .. } => {
            read::<MessageShape>(call, value)?;
            format!("sent to {}", safe(user))
        }
        Call::Send { .. } => {
            let message = read::<MessageShape>(call, value)?;
            format!("sent to {}", safe(&message.group_name))
        }
        Call::Read { .. } => lines_or(
            &read::<Vec<MessageShape>>(call, value)?,
            "no messages yet",
            message_line,
        ),
        Call::Users => read::<Vec<UserShape>>(call, value)?
            .iter()
            .map(|u| {
                format!(
                    "{}  {} ({})",
                    safe(&u.user_id),
                    safe(&u.display_name),
                    safe(&u.role)
                )
            })
            .collect::<Vec<_>>()
            .join("\n"),
        Call::Verify { .. } => {
            let number = read::<SafetyNumberShape>(call, value)?;
            format!(
                "Safety number with {} ({}):\n  {}\nCompare it with theirs in person or on a call: \
                 if the digits match, no one stands between you.",
                safe(&number.user_id),
                safe(&number.display_name),
                safe(&number.safety_number)
            )
        }
        Call::Invite { .. } => {
            let invite = read::<InviteShape>(call, value)?;
            format!(
                "Invite for {} ({}), a new {} (one use, until {}):\n  {}\nHand it over privately: it works like a password.",
                safe(&invite.display_name),
                safe(&invite.user_id),
                safe(&invite.role),
                time(invite.expires_at_ms),
                safe(&invite.code)
            )
        }
        Call::Ask { .. } => {
            let request = read::<RequestShape>(call, value)?;
            let posted = if request.via_staff {
                "Sent to staff to post for you: no-one else will see that it was you."
            } else {
                "Posted to the network."
            };
            format!(
                "{posted} Offers come to you privately; close it when you have the help you need: convene ask close {}\n{}",
                request.id.get(..8).unwrap_or(&request.id),
                request_text(&request)
            )
        }
        Call::AskClose { .. } | Call::RequestsShow { .. } => {
            request_text(&read::<RequestShape>(call, value)?)
        }
        Call::Requests { all, mine } => {
            let requests = read::<Vec<RequestShape>>(call, value)?;
            if requests.is_empty() {
                match (all, mine) {
                    (_, true) => "you have asked nothing yet (`convene ask`)".to_string(),
                    (true, false) => "no requests yet".to_string(),
                    (false, false) => {
                        "no open requests (`convene requests --all` lists closed ones too; a request \
                         asked before you joined reaches you once its asker's device is next \
                         online)"
                            .to_string()
                    }
                }
            } else {
                requests
                    .iter()
                    .map(request_entry)
                    .collect::<Vec<_>>()
                    .join("\n\n")
            }
        }
        Call::Offer { .. } => {
            let message = read::<MessageShape>(call, value)?;
            format!(
                "offer sent privately: only the one who asked reads it (through the member of \
                 staff who posted it, if they asked through staff)\n{}",
                message_line(&message)
            )
        }
        Call::People { .. } => lines_or(
            &read::<Vec<PersonShape>>(call, value)?,
            "no one matches",
            person_entry,
        ),
        Call::PeopleShow { .. } => person_text(&read::<PersonShape>(call, value)?),
        Call::Recertify { .. } => format!(
            "re-certified; everyone sees this from their next directory sync:\n{}",
            person_text(&read::<PersonShape>(call, value)?)
        ),
        Call::Cohort => lines_or(
            &read::<Vec<CohortShape>>(call, value)?,
            "no cohort here yet: no cohort group on this device, and no programme and cohort \
             certified for you",
            cohort_text,
        ),
        Call::ProfileShow | Call::ProfileSet { .. } => {
            profile_text(&read::<ProfileShape>(call, value)?)
        }
        Call::Suspend { .. } => {
            let user = safe(&read::<SuspendedShape>(call, value)?.suspended).into_owned();
            format!("{user} is suspended: their devices are cut off and removed from their groups.")
        }
        Call::Delegate { .. } => {
            let delegated = read::<DelegatedShape>(call, value)?;
            let user = safe(&delegated.delegated).into_owned();
            let whom = if delegated.may_certify_staff {
                "leaders and staff"
            } else {
                "leaders"
            };
            format!(
                "{user} can now invite {whom} (for a year, or until `convene undelegate {user}`)."
            )
        }
        Call::Undelegate { .. } => {
            let user = safe(&read::<UndelegatedShape>(call, value)?.undelegated).into_owned();
            format!(
                "{user} can no longer invite; users they certified that the authority has not \
                 renewed yet are refused from now on."
            )
        }
        Call::Devices => devices_text(&read::<DevicesShape>(call, value)?),
        Call::DevicesApprove { .. } => format!(
            "Linked device {}: it is now in all your groups.",
            short(&read::<LinkedShape>(call, value)?.linked)
        ),
        Call::DevicesName { .. } => format!(
            "This device is now \"{}\" on your other devices.",
            safe(&read::<NamedShape>(call, value)?.named)
        ),
        Call::DevicesRemove { .. } => format!(
            "Removed device {}: it is cut off and out of all your groups.",
            short(&read::<RemovedShape>(call, value)?.removed)
        ),
        Call::TakeOver => {
            if read::<TakenOverShape>(call, value)?.taken_over {
                "This copy of the device is now the one in use; any other copy is refused. \
                 Groups the other copy went on in are being rejoined: another member must be \
                 online to add it back, and what was sent meanwhile cannot be read."
                    .into()
            } else {
                "Nothing to do: the relay accepts this device's state as the one in use.".into()
            }
        }
    })
}

/// A device key as people compare it: its first 16 hex digits.
fn short(device: &str) -> String {
    let start: String = device.chars().take(16).collect();
    safe(&start).into_owned()
}

fn devices_text(listing: &DevicesShape) -> String {
    let mut lines: Vec<String> = listing
        .devices
        .iter()
        .map(|d| {
            let seen = match (d.this_device, d.last_seen_ms) {
                (true, _) => "  (this device)".to_string(),
                (false, Some(ms)) => format!(", last seen {}", time(ms)),
                (false, None) => String::new(),
            };
            let label = match (&d.name, &d.platform) {
                (Some(name), Some(platform)) if !platform.is_empty() => {
                    format!("\"{}\" ({}), ", safe(name), safe(platform))
                }
                (Some(name), _) => format!("\"{}\", ", safe(name)),
                (None, _) => String::new(),
            };
            format!(
                "{}  {label}enrolled {}{seen}",
                short(&d.device),
                time(d.created_at_ms)
            )
        })
        .collect();
    for link in &listing.waiting {
        lines.push(format!(
            "waiting to be linked: {}  code starting {}",
            short(&link.device),
            safe(&link.code_start)
        ));
    }
    lines.join("\n")
}
