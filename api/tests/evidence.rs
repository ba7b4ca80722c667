//! Evidence bundles over real HTTP on a whole node whose checkpoints a real witness cosigns
//! (served on loopback): a cooperative harvests a lot, puts it on a pallet and ships it with
//! a temperature logger to a customs authority; the logger's signed readings come in over MQTT
//! before, during and after the journey, and its key is rotated. The bundle of the shipment,
//! exported by the exporter and by the declared customs officer, is checked here independently
//! of the node (no parser of the format exists yet): every entry's inclusion proof against the
//! last checkpoint, every checkpoint against the trust policy the bundle carries (the witness's
//! cosignature), each batch's root from its readings and subset proof, each reading's signature,
//! each event's commitment from its salt and its GS1 event hash, the device's key events, and
//! the seal with the log key. Another authority, a stranger and a caller without a token are
//! refused; `?since=` adds the earlier checkpoint and a consistency proof that verifies.

mod common;

use agritrace_verify::evidence::EvidenceBundle;
use agritrace_verify::evidence::verify::{Trust, verify_file};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use api::{Node, NodeConfig, WitnessConfig};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::{Api, committed, now_ms};
use ed25519_dalek::Signer as _;
use ledger::checkpoint::Checkpoint;
use ledger::entry::{Entry, KeyAction, key_rotation_message, salted_commitment};
use ledger::merkle::{Hash, LeafIndex, TreeSize, leaf_hash};
use ledger::note::{KeyType, Note, NoteSigner, NoteVerifier};
use ledger::policy::Policy;
use ledger::proof::{ConsistencyProof, InclusionProof};
use ledger::subset_proof::root_from_subset;
use ledger::witness::{Witness, WitnessedLog};
use protocol::{DeviceId, KeyEpoch, Reading, SigningKey};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const MANGO: &str = "06901234567892";
const SSCC: &str = "urn:epc:id:sscc:0690123.0000000017";
const WITNESS: &str = "customs.test/witness";
/// Polls of something that arrives asynchronously (a guard against hanging, not a timing
/// assertion).
const POLLS_MAX: u32 = 2_400;
const POLL: Duration = Duration::from_millis(50);
const MINUTE: u64 = 60_000;
const SHIPMENT: &str = "/v1/orgs/coop/shipments/s-1/evidence";
/// Readings every five minutes from ten minutes before departure: 0 and 1 before it, 2..=31
/// in the 150-minute journey, 32..=39 after the arrival.
const READINGS: u64 = 40;
const IN_WINDOW: std::ops::RangeInclusive<u64> = 2..=31;

fn iso(ms: u64) -> String {
    common::rfc3339(ms)
}

fn class(l: &str) -> Value {
    json!({ "epcClass": format!("https://id.gs1.org/01/{MANGO}/10/{l}"), "quantity": 500, "uom": "KGM" })
}

