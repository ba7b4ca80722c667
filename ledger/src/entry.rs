//! Log entries: the versioned, deterministic binary encoding of what the log holds.
//!
//! Layout (all integers big-endian, fixed width, so there is exactly one encoding of a value):
//!
//! ```text
//! entry   = version:u8 (= 1) kind:u8 body
//! kind 1  ReadingBatch   batch_root:32 reading_count:u32 device_time_first_ms:u64
//!                        device_time_last_ms:u64 ingest_time_ms:u64
//!                        device_count:u16 device_id:8 * device_count   (strictly ascending)
//! kind 2  TraceEvent     commitment:32 event_type:u8 biz_step:token event_time_ms:u64
//! kind 3  DocumentAnchor commitment:32 document_type:token issuer_org:token
//!                        issuer_key_id:32 issuer_signature:64
//!                        replaces: 0x00 | (0x01 supersedes | 0x02 revokes) leaf_index:u64
//! kind 4  KeyEvent       device_id:8 key_epoch:u32 action:u8 public_key:32 effective_time_ms:u64
//!                        (action 2 = rotate only) rotation_signature:64
//! kind 5  IssuerKeyEvent issuer_org:token action:u8 (1 register | 2 revoke) public_key:32
//!                        effective_time_ms:u64 (action 1 only) possession_signature:64
//! token   = len:u8 (1..=64) bytes (ASCII a-z A-Z 0-9 . _ - : /)
//! ```
//!
//! Rules: at most `MAX_ENTRY_BYTES` (65,535: an entry bundle prefixes each entry with a `u16`
//! length); decoding rejects trailing bytes, unknown enum codes, unsorted or duplicate device
//! ids and anything else a re-encoding would not reproduce, so `encode(decode(b)) == b` for
//! every accepted `b`. The log hashes the exact stored bytes (`merkle::leaf_hash`), never a
//! re-encoding.
//!
//! Extension: a version-1 entry of a kind this code does not know decodes as
//! `Entry::Unknown { kind, body }` (the body kept verbatim) so that older verifiers can still
//! prove inclusion of newer entries and say "unknown kind"; an unknown version is an error.
//! Known kinds whose bodies fail to decode are errors, never `Unknown`.
//!
//! Salted commitments (`TraceEvent`, `DocumentAnchor`): `commitment = SHA-256(salt || hash)`,
//! where `salt` is 32 random bytes kept with the record (never logged) and `hash` is the raw
//! 32-byte SHA-256 (for an EPCIS event, the digest inside the GS1 canonical event hash
//! `ni:///sha-256;<hex>?ver=CBV2.0`; for a document, SHA-256 of the document file). Anyone given
//! the salt and the event or document can recompute it; without the salt the log reveals
//! nothing testable about the event or document.
//!
//! Issuer keys (`IssuerKeyEvent`): an organisation's Ed25519 document-signing key, named by its
//! key id `SHA-256(public_key)`. A registration carries the key's own signature over
//! `issuer_key_message` (proof of possession: nobody can register a key they do not hold under
//! their name). A key signs anchors that come after its registration in the log and before its
//! revocation; log order, not a clock, decides whether a key was valid for an anchor.
//!
//! Device ids are `protocol::DeviceId` (8 bytes), key epochs `protocol::KeyEpoch`.

use alloc::string::String;
use alloc::vec::Vec;

use ed25519_dalek::{Signature, VerifyingKey};
use protocol::{DeviceId, KeyEpoch};
use sha2::{Digest, Sha256};

use crate::merkle::{Hash, LeafIndex};

/// Current (and only) entry format version.
pub const ENTRY_FORMAT_VERSION: u8 = 1;
/// Largest encoded entry (the `u16` length prefix of an entry bundle).
pub const MAX_ENTRY_BYTES: usize = u16::MAX as usize;
/// Most distinct devices a reading batch may name.
pub const MAX_BATCH_DEVICES: usize = 4096;
/// Longest token (document type, organisation id, business step).
pub const MAX_TOKEN_BYTES: usize = 64;

