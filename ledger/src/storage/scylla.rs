//! The ScyllaDB backend (also Apache Cassandra 4/5): the log and its sidecar records in one CQL
//! keyspace, through the `scylla` driver, with prepared statements throughout.
//!
//! # Schema (version 1, in the configured keyspace)
//!
//! | table | primary key | holds |
//! |---|---|---|
//! | `log_schema` | `name` | the schema version row (`'log'` → 1), checked and written on connect |
//! | `log_state` | `log` (one row, `'log'`) | size, root, `round_epoch` (the epoch that committed them), the lease (`epoch`, `holder`, `lease_until_ms`), the last-signed state, the published checkpoint |
//! | `log_intents` | `((size, root, epoch), chunk)` | a round's write-ahead intent ([`intent`]), in chunks |
//! | `log_record_intents` | `(bucket, id, chunk)` | a large `put_records`' intent until applied (bucket 0) |
//! | `log_tiles` | `((level, idx), bytes)`, `bytes` descending | every stored version of a tile, widest first |
//! | `log_bundles` | `(idx, bytes)`, `bytes` descending | every stored version of an entry bundle, widest first |
//! | `sidecars` | `((tbl, part), key)` | sidecar records, partitioned per table ([`partition`]) |
//!
//! # A round's write sequence, and what a reader observes in between
//!
//! CQL has no atomic write across partitions, so a round is made all-or-nothing by a
//! write-ahead intent and roll-forward:
//!
//! 1. **Intent.** The round's tiles, bundles and sidecar records are encoded into one blob and
//!    written, in chunks, to `log_intents` under `(next size, next root, epoch)` at QUORUM.
//!    Nothing reads intents except the roll-forward of step 3; a crash here leaves an
//!    unreferenced intent and the previous state.
//! 2. **Commit point.** One lightweight transaction advances the state row:
//!    `UPDATE log_state SET size, root, round_epoch IF size = ? AND root = ? AND epoch = ?`
//!    (Paxos at SERIAL or LOCAL_SERIAL). It is the only write that decides whether the round
//!    exists. Refused, the round is a [`CommitError::Conflict`]; the current row says whether
//!    an earlier attempt of the same round landed (then it is finished as in step 3).
//! 3. **Apply.** Tiles and bundles are inserted under their byte length, then narrower
//!    versions are deleted; sidecar records are inserted with the CQL write time fixed in the
//!    intent. Then the intent is deleted. [`LogStorage::commit_round`] returns only now.
//!    A crash between 2 and 3 leaves a state row ahead of its data: the next
//!    [`LogStorage::load`] (or a retry of the round) finds the intent of the durable state
//!    and applies it before it answers.
//!
//! A reader therefore observes: tiles, bundles and sidecar records only of rounds whose
//! transaction succeeded (a lost round never gets past step 1, and intents are never read as
//! data); during and before step 3, a state row whose data is still being applied, and some
//! of the round's records before others — which is why `load` rolls forward first, and why
//! checkpoints (what the HTTP read side serves) are stored only after `commit_round` returned.
//! Ingest deduplication reads sidecar records only, which come only from committed rounds, so a
//! lost round cannot make a reading look committed.
//!
//! Why a late apply cannot do harm: a tile or bundle version is keyed by its width, and the
//! committed log determines the bytes of every `(level, index, width)`, so writing a committed
//! version again writes the same bytes; a reader asks for the widest. A sidecar record is
//! written with the intent's write time, so a roll-forward that runs late (a paused sequencer
//! resuming after another took over) loses against any newer write of the same key.
//!
//! # Fencing
//!
//! The state row carries a lease ([`lease`]): the epoch is incremented by every takeover, and
//! every round's transaction is conditioned on the epoch this handle holds
//! ([`ScyllaStorage::fencing_epoch`], 0 until a lease is taken). A sequencer that lost its
//! lease has its next round refused, however its size and root match.
//!
//! # Synchronous reads
//!
//! [`LogStorage::tile_reader`] and ingest's reads are synchronous. They run the async query
//! with `tokio::task::block_in_place` + `Handle::block_on` on a multi-thread runtime (the
//! node's), or with the connecting runtime's handle on a thread outside any runtime; on a
//! current-thread runtime they fail with [`ReadError::Backend`] naming the cause, never panic.

mod intent;
pub mod lease;
pub mod partition;

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use scylla::client::execution_profile::ExecutionProfile;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::response::PagingState;
use scylla::statement::prepared::PreparedStatement;
use scylla::statement::{Consistency, SerialConsistency};
use scylla::value::{CqlValue, Row};
use tokio::runtime::{Handle, RuntimeFlavor};
use tokio::task::JoinSet;

use crate::tile::TileReader;

use super::memory::{check_checkpoint, check_signed};
use super::{
    BackendError, CheckpointError, CommitError, HASH_BYTES, LogState, LogStorage, ReadError,
    Restored, RoundCommit, SidecarRecord, StoredCheckpoint, TileKey, validate_table_name,
};

pub use intent::CHUNK_BYTES as INTENT_CHUNK_BYTES;
pub use lease::{Lease, LeaseError};
pub use partition::{PartitionRule, PartitionRules};

use intent::Intent;

/// Key/value pairs of a range scan of sidecar records, in key order.
pub type ScannedRecords = Vec<(Vec<u8>, Vec<u8>)>;

/// The schema version this build writes and reads.
pub const SCHEMA_VERSION: i32 = 1;

/// Longest keyspace name CQL accepts.
const KEYSPACE_NAME_BYTES_MAX: usize = 48;

/// Writes of one round's apply step in flight at once.
const WRITES_IN_FLIGHT: usize = 64;

/// Rows a range scan asks for per page.
const SCAN_PAGE_ROWS: i32 = 1_000;

/// Largest record set (table names, keys and values) written by [`ScyllaStorage::put_records`]
/// as one logged batch; a larger one goes through a record intent. Under Cassandra's default
/// `batch_size_fail_threshold` (50 KiB), which refuses larger batches.
pub const RECORD_BATCH_BYTES_MAX: usize = 32 * 1024;

/// Age after which an incomplete record intent (its writer died while writing it) is removed.
const RECORD_INTENT_ABANDONED_US: i64 = 10 * 60 * 1_000_000;

/// Attempts of a checkpoint write whose transaction lost to a concurrent one.
const CAS_ATTEMPTS: u32 = 32;

/// Which write consistency the backend uses (and the matching serial consistency of its
/// lightweight transactions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteConsistency {
    /// QUORUM writes, SERIAL transactions: a majority of all replicas.
    Quorum,
    /// LOCAL_QUORUM writes, LOCAL_SERIAL transactions: a majority in the coordinator's data
    /// centre (a multi-DC cluster where each DC runs its own sequencer's reads).
    LocalQuorum,
}

impl WriteConsistency {
    fn consistency(self) -> Consistency {
        match self {
            Self::Quorum => Consistency::Quorum,
            Self::LocalQuorum => Consistency::LocalQuorum,
        }
    }

    fn serial(self) -> SerialConsistency {
        match self {
            Self::Quorum => SerialConsistency::Serial,
            Self::LocalQuorum => SerialConsistency::LocalSerial,
        }
    }

    fn serial_read(self) -> Consistency {
        match self {
            Self::Quorum => Consistency::Serial,
            Self::LocalQuorum => Consistency::LocalSerial,
        }
    }
}

/// The keyspace's replication, used when the backend creates it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replication {
    /// `SimpleStrategy` with this many replicas (one data centre).
    Simple {
        /// Replicas of every row.
        replication_factor: u32,
    },
    /// `NetworkTopologyStrategy`: replicas per data centre.
    NetworkTopology(BTreeMap<String, u32>),
}