async fn created(api: &Api, path: &str, token: &str, body: Value) -> Value {
    let (status, answer) = api.call(Method::POST, path, Some(token), Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{path}: {answer}");
    answer
}

/// Captures `events` as one EPCIS document and waits for its job to succeed.
async fn capture(api: &Api, token: &str, events: Vec<Value>) {
    let document = json!({
        "@context": ["https://ref.gs1.org/standards/epcis/epcis-context.jsonld",
                     { "example": "https://ns.example.com/epcis/" }],
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": iso(now_ms()),
        "epcisBody": { "eventList": events },
    });
    let (status, job) = api
        .call(Method::POST, "/epcis/capture", Some(token), Some(document))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    let id = job["captureID"].as_str().expect("captureID").to_owned();
    for _ in 0..POLLS_MAX {
        let (_, job) = api
            .call(
                Method::GET,
                &format!("/epcis/capture/{id}"),
                Some(token),
                None,
            )
            .await;
        if job["running"] == false {
            assert_eq!(job["success"], true, "{job}");
            return;
        }
        tokio::time::sleep(POLL).await;
    }
    panic!("capture job {id} never finished");
}

/// Publishes readings `sequences` of `device` every five minutes from `from_ms`, signed with
/// `key` at `epoch`, and waits until all are committed.
async fn stream_readings(
    node: &Node,
    device: DeviceId,
    (key, epoch): (&SigningKey, KeyEpoch),
    from_ms: u64,
    sequences: std::ops::Range<u64>,
) {
    let (client, poller) = common::mqtt_client(node, "logger-1", None);
    for sequence in sequences.clone() {
        let reading = Reading {
            key_epoch: epoch,
            ..common::reading_at(device, sequence, from_ms + sequence * 5 * MINUTE)
        };
        common::publish_reading(&client, &reading, key).await;
    }
    for sequence in sequences {
        committed(node, device, sequence).await;
    }
    poller.abort();
}

/// (entry index, batch size, (position, signed reading), subset proof)
type ParsedBatch = (u64, u64, Vec<(u64, Vec<u8>)>, Vec<Hash>);

/// A bundle as the test reads it, line by line, independently of the node's code.
#[derive(Debug, Default)]
struct Parsed {
    subject: String,
    exported_ms: u64,
    policy: Vec<u8>,
    /// (signed note, consistency proof from the previous one)
    checkpoints: Vec<(String, Vec<Hash>)>,
    /// (leaf index, entry bytes, inclusion path)
    entries: Vec<(u64, Vec<u8>, Vec<Hash>)>,
    batches: Vec<ParsedBatch>,
    /// (entry index, salt, event JSON)
    events: Vec<(u64, [u8; 32], Vec<u8>)>,
    documents: usize,
    seal: String,
    /// Every byte before the seal line.
    body: String,
}

fn b64(text: &str) -> Vec<u8> {
    STANDARD.decode(text).expect("base64")
}

fn hash(text: &str) -> Hash {
    Hash::from_slice(&b64(text)).expect("32 bytes")
}

fn number(text: &str) -> u64 {
    text.parse().expect("a decimal")
}

fn parse(text: &str) -> Parsed {
    let seal_at = text.rfind("\nseal ").expect("a seal line") + 1;
    let mut parsed = Parsed {
        body: text[..seal_at].to_owned(),
        ..Parsed::default()
    };
    let mut lines = text.split_terminator('\n');
    assert_eq!(lines.next(), Some("agritrace/evidence-bundle/v1"));
    for line in lines {
        let (label, rest) = line.split_once(' ').expect("label and value");
        let parts: Vec<&str> = rest.split(' ').collect();
        match label {
            "subject" => parsed.subject = rest.to_owned(),
            "exported" => parsed.exported_ms = number(rest),
            "policy" => parsed.policy = b64(rest),
            "checkpoint" => parsed
                .checkpoints
                .push((String::from_utf8(b64(rest)).expect("UTF-8"), Vec::new())),
            "consistency" => parsed
                .checkpoints
                .last_mut()
                .expect("a checkpoint")
                .1
                .push(hash(rest)),
            "entry" => parsed
                .entries
                .push((number(parts[0]), b64(parts[1]), Vec::new())),
            "inclusion" => parsed
                .entries
                .last_mut()
                .expect("an entry")
                .2
                .push(hash(rest)),
            "batch" => {
                parsed
                    .batches
                    .push((number(parts[0]), number(parts[1]), Vec::new(), Vec::new()));
            }
            "reading" => parsed
                .batches
                .last_mut()
                .expect("a batch")
                .2
                .push((number(parts[0]), b64(parts[1]))),
            "batch-proof" => parsed
                .batches
                .last_mut()
                .expect("a batch")
                .3
                .push(hash(rest)),
            "event" => parsed.events.push((
                number(parts[0]),
                b64(parts[1]).try_into().expect("a 32-byte salt"),
                b64(parts[2]),
            )),
            "document" => parsed.documents += 1,
            "seal" => parsed.seal = String::from_utf8(b64(rest)).expect("UTF-8"),
            other => panic!("unknown line {other:?}"),
        }
    }
    parsed
}

/// The GS1 canonical event hash digest of an event as the bundle carries it (with its
/// `@context`).
fn event_digest(event_json: &[u8]) -> [u8; 32] {
    let mut event: Value = serde_json::from_slice(event_json).expect("event JSON");
    let context = event
        .as_object_mut()
        .expect("an object")
        .remove("@context")
        .expect("its @context");
    let document = json!({
        "@context": context, "type": "EPCISDocument", "schemaVersion": "2.0",
        "creationDate": "2026-06-01T00:00:00Z", "epcisBody": { "eventList": [event] },
    });
    let document = gs1::epcis::parse_document_value(document).expect("a valid event");
    *document.event_hashes()[0].digest()
}

/// What a verified bundle holds.
#[derive(Debug)]
struct Verified {
    tree_size: u64,
    /// (device, sequence) of every reading, signature checked.
    readings: BTreeSet<(DeviceId, u64)>,
    /// `bizStep` of every event, commitment checked.
    biz_steps: BTreeSet<String>,
    /// (device, epoch, action) of every KeyEvent.
    key_events: BTreeSet<(DeviceId, u32, &'static str)>,
    checkpoints: usize,
}

/// Checks everything a bundle proves, with no code of the node's: inclusion proofs against
/// the last checkpoint, checkpoints against the bundle's policy (which must be `policy`),
/// consistency between checkpoints, batch roots from readings and subset proofs, reading
/// signatures against the device keys the bundle's KeyEvents register, event commitments, the
/// seal by `log_key`.
fn verify(text: &str, policy: &str, log_key: &NoteVerifier) -> Verified {
    // The offline verifier, under the policy pinned from the node, accepts the bundle...
    let report = verify_file(
        text.as_bytes(),
        &Trust::Pinned(policy.as_bytes().to_vec()),
        &mut |_| {},
    );
    assert!(report.verified(), "{:?}", report.failure);
    assert_eq!(
        EvidenceBundle::parse(text.as_bytes())
            .expect("parses")
            .to_text(),
        text
    );
    // ...and this test's own reading of the format checks every proof again.
    let bundle = parse(text);
    assert_eq!(String::from_utf8_lossy(&bundle.policy), policy);
    let policy = Policy::parse(&bundle.policy).expect("the policy parses");

    // Checkpoints: each meets the policy; each later one is consistent with the one before.
    let mut previous: Option<Checkpoint> = None;
    for (note, consistency) in &bundle.checkpoints {
        let verdict = policy.verify_checkpoint(note.as_bytes()).expect("cosigned");
        assert_eq!(verdict.cosigned.len(), 1, "the witness cosigned");
        let checkpoint = verdict.checkpoint;
        if let Some(old) = &previous {
            ConsistencyProof {
                old_size: old.size,
                new_size: checkpoint.size,
                path: consistency.clone(),
            }
            .verify(&old.root, &checkpoint.root)
            .expect("consistent with the earlier checkpoint");
        } else {
            assert!(consistency.is_empty());
        }
        previous = Some(checkpoint);
    }
    let last = previous.expect("a checkpoint");

    // Entries: ascending, each included in the last checkpoint's tree.
    let mut decoded = std::collections::BTreeMap::new();
    let mut last_index = None;
    for (index, bytes, path) in &bundle.entries {
        assert!(last_index < Some(*index), "entries ascending");
        last_index = Some(*index);
        InclusionProof {
            leaf_index: LeafIndex(*index),
            tree_size: last.size,
            path: path.clone(),
        }
        .verify(&leaf_hash(bytes), &last.root)
        .unwrap_or_else(|e| panic!("entry {index}: {e:?}"));
        decoded.insert(*index, Entry::decode(bytes).expect("an entry"));
    }

    // Device keys: from the KeyEvent entries, in log order.
    let mut keys = std::collections::BTreeMap::new();
    let mut key_events = BTreeSet::new();
    for entry in decoded.values() {
        if let Entry::KeyEvent(event) = entry {
            let action = match event.action {
                KeyAction::Register => "register",
                KeyAction::Rotate => "rotate",
                KeyAction::Revoke => "revoke",
            };
            key_events.insert((event.device_id, event.key_epoch.0, action));
            keys.insert((event.device_id, event.key_epoch.0), event.public_key);
        }
    }

    // Batches: each names a ReadingBatch entry whose root its readings and proof give; each
    // reading verifies under its device's key of its epoch.
    let mut readings = BTreeSet::new();
    for (entry, size, batch_readings, proof) in &bundle.batches {
        let Some(Entry::ReadingBatch(anchored)) = decoded.get(entry) else {
            panic!("batch {entry} names no ReadingBatch entry of the bundle");
        };
        let known: Vec<(LeafIndex, Hash)> = batch_readings
            .iter()
            .map(|(position, signed)| (LeafIndex(*position), leaf_hash(signed)))
            .collect();
        let root = root_from_subset(TreeSize(*size), &known, proof).expect("a subset proof");
        assert_eq!(root, anchored.batch_root, "batch {entry}");
        for (_, signed) in batch_readings {
            let unverified = protocol::SignedReading::decode(signed).expect("a signed reading");
            let reading = unverified.reading();
            let key = keys
                .get(&(reading.device, reading.key_epoch.0))
                .expect("the bundle registers the key it was signed with");
            let key = protocol::VerifyingKey::from_bytes(key).expect("a key");
            let reading = protocol::verify_signed_reading(signed, &key).expect("signature");
            readings.insert((reading.device, reading.sequence.0));
        }
    }

    // Events: each salt opens its TraceEvent's commitment to the event's GS1 hash.
    let mut biz_steps = BTreeSet::new();
    for (entry, salt, event_json) in &bundle.events {
        let Some(Entry::TraceEvent(anchored)) = decoded.get(entry) else {
            panic!("event {entry} names no TraceEvent entry of the bundle");
        };
        assert_eq!(
            anchored.commitment,
            salted_commitment(salt, &event_digest(event_json)),
            "event {entry}"
        );
        biz_steps.insert(anchored.biz_step.as_str().to_owned());
    }
    assert_eq!(bundle.documents, 0, "no documents module yet");

    // The seal: the log key signed the hash of every byte before the seal line.
    let seal = Note::parse(bundle.seal.as_bytes()).expect("a signed note");
    let opened = seal
        .open(std::slice::from_ref(log_key))
        .expect("sealed by the log key");
    assert_eq!(
        opened.text,
        agritrace_verify::evidence::EvidenceBundle::seal_text(&bundle.body)
    );
    assert!(bundle.exported_ms > 0);
    Verified {
        tree_size: last.size.0,
        readings,
        biz_steps,
        key_events,
        checkpoints: bundle.checkpoints.len(),
    }
}

/// GETs an evidence bundle: status, headers, text.
async fn export(
    api: &Api,
    path: &str,
    token: Option<&str>,
) -> (StatusCode, reqwest::header::HeaderMap, String) {
    let mut request = api.http.get(format!("{}{path}", api.base));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("the node answers");
    let status = response.status();
    let headers = response.headers().clone();
    (status, headers, response.text().await.expect("a body"))
}

fn header<'a>(headers: &'a reqwest::header::HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("no {name} header"))
}

