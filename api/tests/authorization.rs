//! The authorisation matrix over real HTTP: one node with real records (products, a location,
//! a plot, a lot, a device, two shipments — one declared to a customs authority —, an EPCIS
//! event), and every endpoint called by every kind of caller: no token; each of the seven
//! roles of the owning organisation; the admin of another organisation; an auditor and a
//! customs officer of other organisations (the shipment is declared to the officer's); a
//! producer of a partner the owner shares its records with. The table below is written out by
//! hand, not derived from the policy, so a change of policy shows here.
//!
//! Writes are sent with an empty body: a caller that may write gets the route's 400 for the
//! missing fields (nothing is written), one that may not gets 401 or 403 first. Reads of
//! records that exist are tested against the records set up first. Each answer's status and
//! content type must also be what `/openapi.json` documents for the operation.

mod common;

use std::time::Duration;

use common::{Api, ROLES, start};
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};

const MANGO: &str = "06901234567892";
const OWNED_DEVICE: &str = "c000000000000001";
const IMPORTED_DEVICE: &str = "c000000000000002";
/// RFC 8032 §7.1 test 1 and test 2 public keys (valid Ed25519 points).
const KEY_1: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
const KEY_2: &str = "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c";
const EVENT_ID: &str = "urn:uuid:0b7e5a52-3c61-4d7e-8f0a-9a1b2c3d4e5f";
/// Polls of something asynchronous before the test gives up (a guard against hanging).
const POLLS_MAX: u32 = 2_400;
const POLL: Duration = Duration::from_millis(50);

/// The callers, in the order of the expectation strings.
const CALLERS: [&str; 12] = [
    "none",
    "admin",
    "producer",
    "exporter",
    "carrier",
    "inspector",
    "customs",
    "auditor",
    "other-admin",
    "other-auditor",
    "other-customs",
    "partner-producer",
];

/// One row: method, path, body (`None`: empty), and per caller (in [`CALLERS`] order, spaces
/// ignored): `A` 2xx, `R` 3xx, `B` 400, `U` 401, `F` 403, `N` 404.
type Row = (&'static str, String, Option<Value>, &'static str);

