//! The sequencer: one per log. It turns submitted entries into durable log positions, round by
//! round, and then signs, stores, witnesses and publishes checkpoints — off the append path.
//!
//! Data flow (DESIGN.md "Data flow" step 4):
//!
//! 1. `submit` puts an entry (with its sidecar records) into a bounded pool; a full pool refuses
//!    at once with [`SubmitError::PoolFull`] (retryable) instead of growing.
//! 2. Every `round_period_ms` the round task drains the pool, assigns consecutive indexes,
//!    updates the right edge of the tree ([`TileAppender`]) and the right-edge entry bundle, and
//!    commits everything in one durable [`RoundCommit`]. Only then does each submitter get its
//!    index (tokio oneshot), and only then is the new state handed to the checkpointer.
//! 3. The checkpointer records durably that it signs the newest durable state, signs a C2SP
//!    checkpoint of it, asks the witnesses for cosignatures in parallel (bounded by a timeout),
//!    and only then stores the cosigned note as the published checkpoint and publishes it. A
//!    slow or absent witness delays only the checkpointer, never the rounds; when it lags it
//!    skips straight to the newest durable state. On a timer it retries a step that failed on
//!    storage and asks again the witnesses that have not cosigned the current checkpoint.
//! 4. Both tasks are supervised: a broken invariant (or a panic) sets [`Health::Failed`]
//!    instead of ending a task silently; from then on submissions answer
//!    [`SubmitError::Failed`], and the node is expected to report it (`/healthz`) and exit.
//!
//! Invariants (asserted here; the fault-injecting storage double checks the first from outside):
//! - **Never signs state that is not durable**: the checkpointer only sees states that a
//!   commit returned `Ok` for (or that `load` returned at start).
//! - **Never signs two inconsistent checkpoints**: a new checkpoint's size is never smaller than
//!   the last signed one; the same size has the same root; a larger size is checked with a
//!   consistency proof from the last signed checkpoint before signing.
//! - **A restart continues from the last durable state**: start reads the log state, the
//!   right-edge tiles and bundle and the last checkpoint, checks that the tiles give the stored
//!   root, and appends from there.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::checkpoint::Checkpoint;
use crate::cosignature::verify_cosignature;
use crate::entry::{Entry, EntryError};
use crate::merkle::{Hash, LeafIndex, TreeSize, leaf_hash};
use crate::note::{Note, NoteSignature, NoteSigner};
use crate::proof::{
    ConsistencyProof, INTERIOR_CACHE_TILES_CEILING, INTERIOR_CACHE_TILES_DEFAULT, InclusionProof,
    ProofError, TileInteriorCache, consistency_proof, consistency_proof_cached,
    inclusion_proof_cached,
};
use crate::storage::{
    CheckpointError, CommitError, LogState, LogStorage, ReadError, RoundCommit, SidecarRecord,
    StoredCheckpoint, TileKey, validate_table_name,
};
use crate::tile::{BundleBuilder, MAX_BUNDLE_ENTRY_BYTES, TILE_WIDTH, TileAppender, TileId};
use crate::tlog_proof::TlogProof;
use crate::witness_client::WitnessClient;

/// Hard ceiling on the pool size (entries waiting for a round).
pub const POOL_ENTRIES_CEILING: usize = 4 * 1024 * 1024;
/// Hard ceiling on the bytes of entries waiting for a round.
pub const POOL_BYTES_CEILING: u64 = 4 * 1024 * 1024 * 1024;
/// Hard ceiling on sidecar records per submission.
pub const SIDECARS_PER_ENTRY_CEILING: usize = 1024;

/// Sequencer settings. Every default works on a laptop.
#[derive(Debug, Clone)]
pub struct SequencerConfig {
    /// Checkpoint origin line (C2SP tlog-checkpoint), e.g. `agritrace.example/log`.
    pub origin: String,
    /// Time between rounds. 10..=10,000 ms; 100 ms to 1 s in production. Default 100.
    pub round_period_ms: u64,
    /// Entries the pool holds before `submit` answers [`SubmitError::PoolFull`].
    /// 1..=[`POOL_ENTRIES_CEILING`]. Default 262,144.
    pub pool_entries_max: usize,
    /// Entry bytes the pool holds before `submit` answers [`SubmitError::PoolFull`].
    /// 65,536..=[`POOL_BYTES_CEILING`]. Default 256 MiB.
    pub pool_bytes_max: u64,
    /// Largest entry accepted, in bytes: 1..=65,535 (the entry bundle length prefix is a u16).
    /// Default 65,535.
    pub entry_bytes_max: usize,
    /// How long the checkpointer waits for witnesses per checkpoint. 1..=120,000 ms. Default
    /// 5,000.
    pub witness_timeout_ms: u64,
    /// Attempts of a failed commit (same round, idempotent) before reloading the durable state.
    /// 1..=100. Default 3.
    pub commit_attempts: u32,
    /// How often the checkpointer asks again the witnesses that have not cosigned the current
    /// checkpoint, while the log is quiet. 100..=3,600,000 ms. Default 30,000.
    pub witness_retry_ms: u64,
    /// Full tiles (levels >= 1) whose internal trees the proof-serving path keeps, about 16 KiB
    /// each. 0..=65,536 (0 turns the cache off, except for the partial right-edge tiles).
    /// Default 1,024.
    pub proof_cache_tiles_max: usize,
}

impl SequencerConfig {
    /// Defaults for `origin`.
    #[must_use]
    pub fn new(origin: &str) -> Self {
        Self {
            origin: origin.to_owned(),
            round_period_ms: 100,
            pool_entries_max: 262_144,
            pool_bytes_max: 256 * 1024 * 1024,
            entry_bytes_max: MAX_BUNDLE_ENTRY_BYTES,
            witness_timeout_ms: 5_000,
            commit_attempts: 3,
            witness_retry_ms: 30_000,
            proof_cache_tiles_max: INTERIOR_CACHE_TILES_DEFAULT,
        }
    }

    /// Checks every field against its range.
    ///
    /// # Errors
    /// [`StartError::Config`] naming the first bad field.
    pub fn validate(&self) -> Result<(), StartError> {
        let bad = |what: &str| Err(StartError::Config(what.to_owned()));
        if self.origin.is_empty() || self.origin.contains('\n') {
            return bad("origin must be one non-empty line");
        }
        if !(10..=10_000).contains(&self.round_period_ms) {
            return bad("round_period_ms must be 10..=10000");
        }
        if !(1..=POOL_ENTRIES_CEILING).contains(&self.pool_entries_max) {
            return bad("pool_entries_max must be 1..=4194304");
        }
        if !(65_536..=POOL_BYTES_CEILING).contains(&self.pool_bytes_max) {
            return bad("pool_bytes_max must be 65536..=4294967296");
        }
        if !(1..=MAX_BUNDLE_ENTRY_BYTES).contains(&self.entry_bytes_max) {
            return bad("entry_bytes_max must be 1..=65535");
        }
        if !(1..=120_000).contains(&self.witness_timeout_ms) {
            return bad("witness_timeout_ms must be 1..=120000");
        }
        if !(1..=100).contains(&self.commit_attempts) {
            return bad("commit_attempts must be 1..=100");
        }
        if !(100..=3_600_000).contains(&self.witness_retry_ms) {
            return bad("witness_retry_ms must be 100..=3600000");
        }
        if self.proof_cache_tiles_max > INTERIOR_CACHE_TILES_CEILING {
            return bad("proof_cache_tiles_max must be 0..=65536");
        }
        Ok(())
    }
}

