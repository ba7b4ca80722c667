//! The whole node in one process: in-process broker, ingest, sequencer and HTTP API on a
//! temporary data directory and free ports. A device is registered through
//! `POST /v1/devices/import`, publishes signed readings with rumqttc, and the test checks what
//! a person would: the counters in `/metrics`, the signed `/log/checkpoint`, that the anchor
//! of every reading proves it (batch path → `ReadingBatch` entry → log inclusion proof →
//! signed checkpoint) with the ledger's own verification functions, and that every reading's
//! proof file, saved to disk, passes the offline verifier's steps (the library functions the
//! `agritrace-verify` binary runs; that binary's own tests run it on such files).

mod common;

use std::time::Duration;

use agritrace_verify::steps::name;
use agritrace_verify::{Outcome, Steps, check_reading_proof, parse_reading_proof};
use api::{Node, NodeConfig};
use ledger::checkpoint::open_checkpoint;
use ledger::entry::Entry;
use ledger::merkle::{Hash, LeafIndex, TreeSize, leaf_hash};
use ledger::note::NoteVerifier;
use ledger::policy::Policy;
use ledger::proof::{InclusionProof, root_from_inclusion_path};
use ledger::tlog_proof::TlogProof;
use protocol::limits::{SIGNED_READING_BYTES_MAX, UPLINK_BYTES_MAX};
use protocol::{
    DeviceId, DoorState, KeyEpoch, Reading, SequenceNumber, SigningKey, UplinkWriter,
    encode_signed_reading, topic,
};
use rumqttc::QoS;

const READINGS: u64 = 12;
/// Polls of a result that arrives asynchronously before the test gives up (a guard against
/// hanging, not a timing assertion: 50 ms apart, so about two minutes).
const POLLS_MAX: u32 = 2_400;
const POLL: Duration = Duration::from_millis(50);

fn reading(device: DeviceId, sequence: u64, now_ms: u64) -> Reading {
    Reading {
        device,
        key_epoch: KeyEpoch(1),
        sequence: SequenceNumber(sequence),
        device_time_ms: now_ms,
        temperature_centi_c: 350 + i16::try_from(sequence).expect("small"),
        humidity_centi_pct: 8_500,
        position: None,
        door: DoorState::Closed,
        shock_events: 0,
        battery_mv: 3_600,
        dropped_samples: 0,
    }
}

fn signed(reading: &Reading, key: &SigningKey) -> Vec<u8> {
    let mut out = [0u8; SIGNED_READING_BYTES_MAX];
    let len = encode_signed_reading(reading, key, &mut out).expect("encode");
    out[..len].to_vec()
}

fn uplink(signed: &[u8]) -> Vec<u8> {
    let mut buf = [0u8; UPLINK_BYTES_MAX];
    UplinkWriter::single(&mut buf, signed)
        .expect("uplink")
        .to_vec()
}

fn unhex(text: &str) -> Vec<u8> {
    assert!(text.len().is_multiple_of(2), "odd hex {text:?}");
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
        .collect()
}

fn hash(value: &serde_json::Value) -> Hash {
    Hash::from_hex(value.as_str().expect("hex string")).expect("hash")
}

fn hashes(value: &serde_json::Value) -> Vec<Hash> {
    value.as_array().expect("array").iter().map(hash).collect()
}

/// A sample value of `name` in Prometheus text.
fn sample(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("{name} is not in /metrics:\n{metrics}"))
        .parse()
        .expect("an integer sample")
}

