//! Entry encoding: exact layouts, round trips, canonical decoding and the extension rule.

use ed25519_dalek::{Signer as _, SigningKey};
use ledger::entry::{
    DocumentAnchor, Entry, EntryError, EpcisEventType, IssuerKeyAction, IssuerKeyEvent, KeyAction,
    KeyEvent, MAX_ENTRY_BYTES, ReadingBatch, Replaces, Token, TraceEvent, document_anchor_message,
    issuer_key_message, key_rotation_message, salted_commitment,
};
use ledger::merkle::{Hash, LeafIndex};
use proptest::prelude::*;
use protocol::{DeviceId, KeyEpoch};
use sha2::{Digest, Sha256};

fn batch() -> ReadingBatch {
    ReadingBatch {
        batch_root: Hash([7; 32]),
        reading_count: 3,
        device_time_first_ms: 1_700_000_000_000,
        device_time_last_ms: 1_700_000_001_000,
        ingest_time_ms: 1_700_000_002_000,
        devices: vec![
            DeviceId([0, 0, 0, 0, 0, 0, 0, 1]),
            DeviceId([0, 0, 0, 0, 0, 0, 0, 2]),
        ],
    }
}

fn token(s: &str) -> Token {
    Token::new(s).expect("valid token")
}

#[test]
fn reading_batch_layout_is_exact() {
    let bytes = Entry::ReadingBatch(batch()).encode().unwrap();
    let mut want = vec![1u8, 1];
    want.extend_from_slice(&[7; 32]);
    want.extend_from_slice(&3u32.to_be_bytes());
    want.extend_from_slice(&1_700_000_000_000u64.to_be_bytes());
    want.extend_from_slice(&1_700_000_001_000u64.to_be_bytes());
    want.extend_from_slice(&1_700_000_002_000u64.to_be_bytes());
    want.extend_from_slice(&2u16.to_be_bytes());
    want.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2]);
    assert_eq!(bytes, want);
    assert_eq!(Entry::decode(&bytes), Ok(Entry::ReadingBatch(batch())));
}

#[test]
fn salted_commitment_is_sha256_of_salt_then_hash() {
    let salt = [1u8; 32];
    let hash = [2u8; 32];
    let mut input = salt.to_vec();
    input.extend_from_slice(&hash);
    assert_eq!(
        salted_commitment(&salt, &hash).0,
        <[u8; 32]>::from(Sha256::digest(&input))
    );
}

#[test]
fn decoding_rejects_non_canonical_and_trailing_bytes() {
    let good = Entry::ReadingBatch(batch()).encode().unwrap();
    let mut trailing = good.clone();
    trailing.push(0);
    assert_eq!(Entry::decode(&trailing), Err(EntryError::TrailingBytes(1)));
    assert_eq!(
        Entry::decode(&good[..good.len() - 1]),
        Err(EntryError::Truncated)
    );
    assert_eq!(Entry::decode(&[]), Err(EntryError::Empty));
    assert_eq!(
        Entry::decode(&[2, 1]),
        Err(EntryError::UnsupportedVersion(2))
    );
    // Devices out of order.
    let mut swapped = good.clone();
    let n = swapped.len();
    swapped[n - 16..].copy_from_slice(&[0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1]);
    assert_eq!(Entry::decode(&swapped), Err(EntryError::Devices));
    // Encoding refuses what decoding would refuse.
    let mut unsorted = batch();
    unsorted.devices.reverse();
    assert_eq!(
        Entry::ReadingBatch(unsorted).encode(),
        Err(EntryError::Devices)
    );
    let mut reversed = batch();
    reversed.device_time_first_ms = reversed.device_time_last_ms + 1;
    assert_eq!(
        Entry::ReadingBatch(reversed).encode(),
        Err(EntryError::TimeRange)
    );
    let mut empty = batch();
    empty.reading_count = 0;
    assert_eq!(
        Entry::ReadingBatch(empty).encode(),
        Err(EntryError::ReadingCount)
    );
    // Bad enum codes.
    let event = Entry::TraceEvent(TraceEvent {
        commitment: Hash([1; 32]),
        event_type: EpcisEventType::Object,
        biz_step: token("shipping"),
        event_time_ms: 5,
    })
    .encode()
    .unwrap();
    let mut bad_type = event.clone();
    bad_type[34] = 9;
    assert_eq!(
        Entry::decode(&bad_type),
        Err(EntryError::Code("event type"))
    );
    let mut bad_token = event.clone();
    bad_token[36] = b' ';
    assert_eq!(Entry::decode(&bad_token), Err(EntryError::Token));
}