/// Why the sequencer could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A setting is out of range.
    #[error("invalid sequencer configuration: {0}")]
    Config(String),
    /// The log key's name is not the configured origin (C2SP tlog-checkpoint: the log's key
    /// name is its origin).
    #[error("log key name {key_name:?} is not the origin {origin:?}")]
    KeyName {
        /// Key name.
        key_name: String,
        /// Configured origin.
        origin: String,
    },
    /// Storage could not be read.
    #[error("reading the durable log state failed")]
    Storage(#[from] ReadError),
    /// The stored right edge does not give the stored root: the data directory is damaged.
    #[error("stored log is inconsistent: {0}")]
    Corrupt(String),
}

/// Why a submission got no index.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum SubmitError {
    /// The pool is full. Retry later (back off).
    #[error("sequencer pool is full; retry later")]
    PoolFull,
    /// The entry is empty or larger than `entry_bytes_max`.
    #[error("entry of {len} bytes is outside 1..={max}")]
    EntrySize {
        /// Entry length.
        len: usize,
        /// Largest accepted.
        max: usize,
    },
    /// A sidecar record is malformed (reason given).
    #[error("bad sidecar record: {0}")]
    Sidecar(String),
    /// The round failed and the entry was not committed. Retry.
    #[error("the entry was not committed (storage failure); retry")]
    NotCommitted,
    /// Storage failed and the sequencer stopped (shutdown, or a failure) before it could tell
    /// whether the entry was committed. While it runs, the sequencer settles an unknown round
    /// by asking storage until it answers, and only then answers the round's submitters (with
    /// their indexes, or `NotCommitted`), so a resubmission never duplicates an entry. After
    /// this answer, retrying may duplicate it; callers deduplicate on their own keys.
    #[error("storage failed; the entry may or may not be committed")]
    OutcomeUnknown,
    /// The bytes are not a log entry (`Entry::decode` refuses them): the log holds only
    /// entries.
    #[error("not a log entry: {0}")]
    NotAnEntry(EntryError),
    /// The sequencer is stopped.
    #[error("the sequencer is stopped")]
    Stopped,
    /// The sequencer stopped after a broken invariant or a storage fencing failure (reason
    /// given); see [`SequencerHandle::health`]. Not retryable on this process.
    #[error("the sequencer has failed: {0}")]
    Failed(String),
}

/// Whether the sequencer's tasks are working.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// Both tasks run (storage may still be failing transiently; see the stats).
    Healthy,
    /// A task stopped for good: an invariant did not hold, another writer advanced the log, or
    /// a task panicked. The reason is for the operator. Restart the process.
    Failed(String),
}

/// The tasks' side of [`Health`]: the first failure wins.
#[derive(Debug, Clone)]
struct HealthReporter(Arc<watch::Sender<Health>>);

impl HealthReporter {
    fn fail(&self, reason: String) {
        tracing::error!(reason = %reason, "sequencer failed: it stops appending and checkpointing");
        self.0.send_if_modified(|health| {
            if *health == Health::Healthy {
                *health = Health::Failed(reason);
                true
            } else {
                false
            }
        });
    }

    fn failure(&self) -> Option<String> {
        match &*self.0.borrow() {
            Health::Healthy => None,
            Health::Failed(reason) => Some(reason.clone()),
        }
    }
}

impl SubmitError {
    /// Whether submitting the same entry again later may succeed.
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::PoolFull | Self::NotCommitted | Self::OutcomeUnknown
        )
    }
}

/// Why a proof could not be served.
#[derive(Debug, thiserror::Error)]
pub enum ServeProofError {
    /// No checkpoint has been published yet.
    #[error("no checkpoint published yet")]
    NoCheckpoint,
    /// The leaf is not covered by the published checkpoint (yet).
    #[error("leaf {leaf} is not in the published tree of size {size}")]
    NotYetPublished {
        /// Requested leaf.
        leaf: u64,
        /// Published size.
        size: u64,
    },
    /// Tiles could not be read or are missing.
    #[error("proof generation failed: {0}")]
    Proof(#[from] ProofError<ReadError>),
    /// Storage could not be read.
    #[error("storage read failed")]
    Storage(#[from] ReadError),
}

/// A checkpoint as published: log-signed, with whatever cosignatures the witnesses returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedCheckpoint {
    /// Tree size.
    pub size: TreeSize,
    /// Root hash.
    pub root: Hash,
    /// The signed note (log signature, then cosignature lines).
    pub note: String,
    /// Names of the witnesses whose cosignatures it carries.
    pub cosigned_by: Vec<String>,
}

/// Counters a person on call asks about (exported by the API's `/metrics`).
#[derive(Debug, Default)]
pub struct SequencerStats {
    rounds_committed: AtomicU64,
    rounds_failed: AtomicU64,
    entries_committed: AtomicU64,
    pool_refusals: AtomicU64,
    last_round_micros: AtomicU64,
    checkpoints_published: AtomicU64,
    cosignatures_gathered: AtomicU64,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StatsSnapshot {
    /// Rounds committed durably.
    pub rounds_committed: u64,
    /// Rounds whose commit failed (entries answered `NotCommitted` or `OutcomeUnknown`).
    pub rounds_failed: u64,
    /// Entries committed durably.
    pub entries_committed: u64,
    /// Submissions refused because the pool was full.
    pub pool_refusals: u64,
    /// Time to build and commit the last committed round, in microseconds.
    pub last_round_micros: u64,
    /// Checkpoints signed, stored and published.
    pub checkpoints_published: u64,
    /// Witness cosignatures gathered in total.
    pub cosignatures_gathered: u64,
}

impl SequencerStats {
    /// The counters now.
    #[must_use]
    pub fn snapshot(&self) -> StatsSnapshot {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        StatsSnapshot {
            rounds_committed: read(&self.rounds_committed),
            rounds_failed: read(&self.rounds_failed),
            entries_committed: read(&self.entries_committed),
            pool_refusals: read(&self.pool_refusals),
            last_round_micros: read(&self.last_round_micros),
            checkpoints_published: read(&self.checkpoints_published),
            cosignatures_gathered: read(&self.cosignatures_gathered),
        }
    }
}

/// Bytes a submission holds in the pool: the entry and its sidecar records.
fn submission_bytes(entry: &[u8], sidecars: &[SidecarRecord]) -> u64 {
    let sidecar_bytes: usize = sidecars
        .iter()
        .map(|r| r.table.len() + r.key.len() + r.value.len())
        .sum();
    u64::try_from(entry.len() + sidecar_bytes).unwrap_or(u64::MAX)
}

struct Submission {
    entry: Vec<u8>,
    sidecars: Vec<SidecarRecord>,
    reply: oneshot::Sender<Result<LeafIndex, SubmitError>>,
}

/// A submission waiting for its round.
#[derive(Debug)]
pub struct PendingIndex(oneshot::Receiver<Result<LeafIndex, SubmitError>>);

impl PendingIndex {
    /// Waits for the round that commits the entry: its index once durable, or why not.
    ///
    /// # Errors
    /// [`SubmitError`] as answered by the round, or `Stopped`.
    pub async fn wait(self) -> Result<LeafIndex, SubmitError> {
        self.0.await.unwrap_or(Err(SubmitError::Stopped))
    }
}

/// The cheap, cloneable handle to a running sequencer.
#[derive(Debug)]
pub struct SequencerHandle<S> {
    pool: mpsc::Sender<Submission>,
    storage: S,
    durable: watch::Receiver<LogState>,
    published: watch::Receiver<Option<Arc<PublishedCheckpoint>>>,
    entry_bytes_max: usize,
    stats: Arc<SequencerStats>,
    pooled_bytes: Arc<AtomicU64>,
    pool_bytes_max: u64,
    proof_cache: Arc<Mutex<TileInteriorCache>>,
    health: watch::Receiver<Health>,
}

impl<S: Clone> Clone for SequencerHandle<S> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            storage: self.storage.clone(),
            durable: self.durable.clone(),
            published: self.published.clone(),
            entry_bytes_max: self.entry_bytes_max,
            stats: self.stats.clone(),
            pooled_bytes: self.pooled_bytes.clone(),
            pool_bytes_max: self.pool_bytes_max,
            proof_cache: self.proof_cache.clone(),
            health: self.health.clone(),
        }
    }
}