fn rows(ids: &Ids) -> Vec<Row> {
    let dev = format!("/v1/orgs/coop/devices/{OWNED_DEVICE}");
    let reading = |d: &str, what: &str| format!("/v1/devices/{d}/readings/0/{what}");
    let summary = json!({ "devices": [OWNED_DEVICE], "from": "2025-06-01T00:00:00Z",
                          "to": "2025-06-02T00:00:00Z", "epcList": ["https://id.gs1.org/01/06901234567892/21/1"] });
    let s = |t: &str| t.to_owned();
    vec![
        // The node and the log: public.
        ("GET", s("/healthz"), None, "A AAAAAAA AAAA"),
        ("GET", s("/readyz"), None, "A AAAAAAA AAAA"),
        ("GET", s("/metrics"), None, "A AAAAAAA AAAA"),
        ("GET", s("/openapi.json"), None, "A AAAAAAA AAAA"),
        ("GET", s("/v1/log/key"), None, "A AAAAAAA AAAA"),
        ("GET", s("/v1/log/policy"), None, "A AAAAAAA AAAA"),
        ("GET", s("/log/checkpoint"), None, "A AAAAAAA AAAA"),
        (
            "GET",
            s("/log/tile/entries/000.p/1"),
            None,
            "A AAAAAAA AAAA",
        ),
        // Device import: the node's own host (every caller here is), no token.
        ("POST", s("/v1/devices/import"), None, "B BBBBBBB BBBB"),
        // Readings of an organisation's device are its records; this one has none yet.
        (
            "GET",
            reading(OWNED_DEVICE, "anchor"),
            None,
            "U NNNNNNN FNFN",
        ),
        (
            "GET",
            reading(OWNED_DEVICE, "entry"),
            None,
            "U NNNNNNN FNFN",
        ),
        (
            "GET",
            reading(OWNED_DEVICE, "tlog-proof"),
            None,
            "U NNNNNNN FNFN",
        ),
        (
            "GET",
            reading(OWNED_DEVICE, "proof"),
            None,
            "U NNNNNNN FNFN",
        ),
        // A device the operator imported and nobody claimed: read on the node's own host.
        (
            "GET",
            reading(IMPORTED_DEVICE, "anchor"),
            None,
            "N NNNNNNN NNNN",
        ),
        // Accounts.
        ("GET", s("/v1/whoami"), None, "U AAAAAAA AAAA"),
        ("GET", s("/v1/orgs/coop"), None, "U AAAAAAA FAFF"),
        ("GET", s("/v1/orgs/coop/members"), None, "U AAAAAAA FAFF"),
        ("POST", s("/v1/orgs/coop/members"), None, "U BFFFFFF FFFF"),
        (
            "GET",
            s("/v1/orgs/coop/members/producer-1/tokens"),
            None,
            "U AAFFFFF FFFF",
        ),
        (
            "POST",
            s("/v1/orgs/coop/members/producer-1/tokens"),
            None,
            "U AFFFFFF FFFF",
        ),
        (
            "DELETE",
            format!("/v1/tokens/{}", ids.spare_token),
            None,
            "U AFFFFFF FFFF",
        ),
        (
            "DELETE",
            s("/v1/tokens/0000000000000000"),
            None,
            "U NFFFFFF NFFF",
        ),
        // Bootstrap: the node's own host, no token.
        ("POST", s("/v1/admin/orgs"), None, "B BBBBBBB BBBB"),
        (
            "POST",
            s("/v1/admin/orgs/coop/members"),
            None,
            "B BBBBBBB BBBB",
        ),
        (
            "POST",
            s("/v1/admin/orgs/coop/members/producer-1/tokens"),
            None,
            "A AAAAAAA AAAA",
        ),
        (
            "DELETE",
            s("/v1/admin/tokens/0000000000000000"),
            None,
            "N NNNNNNN NNNN",
        ),
        // An online backup of the whole store: the node's own host, no token.
        ("POST", s("/v1/admin/backup"), None, "A AAAAAAA AAAA"),
        // Partners.
        ("POST", s("/v1/orgs/coop/partners"), None, "U BFFFFFF FFFF"),
        ("GET", s("/v1/orgs/coop/partners"), None, "U AAAAAAA FAFF"),
        (
            "DELETE",
            s("/v1/orgs/coop/partners/nobody"),
            None,
            "U NFFFFFF FFFF",
        ),
        // Master data: partners read what the owner shares.
        ("POST", s("/v1/orgs/coop/products"), None, "U BBBFFFF FFFF"),
        ("GET", s("/v1/orgs/coop/products"), None, "U AAAAAAA FAFA"),
        (
            "GET",
            format!("/v1/orgs/coop/products/{MANGO}"),
            None,
            "U AAAAAAA FAFA",
        ),
        ("POST", s("/v1/orgs/coop/locations"), None, "U BBBFFFF FFFF"),
        ("GET", s("/v1/orgs/coop/locations"), None, "U AAAAAAA FAFA"),
        (
            "GET",
            s("/v1/orgs/coop/locations/farm-1"),
            None,
            "U AAAAAAA FAFA",
        ),
        ("POST", s("/v1/orgs/coop/plots"), None, "U BBBFFFF FFFF"),
        ("GET", s("/v1/orgs/coop/plots"), None, "U AAAAAAA FAFA"),
        (
            "GET",
            s("/v1/orgs/coop/plots/plot-1"),
            None,
            "U AAAAAAA FAFA",
        ),
        // Devices.
        ("POST", s("/v1/orgs/coop/devices"), None, "U BBBBFFF FFFF"),
        ("GET", s("/v1/orgs/coop/devices"), None, "U AAAAAAA FAFA"),
        ("GET", dev.clone(), None, "U AAAAAAA FAFA"),
        ("GET", format!("{dev}/health"), None, "U AAAAAAA FAFA"),
        ("GET", format!("{dev}/quarantine"), None, "U AAAAAAA FAFA"),
        ("POST", format!("{dev}/rotation"), None, "U BBBBFFF FFFF"),
        (
            "POST",
            format!("{dev}/revocation"),
            Some(json!({ "key_epoch": "one" })),
            "U BBBBFFF FFFF",
        ),
        ("POST", format!("{dev}/claim"), None, "U BBBBFFF FFFF"),
        // Lots and shipments: customs officers see the shipments declared to them.
        ("POST", s("/v1/orgs/coop/lots"), None, "U FBBFFFF FFFF"),
        ("GET", s("/v1/orgs/coop/lots"), None, "U AAAAAAA FAFA"),
        (
            "GET",
            format!("/v1/orgs/coop/lots/{MANGO}/MH-1"),
            None,
            "U AAAAAAA FAFA",
        ),
        ("POST", s("/v1/orgs/coop/shipments"), None, "U FFBFFFF FFFF"),
        ("GET", s("/v1/orgs/coop/shipments"), None, "U AAAAAAA FAFA"),
        (
            "GET",
            s("/v1/orgs/coop/shipments/shp-declared"),
            None,
            "U AAAAAAA FAAA",
        ),
        (
            "GET",
            s("/v1/orgs/coop/shipments/shp-private"),
            None,
            "U AAAAAAA FAFA",
        ),
        (
            "GET",
            s("/v1/orgs/coop/shipments/shp-missing"),
            None,
            "U NNNNNNN FNFN",
        ),
        (
            "POST",
            s("/v1/orgs/coop/shipments/shp-declared/departure"),
            None,
            "U FFBFFFF FFFF",
        ),
        (
            "POST",
            s("/v1/orgs/coop/shipments/shp-declared/arrival"),
            None,
            "U FFBFFFF FFFF",
        ),
        ("GET", s("/v1/shipments"), None, "U AAAAAAA AAAA"),
        // EPCIS: events of organisations the caller may not see are not found.
        ("POST", s("/epcis/capture"), None, "U FBBBBBF FFBB"),
        ("GET", s("/epcis/capture"), None, "U AAAAAAA AAAA"),
        (
            "GET",
            format!("/epcis/capture/{}", ids.capture),
            None,
            "U AAAAAAA NANA",
        ),
        ("GET", s("/epcis/events"), None, "U AAAAAAA AAAA"),
        (
            "GET",
            format!("/epcis/events/{EVENT_ID}"),
            None,
            "U AAAAAAA NANA",
        ),
        (
            "GET",
            format!("/epcis/events/{EVENT_ID}/proof"),
            None,
            "U AAAAAAA NANA",
        ),
        ("POST", s("/epcis/sensor-summaries"), None, "U FBBBBBF FFBB"),
        // A summary of the owner's device: only callers who may read its readings get as far
        // as "no readings in that window".
        (
            "POST",
            s("/epcis/sensor-summaries"),
            Some(summary),
            "U FBBBBBF FFFB",
        ),
        // Trace and recall: what the caller may see of the graph; a customs officer sees a
        // graph that involves a shipment declared to its authority.
        (
            "GET",
            format!("/trace/01/{MANGO}/10/MH-1?direction=both"),
            None,
            "U AAAAAAA NAAA",
        ),
        (
            "GET",
            s("/trace/shipment:coop/shp-private?direction=backward"),
            None,
            "U AAAAAAA NANA",
        ),
        (
            "GET",
            format!("/recall/{MANGO}/MH-1"),
            None,
            "U AAAAAAA NAAA",
        ),
        // Evidence bundles: the same callers as the trace.
        (
            "GET",
            s("/v1/orgs/coop/shipments/shp-declared/evidence"),
            None,
            "U AAAAAAA NAAA",
        ),
        (
            "GET",
            s("/v1/orgs/coop/shipments/shp-private/evidence"),
            None,
            "U AAAAAAA NANA",
        ),
        (
            "GET",
            format!("/v1/orgs/coop/lots/{MANGO}/MH-1/evidence"),
            None,
            "U AAAAAAA NAAA",
        ),
        // FSMA 204: one's own organisation's spreadsheet, or a sharing partner's.
        (
            "GET",
            s("/exports/fsma204?from=2025-01-01&to=2026-01-01"),
            None,
            "U AAAAAAA AAAA",
        ),
        (
            "GET",
            s("/exports/fsma204?from=2025-01-01&to=2026-01-01&org=coop"),
            None,
            "U AAAAAAA FAFA",
        ),
        // The resolver: public, but scan counts are the GTIN owner's records.
        ("GET", format!("/01/{MANGO}"), None, "R RRRRRRR RRRR"),
        ("OPTIONS", format!("/01/{MANGO}"), None, "A AAAAAAA AAAA"),
        (
            "GET",
            format!("/01/{MANGO}/10/MH-1?linkType=linkset"),
            None,
            "A AAAAAAA AAAA",
        ),
        ("GET", s("/.well-known/gs1resolver"), None, "A AAAAAAA AAAA"),
        (
            "OPTIONS",
            s("/.well-known/gs1resolver"),
            None,
            "A AAAAAAA AAAA",
        ),
        (
            "GET",
            format!("/v1/public/01/{MANGO}/10/MH-1"),
            None,
            "A AAAAAAA AAAA",
        ),
        (
            "OPTIONS",
            format!("/v1/public/01/{MANGO}"),
            None,
            "A AAAAAAA AAAA",
        ),
        (
            "GET",
            format!("/qr/01/{MANGO}/21/1001.svg"),
            None,
            "A AAAAAAA AAAA",
        ),
        ("GET", format!("/qr/01/{MANGO}.png"), None, "A AAAAAAA AAAA"),
        ("OPTIONS", format!("/qr/01/{MANGO}"), None, "A AAAAAAA AAAA"),
        (
            "GET",
            format!("/v1/scans/01/{MANGO}/21/1001"),
            None,
            "U AAAAAAA FAFA",
        ),
        (
            "GET",
            s("/v1/scans/01/09506000134352/21/1"),
            None,
            "U NNNNNNN NNNN",
        ),
        // Issuer keys: the organisation's admin registers and revokes; members and auditors
        // list; anyone reads one key.
        (
            "POST",
            s("/v1/orgs/coop/issuer-keys"),
            None,
            "U BFFFFFF FFFF",
        ),
        (
            "GET",
            s("/v1/orgs/coop/issuer-keys"),
            None,
            "U AAAAAAA FAFF",
        ),
        (
            "POST",
            format!("/v1/orgs/coop/issuer-keys/{}/revoke", "0".repeat(64)),
            None,
            "U NFFFFFF FFFF",
        ),
        (
            "GET",
            format!("/v1/issuer-keys/{}", ids.issuer_key),
            None,
            "A AAAAAAA AAAA",
        ),
        // Documents: uploaded by the roles that handle papers (not auditors); read by the
        // issuer, uploader, exporter, consignee, the declared authority, lot owners, auditors
        // — 404 for anyone else (a sharing partner included); signed, revoked and superseded
        // by the issuer's signers (a new version also by the uploader's members).
        ("POST", s("/v1/documents"), None, "U BBBBBBF BFBB"),
        ("GET", s("/v1/documents"), None, "U BBBBBBB BBBB"),
        (
            "GET",
            s("/v1/documents?shipment=coop/shp-declared"),
            None,
            "U AAAAAAA AAAA",
        ),
        (
            "GET",
            format!("/v1/documents/{}", ids.document),
            None,
            "U AAAAAAA NAAN",
        ),
        (
            "GET",
            format!("/v1/documents/{}/content", ids.document),
            None,
            "U AAAAAAA NAAN",
        ),
        (
            "POST",
            format!("/v1/documents/{}/signature", ids.document),
            None,
            "U BBBFBBF NFFN",
        ),
        (
            "POST",
            format!("/v1/documents/{}/revoke", ids.document),
            None,
            "U BBBFBBF NFFN",
        ),
        (
            "POST",
            format!("/v1/documents/{}/supersede", ids.document),
            None,
            "U BBBBBBF NFFN",
        ),
        // The customs check: any member; what it shows depends on who asks.
        ("POST", s("/v1/verify/document"), None, "U BBBBBBB BBBB"),
        (
            "POST",
            s("/v1/verify/document"),
            Some(json!({ "sha256": ids.document_sha256 })),
            "U AAAAAAA AAAA",
        ),
        (
            "GET",
            format!("/v1/public/lots/{MANGO}/MH-1/certificates"),
            None,
            "A AAAAAAA AAAA",
        ),
        // The consumer page's data: public, the lot owner's records only.
        (
            "GET",
            format!("/v1/public/lots/{MANGO}/MH-1/journey"),
            None,
            "A AAAAAAA AAAA",
        ),
        ("GET", s("/pages/verify.js"), None, "A AAAAAAA AAAA"),
        ("GET", s("/login"), None, "A AAAAAAA AAAA"),
        ("GET", s("/pages/app.js"), None, "A AAAAAAA AAAA"),
        ("GET", s("/entry"), None, "A AAAAAAA AAAA"),
        ("GET", s("/entry/plots/new"), None, "A AAAAAAA AAAA"),
        ("GET", s("/entry/harvest"), None, "A AAAAAAA AAAA"),
        ("GET", s("/entry/packing"), None, "A AAAAAAA AAAA"),
        ("GET", s("/entry/shipments/new"), None, "A AAAAAAA AAAA"),
        ("GET", s("/entry/documents/new"), None, "A AAAAAAA AAAA"),
        ("GET", s("/entry/devices/new"), None, "A AAAAAAA AAAA"),
        (
            "GET",
            format!("/entry/devices/{OWNED_DEVICE}"),
            None,
            "A AAAAAAA AAAA",
        ),
        ("GET", s("/pages/entry.js"), None, "A AAAAAAA AAAA"),
        // The customs console: pages with no data (their script calls the API with the
        // caller's token); the chart's temperatures go to whoever may read the shipment.
        ("GET", s("/console"), None, "A AAAAAAA AAAA"),
        (
            "GET",
            s("/console/shipments/coop/shp-declared"),
            None,
            "A AAAAAAA AAAA",
        ),
        ("GET", s("/pages/console.js"), None, "A AAAAAAA AAAA"),
        (
            "GET",
            s("/v1/orgs/coop/shipments/shp-declared/temperatures"),
            None,
            "U AAAAAAA FAAA",
        ),
        (
            "GET",
            s("/v1/orgs/coop/shipments/shp-private/temperatures"),
            None,
            "U AAAAAAA FAFA",
        ),
        (
            "GET",
            s("/v1/orgs/coop/shipments/shp-missing/temperatures"),
            None,
            "U NNNNNNN FNFN",
        ),
    ]
}

