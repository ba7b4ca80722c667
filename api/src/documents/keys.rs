//! An organisation's document-signing keys (issuer keys): registered and revoked as
//! `IssuerKeyEvent` entries, each committed in one round with the key's record (and, for a
//! node-held key, its secret). A key is named by its key id, the hex SHA-256 of the public
//! key, and belongs to one organisation on the node.
//!
//! Two custodies: **node** — the node draws the key from the operating system's randomness,
//! keeps its 32-byte seed in its store (`doc_issuer_secrets`; at rest in the node's store
//! until key custody is hardened) and signs the proof of possession and, when asked, anchors
//! itself; **client** — the organisation holds the key and proves it by signing
//! `ledger::entry::issuer_key_message(org, key)` (refused with 422 unless that signature
//! verifies, or the key is a weak point). A revocation overwrites a node-held seed with
//! nothing in the same round.

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use ingest::IngestStorage;
use ledger::entry::{Entry, IssuerKeyAction, IssuerKeyEvent, Token, issuer_key_message};
use ledger::merkle::{Hash, leaf_hash};
use ledger::storage::SidecarRecord;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::store::{Documents, internal, random, unhex32, unhex64};
use super::{ISSUER_KEYS, ISSUER_KEYS_BY_ORG, ISSUER_SECRETS};
use crate::access::{Caller, require};
use crate::auth::directory::ORGS;
use crate::auth::{Action, MemberId, OrgId};
use crate::http::{ApiError, AppState, hex, json_body, json_status};
use crate::paging::{Page, PageQuery, cursor, query};

/// Who holds a key's secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Custody {
    /// The node (its store).
    Node,
    /// The organisation, outside the node.
    Client,
}

/// A log entry about a key or document: where it is and when it was made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEventRef {
    /// `leaf_hash(entry)`, hex.
    pub entry_leaf_hash: String,
    /// The durable log size when it was submitted.
    pub log_size_before: u64,
    /// Its leaf index, once known.
    pub leaf_index: Option<u64>,
    /// When (Unix ms, the node's clock; also the entry's `effective_time_ms`).
    pub time_ms: u64,
    /// The member who asked for it.
    pub by: MemberId,
}

/// An issuer key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuerKeyRecord {
    /// Its organisation.
    pub org: OrgId,
    /// SHA-256 of the public key, hex.
    pub key_id: String,
    /// The Ed25519 public key, hex.
    pub public_key: String,
    /// Who holds the secret.
    pub custody: Custody,
    /// The registration's proof of possession, hex (kept to rebuild the entry).
    pub possession_signature: String,
    /// Its registration.
    pub registered: LogEventRef,
    /// Its revocation.
    pub revoked: Option<LogEventRef>,
}

impl IssuerKeyRecord {
    /// The public key.
    ///
    /// # Errors
    /// 500 if the record is corrupt.
    pub fn verifying_key(&self) -> Result<VerifyingKey, ApiError> {
        let bytes = unhex32(&self.public_key).ok_or_else(|| internal("a stored key is not hex"))?;
        VerifyingKey::from_bytes(&bytes).map_err(internal)
    }
}

fn org_token(org: &OrgId) -> Result<Token, ApiError> {
    // Organisation ids are a subset of the entry's token alphabet and at most 63 bytes.
    Token::new(org.as_str()).map_err(internal)
}

fn by_org_key(org: &OrgId, key_id: &[u8; 32]) -> Vec<u8> {
    let mut key = by_org_prefix(org);
    key.extend_from_slice(key_id);
    key
}

fn by_org_prefix(org: &OrgId) -> Vec<u8> {
    let mut key = org.as_str().as_bytes().to_vec();
    key.push(0);
    key
}

impl Documents {
    /// The issuer key with this id.
    ///
    /// # Errors
    /// 500 if the store fails or the record is corrupt.
    pub fn issuer_key(&self, key_id: &[u8; 32]) -> Result<Option<IssuerKeyRecord>, ApiError> {
        self.get(ISSUER_KEYS, key_id)
    }

