//! Inclusion and consistency proof generation (from redb tiles, against the published
//! checkpoint) and inclusion proof verification latency, p50/p99, on a large log (10 million
//! entries, built once and reused). Printed beside the SHA-256 baseline.
//!
//! Run: `cargo bench -p ledger --bench proofs` (`LEDGER_BENCH_ENTRIES` overrides the size).

#[path = "support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use ledger::merkle::{LeafIndex, TreeSize, empty_root, leaf_hash};
use ledger::sequencer::{self, SequencerConfig};
use ledger::storage::redb::RedbStorage;
use ledger::witness_client::WitnessClient;
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore as _, SeedableRng as _};

const SAMPLES: usize = 50_000;

fn main() {
    support::print_baseline();
    let entries: u64 = std::env::var("LEDGER_BENCH_ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000_000);
    let rt = support::runtime();
    let path = support::large_log(&rt, entries);
    let (cold, warm, consistency) = rt.block_on(async {
        let storage = RedbStorage::open(&path, empty_root().0).expect("open");
        let (handle, tasks) = sequencer::start(
            storage,
            support::log_key(),
            SequencerConfig::new(support::ORIGIN),
            WitnessClient::none().expect("client"),
        )
        .await
        .expect("start");
        // First pass: random leaves over the whole log, caches cold (OS page cache and redb's
        // own); second pass: the same kind of load once the tiles have been read.
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let cold = sample(&handle, &mut rng, entries);
        let warm = sample(&handle, &mut rng, entries);
        let consistency = sample_consistency(&handle, &mut rng, entries);
        tasks.shutdown().await;
        (cold, warm, consistency)
    });
    report(
        "inclusion proof generation (redb tiles), first pass",
        cold.0,
        entries,
    );
    report(
        "inclusion proof verification (incl. leaf hash), first pass",
        cold.1,
        entries,
    );
    report(
        "inclusion proof generation (redb tiles), second pass",
        warm.0,
        entries,
    );
    report(
        "inclusion proof verification (incl. leaf hash), second pass",
        warm.1,
        entries,
    );
    report(
        "consistency proof generation (redb tiles, random old size)",
        consistency,
        entries,
    );
}

type Samples = (Vec<Duration>, Vec<Duration>);

fn sample(
    handle: &ledger::sequencer::SequencerHandle<RedbStorage>,
    rng: &mut ChaCha8Rng,
    entries: u64,
) -> Samples {
    let mut generate = Vec::with_capacity(SAMPLES);
    let mut verify = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        let index = rng.next_u64() % entries;
        let entry = support::large_log_entry(index);
        let started = Instant::now();
        let (proof, checkpoint) = handle.inclusion_proof(LeafIndex(index)).expect("proof");
        generate.push(started.elapsed());
        let started = Instant::now();
        proof
            .verify(&leaf_hash(&entry), &checkpoint.root)
            .expect("proof verifies");
        verify.push(started.elapsed());
    }
    (generate, verify)
}

fn sample_consistency(
    handle: &ledger::sequencer::SequencerHandle<RedbStorage>,
    rng: &mut ChaCha8Rng,
    entries: u64,
) -> Vec<Duration> {
    let mut generate = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        let old = 1 + rng.next_u64() % (entries - 1);
        let started = Instant::now();
        let (proof, _) = handle.consistency_proof(TreeSize(old)).expect("proof");
        generate.push(started.elapsed());
        std::hint::black_box(proof);
    }
    generate
}

fn report(what: &str, mut samples: Vec<Duration>, entries: u64) {
    samples.sort_unstable();
    println!(
        "{what}, log of {entries}: p50 {:.1} µs, p99 {:.1} µs, max {:.1} µs ({} samples)",
        support::percentile(&samples, 50).as_secs_f64() * 1e6,
        support::percentile(&samples, 99).as_secs_f64() * 1e6,
        samples.last().copied().unwrap_or_default().as_secs_f64() * 1e6,
        samples.len()
    );
}
