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
/// the window is found by a search over sequence numbers, each step a one-row scan, and the
/// window is then read in order: the cost is the window's, not the device's history. The
/// search starts from the device's first stored reading and its latest commit (what ingest
/// last saw of it); between two known readings it guesses by interpolating device time, which
/// lands within a few readings of a device sampling at a steady period, and alternates with
/// halving so that an irregular history costs at most about twice the 64 steps of plain
/// bisection. A reading stamped out of order by a device whose clock jumped back is found if
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
    let Some((first_sequence, first_time)) = first_at_or_after(0)? else {
        return Ok((Vec::new(), false));
    };
    let start = if first_time >= from_ms {
        first_sequence
    } else {
        first_in_window(
            &first_at_or_after,
            (first_sequence, first_time),
            device_seen(storage, device)?.map(|seen| seen.last_sequence.0),
            from_ms,
        )?
    };
    let mut out = Vec::new();
    let mut next = start;
    loop {
        let page = (limit + 1 - out.len()).min(1_000);
        let rows = storage.scan(
            READINGS,
            &reading_key(device, SequenceNumber(next)),
            &end,
            page,
        )?;
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

/// The smallest sequence number whose first stored reading at or after it (`probe`: its
/// sequence and device time) is at or after `from_ms`, or has none; `first` is the device's
/// first reading, known to be before `from_ms`, and `hint` a sequence number it has stored
/// (its latest commit).
fn first_in_window(
    probe: &impl Fn(u64) -> Result<Option<(u64, u64)>, QueryError>,
    first: (u64, u64),
    hint: Option<u64>,
    from_ms: u64,
) -> Result<u64, QueryError> {
    // Invariant: the first reading at or after `lo` is before the window (at `lo_time`); the
    // first at or after `hi` is in or past it, or there is none (`hi_time` its time, if
    // known). The answer is in `lo + 1 ..= hi`.
    let (mut lo, mut lo_time) = first;
    let (mut hi, mut hi_time) = (u64::MAX, None);
    let mut step = 0_u32;
    let mut guess = hint.filter(|&h| h > lo);
    // `lo < hi` holds unless a reading is committed between two probes; the loop then stops.
    while lo.saturating_add(1) < hi {
        let mid = match (guess.take(), hi_time) {
            (Some(hinted), _) => hinted.min(hi - 1),
            // Bounded by a known reading: interpolate device time on even steps.
            (None, Some(hi_ms)) if step.is_multiple_of(2) && hi_ms > lo_time => {
                let span = u128::from(hi - lo);
                let offset = span * u128::from(from_ms.saturating_sub(lo_time))
                    / u128::from(hi_ms - lo_time);
                lo + u64::try_from(offset)
                    .unwrap_or(u64::MAX)
                    .clamp(1, hi - lo - 1)
            }
            // Unbounded: gallop up from `lo` (the window is usually near the device's end).
            (None, None) if hi == u64::MAX => lo.saturating_add(1_u64 << step.min(62)).min(hi - 1),
            _ => lo + (hi - lo) / 2,
        };
        step += 1;
        match probe(mid)? {
            Some((found, time)) if time < from_ms => (lo, lo_time) = (found, time),
            Some((_, time)) => (hi, hi_time) = (mid, Some(time)),
            None => (hi, hi_time) = (mid, None),
        }
    }
    Ok(hi.max(lo.saturating_add(1)))
}

/// Most sequence numbers [`readings_tail`] looks back over.
pub const TAIL_SEQUENCES_MAX: u64 = 10_000;

/// The committed readings of `device` with sequence numbers in
/// `last - window + 1 ..= last` (`window` capped at [`TAIL_SEQUENCES_MAX`]), in sequence order:
/// a device's recent history by its own numbering, so the numbers missing from it are the
/// gaps of its outbox. One range scan.
///
/// # Errors
/// [`QueryError`] if storage fails or a record is corrupt.
pub fn readings_tail<S: IngestStorage>(
    storage: &S,
    device: DeviceId,
    last: SequenceNumber,
    window: u64,
) -> Result<Vec<(StoredReading, protocol::Reading)>, QueryError> {
    let window = window.clamp(1, TAIL_SEQUENCES_MAX);
    let first = last.0.saturating_sub(window - 1);
    let from = reading_key(device, SequenceNumber(first));
    // Exclusive end: just past `last` (a key one byte longer sorts after it).
    let mut to = reading_key(device, last);
    to.push(0);
    let limit = usize::try_from(window).unwrap_or(usize::MAX);
    storage
        .scan(READINGS, &from, &to, limit)?
        .iter()
        .map(|(key, value)| {
            let stored = StoredReading::decode(key, value)?;
            let reading = decode_reading(&stored)?;
            Ok((stored, reading))
        })
        .collect()
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
        put(storage, records);
    }

    fn put(storage: &RedbStorage, records: Vec<SidecarRecord>) {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(storage.put_records(records))
            .expect("put");
    }

    /// Readings of device 1 at the given (sequence, device time) pairs.
    fn store_history(storage: &RedbStorage, history: &[(u64, u64)]) {
        let records = history
            .iter()
            .map(|&(sequence, time_ms)| {
                let mut body = reading(device(1), 0, 400);
                body.sequence = SequenceNumber(sequence);
                body.device_time_ms = time_ms;
                let stored = StoredReading {
                    device: device(1),
                    sequence: SequenceNumber(sequence),
                    signed: signed(&body, &key(1)),
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
        put(storage, records);
    }

    #[test]
    fn every_window_is_what_a_full_scan_finds_whatever_the_history_and_the_hint() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = RedbStorage::open(&dir.path().join("store.redb"), [0; 32]).expect("open");
        // Runs of readings under far-apart sequence bases (a device reset, or sequence numbers
        // seeded from its clock), with uneven periods: interpolation guesses badly here.
        let mut history = Vec::new();
        let mut time = T0;
        for (run, base) in (0_u64..).zip([0, 100, 1_000_000, 1 << 40, u64::MAX / 2]) {
            for i in 0..60 {
                time += 1 + (i * 7_919 + run * 13) % 90_000 + if i == 30 { 86_400_000 } else { 0 };
                history.push((base + i, time));
            }
        }
        store_history(&storage, &history);
        let instants: Vec<u64> = history
            .iter()
            .step_by(13)
            .flat_map(|&(_, t)| [t - 1, t, t + 1])
            .chain([0, T0, u64::MAX])
            .collect();
        let seen = |last: u64| DeviceSeen {
            last_ingest_time_ms: T0,
            last_device_time_ms: T0,
            last_sequence: SequenceNumber(last),
            last_batch_root: Hash([1; 32]),
        };
        for hint in [
            None,
            Some(0),
            Some(1_000_030),
            Some(1 << 40),
            Some(u64::MAX / 2 + 59),
        ] {
            if let Some(last) = hint {
                put(
                    &storage,
                    vec![SidecarRecord {
                        table: DEVICES.to_owned(),
                        key: device(1).0.to_vec(),
                        value: seen(last).encode(),
                    }],
                );
            }
            for &from in &instants {
                for &to in instants.iter().filter(|&&to| to > from) {
                    let (found, more) =
                        readings_between(&storage, device(1), from, to, 10_000).expect("query");
                    let expected: Vec<u64> = history
                        .iter()
                        .filter(|(_, t)| (from..to).contains(t))
                        .map(|(s, _)| *s)
                        .collect();
                    let sequences: Vec<u64> = found.iter().map(|(s, _)| s.sequence.0).collect();
                    assert_eq!(sequences, expected, "{from}..{to}, hint {hint:?}");
                    assert!(!more);
                }
            }
        }
    }

    #[test]
    fn a_device_sampling_at_a_steady_period_is_searched_in_a_few_steps() {
        // A million readings a minute apart; the window starts just after reading 123,456.
        let probes = std::cell::Cell::new(0);
        let probe = |sequence: u64| -> Result<Option<(u64, u64)>, QueryError> {
            probes.set(probes.get() + 1);
            Ok((sequence < 1_000_000).then(|| (sequence, T0 + sequence * 60_000)))
        };
        let from = T0 + 123_456 * 60_000 + 1;
        let check = |hint: Option<u64>, most: u32| {
            probes.set(0);
            let start = first_in_window(&probe, (0, T0), hint, from).expect("search");
            assert_eq!(start, 123_457, "hint {hint:?}");
            assert!(
                probes.get() <= most,
                "hint {hint:?}: {} probes",
                probes.get()
            );
        };
        check(Some(999_999), 6);
        // Without a hint, galloping up then interpolating: still far below 64 steps.
        check(None, 30);
    }

    #[test]
    fn a_window_is_found_by_device_time_across_gaps_and_stops_at_its_end() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = RedbStorage::open(&dir.path().join("store.redb"), [0; 32]).expect("open");
        // Test readings are stamped T0 + sequence seconds; leave gaps in the sequence.
        store_readings(&storage, (0..5_000).filter(|s| s % 7 != 3));
        let second = 1_000;
        let (found, more) = readings_between(
            &storage,
            device(1),
            T0 + 1_000 * second,
            T0 + 1_100 * second,
            10_000,
        )
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
