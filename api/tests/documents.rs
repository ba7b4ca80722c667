//! Trade documents over real HTTP: issuer keys (node-held and client-held with proof of
//! possession), uploads signed by the node or in two steps by a detached signature, an upload
//! waiting for another organisation's signature, revocation and supersession as new anchors,
//! a revoked key refused, the customs check by file and by hash, limits (413, 422), the
//! consumer's view, who reads what, and the trace's list. What the API says is checked
//! against the log itself: the anchor entry read from the log's entry bundles opens with the
//! salt and the file, and its tlog-proof verifies against the signed checkpoint.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use agritrace_verify::evidence::EvidenceBundle;
use agritrace_verify::evidence::verify::{Trust, verify_file};
use api::{Node, NodeConfig};
use common::{Api, ROLES};
use ed25519_dalek::{Signer, SigningKey};
use ingest::IngestStorage;
use ledger::checkpoint::open_checkpoint;
use ledger::entry::{
    DocumentAnchor, Entry, Replaces, Token, issuer_key_message, salted_commitment,
};
use ledger::merkle::{LeafIndex, TreeSize, leaf_hash};
use ledger::note::NoteVerifier;
use ledger::tile::{BundleId, parse_bundle};
use ledger::tlog_proof::TlogProof;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const MANGO: &str = "06901234567892";
const POLLS_MAX: u32 = 2_400;
const POLL: Duration = Duration::from_millis(25);
/// The file limit of the test node.
const BYTES_MAX: usize = 100_000;
const PDF: &[u8] = b"%PDF-1.7\nphytosanitary certificate KM-2026-0001\n%%EOF\n";

/// A node that sequences quickly, with a small file limit.
async fn start() -> (tempfile::TempDir, Node, Api) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (node, api) = common::node_with(NodeConfig {
        round_period_ms: 20,
        document_bytes_max: BYTES_MAX,
        ..common::config_on(dir.path().join("data"))
    })
    .await;
    (dir, node, api)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
        .collect()
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

async fn post_form(
    api: &Api,
    path: &str,
    token: &str,
    parts: &[(&str, &[u8])],
) -> (StatusCode, Value) {
    let (content_type, body) = common::multipart_form(parts);
    let response = api
        .http
        .post(format!("{}{path}", api.base))
        .bearer_auth(token)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .expect("the node answers");
    let status = response.status();
    let text = response.text().await.expect("a body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn ok(api: &Api, method: Method, path: &str, token: Option<&str>, body: Value) -> Value {
    let (status, answer) = api.call(method, path, token, Some(body)).await;
    assert!(status.is_success(), "{path}: {status} {answer}");
    answer
}

/// Tokens by organisation and role.
struct World {
    tokens: BTreeMap<String, BTreeMap<String, String>>,
}

impl World {
    fn token(&self, org: &str, role: &str) -> &str {
        &self.tokens[org][role]
    }
}

/// Organisations (a cooperative with every role, a plant-health authority, two customs
/// authorities, the consignee, a rival, an audit office), a lot and a shipment of the
/// cooperative declared to one customs authority and received by the consignee.
async fn world(api: &Api) -> World {
    let mut tokens = BTreeMap::new();
    for (org, roles) in [
        ("coop", ROLES.to_vec()),
        ("km-plant", vec!["admin", "inspector"]),
        ("th-customs", vec!["customs"]),
        ("vn-customs", vec!["customs"]),
        ("bkk-fresh", vec!["admin", "exporter"]),
        ("rival", vec!["admin", "exporter"]),
        ("audit-office", vec!["auditor"]),
    ] {
        tokens.insert(org.to_owned(), api.bootstrap(org, &roles).await);
    }
    let world = World { tokens };
    let producer = Some(world.token("coop", "producer"));
    ok(api, Method::POST, "/v1/orgs/coop/products", producer,
       json!({ "gtin": MANGO, "name_en": "Mango", "name_zh": "芒果", "storage_min_c": 10.0, "storage_max_c": 13.0 })).await;
    ok(
        api,
        Method::POST,
        "/v1/orgs/coop/plots",
        producer,
        json!({ "id": "plot-1", "name": "Plot 1", "country": "CN", "area_ha": 3.2,
               "geometry": { "type": "Point", "coordinates": [100.45, 21.95] } }),
    )
    .await;
    for lot in ["MH-1", "MH-2"] {
        ok(
            api,
            Method::POST,
            "/v1/orgs/coop/lots",
            producer,
            json!({ "gtin": MANGO, "lot": lot, "plot": "plot-1", "harvest_date": "2025-06-01" }),
        )
        .await;
    }
    ok(
        api,
        Method::POST,
        "/v1/orgs/coop/shipments",
        Some(world.token("coop", "exporter")),
        json!({
            "id": "shp-1",
            "consignee": { "name": "Bangkok Fresh", "country": "TH", "org": "bkk-fresh" },
            "origin_country": "CN", "destination_country": "TH", "declared_to": ["th-customs"],
            "lots": [{ "gtin": MANGO, "lot": "MH-1" }],
            "planned_departure": { "location": "Mohan", "time_ms": 1_750_000_000_000_u64 },
        }),
    )
    .await;
    world
}

/// Registers a node-held issuer key of `org`; its key id.
async fn node_key(api: &Api, org: &str, admin: &str) -> String {
    let key = ok(
        api,
        Method::POST,
        &format!("/v1/orgs/{org}/issuer-keys"),
        Some(admin),
        json!({ "custody": "node" }),
    )
    .await;
    assert_eq!(key["custody"], "node", "{key}");
    assert!(key["registered"]["leaf_index"].is_u64(), "{key}");
    key["key_id"].as_str().expect("a key id").to_owned()
}

/// The default upload of the cooperative: a phytosanitary certificate of shipment shp-1 and
/// lot MH-1.
fn upload_parts<'a>(file: &'a [u8], extra: &[(&'a str, &'a [u8])]) -> Vec<(&'a str, &'a [u8])> {
    let mut parts: Vec<(&str, &[u8])> = vec![
        ("file", file),
        ("type", b"phytosanitary_certificate"),
        ("number", b"KM-2026-0001"),
        ("shipment", b"coop/shp-1"),
        ("lot", b"06901234567892/MH-1"),
        ("media_type", b"application/pdf"),
    ];
    parts.extend_from_slice(extra);
    parts
}

