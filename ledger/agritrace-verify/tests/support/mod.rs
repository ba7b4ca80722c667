//! Fixtures shared by the binary's tests: signed readings from two devices, their batch and
//! `ReadingBatch` entry (built the way ingest builds them: leaves are `leaf_hash(signed)` in
//! batch order), reading proofs, and running the real `agritrace-verify` binary.
// Each test file uses a different part of the fixtures.
#![allow(dead_code)]

pub mod bundle;

use std::path::Path;
use std::process::{Command, Output};

use agritrace_verify::ReadingProof;
use ledger::entry::{Entry, ReadingBatch};
use ledger::merkle::{Hash, LeafIndex, TreeSize, inclusion_path_in, leaf_hash};
use ledger::proof::root_from_inclusion_path;
use ledger::tlog_proof::TlogProof;
use protocol::limits::SIGNED_READING_BYTES_MAX;
use protocol::{
    DeviceId, DoorState, GeoPosition, KeyEpoch, Reading, SequenceNumber, SigningKey,
    encode_signed_reading,
};

/// The device whose reading is proven.
pub const DEVICE_A: DeviceId = DeviceId([0xa9, 0, 0, 0, 0, 0, 0, 1]);
/// Another device in the same batch.
pub const DEVICE_B: DeviceId = DeviceId([0xb0, 0, 0, 0, 0, 0, 0, 2]);
/// Readings in the batch.
pub const BATCH_SIZE: usize = 12;
/// Position of the proven reading (device A's sequence 4).
pub const POSITION: usize = 5;

pub fn device_key(device: DeviceId) -> SigningKey {
    SigningKey::from_bytes(&[device.0[0]; 32])
}

/// Lowercase hex of a device's public key, as `--device-key` takes it.
pub fn device_key_hex(device: DeviceId) -> String {
    device_key(device)
        .verifying_key()
        .as_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub fn signed(reading: &Reading) -> Vec<u8> {
    let mut out = [0u8; SIGNED_READING_BYTES_MAX];
    let len = encode_signed_reading(reading, &device_key(reading.device), &mut out)
        .expect("an in-range reading");
    out[..len].to_vec()
}

/// A batch of signed readings and its entry.
pub struct Batch {
    /// Signed readings in batch order.
    pub readings: Vec<Vec<u8>>,
    /// The decoded entry.
    pub batch: ReadingBatch,
    /// Its encoding.
    pub entry: Vec<u8>,
}

/// Twelve readings; every fourth (positions 2, 6, 10) is device B's, the rest device A's with
/// sequence numbers counting up, so position 5 is device A's sequence 4.
pub fn batch() -> Batch {
    let (mut a, mut b) = (0u64, 0u64);
    let readings: Vec<Vec<u8>> = (0..BATCH_SIZE)
        .map(|i| {
            let (device, sequence) = if i % 4 == 2 {
                b += 1;
                (DEVICE_B, b - 1)
            } else {
                a += 1;
                (DEVICE_A, a - 1)
            };
            signed(&Reading {
                device,
                key_epoch: KeyEpoch(1),
                sequence: SequenceNumber(sequence),
                device_time_ms: 1_760_000_000_000 + 60_000 * u64::try_from(i).expect("small"),
                temperature_centi_c: 350 + i16::try_from(i).expect("small"),
                humidity_centi_pct: 8_500,
                position: Some(GeoPosition {
                    lat_e7: -339_000_000,
                    lon_e7: 184_000_000,
                }),
                door: DoorState::Closed,
                shock_events: 0,
                battery_mv: 3_600,
                dropped_samples: 0,
            })
        })
        .collect();
    let leaves: Vec<Hash> = readings.iter().map(|r| leaf_hash(r)).collect();
    let batch = ReadingBatch {
        batch_root: ledger::merkle::root_from_leaf_hashes(&leaves),
        reading_count: u32::try_from(BATCH_SIZE).expect("small"),
        device_time_first_ms: 1_760_000_000_000,
        device_time_last_ms: 1_760_000_000_000 + 60_000 * 11,
        ingest_time_ms: 1_760_000_700_000,
        devices: vec![DEVICE_A, DEVICE_B],
    };
    let entry = Entry::ReadingBatch(batch.clone())
        .encode()
        .expect("a valid entry");
    Batch {
        readings,
        batch,
        entry,
    }
}

impl Batch {
    /// The reading proof of the reading at `position`, with the entry's log proof.
    pub fn reading_proof(&self, position: usize, log_proof: TlogProof) -> ReadingProof {
        let leaves: Vec<Hash> = self.readings.iter().map(|r| leaf_hash(r)).collect();
        let batch_path = inclusion_path_in(&leaves, position).expect("in the batch");
        let signed_reading = self.readings[position].clone();
        let decoded = protocol::SignedReading::decode(&signed_reading).expect("decodes");
        let proof = ReadingProof {
            device: decoded.reading().device,
            sequence: decoded.reading().sequence,
            signed_reading,
            batch_position: LeafIndex(u64::try_from(position).expect("small")),
            batch_size: TreeSize(u64::try_from(leaves.len()).expect("small")),
            batch_path,
            entry: self.entry.clone(),
            log_proof,
        };
        // The fixture itself is right: the path leads to the entry's root.
        assert_eq!(
            root_from_inclusion_path(
                proof.batch_position,
                proof.batch_size,
                &leaves[position],
                &proof.batch_path
            ),
            Ok(self.batch.batch_root)
        );
        proof
    }
}

/// Runs the real binary.
pub fn run<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    Command::new(env!("CARGO_BIN_EXE_agritrace-verify"))
        .args(args)
        .output()
        .expect("run agritrace-verify")
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The run exited 1 and the report names `step` as the one that failed.
pub fn assert_fails_at(output: &Output, step: &str) {
    let text = stdout(output);
    assert_eq!(
        output.status.code(),
        Some(1),
        "expected a failed verification at {step:?}:\n{text}"
    );
    assert!(
        text.contains(&format!("RESULT: NOT VERIFIED (step \"{step}\" failed)")),
        "expected step {step:?} to fail:\n{text}"
    );
}

/// Writes `text` to `dir/name` and returns the path as an argument.
pub fn write(dir: &Path, name: &str, text: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    path.display().to_string()
}