/// Domain-separation prefix of the message a document issuer signs.
pub const DOCUMENT_ANCHOR_CONTEXT: &[u8] = b"agritrace/document-anchor/v1\n";
/// Domain-separation prefix of the message an old device key signs to rotate.
pub const KEY_ROTATION_CONTEXT: &[u8] = b"agritrace/key-rotation/v1\n";
/// Domain-separation prefix of the message an issuer key signs to prove possession.
pub const ISSUER_KEY_CONTEXT: &[u8] = b"agritrace/issuer-key/v1\n";

const KIND_READING_BATCH: u8 = 1;
const KIND_TRACE_EVENT: u8 = 2;
const KIND_DOCUMENT_ANCHOR: u8 = 3;
const KIND_KEY_EVENT: u8 = 4;
const KIND_ISSUER_KEY_EVENT: u8 = 5;

/// `SHA-256(salt || hash)`: the salted commitment logged for an event or document.
pub fn salted_commitment(salt: &[u8; 32], hash: &[u8; 32]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update(salt);
    hasher.update(hash);
    Hash(hasher.finalize().into())
}

/// A short ASCII identifier (business step, document type, organisation id): 1..=64 bytes of
/// `a-z A-Z 0-9 . _ - : /`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Token(String);

impl Token {
    /// Checks and wraps a token.
    pub fn new(text: &str) -> Result<Self, EntryError> {
        let ok = !text.is_empty()
            && text.len() <= MAX_TOKEN_BYTES
            && text.bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':' | b'/')
            });
        if ok {
            Ok(Self(String::from(text)))
        } else {
            Err(EntryError::Token)
        }
    }

    /// The token text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// EPCIS 2.0 event types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EpcisEventType {
    /// `ObjectEvent`.
    Object,
    /// `AggregationEvent`.
    Aggregation,
    /// `TransactionEvent`.
    Transaction,
    /// `TransformationEvent`.
    Transformation,
    /// `AssociationEvent`.
    Association,
}

impl EpcisEventType {
    fn code(self) -> u8 {
        match self {
            Self::Object => 1,
            Self::Aggregation => 2,
            Self::Transaction => 3,
            Self::Transformation => 4,
            Self::Association => 5,
        }
    }

    fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            1 => Self::Object,
            2 => Self::Aggregation,
            3 => Self::Transaction,
            4 => Self::Transformation,
            5 => Self::Association,
            _ => return None,
        })
    }

    /// The EPCIS 2.0 type name, e.g. `ObjectEvent`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Object => "ObjectEvent",
            Self::Aggregation => "AggregationEvent",
            Self::Transaction => "TransactionEvent",
            Self::Transformation => "TransformationEvent",
            Self::Association => "AssociationEvent",
        }
    }
}

/// A batch of signed readings anchored as one entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadingBatch {
    /// RFC 9162 root over the batch's reading leaf hashes, in batch order.
    pub batch_root: Hash,
    /// Number of readings (at least 1).
    pub reading_count: u32,
    /// Earliest device time in the batch (Unix ms).
    pub device_time_first_ms: u64,
    /// Latest device time in the batch (Unix ms), not before the first.
    pub device_time_last_ms: u64,
    /// When ingest closed the batch (Unix ms, the backend's clock).
    pub ingest_time_ms: u64,
    /// Devices with readings in the batch, strictly ascending, 1..=`MAX_BATCH_DEVICES`.
    pub devices: Vec<DeviceId>,
}

/// A business event (EPCIS) anchored by salted commitment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceEvent {
    /// `SHA-256(salt || GS1 canonical event hash digest)`.
    pub commitment: Hash,
    /// EPCIS event type.
    pub event_type: EpcisEventType,
    /// CBV business step as its bare name, e.g. `shipping`.
    pub biz_step: Token,
    /// The event's `eventTime` (Unix ms).
    pub event_time_ms: u64,
}

/// How an anchor relates to an earlier one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Replaces {
    /// This document supersedes the one anchored at that index.
    Supersedes(LeafIndex),
    /// This entry revokes the document anchored at that index.
    Revokes(LeafIndex),
}

