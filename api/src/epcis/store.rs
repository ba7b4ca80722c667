//! The EPCIS event store: one record per captured event (keyed by the digest of its GS1
//! canonical event hash), the client's `eventID` pointing at it, and one ordered index table
//! for the queries. Everything an event needs is committed with its `TraceEvent` log entry in
//! one durable transaction (`SequencerHandle::submit` with sidecar records), so an event is
//! either stored, indexed and anchored, or not there at all.
//!
//! | table | key | value |
//! |---|---|---|
//! | `epcis_events` | digest(32) | [`StoredEvent`] as JSON |
//! | `epcis_event_ids` | `eventID` bytes | digest(32) |
//! | `epcis_index` | kind(1) ‖ value ‖ 0x00 ‖ eventTime ms(8, BE) ‖ digest(32) | empty |
//!
//! Every index kind ([`IndexKind`]) sorts its rows by (event time, digest) under one value, so
//! every query walks its results in the same order whichever index drives it, and a page
//! token is just the (time, digest) of the last row read. The digest plays the part of a
//! sequence number: unique per event, stable, and known before the commit (no counter to
//! keep consistent across restarts).
//!
//! What never changes is remembered in bounded maps (each starts over when full): a stored
//! event (records are written once, with their entry, and never rewritten), decoded; an
//! event's entry once found in the durable log (the log only grows), with its index and bytes;
//! and an entry's inclusion proof against the latest published tree size, until a larger one
//! is published. A trace's events are proved in one pass that reads each entry bundle once.
//!
//! Identifiers are indexed in canonical form: an EPC URI (`urn:epc:id:sgtin:...`,
//! `urn:epc:class:lgtin:...`) becomes its canonical GS1 Digital Link, and a Digital Link is
//! constrained to `https://id.gs1.org` (the forms of the event hash, CBV 2.0 §8.9 rules 17
//! and 18), so an item is found whichever of its spellings an event or a query uses. Business
//! steps and dispositions are indexed as their bare CBV word when they are CBV values, in
//! whichever of the three spellings (bare, web URI, URN) they came.

use std::collections::HashMap;
use std::collections::hash_map::Entry as Slot;
use std::sync::{Arc, Mutex, PoisonError};

use gs1::epcis::vocab::URN_TO_WEB;
use gs1::epcis::{Event, EventType, canonical_epc, epc::constrain_digital_link};
use ingest::IngestStorage;
use ingest::records::EntryLocator;
use ledger::entry::{Entry, EpcisEventType, Token, TraceEvent, salted_commitment};
use ledger::merkle::{Hash, LeafIndex, leaf_hash};
use ledger::proof::InclusionProof;
use ledger::sequencer::{PublishedCheckpoint, SequencerHandle, ServeProofError};
use ledger::storage::{LogStorage, ReadError, SidecarRecord};
use ledger::tile::{TILE_WIDTH, parse_bundle};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::auth::OrgId;
use crate::http::hex;

/// Events by digest.
pub const EVENTS: &str = "epcis_events";
/// Client-given (or assigned) `eventID` -> digest.
pub const EVENT_IDS: &str = "epcis_event_ids";
/// The query index.
pub const INDEX: &str = "epcis_index";
/// Most identifiers (EPCs, classes, parent) one event may carry in the index: each is a
/// record committed with the event, and the sequencer takes at most 1,024 records per entry.
pub const INDEXED_IDENTIFIERS_MAX: usize = 1_000;
/// Located entries the store remembers (about 150 bytes each); the map starts over when full.
pub const LOCATED_ENTRIES_MAX: usize = 100_000;
/// Decoded events the store remembers (a few KiB each); the map starts over when full.
pub const DECODED_EVENTS_MAX: usize = 10_000;
/// Inclusion proofs the store remembers (about 1 KiB each); the map starts over when full.
pub const INCLUSION_PROOFS_MAX: usize = 10_000;

/// Why the store could not answer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Storage could not be read.
    #[error("storage read failed")]
    Read(#[from] ReadError),
    /// A stored record does not have the shape it was written with.
    #[error("stored EPCIS record is corrupt: {0}")]
    Corrupt(String),
}

/// What an index row is keyed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexKind {
    /// Every event, by time only (empty value).
    Time = 0,
    /// Any EPC or EPC class of the event (canonical form).
    Epc = 1,
    /// `bizStep` (bare CBV word or URI).
    BizStep = 2,
    /// `disposition` (bare CBV word or URI).
    Disposition = 3,
    /// `bizLocation.id`.
    BizLocation = 4,
    /// `readPoint.id`.
    ReadPoint = 5,
    /// The organisation that captured the event.
    Owner = 6,
    /// The event type (`ObjectEvent`, ...).
    EventType = 7,
}

