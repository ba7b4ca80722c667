//! Unit tests of the logger state machine: reserve-ahead across reboots and store faults, the
//! outbox order, acks, eviction, resends, the driver step. `model` holds the property tests
//! against a naive model.

mod journal;
mod model;

use std::vec::Vec;

use hardware::{Position, Sample};
use protocol::limits::{
    ACK_BYTES_MAX, BACKLOG_READINGS_MAX, SIGNED_READING_BYTES_MAX, UPLINK_BYTES_MAX,
};
use protocol::{
    AckBuilder, AckError, DeviceId, KeyEpoch, Reading, SequenceNumber, SigningKey, UplinkKind,
    verify_signed_reading,
};

use crate::sequence::{SEQUENCE_RESERVE, SequenceStore};
use crate::{
    AckOutcome, AckRefused, BootError, ConfigError, DeliveryState, DeviceConfig, Logger,
    MemorySequenceStore, RecordError, SampleOutcome, Uplink, step,
};

pub(crate) const DEVICE: DeviceId = DeviceId([0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 7]);
pub(crate) const RESEND_AFTER_MS: u32 = 5_000;
const PERIOD_MS: u32 = 60_000;
const UNIX_EPOCH_MS: u64 = 1_760_000_000_000;

pub(crate) fn config() -> DeviceConfig {
    DeviceConfig {
        device: DEVICE,
        key_epoch: KeyEpoch(3),
        sample_period_ms: PERIOD_MS,
        resend_after_ms: RESEND_AFTER_MS,
    }
}

pub(crate) fn key() -> SigningKey {
    SigningKey::from_bytes(&[42; 32])
}

/// A plausible sample that differs with `i`.
pub(crate) fn sample(i: u64) -> Sample {
    let i16_of = |v: u64| i16::try_from(v % 1000).unwrap();
    Sample {
        temperature_centi_c: 350 + i16_of(i) - 500,
        humidity_centi_pct: u16::try_from(8_000 + i % 2_000).unwrap(),
        position: (!i.is_multiple_of(3))
            .then(|| Position::from_e7(250_000_000, 1_020_000_000).unwrap()),
        door_open: i.is_multiple_of(5),
        shock_events: u16::try_from(i % 4).unwrap(),
        battery_mv: 3_600,
    }
}

/// Why the test store failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct StoreFailed;

/// How the next write of a [`FaultyStore`] fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fault {
    /// The write does not land.
    Lost,
    /// The write lands, then the call reports an error (a timeout after the flash write).
    Landed,
}

/// A store double that enforces the [`SequenceStore`] contract (marks only grow) and fails
/// on demand, with or without the write landing.
#[derive(Clone, Debug, Default)]
pub(crate) struct FaultyStore {
    pub(crate) mark: Option<u64>,
    pub(crate) next_write: Option<Fault>,
    pub(crate) fail_loads: bool,
    pub(crate) writes: usize,
}

impl SequenceStore for FaultyStore {
    type Error = StoreFailed;

    fn load(&mut self) -> Result<Option<u64>, StoreFailed> {
        if self.fail_loads {
            return Err(StoreFailed);
        }
        Ok(self.mark)
    }

    fn store(&mut self, reserved_until: u64) -> Result<(), StoreFailed> {
        assert!(
            self.mark.is_none_or(|mark| reserved_until >= mark),
            "the mark went back from {:?} to {reserved_until}",
            self.mark
        );
        match self.next_write.take() {
            None => {
                self.mark = Some(reserved_until);
                self.writes += 1;
                Ok(())
            }
            Some(Fault::Lost) => Err(StoreFailed),
            Some(Fault::Landed) => {
                self.mark = Some(reserved_until);
                self.writes += 1;
                Err(StoreFailed)
            }
        }
    }
}

pub(crate) type TestLogger = Logger<8>;

fn boot(store: &mut FaultyStore) -> TestLogger {
    Logger::boot(config(), key(), store).unwrap()
}

