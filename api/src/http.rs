//! The node's HTTP API: the log's C2SP tlog-tiles read side (mounted from `ledger::http`),
//! `/healthz`, Prometheus `/metrics`, and the first `/v1` routes: where a reading is anchored
//! (with every proof from the reading up to a signed checkpoint, as JSON or as the reading
//! proof file `agritrace-verify` checks offline), the log's verifier key, and device import
//! for the local operator.
//!
//! | route | answers |
//! |---|---|
//! | `GET /log/checkpoint`, `GET /log/tile/...` | C2SP tlog-tiles |
//! | `GET /healthz` | alive: 200 `ok`, or 503 with the sequencer's failure (restart the node) |
//! | `GET /readyz` | ready for traffic: 200 (JSON) when the sequencer is healthy, a checkpoint is published (or the log is empty) and every ingest worker is connected to the broker; else 503, a problem document naming the failing checks; each check with its detail either way |
//! | `GET /metrics` | Prometheus text |
//! | `GET /v1/log/key` | the log's verifier key, `name+hash+base64` |
//! | `GET /v1/devices/{id}/readings/{seq}/anchor` | JSON: reading, batch path, entry, leaf index, inclusion proof, checkpoint |
//! | `GET /v1/devices/{id}/readings/{seq}/entry` | the `ReadingBatch` entry's exact bytes |
//! | `GET /v1/devices/{id}/readings/{seq}/tlog-proof` | C2SP tlog-proof file of that entry (for `agritrace-verify`) |
//! | `GET /v1/devices/{id}/readings/{seq}/proof` | `agritrace/reading-proof/v1` file: reading → batch → entry → cosigned checkpoint (for `agritrace-verify --reading-proof`) |
//! | `POST /v1/devices/import` | registers an `agritrace-device` manifest; loopback clients only |
//! | `/v1/whoami`, `/v1/orgs/...`, `/v1/tokens/...`, `/v1/admin/...` | accounts: see [`crate::access`] |
//! | `/v1/orgs/{org}/products`, `.../locations`, `.../plots` (`?limit=&next=`) | master data, read by the owner and its partners: see [`crate::master`] |
//! | `/01/...`, `/.well-known/gs1resolver`, `/v1/public/01/...`, `/qr/01/...`, `/v1/scans/01/...` | GS1 Digital Link resolver, QR codes, scan counts: see [`crate::resolver`] |
//! | `/trace/{id}`, `/recall/{gtin}/{lot}`, `/exports/fsma204` | trace, recall, FSMA 204: see [`crate::provenance`] |
//! | `/epcis/capture[/{id}]`, `/epcis/events[/{eventID}[/proof]]`, `/epcis/sensor-summaries`, `/v1/orgs/{org}/shipments/{id}/sensor-summary` | EPCIS 2.0, sensor summaries: see [`crate::epcis`] |
//! | `/v1/orgs/{org}/partners[/{partner}]` | partner sharing: see [`crate::partners`] |
//! | `/v1/orgs/{org}/devices[/{id}[/rotation\|/revocation\|/claim]]` | an organisation's devices: see [`crate::devices`] |
//! | `/v1/orgs/{org}/devices/{id}/health`, `.../quarantine` | a device's health and what ingest refused from it: see [`crate::device_health`] |
//! | `/v1/orgs/{org}/lots[/{gtin}/{lot}]`, `/v1/orgs/{org}/shipments[/{id}[/departure\|/arrival]]`, `/v1/shipments` | lots and shipments: see [`crate::trade`] |
//! | `/v1/orgs/{org}/issuer-keys[/{key_id}/revoke]`, `/v1/issuer-keys/{key_id}`, `/v1/documents[/{id}[/content\|/signature\|/revoke\|/supersede]]`, `/v1/verify/document`, `/v1/public/lots/{gtin}/{lot}/certificates` | issuer keys, trade documents, the customs check: see [`crate::documents`] |
//! | `/v1/orgs/{org}/shipments/{id}/evidence`, `/v1/orgs/{org}/lots/{gtin}/{lot}/evidence` (`?since=`) | sealed evidence bundles for offline verification: see [`crate::evidence`] |
//! | `/01/...` with `Accept: text/html`, `/v1/public/lots/{gtin}/{lot}/journey`, `/pages/verify.js` | the consumer page, its public data and script: see [`crate::pages`] |
//! | `POST /v1/admin/backup` | an online snapshot of the whole store, streamed; the node's own host only: see [`crate::backup`] |
//! | `/v1/log/policy` | the trust policy evidence bundles are exported under (C2SP tlog-policy), public |
//! | `GET /openapi.json` | the OpenAPI 3.1 description of every route: see [`crate::openapi`] |
//!
//! The reading routes answer 404 for a reading that is not committed and 503 with
//! `Retry-After` while its entry is not yet in a published checkpoint. A reading of an
//! organisation's device is that organisation's record (`ReadRecords`: the owner, its partners,
//! auditors); one of a device the operator imported and no organisation claimed is read from
//! the node's own host (or by an auditor). Errors are RFC 9457 problem documents; causes are
//! logged, never sent. Every error answer is one, including the router's own (unknown route
//! 404, wrong method 405, a body over the limit 413, a path parameter that does not decode
//! 400): [`problem_documents`] rewrites any other error body, and refuses a request body that
//! is not JSON with 415. Outside it, [`crate::ratelimit::limit`] answers a request over its
//! class's budget with 429 and `Retry-After` before anything else runs.

