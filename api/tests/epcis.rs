//! EPCIS 2.0 capture and query over real HTTP on a real node: every example document published
//! with the standard is captured (202 and a capture job that succeeds), each event is
//! queryable and anchored as a `TraceEvent` whose commitment opens with the stored salt and
//! the GS1 event hash (the hashes GS1's reference implementation computes, in
//! `api/gs1/tests/fixtures/epcis/standard/*.hashes`); duplicates answer 409 and invalid
//! documents 400 naming the JSON path, writing nothing; each query parameter narrows as the
//! standard says; paging walks every result once; another organisation sees nothing, an
//! auditor everything; everything survives a restart. A second test summarises the readings
//! devices publish over the in-process broker into a `sensorElementList`.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Api, node_on, now_ms, rfc3339, uplink};
use ledger::entry::{Entry, salted_commitment};
use protocol::{DeviceId, DoorState, KeyEpoch, Reading, SequenceNumber, SigningKey, topic};
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use rumqttc::QoS;
use serde_json::{Value, json};

/// Polls of an asynchronous result before the test gives up (a guard against hanging, not a
/// timing assertion).
const POLLS_MAX: u32 = 2_400;
const POLL: Duration = Duration::from_millis(50);

fn fixtures() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("gs1/tests/fixtures/epcis/standard");
    let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("the example documents")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonld"))
        .collect();
    found.sort();
    found
}

/// Percent-encodes a path segment or query value.
fn enc(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
        .collect()
}