/// Records `count` readings at consecutive sampling instants starting at sample `first`.
fn record_n<const N: usize>(
    logger: &mut Logger<N>,
    store: &mut FaultyStore,
    first: u64,
    count: u64,
) -> Vec<u64> {
    (first..first + count)
        .map(|i| {
            let now = i * u64::from(PERIOD_MS);
            logger
                .record(now, UNIX_EPOCH_MS + now, &sample(i), store)
                .unwrap()
                .0
        })
        .collect()
}

/// Decodes and verifies every reading of an uplink message with `protocol`.
pub(crate) fn readings_of(message: &[u8]) -> Vec<Reading> {
    let uplink = protocol::Uplink::decode(message).unwrap();
    uplink
        .readings()
        .map(|bytes| verify_signed_reading(bytes, &key().verifying_key()).unwrap())
        .collect()
}

fn sequences_of(message: &[u8]) -> Vec<u64> {
    readings_of(message).iter().map(|r| r.sequence.0).collect()
}

pub(crate) fn ack_bytes(device: DeviceId, sequences: &[u64]) -> Vec<u8> {
    let mut builder = AckBuilder::new(device);
    for &s in sequences {
        builder.push(SequenceNumber(s)).unwrap();
    }
    let mut buf = [0u8; ACK_BYTES_MAX];
    builder.finish().unwrap().encode(&mut buf).unwrap().to_vec()
}

fn outbox_sequences<const N: usize>(logger: &Logger<N>) -> Vec<u64> {
    logger.outbox().map(|entry| entry.sequence.0).collect()
}

// --- Sequence numbers and the store -------------------------------------------------------

#[test]
fn boot_reserves_a_block_before_using_any_number() {
    let mut store = FaultyStore::default();
    let logger = boot(&mut store);
    assert_eq!(store.mark, Some(SEQUENCE_RESERVE));
    assert_eq!(store.writes, 1);
    assert_eq!(logger.next_sequence(), SequenceNumber(0));

    let mut store = FaultyStore {
        mark: Some(1_000),
        ..FaultyStore::default()
    };
    let logger = boot(&mut store);
    assert_eq!(logger.next_sequence(), SequenceNumber(1_000));
    assert_eq!(store.mark, Some(1_000 + SEQUENCE_RESERVE));
}

#[test]
fn reboots_never_reuse_a_sequence_number() {
    let mut store = FaultyStore::default();
    let mut used = Vec::new();
    // Reboot after 3 readings, after a whole block plus one, after none at all.
    for count in [3, SEQUENCE_RESERVE + 1, 0, 5] {
        let mut logger = boot(&mut store);
        used.extend(record_n(&mut logger, &mut store, 0, count));
    }
    assert_eq!(used.len(), 9 + usize::try_from(SEQUENCE_RESERVE).unwrap());
    assert!(used.windows(2).all(|w| w[0] < w[1]), "{used:?}");
    // Blocks: [0, 256) used 3, [256, 512) and [512, 768) used 257, [768, 1024) none, then 5.
    assert_eq!(&used[..4], &[0, 1, 2, SEQUENCE_RESERVE]);
    assert_eq!(used[used.len() - 5], 4 * SEQUENCE_RESERVE);
}

#[test]
fn a_crash_between_reserving_and_using_skips_numbers_but_never_repeats_one() {
    let mut store = FaultyStore::default();
    let mut logger = boot(&mut store);
    let first = record_n(&mut logger, &mut store, 0, SEQUENCE_RESERVE);
    assert_eq!(first.last(), Some(&(SEQUENCE_RESERVE - 1)));
    // The next record reserves a new block; the write lands but the device dies before it
    // signs (modelled by the call failing after the write landed).
    store.next_write = Some(Fault::Landed);
    let error = logger.record(0, UNIX_EPOCH_MS, &sample(0), &mut store);
    assert_eq!(error, Err(RecordError::Store(StoreFailed)));
    assert_eq!(store.mark, Some(2 * SEQUENCE_RESERVE));
    drop(logger);

    let mut logger = boot(&mut store);
    assert_eq!(logger.next_sequence(), SequenceNumber(2 * SEQUENCE_RESERVE));
    let after = record_n(&mut logger, &mut store, 0, 1);
    assert_eq!(after, [2 * SEQUENCE_RESERVE]);
}

