//! The batcher core: deduplication, batching, and deciding what is acknowledged when. Pure
//! state machine (no I/O, no clock: times are arguments); the service's batcher task drives it
//! with storage reads, sequencer submissions and commit answers.
//!
//! There is exactly one batcher per sequencer, fed by every worker, so deduplication is
//! decided where readings commit: a reading is new, a duplicate, or a conflict against
//! (a) the readings not yet durable (in the open batch or submitted and waiting for their
//! round) and (b) the committed readings table, which is the source of truth. A redelivery
//! that lands on another worker meets the same batcher and the same table.
//!
//! Units: the batcher fills one open *unit* at a time. A unit closes on the count bound, on
//! the time bound (the task's timer), or when the next message's records would not fit the
//! sequencer's limit on sidecar records per entry. A closed unit with readings is a
//! `ReadingBatch` entry plus its sidecar records (readings, the batch, last-seen devices,
//! quarantine records), committed by the sequencer in one durable round. A closed unit with
//! only quarantine records is written by its own durable storage transaction. Either way a
//! quarantine record is durable before any ack that depends on it.
//!
//! A message is acknowledged (to the broker, and its readings to their device) once every unit
//! it depends on is durable: the unit holding its new readings and quarantine records, and
//! the units holding the originals of its duplicates and conflicts. Its device ack names
//! committed readings, exact duplicates, and readings refused for good; never a reading
//! refused for a reason that may pass, nor one whose topic is not its device's.

use std::collections::{BTreeMap, HashMap, HashSet};

use ledger::entry::{Entry, EntryError, ReadingBatch};
use ledger::merkle::{Hash, leaf_hash, root_from_leaf_hashes};
use ledger::sequencer::SIDECARS_PER_ENTRY_CEILING;
use ledger::storage::SidecarRecord;
use protocol::{Ack, AckBuilder, DeviceId, SequenceNumber};
use sha2::{Digest, Sha256};

use crate::metrics::{Metrics, add};
use crate::quarantine::{QuarantineRecord, RejectReason};
use crate::records::{
    BATCHES, DEVICES, DeviceSeen, EntryLocator, META, META_QUARANTINE_NEXT, QUARANTINE_SEEN,
    READINGS, StoredBatch, StoredReading, quarantine_key,
};
use crate::verify::{AcceptedReading, Rejection, Verdict};

/// Identifies a unit (open, or closed and not yet durable).
pub type UnitId = u64;
type MessageId = u64;
/// A reading's identity: device and sequence number.
pub type ReadingKey = (DeviceId, SequenceNumber);

/// The bounds of a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    /// Close once a unit holds this many readings.
    pub readings_max: usize,
    /// Most sidecar records in one unit.
    pub records_max: usize,
}

impl BatchLimits {
    /// Bounds with the sequencer's record ceiling.
    #[must_use]
    pub fn new(readings_max: usize) -> Self {
        Self {
            readings_max,
            records_max: SIDECARS_PER_ENTRY_CEILING,
        }
    }
}

/// A message after verification, with the token that acknowledges it to the broker.
#[derive(Debug)]
pub struct VerifiedMessage<T> {
    /// Acknowledges the MQTT message (opaque to the core).
    pub token: T,
    /// One verdict per reading.
    pub verdicts: Vec<Verdict>,
}

/// What storage says about a message's readings and rejections, read just before
/// [`BatchCore::add`] (see [`BatchCore::lookups`]).
#[derive(Debug, Default)]
pub struct Committed {
    /// Leaf hashes of committed readings, by key.
    pub readings: HashMap<ReadingKey, Hash>,
    /// Digests of rejections already durable in quarantine.
    pub quarantined: HashSet<[u8; 32]>,
}

/// A closed unit, ready to be made durable.
#[derive(Debug, Clone)]
pub struct ClosedUnit {
    /// Its id.
    pub id: UnitId,
    /// The `ReadingBatch` entry, if the unit holds readings (else only `records` are written).
    pub entry: Option<Vec<u8>>,
    /// The batch root, if it holds readings.
    pub batch_root: Option<Hash>,
    /// Sidecar records to commit with the entry (or alone).
    pub records: Vec<SidecarRecord>,
}

