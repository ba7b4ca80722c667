//! Tests of the batcher core: deduplication, unit bounds, and what is acked when.

use super::*;
use crate::test_support::{T0, device, key, reading, signed};
use ledger::entry::Entry;

type Token = &'static str;

fn accepted(n: u8, sequence: u64, temperature: i16) -> Verdict {
    let bytes = signed(&reading(device(n), sequence, temperature), &key(n));
    Verdict::Accepted(AcceptedReading {
        device: device(n),
        sequence: SequenceNumber(sequence),
        device_time_ms: T0 + sequence * 1000,
        leaf: leaf_hash(&bytes),
        signed: bytes,
        ingest_time_ms: T0 + 100_000,
        clock_skewed: false,
    })
}

fn rejected(reason: RejectReason, n: u8, sequence: Option<u64>, ackable: bool) -> Verdict {
    Verdict::Rejected(Rejection {
        reason,
        device: Some(device(n)),
        sequence: sequence.map(SequenceNumber),
        ackable,
        topic: protocol::topic::readings_topic(device(n)).to_string(),
        bytes: vec![n, 1, 2, 3],
        original_len: 4,
        ingest_time_ms: T0,
    })
}

fn message(token: Token, verdicts: Vec<Verdict>) -> VerifiedMessage<Token> {
    VerifiedMessage { token, verdicts }
}

fn committed_reading(n: u8, sequence: u64, temperature: i16) -> Committed {
    let bytes = signed(&reading(device(n), sequence, temperature), &key(n));
    let mut committed = Committed::default();
    committed
        .readings
        .insert((device(n), SequenceNumber(sequence)), leaf_hash(&bytes));
    committed
}

/// The acks of a completion as `device:first-last` strings, and its tokens.
fn acks_of(completion: &Completion<Token>) -> (Vec<Token>, Vec<String>) {
    let acks = completion
        .device_acks
        .iter()
        .flat_map(|ack| {
            ack.ranges()
                .iter()
                .map(|r| format!("{}:{}-{}", ack.device.0[7], r.first, r.last))
                .collect::<Vec<_>>()
        })
        .collect();
    (completion.tokens.clone(), acks)
}

struct Harness {
    core: BatchCore<Token>,
    metrics: Metrics,
}

impl Harness {
    fn new(readings_max: usize) -> Self {
        Self {
            core: BatchCore::new(BatchLimits::new(readings_max), 10),
            metrics: Metrics::default(),
        }
    }

    fn add(
        &mut self,
        message: VerifiedMessage<Token>,
        committed: &Committed,
    ) -> (Vec<ClosedUnit>, Completion<Token>) {
        self.core
            .add(message, committed, T0 + 200_000, 5, &self.metrics)
            .expect("add")
    }

    fn close(&mut self) -> ClosedUnit {
        self.core
            .close(T0 + 200_000, 5)
            .expect("close")
            .expect("a unit")
    }

    fn durable(&mut self, unit: &ClosedUnit) -> (Vec<Token>, Vec<String>) {
        acks_of(&self.core.durable(unit.id, T0 + 300_000, &self.metrics))
    }
}

fn nothing() -> (Vec<Token>, Vec<String>) {
    (Vec::new(), Vec::new())
}

#[test]
fn new_readings_are_acked_only_after_their_batch_is_durable() {
    let mut h = Harness::new(100);
    let (closed, now) = h.add(
        message("m1", vec![accepted(1, 1, 0), accepted(1, 2, 0)]),
        &Committed::default(),
    );
    assert!(closed.is_empty());
    assert_eq!(acks_of(&now), nothing());
    let (_, now) = h.add(
        message("m2", vec![accepted(2, 7, 0)]),
        &Committed::default(),
    );
    assert_eq!(acks_of(&now), nothing());
    let unit = h.close();
    assert_eq!(h.core.readings_pending(), 3);
    assert_eq!(
        h.durable(&unit),
        (
            vec!["m1", "m2"],
            vec!["1:1-2".to_owned(), "2:7-7".to_owned()]
        )
    );
    assert_eq!(h.core.readings_pending(), 0);
    let snapshot = h.metrics.snapshot();
    assert_eq!(
        (snapshot.readings_committed, snapshot.batches_committed),
        (3, 1)
    );
    assert_eq!(snapshot.ingest_to_commit.count, 3);
}

