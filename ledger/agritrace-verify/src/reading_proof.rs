//! The reading proof file (`agritrace/reading-proof/v1`): everything that proves one signed
//! sensor reading is in the log, in one text file a person can mail, archive and check offline.
//!
//! It chains three proofs: the reading's RFC 9162 inclusion path in its batch tree (whose root
//! a `ReadingBatch` entry names), the entry itself, and a C2SP tlog-proof of the entry in the
//! log (index, inclusion path, cosigned checkpoint). The tlog-proof is embedded verbatim after
//! an empty line, so anyone can cut it out and check it with stock C2SP tooling.
//!
//! ```text
//! agritrace/reading-proof/v1
//! device <16 lowercase hex digits>
//! sequence <decimal>
//! reading <base64 of the signed reading, exact bytes>
//! batch-position <decimal>
//! batch-size <decimal>
//! batch-path <base64 hash>          (zero or more lines, the reading leaf's sibling first)
//! entry <base64 of the ReadingBatch entry, exact bytes>
//!
//! c2sp.org/tlog-proof@v1            (the entry's C2SP tlog-proof, verbatim)
//! index <decimal>
//! <base64 hash>                     (zero or more lines)
//!
//! <signed checkpoint note>
//! ```
//!
//! Rules (the parser refuses anything else, so an accepted file has exactly one spelling and
//! [`ReadingProof::to_text`] gives back the bytes it was parsed from):
//! - lines end with `\n` only; the labelled lines come in the order above, each exactly once
//!   (`batch-path` zero to [`BATCH_PATH_HASHES_MAX`] times); a label and its value are
//!   separated by one space;
//! - decimals have no sign and no leading zero and fit 64 bits (`batch-size` is `1..=2^32-1`,
//!   the range of a `ReadingBatch`'s reading count);
//! - base64 is RFC 4648 §4 standard, padded, with zero trailing bits; hashes are 32 bytes;
//!   `reading` is 1 to `SIGNED_READING_BYTES_MAX` bytes, `entry` 1 to `MAX_ENTRY_BYTES`;
//! - the whole file is UTF-8 of at most [`READING_PROOF_BYTES_MAX`] bytes.
//!
//! Parsing checks the shape only; nothing is verified (see `steps`). The header names the
//! device and sequence number so that a file says what it is about before anything is
//! decoded; the verifier checks that the signed reading says the same.

use crate::lines::{Lines, MissingLine};
use std::fmt::Write as _;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ledger::entry::MAX_ENTRY_BYTES;
use ledger::merkle::{Hash, LeafIndex, TreeSize};
use ledger::tlog_proof::{MAX_TLOG_PROOF_BYTES, TlogProof, TlogProofError};
use protocol::limits::SIGNED_READING_BYTES_MAX;
use protocol::{DeviceId, SequenceNumber};

/// First line of a reading proof file.
pub const READING_PROOF_HEADER: &str = "agritrace/reading-proof/v1";

/// Most `batch-path` lines: a batch holds at most `u32::MAX` readings (its entry counts them in
/// 32 bits), so its tree is at most 32 levels deep.
pub const BATCH_PATH_HASHES_MAX: usize = 32;

/// Largest reading proof file accepted, in bytes: the embedded tlog-proof at its limit plus
/// the labelled lines at theirs (the entry's base64 is at most 87,380 characters).
pub const READING_PROOF_BYTES_MAX: usize = MAX_TLOG_PROOF_BYTES + 96 * 1024;

/// Largest batch size (the range of `ReadingBatch::reading_count`).
const BATCH_SIZE_MAX: u64 = u32::MAX as u64;

