//! Building evidence bundles for tests and benchmarks: a log held in memory (entries, RFC 9162
//! proofs from the same tile code the node uses, checkpoints signed by a log key and cosigned
//! by witness keys), devices that sign real readings with per-epoch keys, reading batches with
//! their `ReadingBatch` entries and subset proofs, and the seal.
//!
//! Self-contained (no `super::`), so a benchmark can include it with `#[path]`.
// Each user takes a different part.
#![allow(dead_code)]

use agritrace_verify::evidence::{
    BundleBatch, BundleCheckpoint, BundleDocument, BundleEntry, BundleEvent, EvidenceBundle,
    Subject,
};
use ledger::checkpoint::Checkpoint;
use ledger::cosignature::cosign;
use ledger::entry::{
    DocumentAnchor, Entry, IssuerKeyAction, IssuerKeyEvent, KeyAction, KeyEvent, ReadingBatch,
    Replaces, Token, document_anchor_message, issuer_key_message, key_rotation_message,
    salted_commitment,
};
use ledger::merkle::{
    Hash, LeafIndex, TreeSize, inclusion_path_in, leaf_hash, root_from_leaf_hashes,
};
use ledger::note::{KeyType, Note, NoteSigner, SigningKey, sign_note};
use ledger::proof::consistency_proof;
use ledger::subset_proof::subset_proof;
use ledger::tile::{InMemoryTiles, TileAppender};
use protocol::limits::SIGNED_READING_BYTES_MAX;
use protocol::{DeviceId, DoorState, KeyEpoch, Reading, SequenceNumber, encode_signed_reading};
use sha2::{Digest as _, Sha256};

/// The log's origin.
pub const ORIGIN: &str = "agritrace.evidence/log";
/// The witnesses' key names.
pub const WITNESSES: [&str; 2] = ["customs-cn.evidence/w", "customs-th.evidence/w"];

/// The log key.
pub fn log_key() -> NoteSigner {
    NoteSigner::new(ORIGIN, KeyType::Ed25519, SigningKey::from_bytes(&[5; 32])).expect("log key")
}

/// Witness `i`'s cosigning key.
pub fn witness_key(i: usize) -> NoteSigner {
    let seed = 60 + u8::try_from(i).expect("few witnesses");
    NoteSigner::new(
        WITNESSES[i],
        KeyType::CosignatureV1,
        SigningKey::from_bytes(&[seed; 32]),
    )
    .expect("witness key")
}

/// The policy: the log, two customs witnesses, both must cosign.
pub fn policy() -> String {
    format!(
        "log {}\nwitness customs-cn {}\nwitness customs-th {}\ngroup customs all customs-cn customs-th\nquorum customs\n",
        log_key().verifier().to_vkey(),
        witness_key(0).verifier().to_vkey(),
        witness_key(1).verifier().to_vkey()
    )
}

/// A device's signing key of `epoch`.
pub fn device_signing_key(device: DeviceId, epoch: KeyEpoch) -> SigningKey {
    let seed = device.0[0] ^ device.0[7] ^ u8::try_from(epoch.0 % 251).expect("small");
    SigningKey::from_bytes(&[seed; 32])
}

/// A signed reading of `device` at `epoch`.
pub fn signed_reading(device: DeviceId, epoch: KeyEpoch, sequence: u64, time_ms: u64) -> Vec<u8> {
    let reading = Reading {
        device,
        key_epoch: epoch,
        sequence: SequenceNumber(sequence),
        device_time_ms: time_ms,
        temperature_centi_c: 350 + i16::try_from(sequence % 100).expect("small"),
        humidity_centi_pct: 8_500,
        position: None,
        door: DoorState::Closed,
        shock_events: 0,
        battery_mv: 3_600,
        dropped_samples: 0,
    };
    let mut out = [0u8; SIGNED_READING_BYTES_MAX];
    let len = encode_signed_reading(&reading, &device_signing_key(device, epoch), &mut out)
        .expect("an in-range reading");
    out[..len].to_vec()
}

/// `KeyEvent` registering `device`'s first key (epoch 1).
pub fn register_device(device: DeviceId) -> Entry {
    Entry::KeyEvent(KeyEvent {
        device_id: device,
        key_epoch: KeyEpoch(1),
        action: KeyAction::Register,
        public_key: device_signing_key(device, KeyEpoch(1))
            .verifying_key()
            .to_bytes(),
        effective_time_ms: 1_780_000_000_000,
        rotation_signature: None,
    })
}

/// `KeyEvent` rotating `device` to `epoch`, signed by the key of `epoch - 1`.
pub fn rotate_device(device: DeviceId, epoch: KeyEpoch) -> Entry {
    use ed25519_dalek::Signer as _;
    let new_key = device_signing_key(device, epoch).verifying_key().to_bytes();
    let old = device_signing_key(device, KeyEpoch(epoch.0 - 1));
    let signature = old.sign(&key_rotation_message(device, epoch, &new_key));
    Entry::KeyEvent(KeyEvent {
        device_id: device,
        key_epoch: epoch,
        action: KeyAction::Rotate,
        public_key: new_key,
        effective_time_ms: 1_780_000_100_000,
        rotation_signature: Some(signature.to_bytes()),
    })
}

