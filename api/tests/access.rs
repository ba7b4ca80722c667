//! Accounts over real HTTP: the node bootstrapped through its local admin routes (as
//! `agritrace admin` does), then every endpoint of accounts called by every role of one
//! organisation, by an admin of another organisation, with no token, and with a revoked or
//! forged token, each answer checked against a table written out by hand.

mod common;

use common::{ROLES, node_on, start};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_caller_against_every_account_endpoint() {
    let (_dir, node, api) = start().await;
    let coop = api.bootstrap("coop", &ROLES).await;
    let rival = api.bootstrap("rival", &["admin", "auditor"]).await;

    // Callers: no token, each role of coop, rival's admin, rival's auditor.
    let mut callers: Vec<(String, Option<String>)> = vec![("none".to_owned(), None)];
    for role in ROLES {
        callers.push((role.to_owned(), Some(coop[role].clone())));
    }
    callers.push(("rival-admin".to_owned(), Some(rival["admin"].clone())));
    callers.push(("rival-auditor".to_owned(), Some(rival["auditor"].clone())));

    // (method, path, body, expected status per caller in the order above:
    //  none, admin, producer, exporter, carrier, inspector, customs, auditor, rival-admin,
    //  rival-auditor)
    let read_org = [401, 200, 200, 200, 200, 200, 200, 200, 403, 200];
    let manage_org = [401, 201, 403, 403, 403, 403, 403, 403, 403, 403];
    let list_tokens = [401, 200, 403, 403, 403, 403, 403, 403, 403, 403];
    let whoami = [401, 200, 200, 200, 200, 200, 200, 200, 200, 200];
    let table: Vec<(Method, String, Option<Value>, [u16; 10])> = vec![
        (Method::GET, "/v1/whoami".to_owned(), None, whoami),
        (Method::GET, "/v1/orgs/coop".to_owned(), None, read_org),
        (
            Method::GET,
            "/v1/orgs/coop/members".to_owned(),
            None,
            read_org,
        ),
        (
            Method::GET,
            "/v1/orgs/coop/members/carrier-1/tokens".to_owned(),
            None,
            // The carrier may list its own tokens.
            [401, 200, 403, 403, 200, 403, 403, 403, 403, 403],
        ),
        (
            Method::GET,
            "/v1/orgs/coop/members/producer-1/tokens".to_owned(),
            None,
            [401, 200, 200, 403, 403, 403, 403, 403, 403, 403],
        ),
        (
            Method::GET,
            "/v1/orgs/coop/members/exporter-1/tokens".to_owned(),
            None,
            {
                let mut expected = list_tokens;
                expected[3] = 200;
                expected
            },
        ),
    ];
    for (method, path, body, expected) in &table {
        for ((name, token), want) in callers.iter().zip(expected) {
            let (status, answer) = api
                .call(method.clone(), path, token.as_deref(), body.clone())
                .await;
            assert_eq!(status.as_u16(), *want, "{name} {method} {path}: {answer}");
            if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
                assert!(answer["detail"].is_string(), "a problem document: {answer}");
            }
        }
    }
    // Writes: each caller tries to add its own member and issue a token for producer-1; only
    // coop's admin may.
    for ((name, token), want) in callers.iter().zip(manage_org) {
        let member = format!("new-{name}");
        let (status, answer) = api
            .call(
                Method::POST,
                "/v1/orgs/coop/members",
                token.as_deref(),
                Some(json!({ "id": member, "name": "New", "roles": ["carrier"] })),
            )
            .await;
        assert_eq!(status.as_u16(), want, "{name} adds a member: {answer}");
        let (status, answer) = api
            .call(
                Method::POST,
                "/v1/orgs/coop/members/producer-1/tokens",
                token.as_deref(),
                Some(json!({ "label": name })),
            )
            .await;
        assert_eq!(status.as_u16(), want, "{name} issues a token: {answer}");
    }

    // Roles that read across organisations are the operator's to grant, not an admin's.
    let admin = Some(coop["admin"].as_str());
    for role in ["auditor", "customs"] {
        let (status, answer) = api
            .call(
                Method::POST,
                "/v1/orgs/coop/members",
                admin,
                Some(json!({ "id": format!("self-{role}"), "name": "x", "roles": ["carrier", role] })),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{role}: {answer}");
    }

    // Bad input answers 400 and writes nothing.
    for body in [
        json!({ "id": "UPPER", "name": "x", "roles": ["carrier"] }),
        json!({ "id": "ok-id", "name": "x", "roles": ["root"] }),
        json!({ "id": "ok-id", "name": "x", "roles": [] }),
        json!({ "id": "ok-id", "name": "", "roles": ["carrier"] }),
        json!({ "id": "ok-id", "name": "x", "roles": ["carrier"], "extra": 1 }),
    ] {
        let (status, answer) = api
            .call(
                Method::POST,
                "/v1/orgs/coop/members",
                admin,
                Some(body.clone()),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
    }
    let (status, answer) = api
        .call(Method::GET, "/v1/orgs/coop/members", admin, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        !answer["members"]
            .as_array()
            .expect("members")
            .iter()
            .any(|m| m["id"] == "ok-id"),
        "a refused member was stored"
    );
    let (status, _) = api
        .call(
            Method::POST,
            "/v1/orgs/coop/members",
            admin,
            Some(json!({ "id": "producer-1", "name": "x", "roles": ["carrier"] })),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);

    // Revocation: the holder may revoke its own token; after that the token is refused
    // everywhere with the same 401 as a forged one.
    let (_, me) = api
        .call(Method::GET, "/v1/whoami", Some(&coop["customs"]), None)
        .await;
    let id = me["token"].as_str().expect("token id").to_owned();
    let (status, answer) = api
        .call(
            Method::DELETE,
            &format!("/v1/tokens/{id}"),
            Some(&rival["admin"]),
            None,
        )
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "another organisation's admin: {answer}"
    );
    let (status, answer) = api
        .call(
            Method::DELETE,
            &format!("/v1/tokens/{id}"),
            Some(&coop["customs"]),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert!(answer["revoked_ms"].is_u64());
    let (status, answer) = api
        .call(Method::GET, "/v1/whoami", Some(&coop["customs"]), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{answer}");
    let forged = format!("{}AAAA", &coop["producer"][..coop["producer"].len() - 4]);
    let (status, forged_answer) = api
        .call(Method::GET, "/v1/whoami", Some(&forged), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        forged_answer, answer,
        "a revoked and a forged token answer alike"
    );
    let (status, _) = api
        .call(Method::GET, "/v1/whoami", Some("not-a-token"), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = api
        .call(Method::DELETE, "/v1/tokens/00000000000000ff", admin, None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = api
        .call(
            Method::DELETE,
            "/v1/tokens/00000000000000ff",
            Some(&coop["producer"]),
            None,
        )
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "existence is told to admins only"
    );

    node.shutdown().await;
}

/// `agritrace admin` with no node running works directly in the data directory; the token it
/// prints is then accepted by a node started on that directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_command_bootstraps_a_data_directory_offline() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    // A port nobody listens on: the command falls back to the data directory.
    let unused = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let admin = |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_agritrace"))
            .arg("admin")
            .args(args)
            .arg("--data-dir")
            .arg(&data)
            .args(["--http-listen", &unused.to_string()])
            .output()
            .expect("run agritrace admin");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (ok, out, err) = admin(&[
        "create-org",
        "menghai-coop",
        "--name",
        "勐海芒果合作社",
        "--country",
        "CN",
    ]);
    assert!(ok, "{out}{err}");
    let (ok, _, err) = admin(&[
        "create-org",
        "menghai-coop",
        "--name",
        "Again",
        "--country",
        "CN",
    ]);
    assert!(!ok && err.contains("already exists"), "{err}");
    let (ok, _, err) = admin(&[
        "add-member",
        "menghai-coop",
        "li.wei",
        "--name",
        "Li Wei",
        "--role",
        "farmer",
    ]);
    assert!(!ok && err.contains("is not a role"), "{err}");
    let (ok, out, err) = admin(&[
        "add-member",
        "menghai-coop",
        "li.wei",
        "--name",
        "Li Wei",
        "--role",
        "producer",
        "--role",
        "admin",
    ]);
    assert!(ok, "{out}{err}");
    let (ok, out, err) = admin(&["issue-token", "menghai-coop", "li.wei", "--label", "laptop"]);
    assert!(ok, "{out}{err}");
    let issued: Value = serde_json::from_str(out.trim()).expect("JSON");
    let token = issued["token"].as_str().expect("the token").to_owned();
    assert!(token.starts_with("agt_"));

    let (node, api) = node_on(data.clone()).await;
    let (status, me) = api
        .call(Method::GET, "/v1/whoami", Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["org"], "menghai-coop");
    assert_eq!(me["roles"], json!(["admin", "producer"]));
    node.shutdown().await;

    // Revoked offline, refused by the next node.
    let (ok, out, err) = admin(&["revoke-token", issued["id"].as_str().expect("id")]);
    assert!(ok, "{out}{err}");
    let (node, api) = node_on(data).await;
    let (status, _) = api
        .call(Method::GET, "/v1/whoami", Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    node.shutdown().await;
}
