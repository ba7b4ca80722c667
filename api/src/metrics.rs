//! Prometheus text exposition (format 0.0.4) of the node's counters: ingest's
//! [`MetricsSnapshot`], the sequencer's [`StatsSnapshot`], the log's sizes and the HTTP rate
//! limits. Written by hand:
//! a few dozen lines of text do not need a metrics library.

use std::fmt::Write as _;

use ingest::{HistogramSnapshot, MetricsSnapshot};
use ledger::sequencer::StatsSnapshot;

/// The log's sizes at the moment of the scrape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LogSizes {
    /// Entries durable in the log.
    pub durable: u64,
    /// Entries covered by the latest published checkpoint.
    pub checkpointed: u64,
    /// Unix time (ms) of the scrape, for the time since the last batch commit.
    pub now_ms: u64,
}

/// Milliseconds as decimal seconds, exactly (`1500` → `1.5`).
fn seconds(ms: u64) -> String {
    let (whole, frac) = (ms / 1000, ms % 1000);
    if frac == 0 {
        whole.to_string()
    } else {
        format!("{whole}.{frac:03}")
            .trim_end_matches('0')
            .to_owned()
    }
}

struct Out(String);

impl Out {
    fn head(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn one(&mut self, name: &str, kind: &str, help: &str, value: u64) {
        self.head(name, kind, help);
        let _ = writeln!(self.0, "{name} {value}");
    }

    fn histogram(&mut self, name: &str, help: &str, h: &HistogramSnapshot) {
        self.head(name, "histogram", help);
        let mut cumulative = 0u64;
        for (bound, count) in h.bounds_ms.iter().zip(&h.counts) {
            cumulative = cumulative.saturating_add(*count);
            let _ = writeln!(
                self.0,
                "{name}_bucket{{le=\"{}\"}} {cumulative}",
                seconds(*bound)
            );
        }
        let _ = writeln!(self.0, "{name}_bucket{{le=\"+Inf\"}} {}", h.count);
        let _ = writeln!(self.0, "{name}_sum {}", seconds(h.sum_ms));
        let _ = writeln!(self.0, "{name}_count {}", h.count);
    }
}

/// Renders everything as Prometheus text.
#[must_use]
pub fn render(ingest: &MetricsSnapshot, sequencer: &StatsSnapshot, log: LogSizes) -> String {
    let mut out = Out(String::with_capacity(8 * 1024));
    let counters: [(&str, &str, u64); 15] = [
        (
            "agritrace_ingest_messages_received_total",
            "MQTT messages taken from the broker.",
            ingest.messages_received,
        ),
        (
            "agritrace_ingest_readings_received_total",
            "Signed readings received (an undecodable message counts one).",
            ingest.readings_received,
        ),
        (
            "agritrace_ingest_readings_accepted_total",
            "Readings anchored in a committed ReadingBatch entry.",
            ingest.readings_committed,
        ),
        (
            "agritrace_ingest_readings_duplicate_total",
            "Exact repeats of readings already accepted (acknowledged and dropped).",
            ingest.readings_duplicate,
        ),
        (
            "agritrace_ingest_readings_clock_skewed_total",
            "Accepted readings whose device clock was off by more than the bound.",
            ingest.readings_clock_skewed,
        ),
        (
            "agritrace_ingest_batches_total",
            "ReadingBatch entries committed.",
            ingest.batches_committed,
        ),
        (
            "agritrace_ingest_quarantine_repeats_total",
            "Rejections repeating a payload already in quarantine.",
            ingest.quarantine_repeats,
        ),
        (
            "agritrace_ingest_submit_retries_total",
            "Batch submissions retried after a retryable refusal.",
            ingest.submit_retries,
        ),
        (
            "agritrace_ingest_verify_fallbacks_total",
            "Ed25519 batch verifications that fell back to one-by-one checks.",
            ingest.verify_fallbacks,
        ),
        (
            "agritrace_ingest_mqtt_acks_total",
            "MQTT messages acknowledged to the broker after their durable commit.",
            ingest.mqtt_acks,
        ),
        (
            "agritrace_ingest_device_acks_published_total",
            "Device acks published on acks topics.",
            ingest.device_acks_published,
        ),
        (
            "agritrace_ingest_device_acks_dropped_total",
            "Device acks still held when shutdown's grace period ran out (devices resend).",
            ingest.device_acks_dropped,
        ),
        (
            "agritrace_ingest_intake_paused_for_acks_total",
            "Times ingest stopped taking messages because too many device acks were held.",
            ingest.intake_paused_for_acks,
        ),
        (
            "agritrace_ingest_mqtt_connections_total",
            "MQTT connections established, reconnections included.",
            ingest.connections,
        ),
        (
            "agritrace_ingest_mqtt_connection_errors_total",
            "MQTT connection errors.",
            ingest.connection_errors,
        ),
    ];
    for (name, help, value) in counters {
        out.one(name, "counter", help, value);
    }
    out.head(
        "agritrace_ingest_readings_rejected_total",
        "counter",
        "Readings rejected (and quarantined), by reason.",
    );
    for (reason, count) in &ingest.rejected {
        let _ = writeln!(
            out.0,
            "agritrace_ingest_readings_rejected_total{{reason=\"{}\"}} {count}",
            reason.name()
        );
    }
    out.one(
        "agritrace_ingest_readings_pending",
        "gauge",
        "Anchoring lag: readings accepted and not yet committed.",
        ingest.readings_pending,
    );
    out.one(
        "agritrace_ingest_device_acks_held",
        "gauge",
        "Sequence numbers due in device acks that wait for their ack connection.",
        ingest.device_acks_held,
    );
    out.one(
        "agritrace_ingest_workers_connected",
        "gauge",
        "Ingest workers connected to the broker now (all of them is part of /readyz).",
        ingest.workers_connected,
    );
    out.one(
        "agritrace_ingest_batches_in_flight",
        "gauge",
        "Batches submitted to the sequencer and not yet committed.",
        ingest.batches_in_flight,
    );
    let since_commit = if ingest.last_commit_ms == 0 {
        0
    } else {
        log.now_ms.saturating_sub(ingest.last_commit_ms)
    };
    out.one(
        "agritrace_ingest_last_commit_age_milliseconds",
        "gauge",
        "Time since the last batch commit (0 before the first).",
        since_commit,
    );
    out.histogram(
        "agritrace_ingest_device_to_anchored_seconds",
        "Device time of a reading (publish) to the durable commit of its batch.",
        &ingest.device_to_commit,
    );
    out.histogram(
        "agritrace_ingest_received_to_anchored_seconds",
        "Ingest receive time of a reading to the durable commit of its batch.",
        &ingest.ingest_to_commit,
    );
    let sequencer_counters: [(&str, &str, u64); 6] = [
        (
            "agritrace_log_rounds_committed_total",
            "Sequencer rounds committed durably.",
            sequencer.rounds_committed,
        ),
        (
            "agritrace_log_rounds_failed_total",
            "Sequencer rounds whose commit failed.",
            sequencer.rounds_failed,
        ),
        (
            "agritrace_log_entries_total",
            "Log entries committed durably.",
            sequencer.entries_committed,
        ),
        (
            "agritrace_log_pool_refusals_total",
            "Submissions refused because the sequencer pool was full.",
            sequencer.pool_refusals,
        ),
        (
            "agritrace_log_checkpoints_published_total",
            "Checkpoints signed, stored and published.",
            sequencer.checkpoints_published,
        ),
        (
            "agritrace_log_cosignatures_total",
            "Witness cosignatures gathered.",
            sequencer.cosignatures_gathered,
        ),
    ];
    for (name, help, value) in sequencer_counters {
        out.one(name, "counter", help, value);
    }
    out.one(
        "agritrace_log_last_round_microseconds",
        "gauge",
        "Time to build and commit the last round.",
        sequencer.last_round_micros,
    );
    out.one(
        "agritrace_log_size",
        "gauge",
        "Entries durable in the log.",
        log.durable,
    );
    out.one(
        "agritrace_log_checkpoint_size",
        "gauge",
        "Entries covered by the latest published checkpoint.",
        log.checkpointed,
    );
    out.one(
        "agritrace_log_checkpoint_lag_entries",
        "gauge",
        "Durable entries not yet covered by a published checkpoint.",
        log.durable.saturating_sub(log.checkpointed),
    );
    out.0
}

/// Appends the rate limits' counters to `text`: requests answered 429, and keys tracked, by
/// class.
pub fn render_rate_limits(text: &mut String, samples: &[crate::ratelimit::ClassSample]) {
    let mut out = Out(std::mem::take(text));
    out.head(
        "agritrace_http_rate_limited_total",
        "counter",
        "Requests answered 429 by the rate limits, by class.",
    );
    for sample in samples {
        let _ = writeln!(
            out.0,
            "agritrace_http_rate_limited_total{{class=\"{}\"}} {}",
            sample.class.name(),
            sample.refused
        );
    }
    out.head(
        "agritrace_http_rate_limit_keys",
        "gauge",
        "Client addresses and callers the rate limits track now, by class.",
    );
    for sample in samples {
        let _ = writeln!(
            out.0,
            "agritrace_http_rate_limit_keys{{class=\"{}\"}} {}",
            sample.class.name(),
            sample.keys
        );
    }
    *text = out.0;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_seconds(ms: u64, expected: &str) {
        assert_eq!(seconds(ms), expected, "{ms} ms");
    }

    #[test]
    fn milliseconds_print_as_exact_seconds() {
        check_seconds(0, "0");
        check_seconds(5, "0.005");
        check_seconds(250, "0.25");
        check_seconds(1_000, "1");
        check_seconds(1_500, "1.5");
        check_seconds(3_600_000, "3600");
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_end_at_the_count() {
        let histogram = HistogramSnapshot {
            bounds_ms: &[5, 10],
            counts: vec![2, 1, 4],
            sum_ms: 1_234,
            count: 7,
        };
        let mut out = Out(String::new());
        out.histogram("x", "help", &histogram);
        let lines: Vec<&str> = out.0.lines().skip(2).collect();
        assert_eq!(
            lines,
            [
                "x_bucket{le=\"0.005\"} 2",
                "x_bucket{le=\"0.01\"} 3",
                "x_bucket{le=\"+Inf\"} 7",
                "x_sum 1.234",
                "x_count 7",
            ]
        );
    }

    #[test]
    fn rate_limits_are_rendered_by_class() {
        let sample = |class, refused, keys| crate::ratelimit::ClassSample {
            class,
            refused,
            keys,
        };
        let mut text = "before\n".to_owned();
        render_rate_limits(
            &mut text,
            &[
                sample(crate::ratelimit::RateClass::Public, 3, 7),
                sample(crate::ratelimit::RateClass::FailedAuth, 1, 2),
            ],
        );
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("agritrace") || *l == "before")
            .collect();
        assert_eq!(
            lines,
            [
                "before",
                "agritrace_http_rate_limited_total{class=\"public\"} 3",
                "agritrace_http_rate_limited_total{class=\"failed_auth\"} 1",
                "agritrace_http_rate_limit_keys{class=\"public\"} 7",
                "agritrace_http_rate_limit_keys{class=\"failed_auth\"} 2",
            ]
        );
    }
}
