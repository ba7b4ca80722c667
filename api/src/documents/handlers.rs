//! The document routes: upload, read, sign, revoke, supersede, the customs check by content
//! and the consumer's view of a lot's certificates (see the module documentation for the
//! table), and the anchoring itself: a pending anchor signed by the issuer becomes a
//! `DocumentAnchor` entry committed with the document's records in one round.

use std::collections::BTreeSet;

use axum::body::{Body, Bytes};
use axum::extract::multipart::MultipartRejection;
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequest, Multipart, Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use ed25519_dalek::{Signature, Signer, VerifyingKey};
use gs1::Gtin;
use ingest::IngestStorage;
use ledger::entry::{DocumentAnchor, Entry, Token, document_anchor_message, salted_commitment};
use ledger::merkle::{Hash, leaf_hash};
use ledger::sequencer::ServeProofError;
use ledger::storage::SidecarRecord;
use serde::Deserialize;
use serde_json::{Value, json};

use super::form::{self, Form};
use super::keys::key_id_of;
use super::store::{Documents, internal, random, unhex32, unhex64};
use super::{
    AnchorAction, AnchorRecord, BY_HASH, BY_ITEM, DOCUMENT_LOTS_MAX, DOCUMENTS,
    DOCUMENTS_EXAMINED_MAX, DocumentRecord, DocumentStatus, DocumentType, MEDIA_TYPE_BYTES_MAX,
    NUMBER_CHARS_MAX, PendingAnchor, REASON_CHARS_MAX, ReplacesRecord, ShipmentRef, lot_item,
    may_read,
};
use crate::access::{Caller, require, visibility};
use crate::auth::directory::ORGS;
use crate::auth::{Action, MemberId, OrgId, Principal};
use crate::http::{ApiError, AppState, hex, json_body, json_status};
use crate::paging::{Page, cursor, query};
use crate::trade::LotRef;

fn bad(reason: impl Into<String>) -> ApiError {
    ApiError::BadRequest(reason.into())
}

fn principal(caller: &Caller) -> Result<&Principal, ApiError> {
    caller.0.as_ref().ok_or(ApiError::Unauthorized(
        "this needs an API token (Authorization: Bearer <token>)",
    ))
}

fn not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("no document {id}"))
}

/// The document `id` if the caller may read it; 404 otherwise (its existence is not told).
fn readable(state: &AppState, caller: &Caller, id: &str) -> Result<DocumentRecord, ApiError> {
    require(caller, Action::ReadRecords, None)?;
    state
        .documents
        .document(id)?
        .filter(|record| may_read(caller, record))
        .ok_or_else(|| not_found(id))
}

fn token(text: &str) -> Result<Token, ApiError> {
    Token::new(text).map_err(internal)
}

/// The commitment and the message the issuer signs for an anchor of `record` with `salt`.
fn anchor_message(
    record: &DocumentRecord,
    salt: &[u8; 32],
    replaces: Option<ReplacesRecord>,
) -> Result<(Hash, Vec<u8>), ApiError> {
    let sha256 = unhex32(&record.sha256).ok_or_else(|| internal("a stored hash"))?;
    let commitment = salted_commitment(salt, &sha256);
    let message = document_anchor_message(
        &commitment,
        &token(record.document_type.as_str())?,
        &token(record.issuer.as_str())?,
        replaces.map(ReplacesRecord::to_entry),
    );
    Ok((commitment, message))
}

/// The entry an anchor record stands for, rebuilt from the record (its leaf hash is the
/// record's `entry_leaf_hash`).
///
/// # Errors
/// 500 if the record is corrupt.
pub(super) fn anchor_entry(
    record: &DocumentRecord,
    anchor: &AnchorRecord,
) -> Result<DocumentAnchor, ApiError> {
    Ok(DocumentAnchor {
        commitment: Hash(
            unhex32(&anchor.commitment).ok_or_else(|| internal("a stored commitment"))?,
        ),
        document_type: token(record.document_type.as_str())?,
        issuer_org: token(record.issuer.as_str())?,
        issuer_key_id: Hash(unhex32(&anchor.key_id).ok_or_else(|| internal("a stored key id"))?),
        issuer_signature: unhex64(&anchor.signature)
            .ok_or_else(|| internal("a stored signature"))?,
        replaces: anchor.replaces.map(ReplacesRecord::to_entry),
    })
}

/// How a pending anchor is signed.
enum SignWith {
    /// The issuer's node-held key.
    Node,
    /// A detached signature by the issuer's key.
    Client {
        key_id: [u8; 32],
        signature: [u8; 64],
    },
}

fn document_sidecars(records: &[&DocumentRecord]) -> Result<Vec<SidecarRecord>, ApiError> {
    records
        .iter()
        .map(|record| {
            Ok(SidecarRecord {
                table: DOCUMENTS.to_owned(),
                key: record.id.as_bytes().to_vec(),
                value: serde_json::to_vec(record).map_err(internal)?,
            })
        })
        .collect()
}

impl Documents {
    /// Refuses (422) to go on when `sign_by` asks for the node's signature and the issuer has
    /// no node-held key that is not revoked. Called with the write lock held, before writing.
    fn check_node_key(&self, issuer: &OrgId, sign_by: Option<&MemberId>) -> Result<(), ApiError> {
        if sign_by.is_some() && self.node_key(issuer)?.is_none() {
            return Err(no_node_key(issuer));
        }
        Ok(())
    }

