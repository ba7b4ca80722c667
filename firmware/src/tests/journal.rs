//! Tests of the outbox journal ([`crate::FlashJournal`]) under the logger, on
//! [`crate::MemoryFlash`] (which enforces the NOR rules and cuts the power mid-write):
//! table tests of reboot, torn writes at every byte, cut ack marks, both kinds of eviction and
//! the geometry checks; then a property test of random record / ack / power cut / reboot
//! sequences against a model.
//!
//! Model of the property test: the readings the device must still hold (`must`: in the outbox,
//! so durable), the readings whose fate a power cut left open (`maybe`: an ack or eviction
//! whose journal mark may not have landed), and every sequence number ever handed out. After
//! each reboot the restored outbox must hold every `must` reading byte for byte (except the
//! oldest ones the restore itself evicts and counts), nothing outside `must` and `maybe`
//! (nothing acknowledged comes back, no torn record), in order, all due for sending; and no
//! sequence number is ever handed out twice.

use std::collections::{BTreeMap, BTreeSet};
use std::vec::Vec;

use embedded_storage::nor_flash::NorFlash;
use proptest::prelude::*;
use protocol::SequenceNumber;

use super::{DEVICE, ack_bytes, config, key, sample};
use crate::journal::{GeometryError, JournalError, OutboxJournal};
use crate::{DeliveryState, FlashJournal, Logger, MemoryFlash, MemorySequenceStore, RecordError};

const PERIOD_MS: u64 = 60_000;

/// 4 sectors of 512 bytes, 4-byte writes: 3 records of 152 bytes per sector.
type Flash = MemoryFlash<2048, 4, 512>;

fn journal_on<F: NorFlash>(flash: F) -> FlashJournal<F> {
    let capacity = u32::try_from(flash.capacity()).unwrap();
    FlashJournal::open(flash, 0..capacity).unwrap()
}

fn boot_on<const N: usize, F: NorFlash>(
    flash: F,
    store: &mut MemorySequenceStore,
) -> Logger<N, FlashJournal<F>> {
    Logger::boot_with_journal(config(), key(), store, journal_on(flash)).unwrap()
}

/// Powers the flash back up and boots again on it (a reboot after a cut or a clean stop).
fn reboot<const N: usize, F: NorFlash>(
    logger: Logger<N, FlashJournal<F>>,
    store: &mut MemorySequenceStore,
    power_up: impl FnOnce(&mut F),
) -> Logger<N, FlashJournal<F>> {
    let mut flash = logger.into_journal().into_flash();
    power_up(&mut flash);
    boot_on(flash, store)
}

fn record<const N: usize, F: NorFlash>(
    logger: &mut Logger<N, FlashJournal<F>>,
    store: &mut MemorySequenceStore,
    i: u64,
) -> Result<u64, RecordError<core::convert::Infallible, JournalError<F::Error>>> {
    let now = logger.next_sample_at_ms().max(i * PERIOD_MS);
    logger
        .record(now, 1_760_000_000_000 + now, &sample(i), store)
        .map(|s| s.0)
}

fn outbox<const N: usize, F: NorFlash>(logger: &Logger<N, FlashJournal<F>>) -> Vec<(u64, Vec<u8>)> {
    logger
        .outbox()
        .map(|e| (e.sequence.0, e.signed_reading.to_vec()))
        .collect()
}

fn dropped_samples(signed: &[u8]) -> u32 {
    protocol::verify_signed_reading(signed, &key().verifying_key())
        .unwrap()
        .dropped_samples
}

/// What evicting a reading adds to the next reading's `dropped_samples`: itself and the count
/// it carried.
fn eviction_weight(signed: &[u8]) -> u32 {
    1 + dropped_samples(signed)
}

