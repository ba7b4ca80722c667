//! A shipment's sensor summary over real HTTP on a whole node: two loggers (the exporter's and
//! its carrier's) publish signed readings over the in-process broker before and after the
//! shipment departs; `POST /v1/orgs/{org}/shipments/{id}/sensor-summary` then captures an
//! EPCIS `ObjectEvent` whose `quantityList` is the shipment's lots and whose
//! `sensorElementList` summarises exactly the readings from departure to now (in transit) or
//! to arrival. Before departure it answers 409; customs and strangers are refused; a device
//! whose owner stopped sharing is refused; nothing is captured by a refused request.

mod common;

use std::time::Duration;

use common::{Api, committed, now_ms, rfc3339, uplink};
use protocol::{DeviceId, DoorState, KeyEpoch, Reading, SequenceNumber, SigningKey, topic};
use reqwest::{Method, StatusCode};
use rumqttc::QoS;
use serde_json::{Value, json};

/// Polls of an asynchronous result before the test gives up (a guard against hanging, not a
/// timing assertion: 50 ms apart, so about two minutes).
const POLLS_MAX: u32 = 2_400;
const POLL: Duration = Duration::from_millis(50);
const MANGO: &str = "06901234567892";
const MINUTE: u64 = 60_000;
const SHIPMENT: &str = "/v1/orgs/yunnan-export/shipments/s-1";

async fn post(api: &Api, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
    api.call(Method::POST, path, Some(token), Some(body)).await
}

/// Asks for the shipment's summary as `token`; on 202, waits for the job and returns the
/// captured event.
async fn summarise(api: &Api, token: &str, body: Value) -> (StatusCode, Value) {
    let (status, job) = post(api, &format!("{SHIPMENT}/sensor-summary"), token, body).await;
    if status != StatusCode::ACCEPTED {
        return (status, job);
    }
    let location = format!("/epcis/capture/{}", job["captureID"].as_str().expect("id"));
    for _ in 0..POLLS_MAX {
        let (status, job) = api.call(Method::GET, &location, Some(token), None).await;
        assert_eq!(status, StatusCode::OK, "{job}");
        if job["running"] == false {
            assert_eq!(job["success"], true, "{job}");
            let id = job["events"][0]["eventID"].as_str().expect("an event id");
            let encoded: String = id
                .bytes()
                .map(|b| {
                    if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                        char::from(b).to_string()
                    } else {
                        format!("%{b:02X}")
                    }
                })
                .collect();
            let (status, event) = api
                .call(
                    Method::GET,
                    &format!("/epcis/events/{encoded}"),
                    Some(token),
                    None,
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{event}");
            return (StatusCode::ACCEPTED, event);
        }
        tokio::time::sleep(POLL).await;
    }
    panic!("the capture job never finished");
}

