//! The device registry: which Ed25519 key each device signs with, per key epoch.
//!
//! Keys enter the system as `KeyEvent` log entries (register, rotate, revoke: public by
//! nature) submitted through the sequencer together with a `device_keys` sidecar record (and,
//! for a registration, any records of the caller's own, such as the device's owner), so the log
//! entry and the key table commit in one durable transaction. Ingest reads the table
//! through a bounded cache; every change made through this registry updates the cache at once
//! (a revocation is never served stale by this process), and cached keys are read again after
//! `key_cache_ttl_ms` so that changes made by another process are seen too.
//!
//! Rules: a device's first key is registered at epoch 1 (or the epoch its manifest names); a
//! rotation names the next epoch and is signed by the previous epoch's key
//! (`ledger::entry::key_rotation_message`); a revoked epoch stays revoked; keys of earlier
//! epochs stay valid after a rotation (readings signed before it may still be in a device's
//! outbox) until revoked. Weak (small-order) keys are refused at registration, which batch
//! verification relies on (it skips that check).
//!
//! Registry writes are serialised inside the process (check, then submit, then cache), so two
//! imports of the same manifest cannot both register a device.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ledger::entry::{Entry, KeyAction, KeyEvent, key_rotation_message};
use ledger::merkle::{LeafIndex, leaf_hash};
use ledger::sequencer::{SequencerHandle, SubmitError};
use ledger::storage::{ReadError, SidecarRecord};
use protocol::{DeviceId, KeyEpoch, Signature, VerifyingKey};

use crate::clock::Clock;
use crate::metrics::{Metrics, add};
use crate::records::{
    CorruptRecord, DEVICE_KEYS, EntryLocator, KeyRecord, KeyStatus, key_record_key,
};
use crate::store::IngestStorage;

/// The epoch of a device's first key.
pub const FIRST_KEY_EPOCH: KeyEpoch = KeyEpoch(1);
/// The manifest format this registry imports (written by `agritrace-device`).
pub const MANIFEST_FORMAT: &str = "agritrace-device-manifest/v1";
/// Largest manifest accepted, in bytes.
pub const MANIFEST_BYTES_MAX: usize = 16 * 1024 * 1024;
/// Most devices in one manifest.
pub const MANIFEST_DEVICES_MAX: usize = 100_000;
/// Attempts of a submission the sequencer refuses for a retryable reason.
const SUBMIT_ATTEMPTS: u32 = 50;
const SUBMIT_BACKOFF_MS: u64 = 100;

