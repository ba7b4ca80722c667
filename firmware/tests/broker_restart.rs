//! End to end against a real broker: simulated devices (the `agritrace-device` binary) publish
//! signed readings through Mosquitto to a stand-in for ingest that verifies and acknowledges
//! them. Killing the broker with SIGKILL in the middle of the run and starting it again must
//! lose nothing: every sequence number of every device arrives exactly once after dedup, and
//! the binary exits 0, which it does only when every outbox is empty (acknowledged end to end).
//!
//! Needs `/usr/sbin/mosquitto` (Debian package `mosquitto`); the README's test command
//! installs it. Timeouts here only guard against hangs; nothing asserts on timing.

#[allow(
    dead_code,
    reason = "the harness is shared with the other end-to-end tests, which use the rest"
)]
mod broker_harness;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use broker_harness::{AckingSubscriber, read_manifest, run_device, spawn_device};
use test_support::{Mosquitto, wait_until};

const SEED: &str = "20240917";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

fn args(port: u16, keys_dir: &Path, devices: u32, readings: u64, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "--broker",
        &format!("127.0.0.1:{port}"),
        "--devices",
        &devices.to_string(),
        "--readings",
        &readings.to_string(),
        "--keys-dir",
        &keys_dir.display().to_string(),
        "--seed",
        SEED,
        "--exit-timeout",
        "120s",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    args
}

/// Creates the keys and the manifest without connecting, as an operator provisions a fleet.
fn provision(dir: &Path, keys_dir: &Path, devices: u32) -> Vec<broker_harness::ManifestDevice> {
    let provision_args = args(1883, keys_dir, devices, 1, &["--provision-only"]);
    let (status, _) = run_device(dir, "provision", &provision_args, Duration::from_secs(60));
    assert!(status.success(), "provisioning failed: {status}");
    let manifest = read_manifest(keys_dir);
    assert_eq!(
        manifest.len(),
        usize::try_from(devices).expect("small count")
    );
    manifest
}

