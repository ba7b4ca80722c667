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
//! bytes. More precisely, [`EvidenceBundle::parse`] also refuses: a `consistency` line after
//! the first checkpoint; leaf indexes, batch entries, event entries or document entries that do
//! not strictly ascend; reading positions that do not strictly ascend or are not below the
//! batch size; a batch size of 0 or above 2^32-1; more than 64 `consistency` or `inclusion`
//! lines in a row; a subject part that is empty, longer than 64 bytes or not visible ASCII (a
//! shipment's exporter without `/`, a lot's GTIN 14 digits); empty base64 values; a document
//! number or media type that is not UTF-8 (at most 256 bytes each), an event of more than
//! [`EVENT_JSON_BYTES_MAX`] bytes; anything after the seal line.

use crate::lines::{Lines, MissingLine};
use std::fmt::Write as _;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ledger::entry::MAX_ENTRY_BYTES;
use ledger::merkle::{Hash, LeafIndex, TreeSize};
use ledger::note::MAX_NOTE_BYTES;
use ledger::policy::MAX_POLICY_BYTES;
use ledger::proof::MAX_PROOF_HASHES;
use protocol::limits::SIGNED_READING_BYTES_MAX;

use crate::reading_proof::{base64_bytes, decimal};

/// First line of an evidence bundle.
pub const EVIDENCE_BUNDLE_HEADER: &str = "agritrace/evidence-bundle/v1";

/// First line of the seal note's text.
pub const EVIDENCE_SEAL_HEADER: &str = "agritrace/evidence-seal/v1";

/// Largest evidence bundle accepted, in bytes (a shipment with a few hundred thousand readings
/// and its documents fits with room to spare).
pub const EVIDENCE_BUNDLE_BYTES_MAX: usize = 1 << 30;

/// Largest event JSON accepted, in bytes (an EPCIS capture document's limit).
pub const EVENT_JSON_BYTES_MAX: usize = 8 * 1024 * 1024;

/// Longest subject part (exporter, shipment id, lot number), in bytes.
pub const SUBJECT_PART_BYTES_MAX: usize = 64;

/// Longest document number or media type, in bytes.
pub const DOCUMENT_LABEL_BYTES_MAX: usize = 256;

/// Largest batch size (the range of a `ReadingBatch`'s reading count).
const BATCH_SIZE_MAX: u64 = u32::MAX as u64;

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
    /// The EPCIS 2.0 event as JSON (one event object, as captured). The verifier hashes it
    /// with the namespace prefixes its own `@context` declares, so an event with user
    /// extensions carries the `@context` of the document it was captured in.
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

/// Why an evidence bundle file was rejected (line numbers are one-based).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvidenceBundleError {
    /// Larger than [`EVIDENCE_BUNDLE_BYTES_MAX`] or not UTF-8.
    #[error("an evidence bundle must be UTF-8 text of at most {EVIDENCE_BUNDLE_BYTES_MAX} bytes")]
    Text,
    /// The first line is not [`EVIDENCE_BUNDLE_HEADER`].
    #[error("line 1 must be {EVIDENCE_BUNDLE_HEADER}")]
    Header,
    /// The file ends, or another line stands, where a labelled line must be.
    #[error("line {line}: expected a `{label}` line")]
    Missing {
        /// Line number.
        line: usize,
        /// The label expected there.
        label: &'static str,
    },
    /// A labelled line whose value is not in its canonical form or breaks an order rule.
    #[error("line {line}: `{label}` {reason}")]
    Malformed {
        /// Line number.
        line: usize,
        /// The line's label.
        label: &'static str,
        /// What is wrong, in words.
        reason: &'static str,
    },
    /// A known line where another must be (the parts come in the documented order).
    #[error(
        "line {line}: a `{label}` line is out of place (the order is subject, exported, policy, checkpoint, entry, batch, event, document, seal)"
    )]
    OutOfPlace {
        /// Line number.
        line: usize,
        /// Its label.
        label: &'static str,
    },
    /// Something follows the seal line.
    #[error("line {line}: nothing may follow the seal line")]
    AfterSeal {
        /// Line number.
        line: usize,
    },
}

impl EvidenceBundleError {
    /// The line the error is about (1 for the size and encoding errors).
    #[must_use]
    pub fn line(&self) -> usize {
        match self {
            Self::Text | Self::Header => 1,
            Self::Missing { line, .. }
            | Self::Malformed { line, .. }
            | Self::OutOfPlace { line, .. }
            | Self::AfterSeal { line } => *line,
        }
    }

