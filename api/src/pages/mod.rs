//! Pages people use (issue "Pages people use", item 1): the consumer's page a QR code opens,
//! and the narrowly public data it is drawn from.
//!
//! | route | action | answers |
//! |---|---|---|
//! | `GET /01/{gtin}/10/{lot}[/21/{serial}]` with `Accept: text/html` (no `linkType`) | `ReadPublic` | the consumer page, server-rendered HTML (see [`crate::resolver`] for every other client) |
//! | `GET /v1/public/lots/{gtin}/{lot}/journey` | `ReadPublic` | the lot's public journey: product, plot, events with their inclusion proofs, cold chain, checkpoints, log key |
//! | `GET /pages/verify.js` | — | the page's one script: checks a proof in the browser |
//! | `GET /login`, `GET /pages/app.js` | — | the signed-in pages' sign-in page and shared script: see [`shell`] |
//! | `GET /entry`, `/entry/plots/new`, `/entry/harvest`, `/entry/packing`, `/entry/shipments/new`, `/entry/documents/new`, `/entry/devices/new`, `/pages/entry.js` | — | data entry for producers and exporters: see [`entry`] |
//! | `GET /console`, `GET /console/shipments/{org}/{id}`, `GET /pages/console.js`, `GET /v1/orgs/{org}/shipments/{id}/temperatures` | — (pages), `ReadRecords` (temperatures) | the customs console and the chart data it draws: see [`console`] |
//!
//! What the public sees (the access rule of `/journey`): the trace of the lot (both ways) over
//! the records of the lot's **owner** only — never a partner's or another organisation's, even
//! when they share with the owner, since sharing with a partner is not publishing. Of those
//! records only: the product's names and storage band; the plot's name, country, area and
//! geometry; each event's type, action, business step, time, location id, log index and
//! inclusion proof (no quantities, no ILMD, no business transactions, no salts); each
//! shipment's departure and arrival places and times and its cold chain (summary,
//! excursions, and at most [`CHART_POINTS_MAX`] temperature points). Certificates come from
//! [`crate::documents::public_certificates`] (type, issuer, status, signature check).
//!
//! The page is under 100 KB: HTML with inline CSS, the plot and the cold chain as inline SVG,
//! and one same-origin script ([`VERIFY_JS`]) that fetches `/journey` and `/v1/log/key`,
//! recomputes one event's RFC 9162 inclusion path with WebCrypto SHA-256 and checks the
//! checkpoint's Ed25519 note signature with WebCrypto where the browser has it.

pub mod console;
pub mod entry;
mod render;
pub mod shell;

use std::sync::{Mutex, PoisonError};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::get;
use gs1::{DigitalLink, EpcKey, Gtin};
use serde_json::{Value, json};

use crate::access::{Caller, require};
use crate::auth::{Action, OrgId};
use crate::http::{ApiError, AppState, json_status};
use crate::master::Product;
use crate::provenance::{NodeSource, attach_proofs};
use crate::trace::{Direction, Root, Scope, trace};

pub use render::{Lang, escape};

/// Most temperature points of one custody window sent to the chart (the readings are thinned
/// evenly past this).
pub const CHART_POINTS_MAX: usize = 400;
/// Most readings of one device read for the chart.
const CHART_READINGS_READ_MAX: usize = 20_000;
/// Most events a journey lists.
pub const JOURNEY_EVENTS_MAX: usize = 200;

/// The page's script.
pub const VERIFY_JS: &str = include_str!("verify.js");

/// The routes of this module (the page itself is answered by the resolver's routes).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/public/lots/{gtin}/{lot}/journey", get(journey_route))
        .route(
            "/pages/verify.js",
            get(|| async { shell::script(VERIFY_JS) }),
        )
        .merge(shell::routes())
        .merge(entry::routes())
        .merge(console::routes())
}

fn internal(error: impl std::fmt::Debug) -> ApiError {
    ApiError::Internal(format!("{error:#?}"))
}

/// Whether a resolver request asks for the page: no `linkType`, and an `Accept` header naming
/// `text/html` or `application/xhtml+xml` with a non-zero quality (a browser).
#[must_use]
pub fn wants_page(link: &DigitalLink, headers: &HeaderMap) -> bool {
    if link.link_type().is_some() || link.lot().is_none() {
        return false;
    }
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    accept.split(',').any(|range| {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or_default().to_ascii_lowercase();
        let zero = parts.any(|p| {
            p.strip_prefix("q=")
                .and_then(|q| q.parse::<f32>().ok())
                .is_some_and(|q| q <= 0.0)
        });
        (media == "text/html" || media == "application/xhtml+xml") && !zero
    })
}

/// Records of one organisation only (the public journey's scope).
struct OwnerOnly<'a>(&'a OrgId);

