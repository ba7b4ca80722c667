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
//! [`SidecarRecord`]: super::SidecarRecord

use std::path::Path;
use std::sync::Arc;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

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