#[test]
fn a_reboot_restores_every_unacknowledged_reading_byte_for_byte_in_order() {
    let mut store = MemorySequenceStore::new();
    let mut logger = boot_on::<8, _>(Flash::new(), &mut store);
    for i in 0..5 {
        record(&mut logger, &mut store, i).unwrap();
    }
    let mut buf = [0u8; 2048];
    assert!(logger.next_uplink(0, &mut buf).is_some());
    logger.on_ack(&ack_bytes(DEVICE, &[1, 3])).unwrap();
    let before = outbox(&logger);
    assert_eq!(before.iter().map(|r| r.0).collect::<Vec<_>>(), [0, 2, 4]);

    let logger = reboot(logger, &mut store, |_| {});
    assert_eq!(outbox(&logger), before);
    // In flight before the reboot, due at once after it.
    assert!(logger.outbox().all(|e| e.state == DeliveryState::Pending));
    assert_eq!(logger.restored().restored, 3);
    assert!(logger.next_sequence().0 > 4);
}

#[test]
fn the_sequence_continues_above_the_journal_even_if_the_store_lost_its_mark() {
    let mut store = MemorySequenceStore::new();
    let mut logger = boot_on::<8, _>(Flash::new(), &mut store);
    for i in 0..3 {
        record(&mut logger, &mut store, i).unwrap();
    }
    let mut forgetful = MemorySequenceStore::new();
    let logger = reboot(logger, &mut forgetful, |_| {});
    assert!(logger.next_sequence().0 > 2, "{logger:?}");
}

/// Records three readings, cuts the power after `cut` bytes of the fourth record's write
/// (`None`: no cut), reboots, and returns whether the append returned `Ok`, what was
/// restored, and the flash as the reboot found it.
fn restored_after_a_cut_append(cut: Option<usize>) -> (bool, Vec<u64>, Vec<u8>) {
    let mut store = MemorySequenceStore::new();
    let mut logger = boot_on::<8, _>(Flash::new(), &mut store);
    for i in 0..3 {
        record(&mut logger, &mut store, i).unwrap();
    }
    if let Some(cut) = cut {
        logger.journal_mut().flash_mut().cut_power_after(cut);
    }
    let appended = record(&mut logger, &mut store, 3).is_ok();
    let logger = reboot(logger, &mut store, Flash::restore_power);
    let restored: Vec<u64> = outbox(&logger).iter().map(|r| r.0).collect();
    // The fourth number is never handed out again, whether or not its record landed.
    assert!(logger.next_sequence().0 > 3);
    let contents = logger.journal().flash().contents().to_vec();
    (appended, restored, contents)
}

#[test]
fn a_write_cut_at_any_byte_restores_no_torn_record_and_loses_no_durable_one() {
    // The fourth record's body: slot 0 of sector 1, after the 4-byte mark; 148 bytes (18 of
    // header, the reading, 0xFF padding up to 130 bytes of reading).
    const BODY: core::ops::Range<usize> = 516..516 + 148;
    let (appended, restored, contents) = restored_after_a_cut_append(None);
    assert!(appended);
    assert_eq!(restored, [0, 1, 2, 3]);
    let body = &contents[BODY];
    for cut in 0..=150 {
        let (appended, restored, _) = restored_after_a_cut_append(Some(cut));
        assert_eq!(appended, cut >= body.len(), "power cut after {cut} bytes");
        // A cut write is restored only if what it did not write was erased flash anyway (the
        // 0xFF padding): then the record is whole, and it is a reading like any other.
        let whole = body
            .get(cut..)
            .is_none_or(|rest| rest.iter().all(|&b| b == 0xFF));
        let expected: &[u64] = if whole { &[0, 1, 2, 3] } else { &[0, 1, 2] };
        assert_eq!(restored, expected, "power cut after {cut} bytes");
    }
}

#[test]
fn a_cut_ack_mark_leaves_the_reading_live_or_retired_and_never_half_restored() {
    for cut in 0..=4 {
        let mut store = MemorySequenceStore::new();
        let mut logger = boot_on::<8, _>(Flash::new(), &mut store);
        for i in 0..3 {
            record(&mut logger, &mut store, i).unwrap();
        }
        logger.journal_mut().flash_mut().cut_power_after(cut);
        let outcome = logger.on_ack(&ack_bytes(DEVICE, &[1])).unwrap();
        assert_eq!(outcome.freed, 1);
        let logger = reboot(logger, &mut store, Flash::restore_power);
        let restored: Vec<u64> = outbox(&logger).iter().map(|r| r.0).collect();
        // Any cleared bit retires: a cut after the first byte already counts.
        let expected: &[u64] = if cut == 0 { &[0, 1, 2] } else { &[0, 2] };
        assert_eq!(
            restored, expected,
            "power cut after {cut} bytes of the mark"
        );
        assert_eq!(outcome.journal_failures, usize::from(cut < 4), "cut {cut}");
    }
}

