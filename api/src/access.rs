//! The HTTP side of accounts: who is calling (a `Bearer` API token, resolved by the
//! [`Directory`]), the one place each handler asks whether it may go on ([`require`]), what a
//! reader may see of shared records ([`visibility`]), and the routes of organisations, members
//! and tokens.
//!
//! | route | action | answers |
//! |---|---|---|
//! | `GET /v1/whoami` | any valid token | the caller's organisation, member id, roles, token id |
//! | `GET /v1/orgs/{org}` | `ReadOrg` | the organisation |
//! | `GET /v1/orgs/{org}/members?limit=&next=` | `ReadOrg` | a page of its members |
//! | `POST /v1/orgs/{org}/members` | `ManageOrg` | 201, the member (`{id, name, roles}` in); 403 for `auditor` or `customs`, which only the operator grants |
//! | `GET /v1/orgs/{org}/members/{member}/tokens?limit=&next=` | `ManageOrg`, or the member itself | a page of the member's tokens (never secrets) |
//! | `POST /v1/orgs/{org}/members/{member}/tokens` | `ManageOrg` | 201, the token, shown this once (`{label}` in) |
//! | `DELETE /v1/tokens/{id}` | `ManageOrg` of its organisation, or its holder | the revoked record |
//! | `POST /v1/admin/orgs`, `.../members`, `.../tokens`, `DELETE /v1/admin/tokens/{id}` | the node's own host only | bootstrap: what `agritrace admin` calls |
//! | `POST /v1/admin/backup` | the node's own host only | an online snapshot of the whole store (`agritrace backup`, [`crate::backup`]) |
//!
//! Every token problem (malformed, unknown, revoked) answers the same 401, so a caller learns
//! nothing about which tokens exist; the cause is logged at debug level.

use std::collections::BTreeSet;
use std::net::SocketAddr;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{ConnectInfo, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::Response;
use axum::routing::{delete, get, post};
use serde::Deserialize;
use serde_json::json;

use crate::auth::{
    Action, AuthError, Decision, Directory, DirectoryError, MemberId, OrgId, Principal, Role,
    TokenId, TokenRecord, Visibility, authorize,
};
use crate::http::{ApiError, AppState, json_body, json_status};
use crate::node::Storage;
use crate::paging::{Page, PageQuery, query};

/// The caller: `Some` with a valid token, `None` without an `Authorization` header. A header
/// that is present but not a valid token is refused with 401 before the handler runs.
#[derive(Debug, Clone)]
pub struct Caller(pub Option<Principal>);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
            return Ok(Self(None));
        };
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or(ApiError::Unauthorized(
                "the Authorization header must be `Bearer <token>`",
            ))?;
        match state.directory.authenticate(token.trim()) {
            Ok(principal) => Ok(Self(Some(principal))),
            Err(AuthError::Directory(error)) => Err(ApiError::Internal(format!("{error:#?}"))),
            Err(error) => {
                tracing::debug!(%error, "token refused");
                Err(ApiError::Unauthorized("invalid or revoked token"))
            }
        }
    }
}

/// Lets the request go on only if [`authorize`] allows `action` on `target`.
///
/// # Errors
/// 401 without a token where one is needed, 403 when the caller may not.
pub fn require(caller: &Caller, action: Action, target: Option<&OrgId>) -> Result<(), ApiError> {
    match authorize(caller.0.as_ref(), action, target) {
        Decision::Allow => Ok(()),
        Decision::Unauthenticated => Err(ApiError::Unauthorized(
            "this needs an API token (Authorization: Bearer <token>)",
        )),
        Decision::Forbidden(reason) => Err(ApiError::Forbidden(reason)),
    }
}

/// What the caller may see of shared records: [`Visibility::of`] with the organisations that
/// share their records with the caller's (one scan of the partner index). Every read of
/// records that can belong to another organisation asks this, and only this.
///
/// # Errors
/// 401 without a token, 500 if the store fails.
pub fn visibility(state: &AppState, caller: &Caller) -> Result<Visibility, ApiError> {
    let principal = caller.0.as_ref().ok_or(ApiError::Unauthorized(
        "this needs an API token (Authorization: Bearer <token>)",
    ))?;
    let partners = state
        .partners
        .shared_with(&principal.org)
        .map_err(|e| ApiError::Internal(format!("{e:#?}")))?;
    Ok(Visibility::of(principal, partners))
}