#[test]
fn unknown_kinds_decode_verbatim_and_unknown_versions_fail() {
    let bytes = [1u8, 200, 1, 2, 3];
    let entry = Entry::decode(&bytes).unwrap();
    assert_eq!(
        entry,
        Entry::Unknown {
            kind: 200,
            body: vec![1, 2, 3]
        }
    );
    assert_eq!(entry.encode().unwrap(), bytes);
    assert_eq!(
        Entry::Unknown {
            kind: 2,
            body: vec![]
        }
        .encode(),
        Err(EntryError::KnownKind(2))
    );
    // A known kind with a broken body is an error, never Unknown.
    assert_eq!(Entry::decode(&[1, 2, 0]), Err(EntryError::Truncated));
}

#[test]
fn entries_over_the_bundle_limit_are_refused() {
    let entry = Entry::Unknown {
        kind: 99,
        body: vec![0; MAX_ENTRY_BYTES - 2],
    };
    assert_eq!(entry.encode().unwrap().len(), MAX_ENTRY_BYTES);
    let entry = Entry::Unknown {
        kind: 99,
        body: vec![0; MAX_ENTRY_BYTES - 1],
    };
    assert_eq!(entry.encode(), Err(EntryError::TooLarge));
    assert_eq!(
        Entry::decode(&vec![1; MAX_ENTRY_BYTES + 1]),
        Err(EntryError::TooLarge)
    );
}

#[test]
fn document_issuer_signature_covers_the_commitment() {
    let issuer = SigningKey::from_bytes(&[4; 32]);
    let commitment = salted_commitment(&[9; 32], &[8; 32]);
    let document_type = token("phytosanitary_certificate");
    let issuer_org = token("org:plant-health-ke");
    let replaces = Some(Replaces::Supersedes(LeafIndex(12)));
    let signature = issuer.sign(&document_anchor_message(
        &commitment,
        &document_type,
        &issuer_org,
        replaces,
    ));
    let anchor = DocumentAnchor {
        commitment,
        document_type,
        issuer_org,
        issuer_key_id: Hash(Sha256::digest(issuer.verifying_key().as_bytes()).into()),
        issuer_signature: signature.to_bytes(),
        replaces,
    };
    assert!(anchor.verify_issuer(&issuer.verifying_key()));
    assert!(!anchor.verify_issuer(&SigningKey::from_bytes(&[5; 32]).verifying_key()));
    // The signature binds what the anchor replaces: it cannot be replayed as a revocation or
    // as a plain anchor.
    for other in [
        None,
        Some(Replaces::Revokes(LeafIndex(12))),
        Some(Replaces::Supersedes(LeafIndex(13))),
    ] {
        let replayed = DocumentAnchor {
            replaces: other,
            ..anchor.clone()
        };
        assert!(
            !replayed.verify_issuer(&issuer.verifying_key()),
            "{other:?}"
        );
    }
    let bytes = Entry::DocumentAnchor(anchor.clone()).encode().unwrap();
    assert_eq!(Entry::decode(&bytes), Ok(Entry::DocumentAnchor(anchor)));
}

