//! Rate limits over real HTTP (issue "Security and operations", item 3 and the token brute
//! force of its security suite): a node whose budgets are a few requests a class, refilling at
//! one a minute, so every outcome below is decided by the count of requests and not by how
//! fast the machine sends them. Client addresses are simulated with `X-Forwarded-For`, which
//! the node believes from its loopback peer only because the test lists it as a trusted proxy.

mod common;

use api::ratelimit::{Budget, RateLimitConfig};
use api::{Node, NodeConfig};
use common::Api;
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};

/// A node on a temporary directory with `rate_limits`, believing `X-Forwarded-For` from
/// loopback.
async fn node_with(rate_limits: RateLimitConfig) -> (tempfile::TempDir, Node, Api) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (node, api) = common::node_with(NodeConfig {
        trusted_proxies: vec!["127.0.0.1".parse().expect("addr")],
        rate_limits,
        ..common::config_on(dir.path().join("data"))
    })
    .await;
    (dir, node, api)
}

/// `method path` from client address `from`, with `authorization` as the header if given.
async fn send(
    api: &Api,
    method: Method,
    path: &str,
    from: &str,
    authorization: Option<&str>,
    body: Option<Value>,
) -> Response {
    let mut request = api
        .http
        .request(method, format!("{}{path}", api.base))
        .header("x-forwarded-for", from);
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    request.send().await.expect("the node answers")
}

async fn get(api: &Api, path: &str, from: &str, token: Option<&str>) -> Response {
    let authorization = token.map(|t| format!("Bearer {t}"));
    send(api, Method::GET, path, from, authorization.as_deref(), None).await
}

/// Checks a 429: a problem document naming `class_words`, with `Retry-After` in whole
/// seconds within the class's one-minute refill.
async fn assert_limited(response: Response, class_words: &str) {
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = response
        .headers()
        .get("retry-after")
        .expect("Retry-After")
        .to_str()
        .expect("ASCII")
        .parse()
        .expect("whole seconds");
    assert!((1..=60).contains(&retry_after), "Retry-After {retry_after}");
    let content_type = response
        .headers()
        .get("content-type")
        .expect("content type")
        .to_str()
        .expect("ASCII")
        .to_owned();
    assert_eq!(content_type, "application/problem+json");
    let problem: Value =
        serde_json::from_str(&response.text().await.expect("a body")).expect("JSON");
    assert_eq!(problem["status"], 429, "{problem}");
    assert_eq!(problem["title"], "Too Many Requests", "{problem}");
    assert_eq!(problem["type"], "about:blank", "{problem}");
    let detail = problem["detail"].as_str().expect("detail");
    assert!(detail.contains(class_words), "{detail:?}");
    assert!(
        detail.contains(&format!("retry after {retry_after} s")),
        "{detail:?}"
    );
}

/// A metric's value in the node's `/metrics` text (the sample line must exist).
async fn metric(api: &Api, sample: &str) -> u64 {
    let text = api
        .http
        .get(format!("{}/metrics", api.base))
        .send()
        .await
        .expect("the node answers")
        .text()
        .await
        .expect("text");
    text.lines()
        .find_map(|line| line.strip_prefix(sample)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("{sample} is not in /metrics:\n{text}"))
        .parse()
        .expect("an integer")
}

fn limited(class: &str) -> String {
    format!("agritrace_http_rate_limited_total{{class=\"{class}\"}}")
}