/// A trade document anchored by salted commitment and signed by its issuer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DocumentAnchor {
    /// `SHA-256(salt || SHA-256(document))`.
    pub commitment: Hash,
    /// Document type, e.g. `phytosanitary_certificate`.
    pub document_type: Token,
    /// Issuing organisation's id.
    pub issuer_org: Token,
    /// SHA-256 of the issuer's Ed25519 public key.
    pub issuer_key_id: Hash,
    /// Issuer's Ed25519 signature over `document_anchor_message` (over the commitment, not
    /// the document hash, so the signature is no oracle for guessing the document).
    pub issuer_signature: [u8; 64],
    /// Optional link to an earlier anchor this one supersedes or revokes.
    pub replaces: Option<Replaces>,
}

/// What a key event does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyAction {
    /// First key of a device.
    Register,
    /// New key replacing the previous epoch's key; signed by the old key.
    Rotate,
    /// The key is no longer valid from `effective_time_ms`.
    Revoke,
}

/// A device key registration, rotation or revocation (public by nature).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyEvent {
    /// The device.
    pub device_id: DeviceId,
    /// Key epoch the event is about (the new epoch for a rotation).
    pub key_epoch: KeyEpoch,
    /// Register, rotate or revoke.
    pub action: KeyAction,
    /// The Ed25519 public key of that epoch.
    pub public_key: [u8; 32],
    /// When the event takes effect (Unix ms).
    pub effective_time_ms: u64,
    /// For a rotation: the old key's signature over `rotation_message()`. `None` otherwise.
    pub rotation_signature: Option<[u8; 64]>,
}

/// What an issuer key event does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IssuerKeyAction {
    /// The organisation starts signing documents with this key.
    Register,
    /// The key signs no anchor that comes after this entry.
    Revoke,
}

/// An organisation's document-signing key registered or revoked (public by nature).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuerKeyEvent {
    /// The organisation's id.
    pub issuer_org: Token,
    /// Register or revoke.
    pub action: IssuerKeyAction,
    /// The Ed25519 public key; its key id is `SHA-256(public_key)`.
    pub public_key: [u8; 32],
    /// When the event takes effect (Unix ms), as the organisation stated it.
    pub effective_time_ms: u64,
    /// For a registration: the key's signature over `issuer_key_message` (proof of
    /// possession). `None` for a revocation.
    pub possession_signature: Option<[u8; 64]>,
}

/// One log entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    /// A batch of readings.
    ReadingBatch(ReadingBatch),
    /// A business event.
    TraceEvent(TraceEvent),
    /// A trade document.
    DocumentAnchor(DocumentAnchor),
    /// A device key event.
    KeyEvent(KeyEvent),
    /// An organisation's document-signing key event.
    IssuerKeyEvent(IssuerKeyEvent),
    /// A version-1 entry of a kind this code does not know (kind code and body verbatim).
    Unknown {
        /// Kind code (not one of the known kinds).
        kind: u8,
        /// Body bytes after the kind byte.
        body: Vec<u8>,
    },
}

/// Why an entry could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    /// Empty input.
    #[error("entry is empty")]
    Empty,
    /// Longer than `MAX_ENTRY_BYTES`.
    #[error("entry is longer than {MAX_ENTRY_BYTES} bytes")]
    TooLarge,
    /// A format version this code does not read.
    #[error("unsupported entry format version {0}")]
    UnsupportedVersion(u8),
    /// The bytes end inside a field.
    #[error("entry is truncated")]
    Truncated,
    /// Bytes remain after the last field.
    #[error("entry has {0} trailing bytes")]
    TrailingBytes(usize),
    /// An enum code, flag or tag with no meaning.
    #[error("invalid {0} code")]
    Code(&'static str),
    /// A token that is empty, too long, or has characters outside the allowed set.
    #[error("token must be 1 to 64 characters of a-z A-Z 0-9 . _ - : /")]
    Token,
    /// Device list empty, too long, unsorted or with duplicates.
    #[error("device ids must be 1 to 4096 distinct ids in ascending order")]
    Devices,
    /// Zero readings, or more devices than readings.
    #[error("reading count must be at least 1 and at least the number of devices")]
    ReadingCount,
    /// Device time range reversed.
    #[error("device time range is reversed")]
    TimeRange,
    /// A rotation without signature, or a signature on another action.
    #[error("only a rotation carries a rotation signature, and it must")]
    RotationSignature,
    /// An issuer key registration without proof of possession, or one on a revocation.
    #[error("only an issuer key registration carries a possession signature, and it must")]
    PossessionSignature,
    /// An unknown-kind entry using a known kind code.
    #[error("kind {0} is a known kind and cannot be encoded as unknown")]
    KnownKind(u8),
}