impl<S: LogStorage + Clone> SequencerHandle<S> {
    /// Queues `entry` (and the sidecar records to commit with it) for the next round, or
    /// refuses at once if the pool is full or the submission is malformed.
    ///
    /// # Errors
    /// [`SubmitError::PoolFull`], `EntrySize`, `NotAnEntry`, `Sidecar`, `Stopped` or `Failed`.
    pub fn try_submit(
        &self,
        entry: Vec<u8>,
        sidecars: Vec<SidecarRecord>,
    ) -> Result<PendingIndex, SubmitError> {
        if let Health::Failed(reason) = &*self.health.borrow() {
            return Err(SubmitError::Failed(reason.clone()));
        }
        if entry.is_empty() || entry.len() > self.entry_bytes_max {
            return Err(SubmitError::EntrySize {
                len: entry.len(),
                max: self.entry_bytes_max,
            });
        }
        // The log holds entries only: verifiers decode what they prove, and an undecodable
        // leaf could never be shown as evidence.
        Entry::decode(&entry).map_err(SubmitError::NotAnEntry)?;
        if sidecars.len() > SIDECARS_PER_ENTRY_CEILING {
            return Err(SubmitError::Sidecar(format!(
                "more than {SIDECARS_PER_ENTRY_CEILING} records"
            )));
        }
        for record in &sidecars {
            validate_table_name(&record.table).map_err(SubmitError::Sidecar)?;
        }
        // Reserve the entry's bytes in the pool; the round task releases them when it drains.
        let bytes = submission_bytes(&entry, &sidecars);
        let reserved =
            self.pooled_bytes
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |pooled| {
                    pooled
                        .checked_add(bytes)
                        .filter(|total| *total <= self.pool_bytes_max)
                });
        if reserved.is_err() {
            self.stats.pool_refusals.fetch_add(1, Ordering::Relaxed);
            return Err(SubmitError::PoolFull);
        }
        let (reply, answer) = oneshot::channel();
        let submission = Submission {
            entry,
            sidecars,
            reply,
        };
        match self.pool.try_send(submission) {
            Ok(()) => Ok(PendingIndex(answer)),
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.pooled_bytes.fetch_sub(bytes, Ordering::AcqRel);
                self.stats.pool_refusals.fetch_add(1, Ordering::Relaxed);
                Err(SubmitError::PoolFull)
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.pooled_bytes.fetch_sub(bytes, Ordering::AcqRel);
                Err(SubmitError::Stopped)
            }
        }
    }

    /// Submits and waits for the entry's index (returned once the entry is durable).
    ///
    /// # Errors
    /// As [`try_submit`](Self::try_submit) and [`PendingIndex::wait`].
    pub async fn submit(
        &self,
        entry: Vec<u8>,
        sidecars: Vec<SidecarRecord>,
    ) -> Result<LeafIndex, SubmitError> {
        self.try_submit(entry, sidecars)?.wait().await
    }

    /// The durable log state (size and root after the last committed round).
    #[must_use]
    pub fn durable_state(&self) -> LogState {
        *self.durable.borrow()
    }

    /// The latest published checkpoint.
    #[must_use]
    pub fn checkpoint(&self) -> Option<Arc<PublishedCheckpoint>> {
        self.published.borrow().clone()
    }

    /// Waits until a checkpoint of at least `size` is published.
    ///
    /// # Errors
    /// [`SubmitError::Stopped`] if the sequencer stops first.
    pub async fn wait_for_checkpoint(
        &self,
        size: TreeSize,
    ) -> Result<Arc<PublishedCheckpoint>, SubmitError> {
        let mut published = self.published.clone();
        let found = published
            .wait_for(|p| p.as_ref().is_some_and(|p| p.size.0 >= size.0))
            .await
            .map_err(|_| SubmitError::Stopped)?;
        found.clone().ok_or(SubmitError::Stopped)
    }

    /// The exact bytes of the durable entry at `index`, or `None` if the log is not that long.
    ///
    /// # Errors
    /// [`ReadError`] if storage fails or the bundle is malformed.
    pub async fn entry(&self, index: LeafIndex) -> Result<Option<Vec<u8>>, ReadError> {
        if index.0 >= self.durable_state().size {
            return Ok(None);
        }
        let Some(bundle) = self.storage.bundle(index.0 / u64::from(TILE_WIDTH)).await? else {
            return Err(ReadError::Corrupt(format!(
                "entry bundle for durable entry {} is missing",
                index.0
            )));
        };
        let entries = crate::tile::parse_bundle(&bundle)
            .map_err(|e| ReadError::Corrupt(format!("entry bundle: {e}")))?;
        let offset = usize::try_from(index.0 % u64::from(TILE_WIDTH))
            .map_err(|_| ReadError::Corrupt("bundle offset".into()))?;
        Ok(entries.get(offset).map(|e| e.to_vec()))
    }

    /// The inclusion proof of `index` against the latest published checkpoint.
    ///
    /// Synchronous: a few tile point reads from one snapshot and some tens of microseconds of
    /// hashing (the leaf's level-0 tile is recomputed; higher full tiles and the right edge come
    /// from the handle's bounded cache of tile internal trees); under heavy load call it from
    /// `spawn_blocking`.
    ///
    /// # Errors
    /// [`ServeProofError`] if nothing is published yet, the leaf is not covered yet, or storage
    /// fails.
    pub fn inclusion_proof(
        &self,
        index: LeafIndex,
    ) -> Result<(InclusionProof, Arc<PublishedCheckpoint>), ServeProofError> {
        let published = self.checkpoint().ok_or(ServeProofError::NoCheckpoint)?;
        if index.0 >= published.size.0 {
            return Err(ServeProofError::NotYetPublished {
                leaf: index.0,
                size: published.size.0,
            });
        }
        let tiles = self.storage.tile_reader()?;
        let proof = inclusion_proof_cached(index, published.size, &tiles, &*self.proof_cache)?;
        Ok((proof, published))
    }

    /// The consistency proof from a tree of `old` leaves to the latest published checkpoint.
    ///
    /// # Errors
    /// [`ServeProofError`] if nothing is published, `old` is larger, or storage fails.
    pub fn consistency_proof(
        &self,
        old: TreeSize,
    ) -> Result<(ConsistencyProof, Arc<PublishedCheckpoint>), ServeProofError> {
        let published = self.checkpoint().ok_or(ServeProofError::NoCheckpoint)?;
        let tiles = self.storage.tile_reader()?;
        let proof = consistency_proof_cached(old, published.size, &tiles, &*self.proof_cache)?;
        Ok((proof, published))
    }

    /// A C2SP tlog-proof file for the entry at `index`: its inclusion proof against the latest
    /// published (cosigned) checkpoint, with that checkpoint's note — what `agritrace-verify`
    /// checks offline. Synchronous like [`inclusion_proof`](Self::inclusion_proof).
    ///
    /// # Errors
    /// As [`inclusion_proof`](Self::inclusion_proof).
    pub fn tlog_proof(&self, index: LeafIndex) -> Result<TlogProof, ServeProofError> {
        let (proof, published) = self.inclusion_proof(index)?;
        Ok(TlogProof {
            extra: None,
            index,
            path: proof.path,
            checkpoint: published.note.clone(),
        })
    }

    /// Whether the sequencer is working; [`Health::Failed`] is final for this process.
    #[must_use]
    pub fn health(&self) -> Health {
        self.health.borrow().clone()
    }

    /// Waits until the sequencer fails and returns the reason (for a node that exits then).
    /// Pends forever while healthy; returns `None` if the sequencer was dropped healthy.
    pub async fn wait_for_failure(&self) -> Option<String> {
        let mut health = self.health.clone();
        let failed = health
            .wait_for(|h| matches!(h, Health::Failed(_)))
            .await
            .ok()?;
        match &*failed {
            Health::Failed(reason) => Some(reason.clone()),
            Health::Healthy => None,
        }
    }

    /// The sequencer's counters.
    #[must_use]
    pub fn stats(&self) -> StatsSnapshot {
        self.stats.snapshot()
    }

    /// The storage the sequencer writes to (for the HTTP read side and sidecar reads).
    pub fn storage(&self) -> &S {
        &self.storage
    }
}

