//! Leaving a group as a member (an introduction the leader no longer
//! wants): this device proposes the removal of every device of its user,
//! and the other members commit it (RFC 9420, section 12.1.3: no member
//! commits its own removal). Proposals live for one epoch, so they are
//! made again whenever the group moves on without them; the intent ends
//! when the commit that removes this device arrives.

use super::intents::{Attempt, Step};
use super::{load_group, Engine};
use crate::error::ClientError;
use crate::store::records::{self, IntentKind, IntentRecord, LeaveIntent};

/// How often a leaving device looks whether its removal was committed.
const LEAVE_POLL: std::time::Duration = std::time::Duration::from_millis(500);

impl Engine {
    pub(super) async fn step_leave(
        &mut self,
        mut intent: IntentRecord,
        mut leave: LeaveIntent,
    ) -> Attempt {
        let group_id = intent.group()?;
        let Some(record) = self.group_record(&group_id)? else {
            return Err(Step::Failed(ClientError::UnknownGroup(
                group_id.to_string(),
            )));
        };
        if !record.active {
            return self.drop_intent(&intent);
        }
        if leave.proposed_for == record.epoch + 1 {
            return Ok(Step::RetryAfter(LEAVE_POLL));
        }
        let proposals = match load_group(&mut self.groups, &self.mls, &group_id)? {
            Some(group) => self.mls.ops().propose_leaving(group),
            None => {
                return Err(Step::Failed(ClientError::UnknownGroup(
                    group_id.to_string(),
                )))
            }
        };
        let proposals = match proposals {
            Ok(proposals) => proposals,
            Err(err) => {
                self.store().rollback();
                self.groups.remove(&group_id);
                return Err(Step::Failed(err.into()));
            }
        };
        leave.proposed_for = record.epoch + 1;
        intent.kind = Some(IntentKind::Leave(leave));
        self.store()
            .put_record(records::intent_key(intent.id), &intent);
        self.store().commit_durably()?;
        match self.send_proposals(&group_id, proposals).await {
            Ok(_) => {}
            Err(Step::Failed(err)) => return Err(Step::Failed(err)),
            // The group moved on, or the relay is away: propose again.
            Err(step) => return self.propose_again(intent).and(Err(step)),
        }
        tracing::debug!(epoch = record.epoch, "proposed leaving");
        Ok(Step::RetryAfter(LEAVE_POLL))
    }

    /// Forgets that the removal was proposed, so that the next attempt
    /// proposes it again.
    fn propose_again(&mut self, mut intent: IntentRecord) -> Attempt {
        if let Some(IntentKind::Leave(leave)) = &mut intent.kind {
            leave.proposed_for = 0;
        }
        self.store()
            .put_record(records::intent_key(intent.id), &intent);
        self.store().commit_durably()?;
        Ok(Step::RetryAfter(LEAVE_POLL))
    }
}
