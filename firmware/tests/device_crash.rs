//! Crash test of the real device binary: `agritrace-device` publishes through a real Mosquitto
//! to the acking stand-in for ingest, and is killed with SIGKILL several times mid-run (at
//! seeded moments, sometimes while the stand-in has stopped acknowledging, so unacknowledged
//! readings pile up), then restarted on the same keys directory, whose outbox journals must
//! bring back every reading that was persisted and not acknowledged.
//!
//! The binary runs with `--print-persisted`: it prints `persisted <device> <sequence>` once a
//! reading is durable in the journal (before it can be published) and `restored <device>
//! <sequence>` for each reading its journal gives back at start. What is checked, per device:
//! - every reading that arrived verifies under the manifest key, and no sequence number
//!   arrived with two different readings;
//! - no reading printed as persisted is missing at the end;
//! - each run owns the numbers from the reservation mark it started at (read from the
//!   `.seq` file before the start) up to the next run's mark; within that range the arrived
//!   numbers are exactly a prefix `start ..= last` (no hole inside a run), and the numbers
//!   after it are the abandoned tail of the reservation: at most one block
//!   ([`firmware::SEQUENCE_RESERVE`]) past the last signed reading;
//! - after each kill, the next start restored every persisted reading that had not arrived
//!   by the kill (and only numbers of earlier runs), and across the test at least one
//!   reading really came back that way (the stalled runs make sure of it: they wait until
//!   every device persisted readings the stand-in no longer acknowledges);
//! - the last run exits 0, which the binary does only when every outbox drained.
//!
//! Needs `/usr/sbin/mosquitto`. Timeouts only guard against hangs; nothing asserts on timing.

#[allow(
    dead_code,
    reason = "the harness is shared with broker_restart.rs, which uses the rest"
)]
mod broker_harness;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use broker_harness::{AckingSubscriber, ManifestDevice, read_manifest, run_device, spawn_device};
use firmware::SEQUENCE_RESERVE;
use protocol::DeviceId;
use test_support::{Mosquitto, wait_until};

const SEED: &str = "20250214";
const DEVICES: u32 = 3;
const KILLS: usize = 5;
/// Seed of the kill timings.
const TIMING_SEED: u64 = 0x6b69_6c6c_2d39;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

fn args(port: u16, keys_dir: &Path, readings: u64, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "--broker",
        &format!("127.0.0.1:{port}"),
        "--devices",
        &DEVICES.to_string(),
        "--readings",
        &readings.to_string(),
        "--keys-dir",
        &keys_dir.display().to_string(),
        "--seed",
        SEED,
        "--exit-timeout",
        "120s",
        "--sample-period",
        "20ms",
        "--resend-after",
        "2s",
        "--print-persisted",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    args
}

/// SplitMix64: the kill timings follow from [`TIMING_SEED`].
struct Timings(u64);

impl Timings {
    fn next_ms(&mut self, from: u64, to: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        from + z % (to - from)
    }
}

/// The `<kind> <device> <sequence>` lines of one run's standard output.
#[derive(Debug, Default)]
struct RunLines {
    persisted: BTreeMap<DeviceId, BTreeSet<u64>>,
    restored: BTreeMap<DeviceId, BTreeSet<u64>>,
}

fn parse_lines(stdout: &str) -> RunLines {
    let mut lines = RunLines::default();
    for line in stdout.lines() {
        let mut words = line.split_whitespace();
        let (Some(kind), Some(device), Some(sequence), None) =
            (words.next(), words.next(), words.next(), words.next())
        else {
            continue;
        };
        let target = match kind {
            "persisted" => &mut lines.persisted,
            "restored" => &mut lines.restored,
            _ => continue,
        };
        let device: DeviceId = device.parse().expect("a device id in a journal line");
        let sequence: u64 = sequence
            .parse()
            .expect("a sequence number in a journal line");
        target.entry(device).or_default().insert(sequence);
    }
    lines
}

