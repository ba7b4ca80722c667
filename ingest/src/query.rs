//! Read side for the API: a committed reading with what proves it, a device's quarantine, what
//! ingest last saw of a device. Functions of storage (and the sequencer for log positions),
//! usable with or without a running ingest.

use ledger::merkle::{Hash, LeafIndex, inclusion_path_in};
use ledger::sequencer::SequencerHandle;
use ledger::storage::ReadError;
use protocol::{DeviceId, SequenceNumber};

use crate::quarantine::QuarantineRecord;
use crate::records::{
    BATCHES, CorruptRecord, DEVICES, DeviceSeen, QUARANTINE, QUARANTINE_UNATTRIBUTED, READINGS,
    StoredBatch, StoredReading, reading_key,
};
use crate::store::{IngestStorage, locate_entry};

/// Most quarantine records in one page.
pub const QUARANTINE_PAGE_MAX: usize = 1_000;

/// Why a query failed.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// Storage could not be read.
    #[error("storage read failed")]
    Read(#[from] ReadError),
    /// A stored record is corrupt.
    #[error(transparent)]
    Corrupt(#[from] CorruptRecord),
    /// A page size outside 1..=1,000.
    #[error("a page holds 1 to {QUARANTINE_PAGE_MAX} records")]
    PageSize,
}

/// A committed reading.
///
/// # Errors
/// [`QueryError`] if storage fails or the record is corrupt.
pub fn reading<S: IngestStorage>(
    storage: &S,
    device: DeviceId,
    sequence: SequenceNumber,
) -> Result<Option<StoredReading>, QueryError> {
    let key = reading_key(device, sequence);
    match storage.read(READINGS, &key)? {
        Some(value) => Ok(Some(StoredReading::decode(&key, &value)?)),
        None => Ok(None),
    }
}

/// A committed batch by its root.
///
/// # Errors
/// [`QueryError`] if storage fails or the record is corrupt.
pub fn batch<S: IngestStorage>(
    storage: &S,
    root: &Hash,
) -> Result<Option<StoredBatch>, QueryError> {
    match storage.read(BATCHES, &root.0)? {
        Some(value) => Ok(Some(StoredBatch::decode(&root.0, &value)?)),
        None => Ok(None),
    }
}

/// Everything that ties a reading to the log: reading → batch root (RFC 9162 inclusion path
/// in the batch tree) → the `ReadingBatch` entry → its log index. The log inclusion proof of
/// `leaf_index` comes from the sequencer (`SequencerHandle::inclusion_proof`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadingAnchor {
    /// The reading.
    pub reading: StoredReading,
    /// Its batch.
    pub batch: StoredBatch,
    /// Inclusion path of the reading's leaf (`leaf_hash(signed)`) at `reading.position` in
    /// the batch tree.
    pub batch_path: Vec<Hash>,
    /// The exact bytes of the `ReadingBatch` entry.
    pub entry: Vec<u8>,
    /// The entry's index in the log.
    pub leaf_index: LeafIndex,
}

/// The anchor of a committed reading; `None` if the reading is not committed.
///
/// # Errors
/// [`QueryError`] if storage fails, a record is corrupt, or the batch's entry is not where
/// its record says.
pub async fn reading_anchor<S: IngestStorage>(
    sequencer: &SequencerHandle<S>,
    device: DeviceId,
    sequence: SequenceNumber,
) -> Result<Option<ReadingAnchor>, QueryError> {
    let storage = sequencer.storage();
    let Some(reading) = reading(storage, device, sequence)? else {
        return Ok(None);
    };
    let corrupt = |what: &str| QueryError::Read(ReadError::Corrupt(what.to_owned()));
    let batch = batch(storage, &reading.batch_root)?
        .ok_or_else(|| corrupt("a committed reading's batch record is missing"))?;
    let position = usize::try_from(reading.position).map_err(|_| corrupt("reading position"))?;
    let batch_path = inclusion_path_in(&batch.reading_leaves, position)
        .ok_or_else(|| corrupt("a reading's position is outside its batch"))?;
    let leaf_index = locate_entry(storage, &batch.entry, sequencer.durable_state().size)
        .await?
        .ok_or_else(|| corrupt("a committed batch's entry is not in the log"))?;
    let entry = sequencer
        .entry(leaf_index)
        .await?
        .ok_or_else(|| corrupt("a located entry cannot be read"))?;
    Ok(Some(ReadingAnchor {
        reading,
        batch,
        batch_path,
        entry,
        leaf_index,
    }))
}

