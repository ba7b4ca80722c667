//! Verification of an evidence bundle ([`verify_bundle`]): every proof in the file is checked
//! with no network and no clock, and the first item that fails is named by its kind, its
//! index and its line in the file.
//!
//! Order (each stops at its first failure, so a changed byte is named as the item it belongs
//! to, and the seal — which covers every byte — is checked last):
//! 1. the policy: the pinned one must equal the bundle's byte for byte;
//! 2. every checkpoint: log signature and witness quorum (C2SP tlog-policy), sizes ascending,
//!    each RFC 9162 §2.1.4 consistency proof from the previous one (a forked log fails here);
//! 3. every entry decodes and its RFC 9162 §2.1.3 inclusion path leads to the last root;
//! 4. device keys (`KeyEvent`) and issuer keys (`IssuerKeyEvent`) in log order: rotations
//!    signed by the previous epoch's key, registrations with proof of possession, no weak key;
//! 5. every batch: its entry is a `ReadingBatch`, each reading decodes, names a device the
//!    entry lists, has a device time in the entry's range, and is signed by its device's key of
//!    its epoch, registered before the entry in log order and not revoked before it (Ed25519
//!    batch verification, then one by one to name a bad reading); the readings and the subset
//!    proof give the entry's batch root for a tree of the entry's reading count;
//! 6. every event: the entry is a `TraceEvent`, the JSON is one EPCIS 2.0 event whose GS1
//!    canonical event hash opens the salted commitment, with the entry's type and time;
//! 7. every document: the entry is a `DocumentAnchor` whose commitment the content and salt
//!    open; every `DocumentAnchor` entry is signed by a key registered for its issuer before it
//!    and not revoked before it; each document's status follows from the anchors that replace
//!    it;
//! 8. the seal: a signed note by the log key over `seal_text(body)`.
//!
//! What a bundle cannot prove is said in the report: inclusion, not absence.

use std::collections::BTreeMap;
use std::fmt::Display;

use ed25519_dalek::{Signature, VerifyingKey};
use gs1::epcis::canon::parse_timestamp;
use gs1::epcis::{DocumentKind, EventType, event_hash, parse_document};
use ledger::checkpoint::Checkpoint;
use ledger::entry::{
    DocumentAnchor, Entry, EpcisEventType, IssuerKeyAction, KeyAction, Replaces, salted_commitment,
};
use ledger::merkle::{Hash, LeafIndex, TreeSize, leaf_hash};
use ledger::note::{Note, NoteError, NoteVerifier};
use ledger::policy::{Policy, PolicyCheckError};
use ledger::proof::{ConsistencyProof, root_from_inclusion_path};
use ledger::subset_proof::root_from_subset;
use protocol::limits::SIGNED_MESSAGE_BYTES_MAX;
use protocol::{DeviceId, KeyEpoch, SignedReading};
use sha2::{Digest as _, Sha256};

use super::format::{BundleLines, EvidenceBundle, EvidenceBundleError, Subject};

/// Signatures verified in one Ed25519 batch.
const SIGNATURE_CHUNK: usize = 256;

/// Where trust comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Trust {
    /// The user's policy file (`--policy`): the bundle's policy must be these bytes.
    Pinned(Vec<u8>),
    /// The bundle's own policy: the bundle is checked against itself only.
    BundlePolicy,
}

/// Text in English and in Chinese.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bilingual {
    /// English.
    pub en: String,
    /// Chinese (simplified).
    pub zh: String,
}

impl Bilingual {
    fn new(en: impl Display, zh: impl Display) -> Self {
        Self {
            en: en.to_string(),
            zh: zh.to_string(),
        }
    }
}

/// A part of a bundle a check is about (line numbers are one-based).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Item {
    /// A line of the file that does not parse.
    File {
        /// The line.
        line: usize,
        /// Its label, when the parser named one.
        label: Option<&'static str>,
    },
    /// The trust policy.
    Policy {
        /// The `policy` line.
        line: usize,
    },
    /// A checkpoint (numbered from 1 in file order).
    Checkpoint {
        /// Its number.
        number: usize,
        /// Its `checkpoint` line.
        line: usize,
    },
    /// The consistency proof from the previous checkpoint to checkpoint `number`.
    Consistency {
        /// The checkpoint it leads to.
        number: usize,
        /// That checkpoint's line (the proof's lines follow it).
        line: usize,
    },
    /// A log entry.
    Entry {
        /// Its leaf index.
        index: LeafIndex,
        /// Its `entry` line.
        line: usize,
    },
    /// A batch of readings.
    Batch {
        /// Leaf index of its entry.
        entry: LeafIndex,
        /// Its `batch` line.
        line: usize,
    },
    /// One signed reading.
    Reading {
        /// Leaf index of its batch's entry.
        entry: LeafIndex,
        /// Its position in the batch.
        position: LeafIndex,
        /// Its `reading` line.
        line: usize,
    },
    /// An EPCIS event.
    Event {
        /// Leaf index of its entry.
        entry: LeafIndex,
        /// Its `event` line.
        line: usize,
    },
    /// A trade document.
    Document {
        /// Leaf index of its anchor.
        entry: LeafIndex,
        /// Its `document` line.
        line: usize,
    },
    /// The seal.
    Seal {
        /// The `seal` line.
        line: usize,
    },
}

impl Item {
    /// The item in words, e.g. `reading 5 of the batch at entry 258 (line 40)`.
    #[must_use]
    pub fn describe(&self) -> Bilingual {
        match *self {
            Self::File { line, label } => match label {
                Some(label) => Bilingual::new(
                    format!("line {line} (`{label}`)"),
                    format!("第 {line} 行（`{label}`）"),
                ),
                None => Bilingual::new(format!("line {line}"), format!("第 {line} 行")),
            },
            Self::Policy { line } => Bilingual::new(
                format!("policy (line {line})"),
                format!("信任策略（第 {line} 行）"),
            ),
            Self::Checkpoint { number, line } => Bilingual::new(
                format!("checkpoint {number} (line {line})"),
                format!("检查点 {number}（第 {line} 行）"),
            ),
            Self::Consistency { number, line } => Bilingual::new(
                format!(
                    "consistency proof from checkpoint {} to checkpoint {number} (after line {line})",
                    number.saturating_sub(1)
                ),
                format!(
                    "检查点 {} 到检查点 {number} 的一致性证明（第 {line} 行之后）",
                    number.saturating_sub(1)
                ),
            ),
            Self::Entry { index, line } => Bilingual::new(
                format!("entry {index} (line {line})"),
                format!("日志条目 {index}（第 {line} 行）"),
            ),
            Self::Batch { entry, line } => Bilingual::new(
                format!("batch at entry {entry} (line {line})"),
                format!("条目 {entry} 的读数批次（第 {line} 行）"),
            ),
            Self::Reading {
                entry,
                position,
                line,
            } => Bilingual::new(
                format!("reading {position} of the batch at entry {entry} (line {line})"),
                format!("条目 {entry} 批次中第 {position} 号传感器读数（第 {line} 行）"),
            ),
            Self::Event { entry, line } => Bilingual::new(
                format!("event at entry {entry} (line {line})"),
                format!("条目 {entry} 的业务事件（第 {line} 行）"),
            ),
            Self::Document { entry, line } => Bilingual::new(
                format!("document at entry {entry} (line {line})"),
                format!("条目 {entry} 的贸易单证（第 {line} 行）"),
            ),
            Self::Seal { line } => Bilingual::new(
                format!("seal (line {line})"),
                format!("封印（第 {line} 行）"),
            ),
        }
    }
}

