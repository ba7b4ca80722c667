//! Harness of the system tests: agritrace run the way its users run it, as separate processes
//! — the node (`agritrace serve`), simulated devices (`agritrace-device`) and a real Mosquitto
//! broker — with the faults of a real site (kill -9 of the node, a broker killed and
//! restarted), and an audit of the log the run leaves behind, read from the node's store after
//! it stopped. Processes, the broker and waits are the workspace's `test-support`, re-exported
//! here with this crate's guard limit.
//!
//! The binaries are the workspace's own, found beside the test executable: `cargo test
//! --workspace` builds them (the `api` and `firmware` packages have integration tests), and
//! the README test command builds them explicitly first. A harness function that cannot go on
//! panics with what it was doing: the harness serves tests, where a panic is the failure.

pub mod audit;
pub mod fleet;
pub mod node;
pub mod process;
pub mod publisher;

pub use test_support::{Mosquitto, PATIENCE, free_port};

/// Polls `condition` until it returns `Some`; panics naming `what` after [`PATIENCE`] (a guard
/// against hangs, never a timing assertion: the machine is shared and slow at times).
pub async fn wait_until<T, F, Fut>(what: &str, condition: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    test_support::wait_until_async(what, PATIENCE, condition).await
}
