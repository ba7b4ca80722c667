//! Durable storage of the log: the [`LogStorage`] trait, its contract, and the types a
//! sequencing round commits.
//!
//! The trait is the seam between the sequencer (one per log) and a backend: [`redb`] (the
//! embedded default), [`memory`] (a non-durable reference used by tests), and `scylla`
//! (ScyllaDB or Apache Cassandra, feature `scylla`).
//! Every backend must pass the suite in `storage::contract` (feature `contract-tests`), which
//! comes with `storage::faulty`, a double that injects failures with or without the write
//! landing.
//!
//! Two transactions, on purpose. A round's transaction holds its entry bundles, tiles, sidecar
//! records and the new log state, and nothing else. Checkpoints are written afterwards, by their
//! own small transactions, because the checkpointer may only sign state that a round commit has
//! already made durable (so the signature cannot be inside that commit), and because witnesses
//! answer in seconds while rounds run every 100 ms: holding the round for them would put the
//! slowest witness on the append path. Two records follow a checkpoint, under their own keys:
//!
//! - the **last signed** state ([`LogStorage::put_signed`]), written *before* a signature leaves
//!   the sequencer, so that after a crash it never signs a smaller or different tree — the
//!   "never two inconsistent checkpoints" invariant rests on it;
//! - the **published** checkpoint ([`LogStorage::put_checkpoint`]), the signed note with the
//!   cosignatures gathered, written once the witnesses answered (or the witness timeout
//!   passed). This is what `/log/checkpoint` serves, so clients with a quorum policy never see
//!   a checkpoint that witnesses have not had their chance to cosign.
//!
//! Layout follows C2SP tlog-tiles: a tile is stored once per `(level, index)` in its widest
//! known version; a partial tile of width `W` is the prefix of the full tile, so every partial
//! tile for every checkpointed size stays available as a prefix of the stored one. Entry bundles
//! are stored the same way, keyed by bundle index.

#[cfg(feature = "contract-tests")]
pub mod contract;
#[cfg(feature = "contract-tests")]
pub mod faulty;
pub mod memory;
pub mod redb;
#[cfg(feature = "scylla")]
pub mod scylla;

use std::future::Future;
use std::sync::Arc;

use crate::tile::TileReader;

/// A SHA-256 value as stored: a tree node hash or a root.
pub type HashBytes = [u8; 32];

/// Number of hashes in a full tile, and of entries in a full bundle (C2SP tlog-tiles).
pub const TILE_WIDTH: u64 = 256;

/// Size of one stored hash in bytes.
pub const HASH_BYTES: usize = 32;

/// Largest tile level the log can reach: 256^8 = 2^64 leaves.
pub const TILE_LEVEL_MAX: u8 = 7;

/// Prefix reserved for the log's own tables; sidecar tables may not use it.
pub const RESERVED_TABLE_PREFIX: &str = "log_";

/// Longest sidecar table name accepted.
pub const SIDECAR_TABLE_NAME_BYTES_MAX: usize = 64;

/// Where a tile is stored: its level and index. The width is not part of the key: the stored
/// value is the widest version known, and narrower (partial) versions are its prefixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TileKey {
    /// Tile level (0 holds leaf hashes).
    pub level: u8,
    /// Tile index within the level.
    pub index: u64,
}

/// The durable state of the log after a round: its size and Merkle root (RFC 9162 §2.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogState {
    /// Number of entries in the log.
    pub size: u64,
    /// Root hash of the tree over those entries.
    pub root: HashBytes,
}

impl LogState {
    /// The empty log: size 0, root `SHA-256("")` (RFC 9162 §2.1.1).
    #[must_use]
    pub fn empty(empty_root: HashBytes) -> Self {
        Self {
            size: 0,
            root: empty_root,
        }
    }

    /// Encodes as 8 bytes of big-endian size followed by the root.
    #[must_use]
    pub fn to_bytes(&self) -> [u8; 40] {
        let mut out = [0u8; 40];
        out[..8].copy_from_slice(&self.size.to_be_bytes());
        out[8..].copy_from_slice(&self.root);
        out
    }