/// A position in the index order: event time, then digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct EventCursor {
    /// `eventTime` in Unix ms.
    pub time_ms: u64,
    /// The event hash digest.
    pub digest: [u8; 32],
}

impl EventCursor {
    /// 40 bytes: time (BE) ‖ digest.
    #[must_use]
    pub fn to_bytes(&self) -> [u8; 40] {
        let mut out = [0u8; 40];
        out[..8].copy_from_slice(&self.time_ms.to_be_bytes());
        out[8..].copy_from_slice(&self.digest);
        out
    }

    /// The inverse of [`to_bytes`](Self::to_bytes).
    #[must_use]
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != 40 {
            return None;
        }
        let time_ms = u64::from_be_bytes(bytes[..8].try_into().ok()?);
        let digest = bytes[8..].try_into().ok()?;
        Some(Self { time_ms, digest })
    }
}

/// `kind ‖ value ‖ 0x00`: the prefix of every row of one index value.
#[must_use]
pub fn index_prefix(kind: IndexKind, value: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(value.len() + 42);
    key.push(kind as u8);
    key.extend_from_slice(value.as_bytes());
    key.push(0);
    key
}

/// The index row of `cursor` under `kind`/`value`.
#[must_use]
pub fn index_key(kind: IndexKind, value: &str, cursor: &EventCursor) -> Vec<u8> {
    let mut key = index_prefix(kind, value);
    key.extend_from_slice(&cursor.to_bytes());
    key
}

/// The normalised values of an event that the queries filter on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventTerms {
    /// `action`, if the type has one.
    pub action: Option<String>,
    /// `bizStep`, normalised.
    pub biz_step: Option<String>,
    /// `disposition`, normalised.
    pub disposition: Option<String>,
    /// `readPoint.id`.
    pub read_point: Option<String>,
    /// `bizLocation.id`.
    pub biz_location: Option<String>,
    /// `epcList`, canonical.
    pub epc_list: Vec<String>,
    /// `childEPCs`, canonical.
    pub child_epcs: Vec<String>,
    /// `parentID`, canonical.
    pub parent_id: Option<String>,
    /// `inputEPCList`, canonical.
    pub input_epcs: Vec<String>,
    /// `outputEPCList`, canonical.
    pub output_epcs: Vec<String>,
    /// Classes of `quantityList` and `childQuantityList`, canonical.
    pub classes: Vec<String>,
    /// Classes of `inputQuantityList`, canonical.
    pub input_classes: Vec<String>,
    /// Classes of `outputQuantityList`, canonical.
    pub output_classes: Vec<String>,
}

impl EventTerms {
    /// Every identifier of the event (what `MATCH_anyEPC` and the EPC index cover), deduplicated.
    #[must_use]
    pub fn identifiers(&self) -> Vec<&str> {
        let mut all: Vec<&str> = self
            .epc_list
            .iter()
            .chain(&self.child_epcs)
            .chain(&self.parent_id)
            .chain(&self.input_epcs)
            .chain(&self.output_epcs)
            .chain(&self.classes)
            .chain(&self.input_classes)
            .chain(&self.output_classes)
            .map(String::as_str)
            .collect();
        all.sort_unstable();
        all.dedup();
        all
    }
}

/// A captured event as stored: the event JSON as it is returned (with its `eventID` and
/// `recordTime`), its GS1 canonical event hash, its owner, the salt of its log commitment
/// (private: handed only to those who may read the event) and where its entry is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredEvent {
    /// The event JSON.
    pub event: Map<String, Value>,
    /// Namespace prefixes its document declared (`{"example": "http://ns.example.com/epcis/"}`).
    pub context: Map<String, Value>,
    /// Its `eventID` (the client's, or the event hash when the client gave none).
    pub event_id: String,
    /// The GS1 canonical event hash, `ni:///sha-256;<hex>?ver=CBV2.0`.
    pub event_hash: String,
    /// The organisation that captured it.
    pub owner: OrgId,
    /// The capture job that stored it.
    pub capture_id: String,
    /// The commitment salt, 32 bytes as hex.
    pub salt: String,
    /// `eventTime`, Unix ms.
    pub event_time_ms: u64,
    /// When this node stored it, Unix ms.
    pub record_time_ms: u64,
    /// The event type name.
    pub event_type: String,
    /// The values queries filter on.
    pub terms: EventTerms,
    /// `leaf_hash` of its `TraceEvent` entry, hex.
    pub entry_leaf_hash: String,
    /// The durable log size when the entry was submitted (a lower bound of its index).
    pub log_size_before: u64,
}

