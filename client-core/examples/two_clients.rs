//! Two clients exchanging a message through a relay: the smallest complete
//! use of client-core, to copy into an app.
//!
//! Start a relay with `cargo run -p convene-server` on an empty data
//! directory; it prints a bootstrap staff invite. Then:
//!
//! ```sh
//! cargo run -p convene-client-core --example two_clients -- ws://127.0.0.1:7420 cvn1_...
//! ```
//!
//! The first client enrols as staff with that invite, invites the second,
//! creates a group with it and says hello; the second prints what it hears.

use std::time::Duration;

use convene_client::trust::UserDetails;
use convene_client::{ClientBuilder, Event, Role, StoreKey};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(relay), Some(invite)) = (args.next(), args.next()) else {
        eprintln!("usage: two_clients <relay url> <bootstrap invite>");
        std::process::exit(2);
    };
    let dir = tempfile::tempdir()?;
    let patience = Duration::from_secs(20);

    // Setup happens once per device: enrol with an invite.
    // Each device's local state is encrypted under a key the app keeps (in
    // the platform keystore, say); here, a fresh one per device.
    let staff = ClientBuilder::new(dir.path().join("staff"))
        .store_key(StoreKey::generate())
        .relay_url(&relay);
    staff
        .clone()
        .enrol(&invite, "example.staff", "Example Staff")
        .await?;
    // Running happens every time the app starts: open, then use.
    let staff = staff.open().await?;
    staff.wait_caught_up(patience).await?;

    // The staff device holds the organisation's authority key: the invite
    // carries a certificate for the new leader that the relay cannot forge.
    let invite = staff
        .invite(&UserDetails {
            user_id: "example.leader".into(),
            display_name: "Example Leader".into(),
            role: Role::Leader,
            sector: "police".into(),
            certified: Default::default(),
        })
        .await?;
    let leader = ClientBuilder::new(dir.path().join("leader"))
        .store_key(StoreKey::generate())
        .relay_url(&relay);
    leader.clone().enrol(&invite.code, "", "").await?;
    let leader = leader.open().await?;
    let mut events = leader.events();
    leader.wait_caught_up(patience).await?;

    let group = staff
        .create_group("Example cohort", &["example.leader".to_string()])
        .await?;
    staff
        .send_text(&group.id, "Hello from the programme team")
        .await?;

    // The leader's app learns everything from one stream of events.
    let heard = tokio::time::timeout(patience, async {
        while let Some(event) = events.recv().await {
            match event {
                Event::JoinedGroup(group) => println!("leader joined {:?}", group.name),
                Event::MessageReceived(message) => return Some(message),
                _ => {}
            }
        }
        None
    })
    .await?;
    let message = heard.ok_or("the leader's client stopped")?;
    println!("leader received from {}: {}", message.sender, message.text);

    staff.shutdown().await;
    leader.shutdown().await;
    Ok(())
}
