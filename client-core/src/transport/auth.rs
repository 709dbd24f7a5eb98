//! Authenticating a connection, over any [`Connection`].

use bytes::Bytes;
use convene_proto::auth::AuthPurpose;
use convene_proto::relay::{
    request, response, Authenticate, Authenticated, Enrol, GetInvite, InviteDetails,
};

use super::{Connection, TransportError};
use crate::device_key::DeviceKey;

/// Authenticates as an enrolled device. With `expected_relay`, refuses a
/// relay whose identity differs from the one pinned at enrolment. Names no
/// continuity tokens (see [`Continuity`]).
pub async fn authenticate(
    connection: &dyn Connection,
    key: &DeviceKey,
    expected_relay: Option<[u8; 16]>,
) -> Result<Authenticated, TransportError> {
    authenticate_continuing(connection, key, expected_relay, &Continuity::default()).await
}

/// The continuity tokens an authentication names (see `Authenticate` in the
/// protocol): how the relay tells a copied or restored state from the
/// device's own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Continuity {
    /// The token of this device's last authentication; empty the first time.
    pub previous: Vec<u8>,
    /// The token the next authentication will name; stored durably before
    /// this one is sent.
    pub next: Vec<u8>,
    /// This copy takes over from any other (the user chose it).
    pub take_over: bool,
}

/// [`authenticate`], naming `continuity`.
pub async fn authenticate_continuing(
    connection: &dyn Connection,
    key: &DeviceKey,
    expected_relay: Option<[u8; 16]>,
    continuity: &Continuity,
) -> Result<Authenticated, TransportError> {
    let relay_id = connection.relay_id();
    if expected_relay.is_some_and(|expected| expected != relay_id) {
        return Err(TransportError::WrongRelay);
    }
    let signature = key.sign_challenge(AuthPurpose::Authenticate, &relay_id, &connection.nonce());
    let request = request::Kind::Authenticate(Authenticate {
        device_key: Bytes::copy_from_slice(key.public().as_bytes()),
        signature: Bytes::copy_from_slice(&signature),
        continuity: Bytes::copy_from_slice(&continuity.previous),
        next_continuity: Bytes::copy_from_slice(&continuity.next),
        take_over: continuity.take_over,
    });
    authenticated(connection.request(request).await?)
}

/// What a device sends to redeem an invite.
#[derive(Debug, Clone, Default)]
pub struct EnrolRequest {
    /// The relay token derived from the invite's secret.
    pub invite_token: [u8; 32],
    /// Used when the invite does not name the user.
    pub user_id: String,
    /// Used when the invite does not name the user.
    pub display_name: String,
    /// The device's encoded credential chain.
    pub credential: Vec<u8>,
    /// Only with the bootstrap invite: the new organisation authority.
    pub authority_key: Option<[u8; 32]>,
}

/// Reads what an invite holds, before enrolling.
pub async fn get_invite(
    connection: &dyn Connection,
    invite_token: [u8; 32],
) -> Result<InviteDetails, TransportError> {
    let request = request::Kind::GetInvite(GetInvite {
        invite_token: Bytes::copy_from_slice(&invite_token),
    });
    match connection.request(request).await? {
        response::Result::InviteDetails(details) => Ok(details),
        _ => Err(TransportError::Protocol("expected InviteDetails".into())),
    }
}

/// Redeems an invite, registering `key` as the new user's first device; the
/// connection is then authenticated as that device.
pub async fn enrol(
    connection: &dyn Connection,
    key: &DeviceKey,
    enrolment: &EnrolRequest,
) -> Result<Authenticated, TransportError> {
    let signature = key.sign_challenge(
        AuthPurpose::Enrol,
        &connection.relay_id(),
        &connection.nonce(),
    );
    let request = request::Kind::Enrol(Enrol {
        invite_token: Bytes::copy_from_slice(&enrolment.invite_token),
        user_id: enrolment.user_id.clone(),
        display_name: enrolment.display_name.clone(),
        device_key: Bytes::copy_from_slice(key.public().as_bytes()),
        signature: Bytes::copy_from_slice(&signature),
        credential: Bytes::copy_from_slice(&enrolment.credential),
        authority_key: enrolment
            .authority_key
            .map(|key| Bytes::copy_from_slice(&key))
            .unwrap_or_default(),
    });
    authenticated(connection.request(request).await?)
}

fn authenticated(result: response::Result) -> Result<Authenticated, TransportError> {
    match result {
        response::Result::Authenticated(authenticated) => Ok(authenticated),
        _ => Err(TransportError::Protocol("expected Authenticated".into())),
    }
}
