//! The cold-chain logger as a sans-IO state machine: sample on a period, sign, keep in the
//! outbox, hand out uplink messages, free what the backend acknowledges.
//!
//! The logger does no I/O and reads no clock. The caller passes in the time (`now_ms`, the
//! device's monotonic milliseconds since boot, and `unix_time_ms`, its wall clock), the
//! sensor [`Sample`], the [`SequenceStore`], the bytes of an ack, and gets back decisions and
//! bytes to publish. [`crate::step`] wires it to an [`crate::Uplink`] for simple hosts.
//!
//! Invariants:
//! - A sequence number is used at most once, also across reboots (see [`crate::sequence`]).
//! - A reading leaves the outbox only when an ack from the backend names its sequence number,
//!   or when it is evicted to make room; every eviction is counted in the
//!   `dropped_samples` field of the next reading recorded, so the gap it leaves is signed.
//!   An evicted reading's own `dropped_samples` moves on with it (it counts 1 + what it
//!   carried), so the counts of the readings that are eventually delivered add up to the
//!   number of readings evicted, however many carriers are evicted in a row.
//! - With a durable [`OutboxJournal`] (a [`crate::FlashJournal`]), a reading is in the
//!   journal before it can be published, and is retired in the journal before it leaves the
//!   outbox; [`Logger::boot_with_journal`] restores every reading that was not retired.
//!   Room is made in the journal's order: the oldest sector's live readings are evicted (and
//!   counted) when the ring is full, the oldest reading when the RAM outbox is.

use core::fmt;

use hardware::Sample;
use protocol::limits::{BACKLOG_READINGS_MAX, SIGNED_READING_BYTES_MAX};
use protocol::topic::{self, Topic};
use protocol::{
    Ack, AckError, DeviceId, DoorState, EncodeError, GeoPosition, Reading, SequenceNumber,
    SigningKey, UplinkWriter, VerifyingKey, encode_signed_reading,
};

use crate::config::{ConfigError, DeviceConfig};
use crate::journal::{NoJournal, OutboxJournal, Restored};
use crate::outbox::{DeliveryState, Outbox};
use crate::sequence::{ReserveError, SequenceAllocator, SequenceStore};

/// The smallest uplink buffer that can hold a message with one reading. A buffer of
/// [`protocol::limits::UPLINK_BYTES_MAX`] bytes holds a full backlog.
pub const UPLINK_BUFFER_BYTES_MIN: usize = 1 + SIGNED_READING_BYTES_MAX;

/// Why [`Logger::boot`] or [`Logger::boot_with_journal`] failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BootError<E, J = core::convert::Infallible> {
    /// The configuration is not usable.
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    /// The sequence store could not be read or the first block not reserved.
    #[error("the sequence store failed")]
    Store(E),
    /// Every sequence number has been used.
    #[error("the sequence numbers are exhausted")]
    SequenceExhausted,
    /// The outbox journal could not be read (or its excess readings not retired).
    #[error("the outbox journal failed")]
    Journal(J),
}

/// Why [`Logger::record`] did not record a reading. Nothing changed (no sequence number was
/// used, nothing was evicted), except after [`RecordError::Journal`], which says what it
/// leaves behind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RecordError<E, J = core::convert::Infallible> {
    /// A new block of sequence numbers could not be reserved.
    #[error("the sequence store failed")]
    Store(E),
    /// Every sequence number has been used.
    #[error("the sequence numbers are exhausted")]
    SequenceExhausted,
    /// The sample could not be encoded (a value outside its physical range).
    #[error("the sample could not be encoded: {0}")]
    Encode(#[from] EncodeError),
    /// The journal could not make room or take the signed reading. The reading is not kept
    /// (a reading is published only once durable) and its sequence number is never used
    /// again (its record may have landed). Readings already evicted to make room stay
    /// evicted and are counted in the next reading's `dropped_samples`.
    #[error("the outbox journal failed")]
    Journal(J),
}

impl<E, J> From<ReserveError<E>> for RecordError<E, J> {
    fn from(error: ReserveError<E>) -> Self {
        match error {
            ReserveError::Store(e) => Self::Store(e),
            ReserveError::Exhausted => Self::SequenceExhausted,
        }
    }
}

/// Why an ack was refused. A refused ack changes nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AckRefused {
    /// The bytes are not a well-formed ack.
    #[error("malformed ack: {0}")]
    Malformed(#[from] AckError),
    /// The ack names another device (a misrouted or forged message).
    #[error("the ack is for device {got}, this is device {expected}")]
    OtherDevice {
        /// This device.
        expected: DeviceId,
        /// The device the ack names.
        got: DeviceId,
    },
}