    /// Stores a new (pending) document and its file (once per content) in one transaction,
    /// and signs it with the issuer's node-held key if `sign_by` names who asks (checked
    /// before anything is written).
    async fn store_new(
        &self,
        record: &DocumentRecord,
        content: &[u8],
        sign_by: Option<&MemberId>,
    ) -> Result<DocumentRecord, ApiError> {
        let sha256 = unhex32(&record.sha256).ok_or_else(|| internal("a hash"))?;
        let _guard = self.write.lock().await;
        self.check_node_key(&record.issuer, sign_by)?;
        let mut records = self.content_records(&sha256, content)?;
        records.extend(document_sidecars(&[record])?);
        let mut by_hash = sha256.to_vec();
        by_hash.extend_from_slice(record.id.as_bytes());
        records.push(SidecarRecord {
            table: BY_HASH.to_owned(),
            key: by_hash,
            value: Vec::new(),
        });
        for item in record.items() {
            let mut key = item.into_bytes();
            key.push(0);
            key.extend_from_slice(record.id.as_bytes());
            records.push(SidecarRecord {
                table: BY_ITEM.to_owned(),
                key,
                value: Vec::new(),
            });
        }
        self.storage()
            .put_records(records)
            .await
            .map_err(internal)?;
        match sign_by {
            Some(by) => self.sign_locked(&record.id, SignWith::Node, by).await,
            None => Ok(record.clone()),
        }
    }

    /// Sets a pending anchor on a committed document (a revocation), unless one waits; signs
    /// it at once as [`Documents::store_new`] does.
    async fn set_pending(
        &self,
        id: &str,
        pending: PendingAnchor,
        sign_by: Option<&MemberId>,
    ) -> Result<DocumentRecord, ApiError> {
        let _guard = self.write.lock().await;
        let mut record = self.document(id)?.ok_or_else(|| not_found(id))?;
        if record.status() != DocumentStatus::Valid {
            return Err(ApiError::Conflict(format!(
                "document {id} is {}; only a valid document can be revoked",
                status_name(record.status())
            )));
        }
        if record.pending.is_some() {
            return Err(ApiError::Conflict(format!(
                "document {id} has an anchor waiting for its issuer's signature"
            )));
        }
        self.check_node_key(&record.issuer, sign_by)?;
        record.pending = Some(pending);
        self.storage()
            .put_records(document_sidecars(&[&record])?)
            .await
            .map_err(internal)?;
        match sign_by {
            Some(by) => self.sign_locked(id, SignWith::Node, by).await,
            None => Ok(record),
        }
    }

    /// Signs the pending anchor of document `id` and commits it with the document's records
    /// (and, for a new version, the old version's) in one round.
    async fn sign_pending(
        &self,
        id: &str,
        with: SignWith,
        by: &MemberId,
    ) -> Result<DocumentRecord, ApiError> {
        let _guard = self.write.lock().await;
        self.sign_locked(id, with, by).await
    }

    /// [`Documents::sign_pending`] with the write lock held.
    async fn sign_locked(
        &self,
        id: &str,
        with: SignWith,
        by: &MemberId,
    ) -> Result<DocumentRecord, ApiError> {
        let mut record = self.document(id)?.ok_or_else(|| not_found(id))?;
        let Some(pending) = record.pending.clone() else {
            return Err(ApiError::Conflict(format!(
                "document {id} has no anchor waiting for a signature"
            )));
        };
        if pending.action == AnchorAction::Revoke && record.status() != DocumentStatus::Valid {
            return Err(ApiError::Conflict(format!(
                "document {id} is {} now; the revocation waiting for it has nothing to revoke",
                status_name(record.status())
            )));
        }
        let salt = unhex32(&pending.salt).ok_or_else(|| internal("a stored salt"))?;
        let (commitment, message) = anchor_message(&record, &salt, pending.replaces)?;
        let (key_id, signature) = match with {
            SignWith::Node => {
                let (key, signing) = self
                    .node_key(&record.issuer)?
                    .ok_or_else(|| no_node_key(&record.issuer))?;
                (key.key_id, signing.sign(&message).to_bytes())
            }
            SignWith::Client { key_id, signature } => {
                let key = self
                    .issuer_key(&key_id)?
                    .filter(|k| k.org == record.issuer)
                    .ok_or_else(|| {
                        ApiError::Unprocessable(format!(
                            "key {} is not an issuer key of {}",
                            hex(&key_id),
                            record.issuer
                        ))
                    })?;
                if key.revoked.is_some() {
                    return Err(ApiError::Unprocessable(format!(
                        "issuer key {} is revoked",
                        key.key_id
                    )));
                }
                key.verifying_key()?
                    .verify_strict(&message, &Signature::from_bytes(&signature))
                    .map_err(|_| {
                        ApiError::Unprocessable(
                            "the signature does not verify over the document's to_sign message \
                             with that key"
                                .to_owned(),
                        )
                    })?;
                (key.key_id, signature)
            }
        };
        // What the anchor replaces must still stand as it did when it was asked for.
        let mut old = match (pending.action, &record.supersedes) {
            (AnchorAction::Supersede, Some(old_id)) => {
                let old = self
                    .document(old_id)?
                    .ok_or_else(|| internal("a superseded document is missing"))?;
                if old.status() != DocumentStatus::Valid {
                    return Err(ApiError::Conflict(format!(
                        "document {old_id} is {} now; this version can no longer supersede it",
                        status_name(old.status())
                    )));
                }
                Some(old)
            }
            _ => None,
        };
        let mut anchor = AnchorRecord {
            action: pending.action,
            document: record.id.clone(),
            replaces: pending.replaces,
            salt: pending.salt.clone(),
            commitment: commitment.to_hex(),
            key_id,
            signature: hex(&signature),
            signed_by: by.clone(),
            reason: pending.reason.clone(),
            entry_leaf_hash: String::new(),
            log_size_before: self.sequencer.durable_state().size,
            leaf_index: None,
            time_ms: self.now_ms(),
        };
        let entry = Entry::DocumentAnchor(anchor_entry(&record, &anchor)?)
            .encode()
            .map_err(internal)?;
        let leaf = leaf_hash(&entry).to_hex();
        anchor.entry_leaf_hash.clone_from(&leaf);
        record.pending = None;
        record.anchors.push(anchor.clone());
        if let Some(old) = old.as_mut() {
            old.superseded_by = Some(record.id.clone());
            old.anchors.push(anchor);
        }
        let mut changed = vec![&record];
        changed.extend(old.as_ref());
        let sidecars = document_sidecars(&changed)?;
        let landed = || {
            Ok(self
                .document(id)?
                .is_some_and(|r| r.anchors.iter().any(|a| a.entry_leaf_hash == leaf)))
        };
        if let Some(index) = self.submit(entry, sidecars, landed).await? {
            for r in std::iter::once(&mut record).chain(old.as_mut()) {
                for a in &mut r.anchors {
                    if a.entry_leaf_hash == leaf {
                        a.leaf_index = Some(index.0);
                    }
                }
            }
            let mut changed = vec![&record];
            changed.extend(old.as_ref());
            self.storage()
                .put_records(document_sidecars(&changed)?)
                .await
                .map_err(internal)?;
        }
        Ok(record)
    }

