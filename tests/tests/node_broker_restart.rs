//! The broker dies mid-run: Mosquitto is killed with SIGKILL twice while device processes
//! stream to the node (two ingest workers on one shared subscription), and started again on
//! the same port. Every message the broker held is gone with it; the devices' outboxes and
//! the node's acknowledge-after-commit rule must make up for that: nothing lost, nothing
//! anchored twice.

use std::collections::BTreeSet;
use std::time::Duration;

use system_tests::Mosquitto;
use system_tests::audit::LogAudit;
use system_tests::fleet::{Fleet, persisted, summary};
use system_tests::node::{NodeProcess, NodeSettings};
use system_tests::wait_until;

const DEVICES: u32 = 10;
const READINGS: u64 = 400;
const BROKER_KILLS: u32 = 2;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_killed_mid_run_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let dir = dir.path();
    let mut broker = Mosquitto::start(dir);
    let mut node = NodeProcess::start(dir, broker.port(), &NodeSettings::default()).await;
    let fleet = Fleet::provision(dir, DEVICES, "b40cce55", 47).await;
    node.import(&fleet.manifest()).await;
    let mut devices = fleet.stream(dir, broker.port(), READINGS, 25, "2s");

    for kill in 1..=BROKER_KILLS {
        let threshold = f64::from(kill) * 800.0;
        wait_until("the node to accept readings", || async {
            let accepted = node
                .metric("agritrace_ingest_readings_accepted_total")
                .await;
            (accepted >= threshold).then_some(())
        })
        .await;
        assert!(
            devices.try_wait().is_none(),
            "the devices finished before broker kill {kill}"
        );
        broker.kill9();
        tokio::time::sleep(Duration::from_secs(1)).await;
        broker.restart();
    }

    let stdout = node.drained(&mut devices).await;
    let metrics = node.metrics().await;
    let reconnects = metrics
        .get("agritrace_ingest_mqtt_connections_total")
        .copied()
        .unwrap_or(0.0);
    // Each worker connected once, and again after each kill.
    let workers = NodeSettings::default().ingest_workers;
    assert!(
        reconnects >= f64::from(u32::try_from(workers).expect("small") * (BROKER_KILLS + 1)),
        "ingest did not reconnect after each broker kill: {reconnects} connections"
    );
    node.stop().await;

    let made = persisted(&stdout);
    for row in summary(&stdout) {
        assert_eq!(row.acked, READINGS, "every reading acknowledged: {row:?}");
        assert_eq!((row.dropped, row.pending), (0, 0), "{row:?}");
        assert!(
            row.connects > u64::from(BROKER_KILLS),
            "the device did not reconnect after each kill: {row:?}"
        );
        let (first, last) = row.sequences.expect("the device recorded readings");
        let expected: BTreeSet<u64> = (first..=last).collect();
        assert_eq!(made.get(&row.device), Some(&expected), "{}", row.device);
    }
    let audit = LogAudit::read(&node.store_path()).await;
    let problems = audit.check_readings(&made);
    assert!(
        problems.is_empty(),
        "the log does not hold each reading exactly once:\n{}",
        problems.join("\n")
    );
}
