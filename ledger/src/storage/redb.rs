//! The embedded backend: one redb database file in the data directory.
//!
//! One durable (fsync'd, `Durability::Immediate`, quick-repair) write transaction per sequencing
//! round holds the round's entry bundles, tiles, sidecar records and the new log state; the
//! last-signed state and the published checkpoint are each stored by their own small
//! transaction after the round (the storage module documentation says why). Tables:
//!
//! | table         | key            | value                                       |
//! |---------------|----------------|---------------------------------------------|
//! | `log_meta`    | `"state"`      | size (u64 BE) ‖ root                        |
//! | `log_meta`    | `"signed"`     | size (u64 BE) ‖ root: the last state signed |
//! | `log_meta`    | `"checkpoint"` | size (u64 BE) ‖ root ‖ published note       |
//! | `log_tiles`   | (level, index) | widest tile: concatenated 32-byte hashes    |
//! | `log_bundles` | bundle index   | widest entry bundle (C2SP tlog-tiles)       |
//! | any other     | caller bytes   | sidecar records (see [`SidecarRecord`])     |
//!
//!
//! redb calls block (reads of tiles and bundles of a multi-gigabyte file go to the disk, commits
//! fsync), so every async method runs its work on tokio's blocking pool (`spawn_blocking`),
//! never on an async worker. [`LogStorage::tile_reader`] is synchronous by design: proof code
//! calls it, and async callers run that code in `spawn_blocking` too.
//!
//! [`RedbStorage::snapshot_into`] copies the whole database, as one read transaction sees it,
//! into a new file while rounds go on committing: the online backup of `agritrace backup`.
//! redb 3 has no copy or backup facility of its own (`compact` rewrites the file in place and
//! needs the only handle), so the copy goes table by table with each table's own types.
//!
//! [`SidecarRecord`]: super::SidecarRecord

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use redb::{
    Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition, TableHandle,
};

use crate::tile::TileReader;

use super::memory::{check_checkpoint, check_signed};
use super::{
    BackendError, CheckpointError, CommitError, HASH_BYTES, LogState, LogStorage, ReadError,
    Restored, RoundCommit, StoredCheckpoint, TileKey,
};

const META: TableDefinition<'static, &str, &[u8]> = TableDefinition::new("log_meta");
const TILES: TableDefinition<'static, (u8, u64), &[u8]> = TableDefinition::new("log_tiles");
const BUNDLES: TableDefinition<'static, u64, &[u8]> = TableDefinition::new("log_bundles");

const STATE_KEY: &str = "state";
const CHECKPOINT_KEY: &str = "checkpoint";
const SIGNED_KEY: &str = "signed";

/// The redb backend. Cloning shares the same database.
#[derive(Debug, Clone)]
pub struct RedbStorage {
    db: Arc<Database>,
    empty_root: [u8; 32],
}

fn backend<E: Into<redb::Error>>(error: E) -> BackendError {
    Box::new(error.into())
}

fn read_backend<E: Into<redb::Error>>(error: E) -> ReadError {
    ReadError::Backend(backend(error))
}

impl RedbStorage {
    /// Opens (or creates) the database at `path`. `empty_root` is `SHA-256("")`, the root of the
    /// empty log.
    ///
    /// # Errors
    /// [`ReadError::Backend`] if the file cannot be opened or created.
    pub fn open(path: &Path, empty_root: [u8; 32]) -> Result<Self, ReadError> {
        let created = !path.exists();
        let db = Database::create(path).map_err(read_backend)?;
        if created {
            // The new file's directory entry lives in the parent directory: fsync it, or a
            // crash could lose the whole database file even after fsync'd commits.
            let parent = match path.parent() {
                Some(parent) if !parent.as_os_str().is_empty() => parent,
                _ => Path::new("."),
            };
            std::fs::File::open(parent)
                .and_then(|d| d.sync_all())
                .map_err(|e| ReadError::Backend(Box::new(e)))?;
        }
        // Create the tables once so that read transactions always find them.
        let mut txn = db.begin_write().map_err(read_backend)?;
        txn.set_quick_repair(true);
        {
            txn.open_table(META).map_err(read_backend)?;
            txn.open_table(TILES).map_err(read_backend)?;
            txn.open_table(BUNDLES).map_err(read_backend)?;
        }
        txn.commit().map_err(read_backend)?;
        Ok(Self {
            db: Arc::new(db),
            empty_root,
        })
    }

