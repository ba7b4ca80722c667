//! Trade documents and the keys that sign them (DESIGN.md, "Data flow" step 5): an
//! organisation's document-signing Ed25519 keys ([`keys`]), documents stored off the log by
//! content and anchored on it as `DocumentAnchor` entries once their issuer signs, their
//! append-only lifecycle (revoke, supersede), who may read them ([`may_read`]), the customs
//! check by content, the consumer's view of a lot's certificates, and what the trace and an
//! evidence bundle take from them ([`for_bundle`]).
//!
//! | route | action | answers |
//! |---|---|---|
//! | `POST /v1/orgs/{org}/issuer-keys` | `ManageOrg` | 201: a node-held key (`{"custody":"node"}`) or a client-held one with its proof of possession, as an `IssuerKeyEvent` |
//! | `GET /v1/orgs/{org}/issuer-keys?limit=&next=` | `ReadOrg` (members, auditors) | a page of its keys |
//! | `POST /v1/orgs/{org}/issuer-keys/{key_id}/revoke` | `ManageOrg` | the revoked key (`IssuerKeyEvent` revoke; a node-held secret erased in the same round) |
//! | `GET /v1/issuer-keys/{key_id}` | public | the key, its organisation and the log positions of its events |
//! | `POST /v1/documents` (multipart) | `UploadDocuments` (+ `SignDocuments` of the issuer for `sign=node`) | 201, the document: pending, or valid when signed at once |
//! | `GET /v1/documents?shipment=\|lot=&limit=&next=` | `ReadRecords`, filtered by [`may_read`] | a page of documents |
//! | `GET /v1/documents/{id}`, `.../content` | [`may_read`] (404 otherwise) | status, history, signatures; the file |
//! | `POST /v1/documents/{id}/signature` | `SignDocuments` of the issuer | the document, its pending anchor committed |
//! | `POST /v1/documents/{id}/revoke`, `.../supersede` (multipart) | `SignDocuments` of the issuer; supersede also `UploadDocuments` of the uploader | a pending (or at once signed) revoking / superseding anchor |
//! | `POST /v1/verify/document` (multipart `file` or `{"sha256"}`) | `ReadRecords` | the documents with that content: in full for those the caller may read, type, issuer and status for the others |
//! | `GET /v1/public/lots/{gtin}/{lot}/certificates` | public | type, issuer name, status and whether the issuer signature verifies — nothing else |
//!
//! Storage (records in the node's store, JSON unless said):
//!
//! | table | key | value |
//! |---|---|---|
//! | `doc_issuer_keys` | key id (32) | [`IssuerKeyRecord`] |
//! | `doc_issuer_keys_by_org` | org ‖ 0x00 ‖ key id (32) | empty |
//! | `doc_issuer_secrets` | key id (32) | a node-held key's 32-byte seed; empty once revoked |
//! | `doc_documents` | document id | [`DocumentRecord`] |
//! | `doc_content` | SHA-256 (32) ‖ chunk number (u32 BE) | up to [`CONTENT_CHUNK_BYTES`] of the file |
//! | `doc_by_hash` | SHA-256 (32) ‖ document id | empty |
//! | `doc_by_item` | lot or shipment trace node id ‖ 0x00 ‖ document id | empty |
//!
//! Invariant: an anchor and the records that describe it commit in one sequencer round, so a
//! document is never shown signed without its entry on the log, nor the other way round. All
//! writes of this module (keys, uploads, anchors) are serialised by one lock, so the checks
//! made before an anchor (its key registered and not revoked, the document not yet revoked or
//! superseded) still hold when it is sequenced: log order agrees with what the API checked.
//! The log index of an anchor or key event is written into its record after the round
//! answers; if that answer is lost the index is found again from the entry's leaf hash and the
//! log size before it ([`ingest::store::locate_entry`]).

mod evidence;
mod form;
mod handlers;
pub mod keys;
mod store;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::HeaderValue;
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};

