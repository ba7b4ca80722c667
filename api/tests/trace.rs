//! Trace, recall and the FSMA 204 export over real HTTP on a whole node: a cooperative
//! harvests two lots, packs them into a third, puts it on a pallet and ships it with a
//! temperature logger to a customs authority; the logger's signed readings come in over MQTT.
//! The trace of the packed lot reaches the harvest lots and their plot backward and the pallet
//! and shipment forward, with the shipment's cold chain (an excursion found, with its reading
//! proofs) and an inclusion proof of every event that verifies against the signed checkpoint.
//! Who sees it follows the policy: the owner, the customs authority it was declared to and an
//! auditor do; a stranger and another authority do not.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use api::Node;
use common::{Api, committed, now_ms, rfc3339};
use ledger::checkpoint::Checkpoint;
use ledger::merkle::{Hash, LeafIndex, TreeSize};
use ledger::proof::root_from_inclusion_path;
use protocol::{DeviceId, Reading, SigningKey};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const MANGO: &str = "06901234567892";
const SSCC: &str = "urn:epc:id:sscc:0690123.0000000017";
/// Polls of something that arrives asynchronously (a guard against hanging, not a timing
/// assertion).
const POLLS_MAX: u32 = 2_400;
const POLL: Duration = Duration::from_millis(50);
const MINUTE: u64 = 60_000;

fn iso(ms: u64) -> String {
    let secs = ms / 1_000;
    let (year, month, day) =
        gs1::epcis::canon::civil_from_days(i64::try_from(secs / 86_400).expect("days"));
    let rem = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3_600,
        rem % 3_600 / 60,
        rem % 60
    )
}

fn lot(l: &str) -> String {
    format!("https://id.gs1.org/01/{MANGO}/10/{l}")
}

fn class(l: &str) -> Value {
    json!({ "epcClass": lot(l), "quantity": 500, "uom": "KGM" })
}

async fn call(
    api: &Api,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    api.call(method, path, token, body).await
}

