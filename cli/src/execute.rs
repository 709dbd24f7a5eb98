//! Runs a [`Call`] against a device's open client, here or in the daemon,
//! and answers with its JSON shape (see [`crate::shapes`]).

use std::time::Duration;

use anyhow::{bail, Result};
use convene_client::directory::{PeopleQuery, Person, ProfileDraft};
use convene_client::trust::{CertifiedChange, CertifiedFields, UserDetails};
use convene_client::{hex, Client, ClientError, DeviceInfo, GroupSummary};
use convene_proto::vocabulary::{Region, Sector};
use serde_json::Value;

use crate::call::{Call, Readiness, Role, MAX_READ_LIMIT};
use crate::shapes::{
    CohortShape, DelegatedShape, DevicesShape, GroupShape, IdentityShape, InviteShape, LinkedShape,
    MessageShape, NamedShape, NetworkChatShape, PersonShape, ProfileShape, RemovedShape,
    SafetyNumberShape, SuspendedShape, TakenOverShape, TopicCount, UndelegatedShape, UserShape,
};

/// Where notes for people go: standard error here, a JSON-RPC `note`
/// notification from the daemon.
pub type Notes<'a> = &'a (dyn Fn(&str) + Send + Sync);

/// How a call is run: its patience, whether a spinner may show what it
/// waits for, and where notes go.
pub struct Ops<'a> {
    pub timeout: Duration,
    pub progress: bool,
    pub notes: Notes<'a>,
}

impl Ops<'_> {
    /// Waits for an operation, at most the timeout. An operation that
    /// does not finish in time stays in the device's outbox.
    pub(crate) async fn within<T>(
        &self,
        operation: impl std::future::Future<Output = Result<T, ClientError>>,
    ) -> Result<T> {
        let waited = crate::waiting::while_waiting(
            self.progress,
            "waiting for the relay to confirm",
            tokio::time::timeout(self.timeout, operation),
        );
        match waited.await {
            Ok(result) => Ok(result?),
            Err(_) => Err(not_confirmed(self.timeout)),
        }
    }

    /// Makes `client` as ready as `readiness` asks.
    pub async fn ready(&self, client: &Client, readiness: Readiness) -> Result<()> {
        let what = match readiness {
            Readiness::Stored => return Ok(()),
            Readiness::Synced => "catching up with the relay",
            Readiness::Connected => "connecting to the relay and catching up",
        };
        let caught_up =
            crate::waiting::while_waiting(self.progress, what, client.wait_caught_up(self.timeout))
                .await;
        match (caught_up, readiness) {
            (Err(ClientError::Revoked), Readiness::Synced) => {
                (self.notes)(
                    "this device was removed from its account (or the account suspended): \
                     it can no longer send or receive, and shows only what it had stored",
                );
                Ok(())
            }
            (Err(err), Readiness::Synced) => {
                (self.notes)(&format!("showing what this device has stored ({err})"));
                Ok(())
            }
            (result, _) => Ok(result?),
        }
    }
}

/// The error of an operation that was not confirmed in time: it stays in
/// the device's outbox.
pub fn not_confirmed(timeout: Duration) -> anyhow::Error {
    anyhow::anyhow!(
        "not confirmed within {} s; the operation is kept and completes later (once a member \
         of the group is online to commit it, or when convene next runs here): `convene groups` \
         shows when it has",
        timeout.as_secs()
    )
}

fn shape(value: impl serde::Serialize) -> Result<Value> {
    Ok(serde_json::to_value(value)?)
}