impl Replication {
    /// The CQL replication map.
    ///
    /// # Errors
    /// A sentence if a factor is 0 or a data centre name has characters a CQL string literal
    /// would need escaped.
    pub fn cql(&self) -> Result<String, String> {
        match self {
            Self::Simple { replication_factor } => {
                if *replication_factor == 0 {
                    return Err("replication factor must be at least 1".into());
                }
                Ok(format!(
                    "{{'class': 'SimpleStrategy', 'replication_factor': {replication_factor}}}"
                ))
            }
            Self::NetworkTopology(dcs) => {
                if dcs.is_empty() {
                    return Err("NetworkTopologyStrategy needs at least one data centre".into());
                }
                let mut out = String::from("{'class': 'NetworkTopologyStrategy'");
                for (dc, factor) in dcs {
                    if dc.is_empty()
                        || !dc
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
                    {
                        return Err(format!(
                            "data centre name {dc:?} must be letters, digits and _-."
                        ));
                    }
                    if *factor == 0 {
                        return Err(format!("replication factor of {dc} must be at least 1"));
                    }
                    out.push_str(&format!(", '{dc}': {factor}"));
                }
                out.push('}');
                Ok(out)
            }
        }
    }
}

/// Where and how the backend stores one log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScyllaConfig {
    /// `host:port` of one or more nodes; the driver discovers the others.
    pub contact_points: Vec<String>,
    /// Keyspace of the log (created if missing): `[a-z][a-z0-9_]{0,47}`.
    pub keyspace: String,
    /// Replication of the keyspace when it is created (an existing keyspace is left as is).
    pub replication: Replication,
    /// Write consistency (and serial consistency of the transactions).
    pub consistency: WriteConsistency,
    /// Time-out of one request, in milliseconds.
    pub request_timeout_ms: u64,
    /// How sidecar records are partitioned.
    pub partitions: PartitionRules,
}

impl ScyllaConfig {
    /// A configuration for `contact_points` and `keyspace` with the defaults that work on a
    /// single local node: replication factor 1, QUORUM, 10 s requests, the node's partition
    /// rules.
    #[must_use]
    pub fn new(contact_points: Vec<String>, keyspace: &str) -> Self {
        Self {
            contact_points,
            keyspace: keyspace.to_owned(),
            replication: Replication::Simple {
                replication_factor: 1,
            },
            consistency: WriteConsistency::Quorum,
            request_timeout_ms: 10_000,
            partitions: PartitionRules::default(),
        }
    }

    fn validate(&self) -> Result<(), String> {
        if self.contact_points.is_empty() {
            return Err("no contact points".into());
        }
        let ks = &self.keyspace;
        let mut chars = ks.chars();
        if ks.len() > KEYSPACE_NAME_BYTES_MAX
            || !chars.next().is_some_and(|c| c.is_ascii_lowercase())
            || !chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            return Err(format!(
                "keyspace name {ks:?} must match [a-z][a-z0-9_]{{0,47}}"
            ));
        }
        if self.request_timeout_ms == 0 {
            return Err("request time-out must be at least 1 ms".into());
        }
        self.replication.cql().map(|_| ())
    }
}

/// Which server the cluster runs: they differ in how a keyspace must be created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// Apache Cassandra (no tablets; the `tablets` keyspace option is unknown to it).
    Cassandra,
    /// ScyllaDB (detected by its shard-aware protocol extension).
    Scylla,
}

/// The `CREATE KEYSPACE` statement for `flavor`. On ScyllaDB the keyspace is created without
/// tablets: releases before mid-2025 refuse lightweight transactions on tablet keyspaces, and
/// the log's state row lives on them.
///
/// # Errors
/// A sentence if the replication is invalid.
pub fn create_keyspace_cql(
    keyspace: &str,
    replication: &Replication,
    flavor: Flavor,
) -> Result<String, String> {
    let mut cql = format!(
        "CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = {}",
        replication.cql()?
    );
    if flavor == Flavor::Scylla {
        cql.push_str(" AND tablets = {'enabled': false}");
    }
    Ok(cql)
}

/// The tables of schema version 1, for `keyspace`.
fn create_tables_cql(ks: &str) -> Vec<String> {
    vec![
        format!("CREATE TABLE IF NOT EXISTS {ks}.log_schema (name text PRIMARY KEY, version int)"),
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.log_state (log text PRIMARY KEY, size bigint, \
             root blob, round_epoch bigint, epoch bigint, holder text, lease_until_ms bigint, \
             signed_size bigint, signed_root blob, cp_size bigint, cp_root blob, cp_note blob)"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.log_intents (size bigint, root blob, epoch bigint, \
             chunk int, chunks int, data blob, PRIMARY KEY ((size, root, epoch), chunk))"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.log_record_intents (bucket int, id blob, \
             chunk int, chunks int, data blob, PRIMARY KEY (bucket, id, chunk))"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.log_tiles (level int, idx bigint, bytes int, \
             data blob, PRIMARY KEY ((level, idx), bytes)) \
             WITH CLUSTERING ORDER BY (bytes DESC)"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.log_bundles (idx bigint, bytes int, data blob, \
             PRIMARY KEY (idx, bytes)) WITH CLUSTERING ORDER BY (bytes DESC)"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.sidecars (tbl text, part blob, key blob, \
             value blob, PRIMARY KEY ((tbl, part), key))"
        ),
    ]
}

/// Why [`ScyllaStorage::connect`] failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The configuration is not usable.
    #[error("invalid ScyllaDB configuration: {0}")]
    Config(String),
    /// `connect` was called outside a tokio runtime.
    #[error("ScyllaStorage::connect must run on a tokio runtime")]
    NoRuntime,
    /// No contact point answered.
    #[error("cannot connect to the CQL cluster at {contact_points}")]
    Connect {
        /// The configured contact points.
        contact_points: String,
        /// The driver's error.
        #[source]
        source: BackendError,
    },
    /// Creating the keyspace or a table, or preparing a statement, failed.
    #[error("cannot create or prepare the schema of keyspace {keyspace}")]
    Schema {
        /// The keyspace.
        keyspace: String,
        /// The driver's error.
        #[source]
        source: BackendError,
    },
    /// The keyspace was written by a newer build.
    #[error(
        "keyspace {keyspace} has schema version {found}; this build knows up to {SCHEMA_VERSION}"
    )]
    NewerSchema {
        /// The keyspace.
        keyspace: String,
        /// The version found.
        found: i32,
    },
}

/// A step of `commit_round` after which a test can make the next commit stop, as if the
/// process had died there (feature `contract-tests`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitStep {
    /// The intent is written; the transaction is not sent.
    AfterIntent,
    /// The transaction succeeded; nothing is applied.
    AfterTransaction,
}

/// The error a halted commit reports.
#[derive(Debug, thiserror::Error)]
#[error("commit halted after {0:?} (test hook)")]
pub struct Halted(pub CommitStep);

/// The backend. Cloning shares the driver's connections, the prepared statements and the
/// fencing epoch.
#[derive(Clone)]
pub struct ScyllaStorage {
    inner: Arc<Inner>,
}

impl fmt::Debug for ScyllaStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScyllaStorage")
            .field("keyspace", &self.inner.keyspace)
            .field("flavor", &self.inner.flavor)
            .field("epoch", &self.fencing_epoch())
            .finish_non_exhaustive()
    }
}

struct Inner {
    cql: Session,
    statements: Statements,
    keyspace: String,
    flavor: Flavor,
    partitions: PartitionRules,
    /// The epoch this handle's rounds are conditioned on (0 until a lease is taken).
    epoch: AtomicU64,
    /// The runtime the driver was started on, for synchronous reads from plain threads.
    runtime: Handle,
    /// A commit step to stop the next commit after (tests).
    halt: std::sync::Mutex<Option<CommitStep>>,
}