/// What an accepted ack did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct AckOutcome {
    /// Readings freed from the outbox.
    pub freed: usize,
    /// Sequence numbers the ack names that were not in the outbox: acknowledged before,
    /// evicted, or skipped after a reboot. Harmless; counted for diagnostics.
    pub not_in_outbox: u64,
    /// Freed readings whose journal record could not be retired: they come back after a
    /// reboot and are sent again (the backend acknowledges repeats).
    pub journal_failures: usize,
}

/// A reading in the outbox, as [`Logger::outbox`] shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutboxEntry<'a> {
    /// Its sequence number.
    pub sequence: SequenceNumber,
    /// The signed reading, exactly as it is published.
    pub signed_reading: &'a [u8],
    /// Whether it waits to be published or for its ack.
    pub state: DeliveryState,
}

/// The logger state machine with an outbox of `OUTBOX` readings (each slot holds
/// [`SIGNED_READING_BYTES_MAX`] bytes, so the outbox takes about `OUTBOX * 150` bytes of RAM)
/// kept durable by the journal `J`.
///
/// With the default [`NoJournal`] ([`Logger::boot`]) the outbox lives in RAM only: readings
/// not yet acknowledged are lost on a reboot (their sequence numbers are never reused, so the
/// backend sees the gap). With a [`crate::FlashJournal`] ([`Logger::boot_with_journal`])
/// they survive it.
pub struct Logger<const OUTBOX: usize, J: OutboxJournal = NoJournal> {
    config: DeviceConfig,
    key: SigningKey,
    sequence: SequenceAllocator,
    outbox: Outbox<OUTBOX>,
    journal: J,
    restored: Restored,
    next_sample_at_ms: u64,
    dropped_total: u64,
    /// Evictions (with the counts the evicted readings carried) not yet signed into a reading.
    uncounted_drops: u64,
    journal_failures: u64,
}

impl<const OUTBOX: usize, J: OutboxJournal> fmt::Debug for Logger<OUTBOX, J> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the signing key.
        f.debug_struct("Logger")
            .field("config", &self.config)
            .field("next_sequence", &self.sequence.next().0)
            .field("outbox_len", &self.outbox.len())
            .field("in_flight", &self.in_flight())
            .field("next_sample_at_ms", &self.next_sample_at_ms)
            .field("dropped_total", &self.dropped_total)
            .field("restored", &self.restored)
            .field("journal_failures", &self.journal_failures)
            .finish_non_exhaustive()
    }
}

impl<const OUTBOX: usize> Logger<OUTBOX, NoJournal> {
    /// Starts the logger after a (re)boot without a journal: continues the sequence at the
    /// mark in `store` and durably reserves a block of numbers before using any
    /// (reserve-ahead). The first sample is due at once; the outbox starts empty.
    pub fn boot<S: SequenceStore>(
        config: DeviceConfig,
        key: SigningKey,
        store: &mut S,
    ) -> Result<Self, BootError<S::Error>> {
        Self::boot_with_journal(config, key, store, NoJournal).map_err(|error| match error {
            BootError::Config(e) => BootError::Config(e),
            BootError::Store(e) => BootError::Store(e),
            BootError::SequenceExhausted => BootError::SequenceExhausted,
            BootError::Journal(never) => match never {},
        })
    }
}

impl<const OUTBOX: usize, J: OutboxJournal> Logger<OUTBOX, J> {
    /// Starts the logger after a (re)boot with its outbox journal: restores every reading the
    /// journal holds that was neither acknowledged nor evicted, oldest first, all due for
    /// sending at once (if there are more than `OUTBOX`, the oldest are evicted and counted,
    /// with the counts they carried, in the next reading's `dropped_samples`); continues the sequence above both the mark
    /// in `store` and the journal's newest record, durably reserving a block of numbers
    /// before using any. The first sample is due at once.
    pub fn boot_with_journal<S: SequenceStore>(
        config: DeviceConfig,
        key: SigningKey,
        store: &mut S,
        mut journal: J,
    ) -> Result<Self, BootError<S::Error, J::Error>> {
        config.validate()?;
        // The journal's newest number was used: never hand it out again, even if the
        // sequence store lost its mark.
        let floor = journal
            .newest_sequence()
            .map_or(0, |newest| newest.0.saturating_add(1));
        let sequence = SequenceAllocator::boot(store, floor).map_err(|e| match e {
            ReserveError::Store(e) => BootError::Store(e),
            ReserveError::Exhausted => BootError::SequenceExhausted,
        })?;
        let mut outbox = Outbox::new();
        let mut uncounted_drops = 0u64;
        let restored = journal
            .restore(
                OUTBOX,
                |record, sequence, signed_reading| {
                    let carried = carried_by(signed_reading);
                    let evicted = outbox.push(sequence, signed_reading, record, carried);
                    debug_assert!(evicted.is_none(), "the journal restores at most OUTBOX");
                },
                |_, signed_reading| {
                    uncounted_drops =
                        uncounted_drops.saturating_add(eviction_weight(carried_by(signed_reading)));
                },
            )
            .map_err(BootError::Journal)?;
        let evicted = u64::try_from(restored.evicted).unwrap_or(u64::MAX);
        Ok(Self {
            config,
            key,
            sequence,
            outbox,
            journal,
            restored,
            next_sample_at_ms: 0,
            dropped_total: evicted,
            uncounted_drops,
            journal_failures: 0,
        })
    }