use std::net::SocketAddr;
use std::sync::Arc;

use agritrace_verify::ReadingProof;
use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use ingest::{Clock, IngestHandle, ReadingAnchor, RegisterOutcome, RegistryError};
use ledger::merkle::{Hash, LeafIndex, TreeSize, leaf_hash};
use ledger::proof::InclusionProof;
use ledger::sequencer::{Health, PublishedCheckpoint, SequencerHandle, ServeProofError};
use ledger::tlog_proof::TlogProof;
use protocol::{DeviceId, SequenceNumber};
use serde_json::json;

use crate::access::{Caller, require_visible, visibility};
use crate::auth::{Action, Directory, Visibility};
use crate::metrics::{LogSizes, render};
use crate::node::Storage;

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    /// Ingest (metrics, registry, reading anchors).
    pub ingest: IngestHandle<Storage>,
    /// The sequencer (health, stats, proofs).
    pub sequencer: SequencerHandle<Storage>,
    /// The log's verifier key.
    pub verifier_key: Arc<str>,
    /// The clock (import effective time, metrics ages).
    pub clock: Arc<dyn Clock>,
    /// Organisations, members and API tokens.
    pub directory: Directory<Storage>,
    /// Products, locations and plots.
    pub master: crate::master::MasterData<Storage>,
    /// The GS1 Digital Link resolver: base URL and scan counts.
    pub resolver: crate::resolver::Resolver,
    /// EPCIS events and capture jobs.
    pub epcis: crate::epcis::Epcis<Storage>,
    /// Which organisations share their records with which.
    pub partners: crate::auth::Partners<Storage>,
    /// Organisations' devices.
    pub devices: crate::devices::Devices<Storage>,
    /// Lots and shipments.
    pub trade: crate::trade::Trade<Storage>,
    /// Cold chains of arrived shipments, for trace and recall.
    pub cold_chains: crate::coldchain::ColdChainCache,
    /// Issuer keys and trade documents.
    pub documents: crate::documents::Documents,
    /// The seal key and trust policy of evidence bundles.
    pub evidence: crate::evidence::Evidence,
    /// Rate limits per client address and per caller.
    pub rate_limits: crate::ratelimit::RateLimiter,
    /// Online backups of the store (where snapshots are made, one at a time).
    pub backups: crate::backup::Backups,
}

