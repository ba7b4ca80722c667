//! The verifier core: MQTT topic and payload bytes in, one verdict per reading out. Pure: no
//! I/O, no clock (the ingest time is an argument), keys come from a lookup function.
//!
//! Per message: the size is checked before anything else, the uplink is split, each signed
//! reading decoded (canonical encoding only, `protocol`), the device named inside it compared
//! with the topic's, its key found by (device, key epoch), and then the signatures of every
//! reading in the group of messages are verified in one Ed25519 batch
//! ([`protocol::batch::verify_batch`]: the terms of readings signed by one key are combined,
//! so a backlog of 16 readings costs one key point, not 16). When the batch fails,
//! each is verified on its own with `verify_strict` to find the bad ones.
//!
//! Batch and strict verification agree: both use the cofactorless equation; `verify_strict`
//! additionally refuses weak keys (refused at registration, see `registry`), non-canonical
//! `s` (refused by both), and a small-order or non-canonically encoded `R`, which is checked
//! here before a signature goes into a batch (such a signature goes to `verify_strict` alone).

use ed25519_dalek::Signature;
use ledger::merkle::{Hash, leaf_hash};
use protocol::limits::UPLINK_BYTES_MAX;
use protocol::{
    DecodeError, DeviceId, KeyEpoch, SequenceNumber, SignedReading, Uplink, UplinkError,
    VerifyingKey, limits::SIGNED_MESSAGE_BYTES_MAX, topic,
};

use crate::quarantine::RejectReason;
use crate::registry::KeyLookup;

/// Limits the verifier applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifyLimits {
    /// Flag readings whose device time is further than this from the ingest time.
    pub clock_skew_max_ms: u64,
    /// Bytes of a refused payload kept for quarantine.
    pub quarantine_bytes_max: usize,
}

/// A reading that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptedReading {
    /// The device (the topic's and the reading's).
    pub device: DeviceId,
    /// Its sequence number.
    pub sequence: SequenceNumber,
    /// The device's clock when it sampled (Unix ms).
    pub device_time_ms: u64,
    /// The exact signed bytes.
    pub signed: Vec<u8>,
    /// `leaf_hash(signed)`: its leaf in the batch tree.
    pub leaf: Hash,
    /// Ingest's clock when the message arrived (Unix ms).
    pub ingest_time_ms: u64,
    /// Device clock off by more than the bound.
    pub clock_skewed: bool,
}

/// A refused reading (or message), bound for quarantine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Why.
    pub reason: RejectReason,
    /// The device the topic names, if it names one.
    pub device: Option<DeviceId>,
    /// The sequence number the reading claims, when it decoded.
    pub sequence: Option<SequenceNumber>,
    /// Whether the device's ack may name it: refused for good, decoded, on its own topic.
    pub ackable: bool,
    /// The MQTT topic.
    pub topic: String,
    /// The refused bytes, cut at `quarantine_bytes_max`.
    pub bytes: Vec<u8>,
    /// Their length before cutting.
    pub original_len: u32,
    /// Ingest's clock when the message arrived (Unix ms).
    pub ingest_time_ms: u64,
}

/// What happens to one reading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Goes on to deduplication and batching.
    Accepted(AcceptedReading),
    /// Goes to quarantine.
    Rejected(Rejection),
    /// Could not be judged now (the key table could not be read): neither stored nor acked to
    /// the device, which offers it again.
    Deferred,
}

/// What a group verification did, for the metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VerifyStats {
    /// Batch verifications run.
    pub batches: u64,
    /// Batches that failed and were retried one by one.
    pub fallbacks: u64,
}