/// Acks that became due.
#[derive(Debug)]
pub struct Completion<T> {
    /// Messages to acknowledge to the broker.
    pub tokens: Vec<T>,
    /// Device acks to publish.
    pub device_acks: Vec<Ack>,
}

impl<T> Default for Completion<T> {
    fn default() -> Self {
        Self {
            tokens: Vec::new(),
            device_acks: Vec::new(),
        }
    }
}

#[derive(Debug)]
struct MessageState<T> {
    token: T,
    waiting: usize,
    acks: Vec<ReadingKey>,
}

#[derive(Debug, Default)]
struct Unit {
    readings: Vec<AcceptedReading>,
    quarantine: Vec<(QuarantineRecord, [u8; 32])>,
    devices: BTreeMap<DeviceId, DeviceSeen>,
    messages: Vec<MessageId>,
}

impl Unit {
    fn records(&self) -> usize {
        let bookkeeping = if self.readings.is_empty() { 0 } else { 1 };
        let meta = usize::from(!self.quarantine.is_empty());
        self.readings.len() + self.devices.len() + 2 * self.quarantine.len() + bookkeeping + meta
    }

    fn is_empty(&self) -> bool {
        self.readings.is_empty() && self.quarantine.is_empty()
    }
}

/// The batcher's state (see the module documentation).
#[derive(Debug)]
pub struct BatchCore<T> {
    limits: BatchLimits,
    open_id: UnitId,
    open: Unit,
    closed: HashMap<UnitId, Unit>,
    pending: HashMap<ReadingKey, (UnitId, Hash)>,
    pending_quarantine: HashMap<[u8; 32], UnitId>,
    messages: HashMap<MessageId, MessageState<T>>,
    next_unit: UnitId,
    next_message: MessageId,
    next_quarantine_id: u64,
}

/// The digest under which a rejection is stored once: reason, topic and bytes.
fn rejection_digest(rejection: &Rejection) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update([rejection.reason.code()]);
    hasher.update(
        u64::try_from(rejection.topic.len())
            .unwrap_or(u64::MAX)
            .to_be_bytes(),
    );
    hasher.update(rejection.topic.as_bytes());
    hasher.update(rejection.original_len.to_be_bytes());
    hasher.update(&rejection.bytes);
    hasher.finalize().into()
}

impl<T> BatchCore<T> {
    /// An empty batcher whose next quarantine record gets `next_quarantine_id`.
    #[must_use]
    pub fn new(limits: BatchLimits, next_quarantine_id: u64) -> Self {
        Self {
            limits,
            open_id: 0,
            open: Unit::default(),
            closed: HashMap::new(),
            pending: HashMap::new(),
            pending_quarantine: HashMap::new(),
            messages: HashMap::new(),
            next_unit: 1,
            next_message: 0,
            next_quarantine_id,
        }
    }

    /// Whether the open unit holds nothing.
    #[must_use]
    pub fn open_is_empty(&self) -> bool {
        self.open.is_empty()
    }

    /// Readings accepted and not yet durable.
    #[must_use]
    pub fn readings_pending(&self) -> usize {
        self.pending.len()
    }

    /// Closed units not yet durable.
    #[must_use]
    pub fn units_in_flight(&self) -> usize {
        self.closed.len()
    }

    /// What must be read from storage before `add(message)`: keys of readings not pending
    /// here, and digests of rejections. The digests of conflicts come from
    /// [`conflict_lookups`](Self::conflict_lookups) once the committed readings are read.
    pub fn lookups(&self, message: &VerifiedMessage<T>) -> (Vec<ReadingKey>, Vec<[u8; 32]>) {
        (
            self.lookups_of_readings(message),
            self.rejection_lookups(message),
        )
    }

    /// The first half of [`lookups`](Self::lookups): keys of the message's accepted
    /// readings that are not pending here. Keys of several messages may be read in one
    /// snapshot before they are added in order (a key pending by then is decided here).
    pub fn lookups_of_readings(&self, message: &VerifiedMessage<T>) -> Vec<ReadingKey> {
        message
            .verdicts
            .iter()
            .filter_map(|verdict| match verdict {
                Verdict::Accepted(reading) => Some((reading.device, reading.sequence)),
                _ => None,
            })
            .filter(|key| !self.pending.contains_key(key))
            .collect()
    }