/// [`require`] for a read of `owner`'s records that its partners may also make: the caller
/// needs a role that may perform `action`, and [`visibility`] must show it `owner`'s records
/// (its own, a partner's that shared with it, or any for an auditor). Returns that visibility.
///
/// # Errors
/// 401 without a token, 403 when the caller may not.
pub fn require_visible(
    state: &AppState,
    caller: &Caller,
    action: Action,
    owner: &OrgId,
) -> Result<Visibility, ApiError> {
    require(caller, action, None)?;
    let visibility = visibility(state, caller)?;
    if visibility.sees(owner, &[]) {
        Ok(visibility)
    } else {
        let reader = caller.0.as_ref().map_or("", |p| p.org.as_str());
        Err(ApiError::Forbidden(format!(
            "{owner} does not share its records with {reader}"
        )))
    }
}

/// The routes of this module, on the node's state.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/whoami", get(whoami))
        .route("/v1/orgs/{org}", get(org))
        .route("/v1/orgs/{org}/members", get(members).post(add_member))
        .route(
            "/v1/orgs/{org}/members/{member}/tokens",
            get(tokens).post(issue_token),
        )
        .route("/v1/tokens/{id}", delete(revoke_token))
        .route("/v1/admin/orgs", post(admin_create_org))
        .route("/v1/admin/orgs/{org}/members", post(admin_add_member))
        .route(
            "/v1/admin/orgs/{org}/members/{member}/tokens",
            post(admin_issue_token),
        )
        .route("/v1/admin/tokens/{id}", delete(admin_revoke_token))
}

fn parse<T: std::str::FromStr>(what: &str, text: &str) -> Result<T, ApiError>
where
    T::Err: std::fmt::Display,
{
    text.parse()
        .map_err(|e| ApiError::BadRequest(format!("{what}: {e}")))
}

fn directory_error(error: DirectoryError) -> ApiError {
    match error {
        DirectoryError::Exists(what) => ApiError::Conflict(format!("{what} already exists")),
        DirectoryError::NotFound(what) => ApiError::NotFound(format!("{what} does not exist")),
        DirectoryError::Invalid(why) => ApiError::BadRequest(why),
        other => ApiError::Internal(format!("{other:#?}")),
    }
}

fn created(value: &serde_json::Value) -> Response {
    json_status(StatusCode::CREATED, value)
}

fn ok(value: &serde_json::Value) -> Response {
    json_status(StatusCode::OK, value)
}

fn token_json(record: &TokenRecord) -> serde_json::Value {
    json!({
        "id": record.id.to_string(),
        "org": record.org,
        "member": record.member,
        "label": record.label,
        "created_ms": record.created_ms,
        "revoked_ms": record.revoked_ms,
    })
}

async fn whoami(caller: Caller) -> Result<Response, ApiError> {
    let principal = caller.0.ok_or(ApiError::Unauthorized(
        "this needs an API token (Authorization: Bearer <token>)",
    ))?;
    Ok(ok(&json!({
        "org": principal.org,
        "member": principal.member,
        "roles": principal.roles,
        "token": principal.token.to_string(),
    })))
}

async fn org(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
) -> Result<Response, ApiError> {
    let org: OrgId = parse("organisation", &org)?;
    require(&caller, Action::ReadOrg, Some(&org))?;
    let found = state
        .directory
        .org(&org)
        .map_err(directory_error)?
        .ok_or_else(|| ApiError::NotFound(format!("organisation {org} does not exist")))?;
    Ok(ok(&json!(found)))
}

async fn members(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
    paging: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let org: OrgId = parse("organisation", &org)?;
    require(&caller, Action::ReadOrg, Some(&org))?;
    let paging = query(paging)?;
    let page = Page::of(paging.limit, paging.next.as_deref())?;
    let (members, next) = state
        .directory
        .members(&org, &page)
        .map_err(directory_error)?;
    Ok(ok(&json!({ "members": members, "next": next })))
}

