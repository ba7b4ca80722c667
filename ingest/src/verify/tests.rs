//! Table-driven tests of the verifier core.

use super::*;
use crate::test_support::{T0, backlog, device, key, reading, signed, single};
use protocol::limits::UPLINK_BYTES_MAX;

const LIMITS: VerifyLimits = VerifyLimits {
    clock_skew_max_ms: 60_000,
    quarantine_bytes_max: 256,
};

fn topic_of(n: u8) -> String {
    topic::readings_topic(device(n)).to_string()
}

/// Device 1 and 2 are registered (keys 1 and 2), device 3's key is revoked, device 4 makes the
/// key table fail, others are unknown.
fn keys(device_id: DeviceId, _epoch: KeyEpoch) -> Result<KeyLookup, &'static str> {
    match device_id.0[7] {
        1 => Ok(KeyLookup::Active(key(1).verifying_key())),
        2 => Ok(KeyLookup::Active(key(2).verifying_key())),
        3 => Ok(KeyLookup::Revoked),
        4 => Err("storage down"),
        _ => Ok(KeyLookup::Unknown),
    }
}

fn summary(verdict: &Verdict) -> String {
    match verdict {
        Verdict::Accepted(r) if r.clock_skewed => format!("ok {} skewed", r.sequence.0),
        Verdict::Accepted(r) => format!("ok {}", r.sequence.0),
        Verdict::Rejected(r) => format!(
            "{}{}{}",
            r.reason.name(),
            r.sequence.map(|s| format!(" {}", s.0)).unwrap_or_default(),
            if r.ackable { " ack" } else { "" }
        ),
        Verdict::Deferred => "deferred".to_owned(),
    }
}

fn check(messages: &[(String, Vec<u8>, u64)], expected: &[&[&str]]) -> VerifyStats {
    let inputs: Vec<MessageIn<'_>> = messages
        .iter()
        .map(|(topic, payload, now)| MessageIn {
            topic,
            payload,
            ingest_time_ms: *now,
        })
        .collect();
    let mut stats = VerifyStats::default();
    let verdicts = verify_group(&inputs, keys, &LIMITS, &mut stats);
    let got: Vec<Vec<String>> = verdicts
        .iter()
        .map(|m| m.iter().map(summary).collect())
        .collect();
    let want: Vec<Vec<String>> = expected
        .iter()
        .map(|m| m.iter().map(|s| (*s).to_owned()).collect())
        .collect();
    assert_eq!(got, want);
    stats
}

fn good(n: u8, sequence: u64) -> Vec<u8> {
    signed(&reading(device(n), sequence, 400), &key(n))
}

fn now_for(sequence: u64) -> u64 {
    T0 + sequence * 1000
}

#[test]
fn good_readings_pass_in_one_batch() {
    let stats = check(
        &[
            (topic_of(1), single(&good(1, 7)), now_for(7)),
            (
                topic_of(2),
                backlog(&[good(2, 1), good(2, 2), good(2, 3)]),
                now_for(3),
            ),
        ],
        &[&["ok 7"], &["ok 1", "ok 2", "ok 3"]],
    );
    assert_eq!(
        stats,
        VerifyStats {
            batches: 1,
            fallbacks: 0
        }
    );
}

#[test]
fn a_bad_signature_is_found_by_the_fallback_and_the_others_pass() {
    let mut forged = good(2, 2);
    let last = forged.len() - 1;
    forged[last] ^= 0x01;
    let signed_by_another_key = signed(&reading(device(1), 9, 1), &key(2));
    let stats = check(
        &[
            (
                topic_of(2),
                backlog(&[good(2, 1), forged, good(2, 3)]),
                now_for(3),
            ),
            (topic_of(1), single(&signed_by_another_key), now_for(9)),
        ],
        &[
            &["ok 1", "bad_signature 2 ack", "ok 3"],
            &["bad_signature 9 ack"],
        ],
    );
    assert_eq!(
        stats,
        VerifyStats {
            batches: 1,
            fallbacks: 1
        }
    );
}