#[test]
fn key_rotation_is_signed_by_the_old_key() {
    let old = SigningKey::from_bytes(&[1; 32]);
    let new = SigningKey::from_bytes(&[2; 32]);
    let device = DeviceId([1, 2, 3, 4, 5, 6, 7, 8]);
    let new_key = new.verifying_key().to_bytes();
    let signature = old.sign(&key_rotation_message(device, KeyEpoch(2), &new_key));
    let event = KeyEvent {
        device_id: device,
        key_epoch: KeyEpoch(2),
        action: KeyAction::Rotate,
        public_key: new_key,
        effective_time_ms: 10,
        rotation_signature: Some(signature.to_bytes()),
    };
    assert!(event.verify_rotation(&old.verifying_key()));
    assert!(!event.verify_rotation(&new.verifying_key()));
    let unsigned = KeyEvent {
        rotation_signature: None,
        ..event.clone()
    };
    assert_eq!(
        Entry::KeyEvent(unsigned).encode(),
        Err(EntryError::RotationSignature)
    );
    let bytes = Entry::KeyEvent(event.clone()).encode().unwrap();
    assert_eq!(bytes.len(), 2 + 8 + 4 + 1 + 32 + 8 + 64);
    assert_eq!(Entry::decode(&bytes), Ok(Entry::KeyEvent(event)));
}

#[test]
fn issuer_key_registration_proves_possession() {
    let key = SigningKey::from_bytes(&[6; 32]);
    let public_key = key.verifying_key().to_bytes();
    let org = token("org:customs-cn");
    let signature = key.sign(&issuer_key_message(&org, &public_key));
    let event = IssuerKeyEvent {
        issuer_org: org.clone(),
        action: IssuerKeyAction::Register,
        public_key,
        effective_time_ms: 7,
        possession_signature: Some(signature.to_bytes()),
    };
    assert!(event.verify_possession());
    assert_eq!(event.key_id(), Hash(Sha256::digest(public_key).into()));
    // Someone else's key under this organisation's name has no valid proof.
    let claimed = IssuerKeyEvent {
        public_key: SigningKey::from_bytes(&[7; 32]).verifying_key().to_bytes(),
        ..event.clone()
    };
    assert!(!claimed.verify_possession());
    let moved = IssuerKeyEvent {
        issuer_org: token("org:other"),
        ..event.clone()
    };
    assert!(!moved.verify_possession());
    let bytes = Entry::IssuerKeyEvent(event.clone()).encode().unwrap();
    assert_eq!(bytes.len(), 2 + 1 + org.as_str().len() + 1 + 32 + 8 + 64);
    assert_eq!(bytes[1], 5);
    assert_eq!(
        Entry::decode(&bytes),
        Ok(Entry::IssuerKeyEvent(event.clone()))
    );
    let revoke = IssuerKeyEvent {
        action: IssuerKeyAction::Revoke,
        possession_signature: None,
        ..event.clone()
    };
    assert!(revoke.verify_possession());
    let bytes = Entry::IssuerKeyEvent(revoke.clone()).encode().unwrap();
    assert_eq!(bytes.len(), 2 + 1 + org.as_str().len() + 1 + 32 + 8);
    assert_eq!(
        Entry::decode(&bytes),
        Ok(Entry::IssuerKeyEvent(revoke.clone()))
    );
    for wrong in [
        IssuerKeyEvent {
            possession_signature: None,
            ..event
        },
        IssuerKeyEvent {
            possession_signature: Some([1; 64]),
            ..revoke
        },
    ] {
        assert_eq!(
            Entry::IssuerKeyEvent(wrong).encode(),
            Err(EntryError::PossessionSignature)
        );
    }
}

fn arb_token() -> impl Strategy<Value = Token> {
    "[a-z0-9_.:/-]{1,64}".prop_map(|s| Token::new(&s).expect("matches the token set"))
}

