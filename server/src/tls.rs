//! TLS 1.3 through rustls: loading the relay's certificate, and making a
//! self-signed one for development.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the TLS certificate {path}: {detail}")]
    Cert { path: PathBuf, detail: String },
    #[error("cannot read the TLS private key {path}: {detail}")]
    Key { path: PathBuf, detail: String },
    #[error("the TLS certificate and key do not make a valid configuration")]
    Config(#[from] rustls::Error),
    #[error("cannot create a development certificate")]
    Generate(#[from] rcgen::Error),
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The provider every TLS configuration of the relay uses.
pub fn crypto_provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Builds a TLS 1.3-only acceptor from PEM files.
pub fn acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, TlsError> {
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|err| TlsError::Cert {
            path: cert.to_path_buf(),
            detail: err.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Cert {
            path: cert.to_path_buf(),
            detail: "no certificate in the file".into(),
        });
    }
    // The error text of a key parser never contains key bytes.
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|err| TlsError::Key {
        path: key.to_path_buf(),
        detail: err.to_string(),
    })?;
    let config = rustls::ServerConfig::builder_with_provider(crypto_provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(certs, key_der)?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Writes a self-signed certificate for `hosts` and its key into `dir`
/// (`cert.pem`, `key.pem`, the key readable by its owner only). For
/// development and tests: clients must pin it explicitly.
pub fn write_dev_certificate(hosts: &[String], dir: &Path) -> Result<(PathBuf, PathBuf), TlsError> {
    let generated = rcgen::generate_simple_self_signed(hosts.to_vec())?;
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    let write = |path: &Path, contents: String, private: bool| -> Result<(), TlsError> {
        let wrap = |source| TlsError::Write {
            path: path.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(wrap)?;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        if private {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        #[cfg(not(unix))]
        let _ = private;
        use std::io::Write;
        options
            .open(path)
            .and_then(|mut f| f.write_all(contents.as_bytes()))
            .map_err(wrap)
    };
    write(&cert_path, generated.cert.pem(), false)?;
    write(&key_path, generated.signing_key.serialize_pem(), true)?;
    Ok((cert_path, key_path))
}