    /// The database, for callers that read their own sidecar tables (opened with
    /// `TableDefinition::<&[u8], &[u8]>::new(table)`).
    #[must_use]
    pub fn database(&self) -> &Arc<Database> {
        &self.db
    }

    fn read_state(
        &self,
        meta: &impl ReadableTable<&'static str, &'static [u8]>,
    ) -> Result<LogState, ReadError> {
        match meta.get(STATE_KEY).map_err(read_backend)? {
            Some(value) => LogState::from_bytes(value.value()),
            None => Ok(LogState::empty(self.empty_root)),
        }
    }

    fn commit_blocking(&self, round: &RoundCommit) -> Result<(), CommitError> {
        round.validate()?;
        let commit_backend = |e: BackendError| CommitError::Backend(e);
        let mut txn = self
            .db
            .begin_write()
            .map_err(|e| commit_backend(backend(e)))?;
        // Quick repair: the allocator state is saved with every commit (two-phase), so that a
        // restart after a crash does not walk the whole file (restart stays O(1) in log size).
        txn.set_quick_repair(true);
        {
            let mut meta = txn
                .open_table(META)
                .map_err(|e| commit_backend(backend(e)))?;
            let stored = self.read_state(&meta).map_err(|e| match e {
                ReadError::Backend(b) => CommitError::Backend(b),
                ReadError::Corrupt(reason) => CommitError::Backend(reason.into()),
            })?;
            if stored == round.next {
                // Idempotent retry: the round already landed. Dropping `txn` aborts it.
                return Ok(());
            }
            if stored != round.previous {
                return Err(CommitError::Conflict {
                    stored_size: stored.size,
                    expected_size: round.previous.size,
                });
            }
            let mut tiles = txn
                .open_table(TILES)
                .map_err(|e| commit_backend(backend(e)))?;
            for (key, tile) in &round.tiles {
                tiles
                    .insert((key.level, key.index), tile.as_slice())
                    .map_err(|e| commit_backend(backend(e)))?;
            }
            let mut bundles = txn
                .open_table(BUNDLES)
                .map_err(|e| commit_backend(backend(e)))?;
            for (index, bundle) in &round.bundles {
                bundles
                    .insert(*index, bundle.as_slice())
                    .map_err(|e| commit_backend(backend(e)))?;
            }
            for record in &round.sidecars {
                let definition = TableDefinition::<&[u8], &[u8]>::new(&record.table);
                let mut table = txn
                    .open_table(definition)
                    .map_err(|e| commit_backend(backend(e)))?;
                table
                    .insert(record.key.as_slice(), record.value.as_slice())
                    .map_err(|e| commit_backend(backend(e)))?;
            }
            meta.insert(STATE_KEY, round.next.to_bytes().as_slice())
                .map_err(|e| commit_backend(backend(e)))?;
        }
        // Durability::Immediate is the default: commit() returns after fsync. A crash before
        // this line leaves the previous round as the durable state; after it, this one.
        txn.commit().map_err(|e| commit_backend(backend(e)))?;
        Ok(())
    }

    fn put_checkpoint_blocking(
        &self,
        checkpoint: &StoredCheckpoint,
    ) -> Result<(), CheckpointError> {
        self.guarded_meta_write(CHECKPOINT_KEY, decode_checkpoint, |durable, stored| {
            check_checkpoint(durable, stored.as_ref(), checkpoint)?;
            Ok(Some(encode_checkpoint(checkpoint)))
        })
    }

    fn put_signed_blocking(&self, state: LogState) -> Result<(), CheckpointError> {
        self.guarded_meta_write(SIGNED_KEY, LogState::from_bytes, |durable, stored| {
            if stored == Some(state) {
                return Ok(None);
            }
            check_signed(durable, stored, state)?;
            Ok(Some(state.to_bytes().to_vec()))
        })
    }