    /// The label of the line the error is about, if it names one.
    #[must_use]
    pub fn label(&self) -> Option<&'static str> {
        match self {
            Self::Missing { label, .. }
            | Self::Malformed { label, .. }
            | Self::OutOfPlace { label, .. } => Some(label),
            _ => None,
        }
    }
}

/// Where each part of a bundle stands in its file (one-based line numbers), to name a failing
/// item by its line. The file has one spelling, so the lines follow from the parsed bundle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BundleLines {
    /// The `subject` line.
    pub subject: usize,
    /// The `exported` line.
    pub exported: usize,
    /// The `policy` line.
    pub policy: usize,
    /// Each checkpoint's `checkpoint` line.
    pub checkpoints: Vec<usize>,
    /// Each entry's `entry` line.
    pub entries: Vec<usize>,
    /// Each batch's `batch` line.
    pub batches: Vec<usize>,
    /// Each batch's first `reading` line (the readings follow one per line).
    pub first_readings: Vec<usize>,
    /// Each event's line.
    pub events: Vec<usize>,
    /// Each document's line.
    pub documents: Vec<usize>,
    /// The seal line.
    pub seal: usize,
}

impl From<MissingLine> for EvidenceBundleError {
    fn from(missing: MissingLine) -> Self {
        Self::Missing {
            line: missing.line,
            label: missing.label,
        }
    }
}

fn malformed(line: usize, label: &'static str, reason: &'static str) -> EvidenceBundleError {
    EvidenceBundleError::Malformed {
        line,
        label,
        reason,
    }
}

/// Every label of the format.
const LABELS: [&str; 14] = [
    "subject",
    "exported",
    "policy",
    "checkpoint",
    "consistency",
    "entry",
    "inclusion",
    "batch",
    "reading",
    "batch-proof",
    "event",
    "document",
    "seal",
    EVIDENCE_BUNDLE_HEADER,
];

const DECIMAL: &str = "is not a decimal without leading zero below 2^64";

/// The `n` space-separated fields of a value (none empty, no more, no fewer).
fn fields<'a, const N: usize>(
    value: &'a str,
    line: usize,
    label: &'static str,
    reason: &'static str,
) -> Result<[&'a str; N], EvidenceBundleError> {
    let mut out = [""; N];
    let mut parts = value.split(' ');
    for slot in &mut out {
        *slot = parts
            .next()
            .filter(|p| !p.is_empty())
            .ok_or_else(|| malformed(line, label, reason))?;
    }
    if parts.next().is_some() {
        return Err(malformed(line, label, reason));
    }
    Ok(out)
}

/// Hash lines with `label` (zero or more, at most `max`).
fn hash_lines(
    lines: &mut Lines<'_>,
    label: &'static str,
    max: usize,
) -> Result<Vec<Hash>, EvidenceBundleError> {
    let mut out = Vec::new();
    while lines.peek_is(label) {
        let (line, value) = lines.labelled(label)?;
        if out.len() == max {
            return Err(malformed(line, label, "has too many lines in a row"));
        }
        out.push(
            Hash::from_base64(value)
                .map_err(|_| malformed(line, label, "is not base64 of a 32-byte hash"))?,
        );
    }
    Ok(out)
}

/// A leaf index that must be above `previous`.
fn ascending(
    text: &str,
    previous: Option<LeafIndex>,
    line: usize,
    label: &'static str,
) -> Result<LeafIndex, EvidenceBundleError> {
    let index = LeafIndex(decimal(text).ok_or_else(|| malformed(line, label, DECIMAL))?);
    if previous.is_some_and(|p| index <= p) {
        return Err(malformed(
            line,
            label,
            "does not come after the previous one (indexes strictly ascend)",
        ));
    }
    Ok(index)
}

fn salt(text: &str, line: usize, label: &'static str) -> Result<[u8; 32], EvidenceBundleError> {
    Hash::from_base64(text)
        .map(|h| h.0)
        .map_err(|_| malformed(line, label, "salt is not base64 of 32 bytes"))
}

fn utf8_label(
    text: &str,
    line: usize,
    label: &'static str,
    reason: &'static str,
) -> Result<String, EvidenceBundleError> {
    let bytes =
        base64_bytes(text, DOCUMENT_LABEL_BYTES_MAX).map_err(|_| malformed(line, label, reason))?;
    String::from_utf8(bytes).map_err(|_| malformed(line, label, reason))
}

/// A subject part: 1..=64 bytes of visible ASCII, `/` allowed only if `slash`.
fn subject_part(text: &str, slash: bool) -> bool {
    !text.is_empty()
        && text.len() <= SUBJECT_PART_BYTES_MAX
        && text
            .bytes()
            .all(|b| b.is_ascii_graphic() && (slash || b != b'/'))
}

