//! openmls's storage provider (the `StorageProvider` trait, storage
//! version `CURRENT_VERSION`) over the local store: each of openmls's
//! reads and writes mapped to a labelled record (see `mls_encoding`).

use openmls_traits::storage::{traits, StorageProvider, CURRENT_VERSION};

use super::mls_encoding::{label, MlsStorageError, Result};
use super::LocalStore;

impl StorageProvider<CURRENT_VERSION> for LocalStore {
    type Error = MlsStorageError;

    fn write_mls_join_config<
        G: traits::GroupId<CURRENT_VERSION>,
        C: traits::MlsGroupJoinConfig<CURRENT_VERSION>,
    >(
        &self,
        group_id: &G,
        config: &C,
    ) -> Result<()> {
        self.mls_write(label::JOIN_CONFIG, group_id, config)
    }

    fn append_own_leaf_node<
        G: traits::GroupId<CURRENT_VERSION>,
        L: traits::LeafNode<CURRENT_VERSION>,
    >(
        &self,
        group_id: &G,
        leaf_node: &L,
    ) -> Result<()> {
        self.mls_append(label::OWN_LEAF_NODES, group_id, leaf_node)
    }

    fn queue_proposal<
        G: traits::GroupId<CURRENT_VERSION>,
        R: traits::ProposalRef<CURRENT_VERSION>,
        P: traits::QueuedProposal<CURRENT_VERSION>,
    >(
        &self,
        group_id: &G,
        proposal_ref: &R,
        proposal: &P,
    ) -> Result<()> {
        self.mls_write(label::PROPOSAL, &(group_id, proposal_ref), proposal)?;
        self.mls_append(label::PROPOSAL_REFS, group_id, proposal_ref)
    }

    fn write_tree<G: traits::GroupId<CURRENT_VERSION>, T: traits::TreeSync<CURRENT_VERSION>>(
        &self,
        group_id: &G,
        tree: &T,
    ) -> Result<()> {
        self.mls_write(label::TREE, group_id, tree)
    }

    fn write_interim_transcript_hash<
        G: traits::GroupId<CURRENT_VERSION>,
        H: traits::InterimTranscriptHash<CURRENT_VERSION>,
    >(
        &self,
        group_id: &G,
        hash: &H,
    ) -> Result<()> {
        self.mls_write(label::INTERIM_TRANSCRIPT_HASH, group_id, hash)
    }

    fn write_context<
        G: traits::GroupId<CURRENT_VERSION>,
        C: traits::GroupContext<CURRENT_VERSION>,
    >(
        &self,
        group_id: &G,
        context: &C,
    ) -> Result<()> {
        self.mls_write(label::CONTEXT, group_id, context)
    }

    fn write_confirmation_tag<
        G: traits::GroupId<CURRENT_VERSION>,
        T: traits::ConfirmationTag<CURRENT_VERSION>,
    >(
        &self,
        group_id: &G,
        tag: &T,
    ) -> Result<()> {
        self.mls_write(label::CONFIRMATION_TAG, group_id, tag)
    }

    fn write_group_state<
        S: traits::GroupState<CURRENT_VERSION>,
        G: traits::GroupId<CURRENT_VERSION>,
    >(
        &self,
        group_id: &G,
        state: &S,
    ) -> Result<()> {
        self.mls_write(label::GROUP_STATE, group_id, state)
    }

    fn write_message_secrets<
        G: traits::GroupId<CURRENT_VERSION>,
        M: traits::MessageSecrets<CURRENT_VERSION>,
    >(
        &self,
        group_id: &G,
        secrets: &M,
    ) -> Result<()> {
        self.mls_write(label::MESSAGE_SECRETS, group_id, secrets)
    }

    fn write_resumption_psk_store<
        G: traits::GroupId<CURRENT_VERSION>,
        R: traits::ResumptionPskStore<CURRENT_VERSION>,
    >(
        &self,
        group_id: &G,
        store: &R,
    ) -> Result<()> {
        self.mls_write(label::RESUMPTION_PSK_STORE, group_id, store)
    }

    fn write_own_leaf_index<
        G: traits::GroupId<CURRENT_VERSION>,
        I: traits::LeafNodeIndex<CURRENT_VERSION>,
    >(
        &self,
        group_id: &G,
        index: &I,
    ) -> Result<()> {
        self.mls_write(label::OWN_LEAF_INDEX, group_id, index)
    }