impl Scope for OwnerOnly<'_> {
    fn sees(&self, owner: &OrgId, _: &[OrgId]) -> bool {
        owner == self.0
    }
}

/// The last segment of a CBV URI (`urn:epcglobal:cbv:bizstep:shipping` → `shipping`).
fn term(value: &Value) -> Option<String> {
    let text = value.as_str()?;
    Some(text.rsplit([':', '/']).next().unwrap_or(text).to_owned())
}

/// Temperature points of a custody window: `[time_ms, centi_c]`, thinned to at most
/// [`CHART_POINTS_MAX`].
fn chart_points(
    state: &AppState,
    devices: &[String],
    from_ms: u64,
    to_ms: u64,
) -> Result<Vec<[i64; 2]>, ApiError> {
    let mut points = Vec::new();
    for device in devices {
        let Ok(device) = device.parse::<protocol::DeviceId>() else {
            continue;
        };
        let (readings, _) = ingest::query::readings_between(
            state.sequencer.storage(),
            device,
            from_ms,
            to_ms,
            CHART_READINGS_READ_MAX,
        )
        .map_err(internal)?;
        points.extend(readings.iter().map(|(_, r)| {
            [
                i64::try_from(r.device_time_ms).unwrap_or(i64::MAX),
                i64::from(r.temperature_centi_c),
            ]
        }));
    }
    points.sort_unstable();
    if points.len() > CHART_POINTS_MAX {
        let step = points.len().div_ceil(CHART_POINTS_MAX);
        points = points.into_iter().step_by(step).collect();
    }
    Ok(points)
}

/// The public journey of a lot (see the module documentation for what it holds).
///
/// # Errors
/// 404 for a lot nobody recorded; 500 if storage fails.
pub async fn journey(state: &AppState, gtin: Gtin, lot: &gs1::Lot) -> Result<Value, ApiError> {
    let record = state
        .trade
        .lot_by_key(&gtin, lot.as_str())?
        .ok_or_else(|| {
            ApiError::NotFound(format!("no lot {} of GTIN {}", lot.as_str(), gtin.digits()))
        })?;
    let product = state.master.product_by_gtin(gtin)?;
    let plot = state.master.plot(&record.org, &record.plot)?;
    let owner = record.org.clone();
    let root = Root::Object(EpcKey::Lgtin {
        gtin,
        lot: lot.clone(),
    });
    let worker = state.clone();
    let (graph, read) = tokio::task::spawn_blocking(move || {
        let source = NodeSource {
            state: &worker,
            read: Mutex::default(),
        };
        let graph = trace(
            &source,
            &OwnerOnly(&owner),
            &root,
            Direction::Both,
            worker.clock.now_ms(),
        )?;
        let read = source
            .read
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
        Ok::<_, ApiError>((graph, read))
    })
    .await
    .map_err(internal)??;
    let mut events = graph.events;
    events.truncate(JOURNEY_EVENTS_MAX);
    let checkpoints = attach_proofs(state, &mut events, &read).await?;
    let events: Vec<Value> = events.iter().map(public_event).collect();
    let mut custody = Vec::new();
    for window in &graph.custody {
        let chain = &window.cold_chain;
        let points = chart_points(state, &window.devices, window.from_ms, window.to_ms)?;
        custody.push(json!({
            "from_location": window.from_location,
            "to_location": window.to_location,
            "from_ms": window.from_ms,
            "to_ms": window.to_ms,
            "arrived": window.arrived,
            "band_centi_c": chain.band.map(|b| [b.min_centi_c, b.max_centi_c]),
            "readings": chain.readings,
            "min_centi_c": chain.min_centi_c,
            "max_centi_c": chain.max_centi_c,
            "outside_ms": chain.outside_ms,
            "excursions": chain.excursions.iter().map(|e| json!({
                "side": e.side,
                "start_ms": e.start_ms,
                "end_ms": e.end_ms,
                "peak_centi_c": e.peak_centi_c,
                "open": e.open,
            })).collect::<Vec<_>>(),
            "points": points,
        }));
    }
    Ok(json!({
        "gtin": gtin.digits(),
        "lot": lot.as_str(),
        "harvest_date": record.harvest_date,
        "product": product.as_deref().map(product_json),
        "plot": plot.map(|p| json!({
            "name": p.name,
            "country": p.country,
            "area_ha": p.area_ha,
            "geometry": p.geometry,
        })),
        "events": events,
        "custody": custody,
        "checkpoints": checkpoints
            .into_iter()
            .map(|(size, note)| json!({ "tree_size": size, "checkpoint": note }))
            .collect::<Vec<_>>(),
        "log_key": state.verifier_key.as_ref(),
        "truncated": graph.truncated,
    }))
}