#[test]
fn a_failing_store_refuses_the_reading_and_changes_nothing() {
    for fault in [Fault::Lost, Fault::Landed] {
        let mut store = FaultyStore::default();
        let mut logger = boot(&mut store);
        record_n(&mut logger, &mut store, 0, SEQUENCE_RESERVE - 1);
        let mark = store.mark;
        // The last number of the block is used without a write.
        assert_eq!(
            record_n(&mut logger, &mut store, 0, 1),
            [SEQUENCE_RESERVE - 1]
        );
        assert_eq!(store.mark, mark);
        let before = outbox_sequences(&logger);
        let dropped = logger.dropped_total();

        store.next_write = Some(fault);
        let result = logger.record(0, UNIX_EPOCH_MS, &sample(1), &mut store);
        assert_eq!(result, Err(RecordError::Store(StoreFailed)), "{fault:?}");
        assert_eq!(outbox_sequences(&logger), before, "{fault:?}");
        assert_eq!(logger.next_sequence(), SequenceNumber(SEQUENCE_RESERVE));
        assert_eq!(logger.dropped_total(), dropped, "nothing was evicted");

        // Once the store works again the same (never used) number goes out.
        let sequence = logger
            .record(0, UNIX_EPOCH_MS, &sample(1), &mut store)
            .unwrap();
        assert_eq!(sequence, SequenceNumber(SEQUENCE_RESERVE), "{fault:?}");
        assert_eq!(store.mark, Some(2 * SEQUENCE_RESERVE));
    }
}

#[test]
fn boot_fails_on_a_broken_store_or_configuration() {
    let mut store = FaultyStore {
        fail_loads: true,
        ..FaultyStore::default()
    };
    let check = |result: Result<TestLogger, BootError<StoreFailed>>, expected| {
        assert_eq!(result.map(|_| ()), Err(expected));
    };
    check(
        Logger::boot(config(), key(), &mut store),
        BootError::Store(StoreFailed),
    );
    for fault in [Fault::Lost, Fault::Landed] {
        let mut store = FaultyStore {
            next_write: Some(fault),
            ..FaultyStore::default()
        };
        check(
            Logger::boot(config(), key(), &mut store),
            BootError::Store(StoreFailed),
        );
    }
    let mut store = FaultyStore::default();
    let zero_period = DeviceConfig {
        sample_period_ms: 0,
        ..config()
    };
    check(
        Logger::boot(zero_period, key(), &mut store),
        BootError::Config(ConfigError::ZeroSamplePeriod),
    );
    let zero_resend = DeviceConfig {
        resend_after_ms: 0,
        ..config()
    };
    check(
        Logger::boot(zero_resend, key(), &mut store),
        BootError::Config(ConfigError::ZeroResendTimeout),
    );
    assert_eq!(store.writes, 0, "a refused configuration reserves nothing");
}

#[test]
fn the_last_sequence_numbers_are_used_then_exhausted() {
    let mut store = FaultyStore {
        mark: Some(u64::MAX),
        ..FaultyStore::default()
    };
    let result: Result<TestLogger, _> = Logger::boot(config(), key(), &mut store);
    assert_eq!(result.map(|_| ()), Err(BootError::SequenceExhausted));

    let mut store = FaultyStore {
        mark: Some(u64::MAX - 2),
        ..FaultyStore::default()
    };
    let mut logger = boot(&mut store);
    assert_eq!(store.mark, Some(u64::MAX));
    assert_eq!(
        record_n(&mut logger, &mut store, 0, 2),
        [u64::MAX - 2, u64::MAX - 1]
    );
    let result = logger.record(0, UNIX_EPOCH_MS, &sample(0), &mut store);
    assert_eq!(result, Err(RecordError::SequenceExhausted));
}

// --- Signing ------------------------------------------------------------------------------