/// The sequencer's background tasks.
#[derive(Debug)]
pub struct SequencerTasks {
    stop: watch::Sender<bool>,
    rounds: JoinHandle<()>,
    checkpoints: JoinHandle<()>,
}

impl SequencerTasks {
    /// Stops taking new rounds, lets the round in progress and the checkpoint of the last
    /// durable state finish, and waits for both tasks. Entries still in the pool are answered
    /// [`SubmitError::Stopped`].
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.rounds.await;
        let _ = self.checkpoints.await;
    }
}

/// Where the round task keeps the right edge between rounds.
struct RightEdge {
    appender: TileAppender,
    bundle: BundleBuilder,
    state: LogState,
}

/// Starts a sequencer on `storage`, resuming from its durable state.
///
/// # Errors
/// [`StartError`] if the configuration is invalid, the key does not match the origin, or the
/// stored state cannot be read or is inconsistent.
pub async fn start<S: LogStorage + Clone>(
    storage: S,
    log_key: NoteSigner,
    config: SequencerConfig,
    witnesses: WitnessClient,
) -> Result<(SequencerHandle<S>, SequencerTasks), StartError> {
    config.validate()?;
    if log_key.name() != config.origin {
        return Err(StartError::KeyName {
            key_name: log_key.name().to_owned(),
            origin: config.origin.clone(),
        });
    }
    let restored = storage.load().await?;
    let edge = restore_right_edge(&storage, restored.state).await?;
    let last_signed = restored.last_signed();
    if let Some(signed) = last_signed {
        // A signed state is only ever durable state (storage contract).
        if signed.size > edge.state.size {
            return Err(StartError::Corrupt(format!(
                "checkpoint of size {} is ahead of the durable log of size {}",
                signed.size, edge.state.size
            )));
        }
    }
    let resumed = restored
        .checkpoint
        .as_ref()
        .and_then(|stored| resume_published(stored, &log_key, &witnesses));
    let (published_initial, current) = match resumed {
        Some((published, current)) => (Some(published), Some(current)),
        None => (None, None),
    };
    tracing::info!(
        origin = %config.origin,
        size = edge.state.size,
        checkpoint_size = last_signed.map(|s| s.size),
        cosigned_by = ?published_initial.as_ref().map(|p| p.cosigned_by.clone()),
        "sequencer resumed from durable state"
    );

    let (pool_tx, pool_rx) = mpsc::channel(config.pool_entries_max);
    let (durable_tx, durable_rx) = watch::channel(edge.state);
    let (published_tx, published_rx) = watch::channel(published_initial);
    let (stop_tx, stop_rx) = watch::channel(false);
    let (health_tx, health_rx) = watch::channel(Health::Healthy);
    let health = HealthReporter(Arc::new(health_tx));

    let stats = Arc::new(SequencerStats::default());
    let pooled_bytes = Arc::new(AtomicU64::new(0));
    let rounds = supervise(
        "round",
        health.clone(),
        tokio::spawn(run_rounds(RoundTask {
            pooled_bytes: pooled_bytes.clone(),
            stats: stats.clone(),
            storage: storage.clone(),
            config: config.clone(),
            edge,
            pool: pool_rx,
            durable: durable_tx,
            stop: stop_rx,
            health: health.clone(),
        })),
    );
    let checkpointer = Checkpointer {
        stats: stats.clone(),
        storage: storage.clone(),
        log_key,
        origin: config.origin.clone(),
        witnesses,
        witness_retry: Duration::from_millis(config.witness_retry_ms),
        last_signed,
        current,
        published: published_tx,
        health: health.clone(),
    };
    let checkpoints = supervise(
        "checkpointer",
        health,
        tokio::spawn(checkpointer.run(durable_rx.clone())),
    );
    let handle = SequencerHandle {
        pool: pool_tx,
        storage,
        durable: durable_rx,
        published: published_rx,
        entry_bytes_max: config.entry_bytes_max,
        stats,
        pooled_bytes: pooled_bytes.clone(),
        pool_bytes_max: config.pool_bytes_max,
        proof_cache: Arc::new(Mutex::new(TileInteriorCache::new(
            config.proof_cache_tiles_max,
        ))),
        health: health_rx,
    };
    Ok((
        handle,
        SequencerTasks {
            stop: stop_tx,
            rounds,
            checkpoints,
        },
    ))
}

