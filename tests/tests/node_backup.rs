//! Online backup of a node under load, and a verified restore: while simulated devices stream
//! through real Mosquitto, `agritrace backup` asks the running node for a snapshot (the node
//! keeps ingesting); the devices go on and drain; the backup is restored into a new data
//! directory and proved to be the same log (`agritrace restore --against` the live node: the
//! checkpoint's signature, every table's rows, a consistency proof from the live node's
//! tiles); a node started on the restored directory serves the log under the same key, and
//! its checkpoint is consistent with the live log read back after the run. A corrupt and a
//! truncated copy of the backup are refused, and leave no store behind.

use system_tests::Mosquitto;
use system_tests::audit::LogAudit;
use system_tests::fleet::{Fleet, persisted};
use system_tests::node::{NodeProcess, NodeSettings};

const DEVICES: u32 = 8;
const READINGS: u64 = 400;
/// Readings the node must have accepted before the backup is taken.
const ACCEPTED_BEFORE_BACKUP: f64 = 300.0;

fn json(stdout: &str) -> serde_json::Value {
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON report ({e}): {stdout}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_online_backup_restores_to_the_same_log() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let dir = dir.path();
    let broker = Mosquitto::start(dir);
    let mut node = NodeProcess::start(dir, broker.port(), &NodeSettings::default()).await;
    let fleet = Fleet::provision(dir, DEVICES, "bacc0000", 43).await;
    node.import(&fleet.manifest()).await;
    let log_key = node.log_key().await;

    // 8 devices × 40 readings/s for 10 s.
    let mut devices = fleet.stream(dir, broker.port(), READINGS, 40, "1s");
    node.accepted_at_least(ACCEPTED_BEFORE_BACKUP).await;

    // The backup, taken while the devices stream.
    let backup = dir.join("node.backup");
    let (status, process) = node
        .command(
            "backup",
            &[
                "backup".to_owned(),
                "--url".to_owned(),
                node.url(),
                "--out".to_owned(),
                backup.display().to_string(),
            ],
        )
        .await;
    assert!(
        status.success(),
        "agritrace backup failed: {status}\n{}",
        process.stderr_tail(20)
    );
    let taken = json(&process.stdout());
    let backed_up_size = taken["logSize"].as_u64().expect("logSize");
    let after_backup = node
        .metric("agritrace_ingest_readings_accepted_total")
        .await;
    assert!(
        devices.try_wait().is_none(),
        "the devices finished before the backup was written: it must be taken under load"
    );
    // Online: the node goes on ingesting after the snapshot.
    node.accepted_at_least(after_backup + 1.0).await;
    eprintln!("backup of {backed_up_size} entries: {taken}");

    // Restore into a new data directory and prove it against the live node.
    let restored_dir = dir.join("restored");
    let restored_data = restored_dir.join("node-data");
    let restore_args = |from: &std::path::Path, into: &std::path::Path| {
        vec![
            "restore".to_owned(),
            "--from".to_owned(),
            from.display().to_string(),
            "--data-dir".to_owned(),
            into.display().to_string(),
            "--log-key".to_owned(),
            node.data_dir().join("log.key").display().to_string(),
            "--against".to_owned(),
            node.url(),
        ]
    };
    let (status, process) = node
        .command("restore", &restore_args(&backup, &restored_data))
        .await;
    assert!(
        status.success(),
        "agritrace restore failed: {status}\n{}",
        process.stderr_tail(20)
    );
    let report = json(&process.stdout());
    assert_eq!(report["restored"]["logSize"].as_u64(), Some(backed_up_size));
    assert_eq!(report["restored"]["tables"], taken["tables"]);
    assert_eq!(report["restored"]["logKeyRestored"], true);
    let restored_size = report["consistent"]["restoredSize"]
        .as_u64()
        .expect("restoredSize");
    let live_size = report["consistent"]["liveSize"].as_u64().expect("liveSize");
    assert!(restored_size <= live_size, "{report}");
    eprintln!("restored: {report}");

    // A second restore into the same directory is refused.
    let (status, process) = node
        .command("restore-again", &restore_args(&backup, &restored_data))
        .await;
    assert!(
        !status.success(),
        "a non-empty data directory was restored into"
    );
    assert!(
        process.stderr_tail(5).contains("is not empty"),
        "{}",
        process.stderr_tail(5)
    );

    // A corrupt and a truncated backup are refused with their fault, and leave no store.
    let bytes = std::fs::read(&backup).expect("read the backup");
    let mut corrupt = bytes.clone();
    let middle = corrupt.len() / 2;
    corrupt[middle] ^= 0x40;
    for (name, damaged, fault) in [
        ("corrupt", corrupt, "SHA-256"),
        (
            "truncated",
            bytes[..bytes.len() - 4096].to_vec(),
            "truncated",
        ),
    ] {
        let file = dir.join(format!("{name}.backup"));
        std::fs::write(&file, damaged).expect("write a damaged backup");
        let into = dir.join(name).join("node-data");
        let (status, process) = node
            .command(&format!("restore-{name}"), &restore_args(&file, &into))
            .await;
        assert!(!status.success(), "a {name} backup was restored");
        let said = process.stderr_tail(5);
        assert!(said.contains(fault), "a {name} backup: {said}");
        assert!(
            !into.join("agritrace.redb").exists(),
            "a {name} backup left a store behind"
        );
    }

    // The devices drain their outboxes into the live node.
    let status = devices.wait().await;
    assert!(
        status.success(),
        "the devices did not drain their outboxes: {status}\n{}",
        devices.stderr_tail(40)
    );
    let made = persisted(&devices.stdout());

    // A node on the restored directory (its own broker: it must not take the live node's
    // readings) serves the same log under the same key.
    let restored_broker = Mosquitto::start(&restored_dir);
    let mut restored = NodeProcess::start(
        &restored_dir,
        restored_broker.port(),
        &NodeSettings::default(),
    )
    .await;
    assert_eq!(restored.log_key().await, log_key);
    let restored_checkpoint = restored
        .checkpoint()
        .await
        .expect("the restored node serves a checkpoint");
    restored.stop().await;

    // The restored directory, after a node ran on it, is still a prefix of the live log.
    let (status, process) = node
        .command(
            "restore-check",
            &[
                "restore".to_owned(),
                "--check".to_owned(),
                "--data-dir".to_owned(),
                restored_data.display().to_string(),
                "--against".to_owned(),
                node.url(),
            ],
        )
        .await;
    assert!(
        status.success(),
        "agritrace restore --check failed: {status}\n{}",
        process.stderr_tail(20)
    );
    let live_checkpoint = node.checkpoint().await.expect("a live checkpoint");
    node.stop().await;

    let audit = LogAudit::read(&node.store_path()).await;
    let largest = audit.check_checkpoints(&log_key, &[restored_checkpoint, live_checkpoint]);
    let problems = audit.check_readings(&made);
    assert!(
        problems.is_empty(),
        "the live log does not hold each reading exactly once:\n{}",
        problems.join("\n")
    );
    eprintln!(
        "live log of {} entries; the restored node's checkpoint is consistent with it (largest \
         checked {largest})",
        audit.size
    );
}