    /// The configuration the logger was booted with.
    pub fn config(&self) -> &DeviceConfig {
        &self.config
    }

    /// The public half of the device key, as registered with the backend.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// Whether a sample is due at `now_ms` (monotonic milliseconds since boot).
    pub fn sample_due(&self, now_ms: u64) -> bool {
        now_ms >= self.next_sample_at_ms
    }

    /// When the next sample is due.
    pub fn next_sample_at_ms(&self) -> u64 {
        self.next_sample_at_ms
    }

    /// Signs `sample` as the next reading, appends it to the journal and then to the
    /// outbox, evicting what must go to make room: the live readings of the journal's oldest
    /// sector when its ring is full, then the oldest reading if the outbox is full. The new
    /// reading's `dropped_samples` counts them, each with the `dropped_samples` it carried
    /// itself (and evictions not counted yet, e.g. at boot).
    /// May write `store` to reserve the next block of sequence numbers. Schedules the next
    /// sample one period after the one that was due (or after `now_ms` if the logger fell
    /// behind).
    ///
    /// On error nothing changed: no number was used, nothing evicted, the schedule kept;
    /// except after [`RecordError::Journal`], see there.
    pub fn record<S: SequenceStore>(
        &mut self,
        now_ms: u64,
        unix_time_ms: u64,
        sample: &Sample,
        store: &mut S,
    ) -> Result<SequenceNumber, RecordError<S::Error, J::Error>> {
        let sequence = self.sequence.reserve(store)?;
        let erases = self.journal.next_append_erases();
        let in_erased = |record| erases.as_ref().is_some_and(|range| range.contains(&record));
        // An evicted reading counts itself and the evictions it carried: they would be lost
        // with it otherwise.
        let (erased_live, erased_weight) = self
            .outbox
            .iter()
            .filter(|slot| in_erased(slot.record))
            .fold((0usize, 0u64), |(count, weight), slot| {
                (
                    count + 1,
                    weight.saturating_add(eviction_weight(slot.carried)),
                )
            });
        let evicts_oldest = self.outbox.len() - erased_live == OUTBOX;
        // The oldest reading that the erase leaves is the one evicted for the RAM outbox.
        let oldest_weight = if evicts_oldest {
            self.outbox
                .iter()
                .find(|slot| !in_erased(slot.record))
                .map_or(0, |slot| eviction_weight(slot.carried))
        } else {
            0
        };
        let erased_live_u64 = u64::try_from(erased_live).unwrap_or(u64::MAX);
        let dropped = self
            .uncounted_drops
            .saturating_add(erased_weight)
            .saturating_add(oldest_weight);
        // Beyond u32::MAX, the rest waits for the next reading instead of being lost.
        let signed_drops = u32::try_from(dropped).unwrap_or(u32::MAX);
        let reading = Reading {
            device: self.config.device,
            key_epoch: self.config.key_epoch,
            sequence,
            device_time_ms: unix_time_ms,
            temperature_centi_c: sample.temperature_centi_c,
            humidity_centi_pct: sample.humidity_centi_pct,
            position: sample.position.map(|p| GeoPosition {
                lat_e7: p.lat_e7,
                lon_e7: p.lon_e7,
            }),
            door: if sample.door_open {
                DoorState::Open
            } else {
                DoorState::Closed
            },
            shock_events: sample.shock_events,
            battery_mv: sample.battery_mv,
            dropped_samples: signed_drops,
        };
        let mut signed = [0u8; SIGNED_READING_BYTES_MAX];
        let len = encode_signed_reading(&reading, &self.key, &mut signed)?;
        let signed = &signed[..len];

        // Nothing has changed so far.
        self.journal.make_room().map_err(RecordError::Journal)?;
        // The oldest sector is erased: its live readings are gone.
        if erased_live > 0 {
            let freed = self.outbox.free_where(|slot| in_erased(slot.record));
            debug_assert_eq!(freed, erased_live);
            self.dropped_total = self.dropped_total.saturating_add(erased_live_u64);
            self.uncounted_drops = self.uncounted_drops.saturating_add(erased_weight);
        }
        let record = match self.journal.append(sequence, signed) {
            Ok(record) => record,
            Err(error) => {
                // The record may have landed (torn or whole): never use the number again.
                self.sequence.commit();
                return Err(RecordError::Journal(error));
            }
        };
        // A crash after this line is safe: the reading is durable; if the oldest reading
        // below is not retired yet, the next boot evicts it again (counted twice, never lost
        // silently).
        if evicts_oldest && let Some(oldest) = self.outbox.pop_oldest() {
            self.dropped_total = self.dropped_total.saturating_add(1);
            if self.journal.retire(oldest).is_err() {
                self.journal_failures = self.journal_failures.saturating_add(1);
            }
        }
        let evicted = self.outbox.push(sequence, signed, record, signed_drops);
        debug_assert!(evicted.is_none(), "room was made above");
        self.uncounted_drops = dropped - u64::from(signed_drops);
        self.sequence.commit();
        self.advance_schedule(now_ms);
        Ok(sequence)
    }