pub use evidence::{documents_for_trace, for_bundle, may_read};
pub use handlers::public_certificates;
pub use keys::{Custody, IssuerKeyRecord, LogEventRef};
pub use store::Documents;

use crate::auth::{MemberId, OrgId};
use crate::http::AppState;
use crate::trade::LotRef;

/// Default largest document file, bytes (10 MiB).
pub const DOCUMENT_BYTES_DEFAULT: usize = 10 * 1024 * 1024;
/// Hard ceiling of `document_bytes_max` (64 MiB).
pub const DOCUMENT_BYTES_CEILING: usize = 64 * 1024 * 1024;
/// Bytes of the form around the file that the body limit of the document routes allows for.
pub const FORM_OVERHEAD_BYTES_MAX: usize = 256 * 1024;
/// A stored file is split into records of at most this many bytes.
///
/// Measured in redb (ARCHITECTURE.md, "Trade documents"): a 10 MiB file written as 1 MiB
/// chunks costs no more than as one value, and reads back as fast; chunks also stay under the
/// 1 MB cell size ScyllaDB warns about, for the scale-out backend.
pub const CONTENT_CHUNK_BYTES: usize = 1024 * 1024;
/// Most lots one document names.
pub const DOCUMENT_LOTS_MAX: usize = 100;
/// Longest document number (the issuer's), in characters.
pub const NUMBER_CHARS_MAX: usize = 64;
/// Longest revocation reason, in characters.
pub const REASON_CHARS_MAX: usize = 500;
/// Longest media type, in bytes.
pub const MEDIA_TYPE_BYTES_MAX: usize = 127;
/// Most documents one content hash, item or listing examines per request.
pub const DOCUMENTS_EXAMINED_MAX: usize = 1_000;

/// Issuer keys by key id (tables: see the module documentation).
pub const ISSUER_KEYS: &str = "doc_issuer_keys";
/// An organisation's issuer keys.
pub const ISSUER_KEYS_BY_ORG: &str = "doc_issuer_keys_by_org";
/// Node-held issuer key seeds.
pub const ISSUER_SECRETS: &str = "doc_issuer_secrets";
/// Document records.
pub const DOCUMENTS: &str = "doc_documents";
/// File content in chunks.
pub const CONTENT: &str = "doc_content";
/// Documents by content hash.
pub const BY_HASH: &str = "doc_by_hash";
/// Documents by lot or shipment.
pub const BY_ITEM: &str = "doc_by_item";

/// What a trade document is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DocumentType {
    /// Certificate of origin.
    CertificateOfOrigin,
    /// Phytosanitary certificate (IPPC).
    PhytosanitaryCertificate,
    /// Commercial invoice.
    CommercialInvoice,
    /// Packing list.
    PackingList,
    /// Bill of lading.
    BillOfLading,
    /// A record kept under FSMA 204 (21 CFR 1 Subpart S).
    Fsma204Record,
    /// An EUDR due diligence statement (Regulation (EU) 2023/1115).
    EudrDueDiligenceStatement,
    /// Anything else.
    Other,
}

impl DocumentType {
    /// Every type.
    pub const ALL: [Self; 8] = [
        Self::CertificateOfOrigin,
        Self::PhytosanitaryCertificate,
        Self::CommercialInvoice,
        Self::PackingList,
        Self::BillOfLading,
        Self::Fsma204Record,
        Self::EudrDueDiligenceStatement,
        Self::Other,
    ];

    /// Its name, as in requests and in the log entry's `document_type` token.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CertificateOfOrigin => "certificate_of_origin",
            Self::PhytosanitaryCertificate => "phytosanitary_certificate",
            Self::CommercialInvoice => "commercial_invoice",
            Self::PackingList => "packing_list",
            Self::BillOfLading => "bill_of_lading",
            Self::Fsma204Record => "fsma204_record",
            Self::EudrDueDiligenceStatement => "eudr_due_diligence_statement",
            Self::Other => "other",
        }
    }

    /// The type named `text`.
    #[must_use]
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == text)
    }

    /// Whether a consumer's page shows it (certificates about the goods, not business papers
    /// such as invoices).
    #[must_use]
    pub fn is_certificate(self) -> bool {
        matches!(
            self,
            Self::CertificateOfOrigin
                | Self::PhytosanitaryCertificate
                | Self::EudrDueDiligenceStatement
        )
    }
}