async fn get(api: &Api, path: &str, token: Option<&str>) -> (StatusCode, Value) {
    api.call(Method::GET, path, token, None).await
}

/// The customs check of `sha256` as `token` once every anchor has its tlog-proof.
async fn checked_with_proofs(api: &Api, token: &str, sha256: &[u8; 32]) -> Value {
    let mut polls = 0;
    loop {
        let answer = ok(
            api,
            Method::POST,
            "/v1/verify/document",
            Some(token),
            json!({ "sha256": hex(sha256) }),
        )
        .await;
        let proved = answer["documents"]
            .as_array()
            .expect("documents")
            .iter()
            .all(|d| {
                d["history"]
                    .as_array()
                    .is_some_and(|h| h.iter().all(|a| a["tlog_proof"].is_string()))
            });
        if proved {
            return answer;
        }
        polls += 1;
        assert!(polls < POLLS_MAX, "no tlog-proof came: {answer}");
        tokio::time::sleep(POLL).await;
    }
}

/// The entry at `index`, read from the log's entry bundles.
async fn entry_from_log(api: &Api, index: u64) -> Vec<u8> {
    let checkpoint = api
        .http
        .get(format!("{}/log/checkpoint", api.base))
        .send()
        .await
        .expect("checkpoint")
        .text()
        .await
        .expect("text");
    let size: u64 = checkpoint
        .lines()
        .nth(1)
        .expect("a size line")
        .parse()
        .expect("a size");
    let bundle = BundleId::in_tree(index / 256, TreeSize(size)).expect("the entry is in the tree");
    let bytes = api
        .http
        .get(format!("{}/log/{}", api.base, bundle.path()))
        .send()
        .await
        .expect("bundle")
        .bytes()
        .await
        .expect("bytes");
    let entries = parse_bundle(&bytes).expect("an entry bundle");
    entries[usize::try_from(index % 256).expect("small")].to_vec()
}

