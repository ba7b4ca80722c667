//! Master data over real HTTP: products with GTIN check digits and a storage band, locations
//! with GLNs, plots with EU Deforestation Regulation geolocation. Each refusal names what is
//! wrong and writes nothing; only the organisation's producers, exporters and admins write;
//! another organisation reads nothing, an auditor reads everything.

mod common;

use common::start;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn products_locations_and_plots_are_validated_owned_and_kept() {
    let (_dir, node, api) = start().await;
    let coop = api
        .bootstrap("menghai-coop", &["producer", "customs", "auditor"])
        .await;
    let rival = api.bootstrap("rival", &["admin", "auditor"]).await;
    let producer = Some(coop["producer"].as_str());
    let post = |path: &'static str, body: Value| {
        let api = &api;
        async move { api.call(Method::POST, path, producer, Some(body)).await }
    };

    // Products.
    let mango = json!({
        "gtin": "06901234567892", "name_en": "Mango, Guifei", "name_zh": "贵妃芒",
        "storage_min_c": 10.0, "storage_max_c": 13.0,
    });
    let (status, answer) = post("/v1/orgs/menghai-coop/products", mango.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(answer["storage_min_centi_c"], 1_000);
    let (status, _) = post("/v1/orgs/menghai-coop/products", mango.clone()).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let mut wrong_digit = mango.clone();
    wrong_digit["gtin"] = json!("06901234567893");
    let (status, answer) = post("/v1/orgs/menghai-coop/products", wrong_digit).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        answer["detail"]
            .as_str()
            .is_some_and(|d| d.contains("check digit")),
        "{answer}"
    );
    let mut inverted = mango.clone();
    inverted["gtin"] = json!("06901234567809");
    inverted["storage_min_c"] = json!(14.0);
    let (status, _) = post("/v1/orgs/menghai-coop/products", inverted).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // A GTIN-13 is stored as its GTIN-14 and found under either.
    let (status, answer) = api
        .call(
            Method::GET,
            "/v1/orgs/menghai-coop/products/6901234567892",
            producer,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["gtin"], "06901234567892");

    // Locations.
    let (status, answer) = post(
        "/v1/orgs/menghai-coop/locations",
        json!({ "id": "orchard-7", "kind": "farm", "name": "勐海 7 号果园", "country": "CN" }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let (status, answer) = post(
        "/v1/orgs/menghai-coop/locations",
        json!({ "id": "packhouse", "kind": "packhouse", "name": "Packhouse", "country": "CN", "gln": "6901234000017" }),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "a GLN with a wrong check digit: {answer}"
    );
    let (status, answer) = post(
        "/v1/orgs/menghai-coop/locations",
        json!({ "id": "packhouse", "kind": "packhouse", "name": "Packhouse", "country": "CN", "gln": "6901234000016" }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");

    // Plots: a polygon gets its area computed; a point may describe at most 4 ha.
    let orchard = json!({
        "type": "Polygon",
        "coordinates": [[[100.451234, 21.957801], [100.453999, 21.957812], [100.454000, 21.960004],
                         [100.451201, 21.959990], [100.451234, 21.957801]]],
    });
    let (status, answer) = post(
        "/v1/orgs/menghai-coop/plots",
        json!({ "id": "plot-7a", "name": "7A", "country": "CN", "farm": "orchard-7", "geometry": orchard }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let area = answer["area_ha"].as_f64().expect("an area");
    assert!((6.0..8.0).contains(&area), "{area}");
    let point = json!({ "type": "Point", "coordinates": [100.45, 21.95] });
    for (body, why) in [
        (
            json!({ "id": "plot-big", "name": "Big", "country": "CN", "area_ha": 4.5, "geometry": point }),
            "over 4 ha as a point",
        ),
        (
            json!({ "id": "plot-big", "name": "Big", "country": "CN", "geometry": point }),
            "a point without its area",
        ),
        (
            json!({ "id": "plot-big", "name": "Big", "country": "CN", "farm": "nowhere", "area_ha": 1.0, "geometry": point }),
            "an unknown farm",
        ),
        (
            json!({ "id": "plot-big", "name": "Big", "country": "CN", "geometry": {
            "type": "Polygon", "coordinates": [[[0.0, 0.0], [1.0, 1.0], [1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]] } }),
            "a self-intersecting polygon",
        ),
    ] {
        let (status, answer) = post("/v1/orgs/menghai-coop/plots", body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{why}: {answer}");
    }
    let (status, answer) = post(
        "/v1/orgs/menghai-coop/plots",
        json!({ "id": "plot-small", "name": "Small", "country": "CN", "area_ha": 3.2, "geometry": point }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");

    // Who may write and read.
    let (status, _) = api
        .call(
            Method::POST,
            "/v1/orgs/menghai-coop/products",
            Some(&coop["customs"]),
            Some(mango.clone()),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "customs does not write master data"
    );
    let (status, _) = api
        .call(
            Method::POST,
            "/v1/orgs/menghai-coop/products",
            Some(&rival["admin"]),
            Some(mango.clone()),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "nor does another organisation"
    );
    let (status, _) = api
        .call(
            Method::POST,
            "/v1/orgs/menghai-coop/products",
            None,
            Some(mango),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = api
        .call(
            Method::GET,
            "/v1/orgs/menghai-coop/plots",
            Some(&rival["admin"]),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, answer) = api
        .call(
            Method::GET,
            "/v1/orgs/menghai-coop/plots",
            Some(&rival["auditor"]),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "auditors read everything: {answer}");
    // Only what was accepted was stored.
    let count = |value: &Value, key: &str| value[key].as_array().map_or(0, Vec::len);
    assert_eq!(count(&answer, "plots"), 2);
    let (_, answer) = api
        .call(
            Method::GET,
            "/v1/orgs/menghai-coop/products",
            producer,
            None,
        )
        .await;
    assert_eq!(count(&answer, "products"), 1);
    let (_, answer) = api
        .call(
            Method::GET,
            "/v1/orgs/menghai-coop/locations",
            producer,
            None,
        )
        .await;
    assert_eq!(count(&answer, "locations"), 2);
    let (status, answer) = api
        .call(
            Method::GET,
            "/v1/orgs/menghai-coop/plots/plot-7a",
            Some(&coop["auditor"]),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["geometry"]["coordinates"][0][2][0], json!(100.454));
    node.shutdown().await;
}