async fn created(api: &Api, path: &str, token: &str, body: Value) -> Value {
    let (status, answer) = call(api, Method::POST, path, Some(token), Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{path}: {answer}");
    answer
}

/// Captures `events` as one EPCIS document and waits for its job to succeed.
async fn capture(api: &Api, token: &str, events: Vec<Value>) {
    let document = json!({
        "@context": ["https://ref.gs1.org/standards/epcis/epcis-context.jsonld"],
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": iso(now_ms()),
        "epcisBody": { "eventList": events },
    });
    let (status, job) = call(
        api,
        Method::POST,
        "/epcis/capture",
        Some(token),
        Some(document),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    let id = job["captureID"].as_str().expect("captureID").to_owned();
    for _ in 0..POLLS_MAX {
        let (_, job) = call(
            api,
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

/// Publishes readings every 5 minutes from `from_ms` (15.0 °C for the 4th to 6th, 11.5 °C
/// otherwise) and waits until all are committed.
async fn stream_readings(
    node: &Node,
    device: DeviceId,
    key: &SigningKey,
    from_ms: u64,
    count: u64,
) {
    let (client, poller) = common::mqtt_client(node, "logger-1", None);
    for sequence in 0..count {
        let reading = Reading {
            temperature_centi_c: if (3..6).contains(&sequence) {
                1_500
            } else {
                1_150
            },
            position: Some(protocol::GeoPosition {
                lat_e7: 219_500_000,
                lon_e7: 1_004_500_000,
            }),
            ..common::reading_at(device, sequence, from_ms + sequence * 5 * MINUTE)
        };
        common::publish_reading(&client, &reading, key).await;
    }
    for sequence in 0..count {
        committed(node, device, sequence).await;
    }
    poller.abort();
}

fn hex_bytes(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
        .collect()
}

fn node_ids(trace: &Value) -> BTreeSet<String> {
    trace["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .filter_map(|n| n["id"].as_str().map(str::to_owned))
        .collect()
}

/// Checks every event's inclusion proof against the checkpoint of its tree size.
fn verify_event_proofs(trace: &Value) -> usize {
    let checkpoints: Vec<(u64, Checkpoint)> = trace["checkpoints"]
        .as_array()
        .expect("checkpoints")
        .iter()
        .map(|c| {
            let note = c["checkpoint"].as_str().expect("note");
            let body = &note[..note.find("\n\n").expect("a signed note") + 1];
            (
                c["tree_size"].as_u64().expect("size"),
                Checkpoint::parse(body).expect("checkpoint"),
            )
        })
        .collect();
    let mut verified = 0;
    for event in trace["events"].as_array().expect("events") {
        let proof = &event["proof"];
        let size = proof["tree_size"]
            .as_u64()
            .expect("every event is anchored by now");
        let checkpoint = &checkpoints
            .iter()
            .find(|(s, _)| *s == size)
            .expect("its checkpoint")
            .1;
        let leaf = Hash::from_hex(proof["entry_leaf_hash"].as_str().expect("leaf")).expect("hex");
        let path: Vec<Hash> = proof["path"]
            .as_array()
            .expect("path")
            .iter()
            .map(|h| Hash::from_hex(h.as_str().expect("hash")).expect("hex"))
            .collect();
        let root = root_from_inclusion_path(
            LeafIndex(proof["leaf_index"].as_u64().expect("index")),
            TreeSize(size),
            &leaf,
            &path,
        )
        .expect("a path of the right length");
        assert_eq!(root, checkpoint.root, "event {}", event["eventID"]);
        verified += 1;
    }
    verified
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_packed_lot_is_traced_to_its_plot_and_its_shipment_with_cold_chain_and_proofs() {
    let (_dir, node, api) = common::start_streaming().await;
    let coop = api
        .bootstrap("coop", &["admin", "producer", "exporter"])
        .await;
    let customs = api.bootstrap("cn-customs", &["customs"]).await;
    let other_customs = api.bootstrap("th-customs", &["customs"]).await;
    let audit = api.bootstrap("audit-office", &["auditor"]).await;
    let stranger = api.bootstrap("stranger", &["producer"]).await;
    let (producer, exporter) = (coop["producer"].as_str(), coop["exporter"].as_str());

    // Master data, lots, a device.
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
    for l in ["L1", "L2", "P1"] {
        created(
            &api,
            "/v1/orgs/coop/lots",
            producer,
            json!({
                "gtin": MANGO, "lot": l, "plot": "plot-7", "harvest_date": "2026-06-01"
            }),
        )
        .await;
    }
    let device: DeviceId = "c100000000000001".parse().expect("device");
    let key = SigningKey::from_bytes(&[31; 32]);
    created(&api, "/v1/orgs/coop/devices", exporter, json!({
        "device_id": device.to_string(),
        "public_key": key.verifying_key().as_bytes().iter().map(|b| format!("{b:02x}")).collect::<String>(),
        "name": "Logger 1",
    }))
    .await;

    // Events: harvest, packing (a transformation), palletising, shipping.
    let t0 = now_ms() - 4 * 60 * MINUTE;
    let farm = "urn:epc:id:sgln:0690123.00001.0";
    let packhouse = "urn:epc:id:sgln:0690123.00002.0";
    capture(
        &api,
        producer,
        vec![json!({
            "type": "ObjectEvent", "action": "ADD", "bizStep": "commissioning",
            "eventTime": iso(t0), "eventTimeZoneOffset": "+08:00",
            "quantityList": [class("L1"), class("L2")],
            "bizLocation": { "id": farm },
            "ilmd": { "cbvmda:harvestStartDate": "2026-06-01" }
        })],
    )
    .await;
    capture(&api, exporter, vec![
        json!({
            "type": "TransformationEvent", "bizStep": "packing",
            "eventTime": iso(t0 + 30 * MINUTE), "eventTimeZoneOffset": "+08:00",
            "inputQuantityList": [class("L1"), class("L2")],
            "outputQuantityList": [class("P1")],
            "bizLocation": { "id": packhouse }
        }),
        json!({
            "type": "AggregationEvent", "action": "ADD", "bizStep": "packing",
            "eventTime": iso(t0 + 40 * MINUTE), "eventTimeZoneOffset": "+08:00",
            "parentID": SSCC, "childQuantityList": [class("P1")],
            "bizLocation": { "id": packhouse }
        }),
        json!({
            "type": "ObjectEvent", "action": "OBSERVE", "bizStep": "shipping",
            "eventTime": iso(t0 + 60 * MINUTE), "eventTimeZoneOffset": "+08:00",
            "epcList": [SSCC],
            "bizLocation": { "id": packhouse },
            "bizTransactionList": [{ "type": "bol", "bizTransaction": "urn:epcglobal:cbv:bt:0690123000007:BOL-1" }]
        }),
    ])
    .await;

    // The shipment, declared to cn-customs, with the logger; departed and arrived.
    let sscc_digits = "006901230000000171";
    let mut shipment = json!({
        "id": "s-1",
        "consignee": { "name": "Bangkok Fresh Co.", "country": "TH" },
        "origin_country": "CN",
        "destination_country": "TH",
        "declared_to": ["cn-customs"],
        "containers": ["CSQU3054383"],
        "ssccs": [sscc_digits],
        "lots": [{ "gtin": MANGO, "lot": "P1" }],
        "devices": [device.to_string()],
        "planned_departure": { "location": "Mohan", "time_ms": t0 + 60 * MINUTE },
    });
    created(&api, "/v1/orgs/coop/shipments", exporter, shipment.take()).await;
    let departed = t0 + 60 * MINUTE;
    created(
        &api,
        "/v1/orgs/coop/shipments/s-1/departure",
        exporter,
        json!({ "location": "Mohan", "time_ms": departed }),
    )
    .await;
    stream_readings(&node, device, &key, departed + MINUTE, 24).await;
    let arrived = departed + 120 * MINUTE;
    created(
        &api,
        "/v1/orgs/coop/shipments/s-1/arrival",
        exporter,
        json!({ "location": "Bangkok", "time_ms": arrived }),
    )
    .await;

    // The customs officer traces the packed lot both ways, once every event is anchored.
    let path = format!("/trace/01/{MANGO}/10/P1?direction=both");
    let mut trace = Value::Null;
    for _ in 0..POLLS_MAX {
        let (status, answer) =
            call(&api, Method::GET, &path, Some(&customs["customs"]), None).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        trace = answer;
        if trace["events"]
            .as_array()
            .expect("events")
            .iter()
            .all(|e| e["proof"].is_object())
        {
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    let ids = node_ids(&trace);
    for expected in [
        lot("L1"),
        lot("L2"),
        lot("P1"),
        "plot:coop/plot-7".to_owned(),
        "shipment:coop/s-1".to_owned(),
        "container:CSQU3054383".to_owned(),
    ] {
        assert!(ids.contains(&expected), "{expected} missing from {ids:?}");
    }
    assert!(
        ids.iter().any(|id| id.contains("/00/006901230000000171")),
        "the pallet: {ids:?}"
    );
    assert_eq!(trace["events"].as_array().expect("events").len(), 4);
    assert_eq!(
        verify_event_proofs(&trace),
        4,
        "every event proven against a signed checkpoint"
    );
    // Each proven leaf is the event's own entry: its commitment opens with the event's salt
    // and hash (served to whoever may read the event).
    for event in trace["events"].as_array().expect("events") {
        let id = event["eventID"].as_str().expect("id");
        let digest_hex = id
            .strip_prefix("ni:///sha-256;")
            .and_then(|h| h.split('?').next())
            .expect("events without eventID are named by their hash");
        let (status, opening) = call(
            &api,
            Method::GET,
            &format!("/epcis/events/{digest_hex}/proof"),
            Some(exporter),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{opening}");
        let entry = hex_bytes(opening["entry"].as_str().expect("entry"));
        assert_eq!(
            ledger::merkle::leaf_hash(&entry).to_hex(),
            event["proof"]["entry_leaf_hash"].as_str().expect("leaf"),
            "{id}"
        );
        let ledger::entry::Entry::TraceEvent(anchored) =
            ledger::entry::Entry::decode(&entry).expect("an entry")
        else {
            panic!("{id} is not anchored as a TraceEvent");
        };
        let salt: [u8; 32] = hex_bytes(opening["salt"].as_str().expect("salt"))
            .try_into()
            .expect("32 bytes");
        let digest: [u8; 32] = hex_bytes(digest_hex).try_into().expect("32 bytes");
        assert_eq!(
            anchored.commitment,
            ledger::entry::salted_commitment(&salt, &digest),
            "{id}"
        );
    }
    let custody = &trace["custody"][0];
    assert_eq!(custody["shipment"], "shipment:coop/s-1");
    assert_eq!(custody["arrived"], true);
    let chain = &custody["cold_chain"];
    assert_eq!(chain["readings"], 24, "{chain}");
    assert_eq!(chain["max_centi_c"], 1_500);
    assert_eq!(
        chain["outside_ms"],
        15 * MINUTE,
        "three 5-minute readings above 13 °C"
    );
    let excursion = &chain["excursions"][0];
    assert_eq!(excursion["side"], "above");
    assert_eq!(excursion["start_ms"], departed + MINUTE + 15 * MINUTE);
    assert_eq!(
        excursion["reading_proofs"][0],
        format!("/v1/devices/{device}/readings/3/proof")
    );
    let link = excursion["reading_proofs"][1].as_str().expect("link");
    let mut served = StatusCode::SERVICE_UNAVAILABLE;
    for _ in 0..POLLS_MAX {
        // 503 until a checkpoint covers the reading's batch.
        served = call(&api, Method::GET, link, Some(exporter), None).await.0;
        if served != StatusCode::SERVICE_UNAVAILABLE {
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    assert_eq!(
        served,
        StatusCode::OK,
        "the excursion's reading proof is served"
    );

    // Backward only from the shipment reaches the harvest; forward only from L1 reaches it.
    let (status, backward) = call(
        &api,
        Method::GET,
        "/trace/shipment:coop/s-1?direction=backward",
        Some(exporter),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{backward}");
    assert!(node_ids(&backward).contains(&lot("L2")));
    let (status, forward) = call(
        &api,
        Method::GET,
        &format!("/trace/{}?direction=forward", lot("L1")),
        Some(producer),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{forward}");
    let forward_ids = node_ids(&forward);
    assert!(forward_ids.contains("shipment:coop/s-1"));
    assert!(
        !forward_ids.contains(&lot("L2")),
        "a sibling is not downstream"
    );

    // Who may see it.
    for (who, token, expected) in [
        (
            "an auditor",
            Some(audit["auditor"].as_str()),
            StatusCode::OK,
        ),
        (
            "another authority",
            Some(other_customs["customs"].as_str()),
            StatusCode::NOT_FOUND,
        ),
        (
            "a stranger",
            Some(stranger["producer"].as_str()),
            StatusCode::NOT_FOUND,
        ),
        ("nobody", None, StatusCode::UNAUTHORIZED),
    ] {
        let (status, answer) = call(&api, Method::GET, &path, token, None).await;
        assert_eq!(status, expected, "{who}: {answer}");
    }
    for (bad, why) in [
        (
            format!("/trace/01/{MANGO}/10/P1?direction=sideways"),
            "a direction",
        ),
        ("/trace/01/06901234567893/10/P1".to_owned(), "a check digit"),
        ("/trace/414/0690123000011".to_owned(), "a location"),
        ("/trace/shipment:coop".to_owned(), "a shipment without id"),
    ] {
        let (status, answer) = call(&api, Method::GET, &bad, Some(exporter), None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{why}: {answer}");
    }

    // Recall of L1: what was made of it, where it went, who is involved.
    let (status, recall) = call(
        &api,
        Method::GET,
        &format!("/recall/{MANGO}/L1"),
        Some(&customs["customs"]),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{recall}");
    assert_eq!(recall["lots"], json!([lot("P1")]));
    assert_eq!(recall["shipments"].as_array().expect("shipments").len(), 1);
    let organisations: BTreeSet<&str> = recall["organisations"]
        .as_array()
        .expect("organisations")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        organisations.is_superset(&BTreeSet::from(["coop", "cn-customs", "Bangkok Fresh Co."])),
        "{organisations:?}"
    );
    let (status, _) = call(
        &api,
        Method::GET,
        &format!("/recall/{MANGO}/L1"),
        Some(&stranger["producer"]),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // FSMA 204: harvesting, initial packing and shipping rows, sortable by time.
    let export = format!("{}/exports/fsma204?from=2020-01-01&to=2100-01-01", api.base);
    let response = api
        .http
        .get(&export)
        .bearer_auth(exporter)
        .send()
        .await
        .expect("export");
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .expect("type")
            .starts_with("text/csv")
    );
    let csv = response.text().await.expect("csv");
    let lines: Vec<&str> = csv.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert!(lines[0].starts_with("Critical Tracking Event,Event Date"));
    let ctes: Vec<&str> = lines[1..]
        .iter()
        .map(|l| l.split(',').next().expect("cte"))
        .collect();
    // The coop's own events: the exporter captured packing (one output lot) and shipping (a
    // pallet by SSCC, which names no lot); the producer's harvest is the same organisation's.
    assert_eq!(
        ctes,
        ["Harvesting", "Harvesting", "Initial Packing"],
        "{csv}"
    );
    assert!(
        lines[3].contains("(01)06901234567892(10)L1; (01)06901234567892(10)L2"),
        "{csv}"
    );
    assert!(lines[1].contains("Mango / 芒果"), "{csv}");
    assert!(lines[1].contains("plot plot-7 of coop"), "{csv}");
    // A window of bare dates includes its last day.
    let (first_day, last_day) = (&rfc3339(t0)[..10], &rfc3339(t0 + 60 * MINUTE)[..10]);
    let same = api
        .http
        .get(format!(
            "{}/exports/fsma204?from={first_day}&to={last_day}",
            api.base
        ))
        .bearer_auth(exporter)
        .send()
        .await
        .expect("export")
        .text()
        .await
        .expect("csv");
    assert_eq!(same, csv, "from {first_day} to {last_day} inclusive");
    for (query, why) in [
        ("from=yesterday&to=2100-01-01", "a bad date"),
        ("from=2100-01-01&to=2020-01-01", "an empty window"),
        ("from=2020-01-01&to=2100-01-01&product=123", "a bad GTIN"),
    ] {
        let (status, _) = call(
            &api,
            Method::GET,
            &format!("/exports/fsma204?{query}"),
            Some(exporter),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{why}");
    }
    let (status, _) = call(
        &api,
        Method::GET,
        "/exports/fsma204?from=2020-01-01&to=2100-01-01&org=coop",
        Some(&stranger["producer"]),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    node.shutdown().await;
}