/// The router; serve it with `into_make_service_with_connect_info::<SocketAddr>()` (device
/// import checks the peer address).
pub fn router(state: AppState, body_bytes_max: usize) -> Router {
    let log = ledger::http::router(state.sequencer.storage().clone());
    let limits = state.clone();
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/v1/log/key", get(log_key))
        .route("/v1/devices/import", post(import))
        .route(
            "/v1/devices/{device}/readings/{sequence}/anchor",
            get(anchor),
        )
        .route("/v1/devices/{device}/readings/{sequence}/entry", get(entry))
        .route(
            "/v1/devices/{device}/readings/{sequence}/tlog-proof",
            get(tlog_proof),
        )
        .route(
            "/v1/devices/{device}/readings/{sequence}/proof",
            get(reading_proof),
        )
        .merge(crate::access::routes())
        .merge(crate::master::routes())
        .merge(crate::resolver::routes())
        .merge(crate::epcis::routes())
        .merge(crate::provenance::routes())
        .merge(crate::partners::routes())
        .merge(crate::devices::routes())
        .merge(crate::device_health::routes())
        .merge(crate::trade::routes())
        .merge(crate::documents::routes())
        .merge(crate::evidence::routes())
        .merge(crate::backup::routes())
        .merge(crate::pages::routes())
        .merge(crate::openapi::routes())
        .layer(DefaultBodyLimit::max(body_bytes_max))
        .with_state(state)
        .merge(log)
        .layer(axum::middleware::from_fn(problem_documents))
        .layer(axum::middleware::from_fn_with_state(
            limits,
            crate::ratelimit::limit,
        ))
}

/// Longest error body of the router's own that is carried over into a problem's `detail`.
const REJECTION_BYTES_MAX: usize = 4_096;

/// Whether a request body of `content_type` is JSON (`application/json`, `application/ld+json`,
/// any `application/*+json`).
fn is_json(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Every error answer is an RFC 9457 problem document: a request body whose `Content-Type`
/// is not JSON is refused with 415 (a body without one is read as JSON), and an error the
/// router or an extractor answered in plain text (404, 405, 413, a path that does not decode)
/// is rewritten as a problem, its text as `detail`, its headers (`Allow`, ...) kept.
pub async fn problem_documents(request: Request, next: Next) -> Response {
    let has_body = matches!(
        *request.method(),
        Method::POST | Method::PUT | Method::PATCH
    );
    if let Some(content_type) = request.headers().get(header::CONTENT_TYPE)
        && has_body
        && !content_type.to_str().is_ok_and(is_json)
        && !crate::documents::takes_form(request.uri().path(), content_type)
    {
        return ApiError::UnsupportedMediaType(format!(
            "the request body must be JSON (application/json), not {}",
            String::from_utf8_lossy(content_type.as_bytes())
        ))
        .into_response();
    }
    let response = next.run(request).await;
    let status = response.status();
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|t| t.as_bytes().starts_with(b"application/problem+json"));
    if !(status.is_client_error() || status.is_server_error()) || is_problem {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, REJECTION_BYTES_MAX)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let detail = if text.is_empty() {
        match status {
            StatusCode::NOT_FOUND => "no such route on this node; see /openapi.json".to_owned(),
            StatusCode::METHOD_NOT_ALLOWED => {
                "this route does not take that method; see /openapi.json".to_owned()
            }
            other => other.canonical_reason().unwrap_or("error").to_owned(),
        }
    } else {
        text
    };
    let problem = problem_body(status, &detail);
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    Response::from_parts(parts, Body::from(problem))
}

fn problem_body(status: StatusCode, detail: &str) -> String {
    json!({
        "type": "about:blank",
        "title": status.canonical_reason().unwrap_or("error"),
        "status": status.as_u16(),
        "detail": detail,
    })
    .to_string()
}

