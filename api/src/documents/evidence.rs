//! Who may read a document ([`may_read`]), the documents a trace lists, and what an evidence
//! bundle takes from them ([`for_evidence`]): every anchor with its salt and leaf index, the
//! issuer keys with the leaf indexes of their events, and the content by hash.
//!
//! This is the interface other modules build on; keep it stable.

use serde_json::{Value, json};

use super::handlers::summary_json;
use super::store::{Documents, internal, unhex32};
use super::{
    AnchorAction, BY_ITEM, DOCUMENTS_EXAMINED_MAX, DocumentRecord, DocumentStatus, DocumentType,
    lot_item,
};
use crate::access::{Caller, require};
use crate::auth::{Action, OrgId, Role};
use crate::http::{ApiError, AppState};
use crate::trade::{LotRef, Shipment};

/// Whether the caller may read `record` (its metadata and content): an auditor; a member of
/// the issuer, the uploader, the shipment's exporter or consignee (an organisation on the
/// node), or a lot's owner; a customs officer of an authority the shipment is declared to.
/// Everyone else is answered 404, as if the document did not exist.
#[must_use]
pub fn may_read(caller: &Caller, record: &DocumentRecord) -> bool {
    if require(caller, Action::ReadRecords, None).is_err() {
        return false;
    }
    let Some(principal) = caller.0.as_ref() else {
        return false;
    };
    principal.has(Role::Auditor)
        || record.readers.contains(&principal.org)
        || (principal.has(Role::Customs) && record.authorities.contains(&principal.org))
}

/// The documents of what a trace shows (`items`: its lot and shipment node ids) that the
/// caller may read: type, number, issuer, status and anchor leaf index each, at most
/// [`DOCUMENTS_EXAMINED_MAX`] per item.
///
/// # Errors
/// 500 if the store fails.
pub fn documents_for_trace(
    state: &AppState,
    caller: &Caller,
    items: &[String],
) -> Result<Vec<Value>, ApiError> {
    let docs = &state.documents;
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for item in items {
        let mut prefix = item.as_bytes().to_vec();
        prefix.push(0);
        let ids: Vec<Vec<u8>> = docs
            .ids_under(BY_ITEM, &prefix, None, DOCUMENTS_EXAMINED_MAX)?
            .into_iter()
            .map(|(_, id)| id)
            .filter(|id| seen.insert(id.clone()))
            .collect();
        for record in docs.documents(&ids)? {
            if may_read(caller, &record) {
                let mut value = summary_json(&record);
                value["item"] = json!(item);
                out.push(value);
            }
        }
    }
    Ok(out)
}

/// What an evidence bundle is about.
#[derive(Debug, Clone, Copy)]
pub enum EvidenceSubject<'a> {
    /// A shipment (and the lots it carries).
    Shipment(&'a Shipment),
    /// One lot.
    Lot(&'a LotRef),
}

/// One anchor of a document's history, as the log holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvidenceAnchor {
    /// Issue, supersede or revoke.
    pub action: AnchorAction,
    /// The document the anchor belongs to (for a supersession: the new version).
    pub document: String,
    /// Its leaf index (`None` only while the round's answer is being recovered).
    pub leaf_index: Option<u64>,
    /// The commitment's salt.
    pub salt: [u8; 32],
    /// The entry's exact bytes (rebuilt from the record; `leaf_hash` of them is the leaf).
    pub entry: Vec<u8>,
    /// What it replaces: `(kind, leaf index)`.
    pub replaces: Option<(AnchorAction, u64)>,
    /// The signing key's id.
    pub key_id: [u8; 32],
}

/// An issuer key an anchor names, with its events' positions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvidenceKey {
    /// Its id (SHA-256 of the public key).
    pub key_id: [u8; 32],
    /// The public key.
    pub public_key: [u8; 32],
    /// Its organisation.
    pub org: OrgId,
    /// The leaf index of its registration (`IssuerKeyEvent` register).
    pub registered_leaf_index: Option<u64>,
    /// The leaf index of its revocation, if revoked.
    pub revoked_leaf_index: Option<u64>,
    /// The registration entry's exact bytes.
    pub registration_entry: Vec<u8>,
    /// The revocation entry's exact bytes, if revoked.
    pub revocation_entry: Option<Vec<u8>>,
}