#[test]
fn a_full_ring_evicts_the_oldest_sector_and_the_next_reading_counts_it() {
    // 2 sectors of 3 records; the RAM outbox is larger, so the ring is what fills up.
    let mut store = MemorySequenceStore::new();
    let mut logger = boot_on::<16, _>(MemoryFlash::<1024, 4, 512>::new(), &mut store);
    for i in 0..6 {
        record(&mut logger, &mut store, i).unwrap();
    }
    assert!(logger.journal().next_append_erases().is_some());
    record(&mut logger, &mut store, 6).unwrap();
    let held = outbox(&logger);
    assert_eq!(held.iter().map(|r| r.0).collect::<Vec<_>>(), [3, 4, 5, 6]);
    assert_eq!(dropped_samples(&held[3].1), 3);
    assert_eq!(logger.dropped_total(), 3);
    let logger = reboot(logger, &mut store, |_| {});
    assert_eq!(outbox(&logger), held);
}

#[test]
fn acknowledged_sectors_are_erased_early_and_reused_without_eviction() {
    let mut store = MemorySequenceStore::new();
    let mut logger = boot_on::<16, _>(MemoryFlash::<1024, 4, 512>::new(), &mut store);
    let mut sequences = Vec::new();
    for i in 0..30 {
        let sequence = record(&mut logger, &mut store, i).unwrap();
        sequences.push(sequence);
        logger.on_ack(&ack_bytes(DEVICE, &[sequence])).unwrap();
        assert_eq!(logger.outbox_len(), 0);
    }
    assert_eq!(logger.dropped_total(), 0);
    // Every full sector was erased as its last record was acknowledged: 30 records in 3-record
    // sectors, one erase per sector, no erase left for the appends to do.
    assert_eq!(logger.journal().flash().erases(), 10);
    let logger = reboot(logger, &mut store, |_| {});
    assert_eq!(logger.outbox_len(), 0);
    assert!(logger.next_sequence().0 > *sequences.last().unwrap());
}

#[test]
fn a_smaller_outbox_after_a_reboot_keeps_the_newest_and_counts_the_rest() {
    let mut store = MemorySequenceStore::new();
    let mut logger = boot_on::<8, _>(Flash::new(), &mut store);
    for i in 0..7 {
        record(&mut logger, &mut store, i).unwrap();
    }
    let flash = logger.into_journal().into_flash();
    let mut small = boot_on::<4, _>(flash, &mut store);
    assert_eq!(
        outbox(&small).iter().map(|r| r.0).collect::<Vec<_>>(),
        [3, 4, 5, 6]
    );
    assert_eq!(small.restored().evicted, 3);
    assert_eq!(small.dropped_total(), 3);
    let sequence = record(&mut small, &mut store, 7).unwrap();
    // Full again: the new reading evicts one more and counts the three of the restore too.
    let newest = outbox(&small).pop().unwrap();
    assert_eq!(newest.0, sequence);
    assert_eq!(dropped_samples(&newest.1), 4);
    // The evicted ones stay evicted.
    let small = reboot(small, &mut store, |_| {});
    assert_eq!(
        outbox(&small).iter().map(|r| r.0).collect::<Vec<_>>(),
        [4, 5, 6, sequence]
    );
}

#[test]
fn readings_the_restore_evicts_pass_on_the_counts_they_carried() {
    let mut store = MemorySequenceStore::new();
    let mut logger = boot_on::<2, _>(Flash::new(), &mut store);
    for i in 0..4 {
        record(&mut logger, &mut store, i).unwrap();
    }
    // 2 evicted 0 (says 1), 3 evicted 1 (says 1).
    let held = outbox(&logger);
    let signed: Vec<(u64, u32)> = held.iter().map(|r| (r.0, dropped_samples(&r.1))).collect();
    assert_eq!(signed, [(2, 1), (3, 1)]);
    // A reboot with one slot keeps 3 and evicts 2, which carried one eviction.
    let flash = logger.into_journal().into_flash();
    let mut small = boot_on::<1, _>(flash, &mut store);
    assert_eq!(small.restored().evicted, 1);
    assert_eq!(small.uncounted_drops(), 2);
    record(&mut small, &mut store, 4).unwrap();
    // The new reading evicts 3 (1 + its 1) and signs the 2 of the restore: 4 readings (0 to
    // 3) are gone, and the only one left says so.
    let newest = outbox(&small);
    assert_eq!(newest.len(), 1);
    assert_eq!(dropped_samples(&newest[0].1), 4);
    assert_eq!(small.uncounted_drops(), 0);
}