/// Why a registry operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The public key is not a valid Ed25519 point, or is of small order.
    #[error("device {device}: the public key is not a usable Ed25519 key")]
    BadKey {
        /// The device.
        device: DeviceId,
    },
    /// The device already has a key; registering another needs a rotation.
    #[error("device {device} is already registered with another key")]
    AlreadyRegistered {
        /// The device.
        device: DeviceId,
    },
    /// The device has no key of that epoch (or no key at all).
    #[error("device {device} has no key of epoch {epoch}")]
    UnknownKey {
        /// The device.
        device: DeviceId,
        /// The epoch asked for.
        epoch: u32,
    },
    /// A rotation must name the epoch after the device's latest.
    #[error("device {device}: a rotation must go to epoch {expected}, not {offered}")]
    WrongEpoch {
        /// The device.
        device: DeviceId,
        /// The next epoch.
        expected: u32,
        /// The epoch offered.
        offered: u32,
    },
    /// The rotation signature does not verify under the previous key, or that key is revoked.
    #[error("device {device}: the rotation is not signed by its current, unrevoked key")]
    BadRotation {
        /// The device.
        device: DeviceId,
    },
    /// The key is revoked already.
    #[error("device {device}: key epoch {epoch} is already revoked")]
    AlreadyRevoked {
        /// The device.
        device: DeviceId,
        /// The epoch.
        epoch: u32,
    },
    /// The manifest is not a valid device manifest.
    #[error("invalid device manifest: {0}")]
    Manifest(String),
    /// The sequencer refused the key event or kept refusing it.
    #[error("the key event was not committed")]
    Submit(#[from] SubmitError),
    /// The key event could not be encoded.
    #[error("the key event could not be encoded: {0}")]
    Entry(#[from] ledger::entry::EntryError),
    /// Storage could not be read.
    #[error("reading the device keys failed")]
    Read(#[from] ReadError),
    /// A stored key record is corrupt.
    #[error(transparent)]
    Corrupt(#[from] CorruptRecord),
}

/// What a registration did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegisterOutcome {
    /// The key event was committed (`index` is `None` when the sequencer's answer was lost
    /// but the record is durable; [`crate::store::locate_entry`] finds it).
    Registered {
        /// The `KeyEvent`'s log index.
        index: Option<LeafIndex>,
        /// The stored record.
        record: KeyRecord,
    },
    /// The same key was registered before; nothing was written.
    AlreadyRegistered(KeyRecord),
}

/// A key as the verifier needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyLookup {
    /// Verify with this key.
    Active(VerifyingKey),
    /// Refuse for good.
    Revoked,
    /// Refuse for now (it may be registered later).
    Unknown,
}

#[derive(Debug)]
struct KeyCache {
    entries: HashMap<(DeviceId, KeyEpoch), (KeyLookup, u64)>,
    capacity: usize,
    ttl_ms: u64,
}

impl KeyCache {
    fn get(&self, device: DeviceId, epoch: KeyEpoch, now_ms: u64) -> Option<KeyLookup> {
        let (lookup, fetched_ms) = self.entries.get(&(device, epoch))?;
        (now_ms.saturating_sub(*fetched_ms) < self.ttl_ms).then_some(*lookup)
    }

    fn put(&mut self, device: DeviceId, epoch: KeyEpoch, lookup: KeyLookup, now_ms: u64) {
        if self.entries.len() >= self.capacity && !self.entries.contains_key(&(device, epoch)) {
            // Evict an arbitrary entry: the map's order is as good as any, and a miss costs one
            // point read.
            if let Some(victim) = self.entries.keys().next().copied() {
                self.entries.remove(&victim);
            }
        }
        self.entries.insert((device, epoch), (lookup, now_ms));
    }
}

#[derive(Debug)]
struct Inner<S> {
    sequencer: SequencerHandle<S>,
    clock: Arc<dyn Clock>,
    cache: Mutex<KeyCache>,
    writes: tokio::sync::Mutex<()>,
    metrics: Arc<Metrics>,
}

/// The device registry (cheap to clone; clones share the cache).
#[derive(Debug)]
pub struct DeviceRegistry<S> {
    inner: Arc<Inner<S>>,
}

impl<S> Clone for DeviceRegistry<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

fn parse_key(device: DeviceId, public_key: &[u8; 32]) -> Result<VerifyingKey, RegistryError> {
    let key = VerifyingKey::from_bytes(public_key).map_err(|_| RegistryError::BadKey { device })?;
    if key.is_weak() {
        return Err(RegistryError::BadKey { device });
    }
    Ok(key)
}

fn lookup_of(record: &KeyRecord) -> KeyLookup {
    match record.status {
        KeyStatus::Revoked { .. } => KeyLookup::Revoked,
        // Stored keys were checked at registration; a stored key that no longer parses is
        // treated as unknown rather than trusted.
        KeyStatus::Active => VerifyingKey::from_bytes(&record.public_key)
            .map_or(KeyLookup::Unknown, KeyLookup::Active),
    }
}

impl<S: IngestStorage> DeviceRegistry<S> {
    /// A registry over the sequencer's storage, with a cache of `cache_entries_max` keys
    /// trusted for `cache_ttl_ms`.
    pub fn new(
        sequencer: SequencerHandle<S>,
        clock: Arc<dyn Clock>,
        cache_entries_max: usize,
        cache_ttl_ms: u64,
    ) -> Self {
        Self::with_metrics(
            sequencer,
            clock,
            cache_entries_max,
            cache_ttl_ms,
            Arc::new(Metrics::default()),
        )
    }

    pub(crate) fn with_metrics(
        sequencer: SequencerHandle<S>,
        clock: Arc<dyn Clock>,
        cache_entries_max: usize,
        cache_ttl_ms: u64,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                sequencer,
                clock,
                cache: Mutex::new(KeyCache {
                    entries: HashMap::new(),
                    capacity: cache_entries_max.max(1),
                    ttl_ms: cache_ttl_ms,
                }),
                writes: tokio::sync::Mutex::new(()),
                metrics,
            }),
        }
    }

    /// The storage the registry reads and writes.
    pub fn storage(&self) -> &S {
        self.inner.sequencer.storage()
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, KeyCache> {
        // The cache holds no invariant a panic could break half-way.
        self.inner
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The key to verify a reading of `device` signed at `epoch` with.
    ///
    /// # Errors
    /// [`RegistryError`] if storage fails or the record is corrupt.
    pub fn lookup(&self, device: DeviceId, epoch: KeyEpoch) -> Result<KeyLookup, RegistryError> {
        let now = self.inner.clock.now_ms();
        if let Some(found) = self.cache().get(device, epoch, now) {
            add(&self.inner.metrics.key_cache_hits, 1);
            return Ok(found);
        }
        add(&self.inner.metrics.key_cache_misses, 1);
        let key = key_record_key(device, epoch);
        let Some(value) = self.storage().read(DEVICE_KEYS, &key)? else {
            // Unknown keys are not cached: a registration must be seen at once.
            return Ok(KeyLookup::Unknown);
        };
        let lookup = lookup_of(&KeyRecord::decode(&key, &value)?);
        self.cache().put(device, epoch, lookup, now);
        Ok(lookup)
    }

    /// Every key epoch of `device`, oldest first.
    ///
    /// # Errors
    /// [`RegistryError`] if storage fails or a record is corrupt.
    pub fn keys(&self, device: DeviceId) -> Result<Vec<KeyRecord>, RegistryError> {
        let from = key_record_key(device, KeyEpoch(0));
        let mut to = device.0.to_vec();
        to.extend_from_slice(&[0xff; 5]);
        self.storage()
            .scan(DEVICE_KEYS, &from, &to, usize::MAX)?
            .iter()
            .map(|(key, value)| Ok(KeyRecord::decode(key, value)?))
            .collect()
    }

    /// Registers the first key of `device` at `epoch` (epoch 1 for a new device). Registering
    /// the same key again is a no-op.
    ///
    /// # Errors
    /// [`RegistryError::BadKey`], [`RegistryError::AlreadyRegistered`] (another key), or a
    /// submission or storage failure.
    pub async fn register_device(
        &self,
        device: DeviceId,
        epoch: KeyEpoch,
        public_key: [u8; 32],
        effective_time_ms: u64,
    ) -> Result<RegisterOutcome, RegistryError> {
        self.register_device_with(device, epoch, public_key, effective_time_ms, Vec::new())
            .await
    }

    /// [`register_device`](Self::register_device), committing `records` (the caller's own
    /// tables, e.g. the device's owner) in the same durable transaction as the key event, so
    /// neither exists without the other. Nothing of `records` is written when the key was
    /// registered before ([`RegisterOutcome::AlreadyRegistered`]) or on any error.
    ///
    /// # Errors
    /// As [`register_device`](Self::register_device); a malformed record is a submission error.
    pub async fn register_device_with(
        &self,
        device: DeviceId,
        epoch: KeyEpoch,
        public_key: [u8; 32],
        effective_time_ms: u64,
        records: Vec<SidecarRecord>,
    ) -> Result<RegisterOutcome, RegistryError> {
        let key = parse_key(device, &public_key)?;
        let _writes = self.inner.writes.lock().await;
        let existing = self.keys(device)?;
        if let Some(first) = existing.first() {
            if existing.len() == 1 && first.epoch == epoch && first.public_key == public_key {
                return Ok(RegisterOutcome::AlreadyRegistered(*first));
            }
            return Err(RegistryError::AlreadyRegistered { device });
        }
        let event = KeyEvent {
            device_id: device,
            key_epoch: epoch,
            action: KeyAction::Register,
            public_key,
            effective_time_ms,
            rotation_signature: None,
        };
        let (index, record) = self
            .submit(
                event,
                |event| KeyRecord {
                    device,
                    epoch,
                    public_key,
                    effective_time_ms,
                    event,
                    status: KeyStatus::Active,
                },
                records,
            )
            .await?;
        self.cache().put(
            device,
            epoch,
            KeyLookup::Active(key),
            self.inner.clock.now_ms(),
        );
        Ok(RegisterOutcome::Registered { index, record })
    }

    /// Rotates `device` to `new_epoch` (the epoch after its latest) with `new_key`, authorised
    /// by `rotation_signature`: the latest key's Ed25519 signature over
    /// `ledger::entry::key_rotation_message(device, new_epoch, new_key)`.
    ///
    /// # Errors
    /// [`RegistryError`] naming the rule the rotation breaks, or a submission failure.
    pub async fn rotate_key(
        &self,
        device: DeviceId,
        new_epoch: KeyEpoch,
        new_key: [u8; 32],
        effective_time_ms: u64,
        rotation_signature: [u8; 64],
    ) -> Result<(Option<LeafIndex>, KeyRecord), RegistryError> {
        let key = parse_key(device, &new_key)?;
        let _writes = self.inner.writes.lock().await;
        let existing = self.keys(device)?;
        let latest = existing.last().ok_or(RegistryError::UnknownKey {
            device,
            epoch: new_epoch.0,
        })?;
        let expected = latest.epoch.0.saturating_add(1);
        if new_epoch.0 != expected {
            return Err(RegistryError::WrongEpoch {
                device,
                expected,
                offered: new_epoch.0,
            });
        }
        let old_key = match lookup_of(latest) {
            KeyLookup::Active(old_key) => old_key,
            KeyLookup::Revoked | KeyLookup::Unknown => {
                return Err(RegistryError::BadRotation { device });
            }
        };
        let message = key_rotation_message(device, new_epoch, &new_key);
        if old_key
            .verify_strict(&message, &Signature::from_bytes(&rotation_signature))
            .is_err()
        {
            return Err(RegistryError::BadRotation { device });
        }
        let event = KeyEvent {
            device_id: device,
            key_epoch: new_epoch,
            action: KeyAction::Rotate,
            public_key: new_key,
            effective_time_ms,
            rotation_signature: Some(rotation_signature),
        };
        let (index, record) = self
            .submit(
                event,
                |event| KeyRecord {
                    device,
                    epoch: new_epoch,
                    public_key: new_key,
                    effective_time_ms,
                    event,
                    status: KeyStatus::Active,
                },
                Vec::new(),
            )
            .await?;
        self.cache().put(
            device,
            new_epoch,
            KeyLookup::Active(key),
            self.inner.clock.now_ms(),
        );
        Ok((index, record))
    }

    /// Revokes key `epoch` of `device`: readings signed with it are refused for good from now
    /// on (also readings still in the device's outbox: a stolen key can backdate).
    ///
    /// # Errors
    /// [`RegistryError::UnknownKey`], [`RegistryError::AlreadyRevoked`], or a submission or
    /// storage failure.
    pub async fn revoke_key(
        &self,
        device: DeviceId,
        epoch: KeyEpoch,
        effective_time_ms: u64,
    ) -> Result<(Option<LeafIndex>, KeyRecord), RegistryError> {
        let _writes = self.inner.writes.lock().await;
        let key = key_record_key(device, epoch);
        let Some(value) = self.storage().read(DEVICE_KEYS, &key)? else {
            return Err(RegistryError::UnknownKey {
                device,
                epoch: epoch.0,
            });
        };
        let current = KeyRecord::decode(&key, &value)?;
        if matches!(current.status, KeyStatus::Revoked { .. }) {
            return Err(RegistryError::AlreadyRevoked {
                device,
                epoch: epoch.0,
            });
        }
        let event = KeyEvent {
            device_id: device,
            key_epoch: epoch,
            action: KeyAction::Revoke,
            public_key: current.public_key,
            effective_time_ms,
            rotation_signature: None,
        };
        let result = self
            .submit(
                event,
                |event| KeyRecord {
                    status: KeyStatus::Revoked {
                        effective_time_ms,
                        event,
                    },
                    ..current
                },
                Vec::new(),
            )
            .await?;
        self.cache()
            .put(device, epoch, KeyLookup::Revoked, self.inner.clock.now_ms());
        Ok(result)
    }

    /// Registers every device of an `agritrace-device` manifest (`manifest.json`), in order;
    /// devices registered before with the same key are reported, not registered again.
    ///
    /// # Errors
    /// [`RegistryError::Manifest`] if the manifest is malformed (nothing is registered then),
    /// or the first failing registration's error.
    pub async fn import_manifest(
        &self,
        manifest_json: &str,
        effective_time_ms: u64,
    ) -> Result<Vec<(DeviceId, RegisterOutcome)>, RegistryError> {
        let devices = parse_manifest(manifest_json)?;
        let mut outcomes = Vec::with_capacity(devices.len());
        for device in devices {
            let outcome = self
                .register_device(
                    device.device,
                    device.epoch,
                    device.public_key,
                    effective_time_ms,
                )
                .await?;
            outcomes.push((device.device, outcome));
        }
        Ok(outcomes)
    }

    /// Submits a key event with its record (and the caller's `extra` records) and waits until
    /// it is durable.
    async fn submit(
        &self,
        event: KeyEvent,
        record_for: impl FnOnce(EntryLocator) -> KeyRecord,
        extra: Vec<SidecarRecord>,
    ) -> Result<(Option<LeafIndex>, KeyRecord), RegistryError> {
        let entry = Entry::KeyEvent(event).encode()?;
        let locator = EntryLocator {
            leaf_hash: leaf_hash(&entry),
            log_size_before: self.inner.sequencer.durable_state().size,
        };
        let record = record_for(locator);
        let sidecar = SidecarRecord {
            table: DEVICE_KEYS.to_owned(),
            key: record.key(),
            value: record.encode(),
        };
        let mut sidecars = vec![sidecar.clone()];
        sidecars.extend(extra);
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self
                .inner
                .sequencer
                .submit(entry.clone(), sidecars.clone())
                .await
            {
                Ok(index) => return Ok((Some(index), record)),
                Err(SubmitError::OutcomeUnknown)
                    if self.storage().read(DEVICE_KEYS, &sidecar.key)?.as_deref()
                        == Some(sidecar.value.as_slice()) =>
                {
                    // The round landed; only its answer was lost.
                    return Ok((None, record));
                }
                Err(error) if error.is_retryable() && attempt < SUBMIT_ATTEMPTS => {
                    tokio::time::sleep(Duration::from_millis(SUBMIT_BACKOFF_MS)).await;
                }
                Err(error) => return Err(error.into()),
            }
        }
    }
}