/// Runs `call` once `client` is as ready as the call needs.
pub async fn execute(ops: &Ops<'_>, client: &Client, call: &Call) -> Result<Value> {
    ops.ready(client, call.readiness()).await?;
    match call {
        Call::Whoami => shape(IdentityShape::from(&client.identity())),
        Call::Groups => shape(
            client
                .groups()?
                .iter()
                .map(GroupShape::from)
                .collect::<Vec<_>>(),
        ),
        Call::GroupCreate { name, members } => shape(GroupShape::from(
            &ops.within(client.create_group(name, members)).await?,
        )),
        Call::GroupAdd { group, users } => {
            some_users(users)?;
            let found = find_group(client, group)?;
            ops.within(client.add_members(&found.id, users)).await?;
            shape(GroupShape::from(&client.group(&found.id)?.unwrap_or(found)))
        }
        Call::GroupRemove { group, users } => {
            some_users(users)?;
            let found = find_group(client, group)?;
            ops.within(client.remove_members(&found.id, users)).await?;
            shape(GroupShape::from(&client.group(&found.id)?.unwrap_or(found)))
        }
        Call::GroupShow { group } => shape(GroupShape::from(&find_group(client, group)?)),
        Call::GroupLeave { group } => {
            let found = find_group(client, group)?;
            if found.kind == convene_client::GroupKind::Introduction {
                ops.within(client.leave_introduction(&found.id)).await?;
            } else {
                ops.within(client.leave_group(&found.id)).await?;
            }
            shape(GroupShape::from(&client.group(&found.id)?.unwrap_or(found)))
        }
        Call::Dm { user, text } => {
            let message = ops.within(client.send_direct(user, text)).await?;
            let group = client.group(&message.group)?;
            shape(MessageShape::new(&message, group.as_ref()))
        }
        Call::Send { group, text } => {
            let group = find_group(client, group)?;
            let message = ops.within(client.send_text(&group.id, text)).await?;
            shape(MessageShape::new(&message, Some(&group)))
        }
        Call::Read { group, limit } => {
            if !(1..=MAX_READ_LIMIT).contains(limit) {
                return Err(ClientError::InvalidArgument(format!(
                    "read shows 1 to {MAX_READ_LIMIT} messages at a time"
                ))
                .into());
            }
            let group = find_group(client, group)?;
            let messages = client.history(&group.id, *limit)?;
            shape(
                messages
                    .iter()
                    .map(|m| MessageShape::new(m, Some(&group)))
                    .collect::<Vec<_>>(),
            )
        }
        Call::Users => shape(
            ops.within(client.list_users())
                .await?
                .iter()
                .map(UserShape::from)
                .collect::<Vec<_>>(),
        ),
        Call::Verify { user } => {
            let number = ops.within(client.safety_number(user)).await?;
            shape(SafetyNumberShape {
                user_id: number.user_id,
                display_name: number.display_name,
                safety_number: number.number,
            })
        }
        Call::Invite {
            user_id,
            name,
            sector,
            role,
            region,
            title,
            organisation,
            programme,
            cohort,
        } => {
            let role = match role {
                Role::Leader => convene_client::Role::Leader,
                Role::Staff => convene_client::Role::Staff,
            };
            let text = |t: &Option<String>| t.as_deref().unwrap_or_default().trim().to_string();
            let details = UserDetails {
                user_id: user_id.clone(),
                display_name: name.clone(),
                role,
                sector: sector_code(sector.as_deref())?,
                certified: CertifiedFields {
                    job_title: text(title),
                    organisation: text(organisation),
                    region: region_code(region.as_deref())?,
                    programme: text(programme),
                    cohort: text(cohort),
                },
            };
            let invite = ops.within(client.invite(&details)).await?;
            shape(InviteShape {
                code: invite.code,
                expires_at_ms: invite.expires_at_ms,
                role: role.as_str().to_string(),
                user_id: user_id.clone(),
                display_name: name.clone(),
            })
        }
        Call::Recertify {
            user_id,
            name,
            sector,
            region,
            title,
            organisation,
            programme,
            cohort,
        } => {
            let change = CertifiedChange {
                display_name: name.clone(),
                sector: sector
                    .as_deref()
                    .map(|s| sector_code(Some(s)))
                    .transpose()?,
                region: region
                    .as_deref()
                    .map(|r| region_code(Some(r)))
                    .transpose()?,
                job_title: title.clone(),
                organisation: organisation.clone(),
                programme: programme.clone(),
                cohort: cohort.clone(),
            };
            let person = ops.within(client.recertify(user_id, &change)).await?;
            shape(PersonShape::from(&person))
        }
        Call::Introduce { users, note } => {
            let group = ops.within(client.introduce(users, note)).await?;
            shape(GroupShape::from(&group))
        }
        Call::NetworkCreate { name } => {
            let group = ops.within(client.create_network_channel(name)).await?;
            shape(GroupShape::from(&group))
        }
        Call::NetworkChat { on } => {
            ops.within(client.set_network_chat(*on)).await?;
            shape(NetworkChatShape { chat: *on })
        }
        Call::People {
            query,
            sector,
            region,
            topic,
            programme,
            cohort,
            all,
        } => {
            sync_directory(ops, client).await;
            let query = PeopleQuery {
                text: query.clone(),
                sector: sector
                    .as_deref()
                    .map(Sector::parse)
                    .transpose()
                    .map_err(invalid)?,
                region: region
                    .as_deref()
                    .map(Region::parse)
                    .transpose()
                    .map_err(invalid)?,
                topic: topic.clone(),
                programme: programme.clone(),
                cohort: cohort.clone(),
                include_suspended: *all,
            };
            shape(
                client
                    .people(&query)?
                    .iter()
                    .map(PersonShape::from)
                    .collect::<Vec<_>>(),
            )
        }
        Call::Cohort => {
            sync_directory(ops, client).await;
            shape(
                client
                    .cohorts()?
                    .iter()
                    .map(CohortShape::from)
                    .collect::<Vec<_>>(),
            )
        }
        Call::PeopleShow { user } => {
            sync_directory(ops, client).await;
            let person = match client.person(user)? {
                Some(person) => person,
                None => person_named(client, user)?,
            };
            shape(PersonShape::from(&person))
        }
        Call::ProfileShow => {
            sync_directory(ops, client).await;
            shape(profile_shape(
                client,
                client.person(&client.identity().user_id)?,
            )?)
        }
        Call::ProfileSet {
            topics,
            working_on,
            bio,
            contact,
        } => {
            let draft = ProfileDraft {
                topics: topics.clone(),
                working_on: working_on.clone(),
                bio: bio.clone(),
                contact: contact.clone(),
            };
            if draft == ProfileDraft::default() {
                return Err(ClientError::InvalidArgument(
                    "say what to change: --topic, --working-on, --bio or --contact \
                     (`convene profile show` suggests topics others use)"
                        .into(),
                )
                .into());
            }
            let person = ops.within(client.set_profile(&draft)).await?;
            shape(profile_shape(client, Some(person))?)
        }
        Call::Suspend { user } => {
            ops.within(client.suspend_user(user)).await?;
            shape(SuspendedShape {
                suspended: user.clone(),
            })
        }
        Call::Delegate {
            user,
            may_certify_staff,
        } => {
            ops.within(client.delegate(user, *may_certify_staff))
                .await?;
            shape(DelegatedShape {
                delegated: user.clone(),
                may_certify_staff: *may_certify_staff,
            })
        }
        Call::Undelegate { user } => {
            ops.within(client.revoke_delegation(user)).await?;
            shape(UndelegatedShape {
                undelegated: user.clone(),
            })
        }
        Call::Devices => {
            let devices = ops.within(client.devices()).await?;
            let waiting = ops.within(client.link_requests()).await?;
            shape(DevicesShape::new(&devices, &waiting))
        }
        Call::DevicesApprove { code } => {
            let device = ops.within(client.approve_link(code)).await?;
            shape(LinkedShape {
                linked: hex(&device),
            })
        }
        Call::DevicesName { name } => {
            ops.within(client.set_device_name(name)).await?;
            shape(NamedShape {
                named: name.trim().to_string(),
            })
        }
        Call::DevicesRemove { device } => {
            let devices = ops.within(client.devices()).await?;
            let found = find_device(&devices, device)?;
            ops.within(client.remove_device(&found.device)).await?;
            shape(RemovedShape {
                removed: hex(&found.device),
            })
        }
        Call::TakeOver => shape(TakenOverShape {
            taken_over: take_over(ops, client).await?,
        }),
        Call::Ask { .. }
        | Call::AskClose { .. }
        | Call::Requests { .. }
        | Call::RequestsShow { .. }
        | Call::Offer { .. } => crate::asking::execute(ops, client, call).await,
    }
}