/// Exports `path` as `token` until nothing is pending and it holds `events` events; returns
/// the text and the tree size header.
async fn complete_export(api: &Api, path: &str, token: &str, events: usize) -> (String, u64) {
    for _ in 0..POLLS_MAX {
        let (status, headers, text) = export(api, path, Some(token)).await;
        if status == StatusCode::SERVICE_UNAVAILABLE {
            tokio::time::sleep(POLL).await;
            continue;
        }
        assert_eq!(status, StatusCode::OK, "{text}");
        if header(&headers, "agritrace-evidence-pending") == "0"
            && text.matches("\nevent ").count() == events
        {
            assert_eq!(
                header(&headers, "content-type"),
                "text/plain; charset=utf-8"
            );
            assert!(headers.get("agritrace-evidence-truncated").is_none());
            let size = header(&headers, "agritrace-evidence-tree-size")
                .parse()
                .expect("a size");
            return (text, size);
        }
        tokio::time::sleep(POLL).await;
    }
    panic!("{path} never covered everything");
}

/// A node whose checkpoints the witness `witness_key` cosigns, served on loopback.
async fn start_witnessed(dir: &std::path::Path) -> (Node, Api, NoteVerifier, String) {
    let data = dir.join("data");
    std::fs::create_dir_all(&data).expect("data dir");
    let origin = NodeConfig::default().origin;
    // The log key exists before the node starts, so the witness knows it.
    let log_key = api::load_or_create_log_key(&data.join("log.key"), &origin).expect("log key");
    let witness_key = NoteSigner::new(
        WITNESS,
        KeyType::CosignatureV1,
        SigningKey::from_bytes(&[77; 32]),
    )
    .expect("witness key");
    let witness_vkey = witness_key.verifier().to_vkey();
    let witness = Witness::open(
        witness_key,
        vec![WitnessedLog {
            origin: origin.clone(),
            key: log_key.verifier(),
        }],
        &dir.join("witness"),
        Box::new(ledger::witness::system_clock_seconds),
    )
    .expect("witness");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move {
        axum::serve(listener, ledger::witness::router(Arc::new(witness)))
            .await
            .expect("witness server");
    });
    let (node, api) = common::node_with(NodeConfig {
        batch_window_ms: 50,
        round_period_ms: 20,
        witnesses: vec![WitnessConfig {
            url: format!("http://{address}"),
            key: witness_vkey.clone(),
        }],
        ..common::config_on(data)
    })
    .await;
    let policy = format!(
        "log {}\nwitness {WITNESS} {witness_vkey}\ngroup witnesses 1 {WITNESS}\nquorum witnesses\n",
        log_key.verifier().to_vkey()
    );
    (node, api, log_key.verifier(), policy)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::too_many_lines)] // One story, in order.
