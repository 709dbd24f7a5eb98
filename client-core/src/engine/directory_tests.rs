//! The directory against a hostile relay ([`crate::transport::scripted`]):
//! a relay that serves a user's profile replayed at an older version,
//! altered, or signed by another key is refused, and the last profile
//! that verified is kept and shown.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use convene_proto::relay::{request, response, Device, ProfileSet, User, UserList};
use convene_proto::trust::{Profile, Signed};
use prost::Message as _;

use crate::directory::ProfileDraft;
use crate::transport::scripted::{Answer, ScriptedRelay};
use crate::trust::IdentityKey;
use crate::Client;

/// What the scripted relay knows of its one user, and what it serves.
#[derive(Default)]
struct Served {
    device_key: Bytes,
    credential: Bytes,
    /// Every profile the user stored, in order.
    stored: Vec<Bytes>,
    /// The profile served; the newest stored unless a test says otherwise.
    served: Option<Bytes>,
    /// Changes with every change a test makes, as the relay's stamp would.
    stamp: u8,
}

impl Served {
    fn user(&self) -> User {
        User {
            user_id: "ana".into(),
            display_name: "Ana".into(),
            role: convene_proto::relay::Role::Staff as i32,
            devices: vec![Device {
                device_key: self.device_key.clone(),
                credential: self.credential.clone(),
                ..Default::default()
            }],
            directory_stamp: Bytes::from(vec![self.stamp; 16]),
            profile: self
                .served
                .clone()
                .or_else(|| self.stored.last().cloned())
                .unwrap_or_default(),
            ..Default::default()
        }
    }
}

async fn client_with(served: Arc<Mutex<Served>>) -> (tempfile::TempDir, Client) {
    let relay = ScriptedRelay::new(move |kind, _| {
        let mut served = served.lock().unwrap();
        match kind {
            request::Kind::Enrol(enrol) => {
                served.device_key = enrol.device_key.clone();
                served.credential = enrol.credential.clone();
                Answer::Honest
            }
            request::Kind::SetProfile(set) => {
                served.stored.push(set.profile.clone());
                served.served = None;
                served.stamp += 1;
                Answer::Respond(response::Result::ProfileSet(ProfileSet { revision: 0 }))
            }
            request::Kind::GetUser(_) => Answer::Respond(response::Result::User(served.user())),
            request::Kind::ListUsers(_) | request::Kind::GetUsers(_) => {
                Answer::Respond(response::Result::UserList(UserList {
                    users: vec![served.user()],
                    more: false,
                }))
            }
            _ => Answer::Honest,
        }
    });
    super::scripted_tests::scripted_staff(&relay).await
}

/// Serves `profile` (with a new stamp) and syncs; returns the version and
/// bio the directory then shows, and why it refused what was served.
async fn serve(
    client: &Client,
    served: &Arc<Mutex<Served>>,
    profile: Bytes,
) -> (u64, String, Option<String>) {
    {
        let mut served = served.lock().unwrap();
        served.served = Some(profile);
        served.stamp += 1;
    }
    client.sync_directory().await.unwrap();
    let person = client.person("ana").unwrap().unwrap();
    let profile = person.profile.unwrap();
    (profile.revision, profile.bio, person.refused)
}

fn signed_profile(signed: &Bytes) -> (Signed, Profile) {
    let signed = Signed::decode(signed.as_ref()).unwrap();
    let profile = Profile::decode(signed.body.as_slice()).unwrap();
    (signed, profile)
}

#[tokio::test]
async fn a_profile_replayed_altered_or_signed_by_another_key_is_refused_and_the_last_good_kept() {
    let served = Arc::new(Mutex::new(Served::default()));
    let (_dir, client) = client_with(served.clone()).await;
    // Its creator holds the network key that seals profiles.
    client.create_network_channel("Network").await.unwrap();
    let bio = |text: &str| ProfileDraft {
        bio: Some(text.into()),
        ..Default::default()
    };
    client.set_profile(&bio("first")).await.unwrap();
    let second = client.set_profile(&bio("second")).await.unwrap();
    assert_eq!(second.profile.unwrap().revision, 2);
    let (first, newest) = {
        let served = served.lock().unwrap();
        (served.stored[0].clone(), served.stored[1].clone())
    };

    // Replayed at an older version.
    let (revision, text, refused) = serve(&client, &served, first).await;
    assert_eq!((revision, text.as_str()), (2, "second"));
    assert!(refused.unwrap().contains("older profile"));

    // Altered: the sealed text changed, the signature kept.
    let (signed, mut profile) = signed_profile(&newest);
    let last = profile.sealed.len() - 1;
    profile.sealed[last] ^= 1;
    let altered = Signed {
        body: profile.encode_to_vec(),
        signature: signed.signature.clone(),
    };
    let (revision, text, refused) = serve(&client, &served, altered.encode_to_vec().into()).await;
    assert_eq!((revision, text.as_str()), (2, "second"));
    assert!(refused
        .unwrap()
        .contains("not signed by their identity key"));

    // A later version signed by someone else's key.
    profile.revision = 3;
    let forged = IdentityKey::generate().sign_profile(&profile);
    let (revision, text, refused) = serve(&client, &served, forged.encode_to_vec().into()).await;
    assert_eq!((revision, text.as_str()), (2, "second"));
    assert!(refused.is_some());

    // The same version saying something else (the relay's, or a second
    // device's, equivocation) is not taken either.
    let (_, mut same) = signed_profile(&newest);
    same.written_at_ms += 1;
    let (revision, text, refused) = serve(
        &client,
        &served,
        IdentityKey::generate()
            .sign_profile(&same)
            .encode_to_vec()
            .into(),
    )
    .await;
    assert_eq!((revision, text.as_str()), (2, "second"));
    assert!(refused.is_some());

    // The user's next real change is taken, and the refusal cleared.
    let third = client.set_profile(&bio("third")).await.unwrap();
    let profile = third.profile.unwrap();
    assert_eq!((profile.revision, profile.bio.as_str()), (3, "third"));
    assert!(third.refused.is_none());
    client.shutdown().await;
}