/// An API error: a status and a problem document.
#[derive(Debug)]
pub enum ApiError {
    /// Bad input (400).
    BadRequest(String),
    /// No valid API token where one is needed (401 with `WWW-Authenticate: Bearer`).
    Unauthorized(&'static str),
    /// Not allowed for this caller (403).
    Forbidden(String),
    /// Nothing there (404).
    NotFound(String),
    /// Conflicts with what is stored (409).
    Conflict(String),
    /// The body is larger than the route takes (413).
    TooLarge(String),
    /// Well-formed, but refused for what it says (422).
    Unprocessable(String),
    /// The body is not in a media type the route takes (415).
    UnsupportedMediaType(String),
    /// Not ready yet; retry shortly (503 with `Retry-After`).
    NotYet(String),
    /// Too many requests of this caller in progress; retry shortly (429 with `Retry-After`).
    TooMany(String),
    /// A failure of ours; the cause is logged (500).
    Internal(String),
}

impl ApiError {
    /// What the caller is told (for a command line that applies an operation itself).
    #[must_use]
    pub fn detail(&self) -> String {
        match self {
            Self::BadRequest(d)
            | Self::Forbidden(d)
            | Self::NotFound(d)
            | Self::Conflict(d)
            | Self::TooLarge(d)
            | Self::Unprocessable(d)
            | Self::UnsupportedMediaType(d)
            | Self::NotYet(d)
            | Self::TooMany(d) => d.clone(),
            Self::Unauthorized(d) => (*d).to_owned(),
            Self::Internal(cause) => cause.clone(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, detail) = match self {
            Self::BadRequest(d) => (StatusCode::BAD_REQUEST, d),
            Self::Unauthorized(d) => (StatusCode::UNAUTHORIZED, d.to_owned()),
            Self::Forbidden(d) => (StatusCode::FORBIDDEN, d),
            Self::NotFound(d) => (StatusCode::NOT_FOUND, d),
            Self::Conflict(d) => (StatusCode::CONFLICT, d),
            Self::TooLarge(d) => (StatusCode::PAYLOAD_TOO_LARGE, d),
            Self::Unprocessable(d) => (StatusCode::UNPROCESSABLE_ENTITY, d),
            Self::UnsupportedMediaType(d) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, d),
            Self::NotYet(d) => (StatusCode::SERVICE_UNAVAILABLE, d),
            Self::TooMany(d) => (StatusCode::TOO_MANY_REQUESTS, d),
            Self::Internal(cause) => {
                tracing::error!(%cause, "request failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal error; see the node's log".to_owned(),
                )
            }
        };
        let mut response = bytes(
            "application/problem+json",
            problem_body(status, &detail).into_bytes(),
        );
        *response.status_mut() = status;
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"agritrace\""),
            );
        }
        if status == StatusCode::SERVICE_UNAVAILABLE || status == StatusCode::TOO_MANY_REQUESTS {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

fn bytes(content_type: &'static str, body: Vec<u8>) -> Response {
    let mut response = Response::new(Body::from(body));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn json_response(value: &serde_json::Value) -> Response {
    json_status(StatusCode::OK, value)
}

/// A JSON response with `status`.
pub(crate) fn json_status(status: StatusCode, value: &serde_json::Value) -> Response {
    let mut response = bytes("application/json", value.to_string().into_bytes());
    *response.status_mut() = status;
    response
}

/// A JSON request body (400 naming what is wrong); an empty body reads as `{}`.
pub(crate) fn json_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("the request body is not as expected: {e}")))
}

/// Lowercase hex of `bytes`.
#[must_use]
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    out
}

fn hexes(hashes: &[Hash]) -> Vec<String> {
    hashes.iter().map(Hash::to_hex).collect()
}

async fn healthz(State(state): State<AppState>) -> Response {
    match state.sequencer.health() {
        Health::Healthy => bytes("text/plain; charset=utf-8", b"ok\n".to_vec()),
        Health::Failed(reason) => {
            let mut response = bytes(
                "text/plain; charset=utf-8",
                format!("sequencer failed: {reason}\n").into_bytes(),
            );
            *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            response
        }
    }
}

