//! Decoders of bytes that come from outside a device or the relay: the
//! wire envelope, invite codes and ids (proto); credential chains,
//! revocations, link bundles, message content, KeyPackages, MLS messages,
//! Welcomes and GroupInfos (client-core).

use bytes::Bytes;
use convene_client::mls::content::read_content;
use convene_client::trust::TrustAnchor;
use convene_proto::trust::Signed;
use prost::Message;

use super::fixture::with_fixture;

/// The relay's and the client's first decoder: one websocket message.
pub fn envelope(data: &[u8]) {
    let _ = convene_proto::decode_envelope(Bytes::copy_from_slice(data));
}

/// An invite code as pasted by a person, and the ids a device may claim.
pub fn invite_and_ids(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(invite) = convene_proto::invite::Invite::from_code(&text) {
        // Whatever reads must write back to a code that reads the same.
        let again = convene_proto::invite::Invite::from_code(&invite.to_code());
        assert_eq!(
            again.as_ref(),
            Ok(&invite),
            "an invite code did not round-trip"
        );
    }
    let _ = convene_proto::ids::check_user_id(&text);
    let _ = convene_proto::ids::check_display_name(&text);
    let _ = convene_proto::ids::GroupId::from_field(data);
}

/// A credential chain (in every MLS leaf) and a signed revocation, against
/// a fixed organisation authority.
pub fn trust(data: &[u8]) {
    let anchor = TrustAnchor::new(super::fixture::authority_key());
    let _ = anchor.verify(data, &[7; 32], 1);
    let _ = convene_client::trust::claimed_identity(data);
    let _ = convene_client::trust::claimed_user_id(data);
    if let Ok(signed) = Signed::decode(data) {
        let _ = anchor.verify_revocation(&signed);
    }
}

/// The plaintext of an application message, after MLS decrypted it.
pub fn content(data: &[u8]) {
    let _ = read_content(data);
}

/// A sealed link bundle (what an approving device sends a new one).
pub fn link_bundle(data: &[u8]) {
    with_fixture(|f| {
        let _ = f.bundle_key.open(data);
    });
}

/// A KeyPackage as claimed from the relay.
pub fn key_package(data: &[u8]) {
    with_fixture(|f| {
        let _ = f.ann().parse_key_package(data, "bob", &f.bob_device());
    });
}

/// A group message as the relay delivers it, processed by a member.
pub fn mls_message(data: &[u8]) {
    with_fixture(|f| {
        let ops = f.bob();
        if let Ok(Some(mut group)) = ops.load(&super::fixture::group_id()) {
            let _ = ops.process(&mut group, data);
            // Nothing a hostile message does may outlive the attempt.
            f.bob_store.rollback();
        }
    });
}

/// A Welcome, as if the relay delivered it to a device.
pub fn welcome(data: &[u8]) {
    with_fixture(|f| {
        let _ = f.bob().join(data, &Default::default());
        f.bob_store.rollback();
    });
}

/// A managed group's GroupInfo, as its manager reads it.
pub fn group_info(data: &[u8]) {
    with_fixture(|f| {
        let crypto = openmls_rust_crypto::RustCrypto::default();
        let anchor = TrustAnchor::new(super::fixture::authority_key());
        let _ = convene_client::mls::managed::read_group_info(
            &crypto,
            &anchor,
            &super::fixture::group_id(),
            data,
            &f.ann_device(),
        );
    });
}