    /// Decodes [`LogState::to_bytes`].
    ///
    /// # Errors
    /// [`ReadError::Corrupt`] if the length is wrong.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ReadError> {
        let (size, root) = bytes
            .split_first_chunk::<8>()
            .ok_or_else(|| ReadError::Corrupt("log state shorter than 8 bytes".into()))?;
        let root: HashBytes = root
            .try_into()
            .map_err(|_| ReadError::Corrupt("log state root is not 32 bytes".into()))?;
        Ok(Self {
            size: u64::from_be_bytes(*size),
            root,
        })
    }
}

/// A record that a caller (e.g. ingest) commits in the same transaction as the log entries it
/// belongs to: a key/value pair in a named table that the storage treats as opaque bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SidecarRecord {
    /// Table name: 1..=64 bytes of `[a-z0-9_]`, not starting with [`RESERVED_TABLE_PREFIX`].
    pub table: String,
    /// Key within the table. Writing an existing key replaces its value.
    pub key: Vec<u8>,
    /// Value.
    pub value: Vec<u8>,
}

/// Everything one sequencing round makes durable, atomically.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoundCommit {
    /// The state this round builds on; the backend refuses the round if its durable state is
    /// different (a fencing check: two sequencers can never both advance the log).
    pub previous: LogState,
    /// The state after the round. `next.size > previous.size`.
    pub next: LogState,
    /// Tiles changed by the round, each in its new (widest) version: a whole number of hashes,
    /// at most [`TILE_WIDTH`].
    pub tiles: Vec<(TileKey, Vec<u8>)>,
    /// Entry bundles changed by the round, keyed by bundle index, each in its new version.
    pub bundles: Vec<(u64, Vec<u8>)>,
    /// Caller records committed with the entries.
    pub sidecars: Vec<SidecarRecord>,
}

impl RoundCommit {
    /// Checks the shape of the round before it is written (an assertion of the caller's side
    /// of the contract, shared by every backend).
    ///
    /// # Errors
    /// [`CommitError::Invalid`] naming the first problem found.
    pub fn validate(&self) -> Result<(), CommitError> {
        let invalid = |reason: String| Err(CommitError::Invalid(reason));
        if self.next.size <= self.previous.size {
            return invalid(format!(
                "round does not grow the log: {} -> {}",
                self.previous.size, self.next.size
            ));
        }
        for (key, tile) in &self.tiles {
            if key.level > TILE_LEVEL_MAX {
                return invalid(format!("tile level {} above {TILE_LEVEL_MAX}", key.level));
            }
            let max_bytes = HASH_BYTES * 256;
            if tile.is_empty() || tile.len() % HASH_BYTES != 0 || tile.len() > max_bytes {
                return invalid(format!(
                    "tile {}/{} has {} bytes, not 1..=256 hashes",
                    key.level,
                    key.index,
                    tile.len()
                ));
            }
        }
        let bundle_limit = self.next.size.div_ceil(TILE_WIDTH);
        for (index, bundle) in &self.bundles {
            if *index >= bundle_limit {
                return invalid(format!(
                    "bundle {index} beyond a log of size {}",
                    self.next.size
                ));
            }
            if bundle.is_empty() {
                return invalid(format!("bundle {index} is empty"));
            }
        }
        for record in &self.sidecars {
            validate_table_name(&record.table).map_err(CommitError::Invalid)?;
        }
        Ok(())
    }
}

/// Checks a sidecar table name.
///
/// # Errors
/// A sentence saying what is wrong with the name.
pub fn validate_table_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > SIDECAR_TABLE_NAME_BYTES_MAX {
        return Err(format!(
            "sidecar table name must be 1..={SIDECAR_TABLE_NAME_BYTES_MAX} bytes"
        ));
    }
    if name.starts_with(RESERVED_TABLE_PREFIX) {
        return Err(format!(
            "sidecar table name {name:?} uses the reserved prefix {RESERVED_TABLE_PREFIX:?}"
        ));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(format!(
            "sidecar table name {name:?} has characters outside [a-z0-9_]"
        ));
    }
    Ok(())
}