    /// An anchor's JSON: where it is, what it does, who signed it with which key and whether
    /// that key was valid then; the salt and commitment for readers.
    async fn anchor_json(
        &self,
        record: &DocumentRecord,
        anchor: &AnchorRecord,
    ) -> Result<Value, ApiError> {
        let leaf_index = self
            .leaf_index(
                anchor.leaf_index,
                &anchor.entry_leaf_hash,
                anchor.log_size_before,
            )
            .await?;
        let (key_valid, verifies) = self.signature_check(record, anchor, leaf_index).await?;
        Ok(json!({
            "action": anchor.action,
            "document": anchor.document,
            "leaf_index": leaf_index,
            "replaces": anchor.replaces.map(|r| json!({
                "kind": if r.kind == AnchorAction::Revoke { "revokes" } else { "supersedes" },
                "leaf_index": r.leaf_index,
            })),
            "time_ms": anchor.time_ms,
            "reason": anchor.reason,
            "salt": anchor.salt,
            "commitment": anchor.commitment,
            "entry_leaf_hash": anchor.entry_leaf_hash,
            "signature": {
                "org": record.issuer,
                "signed_by": anchor.signed_by,
                "key_id": anchor.key_id,
                "key_valid": key_valid,
                "verifies": verifies,
            },
        }))
    }

    /// Whether an anchor's key was valid at its leaf index (`None` while unknown), and whether
    /// its signature verifies with that key.
    pub(super) async fn signature_check(
        &self,
        record: &DocumentRecord,
        anchor: &AnchorRecord,
        leaf_index: Option<u64>,
    ) -> Result<(Option<bool>, bool), ApiError> {
        // For a supersession seen from the old version, the anchor is the new version's.
        let signed = if anchor.document == record.id {
            record.clone()
        } else {
            match self.document(&anchor.document)? {
                Some(other) => other,
                None => return Ok((None, false)),
            }
        };
        let key_id = unhex32(&anchor.key_id).ok_or_else(|| internal("a stored key id"))?;
        let Some(key) = self.issuer_key(&key_id)? else {
            return Ok((Some(false), false));
        };
        let verifying: VerifyingKey = key.verifying_key()?;
        let verifies = anchor_entry(&signed, anchor)?.verify_issuer(&verifying);
        let valid = match leaf_index {
            Some(index) => self.key_valid_at(&key, index).await?,
            None => None,
        };
        Ok((valid, verifies))
    }

    /// A document's JSON for a reader: the record, its status, its history with signatures,
    /// and the message to sign while an anchor waits.
    pub(super) async fn document_json(&self, record: &DocumentRecord) -> Result<Value, ApiError> {
        let mut history = Vec::with_capacity(record.anchors.len());
        for anchor in &record.anchors {
            history.push(self.anchor_json(record, anchor).await?);
        }
        let pending = match &record.pending {
            Some(pending) => {
                let salt = unhex32(&pending.salt).ok_or_else(|| internal("a stored salt"))?;
                let (commitment, message) = anchor_message(record, &salt, pending.replaces)?;
                Some(json!({
                    "action": pending.action,
                    "replaces": pending.replaces.map(|r| r.leaf_index),
                    "requested_by": pending.requested_by,
                    "requested_org": pending.requested_org,
                    "requested_ms": pending.requested_ms,
                    "commitment": commitment.to_hex(),
                    "to_sign": hex(&message),
                }))
            }
            None => None,
        };
        Ok(json!({
            "id": record.id,
            "type": record.document_type,
            "number": record.number,
            "issuer": record.issuer,
            "uploader": record.uploader,
            "uploaded_by": record.uploaded_by,
            "shipment": record.shipment.as_ref().map(|s| format!("{}/{}", s.org, s.id)),
            "lots": record.lots.iter().map(lot_text).collect::<Vec<_>>(),
            "media_type": record.media_type,
            "sha256": record.sha256,
            "size_bytes": record.size_bytes,
            "created_ms": record.created_ms,
            "status": record.status(),
            "supersedes": record.supersedes,
            "superseded_by": record.superseded_by,
            "history": history,
            "pending": pending,
        }))
    }
}

fn no_node_key(issuer: &OrgId) -> ApiError {
    ApiError::Unprocessable(format!(
        "{issuer} has no node-held issuer key that is not revoked; register one \
         (POST /v1/orgs/{issuer}/issuer-keys {{\"custody\":\"node\"}})"
    ))
}