/// Watches a task: a panic is reported as [`Health::Failed`] instead of vanishing with the
/// task (nobody awaits the task's handle until shutdown).
fn supervise(task: &'static str, health: HealthReporter, handle: JoinHandle<()>) -> JoinHandle<()> {
    tokio::spawn(async move {
        match handle.await {
            Ok(()) => {}
            Err(e) if e.is_panic() => {
                let payload = e.into_panic();
                let message = payload
                    .downcast_ref::<&str>()
                    .map(|m| (*m).to_owned())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "no message".to_owned());
                health.fail(format!("the {task} task panicked: {message}"));
            }
            Err(_) => {
                // Cancelled: the runtime is shutting down.
            }
        }
    })
}

/// Reads the right-edge tiles and bundle (point reads only) and rebuilds the appender, checking
/// that they give the stored root.
async fn restore_right_edge<S: LogStorage>(
    storage: &S,
    state: LogState,
) -> Result<RightEdge, StartError> {
    let size = TreeSize(state.size);
    let mut tiles: Vec<(TileId, Vec<u8>)> = Vec::new();
    for id in TileAppender::right_edge_tiles(size) {
        let key = TileKey {
            level: id.level,
            index: id.index,
        };
        let bytes = storage.tile(key).await?.ok_or_else(|| {
            StartError::Corrupt(format!("right-edge tile {} is missing", id.path()))
        })?;
        tiles.push((id, bytes));
    }
    let appender = TileAppender::from_tiles(size, &tiles)
        .map_err(|e| StartError::Corrupt(format!("right edge: {e}")))?;
    if appender.root().0 != state.root {
        return Err(StartError::Corrupt(format!(
            "right-edge tiles give root {} but the stored root is {}",
            appender.root(),
            Hash(state.root)
        )));
    }
    let bundle_width = state.size % u64::from(TILE_WIDTH);
    let bundle = if bundle_width == 0 {
        BundleBuilder::new()
    } else {
        let index = state.size / u64::from(TILE_WIDTH);
        let bytes = storage.bundle(index).await?.ok_or_else(|| {
            StartError::Corrupt(format!("right-edge entry bundle {index} is missing"))
        })?;
        let bundle = BundleBuilder::from_bytes(bytes)
            .map_err(|e| StartError::Corrupt(format!("right-edge entry bundle: {e}")))?;
        if u64::from(bundle.width()) != bundle_width {
            return Err(StartError::Corrupt(format!(
                "right-edge entry bundle holds {} entries, the log size needs {bundle_width}",
                bundle.width()
            )));
        }
        bundle
    };
    Ok(RightEdge {
        appender,
        bundle,
        state,
    })
}

/// What the round task owns.
struct RoundTask<S> {
    pooled_bytes: Arc<AtomicU64>,
    stats: Arc<SequencerStats>,
    storage: S,
    config: SequencerConfig,
    edge: RightEdge,
    pool: mpsc::Receiver<Submission>,
    durable: watch::Sender<LogState>,
    stop: watch::Receiver<bool>,
    health: HealthReporter,
}

/// Answers every submission of `batch` and of the closed pool with `error`.
fn answer_all(
    batch: &mut Vec<Submission>,
    pool: &mut mpsc::Receiver<Submission>,
    error: &SubmitError,
) {
    pool.close();
    for submission in batch.drain(..) {
        let _ = submission.reply.send(Err(error.clone()));
    }
    while let Ok(submission) = pool.try_recv() {
        let _ = submission.reply.send(Err(error.clone()));
    }
}

/// The round loop: drain the pool, commit, answer, hand the state to the checkpointer.
async fn run_rounds<S: LogStorage>(task: RoundTask<S>) {
    let RoundTask {
        pooled_bytes,
        stats,
        storage,
        config,
        mut edge,
        mut pool,
        durable,
        mut stop,
        health,
    } = task;
    let mut ticker = tokio::time::interval(Duration::from_millis(config.round_period_ms));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut batch: Vec<Submission> = Vec::new();
    loop {
        let stopping = tokio::select! {
            _ = ticker.tick() => false,
            _ = stop.changed() => true,
        };
        let mut closed = false;
        loop {
            match pool.try_recv() {
                Ok(submission) => {
                    let bytes = submission_bytes(&submission.entry, &submission.sidecars);
                    pooled_bytes.fetch_sub(bytes, Ordering::AcqRel);
                    batch.push(submission);
                }
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    closed = true;
                    break;
                }
            }
        }
        if let Some(reason) = health.failure() {
            // The checkpointer found a broken invariant: append nothing more.
            answer_all(&mut batch, &mut pool, &SubmitError::Failed(reason));
            return;
        }
        if !batch.is_empty() {
            let round = Round {
                storage: &storage,
                config: &config,
                durable: &durable,
                health: &health,
                stats: &stats,
                started: Instant::now(),
            };
            match round.run(&mut edge, &mut batch, &mut stop).await {
                // Counted by the round before it answered.
                RoundResult::Committed => {}
                RoundResult::NotCommitted => {
                    stats.rounds_failed.fetch_add(1, Ordering::Relaxed);
                }
                RoundResult::Stop => {
                    stats.rounds_failed.fetch_add(1, Ordering::Relaxed);
                    let error = health
                        .failure()
                        .map_or(SubmitError::Stopped, SubmitError::Failed);
                    answer_all(&mut batch, &mut pool, &error);
                    return;
                }
            }
        }
        if stopping || closed {
            answer_all(&mut batch, &mut pool, &SubmitError::Stopped);
            return;
        }
    }
}

