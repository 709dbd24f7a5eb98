//! Introductions through the real relay binary: staff put three leaders in
//! touch with a note, the leaders are in the group and staff are not, each
//! is shown the note with who wrote it, and a leader may leave.

use anyhow::{ensure, Context, Result};
use convene_client::{ClientError, GroupKind, MessageKind};
use convene_tests::app::{leader_apps, staff_app, wait_until, App};
use convene_tests::RelayProcess;

const NOTE: &str = "Ana has cyber specialists retiring; Ben and Cara need cyber teachers.";

fn users(summary: &convene_client::GroupSummary) -> Vec<String> {
    let mut users: Vec<String> = summary.members.iter().map(|m| m.user_id.clone()).collect();
    users.sort();
    users.dedup();
    users
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_leaders_are_introduced_with_a_note_and_staff_leave_at_once() -> Result<()> {
    let relay = RelayProcess::start_default()?;
    let staff = staff_app(&relay).await?;
    let names: Vec<String> = ["ana", "ben", "cara", "dan"].map(String::from).to_vec();
    let leaders = leader_apps(&relay, &staff, &names).await?;
    let introduced = names[..3].to_vec();

    // Only staff introduce, and only 2 or 3 different leaders.
    let refused = leaders[0]
        .client
        .introduce(&introduced, NOTE)
        .await
        .unwrap_err();
    ensure!(matches!(refused, ClientError::Forbidden(_)), "{refused}");
    let one = staff.client.introduce(&names[..1], NOTE).await.unwrap_err();
    ensure!(matches!(one, ClientError::InvalidArgument(_)), "{one}");
    let four = staff.client.introduce(&names, NOTE).await.unwrap_err();
    ensure!(matches!(four, ClientError::InvalidArgument(_)), "{four}");

    let group = staff.client.introduce(&introduced, NOTE).await?;
    ensure!(group.kind == GroupKind::Introduction);
    // All three are in it, staff are not.
    for app in &leaders[..3] {
        let summary = app
            .wait_group(&group.id, |g| {
                users(g) == ["ana", "ben", "cara"] && g.kind == GroupKind::Introduction
            })
            .await?;
        ensure!(summary.managers.is_empty(), "{:?}", summary.managers);
        // The note, from staff, first.
        let history = app.client.history(&group.id, 10)?;
        let first = history.first().context("the note")?;
        ensure!(first.kind == MessageKind::Introduction, "{first:?}");
        ensure!(first.text == NOTE && first.sender == staff.user);
    }
    ensure!(leaders[3].client.group(&group.id)?.is_none());
    let gone = wait_until("staff to have left", || async {
        staff
            .client
            .group(&group.id)
            .ok()
            .flatten()
            .filter(|g| !g.active)
    })
    .await?;
    ensure!(!gone.managing, "staff do not manage an introduction");

    // The leaders talk; then Cara leaves, and the other two go on.
    leaders[0]
        .client
        .send_text(&group.id, "Ben, Cara: shall we meet?")
        .await?;
    leaders[2].client.leave_introduction(&group.id).await?;
    for app in &leaders[..2] {
        app.wait_group(&group.id, |g| users(g) == ["ana", "ben"])
            .await?;
    }
    leaders[2].wait_group(&group.id, |g| !g.active).await?;
    leaders[1]
        .client
        .send_text(&group.id, "Yes, Tuesday.")
        .await?;
    leaders[0].hears(&group.id, "ben", "Yes, Tuesday.").await?;
    // A cohort is not left this way.
    let cohort = staff.client.create_group("Cohort", &names).await?;
    leaders[0]
        .wait_group(&cohort.id, |g| users(g).len() == 5)
        .await?;
    let not_here = leaders[0]
        .client
        .leave_introduction(&cohort.id)
        .await
        .unwrap_err();
    ensure!(matches!(not_here, ClientError::Forbidden(_)), "{not_here}");
    stop(leaders, staff).await;
    Ok(())
}

async fn stop(leaders: Vec<App>, staff: App) {
    for app in leaders {
        app.stop().await;
    }
    staff.stop().await;
}
