//! The OpenAPI description against the code and an independent validator, over real HTTP:
//! the document served at `/openapi.json` passes `openapi-spec-validator` (installed by
//! `cargo xtask test`; the test fails if it is missing); it names exactly the routes the source
//! declares (every `.route("...", ...)` literal of `api/src` and `ledger/src/http.rs`, with its
//! methods); every request body example it gives is taken by a running node; and every error
//! the router answers by itself (unknown route, wrong method, a body over the limit, a body
//! that is not JSON, a path that does not decode) is an RFC 9457 problem document.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use api::{Node, NodeConfig};
use common::{Api, start};
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("api/ is inside the workspace")
        .to_path_buf()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("a source directory") {
        let path = entry.expect("an entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every `.route("<path>", <method router>)` of `source`: the path and its methods.
fn routes_in(source: &str) -> Vec<(String, BTreeSet<String>)> {
    let compact: String = source.chars().filter(|c| !c.is_whitespace()).collect();
    let mut out = Vec::new();
    let mut rest = compact.as_str();
    while let Some(at) = rest.find(".route(\"") {
        rest = &rest[at + ".route(\"".len()..];
        let end = rest.find('"').expect("a closing quote");
        let path = rest[..end].to_owned();
        // The method router: up to the parenthesis that closes `.route(`.
        let mut depth = 1;
        let mut close = 0;
        for (i, c) in rest[end..].char_indices() {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                _ => {}
            }
            if depth == 0 {
                close = end + i;
                break;
            }
        }
        let args = &rest[end + 1..close];
        let mut methods = BTreeSet::new();
        for method in ["get", "post", "put", "delete", "patch", "options", "head"] {
            for lead in [',', '.'] {
                if args.contains(&format!("{lead}{method}(")) {
                    methods.insert(method.to_owned());
                }
            }
        }
        assert!(
            !methods.is_empty(),
            "no method found for route {path}: {args}"
        );
        out.push((path, methods));
        rest = &rest[close..];
    }
    out
}

/// The routes of the node's source.
fn source_routes() -> Vec<(String, BTreeSet<String>)> {
    let mut files = Vec::new();
    rust_files(&workspace().join("api/src"), &mut files);
    files.push(workspace().join("ledger/src/http.rs"));
    let mut routes = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("readable source");
        routes.extend(routes_in(&text));
    }
    routes
}

/// Whether the documented `doc` path is one the axum route `route` serves: literals equal,
/// `{x}` takes one segment, a trailing `{*x}` one or more.
fn serves(route: &str, doc: &str) -> bool {
    let route: Vec<&str> = route.split('/').collect();
    let doc: Vec<&str> = doc.split('/').collect();
    let param = |s: &str| s.starts_with('{') && s.ends_with('}');
    for (i, segment) in route.iter().enumerate() {
        if segment.starts_with("{*") {
            return doc.len() > i;
        }
        match doc.get(i) {
            Some(d) if param(segment) && param(d) => {}
            Some(d) if d == segment => {}
            _ => return false,
        }
    }
    route.len() == doc.len()
}

fn documented(doc: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("a path item").keys() {
            out.push((path.clone(), method.clone()));
        }
    }
    out
}

#[test]
fn the_document_names_exactly_the_routes_in_the_source() {
    let doc = api::openapi::document();
    let routes = source_routes();
    assert!(routes.len() > 40, "only {} routes found", routes.len());
    let docs = documented(&doc);
    for (route, methods) in &routes {
        for method in methods {
            assert!(
                docs.iter().any(|(p, m)| m == method && serves(route, p)),
                "{method} {route} is served but not in the OpenAPI document"
            );
        }
    }
    for (path, method) in &docs {
        let serving: Vec<&String> = routes
            .iter()
            .filter(|(route, methods)| methods.contains(method) && serves(route, path))
            .map(|(route, _)| route)
            .collect();
        match serving.len() {
            1 => {}
            _ => panic!("{method} {path} is documented but served by {serving:?}"),
        }
    }
    // A method the source does not declare on a documented path is not documented either.
    let mut declared: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (route, methods) in &routes {
        for method in methods {
            declared.entry(route).or_default().insert(method);
        }
    }
    assert!(declared.contains_key("/openapi.json"));
}

#[test]
fn route_literals_are_read_with_their_methods() {
    let routes = routes_in(
        r#"Router::new()
            .route("/a/{x}", get(one).post(two))
            .route(
                "/b/{*rest}",
                get(three::<S>).options(preflight),
            )
            .route("/c", delete(four))"#,
    );
    let methods = |items: &[&str]| items.iter().map(|s| (*s).to_owned()).collect();
    assert_eq!(
        routes,
        vec![
            ("/a/{x}".to_owned(), methods(&["get", "post"])),
            ("/b/{*rest}".to_owned(), methods(&["get", "options"])),
            ("/c".to_owned(), methods(&["delete"])),
        ]
    );
    assert!(serves("/01/{*rest}", "/01/{gtin}/10/{lot}"));
    assert!(!serves("/01/{*rest}", "/01"));
    assert!(serves("/v1/orgs/{org}", "/v1/orgs/{org}"));
    assert!(!serves("/v1/orgs/{org}", "/v1/orgs/{org}/members"));
    assert!(!serves("/v1/orgs/{org}", "/v1/orgs/coop"));
}

