//! Ingest end to end against a real Mosquitto broker, the real sequencer and redb: good
//! readings are anchored exactly once and acked; every kind of bad input lands in quarantine
//! with its reason; an unknown device's readings pass once it is registered; two workers on
//! one shared subscription with redeliveries still anchor every reading once; device acks
//! held beyond their bound pause intake, and none is dropped.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::{
    Devices, Node, PATIENCE, backlog, device, device_key, good, now_ms, signed_reading, single,
};
use ingest::{QuarantinePage, RejectReason, query};
use ledger::merkle::{Hash, LeafIndex, TreeSize, leaf_hash, root_from_leaf_hashes};
use ledger::proof::root_from_inclusion_path;
use protocol::{KeyEpoch, SequenceNumber};
use test_support::{Mosquitto, wait_until_async};

/// Every reading leaf across all committed batches, checked against each batch's root;
/// panics if a reading is anchored twice.
async fn anchored_leaves(node: &Node) -> BTreeSet<Hash> {
    let mut leaves = BTreeSet::new();
    for (_, batch) in node.batches().await {
        let stored = query::batch(node.sequencer.storage(), &batch.batch_root)
            .expect("read batch")
            .expect("every committed batch has its record");
        assert_eq!(
            root_from_leaf_hashes(&stored.reading_leaves),
            batch.batch_root
        );
        assert_eq!(
            stored.reading_leaves.len(),
            usize::try_from(batch.reading_count).expect("count")
        );
        for leaf in stored.reading_leaves {
            assert!(leaves.insert(leaf), "a reading is anchored twice");
        }
    }
    leaves
}

/// A device's quarantine reasons and claimed sequence numbers.
/// Registers test devices `ns` with their first key.
async fn register(node: &Node, ns: &[u8]) {
    for &n in ns {
        node.ingest
            .registry()
            .register_device(
                device(n),
                KeyEpoch(1),
                device_key(n).verifying_key().to_bytes(),
                now_ms(),
            )
            .await
            .expect("register");
    }
}