/// Readiness (a load balancer's question, not a liveness probe's): what a caller needs works
/// now — the sequencer is healthy, a checkpoint is published (proofs can be served; an empty log needs none), and every
/// ingest worker is connected to the broker (readings flow). A node that is alive but not
/// ready (the broker is down, the first checkpoint not yet signed) answers 503 here and 200 on
/// `/healthz`.
async fn readyz(State(state): State<AppState>) -> Response {
    let sequencer = match state.sequencer.health() {
        Health::Healthy => Ok("healthy".to_owned()),
        Health::Failed(reason) => Err(format!("failed: {reason}")),
    };
    let checkpoint = match state.sequencer.checkpoint() {
        Some(c) => Ok(format!("published, size {}", c.size.0)),
        // An empty log has nothing to prove yet.
        None if state.sequencer.durable_state().size == 0 => {
            Ok("none needed: the log is empty".to_owned())
        }
        None => Err("none published yet".to_owned()),
    };
    let workers = state.ingest.workers();
    let connected = state.ingest.metrics().workers_connected;
    let broker = if usize::try_from(connected).is_ok_and(|c| c >= workers) {
        Ok(format!("{connected} of {workers} ingest workers connected"))
    } else {
        Err(format!("{connected} of {workers} ingest workers connected"))
    };
    let checks = [
        ("sequencer", sequencer),
        ("checkpoint", checkpoint),
        ("broker", broker),
    ];
    let ready = checks.iter().all(|(_, r)| r.is_ok());
    let failing: Vec<String> = checks
        .iter()
        .filter_map(|(name, r)| r.as_ref().err().map(|d| format!("{name}: {d}")))
        .collect();
    let mut body = json!({
        "ready": ready,
        "checks": checks
            .iter()
            .map(|(name, result)| {
                let (ok, detail) = match result {
                    Ok(detail) => (true, detail),
                    Err(detail) => (false, detail),
                };
                json!({ "name": name, "ok": ok, "detail": detail })
            })
            .collect::<Vec<_>>(),
    });
    // Not ready is an RFC 9457 problem document whose extension members are the checks.
    let content_type = if ready {
        "application/json"
    } else {
        body["type"] = json!("about:blank");
        body["title"] = json!("Service Unavailable");
        body["status"] = json!(503);
        body["detail"] = json!(format!("not ready: {}", failing.join("; ")));
        "application/problem+json"
    };
    let mut response = bytes(content_type, body.to_string().into_bytes());
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if !ready {
        *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    }
    response
}

async fn metrics(State(state): State<AppState>) -> Response {
    let sizes = LogSizes {
        durable: state.sequencer.durable_state().size,
        checkpointed: state.sequencer.checkpoint().map_or(0, |c| c.size.0),
        now_ms: state.clock.now_ms(),
    };
    let mut text = render(&state.ingest.metrics(), &state.sequencer.stats(), sizes);
    crate::metrics::render_rate_limits(&mut text, &state.rate_limits.samples());
    bytes(
        "text/plain; version=0.0.4; charset=utf-8",
        text.into_bytes(),
    )
}

async fn log_key(State(state): State<AppState>) -> Response {
    bytes(
        "text/plain; charset=utf-8",
        format!("{}\n", state.verifier_key).into_bytes(),
    )
}