/// Byte reader that fails on truncation.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], EntryError> {
        if self.bytes.len() < n {
            return Err(EntryError::Truncated);
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], EntryError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, EntryError> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, EntryError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, EntryError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, EntryError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    fn hash(&mut self) -> Result<Hash, EntryError> {
        Ok(Hash(self.array()?))
    }

    fn token(&mut self) -> Result<Token, EntryError> {
        let len = usize::from(self.u8()?);
        let bytes = self.take(len)?;
        let text = core::str::from_utf8(bytes).map_err(|_| EntryError::Token)?;
        Token::new(text)
    }

    fn finish(self) -> Result<(), EntryError> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err(EntryError::TrailingBytes(self.bytes.len()))
        }
    }
}

fn push_token(out: &mut Vec<u8>, token: &Token) -> Result<(), EntryError> {
    // Re-check: a Token can only be built through `Token::new`, but the length must fit a u8.
    let len = u8::try_from(token.0.len()).map_err(|_| EntryError::Token)?;
    out.push(len);
    out.extend_from_slice(token.0.as_bytes());
    Ok(())
}

fn check_devices(devices: &[DeviceId]) -> Result<(), EntryError> {
    if devices.is_empty()
        || devices.len() > MAX_BATCH_DEVICES
        || devices.windows(2).any(|w| w[0] >= w[1])
    {
        return Err(EntryError::Devices);
    }
    Ok(())
}

impl ReadingBatch {
    fn check(&self) -> Result<(), EntryError> {
        check_devices(&self.devices)?;
        let device_count = u32::try_from(self.devices.len()).map_err(|_| EntryError::Devices)?;
        if self.reading_count == 0 || self.reading_count < device_count {
            return Err(EntryError::ReadingCount);
        }
        if self.device_time_first_ms > self.device_time_last_ms {
            return Err(EntryError::TimeRange);
        }
        Ok(())
    }
}

impl DocumentAnchor {
    /// The message the issuer signs: `DOCUMENT_ANCHOR_CONTEXT || commitment || len:u8 ||
    /// document_type || len:u8 || issuer_org || replaces` (`replaces` encoded as in the entry),
    /// so a signature for one anchor cannot be replayed as a revocation or supersession.
    pub fn signed_message(&self) -> Vec<u8> {
        document_anchor_message(
            &self.commitment,
            &self.document_type,
            &self.issuer_org,
            self.replaces,
        )
    }

    /// The issuer key id `SHA-256(public_key)`.
    pub fn key_id(public_key: &[u8; 32]) -> Hash {
        Hash(Sha256::digest(public_key).into())
    }

    /// Verifies the issuer's signature with the issuer's key (which must hash to
    /// `issuer_key_id`).
    pub fn verify_issuer(&self, issuer_key: &VerifyingKey) -> bool {
        let key_id = Hash(Sha256::digest(issuer_key.as_bytes()).into());
        key_id == self.issuer_key_id
            && issuer_key
                .verify_strict(
                    &self.signed_message(),
                    &Signature::from_bytes(&self.issuer_signature),
                )
                .is_ok()
    }
}

/// The message a document issuer signs (see `DocumentAnchor::signed_message`).
pub fn document_anchor_message(
    commitment: &Hash,
    document_type: &Token,
    issuer_org: &Token,
    replaces: Option<Replaces>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(DOCUMENT_ANCHOR_CONTEXT.len() + 32 + 2 + 128 + 9);
    out.extend_from_slice(DOCUMENT_ANCHOR_CONTEXT);
    out.extend_from_slice(&commitment.0);
    for token in [document_type, issuer_org] {
        push_token_unchecked(&mut out, token);
    }
    push_replaces(&mut out, replaces);
    out
}

