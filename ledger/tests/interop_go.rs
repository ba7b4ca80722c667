//! Interop with an implementation written independently of ours: Go's
//! `golang.org/x/mod/sumdb/tlog` and `golang.org/x/mod/sumdb/note`.
//!
//! This test writes a log the way the sequencer does (C2SP tiles and entry bundles for every
//! round, a signed checkpoint with two `cosignature/v1` witness lines, inclusion and consistency
//! proofs) into a temporary directory, then builds and runs `tests/interop-go` (`go run .`),
//! which checks everything with the Go packages and crypto/ed25519 and prints what it checked.
//! Requires the `go` command (and the Go module proxy, or a warm module cache, for
//! `golang.org/x/mod` pinned in `go.sum`); fails with a clear message without it.

use std::fs;
use std::path::Path;
use std::process::Command;

use ed25519_dalek::SigningKey;
use ledger::checkpoint::Checkpoint;
use ledger::cosignature::cosign;
use ledger::entry::{Entry, EpcisEventType, ReadingBatch, Token, TraceEvent, salted_commitment};
use ledger::merkle::{Hash, LeafIndex, TreeSize, leaf_hash};
use ledger::note::{KeyType, Note, NoteSigner};
use ledger::proof::{consistency_proof, inclusion_proof};
use ledger::tile::{BundleBuilder, BundleId, InMemoryTiles, TileAppender, TileId};
use protocol::DeviceId;

fn entry(i: u64) -> Vec<u8> {
    let entry = if i.is_multiple_of(3) {
        Entry::TraceEvent(TraceEvent {
            commitment: salted_commitment(&[1; 32], &leaf_hash(&i.to_be_bytes()).0),
            event_type: EpcisEventType::Object,
            biz_step: Token::new("shipping").expect("valid token"),
            event_time_ms: 1_700_000_000_000 + i,
        })
    } else {
        Entry::ReadingBatch(ReadingBatch {
            batch_root: leaf_hash(&i.to_le_bytes()),
            reading_count: 10,
            device_time_first_ms: i,
            device_time_last_ms: i + 5,
            ingest_time_ms: i + 9,
            devices: vec![DeviceId(i.to_be_bytes())],
        })
    };
    entry.encode().expect("valid entry")
}

fn write(dir: &Path, relative: &str, bytes: &[u8]) {
    let path = dir.join(relative);
    fs::create_dir_all(path.parent().expect("has a parent")).expect("create tile directory");
    fs::write(&path, bytes).expect("write file");
}

