//! Readings signed and verified per second, single and batched Ed25519 verification, each
//! beside a baseline measured in the same run (SHA-256 over 64 bytes, the cost of one Merkle
//! node hash), because the machine is shared and absolute figures drift.
//!
//! Also `verify_batch` against [`protocol::batch::verify_batch`], which combines the terms of
//! signatures that share a key, on the group a backlog of 16 readings per message makes.
//!
//! Run: `cargo bench -p protocol --features batch --bench signing`

use std::hint::black_box;
use std::time::{Duration, Instant};

use ed25519_dalek::{Signature, VerifyingKey};
use protocol::limits::{SIGNED_MESSAGE_BYTES_MAX, SIGNED_READING_BYTES_MAX};
use protocol::{
    DeviceId, DoorState, GeoPosition, KeyEpoch, Reading, SequenceNumber, SignedReading, SigningKey,
    encode_signed_reading,
};
use sha2::{Digest, Sha256};

const RUN: Duration = Duration::from_millis(1500);

/// Runs `op` repeatedly for about `RUN` and returns operations per second; `op` returns how
/// many operations it did.
fn rate(mut op: impl FnMut() -> u64) -> f64 {
    // Warm up caches and the CPU-feature dispatch.
    for _ in 0..10 {
        op();
    }
    let start = Instant::now();
    let mut done = 0u64;
    while start.elapsed() < RUN {
        done += op();
    }
    done as f64 / start.elapsed().as_secs_f64()
}

fn reading(device: u64, sequence: u64) -> Reading {
    Reading {
        device: DeviceId(device.to_be_bytes()),
        key_epoch: KeyEpoch(1),
        sequence: SequenceNumber(sequence),
        device_time_ms: 1_780_000_000_000 + sequence * 300_000,
        temperature_centi_c: 1_012,
        humidity_centi_pct: 9_130,
        position: Some(GeoPosition {
            lat_e7: 181_234_567,
            lon_e7: 1_103_456_789,
        }),
        door: DoorState::Closed,
        shock_events: 0,
        battery_mv: 3_612,
        dropped_samples: 0,
    }
}

fn main() {
    let key = SigningKey::from_bytes(&[42; 32]);
    let verifying = key.verifying_key();

    let node = [0x5au8; 64];
    let baseline = rate(|| {
        for _ in 0..1000 {
            black_box(Sha256::digest(black_box(&node)));
        }
        1000
    });

    let mut sequence = 0u64;
    let mut buf = [0u8; SIGNED_READING_BYTES_MAX];
    let signed_per_s = rate(|| {
        sequence += 1;
        let len = encode_signed_reading(&reading(7, sequence), &key, &mut buf).expect("encodes");
        black_box(&buf[..len]);
        1
    });

    let samples: Vec<Vec<u8>> = (0..256)
        .map(|i| {
            let mut out = [0u8; SIGNED_READING_BYTES_MAX];
            let len = encode_signed_reading(&reading(7, i), &key, &mut out).expect("encodes");
            out[..len].to_vec()
        })
        .collect();
    let mut i = 0usize;
    let verify_per_s = rate(|| {
        i = (i + 1) % samples.len();
        let signed = SignedReading::decode(&samples[i]).expect("decodes");
        signed.verify(&verifying).expect("verifies");
        1
    });
    let decode_per_s = rate(|| {
        i = (i + 1) % samples.len();
        black_box(SignedReading::decode(&samples[i]).expect("decodes"));
        1
    });

    let batch_rate = |n: usize| {
        let decoded: Vec<SignedReading<'_>> = samples[..n]
            .iter()
            .map(|s| SignedReading::decode(s).expect("decodes"))
            .collect();
        let mut buffers = vec![[0u8; SIGNED_MESSAGE_BYTES_MAX]; n];
        let messages: Vec<Vec<u8>> = decoded
            .iter()
            .zip(buffers.iter_mut())
            .map(|(s, b)| s.signed_message(b).to_vec())
            .collect();
        let message_refs: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
        let signatures: Vec<Signature> = decoded.iter().map(|s| *s.signature()).collect();
        let keys: Vec<VerifyingKey> = vec![verifying; n];
        rate(|| {
            ed25519_dalek::verify_batch(&message_refs, &signatures, &keys).expect("batch verifies");
            n as u64
        })
    };
    let batch_64 = batch_rate(64);
    let batch_256 = batch_rate(256);

    // 256 readings of 16 devices, 16 each (a verification group of backlog uplinks).
    let signers: Vec<SigningKey> = (0..16u8)
        .map(|k| SigningKey::from_bytes(&[k + 1; 32]))
        .collect();
    let group: Vec<(Vec<u8>, Signature, VerifyingKey)> = (0..256u64)
        .map(|i| {
            let device = usize::try_from(i / 16).expect("small");
            let mut out = [0u8; SIGNED_READING_BYTES_MAX];
            let len = encode_signed_reading(&reading(i / 16, i % 16), &signers[device], &mut out)
                .expect("encodes");
            let signed = SignedReading::decode(&out[..len]).expect("decodes");
            let mut buffer = [0u8; SIGNED_MESSAGE_BYTES_MAX];
            (
                signed.signed_message(&mut buffer).to_vec(),
                *signed.signature(),
                signers[device].verifying_key(),
            )
        })
        .collect();
    let group_messages: Vec<&[u8]> = group.iter().map(|g| g.0.as_slice()).collect();
    let group_signatures: Vec<Signature> = group.iter().map(|g| g.1).collect();
    let group_keys: Vec<VerifyingKey> = group.iter().map(|g| g.2).collect();
    let dalek_16_keys = rate(|| {
        ed25519_dalek::verify_batch(&group_messages, &group_signatures, &group_keys)
            .expect("batch verifies");
        256
    });
    let coalesced_16_keys = rate(|| {
        protocol::batch::verify_batch(&group_messages, &group_signatures, &group_keys)
            .expect("batch verifies");
        256
    });

    println!("| operation | per second | per op (µs) | ratio to SHA-256 node hash |");
    println!("|---|---:|---:|---:|");
    let row = |name: &str, per_s: f64| {
        println!(
            "| {name} | {per_s:.0} | {:.2} | {:.5} |",
            1e6 / per_s,
            per_s / baseline
        );
    };
    row("baseline: SHA-256 of 64 bytes", baseline);
    row("sign a reading (encode + Ed25519 sign)", signed_per_s);
    row("decode a signed reading (no signature check)", decode_per_s);
    row("decode + verify_strict, one by one", verify_per_s);
    row("verify_batch, 64 per batch (per signature)", batch_64);
    row("verify_batch, 256 per batch (per signature)", batch_256);
    row(
        "verify_batch, 256 per batch of 16 keys x 16 (per signature)",
        dalek_16_keys,
    );
    row(
        "coalesced batch::verify_batch, 256 per batch of 16 keys x 16 (per signature)",
        coalesced_16_keys,
    );
    println!(
        "\nbatch speed-up over single verification: {:.2}x at 64, {:.2}x at 256",
        batch_64 / verify_per_s,
        batch_256 / verify_per_s
    );
    println!(
        "coalescing keys over verify_batch, 16 keys x 16: {:.2}x",
        coalesced_16_keys / dalek_16_keys
    );
}