/// Ids made while setting up.
#[derive(Debug)]
struct Ids {
    spare_token: String,
    capture: String,
    issuer_key: String,
    document: String,
    document_sha256: String,
}

async fn ok(api: &Api, method: Method, path: &str, token: Option<&str>, body: Value) -> Value {
    let (status, answer) = api.call(method, path, token, Some(body)).await;
    assert!(status.is_success(), "{path}: {status} {answer}");
    answer
}

/// Organisations, members, tokens and records; returns each caller's token.
async fn set_up(api: &Api) -> (Vec<Option<String>>, Ids) {
    let coop = api.bootstrap("coop", &ROLES).await;
    let rival = api.bootstrap("rival", &["admin"]).await;
    let audit = api.bootstrap("audit-office", &["auditor"]).await;
    let customs = api.bootstrap("cn-customs", &["customs"]).await;
    let packer = api.bootstrap("packer", &["producer"]).await;
    let (producer, exporter, admin) = (
        Some(coop["producer"].as_str()),
        Some(coop["exporter"].as_str()),
        Some(coop["admin"].as_str()),
    );
    ok(
        api,
        Method::POST,
        "/v1/orgs/coop/partners",
        admin,
        json!({ "partner": "packer" }),
    )
    .await;
    ok(api, Method::POST, "/v1/orgs/coop/products", producer,
       json!({ "gtin": MANGO, "name_en": "Mango", "name_zh": "芒果", "storage_min_c": 10.0, "storage_max_c": 13.0 })).await;
    ok(
        api,
        Method::POST,
        "/v1/orgs/coop/locations",
        producer,
        json!({ "id": "farm-1", "kind": "farm", "name": "Farm 1", "country": "CN" }),
    )
    .await;
    ok(
        api,
        Method::POST,
        "/v1/orgs/coop/plots",
        producer,
        json!({ "id": "plot-1", "name": "Plot 1", "country": "CN", "farm": "farm-1", "area_ha": 3.2,
               "geometry": { "type": "Point", "coordinates": [100.45, 21.95] } }),
    )
    .await;
    ok(
        api,
        Method::POST,
        "/v1/orgs/coop/lots",
        producer,
        json!({ "gtin": MANGO, "lot": "MH-1", "plot": "plot-1", "harvest_date": "2025-06-01" }),
    )
    .await;
    ok(
        api,
        Method::POST,
        "/v1/orgs/coop/devices",
        admin,
        json!({ "device_id": OWNED_DEVICE, "public_key": KEY_1 }),
    )
    .await;
    ok(api, Method::POST, "/v1/devices/import", None, json!({
        "format": "agritrace-device-manifest/v1",
        "devices": [{ "device_id": IMPORTED_DEVICE, "key_epoch": 1, "algorithm": "ed25519", "public_key": KEY_2 }],
    })).await;
    for (id, declared) in [
        ("shp-declared", json!(["cn-customs"])),
        ("shp-private", json!([])),
    ] {
        ok(
            api,
            Method::POST,
            "/v1/orgs/coop/shipments",
            exporter,
            json!({
                "id": id, "consignee": { "name": "Bangkok Fresh Co.", "country": "TH" },
                "origin_country": "CN", "destination_country": "TH", "declared_to": declared,
                "lots": [{ "gtin": MANGO, "lot": "MH-1" }], "devices": [OWNED_DEVICE],
                "planned_departure": { "location": "Mohan", "time_ms": 1_750_000_000_000_u64 },
            }),
        )
        .await;
    }
    ok(
        api,
        Method::POST,
        "/v1/admin/orgs/coop/members",
        None,
        json!({ "id": "spare", "name": "Spare", "roles": ["carrier"] }),
    )
    .await;
    let spare = ok(
        api,
        Method::POST,
        "/v1/admin/orgs/coop/members/spare/tokens",
        None,
        json!({}),
    )
    .await;
    let job = ok(
        api,
        Method::POST,
        "/epcis/capture",
        producer,
        json!({
            "@context": ["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"],
            "type": "EPCISDocument", "schemaVersion": "2.0", "creationDate": "2025-06-01T08:00:00Z",
            "epcisBody": { "eventList": [{
                "type": "ObjectEvent", "eventID": EVENT_ID, "eventTime": "2025-06-01T08:00:00Z",
                "eventTimeZoneOffset": "+08:00", "action": "OBSERVE", "bizStep": "inspecting",
                "epcList": [format!("https://id.gs1.org/01/{MANGO}/21/1001")],
            }] },
        }),
    )
    .await;
    let capture = job["captureID"].as_str().expect("a capture id").to_owned();
    // The event committed and a checkpoint published (so its proof and the log's tiles read).
    let mut polls = 0;
    loop {
        let (status, job) = api
            .call(
                Method::GET,
                &format!("/epcis/capture/{capture}"),
                producer,
                None,
            )
            .await;
        let (checkpoint, _) = api.call(Method::GET, "/log/checkpoint", None, None).await;
        if status == StatusCode::OK && job["running"] == false && checkpoint == StatusCode::OK {
            assert_eq!(job["success"], true, "{job}");
            break;
        }
        polls += 1;
        assert!(polls < POLLS_MAX, "the capture never finished: {job}");
        tokio::time::sleep(POLL).await;
    }
    let tokens = [
        None,
        Some(coop["admin"].clone()),
        Some(coop["producer"].clone()),
        Some(coop["exporter"].clone()),
        Some(coop["carrier"].clone()),
        Some(coop["inspector"].clone()),
        Some(coop["customs"].clone()),
        Some(coop["auditor"].clone()),
        Some(rival["admin"].clone()),
        Some(audit["auditor"].clone()),
        Some(customs["customs"].clone()),
        Some(packer["producer"].clone()),
    ];
    // A node-held issuer key of the cooperative and a document of the declared shipment,
    // signed at once.
    let key = ok(
        api,
        Method::POST,
        "/v1/orgs/coop/issuer-keys",
        admin,
        json!({ "custody": "node" }),
    )
    .await;
    let file = b"phytosanitary certificate KM-1";
    let (content_type, body) = common::multipart_form(&[
        ("file", file),
        ("type", b"phytosanitary_certificate"),
        ("number", b"KM-1"),
        ("shipment", b"coop/shp-declared"),
        ("lot", format!("{MANGO}/MH-1").as_bytes()),
        ("media_type", b"application/pdf"),
        ("sign", b"node"),
    ]);
    let response = api
        .http
        .post(format!("{}/v1/documents", api.base))
        .bearer_auth(coop["exporter"].as_str())
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .expect("the node answers");
    assert_eq!(response.status(), StatusCode::CREATED);
    let document: Value =
        serde_json::from_str(&response.text().await.expect("a body")).expect("a document");
    let digest: [u8; 32] = <sha2::Sha256 as sha2::Digest>::digest(file).into();
    let ids = Ids {
        spare_token: spare["id"].as_str().expect("a token id").to_owned(),
        capture,
        issuer_key: key["key_id"].as_str().expect("a key id").to_owned(),
        document: document["id"].as_str().expect("a document id").to_owned(),
        document_sha256: digest.iter().map(|b| format!("{b:02x}")).collect(),
    };
    (tokens.to_vec(), ids)
}