/// A new member.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewMember {
    id: String,
    name: String,
    roles: Vec<String>,
}

async fn add_member(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let org: OrgId = parse("organisation", &org)?;
    require(&caller, Action::ManageOrg, Some(&org))?;
    let body: NewMember = json_body(&body)?;
    if let Some(role) = body.roles.iter().find(|r| {
        crate::auth::policy::OPERATOR_GRANTED
            .iter()
            .any(|g| g.name() == r.as_str())
    }) {
        return Err(ApiError::Forbidden(format!(
            "the {role} role reads across organisations and is granted only by the node's \
             operator (agritrace admin add-member)"
        )));
    }
    let op = AdminOp::AddMember {
        org: org.to_string(),
        id: body.id,
        name: body.name,
        roles: body.roles,
    };
    Ok(created(&op.apply(&state.directory).await?))
}

/// Whether the caller is the member named in the path.
fn is_self(caller: &Caller, org: &OrgId, member: &MemberId) -> bool {
    caller
        .0
        .as_ref()
        .is_some_and(|p| p.org == *org && p.member == *member)
}

async fn tokens(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, member)): Path<(String, String)>,
    paging: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let org: OrgId = parse("organisation", &org)?;
    let member: MemberId = parse("member id", &member)?;
    if !is_self(&caller, &org, &member) {
        require(&caller, Action::ManageOrg, Some(&org))?;
    }
    let paging = query(paging)?;
    let page = Page::of(paging.limit, paging.next.as_deref())?;
    let (tokens, next) = state
        .directory
        .tokens(&org, &member, &page)
        .map_err(directory_error)?;
    let tokens: Vec<serde_json::Value> = tokens.iter().map(token_json).collect();
    Ok(ok(&json!({ "tokens": tokens, "next": next })))
}

/// A new token's label.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewToken {
    #[serde(default)]
    label: String,
}

async fn issue_token(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, member)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let org: OrgId = parse("organisation", &org)?;
    let member: MemberId = parse("member id", &member)?;
    require(&caller, Action::ManageOrg, Some(&org))?;
    let body: NewToken = json_body(&body)?;
    let op = AdminOp::IssueToken {
        org: org.to_string(),
        member: member.to_string(),
        label: body.label,
    };
    Ok(created(&op.apply(&state.directory).await?))
}

async fn revoke_token(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id: TokenId = parse("token id", &id)?;
    // The holder may revoke its own token; otherwise an admin of its organisation. Whether a
    // token exists is told only to those who may manage their own organisation's tokens.
    match state.directory.token(id).map_err(directory_error)? {
        Some(record) if is_self(&caller, &record.org, &record.member) => {}
        Some(record) => require(&caller, Action::ManageOrg, Some(&record.org))?,
        None => {
            require(
                &caller,
                Action::ManageOrg,
                caller.0.as_ref().map(|p| &p.org),
            )?;
            return Err(ApiError::NotFound(format!("token {id} does not exist")));
        }
    }
    let revoked = state
        .directory
        .revoke_token(id)
        .await
        .map_err(directory_error)?;
    Ok(ok(&token_json(&revoked)))
}

/// Bootstrap routes are for the operator on the node's own host.
pub(crate) fn local_only(peer: SocketAddr) -> Result<(), ApiError> {
    if peer.ip().is_loopback() {
        Ok(())
    } else {
        Err(ApiError::Forbidden(
            "administration is allowed from the node's own host only".to_owned(),
        ))
    }
}

/// A new organisation.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewOrg {
    id: String,
    name: String,
    country: String,
}

/// An operator's bootstrap operation: what `agritrace admin` asks of the node on its own host
/// (or applies directly to the data directory when no node runs). Both paths run
/// [`AdminOp::apply`], so they answer alike.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminOp {
    /// Create an organisation.
    CreateOrg {
        /// Its id.
        id: String,
        /// Its name.
        name: String,
        /// ISO 3166-1 alpha-2 country code.
        country: String,
    },
    /// Add a member to an organisation.
    AddMember {
        /// The organisation.
        org: String,
        /// The member's id.
        id: String,
        /// Its name.
        name: String,
        /// Its roles by name.
        roles: Vec<String>,
    },
    /// Issue a token for a member.
    IssueToken {
        /// The organisation.
        org: String,
        /// The member.
        member: String,
        /// The token's label.
        label: String,
    },
    /// Revoke a token.
    RevokeToken {
        /// The token id (16 hex digits).
        id: String,
    },
}

