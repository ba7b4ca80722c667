//! What the tests against real parts share, in one place: a free loopback port, waits on a
//! condition with a guard limit (blocking and async), child processes with their output in
//! files of the test's directory, a real Mosquitto broker that can be killed with SIGKILL
//! and started again on the same port, and a real CQL node (Apache Cassandra, [`cassandra`]).
//!
//! Everything here serves tests, where a panic is the failure: a function that cannot go on
//! panics saying what it was doing. Limits only guard against hangs; nothing here measures or
//! asserts on time.

pub mod cassandra;
mod mosquitto;
mod process;
mod wait;

use std::net::TcpListener;
use std::time::Duration;

pub use mosquitto::{MOSQUITTO, Mosquitto};
pub use process::Process;
pub use wait::{Outcome, POLL_INTERVAL, wait_until, wait_until_async};

/// How long a wait may take by default before the test gives up: a guard against hangs, never a
/// timing assertion (the machine is shared and slow at times).
pub const PATIENCE: Duration = Duration::from_secs(300);

/// A port on the loopback interface that was free a moment ago.
#[must_use]
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("bind an ephemeral loopback port")
        .port()
}

/// A directory of its own for one unit test, removed afterwards.
#[cfg(test)]
mod scratch {
    use std::path::{Path, PathBuf};

    #[derive(Debug)]
    pub(crate) struct Scratch(PathBuf);

    impl Scratch {
        pub(crate) fn new(test: &str) -> Self {
            let dir =
                std::env::temp_dir().join(format!("test-support-{test}-{}", std::process::id()));
            std::fs::create_dir_all(&dir).expect("a scratch directory");
            Self(dir)
        }

        pub(crate) fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
