//! TLS for `wss://` relays: either the public web roots, or exactly one
//! pinned certificate (a relay with a self-signed or private certificate).

use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};

use super::TransportError;

/// Which certificates a `wss://` relay may present.
#[derive(Debug, Clone, Default)]
pub enum TrustRoots {
    /// Certificates chaining to the usual public certificate authorities.
    #[default]
    WebPki,
    /// Only these certificates (e.g. the relay's own self-signed one).
    Pinned(Vec<CertificateDer<'static>>),
}

impl TrustRoots {
    /// Pins the certificates in a PEM file.
    pub fn pinned_pem(pem: &[u8]) -> Result<Self, TransportError> {
        use rustls::pki_types::pem::PemObject;
        let certs = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|err| {
                TransportError::Tls(format!("cannot read the pinned certificate: {err}"))
            })?;
        if certs.is_empty() {
            return Err(TransportError::Tls(
                "the pinned certificate file holds no certificate".into(),
            ));
        }
        Ok(TrustRoots::Pinned(certs))
    }
}

/// A TLS 1.3 client configuration trusting `roots`.
pub(crate) fn client_config(roots: &TrustRoots) -> Result<Arc<ClientConfig>, TransportError> {
    let mut store = RootCertStore::empty();
    match roots {
        TrustRoots::WebPki => store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        TrustRoots::Pinned(certs) => {
            for cert in certs {
                store.add(cert.clone()).map_err(|err| {
                    TransportError::Tls(format!("cannot pin the certificate: {err}"))
                })?;
            }
        }
    }
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|err| TransportError::Tls(err.to_string()))?
            .with_root_certificates(store)
            .with_no_client_auth();
    Ok(Arc::new(config))
}