/// Builds the round's commit from the batch, without touching `edge` (so a failed commit
/// leaves the in-memory state as it was). Returns the commit and the edge after it, or why the
/// round cannot be built (a bug: entries are bounded at submission).
fn build_round(
    edge: &RightEdge,
    batch: &[Submission],
) -> Result<(RoundCommit, TileAppender, BundleBuilder), String> {
    let mut appender = edge.appender.clone();
    let mut bundle = edge.bundle.clone();
    let start = edge.state.size;
    let leaves: Vec<Hash> = batch.iter().map(|s| leaf_hash(&s.entry)).collect();
    let outcome = appender.append(&leaves);
    let mut bundles = Vec::new();
    for (offset, submission) in (0u64..).zip(batch) {
        let index = start + offset;
        // Entries are bounded to 65,535 bytes at submission and a full bundle is replaced
        // below before the next push, so this fails only through a bug.
        bundle
            .push(&submission.entry)
            .map_err(|e| format!("entry {index} does not fit its bundle: {e}"))?;
        if bundle.is_full() {
            let full = std::mem::take(&mut bundle);
            bundles.push((index / u64::from(TILE_WIDTH), full.into_bytes()));
        }
    }
    let next_size = outcome.size.0;
    if bundle.width() > 0 {
        bundles.push((
            next_size / u64::from(TILE_WIDTH),
            bundle.as_bytes().to_vec(),
        ));
    }
    let tiles = outcome
        .changed_tiles
        .into_iter()
        .map(|(id, bytes)| {
            (
                TileKey {
                    level: id.level,
                    index: id.index,
                },
                bytes,
            )
        })
        .collect();
    let sidecars = batch
        .iter()
        .flat_map(|s| s.sidecars.iter().cloned())
        .collect();
    let commit = RoundCommit {
        previous: edge.state,
        next: LogState {
            size: next_size,
            root: outcome.root.0,
        },
        tiles,
        bundles,
        sidecars,
    };
    Ok((commit, appender, bundle))
}

/// How a round's commit ended, once known.
enum RoundOutcome {
    Landed,
    NotLanded,
    Unknown,
    /// Storage holds a state this sequencer did not write: another writer is active.
    Fenced(String),
}

/// What the round loop does after a round.
enum RoundResult {
    /// Committed and answered with indexes.
    Committed,
    /// Answered with an error; the next round builds on the unchanged durable state.
    NotCommitted,
    /// Stop the round task: shutdown was asked for, or the sequencer failed (health says).
    Stop,
}

/// What storage showed after a round whose commit outcome was unknown.
enum Settled {
    /// The round is durable (the right edge was rebuilt from storage).
    Landed,
    /// Storage holds the state before the round.
    NotLanded,
    /// Shutdown was asked for, or the sequencer failed (health says), before storage told.
    Stop,
}

/// What one round needs besides the right edge and the batch.
struct Round<'a, S> {
    storage: &'a S,
    config: &'a SequencerConfig,
    durable: &'a watch::Sender<LogState>,
    health: &'a HealthReporter,
    stats: &'a SequencerStats,
    started: Instant,
}

impl<S: LogStorage> Round<'_, S> {
    /// Counts a durable round, then answers its submitters with their indexes (from `start`),
    /// so that a submitter reading the stats after its answer finds its entry counted.
    fn answer_landed(&self, start: u64, batch: &mut Vec<Submission>) {
        let count = u64::try_from(batch.len()).unwrap_or(u64::MAX);
        self.stats.rounds_committed.fetch_add(1, Ordering::Relaxed);
        self.stats
            .entries_committed
            .fetch_add(count, Ordering::Relaxed);
        let micros = u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.stats
            .last_round_micros
            .store(micros, Ordering::Relaxed);
        for (offset, submission) in (0u64..).zip(batch.drain(..)) {
            let _ = submission.reply.send(Ok(LeafIndex(start + offset)));
        }
    }

    /// Runs one round: build, commit (with recovery), answer.
    async fn run(
        &self,
        edge: &mut RightEdge,
        batch: &mut Vec<Submission>,
        stop: &mut watch::Receiver<bool>,
    ) -> RoundResult {
        let (commit, appender, bundle) = match build_round(edge, batch) {
            Ok(built) => built,
            Err(reason) => {
                self.health.fail(reason);
                return RoundResult::Stop;
            }
        };
        let commit = Arc::new(commit);
        let outcome = commit_with_recovery(self.storage, self.config, &commit).await;
        let start = edge.state.size;
        match outcome {
            RoundOutcome::Landed => {
                if appender.size().0 != commit.next.size {
                    self.health.fail(format!(
                        "appender size {} and commit size {} disagree",
                        appender.size().0,
                        commit.next.size
                    ));
                    return RoundResult::Stop;
                }
                edge.appender = appender;
                edge.bundle = bundle;
                edge.state = commit.next;
                // Readers (entries, proofs, the checkpointer) see the new state before any
                // submitter hears its index.
                let _ = self.durable.send(commit.next);
                // A crash after the commit and before these answers is safe: the entries are
                // durable, the submitters retry, and callers deduplicate.
                self.answer_landed(start, batch);
                RoundResult::Committed
            }
            RoundOutcome::NotLanded => {
                for submission in batch.drain(..) {
                    let _ = submission.reply.send(Err(SubmitError::NotCommitted));
                }
                RoundResult::NotCommitted
            }
            RoundOutcome::Fenced(reason) => {
                for submission in batch.drain(..) {
                    let _ = submission.reply.send(Err(SubmitError::NotCommitted));
                }
                self.health.fail(reason);
                RoundResult::Stop
            }
            RoundOutcome::Unknown => {
                // The submitters wait for the settled outcome: told "unknown", they would
                // resubmit entries that may already be in the log, and the log would hold
                // them twice.
                match self.settle_unknown(&commit, edge, stop).await {
                    Settled::Landed => {
                        self.answer_landed(start, batch);
                        RoundResult::Committed
                    }
                    Settled::NotLanded => {
                        for submission in batch.drain(..) {
                            let _ = submission.reply.send(Err(SubmitError::NotCommitted));
                        }
                        RoundResult::NotCommitted
                    }
                    Settled::Stop => {
                        for submission in batch.drain(..) {
                            let _ = submission.reply.send(Err(SubmitError::OutcomeUnknown));
                        }
                        RoundResult::Stop
                    }
                }
            }
        }
    }

    /// After a commit whose outcome is unknown: never append on top of an unknown state; ask
    /// storage every round period which state is durable, until it answers, shutdown is asked
    /// for, or it shows a state this sequencer did not write (then the sequencer fails: going
    /// on from a stale edge would only conflict forever).
    async fn settle_unknown(
        &self,
        commit: &RoundCommit,
        edge: &mut RightEdge,
        stop: &mut watch::Receiver<bool>,
    ) -> Settled {
        let mut attempt = 0u64;
        loop {
            if *stop.borrow() {
                tracing::warn!(
                    size = commit.next.size,
                    "stopping while the last round's outcome is unknown"
                );
                return Settled::Stop;
            }
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(self.config.round_period_ms)) => {}
                _ = stop.changed() => continue,
            }
            attempt += 1;
            match self.storage.load().await {
                Ok(restored) if restored.state == commit.next => {
                    match restore_right_edge(self.storage, restored.state).await {
                        Ok(restored_edge) => {
                            *edge = restored_edge;
                            let _ = self.durable.send(commit.next);
                            tracing::info!(size = commit.next.size, "the unknown round had landed");
                            return Settled::Landed;
                        }
                        Err(StartError::Storage(e)) => {
                            tracing::warn!(error = %e, attempt, "reading the right edge failed; retrying");
                        }
                        Err(e) => {
                            self.health.fail(format!(
                                "the right edge of the durable log cannot be rebuilt: {e}"
                            ));
                            return Settled::Stop;
                        }
                    }
                }
                Ok(restored) if restored.state == commit.previous => {
                    tracing::info!(
                        size = commit.previous.size,
                        "the unknown round had not landed"
                    );
                    return Settled::NotLanded;
                }
                Ok(restored) => {
                    self.health.fail(format!(
                        "log state changed under the sequencer (storage holds size {}, this \
                         sequencer wrote size {} or {}): another writer is active",
                        restored.state.size, commit.previous.size, commit.next.size
                    ));
                    return Settled::Stop;
                }
                Err(e) => {
                    tracing::warn!(error = %e, attempt, "storage still unavailable; the last round's outcome is unknown");
                }
            }
        }
    }
}