/// Checks one history item of a customs check against the log: the entry in the log's
/// bundles is the one the API shows, it commits to the file with the salt shown, and the
/// tlog-proof proves it under the log's signed checkpoint.
async fn check_against_log(api: &Api, anchor: &Value, file: &[u8]) -> Entry {
    let index = anchor["leaf_index"].as_u64().expect("a leaf index");
    let from_log = entry_from_log(api, index).await;
    assert_eq!(
        hex(&from_log),
        anchor["entry"],
        "the API shows the logged entry"
    );
    let entry = Entry::decode(&from_log).expect("an entry");
    let Entry::DocumentAnchor(document) = &entry else {
        panic!("not a DocumentAnchor: {entry:?}");
    };
    let salt: [u8; 32] = unhex(anchor["salt"].as_str().expect("salt"))
        .try_into()
        .expect("32 bytes");
    assert_eq!(
        document.commitment,
        salted_commitment(&salt, &sha256(file)),
        "the logged commitment opens with the salt and the file"
    );
    assert_eq!(anchor["commitment"], document.commitment.to_hex());
    let key_text = api
        .http
        .get(format!("{}/v1/log/key", api.base))
        .send()
        .await
        .expect("key")
        .text()
        .await
        .expect("text");
    let log_key = NoteVerifier::parse(key_text.trim()).expect("the log key");
    let proof = TlogProof::parse(anchor["tlog_proof"].as_str().expect("proof").as_bytes())
        .expect("a tlog-proof");
    assert_eq!(proof.index, LeafIndex(index));
    let opened = open_checkpoint(proof.checkpoint.as_bytes(), &log_key, &[])
        .expect("a checkpoint signed by the log");
    proof
        .inclusion_proof(&opened.checkpoint)
        .verify(&leaf_hash(&from_log), &opened.checkpoint.root)
        .expect("the entry is in the log");
    entry
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_signed_document_is_valid_and_the_log_holds_what_the_api_says() {
    let (_dir, _node, api) = start().await;
    let world = world(&api).await;
    let key_id = node_key(&api, "coop", world.token("coop", "admin")).await;
    let exporter = world.token("coop", "exporter");
    let (status, doc) = post_form(
        &api,
        "/v1/documents",
        exporter,
        &upload_parts(PDF, &[("sign", b"node")]),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{doc}");
    let id = doc["id"].as_str().expect("an id").to_owned();
    assert_eq!(doc["status"], "valid", "{doc}");
    assert_eq!(doc["media_type"], "application/pdf");
    assert_eq!(doc["sha256"], hex(&sha256(PDF)));
    let (status, doc) = get(&api, &format!("/v1/documents/{id}"), Some(exporter)).await;
    assert_eq!(status, StatusCode::OK, "{doc}");
    let history = doc["history"].as_array().expect("history");
    assert_eq!(history.len(), 1, "{doc}");
    let signature = &history[0]["signature"];
    assert_eq!(signature["key_id"], key_id.as_str());
    assert_eq!(signature["org"], "coop");
    assert_eq!(signature["signed_by"], "exporter-1");
    assert_eq!(signature["key_valid"], true, "{doc}");
    assert_eq!(signature["verifies"], true, "{doc}");
    assert!(doc["pending"].is_null());

    // The key is public, with the log index of its registration before the anchor.
    let (status, key) = get(&api, &format!("/v1/issuer-keys/{key_id}"), None).await;
    assert_eq!(status, StatusCode::OK, "{key}");
    assert_eq!(key["org"], "coop");
    assert!(
        key["registered"]["leaf_index"].as_u64() < history[0]["leaf_index"].as_u64(),
        "{key} {doc}"
    );

    // The content is served as uploaded.
    let response = api
        .http
        .get(format!("{}/v1/documents/{id}/content", api.base))
        .bearer_auth(exporter)
        .send()
        .await
        .expect("content");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/pdf");
    assert_eq!(response.bytes().await.expect("bytes").as_ref(), PDF);

    // The customs officer of the declared authority checks the file it was handed.
    let officer = world.token("th-customs", "customs");
    let (status, check) = post_form(&api, "/v1/verify/document", officer, &[("file", PDF)]).await;
    assert_eq!(status, StatusCode::OK, "{check}");
    assert_eq!(check["match"], true, "{check}");
    let found = &check["documents"][0];
    assert_eq!(found["readable"], true, "{check}");
    assert_eq!(found["number"], "KM-2026-0001");
    assert_eq!(found["shipment"], "coop/shp-1");
    assert_eq!(found["lots"], json!([format!("{MANGO}/MH-1")]));
    assert_eq!(found["status"], "valid");
    // By hash, with proofs: the log holds exactly what the API says.
    let check = checked_with_proofs(&api, officer, &sha256(PDF)).await;
    let anchor = &check["documents"][0]["history"][0];
    let entry = check_against_log(&api, anchor, PDF).await;
    let Entry::DocumentAnchor(document) = entry else {
        panic!("not an anchor");
    };
    assert_eq!(document.document_type.as_str(), "phytosanitary_certificate");
    assert_eq!(document.issuer_org.as_str(), "coop");
    assert_eq!(document.issuer_key_id.to_hex(), key_id);
    assert_eq!(document.replaces, None);

    // One byte changed: simply unknown.
    let mut changed = PDF.to_vec();
    changed[10] ^= 1;
    let (status, check) =
        post_form(&api, "/v1/verify/document", officer, &[("file", &changed)]).await;
    assert_eq!(status, StatusCode::OK, "{check}");
    assert_eq!(check["match"], false, "{check}");
    assert_eq!(check["documents"], json!([]));

    // Identical content uploaded again is stored once and found twice.
    let (status, again) = post_form(&api, "/v1/documents", exporter, &upload_parts(PDF, &[])).await;
    assert_eq!(status, StatusCode::CREATED, "{again}");
    assert_eq!(again["status"], "pending");
    let check = ok(
        &api,
        Method::POST,
        "/v1/verify/document",
        Some(officer),
        json!({ "sha256": hex(&sha256(PDF)) }),
    )
    .await;
    assert_eq!(check["documents"].as_array().map(Vec::len), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_key_signs_a_detached_signature_in_two_steps() {
    let (_dir, _node, api) = start().await;
    let world = world(&api).await;
    let admin = world.token("coop", "admin");
    let key = SigningKey::from_bytes(&[7u8; 32]);
    let public = key.verifying_key().to_bytes();
    let org = Token::new("coop").expect("a token");

    // Without a valid proof of possession the key is refused and nothing is registered.
    let wrong = key.sign(&issuer_key_message(
        &Token::new("rival").expect("t"),
        &public,
    ));
    let (status, problem) = api
        .call(
            Method::POST,
            "/v1/orgs/coop/issuer-keys",
            Some(admin),
            Some(json!({ "public_key": hex(&public), "possession_signature": hex(&wrong.to_bytes()) })),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    let (status, keys) = get(&api, "/v1/orgs/coop/issuer-keys", Some(admin)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(keys["keys"], json!([]), "{keys}");

    let proof = key.sign(&issuer_key_message(&org, &public));
    let registered = ok(
        &api,
        Method::POST,
        "/v1/orgs/coop/issuer-keys",
        Some(admin),
        json!({ "public_key": hex(&public), "possession_signature": hex(&proof.to_bytes()) }),
    )
    .await;
    assert_eq!(registered["custody"], "client");
    let key_id = registered["key_id"].as_str().expect("id").to_owned();
    assert_eq!(key_id, hex(&sha256(&public)));
    // The same key twice: 409.
    let (status, _) = api
        .call(
            Method::POST,
            "/v1/orgs/coop/issuer-keys",
            Some(admin),
            Some(json!({ "public_key": hex(&public), "possession_signature": hex(&proof.to_bytes()) })),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);

    // Step one: upload; the document waits, showing the exact bytes to sign.
    let inspector = world.token("coop", "inspector");
    let (status, doc) = post_form(&api, "/v1/documents", inspector, &upload_parts(PDF, &[])).await;
    assert_eq!(status, StatusCode::CREATED, "{doc}");
    assert_eq!(doc["status"], "pending");
    let id = doc["id"].as_str().expect("id").to_owned();
    let to_sign = unhex(doc["pending"]["to_sign"].as_str().expect("to_sign"));
    // A pending document is not on the log: the customs check shows it pending, unproved.
    let check = ok(
        &api,
        Method::POST,
        "/v1/verify/document",
        Some(inspector),
        json!({ "sha256": hex(&sha256(PDF)) }),
    )
    .await;
    assert_eq!(check["documents"][0]["status"], "pending", "{check}");

    // A signature over anything else is refused.
    let bad = key.sign(b"something else");
    let (status, problem) = api
        .call(
            Method::POST,
            &format!("/v1/documents/{id}/signature"),
            Some(inspector),
            Some(json!({ "key_id": key_id, "signature": hex(&bad.to_bytes()) })),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");

    // Step two: the detached signature over `to_sign`.
    let signature = key.sign(&to_sign);
    let doc = ok(
        &api,
        Method::POST,
        &format!("/v1/documents/{id}/signature"),
        Some(inspector),
        json!({ "key_id": key_id, "signature": hex(&signature.to_bytes()) }),
    )
    .await;
    assert_eq!(doc["status"], "valid", "{doc}");
    let signature_view = &doc["history"][0]["signature"];
    assert_eq!(signature_view["key_id"], key_id.as_str());
    assert_eq!(signature_view["key_valid"], true, "{doc}");
    assert_eq!(signature_view["verifies"], true, "{doc}");
    assert_eq!(signature_view["signed_by"], "inspector-1");
    // Nothing waits any more.
    let (status, _) = api
        .call(
            Method::POST,
            &format!("/v1/documents/{id}/signature"),
            Some(inspector),
            Some(json!({ "key_id": key_id, "signature": hex(&signature.to_bytes()) })),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_of_another_issuer_waits_for_its_signature() {
    let (_dir, _node, api) = start().await;
    let world = world(&api).await;
    node_key(&api, "km-plant", world.token("km-plant", "admin")).await;
    node_key(&api, "coop", world.token("coop", "admin")).await;
    let exporter = world.token("coop", "exporter");
    // The exporter may not sign for the plant-health authority.
    let (status, problem) = post_form(
        &api,
        "/v1/documents",
        exporter,
        &upload_parts(PDF, &[("issuer", b"km-plant"), ("sign", b"node")]),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");
    let (status, doc) = post_form(
        &api,
        "/v1/documents",
        exporter,
        &upload_parts(PDF, &[("issuer", b"km-plant")]),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{doc}");
    assert_eq!(doc["status"], "pending");
    assert_eq!(doc["issuer"], "km-plant");
    assert_eq!(doc["uploader"], "coop");
    let id = doc["id"].as_str().expect("id").to_owned();
    let (status, _) = api
        .call(
            Method::POST,
            &format!("/v1/documents/{id}/signature"),
            Some(exporter),
            Some(json!({ "custody": "node" })),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // The authority's inspector reads it (it is the issuer) and signs with its node key.
    let inspector = world.token("km-plant", "inspector");
    let (status, waiting) = get(&api, &format!("/v1/documents/{id}"), Some(inspector)).await;
    assert_eq!(status, StatusCode::OK, "{waiting}");
    assert_eq!(waiting["status"], "pending");
    let doc = ok(
        &api,
        Method::POST,
        &format!("/v1/documents/{id}/signature"),
        Some(inspector),
        json!({ "custody": "node" }),
    )
    .await;
    assert_eq!(doc["status"], "valid", "{doc}");
    assert_eq!(doc["history"][0]["signature"]["org"], "km-plant");
    assert_eq!(doc["history"][0]["signature"]["signed_by"], "inspector-1");
    assert_eq!(doc["history"][0]["signature"]["key_valid"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_and_supersession_are_new_anchors_and_a_revoked_key_cannot_sign() {
    let (_dir, _node, api) = start().await;
    let world = world(&api).await;
    let admin = world.token("coop", "admin");
    let key_id = node_key(&api, "coop", admin).await;
    let exporter = world.token("coop", "exporter");
    let (_, first) = post_form(
        &api,
        "/v1/documents",
        exporter,
        &upload_parts(PDF, &[("sign", b"node")]),
    )
    .await;
    let first_id = first["id"].as_str().expect("id").to_owned();
    let first_leaf = first["history"][0]["leaf_index"].as_u64().expect("leaf");

    // Revoke: a second anchor that revokes the first.
    let doc = ok(
        &api,
        Method::POST,
        &format!("/v1/documents/{first_id}/revoke"),
        Some(exporter),
        json!({ "reason": "issued for the wrong consignment", "sign": "node" }),
    )
    .await;
    assert_eq!(doc["status"], "revoked", "{doc}");
    let history = doc["history"].as_array().expect("history");
    assert_eq!(history.len(), 2, "{doc}");
    assert_eq!(history[1]["action"], "revoke");
    assert_eq!(history[1]["reason"], "issued for the wrong consignment");
    assert_eq!(
        history[1]["replaces"],
        json!({ "kind": "revokes", "leaf_index": first_leaf })
    );
    assert_eq!(history[1]["signature"]["key_valid"], true);
    // Revoked once is revoked: no second revocation, no new version.
    let (status, _) = api
        .call(
            Method::POST,
            &format!("/v1/documents/{first_id}/revoke"),
            Some(exporter),
            Some(json!({ "reason": "again" })),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let check = checked_with_proofs(&api, exporter, &sha256(PDF)).await;
    let revoked = &check["documents"][0];
    assert_eq!(revoked["status"], "revoked");
    let entry = check_against_log(&api, &revoked["history"][1], PDF).await;
    let Entry::DocumentAnchor(anchor) = entry else {
        panic!("not an anchor");
    };
    assert_eq!(
        anchor.replaces,
        Some(Replaces::Revokes(LeafIndex(first_leaf)))
    );

    // Supersede: the new version is valid, the old one superseded.
    let original = b"%PDF-1.7\ncertificate of origin CO-1\n%%EOF\n";
    let corrected = b"%PDF-1.7\ncertificate of origin CO-1 (corrected)\n%%EOF\n";
    let (status, old) = post_form(
        &api,
        "/v1/documents",
        exporter,
        &[
            ("file", original),
            ("type", b"certificate_of_origin"),
            ("number", b"CO-1"),
            ("lot", b"06901234567892/MH-2"),
            ("sign", b"node"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{old}");
    let old_id = old["id"].as_str().expect("id").to_owned();
    let old_leaf = old["history"][0]["leaf_index"].as_u64().expect("leaf");
    let (status, new) = post_form(
        &api,
        &format!("/v1/documents/{old_id}/supersede"),
        exporter,
        &[("file", corrected), ("number", b"CO-1-R1")],
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{new}");
    assert_eq!(
        new["status"], "pending",
        "the new version waits for its signature"
    );
    let new_id = new["id"].as_str().expect("id").to_owned();
    let new = ok(
        &api,
        Method::POST,
        &format!("/v1/documents/{new_id}/signature"),
        Some(exporter),
        json!({ "custody": "node" }),
    )
    .await;
    assert_eq!(new["status"], "valid", "{new}");
    assert_eq!(new["supersedes"], old_id.as_str());
    assert_eq!(new["lots"], json!([format!("{MANGO}/MH-2")]));
    assert_eq!(
        new["history"][0]["replaces"],
        json!({ "kind": "supersedes", "leaf_index": old_leaf })
    );
    let (_, old) = get(&api, &format!("/v1/documents/{old_id}"), Some(exporter)).await;
    assert_eq!(old["status"], "superseded", "{old}");
    assert_eq!(old["superseded_by"], new_id.as_str());
    let history = old["history"].as_array().expect("history");
    assert_eq!(history.len(), 2);
    assert_eq!(history[1]["action"], "supersede");
    assert_eq!(history[1]["document"], new_id.as_str());
    assert_eq!(history[1]["signature"]["verifies"], true, "{old}");

    // A revoked key signs nothing more; the anchors it signed before stay valid.
    let revoked = ok(
        &api,
        Method::POST,
        &format!("/v1/orgs/coop/issuer-keys/{key_id}/revoke"),
        Some(admin),
        json!({}),
    )
    .await;
    assert_eq!(revoked["status"], "revoked", "{revoked}");
    assert!(revoked["revoked"]["leaf_index"].is_u64(), "{revoked}");
    let (status, problem) = post_form(
        &api,
        "/v1/documents",
        exporter,
        &upload_parts(b"another", &[("sign", b"node")]),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    // Refused before anything was written.
    let check = ok(
        &api,
        Method::POST,
        "/v1/verify/document",
        Some(exporter),
        json!({ "sha256": hex(&sha256(b"another")) }),
    )
    .await;
    assert_eq!(check["match"], false, "{check}");
    let (_, old) = get(&api, &format!("/v1/documents/{new_id}"), Some(exporter)).await;
    assert_eq!(old["history"][0]["signature"]["key_valid"], true, "{old}");
    // A client key, once revoked, is refused for a detached signature too.
    let key = SigningKey::from_bytes(&[9u8; 32]);
    let public = key.verifying_key().to_bytes();
    let proof = key.sign(&issuer_key_message(
        &Token::new("coop").expect("t"),
        &public,
    ));
    let registered = ok(
        &api,
        Method::POST,
        "/v1/orgs/coop/issuer-keys",
        Some(admin),
        json!({ "public_key": hex(&public), "possession_signature": hex(&proof.to_bytes()) }),
    )
    .await;
    let client_id = registered["key_id"].as_str().expect("id").to_owned();
    ok(
        &api,
        Method::POST,
        &format!("/v1/orgs/coop/issuer-keys/{client_id}/revoke"),
        Some(admin),
        json!({}),
    )
    .await;
    let (_, pending) = post_form(
        &api,
        "/v1/documents",
        exporter,
        &upload_parts(b"third", &[]),
    )
    .await;
    let pending_id = pending["id"].as_str().expect("id").to_owned();
    let to_sign = unhex(pending["pending"]["to_sign"].as_str().expect("to_sign"));
    let (status, problem) = api
        .call(
            Method::POST,
            &format!("/v1/documents/{pending_id}/signature"),
            Some(exporter),
            Some(json!({ "key_id": client_id, "signature": hex(&key.sign(&to_sign).to_bytes()) })),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    let (_, still) = get(&api, &format!("/v1/documents/{pending_id}"), Some(exporter)).await;
    assert_eq!(still["status"], "pending");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_types_and_the_consumer_view() {
    let (_dir, _node, api) = start().await;
    let world = world(&api).await;
    node_key(&api, "coop", world.token("coop", "admin")).await;
    let exporter = world.token("coop", "exporter");

    // Over the file limit: 413, and nothing is stored.
    let big = vec![b'x'; BYTES_MAX + 1];
    let (status, problem) =
        post_form(&api, "/v1/documents", exporter, &upload_parts(&big, &[])).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{problem}");
    let check = ok(
        &api,
        Method::POST,
        "/v1/verify/document",
        Some(exporter),
        json!({ "sha256": hex(&sha256(&big)) }),
    )
    .await;
    assert_eq!(check["match"], false);
    let (_, listed) = get(&api, "/v1/documents?shipment=coop/shp-1", Some(exporter)).await;
    assert_eq!(listed["documents"], json!([]), "{listed}");
    // At the limit it is taken.
    let exact = vec![b'y'; BYTES_MAX];
    let (status, _) = post_form(&api, "/v1/documents", exporter, &upload_parts(&exact, &[])).await;
    assert_eq!(status, StatusCode::CREATED);

    // A type that is not one: 422; a shape that is wrong: 400; a lot nobody sees: 404.
    let (status, problem) = post_form(
        &api,
        "/v1/documents",
        exporter,
        &[("file", PDF), ("type", b"love_letter"), ("number", b"1")],
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    let (status, _) = post_form(
        &api,
        "/v1/documents",
        exporter,
        &[("type", b"other"), ("number", b"1")],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = post_form(
        &api,
        "/v1/documents",
        exporter,
        &[
            ("file", PDF),
            ("type", b"other"),
            ("number", b"1"),
            ("colour", b"red"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = post_form(
        &api,
        "/v1/documents",
        world.token("rival", "exporter"),
        &[
            ("file", PDF),
            ("type", b"other"),
            ("number", b"1"),
            ("lot", b"06901234567892/MH-1"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = post_form(
        &api,
        "/v1/documents",
        world.token("rival", "exporter"),
        &[
            ("file", PDF),
            ("type", b"other"),
            ("number", b"1"),
            ("shipment", b"coop/shp-1"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The consumer sees certificates of the lot: type, issuer, status, verified — nothing else.
    let (status, _) = post_form(
        &api,
        "/v1/documents",
        exporter,
        &upload_parts(PDF, &[("sign", b"node")]),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = post_form(
        &api,
        "/v1/documents",
        exporter,
        &[
            ("file", b"invoice"),
            ("type", b"commercial_invoice"),
            ("number", b"INV-9"),
            ("lot", b"06901234567892/MH-1"),
            ("sign", b"node"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, page) = get(
        &api,
        &format!("/v1/public/lots/{MANGO}/MH-1/certificates"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(
        page["certificates"],
        json!([{ "type": "phytosanitary_certificate", "issuer": "coop 组织", "status": "valid",
                 "issuer_signature_verifies": true }]),
        "{page}"
    );
    let text = page.to_string();
    for secret in [
        "KM-2026-0001",
        "salt",
        "sha256",
        "INV-9",
        &hex(&sha256(PDF)),
    ] {
        assert!(
            !text.contains(secret),
            "{secret} shown to a consumer: {text}"
        );
    }
    let (status, _) = get(
        &api,
        &format!("/v1/public/lots/{MANGO}/NOPE/certificates"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn who_reads_a_document_and_what_the_trace_lists() {
    let (_dir, _node, api) = start().await;
    let world = world(&api).await;
    node_key(&api, "coop", world.token("coop", "admin")).await;
    let exporter = world.token("coop", "exporter");
    let (status, doc) = post_form(
        &api,
        "/v1/documents",
        exporter,
        &upload_parts(PDF, &[("sign", b"node")]),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{doc}");
    let id = doc["id"].as_str().expect("id").to_owned();
    // Readers: the cooperative (issuer, uploader, exporter, lot owner), the consignee, the
    // customs authority the shipment is declared to, auditors. Not: another customs
    // authority, a rival.
    let mut readers: Vec<(&str, &str)> = ROLES.iter().map(|r| ("coop", *r)).collect();
    readers.extend([
        ("bkk-fresh", "exporter"),
        ("th-customs", "customs"),
        ("audit-office", "auditor"),
    ]);
    for (org, role) in &readers {
        let token = world.token(org, role);
        let (status, body) = get(&api, &format!("/v1/documents/{id}"), Some(token)).await;
        assert_eq!(status, StatusCode::OK, "{org} {role}: {body}");
        let (status, _) = get(&api, &format!("/v1/documents/{id}/content"), Some(token)).await;
        assert_eq!(status, StatusCode::OK, "{org} {role}");
        let (_, listed) = get(&api, "/v1/documents?shipment=coop/shp-1", Some(token)).await;
        assert_eq!(
            listed["documents"][0]["id"],
            id.as_str(),
            "{org} {role}: {listed}"
        );
    }
    for (org, role) in [
        ("vn-customs", "customs"),
        ("rival", "admin"),
        ("rival", "exporter"),
        ("km-plant", "inspector"),
    ] {
        let token = world.token(org, role);
        for path in [
            format!("/v1/documents/{id}"),
            format!("/v1/documents/{id}/content"),
        ] {
            let (status, _) = get(&api, &path, Some(token)).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{org} {role} {path}");
        }
        let (_, listed) = get(
            &api,
            &format!("/v1/documents?lot={MANGO}/MH-1"),
            Some(token),
        )
        .await;
        assert_eq!(listed["documents"], json!([]), "{org} {role}");
        // The customs check tells a non-reader only the type, the issuer and the status.
        let (_, check) = post_form(&api, "/v1/verify/document", token, &[("file", PDF)]).await;
        assert_eq!(check["match"], true);
        assert_eq!(
            check["documents"][0],
            json!({ "type": "phytosanitary_certificate", "issuer": "coop", "status": "valid", "readable": false }),
            "{org} {role}"
        );
    }
    let (status, _) = get(&api, &format!("/v1/documents/{id}"), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // The trace of the lot lists the document for a reader, not for a stranger.
    let (status, trace) = get(
        &api,
        &format!("/trace/01/{MANGO}/10/MH-1?direction=both"),
        Some(world.token("th-customs", "customs")),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{trace}");
    let listed = trace["documents"].as_array().expect("documents");
    assert!(
        listed.iter().any(|d| d["id"] == id.as_str()
            && d["type"] == "phytosanitary_certificate"
            && d["number"] == "KM-2026-0001"
            && d["status"] == "valid"
            && d["leaf_index"].is_u64()),
        "{trace}"
    );
    let (status, trace) = get(
        &api,
        &format!("/trace/01/{MANGO}/10/MH-1?direction=both"),
        Some(world.token("coop", "carrier")),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        trace["documents"].as_array().map(Vec::len),
        Some(1),
        "{trace}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_evidence_bundle_carries_every_anchor_and_key_and_verifies_offline() {
    let (_dir, node, api) = start().await;
    let world = world(&api).await;
    let key_id = node_key(&api, "coop", world.token("coop", "admin")).await;
    let exporter = world.token("coop", "exporter");
    let (_, phyto) = post_form(
        &api,
        "/v1/documents",
        exporter,
        &upload_parts(PDF, &[("sign", b"node")]),
    )
    .await;
    let phyto_id = phyto["id"].as_str().expect("id").to_owned();
    ok(
        &api,
        Method::POST,
        &format!("/v1/documents/{phyto_id}/revoke"),
        Some(exporter),
        json!({ "reason": "wrong consignment", "sign": "node" }),
    )
    .await;
    let (original, corrected): (&[u8], &[u8]) = (b"origin v1", b"origin v2");
    let (_, old) = post_form(
        &api,
        "/v1/documents",
        exporter,
        &[
            ("file", original),
            ("type", b"certificate_of_origin"),
            ("number", b"CO-1"),
            ("lot", b"06901234567892/MH-1"),
            ("sign", b"node"),
        ],
    )
    .await;
    let old_id = old["id"].as_str().expect("id").to_owned();
    let (status, new) = post_form(
        &api,
        &format!("/v1/documents/{old_id}/supersede"),
        exporter,
        &[("file", corrected), ("sign", b"node")],
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{new}");
    // Everything committed and checkpointed.
    checked_with_proofs(&api, exporter, &sha256(corrected)).await;

    let files: BTreeMap<&str, &[u8]> = [
        (phyto_id.as_str(), PDF),
        (old_id.as_str(), original),
        (new["id"].as_str().expect("id"), corrected),
    ]
    .into_iter()
    .collect();
    let bundle = verified_export(&api, exporter).await;
    // Four anchors: the certificate's issue and revocation, the certificate of origin's issue
    // and its supersession by the new version. Three of them open a file (the revocation
    // carries none of its own); all name the one key registration.
    let anchors: Vec<(u64, DocumentAnchor)> = bundle
        .entries
        .iter()
        .filter_map(|e| match Entry::decode(&e.bytes) {
            Ok(Entry::DocumentAnchor(anchor)) => Some((e.index.0, anchor)),
            _ => None,
        })
        .collect();
    assert_eq!(anchors.len(), 4, "issue + revoke, issue + supersede");
    let keys: Vec<_> = bundle
        .entries
        .iter()
        .filter_map(|e| match Entry::decode(&e.bytes) {
            Ok(Entry::IssuerKeyEvent(event)) => Some(event),
            _ => None,
        })
        .collect();
    assert_eq!(keys.len(), 1);
    assert_eq!(hex(&keys[0].key_id().0), key_id);
    assert_eq!(bundle.documents.len(), 3, "{:?}", bundle.documents.len());
    for document in &bundle.documents {
        assert!(
            files
                .values()
                .any(|file| *file == document.content.as_slice()),
            "an exported file is one of those uploaded"
        );
        // What the log holds at that index is what the node serves there.
        let entry = bundle
            .entries
            .iter()
            .find(|e| e.index == document.entry)
            .expect("the anchor's entry");
        assert_eq!(entry_from_log(&api, document.entry.0).await, entry.bytes);
    }
    let revoked = anchors
        .iter()
        .find(|(_, a)| matches!(a.replaces, Some(Replaces::Revokes(_))))
        .expect("the revocation");
    let superseding = anchors
        .iter()
        .find(|(_, a)| matches!(a.replaces, Some(Replaces::Supersedes(_))))
        .expect("the supersession");
    assert!(revoked.0 > 0 && superseding.0 > 0);

    // Had the rounds' answers been lost, the records would hold no leaf indexes: the anchors
    // are found again in the log from each entry's leaf hash, and the bundle is the same.
    let storage = node.sequencer().storage();
    let mut forgotten: api::documents::DocumentRecord = serde_json::from_slice(
        &storage
            .read(api::documents::DOCUMENTS, phyto_id.as_bytes())
            .expect("read")
            .expect("the record"),
    )
    .expect("a record");
    let indexes: Vec<Option<u64>> = forgotten.anchors.iter().map(|a| a.leaf_index).collect();
    for anchor in &mut forgotten.anchors {
        anchor.leaf_index = None;
    }
    storage
        .put_records(vec![ledger::storage::SidecarRecord {
            table: api::documents::DOCUMENTS.to_owned(),
            key: phyto_id.as_bytes().to_vec(),
            value: serde_json::to_vec(&forgotten).expect("json"),
        }])
        .await
        .expect("written");
    let again = verified_export(&api, exporter).await;
    assert_eq!(again.entries, bundle.entries);
    assert_eq!(again.documents, bundle.documents);
    let (_, shown) = get(&api, &format!("/v1/documents/{phyto_id}"), Some(exporter)).await;
    assert_eq!(shown["history"][1]["leaf_index"].as_u64(), indexes[1]);
}

/// Exports the evidence bundle of shipment `coop/shp-1` (once every record is under a
/// published checkpoint) and checks it with the offline verifier, under the policy the node
/// publishes and the log key it serves.
async fn verified_export(api: &Api, token: &str) -> EvidenceBundle {
    let log_key = api
        .http
        .get(format!("{}/v1/log/key", api.base))
        .send()
        .await
        .expect("the log key")
        .text()
        .await
        .expect("text");
    let mut polls = 0;
    let text = loop {
        let response = api
            .http
            .get(format!(
                "{}/v1/orgs/coop/shipments/shp-1/evidence",
                api.base
            ))
            .bearer_auth(token)
            .send()
            .await
            .expect("export");
        let status = response.status();
        let pending = response
            .headers()
            .get("agritrace-evidence-pending")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let text = response.text().await.expect("the bundle");
        if status == StatusCode::OK && pending.as_deref() == Some("0") {
            break text;
        }
        polls += 1;
        assert!(
            polls < POLLS_MAX,
            "no complete bundle: {status} {pending:?} {text}"
        );
        tokio::time::sleep(POLL).await;
    };
    let bundle = EvidenceBundle::parse(text.as_bytes()).expect("a well-formed bundle");
    // The policy the node publishes is the bundle's, and it names the node's log key.
    let published = api
        .http
        .get(format!("{}/v1/log/policy", api.base))
        .send()
        .await
        .expect("the policy")
        .text()
        .await
        .expect("text");
    assert_eq!(published.as_bytes(), bundle.policy.as_slice());
    assert!(
        published.contains(log_key.trim()),
        "the policy names the node's log key: {published}"
    );
    let report = verify_file(
        text.as_bytes(),
        &Trust::Pinned(published.into_bytes()),
        &mut |_| {},
    );
    assert!(report.verified(), "{:?}", report.failure);
    bundle
}
