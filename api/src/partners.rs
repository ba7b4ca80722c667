//! The HTTP side of partner sharing ([`crate::auth::sharing`]): an organisation's admin shares
//! its records with another organisation or stops; its members read both directions. What a
//! share lets a partner see is decided by [`crate::access::visibility`].
//!
//! | route | action | answers |
//! |---|---|---|
//! | `POST /v1/orgs/{org}/partners` | `ManageOrg` | 201, the share (`{"partner": "<org>"}` in); 409 if it exists |
//! | `GET /v1/orgs/{org}/partners` | `ReadOrg` | `shares_with` (whom it shares with) and `shared_by` (who shares with it) |
//! | `DELETE /v1/orgs/{org}/partners/{partner}` | `ManageOrg` | the ended share; 404 if there is none |

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{delete, get};
use serde::Deserialize;
use serde_json::json;

use crate::access::{Caller, require};
use crate::auth::{Action, DirectoryError, OrgId};
use crate::http::{ApiError, AppState, json_body, json_status};

/// The routes of this module, on the node's state.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/orgs/{org}/partners", get(list_partners).post(share))
        .route("/v1/orgs/{org}/partners/{partner}", delete(unshare))
}

fn org_of(what: &str, text: &str) -> Result<OrgId, ApiError> {
    text.parse()
        .map_err(|e| ApiError::BadRequest(format!("{what}: {e}")))
}

fn internal(error: &DirectoryError) -> ApiError {
    ApiError::Internal(format!("{error:#?}"))
}

/// A new share.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewShare {
    partner: String,
}

async fn share(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let org = org_of("organisation", &org)?;
    require(&caller, Action::ManageOrg, Some(&org))?;
    let body: NewShare = json_body(&body)?;
    let partner = org_of("partner", &body.partner)?;
    match state.partners.share(&org, &partner).await {
        Ok(share) => Ok(json_status(StatusCode::CREATED, &json!(share))),
        Err(DirectoryError::NotFound(what)) => Err(ApiError::BadRequest(format!(
            "partner: {what} does not exist"
        ))),
        Err(DirectoryError::Exists(what)) => {
            Err(ApiError::Conflict(format!("{what} already exists")))
        }
        Err(DirectoryError::Invalid(why)) => Err(ApiError::BadRequest(why)),
        Err(other) => Err(internal(&other)),
    }
}

async fn list_partners(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
) -> Result<Response, ApiError> {
    let org = org_of("organisation", &org)?;
    require(&caller, Action::ReadOrg, Some(&org))?;
    let shares_with: Vec<serde_json::Value> = state
        .partners
        .shares_of(&org)
        .map_err(|e| internal(&e))?
        .into_iter()
        .map(|s| json!({ "org": s.partner, "since_ms": s.since_ms }))
        .collect();
    let shared_by: Vec<serde_json::Value> = state
        .partners
        .shares_to(&org)
        .map_err(|e| internal(&e))?
        .into_iter()
        .map(|s| json!({ "org": s.owner, "since_ms": s.since_ms }))
        .collect();
    Ok(json_status(
        StatusCode::OK,
        &json!({ "org": org, "shares_with": shares_with, "shared_by": shared_by }),
    ))
}

async fn unshare(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, partner)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let org = org_of("organisation", &org)?;
    require(&caller, Action::ManageOrg, Some(&org))?;
    let partner = org_of("partner", &partner)?;
    match state.partners.unshare(&org, &partner).await {
        Ok(share) => Ok(json_status(StatusCode::OK, &json!(share))),
        Err(DirectoryError::NotFound(what)) => {
            Err(ApiError::NotFound(format!("{what} does not exist")))
        }
        Err(other) => Err(internal(&other)),
    }
}