/// The checks the report lists, in the order they run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckName {
    /// The file parses.
    ReadBundle,
    /// The policy is the pinned one (or the bundle's own, unpinned).
    Policy,
    /// Log signatures and witness quorums of the checkpoints.
    Checkpoints,
    /// Consistency proofs between the checkpoints.
    Consistency,
    /// Entries decode and their inclusion proofs lead to the last root.
    Inclusion,
    /// Device key registrations, rotations and revocations.
    DeviceKeys,
    /// Issuer key registrations (proof of possession) and revocations.
    IssuerKeys,
    /// Readings decode, belong to their batch entry and have a valid device key.
    Readings,
    /// Device signatures of the readings.
    ReadingSignatures,
    /// Subset proofs of the batches.
    BatchProofs,
    /// Event commitments, types and times.
    Events,
    /// Document commitments.
    Documents,
    /// Issuer signatures of every document anchor.
    AnchorSignatures,
    /// The seal.
    Seal,
}

impl CheckName {
    /// The check in words.
    #[must_use]
    pub fn describe(self) -> Bilingual {
        let (en, zh) = match self {
            Self::ReadBundle => ("read the evidence bundle", "读取证据包"),
            Self::Policy => ("trust policy", "信任策略"),
            Self::Checkpoints => (
                "checkpoint log signatures and witness quorum",
                "检查点的日志签名与见证签名法定数",
            ),
            Self::Consistency => (
                "consistency proofs between checkpoints",
                "检查点之间的一致性证明",
            ),
            Self::Inclusion => ("entries and their inclusion proofs", "日志条目及其包含证明"),
            Self::DeviceKeys => (
                "device key registrations and rotations",
                "设备密钥的注册与轮换",
            ),
            Self::IssuerKeys => (
                "issuer key registrations (proof of possession)",
                "签发机构密钥注册（持有证明）",
            ),
            Self::Readings => (
                "readings belong to their batches, with valid device keys",
                "传感器读数属于其批次且设备密钥有效",
            ),
            Self::ReadingSignatures => {
                ("device signatures of the readings", "传感器读数的设备签名")
            }
            Self::BatchProofs => ("batch subset proofs", "批次子集证明"),
            Self::Events => (
                "EPCIS events open their commitments",
                "EPCIS 业务事件与其承诺值相符",
            ),
            Self::Documents => ("documents open their commitments", "贸易单证与其承诺值相符"),
            Self::AnchorSignatures => (
                "issuer signatures of the document anchors",
                "单证锚定的签发机构签名",
            ),
            Self::Seal => ("seal by the log key", "日志密钥签署的封印"),
        };
        Bilingual::new(en, zh)
    }
}

/// A check that passed, with how many things it covered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Check {
    /// Which check.
    pub name: CheckName,
    /// How many items it checked.
    pub count: u64,
}

/// The check that failed: on what, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// The check.
    pub check: CheckName,
    /// The exact item.
    pub item: Item,
    /// Why, in words.
    pub reason: Bilingual,
}

/// The trust policy as the report shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicySummary {
    /// Trusted log keys (`name+hash+base64`).
    pub log_keys: Vec<String>,
    /// Witnesses: policy name and cosigner key.
    pub witnesses: Vec<(String, String)>,
    /// The quorum's name.
    pub quorum: String,
}

/// One checkpoint as the report shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointSummary {
    /// Log origin.
    pub origin: String,
    /// Tree size.
    pub size: TreeSize,
    /// Root hash.
    pub root: Hash,
    /// Witnesses (policy names) whose cosignatures verified, with their times (Unix seconds).
    pub cosigned: Vec<(String, u64)>,
}

/// How many things the bundle holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Log entries.
    pub entries: u64,
    /// Reading batches.
    pub batches: u64,
    /// Signed readings.
    pub readings: u64,
    /// EPCIS events.
    pub events: u64,
    /// Trade documents (with content).
    pub documents: u64,
    /// Document anchors (with or without content).
    pub anchors: u64,
}

/// A device key as the report shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceKeySummary {
    /// Key epoch.
    pub epoch: KeyEpoch,
    /// Public key, hex.
    pub public_key: String,
    /// Registered (or rotated to) at this entry.
    pub registered: LeafIndex,
    /// Whether it came by rotation.
    pub rotated: bool,
    /// Revoked at this entry, if the bundle holds the revocation.
    pub revoked: Option<LeafIndex>,
}

/// A device as the report shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceSummary {
    /// The device.
    pub device: DeviceId,
    /// Its keys, epochs ascending.
    pub keys: Vec<DeviceKeySummary>,
    /// Readings of the bundle it signed.
    pub readings: u64,
}

/// An issuer key as the report shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuerKeySummary {
    /// The organisation.
    pub org: String,
    /// Key id (SHA-256 of the public key), hex.
    pub key_id: String,
    /// Registered at this entry.
    pub registered: LeafIndex,
    /// Revoked at this entry, if the bundle holds the revocation.
    pub revoked: Option<LeafIndex>,
}

/// A document's status from the anchors of the bundle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DocumentStatus {
    /// No anchor of the bundle replaces it.
    Valid,
    /// Superseded by the anchor at this entry.
    Superseded(LeafIndex),
    /// Revoked by the anchor at this entry.
    Revoked(LeafIndex),
}

impl DocumentStatus {
    /// The status in words.
    #[must_use]
    pub fn describe(self) -> Bilingual {
        match self {
            Self::Valid => Bilingual::new("valid", "有效"),
            Self::Superseded(by) => Bilingual::new(
                format!("superseded (by entry {by})"),
                format!("已被取代（条目 {by}）"),
            ),
            Self::Revoked(by) => Bilingual::new(
                format!("revoked (by entry {by})"),
                format!("已撤销（条目 {by}）"),
            ),
        }
    }
}