fn status_name(status: DocumentStatus) -> &'static str {
    match status {
        DocumentStatus::Pending => "pending",
        DocumentStatus::Valid => "valid",
        DocumentStatus::Revoked => "revoked",
        DocumentStatus::Superseded => "superseded",
    }
}

fn lot_text(lot: &LotRef) -> String {
    format!("{}/{}", lot.gtin.digits(), lot.lot)
}

/// A summary for lists: no salts, no history.
pub(super) fn summary_json(record: &DocumentRecord) -> Value {
    json!({
        "id": record.id,
        "type": record.document_type,
        "number": record.number,
        "issuer": record.issuer,
        "status": record.status(),
        "sha256": record.sha256,
        "created_ms": record.created_ms,
        "leaf_index": record.head().and_then(|a| a.leaf_index),
    })
}

/// A media type `type/subtype` (RFC 6838 characters), parameters allowed.
fn check_media_type(text: &str) -> Result<(), ApiError> {
    let essence = text.split(';').next().unwrap_or("").trim();
    let restricted = |part: &str| {
        !part.is_empty()
            && part.bytes().all(|b| {
                b.is_ascii_alphanumeric()
                    || matches!(
                        b,
                        b'!' | b'#' | b'$' | b'&' | b'-' | b'^' | b'_' | b'.' | b'+'
                    )
            })
    };
    let ok = text.len() <= MEDIA_TYPE_BYTES_MAX
        && text.bytes().all(|b| (0x20..0x7f).contains(&b))
        && essence
            .split_once('/')
            .is_some_and(|(t, s)| restricted(t) && restricted(s));
    if ok {
        Ok(())
    } else {
        Err(bad(format!(
            "media_type {text:?} is not a media type such as application/pdf"
        )))
    }
}

fn check_number(number: &str) -> Result<(), ApiError> {
    let count = number.chars().count();
    if number.trim().is_empty() || count > NUMBER_CHARS_MAX || number.chars().any(char::is_control)
    {
        return Err(bad(format!(
            "number must be 1 to {NUMBER_CHARS_MAX} characters without control characters"
        )));
    }
    Ok(())
}

/// A shipment named `{exporter}/{id}`, if it exists and the caller may see it (404 otherwise).
fn visible_shipment(
    state: &AppState,
    caller: &Caller,
    text: &str,
) -> Result<crate::trade::Shipment, ApiError> {
    let (org, id) = text.split_once('/').ok_or_else(|| {
        bad(format!(
            "shipment {text:?}: write it as {{exporter}}/{{id}}"
        ))
    })?;
    let org: OrgId = org.parse().map_err(|e| bad(format!("shipment: {e}")))?;
    let id: OrgId = id.parse().map_err(|e| bad(format!("shipment: {e}")))?;
    let seen = visibility(state, caller)?;
    state
        .trade
        .shipment(&org, &id)?
        .filter(|s| seen.sees(&s.org, &s.declared_to))
        .ok_or_else(|| ApiError::NotFound(format!("no shipment {org}/{id}")))
}

fn lot_ref(text: &str) -> Result<LotRef, ApiError> {
    let (gtin, lot) = text
        .split_once('/')
        .ok_or_else(|| bad(format!("lot {text:?}: write it as {{gtin}}/{{lot}}")))?;
    let gtin: Gtin = gtin
        .parse()
        .map_err(|e| bad(format!("lot {text:?}: gtin: {e}")))?;
    let lot = gs1::Lot::new(lot).map_err(|e| bad(format!("lot {text:?}: {e}")))?;
    Ok(LotRef { gtin, lot })
}

/// A lot, if it exists and the caller may see it (404 otherwise); its owner.
fn visible_lot(state: &AppState, caller: &Caller, lot: &LotRef) -> Result<OrgId, ApiError> {
    let seen = visibility(state, caller)?;
    state
        .trade
        .lot_by_key(&lot.gtin, lot.lot.as_str())?
        .filter(|l| seen.sees(&l.org, &[]))
        .map(|l| l.org)
        .ok_or_else(|| ApiError::NotFound(format!("no lot {}", lot_text(lot))))
}

/// The parts of an upload form.
const UPLOAD_PARTS: [&str; 7] = [
    "type",
    "number",
    "issuer",
    "shipment",
    "lot",
    "media_type",
    "sign",
];

/// Whether the form asks the node to sign at once.
fn sign_part(form: &Form) -> Result<bool, ApiError> {
    match form.one("sign")? {
        None => Ok(false),
        Some("node") => Ok(true),
        Some(other) => Err(bad(format!(
            "sign: {other:?}; the only value is \"node\" (sign with the issuer's node-held key)"
        ))),
    }
}

fn media_type_of(form: &Form, file: &form::FilePart) -> Result<String, ApiError> {
    let media_type = form
        .one("media_type")?
        .map(str::to_owned)
        .or_else(|| file.content_type.clone())
        .unwrap_or_else(|| "application/octet-stream".to_owned());
    check_media_type(&media_type)?;
    Ok(media_type)
}

/// What an upload says of a document, checked.
struct Draft {
    document_type: DocumentType,
    number: String,
    issuer: OrgId,
    media_type: String,
    shipment: Option<crate::trade::Shipment>,
    /// Each lot with its owner.
    lots: Vec<(LotRef, OrgId)>,
}

