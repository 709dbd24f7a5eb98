//! The directory as the app reads it: searches over this device's verified
//! copy (no request leaves the device), and the user's own profile, signed
//! here with their identity key and stored by the relay.

use convene_proto::relay::{request, response, GetUser, SetProfile};
use prost::Message as _;
use tokio::sync::oneshot;

use super::Client;
use crate::directory::{
    search, verify_user, DirectorySync, PeopleQuery, Person, ProfileDraft, SearchIndex,
};
use crate::engine::Command;
use crate::error::ClientError;
use crate::store::records::{self, DirectoryRecord, IdentityRecord};
use crate::trust::IdentityKey;

impl Client {
    /// Brings this device's copy of the directory up to date with the
    /// relay now (it is also synced after every connection and every ten
    /// minutes). Fails if the relay cannot be reached.
    pub async fn sync_directory(&self) -> Result<DirectorySync, ClientError> {
        let (reply, answer) = oneshot::channel();
        self.inner
            .commands
            .send(Command::SyncDirectory { reply })
            .await
            .map_err(|_| ClientError::Stopped)?;
        answer.await.map_err(|_| ClientError::Stopped)?
    }

    /// This device's copy of the directory, ready to search: every user it
    /// verified, suspended ones marked.
    pub fn directory(&self) -> Result<SearchIndex, ClientError> {
        let revocations = &self.inner.shared.revocations;
        let people = self
            .store()
            .scan::<DirectoryRecord>(&records::directory_prefix())
            .map(|item| {
                item.map(|(_, record)| {
                    let suspended = revocations.covers(&record.user_id, &[]);
                    Person::from_record(&record, suspended)
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(SearchIndex::new(people))
    }

    /// The people matching `query`, best first (see [`crate::directory`]
    /// for how they are ranked).
    pub fn people(&self, query: &PeopleQuery) -> Result<Vec<Person>, ClientError> {
        let index = self.directory()?;
        Ok(search(&index, query).into_iter().cloned().collect())
    }

    /// One person of the directory, `None` if this device holds no
    /// verified entry for them.
    pub fn person(&self, user_id: &str) -> Result<Option<Person>, ClientError> {
        let record: Option<DirectoryRecord> = self
            .store()
            .get_committed_record(&records::directory_key(user_id))?;
        Ok(record.map(|record| {
            let suspended = self.inner.shared.revocations.covers(user_id, &[]);
            Person::from_record(&record, suspended)
        }))
    }

    /// Writes this user's profile: `draft` applied to the profile the
    /// relay holds now (verified), at the next revision, signed with the
    /// identity key and stored by the relay; then the directory is synced
    /// and this user's entry returned. Only a device that holds the
    /// identity key can ([`ClientError::Forbidden`] otherwise); a field out
    /// of bounds is [`ClientError::InvalidArgument`].
    pub async fn set_profile(&self, draft: &ProfileDraft) -> Result<Person, ClientError> {
        let identity_key = self.identity_key()?;
        let own = self.user_id().to_string();
        let user = match self
            .relay(request::Kind::GetUser(GetUser {
                user_id: own.clone(),
            }))
            .await?
        {
            response::Result::User(user) => user,
            _ => return Err(ClientError::unexpected_response()),
        };
        let held: Option<DirectoryRecord> = self
            .store()
            .get_committed_record(&records::directory_key(&own))?;
        let anchor = self.anchor()?;
        let now = anchor.now_ms();
        let current = verify_user(&anchor, &user, held.as_ref(), now)
            .and_then(|record| Person::from_record(&record, false).profile);
        let profile = draft
            .apply(&own, current.as_ref(), now)
            .map_err(ClientError::InvalidArgument)?;
        let signed = identity_key.sign_profile(&profile);
        match self
            .relay(request::Kind::SetProfile(SetProfile {
                profile: signed.encode_to_vec().into(),
            }))
            .await?
        {
            response::Result::ProfileSet(_) => {}
            _ => return Err(ClientError::unexpected_response()),
        }
        self.sync_directory().await?;
        self.person(&own)?.ok_or_else(|| {
            ClientError::Untrusted("your own directory entry does not verify".into())
        })
    }

    /// The user's identity key, if this device holds it.
    fn identity_key(&self) -> Result<IdentityKey, ClientError> {
        let mut identity: IdentityRecord = self
            .store()
            .get_committed_record(&records::identity_key())?
            .ok_or(ClientError::NotEnrolled)?;
        let key = <&[u8; 32]>::try_from(identity.identity_secret.as_slice())
            .map(IdentityKey::from_secret_bytes);
        crate::settle::wipe_secrets(&mut identity);
        key.map_err(|_| {
            ClientError::Forbidden(
                "only a device that holds your identity key can change your profile".into(),
            )
        })
    }
}
