//! Time to verify an evidence bundle of 100,000 signed readings (parse, then every check of
//! `verify_bundle`: checkpoints, inclusion proofs, device keys, reading signatures in Ed25519
//! batches on every core, subset proofs, seal), beside a same-run baseline: single Ed25519
//! `verify_strict` verifications per second on one core.
//!
//! Run: `cargo bench -p agritrace-verify --bench evidence` (`EVIDENCE_BENCH_READINGS` sets the
//! number of readings; `EVIDENCE_BENCH_RUNS` the timed runs, default 5;
//! `EVIDENCE_BENCH_WRITE=FILE` also writes the bundle and its policy (`FILE.policy`), to time
//! the binary on it).

#[path = "../tests/support/bundle.rs"]
mod bundle;

use std::time::{Duration, Instant};

use agritrace_verify::evidence::verify::{Trust, verify_file};
use agritrace_verify::evidence::{BundleCheckpoint, Subject};
use bundle::{MemoryLog, batch, policy, register_device, sealed, signed_reading};
use protocol::{DeviceId, KeyEpoch, SignedReading};

const DEVICES: u64 = 50;
const BATCH_READINGS: u64 = 1_000;
const T0: u64 = 1_780_000_000_000;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Single `verify_strict` verifications per second, one core, over `n` distinct readings.
fn baseline(readings: &[Vec<u8>], keys: &[(DeviceId, protocol::VerifyingKey)]) -> f64 {
    let decoded: Vec<(SignedReading<'_>, protocol::VerifyingKey)> = readings
        .iter()
        .map(|r| {
            let signed = SignedReading::decode(r).expect("decodes");
            let key = keys
                .iter()
                .find(|(d, _)| *d == signed.reading().device)
                .expect("a key")
                .1;
            (signed, key)
        })
        .collect();
    let start = Instant::now();
    for (signed, key) in &decoded {
        signed.verify(key).expect("a valid signature");
    }
    let elapsed = start.elapsed().as_secs_f64();
    f64::from(u32::try_from(decoded.len()).expect("few")) / elapsed
}

fn main() {
    let readings_total = env_number("EVIDENCE_BENCH_READINGS", 100_000);
    let runs = env_number("EVIDENCE_BENCH_RUNS", 5).max(1);

    let started = Instant::now();
    let devices: Vec<DeviceId> = (0..DEVICES)
        .map(|i| {
            let mut id = [0u8; 8];
            id[0] = 0xd0;
            id[1..].copy_from_slice(&(i + 1).to_be_bytes()[1..]);
            DeviceId(id)
        })
        .collect();
    let mut log = MemoryLog::default();
    for device in &devices {
        log.push(&register_device(*device));
    }
    let mut batches = Vec::new();
    let mut all_readings = Vec::new();
    let mut n = 0u64;
    while n < readings_total {
        let count = BATCH_READINGS.min(readings_total - n);
        let readings: Vec<Vec<u8>> = (n..n + count)
            .map(|i| {
                let device = devices[usize::try_from(i % DEVICES).expect("small")];
                signed_reading(device, KeyEpoch(1), i / DEVICES, T0 + i * 1_000)
            })
            .collect();
        all_readings.extend(readings.iter().take(400).cloned());
        let b = batch(readings, T0 + (n + count) * 1_000);
        let at = log.push(&b.entry);
        batches.push((at, b));
        n += count;
    }
    let size = log.size();
    let bundle = sealed(
        Subject::Shipment {
            exporter: "bench-exporter".into(),
            id: "SHP-BENCH".into(),
        },
        vec![BundleCheckpoint {
            signed_note: log.cosigned(size),
            consistency: vec![],
        }],
        log.bundled_entries(size),
        batches
            .iter()
            .map(|(at, b)| {
                let all: Vec<usize> = (0..b.readings.len()).collect();
                b.bundled(*at, &all)
            })
            .collect(),
        vec![],
        vec![],
    );
    let text = bundle.to_text().into_bytes();
    println!(
        "bundle: {readings_total} readings from {DEVICES} devices in {} batches, {size} entries, {:.1} MB (built in {:.1} s)",
        batches.len(),
        f64::from(u32::try_from(text.len()).unwrap_or(u32::MAX)) / 1e6,
        started.elapsed().as_secs_f64()
    );

    if let Some(path) = std::env::var_os("EVIDENCE_BENCH_WRITE") {
        let path = std::path::PathBuf::from(path);
        std::fs::write(&path, &text).expect("write the bundle");
        let mut policy_path = path.into_os_string();
        policy_path.push(".policy");
        std::fs::write(&policy_path, policy()).expect("write the policy");
    }

    let keys: Vec<(DeviceId, protocol::VerifyingKey)> = devices
        .iter()
        .map(|d| {
            (
                *d,
                bundle::device_signing_key(*d, KeyEpoch(1)).verifying_key(),
            )
        })
        .collect();
    let single = baseline(&all_readings, &keys);
    println!("baseline: single Ed25519 verify_strict: {single:.0}/s (one core)");

    let trust = Trust::Pinned(policy().into_bytes());
    let mut times: Vec<Duration> = Vec::new();
    for _ in 0..runs {
        let start = Instant::now();
        let report = verify_file(&text, &trust, &mut |_| {});
        times.push(start.elapsed());
        assert!(report.verified(), "{:?}", report.failure);
        assert_eq!(report.counts.readings, readings_total);
    }
    times.sort();
    let median = times[times.len() / 2].as_secs_f64();
    let per_second = f64::from(u32::try_from(readings_total).unwrap_or(u32::MAX)) / median;
    println!(
        "verify (parse + all checks, {} cores): median {:.3} s of {runs} runs (min {:.3} s, max {:.3} s): {per_second:.0} readings/s, {:.2}x the single-verification baseline",
        std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
        median,
        times[0].as_secs_f64(),
        times[times.len() - 1].as_secs_f64(),
        per_second / single
    );
}
