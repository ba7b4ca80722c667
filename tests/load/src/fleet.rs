//! The simulated fleet: device identities and keys derived from their index (so that the
//! manifest written before the node starts and the keys used in every later run agree without
//! storing a secret), the `agritrace-device-manifest/v1` the node imports, and the traffic
//! plan: every reading of a run encoded, signed and framed as an uplink message before the
//! timed phase, so that signing never competes with the node for the CPU.

use std::fmt::Write as _;

use anyhow::{Context, Result, bail};
use protocol::limits::{BACKLOG_READINGS_MAX, SIGNED_READING_BYTES_MAX, UPLINK_BYTES_MAX};
use protocol::{
    DeviceId, DoorState, GeoPosition, KeyEpoch, Reading, SequenceNumber, SigningKey, UplinkWriter,
    VerifyingKey, encode_signed_reading, topic,
};
use sha2::{Digest, Sha256};

/// The first four bytes of every load-test device id (the last four are its index).
pub const FLEET_PREFIX: [u8; 4] = [0xa9, 0x10, 0xad, 0x00];
/// Domain of the key derivation, so these keys never collide with other simulated devices'.
const SEED_DOMAIN: &[u8] = b"agritrace-load/device-key/v1";
/// The manifest format the node imports (ingest's `registry::MANIFEST_FORMAT`).
const MANIFEST_FORMAT: &str = "agritrace-device-manifest/v1";
/// Most devices of a fleet (the node imports at most 100,000 per manifest).
pub const DEVICES_MAX: u32 = 100_000;

/// The id of device `index`.
#[must_use]
pub fn device_id(index: u32) -> DeviceId {
    let mut id = [0u8; 8];
    id[..4].copy_from_slice(&FLEET_PREFIX);
    id[4..].copy_from_slice(&index.to_be_bytes());
    DeviceId(id)
}

/// The index of a fleet device, `None` for any other id.
#[must_use]
pub fn device_index(id: DeviceId) -> Option<u32> {
    if id.0[..4] != FLEET_PREFIX {
        return None;
    }
    Some(u32::from_be_bytes([id.0[4], id.0[5], id.0[6], id.0[7]]))
}

/// The signing key of device `index`: SHA-256 of a fixed domain and the index.
#[must_use]
pub fn signing_key(index: u32) -> SigningKey {
    let seed: [u8; 32] = Sha256::new()
        .chain_update(SEED_DOMAIN)
        .chain_update(index.to_be_bytes())
        .finalize()
        .into();
    SigningKey::from_bytes(&seed)
}

/// One simulated device.
#[derive(Debug, Clone)]
pub struct Device {
    /// Its id.
    pub id: DeviceId,
    /// Its key (epoch 1).
    pub key: SigningKey,
    /// Its readings topic.
    pub topic: String,
}

/// The devices of a run, indexed `0..count`.
#[derive(Debug, Clone)]
pub struct Fleet {
    devices: Vec<Device>,
}

impl Fleet {
    /// Devices `0..count`.
    ///
    /// # Errors
    /// If `count` is 0 or above [`DEVICES_MAX`].
    pub fn new(count: u32) -> Result<Self> {
        if !(1..=DEVICES_MAX).contains(&count) {
            bail!("the fleet needs 1..={DEVICES_MAX} devices, not {count}");
        }
        let devices = (0..count)
            .map(|index| {
                let id = device_id(index);
                Device {
                    id,
                    key: signing_key(index),
                    topic: topic::readings_topic(id).to_string(),
                }
            })
            .collect();
        Ok(Self { devices })
    }

    /// The devices.
    #[must_use]
    pub fn devices(&self) -> &[Device] {
        &self.devices
    }

    /// How many devices.
    #[must_use]
    pub fn count(&self) -> u32 {
        // `new` bounds the count by DEVICES_MAX.
        u32::try_from(self.devices.len()).unwrap_or(u32::MAX)
    }

    /// The manifest of devices `range` in the format `agritrace-device` writes and
    /// `agritrace device import` reads (public keys only).
    #[must_use]
    pub fn manifest(&self, range: std::ops::Range<usize>) -> String {
        let devices: Vec<serde_json::Value> = self.devices[range]
            .iter()
            .map(|device| {
                serde_json::json!({
                    "device_id": device.id.to_string(),
                    "key_epoch": 1,
                    "algorithm": "ed25519",
                    "public_key": hex(device.key.verifying_key().as_bytes()),
                    "readings_topic": device.topic,
                    "acks_topic": topic::acks_topic(device.id).as_str(),
                })
            })
            .collect();
        serde_json::json!({ "format": MANIFEST_FORMAT, "devices": devices }).to_string()
    }
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        let _ = write!(out, "{byte:02x}");
    }
    out
}

/// One MQTT message of the plan: `count` readings of one device, sequence offsets
/// `first..first + count` above the plan's base.
#[derive(Debug, Clone)]
pub struct Message {
    /// Index of the device.
    pub device: u32,
    /// Offset of its first reading's sequence number from the plan's base.
    pub first: u32,
    /// Readings in it.
    pub count: u16,
    /// The uplink bytes.
    pub payload: Vec<u8>,
}

