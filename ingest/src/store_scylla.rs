//! [`IngestStorage`] for the ScyllaDB backend (feature `scylla`): ingest's point reads,
//! batched reads, range scans and record writes on the backend's `sidecars` table.
//!
//! The CQL lives beside the log's in `ledger::storage::scylla`, which also decides how each
//! sidecar table is partitioned (`ledger::storage::scylla::partition`: readings, quarantine and
//! device keys by device, the EPCIS index by value, other tables whole) so that every scan of
//! a caller stays inside one partition; a scan that would not is refused with an error, never
//! answered from one partition only.
//!
//! The trait's reads are synchronous; on the node's multi-thread runtime they block the
//! calling worker for the duration of the query (`block_in_place`), and fail with an error on
//! a current-thread runtime. `read_many` issues its point reads concurrently; unlike redb's it
//! reads no snapshot: each record is read as committed at the time of its own read (records of
//! a round appear together only once its apply step has finished, which `commit_round` waits
//! for).

use ledger::storage::scylla::ScyllaStorage;
use ledger::storage::{CommitError, ReadError, SidecarRecord};

use crate::store::{IngestStorage, Rows};

impl IngestStorage for ScyllaStorage {
    fn read(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>, ReadError> {
        Ok(self
            .read_records_blocking(table, &[key.to_vec()])?
            .pop()
            .flatten())
    }

    fn read_many(&self, table: &str, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>, ReadError> {
        self.read_records_blocking(table, keys)
    }

    fn scan(&self, table: &str, from: &[u8], to: &[u8], limit: usize) -> Result<Rows, ReadError> {
        self.scan_records_blocking(table, from, to, limit)
    }

    async fn put_records(&self, records: Vec<SidecarRecord>) -> Result<(), CommitError> {
        ScyllaStorage::put_records(self, records).await
    }
}
