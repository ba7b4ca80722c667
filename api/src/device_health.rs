//! A device's health and quarantine, for its owner (and whoever the owner shares its records
//! with): what ingest refused from it and why, and what its recent readings say about it.
//!
//! | Method | Path | Access |
//! |---|---|---|
//! | GET | `/v1/orgs/{org}/devices/{device}/health?window=N` | `ReadRecords` (visible) |
//! | GET | `/v1/orgs/{org}/devices/{device}/quarantine?limit&next` | `ReadRecords` (visible) |
//!
//! Health looks at the device's last `window` sequence numbers (default
//! [`WINDOW_DEFAULT`], at most [`ingest::query::TAIL_SEQUENCES_MAX`]) up to the last one ingest
//! committed, in one range scan of the readings table:
//! - **last reading**: its sequence number, device and ingest times, battery;
//! - **clock**: the device clock's offset from ingest's (device time minus ingest time, so a
//!   negative offset is a device behind, or a reading that waited in its outbox) — last,
//!   smallest and largest over the window — and how many readings ingest flagged as skewed;
//! - **outbox**: the sequence numbers missing from the window (gaps: readings the device never
//!   delivered, or still holds) as ranges, and the device's own count of samples it dropped
//!   (`dropped_samples`, cumulative on the device) at the start and end of the window;
//! - **keys**: the key history, as the device view shows it.
//!
//! Quarantine lists what ingest refused from the device, oldest first, with the reason and the
//! refused bytes (hex, cut at ingest's quarantine limit).

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use ingest::query::{QuarantinePage, TAIL_SEQUENCES_MAX};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::access::{Caller, require_visible};
use crate::auth::policy::Action;
use crate::devices::{device_of, org_of};
use crate::http::{ApiError, AppState, hex, json_status};
use crate::paging::{Page, cursor, query};

/// Sequence numbers a health view looks back over when the query does not say.
pub const WINDOW_DEFAULT: u64 = 1_000;
/// Gap ranges listed at most (the count of missing numbers is always complete).
pub const GAPS_LISTED_MAX: usize = 100;

/// The routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/orgs/{org}/devices/{device}/health", get(health))
        .route(
            "/v1/orgs/{org}/devices/{device}/quarantine",
            get(quarantine),
        )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HealthQuery {
    #[serde(default)]
    window: Option<u64>,
}

async fn health(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, device)): Path<(String, String)>,
    params: Result<Query<HealthQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let org = org_of(&org)?;
    require_visible(&state, &caller, Action::ReadRecords, &org)?;
    let device = device_of(&device)?;
    let params = query(params)?;
    let window = params.window.unwrap_or(WINDOW_DEFAULT);
    if !(1..=TAIL_SEQUENCES_MAX).contains(&window) {
        return Err(ApiError::BadRequest(format!(
            "window must be 1 to {TAIL_SEQUENCES_MAX} sequence numbers"
        )));
    }
    let owner = state.devices.owned(&org, device)?;
    let view = state.devices.view(&owner).await?;
    let storage = state.sequencer.storage();
    let seen = ingest::query::device_seen(storage, device).map_err(internal)?;
    let recent = match &seen {
        Some(seen) => ingest::query::readings_tail(storage, device, seen.last_sequence, window)
            .map_err(internal)?,
        None => Vec::new(),
    };
    let summary = Summary::of(&recent);
    Ok(json_status(
        StatusCode::OK,
        &json!({
            "device_id": device.to_string(),
            "org": org,
            "window": window,
            "readings_examined": recent.len(),
            "last_reading": summary.last,
            "clock": summary.clock,
            "outbox": summary.outbox,
            "keys": view.get("keys").cloned().unwrap_or(Value::Null),
        }),
    ))
}

/// What a window of readings says (see the module documentation).
struct Summary {
    last: Value,
    clock: Value,
    outbox: Value,
}

