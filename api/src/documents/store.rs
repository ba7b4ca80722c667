//! The documents store over the node's storage and sequencer: records, file content in
//! chunks, the one write lock, submission of an entry with its records (with retries), and
//! finding an entry's log index from its locator when the round's answer was lost.

use std::sync::Arc;
use std::time::Duration;

use ingest::IngestStorage;
use ingest::records::EntryLocator;
use ledger::merkle::{Hash, LeafIndex};
use ledger::sequencer::{SequencerHandle, SubmitError};
use ledger::storage::SidecarRecord;
use sha2::{Digest, Sha256};

use super::{BY_HASH, CONTENT, CONTENT_CHUNK_BYTES, DOCUMENTS, DocumentRecord};
use crate::http::ApiError;
use crate::node::Storage;

/// Attempts of a submission the sequencer refuses for a retryable reason.
const SUBMIT_ATTEMPTS: u32 = 50;
/// Pause between attempts.
const SUBMIT_BACKOFF_MS: u64 = 100;

pub(super) fn internal(error: impl std::fmt::Debug) -> ApiError {
    ApiError::Internal(format!("{error:#?}"))
}

/// Issuer keys and documents over the node's store and log.
#[derive(Debug, Clone)]
pub struct Documents {
    pub(super) sequencer: SequencerHandle<Storage>,
    pub(super) clock: Arc<dyn ingest::Clock>,
    /// Serialises every write of this module (see the module documentation).
    pub(super) write: Arc<tokio::sync::Mutex<()>>,
    /// Largest file taken.
    pub(super) bytes_max: usize,
}

impl Documents {
    /// The store over the node's sequencer (and its storage); files up to `bytes_max`.
    #[must_use]
    pub fn new(
        sequencer: SequencerHandle<Storage>,
        clock: Arc<dyn ingest::Clock>,
        bytes_max: usize,
    ) -> Self {
        Self {
            sequencer,
            clock,
            write: Arc::new(tokio::sync::Mutex::new(())),
            bytes_max,
        }
    }

    /// The node's storage.
    #[must_use]
    pub fn storage(&self) -> &Storage {
        self.sequencer.storage()
    }

    /// The largest file taken, bytes.
    #[must_use]
    pub fn bytes_max(&self) -> usize {
        self.bytes_max
    }

    pub(super) fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// A JSON record.
    pub(super) fn get<T: serde::de::DeserializeOwned>(
        &self,
        table: &str,
        key: &[u8],
    ) -> Result<Option<T>, ApiError> {
        self.storage()
            .read(table, key)
            .map_err(internal)?
            .map(|value| serde_json::from_slice(&value).map_err(internal))
            .transpose()
    }

    /// A document by id.
    ///
    /// # Errors
    /// 500 if the store fails or the record is corrupt.
    pub fn document(&self, id: &str) -> Result<Option<DocumentRecord>, ApiError> {
        if id.is_empty() || id.len() > 64 {
            return Ok(None);
        }
        self.get(DOCUMENTS, id.as_bytes())
    }

    /// Documents by id, in order (missing ones skipped).
    pub(super) fn documents(&self, ids: &[Vec<u8>]) -> Result<Vec<DocumentRecord>, ApiError> {
        self.storage()
            .read_many(DOCUMENTS, ids)
            .map_err(internal)?
            .into_iter()
            .flatten()
            .map(|value| serde_json::from_slice(&value).map_err(internal))
            .collect()
    }