fn expected(code: char) -> &'static str {
    match code {
        'A' => "2xx",
        'R' => "3xx",
        'B' => "400",
        'U' => "401",
        'F' => "403",
        'N' => "404",
        other => panic!("unknown expectation {other:?}"),
    }
}

fn class_of(status: StatusCode) -> String {
    match status.as_u16() {
        200..=299 => "2xx".to_owned(),
        300..=399 => "3xx".to_owned(),
        other => other.to_string(),
    }
}

/// The documented operation a concrete request is an instance of.
fn operation<'a>(doc: &'a Value, method: &str, path: &str) -> Option<&'a Value> {
    let path = path.split('?').next().unwrap_or(path);
    let concrete: Vec<&str> = path.split('/').collect();
    doc["paths"]
        .as_object()?
        .iter()
        .find_map(|(template, item)| {
            let parts: Vec<&str> = template.split('/').collect();
            // `/trace/{id}` takes the rest of the path (a Digital Link path has slashes).
            let rest = template == "/trace/{id}" && path.starts_with("/trace/");
            let fits = rest
                || parts.len() == concrete.len()
                    && parts
                        .iter()
                        .zip(&concrete)
                        .all(|(t, c)| t == c || (t.starts_with('{') && t.ends_with('}')));
            fits.then(|| &item[method.to_lowercase()])
                .filter(|op| op.is_object())
        })
}