impl AdminOp {
    /// The HTTP method, path and JSON body of the operation on the node.
    #[must_use]
    pub fn request(&self) -> (&'static str, String, serde_json::Value) {
        match self {
            Self::CreateOrg { id, name, country } => (
                "POST",
                "/v1/admin/orgs".to_owned(),
                json!({ "id": id, "name": name, "country": country }),
            ),
            Self::AddMember {
                org,
                id,
                name,
                roles,
            } => (
                "POST",
                format!("/v1/admin/orgs/{org}/members"),
                json!({ "id": id, "name": name, "roles": roles }),
            ),
            Self::IssueToken { org, member, label } => (
                "POST",
                format!("/v1/admin/orgs/{org}/members/{member}/tokens"),
                json!({ "label": label }),
            ),
            Self::RevokeToken { id } => ("DELETE", format!("/v1/admin/tokens/{id}"), json!({})),
        }
    }

    /// Applies the operation to `directory`; the answer is what the node's route answers.
    ///
    /// # Errors
    /// [`ApiError`] as the route would answer it.
    pub async fn apply(
        &self,
        directory: &Directory<Storage>,
    ) -> Result<serde_json::Value, ApiError> {
        match self {
            Self::CreateOrg { id, name, country } => {
                let id: OrgId = parse("organisation id", id)?;
                let org = directory
                    .create_org(id, name, country)
                    .await
                    .map_err(directory_error)?;
                Ok(json!(org))
            }
            Self::AddMember {
                org,
                id,
                name,
                roles,
            } => {
                let org: OrgId = parse("organisation", org)?;
                let id: MemberId = parse("member id", id)?;
                let roles = roles
                    .iter()
                    .map(|r| parse::<Role>("role", r))
                    .collect::<Result<BTreeSet<Role>, _>>()?;
                let member = directory
                    .add_member(&org, id, name, roles)
                    .await
                    .map_err(directory_error)?;
                Ok(json!(member))
            }
            Self::IssueToken { org, member, label } => {
                let org: OrgId = parse("organisation", org)?;
                let member: MemberId = parse("member id", member)?;
                let (record, token) = directory
                    .issue_token(&org, &member, label)
                    .await
                    .map_err(directory_error)?;
                let mut value = token_json(&record);
                value["token"] = json!(token.reveal());
                value["note"] = json!("the token is shown this once; store it now");
                Ok(value)
            }
            Self::RevokeToken { id } => {
                let id: TokenId = parse("token id", id)?;
                if directory.token(id).map_err(directory_error)?.is_none() {
                    return Err(ApiError::NotFound(format!("token {id} does not exist")));
                }
                let record = directory.revoke_token(id).await.map_err(directory_error)?;
                Ok(token_json(&record))
            }
        }
    }
}

async fn admin_create_org(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    body: Bytes,
) -> Result<Response, ApiError> {
    local_only(peer)?;
    let body: NewOrg = json_body(&body)?;
    let op = AdminOp::CreateOrg {
        id: body.id,
        name: body.name,
        country: body.country,
    };
    Ok(created(&op.apply(&state.directory).await?))
}

async fn admin_add_member(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(org): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    local_only(peer)?;
    let body: NewMember = json_body(&body)?;
    let op = AdminOp::AddMember {
        org,
        id: body.id,
        name: body.name,
        roles: body.roles,
    };
    Ok(created(&op.apply(&state.directory).await?))
}

async fn admin_issue_token(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((org, member)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    local_only(peer)?;
    let body: NewToken = json_body(&body)?;
    let op = AdminOp::IssueToken {
        org,
        member,
        label: body.label,
    };
    Ok(created(&op.apply(&state.directory).await?))
}

async fn admin_revoke_token(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    local_only(peer)?;
    Ok(ok(&AdminOp::RevokeToken { id }
        .apply(&state.directory)
        .await?))
}