#[test]
fn a_closed_batch_is_a_reading_batch_entry_with_its_records() {
    let mut h = Harness::new(100);
    h.add(
        message(
            "m",
            vec![accepted(2, 5, 0), accepted(1, 9, 0), accepted(2, 6, 0)],
        ),
        &Committed::default(),
    );
    let unit = h.close();
    let Some(Entry::ReadingBatch(batch)) = unit
        .entry
        .as_deref()
        .map(|e| Entry::decode(e).expect("decode"))
    else {
        panic!("a reading batch");
    };
    assert_eq!(batch.reading_count, 3);
    assert_eq!(batch.devices, vec![device(1), device(2)]);
    assert_eq!(
        (batch.device_time_first_ms, batch.device_time_last_ms),
        (T0 + 5000, T0 + 9000)
    );
    assert_eq!(Some(batch.batch_root), unit.batch_root);
    let readings: Vec<StoredReading> = unit
        .records
        .iter()
        .filter(|r| r.table == READINGS)
        .map(|r| StoredReading::decode(&r.key, &r.value).expect("reading"))
        .collect();
    let positions: Vec<(u64, u32)> = readings
        .iter()
        .map(|r| (r.sequence.0, r.position))
        .collect();
    assert_eq!(positions, vec![(5, 0), (9, 1), (6, 2)]);
    let leaves: Vec<Hash> = readings.iter().map(|r| leaf_hash(&r.signed)).collect();
    assert_eq!(root_from_leaf_hashes(&leaves), batch.batch_root);
    let batch_record = unit
        .records
        .iter()
        .find(|r| r.table == BATCHES)
        .expect("batch row");
    let stored = StoredBatch::decode(&batch_record.key, &batch_record.value).expect("batch");
    assert_eq!(
        stored.entry.leaf_hash,
        leaf_hash(unit.entry.as_deref().expect("entry"))
    );
    assert_eq!(stored.entry.log_size_before, 5);
    assert_eq!(
        unit.records.iter().filter(|r| r.table == DEVICES).count(),
        2
    );
}

#[test]
fn repeats_of_committed_readings_are_acked_at_once_and_conflicts_after_quarantine() {
    let mut h = Harness::new(100);
    let (closed, now) = h.add(
        message("dup", vec![accepted(1, 1, 0)]),
        &committed_reading(1, 1, 0),
    );
    assert!(closed.is_empty() && h.core.open_is_empty());
    assert_eq!(acks_of(&now), (vec!["dup"], vec!["1:1-1".to_owned()]));
    let (_, now) = h.add(
        message("conflict", vec![accepted(1, 1, 99)]),
        &committed_reading(1, 1, 0),
    );
    assert_eq!(acks_of(&now), nothing());
    let unit = h.close();
    assert!(unit.entry.is_none(), "only quarantine records");
    let quarantined: Vec<QuarantineRecord> = unit
        .records
        .iter()
        .filter(|r| r.table == crate::records::QUARANTINE)
        .map(|r| QuarantineRecord::decode(&r.table, &r.key, &r.value).expect("record"))
        .collect();
    assert_eq!(quarantined.len(), 1);
    assert_eq!(quarantined[0].reason, RejectReason::ConflictingReplay);
    assert_eq!(quarantined[0].id, 10);
    assert_eq!(
        h.durable(&unit),
        (vec!["conflict"], vec!["1:1-1".to_owned()])
    );
    let snapshot = h.metrics.snapshot();
    assert_eq!(snapshot.readings_duplicate, 1);
    assert_eq!(snapshot.rejected_for(RejectReason::ConflictingReplay), 1);
    assert_eq!(snapshot.quarantine_writes, 1);
}

