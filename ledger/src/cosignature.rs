//! C2SP tlog-cosignature `cosignature/v1` (Ed25519, key type `0x04`): a witness's timestamped
//! statement that a checkpoint is the largest consistent tree head it has seen for that origin.
//!
//! Signature bytes on the note line: `key ID (4) || timestamp (8, big-endian) || Ed25519 (64)`;
//! the signed message is `cosignature/v1\ntime <secs>\n` followed by the checkpoint note text.
//! Key ID: `SHA-256(name || "\n" || 0x04 || public key)[:4]`. The signing and verification
//! themselves live in `note` (`KeyType::CosignatureV1`); this module adds the checkpoint-level
//! checks.

use alloc::string::String;

use crate::checkpoint::{Checkpoint, CheckpointError};
use crate::note::{KeyType, NoteError, NoteSignature, NoteSigner, NoteVerifier};

/// Why a cosignature could not be made or did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CosignatureError {
    /// The key is not a `cosignature/v1` key.
    #[error("key {0} is not a cosignature/v1 (type 0x04) key")]
    NotACosigner(String),
    /// The text is not a checkpoint.
    #[error("cosigned text is not a checkpoint: {0}")]
    Checkpoint(#[from] CheckpointError),
    /// The signature line names another key.
    #[error("signature line is by another key")]
    OtherKey,
    /// Signing or verification failed.
    #[error("{0}")]
    Note(#[from] NoteError),
}

/// Cosigns checkpoint note text at `timestamp` (POSIX seconds, passed in by the caller).
pub fn cosign(
    checkpoint_text: &str,
    signer: &NoteSigner,
    timestamp: u64,
) -> Result<NoteSignature, CosignatureError> {
    if signer.key_type() != KeyType::CosignatureV1 {
        return Err(CosignatureError::NotACosigner(String::from(signer.name())));
    }
    Checkpoint::parse(checkpoint_text)?;
    Ok(signer.sign(checkpoint_text, timestamp)?)
}

/// Verifies one cosignature line over checkpoint note text; returns its timestamp.
pub fn verify_cosignature(
    checkpoint_text: &str,
    signature: &NoteSignature,
    verifier: &NoteVerifier,
) -> Result<u64, CosignatureError> {
    if verifier.key_type() != KeyType::CosignatureV1 {
        return Err(CosignatureError::NotACosigner(String::from(
            verifier.name(),
        )));
    }
    if !verifier.matches(signature) {
        return Err(CosignatureError::OtherKey);
    }
    Checkpoint::parse(checkpoint_text)?;
    let mut note = crate::note::Note::new(checkpoint_text)?;
    note.signatures.push(signature.clone());
    let opened = note.open(core::slice::from_ref(verifier))?;
    opened
        .verified
        .first()
        .and_then(|v| v.timestamp)
        .ok_or(CosignatureError::OtherKey)
}
