//! The verification steps, each with a name a person can read in the report: from a signed
//! reading up its batch tree to a `ReadingBatch` entry ([`check_reading_proof`]), and from an
//! entry up the log to a cosigned checkpoint trusted under a policy ([`check_log_proof`]).
//!
//! Every function records the steps that passed in a [`Steps`] list and stops at the first
//! that fails, returning a [`Failure`] that names it. Nothing here reads files, the network or
//! the clock: the binary loads the inputs and prints the list.

use std::fmt::Display;

use ledger::checkpoint::Checkpoint;
use ledger::entry::{Entry, ReadingBatch};
use ledger::merkle::{Hash, LeafIndex, leaf_hash};
use ledger::note::{Note, NoteError};
use ledger::policy::{Policy, PolicyCheckError};
use ledger::proof::root_from_inclusion_path;
use ledger::tlog_proof::TlogProof;
use protocol::{Reading, SignedReading, VerifyingKey};

use crate::reading_proof::ReadingProof;

/// Parses a reading proof file's bytes as the step [`name::READ_READING_PROOF`]; a file that
/// does not parse fails the verification (it was read, and it is not a proof).
///
/// # Errors
/// The step's [`Failure`].
pub fn parse_reading_proof(bytes: &[u8], steps: &mut Steps) -> Result<ReadingProof, Failure> {
    let proof = ReadingProof::parse(bytes)
        .map_err(|e| Failure::not_verified(name::READ_READING_PROOF, e))?;
    steps.passed(
        name::READ_READING_PROOF,
        format!(
            "device {} sequence {}, batch position {} of {}, log index {}",
            proof.device,
            proof.sequence.0,
            proof.batch_position,
            proof.batch_size,
            proof.log_proof.index
        ),
    );
    Ok(proof)
}

/// Step names, as the report prints them.
pub mod name {
    /// Parsing a reading proof file.
    pub const READ_READING_PROOF: &str = "read reading proof";
    /// Parsing the checkpoint note of a tlog-proof.
    pub const PARSE_CHECKPOINT: &str = "parse checkpoint";
    /// Every signature by a key of the policy verifies.
    pub const CHECK_SIGNATURES: &str = "check signatures";
    /// A trusted log key named as the origin signed.
    pub const LOG_SIGNATURE: &str = "log signature";
    /// Enough witnesses cosigned.
    pub const WITNESS_QUORUM: &str = "witness quorum";
    /// The entry is in the checkpointed tree.
    pub const INCLUSION_PROOF: &str = "inclusion proof";
    /// The signed reading decodes (canonically).
    pub const DECODE_READING: &str = "decode signed reading";
    /// The reading is the one the file's header names.
    pub const DEVICE_AND_SEQUENCE: &str = "device and sequence";
    /// The device's Ed25519 signature (with a device key given).
    pub const DEVICE_SIGNATURE: &str = "device signature";
    /// `SHA-256(0x00 || signed reading)`.
    pub const READING_LEAF_HASH: &str = "reading leaf hash";
    /// The reading's RFC 9162 path to a batch root.
    pub const BATCH_PATH: &str = "batch path";
    /// The entry is a `ReadingBatch` for that root that lists the reading.
    pub const BATCH_ENTRY: &str = "batch entry";
}

/// How a step ended, when it did not fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Checked and found good.
    Passed,
    /// Not checked (an optional input was not given); the detail says why.
    Skipped,
}

/// One step that did not fail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// The step's name (one of [`name`]'s constants, or the caller's own).
    pub name: &'static str,
    /// Passed or skipped.
    pub outcome: Outcome,
    /// What was found, for the report.
    pub detail: String,
}

/// The steps that did not fail, in the order they ran.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Steps {
    steps: Vec<Step>,
}

impl Steps {
    /// An empty list.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a step that passed.
    pub fn passed(&mut self, name: &'static str, detail: impl Display) {
        self.steps.push(Step {
            name,
            outcome: Outcome::Passed,
            detail: detail.to_string(),
        });
    }

