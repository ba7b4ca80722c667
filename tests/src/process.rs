//! Child processes: the workspace's binaries, found beside the test executable, run as
//! `test-support` processes with their output in files of the test's directory.

use std::path::{Path, PathBuf};

pub use test_support::Process;

/// The workspace binary `name`, built into the same target directory as the running test
/// (`target/<profile>/deps/<test>` → `target/<profile>/<name>`).
#[must_use]
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the path of the running test");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test runs from target/<profile>/deps");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{name} is not built beside the tests ({}): build the workspace's binaries first \
         (`cargo build --workspace --bins`; the README test command does)",
        path.display()
    );
    path
}
