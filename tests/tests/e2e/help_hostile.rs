//! Help requests as a tampered client sends them, through the real relay
//! binary: every other client refuses what no honest client sends (a
//! request under another member's id, a posted request that carries the
//! salt that would unmask its asker, a request asked through staff that is
//! not the sender's own), and holds nothing of it.

use anyhow::{ensure, Context, Result};
use bytes::Bytes;
use convene_client::help::RequestId;
use convene_client::{Event, GroupId};
use convene_proto::content::{content, HelpRequest};
use convene_tests::app::{staff_app, App};
use convene_tests::RelayProcess;

use crate::directory::network;

/// A help request as a tampered client builds it: `id` and `nonce` as
/// given, whether or not they belong together.
fn request(
    id: RequestId,
    nonce: [u8; 16],
    salt: Option<[u8; 16]>,
    via_staff: bool,
) -> content::Body {
    content::Body::HelpRequest(HelpRequest {
        request_id: Bytes::copy_from_slice(&id.0),
        title: "Anyone with spare estates?".into(),
        text: "Offers to me, please.".into(),
        expires_at_ms: convene_proto::now_ms() + 24 * 3600 * 1000,
        via_staff,
        id_nonce: Bytes::copy_from_slice(&nonce),
        asker_salt: salt.map(|s| Bytes::copy_from_slice(&s)).unwrap_or_default(),
        ..Default::default()
    })
}

/// The next refusal `app` reports about `group`.
async fn refusal(app: &mut App, group: &GroupId) -> Result<String> {
    app.wait_event(|e| match e {
        Event::Untrusted {
            group: Some(g),
            detail,
        } if g == group => Some(detail.clone()),
        _ => None,
    })
    .await
}

fn take(apps: &mut Vec<App>, user: &str) -> App {
    let at = apps
        .iter()
        .position(|a| a.user == user)
        .expect("a leader of the network");
    apps.remove(at)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_posted_request_under_another_members_id_or_with_its_askers_salt_is_refused() -> Result<()>
{
    let relay = RelayProcess::start_default()?;
    let staff = staff_app(&relay).await?;
    let mut apps = network(&relay, &staff).await?;
    let eve = take(&mut apps, "eve");
    let mut ben = take(&mut apps, "ben");
    let channel = eve.client.network_channel_id();

    // Eve posts under an id derived from Ana, to draw Ana's offers or to
    // be the copy newcomers keep; then one of her own that carries a salt.
    let nonce = [1; 16];
    let as_ana = RequestId::of_poster("ana", &nonce);
    eve.client
        .send_unchecked_for_adversarial_tests(&channel, request(as_ana, nonce, None, false))
        .await?;
    let nonce = [2; 16];
    let salted = RequestId::of_poster("eve", &nonce);
    eve.client
        .send_unchecked_for_adversarial_tests(
            &channel,
            request(salted, nonce, Some([3; 16]), false),
        )
        .await?;

    let refusals = [
        refusal(&mut ben, &channel).await?,
        refusal(&mut ben, &channel).await?,
    ];
    let refused = |why: &str| refusals.iter().any(|r| r.contains(why));
    ensure!(
        refused("not its poster's") && refused("salt that would tell"),
        "{refusals:?}"
    );
    ensure!(ben.client.request(&as_ana)?.is_none());
    ensure!(ben.client.request(&salted)?.is_none());
    Ok(())
}

/// Without the asker's binding, a leader could send staff a request staff
/// never saw asked (a copy of one staff posted from another device, say)
/// and have it posted, its offers passed on to them, and its close theirs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_post_only_a_request_whose_id_is_derived_from_the_leader_who_asked() -> Result<()> {
    let relay = RelayProcess::start_default()?;
    let mut staff = staff_app(&relay).await?;
    let mut apps = network(&relay, &staff).await?;
    let dev = take(&mut apps, "dev");
    let direct = dev.client.open_direct("staff").await?;

    // An id staff's device would accept as its own to post, with a nonce
    // that is not derived from Dev (here, from nobody).
    let nonce = [4; 16];
    let id = RequestId::of_poster("staff", &nonce);
    dev.client
        .send_unchecked_for_adversarial_tests(&direct, request(id, nonce, Some([5; 16]), true))
        .await?;

    let why = refusal(&mut staff, &direct).await?;
    ensure!(why.contains("not derived from its sender"), "{why}");
    ensure!(staff.client.request(&id)?.is_none());
    Ok(())
}

/// A close sent over and over (by the poster in the network channel, or
/// by a leader to the staff member they asked through) is shown, and
/// passed on, once: nobody's history fills with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_close_sent_again_and_again_is_shown_and_passed_on_once() -> Result<()> {
    use convene_client::help::RequestFilter;
    use convene_client::{AskDraft, MessageKind};
    use convene_proto::content::HelpClose;

    let relay = RelayProcess::start_default()?;
    let staff = staff_app(&relay).await?;
    let mut apps = network(&relay, &staff).await?;
    let ana = take(&mut apps, "ana");
    let hal = take(&mut apps, "hal");
    let ben = take(&mut apps, "ben");
    let channel = ben.client.network_channel_id();
    let draft = |title: &str, through_staff: Option<String>| AskDraft {
        title: title.into(),
        text: "Details to follow.".into(),
        through_staff,
        ..Default::default()
    };
    let own = ana.client.ask(draft("Estates", None)).await?;
    let asked = hal
        .client
        .ask(draft("Cyber lecturers", Some("staff".into())))
        .await?;
    for id in [own.id, asked.id] {
        convene_tests::app::wait_until("ben to see both requests", || async {
            ben.client.request(&id).ok().flatten().filter(|r| r.posted)
        })
        .await?;
    }

    let close = |id: RequestId| {
        content::Body::HelpClose(HelpClose {
            request_id: Bytes::copy_from_slice(&id.0),
        })
    };
    let direct = hal
        .client
        .direct_channel("staff")?
        .context("hal's channel with staff")?;
    for _ in 0..3 {
        ana.client
            .send_unchecked_for_adversarial_tests(&channel, close(own.id))
            .await?;
        hal.client
            .send_unchecked_for_adversarial_tests(&direct, close(asked.id))
            .await?;
    }
    // Once staff have read all three of Hal's, what they passed on is
    // ahead of their next announcement in the channel.
    hal.client.send_text(&direct, "that is all").await?;
    staff.hears(&direct, "hal", "that is all").await?;
    staff.client.send_text(&channel, "marker").await?;
    ben.hears(&channel, "staff", "marker").await?;

    let closes = ben
        .client
        .history(&channel, 1000)?
        .into_iter()
        .filter(|m| m.kind == MessageKind::HelpClose)
        .filter_map(|m| m.request)
        .collect::<Vec<_>>();
    ensure!(
        closes.iter().filter(|id| **id == own.id).count() == 1
            && closes.iter().filter(|id| **id == asked.id).count() == 1,
        "{closes:?}"
    );
    let open = ben.client.requests(RequestFilter::default())?;
    ensure!(!open.iter().any(|r| r.id == own.id || r.id == asked.id));
    Ok(())
}