#[test]
fn a_broker_killed_mid_run_loses_no_reading_and_every_outbox_drains() {
    const DEVICES: u32 = 8;
    const READINGS: u64 = 60;
    /// Uplink messages the stand-in loses after the restart (fewer if fewer arrive).
    const IGNORED_MESSAGES: u64 = 8;
    let dir = tempfile::tempdir().expect("temporary directory");
    let keys_dir = dir.path().join("keys");
    let runtime = runtime();
    let mut broker = Mosquitto::start(dir.path());
    let manifest = provision(dir.path(), &keys_dir, DEVICES);
    let subscriber = AckingSubscriber::start(runtime.handle(), broker.port(), &manifest);

    let run_args = args(
        broker.port(),
        &keys_dir,
        DEVICES,
        READINGS,
        &["--sample-period", "100ms", "--resend-after", "2s"],
    );
    let mut devices =
        spawn_device(dir.path(), "run", &run_args).with_patience(Duration::from_secs(240));

    // Kill the broker once about a third of the readings went through.
    let total = usize::try_from(u64::from(DEVICES) * READINGS).expect("small total");
    wait_until(
        "a third of the readings to arrive",
        Duration::from_secs(120),
        || {
            assert!(
                devices.try_wait().is_none(),
                "agritrace-device exited early:\n{}",
                devices.stderr_tail(60)
            );
            subscriber.unique() >= total / 3
        },
    );
    // From now on the stand-in loses the next messages without acknowledging them, as an
    // ingest that crashed before its commit would. For those lost after the restart no
    // disconnect follows, so only the devices' resend timeout (--resend-after) can bring
    // their readings back. Armed before the outage, so that it does not depend on how many
    // messages come after the restart.
    subscriber.ignore_next(IGNORED_MESSAGES);
    broker.kill9();
    // Counted once the broker is gone: every reading missing now must still arrive (the run
    // exits 0 only then), through the stand-in, whose next messages are ignored: so at
    // least one is.
    let before_outage = subscriber.unique();
    assert!(
        before_outage < total,
        "every reading arrived before the outage: the test proved nothing"
    );
    // The devices keep sampling into their outboxes while the broker is gone.
    std::thread::sleep(Duration::from_millis(1500));
    broker.restart();

    let status = devices.wait_blocking();
    let collected = subscriber.take();
    assert!(
        status.success(),
        "agritrace-device failed ({status}):\n--- stdout\n{}\n--- stderr (tail)\n{}",
        devices.stdout(),
        devices.stderr_tail(60)
    );
    assert!(
        collected.rejected.is_empty(),
        "rejected readings: {:?}",
        collected.rejected
    );
    assert!(
        collected.conflicts.is_empty(),
        "conflicting readings: {:?}",
        collected.conflicts
    );
    let expected: BTreeSet<u64> = (0..READINGS).collect();
    for device in &manifest {
        assert_eq!(
            collected.sequences(device.device),
            expected,
            "device {} did not deliver exactly sequences 0..{READINGS}",
            device.device
        );
    }
    assert_eq!(collected.unique(), total);
    // The outage really was in the middle of the run, and the stand-in lived through it.
    assert!(
        collected.connections >= 2,
        "the subscriber never saw the broker restart"
    );
    // Readings were missing at the outage and all arrived: at least one message came after
    // the ignore was armed and was ignored (all eight, unless the run ended with fewer).
    assert!(
        (1..=IGNORED_MESSAGES).contains(&collected.ignored),
        "{} messages ignored",
        collected.ignored
    );
    // The binary's own summary: every reading of every device acknowledged, none pending or
    // evicted, and at least as many sent as recorded (more when readings were sent again).
    let summary = devices.stdout();
    let mut total_sent = 0;
    for device in &manifest {
        let row = summary_row(&summary, &device.device.to_string());
        let [recorded, sent, acked, dropped, pending] = [row[2], row[3], row[4], row[5], row[6]];
        let [restored, journal_failures] = [row[8], row[9]];
        assert_eq!(
            (recorded, acked, dropped, pending),
            (READINGS, READINGS, 0, 0),
            "{summary}"
        );
        // A fresh keys directory: nothing to restore, and the journal never failed.
        assert_eq!((restored, journal_failures), (0, 0), "{summary}");
        assert!(sent >= recorded, "{summary}");
        total_sent += sent;
    }
    // The ignored messages' readings were published again.
    assert!(
        total_sent > u64::from(DEVICES) * READINGS,
        "nothing was sent again:\n{summary}"
    );
    eprintln!(
        "broker restart: {} readings, {} arrived before the outage, {} uplink messages \
         ({} ignored), {} duplicates acknowledged and dropped, {} acks sent\n{summary}",
        collected.unique(),
        before_outage,
        collected.messages,
        collected.ignored,
        collected.duplicates,
        collected.acks_sent
    );
}