fn arb_entry() -> impl Strategy<Value = Entry> {
    let batch = (
        any::<[u8; 32]>(),
        proptest::collection::btree_set(any::<[u8; 8]>(), 1..40),
        any::<u32>(),
        any::<u64>(),
        any::<u32>(),
        any::<u64>(),
    )
        .prop_map(|(root, devices, extra, first, span, ingest)| {
            let devices: Vec<DeviceId> = devices.into_iter().map(DeviceId).collect();
            let count = u32::try_from(devices.len())
                .expect("small")
                .saturating_add(extra % 1000);
            Entry::ReadingBatch(ReadingBatch {
                batch_root: Hash(root),
                reading_count: count,
                device_time_first_ms: first,
                device_time_last_ms: first.saturating_add(u64::from(span)),
                ingest_time_ms: ingest,
                devices,
            })
        });
    let event =
        (any::<[u8; 32]>(), 0u8..5, arb_token(), any::<u64>()).prop_map(|(c, t, step, time)| {
            let event_type = [
                EpcisEventType::Object,
                EpcisEventType::Aggregation,
                EpcisEventType::Transaction,
                EpcisEventType::Transformation,
                EpcisEventType::Association,
            ][usize::from(t)];
            Entry::TraceEvent(TraceEvent {
                commitment: Hash(c),
                event_type,
                biz_step: step,
                event_time_ms: time,
            })
        });
    let anchor = (
        any::<[u8; 32]>(),
        arb_token(),
        arb_token(),
        any::<[u8; 32]>(),
        any::<[u8; 32]>(),
        0u8..3,
        any::<u64>(),
    )
        .prop_map(|(c, dt, org, kid, sig_half, r, index)| {
            let mut signature = [0u8; 64];
            signature[..32].copy_from_slice(&sig_half);
            let replaces = match r {
                0 => None,
                1 => Some(Replaces::Supersedes(LeafIndex(index))),
                _ => Some(Replaces::Revokes(LeafIndex(index))),
            };
            Entry::DocumentAnchor(DocumentAnchor {
                commitment: Hash(c),
                document_type: dt,
                issuer_org: org,
                issuer_key_id: Hash(kid),
                issuer_signature: signature,
                replaces,
            })
        });
    let key = (
        any::<[u8; 8]>(),
        any::<u32>(),
        0u8..3,
        any::<[u8; 32]>(),
        any::<u64>(),
        any::<[u8; 32]>(),
    )
        .prop_map(|(id, epoch, action, public_key, time, sig_half)| {
            let action =
                [KeyAction::Register, KeyAction::Rotate, KeyAction::Revoke][usize::from(action)];
            let rotation_signature = (action == KeyAction::Rotate).then(|| {
                let mut s = [0u8; 64];
                s[32..].copy_from_slice(&sig_half);
                s
            });
            Entry::KeyEvent(KeyEvent {
                device_id: DeviceId(id),
                key_epoch: KeyEpoch(epoch),
                action,
                public_key,
                effective_time_ms: time,
                rotation_signature,
            })
        });
    let issuer_key = (
        arb_token(),
        any::<bool>(),
        any::<[u8; 32]>(),
        any::<u64>(),
        any::<u8>(),
    )
        .prop_map(|(org, register, public_key, time, sig)| {
            Entry::IssuerKeyEvent(IssuerKeyEvent {
                issuer_org: org,
                action: if register {
                    IssuerKeyAction::Register
                } else {
                    IssuerKeyAction::Revoke
                },
                public_key,
                effective_time_ms: time,
                possession_signature: register.then_some([sig; 64]),
            })
        });
    let unknown = (6u8..=255, proptest::collection::vec(any::<u8>(), 0..100))
        .prop_map(|(kind, body)| Entry::Unknown { kind, body });
    prop_oneof![batch, event, anchor, key, issuer_key, unknown]
}

proptest! {
    #[test]
    fn every_entry_round_trips(entry in arb_entry()) {
        let bytes = entry.encode().unwrap();
        prop_assert_eq!(Entry::decode(&bytes), Ok(entry));
    }

    #[test]
    fn decoding_is_canonical_for_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        if let Ok(entry) = Entry::decode(&bytes) {
            prop_assert_eq!(entry.encode().unwrap(), bytes);
        }
    }

    #[test]
    fn flipping_any_byte_of_an_entry_never_decodes_to_the_same_entry(entry in arb_entry(), pos in any::<usize>(), bit in 0u8..8) {
        let mut bytes = entry.encode().unwrap();
        let i = pos % bytes.len();
        bytes[i] ^= 1 << bit;
        if let Ok(other) = Entry::decode(&bytes) {
            prop_assert_ne!(other, entry);
        }
    }
}
