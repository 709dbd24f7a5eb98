//! A new device's first directory sync over the network at its full size
//! (issue 18), through the real relay binary and real clients.
//!
//! 1,200 leaders enrol with certified profiles, are added to the network
//! channel by staff's device, write their profile (topics, working on, a
//! bio of 360 characters) and go offline. Then, five times, a new
//! leader's device is enrolled and opened, timed from opening until its
//! directory holds every leader's profile: listing the stamps, fetching
//! 25 `GetUsers` batches of 50, verifying each entry's certificate chains
//! and profile signature, and keeping them durably. In the same run, the
//! baseline is the same requests from a device that verifies and keeps
//! nothing, and a sync with nothing changed (the one every ten minutes).
//!
//! ```sh
//! cargo bench -p convene-tests --bench directory_sync
//! CONVENE_BENCH_LEADERS=200 cargo bench -p convene-tests --bench directory_sync
//! ```
//!
//! Figures only: nothing here is asserted.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use convene_client::directory::ProfileDraft;
use convene_client::trust::{CertifiedFields, UserDetails};
use convene_client::{ClientBuilder, ClientError, Role};
use convene_proto::relay::{request, response, GetUsers, ListUsers};
use convene_proto::vocabulary::{Region, Sector};
use convene_tests::app::{display_name, staff_app, store_key, wait_until, App};
use convene_tests::{RelayOptions, RelayProcess, TestDevice};
use futures_util::future::try_join_all;
use prost::Message as _;

const RUNS: usize = 5;
/// Leaders enrolled at once: the staff device adds them to the network
/// channel in one commit.
const BATCH: usize = 50;

fn main() -> Result<()> {
    let leaders: usize = std::env::var("CONVENE_BENCH_LEADERS")
        .ok()
        .map(|v| v.parse())
        .transpose()?
        .unwrap_or(1200);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(run(leaders))
}

async fn run(leaders: usize) -> Result<()> {
    let relay = RelayProcess::start(RelayOptions {
        log_filter: Some("warn".into()),
        ..Default::default()
    })?;
    let staff = staff_app(&relay).await?;
    staff.client.create_network_channel("Network").await?;
    let built = Instant::now();
    for first in (0..leaders).step_by(BATCH) {
        let batch: Vec<usize> = (first..leaders.min(first + BATCH)).collect();
        let apps = try_join_all(batch.iter().map(|&n| enrol(&relay, &staff, n))).await?;
        try_join_all(
            apps.iter()
                .zip(&batch)
                .map(|(app, &n)| write_profile(app, n)),
        )
        .await?;
        for app in apps {
            app.stop().await;
        }
        eprintln!("{} leaders with profiles", first + batch.len());
    }
    println!(
        "population: {leaders} leaders enrolled, in the channel and with profiles in {:.0} s",
        built.elapsed().as_secs_f64()
    );
    let last = leader_id(leaders - 1);

    let mut first_sync = Vec::new();
    let mut unchanged_sync = Vec::new();
    for run in 0..RUNS {
        let user = format!("newcomer-{run}");
        let dir = tempfile::tempdir()?;
        let state_dir = dir.path().join("state");
        let invite = staff.client.invite(&details(&user, leaders + run)).await?;
        ClientBuilder::new(&state_dir)
            .store_key(store_key(&user))
            .relay_url(&relay.url)
            .enrol(&invite.code, &user, &display_name(&user))
            .await?;
        let opened = Instant::now();
        let app = App::open(&relay.url, state_dir, &user).await?;
        wait_until("the directory to hold every profile", || async {
            let person = app.client.person(&last).ok().flatten()?;
            (person.profile.is_some() || person.profile_sealed).then_some(())
        })
        .await?;
        first_sync.push(opened.elapsed());
        let again = Instant::now();
        let report = app.client.sync_directory().await?;
        unchanged_sync.push(again.elapsed());
        if report.updated > RUNS {
            bail!(
                "a sync with nothing changed fetched {} users",
                report.updated
            );
        }
        app.stop().await;
    }

    let reader = convene_tests::app::raw_device(&relay, &staff, "reader", Role::Leader).await?;
    let mut bare = Vec::new();
    let mut served_bytes = 0;
    for _ in 0..RUNS {
        let started = Instant::now();
        served_bytes = fetch_everyone(&reader).await?;
        bare.push(started.elapsed());
    }

    let (first, unchanged, bare) = (p50(first_sync), p50(unchanged_sync), p50(bare));
    println!(
        "served: {:.1} KiB for {} users",
        served_bytes as f64 / 1024.0,
        leaders + RUNS + 2
    );
    println!(
        "first sync on a new device, open to every profile held (p50 of {RUNS}): {:.0} ms",
        ms(first)
    );
    println!(
        "baseline, the same requests without verifying or keeping (p50 of {RUNS}): {:.0} ms ({:.1}x)",
        ms(bare),
        ms(first) / ms(bare)
    );
    println!(
        "a sync with nothing changed (p50 of {RUNS}): {:.1} ms",
        ms(unchanged)
    );
    Ok(())
}

