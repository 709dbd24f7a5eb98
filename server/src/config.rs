//! The relay's configuration: a TOML file, overridden by environment
//! variables and command-line flags (see `convene-server serve --help`).
//!
//! With no configuration at all the relay serves plain websockets on a
//! loopback port with its data in `./convene-data`, so that trying it out
//! needs nothing. Listening on any other address requires a TLS certificate:
//! the relay refuses to start otherwise.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The default listen address: loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7420";
/// The default data directory, relative to the working directory.
pub const DEFAULT_DATA_DIR: &str = "convene-data";

/// Why the configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the configuration file {path}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the configuration file {path} is not valid")]
    Parse {
        path: PathBuf,
        source: toml::de::Error,
    },
    #[error(
        "refusing to serve plain websockets on {0}, which is not a loopback address: \
         give a TLS certificate and key (--tls-cert and --tls-key), or listen on 127.0.0.1"
    )]
    PlaintextOffLoopback(SocketAddr),
    #[error("a TLS certificate needs its key too (and the other way round): give both --tls-cert and --tls-key")]
    HalfTls,
    #[error("limit {name} is {value}, but it must be {rule}")]
    BadLimit {
        name: &'static str,
        value: u64,
        rule: &'static str,
    },
}

/// Everything the relay needs to run.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address and port to listen on.
    pub listen: SocketAddr,
    /// Directory of the embedded store. Created if missing.
    pub data_dir: PathBuf,
    /// TLS certificate chain and key (PEM). Both or neither.
    pub tls: Option<TlsConfig>,
    pub limits: Limits,
    pub retention: RetentionConfig,
    /// The store's block cache budget (fjall), in bytes.
    pub store_cache_bytes: u64,
}

/// Paths of the TLS certificate chain and private key, in PEM.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Bounds on everything that comes from outside.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest MLS payload (commit, message, Welcome, KeyPackage batch), bytes.
    pub max_payload_bytes: u32,
    /// Largest single KeyPackage, bytes.
    pub max_key_package_bytes: u32,
    /// One-time KeyPackages a device may keep on the relay.
    pub max_key_packages: u32,
    /// Below this many one-time KeyPackages the owner is told to upload more.
    pub key_package_low_watermark: u32,
    /// One-time KeyPackages one device may claim of one other device per
    /// hour (and at once); past it, that device's last-resort KeyPackage
    /// is handed out, so nobody can drain another's stock.
    pub key_package_claims_per_target: u32,
    /// KeyPackages one device may claim per hour in all (and at once);
    /// past it, claims are refused with `ERROR_CODE_RATE_LIMITED`.
    pub key_package_claims_per_claimer: u32,
    /// Groups one device may create per hour (and at once); past it,
    /// `CreateGroup` is refused with `ERROR_CODE_RATE_LIMITED`.
    pub groups_per_device: u32,
    /// Proposals one staff device may send per hour (and at once) to
    /// groups as their manager from outside; past it they are refused with
    /// `ERROR_CODE_RATE_LIMITED`.
    pub outside_proposals_per_device: u32,
    /// Devices one claim or one commit may name.
    pub max_devices_per_request: u32,
    /// Largest attachment, bytes.
    pub max_blob_bytes: u64,
    /// Attachment bytes one user may have on the relay, uploaded or
    /// promised by an upload begun (until they expire); past it
    /// `BeginBlob` is refused with `ERROR_CODE_RATE_LIMITED`.
    pub blob_bytes_per_user: u64,
    /// Attachments one user may have on the relay, complete or not.
    pub blobs_per_user: u32,
    /// Attachment upload and download piece size, bytes.
    pub blob_chunk_bytes: u32,
    /// Sustained requests per second per device.
    pub requests_per_second: u32,
    /// Requests a device may make in a burst above the sustained rate.
    pub request_burst: u32,
    /// Open connections in all.
    pub max_connections: u32,
    /// Connections that have not authenticated yet.
    pub max_unauthenticated: u32,
    /// Connections that have not authenticated yet from one address (an
    /// IPv4 address or an IPv6 /64): below `max_unauthenticated`, so that
    /// one address cannot lock everyone else out.
    pub max_unauthenticated_per_address: u32,
    /// Time a new connection has to authenticate (including TLS), ms.
    pub auth_timeout_ms: u32,
    /// A connection with no traffic for this long is closed, ms.
    pub idle_timeout_ms: u32,
    /// Time a write to a device may take before the device is dropped, ms.
    pub write_timeout_ms: u32,
    /// Undecodable frames tolerated on one connection before it is closed.
    pub max_bad_frames: u32,
    /// Entries a group log keeps at most (at most 262,144: the relay
    /// recognises a resubmitted message by its entry). Past it the oldest
    /// are deleted, fetched or not (the devices that missed them are told,
    /// and rejoin), so that no device can hold a group back.
    pub max_group_backlog: u64,
    /// Welcomes a device's inbox may hold.
    pub max_inbox: u64,
    /// Welcomes from one sending user (all their devices together) a
    /// device's inbox may hold: past it that user's adds of the device are
    /// refused (`rate_limited`) until the device fetches, so one user
    /// cannot fill the inbox and keep everyone else from adding its owner.
    pub max_inbox_per_sender: u64,
    /// Pushes a device may have unacknowledged before the relay waits.
    pub push_window: u32,
    /// Bytes of pushes a device may have unacknowledged before the relay waits.
    pub push_window_bytes: u32,
    /// Websocket read buffer per connection, bytes.
    pub ws_read_buffer_bytes: u32,
    /// Websocket write buffer per connection, bytes.
    pub ws_write_buffer_bytes: u32,
    /// Default invite validity, seconds.
    pub invite_ttl_secs: u32,
    /// Longest invite validity staff may ask for, seconds.
    pub max_invite_ttl_secs: u32,
}

