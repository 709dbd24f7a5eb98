//! client-core's MLS operations next to plain openmls, in the same run,
//! the key lifecycle's (update commits, KeyPackage rotation) among them,
//! and what the relay's reading of clear MLS fields costs.
//!
//! "plain" is openmls 0.9 with its in-memory storage, configured as Convene
//! configures groups; "client-core" is the same operation through
//! `convene_client::mls::MlsOps` over the persistent local store, ending
//! with the store's atomic commit (one sled batch). "durable" adds the
//! fsync that the client does before it tells the relay anything. Each
//! figure is the median of several runs; the ratio is client-core over
//! plain.
//!
//! ```sh
//! cargo bench -p convene-client-core --bench mls
//! ```

use std::time::{Duration, Instant};

use openmls::prelude::tls_codec::Serialize as _;
use openmls::prelude::*;

type Error = Box<dyn std::error::Error>;

mod network;
mod sides;
use sides::{meta, Device, Ours, Plain};

/// The median time of `runs` runs of `op` (each after `setup`).
fn median<S, T>(
    runs: usize,
    mut setup: impl FnMut() -> Result<S, Error>,
    mut op: impl FnMut(S) -> Result<T, Error>,
) -> Result<Duration, Error> {
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let input = setup()?;
        let started = Instant::now();
        op(input)?;
        times.push(started.elapsed());
    }
    times.sort();
    Ok(times[times.len() / 2])
}

struct Row {
    name: String,
    plain: Duration,
    ours: Duration,
    durable: Duration,
}

fn create_rows(size: usize, runs: usize) -> Result<Row, Error> {
    let plain = Plain::new(Device::new(0));
    let ours = Ours::new(Device::new(0))?;
    let members: Vec<Plain> = (1..size).map(|n| Plain::new(Device::new(n))).collect();
    let kps: Vec<KeyPackage> = members
        .iter()
        .map(Plain::key_package)
        .collect::<Result<_, _>>()?;
    let ids = || rand::random::<[u8; 16]>();
    let plain_time = median(
        runs,
        || Ok(ids()),
        |id| {
            let mut group = plain.create(&id)?;
            plain.add(&mut group, &kps)
        },
    )?;
    let timed = |durable: bool| {
        median(
            runs,
            || Ok(ids()),
            |id| {
                let ops = ours.ops();
                let mut group =
                    ops.create_group(&convene_proto::ids::GroupId::from(id), &meta(), false)?;
                ops.add(&mut group, &kps)?;
                ops.merge_pending(&mut group)?;
                ours.finish(durable)
            },
        )
    };
    let (ours_time, durable_time) = (timed(false)?, timed(true)?);
    Ok(Row {
        name: format!("create a group of {size}"),
        plain: plain_time,
        ours: ours_time,
        durable: durable_time,
    })
}

/// The median of each column of `samples`.
fn medians<const N: usize>(mut samples: Vec<[Duration; N]>) -> [Duration; N] {
    let mut out = [Duration::ZERO; N];
    for (i, slot) in out.iter_mut().enumerate() {
        samples.sort_by_key(|s| s[i]);
        *slot = samples[samples.len() / 2][i];
    }
    out
}