    /// Skips the sample due at `now_ms` (the sensors could not be read): the next one is due
    /// one period later. No sequence number is used.
    pub fn skip_sample(&mut self, now_ms: u64) {
        self.advance_schedule(now_ms);
    }

    fn advance_schedule(&mut self, now_ms: u64) {
        let period = u64::from(self.config.sample_period_ms);
        let next = self.next_sample_at_ms.saturating_add(period);
        // Behind schedule (a long sensor read, a suspended host): do not catch up in a burst.
        self.next_sample_at_ms = if next <= now_ms {
            now_ms.saturating_add(period)
        } else {
            next
        };
    }

    /// The next uplink message: the oldest readings that are pending, or in flight for at
    /// least `resend_after_ms`, in sequence order, as many as fit `buf` (at most
    /// [`BACKLOG_READINGS_MAX`]). One reading goes out as a single-reading message, more as a
    /// backlog; when `buf` cannot hold a backlog of two, the oldest goes out alone as a
    /// single-reading message. They are marked in flight since `now_ms`. `None` when nothing
    /// is due or `buf` is shorter than [`UPLINK_BUFFER_BYTES_MIN`].
    ///
    /// The caller publishes the message; if that fails it calls
    /// [`Logger::on_connection_lost`] so the readings go out again.
    pub fn next_uplink<'b>(&mut self, now_ms: u64, buf: &'b mut [u8]) -> Option<&'b [u8]> {
        let resend_after_ms = self.config.resend_after_ms;
        let mut chosen = heapless::Vec::<usize, BACKLOG_READINGS_MAX>::new();
        for (index, slot) in self.outbox.iter().enumerate() {
            if slot.sendable(now_ms, resend_after_ms) && chosen.push(index).is_err() {
                break;
            }
        }
        let (message, sent) = match chosen.as_slice() {
            [] => return None,
            [only] => {
                let slot = self.outbox.get(*only)?;
                (UplinkWriter::single(buf, slot.bytes()).ok()?, 1)
            }
            [first, second, ..] if !self.backlog_of_two_fits(*first, *second, buf) => {
                // A buffer that holds one reading but not a backlog of two (131 to about 265
                // bytes): one reading at a time, as a single-reading message, rather than
                // nothing at all.
                let slot = self.outbox.get(*first)?;
                (UplinkWriter::single(buf, slot.bytes()).ok()?, 1)
            }
            several => {
                let mut writer = UplinkWriter::backlog(buf).ok()?;
                for &index in several {
                    let slot = self.outbox.get(index)?;
                    if writer.push(slot.bytes()).is_err() {
                        break;
                    }
                }
                let sent = writer.count();
                (writer.finish()?, sent)
            }
        };
        for &index in &chosen[..sent] {
            if let Some(slot) = self.outbox.get_mut(index) {
                slot.state = DeliveryState::InFlight { since_ms: now_ms };
            }
        }
        Some(message)
    }

    /// Whether a backlog message holding the readings at outbox positions `first` and
    /// `second` fits `buf`. Tried in `buf` itself (the message built next overwrites it), so
    /// that the size rules stay those of [`UplinkWriter`].
    fn backlog_of_two_fits(&self, first: usize, second: usize, buf: &mut [u8]) -> bool {
        let Ok(mut trial) = UplinkWriter::backlog(buf) else {
            return false;
        };
        [first, second].into_iter().all(|index| {
            self.outbox
                .get(index)
                .is_some_and(|slot| trial.push(slot.bytes()).is_ok())
        })
    }

    /// Applies an ack received on the device's acks topic: frees exactly the readings whose
    /// sequence numbers it names (committed or rejected for good by the backend), whether
    /// pending or in flight. An ack for another device, or bytes that are not an ack, change
    /// nothing.
    pub fn on_ack(&mut self, payload: &[u8]) -> Result<AckOutcome, AckRefused> {
        let ack = Ack::decode(payload)?;
        if ack.device != self.config.device {
            return Err(AckRefused::OtherDevice {
                expected: self.config.device,
                got: ack.device,
            });
        }
        let journal = &mut self.journal;
        let mut journal_failures = 0;
        let freed = self.outbox.free_where(|slot| {
            if !ack.contains(slot.sequence) {
                return false;
            }
            // Retired in the journal before it leaves the outbox: a crash in between only
            // brings it back to be sent (and acknowledged) again.
            if journal.retire(slot.record).is_err() {
                journal_failures += 1;
            }
            true
        });
        self.journal_failures = self
            .journal_failures
            .saturating_add(u64::try_from(journal_failures).unwrap_or(u64::MAX));
        let freed_u64 = u64::try_from(freed).unwrap_or(u64::MAX);
        Ok(AckOutcome {
            freed,
            not_in_outbox: ack.covered().saturating_sub(freed_u64),
            journal_failures,
        })
    }

    /// The uplink connection dropped: messages in flight may never have arrived, so every
    /// reading in flight becomes pending and goes out with the next uplink message.
    pub fn on_connection_lost(&mut self) {
        self.outbox.all_pending();
    }

    /// Readings in the outbox (pending or in flight).
    pub fn outbox_len(&self) -> usize {
        self.outbox.len()
    }

    /// Readings published and waiting for their acknowledgement.
    pub fn in_flight(&self) -> usize {
        self.outbox
            .iter()
            .filter(|slot| matches!(slot.state, DeliveryState::InFlight { .. }))
            .count()
    }

    /// Readings evicted unacknowledged since boot (those evicted while restoring included).
    pub fn dropped_total(&self) -> u64 {
        self.dropped_total
    }

    /// Evictions not signed into a reading yet: the next reading's `dropped_samples` carries
    /// them (after a restore that evicted readings, or a journal failure after an erase).
    pub fn uncounted_drops(&self) -> u64 {
        self.uncounted_drops
    }

    /// What the journal restored at boot.
    pub fn restored(&self) -> Restored {
        self.restored
    }

    /// Journal records that could not be retired since boot (they would come back after a
    /// reboot and be sent again).
    pub fn journal_failures(&self) -> u64 {
        self.journal_failures
    }

    /// The journal.
    pub fn journal(&self) -> &J {
        &self.journal
    }

    /// The journal, mutably (e.g. to inspect or fault its flash in tests). Appending or
    /// retiring records behind the logger's back breaks its invariants.
    pub fn journal_mut(&mut self) -> &mut J {
        &mut self.journal
    }

    /// Stops the logger and gives its journal back (what a power cut leaves is in there).
    pub fn into_journal(self) -> J {
        self.journal
    }

    /// The sequence number the next reading gets.
    pub fn next_sequence(&self) -> SequenceNumber {
        self.sequence.next()
    }

    /// The readings in the outbox, oldest first.
    pub fn outbox(&self) -> impl Iterator<Item = OutboxEntry<'_>> + '_ {
        self.outbox.iter().map(|slot| OutboxEntry {
            sequence: slot.sequence,
            signed_reading: slot.bytes(),
            state: slot.state,
        })
    }

    /// `agritrace/v1/devices/{id}/readings`, where uplink messages are published.
    pub fn readings_topic(&self) -> Topic {
        topic::readings_topic(self.config.device)
    }

    /// `agritrace/v1/devices/{id}/acks`, where the backend publishes acks for this device.
    pub fn acks_topic(&self) -> Topic {
        topic::acks_topic(self.config.device)
    }
}

/// What evicting a reading that carried `carried` evictions adds to the next reading's
/// `dropped_samples`: itself and what it carried.
fn eviction_weight(carried: u32) -> u64 {
    u64::from(carried).saturating_add(1)
}

/// The `dropped_samples` signed into a reading of the outbox. The journal only holds readings
/// this logger signed; one that does not decode (written by other firmware) carries nothing.
fn carried_by(signed_reading: &[u8]) -> u32 {
    protocol::SignedReading::decode(signed_reading)
        .map_or(0, |signed| signed.reading().dropped_samples)
}
