//! `IngestConfig`: every setting of the ingest service, documented, bounded and validated
//! once at start. Every default works on a laptop against a local Mosquitto.

use protocol::limits::UPLINK_BYTES_MAX;
use protocol::topic;

/// Hard ceiling on MQTT worker connections.
pub const WORKERS_CEILING: usize = 64;
/// Hard ceiling on a batch's readings (the sequencer takes at most 1,024 sidecar records per
/// entry, and a batch needs one per reading plus its bookkeeping rows).
pub const BATCH_READINGS_CEILING: usize = 800;
/// Hard ceiling on every queue depth.
pub const QUEUE_DEPTH_CEILING: usize = 65_536;

/// The username and password ingest presents to the broker (the password is never printed).
#[derive(Clone, PartialEq, Eq)]
pub struct BrokerLogin {
    /// The username.
    pub username: String,
    /// The password.
    pub password: String,
}

impl std::fmt::Debug for BrokerLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerLogin")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Settings of the ingest service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestConfig {
    /// MQTT broker host name or address. Default `127.0.0.1`.
    pub broker_host: String,
    /// MQTT broker port. Default 1883.
    pub broker_port: u16,
    /// The login presented at CONNECT, when the broker asks for one. Default none.
    pub broker_login: Option<BrokerLogin>,
    /// Prefix of the MQTT client ids: worker `i` is `{prefix}-{i}`, the ack publisher
    /// `{prefix}-acks`. 1..=40 characters of `[A-Za-z0-9_-]`. Default `agritrace-ingest`.
    pub client_id_prefix: String,
    /// The subscription filter, a shared subscription so that the workers (and other ingest
    /// processes) split the load. Default `$share/ingest/agritrace/v1/devices/+/readings`.
    pub subscription: String,
    /// MQTT worker connections on the shared subscription. 1..=64. Default 2.
    pub workers: usize,
    /// MQTT keep-alive in seconds. 5..=3600. Default 30.
    pub keep_alive_secs: u64,
    /// Longest wait between reconnection attempts (the wait doubles from 100 ms). 100..=60,000.
    /// Default 5,000.
    pub reconnect_backoff_max_ms: u64,
    /// Largest MQTT packet a worker accepts. A larger one closes the connection (the broker's
    /// own limit should be lower); messages between the uplink limit and this size are
    /// received and quarantined as oversized. `UPLINK_BYTES_MAX + 1024`..=1 MiB. Default 64 KiB.
    pub incoming_packet_bytes_max: usize,
    /// Messages one worker holds that are not yet acknowledged to the broker. When all are
    /// taken the worker stops reading from the broker (which holds the rest). 1..=65,536.
    /// Default 4,096: a message is held until its batch is durable (batch window plus a
    /// sequencer round, 100–300 ms), so a worker's rate is at most this over that time;
    /// 4,096 lets two workers take 25,000 single-reading messages a second (the broker's own
    /// in-flight limit per connection must be as high to get there).
    pub worker_messages_in_flight_max: usize,
    /// Messages queued between a worker and its verifier. 1..=65,536. Default 1,024: a
    /// verifier takes whatever is queued (up to `verify_readings_max` readings) as one batch,
    /// so under load this queue is what lets single-reading messages form large batches.
    pub verifier_queue_depth: usize,
    /// Most readings verified in one Ed25519 batch. 1..=4,096. Default 512: a batch's cost
    /// per signature falls with its size (one thread, distinct keys: 50,300 signatures/s in
    /// batches of 32, 70,700 in 256, 78,700 in 512, 85,000 in 1,024, measured with
    /// `agritrace-load verify-ceiling`); a batch is only as large as what is queued, so a
    /// lightly loaded node still verifies each message at once.
    pub verify_readings_max: usize,
    /// Verified groups of messages (one verifier batch each) queued for the batcher.
    /// 1..=65,536. Default 256.
    pub batcher_queue_depth: usize,
    /// A batch closes once it holds this many readings (a message's readings are never
    /// split, so a batch may pass it by less than one message). 1..=800. Default 500.
    pub batch_readings_max: usize,
    /// A batch closes this long after its first message at the latest. 1..=60,000. Default 200.
    pub batch_window_ms: u64,
    /// Closed batches submitted to the sequencer and not yet committed. When all are taken
    /// the batcher stops taking messages. 1..=1,024. Default 64: a sequencer round commits
    /// what is in flight, so this times `batch_readings_max` over the round period bounds
    /// throughput (16 capped a node at 16 x 500 / 100 ms = 80,000 readings/s, measured),
    /// and 64 x 500 readings in flight stays under `device_ack_held_max`.
    pub batches_in_flight_max: usize,
    /// Wait before resubmitting a batch the sequencer refused for a retryable reason.
    /// 1..=60,000. Default 100.
    pub retry_backoff_ms: u64,
    /// A reading whose device time differs from the ingest time by more than this is flagged
    /// (not refused). 1..=31,536,000,000 (a year). Default 300,000 (five minutes).
    pub clock_skew_max_ms: u64,
    /// Device keys held in the cache. 1..=10,000,000. Default 100,000.
    pub key_cache_entries_max: usize,
    /// How long a cached key is trusted before it is read again (a revocation made by another
    /// process is seen within this time; revocations through this process's registry are
    /// seen at once). 1..=3,600,000. Default 60,000.
    pub key_cache_ttl_ms: u64,
    /// Bytes of a rejected payload kept in quarantine (the rest is cut; the original length
    /// is kept). 256..=1 MiB. Default 8 KiB.
    pub quarantine_bytes_max: usize,
    /// Sequence numbers due in device acks and not yet published, at most. Acks leave as soon
    /// as their round is durable while the broker keeps up; when it falls behind they are
    /// held and merged (one ack per device covers everything due), and once this many are
    /// held the batcher takes no new messages until they leave: ingest slows its intake
    /// (the broker holds the backlog) rather than drop acks. 1..=1,048,576. Default 65,536:
    /// a few seconds of a busy node's readings, and above what one round can complete
    /// (`batches_in_flight_max` x `batch_readings_max`), so that a broker that keeps up
    /// never pauses intake.
    pub device_ack_held_max: usize,
    /// Least time between two publications of held device acks. 0 publishes each round's
    /// acks as soon as it is durable (lowest latency); a positive interval gathers several
    /// rounds into one ack per device, fewer broker messages per reading at the cost of up
    /// to this much latency. 0..=10,000. Default 0 (while intake is saturated — a worker with
    /// fewer than a quarter of its message permits free — acks are then gathered for 250 ms).
    pub device_ack_interval_ms: u64,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            broker_host: "127.0.0.1".to_owned(),
            broker_port: 1883,
            broker_login: None,
            client_id_prefix: "agritrace-ingest".to_owned(),
            subscription: topic::READINGS_SHARED_FILTER.to_owned(),
            workers: 2,
            keep_alive_secs: 30,
            reconnect_backoff_max_ms: 5_000,
            incoming_packet_bytes_max: 64 * 1024,
            worker_messages_in_flight_max: 4_096,
            verifier_queue_depth: 1_024,
            verify_readings_max: 512,
            batcher_queue_depth: 256,
            batch_readings_max: 500,
            batch_window_ms: 200,
            batches_in_flight_max: 64,
            retry_backoff_ms: 100,
            clock_skew_max_ms: 300_000,
            key_cache_entries_max: 100_000,
            key_cache_ttl_ms: 60_000,
            quarantine_bytes_max: 8 * 1024,
            device_ack_held_max: 65_536,
            device_ack_interval_ms: 0,
        }
    }
}

