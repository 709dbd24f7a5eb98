//! Every staff member can invite: the authority delegates to a colleague's
//! own key, their invitees are accepted by every client, and a revoked
//! delegation is refused.

use anyhow::{ensure, Context, Result};
use convene_client::trust::UserDetails;
use convene_client::{ClientError, Role};
use convene_tests::app::{display_name, invited_apps, leader_apps, staff_app, App};
use convene_tests::RelayProcess;

fn details(user: &str, role: Role) -> UserDetails {
    UserDetails {
        user_id: user.into(),
        display_name: display_name(user),
        role,
        sector: String::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_staff_member_invites_under_delegation_and_a_revoked_one_is_refused() -> Result<()>
{
    let relay = RelayProcess::start_default()?;
    let mut staff = staff_app(&relay).await?;
    let [ann] = <[App; 1]>::try_from(leader_apps(&relay, &staff, &["ann".into()]).await?)
        .ok()
        .context("one leader")?;
    let [kim] =
        <[App; 1]>::try_from(invited_apps(&relay, &staff, &["kim".into()], Role::Staff).await?)
            .ok()
            .context("a second staff member")?;

    // Without a delegation kim cannot certify anyone.
    let refused = kim.client.invite(&details("lee", Role::Leader)).await.err();
    ensure!(
        matches!(refused, Some(ClientError::Forbidden(_))),
        "{refused:?}"
    );

    staff.client.delegate("kim", false).await?;
    // Leaders only: not staff.
    let refused = kim.client.invite(&details("pat", Role::Staff)).await.err();
    ensure!(
        matches!(refused, Some(ClientError::Forbidden(_))),
        "{refused:?}"
    );
    let invite = kim.client.invite(&details("lee", Role::Leader)).await?;
    let lee = App::enrol(&relay.url, &invite.code, "lee").await?;

    // Every client accepts lee: staff add lee to a cohort with ann, and the
    // two hear each other.
    let cohort = staff
        .client
        .create_group("Cohort", &["ann".into(), "lee".into()])
        .await?;
    for app in [&ann, &lee] {
        app.wait_group(&cohort.id, |g| g.users() == ["ann", "lee", "staff"])
            .await?;
    }
    lee.client.send_text(&cohort.id, "hello from lee").await?;
    ann.hears(&cohort.id, "lee", "hello from lee").await?;

    // An invite kim made before the delegation is revoked is refused after.
    let before = kim.client.invite(&details("leo", Role::Leader)).await?;
    staff.client.revoke_delegation("kim").await?;
    let refused = kim.client.invite(&details("lia", Role::Leader)).await.err();
    ensure!(
        matches!(refused, Some(ClientError::Forbidden(_))),
        "{refused:?}"
    );
    let _leo = App::enrol(&relay.url, &before.code, "leo").await?;
    let refused = staff
        .client
        .add_members(&cohort.id, &["leo".into()])
        .await
        .err();
    ensure!(
        refused.is_some(),
        "a user certified under a revoked delegation was added"
    );
    let why = staff
        .wait_event(|e| match e {
            convene_client::Event::Untrusted { detail, .. } if detail.contains("leo") => {
                Some(detail.clone())
            }
            _ => None,
        })
        .await?;
    ensure!(why.contains("revoked"), "{why}");
    let seen = ann.client.group(&cohort.id)?.context("ann's view")?;
    ensure!(
        !seen.members.iter().any(|m| m.user_id == "leo"),
        "ann sees leo in the cohort"
    );
    Ok(())
}

/// The authority's device renews, with its own signature, every certificate
/// a staff member signed under a delegation as soon as it sees one: the
/// users a delegate certified stay when the delegation is later revoked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_a_delegate_certified_stay_once_the_authority_renewed_them() -> Result<()> {
    use convene_client::KeyLifecycle;

    let often = KeyLifecycle {
        certificate_check: std::time::Duration::from_millis(300),
        ..Default::default()
    };
    let relay = RelayProcess::start_default()?;
    let staff = staff_app(&relay).await?;
    let [mut ann] = <[App; 1]>::try_from(leader_apps(&relay, &staff, &["ann".into()]).await?)
        .ok()
        .context("one leader")?;
    let [kim] =
        <[App; 1]>::try_from(invited_apps(&relay, &staff, &["kim".into()], Role::Staff).await?)
            .ok()
            .context("a second staff member")?;
    staff.client.delegate("kim", false).await?;
    let invite = kim.client.invite(&details("lee", Role::Leader)).await?;
    let lee = App::enrol(&relay.url, &invite.code, "lee").await?;
    let delegated_until = lee.client.certificate_valid_until_ms()?;
    let cohort = staff
        .client
        .create_group("Cohort", &["ann".into(), "lee".into()])
        .await?;
    for app in [&ann, &lee] {
        app.wait_group(&cohort.id, |g| g.users() == ["ann", "lee", "staff"])
            .await?;
    }

    // The authority's device renews lee's certificate; lee's device takes
    // it up and renews its leaf, which ann sees.
    let staff = staff.reopen_with_lifecycle(often).await?;
    let lee = lee.reopen_with_lifecycle(often).await?;
    let renewed = lee.client.clone();
    convene_tests::app::wait_until("lee to take up the authority's certificate", || {
        let until = renewed.certificate_valid_until_ms();
        async move { until.ok().filter(|until| *until > delegated_until) }
    })
    .await?;
    let lee_until = lee.client.certificate_valid_until_ms()?;
    ann.wait_group(&cohort.id, |g| {
        g.members
            .iter()
            .any(|m| m.user_id == "lee" && m.certificate_valid_until_ms == lee_until)
    })
    .await?;

    staff.client.revoke_delegation("kim").await?;
    // ann holds the revocation before lee writes.
    ann.wait_event(|e| match e {
        convene_client::Event::DelegationRevoked { user_id } if user_id == "kim" => Some(()),
        _ => None,
    })
    .await?;
    lee.client.send_text(&cohort.id, "still here").await?;
    ann.hears(&cohort.id, "lee", "still here").await?;
    Ok(())
}
