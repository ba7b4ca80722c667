//! The consumer page over real HTTP on a whole node: a cooperative harvests a lot on a
//! polygon plot, ships it with a temperature logger (signed readings over MQTT, some above the
//! product's band) and attaches a certificate; a phone scanning the lot's QR code (`Accept:
//! text/html`) gets the page — product, plot drawn, journey, cold chain with the excursion,
//! certificate — in English or Chinese, while API clients keep the resolver's redirect. The
//! public journey the page is drawn from verifies (inclusion proof against a checkpoint signed
//! by the log key) and shows nothing of another organisation's records about the lot, no salt
//! and no quantity.

mod common;

use std::time::Duration;

use api::Node;
use common::{Api, committed, now_ms};
use ledger::checkpoint::Checkpoint;
use ledger::merkle::{Hash, LeafIndex, TreeSize};
use ledger::note::{NoteVerifier, open_note};
use ledger::proof::root_from_inclusion_path;
use protocol::{DeviceId, Reading, SigningKey};
use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};

const MANGO: &str = "06901234567892";
const POLLS_MAX: u32 = 2_400;
const POLL: Duration = Duration::from_millis(50);
const MINUTE: u64 = 60_000;
/// The budget for the page before its chart data.
const PAGE_BYTES_MAX: usize = 100 * 1024;

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