/// A new document record for a file, pending its first anchor (`pending`: what the anchor
/// does and replaces).
fn new_record(
    state: &AppState,
    principal: &Principal,
    file: &form::FilePart,
    draft: Draft,
    pending: (AnchorAction, Option<ReplacesRecord>),
    supersedes: Option<String>,
) -> Result<DocumentRecord, ApiError> {
    let Draft {
        document_type,
        number,
        issuer,
        media_type,
        shipment,
        lots,
    } = draft;
    let mut readers = BTreeSet::from([issuer.clone(), principal.org.clone()]);
    let mut authorities = BTreeSet::new();
    if let Some(shipment) = &shipment {
        readers.insert(shipment.org.clone());
        readers.extend(shipment.consignee.org.clone());
        authorities.extend(shipment.declared_to.iter().cloned());
    }
    readers.extend(lots.iter().map(|(_, owner)| owner.clone()));
    let now = state.documents.now_ms();
    Ok(DocumentRecord {
        id: hex(&random::<16>()?),
        document_type,
        number,
        issuer,
        uploader: principal.org.clone(),
        uploaded_by: principal.member.clone(),
        shipment: shipment.map(|s| ShipmentRef {
            org: s.org,
            id: s.id,
        }),
        lots: lots.into_iter().map(|(lot, _)| lot).collect(),
        media_type,
        sha256: hex(&file.sha256),
        size_bytes: u64::try_from(file.bytes.len()).map_err(internal)?,
        created_ms: now,
        readers: readers.into_iter().collect(),
        authorities: authorities.into_iter().collect(),
        supersedes,
        superseded_by: None,
        anchors: Vec::new(),
        pending: Some(PendingAnchor {
            action: pending.0,
            salt: hex(&random::<32>()?),
            replaces: pending.1,
            reason: None,
            requested_by: principal.member.clone(),
            requested_org: principal.org.clone(),
            requested_ms: now,
        }),
    })
}

pub(super) async fn upload(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Multipart, MultipartRejection>,
) -> Result<Response, ApiError> {
    require(&caller, Action::UploadDocuments, None)?;
    let principal = principal(&caller)?;
    let form = form::read(body, state.documents.bytes_max()).await?;
    form.only(&UPLOAD_PARTS)?;
    let file = form
        .file
        .as_ref()
        .ok_or_else(|| bad("the form needs a \"file\" part (the document)"))?;
    let type_text = form
        .one("type")?
        .ok_or_else(|| bad("the form needs a \"type\" part"))?;
    let document_type = DocumentType::parse(type_text).ok_or_else(|| {
        let names: Vec<&str> = DocumentType::ALL.iter().map(|t| t.as_str()).collect();
        ApiError::Unprocessable(format!(
            "type {type_text:?} is not one of {}",
            names.join(", ")
        ))
    })?;
    let number = form
        .one("number")?
        .ok_or_else(|| bad("the form needs a \"number\" part"))?;
    check_number(number)?;
    let issuer: OrgId = match form.one("issuer")? {
        Some(text) => text.parse().map_err(|e| bad(format!("issuer: {e}")))?,
        None => principal.org.clone(),
    };
    let sign = sign_part(&form)?;
    if sign {
        require(&caller, Action::SignDocuments, Some(&issuer))?;
    }
    if state
        .documents
        .storage()
        .read(ORGS, issuer.as_str().as_bytes())
        .map_err(internal)?
        .is_none()
    {
        return Err(ApiError::Unprocessable(format!(
            "issuer: organisation {issuer} does not exist on this node"
        )));
    }
    let media_type = media_type_of(&form, file)?;
    let shipment = form
        .one("shipment")?
        .map(|text| visible_shipment(&state, &caller, text))
        .transpose()?;
    let named = form.all("lot");
    if named.len() > DOCUMENT_LOTS_MAX {
        return Err(bad(format!("at most {DOCUMENT_LOTS_MAX} lots")));
    }
    let mut lots = Vec::with_capacity(named.len());
    let mut seen = BTreeSet::new();
    for text in named {
        let lot = lot_ref(text)?;
        if !seen.insert(lot_text(&lot)) {
            return Err(bad(format!("lot {text:?} is named twice")));
        }
        let owner = visible_lot(&state, &caller, &lot)?;
        lots.push((lot, owner));
    }
    let draft = Draft {
        document_type,
        number: number.to_owned(),
        issuer,
        media_type,
        shipment,
        lots,
    };
    let record = new_record(
        &state,
        principal,
        file,
        draft,
        (AnchorAction::Issue, None),
        None,
    )?;
    let docs = &state.documents;
    let record = docs
        .store_new(&record, &file.bytes, sign.then_some(&principal.member))
        .await?;
    Ok(json_status(
        StatusCode::CREATED,
        &docs.document_json(&record).await?,
    ))
}

pub(super) async fn document(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let record = readable(&state, &caller, &id)?;
    Ok(json_status(
        StatusCode::OK,
        &state.documents.document_json(&record).await?,
    ))
}

pub(super) async fn content(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let record = readable(&state, &caller, &id)?;
    let sha256 = unhex32(&record.sha256).ok_or_else(|| internal("a stored hash"))?;
    let docs = state.documents.clone();
    let size = record.size_bytes;
    let bytes = tokio::task::spawn_blocking(move || docs.content(&sha256, size))
        .await
        .map_err(internal)??;
    let mut response = Response::new(Body::from(bytes));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&record.media_type).map_err(internal)?,
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    Ok(response)
}

/// A signature for a pending anchor.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewSignature {
    #[serde(default)]
    custody: Option<super::Custody>,
    #[serde(default)]
    key_id: Option<String>,
    #[serde(default)]
    signature: Option<String>,
}