    /// A key event's leaf index (searched for if the record does not hold it).
    ///
    /// # Errors
    /// 500 if the store fails.
    pub async fn event_index(&self, event: &LogEventRef) -> Result<Option<u64>, ApiError> {
        self.leaf_index(
            event.leaf_index,
            &event.entry_leaf_hash,
            event.log_size_before,
        )
        .await
    }

    /// Whether `key` was valid for an anchor at `anchor_index`: registered before it in the
    /// log and not revoked before it (log order, not a clock). `None` while an index is not
    /// known.
    ///
    /// # Errors
    /// 500 if the store fails.
    pub async fn key_valid_at(
        &self,
        key: &IssuerKeyRecord,
        anchor_index: u64,
    ) -> Result<Option<bool>, ApiError> {
        let Some(registered) = self.event_index(&key.registered).await? else {
            return Ok(None);
        };
        let revoked = match &key.revoked {
            Some(event) => match self.event_index(event).await? {
                Some(index) => Some(index),
                None => return Ok(None),
            },
            None => None,
        };
        Ok(Some(
            registered < anchor_index && revoked.is_none_or(|r| anchor_index < r),
        ))
    }

    /// Registers a key of `org` (the caller has checked the proof of possession, or made the
    /// key). 409 if the key is registered already, by any organisation.
    async fn register_key(
        &self,
        org: &OrgId,
        public_key: [u8; 32],
        possession_signature: [u8; 64],
        seed: Option<[u8; 32]>,
        by: MemberId,
    ) -> Result<IssuerKeyRecord, ApiError> {
        let event = IssuerKeyEvent {
            issuer_org: org_token(org)?,
            action: IssuerKeyAction::Register,
            public_key,
            effective_time_ms: self.now_ms(),
            possession_signature: Some(possession_signature),
        };
        let key_id = event.key_id();
        let entry = Entry::IssuerKeyEvent(event.clone())
            .encode()
            .map_err(internal)?;
        let _guard = self.write.lock().await;
        if self.issuer_key(&key_id.0)?.is_some() {
            return Err(ApiError::Conflict(format!(
                "issuer key {} is registered already",
                key_id.to_hex()
            )));
        }
        let mut record = IssuerKeyRecord {
            org: org.clone(),
            key_id: key_id.to_hex(),
            public_key: hex(&public_key),
            custody: if seed.is_some() {
                Custody::Node
            } else {
                Custody::Client
            },
            possession_signature: hex(&possession_signature),
            registered: LogEventRef {
                entry_leaf_hash: leaf_hash(&entry).to_hex(),
                log_size_before: self.sequencer.durable_state().size,
                leaf_index: None,
                time_ms: event.effective_time_ms,
                by,
            },
            revoked: None,
        };
        let mut sidecars = vec![
            key_sidecar(&record)?,
            SidecarRecord {
                table: ISSUER_KEYS_BY_ORG.to_owned(),
                key: by_org_key(org, &key_id.0),
                value: Vec::new(),
            },
        ];
        if let Some(seed) = seed {
            sidecars.push(SidecarRecord {
                table: ISSUER_SECRETS.to_owned(),
                key: key_id.0.to_vec(),
                value: seed.to_vec(),
            });
        }
        let landed = || Ok(self.issuer_key(&key_id.0)?.is_some());
        if let Some(index) = self.submit(entry, sidecars, landed).await? {
            record.registered.leaf_index = Some(index.0);
            self.storage()
                .put_records(vec![key_sidecar(&record)?])
                .await
                .map_err(internal)?;
        }
        Ok(record)
    }

