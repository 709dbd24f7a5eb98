//! Groups never get stuck: every device keeps hearing every group through
//! offline spells, restores, clock skew, expired keys and misbehaving
//! members. A module per way a group could get stuck.

mod clocks;
mod copies;
mod epochs;
mod keys;
mod membership;
mod offline;
mod outcomes;
mod relay_word;
mod replaced;
mod stuck;

/// `n` user names with a prefix: "l1", "l2", ...
pub fn names(prefix: &str, n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("{prefix}{i}")).collect()
}