#[test]
fn every_reading_is_signed_by_the_device_key_and_says_what_was_sampled() {
    let mut store = FaultyStore::default();
    let mut logger = boot(&mut store);
    record_n(&mut logger, &mut store, 0, 6);
    assert_eq!(logger.verifying_key(), key().verifying_key());
    for (i, entry) in logger.outbox().enumerate() {
        let reading = verify_signed_reading(entry.signed_reading, &key().verifying_key()).unwrap();
        let i = u64::try_from(i).unwrap();
        let expected = sample(i);
        assert_eq!(reading.device, DEVICE);
        assert_eq!(reading.key_epoch, KeyEpoch(3));
        assert_eq!(reading.sequence, SequenceNumber(i));
        assert_eq!(
            reading.device_time_ms,
            UNIX_EPOCH_MS + i * u64::from(PERIOD_MS)
        );
        assert_eq!(reading.temperature_centi_c, expected.temperature_centi_c);
        assert_eq!(reading.humidity_centi_pct, expected.humidity_centi_pct);
        assert_eq!(
            reading.position.map(|p| (p.lat_e7, p.lon_e7)),
            expected.position.map(|p| (p.lat_e7, p.lon_e7))
        );
        assert_eq!(
            reading.door == protocol::DoorState::Open,
            expected.door_open
        );
        assert_eq!(reading.shock_events, expected.shock_events);
        assert_eq!(reading.battery_mv, expected.battery_mv);
        assert_eq!(reading.dropped_samples, 0);
    }
}

#[test]
fn a_sample_out_of_range_is_refused_without_using_a_number() {
    let mut store = FaultyStore::default();
    let mut logger = boot(&mut store);
    let bad = Sample {
        humidity_centi_pct: 10_001,
        ..sample(0)
    };
    assert_eq!(
        logger.record(0, UNIX_EPOCH_MS, &bad, &mut store),
        Err(RecordError::Encode(protocol::EncodeError::OutOfRange(
            "humidity_centi_pct"
        )))
    );
    assert_eq!(logger.outbox_len(), 0);
    assert_eq!(record_n(&mut logger, &mut store, 0, 1), [0]);
}

// --- Schedule -----------------------------------------------------------------------------

#[test]
fn samples_fall_due_once_per_period_without_catching_up_in_bursts() {
    let mut store = FaultyStore::default();
    let mut logger = boot(&mut store);
    let period = u64::from(PERIOD_MS);
    let check = |logger: &TestLogger, now: u64, due: bool| {
        assert_eq!(logger.sample_due(now), due, "at {now}");
    };
    check(&logger, 0, true);
    logger
        .record(0, UNIX_EPOCH_MS, &sample(0), &mut store)
        .unwrap();
    check(&logger, 0, false);
    check(&logger, period - 1, false);
    check(&logger, period, true);
    // Late by a few ms: the next one stays on the grid.
    logger
        .record(period + 7, UNIX_EPOCH_MS, &sample(1), &mut store)
        .unwrap();
    assert_eq!(logger.next_sample_at_ms(), 2 * period);
    // Three periods late: one sample, then one period from now.
    logger.skip_sample(5 * period + 10);
    assert_eq!(logger.next_sample_at_ms(), 6 * period + 10);
}

// --- Outbox, acks, eviction ---------------------------------------------------------------

#[test]
fn the_outbox_publishes_oldest_first_as_one_backlog() {
    let mut store = FaultyStore::default();
    let mut logger = boot(&mut store);
    let mut buf = [0u8; UPLINK_BYTES_MAX];
    assert_eq!(
        logger.next_uplink(0, &mut buf),
        None,
        "nothing recorded yet"
    );

    record_n(&mut logger, &mut store, 0, 1);
    let message = logger.next_uplink(0, &mut buf).unwrap();
    assert_eq!(
        protocol::Uplink::decode(message).unwrap().kind(),
        UplinkKind::Reading
    );
    assert_eq!(sequences_of(message), [0]);

    record_n(&mut logger, &mut store, 1, 4);
    let message = logger.next_uplink(0, &mut buf).unwrap();
    assert_eq!(
        protocol::Uplink::decode(message).unwrap().kind(),
        UplinkKind::Backlog
    );
    assert_eq!(sequences_of(message), [1, 2, 3, 4]);
    assert_eq!(logger.in_flight(), 5);
    assert_eq!(
        logger.next_uplink(0, &mut buf),
        None,
        "everything is in flight"
    );
}