fn round_trip_with_write_size<const W: usize, const E: usize, const BYTES: usize>() {
    let mut store = MemorySequenceStore::new();
    let mut logger = boot_on::<8, _>(MemoryFlash::<BYTES, W, E>::new(), &mut store);
    for i in 0..12 {
        let sequence = record(&mut logger, &mut store, i).unwrap();
        if i % 3 == 0 {
            logger.on_ack(&ack_bytes(DEVICE, &[sequence])).unwrap();
        }
    }
    let before = outbox(&logger);
    let logger = reboot(logger, &mut store, |_| {});
    assert_eq!(outbox(&logger), before, "write size {W}, sector {E}");
}

#[test]
fn the_journal_works_with_byte_word_and_ecc_line_write_sizes() {
    round_trip_with_write_size::<1, 256, 2048>();
    round_trip_with_write_size::<4, 4096, 16384>();
    round_trip_with_write_size::<16, 1024, 4096>();
    round_trip_with_write_size::<32, 512, 4096>();
}

#[test]
fn unusable_regions_are_refused() {
    fn check<F: NorFlash + core::fmt::Debug>(
        flash: F,
        region: core::ops::Range<u32>,
        expected: GeometryError,
    ) where
        F::Error: PartialEq,
    {
        let error = FlashJournal::open(flash, region.clone()).unwrap_err();
        assert_eq!(error, JournalError::Geometry(expected), "{region:?}");
    }
    check(Flash::new(), 0..512, GeometryError::TooSmall);
    check(Flash::new(), 100..1124, GeometryError::NotAligned);
    check(Flash::new(), 0..4096, GeometryError::OutOfBounds);
    // A 256-byte write unit makes a 512-byte slot: larger than a 256-byte sector.
    check(
        MemoryFlash::<2048, 256, 256>::new(),
        0..2048,
        GeometryError::SlotDoesNotFit,
    );
    // A journal in the second half leaves the first half alone.
    let mut flash = Flash::new();
    flash.write(0, &[0x12; 4]).unwrap();
    let mut store = MemorySequenceStore::new();
    let mut logger: Logger<8, _> = Logger::boot_with_journal(config(), key(), &mut store, {
        FlashJournal::open(flash, 1024..2048).unwrap()
    })
    .unwrap();
    for i in 0..10 {
        record(&mut logger, &mut store, i).unwrap();
    }
    assert_eq!(&logger.journal().flash().contents()[..4], &[0x12; 4]);
}

#[test]
fn garbage_in_the_ring_is_skipped_and_written_around() {
    let mut flash = Flash::new();
    // A torn record (magic and part of a header) in slot 1 of sector 0, and noise in sector 2.
    flash.write(152 + 4, b"atj1\x05\x00\x00\x00").unwrap();
    flash.write(1024 + 40, &[0x00; 8]).unwrap();
    let mut store = MemorySequenceStore::new();
    let journal = journal_on(flash);
    assert_eq!(journal.torn_at_open(), 2);
    let mut logger: Logger<8, _> =
        Logger::boot_with_journal(config(), key(), &mut store, journal).unwrap();
    assert_eq!(logger.outbox_len(), 0);
    for i in 0..10 {
        record(&mut logger, &mut store, i).unwrap();
    }
    let before = outbox(&logger);
    let logger = reboot(logger, &mut store, |_| {});
    assert_eq!(outbox(&logger), before);
}

// ---------------------------------------------------------------------------------------
// Property test.