/// The message an issuer key signs to prove possession when it is registered:
/// `ISSUER_KEY_CONTEXT || len:u8 || issuer_org || public_key`.
pub fn issuer_key_message(issuer_org: &Token, public_key: &[u8; 32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(ISSUER_KEY_CONTEXT.len() + 1 + 64 + 32);
    out.extend_from_slice(ISSUER_KEY_CONTEXT);
    push_token_unchecked(&mut out, issuer_org);
    out.extend_from_slice(public_key);
    out
}

impl IssuerKeyEvent {
    /// The message the key signs at registration (see `issuer_key_message`).
    pub fn possession_message(&self) -> Vec<u8> {
        issuer_key_message(&self.issuer_org, &self.public_key)
    }

    /// The key id `SHA-256(public_key)`.
    pub fn key_id(&self) -> Hash {
        DocumentAnchor::key_id(&self.public_key)
    }

    /// For a registration, checks the proof of possession. True for a revocation (which
    /// carries none).
    pub fn verify_possession(&self) -> bool {
        match (self.action, &self.possession_signature) {
            (IssuerKeyAction::Register, Some(signature)) => {
                VerifyingKey::from_bytes(&self.public_key).is_ok_and(|key| {
                    key.verify_strict(
                        &self.possession_message(),
                        &Signature::from_bytes(signature),
                    )
                    .is_ok()
                })
            }
            (IssuerKeyAction::Revoke, None) => true,
            _ => false,
        }
    }
}

// Tokens are checked at construction (at most 64 bytes), so the length fits a byte.
fn push_token_unchecked(out: &mut Vec<u8>, token: &Token) {
    out.push(u8::try_from(token.0.len()).unwrap_or(u8::MAX));
    out.extend_from_slice(token.0.as_bytes());
}

fn push_replaces(out: &mut Vec<u8>, replaces: Option<Replaces>) {
    match replaces {
        None => out.push(0),
        Some(Replaces::Supersedes(index)) => {
            out.push(1);
            out.extend_from_slice(&index.0.to_be_bytes());
        }
        Some(Replaces::Revokes(index)) => {
            out.push(2);
            out.extend_from_slice(&index.0.to_be_bytes());
        }
    }
}

impl KeyEvent {
    /// The message the old key signs for a rotation: `KEY_ROTATION_CONTEXT || device_id ||
    /// new key_epoch:u32 || new public_key`.
    pub fn rotation_message(&self) -> Vec<u8> {
        key_rotation_message(self.device_id, self.key_epoch, &self.public_key)
    }

    /// For a rotation, verifies the old key's signature. False for other actions.
    pub fn verify_rotation(&self, old_key: &VerifyingKey) -> bool {
        match (self.action, &self.rotation_signature) {
            (KeyAction::Rotate, Some(signature)) => old_key
                .verify_strict(&self.rotation_message(), &Signature::from_bytes(signature))
                .is_ok(),
            _ => false,
        }
    }
}

/// The message an old device key signs to hand over to `new_key` at `new_epoch`.
pub fn key_rotation_message(
    device_id: DeviceId,
    new_epoch: KeyEpoch,
    new_key: &[u8; 32],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(KEY_ROTATION_CONTEXT.len() + 8 + 4 + 32);
    out.extend_from_slice(KEY_ROTATION_CONTEXT);
    out.extend_from_slice(&device_id.0);
    out.extend_from_slice(&new_epoch.0.to_be_bytes());
    out.extend_from_slice(new_key);
    out
}

impl Entry {
    /// The kind code.
    pub fn kind(&self) -> u8 {
        match self {
            Self::ReadingBatch(_) => KIND_READING_BATCH,
            Self::TraceEvent(_) => KIND_TRACE_EVENT,
            Self::DocumentAnchor(_) => KIND_DOCUMENT_ANCHOR,
            Self::KeyEvent(_) => KIND_KEY_EVENT,
            Self::IssuerKeyEvent(_) => KIND_ISSUER_KEY_EVENT,
            Self::Unknown { kind, .. } => *kind,
        }
    }

    /// A human name of the kind.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Self::ReadingBatch(_) => "ReadingBatch",
            Self::TraceEvent(_) => "TraceEvent",
            Self::DocumentAnchor(_) => "DocumentAnchor",
            Self::KeyEvent(_) => "KeyEvent",
            Self::IssuerKeyEvent(_) => "IssuerKeyEvent",
            Self::Unknown { .. } => "Unknown",
        }
    }

    /// Encodes the entry, checking every field and the size limit.
    pub fn encode(&self) -> Result<Vec<u8>, EntryError> {
        let mut out = Vec::with_capacity(128);
        out.push(ENTRY_FORMAT_VERSION);
        out.push(self.kind());
        match self {
            Self::ReadingBatch(batch) => {
                batch.check()?;
                out.extend_from_slice(&batch.batch_root.0);
                out.extend_from_slice(&batch.reading_count.to_be_bytes());
                out.extend_from_slice(&batch.device_time_first_ms.to_be_bytes());
                out.extend_from_slice(&batch.device_time_last_ms.to_be_bytes());
                out.extend_from_slice(&batch.ingest_time_ms.to_be_bytes());
                let count = u16::try_from(batch.devices.len()).map_err(|_| EntryError::Devices)?;
                out.extend_from_slice(&count.to_be_bytes());
                for device in &batch.devices {
                    out.extend_from_slice(&device.0);
                }
            }
            Self::TraceEvent(event) => {
                out.extend_from_slice(&event.commitment.0);
                out.push(event.event_type.code());
                push_token(&mut out, &event.biz_step)?;
                out.extend_from_slice(&event.event_time_ms.to_be_bytes());
            }
            Self::DocumentAnchor(anchor) => {
                out.extend_from_slice(&anchor.commitment.0);
                push_token(&mut out, &anchor.document_type)?;
                push_token(&mut out, &anchor.issuer_org)?;
                out.extend_from_slice(&anchor.issuer_key_id.0);
                out.extend_from_slice(&anchor.issuer_signature);
                push_replaces(&mut out, anchor.replaces);
            }
            Self::KeyEvent(event) => {
                let signed = event.rotation_signature.is_some();
                if signed != (event.action == KeyAction::Rotate) {
                    return Err(EntryError::RotationSignature);
                }
                out.extend_from_slice(&event.device_id.0);
                out.extend_from_slice(&event.key_epoch.0.to_be_bytes());
                out.push(match event.action {
                    KeyAction::Register => 1,
                    KeyAction::Rotate => 2,
                    KeyAction::Revoke => 3,
                });
                out.extend_from_slice(&event.public_key);
                out.extend_from_slice(&event.effective_time_ms.to_be_bytes());
                if let Some(signature) = &event.rotation_signature {
                    out.extend_from_slice(signature);
                }
            }
            Self::IssuerKeyEvent(event) => {
                let signed = event.possession_signature.is_some();
                if signed != (event.action == IssuerKeyAction::Register) {
                    return Err(EntryError::PossessionSignature);
                }
                push_token(&mut out, &event.issuer_org)?;
                out.push(match event.action {
                    IssuerKeyAction::Register => 1,
                    IssuerKeyAction::Revoke => 2,
                });
                out.extend_from_slice(&event.public_key);
                out.extend_from_slice(&event.effective_time_ms.to_be_bytes());
                if let Some(signature) = &event.possession_signature {
                    out.extend_from_slice(signature);
                }
            }
            Self::Unknown { kind, body } => {
                if (KIND_READING_BATCH..=KIND_ISSUER_KEY_EVENT).contains(kind) {
                    return Err(EntryError::KnownKind(*kind));
                }
                out.extend_from_slice(body);
            }
        }
        if out.len() > MAX_ENTRY_BYTES {
            return Err(EntryError::TooLarge);
        }
        Ok(out)
    }

    /// Decodes an entry, accepting only the canonical encoding.
    pub fn decode(bytes: &[u8]) -> Result<Self, EntryError> {
        if bytes.len() > MAX_ENTRY_BYTES {
            return Err(EntryError::TooLarge);
        }
        let mut r = Reader { bytes };
        let version = r.u8().map_err(|_| EntryError::Empty)?;
        if version != ENTRY_FORMAT_VERSION {
            return Err(EntryError::UnsupportedVersion(version));
        }
        let kind = r.u8()?;
        let entry = match kind {
            KIND_READING_BATCH => {
                let batch_root = r.hash()?;
                let reading_count = r.u32()?;
                let device_time_first_ms = r.u64()?;
                let device_time_last_ms = r.u64()?;
                let ingest_time_ms = r.u64()?;
                let count = usize::from(r.u16()?);
                if count > MAX_BATCH_DEVICES {
                    return Err(EntryError::Devices);
                }
                let mut devices = Vec::with_capacity(count);
                for _ in 0..count {
                    devices.push(DeviceId(r.array()?));
                }
                let batch = ReadingBatch {
                    batch_root,
                    reading_count,
                    device_time_first_ms,
                    device_time_last_ms,
                    ingest_time_ms,
                    devices,
                };
                batch.check()?;
                Self::ReadingBatch(batch)
            }
            KIND_TRACE_EVENT => {
                let commitment = r.hash()?;
                let event_type =
                    EpcisEventType::from_code(r.u8()?).ok_or(EntryError::Code("event type"))?;
                let biz_step = r.token()?;
                let event_time_ms = r.u64()?;
                Self::TraceEvent(TraceEvent {
                    commitment,
                    event_type,
                    biz_step,
                    event_time_ms,
                })
            }
            KIND_DOCUMENT_ANCHOR => {
                let commitment = r.hash()?;
                let document_type = r.token()?;
                let issuer_org = r.token()?;
                let issuer_key_id = r.hash()?;
                let issuer_signature = r.array()?;
                let replaces = match r.u8()? {
                    0 => None,
                    1 => Some(Replaces::Supersedes(LeafIndex(r.u64()?))),
                    2 => Some(Replaces::Revokes(LeafIndex(r.u64()?))),
                    _ => return Err(EntryError::Code("replaces")),
                };
                Self::DocumentAnchor(DocumentAnchor {
                    commitment,
                    document_type,
                    issuer_org,
                    issuer_key_id,
                    issuer_signature,
                    replaces,
                })
            }
            KIND_KEY_EVENT => {
                let device_id = DeviceId(r.array()?);
                let key_epoch = KeyEpoch(r.u32()?);
                let action = match r.u8()? {
                    1 => KeyAction::Register,
                    2 => KeyAction::Rotate,
                    3 => KeyAction::Revoke,
                    _ => return Err(EntryError::Code("key action")),
                };
                let public_key = r.array()?;
                let effective_time_ms = r.u64()?;
                let rotation_signature = if action == KeyAction::Rotate {
                    Some(r.array()?)
                } else {
                    None
                };
                Self::KeyEvent(KeyEvent {
                    device_id,
                    key_epoch,
                    action,
                    public_key,
                    effective_time_ms,
                    rotation_signature,
                })
            }
            KIND_ISSUER_KEY_EVENT => {
                let issuer_org = r.token()?;
                let action = match r.u8()? {
                    1 => IssuerKeyAction::Register,
                    2 => IssuerKeyAction::Revoke,
                    _ => return Err(EntryError::Code("issuer key action")),
                };
                let public_key = r.array()?;
                let effective_time_ms = r.u64()?;
                let possession_signature = if action == IssuerKeyAction::Register {
                    Some(r.array()?)
                } else {
                    None
                };
                Self::IssuerKeyEvent(IssuerKeyEvent {
                    issuer_org,
                    action,
                    public_key,
                    effective_time_ms,
                    possession_signature,
                })
            }
            _ => {
                let body = r.take(r.bytes.len())?.to_vec();
                return Ok(Self::Unknown { kind, body });
            }
        };
        r.finish()?;
        Ok(entry)
    }
}