/// In a group of `size`, a committer A and a receiving member B on each
/// side: add a member (A), commit and process (A then B), encrypt and
/// decrypt 256 bytes (A then B).
fn steady_rows(size: usize, runs: usize) -> Result<Vec<Row>, Error> {
    let id = rand::random::<[u8; 16]>();
    let fresh = || Plain::new(Device::new(100_000)).key_package();
    let payload = vec![0x5a; 256];

    // Plain openmls.
    let plain_a = Plain::new(Device::new(0));
    let plain_b = Plain::new(Device::new(1));
    let others: Vec<Plain> = (2..size).map(|n| Plain::new(Device::new(n))).collect();
    let mut kps = vec![plain_b.key_package()?];
    kps.extend(
        others
            .iter()
            .map(Plain::key_package)
            .collect::<Result<Vec<_>, _>>()?,
    );
    let mut group_a = plain_a.create(&id)?;
    let (_, welcome) = plain_a.add(&mut group_a, &kps)?;
    let mut group_b = plain_b.join(&welcome)?;
    let mut plain_commit = Vec::new();
    for _ in 0..runs {
        let kp = fresh()?;
        let started = Instant::now();
        let (commit, _) = plain_a.add(&mut group_a, &[kp])?;
        let a = started.elapsed();
        plain_b.process(&mut group_b, &commit)?;
        plain_commit.push([a, started.elapsed()]);
    }
    let mut plain_update = Vec::new();
    for _ in 0..runs {
        let started = Instant::now();
        let bundle = group_a.self_update(
            &plain_a.provider,
            &plain_a.device.key,
            LeafNodeParameters::default(),
        )?;
        group_a.merge_pending_commit(&plain_a.provider)?;
        let a = started.elapsed();
        plain_b.process(
            &mut group_b,
            &bundle.into_commit().tls_serialize_detached()?,
        )?;
        plain_update.push([a, started.elapsed()]);
    }
    let mut plain_message = Vec::new();
    for _ in 0..runs * 10 {
        let started = Instant::now();
        let message = group_a.create_message(&plain_a.provider, &plain_a.device.key, &payload)?;
        plain_b.process(&mut group_b, &message.tls_serialize_detached()?)?;
        plain_message.push([started.elapsed()]);
    }

    // client-core, without and with the fsync.
    let ours_a = Ours::new(Device::new(0))?;
    let ours_b = Ours::new(Device::new(1))?;
    let mut our_kps = vec![ours_b.key_package(&ours_a)?];
    our_kps.extend(kps[1..].iter().cloned());
    let mut our_a =
        ours_a
            .ops()
            .create_group(&convene_proto::ids::GroupId::from(id), &meta(), false)?;
    let bundle = ours_a.ops().add(&mut our_a, &our_kps)?;
    ours_a.ops().merge_pending(&mut our_a)?;
    ours_a.finish(false)?;
    let mut our_b = ours_b.ops().join(&bundle.welcome, &Default::default())?;
    ours_b.finish(false)?;
    let mut ours_commit = Vec::new();
    let mut ours_update = Vec::new();
    let mut ours_message = Vec::new();
    for durable in [false, true] {
        let mut commits = Vec::new();
        for _ in 0..runs {
            let kp = fresh()?;
            let started = Instant::now();
            let commit = ours_a.ops().add(&mut our_a, &[kp])?;
            ours_a.ops().merge_pending(&mut our_a)?;
            ours_a.finish(durable)?;
            let a = started.elapsed();
            ours_b.ops().process(&mut our_b, &commit.commit)?;
            ours_b.finish(durable)?;
            commits.push([a, started.elapsed()]);
        }
        ours_commit.push(medians(commits));
        let mut updates = Vec::new();
        for _ in 0..runs {
            let started = Instant::now();
            let update = ours_a.ops().update(&mut our_a, None)?;
            ours_a.ops().merge_pending(&mut our_a)?;
            ours_a.finish(durable)?;
            let a = started.elapsed();
            ours_b.ops().process(&mut our_b, &update.commit)?;
            ours_b.finish(durable)?;
            updates.push([a, started.elapsed()]);
        }
        ours_update.push(medians(updates));
        let mut messages = Vec::new();
        for _ in 0..runs * 10 {
            let started = Instant::now();
            let message = ours_a.ops().encrypt(&mut our_a, &payload)?;
            ours_a.finish(durable)?;
            ours_b.ops().process(&mut our_b, &message)?;
            ours_b.finish(durable)?;
            messages.push([started.elapsed()]);
        }
        ours_message.push(medians(messages));
    }
    let [plain_add, plain_both] = medians(plain_commit);
    let [plain_renew, plain_renewed] = medians(plain_update);
    let [plain_msg] = medians(plain_message);
    Ok(vec![
        Row {
            name: format!("add a member (group of {size})"),
            plain: plain_add,
            ours: ours_commit[0][0],
            durable: ours_commit[1][0],
        },
        Row {
            name: format!("commit and process a commit (group of {size})"),
            plain: plain_both,
            ours: ours_commit[0][1],
            durable: ours_commit[1][1],
        },
        Row {
            name: format!("renew one's leaf: update commit (group of {size})"),
            plain: plain_renew,
            ours: ours_update[0][0],
            durable: ours_update[1][0],
        },
        Row {
            name: format!("update commit and process it (group of {size})"),
            plain: plain_renewed,
            ours: ours_update[0][1],
            durable: ours_update[1][1],
        },
        Row {
            name: format!("encrypt and decrypt 256 B (group of {size})"),
            plain: plain_msg,
            ours: ours_message[0][0],
            durable: ours_message[1][0],
        },
    ])
}