    /// One write transaction on the meta table: reads the durable log state and the record
    /// under `key`, lets `decide` refuse (an error), skip (`None`) or give the bytes to store,
    /// and commits. Checking and writing in one transaction is what keeps a concurrent writer
    /// from slipping a stale record past the check.
    fn guarded_meta_write<T>(
        &self,
        key: &'static str,
        decode: impl Fn(&[u8]) -> Result<T, ReadError>,
        decide: impl FnOnce(LogState, Option<T>) -> Result<Option<Vec<u8>>, CheckpointError>,
    ) -> Result<(), CheckpointError> {
        let backend_error = |e: ReadError| CheckpointError::Backend(e.into());
        let mut txn = self
            .db
            .begin_write()
            .map_err(|e| CheckpointError::Backend(backend(e)))?;
        txn.set_quick_repair(true);
        {
            let mut meta = txn
                .open_table(META)
                .map_err(|e| CheckpointError::Backend(backend(e)))?;
            let durable = self.read_state(&meta).map_err(backend_error)?;
            let stored = match meta
                .get(key)
                .map_err(|e| CheckpointError::Backend(backend(e)))?
            {
                Some(value) => Some(decode(value.value()).map_err(backend_error)?),
                None => None,
            };
            let Some(bytes) = decide(durable, stored)? else {
                // Nothing to write: dropping the transaction aborts it.
                return Ok(());
            };
            meta.insert(key, bytes.as_slice())
                .map_err(|e| CheckpointError::Backend(backend(e)))?;
        }
        txn.commit()
            .map_err(|e| CheckpointError::Backend(backend(e)))?;
        Ok(())
    }

    fn load_blocking(&self) -> Result<Restored, ReadError> {
        let txn = self.db.begin_read().map_err(read_backend)?;
        let meta = txn.open_table(META).map_err(read_backend)?;
        let state = self.read_state(&meta)?;
        let checkpoint = match meta.get(CHECKPOINT_KEY).map_err(read_backend)? {
            Some(value) => Some(decode_checkpoint(value.value())?),
            None => None,
        };
        let signed = match meta.get(SIGNED_KEY).map_err(read_backend)? {
            Some(value) => Some(LogState::from_bytes(value.value())?),
            None => None,
        };
        Ok(Restored {
            state,
            checkpoint,
            signed,
        })
    }

    fn sidecar_blocking(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>, ReadError> {
        let txn = self.db.begin_read().map_err(read_backend)?;
        let definition = TableDefinition::<&[u8], &[u8]>::new(table);
        let handle = match txn.open_table(definition) {
            Ok(handle) => handle,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(read_backend(e)),
        };
        Ok(handle
            .get(key)
            .map_err(read_backend)?
            .map(|value| value.value().to_vec()))
    }

    fn checkpoint_blocking(&self) -> Result<Option<StoredCheckpoint>, ReadError> {
        let txn = self.db.begin_read().map_err(read_backend)?;
        let meta = txn.open_table(META).map_err(read_backend)?;
        match meta.get(CHECKPOINT_KEY).map_err(read_backend)? {
            Some(value) => Ok(Some(decode_checkpoint(value.value())?)),
            None => Ok(None),
        }
    }

    /// Reads a tile synchronously (a point read; used by proof generation).
    ///
    /// # Errors
    /// [`ReadError`] if the database cannot be read or the tile is malformed.
    pub fn tile_blocking(&self, key: TileKey) -> Result<Option<Vec<u8>>, ReadError> {
        let txn = self.db.begin_read().map_err(read_backend)?;
        let tiles = txn.open_table(TILES).map_err(read_backend)?;
        let Some(value) = tiles.get((key.level, key.index)).map_err(read_backend)? else {
            return Ok(None);
        };
        let tile = value.value().to_vec();
        if tile.is_empty() || tile.len() % HASH_BYTES != 0 {
            return Err(ReadError::Corrupt(format!(
                "tile {}/{} has {} bytes",
                key.level,
                key.index,
                tile.len()
            )));
        }
        Ok(Some(tile))
    }

    /// Reads an entry bundle synchronously.
    ///
    /// # Errors
    /// [`ReadError`] if the database cannot be read.
    pub fn bundle_blocking(&self, index: u64) -> Result<Option<Vec<u8>>, ReadError> {
        let txn = self.db.begin_read().map_err(read_backend)?;
        let bundles = txn.open_table(BUNDLES).map_err(read_backend)?;
        Ok(bundles
            .get(index)
            .map_err(read_backend)?
            .map(|value| value.value().to_vec()))
    }
}

/// What one read transaction of the store saw: the log state, the published checkpoint and
/// the number of rows of every table (log tables and sidecar tables alike).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreSummary {
    /// The durable log state.
    pub state: LogState,
    /// The published checkpoint, if one was stored yet.
    pub checkpoint: Option<StoredCheckpoint>,
    /// Rows per table, by table name.
    pub tables: BTreeMap<String, u64>,
}

