//! Case 8: a commit whose outcome the client cannot know (an `INTERNAL`
//! answer, a timeout, a dropped connection) is resubmitted as it was until
//! the relay gives a definite answer; it is never dropped on a guess.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{ensure, Context, Result};
use convene_client::{RelayRefusal, TransportError};
use convene_proto::relay::{request, ErrorCode};
use convene_tests::app::{leader_apps, staff_app};
use convene_tests::connectors::HookedConnector;
use convene_tests::InProcessRelay;

use super::names;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_answered_internal_but_stored_is_completed_not_forked() -> Result<()> {
    let relay = InProcessRelay::start_default()?;
    let staff = staff_app(&relay).await?;
    let mut leaders = leader_apps(&relay, &staff, &names("l", 2)).await?;
    let ben = leaders.pop().context("two")?;
    let ann = leaders.pop().context("two")?;
    let cohort = staff
        .client
        .create_group("Cohort", std::slice::from_ref(&ann.user))
        .await?;
    ann.wait_group(&cohort.id, |g| g.active).await?;

    // The relay stores the next commit, but its answer is lost in an
    // internal failure (as after a failed flush).
    let lost = Arc::new(AtomicBool::new(false));
    let respond = {
        let lost = lost.clone();
        Arc::new(
            move |sent: &request::Kind, answer: Result<_, TransportError>| match sent {
                request::Kind::SubmitCommit(_)
                    if answer.is_ok() && !lost.swap(true, Ordering::SeqCst) =>
                {
                    Err(TransportError::Refused(RelayRefusal {
                        code: ErrorCode::Internal,
                        message: "the relay failed internally; retry later".into(),
                        current_epoch: 0,
                        retry_after_ms: 0,
                        revocation: Vec::new(),
                    }))
                }
                _ => answer,
            },
        )
    };
    let staff = staff
        .reopen_with(HookedConnector::answering(&relay.url, respond))
        .await?;
    staff
        .client
        .add_members(&cohort.id, std::slice::from_ref(&ben.user))
        .await?;
    ensure!(lost.load(Ordering::SeqCst), "no answer was lost");

    let mine = staff.client.group(&cohort.id)?.context("cohort")?;
    ensure!(mine.stalled.is_none(), "{mine:?}");
    for app in [&ann, &ben] {
        app.wait_group(&cohort.id, |g| {
            g.epoch_authenticator == mine.epoch_authenticator && g.stalled.is_none()
        })
        .await?;
    }
    staff
        .client
        .send_text(&cohort.id, "one state for all")
        .await?;
    ben.hears(&cohort.id, &staff.user, "one state for all")
        .await?;
    ann.hears(&cohort.id, &staff.user, "one state for all")
        .await?;
    Ok(())
}