/// Checks the answer against the document: its status is documented for the operation, and
/// its content type is one documented for that status.
fn check_documented(doc: &Value, method: &str, path: &str, status: StatusCode, content_type: &str) {
    if path.starts_with("/log/tile/") {
        // Tile indexes span path segments; the tile routes are checked in `openapi.rs`.
        return;
    }
    let op = operation(doc, method, path)
        .unwrap_or_else(|| panic!("{method} {path} is not in the OpenAPI document"));
    let response = &op["responses"][status.as_str()];
    let response = match response["$ref"].as_str() {
        Some(r) => &doc["components"]["responses"][r.trim_start_matches("#/components/responses/")],
        None => response,
    };
    assert!(
        response.is_object(),
        "{method} {path}: {status} is not documented"
    );
    if let Some(content) = response["content"].as_object() {
        let essence = content_type.split(';').next().unwrap_or("").trim();
        // OpenAPI content keys are media types or media ranges (`*/*`, `image/*`).
        let covers = |range: &str| {
            range == essence
                || range == "*/*"
                || range
                    .strip_suffix("/*")
                    .is_some_and(|kind| essence.split('/').next() == Some(kind))
        };
        assert!(
            content.keys().any(|t| covers(t)),
            "{method} {path}: {status} answered {content_type}, documented {:?}",
            content.keys().collect::<Vec<_>>()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_caller_against_every_endpoint() {
    let (_dir, _node, api) = start().await;
    let (tokens, ids) = set_up(&api).await;
    let doc = api::openapi::document();
    // Redirects are answers here, not something to follow.
    let http = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a client");
    let mut failures = Vec::new();
    let rows = rows(&ids);
    for (method, path, body, expectations) in &rows {
        let codes: Vec<char> = expectations
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        assert_eq!(
            codes.len(),
            CALLERS.len(),
            "{method} {path}: one code per caller"
        );
        for ((caller, token), code) in CALLERS.iter().zip(&tokens).zip(codes) {
            let mut request = http.request(
                Method::from_bytes(method.as_bytes()).expect("a method"),
                format!("{}{path}", api.base),
            );
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            if let Some(body) = body {
                request = request
                    .header("content-type", "application/json")
                    .body(body.to_string());
            }
            let response = request.send().await.expect("the node answers");
            let status = response.status();
            let content_type = response
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            let text = response.text().await.unwrap_or_default();
            let (want, got) = (expected(code), class_of(status));
            if want != got {
                let detail: String = text.chars().take(160).collect();
                failures.push(format!(
                    "{method} {path} as {caller}: expected {want}, got {got}: {detail}"
                ));
                continue;
            }
            if status.is_client_error() || status.is_server_error() {
                assert_eq!(
                    content_type, "application/problem+json",
                    "{method} {path} as {caller}"
                );
            }
            check_documented(&doc, method, path, status, &content_type);
        }
    }
    assert!(
        failures.is_empty(),
        "{} answers differ from the matrix:\n{}",
        failures.len(),
        failures.join("\n")
    );

    // What the lists show each caller: a customs officer exactly the shipment declared to its
    // authority, the partner both, another organisation's admin nothing.
    let listed = |token: &Option<String>| {
        let api = &api;
        let token = token.clone();
        async move {
            let (status, answer) = api
                .call(Method::GET, "/v1/shipments", token.as_deref(), None)
                .await;
            assert_eq!(status, StatusCode::OK, "{answer}");
            let mut ids: Vec<String> = answer["shipments"]
                .as_array()
                .expect("shipments")
                .iter()
                .map(|s| s["id"].as_str().expect("an id").to_owned())
                .collect();
            ids.sort();
            ids
        }
    };
    assert_eq!(listed(&tokens[10]).await, ["shp-declared"]);
    assert_eq!(listed(&tokens[11]).await, ["shp-declared", "shp-private"]);
    assert_eq!(listed(&tokens[9]).await, ["shp-declared", "shp-private"]);
    assert!(listed(&tokens[8]).await.is_empty());
}