    /// The second half of [`lookups`](Self::lookups): digests of the message's rejections.
    pub fn rejection_lookups(&self, message: &VerifiedMessage<T>) -> Vec<[u8; 32]> {
        message
            .verdicts
            .iter()
            .filter_map(|verdict| match verdict {
                Verdict::Rejected(rejection) => Some(rejection_digest(rejection)),
                _ => None,
            })
            .collect()
    }

    /// Digests to look up for the readings of `message` that will be conflicts: their
    /// (device, sequence) is held by another reading pending here, committed (`committed`:
    /// leaf hashes read for [`lookups`](Self::lookups)'s keys), or earlier in the message.
    /// A conflict is stored as a rejection, so its digest may be quarantined already. Only
    /// conflicts are hashed: hashing every reading for the rare conflict, and reading the
    /// quarantine table for each message, cost more than the rest of the lookup.
    pub fn conflict_lookups(
        &self,
        message: &VerifiedMessage<T>,
        committed: &HashMap<ReadingKey, Hash>,
    ) -> Vec<[u8; 32]> {
        let mut in_message: HashMap<ReadingKey, Hash> = HashMap::new();
        let mut digests = Vec::new();
        for verdict in &message.verdicts {
            let Verdict::Accepted(reading) = verdict else {
                continue;
            };
            let key = (reading.device, reading.sequence);
            let known = in_message
                .get(&key)
                .or_else(|| self.pending.get(&key).map(|(_, leaf)| leaf))
                .or_else(|| committed.get(&key))
                .copied();
            match known {
                Some(leaf) if leaf != reading.leaf => {
                    digests.push(rejection_digest(&conflict_of(reading)));
                }
                Some(_) => {}
                None => {
                    in_message.insert(key, reading.leaf);
                }
            }
        }
        digests
    }

    /// Takes a verified message. `committed` answers [`lookups`](Self::lookups) for it, read
    /// after every earlier commit was reported; `log_size_before` is the durable log size now
    /// (for a unit this call closes). Returns the units it closed (to be made
    /// durable, in order) and what became due at once (a message whose readings were all
    /// durable already).
    ///
    /// # Errors
    /// [`EntryError`] if a closing batch cannot be encoded (a bug: the bounds prevent it).
    pub fn add(
        &mut self,
        message: VerifiedMessage<T>,
        committed: &Committed,
        now_ms: u64,
        log_size_before: u64,
        metrics: &Metrics,
    ) -> Result<(Vec<ClosedUnit>, Completion<T>), EntryError> {
        let mut closed = Vec::new();
        if self.open.records() + records_needed(&message) > self.limits.records_max {
            closed.extend(self.close(now_ms, log_size_before)?);
        }
        let id = self.next_message;
        self.next_message += 1;
        let mut depends: Vec<UnitId> = Vec::new();
        let mut acks: Vec<ReadingKey> = Vec::new();
        let depend = |unit: UnitId, depends: &mut Vec<UnitId>| {
            if !depends.contains(&unit) {
                depends.push(unit);
            }
        };
        for verdict in message.verdicts {
            match verdict {
                Verdict::Deferred => {}
                Verdict::Rejected(rejection) => {
                    if let Some(unit) = self.reject(rejection, committed, metrics, &mut acks) {
                        depend(unit, &mut depends);
                    }
                }
                Verdict::Accepted(reading) => {
                    let key = (reading.device, reading.sequence);
                    let known = match self.pending.get(&key) {
                        Some(&(unit, leaf)) => Some((Some(unit), leaf)),
                        None => committed.readings.get(&key).map(|leaf| (None, *leaf)),
                    };
                    match known {
                        Some((original_unit, leaf)) => {
                            if let Some(unit) = original_unit {
                                depend(unit, &mut depends);
                            }
                            if leaf == reading.leaf {
                                add(&metrics.readings_duplicate, 1);
                                acks.push(key);
                            } else if let Some(unit) =
                                self.reject(conflict_of(&reading), committed, metrics, &mut acks)
                            {
                                depend(unit, &mut depends);
                            }
                        }
                        None => {
                            self.pending.insert(key, (self.open_id, reading.leaf));
                            let seen =
                                self.open
                                    .devices
                                    .entry(reading.device)
                                    .or_insert(DeviceSeen {
                                        last_ingest_time_ms: 0,
                                        last_device_time_ms: 0,
                                        last_sequence: SequenceNumber(0),
                                        last_batch_root: Hash::default(),
                                    });
                            seen.last_ingest_time_ms =
                                seen.last_ingest_time_ms.max(reading.ingest_time_ms);
                            if reading.sequence >= seen.last_sequence {
                                seen.last_sequence = reading.sequence;
                                seen.last_device_time_ms = reading.device_time_ms;
                            }
                            self.open.readings.push(reading);
                            acks.push(key);
                            depend(self.open_id, &mut depends);
                        }
                    }
                }
            }
        }
        for unit in &depends {
            let unit = if *unit == self.open_id {
                &mut self.open
            } else {
                match self.closed.get_mut(unit) {
                    Some(unit) => unit,
                    // Every pending key and digest names a live unit.
                    None => unreachable!("a pending record names unit {unit}, which is gone"),
                }
            };
            unit.messages.push(id);
        }
        let state = MessageState {
            token: message.token,
            waiting: depends.len(),
            acks,
        };
        let mut completion = Completion::default();
        if state.waiting == 0 {
            let mut due = BTreeMap::new();
            complete(state, &mut completion, &mut due);
            completion.device_acks = device_acks(due);
        } else {
            self.messages.insert(id, state);
        }
        if self.open.readings.len() >= self.limits.readings_max {
            closed.extend(self.close(now_ms, log_size_before)?);
        }
        Ok((closed, completion))
    }

