//! The ingest tables (sidecar records committed with the log's rounds) and their byte
//! encodings. Every value starts with a version byte; integers are big-endian and fixed width;
//! keys sort in the order they are listed in (device, then sequence number or arrival).
//!
//! | table                            | key                      | value                      |
//! |----------------------------------|--------------------------|----------------------------|
//! | `ingest_readings`                | device(8) ‖ sequence(8)  | [`StoredReading`]          |
//! | `ingest_batches`                 | batch root(32)           | [`StoredBatch`]            |
//! | `ingest_devices`                 | device(8)                | [`DeviceSeen`]             |
//! | `ingest_quarantine`              | device(8) ‖ id(8)        | [`QuarantineRecord`]       |
//! | `ingest_quarantine_unattributed` | id(8)                    | [`QuarantineRecord`]       |
//! | `ingest_quarantine_seen`         | SHA-256 of the rejection | quarantine key             |
//! | `ingest_meta`                    | `quarantine_next`        | next quarantine id (8)     |
//! | `device_keys`                    | device(8) ‖ epoch(4)     | [`KeyRecord`]              |

use ledger::merkle::Hash;
use protocol::{DeviceId, KeyEpoch, SequenceNumber};

use crate::quarantine::{QuarantineRecord, RejectReason};

pub(crate) const READINGS: &str = "ingest_readings";
pub(crate) const BATCHES: &str = "ingest_batches";
pub(crate) const DEVICES: &str = "ingest_devices";
pub(crate) const QUARANTINE: &str = "ingest_quarantine";
pub(crate) const QUARANTINE_UNATTRIBUTED: &str = "ingest_quarantine_unattributed";
pub(crate) const QUARANTINE_SEEN: &str = "ingest_quarantine_seen";
pub(crate) const META: &str = "ingest_meta";
pub(crate) const DEVICE_KEYS: &str = "device_keys";
pub(crate) const META_QUARANTINE_NEXT: &[u8] = b"quarantine_next";

const VERSION: u8 = 1;

/// Stored bytes that do not have the shape they were written with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stored {0} record is corrupt")]
pub struct CorruptRecord(pub &'static str);

struct Cursor<'a> {
    bytes: &'a [u8],
    what: &'static str,
}

impl<'a> Cursor<'a> {
    fn new(bytes: &'a [u8], what: &'static str) -> Result<Self, CorruptRecord> {
        let mut cursor = Self { bytes, what };
        if cursor.u8()? != VERSION {
            return Err(CorruptRecord(what));
        }
        Ok(cursor)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], CorruptRecord> {
        if self.bytes.len() < n {
            return Err(CorruptRecord(self.what));
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], CorruptRecord> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, CorruptRecord> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, CorruptRecord> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, CorruptRecord> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, CorruptRecord> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    fn hash(&mut self) -> Result<Hash, CorruptRecord> {
        Ok(Hash(self.array()?))
    }

    fn finish(self) -> Result<(), CorruptRecord> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err(CorruptRecord(self.what))
        }
    }
}

fn key8(bytes: &[u8], what: &'static str) -> Result<[u8; 8], CorruptRecord> {
    bytes
        .get(..8)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .ok_or(CorruptRecord(what))
}

/// Key of a reading: device ‖ sequence (big-endian), so a device's readings sort by sequence.
pub(crate) fn reading_key(device: DeviceId, sequence: SequenceNumber) -> Vec<u8> {
    let mut key = Vec::with_capacity(16);
    key.extend_from_slice(&device.0);
    key.extend_from_slice(&sequence.0.to_be_bytes());
    key
}

/// Where a log entry is: its leaf hash and the log size before it was submitted (a lower bound
/// of its index). The sequencer answers the exact index only after the commit that carries
/// this record, so the record holds the bound and [`crate::store::locate_entry`] finds the
/// index by reading the few entries appended between submission and commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryLocator {
    /// `leaf_hash(entry)` (RFC 9162 §2.1.1).
    pub leaf_hash: Hash,
    /// The durable log size when the entry was submitted: its index is at least this.
    pub log_size_before: u64,
}

/// A committed reading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredReading {
    /// The device.
    pub device: DeviceId,
    /// Its sequence number.
    pub sequence: SequenceNumber,
    /// The exact signed bytes the device sent (the batch tree's leaf is `leaf_hash` of them).
    pub signed: Vec<u8>,
    /// Ingest's clock when the reading arrived (Unix ms), recorded beside the device time.
    pub ingest_time_ms: u64,
    /// Whether the device clock differed from ingest's by more than the configured bound.
    pub clock_skewed: bool,
    /// Root of the batch tree the reading is a leaf of.
    pub batch_root: Hash,
    /// The reading's position (leaf index) in the batch tree.
    pub position: u32,
}