/// The JSON report of a manifest import (also printed by `agritrace device import`).
#[must_use]
pub fn import_report(outcomes: &[(DeviceId, RegisterOutcome)]) -> serde_json::Value {
    let devices: Vec<serde_json::Value> = outcomes
        .iter()
        .map(|(device, outcome)| match outcome {
            RegisterOutcome::Registered { index, .. } => json!({
                "device_id": device.to_string(),
                "outcome": "registered",
                "leaf_index": index.map(|i| i.0),
            }),
            RegisterOutcome::AlreadyRegistered(_) => json!({
                "device_id": device.to_string(),
                "outcome": "already-registered",
            }),
        })
        .collect();
    let registered = outcomes
        .iter()
        .filter(|(_, o)| matches!(o, RegisterOutcome::Registered { .. }))
        .count();
    json!({
        "registered": registered,
        "already_registered": outcomes.len() - registered,
        "devices": devices,
    })
}

async fn import(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    body: String,
) -> Result<Response, ApiError> {
    // Registering keys is an operator action; until the API has accounts it is local only.
    if !peer.ip().is_loopback() {
        return Err(ApiError::Forbidden(
            "device import is allowed from the node's own host only".to_owned(),
        ));
    }
    let registry = state.ingest.registry();
    // A malformed broker credential refuses the manifest before anything is registered.
    crate::broker_auth::manifest_credentials(&body).map_err(ApiError::BadRequest)?;
    match registry.import_manifest(&body, state.clock.now_ms()).await {
        Ok(outcomes) => {
            // The hashes were checked above: what fails here is the store.
            crate::broker_auth::store_manifest_credentials(state.sequencer.storage(), &body)
                .await
                .map_err(ApiError::Internal)?;
            Ok(json_response(&import_report(&outcomes)))
        }
        Err(error @ (RegistryError::Manifest(_) | RegistryError::BadKey { .. })) => {
            Err(ApiError::BadRequest(error.to_string()))
        }
        Err(error @ RegistryError::AlreadyRegistered { .. }) => {
            Err(ApiError::Conflict(error.to_string()))
        }
        Err(error) => Err(ApiError::Internal(format!("{error:#?}"))),
    }
}

/// Whether the caller may read the readings of `device`: an organisation's device through
/// [`require_visible`] on its owner (`ReadRecords`: the owner, its partners, auditors); a device
/// the operator imported and no organisation claimed from the node's own host, or by an
/// auditor.
///
/// # Errors
/// 401 or 403 when it may not, 500 if the store fails.
pub(crate) fn may_read_readings(
    state: &AppState,
    caller: &Caller,
    peer: SocketAddr,
    device: DeviceId,
) -> Result<(), ApiError> {
    match state.devices.owner(device)? {
        Some(owner) => require_visible(state, caller, Action::ReadRecords, &owner.org).map(|_| ()),
        None if peer.ip().is_loopback() => Ok(()),
        None if visibility(state, caller)? == Visibility::All => Ok(()),
        None => Err(ApiError::Forbidden(format!(
            "device {device} belongs to no organisation; its readings are read on the node's \
             own host"
        ))),
    }
}

/// A committed reading's anchor, from the path parameters, if the caller may read it.
async fn find_anchor(
    state: &AppState,
    caller: &Caller,
    peer: SocketAddr,
    device: &str,
    sequence: &str,
) -> Result<ReadingAnchor, ApiError> {
    let device: DeviceId = device
        .parse()
        .map_err(|e| ApiError::BadRequest(format!("device id: {e}")))?;
    may_read_readings(state, caller, peer, device)?;
    let sequence: u64 = sequence
        .parse()
        .map_err(|_| ApiError::BadRequest("the sequence number is not a u64".to_owned()))?;
    state
        .ingest
        .reading_anchor(device, SequenceNumber(sequence))
        .await
        .map_err(|e| ApiError::Internal(format!("{e:#?}")))?
        .ok_or_else(|| ApiError::NotFound("no committed reading with that number".to_owned()))
}