    /// Records a step that was not checked.
    pub fn skipped(&mut self, name: &'static str, detail: impl Display) {
        self.steps.push(Step {
            name,
            outcome: Outcome::Skipped,
            detail: detail.to_string(),
        });
    }

    /// The steps so far.
    #[must_use]
    pub fn as_slice(&self) -> &[Step] {
        &self.steps
    }
}

/// A failed step: which, and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("step \"{step}\" failed: {reason}")]
pub struct Failure {
    /// The step's name.
    pub step: &'static str,
    /// Why, in words.
    pub reason: String,
    /// The input could not be used at all (a missing file, a malformed key given as a flag),
    /// as opposed to input that was checked and found wrong.
    pub unusable_input: bool,
}

impl Failure {
    /// The proof was checked and is wrong at `step`.
    pub fn not_verified(step: &'static str, reason: impl Display) -> Self {
        Self {
            step,
            reason: reason.to_string(),
            unusable_input: false,
        }
    }

    /// The input for `step` cannot be used.
    pub fn unusable(step: &'static str, reason: impl Display) -> Self {
        Self {
            step,
            reason: reason.to_string(),
            unusable_input: true,
        }
    }
}

/// An entry proven to be in a checkpoint trusted under the policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProvenEntry {
    /// The entry's index in the log.
    pub index: LeafIndex,
    /// The checkpoint it is proven against.
    pub checkpoint: Checkpoint,
    /// The trusted log key that signed the checkpoint (`name+hash+base64`).
    pub log_key: String,
    /// Witnesses (policy names) whose cosignatures verified, with their timestamps.
    pub cosigned: Vec<(String, u64)>,
}

/// A reading proven to be in a checkpoint trusted under the policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProvenReading {
    /// The reading as the device signed it.
    pub reading: Reading,
    /// Whether the device's signature was checked (a device key was given).
    pub signature_checked: bool,
    /// The batch entry that anchors it.
    pub batch: ReadingBatch,
    /// The entry's place in the log.
    pub log: ProvenEntry,
}