impl StoredEvent {
    /// The digest of the event hash.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] if the stored hash is not a `ni:///sha-256;` hash.
    pub fn digest(&self) -> Result<[u8; 32], StoreError> {
        parse_event_hash(&self.event_hash)
            .ok_or_else(|| StoreError::Corrupt(format!("event hash {}", self.event_hash)))
    }

    /// Its position in the index order.
    ///
    /// # Errors
    /// As [`digest`](Self::digest).
    pub fn cursor(&self) -> Result<EventCursor, StoreError> {
        Ok(EventCursor {
            time_ms: self.event_time_ms,
            digest: self.digest()?,
        })
    }

    /// The salt as bytes.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] if it is not 64 hex digits.
    pub fn salt_bytes(&self) -> Result<[u8; 32], StoreError> {
        unhex32(&self.salt).ok_or_else(|| StoreError::Corrupt("event salt".to_owned()))
    }

    /// Where its entry is in the log.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] if the stored leaf hash is not 64 hex digits.
    pub fn locator(&self) -> Result<EntryLocator, StoreError> {
        Ok(EntryLocator {
            leaf_hash: Hash(
                unhex32(&self.entry_leaf_hash)
                    .ok_or_else(|| StoreError::Corrupt("entry leaf hash".to_owned()))?,
            ),
            log_size_before: self.log_size_before,
        })
    }

    /// Its index rows (every kind it has a value for).
    #[must_use]
    pub fn index_rows(&self, cursor: &EventCursor) -> Vec<Vec<u8>> {
        let t = &self.terms;
        let mut rows = vec![
            index_key(IndexKind::Time, "", cursor),
            index_key(IndexKind::Owner, self.owner.as_str(), cursor),
            index_key(IndexKind::EventType, &self.event_type, cursor),
        ];
        let singles = [
            (IndexKind::BizStep, &t.biz_step),
            (IndexKind::Disposition, &t.disposition),
            (IndexKind::BizLocation, &t.biz_location),
            (IndexKind::ReadPoint, &t.read_point),
        ];
        for (kind, value) in singles {
            if let Some(value) = value {
                rows.push(index_key(kind, value, cursor));
            }
        }
        for id in t.identifiers() {
            rows.push(index_key(IndexKind::Epc, id, cursor));
        }
        rows
    }
}

/// The digest inside `ni:///sha-256;<64 hex>?ver=CBV2.0`, or of a bare 64-hex string.
#[must_use]
pub fn parse_event_hash(text: &str) -> Option<[u8; 32]> {
    let hex_part = text
        .strip_prefix("ni:///sha-256;")
        .map_or(text, |rest| rest.split('?').next().unwrap_or(rest));
    unhex32(hex_part)
}

fn unhex32(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// The canonical form of an identifier for the index: EPC URI -> canonical Digital Link,
/// Digital Link -> constrained canonical form, anything else as given.
#[must_use]
pub fn canonical_identifier(value: &str) -> String {
    if value.starts_with("urn:epc:") {
        canonical_epc(value).unwrap_or_else(|_| value.to_owned())
    } else {
        constrain_digital_link(value).unwrap_or_else(|| value.to_owned())
    }
}

/// A CBV value in its bare-word form when it is one (`urn:epcglobal:cbv:bizstep:shipping`,
/// `https://ref.gs1.org/cbv/BizStep-shipping` and `shipping` are all `shipping`).
#[must_use]
pub fn cbv_term(value: &str, web_prefix: &str) -> String {
    if let Some(word) = value.strip_prefix(web_prefix) {
        return word.to_owned();
    }
    for (urn, web) in URN_TO_WEB {
        if *web == web_prefix
            && let Some(word) = value.strip_prefix(urn)
        {
            return word.to_owned();
        }
    }
    value.to_owned()
}

/// The web prefix of CBV business steps.
pub const BIZ_STEP_PREFIX: &str = "https://ref.gs1.org/cbv/BizStep-";
/// The web prefix of CBV dispositions.
pub const DISPOSITION_PREFIX: &str = "https://ref.gs1.org/cbv/Disp-";

fn str_field(fields: &Map<String, Value>, key: &str) -> Option<String> {
    fields.get(key).and_then(Value::as_str).map(str::to_owned)
}

fn id_field(fields: &Map<String, Value>, key: &str) -> Option<String> {
    fields
        .get(key)
        .and_then(|v| v.get("id"))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

fn epcs(fields: &Map<String, Value>, key: &str) -> Vec<String> {
    fields
        .get(key)
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(Value::as_str)
                .map(canonical_identifier)
                .collect()
        })
        .unwrap_or_default()
}