#[derive(Clone, Debug)]
enum Op {
    Record,
    /// Acks the readings of the outbox whose bit (by position, modulo 64) is set.
    Ack(u64),
    /// Cuts the power after this many more bytes of writes.
    PowerCut(usize),
    Reboot,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => Just(Op::Record),
        3 => any::<u64>().prop_map(Op::Ack),
        1 => (0usize..400).prop_map(Op::PowerCut),
        2 => Just(Op::Reboot),
    ]
}

#[derive(Debug, Default)]
struct Model {
    /// Readings whose fate a power cut left open (they may come back after a reboot).
    maybe: BTreeMap<u64, Vec<u8>>,
    /// Every sequence number handed out or burnt.
    used: BTreeSet<u64>,
    /// Evictions not yet counted in a signed reading.
    uncounted: u32,
    /// Sequence numbers of appends that failed.
    burnt: BTreeSet<u64>,
    /// Whether the power was cut since the last boot.
    cut_since_boot: bool,
}

fn run<const N: usize, F: NorFlash>(
    flash: F,
    ops: &[Op],
    cut_power: impl Fn(&mut F, usize),
    power_up: impl Fn(&mut F),
    is_cut: impl Fn(&F) -> bool,
) -> Result<(), TestCaseError> {
    let mut store = MemorySequenceStore::new();
    let mut logger = boot_on::<N, F>(flash, &mut store);
    let mut model = Model::default();
    for (i, op) in (0u64..).zip(ops) {
        let before: BTreeMap<u64, Vec<u8>> = outbox(&logger).into_iter().collect();
        let was_cut = is_cut(logger.journal().flash());
        match op {
            Op::Record => {
                let next = logger.next_sequence().0;
                let result = record(&mut logger, &mut store, i);
                let after: BTreeMap<u64, Vec<u8>> = outbox(&logger).into_iter().collect();
                let removed: Vec<u64> = before
                    .keys()
                    .filter(|s| !after.contains_key(s))
                    .copied()
                    .collect();
                let cut_now = is_cut(logger.journal().flash());
                prop_assert!(model.used.iter().all(|&u| u < next), "{next} reused");
                match result {
                    Ok(sequence) => {
                        prop_assert_eq!(sequence, next);
                        model.used.insert(sequence);
                        let signed = after.get(&sequence).cloned().unwrap_or_default();
                        let removed_weight: u32 =
                            removed.iter().map(|s| eviction_weight(&before[s])).sum();
                        prop_assert_eq!(dropped_samples(&signed), model.uncounted + removed_weight);
                        model.uncounted = 0;
                        // Evictions take the oldest readings.
                        if let Some(&kept) = after.keys().next() {
                            prop_assert!(removed.iter().all(|&r| r < kept));
                        }
                    }
                    Err(RecordError::Journal(_)) => {
                        prop_assert!(was_cut || cut_now, "a journal error without a power cut");
                        // A failed append burns its number.
                        if logger.next_sequence().0 > next {
                            model.used.insert(next);
                            model.burnt.insert(next);
                        }
                        model.uncounted += removed
                            .iter()
                            .map(|s| eviction_weight(&before[s]))
                            .sum::<u32>();
                    }
                    Err(other) => prop_assert!(false, "unexpected {other:?}"),
                }
                if cut_now {
                    for sequence in removed {
                        model.maybe.insert(sequence, before[&sequence].clone());
                    }
                }
            }
            Op::Ack(mask) => {
                let chosen: Vec<u64> = before
                    .keys()
                    .enumerate()
                    .filter(|(index, _)| mask & (1 << (index % 64)) != 0)
                    .map(|(_, &s)| s)
                    .collect();
                if chosen.is_empty() {
                    continue;
                }
                let outcome = logger.on_ack(&ack_bytes(DEVICE, &chosen)).unwrap();
                prop_assert_eq!(outcome.freed, chosen.len());
                if is_cut(logger.journal().flash()) {
                    for sequence in chosen {
                        model.maybe.insert(sequence, before[&sequence].clone());
                    }
                } else {
                    prop_assert_eq!(outcome.journal_failures, 0);
                }
            }
            Op::PowerCut(bytes) => {
                model.cut_since_boot = true;
                cut_power(logger.journal_mut().flash_mut(), *bytes);
            }
            Op::Reboot => {
                let must = before;
                logger = reboot(logger, &mut store, &power_up);
                let restored = outbox(&logger);
                let restored_map: BTreeMap<u64, Vec<u8>> = restored.iter().cloned().collect();
                // In order, all due.
                prop_assert!(restored.windows(2).all(|w| w[0].0 < w[1].0));
                prop_assert!(logger.outbox().all(|e| e.state == DeliveryState::Pending));
                // Nothing comes back that was acknowledged or evicted for sure, nothing torn;
                // what comes back is byte-identical. A record whose append was cut comes back
                // only if the cut spared all of it but erased padding: then it is a whole,
                // signed reading under its own (burnt) number.
                for (sequence, bytes) in &restored {
                    match must.get(sequence).or_else(|| model.maybe.get(sequence)) {
                        Some(expected) => prop_assert_eq!(bytes, expected),
                        None => {
                            prop_assert!(model.burnt.contains(sequence), "{} came back", sequence);
                            let reading =
                                protocol::verify_signed_reading(bytes, &key().verifying_key());
                            prop_assert_eq!(reading.map(|r| r.sequence.0), Ok(*sequence));
                        }
                    }
                }
                // Every reading the device held is back, unless the restore itself evicted it
                // (the oldest, counted).
                let evicted = logger.restored().evicted;
                let missing: Vec<u64> = must
                    .keys()
                    .filter(|s| !restored_map.contains_key(s))
                    .copied()
                    .collect();
                prop_assert!(missing.len() <= evicted, "lost {:?}", missing);
                if let Some(&oldest_kept) = restored_map.keys().next() {
                    prop_assert!(missing.iter().all(|&m| m < oldest_kept));
                }
                prop_assert!(restored.len() <= N);
                prop_assert!(model.used.iter().all(|&u| u < logger.next_sequence().0));
                // The readings the restore evicted pass on what they carried. Without a power
                // cut since the last boot the journal held exactly the outbox, so the count is
                // known exactly; after one, `maybe` and burnt readings may add to it.
                let missing_weight: u64 = missing
                    .iter()
                    .map(|s| u64::from(eviction_weight(&must[s])))
                    .sum();
                if model.cut_since_boot {
                    prop_assert!(logger.uncounted_drops() >= missing_weight);
                } else {
                    prop_assert_eq!(logger.uncounted_drops(), missing_weight);
                }
                model.cut_since_boot = false;
                model.maybe.clear();
                model.uncounted = u32::try_from(logger.uncounted_drops()).unwrap();
            }
        }
    }
    Ok(())
}

