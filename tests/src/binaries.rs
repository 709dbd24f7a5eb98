//! Locates the workspace's binaries for end-to-end tests.
//!
//! `cargo test --workspace` (the README's test command) builds every
//! package's binaries before running any test, because `convene-server` and
//! `convene-cli` have integration tests of their own. They sit next to this
//! crate's test executables, in `<target>/<profile>/`. When they are missing
//! (this crate's tests run alone on a fresh checkout), they are built once.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// The path of a workspace binary.
pub fn binary(name: &str) -> PathBuf {
    static PROFILE_DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let dir = PROFILE_DIR
        .get_or_init(profile_dir)
        .as_ref()
        .unwrap_or_else(|err| panic!("{err}"));
    let path = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    if !path.exists() {
        static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
        if let Err(err) = BUILT.get_or_init(|| build(dir)) {
            panic!("{err}");
        }
    }
    path
}

fn profile_dir() -> Result<PathBuf, String> {
    // Test executables live in <target>/<profile>/deps/, the workspace's
    // binaries in <target>/<profile>/.
    let exe =
        std::env::current_exe().map_err(|e| format!("cannot locate the test executable: {e}"))?;
    let dir = exe
        .parent()
        .ok_or_else(|| "unexpected test executable location".to_string())?;
    if dir.file_name().is_some_and(|name| name == "deps") {
        dir.parent()
            .map(PathBuf::from)
            .ok_or_else(|| "unexpected test executable location".to_string())
    } else {
        Ok(dir.to_path_buf())
    }
}

/// The path of client-core's example `name`, built if missing (with the
/// whole workspace's selection, as the test command builds it, so that
/// nothing is compiled twice).
pub fn example(name: &str) -> PathBuf {
    let dir = binary_dir().join("examples");
    let path = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    if !path.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "--quiet", "--workspace", "--example", name])
            .status();
        if !matches!(&status, Ok(s) if s.success()) {
            panic!("building the example {name} failed: {status:?}");
        }
    }
    path
}

fn binary_dir() -> PathBuf {
    match profile_dir() {
        Ok(dir) => dir,
        Err(err) => panic!("{err}"),
    }
}

fn build(profile_dir: &std::path::Path) -> Result<(), String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command.args(["build", "--quiet", "--workspace", "--bins"]);
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        command.arg("--release");
    }
    let status = command
        .status()
        .map_err(|e| format!("cannot run cargo to build the binaries: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("building the binaries failed: {status}"))
    }
}