    fn write_group_epoch_secrets<
        G: traits::GroupId<CURRENT_VERSION>,
        S: traits::GroupEpochSecrets<CURRENT_VERSION>,
    >(
        &self,
        group_id: &G,
        secrets: &S,
    ) -> Result<()> {
        self.mls_write(label::GROUP_EPOCH_SECRETS, group_id, secrets)
    }

    fn write_signature_key_pair<
        P: traits::SignaturePublicKey<CURRENT_VERSION>,
        K: traits::SignatureKeyPair<CURRENT_VERSION>,
    >(
        &self,
        public_key: &P,
        key_pair: &K,
    ) -> Result<()> {
        self.mls_write(label::SIGNATURE_KEY_PAIR, public_key, key_pair)
    }

    fn write_encryption_key_pair<
        E: traits::EncryptionKey<CURRENT_VERSION>,
        K: traits::HpkeKeyPair<CURRENT_VERSION>,
    >(
        &self,
        public_key: &E,
        key_pair: &K,
    ) -> Result<()> {
        self.mls_write(label::ENCRYPTION_KEY_PAIR, public_key, key_pair)
    }

    fn write_encryption_epoch_key_pairs<
        G: traits::GroupId<CURRENT_VERSION>,
        E: traits::EpochKey<CURRENT_VERSION>,
        K: traits::HpkeKeyPair<CURRENT_VERSION>,
    >(
        &self,
        group_id: &G,
        epoch: &E,
        leaf_index: u32,
        key_pairs: &[K],
    ) -> Result<()> {
        self.mls_write(
            label::EPOCH_KEY_PAIRS,
            &(group_id, epoch, leaf_index),
            key_pairs,
        )
    }

    fn write_key_package<
        R: traits::HashReference<CURRENT_VERSION>,
        K: traits::KeyPackage<CURRENT_VERSION>,
    >(
        &self,
        hash_ref: &R,
        key_package: &K,
    ) -> Result<()> {
        self.mls_write(label::KEY_PACKAGE, hash_ref, key_package)
    }

    fn write_psk<I: traits::PskId<CURRENT_VERSION>, B: traits::PskBundle<CURRENT_VERSION>>(
        &self,
        psk_id: &I,
        psk: &B,
    ) -> Result<()> {
        self.mls_write(label::PSK, psk_id, psk)
    }

    fn mls_group_join_config<
        G: traits::GroupId<CURRENT_VERSION>,
        C: traits::MlsGroupJoinConfig<CURRENT_VERSION>,
    >(
        &self,
        group_id: &G,
    ) -> Result<Option<C>> {
        self.mls_read(label::JOIN_CONFIG, group_id)
    }

    fn own_leaf_nodes<G: traits::GroupId<CURRENT_VERSION>, L: traits::LeafNode<CURRENT_VERSION>>(
        &self,
        group_id: &G,
    ) -> Result<Vec<L>> {
        self.mls_list(label::OWN_LEAF_NODES, group_id)
    }

    fn queued_proposal_refs<
        G: traits::GroupId<CURRENT_VERSION>,
        R: traits::ProposalRef<CURRENT_VERSION>,
    >(
        &self,
        group_id: &G,
    ) -> Result<Vec<R>> {
        self.mls_list(label::PROPOSAL_REFS, group_id)
    }

    fn queued_proposals<
        G: traits::GroupId<CURRENT_VERSION>,
        R: traits::ProposalRef<CURRENT_VERSION>,
        P: traits::QueuedProposal<CURRENT_VERSION>,
    >(
        &self,
        group_id: &G,
    ) -> Result<Vec<(R, P)>> {
        let refs: Vec<R> = self.mls_list(label::PROPOSAL_REFS, group_id)?;
        let mut proposals = Vec::with_capacity(refs.len());
        for proposal_ref in refs {
            if let Some(proposal) = self.mls_read(label::PROPOSAL, &(group_id, &proposal_ref))? {
                proposals.push((proposal_ref, proposal));
            }
        }
        Ok(proposals)
    }

    fn tree<G: traits::GroupId<CURRENT_VERSION>, T: traits::TreeSync<CURRENT_VERSION>>(
        &self,
        group_id: &G,
    ) -> Result<Option<T>> {
        self.mls_read(label::TREE, group_id)
    }

    fn group_context<
        G: traits::GroupId<CURRENT_VERSION>,
        C: traits::GroupContext<CURRENT_VERSION>,
    >(
        &self,
        group_id: &G,
    ) -> Result<Option<C>> {
        self.mls_read(label::CONTEXT, group_id)
    }

