//! Groups: creation, routing state, commits through the per-epoch gate, and
//! application messages.

use bytes::Bytes;
use convene_proto::encode_envelope;
use convene_proto::ids::{fixed, Epoch, GroupId, Position, SUBMISSION_ID_LEN};
use convene_proto::mls_frame::{read_key_package, read_message_header, ContentType, WireFormat};
use convene_proto::relay::{
    push, response, CommitAccepted, CreateGroup, Envelope, GetGroup, GroupCreated, GroupMessage,
    GroupState, MessageAccepted, MessageKind, Receipt, Role, SendMessage, SubmitCommit,
};

use super::{check_size, device_keys, Caller, Effect, Reply};

use crate::error::{Refusal, RelayResult};
use crate::frames::CachedEntry;
use crate::relay::Relay;
use crate::store::{now_ms, AppendOutcome, CommitSubmission, MessageSubmission};

/// When a device past its hourly share of new groups may try again, ms.
const GROUP_RETRY_MS: u32 = 60_000;

/// Log entries read to build a group's submission index that are charged
/// to the sender as one request: at the default 200 requests/s, a device
/// can make the relay read about 20,000 entries a second this way (more
/// for a while, as one charge is capped at the burst).
const LOG_ENTRIES_PER_REQUEST: f64 = 100.0;

pub(super) fn create(relay: &Relay, caller: &Caller, req: CreateGroup) -> RelayResult<Reply> {
    let group_id = GroupId::from_field(&req.group_id)?;
    // Each group a device makes can carry junk Welcomes to others: bounded.
    if !relay
        .groups_per_device
        .take(caller.device, std::time::Instant::now())
    {
        return Err(Refusal::RateLimited {
            retry_after_ms: GROUP_RETRY_MS,
        }
        .into());
    }
    // A direct channel's id is reserved for its pair: nobody else may
    // register it first and keep the two from talking.
    let direct = convene_proto::direct::is_direct_group_id(&group_id);
    if direct || !req.direct_pair.is_empty() {
        let pair_ok = convene_proto::direct::is_direct_channel_of(&group_id, &req.direct_pair);
        if !pair_ok || !req.direct_pair.iter().any(|user| *user == caller.user_id) {
            return Err(Refusal::Forbidden(
                "a direct channel's id is registered only by one of its two users",
            )
            .into());
        }
    }
    // The network channel's id follows from the authority key: only staff
    // register it, so that no leader takes it first (clients also refuse
    // a group of that id that is not staff's network channel).
    if caller.role != Role::Staff {
        if let Some(authority) = relay.store.authority_key()? {
            if group_id == convene_proto::network::network_channel_id(&authority) {
                return Err(Refusal::Forbidden(
                    "the network channel's id is registered only by staff",
                )
                .into());
            }
        }
    }
    relay
        .store
        .create_group(&group_id, &caller.device, now_ms())?;
    Ok(Reply::durable(response::Result::GroupCreated(
        GroupCreated { epoch: 0 },
    )))
}

pub(super) fn get(relay: &Relay, caller: &Caller, req: GetGroup) -> RelayResult<Reply> {
    let group_id = GroupId::from_field(&req.group_id)?;
    let group = relay
        .store
        .group(&group_id)?
        .ok_or(Refusal::NotFound("group"))?;
    let members = relay.store.members(&group_id)?;
    // Staff read the state of the cohorts they manage from outside them.
    if caller.role != Role::Staff
        && !members
            .iter()
            .any(|(d, m)| *d == caller.device && m.is_active())
    {
        return Err(Refusal::NotAMember.into());
    }
    let group_info = relay.store.group_info(&group_id)?.unwrap_or_default();
    let acked_position = members
        .iter()
        .find(|(d, _)| *d == caller.device)
        .map_or(0, |(_, m)| {
            m.acked.max(
                relay
                    .acks
                    .get(&group_id, &caller.device)
                    .map_or(0, Position::get),
            )
        });
    Ok(Reply::durable(response::Result::GroupState(GroupState {
        group_id: req.group_id,
        epoch: group.epoch,
        last_position: group.last_position,
        member_devices: members
            .into_iter()
            .filter(|(_, m)| m.is_active())
            .map(|(d, _)| d.to_vec().into())
            .collect(),
        group_info,
        acked_position,
    })))
}