fn classes(fields: &Map<String, Value>, key: &str) -> Vec<String> {
    fields
        .get(key)
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|q| q.get("epcClass").and_then(Value::as_str))
                .map(canonical_identifier)
                .collect()
        })
        .unwrap_or_default()
}

/// The query terms of a validated event.
#[must_use]
pub fn terms_of(event: &Event) -> EventTerms {
    let f = event.fields();
    let mut classes_all = classes(f, "quantityList");
    classes_all.extend(classes(f, "childQuantityList"));
    EventTerms {
        action: str_field(f, "action"),
        biz_step: str_field(f, "bizStep").map(|s| cbv_term(&s, BIZ_STEP_PREFIX)),
        disposition: str_field(f, "disposition").map(|s| cbv_term(&s, DISPOSITION_PREFIX)),
        read_point: id_field(f, "readPoint"),
        biz_location: id_field(f, "bizLocation"),
        epc_list: epcs(f, "epcList"),
        child_epcs: epcs(f, "childEPCs"),
        parent_id: str_field(f, "parentID").map(|p| canonical_identifier(&p)),
        input_epcs: epcs(f, "inputEPCList"),
        output_epcs: epcs(f, "outputEPCList"),
        classes: classes_all,
        input_classes: classes(f, "inputQuantityList"),
        output_classes: classes(f, "outputQuantityList"),
    }
}

/// The log's event type code of an EPCIS event type.
#[must_use]
pub fn log_event_type(t: EventType) -> EpcisEventType {
    match t {
        EventType::ObjectEvent => EpcisEventType::Object,
        EventType::AggregationEvent => EpcisEventType::Aggregation,
        EventType::TransactionEvent => EpcisEventType::Transaction,
        EventType::TransformationEvent => EpcisEventType::Transformation,
        EventType::AssociationEvent => EpcisEventType::Association,
    }
}

/// The business step as the log's token: the bare CBV word, a URI that fits a token as it
/// is, `other` for a longer one (the full value stays in the record), `unspecified` without.
#[must_use]
pub fn biz_step_token(biz_step: Option<&str>) -> Token {
    // The two literals satisfy the token rules (1..=64 bytes of `a-z`): not input.
    let literal = |word: &str| Token::new(word).expect("a valid literal token");
    match biz_step {
        None => literal("unspecified"),
        Some(step) => Token::new(step).unwrap_or_else(|_| literal("other")),
    }
}

/// A validated event ready to commit: everything but the salt and the log position.
#[derive(Debug, Clone)]
pub struct PreparedEvent {
    /// The event record, `salt`, `entry_leaf_hash` and `log_size_before` still empty.
    pub stored: StoredEvent,
    /// Its position in the index.
    pub cursor: EventCursor,
    /// The `TraceEvent` fields other than the commitment.
    pub event_type: EpcisEventType,
    /// The log's business step token.
    pub biz_step: Token,
}

impl PreparedEvent {
    /// The `TraceEvent` entry and its sidecar records, with `salt` and the durable log size.
    ///
    /// # Errors
    /// A message if the entry cannot be encoded (a bug: the fields were checked).
    pub fn commit_records(
        &self,
        salt: &[u8; 32],
        log_size_before: u64,
    ) -> Result<(Vec<u8>, Vec<SidecarRecord>, StoredEvent), String> {
        let entry = Entry::TraceEvent(TraceEvent {
            commitment: salted_commitment(salt, &self.cursor.digest),
            event_type: self.event_type,
            biz_step: self.biz_step.clone(),
            event_time_ms: self.cursor.time_ms,
        })
        .encode()
        .map_err(|e| format!("encoding a TraceEvent: {e}"))?;
        let mut stored = self.stored.clone();
        stored.salt = hex(salt);
        stored.entry_leaf_hash = leaf_hash(&entry).to_hex();
        stored.log_size_before = log_size_before;
        let value = serde_json::to_vec(&stored).map_err(|e| e.to_string())?;
        let mut sidecars = vec![
            SidecarRecord {
                table: EVENTS.to_owned(),
                key: self.cursor.digest.to_vec(),
                value,
            },
            SidecarRecord {
                table: EVENT_IDS.to_owned(),
                key: stored.event_id.as_bytes().to_vec(),
                value: self.cursor.digest.to_vec(),
            },
        ];
        sidecars.extend(
            stored
                .index_rows(&self.cursor)
                .into_iter()
                .map(|key| SidecarRecord {
                    table: INDEX.to_owned(),
                    key,
                    value: Vec::new(),
                }),
        );
        Ok((entry, sidecars, stored))
    }
}