/// How long records that only time makes obsolete are kept.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// A resubmitted commit or staff proposal is answered with its first
    /// outcome for this long, in seconds. A member's message is answered
    /// from the group log while its entry is there (`store::submission_ids`).
    pub submission_secs: u64,
    /// Complete attachments are kept this long.
    pub blob_secs: u64,
    /// Unfinished uploads are abandoned after this long.
    pub incomplete_blob_secs: u64,
    /// A group log entry is kept this long at most, fetched or not, as
    /// messengers keep undelivered messages for about a month.
    pub group_entry_secs: u64,
    /// How often the clean-up runs.
    pub sweep_interval_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: DEFAULT_LISTEN
                .parse()
                .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 7420))),
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            tls: None,
            limits: Limits::default(),
            retention: RetentionConfig::default(),
            store_cache_bytes: 128 * 1024 * 1024,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_payload_bytes: 2 * 1024 * 1024,
            max_key_package_bytes: 16 * 1024,
            max_key_packages: 500,
            key_package_low_watermark: 10,
            key_package_claims_per_target: 10,
            key_package_claims_per_claimer: 5_000,
            groups_per_device: 500,
            outside_proposals_per_device: 2_000,
            max_devices_per_request: 5_000,
            max_blob_bytes: 64 * 1024 * 1024,
            blob_bytes_per_user: 1024 * 1024 * 1024,
            blobs_per_user: 1_000,
            blob_chunk_bytes: 256 * 1024,
            requests_per_second: 200,
            request_burst: 1_000,
            max_connections: 20_000,
            max_unauthenticated: 512,
            max_unauthenticated_per_address: 64,
            auth_timeout_ms: 10_000,
            idle_timeout_ms: 300_000,
            write_timeout_ms: 30_000,
            max_bad_frames: 8,
            max_group_backlog: 100_000,
            max_inbox: 1_000,
            max_inbox_per_sender: 100,
            push_window: 256,
            push_window_bytes: 4 * 1024 * 1024,
            ws_read_buffer_bytes: 1024,
            ws_write_buffer_bytes: 16 * 1024,
            invite_ttl_secs: 7 * 24 * 3600,
            max_invite_ttl_secs: 30 * 24 * 3600,
        }
    }
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            submission_secs: 7 * 24 * 3600,
            blob_secs: 30 * 24 * 3600,
            incomplete_blob_secs: 24 * 3600,
            group_entry_secs: 30 * 24 * 3600,
            sweep_interval_secs: 600,
        }
    }
}

impl Limits {
    /// The largest websocket message the relay accepts: the largest payload
    /// plus room for the envelope around it.
    pub fn max_frame_bytes(&self) -> usize {
        self.max_payload_bytes as usize + 64 * 1024
    }
}