fn product_json(product: &Product) -> Value {
    json!({
        "name": { "en": product.name_en, "zh": product.name_zh },
        "band_centi_c": [product.storage_min_centi_c, product.storage_max_centi_c],
    })
}

/// The public fields of one trace event (as [`crate::trace::Trace`] lists them, proofs
/// attached).
fn public_event(event: &Value) -> Value {
    let inner = &event["event"];
    let location = inner["bizLocation"]["id"]
        .as_str()
        .or_else(|| inner["readPoint"]["id"].as_str());
    json!({
        "type": inner["type"],
        "action": inner["action"],
        "biz_step": term(&inner["bizStep"]),
        "event_time": inner["eventTime"],
        "location": location,
        "log_index": event["log_index"],
        "proof": event["proof"].as_object().map(|p| json!({
            "entry_leaf_hash": p.get("entry_leaf_hash"),
            "leaf_index": p.get("leaf_index"),
            "tree_size": p.get("tree_size"),
            "path": p.get("path"),
        })),
    })
}

fn parse_lot(gtin: &str, lot: &str) -> Result<(Gtin, gs1::Lot), ApiError> {
    let gtin: Gtin = gtin
        .parse()
        .map_err(|e| ApiError::BadRequest(format!("gtin: {e}")))?;
    let lot = gs1::Lot::new(lot).map_err(|e| ApiError::BadRequest(format!("lot: {e}")))?;
    Ok((gtin, lot))
}

async fn journey_route(
    State(state): State<AppState>,
    caller: Caller,
    Path((gtin, lot)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    require(&caller, Action::ReadPublic, None)?;
    let (gtin, lot) = parse_lot(&gtin, &lot)?;
    let body = journey(&state, gtin, &lot).await?;
    let mut response = json_status(StatusCode::OK, &body);
    response.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    Ok(response)
}

/// The consumer page of `link` (a lot, perhaps a serial of it): 200 HTML in the language
/// asked for (`?lang=zh|en`, else `Accept-Language`).
///
/// # Errors
/// 404 for a lot nobody recorded; 500 if storage fails.
pub async fn consumer_page(
    state: &AppState,
    link: &DigitalLink,
    product: &Product,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let lot = link
        .lot()
        .ok_or_else(|| ApiError::BadRequest("the consumer page is for a lot: /10/{lot}".into()))?;
    let gtin = product.gtin;
    let lang = Lang::choose(
        link.param("lang"),
        headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok()),
    );
    let journey = journey(state, gtin, lot).await?;
    let certificates = crate::documents::public_certificates(state, gtin, lot).await?;
    let scans = match link.serial() {
        Some(serial) => Some(
            state
                .resolver
                .scans()
                .read(state.sequencer.storage(), gtin, serial)
                .await
                .map_err(internal)?,
        ),
        None => None,
    };
    let owner = state.directory.org(&product.org).map_err(internal)?;
    let page = render::Page {
        lang,
        path: link.path(),
        gtin: gtin.digits(),
        lot: lot.as_str(),
        serial: link.serial().map(gs1::Serial::as_str),
        owner: owner.map(|o| (o.name, o.country)),
        journey: &journey,
        certificates: &certificates,
        suspicious: scans.as_ref().and_then(|s| s.warning()),
        scans: scans.as_ref().map(|s| s.record.count),
    };
    let html = render::page(&page);
    // The signed-in pages' headers (language, no caching, the same-origin-only CSP), and
    // `Vary: Accept` too: the same URL answers API clients with a redirect.
    let mut response = shell::respond(lang, html);
    response.headers_mut().insert(
        header::VARY,
        HeaderValue::from_static("Accept, Accept-Language"),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_browser_asking_for_a_lot_gets_the_page() {
        let check = |uri: &str, accept: Option<&str>, expected: bool| {
            let link = DigitalLink::parse(uri).expect("a link");
            let mut headers = HeaderMap::new();
            if let Some(accept) = accept {
                headers.insert(
                    header::ACCEPT,
                    HeaderValue::from_str(accept).expect("ascii"),
                );
            }
            assert_eq!(wants_page(&link, &headers), expected, "{uri} {accept:?}");
        };
        let lot = "https://r/01/06901234567892/10/L1";
        let browser = Some("text/html,application/xhtml+xml,*/*;q=0.8");
        check(lot, browser, true);
        check(lot, Some("application/xhtml+xml"), true);
        check(lot, Some("TEXT/HTML; q=0.5"), true);
        check(lot, Some("text/html;q=0, */*"), false);
        check(lot, Some("application/json"), false);
        check(lot, Some("*/*"), false);
        check(lot, None, false);
        check(&format!("{lot}?linkType=linkset"), browser, false);
        check(&format!("{lot}/21/S1"), browser, true);
        check("https://r/01/06901234567892", browser, false);
    }
}
