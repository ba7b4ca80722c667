//! Online backup through the node's admin route and a verified restore, in one process: the
//! node keeps committing after the snapshot; the restored store matches the manifest row for
//! row, its checkpoint verifies under the log key, and a consistency proof from it to the live
//! node's checkpoint (from the live tiles over HTTP) verifies. A node of another log is not
//! taken for the same log.

mod common;

use std::time::Duration;

use api::backup::{BackupError, check_against, fetch_backup, restore};
use ledger::checkpoint::Checkpoint;
use ledger::note::Note;
use reqwest::Method;

/// Polls before giving up (a guard against hangs, not a timing assertion).
const POLLS_MAX: u32 = 2_400;

async fn import(api: &common::Api, first: u8, count: u8) {
    let devices: Vec<serde_json::Value> = (first..first + count)
        .map(|i| {
            let key = protocol::SigningKey::from_bytes(&[i; 32]);
            serde_json::json!({
                "device_id": format!("b1000000000000{i:02x}"),
                "key_epoch": 1,
                "algorithm": "ed25519",
                "public_key": api::http::hex(key.verifying_key().as_bytes()),
            })
        })
        .collect();
    let manifest = serde_json::json!({
        "format": "agritrace-device-manifest/v1",
        "devices": devices,
    });
    let (status, body) = api
        .call(Method::POST, "/v1/devices/import", None, Some(manifest))
        .await;
    assert!(status.is_success(), "{body}");
}

/// Waits until the node publishes a checkpoint of at least `size` entries; returns its size.
async fn checkpointed(api: &common::Api, size: u64) -> u64 {
    for _ in 0..POLLS_MAX {
        let response = api
            .http
            .get(format!("{}/log/checkpoint", api.base))
            .send()
            .await
            .expect("the node answers");
        if response.status().is_success() {
            let text = response.text().await.expect("a body");
            let note = Note::parse(text.as_bytes()).expect("a signed note");
            let checkpoint = Checkpoint::parse(&note.text).expect("a checkpoint");
            if checkpoint.size.0 >= size {
                return checkpoint.size.0;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no checkpoint of {size} entries was published");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_online_backup_restores_to_a_prefix_of_the_live_log() {
    let (dir, node, api) = common::start_streaming().await;
    api.bootstrap("backup-coop", &["admin", "producer"]).await;
    import(&api, 1, 3).await;
    checkpointed(&api, 3).await;

    let out = dir.path().join("node.backup");
    let manifest = fetch_backup(&api.base, &out).await.expect("a backup");
    assert!(manifest.log_size >= 3, "{manifest:?}");
    assert!(
        manifest.checkpoint_size.is_some_and(|s| s >= 3),
        "{manifest:?}"
    );
    assert!(
        manifest.tables.len() > 3,
        "the sidecar tables are in the backup: {:?}",
        manifest.tables
    );
    // No snapshot file is left in the data directory.
    let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("data"))
        .expect("list")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(".backup-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // The log grows after the backup.
    import(&api, 4, 2).await;
    let live_size = checkpointed(&api, manifest.log_size + 2).await;

    let restored = dir.path().join("restored");
    let key = dir.path().join("data").join("log.key");
    let report = {
        let (out, restored, key) = (out.clone(), restored.clone(), key.clone());
        tokio::task::spawn_blocking(move || restore(&out, &restored, Some(&key), false))
            .await
            .expect("the restore task")
            .expect("a restore")
    };
    assert_eq!(report.tables, manifest.tables);
    assert_eq!(report.log_size, manifest.log_size);
    assert_eq!(report.checkpoint_size, manifest.checkpoint_size);

    let consistent = check_against(&restored, &api.base, None)
        .await
        .expect("the restored log is a prefix of the live one");
    assert_eq!(Some(consistent.restored_size), manifest.checkpoint_size);
    assert!(consistent.live_size >= live_size, "{consistent:?}");
    assert!(consistent.proof_hashes > 0, "{consistent:?}");

    // Another log (another key, same origin) is not the same log.
    let (other_dir, other, other_api) = common::start_streaming().await;
    import(&other_api, 1, 3).await;
    checkpointed(&other_api, 3).await;
    let error = check_against(&restored, &other_api.base, None)
        .await
        .expect_err("another log");
    assert!(matches!(error, BackupError::NotTheSameLog(_)), "{error}");
    other.shutdown().await;
    drop(other_dir);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_backup_at_a_time_and_never_over_a_partial_file() {
    let (dir, node, api) = common::start().await;
    // Two at once: one is refused with 409, or both complete one after the other; never a
    // broken file.
    let first = dir.path().join("a.backup");
    let second = dir.path().join("b.backup");
    let (a, b) = tokio::join!(
        fetch_backup(&api.base, &first),
        fetch_backup(&api.base, &second)
    );
    for (outcome, path) in [(a, &first), (b, &second)] {
        match outcome {
            Ok(_) => {
                api::backup::read_backup(path).expect("a whole backup");
            }
            Err(BackupError::Http(reason)) => {
                assert!(reason.contains("409"), "{reason}");
                assert!(!path.exists(), "a refused backup left a file");
            }
            Err(other) => panic!("{other}"),
        }
    }
    // The target directory holds no temporary file.
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .expect("list")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect();
    assert!(names.is_empty(), "{names:?}");
    node.shutdown().await;
}