fn memory_run<const BYTES: usize, const W: usize, const E: usize, const N: usize>(
    ops: &[Op],
) -> Result<(), TestCaseError> {
    run::<N, MemoryFlash<BYTES, W, E>>(
        MemoryFlash::new(),
        ops,
        MemoryFlash::cut_power_after,
        MemoryFlash::restore_power,
        MemoryFlash::power_cut,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// The RAM outbox (5) is smaller than the ring (12 slots): the outbox evicts first.
    #[test]
    fn reboots_and_power_cuts_lose_nothing_durable_and_bring_back_nothing_retired(
        ops in proptest::collection::vec(op(), 1..80)
    ) {
        memory_run::<2048, 4, 512, 5>(&ops)?;
    }

    /// The ring (4 sectors of 2 slots, 16-byte writes) is smaller than the outbox (10): the
    /// ring evicts whole sectors.
    #[test]
    fn a_ring_smaller_than_the_outbox_evicts_by_sector_and_still_loses_nothing_else(
        ops in proptest::collection::vec(op(), 1..80)
    ) {
        memory_run::<2048, 16, 512, 10>(&ops)?;
    }
}

#[test]
fn sequence_numbers_of_the_journal_are_what_the_logger_handed_out() {
    let mut store = MemorySequenceStore::new();
    let mut logger = boot_on::<8, _>(Flash::new(), &mut store);
    let handed_out: Vec<u64> = (0..4)
        .map(|i| record(&mut logger, &mut store, i).unwrap())
        .collect();
    assert_eq!(
        logger.journal().newest_sequence(),
        Some(SequenceNumber(*handed_out.last().unwrap()))
    );
}