/// The one person of the directory `name` names, for `people show "Ana
/// Okafor"`: their user id or whole name in any case, or else the one
/// person with every word of it in their name ("Ana", "okafor").
fn person_named(client: &Client, name: &str) -> Result<Person, ClientError> {
    let wanted = name.trim().to_lowercase();
    let everyone = client.people(&PeopleQuery {
        include_suspended: true,
        ..Default::default()
    })?;
    let words = |text: &str| -> Vec<String> {
        text.to_lowercase()
            .split_whitespace()
            .map(str::to_string)
            .collect()
    };
    let exact =
        |p: &Person| p.user_id.to_lowercase() == wanted || p.display_name.to_lowercase() == wanted;
    let mut named: Vec<Person> = everyone.iter().filter(|p| exact(p)).cloned().collect();
    if named.is_empty() {
        let wanted_words = words(&wanted);
        named = everyone
            .into_iter()
            .filter(|p| {
                let have = words(&p.display_name);
                !wanted_words.is_empty() && wanted_words.iter().all(|w| have.contains(w))
            })
            .collect();
    }
    match named.len() {
        1 => Ok(named.remove(0)),
        0 => Err(ClientError::UnknownUser(name.to_string())),
        _ => Err(ClientError::InvalidArgument(format!(
            "several people are called {name:?}: give a user id (`convene people {name}` \
             lists them)"
        ))),
    }
}