impl Config {
    /// Reads a TOML configuration file.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Checks the rules that no single field can express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.tls.is_none() && !self.listen.ip().is_loopback() {
            return Err(ConfigError::PlaintextOffLoopback(self.listen));
        }
        let l = &self.limits;
        let positive = [
            ("max_payload_bytes", u64::from(l.max_payload_bytes)),
            ("max_key_package_bytes", u64::from(l.max_key_package_bytes)),
            (
                "max_devices_per_request",
                u64::from(l.max_devices_per_request),
            ),
            ("blob_chunk_bytes", u64::from(l.blob_chunk_bytes)),
            ("blob_bytes_per_user", l.blob_bytes_per_user),
            ("blobs_per_user", u64::from(l.blobs_per_user)),
            ("requests_per_second", u64::from(l.requests_per_second)),
            ("request_burst", u64::from(l.request_burst)),
            ("max_connections", u64::from(l.max_connections)),
            ("max_unauthenticated", u64::from(l.max_unauthenticated)),
            (
                "key_package_claims_per_target",
                u64::from(l.key_package_claims_per_target),
            ),
            (
                "key_package_claims_per_claimer",
                u64::from(l.key_package_claims_per_claimer),
            ),
            ("groups_per_device", u64::from(l.groups_per_device)),
            (
                "outside_proposals_per_device",
                u64::from(l.outside_proposals_per_device),
            ),
            (
                "max_unauthenticated_per_address",
                u64::from(l.max_unauthenticated_per_address),
            ),
            ("auth_timeout_ms", u64::from(l.auth_timeout_ms)),
            ("idle_timeout_ms", u64::from(l.idle_timeout_ms)),
            ("write_timeout_ms", u64::from(l.write_timeout_ms)),
            ("max_group_backlog", l.max_group_backlog),
            ("max_inbox", l.max_inbox),
            ("max_inbox_per_sender", l.max_inbox_per_sender),
            ("push_window", u64::from(l.push_window)),
            ("push_window_bytes", u64::from(l.push_window_bytes)),
            ("ws_read_buffer_bytes", u64::from(l.ws_read_buffer_bytes)),
            ("invite_ttl_secs", u64::from(l.invite_ttl_secs)),
        ];
        for (name, value) in positive {
            if value == 0 {
                return Err(ConfigError::BadLimit {
                    name,
                    value,
                    rule: "greater than zero",
                });
            }
        }
        if l.blob_chunk_bytes > l.max_payload_bytes {
            return Err(ConfigError::BadLimit {
                name: "blob_chunk_bytes",
                value: u64::from(l.blob_chunk_bytes),
                rule: "at most max_payload_bytes",
            });
        }
        if l.max_group_backlog > crate::store::MAX_INDEXED_ENTRIES as u64 {
            return Err(ConfigError::BadLimit {
                name: "max_group_backlog",
                value: l.max_group_backlog,
                rule: "at most 262144 (the entries whose resubmission the relay recognises)",
            });
        }
        if l.max_invite_ttl_secs < l.invite_ttl_secs {
            return Err(ConfigError::BadLimit {
                name: "max_invite_ttl_secs",
                value: u64::from(l.max_invite_ttl_secs),
                rule: "at least invite_ttl_secs",
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreadable_file_names_its_cause_once_as_the_source() {
        let err = Config::from_file(Path::new("/nonexistent/convene/relay.toml")).unwrap_err();
        let source = std::error::Error::source(&err).expect("the I/O error is the source");
        assert!(
            !err.to_string().contains(&source.to_string()),
            "{err} repeats its source"
        );
    }

    #[test]
    fn defaults_are_valid_and_loopback() {
        let config = Config::default();
        config.validate().unwrap();
        assert!(config.listen.ip().is_loopback());
    }

    #[test]
    fn refuses_plaintext_off_loopback() {
        let config = Config {
            listen: "0.0.0.0:7420".parse().unwrap(),
            ..Config::default()
        };
        let err = config.validate().unwrap_err();
        assert!(matches!(err, ConfigError::PlaintextOffLoopback(_)));
        assert!(err.to_string().contains("--tls-cert"));
    }

    #[test]
    fn parses_a_partial_file_and_rejects_unknown_keys() {
        let config: Config =
            toml::from_str("listen = \"127.0.0.1:9000\"\n[limits]\nmax_inbox = 5\n").unwrap();
        assert_eq!(config.listen.port(), 9000);
        assert_eq!(config.limits.max_inbox, 5);
        assert_eq!(config.limits.push_window, Limits::default().push_window);
        assert!(toml::from_str::<Config>("lisen = \"x\"").is_err());
    }

    #[test]
    fn a_backlog_past_the_submission_index_is_refused() {
        let mut config = Config::default();
        config.limits.max_group_backlog = crate::store::MAX_INDEXED_ENTRIES as u64;
        config.validate().unwrap();
        config.limits.max_group_backlog += 1;
        assert!(matches!(
            config.validate(),
            Err(ConfigError::BadLimit {
                name: "max_group_backlog",
                ..
            })
        ));
    }

    #[test]
    fn zero_limits_are_refused() {
        let mut config = Config::default();
        config.limits.requests_per_second = 0;
        assert!(matches!(
            config.validate(),
            Err(ConfigError::BadLimit {
                name: "requests_per_second",
                ..
            })
        ));
    }
}
