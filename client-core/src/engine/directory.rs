//! Keeping this device's copy of the directory in step with the relay's:
//! after every connection and every [`DIRECTORY_INTERVAL_MS`], list each
//! user's `directory_stamp`, fetch in full only those that changed, verify
//! them (`directory::verify_user`) and keep the result. A relay that lists
//! a user no more, or serves less than before, takes nothing away.

use convene_proto::relay::{request, response, GetUsers, ListUsers};

use super::Engine;
use crate::directory::{verify_user, DirectorySync};
use crate::error::ClientError;
use crate::store::records::{self, DirectoryRecord};

/// How often the directory is synced while connected, in ms.
const DIRECTORY_INTERVAL_MS: u64 = 10 * 60 * 1000;
/// Users listed per page.
const PAGE: u32 = 500;
/// Pages read at most in one sync (100,000 users).
const MAX_PAGES: u32 = 200;
/// Users fetched per `GetUsers` (the relay's bound).
const FETCH: usize = 50;
/// How long after the relay says the directory changed this device looks,
/// in ms: a burst of changes costs one look, and a relay repeating the
/// notice gets no more than one a while.
const NOTICE_DELAY_MS: u64 = 2_000;

impl Engine {
    /// Syncs the directory when it is due.
    pub(super) async fn check_directory(&mut self) {
        let now = crate::now_ms();
        if now < self.directory_at_ms {
            return;
        }
        self.directory_at_ms = now + DIRECTORY_INTERVAL_MS;
        if let Err(err) = self.sync_directory().await {
            tracing::warn!(
                error = &err as &dyn std::error::Error,
                "syncing the directory failed; will try again"
            );
        }
        let completed = self
            .complete_network_channel()
            .and_then(|()| Ok(self.store().commit_durably()?));
        if let Err(err) = completed {
            self.store().rollback();
            tracing::warn!(
                error = &err as &dyn std::error::Error,
                "cannot add users to the network channel; will try again"
            );
        }
    }

    /// The relay says the directory changed: look soon.
    pub(super) fn directory_changed(&mut self) {
        let soon = crate::now_ms() + NOTICE_DELAY_MS;
        if soon < self.directory_at_ms {
            self.directory_at_ms = soon;
            let at =
                tokio::time::Instant::now() + std::time::Duration::from_millis(NOTICE_DELAY_MS);
            self.lifecycle_at = self.lifecycle_at.min(at);
        }
    }

    /// Brings the directory up to date with the relay's now.
    #[tracing::instrument(level = "debug", skip_all)]
    pub(super) async fn sync_directory(&mut self) -> Result<DirectorySync, ClientError> {
        let listed = self.list_stamps().await?;
        let mut changed = Vec::new();
        for (user_id, stamp) in &listed {
            let held: Option<DirectoryRecord> =
                self.store().get_record(&records::directory_key(user_id))?;
            if held.is_none_or(|h| h.stamp != *stamp) {
                changed.push(user_id.clone());
            }
        }
        let mut report = DirectorySync {
            listed: listed.len(),
            ..Default::default()
        };
        for chunk in changed.chunks(FETCH) {
            let users = match self
                .request(request::Kind::GetUsers(GetUsers {
                    user_ids: chunk.to_vec(),
                }))
                .await?
            {
                response::Result::UserList(page) => page.users,
                _ => return Err(ClientError::unexpected_response()),
            };
            let anchor = self.mls.anchor();
            let now = anchor.now_ms();
            for user in users.iter().filter(|u| chunk.contains(&u.user_id)) {
                let key = records::directory_key(&user.user_id);
                let held: Option<DirectoryRecord> = self.store().get_record(&key)?;
                match verify_user(anchor, user, held.as_ref(), now) {
                    Some(record) => {
                        report.updated += 1;
                        if !record.refused.is_empty() {
                            tracing::warn!(
                                user = %user.user_id,
                                why = %record.refused,
                                "refused part of a directory entry; keeping what was verified before"
                            );
                            report.refused += 1;
                        }
                        self.store().put_record(key, &record);
                    }
                    None => report.unverified += 1,
                }
            }
            self.store().commit_durably()?;
        }
        tracing::debug!(
            listed = report.listed,
            updated = report.updated,
            refused = report.refused,
            "directory synced"
        );
        Ok(report)
    }

    /// Every user the relay lists, with their stamp.
    async fn list_stamps(&mut self) -> Result<Vec<(String, Vec<u8>)>, ClientError> {
        let mut listed = Vec::new();
        let mut after = String::new();
        for _ in 0..MAX_PAGES {
            let page = match self
                .request(request::Kind::ListUsers(ListUsers {
                    after_user_id: after.clone(),
                    limit: PAGE,
                }))
                .await?
            {
                response::Result::UserList(page) => page,
                _ => return Err(ClientError::unexpected_response()),
            };
            let more = page.more;
            for user in page.users {
                // Pages must move forward: a relay that says "more" for
                // ever gets no more than the directory is long.
                if user.user_id <= after {
                    return Ok(listed);
                }
                after = user.user_id.clone();
                listed.push((user.user_id, user.directory_stamp.to_vec()));
            }
            if !more {
                break;
            }
        }
        Ok(listed)
    }
}