impl StoredReading {
    pub(crate) fn key(&self) -> Vec<u8> {
        reading_key(self.device, self.sequence)
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(48 + self.signed.len());
        out.push(VERSION);
        out.extend_from_slice(&self.ingest_time_ms.to_be_bytes());
        out.push(u8::from(self.clock_skewed));
        out.extend_from_slice(&self.batch_root.0);
        out.extend_from_slice(&self.position.to_be_bytes());
        // Signed readings are at most SIGNED_READING_BYTES_MAX (130) bytes.
        out.extend_from_slice(
            &u16::try_from(self.signed.len())
                .unwrap_or(u16::MAX)
                .to_be_bytes(),
        );
        out.extend_from_slice(&self.signed);
        out
    }

    pub(crate) fn decode(key: &[u8], value: &[u8]) -> Result<Self, CorruptRecord> {
        const WHAT: &str = "reading";
        if key.len() != 16 {
            return Err(CorruptRecord(WHAT));
        }
        let device = DeviceId(key8(key, WHAT)?);
        let sequence = SequenceNumber(u64::from_be_bytes(key8(&key[8..], WHAT)?));
        let mut c = Cursor::new(value, WHAT)?;
        let ingest_time_ms = c.u64()?;
        let clock_skewed = match c.u8()? {
            0 => false,
            1 => true,
            _ => return Err(CorruptRecord(WHAT)),
        };
        let batch_root = c.hash()?;
        let position = c.u32()?;
        let len = usize::from(c.u16()?);
        let signed = c.take(len)?.to_vec();
        c.finish()?;
        Ok(Self {
            device,
            sequence,
            signed,
            ingest_time_ms,
            clock_skewed,
            batch_root,
            position,
        })
    }
}

/// A committed batch: enough to prove any of its readings up to the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBatch {
    /// RFC 9162 root over `reading_leaves`.
    pub root: Hash,
    /// Where its `ReadingBatch` entry is in the log.
    pub entry: EntryLocator,
    /// When the batch closed (Unix ms, ingest's clock; the entry's `ingest_time_ms`).
    pub closed_ms: u64,
    /// The leaf hashes of its readings, in batch order.
    pub reading_leaves: Vec<Hash>,
}

impl StoredBatch {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + 32 * self.reading_leaves.len());
        out.push(VERSION);
        out.extend_from_slice(&self.entry.leaf_hash.0);
        out.extend_from_slice(&self.entry.log_size_before.to_be_bytes());
        out.extend_from_slice(&self.closed_ms.to_be_bytes());
        // At most BATCH_READINGS_CEILING plus one message of readings.
        let count = u32::try_from(self.reading_leaves.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&count.to_be_bytes());
        for leaf in &self.reading_leaves {
            out.extend_from_slice(&leaf.0);
        }
        out
    }

    pub(crate) fn decode(key: &[u8], value: &[u8]) -> Result<Self, CorruptRecord> {
        const WHAT: &str = "batch";
        let root = Hash::from_slice(key).ok_or(CorruptRecord(WHAT))?;
        let mut c = Cursor::new(value, WHAT)?;
        let leaf_hash = c.hash()?;
        let log_size_before = c.u64()?;
        let closed_ms = c.u64()?;
        let count = c.u32()?;
        let mut reading_leaves = Vec::new();
        for _ in 0..count {
            reading_leaves.push(c.hash()?);
        }
        c.finish()?;
        Ok(Self {
            root,
            entry: EntryLocator {
                leaf_hash,
                log_size_before,
            },
            closed_ms,
            reading_leaves,
        })
    }
}

/// What ingest last saw of a device (written with each batch that holds its readings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceSeen {
    /// Ingest time of its latest committed reading (Unix ms).
    pub last_ingest_time_ms: u64,
    /// Device time of that reading (Unix ms).
    pub last_device_time_ms: u64,
    /// Highest sequence number in the latest batch that held its readings.
    pub last_sequence: SequenceNumber,
    /// That batch's root.
    pub last_batch_root: Hash,
}

impl DeviceSeen {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(57);
        out.push(VERSION);
        out.extend_from_slice(&self.last_ingest_time_ms.to_be_bytes());
        out.extend_from_slice(&self.last_device_time_ms.to_be_bytes());
        out.extend_from_slice(&self.last_sequence.0.to_be_bytes());
        out.extend_from_slice(&self.last_batch_root.0);
        out
    }

    pub(crate) fn decode(value: &[u8]) -> Result<Self, CorruptRecord> {
        let mut c = Cursor::new(value, "device")?;
        let seen = Self {
            last_ingest_time_ms: c.u64()?,
            last_device_time_ms: c.u64()?,
            last_sequence: SequenceNumber(c.u64()?),
            last_batch_root: c.hash()?,
        };
        c.finish()?;
        Ok(seen)
    }
}