/// A parsed reading proof. Nothing in it is verified by parsing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadingProof {
    /// The device the proof is about (must be the signed reading's device).
    pub device: DeviceId,
    /// The reading's sequence number (must be the signed reading's).
    pub sequence: SequenceNumber,
    /// The signed reading, exactly as the device sent it (its leaf hash is
    /// `SHA-256(0x00 || signed_reading)`).
    pub signed_reading: Vec<u8>,
    /// The reading's position in its batch.
    pub batch_position: LeafIndex,
    /// Number of readings in the batch.
    pub batch_size: TreeSize,
    /// RFC 9162 inclusion path from the reading's leaf to the batch root, sibling first.
    pub batch_path: Vec<Hash>,
    /// The `ReadingBatch` entry, exactly as stored in the log.
    pub entry: Vec<u8>,
    /// The entry's C2SP tlog-proof (index, inclusion path, cosigned checkpoint).
    pub log_proof: TlogProof,
}

/// Why a reading proof file was rejected (line numbers are one-based).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadingProofError {
    /// Larger than [`READING_PROOF_BYTES_MAX`] or not UTF-8.
    #[error("a reading proof must be UTF-8 text of at most {READING_PROOF_BYTES_MAX} bytes")]
    Text,
    /// The first line is not [`READING_PROOF_HEADER`].
    #[error("line 1 must be {READING_PROOF_HEADER}")]
    Header,
    /// The file ends, or another line stands, where a labelled line must be.
    #[error("line {line}: expected a `{label}` line")]
    Missing {
        /// Line number.
        line: usize,
        /// The label expected there.
        label: &'static str,
    },
    /// A labelled line whose value is not in its canonical form.
    #[error("line {line}: `{label}` {reason}")]
    Malformed {
        /// Line number.
        line: usize,
        /// The line's label.
        label: &'static str,
        /// What is wrong, in words.
        reason: &'static str,
    },
    /// More than [`BATCH_PATH_HASHES_MAX`] `batch-path` lines.
    #[error("line {line}: more than {BATCH_PATH_HASHES_MAX} batch-path lines")]
    TooManyBatchHashes {
        /// Line number of the first line too many.
        line: usize,
    },
    /// The `entry` line is not followed by an empty line.
    #[error("line {line}: expected the empty line before the embedded tlog-proof")]
    Separator {
        /// Line number.
        line: usize,
    },
    /// The embedded tlog-proof is malformed.
    #[error("the tlog-proof starting at line {line}: {source}")]
    LogProof {
        /// Line number of the tlog-proof's first line.
        line: usize,
        /// What the tlog-proof parser refused.
        source: TlogProofError,
    },
}

impl From<MissingLine> for ReadingProofError {
    fn from(missing: MissingLine) -> Self {
        Self::Missing {
            line: missing.line,
            label: missing.label,
        }
    }
}

/// A decimal without sign or leading zero that fits 64 bits.
pub(crate) fn decimal(text: &str) -> Option<u64> {
    let digits = text.as_bytes();
    if digits.is_empty() || digits.len() > 20 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    if digits.len() > 1 && digits[0] == b'0' {
        return None;
    }
    text.parse().ok()
}

/// Standard padded base64 of 1 to `max` bytes (the length is checked before decoding, so an
/// oversized line costs no work).
pub(crate) fn base64_bytes(text: &str, max: usize) -> Result<Vec<u8>, &'static str> {
    if text.is_empty() {
        return Err("is empty");
    }
    if text.len() > max.div_ceil(3) * 4 {
        return Err("is too long");
    }
    let bytes = STANDARD
        .decode(text.as_bytes())
        .map_err(|_| "is not canonical standard padded base64")?;
    if bytes.len() > max {
        return Err("is too long");
    }
    Ok(bytes)
}

