//! What ingest needs from storage beyond the log's own contract: point reads, batched point
//! reads and ordered range scans of its sidecar tables, and a durable write of records that
//! ride with no log entry (quarantine records when a batch closes without readings).
//!
//! [`IngestStorage`] is implemented here for the embedded backend ([`RedbStorage`]) through its
//! database handle; another backend implements it beside its `LogStorage`.
//!
//! Reads are synchronous point reads or short range scans over one consistent snapshot (redb
//! read transactions take microseconds); callers on an async runtime call them directly, as
//! `RedbStorage`'s own `LogStorage` reads do.

use std::future::Future;

use ledger::merkle::{LeafIndex, leaf_hash};
use ledger::storage::redb::RedbStorage;
use ledger::storage::{
    BackendError, CommitError, LogStorage, ReadError, SidecarRecord, validate_table_name,
};
use ledger::tile::{TILE_WIDTH, parse_bundle};
use redb::{ReadableDatabase, TableDefinition};

use crate::records::EntryLocator;

/// Most entries [`locate_entry`] reads before it gives up (entries appended between a
/// submission and its commit: one or two rounds).
pub const LOCATE_SCAN_ENTRIES_MAX: u64 = 1 << 20;

/// Key/value pairs of a range scan, in key order.
pub type Rows = Vec<(Vec<u8>, Vec<u8>)>;

/// Sidecar access for ingest (see the module documentation).
pub trait IngestStorage: LogStorage + Clone {
    /// One record, or `None` (also when the table does not exist yet).
    ///
    /// # Errors
    /// [`ReadError`] if the backend fails.
    fn read(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>, ReadError>;

    /// Several records of one table from one snapshot, in the order of `keys`.
    ///
    /// # Errors
    /// [`ReadError`] if the backend fails.
    fn read_many(&self, table: &str, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>, ReadError>;

    /// Records with `from <= key < to` in key order, at most `limit` of them.
    ///
    /// # Errors
    /// [`ReadError`] if the backend fails.
    fn scan(&self, table: &str, from: &[u8], to: &[u8], limit: usize) -> Result<Rows, ReadError>;

    /// Writes `records` atomically and durably (fsync'd when it returns `Ok`), outside any
    /// log round. Used only for records that belong to no entry.
    fn put_records(
        &self,
        records: Vec<SidecarRecord>,
    ) -> impl Future<Output = Result<(), CommitError>> + Send;
}

fn read_backend<E: Into<redb::Error>>(error: E) -> ReadError {
    ReadError::Backend(Box::new(error.into()))
}

fn commit_backend<E: Into<redb::Error>>(error: E) -> CommitError {
    CommitError::Backend(Box::new(error.into()))
}

impl IngestStorage for RedbStorage {
    fn read(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>, ReadError> {
        Ok(self.read_many(table, &[key.to_vec()])?.pop().flatten())
    }

    fn read_many(&self, table: &str, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>, ReadError> {
        let txn = self.database().begin_read().map_err(read_backend)?;
        let handle = match txn.open_table(TableDefinition::<&[u8], &[u8]>::new(table)) {
            Ok(handle) => handle,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(vec![None; keys.len()]),
            Err(e) => return Err(read_backend(e)),
        };
        keys.iter()
            .map(|key| {
                Ok(handle
                    .get(key.as_slice())
                    .map_err(read_backend)?
                    .map(|v| v.value().to_vec()))
            })
            .collect()
    }

    fn scan(&self, table: &str, from: &[u8], to: &[u8], limit: usize) -> Result<Rows, ReadError> {
        let txn = self.database().begin_read().map_err(read_backend)?;
        let handle = match txn.open_table(TableDefinition::<&[u8], &[u8]>::new(table)) {
            Ok(handle) => handle,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(read_backend(e)),
        };
        if from >= to {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for item in handle.range::<&[u8]>(from..to).map_err(read_backend)? {
            if out.len() == limit {
                break;
            }
            let (key, value) = item.map_err(read_backend)?;
            out.push((key.value().to_vec(), value.value().to_vec()));
        }
        Ok(out)
    }

    async fn put_records(&self, records: Vec<SidecarRecord>) -> Result<(), CommitError> {
        for record in &records {
            validate_table_name(&record.table).map_err(CommitError::Invalid)?;
        }
        let db = self.database().clone();
        let work = move || -> Result<(), CommitError> {
            let mut txn = db.begin_write().map_err(commit_backend)?;
            txn.set_quick_repair(true);
            for record in &records {
                let mut table = txn
                    .open_table(TableDefinition::<&[u8], &[u8]>::new(&record.table))
                    .map_err(commit_backend)?;
                table
                    .insert(record.key.as_slice(), record.value.as_slice())
                    .map_err(commit_backend)?;
            }
            // Durability::Immediate (the default): durable when commit returns.
            txn.commit().map_err(commit_backend)
        };
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| CommitError::Backend(Box::new(e) as BackendError))?
    }
}

/// The index of the entry `locator` names, read from the durable log: the first entry at or
/// after `locator.log_size_before` whose leaf hash matches. `None` if it is not (yet) in the
/// log or lies beyond [`LOCATE_SCAN_ENTRIES_MAX`] entries of the bound.
///
/// # Errors
/// [`ReadError`] if storage fails or a bundle is malformed.
pub async fn locate_entry<S: LogStorage>(
    storage: &S,
    locator: &EntryLocator,
    durable_size: u64,
) -> Result<Option<LeafIndex>, ReadError> {
    let width = u64::from(TILE_WIDTH);
    let end = durable_size.min(
        locator
            .log_size_before
            .saturating_add(LOCATE_SCAN_ENTRIES_MAX),
    );
    let mut index = locator.log_size_before;
    while index < end {
        let bundle_index = index / width;
        let Some(bundle) = storage.bundle(bundle_index).await? else {
            return Err(ReadError::Corrupt(format!(
                "entry bundle {bundle_index} of the durable log is missing"
            )));
        };
        let entries =
            parse_bundle(&bundle).map_err(|e| ReadError::Corrupt(format!("entry bundle: {e}")))?;
        let first = bundle_index * width;
        for (offset, entry) in (0u64..).zip(entries) {
            let at = first + offset;
            if at < index || at >= end {
                continue;
            }
            if leaf_hash(entry) == locator.leaf_hash {
                return Ok(Some(LeafIndex(at)));
            }
        }
        index = first + width;
    }
    Ok(None)
}