/// The reservation mark in `<keys>/<device>.seq` (0 before the first run).
fn mark(keys_dir: &Path, device: DeviceId) -> u64 {
    match std::fs::read_to_string(keys_dir.join(format!("{device}.seq"))) {
        Ok(text) => text.trim().parse().expect("a sequence mark"),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => 0,
        Err(error) => panic!("read the sequence mark of {device}: {error}"),
    }
}

fn of(map: &BTreeMap<DeviceId, BTreeSet<u64>>, device: DeviceId) -> BTreeSet<u64> {
    map.get(&device).cloned().unwrap_or_default()
}

#[test]
fn a_device_killed_mid_run_loses_no_persisted_reading_and_skips_only_abandoned_reservations() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let keys_dir = dir.path().join("keys");
    let runtime = runtime();
    let broker = Mosquitto::start(dir.path());
    let port = broker.port();
    let (status, _) = run_device(
        dir.path(),
        "provision",
        &args(port, &keys_dir, 1, &["--provision-only"]),
        Duration::from_secs(60),
    );
    assert!(status.success(), "provisioning failed: {status}");
    let manifest: Vec<ManifestDevice> = read_manifest(&keys_dir);
    let devices: Vec<DeviceId> = manifest.iter().map(|d| d.device).collect();
    let subscriber = AckingSubscriber::start(runtime.handle(), port, &manifest);
    let mut timings = Timings(TIMING_SEED);

    // starts[r][device]: the mark run r started from; lines[r]: what run r printed;
    // arrived_at_kill[r][device]: what had arrived when run r was killed.
    let mut starts: Vec<BTreeMap<DeviceId, u64>> = Vec::new();
    let mut lines: Vec<RunLines> = Vec::new();
    let mut arrived_at_kill: Vec<BTreeMap<DeviceId, BTreeSet<u64>>> = Vec::new();
    for run in 0..KILLS {
        starts.push(devices.iter().map(|&d| (d, mark(&keys_dir, d))).collect());
        let name = format!("run-{run}");
        let mut process = spawn_device(dir.path(), &name, &args(port, &keys_dir, 1_000_000, &[]));
        // Let every device persist a few readings of this run, then a seeded while more.
        wait_until(
            "every device to persist readings",
            Duration::from_secs(60),
            || {
                assert!(
                    process.try_wait().is_none(),
                    "agritrace-device exited early:\n{}",
                    process.stderr_tail(60)
                );
                let printed = parse_lines(&process.stdout());
                devices
                    .iter()
                    .all(|&d| of(&printed.persisted, d).len() >= 3)
            },
        );
        std::thread::sleep(Duration::from_millis(timings.next_ms(100, 900)));
        // Every other kill comes while the stand-in has stopped acknowledging: readings pile
        // up unacknowledged in the outboxes and only the journals can bring them back.
        let stalled = run % 2 == 1;
        if stalled {
            subscriber.ignore_next(u64::MAX);
            // At least two readings per device persisted after the stall began (they cannot
            // be acknowledged before the kill), then a seeded while more.
            let printed = parse_lines(&process.stdout());
            let before: BTreeMap<DeviceId, usize> = devices
                .iter()
                .map(|&d| (d, of(&printed.persisted, d).len()))
                .collect();
            wait_until(
                "every device to persist readings while unacknowledged",
                Duration::from_secs(60),
                || {
                    let printed = parse_lines(&process.stdout());
                    devices
                        .iter()
                        .all(|&d| of(&printed.persisted, d).len() >= before[&d] + 2)
                },
            );
            std::thread::sleep(Duration::from_millis(timings.next_ms(200, 600)));
        }
        process.kill9();
        // Let the broker hand over what the dead client had already published.
        std::thread::sleep(Duration::from_millis(300));
        arrived_at_kill.push(
            devices
                .iter()
                .map(|&d| (d, subscriber.sequences(d)))
                .collect(),
        );
        subscriber.ignore_next(0);
        lines.push(parse_lines(&process.stdout()));
    }

    // The last run takes a few readings, delivers everything (restored readings included) and
    // exits 0 only when every outbox is empty.
    starts.push(devices.iter().map(|&d| (d, mark(&keys_dir, d))).collect());
    let mut last = spawn_device(dir.path(), "last", &args(port, &keys_dir, 20, &[]))
        .with_patience(Duration::from_secs(240));
    let status = last.wait_blocking();
    assert!(
        status.success(),
        "the last run failed ({status}):\n--- stdout\n{}\n--- stderr (tail)\n{}",
        last.stdout(),
        last.stderr_tail(60)
    );
    lines.push(parse_lines(&last.stdout()));
    let collected = subscriber.take();

    assert!(
        collected.rejected.is_empty(),
        "readings that did not verify: {:?}",
        collected.rejected
    );
    assert!(
        collected.conflicts.is_empty(),
        "reused sequence numbers: {:?}",
        collected.conflicts
    );
    let reserve = SEQUENCE_RESERVE;
    let mut came_back = 0usize;
    for &device in &devices {
        let arrived = collected.sequences(device);
        let persisted: BTreeSet<u64> = lines
            .iter()
            .flat_map(|l| of(&l.persisted, device))
            .collect();
        let missing: Vec<u64> = persisted.difference(&arrived).copied().collect();
        assert!(
            missing.is_empty(),
            "device {device}: persisted readings never arrived: {missing:?}"
        );
        // Nothing was evicted (the outbox holds 1024 readings).
        for bytes in collected.readings[&device].values() {
            let signed = protocol::SignedReading::decode(bytes).expect("a signed reading");
            assert_eq!(signed.reading().dropped_samples, 0, "device {device}");
        }

        for (run, printed) in lines.iter().enumerate() {
            let start = starts[run][&device];
            let end = starts.get(run + 1).map_or(u64::MAX, |next| next[&device]);
            assert!(
                start.is_multiple_of(reserve) && start < end,
                "device {device}: run {run} owns {start}..{end}"
            );
            let owned: Vec<u64> = arrived.range(start..end).copied().collect();
            let signed_to = owned.last().map_or(start, |&last| last + 1);
            let contiguous: Vec<u64> = (start..signed_to).collect();
            assert_eq!(
                owned, contiguous,
                "device {device}: run {run} left a hole that no reboot explains"
            );
            assert!(
                end == u64::MAX || end - signed_to <= reserve,
                "device {device}: run {run} signed up to {signed_to} but the next run starts at \
                 {end}, more than one abandoned reservation block later"
            );
            let own_persisted = of(&printed.persisted, device);
            assert!(
                own_persisted.iter().all(|s| (start..end).contains(s)),
                "device {device}: run {run} persisted numbers outside {start}..{end}: \
                 {own_persisted:?}"
            );
            // What the start of this run restored: every persisted reading of earlier runs
            // that had not arrived at the last kill, and only numbers of earlier runs.
            let restored = of(&printed.restored, device);
            assert!(
                restored.iter().all(|&s| s < start),
                "device {device}: run {run} restored numbers of its own: {restored:?}"
            );
            if run > 0 {
                let at_kill = &arrived_at_kill[run - 1][&device];
                let earlier: BTreeSet<u64> = lines[..run]
                    .iter()
                    .flat_map(|l| of(&l.persisted, device))
                    .collect();
                let owed: BTreeSet<u64> = earlier.difference(at_kill).copied().collect();
                let not_restored: Vec<u64> = owed.difference(&restored).copied().collect();
                assert!(
                    not_restored.is_empty(),
                    "device {device}: run {run} did not restore {not_restored:?} (persisted, \
                     not arrived at the kill)"
                );
                came_back += owed.len();
            }
        }
    }
    assert!(
        came_back > 0,
        "no kill left an unacknowledged persisted reading behind: the test proved nothing"
    );
    eprintln!(
        "device crash: {KILLS} kills, {} readings arrived, {came_back} persisted readings \
         came back from the journals, {} duplicates acknowledged and dropped",
        collected.unique(),
        collected.duplicates
    );
}