/// Rows of the sidecar table `name` are raw bytes to raw bytes (see [`SidecarRecord`]).
///
/// [`SidecarRecord`]: super::SidecarRecord
fn sidecar_definition(name: &str) -> TableDefinition<'_, &'static [u8], &'static [u8]> {
    TableDefinition::new(name)
}

/// Rows copied per write transaction of a snapshot: bounds the memory one transaction of the
/// copy holds, whatever the size of the store.
const SNAPSHOT_ROWS_PER_TXN: u64 = 50_000;

/// Copies one table of `source` into `target`, in write transactions of at most
/// [`SNAPSHOT_ROWS_PER_TXN`] rows committed without fsync (the caller's last commit makes them
/// all durable). Returns the rows copied.
fn copy_table<K, V>(
    source: &redb::ReadTransaction,
    target: &Database,
    definition: TableDefinition<'_, K, V>,
) -> Result<u64, ReadError>
where
    K: redb::Key + 'static,
    V: redb::Value + 'static,
{
    let from = source.open_table(definition).map_err(read_backend)?;
    let mut rows_in = from.iter().map_err(read_backend)?;
    let mut rows = 0u64;
    loop {
        let mut txn = target.begin_write().map_err(read_backend)?;
        txn.set_durability(redb::Durability::None)
            .map_err(|e| ReadError::Backend(Box::new(e)))?;
        let mut done = true;
        {
            // Opening the table creates it, so an empty table is copied too.
            let mut to = txn.open_table(definition).map_err(read_backend)?;
            let mut in_txn = 0u64;
            for row in rows_in.by_ref() {
                let (key, value) = row.map_err(read_backend)?;
                to.insert(key.value(), value.value())
                    .map_err(read_backend)?;
                rows += 1;
                in_txn += 1;
                if in_txn == SNAPSHOT_ROWS_PER_TXN {
                    done = false;
                    break;
                }
            }
        }
        txn.commit().map_err(read_backend)?;
        if done {
            return Ok(rows);
        }
    }
}

impl RedbStorage {
    /// Copies the whole store, as one read transaction sees it (a consistent snapshot: rounds
    /// committed after it began are not in the copy), into a new redb file at `target`, and
    /// says what the copy holds. Rounds keep committing meanwhile: redb readers never block
    /// the writer. Blocking: call it from a blocking thread.
    ///
    /// The copy goes in write transactions of a bounded number of rows on the new file, the
    /// last one committed with fsync; `target` must not exist. A crash leaves a partial file at
    /// `target` that the caller removes. While the copy runs, its read transaction keeps the
    /// pages it sees: the store's file may grow by what commits meanwhile, and reuses that
    /// space afterwards.
    ///
    /// # Errors
    /// [`ReadError`] if the store cannot be read, `target` cannot be created or written, or a
    /// table is neither a log table nor a `&[u8] → &[u8]` sidecar table.
    pub fn snapshot_into(&self, target: &Path) -> Result<StoreSummary, ReadError> {
        if target.exists() {
            return Err(ReadError::Backend(
                format!("{} exists already", target.display()).into(),
            ));
        }
        let source = self.db.begin_read().map_err(read_backend)?;
        let summary = summarize(&source, self.empty_root)?;
        let copy = Database::create(target).map_err(read_backend)?;
        let mut copied = BTreeMap::new();
        copied.insert(META.name().to_owned(), copy_table(&source, &copy, META)?);
        copied.insert(TILES.name().to_owned(), copy_table(&source, &copy, TILES)?);
        copied.insert(
            BUNDLES.name().to_owned(),
            copy_table(&source, &copy, BUNDLES)?,
        );
        for name in sidecar_names(&source)? {
            let rows = copy_table(&source, &copy, sidecar_definition(&name))?;
            copied.insert(name, rows);
        }
        // Assert after reading: the copy holds exactly what the snapshot counted.
        if copied != summary.tables {
            return Err(ReadError::Corrupt(format!(
                "the copy holds {copied:?} rows, the snapshot counted {:?}",
                summary.tables
            )));
        }
        // One durable commit (Durability::Immediate, the default: it returns after fsync)
        // makes every earlier commit of the copy durable too.
        copy.begin_write()
            .map_err(read_backend)?
            .commit()
            .map_err(read_backend)?;
        drop(copy);
        Ok(summary)
    }