/// What proves a stored event: its entry in the log and what opens the commitment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventProof {
    /// The entry's index in the log.
    pub leaf_index: LeafIndex,
    /// The exact entry bytes.
    pub entry: Vec<u8>,
    /// The decoded entry.
    pub trace_event: TraceEvent,
    /// The commitment salt.
    pub salt: [u8; 32],
    /// The event hash digest: `SHA-256(salt ‖ digest)` is the entry's commitment.
    pub digest: [u8; 32],
}

/// An entry found in the durable log: its index and its exact bytes.
type Located = (LeafIndex, Arc<[u8]>);

/// Read side of the event store over the node's storage.
#[derive(Debug, Clone)]
pub struct EventStore<S> {
    storage: S,
    /// Entry leaf hash -> where the entry is in the durable log and its exact bytes.
    located: Arc<Mutex<HashMap<Hash, Located>>>,
    /// Digest -> the stored event, decoded.
    decoded: Arc<Mutex<HashMap<[u8; 32], Arc<StoredEvent>>>>,
    /// Leaf index -> its inclusion proof in the tree of the proof's size.
    inclusion: Arc<Mutex<HashMap<LeafIndex, InclusionProof>>>,
}

/// Inserts into a bounded map, emptying it first when full.
fn remember<K: std::hash::Hash + Eq, V>(map: &Mutex<HashMap<K, V>>, key: K, value: V, max: usize) {
    let mut map = map.lock().unwrap_or_else(PoisonError::into_inner);
    if map.len() >= max {
        map.clear();
    }
    map.insert(key, value);
}

fn decode_event(bytes: &[u8]) -> Result<StoredEvent, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(e.to_string()))
}

impl<S: IngestStorage> EventStore<S> {
    /// The store over `storage`.
    pub fn new(storage: S) -> Self {
        Self {
            storage,
            located: Arc::default(),
            decoded: Arc::default(),
            inclusion: Arc::default(),
        }
    }

    /// The storage.
    pub fn storage(&self) -> &S {
        &self.storage
    }

    /// An event by its digest.
    ///
    /// # Errors
    /// [`StoreError`] if storage fails or the record is corrupt.
    pub fn by_digest(&self, digest: &[u8; 32]) -> Result<Option<StoredEvent>, StoreError> {
        self.storage
            .read(EVENTS, digest)?
            .map(|b| decode_event(&b))
            .transpose()
    }

    /// Events by digests, in the order of `digests` (`None` where there is none).
    ///
    /// # Errors
    /// [`StoreError`] if storage fails or a record is corrupt.
    pub fn read_events(
        &self,
        digests: &[[u8; 32]],
    ) -> Result<Vec<Option<StoredEvent>>, StoreError> {
        let keys: Vec<Vec<u8>> = digests.iter().map(|d| d.to_vec()).collect();
        self.storage
            .read_many(EVENTS, &keys)?
            .into_iter()
            .map(|b| b.map(|b| decode_event(&b)).transpose())
            .collect()
    }

    /// Events by digests, in order (missing ones skipped).
    ///
    /// # Errors
    /// [`StoreError`] if storage fails or a record is corrupt.
    pub fn by_digests(&self, digests: &[[u8; 32]]) -> Result<Vec<StoredEvent>, StoreError> {
        Ok(self.read_events(digests)?.into_iter().flatten().collect())
    }

    /// The digest stored under an `eventID`.
    ///
    /// # Errors
    /// [`StoreError`] if storage fails or the record is corrupt.
    pub fn digest_of_id(&self, event_id: &str) -> Result<Option<[u8; 32]>, StoreError> {
        self.storage
            .read(EVENT_IDS, event_id.as_bytes())?
            .map(|b| {
                <[u8; 32]>::try_from(b.as_slice())
                    .map_err(|_| StoreError::Corrupt("event id record".to_owned()))
            })
            .transpose()
    }

    /// One event by its `eventID`, its event hash (`ni:///sha-256;...`) or the hash's 64 hex
    /// digits.
    ///
    /// # Errors
    /// [`StoreError`] if storage fails or a record is corrupt.
    pub fn event(&self, id_or_hash: &str) -> Result<Option<StoredEvent>, StoreError> {
        // A hash names the event with that content first, so an event whose eventID is another
        // event's hash cannot shadow it.
        if let Some(digest) = parse_event_hash(id_or_hash)
            && let Some(stored) = self.by_digest(&digest)?
        {
            return Ok(Some(stored));
        }
        match self.digest_of_id(id_or_hash)? {
            Some(digest) => self.by_digest(&digest),
            None => Ok(None),
        }
    }