    fn interim_transcript_hash<
        G: traits::GroupId<CURRENT_VERSION>,
        H: traits::InterimTranscriptHash<CURRENT_VERSION>,
    >(
        &self,
        group_id: &G,
    ) -> Result<Option<H>> {
        self.mls_read(label::INTERIM_TRANSCRIPT_HASH, group_id)
    }

    fn confirmation_tag<
        G: traits::GroupId<CURRENT_VERSION>,
        T: traits::ConfirmationTag<CURRENT_VERSION>,
    >(
        &self,
        group_id: &G,
    ) -> Result<Option<T>> {
        self.mls_read(label::CONFIRMATION_TAG, group_id)
    }

    fn group_state<S: traits::GroupState<CURRENT_VERSION>, G: traits::GroupId<CURRENT_VERSION>>(
        &self,
        group_id: &G,
    ) -> Result<Option<S>> {
        self.mls_read(label::GROUP_STATE, group_id)
    }

    fn message_secrets<
        G: traits::GroupId<CURRENT_VERSION>,
        M: traits::MessageSecrets<CURRENT_VERSION>,
    >(
        &self,
        group_id: &G,
    ) -> Result<Option<M>> {
        self.mls_read(label::MESSAGE_SECRETS, group_id)
    }

    fn resumption_psk_store<
        G: traits::GroupId<CURRENT_VERSION>,
        R: traits::ResumptionPskStore<CURRENT_VERSION>,
    >(
        &self,
        group_id: &G,
    ) -> Result<Option<R>> {
        self.mls_read(label::RESUMPTION_PSK_STORE, group_id)
    }

    fn own_leaf_index<
        G: traits::GroupId<CURRENT_VERSION>,
        I: traits::LeafNodeIndex<CURRENT_VERSION>,
    >(
        &self,
        group_id: &G,
    ) -> Result<Option<I>> {
        self.mls_read(label::OWN_LEAF_INDEX, group_id)
    }

    fn group_epoch_secrets<
        G: traits::GroupId<CURRENT_VERSION>,
        S: traits::GroupEpochSecrets<CURRENT_VERSION>,
    >(
        &self,
        group_id: &G,
    ) -> Result<Option<S>> {
        self.mls_read(label::GROUP_EPOCH_SECRETS, group_id)
    }

    fn signature_key_pair<
        P: traits::SignaturePublicKey<CURRENT_VERSION>,
        K: traits::SignatureKeyPair<CURRENT_VERSION>,
    >(
        &self,
        public_key: &P,
    ) -> Result<Option<K>> {
        self.mls_read(label::SIGNATURE_KEY_PAIR, public_key)
    }

    fn encryption_key_pair<
        K: traits::HpkeKeyPair<CURRENT_VERSION>,
        E: traits::EncryptionKey<CURRENT_VERSION>,
    >(
        &self,
        public_key: &E,
    ) -> Result<Option<K>> {
        self.mls_read(label::ENCRYPTION_KEY_PAIR, public_key)
    }

    fn encryption_epoch_key_pairs<
        G: traits::GroupId<CURRENT_VERSION>,
        E: traits::EpochKey<CURRENT_VERSION>,
        K: traits::HpkeKeyPair<CURRENT_VERSION>,
    >(
        &self,
        group_id: &G,
        epoch: &E,
        leaf_index: u32,
    ) -> Result<Vec<K>> {
        self.mls_list(label::EPOCH_KEY_PAIRS, &(group_id, epoch, leaf_index))
    }

    fn key_package<
        R: traits::HashReference<CURRENT_VERSION>,
        K: traits::KeyPackage<CURRENT_VERSION>,
    >(
        &self,
        hash_ref: &R,
    ) -> Result<Option<K>> {
        self.mls_read(label::KEY_PACKAGE, hash_ref)
    }

    fn psk<B: traits::PskBundle<CURRENT_VERSION>, I: traits::PskId<CURRENT_VERSION>>(
        &self,
        psk_id: &I,
    ) -> Result<Option<B>> {
        self.mls_read(label::PSK, psk_id)
    }

    fn remove_proposal<
        G: traits::GroupId<CURRENT_VERSION>,
        R: traits::ProposalRef<CURRENT_VERSION>,
    >(
        &self,
        group_id: &G,
        proposal_ref: &R,
    ) -> Result<()> {
        self.mls_remove_item(label::PROPOSAL_REFS, group_id, proposal_ref)?;
        self.mls_delete(label::PROPOSAL, &(group_id, proposal_ref))
    }