fn now_ms() -> u64 {
    u64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_millis(),
    )
    .expect("fits")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readings_published_over_mqtt_are_anchored_and_proven_over_http() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = NodeConfig {
        data_dir: dir.path().join("data"),
        http_listen: "127.0.0.1:0".parse().expect("addr"),
        broker: api::BrokerConfig {
            port: 0,
            ..api::BrokerConfig::default()
        },
        batch_window_ms: 50,
        round_period_ms: 20,
        ..NodeConfig::default()
    };
    let node = Node::start(config).await.expect("the node starts");
    let base = format!("http://{}", node.http_addr());
    let http = reqwest::Client::new();

    // Register the device the way `agritrace device import` does.
    let device: DeviceId = "a900000000000001".parse().expect("device id");
    let key = SigningKey::from_bytes(&[7; 32]);
    let manifest = serde_json::json!({
        "format": "agritrace-device-manifest/v1",
        "devices": [{
            "device_id": device.to_string(),
            "key_epoch": 1,
            "algorithm": "ed25519",
            "public_key": api::http::hex(key.verifying_key().as_bytes()),
        }],
    });
    let response = http
        .post(format!("{base}/v1/devices/import"))
        .body(manifest.to_string())
        .send()
        .await
        .expect("import");
    assert!(response.status().is_success(), "{response:?}");
    let report: serde_json::Value =
        serde_json::from_str(&response.text().await.expect("body")).expect("json");
    assert_eq!(report["registered"], 1, "{report}");
    let bad = http
        .post(format!("{base}/v1/devices/import"))
        .body("{}")
        .send()
        .await
        .expect("import");
    assert_eq!(bad.status(), 400, "a malformed manifest is refused");

    // Publish signed readings over the in-process broker.
    let (client, poller) = common::mqtt_client(&node, "test-device", None);
    let start_ms = now_ms();
    let mut sent = Vec::new();
    for sequence in 0..READINGS {
        let bytes = signed(&reading(device, sequence, start_ms + sequence), &key);
        client
            .publish(
                topic::readings_topic(device).as_str(),
                QoS::AtLeastOnce,
                false,
                uplink(&bytes),
            )
            .await
            .expect("publish");
        sent.push(bytes);
    }

    // Wait until the last reading's anchor is served against a published checkpoint.
    let anchor_url =
        |sequence: u64| format!("{base}/v1/devices/{device}/readings/{sequence}/anchor");
    let mut anchors = Vec::new();
    for sequence in 0..READINGS {
        let mut polls = 0;
        let anchor: serde_json::Value = loop {
            let response = http.get(anchor_url(sequence)).send().await.expect("get");
            if response.status() == 200 {
                break serde_json::from_str(&response.text().await.expect("body")).expect("json");
            }
            assert!(
                response.status() == 404 || response.status() == 503,
                "unexpected {response:?}"
            );
            polls += 1;
            assert!(polls < POLLS_MAX, "reading {sequence} was never anchored");
            tokio::time::sleep(POLL).await;
        };
        anchors.push(anchor);
    }

    // The log key, and a checkpoint that opens with it.
    let vkey = http
        .get(format!("{base}/v1/log/key"))
        .send()
        .await
        .expect("key")
        .text()
        .await
        .expect("body");
    let log_key = NoteVerifier::parse(vkey.trim()).expect("verifier key");
    assert_eq!(
        log_key.name(),
        node.verifier_key().split('+').next().expect("name")
    );
    let checkpoint = http
        .get(format!("{base}/log/checkpoint"))
        .send()
        .await
        .expect("checkpoint")
        .bytes()
        .await
        .expect("body");
    let opened = open_checkpoint(&checkpoint, &log_key, &[]).expect("a signed checkpoint");
    assert_eq!(opened.checkpoint.origin, "agritrace.localhost/log");
    assert!(opened.checkpoint.size.0 >= 2, "a key event and a batch");

    for (sequence, anchor) in (0..READINGS).zip(&anchors) {
        let sequence_index = usize::try_from(sequence).expect("small");
        let reading_bytes = unhex(anchor["reading"].as_str().expect("reading"));
        assert_eq!(
            reading_bytes, sent[sequence_index],
            "the exact signed bytes"
        );
        // Reading → batch root.
        let batch = &anchor["batch"];
        let position = batch["position"].as_u64().expect("position");
        let size = batch["size"].as_u64().expect("size");
        let root = root_from_inclusion_path(
            LeafIndex(position),
            TreeSize(size),
            &leaf_hash(&reading_bytes),
            &hashes(&batch["path"]),
        )
        .expect("a batch path");
        assert_eq!(
            root,
            hash(&batch["root"]),
            "the batch path leads to the root"
        );
        // Batch root → the ReadingBatch entry.
        let entry = unhex(anchor["entry"].as_str().expect("entry"));
        match Entry::decode(&entry).expect("an entry") {
            Entry::ReadingBatch(b) => {
                assert_eq!(b.batch_root, root);
                assert_eq!(u64::from(b.reading_count), size);
                assert!(b.devices.contains(&device));
            }
            other => panic!("not a ReadingBatch: {other:?}"),
        }
        // Entry → log → signed checkpoint.
        let checkpoint_note = anchor["checkpoint"].as_str().expect("checkpoint");
        let opened = open_checkpoint(checkpoint_note.as_bytes(), &log_key, &[])
            .expect("the anchor's checkpoint is signed by the log");
        let proof = InclusionProof {
            leaf_index: LeafIndex(anchor["leaf_index"].as_u64().expect("leaf index")),
            tree_size: TreeSize(
                anchor["inclusion_proof"]["tree_size"]
                    .as_u64()
                    .expect("tree size"),
            ),
            path: hashes(&anchor["inclusion_proof"]["path"]),
        };
        assert_eq!(proof.tree_size, opened.checkpoint.size);
        proof
            .verify(&leaf_hash(&entry), &opened.checkpoint.root)
            .expect("the entry is in the checkpointed log");
        // The tlog-proof file is what agritrace-verify reads.
        let file = TlogProof::parse(anchor["tlog_proof"].as_str().expect("proof").as_bytes())
            .expect("a tlog-proof file");
        assert_eq!(file.index, proof.leaf_index);
        assert_eq!(file.path, proof.path);
    }

    // The reading proof file of every reading, saved and checked as `agritrace-verify
    // --reading-proof FILE --log-key VKEY --device-key HEX` checks it.
    let policy = Policy::from_keys(log_key.clone(), Vec::new(), None).expect("policy");
    let proof_url = |sequence: u64| format!("{base}/v1/devices/{device}/readings/{sequence}/proof");
    for (sequence, anchor) in (0..READINGS).zip(&anchors) {
        let response = http.get(proof_url(sequence)).send().await.expect("get");
        assert_eq!(response.status(), 200, "{response:?}");
        assert_eq!(
            response.headers()[reqwest::header::CONTENT_TYPE],
            "text/plain; charset=utf-8"
        );
        let file = dir.path().join(format!("reading-{sequence}.proof"));
        std::fs::write(&file, response.bytes().await.expect("body")).expect("save the proof");
        let saved = std::fs::read(&file).expect("read the proof back");
        let mut steps = Steps::new();
        let proof = parse_reading_proof(&saved, &mut steps).expect("a reading proof file");
        let proven = check_reading_proof(&proof, &policy, Some(&key.verifying_key()), &mut steps)
            .unwrap_or_else(|failure| panic!("{failure}\nafter {steps:#?}"));
        assert_eq!(
            proven.reading,
            reading(device, sequence, start_ms + sequence)
        );
        assert!(proven.signature_checked);
        assert!(
            steps
                .as_slice()
                .iter()
                .any(|s| s.name == name::DEVICE_SIGNATURE && s.outcome == Outcome::Passed),
            "{steps:#?}"
        );
        assert_eq!(
            proof.entry,
            unhex(anchor["entry"].as_str().expect("entry")),
            "the proof and the anchor name the same entry"
        );
        assert_eq!(
            Some(proven.log.index.0),
            anchor["leaf_index"].as_u64(),
            "the proof and the anchor place the entry at the same index"
        );
    }
    // An unknown reading is 404, a malformed device id 400.
    let missing = http
        .get(proof_url(READINGS + 100))
        .send()
        .await
        .expect("get");
    assert_eq!(missing.status(), 404);
    let malformed = http
        .get(format!("{base}/v1/devices/A9/readings/0/proof"))
        .send()
        .await
        .expect("get");
    assert_eq!(malformed.status(), 400);

    // The counters a person on call reads.
    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("body");
    assert_eq!(
        sample(&metrics, "agritrace_ingest_readings_accepted_total"),
        READINGS
    );
    assert!(sample(&metrics, "agritrace_ingest_readings_received_total") >= READINGS);
    assert!(sample(&metrics, "agritrace_ingest_batches_total") >= 1);
    assert!(sample(&metrics, "agritrace_log_entries_total") >= 2);
    assert!(sample(&metrics, "agritrace_log_checkpoints_published_total") >= 1);
    assert_eq!(
        sample(
            &metrics,
            "agritrace_ingest_readings_rejected_total{reason=\"bad_signature\"}"
        ),
        0
    );
    assert!(
        sample(
            &metrics,
            "agritrace_ingest_device_to_anchored_seconds_count"
        ) >= READINGS,
        "every accepted reading is in the latency histogram"
    );
    let health = http
        .get(format!("{base}/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(health.status(), 200);

    poller.abort();
    node.shutdown().await;
}

/// `/readyz` of the node at `base`: its status and JSON body.
async fn readiness(http: &reqwest::Client, base: &str) -> (u16, serde_json::Value) {
    let response = http
        .get(format!("{base}/readyz"))
        .send()
        .await
        .expect("the node answers");
    let status = response.status().as_u16();
    let body = serde_json::from_str(&response.text().await.expect("a body")).expect("JSON");
    (status, body)
}

/// The check `name` of a `/readyz` body.
fn check<'a>(body: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    body["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no {name} check in {body}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_its_broker_is_alive_but_not_ready_and_ready_once_connected() {
    // An external broker that is not there: nothing listens on the port.
    let dir = tempfile::tempdir().expect("tempdir");
    let absent = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let absent_port = absent.local_addr().expect("addr").port();
    drop(absent);
    let node = Node::start(NodeConfig {
        data_dir: dir.path().join("data"),
        http_listen: "127.0.0.1:0".parse().expect("addr"),
        broker: api::BrokerConfig {
            embedded: false,
            host: "127.0.0.1".to_owned(),
            port: absent_port,
            ..api::BrokerConfig::default()
        },
        round_period_ms: 20,
        ..NodeConfig::default()
    })
    .await
    .expect("the node starts without its broker");
    let base = format!("http://{}", node.http_addr());
    let http = reqwest::Client::new();
    let health = http
        .get(format!("{base}/healthz"))
        .send()
        .await
        .expect("the node answers");
    assert_eq!(health.status().as_u16(), 200, "alive");
    let (status, body) = readiness(&http, &base).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["ready"], false, "{body}");
    let broker = check(&body, "broker");
    assert_eq!(broker["ok"], false, "{body}");
    assert!(
        broker["detail"]
            .as_str()
            .is_some_and(|d| d.starts_with("0 of ")),
        "{body}"
    );
    node.shutdown().await;

    // The same data directory with the in-process broker: ready once ingest connects and a
    // checkpoint is out.
    let node = Node::start(NodeConfig {
        data_dir: dir.path().join("data"),
        http_listen: "127.0.0.1:0".parse().expect("addr"),
        broker: api::BrokerConfig {
            port: 0,
            ..api::BrokerConfig::default()
        },
        round_period_ms: 20,
        ..NodeConfig::default()
    })
    .await
    .expect("the node starts");
    let base = format!("http://{}", node.http_addr());
    let mut polls = 0;
    let body = loop {
        let (status, body) = readiness(&http, &base).await;
        if status == 200 {
            break body;
        }
        polls += 1;
        assert!(polls < POLLS_MAX, "never ready: {body}");
        tokio::time::sleep(POLL).await;
    };
    assert_eq!(body["ready"], true, "{body}");
    for name in ["sequencer", "checkpoint", "broker"] {
        assert_eq!(check(&body, name)["ok"], true, "{body}");
    }
    node.shutdown().await;
}