/// A request with its response headers.
async fn send(
    api: &Api,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<String>,
) -> (StatusCode, HeaderMap, Value) {
    let mut request = api.http.request(method, format!("{}{path}", api.base));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request
            .header("content-type", "application/ld+json")
            .body(body);
    }
    let response = request.send().await.expect("the node answers");
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.expect("a body");
    (
        status,
        headers,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// Captures `document`; the finished job.
async fn capture_ok(api: &Api, token: &str, document: &str) -> Value {
    let (status, headers, job) = send(
        api,
        Method::POST,
        "/epcis/capture",
        Some(token),
        Some(document.to_owned()),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    assert_eq!(headers["gs1-epcis-version"], "2.0.0");
    assert!(headers.contains_key("gs1-epcis-capture-limit"));
    let location = headers["location"].to_str().expect("ascii").to_owned();
    assert_eq!(
        location,
        format!("/epcis/capture/{}", job["captureID"].as_str().expect("id"))
    );
    wait_for_job(api, token, &location).await
}

async fn wait_for_job(api: &Api, token: &str, location: &str) -> Value {
    for _ in 0..POLLS_MAX {
        let (status, job) = api.call(Method::GET, location, Some(token), None).await;
        assert_eq!(status, StatusCode::OK, "{job}");
        if job["running"] == false {
            return job;
        }
        tokio::time::sleep(POLL).await;
    }
    panic!("capture job {location} never finished");
}

/// The events a query answers, following `Link: rel="next"` to the end; also the number of
/// pages.
async fn query_all(api: &Api, token: &str, query: &str) -> (Vec<Value>, usize) {
    let mut path = format!("/epcis/events?{query}");
    let mut events = Vec::new();
    let mut pages = 0;
    loop {
        let (status, headers, document) = send(api, Method::GET, &path, Some(token), None).await;
        assert_eq!(status, StatusCode::OK, "{path}: {document}");
        assert_eq!(document["type"], "EPCISQueryDocument");
        pages += 1;
        events.extend(
            document["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
                .as_array()
                .expect("an event list")
                .iter()
                .cloned(),
        );
        let Some(link) = headers.get("link") else {
            return (events, pages);
        };
        let link = link.to_str().expect("ascii");
        let (target, rel) = link.split_once(">;").expect("a Link header");
        assert!(rel.contains("rel=\"next\""), "{link}");
        path = target.trim_start_matches('<').to_owned();
        assert!(pages < 1_000, "paging does not end");
    }
}

async fn ids(api: &Api, token: &str, query: &str) -> BTreeSet<String> {
    let (events, _) = query_all(api, token, query).await;
    events
        .iter()
        .map(|e| {
            e["eventID"]
                .as_str()
                .expect("every event has an eventID")
                .to_owned()
        })
        .collect()
}

async fn count(api: &Api, token: &str, query: &str) -> usize {
    query_all(api, token, &format!("perPage=1000&{query}"))
        .await
        .0
        .len()
}

/// Checks the proof of `event_id`: the commitment opens with the salt and the event hash,
/// and the `TraceEvent` entry carries it at the job's log index.
async fn check_proof(api: &Api, token: &str, event_id: &str, hash: &str, log_index: &Value) {
    let path = format!("/epcis/events/{}/proof", enc(event_id));
    let mut polls = 0;
    let proof = loop {
        let (status, proof) = api.call(Method::GET, &path, Some(token), None).await;
        if status == StatusCode::OK && !proof["checkpoint"].is_null() {
            break proof;
        }
        assert!(
            status == StatusCode::OK || status == StatusCode::SERVICE_UNAVAILABLE,
            "{status}: {proof}"
        );
        polls += 1;
        assert!(polls < POLLS_MAX, "no proof of {event_id}");
        tokio::time::sleep(POLL).await;
    };
    assert_eq!(proof["eventHash"], hash);
    let digest: [u8; 32] = unhex(
        hash.strip_prefix("ni:///sha-256;")
            .and_then(|h| h.strip_suffix("?ver=CBV2.0"))
            .expect("a GS1 event hash"),
    )
    .try_into()
    .expect("32 bytes");
    let salt: [u8; 32] = unhex(proof["salt"].as_str().expect("salt"))
        .try_into()
        .expect("32 bytes");
    let entry = unhex(proof["entry"].as_str().expect("entry"));
    let Entry::TraceEvent(trace) = Entry::decode(&entry).expect("an entry") else {
        panic!("{event_id} is not anchored as a TraceEvent");
    };
    assert_eq!(trace.commitment, salted_commitment(&salt, &digest));
    assert_eq!(proof["commitment"], trace.commitment.to_hex());
    if !log_index.is_null() {
        assert_eq!(&proof["leaf_index"], log_index);
    }
    // The entry is in the log: its inclusion path leads to the signed checkpoint's root.
    let note = proof["checkpoint"].as_str().expect("checkpoint");
    let body = &note[..note.find("\n\n").expect("a signed note") + 1];
    let checkpoint = ledger::checkpoint::Checkpoint::parse(body).expect("a checkpoint");
    let path: Vec<ledger::merkle::Hash> = proof["inclusion_proof"]["path"]
        .as_array()
        .expect("an inclusion path")
        .iter()
        .map(|h| ledger::merkle::Hash::from_hex(h.as_str().expect("hex")).expect("a hash"))
        .collect();
    let size = proof["inclusion_proof"]["tree_size"]
        .as_u64()
        .expect("size");
    assert_eq!(checkpoint.size.0, size, "{proof}");
    let root = ledger::proof::root_from_inclusion_path(
        ledger::merkle::LeafIndex(proof["leaf_index"].as_u64().expect("index")),
        ledger::merkle::TreeSize(size),
        &ledger::merkle::leaf_hash(&entry),
        &path,
    )
    .expect("a path of the right length");
    assert_eq!(
        root, checkpoint.root,
        "{event_id} is not in the checkpoint's tree"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standard_examples_are_captured_anchored_queried_guarded_and_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let (node, api) = node_on(data.clone()).await;
    let coop = api.bootstrap("coop", &["producer", "auditor"]).await;
    let rival = api.bootstrap("rival", &["producer"]).await;
    let audit = api.bootstrap("audit-office", &["auditor"]).await;
    let producer = coop["producer"].as_str();

    // Every example document is captured; each event carries GS1's hash and opens its proof.
    let mut captured = Vec::new();
    for path in fixtures() {
        let document = std::fs::read_to_string(&path).expect("read");
        let job = capture_ok(&api, producer, &document).await;
        assert_eq!(job["success"], true, "{}: {job}", path.display());
        let events = job["events"].as_array().expect("events").clone();
        let expected = path.with_extension("hashes");
        if expected.exists() {
            let hashes: Vec<String> = std::fs::read_to_string(&expected)
                .expect("hashes")
                .lines()
                .map(str::to_owned)
                .collect();
            let got: Vec<String> = events
                .iter()
                .map(|e| e["eventHash"].as_str().expect("hash").to_owned())
                .collect();
            assert_eq!(got, hashes, "{}", path.display());
        }
        for event in &events {
            assert_eq!(event["status"], "captured", "{job}");
            let id = event["eventID"].as_str().expect("id");
            let (status, headers, stored) = send(
                &api,
                Method::GET,
                &format!("/epcis/events/{}", enc(id)),
                Some(producer),
                None,
            )
            .await;
            assert_eq!(status, StatusCode::OK, "{stored}");
            assert_eq!(stored["eventID"], id);
            assert_eq!(
                headers["agritrace-event-hash"],
                event["eventHash"].as_str().expect("hash")
            );
            check_proof(
                &api,
                producer,
                id,
                event["eventHash"].as_str().expect("hash"),
                &event["logIndex"],
            )
            .await;
        }
        captured.push((document, job));
    }
    let total: usize = captured
        .iter()
        .map(|(_, job)| job["events"].as_array().map_or(0, Vec::len))
        .sum();
    assert_eq!(total, 7);
    assert_eq!(count(&api, producer, "").await, total);

    // A duplicate is refused and writes nothing: the same document, or one event of it again.
    let (first_document, first_job) = &captured[0];
    let (status, answer) = api
        .call(
            Method::POST,
            "/epcis/capture",
            Some(producer),
            Some(serde_json::from_str(first_document).expect("json")),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    assert!(
        answer["detail"]
            .as_str()
            .expect("detail")
            .contains("$.epcisBody.eventList[0]")
    );
    let single = {
        let mut doc: Value = serde_json::from_str(first_document).expect("json");
        let event = doc["epcisBody"]["eventList"][0].clone();
        doc["epcisBody"]["eventList"] = json!([event]);
        doc
    };
    let (status, _) = api
        .call(
            Method::POST,
            "/epcis/capture",
            Some(producer),
            Some(single.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    // Another organisation learns that such an event exists, never its id or hash.
    let (status, answer) = api
        .call(
            Method::POST,
            "/epcis/capture",
            Some(&rival["producer"]),
            Some(single),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    let detail = answer["detail"].as_str().expect("detail");
    assert!(
        !detail.contains("ni:///") && !detail.contains("sha-256"),
        "{detail}"
    );
    // An event whose eventID is another event's hash does not shadow that event.
    let victim = first_job["events"][0]["eventHash"].as_str().expect("hash");
    let mut squatter = new_event("2024-05-03T08:00:00Z");
    squatter["eventID"] = json!(victim);
    let job = capture_ok(&api, &rival["producer"], &json!([squatter]).to_string()).await;
    assert_eq!(job["success"], true, "{job}");
    let (status, answer) = api
        .call(
            Method::GET,
            &format!("/epcis/events/{}", enc(victim)),
            Some(producer),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        answer["eventID"], first_job["events"][0]["eventID"],
        "{answer}"
    );
    let twice = json!({
        "@context": ["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"],
        "type": "EPCISDocument", "schemaVersion": "2.0", "creationDate": "2024-05-01T00:00:00Z",
        "epcisBody": {"eventList": [new_event("2024-05-01T08:00:00Z"), new_event("2024-05-01T08:00:00Z")]},
    });
    let (status, answer) = api
        .call(Method::POST, "/epcis/capture", Some(producer), Some(twice))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    assert!(
        answer["detail"]
            .as_str()
            .expect("detail")
            .contains("$.epcisBody.eventList[1]")
    );

    // Invalid documents: 400 naming the path; no token 401; a role that may not capture 403.
    let mut bad_step = new_event("2024-05-02T08:00:00Z");
    bad_step["bizStep"] = json!("harvesting");
    let cases = [
        (
            json!([new_event("2024-05-02T08:00:00Z"), bad_step]),
            "$[1].bizStep",
        ),
        (
            json!({"type": "EPCISDocument", "epcisBody": {}}),
            "$.epcisBody.eventList",
        ),
        (
            json!({"type": "ObjectEvent", "eventTime": "2024-05-02T08:00:00Z", "eventTimeZoneOffset": "+08:00", "action": "OBSERVE", "epcList": [7]}),
            "$.epcList[0]",
        ),
        (
            json!({"type": "ObjectEvent", "eventTime": "1960-05-02T08:00:00Z", "eventTimeZoneOffset": "+08:00", "action": "OBSERVE", "epcList": ["urn:x:1"]}),
            "$.eventTime",
        ),
    ];
    for (document, path) in cases {
        let (status, answer) = api
            .call(
                Method::POST,
                "/epcis/capture",
                Some(producer),
                Some(document),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        assert_eq!(answer["status"], 400);
        let detail = answer["detail"].as_str().expect("detail");
        assert!(detail.starts_with(path), "{detail} does not name {path}");
    }
    let (status, _, _) = send(
        &api,
        Method::POST,
        "/epcis/capture",
        Some(producer),
        Some("{not json".to_owned()),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = api
        .call(
            Method::POST,
            "/epcis/capture",
            None,
            Some(json!([new_event("2024-05-03T08:00:00Z")])),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = api
        .call(
            Method::POST,
            "/epcis/capture",
            Some(coop["auditor"].as_str()),
            Some(json!([new_event("2024-05-03T08:00:00Z")])),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let many: Vec<Value> = (0..1_001)
        .map(|i| {
            new_event(&format!(
                "2024-05-04T08:{:02}:{:02}Z",
                (i / 60) % 60,
                i % 60
            ))
        })
        .collect();
    let (status, headers, _) = send(
        &api,
        Method::POST,
        "/epcis/capture",
        Some(producer),
        Some(Value::Array(many).to_string()),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(headers["gs1-epcis-capture-limit"], "1000");
    assert_eq!(
        count(&api, producer, "").await,
        total,
        "a refused capture wrote events"
    );
    let (_, jobs) = api
        .call(
            Method::GET,
            "/epcis/capture?perPage=1000",
            Some(producer),
            None,
        )
        .await;
    assert_eq!(
        jobs.as_array().map(Vec::len),
        Some(captured.len()),
        "{jobs}"
    );

    // Each parameter narrows as the standard says.
    let narrowing = [
        ("eventType=ObjectEvent", 2),
        ("eventType=AggregationEvent", 1),
        ("eventType=TransactionEvent%7CAssociationEvent", 3),
        ("EQ_bizStep=receiving", 2),
        ("EQ_bizStep=urn%3Aepcglobal%3Acbv%3Abizstep%3Areceiving", 2),
        ("EQ_bizStep=receiving&eventType=ObjectEvent", 1),
        ("EQ_disposition=in_progress", 3),
        ("EQ_disposition=in_transit", 2),
        ("EQ_readPoint=urn%3Aepc%3Aid%3Asgln%3A4012345.00001.0", 2),
        ("EQ_bizLocation=urn%3Aepc%3Aid%3Asgln%3A0012345.11111.0", 1),
        ("EQ_action=ADD", 3),
        ("EQ_action=OBSERVE", 3),
        ("GE_eventTime=2013-01-01T00%3A00%3A00Z", 5),
        ("LT_eventTime=2013-07-01T00%3A00%3A00Z", 3),
        (
            "GE_eventTime=2013-01-01T00%3A00%3A00Z&LT_eventTime=2013-07-01T00%3A00%3A00Z",
            1,
        ),
        ("GE_recordTime=2000-01-01T00%3A00%3A00Z", 7),
        ("GE_recordTime=2999-01-01T00%3A00%3A00Z", 0),
        ("MATCH_epc=urn%3Aepc%3Aid%3Asgtin%3A0614141.107346.2018", 3),
        (
            "MATCH_epc=https%3A%2F%2Fid.gs1.org%2F01%2F10614141073464%2F21%2F2018",
            3,
        ),
        ("MATCH_epc=urn%3Aepc%3Aidpat%3Asgtin%3A0614141.107346.*", 3),
        ("MATCH_epc=urn%3Aepc%3Aid%3Asscc%3A0614141.1234567890", 0),
        ("MATCH_anyEPC=urn%3Aepc%3Aid%3Asscc%3A0614141.1234567890", 1),
        (
            "MATCH_parentID=urn%3Aepc%3Aid%3Asscc%3A0614141.1234567890",
            1,
        ),
        ("MATCH_epc=urn%3Aepc%3Aid%3Asgtin%3A4012345.077889.25", 0),
        ("MATCH_anyEPC=urn%3Aepc%3Aid%3Asgtin%3A4012345.077889.25", 1),
        (
            "MATCH_epcClass=urn%3Aepc%3Aclass%3Algtin%3A4012345.012345.998877",
            1,
        ),
        (
            "MATCH_epcClass=urn%3Aepc%3Aclass%3Algtin%3A0614141.077777.987",
            0,
        ),
        (
            "MATCH_anyEPCClass=urn%3Aepc%3Aclass%3Algtin%3A0614141.077777.987",
            1,
        ),
    ];
    for (query, expected) in narrowing {
        assert_eq!(count(&api, producer, query).await, expected, "{query}");
    }
    let one = captured[1].1["events"][0]["eventID"]
        .as_str()
        .expect("id")
        .to_owned();
    assert_eq!(
        ids(&api, producer, &format!("EQ_eventID={}", enc(&one))).await,
        BTreeSet::from([one.clone()])
    );
    let (status, answer) = api
        .call(
            Method::GET,
            "/epcis/events?EQ_colour=red",
            Some(producer),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");

    // Paging walks every result exactly once.
    let all = ids(&api, producer, "perPage=1000").await;
    assert_eq!(all.len(), total);
    let (paged, pages) = query_all(&api, producer, "perPage=2").await;
    let paged_ids: Vec<String> = paged
        .iter()
        .map(|e| e["eventID"].as_str().expect("id").to_owned())
        .collect();
    assert_eq!(paged_ids.len(), total, "every event once: {paged_ids:?}");
    assert_eq!(paged_ids.iter().cloned().collect::<BTreeSet<_>>(), all);
    assert!(pages >= 4, "{pages} pages of 2 for {total} events");
    let (observed, _) = query_all(&api, producer, "perPage=1&EQ_action=OBSERVE").await;
    assert_eq!(observed.len(), 3);

    // Another organisation sees only its own (the event captured above); auditors see
    // everything.
    assert_eq!(count(&api, rival["producer"].as_str(), "").await, 1);
    let (status, _) = api
        .call(
            Method::GET,
            &format!("/epcis/events/{}", enc(&one)),
            Some(rival["producer"].as_str()),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let location = format!(
        "/epcis/capture/{}",
        first_job["captureID"].as_str().expect("id")
    );
    let (status, _) = api
        .call(
            Method::GET,
            &location,
            Some(rival["producer"].as_str()),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(count(&api, audit["auditor"].as_str(), "").await, total + 1);
    assert_eq!(count(&api, coop["auditor"].as_str(), "").await, total + 1);
    let (status, _) = api.call(Method::GET, "/epcis/events", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // A restart keeps events, jobs and proofs.
    node.shutdown().await;
    let (node, api) = node_on(data).await;
    assert_eq!(ids(&api, producer, "perPage=1000").await, all);
    let (status, job) = api.call(Method::GET, &location, Some(producer), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(job["success"], true, "{job}");
    let event = &first_job["events"][0];
    check_proof(
        &api,
        producer,
        event["eventID"].as_str().expect("id"),
        event["eventHash"].as_str().expect("hash"),
        &event["logIndex"],
    )
    .await;
    let (status, _) = api
        .call(
            Method::POST,
            "/epcis/capture",
            Some(producer),
            Some(serde_json::from_str(first_document).expect("json")),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "duplicates are refused after a restart too"
    );

    // Once the rival shares its records with the coop, the coop's queries walk both
    // organisations' events (merged in order, each once).
    let rival_admin = api.bootstrap_member("rival", "admin").await;
    let (status, answer) = api
        .call(
            Method::POST,
            "/v1/orgs/rival/partners",
            Some(&rival_admin),
            Some(json!({ "partner": "coop" })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let (shared, _) = query_all(&api, producer, "perPage=1").await;
    let shared_ids: Vec<String> = shared
        .iter()
        .map(|e| e["eventID"].as_str().expect("id").to_owned())
        .collect();
    assert_eq!(shared_ids.len(), total + 1, "{shared_ids:?}");
    assert_eq!(
        shared_ids.iter().cloned().collect::<BTreeSet<_>>().len(),
        total + 1
    );
    assert!(shared_ids.iter().any(|id| id == victim_id(first_job)));
    node.shutdown().await;
}

/// The eventID the rival's event above took: the first event's hash.
fn victim_id(job: &Value) -> &str {
    job["events"][0]["eventHash"].as_str().expect("hash")
}

fn new_event(time: &str) -> Value {
    json!({
        "type": "ObjectEvent",
        "eventTime": time,
        "eventTimeZoneOffset": "+08:00",
        "epcList": ["urn:epc:id:sgtin:6901234.056789.1"],
        "action": "OBSERVE",
        "bizStep": "shipping",
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readings_of_devices_are_summarised_into_a_sensor_event() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (node, api) = node_on(dir.path().join("data")).await;
    let coop = api.bootstrap("reefer-co", &["carrier", "admin"]).await;
    let carrier = coop["carrier"].as_str();

    // Two loggers of the organisation's own.
    let devices: Vec<(DeviceId, SigningKey)> = (1..=2u8)
        .map(|i| {
            (
                format!("b90000000000000{i}").parse().expect("device"),
                SigningKey::from_bytes(&[i; 32]),
            )
        })
        .collect();
    for (device, key) in &devices {
        let (status, answer) = api
            .call(
                Method::POST,
                "/v1/orgs/reefer-co/devices",
                Some(carrier),
                Some(json!({ "device_id": device.to_string(),
                             "public_key": api::http::hex(key.verifying_key().as_bytes()) })),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
    }

    // Each publishes readings one minute apart over the in-process broker.
    let (client, poller) = common::mqtt_client(&node, "sensor-test", None);
    let start_ms = now_ms() - 3_600_000;
    let temperatures: [[i16; 5]; 2] = [
        [350, 410, 380, 520, 300],
        [-1_850, -1_790, -1_820, -1_800, -1_700],
    ];
    let humidities: [u16; 5] = [8_000, 8_500, 9_000, 8_200, 8_800];
    for ((device, key), temps) in devices.iter().zip(temperatures) {
        for (i, (t, h)) in temps.iter().zip(humidities).enumerate() {
            let sequence = u64::try_from(i).expect("small");
            let reading = Reading {
                device: *device,
                key_epoch: KeyEpoch(1),
                sequence: SequenceNumber(sequence),
                device_time_ms: start_ms + sequence * 60_000,
                temperature_centi_c: *t,
                humidity_centi_pct: h,
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
    for (device, _) in &devices {
        let path = format!("/v1/devices/{device}/readings/4/anchor");
        let mut polls = 0;
        loop {
            let (status, answer) = api.call(Method::GET, &path, Some(carrier), None).await;
            assert!(
                [
                    StatusCode::OK,
                    StatusCode::NOT_FOUND,
                    StatusCode::SERVICE_UNAVAILABLE
                ]
                .contains(&status),
                "{status}: {answer}"
            );
            if status != StatusCode::NOT_FOUND {
                break;
            }
            polls += 1;
            assert!(
                polls < POLLS_MAX,
                "the readings of {device} were never committed"
            );
            tokio::time::sleep(POLL).await;
        }
    }

    // The window holds readings 1..=4 of each device (the first is before it).
    let request = json!({
        "devices": devices.iter().map(|(d, _)| d.to_string()).collect::<Vec<_>>(),
        "from": rfc3339(start_ms + 30_000),
        "to": rfc3339(start_ms + 10 * 60_000),
        "epcList": ["urn:epc:id:sscc:6901234.0000000001"],
        "bizLocation": "urn:epc:id:sgln:6901234.00001.0",
    });
    let (status, job) = api
        .call(
            Method::POST,
            "/epcis/sensor-summaries",
            Some(carrier),
            Some(request.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    let job = wait_for_job(
        &api,
        carrier,
        &format!("/epcis/capture/{}", job["captureID"].as_str().expect("id")),
    )
    .await;
    assert_eq!(job["success"], true, "{job}");
    let id = job["events"][0]["eventID"].as_str().expect("id");
    let (status, event) = api
        .call(
            Method::GET,
            &format!("/epcis/events/{}", enc(id)),
            Some(carrier),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{event}");
    assert_eq!(event["bizStep"], "sensor_reporting");
    assert_eq!(event["action"], "OBSERVE");
    let elements = event["sensorElementList"]
        .as_array()
        .expect("sensor elements");
    assert_eq!(elements.len(), 2);
    let expected = [(3.0, 5.2, 4.03), (-18.2, -17.0, -17.78)];
    for ((element, (device, _)), (min, max, mean)) in elements.iter().zip(&devices).zip(expected) {
        assert_eq!(
            element["sensorMetadata"]["deviceID"],
            format!("urn:agritrace:device:{device}")
        );
        let temperature = &element["sensorReport"][0];
        assert_eq!(temperature["type"], "gs1:Temperature");
        assert_eq!(temperature["uom"], "CEL");
        assert_eq!(temperature["minValue"], min, "{element}");
        assert_eq!(temperature["maxValue"], max, "{element}");
        assert_eq!(temperature["meanValue"], mean, "{element}");
        assert_eq!(temperature["agritrace:readingCount"], 4);
        let humidity = &element["sensorReport"][1];
        assert_eq!(humidity["type"], "gs1:RelativeHumidity");
        assert_eq!(humidity["uom"], "A93");
        assert_eq!(humidity["minValue"], 82.0);
        assert_eq!(humidity["maxValue"], 90.0);
        assert_eq!(humidity["meanValue"], 86.25);
    }
    // The summary event is queryable like any other.
    assert_eq!(count(&api, carrier, "EQ_bizStep=sensor_reporting").await, 1);

    // Bad requests name the problem; the same summary again is a duplicate.
    let (status, _) = api
        .call(
            Method::POST,
            "/epcis/sensor-summaries",
            Some(carrier),
            Some(request.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let mut bad = request.clone();
    bad["devices"] = json!(["not-a-device"]);
    let (status, answer) = api
        .call(
            Method::POST,
            "/epcis/sensor-summaries",
            Some(carrier),
            Some(bad),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    let mut reversed = request.clone();
    reversed["from"] = request["to"].clone();
    reversed["to"] = request["from"].clone();
    let (status, _) = api
        .call(
            Method::POST,
            "/epcis/sensor-summaries",
            Some(carrier),
            Some(reversed),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let mut empty = request.clone();
    empty["from"] = json!(rfc3339(start_ms - 7_200_000));
    empty["to"] = json!(rfc3339(start_ms - 3_600_000));
    let (status, answer) = api
        .call(
            Method::POST,
            "/epcis/sensor-summaries",
            Some(carrier),
            Some(empty),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    let mut objectless = request.clone();
    objectless
        .as_object_mut()
        .expect("object")
        .remove("epcList");
    let (status, _) = api
        .call(
            Method::POST,
            "/epcis/sensor-summaries",
            Some(carrier),
            Some(objectless),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Only the owner's devices, or a sharing partner's: another organisation is refused
    // (403), and so is a device the operator imported that nobody claimed; a device the node
    // has never registered is bad input (400).
    let rival = api.bootstrap("rival", &["carrier"]).await;
    let summarise = |token: String, devices: Value| {
        let api = &api;
        let mut body = request.clone();
        body["devices"] = devices;
        async move {
            api.call(
                Method::POST,
                "/epcis/sensor-summaries",
                Some(&token),
                Some(body),
            )
            .await
        }
    };
    let (status, answer) = summarise(rival["carrier"].clone(), request["devices"].clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    let orphan = SigningKey::from_bytes(&[9; 32]);
    let manifest = json!({
        "format": "agritrace-device-manifest/v1",
        "devices": [{ "device_id": "b900000000000009", "key_epoch": 1, "algorithm": "ed25519",
                      "public_key": api::http::hex(orphan.verifying_key().as_bytes()) }],
    });
    let (status, report) = api
        .call(Method::POST, "/v1/devices/import", None, Some(manifest))
        .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    let (status, answer) = summarise(
        carrier.to_owned(),
        json!([devices[0].0.to_string(), "b900000000000009"]),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "an unclaimed device: {answer}"
    );
    let (status, answer) = summarise(
        carrier.to_owned(),
        json!([devices[0].0.to_string(), "b9000000000000ff"]),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "an unknown device: {answer}"
    );
    assert!(
        answer["detail"]
            .as_str()
            .is_some_and(|d| d.contains("not registered")),
        "{answer}"
    );
    let (status, answer) = api
        .call(
            Method::POST,
            "/v1/orgs/reefer-co/partners",
            Some(&coop["admin"]),
            Some(json!({ "partner": "rival" })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let mut shifted = request.clone();
    shifted["devices"] = json!([devices[1].0.to_string()]);
    shifted["to"] = json!(rfc3339(start_ms + 9 * 60_000));
    let (status, job) = api
        .call(
            Method::POST,
            "/epcis/sensor-summaries",
            Some(&rival["carrier"]),
            Some(shifted),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "a partner that shares: {job}");
    let job = wait_for_job(
        &api,
        &rival["carrier"],
        &format!("/epcis/capture/{}", job["captureID"].as_str().expect("id")),
    )
    .await;
    assert_eq!(job["success"], true, "{job}");

    poller.abort();
    node.shutdown().await;
}
