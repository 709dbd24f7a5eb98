//! Asking the network for help through the real relay binary: a request
//! with an audience reaches the leaders it is aimed at first, offers reach
//! the asker privately, the close shows everywhere, and a request asked
//! through staff never shows the asker's name to anyone else.

use anyhow::{ensure, Context, Result};
use convene_client::help::{Poster, Request, RequestFilter, RequestId};
use convene_client::{AskDraft, ClientError, MessageKind};
use convene_proto::vocabulary::Sector;
use convene_tests::app::{leader_apps, staff_app, wait_until, App};
use convene_tests::RelayProcess;

use crate::directory::network;

fn open_requests(app: &App) -> Result<Vec<Request>> {
    Ok(app.client.requests(RequestFilter::default())?)
}

/// `app`'s view of the request `id`, once it has it.
async fn seen(app: &App, id: RequestId) -> Result<Request> {
    wait_until(&format!("{} to see request {id}", app.user), || async {
        app.client.request(&id).ok().flatten().filter(|r| r.posted)
    })
    .await
}

/// Asks once the leader's device is in the network channel.
async fn ask(app: &App, draft: AskDraft) -> Result<Request> {
    wait_until(&format!("{} to ask", app.user), || async {
        match app.client.ask(draft.clone()).await {
            Ok(request) => Some(request),
            Err(ClientError::Forbidden(_)) => None,
            Err(err) => panic!("{}: {err}", app.user),
        }
    })
    .await
}

fn by<'a>(apps: &'a [App], user: &str) -> &'a App {
    apps.iter()
        .find(|a| a.user == user)
        .expect("a leader of the network")
}

