//! Ingest's storage reads and writes ([`IngestStorage`]) on the ScyllaDB backend against a real
//! CQL node (Apache Cassandra 5.0 from Maven Central, started once for this test binary, each
//! test in a keyspace of its own): records committed with a round, point and batched reads,
//! scans inside a device's partition (paged), a scan across partitions refused, records
//! written outside a round, and a clear error — not a panic — on a current-thread runtime.
//!
//! Needs Java 17 and Maven (`cargo xtask test` installs them).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use ingest::IngestStorage;
use ledger::storage::scylla::{ScyllaConfig, ScyllaStorage};
use ledger::storage::{CommitError, LogState, LogStorage, ReadError, RoundCommit, SidecarRecord};
use test_support::cassandra::shared_node;

const EMPTY_ROOT: [u8; 32] = [0; 32];
const READINGS: &str = "ingest_readings";

async fn fresh() -> ScyllaStorage {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let keyspace = format!(
        "i{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    );
    let node = std::thread::spawn(|| shared_node().contact_point())
        .join()
        .expect("the shared node");
    ScyllaStorage::connect(&ScyllaConfig::new(vec![node], &keyspace), EMPTY_ROOT)
        .await
        .unwrap_or_else(|error| panic!("connect to {keyspace}: {error:?}"))
}

fn reading_key(device: u8, sequence: u64) -> Vec<u8> {
    [[device; 8].as_slice(), &sequence.to_be_bytes()].concat()
}

fn reading(device: u8, sequence: u64) -> SidecarRecord {
    SidecarRecord {
        table: READINGS.into(),
        key: reading_key(device, sequence),
        value: format!("reading {device} {sequence}").into_bytes(),
    }
}

/// Commits one round holding `records`, on a fresh log.
async fn commit(storage: &ScyllaStorage, records: Vec<SidecarRecord>) {
    let round = RoundCommit {
        previous: LogState::empty(EMPTY_ROOT),
        next: LogState {
            size: 1,
            root: [1; 32],
        },
        tiles: vec![(ledger::storage::TileKey { level: 0, index: 0 }, vec![1; 32])],
        bundles: vec![(0, vec![0, 1, 9])],
        sidecars: records,
    };
    storage.commit_round(Arc::new(round)).await.expect("commit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_records_are_read_one_by_one_and_in_batches() {
    let storage = fresh().await;
    commit(&storage, (0..5).map(|s| reading(1, s)).collect()).await;
    assert_eq!(
        storage.read(READINGS, &reading_key(1, 3)).expect("read"),
        Some(b"reading 1 3".to_vec())
    );
    assert_eq!(
        storage.read(READINGS, &reading_key(2, 3)).expect("read"),
        None
    );
    assert_eq!(storage.read("no_such_table", b"k").expect("read"), None);
    let keys = vec![reading_key(1, 4), reading_key(9, 9), reading_key(1, 0)];
    assert_eq!(
        storage.read_many(READINGS, &keys).expect("read_many"),
        vec![
            Some(b"reading 1 4".to_vec()),
            None,
            Some(b"reading 1 0".to_vec())
        ]
    );
    assert_eq!(
        storage.read_many(READINGS, &[]).expect("none"),
        Vec::<Option<Vec<u8>>>::new()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scans_stay_in_one_device_page_through_and_refuse_to_cross_devices() {
    let storage = fresh().await;
    // 2,300 readings of device 1 (more than two pages of the backend's scan), 3 of device 2.
    let mut records: Vec<SidecarRecord> = (0..2_300).map(|s| reading(1, s)).collect();
    records.extend((0..3).map(|s| reading(2, s)));
    commit(&storage, records).await;
    let end = reading_key(1, u64::MAX);
    let all = storage
        .scan(READINGS, &reading_key(1, 0), &end, usize::MAX)
        .expect("scan");
    assert_eq!(all.len(), 2_300);
    assert!(all.windows(2).all(|w| w[0].0 < w[1].0), "in key order");
    let window = storage
        .scan(
            READINGS,
            &reading_key(1, 100),
            &reading_key(1, 2_200),
            1_500,
        )
        .expect("scan");
    assert_eq!(window.len(), 1_500);
    assert_eq!(window[0].0, reading_key(1, 100));
    assert_eq!(window[1_499].0, reading_key(1, 1_599));
    let device_two = storage
        .scan(
            READINGS,
            &reading_key(2, 0),
            &[[2u8; 8].as_slice(), &[0xff; 9]].concat(),
            10,
        )
        .expect("scan");
    assert_eq!(device_two.len(), 3);
    assert!(
        storage
            .scan(READINGS, &end, &reading_key(1, 0), 10)
            .expect("empty")
            .is_empty()
    );
    // From device 1 into device 2: refused, not half answered.
    let crossing = storage.scan(READINGS, &reading_key(1, 0), &reading_key(2, 1), 10);
    assert!(
        matches!(crossing, Err(ReadError::Backend(_))),
        "{crossing:?}"
    );
    // A table without a rule is one partition: any range is inside.
    storage
        .put_records(vec![
            SidecarRecord {
                table: "api_orgs".into(),
                key: b"b".to_vec(),
                value: b"2".to_vec(),
            },
            SidecarRecord {
                table: "api_orgs".into(),
                key: b"a".to_vec(),
                value: b"1".to_vec(),
            },
        ])
        .await
        .expect("put_records");
    let orgs = storage.scan("api_orgs", b"", &[0xff], 10).expect("scan");
    assert_eq!(
        orgs,
        vec![
            (b"a".to_vec(), b"1".to_vec()),
            (b"b".to_vec(), b"2".to_vec())
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_outside_a_round_are_written_durably_and_bad_tables_refused() {
    let storage = fresh().await;
    storage
        .put_records(vec![reading(3, 1), reading(3, 2)])
        .await
        .expect("put_records");
    assert_eq!(
        storage
            .read_many(READINGS, &[reading_key(3, 1), reading_key(3, 2)])
            .expect("read"),
        vec![Some(b"reading 3 1".to_vec()), Some(b"reading 3 2".to_vec())]
    );
    // A set over the logged batch's limit goes through a record intent: all there too.
    let large: Vec<SidecarRecord> = (100..164)
        .map(|s| SidecarRecord {
            value: vec![u8::try_from(s).expect("small"); 4_096],
            ..reading(3, s)
        })
        .collect();
    storage
        .put_records(large.clone())
        .await
        .expect("large put_records");
    let keys: Vec<Vec<u8>> = large.iter().map(|r| r.key.clone()).collect();
    let values: Vec<Option<Vec<u8>>> = large.into_iter().map(|r| Some(r.value)).collect();
    assert_eq!(storage.read_many(READINGS, &keys).expect("read"), values);
    // Nothing is left pending for the next load to apply.
    storage.load().await.expect("load");
    let mut bad = reading(3, 3);
    bad.table = "log_tiles".into();
    let refused = storage.put_records(vec![reading(3, 4), bad]).await;
    assert!(
        matches!(refused, Err(CommitError::Invalid(_))),
        "{refused:?}"
    );
    assert_eq!(
        storage.read(READINGS, &reading_key(3, 4)).expect("read"),
        None
    );
}

#[tokio::test(flavor = "current_thread")]
async fn synchronous_reads_on_a_current_thread_runtime_are_an_error_not_a_panic() {
    let storage = fresh().await;
    let read = storage.read(READINGS, &reading_key(1, 1));
    assert!(
        matches!(&read, Err(ReadError::Backend(e)) if e.to_string().contains("multi-thread")),
        "{read:?}"
    );
    assert!(storage.tile_reader().is_err());
}
