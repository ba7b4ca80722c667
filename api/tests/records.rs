//! Partner sharing, organisation-owned devices, lots and shipments over real HTTP on a whole
//! node (in-process broker, ingest, sequencer): sharing changes what a second organisation
//! sees and un-sharing takes it back; a customs officer sees exactly the shipments declared to
//! its authority; a device registered, rotated and revoked through the API is honoured by ingest
//! at once (signed readings published over MQTT are accepted or quarantined accordingly); and
//! every bad input gets its 4xx and leaves nothing behind.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use api::Node;
use common::{Api, committed, now_ms, start, uplink};
use ed25519_dalek::Signer as _;
use ingest::{QuarantinePage, RejectReason};
use protocol::{DeviceId, DoorState, KeyEpoch, Reading, SequenceNumber, SigningKey, topic};
use reqwest::{Method, StatusCode};
use rumqttc::QoS;
use serde_json::{Value, json};

/// Polls of a result that arrives asynchronously before the test gives up (a guard against
/// hanging, not a timing assertion: 50 ms apart, so about two minutes).
const POLLS_MAX: u32 = 2_400;
const POLL: Duration = Duration::from_millis(50);
const MANGO: &str = "06901234567892";
const LYCHEE: &str = "06901234567908";

fn hex(bytes: &[u8]) -> String {
    api::http::hex(bytes)
}

async fn post(api: &Api, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
    api.call(Method::POST, path, Some(token), Some(body)).await
}

async fn get(api: &Api, path: &str, token: &str) -> (StatusCode, Value) {
    api.call(Method::GET, path, Some(token), None).await
}