async fn a_shipments_bundle_proves_its_events_readings_and_keys_offline() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (node, api, log_key, policy) = start_witnessed(dir.path()).await;
    let coop = api
        .bootstrap("coop", &["admin", "producer", "exporter"])
        .await;
    let customs = api.bootstrap("cn-customs", &["customs"]).await;
    let other_customs = api.bootstrap("th-customs", &["customs"]).await;
    let audit = api.bootstrap("audit-office", &["auditor"]).await;
    let stranger = api.bootstrap("stranger", &["producer"]).await;
    let (producer, exporter) = (coop["producer"].as_str(), coop["exporter"].as_str());

    created(&api, "/v1/orgs/coop/products", producer, json!({
        "gtin": MANGO, "name_en": "Mango", "name_zh": "芒果", "storage_min_c": 10.0, "storage_max_c": 13.0
    }))
    .await;
    created(
        &api,
        "/v1/orgs/coop/plots",
        producer,
        json!({
            "id": "plot-7", "name": "Hillside 7", "country": "CN", "area_ha": 3.2,
            "geometry": { "type": "Point", "coordinates": [100.45, 21.95] }
        }),
    )
    .await;
    created(
        &api,
        "/v1/orgs/coop/lots",
        producer,
        json!({ "gtin": MANGO, "lot": "P1", "plot": "plot-7", "harvest_date": "2026-06-01" }),
    )
    .await;
    let device: DeviceId = "c100000000000001".parse().expect("device");
    let key = SigningKey::from_bytes(&[31; 32]);
    created(
        &api,
        "/v1/orgs/coop/devices",
        exporter,
        json!({
            "device_id": device.to_string(),
            "public_key": api::http::hex(key.verifying_key().as_bytes()),
            "name": "Logger 1",
        }),
    )
    .await;

    // Harvest (with an extension field of a declared namespace), palletising, shipping.
    let t0 = now_ms() - 6 * 60 * MINUTE;
    capture(
        &api,
        producer,
        vec![json!({
            "type": "ObjectEvent", "action": "ADD", "bizStep": "commissioning",
            "eventTime": iso(t0), "eventTimeZoneOffset": "+08:00",
            "quantityList": [class("P1")],
            "bizLocation": { "id": "urn:epc:id:sgln:0690123.00001.0" },
            "example:picker": "team-3"
        })],
    )
    .await;
    capture(
        &api,
        exporter,
        vec![
            json!({
                "type": "AggregationEvent", "action": "ADD", "bizStep": "packing",
                "eventTime": iso(t0 + 40 * MINUTE), "eventTimeZoneOffset": "+08:00",
                "parentID": SSCC, "childQuantityList": [class("P1")],
                "bizLocation": { "id": "urn:epc:id:sgln:0690123.00002.0" }
            }),
            json!({
                "type": "ObjectEvent", "action": "OBSERVE", "bizStep": "shipping",
                "eventTime": iso(t0 + 60 * MINUTE), "eventTimeZoneOffset": "+08:00",
                "epcList": [SSCC],
                "bizLocation": { "id": "urn:epc:id:sgln:0690123.00002.0" }
            }),
        ],
    )
    .await;

    // The shipment, declared to cn-customs, with the logger: departed, readings, arrived.
    let departed = t0 + 60 * MINUTE;
    created(
        &api,
        "/v1/orgs/coop/shipments",
        exporter,
        json!({
            "id": "s-1",
            "consignee": { "name": "Bangkok Fresh Co.", "country": "TH" },
            "origin_country": "CN", "destination_country": "TH",
            "declared_to": ["cn-customs"],
            "ssccs": ["006901230000000171"],
            "lots": [{ "gtin": MANGO, "lot": "P1" }],
            "devices": [device.to_string()],
            "planned_departure": { "location": "Mohan", "time_ms": departed },
        }),
    )
    .await;
    created(
        &api,
        "/v1/orgs/coop/shipments/s-1/departure",
        exporter,
        json!({ "location": "Mohan", "time_ms": departed }),
    )
    .await;
    let first = departed - 10 * MINUTE;
    stream_readings(&node, device, (&key, KeyEpoch(1)), first, 0..READINGS).await;
    created(
        &api,
        "/v1/orgs/coop/shipments/s-1/arrival",
        exporter,
        json!({ "location": "Bangkok", "time_ms": departed + 150 * MINUTE }),
    )
    .await;
    // The logger's key is rotated after the journey: the bundle carries both key events.
    let new_key = SigningKey::from_bytes(&[32; 32]);
    let message = key_rotation_message(device, KeyEpoch(2), new_key.verifying_key().as_bytes());
    created(
        &api,
        &format!("/v1/orgs/coop/devices/{device}/rotation"),
        exporter,
        json!({
            "key_epoch": 2,
            "public_key": api::http::hex(new_key.verifying_key().as_bytes()),
            "signature": api::http::hex(&key.sign(&message).to_bytes()),
        }),
    )
    .await;

    // The exporter's bundle, once the checkpoint covers everything.
    let (text, first_size) = complete_export(&api, SHIPMENT, exporter, 3).await;
    let verified = verify(&text, &policy, &log_key);
    assert!(text.contains("\nsubject shipment coop/s-1\n"), "{text}");
    assert_eq!(verified.tree_size, first_size);
    assert_eq!(verified.checkpoints, 1);
    let expected: BTreeSet<(DeviceId, u64)> = IN_WINDOW.map(|s| (device, s)).collect();
    assert_eq!(
        verified.readings, expected,
        "the readings of the journey, none before or after"
    );
    assert_eq!(
        verified.biz_steps,
        ["commissioning", "packing", "shipping"]
            .into_iter()
            .map(str::to_owned)
            .collect::<BTreeSet<_>>()
    );
    assert_eq!(
        verified.key_events,
        BTreeSet::from([(device, 1, "register"), (device, 2, "rotate")])
    );
    let (_, headers, _) = export(&api, SHIPMENT, Some(exporter)).await;
    assert_eq!(
        header(&headers, "content-disposition"),
        "attachment; filename=\"shipment-coop-s-1.evidence.txt\""
    );

    // The customs officer it is declared to, and an auditor, get the same story.
    for token in [&customs["customs"], &audit["auditor"]] {
        let (text, _) = complete_export(&api, SHIPMENT, token, 3).await;
        let verified = verify(&text, &policy, &log_key);
        assert_eq!(verified.readings, expected);
        assert_eq!(verified.biz_steps.len(), 3);
    }
    // Another authority and a stranger learn nothing; no token is 401.
    for token in [&other_customs["customs"], &stranger["producer"]] {
        let (status, _, body) = export(&api, SHIPMENT, Some(token)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    }
    let (status, _, _) = export(&api, SHIPMENT, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    for (path, why) in [
        ("/v1/orgs/coop/shipments/s-9/evidence", "no such shipment"),
        (
            "/v1/orgs/coop/lots/06901234567892/P9/evidence",
            "no such lot",
        ),
        (
            "/v1/orgs/stranger/lots/06901234567892/P1/evidence",
            "not its lot",
        ),
    ] {
        let (status, _, body) = export(&api, path, Some(exporter)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{why}: {body}");
    }
    for query in ["since=abc", "since=99999999", "colour=red"] {
        let (status, _, body) = export(&api, &format!("{SHIPMENT}?{query}"), Some(exporter)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
    }
    let (status, _, body) = export(
        &api,
        "/v1/orgs/coop/lots/06901234567893/P1/evidence",
        Some(exporter),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a bad check digit: {body}");

    // The lot's bundle reaches the shipment forward: the same readings.
    let lot_path = format!("/v1/orgs/coop/lots/{MANGO}/P1/evidence");
    let (text, _) = complete_export(&api, &lot_path, &customs["customs"], 3).await;
    assert!(text.contains(&format!("\nsubject lot {MANGO}/P1\n")));
    assert_eq!(verify(&text, &policy, &log_key).readings, expected);

    // Receiving, later: a bundle since the first one's checkpoint proves the log only grew.
    capture(
        &api,
        exporter,
        vec![json!({
            "type": "ObjectEvent", "action": "OBSERVE", "bizStep": "receiving",
            "eventTime": iso(departed + 160 * MINUTE), "eventTimeZoneOffset": "+07:00",
            "epcList": [SSCC],
            "bizLocation": { "id": "urn:epc:id:sgln:0690123.00003.0" }
        })],
    )
    .await;
    let (latest, latest_size) = complete_export(&api, SHIPMENT, exporter, 4).await;
    assert!(latest_size > first_size);
    assert_eq!(verify(&latest, &policy, &log_key).biz_steps.len(), 4);
    let since = format!("{SHIPMENT}?since={first_size}");
    let (status, headers, text) = export(&api, &since, Some(customs["customs"].as_str())).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let verified = verify(&text, &policy, &log_key);
    assert_eq!(
        verified.checkpoints, 2,
        "the earlier checkpoint and the latest"
    );
    assert_eq!(
        verified.tree_size,
        number(header(&headers, "agritrace-evidence-tree-size"))
    );
    let first_note = &parse(&text).checkpoints[0].0;
    let first_checkpoint =
        Checkpoint::parse(&Note::parse(first_note.as_bytes()).expect("note").text)
            .expect("checkpoint");
    assert_eq!(first_checkpoint.size.0, first_size);
    // A size the node never put in a bundle (the log had grown well past one entry before
    // the first export) is not kept.
    let (status, _, body) = export(&api, &format!("{SHIPMENT}?since=1"), Some(exporter)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    node.shutdown().await;
}