    /// What the store holds now (one read transaction): log state, checkpoint, rows per table.
    /// Blocking: call it from a blocking thread.
    ///
    /// # Errors
    /// [`ReadError`] if the store cannot be read or a table has unexpected types.
    pub fn summary(&self) -> Result<StoreSummary, ReadError> {
        let txn = self.db.begin_read().map_err(read_backend)?;
        summarize(&txn, self.empty_root)
    }
}

fn sidecar_names(txn: &redb::ReadTransaction) -> Result<Vec<String>, ReadError> {
    if txn
        .list_multimap_tables()
        .map_err(read_backend)?
        .next()
        .is_some()
    {
        return Err(ReadError::Corrupt(
            "the store holds a multimap table, which no agritrace component writes".into(),
        ));
    }
    Ok(txn
        .list_tables()
        .map_err(read_backend)?
        .map(|handle| handle.name().to_owned())
        .filter(|name| ![META.name(), TILES.name(), BUNDLES.name()].contains(&name.as_str()))
        .collect())
}

fn summarize(txn: &redb::ReadTransaction, empty_root: [u8; 32]) -> Result<StoreSummary, ReadError> {
    let meta = txn.open_table(META).map_err(read_backend)?;
    let state = match meta.get(STATE_KEY).map_err(read_backend)? {
        Some(value) => LogState::from_bytes(value.value())?,
        None => LogState::empty(empty_root),
    };
    let checkpoint = match meta.get(CHECKPOINT_KEY).map_err(read_backend)? {
        Some(value) => Some(decode_checkpoint(value.value())?),
        None => None,
    };
    let mut tables = BTreeMap::new();
    tables.insert(META.name().to_owned(), meta.len().map_err(read_backend)?);
    let tiles = txn.open_table(TILES).map_err(read_backend)?;
    tables.insert(TILES.name().to_owned(), tiles.len().map_err(read_backend)?);
    let bundles = txn.open_table(BUNDLES).map_err(read_backend)?;
    tables.insert(
        BUNDLES.name().to_owned(),
        bundles.len().map_err(read_backend)?,
    );
    for name in sidecar_names(txn)? {
        let table = txn
            .open_table(sidecar_definition(&name))
            .map_err(read_backend)?;
        tables.insert(name, table.len().map_err(read_backend)?);
    }
    Ok(StoreSummary {
        state,
        checkpoint,
        tables,
    })
}

fn encode_checkpoint(checkpoint: &StoredCheckpoint) -> Vec<u8> {
    let mut out = Vec::with_capacity(40 + checkpoint.note.len());
    out.extend_from_slice(&checkpoint.size.to_be_bytes());
    out.extend_from_slice(&checkpoint.root);
    out.extend_from_slice(&checkpoint.note);
    out
}

fn decode_checkpoint(bytes: &[u8]) -> Result<StoredCheckpoint, ReadError> {
    if bytes.len() < 40 {
        return Err(ReadError::Corrupt(
            "stored checkpoint shorter than 40 bytes".into(),
        ));
    }
    let (head, note) = bytes.split_at(40);
    let state = LogState::from_bytes(head)?;
    Ok(StoredCheckpoint {
        size: state.size,
        root: state.root,
        note: note.to_vec(),
    })
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, BackendError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Box::new(e) as BackendError)
}

/// A tile reader over one redb read transaction (a consistent snapshot).
#[derive(Debug)]
pub struct RedbTiles {
    tiles: redb::ReadOnlyTable<(u8, u64), &'static [u8]>,
}

impl TileReader for RedbTiles {
    type Error = ReadError;

    fn read_tile(&self, level: u8, index: u64) -> Result<Option<Vec<u8>>, ReadError> {
        Ok(self
            .tiles
            .get((level, index))
            .map_err(read_backend)?
            .map(|value| value.value().to_vec()))
    }
}

impl LogStorage for RedbStorage {
    type Tiles = RedbTiles;

    fn tile_reader(&self) -> Result<RedbTiles, ReadError> {
        let txn = self.db.begin_read().map_err(read_backend)?;
        let tiles = txn.open_table(TILES).map_err(read_backend)?;
        Ok(RedbTiles { tiles })
    }