pub(super) async fn sign(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let record = readable(&state, &caller, &id)?;
    require(&caller, Action::SignDocuments, Some(&record.issuer))?;
    let principal = principal(&caller)?;
    let new: NewSignature = json_body(&body)?;
    let with = match (new.custody, new.key_id, new.signature) {
        (Some(super::Custody::Node), None, None) => SignWith::Node,
        (None | Some(super::Custody::Client), Some(key_id), Some(signature)) => SignWith::Client {
            key_id: key_id_of(&key_id)?,
            signature: unhex64(&signature)
                .ok_or_else(|| bad("signature: 128 hex digits (Ed25519)"))?,
        },
        _ => {
            return Err(bad(
                "give {\"custody\":\"node\"}, or {\"key_id\", \"signature\"} for a detached \
                 signature over the document's to_sign message",
            ));
        }
    };
    let docs = &state.documents;
    let record = docs.sign_pending(&id, with, &principal.member).await?;
    Ok(json_status(
        StatusCode::OK,
        &docs.document_json(&record).await?,
    ))
}

/// A revocation request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewRevocation {
    reason: String,
    #[serde(default)]
    sign: Option<String>,
}

pub(super) async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let record = readable(&state, &caller, &id)?;
    require(&caller, Action::SignDocuments, Some(&record.issuer))?;
    let principal = principal(&caller)?;
    let new: NewRevocation = json_body(&body)?;
    if new.reason.trim().is_empty()
        || new.reason.chars().count() > REASON_CHARS_MAX
        || new.reason.chars().any(char::is_control)
    {
        return Err(bad(format!(
            "reason must be 1 to {REASON_CHARS_MAX} characters without control characters"
        )));
    }
    let sign = match new.sign.as_deref() {
        None => false,
        Some("node") => true,
        Some(other) => return Err(bad(format!("sign: {other:?}; the only value is \"node\""))),
    };
    let docs = &state.documents;
    let head = record
        .head()
        .ok_or_else(|| ApiError::Conflict(format!("document {id} is pending: not on the log")))?;
    let head_index = docs
        .leaf_index(head.leaf_index, &head.entry_leaf_hash, head.log_size_before)
        .await?
        .ok_or_else(|| ApiError::NotYet(format!("document {id}'s anchor is being sequenced")))?;
    let record = docs
        .set_pending(
            &id,
            PendingAnchor {
                action: AnchorAction::Revoke,
                salt: hex(&random::<32>()?),
                replaces: Some(ReplacesRecord {
                    kind: AnchorAction::Revoke,
                    leaf_index: head_index,
                }),
                reason: Some(new.reason),
                requested_by: principal.member.clone(),
                requested_org: principal.org.clone(),
                requested_ms: docs.now_ms(),
            },
            sign.then_some(&principal.member),
        )
        .await?;
    Ok(json_status(
        StatusCode::OK,
        &docs.document_json(&record).await?,
    ))
}

pub(super) async fn supersede(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Result<Multipart, MultipartRejection>,
) -> Result<Response, ApiError> {
    let old = readable(&state, &caller, &id)?;
    // The issuer's signers, or the uploader's, may put up a new version; the issuer signs it.
    require(&caller, Action::SignDocuments, Some(&old.issuer))
        .or_else(|_| require(&caller, Action::UploadDocuments, Some(&old.uploader)))?;
    let principal = principal(&caller)?;
    let form = form::read(body, state.documents.bytes_max()).await?;
    form.only(&["number", "media_type", "sign"])?;
    let file = form
        .file
        .as_ref()
        .ok_or_else(|| bad("the form needs a \"file\" part (the new version)"))?;
    let number = form.one("number")?.unwrap_or(&old.number).to_owned();
    check_number(&number)?;
    let sign = sign_part(&form)?;
    if sign {
        require(&caller, Action::SignDocuments, Some(&old.issuer))?;
    }
    let media_type = media_type_of(&form, file)?;
    if old.status() != DocumentStatus::Valid {
        return Err(ApiError::Conflict(format!(
            "document {id} is {}; only a valid document can be superseded",
            status_name(old.status())
        )));
    }
    let docs = &state.documents;
    let head = old
        .head()
        .ok_or_else(|| internal("a valid document without its anchor"))?;
    let head_index = docs
        .leaf_index(head.leaf_index, &head.entry_leaf_hash, head.log_size_before)
        .await?
        .ok_or_else(|| ApiError::NotYet(format!("document {id}'s anchor is being sequenced")))?;
    // The new version keeps the old one's links and readers.
    let draft = Draft {
        document_type: old.document_type,
        number,
        issuer: old.issuer.clone(),
        media_type,
        shipment: None,
        lots: Vec::new(),
    };
    let mut record = new_record(
        &state,
        principal,
        file,
        draft,
        (
            AnchorAction::Supersede,
            Some(ReplacesRecord {
                kind: AnchorAction::Supersede,
                leaf_index: head_index,
            }),
        ),
        Some(old.id.clone()),
    )?;
    record.shipment.clone_from(&old.shipment);
    record.lots.clone_from(&old.lots);
    let mut readers: BTreeSet<OrgId> = old.readers.iter().cloned().collect();
    readers.extend(record.readers.iter().cloned());
    record.readers = readers.into_iter().collect();
    record.authorities.clone_from(&old.authorities);
    let record = docs
        .store_new(&record, &file.bytes, sign.then_some(&principal.member))
        .await?;
    Ok(json_status(
        StatusCode::CREATED,
        &docs.document_json(&record).await?,
    ))
}

/// The query of a document listing.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListQuery {
    #[serde(default)]
    shipment: Option<String>,
    #[serde(default)]
    lot: Option<String>,
    #[serde(default)]
    limit: Option<usize>,
    #[serde(default)]
    next: Option<String>,
}