    /// Index rows of `kind`/`value` in order, after `after` (exclusive), at most `limit`.
    ///
    /// # Errors
    /// [`StoreError`] if storage fails or a row is malformed.
    pub fn index_rows(
        &self,
        kind: IndexKind,
        value: &str,
        after: Option<&EventCursor>,
        until_ms: Option<u64>,
        from_ms: Option<u64>,
        limit: usize,
    ) -> Result<Vec<EventCursor>, StoreError> {
        let prefix = index_prefix(kind, value);
        let mut from = prefix.clone();
        match after {
            Some(cursor) if from_ms.is_none_or(|f| cursor.time_ms >= f) => {
                from.extend_from_slice(&cursor.to_bytes());
                from.push(0);
            }
            _ => from.extend_from_slice(&from_ms.unwrap_or(0).to_be_bytes()),
        }
        let mut to = prefix.clone();
        match until_ms {
            Some(until) => to.extend_from_slice(&until.to_be_bytes()),
            None => to.extend_from_slice(&[0xff; 41]),
        }
        self.storage
            .scan(INDEX, &from, &to, limit)?
            .into_iter()
            .map(|(key, _)| {
                key.get(prefix.len()..)
                    .and_then(EventCursor::from_bytes)
                    .ok_or_else(|| StoreError::Corrupt("index row".to_owned()))
            })
            .collect()
    }

    /// Events that name `epc` (in any EPC field, or as an EPC class, in any spelling), in
    /// event-time order, after `after` (the [`StoredEvent::cursor`] of the last event of the
    /// previous page), at most `limit`.
    ///
    /// # Errors
    /// [`StoreError`] if storage fails or a record is corrupt.
    pub fn events_for_epc(
        &self,
        epc: &str,
        after: Option<&EventCursor>,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let rows = self.index_rows(
            IndexKind::Epc,
            &canonical_identifier(epc),
            after,
            None,
            None,
            limit,
        )?;
        let digests: Vec<[u8; 32]> = rows.iter().map(|c| c.digest).collect();
        self.by_digests(&digests)
    }

    /// [`events_for_epc`](Self::events_for_epc), shared: events decoded before are taken from
    /// memory (a stored event never changes), the others read in one batch and remembered.
    ///
    /// # Errors
    /// [`StoreError`] if storage fails or a record is corrupt.
    pub fn shared_events_for_epc(
        &self,
        epc: &str,
        after: Option<&EventCursor>,
        limit: usize,
    ) -> Result<Vec<Arc<StoredEvent>>, StoreError> {
        let rows = self.index_rows(
            IndexKind::Epc,
            &canonical_identifier(epc),
            after,
            None,
            None,
            limit,
        )?;
        let mut events: Vec<Option<Arc<StoredEvent>>> = {
            let decoded = self.decoded.lock().unwrap_or_else(PoisonError::into_inner);
            rows.iter()
                .map(|c| decoded.get(&c.digest).cloned())
                .collect()
        };
        let missing: Vec<[u8; 32]> = rows
            .iter()
            .zip(&events)
            .filter(|(_, e)| e.is_none())
            .map(|(c, _)| c.digest)
            .collect();
        if !missing.is_empty() {
            let mut read = self.read_events(&missing)?.into_iter();
            for (cursor, slot) in rows.iter().zip(events.iter_mut()) {
                if slot.is_some() {
                    continue;
                }
                if let Some(stored) = read.next().flatten() {
                    let stored = Arc::new(stored);
                    remember(
                        &self.decoded,
                        cursor.digest,
                        Arc::clone(&stored),
                        DECODED_EVENTS_MAX,
                    );
                    *slot = Some(stored);
                }
            }
        }
        Ok(events.into_iter().flatten().collect())
    }

    /// The inclusion proof of each entry of `indexes` against the latest published checkpoint,
    /// as [`SequencerHandle::inclusion_proof`] answers it; a proof computed for the tree size
    /// published now is taken from memory. Blocking: tile reads and hashing.
    pub fn inclusion_proofs(
        &self,
        sequencer: &SequencerHandle<S>,
        indexes: &[LeafIndex],
    ) -> Vec<Result<(InclusionProof, Arc<PublishedCheckpoint>), ServeProofError>>
    where
        S: LogStorage,
    {
        indexes
            .iter()
            .map(|index| {
                let latest = sequencer
                    .checkpoint()
                    .ok_or(ServeProofError::NoCheckpoint)?;
                let known = self
                    .inclusion
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .get(index)
                    .filter(|proof| proof.tree_size == latest.size)
                    .cloned();
                if let Some(proof) = known {
                    return Ok((proof, latest));
                }
                let (proof, checkpoint) = sequencer.inclusion_proof(*index)?;
                remember(&self.inclusion, *index, proof.clone(), INCLUSION_PROOFS_MAX);
                Ok((proof, checkpoint))
            })
            .collect()
    }

