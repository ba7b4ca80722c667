//! The evidence bundle file (`agritrace/evidence-bundle/v1`): everything a court or a customs
//! office needs to check the story of a shipment or a lot with no network — log entries with
//! their inclusion proofs, cosigned checkpoints linked by consistency proofs, the signed
//! readings with subset proofs into their batches, the EPCIS events and trade documents with
//! the salts that open their commitments, and the trust policy — in one text file.
//!
//! ```text
//! agritrace/evidence-bundle/v1
//! subject shipment <token>/<token>        | subject lot <gtin-14>/<token>
//! exported <unix ms>
//! policy <base64 of the C2SP tlog-policy text>
//! checkpoint <base64 of a signed checkpoint note>     (one or more, tree sizes ascending)
//! consistency <base64 hash>               (zero or more after every checkpoint but the first:
//!                                          RFC 9162 consistency proof from the previous one)
//! entry <leaf index> <base64 of the entry, exact bytes>   (zero or more, indexes ascending)
//! inclusion <base64 hash>                 (zero or more: the entry's RFC 9162 inclusion path
//!                                          in the LAST checkpoint's tree, sibling first)
//! batch <leaf index of its ReadingBatch entry> <batch size>   (zero or more, ascending)
//! reading <position in the batch> <base64 of the signed reading, exact bytes>
//!                                         (one or more per batch, positions ascending)
//! batch-proof <base64 hash>               (zero or more: the subset proof of the batch's
//!                                          readings, `ledger::subset_proof`)
//! event <leaf index of its TraceEvent entry> <base64 salt> <base64 event JSON>
//!                                         (zero or more, ascending)
//! document <leaf index of its DocumentAnchor entry> <base64 salt> <base64 number>
//!          <base64 media type> <base64 content>   (one line; zero or more, ascending)
//! seal <base64 of a signed note>
//! ```
//!
//! Meaning:
//! - Every `batch`, `event` and `document` names an `entry` of the bundle of the right kind
//!   (`ReadingBatch`, `TraceEvent`, `DocumentAnchor`). Device keys (`KeyEvent`) and issuer keys
//!   (`IssuerKeyEvent`) are ordinary entries, so their registration is proven like anything
//!   else, and log order says whether a key was valid for a reading or an anchor.
//! - A reading's leaf hash is `SHA-256(0x00 || signed reading)`; the readings of a batch and its
//!   subset proof give the batch root, which must be the entry's.
//! - An event's salt opens the `TraceEvent` commitment: `SHA-256(salt || digest)` where digest
//!   is the GS1 canonical event hash of the event JSON. A document's salt opens the
//!   `DocumentAnchor` commitment: `SHA-256(salt || SHA-256(content))`. Anchors of documents the
//!   exporter may not see are entries without a `document` line.
//! - The seal is a C2SP signed note by the log key, whose text is
//!   `agritrace/evidence-seal/v1\nsha256\n<base64 of SHA-256 of every byte of the file before
//!   the seal line>\n`. It covers what no other proof covers (the subject, the export time,
//!   document numbers and media types), so that changing any byte of a bundle is caught.
//!
//! Rules (the parser refuses anything else, so an accepted file has exactly one spelling and
//! [`EvidenceBundle::to_text`] gives back the bytes it was parsed from): lines end with `\n`
//! only; labels and values are separated by one space; decimals have no sign and no leading
//! zero and fit 64 bits; base64 is RFC 4648 §4 standard, padded, with zero trailing bits;
//! hashes and salts are 32 bytes; the file is UTF-8 of at most [`EVIDENCE_BUNDLE_BYTES_MAX`]
//! bytes.

use std::fmt::Write as _;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ledger::merkle::{Hash, LeafIndex, TreeSize};

/// First line of an evidence bundle.
pub const EVIDENCE_BUNDLE_HEADER: &str = "agritrace/evidence-bundle/v1";

/// First line of the seal note's text.
pub const EVIDENCE_SEAL_HEADER: &str = "agritrace/evidence-seal/v1";

/// Largest evidence bundle accepted, in bytes (a shipment with a few hundred thousand readings
/// and its documents fits with room to spare).
pub const EVIDENCE_BUNDLE_BYTES_MAX: usize = 1 << 30;

/// What the bundle is the evidence of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Subject {
    /// A shipment: the exporter organisation and the shipment's id within it.
    Shipment {
        /// Exporter organisation id.
        exporter: String,
        /// Shipment id.
        id: String,
    },
    /// A lot: the product's GTIN-14 and the lot number.
    Lot {
        /// GTIN-14, 14 digits.
        gtin: String,
        /// Lot number.
        lot: String,
    },
}

/// A cosigned checkpoint and the consistency proof that links it to the previous one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BundleCheckpoint {
    /// The signed checkpoint note, verbatim.
    pub signed_note: String,
    /// RFC 9162 consistency proof from the previous checkpoint of the bundle (empty for the
    /// first, and between two checkpoints of the same size).
    pub consistency: Vec<Hash>,
}

/// A log entry and its inclusion proof in the last checkpoint's tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BundleEntry {
    /// Its leaf index.
    pub index: LeafIndex,
    /// The entry, exactly as stored.
    pub bytes: Vec<u8>,
    /// Inclusion path, sibling first.
    pub inclusion: Vec<Hash>,
}

/// Signed readings of one batch and their subset proof.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BundleBatch {
    /// Leaf index of the batch's `ReadingBatch` entry.
    pub entry: LeafIndex,
    /// Number of readings in the batch (its tree size).
    pub size: TreeSize,
    /// `(position in the batch, signed reading exact bytes)`, positions ascending.
    pub readings: Vec<(LeafIndex, Vec<u8>)>,
    /// The subset proof of those positions (`ledger::subset_proof`).
    pub proof: Vec<Hash>,
}