pub(super) fn submit_commit(
    relay: &Relay,
    caller: &Caller,
    req: SubmitCommit,
) -> RelayResult<Reply> {
    let limits = &relay.config.limits;
    let group_id = GroupId::from_field(&req.group_id)?;
    fixed::<SUBMISSION_ID_LEN>("submission_id", &req.submission_id)?;
    if req.commit.is_empty() {
        return Err(Refusal::InvalidArgument("the commit is empty".into()).into());
    }
    let framed_epoch = check_framing(&group_id, &req.commit, MessageKind::Commit)?;
    if framed_epoch.get() != req.epoch {
        return Err(Refusal::InvalidArgument(format!(
            "the commit is framed for epoch {framed_epoch} but declared for epoch {}",
            req.epoch
        ))
        .into());
    }
    let payload =
        req.commit.len() + req.welcome.len() + req.ratchet_tree.len() + req.group_info.len();
    check_size(
        "the commit with its Welcome",
        payload,
        limits.max_payload_bytes,
    )?;
    let added = device_keys(
        "added_devices",
        &req.added_devices,
        limits.max_devices_per_request,
    )?;
    let removed = device_keys(
        "removed_devices",
        &req.removed_devices,
        limits.max_devices_per_request,
    )?;
    let submission = CommitSubmission {
        group_id: &group_id,
        epoch: Epoch(req.epoch),
        submission_id: &req.submission_id,
        sender: caller.device,
        sender_user: &caller.user_id,
        commit: req.commit.clone(),
        welcome: req.welcome.clone(),
        ratchet_tree: req.ratchet_tree.clone(),
        group_info: req.group_info.clone(),
        added: &added,
        removed: &removed,
    };
    let outcome = relay
        .store
        .submit_commit(&submission, relay.queue_limits(), now_ms())?;
    if !outcome.replayed {
        tracing::debug!(
            epoch = %outcome.epoch,
            position = %outcome.position,
            added = added.len(),
            removed = removed.len(),
            "commit accepted"
        );
    }
    let mut effects = appended(relay, &group_id, &outcome);
    effects.extend(
        outcome
            .inbox
            .iter()
            .map(|(device, position)| Effect::InboxAppended {
                device: *device,
                position: *position,
            }),
    );
    Ok(
        Reply::durable(response::Result::CommitAccepted(CommitAccepted {
            epoch: outcome.epoch.get(),
            position: outcome.position.get(),
        }))
        .with_effects(effects),
    )
}

pub(super) fn send_message(relay: &Relay, caller: &Caller, req: SendMessage) -> RelayResult<Reply> {
    let group_id = GroupId::from_field(&req.group_id)?;
    fixed::<SUBMISSION_ID_LEN>("submission_id", &req.submission_id)?;
    let kind = match MessageKind::try_from(req.kind) {
        Ok(kind @ (MessageKind::Application | MessageKind::Proposal | MessageKind::Rejoin)) => kind,
        Ok(MessageKind::Commit) => {
            return Err(Refusal::InvalidArgument("commits go through SubmitCommit".into()).into())
        }
        _ => return Err(Refusal::InvalidArgument("unknown message kind".into()).into()),
    };
    if req.payload.is_empty() {
        return Err(Refusal::InvalidArgument("the message is empty".into()).into());
    }
    check_size(
        "the message",
        req.payload.len(),
        relay.config.limits.max_payload_bytes,
    )?;
    let epoch = match kind {
        MessageKind::Rejoin => {
            check_rejoin(caller, &req.payload)?;
            // Only a member's asking is spaced (and remembered), so that
            // nobody fills the spacing table with other groups' ids.
            match relay.store.membership(&group_id, &caller.device)? {
                Some(member) if member.is_active() => {}
                _ => return Err(Refusal::NotAMember.into()),
            }
            relay
                .rejoin_spacing
                .allow((group_id.clone(), caller.device), std::time::Instant::now())
                .map_err(|retry_after_ms| Refusal::RateLimited { retry_after_ms })?;
            None
        }
        _ => Some(check_framing(&group_id, &req.payload, kind)?),
    };
    let message = MessageSubmission {
        group_id: &group_id,
        kind,
        submission_id: &req.submission_id,
        sender: caller.device,
        payload: req.payload,
        epoch,
        // An external proposal: the members check that its signer is one of
        // the group's managers; the relay only keeps non-staff out.
        from_outside: kind == MessageKind::Proposal && caller.role == Role::Staff,
    };
    // A manager's proposals reach groups it is not in: bounded.
    if message.from_outside
        && !relay
            .outside_proposals_per_device
            .take(caller.device, std::time::Instant::now())
    {
        return Err(Refusal::RateLimited {
            retry_after_ms: GROUP_RETRY_MS,
        }
        .into());
    }
    let now = now_ms();
    let counted = relay
        .store
        .append_message_counted(&message, relay.queue_limits(), now);
    if counted.scanned > 0 {
        // Building the group's submission index read its log: the sender
        // pays for it from its own request budget, accepted or refused, so
        // that no device can make the relay read logs much faster than it
        // may send (`Hub::charge` caps one request's charge at the burst).
        relay.hub.charge(
            &caller.device,
            counted.scanned as f64 / LOG_ENTRIES_PER_REQUEST,
        );
    }
    let outcome = counted.result?;
    if !outcome.replayed {
        cache_frames(relay, caller, &message, &outcome, now);
    }
    Ok(
        Reply::durable(response::Result::MessageAccepted(MessageAccepted {
            position: outcome.position.get(),
        }))
        .with_effects(appended(relay, &group_id, &outcome)),
    )
}

