//! Runs the `agritrace-verify` binary on a reading proof: a good one verifies step by step,
//! and a change to any part of it (the reading, the header, the batch position, size and path,
//! the entry, the log proof, the checkpoint) or a wrong device key fails, at the step that
//! names the problem, with exit status 1; unusable input exits 2.

mod support;

use std::fs;

use agritrace_verify::ReadingProof;
use ledger::checkpoint::Checkpoint;
use ledger::cosignature::cosign;
use ledger::entry::{Entry, EpcisEventType, Token, TraceEvent, salted_commitment};
use ledger::merkle::{LeafIndex, TreeSize, leaf_hash};
use ledger::note::{KeyType, Note, NoteSigner, SigningKey};
use ledger::proof::inclusion_proof;
use ledger::tile::{InMemoryTiles, TileAppender};
use ledger::tlog_proof::TlogProof;
use support::{
    BATCH_SIZE, DEVICE_A, DEVICE_B, POSITION, assert_fails_at, batch, device_key_hex, run, stdout,
    write,
};

const ORIGIN: &str = "agritrace.example/log";
/// Where the batch entry sits in the 300-entry log.
const ENTRY_INDEX: usize = 201;

fn log_signer(seed: u8) -> NoteSigner {
    NoteSigner::new(
        ORIGIN,
        KeyType::Ed25519,
        SigningKey::from_bytes(&[seed; 32]),
    )
    .expect("name")
}

fn witnesses() -> Vec<NoteSigner> {
    [
        "customs-a.example/w",
        "customs-b.example/w",
        "court.example/w",
    ]
    .iter()
    .zip([11u8, 12, 13])
    .map(|(name, seed)| {
        NoteSigner::new(
            name,
            KeyType::CosignatureV1,
            SigningKey::from_bytes(&[seed; 32]),
        )
        .expect("name")
    })
    .collect()
}

fn trace_event(i: u64) -> Vec<u8> {
    Entry::TraceEvent(TraceEvent {
        commitment: salted_commitment(&[3; 32], &leaf_hash(&i.to_be_bytes()).0),
        event_type: EpcisEventType::Object,
        biz_step: Token::new("harvesting").expect("valid token"),
        event_time_ms: 1_700_000_000_000 + i,
    })
    .encode()
    .expect("valid entry")
}

/// A 300-entry log whose entry `ENTRY_INDEX` is `entry`: the tlog-proof of that entry, with a
/// checkpoint signed by the log key of `log_seed` and cosigned by the first `cosigners`
/// witnesses.
fn log_proof(entry: &[u8], log_seed: u8, cosigners: usize) -> TlogProof {
    let entries: Vec<Vec<u8>> = (0..300u64)
        .map(|i| {
            if i == u64::try_from(ENTRY_INDEX).expect("small") {
                entry.to_vec()
            } else {
                trace_event(i)
            }
        })
        .collect();
    let hashes: Vec<_> = entries.iter().map(|e| leaf_hash(e)).collect();
    let mut appender = TileAppender::new();
    let mut tiles = InMemoryTiles::new();
    let outcome = appender.append(&hashes);
    tiles.store_all(&outcome.changed_tiles);
    let checkpoint = Checkpoint {
        origin: ORIGIN.into(),
        size: outcome.size,
        root: outcome.root,
        extensions: vec![],
    };
    let signed = checkpoint.sign(&log_signer(log_seed)).expect("sign");
    let mut note = Note::parse(signed.as_bytes()).expect("parse");
    for witness in &witnesses()[..cosigners] {
        note.signatures
            .push(cosign(&note.text, witness, 1_760_000_000).expect("cosign"));
    }
    let index = LeafIndex(u64::try_from(ENTRY_INDEX).expect("small"));
    TlogProof {
        extra: None,
        index,
        path: inclusion_proof(index, outcome.size, &tiles)
            .expect("proof")
            .path,
        checkpoint: note.to_text(),
    }
}

struct Case {
    dir: tempfile::TempDir,
    proof: ReadingProof,
    policy: String,
}

/// The proof of device A's sequence 4, cosigned by two of three witnesses, and a policy that
/// needs two of them.
fn case() -> Case {
    let batch = batch();
    let proof = batch.reading_proof(POSITION, log_proof(&batch.entry, 1, 2));
    let dir = tempfile::tempdir().expect("temp dir");
    let w: Vec<String> = witnesses().iter().map(|w| w.verifier().to_vkey()).collect();
    let policy = format!(
        "log {}\nwitness customs-A {}\nwitness customs-B {}\nwitness court {}\ngroup agencies 2 customs-A customs-B court\nquorum agencies\n",
        log_signer(1).verifier().to_vkey(),
        w[0],
        w[1],
        w[2]
    );
    let policy = write(dir.path(), "agencies.policy", policy.as_bytes());
    Case { dir, proof, policy }
}

