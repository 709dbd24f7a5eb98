//! How MLS state is kept in the local store: keys are
//! `MLS tag || label || JSON(key)`, values are JSON (the self-describing
//! encoding openmls 0.9 supports for stored state), and lists (own leaf
//! nodes, queued proposals, epoch key pairs) are JSON arrays. Everything is
//! written in the store's open operation, so MLS state lands atomically with
//! the client's own records.

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{key, tag, LocalStore, StoreError};

/// A failure of the MLS state storage.
#[derive(Debug, thiserror::Error)]
pub enum MlsStorageError {
    /// The local store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// MLS state could not be encoded or decoded as JSON.
    #[error("cannot encode or decode MLS state")]
    Json(#[from] serde_json::Error),
}

pub(super) type Result<T> = std::result::Result<T, MlsStorageError>;

pub(super) mod label {
    pub const JOIN_CONFIG: &str = "join_config";
    pub const OWN_LEAF_NODES: &str = "own_leaf_nodes";
    pub const PROPOSAL_REFS: &str = "proposal_refs";
    pub const PROPOSAL: &str = "proposal";
    pub const TREE: &str = "tree";
    pub const INTERIM_TRANSCRIPT_HASH: &str = "interim_transcript_hash";
    pub const CONTEXT: &str = "context";
    pub const CONFIRMATION_TAG: &str = "confirmation_tag";
    pub const GROUP_STATE: &str = "group_state";
    pub const MESSAGE_SECRETS: &str = "message_secrets";
    pub const RESUMPTION_PSK_STORE: &str = "resumption_psk_store";
    pub const OWN_LEAF_INDEX: &str = "own_leaf_index";
    pub const GROUP_EPOCH_SECRETS: &str = "group_epoch_secrets";
    pub const SIGNATURE_KEY_PAIR: &str = "signature_key_pair";
    pub const ENCRYPTION_KEY_PAIR: &str = "encryption_key_pair";
    pub const EPOCH_KEY_PAIRS: &str = "epoch_key_pairs";
    pub const KEY_PACKAGE: &str = "key_package";
    pub const PSK: &str = "psk";
}

fn mls_key<K: Serialize + ?Sized>(label: &str, k: &K) -> Result<Vec<u8>> {
    Ok(key(tag::MLS, &[label.as_bytes(), &serde_json::to_vec(k)?]))
}

impl LocalStore {
    pub(super) fn mls_write<K: Serialize + ?Sized, V: Serialize + ?Sized>(
        &self,
        label: &str,
        k: &K,
        v: &V,
    ) -> Result<()> {
        self.put(mls_key(label, k)?, serde_json::to_vec(v)?);
        Ok(())
    }

    pub(super) fn mls_read<K: Serialize + ?Sized, V: DeserializeOwned>(
        &self,
        label: &str,
        k: &K,
    ) -> Result<Option<V>> {
        match self.get(&mls_key(label, k)?)? {
            Some(raw) => Ok(Some(serde_json::from_slice(&raw)?)),
            None => Ok(None),
        }
    }

    pub(super) fn mls_delete<K: Serialize + ?Sized>(&self, label: &str, k: &K) -> Result<()> {
        self.delete(mls_key(label, k)?);
        Ok(())
    }

    pub(super) fn mls_list<K: Serialize + ?Sized, V: DeserializeOwned>(
        &self,
        label: &str,
        k: &K,
    ) -> Result<Vec<V>> {
        Ok(self.mls_read(label, k)?.unwrap_or_default())
    }

    pub(super) fn mls_append<K: Serialize + ?Sized, V: Serialize>(
        &self,
        label: &str,
        k: &K,
        v: &V,
    ) -> Result<()> {
        let mut list: Vec<serde_json::Value> = self.mls_list(label, k)?;
        list.push(serde_json::to_value(v)?);
        self.mls_write(label, k, &list)
    }

    pub(super) fn mls_remove_item<K: Serialize + ?Sized, V: Serialize>(
        &self,
        label: &str,
        k: &K,
        v: &V,
    ) -> Result<()> {
        let mut list: Vec<serde_json::Value> = self.mls_list(label, k)?;
        let item = serde_json::to_value(v)?;
        list.retain(|existing| *existing != item);
        self.mls_write(label, k, &list)
    }
}