async fn created(api: &Api, path: &str, token: &str, body: Value) -> Value {
    let (status, answer) = api.call(Method::POST, path, Some(token), Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{path}: {answer}");
    answer
}

async fn capture(api: &Api, token: &str, events: Vec<Value>) {
    let document = json!({
        "@context": ["https://ref.gs1.org/standards/epcis/epcis-context.jsonld"],
        "type": "EPCISDocument", "schemaVersion": "2.0", "creationDate": iso(now_ms()),
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

/// Readings every 5 minutes from `from_ms`: 15.0 °C for the 4th to 6th, 11.5 °C otherwise.
async fn stream_readings(node: &Node, device: DeviceId, key: &SigningKey, from_ms: u64) {
    let (client, poller) = common::mqtt_client(node, "logger-p", None);
    for sequence in 0..12 {
        let reading = Reading {
            temperature_centi_c: if (3..6).contains(&sequence) {
                1_500
            } else {
                1_150
            },
            ..common::reading_at(device, sequence, from_ms + sequence * 5 * MINUTE)
        };
        common::publish_reading(&client, &reading, key).await;
    }
    for sequence in 0..12 {
        committed(node, device, sequence).await;
    }
    poller.abort();
}

async fn post_form(api: &Api, path: &str, token: &str, parts: &[(&str, &[u8])]) -> StatusCode {
    let (content_type, body) = common::multipart_form(parts);
    api.http
        .post(format!("{}{path}", api.base))
        .bearer_auth(token)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .expect("the node answers")
        .status()
}

/// A GET with headers; status, headers and body text.
async fn fetch(
    api: &Api,
    path: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, header::HeaderMap, String) {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a client");
    let mut request = client.get(format!("{}{path}", api.base));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("the node answers");
    let status = response.status();
    let headers = response.headers().clone();
    (status, headers, response.text().await.expect("a body"))
}

const BROWSER: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

/// The seeded node: the cooperative's lot L1 shipped with a logger, a certificate, and a
/// rival's event about the same lot.
async fn seeded() -> (tempfile::TempDir, Node, Api) {
    let (dir, node, api) = common::start_streaming().await;
    let coop = api
        .bootstrap("coop", &["admin", "producer", "exporter"])
        .await;
    let rival = api.bootstrap("rival", &["producer"]).await;
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
            "id": "plot-7", "name": "Hillside <7> & Co", "country": "CN",
            "geometry": { "type": "Polygon", "coordinates": [[
                [100.450, 21.950], [100.452, 21.950], [100.452, 21.952], [100.450, 21.952], [100.450, 21.950]
            ]] }
        }),
    )
    .await;
    created(
        &api,
        "/v1/orgs/coop/lots",
        producer,
        json!({ "gtin": MANGO, "lot": "L1", "plot": "plot-7", "harvest_date": "2026-06-01" }),
    )
    .await;
    let device: DeviceId = "c100000000000009".parse().expect("device");
    let key = SigningKey::from_bytes(&[37; 32]);
    created(&api, "/v1/orgs/coop/devices", exporter, json!({
        "device_id": device.to_string(),
        "public_key": key.verifying_key().as_bytes().iter().map(|b| format!("{b:02x}")).collect::<String>(),
        "name": "Logger 9",
    }))
    .await;
    let t0 = now_ms() - 4 * 60 * MINUTE;
    let class = json!({ "epcClass": format!("https://id.gs1.org/01/{MANGO}/10/L1"), "quantity": 777, "uom": "KGM" });
    capture(
        &api,
        producer,
        vec![
            json!({
                "type": "ObjectEvent", "action": "ADD", "bizStep": "commissioning",
                "eventTime": iso(t0), "eventTimeZoneOffset": "+08:00",
                "quantityList": [class.clone()],
                "bizLocation": { "id": "urn:epc:id:sgln:0690123.00001.0" },
            }),
            json!({
                "type": "ObjectEvent", "action": "OBSERVE", "bizStep": "shipping",
                "eventTime": iso(t0 + 50 * MINUTE), "eventTimeZoneOffset": "+08:00",
                "quantityList": [class.clone()],
                "bizLocation": { "id": "urn:epc:id:sgln:0690123.00002.0" },
            }),
        ],
    )
    .await;
    // A rival's record about the same lot: never on the public page.
    capture(
        &api,
        &rival["producer"],
        vec![json!({
            "type": "ObjectEvent", "action": "OBSERVE", "bizStep": "inspecting",
            "eventTime": iso(t0 + 10 * MINUTE), "eventTimeZoneOffset": "+08:00",
            "quantityList": [class],
            "bizLocation": { "id": "urn:epc:id:sgln:0690999.00009.0" },
        })],
    )
    .await;
    created(
        &api,
        "/v1/orgs/coop/shipments",
        exporter,
        json!({
            "id": "s-1",
            "consignee": { "name": "Bangkok Fresh Co.", "country": "TH" },
            "origin_country": "CN", "destination_country": "TH",
            "lots": [{ "gtin": MANGO, "lot": "L1" }],
            "devices": [device.to_string()],
            "planned_departure": { "location": "Mohan", "time_ms": t0 + 60 * MINUTE },
        }),
    )
    .await;
    let departed = t0 + 60 * MINUTE;
    created(
        &api,
        "/v1/orgs/coop/shipments/s-1/departure",
        exporter,
        json!({ "location": "Mohan", "time_ms": departed }),
    )
    .await;
    stream_readings(&node, device, &key, departed + MINUTE).await;
    created(
        &api,
        "/v1/orgs/coop/shipments/s-1/arrival",
        exporter,
        json!({ "location": "Bangkok", "time_ms": departed + 90 * MINUTE }),
    )
    .await;
    created(
        &api,
        "/v1/orgs/coop/issuer-keys",
        &coop["admin"],
        json!({ "custody": "node" }),
    )
    .await;
    let status = post_form(
        &api,
        "/v1/documents",
        exporter,
        &[
            ("file", b"%PDF-1.7\nphytosanitary certificate KM-1\n%%EOF\n"),
            ("type", b"phytosanitary_certificate"),
            ("number", b"KM-1"),
            ("lot", b"06901234567892/L1"),
            ("media_type", b"application/pdf"),
            ("sign", b"node"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    (dir, node, api)
}

/// The public journey once every event of the cooperative is anchored.
async fn anchored_journey(api: &Api) -> Value {
    for _ in 0..POLLS_MAX {
        let (status, journey) = api
            .call(
                Method::GET,
                &format!("/v1/public/lots/{MANGO}/L1/journey"),
                None,
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{journey}");
        let events = journey["events"].as_array().expect("events");
        if !events.is_empty() && events.iter().all(|e| e["proof"].is_object()) {
            return journey;
        }
        tokio::time::sleep(POLL).await;
    }
    panic!("the journey's events were never all anchored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_scanning_the_code_gets_the_page_and_an_api_client_the_redirect() {
    let (_dir, _node, api) = seeded().await;
    let journey = anchored_journey(&api).await;
    let path = format!("/01/{MANGO}/10/L1");

    let (status, headers, html) = fetch(
        &api,
        &path,
        &[("accept", BROWSER), ("accept-language", "en-GB,en;q=0.9")],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
    assert!(
        headers[header::VARY]
            .to_str()
            .expect("vary")
            .contains("Accept")
    );
    assert!(html.len() < PAGE_BYTES_MAX, "{} bytes", html.len());
    for expected in [
        "<html lang=\"en\"",
        "<h1>Mango</h1>",
        "芒果",
        "L1",
        "Hillside &lt;7&gt; &amp; Co",
        "id=\"plot-map\"",
        "<polygon points=",
        "2026-06-01",
        "Harvested",
        "Shipped",
        "Departed",
        "Mohan",
        "Arrived",
        "Bangkok",
        "class=\"chart\"",
        "class=\"excursion\"",
        "class=\"band\"",
        "phytosanitary_certificate",
        "issuer signature verified",
        "/pages/verify.js",
        "?lang=zh",
    ] {
        assert!(html.contains(expected), "{expected} missing from {html}");
    }
    for hidden in [
        "Hillside <7>",
        "0690999",
        "inspecting",
        "KGM",
        "KM-1",
        "salt",
    ] {
        assert!(!html.contains(hidden), "{hidden} shown: {html}");
    }
    // Chinese by Accept-Language, English again by the switch.
    let (_, headers, zh) = fetch(
        &api,
        &path,
        &[("accept", BROWSER), ("accept-language", "zh-CN,zh;q=0.9")],
    )
    .await;
    assert_eq!(headers[header::CONTENT_LANGUAGE], "zh-Hans");
    for expected in [
        "<html lang=\"zh-Hans\"",
        "<h1>芒果</h1>",
        "采收",
        "冷链",
        "?lang=en",
    ] {
        assert!(zh.contains(expected), "{expected} missing from {zh}");
    }
    let (status, _, en) = fetch(
        &api,
        &format!("{path}?lang=en"),
        &[("accept", BROWSER), ("accept-language", "zh-CN")],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{en}");
    assert!(en.contains("<h1>Mango</h1>"), "{en}");

    // API clients and linkType requests: the resolver as before.
    let (status, headers, _) = fetch(&api, &path, &[("accept", "application/json")]).await;
    assert_eq!(status, StatusCode::TEMPORARY_REDIRECT);
    assert!(
        headers[header::LOCATION]
            .to_str()
            .expect("location")
            .ends_with(&format!("/v1/public{path}"))
    );
    let (status, headers, _) = fetch(&api, &path, &[]).await;
    assert_eq!(status, StatusCode::TEMPORARY_REDIRECT, "{headers:?}");
    let (status, headers, _) = fetch(
        &api,
        &format!("{path}?linkType=linkset"),
        &[("accept", BROWSER)],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "application/linkset+json");
    let (status, _, _) = fetch(&api, &path, &[("accept", "text/html;q=0, */*")]).await;
    assert_eq!(status, StatusCode::TEMPORARY_REDIRECT);
    // A lot nobody recorded: a problem document, not an error page.
    let (status, _, _) = fetch(
        &api,
        &format!("/01/{MANGO}/10/NOPE"),
        &[("accept", BROWSER)],
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The script is served same-origin.
    let (status, headers, script) = fetch(&api, "/pages/verify.js", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        headers[header::CONTENT_TYPE],
        "text/javascript; charset=utf-8"
    );
    assert!(script.contains("crypto.subtle.digest"));
    assert!(journey["events"].as_array().is_some_and(|e| e.len() == 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_public_journey_verifies_and_shows_only_the_owners_public_fields() {
    let (_dir, _node, api) = seeded().await;
    let journey = anchored_journey(&api).await;
    let text = journey.to_string();
    for hidden in ["0690999", "inspecting", "KGM", "quantity", "salt", "rival"] {
        assert!(!text.contains(hidden), "{hidden} in the journey: {text}");
    }
    assert_eq!(journey["product"]["name"]["zh"], "芒果");
    assert_eq!(journey["plot"]["geometry"]["type"], "Polygon");
    assert_eq!(journey["harvest_date"], "2026-06-01");
    let custody = &journey["custody"][0];
    assert_eq!(custody["from_location"], "Mohan");
    assert_eq!(custody["to_location"], "Bangkok");
    assert_eq!(custody["readings"], 12);
    assert_eq!(custody["points"].as_array().map(Vec::len), Some(12));
    assert_eq!(custody["excursions"][0]["side"], "above");
    assert_eq!(custody["excursions"][0]["peak_centi_c"], 1_500);

    // What the page's script checks, checked here with the log's own code.
    let vkey = reqwest::get(format!("{}/v1/log/key", api.base))
        .await
        .expect("key")
        .text()
        .await
        .expect("text");
    assert_eq!(journey["log_key"], vkey.trim());
    let verifier = NoteVerifier::parse(vkey.trim()).expect("a vkey");
    for event in journey["events"].as_array().expect("events") {
        let proof = &event["proof"];
        let size = proof["tree_size"].as_u64().expect("size");
        let note = journey["checkpoints"]
            .as_array()
            .expect("checkpoints")
            .iter()
            .find(|c| c["tree_size"] == size)
            .and_then(|c| c["checkpoint"].as_str())
            .expect("its checkpoint");
        let opened = open_note(note.as_bytes(), std::slice::from_ref(&verifier))
            .expect("signed by the log key");
        let checkpoint = Checkpoint::parse(&opened.text).expect("a checkpoint");
        let path: Vec<Hash> = proof["path"]
            .as_array()
            .expect("path")
            .iter()
            .map(|h| Hash::from_hex(h.as_str().expect("hex")).expect("a hash"))
            .collect();
        let leaf = Hash::from_hex(proof["entry_leaf_hash"].as_str().expect("leaf")).expect("hex");
        let root = root_from_inclusion_path(
            LeafIndex(proof["leaf_index"].as_u64().expect("index")),
            TreeSize(size),
            &leaf,
            &path,
        )
        .expect("a path of the right length");
        assert_eq!(root, checkpoint.root, "{event}");
    }
    // Bad input is a 400, an unknown lot a 404.
    let (status, _) = api
        .call(Method::GET, "/v1/public/lots/123/L1/journey", None, None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = api
        .call(
            Method::GET,
            &format!("/v1/public/lots/{MANGO}/NOPE/journey"),
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
