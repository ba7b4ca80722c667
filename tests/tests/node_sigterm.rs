//! SIGTERM of the node under load, against real Mosquitto and real device processes: the node
//! stops taking messages, lets every batch it took commit and be acknowledged, signs its last
//! checkpoint and exits 0; the next start has no recovery work to do; the devices then drain
//! their outboxes into the restarted node, and every reading is in the log exactly once.
//!
//! "No recovery work" is read from the node's own structured log (JSON lines,
//! `AGRITRACE_LOG_FORMAT=json`, which this test also exercises): at start the sequencer says
//! the size of the durable log and of the last signed checkpoint ("sequencer resumed from
//! durable state"). Equal sizes mean no round was left unsigned; after a kill -9 they can
//! differ and the checkpointer signs the rest at start. The start also reports no round whose
//! outcome it had to find out ("the unknown round had landed") and no failed commit.

use std::time::Duration;

use system_tests::Mosquitto;
use system_tests::audit::LogAudit;
use system_tests::fleet::{Fleet, persisted, summary};
use system_tests::node::{NodeProcess, NodeSettings};

const DEVICES: u32 = 12;
const READINGS: u64 = 500;
const ACCEPTED_BEFORE_STOP: f64 = 400.0;

/// The `fields` of every JSON log line whose message is `message`.
fn log_events(log: &str, message: &str) -> Vec<serde_json::Value> {
    log.lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|event| event["fields"]["message"] == message)
        .map(|event| event["fields"].clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_drains_and_needs_no_recovery() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let dir = dir.path();
    let broker = Mosquitto::start(dir);
    let settings = NodeSettings {
        json_logs: true,
        ..NodeSettings::default()
    };
    let mut node = NodeProcess::start(dir, broker.port(), &settings).await;
    let fleet = Fleet::provision(dir, DEVICES, "5e9e0000", 47).await;
    node.import(&fleet.manifest()).await;
    let log_key = node.log_key().await;

    let mut devices = fleet.stream(dir, broker.port(), READINGS, 40, "1s");
    node.accepted_at_least(ACCEPTED_BEFORE_STOP).await;
    let last_served = node.checkpoint().await;
    assert!(
        devices.try_wait().is_none(),
        "the devices finished before the SIGTERM: the node must be stopped under load"
    );
    // SIGTERM; `stop` asserts the exit status is 0.
    node.stop().await;
    let stopped_log = node.log_of_start(node.starts());
    assert!(
        !log_events(&stopped_log, "sequencer resumed from durable state").is_empty(),
        "the node's log is not JSON lines:\n{}",
        stopped_log.lines().take(5).collect::<Vec<_>>().join("\n")
    );

    // The next start finds the log signed up to its durable size.
    tokio::time::sleep(Duration::from_millis(300)).await;
    node.restart().await;
    let started_log = node.log_of_start(node.starts());
    let resumed = log_events(&started_log, "sequencer resumed from durable state");
    assert_eq!(resumed.len(), 1, "{started_log}");
    let size = resumed[0]["size"].as_u64().expect("the durable size");
    assert_eq!(
        resumed[0]["checkpoint_size"].as_u64(),
        Some(size),
        "rounds were left unsigned by the SIGTERM: {}",
        resumed[0]
    );
    for trouble in [
        "the unknown round had landed",
        "round commit failed",
        "checkpoint not produced yet; retrying",
    ] {
        assert!(
            log_events(&started_log, trouble).is_empty(),
            "the start after a SIGTERM reported {trouble:?}"
        );
    }
    // The checkpoint the restarted node serves covers everything the stopped node committed.
    let after = node
        .checkpoint()
        .await
        .expect("a checkpoint after the restart");
    eprintln!("restart: durable size {size}, checkpoint signed at the same size");

    let stdout = node.drained(&mut devices).await;
    let final_checkpoint = node.checkpoint().await.expect("a final checkpoint");
    node.stop().await;

    let made = persisted(&stdout);
    for row in summary(&stdout) {
        assert_eq!(row.acked, READINGS, "every reading acknowledged: {row:?}");
        assert_eq!((row.dropped, row.pending), (0, 0), "{row:?}");
    }
    let audit = LogAudit::read(&node.store_path()).await;
    let problems = audit.check_readings(&made);
    assert!(
        problems.is_empty(),
        "the log does not hold each reading exactly once:\n{}",
        problems.join("\n")
    );
    let mut checkpoints = vec![after, final_checkpoint];
    checkpoints.extend(last_served);
    let largest = audit.check_checkpoints(&log_key, &checkpoints);
    eprintln!(
        "log of {} entries; checkpoints up to size {largest} consistent with it",
        audit.size
    );
}