impl Summary {
    fn of(recent: &[(ingest::records::StoredReading, protocol::Reading)]) -> Self {
        let (Some((first_stored, first)), Some((last_stored, last))) =
            (recent.first(), recent.last())
        else {
            return Self {
                last: Value::Null,
                clock: Value::Null,
                outbox: Value::Null,
            };
        };
        let offset = |stored: &ingest::records::StoredReading, reading: &protocol::Reading| {
            i128::from(reading.device_time_ms) - i128::from(stored.ingest_time_ms)
        };
        let offsets: Vec<i128> = recent.iter().map(|(s, r)| offset(s, r)).collect();
        let skewed = recent.iter().filter(|(s, _)| s.clock_skewed).count();
        let mut gaps = Vec::new();
        let mut missing: u64 = 0;
        for pair in recent.windows(2) {
            let (before, after) = (pair[0].0.sequence.0, pair[1].0.sequence.0);
            if after > before.saturating_add(1) {
                missing += after - before - 1;
                if gaps.len() < GAPS_LISTED_MAX {
                    gaps.push(json!({ "first": before + 1, "last": after - 1 }));
                }
            }
        }
        Self {
            last: json!({
                "sequence": last_stored.sequence.0,
                "device_time_ms": last.device_time_ms,
                "ingest_time_ms": last_stored.ingest_time_ms,
                "battery_mv": last.battery_mv,
                "clock_skewed": last_stored.clock_skewed,
            }),
            clock: json!({
                "offset_ms": offsets.last().map(|o| clamp(*o)),
                "offset_min_ms": offsets.iter().min().map(|o| clamp(*o)),
                "offset_max_ms": offsets.iter().max().map(|o| clamp(*o)),
                "skewed_readings": skewed,
            }),
            outbox: json!({
                "first_sequence": first_stored.sequence.0,
                "last_sequence": last_stored.sequence.0,
                "missing": missing,
                "gaps": gaps,
                "gaps_listed_all": gaps.len() as u64 == gaps_total(recent),
                "dropped_samples": last.dropped_samples,
                "dropped_samples_in_window": last.dropped_samples.saturating_sub(first.dropped_samples),
            }),
        }
    }
}

/// How many gaps a window has (to say whether the list is complete).
fn gaps_total(recent: &[(ingest::records::StoredReading, protocol::Reading)]) -> u64 {
    let count = recent
        .windows(2)
        .filter(|pair| pair[1].0.sequence.0 > pair[0].0.sequence.0.saturating_add(1))
        .count();
    u64::try_from(count).unwrap_or(u64::MAX)
}

/// An offset as a JSON integer (device times are u64 milliseconds: the difference fits i64
/// for any clock this side of the year 292 million; clamped, not wrapped, beyond).
fn clamp(offset: i128) -> i64 {
    i64::try_from(offset).unwrap_or(if offset < 0 { i64::MIN } else { i64::MAX })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct QuarantineQuery {
    #[serde(default)]
    limit: Option<usize>,
    #[serde(default)]
    next: Option<String>,
}

async fn quarantine(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, device)): Path<(String, String)>,
    params: Result<Query<QuarantineQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let org = org_of(&org)?;
    require_visible(&state, &caller, Action::ReadRecords, &org)?;
    let device = device_of(&device)?;
    let params = query(params)?;
    let page = Page::of(params.limit, params.next.as_deref())?;
    let after_id = match page.after {
        None => None,
        Some(bytes) => Some(u64::from_be_bytes(
            <[u8; 8]>::try_from(bytes.as_slice()).map_err(|_| {
                ApiError::BadRequest("next is not a cursor this API answered".to_owned())
            })?,
        )),
    };
    state.devices.owned(&org, device)?;
    let list = state
        .ingest
        .quarantine(
            Some(device),
            QuarantinePage {
                after_id,
                limit: page.limit,
            },
        )
        .map_err(internal)?;
    let records: Vec<Value> = list
        .records
        .iter()
        .map(|record| {
            json!({
                "id": record.id,
                "reason": record.reason.name(),
                "sequence": record.sequence.map(|s| s.0),
                "ingest_time_ms": record.ingest_time_ms,
                "topic": record.topic,
                "original_len": record.original_len,
                "bytes": hex(&record.bytes),
            })
        })
        .collect();
    Ok(json_status(
        StatusCode::OK,
        &json!({
            "device_id": device.to_string(),
            "quarantine": records,
            "next": list.next_after.map(|id| cursor(&id.to_be_bytes())),
        }),
    ))
}

fn internal(error: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(error.to_string())
}