/// The key of a quarantine record.
pub(crate) fn quarantine_key(device: Option<DeviceId>, id: u64) -> (&'static str, Vec<u8>) {
    match device {
        Some(device) => {
            let mut key = Vec::with_capacity(16);
            key.extend_from_slice(&device.0);
            key.extend_from_slice(&id.to_be_bytes());
            (QUARANTINE, key)
        }
        None => (QUARANTINE_UNATTRIBUTED, id.to_be_bytes().to_vec()),
    }
}

impl QuarantineRecord {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(40 + self.topic.len() + self.bytes.len());
        out.push(VERSION);
        out.push(self.reason.code());
        out.extend_from_slice(&self.ingest_time_ms.to_be_bytes());
        match self.sequence {
            Some(sequence) => {
                out.push(1);
                out.extend_from_slice(&sequence.0.to_be_bytes());
            }
            None => out.push(0),
        }
        // Topics are at most 65,535 bytes in MQTT.
        let topic_len = u16::try_from(self.topic.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&topic_len.to_be_bytes());
        out.extend_from_slice(&self.topic.as_bytes()[..usize::from(topic_len)]);
        out.extend_from_slice(&self.original_len.to_be_bytes());
        // Cut at quarantine_bytes_max (at most 1 MiB) before it gets here.
        let len = u32::try_from(self.bytes.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&self.bytes);
        out
    }

    pub(crate) fn decode(table: &str, key: &[u8], value: &[u8]) -> Result<Self, CorruptRecord> {
        const WHAT: &str = "quarantine";
        let (device, id) = match (table, key.len()) {
            (QUARANTINE, 16) => (
                Some(DeviceId(key8(key, WHAT)?)),
                u64::from_be_bytes(key8(&key[8..], WHAT)?),
            ),
            (QUARANTINE_UNATTRIBUTED, 8) => (None, u64::from_be_bytes(key8(key, WHAT)?)),
            _ => return Err(CorruptRecord(WHAT)),
        };
        let mut c = Cursor::new(value, WHAT)?;
        let reason = RejectReason::from_code(c.u8()?).ok_or(CorruptRecord(WHAT))?;
        let ingest_time_ms = c.u64()?;
        let sequence = match c.u8()? {
            0 => None,
            1 => Some(SequenceNumber(c.u64()?)),
            _ => return Err(CorruptRecord(WHAT)),
        };
        let topic_len = usize::from(c.u16()?);
        let topic =
            String::from_utf8(c.take(topic_len)?.to_vec()).map_err(|_| CorruptRecord(WHAT))?;
        let original_len = c.u32()?;
        let len = usize::try_from(c.u32()?).map_err(|_| CorruptRecord(WHAT))?;
        let bytes = c.take(len)?.to_vec();
        c.finish()?;
        Ok(Self {
            id,
            device,
            reason,
            sequence,
            ingest_time_ms,
            topic,
            bytes,
            original_len,
        })
    }
}

/// State of one key epoch of a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyStatus {
    /// Readings signed with it are accepted.
    Active,
    /// Revoked: readings signed with it are refused for good.
    Revoked {
        /// When the revocation took effect (Unix ms).
        effective_time_ms: u64,
        /// Where the revoking `KeyEvent` is in the log.
        event: EntryLocator,
    },
}

/// A registered device key (one epoch), as the `KeyEvent` entries made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyRecord {
    /// The device.
    pub device: DeviceId,
    /// The key epoch.
    pub epoch: KeyEpoch,
    /// Ed25519 public key.
    pub public_key: [u8; 32],
    /// When the registration or rotation took effect (Unix ms).
    pub effective_time_ms: u64,
    /// Where the registering (or rotating) `KeyEvent` is in the log.
    pub event: EntryLocator,
    /// Active or revoked.
    pub status: KeyStatus,
}

pub(crate) fn key_record_key(device: DeviceId, epoch: KeyEpoch) -> Vec<u8> {
    let mut key = Vec::with_capacity(12);
    key.extend_from_slice(&device.0);
    key.extend_from_slice(&epoch.0.to_be_bytes());
    key
}

impl KeyRecord {
    pub(crate) fn key(&self) -> Vec<u8> {
        key_record_key(self.device, self.epoch)
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(160);
        out.push(VERSION);
        out.extend_from_slice(&self.public_key);
        out.extend_from_slice(&self.effective_time_ms.to_be_bytes());
        out.extend_from_slice(&self.event.leaf_hash.0);
        out.extend_from_slice(&self.event.log_size_before.to_be_bytes());
        match self.status {
            KeyStatus::Active => out.push(1),
            KeyStatus::Revoked {
                effective_time_ms,
                event,
            } => {
                out.push(2);
                out.extend_from_slice(&effective_time_ms.to_be_bytes());
                out.extend_from_slice(&event.leaf_hash.0);
                out.extend_from_slice(&event.log_size_before.to_be_bytes());
            }
        }
        out
    }

