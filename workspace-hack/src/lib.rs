//! Gives every package of the workspace the same features of the crates
//! they share, whichever packages a command builds, so that `cargo run -p
//! convene-server`, `cargo build --workspace --bins` and `cargo test
//! --workspace` compile the shared crates once between them (README's
//! first start). Managed by cargo-hakari: after changing dependencies, run
//! `cargo hakari generate` and commit what it writes.