/// Reads the clear MLS framing of a submitted message (RFC 9420, section
/// 6): it must name this group and carry what the request says it does.
/// Returns the epoch it was built in, which the store checks against the
/// group's current epoch (RFC 9750, section 5.2: a message for another
/// epoch is refused, never stored for readers who cannot decrypt it).
fn check_framing(group_id: &GroupId, payload: &[u8], kind: MessageKind) -> RelayResult<Epoch> {
    let header = read_message_header(payload)
        .map_err(|err| Refusal::InvalidArgument(format!("the MLS framing: {err}")))?;
    if header.group_id != group_id {
        return Err(Refusal::InvalidArgument("the MLS message names another group".into()).into());
    }
    let fits = match kind {
        // Application data is only ever sent encrypted (RFC 9420, 6.3).
        MessageKind::Application => {
            header.content_type == ContentType::Application
                && header.wire_format == WireFormat::PrivateMessage
        }
        MessageKind::Proposal => header.content_type == ContentType::Proposal,
        MessageKind::Commit => header.content_type == ContentType::Commit,
        MessageKind::Rejoin | MessageKind::Unspecified => false,
    };
    if !fits {
        return Err(Refusal::InvalidArgument(
            "the MLS content type does not match the message kind".into(),
        )
        .into());
    }
    Ok(Epoch(header.epoch))
}

/// A rejoin request carries a KeyPackage of the very device that sends it:
/// members re-add that device and no other, and it must still be valid.
fn check_rejoin(caller: &Caller, payload: &[u8]) -> RelayResult<()> {
    let leaf = read_key_package(payload)
        .map_err(|err| Refusal::InvalidArgument(format!("the rejoin KeyPackage: {err}")))?;
    if leaf.signature_key != caller.device {
        return Err(Refusal::InvalidArgument(
            "a rejoin request must carry a KeyPackage of the sending device".into(),
        )
        .into());
    }
    if leaf.lifetime.has_ended(now_ms()) {
        return Err(Refusal::InvalidArgument("the rejoin KeyPackage has expired".into()).into());
    }
    Ok(())
}

/// Encodes the pushes for a new message once, for every member's pump.
fn cache_frames(
    relay: &Relay,
    caller: &Caller,
    message: &MessageSubmission<'_>,
    outcome: &AppendOutcome,
    now: u64,
) {
    let group_id = Bytes::copy_from_slice(message.group_id);
    let frame = encode_envelope(&Envelope::push(push::Kind::GroupMessage(GroupMessage {
        group_id: group_id.clone(),
        position: outcome.position.get(),
        epoch: outcome.epoch.get(),
        kind: message.kind as i32,
        sender_device: Bytes::copy_from_slice(caller.device.as_bytes()),
        payload: message.payload.clone(),
        received_at_ms: now,
        added_devices: Vec::new(),
        removed_devices: Vec::new(),
    })));
    let receipt = encode_envelope(&Envelope::push(push::Kind::Receipt(Receipt {
        group_id,
        position: outcome.position.get(),
        epoch: outcome.epoch.get(),
        kind: message.kind as i32,
        submission_id: Bytes::copy_from_slice(message.submission_id),
    })));
    relay.frames.insert(
        message.group_id,
        outcome.position,
        CachedEntry {
            sender: caller.device,
            frame,
            receipt,
            payload_len: message.payload.len(),
        },
    );
}

/// A replayed outcome was already published by its first request.
fn appended(relay: &Relay, group_id: &GroupId, outcome: &AppendOutcome) -> Vec<Effect> {
    if outcome.replayed {
        return Vec::new();
    }
    if let Some(through) = outcome.trimmed_through {
        // What the store no longer holds is not delivered from memory
        // either: a device that missed it is told, after a restart or not.
        relay.frames.trim(group_id, through);
    }
    vec![Effect::GroupAppended {
        group_id: group_id.clone(),
        position: outcome.position,
    }]
}
