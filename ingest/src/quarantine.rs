//! Why a reading was refused, and the quarantine record that keeps it.
//!
//! Every refused payload is stored with its reason, never silently dropped; an exact repeat
//! of a payload already quarantined (the device offering it again) is counted but not stored
//! twice. Reasons split in two kinds:
//!
//! - **for good** — no resend can cure it (undecodable, oversized, topic/device mismatch,
//!   revoked key, bad signature, conflicting replay). When the reading's device and sequence
//!   number are known (and the topic is the device's own), the device's ack names it so it
//!   leaves the outbox and stalls nothing.
//! - **retryable** — it may pass later (an unknown device or key epoch that is registered
//!   later). The device is not acked and offers the reading again.

use protocol::{DeviceId, SequenceNumber};

/// Why a reading (or a whole message) was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RejectReason {
    /// Not a well-formed uplink or signed reading (framing, version, canonical encoding,
    /// physical ranges).
    Undecodable,
    /// Larger than the wire limits (message or reading).
    Oversized,
    /// The reading names another device than the topic it came on, or the topic is not a
    /// device readings topic.
    TopicMismatch,
    /// No registered key for the reading's device and key epoch (retryable).
    UnknownDevice,
    /// The key epoch that signed the reading is revoked.
    RevokedKey,
    /// The signature does not verify under the registered key.
    BadSignature,
    /// A different reading under a sequence number the device already used.
    ConflictingReplay,
}

impl RejectReason {
    /// Every reason, in code order.
    pub const ALL: [Self; 7] = [
        Self::Undecodable,
        Self::Oversized,
        Self::TopicMismatch,
        Self::UnknownDevice,
        Self::RevokedKey,
        Self::BadSignature,
        Self::ConflictingReplay,
    ];

    /// The stored code (1..=7).
    #[must_use]
    pub fn code(self) -> u8 {
        match self {
            Self::Undecodable => 1,
            Self::Oversized => 2,
            Self::TopicMismatch => 3,
            Self::UnknownDevice => 4,
            Self::RevokedKey => 5,
            Self::BadSignature => 6,
            Self::ConflictingReplay => 7,
        }
    }

    /// The reason of a stored code.
    #[must_use]
    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.code() == code)
    }

    pub(crate) fn index(self) -> usize {
        usize::from(self.code() - 1)
    }

    /// A stable snake_case name, for metrics labels and the API.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Undecodable => "undecodable",
            Self::Oversized => "oversized",
            Self::TopicMismatch => "topic_device_mismatch",
            Self::UnknownDevice => "unknown_device",
            Self::RevokedKey => "revoked_key",
            Self::BadSignature => "bad_signature",
            Self::ConflictingReplay => "conflicting_replay",
        }
    }

    /// Whether no resend can cure it (the device's ack may then name the reading).
    #[must_use]
    pub fn is_for_good(self) -> bool {
        self != Self::UnknownDevice
    }
}

/// A refused payload as stored in quarantine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuarantineRecord {
    /// Arrival-ordered id, unique in the store.
    pub id: u64,
    /// The device the topic names, if it names one.
    pub device: Option<DeviceId>,
    /// Why it was refused.
    pub reason: RejectReason,
    /// The sequence number the reading claims, when it decoded.
    pub sequence: Option<SequenceNumber>,
    /// Ingest's clock when it arrived (Unix ms).
    pub ingest_time_ms: u64,
    /// The MQTT topic it came on.
    pub topic: String,
    /// The refused bytes (a signed reading, or the whole message when it could not be split),
    /// cut at the configured limit.
    pub bytes: Vec<u8>,
    /// Length of the refused bytes before cutting.
    pub original_len: u32,
}