impl Case {
    /// Runs the binary on `proof` with the policy file and `extra` arguments.
    fn verify(&self, proof: &ReadingProof, extra: &[&str]) -> std::process::Output {
        self.verify_text(proof.to_text().as_bytes(), extra)
    }

    fn verify_text(&self, text: &[u8], extra: &[&str]) -> std::process::Output {
        let file = write(self.dir.path(), "reading.proof", text);
        let mut args = vec!["--reading-proof", &file, "--policy", &self.policy];
        args.extend_from_slice(extra);
        run(args)
    }

    fn with_key(&self, proof: &ReadingProof) -> std::process::Output {
        self.verify(proof, &["--device-key", &device_key_hex(DEVICE_A)])
    }
}

const STEPS: [&str; 15] = [
    "load trust policy",
    "load device key",
    "read reading proof",
    "decode signed reading",
    "device and sequence",
    "device signature",
    "reading leaf hash",
    "batch path",
    "batch entry",
    "parse checkpoint",
    "check signatures",
    "log signature",
    "witness quorum",
    "inclusion proof",
    "RESULT: VERIFIED",
];

#[test]
fn a_good_reading_proof_verifies_step_by_step() {
    let case = case();
    let output = case.with_key(&case.proof);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}");
    // Every step, in order, and each passed.
    let mut rest = text.as_str();
    for (number, step) in (1..).zip(STEPS) {
        let at = rest
            .find(step)
            .unwrap_or_else(|| panic!("report lacks {step:?} after the steps before it:\n{text}"));
        if step.starts_with("RESULT") {
            break;
        }
        let line = rest[..at].lines().last().unwrap_or_default().to_owned() + &rest[at..];
        let line = line.lines().next().unwrap_or_default();
        assert!(
            line.starts_with(&format!("step {number:>2}  {step}")) && line.contains(" ok "),
            "{line:?}"
        );
        rest = &rest[at + step.len()..];
    }
    for fact in [
        "device a900000000000001 sequence 4, batch position 5 of 12, log index 201",
        "Ed25519 signature by the given key (key epoch 1) valid",
        "position 5 of 12 readings leads to root",
        "ReadingBatch of 12 readings from 2 device(s), root matches",
        "quorum agencies met: customs-A (time 1760000000), customs-B",
        "entry is leaf 201 of the 300-entry tree",
    ] {
        assert!(text.contains(fact), "report lacks {fact:?}:\n{text}");
    }
    assert!(
        text.contains(&leaf_hash(&case.proof.signed_reading).to_hex()),
        "the report shows the reading's leaf hash:\n{text}"
    );
}