    fn delete_own_leaf_nodes<G: traits::GroupId<CURRENT_VERSION>>(
        &self,
        group_id: &G,
    ) -> Result<()> {
        self.mls_delete(label::OWN_LEAF_NODES, group_id)
    }

    fn delete_group_config<G: traits::GroupId<CURRENT_VERSION>>(&self, group_id: &G) -> Result<()> {
        self.mls_delete(label::JOIN_CONFIG, group_id)
    }

    fn delete_tree<G: traits::GroupId<CURRENT_VERSION>>(&self, group_id: &G) -> Result<()> {
        self.mls_delete(label::TREE, group_id)
    }

    fn delete_confirmation_tag<G: traits::GroupId<CURRENT_VERSION>>(
        &self,
        group_id: &G,
    ) -> Result<()> {
        self.mls_delete(label::CONFIRMATION_TAG, group_id)
    }

    fn delete_group_state<G: traits::GroupId<CURRENT_VERSION>>(&self, group_id: &G) -> Result<()> {
        self.mls_delete(label::GROUP_STATE, group_id)
    }

    fn delete_context<G: traits::GroupId<CURRENT_VERSION>>(&self, group_id: &G) -> Result<()> {
        self.mls_delete(label::CONTEXT, group_id)
    }

    fn delete_interim_transcript_hash<G: traits::GroupId<CURRENT_VERSION>>(
        &self,
        group_id: &G,
    ) -> Result<()> {
        self.mls_delete(label::INTERIM_TRANSCRIPT_HASH, group_id)
    }

    fn delete_message_secrets<G: traits::GroupId<CURRENT_VERSION>>(
        &self,
        group_id: &G,
    ) -> Result<()> {
        self.mls_delete(label::MESSAGE_SECRETS, group_id)
    }

    fn delete_all_resumption_psk_secrets<G: traits::GroupId<CURRENT_VERSION>>(
        &self,
        group_id: &G,
    ) -> Result<()> {
        self.mls_delete(label::RESUMPTION_PSK_STORE, group_id)
    }

    fn delete_own_leaf_index<G: traits::GroupId<CURRENT_VERSION>>(
        &self,
        group_id: &G,
    ) -> Result<()> {
        self.mls_delete(label::OWN_LEAF_INDEX, group_id)
    }

    fn delete_group_epoch_secrets<G: traits::GroupId<CURRENT_VERSION>>(
        &self,
        group_id: &G,
    ) -> Result<()> {
        self.mls_delete(label::GROUP_EPOCH_SECRETS, group_id)
    }

    fn clear_proposal_queue<
        G: traits::GroupId<CURRENT_VERSION>,
        R: traits::ProposalRef<CURRENT_VERSION>,
    >(
        &self,
        group_id: &G,
    ) -> Result<()> {
        let refs: Vec<R> = self.mls_list(label::PROPOSAL_REFS, group_id)?;
        for proposal_ref in &refs {
            self.mls_delete(label::PROPOSAL, &(group_id, proposal_ref))?;
        }
        self.mls_delete(label::PROPOSAL_REFS, group_id)
    }

    fn delete_signature_key_pair<P: traits::SignaturePublicKey<CURRENT_VERSION>>(
        &self,
        public_key: &P,
    ) -> Result<()> {
        self.mls_delete(label::SIGNATURE_KEY_PAIR, public_key)
    }

    fn delete_encryption_key_pair<E: traits::EncryptionKey<CURRENT_VERSION>>(
        &self,
        public_key: &E,
    ) -> Result<()> {
        self.mls_delete(label::ENCRYPTION_KEY_PAIR, public_key)
    }

    fn delete_encryption_epoch_key_pairs<
        G: traits::GroupId<CURRENT_VERSION>,
        E: traits::EpochKey<CURRENT_VERSION>,
    >(
        &self,
        group_id: &G,
        epoch: &E,
        leaf_index: u32,
    ) -> Result<()> {
        self.mls_delete(label::EPOCH_KEY_PAIRS, &(group_id, epoch, leaf_index))
    }

    fn delete_key_package<R: traits::HashReference<CURRENT_VERSION>>(
        &self,
        hash_ref: &R,
    ) -> Result<()> {
        self.mls_delete(label::KEY_PACKAGE, hash_ref)
    }

    fn delete_psk<I: traits::PskId<CURRENT_VERSION>>(&self, psk_id: &I) -> Result<()> {
        self.mls_delete(label::PSK, psk_id)
    }
}