/// What ingest last saw of a device.
///
/// # Errors
/// [`QueryError`] if storage fails or the record is corrupt.
pub fn device_seen<S: IngestStorage>(
    storage: &S,
    device: DeviceId,
) -> Result<Option<DeviceSeen>, QueryError> {
    match storage.read(DEVICES, &device.0)? {
        Some(value) => Ok(Some(DeviceSeen::decode(&value)?)),
        None => Ok(None),
    }
}

/// A page request: records after `after_id` (exclusive; `None` from the start), at most
/// `limit` (1..=1,000).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuarantinePage {
    /// Continue after this record id.
    pub after_id: Option<u64>,
    /// Records in the page.
    pub limit: usize,
}

/// A page of quarantine records, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuarantineList {
    /// The records.
    pub records: Vec<QuarantineRecord>,
    /// Pass as `after_id` for the next page; `None` when this is the last.
    pub next_after: Option<u64>,
}

/// A device's quarantine (`Some(device)`), or the records whose topic named no device
/// (`None`), oldest first.
///
/// # Errors
/// [`QueryError`] if storage fails, a record is corrupt, or the page size is out of range.
pub fn quarantine<S: IngestStorage>(
    storage: &S,
    device: Option<DeviceId>,
    page: QuarantinePage,
) -> Result<QuarantineList, QueryError> {
    if !(1..=QUARANTINE_PAGE_MAX).contains(&page.limit) {
        return Err(QueryError::PageSize);
    }
    let start_id = match page.after_id {
        Some(u64::MAX) => {
            return Ok(QuarantineList {
                records: Vec::new(),
                next_after: None,
            });
        }
        Some(id) => id + 1,
        None => 0,
    };
    let prefix: Vec<u8> = device.map(|d| d.0.to_vec()).unwrap_or_default();
    let table = if device.is_some() {
        QUARANTINE
    } else {
        QUARANTINE_UNATTRIBUTED
    };
    let from = [prefix.as_slice(), &start_id.to_be_bytes()].concat();
    let to = [prefix.as_slice(), &[0xff; 9]].concat();
    let rows = storage.scan(table, &from, &to, page.limit + 1)?;
    let more = rows.len() > page.limit;
    let records = rows
        .iter()
        .take(page.limit)
        .map(|(key, value)| QuarantineRecord::decode(table, key, value))
        .collect::<Result<Vec<_>, _>>()?;
    let next_after = if more {
        records.last().map(|r| r.id)
    } else {
        None
    };
    Ok(QuarantineList {
        records,
        next_after,
    })
}

/// Most readings [`readings_between`] returns in one call.
pub const WINDOW_READINGS_MAX: usize = 100_000;