    /// Files a rejection: stored once in the open unit (or found pending or durable), counted,
    /// and named in the device's ack if it may be. Returns the unit it depends on.
    fn reject(
        &mut self,
        rejection: Rejection,
        committed: &Committed,
        metrics: &Metrics,
        acks: &mut Vec<ReadingKey>,
    ) -> Option<UnitId> {
        metrics.rejected(rejection.reason);
        if rejection.ackable
            && rejection.reason.is_for_good()
            && let (Some(device), Some(sequence)) = (rejection.device, rejection.sequence)
        {
            acks.push((device, sequence));
        }
        let digest = rejection_digest(&rejection);
        if let Some(&unit) = self.pending_quarantine.get(&digest) {
            add(&metrics.quarantine_repeats, 1);
            return Some(unit);
        }
        if committed.quarantined.contains(&digest) {
            add(&metrics.quarantine_repeats, 1);
            return None;
        }
        let record = QuarantineRecord {
            id: self.next_quarantine_id,
            device: rejection.device,
            reason: rejection.reason,
            sequence: rejection.sequence,
            ingest_time_ms: rejection.ingest_time_ms,
            topic: rejection.topic,
            bytes: rejection.bytes,
            original_len: rejection.original_len,
        };
        self.next_quarantine_id += 1;
        self.pending_quarantine.insert(digest, self.open_id);
        self.open.quarantine.push((record, digest));
        Some(self.open_id)
    }

