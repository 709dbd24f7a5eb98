//! Fitting the process's open-file limit to `max_connections`.
//!
//! Every connection holds a socket, so a relay allowed 20,000 connections
//! under the usual soft limit of 1,024 descriptors would fail to accept
//! long before its own bound. At start the relay raises the soft limit
//! (`RLIMIT_NOFILE`) as far as the hard limit allows, and if that is still
//! too few it lowers `max_connections` to fit, with a warning, rather than
//! run into `EMFILE` under load.

/// Descriptors kept for everything but connections: the store's files,
/// the listener, logs, TLS material.
pub const RESERVED_DESCRIPTORS: u64 = 256;

/// How many connections fit under an open-file limit of `limit`, at most
/// `wanted` (and at least one).
pub fn connections_that_fit(limit: u64, wanted: u32) -> u32 {
    let room = limit.saturating_sub(RESERVED_DESCRIPTORS).max(1);
    u32::try_from(room).unwrap_or(u32::MAX).min(wanted)
}

/// Raises the soft open-file limit to fit `max_connections` and returns
/// the number of connections the relay may accept.
pub fn fit_connections(max_connections: u32) -> u32 {
    let wanted = u64::from(max_connections) + RESERVED_DESCRIPTORS;
    let limit = match rlimit::increase_nofile_limit(wanted) {
        Ok(limit) => limit,
        Err(err) => {
            tracing::warn!(
                error = &err as &dyn std::error::Error,
                "cannot read or raise the open-file limit"
            );
            match rlimit::getrlimit(rlimit::Resource::NOFILE) {
                Ok((soft, _)) => soft,
                Err(_) => return max_connections,
            }
        }
    };
    let fitting = connections_that_fit(limit, max_connections);
    // A few connections fewer (room for the store's own files) is what
    // the default settings give on a default system: not worth a warning.
    if fitting < max_connections / 20 * 19 {
        tracing::warn!(
            open_file_limit = limit,
            max_connections,
            lowered_to = fitting,
            "the open-file limit is too low for max_connections; accepting fewer connections \
             (raise the hard limit, e.g. LimitNOFILE in a systemd unit)"
        );
    } else if fitting < max_connections {
        tracing::info!(
            open_file_limit = limit,
            max_connections,
            lowered_to = fitting,
            "a few connections fewer than max_connections, to leave room for the store's files"
        );
    } else {
        tracing::info!(
            open_file_limit = limit,
            max_connections,
            "open-file limit fits"
        );
    }
    fitting
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_are_lowered_to_what_the_limit_holds() {
        assert_eq!(connections_that_fit(1_024, 20_000), 768);
        assert_eq!(connections_that_fit(1_048_576, 20_000), 20_000);
        assert_eq!(connections_that_fit(100, 20_000), 1);
    }

    #[test]
    fn the_soft_limit_is_raised_to_fit() {
        let fitting = fit_connections(500);
        let (soft, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap();
        if hard >= 500 + RESERVED_DESCRIPTORS {
            assert_eq!(fitting, 500);
            assert!(soft >= 500 + RESERVED_DESCRIPTORS, "soft limit {soft}");
        } else {
            assert_eq!(fitting, connections_that_fit(soft, 500));
        }
    }
}