/// The log inclusion proof of the anchor's entry against the latest published checkpoint
/// (a few blocking tile reads, off the async threads).
async fn proof_of(
    state: &AppState,
    anchor: &ReadingAnchor,
) -> Result<(InclusionProof, Arc<PublishedCheckpoint>), ApiError> {
    let sequencer = state.sequencer.clone();
    let index = anchor.leaf_index;
    tokio::task::spawn_blocking(move || sequencer.inclusion_proof(index))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(|e| match e {
            ServeProofError::NoCheckpoint | ServeProofError::NotYetPublished { .. } => {
                ApiError::NotYet(format!("{e}; retry shortly"))
            }
            other => ApiError::Internal(format!("{other:#?}")),
        })
}

pub(crate) fn tlog_proof_text(proof: &InclusionProof, checkpoint: &PublishedCheckpoint) -> String {
    TlogProof {
        extra: None,
        index: proof.leaf_index,
        path: proof.path.clone(),
        checkpoint: checkpoint.note.clone(),
    }
    .to_text()
}

async fn anchor(
    State(state): State<AppState>,
    caller: Caller,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((device, sequence)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let anchor = find_anchor(&state, &caller, peer, &device, &sequence).await?;
    let (proof, checkpoint) = proof_of(&state, &anchor).await?;
    let reading = &anchor.reading;
    let body = json!({
        "device_id": reading.device.to_string(),
        "sequence": reading.sequence.0,
        "reading": hex(&reading.signed),
        "reading_leaf_hash": leaf_hash(&reading.signed).to_hex(),
        "ingest_time_ms": reading.ingest_time_ms,
        "clock_skewed": reading.clock_skewed,
        "batch": {
            "root": anchor.batch.root.to_hex(),
            "size": anchor.batch.reading_leaves.len(),
            "position": reading.position,
            "path": hexes(&anchor.batch_path),
        },
        "entry": hex(&anchor.entry),
        "entry_leaf_hash": leaf_hash(&anchor.entry).to_hex(),
        "leaf_index": anchor.leaf_index.0,
        "inclusion_proof": {
            "tree_size": proof.tree_size.0,
            "path": hexes(&proof.path),
        },
        "checkpoint": checkpoint.note,
        "tlog_proof": tlog_proof_text(&proof, &checkpoint),
    });
    Ok(json_response(&body))
}

async fn entry(
    State(state): State<AppState>,
    caller: Caller,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((device, sequence)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let anchor = find_anchor(&state, &caller, peer, &device, &sequence).await?;
    Ok(bytes("application/octet-stream", anchor.entry))
}

async fn tlog_proof(
    State(state): State<AppState>,
    caller: Caller,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((device, sequence)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let anchor = find_anchor(&state, &caller, peer, &device, &sequence).await?;
    let (proof, checkpoint) = proof_of(&state, &anchor).await?;
    Ok(bytes(
        "text/plain; charset=utf-8",
        tlog_proof_text(&proof, &checkpoint).into_bytes(),
    ))
}

/// The reading proof file of a committed reading: everything from the signed reading to the
/// cosigned checkpoint, in the format `agritrace-verify --reading-proof` reads.
async fn reading_proof(
    State(state): State<AppState>,
    caller: Caller,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((device, sequence)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let anchor = find_anchor(&state, &caller, peer, &device, &sequence).await?;
    let (proof, checkpoint) = proof_of(&state, &anchor).await?;
    let batch_size = u64::try_from(anchor.batch.reading_leaves.len())
        .map_err(|_| ApiError::Internal("a batch larger than 2^64 readings".to_owned()))?;
    let file = ReadingProof {
        device: anchor.reading.device,
        sequence: anchor.reading.sequence,
        signed_reading: anchor.reading.signed,
        batch_position: LeafIndex(u64::from(anchor.reading.position)),
        batch_size: TreeSize(batch_size),
        batch_path: anchor.batch_path,
        entry: anchor.entry,
        log_proof: TlogProof {
            extra: None,
            index: proof.leaf_index,
            path: proof.path,
            checkpoint: checkpoint.note.clone(),
        },
    };
    Ok(bytes(
        "text/plain; charset=utf-8",
        file.to_text().into_bytes(),
    ))
}