/// A document for an evidence bundle. Read its file with
/// [`Documents::content`]`(&content_sha256, size_bytes)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvidenceDocument {
    /// Document id.
    pub id: String,
    /// Its type.
    pub document_type: DocumentType,
    /// The issuer's number.
    pub number: String,
    /// The issuing organisation.
    pub issuer: OrgId,
    /// Where it stands.
    pub status: DocumentStatus,
    /// SHA-256 of the file.
    pub content_sha256: [u8; 32],
    /// The file's size.
    pub size_bytes: u64,
    /// The file's media type.
    pub media_type: String,
    /// Every anchor of its history, in log order.
    pub anchors: Vec<EvidenceAnchor>,
    /// The keys those anchors name.
    pub keys: Vec<EvidenceKey>,
}

/// The documents linked to `subject` (for a shipment: to it or to any lot it carries), with
/// everything an offline verifier needs to check their anchors. The caller decides who may
/// have them ([`may_read`]).
///
/// # Errors
/// 500 if the store fails or a record is corrupt.
pub async fn for_evidence(
    docs: &Documents,
    subject: EvidenceSubject<'_>,
) -> Result<Vec<EvidenceDocument>, ApiError> {
    let items: Vec<String> = match subject {
        EvidenceSubject::Shipment(shipment) => {
            let mut items = vec![crate::trace::shipment_node(
                &shipment.org,
                shipment.id.as_str(),
            )];
            items.extend(shipment.lots.iter().map(lot_item));
            items
        }
        EvidenceSubject::Lot(lot) => vec![lot_item(lot)],
    };
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for item in items {
        let mut prefix = item.into_bytes();
        prefix.push(0);
        let ids: Vec<Vec<u8>> = docs
            .ids_under(BY_ITEM, &prefix, None, DOCUMENTS_EXAMINED_MAX)?
            .into_iter()
            .map(|(_, id)| id)
            .filter(|id| seen.insert(id.clone()))
            .collect();
        for record in docs.documents(&ids)? {
            out.push(evidence_of(docs, &record).await?);
        }
    }
    Ok(out)
}

async fn evidence_of(
    docs: &Documents,
    record: &DocumentRecord,
) -> Result<EvidenceDocument, ApiError> {
    let mut anchors = Vec::with_capacity(record.anchors.len());
    let mut keys: Vec<EvidenceKey> = Vec::new();
    for anchor in &record.anchors {
        let owner = if anchor.document == record.id {
            record.clone()
        } else {
            docs.document(&anchor.document)?
                .ok_or_else(|| internal("a superseding document is missing"))?
        };
        let entry =
            ledger::entry::Entry::DocumentAnchor(super::handlers::anchor_entry(&owner, anchor)?)
                .encode()
                .map_err(internal)?;
        let key_id = unhex32(&anchor.key_id).ok_or_else(|| internal("a stored key id"))?;
        anchors.push(EvidenceAnchor {
            action: anchor.action,
            document: anchor.document.clone(),
            leaf_index: docs
                .leaf_index(
                    anchor.leaf_index,
                    &anchor.entry_leaf_hash,
                    anchor.log_size_before,
                )
                .await?,
            salt: unhex32(&anchor.salt).ok_or_else(|| internal("a stored salt"))?,
            entry,
            replaces: anchor.replaces.map(|r| (r.kind, r.leaf_index)),
            key_id,
        });
        if keys.iter().any(|k| k.key_id == key_id) {
            continue;
        }
        if let Some(key) = docs.issuer_key(&key_id)? {
            keys.push(evidence_key(docs, &key).await?);
        }
    }
    Ok(EvidenceDocument {
        id: record.id.clone(),
        document_type: record.document_type,
        number: record.number.clone(),
        issuer: record.issuer.clone(),
        status: record.status(),
        content_sha256: unhex32(&record.sha256).ok_or_else(|| internal("a stored hash"))?,
        size_bytes: record.size_bytes,
        media_type: record.media_type.clone(),
        anchors,
        keys,
    })
}

async fn evidence_key(
    docs: &Documents,
    key: &super::IssuerKeyRecord,
) -> Result<EvidenceKey, ApiError> {
    let public_key = unhex32(&key.public_key).ok_or_else(|| internal("a stored key"))?;
    let registration_entry = docs.key_event_entry(key, false)?;
    let revocation_entry = match &key.revoked {
        Some(_) => Some(docs.key_event_entry(key, true)?),
        None => None,
    };
    Ok(EvidenceKey {
        key_id: unhex32(&key.key_id).ok_or_else(|| internal("a stored key id"))?,
        public_key,
        org: key.org.clone(),
        registered_leaf_index: docs.event_index(&key.registered).await?,
        revoked_leaf_index: match &key.revoked {
            Some(event) => docs.event_index(event).await?,
            None => None,
        },
        registration_entry,
        revocation_entry,
    })
}
