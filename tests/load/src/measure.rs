//! What a run records and how it is summarised, with no I/O: the token bucket that paces the
//! publishers, the per-reading ledger (publish time, how often it was acknowledged, its
//! latency), completions counted in 10 ms buckets for the steady-window rate, and percentiles.
//!
//! Times are nanoseconds since the run's start, stored `+ 1` so that 0 means "never".

use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

/// Width of a completion bucket.
pub const BUCKET: Duration = Duration::from_millis(10);

/// Messages a token bucket of `rate_per_s` allows by `elapsed` since it started full with one
/// token: `floor(elapsed * rate) + 1`. Publishing everything allowed and then sleeping until
/// the next token keeps the offered rate exact on average, however coarse the timer.
#[must_use]
pub fn tokens_by(elapsed: Duration, rate_per_s: f64) -> u64 {
    if rate_per_s <= 0.0 || !rate_per_s.is_finite() {
        return u64::MAX;
    }
    // Truncation is the intent: whole tokens only. Saturates for absurd values.
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "whole tokens; f64 to u64 saturates"
    )]
    let whole = (elapsed.as_secs_f64() * rate_per_s).floor() as u64;
    whole.saturating_add(1)
}

/// When the token after `allowed` tokens becomes available.
#[must_use]
pub fn next_token_at(allowed: u64, rate_per_s: f64) -> Duration {
    if rate_per_s <= 0.0 || !rate_per_s.is_finite() {
        return Duration::ZERO;
    }
    #[expect(
        clippy::cast_precision_loss,
        reason = "token counts stay far below 2^52"
    )]
    let seconds = allowed as f64 / rate_per_s;
    Duration::from_secs_f64(seconds)
}

/// The `q` quantile (0..=1) of sorted values, nearest rank; 0 for no values.
#[must_use]
pub fn quantile(sorted: &[u32], q: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    #[expect(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "rank of a sample far below 2^52, clamped to the last index"
    )]
    let rank = ((q.clamp(0.0, 1.0) * sorted.len() as f64).ceil() as usize).max(1);
    sorted[rank.min(sorted.len()) - 1]
}

/// What an acknowledgement did to the ledger.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AckCount {
    /// Readings acknowledged for the first time.
    pub new: u64,
    /// Readings acknowledged again.
    pub repeated: u64,
    /// Sequence numbers that name no reading of the run (or one never published).
    pub stray: u64,
}

/// The per-reading ledger of a run, shared by the publishers and the ack subscriber.
#[derive(Debug)]
pub struct Ledger {
    devices: u32,
    offsets_per_device: u32,
    sequence_base: u64,
    published_ns: Vec<AtomicU64>,
    latency_us: Vec<AtomicU32>,
    acks: Vec<AtomicU8>,
    buckets: Vec<AtomicU64>,
    published: AtomicU64,
    completed: AtomicU64,
    repeated: AtomicU64,
    stray: AtomicU64,
}

/// The figures of a run's ledger.
#[derive(Debug, Clone, PartialEq)]
pub struct LedgerSummary {
    /// Readings published.
    pub published: u64,
    /// Distinct readings acknowledged.
    pub completed: u64,
    /// Published readings never acknowledged.
    pub missing: u64,
    /// Acknowledgements of a reading already acknowledged.
    pub repeated: u64,
    /// Acknowledged sequence numbers that were not published in this run.
    pub stray: u64,
    /// Completions per second between the window's bounds.
    pub window_rate: f64,
    /// Latency of the readings published inside the window, milliseconds.
    pub p50_ms: f64,
    /// 99th percentile, milliseconds.
    pub p99_ms: f64,
    /// Largest, milliseconds.
    pub max_ms: f64,
    /// Latency samples behind the percentiles.
    pub samples: usize,
}

fn ns(at: Duration) -> u64 {
    u64::try_from(at.as_nanos()).unwrap_or(u64::MAX)
}

impl Ledger {
    /// A ledger for `devices` devices of `offsets_per_device` readings each, numbered from
    /// `sequence_base`, with completion buckets covering `span`.
    #[must_use]
    pub fn new(devices: u32, offsets_per_device: u32, sequence_base: u64, span: Duration) -> Self {
        let slots = usize::try_from(u64::from(devices) * u64::from(offsets_per_device))
            .unwrap_or(usize::MAX);
        let buckets = usize::try_from(span.as_millis() / BUCKET.as_millis() + 1).unwrap_or(1);
        Self {
            devices,
            offsets_per_device,
            sequence_base,
            published_ns: (0..slots).map(|_| AtomicU64::new(0)).collect(),
            latency_us: (0..slots).map(|_| AtomicU32::new(0)).collect(),
            acks: (0..slots).map(|_| AtomicU8::new(0)).collect(),
            buckets: (0..buckets).map(|_| AtomicU64::new(0)).collect(),
            published: AtomicU64::new(0),
            completed: AtomicU64::new(0),
            repeated: AtomicU64::new(0),
            stray: AtomicU64::new(0),
        }
    }