/// Every message of a run, signed in advance. Message `m` belongs to device `m % devices`
/// and holds that device's readings `(m / devices) * per_message ..` (so consecutive messages
/// go to different devices, as a fleet's traffic does).
#[derive(Debug, Clone)]
pub struct Plan {
    /// The messages, in the order they are offered.
    pub messages: Vec<Message>,
    /// Readings per message (1: a single-reading message; more: a backlog message).
    pub per_message: u16,
    /// Sequence number of offset 0.
    pub sequence_base: u64,
    /// Offsets a device may use (every offset is below this).
    pub offsets_per_device: u32,
}

impl Plan {
    /// Readings in the plan.
    #[must_use]
    pub fn readings(&self) -> u64 {
        self.messages.iter().map(|m| u64::from(m.count)).sum()
    }
}

/// What the readings of a plan look like.
#[derive(Debug, Clone, Copy)]
pub struct PlanShape {
    /// At least this many readings (rounded up to whole messages).
    pub readings: u64,
    /// Readings per message, 1..=50.
    pub per_message: u16,
    /// Sequence number of the first reading of every device.
    pub sequence_base: u64,
    /// Device time of the readings (Unix ms).
    pub device_time_ms: u64,
    /// Signing threads.
    pub threads: usize,
}

/// A plausible reefer reading of device `device`, the `offset`-th of the plan.
fn reading(id: DeviceId, sequence: u64, offset: u32, device_time_ms: u64) -> Reading {
    let wobble = i16::try_from(offset % 97).unwrap_or(0);
    Reading {
        device: id,
        key_epoch: KeyEpoch(1),
        sequence: SequenceNumber(sequence),
        device_time_ms: device_time_ms + u64::from(offset),
        temperature_centi_c: 350 + wobble,
        humidity_centi_pct: 9_100,
        position: Some(GeoPosition {
            lat_e7: 221_234_567,
            lon_e7: 1_134_567_890,
        }),
        door: DoorState::Closed,
        shock_events: 0,
        battery_mv: 3_600,
        dropped_samples: 0,
    }
}

/// Signs every reading of a plan on `shape.threads` threads.
///
/// # Errors
/// If the shape is out of range or a reading does not encode (a bug).
pub fn sign_plan(fleet: &Fleet, shape: PlanShape) -> Result<Plan> {
    let k = u64::from(shape.per_message);
    if !(1..=BACKLOG_READINGS_MAX).contains(&usize::from(shape.per_message)) {
        bail!(
            "readings per message must be 1..={BACKLOG_READINGS_MAX}, not {}",
            shape.per_message
        );
    }
    let devices = u64::from(fleet.count());
    let message_count = shape.readings.div_ceil(k).max(1);
    let rounds = message_count.div_ceil(devices);
    let offsets_per_device = u32::try_from(rounds * k)
        .context("too many readings per device for one run (at most 2^32)")?;
    if shape
        .sequence_base
        .checked_add(u64::from(offsets_per_device))
        .is_none()
    {
        bail!("the sequence base leaves no room for the run's readings");
    }
    let threads = u64::try_from(shape.threads.max(1)).unwrap_or(1);
    let per_thread = message_count.div_ceil(threads);
    let chunks: Vec<Result<Vec<Message>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let start = t * per_thread;
                let end = ((t + 1) * per_thread).min(message_count);
                scope.spawn(move || {
                    (start..end)
                        .map(|m| sign_message(fleet, &shape, m))
                        .collect()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a signing thread panicked")))
            })
            .collect()
    });
    let mut messages = Vec::with_capacity(usize::try_from(message_count).unwrap_or(0));
    for chunk in chunks {
        messages.extend(chunk?);
    }
    Ok(Plan {
        messages,
        per_message: shape.per_message,
        sequence_base: shape.sequence_base,
        offsets_per_device,
    })
}

fn sign_message(fleet: &Fleet, shape: &PlanShape, m: u64) -> Result<Message> {
    let devices = u64::from(fleet.count());
    let device = u32::try_from(m % devices).context("device index")?;
    let first =
        u32::try_from((m / devices) * u64::from(shape.per_message)).context("sequence offset")?;
    let entry = &fleet.devices()[usize::try_from(device).context("device index")?];
    let mut signed = [0u8; SIGNED_READING_BYTES_MAX];
    let mut buffer = vec![0u8; UPLINK_BYTES_MAX];
    let sign = |offset: u32, out: &mut [u8; SIGNED_READING_BYTES_MAX]| -> Result<usize> {
        let sequence = shape.sequence_base + u64::from(offset);
        encode_signed_reading(
            &reading(entry.id, sequence, offset, shape.device_time_ms),
            &entry.key,
            out,
        )
        .map_err(|e| anyhow::anyhow!("signing a reading failed: {e}"))
    };
    let payload = if shape.per_message == 1 {
        let len = sign(first, &mut signed)?;
        UplinkWriter::single(&mut buffer, &signed[..len])
            .map_err(|e| anyhow::anyhow!("framing a reading failed: {e}"))?
            .to_vec()
    } else {
        let mut writer = UplinkWriter::backlog(&mut buffer)
            .map_err(|e| anyhow::anyhow!("framing a backlog failed: {e}"))?;
        for offset in first..first + u32::from(shape.per_message) {
            let len = sign(offset, &mut signed)?;
            writer
                .push(&signed[..len])
                .map_err(|e| anyhow::anyhow!("framing a backlog failed: {e}"))?;
        }
        writer
            .finish()
            .context("an empty backlog message")?
            .to_vec()
    };
    Ok(Message {
        device,
        first,
        count: shape.per_message,
        payload,
    })
}

