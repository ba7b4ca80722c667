//! The GS1 Digital Link resolver over real HTTP: redirects to the default link and to one link
//! type, the RFC 9264 linkset, HEAD, OPTIONS and CORS, every kind of bad input answered 400
//! with a problem document (and an unknown GTIN 404), compressed links answered exactly as
//! their uncompressed form, QR codes as SVG and PNG, scan counts of serialised codes that
//! survive a restart of the node, and the countries of scans from the operator's IP-to-country
//! table, with client addresses taken from `X-Forwarded-For` of a trusted proxy only.

mod common;

use api::resolver::qr::{Level, Matrix, ModulePx};
use common::{Api, node_on};
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};

const GTIN: &str = "06901234567892";

/// A client that shows redirects instead of following them.
fn no_redirects(api: Api) -> Api {
    Api {
        base: api.base,
        http: Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("a client"),
    }
}

/// An answer: status, headers, body bytes.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

async fn send(api: &Api, method: Method, path: &str, headers: &[(&str, &str)]) -> Answer {
    let mut request = api.http.request(method, format!("{}{path}", api.base));
    for (name, value) in headers {
        request = request.header(*name, HeaderValue::from_str(value).expect("a header"));
    }
    let response = request.send().await.expect("the node answers");
    Answer {
        status: response.status(),
        headers: response.headers().clone(),
        body: response.bytes().await.expect("a body").to_vec(),
    }
}

async fn get(api: &Api, path: &str) -> Answer {
    send(api, Method::GET, path, &[]).await
}

