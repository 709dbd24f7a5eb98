//! Fuzz entry points: one function per decoder that takes bytes from
//! outside, and one for the relay's per-connection state machine.
//!
//! Each function takes arbitrary bytes and must neither panic nor hang;
//! what it returns is beside the point (almost every input is refused).
//! The same functions serve two drivers: the bounded property tests in
//! `tests/tests/e2e/fuzz_*.rs`, which CI runs on every change, and the
//! `cargo fuzz` targets in `fuzz/`, for long runs on a nightly toolchain.
//! [`seeds`] gives valid inputs of each kind, so that both drivers start
//! from bytes that reach past the first length check.

pub mod decoders;
pub mod fixture;
pub mod session;

pub use fixture::seeds;