/// The latest signed checkpoint as stored: its size and root (so the backend can check it
/// against the log state) and the signed note bytes, opaque to storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCheckpoint {
    /// Tree size the checkpoint commits to.
    pub size: u64,
    /// Root hash the checkpoint commits to.
    pub root: HashBytes,
    /// The C2SP signed note, with whatever cosignatures were gathered.
    pub note: Vec<u8>,
}

/// What a backend returns at startup: enough to resume appending, without scanning entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored {
    /// Durable log state ([`LogState::empty`] for a new log).
    pub state: LogState,
    /// Latest stored (published) checkpoint, if any was ever stored.
    pub checkpoint: Option<StoredCheckpoint>,
    /// The last state the log signed ([`LogStorage::put_signed`]), if recorded. It is never
    /// behind `checkpoint` when the sequencer wrote both.
    pub signed: Option<LogState>,
}

impl Restored {
    /// The largest state ever signed: the last-signed record or the published checkpoint,
    /// whichever is larger (a store written before the last-signed record existed only has the
    /// second).
    #[must_use]
    pub fn last_signed(&self) -> Option<LogState> {
        let published = self.checkpoint.as_ref().map(|c| LogState {
            size: c.size,
            root: c.root,
        });
        match (self.signed, published) {
            (Some(signed), Some(published)) if published.size > signed.size => Some(published),
            (Some(signed), _) => Some(signed),
            (None, published) => published,
        }
    }
}

