//! EPCIS 2.0 capture and query over HTTP (DESIGN.md, data flow step 5), after the standard's
//! REST binding (EPCIS 2.0 §12 and its OpenAPI description): capture is asynchronous (202
//! with the capture job's `Location`), a duplicate event answers 409, queries answer an
//! `EPCISQueryDocument` paged with `perPage` and `nextPageToken` (`Link: <...>; rel="next"`).
//! Every event keeps its GS1 canonical event hash and is anchored in the log as a `TraceEvent`
//! entry carrying `SHA-256(salt ‖ hash digest)`; the salt stays in the event's record and is
//! handed, with the proof, to whoever may read the event.
//!
//! | route | action | answers |
//! |---|---|---|
//! | `POST /epcis/capture` | `CaptureEvents` (own organisation) | 202, `Location: /epcis/capture/{captureID}`, the job; 400 naming the JSON path; 409 for a duplicate; 413 over [`CAPTURE_EVENTS_MAX`] events or 8 MiB |
//! | `GET /epcis/capture` | `ReadRecords` | the caller's organisation's capture jobs (`perPage`, `nextPageToken`) |
//! | `GET /epcis/capture/{captureID}` | `ReadRecords` | the job: `running`, `success`, `errors`, each event's id, hash, status and log index |
//! | `GET /epcis/events` | `ReadRecords`, filtered by visibility | `EPCISQueryDocument`: see [`query`] for the parameters |
//! | `GET /epcis/events/{eventID}` | `ReadRecords`, visibility | the event (its hash also in `Agritrace-Event-Hash`) |
//! | `GET /epcis/events/{eventID}/proof` | `ReadRecords`, visibility | hash, salt, commitment, `TraceEvent` entry, log index, inclusion proof and checkpoint once published |
//! | `POST /epcis/sensor-summaries` | `CaptureEvents`, and the readings of every device (`crate::http::may_read_readings`) | 202 as a capture: an `ObjectEvent` (`OBSERVE`, `sensor_reporting`) whose `sensorElementList` summarises devices' readings ([`sensor`]) |
//!
//! `{eventID}` is the client's `eventID`, the event hash `ni:///sha-256;…?ver=CBV2.0`, or its
//! 64 hex digits (percent-encode it in the path). Responses carry `GS1-EPCIS-Version` and
//! `GS1-CBV-Version`; capture answers carry `GS1-EPCIS-Capture-Limit`.
//!
//! Modules: [`store`] (records, indexes, `events_for_epc`, `event`, proofs), [`capture`]
//! (validation, duplicates, capture jobs), [`query`] (the simple event query), [`sensor`]
//! (`sensor_summary`).

pub mod capture;
pub mod query;
pub mod sensor;
pub mod store;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::{get, post};
use gs1::epcis::DOCUMENT_BYTES_MAX;
use ledger::sequencer::ServeProofError;
use protocol::DeviceId;
use serde::Deserialize;
use serde_json::{Map, Value, json};

pub use capture::{CAPTURE_EVENTS_MAX, CaptureError, CaptureJob, Epcis};
pub use sensor::sensor_summary;
pub use store::{EventCursor, EventProof, EventStore, StoreError, StoredEvent};

use crate::access::{Caller, require, visibility};
use crate::auth::{Action, OrgId};
use crate::http::{ApiError, AppState, hex, json_body, json_status};
use query::EventQuery;

/// The EPCIS 2.0 JSON-LD context.
pub const EPCIS_CONTEXT: &str = "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld";
/// Capture jobs per page by default, and at most.
const JOBS_PER_PAGE: (usize, usize) = (30, 1_000);

/// The routes of this module, on the node's state.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/epcis/capture", post(capture).get(list_jobs))
        .route("/epcis/capture/{id}", get(job))
        .route("/epcis/events", get(events))
        .route("/epcis/events/{id}", get(event))
        .route("/epcis/events/{id}/proof", get(proof))
        .route("/epcis/sensor-summaries", post(sensor_summary_capture))
}

fn with_gs1_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        HeaderName::from_static("gs1-epcis-version"),
        HeaderValue::from_static("2.0.0"),
    );
    headers.insert(
        HeaderName::from_static("gs1-cbv-version"),
        HeaderValue::from_static("2.0.0"),
    );
    response
}

fn capture_limit(mut response: Response) -> Response {
    response.headers_mut().insert(
        HeaderName::from_static("gs1-epcis-capture-limit"),
        HeaderValue::from(CAPTURE_EVENTS_MAX),
    );
    response.headers_mut().insert(
        HeaderName::from_static("gs1-epcis-capture-file-size-limit"),
        HeaderValue::from(DOCUMENT_BYTES_MAX),
    );
    response
}