    /// The proof of a stored event: its `TraceEvent` entry, where it is in the log, and the
    /// salt and digest that open its commitment. `None` while the entry is not located in the
    /// durable log.
    ///
    /// # Errors
    /// [`StoreError`] if storage fails, a record is corrupt, or the entry found does not
    /// commit to the event.
    pub async fn proof(
        &self,
        sequencer: &SequencerHandle<S>,
        stored: &StoredEvent,
    ) -> Result<Option<EventProof>, StoreError>
    where
        S: LogStorage,
    {
        Ok(self.proofs(sequencer, &[stored]).await?.pop().flatten())
    }

    /// [`proof`](Self::proof) of every event of `events`, in their order. Entries located
    /// before are taken from memory; the others are searched for in one pass over the durable
    /// log that reads each entry bundle once, however many of the events it holds.
    ///
    /// # Errors
    /// As [`proof`](Self::proof).
    pub async fn proofs(
        &self,
        sequencer: &SequencerHandle<S>,
        events: &[&StoredEvent],
    ) -> Result<Vec<Option<EventProof>>, StoreError>
    where
        S: LogStorage,
    {
        let locators = events
            .iter()
            .map(|stored| stored.locator())
            .collect::<Result<Vec<_>, _>>()?;
        let mut found: Vec<Option<Located>> = {
            let located = self.located.lock().unwrap_or_else(PoisonError::into_inner);
            locators
                .iter()
                .map(|l| located.get(&l.leaf_hash).cloned())
                .collect()
        };
        let missing: Vec<usize> = (0..events.len()).filter(|&i| found[i].is_none()).collect();
        if !missing.is_empty() {
            let durable = sequencer.durable_state().size;
            let mut bundles = HashMap::new();
            for i in missing {
                let Some((index, entry)) =
                    locate_in_bundles(&self.storage, &locators[i], durable, &mut bundles).await?
                else {
                    continue;
                };
                let entry: Arc<[u8]> = entry.into();
                remember(
                    &self.located,
                    locators[i].leaf_hash,
                    (index, Arc::clone(&entry)),
                    LOCATED_ENTRIES_MAX,
                );
                found[i] = Some((index, entry));
            }
        }
        events
            .iter()
            .zip(found)
            .map(|(stored, found)| {
                let Some((leaf_index, entry)) = found else {
                    return Ok(None);
                };
                let Ok(Entry::TraceEvent(trace_event)) = Entry::decode(&entry) else {
                    return Err(StoreError::Corrupt(
                        "an event's entry is not a TraceEvent".to_owned(),
                    ));
                };
                let salt = stored.salt_bytes()?;
                let digest = stored.digest()?;
                if salted_commitment(&salt, &digest) != trace_event.commitment {
                    return Err(StoreError::Corrupt(
                        "an event's entry does not commit to it".to_owned(),
                    ));
                }
                Ok(Some(EventProof {
                    leaf_index,
                    entry: entry.to_vec(),
                    trace_event,
                    salt,
                    digest,
                }))
            })
            .collect()
    }
}

/// An entry bundle read in one pass: its bytes and the leaf hash of each of its entries.
pub(crate) struct ReadBundle {
    bytes: Vec<u8>,
    leaf_hashes: Vec<Hash>,
}