    /// Revokes a key of `org`; a node-held secret is erased in the same round.
    async fn revoke_key(
        &self,
        org: &OrgId,
        key_id: &[u8; 32],
        by: MemberId,
    ) -> Result<IssuerKeyRecord, ApiError> {
        let _guard = self.write.lock().await;
        let mut record = self
            .issuer_key(key_id)?
            .filter(|k| k.org == *org)
            .ok_or_else(|| {
                ApiError::NotFound(format!("{org} has no issuer key {}", hex(key_id)))
            })?;
        if record.revoked.is_some() {
            return Err(ApiError::Conflict(format!(
                "issuer key {} is revoked already",
                record.key_id
            )));
        }
        let public_key =
            unhex32(&record.public_key).ok_or_else(|| internal("a stored key is not hex"))?;
        let event = IssuerKeyEvent {
            issuer_org: org_token(org)?,
            action: IssuerKeyAction::Revoke,
            public_key,
            effective_time_ms: self.now_ms(),
            possession_signature: None,
        };
        let entry = Entry::IssuerKeyEvent(event.clone())
            .encode()
            .map_err(internal)?;
        let leaf = leaf_hash(&entry).to_hex();
        record.revoked = Some(LogEventRef {
            entry_leaf_hash: leaf.clone(),
            log_size_before: self.sequencer.durable_state().size,
            leaf_index: None,
            time_ms: event.effective_time_ms,
            by,
        });
        let mut sidecars = vec![key_sidecar(&record)?];
        if record.custody == Custody::Node {
            sidecars.push(SidecarRecord {
                table: ISSUER_SECRETS.to_owned(),
                key: key_id.to_vec(),
                value: Vec::new(),
            });
        }
        let landed = || {
            Ok(self
                .issuer_key(key_id)?
                .and_then(|k| k.revoked)
                .is_some_and(|r| r.entry_leaf_hash == leaf))
        };
        if let Some(index) = self.submit(entry, sidecars, landed).await? {
            if let Some(revoked) = record.revoked.as_mut() {
                revoked.leaf_index = Some(index.0);
            }
            self.storage()
                .put_records(vec![key_sidecar(&record)?])
                .await
                .map_err(internal)?;
        }
        Ok(record)
    }

    /// The most recently registered node-held key of `org` that is not revoked, with its
    /// signing key. Called with the write lock held.
    pub(super) fn node_key(
        &self,
        org: &OrgId,
    ) -> Result<Option<(IssuerKeyRecord, SigningKey)>, ApiError> {
        let prefix = by_org_prefix(org);
        let mut best: Option<IssuerKeyRecord> = None;
        let mut after: Option<Vec<u8>> = None;
        loop {
            let rows = self.ids_under(
                ISSUER_KEYS_BY_ORG,
                &prefix,
                after.as_deref(),
                super::DOCUMENTS_EXAMINED_MAX,
            )?;
            let done = rows.len() < super::DOCUMENTS_EXAMINED_MAX;
            for (key, id) in rows {
                after = Some(key);
                let Some(record) = self.get::<IssuerKeyRecord>(ISSUER_KEYS, &id)? else {
                    continue;
                };
                if record.custody == Custody::Node
                    && record.revoked.is_none()
                    && best
                        .as_ref()
                        .is_none_or(|b| record.registered.time_ms >= b.registered.time_ms)
                {
                    best = Some(record);
                }
            }
            if done {
                break;
            }
        }
        let Some(record) = best else {
            return Ok(None);
        };
        let key_id = unhex32(&record.key_id).ok_or_else(|| internal("a stored key id"))?;
        let seed = self
            .storage()
            .read(ISSUER_SECRETS, &key_id)
            .map_err(internal)?
            .and_then(|s| <[u8; 32]>::try_from(s.as_slice()).ok())
            .ok_or_else(|| internal("a node-held issuer key has no secret"))?;
        Ok(Some((record, SigningKey::from_bytes(&seed))))
    }