/// A 413 problem document (the shared error type has no such status).
fn too_large(detail: &str) -> Response {
    let body = json!({
        "type": "epcisException:CaptureLimitExceededException",
        "title": "Payload Too Large",
        "status": 413,
        "detail": detail,
    });
    let mut response = json_status(StatusCode::PAYLOAD_TOO_LARGE, &body);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    capture_limit(with_gs1_headers(response))
}

fn internal(e: impl std::fmt::Debug) -> ApiError {
    ApiError::Internal(format!("{e:#?}"))
}

/// The caller's organisation, once it may do `action` there.
fn own_org(caller: &Caller, action: Action) -> Result<OrgId, ApiError> {
    let org = caller.0.as_ref().map(|p| p.org.clone());
    require(caller, action, org.as_ref())?;
    org.ok_or(ApiError::Unauthorized(
        "this needs an API token (Authorization: Bearer <token>)",
    ))
}

async fn capture(
    State(state): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> Result<Response, ApiError> {
    let org = own_org(&caller, Action::CaptureEvents)?;
    if body.len() > DOCUMENT_BYTES_MAX {
        return Ok(too_large(&format!(
            "the document is {} bytes, more than the {DOCUMENT_BYTES_MAX} taken",
            body.len()
        )));
    }
    let document: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("$: the document is not JSON: {e}")))?;
    start_capture(&state, &org, document).await
}

/// Runs the capture path and answers as the REST binding does.
async fn start_capture(
    state: &AppState,
    org: &OrgId,
    document: Value,
) -> Result<Response, ApiError> {
    match state.epcis.capture(&state.sequencer, org, document).await {
        Ok(job) => {
            let mut response = json_status(StatusCode::ACCEPTED, &job.to_json());
            let location = format!("/epcis/capture/{}", job.capture_id);
            response.headers_mut().insert(
                header::LOCATION,
                HeaderValue::from_str(&location).map_err(internal)?,
            );
            Ok(capture_limit(with_gs1_headers(response)))
        }
        Err(CaptureError::Invalid(detail)) => Err(ApiError::BadRequest(detail)),
        Err(CaptureError::Duplicate(detail)) => Err(ApiError::Conflict(detail)),
        Err(CaptureError::TooLarge(detail)) => Ok(too_large(&detail)),
        Err(CaptureError::Internal(cause)) => Err(ApiError::Internal(cause)),
    }
}

/// Page parameters of the capture job list.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JobPage {
    #[serde(rename = "perPage")]
    per_page: Option<usize>,
    #[serde(rename = "nextPageToken")]
    next_page_token: Option<String>,
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

async fn list_jobs(
    State(state): State<AppState>,
    caller: Caller,
    Query(page): Query<JobPage>,
) -> Result<Response, ApiError> {
    let org = own_org(&caller, Action::ReadRecords)?;
    let (default, max) = JOBS_PER_PAGE;
    let per_page = page.per_page.unwrap_or(default);
    if !(1..=max).contains(&per_page) {
        return Err(ApiError::BadRequest(format!(
            "perPage: a number from 1 to {max}"
        )));
    }
    let after = page
        .next_page_token
        .map(|t| {
            unhex(&t).ok_or_else(|| ApiError::BadRequest("nextPageToken: not a token".to_owned()))
        })
        .transpose()?;
    let (jobs, next) = state
        .epcis
        .jobs_of(&org, after.as_deref(), per_page)
        .map_err(internal)?;
    let jobs: Vec<Value> = jobs.iter().map(CaptureJob::to_json).collect();
    let mut response = with_gs1_headers(json_status(StatusCode::OK, &json!(jobs)));
    if let Some(next) = next {
        let link = format!(
            "</epcis/capture?perPage={per_page}&nextPageToken={}>; rel=\"next\"",
            hex(&next)
        );
        response.headers_mut().insert(
            header::LINK,
            HeaderValue::from_str(&link).map_err(internal)?,
        );
    }
    Ok(response)
}

async fn job(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    require(&caller, Action::ReadRecords, None)?;
    let seen = visibility(&state, &caller)?;
    let not_found = || ApiError::NotFound(format!("no capture job {id}"));
    let job = state
        .epcis
        .job(&id)
        .map_err(internal)?
        .ok_or_else(not_found)?;
    if !seen.sees(&job.owner, &[]) {
        return Err(not_found());
    }
    Ok(with_gs1_headers(json_status(
        StatusCode::OK,
        &job.to_json(),
    )))
}

