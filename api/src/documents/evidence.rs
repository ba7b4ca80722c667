//! Who may read a document ([`may_read`]), the documents a trace lists, and what an evidence
//! bundle takes from them ([`for_bundle`]): every anchor with where its entry is, what opens
//! it, and where its issuer key's events are.
//!
//! This is the interface other modules build on; keep it stable.

use serde_json::{Value, json};

use super::handlers::summary_json;
use super::store::{internal, unhex32};
use super::{AnchorAction, BY_ITEM, DOCUMENTS_EXAMINED_MAX, DocumentRecord};
use crate::access::{Caller, require};
use crate::auth::{Action, Role};
use crate::http::{ApiError, AppState};

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

/// The trade documents of what a trace shows (`items`: its lot and shipment node ids) for an
/// evidence bundle, as the caller may read them: every anchor of each readable document's
/// history (issue, supersession, revocation) with where its entry is, what opens it (salt,
/// number, media type, file) for the anchor of the document's own content, and where the
/// `IssuerKeyEvent` entries of its signing key are. Each anchor appears once, however many
/// documents name it. Documents the caller may not read are left out altogether (their
/// existence is not shown).
///
/// # Errors
/// 500 if the store fails or a record is corrupt.
pub fn for_bundle(
    state: &AppState,
    caller: &Caller,
    items: &[String],
) -> Result<Vec<crate::evidence::EvidenceDocument>, ApiError> {
    use crate::evidence::{DocumentOpening, EvidenceDocument as BundleItem};
    use ingest::records::EntryLocator;
    use ledger::merkle::Hash;

    let locator = |leaf_hash: &str, leaf_index: Option<u64>, log_size_before: u64| {
        Ok::<_, ApiError>(EntryLocator {
            leaf_hash: Hash::from_hex(leaf_hash)
                .map_err(|_| internal("a stored entry leaf hash is not hex"))?,
            log_size_before: leaf_index.unwrap_or(log_size_before),
        })
    };
    let docs = &state.documents;
    let mut seen_documents = std::collections::BTreeSet::new();
    // Anchor leaf hash → item. A supersession is in the histories of both versions; only the
    // new version's record opens it (with the new file).
    let mut out: std::collections::BTreeMap<String, BundleItem> = std::collections::BTreeMap::new();
    for item in items {
        let mut prefix = item.as_bytes().to_vec();
        prefix.push(0);
        let ids: Vec<Vec<u8>> = docs
            .ids_under(BY_ITEM, &prefix, None, DOCUMENTS_EXAMINED_MAX)?
            .into_iter()
            .map(|(_, id)| id)
            .filter(|id| seen_documents.insert(id.clone()))
            .collect();
        for record in docs.documents(&ids)? {
            if !may_read(caller, &record) {
                continue;
            }
            for anchor in &record.anchors {
                let own_content = anchor.document == record.id
                    && matches!(anchor.action, AnchorAction::Issue | AnchorAction::Supersede);
                if out
                    .get(&anchor.entry_leaf_hash)
                    .is_some_and(|item| item.opening.is_some() || !own_content)
                {
                    continue;
                }
                let opening = if own_content {
                    let sha256 =
                        unhex32(&record.sha256).ok_or_else(|| internal("a stored hash"))?;
                    Some(DocumentOpening {
                        salt: unhex32(&anchor.salt).ok_or_else(|| internal("a stored salt"))?,
                        number: record.number.clone(),
                        media_type: record.media_type.clone(),
                        content: docs.content(&sha256, record.size_bytes)?,
                    })
                } else {
                    None
                };
                let key_id = unhex32(&anchor.key_id).ok_or_else(|| internal("a stored key id"))?;
                let mut issuer_keys = Vec::new();
                if let Some(key) = docs.issuer_key(&key_id)? {
                    for event in std::iter::once(&key.registered).chain(key.revoked.as_ref()) {
                        issuer_keys.push(locator(
                            &event.entry_leaf_hash,
                            event.leaf_index,
                            event.log_size_before,
                        )?);
                    }
                }
                let item = BundleItem {
                    anchor: locator(
                        &anchor.entry_leaf_hash,
                        anchor.leaf_index,
                        anchor.log_size_before,
                    )?,
                    opening,
                    issuer_keys,
                };
                out.insert(anchor.entry_leaf_hash.clone(), item);
            }
        }
    }
    Ok(out.into_values().collect())
}