#[test]
fn keys_decide_unknown_revoked_and_deferred() {
    check(
        &[
            (topic_of(3), single(&good(3, 1)), now_for(1)),
            (topic_of(4), single(&good(4, 1)), now_for(1)),
            (topic_of(9), single(&good(9, 5)), now_for(5)),
        ],
        &[&["revoked_key 1 ack"], &["deferred"], &["unknown_device 5"]],
    );
}

#[test]
fn malformed_oversized_and_misrouted_input_is_refused_with_its_reason() {
    let mut oversized_reading = vec![0x02, 1, 0x83, 0x01];
    oversized_reading.extend(std::iter::repeat_n(0u8, 131));
    let mut bad_body = good(1, 1);
    bad_body[0] = 9;
    check(
        &[
            (topic_of(1), b"garbage".to_vec(), T0),
            (topic_of(1), vec![0x01; UPLINK_BYTES_MAX + 1], T0),
            (topic_of(1), oversized_reading, T0),
            (topic_of(1), backlog(&[bad_body, good(1, 2)]), now_for(2)),
            (topic_of(2), single(&good(1, 3)), now_for(3)),
            (
                "agritrace/v1/devices/NOT-HEX/readings".to_owned(),
                single(&good(1, 4)),
                T0,
            ),
            (topic_of(1), Vec::new(), T0),
        ],
        &[
            &["undecodable"],
            &["oversized"],
            &["oversized"],
            &["undecodable", "ok 2"],
            &["topic_device_mismatch 3"],
            &["topic_device_mismatch"],
            &["undecodable"],
        ],
    );
}

#[test]
fn a_far_off_device_clock_is_flagged_not_refused() {
    check(
        &[
            (topic_of(1), single(&good(1, 1)), now_for(1) + 60_000),
            (topic_of(1), single(&good(1, 2)), now_for(2) + 60_001),
            (topic_of(1), single(&good(1, 3)), now_for(3) - 60_001),
        ],
        &[&["ok 1"], &["ok 2 skewed"], &["ok 3 skewed"]],
    );
}

#[test]
fn quarantined_bytes_are_cut_at_the_limit_with_the_length_kept() {
    let payload = vec![0x07; 1000];
    let inputs = [MessageIn {
        topic: "x",
        payload: &payload,
        ingest_time_ms: 5,
    }];
    let verdicts = verify_group(&inputs, keys, &LIMITS, &mut VerifyStats::default());
    let Verdict::Rejected(rejection) = &verdicts[0][0] else {
        panic!("{verdicts:?}");
    };
    assert_eq!(rejection.bytes.len(), 256);
    assert_eq!(rejection.original_len, 1000);
    assert_eq!(rejection.ingest_time_ms, 5);
}

#[test]
fn every_listed_small_order_encoding_is_a_weak_point_and_others_pass() {
    for encoding in protocol::SMALL_ORDER_ENCODINGS {
        let point = VerifyingKey::from_bytes(&encoding).expect("decompresses");
        assert!(point.is_weak(), "{encoding:02x?}");
        let mut signature = [0u8; 64];
        signature[..32].copy_from_slice(&encoding);
        assert!(!protocol::r_is_strict(&Signature::from_bytes(&signature)));
    }
    // y = p (non-canonical zero) and a genuine signature's R.
    let mut y_is_p = [0xffu8; 64];
    y_is_p[0] = 0xed;
    y_is_p[31] = 0x7f;
    assert!(!protocol::r_is_strict(&Signature::from_bytes(&y_is_p)));
    let genuine = SignedReading::decode(&good(1, 1))
        .expect("decode")
        .signature()
        .to_bytes();
    assert!(protocol::r_is_strict(&Signature::from_bytes(&genuine)));
}
