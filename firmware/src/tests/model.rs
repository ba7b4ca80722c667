//! Property tests of the logger against naive models.
//!
//! 1. Delivery: random interleavings of record / publish / ack / lost connection / time.
//!    Model: the set of readings the device still holds. Checked after every step: the outbox
//!    is exactly the held set in sequence order; nothing acknowledged is ever published again;
//!    every issued sequence number is held, acknowledged, or evicted and counted (in
//!    `dropped_total`, and in the `dropped_samples` of the next reading recorded, which also
//!    takes over what the evicted reading carried); the `dropped_samples` of the readings
//!    that can still be delivered (acknowledged or held) add up to exactly the number of
//!    readings evicted; at the end, everything held goes out again after a lost connection.
//! 2. Sequence numbers: random reboots and store faults never make a number repeat.

use std::collections::{BTreeMap, BTreeSet};
use std::vec::Vec;

use proptest::prelude::*;
use protocol::limits::UPLINK_BYTES_MAX;

use super::{
    DEVICE, Fault, FaultyStore, RESEND_AFTER_MS, ack_bytes, config, key, readings_of, sample,
};
use crate::Logger;
use crate::sequence::SEQUENCE_RESERVE;

const OUTBOX: usize = 6;

#[derive(Clone, Debug)]
enum Op {
    Record,
    Publish,
    /// Acks the issued sequence numbers whose bit (of the issued list, modulo 64) is set.
    Ack(u64),
    /// Acks numbers that were never issued, or long evicted.
    AckUnknown(u64),
    LoseConnection,
    Advance(u32),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => Just(Op::Record),
        3 => Just(Op::Publish),
        2 => any::<u64>().prop_map(Op::Ack),
        1 => (0u64..40).prop_map(Op::AckUnknown),
        1 => Just(Op::LoseConnection),
        2 => (0u32..2 * RESEND_AFTER_MS).prop_map(Op::Advance),
    ]
}

#[derive(Debug, Default)]
struct Model {
    issued: Vec<u64>,
    held: BTreeSet<u64>,
    acked: BTreeSet<u64>,
    evicted: BTreeSet<u64>,
    /// Sequence -> dropped_samples signed into it.
    dropped_signed: BTreeMap<u64, u32>,
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn the_outbox_never_resends_an_acked_reading_and_loses_only_counted_evictions(
        ops in proptest::collection::vec(op(), 1..80)
    ) {
        let mut store = FaultyStore::default();
        let mut logger: Logger<OUTBOX> = Logger::boot(config(), key(), &mut store).unwrap();
        let mut model = Model::default();
        let mut now = 0u64;
        let mut buf = [0u8; UPLINK_BYTES_MAX];

        for op in ops {
            match op {
                Op::Record => {
                    let full = model.held.len() == OUTBOX;
                    let i = u64::try_from(model.issued.len()).unwrap();
                    let sequence = logger.record(now, now, &sample(i), &mut store).unwrap().0;
                    // The evicted reading counts itself and what it carried.
                    let mut expected_dropped = 0;
                    if full {
                        let oldest = model.held.pop_first().unwrap();
                        model.evicted.insert(oldest);
                        expected_dropped = 1 + model.dropped_signed[&oldest];
                    }
                    prop_assert!(model.issued.last().is_none_or(|&last| last < sequence));
                    model.issued.push(sequence);
                    model.held.insert(sequence);
                    let signed = logger.outbox().last().unwrap();
                    prop_assert_eq!(signed.sequence.0, sequence);
                    let reading = protocol::verify_signed_reading(
                        signed.signed_reading, &key().verifying_key()).unwrap();
                    model.dropped_signed.insert(sequence, reading.dropped_samples);
                    prop_assert_eq!(reading.dropped_samples, expected_dropped);
                }
                Op::Publish => {
                    if let Some(message) = logger.next_uplink(now, &mut buf) {
                        let sequences: Vec<u64> =
                            readings_of(message).iter().map(|r| r.sequence.0).collect();
                        prop_assert!(!sequences.is_empty());
                        prop_assert!(sequences.windows(2).all(|w| w[0] < w[1]));
                        for s in sequences {
                            prop_assert!(!model.acked.contains(&s), "acked {} was resent", s);
                            prop_assert!(model.held.contains(&s), "{} is not held", s);
                        }
                    }
                }
                Op::Ack(mask) => {
                    let named: Vec<u64> = model
                        .issued
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| mask >> (i % 64) & 1 == 1)
                        .map(|(_, &s)| s)
                        .collect();
                    if named.is_empty() {
                        continue;
                    }
                    let expected_freed = named.iter().filter(|s| model.held.contains(s)).count();
                    let outcome = logger.on_ack(&ack_bytes(DEVICE, &named)).unwrap();
                    prop_assert_eq!(outcome.freed, expected_freed);
                    for s in named {
                        if model.held.remove(&s) {
                            model.acked.insert(s);
                        }
                    }
                }
                Op::AckUnknown(offset) => {
                    let never_issued = logger.next_sequence().0 + offset;
                    let outcome = logger.on_ack(&ack_bytes(DEVICE, &[never_issued])).unwrap();
                    prop_assert_eq!(outcome.freed, 0);
                    prop_assert_eq!(outcome.not_in_outbox, 1);
                }
                Op::LoseConnection => logger.on_connection_lost(),
                Op::Advance(ms) => now += u64::from(ms),
            }

            let outbox: Vec<u64> = logger.outbox().map(|e| e.sequence.0).collect();
            let held: Vec<u64> = model.held.iter().copied().collect();
            prop_assert_eq!(outbox, held);
            prop_assert_eq!(logger.dropped_total(), u64::try_from(model.evicted.len()).unwrap());
            // What the backend can still receive (acknowledged, or held and to be sent) signs
            // every eviction exactly once: a count carried by an evicted reading moved on.
            let deliverable_drops: u64 = model
                .acked
                .iter()
                .chain(&model.held)
                .map(|s| u64::from(model.dropped_signed[s]))
                .sum();
            prop_assert_eq!(deliverable_drops, u64::try_from(model.evicted.len()).unwrap());
            prop_assert_eq!(logger.uncounted_drops(), 0);
            prop_assert_eq!(
                model.held.len() + model.acked.len() + model.evicted.len(),
                model.issued.len()
            );
        }