    fn slot(&self, device: u32, offset: u32) -> Option<usize> {
        if device >= self.devices || offset >= self.offsets_per_device {
            return None;
        }
        usize::try_from(u64::from(device) * u64::from(self.offsets_per_device) + u64::from(offset))
            .ok()
    }

    /// Records that `count` readings of `device` from offset `first` are published at `at`
    /// (call it before handing the message to the client, so an ack can never come first).
    pub fn published(&self, device: u32, first: u32, count: u16, at: Duration) {
        for offset in first..first.saturating_add(u32::from(count)) {
            if let Some(slot) = self.slot(device, offset) {
                self.published_ns[slot].store(ns(at) + 1, Ordering::Release);
            }
        }
        self.published.fetch_add(u64::from(count), Ordering::AcqRel);
    }

    /// Readings published so far.
    #[must_use]
    pub fn published_count(&self) -> u64 {
        self.published.load(Ordering::Acquire)
    }

    /// Distinct readings completed so far.
    #[must_use]
    pub fn completed_count(&self) -> u64 {
        self.completed.load(Ordering::Acquire)
    }

    fn bucket(&self, at: Duration, count: u64) {
        let index = usize::try_from(at.as_millis() / BUCKET.as_millis()).unwrap_or(usize::MAX);
        if let Some(bucket) = self.buckets.get(index).or_else(|| self.buckets.last()) {
            bucket.fetch_add(count, Ordering::Relaxed);
        }
    }

    /// Records an acknowledgement of `device`'s sequence numbers `ranges` (inclusive) at `at`.
    pub fn acked(&self, device: u32, ranges: &[(u64, u64)], at: Duration) -> AckCount {
        let mut count = AckCount::default();
        for &(first, last) in ranges {
            // A range may name far more numbers than the run has; walk only the run's part.
            let lo = first.max(self.sequence_base);
            let hi = last.min(self.sequence_base + u64::from(self.offsets_per_device).max(1) - 1);
            let span = last.saturating_sub(first).saturating_add(1);
            let inside = if hi >= lo { hi - lo + 1 } else { 0 };
            count.stray = count.stray.saturating_add(span - inside);
            if hi < lo {
                continue;
            }
            for sequence in lo..=hi {
                let offset = u32::try_from(sequence - self.sequence_base).unwrap_or(u32::MAX);
                let Some(slot) = self.slot(device, offset) else {
                    count.stray += 1;
                    continue;
                };
                let published = self.published_ns[slot].load(Ordering::Acquire);
                if published == 0 {
                    count.stray += 1;
                    continue;
                }
                if self.acks[slot].fetch_add(1, Ordering::AcqRel) == 0 {
                    let latency_ns = ns(at).saturating_sub(published - 1);
                    let latency_us = u32::try_from(latency_ns / 1_000).unwrap_or(u32::MAX);
                    self.latency_us[slot].store(latency_us.max(1), Ordering::Release);
                    count.new += 1;
                } else {
                    count.repeated += 1;
                }
            }
        }
        self.completed.fetch_add(count.new, Ordering::AcqRel);
        self.repeated.fetch_add(count.repeated, Ordering::Relaxed);
        self.stray.fetch_add(count.stray, Ordering::Relaxed);
        self.bucket(at, count.new);
        count
    }

    /// Records `count` completions that name no reading (the broker baseline counts
    /// deliveries only).
    pub fn completed_anonymously(&self, count: u64, at: Duration) {
        self.completed.fetch_add(count, Ordering::AcqRel);
        self.bucket(at, count);
    }

    /// Completions per second between `from` and `to`.
    #[must_use]
    pub fn rate_between(&self, from: Duration, to: Duration) -> f64 {
        let first = usize::try_from(from.as_millis() / BUCKET.as_millis()).unwrap_or(0);
        let last = usize::try_from(to.as_millis() / BUCKET.as_millis()).unwrap_or(0);
        if last <= first {
            return 0.0;
        }
        let total: u64 = self
            .buckets
            .iter()
            .skip(first)
            .take(last - first)
            .map(|b| b.load(Ordering::Relaxed))
            .sum();
        #[expect(clippy::cast_precision_loss, reason = "counts far below 2^52")]
        let rate = total as f64 / ((last - first) as f64 * BUCKET.as_secs_f64());
        rate
    }