struct Statements {
    read_state: PreparedStatement,
    advance: PreparedStatement,
    put_signed: PreparedStatement,
    put_checkpoint: PreparedStatement,
    take_lease: PreparedStatement,
    renew_lease: PreparedStatement,
    release_lease: PreparedStatement,
    write_intent: PreparedStatement,
    read_intent: PreparedStatement,
    delete_intent: PreparedStatement,
    write_record_intent: PreparedStatement,
    read_record_intents: PreparedStatement,
    delete_record_intent: PreparedStatement,
    write_tile: PreparedStatement,
    trim_tile: PreparedStatement,
    read_tile: PreparedStatement,
    write_bundle: PreparedStatement,
    trim_bundle: PreparedStatement,
    read_bundle: PreparedStatement,
    apply_sidecar: PreparedStatement,
    put_sidecar: PreparedStatement,
    read_sidecar: PreparedStatement,
    scan_sidecars: PreparedStatement,
}

/// The state row as read.
#[derive(Debug, Clone, PartialEq, Eq)]
struct StateRow {
    state: LogState,
    round_epoch: u64,
    epoch: u64,
    holder: String,
    lease_until_ms: i64,
    signed: Option<LogState>,
    checkpoint: Option<StoredCheckpoint>,
    /// Raw values the checkpoint transactions are conditioned on.
    signed_raw: (i64, Vec<u8>),
    checkpoint_raw: (i64, Vec<u8>),
}

type StateTuple = (
    i64,
    Vec<u8>,
    i64,
    i64,
    String,
    i64,
    i64,
    Vec<u8>,
    i64,
    Vec<u8>,
    Vec<u8>,
);

fn backend<E: std::error::Error + Send + Sync + 'static>(error: E) -> BackendError {
    Box::new(error)
}

fn read_backend<E: std::error::Error + Send + Sync + 'static>(error: E) -> ReadError {
    ReadError::Backend(backend(error))
}

fn commit_from_read(error: ReadError) -> CommitError {
    match error {
        ReadError::Backend(e) => CommitError::Backend(e),
        ReadError::Corrupt(reason) => CommitError::Backend(reason.into()),
    }
}

fn checkpoint_from_read(error: ReadError) -> CheckpointError {
    match error {
        ReadError::Backend(e) => CheckpointError::Backend(e),
        ReadError::Corrupt(reason) => CheckpointError::Backend(reason.into()),
    }
}

fn to_i64(value: u64, what: &str) -> Result<i64, BackendError> {
    i64::try_from(value).map_err(|_| format!("{what} {value} exceeds a CQL bigint").into())
}

fn to_u64(value: i64, what: &str) -> Result<u64, ReadError> {
    u64::try_from(value).map_err(|_| ReadError::Corrupt(format!("negative {what} {value}")))
}

fn to_i32(value: usize, what: &str) -> Result<i32, BackendError> {
    i32::try_from(value).map_err(|_| format!("{what} {value} exceeds a CQL int").into())
}

fn root_of(bytes: &[u8], what: &str) -> Result<[u8; 32], ReadError> {
    bytes
        .try_into()
        .map_err(|_| ReadError::Corrupt(format!("{what} is {} bytes, not 32", bytes.len())))
}

/// Microseconds since the Unix epoch (the CQL write-time unit).
fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// Milliseconds since the Unix epoch (lease expiry).
pub(crate) fn now_ms() -> i64 {
    now_us() / 1_000
}

/// Whether the first column of a lightweight transaction's answer, `[applied]`, is true.
fn applied(result: scylla::response::query_result::QueryResult) -> Result<bool, BackendError> {
    let rows = result.into_rows_result().map_err(backend)?;
    let row: Row = rows.first_row().map_err(backend)?;
    match row.columns.first() {
        Some(Some(CqlValue::Boolean(applied))) => Ok(*applied),
        other => Err(format!("a lightweight transaction answered {other:?}, not [applied]").into()),
    }
}

impl ScyllaStorage {
    /// Connects, creates the keyspace and tables if missing (checking the schema version row),
    /// creates the log's state row if missing, and prepares every statement. `empty_root` is
    /// `SHA-256("")`, the root of the empty log.
    ///
    /// # Errors
    /// [`ConnectError`] naming what failed.
    pub async fn connect(
        config: &ScyllaConfig,
        empty_root: [u8; 32],
    ) -> Result<Self, ConnectError> {
        config.validate().map_err(ConnectError::Config)?;
        let runtime = Handle::try_current().map_err(|_| ConnectError::NoRuntime)?;
        let profile = ExecutionProfile::builder()
            .consistency(config.consistency.consistency())
            .serial_consistency(Some(config.consistency.serial()))
            .request_timeout(Some(Duration::from_millis(config.request_timeout_ms)))
            .build();
        let cql = SessionBuilder::new()
            .known_nodes(&config.contact_points)
            .default_execution_profile_handle(profile.into_handle())
            .build()
            .await
            .map_err(|e| ConnectError::Connect {
                contact_points: config.contact_points.join(","),
                source: backend(e),
            })?;
        let ks = config.keyspace.clone();
        let schema = |e: BackendError| ConnectError::Schema {
            keyspace: ks.clone(),
            source: e,
        };
        let flavor = if cql
            .get_cluster_state()
            .get_nodes_info()
            .iter()
            .any(|node| node.sharder().is_some())
        {
            Flavor::Scylla
        } else {
            Flavor::Cassandra
        };
        create_schema(&cql, config, flavor)
            .await
            .map_err(|e| match e {
                SchemaError::Newer(found) => ConnectError::NewerSchema {
                    keyspace: ks.clone(),
                    found,
                },
                SchemaError::Backend(e) => schema(e),
            })?;
        let statements = Statements::prepare(&cql, &ks, config.consistency)
            .await
            .map_err(schema)?;
        // The state row exists from the start, so that every later write to it is a
        // conditional update (a transaction never races a plain insert).
        let create_row = format!(
            "INSERT INTO {ks}.log_state (log, size, root, round_epoch, epoch, holder, \
             lease_until_ms, signed_size, signed_root, cp_size, cp_root, cp_note) \
             VALUES ('log', 0, ?, 0, 0, '', 0, -1, 0x, -1, 0x, 0x) IF NOT EXISTS"
        );
        cql.query_unpaged(create_row, (empty_root.to_vec(),))
            .await
            .map_err(|e| schema(backend(e)))?;
        Ok(Self {
            inner: Arc::new(Inner {
                cql,
                statements,
                keyspace: ks,
                flavor,
                partitions: config.partitions.clone(),
                epoch: AtomicU64::new(0),
                runtime,
                halt: std::sync::Mutex::new(None),
            }),
        })
    }

    /// The server the cluster runs.
    #[must_use]
    pub fn flavor(&self) -> Flavor {
        self.inner.flavor
    }

    /// The keyspace of the log.
    #[must_use]
    pub fn keyspace(&self) -> &str {
        &self.inner.keyspace
    }

    /// The epoch this handle's rounds are conditioned on: that of the lease it holds, or 0.
    #[must_use]
    pub fn fencing_epoch(&self) -> u64 {
        self.inner.epoch.load(Ordering::SeqCst)
    }

    pub(crate) fn set_fencing_epoch(&self, epoch: u64) {
        self.inner.epoch.store(epoch, Ordering::SeqCst);
    }