/// The committed readings of `device` whose device time is in `from_ms..to_ms`, in sequence
/// order, at most `limit` (capped at [`WINDOW_READINGS_MAX`]); the flag says whether more
/// remained in the window.
///
/// Readings are keyed by (device, sequence), and a device's clock moves forward with its
/// sequence numbers (a device stamps each reading as it takes it), so the first reading of
/// the window is found by a binary search over sequence numbers (about 64 one-row scans)
/// and the window is then read in order: the cost is the window's, not the device's
/// history. A reading stamped out of order by a device whose clock jumped back is found if
/// it lies inside the scanned stretch and skipped otherwise.
///
/// # Errors
/// [`QueryError`] if storage fails or a record is corrupt.
pub fn readings_between<S: IngestStorage>(
    storage: &S,
    device: DeviceId,
    from_ms: u64,
    to_ms: u64,
    limit: usize,
) -> Result<(Vec<(StoredReading, protocol::Reading)>, bool), QueryError> {
    let limit = limit.min(WINDOW_READINGS_MAX);
    let end = reading_key(device, SequenceNumber(u64::MAX));
    let first_at_or_after = |sequence: u64| -> Result<Option<(u64, u64)>, QueryError> {
        let rows = storage.scan(
            READINGS,
            &reading_key(device, SequenceNumber(sequence)),
            &end,
            1,
        )?;
        rows.first()
            .map(|(key, value)| {
                let stored = StoredReading::decode(key, value)?;
                let reading = decode_reading(&stored)?;
                Ok((stored.sequence.0, reading.device_time_ms))
            })
            .transpose()
    };
    // The smallest sequence whose first stored reading at or after it is in or past the
    // window.
    let (mut low, mut high) = (0_u64, u64::MAX);
    while low < high {
        let mid = low + (high - low) / 2;
        match first_at_or_after(mid)? {
            Some((_, time)) if time < from_ms => low = mid + 1,
            _ => high = mid,
        }
    }
    let mut out = Vec::new();
    let mut next = low;
    loop {
        let page = (limit + 1 - out.len()).min(1_000);
        let rows = storage.scan(READINGS, &reading_key(device, SequenceNumber(next)), &end, page)?;
        let exhausted = rows.len() < page;
        for (key, value) in &rows {
            let stored = StoredReading::decode(key, value)?;
            let reading = decode_reading(&stored)?;
            if reading.device_time_ms >= to_ms {
                return Ok((out, false));
            }
            next = stored.sequence.0.saturating_add(1);
            if reading.device_time_ms >= from_ms {
                if out.len() == limit {
                    return Ok((out, true));
                }
                out.push((stored, reading));
            }
        }
        if exhausted || next == u64::MAX {
            return Ok((out, false));
        }
    }
}

fn decode_reading(stored: &StoredReading) -> Result<protocol::Reading, CorruptRecord> {
    protocol::SignedReading::decode(&stored.signed)
        .map(|signed| *signed.reading())
        .map_err(|_| CorruptRecord("a committed reading does not decode"))
}

#[cfg(test)]
mod tests {
    use ledger::storage::SidecarRecord;
    use ledger::storage::redb::RedbStorage;

    use super::*;
    use crate::test_support::{T0, device, key, reading, signed};

    fn store_readings(storage: &RedbStorage, sequences: impl Iterator<Item = u64>) {
        let records = sequences
            .map(|sequence| {
                let stored = StoredReading {
                    device: device(1),
                    sequence: SequenceNumber(sequence),
                    signed: signed(&reading(device(1), sequence, 400), &key(1)),
                    ingest_time_ms: T0,
                    clock_skewed: false,
                    batch_root: Hash([0; 32]),
                    position: 0,
                };
                SidecarRecord {
                    table: READINGS.to_owned(),
                    key: stored.key(),
                    value: stored.encode(),
                }
            })
            .collect();
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(storage.put_records(records))
            .expect("put");
    }

    #[test]
    fn a_window_is_found_by_device_time_across_gaps_and_stops_at_its_end() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = RedbStorage::open(&dir.path().join("store.redb"), [0; 32]).expect("open");
        // Test readings are stamped T0 + sequence seconds; leave gaps in the sequence.
        store_readings(&storage, (0..5_000).filter(|s| s % 7 != 3));
        let second = 1_000;
        let (found, more) =
            readings_between(&storage, device(1), T0 + 1_000 * second, T0 + 1_100 * second, 10_000)
                .expect("query");
        assert!(!more);
        let sequences: Vec<u64> = found.iter().map(|(s, _)| s.sequence.0).collect();
        let expected: Vec<u64> = (1_000..1_100).filter(|s| s % 7 != 3).collect();
        assert_eq!(sequences, expected);
        assert!(found.iter().all(|(_, r)| r.temperature_centi_c == 400));

        let (page, more) =
            readings_between(&storage, device(1), T0, T0 + 10_000 * second, 10).expect("query");
        assert!(more);
        assert_eq!(page.len(), 10);

        let (none, more) =
            readings_between(&storage, device(2), T0, T0 + 10_000 * second, 10).expect("query");
        assert!(none.is_empty() && !more);
        let (after, _) = readings_between(&storage, device(1), T0 + 6_000 * second, u64::MAX, 10)
            .expect("query");
        assert!(after.is_empty());
    }
}