#[test]
fn a_short_buffer_gets_as_many_readings_as_fit_and_the_rest_wait() {
    let mut store = FaultyStore::default();
    let mut logger = boot(&mut store);
    record_n(&mut logger, &mut store, 0, 5);
    let reading_len = logger.outbox().next().unwrap().signed_reading.len();

    // A single-reading message is the kind byte and the reading.
    let mut tiny = std::vec![0u8; reading_len];
    assert_eq!(logger.next_uplink(0, &mut tiny), None);
    assert_eq!(logger.in_flight(), 0);

    // Kind, count, and two length-prefixed readings.
    let mut two = std::vec![0u8; 2 + 2 * (1 + reading_len) + 10];
    assert_eq!(
        sequences_of(logger.next_uplink(0, &mut two).unwrap()),
        [0, 1]
    );
    assert_eq!(
        sequences_of(logger.next_uplink(0, &mut two).unwrap()),
        [2, 3]
    );
    assert_eq!(sequences_of(logger.next_uplink(0, &mut two).unwrap()), [4]);
}

#[test]
fn any_buffer_from_the_minimum_up_sends_every_reading_even_when_a_backlog_does_not_fit() {
    // From UPLINK_BUFFER_BYTES_MIN up to where a backlog of two fits, the readings go out one
    // single-reading message at a time; above it, as backlogs. Never stuck.
    for len in crate::UPLINK_BUFFER_BYTES_MIN..=2 + 3 * (2 + SIGNED_READING_BYTES_MAX) {
        let mut store = FaultyStore::default();
        let mut logger = boot(&mut store);
        record_n(&mut logger, &mut store, 0, 5);
        let mut buf = std::vec![0u8; len];
        let mut sent = Vec::new();
        while let Some(message) = logger.next_uplink(0, &mut buf) {
            let readings = sequences_of(message);
            let kind = protocol::Uplink::decode(message).unwrap().kind();
            let expected_kind = if readings.len() == 1 {
                UplinkKind::Reading
            } else {
                UplinkKind::Backlog
            };
            assert_eq!(kind, expected_kind, "buffer of {len} bytes");
            sent.extend(readings);
        }
        assert_eq!(sent, [0, 1, 2, 3, 4], "buffer of {len} bytes");
        assert_eq!(logger.in_flight(), 5, "buffer of {len} bytes");
    }
}

#[test]
fn a_backlog_message_holds_at_most_the_protocol_limit() {
    let mut store = FaultyStore::default();
    let mut logger: Logger<64> = Logger::boot(config(), key(), &mut store).unwrap();
    record_n(&mut logger, &mut store, 0, 60);
    let mut buf = [0u8; UPLINK_BYTES_MAX];
    let first = sequences_of(logger.next_uplink(0, &mut buf).unwrap());
    assert_eq!(first.len(), BACKLOG_READINGS_MAX);
    let second = sequences_of(logger.next_uplink(0, &mut buf).unwrap());
    assert_eq!(second, (50..60).collect::<Vec<_>>());
}

#[test]
fn an_ack_frees_exactly_the_named_sequences() {
    let mut store = FaultyStore::default();
    let mut logger = boot(&mut store);
    record_n(&mut logger, &mut store, 0, 5);
    let mut buf = [0u8; UPLINK_BYTES_MAX];
    logger.next_uplink(0, &mut buf).unwrap();

    let outcome = logger.on_ack(&ack_bytes(DEVICE, &[1, 3])).unwrap();
    assert_eq!(
        outcome,
        AckOutcome {
            freed: 2,
            not_in_outbox: 0,
            journal_failures: 0,
        }
    );
    assert_eq!(outbox_sequences(&logger), [0, 2, 4]);
    // Acking again is harmless.
    let outcome = logger.on_ack(&ack_bytes(DEVICE, &[1, 3])).unwrap();
    assert_eq!(
        outcome,
        AckOutcome {
            freed: 0,
            not_in_outbox: 2,
            journal_failures: 0,
        }
    );
    // A pending reading can be acked too (the backend got an earlier copy).
    logger.on_connection_lost();
    let outcome = logger.on_ack(&ack_bytes(DEVICE, &[0, 4])).unwrap();
    assert_eq!(outcome.freed, 2);
    assert_eq!(outbox_sequences(&logger), [2]);
}