    /// The exact bytes of a key's registration (`revocation` false) or revocation entry,
    /// rebuilt from its record.
    ///
    /// # Errors
    /// 500 if the record is corrupt or has no such event.
    pub fn key_event_entry(
        &self,
        record: &IssuerKeyRecord,
        revocation: bool,
    ) -> Result<Vec<u8>, ApiError> {
        let public_key =
            unhex32(&record.public_key).ok_or_else(|| internal("a stored key is not hex"))?;
        let event = if revocation {
            let revoked = record
                .revoked
                .as_ref()
                .ok_or_else(|| internal("the key is not revoked"))?;
            IssuerKeyEvent {
                issuer_org: org_token(&record.org)?,
                action: IssuerKeyAction::Revoke,
                public_key,
                effective_time_ms: revoked.time_ms,
                possession_signature: None,
            }
        } else {
            IssuerKeyEvent {
                issuer_org: org_token(&record.org)?,
                action: IssuerKeyAction::Register,
                public_key,
                effective_time_ms: record.registered.time_ms,
                possession_signature: Some(
                    unhex64(&record.possession_signature)
                        .ok_or_else(|| internal("a stored possession signature"))?,
                ),
            }
        };
        Entry::IssuerKeyEvent(event).encode().map_err(internal)
    }

    /// A key's JSON answer, with the log indexes of its events.
    pub(super) async fn key_json(&self, record: &IssuerKeyRecord) -> Result<Value, ApiError> {
        let registered = self.event_index(&record.registered).await?;
        let revoked = match &record.revoked {
            Some(event) => Some((event, self.event_index(event).await?)),
            None => None,
        };
        Ok(json!({
            "key_id": record.key_id,
            "org": record.org,
            "public_key": record.public_key,
            "custody": record.custody,
            "status": if record.revoked.is_some() { "revoked" } else { "active" },
            "registered": {
                "leaf_index": registered,
                "time_ms": record.registered.time_ms,
                "entry_leaf_hash": record.registered.entry_leaf_hash,
            },
            "revoked": revoked.map(|(event, index)| json!({
                "leaf_index": index,
                "time_ms": event.time_ms,
                "entry_leaf_hash": event.entry_leaf_hash,
            })),
        }))
    }
}

fn key_sidecar(record: &IssuerKeyRecord) -> Result<SidecarRecord, ApiError> {
    let key_id = unhex32(&record.key_id).ok_or_else(|| internal("a key id is not hex"))?;
    Ok(SidecarRecord {
        table: ISSUER_KEYS.to_owned(),
        key: key_id.to_vec(),
        value: serde_json::to_vec(record).map_err(internal)?,
    })
}

fn bad(reason: impl Into<String>) -> ApiError {
    ApiError::BadRequest(reason.into())
}

fn org_of(text: &str) -> Result<OrgId, ApiError> {
    text.parse().map_err(|e| bad(format!("organisation: {e}")))
}

pub(super) fn key_id_of(text: &str) -> Result<[u8; 32], ApiError> {
    unhex32(text).ok_or_else(|| bad("key id: 64 hex digits (SHA-256 of the public key)"))
}

/// A key to register.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewKey {
    #[serde(default)]
    custody: Option<Custody>,
    #[serde(default)]
    public_key: Option<String>,
    #[serde(default)]
    possession_signature: Option<String>,
}