/// Percent-encodes a query component (RFC 3986 unreserved characters pass).
fn encode_component(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `@context` of a query document: the EPCIS context and the prefixes of the events on it.
/// A prefix two events declare differently moves into those events' own `@context`.
fn query_context(events: &mut [Value], contexts: &[Map<String, Value>]) -> Value {
    let mut merged = Map::new();
    let mut conflicting = std::collections::BTreeSet::new();
    for context in contexts {
        for (prefix, ns) in context {
            match merged.get(prefix) {
                Some(existing) if existing != ns => {
                    conflicting.insert(prefix.clone());
                }
                _ => {
                    merged.insert(prefix.clone(), ns.clone());
                }
            }
        }
    }
    for prefix in &conflicting {
        merged.remove(prefix);
    }
    for (event, context) in events.iter_mut().zip(contexts) {
        let own: Map<String, Value> = context
            .iter()
            .filter(|(p, _)| conflicting.contains(*p))
            .map(|(p, ns)| (p.clone(), ns.clone()))
            .collect();
        if !own.is_empty() {
            event["@context"] = Value::Object(own);
        }
    }
    if merged.is_empty() {
        json!([EPCIS_CONTEXT])
    } else {
        json!([EPCIS_CONTEXT, merged])
    }
}

fn now_text(state: &AppState) -> String {
    i64::try_from(state.clock.now_ms())
        .ok()
        .and_then(|unix_ms| gs1::epcis::canon::Timestamp { unix_ms }.to_utc_millis_string())
        .unwrap_or_default()
}

async fn events(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    require(&caller, Action::ReadRecords, None)?;
    let seen = visibility(&state, &caller)?;
    let query = EventQuery::parse(&params).map_err(ApiError::BadRequest)?;
    let store = state.epcis.events().clone();
    let (found, next) = {
        let query = query.clone();
        tokio::task::spawn_blocking(move || query.run(&store, &seen))
            .await
            .map_err(internal)?
            .map_err(internal)?
    };
    let contexts: Vec<Map<String, Value>> = found.iter().map(|e| e.context.clone()).collect();
    let mut list: Vec<Value> = found.into_iter().map(|e| Value::Object(e.event)).collect();
    let context = query_context(&mut list, &contexts);
    let document = json!({
        "@context": context,
        "type": "EPCISQueryDocument",
        "schemaVersion": "2.0",
        "creationDate": now_text(&state),
        "epcisBody": {
            "queryResults": {
                "queryName": "SimpleEventQuery",
                "resultsBody": { "eventList": list },
            },
        },
    });
    let mut response = with_gs1_headers(json_status(StatusCode::OK, &document));
    if let Some(cursor) = next {
        let mut query_string: Vec<String> = params
            .iter()
            .filter(|(k, _)| k != "nextPageToken")
            .map(|(k, v)| format!("{}={}", encode_component(k), encode_component(v)))
            .collect();
        query_string.push(format!("nextPageToken={}", query.token(&cursor)));
        let link = format!("</epcis/events?{}>; rel=\"next\"", query_string.join("&"));
        response.headers_mut().insert(
            header::LINK,
            HeaderValue::from_str(&link).map_err(internal)?,
        );
    }
    Ok(response)
}

/// A stored event the caller may read (404 otherwise, so existence is not told).
fn readable(state: &AppState, caller: &Caller, id: &str) -> Result<StoredEvent, ApiError> {
    require(caller, Action::ReadRecords, None)?;
    let seen = visibility(state, caller)?;
    let not_found = || ApiError::NotFound(format!("no event {id}"));
    let stored = state
        .epcis
        .events()
        .event(id)
        .map_err(internal)?
        .ok_or_else(not_found)?;
    if !seen.sees(&stored.owner, &[]) {
        return Err(not_found());
    }
    Ok(stored)
}

async fn event(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let stored = readable(&state, &caller, &id)?;
    let mut event = Value::Object(stored.event);
    event["@context"] = if stored.context.is_empty() {
        json!([EPCIS_CONTEXT])
    } else {
        json!([EPCIS_CONTEXT, stored.context])
    };
    let mut response = with_gs1_headers(json_status(StatusCode::OK, &event));
    response.headers_mut().insert(
        HeaderName::from_static("agritrace-event-hash"),
        HeaderValue::from_str(&stored.event_hash).map_err(internal)?,
    );
    Ok(response)
}

async fn proof(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let stored = readable(&state, &caller, &id)?;
    let proof = state
        .epcis
        .events()
        .proof(&state.sequencer, &stored)
        .await
        .map_err(internal)?
        .ok_or_else(|| {
            ApiError::NotYet("the event's entry is not yet in the durable log".to_owned())
        })?;
    let sequencer = state.sequencer.clone();
    let index = proof.leaf_index;
    let inclusion = tokio::task::spawn_blocking(move || sequencer.inclusion_proof(index))
        .await
        .map_err(internal)?;
    let (inclusion, checkpoint) = match inclusion {
        Ok((p, checkpoint)) => (
            json!({
                "tree_size": p.tree_size.0,
                "path": p.path.iter().map(ledger::merkle::Hash::to_hex).collect::<Vec<_>>(),
            }),
            Value::String(checkpoint.note.clone()),
        ),
        Err(ServeProofError::NoCheckpoint | ServeProofError::NotYetPublished { .. }) => {
            (Value::Null, Value::Null)
        }
        Err(e) => return Err(internal(e)),
    };
    let t = &proof.trace_event;
    let body = json!({
        "eventID": stored.event_id,
        "eventHash": stored.event_hash,
        "digest": hex(&proof.digest),
        "salt": hex(&proof.salt),
        "commitment": t.commitment.to_hex(),
        "commitment_rule": "SHA-256(salt || digest)",
        "trace_event": {
            "event_type": t.event_type.name(),
            "biz_step": t.biz_step.as_str(),
            "event_time_ms": t.event_time_ms,
        },
        "entry": hex(&proof.entry),
        "entry_leaf_hash": ledger::merkle::leaf_hash(&proof.entry).to_hex(),
        "leaf_index": proof.leaf_index.0,
        "inclusion_proof": inclusion,
        "checkpoint": checkpoint,
    });
    Ok(with_gs1_headers(json_status(StatusCode::OK, &body)))
}

/// A sensor summary to capture as an event.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SummaryRequest {
    devices: Vec<String>,
    from: String,
    to: String,
    #[serde(default, rename = "epcList")]
    epc_list: Option<Value>,
    #[serde(default, rename = "quantityList")]
    quantity_list: Option<Value>,
    #[serde(default, rename = "bizLocation")]
    biz_location: Option<String>,
    #[serde(default, rename = "readPoint")]
    read_point: Option<String>,
}

