//! Keeps docs/PROTOCOL.md true: every number in its table of constants is
//! checked against the code that uses it, and every constant the table
//! should hold is in it.

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use convene_server::config::Config;
    use convene_server::protocol::close;

    /// The `name | value` rows between the constants markers.
    fn documented() -> BTreeMap<String, u64> {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/PROTOCOL.md");
        let text = std::fs::read_to_string(path).expect("docs/PROTOCOL.md is readable");
        let start = text.find("<!-- constants -->").expect("a constants table");
        let end = text.find("<!-- /constants -->").expect("its end marker");
        text[start..end]
            .lines()
            .filter_map(|line| {
                let cells: Vec<&str> = line.split('|').map(str::trim).collect();
                let value = cells.get(2)?.parse().ok()?;
                Some((cells.get(1)?.to_string(), value))
            })
            .collect()
    }

    /// What the code says each documented constant is.
    fn actual() -> BTreeMap<String, u64> {
        let limits = Config::default().limits;
        let as_u64 = |n: usize| n as u64;
        [
            ("close_going_away", u64::from(close::GOING_AWAY)),
            ("close_policy", u64::from(close::POLICY)),
            ("close_too_big", u64::from(close::TOO_BIG)),
            ("close_superseded", u64::from(close::SUPERSEDED)),
            ("close_auth_timeout", u64::from(close::AUTH_TIMEOUT)),
            ("close_auth_failed", u64::from(close::AUTH_FAILED)),
            ("close_idle", u64::from(close::IDLE)),
            ("close_revoked", u64::from(close::REVOKED)),
            ("frame_limit_bytes", as_u64(limits.max_frame_bytes())),
            ("max_payload_bytes", u64::from(limits.max_payload_bytes)),
            ("ack_cap", as_u64(convene_server::protocol::MAX_ACKS)),
            (
                "max_certificate_bytes",
                as_u64(convene_server::protocol::MAX_CERTIFICATE_BYTES),
            ),
            (
                "max_sealed_link_bytes",
                as_u64(convene_server::protocol::MAX_SEALED_BYTES),
            ),
            (
                "max_device_label_bytes",
                as_u64(convene_server::protocol::MAX_DEVICE_LABEL_BYTES),
            ),
            (
                "max_profile_bytes",
                as_u64(convene_server::protocol::MAX_PROFILE_BYTES),
            ),
            (
                "max_users_per_lookup",
                as_u64(convene_server::protocol::MAX_USERS_PER_LOOKUP),
            ),
            ("link_request_ttl_ms", convene_server::protocol::LINK_TTL_MS),
            (
                "pending_links_per_user",
                as_u64(convene_server::store::MAX_PENDING_LINKS),
            ),
            (
                "link_code_digits",
                as_u64(convene_client::link::CODE_DIGITS),
            ),
            (
                "direct_group_id_marker",
                u64::from(convene_proto::direct::DIRECT_GROUP_ID_MARKER),
            ),
            (
                "direct_group_id_len",
                as_u64(convene_proto::direct::DIRECT_GROUP_ID_LEN),
            ),
            (
                "max_group_id_len",
                as_u64(convene_proto::ids::MAX_GROUP_ID_LEN),
            ),
            (
                "max_user_id_len",
                as_u64(convene_proto::ids::MAX_USER_ID_LEN),
            ),
            ("relay_id_len", as_u64(convene_proto::ids::RELAY_ID_LEN)),
            ("nonce_len", as_u64(convene_proto::ids::NONCE_LEN)),
            (
                "submission_id_len",
                as_u64(convene_proto::ids::SUBMISSION_ID_LEN),
            ),
            ("blob_id_len", as_u64(convene_proto::ids::BLOB_ID_LEN)),
            ("auth_timeout_ms", u64::from(limits.auth_timeout_ms)),
            ("push_window", u64::from(limits.push_window)),
            ("max_inbox", limits.max_inbox),
            ("max_inbox_per_sender", limits.max_inbox_per_sender),
            (
                "client_push_queue",
                as_u64(convene_client::transport::MAX_QUEUED_PUSHES),
            ),
            (
                "mls_ciphersuite",
                u64::from(u16::from(convene_client::mls::CIPHERSUITE)),
            ),
            (
                "group_meta_extension",
                u64::from(convene_client::mls::GROUP_META_EXTENSION),
            ),
            (
                "rejoin_extension",
                u64::from(convene_client::mls::REJOIN_EXTENSION),
            ),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_string(), value))
        .collect()
    }

    #[test]
    fn the_protocol_documents_numbers_match_the_code() {
        assert_eq!(documented(), actual());
    }
}