pub(super) async fn register(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let org = org_of(&org)?;
    require(&caller, Action::ManageOrg, Some(&org))?;
    let principal = caller
        .0
        .as_ref()
        .ok_or(ApiError::Unauthorized("this needs an API token"))?;
    let new: NewKey = json_body(&body)?;
    if state
        .documents
        .storage()
        .read(ORGS, org.as_str().as_bytes())
        .map_err(internal)?
        .is_none()
    {
        return Err(ApiError::NotFound(format!(
            "organisation {org} does not exist"
        )));
    }
    let token = org_token(&org)?;
    let docs = &state.documents;
    let record = match (new.custody, new.public_key, new.possession_signature) {
        (Some(Custody::Node), None, None) => {
            let seed = random::<32>()?;
            let signing = SigningKey::from_bytes(&seed);
            let public_key = signing.verifying_key().to_bytes();
            let signature = signing.sign(&issuer_key_message(&token, &public_key));
            docs.register_key(
                &org,
                public_key,
                signature.to_bytes(),
                Some(seed),
                principal.member.clone(),
            )
            .await?
        }
        (None | Some(Custody::Client), Some(public_key), Some(signature)) => {
            let public_key = unhex32(&public_key)
                .ok_or_else(|| bad("public_key: 64 hex digits (an Ed25519 public key)"))?;
            let signature = unhex64(&signature)
                .ok_or_else(|| bad("possession_signature: 128 hex digits (Ed25519)"))?;
            let key = VerifyingKey::from_bytes(&public_key).map_err(|_| {
                ApiError::Unprocessable("public_key is not an Ed25519 public key".to_owned())
            })?;
            if key.is_weak() {
                return Err(ApiError::Unprocessable(
                    "public_key is a weak (small-order) key".to_owned(),
                ));
            }
            key.verify_strict(
                &issuer_key_message(&token, &public_key),
                &Signature::from_bytes(&signature),
            )
            .map_err(|_| {
                ApiError::Unprocessable(
                    "possession_signature does not verify: sign \
                     \"agritrace/issuer-key/v1\\n\" || len:u8 || org || public_key with the key"
                        .to_owned(),
                )
            })?;
            docs.register_key(&org, public_key, signature, None, principal.member.clone())
                .await?
        }
        _ => {
            return Err(bad(
                "give {\"custody\":\"node\"} for a key the node holds, or \
                 {\"public_key\", \"possession_signature\"} for one you hold",
            ));
        }
    };
    Ok(json_status(
        StatusCode::CREATED,
        &docs.key_json(&record).await?,
    ))
}

pub(super) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
    paging: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let org = org_of(&org)?;
    require(&caller, Action::ReadOrg, Some(&org))?;
    let paging = query(paging)?;
    let page = Page::of(paging.limit, paging.next.as_deref())?;
    let docs = &state.documents;
    let rows = docs.ids_under(
        ISSUER_KEYS_BY_ORG,
        &by_org_prefix(&org),
        page.after.as_deref(),
        page.limit + 1,
    )?;
    let more = rows.len() > page.limit;
    let rows = &rows[..rows.len().min(page.limit)];
    let mut keys = Vec::with_capacity(rows.len());
    for (_, id) in rows {
        if let Some(record) = docs.get::<IssuerKeyRecord>(ISSUER_KEYS, id)? {
            keys.push(docs.key_json(&record).await?);
        }
    }
    let next = if more {
        rows.last().map(|(key, _)| cursor(key))
    } else {
        None
    };
    Ok(json_status(
        StatusCode::OK,
        &json!({ "keys": keys, "next": next }),
    ))
}

pub(super) async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, key_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let org = org_of(&org)?;
    require(&caller, Action::ManageOrg, Some(&org))?;
    let principal = caller
        .0
        .as_ref()
        .ok_or(ApiError::Unauthorized("this needs an API token"))?;
    let key_id = key_id_of(&key_id)?;
    let docs = &state.documents;
    let record = docs
        .revoke_key(&org, &key_id, principal.member.clone())
        .await?;
    Ok(json_status(StatusCode::OK, &docs.key_json(&record).await?))
}

pub(super) async fn public_key(
    State(state): State<AppState>,
    caller: Caller,
    Path(key_id): Path<String>,
) -> Result<Response, ApiError> {
    require(&caller, Action::ReadPublic, None)?;
    let key_id = key_id_of(&key_id)?;
    let docs = &state.documents;
    let record = docs
        .issuer_key(&key_id)?
        .ok_or_else(|| ApiError::NotFound(format!("no issuer key {}", Hash(key_id).to_hex())))?;
    Ok(json_status(StatusCode::OK, &docs.key_json(&record).await?))
}