    /// Closes the open unit (if it holds anything). `log_size_before` is the durable log size
    /// now (a lower bound of the entry's index); `closed_ms` the batch's ingest time.
    ///
    /// # Errors
    /// [`EntryError`] if the batch cannot be encoded (a bug: the bounds prevent it).
    pub fn close(
        &mut self,
        closed_ms: u64,
        log_size_before: u64,
    ) -> Result<Option<ClosedUnit>, EntryError> {
        if self.open.is_empty() {
            return Ok(None);
        }
        let mut records = Vec::with_capacity(self.open.records());
        let mut entry = None;
        let mut batch_root = None;
        if !self.open.readings.is_empty() {
            let leaves: Vec<Hash> = self.open.readings.iter().map(|r| r.leaf).collect();
            let root = root_from_leaf_hashes(&leaves);
            let (first, last) = self
                .open
                .readings
                .iter()
                .fold((u64::MAX, 0), |(lo, hi), r| {
                    (lo.min(r.device_time_ms), hi.max(r.device_time_ms))
                });
            let bytes = Entry::ReadingBatch(ReadingBatch {
                batch_root: root,
                reading_count: u32::try_from(leaves.len()).map_err(|_| EntryError::ReadingCount)?,
                device_time_first_ms: first,
                device_time_last_ms: last,
                ingest_time_ms: closed_ms,
                devices: self.open.devices.keys().copied().collect(),
            })
            .encode()?;
            for (position, reading) in (0u32..).zip(&self.open.readings) {
                let stored = StoredReading {
                    device: reading.device,
                    sequence: reading.sequence,
                    signed: reading.signed.clone(),
                    ingest_time_ms: reading.ingest_time_ms,
                    clock_skewed: reading.clock_skewed,
                    batch_root: root,
                    position,
                };
                records.push(record(READINGS, stored.key(), stored.encode()));
            }
            for (device, seen) in &mut self.open.devices {
                seen.last_batch_root = root;
                records.push(record(DEVICES, device.0.to_vec(), seen.encode()));
            }
            let batch = StoredBatch {
                root,
                entry: EntryLocator {
                    leaf_hash: leaf_hash(&bytes),
                    log_size_before,
                },
                closed_ms,
                reading_leaves: leaves,
            };
            records.push(record(BATCHES, root.0.to_vec(), batch.encode()));
            entry = Some(bytes);
            batch_root = Some(root);
        }
        if !self.open.quarantine.is_empty() {
            for (quarantined, digest) in &self.open.quarantine {
                let (table, key) = quarantine_key(quarantined.device, quarantined.id);
                records.push(record(table, key.clone(), quarantined.encode()));
                records.push(record(QUARANTINE_SEEN, digest.to_vec(), key));
            }
            records.push(record(
                META,
                META_QUARANTINE_NEXT.to_vec(),
                self.next_quarantine_id.to_be_bytes().to_vec(),
            ));
        }
        debug_assert!(records.len() <= self.limits.records_max);
        let id = self.open_id;
        let unit = std::mem::take(&mut self.open);
        self.closed.insert(id, unit);
        self.open_id = self.next_unit;
        self.next_unit += 1;
        Ok(Some(ClosedUnit {
            id,
            entry,
            batch_root,
            records,
        }))
    }

    /// A closed unit is durable (`committed_ms`: when the commit returned). Returns the acks
    /// that became due.
    pub fn durable(&mut self, unit: UnitId, committed_ms: u64, metrics: &Metrics) -> Completion<T> {
        self.durable_all(&[unit], committed_ms, metrics)
    }

    /// Several closed units are durable (a sequencer round commits every batch submitted
    /// before it together). Returns the acks that became due, with one device ack per
    /// device for all of them: a device whose readings sat in several of the batches gets
    /// one message instead of one per batch, which keeps the ack traffic through the broker
    /// near one per device per round rather than one per reading.
    pub fn durable_all(
        &mut self,
        units: &[UnitId],
        committed_ms: u64,
        metrics: &Metrics,
    ) -> Completion<T> {
        let mut completion = Completion::default();
        let mut due: BTreeMap<DeviceId, Vec<SequenceNumber>> = BTreeMap::new();
        for unit in units {
            self.durable_into(*unit, committed_ms, metrics, &mut completion, &mut due);
        }
        completion.device_acks = device_acks(due);
        completion
    }