/// The number of sensor events `token` sees.
async fn sensor_events(api: &Api, token: &str) -> usize {
    let (status, answer) = api
        .call(
            Method::GET,
            "/epcis/events?EQ_bizStep=sensor_reporting&perPage=1000",
            Some(token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    answer["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
        .as_array()
        .map_or(0, Vec::len)
}

/// Each device's temperature report: (device id, min, max, readings).
fn temperatures(event: &Value) -> Vec<(String, f64, f64, u64)> {
    event["sensorElementList"]
        .as_array()
        .unwrap_or_else(|| panic!("no sensorElementList in {event}"))
        .iter()
        .map(|element| {
            let report = &element["sensorReport"][0];
            assert_eq!(report["type"], "gs1:Temperature", "{element}");
            (
                element["sensorMetadata"]["deviceID"]
                    .as_str()
                    .expect("a device")
                    .to_owned(),
                report["minValue"].as_f64().expect("min"),
                report["maxValue"].as_f64().expect("max"),
                report["agritrace:readingCount"].as_u64().expect("count"),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shipments_readings_from_departure_to_arrival_become_one_sensor_event() {
    let (_dir, node, api) = common::start_streaming().await;
    let export = api.bootstrap("yunnan-export", &["admin", "exporter"]).await;
    let reefer = api.bootstrap("reefer-co", &["admin", "carrier"]).await;
    let customs = api.bootstrap("cn-customs", &["customs"]).await;
    let stranger = api.bootstrap("stranger", &["carrier"]).await;
    let (exporter, carrier) = (export["exporter"].as_str(), reefer["carrier"].as_str());

    // Each shares its records with the other: the carrier's logger may travel with the
    // exporter's shipment, and the carrier may report on the exporter's shipments.
    for (org, admin, partner) in [
        ("yunnan-export", &export["admin"], "reefer-co"),
        ("reefer-co", &reefer["admin"], "yunnan-export"),
    ] {
        let (status, answer) = post(
            &api,
            &format!("/v1/orgs/{org}/partners"),
            admin,
            json!({ "partner": partner }),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
    }

    // Master data, a lot, and two loggers: the exporter's and the carrier's.
    for (path, body) in [
        (
            "/v1/orgs/yunnan-export/products",
            json!({ "gtin": MANGO, "name_en": "Mango", "name_zh": "芒果",
                    "storage_min_c": 10.0, "storage_max_c": 13.0 }),
        ),
        (
            "/v1/orgs/yunnan-export/plots",
            json!({ "id": "plot-1", "name": "Plot 1", "country": "CN", "area_ha": 3.2,
                    "geometry": { "type": "Point", "coordinates": [100.45, 21.95] } }),
        ),
        (
            "/v1/orgs/yunnan-export/lots",
            json!({ "gtin": MANGO, "lot": "MH/2026-1", "plot": "plot-1",
                    "harvest_date": "2026-06-01" }),
        ),
    ] {
        let (status, answer) = post(&api, path, exporter, body).await;
        assert_eq!(status, StatusCode::CREATED, "{path}: {answer}");
    }
    let loggers: [(DeviceId, SigningKey, &str, &str); 2] = [
        (
            "c100000000000001".parse().expect("device"),
            SigningKey::from_bytes(&[41; 32]),
            "yunnan-export",
            exporter,
        ),
        (
            "c100000000000002".parse().expect("device"),
            SigningKey::from_bytes(&[42; 32]),
            "reefer-co",
            &reefer["admin"],
        ),
    ];
    for (device, key, org, token) in &loggers {
        let (status, answer) = post(
            &api,
            &format!("/v1/orgs/{org}/devices"),
            token,
            json!({ "device_id": device.to_string(),
                    "public_key": api::http::hex(key.verifying_key().as_bytes()) }),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
    }
    let shipment = |id: &str, devices: &[DeviceId]| {
        json!({
            "id": id,
            "consignee": { "name": "Bangkok Fresh Co.", "country": "TH" },
            "origin_country": "CN",
            "destination_country": "TH",
            "declared_to": ["cn-customs"],
            "ssccs": ["106901234000000008"],
            "lots": [{ "gtin": MANGO, "lot": "MH/2026-1" }],
            "devices": devices.iter().map(DeviceId::to_string).collect::<Vec<_>>(),
            "planned_departure": { "location": "Mohan border post", "time_ms": now_ms() },
        })
    };
    let shipments = "/v1/orgs/yunnan-export/shipments";
    let (status, answer) = post(
        &api,
        shipments,
        exporter,
        shipment("s-1", &[loggers[0].0, loggers[1].0]),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");

    // Not departed yet: nothing to summarise.
    let (status, answer) = summarise(&api, carrier, json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    assert!(
        answer["detail"]
            .as_str()
            .is_some_and(|d| d.contains("not departed")),
        "{answer}"
    );

    // Readings every five minutes from ten minutes before the departure to twenty after.
    let departure = now_ms() - 40 * MINUTE;
    let temperatures_centi: [[i16; 7]; 2] = [
        [900, 950, 1_100, 1_150, 1_200, 1_250, 1_300],
        [2_000, 2_100, 1_000, 1_020, 1_040, 1_060, 1_080],
    ];
    let (client, poller) = common::mqtt_client(&node, "reefers", None);
    for ((device, key, _, _), temps) in loggers.iter().zip(temperatures_centi) {
        for (sequence, centi_c) in (0_u64..).zip(temps) {
            let reading = Reading {
                device: *device,
                key_epoch: KeyEpoch(1),
                sequence: SequenceNumber(sequence),
                device_time_ms: departure - 10 * MINUTE + sequence * 5 * MINUTE,
                temperature_centi_c: centi_c,
                humidity_centi_pct: 9_000,
                position: None,
                door: DoorState::Closed,
                shock_events: 0,
                battery_mv: 3_600,
                dropped_samples: 0,
            };
            client
                .publish(
                    topic::readings_topic(*device).as_str(),
                    QoS::AtLeastOnce,
                    false,
                    uplink(&reading, key),
                )
                .await
                .expect("publish");
        }
    }
    for (device, _, _, _) in &loggers {
        committed(&node, *device, 6).await;
    }
    let (status, answer) = post(
        &api,
        &format!("{SHIPMENT}/departure"),
        exporter,
        json!({ "location": "Mohan", "time_ms": departure }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");

    // Who may report: the exporter's members and its carrier partner; not the customs
    // authority it is declared to, not a stranger, not without a token.
    for (token, why) in [
        (customs["customs"].as_str(), "customs"),
        (
            stranger["carrier"].as_str(),
            "a carrier the exporter does not share with",
        ),
        (
            reefer["admin"].as_str(),
            "the partner's admin (no capture role)",
        ),
    ] {
        let (status, answer) = summarise(&api, token, json!({})).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{why}: {answer}");
    }
    let (status, _) = api
        .call(
            Method::POST,
            &format!("{SHIPMENT}/sensor-summary"),
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // A stranger learns nothing of which shipments exist; the exporter gets 404.
    let (status, _) = post(
        &api,
        &format!("{shipments}/s-9/sensor-summary"),
        &stranger["carrier"],
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = post(
        &api,
        &format!("{shipments}/s-9/sensor-summary"),
        exporter,
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, answer) = summarise(&api, carrier, json!({ "colour": "red" })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    let (status, answer) = summarise(&api, carrier, json!({ "readPoint": "not a uri" })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(sensor_events(&api, exporter).await, 0, "nothing captured");

    // In transit: the carrier reports from departure to now.
    let (status, event) = summarise(
        &api,
        carrier,
        json!({ "readPoint": "urn:epc:id:sgln:6901234.00001.0" }),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{event}");
    assert_eq!(event["type"], "ObjectEvent");
    assert_eq!(event["action"], "OBSERVE");
    assert_eq!(event["bizStep"], "sensor_reporting");
    assert_eq!(
        event["quantityList"],
        json!([{ "epcClass": "https://id.gs1.org/01/06901234567892/10/MH%2F2026-1" }]),
        "{event}"
    );
    assert_eq!(
        event["epcList"],
        json!(["https://id.gs1.org/00/106901234000000008"]),
        "{event}"
    );
    assert_eq!(event["readPoint"]["id"], "urn:epc:id:sgln:6901234.00001.0");
    assert_eq!(event["agritrace:windowEnd"], "capture", "{event}");
    assert_eq!(
        event["agritrace:shipment"],
        "urn:agritrace:shipment:yunnan-export:s-1"
    );
    assert_eq!(
        event["sensorElementList"][0]["sensorMetadata"]["startTime"],
        rfc3339(departure)
    );
    assert_eq!(
        temperatures(&event),
        vec![
            (
                "urn:agritrace:device:c100000000000001".to_owned(),
                11.0,
                13.0,
                5
            ),
            (
                "urn:agritrace:device:c100000000000002".to_owned(),
                10.0,
                10.8,
                5
            ),
        ],
        "the readings before departure are left out"
    );

    // Arrived twelve minutes after departure: the window closes there.
    let arrival = departure + 12 * MINUTE;
    let (status, answer) = post(
        &api,
        &format!("{SHIPMENT}/arrival"),
        exporter,
        json!({ "location": "Bangkok", "time_ms": arrival }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let (status, event) = summarise(&api, exporter, json!({})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{event}");
    assert_eq!(event["eventTime"], rfc3339(arrival));
    assert_eq!(event["agritrace:windowEnd"], "arrival");
    assert_eq!(
        event["sensorElementList"][0]["sensorMetadata"]["endTime"],
        rfc3339(arrival)
    );
    assert_eq!(
        temperatures(&event),
        vec![
            (
                "urn:agritrace:device:c100000000000001".to_owned(),
                11.0,
                12.0,
                3
            ),
            (
                "urn:agritrace:device:c100000000000002".to_owned(),
                10.0,
                10.4,
                3
            ),
        ]
    );
    // The same summary again is the same event: a duplicate.
    let (status, answer) = summarise(&api, exporter, json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    assert_eq!(sensor_events(&api, exporter).await, 2);

    // A shipment without devices has nothing to summarise.
    let (status, answer) = post(&api, shipments, exporter, shipment("s-2", &[])).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let (status, answer) = post(
        &api,
        &format!("{shipments}/s-2/departure"),
        exporter,
        json!({ "location": "Mohan", "time_ms": departure }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let (status, answer) = post(
        &api,
        &format!("{shipments}/s-2/sensor-summary"),
        exporter,
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");

    // Once the carrier stops sharing, its logger's readings are no longer the exporter's to
    // report.
    let (status, answer) = api
        .call(
            Method::DELETE,
            "/v1/orgs/reefer-co/partners/yunnan-export",
            Some(&reefer["admin"]),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (status, answer) = summarise(
        &api,
        exporter,
        json!({ "readPoint": "urn:epc:id:sgln:6901234.00001.0" }),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    // The carrier still sees the exporter's records: the two events, and no third.
    assert_eq!(sensor_events(&api, carrier).await, 2, "nothing captured");

    poller.abort();
    node.shutdown().await;
}