    pub(crate) fn decode(key: &[u8], value: &[u8]) -> Result<Self, CorruptRecord> {
        const WHAT: &str = "device key";
        if key.len() != 12 {
            return Err(CorruptRecord(WHAT));
        }
        let device = DeviceId(key8(key, WHAT)?);
        let epoch_bytes = <[u8; 4]>::try_from(&key[8..12]).map_err(|_| CorruptRecord(WHAT))?;
        let epoch = KeyEpoch(u32::from_be_bytes(epoch_bytes));
        let mut c = Cursor::new(value, WHAT)?;
        let public_key = c.array()?;
        let effective_time_ms = c.u64()?;
        let event = EntryLocator {
            leaf_hash: c.hash()?,
            log_size_before: c.u64()?,
        };
        let status = match c.u8()? {
            1 => KeyStatus::Active,
            2 => KeyStatus::Revoked {
                effective_time_ms: c.u64()?,
                event: EntryLocator {
                    leaf_hash: c.hash()?,
                    log_size_before: c.u64()?,
                },
            },
            _ => return Err(CorruptRecord(WHAT)),
        };
        c.finish()?;
        Ok(Self {
            device,
            epoch,
            public_key,
            effective_time_ms,
            event,
            status,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEVICE: DeviceId = DeviceId([1, 2, 3, 4, 5, 6, 7, 8]);

    fn locator(n: u8) -> EntryLocator {
        EntryLocator {
            leaf_hash: Hash([n; 32]),
            log_size_before: u64::from(n) * 1000,
        }
    }

    #[test]
    fn every_record_round_trips_and_refuses_a_cut() {
        let reading = StoredReading {
            device: DEVICE,
            sequence: SequenceNumber(u64::MAX),
            signed: vec![7; 130],
            ingest_time_ms: 42,
            clock_skewed: true,
            batch_root: Hash([9; 32]),
            position: 799,
        };
        let value = reading.encode();
        assert_eq!(StoredReading::decode(&reading.key(), &value), Ok(reading));
        assert!(
            StoredReading::decode(
                &reading_key(DEVICE, SequenceNumber(1)),
                &value[..value.len() - 1]
            )
            .is_err()
        );

        let batch = StoredBatch {
            root: Hash([3; 32]),
            entry: locator(4),
            closed_ms: 5,
            reading_leaves: vec![Hash([6; 32]), Hash([7; 32])],
        };
        let value = batch.encode();
        assert_eq!(StoredBatch::decode(&batch.root.0, &value), Ok(batch));
        assert!(StoredBatch::decode(&[3; 32], &[&value[..], &[0]].concat()).is_err());

        let seen = DeviceSeen {
            last_ingest_time_ms: 1,
            last_device_time_ms: 2,
            last_sequence: SequenceNumber(3),
            last_batch_root: Hash([4; 32]),
        };
        assert_eq!(DeviceSeen::decode(&seen.encode()), Ok(seen));

        for device in [Some(DEVICE), None] {
            let record = QuarantineRecord {
                id: 77,
                device,
                reason: RejectReason::ConflictingReplay,
                sequence: device.map(|_| SequenceNumber(5)),
                ingest_time_ms: 8,
                topic: "agritrace/v1/devices/x/readings".to_owned(),
                bytes: vec![1, 2, 3],
                original_len: 9000,
            };
            let (table, key) = quarantine_key(device, 77);
            assert_eq!(
                QuarantineRecord::decode(table, &key, &record.encode()),
                Ok(record)
            );
        }

        for status in [
            KeyStatus::Active,
            KeyStatus::Revoked {
                effective_time_ms: 10,
                event: locator(11),
            },
        ] {
            let record = KeyRecord {
                device: DEVICE,
                epoch: KeyEpoch(1),
                public_key: [5; 32],
                effective_time_ms: 6,
                event: locator(7),
                status,
            };
            assert_eq!(
                KeyRecord::decode(&record.key(), &record.encode()),
                Ok(record)
            );
        }
    }

    #[test]
    fn a_reason_code_round_trips_and_only_unknown_device_is_retryable() {
        for reason in RejectReason::ALL {
            assert_eq!(RejectReason::from_code(reason.code()), Some(reason));
            assert_eq!(reason.is_for_good(), reason != RejectReason::UnknownDevice);
        }
        assert_eq!(RejectReason::from_code(0), None);
        assert_eq!(RejectReason::from_code(8), None);
    }
}
