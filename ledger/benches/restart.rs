//! Restart time of a log of 10 million entries (built once and reused): time to open the redb
//! file and start the sequencer (log state, right-edge tiles and bundle, last checkpoint), i.e.
//! until it is ready to append; then the first append after restart. Printed beside the
//! SHA-256 baseline.
//!
//! Run: `cargo bench -p ledger --bench restart` (`LEDGER_BENCH_ENTRIES` overrides the size).

#[path = "support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use ledger::merkle::empty_root;
use ledger::sequencer::{self, SequencerConfig};
use ledger::storage::redb::RedbStorage;
use ledger::witness_client::WitnessClient;

const RESTARTS: usize = 7;

/// When set, the process is the child that appends once and waits to be killed.
const CHILD: &str = "LEDGER_BENCH_RESTART_CHILD";

/// The child: open, append one entry durably, say so, and wait for SIGKILL.
fn child(path: &str) {
    support::runtime().block_on(async {
        let storage = RedbStorage::open(std::path::Path::new(path), empty_root().0).expect("open");
        let mut config = SequencerConfig::new(support::ORIGIN);
        config.round_period_ms = 10;
        let (handle, _tasks) = sequencer::start(
            storage,
            support::log_key(),
            config,
            WitnessClient::none().expect("client"),
        )
        .await
        .expect("start");
        handle
            .submit(
                ledger::entry::Entry::Unknown {
                    kind: 200,
                    body: b"entry before the kill".to_vec(),
                }
                .encode()
                .expect("entry"),
                Vec::new(),
            )
            .await
            .expect("append");
        println!("appended");
        tokio::time::sleep(Duration::from_secs(60)).await;
    });
}

/// Appends in a child process, kills it with SIGKILL, and returns the time to reopen (which
/// includes redb's recovery of an uncleanly closed file) until ready to append.
fn restart_after_kill(rt: &tokio::runtime::Runtime, copy: &std::path::Path) -> Duration {
    use std::io::BufRead as _;
    let mut child = std::process::Command::new(std::env::current_exe().expect("own path"))
        .env(CHILD, copy)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn child");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("read");
    assert_eq!(line.trim(), "appended", "child appended before the kill");
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
    rt.block_on(async {
        let started = Instant::now();
        let storage = RedbStorage::open(copy, empty_root().0).expect("open after SIGKILL");
        let (_handle, tasks) = sequencer::start(
            storage,
            support::log_key(),
            SequencerConfig::new(support::ORIGIN),
            WitnessClient::none().expect("client"),
        )
        .await
        .expect("start");
        let elapsed = started.elapsed();
        tasks.shutdown().await;
        elapsed
    })
}

fn main() {
    if let Ok(path) = std::env::var(CHILD) {
        child(&path);
        return;
    }
    support::print_baseline();
    let entries: u64 = std::env::var("LEDGER_BENCH_ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000_000);
    let rt = support::runtime();
    let path = support::large_log(&rt, entries);
    // Restart on a copy, so the appends below never change the shared benchmark log.
    let dir = tempfile::tempdir().expect("tempdir");
    let copy = dir.path().join("log.redb");
    std::fs::copy(&path, &copy).expect("copy the large log");
    // Flush the copy now, or the first commit's fsync would pay for writing back 2 GB of it.
    std::fs::File::open(&copy)
        .and_then(|f| f.sync_all())
        .expect("sync the copy");
    let mut ready = Vec::new();
    let mut first_append = Vec::new();
    for restart in 0..RESTARTS {
        let (to_ready, to_append) = rt.block_on(async {
            let started = Instant::now();
            let storage = RedbStorage::open(&copy, empty_root().0).expect("open");
            let mut config = SequencerConfig::new(support::ORIGIN);
            config.round_period_ms = 10;
            let (handle, tasks) = sequencer::start(
                storage,
                support::log_key(),
                config,
                WitnessClient::none().expect("client"),
            )
            .await
            .expect("start");
            let to_ready = started.elapsed();
            let mut body = b"entry after restart ".to_vec();
            body.extend_from_slice(&(restart as u64).to_be_bytes());
            let entry = ledger::entry::Entry::Unknown { kind: 200, body }
                .encode()
                .expect("entry");
            let index = handle.submit(entry, Vec::new()).await.expect("append");
            assert!(index.0 >= entries, "appended after the existing entries");
            let to_append = started.elapsed();
            tasks.shutdown().await;
            (to_ready, to_append)
        });
        ready.push(to_ready);
        first_append.push(to_append);
    }
    ready.sort_unstable();
    first_append.sort_unstable();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "restart of a log of {entries} entries ({RESTARTS} runs): open + ready to append p50 {:.2} ms, max {:.2} ms",
        ms(support::percentile(&ready, 50)),
        ms(*ready.last().expect("runs"))
    );
    println!(
        "  including the first durable append (10 ms round): p50 {:.2} ms, max {:.2} ms",
        ms(support::percentile(&first_append, 50)),
        ms(*first_append.last().expect("runs"))
    );
    let mut after_kill: Vec<Duration> = (0..3).map(|_| restart_after_kill(&rt, &copy)).collect();
    after_kill.sort_unstable();
    println!(
        "  after SIGKILL of an appending process (redb recovery included, 3 runs): p50 {:.2} ms, max {:.2} ms",
        ms(support::percentile(&after_kill, 50)),
        ms(*after_kill.last().expect("runs"))
    );
}