/// The index and bytes of the entry `locator` names in the durable log of `durable` entries
/// (as `ingest::store::locate_entry` finds it: the first entry at or after
/// `locator.log_size_before` with its leaf hash, at most
/// `ingest::store::LOCATE_SCAN_ENTRIES_MAX` entries on), reading bundles through `bundles`,
/// which keeps the bundles of one pass with their entries' leaf hashes, so each bundle is
/// read and hashed once however many events it holds.
pub(crate) async fn locate_in_bundles<S: LogStorage>(
    storage: &S,
    locator: &EntryLocator,
    durable: u64,
    bundles: &mut HashMap<u64, ReadBundle>,
) -> Result<Option<(LeafIndex, Vec<u8>)>, StoreError> {
    let width = u64::from(TILE_WIDTH);
    let corrupt = |e: ledger::tile::BundleError| StoreError::Corrupt(format!("entry bundle: {e}"));
    let end = durable.min(
        locator
            .log_size_before
            .saturating_add(ingest::store::LOCATE_SCAN_ENTRIES_MAX),
    );
    let mut index = locator.log_size_before;
    while index < end {
        let bundle_index = index / width;
        let bundle = match bundles.entry(bundle_index) {
            Slot::Occupied(read) => read.into_mut(),
            Slot::Vacant(slot) => {
                let Some(bytes) = storage.bundle(bundle_index).await? else {
                    return Err(StoreError::Read(ReadError::Corrupt(format!(
                        "entry bundle {bundle_index} of the durable log is missing"
                    ))));
                };
                let leaf_hashes = parse_bundle(&bytes)
                    .map_err(corrupt)?
                    .into_iter()
                    .map(leaf_hash)
                    .collect();
                slot.insert(ReadBundle { bytes, leaf_hashes })
            }
        };
        let first = bundle_index * width;
        let hit = (first..)
            .zip(&bundle.leaf_hashes)
            .position(|(at, hash)| at >= index && at < end && *hash == locator.leaf_hash);
        if let Some(offset) = hit {
            let entries = parse_bundle(&bundle.bytes).map_err(corrupt)?;
            let entry = entries
                .get(offset)
                .map(|e| e.to_vec())
                .ok_or_else(|| StoreError::Corrupt("entry bundle changed while read".to_owned()))?;
            let at = first
                + u64::try_from(offset)
                    .map_err(|_| StoreError::Corrupt("entry bundle offset".to_owned()))?;
            return Ok(Some((LeafIndex(at), entry)));
        }
        index = first + width;
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_indexed_in_one_canonical_spelling() {
        let check = |input: &str, expected: &str| {
            assert_eq!(canonical_identifier(input), expected, "{input}");
        };
        check(
            "urn:epc:id:sgtin:0614141.107346.2017",
            "https://id.gs1.org/01/10614141073464/21/2017",
        );
        check(
            "https://example.com/01/00614141073467/21/2017?x=1",
            "https://id.gs1.org/01/00614141073467/21/2017",
        );
        check(
            "urn:epc:class:lgtin:4012345.012345.998877",
            "https://id.gs1.org/01/04012345123456/10/998877",
        );
        check("urn:example:thing:1", "urn:example:thing:1");
    }

    #[test]
    fn cbv_values_are_bare_words_in_every_spelling() {
        for spelling in [
            "shipping",
            "https://ref.gs1.org/cbv/BizStep-shipping",
            "urn:epcglobal:cbv:bizstep:shipping",
        ] {
            assert_eq!(cbv_term(spelling, BIZ_STEP_PREFIX), "shipping");
        }
        assert_eq!(
            cbv_term("urn:epcglobal:cbv:disp:in_transit", DISPOSITION_PREFIX),
            "in_transit"
        );
        assert_eq!(
            cbv_term("https://example.org/step/x", BIZ_STEP_PREFIX),
            "https://example.org/step/x"
        );
    }

    #[test]
    fn event_hashes_parse_in_both_forms() {
        let hex64 = "39141606ab0b3f7839735303d670b16acdd6faf573d27564ebb3f76ad23e4ff7";
        let full = format!("ni:///sha-256;{hex64}?ver=CBV2.0");
        assert_eq!(parse_event_hash(&full), parse_event_hash(hex64));
        assert!(parse_event_hash(hex64).is_some());
        assert_eq!(parse_event_hash("ni:///sha-256;zz?ver=CBV2.0"), None);
        assert_eq!(parse_event_hash("urn:uuid:1"), None);
    }

    #[test]
    fn biz_step_tokens() {
        assert_eq!(biz_step_token(Some("shipping")).as_str(), "shipping");
        assert_eq!(biz_step_token(None).as_str(), "unspecified");
        let long = format!("https://example.org/{}", "x".repeat(80));
        assert_eq!(biz_step_token(Some(&long)).as_str(), "other");
    }

    #[test]
    fn cursors_round_trip_and_sort_like_their_bytes() {
        let a = EventCursor {
            time_ms: 5,
            digest: [9; 32],
        };
        let b = EventCursor {
            time_ms: 6,
            digest: [0; 32],
        };
        assert_eq!(EventCursor::from_bytes(&a.to_bytes()), Some(a));
        assert!(a < b && a.to_bytes() < b.to_bytes());
        assert_eq!(EventCursor::from_bytes(&[0; 39]), None);
    }
}