/// The validator's command: `openapi-spec-validator` on the PATH.
fn validator() -> Command {
    let probe = Command::new("openapi-spec-validator")
        .arg("--version")
        .output();
    assert!(
        probe.is_ok_and(|o| o.status.success()),
        "openapi-spec-validator is not installed: `cargo xtask test` installs it \
         (python3 -m pip install openapi-spec-validator)"
    );
    Command::new("openapi-spec-validator")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_served_document_passes_an_independent_validator() {
    let (dir, _node, api) = start().await;
    let response = api
        .http
        .get(format!("{}/openapi.json", api.base))
        .send()
        .await
        .expect("the node answers");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/json");
    let text = response.text().await.expect("a body");
    let doc: Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(doc["openapi"], "3.1.0");
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, &text).expect("write the document");
    let output = validator().arg(&file).output().expect("the validator runs");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "the validator refused it:\n{said}");
    assert!(said.contains("OK"), "{said}");
    // A broken document is refused, so the validator is really looking.
    let mut broken = doc;
    broken["paths"]["/v1/whoami"]["get"]["responses"] = json!("none");
    std::fs::write(&file, broken.to_string()).expect("write");
    let output = validator().arg(&file).output().expect("the validator runs");
    assert!(!output.status.success(), "a broken document passed");
}

/// Path parameters of an operation, by name, from the document's examples.
fn example_path(doc: &Value, path: &str, op: &Value) -> String {
    let mut concrete = path.to_owned();
    for p in op["parameters"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let p = match p["$ref"].as_str() {
            Some(r) => {
                &doc["components"]["parameters"][r.trim_start_matches("#/components/parameters/")]
            }
            None => p,
        };
        if p["in"] == "path" {
            let name = p["name"].as_str().expect("a name");
            let example = p["example"]
                .as_str()
                .expect("each path parameter has an example");
            concrete = concrete.replace(&format!("{{{name}}}"), example);
        }
    }
    concrete
}

