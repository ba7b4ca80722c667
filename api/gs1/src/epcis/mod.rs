//! EPCIS 2.0 business events (DESIGN.md, "Business events"): parsing and validation of
//! EPCIS 2.0 JSON-LD capture documents, and the GS1 canonical event hash
//! (`ni:///sha-256;…?ver=CBV2.0`, CBV 2.0 §8.9) that identifies an event and is anchored in
//! the log under a salted commitment.
//!
//! Pure library: bytes in, validated events and hashes out; the HTTP layer lives in `http`.
//!
//! - [`document`]: [`parse_document`], [`EpcisDocument`], [`Event`], [`DocumentError`].
//! - [`hash`]: [`event_hash`], [`pre_hash_string`], [`EventHash`].
//! - [`epc`]: [`canonical_epc`] (EPC URI -> canonical GS1 Digital Link).
//! - [`canon`], [`vocab`]: time stamps, numbers and CBV vocabularies.

pub mod canon;
pub mod document;
pub mod epc;
pub mod hash;
pub mod vocab;

pub use document::{
    Context, DocumentError, DocumentKind, EpcisDocument, Event, EventType, JsonPath,
    parse_document, parse_document_value, validate_event,
};
pub use epc::{EpcError, canonical_epc};
pub use hash::{EventHash, HASH_ALGORITHM_VERSION, event_hash, pre_hash_string};

/// Largest capture document accepted, in bytes (the HTTP layer should refuse bigger bodies
/// before reading them).
pub const DOCUMENT_BYTES_MAX: usize = 8 * 1024 * 1024;

/// Most events accepted in one document.
pub const EVENTS_PER_DOCUMENT_MAX: usize = 10_000;

/// Most items in any one list of an event (EPCs, quantities, sensor reports, extension arrays).
pub const LIST_ITEMS_MAX: usize = 100_000;

/// Deepest nesting of a user extension value (objects and arrays inside one another).
pub const EXTENSION_DEPTH_MAX: usize = 32;

impl EpcisDocument {
    /// The canonical hash of every event, in document order.
    pub fn event_hashes(&self) -> Vec<EventHash> {
        self.events()
            .iter()
            .map(|e| event_hash(e, self.context()))
            .collect()
    }

    /// Gives every event without an `eventID` its canonical event hash as `eventID`
    /// (EPCIS 2.0 §7.4.1, CBV 2.0 §8.9) and returns all hashes in document order.
    pub fn assign_missing_event_ids(&mut self) -> Vec<EventHash> {
        let hashes = self.event_hashes();
        for (event, hash) in self.events_mut().iter_mut().zip(&hashes) {
            if event.event_id().is_none() {
                event.set_event_id(hash.as_str());
            }
        }
        hashes
    }
}
