//! MQTT topic names. One readings topic and one acks topic per device, so that the broker's
//! ACLs can tie a device's credentials to its own topics and the backend can check that the
//! device named inside a reading is the one whose topic carried it.

use core::fmt::Write;

use crate::DeviceId;

/// Prefix of every device topic.
pub const DEVICES_PREFIX: &str = "agritrace/v1/devices/";
/// Filter matching every device's readings topic.
pub const READINGS_FILTER: &str = "agritrace/v1/devices/+/readings";
/// The same filter as a shared subscription, so several ingest workers split the load.
pub const READINGS_SHARED_FILTER: &str = "$share/ingest/agritrace/v1/devices/+/readings";

const READINGS_SUFFIX: &str = "/readings";
const ACKS_SUFFIX: &str = "/acks";

/// Longest topic name: prefix + 16 hex digits + "/readings".
pub const TOPIC_BYTES_MAX: usize =
    DEVICES_PREFIX.len() + DeviceId::TEXT_LEN + READINGS_SUFFIX.len();

/// A topic name held without allocation.
pub type Topic = heapless::String<TOPIC_BYTES_MAX>;

/// Why a topic name does not name a device topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    #[error("not an agritrace v1 device topic")]
    NotADeviceTopic,
    #[error("the device id in the topic is not 16 lowercase hex digits")]
    BadDeviceId,
}

/// `agritrace/v1/devices/{id}/readings`
pub fn readings_topic(device: DeviceId) -> Topic {
    topic(device, READINGS_SUFFIX)
}

/// `agritrace/v1/devices/{id}/acks`
pub fn acks_topic(device: DeviceId) -> Topic {
    topic(device, ACKS_SUFFIX)
}

/// The device a readings topic belongs to.
pub fn parse_readings_topic(topic: &str) -> Result<DeviceId, TopicError> {
    parse(topic, READINGS_SUFFIX)
}

/// The device an acks topic belongs to.
pub fn parse_acks_topic(topic: &str) -> Result<DeviceId, TopicError> {
    parse(topic, ACKS_SUFFIX)
}

fn topic(device: DeviceId, suffix: &str) -> Topic {
    let mut out = Topic::new();
    // Capacity is computed for the longest suffix; writes cannot fail.
    let _ = write!(out, "{DEVICES_PREFIX}{device}{suffix}");
    debug_assert_eq!(
        out.len(),
        DEVICES_PREFIX.len() + DeviceId::TEXT_LEN + suffix.len()
    );
    out
}

fn parse(topic: &str, suffix: &str) -> Result<DeviceId, TopicError> {
    let id = topic
        .strip_prefix(DEVICES_PREFIX)
        .and_then(|rest| rest.strip_suffix(suffix))
        .ok_or(TopicError::NotADeviceTopic)?;
    id.parse().map_err(|_| TopicError::BadDeviceId)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEVICE: DeviceId = DeviceId([0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 1]);

    #[test]
    fn topics_are_built_and_parsed_back() {
        assert_eq!(
            readings_topic(DEVICE),
            "agritrace/v1/devices/deadbeef00000001/readings"
        );
        assert_eq!(
            acks_topic(DEVICE),
            "agritrace/v1/devices/deadbeef00000001/acks"
        );
        assert_eq!(parse_readings_topic(&readings_topic(DEVICE)), Ok(DEVICE));
        assert_eq!(parse_acks_topic(&acks_topic(DEVICE)), Ok(DEVICE));
    }

    #[test]
    fn other_topics_are_refused() {
        let check = |topic: &str, expected| assert_eq!(parse_readings_topic(topic), expected);
        check(
            "agritrace/v1/devices/deadbeef00000001/acks",
            Err(TopicError::NotADeviceTopic),
        );
        check(
            "agritrace/v2/devices/deadbeef00000001/readings",
            Err(TopicError::NotADeviceTopic),
        );
        check(
            "agritrace/v1/devices/DEADBEEF00000001/readings",
            Err(TopicError::BadDeviceId),
        );
        check(
            "agritrace/v1/devices/+/readings",
            Err(TopicError::BadDeviceId),
        );
        check(
            "agritrace/v1/devices/a/b/readings",
            Err(TopicError::BadDeviceId),
        );
    }
}
