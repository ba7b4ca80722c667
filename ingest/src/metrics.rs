//! Counters and histograms of the ingest service, as plain atomics. The node renders a
//! [`MetricsSnapshot`] as Prometheus text; nothing here allocates per event.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::quarantine::RejectReason;

/// Upper bounds (inclusive, milliseconds) of the latency histogram buckets; a last bucket
/// counts everything above.
pub const LATENCY_BOUNDS_MS: [u64; 15] = [
    5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000, 300_000, 3_600_000,
];

/// A latency histogram with fixed buckets.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; LATENCY_BOUNDS_MS.len() + 1],
    sum_ms: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, ms: u64) {
        let bucket = LATENCY_BOUNDS_MS
            .iter()
            .position(|bound| ms <= *bound)
            .unwrap_or(LATENCY_BOUNDS_MS.len());
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_ms.fetch_add(ms, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// The histogram now.
    #[must_use]
    pub fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            bounds_ms: &LATENCY_BOUNDS_MS,
            counts: self
                .buckets
                .iter()
                .map(|b| b.load(Ordering::Relaxed))
                .collect(),
            sum_ms: self.sum_ms.load(Ordering::Relaxed),
            count: self.count.load(Ordering::Relaxed),
        }
    }
}

/// A copy of a histogram: `counts[i]` observations were at most `bounds_ms[i]` (and above the
/// previous bound); the last count is everything above the last bound (not cumulative).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistogramSnapshot {
    /// Bucket upper bounds in milliseconds.
    pub bounds_ms: &'static [u64],
    /// Observations per bucket, one more than there are bounds.
    pub counts: Vec<u64>,
    /// Sum of all observations in milliseconds.
    pub sum_ms: u64,
    /// Number of observations.
    pub count: u64,
}

/// The live counters, shared by the pipeline's tasks.
#[derive(Debug, Default)]
pub struct Metrics {
    pub(crate) messages_received: AtomicU64,
    pub(crate) readings_received: AtomicU64,
    pub(crate) readings_committed: AtomicU64,
    pub(crate) readings_duplicate: AtomicU64,
    pub(crate) readings_clock_skewed: AtomicU64,
    pub(crate) rejected: [AtomicU64; RejectReason::ALL.len()],
    pub(crate) quarantine_repeats: AtomicU64,
    pub(crate) batches_committed: AtomicU64,
    pub(crate) quarantine_writes: AtomicU64,
    pub(crate) submit_retries: AtomicU64,
    pub(crate) readings_pending: AtomicU64,
    pub(crate) batches_in_flight: AtomicU64,
    pub(crate) verify_batches: AtomicU64,
    pub(crate) verify_fallbacks: AtomicU64,
    pub(crate) key_cache_hits: AtomicU64,
    pub(crate) key_cache_misses: AtomicU64,
    pub(crate) mqtt_acks: AtomicU64,
    pub(crate) mqtt_acks_stale: AtomicU64,
    pub(crate) device_acks_published: AtomicU64,
    pub(crate) device_acks_dropped: AtomicU64,
    pub(crate) device_acks_held: AtomicU64,
    pub(crate) intake_paused_for_acks: AtomicU64,
    pub(crate) connections: AtomicU64,
    pub(crate) workers_connected: AtomicU64,
    pub(crate) connection_errors: AtomicU64,
    pub(crate) last_commit_ms: AtomicU64,
    pub(crate) device_to_commit: Histogram,
    pub(crate) ingest_to_commit: Histogram,
}

pub(crate) fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

impl Metrics {
    pub(crate) fn rejected(&self, reason: RejectReason) {
        add(&self.rejected[reason.index()], 1);
    }

    /// The counters now.
    #[must_use]
    pub fn snapshot(&self) -> MetricsSnapshot {
        let read = |c: &AtomicU64| c.load(Ordering::Relaxed);
        MetricsSnapshot {
            messages_received: read(&self.messages_received),
            readings_received: read(&self.readings_received),
            readings_committed: read(&self.readings_committed),
            readings_duplicate: read(&self.readings_duplicate),
            readings_clock_skewed: read(&self.readings_clock_skewed),
            rejected: RejectReason::ALL.map(|r| (r, read(&self.rejected[r.index()]))),
            quarantine_repeats: read(&self.quarantine_repeats),
            batches_committed: read(&self.batches_committed),
            quarantine_writes: read(&self.quarantine_writes),
            submit_retries: read(&self.submit_retries),
            readings_pending: read(&self.readings_pending),
            batches_in_flight: read(&self.batches_in_flight),
            verify_batches: read(&self.verify_batches),
            verify_fallbacks: read(&self.verify_fallbacks),
            key_cache_hits: read(&self.key_cache_hits),
            key_cache_misses: read(&self.key_cache_misses),
            mqtt_acks: read(&self.mqtt_acks),
            mqtt_acks_stale: read(&self.mqtt_acks_stale),
            device_acks_published: read(&self.device_acks_published),
            device_acks_dropped: read(&self.device_acks_dropped),
            device_acks_held: read(&self.device_acks_held),
            intake_paused_for_acks: read(&self.intake_paused_for_acks),
            connections: read(&self.connections),
            workers_connected: read(&self.workers_connected),
            connection_errors: read(&self.connection_errors),
            last_commit_ms: read(&self.last_commit_ms),
            device_to_commit: self.device_to_commit.snapshot(),
            ingest_to_commit: self.ingest_to_commit.snapshot(),
        }
    }
}