fn parse_subject(value: &str, line: usize) -> Result<Subject, EvidenceBundleError> {
    const REASON: &str =
        "is not `shipment <exporter>/<id>` or `lot <gtin-14>/<lot>` of visible ASCII";
    let bad = || malformed(line, "subject", REASON);
    if let Some(rest) = value.strip_prefix("shipment ") {
        let (exporter, id) = rest.split_once('/').ok_or_else(bad)?;
        if !subject_part(exporter, false) || !subject_part(id, true) {
            return Err(bad());
        }
        return Ok(Subject::Shipment {
            exporter: exporter.to_owned(),
            id: id.to_owned(),
        });
    }
    if let Some(rest) = value.strip_prefix("lot ") {
        let (gtin, lot) = rest.split_once('/').ok_or_else(bad)?;
        if gtin.len() != 14 || !gtin.bytes().all(|b| b.is_ascii_digit()) || !subject_part(lot, true)
        {
            return Err(bad());
        }
        return Ok(Subject::Lot {
            gtin: gtin.to_owned(),
            lot: lot.to_owned(),
        });
    }
    Err(bad())
}

impl EvidenceBundle {
    /// Parses an evidence bundle file (see the module documentation for the rules): the exact
    /// inverse of [`to_text`](Self::to_text). Nothing is verified.
    ///
    /// # Errors
    /// [`EvidenceBundleError`] naming the first line that breaks a rule.
    pub fn parse(bytes: &[u8]) -> Result<Self, EvidenceBundleError> {
        if bytes.len() > EVIDENCE_BUNDLE_BYTES_MAX {
            return Err(EvidenceBundleError::Text);
        }
        let text = std::str::from_utf8(bytes).map_err(|_| EvidenceBundleError::Text)?;
        let mut lines = Lines::new(text);
        if lines.next() != Some(EVIDENCE_BUNDLE_HEADER) {
            return Err(EvidenceBundleError::Header);
        }

        let (line, value) = lines.labelled("subject")?;
        let subject = parse_subject(value, line)?;
        let (line, value) = lines.labelled("exported")?;
        let exported_ms = decimal(value).ok_or_else(|| malformed(line, "exported", DECIMAL))?;
        let (line, value) = lines.labelled("policy")?;
        let policy =
            base64_bytes(value, MAX_POLICY_BYTES).map_err(|r| malformed(line, "policy", r))?;

        let mut checkpoints: Vec<BundleCheckpoint> = Vec::new();
        loop {
            let (line, value) = lines.labelled("checkpoint")?;
            let note = base64_bytes(value, MAX_NOTE_BYTES)
                .map_err(|r| malformed(line, "checkpoint", r))?;
            let signed_note = String::from_utf8(note)
                .map_err(|_| malformed(line, "checkpoint", "is not base64 of UTF-8 text"))?;
            let consistency = hash_lines(&mut lines, "consistency", MAX_PROOF_HASHES)?;
            if checkpoints.is_empty() && !consistency.is_empty() {
                return Err(malformed(
                    line + 1,
                    "consistency",
                    "may not follow the first checkpoint (there is nothing before it)",
                ));
            }
            checkpoints.push(BundleCheckpoint {
                signed_note,
                consistency,
            });
            if !lines.peek_is("checkpoint") {
                break;
            }
        }

        let mut entries: Vec<BundleEntry> = Vec::new();
        while lines.peek_is("entry") {
            let (line, value) = lines.labelled("entry")?;
            let [index, bytes] = fields(value, line, "entry", "is not `<leaf index> <base64>`")?;
            let index = ascending(index, entries.last().map(|e| e.index), line, "entry")?;
            let bytes =
                base64_bytes(bytes, MAX_ENTRY_BYTES).map_err(|r| malformed(line, "entry", r))?;
            let inclusion = hash_lines(&mut lines, "inclusion", MAX_PROOF_HASHES)?;
            entries.push(BundleEntry {
                index,
                bytes,
                inclusion,
            });
        }

        let mut batches: Vec<BundleBatch> = Vec::new();
        while lines.peek_is("batch") {
            let (line, value) = lines.labelled("batch")?;
            let [entry, size] = fields(value, line, "batch", "is not `<leaf index> <batch size>`")?;
            let entry = ascending(entry, batches.last().map(|b| b.entry), line, "batch")?;
            let size = decimal(size)
                .filter(|s| (1..=BATCH_SIZE_MAX).contains(s))
                .map(TreeSize)
                .ok_or_else(|| {
                    malformed(
                        line,
                        "batch",
                        "size is not a decimal without leading zero from 1 to 2^32-1",
                    )
                })?;
            let mut readings: Vec<(LeafIndex, Vec<u8>)> = Vec::new();
            loop {
                let (line, value) = lines.labelled("reading")?;
                let [position, bytes] =
                    fields(value, line, "reading", "is not `<position> <base64>`")?;
                let position = ascending(position, readings.last().map(|r| r.0), line, "reading")?;
                if position.0 >= size.0 {
                    return Err(malformed(
                        line,
                        "reading",
                        "position is not below the batch size",
                    ));
                }
                let bytes = base64_bytes(bytes, SIGNED_READING_BYTES_MAX)
                    .map_err(|r| malformed(line, "reading", r))?;
                readings.push((position, bytes));
                if !lines.peek_is("reading") {
                    break;
                }
            }
            // A subset proof has at most one hash per reading not proven (each covers at
            // least one of them), so the batch size bounds it.
            let proof = hash_lines(&mut lines, "batch-proof", usize::MAX)?;
            batches.push(BundleBatch {
                entry,
                size,
                readings,
                proof,
            });
        }

        let mut events: Vec<BundleEvent> = Vec::new();
        while lines.peek_is("event") {
            let (line, value) = lines.labelled("event")?;
            let [entry, salt_text, json] = fields(
                value,
                line,
                "event",
                "is not `<leaf index> <base64 salt> <base64 event JSON>`",
            )?;
            let entry = ascending(entry, events.last().map(|e| e.entry), line, "event")?;
            let salt = salt(salt_text, line, "event")?;
            let event_json = base64_bytes(json, EVENT_JSON_BYTES_MAX)
                .map_err(|r| malformed(line, "event", r))?;
            events.push(BundleEvent {
                entry,
                salt,
                event_json,
            });
        }

        let mut documents: Vec<BundleDocument> = Vec::new();
        while lines.peek_is("document") {
            let (line, value) = lines.labelled("document")?;
            let [entry, salt_text, number, media_type, content] = fields(
                value,
                line,
                "document",
                "is not `<leaf index> <salt> <number> <media type> <content>` (base64 but the index)",
            )?;
            let entry = ascending(entry, documents.last().map(|d| d.entry), line, "document")?;
            let salt = salt(salt_text, line, "document")?;
            let number = utf8_label(
                number,
                line,
                "document",
                "number is not base64 of 1 to 256 bytes of UTF-8",
            )?;
            let media_type = utf8_label(
                media_type,
                line,
                "document",
                "media type is not base64 of 1 to 256 bytes of UTF-8",
            )?;
            let content = base64_bytes(content, EVIDENCE_BUNDLE_BYTES_MAX)
                .map_err(|r| malformed(line, "document", r))?;
            documents.push(BundleDocument {
                entry,
                salt,
                number,
                media_type,
                content,
            });
        }

        if !lines.peek_is("seal")
            && let Some(label) = LABELS.iter().find(|label| lines.peek_is(label))
        {
            return Err(EvidenceBundleError::OutOfPlace {
                line: lines.number + 1,
                label,
            });
        }
        let (line, value) = lines.labelled("seal")?;
        let seal = base64_bytes(value, MAX_NOTE_BYTES).map_err(|r| malformed(line, "seal", r))?;
        let seal = String::from_utf8(seal)
            .map_err(|_| malformed(line, "seal", "is not base64 of UTF-8 text"))?;
        if !lines.rest.is_empty() {
            return Err(EvidenceBundleError::AfterSeal {
                line: lines.number + 1,
            });
        }
        Ok(Self {
            subject,
            exported_ms,
            policy,
            checkpoints,
            entries,
            batches,
            events,
            documents,
            seal,
        })
    }

