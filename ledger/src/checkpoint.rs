//! C2SP tlog-checkpoint: the note text of a signed tree head (origin line, decimal tree size,
//! base64 root hash, optional extension lines) and opening a signed checkpoint with the log's
//! key and witness cosigner keys.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::merkle::{Hash, TreeSize};
use crate::note::{KeyType, Note, NoteError, NoteSigner, NoteVerifier, VerifiedSignature};

/// Largest checkpoint text accepted, in bytes.
pub const MAX_CHECKPOINT_TEXT_BYTES: usize = 4096;
/// Most extension lines accepted.
pub const MAX_CHECKPOINT_EXTENSIONS: usize = 16;

/// A log's tree head at one size (c2sp.org/tlog-checkpoint "Note text").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's identity, e.g. `agritrace.example/log/2026`.
    pub origin: String,
    /// Number of entries.
    pub size: TreeSize,
    /// RFC 9162 root hash at that size.
    pub root: Hash,
    /// Opaque, non-empty extension lines (not recommended; kept verbatim).
    pub extensions: Vec<String>,
}

/// Why checkpoint text was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    /// Larger than `MAX_CHECKPOINT_TEXT_BYTES`.
    #[error("checkpoint text is larger than {MAX_CHECKPOINT_TEXT_BYTES} bytes")]
    TooLarge,
    /// Not newline-terminated lines, fewer than three lines, or an empty line.
    #[error("checkpoint must be at least three non-empty newline-terminated lines")]
    Lines,
    /// The origin line is empty or holds a control character.
    #[error("checkpoint origin must be a non-empty line")]
    Origin,
    /// The size line is not a decimal without leading zeroes that fits 64 bits.
    #[error("checkpoint size must be a decimal without leading zeroes")]
    Size,
    /// The root line is not base64 of 32 bytes.
    #[error("checkpoint root must be base64 of 32 bytes")]
    Root,
    /// More than `MAX_CHECKPOINT_EXTENSIONS` extension lines.
    #[error("checkpoint has more than {MAX_CHECKPOINT_EXTENSIONS} extension lines")]
    TooManyExtensions,
}

/// Why a signed checkpoint was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenCheckpointError {
    /// The note itself is malformed or a known signature failed.
    #[error("signed note: {0}")]
    Note(#[from] NoteError),
    /// The note text is not a checkpoint.
    #[error("checkpoint: {0}")]
    Checkpoint(#[from] CheckpointError),
    /// No valid signature by the log key.
    #[error("no valid signature by the log key {0}")]
    NoLogSignature(String),
    /// The log key's name is not the checkpoint's origin.
    #[error("checkpoint origin {origin} does not match the log key name {key_name}")]
    OriginMismatch {
        /// Origin line.
        origin: String,
        /// Log key name.
        key_name: String,
    },
}

fn parse_decimal_u64(text: &str) -> Option<u64> {
    let bytes = text.as_bytes();
    if bytes.is_empty() || bytes.len() > 20 || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    if bytes.len() > 1 && bytes[0] == b'0' {
        return None;
    }
    text.parse().ok()
}

impl Checkpoint {
    /// Parses checkpoint note text (with its final newline).
    pub fn parse(text: &str) -> Result<Self, CheckpointError> {
        if text.len() > MAX_CHECKPOINT_TEXT_BYTES {
            return Err(CheckpointError::TooLarge);
        }
        let body = text.strip_suffix('\n').ok_or(CheckpointError::Lines)?;
        let lines: Vec<&str> = body.split('\n').collect();
        if lines.len() < 3 || lines.iter().any(|l| l.is_empty()) {
            return Err(CheckpointError::Lines);
        }
        if lines.len() - 3 > MAX_CHECKPOINT_EXTENSIONS {
            return Err(CheckpointError::TooManyExtensions);
        }
        let origin = lines[0];
        if origin.chars().any(char::is_control) {
            return Err(CheckpointError::Origin);
        }
        let size = parse_decimal_u64(lines[1]).ok_or(CheckpointError::Size)?;
        let root = Hash::from_base64(lines[2]).map_err(|_| CheckpointError::Root)?;
        let extensions = lines[3..].iter().map(|l| String::from(*l)).collect();
        Ok(Self {
            origin: String::from(origin),
            size: TreeSize(size),
            root,
            extensions,
        })
    }

    /// The note text: origin, size, base64 root and extensions, each ending in a newline.
    pub fn to_text(&self) -> String {
        let mut out = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size.0,
            self.root.to_base64()
        );
        for line in &self.extensions {
            out.push_str(line);
            out.push('\n');
        }
        out
    }

    /// Signs the checkpoint with the log key and returns the signed note.
    pub fn sign(&self, log: &NoteSigner) -> Result<String, NoteError> {
        let mut note = Note::new(&self.to_text())?;
        note.sign(log, 0)?;
        Ok(note.to_text())
    }
}

/// A checkpoint whose log signature verified, with the witness cosignatures that verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenedCheckpoint {
    /// The checkpoint.
    pub checkpoint: Checkpoint,
    /// The exact note text that was signed.
    pub text: String,
    /// Verified witness cosignatures (name, key ID, timestamp), one per witness key.
    pub cosignatures: Vec<VerifiedSignature>,
    /// The parsed note, to add cosignatures to or to re-serialise.
    pub note: Note,
}

/// Opens a signed checkpoint: the note must carry a valid signature by `log` (whose name must be
/// the origin), every signature by a known witness key must verify, and unknown signatures are
/// ignored.
pub fn open_checkpoint(
    bytes: &[u8],
    log: &NoteVerifier,
    witnesses: &[NoteVerifier],
) -> Result<OpenedCheckpoint, OpenCheckpointError> {
    let note = Note::parse(bytes)?;
    let mut verifiers = Vec::with_capacity(witnesses.len() + 1);
    verifiers.push(log.clone());
    verifiers.extend(
        witnesses
            .iter()
            .filter(|w| w.key_type() == KeyType::CosignatureV1)
            .cloned(),
    );
    let opened = match note.open(&verifiers) {
        Ok(opened) => opened,
        Err(NoteError::NoKnownSignature) => {
            return Err(OpenCheckpointError::NoLogSignature(String::from(
                log.name(),
            )));
        }
        Err(e) => return Err(e.into()),
    };
    let mut cosignatures = Vec::new();
    let mut log_signed = false;
    for signature in opened.verified {
        if signature.name == log.name()
            && signature.key_id == log.key_id()
            && signature.key_type == log.key_type()
        {
            log_signed = true;
        } else if signature.key_type == KeyType::CosignatureV1 {
            cosignatures.push(signature);
        }
    }
    if !log_signed {
        return Err(OpenCheckpointError::NoLogSignature(String::from(
            log.name(),
        )));
    }
    let checkpoint = Checkpoint::parse(&opened.text)?;
    if checkpoint.origin != log.name() {
        return Err(OpenCheckpointError::OriginMismatch {
            origin: checkpoint.origin,
            key_name: String::from(log.name()),
        });
    }
    Ok(OpenedCheckpoint {
        checkpoint,
        text: opened.text,
        cosignatures,
        note,
    })
}
