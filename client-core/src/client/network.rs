//! The network channel as the app sees it: staff create it once, with a
//! group id every client derives from the organisation's authority key, so
//! there is one and everyone knows which; from then on staff devices keep
//! it in step with the directory (`engine/network.rs`).

use convene_proto::content::{GroupKind as WireKind, GroupMeta, MembershipPolicy, NetworkPolicy};
use convene_proto::network::network_channel_id;
use prost::Message as _;

use super::Client;
use crate::directory::PeopleQuery;
use crate::error::ClientError;
use crate::store::records::{
    self, CreateIntent, GroupRecord, IntentKind, IntentRecord, NetworkPolicyIntent,
};
use crate::types::{GroupId, GroupSummary, Role};

/// Users the network channel is created with; staff devices add the rest
/// in batches of the same size.
const FIRST_MEMBERS: usize = 50;

impl Client {
    /// The network channel's group id in this organisation.
    pub fn network_channel_id(&self) -> GroupId {
        network_channel_id(&self.inner.shared.identity.authority_key)
    }

    /// The network channel, if this device is in it (or was).
    pub fn network_channel(&self) -> Result<Option<GroupSummary>, ClientError> {
        self.group(&self.network_channel_id())
    }

    /// Creates the network channel (staff, once): named `name`, with the
    /// verified, unsuspended users of the directory; the staff devices in
    /// it add everyone else, and everyone enrolled later, on their own.
    /// Its policy lets staff post announcements and keeps ordinary chat
    /// off for everyone else.
    pub async fn create_network_channel(&self, name: &str) -> Result<GroupSummary, ClientError> {
        if self.identity().role != Role::Staff {
            return Err(ClientError::Forbidden(
                "only staff create the network channel".into(),
            ));
        }
        let name = super::checked_group_name(name)?;
        let group_id = self.network_channel_id();
        if self.group(&group_id)?.is_some() {
            return Err(ClientError::InvalidArgument(
                "the network channel exists already".into(),
            ));
        }
        self.sync_directory().await?;
        let own = self.user_id().to_string();
        let members: Vec<String> = self
            .people(&PeopleQuery::default())?
            .into_iter()
            .map(|p| p.user_id)
            .filter(|user| *user != own)
            .take(FIRST_MEMBERS)
            .collect();
        let meta = GroupMeta {
            version: 1,
            kind: WireKind::Network as i32,
            name,
            membership: MembershipPolicy::Staff as i32,
            network_policy: Some(NetworkPolicy { chat: false }),
            ..Default::default()
        };
        let intent = IntentRecord {
            group_id: group_id.to_vec(),
            kind: Some(IntentKind::Create(CreateIntent {
                meta: meta.encode_to_vec(),
                members,
                direct_peer: String::new(),
            })),
            ..Default::default()
        };
        self.submit(intent).await?;
        self.group(&group_id)?
            .ok_or_else(|| ClientError::UnknownGroup(group_id.to_string()))
    }

    /// Turns ordinary chat in the network channel on or off (staff): a
    /// commit that changes the channel's policy in its GroupContext (RFC
    /// 9420, section 12.1.7), which every member's client then enforces on
    /// every text it receives. Returns once the relay has the commit.
    ///
    /// Errors: `Forbidden` for anyone but staff, or a device not in the
    /// network channel.
    pub async fn set_network_chat(&self, on: bool) -> Result<(), ClientError> {
        if self.identity().role != Role::Staff {
            return Err(ClientError::Forbidden(
                "only staff turn chat in the network channel on or off".into(),
            ));
        }
        let group_id = self.network_channel_id();
        if !self.group(&group_id)?.is_some_and(|g| g.active) {
            return Err(ClientError::Forbidden(
                "this device is not in the network channel".into(),
            ));
        }
        let intent = IntentRecord {
            group_id: group_id.to_vec(),
            kind: Some(IntentKind::NetworkPolicy(NetworkPolicyIntent { chat: on })),
            ..Default::default()
        };
        self.submit(intent).await?;
        Ok(())
    }

    /// Whether ordinary chat in the network channel is on, as this device
    /// last saw its policy; `None` if this device is not in it.
    pub fn network_chat(&self) -> Result<Option<bool>, ClientError> {
        let record: Option<GroupRecord> = self
            .store()
            .get_committed_record(&records::group_key(&self.network_channel_id()))?;
        Ok(record.map(|record| record.chat_on()))
    }

    /// Fails unless this user may post ordinary text in `group`: in the
    /// network channel, staff always, others only while staff allow chat.
    pub(super) fn check_may_post_text(&self, group: &GroupId) -> Result<(), ClientError> {
        if self.inner.shared.skip_local_policy {
            return Ok(());
        }
        let record: Option<GroupRecord> = self
            .store()
            .get_committed_record(&records::group_key(group))?;
        let Some(record) = record else {
            return Ok(());
        };
        if record.kind == WireKind::Network as i32
            && self.identity().role != Role::Staff
            && !record.chat_on()
        {
            return Err(ClientError::Forbidden(
                "the network channel carries staff announcements and help requests; ordinary \
                 chat there is off"
                    .into(),
            ));
        }
        Ok(())
    }
}
