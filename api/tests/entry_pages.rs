//! The data-entry pages over real HTTP on a whole node: every form is served to anyone (it
//! holds no data; its script calls the API with the signed-in caller's token), in English or
//! Chinese, with the pages' Content Security Policy, a label, hint and error line for each
//! field, a submit button that starts disabled, and the forms' script; the document form
//! carries the node's document size limit. The forms' behaviour in a browser is tested in
//! `tests/browser/entry.test.mjs`.

mod common;

use reqwest::{StatusCode, header};

const FORMS: [(&str, &str, &[&str]); 6] = [
    (
        "/entry/plots/new",
        "plot",
        &["plot-id", "plot-name", "country", "coords", "area"],
    ),
    (
        "/entry/harvest",
        "harvest",
        &[
            "gtin", "lot", "plot", "quantity", "date", "time", "offset", "location",
        ],
    ),
    (
        "/entry/packing",
        "packing",
        &[
            "lot-choice",
            "quantity",
            "date",
            "time",
            "offset",
            "location",
        ],
    ),
    (
        "/entry/shipments/new",
        "shipment",
        &[
            "shipment-id",
            "consignee-name",
            "consignee-country",
            "origin-country",
            "destination-country",
            "declared-to",
            "containers",
            "departure-place",
            "departure-time",
        ],
    ),
    (
        "/entry/documents/new",
        "document",
        &["file", "type", "number", "attach"],
    ),
    (
        "/entry/devices/new",
        "device",
        &["device-id", "public-key", "device-name"],
    ),
];

async fn page(
    api: &common::Api,
    path: &str,
    lang: &str,
) -> (StatusCode, header::HeaderMap, String) {
    let response = api
        .http
        .get(format!("{}{path}", api.base))
        .header(header::ACCEPT_LANGUAGE, lang)
        .send()
        .await
        .expect("the node answers");
    let status = response.status();
    let headers = response.headers().clone();
    (status, headers, response.text().await.expect("a body"))
}

#[tokio::test]
async fn every_form_labels_its_fields_and_names_their_hints_and_errors() {
    let (_dir, _node, api) = common::start().await;
    for (path, form, fields) in FORMS {
        let (status, headers, html) = page(&api, path, "en").await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
        assert_eq!(headers[header::CACHE_CONTROL], "no-store");
        assert!(
            headers[header::CONTENT_SECURITY_POLICY]
                .to_str()
                .expect("ascii")
                .contains("script-src 'self'"),
            "{path}"
        );
        assert!(html.contains("<html lang=\"en\">"), "{path}");
        assert!(
            html.contains("data-signed-in=\"true\""),
            "{path}: signed-in only"
        );
        assert!(
            html.contains(&format!(
                "<form id=\"entry-form\" data-form=\"{form}\" novalidate>"
            )),
            "{path}"
        );
        assert!(
            html.contains("<button type=\"submit\" id=\"submit\" disabled"),
            "{path}"
        );
        assert!(
            html.contains("<script src=\"/pages/entry.js\"></script>"),
            "{path}"
        );
        for id in fields {
            assert!(
                html.contains(&format!("<label for=\"{id}\">")),
                "{path}: {id}"
            );
            assert!(
                html.contains(&format!("id=\"{id}-error\" aria-live=\"polite\"")),
                "{path}: {id}"
            );
            assert!(
                html.contains(&format!("{id}-error\">")),
                "{path}: {id}'s control names its error line"
            );
        }
    }
}

#[tokio::test]
async fn the_pages_speak_chinese_by_accept_language_and_english_by_the_switch() {
    let (_dir, _node, api) = common::start().await;
    let (status, headers, html) = page(&api, "/entry/harvest", "zh-CN,zh;q=0.9").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_LANGUAGE], "zh-Hans");
    assert!(html.contains("记录采收"));
    assert!(html.contains("批号"));
    let (_, headers, html) = page(&api, "/entry/harvest?lang=en", "zh-CN").await;
    assert_eq!(headers[header::CONTENT_LANGUAGE], "en");
    assert!(html.contains("Lot number"));
    let (status, _, html) = page(&api, "/entry", "en").await;
    assert_eq!(status, StatusCode::OK);
    for link in [
        "/entry/plots/new?lang=en",
        "/entry/harvest?lang=en",
        "/entry/packing?lang=en",
        "/entry/shipments/new?lang=en",
        "/entry/documents/new?lang=en",
        "/entry/devices/new?lang=en",
    ] {
        assert!(html.contains(&format!("href=\"{link}\"")), "{link}");
    }
    for list in ["plots", "lots", "shipments", "devices"] {
        assert!(html.contains(&format!("<section id=\"{list}\"")), "{list}");
    }
}

#[tokio::test]
async fn the_document_form_carries_the_nodes_size_limit_and_every_type() {
    let (_dir, _node, api) = common::start().await;
    let (_, _, html) = page(&api, "/entry/documents/new", "en").await;
    let limit = api::documents::DOCUMENT_BYTES_DEFAULT;
    assert!(html.contains(&format!("data-document-bytes-max=\"{limit}\"")));
    for t in api::documents::DocumentType::ALL {
        assert!(
            html.contains(&format!("<option value=\"{}\">", t.as_str())),
            "{t:?}"
        );
    }
}

#[tokio::test]
async fn the_forms_script_is_served_as_javascript() {
    let (_dir, _node, api) = common::start().await;
    let response = api
        .http
        .get(format!("{}/pages/entry.js", api.base))
        .send()
        .await
        .expect("the node answers");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "text/javascript; charset=utf-8"
    );
    let script = response.text().await.expect("a body");
    assert!(script.contains("window.agritrace"));
    assert!(
        !script.contains("innerHTML"),
        "data is never parsed as HTML"
    );
}