    /// Makes the next commit stop after `step`, reporting [`Halted`] and leaving what it wrote
    /// as a crash there would (fault tests).
    #[cfg(feature = "contract-tests")]
    pub fn halt_next_commit(&self, step: CommitStep) {
        *self
            .inner
            .halt
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(step);
    }

    fn halt_after(&self, step: CommitStep) -> Result<(), CommitError> {
        let mut halt = self
            .inner
            .halt
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if *halt == Some(step) {
            *halt = None;
            return Err(CommitError::Backend(Box::new(Halted(step))));
        }
        Ok(())
    }

    fn statements(&self) -> &Statements {
        &self.inner.statements
    }

    fn cql(&self) -> &Session {
        &self.inner.cql
    }

    /// Reads the state row with a SERIAL (or LOCAL_SERIAL) read, so that a transaction in
    /// progress is finished before the answer.
    async fn read_row(&self) -> Result<StateRow, ReadError> {
        let result = self
            .cql()
            .execute_unpaged(&self.statements().read_state, ())
            .await
            .map_err(read_backend)?;
        let rows = result.into_rows_result().map_err(read_backend)?;
        let Some(row) = rows.maybe_first_row::<StateTuple>().map_err(read_backend)? else {
            return Err(ReadError::Corrupt("the log state row is missing".into()));
        };
        let (size, root, round_epoch, epoch, holder, lease_until_ms, ss, sr, cs, cr, note) = row;
        let state = LogState {
            size: to_u64(size, "log size")?,
            root: root_of(&root, "log root")?,
        };
        let signed = if ss < 0 {
            None
        } else {
            Some(LogState {
                size: to_u64(ss, "signed size")?,
                root: root_of(&sr, "signed root")?,
            })
        };
        let checkpoint = if cs < 0 {
            None
        } else {
            Some(StoredCheckpoint {
                size: to_u64(cs, "checkpoint size")?,
                root: root_of(&cr, "checkpoint root")?,
                note,
            })
        };
        Ok(StateRow {
            state,
            round_epoch: to_u64(round_epoch, "round epoch")?,
            epoch: to_u64(epoch, "lease epoch")?,
            holder,
            lease_until_ms,
            signed,
            checkpoint,
            signed_raw: (ss, sr),
            checkpoint_raw: (cs, cr),
        })
    }

    async fn write_intent(
        &self,
        next: LogState,
        epoch: u64,
        encoded: &[u8],
    ) -> Result<(), BackendError> {
        let parts = intent::chunks(encoded);
        let chunks = to_i32(parts.len(), "intent chunk count")?;
        let size = to_i64(next.size, "log size")?;
        let epoch = to_i64(epoch, "epoch")?;
        for (chunk, data) in (0i32..).zip(parts) {
            self.cql()
                .execute_unpaged(
                    &self.statements().write_intent,
                    (size, next.root.to_vec(), epoch, chunk, chunks, data),
                )
                .await
                .map_err(backend)?;
        }
        Ok(())
    }

    /// The intent stored for `(state, epoch)`, if any (complete: a partial one is corrupt,
    /// which cannot happen for an intent whose transaction succeeded).
    async fn read_intent(&self, state: LogState, epoch: u64) -> Result<Option<Intent>, ReadError> {
        let key = (
            to_i64(state.size, "log size").map_err(ReadError::Backend)?,
            state.root.to_vec(),
            to_i64(epoch, "epoch").map_err(ReadError::Backend)?,
        );
        let mut parts: Vec<Chunk> = Vec::new();
        let mut paging = PagingState::start();
        loop {
            let (result, next) = self
                .cql()
                .execute_single_page(&self.statements().read_intent, &key, paging)
                .await
                .map_err(read_backend)?;
            let rows = result.into_rows_result().map_err(read_backend)?;
            for row in rows.rows::<(i32, i32, Vec<u8>)>().map_err(read_backend)? {
                parts.push(row.map_err(read_backend)?);
            }
            match next.into_paging_control_flow() {
                std::ops::ControlFlow::Break(()) => break,
                std::ops::ControlFlow::Continue(state) => paging = state,
            }
        }
        if parts.is_empty() {
            return Ok(None);
        }
        let found = parts.len();
        let Some(blob) = assemble(parts) else {
            return Err(ReadError::Corrupt(format!(
                "the intent of size {} is incomplete ({found} chunks)",
                state.size
            )));
        };
        Intent::decode(&blob).map(Some)
    }

    async fn delete_intent(&self, state: LogState, epoch: u64) -> Result<(), BackendError> {
        self.cql()
            .execute_unpaged(
                &self.statements().delete_intent,
                (
                    to_i64(state.size, "log size")?,
                    state.root.to_vec(),
                    to_i64(epoch, "epoch")?,
                ),
            )
            .await
            .map_err(backend)?;
        Ok(())
    }

    /// Applies an intent's writes (step 3 of the module documentation), at most
    /// [`WRITES_IN_FLIGHT`] at once.
    async fn apply(&self, intent: Intent) -> Result<(), BackendError> {
        let mut writes = Vec::new();
        for (key, tile) in intent.tiles {
            writes.push(Write::Tile(key, tile));
        }
        for (index, bundle) in intent.bundles {
            writes.push(Write::Bundle(index, bundle));
        }
        for record in intent.sidecars {
            writes.push(Write::Sidecar(record, Some(intent.write_time_us)));
        }
        self.write_all(writes).await
    }

    async fn write_all(&self, writes: Vec<Write>) -> Result<(), BackendError> {
        let mut tasks = JoinSet::new();
        let mut first_error = None;
        for write in writes {
            while tasks.len() >= WRITES_IN_FLIGHT {
                if let Some(done) = tasks.join_next().await {
                    note_error(&mut first_error, done);
                }
            }
            let this = self.clone();
            tasks.spawn(async move { this.write_one(write).await });
        }
        while let Some(done) = tasks.join_next().await {
            note_error(&mut first_error, done);
        }
        first_error.map_or(Ok(()), Err)
    }

    async fn write_one(&self, write: Write) -> Result<(), BackendError> {
        let s = self.statements();
        match write {
            Write::Tile(key, tile) => {
                let level = i32::from(key.level);
                let index = to_i64(key.index, "tile index")?;
                let bytes = to_i32(tile.len(), "tile length")?;
                self.cql()
                    .execute_unpaged(&s.write_tile, (level, index, bytes, tile))
                    .await
                    .map_err(backend)?;
                // A crash here leaves the narrower versions too: harmless, the widest is read.
                self.cql()
                    .execute_unpaged(&s.trim_tile, (level, index, bytes))
                    .await
                    .map_err(backend)?;
            }
            Write::Bundle(index, bundle) => {
                let index = to_i64(index, "bundle index")?;
                let bytes = to_i32(bundle.len(), "bundle length")?;
                self.cql()
                    .execute_unpaged(&s.write_bundle, (index, bytes, bundle))
                    .await
                    .map_err(backend)?;
                self.cql()
                    .execute_unpaged(&s.trim_bundle, (index, bytes))
                    .await
                    .map_err(backend)?;
            }
            Write::Sidecar(record, write_time_us) => {
                let part = self
                    .inner
                    .partitions
                    .rule(&record.table)
                    .partition(&record.key)
                    .to_vec();
                match write_time_us {
                    Some(at) => self
                        .cql()
                        .execute_unpaged(
                            &s.apply_sidecar,
                            (record.table, part, record.key, record.value, at),
                        )
                        .await
                        .map_err(backend)?,
                    None => self
                        .cql()
                        .execute_unpaged(
                            &s.put_sidecar,
                            (record.table, part, record.key, record.value),
                        )
                        .await
                        .map_err(backend)?,
                };
            }
        }
        Ok(())
    }