#[test]
fn repeats_of_pending_readings_wait_for_the_original() {
    let mut h = Harness::new(100);
    h.add(
        message("first", vec![accepted(1, 1, 0)]),
        &Committed::default(),
    );
    let first = h.close();
    // A redelivery (maybe through another worker) while the first batch is in flight, and a
    // conflicting reading under the same number.
    let (_, now) = h.add(
        message("again", vec![accepted(1, 1, 0), accepted(1, 2, 0)]),
        &Committed::default(),
    );
    assert_eq!(acks_of(&now), nothing());
    let (_, now) = h.add(
        message("other", vec![accepted(1, 1, 5)]),
        &Committed::default(),
    );
    assert_eq!(acks_of(&now), nothing());
    let second = h.close();
    assert_eq!(h.durable(&first), (vec!["first"], vec!["1:1-1".to_owned()]));
    assert_eq!(
        h.durable(&second),
        (vec!["again", "other"], vec!["1:1-2".to_owned()])
    );
    let snapshot = h.metrics.snapshot();
    assert_eq!(snapshot.readings_committed, 2, "reading 1 is anchored once");
    assert_eq!(snapshot.readings_duplicate, 1);
}

#[test]
fn a_repeat_within_one_message_is_a_duplicate() {
    let mut h = Harness::new(100);
    h.add(
        message("m", vec![accepted(1, 4, 0), accepted(1, 4, 0)]),
        &Committed::default(),
    );
    let unit = h.close();
    assert_eq!(
        unit.records.iter().filter(|r| r.table == READINGS).count(),
        1
    );
    assert_eq!(h.durable(&unit), (vec!["m"], vec!["1:4-4".to_owned()]));
}

#[test]
fn rejections_are_acked_for_good_only_and_stored_once() {
    let mut h = Harness::new(100);
    let (_, now) = h.add(
        message(
            "m",
            vec![
                rejected(RejectReason::UnknownDevice, 1, Some(3), false),
                rejected(RejectReason::BadSignature, 1, Some(4), true),
                rejected(RejectReason::TopicMismatch, 1, Some(5), false),
                rejected(RejectReason::Undecodable, 1, None, false),
                Verdict::Deferred,
            ],
        ),
        &Committed::default(),
    );
    assert_eq!(acks_of(&now), nothing());
    // The same unknown-device payload offered again while the first is pending.
    h.add(
        message(
            "again",
            vec![rejected(RejectReason::UnknownDevice, 1, Some(3), false)],
        ),
        &Committed::default(),
    );
    let unit = h.close();
    assert_eq!(
        unit.records
            .iter()
            .filter(|r| r.table == QUARANTINE_SEEN)
            .count(),
        4
    );
    assert_eq!(
        h.durable(&unit),
        (vec!["m", "again"], vec!["1:4-4".to_owned()])
    );
    // Offered once more after it is durable: counted, not stored, acked to the broker at once.
    let mut seen = Committed::default();
    seen.quarantined.insert(rejection_digest(&match rejected(
        RejectReason::UnknownDevice,
        1,
        Some(3),
        false,
    ) {
        Verdict::Rejected(r) => r,
        _ => unreachable!(),
    }));
    let (closed, now) = h.add(
        message(
            "third",
            vec![rejected(RejectReason::UnknownDevice, 1, Some(3), false)],
        ),
        &seen,
    );
    assert!(closed.is_empty() && h.core.open_is_empty());
    assert_eq!(acks_of(&now), (vec!["third"], Vec::new()));
    let snapshot = h.metrics.snapshot();
    assert_eq!(snapshot.rejected_for(RejectReason::UnknownDevice), 3);
    assert_eq!(snapshot.quarantine_repeats, 2);
}