fn time_field(name: &str, text: &str) -> Result<u64, ApiError> {
    gs1::epcis::canon::parse_timestamp(text)
        .and_then(|t| u64::try_from(t.unix_ms).ok())
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "{name}: {text:?} is not a date-time with a time zone, after 1970"
            ))
        })
}

async fn sensor_summary_capture(
    State(state): State<AppState>,
    caller: Caller,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let org = own_org(&caller, Action::CaptureEvents)?;
    let request: SummaryRequest = json_body(&body)?;
    let devices = request
        .devices
        .iter()
        .map(|d| {
            d.parse::<DeviceId>()
                .map_err(|e| ApiError::BadRequest(format!("devices: {d:?}: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    for device in &devices {
        crate::http::may_read_readings(&state, &caller, peer, *device)?;
    }
    let from_ms = time_field("from", &request.from)?;
    let to_ms = time_field("to", &request.to)?;
    if request.epc_list.is_none() && request.quantity_list.is_none() {
        return Err(ApiError::BadRequest(
            "epcList or quantityList: the event needs the objects it is about".to_owned(),
        ));
    }
    let storage = state.sequencer.storage().clone();
    let summary = tokio::task::spawn_blocking(move || {
        sensor::sensor_summary(&storage, &devices, from_ms, to_ms)
    })
    .await
    .map_err(internal)?
    .map_err(|e| match e {
        sensor::SensorError::Query(q) => internal(q),
        other => ApiError::BadRequest(other.to_string()),
    })?;
    if summary.as_array().is_none_or(Vec::is_empty) {
        return Err(ApiError::BadRequest(
            "none of the devices has committed readings in that window".to_owned(),
        ));
    }
    let mut event = json!({
        "type": "ObjectEvent",
        "eventTime": request.to,
        "eventTimeZoneOffset": "+00:00",
        "action": "OBSERVE",
        "bizStep": "sensor_reporting",
        "sensorElementList": summary,
    });
    if let Some(epcs) = request.epc_list {
        event["epcList"] = epcs;
    }
    if let Some(quantities) = request.quantity_list {
        event["quantityList"] = quantities;
    }
    if let Some(id) = request.read_point {
        event["readPoint"] = json!({ "id": id });
    }
    if let Some(id) = request.biz_location {
        event["bizLocation"] = json!({ "id": id });
    }
    let document = json!({
        "@context": [EPCIS_CONTEXT, { "agritrace": sensor::EXTENSION_NAMESPACE }],
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": now_text(&state),
        "epcisBody": { "eventList": [event] },
    });
    start_capture(&state, &org, document).await
}