/// A node with organisation `menghai-coop` (producer, auditor) owning the mango product, and
/// `rival` (admin, auditor); returns their tokens.
async fn setup(
    data: std::path::PathBuf,
) -> (
    api::Node,
    Api,
    std::collections::BTreeMap<String, String>,
    std::collections::BTreeMap<String, String>,
) {
    let (node, api) = node_on(data).await;
    let api = no_redirects(api);
    let coop = api
        .bootstrap("menghai-coop", &["producer", "auditor"])
        .await;
    let rival = api.bootstrap("rival", &["admin", "auditor"]).await;
    let mango = json!({
        "gtin": GTIN, "name_en": "Mango, Guifei", "name_zh": "贵妃芒",
        "storage_min_c": 10.0, "storage_max_c": 13.0,
    });
    let (status, answer) = api
        .call(
            Method::POST,
            "/v1/orgs/menghai-coop/products",
            Some(&coop["producer"]),
            Some(mango.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    // A GTIN belongs to one organisation on the node.
    let (status, answer) = api
        .call(
            Method::POST,
            "/v1/orgs/rival/products",
            Some(&rival["admin"]),
            Some(mango),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    (node, api, coop, rival)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_redirect_to_their_links_and_answer_linksets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (node, api, _, _) = setup(dir.path().join("data")).await;
    let base = api.base.clone();

    // No linkType: 307 to the default link, with the linkset's address in `Link`.
    let answer = get(&api, &format!("/01/{GTIN}/10/LOT-2026-07?17=261231")).await;
    assert_eq!(answer.status, StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(
        answer.header("location"),
        format!("{base}/v1/public/01/{GTIN}/10/LOT-2026-07?17=261231")
    );
    assert_eq!(
        answer.header("link"),
        format!(
            "<{base}/01/{GTIN}/10/LOT-2026-07?linkType=linkset>; rel=\"linkset\"; \
             type=\"application/linkset+json\""
        )
    );
    assert_eq!(answer.header("access-control-allow-origin"), "*");
    // A GTIN-13 is the same key, written as its GTIN-14.
    let answer = get(&api, "/01/6901234567892").await;
    assert_eq!(answer.status, StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(
        answer.header("location"),
        format!("{base}/v1/public/01/{GTIN}")
    );

    // The default link: a public summary in both languages.
    let answer = get(
        &api,
        &format!("/v1/public/01/{GTIN}/10/LOT-2026-07?17=261231"),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.header("access-control-allow-origin"), "*");
    let summary = answer.json();
    assert_eq!(summary["product"]["name"]["zh"], "贵妃芒");
    assert_eq!(summary["product"]["storage_c"]["min"], 10.0);
    assert_eq!(summary["owner"]["name"], "menghai-coop 组织");
    assert_eq!(summary["owner"]["country"], "CN");
    assert_eq!(summary["lot"], "LOT-2026-07");
    assert_eq!(summary["attributes"]["17"], "261231");
    assert_eq!(
        summary["links"]["traceability"],
        format!("{base}/trace/01/{GTIN}/10/LOT-2026-07")
    );

    // The linkset, three ways.
    let path = format!("/01/{GTIN}/10/LOT-2026-07");
    for answer in [
        get(&api, &format!("{path}?linkType=linkset")).await,
        get(&api, &format!("{path}?linkType=all")).await,
        send(
            &api,
            Method::GET,
            &path,
            &[("accept", "application/linkset+json")],
        )
        .await,
    ] {
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.header("content-type"), "application/linkset+json");
        assert_eq!(answer.header("access-control-allow-origin"), "*");
        let set = answer.json();
        let contexts = set["linkset"].as_array().expect("linkset is an array");
        assert_eq!(contexts.len(), 1);
        let context = &contexts[0];
        assert_eq!(context["anchor"], format!("{base}{path}"));
        for (term, href) in [
            ("defaultLink", format!("{base}/v1/public{path}")),
            ("pip", format!("{base}/v1/public{path}")),
            ("traceability", format!("{base}/trace{path}")),
            (
                "epcis",
                format!(
                    "{base}/epcis/events?MATCH_anyEPC=https%3A%2F%2Fid.gs1.org%2F01%2F{GTIN}%2F10%2FLOT-2026-07"
                ),
            ),
        ] {
            let targets = &context[format!("https://gs1.org/voc/{term}")];
            assert_eq!(targets[0]["href"], href, "{term}");
            assert!(targets[0]["title"].is_string(), "{term}");
            assert!(targets[0]["type"].is_string(), "{term}");
        }
        assert_eq!(
            context["https://gs1.org/voc/defaultLink"][0]["hreflang"],
            json!(["en", "zh"])
        );
    }

    // One link type: 307 to it, or 404 when this node has none.
    let answer = get(&api, &format!("{path}?linkType=gs1:traceability")).await;
    assert_eq!(answer.status, StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(answer.header("location"), format!("{base}/trace{path}"));
    let answer = get(&api, &format!("{path}?linkType=https://gs1.org/voc/epcis")).await;
    assert_eq!(answer.status, StatusCode::TEMPORARY_REDIRECT);
    assert!(
        answer
            .header("location")
            .contains("/epcis/events?MATCH_anyEPC=")
    );
    let answer = get(&api, &format!("{path}?linkType=gs1:certificationInfo")).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert_eq!(answer.header("content-type"), "application/problem+json");
    assert_eq!(answer.header("access-control-allow-origin"), "*");

    // HEAD: the same answers without a body.
    let answer = send(&api, Method::HEAD, &path, &[]).await;
    assert_eq!(answer.status, StatusCode::TEMPORARY_REDIRECT);
    assert!(
        answer
            .header("location")
            .ends_with("/v1/public/01/06901234567892/10/LOT-2026-07")
    );
    assert!(answer.body.is_empty());
    let answer = send(&api, Method::HEAD, &format!("{path}?linkType=linkset"), &[]).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.header("access-control-allow-origin"), "*");
    assert!(answer.body.is_empty());

    // OPTIONS: a CORS preflight.
    let answer = send(
        &api,
        Method::OPTIONS,
        &path,
        &[
            ("origin", "https://shop.example"),
            ("access-control-request-method", "GET"),
        ],
    )
    .await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT);
    assert_eq!(answer.header("access-control-allow-origin"), "*");
    assert_eq!(
        answer.header("access-control-allow-methods"),
        "GET, HEAD, OPTIONS"
    );
    assert!(
        answer
            .header("access-control-allow-headers")
            .contains("Accept")
    );

    // The resolver description file.
    let answer = get(&api, "/.well-known/gs1resolver").await;
    assert_eq!(answer.status, StatusCode::OK);
    let description = answer.json();
    assert_eq!(description["resolverRoot"], base);
    assert_eq!(description["supportedPrimaryKeys"], json!(["01"]));
    assert_eq!(
        description["supportedLinkType"][0]["namespace"],
        "https://gs1.org/voc/"
    );
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_answers_400_naming_the_problem_and_unknown_gtins_404() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (node, api, _, _) = setup(dir.path().join("data")).await;
    for (path, says) in [
        ("/01/06901234567893", "check digit"),
        ("/01/06901234567", "GTIN"),
        (
            "/01/06901234567892/21/S-1/10/LOT-1",
            "must come before AI (21)",
        ),
        ("/01/06901234567892/10/L1/10/L2", "more than once"),
        ("/01/06901234567892/10/LOT%20ONE", "(10)"),
        ("/01/06901234567892/10/%E8%8A%92", "(10)"),
        ("/01/06901234567892/10/LOT%ZZ", "percent-escape"),
        ("/01/06901234567892/10/ABCDEFGHIJKLMNOPQRSTU", "(10)"),
        ("/01/06901234567892/17/261231", "query string"),
        ("/01/06901234567892/99/X", "(99)"),
        ("/01/06901234567892/10", "no value"),
        ("/01/06901234567892?17=261399", "(17)"),
        (
            "/01/06901234567892?01=06901234567892",
            "belongs in the path",
        ),
        ("/01/06901234567892?linkType=pip", "not a GS1 link type"),
        (
            "/01/06901234567892/21/X/01/06901234567892",
            "must start with the primary key",
        ),
        ("/01/gtin/10/LOT-1", "GTIN"),
        ("/qr/01/06901234567892.png?ec=Z", "error correction"),
        ("/qr/01/06901234567892.png?module=99", "module"),
        (
            "/qr/01/06901234567892.svg?base=http://trace.example.cn",
            "https://",
        ),
        (
            "/qr/01/06901234567892.svg?base=https://x.example/path",
            "origin",
        ),
        ("/qr/01/06901234567892.svg?size=4", "unknown parameter"),
        ("/v1/public/01/06901234567893", "check digit"),
    ] {
        let answer = get(&api, path).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{path}");
        assert_eq!(
            answer.header("content-type"),
            "application/problem+json",
            "{path}"
        );
        assert_eq!(answer.header("access-control-allow-origin"), "*", "{path}");
        let detail = answer.json()["detail"].as_str().unwrap_or("").to_owned();
        assert!(detail.contains(says), "{path}: {detail}");
    }
    // A valid GTIN that no organisation registered here.
    for path in [
        "/01/09520123456788",
        "/01/09520123456788/10/LOT-1?linkType=linkset",
        "/v1/public/01/09520123456788",
        "/qr/01/09520123456788.svg",
    ] {
        let answer = get(&api, path).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(answer.header("content-type"), "application/problem+json");
        assert_eq!(answer.header("access-control-allow-origin"), "*", "{path}");
    }
    node.shutdown().await;
}

/// `/01/06901234567892/10/LOT-2026-07` compressed (GS1 Digital Link 1.2 compression, written
/// bit by bit from the format: AI byte 0x01, the GTIN in 47 bits, AI byte 0x10, encoding 3
/// (base64), length 11 in 5 bits, six bits a character, zero padding).
const COMPRESSED: &str = "AQyNo0UVqCDWWcn9tpt19p2";
/// The same with the GTIN's check digit 3 instead of 2.
const COMPRESSED_BAD_CHECK_DIGIT: &str = "AQyNo0UVqiDWWcn9tpt19p2";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_links_resolve_like_their_uncompressed_form() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (node, api, _, _) = setup(dir.path().join("data")).await;
    let plain = format!("/01/{GTIN}/10/LOT-2026-07");
    let link = gs1::DigitalLink::parse_path_and_query(&plain, None).expect("a link");
    assert_eq!(
        link.compressed_path().as_deref(),
        Ok(format!("/{COMPRESSED}").as_str())
    );

    // Redirect and linkset: the same answers, headers and bodies, as the uncompressed path.
    for query in [
        "?17=261231",
        "?linkType=linkset",
        "?linkType=gs1:traceability",
    ] {
        let compressed = get(&api, &format!("/{COMPRESSED}{query}")).await;
        let uncompressed = get(&api, &format!("{plain}{query}")).await;
        assert_eq!(compressed.status, uncompressed.status, "{query}");
        assert!(
            compressed.status == StatusCode::TEMPORARY_REDIRECT
                || compressed.status == StatusCode::OK,
            "{query}: {}",
            compressed.status
        );
        for name in [
            "location",
            "link",
            "content-type",
            "access-control-allow-origin",
        ] {
            assert_eq!(
                compressed.header(name),
                uncompressed.header(name),
                "{query}: {name}"
            );
        }
        assert_eq!(compressed.body, uncompressed.body, "{query}");
    }
    let answer = send(&api, Method::OPTIONS, &format!("/{COMPRESSED}"), &[]).await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT);

    // A wrong check digit after decompression, and a stream that does not decode: 400.
    for (path, says) in [
        (format!("/{COMPRESSED_BAD_CHECK_DIGIT}"), "check digit"),
        // The last character's padding bit set.
        ("/AQyNo0UVqCDWWcn9tpt19p3".to_owned(), "does not decompress"),
        // Cut short inside the lot.
        ("/AQyNo0UVqCDWWcn9".to_owned(), "does not decompress"),
    ] {
        let answer = get(&api, &path).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{path}");
        assert_eq!(answer.header("content-type"), "application/problem+json");
        assert_eq!(answer.header("access-control-allow-origin"), "*", "{path}");
        let detail = answer.json()["detail"].as_str().unwrap_or("").to_owned();
        assert!(detail.contains(says), "{path}: {detail}");
    }
    // A root path element that is not base64url is no link at all.
    let answer = get(&api, "/favicon.ico").await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    // Routes of the node still win over the compressed form.
    assert_eq!(get(&api, "/healthz").await.status, StatusCode::OK);
    node.shutdown().await;
}

/// The PNG's width and height from its IHDR chunk, after checking the signature.
fn png_size(png: &[u8]) -> (u32, u32) {
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "the PNG signature");
    assert_eq!(&png[12..16], b"IHDR");
    let word = |at: usize| u32::from_be_bytes([png[at], png[at + 1], png[at + 2], png[at + 3]]);
    assert_eq!(&png[png.len() - 8..png.len() - 4], b"IEND");
    (word(16), word(20))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qr_codes_carry_the_canonical_digital_link_as_svg_and_png() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (node, api, _, _) = setup(dir.path().join("data")).await;
    let base = api.base.clone();
    // The encoded URI is the canonical Digital Link: GTIN-14, data attributes kept.
    let uri = format!("{base}/01/{GTIN}/10/LOT-1/21/SN%2F0001?17=261231");
    let path = "/qr/01/6901234567892/10/LOT-1/21/SN%2F0001";

    let svg = get(&api, &format!("{path}.svg?17=261231")).await;
    assert_eq!(svg.status, StatusCode::OK);
    assert_eq!(svg.header("content-type"), "image/svg+xml");
    assert_eq!(svg.header("access-control-allow-origin"), "*");
    assert_eq!(svg.header("x-digital-link"), uri);
    let text = String::from_utf8(svg.body.clone()).expect("SVG is text");
    assert!(
        text.starts_with("<?xml") && text.contains("<svg xmlns=\"http://www.w3.org/2000/svg\"")
    );
    assert!(text.trim_end().ends_with("</svg>"));
    // The same modules as the encoder gives for that URI, by a second path.
    let matrix = Matrix::encode(&uri, Level::DEFAULT).expect("fits");
    assert_eq!(text, matrix.to_svg(ModulePx::DEFAULT));

    let png = get(&api, &format!("{path}.png?17=261231")).await;
    assert_eq!(png.status, StatusCode::OK);
    assert_eq!(png.header("content-type"), "image/png");
    let side = u32::try_from(matrix.width() + 8).expect("small") * ModulePx::DEFAULT.get();
    assert_eq!(png_size(&png.body), (side, side));
    assert_eq!(png.body, matrix.to_png(ModulePx::DEFAULT).expect("png"));

    // The format by `Accept`; level and module size as parameters; another https origin.
    let answer = send(
        &api,
        Method::GET,
        &format!("/qr/01/{GTIN}?ec=H&module=3&base=https://trace.example.cn"),
        &[("accept", "image/png")],
    )
    .await;
    assert_eq!(
        answer.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    assert_eq!(answer.header("content-type"), "image/png");
    let other = format!("https://trace.example.cn/01/{GTIN}");
    assert_eq!(answer.header("x-digital-link"), other);
    let high = Matrix::encode(&other, Level::parse("H").expect("H")).expect("fits");
    let side = u32::try_from(high.width() + 8).expect("small") * 3;
    assert_eq!(png_size(&answer.body), (side, side));
    let answer = send(
        &api,
        Method::GET,
        &format!("/qr/01/{GTIN}"),
        &[("accept", "image/svg+xml")],
    )
    .await;
    assert_eq!(answer.header("content-type"), "image/svg+xml");
    node.shutdown().await;
}

async fn scans_of(api: &Api, token: Option<&str>, path: &str) -> (StatusCode, Value) {
    api.call(Method::GET, &format!("/v1/scans{path}"), token, None)
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scans_of_serialised_codes_are_counted_and_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let (node, api, coop, rival) = setup(data.clone()).await;
    let item = format!("/01/{GTIN}/10/LOT-1/21/SN-7");
    let key = format!("/01/{GTIN}/21/SN-7");

    // A serial no event names is not counted: made-up serials write nothing.
    let _ = get(&api, &format!("/01/{GTIN}/21/SN-UNKNOWN")).await;
    // The item is commissioned: an event names it.
    let (status, job) = api
        .call(
            Method::POST,
            "/epcis/capture",
            Some(&coop["producer"]),
            Some(json!([{
                "type": "ObjectEvent", "action": "ADD", "bizStep": "commissioning",
                "eventTime": "2026-06-01T08:00:00Z", "eventTimeZoneOffset": "+08:00",
                "epcList": [format!("https://id.gs1.org/01/{GTIN}/21/SN-7")],
            }])),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    let location = format!("/epcis/capture/{}", job["captureID"].as_str().expect("id"));
    let mut polls = 0;
    while api
        .call(Method::GET, &location, Some(&coop["producer"]), None)
        .await
        .1["running"]
        != false
    {
        polls += 1;
        assert!(polls < 2_400, "the capture never finished");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    for (method, language) in [
        (Method::GET, "zh-CN,zh;q=0.9"),
        (Method::GET, "en-GB"),
        (Method::GET, "zh"),
        (Method::HEAD, "fr"),
        (Method::OPTIONS, "fr"),
    ] {
        let answer = send(&api, method, &item, &[("accept-language", language)]).await;
        assert!(answer.status.is_redirection() || answer.status.is_success());
    }
    // A linkset request is a scan too; a non-serialised key and a bad one are not.
    let _ = get(&api, &format!("/01/{GTIN}/21/SN-7?linkType=linkset")).await;
    let _ = get(&api, &format!("/01/{GTIN}/10/LOT-1")).await;
    let _ = get(&api, &format!("/01/{GTIN}/21/SN-7?17=999999")).await;

    let (status, _) = scans_of(&api, None, &key).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = scans_of(&api, Some(&rival["admin"]), &key).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "another organisation");
    let (status, answer) = scans_of(&api, Some(&coop["producer"]), &format!("/01/{GTIN}")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    let (status, _) = scans_of(&api, Some(&coop["producer"]), "/01/09520123456788/21/X").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, before) = scans_of(&api, Some(&coop["producer"]), &key).await;
    assert_eq!(status, StatusCode::OK, "{before}");
    assert_eq!(before["count"], 4, "{before}");
    assert_eq!(before["languages"], json!(["en", "zh"]));
    assert_eq!(before["address_prefixes"], json!(["127.0.0.0/24"]));
    assert_eq!(before["suspicious"], false);
    assert!(
        before["rule"]
            .as_str()
            .is_some_and(|r| r.contains("5 distinct"))
    );
    let (status, unknown) = scans_of(
        &api,
        Some(&coop["producer"]),
        &format!("/01/{GTIN}/21/SN-UNKNOWN"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        unknown["count"], 0,
        "nothing counted for a made-up serial: {unknown}"
    );
    assert!(before["first_ms"].as_u64() <= before["last_ms"].as_u64());
    let (status, audited) = scans_of(&api, Some(&rival["auditor"]), &key).await;
    assert_eq!(status, StatusCode::OK, "auditors read everything");
    assert_eq!(audited["count"], 4);

    // A restart keeps them: the last scans are written on shutdown.
    node.shutdown().await;
    let (node, api) = node_on(data.clone()).await;
    let api = no_redirects(api);
    let (status, after) = scans_of(&api, Some(&coop["producer"]), &key).await;
    assert_eq!(status, StatusCode::OK, "{after}");
    for field in [
        "count",
        "first_ms",
        "last_ms",
        "languages",
        "address_prefixes",
    ] {
        assert_eq!(after[field], before[field], "{field}");
    }

    // Scanned often from one place: counted, not flagged.
    for _ in 0..47 {
        let answer = get(&api, &item).await;
        assert_eq!(answer.status, StatusCode::TEMPORARY_REDIRECT);
    }
    let (_, answer) = scans_of(&api, Some(&coop["producer"]), &key).await;
    assert_eq!(
        (answer["count"].clone(), answer["suspicious"].clone()),
        (json!(51), json!(false))
    );
    // Scanned from six places (loopback addresses in six /24 prefixes): flagged.
    for i in 1..=5_u8 {
        let client = Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .local_address(std::net::IpAddr::from([127, 0, i, 1]))
            .build()
            .expect("a client");
        let status = client
            .get(format!("{}{item}", api.base))
            .send()
            .await
            .expect("an answer")
            .status();
        assert_eq!(status, StatusCode::TEMPORARY_REDIRECT);
    }
    let (_, answer) = scans_of(&api, Some(&coop["producer"]), &key).await;
    assert_eq!(
        answer["address_prefixes"].as_array().map(Vec::len),
        Some(6),
        "{answer}"
    );
    assert_eq!(answer["suspicious"], true, "{answer}");
    assert_eq!(answer["reasons"], json!(["prefixes", "count"]), "{answer}");
    assert_eq!(answer["country_table"], false);
    assert_eq!(answer["countries"], json!([]), "no table, no countries");
    node.shutdown().await;
}

/// The test's IP-to-country table: documentation address blocks (RFC 5737, RFC 3849).
const COUNTRY_TABLE: &str = "# first_address,last_address,country\n\
    203.0.113.0,203.0.113.255,CN\n\
    \"198.51.100.0\",\"198.51.100.255\",\"TH\",\"Thailand\"\n\
    192.0.2.0,192.0.2.255,NL\n\
    2001:db8::,2001:db8:ffff:ffff:ffff:ffff:ffff:ffff,JP\n";

fn country_config(data: std::path::PathBuf, table: std::path::PathBuf) -> api::NodeConfig {
    api::NodeConfig {
        data_dir: data,
        http_listen: "127.0.0.1:0".parse().expect("addr"),
        broker: api::BrokerConfig {
            port: 0,
            ..api::BrokerConfig::default()
        },
        ip_country_csv: Some(table),
        trusted_proxies: vec!["127.0.0.1".parse().expect("ip")],
        ..api::NodeConfig::default()
    }
}

async fn country_node(config: api::NodeConfig) -> (api::Node, Api) {
    let node = api::Node::start(config).await.expect("the node starts");
    let api = no_redirects(Api {
        base: format!("http://{}", node.http_addr()),
        http: Client::new(),
    });
    (node, api)
}

/// A scan of `path` through the proxy on 127.0.0.1 for `forwarded` (`None`: straight from
/// 127.0.0.1), or straight from another loopback address `from`.
async fn scan(api: &Api, path: &str, forwarded: Option<&str>, from: Option<[u8; 4]>) {
    let client = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .local_address(std::net::IpAddr::from(from.unwrap_or([127, 0, 0, 1])))
        .build()
        .expect("a client");
    let mut request = client.get(format!("{}{path}", api.base));
    if let Some(forwarded) = forwarded {
        request = request.header("x-forwarded-for", forwarded);
    }
    let status = request.send().await.expect("an answer").status();
    assert_eq!(status, StatusCode::TEMPORARY_REDIRECT, "{path}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scans_are_counted_by_country_behind_a_trusted_proxy_and_the_page_names_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let table = dir.path().join("ip-country.csv");
    std::fs::write(&table, COUNTRY_TABLE).expect("the table");

    // A malformed table stops the node, naming the line.
    let bad = dir.path().join("bad.csv");
    std::fs::write(
        &bad,
        "203.0.113.0,203.0.113.255,CN\n198.51.100.0,198.51.100.x,TH\n",
    )
    .expect("the bad table");
    let error = api::Node::start(country_config(dir.path().join("unused"), bad))
        .await
        .expect_err("a bad table is refused");
    assert!(error.to_string().contains("line 2"), "{error}");

    let data = dir.path().join("data");
    let (node, api) = country_node(country_config(data.clone(), table.clone())).await;
    let coop = api.bootstrap("coop", &["producer"]).await;
    let producer = coop["producer"].as_str();
    for (path, body) in [
        (
            "/v1/orgs/coop/products",
            json!({ "gtin": GTIN, "name_en": "Mango", "name_zh": "芒果",
                    "storage_min_c": 10.0, "storage_max_c": 13.0 }),
        ),
        (
            "/v1/orgs/coop/plots",
            json!({ "id": "plot-1", "name": "Hillside", "country": "CN",
                    "area_ha": 1.5, "geometry": { "type": "Point", "coordinates": [100.45, 21.95] } }),
        ),
        (
            "/v1/orgs/coop/lots",
            json!({ "gtin": GTIN, "lot": "L1", "plot": "plot-1", "harvest_date": "2026-06-01" }),
        ),
    ] {
        let (status, answer) = api
            .call(Method::POST, path, Some(producer), Some(body))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{path}: {answer}");
    }
    // Two serialised packs of the lot are commissioned (only those are counted).
    let (status, job) = api
        .call(
            Method::POST,
            "/epcis/capture",
            Some(producer),
            Some(json!([{
                "type": "ObjectEvent", "action": "ADD", "bizStep": "commissioning",
                "eventTime": "2026-06-01T08:00:00Z", "eventTimeZoneOffset": "+08:00",
                "epcList": [
                    format!("https://id.gs1.org/01/{GTIN}/21/SN-1"),
                    format!("https://id.gs1.org/01/{GTIN}/21/SN-2"),
                ],
            }])),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    let location = format!("/epcis/capture/{}", job["captureID"].as_str().expect("id"));
    let mut polls = 0;
    while api
        .call(Method::GET, &location, Some(producer), None)
        .await
        .1["running"]
        != false
    {
        polls += 1;
        assert!(polls < 2_400, "the capture never finished");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    let one = format!("/01/{GTIN}/10/L1/21/SN-1");
    let one_key = format!("/01/{GTIN}/21/SN-1");
    // Through the proxy from China, twice; a client that is no trusted proxy cannot choose
    // its address: its header is ignored and it counts as itself (no country in the table).
    scan(&api, &one, Some("203.0.113.7"), None).await;
    scan(&api, &one, Some("203.0.113.8"), None).await;
    scan(&api, &one, Some("198.51.100.1"), Some([127, 0, 0, 2])).await;
    let (status, answer) = scans_of(&api, Some(producer), &one_key).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["count"], 3);
    assert_eq!(answer["country_table"], true);
    assert_eq!(answer["countries"], json!(["CN"]), "{answer}");
    assert_eq!(
        answer["address_prefixes"],
        json!(["127.0.0.0/24", "203.0.113.0/24"]),
        "only prefixes are kept, never an address"
    );
    assert_eq!(
        (answer["suspicious"].clone(), answer["reasons"].clone()),
        (json!(false), json!([]))
    );
    assert!(
        answer["rule"]
            .as_str()
            .is_some_and(|r| r.contains("more than one country") && r.contains("50 times"))
    );

    // Thailand (the left-most hop is the client's own claim and is not believed: the
    // right-most hop the proxy did not add itself is), then Japan over IPv6.
    scan(&api, &one, Some("192.0.2.1, 198.51.100.9"), None).await;
    scan(&api, &one, Some("2001:db8:1::5"), None).await;
    let (_, answer) = scans_of(&api, Some(producer), &one_key).await;
    assert_eq!(answer["countries"], json!(["CN", "JP", "TH"]), "{answer}");
    assert_eq!(answer["countries_capped"], false);
    assert_eq!(
        (answer["suspicious"].clone(), answer["reasons"].clone()),
        (json!(true), json!(["countries"]))
    );

    // The consumer page names the countries, in English and in Chinese.
    for (lang, sentence) in [
        ("en", "Scanned in 3 countries: CN, JP, TH."),
        ("zh", "已在3个国家或地区被扫描：CN、JP、TH。"),
    ] {
        let answer = send(
            &api,
            Method::GET,
            &format!("{one}?lang={lang}"),
            &[("accept", "text/html")],
        )
        .await;
        assert_eq!(answer.status, StatusCode::OK);
        let html = String::from_utf8(answer.body).expect("utf-8");
        assert!(html.contains("id=\"scan-warning\""), "{html}");
        assert!(html.contains(sentence), "{lang}: {html}");
    }

    // Unusually often: 50 scans from two networks in one country are not; the 51st is.
    let two = format!("/01/{GTIN}/10/L1/21/SN-2");
    let two_key = format!("/01/{GTIN}/21/SN-2");
    scan(&api, &two, None, None).await;
    for _ in 0..49 {
        scan(&api, &two, Some("203.0.113.20"), None).await;
    }
    let (_, answer) = scans_of(&api, Some(producer), &two_key).await;
    assert_eq!(
        (answer["count"].clone(), answer["reasons"].clone()),
        (json!(50), json!([]))
    );
    scan(&api, &two, Some("203.0.113.20"), None).await;
    let (_, answer) = scans_of(&api, Some(producer), &two_key).await;
    assert_eq!(answer["reasons"], json!(["count"]), "{answer}");
    // The page's own request is a scan too (the 52nd), counted before the page is drawn.
    let answer = send(
        &api,
        Method::GET,
        &format!("{two}?lang=en"),
        &[("accept", "text/html")],
    )
    .await;
    let html = String::from_utf8(answer.body).expect("utf-8");
    assert!(html.contains("Scanned 52 times from 2 networks."), "{html}");

    // The countries survive a restart.
    node.shutdown().await;
    let (node, api) = country_node(country_config(data, table)).await;
    let (_, after) = scans_of(&api, Some(producer), &one_key).await;
    assert_eq!(after["countries"], json!(["CN", "JP", "TH"]), "{after}");
    assert_eq!(after["reasons"], json!(["countries"]));
    node.shutdown().await;
}