impl ReadingProof {
    /// Parses a reading proof file (see the module documentation for the rules).
    ///
    /// # Errors
    /// [`ReadingProofError`] naming the first line that breaks a rule.
    pub fn parse(bytes: &[u8]) -> Result<Self, ReadingProofError> {
        if bytes.len() > READING_PROOF_BYTES_MAX {
            return Err(ReadingProofError::Text);
        }
        let text = std::str::from_utf8(bytes).map_err(|_| ReadingProofError::Text)?;
        let mut lines = Lines::new(text);
        if lines.next() != Some(READING_PROOF_HEADER) {
            return Err(ReadingProofError::Header);
        }
        let malformed = |line, label, reason| ReadingProofError::Malformed {
            line,
            label,
            reason,
        };

        let (line, value) = lines.labelled("device")?;
        let device: DeviceId = value
            .parse()
            .map_err(|_| malformed(line, "device", "is not 16 lowercase hex digits"))?;

        let (line, value) = lines.labelled("sequence")?;
        let sequence = decimal(value).ok_or_else(|| {
            malformed(
                line,
                "sequence",
                "is not a decimal without leading zero below 2^64",
            )
        })?;

        let (line, value) = lines.labelled("reading")?;
        let signed_reading = base64_bytes(value, SIGNED_READING_BYTES_MAX)
            .map_err(|reason| malformed(line, "reading", reason))?;

        let (line, value) = lines.labelled("batch-position")?;
        let batch_position = decimal(value).ok_or_else(|| {
            malformed(
                line,
                "batch-position",
                "is not a decimal without leading zero below 2^64",
            )
        })?;

        let (line, value) = lines.labelled("batch-size")?;
        let batch_size = decimal(value)
            .filter(|size| (1..=BATCH_SIZE_MAX).contains(size))
            .ok_or_else(|| {
                malformed(
                    line,
                    "batch-size",
                    "is not a decimal without leading zero from 1 to 2^32-1",
                )
            })?;

        let mut batch_path = Vec::new();
        while lines.peek_is("batch-path") {
            let (line, value) = lines.labelled("batch-path")?;
            if batch_path.len() == BATCH_PATH_HASHES_MAX {
                return Err(ReadingProofError::TooManyBatchHashes { line });
            }
            let hash = Hash::from_base64(value)
                .map_err(|_| malformed(line, "batch-path", "is not base64 of a 32-byte hash"))?;
            batch_path.push(hash);
        }

        let (line, value) = lines.labelled("entry")?;
        let entry = base64_bytes(value, MAX_ENTRY_BYTES)
            .map_err(|reason| malformed(line, "entry", reason))?;

        if lines.next() != Some("") {
            return Err(ReadingProofError::Separator { line: lines.number });
        }
        let log_proof = TlogProof::parse(lines.rest.as_bytes()).map_err(|source| {
            ReadingProofError::LogProof {
                line: lines.number + 1,
                source,
            }
        })?;

        Ok(Self {
            device,
            sequence: SequenceNumber(sequence),
            signed_reading,
            batch_position: LeafIndex(batch_position),
            batch_size: TreeSize(batch_size),
            batch_path,
            entry,
            log_proof,
        })
    }

    /// The file text. For a proof with the shapes [`parse`](Self::parse) accepts (non-empty
    /// reading and entry, at most 32 batch hashes, batch size in range), parsing it gives this
    /// proof back.
    #[must_use]
    pub fn to_text(&self) -> String {
        let log_proof = self.log_proof.to_text();
        let mut out = String::with_capacity(
            256 + 45 * self.batch_path.len() + self.entry.len() * 4 / 3 + log_proof.len(),
        );
        // Writing into a String cannot fail.
        let _ = write!(
            out,
            "{READING_PROOF_HEADER}\ndevice {}\nsequence {}\nreading {}\nbatch-position {}\nbatch-size {}\n",
            self.device,
            self.sequence.0,
            STANDARD.encode(&self.signed_reading),
            self.batch_position.0,
            self.batch_size.0,
        );
        for hash in &self.batch_path {
            out.push_str("batch-path ");
            out.push_str(&hash.to_base64());
            out.push('\n');
        }
        out.push_str("entry ");
        out.push_str(&STANDARD.encode(&self.entry));
        out.push_str("\n\n");
        out.push_str(&log_proof);
        out
    }
}

#[cfg(test)]
mod tests {
    use ledger::checkpoint::Checkpoint;
    use ledger::merkle::leaf_hash;
    use ledger::note::{KeyType, NoteSigner, SigningKey};
    use proptest::prelude::*;