/// A shipment named by its exporter and id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ShipmentRef {
    /// The exporter.
    pub org: OrgId,
    /// Its id within the exporter.
    pub id: OrgId,
}

/// What an anchor does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnchorAction {
    /// The document's first anchor.
    Issue,
    /// A new version's first anchor, superseding the previous version's.
    Supersede,
    /// Revokes the document.
    Revoke,
}

/// How an anchor refers to an earlier one (the entry's `replaces`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplacesRecord {
    /// `supersedes` or `revokes`.
    pub kind: AnchorAction,
    /// The earlier anchor's leaf index.
    pub leaf_index: u64,
}

impl ReplacesRecord {
    /// The entry's field.
    #[must_use]
    pub fn to_entry(self) -> ledger::entry::Replaces {
        let index = ledger::merkle::LeafIndex(self.leaf_index);
        if self.kind == AnchorAction::Revoke {
            ledger::entry::Replaces::Revokes(index)
        } else {
            ledger::entry::Replaces::Supersedes(index)
        }
    }
}

/// One `DocumentAnchor` entry of a document's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnchorRecord {
    /// What it does.
    pub action: AnchorAction,
    /// The document whose anchor it is (for a supersession seen from the old version: the new
    /// version).
    pub document: String,
    /// What it replaces.
    pub replaces: Option<ReplacesRecord>,
    /// The commitment's salt, hex (32 bytes; given only to readers).
    pub salt: String,
    /// `SHA-256(salt ‖ SHA-256(file))`, hex.
    pub commitment: String,
    /// The issuer key that signed it, hex key id.
    pub key_id: String,
    /// The Ed25519 signature over `document_anchor_message`, hex.
    pub signature: String,
    /// The member who signed (or had the node sign).
    pub signed_by: MemberId,
    /// A revocation's reason.
    #[serde(default)]
    pub reason: Option<String>,
    /// `leaf_hash(entry)`, hex.
    pub entry_leaf_hash: String,
    /// The durable log size when the entry was submitted (its index is at least this).
    pub log_size_before: u64,
    /// Its leaf index, once known.
    pub leaf_index: Option<u64>,
    /// When it was signed (Unix ms, the node's clock).
    pub time_ms: u64,
}

/// An anchor prepared and waiting for the issuer's signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingAnchor {
    /// What it will do.
    pub action: AnchorAction,
    /// Its fresh salt, hex.
    pub salt: String,
    /// What it will replace.
    pub replaces: Option<ReplacesRecord>,
    /// A revocation's reason.
    #[serde(default)]
    pub reason: Option<String>,
    /// Who asked for it.
    pub requested_by: MemberId,
    /// Its organisation.
    pub requested_org: OrgId,
    /// When (Unix ms).
    pub requested_ms: u64,
}

/// A stored trade document: one file (one version) and its anchors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentRecord {
    /// Its id (32 hex digits, random).
    pub id: String,
    /// What it is.
    pub document_type: DocumentType,
    /// The issuer's document number.
    pub number: String,
    /// The issuing organisation (who signs).
    pub issuer: OrgId,
    /// The organisation that uploaded it.
    pub uploader: OrgId,
    /// The member who uploaded it.
    pub uploaded_by: MemberId,
    /// The shipment it belongs to.
    pub shipment: Option<ShipmentRef>,
    /// The lots it is about.
    pub lots: Vec<LotRef>,
    /// The file's media type.
    pub media_type: String,
    /// SHA-256 of the file, hex.
    pub sha256: String,
    /// The file's size.
    pub size_bytes: u64,
    /// When it was uploaded (Unix ms).
    pub created_ms: u64,
    /// Organisations whose members read it: issuer, uploader, exporter, consignee, lot owners.
    pub readers: Vec<OrgId>,
    /// Customs authorities its shipment is declared to (their officers read it).
    pub authorities: Vec<OrgId>,
    /// The previous version, for a new version.
    pub supersedes: Option<String>,
    /// The next version, once its anchor is committed.
    pub superseded_by: Option<String>,
    /// Every committed anchor about it, in log order.
    pub anchors: Vec<AnchorRecord>,
    /// An anchor waiting for the issuer's signature.
    pub pending: Option<PendingAnchor>,
}