    /// Where each part stands in the file [`to_text`](Self::to_text) writes.
    #[must_use]
    pub fn lines(&self) -> BundleLines {
        let mut next = 5;
        let mut take = |count: usize| {
            let at = next;
            next += count;
            at
        };
        let checkpoints = self
            .checkpoints
            .iter()
            .map(|c| take(1 + c.consistency.len()))
            .collect();
        let entries = self
            .entries
            .iter()
            .map(|e| take(1 + e.inclusion.len()))
            .collect();
        let mut batches = Vec::with_capacity(self.batches.len());
        let mut first_readings = Vec::with_capacity(self.batches.len());
        for batch in &self.batches {
            let at = take(1 + batch.readings.len() + batch.proof.len());
            batches.push(at);
            first_readings.push(at + 1);
        }
        let events = self.events.iter().map(|_| take(1)).collect();
        let documents = self.documents.iter().map(|_| take(1)).collect();
        let seal = take(1);
        BundleLines {
            subject: 2,
            exported: 3,
            policy: 4,
            checkpoints,
            entries,
            batches,
            first_readings,
            events,
            documents,
            seal,
        }
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

#[cfg(test)]
mod tests {
    use ledger::merkle::leaf_hash;
    use proptest::prelude::*;

    use super::*;

    fn sample() -> EvidenceBundle {
        EvidenceBundle {
            subject: Subject::Shipment {
                exporter: "menghai-mango-coop".into(),
                id: "SHP-2026-001".into(),
            },
            exported_ms: 1_780_000_000_000,
            policy: b"log a+1+AQ\nquorum none\n".to_vec(),
            checkpoints: vec![
                BundleCheckpoint {
                    signed_note: "o\n5\nroot\n\n\u{2014} o AAAA\n".into(),
                    consistency: vec![],
                },
                BundleCheckpoint {
                    signed_note: "o\n9\nroot\n\n\u{2014} o AAAA\n".into(),
                    consistency: vec![leaf_hash(b"c1"), leaf_hash(b"c2")],
                },
            ],
            entries: vec![
                BundleEntry {
                    index: LeafIndex(0),
                    bytes: vec![1, 4, 9],
                    inclusion: vec![leaf_hash(b"i")],
                },
                BundleEntry {
                    index: LeafIndex(7),
                    bytes: vec![1, 1, 2],
                    inclusion: vec![],
                },
            ],
            batches: vec![BundleBatch {
                entry: LeafIndex(7),
                size: TreeSize(12),
                readings: vec![(LeafIndex(2), vec![1, 2, 3]), (LeafIndex(5), vec![4, 5])],
                proof: vec![leaf_hash(b"p")],
            }],
            events: vec![BundleEvent {
                entry: LeafIndex(8),
                salt: [7; 32],
                event_json: b"{\"type\":\"ObjectEvent\"}".to_vec(),
            }],
            documents: vec![BundleDocument {
                entry: LeafIndex(9),
                salt: [8; 32],
                number: "PC 2026/17".into(),
                media_type: "application/pdf".into(),
                content: b"%PDF-1.7".to_vec(),
            }],
            seal: "agritrace/evidence-seal/v1\nsha256\nx\n\n\u{2014} o AAAA\n".into(),
        }
    }

    /// The sample's text with line `number` (one-based) replaced by `line` (or removed).
    fn with_line(number: usize, line: Option<&str>) -> String {
        let text = sample().to_text();
        let mut out = String::new();
        for (i, l) in text.split_inclusive('\n').enumerate() {
            if i + 1 == number {
                if let Some(line) = line {
                    out.push_str(line);
                    out.push('\n');
                }
            } else {
                out.push_str(l);
            }
        }
        out
    }

    /// The number of the first line starting with `prefix`.
    fn line_of(prefix: &str) -> usize {
        sample()
            .to_text()
            .lines()
            .position(|l| l.starts_with(prefix))
            .expect("prefix")
            + 1
    }

    fn check(text: &str, expected: &EvidenceBundleError) {
        assert_eq!(
            EvidenceBundle::parse(text.as_bytes()).as_ref(),
            Err(expected),
            "{text}"
        );
    }

    fn bad(line: usize, label: &'static str, reason: &'static str) -> EvidenceBundleError {
        EvidenceBundleError::Malformed {
            line,
            label,
            reason,
        }
    }

    #[test]
    fn the_sample_round_trips_and_its_lines_are_where_the_map_says() {
        let bundle = sample();
        let text = bundle.to_text();
        assert_eq!(EvidenceBundle::parse(text.as_bytes()), Ok(bundle.clone()));
        let lines: Vec<&str> = text.lines().collect();
        let map = bundle.lines();
        let at = |n: usize| lines[n - 1];
        assert!(at(map.subject).starts_with("subject shipment menghai-mango-coop/SHP-2026-001"));
        assert!(at(map.exported).starts_with("exported 1780000000000"));
        assert!(at(map.policy).starts_with("policy "));
        assert_eq!(map.checkpoints, vec![5, 6]);
        assert!(at(map.checkpoints[1]).starts_with("checkpoint "));
        assert!(at(map.entries[0]).starts_with("entry 0 "));
        assert!(at(map.entries[1]).starts_with("entry 7 "));
        assert!(at(map.batches[0]).starts_with("batch 7 12"));
        assert!(at(map.first_readings[0]).starts_with("reading 2 "));
        assert!(at(map.first_readings[0] + 1).starts_with("reading 5 "));
        assert!(at(map.events[0]).starts_with("event 8 "));
        assert!(at(map.documents[0]).starts_with("document 9 "));
        assert_eq!(map.seal, lines.len());
        assert!(at(map.seal).starts_with("seal "));
    }

    #[test]
    fn a_lot_subject_may_hold_a_slash_in_its_lot_number() {
        let bundle = EvidenceBundle {
            subject: Subject::Lot {
                gtin: "09506000134352".into(),
                lot: "L/2026/7".into(),
            },
            ..sample()
        };
        assert_eq!(
            EvidenceBundle::parse(bundle.to_text().as_bytes()),
            Ok(bundle)
        );
    }

    #[test]
    fn the_header_size_and_encoding_are_enforced() {
        let text = sample().to_text();
        check(&text.replacen("v1", "v2", 1), &EvidenceBundleError::Header);
        check("", &EvidenceBundleError::Header);
        assert_eq!(
            EvidenceBundle::parse(b"agritrace/evidence-bundle/v1\nsubject \xff\n"),
            Err(EvidenceBundleError::Text)
        );
        check(
            &format!("{text}seal AAAA\n"),
            &EvidenceBundleError::AfterSeal {
                line: text.lines().count() + 1,
            },
        );
        check(
            &format!("{text}\n"),
            &EvidenceBundleError::AfterSeal {
                line: text.lines().count() + 1,
            },
        );
        // Without the final newline the seal line is not a line.
        check(
            &text[..text.len() - 1],
            &EvidenceBundleError::Missing {
                line: line_of("seal "),
                label: "seal",
            },
        );
    }

    #[test]
    fn lines_are_required_in_their_order() {
        let missing = |line, label| EvidenceBundleError::Missing { line, label };
        check(&with_line(2, None), &missing(2, "subject"));
        check(&with_line(3, None), &missing(3, "exported"));
        check(&with_line(4, None), &missing(4, "policy"));
        // No checkpoint at all.
        let text = sample().to_text();
        let start = text.find("checkpoint ").expect("checkpoint");
        let end = text.find("entry ").expect("entry");
        check(
            &format!("{}{}", &text[..start], &text[end..]),
            &missing(5, "checkpoint"),
        );
        // An entry after the batches, an event after the documents.
        let entry = line_of("entry 7");
        let moved = text.lines().nth(entry - 1).expect("entry line").to_owned();
        let mut swapped = with_line(entry, None);
        let batch_end = swapped.find("event ").expect("event");
        swapped.insert_str(batch_end, &format!("{moved}\n"));
        check(
            &swapped,
            &EvidenceBundleError::OutOfPlace {
                line: line_of("event ") - 1,
                label: "entry",
            },
        );
        // An inclusion line after the batches; an unknown line.
        let text = sample().to_text();
        let event = line_of("event ");
        let inclusion = text
            .lines()
            .find(|l| l.starts_with("inclusion "))
            .expect("inclusion");
        check(
            &with_line(
                event,
                Some(&format!(
                    "{inclusion}\n{}",
                    text.lines().nth(event - 1).expect("event")
                )),
            ),
            &EvidenceBundleError::OutOfPlace {
                line: event,
                label: "inclusion",
            },
        );
        check(
            &with_line(event, Some("remark hello")),
            &missing(event, "seal"),
        );
        // A batch without readings.
        let first = line_of("reading 2");
        let mut text = with_line(first, None);
        text = text.replacen(
            &format!(
                "{}\n",
                sample()
                    .to_text()
                    .lines()
                    .nth(first)
                    .expect("second reading")
            ),
            "",
            1,
        );
        check(&text, &missing(first, "reading"));
        // One space too many, a missing space.
        check(
            &with_line(3, Some("exported  1780000000000")),
            &bad(
                3,
                "exported",
                "is not a decimal without leading zero below 2^64",
            ),
        );
        check(
            &with_line(3, Some("exported1780000000000")),
            &missing(3, "exported"),
        );
    }

    #[test]
    fn values_must_be_canonical() {
        let decimal = "is not a decimal without leading zero below 2^64";
        let subject = "is not `shipment <exporter>/<id>` or `lot <gtin-14>/<lot>` of visible ASCII";
        for (line, replacement, expected) in [
            (2, "subject shipment a/b/c", None),
            (
                2,
                "subject shipment a b/c",
                Some(bad(2, "subject", subject)),
            ),
            (2, "subject shipment /c", Some(bad(2, "subject", subject))),
            (2, "subject shipment a/", Some(bad(2, "subject", subject))),
            (2, "subject lot 123/L1", Some(bad(2, "subject", subject))),
            (2, "subject crate x/y", Some(bad(2, "subject", subject))),
            (3, "exported 01", Some(bad(3, "exported", decimal))),
            (
                3,
                "exported 18446744073709551616",
                Some(bad(3, "exported", decimal)),
            ),
            (4, "policy bG9n", None),
            (
                4,
                "policy bG9",
                Some(bad(4, "policy", "is not canonical standard padded base64")),
            ),
            (4, "policy ", Some(bad(4, "policy", "is empty"))),
        ] {
            let text = with_line(line, Some(replacement));
            match expected {
                None => assert!(
                    EvidenceBundle::parse(text.as_bytes()).is_ok(),
                    "{replacement}"
                ),
                Some(expected) => check(&text, &expected),
            }
        }
        let entry = line_of("entry 7");
        check(
            &with_line(entry, Some("entry 0 AQEC")),
            &bad(
                entry,
                "entry",
                "does not come after the previous one (indexes strictly ascend)",
            ),
        );
        check(
            &with_line(entry, Some("entry 7 AQEC extra")),
            &bad(entry, "entry", "is not `<leaf index> <base64>`"),
        );
        let batch = line_of("batch ");
        check(
            &with_line(batch, Some("batch 7 0")),
            &bad(
                batch,
                "batch",
                "size is not a decimal without leading zero from 1 to 2^32-1",
            ),
        );
        let reading = line_of("reading 5");
        check(
            &with_line(reading, Some("reading 12 BAU=")),
            &bad(reading, "reading", "position is not below the batch size"),
        );
        check(
            &with_line(reading, Some("reading 2 BAU=")),
            &bad(
                reading,
                "reading",
                "does not come after the previous one (indexes strictly ascend)",
            ),
        );
        let event = line_of("event ");
        check(
            &with_line(event, Some("event 8 AAAA e30=")),
            &bad(event, "event", "salt is not base64 of 32 bytes"),
        );
        let document = line_of("document ");
        let salt = STANDARD.encode([8u8; 32]);
        check(
            &with_line(document, Some(&format!("document 9 {salt} //8= YQ== YQ=="))),
            &bad(
                document,
                "document",
                "number is not base64 of 1 to 256 bytes of UTF-8",
            ),
        );
        let first_consistency = line_of("consistency ");
        let text = sample().to_text();
        let consistency_line = text.lines().nth(first_consistency - 1).expect("line");
        check(
            &with_line(
                5,
                Some(&format!(
                    "{}\n{consistency_line}",
                    text.lines().nth(4).expect("cp")
                )),
            ),
            &bad(
                6,
                "consistency",
                "may not follow the first checkpoint (there is nothing before it)",
            ),
        );
    }

    #[test]
    fn at_most_64_hashes_in_a_row() {
        let mut bundle = sample();
        bundle.entries[0].inclusion = vec![leaf_hash(b"x"); MAX_PROOF_HASHES];
        assert_eq!(
            EvidenceBundle::parse(bundle.to_text().as_bytes()),
            Ok(bundle.clone())
        );
        bundle.entries[0].inclusion.push(leaf_hash(b"y"));
        let line = bundle.lines().entries[0] + 1 + MAX_PROOF_HASHES;
        check(
            &bundle.to_text(),
            &bad(line, "inclusion", "has too many lines in a row"),
        );
    }

    fn hash() -> impl Strategy<Value = Hash> {
        any::<[u8; 32]>().prop_map(Hash)
    }

    fn visible(slash: bool) -> impl Strategy<Value = String> {
        let pattern = if slash {
            "[!-~]{1,64}"
        } else {
            "[!-.0-~]{1,64}"
        };
        proptest::string::string_regex(pattern).expect("regex")
    }

    fn subject() -> impl Strategy<Value = Subject> {
        prop_oneof![
            (visible(false), visible(true))
                .prop_map(|(exporter, id)| Subject::Shipment { exporter, id }),
            ("[0-9]{14}", visible(true)).prop_map(|(gtin, lot)| Subject::Lot { gtin, lot }),
        ]
    }

    fn indexes(max: usize) -> impl Strategy<Value = Vec<LeafIndex>> {
        prop::collection::btree_set(any::<u64>(), 0..=max)
            .prop_map(|s| s.into_iter().map(LeafIndex).collect())
    }

    fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(any::<u8>(), 1..=max)
    }

    fn batch() -> impl Strategy<Value = BundleBatch> {
        (1u64..=BATCH_SIZE_MAX)
            .prop_flat_map(|size| {
                (
                    Just(size),
                    prop::collection::btree_set(0..size, 1..=4),
                    prop::collection::vec(hash(), 0..=6),
                )
            })
            .prop_flat_map(|(size, positions, proof)| {
                let n = positions.len();
                (
                    Just(size),
                    Just(positions),
                    prop::collection::vec(bytes(SIGNED_READING_BYTES_MAX), n..=n),
                    Just(proof),
                )
            })
            .prop_map(|(size, positions, readings, proof)| BundleBatch {
                entry: LeafIndex(0),
                size: TreeSize(size),
                readings: positions.into_iter().map(LeafIndex).zip(readings).collect(),
                proof,
            })
    }

    fn bundle() -> impl Strategy<Value = EvidenceBundle> {
        (
            (
                subject(),
                any::<u64>(),
                bytes(200),
                prop::collection::vec(
                    ("[ -~\n]{1,120}", prop::collection::vec(hash(), 0..=3)),
                    1..=3,
                ),
            ),
            (
                indexes(4),
                prop::collection::vec((bytes(80), prop::collection::vec(hash(), 0..=4)), 4),
            ),
            (indexes(3), prop::collection::vec(batch(), 3)),
            (
                indexes(3),
                prop::collection::vec((any::<[u8; 32]>(), bytes(100)), 3),
            ),
            (
                indexes(3),
                prop::collection::vec(
                    (
                        any::<[u8; 32]>(),
                        "\\PC{1,20}",
                        "[a-z/+.-]{1,30}",
                        bytes(100),
                    ),
                    3,
                ),
            ),
            "[ -~\n]{1,100}",
        )
            .prop_map(
                |(
                    (subject, exported_ms, policy, checkpoints),
                    (entry_indexes, entries),
                    (batch_indexes, batches),
                    (event_indexes, events),
                    (document_indexes, documents),
                    seal,
                )| {
                    EvidenceBundle {
                        subject,
                        exported_ms,
                        policy,
                        checkpoints: checkpoints
                            .into_iter()
                            .enumerate()
                            .map(|(i, (signed_note, consistency))| BundleCheckpoint {
                                signed_note,
                                consistency: if i == 0 { vec![] } else { consistency },
                            })
                            .collect(),
                        entries: entry_indexes
                            .into_iter()
                            .zip(entries)
                            .map(|(index, (bytes, inclusion))| BundleEntry {
                                index,
                                bytes,
                                inclusion,
                            })
                            .collect(),
                        batches: batch_indexes
                            .into_iter()
                            .zip(batches)
                            .map(|(entry, batch)| BundleBatch { entry, ..batch })
                            .collect(),
                        events: event_indexes
                            .into_iter()
                            .zip(events)
                            .map(|(entry, (salt, event_json))| BundleEvent {
                                entry,
                                salt,
                                event_json,
                            })
                            .collect(),
                        documents: document_indexes
                            .into_iter()
                            .zip(documents)
                            .map(
                                |(entry, (salt, number, media_type, content))| BundleDocument {
                                    entry,
                                    salt,
                                    number,
                                    media_type,
                                    content,
                                },
                            )
                            .collect(),
                        seal,
                    }
                },
            )
    }

    proptest! {
        #[test]
        fn every_bundle_round_trips_through_its_text(bundle in bundle()) {
            let text = bundle.to_text();
            prop_assert_eq!(EvidenceBundle::parse(text.as_bytes()), Ok(bundle.clone()));
            // The line map points at the lines the text has.
            let lines: Vec<&str> = text.lines().collect();
            let map = bundle.lines();
            prop_assert!(lines[map.seal - 1].starts_with("seal "));
            for (i, line) in map.entries.iter().enumerate() {
                let prefix = format!("entry {} ", bundle.entries[i].index);
                prop_assert!(lines[line - 1].starts_with(&prefix));
            }
        }

        #[test]
        fn any_one_byte_change_is_refused_or_changes_the_bundle(
            bundle in bundle(),
            at in any::<prop::sample::Index>(),
            xor in 1u8..,
        ) {
            let mut bytes = bundle.to_text().into_bytes();
            let i = at.index(bytes.len());
            bytes[i] ^= xor;
            if let Ok(parsed) = EvidenceBundle::parse(&bytes) {
                prop_assert_ne!(&parsed, &bundle);
                prop_assert_eq!(parsed.to_text().into_bytes(), bytes);
            }
        }
    }
}