/// Every message `app` holds, in every group, as text.
fn every_text(app: &App) -> Result<Vec<String>> {
    let mut texts = Vec::new();
    for group in app.client.groups()? {
        for message in app.client.history(&group.id, 1000)? {
            texts.push(message.text);
        }
    }
    Ok(texts)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_reaches_its_audience_first_offers_reach_the_asker_privately_and_it_closes(
) -> Result<()> {
    let relay = RelayProcess::start_default()?;
    let staff = staff_app(&relay).await?;
    let mut apps = network(&relay, &staff).await?;
    let cat_at = apps.iter().position(|a| a.user == "cat").context("cat")?;
    let cat = apps.remove(cat_at);
    let (ana, ben, dev, fin) = (
        by(&apps, "ana"),
        by(&apps, "ben"),
        by(&apps, "dev"),
        by(&apps, "fin"),
    );

    // Ana (NHS) needs venues and aims at fire and rescue; Dev (education)
    // needs cyber instructors and aims at the police.
    let venues = ask(
        ana,
        AskDraft {
            title: "Venues for blood donation".into(),
            text: "Our collection venues are closing. Could a station host sessions?".into(),
            topics: vec!["Estates".into()],
            sectors: vec![Sector::FireAndRescue],
            ..Default::default()
        },
    )
    .await?;
    let cyber = ask(
        dev,
        AskDraft {
            title: "Cyber instructors".into(),
            text: "A new cyber course and no-one to teach it.".into(),
            topics: vec!["cyber".into()],
            sectors: vec![Sector::Police],
            ..Default::default()
        },
    )
    .await?;
    ensure!(venues.topics == ["estates"], "{:?}", venues.topics);
    // One leader keeps at most five requests open.
    for n in 2..=5 {
        let more = AskDraft {
            title: format!("Cyber request {n}"),
            ..Default::default()
        };
        dev.client.ask(more).await?;
    }
    let sixth = AskDraft {
        title: "One too many".into(),
        ..Default::default()
    };
    let too_many = dev.client.ask(sixth).await.unwrap_err();
    ensure!(
        matches!(too_many, ClientError::InvalidArgument(_)),
        "{too_many}"
    );

    // Each reader sees the one aimed at them first.
    for (reader, first, second) in [(ben, venues.id, cyber.id), (&cat, cyber.id, venues.id)] {
        seen(reader, venues.id).await?;
        seen(reader, cyber.id).await?;
        let all: Vec<RequestId> = open_requests(reader)?.iter().map(|r| r.id).collect();
        ensure!(
            all.first() == Some(&first),
            "{} sees {all:?} first",
            reader.user
        );
        let order: Vec<RequestId> = all
            .into_iter()
            .filter(|id| *id == venues.id || *id == cyber.id)
            .collect();
        ensure!(
            order == [first, second],
            "{} sees {order:?}, expected {first} then {second}",
            reader.user
        );
        ensure!(
            matches!(&reader.client.request(&venues.id)?.context("kept")?.poster,
            Poster::Member(u) if u == "ana")
        );
    }

    // Two offers reach Ana, privately.
    seen(fin, venues.id).await?;
    ben.client
        .offer(&venues.id, "Our Gateshead station is free on Tuesdays.")
        .await?;
    fin.client
        .offer(&venues.id, "Two of our stations could host from March.")
        .await?;
    let offered = wait_until("ana to hold both offers", || async {
        ana.client
            .request(&venues.id)
            .ok()
            .flatten()
            .filter(|r| r.offers.len() == 2)
    })
    .await?;
    let mut from: Vec<&str> = offered.offers.iter().map(|o| o.from.as_str()).collect();
    from.sort();
    ensure!(from == ["ben", "fin"], "{from:?}");
    ensure!(offered.offers.iter().all(|o| o.passed_on_by.is_none()));
    // Nobody else holds them: not in their requests, not in any group.
    for other in [&cat, dev] {
        let theirs = other.client.request(&venues.id)?.context("seen")?;
        ensure!(theirs.offers.is_empty() && !theirs.mine);
        ensure!(
            !every_text(other)?.iter().any(|t| t.contains("Gateshead")),
            "{} holds Ben's offer",
            other.user
        );
    }
    // Ana's direct channel with Ben shows the offer as one.
    let direct = ana
        .client
        .direct_channel("ben")?
        .context("direct channel")?;
    let messages = ana.client.history(&direct, 10)?;
    ensure!(messages
        .iter()
        .any(|m| m.kind == MessageKind::HelpOffer && m.request == Some(venues.id)));

    // Only the asker closes it: another's client refuses to, and when a
    // tampered one does it anyway, every other client ignores the close.
    let refused = cat.client.close_request(&venues.id).await.unwrap_err();
    ensure!(matches!(refused, ClientError::Forbidden(_)), "{refused}");
    let cat = cat.reopen_misbehaving().await?;
    cat.client.close_request(&venues.id).await?;
    let network_id = staff.client.network_channel_id();
    staff
        .client
        .send_text(&network_id, "after the forged close")
        .await?;
    ben.hears(&network_id, &staff.user, "after the forged close")
        .await?;
    let still = ben.client.request(&venues.id)?.context("kept")?;
    ensure!(still.closed_at_ms.is_none(), "a forged close closed it");

    ana.client.close_request(&venues.id).await?;
    for app in apps.iter().chain([&staff, &cat]) {
        wait_until(&format!("{} to see it closed", app.user), || async {
            app.client
                .request(&venues.id)
                .ok()
                .flatten()
                .filter(|r| r.closed_at_ms.is_some())
        })
        .await?;
        ensure!(!open_requests(app)?.iter().any(|r| r.id == venues.id));
    }
    let late = dev.client.offer(&venues.id, "Too late?").await.unwrap_err();
    ensure!(matches!(late, ClientError::InvalidArgument(_)), "{late}");

    // A leader who joins later sees what is still open, from its poster,
    // and not what closed; the poster's own history shows it once.
    let mia = leader_apps(&relay, &staff, &["mia".to_string()])
        .await?
        .pop()
        .context("mia")?;
    let reposted = seen(&mia, cyber.id).await?;
    ensure!(matches!(&reposted.poster, Poster::Member(u) if u == "dev"));
    ensure!(
        mia.client.request(&venues.id)?.is_none(),
        "a closed request was posted again"
    );
    let posted_by_dev = dev
        .client
        .history(&network_id, 1000)?
        .into_iter()
        .filter(|m| m.kind == MessageKind::HelpRequest && m.request == Some(cyber.id))
        .count();
    ensure!(
        posted_by_dev == 1,
        "dev's history shows the request {posted_by_dev} times"
    );
    apps.push(mia);
    apps.push(cat);
    stop_all(apps, staff).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_asked_through_staff_never_shows_the_askers_name() -> Result<()> {
    let relay = RelayProcess::start_default()?;
    let staff = staff_app(&relay).await?;
    let mut apps = network(&relay, &staff).await?;
    let (hal, jon) = (by(&apps, "hal"), by(&apps, "jon"));
    let secret_title = "A workforce gap I cannot talk about at home";

    let asked = ask(
        hal,
        AskDraft {
            title: secret_title.into(),
            text: "Half my cyber lecturers retire this year.".into(),
            through_staff: Some("staff".into()),
            ..Default::default()
        },
    )
    .await?;
    ensure!(asked.mine, "the asker's own device knows it is theirs");

    // Everyone else sees it posted by staff for "a leader".
    for app in &apps {
        let theirs = seen(app, asked.id).await?;
        ensure!(
            theirs.poster
                == Poster::ViaStaff {
                    staff: "staff".into()
                },
            "{}: {:?}",
            app.user,
            theirs.poster
        );
        if app.user != "hal" {
            ensure!(!theirs.mine && theirs.asked_by.is_none(), "{}", app.user);
        }
    }
    // In the network channel, the message is staff's.
    let channel = jon.client.network_channel_id();
    let in_channel: Vec<_> = jon
        .client
        .history(&channel, 1000)?
        .into_iter()
        .filter(|m| m.request == Some(asked.id))
        .collect();
    ensure!(
        in_channel.len() == 1 && in_channel[0].sender == "staff",
        "{in_channel:?}"
    );
    // Only staff's device knows who asked.
    let staffs = staff.client.request(&asked.id)?.context("staff holds it")?;
    ensure!(staffs.asked_by.as_deref() == Some("hal"));

    // Jon's offer goes to staff and is passed on to Hal.
    jon.client
        .offer(
            &asked.id,
            "Talk to our cyber unit: three officers retire in June.",
        )
        .await?;
    let offered = wait_until("hal to get jon's offer", || async {
        hal.client
            .request(&asked.id)
            .ok()
            .flatten()
            .filter(|r| !r.offers.is_empty())
    })
    .await?;
    ensure!(offered.offers.len() == 1);
    ensure!(offered.offers[0].from == "jon");
    ensure!(offered.offers[0].passed_on_by.as_deref() == Some("staff"));
    // Jon's offer went to staff, not to Hal; Hal's conversation with
    // staff shows it as Jon's, passed on.
    ensure!(jon.client.direct_channel("hal")?.is_none());
    let with_staff = hal
        .client
        .direct_channel("staff")?
        .context("direct channel")?;
    let passed: Vec<_> = hal
        .client
        .history(&with_staff, 10)?
        .into_iter()
        .filter(|m| m.kind == MessageKind::HelpOffer)
        .collect();
    ensure!(
        passed.len() == 1 && passed[0].passed_on_from.as_deref() == Some("jon"),
        "{passed:?}"
    );

    // A leader who joins later sees it too, posted by staff, from staff's
    // device: still nothing that names Hal.
    let noa = leader_apps(&relay, &staff, &["noa".to_string()])
        .await?
        .pop()
        .context("noa")?;
    let theirs = seen(&noa, asked.id).await?;
    ensure!(
        theirs.poster
            == Poster::ViaStaff {
                staff: "staff".into()
            }
            && theirs.asked_by.is_none(),
        "{:?}",
        theirs.poster
    );
    apps.push(noa);
    let hal = by(&apps, "hal");

    // Hal closes it through staff; everyone sees it closed.
    hal.client.close_request(&asked.id).await?;
    for app in &apps {
        wait_until(&format!("{} to see it closed", app.user), || async {
            app.client
                .request(&asked.id)
                .ok()
                .flatten()
                .filter(|r| r.closed_at_ms.is_some())
        })
        .await?;
    }
    // Every other leader holds the request once: as staff's post in the
    // network channel, with nothing that leads back to Hal.
    for app in apps.iter().filter(|a| a.user != "hal") {
        let texts = every_text(app)?;
        ensure!(
            texts.iter().filter(|t| t.contains(secret_title)).count() == 1,
            "{} holds the request once",
            app.user
        );
    }
    stop_all(apps, staff).await;
    Ok(())
}

async fn stop_all(apps: Vec<App>, staff: App) {
    for app in apps {
        app.stop().await;
    }
    staff.stop().await;
}