/// Where a document stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DocumentStatus {
    /// Not yet signed: not on the log.
    Pending,
    /// Signed and on the log.
    Valid,
    /// Revoked by its issuer.
    Revoked,
    /// Replaced by a newer version.
    Superseded,
}

impl DocumentRecord {
    /// Where it stands (append-only: derived from its anchors).
    #[must_use]
    pub fn status(&self) -> DocumentStatus {
        if self
            .anchors
            .iter()
            .any(|a| a.action == AnchorAction::Revoke)
        {
            DocumentStatus::Revoked
        } else if self.superseded_by.is_some() {
            DocumentStatus::Superseded
        } else if self.head().is_some() {
            DocumentStatus::Valid
        } else {
            DocumentStatus::Pending
        }
    }

    /// Its own first anchor (issue or supersede), if committed.
    #[must_use]
    pub fn head(&self) -> Option<&AnchorRecord> {
        self.anchors
            .iter()
            .find(|a| a.document == self.id && a.action != AnchorAction::Revoke)
    }

    /// The trace node ids of what it is linked to: its shipment and its lots.
    #[must_use]
    pub fn items(&self) -> Vec<String> {
        let mut items: Vec<String> = self
            .shipment
            .iter()
            .map(|s| crate::trace::shipment_node(&s.org, s.id.as_str()))
            .collect();
        items.extend(self.lots.iter().map(lot_item));
        items
    }
}

/// The trace node id of a lot (its canonical Digital Link, as the trace names it).
#[must_use]
pub fn lot_item(lot: &LotRef) -> String {
    gs1::EpcKey::Lgtin {
        gtin: lot.gtin,
        lot: lot.lot.clone(),
    }
    .to_string()
}

/// Whether a request to `path` with `content_type` is a form one of these routes takes (the
/// node refuses other non-JSON bodies with 415).
#[must_use]
pub fn takes_form(path: &str, content_type: &HeaderValue) -> bool {
    let form = content_type.to_str().is_ok_and(|t| {
        t.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .eq_ignore_ascii_case("multipart/form-data")
    });
    form && (path == "/v1/documents"
        || path == "/v1/verify/document"
        || (path.starts_with("/v1/documents/") && path.ends_with("/supersede")))
}