    /// Finishes the round that made the durable state, if a crash (or a lost answer) left its
    /// intent unapplied: applies it, then deletes it.
    async fn roll_forward(&self, row: &StateRow) -> Result<(), ReadError> {
        if row.state.size == 0 {
            return Ok(());
        }
        let Some(intent) = self.read_intent(row.state, row.round_epoch).await? else {
            return Ok(());
        };
        tracing::info!(
            log_size = row.state.size,
            "rolling forward the last round's writes"
        );
        self.apply(intent).await.map_err(ReadError::Backend)?;
        self.delete_intent(row.state, row.round_epoch)
            .await
            .map_err(ReadError::Backend)
    }

    async fn commit(&self, round: &RoundCommit) -> Result<(), CommitError> {
        round.validate()?;
        let epoch = self.fencing_epoch();
        let intent = Intent::of_round(round, now_us());
        let encoded = intent.encode().map_err(CommitError::Invalid)?;
        // Step 1. A crash after this line leaves an intent nobody reads: the state row does
        // not name it.
        self.write_intent(round.next, epoch, &encoded)
            .await
            .map_err(CommitError::Backend)?;
        self.halt_after(CommitStep::AfterIntent)?;
        // Step 2, the commit point.
        let s = self.statements();
        let values = (
            to_i64(round.next.size, "log size").map_err(CommitError::Backend)?,
            round.next.root.to_vec(),
            to_i64(epoch, "epoch").map_err(CommitError::Backend)?,
            to_i64(round.previous.size, "log size").map_err(CommitError::Backend)?,
            round.previous.root.to_vec(),
            to_i64(epoch, "epoch").map_err(CommitError::Backend)?,
        );
        let result = self
            .cql()
            .execute_unpaged(&s.advance, values)
            .await
            .map_err(|e| CommitError::Backend(backend(e)))?;
        if !applied(result).map_err(CommitError::Backend)? {
            let row = self.read_row().await.map_err(commit_from_read)?;
            if row.state == round.next {
                // An earlier attempt of this round landed: finish it (idempotent).
                return self.roll_forward(&row).await.map_err(commit_from_read);
            }
            // Refused. The intent is ours alone once another epoch has taken over, or when
            // this handle holds a lease (one writer per epoch): remove it. Unleased writers
            // share epoch 0 and leave it (it is never read).
            if (row.epoch > epoch || epoch > 0)
                && let Err(error) = self.delete_intent(round.next, epoch).await
            {
                tracing::warn!(%error, "could not delete the intent of a refused round");
            }
            return Err(CommitError::Conflict {
                stored_size: row.state.size,
                expected_size: round.previous.size,
            });
        }
        // A crash after this line leaves the round committed and unapplied: `load` (or a retry)
        // rolls it forward from its intent.
        self.halt_after(CommitStep::AfterTransaction)?;
        self.apply(intent).await.map_err(CommitError::Backend)?;
        if let Err(error) = self.delete_intent(round.next, epoch).await {
            // The round is applied; a leftover intent is applied again, harmlessly, by the next
            // load (its write time keeps newer records).
            tracing::warn!(%error, "could not delete the intent of an applied round");
        }
        Ok(())
    }

    /// A checkpoint-row write: read the row, let `decide` refuse, skip (`None`) or give the
    /// values to write, and write them with a transaction conditioned on the values read;
    /// again if a concurrent write got in between.
    async fn guarded_write(
        &self,
        decide: impl Fn(&StateRow) -> Result<Option<CheckpointWrite>, CheckpointError>,
    ) -> Result<(), CheckpointError> {
        for _ in 0..CAS_ATTEMPTS {
            let row = self.read_row().await.map_err(checkpoint_from_read)?;
            let Some(write) = decide(&row)? else {
                return Ok(());
            };
            let s = self.statements();
            let result = match write {
                CheckpointWrite::Signed(state) => {
                    let size = to_i64(state.size, "size").map_err(CheckpointError::Backend)?;
                    self.cql()
                        .execute_unpaged(
                            &s.put_signed,
                            (
                                size,
                                state.root.to_vec(),
                                row.signed_raw.0,
                                row.signed_raw.1.clone(),
                            ),
                        )
                        .await
                }
                CheckpointWrite::Published(checkpoint) => {
                    let size = to_i64(checkpoint.size, "size").map_err(CheckpointError::Backend)?;
                    self.cql()
                        .execute_unpaged(
                            &s.put_checkpoint,
                            (
                                size,
                                checkpoint.root.to_vec(),
                                checkpoint.note,
                                row.checkpoint_raw.0,
                                row.checkpoint_raw.1.clone(),
                            ),
                        )
                        .await
                }
            }
            .map_err(|e| CheckpointError::Backend(backend(e)))?;
            if applied(result).map_err(CheckpointError::Backend)? {
                return Ok(());
            }
        }
        Err(CheckpointError::Backend(
            format!("the checkpoint row stayed contended for {CAS_ATTEMPTS} attempts").into(),
        ))
    }

    /// Runs `future` to completion from synchronous code (see the module documentation).
    fn block_on<T>(&self, future: impl Future<Output = T>) -> Result<T, ReadError> {
        match Handle::try_current() {
            Ok(handle) => match handle.runtime_flavor() {
                RuntimeFlavor::CurrentThread => Err(ReadError::Backend(
                    "a synchronous ScyllaDB read needs a multi-thread tokio runtime (it would \
                     block the only worker of a current-thread runtime)"
                        .into(),
                )),
                _ => Ok(tokio::task::block_in_place(|| handle.block_on(future))),
            },
            Err(_) => Ok(self.inner.runtime.block_on(future)),
        }
    }

    /// Sidecar records of one table, in the order of `keys`, read concurrently.
    ///
    /// # Errors
    /// [`ReadError`] if a read fails.
    pub async fn read_records(
        &self,
        table: &str,
        keys: &[Vec<u8>],
    ) -> Result<Vec<Option<Vec<u8>>>, ReadError> {
        let mut tasks = JoinSet::new();
        let mut out = vec![None; keys.len()];
        let mut first_error: Option<ReadError> = None;
        for (at, key) in keys.iter().enumerate() {
            while tasks.len() >= WRITES_IN_FLIGHT {
                if let Some(done) = tasks.join_next().await {
                    place(&mut out, &mut first_error, done);
                }
            }
            let this = self.clone();
            let table = table.to_owned();
            let key = key.clone();
            tasks.spawn(async move { (at, this.sidecar_read(&table, &key).await) });
        }
        while let Some(done) = tasks.join_next().await {
            place(&mut out, &mut first_error, done);
        }
        first_error.map_or(Ok(out), Err)
    }