/// A KeyPackage rotation: 30 one-time KeyPackages and a last-resort one.
fn rotation_row(runs: usize) -> Result<Row, Error> {
    let plain = Plain::new(Device::new(0));
    let ours = Ours::new(Device::new(0))?;
    let plain_time = median(
        runs,
        || Ok(()),
        |()| {
            for _ in 0..31 {
                plain.key_package()?;
            }
            Ok(())
        },
    )?;
    let lifetime = convene_client::lifecycle::MAX_KEY_PACKAGE_LIFETIME;
    let timed = |durable: bool| {
        median(
            runs,
            || Ok(()),
            |()| {
                ours.ops().key_packages_for(30, true, lifetime)?;
                ours.finish(durable)
            },
        )
    };
    let (ours_time, durable_time) = (timed(false)?, timed(true)?);
    Ok(Row {
        name: "rotate KeyPackages: make 31".into(),
        plain: plain_time,
        ours: ours_time,
        durable: durable_time,
    })
}

/// What the relay's reading of clear MLS fields costs, per call.
fn relay_reads() -> Result<(), Error> {
    use convene_proto::mls_frame::{read_key_package, read_message_header};
    let ours = Ours::new(Device::new(0))?;
    let (kps, _) = ours.ops().key_packages(1, false)?;
    let kp = kps.first().ok_or("no KeyPackage")?.clone();
    let mut group = ours.ops().create_group(
        &convene_proto::ids::GroupId::from(*b"relay-reads-0000"),
        &meta(),
        false,
    )?;
    let message = ours.ops().encrypt(&mut group, &[0x5a; 256])?;
    let per_call = |f: &dyn Fn() -> bool| {
        const CALLS: u32 = 100_000;
        let started = Instant::now();
        let mut ok = 0;
        for _ in 0..CALLS {
            ok += usize::from(std::hint::black_box(f()));
        }
        (started.elapsed() / CALLS, ok)
    };
    let (header, _) = per_call(&|| read_message_header(&message).is_ok());
    let (lifetime, _) = per_call(&|| read_key_package(&kp).is_ok());
    println!();
    println!("Relay, per call: reading a message's MLS framing {header:?}; a KeyPackage's lifetime {lifetime:?}.");
    Ok(())
}

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1000.0)
}

fn main() -> Result<(), Error> {
    // `cargo bench` passes --bench; a quick run (`-- --quick`) uses fewer runs.
    let quick = std::env::args().any(|a| a == "--quick");
    let runs = if quick { 3 } else { 15 };
    let mut rows = vec![
        create_rows(33, runs)?,
        create_rows(1_200, if quick { 1 } else { 3 })?,
    ];
    rows.extend(steady_rows(33, runs)?);
    rows.push(rotation_row(runs)?);
    println!("| operation | plain openmls (ms) | client-core (ms) | ratio | client-core + fsync (ms) | ratio |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    for row in &rows {
        let ratio = |d: Duration| d.as_secs_f64() / row.plain.as_secs_f64().max(1e-9);
        println!(
            "| {} | {} | {} | {:.2}x | {} | {:.2}x |",
            row.name,
            ms(row.plain),
            ms(row.ours),
            ratio(row.ours),
            ms(row.durable),
            ratio(row.durable)
        );
    }
    relay_reads()?;
    network::network_figures(if quick { 200 } else { 1_200 })
}
