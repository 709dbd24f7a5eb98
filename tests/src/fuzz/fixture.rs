//! The state the decoders need (an organisation, two devices in a managed
//! group, a link key) and valid inputs of each kind to start mutating from.
//!
//! Built once per process: key generation and a group are too slow to
//! repeat for every input. Inputs that change state are rolled back, so
//! the fixture stays the same from one input to the next.

use std::sync::{Mutex, OnceLock};

use bytes::Bytes;
use convene_client::link::BundleKey;
use convene_client::mls::{CommitBundle, MlsOps};
use convene_client::store::{LocalStore, StoreKey};
use convene_client::trust::{Authority, TrustAnchor, UserDetails};
use convene_client::{DeviceKey, Role};
use convene_proto::content::{content, Content, GroupKind, GroupMeta, MembershipPolicy, Text};
use convene_proto::relay::{request, Envelope};
use openmls::prelude::tls_codec::Serialize;
use openmls_rust_crypto::RustCrypto;
use prost::Message;

/// The id of the fixture's group.
pub const GROUP_ID: &[u8] = b"fuzz-group";

/// [`GROUP_ID`] as a group id.
pub fn group_id() -> convene_proto::ids::GroupId {
    convene_proto::ids::GroupId::from_field(GROUP_ID).expect("a valid group id")
}
const AUTHORITY_SECRET: [u8; 32] = [42; 32];

/// The organisation authority every fixture credential chains to.
pub fn authority_key() -> [u8; 32] {
    Authority::from_secret_bytes(&AUTHORITY_SECRET).public()
}

/// One device: its key, credential chain and local store.
pub struct Device {
    user: String,
    key: DeviceKey,
    chain: Vec<u8>,
    _dir: tempfile::TempDir,
}

/// Two staff devices, ann and bob, in one managed group that ann manages.
pub struct Fixture {
    crypto: RustCrypto,
    ann: Device,
    bob: Device,
    ann_store: LocalStore,
    /// Bob's store: decoders that change state roll it back.
    pub bob_store: LocalStore,
    /// The key link bundles are sealed under (for the new device [3; 32]).
    pub bundle_key: BundleKey,
}

/// Valid inputs of every kind, for mutation.
#[derive(Debug, Clone, Default)]
pub struct Seeds {
    pub envelopes: Vec<Vec<u8>>,
    pub invite_codes: Vec<Vec<u8>>,
    pub trust: Vec<Vec<u8>>,
    pub contents: Vec<Vec<u8>>,
    pub link_bundles: Vec<Vec<u8>>,
    pub key_packages: Vec<Vec<u8>>,
    pub mls_messages: Vec<Vec<u8>>,
    pub welcomes: Vec<Vec<u8>>,
    pub group_infos: Vec<Vec<u8>>,
}