    /// Summarises the run: latencies of readings published in `[from, to)`, the completion
    /// rate in the same window.
    #[must_use]
    pub fn summary(&self, from: Duration, to: Duration) -> LedgerSummary {
        let (from_ns, to_ns) = (ns(from), ns(to));
        let mut latencies: Vec<u32> = Vec::new();
        let mut missing = 0u64;
        for ((published, latency), acks) in self
            .published_ns
            .iter()
            .zip(&self.latency_us)
            .zip(&self.acks)
        {
            let published = published.load(Ordering::Acquire);
            if published == 0 {
                continue;
            }
            if acks.load(Ordering::Acquire) == 0 {
                missing += 1;
                continue;
            }
            if (from_ns..to_ns).contains(&(published - 1)) {
                latencies.push(latency.load(Ordering::Acquire));
            }
        }
        latencies.sort_unstable();
        let ms = |us: u32| f64::from(us) / 1_000.0;
        LedgerSummary {
            published: self.published_count(),
            completed: self.completed_count(),
            missing,
            repeated: self.repeated.load(Ordering::Relaxed),
            stray: self.stray.load(Ordering::Relaxed),
            window_rate: self.rate_between(from, to),
            p50_ms: ms(quantile(&latencies, 0.50)),
            p99_ms: ms(quantile(&latencies, 0.99)),
            max_ms: ms(latencies.last().copied().unwrap_or(0)),
            samples: latencies.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn the_token_bucket_allows_the_rate_and_one_in_advance() {
        let check = |elapsed_ms: u64, rate: f64, expected: u64| {
            assert_eq!(
                tokens_by(MS(elapsed_ms), rate),
                expected,
                "{elapsed_ms} ms at {rate}/s"
            );
        };
        check(0, 1_000.0, 1);
        check(1, 1_000.0, 2);
        check(999, 1_000.0, 1_000);
        check(1_000, 2_500.0, 2_501);
        check(3, 0.0, u64::MAX);
        assert_eq!(next_token_at(2_500, 2_500.0), Duration::from_secs(1));
        assert_eq!(next_token_at(5, 0.0), Duration::ZERO);
    }

    #[test]
    fn quantiles_use_the_nearest_rank() {
        let values: Vec<u32> = (1..=100).collect();
        assert_eq!(quantile(&values, 0.5), 50);
        assert_eq!(quantile(&values, 0.99), 99);
        assert_eq!(quantile(&values, 1.0), 100);
        assert_eq!(quantile(&values, 0.0), 1);
        assert_eq!(quantile(&[], 0.5), 0);
        assert_eq!(quantile(&[7], 0.99), 7);
    }

    #[test]
    fn every_published_reading_is_counted_once_and_gaps_are_missing() {
        let ledger = Ledger::new(2, 4, 100, Duration::from_secs(2));
        ledger.published(0, 0, 4, MS(10));
        ledger.published(1, 0, 2, MS(20));
        // Device 0: 100..=102 anchored at 110 ms; 103 never.
        let first = ledger.acked(0, &[(100, 102)], MS(110));
        assert_eq!(
            first,
            AckCount {
                new: 3,
                repeated: 0,
                stray: 0
            }
        );
        // A repeat, a reading never published (device 1, offset 2) and numbers outside the run.
        let second = ledger.acked(1, &[(90, 91), (100, 102)], MS(70));
        assert_eq!(
            second,
            AckCount {
                new: 2,
                repeated: 0,
                stray: 3
            }
        );
        let third = ledger.acked(0, &[(101, 101)], MS(300));
        assert_eq!(
            third,
            AckCount {
                new: 0,
                repeated: 1,
                stray: 0
            }
        );
        assert_eq!(ledger.acked(5, &[(100, 100)], MS(1)).stray, 1);
        let summary = ledger.summary(Duration::ZERO, MS(1_000));
        assert_eq!(summary.published, 6);
        assert_eq!(summary.completed, 5);
        assert_eq!(summary.missing, 1);
        assert_eq!(summary.repeated, 1);
        assert_eq!(summary.stray, 4);
        assert_eq!(summary.samples, 5);
        // Latencies: 100, 100, 100 ms (device 0) and 50, 50 ms (device 1).
        assert!((summary.p50_ms - 100.0).abs() < 1e-9, "{summary:?}");
        assert!((summary.max_ms - 100.0).abs() < 1e-9);
        // 5 completions in the first 200 ms: 25/s over that window.
        assert!((ledger.rate_between(Duration::ZERO, MS(200)) - 25.0).abs() < 1e-9);
        // A window after the publications has no latency samples.
        assert_eq!(ledger.summary(MS(500), MS(1_000)).samples, 0);
    }

    #[test]
    fn a_huge_range_is_walked_only_inside_the_run() {
        let ledger = Ledger::new(1, 2, 10, Duration::from_secs(1));
        ledger.published(0, 0, 2, MS(0));
        let count = ledger.acked(0, &[(0, u64::MAX)], MS(5));
        assert_eq!(count.new, 2);
        // u64::MAX numbers (the count saturates), two of them the run's.
        assert_eq!(count.stray, u64::MAX - 2);
    }

    #[test]
    fn anonymous_completions_feed_the_rate() {
        let ledger = Ledger::new(1, 1, 0, Duration::from_secs(1));
        ledger.completed_anonymously(30, MS(15));
        ledger.completed_anonymously(10, MS(999));
        assert_eq!(ledger.completed_count(), 40);
        assert!((ledger.rate_between(Duration::ZERO, MS(100)) - 300.0).abs() < 1e-9);
        // Past the end lands in the last bucket rather than nowhere.
        ledger.completed_anonymously(1, Duration::from_secs(5));
        assert_eq!(ledger.completed_count(), 41);
    }
}