/// The verification inputs of every reading of a plan: the signed message
/// (`SIGNING_DOMAIN || body`), the signature and the device's key, as ingest hands them to
/// `verify_batch`.
///
/// # Errors
/// If a message of the plan does not decode (a bug).
pub fn verification_inputs(
    fleet: &Fleet,
    plan: &Plan,
) -> Result<Vec<(Vec<u8>, ed25519_dalek::Signature, VerifyingKey)>> {
    let keys: Vec<VerifyingKey> = fleet
        .devices()
        .iter()
        .map(|d| d.key.verifying_key())
        .collect();
    let mut inputs = Vec::new();
    for message in &plan.messages {
        let uplink = protocol::Uplink::decode(&message.payload)
            .map_err(|e| anyhow::anyhow!("a planned message does not decode: {e}"))?;
        for bytes in uplink.readings() {
            let signed = protocol::SignedReading::decode(bytes)
                .map_err(|e| anyhow::anyhow!("a planned reading does not decode: {e}"))?;
            let mut buffer = [0u8; protocol::limits::SIGNED_MESSAGE_BYTES_MAX];
            let signed_message = signed.signed_message(&mut buffer).to_vec();
            let key = keys[usize::try_from(message.device).context("device index")?];
            inputs.push((signed_message, *signed.signature(), key));
        }
    }
    Ok(inputs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(readings: u64, per_message: u16) -> PlanShape {
        PlanShape {
            readings,
            per_message,
            sequence_base: 1_000,
            device_time_ms: 1_780_000_000_000,
            threads: 2,
        }
    }

    #[test]
    fn device_ids_carry_their_index_and_nothing_else_matches() {
        assert_eq!(device_id(258).to_string(), "a910ad0000000102");
        assert_eq!(device_index(device_id(258)), Some(258));
        assert_eq!(device_index(DeviceId([0xa9, 0, 0, 0, 0, 0, 1, 2])), None);
    }

    #[test]
    fn keys_are_deterministic_and_distinct() {
        assert_eq!(signing_key(7).to_bytes(), signing_key(7).to_bytes());
        assert_ne!(signing_key(7).to_bytes(), signing_key(8).to_bytes());
    }

    #[test]
    fn the_manifest_is_what_the_node_imports() {
        let fleet = Fleet::new(5).unwrap();
        let parsed = ingest::registry::parse_manifest(&fleet.manifest(1..4)).unwrap();
        assert_eq!(parsed.len(), 3);
        assert_eq!(parsed[0].device, device_id(1));
        assert_eq!(
            parsed[2].public_key,
            signing_key(3).verifying_key().to_bytes()
        );
        assert!(Fleet::new(0).is_err());
        assert!(Fleet::new(DEVICES_MAX + 1).is_err());
    }

    #[test]
    fn a_single_reading_plan_spreads_readings_over_devices() {
        let fleet = Fleet::new(3).unwrap();
        let plan = sign_plan(&fleet, shape(7, 1)).unwrap();
        let layout: Vec<(u32, u32)> = plan.messages.iter().map(|m| (m.device, m.first)).collect();
        assert_eq!(
            layout,
            [(0, 0), (1, 0), (2, 0), (0, 1), (1, 1), (2, 1), (0, 2)]
        );
        assert_eq!(plan.readings(), 7);
        assert_eq!(plan.offsets_per_device, 3);
        let inputs = verification_inputs(&fleet, &plan).unwrap();
        assert_eq!(inputs.len(), 7);
        for (message, signature, key) in &inputs {
            key.verify_strict(message, signature).unwrap();
        }
    }

    #[test]
    fn a_backlog_plan_holds_consecutive_readings_per_message() {
        let fleet = Fleet::new(2).unwrap();
        let plan = sign_plan(&fleet, shape(40, 16)).unwrap();
        // 40 readings round up to 3 messages of 16.
        assert_eq!(plan.messages.len(), 3);
        assert_eq!(plan.readings(), 48);
        let uplink = protocol::Uplink::decode(&plan.messages[2].payload).unwrap();
        assert_eq!(uplink.len(), 16);
        let sequences: Vec<u64> = uplink
            .readings()
            .map(|b| {
                protocol::SignedReading::decode(b)
                    .unwrap()
                    .reading()
                    .sequence
                    .0
            })
            .collect();
        assert_eq!(sequences, (1_016..1_032).collect::<Vec<u64>>());
        assert_eq!(plan.messages[2].device, 0);
        assert!(sign_plan(&fleet, shape(10, 51)).is_err());
        assert!(sign_plan(&fleet, shape(10, 0)).is_err());
    }
}