/// Creates a product and a plot of `org` (as its producer or exporter `token`).
async fn master_data(api: &Api, org: &str, token: &str, gtin: &str) {
    let (status, answer) = post(
        api,
        &format!("/v1/orgs/{org}/products"),
        token,
        json!({ "gtin": gtin, "name_en": "Mango", "name_zh": "芒果", "storage_min_c": 10.0, "storage_max_c": 13.0 }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let (status, answer) = post(
        api,
        &format!("/v1/orgs/{org}/plots"),
        token,
        json!({ "id": "plot-1", "name": "Plot 1", "country": "CN", "area_ha": 3.2,
                "geometry": { "type": "Point", "coordinates": [100.45, 21.95] } }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
}

fn lot_body(gtin: &str, lot: &str) -> Value {
    json!({ "gtin": gtin, "lot": lot, "plot": "plot-1", "harvest_date": "2026-06-01",
            "quantity": { "amount": 1200.0, "unit": "KGM" } })
}

fn shipment_body(id: &str, declared_to: &[&str]) -> Value {
    json!({
        "id": id,
        "consignee": { "name": "Bangkok Fresh Co.", "country": "TH" },
        "origin_country": "CN",
        "destination_country": "TH",
        "declared_to": declared_to,
        "containers": ["CSQU3054383"],
        "ssccs": ["106901234000000008"],
        "planned_departure": { "location": "Mohan border post", "time_ms": 1_790_000_000_000_u64 },
    })
}

fn ids(answer: &Value, list: &str, field: &str) -> BTreeSet<String> {
    answer[list]
        .as_array()
        .unwrap_or_else(|| panic!("no {list} in {answer}"))
        .iter()
        .map(|item| item[field].as_str().expect("an id").to_owned())
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sharing_changes_what_a_partner_sees_and_unsharing_takes_it_back() {
    let (_dir, node, api) = start().await;
    let coop = api.bootstrap("menghai-coop", &["admin", "producer"]).await;
    let packer = api.bootstrap("packer", &["admin", "exporter"]).await;
    let (coop_admin, producer) = (&coop["admin"], &coop["producer"]);
    let (packer_admin, exporter) = (&packer["admin"], &packer["exporter"]);
    master_data(&api, "menghai-coop", producer, MANGO).await;
    let (status, answer) = post(
        &api,
        "/v1/orgs/menghai-coop/lots",
        producer,
        lot_body(MANGO, "MH-2026-001"),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(answer["product_owner"], "menghai-coop");
    // The packer has a plot of its own but no product record for the coop's mango.
    master_data(&api, "packer", exporter, LYCHEE).await;
    let shipment = |id: &str| {
        let mut body = shipment_body(id, &[]);
        body["lots"] = json!([{ "gtin": MANGO, "lot": "MH-2026-001" }]);
        body
    };

    // Before sharing: nothing of the coop's is visible or usable to the packer.
    let lots = "/v1/orgs/menghai-coop/lots";
    let (status, _) = get(&api, lots, exporter).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, answer) = post(&api, "/v1/orgs/packer/shipments", exporter, shipment("s-1")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    let (status, answer) = post(
        &api,
        "/v1/orgs/packer/lots",
        exporter,
        lot_body(MANGO, "PK-1"),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "a partner's product: {answer}"
    );

    // Only an admin of the coop shares, with an organisation that exists, once.
    let partners = "/v1/orgs/menghai-coop/partners";
    let (status, _) = post(&api, partners, producer, json!({ "partner": "packer" })).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = post(&api, partners, coop_admin, json!({ "partner": "nobody" })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = post(
        &api,
        partners,
        coop_admin,
        json!({ "partner": "menghai-coop" }),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, answer) = post(&api, partners, coop_admin, json!({ "partner": "packer" })).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let (status, _) = post(&api, partners, coop_admin, json!({ "partner": "packer" })).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, answer) = get(&api, partners, producer).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(ids(&answer, "shares_with", "org"), set(&["packer"]));
    assert!(ids(&answer, "shared_by", "org").is_empty());
    let (status, answer) = get(&api, "/v1/orgs/packer/partners", packer_admin).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(ids(&answer, "shared_by", "org"), set(&["menghai-coop"]));

    // After sharing: the packer reads the coop's lots, ships them, builds on its product.
    let (status, answer) = get(&api, lots, exporter).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(ids(&answer, "lots", "lot"), set(&["MH-2026-001"]));
    let (status, answer) = get(
        &api,
        "/v1/orgs/menghai-coop/lots/06901234567892/MH-2026-001",
        exporter,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["harvest_date"], "2026-06-01");
    let (status, answer) = post(&api, "/v1/orgs/packer/shipments", exporter, shipment("s-1")).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(answer["status"], "planned");
    let (status, answer) = post(
        &api,
        "/v1/orgs/packer/lots",
        exporter,
        lot_body(MANGO, "PK-1"),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(answer["product_owner"], "menghai-coop");
    // Sharing is one way: the coop does not see the packer's records.
    let (status, _) = get(&api, "/v1/orgs/packer/lots", producer).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, answer) = get(&api, "/v1/shipments", producer).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert!(ids(&answer, "shipments", "id").is_empty(), "{answer}");

    // After un-sharing: back to nothing.
    let (status, answer) = api
        .call(
            Method::DELETE,
            "/v1/orgs/menghai-coop/partners/packer",
            Some(coop_admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert!(answer["ended_ms"].is_u64(), "{answer}");
    let (status, _) = get(&api, lots, exporter).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = post(&api, "/v1/orgs/packer/shipments", exporter, shipment("s-2")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, answer) = get(&api, "/v1/orgs/packer/partners", packer_admin).await;
    assert_eq!(status, StatusCode::OK);
    assert!(ids(&answer, "shared_by", "org").is_empty(), "{answer}");
    let (status, _) = api
        .call(
            Method::DELETE,
            "/v1/orgs/menghai-coop/partners/packer",
            Some(coop_admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customs_officer_sees_exactly_the_shipments_declared_to_it() {
    let (_dir, node, api) = start().await;
    let exporter = api.bootstrap("yunnan-export", &["exporter"]).await;
    let cn = api.bootstrap("cn-customs-mohan", &["customs"]).await;
    let th = api.bootstrap("th-customs", &["customs"]).await;
    let audit = api.bootstrap("audit-office", &["auditor"]).await;
    let stranger = api.bootstrap("stranger", &["producer"]).await;
    let exporter = &exporter["exporter"];
    let shipments = "/v1/orgs/yunnan-export/shipments";
    for (id, declared_to) in [
        ("s-1", &["cn-customs-mohan"][..]),
        ("s-2", &["th-customs"][..]),
        ("s-3", &["cn-customs-mohan", "th-customs"][..]),
        ("s-4", &[][..]),
    ] {
        let (status, answer) =
            post(&api, shipments, exporter, shipment_body(id, declared_to)).await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
    }
    let list = |token: &str, query: &str| {
        let api = &api;
        let path = format!("/v1/shipments{query}");
        let token = token.to_owned();
        async move {
            let (status, answer) = get(api, &path, &token).await;
            assert_eq!(status, StatusCode::OK, "{path}: {answer}");
            ids(&answer, "shipments", "id")
        }
    };
    assert_eq!(list(&cn["customs"], "").await, set(&["s-1", "s-3"]));
    assert_eq!(list(&th["customs"], "").await, set(&["s-2", "s-3"]));
    assert_eq!(
        list(&audit["auditor"], "").await,
        set(&["s-1", "s-2", "s-3", "s-4"])
    );
    assert_eq!(list(exporter, "").await, set(&["s-1", "s-2", "s-3", "s-4"]));
    assert!(list(&stranger["producer"], "").await.is_empty());
    // A filter narrows, never widens.
    assert_eq!(
        list(&cn["customs"], "?declared_to=th-customs").await,
        set(&["s-3"])
    );
    assert_eq!(
        list(&audit["auditor"], "?declared_to=th-customs").await,
        set(&["s-2", "s-3"])
    );

    // Pages: one at a time, following the cursor, each shipment once.
    let mut seen = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let query = match &next {
            Some(cursor) => format!("/v1/shipments?limit=1&next={cursor}"),
            None => "/v1/shipments?limit=1".to_owned(),
        };
        let (status, answer) = get(&api, &query, &cn["customs"]).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        seen.extend(ids(&answer, "shipments", "id"));
        match answer["next"].as_str() {
            Some(cursor) => next = Some(cursor.to_owned()),
            None => break,
        }
        assert!(seen.len() <= 2, "{seen:?}");
    }
    assert_eq!(seen, vec!["s-1".to_owned(), "s-3".to_owned()]);
    for bad in ["?limit=0", "?next=zz", "?status=lost", "?colour=red"] {
        let (status, answer) = get(&api, &format!("/v1/shipments{bad}"), &cn["customs"]).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {answer}");
    }

    // One shipment: the officer reads those declared to it, not the others; the owner's
    // list is the owner's (and auditors').
    let (status, answer) = get(&api, &format!("{shipments}/s-1"), &cn["customs"]).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["containers"], json!(["CSQU3054383"]));
    let (status, _) = get(&api, &format!("{shipments}/s-2"), &cn["customs"]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = get(&api, shipments, &cn["customs"]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, answer) = get(&api, shipments, &audit["auditor"]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ids(&answer, "shipments", "id").len(), 4);

    // Departure and arrival, once each; the status filter follows them.
    let departed = now_ms() - 60_000;
    let (status, answer) = post(
        &api,
        &format!("{shipments}/s-1/departure"),
        exporter,
        json!({ "location": "Mohan", "time_ms": departed }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(answer["status"], "departed");
    assert_eq!(
        list(&cn["customs"], "?status=departed").await,
        set(&["s-1"])
    );
    assert_eq!(list(&cn["customs"], "?status=planned").await, set(&["s-3"]));
    let (status, answer) = post(
        &api,
        &format!("{shipments}/s-1/arrival"),
        exporter,
        json!({ "location": "Bangkok", "time_ms": departed + 1_000 }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(
        list(&th["customs"], "?status=arrived").await,
        BTreeSet::new()
    );
    assert_eq!(list(&cn["customs"], "?status=arrived").await, set(&["s-1"]));
    node.shutdown().await;
}

fn reading(device: DeviceId, epoch: u32, sequence: u64) -> Reading {
    Reading {
        device,
        key_epoch: KeyEpoch(epoch),
        sequence: SequenceNumber(sequence),
        device_time_ms: now_ms(),
        temperature_centi_c: 1_150,
        humidity_centi_pct: 9_000,
        position: None,
        door: DoorState::Closed,
        shock_events: 0,
        battery_mv: 3_600,
        dropped_samples: 0,
    }
}

/// Waits until reading `sequence` of `device` is quarantined, and returns why.
async fn quarantined(node: &Node, device: DeviceId, sequence: u64) -> RejectReason {
    let page = QuarantinePage {
        after_id: None,
        limit: 1_000,
    };
    for _ in 0..POLLS_MAX {
        let list = node
            .ingest()
            .quarantine(Some(device), page)
            .expect("storage");
        if let Some(record) = list
            .records
            .iter()
            .find(|r| r.sequence == Some(SequenceNumber(sequence)))
        {
            return record.reason;
        }
        tokio::time::sleep(POLL).await;
    }
    panic!("reading {sequence} of {device} was never quarantined");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_registered_rotated_and_revoked_over_http_are_honoured_by_ingest_at_once() {
    let (_dir, node, api) = common::start_streaming().await;
    let reefer = api
        .bootstrap("reefer-co", &["admin", "carrier", "auditor"])
        .await;
    let rival = api.bootstrap("rival", &["admin"]).await;
    let admin = &reefer["admin"];
    let devices = "/v1/orgs/reefer-co/devices";
    let device: DeviceId = "a900000000000002".parse().expect("device id");
    let (k1, k2) = (
        SigningKey::from_bytes(&[21; 32]),
        SigningKey::from_bytes(&[22; 32]),
    );
    let key_hex = |key: &SigningKey| hex(key.verifying_key().as_bytes());

    // Register; again with the same key is a no-op; anything else conflicts.
    let register =
        json!({ "device_id": device.to_string(), "public_key": key_hex(&k1), "name": "Reefer 7" });
    let (status, _) = post(&api, devices, &reefer["carrier"], json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, answer) = post(&api, devices, admin, register.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(answer["org"], "reefer-co");
    assert!(answer["keys"][0]["log_index"].is_u64(), "{answer}");
    let (status, _) = post(&api, devices, admin, register.clone()).await;
    assert_eq!(status, StatusCode::OK);
    let (status, answer) = post(
        &api,
        "/v1/orgs/rival/devices",
        &rival["admin"],
        register.clone(),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "a stranger's device: {answer}"
    );
    let mut other_key = register.clone();
    other_key["public_key"] = json!(key_hex(&k2));
    let (status, _) = post(&api, devices, admin, other_key).await;
    assert_eq!(status, StatusCode::CONFLICT, "another key");
    let mut weak = register.clone();
    weak["device_id"] = json!("a900000000000009");
    weak["public_key"] = json!("0000000000000000000000000000000000000000000000000000000000000000");
    let (status, _) = post(&api, devices, admin, weak).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a weak key");
    let (status, _) = get(&api, "/v1/orgs/reefer-co/devices/a900000000000009", admin).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing left behind");

    // Publish over the in-process broker.
    let (client, poller) = common::mqtt_client(&node, "reefer-7", None);
    let publish = |epoch: u32, sequence: u64, key: &SigningKey| {
        let payload = uplink(&reading(device, epoch, sequence), key);
        let client = client.clone();
        async move {
            client
                .publish(
                    topic::readings_topic(device).as_str(),
                    QoS::AtLeastOnce,
                    false,
                    payload,
                )
                .await
                .expect("publish");
        }
    };
    publish(1, 0, &k1).await;
    committed(&node, device, 0).await;
    let (status, answer) = get(&api, &format!("{devices}/{device}"), &reefer["carrier"]).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["last_seen"]["sequence"], 0, "{answer}");

    // Rotation: signed by the old key over the rotation message, to the next epoch.
    let rotation = format!("{devices}/{device}/rotation");
    let message =
        ledger::entry::key_rotation_message(device, KeyEpoch(2), k2.verifying_key().as_bytes());
    let by_old = hex(&k1.sign(&message).to_bytes());
    let by_new = hex(&k2.sign(&message).to_bytes());
    let (status, answer) = post(
        &api,
        &rotation,
        admin,
        json!({ "key_epoch": 2, "public_key": key_hex(&k2), "signature": by_new }),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "a bad rotation signature: {answer}"
    );
    let (status, _) = post(
        &api,
        &rotation,
        admin,
        json!({ "key_epoch": 3, "public_key": key_hex(&k2), "signature": by_old }),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "a skipped epoch");
    let (status, _) = post(
        &api,
        &format!("/v1/orgs/rival/devices/{device}/rotation"),
        &rival["admin"],
        json!({ "key_epoch": 2, "public_key": key_hex(&k2), "signature": by_old }),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "a stranger rotates nothing");
    let (status, answer) = get(&api, &format!("{devices}/{device}"), admin).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["keys"].as_array().map(Vec::len), Some(1), "{answer}");
    let (status, answer) = post(
        &api,
        &rotation,
        admin,
        json!({ "key_epoch": 2, "public_key": key_hex(&k2), "signature": by_old }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    publish(2, 1, &k2).await;
    committed(&node, device, 1).await;

    // Revocation of epoch 1: its next reading is quarantined as revoked; epoch 2 goes on.
    let revocation = format!("{devices}/{device}/revocation");
    let (status, _) = post(
        &api,
        &revocation,
        admin,
        json!({ "key_epoch": 1, "effective_time_ms": now_ms() - 3_600_000 }),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "backdated beyond the tolerance"
    );
    let (status, answer) = post(&api, &revocation, admin, json!({ "key_epoch": 1 })).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let (status, _) = post(&api, &revocation, admin, json!({ "key_epoch": 1 })).await;
    assert_eq!(status, StatusCode::CONFLICT, "revoked already");
    publish(1, 2, &k1).await;
    assert_eq!(
        quarantined(&node, device, 2).await,
        RejectReason::RevokedKey
    );
    publish(2, 3, &k2).await;
    committed(&node, device, 3).await;

    // The history: each key event with its log index.
    let (status, answer) = get(&api, &format!("{devices}/{device}"), admin).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let keys = answer["keys"].as_array().expect("keys");
    assert_eq!(keys.len(), 2, "{answer}");
    assert_eq!(keys[0]["status"], "revoked");
    assert_eq!(keys[1]["status"], "active");
    let indexes: Vec<u64> = [
        &keys[0]["log_index"],
        &keys[1]["log_index"],
        &keys[0]["revocation"]["log_index"],
    ]
    .iter()
    .map(|v| {
        v.as_u64()
            .unwrap_or_else(|| panic!("a log index in {answer}"))
    })
    .collect();
    assert!(
        indexes[0] < indexes[1] && indexes[1] < indexes[2],
        "{indexes:?}"
    );
    assert_eq!(answer["last_seen"]["sequence"], 3, "{answer}");

    // A device the operator imported has no owner: registering it conflicts, claiming it
    // needs a signature by its key.
    let k3 = SigningKey::from_bytes(&[23; 32]);
    let imported: DeviceId = "a900000000000003".parse().expect("device id");
    let manifest = json!({
        "format": "agritrace-device-manifest/v1",
        "devices": [{ "device_id": imported.to_string(), "key_epoch": 1, "algorithm": "ed25519",
                      "public_key": key_hex(&k3) }],
    });
    let (status, answer) = api
        .call(Method::POST, "/v1/devices/import", None, Some(manifest))
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (status, answer) = post(
        &api,
        devices,
        admin,
        json!({ "device_id": imported.to_string(), "public_key": key_hex(&k3) }),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    assert!(
        answer["detail"]
            .as_str()
            .is_some_and(|d| d.contains("claim")),
        "{answer}"
    );
    let claim = format!("{devices}/{imported}/claim");
    let org: api::auth::OrgId = "reefer-co".parse().expect("org");
    let rival_org: api::auth::OrgId = "rival".parse().expect("org");
    let wrong = hex(&k3
        .sign(&api::devices::claim_message(imported, &rival_org))
        .to_bytes());
    let (status, _) = post(&api, &claim, admin, json!({ "signature": wrong })).await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "a claim signed for another organisation"
    );
    let right = hex(&k3
        .sign(&api::devices::claim_message(imported, &org))
        .to_bytes());
    let (status, answer) = post(
        &api,
        &claim,
        admin,
        json!({ "signature": right, "name": "Reefer 8" }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(answer["claimed"], true);

    // The organisation's devices, a page at a time; an auditor reads them, a stranger does not.
    let (status, answer) = get(&api, &format!("{devices}?limit=1"), &reefer["auditor"]).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        ids(&answer, "devices", "device_id"),
        set(&["a900000000000002"])
    );
    let cursor = answer["next"].as_str().expect("a next page").to_owned();
    let (status, answer) = get(&api, &format!("{devices}?limit=1&next={cursor}"), admin).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        ids(&answer, "devices", "device_id"),
        set(&["a900000000000003"])
    );
    assert!(answer["next"].is_null(), "{answer}");
    let (status, _) = get(&api, devices, &rival["admin"]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    poller.abort();
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_its_4xx_and_leaves_nothing_behind() {
    let (_dir, node, api) = start().await;
    let coop = api
        .bootstrap("menghai-coop", &["admin", "producer", "exporter"])
        .await;
    let customs = api.bootstrap("cn-customs-mohan", &["customs"]).await;
    let stranger = api.bootstrap("stranger", &["admin", "producer"]).await;
    let (producer, exporter) = (&coop["producer"], &coop["exporter"]);
    master_data(&api, "menghai-coop", producer, MANGO).await;
    // GTINs are unique on the node: the stranger has a product of its own, and may use the
    // coop's mango once the coop shares its records with it.
    master_data(&api, "stranger", &stranger["producer"], "06901234567915").await;
    let (status, answer) = post(
        &api,
        "/v1/orgs/menghai-coop/partners",
        &coop["admin"],
        json!({ "partner": "stranger" }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let lots = "/v1/orgs/menghai-coop/lots";
    let empty_lots = || async {
        let (status, answer) = get(&api, lots, producer).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert!(
            ids(&answer, "lots", "lot").is_empty(),
            "left behind: {answer}"
        );
    };

    let good = lot_body(MANGO, "MH-2026-007");
    for (field, value, why) in [
        ("gtin", json!("06901234567893"), "a wrong GTIN check digit"),
        ("gtin", json!(LYCHEE), "an unknown product"),
        ("lot", json!("MH#7"), "a lot outside character set 82"),
        ("lot", json!("L".repeat(21)), "a lot over 20 characters"),
        ("plot", json!("plot-9"), "an unknown plot"),
        ("harvest_date", json!("2999-01-01"), "a future harvest date"),
        ("harvest_date", json!("2026-02-30"), "no such date"),
        (
            "quantity",
            json!({ "amount": -1.0, "unit": "KGM" }),
            "a negative quantity",
        ),
    ] {
        let mut body = good.clone();
        body[field] = value;
        let (status, answer) = post(&api, lots, producer, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{why}: {answer}");
        empty_lots().await;
    }
    let (status, answer) = post(&api, lots, producer, good.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let (status, _) = post(&api, lots, producer, good.clone()).await;
    assert_eq!(status, StatusCode::CONFLICT, "a duplicate lot");
    let (status, _) = post(&api, "/v1/orgs/stranger/lots", &stranger["producer"], good).await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "a (GTIN, lot) is one lot on the node"
    );
    let (status, answer) = get(&api, "/v1/orgs/stranger/lots", &stranger["producer"]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(ids(&answer, "lots", "lot").is_empty(), "{answer}");

    // Shipments.
    let stranger_device: DeviceId = "b100000000000001".parse().expect("device");
    let (status, answer) = post(
        &api,
        "/v1/orgs/stranger/devices",
        &stranger["admin"],
        json!({ "device_id": stranger_device.to_string(),
                "public_key": hex(SigningKey::from_bytes(&[31; 32]).verifying_key().as_bytes()) }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let shipments = "/v1/orgs/menghai-coop/shipments";
    let mut good = shipment_body("s-1", &["cn-customs-mohan"]);
    good["lots"] = json!([{ "gtin": MANGO, "lot": "MH-2026-007" }]);
    for (field, value, why) in [
        (
            "containers",
            json!(["CSQU3054384"]),
            "a wrong container check digit",
        ),
        (
            "containers",
            json!(["CSQU3054383", "CSQU3054383"]),
            "a container twice",
        ),
        (
            "ssccs",
            json!(["106901234000000009"]),
            "a wrong SSCC check digit",
        ),
        ("declared_to", json!(["th-customs"]), "an unknown authority"),
        (
            "lots",
            json!([{ "gtin": MANGO, "lot": "MH-2026-999" }]),
            "an unknown lot",
        ),
        ("devices", json!(["b100000000000009"]), "an unknown device"),
        (
            "devices",
            json!([stranger_device.to_string()]),
            "a stranger's device",
        ),
        (
            "destination_country",
            json!("Thailand"),
            "not a country code",
        ),
        ("id", json!("S 1"), "not an identifier"),
    ] {
        let mut body = good.clone();
        body[field] = value;
        let (status, answer) = post(&api, shipments, exporter, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{why}: {answer}");
    }
    let (status, answer) = post(&api, shipments, producer, good.clone()).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "only exporters ship: {answer}"
    );
    let (status, answer) = get(&api, shipments, exporter).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        ids(&answer, "shipments", "id").is_empty(),
        "left behind: {answer}"
    );
    let (status, answer) = get(&api, "/v1/shipments", &customs["customs"]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        ids(&answer, "shipments", "id").is_empty(),
        "left behind: {answer}"
    );

    let (status, answer) = post(&api, shipments, exporter, good.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let (status, _) = post(&api, shipments, exporter, good).await;
    assert_eq!(status, StatusCode::CONFLICT, "a duplicate shipment id");

    // Departure and arrival.
    let stop = |time_ms: u64| json!({ "location": "Mohan", "time_ms": time_ms });
    let departed = now_ms() - 3_600_000;
    let (status, _) = post(
        &api,
        &format!("{shipments}/s-1/arrival"),
        exporter,
        stop(departed),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "an arrival before any departure"
    );
    let (status, _) = post(
        &api,
        &format!("{shipments}/s-1/departure"),
        exporter,
        stop(now_ms() + 86_400_000),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a departure in the future");
    let (status, answer) = post(
        &api,
        &format!("{shipments}/s-1/departure"),
        exporter,
        stop(departed),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let (status, _) = post(
        &api,
        &format!("{shipments}/s-1/departure"),
        exporter,
        stop(departed),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "a second departure");
    let (status, answer) = post(
        &api,
        &format!("{shipments}/s-1/arrival"),
        exporter,
        stop(departed - 1),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "arrival before departure: {answer}"
    );
    let (status, _) = post(
        &api,
        &format!("{shipments}/s-9/departure"),
        exporter,
        stop(departed),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, answer) = get(&api, &format!("{shipments}/s-1"), &customs["customs"]).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        answer["status"], "departed",
        "nothing of the refused arrival: {answer}"
    );
    assert!(answer["arrival"].is_null());
    node.shutdown().await;
}