/// Verifies `items` (signature over the signed message, key): one batch when possible, then
/// one by one if the batch fails. Returns whether each verified.
fn verify_signatures(
    items: &[(SignedReading<'_>, VerifyingKey)],
    stats: &mut VerifyStats,
) -> Vec<bool> {
    let mut ok: Vec<Option<bool>> = vec![None; items.len()];
    let batchable: Vec<usize> = (0..items.len())
        .filter(|&i| protocol::r_is_strict(items[i].0.signature()))
        .collect();
    if !batchable.is_empty() {
        let mut buffers = vec![[0u8; SIGNED_MESSAGE_BYTES_MAX]; batchable.len()];
        let mut messages: Vec<&[u8]> = Vec::with_capacity(batchable.len());
        for (buffer, &i) in buffers.iter_mut().zip(&batchable) {
            messages.push(items[i].0.signed_message(buffer));
        }
        let signatures: Vec<Signature> =
            batchable.iter().map(|&i| *items[i].0.signature()).collect();
        let keys: Vec<VerifyingKey> = batchable.iter().map(|&i| items[i].1).collect();
        stats.batches += 1;
        if protocol::batch::verify_batch(&messages, &signatures, &keys).is_ok() {
            for &i in &batchable {
                ok[i] = Some(true);
            }
        } else {
            stats.fallbacks += 1;
        }
    }
    items
        .iter()
        .zip(ok)
        .map(|((signed, key), ok)| ok.unwrap_or_else(|| signed.verify(key).is_ok()))
        .collect()
}

fn cut(bytes: &[u8], limits: &VerifyLimits) -> (Vec<u8>, u32) {
    let kept = &bytes[..bytes.len().min(limits.quarantine_bytes_max)];
    (
        kept.to_vec(),
        u32::try_from(bytes.len()).unwrap_or(u32::MAX),
    )
}

fn uplink_reason(error: UplinkError) -> RejectReason {
    match error {
        UplinkError::TooLarge { .. } | UplinkError::ReadingTooLarge { .. } => {
            RejectReason::Oversized
        }
        _ => RejectReason::Undecodable,
    }
}

fn reading_reason(error: DecodeError) -> RejectReason {
    match error {
        DecodeError::TooLarge { .. } | DecodeError::BodyTooLarge { .. } => RejectReason::Oversized,
        _ => RejectReason::Undecodable,
    }
}

/// One message of a group: its topic, payload and arrival time.
#[derive(Debug, Clone, Copy)]
pub struct MessageIn<'a> {
    /// The MQTT topic.
    pub topic: &'a str,
    /// The payload.
    pub payload: &'a [u8],
    /// Ingest's clock when it arrived (Unix ms).
    pub ingest_time_ms: u64,
}

enum Slot<'a> {
    Done(Verdict),
    Verify(usize, SignedReading<'a>),
}

/// Judges every reading of a group of messages; `verdicts[m]` lists message `m`'s readings in
/// message order (a message that could not be split has one verdict). `keys` answers key
/// lookups (`Err` defers the reading).
pub fn verify_group<E>(
    messages: &[MessageIn<'_>],
    mut keys: impl FnMut(DeviceId, KeyEpoch) -> Result<KeyLookup, E>,
    limits: &VerifyLimits,
    stats: &mut VerifyStats,
) -> Vec<Vec<Verdict>> {
    let mut slots: Vec<Vec<Slot<'_>>> = Vec::with_capacity(messages.len());
    let mut to_verify: Vec<(SignedReading<'_>, VerifyingKey)> = Vec::new();
    for message in messages {
        let reject = |reason, device, sequence, ackable, bytes: &[u8]| {
            let (bytes, original_len) = cut(bytes, limits);
            Slot::Done(Verdict::Rejected(Rejection {
                reason,
                device,
                sequence,
                ackable,
                topic: message.topic.to_owned(),
                bytes,
                original_len,
                ingest_time_ms: message.ingest_time_ms,
            }))
        };
        let Ok(topic_device) = topic::parse_readings_topic(message.topic) else {
            slots.push(vec![reject(
                RejectReason::TopicMismatch,
                None,
                None,
                false,
                message.payload,
            )]);
            continue;
        };
        let device = Some(topic_device);
        if message.payload.len() > UPLINK_BYTES_MAX {
            slots.push(vec![reject(
                RejectReason::Oversized,
                device,
                None,
                false,
                message.payload,
            )]);
            continue;
        }
        let uplink = match Uplink::decode(message.payload) {
            Ok(uplink) => uplink,
            Err(error) => {
                slots.push(vec![reject(
                    uplink_reason(error),
                    device,
                    None,
                    false,
                    message.payload,
                )]);
                continue;
            }
        };
        let mut message_slots = Vec::with_capacity(uplink.len());
        for bytes in uplink.readings() {
            let signed = match SignedReading::decode(bytes) {
                Ok(signed) => signed,
                Err(error) => {
                    message_slots.push(reject(reading_reason(error), device, None, false, bytes));
                    continue;
                }
            };
            let reading = signed.reading();
            let sequence = Some(reading.sequence);
            if reading.device != topic_device {
                message_slots.push(reject(
                    RejectReason::TopicMismatch,
                    device,
                    sequence,
                    false,
                    bytes,
                ));
                continue;
            }
            match keys(reading.device, reading.key_epoch) {
                Ok(KeyLookup::Active(key)) => {
                    message_slots.push(Slot::Verify(to_verify.len(), signed));
                    to_verify.push((signed, key));
                }
                Ok(KeyLookup::Revoked) => {
                    message_slots.push(reject(
                        RejectReason::RevokedKey,
                        device,
                        sequence,
                        true,
                        bytes,
                    ));
                }
                Ok(KeyLookup::Unknown) => {
                    message_slots.push(reject(
                        RejectReason::UnknownDevice,
                        device,
                        sequence,
                        false,
                        bytes,
                    ));
                }
                Err(_) => message_slots.push(Slot::Done(Verdict::Deferred)),
            }
        }
        slots.push(message_slots);
    }
    let verified = verify_signatures(&to_verify, stats);
    messages
        .iter()
        .zip(slots)
        .map(|(message, message_slots)| {
            message_slots
                .into_iter()
                .map(|slot| match slot {
                    Slot::Done(verdict) => verdict,
                    Slot::Verify(i, signed) => {
                        let reading = signed.reading();
                        if verified[i] {
                            let skew = reading.device_time_ms.abs_diff(message.ingest_time_ms);
                            Verdict::Accepted(AcceptedReading {
                                device: reading.device,
                                sequence: reading.sequence,
                                device_time_ms: reading.device_time_ms,
                                signed: signed.as_bytes().to_vec(),
                                leaf: leaf_hash(signed.as_bytes()),
                                ingest_time_ms: message.ingest_time_ms,
                                clock_skewed: skew > limits.clock_skew_max_ms,
                            })
                        } else {
                            let (bytes, original_len) = cut(signed.as_bytes(), limits);
                            Verdict::Rejected(Rejection {
                                reason: RejectReason::BadSignature,
                                device: Some(reading.device),
                                sequence: Some(reading.sequence),
                                ackable: true,
                                topic: message.topic.to_owned(),
                                bytes,
                                original_len,
                                ingest_time_ms: message.ingest_time_ms,
                            })
                        }
                    }
                })
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests;