/// The routes of this module, on the node's state.
pub fn routes() -> Router<AppState> {
    // Routes that take a file allow the largest configured file and the form around it; the
    // configured `document_bytes_max` is enforced while the file part is read (413).
    let files = DefaultBodyLimit::max(DOCUMENT_BYTES_CEILING + FORM_OVERHEAD_BYTES_MAX);
    Router::new()
        .route(
            "/v1/orgs/{org}/issuer-keys",
            get(keys::list).post(keys::register),
        )
        .route(
            "/v1/orgs/{org}/issuer-keys/{key_id}/revoke",
            post(keys::revoke),
        )
        .route("/v1/issuer-keys/{key_id}", get(keys::public_key))
        .route(
            "/v1/documents",
            get(handlers::list).post(handlers::upload).layer(files),
        )
        .route("/v1/documents/{id}", get(handlers::document))
        .route("/v1/documents/{id}/content", get(handlers::content))
        .route("/v1/documents/{id}/signature", post(handlers::sign))
        .route("/v1/documents/{id}/revoke", post(handlers::revoke))
        .route(
            "/v1/documents/{id}/supersede",
            post(handlers::supersede).layer(files),
        )
        .route("/v1/verify/document", post(handlers::verify).layer(files))
        .route(
            "/v1/public/lots/{gtin}/{lot}/certificates",
            get(handlers::certificates),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_types_are_named_as_requests_and_the_log_name_them() {
        for t in DocumentType::ALL {
            assert_eq!(DocumentType::parse(t.as_str()), Some(t));
            assert!(ledger::entry::Token::new(t.as_str()).is_ok(), "{t:?}");
            assert_eq!(
                serde_json::to_value(t).expect("json"),
                serde_json::json!(t.as_str())
            );
        }
        for wrong in ["", "Phytosanitary_Certificate", "invoice", "other "] {
            assert_eq!(DocumentType::parse(wrong), None, "{wrong:?}");
        }
        let shown: Vec<_> = DocumentType::ALL
            .into_iter()
            .filter(|t| t.is_certificate())
            .collect();
        assert_eq!(
            shown,
            [
                DocumentType::CertificateOfOrigin,
                DocumentType::PhytosanitaryCertificate,
                DocumentType::EudrDueDiligenceStatement
            ]
        );
    }

    #[test]
    fn only_the_document_routes_take_a_form() {
        let check = |path: &str, content_type: &str, expected: bool| {
            let value = HeaderValue::from_str(content_type).expect("a header");
            assert_eq!(takes_form(path, &value), expected, "{path} {content_type}");
        };
        let form = "multipart/form-data; boundary=x";
        check("/v1/documents", form, true);
        check("/v1/documents", "Multipart/Form-Data;boundary=x", true);
        check("/v1/verify/document", form, true);
        check("/v1/documents/0123/supersede", form, true);
        check("/v1/documents/0123/signature", form, false);
        check("/v1/documents/0123/revoke", form, false);
        check("/epcis/capture", form, false);
        check("/v1/documents", "text/plain", false);
        check("/v1/documents", "multipart/mixed; boundary=x", false);
    }

    fn anchor(document: &str, action: AnchorAction) -> AnchorRecord {
        AnchorRecord {
            action,
            document: document.to_owned(),
            replaces: None,
            salt: String::new(),
            commitment: String::new(),
            key_id: String::new(),
            signature: String::new(),
            signed_by: "m1".parse().expect("member"),
            reason: None,
            entry_leaf_hash: String::new(),
            log_size_before: 0,
            leaf_index: Some(1),
            time_ms: 0,
        }
    }

    #[test]
    fn status_follows_the_anchors_and_nothing_else() {
        let org: OrgId = "coop".parse().expect("org");
        let mut record = DocumentRecord {
            id: "d1".to_owned(),
            document_type: DocumentType::Other,
            number: "1".to_owned(),
            issuer: org.clone(),
            uploader: org.clone(),
            uploaded_by: "m1".parse().expect("member"),
            shipment: None,
            lots: Vec::new(),
            media_type: "application/pdf".to_owned(),
            sha256: String::new(),
            size_bytes: 0,
            created_ms: 0,
            readers: vec![org],
            authorities: Vec::new(),
            supersedes: None,
            superseded_by: None,
            anchors: Vec::new(),
            pending: None,
        };
        assert_eq!(record.status(), DocumentStatus::Pending);
        assert!(record.head().is_none());
        record.anchors.push(anchor("d1", AnchorAction::Issue));
        assert_eq!(record.status(), DocumentStatus::Valid);
        // A newer version's anchor in this document's history supersedes it, but is not its
        // head.
        let mut superseded = record.clone();
        superseded.superseded_by = Some("d2".to_owned());
        superseded
            .anchors
            .push(anchor("d2", AnchorAction::Supersede));
        assert_eq!(superseded.status(), DocumentStatus::Superseded);
        assert_eq!(
            superseded.head().map(|a| a.action),
            Some(AnchorAction::Issue)
        );
        record.anchors.push(anchor("d1", AnchorAction::Revoke));
        assert_eq!(record.status(), DocumentStatus::Revoked);
        assert_eq!(record.head().map(|a| a.action), Some(AnchorAction::Issue));
    }
}