#[test]
fn units_close_on_the_count_bound_and_before_the_record_limit() {
    let mut h = Harness::new(3);
    let (closed, _) = h.add(
        message("a", vec![accepted(1, 1, 0), accepted(1, 2, 0)]),
        &Committed::default(),
    );
    assert!(closed.is_empty());
    let (closed, _) = h.add(
        message("b", vec![accepted(1, 3, 0), accepted(1, 4, 0)]),
        &Committed::default(),
    );
    assert_eq!(
        closed.len(),
        1,
        "count bound reached (a message is never split)"
    );
    assert_eq!(
        closed[0]
            .records
            .iter()
            .filter(|r| r.table == READINGS)
            .count(),
        4
    );

    let mut h = Harness {
        core: BatchCore::new(
            BatchLimits {
                readings_max: 1000,
                records_max: 12,
            },
            0,
        ),
        metrics: Metrics::default(),
    };
    let (closed, _) = h.add(
        message("a", (1..=4).map(|s| accepted(1, s, 0)).collect()),
        &Committed::default(),
    );
    assert!(closed.is_empty());
    let (closed, _) = h.add(
        message("b", (5..=8).map(|s| accepted(1, s, 0)).collect()),
        &Committed::default(),
    );
    assert_eq!(
        closed.len(),
        1,
        "closed before the message that would not fit"
    );
    assert!(closed[0].records.len() <= 12);
    assert_eq!(
        closed[0]
            .records
            .iter()
            .filter(|r| r.table == READINGS)
            .count(),
        4
    );
}

#[test]
fn scattered_sequences_need_several_acks_and_an_abandoned_unit_releases_its_messages() {
    let mut h = Harness::new(800);
    let verdicts: Vec<Verdict> = (0..40).map(|i| accepted(1, i * 2, 0)).collect();
    h.add(message("m", verdicts), &Committed::default());
    let unit = h.close();
    let completion = h.core.durable(unit.id, T0, &h.metrics);
    assert_eq!(
        completion.device_acks.len(),
        2,
        "40 ranges need two acks of 32"
    );
    assert_eq!(
        completion
            .device_acks
            .iter()
            .map(protocol::Ack::covered)
            .sum::<u64>(),
        40
    );

    h.add(
        message("lost", vec![accepted(1, 1, 0)]),
        &Committed::default(),
    );
    let unit = h.close();
    assert_eq!(h.core.abandon(unit.id), vec!["lost"]);
    assert_eq!(h.core.readings_pending(), 0);
    assert_eq!(h.core.units_in_flight(), 0);
}

#[test]
fn units_durable_together_give_one_ack_per_device() {
    let mut h = Harness::new(100);
    h.add(
        message("a", vec![accepted(1, 1, 0), accepted(2, 1, 0)]),
        &Committed::default(),
    );
    let first = h.close();
    h.add(
        message("b", vec![accepted(1, 2, 0), accepted(1, 4, 0)]),
        &Committed::default(),
    );
    let second = h.close();
    let completion = h
        .core
        .durable_all(&[first.id, second.id], T0 + 300_000, &h.metrics);
    assert_eq!(completion.device_acks.len(), 2, "one ack for each device");
    assert_eq!(
        acks_of(&completion),
        (
            vec!["a", "b"],
            vec!["1:1-2".to_owned(), "1:4-4".to_owned(), "2:1-1".to_owned()]
        )
    );
    // A unit already reported (or unknown) adds nothing.
    assert_eq!(
        acks_of(&h.core.durable_all(&[first.id, 99], T0, &h.metrics)),
        nothing()
    );
    assert_eq!(h.metrics.snapshot().batches_committed, 2);
}

#[test]
fn only_conflicting_readings_are_hashed_for_the_quarantine_lookup() {
    let mut h = Harness::new(100);
    h.add(
        message("pending", vec![accepted(1, 1, 0)]),
        &Committed::default(),
    );
    let incoming = message(
        "m",
        vec![
            // New.
            accepted(1, 2, 0),
            // The pending reading again: a duplicate, no digest.
            accepted(1, 1, 0),
            // Another reading under the pending number: a conflict.
            accepted(1, 1, 9),
            // A committed number with other content: a conflict.
            accepted(2, 5, 9),
            // Twice in the message with different content: the second conflicts.
            accepted(3, 1, 0),
            accepted(3, 1, 1),
        ],
    );
    let (keys, digests) = h.core.lookups(&incoming);
    assert!(digests.is_empty());
    assert_eq!(keys.len(), 4, "every key not pending here: {keys:?}");
    let committed = committed_reading(2, 5, 0).readings;
    let conflicts = h.core.conflict_lookups(&incoming, &committed);
    assert_eq!(conflicts.len(), 3);
    assert_eq!(h.core.conflict_lookups(&incoming, &HashMap::new()).len(), 2);
}
