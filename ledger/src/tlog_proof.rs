//! C2SP tlog-proof (`c2sp.org/tlog-proof@v1`): an offline-verifiable proof that an entry is in
//! the log, made of the entry's index, its inclusion proof and the (cosigned) checkpoint the
//! proof is for. Stored with the `.tlog-proof` extension.
//!
//! ```text
//! c2sp.org/tlog-proof@v1
//! extra <base64>            (optional, unauthenticated)
//! index <decimal>
//! <base64 hash>             (zero or more lines: sibling of the leaf first)
//!
//! <signed checkpoint note, verbatim>
//! ```

use alloc::string::String;
use alloc::vec::Vec;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::checkpoint::Checkpoint;
use crate::merkle::{Hash, LeafIndex};
use crate::note::{MAX_NOTE_BYTES, Note};
use crate::proof::{InclusionProof, MAX_PROOF_HASHES};

/// First line of a proof file.
pub const TLOG_PROOF_HEADER: &str = "c2sp.org/tlog-proof@v1";
/// Largest extra data accepted, in bytes (decoded).
pub const MAX_EXTRA_BYTES: usize = 16 * 1024;
/// Largest proof file accepted, in bytes.
pub const MAX_TLOG_PROOF_BYTES: usize = MAX_NOTE_BYTES + 32 * 1024;

/// A parsed proof file. Nothing in it is verified by parsing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlogProof {
    /// Opaque extra data (unauthenticated).
    pub extra: Option<Vec<u8>>,
    /// Index of the entry.
    pub index: LeafIndex,
    /// Inclusion proof hashes, leaf's sibling first.
    pub path: Vec<Hash>,
    /// The signed checkpoint note, verbatim.
    pub checkpoint: String,
}

/// Why a proof file was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlogProofError {
    /// Larger than `MAX_TLOG_PROOF_BYTES` or not UTF-8.
    #[error("proof file must be UTF-8 and at most {MAX_TLOG_PROOF_BYTES} bytes")]
    Text,
    /// The first line is not `c2sp.org/tlog-proof@v1`.
    #[error("first line must be {TLOG_PROOF_HEADER}")]
    Header,
    /// The `extra` line is malformed or too large.
    #[error("malformed extra line")]
    Extra,
    /// The `index` line is missing or not a decimal without leading zeroes.
    #[error("missing or malformed index line")]
    Index,
    /// A proof line is not base64 of 32 bytes, or there are more than 64.
    #[error("proof line {line} is not a base64 SHA-256 hash (or too many lines)")]
    ProofLine {
        /// One-based line number in the file.
        line: usize,
    },
    /// No empty line before the checkpoint, or the checkpoint is not a signed checkpoint note.
    #[error("the proof must end with an empty line and a signed checkpoint")]
    Checkpoint,
}

impl TlogProof {
    /// Parses a proof file. The checkpoint part must parse as a signed note whose text is a
    /// checkpoint; signatures are not verified here.
    pub fn parse(bytes: &[u8]) -> Result<Self, TlogProofError> {
        if bytes.len() > MAX_TLOG_PROOF_BYTES {
            return Err(TlogProofError::Text);
        }
        let text = core::str::from_utf8(bytes).map_err(|_| TlogProofError::Text)?;
        let mut rest = text;
        if next_line(&mut rest).as_deref() != Some(TLOG_PROOF_HEADER) {
            return Err(TlogProofError::Header);
        }
        let mut line_no = 2usize;
        let mut line = next_line(&mut rest).ok_or(TlogProofError::Index)?;
        let mut extra = None;
        if let Some(encoded) = line.strip_prefix("extra ") {
            if encoded.len() > MAX_EXTRA_BYTES.div_ceil(3) * 4 {
                return Err(TlogProofError::Extra);
            }
            extra = Some(
                STANDARD
                    .decode(encoded.as_bytes())
                    .map_err(|_| TlogProofError::Extra)?,
            );
            line = next_line(&mut rest).ok_or(TlogProofError::Index)?;
            line_no += 1;
        }
        let index = line
            .strip_prefix("index ")
            .and_then(parse_decimal)
            .ok_or(TlogProofError::Index)?;
        let mut path = Vec::new();
        loop {
            line_no += 1;
            let line = next_line(&mut rest).ok_or(TlogProofError::Checkpoint)?;
            if line.is_empty() {
                break;
            }
            if path.len() == MAX_PROOF_HASHES {
                return Err(TlogProofError::ProofLine { line: line_no });
            }
            path.push(
                Hash::from_base64(&line)
                    .map_err(|_| TlogProofError::ProofLine { line: line_no })?,
            );
        }
        let note = Note::parse(rest.as_bytes()).map_err(|_| TlogProofError::Checkpoint)?;
        Checkpoint::parse(&note.text).map_err(|_| TlogProofError::Checkpoint)?;
        Ok(Self {
            extra,
            index: LeafIndex(index),
            path,
            checkpoint: String::from(rest),
        })
    }

    /// The proof file text.
    pub fn to_text(&self) -> String {
        let mut out = String::with_capacity(self.checkpoint.len() + 64 + 45 * self.path.len());
        out.push_str(TLOG_PROOF_HEADER);
        out.push('\n');
        if let Some(extra) = &self.extra {
            out.push_str("extra ");
            out.push_str(&STANDARD.encode(extra));
            out.push('\n');
        }
        out.push_str("index ");
        out.push_str(&alloc::format!("{}", self.index.0));
        out.push('\n');
        for hash in &self.path {
            out.push_str(&hash.to_base64());
            out.push('\n');
        }
        out.push('\n');
        out.push_str(&self.checkpoint);
        out
    }

    /// The inclusion proof, for the tree size of `checkpoint`.
    pub fn inclusion_proof(&self, checkpoint: &Checkpoint) -> InclusionProof {
        InclusionProof {
            leaf_index: self.index,
            tree_size: checkpoint.size,
            path: self.path.clone(),
        }
    }
}

/// Splits off the next newline-terminated line.
fn next_line(rest: &mut &str) -> Option<String> {
    let (line, tail) = rest.split_once('\n')?;
    *rest = tail;
    Some(String::from(line))
}

fn parse_decimal(text: &str) -> Option<u64> {
    let bytes = text.as_bytes();
    if bytes.is_empty() || bytes.len() > 20 || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    if bytes.len() > 1 && bytes[0] == b'0' {
        return None;
    }
    text.parse().ok()
}