/// One device of a manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ManifestDevice {
    /// The device.
    pub device: DeviceId,
    /// Its key epoch.
    pub epoch: KeyEpoch,
    /// Its Ed25519 public key.
    pub public_key: [u8; 32],
}

/// Parses an `agritrace-device` manifest:
/// `{"format": "agritrace-device-manifest/v1", "devices": [{"device_id": "<16 hex>",
/// "key_epoch": 1, "algorithm": "ed25519", "public_key": "<64 hex>", ...}, ...]}`.
///
/// # Errors
/// [`RegistryError::Manifest`] naming the first problem.
pub fn parse_manifest(text: &str) -> Result<Vec<ManifestDevice>, RegistryError> {
    let bad = |what: String| RegistryError::Manifest(what);
    if text.len() > MANIFEST_BYTES_MAX {
        return Err(bad(format!("larger than {MANIFEST_BYTES_MAX} bytes")));
    }
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| bad(format!("not JSON: {e}")))?;
    if value["format"] != MANIFEST_FORMAT {
        return Err(bad(format!("format is not {MANIFEST_FORMAT:?}")));
    }
    let entries = value["devices"]
        .as_array()
        .ok_or_else(|| bad("no \"devices\" list".to_owned()))?;
    if entries.len() > MANIFEST_DEVICES_MAX {
        return Err(bad(format!("more than {MANIFEST_DEVICES_MAX} devices")));
    }
    let mut seen = std::collections::HashSet::new();
    entries
        .iter()
        .enumerate()
        .map(|(i, entry)| {
            let device: DeviceId = entry["device_id"]
                .as_str()
                .ok_or_else(|| bad(format!("device {i}: no device_id")))?
                .parse()
                .map_err(|e| bad(format!("device {i}: {e}")))?;
            if !seen.insert(device) {
                return Err(bad(format!("device {device} is listed twice")));
            }
            let epoch = entry["key_epoch"]
                .as_u64()
                .and_then(|e| u32::try_from(e).ok())
                .filter(|e| *e >= 1)
                .ok_or_else(|| bad(format!("device {device}: key_epoch is not 1..=2^32-1")))?;
            if entry["algorithm"] != "ed25519" {
                return Err(bad(format!(
                    "device {device}: algorithm is not \"ed25519\""
                )));
            }
            let public_key = entry["public_key"]
                .as_str()
                .and_then(parse_hex32)
                .ok_or_else(|| bad(format!("device {device}: public_key is not 64 hex digits")))?;
            Ok(ManifestDevice {
                device,
                epoch: KeyEpoch(epoch),
                public_key,
            })
        })
        .collect()
}