fn leader_id(n: usize) -> String {
    format!("leader-{n:04}")
}

fn details(user: &str, n: usize) -> UserDetails {
    let sector = Sector::ALL[n % Sector::ALL.len()];
    let region = Region::ALL[n % Region::ALL.len()];
    UserDetails {
        user_id: user.into(),
        display_name: format!("Leader {n}"),
        role: Role::Leader,
        sector: sector.code().into(),
        certified: CertifiedFields {
            job_title: "Chief Executive".into(),
            organisation: format!("Organisation {}", n % 300),
            region: region.code().into(),
            programme: "CEO programme 2026".into(),
            cohort: format!("cohort {}", n % 36),
        },
    }
}

async fn enrol(relay: &RelayProcess, staff: &App, n: usize) -> Result<App> {
    let user = leader_id(n);
    let invite = staff.client.invite(&details(&user, n)).await?;
    App::enrol(&relay.url, &invite.code, &user).await
}

/// Writes leader `n`'s profile once staff's device has added them to the
/// network channel (which hands out the key profiles are sealed with).
async fn write_profile(app: &App, n: usize) -> Result<()> {
    let draft = ProfileDraft {
        topics: Some(vec![
            format!("topic {}", n % 40),
            format!("topic {}", (n * 7) % 40),
            "workforce".into(),
        ]),
        working_on: Some(format!(
            "Leader {n} is working on a workforce plan for the region."
        )),
        bio: Some(
            "Twenty years in public service, most of them in operational leadership. ".repeat(5),
        ),
        contact: Some("Message me here; I answer within a day.".into()),
    };
    wait_until("a leader to write a profile", || async {
        match app.client.set_profile(&draft).await {
            Ok(_) => Some(Ok(())),
            Err(ClientError::Forbidden(_)) => None,
            Err(err) => Some(Err(err)),
        }
    })
    .await?
    .with_context(|| format!("{} writing a profile", app.user))
}

/// Lists every user and fetches them all in batches of 50, as a sync does,
/// keeping nothing: the bytes served.
async fn fetch_everyone(reader: &TestDevice) -> Result<usize> {
    let mut ids = Vec::new();
    let mut after = String::new();
    loop {
        let page = match reader
            .conn
            .request(request::Kind::ListUsers(ListUsers {
                after_user_id: after.clone(),
                limit: 500,
            }))
            .await?
        {
            response::Result::UserList(page) => page,
            other => bail!("unexpected answer {other:?}"),
        };
        ids.extend(page.users.into_iter().map(|u| u.user_id));
        match ids.last() {
            Some(last) if page.more => after = last.clone(),
            _ => break,
        }
    }
    let mut bytes = 0;
    for chunk in ids.chunks(50) {
        match reader
            .conn
            .request(request::Kind::GetUsers(GetUsers {
                user_ids: chunk.to_vec(),
            }))
            .await?
        {
            response::Result::UserList(page) => {
                bytes += page.users.iter().map(|u| u.encoded_len()).sum::<usize>()
            }
            other => bail!("unexpected answer {other:?}"),
        }
    }
    Ok(bytes)
}

fn p50(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