/// A copy of the counters at one moment. Counters only grow; "gauges" say so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsSnapshot {
    /// MQTT messages taken from the broker.
    pub messages_received: u64,
    /// Signed readings in those messages (undecodable messages count one).
    pub readings_received: u64,
    /// Readings committed to the log (anchored in a committed `ReadingBatch`).
    pub readings_committed: u64,
    /// Exact repeats of readings already committed or pending (acknowledged and dropped).
    pub readings_duplicate: u64,
    /// Committed readings flagged because the device clock was off by more than the bound.
    pub readings_clock_skewed: u64,
    /// Rejections by reason (each also stored in quarantine, unless it repeats one).
    pub rejected: [(RejectReason, u64); RejectReason::ALL.len()],
    /// Rejections that repeat a payload already in quarantine (not stored again).
    pub quarantine_repeats: u64,
    /// `ReadingBatch` entries committed.
    pub batches_committed: u64,
    /// Quarantine records written without a batch (no reading to ride with).
    pub quarantine_writes: u64,
    /// Submissions the sequencer refused for a retryable reason and that were retried.
    pub submit_retries: u64,
    /// Gauge: readings accepted and not yet committed (the anchoring lag, in readings).
    pub readings_pending: u64,
    /// Gauge: batches submitted and not yet committed.
    pub batches_in_flight: u64,
    /// Ed25519 batch verifications run.
    pub verify_batches: u64,
    /// Batch verifications that failed and fell back to one-by-one verification.
    pub verify_fallbacks: u64,
    /// Device key lookups answered from the cache.
    pub key_cache_hits: u64,
    /// Device key lookups that read storage.
    pub key_cache_misses: u64,
    /// MQTT messages acknowledged to the broker.
    pub mqtt_acks: u64,
    /// MQTT acks not sent because the connection that received the message was replaced.
    pub mqtt_acks_stale: u64,
    /// Device acks published on acks topics.
    pub device_acks_published: u64,
    /// Device acks given up: only those still held when shutdown's grace ran out (under
    /// load, acks are held and merged and intake slows instead; the device offers the
    /// readings again and gets them acked as duplicates).
    pub device_acks_dropped: u64,
    /// Gauge: sequence numbers due in device acks that wait for their ack connection.
    pub device_acks_held: u64,
    /// Times the batcher stopped taking messages because `device_ack_held_max` sequence
    /// numbers were held (backpressure: the broker holds the backlog meanwhile).
    pub intake_paused_for_acks: u64,
    /// MQTT connections established (including reconnections).
    pub connections: u64,
    /// Ingest workers connected to the broker now (a gauge).
    pub workers_connected: u64,
    /// MQTT connection errors.
    pub connection_errors: u64,
    /// Unix time (ms) of the last batch commit, 0 before the first.
    pub last_commit_ms: u64,
    /// Device time to commit time of committed readings.
    pub device_to_commit: HistogramSnapshot,
    /// Ingest time to commit time of committed readings.
    pub ingest_to_commit: HistogramSnapshot,
}

impl MetricsSnapshot {
    /// Rejections for `reason`.
    #[must_use]
    pub fn rejected_for(&self, reason: RejectReason) -> u64 {
        self.rejected
            .iter()
            .find(|(r, _)| *r == reason)
            .map_or(0, |(_, n)| *n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_the_bucket_of_their_upper_bound() {
        let histogram = Histogram::default();
        for ms in [0, 5, 6, 3_600_000, 3_600_001, u64::MAX / 2] {
            histogram.observe(ms);
        }
        let snapshot = histogram.snapshot();
        assert_eq!(snapshot.counts[0], 2, "0 and 5");
        assert_eq!(snapshot.counts[1], 1, "6");
        assert_eq!(snapshot.counts[LATENCY_BOUNDS_MS.len() - 1], 1, "an hour");
        assert_eq!(snapshot.counts[LATENCY_BOUNDS_MS.len()], 2, "above");
        assert_eq!(snapshot.count, 6);
    }
}
