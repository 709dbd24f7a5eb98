//! The opaque bytes the generator sends as ciphertext.
//!
//! A load message is framed with the clear MLS header the relay reads
//! (group id, epoch, content type: `convene_proto::mls_frame`); its body
//! starts with a marker and the time it was meant to leave
//! (microseconds on the generator's clock), so that whoever receives it can
//! measure send-to-delivery latency; the rest is incompressible filler, as
//! real ciphertext is. Other pushes (commits, Welcomes) lack the marker and
//! are not counted.

use std::sync::OnceLock;
use std::time::Instant;

use bytes::{BufMut, Bytes, BytesMut};
use convene_proto::mls_frame::{frame_private_message, private_message_body, ContentType};
use rand::RngCore;

const MARKER: &[u8; 4] = b"LOAD";
const HEADER: usize = MARKER.len() + 8;
const FILLER: usize = 64 * 1024;

fn clock() -> &'static Instant {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now)
}

fn filler() -> &'static [u8] {
    static FILL: OnceLock<Vec<u8>> = OnceLock::new();
    FILL.get_or_init(|| {
        let mut fill = vec![0u8; FILLER];
        rand::rngs::OsRng.fill_bytes(&mut fill);
        fill
    })
}

/// Microseconds since the generator started.
pub fn now_us() -> u64 {
    clock().elapsed().as_micros() as u64
}

/// A message for `group_id` at `epoch` whose body is `size` bytes (at
/// least the marker and stamp) stamped `sent_us`.
pub fn make(group_id: &[u8], epoch: u64, size: usize, sent_us: u64) -> Bytes {
    Bytes::from(frame_private_message(
        group_id,
        epoch,
        ContentType::Application,
        &body(size, sent_us),
    ))
}

fn body(size: usize, sent_us: u64) -> Bytes {
    let size = size.max(HEADER);
    let mut out = BytesMut::with_capacity(size);
    out.put_slice(MARKER);
    out.put_u64(sent_us);
    let fill = filler();
    let mut left = size - HEADER;
    // Start somewhere different each time, so no two payloads are alike.
    let mut at = (sent_us as usize).wrapping_mul(2_654_435_761) % FILLER;
    while left > 0 {
        let take = left.min(FILLER - at);
        out.put_slice(&fill[at..at + take]);
        left -= take;
        at = 0;
    }
    out.freeze()
}

/// The stamp of a load payload; `None` for anything else.
pub fn sent_at(payload: &[u8]) -> Option<u64> {
    let rest = private_message_body(payload).ok()?.strip_prefix(MARKER)?;
    let stamp: [u8; 8] = rest.get(..8)?.try_into().ok()?;
    Some(u64::from_be_bytes(stamp))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_round_trip_and_sizes_hold() {
        let payload = make(b"g", 3, 256, 12_345);
        assert_eq!(private_message_body(&payload).unwrap().len(), 256);
        assert_eq!(sent_at(&payload), Some(12_345));
        assert_eq!(sent_at(b"commit on epoch 1"), None);
        let large = make(b"g", 3, 100_000, 1);
        assert_eq!(private_message_body(&large).unwrap().len(), 100_000);
    }
}