#[test]
fn a_full_outbox_evicts_the_oldest_and_the_next_reading_says_so() {
    let mut store = FaultyStore::default();
    let mut logger: Logger<4> = Logger::boot(config(), key(), &mut store).unwrap();
    record_n(&mut logger, &mut store, 0, 6);
    assert_eq!(outbox_sequences(&logger), [2, 3, 4, 5]);
    assert_eq!(logger.dropped_total(), 2);
    assert_eq!(logger.outbox_len(), 4);

    let mut buf = [0u8; UPLINK_BYTES_MAX];
    let readings = readings_of(logger.next_uplink(0, &mut buf).unwrap());
    let dropped: Vec<(u64, u32)> = readings
        .iter()
        .map(|r| (r.sequence.0, r.dropped_samples))
        .collect();
    // 0 and 1 are gone; 4 and 5 each sign that one reading was dropped before them.
    assert_eq!(dropped, [(2, 0), (3, 0), (4, 1), (5, 1)]);
    // In-flight readings are evicted too when the outbox is full.
    record_n(&mut logger, &mut store, 6, 1);
    assert_eq!(outbox_sequences(&logger), [3, 4, 5, 6]);
    assert_eq!(logger.dropped_total(), 3);
}

#[test]
fn an_evicted_reading_passes_on_the_count_it_carried() {
    // One slot: b evicts a (b says 1), c evicts b (c says 2: b and the one b carried), d
    // evicts c (3). Only d reaches the backend, and it signs the whole gap.
    let mut store = FaultyStore::default();
    let mut logger: Logger<1> = Logger::boot(config(), key(), &mut store).unwrap();
    let mut buf = [0u8; UPLINK_BYTES_MAX];
    let mut signed = Vec::new();
    for i in 0..4 {
        record_n(&mut logger, &mut store, i, 1);
        let readings = readings_of(logger.next_uplink(0, &mut buf).unwrap());
        signed.push((readings[0].sequence.0, readings[0].dropped_samples));
    }
    assert_eq!(signed, [(0, 0), (1, 1), (2, 2), (3, 3)]);
    assert_eq!(logger.dropped_total(), 3);
    // Acknowledged readings carry nothing on: the next eviction counts 1 again.
    logger.on_ack(&ack_bytes(DEVICE, &[3])).unwrap();
    record_n(&mut logger, &mut store, 4, 2);
    let readings = readings_of(logger.next_uplink(0, &mut buf).unwrap());
    assert_eq!(
        readings
            .iter()
            .map(|r| (r.sequence.0, r.dropped_samples))
            .collect::<Vec<_>>(),
        [(5, 1)]
    );
}

#[test]
fn an_ack_naming_an_eviction_gap_or_a_rejected_reading_does_not_stall_the_outbox() {
    let mut store = FaultyStore::default();
    let mut logger: Logger<4> = Logger::boot(config(), key(), &mut store).unwrap();
    record_n(&mut logger, &mut store, 0, 6);
    let mut buf = [0u8; UPLINK_BYTES_MAX];
    logger.next_uplink(0, &mut buf).unwrap();
    // The backend committed 3 and 5, rejected 2 for good, and still works on 4; 0 and 1
    // never arrived (evicted) and it names them as done so nothing waits for them.
    let outcome = logger.on_ack(&ack_bytes(DEVICE, &[0, 1, 2, 3, 5])).unwrap();
    assert_eq!(
        outcome,
        AckOutcome {
            freed: 3,
            not_in_outbox: 2,
            journal_failures: 0,
        }
    );
    assert_eq!(outbox_sequences(&logger), [4]);
    // New readings keep flowing; 4 is resent after the timeout together with them.
    record_n(&mut logger, &mut store, 6, 2);
    let later = u64::from(RESEND_AFTER_MS);
    assert_eq!(
        sequences_of(logger.next_uplink(later, &mut buf).unwrap()),
        [4, 6, 7]
    );
}