/// A setting out of its range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid ingest configuration: {0}")]
pub struct ConfigError(pub String);

fn check_range<T: PartialOrd + std::fmt::Display>(
    name: &str,
    value: T,
    min: T,
    max: T,
) -> Result<(), ConfigError> {
    if value < min || value > max {
        return Err(ConfigError(format!(
            "{name} is {value}, it must be {min}..={max}"
        )));
    }
    Ok(())
}

impl IngestConfig {
    /// Checks every field against its range.
    ///
    /// # Errors
    /// [`ConfigError`] naming the first bad field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.broker_host.is_empty() {
            return Err(ConfigError("broker_host is empty".to_owned()));
        }
        let prefix_ok = (1..=40).contains(&self.client_id_prefix.len())
            && self
                .client_id_prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !prefix_ok {
            return Err(ConfigError(
                "client_id_prefix must be 1..=40 characters of [A-Za-z0-9_-]".to_owned(),
            ));
        }
        if self.subscription.is_empty() || self.subscription.len() > 256 {
            return Err(ConfigError("subscription must be 1..=256 bytes".to_owned()));
        }
        check_range("workers", self.workers, 1, WORKERS_CEILING)?;
        check_range("keep_alive_secs", self.keep_alive_secs, 5, 3_600)?;
        check_range(
            "reconnect_backoff_max_ms",
            self.reconnect_backoff_max_ms,
            100,
            60_000,
        )?;
        check_range(
            "incoming_packet_bytes_max",
            self.incoming_packet_bytes_max,
            UPLINK_BYTES_MAX + 1024,
            1024 * 1024,
        )?;
        for (name, value) in [
            (
                "worker_messages_in_flight_max",
                self.worker_messages_in_flight_max,
            ),
            ("verifier_queue_depth", self.verifier_queue_depth),
            ("batcher_queue_depth", self.batcher_queue_depth),
        ] {
            check_range(name, value, 1, QUEUE_DEPTH_CEILING)?;
        }
        check_range("verify_readings_max", self.verify_readings_max, 1, 4_096)?;
        check_range(
            "batch_readings_max",
            self.batch_readings_max,
            1,
            BATCH_READINGS_CEILING,
        )?;
        check_range("batch_window_ms", self.batch_window_ms, 1, 60_000)?;
        check_range(
            "batches_in_flight_max",
            self.batches_in_flight_max,
            1,
            1_024,
        )?;
        check_range("retry_backoff_ms", self.retry_backoff_ms, 1, 60_000)?;
        check_range(
            "clock_skew_max_ms",
            self.clock_skew_max_ms,
            1,
            31_536_000_000,
        )?;
        check_range(
            "key_cache_entries_max",
            self.key_cache_entries_max,
            1,
            10_000_000,
        )?;
        check_range("key_cache_ttl_ms", self.key_cache_ttl_ms, 1, 3_600_000)?;
        check_range(
            "quarantine_bytes_max",
            self.quarantine_bytes_max,
            256,
            1024 * 1024,
        )?;
        check_range(
            "device_ack_held_max",
            self.device_ack_held_max,
            1,
            1024 * 1024,
        )?;
        check_range(
            "device_ack_interval_ms",
            self.device_ack_interval_ms,
            0,
            10_000,
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(change: impl FnOnce(&mut IngestConfig), expected_field: Option<&str>) {
        let mut config = IngestConfig::default();
        change(&mut config);
        match (config.validate(), expected_field) {
            (Ok(()), None) => {}
            (Err(ConfigError(message)), Some(field)) => {
                assert!(message.contains(field), "{message:?} names {field}");
            }
            (outcome, expected) => panic!("{outcome:?}, expected an error naming {expected:?}"),
        }
    }

    #[test]
    fn defaults_are_valid_and_each_bound_is_enforced() {
        check(|_| {}, None);
        check(|c| c.workers = 0, Some("workers"));
        check(|c| c.workers = 65, Some("workers"));
        check(|c| c.batch_readings_max = 801, Some("batch_readings_max"));
        check(|c| c.batch_readings_max = 800, None);
        check(|c| c.batch_window_ms = 0, Some("batch_window_ms"));
        check(
            |c| c.client_id_prefix = "a b".into(),
            Some("client_id_prefix"),
        );
        check(|c| c.broker_host.clear(), Some("broker_host"));
        check(
            |c| c.incoming_packet_bytes_max = 1024,
            Some("incoming_packet_bytes_max"),
        );
        check(|c| c.verifier_queue_depth = 0, Some("verifier_queue_depth"));
        check(
            |c| c.quarantine_bytes_max = 100,
            Some("quarantine_bytes_max"),
        );
        check(|c| c.clock_skew_max_ms = 0, Some("clock_skew_max_ms"));
        check(|c| c.device_ack_held_max = 0, Some("device_ack_held_max"));
        check(
            |c| c.device_ack_interval_ms = 10_001,
            Some("device_ack_interval_ms"),
        );
        check(|c| c.device_ack_interval_ms = 0, None);
    }
}
