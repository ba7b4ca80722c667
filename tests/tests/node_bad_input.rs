//! Bad input mixed into a good stream, through the node as a process and real Mosquitto:
//! garbage bytes, an oversized payload, a reading on another device's topic, a bad
//! signature, an unknown device, an exact replay and a conflicting replay, while a fleet of
//! device processes streams. Each bad message lands in quarantine with its reason and is
//! counted; the ones refused for good are acknowledged so they never stall a device; the
//! unknown device's reading passes once the device is registered; every good reading is in
//! the log exactly once.

use std::collections::{BTreeMap, BTreeSet};

use ingest::RejectReason;
use protocol::limits::UPLINK_BYTES_MAX;
use protocol::topic;
use system_tests::Mosquitto;
use system_tests::audit::LogAudit;
use system_tests::fleet::{Fleet, persisted};
use system_tests::node::{NodeProcess, NodeSettings};
use system_tests::publisher::{Publisher, TestDevice, backlog, single};
use system_tests::wait_until;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_quarantined_and_good_readings_still_anchor() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let dir = dir.path();
    let broker = Mosquitto::start(dir);
    let mut node = NodeProcess::start(dir, broker.port(), &NodeSettings::default()).await;
    let fleet = Fleet::provision(dir, 6, "bad1f00d", 43).await;
    node.import(&fleet.manifest()).await;
    let known = TestDevice::new(*b"\xb0\x00\x00\x00\x00\x00\x00\x01", 7);
    let unknown = TestDevice::new(*b"\xb0\x00\x00\x00\x00\x00\x00\x02", 8);
    let manifest = |device: &TestDevice, name: &str| {
        let path = dir.join(name);
        std::fs::write(&path, device.manifest()).expect("write a manifest");
        path
    };
    node.import(&manifest(&known, "known.json")).await;

    let mut devices = fleet.spawn(
        dir,
        "devices",
        broker.port(),
        &[
            "--readings",
            "150",
            "--sample-period",
            "1s",
            "--time-scale",
            "25",
            "--resend-after",
            "2s",
        ],
    );
    let mqtt = Publisher::connect(broker.port(), "bad-input", &[known.id, unknown.id]).await;
    let known_topic = topic::readings_topic(known.id).to_string();
    let unknown_topic = topic::readings_topic(unknown.id).to_string();

    // Good readings 0..10 one by one, 10..20 as a backlog.
    let good: Vec<Vec<u8>> = (0..20).map(|s| known.signed(s, 400)).collect();
    for reading in &good[..10] {
        mqtt.publish(&known_topic, single(reading)).await;
    }
    mqtt.publish(&known_topic, backlog(&good[10..])).await;
    wait_until("the good readings to be acknowledged", || {
        std::future::ready((0..20).all(|s| mqtt.acked(known.id, s)).then_some(()))
    })
    .await;

    // An exact replay (acknowledged again, not quarantined) and a conflicting one.
    mqtt.publish(&known_topic, single(&good[3])).await;
    mqtt.publish(&known_topic, single(&known.signed(5, -1_000)))
        .await;
    // A bad signature: the last byte of the signature flipped.
    let mut forged = known.signed(20, 400);
    *forged.last_mut().expect("a signature") ^= 0x01;
    mqtt.publish(&known_topic, single(&forged)).await;
    // Garbage, and a payload over the uplink limit.
    mqtt.publish(&known_topic, b"\x00garbage, not an uplink".to_vec())
        .await;
    mqtt.publish(&known_topic, vec![0x01; UPLINK_BYTES_MAX + 1])
        .await;
    // The known device's reading on the unknown device's topic.
    mqtt.publish(&unknown_topic, single(&known.signed(21, 400)))
        .await;
    // The unknown device's own reading.
    let stranger = unknown.signed(0, 410);
    mqtt.publish(&unknown_topic, single(&stranger)).await;

    let reasons = [
        RejectReason::ConflictingReplay,
        RejectReason::BadSignature,
        RejectReason::Undecodable,
        RejectReason::Oversized,
        RejectReason::TopicMismatch,
        RejectReason::UnknownDevice,
    ];
    let counted = wait_until("every refusal to be counted", || async {
        let metrics = node.metrics().await;
        let counted: BTreeMap<&str, f64> = reasons
            .iter()
            .map(|r| {
                let name = format!(
                    "agritrace_ingest_readings_rejected_total{{reason=\"{}\"}}",
                    r.name()
                );
                (r.name(), metrics.get(&name).copied().unwrap_or(0.0))
            })
            .collect();
        counted.values().all(|&n| n >= 1.0).then_some(counted)
    })
    .await;
    eprintln!("refusals counted: {counted:?}");
    // Refused for good: acknowledged, so the device's outbox moves on. Not acknowledged: the
    // unknown device's reading (it may pass later), and the reading on another device's topic
    // (its sequence number is the other device's: naming it would ack a reading never seen).
    wait_until("the bad signature to be acknowledged", || {
        std::future::ready(mqtt.acked(known.id, 20).then_some(()))
    })
    .await;
    assert!(
        !mqtt.acked(unknown.id, 0),
        "a reading of an unknown device was acknowledged"
    );

    // Registered later, the unknown device's reading passes when it is offered again.
    node.import(&manifest(&unknown, "unknown.json")).await;
    mqtt.publish(&unknown_topic, single(&stranger)).await;
    wait_until("the registered device's reading to be acknowledged", || {
        std::future::ready(mqtt.acked(unknown.id, 0).then_some(()))
    })
    .await;

    let status = devices.wait().await;
    assert!(
        status.success(),
        "the fleet did not drain its outboxes: {status}\n{}",
        devices.stderr_tail(30)
    );
    assert!(
        !mqtt.acked(unknown.id, 21),
        "a reading on another device's topic was acknowledged to the topic's device"
    );
    let duplicates = node
        .metric("agritrace_ingest_readings_duplicate_total")
        .await;
    assert!(
        duplicates >= 1.0,
        "the exact replay was not counted as a duplicate"
    );
    node.stop().await;

    let audit = LogAudit::read(&node.store_path()).await;
    let mut expected = persisted(&devices.stdout());
    expected.insert(known.id, (0..20).collect());
    expected.insert(unknown.id, BTreeSet::from([0]));
    let problems = audit.check_readings(&expected);
    assert!(
        problems.is_empty(),
        "the log does not hold each good reading exactly once:\n{}",
        problems.join("\n")
    );
    assert_eq!(
        audit.stored(known.id, 5).as_deref(),
        Some(good[5].as_slice()),
        "the conflicting replay replaced the original"
    );
    let known_quarantine: BTreeSet<(&str, Option<u64>)> = audit
        .quarantine(known.id)
        .iter()
        .map(|r| (r.reason.name(), r.sequence.map(|s| s.0)))
        .collect();
    assert_eq!(
        known_quarantine,
        BTreeSet::from([
            ("conflicting_replay", Some(5)),
            ("bad_signature", Some(20)),
            ("undecodable", None),
            ("oversized", None),
        ]),
    );
    let unknown_quarantine: BTreeSet<(&str, Option<u64>)> = audit
        .quarantine(unknown.id)
        .iter()
        .map(|r| (r.reason.name(), r.sequence.map(|s| s.0)))
        .collect();
    assert_eq!(
        unknown_quarantine,
        BTreeSet::from([
            ("topic_device_mismatch", Some(21)),
            ("unknown_device", Some(0))
        ]),
    );
}
