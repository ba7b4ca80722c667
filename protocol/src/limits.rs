//! Hard size limits of the wire format. Every decoder checks them before doing any work, and
//! the backend refuses (and quarantines) anything above them.
//!
//! The figures follow from the encodings: a [`crate::Reading`] body is at most 62 bytes of
//! postcard (8-byte device id, varints at their widest), so 64 leaves no slack for a
//! malicious body to hide extra data in, and keeps the body's length prefix to one byte.

/// Largest accepted postcard body of a reading.
pub const BODY_BYTES_MAX: usize = 64;

/// Largest accepted signed reading: version (1) + body length (1) + body + signature (64).
pub const SIGNED_READING_BYTES_MAX: usize = 1 + 1 + BODY_BYTES_MAX + 64;

/// Largest number of readings in one backlog message.
pub const BACKLOG_READINGS_MAX: usize = 50;

/// Largest uplink message (one MQTT payload). Below rumqttc's default 10 KiB packet limit with
/// room for the topic and MQTT header.
pub const UPLINK_BYTES_MAX: usize = 8 * 1024;

/// Largest number of sequence ranges in one ack.
pub const ACK_RANGES_MAX: usize = 32;

/// Largest ack message: version (1) + device (8) + count (1) + ranges of two u64 varints (<= 20).
pub const ACK_BYTES_MAX: usize = 1 + 8 + 1 + ACK_RANGES_MAX * 20;

/// Length of the message that is signed: domain + body.
pub const SIGNED_MESSAGE_BYTES_MAX: usize = crate::SIGNING_DOMAIN.len() + BODY_BYTES_MAX;

const _: () = assert!(
    BODY_BYTES_MAX < 128,
    "the body length must fit one varint byte"
);
const _: () = assert!(BACKLOG_READINGS_MAX < 128, "the backlog count is one byte");
const _: () = assert!(
    2 + BACKLOG_READINGS_MAX * (2 + SIGNED_READING_BYTES_MAX) <= UPLINK_BYTES_MAX,
    "a full backlog must fit one uplink message"
);
