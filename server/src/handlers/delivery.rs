//! Acknowledgements: what lets the relay forget.

use convene_proto::ids::{GroupId, Position};
use convene_proto::relay::{response, stream_ack, Ack, Acked};

use super::{Caller, Reply};
use crate::error::{Refusal, RelayResult};
use crate::hub::{LiveConnection, Stream};
use crate::relay::Relay;

/// Acknowledgements one request may carry.
pub const MAX_ACKS: usize = 1_024;

pub(super) fn ack(
    relay: &Relay,
    caller: &Caller,
    live: &LiveConnection,
    req: Ack,
) -> RelayResult<Reply> {
    if req.acks.len() > MAX_ACKS {
        return Err(
            Refusal::TooLarge(format!("an Ack may carry at most {MAX_ACKS} entries")).into(),
        );
    }
    // Only an inbox acknowledgement, or one the buffer could not take,
    // writes now; the rest need no flush before the answer.
    let mut written = false;
    for ack in req.acks {
        match ack.stream {
            Some(stream_ack::Stream::GroupId(group_id)) => {
                let group_id = GroupId::from_field(&group_id)?;
                // Acknowledgements for a group the device does not follow
                // are ignored, not refused (a removed device's client may
                // still send one along with others), and never buffered:
                // a device may not fill the relay with ids of its choosing.
                if !relay.store.routes_to(&group_id, &caller.device)? {
                    continue;
                }
                // Written to the store within a moment (see `crate::acks`);
                // at once only when the buffer is full.
                if !relay
                    .acks
                    .record(&group_id, &caller.device, Position(ack.position))
                {
                    let outcome =
                        relay
                            .store
                            .ack_group(&group_id, &caller.device, Position(ack.position))?;
                    if outcome.advanced {
                        relay.schedule_trim(&group_id);
                    }
                    written = true;
                }
                live.acked(Stream::Group(group_id.clone()), ack.position);
            }
            Some(stream_ack::Stream::Inbox(true)) => {
                relay.store.ack_inbox(&caller.device, ack.position)?;
                written = true;
                live.acked(Stream::Inbox, ack.position);
            }
            Some(stream_ack::Stream::Inbox(false)) | None => {
                return Err(Refusal::InvalidArgument(
                    "an ack must name a group or the inbox".into(),
                )
                .into())
            }
        }
    }
    let result = response::Result::Acked(Acked {});
    Ok(if written {
        Reply::durable(result)
    } else {
        Reply::immediate(result)
    })
}

#[cfg(test)]
mod tests {
    use crate::store::DevicePublicKey;
    use bytes::Bytes;
    use convene_proto::relay::{Role, StreamAck};

    use super::*;
    use crate::config::Config;

    #[tokio::test]
    async fn acknowledgements_for_groups_a_device_does_not_follow_are_not_kept() {
        let dir = tempfile::tempdir().unwrap();
        let relay = Relay::open(Config {
            data_dir: dir.path().join("relay"),
            ..Config::default()
        })
        .unwrap();
        let device = DevicePublicKey([9; 32]);
        let (out, _queue) = crate::connection::outbound_queue();
        let live = relay.hub.register(device, out);
        let caller = Caller {
            device,
            user_id: crate::test_user_id("mallory"),
            role: Role::Leader,
        };
        let acks = (0..100u8)
            .map(|i| StreamAck {
                stream: Some(stream_ack::Stream::GroupId(Bytes::from(vec![i; 16]))),
                position: 5,
            })
            .collect();
        ack(&relay, &caller, &live, Ack { acks }).unwrap();
        assert!(
            relay.acks.pending().is_empty(),
            "a stranger's acks were kept"
        );
    }
}