pub(super) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    params: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    require(&caller, Action::ReadRecords, None)?;
    let params = query(params)?;
    let page = Page::of(params.limit, params.next.as_deref())?;
    let item = match (&params.shipment, &params.lot) {
        (Some(shipment), None) => {
            let (org, id) = shipment
                .split_once('/')
                .ok_or_else(|| bad("shipment: write it as {exporter}/{id}"))?;
            let org: OrgId = org.parse().map_err(|e| bad(format!("shipment: {e}")))?;
            let id: OrgId = id.parse().map_err(|e| bad(format!("shipment: {e}")))?;
            crate::trace::shipment_node(&org, id.as_str())
        }
        (None, Some(lot)) => lot_item(&lot_ref(lot)?),
        _ => {
            return Err(bad(
                "name one of shipment={exporter}/{id} or lot={gtin}/{lot}",
            ));
        }
    };
    let mut prefix = item.into_bytes();
    prefix.push(0);
    let docs = &state.documents;
    // Read past documents the caller may not read, up to a bound; a short page with a cursor
    // says there may be more.
    let mut out = Vec::new();
    let mut after = page.after.clone();
    let mut examined = 0;
    let next = loop {
        let rows = docs.ids_under(BY_ITEM, &prefix, after.as_deref(), page.limit + 1)?;
        let exhausted = rows.len() <= page.limit;
        let ids: Vec<Vec<u8>> = rows.iter().map(|(_, id)| id.clone()).collect();
        let records = docs
            .storage()
            .read_many(DOCUMENTS, &ids)
            .map_err(internal)?;
        let mut full = false;
        for ((key, _), value) in rows.into_iter().zip(records) {
            if out.len() == page.limit {
                full = true;
                break;
            }
            after = Some(key);
            examined += 1;
            let Some(value) = value else { continue };
            let record: DocumentRecord = serde_json::from_slice(&value).map_err(internal)?;
            if may_read(&caller, &record) {
                out.push(summary_json(&record));
            }
        }
        if full || (!exhausted && examined >= DOCUMENTS_EXAMINED_MAX) {
            break after.as_deref().map(cursor);
        }
        if exhausted {
            break None;
        }
    };
    Ok(json_status(
        StatusCode::OK,
        &json!({ "documents": out, "next": next }),
    ))
}

/// The body of a check by hash.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HashCheck {
    sha256: String,
}

/// Largest JSON body of a check by hash.
const HASH_CHECK_BYTES_MAX: usize = 4_096;

pub(super) async fn verify(
    State(state): State<AppState>,
    caller: Caller,
    request: Request,
) -> Result<Response, ApiError> {
    require(&caller, Action::ReadRecords, None)?;
    let is_form = request
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|t| super::takes_form("/v1/verify/document", t));
    let sha256 = if is_form {
        let form = form::read(
            Multipart::from_request(request, &state).await,
            state.documents.bytes_max(),
        )
        .await?;
        form.only(&[])?;
        form.file
            .map(|f| f.sha256)
            .ok_or_else(|| bad("the form needs a \"file\" part"))?
    } else {
        let body = axum::body::to_bytes(request.into_body(), HASH_CHECK_BYTES_MAX)
            .await
            .map_err(|_| {
                ApiError::TooLarge(format!(
                    "a check by hash is a JSON body of at most {HASH_CHECK_BYTES_MAX} bytes"
                ))
            })?;
        let check: HashCheck = json_body(&body)?;
        unhex32(&check.sha256).ok_or_else(|| bad("sha256: 64 hex digits"))?
    };
    let docs = &state.documents;
    let records = docs.by_hash(&sha256, DOCUMENTS_EXAMINED_MAX)?;
    let mut documents = Vec::with_capacity(records.len());
    for record in &records {
        if may_read(&caller, record) {
            documents.push(check_json(&state, record).await?);
        } else {
            documents.push(json!({
                "type": record.document_type,
                "issuer": record.issuer,
                "status": record.status(),
                "readable": false,
            }));
        }
    }
    Ok(json_status(
        StatusCode::OK,
        &json!({
            "sha256": hex(&sha256),
            "match": !records.is_empty(),
            "documents": documents,
        }),
    ))
}

/// What a reader gets from the customs check: the document, and for each anchor the entry,
/// its salt and commitment, and a C2SP tlog-proof of it (null until a checkpoint covers it).
async fn check_json(state: &AppState, record: &DocumentRecord) -> Result<Value, ApiError> {
    let docs = &state.documents;
    let mut value = docs.document_json(record).await?;
    value["readable"] = json!(true);
    let mut indexes = Vec::new();
    for anchor in &record.anchors {
        let entry = Entry::DocumentAnchor(anchor_entry_of(docs, record, anchor)?)
            .encode()
            .map_err(internal)?;
        let index = docs
            .leaf_index(
                anchor.leaf_index,
                &anchor.entry_leaf_hash,
                anchor.log_size_before,
            )
            .await?;
        indexes.push((hex(&entry), index));
    }
    let sequencer = state.sequencer.clone();
    let wanted: Vec<Option<u64>> = indexes.iter().map(|(_, i)| *i).collect();
    let proofs = tokio::task::spawn_blocking(move || {
        wanted
            .into_iter()
            .map(|index| {
                let Some(index) = index else {
                    return Ok(None);
                };
                match sequencer.inclusion_proof(ledger::merkle::LeafIndex(index)) {
                    Ok((proof, checkpoint)) => {
                        Ok(Some(crate::http::tlog_proof_text(&proof, &checkpoint)))
                    }
                    Err(
                        ServeProofError::NoCheckpoint | ServeProofError::NotYetPublished { .. },
                    ) => Ok(None),
                    Err(e) => Err(internal(e)),
                }
            })
            .collect::<Result<Vec<_>, ApiError>>()
    })
    .await
    .map_err(internal)??;
    if let Some(history) = value["history"].as_array_mut() {
        for (item, ((entry, _), proof)) in history.iter_mut().zip(indexes.into_iter().zip(proofs)) {
            item["entry"] = json!(entry);
            item["tlog_proof"] = json!(proof);
        }
    }
    Ok(value)
}

