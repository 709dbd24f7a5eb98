//! The Convene relay.
pub mod error;
pub mod store;