#[test]
fn in_flight_readings_are_resent_after_the_timeout() {
    let mut store = FaultyStore::default();
    let mut logger = boot(&mut store);
    record_n(&mut logger, &mut store, 0, 2);
    let mut buf = [0u8; UPLINK_BYTES_MAX];
    let t0 = 1_000;
    assert_eq!(
        sequences_of(logger.next_uplink(t0, &mut buf).unwrap()),
        [0, 1]
    );
    record_n(&mut logger, &mut store, 2, 1);
    let t1 = t0 + 100;
    assert_eq!(sequences_of(logger.next_uplink(t1, &mut buf).unwrap()), [2]);
    let resend = u64::from(RESEND_AFTER_MS);
    assert_eq!(logger.next_uplink(t0 + resend - 1, &mut buf), None);
    assert_eq!(
        sequences_of(logger.next_uplink(t0 + resend, &mut buf).unwrap()),
        [0, 1]
    );
    assert_eq!(
        sequences_of(logger.next_uplink(t1 + resend, &mut buf).unwrap()),
        [2]
    );
    let states: Vec<DeliveryState> = logger.outbox().map(|e| e.state).collect();
    assert_eq!(
        states,
        [
            DeliveryState::InFlight {
                since_ms: t0 + resend
            },
            DeliveryState::InFlight {
                since_ms: t0 + resend
            },
            DeliveryState::InFlight {
                since_ms: t1 + resend
            },
        ]
    );
}

#[test]
fn a_lost_connection_makes_everything_in_flight_go_out_again_at_once() {
    let mut store = FaultyStore::default();
    let mut logger = boot(&mut store);
    record_n(&mut logger, &mut store, 0, 3);
    let mut buf = [0u8; UPLINK_BYTES_MAX];
    logger.next_uplink(0, &mut buf).unwrap();
    logger.on_ack(&ack_bytes(DEVICE, &[1])).unwrap();
    assert_eq!(logger.in_flight(), 2);
    logger.on_connection_lost();
    assert_eq!(logger.in_flight(), 0);
    assert_eq!(
        sequences_of(logger.next_uplink(1, &mut buf).unwrap()),
        [0, 2]
    );
}

#[test]
fn acks_for_another_device_or_malformed_acks_are_refused_and_change_nothing() {
    let mut store = FaultyStore::default();
    let mut logger = boot(&mut store);
    record_n(&mut logger, &mut store, 0, 3);
    let other = DeviceId([1; 8]);
    let check = |logger: &mut TestLogger, payload: &[u8], expected: AckRefused| {
        assert_eq!(logger.on_ack(payload), Err(expected));
        assert_eq!(outbox_sequences(logger), [0, 1, 2]);
    };
    check(
        &mut logger,
        &ack_bytes(other, &[0, 1, 2]),
        AckRefused::OtherDevice {
            expected: DEVICE,
            got: other,
        },
    );
    check(&mut logger, &[], AckRefused::Malformed(AckError::Malformed));
    let mut truncated = ack_bytes(DEVICE, &[0, 1, 2]);
    truncated.pop();
    check(
        &mut logger,
        &truncated,
        AckRefused::Malformed(AckError::Malformed),
    );
}

#[test]
fn topics_name_this_device() {
    let mut store = FaultyStore::default();
    let logger = boot(&mut store);
    assert_eq!(
        logger.readings_topic(),
        "agritrace/v1/devices/deadbeef00000007/readings"
    );
    assert_eq!(
        logger.acks_topic(),
        "agritrace/v1/devices/deadbeef00000007/acks"
    );
}

// --- The driver step ----------------------------------------------------------------------

/// An in-memory uplink: records what is published, hands out queued acks, fails on demand.
#[derive(Debug, Default)]
struct ScriptedUplink {
    published: Vec<(std::string::String, Vec<u8>)>,
    acks: std::collections::VecDeque<Vec<u8>>,
    down: bool,
}

