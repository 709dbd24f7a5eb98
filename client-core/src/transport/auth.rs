//! Authenticating a connection, over any [`Connection`].

use bytes::Bytes;
use convene_proto::auth::AuthPurpose;
use convene_proto::relay::{request, response, Authenticate, Authenticated, Enrol};

use super::{Connection, TransportError};
use crate::device_key::DeviceKey;

/// Authenticates as an enrolled device. With `expected_relay`, refuses a
/// relay whose identity differs from the one pinned at enrolment.
pub async fn authenticate(
    connection: &dyn Connection,
    key: &DeviceKey,
    expected_relay: Option<[u8; 16]>,
) -> Result<Authenticated, TransportError> {
    let relay_id = connection.relay_id();
    if expected_relay.is_some_and(|expected| expected != relay_id) {
        return Err(TransportError::WrongRelay);
    }
    let signature = key.sign_challenge(AuthPurpose::Authenticate, &relay_id, &connection.nonce());
    let request = request::Kind::Authenticate(Authenticate {
        device_key: Bytes::copy_from_slice(&key.public()),
        signature: Bytes::copy_from_slice(&signature),
    });
    authenticated(connection.request(request).await?)
}

/// Redeems an invite, registering `key` as the new user's first device; the
/// connection is then authenticated as that device.
pub async fn enrol(
    connection: &dyn Connection,
    key: &DeviceKey,
    invite_code: &str,
    user_id: &str,
    display_name: &str,
) -> Result<Authenticated, TransportError> {
    let signature = key.sign_challenge(
        AuthPurpose::Enrol,
        &connection.relay_id(),
        &connection.nonce(),
    );
    let request = request::Kind::Enrol(Enrol {
        invite_code: invite_code.to_string(),
        user_id: user_id.to_string(),
        display_name: display_name.to_string(),
        device_key: Bytes::copy_from_slice(&key.public()),
        signature: Bytes::copy_from_slice(&signature),
    });
    authenticated(connection.request(request).await?)
}

fn authenticated(result: response::Result) -> Result<Authenticated, TransportError> {
    match result {
        response::Result::Authenticated(authenticated) => Ok(authenticated),
        _ => Err(TransportError::Protocol("expected Authenticated".into())),
    }
}