fn b64(hashes: &[Hash]) -> String {
    hashes
        .iter()
        .map(Hash::to_base64)
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn go_sumdb_tlog_and_note_accept_our_tiles_proofs_checkpoints_and_cosignatures() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path();

    // Append 1,300 entries in uneven rounds (crosses level-0 and level-1 tile boundaries),
    // writing every changed tile and the current bundle after each round, as the sequencer does.
    let mut appender = TileAppender::new();
    let mut tiles = InMemoryTiles::new();
    let mut bundle = BundleBuilder::new();
    let mut bundle_index = 0u64;
    let mut rounds: Vec<(TreeSize, Hash)> = Vec::new();
    let mut next = 0u64;
    for round_len in [1u64, 2, 5, 250, 1, 255, 300, 7, 479] {
        let mut hashes = Vec::new();
        for _ in 0..round_len {
            let bytes = entry(next);
            hashes.push(leaf_hash(&bytes));
            bundle.push(&bytes).expect("entry fits a bundle");
            if bundle.is_full() {
                let id = BundleId {
                    index: bundle_index,
                    width: 256,
                };
                write(out, &id.path(), bundle.as_bytes());
                bundle = BundleBuilder::new();
                bundle_index += 1;
            }
            next += 1;
        }
        if bundle.width() > 0 {
            let id = BundleId {
                index: bundle_index,
                width: bundle.width(),
            };
            write(out, &id.path(), bundle.as_bytes());
        }
        let outcome = appender.append(&hashes);
        for (id, bytes) in &outcome.changed_tiles {
            write(out, &id.path(), bytes);
        }
        tiles.store_all(&outcome.changed_tiles);
        rounds.push((outcome.size, outcome.root));
    }
    let (size, root) = *rounds.last().expect("rounds ran");
    assert_eq!(size, TreeSize(1300));
    assert!(
        out.join(
            TileId {
                level: 1,
                index: 0,
                width: 5
            }
            .path()
        )
        .exists()
    );

    // Signed checkpoint with two witness cosignatures.
    let log = NoteSigner::new(
        "agritrace.example/log",
        KeyType::Ed25519,
        SigningKey::from_bytes(&[1; 32]),
    )
    .expect("valid name");
    let witnesses: Vec<NoteSigner> = ["customs-a.example/witness", "court.example/witness"]
        .iter()
        .zip([2u8, 3])
        .map(|(name, seed)| {
            NoteSigner::new(
                name,
                KeyType::CosignatureV1,
                SigningKey::from_bytes(&[seed; 32]),
            )
            .expect("valid name")
        })
        .collect();
    let checkpoint = Checkpoint {
        origin: String::from("agritrace.example/log"),
        size,
        root,
        extensions: vec![],
    };
    let mut note = Note::parse(checkpoint.sign(&log).expect("sign").as_bytes()).expect("parse");
    for (i, witness) in witnesses.iter().enumerate() {
        let time = 1_760_000_000 + u64::try_from(i).expect("small");
        note.signatures
            .push(cosign(&note.text, witness, time).expect("cosign"));
    }
    write(out, "checkpoint", note.to_text().as_bytes());
    write(out, "log.vkey", log.verifier().to_vkey().as_bytes());
    let witness_keys: Vec<String> = witnesses.iter().map(|w| w.verifier().to_vkey()).collect();
    write(out, "witnesses.vkeys", witness_keys.join("\n").as_bytes());

    // Proofs for every round size: inclusion of a spread of leaves, consistency between rounds.
    let mut cases = String::new();
    for (size, root) in &rounds {
        cases.push_str(&format!("root {} {}\n", size.0, root.to_base64()));
    }
    for (size, _) in &rounds {
        let mut indexes = vec![
            0,
            1,
            size.0 / 3,
            size.0 / 2,
            size.0.saturating_sub(2),
            size.0 - 1,
        ];
        indexes.retain(|i| *i < size.0);
        indexes.dedup();
        for index in indexes {
            let proof = inclusion_proof(LeafIndex(index), *size, &tiles).expect("inclusion proof");
            cases.push_str(&format!(
                "inclusion {index} {} {}\n",
                size.0,
                b64(&proof.path)
            ));
        }
    }
    for (i, (old, _)) in rounds.iter().enumerate() {
        for (new, _) in &rounds[i..] {
            let proof = consistency_proof(*old, *new, &tiles).expect("consistency proof");
            if old.0 == new.0 {
                continue;
            }
            cases.push_str(&format!(
                "consistency {} {} {}\n",
                old.0,
                new.0,
                b64(&proof.path)
            ));
        }
    }
    write(out, "cases.txt", cases.as_bytes());

    let program = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop-go");
    let result = Command::new("go")
        .arg("run")
        .arg(".")
        .arg(out)
        .current_dir(&program)
        .output();
    let output = match result {
        Ok(output) => output,
        Err(e) => panic!(
            "this test needs the Go toolchain: could not run `go` ({e}). Install Go 1.26+ \
             and make sure `go` is on PATH."
        ),
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the Go checker rejected our log:\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stdout.contains("interop-go: PASS"),
        "unexpected Go output:\n{stdout}"
    );
    assert_eq!(stdout.matches("ok cosignature by").count(), 2, "{stdout}");
}