    async fn load(&self) -> Result<Restored, ReadError> {
        let this = self.clone();
        blocking(move || this.load_blocking())
            .await
            .map_err(ReadError::Backend)?
    }

    async fn commit_round(&self, round: Arc<RoundCommit>) -> Result<(), CommitError> {
        let this = self.clone();
        blocking(move || this.commit_blocking(&round))
            .await
            .map_err(CommitError::Backend)?
    }

    async fn put_signed(&self, state: LogState) -> Result<(), CheckpointError> {
        let this = self.clone();
        blocking(move || this.put_signed_blocking(state))
            .await
            .map_err(CheckpointError::Backend)?
    }

    async fn put_checkpoint(&self, checkpoint: StoredCheckpoint) -> Result<(), CheckpointError> {
        let this = self.clone();
        blocking(move || this.put_checkpoint_blocking(&checkpoint))
            .await
            .map_err(CheckpointError::Backend)?
    }

    async fn checkpoint(&self) -> Result<Option<StoredCheckpoint>, ReadError> {
        let this = self.clone();
        blocking(move || this.checkpoint_blocking())
            .await
            .map_err(ReadError::Backend)?
    }

    async fn tile(&self, key: TileKey) -> Result<Option<Vec<u8>>, ReadError> {
        let this = self.clone();
        blocking(move || this.tile_blocking(key))
            .await
            .map_err(ReadError::Backend)?
    }

    async fn bundle(&self, index: u64) -> Result<Option<Vec<u8>>, ReadError> {
        let this = self.clone();
        blocking(move || this.bundle_blocking(index))
            .await
            .map_err(ReadError::Backend)?
    }

    async fn sidecar(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>, ReadError> {
        let this = self.clone();
        let table = table.to_owned();
        let key = key.to_vec();
        blocking(move || this.sidecar_blocking(&table, &key))
            .await
            .map_err(ReadError::Backend)?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fill(storage: &RedbStorage, table: &str, from: u64, rows: u64) {
        let txn = storage.db.begin_write().expect("write");
        {
            let mut handle = txn
                .open_table(sidecar_definition(table))
                .expect("a sidecar table");
            for i in from..from + rows {
                let value = [u8::try_from(i % 251).expect("small"); 100];
                handle
                    .insert(i.to_be_bytes().as_slice(), value.as_slice())
                    .expect("insert");
            }
        }
        txn.commit().expect("commit");
    }

    #[test]
    fn a_snapshot_is_one_read_transaction_copied_whole_while_writes_go_on() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage =
            RedbStorage::open(&dir.path().join("store.redb"), [0; 32]).expect("open the store");
        // More rows than one copy transaction takes, and an empty table.
        let before = SNAPSHOT_ROWS_PER_TXN * 2 + 7;
        fill(&storage, "readings", 0, before);
        fill(&storage, "empty", 0, 0);

        let writer = {
            let storage = storage.clone();
            std::thread::spawn(move || {
                for round in 0..20 {
                    fill(&storage, "readings", before + round * 1_000, 1_000);
                }
            })
        };
        let copy_path = dir.path().join("copy.redb");
        let started = std::time::Instant::now();
        let summary = storage.snapshot_into(&copy_path).expect("a snapshot");
        let took = started.elapsed();
        writer.join().expect("the writer");

        let rows = summary.tables["readings"];
        assert!(
            (before..=before + 20_000).contains(&rows) && (rows - before).is_multiple_of(1_000),
            "the snapshot saw {rows} rows: not one transaction's view"
        );
        assert_eq!(summary.tables["empty"], 0);
        let bytes = std::fs::metadata(&copy_path).expect("the copy").len();
        eprintln!("snapshot of {rows} rows of 100 bytes: {bytes} bytes in {took:?}");

        let copy = RedbStorage::open(&copy_path, [0; 32]).expect("open the copy");
        assert_eq!(copy.summary().expect("the copy's summary"), summary);
        assert_eq!(
            copy.sidecar_blocking("readings", &(before - 1).to_be_bytes())
                .expect("read"),
            Some(vec![u8::try_from((before - 1) % 251).expect("small"); 100])
        );
        let error = storage
            .snapshot_into(&copy_path)
            .expect_err("the target exists");
        assert!(error.to_string().contains("read failed"), "{error}");
    }
}