/// The order the examples build on each other in (an organisation before its members, a
/// plot before its lot, ...), and what each answers on a node set up for them.
const EXAMPLES: [(&str, u16); 27] = [
    ("adminCreateOrg", 201),
    ("adminAddMember", 201),
    ("addMember", 201),
    ("adminIssueToken", 201),
    ("issueToken", 201),
    ("share", 201),
    ("createProduct", 201),
    ("createLocation", 201),
    ("createPlot", 201),
    ("createLot", 201),
    ("importDevices", 200),
    ("registerDevice", 201),
    // The example's signature is not the old key's: refused for that, not for its shape.
    ("rotateDeviceKey", 400),
    ("revokeDeviceKey", 201),
    // The example device is the organisation's already.
    ("claimDevice", 409),
    ("createShipment", 201),
    ("recordDeparture", 201),
    ("recordArrival", 201),
    ("capture", 202),
    // The example device has no readings in the example window.
    ("captureSensorSummary", 400),
    // The example shipment has no devices travelling with it.
    ("captureShipmentSensorSummary", 409),
    ("registerIssuerKey", 201),
    // A form's example is its parts; sent as one JSON text it is no form (the form itself is
    // tested in `documents.rs`).
    ("uploadDocument", 400),
    // The example document does not exist.
    ("signDocument", 404),
    ("revokeDocument", 404),
    ("supersedeDocument", 404),
    ("verifyDocument", 200),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_body_example_is_taken_by_the_node() {
    let (_dir, _node, api) = start().await;
    let doc = api::openapi::document();
    // The organisations the examples name, and a member holding every role.
    api.bootstrap("packer", &["admin"]).await;
    let (status, _) = api
        .call(
            Method::POST,
            "/v1/admin/orgs",
            None,
            Some(json!({ "id": "menghai-coop", "name": "Menghai 勐海", "country": "CN" })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = api
        .call(
            Method::POST,
            "/v1/admin/orgs/menghai-coop/members",
            None,
            Some(json!({ "id": "all-1", "name": "Every role", "roles": common::ROLES })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, token) = api
        .call(
            Method::POST,
            "/v1/admin/orgs/menghai-coop/members/all-1/tokens",
            None,
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let token = token["token"].as_str().expect("a token").to_owned();

    let mut with_examples = BTreeMap::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("a path item") {
            if let Some(content) = op["requestBody"]["content"].as_object() {
                let id = op["operationId"].as_str().expect("an id").to_owned();
                let (content_type, media) = content.iter().next().expect("a media type");
                let example = media["example"].clone();
                assert!(example.is_object(), "{id}: no example");
                with_examples.insert(
                    id,
                    (
                        method.clone(),
                        example_path(&doc, path, op),
                        content_type.clone(),
                        example,
                    ),
                );
            }
        }
    }
    let listed: BTreeSet<&str> = EXAMPLES.iter().map(|(id, _)| *id).collect();
    let found: BTreeSet<&str> = with_examples.keys().map(String::as_str).collect();
    assert_eq!(listed, found, "every example is sent, in a known order");
    for (id, expected) in EXAMPLES {
        let (method, path, content_type, example) = &with_examples[id];
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).expect("a method");
        let response = api
            .http
            .request(method, format!("{}{path}", api.base))
            .bearer_auth(&token)
            .header("content-type", content_type)
            .body(example.to_string())
            .send()
            .await
            .expect("the node answers");
        let status = response.status().as_u16();
        let text = response.text().await.expect("a body");
        let answer: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        let detail = answer["detail"].as_str().unwrap_or("");
        assert!(
            !detail.starts_with("the request body is not as expected"),
            "{id}: the example's shape is refused: {detail}"
        );
        assert_eq!(status, expected, "{id} {path}: {answer}");
    }
}

async fn problem(response: reqwest::Response, status: StatusCode) -> Value {
    assert_eq!(response.status(), status, "{:?}", response.url().path());
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json",
        "{}",
        response.url()
    );
    let text = response.text().await.expect("a body");
    let body: Value = serde_json::from_str(&text).expect("a problem document");
    assert_eq!(body["status"], status.as_u16(), "{body}");
    assert!(
        body["title"].is_string() && body["detail"].is_string(),
        "{body}"
    );
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_routers_own_errors_are_problem_documents() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = NodeConfig {
        data_dir: dir.path().join("data"),
        http_listen: "127.0.0.1:0".parse().expect("addr"),
        http_body_bytes_max: 64 * 1024,
        broker: api::BrokerConfig {
            port: 0,
            ..api::BrokerConfig::default()
        },
        ..NodeConfig::default()
    };
    let node = Node::start(config).await.expect("the node starts");
    let api = Api {
        base: format!("http://{}", node.http_addr()),
        http: Client::new(),
    };
    let tokens = api.bootstrap("coop", &["admin", "producer"]).await;
    let url = |path: &str| format!("{}{path}", api.base);
    let http = &api.http;

    let unknown = http
        .get(url("/v1/nothing-here"))
        .send()
        .await
        .expect("answer");
    problem(unknown, StatusCode::NOT_FOUND).await;

    let wrong_method = http.delete(url("/v1/whoami")).send().await.expect("answer");
    assert!(wrong_method.headers().contains_key("allow"));
    problem(wrong_method, StatusCode::METHOD_NOT_ALLOWED).await;

    let too_large = http
        .post(url("/v1/orgs/coop/products"))
        .bearer_auth(&tokens["producer"])
        .header("content-type", "application/json")
        .body(vec![b' '; 65 * 1024])
        .send()
        .await
        .expect("answer");
    problem(too_large, StatusCode::PAYLOAD_TOO_LARGE).await;

    let not_json = http
        .post(url("/v1/orgs/coop/products"))
        .bearer_auth(&tokens["producer"])
        .header("content-type", "text/plain")
        .body("gtin=06901234567892")
        .send()
        .await
        .expect("answer");
    problem(not_json, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;

    // A path parameter that does not decode (invalid UTF-8 after percent-decoding).
    let undecodable = http
        .get(url("/v1/orgs/%FF%FE"))
        .bearer_auth(&tokens["admin"])
        .send()
        .await
        .expect("answer");
    problem(undecodable, StatusCode::BAD_REQUEST).await;

    // A query string that does not parse, on a route whose extractor rejects it itself.
    let bad_query = http
        .get(url("/epcis/capture?perPage=many"))
        .bearer_auth(&tokens["producer"])
        .send()
        .await
        .expect("answer");
    problem(bad_query, StatusCode::BAD_REQUEST).await;

    // The log's read side: a tile the log does not reach.
    let tile = http
        .get(url("/log/tile/0/x999/999"))
        .send()
        .await
        .expect("answer");
    problem(tile, StatusCode::NOT_FOUND).await;

    // A token that is not one: 401 with the challenge.
    let bad_token = http
        .get(url("/v1/whoami"))
        .bearer_auth("agt_nonsense")
        .send()
        .await
        .expect("answer");
    assert!(bad_token.headers().contains_key("www-authenticate"));
    problem(bad_token, StatusCode::UNAUTHORIZED).await;

    // JSON under another JSON media type is taken; no content type is read as JSON.
    let (status, _) = api
        .call(Method::GET, "/v1/whoami", Some(&tokens["admin"]), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let ld = http
        .post(url("/v1/orgs/coop/locations"))
        .bearer_auth(&tokens["producer"])
        .header("content-type", "application/ld+json; charset=utf-8")
        .body(
            json!({ "id": "farm-1", "kind": "farm", "name": "Farm", "country": "CN" }).to_string(),
        )
        .send()
        .await
        .expect("answer");
    assert_eq!(ld.status(), StatusCode::CREATED);
    let bare = http
        .post(url("/v1/orgs/coop/locations"))
        .bearer_auth(&tokens["producer"])
        .body(
            json!({ "id": "farm-2", "kind": "farm", "name": "Farm", "country": "CN" }).to_string(),
        )
        .send()
        .await
        .expect("answer");
    assert_eq!(bare.status(), StatusCode::CREATED);
    node.shutdown().await;
}
