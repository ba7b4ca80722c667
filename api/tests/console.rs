//! The customs console over real HTTP on a whole node: its pages are shells in the caller's
//! language with no data in them (and refuse a path that names no shipment), its script is
//! served, and the temperatures its chart draws are the readings of the shipment's devices in
//! the custody window only — from departure to arrival, in device-time order, with the
//! product's band — answered to whoever may read the shipment (its exporter, the customs
//! authority it is declared to, an auditor) and to no one else. The browser side is
//! `tests/browser/console.test.mjs`.

mod common;

use api::Node;
use common::{Api, committed, now_ms};
use protocol::{DeviceId, Reading, SigningKey};
use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};

const MANGO: &str = "06901234567892";
const MINUTE: u64 = 60_000;
/// Readings the logger sends: the first two before departure, the last two after arrival.
const READINGS: u64 = 12;

async fn created(api: &Api, path: &str, token: &str, body: Value) -> Value {
    let (status, answer) = api.call(Method::POST, path, Some(token), Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{path}: {answer}");
    answer
}

/// A GET without a token; status, headers and body text.
async fn fetch(
    api: &Api,
    path: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, header::HeaderMap, String) {
    let mut request = api.http.get(format!("{}{path}", api.base));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("the node answers");
    let status = response.status();
    let headers = response.headers().clone();
    (status, headers, response.text().await.expect("a body"))
}

/// The temperature of reading `sequence`: 5.0 °C for the 5th and 6th, 3.0 °C otherwise.
fn temperature(sequence: u64) -> i16 {
    if (5..7).contains(&sequence) { 500 } else { 300 }
}

/// Readings every 10 minutes from `from_ms`, committed before this returns.
async fn stream_readings(node: &Node, device: DeviceId, key: &SigningKey, from_ms: u64) {
    let (client, poller) = common::mqtt_client(node, "logger-c", None);
    for sequence in 0..READINGS {
        let reading = Reading {
            temperature_centi_c: temperature(sequence),
            ..common::reading_at(device, sequence, from_ms + sequence * 10 * MINUTE)
        };
        common::publish_reading(&client, &reading, key).await;
    }
    for sequence in 0..READINGS {
        committed(node, device, sequence).await;
    }
    poller.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_pages_are_shells_in_the_callers_language() {
    let (_dir, _node, api) = common::start().await;
    let (status, headers, html) = fetch(&api, "/console", &[("accept-language", "zh-CN")]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers[header::CONTENT_TYPE]
            .to_str()
            .expect("ascii")
            .starts_with("text/html")
    );
    assert_eq!(headers[header::CACHE_CONTROL], "no-store");
    assert!(
        headers[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .expect("ascii")
            .contains("script-src 'self'")
    );
    assert!(html.contains("<html lang=\"zh-Hans\">"), "{html}");
    assert!(html.contains("<title>海关控制台 · agritrace</title>"));
    assert!(html.contains("<script src=\"/pages/console.js\"></script>"));
    assert!(html.contains("data-signed-in=\"true\""));
    let (status, _, html) = fetch(&api, "/console/shipments/coop/s-1?lang=en", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("data-org=\"coop\" data-id=\"s-1\""), "{html}");
    assert!(html.contains("Export evidence"));
    assert!(
        html.contains("href=\"/console/shipments/coop/s-1?lang=zh\""),
        "the language switch"
    );
    for bad in [
        "/console/shipments/Coop!/s-1",
        "/console/shipments/coop/%3Cs%3E",
    ] {
        let (status, headers, body) = fetch(&api, bad, &[]).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert_eq!(
            headers[header::CONTENT_TYPE],
            "application/problem+json",
            "{bad}"
        );
    }
    let (status, headers, script) = fetch(&api, "/pages/console.js", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers[header::CONTENT_TYPE]
            .to_str()
            .expect("ascii")
            .starts_with("text/javascript")
    );
    assert!(script.contains("window.agritrace"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chart_gets_the_custody_windows_readings_and_only_readers_of_the_shipment_do() {
    let (_dir, node, api) = common::start_streaming().await;
    let coop = api.bootstrap("coop", &["exporter"]).await;
    let customs = api.bootstrap("th-customs", &["customs"]).await;
    let elsewhere = api.bootstrap("vn-customs", &["customs"]).await;
    let auditor = api.bootstrap("court", &["auditor"]).await;
    let rival = api.bootstrap("rival", &["exporter"]).await;
    let exporter = coop["exporter"].as_str();
    created(&api, "/v1/orgs/coop/products", exporter, json!({
        "gtin": MANGO, "name_en": "Mango", "name_zh": "芒果", "storage_min_c": 0.0, "storage_max_c": 4.0
    }))
    .await;
    created(
        &api,
        "/v1/orgs/coop/plots",
        exporter,
        json!({
            "id": "plot-1", "name": "Plot 1", "country": "CN",
            "area_ha": 1.5, "geometry": { "type": "Point", "coordinates": [100.45, 21.95] }
        }),
    )
    .await;
    created(
        &api,
        "/v1/orgs/coop/lots",
        exporter,
        json!({
            "gtin": MANGO, "lot": "L1", "plot": "plot-1", "harvest_date": "2026-06-01"
        }),
    )
    .await;
    let device: DeviceId = "c200000000000001".parse().expect("device");
    let key = SigningKey::from_bytes(&[41; 32]);
    created(&api, "/v1/orgs/coop/devices", exporter, json!({
        "device_id": device.to_string(),
        "public_key": key.verifying_key().as_bytes().iter().map(|b| format!("{b:02x}")).collect::<String>(),
        "name": "Logger 1",
    }))
    .await;
    let t0 = now_ms() - 4 * 60 * MINUTE;
    // Departure between readings 1 and 2, arrival between readings 9 and 10.
    let departed = t0 + 15 * MINUTE;
    let arrived = t0 + 95 * MINUTE;
    created(
        &api,
        "/v1/orgs/coop/shipments",
        exporter,
        json!({
            "id": "s-1",
            "consignee": { "name": "Bangkok Fresh Co.", "country": "TH" },
            "origin_country": "CN", "destination_country": "TH",
            "declared_to": ["th-customs"],
            "lots": [{ "gtin": MANGO, "lot": "L1" }],
            "devices": [device.to_string()],
            "planned_departure": { "location": "Mohan", "time_ms": departed },
        }),
    )
    .await;
    let path = "/v1/orgs/coop/shipments/s-1/temperatures";
    // Before departure: no window, no points, the band already.
    let (status, before) = api
        .call(Method::GET, path, Some(&customs["customs"]), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{before}");
    assert_eq!(before["departed"], false);
    assert_eq!(before["points"], json!([]));
    assert_eq!(before["band_centi_c"], json!([0, 400]));
    created(
        &api,
        "/v1/orgs/coop/shipments/s-1/departure",
        exporter,
        json!({ "location": "Mohan", "time_ms": departed }),
    )
    .await;
    stream_readings(&node, device, &key, t0).await;
    created(
        &api,
        "/v1/orgs/coop/shipments/s-1/arrival",
        exporter,
        json!({ "location": "Bangkok", "time_ms": arrived }),
    )
    .await;
    let expected: Vec<Value> = (2..10)
        .map(|s| json!([t0 + s * 10 * MINUTE, temperature(s)]))
        .collect();
    for reader in [
        exporter,
        customs["customs"].as_str(),
        auditor["auditor"].as_str(),
    ] {
        let (status, window) = api.call(Method::GET, path, Some(reader), None).await;
        assert_eq!(status, StatusCode::OK, "{window}");
        assert_eq!(window["shipment"], "shipment:coop/s-1");
        assert_eq!(
            (window["departed"].clone(), window["arrived"].clone()),
            (json!(true), json!(true))
        );
        assert_eq!(
            (window["from_ms"].as_u64(), window["to_ms"].as_u64()),
            (Some(departed), Some(arrived))
        );
        assert_eq!(window["devices"], json!([device.to_string()]));
        assert_eq!(window["band_centi_c"], json!([0, 400]));
        assert_eq!(
            window["points"],
            Value::Array(expected.clone()),
            "the window's readings only, in order"
        );
        assert_eq!(window["points_max"], 400);
    }
    // Not shared with them: refused as the shipment itself is.
    for (outsider, why) in [
        (
            elsewhere["customs"].as_str(),
            "declared to another authority",
        ),
        (rival["exporter"].as_str(), "another exporter"),
    ] {
        let (status, answer) = api.call(Method::GET, path, Some(outsider), None).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{why}: {answer}");
        let (shipment_status, _) = api
            .call(
                Method::GET,
                "/v1/orgs/coop/shipments/s-1",
                Some(outsider),
                None,
            )
            .await;
        assert_eq!(
            shipment_status, status,
            "{why}: the same answer as the shipment's"
        );
    }
    let (status, _) = api.call(Method::GET, path, None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = api
        .call(
            Method::GET,
            "/v1/orgs/coop/shipments/s-9/temperatures",
            Some(exporter),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = api
        .call(
            Method::GET,
            "/v1/orgs/coop/shipments/S%201/temperatures",
            Some(exporter),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}