fn quarantine_of(node: &Node, n: u8) -> Vec<(RejectReason, Option<u64>)> {
    let list = node
        .ingest
        .quarantine(
            Some(device(n)),
            QuarantinePage {
                after_id: None,
                limit: 1000,
            },
        )
        .expect("list quarantine");
    assert_eq!(list.next_after, None);
    list.records
        .iter()
        .map(|r| (r.reason, r.sequence.map(|s| s.0)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn good_readings_are_anchored_once_and_bad_ones_quarantined_with_their_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Mosquitto::start(dir.path());
    let node = Node::start(dir.path(), broker.port(), |_| {}).await;
    register(&node, &[1, 2]).await;
    let devices = Devices::connect(broker.port()).await;

    // Good readings: singles and a backlog from device 1, singles from device 2.
    for sequence in 1..=20 {
        devices.publish(1, single(&good(1, sequence))).await;
    }
    devices
        .publish(
            1,
            backlog(&(21..=30).map(|s| good(1, s)).collect::<Vec<_>>()),
        )
        .await;
    for sequence in 1..=10 {
        devices.publish(2, single(&good(2, sequence))).await;
    }
    // Bad input.
    devices.publish(1, b"not an uplink".to_vec()).await;
    devices
        .publish(1, single(&signed_reading(1, 100, 450, &device_key(9))))
        .await;
    devices.publish(1, single(&good(2, 50))).await;
    devices.publish(2, vec![0x01; 9 * 1024]).await;
    for sequence in 1..=3 {
        devices.publish(3, single(&good(3, sequence))).await;
    }
    wait_until_async(
        "acks of every good reading and the bad signature",
        PATIENCE,
        || async { devices.acked_all(1, (1..=30).chain([100])) && devices.acked_all(2, 1..=10) },
    )
    .await;
    wait_until_async(
        "the unknown device's readings in quarantine",
        PATIENCE,
        || async { quarantine_of(&node, 3).len() == 3 },
    )
    .await;

    // Replays after the originals are committed: exact repeats and a conflicting reading.
    for sequence in 1..=5 {
        devices.publish(1, single(&good(1, sequence))).await;
    }
    devices
        .publish(1, single(&signed_reading(1, 6, -999, &device_key(1))))
        .await;
    wait_until_async("the conflicting replay in quarantine", PATIENCE, || async {
        quarantine_of(&node, 1)
            .iter()
            .any(|(reason, _)| *reason == RejectReason::ConflictingReplay)
    })
    .await;
    wait_until_async("the duplicates counted", PATIENCE, || async {
        node.ingest.metrics().readings_duplicate == 5
    })
    .await;

    // The unknown device is registered; its readings are offered again and pass.
    assert!(
        devices.acked(3).is_empty(),
        "an unknown device's readings are never acked"
    );
    register(&node, &[3]).await;
    for sequence in 1..=3 {
        devices.publish(3, single(&good(3, sequence))).await;
    }
    wait_until_async("device 3 acked after registration", PATIENCE, || async {
        devices.acked_all(3, 1..=3)
    })
    .await;

    // Exactly once: the anchored leaves are exactly the good readings.
    let expected: BTreeSet<Hash> = (1..=30)
        .map(|s| leaf_hash(&good(1, s)))
        .chain((1..=10).map(|s| leaf_hash(&good(2, s))))
        .chain((1..=3).map(|s| leaf_hash(&good(3, s))))
        .collect();
    // Device times differ between signings, so compare by the stored readings instead.
    let mut stored = BTreeSet::new();
    for (n, sequences) in [(1u8, 1..=30u64), (2, 1..=10), (3, 1..=3)] {
        for sequence in sequences {
            let reading = node
                .ingest
                .reading(device(n), SequenceNumber(sequence))
                .expect("read")
                .unwrap_or_else(|| panic!("device {n} reading {sequence} committed"));
            stored.insert(leaf_hash(&reading.signed));
        }
    }
    assert_eq!(stored.len(), expected.len());
    assert_eq!(anchored_leaves(&node).await, stored);

    // Quarantine holds each bad input with its reason, and the acks never named the
    // misrouted reading on the device it claims to be.
    let mut reasons_1 = quarantine_of(&node, 1);
    reasons_1.sort();
    assert_eq!(
        reasons_1,
        vec![
            (RejectReason::Undecodable, None),
            (RejectReason::TopicMismatch, Some(50)),
            (RejectReason::BadSignature, Some(100)),
            (RejectReason::ConflictingReplay, Some(6)),
        ]
    );
    assert_eq!(
        quarantine_of(&node, 2),
        vec![(RejectReason::Oversized, None)]
    );
    let mut reasons_3 = quarantine_of(&node, 3);
    reasons_3.sort();
    assert_eq!(
        reasons_3,
        vec![
            (RejectReason::UnknownDevice, Some(1)),
            (RejectReason::UnknownDevice, Some(2)),
            (RejectReason::UnknownDevice, Some(3)),
        ]
    );
    assert!(!devices.acked(2).contains(&50));

    // A reading's anchor proves it up to its log entry.
    let anchor = node
        .ingest
        .reading_anchor(device(1), SequenceNumber(25))
        .await
        .expect("anchor")
        .expect("committed");
    let leaf = leaf_hash(&anchor.reading.signed);
    let batch_size = u64::try_from(anchor.batch.reading_leaves.len()).expect("size");
    let root = root_from_inclusion_path(
        LeafIndex(u64::from(anchor.reading.position)),
        TreeSize(batch_size),
        &leaf,
        &anchor.batch_path,
    )
    .expect("a path of the right length");
    assert_eq!(root, anchor.reading.batch_root);
    assert_eq!(leaf_hash(&anchor.entry), anchor.batch.entry.leaf_hash);
    let batches: BTreeMap<LeafIndex, Hash> = node
        .batches()
        .await
        .into_iter()
        .map(|(index, batch)| (index, batch.batch_root))
        .collect();
    assert_eq!(batches.get(&anchor.leaf_index), Some(&root));

    let metrics = node.ingest.metrics();
    assert_eq!(metrics.readings_committed, 43);
    assert_eq!(metrics.rejected_for(RejectReason::UnknownDevice), 3);
    assert_eq!(metrics.rejected_for(RejectReason::BadSignature), 1);
    assert_eq!(metrics.rejected_for(RejectReason::Oversized), 1);
    assert_eq!(metrics.device_acks_dropped, 0);
    assert!(metrics.mqtt_acks >= metrics.messages_received - 1);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_with_redeliveries_anchor_every_reading_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Mosquitto::start(dir.path());
    let node = Node::start(dir.path(), broker.port(), |config| {
        config.workers = 2;
        config.batch_readings_max = 64;
        config.worker_messages_in_flight_max = 8;
    })
    .await;
    register(&node, &[1, 2]).await;
    let devices = Devices::connect(broker.port()).await;
    // Every reading is offered three times back to back: as a single, inside a backlog, and
    // as a single again, so copies land on both workers while the first is in flight.
    let readings: BTreeMap<(u8, u64), Vec<u8>> = [1u8, 2]
        .into_iter()
        .flat_map(|n| (1..=150u64).map(move |s| ((n, s), good(n, s))))
        .collect();
    for chunk in readings.iter().collect::<Vec<_>>().chunks(10) {
        for ((n, _), bytes) in chunk {
            devices.publish(*n, single(bytes)).await;
        }
        let n = chunk[0].0.0;
        let same_device: Vec<Vec<u8>> = chunk
            .iter()
            .filter(|((d, _), _)| *d == n)
            .map(|(_, b)| (*b).clone())
            .collect();
        devices.publish(n, backlog(&same_device)).await;
        for ((n, _), bytes) in chunk {
            devices.publish(*n, single(bytes)).await;
        }
    }
    wait_until_async("every reading acked", PATIENCE, || async {
        devices.acked_all(1, 1..=150) && devices.acked_all(2, 1..=150)
    })
    .await;
    let expected: BTreeSet<Hash> = readings.values().map(|b| leaf_hash(b)).collect();
    wait_until_async("every duplicate handled", PATIENCE, || async {
        let m = node.ingest.metrics();
        m.readings_committed + m.readings_duplicate == 3 * 300
    })
    .await;
    assert_eq!(anchored_leaves(&node).await, expected);
    let metrics = node.ingest.metrics();
    assert_eq!(metrics.readings_committed, 300);
    assert_eq!(metrics.readings_duplicate, 600);
    assert!(
        metrics.batches_committed >= 5,
        "the count bound split the stream"
    );
    assert!(quarantine_of(&node, 1).is_empty() && quarantine_of(&node, 2).is_empty());
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_device_acks_pause_intake_and_none_is_dropped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Mosquitto::start(dir.path());
    // Acks gathered for 50 ms, and a single held sequence number stops intake: every
    // message after the first durable round waits for the acks before it to leave.
    let node = Node::start(dir.path(), broker.port(), |config| {
        config.workers = 2;
        config.batch_readings_max = 32;
        config.worker_messages_in_flight_max = 16;
        config.device_ack_held_max = 1;
        config.device_ack_interval_ms = 50;
    })
    .await;
    register(&node, &[1, 2]).await;
    let devices = Devices::connect(broker.port()).await;
    for sequence in 1..=200u64 {
        for n in [1, 2] {
            devices.publish(n, single(&good(n, sequence))).await;
        }
    }
    wait_until_async("every reading acked", PATIENCE, || async {
        devices.acked_all(1, 1..=200) && devices.acked_all(2, 1..=200)
    })
    .await;
    let metrics = node.ingest.metrics();
    assert_eq!(metrics.readings_committed, 400);
    assert_eq!(metrics.device_acks_dropped, 0, "no ack is ever shed");
    assert!(
        metrics.intake_paused_for_acks >= 1,
        "intake paused while acks were held: {metrics:?}"
    );
    assert!(
        metrics.device_acks_published < 400,
        "acks of several readings were merged: {} acks for 400 readings",
        metrics.device_acks_published
    );
    node.stop().await;
}