    /// The ids listed under `prefix` in an index table whose keys are `prefix ‖ id`, after
    /// `after` (a full key), at most `limit`; with the last key read.
    pub(super) fn ids_under(
        &self,
        table: &str,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<ingest::store::Rows, ApiError> {
        let from = match after {
            Some(after) if after >= prefix => crate::paging::successor(after),
            _ => prefix.to_vec(),
        };
        let to = crate::paging::prefix_end(prefix);
        Ok(self
            .storage()
            .scan(table, &from, &to, limit)
            .map_err(internal)?
            .into_iter()
            .map(|(key, _)| {
                let id = key[prefix.len()..].to_vec();
                (key, id)
            })
            .collect())
    }

    /// The documents whose file has this SHA-256, at most `limit`.
    pub(super) fn by_hash(
        &self,
        sha256: &[u8; 32],
        limit: usize,
    ) -> Result<Vec<DocumentRecord>, ApiError> {
        let ids: Vec<Vec<u8>> = self
            .ids_under(BY_HASH, sha256, None, limit)?
            .into_iter()
            .map(|(_, id)| id)
            .collect();
        self.documents(&ids)
    }

    /// The records that store `content` (its SHA-256 `sha256`), none if it is stored already
    /// (content-addressed: identical files are stored once).
    pub(super) fn content_records(
        &self,
        sha256: &[u8; 32],
        content: &[u8],
    ) -> Result<Vec<SidecarRecord>, ApiError> {
        if self
            .storage()
            .read(CONTENT, &chunk_key(sha256, 0))
            .map_err(internal)?
            .is_some()
        {
            return Ok(Vec::new());
        }
        let mut records = Vec::new();
        // An empty file is one empty chunk, so that "stored" is always "chunk 0 exists".
        let mut chunks: Vec<&[u8]> = content.chunks(CONTENT_CHUNK_BYTES).collect();
        if chunks.is_empty() {
            chunks.push(&[]);
        }
        for (number, chunk) in (0u32..).zip(chunks) {
            records.push(SidecarRecord {
                table: CONTENT.to_owned(),
                key: chunk_key(sha256, number),
                value: chunk.to_vec(),
            });
        }
        Ok(records)
    }

    /// The file with this SHA-256 and size, checked against its hash.
    ///
    /// # Errors
    /// 500 if the store fails or the content is missing or does not match its hash.
    pub fn content(&self, sha256: &[u8; 32], size_bytes: u64) -> Result<Vec<u8>, ApiError> {
        let size = usize::try_from(size_bytes).map_err(internal)?;
        let chunks = size.div_ceil(CONTENT_CHUNK_BYTES).max(1);
        let keys: Vec<Vec<u8>> = (0..chunks)
            .map(|n| u32::try_from(n).map(|n| chunk_key(sha256, n)))
            .collect::<Result<_, _>>()
            .map_err(internal)?;
        let mut out = Vec::with_capacity(size);
        for chunk in self.storage().read_many(CONTENT, &keys).map_err(internal)? {
            let chunk = chunk.ok_or_else(|| internal("a document's content chunk is missing"))?;
            out.extend_from_slice(&chunk);
        }
        let found: [u8; 32] = Sha256::digest(&out).into();
        if out.len() != size || &found != sha256 {
            return Err(internal("a document's content does not match its hash"));
        }
        Ok(out)
    }

    /// Submits `entry` with `sidecars` in one round, retrying what may be retried; the entry's
    /// index, or `None` when the round landed but its answer was lost (`landed` tells, by
    /// reading the store).
    pub(super) async fn submit(
        &self,
        entry: Vec<u8>,
        sidecars: Vec<SidecarRecord>,
        landed: impl Fn() -> Result<bool, ApiError>,
    ) -> Result<Option<LeafIndex>, ApiError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.sequencer.submit(entry.clone(), sidecars.clone()).await {
                Ok(index) => return Ok(Some(index)),
                Err(SubmitError::OutcomeUnknown) if landed()? => return Ok(None),
                Err(error) if error.is_retryable() && attempt < SUBMIT_ATTEMPTS => {
                    tokio::time::sleep(Duration::from_millis(SUBMIT_BACKOFF_MS)).await;
                }
                Err(SubmitError::PoolFull) => {
                    return Err(ApiError::TooMany(
                        "the log is busy; retry shortly".to_owned(),
                    ));
                }
                Err(error) => return Err(internal(error)),
            }
        }
    }

    /// The log index of the entry with leaf hash `leaf_hash` (hex) submitted when the durable
    /// log had `log_size_before` entries: `known` if the record holds it, else searched for.
    ///
    /// # Errors
    /// 500 if the store fails.
    pub async fn leaf_index(
        &self,
        known: Option<u64>,
        leaf_hash: &str,
        log_size_before: u64,
    ) -> Result<Option<u64>, ApiError> {
        if known.is_some() {
            return Ok(known);
        }
        let Ok(leaf_hash) = Hash::from_hex(leaf_hash) else {
            return Err(internal("a stored entry leaf hash is not hex"));
        };
        let locator = EntryLocator {
            leaf_hash,
            log_size_before,
        };
        let durable = self.sequencer.durable_state().size;
        Ok(
            ingest::store::locate_entry(self.storage(), &locator, durable)
                .await
                .map_err(internal)?
                .map(|index| index.0),
        )
    }
}

/// The key of chunk `number` of the file with this SHA-256.
fn chunk_key(sha256: &[u8; 32], number: u32) -> Vec<u8> {
    let mut key = sha256.to_vec();
    key.extend_from_slice(&number.to_be_bytes());
    key
}

/// Random bytes from the operating system.
pub(super) fn random<const N: usize>() -> Result<[u8; N], ApiError> {
    let mut out = [0u8; N];
    getrandom::fill(&mut out)
        .map_err(|e| ApiError::Internal(format!("no system randomness: {e}")))?;
    Ok(out)
}

/// 32 bytes from 64 hex digits.
pub(super) fn unhex32(text: &str) -> Option<[u8; 32]> {
    Hash::from_hex(text).ok().map(|h| h.0)
}

/// 64 bytes from 128 hex digits.
pub(super) fn unhex64(text: &str) -> Option<[u8; 64]> {
    let bytes = text.as_bytes();
    if bytes.len() != 128 {
        return None;
    }
    let mut out = [0u8; 64];
    for (i, pair) in bytes.chunks(2).enumerate() {
        let text = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(text, 16).ok()?;
    }
    Some(out)
}