fn device(user: &str) -> anyhow::Result<(Device, LocalStore)> {
    let dir = tempfile::tempdir()?;
    let store = LocalStore::open(dir.path(), &StoreKey::from_bytes([1; 32]))?;
    let key = DeviceKey::generate();
    let details = UserDetails {
        user_id: user.into(),
        display_name: user.into(),
        role: Role::Staff,
        sector: String::new(),
        certified: Default::default(),
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as u64;
    let (_, chain) = Authority::from_secret_bytes(&AUTHORITY_SECRET).issue_direct_chain(
        &details,
        key.public(),
        now - 1000,
        24 * 3_600_000,
    );
    let device = Device {
        user: user.into(),
        key,
        chain,
        _dir: dir,
    };
    Ok((device, store))
}

impl Fixture {
    fn ops<'a>(&'a self, device: &'a Device, store: &'a LocalStore) -> MlsOps<'a> {
        MlsOps::new(
            &self.crypto,
            store,
            &device.key,
            &device.user,
            &device.chain,
            TrustAnchor::new(authority_key()),
        )
    }

    /// Ann's MLS operations (the group's creator and manager).
    pub fn ann(&self) -> MlsOps<'_> {
        self.ops(&self.ann, &self.ann_store)
    }

    /// Bob's MLS operations (a member).
    pub fn bob(&self) -> MlsOps<'_> {
        self.ops(&self.bob, &self.bob_store)
    }

    pub fn ann_device(&self) -> [u8; 32] {
        self.ann.key.public().0
    }

    pub fn bob_device(&self) -> [u8; 32] {
        self.bob.key.public().0
    }

    fn build() -> anyhow::Result<(Fixture, Seeds)> {
        let (ann, ann_store) = device("ann")?;
        let (bob, bob_store) = device("bob")?;
        let fixture = Fixture {
            crypto: RustCrypto::default(),
            ann,
            bob,
            ann_store,
            bob_store,
            bundle_key: BundleKey::derive(&[9; 32], &[3; 32]),
        };
        let seeds = fixture.seeds()?;
        Ok((fixture, seeds))
    }

    /// Makes the group (ann adds bob) and collects one valid input of
    /// each kind along the way.
    fn seeds(&self) -> anyhow::Result<Seeds> {
        let mut seeds = Seeds::default();
        let (kps, _) = self.bob().key_packages(2, false)?;
        self.bob_store.commit_durably()?;
        seeds.key_packages = kps.clone();

        let meta = GroupMeta {
            version: 1,
            kind: GroupKind::Cohort as i32,
            name: "Cohort".into(),
            membership: MembershipPolicy::Staff as i32,
            ..Default::default()
        };
        let mut group = self.ann().create_group(&group_id(), &meta, true)?;
        let kp = self
            .ann()
            .parse_key_package(&kps[0], "bob", &self.bob_device())?;
        let CommitBundle { welcome, .. } = self.ann().add(&mut group, &[kp])?;
        self.ann().merge_pending(&mut group)?;
        self.ann_store.commit_durably()?;
        seeds.welcomes.push(welcome.clone());
        self.bob().join(&welcome, &Default::default())?;
        self.bob_store.commit_durably()?;

        let info = group.export_group_info(&self.crypto, &self.ann.key, true)?;
        seeds.group_infos.push(info.tls_serialize_detached()?);
        seeds.trust.push(self.ann.chain.clone());
        let revocation = Authority::from_secret_bytes(&AUTHORITY_SECRET).revoke("bob", None, 1);
        seeds.trust.push(revocation.encode_to_vec());

        for i in 0..4u8 {
            let text = Content {
                message_id: Bytes::from(vec![i; 16]),
                sent_at_ms: 1,
                body: Some(content::Body::Text(Text {
                    text: format!("message {i}"),
                })),
            }
            .encode_to_vec();
            seeds
                .mls_messages
                .push(self.ann().encrypt(&mut group, &text)?);
            seeds.contents.push(text);
        }
        self.ann_store.commit_durably()?;

        let bundle = convene_proto::trust::LinkBundle::default();
        seeds.link_bundles.push(self.bundle_key.seal(&bundle)?);
        seeds.invite_codes.push(
            convene_proto::invite::Invite {
                secret: convene_proto::invite::InviteSecret::generate(),
                authority_fingerprint: Some([5; convene_proto::invite::FINGERPRINT_LEN]),
                relay_url: Some("wss://relay.example:7420".into()),
            }
            .to_code()
            .into_bytes(),
        );
        for kind in [
            request::Kind::Ping(Default::default()),
            crate::device::TestDevice::message_request(
                GROUP_ID,
                0,
                Bytes::from_static(&[1; 16]),
                b"x",
            ),
        ] {
            seeds
                .envelopes
                .push(convene_proto::encode_envelope(&Envelope::request(1, kind)).to_vec());
        }
        Ok(seeds)
    }
}

static FIXTURE: OnceLock<Mutex<Fixture>> = OnceLock::new();
static SEEDS: OnceLock<Seeds> = OnceLock::new();

fn init() -> &'static Mutex<Fixture> {
    FIXTURE.get_or_init(|| match Fixture::build() {
        Ok((fixture, seeds)) => {
            let _ = SEEDS.set(seeds);
            Mutex::new(fixture)
        }
        // The fixture is made of our own valid inputs: failing here is a
        // bug in the harness, not a finding.
        Err(err) => panic!("the fuzz fixture could not be built: {err:#}"),
    })
}

/// Runs `f` with the fixture (built on first use).
pub fn with_fixture<T>(f: impl FnOnce(&Fixture) -> T) -> T {
    let fixture = init()
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    f(&fixture)
}

/// Valid inputs of every kind (building the fixture on first use).
pub fn seeds() -> &'static Seeds {
    init();
    SEEDS.get_or_init(Seeds::default)
}