    use super::*;

    fn checkpoint_note() -> String {
        let log = NoteSigner::new(
            "agritrace.test/log",
            KeyType::Ed25519,
            SigningKey::from_bytes(&[1; 32]),
        )
        .expect("key name");
        Checkpoint {
            origin: "agritrace.test/log".into(),
            size: TreeSize(9),
            root: leaf_hash(b"root"),
            extensions: vec![],
        }
        .sign(&log)
        .expect("sign")
    }

    fn sample() -> ReadingProof {
        ReadingProof {
            device: "a900000000000001".parse().expect("device"),
            sequence: SequenceNumber(42),
            signed_reading: vec![1, 30, 7, 7, 7],
            batch_position: LeafIndex(5),
            batch_size: TreeSize(12),
            batch_path: vec![leaf_hash(b"a"), leaf_hash(b"b")],
            entry: vec![1, 1, 2, 3],
            log_proof: TlogProof {
                extra: None,
                index: LeafIndex(7),
                path: vec![leaf_hash(b"c")],
                checkpoint: checkpoint_note(),
            },
        }
    }

    /// The sample's text with the line starting `label ` replaced by `line` (or removed).
    fn with_line(label: &str, line: Option<&str>) -> String {
        let text = sample().to_text();
        let mut out = String::new();
        let mut replaced = false;
        for l in text.split_inclusive('\n') {
            if !replaced && l.starts_with(&format!("{label} ")) {
                replaced = true;
                if let Some(line) = line {
                    out.push_str(line);
                    out.push('\n');
                }
            } else {
                out.push_str(l);
            }
        }
        assert!(replaced, "no {label} line in the sample");
        out
    }

    fn check(text: &str, expected: &ReadingProofError) {
        assert_eq!(
            ReadingProof::parse(text.as_bytes()).as_ref(),
            Err(expected),
            "{text}"
        );
    }

    fn malformed(line: usize, label: &'static str, reason: &'static str) -> ReadingProofError {
        ReadingProofError::Malformed {
            line,
            label,
            reason,
        }
    }

    #[test]
    fn the_sample_text_is_line_by_line_as_documented() {
        let text = sample().to_text();
        let lines: Vec<&str> = text.lines().take(12).collect();
        assert_eq!(
            lines,
            [
                "agritrace/reading-proof/v1",
                "device a900000000000001",
                "sequence 42",
                "reading AR4HBwc=",
                "batch-position 5",
                "batch-size 12",
                &format!("batch-path {}", leaf_hash(b"a").to_base64()),
                &format!("batch-path {}", leaf_hash(b"b").to_base64()),
                "entry AQECAw==",
                "",
                "c2sp.org/tlog-proof@v1",
                "index 7",
            ]
        );
        assert!(text.ends_with(&sample().log_proof.to_text()));
        assert_eq!(ReadingProof::parse(text.as_bytes()), Ok(sample()));
    }

    #[test]
    fn no_batch_path_lines_is_a_batch_of_one() {
        let proof = ReadingProof {
            batch_position: LeafIndex(0),
            batch_size: TreeSize(1),
            batch_path: vec![],
            ..sample()
        };
        assert_eq!(ReadingProof::parse(proof.to_text().as_bytes()), Ok(proof));
    }

    #[test]
    fn the_header_and_the_size_limits_are_enforced() {
        let text = sample().to_text();
        check(&text.replacen("v1", "v2", 1), &ReadingProofError::Header);
        check(&format!("\n{text}"), &ReadingProofError::Header);
        check("", &ReadingProofError::Header);
        let mut huge = text.into_bytes();
        huge.resize(READING_PROOF_BYTES_MAX + 1, b'\n');
        assert_eq!(ReadingProof::parse(&huge), Err(ReadingProofError::Text));
        assert_eq!(
            ReadingProof::parse(b"agritrace/reading-proof/v1\ndevice \xff\n"),
            Err(ReadingProofError::Text)
        );
    }