    async fn sidecar_read(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>, ReadError> {
        let part = self.inner.partitions.rule(table).partition(key);
        let result = self
            .cql()
            .execute_unpaged(&self.statements().read_sidecar, (table, part, key))
            .await
            .map_err(read_backend)?;
        let rows = result.into_rows_result().map_err(read_backend)?;
        Ok(rows
            .maybe_first_row::<(Vec<u8>,)>()
            .map_err(read_backend)?
            .map(|(value,)| value))
    }

    /// Sidecar records with `from <= key < to`, in key order, at most `limit`. The range must
    /// lie inside one partition of the table's rule ([`partition`]).
    ///
    /// # Errors
    /// [`ReadError::Backend`] if the range crosses partitions or a read fails.
    pub async fn scan_records(
        &self,
        table: &str,
        from: &[u8],
        to: &[u8],
        limit: usize,
    ) -> Result<ScannedRecords, ReadError> {
        if from >= to || limit == 0 {
            return Ok(Vec::new());
        }
        let rule = self.inner.partitions.rule(table);
        let Some(part) = rule.scan_partition(from, to) else {
            return Err(ReadError::Backend(
                format!(
                    "a scan of {table} from {from:02x?} to {to:02x?} crosses partitions of its \
                     rule {rule:?}"
                )
                .into(),
            ));
        };
        let cap = i32::try_from(limit).unwrap_or(i32::MAX);
        let mut statement = self.statements().scan_sidecars.clone();
        statement.set_page_size(SCAN_PAGE_ROWS.min(cap));
        let mut out = Vec::new();
        let mut paging = PagingState::start();
        loop {
            let (result, next) = self
                .cql()
                .execute_single_page(&statement, (table, part, from, to, cap), paging)
                .await
                .map_err(read_backend)?;
            let rows = result.into_rows_result().map_err(read_backend)?;
            for row in rows.rows::<(Vec<u8>, Vec<u8>)>().map_err(read_backend)? {
                out.push(row.map_err(read_backend)?);
                if out.len() == limit {
                    return Ok(out);
                }
            }
            match next.into_paging_control_flow() {
                std::ops::ControlFlow::Break(()) => return Ok(out),
                std::ops::ControlFlow::Continue(state) => paging = state,
            }
        }
    }

    /// Writes sidecar records outside any round, durably (QUORUM) and atomically: up to
    /// [`RECORD_BATCH_BYTES_MAX`] as one logged batch (all of them or, after a failure,
    /// eventually none or all, as the batch log replays); a larger set through a record
    /// intent (written in chunks, then applied, then deleted; a crash after the intent is
    /// complete leaves the records to the next [`LogStorage::load`], which applies every
    /// complete record intent it finds).
    ///
    /// # Errors
    /// [`CommitError::Invalid`] for a bad table name (nothing written), `Backend` otherwise.
    pub async fn put_records(&self, records: Vec<SidecarRecord>) -> Result<(), CommitError> {
        for record in &records {
            validate_table_name(&record.table).map_err(CommitError::Invalid)?;
        }
        if records.is_empty() {
            return Ok(());
        }
        let bytes: usize = records
            .iter()
            .map(|r| r.table.len() + r.key.len() + r.value.len())
            .sum();
        if bytes > RECORD_BATCH_BYTES_MAX {
            return self.put_records_by_intent(records).await;
        }
        let mut batch =
            scylla::statement::batch::Batch::new(scylla::statement::batch::BatchType::Logged);
        let mut values = Vec::with_capacity(records.len());
        for record in records {
            batch.append_statement(self.statements().put_sidecar.clone());
            let part = self
                .inner
                .partitions
                .rule(&record.table)
                .partition(&record.key)
                .to_vec();
            values.push((record.table, part, record.key, record.value));
        }
        self.cql()
            .batch(&batch, values)
            .await
            .map_err(|e| CommitError::Backend(backend(e)))?;
        Ok(())
    }

    async fn put_records_by_intent(&self, records: Vec<SidecarRecord>) -> Result<(), CommitError> {
        let intent = Intent {
            write_time_us: now_us(),
            tiles: Vec::new(),
            bundles: Vec::new(),
            sidecars: records,
        };
        let encoded = intent.encode().map_err(CommitError::Invalid)?;
        let mut id = intent.write_time_us.to_be_bytes().to_vec();
        let mut random = [0u8; 8];
        getrandom::fill(&mut random)
            .map_err(|e| CommitError::Backend(format!("no system randomness: {e}").into()))?;
        id.extend_from_slice(&random);
        let parts = intent::chunks(&encoded);
        let chunks = to_i32(parts.len(), "intent chunk count").map_err(CommitError::Backend)?;
        for (chunk, data) in (0i32..).zip(parts) {
            self.cql()
                .execute_unpaged(
                    &self.statements().write_record_intent,
                    (id.as_slice(), chunk, chunks, data),
                )
                .await
                .map_err(|e| CommitError::Backend(backend(e)))?;
        }
        // A crash after this line leaves a complete intent: the next load applies it.
        self.apply(intent).await.map_err(CommitError::Backend)?;
        if let Err(error) = self
            .cql()
            .execute_unpaged(&self.statements().delete_record_intent, (id,))
            .await
        {
            tracing::warn!(%error, "could not delete an applied record intent");
        }
        Ok(())
    }

    /// Applies every complete record intent left by a crash (see [`Self::put_records`]) and
    /// removes incomplete ones older than [`RECORD_INTENT_ABANDONED_US`].
    async fn sweep_record_intents(&self) -> Result<(), ReadError> {
        let mut pending: BTreeMap<Vec<u8>, Vec<Chunk>> = BTreeMap::new();
        let mut paging = PagingState::start();
        loop {
            let (result, next) = self
                .cql()
                .execute_single_page(&self.statements().read_record_intents, (), paging)
                .await
                .map_err(read_backend)?;
            let rows = result.into_rows_result().map_err(read_backend)?;
            for row in rows
                .rows::<(Vec<u8>, i32, i32, Vec<u8>)>()
                .map_err(read_backend)?
            {
                let (id, chunk, chunks, data) = row.map_err(read_backend)?;
                pending.entry(id).or_default().push((chunk, chunks, data));
            }
            match next.into_paging_control_flow() {
                std::ops::ControlFlow::Break(()) => break,
                std::ops::ControlFlow::Continue(state) => paging = state,
            }
        }
        for (id, parts) in pending {
            if let Some(blob) = assemble(parts) {
                tracing::info!("applying records a crash left in a record intent");
                self.apply(Intent::decode(&blob)?)
                    .await
                    .map_err(ReadError::Backend)?;
            } else {
                let written_us = id
                    .first_chunk::<8>()
                    .map_or(0, |at| i64::from_be_bytes(*at));
                if now_us().saturating_sub(written_us) < RECORD_INTENT_ABANDONED_US {
                    // Possibly still being written by a live process.
                    continue;
                }
            }
            self.cql()
                .execute_unpaged(&self.statements().delete_record_intent, (id,))
                .await
                .map_err(read_backend)?;
        }
        Ok(())
    }

    /// [`Self::read_records`] from synchronous code.
    ///
    /// # Errors
    /// [`ReadError`] if a read fails or no suitable runtime can run it.
    pub fn read_records_blocking(
        &self,
        table: &str,
        keys: &[Vec<u8>],
    ) -> Result<Vec<Option<Vec<u8>>>, ReadError> {
        self.block_on(self.read_records(table, keys))?
    }

    /// [`Self::scan_records`] from synchronous code.
    ///
    /// # Errors
    /// [`ReadError`] if the scan fails or no suitable runtime can run it.
    pub fn scan_records_blocking(
        &self,
        table: &str,
        from: &[u8],
        to: &[u8],
        limit: usize,
    ) -> Result<ScannedRecords, ReadError> {
        self.block_on(self.scan_records(table, from, to, limit))?
    }

    async fn read_widest(
        &self,
        statement: &PreparedStatement,
        values: impl scylla::serialize::row::SerializeRow,
    ) -> Result<Option<Vec<u8>>, ReadError> {
        let result = self
            .cql()
            .execute_unpaged(statement, values)
            .await
            .map_err(read_backend)?;
        let rows = result.into_rows_result().map_err(read_backend)?;
        Ok(rows
            .maybe_first_row::<(Vec<u8>,)>()
            .map_err(read_backend)?
            .map(|(data,)| data))
    }
}

/// A stored chunk of an intent: its number, the intent's chunk count, its bytes.
type Chunk = (i32, i32, Vec<u8>);

/// The blob of an intent from its chunks (in clustering order), or `None` if some are missing.
fn assemble(parts: Vec<Chunk>) -> Option<Vec<u8>> {
    let total = parts.first()?.1;
    let complete = usize::try_from(total).is_ok_and(|t| t == parts.len())
        && parts
            .iter()
            .zip(0i32..)
            .all(|((chunk, chunks, _), expected)| *chunk == expected && *chunks == total);
    complete.then(|| parts.into_iter().flat_map(|(_, _, data)| data).collect())
}

fn note_error(
    first: &mut Option<BackendError>,
    done: Result<Result<(), BackendError>, tokio::task::JoinError>,
) {
    let error = match done {
        Ok(Ok(())) => return,
        Ok(Err(e)) => e,
        Err(e) => backend(e),
    };
    if first.is_none() {
        *first = Some(error);
    }
}

type ReadDone = (usize, Result<Option<Vec<u8>>, ReadError>);

fn place(
    out: &mut [Option<Vec<u8>>],
    first: &mut Option<ReadError>,
    done: Result<ReadDone, tokio::task::JoinError>,
) {
    match done {
        Ok((at, Ok(value))) => out[at] = value,
        Ok((_, Err(e))) => {
            first.get_or_insert(e);
        }
        Err(e) => {
            first.get_or_insert(read_backend(e));
        }
    }
}

enum Write {
    Tile(TileKey, Vec<u8>),
    Bundle(u64, Vec<u8>),
    /// A record and the write time to give it (`None`: now).
    Sidecar(SidecarRecord, Option<i64>),
}

enum CheckpointWrite {
    Signed(LogState),
    Published(StoredCheckpoint),
}

enum SchemaError {
    Newer(i32),
    Backend(BackendError),
}

async fn create_schema(
    cql: &Session,
    config: &ScyllaConfig,
    flavor: Flavor,
) -> Result<(), SchemaError> {
    let ks = &config.keyspace;
    let keyspace = create_keyspace_cql(ks, &config.replication, flavor)
        .map_err(|e| SchemaError::Backend(e.into()))?;
    if let Err(error) = cql.query_unpaged(keyspace, ()).await {
        // ScyllaDB releases before tablets existed do not know the option: create the
        // keyspace without it (they have no tablets to avoid).
        let older_scylla = flavor == Flavor::Scylla && error.to_string().contains("tablets");
        if !older_scylla {
            return Err(SchemaError::Backend(backend(error)));
        }
        let plain = create_keyspace_cql(ks, &config.replication, Flavor::Cassandra)
            .map_err(|e| SchemaError::Backend(e.into()))?;
        cql.query_unpaged(plain, ())
            .await
            .map_err(|e| SchemaError::Backend(backend(e)))?;
    }
    for table in create_tables_cql(ks) {
        cql.query_unpaged(table, ())
            .await
            .map_err(|e| SchemaError::Backend(backend(e)))?;
    }
    let version = cql
        .query_unpaged(
            format!("SELECT version FROM {ks}.log_schema WHERE name = 'log'"),
            (),
        )
        .await
        .map_err(|e| SchemaError::Backend(backend(e)))?
        .into_rows_result()
        .map_err(|e| SchemaError::Backend(backend(e)))?
        .maybe_first_row::<(i32,)>()
        .map_err(|e| SchemaError::Backend(backend(e)))?;
    match version {
        // A new keyspace: record the version its tables were created with.
        None => {
            cql.query_unpaged(
                format!(
                    "INSERT INTO {ks}.log_schema (name, version) VALUES ('log', ?) \
                         IF NOT EXISTS"
                ),
                (SCHEMA_VERSION,),
            )
            .await
            .map_err(|e| SchemaError::Backend(backend(e)))?;
            Ok(())
        }
        // Version 1 is the first; a later version adds its migration steps here, each
        // followed by a conditional update of the version row.
        Some((found,)) if found == SCHEMA_VERSION => Ok(()),
        Some((found,)) if found > SCHEMA_VERSION => Err(SchemaError::Newer(found)),
        Some((found,)) => Err(SchemaError::Backend(
            format!("schema version {found} has no migration to {SCHEMA_VERSION}").into(),
        )),
    }
}

impl Statements {
    async fn prepare(
        cql: &Session,
        ks: &str,
        consistency: WriteConsistency,
    ) -> Result<Self, BackendError> {
        let prepare = |text: String| async move { cql.prepare(text).await.map_err(backend) };
        let idempotent = |mut s: PreparedStatement| {
            s.set_is_idempotent(true);
            s
        };
        let mut read_state = prepare(format!(
            "SELECT size, root, round_epoch, epoch, holder, lease_until_ms, signed_size, \
             signed_root, cp_size, cp_root, cp_note FROM {ks}.log_state WHERE log = 'log'"
        ))
        .await?;
        read_state.set_consistency(consistency.serial_read());
        read_state.set_is_idempotent(true);
        Ok(Self {
            read_state,
            advance: prepare(format!(
                "UPDATE {ks}.log_state SET size = ?, root = ?, round_epoch = ? WHERE log = 'log' \
                 IF size = ? AND root = ? AND epoch = ?"
            ))
            .await?,
            put_signed: prepare(format!(
                "UPDATE {ks}.log_state SET signed_size = ?, signed_root = ? WHERE log = 'log' \
                 IF signed_size = ? AND signed_root = ?"
            ))
            .await?,
            put_checkpoint: prepare(format!(
                "UPDATE {ks}.log_state SET cp_size = ?, cp_root = ?, cp_note = ? \
                 WHERE log = 'log' IF cp_size = ? AND cp_root = ?"
            ))
            .await?,
            take_lease: prepare(format!(
                "UPDATE {ks}.log_state SET epoch = ?, holder = ?, lease_until_ms = ? \
                 WHERE log = 'log' IF epoch = ? AND holder = ? AND lease_until_ms = ?"
            ))
            .await?,
            renew_lease: prepare(format!(
                "UPDATE {ks}.log_state SET lease_until_ms = ? WHERE log = 'log' \
                 IF epoch = ? AND holder = ?"
            ))
            .await?,
            release_lease: prepare(format!(
                "UPDATE {ks}.log_state SET lease_until_ms = 0 WHERE log = 'log' \
                 IF epoch = ? AND holder = ?"
            ))
            .await?,
            write_intent: idempotent(
                prepare(format!(
                    "INSERT INTO {ks}.log_intents (size, root, epoch, chunk, chunks, data) \
                     VALUES (?, ?, ?, ?, ?, ?)"
                ))
                .await?,
            ),
            read_intent: idempotent(
                prepare(format!(
                    "SELECT chunk, chunks, data FROM {ks}.log_intents \
                     WHERE size = ? AND root = ? AND epoch = ?"
                ))
                .await?,
            ),
            delete_intent: idempotent(
                prepare(format!(
                    "DELETE FROM {ks}.log_intents WHERE size = ? AND root = ? AND epoch = ?"
                ))
                .await?,
            ),
            write_record_intent: idempotent(
                prepare(format!(
                    "INSERT INTO {ks}.log_record_intents (bucket, id, chunk, chunks, data) \
                     VALUES (0, ?, ?, ?, ?)"
                ))
                .await?,
            ),
            read_record_intents: idempotent(
                prepare(format!(
                    "SELECT id, chunk, chunks, data FROM {ks}.log_record_intents \
                     WHERE bucket = 0"
                ))
                .await?,
            ),
            delete_record_intent: idempotent(
                prepare(format!(
                    "DELETE FROM {ks}.log_record_intents WHERE bucket = 0 AND id = ?"
                ))
                .await?,
            ),
            write_tile: idempotent(
                prepare(format!(
                    "INSERT INTO {ks}.log_tiles (level, idx, bytes, data) VALUES (?, ?, ?, ?)"
                ))
                .await?,
            ),
            trim_tile: idempotent(
                prepare(format!(
                    "DELETE FROM {ks}.log_tiles WHERE level = ? AND idx = ? AND bytes < ?"
                ))
                .await?,
            ),
            read_tile: idempotent(
                prepare(format!(
                    "SELECT data FROM {ks}.log_tiles WHERE level = ? AND idx = ? LIMIT 1"
                ))
                .await?,
            ),
            write_bundle: idempotent(
                prepare(format!(
                    "INSERT INTO {ks}.log_bundles (idx, bytes, data) VALUES (?, ?, ?)"
                ))
                .await?,
            ),
            trim_bundle: idempotent(
                prepare(format!(
                    "DELETE FROM {ks}.log_bundles WHERE idx = ? AND bytes < ?"
                ))
                .await?,
            ),
            read_bundle: idempotent(
                prepare(format!(
                    "SELECT data FROM {ks}.log_bundles WHERE idx = ? LIMIT 1"
                ))
                .await?,
            ),
            apply_sidecar: idempotent(
                prepare(format!(
                    "INSERT INTO {ks}.sidecars (tbl, part, key, value) VALUES (?, ?, ?, ?) \
                     USING TIMESTAMP ?"
                ))
                .await?,
            ),
            put_sidecar: idempotent(
                prepare(format!(
                    "INSERT INTO {ks}.sidecars (tbl, part, key, value) VALUES (?, ?, ?, ?)"
                ))
                .await?,
            ),
            read_sidecar: idempotent(
                prepare(format!(
                    "SELECT value FROM {ks}.sidecars WHERE tbl = ? AND part = ? AND key = ?"
                ))
                .await?,
            ),
            scan_sidecars: idempotent(
                prepare(format!(
                    "SELECT key, value FROM {ks}.sidecars WHERE tbl = ? AND part = ? \
                     AND key >= ? AND key < ? LIMIT ?"
                ))
                .await?,
            ),
        })
    }
}

/// A synchronous tile reader (see the module documentation on synchronous reads). Tiles are
/// read at the time of each call: a remote store has no snapshot, but tiles only ever grow and
/// hold committed data only, so a wider tile than the caller's tree is a valid prefix source.
#[derive(Debug, Clone)]
pub struct ScyllaTiles {
    storage: ScyllaStorage,
}

impl TileReader for ScyllaTiles {
    type Error = ReadError;