/// An EPCIS event and the salt of its `TraceEvent` commitment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BundleEvent {
    /// Leaf index of its `TraceEvent` entry.
    pub entry: LeafIndex,
    /// The commitment's salt.
    pub salt: [u8; 32],
    /// The EPCIS 2.0 event as JSON (one event object, as captured).
    pub event_json: Vec<u8>,
}

/// A trade document and the salt of its `DocumentAnchor` commitment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BundleDocument {
    /// Leaf index of its `DocumentAnchor` entry.
    pub entry: LeafIndex,
    /// The commitment's salt.
    pub salt: [u8; 32],
    /// The issuer's document number (UTF-8).
    pub number: String,
    /// The media type, e.g. `application/pdf`.
    pub media_type: String,
    /// The document file, exact bytes.
    pub content: Vec<u8>,
}

/// A parsed evidence bundle. Nothing in it is verified by parsing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EvidenceBundle {
    /// What it is the evidence of.
    pub subject: Subject,
    /// When the node exported it (Unix ms).
    pub exported_ms: u64,
    /// The trust policy (C2SP tlog-policy text) the node exported it under.
    pub policy: Vec<u8>,
    /// Checkpoints, tree sizes ascending; the last is the one every inclusion proof is for.
    pub checkpoints: Vec<BundleCheckpoint>,
    /// Entries, leaf indexes ascending.
    pub entries: Vec<BundleEntry>,
    /// Reading batches, entry indexes ascending.
    pub batches: Vec<BundleBatch>,
    /// Events, entry indexes ascending.
    pub events: Vec<BundleEvent>,
    /// Documents, entry indexes ascending.
    pub documents: Vec<BundleDocument>,
    /// The seal: a signed note by the log key over the file before the seal line.
    pub seal: String,
}

impl EvidenceBundle {
    /// The text of the file up to (not including) the seal line: what the seal's hash covers.
    #[must_use]
    pub fn body_text(&self) -> String {
        let mut out = String::with_capacity(self.size_hint());
        out.push_str(EVIDENCE_BUNDLE_HEADER);
        out.push('\n');
        // Writing into a String cannot fail.
        let _ = match &self.subject {
            Subject::Shipment { exporter, id } => {
                writeln!(out, "subject shipment {exporter}/{id}")
            }
            Subject::Lot { gtin, lot } => writeln!(out, "subject lot {gtin}/{lot}"),
        };
        let _ = writeln!(out, "exported {}", self.exported_ms);
        line(&mut out, "policy", &STANDARD.encode(&self.policy));
        for checkpoint in &self.checkpoints {
            line(
                &mut out,
                "checkpoint",
                &STANDARD.encode(checkpoint.signed_note.as_bytes()),
            );
            hashes(&mut out, "consistency", &checkpoint.consistency);
        }
        for entry in &self.entries {
            let _ = writeln!(
                out,
                "entry {} {}",
                entry.index.0,
                STANDARD.encode(&entry.bytes)
            );
            hashes(&mut out, "inclusion", &entry.inclusion);
        }
        for batch in &self.batches {
            let _ = writeln!(out, "batch {} {}", batch.entry.0, batch.size.0);
            for (position, reading) in &batch.readings {
                let _ = writeln!(out, "reading {} {}", position.0, STANDARD.encode(reading));
            }
            hashes(&mut out, "batch-proof", &batch.proof);
        }
        for event in &self.events {
            let _ = writeln!(
                out,
                "event {} {} {}",
                event.entry.0,
                STANDARD.encode(event.salt),
                STANDARD.encode(&event.event_json)
            );
        }
        for document in &self.documents {
            let _ = writeln!(
                out,
                "document {} {} {} {} {}",
                document.entry.0,
                STANDARD.encode(document.salt),
                STANDARD.encode(document.number.as_bytes()),
                STANDARD.encode(document.media_type.as_bytes()),
                STANDARD.encode(&document.content)
            );
        }
        out
    }

    /// The whole file: [`body_text`](Self::body_text) and the seal line.
    #[must_use]
    pub fn to_text(&self) -> String {
        let mut out = self.body_text();
        line(&mut out, "seal", &STANDARD.encode(self.seal.as_bytes()));
        out
    }

    /// The text of the seal note for a bundle whose body is `body` (what the log key signs).
    #[must_use]
    pub fn seal_text(body: &str) -> String {
        use sha2::{Digest as _, Sha256};
        let digest = Hash(Sha256::digest(body.as_bytes()).into());
        format!("{EVIDENCE_SEAL_HEADER}\nsha256\n{}\n", digest.to_base64())
    }

    fn size_hint(&self) -> usize {
        let readings: usize = self
            .batches
            .iter()
            .map(|b| {
                b.readings
                    .iter()
                    .map(|(_, r)| 24 + r.len() * 4 / 3)
                    .sum::<usize>()
            })
            .sum();
        let documents: usize = self
            .documents
            .iter()
            .map(|d| 128 + d.content.len() * 4 / 3)
            .sum();
        let entries: usize = self
            .entries
            .iter()
            .map(|e| 32 + e.bytes.len() * 4 / 3 + 55 * e.inclusion.len())
            .sum();
        4096 + readings + documents + entries
    }
}

fn line(out: &mut String, label: &str, value: &str) {
    out.push_str(label);
    out.push(' ');
    out.push_str(value);
    out.push('\n');
}

fn hashes(out: &mut String, label: &str, hashes: &[Hash]) {
    for hash in hashes {
        line(out, label, &hash.to_base64());
    }
}