/// Checks the log part of a proof: the tlog-proof's checkpoint is signed by a trusted log and
/// cosigned by a quorum of the policy's witnesses, and the entry whose RFC 9162 leaf hash is
/// `leaf` is at the proof's index in the checkpointed tree (RFC 9162 §2.1.3.2).
///
/// The steps are [`name::PARSE_CHECKPOINT`], [`name::CHECK_SIGNATURES`],
/// [`name::LOG_SIGNATURE`], [`name::WITNESS_QUORUM`] and [`name::INCLUSION_PROOF`].
///
/// # Errors
/// The [`Failure`] of the first step that fails.
pub fn check_log_proof(
    leaf: &Hash,
    proof: &TlogProof,
    policy: &Policy,
    steps: &mut Steps,
) -> Result<ProvenEntry, Failure> {
    use name::{
        CHECK_SIGNATURES, INCLUSION_PROOF, LOG_SIGNATURE, PARSE_CHECKPOINT, WITNESS_QUORUM,
    };

    let note = Note::parse(proof.checkpoint.as_bytes())
        .map_err(|e| Failure::not_verified(PARSE_CHECKPOINT, e))?;
    let checkpoint =
        Checkpoint::parse(&note.text).map_err(|e| Failure::not_verified(PARSE_CHECKPOINT, e))?;
    steps.passed(
        PARSE_CHECKPOINT,
        format!(
            "origin {}, size {}, root {}",
            checkpoint.origin, checkpoint.size, checkpoint.root
        ),
    );

    // The policy's own steps (the ones `Policy::verify_checkpoint` runs), one line each.
    let opened = policy.open_note(&note, &checkpoint).map_err(|e| match e {
        PolicyCheckError::Note(NoteError::BadSignature { name }) => Failure::not_verified(
            CHECK_SIGNATURES,
            format!("signature by trusted key {name} is invalid"),
        ),
        PolicyCheckError::NoLogSignature(_) => {
            Failure::not_verified(CHECK_SIGNATURES, "no signature by any trusted key")
        }
        other => Failure::not_verified(CHECK_SIGNATURES, other),
    })?;
    steps.passed(
        CHECK_SIGNATURES,
        format!(
            "{} by trusted keys valid, {} by unknown keys ignored",
            opened.verified.len(),
            opened.unknown.len()
        ),
    );

    let log = policy.log_signer(&checkpoint, &opened).map_err(|_| {
        Failure::not_verified(
            LOG_SIGNATURE,
            format!(
                "no valid signature by a trusted log key named {}",
                checkpoint.origin
            ),
        )
    })?;
    let log_key = log.to_vkey();
    steps.passed(LOG_SIGNATURE, format!("signed by {log_key}"));

    let listing = |cosigned: &[(String, u64)]| {
        if cosigned.is_empty() {
            String::from("no witness cosigned")
        } else {
            cosigned
                .iter()
                .map(|(n, t)| format!("{n} (time {t})"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    let cosigned = policy.check_quorum(&opened).map_err(|_| {
        let cosigned = policy.cosigned_witnesses(&opened.verified);
        Failure::not_verified(
            WITNESS_QUORUM,
            format!(
                "quorum {} not met: {}",
                policy.quorum_name(),
                listing(&cosigned)
            ),
        )
    })?;
    steps.passed(
        WITNESS_QUORUM,
        format!(
            "quorum {} met: {}",
            policy.quorum_name(),
            listing(&cosigned)
        ),
    );

    proof
        .inclusion_proof(&checkpoint)
        .verify(leaf, &checkpoint.root)
        .map_err(|e| {
            Failure::not_verified(
                INCLUSION_PROOF,
                format!("entry is not proven at index {}: {e}", proof.index),
            )
        })?;
    steps.passed(
        INCLUSION_PROOF,
        format!(
            "entry is leaf {} of the {}-entry tree",
            proof.index, checkpoint.size
        ),
    );
    Ok(ProvenEntry {
        index: proof.index,
        checkpoint,
        log_key,
        cosigned,
    })
}

/// Checks a reading proof: the signed reading decodes (canonical postcard, in-range fields)
/// and is the reading the header names; its device signature verifies under `device_key`
/// (`SIGNING_DOMAIN || body`, Ed25519 `verify_strict`; skipped without a key); its leaf
/// hash and batch path lead to a root that the proof's `ReadingBatch` entry names, for a batch
/// of that size that lists the device and the reading's time; then [`check_log_proof`] for
/// the entry.
///
/// # Errors
/// The [`Failure`] of the first step that fails.
pub fn check_reading_proof(
    proof: &ReadingProof,
    policy: &Policy,
    device_key: Option<&VerifyingKey>,
    steps: &mut Steps,
) -> Result<ProvenReading, Failure> {
    use name::{
        BATCH_ENTRY, BATCH_PATH, DECODE_READING, DEVICE_AND_SEQUENCE, DEVICE_SIGNATURE,
        READING_LEAF_HASH,
    };

    let signed = SignedReading::decode(&proof.signed_reading)
        .map_err(|e| Failure::not_verified(DECODE_READING, format!("not a signed reading: {e}")))?;
    let reading = *signed.reading();
    steps.passed(
        DECODE_READING,
        format!(
            "{} bytes: key epoch {}, device time {} ms, {} centi-°C, {} centi-%RH, door {:?}",
            proof.signed_reading.len(),
            reading.key_epoch.0,
            reading.device_time_ms,
            reading.temperature_centi_c,
            reading.humidity_centi_pct,
            reading.door,
        ),
    );

    if reading.device != proof.device || reading.sequence != proof.sequence {
        return Err(Failure::not_verified(
            DEVICE_AND_SEQUENCE,
            format!(
                "the file names device {} sequence {}, the signed reading device {} sequence {}",
                proof.device, proof.sequence.0, reading.device, reading.sequence.0
            ),
        ));
    }
    steps.passed(
        DEVICE_AND_SEQUENCE,
        format!(
            "device {} sequence {}, as the file names",
            reading.device, reading.sequence.0
        ),
    );

    let signature_checked = match device_key {
        Some(key) => {
            signed.verify(key).map_err(|_| {
                Failure::not_verified(
                    DEVICE_SIGNATURE,
                    format!(
                        "the signature does not verify under the device key given (key epoch {})",
                        reading.key_epoch.0
                    ),
                )
            })?;
            steps.passed(
                DEVICE_SIGNATURE,
                format!(
                    "Ed25519 signature by the given key (key epoch {}) valid",
                    reading.key_epoch.0
                ),
            );
            true
        }
        None => {
            steps.skipped(DEVICE_SIGNATURE, "no --device-key given");
            false
        }
    };

    let leaf = leaf_hash(&proof.signed_reading);
    steps.passed(READING_LEAF_HASH, leaf);

    let root = root_from_inclusion_path(
        proof.batch_position,
        proof.batch_size,
        &leaf,
        &proof.batch_path,
    )
    .map_err(|e| {
        Failure::not_verified(
            BATCH_PATH,
            format!(
                "no path from position {} of a {}-reading batch: {e}",
                proof.batch_position, proof.batch_size
            ),
        )
    })?;
    steps.passed(
        BATCH_PATH,
        format!(
            "position {} of {} readings leads to root {root}",
            proof.batch_position, proof.batch_size
        ),
    );

    let batch = match Entry::decode(&proof.entry) {
        Ok(Entry::ReadingBatch(batch)) => batch,
        Ok(other) => {
            return Err(Failure::not_verified(
                BATCH_ENTRY,
                format!("the entry is a {}, not a ReadingBatch", other.kind_name()),
            ));
        }
        Err(e) => {
            return Err(Failure::not_verified(
                BATCH_ENTRY,
                format!("not a valid log entry: {e}"),
            ));
        }
    };
    let wrong = |reason: String| Failure::not_verified(BATCH_ENTRY, reason);
    if batch.batch_root != root {
        return Err(wrong(format!(
            "the entry's batch root {} is not the root {root} the reading's batch path leads to",
            batch.batch_root
        )));
    }
    if u64::from(batch.reading_count) != proof.batch_size.0 {
        return Err(wrong(format!(
            "the entry counts {} readings, the batch path is for {}",
            batch.reading_count, proof.batch_size
        )));
    }
    if batch.devices.binary_search(&reading.device).is_err() {
        return Err(wrong(format!(
            "the entry does not list device {}",
            reading.device
        )));
    }
    if !(batch.device_time_first_ms..=batch.device_time_last_ms).contains(&reading.device_time_ms) {
        return Err(wrong(format!(
            "the reading's device time {} ms is outside the batch's {}..={} ms",
            reading.device_time_ms, batch.device_time_first_ms, batch.device_time_last_ms
        )));
    }
    steps.passed(
        BATCH_ENTRY,
        format!(
            "ReadingBatch of {} readings from {} device(s), root matches, closed at {} ms",
            batch.reading_count,
            batch.devices.len(),
            batch.ingest_time_ms
        ),
    );

    let log = check_log_proof(&leaf_hash(&proof.entry), &proof.log_proof, policy, steps)?;
    Ok(ProvenReading {
        reading,
        signature_checked,
        batch,
        log,
    })
}

/// Why a `--device-key` value is not a usable key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DeviceKeyError {
    /// Not 64 hex digits.
    #[error("a device key is 64 hex digits (32 bytes)")]
    Hex,
    /// The bytes are not an Ed25519 public key, or a weak (small-order) one.
    #[error("the bytes are not a usable Ed25519 public key")]
    Key,
}

/// Parses an Ed25519 public key written as 64 hex digits (either case), refusing keys of small
/// order (no signature by them means anything).
///
/// # Errors
/// [`DeviceKeyError`].
pub fn parse_device_key(text: &str) -> Result<VerifyingKey, DeviceKeyError> {
    // 64 hex digits are 32 bytes, the length of a hash and of an Ed25519 public key alike.
    let bytes = Hash::from_hex(text).map_err(|_| DeviceKeyError::Hex)?.0;
    let key = VerifyingKey::from_bytes(&bytes).map_err(|_| DeviceKeyError::Key)?;
    if key.is_weak() {
        return Err(DeviceKeyError::Key);
    }
    Ok(key)
}