/// `KeyEvent` revoking `device`'s key of `epoch`.
pub fn revoke_device(device: DeviceId, epoch: KeyEpoch) -> Entry {
    Entry::KeyEvent(KeyEvent {
        device_id: device,
        key_epoch: epoch,
        action: KeyAction::Revoke,
        public_key: device_signing_key(device, epoch).verifying_key().to_bytes(),
        effective_time_ms: 1_780_000_200_000,
        rotation_signature: None,
    })
}

/// An organisation's document-signing key.
pub fn issuer_signing_key(org: &str) -> SigningKey {
    let seed = org
        .bytes()
        .fold(17u8, |a, b| a.wrapping_mul(31).wrapping_add(b));
    SigningKey::from_bytes(&[seed; 32])
}

/// `IssuerKeyEvent` registering `org`'s key, with proof of possession.
pub fn register_issuer(org: &str) -> Entry {
    use ed25519_dalek::Signer as _;
    let key = issuer_signing_key(org);
    let issuer_org = Token::new(org).expect("org token");
    let public_key = key.verifying_key().to_bytes();
    let signature = key.sign(&issuer_key_message(&issuer_org, &public_key));
    Entry::IssuerKeyEvent(IssuerKeyEvent {
        issuer_org,
        action: IssuerKeyAction::Register,
        public_key,
        effective_time_ms: 1_780_000_000_000,
        possession_signature: Some(signature.to_bytes()),
    })
}

/// `IssuerKeyEvent` revoking `org`'s key.
pub fn revoke_issuer(org: &str) -> Entry {
    Entry::IssuerKeyEvent(IssuerKeyEvent {
        issuer_org: Token::new(org).expect("org token"),
        action: IssuerKeyAction::Revoke,
        public_key: issuer_signing_key(org).verifying_key().to_bytes(),
        effective_time_ms: 1_780_000_300_000,
        possession_signature: None,
    })
}

/// A document and the salt of its anchor.
#[derive(Clone, Debug)]
pub struct Document {
    /// The anchor's salt.
    pub salt: [u8; 32],
    /// Document type.
    pub document_type: String,
    /// The issuer's number.
    pub number: String,
    /// The content.
    pub content: Vec<u8>,
}

/// The `DocumentAnchor` of `document` by `org`, signed with `org`'s key.
pub fn anchor(org: &str, document: &Document, replaces: Option<Replaces>) -> Entry {
    anchor_signed_by(org, &issuer_signing_key(org), document, replaces)
}

/// The anchor of `document` naming `org`'s key, but signed with `key`.
pub fn anchor_signed_by(
    org: &str,
    key: &SigningKey,
    document: &Document,
    replaces: Option<Replaces>,
) -> Entry {
    use ed25519_dalek::Signer as _;
    let digest: [u8; 32] = Sha256::digest(&document.content).into();
    let commitment = salted_commitment(&document.salt, &digest);
    let document_type = Token::new(&document.document_type).expect("type token");
    let issuer_org = Token::new(org).expect("org token");
    let signature = key.sign(&document_anchor_message(
        &commitment,
        &document_type,
        &issuer_org,
        replaces,
    ));
    Entry::DocumentAnchor(DocumentAnchor {
        commitment,
        document_type,
        issuer_org,
        issuer_key_id: DocumentAnchor::key_id(&issuer_signing_key(org).verifying_key().to_bytes()),
        issuer_signature: signature.to_bytes(),
        replaces,
    })
}

/// A batch of signed readings and its entry.
#[derive(Clone, Debug)]
pub struct Batch {
    /// Signed readings in batch order.
    pub readings: Vec<Vec<u8>>,
    /// Their leaf hashes.
    pub leaves: Vec<Hash>,
    /// The entry.
    pub entry: Entry,
}

/// The batch of `readings` (in this order), closed at `ingest_time_ms`.
pub fn batch(readings: Vec<Vec<u8>>, ingest_time_ms: u64) -> Batch {
    let leaves: Vec<Hash> = readings.iter().map(|r| leaf_hash(r)).collect();
    let decoded: Vec<Reading> = readings
        .iter()
        .map(|r| {
            *protocol::SignedReading::decode(r)
                .expect("decodes")
                .reading()
        })
        .collect();
    let mut devices: Vec<DeviceId> = decoded.iter().map(|r| r.device).collect();
    devices.sort_unstable();
    devices.dedup();
    let entry = Entry::ReadingBatch(ReadingBatch {
        batch_root: root_from_leaf_hashes(&leaves),
        reading_count: u32::try_from(readings.len()).expect("batch size"),
        device_time_first_ms: decoded
            .iter()
            .map(|r| r.device_time_ms)
            .min()
            .expect("readings"),
        device_time_last_ms: decoded
            .iter()
            .map(|r| r.device_time_ms)
            .max()
            .expect("readings"),
        ingest_time_ms,
        devices,
    });
    Batch {
        readings,
        leaves,
        entry,
    }
}

