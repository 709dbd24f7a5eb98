//! A peer whose identity key changes: every member that knew the old key is
//! told loudly, and the safety number changes. Here the change comes from
//! someone holding the organisation's authority key (what a compromised
//! authority would do): a new identity key for ben, certified by the
//! authority, on a device added to ben's account.

use anyhow::{ensure, Context, Result};
use bytes::Bytes;
use convene_client::mls::MlsOps;
use convene_client::trust::{TrustAnchor, UserDetails};
use convene_client::{DeviceKey, Event, RelayConnection, Role};
use convene_proto::auth::AuthPurpose;
use convene_proto::relay::{
    request, ApproveLink, RequestLink, UpdateCredential, UploadKeyPackages,
};
use convene_tests::app::{authority_of, continuity_of, device_key_of, leader_apps, staff_app, App};
use convene_tests::{InProcessRelay, TestDevice};
use openmls_rust_crypto::RustCrypto;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_identity_key_is_shown_loudly_and_changes_the_safety_number() -> Result<()> {
    let relay = InProcessRelay::start_default()?;
    let staff = staff_app(&relay).await?;
    let leaders = leader_apps(&relay, &staff, &["ann".into(), "ben".into()]).await?;
    let [mut ann, ben] = <[App; 2]>::try_from(leaders).ok().context("two leaders")?;
    let first = staff
        .client
        .create_group("First", &["ann".into(), "ben".into()])
        .await?;
    ann.wait_group(&first.id, |g| g.members.len() == 3).await?;
    let before = ann.client.safety_number("ben").await?;

    // Someone with the authority key gives ben a new identity key and puts
    // a device certified by it on ben's account (through ben's own device,
    // as only the user's devices may approve a link).
    let staff_stopped = staff.stop().await;
    let authority = authority_of(&staff_stopped.state_dir)?;
    let staff = staff_stopped.resume().await?;
    let ben_stopped = ben.stop().await;
    let ben_device = TestDevice::connect_continuing(
        &relay.url,
        device_key_of(&ben_stopped.state_dir, "ben")?,
        continuity_of(&ben_stopped.state_dir, "ben")?,
    )
    .await?;
    let impostor = DeviceKey::generate();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as u64;
    let details = UserDetails {
        user_id: "ben".into(),
        display_name: "Test ben".into(),
        role: Role::Leader,
        sector: "education".into(),
        certified: Default::default(),
    };
    let (_, chain) =
        authority.issue_direct_chain(&details, impostor.public(), now - 1000, 3_600_000);
    let asking = RelayConnection::connect(&relay.url, &Default::default()).await?;
    let signature = impostor.sign_challenge(AuthPurpose::Link, &asking.relay_id(), &asking.nonce());
    asking
        .request(request::Kind::RequestLink(RequestLink {
            user_id: "ben".into(),
            device_key: Bytes::copy_from_slice(impostor.public().as_bytes()),
            signature: Bytes::copy_from_slice(&signature),
            pake_message: Bytes::copy_from_slice(&[9; 33]),
        }))
        .await?;
    ben_device
        .conn
        .request(request::Kind::ApproveLink(ApproveLink {
            device_key: Bytes::copy_from_slice(impostor.public().as_bytes()),
            sealed: Bytes::from_static(b"unused"),
            pake_message: Bytes::copy_from_slice(&[1; 33]),
        }))
        .await?;
    let dir = tempfile::tempdir()?;
    let store =
        convene_client::store::LocalStore::open(dir.path(), &convene_client::StoreKey::generate())?;
    let crypto = RustCrypto::default();
    let ops = MlsOps::new(
        &crypto,
        &store,
        &impostor,
        "ben",
        &chain,
        TrustAnchor::new(authority.public()),
    );
    let (key_packages, _) = ops.key_packages(1, false)?;
    let impostor = TestDevice::connect(&relay.url, impostor).await?;
    impostor
        .conn
        .request(request::Kind::UpdateCredential(UpdateCredential {
            credential: Bytes::from(chain.clone()),
        }))
        .await?;
    impostor
        .conn
        .request(request::Kind::UploadKeyPackages(UploadKeyPackages {
            one_time: key_packages.into_iter().map(Bytes::from).collect(),
            last_resort: Bytes::new(),
            replace_one_time: false,
        }))
        .await?;

    // Staff open a second group with ann and ben: ben's devices now carry
    // two identity keys, and ann is told.
    let second = staff
        .client
        .create_group("Second", &["ann".into(), "ben".into()])
        .await?;
    let changed = ann
        .wait_event(|e| match e {
            Event::IdentityChanged { user_id, group } => Some((user_id.clone(), group.clone())),
            _ => None,
        })
        .await?;
    ensure!(
        changed == ("ben".to_string(), second.id.clone()),
        "{changed:?}"
    );

    // With ben's old device revoked, the safety number ann sees is another.
    staff
        .client
        .revoke_device("ben", ben_device.device())
        .await?;
    let after = ann.client.safety_number("ben").await?;
    ensure!(
        after.number != before.number,
        "the safety number did not change"
    );
    Ok(())
}