/// A document as the report shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DocumentSummary {
    /// Leaf index of its anchor.
    pub entry: LeafIndex,
    /// Document type.
    pub document_type: String,
    /// The issuer's number.
    pub number: String,
    /// Media type.
    pub media_type: String,
    /// Issuing organisation.
    pub issuer: String,
    /// Size of the content in bytes.
    pub bytes: u64,
    /// SHA-256 of the content, hex.
    pub sha256: String,
    /// Status.
    pub status: DocumentStatus,
    /// Whether the issuer signature verified under a key valid at the anchor.
    pub signature_valid: bool,
}

/// An event as the report shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventSummary {
    /// Leaf index of its entry.
    pub entry: LeafIndex,
    /// EPCIS event type.
    pub event_type: &'static str,
    /// Business step token of the entry.
    pub biz_step: String,
    /// `eventTime`, Unix ms.
    pub event_time_ms: u64,
    /// GS1 canonical event hash.
    pub event_hash: String,
}

/// Everything the verification found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// What the bundle is the evidence of (`None` if the file did not parse).
    pub subject: Option<Subject>,
    /// When it was exported (Unix ms).
    pub exported_ms: Option<u64>,
    /// Whether the policy was pinned by the user (false: the bundle's own).
    pub trust_pinned: bool,
    /// The policy, once parsed.
    pub policy: Option<PolicySummary>,
    /// The checkpoints that verified.
    pub checkpoints: Vec<CheckpointSummary>,
    /// Counts of the bundle's parts.
    pub counts: Counts,
    /// Devices whose key entries are in the bundle, or whose readings are.
    pub devices: Vec<DeviceSummary>,
    /// Issuer keys of the bundle.
    pub issuers: Vec<IssuerKeySummary>,
    /// Events that verified.
    pub events: Vec<EventSummary>,
    /// Documents that verified (or the one that failed, marked).
    pub documents: Vec<DocumentSummary>,
    /// Checks that passed, in order.
    pub checks: Vec<Check>,
    /// The check that failed, if one did.
    pub failure: Option<Failure>,
}

impl Report {
    /// Whether every check passed.
    #[must_use]
    pub fn verified(&self) -> bool {
        self.failure.is_none()
            && self
                .checks
                .last()
                .is_some_and(|c| c.name == CheckName::Seal)
    }
}

/// What the verification is doing, for a progress bar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Checkpoints and entries.
    Log,
    /// Decoding readings and finding their keys.
    Readings,
    /// Verifying reading signatures.
    Signatures,
    /// Events, documents and the seal.
    Records,
}

/// Progress of one phase: `done` of `total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// The phase.
    pub phase: Phase,
    /// Items done.
    pub done: u64,
    /// Items in the phase.
    pub total: u64,
}

fn count(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// Parses `bytes` as an evidence bundle and verifies it ([`verify_bundle`]); a file that does
/// not parse is a failed check naming its line.
pub fn verify_file(bytes: &[u8], trust: &Trust, progress: &mut dyn FnMut(Progress)) -> Report {
    match EvidenceBundle::parse(bytes) {
        Ok(bundle) => verify_bundle(&bundle, trust, progress),
        Err(error) => Report {
            trust_pinned: matches!(trust, Trust::Pinned(_)),
            failure: Some(parse_failure(&error)),
            ..Report::default()
        },
    }
}

fn parse_failure(error: &EvidenceBundleError) -> Failure {
    Failure {
        check: CheckName::ReadBundle,
        item: Item::File {
            line: error.line(),
            label: error.label(),
        },
        reason: Bilingual::new(
            format!("not a valid evidence bundle: {error}"),
            format!("不是有效的证据包：{error}"),
        ),
    }
}

/// Verifies a parsed bundle under `trust`, reporting progress; see the module documentation.
pub fn verify_bundle(
    bundle: &EvidenceBundle,
    trust: &Trust,
    progress: &mut dyn FnMut(Progress),
) -> Report {
    let mut report = Report {
        subject: Some(bundle.subject.clone()),
        exported_ms: Some(bundle.exported_ms),
        trust_pinned: matches!(trust, Trust::Pinned(_)),
        counts: Counts {
            entries: count(bundle.entries.len()),
            batches: count(bundle.batches.len()),
            readings: count(bundle.batches.iter().map(|b| b.readings.len()).sum()),
            events: count(bundle.events.len()),
            documents: count(bundle.documents.len()),
            anchors: 0,
        },
        ..Report::default()
    };
    report.checks.push(Check {
        name: CheckName::ReadBundle,
        count: 1,
    });
    let mut verifier = Verifier {
        bundle,
        lines: bundle.lines(),
        report: &mut report,
        progress,
        device_keys: BTreeMap::new(),
        device_revocations: BTreeMap::new(),
        issuer_keys: BTreeMap::new(),
        issuer_revocations: BTreeMap::new(),
        device_readings: BTreeMap::new(),
    };
    if let Err(failure) = verifier.run(trust) {
        verifier.summarise_keys();
        report.failure = Some(failure);
    }
    report
}

struct DeviceKey {
    key: VerifyingKey,
    registered: LeafIndex,
    rotated: bool,
}

struct IssuerKey {
    org: String,
    key: VerifyingKey,
    registered: LeafIndex,
}

struct Verifier<'a, 'r> {
    bundle: &'a EvidenceBundle,
    lines: BundleLines,
    report: &'r mut Report,
    progress: &'r mut dyn FnMut(Progress),
    device_keys: BTreeMap<(DeviceId, KeyEpoch), DeviceKey>,
    /// First revocation of each device key epoch.
    device_revocations: BTreeMap<(DeviceId, KeyEpoch), LeafIndex>,
    /// By key id.
    issuer_keys: BTreeMap<Hash, IssuerKey>,
    /// First revocation of each issuer key id.
    issuer_revocations: BTreeMap<Hash, LeafIndex>,
    device_readings: BTreeMap<DeviceId, u64>,
}

/// A reading's signature to check: where it is, and under which key.
struct PendingSignature<'a> {
    batch: usize,
    reading: usize,
    signed: SignedReading<'a>,
    key: VerifyingKey,
}

fn fail(check: CheckName, item: Item, reason: Bilingual) -> Failure {
    Failure {
        check,
        item,
        reason,
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(2 * bytes.len()), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        })
}

