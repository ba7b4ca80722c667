//! Signed readings for the unit tests.

use protocol::limits::{SIGNED_READING_BYTES_MAX, UPLINK_BYTES_MAX};
use protocol::{
    DeviceId, DoorState, KeyEpoch, Reading, SequenceNumber, SigningKey, UplinkWriter,
    encode_signed_reading,
};

pub const T0: u64 = 1_750_000_000_000;

pub fn device(n: u8) -> DeviceId {
    DeviceId([0, 0, 0, 1, 0, 0, 0, n])
}

pub fn key(n: u8) -> SigningKey {
    SigningKey::from_bytes(&[n; 32])
}

pub fn reading(device: DeviceId, sequence: u64, temperature: i16) -> Reading {
    Reading {
        device,
        key_epoch: KeyEpoch(1),
        sequence: SequenceNumber(sequence),
        device_time_ms: T0 + sequence * 1000,
        temperature_centi_c: temperature,
        humidity_centi_pct: 5000,
        position: None,
        door: DoorState::Closed,
        shock_events: 0,
        battery_mv: 3600,
        dropped_samples: 0,
    }
}

pub fn signed(reading: &Reading, key: &SigningKey) -> Vec<u8> {
    let mut out = [0u8; SIGNED_READING_BYTES_MAX];
    let len = encode_signed_reading(reading, key, &mut out).expect("encode");
    out[..len].to_vec()
}

pub fn single(signed: &[u8]) -> Vec<u8> {
    let mut buf = [0u8; UPLINK_BYTES_MAX];
    UplinkWriter::single(&mut buf, signed)
        .expect("single")
        .to_vec()
}

pub fn backlog(readings: &[Vec<u8>]) -> Vec<u8> {
    let mut buf = [0u8; UPLINK_BYTES_MAX];
    let mut writer = UplinkWriter::backlog(&mut buf).expect("backlog");
    for r in readings {
        writer.push(r).expect("push");
    }
    writer.finish().expect("finish").to_vec()
}
