//! A shipment's sensor summary (issue "Traceability API": "the readings of devices that
//! travelled with a shipment can be summarised into `sensorElementList`"):
//! `POST /v1/orgs/{org}/shipments/{id}/sensor-summary` captures, through the ordinary EPCIS
//! capture path ([`super::Epcis::capture`], so it is validated, hashed, anchored as a
//! `TraceEvent` and answered 202 with its capture job), one `ObjectEvent`:
//!
//! - `action` `OBSERVE`, `bizStep` `sensor_reporting`;
//! - `quantityList`: the shipment's lots as LGTIN classes, written as GS1 Digital Links
//!   (`https://id.gs1.org/01/{gtin14}/10/{lot}`, which EPCIS 2.0 takes wherever an EPC URI
//!   goes: the node does not know GS1 Company Prefix lengths, which the `urn:epc:class:lgtin`
//!   form needs). No `quantity`: the shipment records which lots it carries, not how much of
//!   each; `epcList`: its SSCCs, when it has some;
//! - `sensorElementList`: the committed readings of the shipment's devices from its recorded
//!   departure to its recorded arrival ([`super::sensor::sensor_summary`]);
//! - `eventTime`: the arrival, or, for a shipment still in transit, the moment of the request,
//!   which is also where its window ends; the event says which in `agritrace:windowEnd`
//!   (`arrival` or `capture`) and names the shipment in `agritrace:shipment`.
//!
//! Who may: the event is the caller's organisation's, like any capture, and needs
//! `CaptureEvents`. The exporter's own members may; so may a **carrier** (a member with the
//! carrier role) of an organisation the exporter shares its records with, since the carrier is
//! who holds the goods and their loggers in transit. Nobody else: a customs authority the
//! shipment is declared to reads it but does not report on its cold chain. A caller that may
//! not act for the shipment gets 403 before the shipment is looked up, so it learns nothing
//! about which shipments exist.
//!
//! The devices are the shipment's, checked again now against the exporter: each must still be
//! the exporter's or a partner's that shares with it (403 otherwise), since sharing can end
//! after the shipment was created.
//!
//! Answers: 202 and the job; 404 for no such shipment; 409 while the shipment has not departed,
//! when it has no devices, no lots and no SSCCs, a journey longer than a summary spans, more
//! readings than a summary reads, or no committed reading of its devices in the window; 409
//! also for a second summary of an arrived shipment with nothing new (it is the same event).
//! Bad input (the path, an unknown body field, a `readPoint` that is not a URI) gets 400.
//! Nothing is written on any refusal.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::Response;
use gs1::{DigitalLink, PrimaryKey};
use protocol::DeviceId;
use serde::Deserialize;
use serde_json::{Value, json};

use super::sensor::{self, WINDOW_MS_MAX};
use super::{EPCIS_CONTEXT, device_readable, now_text, start_capture, summarise};
use crate::access::{Caller, require, visibility};
use crate::auth::{Action, OrgId, Role};
use crate::http::{ApiError, AppState, json_body};
use crate::trade::{LotRef, Shipment};

/// What the request may add to the event.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SummaryOptions {
    /// `readPoint.id`, a URI (validated by capture).
    #[serde(default, rename = "readPoint")]
    read_point: Option<String>,
    /// `bizLocation.id`, a URI (validated by capture).
    #[serde(default, rename = "bizLocation")]
    biz_location: Option<String>,
}

fn conflict(detail: String) -> ApiError {
    ApiError::Conflict(detail)
}

/// The organisation the caller captures for, once it may report on `exporter`'s shipments:
/// its own organisation's members with `CaptureEvents`, or a carrier of a partner the exporter
/// shares its records with.
fn reporter(state: &AppState, caller: &Caller, exporter: &OrgId) -> Result<OrgId, ApiError> {
    require(caller, Action::CaptureEvents, None)?;
    let principal = caller.0.as_ref().ok_or(ApiError::Unauthorized(
        "this needs an API token (Authorization: Bearer <token>)",
    ))?;
    if principal.org == *exporter {
        return Ok(principal.org.clone());
    }
    if !principal.has(Role::Carrier) {
        return Err(ApiError::Forbidden(format!(
            "only {exporter}'s members, or carriers it shares its records with, report on its \
             shipments' sensors"
        )));
    }
    if !visibility(state, caller)?.sees(exporter, &[]) {
        return Err(ApiError::Forbidden(format!(
            "{exporter} does not share its records with {}",
            principal.org
        )));
    }
    Ok(principal.org.clone())
}