    fn read_tile(&self, level: u8, index: u64) -> Result<Option<Vec<u8>>, ReadError> {
        self.storage
            .block_on(self.storage.tile(TileKey { level, index }))?
    }
}

impl LogStorage for ScyllaStorage {
    type Tiles = ScyllaTiles;

    fn tile_reader(&self) -> Result<ScyllaTiles, ReadError> {
        if Handle::try_current().is_ok_and(|h| h.runtime_flavor() == RuntimeFlavor::CurrentThread) {
            return Err(ReadError::Backend(
                "the ScyllaDB tile reader needs a multi-thread tokio runtime".into(),
            ));
        }
        Ok(ScyllaTiles {
            storage: self.clone(),
        })
    }

    async fn load(&self) -> Result<Restored, ReadError> {
        let row = self.read_row().await?;
        self.roll_forward(&row).await?;
        self.sweep_record_intents().await?;
        Ok(Restored {
            state: row.state,
            checkpoint: row.checkpoint,
            signed: row.signed,
        })
    }

    async fn commit_round(&self, round: Arc<RoundCommit>) -> Result<(), CommitError> {
        self.commit(&round).await
    }

    async fn put_signed(&self, state: LogState) -> Result<(), CheckpointError> {
        self.guarded_write(|row| {
            if row.signed == Some(state) {
                return Ok(None);
            }
            check_signed(row.state, row.signed, state)?;
            Ok(Some(CheckpointWrite::Signed(state)))
        })
        .await
    }