#[test]
fn later_runs_on_the_same_keys_continue_the_sequence_numbers_even_after_a_kill() {
    const DEVICES: u32 = 2;
    const READINGS: u64 = 5;
    let dir = tempfile::tempdir().expect("temporary directory");
    let keys_dir = dir.path().join("keys");
    let runtime = runtime();
    let broker = Mosquitto::start(dir.path());
    let manifest = provision(dir.path(), &keys_dir, DEVICES);
    let subscriber = AckingSubscriber::start(runtime.handle(), broker.port(), &manifest);
    let period = ["--sample-period", "50ms"];
    let complete_run = args(broker.port(), &keys_dir, DEVICES, READINGS, &period);
    // Far more readings than it will live to take: this run is killed.
    let killed_run = args(broker.port(), &keys_dir, DEVICES, 100_000, &period);
    // The (first, last) sequence number a completed run reports for each device.
    let ranges = |summary: &str| -> Vec<(u64, u64)> {
        manifest
            .iter()
            .map(|device| {
                let row = summary_row(summary, &device.device.to_string());
                assert_eq!(row[1] - row[0] + 1, READINGS, "{summary}");
                (row[0], row[1])
            })
            .collect()
    };

    // 1. A run that completes.
    let (status, first_summary) =
        run_device(dir.path(), "first", &complete_run, Duration::from_secs(180));
    assert!(
        status.success(),
        "the first run failed ({status}):\n{first_summary}"
    );
    let first = ranges(&first_summary);

    // 2. A run killed with SIGKILL once every device delivered a few more readings: its
    //    unacknowledged readings die with it, its sequence numbers must never come back.
    let mut killed = spawn_device(dir.path(), "killed", &killed_run);
    wait_until(
        "readings of the run to be killed",
        Duration::from_secs(120),
        || {
            assert!(
                killed.try_wait().is_none(),
                "the run exited early:\n{}",
                killed.stderr_tail(60)
            );
            let delivered =
                |device: &broker_harness::ManifestDevice| subscriber.sequences(device.device).len();
            let first_run = usize::try_from(READINGS).expect("small");
            manifest
                .iter()
                .all(|device| delivered(device) >= first_run + 3)
        },
    );
    killed.kill9();

    // 3. A run that completes again.
    let (status, third_summary) =
        run_device(dir.path(), "third", &complete_run, Duration::from_secs(180));
    assert!(
        status.success(),
        "the third run failed ({status}):\n{third_summary}"
    );
    let third = ranges(&third_summary);

    let collected = subscriber.take();
    assert!(
        collected.rejected.is_empty(),
        "rejected readings: {:?}",
        collected.rejected
    );
    assert!(
        collected.conflicts.is_empty(),
        "reused sequence numbers: {:?}",
        collected.conflicts
    );
    // The keys were reused: the same manifest, and every reading verified under it.
    let again = read_manifest(&keys_dir);
    for (before, after) in manifest.iter().zip(&again) {
        assert_eq!(before.device, after.device);
        assert_eq!(before.public_key, after.public_key);
    }
    for (index, device) in manifest.iter().enumerate() {
        let (first, third) = (first[index], third[index]);
        let delivered = collected.sequences(device.device);
        let in_range = |(from, to): (u64, u64)| delivered.range(from..=to).count();
        assert_eq!(
            in_range(first),
            delivered.range(..=first.1).count(),
            "{delivered:?}"
        );
        assert_eq!(
            usize::try_from(READINGS).ok(),
            Some(in_range(first)),
            "{delivered:?}"
        );
        assert_eq!(
            usize::try_from(READINGS).ok(),
            Some(in_range(third)),
            "{delivered:?}"
        );
        // What the killed run delivered lies strictly between the two completed runs.
        let killed_run: BTreeSet<u64> = delivered
            .iter()
            .copied()
            .filter(|s| !(first.0..=first.1).contains(s) && !(third.0..=third.1).contains(s))
            .collect();
        assert!(
            !killed_run.is_empty(),
            "the killed run delivered nothing: {delivered:?}"
        );
        assert!(
            first.1 < killed_run.iter().copied().min().unwrap_or(0)
                && killed_run.iter().copied().max().unwrap_or(u64::MAX) < third.0,
            "device {} reused sequence numbers: first run {first:?}, killed run {killed_run:?}, \
             third run {third:?}",
            device.device
        );
    }
}

/// The numeric columns of the summary line that starts with `device` (first and last sequence,
/// recorded, sent, acked, dropped, pending, connections, restored, journal failures).
fn summary_row(summary: &str, device: &str) -> Vec<u64> {
    let line = summary
        .lines()
        .find(|line| line.starts_with(device))
        .unwrap_or_else(|| panic!("no summary line for {device}:\n{summary}"));
    let row: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|column| {
            column
                .parse()
                .unwrap_or_else(|_| panic!("bad summary line {line:?}"))
        })
        .collect();
    assert_eq!(row.len(), 10, "summary line {line:?}");
    row
}