impl Batch {
    /// The bundle's part for the readings at `positions` (ascending), the batch entry at `at`.
    pub fn bundled(&self, at: LeafIndex, positions: &[usize]) -> BundleBatch {
        let indexes: Vec<LeafIndex> = positions
            .iter()
            .map(|p| LeafIndex(u64::try_from(*p).expect("small")))
            .collect();
        BundleBatch {
            entry: at,
            size: TreeSize(u64::try_from(self.readings.len()).expect("small")),
            readings: indexes
                .iter()
                .zip(positions)
                .map(|(i, p)| (*i, self.readings[*p].clone()))
                .collect(),
            proof: subset_proof(&self.leaves, &indexes).expect("subset"),
        }
    }
}

/// A log held in memory.
#[derive(Clone, Debug, Default)]
pub struct MemoryLog {
    /// Entries in log order, exact bytes.
    pub entries: Vec<Vec<u8>>,
}

impl MemoryLog {
    /// Appends `entry`, returning its index.
    pub fn push(&mut self, entry: &Entry) -> LeafIndex {
        self.entries.push(entry.encode().expect("a valid entry"));
        LeafIndex(u64::try_from(self.entries.len() - 1).expect("small"))
    }

    /// Its size.
    pub fn size(&self) -> usize {
        self.entries.len()
    }

    fn leaves(&self, size: usize) -> Vec<Hash> {
        self.entries[..size].iter().map(|e| leaf_hash(e)).collect()
    }

    /// The checkpoint of the first `size` entries, signed by the log and cosigned by `cosigners`.
    pub fn checkpoint(&self, size: usize, cosigners: &[NoteSigner]) -> String {
        let checkpoint = Checkpoint {
            origin: ORIGIN.into(),
            size: TreeSize(u64::try_from(size).expect("small")),
            root: root_from_leaf_hashes(&self.leaves(size)),
            extensions: vec![],
        };
        let mut note =
            Note::parse(checkpoint.sign(&log_key()).expect("sign").as_bytes()).expect("note");
        for witness in cosigners {
            note.signatures
                .push(cosign(&note.text, witness, 1_780_000_500).expect("cosign"));
        }
        note.to_text()
    }

    /// The checkpoint cosigned by both witnesses.
    pub fn cosigned(&self, size: usize) -> String {
        self.checkpoint(size, &[witness_key(0), witness_key(1)])
    }

    /// Inclusion path of `index` in the tree of `size`.
    pub fn inclusion(&self, index: LeafIndex, size: usize) -> Vec<Hash> {
        inclusion_path_in(&self.leaves(size), usize::try_from(index.0).expect("small"))
            .expect("in the tree")
    }

    /// Consistency proof from `old` to `new` (from tiles, as the node makes it).
    pub fn consistency(&self, old: usize, new: usize) -> Vec<Hash> {
        let mut tiles = InMemoryTiles::new();
        let outcome = TileAppender::new().append(&self.leaves(new));
        tiles.store_all(&outcome.changed_tiles);
        consistency_proof(
            TreeSize(u64::try_from(old).expect("small")),
            TreeSize(u64::try_from(new).expect("small")),
            &tiles,
        )
        .expect("consistency proof")
        .path
    }

    /// Every entry of the log with its inclusion path in the tree of `size`.
    pub fn bundled_entries(&self, size: usize) -> Vec<BundleEntry> {
        (0..size)
            .map(|i| {
                let index = LeafIndex(u64::try_from(i).expect("small"));
                BundleEntry {
                    index,
                    bytes: self.entries[i].clone(),
                    inclusion: self.inclusion(index, size),
                }
            })
            .collect()
    }
}

/// An event line: the salt and the event JSON.
pub fn bundled_event(at: LeafIndex, salt: [u8; 32], json: &str) -> BundleEvent {
    BundleEvent {
        entry: at,
        salt,
        event_json: json.as_bytes().to_vec(),
    }
}

/// A document line.
pub fn bundled_document(at: LeafIndex, document: &Document, media_type: &str) -> BundleDocument {
    BundleDocument {
        entry: at,
        salt: document.salt,
        number: document.number.clone(),
        media_type: media_type.to_owned(),
        content: document.content.clone(),
    }
}

/// A bundle with these parts and the policy of [`policy`], sealed by the log key.
pub fn sealed(
    subject: Subject,
    checkpoints: Vec<BundleCheckpoint>,
    entries: Vec<BundleEntry>,
    batches: Vec<BundleBatch>,
    events: Vec<BundleEvent>,
    documents: Vec<BundleDocument>,
) -> EvidenceBundle {
    let mut bundle = EvidenceBundle {
        subject,
        exported_ms: 1_780_000_900_000,
        policy: policy().into_bytes(),
        checkpoints,
        entries,
        batches,
        events,
        documents,
        seal: String::new(),
    };
    reseal(&mut bundle);
    bundle
}

/// Signs the bundle's seal again (after a test changed it on purpose).
pub fn reseal(bundle: &mut EvidenceBundle) {
    let text = EvidenceBundle::seal_text(&bundle.body_text());
    bundle.seal = sign_note(&text, &[&log_key()], 0).expect("seal");
}
