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

use std::sync::Arc;
use std::time::{Duration, Instant};

use convene_client::mls::{
    capabilities, credential, MlsOps, CIPHERSUITE, GROUP_META_EXTENSION, MAX_PAST_EPOCHS,
};
use convene_client::store::LocalStore;
use convene_client::trust::{Authority, TrustAnchor, UserDetails};
use convene_client::{DeviceKey, Role};
use convene_proto::content::GroupMeta;
use openmls::prelude::tls_codec::{Deserialize as _, Serialize as _};
use openmls::prelude::*;
use openmls_rust_crypto::{OpenMlsRustCrypto, RustCrypto};
use prost::Message as _;

type Error = Box<dyn std::error::Error>;

/// One member's identity, usable on either side.
struct Device {
    key: DeviceKey,
    user: String,
    /// The device's certificate chain: both sides carry the same credential.
    chain: Vec<u8>,
}

/// The organisation every benchmark device belongs to.
fn authority() -> Authority {
    Authority::from_secret_bytes(&[42; 32])
}

impl Device {
    fn new(n: usize) -> Device {
        let key = DeviceKey::generate();
        let details = UserDetails {
            user_id: format!("user{n}"),
            display_name: format!("User {n}"),
            role: Role::Staff,
            sector: String::new(),
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let (_, chain) =
            authority().issue_direct_chain(&details, key.public(), now - 1000, 3_600_000);
        Device {
            key,
            user: details.user_id,
            chain,
        }
    }
}

fn meta_extensions() -> Result<Extensions<GroupContext>, Error> {
    let ext = Extension::Unknown(
        GROUP_META_EXTENSION,
        UnknownExtension(meta().encode_to_vec()),
    );
    Ok(Extensions::single(ext)?)
}

/// Plain openmls: one device with in-memory storage.
struct Plain {
    provider: OpenMlsRustCrypto,
    device: Device,
}

impl Plain {
    fn new(device: Device) -> Plain {
        Plain {
            provider: OpenMlsRustCrypto::default(),
            device,
        }
    }

    fn create(&self, id: &[u8]) -> Result<MlsGroup, Error> {
        Ok(MlsGroup::builder()
            .with_group_id(GroupId::from_slice(id))
            .ciphersuite(CIPHERSUITE)
            .with_capabilities(capabilities())
            .with_group_context_extensions(meta_extensions()?)
            .max_past_epochs(MAX_PAST_EPOCHS)
            .use_ratchet_tree_extension(true)
            .build(
                &self.provider,
                &self.device.key,
                credential(&self.device.chain, &self.device.key),
            )?)
    }

    fn key_package(&self) -> Result<KeyPackage, Error> {
        let bundle = KeyPackage::builder()
            .leaf_node_capabilities(capabilities())
            .build(
                CIPHERSUITE,
                &self.provider,
                &self.device.key,
                credential(&self.device.chain, &self.device.key),
            )?;
        Ok(bundle.key_package().clone())
    }

    /// Adds, merges, and returns the commit and Welcome bytes.
    fn add(&self, group: &mut MlsGroup, kps: &[KeyPackage]) -> Result<(Vec<u8>, Vec<u8>), Error> {
        let (commit, welcome, _) = group.add_members(&self.provider, &self.device.key, kps)?;
        let bytes = (
            commit.tls_serialize_detached()?,
            welcome.tls_serialize_detached()?,
        );
        group.merge_pending_commit(&self.provider)?;
        Ok(bytes)
    }

    fn join(&self, welcome: &[u8]) -> Result<MlsGroup, Error> {
        let MlsMessageBodyIn::Welcome(welcome) =
            MlsMessageIn::tls_deserialize_exact(welcome)?.extract()
        else {
            return Err("not a Welcome".into());
        };
        let config = MlsGroupJoinConfig::builder()
            .max_past_epochs(MAX_PAST_EPOCHS)
            .use_ratchet_tree_extension(true)
            .build();
        Ok(
            StagedWelcome::new_from_welcome(&self.provider, &config, welcome, None)?
                .into_group(&self.provider)?,
        )
    }

    fn process(&self, group: &mut MlsGroup, bytes: &[u8]) -> Result<(), Error> {
        let message = MlsMessageIn::tls_deserialize_exact(bytes)?.try_into_protocol_message()?;
        let processed = group.process_message(&self.provider, message)?;
        if let ProcessedMessageContent::StagedCommitMessage(staged) = processed.into_content() {
            group.merge_staged_commit(&self.provider, *staged)?;
        }
        Ok(())
    }
}

/// client-core: one device over its persistent store.
struct Ours {
    crypto: RustCrypto,
    store: Arc<LocalStore>,
    device: Device,
    _dir: tempfile::TempDir,
}

impl Ours {
    fn new(device: Device) -> Result<Ours, Error> {
        let dir = tempfile::tempdir()?;
        Ok(Ours {
            crypto: RustCrypto::default(),
            store: Arc::new(LocalStore::open(
                dir.path(),
                &convene_client::StoreKey::generate(),
            )?),
            device,
            _dir: dir,
        })
    }

    fn ops(&self) -> MlsOps<'_> {
        MlsOps::new(
            &self.crypto,
            &self.store,
            &self.device.key,
            &self.device.user,
            &self.device.chain,
            TrustAnchor::new(authority().public()),
        )
    }

    /// One KeyPackage of this device, as another device receives it.
    fn key_package(&self, receiver: &Ours) -> Result<KeyPackage, Error> {
        let (mut made, _) = self.ops().key_packages(1, false)?;
        self.store.commit()?;
        let bytes = made.pop().ok_or("no KeyPackage")?;
        let device = self.device.key.public();
        Ok(receiver
            .ops()
            .parse_key_package(&bytes, &self.device.user, &device)?)
    }

    fn finish(&self, durable: bool) -> Result<(), Error> {
        if durable {
            self.store.commit_durably()?;
        } else {
            self.store.commit()?;
        }
        Ok(())
    }
}

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
                let mut group = ops.create_group(&id, &meta(), false)?;
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

fn meta() -> GroupMeta {
    GroupMeta {
        version: 1,
        kind: 1,
        name: "Benchmark cohort".into(),
        direct_pair: Vec::new(),
        membership: 1,
        ..Default::default()
    }
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
    let mut our_a = ours_a.ops().create_group(&id, &meta(), false)?;
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
    let mut group = ours.ops().create_group(b"relay-reads", &meta(), false)?;
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
    relay_reads()
}
