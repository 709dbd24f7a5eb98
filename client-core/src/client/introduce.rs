//! Introductions: staff put two or three leaders in touch in a small
//! group of its own kind, with a note saying why, and leave it at once, so
//! that the conversation is the leaders' own. Any of them may leave it in
//! turn (their removal is proposed, and another member commits it).

use convene_proto::content::{
    content, GroupKind as WireKind, GroupMeta, Introduction, MembershipPolicy,
};
use prost::Message as _;

use super::Client;
use crate::engine::{content_intent, Shown};
use crate::error::ClientError;
use crate::help::{check_note, INTRODUCED};
use crate::store::records::{CreateIntent, IntentKind, IntentRecord, LeaveIntent};
use crate::types::{GroupId, GroupKind, GroupSummary, MessageKind, Role};

/// Longest a leader's name runs in an introduction's group name.
const NAME_IN_TITLE_CHARS: usize = 40;

impl Client {
    /// Introduces `leaders` (2 or 3 user ids) to each other with `note`
    /// (1 to [`crate::help::MAX_NOTE_CHARS`] characters): a group of kind
    /// introduction with them, the note as its first message, and this
    /// staff member's departure, which one of them commits. Returns the
    /// group once the note is sent, with the departure queued: it completes
    /// when one of them is online.
    ///
    /// Errors: `Forbidden` for a leader; `InvalidArgument` for a note out
    /// of bounds, too few or too many leaders, the same one twice, or
    /// someone who is not a leader of the directory.
    pub async fn introduce(
        &self,
        leaders: &[String],
        note: &str,
    ) -> Result<GroupSummary, ClientError> {
        if self.identity().role != Role::Staff {
            return Err(ClientError::Forbidden(
                "only staff introduce leaders".into(),
            ));
        }
        let note = note.trim();
        check_note(note).map_err(ClientError::InvalidArgument)?;
        let mut distinct = leaders.to_vec();
        distinct.sort();
        distinct.dedup();
        if !INTRODUCED.contains(&leaders.len()) || distinct.len() != leaders.len() {
            return Err(ClientError::InvalidArgument(
                "an introduction is of 2 or 3 different leaders".into(),
            ));
        }
        self.sync_directory().await?;
        let mut names = Vec::new();
        for user in leaders {
            match self.person(user)? {
                Some(p) if p.role == Role::Leader && !p.suspended => names.push(
                    p.display_name
                        .chars()
                        .take(NAME_IN_TITLE_CHARS)
                        .collect::<String>(),
                ),
                Some(_) => {
                    return Err(ClientError::InvalidArgument(format!(
                        "{user} is not a leader of the network"
                    )))
                }
                None => return Err(ClientError::UnknownUser(user.clone())),
            }
        }
        let group_id = GroupId::from(crate::random_bytes::<16>());
        let meta = GroupMeta {
            version: 1,
            kind: WireKind::Introduction as i32,
            name: super::checked_group_name(&format!("Introduction: {}", names.join(", ")))?,
            membership: MembershipPolicy::Staff as i32,
            ..Default::default()
        };
        self.submit(IntentRecord {
            group_id: group_id.to_vec(),
            kind: Some(IntentKind::Create(CreateIntent {
                meta: meta.encode_to_vec(),
                members: leaders.to_vec(),
                direct_peer: String::new(),
            })),
            ..Default::default()
        })
        .await?;
        let introduction = content::Body::Introduction(Introduction {
            note: note.to_string(),
            introduced: leaders.to_vec(),
        });
        let shown = Shown {
            kind: MessageKind::Introduction,
            text: note.to_string(),
            request: None,
            passed_on_from: None,
        };
        self.submit(content_intent(&group_id, introduction, shown))
            .await?;
        self.queue(leave_intent(&group_id)).await?;
        self.group(&group_id)?
            .ok_or_else(|| ClientError::UnknownGroup(group_id.to_string()))
    }

    /// Leaves an introduction: this user's devices are removed once
    /// another member commits it. Returns once that is queued; it
    /// completes when another member is online (nothing more is sent to
    /// the group from this device meanwhile).
    ///
    /// Errors: `Forbidden` for any other kind of group (staff manage
    /// cohorts; a direct channel stays); `UnknownGroup`.
    pub async fn leave_introduction(&self, group: &GroupId) -> Result<(), ClientError> {
        let summary = self
            .group(group)?
            .filter(|g| g.active)
            .ok_or_else(|| ClientError::UnknownGroup(group.to_string()))?;
        if summary.kind != GroupKind::Introduction {
            return Err(ClientError::Forbidden(
                "only an introduction can be left this way".into(),
            ));
        }
        if summary.members.iter().all(|m| m.user_id == self.user_id()) {
            return Err(ClientError::InvalidArgument(
                "no-one else is left in this introduction to commit your leaving".into(),
            ));
        }
        self.queue(leave_intent(group)).await
    }
}

fn leave_intent(group: &GroupId) -> IntentRecord {
    IntentRecord {
        group_id: group.to_vec(),
        kind: Some(IntentKind::Leave(LeaveIntent::default())),
        ..Default::default()
    }
}
