//! Sealing bytes to an X25519 public key (HPKE base mode, with
//! ChaCha20-Poly1305), from openmls's own crypto provider: used where one
//! device must hand another something the relay carries but must not read
//! (a link bundle; a managed group's GroupInfo).

use openmls::prelude::tls_codec::VLBytes;
use openmls_rust_crypto::RustCrypto;
use openmls_traits::crypto::OpenMlsCrypto;
use openmls_traits::types::{
    HpkeAeadType, HpkeCiphertext, HpkeConfig, HpkeKdfType, HpkeKemType, HpkePrivateKey,
};
use zeroize::Zeroizing;

const HPKE: HpkeConfig = HpkeConfig(
    HpkeKemType::DhKem25519,
    HpkeKdfType::HkdfSha256,
    HpkeAeadType::ChaCha20Poly1305,
);
/// An X25519 KEM output is 32 bytes.
const KEM_OUTPUT_LEN: usize = 32;

/// An HPKE key pair; the private half is wiped when dropped.
pub struct SealingKey {
    private: HpkePrivateKey,
    public: Vec<u8>,
}

/// Why sealing or opening failed (deliberately without detail).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealError;

impl SealingKey {
    pub fn generate() -> Result<SealingKey, SealError> {
        let seed = Zeroizing::new(crate::random_bytes::<32>());
        SealingKey::derive(seed.as_slice())
    }

    /// The key pair `seed` (at least 32 secret bytes) derives (HPKE's
    /// DeriveKeyPair, RFC 9180 section 7.1.3): the same seed, the same
    /// pair.
    pub fn derive(seed: &[u8]) -> Result<SealingKey, SealError> {
        let pair = RustCrypto::default()
            .derive_hpke_keypair(HPKE, seed)
            .map_err(|_| SealError)?;
        Ok(SealingKey {
            private: pair.private,
            public: pair.public,
        })
    }

    /// A key pair kept as its two halves.
    pub fn from_parts(private: &[u8], public: &[u8]) -> SealingKey {
        SealingKey {
            private: HpkePrivateKey::from(private),
            public: public.to_vec(),
        }
    }

    pub fn public(&self) -> &[u8] {
        &self.public
    }

    /// The private half, for storing (in the encrypted local store).
    pub fn private(&self) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(self.private.to_vec())
    }

    /// Opens what [`seal`] sealed to this key with the same `info` and
    /// `aad`.
    pub fn open(
        &self,
        info: &[u8],
        aad: &[u8],
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, SealError> {
        if sealed.len() <= KEM_OUTPUT_LEN {
            return Err(SealError);
        }
        let (kem_output, ciphertext) = sealed.split_at(KEM_OUTPUT_LEN);
        let input = HpkeCiphertext {
            kem_output: VLBytes::new(kem_output.to_vec()),
            ciphertext: VLBytes::new(ciphertext.to_vec()),
        };
        RustCrypto::default()
            .hpke_open(HPKE, &input, &self.private, info, aad)
            .map(Zeroizing::new)
            .map_err(|_| SealError)
    }
}

/// Seals `plain` to `public`, bound to `info` and `aad`: the KEM output
/// followed by the ciphertext.
pub fn seal(public: &[u8], info: &[u8], aad: &[u8], plain: &[u8]) -> Result<Vec<u8>, SealError> {
    let sealed = RustCrypto::default()
        .hpke_seal(HPKE, public, info, aad, plain)
        .map_err(|_| SealError)?;
    let mut out = sealed.kem_output.as_slice().to_vec();
    if out.len() != KEM_OUTPUT_LEN {
        return Err(SealError);
    }
    out.extend_from_slice(sealed.ciphertext.as_slice());
    Ok(out)
}
