//! Harness of the system tests: agritrace run the way its users run it, as separate processes
//! — the node (`agritrace serve`), simulated devices (`agritrace-device`) and a real Mosquitto
//! broker — with the faults of a real site (kill -9 of the node, a broker killed and
//! restarted), and an audit of the log the run leaves behind, read from the node's store after
//! it stopped.
//!
//! The binaries are the workspace's own, found beside the test executable: `cargo test
//! --workspace` builds them (the `api` and `firmware` packages have integration tests), and
//! the README test command builds them explicitly first. A harness function that cannot go on
//! panics with what it was doing: the harness serves tests, where a panic is the failure.

pub mod audit;
pub mod fleet;
pub mod mosquitto;
pub mod node;
pub mod process;
pub mod publisher;

use std::net::TcpListener;
use std::time::{Duration, Instant};

/// How long a wait may take before the test gives up (a guard against hangs, never a timing
/// assertion: the machine is shared and slow at times).
pub const PATIENCE: Duration = Duration::from_secs(300);

/// A port on the loopback interface that was free a moment ago.
#[must_use]
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("bind an ephemeral loopback port")
        .port()
}

/// Polls `condition` every 50 ms until it returns `Some`; panics naming `what` after
/// [`PATIENCE`].
pub async fn wait_until<T, F, Fut>(what: &str, mut condition: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(value) = condition().await {
            return value;
        }
        assert!(
            start.elapsed() < PATIENCE,
            "gave up after {PATIENCE:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