/// Brings the directory up to date if the relay answers; otherwise says
/// that what shows is this device's last copy.
pub(crate) async fn sync_directory(ops: &Ops<'_>, client: &Client) {
    if let Err(err) = ops.within(client.sync_directory()).await {
        (ops.notes)(&format!(
            "showing the directory as this device last synced it ({err})"
        ));
    }
}

/// The user's own entry with the topics others list most.
fn profile_shape(client: &Client, person: Option<Person>) -> Result<ProfileShape> {
    let suggested_topics = client
        .directory()?
        .topic_counts()
        .into_iter()
        .take(SUGGESTED_TOPICS)
        .map(|(topic, people)| TopicCount { topic, people })
        .collect();
    Ok(ProfileShape {
        person: person.as_ref().map(PersonShape::from),
        suggested_topics,
    })
}

/// How many of the most listed topics `profile` suggests.
const SUGGESTED_TOPICS: usize = 10;

pub(crate) fn invalid(err: impl std::fmt::Display) -> ClientError {
    ClientError::InvalidArgument(err.to_string())
}

/// The sector code for what was typed (empty for none).
fn sector_code(typed: Option<&str>) -> Result<String, ClientError> {
    typed
        .map(|t| {
            Sector::parse(t)
                .map(|s| s.code().to_string())
                .map_err(invalid)
        })
        .transpose()
        .map(Option::unwrap_or_default)
}

/// The ITL1 region code for what was typed (empty for none).
fn region_code(typed: Option<&str>) -> Result<String, ClientError> {
    typed
        .map(|t| {
            Region::parse(t)
                .map(|r| r.code().to_string())
                .map_err(invalid)
        })
        .transpose()
        .map(Option::unwrap_or_default)
}

/// Fails unless `users` names someone: a change of members needs one.
fn some_users(users: &[String]) -> Result<(), ClientError> {
    match users.is_empty() {
        true => Err(ClientError::InvalidArgument(
            "name at least one user to add or remove".into(),
        )),
        false => Ok(()),
    }
}

/// The group `query` names: by name, id or id prefix, or the other user of
/// a direct channel.
fn find_group(client: &Client, query: &str) -> Result<GroupSummary, ClientError> {
    match client.find_group(query) {
        Ok(group) => Ok(group),
        Err(unknown @ ClientError::NoGroupMatches { .. }) => match client.direct_channel(query)? {
            Some(id) => client.group(&id)?.ok_or(unknown),
            None => Err(unknown),
        },
        Err(err) => Err(err),
    }
}

fn find_device<'a>(devices: &'a [DeviceInfo], prefix: &str) -> Result<&'a DeviceInfo> {
    let prefix = prefix.trim().to_ascii_lowercase();
    let matching: Vec<_> = devices
        .iter()
        .filter(|d| !prefix.is_empty() && hex(&d.device).starts_with(&prefix))
        .collect();
    match matching.as_slice() {
        [one] if one.this_device => {
            bail!("that is this device; remove it from another of your devices")
        }
        [one] => Ok(one),
        [] => bail!(
            "none of your devices has a key starting with {prefix:?} (`convene devices` lists them)"
        ),
        _ => bail!("several of your devices start with {prefix:?}; give more of the key"),
    }
}

/// Makes this copy of the device the one the relay accepts, if the relay
/// refused it as a copy; a device the relay accepts has nothing to take.
async fn take_over(ops: &Ops<'_>, client: &Client) -> Result<bool> {
    match client.wait_caught_up(ops.timeout).await {
        Ok(()) => return Ok(false),
        Err(ClientError::StateCopied) => {}
        Err(err) => return Err(err.into()),
    }
    client.take_over().await?;
    client.wait_caught_up(ops.timeout).await?;
    Ok(true)
}
