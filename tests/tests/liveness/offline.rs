//! Devices that are away while the network goes on without them.

use anyhow::{ensure, Result};
use convene_tests::app::{leader_apps, staff_app};
use convene_tests::RelayProcess;

use crate::names;

/// Case 3: after 30 groups the device's one-time KeyPackages are used up,
/// and its last-resort KeyPackage must still let everyone add it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_offline_while_40_groups_are_created_joins_all_40() -> Result<()> {
    let relay = RelayProcess::start_default()?;
    let staff = staff_app(&relay).await?;
    let mut leaders = leader_apps(&relay, &staff, &names("l", 2)).await?;
    let ben = leaders.pop().expect("two leaders");
    let ann = leaders.pop().expect("two leaders").stop().await;

    let members = vec![ann.user.clone(), ben.user.clone()];
    let mut groups = Vec::new();
    for i in 0..40 {
        let group = staff
            .client
            .create_group(&format!("Group {i}"), &members)
            .await?;
        ensure!(
            group.users().contains(&ann.user),
            "group {i} was made without ann: {:?}",
            group.users()
        );
        groups.push(group.id);
    }

    let ann = ann.resume().await?;
    for group in &groups {
        ann.wait_group(group, |g| g.active).await?;
    }
    // And the last of them works both ways.
    let last = groups.last().expect("40 groups");
    ann.client.send_text(last, "back from leave").await?;
    ben.hears(last, &ann.user, "back from leave").await?;
    Ok(())
}
