//! Help requests as a tampered client sends them, through the real relay
//! binary: every other client refuses what no honest client sends (a
//! request under another member's id, a posted request that carries the
//! salt that would unmask its asker, a request asked through staff that is
//! not the sender's own), and holds nothing of it.

use anyhow::{ensure, Result};
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