    #[test]
    fn labelled_lines_are_required_in_order() {
        let missing = |line, label| ReadingProofError::Missing { line, label };
        check(&with_line("device", None), &missing(2, "device"));
        check(&with_line("sequence", None), &missing(3, "sequence"));
        check(&with_line("reading", None), &missing(4, "reading"));
        check(&with_line("batch-size", None), &missing(6, "batch-size"));
        check(&with_line("entry", None), &missing(9, "entry"));
        // Two labels swapped.
        let text = sample().to_text().replacen(
            "batch-position 5\nbatch-size 12",
            "batch-size 12\nbatch-position 5",
            1,
        );
        check(&text, &missing(5, "batch-position"));
        // A repeated line, an unknown line, a missing space, a doubled space.
        check(
            &with_line("sequence", Some("sequence 42\nsequence 42")),
            &missing(4, "reading"),
        );
        check(
            &with_line("reading", Some("extra AAAA\nreading AR4HBwc=")),
            &missing(4, "reading"),
        );
        check(
            &with_line("sequence", Some("sequence42")),
            &missing(3, "sequence"),
        );
        check(
            &with_line("sequence", Some("sequence  42")),
            &malformed(
                3,
                "sequence",
                "is not a decimal without leading zero below 2^64",
            ),
        );
        // The file ends early.
        let text = sample().to_text();
        let cut = text.find("batch-size").expect("line");
        check(&text[..cut], &missing(6, "batch-size"));
    }

    #[test]
    fn values_must_be_canonical() {
        let decimal = "is not a decimal without leading zero below 2^64";
        for (label, line, reason) in [
            (
                "device",
                "device A900000000000001",
                "is not 16 lowercase hex digits",
            ),
            (
                "device",
                "device a90000000000001",
                "is not 16 lowercase hex digits",
            ),
            ("sequence", "sequence 042", decimal),
            ("sequence", "sequence +42", decimal),
            ("sequence", "sequence 18446744073709551616", decimal),
            ("sequence", "sequence 42\r", decimal),
            ("reading", "reading ", "is empty"),
            (
                "reading",
                "reading AR4HBwd=",
                "is not canonical standard padded base64",
            ),
            (
                "reading",
                "reading AR4HBwc",
                "is not canonical standard padded base64",
            ),
            (
                "reading",
                "reading AR4H Bwc=",
                "is not canonical standard padded base64",
            ),
            (
                "reading",
                "reading AR4HBwc=\r",
                "is not canonical standard padded base64",
            ),
            ("batch-position", "batch-position -1", decimal),
            (
                "batch-size",
                "batch-size 0",
                "is not a decimal without leading zero from 1 to 2^32-1",
            ),
            (
                "batch-size",
                "batch-size 4294967296",
                "is not a decimal without leading zero from 1 to 2^32-1",
            ),
            (
                "entry",
                "entry AQECAw",
                "is not canonical standard padded base64",
            ),
        ] {
            let line_no = sample()
                .to_text()
                .lines()
                .position(|l| l.starts_with(&format!("{label} ")))
                .expect("label")
                + 1;
            check(
                &with_line(label, Some(line)),
                &malformed(line_no, label, reason),
            );
        }
        let reading_max = format!(
            "reading {}",
            STANDARD.encode([1u8; SIGNED_READING_BYTES_MAX + 1])
        );
        check(
            &with_line("reading", Some(&reading_max)),
            &malformed(4, "reading", "is too long"),
        );
        let short_hash = format!("batch-path {}", STANDARD.encode([1u8; 31]));
        check(
            &with_line("batch-path", Some(&short_hash)),
            &malformed(7, "batch-path", "is not base64 of a 32-byte hash"),
        );
    }

