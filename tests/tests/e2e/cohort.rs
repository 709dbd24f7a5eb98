//! Cohort groups through the real relay with real clients: fan-out to a
//! whole cohort, offline catch-up, restarts, racing commits and removal.

use std::collections::{HashMap, HashSet};

use anyhow::{ensure, Result};
use convene_client::{Event, GroupId, Role};
use convene_tests::app::{invited_apps, leader_apps, staff_app, App};
use convene_tests::connectors::TwistedConnector;
use convene_tests::InProcessRelay;
use futures_util::future::join_all;

fn names(prefix: &str, n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("{prefix}{i:02}")).collect()
}

/// Waits until every app is in `group` with exactly `users`, and returns
/// their (epoch, epoch authenticator) pairs.
async fn converged(apps: &[&App], group: &GroupId, users: &[&str]) -> Result<Vec<(u64, Vec<u8>)>> {
    let mut expected: Vec<String> = users.iter().map(|u| u.to_string()).collect();
    expected.sort();
    let mut states = Vec::new();
    for app in apps {
        let summary = app
            .wait_group(group, |g| g.active && g.users() == expected)
            .await?;
        states.push((summary.epoch, summary.epoch_authenticator));
    }
    Ok(states)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cohort_of_33_leaders_hears_every_message_once_in_order() -> Result<()> {
    let relay = InProcessRelay::start_default()?;
    let staff = staff_app(&relay).await?;
    let leader_names = names("leader", 33);
    let mut leaders = leader_apps(&relay, &staff, &leader_names).await?;
    let group = staff
        .client
        .create_group("Cohort 2026", &leader_names)
        .await?;
    assert_eq!(group.users().len(), 34);
    for leader in &leaders {
        leader
            .wait_group(&group.id, |g| g.members.len() == 34)
            .await?;
    }

    // Every leader sends two messages, all leaders at once.
    join_all(leaders.iter().map(|leader| async {
        for n in 1..=2 {
            let text = format!("{} says {n}", leader.user);
            leader.client.send_text(&group.id, &text).await?;
        }
        anyhow::Ok(())
    }))
    .await
    .into_iter()
    .collect::<Result<Vec<_>>>()?;

    let total = leaders.len() * 2;
    let mut staff = staff;
    let mut everyone: Vec<&mut App> = leaders.iter_mut().collect();
    everyone.push(&mut staff);
    for member in everyone.iter_mut() {
        let history = member.wait_history(&group.id, total).await?;
        ensure!(
            history.len() == total,
            "{} holds {} messages",
            member.user,
            history.len()
        );
        // Each sender's messages are in the order they were sent.
        let mut next: HashMap<&str, u32> = HashMap::new();
        for message in &history {
            let n = next.entry(message.sender.as_str()).or_insert(1);
            assert_eq!(
                message.text,
                format!("{} says {n}", message.sender),
                "{}",
                member.user
            );
            *n += 1;
        }
        assert_eq!(next.len(), leader_names.len());
        // The app heard each message from another member exactly once.
        let own = if member.user == "staff" { 0 } else { 2 };
        let received = member.received_messages(total - own).await?;
        assert_eq!(received.len(), total - own, "{}", member.user);
        let ids: HashSet<_> = received.iter().map(|m| m.id.clone()).collect();
        assert_eq!(ids.len(), received.len(), "{}", member.user);
    }
    // Nothing more comes: no message is shown twice.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    for member in everyone {
        let extra = member.extra_messages();
        assert!(extra.is_empty(), "{} heard again: {extra:?}", member.user);
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_leader_catches_up_with_messages_and_membership() -> Result<()> {
    let relay = InProcessRelay::start_default()?;
    let staff = staff_app(&relay).await?;
    let mut leaders = leader_apps(&relay, &staff, &names("l", 4)).await?;
    let late = leaders.pop().expect("four leaders");
    let [ana, ben, cara] = <[App; 3]>::try_from(leaders).ok().expect("three leaders");
    let group = staff
        .client
        .create_group("Cohort", &[ana.user.clone(), ben.user.clone()])
        .await?;
    converged(&[&staff, &ana, &ben], &group.id, &["staff", "l01", "l02"]).await?;

    let ben = ben.stop().await;
    ana.client.send_text(&group.id, "one").await?;
    staff
        .client
        .add_members(&group.id, std::slice::from_ref(&cara.user))
        .await?;
    ana.client.send_text(&group.id, "two").await?;
    cara.wait_group(&group.id, |g| g.active).await?;
    cara.client.send_text(&group.id, "three").await?;
    staff
        .client
        .add_members(&group.id, std::slice::from_ref(&late.user))
        .await?;
    staff.client.send_text(&group.id, "four").await?;

    let ben = ben.resume().await?;
    let history = ben.wait_history(&group.id, 4).await?;
    let texts: Vec<&str> = history.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts, ["one", "two", "three", "four"]);
    let states = converged(
        &[&staff, &ana, &ben, &cara, &late],
        &group.id,
        &["staff", "l01", "l02", "l03", "l04"],
    )
    .await?;
    assert!(states.windows(2).all(|w| w[0] == w[1]), "{states:?}");
    // And it can take part again.
    ben.client.send_text(&group.id, "back").await?;
    let seen = late.wait_history(&group.id, 2).await?;
    assert_eq!(seen.last().map(|m| m.text.as_str()), Some("back"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_client_continues_in_all_its_groups() -> Result<()> {
    let relay = InProcessRelay::start_default()?;
    let staff = staff_app(&relay).await?;
    let leaders = leader_apps(&relay, &staff, &names("r", 2)).await?;
    let [ana, ben] = <[App; 2]>::try_from(leaders).ok().expect("two leaders");
    let cohort = staff
        .client
        .create_group("Cohort", &[ana.user.clone(), ben.user.clone()])
        .await?;
    ben.wait_group(&cohort.id, |g| g.members.len() == 3).await?;
    ana.client.send_direct(&ben.user, "before").await?;
    let direct = ana.client.open_direct(&ben.user).await?;
    ben.wait_history(&direct, 1).await?;

    let ben = ben.restart().await?;
    ana.client
        .send_text(&cohort.id, "cohort after restart")
        .await?;
    ana.client
        .send_text(&direct, "direct after restart")
        .await?;
    assert_eq!(
        ben.wait_history(&cohort.id, 1).await?[0].text,
        "cohort after restart"
    );
    assert_eq!(
        ben.wait_history(&direct, 2).await?[1].text,
        "direct after restart"
    );
    ben.client
        .send_text(&cohort.id, "ben in the cohort")
        .await?;
    ben.client.send_text(&direct, "ben to ana").await?;
    assert_eq!(
        ana.wait_history(&cohort.id, 2).await?[1].text,
        "ben in the cohort"
    );
    assert_eq!(ana.wait_history(&direct, 3).await?[2].text, "ben to ana");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_committing_at_the_same_epoch_converge() -> Result<()> {
    let relay = InProcessRelay::start_default()?;
    let staff = staff_app(&relay).await?;
    // Ana and Ben are staff too: in a cohort only staff change members.
    let mut members = invited_apps(&relay, &staff, &names("c", 2), Role::Staff).await?;
    members.extend(leader_apps(&relay, &staff, &names("c", 5)[2..]).await?);
    let [ana, ben, cara, dan, eve] = <[App; 5]>::try_from(members).ok().expect("five members");
    let group = staff
        .client
        .create_group("Cohort", &[ana.user.clone(), ben.user.clone()])
        .await?;
    converged(&[&staff, &ana, &ben], &group.id, &["staff", "c01", "c02"]).await?;

    // Ana does not hear of staff's commit before building hers, so both
    // are built on the same epoch; the relay takes one, ana's client must
    // discard hers, catch up and try again.
    let (connector, gate) = TwistedConnector::gated(&relay.url);
    let ana = ana.reopen_with(connector).await?;
    gate.close();
    staff
        .client
        .add_members(&group.id, std::slice::from_ref(&cara.user))
        .await?;
    let racing = tokio::spawn({
        let client = ana.client.clone();
        let (group, dan) = (group.id.clone(), dan.user.clone());
        async move { client.add_members(&group, &[dan]).await }
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    gate.open();
    racing.await??;

    // Then two commits at once, without any help.
    let (add, remove) = ([eve.user.clone()], [cara.user.clone()]);
    let (a, b) = tokio::join!(
        staff.client.add_members(&group.id, &add),
        ben.client.remove_members(&group.id, &remove),
    );
    a?;
    b?;

    let users = ["staff", "c01", "c02", "c04", "c05"];
    let states = converged(&[&staff, &ana, &ben, &dan, &eve], &group.id, &users).await?;
    assert!(
        states.windows(2).all(|w| w[0] == w[1]),
        "members disagree: {states:?}"
    );
    assert_eq!(states[0].0, 5, "create + 4 commits");
    let cara_view = cara.wait_group(&group.id, |g| !g.active).await?;
    assert!(!cara_view.active);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_member_cannot_read_what_follows() -> Result<()> {
    let relay = InProcessRelay::start_default()?;
    let staff = staff_app(&relay).await?;
    let leaders = leader_apps(&relay, &staff, &names("x", 2)).await?;
    let [ana, mut ben] = <[App; 2]>::try_from(leaders).ok().expect("two leaders");
    let group = staff
        .client
        .create_group("Cohort", &[ana.user.clone(), ben.user.clone()])
        .await?;
    converged(&[&staff, &ana, &ben], &group.id, &["staff", "x01", "x02"]).await?;
    ana.client
        .send_text(&group.id, "before the removal")
        .await?;
    ben.wait_history(&group.id, 1).await?;

    staff
        .client
        .remove_members(&group.id, &[ben.user.clone()])
        .await?;
    let removed = ben
        .wait_event(|e| {
            matches!(e, Event::RemovedFromGroup { group: g } if *g == group.id).then_some(())
        })
        .await;
    removed?;
    ana.wait_group(&group.id, |g| g.members.len() == 2).await?;
    ana.client.send_text(&group.id, "after the removal").await?;
    staff.wait_history(&group.id, 2).await?;

    // Ben's device neither receives nor can send anything more.
    let ben = ben.restart().await?;
    let history = ben.client.history(&group.id, 10)?;
    assert_eq!(history.len(), 1, "{history:?}");
    assert!(history.iter().all(|m| m.text != "after the removal"));
    assert!(!ben.client.group(&group.id)?.expect("still listed").active);
    let refused = ben.client.send_text(&group.id, "still here?").await;
    assert!(refused.is_err(), "{refused:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_delivered_twice_are_shown_once() -> Result<()> {
    let relay = InProcessRelay::start_default()?;
    let staff = staff_app(&relay).await?;
    let leaders = leader_apps(&relay, &staff, &names("d", 2)).await?;
    let [ana, ben] = <[App; 2]>::try_from(leaders).ok().expect("two leaders");
    let ben = ben
        .reopen_with(TwistedConnector::duplicating(&relay.url))
        .await?;
    let mut ben = ben;
    let group = staff
        .client
        .create_group("Cohort", &[ana.user.clone(), ben.user.clone()])
        .await?;
    converged(&[&staff, &ana, &ben], &group.id, &["staff", "d01", "d02"]).await?;
    for n in 0..5 {
        ana.client.send_text(&group.id, &format!("m{n}")).await?;
    }
    ben.client.send_text(&group.id, "ben's own").await?;
    let history = ben.wait_history(&group.id, 6).await?;
    let received = ben.received_messages(5).await?;
    assert_eq!(received.len(), 5, "{received:?}");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let extra = ben.extra_messages();
    assert!(extra.is_empty(), "shown twice: {extra:?}");
    assert_eq!(ben.client.history(&group.id, 100)?.len(), history.len());
    Ok(())
}