/// A lot as an LGTIN class in GS1 Digital Link form.
fn lot_class(lot: &LotRef) -> String {
    DigitalLink::new(PrimaryKey::Gtin {
        gtin: lot.gtin,
        cpv: None,
        lot: Some(lot.lot.clone()),
        serial: None,
    })
    .to_canonical_uri()
}

/// The window a shipment's summary covers, `from_ms..to_ms`, and what ends it.
///
/// # Errors
/// 409 before departure, or for a journey longer than [`WINDOW_MS_MAX`] or of no length.
fn window(shipment: &Shipment, now_ms: u64) -> Result<(u64, u64, &'static str), ApiError> {
    let id = &shipment.id;
    let Some(departure) = &shipment.departure else {
        return Err(conflict(format!(
            "shipment {id} has not departed; its sensor summary runs from its departure"
        )));
    };
    let (to_ms, end) = match &shipment.arrival {
        Some(arrival) => (arrival.time_ms, "arrival"),
        None => (now_ms, "capture"),
    };
    if to_ms <= departure.time_ms {
        return Err(conflict(format!(
            "shipment {id}: no time has passed between its departure ({}) and its {end} \
             ({to_ms}); there is nothing to summarise yet",
            departure.time_ms
        )));
    }
    if to_ms - departure.time_ms > WINDOW_MS_MAX {
        return Err(conflict(format!(
            "shipment {id}: its journey spans more than the {} days one summary covers; \
             summarise it in parts with POST /epcis/sensor-summaries",
            WINDOW_MS_MAX / 86_400_000
        )));
    }
    Ok((departure.time_ms, to_ms, end))
}

/// The event, with the summary in it.
fn event(
    shipment: &Shipment,
    summary: Value,
    to_ms: u64,
    end: &str,
    options: SummaryOptions,
) -> Result<Value, ApiError> {
    let event_time = i64::try_from(to_ms)
        .ok()
        .and_then(|unix_ms| gs1::epcis::canon::Timestamp { unix_ms }.to_utc_millis_string())
        .ok_or_else(|| ApiError::Internal(format!("event time {to_ms} out of range")))?;
    let mut event = json!({
        "type": "ObjectEvent",
        "eventTime": event_time,
        "eventTimeZoneOffset": "+00:00",
        "action": "OBSERVE",
        "bizStep": "sensor_reporting",
        "quantityList": shipment
            .lots
            .iter()
            .map(|lot| json!({ "epcClass": lot_class(lot) }))
            .collect::<Vec<_>>(),
        "sensorElementList": summary,
        "agritrace:shipment": format!("urn:agritrace:shipment:{}:{}", shipment.org, shipment.id),
        "agritrace:windowEnd": end,
    });
    if !shipment.ssccs.is_empty() {
        event["epcList"] = shipment
            .ssccs
            .iter()
            .map(|sscc| Value::String(DigitalLink::new(PrimaryKey::Sscc(*sscc)).to_canonical_uri()))
            .collect();
    }
    if let Some(id) = options.read_point {
        event["readPoint"] = json!({ "id": id });
    }
    if let Some(id) = options.biz_location {
        event["bizLocation"] = json!({ "id": id });
    }
    Ok(event)
}

