//! kill -9 of the node under load, three times, against real Mosquitto and real device
//! processes, then restart on the same data directory: every reading any device received an
//! ack for is in the log exactly once, no sequence number is missing once the outboxes drain,
//! and every checkpoint served before a crash is consistent with the log after it.
//!
//! The node runs two ingest workers on one shared subscription, so after each restart the
//! devices' resends of readings already committed (their acks died with the node) land on
//! either worker: deduplication must hold where readings commit, not in a worker.

use std::collections::BTreeSet;
use std::time::Duration;

use system_tests::audit::LogAudit;
use system_tests::fleet::{Fleet, persisted, summary};
use system_tests::node::{NodeProcess, NodeSettings};
use system_tests::{Mosquitto, PATIENCE};

const DEVICES: u32 = 12;
const READINGS: u64 = 600;
const KILLS: u32 = 3;
/// Readings the node must accept after each start before it is killed.
const ACCEPTED_BEFORE_KILL: f64 = 400.0;

/// Adds the node's latest checkpoint, if any, to `seen`.
async fn note_checkpoint(node: &NodeProcess, seen: &mut BTreeSet<String>) {
    if let Some(note) = node.checkpoint().await {
        seen.insert(note);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_killed_under_load_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let dir = dir.path();
    let broker = Mosquitto::start(dir);
    let mut node = NodeProcess::start(dir, broker.port(), &NodeSettings::default()).await;
    let fleet = Fleet::provision(dir, DEVICES, "c0ffee00", 41).await;
    node.import(&fleet.manifest()).await;
    let log_key = node.log_key().await;

    // 12 devices × 40 readings/s for 15 s; a reading unacknowledged for 1 s is sent again.
    let mut devices = fleet.stream(dir, broker.port(), READINGS, 40, "1s");

    let mut checkpoints = BTreeSet::new();
    for kill in 1..=KILLS {
        // Checkpoints are collected as they are served, to check against the log later.
        let started = std::time::Instant::now();
        let accepted = loop {
            note_checkpoint(&node, &mut checkpoints).await;
            let accepted = node
                .metric("agritrace_ingest_readings_accepted_total")
                .await;
            if accepted >= ACCEPTED_BEFORE_KILL {
                break accepted;
            }
            assert!(
                started.elapsed() < PATIENCE,
                "the node accepted only {accepted} readings\n{}",
                node.log_tail(40)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        note_checkpoint(&node, &mut checkpoints).await;
        assert!(
            devices.try_wait().is_none(),
            "the devices finished before kill {kill}: the node must be killed under load"
        );
        node.kill9();
        eprintln!("kill {kill}: the node had accepted {accepted} readings since its start");
        tokio::time::sleep(Duration::from_millis(300)).await;
        node.restart().await;
        note_checkpoint(&node, &mut checkpoints).await;
    }

    // The devices exit 0 only once every reading they made is acknowledged.
    let stdout = node.drained(&mut devices).await;
    note_checkpoint(&node, &mut checkpoints).await;
    let duplicates = node
        .metric("agritrace_ingest_readings_duplicate_total")
        .await;
    eprintln!("after the last restart the node saw {duplicates} repeats of committed readings");
    node.stop().await;

    let made = persisted(&stdout);
    let table = summary(&stdout);
    assert_eq!(table.len(), usize::try_from(DEVICES).expect("small"));
    for row in &table {
        assert_eq!(row.recorded, READINGS, "{row:?}");
        assert_eq!(row.acked, READINGS, "every reading acknowledged: {row:?}");
        assert_eq!((row.dropped, row.pending), (0, 0), "{row:?}");
        let (first, last) = row.sequences.expect("the device recorded readings");
        let expected: BTreeSet<u64> = (first..=last).collect();
        assert_eq!(
            made.get(&row.device),
            Some(&expected),
            "{}: the persisted readings are not its whole sequence range",
            row.device
        );
    }

    let audit = LogAudit::read(&node.store_path()).await;
    let problems = audit.check_readings(&made);
    assert!(
        problems.is_empty(),
        "the log does not hold each reading exactly once:\n{}",
        problems.join("\n")
    );
    assert_eq!(
        audit.kinds.get("key_event").copied(),
        Some(u64::from(DEVICES)),
        "one key event per device"
    );
    assert!(
        checkpoints.len() >= usize::try_from(KILLS).expect("small"),
        "too few checkpoints were seen: {}",
        checkpoints.len()
    );
    let checkpoints: Vec<String> = checkpoints.into_iter().collect();
    let largest = audit.check_checkpoints(&log_key, &checkpoints);
    eprintln!(
        "log of {} entries; {} checkpoints up to size {largest} consistent with it",
        audit.size,
        checkpoints.len()
    );
}