    async fn put_checkpoint(&self, checkpoint: StoredCheckpoint) -> Result<(), CheckpointError> {
        self.guarded_write(|row| {
            if row.checkpoint.as_ref() == Some(&checkpoint) {
                return Ok(None);
            }
            check_checkpoint(row.state, row.checkpoint.as_ref(), &checkpoint)?;
            Ok(Some(CheckpointWrite::Published(checkpoint.clone())))
        })
        .await
    }

    async fn checkpoint(&self) -> Result<Option<StoredCheckpoint>, ReadError> {
        Ok(self.read_row().await?.checkpoint)
    }

    async fn tile(&self, key: TileKey) -> Result<Option<Vec<u8>>, ReadError> {
        let index = to_i64(key.index, "tile index").map_err(ReadError::Backend)?;
        let tile = self
            .read_widest(&self.statements().read_tile, (i32::from(key.level), index))
            .await?;
        if let Some(tile) = &tile
            && (tile.is_empty() || tile.len() % HASH_BYTES != 0)
        {
            return Err(ReadError::Corrupt(format!(
                "tile {}/{} has {} bytes",
                key.level,
                key.index,
                tile.len()
            )));
        }
        Ok(tile)
    }

    async fn bundle(&self, index: u64) -> Result<Option<Vec<u8>>, ReadError> {
        let index = to_i64(index, "bundle index").map_err(ReadError::Backend)?;
        self.read_widest(&self.statements().read_bundle, (index,))
            .await
    }

    async fn sidecar(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>, ReadError> {
        self.sidecar_read(table, key).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replication_maps_are_cql() {
        assert_eq!(
            Replication::Simple {
                replication_factor: 3
            }
            .cql()
            .expect("valid"),
            "{'class': 'SimpleStrategy', 'replication_factor': 3}"
        );
        let dcs = BTreeMap::from([("dc1".to_owned(), 3), ("dc-2".to_owned(), 2)]);
        assert_eq!(
            Replication::NetworkTopology(dcs).cql().expect("valid"),
            "{'class': 'NetworkTopologyStrategy', 'dc-2': 2, 'dc1': 3}"
        );
        assert!(
            Replication::Simple {
                replication_factor: 0
            }
            .cql()
            .is_err()
        );
        let quote = BTreeMap::from([("dc'1".to_owned(), 3)]);
        assert!(Replication::NetworkTopology(quote).cql().is_err());
        assert!(Replication::NetworkTopology(BTreeMap::new()).cql().is_err());
    }

    #[test]
    fn only_scylla_keyspaces_turn_tablets_off() {
        let simple = Replication::Simple {
            replication_factor: 1,
        };
        let scylla = create_keyspace_cql("agritrace", &simple, Flavor::Scylla).expect("valid");
        assert!(
            scylla.ends_with("AND tablets = {'enabled': false}"),
            "{scylla}"
        );
        let cassandra =
            create_keyspace_cql("agritrace", &simple, Flavor::Cassandra).expect("valid");
        assert!(!cassandra.contains("tablets"), "{cassandra}");
        assert!(cassandra.starts_with("CREATE KEYSPACE IF NOT EXISTS agritrace WITH"));
    }

    #[test]
    fn configurations_are_validated() {
        let check = |keyspace: &str, ok: bool| {
            let config = ScyllaConfig::new(vec!["127.0.0.1:9042".into()], keyspace);
            assert_eq!(config.validate().is_ok(), ok, "{keyspace:?}");
        };
        check("agritrace", true);
        check("log_2026", true);
        check("", false);
        check("2026", false);
        check("Agritrace", false);
        check("a;drop", false);
        check(&"k".repeat(49), false);
        let mut none = ScyllaConfig::new(Vec::new(), "agritrace");
        assert!(none.validate().is_err());
        none.contact_points.push("h:1".into());
        none.request_timeout_ms = 0;
        assert!(none.validate().is_err());
    }
}