/// A token in the right format that no one was issued.
const FORGED: &str = "agt_0123456789abcdef_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_client_gets_429_while_other_clients_are_served() {
    let (_dir, node, api) = node_with(RateLimitConfig {
        public: Budget::new(1, 3),
        log: Budget::new(1, 3),
        read: Budget::new(1, 3),
        write: Budget::new(1, 2),
        failed_auth: Budget::new(1, 3),
        ..RateLimitConfig::default()
    })
    .await;
    // The operator's bootstrap from the node's own host is not limited.
    let coop = api.bootstrap("coop", &["admin", "producer"]).await;
    let (admin, producer) = (coop["admin"].as_str(), coop["producer"].as_str());

    // Public paths, per address: the fourth request from one address is refused, another
    // address is served, and the log's class is a budget of its own.
    for _ in 0..3 {
        let answer = get(&api, "/.well-known/gs1resolver", "203.0.113.1", None).await;
        assert_eq!(answer.status(), StatusCode::OK);
    }
    assert_limited(
        get(&api, "/.well-known/gs1resolver", "203.0.113.1", None).await,
        "public paths",
    )
    .await;
    let other = get(&api, "/.well-known/gs1resolver", "203.0.113.2", None).await;
    assert_eq!(other.status(), StatusCode::OK);
    let log = get(&api, "/log/checkpoint", "203.0.113.1", None).await;
    assert_ne!(log.status(), StatusCode::TOO_MANY_REQUESTS);

    // An IPv6 client is one /64: stepping through its own addresses buys nothing.
    for n in 1..=3 {
        let answer = get(&api, "/openapi.json", &format!("2001:db8:7:1::{n}"), None).await;
        assert_eq!(answer.status(), StatusCode::OK);
    }
    assert_limited(
        get(&api, "/openapi.json", "2001:db8:7:1:ffff::9", None).await,
        "public paths",
    )
    .await;
    let next_block = get(&api, "/openapi.json", "2001:db8:7:2::1", None).await;
    assert_eq!(next_block.status(), StatusCode::OK);

    // Authenticated reads, per caller: the producer's budget follows it to another address;
    // the admin, from the producer's first address, is served.
    for _ in 0..3 {
        let answer = get(&api, "/v1/whoami", "203.0.113.1", Some(producer)).await;
        assert_eq!(answer.status(), StatusCode::OK);
    }
    assert_limited(
        get(&api, "/v1/whoami", "198.51.100.9", Some(producer)).await,
        "too many reads",
    )
    .await;
    let admin_read = get(&api, "/v1/whoami", "203.0.113.1", Some(admin)).await;
    assert_eq!(admin_read.status(), StatusCode::OK);

    // Without a token, API routes are charged to the address.
    for _ in 0..3 {
        let answer = get(&api, "/v1/whoami", "203.0.113.7", None).await;
        assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
    }
    assert_limited(
        get(&api, "/v1/whoami", "203.0.113.7", None).await,
        "too many reads",
    )
    .await;

    // Writes: a refused write writes nothing.
    let location = |id: &str| json!({ "id": id, "kind": "farm", "name": "Farm", "country": "CN" });
    let bearer = format!("Bearer {producer}");
    for id in ["farm-1", "farm-2"] {
        let answer = send(
            &api,
            Method::POST,
            "/v1/orgs/coop/locations",
            "203.0.113.1",
            Some(&bearer),
            Some(location(id)),
        )
        .await;
        assert_eq!(answer.status(), StatusCode::CREATED);
    }
    let refused = send(
        &api,
        Method::POST,
        "/v1/orgs/coop/locations",
        "203.0.113.1",
        Some(&bearer),
        Some(location("farm-3")),
    )
    .await;
    assert_limited(refused, "too many writes").await;
    let stored = get(
        &api,
        "/v1/orgs/coop/locations/farm-3",
        "203.0.113.1",
        Some(admin),
    )
    .await;
    assert_eq!(stored.status(), StatusCode::NOT_FOUND);

    // Probes and the scrape are never limited.
    for path in ["/healthz", "/metrics"] {
        for _ in 0..10 {
            let answer = get(&api, path, "203.0.113.1", None).await;
            assert_eq!(answer.status(), StatusCode::OK, "{path}");
        }
    }

    // Every 429 was counted, by class.
    assert_eq!(metric(&api, &limited("public")).await, 2);
    assert_eq!(metric(&api, &limited("read")).await, 2);
    assert_eq!(metric(&api, &limited("write")).await, 1);
    assert_eq!(metric(&api, &limited("log")).await, 0);
    assert_eq!(metric(&api, &limited("failed_auth")).await, 0);
    let keys = metric(&api, "agritrace_http_rate_limit_keys{class=\"public\"}").await;
    assert_eq!(keys, 4, "203.0.113.1, .2 and two IPv6 /64s");
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_tokens_from_one_address_are_refused_after_the_configured_number() {
    let (_dir, node, api) = node_with(RateLimitConfig {
        failed_auth: Budget::new(1, 3),
        ..RateLimitConfig::default()
    })
    .await;
    let coop = api.bootstrap("coop", &["producer"]).await;
    let producer = coop["producer"].as_str();
    let guesser = "203.0.113.66";

    // Valid tokens cost the failure budget nothing.
    for _ in 0..10 {
        let answer = get(&api, "/v1/whoami", guesser, Some(producer)).await;
        assert_eq!(answer.status(), StatusCode::OK);
    }
    // Three failures of any kind are answered as usual: a forged token, a malformed one, a
    // header that is not `Bearer`.
    let forged = format!("Bearer {FORGED}");
    for authorization in [forged.as_str(), "Bearer nope", "Basic YTpi"] {
        let answer = send(
            &api,
            Method::GET,
            "/v1/whoami",
            guesser,
            Some(authorization),
            None,
        )
        .await;
        assert_eq!(answer.status(), StatusCode::UNAUTHORIZED, "{authorization}");
    }
    // The fourth guess is refused unseen, and so is a valid token from that address: a 200
    // would tell a guesser its guess was right.
    assert_limited(
        get(&api, "/v1/whoami", guesser, Some(FORGED)).await,
        "failed authentication",
    )
    .await;
    assert_limited(
        get(&api, "/v1/whoami", guesser, Some(producer)).await,
        "failed authentication",
    )
    .await;
    let write = send(
        &api,
        Method::POST,
        "/v1/orgs/coop/locations",
        guesser,
        Some(&format!("Bearer {producer}")),
        Some(json!({ "id": "farm-1", "kind": "farm", "name": "Farm", "country": "CN" })),
    )
    .await;
    assert_limited(write, "failed authentication").await;

    // The same token from another address is served, and a wrong one there is a plain 401.
    let elsewhere = get(&api, "/v1/whoami", "203.0.113.67", Some(producer)).await;
    assert_eq!(elsewhere.status(), StatusCode::OK);
    let wrong_elsewhere = get(&api, "/v1/whoami", "203.0.113.67", Some(FORGED)).await;
    assert_eq!(wrong_elsewhere.status(), StatusCode::UNAUTHORIZED);

    // The guesser's address is still served what needs no token.
    let public = get(&api, "/.well-known/gs1resolver", guesser, None).await;
    assert_eq!(public.status(), StatusCode::OK);
    let anonymous = get(&api, "/v1/whoami", guesser, None).await;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);

    // The refused write wrote nothing.
    let stored = get(
        &api,
        "/v1/orgs/coop/locations/farm-1",
        "203.0.113.67",
        Some(producer),
    )
    .await;
    assert_eq!(stored.status(), StatusCode::NOT_FOUND);
    assert_eq!(metric(&api, &limited("failed_auth")).await, 3);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_class_set_to_zero_is_not_limited() {
    // Everything off but writes, at one a minute: the disabled classes count nothing.
    let (_dir, node, api) = node_with(RateLimitConfig {
        write: Budget::new(1, 1),
        ..RateLimitConfig::off()
    })
    .await;
    for _ in 0..50 {
        let public = get(&api, "/.well-known/gs1resolver", "203.0.113.1", None).await;
        assert_eq!(public.status(), StatusCode::OK);
        let wrong = get(&api, "/v1/whoami", "203.0.113.1", Some(FORGED)).await;
        assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
        let log = get(&api, "/log/checkpoint", "203.0.113.1", None).await;
        assert_ne!(log.status(), StatusCode::TOO_MANY_REQUESTS);
    }
    let revoke = || {
        send(
            &api,
            Method::DELETE,
            "/v1/tokens/0102030405060708",
            "203.0.113.1",
            None,
            None,
        )
    };
    assert_ne!(revoke().await.status(), StatusCode::TOO_MANY_REQUESTS);
    let second = revoke().await;
    assert_limited(second, "too many writes").await;
    for class in ["public", "log", "read", "failed_auth"] {
        assert_eq!(metric(&api, &limited(class)).await, 0, "{class}");
        let keys = format!("agritrace_http_rate_limit_keys{{class=\"{class}\"}}");
        assert_eq!(metric(&api, &keys).await, 0, "{class}");
    }
    assert_eq!(metric(&api, &limited("write")).await, 1);
    node.shutdown().await;
}