/// `POST /v1/orgs/{org}/shipments/{id}/sensor-summary`.
pub(super) async fn capture_summary(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, id)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let exporter: OrgId = org
        .parse()
        .map_err(|e| ApiError::BadRequest(format!("organisation: {e}")))?;
    let id: OrgId = id
        .parse()
        .map_err(|e| ApiError::BadRequest(format!("shipment id: {e}")))?;
    let options: SummaryOptions = json_body(&body)?;
    let reporter = reporter(&state, &caller, &exporter)?;
    let shipment = state
        .trade
        .shipment(&exporter, &id)?
        .ok_or_else(|| ApiError::NotFound(format!("{exporter} has no shipment {id}")))?;
    let (from_ms, to_ms, end) = window(&shipment, state.clock.now_ms())?;
    if shipment.devices.is_empty() {
        return Err(conflict(format!(
            "shipment {id} has no devices travelling with it; there are no readings to summarise"
        )));
    }
    if shipment.lots.is_empty() && shipment.ssccs.is_empty() {
        return Err(conflict(format!(
            "shipment {id} names no lots and no SSCCs; the event would be about nothing"
        )));
    }
    let devices = shipment
        .devices
        .iter()
        .map(|d| {
            d.parse::<DeviceId>()
                .map_err(|e| ApiError::Internal(format!("a stored device id {d:?}: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if devices.len() > sensor::DEVICES_MAX {
        return Err(conflict(format!(
            "shipment {id} has more than the {} devices one summary takes",
            sensor::DEVICES_MAX
        )));
    }
    let mut scope = vec![exporter.clone()];
    scope.extend(
        state
            .partners
            .shared_with(&exporter)
            .map_err(|e| ApiError::Internal(format!("{e:#?}")))?,
    );
    for &device in &devices {
        device_readable(&state, device, |owner| scope.contains(owner), &exporter)?;
    }
    let summary = summarise(&state, devices, from_ms, to_ms, ApiError::Conflict).await?;
    if summary.as_array().is_none_or(Vec::is_empty) {
        return Err(conflict(format!(
            "shipment {id}: none of its devices has committed readings between its departure \
             and its {end}"
        )));
    }
    let document = json!({
        "@context": [EPCIS_CONTEXT, { "agritrace": sensor::EXTENSION_NAMESPACE }],
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": now_text(&state),
        "epcisBody": { "eventList": [event(&shipment, summary, to_ms, end, options)?] },
    });
    start_capture(&state, &reporter, document).await
}

#[cfg(test)]
mod tests {
    use gs1::Gtin;

    use super::*;
    use crate::trade::{Consignee, Stop};

    fn stop(time_ms: u64) -> Stop {
        Stop {
            location: "Mohan".to_owned(),
            gln: None,
            time_ms,
        }
    }

    fn shipment(departure: Option<u64>, arrival: Option<u64>) -> Shipment {
        Shipment {
            org: "yunnan-export".parse().expect("org"),
            id: "s-1".parse().expect("id"),
            consignee: Consignee {
                name: "Bangkok Fresh Co.".to_owned(),
                country: "TH".to_owned(),
                org: None,
            },
            origin_country: "CN".to_owned(),
            destination_country: "TH".to_owned(),
            declared_to: Vec::new(),
            containers: Vec::new(),
            ssccs: Vec::new(),
            lots: vec![LotRef {
                gtin: "06901234567892".parse::<Gtin>().expect("gtin"),
                lot: gs1::Lot::new("MH/2026-1").expect("lot"),
            }],
            devices: Vec::new(),
            planned_departure: stop(0),
            departure: departure.map(stop),
            arrival: arrival.map(stop),
            created_ms: 0,
        }
    }

    fn check(shipment: &Shipment, now_ms: u64, expected: Result<(u64, u64, &str), &str>) {
        match (window(shipment, now_ms), expected) {
            (Ok(got), Ok(want)) => assert_eq!(got, want),
            (Err(ApiError::Conflict(detail)), Err(part)) => {
                assert!(detail.contains(part), "{detail:?} mentions {part:?}");
            }
            (got, want) => panic!("{got:?}, expected {want:?}"),
        }
    }

    #[test]
    fn the_window_runs_from_departure_to_arrival_or_to_now() {
        check(&shipment(None, None), 5_000, Err("has not departed"));
        check(
            &shipment(Some(1_000), None),
            5_000,
            Ok((1_000, 5_000, "capture")),
        );
        check(
            &shipment(Some(1_000), Some(3_000)),
            5_000,
            Ok((1_000, 3_000, "arrival")),
        );
        check(
            &shipment(Some(1_000), Some(1_000)),
            5_000,
            Err("no time has passed"),
        );
        // A departure recorded a little ahead of the node's clock (allowed skew).
        check(
            &shipment(Some(6_000), None),
            5_000,
            Err("no time has passed"),
        );
        check(
            &shipment(Some(1_000), None),
            1_000 + WINDOW_MS_MAX + 1,
            Err("more than"),
        );
    }

    #[test]
    fn lots_become_digital_link_classes_and_the_event_says_where_its_window_ends() {
        let record = shipment(Some(1_000), None);
        let event = event(
            &record,
            json!([]),
            1_790_000_000_000,
            "capture",
            SummaryOptions::default(),
        )
        .expect("event");
        assert_eq!(
            event["quantityList"],
            json!([{ "epcClass": "https://id.gs1.org/01/06901234567892/10/MH%2F2026-1" }])
        );
        // Python: datetime.datetime.utcfromtimestamp(1_790_000_000).
        assert_eq!(event["eventTime"], "2026-09-21T14:13:20.000Z");
        assert_eq!(event["agritrace:windowEnd"], "capture");
        assert_eq!(
            event["agritrace:shipment"],
            "urn:agritrace:shipment:yunnan-export:s-1"
        );
        assert!(event.get("epcList").is_none());
    }
}
