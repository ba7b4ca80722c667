//! Shared pieces of the ledger benchmarks: the baseline (raw SHA-256 node hashes per second,
//! measured in the same run), percentiles, keys, and the large log built once and reused.
#![allow(dead_code)] // Each benchmark uses a different subset.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use ledger::merkle::{Hash, empty_root, node_hash};
use ledger::note::{KeyType, NoteSigner};
use ledger::sequencer::{self, SequencerConfig};
use ledger::storage::redb::RedbStorage;
use ledger::witness_client::WitnessClient;

pub const ORIGIN: &str = "agritrace.bench/log";

pub fn log_key() -> NoteSigner {
    NoteSigner::new(ORIGIN, KeyType::Ed25519, SigningKey::from_bytes(&[7; 32])).expect("log key")
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Raw SHA-256 node hashes per second (`H(0x01 || l || r)`), on one core.
pub fn baseline_node_hashes_per_second() -> f64 {
    let mut left = Hash([1; 32]);
    let right = Hash([2; 32]);
    let count = 2_000_000u32;
    let started = Instant::now();
    for _ in 0..count {
        left = node_hash(&left, &right);
    }
    std::hint::black_box(left);
    f64::from(count) / started.elapsed().as_secs_f64()
}

pub fn print_baseline() -> f64 {
    let rate = baseline_node_hashes_per_second();
    println!(
        "baseline: raw SHA-256 node hashes: {:.2} M/s (one core)",
        rate / 1e6
    );
    rate
}

/// The `p`-th percentile (0..=100) of sorted durations (nearest rank, rounded down).
pub fn percentile(sorted: &[Duration], p: usize) -> Duration {
    match sorted.len() {
        0 => Duration::ZERO,
        len => sorted[((len - 1) * p.min(100)) / 100],
    }
}

/// Entry `n` of the large benchmark log: an `Unknown`-kind entry (kind 200) whose 30-byte body
/// starts with `n` big-endian — 32 bytes in all (the log holds only entries).
pub fn large_log_entry(n: u64) -> Vec<u8> {
    let mut body = vec![0u8; 30];
    body[..8].copy_from_slice(&n.to_be_bytes());
    ledger::entry::Entry::Unknown { kind: 200, body }
        .encode()
        .expect("an unknown-kind entry encodes")
}

/// Where the large benchmark log lives: under the cargo target directory, so it is built once.
pub fn large_log_path(entries: u64) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target"));
    target
        .join("ledger-bench")
        .join(format!("log-v2-{entries}.redb"))
}

/// Opens the large log of `entries` entries (32 bytes each), building it first if needed with
/// the real sequencer and large rounds.
pub fn large_log(rt: &tokio::runtime::Runtime, entries: u64) -> PathBuf {
    let path = large_log_path(entries);
    if path.exists() {
        let storage = RedbStorage::open(&path, empty_root().0).expect("open large log");
        let state = rt.block_on(async {
            use ledger::storage::LogStorage as _;
            storage.load().await.expect("load")
        });
        if state.state.size == entries && state.checkpoint.is_some_and(|c| c.size == entries) {
            return path;
        }
        drop(storage);
        std::fs::remove_file(&path).expect("remove partial large log");
    }
    std::fs::create_dir_all(path.parent().expect("parent")).expect("bench dir");
    let building = path.with_extension("building");
    let _ = std::fs::remove_file(&building);
    println!(
        "building a log of {entries} entries at {} (once)...",
        path.display()
    );
    let started = Instant::now();
    rt.block_on(async {
        let storage = RedbStorage::open(&building, empty_root().0).expect("create large log");
        let mut config = SequencerConfig::new(ORIGIN);
        config.round_period_ms = 1_000;
        config.pool_entries_max = 2_000_000;
        let (handle, tasks) = sequencer::start(
            storage,
            log_key(),
            config,
            WitnessClient::none().expect("client"),
        )
        .await
        .expect("start");
        let chunk = 500_000u64;
        let mut next = 0u64;
        while next < entries {
            let end = (next + chunk).min(entries);
            let mut pending = Vec::with_capacity(usize::try_from(end - next).expect("chunk"));
            for n in next..end {
                let entry = large_log_entry(n);
                loop {
                    match handle.try_submit(entry.clone(), Vec::new()) {
                        Ok(p) => {
                            pending.push(p);
                            break;
                        }
                        Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                    }
                }
            }
            for p in pending {
                p.wait().await.expect("append");
            }
            next = end;
            println!(
                "  {next} entries after {:.1} s",
                started.elapsed().as_secs_f64()
            );
        }
        handle
            .wait_for_checkpoint(ledger::merkle::TreeSize(entries))
            .await
            .expect("checkpoint");
        tasks.shutdown().await;
    });
    std::fs::rename(&building, &path).expect("rename built log");
    println!(
        "built in {:.1} s ({} MB)",
        started.elapsed().as_secs_f64(),
        std::fs::metadata(&path)
            .map(|m| m.len() / 1_000_000)
            .unwrap_or(0)
    );
    path
}
