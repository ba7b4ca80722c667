//! A device's health and quarantine over real HTTP on a whole node (in-process broker, ingest,
//! sequencer): readings published over MQTT with a gap in their sequence numbers, a device clock
//! ahead of ingest's and a growing count of dropped samples show up in the health view exactly;
//! a reading with a bad signature shows up in the quarantine list with its reason; and the views
//! answer 404 for another organisation's device and 400 for bad parameters.

mod common;

use std::time::Duration;

use common::{Api, committed, now_ms, uplink};
use protocol::{DeviceId, DoorState, KeyEpoch, Reading, SequenceNumber, SigningKey, topic};
use reqwest::{Method, StatusCode};
use rumqttc::QoS;
use serde_json::{Value, json};

/// Polls of a result that arrives asynchronously before the test gives up (a guard against
/// hanging, not a timing assertion: 50 ms apart, so about two minutes).
const POLLS_MAX: u32 = 2_400;
const POLL: Duration = Duration::from_millis(50);
/// How far ahead of ingest the device's clock runs in this test.
const AHEAD_MS: u64 = 2 * 60 * 60 * 1_000;

async fn get(api: &Api, path: &str, token: &str) -> (StatusCode, Value) {
    api.call(Method::GET, path, Some(token), None).await
}

fn reading(device: DeviceId, sequence: u64, dropped: u32) -> Reading {
    Reading {
        device,
        key_epoch: KeyEpoch(1),
        sequence: SequenceNumber(sequence),
        device_time_ms: now_ms() + AHEAD_MS,
        temperature_centi_c: 1_150,
        humidity_centi_pct: 9_000,
        position: None,
        door: DoorState::Closed,
        shock_events: 0,
        battery_mv: 3_550,
        dropped_samples: dropped,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_shows_gaps_clock_offset_and_dropped_samples_and_quarantine_shows_refusals() {
    let (_dir, node, api) = common::start_streaming().await;
    let coop = api.bootstrap("coop", &["admin", "auditor"]).await;
    let rival = api.bootstrap("rival", &["admin"]).await;
    let device: DeviceId = "a900000000000031".parse().expect("device id");
    let key = SigningKey::from_bytes(&[31; 32]);
    let devices = "/v1/orgs/coop/devices";
    let (status, answer) = api
        .call(
            Method::POST,
            devices,
            Some(&coop["admin"]),
            Some(json!({ "device_id": device.to_string(),
                         "public_key": api::http::hex(key.verifying_key().as_bytes()) })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let health = format!("{devices}/{device}/health");
    let quarantine = format!("{devices}/{device}/quarantine");

    // Before any reading: the key history, nothing else.
    let (status, answer) = get(&api, &health, &coop["auditor"]).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["readings_examined"], 0, "{answer}");
    assert!(answer["last_reading"].is_null(), "{answer}");
    assert_eq!(answer["keys"][0]["key_epoch"], 1, "{answer}");

    let (client, _poller) = common::mqtt_client(&node, "health-1", None);
    let readings_topic = topic::readings_topic(device);
    // Sequences 10..=13, then 17, 18, then 25: gaps 14..=16 and 19..=24. The device's count
    // of dropped samples grows from 2 to 9 over the window.
    let sent: [(u64, u32); 7] = [
        (10, 2),
        (11, 2),
        (12, 3),
        (13, 3),
        (17, 5),
        (18, 5),
        (25, 9),
    ];
    for (sequence, dropped) in sent {
        client
            .publish(
                readings_topic.as_str(),
                QoS::AtLeastOnce,
                false,
                uplink(&reading(device, sequence, dropped), &key),
            )
            .await
            .expect("publish");
    }
    // And one whose signature is another key's: quarantined as a bad signature.
    let forged = {
        let stranger = SigningKey::from_bytes(&[99; 32]);
        uplink(&reading(device, 26, 9), &stranger)
    };
    client
        .publish(readings_topic.as_str(), QoS::AtLeastOnce, false, forged)
        .await
        .expect("publish");
    committed(&node, device, 25).await;

    let (status, answer) = get(&api, &health, &coop["admin"]).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["readings_examined"], 7, "{answer}");
    assert_eq!(answer["last_reading"]["sequence"], 25, "{answer}");
    assert_eq!(answer["last_reading"]["battery_mv"], 3_550, "{answer}");
    assert_eq!(answer["outbox"]["first_sequence"], 10, "{answer}");
    assert_eq!(answer["outbox"]["missing"], 9, "{answer}");
    assert_eq!(
        answer["outbox"]["gaps"],
        json!([{ "first": 14, "last": 16 }, { "first": 19, "last": 24 }]),
        "{answer}"
    );
    assert_eq!(answer["outbox"]["gaps_listed_all"], true, "{answer}");
    assert_eq!(answer["outbox"]["dropped_samples"], 9, "{answer}");
    assert_eq!(answer["outbox"]["dropped_samples_in_window"], 7, "{answer}");
    // The device runs two hours ahead (less the little time between stamping and ingest),
    // far past ingest's five-minute skew bound: every reading is flagged.
    let offset = answer["clock"]["offset_ms"].as_i64().expect("offset");
    let ahead = i64::try_from(AHEAD_MS).expect("fits");
    assert!(
        offset <= ahead && offset > ahead - 60_000,
        "offset {offset}: {answer}"
    );
    assert_eq!(answer["clock"]["skewed_readings"], 7, "{answer}");

    // A window of 10 ending at 25 sees 16..=25: 17, 18, 25 and the gaps 16 and 19..=24.
    let (status, answer) = get(&api, &format!("{health}?window=10"), &coop["admin"]).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["readings_examined"], 3, "{answer}");
    assert_eq!(answer["outbox"]["missing"], 6, "{answer}");
    assert_eq!(answer["outbox"]["dropped_samples_in_window"], 4, "{answer}");

    // The forged reading is in quarantine, with its reason and sequence number.
    let mut records = Vec::new();
    for _ in 0..POLLS_MAX {
        let (status, answer) = get(&api, &quarantine, &coop["auditor"]).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        records = answer["quarantine"].as_array().cloned().unwrap_or_default();
        if !records.is_empty() {
            assert!(answer["next"].is_null(), "{answer}");
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["reason"], "bad_signature");
    assert_eq!(records[0]["sequence"], 26);
    assert!(
        records[0]["bytes"].as_str().is_some_and(|b| !b.is_empty()),
        "{records:?}"
    );

    // Paging: a page of one, then the cursor leads past it to an empty page.
    let (status, answer) = get(&api, &format!("{quarantine}?limit=1"), &coop["admin"]).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["quarantine"].as_array().map(Vec::len), Some(1));

    // Another organisation's device is not found; bad parameters are 400.
    let rival_path = format!("/v1/orgs/rival/devices/{device}/health");
    let (status, _) = get(&api, &rival_path, &rival["admin"]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = get(&api, &health, &rival["admin"]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    for bad in ["?window=0", "?window=10001", "?window=x", "?other=1"] {
        let (status, answer) = get(&api, &format!("{health}{bad}"), &coop["admin"]).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {answer}");
    }
    for bad in ["?limit=0", "?next=zz", "?next=00"] {
        let (status, answer) = get(&api, &format!("{quarantine}{bad}"), &coop["admin"]).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {answer}");
    }
    let (status, _) = get(
        &api,
        &format!("{devices}/a900000000000099/health"),
        &coop["admin"],
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
