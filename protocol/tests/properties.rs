//! Property tests of the wire format: every reading round-trips byte-exactly, and any change
//! to a signed reading's bytes (a flipped bit, a replaced byte, a truncation) makes
//! verification fail.

use proptest::prelude::*;
use protocol::limits::{SIGNED_READING_BYTES_MAX, UPLINK_BYTES_MAX};
use protocol::{
    Ack, AckBuilder, DeviceId, DoorState, GeoPosition, KeyEpoch, Reading, SequenceNumber,
    SignedReading, SigningKey, Uplink, UplinkWriter, encode_signed_reading, verify_signed_reading,
};

fn reading() -> impl Strategy<Value = Reading> {
    (
        any::<[u8; 8]>(),
        any::<u32>(),
        any::<u64>(),
        any::<u64>(),
        any::<i16>(),
        0u16..=10_000,
        proptest::option::of((
            -900_000_000i32..=900_000_000,
            -1_800_000_000i32..=1_800_000_000,
        )),
        any::<bool>(),
        (any::<u16>(), any::<u16>(), any::<u32>()),
    )
        .prop_map(
            |(device, epoch, sequence, time, temperature, humidity, position, open, rest)| {
                Reading {
                    device: DeviceId(device),
                    key_epoch: KeyEpoch(epoch),
                    sequence: SequenceNumber(sequence),
                    device_time_ms: time,
                    temperature_centi_c: temperature,
                    humidity_centi_pct: humidity,
                    position: position.map(|(lat_e7, lon_e7)| GeoPosition { lat_e7, lon_e7 }),
                    door: if open {
                        DoorState::Open
                    } else {
                        DoorState::Closed
                    },
                    shock_events: rest.0,
                    battery_mv: rest.1,
                    dropped_samples: rest.2,
                }
            },
        )
}

fn sign(reading: &Reading, seed: [u8; 32]) -> Vec<u8> {
    let mut out = [0u8; SIGNED_READING_BYTES_MAX];
    let len = encode_signed_reading(reading, &SigningKey::from_bytes(&seed), &mut out)
        .expect("an in-range reading encodes");
    out[..len].to_vec()
}

proptest! {
    #[test]
    fn every_reading_round_trips_and_verifies(reading in reading(), seed in any::<[u8; 32]>()) {
        let bytes = sign(&reading, seed);
        let key = SigningKey::from_bytes(&seed).verifying_key();
        let decoded = SignedReading::decode(&bytes).expect("decodes");
        prop_assert_eq!(decoded.reading(), &reading);
        prop_assert_eq!(decoded.as_bytes(), &bytes[..]);
        prop_assert_eq!(verify_signed_reading(&bytes, &key), Ok(reading));
    }

    #[test]
    fn any_flipped_bit_fails_verification(reading in reading(), seed in any::<[u8; 32]>(), bit in any::<prop::sample::Index>()) {
        let mut bytes = sign(&reading, seed);
        let key = SigningKey::from_bytes(&seed).verifying_key();
        let bit = bit.index(bytes.len() * 8);
        bytes[bit / 8] ^= 1 << (bit % 8);
        prop_assert!(verify_signed_reading(&bytes, &key).is_err());
    }

    #[test]
    fn any_replaced_byte_fails_verification(reading in reading(), seed in any::<[u8; 32]>(), at in any::<prop::sample::Index>(), value in any::<u8>()) {
        let mut bytes = sign(&reading, seed);
        let key = SigningKey::from_bytes(&seed).verifying_key();
        let at = at.index(bytes.len());
        prop_assume!(bytes[at] != value);
        bytes[at] = value;
        prop_assert!(verify_signed_reading(&bytes, &key).is_err());
    }

    #[test]
    fn truncated_or_extended_readings_fail(reading in reading(), seed in any::<[u8; 32]>(), cut in any::<prop::sample::Index>(), extra in any::<u8>()) {
        let bytes = sign(&reading, seed);
        let key = SigningKey::from_bytes(&seed).verifying_key();
        prop_assert!(verify_signed_reading(&bytes[..cut.index(bytes.len())], &key).is_err());
        let mut longer = bytes.clone();
        longer.push(extra);
        prop_assert!(verify_signed_reading(&longer, &key).is_err());
    }

    #[test]
    fn arbitrary_bytes_never_panic_any_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = SignedReading::decode(&bytes);
        if let Ok(ack) = Ack::decode(&bytes) {
            let _ = ack.covered();
            for range in ack.ranges() {
                prop_assert!(ack.contains(SequenceNumber(range.last)));
            }
        }
        if let Ok(uplink) = Uplink::decode(&bytes) {
            for reading in uplink.readings() {
                let _ = SignedReading::decode(reading);
            }
        }
    }

    #[test]
    fn backlogs_carry_their_readings_in_order(readings in proptest::collection::vec(reading(), 1..=50)) {
        let signed: Vec<Vec<u8>> = readings.iter().map(|r| sign(r, [3; 32])).collect();
        let mut buf = vec![0u8; UPLINK_BYTES_MAX];
        let mut writer = UplinkWriter::backlog(&mut buf).expect("buffer");
        for s in &signed {
            writer.push(s).expect("fits");
        }
        let message = writer.finish().expect("non-empty");
        let uplink = Uplink::decode(message).expect("decodes");
        let carried: Vec<&[u8]> = uplink.readings().collect();
        prop_assert_eq!(carried.len(), signed.len());
        for (carried, signed) in carried.iter().zip(&signed) {
            prop_assert_eq!(*carried, &signed[..]);
        }
    }

    #[test]
    fn acks_round_trip_for_any_increasing_set(sequences in proptest::collection::btree_set(any::<u64>(), 1..200)) {
        let mut builder = AckBuilder::new(DeviceId([9; 8]));
        let mut accepted = Vec::new();
        for &s in sequences.iter() {
            if builder.push(SequenceNumber(s)).is_err() {
                break;
            }
            accepted.push(s);
        }
        let ack = builder.finish().expect("non-empty");
        let mut buf = [0u8; protocol::limits::ACK_BYTES_MAX];
        let bytes = ack.encode(&mut buf).expect("fits").to_vec();
        let decoded = Ack::decode(&bytes).expect("decodes");
        prop_assert_eq!(&decoded, &ack);
        for s in &accepted {
            prop_assert!(decoded.contains(SequenceNumber(*s)));
        }
        prop_assert_eq!(decoded.covered(), accepted.len() as u64);
    }
}
