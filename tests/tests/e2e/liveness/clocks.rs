//! Case 5: clocks disagree. Certificates are checked with minutes of
//! leeway, and a device whose clock is far off is told.

use anyhow::{ensure, Context, Result};
use convene_client::Event;
use convene_tests::app::{leader_apps, staff_app};
use convene_tests::InProcessRelay;

use super::names;

const MINUTE_MS: i64 = 60 * 1000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_ten_minutes_off_keep_hearing_and_one_a_day_off_is_told() -> Result<()> {
    let relay = InProcessRelay::start_default()?;
    let staff = staff_app(&relay).await?;
    let mut leaders = leader_apps(&relay, &staff, &names("l", 3)).await?;
    let cat = leaders.pop().context("three")?;
    let ben = leaders.pop().context("three")?;
    let ann = leaders.pop().context("three")?;
    let slow = ann.reopen_with_clock(-10 * MINUTE_MS).await?;
    let fast = ben.reopen_with_clock(10 * MINUTE_MS).await?;
    ensure!(
        slow.client.status().clock_offset_ms < -9 * MINUTE_MS,
        "the offset was not measured"
    );
    let cohort = staff
        .client
        .create_group("Cohort", &[slow.user.clone(), fast.user.clone()])
        .await?;
    slow.wait_group(&cohort.id, |g| g.active).await?;
    fast.wait_group(&cohort.id, |g| g.active).await?;

    // A user certified just now, by staff's clock, is added: to the slow
    // device, the certificate's validity starts ten minutes from now.
    let newcomer = leader_apps(&relay, &staff, &["dan".to_string()])
        .await?
        .pop()
        .context("dan")?;
    staff
        .client
        .add_members(&cohort.id, std::slice::from_ref(&newcomer.user))
        .await?;
    newcomer.wait_group(&cohort.id, |g| g.active).await?;
    newcomer.client.send_text(&cohort.id, "hello all").await?;
    for app in [&slow, &fast] {
        app.hears(&cohort.id, &newcomer.user, "hello all").await?;
        let summary = app.client.group(&cohort.id)?.context("cohort")?;
        ensure!(summary.stalled.is_none(), "{}: {summary:?}", app.user);
    }
    slow.client.send_text(&cohort.id, "from the past").await?;
    newcomer
        .hears(&cohort.id, &slow.user, "from the past")
        .await?;

    // A day off is beyond any leeway: the device says so.
    let mut off = cat.reopen_with_clock(-24 * 60 * MINUTE_MS).await?;
    let offset = off
        .wait_event(|e| match e {
            Event::ClockSkew { offset_ms } => Some(*offset_ms),
            _ => None,
        })
        .await;
    let offset = match offset {
        Ok(offset) => offset,
        // The event may have come before the test subscribed.
        Err(_) => off.client.status().clock_offset_ms,
    };
    ensure!(offset < -23 * 60 * MINUTE_MS, "offset {offset}");
    Ok(())
}