#[test]
fn without_a_device_key_the_signature_step_is_skipped_and_keys_can_be_flags() {
    let case = case();
    let file = write(
        case.dir.path(),
        "reading.proof",
        case.proof.to_text().as_bytes(),
    );
    let output = run([
        "--reading-proof",
        &file,
        "--log-key",
        &log_signer(1).verifier().to_vkey(),
    ]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert!(
        text.contains("device signature                   skip  no --device-key given"),
        "{text}"
    );
    assert!(!text.contains("load device key"), "{text}");
}

#[test]
fn a_reading_that_is_not_a_signed_reading_fails_decoding() {
    let case = case();
    let mut proof = case.proof.clone();
    proof.signed_reading[0] = 2;
    let output = case.verify(&proof, &[]);
    assert_fails_at(&output, "decode signed reading");
    assert!(stdout(&output).contains("unsupported wire version 2"));
    // One byte more is trailing data.
    let mut proof = case.proof.clone();
    proof.signed_reading.push(0);
    assert_fails_at(&case.verify(&proof, &[]), "decode signed reading");
}

#[test]
fn a_header_naming_another_reading_fails_the_device_and_sequence_step() {
    let case = case();
    let proof = ReadingProof {
        sequence: protocol::SequenceNumber(3),
        ..case.proof.clone()
    };
    let output = case.verify(&proof, &[]);
    assert_fails_at(&output, "device and sequence");
    assert!(
        stdout(&output).contains(
            "the file names device a900000000000001 sequence 3, the signed reading device a900000000000001 sequence 4"
        ),
        "{}",
        stdout(&output)
    );
    let proof = ReadingProof {
        device: DEVICE_B,
        ..case.proof.clone()
    };
    assert_fails_at(&case.verify(&proof, &[]), "device and sequence");
}

#[test]
fn a_changed_signature_or_a_wrong_device_key_fails_the_device_signature() {
    let case = case();
    let mut proof = case.proof.clone();
    let last = proof.signed_reading.len() - 1;
    proof.signed_reading[last] ^= 1;
    assert_fails_at(&case.with_key(&proof), "device signature");
    // Another device's key.
    let output = case.verify(&case.proof, &["--device-key", &device_key_hex(DEVICE_B)]);
    assert_fails_at(&output, "device signature");
    assert!(stdout(&output).contains("does not verify under the device key given"));
}

#[test]
fn without_a_device_key_a_changed_reading_fails_at_the_batch_root() {
    let case = case();
    let mut proof = case.proof.clone();
    let last = proof.signed_reading.len() - 1;
    proof.signed_reading[last] ^= 1;
    let output = case.verify(&proof, &[]);
    assert_fails_at(&output, "batch entry");
    assert!(
        stdout(&output).contains("is not the root"),
        "{}",
        stdout(&output)
    );
}

#[test]
fn a_changed_batch_path_hash_fails_at_the_batch_root() {
    let case = case();
    for i in 0..case.proof.batch_path.len() {
        let mut proof = case.proof.clone();
        proof.batch_path[i].0[31] ^= 0x80;
        assert_fails_at(&case.verify(&proof, &[]), "batch entry");
    }
}

#[test]
fn a_wrong_batch_position_fails() {
    let case = case();
    // Another position with a path of the same length leads to another root.
    let proof = ReadingProof {
        batch_position: LeafIndex(4),
        ..case.proof.clone()
    };
    assert_fails_at(&case.verify(&proof, &[]), "batch entry");
    // A position outside the batch has no path at all.
    let proof = ReadingProof {
        batch_position: LeafIndex(12),
        ..case.proof.clone()
    };
    let output = case.verify(&proof, &[]);
    assert_fails_at(&output, "batch path");
    assert!(stdout(&output).contains("leaf index 12 is not below tree size 12"));
}

#[test]
fn a_wrong_batch_size_fails() {
    let case = case();
    // A size whose tree has a longer path for this position.
    let proof = ReadingProof {
        batch_size: TreeSize(20),
        ..case.proof.clone()
    };
    let output = case.verify(&proof, &[]);
    assert_fails_at(&output, "batch path");
    assert!(stdout(&output).contains("wrong number of hashes"));
    // A size with the same path (and so the same root) is caught by the entry's count.
    let proof = ReadingProof {
        batch_size: TreeSize(13),
        ..case.proof.clone()
    };
    let output = case.verify(&proof, &[]);
    assert_fails_at(&output, "batch entry");
    assert!(
        stdout(&output).contains("the entry counts 12 readings, the batch path is for 13"),
        "{}",
        stdout(&output)
    );
}

#[test]
fn an_entry_of_another_kind_or_another_batch_fails_the_batch_entry() {
    let case = case();
    let batch = batch();
    let reencoded = |change: &dyn Fn(&mut ledger::entry::ReadingBatch)| {
        let mut b = batch.batch.clone();
        change(&mut b);
        Entry::ReadingBatch(b).encode().expect("valid entry")
    };
    for (entry, says) in [
        (
            trace_event(7),
            "the entry is a TraceEvent, not a ReadingBatch",
        ),
        (
            reencoded(&|b| b.batch_root.0[0] ^= 1),
            "the entry's batch root",
        ),
        (
            reencoded(&|b| b.devices = vec![DEVICE_B]),
            "the entry does not list device a900000000000001",
        ),
        (
            reencoded(&|b| b.device_time_last_ms = b.device_time_first_ms + 60_000),
            "is outside the batch's",
        ),
        (
            reencoded(&|b| b.reading_count = u32::try_from(BATCH_SIZE + 1).expect("small")),
            "the entry counts 13 readings",
        ),
    ] {
        let proof = ReadingProof {
            entry,
            ..case.proof.clone()
        };
        let output = case.verify(&proof, &[]);
        assert_fails_at(&output, "batch entry");
        assert!(
            stdout(&output).contains(says),
            "{says}: {}",
            stdout(&output)
        );
    }
    // A flipped byte in the entry's version, kind or batch root.
    for at in [0, 1, 2] {
        let mut proof = case.proof.clone();
        proof.entry[at] ^= 0x40;
        assert_fails_at(&case.verify(&proof, &[]), "batch entry");
    }
    // A flipped byte the entry step cannot see (the other device's id) is not the logged entry.
    let mut proof = case.proof.clone();
    let last = proof.entry.len() - 1;
    proof.entry[last] ^= 0x40;
    assert_fails_at(&case.verify(&proof, &[]), "inclusion proof");
}

#[test]
fn an_entry_that_names_the_batch_but_is_not_the_logged_one_fails_the_inclusion_proof() {
    let case = case();
    let mut batch = batch().batch;
    batch.ingest_time_ms += 1;
    let proof = ReadingProof {
        entry: Entry::ReadingBatch(batch).encode().expect("valid entry"),
        ..case.proof.clone()
    };
    assert_fails_at(&case.verify(&proof, &[]), "inclusion proof");
}

#[test]
fn a_changed_log_proof_fails_the_inclusion_proof() {
    let case = case();
    for i in 0..case.proof.log_proof.path.len() {
        let mut proof = case.proof.clone();
        proof.log_proof.path[i].0[0] ^= 1;
        assert_fails_at(&case.verify(&proof, &[]), "inclusion proof");
    }
    let mut proof = case.proof.clone();
    proof.log_proof.index = LeafIndex(202);
    assert_fails_at(&case.verify(&proof, &[]), "inclusion proof");
}

#[test]
fn a_checkpoint_of_another_log_key_or_with_a_bad_signature_fails() {
    let case = case();
    let batch = batch();
    // The same origin name under another key, cosigned by the same witnesses.
    let proof = batch.reading_proof(POSITION, log_proof(&batch.entry, 2, 3));
    let output = case.verify(&proof, &[]);
    assert_fails_at(&output, "log signature");
    assert!(
        stdout(&output)
            .contains("no valid signature by a trusted log key named agritrace.example/log"),
        "{}",
        stdout(&output)
    );
    // Another key and no cosignature: nothing the policy knows signed.
    let proof = batch.reading_proof(POSITION, log_proof(&batch.entry, 2, 0));
    assert_fails_at(&case.verify(&proof, &[]), "check signatures");
    // The log's own signature changed.
    let mut note = Note::parse(case.proof.log_proof.checkpoint.as_bytes()).expect("parse");
    note.signatures[0].signature[5] ^= 1;
    let mut proof = case.proof.clone();
    proof.log_proof.checkpoint = note.to_text();
    let output = case.verify(&proof, &[]);
    assert_fails_at(&output, "check signatures");
    assert!(stdout(&output).contains(&format!("signature by trusted key {ORIGIN} is invalid")));
}

#[test]
fn too_few_cosignatures_fail_the_witness_quorum() {
    let case = case();
    let batch = batch();
    let proof = batch.reading_proof(POSITION, log_proof(&batch.entry, 1, 1));
    let output = case.verify(&proof, &[]);
    assert_fails_at(&output, "witness quorum");
    assert!(
        stdout(&output).contains("quorum agencies not met: customs-A (time 1760000000)"),
        "{}",
        stdout(&output)
    );
}

#[test]
fn a_malformed_file_fails_reading_the_proof() {
    let case = case();
    let text = case.proof.to_text();
    for broken in [
        text.replacen("reading-proof/v1", "reading-proof/v2", 1),
        text.replacen("sequence 4", "sequence 04", 1),
        text.replacen("\nentry ", "\nextra ", 1),
        text.replacen('\n', "\r\n", 2),
    ] {
        let output = case.verify_text(broken.as_bytes(), &[]);
        assert_fails_at(&output, "read reading proof");
    }
}

#[test]
fn unusable_input_exits_2() {
    let case = case();
    // A missing file.
    let missing = case.dir.path().join("absent.proof").display().to_string();
    let output = run(["--reading-proof", &missing, "--policy", &case.policy]);
    assert_eq!(output.status.code(), Some(2), "{}", stdout(&output));
    assert!(stdout(&output).contains("read reading proof"));
    // A device key that is not a key.
    for key in ["zz", &"00".repeat(31), &"g0".repeat(32)] {
        let output = case.verify(&case.proof, &["--device-key", key]);
        assert_eq!(output.status.code(), Some(2), "{}", stdout(&output));
        assert!(
            stdout(&output).contains("RESULT: NOT VERIFIED (step \"load device key\" failed)"),
            "{}",
            stdout(&output)
        );
    }
    // A small-order point is refused as a key (identity point).
    let mut identity = String::from("01");
    identity.push_str(&"00".repeat(31));
    let output = case.verify(&case.proof, &["--device-key", &identity]);
    assert_eq!(output.status.code(), Some(2), "{}", stdout(&output));
    // --device-key only goes with a reading proof; a reading proof excludes --entry.
    let file = write(case.dir.path(), "entry.bin", b"x");
    let output = run([
        "--reading-proof",
        &file,
        "--entry",
        &file,
        "--policy",
        &case.policy,
    ]);
    assert_eq!(output.status.code(), Some(2));
    fs::remove_file(&file).expect("remove");
}