    fn durable_into(
        &mut self,
        unit: UnitId,
        committed_ms: u64,
        metrics: &Metrics,
        completion: &mut Completion<T>,
        due: &mut BTreeMap<DeviceId, Vec<SequenceNumber>>,
    ) {
        let Some(unit_state) = self.closed.remove(&unit) else {
            return;
        };
        let count = u64::try_from(unit_state.readings.len()).unwrap_or(u64::MAX);
        if count > 0 {
            add(&metrics.readings_committed, count);
            add(&metrics.batches_committed, 1);
        } else {
            add(&metrics.quarantine_writes, 1);
        }
        for reading in &unit_state.readings {
            let key = (reading.device, reading.sequence);
            if self.pending.get(&key).is_some_and(|(u, _)| *u == unit) {
                self.pending.remove(&key);
            }
            if reading.clock_skewed {
                add(&metrics.readings_clock_skewed, 1);
            }
            metrics
                .device_to_commit
                .observe(committed_ms.saturating_sub(reading.device_time_ms));
            metrics
                .ingest_to_commit
                .observe(committed_ms.saturating_sub(reading.ingest_time_ms));
        }
        for (_, digest) in &unit_state.quarantine {
            if self.pending_quarantine.get(digest) == Some(&unit) {
                self.pending_quarantine.remove(digest);
            }
        }
        for id in unit_state.messages {
            let Some(state) = self.messages.get_mut(&id) else {
                continue;
            };
            state.waiting -= 1;
            if state.waiting == 0
                && let Some(state) = self.messages.remove(&id)
            {
                complete(state, completion, due);
            }
        }
    }

    /// Gives up on a closed unit that can never become durable (its entry was refused for a
    /// reason a retry cannot cure). Its messages are acknowledged to the broker without any
    /// device ack, so the devices offer their readings again.
    pub fn abandon(&mut self, unit: UnitId) -> Vec<T> {
        let Some(unit_state) = self.closed.remove(&unit) else {
            return Vec::new();
        };
        for reading in &unit_state.readings {
            let key = (reading.device, reading.sequence);
            if self.pending.get(&key).is_some_and(|(u, _)| *u == unit) {
                self.pending.remove(&key);
            }
        }
        for (_, digest) in &unit_state.quarantine {
            if self.pending_quarantine.get(digest) == Some(&unit) {
                self.pending_quarantine.remove(digest);
            }
        }
        unit_state
            .messages
            .into_iter()
            .filter_map(|id| self.messages.remove(&id))
            .map(|state| state.token)
            .collect()
    }
}

fn record(table: &str, key: Vec<u8>, value: Vec<u8>) -> SidecarRecord {
    SidecarRecord {
        table: table.to_owned(),
        key,
        value,
    }
}

/// Records a message can add: one per reading, one device row per reading at most, two per
/// rejection (the record and its digest), plus the batch and meta rows.
fn records_needed<T>(message: &VerifiedMessage<T>) -> usize {
    let per_verdict: usize = message
        .verdicts
        .iter()
        .map(|v| match v {
            // A new reading (2) or, as a conflict, a quarantine record (2).
            Verdict::Accepted(_) | Verdict::Rejected(_) => 2,
            Verdict::Deferred => 0,
        })
        .sum();
    per_verdict + 2
}

/// The rejection of a reading that conflicts with the one already under its sequence number.
fn conflict_of(reading: &AcceptedReading) -> Rejection {
    Rejection {
        reason: RejectReason::ConflictingReplay,
        device: Some(reading.device),
        sequence: Some(reading.sequence),
        ackable: true,
        topic: protocol::topic::readings_topic(reading.device).to_string(),
        bytes: reading.signed.clone(),
        original_len: u32::try_from(reading.signed.len()).unwrap_or(u32::MAX),
        ingest_time_ms: reading.ingest_time_ms,
    }
}

fn complete<T>(
    state: MessageState<T>,
    completion: &mut Completion<T>,
    due: &mut BTreeMap<DeviceId, Vec<SequenceNumber>>,
) {
    completion.tokens.push(state.token);
    for (device, sequence) in state.acks {
        due.entry(device).or_default().push(sequence);
    }
}

/// One or more acks per device (an ack holds at most `ACK_RANGES_MAX` ranges), in device
/// order; the sequence numbers need not be sorted or distinct.
pub fn device_acks(due: BTreeMap<DeviceId, Vec<SequenceNumber>>) -> Vec<Ack> {
    let mut acks = Vec::new();
    for (device, mut sequences) in due {
        sequences.sort_unstable();
        sequences.dedup();
        let mut builder = AckBuilder::new(device);
        for sequence in sequences {
            if builder.push(sequence).is_err() {
                acks.extend(builder.finish());
                builder = AckBuilder::new(device);
                // A fresh builder takes any one number.
                let _ = builder.push(sequence);
            }
        }
        acks.extend(builder.finish());
    }
    acks
}

#[cfg(test)]
mod tests;