/// A failure of a backend itself (I/O, database, network).
pub type BackendError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a read failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The backend could not be read.
    #[error("storage backend read failed")]
    Backend(#[source] BackendError),
    /// Stored bytes do not have the shape they were written with.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

/// Why a round commit failed.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    /// The durable state is neither the round's `previous` nor its `next`: another writer
    /// advanced the log, or the caller's view is stale. Nothing was written.
    #[error("log state conflict: storage holds size {stored_size}, round expected {expected_size}")]
    Conflict {
        /// Size held by storage.
        stored_size: u64,
        /// Size the round built on.
        expected_size: u64,
    },
    /// The round breaks the caller's side of the contract. Nothing was written.
    #[error("invalid round: {0}")]
    Invalid(String),
    /// The backend failed; the round may or may not have landed (retry it: it is idempotent).
    #[error("storage backend commit failed; the round may or may not be durable")]
    Backend(#[source] BackendError),
}

/// Why storing a checkpoint failed.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// A checkpoint for a larger tree is already stored. Nothing was written.
    #[error("a checkpoint of size {stored_size} is stored; refusing size {offered_size}")]
    Stale {
        /// Size of the stored checkpoint.
        stored_size: u64,
        /// Size of the refused checkpoint.
        offered_size: u64,
    },
    /// A checkpoint of the same size but another root is stored, or the root does not match the
    /// durable log state of that size. Nothing was written.
    #[error("checkpoint of size {size} does not match the stored root")]
    Fork {
        /// The size at which the roots differ.
        size: u64,
    },
    /// The checkpoint is for a tree larger than the durable log. Nothing was written.
    #[error("checkpoint of size {offered_size} is ahead of the durable log of size {durable_size}")]
    Ahead {
        /// Durable log size.
        durable_size: u64,
        /// Size of the refused checkpoint.
        offered_size: u64,
    },
    /// The backend failed; the checkpoint may or may not have landed (retry it).
    #[error("storage backend failed to store the checkpoint; it may or may not be durable")]
    Backend(#[source] BackendError),
}

/// Durable storage for one log.
///
/// # Contract
///
/// Every backend (redb, memory, ScyllaDB) must behave as follows; `storage::contract` tests
/// it.
///
/// - **Durability.** When [`commit_round`](Self::commit_round) or
///   [`put_checkpoint`](Self::put_checkpoint) returns `Ok`, everything it wrote is durable: it
///   survives a crash of the process or machine (redb: fsync'd commit; ScyllaDB: written at
///   QUORUM).
/// - **Atomicity.** A round's tiles, bundles, sidecar records and new log state become visible
///   together or not at all; readers never see a log state whose tiles or bundles are missing.
/// - **Fencing.** A round applies only if the durable state equals `round.previous`.
/// - **Idempotency.** A round whose `next` state is already the durable state returns `Ok`
///   without writing (so a caller that got [`CommitError::Backend`] — the write may have landed —
///   can retry the same round). Storing the same checkpoint again returns `Ok`.
/// - **Errors.** `Conflict`, `Invalid`, `Stale`, `Fork` and `Ahead` mean nothing was written.
///   `Backend` means the outcome is unknown.
/// - **Checkpoints only for durable state.** [`put_checkpoint`](Self::put_checkpoint) and
///   [`put_signed`](Self::put_signed) refuse a size above the durable log size, a smaller size
///   than their stored record, and a different root at the same size (or at the durable size).
///   Each writes its own record in its own transaction, never the round's (see the module
///   documentation for why).
/// - **Prefix stability.** A tile or bundle, once written, only ever grows: every later version
///   starts with the bytes of every earlier one. Reads return the latest version.
/// - **Restart is cheap.** [`load`](Self::load) reads the log state and the latest checkpoint;
///   the caller then reads the right-edge tiles and bundle with point reads. No method scans
///   entries.
/// - **Concurrency.** Methods take `&self` and may be called from many tasks; commits are
///   serialised by the backend. Reads see only committed data.
pub trait LogStorage: Send + Sync + 'static {
    /// A synchronous tile reader over one consistent snapshot, for proof generation (the proof
    /// code in [`crate::proof`] is synchronous and `no_std`). Its reads are point reads that may
    /// block briefly; a remote backend may serve them from a cache.
    type Tiles: TileReader<Error = ReadError> + Send;

    /// A tile reader over the data committed so far.
    ///
    /// # Errors
    /// [`ReadError::Backend`] if no snapshot can be taken.
    fn tile_reader(&self) -> Result<Self::Tiles, ReadError>;

    /// Reads the durable log state and the latest checkpoint.
    fn load(&self) -> impl Future<Output = Result<Restored, ReadError>> + Send;

    /// Makes one round durable, atomically (see the contract).
    fn commit_round(
        &self,
        round: Arc<RoundCommit>,
    ) -> impl Future<Output = Result<(), CommitError>> + Send;

    /// Records durably that the log signed a checkpoint of `state`, before the signature is
    /// shown to anyone. The same rules as [`put_checkpoint`](Self::put_checkpoint) apply
    /// against the durable log and the previous last-signed record (not ahead, not smaller, no
    /// second root for one size); recording the same state again returns `Ok`.
    fn put_signed(
        &self,
        state: LogState,
    ) -> impl Future<Output = Result<(), CheckpointError>> + Send;

    /// Stores `checkpoint` as the latest published checkpoint, durably (see the contract).
    fn put_checkpoint(
        &self,
        checkpoint: StoredCheckpoint,
    ) -> impl Future<Output = Result<(), CheckpointError>> + Send;

    /// The latest stored checkpoint.
    fn checkpoint(
        &self,
    ) -> impl Future<Output = Result<Option<StoredCheckpoint>, ReadError>> + Send;

    /// The widest stored version of a tile.
    fn tile(&self, key: TileKey)
    -> impl Future<Output = Result<Option<Vec<u8>>, ReadError>> + Send;

    /// The widest stored version of an entry bundle.
    fn bundle(&self, index: u64)
    -> impl Future<Output = Result<Option<Vec<u8>>, ReadError>> + Send;

    /// A sidecar record committed with a round.
    fn sidecar(
        &self,
        table: &str,
        key: &[u8],
    ) -> impl Future<Output = Result<Option<Vec<u8>>, ReadError>> + Send;
}
