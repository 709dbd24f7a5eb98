//! Encrypted attachments.

use convene_proto::ids::{fixed, BLOB_ID_LEN};
use convene_proto::relay::{
    response, BeginBlob, BlobChunkStored, BlobData, BlobStarted, GetBlob, PutBlobChunk,
};

use super::{check_size, Caller, Reply};
use crate::error::{Refusal, RelayResult};
use crate::relay::Relay;
use crate::store::{now_ms, BlobOwner, BlobQuota};

pub(super) fn begin(relay: &Relay, caller: &Caller, req: BeginBlob) -> RelayResult<Reply> {
    let limits = &relay.config.limits;
    if req.size == 0 || req.size > limits.max_blob_bytes {
        return Err(Refusal::TooLarge(format!(
            "an attachment must be 1 to {} bytes",
            limits.max_blob_bytes
        ))
        .into());
    }
    let owner = BlobOwner {
        device: &caller.device,
        user_id: &caller.user_id,
    };
    let quota = BlobQuota {
        bytes: limits.blob_bytes_per_user,
        count: limits.blobs_per_user,
    };
    let id = relay
        .store
        .begin_blob(owner, req.size, limits.blob_chunk_bytes, quota, now_ms())?;
    Ok(Reply::durable(response::Result::BlobStarted(BlobStarted {
        blob_id: id.to_vec().into(),
        max_chunk_bytes: limits.blob_chunk_bytes,
    })))
}

pub(super) fn put(relay: &Relay, caller: &Caller, req: PutBlobChunk) -> RelayResult<Reply> {
    let id = fixed::<BLOB_ID_LEN>("blob_id", &req.blob_id)?;
    check_size(
        "the piece",
        req.data.len(),
        relay.config.limits.blob_chunk_bytes,
    )?;
    let record = relay
        .store
        .put_blob_chunk(&caller.device, &id, req.offset, &req.data)?;
    Ok(Reply::durable(response::Result::BlobChunkStored(
        BlobChunkStored {
            received: record.received,
            complete: record.is_complete(),
        },
    )))
}

pub(super) fn get(relay: &Relay, req: GetBlob) -> RelayResult<Reply> {
    let id = fixed::<BLOB_ID_LEN>("blob_id", &req.blob_id)?;
    let chunk = relay.config.limits.blob_chunk_bytes;
    let max = if req.max_bytes == 0 {
        chunk
    } else {
        req.max_bytes.min(chunk)
    };
    let (data, total_size) = relay.store.read_blob(&id, req.offset, max)?;
    Ok(Reply::immediate(response::Result::BlobData(BlobData {
        offset: req.offset,
        data: data.into(),
        total_size,
    })))
}
