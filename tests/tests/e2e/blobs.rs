//! Encrypted attachments: chunked upload, download by another device.

use bytes::Bytes;
use convene_proto::relay::{request, response, BeginBlob, ErrorCode, GetBlob, PutBlobChunk};
use convene_tests::device::{bootstrap_staff, enrol_leaders};
use convene_tests::{InProcessRelay, RelayOptions, TestDevice};

async fn upload(
    device: &TestDevice,
    content: &[u8],
) -> Result<Bytes, convene_client::TransportError> {
    let begin = request::Kind::BeginBlob(BeginBlob {
        size: content.len() as u64,
    });
    let response::Result::BlobStarted(started) = device.conn.request(begin).await? else {
        panic!("expected BlobStarted");
    };
    let mut offset = 0;
    for piece in content.chunks(started.max_chunk_bytes as usize) {
        let put = request::Kind::PutBlobChunk(PutBlobChunk {
            blob_id: started.blob_id.clone(),
            offset,
            data: Bytes::copy_from_slice(piece),
        });
        let response::Result::BlobChunkStored(stored) = device.conn.request(put).await? else {
            panic!("expected BlobChunkStored");
        };
        offset = stored.received;
        assert_eq!(stored.complete, offset == content.len() as u64);
    }
    Ok(started.blob_id)
}

async fn download(
    device: &TestDevice,
    blob_id: &Bytes,
) -> Result<Vec<u8>, convene_client::TransportError> {
    let mut content = Vec::new();
    loop {
        let get = request::Kind::GetBlob(GetBlob {
            blob_id: blob_id.clone(),
            offset: content.len() as u64,
            max_bytes: 0,
        });
        let response::Result::BlobData(data) = device.conn.request(get).await? else {
            panic!("expected BlobData");
        };
        content.extend_from_slice(&data.data);
        if content.len() as u64 >= data.total_size || data.data.is_empty() {
            return Ok(content);
        }
    }
}

#[tokio::test]
async fn an_attachment_uploaded_in_pieces_downloads_whole() {
    let relay = InProcessRelay::start(RelayOptions {
        config_toml: "[limits]\nblob_chunk_bytes = 65536\nmax_blob_bytes = 1000000\n".into(),
        ..Default::default()
    })
    .unwrap();
    let staff = bootstrap_staff(&relay).await.unwrap();
    let leaders = enrol_leaders(&relay, &staff, &["ann"]).await.unwrap();
    let content: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let id = upload(&staff, &content).await.unwrap();
    assert_eq!(download(&leaders[0], &id).await.unwrap(), content);

    let too_big = upload(&staff, &vec![0; 1_000_001]).await.unwrap_err();
    assert_eq!(too_big.refusal_code(), Some(ErrorCode::TooLarge));
    let unknown = download(&staff, &Bytes::from_static(&[0; 16]))
        .await
        .unwrap_err();
    assert_eq!(unknown.refusal_code(), Some(ErrorCode::NotFound));
}

/// Beginning uploads promises the relay bytes: one user promising more than
/// their quota is refused with a retry time (300 uploads of 64 MiB were
/// once all accepted), and another user still uploads.
#[tokio::test]
async fn a_user_cannot_promise_more_attachment_bytes_than_the_quota() {
    let relay = InProcessRelay::start(RelayOptions {
        config_toml: "[limits]\nmax_blob_bytes = 1000000\nblob_bytes_per_user = 1500000\n".into(),
        ..Default::default()
    })
    .unwrap();
    let staff = bootstrap_staff(&relay).await.unwrap();
    let leaders = enrol_leaders(&relay, &staff, &["mallory"]).await.unwrap();
    let begin = || request::Kind::BeginBlob(BeginBlob { size: 1_000_000 });
    leaders[0].conn.request(begin()).await.unwrap();
    let refused = leaders[0].conn.request(begin()).await.unwrap_err();
    assert_eq!(refused.refusal_code(), Some(ErrorCode::RateLimited));
    staff.conn.request(begin()).await.unwrap();
}