/// Verifies one chunk; returns the position (in the chunk) of the first bad signature.
fn first_bad_signature(chunk: &[PendingSignature<'_>]) -> Option<usize> {
    if chunk
        .iter()
        .all(|p| protocol::r_is_strict(p.signed.signature()))
    {
        let mut buffers = vec![[0u8; SIGNED_MESSAGE_BYTES_MAX]; chunk.len()];
        let mut messages: Vec<&[u8]> = Vec::with_capacity(chunk.len());
        for (buffer, pending) in buffers.iter_mut().zip(chunk) {
            messages.push(pending.signed.signed_message(buffer));
        }
        let signatures: Vec<Signature> = chunk.iter().map(|p| *p.signed.signature()).collect();
        let keys: Vec<VerifyingKey> = chunk.iter().map(|p| p.key).collect();
        if protocol::batch::verify_batch(&messages, &signatures, &keys).is_ok() {
            return None;
        }
    }
    // One by one (`verify_strict`), to name the reading.
    chunk.iter().position(|p| p.signed.verify(&p.key).is_err())
}

fn usable_key(bytes: &[u8; 32]) -> Option<VerifyingKey> {
    VerifyingKey::from_bytes(bytes)
        .ok()
        .filter(|k| !k.is_weak())
}

fn log_event_type(t: EventType) -> EpcisEventType {
    match t {
        EventType::ObjectEvent => EpcisEventType::Object,
        EventType::AggregationEvent => EpcisEventType::Aggregation,
        EventType::TransactionEvent => EpcisEventType::Transaction,
        EventType::TransformationEvent => EpcisEventType::Transformation,
        EventType::AssociationEvent => EpcisEventType::Association,
    }
}

impl Verifier<'_, '_> {
    fn run(&mut self, trust: &Trust) -> Result<(), Failure> {
        let policy = self.policy(trust)?;
        let log_key = self.checkpoints(&policy)?;
        let entries = self.entries()?;
        self.keys(&entries)?;
        self.batches(&entries)?;
        self.events(&entries)?;
        self.documents(&entries)?;
        self.summarise_keys();
        self.seal(&log_key)?;
        Ok(())
    }

    fn passed(&mut self, name: CheckName, n: usize) {
        self.report.checks.push(Check {
            name,
            count: count(n),
        });
    }

    fn progress(&mut self, phase: Phase, done: usize, total: usize) {
        (self.progress)(Progress {
            phase,
            done: count(done),
            total: count(total),
        });
    }

    fn policy(&mut self, trust: &Trust) -> Result<Policy, Failure> {
        let item = Item::Policy {
            line: self.lines.policy,
        };
        if let Trust::Pinned(pinned) = trust
            && *pinned != self.bundle.policy
        {
            return Err(fail(
                CheckName::Policy,
                item,
                Bilingual::new(
                    "the bundle's policy is not the pinned policy (--policy) byte for byte",
                    "证据包中的信任策略与指定的策略（--policy）不是逐字节相同",
                ),
            ));
        }
        let policy = Policy::parse(&self.bundle.policy).map_err(|e| {
            fail(
                CheckName::Policy,
                item,
                Bilingual::new(
                    format!("not a C2SP tlog-policy: {e}"),
                    format!("不是 C2SP tlog-policy 策略：{e}"),
                ),
            )
        })?;
        self.report.policy = Some(PolicySummary {
            log_keys: policy.logs().iter().map(NoteVerifier::to_vkey).collect(),
            witnesses: policy
                .witnesses()
                .map(|(n, k)| (n.to_owned(), k.to_vkey()))
                .collect(),
            quorum: policy.quorum_name().to_owned(),
        });
        self.passed(CheckName::Policy, 1);
        Ok(policy)
    }

    /// Checks every checkpoint and the consistency proofs; returns the log key.
    fn checkpoints(&mut self, policy: &Policy) -> Result<NoteVerifier, Failure> {
        let total = self.bundle.checkpoints.len();
        let mut log_key: Option<NoteVerifier> = None;
        let mut previous: Option<Checkpoint> = None;
        let mut proofs = 0;
        for (i, bundled) in self.bundle.checkpoints.iter().enumerate() {
            let number = i + 1;
            let line = self.lines.checkpoints[i];
            let item = Item::Checkpoint { number, line };
            let bad =
                |en: String, zh: String| fail(CheckName::Checkpoints, item, Bilingual::new(en, zh));
            let note = Note::parse(bundled.signed_note.as_bytes()).map_err(|e| {
                bad(
                    format!("not a signed note: {e}"),
                    format!("不是签名注记：{e}"),
                )
            })?;
            let checkpoint = Checkpoint::parse(&note.text)
                .map_err(|e| bad(format!("not a checkpoint: {e}"), format!("不是检查点：{e}")))?;
            let opened = policy.open_note(&note, &checkpoint).map_err(|e| match e {
                PolicyCheckError::Note(NoteError::BadSignature { name }) => bad(
                    format!("the signature by trusted key {name} does not verify"),
                    format!("受信任密钥 {name} 的签名无效"),
                ),
                other => bad(
                    format!("no valid signature by a key of the policy: {other}"),
                    format!("没有信任策略中任何密钥的有效签名：{other}"),
                ),
            })?;
            let signer = policy.log_signer(&checkpoint, &opened).map_err(|_| {
                bad(
                    format!(
                        "not signed by a trusted log key named {}",
                        checkpoint.origin
                    ),
                    format!("没有名为 {} 的受信任日志密钥的签名", checkpoint.origin),
                )
            })?;
            if let Some(first) = &log_key
                && first != signer
            {
                return Err(bad(
                    format!(
                        "signed by log {}, the first checkpoint by log {}",
                        signer.name(),
                        first.name()
                    ),
                    format!(
                        "由日志 {} 签名，而第一个检查点由日志 {} 签名",
                        signer.name(),
                        first.name()
                    ),
                ));
            }
            let cosigned = policy.check_quorum(&opened).map_err(|_| {
                let who: Vec<String> = policy
                    .cosigned_witnesses(&opened.verified)
                    .into_iter()
                    .map(|(n, _)| n)
                    .collect();
                let who = if who.is_empty() {
                    String::from("-")
                } else {
                    who.join(", ")
                };
                bad(
                    format!(
                        "witness quorum {} not met (cosigned by: {who})",
                        policy.quorum_name()
                    ),
                    format!(
                        "见证签名未达到法定数 {}（已见证签名：{who}）",
                        policy.quorum_name()
                    ),
                )
            })?;
            if let Some(previous) = &previous {
                if checkpoint.size < previous.size {
                    return Err(bad(
                        format!(
                            "tree size {} is smaller than the previous checkpoint's {}",
                            checkpoint.size, previous.size
                        ),
                        format!(
                            "树大小 {} 小于前一个检查点的 {}",
                            checkpoint.size, previous.size
                        ),
                    ));
                }
                let proof = ConsistencyProof {
                    old_size: previous.size,
                    new_size: checkpoint.size,
                    path: bundled.consistency.clone(),
                };
                proof.verify(&previous.root, &checkpoint.root).map_err(|e| {
                    fail(
                        CheckName::Consistency,
                        Item::Consistency { number, line },
                        Bilingual::new(
                            format!(
                                "the tree of size {} is not a prefix of the tree of size {} ({e}): the checkpoints are not of one append-only log",
                                previous.size, checkpoint.size
                            ),
                            format!(
                                "大小为 {} 的树不是大小为 {} 的树的前缀（{e}）：这些检查点不属于同一个只追加日志",
                                previous.size, checkpoint.size
                            ),
                        ),
                    )
                })?;
                proofs += 1;
            }
            self.report.checkpoints.push(CheckpointSummary {
                origin: checkpoint.origin.clone(),
                size: checkpoint.size,
                root: checkpoint.root,
                cosigned,
            });
            log_key = Some(signer.clone());
            previous = Some(checkpoint);
            self.progress(Phase::Log, number, total);
        }
        self.passed(CheckName::Checkpoints, total);
        self.passed(CheckName::Consistency, proofs);
        // The parser requires at least one checkpoint.
        log_key.ok_or_else(|| {
            fail(
                CheckName::Checkpoints,
                Item::Policy {
                    line: self.lines.policy,
                },
                Bilingual::new("the bundle has no checkpoint", "证据包中没有检查点"),
            )
        })
    }

    /// Decodes every entry and checks its inclusion in the last checkpoint's tree.
    fn entries(&mut self) -> Result<BTreeMap<LeafIndex, Entry>, Failure> {
        let last = self
            .report
            .checkpoints
            .last()
            .map(|c| (c.size, c.root))
            .unwrap_or((TreeSize(0), Hash([0; 32])));
        let (size, root) = last;
        let mut out = BTreeMap::new();
        let total = self.bundle.entries.len();
        for (i, bundled) in self.bundle.entries.iter().enumerate() {
            let item = Item::Entry {
                index: bundled.index,
                line: self.lines.entries[i],
            };
            let bad =
                |en: String, zh: String| fail(CheckName::Inclusion, item, Bilingual::new(en, zh));
            let entry = Entry::decode(&bundled.bytes).map_err(|e| {
                bad(
                    format!("not a valid log entry: {e}"),
                    format!("不是有效的日志条目：{e}"),
                )
            })?;
            let computed = root_from_inclusion_path(
                bundled.index,
                size,
                &leaf_hash(&bundled.bytes),
                &bundled.inclusion,
            );
            if computed != Ok(root) {
                return Err(bad(
                    format!(
                        "its inclusion proof does not lead to the root of the last checkpoint (tree size {size})"
                    ),
                    format!("其包含证明不能导出最后一个检查点（树大小 {size}）的根哈希"),
                ));
            }
            out.insert(bundled.index, entry);
            if i % 1024 == 0 {
                self.progress(Phase::Log, i, total);
            }
        }
        self.passed(CheckName::Inclusion, total);
        Ok(out)
    }

    fn entry_item(&self, index: LeafIndex) -> Item {
        let i = self
            .bundle
            .entries
            .binary_search_by_key(&index, |e| e.index)
            .unwrap_or(0);
        Item::Entry {
            index,
            line: self.lines.entries.get(i).copied().unwrap_or(0),
        }
    }

    /// Device and issuer key histories, in log order.
    fn keys(&mut self, entries: &BTreeMap<LeafIndex, Entry>) -> Result<(), Failure> {
        let (mut device_events, mut issuer_events) = (0, 0);
        for (&index, entry) in entries {
            let item = self.entry_item(index);
            match entry {
                Entry::KeyEvent(event) => {
                    device_events += 1;
                    let bad = |en: String, zh: String| {
                        fail(CheckName::DeviceKeys, item, Bilingual::new(en, zh))
                    };
                    let slot = (event.device_id, event.key_epoch);
                    let (device, epoch) = (event.device_id, event.key_epoch.0);
                    match event.action {
                        KeyAction::Register | KeyAction::Rotate => {
                            let key = usable_key(&event.public_key).ok_or_else(|| {
                                bad(
                                    format!("device {device} epoch {epoch}: not a usable Ed25519 key (invalid or of small order)"),
                                    format!("设备 {device} 第 {epoch} 代：不是可用的 Ed25519 密钥（无效或阶数过小）"),
                                )
                            })?;
                            if self.device_keys.contains_key(&slot) {
                                return Err(bad(
                                    format!("device {device} epoch {epoch} is registered twice"),
                                    format!("设备 {device} 第 {epoch} 代密钥被注册了两次"),
                                ));
                            }
                            let rotated = event.action == KeyAction::Rotate;
                            if rotated {
                                let previous = KeyEpoch(epoch.wrapping_sub(1));
                                let old = self.device_keys.get(&(device, previous)).ok_or_else(|| {
                                    bad(
                                        format!("device {device}: a rotation to epoch {epoch}, but the key of epoch {} is not in the bundle", previous.0),
                                        format!("设备 {device}：轮换到第 {epoch} 代，但证据包中没有第 {} 代密钥", previous.0),
                                    )
                                })?;
                                if let Some(revoked) =
                                    self.device_revocations.get(&(device, previous))
                                {
                                    return Err(bad(
                                        format!(
                                            "device {device}: the rotation to epoch {epoch} is signed by the key of epoch {}, revoked at entry {revoked}",
                                            previous.0
                                        ),
                                        format!(
                                            "设备 {device}：轮换到第 {epoch} 代的签名来自第 {} 代密钥，而该密钥已在条目 {revoked} 撤销",
                                            previous.0
                                        ),
                                    ));
                                }
                                if !event.verify_rotation(&old.key) {
                                    return Err(bad(
                                        format!(
                                            "device {device}: the rotation to epoch {epoch} is not signed by the key of epoch {}",
                                            previous.0
                                        ),
                                        format!(
                                            "设备 {device}：轮换到第 {epoch} 代没有第 {} 代密钥的有效签名",
                                            previous.0
                                        ),
                                    ));
                                }
                            }
                            self.device_keys.insert(
                                slot,
                                DeviceKey {
                                    key,
                                    registered: index,
                                    rotated,
                                },
                            );
                        }
                        KeyAction::Revoke => {
                            if let Some(known) = self.device_keys.get(&slot)
                                && known.key.as_bytes() != &event.public_key
                            {
                                return Err(bad(
                                    format!(
                                        "device {device}: the revocation of epoch {epoch} names another key than the one registered"
                                    ),
                                    format!(
                                        "设备 {device}：第 {epoch} 代的撤销所指的密钥与注册的不同"
                                    ),
                                ));
                            }
                            self.device_revocations.entry(slot).or_insert(index);
                        }
                    }
                }
                Entry::IssuerKeyEvent(event) => {
                    issuer_events += 1;
                    let bad = |en: String, zh: String| {
                        fail(CheckName::IssuerKeys, item, Bilingual::new(en, zh))
                    };
                    let key_id = event.key_id();
                    let org = event.issuer_org.as_str();
                    match event.action {
                        IssuerKeyAction::Register => {
                            let key = usable_key(&event.public_key)
                                .filter(|_| event.verify_possession())
                                .ok_or_else(|| {
                                    bad(
                                        format!("issuer {org}: key {key_id} has no valid proof of possession"),
                                        format!("签发机构 {org}：密钥 {key_id} 没有有效的持有证明"),
                                    )
                                })?;
                            if self.issuer_keys.contains_key(&key_id) {
                                return Err(bad(
                                    format!("issuer key {key_id} is registered twice"),
                                    format!("签发机构密钥 {key_id} 被注册了两次"),
                                ));
                            }
                            self.issuer_keys.insert(
                                key_id,
                                IssuerKey {
                                    org: org.to_owned(),
                                    key,
                                    registered: index,
                                },
                            );
                        }
                        IssuerKeyAction::Revoke => {
                            if let Some(known) = self.issuer_keys.get(&key_id)
                                && known.org != org
                            {
                                return Err(bad(
                                    format!("issuer {org} revokes key {key_id} of {}", known.org),
                                    format!(
                                        "签发机构 {org} 撤销了属于 {} 的密钥 {key_id}",
                                        known.org
                                    ),
                                ));
                            }
                            self.issuer_revocations.entry(key_id).or_insert(index);
                        }
                    }
                }
                _ => {}
            }
        }
        self.passed(CheckName::DeviceKeys, device_events);
        self.passed(CheckName::IssuerKeys, issuer_events);
        Ok(())
    }

    fn batches(&mut self, entries: &BTreeMap<LeafIndex, Entry>) -> Result<(), Failure> {
        let bundle = self.bundle;
        let total: usize = bundle.batches.iter().map(|b| b.readings.len()).sum();
        let mut pending: Vec<PendingSignature<'_>> = Vec::with_capacity(total);
        let mut done = 0;
        for (b, batch) in bundle.batches.iter().enumerate() {
            let batch_item = Item::Batch {
                entry: batch.entry,
                line: self.lines.batches[b],
            };
            let entry = match entries.get(&batch.entry) {
                Some(Entry::ReadingBatch(entry)) => entry,
                Some(other) => {
                    return Err(fail(
                        CheckName::Readings,
                        batch_item,
                        Bilingual::new(
                            format!(
                                "entry {} is a {}, not a ReadingBatch",
                                batch.entry,
                                other.kind_name()
                            ),
                            format!(
                                "条目 {} 是 {}，不是读数批次（ReadingBatch）",
                                batch.entry,
                                other.kind_name()
                            ),
                        ),
                    ));
                }
                None => {
                    return Err(fail(
                        CheckName::Readings,
                        batch_item,
                        Bilingual::new(
                            format!("entry {} is not in the bundle", batch.entry),
                            format!("证据包中没有条目 {}", batch.entry),
                        ),
                    ));
                }
            };
            for (r, (position, bytes)) in batch.readings.iter().enumerate() {
                let item = Item::Reading {
                    entry: batch.entry,
                    position: *position,
                    line: self.lines.first_readings[b] + r,
                };
                let bad = |en: String, zh: String| {
                    fail(CheckName::Readings, item, Bilingual::new(en, zh))
                };
                let signed = SignedReading::decode(bytes).map_err(|e| {
                    bad(
                        format!("not a signed reading: {e}"),
                        format!("不是已签名的传感器读数：{e}"),
                    )
                })?;
                let reading = *signed.reading();
                let (device, epoch) = (reading.device, reading.key_epoch);
                if entry.devices.binary_search(&device).is_err() {
                    return Err(bad(
                        format!("device {device} is not among the batch entry's devices"),
                        format!("设备 {device} 不在该批次条目的设备列表中"),
                    ));
                }
                if !(entry.device_time_first_ms..=entry.device_time_last_ms)
                    .contains(&reading.device_time_ms)
                {
                    return Err(bad(
                        format!(
                            "device time {} ms is outside the batch's {}..={} ms",
                            reading.device_time_ms,
                            entry.device_time_first_ms,
                            entry.device_time_last_ms
                        ),
                        format!(
                            "设备时间 {} 毫秒不在批次的 {}..={} 毫秒范围内",
                            reading.device_time_ms,
                            entry.device_time_first_ms,
                            entry.device_time_last_ms
                        ),
                    ));
                }
                let key = self
                    .device_key(device, epoch, batch.entry)
                    .map_err(|why| fail(CheckName::Readings, item, why))?;
                *self.device_readings.entry(device).or_default() += 1;
                pending.push(PendingSignature {
                    batch: b,
                    reading: r,
                    signed,
                    key,
                });
                done += 1;
                if done % 4096 == 0 {
                    self.progress(Phase::Readings, done, total);
                }
            }
            if u64::from(entry.reading_count) != batch.size.0 {
                return Err(fail(
                    CheckName::Readings,
                    batch_item,
                    Bilingual::new(
                        format!(
                            "the entry counts {} readings, the bundle says {}",
                            entry.reading_count, batch.size
                        ),
                        format!(
                            "条目记录 {} 条读数，证据包写的是 {}",
                            entry.reading_count, batch.size
                        ),
                    ),
                ));
            }
        }
        self.passed(CheckName::Readings, total);

        self.signatures(&pending)?;
        self.passed(CheckName::ReadingSignatures, pending.len());

        for (b, batch) in bundle.batches.iter().enumerate() {
            let known: Vec<(LeafIndex, Hash)> = batch
                .readings
                .iter()
                .map(|(position, bytes)| (*position, leaf_hash(bytes)))
                .collect();
            let root = root_from_subset(batch.size, &known, &batch.proof);
            let expected = match entries.get(&batch.entry) {
                Some(Entry::ReadingBatch(entry)) => Some(entry.batch_root),
                _ => None,
            };
            if root.ok() != expected {
                let why = match root {
                    Err(e) => format!("{e}"),
                    Ok(root) => format!("it leads to root {root}"),
                };
                return Err(fail(
                    CheckName::BatchProofs,
                    Item::Batch {
                        entry: batch.entry,
                        line: self.lines.batches[b],
                    },
                    Bilingual::new(
                        format!(
                            "the readings and the subset proof do not give the entry's batch root ({why})"
                        ),
                        format!("这些读数与子集证明不能得出条目的批次根哈希（{why}）"),
                    ),
                ));
            }
        }
        self.passed(CheckName::BatchProofs, bundle.batches.len());
        Ok(())
    }

    /// The key of `device` at `epoch` valid for an entry at `at`.
    fn device_key(
        &self,
        device: DeviceId,
        epoch: KeyEpoch,
        at: LeafIndex,
    ) -> Result<VerifyingKey, Bilingual> {
        let e = epoch.0;
        let Some(key) = self.device_keys.get(&(device, epoch)) else {
            return Err(Bilingual::new(
                format!(
                    "device {device} has no key of epoch {e} in the bundle (its key entries are missing)"
                ),
                format!("证据包中没有设备 {device} 第 {e} 代的设备密钥（缺少其密钥条目）"),
            ));
        };
        if key.registered > at {
            return Err(Bilingual::new(
                format!(
                    "device {device} key epoch {e} was registered at entry {}, after the batch entry {at}",
                    key.registered
                ),
                format!(
                    "设备 {device} 第 {e} 代密钥在条目 {} 注册，晚于批次条目 {at}",
                    key.registered
                ),
            ));
        }
        if let Some(revoked) = self.device_revocations.get(&(device, epoch))
            && *revoked < at
        {
            return Err(Bilingual::new(
                format!(
                    "device {device} key epoch {e} was revoked at entry {revoked}, before the batch entry {at}"
                ),
                format!("设备 {device} 第 {e} 代密钥已在条目 {revoked} 撤销，早于批次条目 {at}"),
            ));
        }
        Ok(key.key)
    }

    /// Batch-verifies every reading signature (chunks in parallel), naming the first bad one.
    fn signatures(&mut self, pending: &[PendingSignature<'_>]) -> Result<(), Failure> {
        let total = pending.len();
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
        let round = SIGNATURE_CHUNK * workers * 4;
        let mut done = 0;
        for group in pending.chunks(round) {
            let bad = std::thread::scope(|scope| {
                let handles: Vec<_> = group
                    .chunks(group.len().div_ceil(workers).max(1))
                    .map(|part| {
                        scope.spawn(move || {
                            part.chunks(SIGNATURE_CHUNK)
                                .enumerate()
                                .find_map(|(c, chunk)| {
                                    first_bad_signature(chunk).map(|i| c * SIGNATURE_CHUNK + i)
                                })
                        })
                    })
                    .collect();
                let mut offset = 0;
                let mut first = None;
                let step = group.len().div_ceil(workers).max(1);
                for handle in handles {
                    // A panic in a worker is a bug; report it as a bad signature at the
                    // start of its part rather than crash.
                    let found = handle.join().unwrap_or(Some(0));
                    if first.is_none() {
                        first = found.map(|i| offset + i);
                    }
                    offset += step;
                }
                first
            });
            if let Some(i) = bad {
                let p = &group[i];
                let batch = &self.bundle.batches[p.batch];
                let reading = p.signed.reading();
                let (device, epoch) = (reading.device, reading.key_epoch.0);
                return Err(fail(
                    CheckName::ReadingSignatures,
                    Item::Reading {
                        entry: batch.entry,
                        position: batch.readings[p.reading].0,
                        line: self.lines.first_readings[p.batch] + p.reading,
                    },
                    Bilingual::new(
                        format!(
                            "the signature does not verify under device {device}'s key of epoch {epoch}"
                        ),
                        format!("签名无法用设备 {device} 第 {epoch} 代设备密钥验证"),
                    ),
                ));
            }
            done += group.len();
            self.progress(Phase::Signatures, done, total);
        }
        Ok(())
    }

    fn events(&mut self, entries: &BTreeMap<LeafIndex, Entry>) -> Result<(), Failure> {
        let bundle = self.bundle;
        for (i, event) in bundle.events.iter().enumerate() {
            let item = Item::Event {
                entry: event.entry,
                line: self.lines.events[i],
            };
            let bad =
                |en: String, zh: String| fail(CheckName::Events, item, Bilingual::new(en, zh));
            let trace = match entries.get(&event.entry) {
                Some(Entry::TraceEvent(trace)) => trace,
                Some(other) => {
                    return Err(bad(
                        format!(
                            "entry {} is a {}, not a TraceEvent",
                            event.entry,
                            other.kind_name()
                        ),
                        format!(
                            "条目 {} 是 {}，不是业务事件（TraceEvent）",
                            event.entry,
                            other.kind_name()
                        ),
                    ));
                }
                None => {
                    return Err(bad(
                        format!("entry {} is not in the bundle", event.entry),
                        format!("证据包中没有条目 {}", event.entry),
                    ));
                }
            };
            let document = parse_document(&event.event_json).map_err(|e| {
                bad(
                    format!("not an EPCIS 2.0 event: {e}"),
                    format!("不是 EPCIS 2.0 事件：{e}"),
                )
            })?;
            let parsed = match (document.kind(), document.events()) {
                (DocumentKind::SingleEvent, [parsed]) => parsed,
                _ => {
                    return Err(bad(
                        String::from("not one EPCIS event object"),
                        String::from("不是单个 EPCIS 事件对象"),
                    ));
                }
            };
            let hash = event_hash(parsed, document.context());
            if salted_commitment(&event.salt, hash.digest()) != trace.commitment {
                return Err(bad(
                    format!(
                        "its canonical event hash {hash} and salt do not give the entry's commitment"
                    ),
                    format!("其规范事件哈希 {hash} 与盐值不能得出条目的承诺值"),
                ));
            }
            if log_event_type(parsed.event_type()) != trace.event_type {
                return Err(bad(
                    format!(
                        "it is an {}, the entry says {}",
                        parsed.event_type(),
                        trace.event_type.name()
                    ),
                    format!(
                        "事件类型为 {}，而条目记录为 {}",
                        parsed.event_type(),
                        trace.event_type.name()
                    ),
                ));
            }
            let time =
                parse_timestamp(parsed.event_time()).and_then(|t| u64::try_from(t.unix_ms).ok());
            if time != Some(trace.event_time_ms) {
                return Err(bad(
                    format!(
                        "its eventTime {} is not the entry's {} ms",
                        parsed.event_time(),
                        trace.event_time_ms
                    ),
                    format!(
                        "其 eventTime {} 与条目记录的 {} 毫秒不符",
                        parsed.event_time(),
                        trace.event_time_ms
                    ),
                ));
            }
            self.report.events.push(EventSummary {
                entry: event.entry,
                event_type: trace.event_type.name(),
                biz_step: trace.biz_step.as_str().to_owned(),
                event_time_ms: trace.event_time_ms,
                event_hash: hash.as_str().to_owned(),
            });
        }
        self.passed(CheckName::Events, bundle.events.len());
        Ok(())
    }

    /// Why the anchor at `at` is not validly signed, if it is not.
    fn anchor_signature(&self, anchor: &DocumentAnchor, at: LeafIndex) -> Result<(), Bilingual> {
        let (id, org) = (anchor.issuer_key_id, anchor.issuer_org.as_str());
        let Some(key) = self.issuer_keys.get(&id) else {
            return Err(Bilingual::new(
                format!("issuer key {id} of {org} has no registration in the bundle"),
                format!("证据包中没有签发机构 {org} 的密钥 {id} 的注册"),
            ));
        };
        if key.org != org {
            return Err(Bilingual::new(
                format!("issuer key {id} is registered to {}, not to {org}", key.org),
                format!("签发机构密钥 {id} 注册给 {}，而不是 {org}", key.org),
            ));
        }
        if key.registered > at {
            return Err(Bilingual::new(
                format!(
                    "issuer key {id} was registered at entry {}, after the anchor",
                    key.registered
                ),
                format!(
                    "签发机构密钥 {id} 在条目 {} 注册，晚于该锚定",
                    key.registered
                ),
            ));
        }
        if let Some(revoked) = self.issuer_revocations.get(&id)
            && *revoked < at
        {
            return Err(Bilingual::new(
                format!("issuer key {id} was revoked at entry {revoked}, before the anchor"),
                format!("签发机构密钥 {id} 已在条目 {revoked} 撤销，早于该锚定"),
            ));
        }
        if !anchor.verify_issuer(&key.key) {
            return Err(Bilingual::new(
                format!("the issuer signature does not verify under key {id} of {org}"),
                format!("签发机构签名无法用 {org} 的密钥 {id} 验证"),
            ));
        }
        Ok(())
    }

    fn documents(&mut self, entries: &BTreeMap<LeafIndex, Entry>) -> Result<(), Failure> {
        let bundle = self.bundle;
        let anchors: Vec<(LeafIndex, &DocumentAnchor)> = entries
            .iter()
            .filter_map(|(i, e)| match e {
                Entry::DocumentAnchor(a) => Some((*i, a)),
                _ => None,
            })
            .collect();
        self.report.counts.anchors = count(anchors.len());
        for (i, document) in bundle.documents.iter().enumerate() {
            let item = Item::Document {
                entry: document.entry,
                line: self.lines.documents[i],
            };
            let bad =
                |en: String, zh: String| fail(CheckName::Documents, item, Bilingual::new(en, zh));
            let anchor = match entries.get(&document.entry) {
                Some(Entry::DocumentAnchor(anchor)) => anchor,
                Some(other) => {
                    return Err(bad(
                        format!(
                            "entry {} is a {}, not a DocumentAnchor",
                            document.entry,
                            other.kind_name()
                        ),
                        format!(
                            "条目 {} 是 {}，不是单证锚定（DocumentAnchor）",
                            document.entry,
                            other.kind_name()
                        ),
                    ));
                }
                None => {
                    return Err(bad(
                        format!("entry {} is not in the bundle", document.entry),
                        format!("证据包中没有条目 {}", document.entry),
                    ));
                }
            };
            let digest: [u8; 32] = Sha256::digest(&document.content).into();
            if salted_commitment(&document.salt, &digest) != anchor.commitment {
                return Err(bad(
                    String::from("its content and salt do not give the anchor's commitment"),
                    String::from("其内容与盐值不能得出锚定的承诺值"),
                ));
            }
            let signature = self.anchor_signature(anchor, document.entry);
            let status = anchors
                .iter()
                .filter(|(at, a)| *at > document.entry && a.issuer_org == anchor.issuer_org)
                .fold(DocumentStatus::Valid, |status, (at, a)| {
                    match (status, a.replaces) {
                        (DocumentStatus::Revoked(_), _) => status,
                        (_, Some(Replaces::Revokes(target))) if target == document.entry => {
                            DocumentStatus::Revoked(*at)
                        }
                        (DocumentStatus::Valid, Some(Replaces::Supersedes(target)))
                            if target == document.entry =>
                        {
                            DocumentStatus::Superseded(*at)
                        }
                        _ => status,
                    }
                });
            self.report.documents.push(DocumentSummary {
                entry: document.entry,
                document_type: anchor.document_type.as_str().to_owned(),
                number: document.number.clone(),
                media_type: document.media_type.clone(),
                issuer: anchor.issuer_org.as_str().to_owned(),
                bytes: count(document.content.len()),
                sha256: hex(&digest),
                status,
                signature_valid: signature.is_ok(),
            });
            signature.map_err(|why| fail(CheckName::AnchorSignatures, item, why))?;
        }
        self.passed(CheckName::Documents, bundle.documents.len());

        for (at, anchor) in &anchors {
            self.anchor_signature(anchor, *at)
                .map_err(|why| fail(CheckName::AnchorSignatures, self.entry_item(*at), why))?;
        }
        self.passed(CheckName::AnchorSignatures, anchors.len());
        Ok(())
    }

    fn seal(&mut self, log_key: &NoteVerifier) -> Result<(), Failure> {
        let item = Item::Seal {
            line: self.lines.seal,
        };
        let bad = |en: &str, zh: &str| fail(CheckName::Seal, item, Bilingual::new(en, zh));
        let note = Note::parse(self.bundle.seal.as_bytes())
            .map_err(|_| bad("the seal is not a signed note", "封印不是签名注记"))?;
        if note.text != EvidenceBundle::seal_text(&self.bundle.body_text()) {
            return Err(bad(
                "the bundle was changed after export (the seal's hash is not the file's)",
                "证据包在导出后被修改（封印中的哈希与文件不符）",
            ));
        }
        note.open(std::slice::from_ref(log_key)).map_err(|_| {
            bad(
                "the seal is not signed by the log key",
                "封印没有日志密钥的有效签名",
            )
        })?;
        self.passed(CheckName::Seal, 1);
        self.progress(Phase::Records, 1, 1);
        Ok(())
    }

    /// Fills the report's device and issuer lists from the key histories.
    fn summarise_keys(&mut self) {
        let mut devices: BTreeMap<DeviceId, DeviceSummary> = BTreeMap::new();
        for (&(device, epoch), key) in &self.device_keys {
            devices
                .entry(device)
                .or_insert_with(|| DeviceSummary {
                    device,
                    keys: Vec::new(),
                    readings: 0,
                })
                .keys
                .push(DeviceKeySummary {
                    epoch,
                    public_key: hex(key.key.as_bytes()),
                    registered: key.registered,
                    rotated: key.rotated,
                    revoked: self.device_revocations.get(&(device, epoch)).copied(),
                });
        }
        for (&device, &readings) in &self.device_readings {
            devices
                .entry(device)
                .or_insert_with(|| DeviceSummary {
                    device,
                    keys: Vec::new(),
                    readings: 0,
                })
                .readings = readings;
        }
        self.report.devices = devices.into_values().collect();
        let mut issuers: Vec<IssuerKeySummary> = self
            .issuer_keys
            .iter()
            .map(|(id, key)| IssuerKeySummary {
                org: key.org.clone(),
                key_id: id.to_hex(),
                registered: key.registered,
                revoked: self.issuer_revocations.get(id).copied(),
            })
            .collect();
        issuers.sort_by(|a, b| (&a.org, a.registered).cmp(&(&b.org, b.registered)));
        self.report.issuers = issuers;
    }
}