/// Why the scripted uplink failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct LinkDown;

impl Uplink for ScriptedUplink {
    type Error = LinkDown;

    fn publish(&mut self, topic: &str, payload: &[u8]) -> Result<(), LinkDown> {
        if self.down {
            return Err(LinkDown);
        }
        self.published.push((topic.into(), payload.to_vec()));
        Ok(())
    }

    fn receive_ack(&mut self, buf: &mut [u8]) -> Result<Option<usize>, LinkDown> {
        if self.down {
            return Err(LinkDown);
        }
        Ok(self.acks.pop_front().map(|ack| {
            buf[..ack.len()].copy_from_slice(&ack);
            ack.len()
        }))
    }
}

#[test]
fn step_samples_publishes_and_applies_acks() {
    let mut store = MemorySequenceStore::new();
    let mut logger: TestLogger = Logger::boot(config(), key(), &mut store).unwrap();
    let mut uplink = ScriptedUplink::default();
    let mut buf = [0u8; UPLINK_BYTES_MAX];
    let period = u64::from(PERIOD_MS);

    let ok = || Ok::<_, ()>(sample(0));
    let report = step(
        &mut logger,
        &mut uplink,
        &mut store,
        0,
        UNIX_EPOCH_MS,
        ok,
        &mut buf,
    );
    assert_eq!(report.sample, SampleOutcome::Recorded(SequenceNumber(0)));
    assert_eq!(
        (report.messages_published, report.readings_published),
        (1, 1)
    );
    let (topic, message) = &uplink.published[0];
    assert_eq!(topic, "agritrace/v1/devices/deadbeef00000007/readings");
    assert_eq!(sequences_of(message), [0]);

    // Not due yet: nothing sampled, nothing to publish.
    let report = step(
        &mut logger,
        &mut uplink,
        &mut store,
        10,
        UNIX_EPOCH_MS,
        ok,
        &mut buf,
    );
    assert_eq!(report.sample, SampleOutcome::NotDue);
    assert_eq!(report.messages_published, 0);

    // A sensor failure skips the sample and uses no number.
    let failing = || Err::<Sample, _>("i2c nack");
    let report = step(
        &mut logger,
        &mut uplink,
        &mut store,
        period,
        0,
        failing,
        &mut buf,
    );
    assert_eq!(report.sample, SampleOutcome::SensorFailed("i2c nack"));
    assert_eq!(logger.next_sequence(), SequenceNumber(1));

    // The link goes down: the new reading stays, the in-flight one becomes pending.
    uplink.down = true;
    let report = step(
        &mut logger,
        &mut uplink,
        &mut store,
        2 * period,
        0,
        ok,
        &mut buf,
    );
    assert_eq!(report.sample, SampleOutcome::Recorded(SequenceNumber(1)));
    assert_eq!(report.uplink_error, Some(LinkDown));
    assert_eq!((logger.outbox_len(), logger.in_flight()), (2, 0));

    // Back up, with an ack for 0, a refused ack, and a garbled one waiting.
    uplink.down = false;
    uplink.acks.push_back(ack_bytes(DEVICE, &[0]));
    uplink.acks.push_back(ack_bytes(DeviceId([9; 8]), &[1]));
    uplink.acks.push_back(std::vec![1, 2, 3]);
    let report = step(
        &mut logger,
        &mut uplink,
        &mut store,
        2 * period + 1,
        0,
        ok,
        &mut buf,
    );
    assert_eq!(
        (
            report.acks_applied,
            report.readings_freed,
            report.acks_refused
        ),
        (1, 1, 2)
    );
    assert_eq!(
        report.last_refusal,
        Some(AckRefused::Malformed(AckError::Malformed))
    );
    assert_eq!(sequences_of(&uplink.published.last().unwrap().1), [1]);
    uplink.acks.push_back(ack_bytes(DEVICE, &[1]));
    step(
        &mut logger,
        &mut uplink,
        &mut store,
        2 * period + 2,
        0,
        ok,
        &mut buf,
    );
    assert_eq!(logger.outbox_len(), 0);
}
