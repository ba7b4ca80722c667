//! Master data over real HTTP: products with GTIN check digits and a storage band, locations
//! with GLNs, plots with EU Deforestation Regulation geolocation. Each refusal names what is
//! wrong and writes nothing; only the organisation's producers, exporters and admins write;
//! another organisation reads nothing until the owner shares its records with it, an auditor
//! reads everything; lists come a page at a time, with the paging rules of every other list.

mod common;

use common::{Api, start};
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

/// A GTIN-14 `069012345678` + two digits of `n` + its check digit.
fn gtin(n: u8) -> String {
    let body = format!("0690123456{n:03}");
    let check = gs1::check_digit(&body).expect("digits");
    format!("{body}{check}")
}

/// Every page of `path` at `limit`, followed to its end: the ids (`field`) in order.
async fn all_pages(
    api: &Api,
    path: &str,
    token: &str,
    list: &str,
    field: &str,
    limit: usize,
) -> Vec<String> {
    let mut seen = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let query = match &next {
            Some(cursor) => format!("{path}?limit={limit}&next={cursor}"),
            None => format!("{path}?limit={limit}"),
        };
        let (status, answer) = api.call(Method::GET, &query, Some(token), None).await;
        assert_eq!(status, StatusCode::OK, "{query}: {answer}");
        let page = answer[list]
            .as_array()
            .unwrap_or_else(|| panic!("{answer}"));
        assert!(page.len() <= limit, "{answer}");
        seen.extend(
            page.iter()
                .map(|r| r[field].as_str().expect("an id").to_owned()),
        );
        match answer["next"].as_str() {
            Some(cursor) => next = Some(cursor.to_owned()),
            None => return seen,
        }
        assert!(seen.len() <= 100, "the pages never end: {seen:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn master_data_lists_page_and_partners_read_what_is_shared_with_them() {
    let (_dir, node, api) = start().await;
    let coop = api.bootstrap("menghai-coop", &["admin", "producer"]).await;
    let packer = api.bootstrap("packer", &["admin", "exporter"]).await;
    let (producer, exporter) = (coop["producer"].as_str(), packer["exporter"].as_str());
    let post = |path: String, token: &str, body: Value| {
        let api = &api;
        let token = token.to_owned();
        async move {
            api.call(Method::POST, &path, Some(&token), Some(body))
                .await
        }
    };
    let point = json!({ "type": "Point", "coordinates": [100.45, 21.95] });
    let mut gtins = Vec::new();
    for n in 1..=5_u8 {
        let (status, answer) = post(
            "/v1/orgs/menghai-coop/products".to_owned(),
            producer,
            json!({ "gtin": gtin(n), "name_en": format!("Mango {n}"), "name_zh": "芒果",
                    "storage_min_c": 10.0, "storage_max_c": 13.0 }),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
        gtins.push(gtin(n));
        let (status, answer) = post(
            "/v1/orgs/menghai-coop/locations".to_owned(),
            producer,
            json!({ "id": format!("orchard-{n}"), "kind": "farm", "name": format!("Orchard {n}"), "country": "CN" }),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
        let (status, answer) = post(
            "/v1/orgs/menghai-coop/plots".to_owned(),
            producer,
            json!({ "id": format!("plot-{n}"), "name": format!("Plot {n}"), "country": "CN",
                    "farm": format!("orchard-{n}"), "area_ha": 1.5, "geometry": point }),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
    }
    // The packer has a product of its own; its list never shows in the coop's.
    let (status, answer) = post(
        "/v1/orgs/packer/products".to_owned(),
        exporter,
        json!({ "gtin": gtin(9), "name_en": "Lychee", "name_zh": "荔枝",
                "storage_min_c": 1.0, "storage_max_c": 5.0 }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");

    // Pages of every size walk every record once, in id order.
    let ids = |prefix: &str| -> Vec<String> { (1..=5).map(|n| format!("{prefix}{n}")).collect() };
    for limit in [1, 2, 3, 5, 100] {
        for (list, field, expected) in [
            ("products", "gtin", gtins.clone()),
            ("locations", "id", ids("orchard-")),
            ("plots", "id", ids("plot-")),
        ] {
            let path = format!("/v1/orgs/menghai-coop/{list}");
            assert_eq!(
                all_pages(&api, &path, producer, list, field, limit).await,
                expected,
                "{list}, limit {limit}"
            );
        }
    }
    let (status, answer) = api
        .call(
            Method::GET,
            "/v1/orgs/menghai-coop/plots",
            Some(producer),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        answer["plots"].as_array().map(Vec::len),
        Some(5),
        "the default page holds them all"
    );
    assert!(answer["next"].is_null(), "{answer}");

    // Bad paging gets the same 400 as every other list (the lots', for one).
    for bad in [
        "?limit=0",
        "?limit=1001",
        "?limit=two",
        "?next=zz",
        "?next=6",
        "?colour=red",
    ] {
        let (status, lots) = api
            .call(
                Method::GET,
                &format!("/v1/orgs/menghai-coop/lots{bad}"),
                Some(producer),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "lots{bad}: {lots}");
        for list in ["products", "locations", "plots"] {
            let path = format!("/v1/orgs/menghai-coop/{list}{bad}");
            let (status, answer) = api.call(Method::GET, &path, Some(producer), None).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {answer}");
            assert_eq!(answer["detail"], lots["detail"], "{path}");
        }
    }

    // Before sharing the packer reads nothing of the coop's.
    let reads = [
        "/v1/orgs/menghai-coop/products".to_owned(),
        format!("/v1/orgs/menghai-coop/products/{}", gtins[0]),
        "/v1/orgs/menghai-coop/locations".to_owned(),
        "/v1/orgs/menghai-coop/locations/orchard-1".to_owned(),
        "/v1/orgs/menghai-coop/plots?limit=2".to_owned(),
        "/v1/orgs/menghai-coop/plots/plot-1".to_owned(),
    ];
    for path in &reads {
        let (status, answer) = api.call(Method::GET, path, Some(exporter), None).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {answer}");
    }
    let (status, answer) = post(
        "/v1/orgs/menghai-coop/partners".to_owned(),
        &coop["admin"],
        json!({ "partner": "packer" }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    // After: it reads them all (and pages through them), ...
    for path in &reads {
        let (status, answer) = api.call(Method::GET, path, Some(exporter), None).await;
        assert_eq!(status, StatusCode::OK, "{path}: {answer}");
    }
    assert_eq!(
        all_pages(
            &api,
            "/v1/orgs/menghai-coop/locations",
            exporter,
            "locations",
            "id",
            2
        )
        .await,
        ids("orchard-")
    );
    let (status, answer) = api
        .call(
            Method::GET,
            "/v1/orgs/menghai-coop/plots/plot-9",
            Some(exporter),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
    // ... but writes nothing of the coop's, ...
    let (status, answer) = post(
        "/v1/orgs/menghai-coop/locations".to_owned(),
        exporter,
        json!({ "id": "orchard-9", "kind": "farm", "name": "Not theirs", "country": "CN" }),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    assert_eq!(
        all_pages(
            &api,
            "/v1/orgs/menghai-coop/locations",
            producer,
            "locations",
            "id",
            10
        )
        .await,
        ids("orchard-"),
        "nothing written"
    );
    // ... and sharing is one way.
    let (status, _) = api
        .call(
            Method::GET,
            "/v1/orgs/packer/products",
            Some(producer),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Un-sharing takes it back.
    let (status, answer) = api
        .call(
            Method::DELETE,
            "/v1/orgs/menghai-coop/partners/packer",
            Some(&coop["admin"]),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    for path in &reads {
        let (status, answer) = api.call(Method::GET, path, Some(exporter), None).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {answer}");
    }
    node.shutdown().await;
}