        // Liveness: after a lost connection every held reading goes out again, oldest first.
        logger.on_connection_lost();
        let mut resent = Vec::new();
        while let Some(message) = logger.next_uplink(now, &mut buf) {
            resent.extend(readings_of(message).iter().map(|r| r.sequence.0));
        }
        prop_assert_eq!(resent, model.held.iter().copied().collect::<Vec<_>>());
        prop_assert_eq!(logger.in_flight(), logger.outbox_len());
    }

    #[test]
    fn reboots_and_store_faults_never_repeat_a_sequence_number(
        ops in proptest::collection::vec((0u8..6, 1u64..300), 1..40)
    ) {
        let mut store = FaultyStore::default();
        let mut logger: Option<Logger<4>> = None;
        let mut used: Vec<u64> = Vec::new();
        // Boots and store faults: each may skip the rest of one block.
        let mut skips = 0u64;
        for (kind, count) in ops {
            match kind {
                // Reboot (a crash: the old logger is simply gone).
                0 => logger = None,
                1 => {
                    store.next_write = Some(Fault::Lost);
                    skips += 1;
                }
                2 => {
                    store.next_write = Some(Fault::Landed);
                    skips += 1;
                }
                _ => {
                    if logger.is_none() {
                        skips += 1;
                        logger = Logger::boot(config(), key(), &mut store).ok();
                    }
                    let Some(logger) = logger.as_mut() else { continue };
                    for i in 0..count {
                        match logger.record(i, i, &sample(i), &mut store) {
                            Ok(sequence) => used.push(sequence.0),
                            Err(crate::RecordError::Store(_)) => break,
                            Err(other) => panic!("unexpected {other:?}"),
                        }
                    }
                }
            }
            if let Some(logger) = &logger {
                // Never beyond what the store reserved durably.
                prop_assert!(logger.next_sequence().0 <= store.mark.unwrap());
            }
        }
        prop_assert!(used.windows(2).all(|w| w[0] < w[1]), "{:?}", used);
        // Numbers are skipped only by boots and faults, at most one block each.
        if let Some(last) = used.last() {
            let used_count = u64::try_from(used.len()).unwrap();
            prop_assert!(*last < used_count + skips * SEQUENCE_RESERVE, "{} {}", last, skips);
        }
    }
}