fn parse_hex32(text: &str) -> Option<[u8; 32]> {
    let digits = text.as_bytes();
    if digits.len() != 64 {
        return None;
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    let mut out = [0u8; 32];
    for (slot, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        *slot = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, expected: Result<usize, &str>) {
        match (parse_manifest(text), expected) {
            (Ok(devices), Ok(count)) => assert_eq!(devices.len(), count),
            (Err(RegistryError::Manifest(message)), Err(part)) => {
                assert!(message.contains(part), "{message:?} mentions {part:?}");
            }
            (outcome, expected) => panic!("{outcome:?}, expected {expected:?}"),
        }
    }

    fn manifest(devices: &str) -> String {
        format!(r#"{{"format": "agritrace-device-manifest/v1", "devices": [{devices}]}}"#)
    }

    const KEY: &str = "3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29";

    fn device(id: &str, epoch: u64, key: &str) -> String {
        format!(
            r#"{{"device_id": "{id}", "key_epoch": {epoch}, "algorithm": "ed25519", "public_key": "{key}"}}"#
        )
    }

    #[test]
    fn manifests_are_read_exactly_as_the_device_binary_writes_them() {
        check(&manifest(""), Ok(0));
        check(&manifest(&device("00000001000000a0", 1, KEY)), Ok(1));
        check(
            &manifest(&format!(
                "{},{}",
                device("00000001000000a0", 1, KEY),
                device("00000001000000a1", 1, KEY)
            )),
            Ok(2),
        );
        check("{}", Err("format"));
        check("not json", Err("not JSON"));
        check(
            &manifest(&format!(
                "{},{}",
                device("00000001000000a0", 1, KEY),
                device("00000001000000a0", 1, KEY)
            )),
            Err("twice"),
        );
        check(
            &manifest(&device("00000001000000A0", 1, KEY)),
            Err("device 0"),
        );
        check(
            &manifest(&device("00000001000000a0", 0, KEY)),
            Err("key_epoch"),
        );
        check(
            &manifest(&device("00000001000000a0", 1, "abcd")),
            Err("public_key"),
        );
        check(
            &manifest(
                r#"{"device_id": "00000001000000a0", "key_epoch": 1, "algorithm": "rsa", "public_key": "00"}"#,
            ),
            Err("algorithm"),
        );
    }

    #[test]
    fn the_cache_expires_and_stays_within_its_capacity() {
        let mut cache = KeyCache {
            entries: HashMap::new(),
            capacity: 2,
            ttl_ms: 100,
        };
        let device = |n: u8| DeviceId([n; 8]);
        cache.put(device(1), KeyEpoch(1), KeyLookup::Revoked, 0);
        assert_eq!(
            cache.get(device(1), KeyEpoch(1), 99),
            Some(KeyLookup::Revoked)
        );
        assert_eq!(cache.get(device(1), KeyEpoch(1), 100), None);
        assert_eq!(cache.get(device(1), KeyEpoch(2), 0), None);
        cache.put(device(2), KeyEpoch(1), KeyLookup::Revoked, 0);
        cache.put(device(3), KeyEpoch(1), KeyLookup::Revoked, 0);
        assert_eq!(cache.entries.len(), 2);
        assert_eq!(
            cache.get(device(3), KeyEpoch(1), 0),
            Some(KeyLookup::Revoked)
        );
    }
}