/// The entry of an anchor in `record`'s history (which may be another version's anchor).
fn anchor_entry_of(
    docs: &Documents,
    record: &DocumentRecord,
    anchor: &AnchorRecord,
) -> Result<DocumentAnchor, ApiError> {
    if anchor.document == record.id {
        anchor_entry(record, anchor)
    } else {
        let other = docs
            .document(&anchor.document)?
            .ok_or_else(|| internal("a superseding document is missing"))?;
        anchor_entry(&other, anchor)
    }
}

pub(super) async fn certificates(
    State(state): State<AppState>,
    caller: Caller,
    Path((gtin, lot)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    require(&caller, Action::ReadPublic, None)?;
    let gtin: Gtin = gtin.parse().map_err(|e| bad(format!("gtin: {e}")))?;
    let lot = gs1::Lot::new(&lot).map_err(|e| bad(format!("lot: {e}")))?;
    let certificates = public_certificates(&state, gtin, &lot).await?;
    Ok(json_status(
        StatusCode::OK,
        &json!({
            "gtin": gtin.digits(),
            "lot": lot.as_str(),
            "certificates": certificates,
        }),
    ))
}

/// The consumer's view of a lot's certificates: type, issuer name, status and whether the
/// issuer signature verifies — nothing else (also drawn on the consumer page,
/// [`crate::pages`]).
///
/// # Errors
/// 404 for a lot nobody recorded; 500 if storage fails.
pub async fn public_certificates(
    state: &AppState,
    gtin: Gtin,
    lot: &gs1::Lot,
) -> Result<Vec<Value>, ApiError> {
    let lot = LotRef {
        gtin,
        lot: lot.clone(),
    };
    if state
        .trade
        .lot_by_key(&lot.gtin, lot.lot.as_str())?
        .is_none()
    {
        return Err(ApiError::NotFound(format!("no lot {}", lot_text(&lot))));
    }
    let mut prefix = lot_item(&lot).into_bytes();
    prefix.push(0);
    let docs = &state.documents;
    let ids: Vec<Vec<u8>> = docs
        .ids_under(BY_ITEM, &prefix, None, DOCUMENTS_EXAMINED_MAX)?
        .into_iter()
        .map(|(_, id)| id)
        .collect();
    let mut certificates = Vec::new();
    for record in docs.documents(&ids)? {
        let Some(head) = record.head() else { continue };
        if !record.document_type.is_certificate() {
            continue;
        }
        let index = docs
            .leaf_index(head.leaf_index, &head.entry_leaf_hash, head.log_size_before)
            .await?;
        let (key_valid, verifies) = docs.signature_check(&record, head, index).await?;
        let issuer_name = state
            .directory
            .org(&record.issuer)
            .map_err(internal)?
            .map_or_else(|| record.issuer.to_string(), |o| o.name);
        certificates.push(json!({
            "type": record.document_type,
            "issuer": issuer_name,
            "status": record.status(),
            "issuer_signature_verifies": verifies && key_valid == Some(true),
        }));
    }
    Ok(certificates)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types_are_type_slash_subtype() {
        let check = |text: &str, ok: bool| {
            assert_eq!(check_media_type(text).is_ok(), ok, "{text:?}");
        };
        check("application/pdf", true);
        check(
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            true,
        );
        check("text/xml; charset=utf-8", true);
        check("image/svg+xml", true);
        check("pdf", false);
        check("/pdf", false);
        check("application/", false);
        check("application/pdf\r\nX-Evil: 1", false);
        check("application/p df", false);
        check(
            &format!("application/{}", "x".repeat(MEDIA_TYPE_BYTES_MAX)),
            false,
        );
    }

    #[test]
    fn document_numbers_are_short_printable_text() {
        let check = |text: &str, ok: bool| {
            assert_eq!(check_number(text).is_ok(), ok, "{text:?}");
        };
        check("KM-2026-0001", true);
        check("植检 2026 第 1 号", true);
        check(&"9".repeat(NUMBER_CHARS_MAX), true);
        check(&"9".repeat(NUMBER_CHARS_MAX + 1), false);
        check("", false);
        check("   ", false);
        check("A\n1", false);
    }

    #[test]
    fn lots_and_shipments_are_named_by_their_keys() {
        let lot = lot_ref("06901234567892/MH-1").expect("a lot");
        assert_eq!(lot_text(&lot), "06901234567892/MH-1");
        // A GTIN-13 is padded to 14 digits.
        assert_eq!(
            lot_text(&lot_ref("6901234567892/MH-1").expect("a lot")),
            "06901234567892/MH-1"
        );
        for wrong in [
            "06901234567892",
            "06901234567893/MH-1",
            "06901234567892/",
            "/MH-1",
        ] {
            assert!(lot_ref(wrong).is_err(), "{wrong:?}");
        }
    }

    #[test]
    fn signatures_are_128_hex_digits() {
        assert_eq!(unhex64(&"ab".repeat(64)), Some([0xab; 64]));
        assert_eq!(unhex64(&"ab".repeat(63)), None);
        assert_eq!(unhex64(&format!("{}zz", "ab".repeat(63))), None);
        assert_eq!(unhex32(&"0F".repeat(32)), Some([0x0f; 32]));
    }
}
