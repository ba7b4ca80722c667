//! Durable appends per second through the sequencer on the redb backend: entries of 200 bytes,
//! rounds of 100 ms, submitted by several concurrent tasks; each entry counts once its index is
//! answered (i.e. once its round is fsync'd). Printed beside the SHA-256 baseline.
//!
//! Run: `cargo bench -p ledger --bench append`

#[path = "support/mod.rs"]
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ledger::merkle::empty_root;
use ledger::sequencer::{self, SequencerConfig};
use ledger::storage::redb::RedbStorage;
use ledger::witness_client::WitnessClient;

const SUBMITTERS: usize = 8;
const IN_FLIGHT_PER_SUBMITTER: usize = 4096;
const WARMUP: Duration = Duration::from_secs(1);
const MEASURE: Duration = Duration::from_secs(5);

fn main() {
    support::print_baseline();
    let rt = support::runtime();
    let dir = tempfile::tempdir().expect("tempdir");
    let (answered, latencies, elapsed) = rt.block_on(async {
        let storage =
            RedbStorage::open(&dir.path().join("log.redb"), empty_root().0).expect("open");
        let mut config = SequencerConfig::new(support::ORIGIN);
        config.round_period_ms = 100;
        let (handle, tasks) = sequencer::start(
            storage,
            support::log_key(),
            config,
            WitnessClient::none().expect("client"),
        )
        .await
        .expect("start");
        let counting = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut joins = Vec::new();
        for task in 0..SUBMITTERS {
            let handle = handle.clone();
            let counting = counting.clone();
            let stop = stop.clone();
            joins.push(tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let mut pending = Vec::with_capacity(IN_FLIGHT_PER_SUBMITTER);
                    let sent = Instant::now();
                    for _ in 0..IN_FLIGHT_PER_SUBMITTER {
                        let mut body = format!("bench entry {task} {n} ").into_bytes();
                        body.resize(198, b'.');
                        let entry = ledger::entry::Entry::Unknown { kind: 200, body }
                            .encode()
                            .expect("entry");
                        n += 1;
                        if let Ok(p) = handle.try_submit(entry, Vec::new()) {
                            pending.push(p);
                        }
                    }
                    for p in pending {
                        if p.wait().await.is_ok() {
                            counting.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    latencies.push(sent.elapsed());
                }
                latencies
            }));
        }
        tokio::time::sleep(WARMUP).await;
        let start_count = counting.load(Ordering::Relaxed);
        let started = Instant::now();
        tokio::time::sleep(MEASURE).await;
        let answered = counting.load(Ordering::Relaxed) - start_count;
        let elapsed = started.elapsed();
        stop.store(true, Ordering::Relaxed);
        let mut latencies = Vec::new();
        for join in joins {
            latencies.extend(join.await.expect("submitter"));
        }
        tasks.shutdown().await;
        (answered, latencies, elapsed)
    });
    let mut latencies = latencies;
    latencies.sort_unstable();
    let rate = answered as f64 / elapsed.as_secs_f64();
    println!(
        "durable appends (redb, 200-byte entries, 100 ms rounds, {SUBMITTERS} submitters): {:.0} entries/s ({answered} in {:.2} s)",
        rate,
        elapsed.as_secs_f64()
    );
    println!(
        "batch submit-to-answer latency ({IN_FLIGHT_PER_SUBMITTER} entries): p50 {:.1} ms, p99 {:.1} ms",
        support::percentile(&latencies, 50).as_secs_f64() * 1e3,
        support::percentile(&latencies, 99).as_secs_f64() * 1e3
    );
}