/// Commits, retrying the same (idempotent) round on backend errors, and when attempts run out
/// asks storage which state is durable.
async fn commit_with_recovery<S: LogStorage>(
    storage: &S,
    config: &SequencerConfig,
    commit: &Arc<RoundCommit>,
) -> RoundOutcome {
    for attempt in 1..=config.commit_attempts {
        match storage.commit_round(commit.clone()).await {
            Ok(()) => return RoundOutcome::Landed,
            Err(CommitError::Backend(e)) => {
                tracing::warn!(error = %e, attempt, size = commit.next.size, "round commit failed");
            }
            Err(e @ CommitError::Conflict { .. }) => {
                return RoundOutcome::Fenced(format!(
                    "round refused by storage ({e}): another writer advanced the log"
                ));
            }
            Err(e @ CommitError::Invalid(_)) => {
                tracing::error!(error = %e, "round refused by storage; nothing was written");
                return RoundOutcome::NotLanded;
            }
        }
    }
    match storage.load().await {
        Ok(restored) if restored.state == commit.next => RoundOutcome::Landed,
        Ok(restored) if restored.state == commit.previous => RoundOutcome::NotLanded,
        Ok(_) | Err(_) => RoundOutcome::Unknown,
    }
}

/// The checkpoint the checkpointer is working on: signed (and recorded as signed), perhaps
/// published, perhaps still missing some witnesses' cosignatures.
struct Current {
    state: LogState,
    checkpoint: Checkpoint,
    /// The log-signed note, without cosignatures.
    signed: String,
    /// Verified cosignature lines gathered so far, by witness name.
    cosignatures: Vec<(String, NoteSignature)>,
    /// Whether the note with these cosignatures is stored and published.
    published: bool,
}

impl Current {
    fn note(&self) -> String {
        let mut note = self.signed.clone();
        for (_, line) in &self.cosignatures {
            note.push_str(&line.to_line());
        }
        note
    }
}

struct Checkpointer<S> {
    stats: Arc<SequencerStats>,
    storage: S,
    log_key: NoteSigner,
    origin: String,
    witnesses: WitnessClient,
    witness_retry: Duration,
    last_signed: Option<LogState>,
    current: Option<Current>,
    published: watch::Sender<Option<Arc<PublishedCheckpoint>>>,
    health: HealthReporter,
}

/// Why one checkpoint step did not finish.
#[derive(Debug)]
enum StepError {
    /// Storage could not be read or written (the outcome may be unknown): retry later.
    Transient(String),
    /// A sequencer invariant does not hold: stop and report (never sign past it).
    Invariant(String),
}

/// First wait before retrying a checkpoint step that failed on storage.
const CHECKPOINT_RETRY_MIN: Duration = Duration::from_millis(50);
/// Longest wait between retries of a checkpoint step that failed on storage.
const CHECKPOINT_RETRY_MAX: Duration = Duration::from_secs(5);

fn store_error(what: &str, error: CheckpointError) -> StepError {
    match error {
        CheckpointError::Backend(e) => StepError::Transient(format!("storing the {what}: {e}")),
        // Stale, Fork, Ahead: storage refuses what the sequencer believed consistent and
        // durable; signing on would risk two inconsistent checkpoints.
        refused => StepError::Invariant(format!("storage refused the {what}: {refused}")),
    }
}

impl<S: LogStorage + Clone> Checkpointer<S> {
    /// Checkpoints each new durable state; wakes up on its own to retry a step that failed on
    /// storage (with backoff) and, while fewer than the configured witnesses have cosigned the
    /// current checkpoint, to ask the missing ones again every `witness_retry_ms` — so a quiet
    /// log still gets its checkpoint stored and cosigned.
    async fn run(mut self, mut durable: watch::Receiver<LogState>) {
        let mut backoff = CHECKPOINT_RETRY_MIN;
        loop {
            let state = *durable.borrow_and_update();
            let wake = match self.step(state).await {
                Ok(()) => {
                    backoff = CHECKPOINT_RETRY_MIN;
                    self.missing_witnesses().then_some(self.witness_retry)
                }
                Err(StepError::Transient(reason)) => {
                    tracing::warn!(reason = %reason, size = state.size, retry_ms = backoff.as_millis(), "checkpoint not produced yet; retrying");
                    let wait = backoff;
                    backoff = (backoff * 2).min(CHECKPOINT_RETRY_MAX);
                    Some(wait)
                }
                Err(StepError::Invariant(reason)) => {
                    self.health.fail(reason);
                    return;
                }
            };
            let changed = match wake {
                Some(wait) => tokio::select! {
                    changed = durable.changed() => changed,
                    () = tokio::time::sleep(wait) => Ok(()),
                },
                None => durable.changed().await,
            };
            if changed.is_err() {
                // Rounds stopped: a final state may have arrived with the close.
                let last = *durable.borrow();
                match self.step(last).await {
                    Ok(()) => {}
                    Err(StepError::Transient(reason)) => {
                        tracing::warn!(reason = %reason, size = last.size, "final checkpoint not produced");
                    }
                    Err(StepError::Invariant(reason)) => self.health.fail(reason),
                }
                return;
            }
        }
    }

    fn missing_witnesses(&self) -> bool {
        self.current
            .as_ref()
            .is_some_and(|c| c.cosignatures.len() < self.witnesses.len())
    }