    #[test]
    fn the_largest_entry_is_accepted_and_one_byte_more_is_not() {
        let largest = ReadingProof {
            entry: vec![7; MAX_ENTRY_BYTES],
            ..sample()
        };
        let text = largest.to_text();
        assert!(text.len() <= READING_PROOF_BYTES_MAX);
        assert_eq!(ReadingProof::parse(text.as_bytes()), Ok(largest));
        let too_large = format!("entry {}", STANDARD.encode(vec![7; MAX_ENTRY_BYTES + 1]));
        check(
            &with_line("entry", Some(&too_large)),
            &malformed(9, "entry", "is too long"),
        );
    }

    #[test]
    fn at_most_32_batch_path_lines() {
        let full = ReadingProof {
            batch_path: vec![leaf_hash(b"x"); BATCH_PATH_HASHES_MAX],
            ..sample()
        };
        assert_eq!(ReadingProof::parse(full.to_text().as_bytes()), Ok(full));
        let over = ReadingProof {
            batch_path: vec![leaf_hash(b"x"); BATCH_PATH_HASHES_MAX + 1],
            ..sample()
        };
        check(
            &over.to_text(),
            &ReadingProofError::TooManyBatchHashes { line: 39 },
        );
    }

    #[test]
    fn the_embedded_tlog_proof_follows_one_empty_line() {
        let text = sample().to_text();
        check(
            &text.replacen("\n\nc2sp", "\nc2sp", 1),
            &ReadingProofError::Separator { line: 10 },
        );
        check(
            &text.replacen("\n\nc2sp", "\n\n\nc2sp", 1),
            &ReadingProofError::LogProof {
                line: 11,
                source: TlogProofError::Header,
            },
        );
        check(
            &text.replacen("index 7", "index 07", 1),
            &ReadingProofError::LogProof {
                line: 11,
                source: TlogProofError::Index,
            },
        );
        let without_checkpoint = &text[..text.rfind("\n\n").expect("separator") + 2];
        check(
            without_checkpoint,
            &ReadingProofError::LogProof {
                line: 11,
                source: TlogProofError::Checkpoint,
            },
        );
    }

    fn hash() -> impl Strategy<Value = Hash> {
        any::<[u8; 32]>().prop_map(Hash)
    }

    fn proof() -> impl Strategy<Value = ReadingProof> {
        (
            any::<[u8; 8]>(),
            any::<u64>(),
            prop::collection::vec(any::<u8>(), 1..=SIGNED_READING_BYTES_MAX),
            any::<u64>(),
            1..=BATCH_SIZE_MAX,
            prop::collection::vec(hash(), 0..=BATCH_PATH_HASHES_MAX),
            prop::collection::vec(any::<u8>(), 1..=600),
            any::<u64>(),
            prop::collection::vec(hash(), 0..=8),
        )
            .prop_map(
                |(device, sequence, reading, position, size, batch_path, entry, index, path)| {
                    ReadingProof {
                        device: DeviceId(device),
                        sequence: SequenceNumber(sequence),
                        signed_reading: reading,
                        batch_position: LeafIndex(position),
                        batch_size: TreeSize(size),
                        batch_path,
                        entry,
                        log_proof: TlogProof {
                            extra: None,
                            index: LeafIndex(index),
                            path,
                            checkpoint: checkpoint_note(),
                        },
                    }
                },
            )
    }

    proptest! {
        #[test]
        fn every_proof_round_trips_through_its_text(proof in proof()) {
            let text = proof.to_text();
            prop_assert_eq!(ReadingProof::parse(text.as_bytes()), Ok(proof));
        }

        #[test]
        fn any_one_byte_change_is_refused_or_changes_the_proof(
            proof in proof(),
            at in any::<prop::sample::Index>(),
            xor in 1u8..,
        ) {
            let mut bytes = proof.to_text().into_bytes();
            let i = at.index(bytes.len());
            bytes[i] ^= xor;
            if let Ok(parsed) = ReadingProof::parse(&bytes) {
                prop_assert_ne!(&parsed, &proof);
                prop_assert_eq!(parsed.to_text().into_bytes(), bytes);
            }
        }
    }
}
