//! The network channel at the size of the network (issue 18): built to
//! 1,200 members in batches of 50 as a staff device builds it, then a
//! cohort of 33 added to it at once. Reports the commit and Welcome sizes
//! (a Welcome carries the whole ratchet tree, and the relay refuses
//! payloads over `max_payload_bytes`, 2 MiB by default), how long a new
//! member takes to join from that Welcome and an existing member to
//! process the commit, and what one help request costs to encrypt and to
//! decrypt. Plain openmls builds the same channel in the same run as the
//! baseline.

use std::time::{Duration, Instant};

use convene_client::trust::{CertifiedFields, UserDetails};
use convene_client::Role;
use openmls::prelude::*;

use super::sides::{authority, meta, Device, Ours, Plain};
use super::{ms, Error};

/// The relay's default `max_payload_bytes`.
const RELAY_PAYLOAD_LIMIT: usize = 2 * 1024 * 1024;

/// A leader with a certificate as staff would make it (the fields every
/// leaf carries into the tree).
fn leader(n: usize) -> Device {
    let key = convene_client::DeviceKey::generate();
    let details = UserDetails {
        user_id: format!("leader{n:04}"),
        display_name: format!("Leader Number {n}"),
        role: Role::Leader,
        sector: "fire-rescue".into(),
        certified: CertifiedFields {
            job_title: "Chief Fire Officer".into(),
            organisation: "Tyne and Wear Fire and Rescue Service".into(),
            region: "TLC".into(),
            programme: "CEO programme 2026".into(),
            cohort: "cohort 2".into(),
        },
    };
    let now = convene_proto::now_ms();
    let (_, chain) = authority().issue_direct_chain(&details, key.public(), now - 1000, 3_600_000);
    Device {
        key,
        user: details.user_id,
        chain,
    }
}

fn kib(bytes: usize) -> String {
    format!("{:.1} KiB", bytes as f64 / 1024.0)
}

/// Prints the figures.
pub fn network_figures(size: usize) -> Result<(), Error> {
    const BATCH: usize = 50;
    const COHORT: usize = 33;
    let members: Vec<Plain> = (1..size + COHORT).map(|n| Plain::new(leader(n))).collect();
    let kps: Vec<KeyPackage> = members
        .iter()
        .map(Plain::key_package)
        .collect::<Result<_, _>>()?;
    let (channel_kps, cohort_kps) = kps.split_at(size - 1);
    let id = rand::random::<[u8; 16]>();
    let mut network_meta = meta();
    network_meta.kind = convene_proto::content::GroupKind::Network as i32;

    // Baseline: plain openmls builds the same channel.
    let plain = Plain::new(leader(0));
    let started = Instant::now();
    let mut plain_group = plain.create(&id)?;
    for batch in channel_kps.chunks(BATCH) {
        plain.add(&mut plain_group, batch)?;
    }
    let plain_build = started.elapsed();

    // client-core: the staff device, durable after each batch as it is
    // before telling the relay; one early member follows every commit.
    let ours = Ours::new(leader(0))?;
    let ops = ours.ops();
    let started = Instant::now();
    let mut group =
        ops.create_group(&convene_proto::ids::GroupId::from(id), &network_meta, false)?;
    let follower = &members[0];
    let mut followed: Option<MlsGroup> = None;
    let mut largest_welcome = 0;
    let mut follow_time = Duration::ZERO;
    for batch in channel_kps.chunks(BATCH) {
        let bundle = ops.add(&mut group, batch)?;
        ops.merge_pending(&mut group)?;
        ours.finish(true)?;
        largest_welcome = largest_welcome.max(bundle.welcome.len());
        let t = Instant::now();
        match followed.as_mut() {
            None => followed = Some(follower.join(&bundle.welcome)?),
            Some(g) => follower.process(g, &bundle.commit)?,
        }
        follow_time += t.elapsed();
    }
    let build = started.elapsed() - follow_time;
    let mut followed = followed.ok_or("the follower never joined")?;

    // A cohort of 33 added at once.
    let started = Instant::now();
    let bundle = ops.add(&mut group, cohort_kps)?;
    ops.merge_pending(&mut group)?;
    ours.finish(true)?;
    let add_time = started.elapsed();
    let newcomer = &members[size - 1];
    let started = Instant::now();
    let mut joined = newcomer.join(&bundle.welcome)?;
    let join_time = started.elapsed();
    let started = Instant::now();
    follower.process(&mut followed, &bundle.commit)?;
    let process_time = started.elapsed();

    // A help request (about 1 KB of content) to all of them.
    let request = vec![0x42; 1024];
    let started = Instant::now();
    let ciphertext = ops.encrypt(&mut group, &request)?;
    ours.finish(true)?;
    let encrypt_time = started.elapsed();
    let started = Instant::now();
    follower.process(&mut followed, &ciphertext)?;
    newcomer.process(&mut joined, &ciphertext)?;
    let decrypt_time = started.elapsed() / 2;

    let total = size + COHORT;
    println!();
    println!(
        "The network channel ({size} members in batches of {BATCH}, then {COHORT} more at once):"
    );
    println!();
    println!("| figure | value |");
    println!("| --- | ---: |");
    println!(
        "| build to {size} (client-core, durable) / plain openmls | {} ms / {} ms ({:.2}x) |",
        ms(build),
        ms(plain_build),
        build.as_secs_f64() / plain_build.as_secs_f64().max(1e-9)
    );
    println!(
        "| largest Welcome while building | {} |",
        kib(largest_welcome)
    );
    println!(
        "| add {COHORT} to {size}: commit / Welcome | {} / {} ({:.0}% of the relay's 2 MiB) |",
        kib(bundle.commit.len()),
        kib(bundle.welcome.len()),
        100.0 * bundle.welcome.len() as f64 / RELAY_PAYLOAD_LIMIT as f64
    );
    println!(
        "| add {COHORT} to {size}: building the commit | {} ms |",
        ms(add_time)
    );
    println!(
        "| a newcomer joins from that Welcome | {} ms |",
        ms(join_time)
    );
    println!(
        "| an existing member processes the commit | {} ms |",
        ms(process_time)
    );
    println!(
        "| a help request to {total}: ciphertext / encrypt / decrypt | {} / {} ms / {} ms |",
        kib(ciphertext.len()),
        ms(encrypt_time),
        ms(decrypt_time)
    );
    Ok(())
}