    /// Checks that signing `state` keeps every checkpoint ever signed consistent. A storage
    /// read failure is transient; a proof that cannot be built from durable tiles, or that does
    /// not verify, is an invariant failure.
    async fn check_consistent_with_last_signed(&self, state: LogState) -> Result<(), StepError> {
        let Some(last) = self.last_signed else {
            return Ok(());
        };
        if state.size < last.size {
            return Err(StepError::Invariant(format!(
                "refusing to sign a smaller tree: {} after {}",
                state.size, last.size
            )));
        }
        if state.size == last.size {
            if state.root != last.root {
                return Err(StepError::Invariant(format!(
                    "two roots for size {}",
                    state.size
                )));
            }
            return Ok(());
        }
        if last.size == 0 {
            return Ok(());
        }
        let storage = self.storage.clone();
        let proof = tokio::task::spawn_blocking(move || {
            let tiles = storage.tile_reader().map_err(ProofError::Storage)?;
            consistency_proof(TreeSize(last.size), TreeSize(state.size), &tiles)
        })
        .await
        .map_err(|e| StepError::Invariant(format!("consistency proof task failed: {e}")))?;
        let proof = match proof {
            Ok(proof) => proof,
            Err(ProofError::Storage(ReadError::Backend(e))) => {
                return Err(StepError::Transient(format!(
                    "could not read tiles for the consistency proof: {e}"
                )));
            }
            Err(e) => {
                return Err(StepError::Invariant(format!(
                    "no consistency proof from the signed size {} to the durable size {}: {e}",
                    last.size, state.size
                )));
            }
        };
        proof
            .verify(&Hash(last.root), &Hash(state.root))
            .map_err(|e| {
                StepError::Invariant(format!(
                    "durable state of size {} is not consistent with the signed checkpoint of size {}: {e}",
                    state.size, last.size
                ))
            })
    }

    /// Brings the published checkpoint up to `state`: sign (after recording the signed state),
    /// gather cosignatures from the witnesses that have not cosigned yet, then store and
    /// publish. Each part is skipped when already done, so a retry resumes where it failed.
    async fn step(&mut self, state: LogState) -> Result<(), StepError> {
        if state.size == 0 {
            return Ok(());
        }
        let first_attempt = self.current.as_ref().is_none_or(|c| c.state != state);
        if first_attempt {
            if self.last_signed != Some(state) {
                self.check_consistent_with_last_signed(state).await?;
            }
            let checkpoint = Checkpoint {
                origin: self.origin.clone(),
                size: TreeSize(state.size),
                root: Hash(state.root),
                extensions: Vec::new(),
            };
            let signed = checkpoint
                .sign(&self.log_key)
                .map_err(|e| StepError::Invariant(format!("signing the checkpoint failed: {e}")))?;
            // Record before anyone sees the signature: after a crash the restarted sequencer
            // knows it signed this size and never signs a smaller or different tree.
            self.storage
                .put_signed(state)
                .await
                .map_err(|e| store_error("signed state", e))?;
            self.last_signed = Some(state);
            self.current = Some(Current {
                state,
                checkpoint,
                signed,
                cosignatures: Vec::new(),
                published: false,
            });
        }
        let Some(current) = self.current.as_mut() else {
            return Ok(());
        };
        if current.cosignatures.len() < self.witnesses.len() {
            let storage = self.storage.clone();
            let new_size = current.checkpoint.size;
            let prove = move |old: TreeSize| -> Option<Vec<Hash>> {
                let tiles = storage.tile_reader().ok()?;
                consistency_proof(old, new_size, &tiles)
                    .ok()
                    .map(|p| p.path)
            };
            let already: Vec<String> = current
                .cosignatures
                .iter()
                .map(|(name, _)| name.clone())
                .collect();
            let gathered = self
                .witnesses
                .gather_missing(
                    &current.checkpoint,
                    &current.signed,
                    Arc::new(prove),
                    &already,
                )
                .await;
            if !gathered.is_empty() {
                self.stats.cosignatures_gathered.fetch_add(
                    u64::try_from(gathered.len()).unwrap_or(u64::MAX),
                    Ordering::Relaxed,
                );
                current.cosignatures.extend(gathered);
                current.published = false;
            }
        }
        if current.published {
            return Ok(());
        }
        // Published only now, after the witnesses answered or timed out: a client with a
        // quorum policy never fetches a checkpoint the witnesses have not seen yet.
        let note = current.note();
        self.storage
            .put_checkpoint(StoredCheckpoint {
                size: state.size,
                root: state.root,
                note: note.clone().into_bytes(),
            })
            .await
            .map_err(|e| store_error("checkpoint", e))?;
        current.published = true;
        let cosigned_by: Vec<String> = current
            .cosignatures
            .iter()
            .map(|(name, _)| name.clone())
            .collect();
        tracing::info!(
            size = state.size,
            cosignatures = cosigned_by.len(),
            witnesses = self.witnesses.len(),
            "checkpoint published"
        );
        self.stats
            .checkpoints_published
            .fetch_add(1, Ordering::Relaxed);
        let _ = self.published.send(Some(Arc::new(PublishedCheckpoint {
            size: current.checkpoint.size,
            root: current.checkpoint.root,
            note,
            cosigned_by,
        })));
        Ok(())
    }
}

/// The published checkpoint and the checkpointer's starting point from a stored checkpoint:
/// its cosignatures are verified with the witnesses' keys (so `cosigned_by` is right after a
/// restart), and the witness client learns the size each of those witnesses holds.
fn resume_published(
    stored: &StoredCheckpoint,
    log_key: &NoteSigner,
    witnesses: &WitnessClient,
) -> Option<(Arc<PublishedCheckpoint>, Current)> {
    let note_text = String::from_utf8(stored.note.clone()).ok()?;
    let note = Note::parse(note_text.as_bytes()).ok()?;
    let checkpoint = Checkpoint::parse(&note.text).ok()?;
    let verifiers = witnesses.verifiers();
    let mut cosignatures: Vec<(String, NoteSignature)> = Vec::new();
    for line in &note.signatures {
        let Some(verifier) = verifiers.iter().find(|v| v.matches(line)) else {
            continue;
        };
        let name = verifier.name().to_owned();
        if cosignatures.iter().any(|(n, _)| *n == name)
            || verify_cosignature(&note.text, line, verifier).is_err()
        {
            continue;
        }
        witnesses.assume_size(&name, stored.size);
        cosignatures.push((name, line.clone()));
    }
    // Ed25519 signatures are deterministic: signing again gives the stored log signature.
    let signed = checkpoint.sign(log_key).ok()?;
    let published = Arc::new(PublishedCheckpoint {
        size: TreeSize(stored.size),
        root: Hash(stored.root),
        note: note_text,
        cosigned_by: cosignatures.iter().map(|(n, _)| n.clone()).collect(),
    });
    let current = Current {
        state: LogState {
            size: stored.size,
            root: stored.root,
        },
        checkpoint,
        signed,
        cosignatures,
        published: true,
    };
    Some((published, current))
}
