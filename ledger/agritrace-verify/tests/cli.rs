//! Runs the `agritrace-verify` binary on a good proof bundle and on tampered ones, checking the
//! exit status and the step the report names.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use ledger::checkpoint::Checkpoint;
use ledger::cosignature::cosign;
use ledger::entry::{Entry, EpcisEventType, Token, TraceEvent, salted_commitment};
use ledger::merkle::{LeafIndex, leaf_hash};
use ledger::note::{KeyType, Note, NoteSigner, SigningKey};
use ledger::proof::inclusion_proof;
use ledger::tile::{InMemoryTiles, TileAppender};
use ledger::tlog_proof::TlogProof;

const ORIGIN: &str = "agritrace.example/log";

struct Bundle {
    dir: tempfile::TempDir,
    entry: Vec<u8>,
    proof: TlogProof,
    log_vkey: String,
    witness_vkeys: Vec<String>,
}

fn entry(i: u64) -> Vec<u8> {
    Entry::TraceEvent(TraceEvent {
        commitment: salted_commitment(&[3; 32], &leaf_hash(&i.to_be_bytes()).0),
        event_type: EpcisEventType::Object,
        biz_step: Token::new("harvesting").expect("valid token"),
        event_time_ms: 1_700_000_000_000 + i,
    })
    .encode()
    .expect("valid entry")
}

/// A 300-entry log, a proof for entry 123 and a checkpoint cosigned by `cosigners` of the three
/// witnesses.
fn bundle(cosigners: usize) -> Bundle {
    let entries: Vec<Vec<u8>> = (0..300).map(entry).collect();
    let hashes: Vec<_> = entries.iter().map(|e| leaf_hash(e)).collect();
    let mut appender = TileAppender::new();
    let mut tiles = InMemoryTiles::new();
    let outcome = appender.append(&hashes);
    tiles.store_all(&outcome.changed_tiles);

    let log =
        NoteSigner::new(ORIGIN, KeyType::Ed25519, SigningKey::from_bytes(&[1; 32])).expect("name");
    let witnesses: Vec<NoteSigner> = [
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
    .collect();
    let checkpoint = Checkpoint {
        origin: ORIGIN.into(),
        size: outcome.size,
        root: outcome.root,
        extensions: vec![],
    };
    let mut note = Note::parse(checkpoint.sign(&log).expect("sign").as_bytes()).expect("parse");
    for witness in &witnesses[..cosigners] {
        note.signatures
            .push(cosign(&note.text, witness, 1_760_000_000).expect("cosign"));
    }
    let path = inclusion_proof(LeafIndex(123), outcome.size, &tiles)
        .expect("proof")
        .path;
    let proof = TlogProof {
        extra: None,
        index: LeafIndex(123),
        path,
        checkpoint: note.to_text(),
    };
    let bundle = Bundle {
        dir: tempfile::tempdir().expect("temp dir"),
        entry: entries[123].clone(),
        proof,
        log_vkey: log.verifier().to_vkey(),
        witness_vkeys: witnesses.iter().map(|w| w.verifier().to_vkey()).collect(),
    };
    let policy = format!(
        "log {}\nwitness customs-A {}\nwitness customs-B {}\nwitness court {}\ngroup agencies 2 customs-A customs-B court\nquorum agencies\n",
        bundle.log_vkey, bundle.witness_vkeys[0], bundle.witness_vkeys[1], bundle.witness_vkeys[2]
    );
    bundle.write("policy.txt", policy.as_bytes());
    bundle.write("entry.bin", &bundle.entry.clone());
    bundle.write("entry.tlog-proof", bundle.proof.to_text().as_bytes());
    bundle
}

impl Bundle {
    fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, bytes: &[u8]) {
        fs::write(self.path(name), bytes).expect("write");
    }

    fn verify(&self) -> Output {
        self.run(&[
            "--entry",
            &self.path("entry.bin").display().to_string(),
            "--proof",
            &self.path("entry.tlog-proof").display().to_string(),
            "--policy",
            &self.path("policy.txt").display().to_string(),
        ])
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_agritrace-verify"))
            .args(args)
            .output()
            .expect("run agritrace-verify")
    }
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn assert_fails_at(output: &Output, step: &str) {
    let text = stdout(output);
    assert_eq!(
        output.status.code(),
        Some(1),
        "expected a failed verification:\n{text}"
    );
    assert!(
        text.contains(&format!("RESULT: NOT VERIFIED (step \"{step}\" failed)")),
        "expected step {step:?} to fail:\n{text}"
    );
}

#[test]
fn a_good_bundle_verifies_step_by_step() {
    let bundle = bundle(2);
    let output = bundle.verify();
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}");
    for step in [
        "load trust policy",
        "read entry",
        "read proof file",
        "log signature",
        "witness quorum",
        "inclusion proof",
    ] {
        assert!(text.contains(step), "report lacks {step}:\n{text}");
    }
    assert!(text.contains("TraceEvent entry"), "{text}");
    assert!(
        text.contains("quorum agencies met: customs-A (time 1760000000), customs-B"),
        "{text}"
    );
    assert!(text.contains("RESULT: VERIFIED"), "{text}");
}

#[test]
fn the_leaf_hash_can_stand_in_for_the_entry_and_keys_can_be_flags() {
    let bundle = bundle(3);
    let leaf = leaf_hash(&bundle.entry).to_hex();
    let proof = bundle.path("entry.tlog-proof").display().to_string();
    let w: Vec<String> = ["a", "b", "c"]
        .iter()
        .zip(&bundle.witness_vkeys)
        .map(|(n, k)| format!("{n}={k}"))
        .collect();
    let output = bundle.run(&[
        "--leaf-hash",
        &leaf,
        "--proof",
        &proof,
        "--log-key",
        &bundle.log_vkey,
        "--witness",
        &w[0],
        "--witness",
        &w[1],
        "--witness",
        &w[2],
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
}

#[test]
fn a_different_entry_fails_the_inclusion_proof() {
    let bundle = bundle(2);
    bundle.write("entry.bin", &entry(124));
    assert_fails_at(&bundle.verify(), "inclusion proof");
}

#[test]
fn a_wrong_proof_hash_fails_the_inclusion_proof() {
    let bundle = bundle(2);
    let mut proof = bundle.proof.clone();
    proof.path[3].0[0] ^= 1;
    bundle.write("entry.tlog-proof", proof.to_text().as_bytes());
    assert_fails_at(&bundle.verify(), "inclusion proof");
}

#[test]
fn a_bad_log_signature_fails_the_signature_check() {
    let bundle = bundle(2);
    let mut note = Note::parse(bundle.proof.checkpoint.as_bytes()).expect("parse");
    note.signatures[0].signature[5] ^= 1;
    let proof = TlogProof {
        checkpoint: note.to_text(),
        ..bundle.proof.clone()
    };
    bundle.write("entry.tlog-proof", proof.to_text().as_bytes());
    let output = bundle.verify();
    assert_fails_at(&output, "check signatures");
    assert!(stdout(&output).contains(&format!("signature by trusted key {ORIGIN} is invalid")));
}

#[test]
fn a_checkpoint_for_another_root_fails_the_signature_check() {
    let bundle = bundle(2);
    let mut note = Note::parse(bundle.proof.checkpoint.as_bytes()).expect("parse");
    let mut checkpoint = Checkpoint::parse(&note.text).expect("checkpoint");
    checkpoint.root.0[0] ^= 1;
    note.text = checkpoint.to_text();
    let proof = TlogProof {
        checkpoint: note.to_text(),
        ..bundle.proof.clone()
    };
    bundle.write("entry.tlog-proof", proof.to_text().as_bytes());
    assert_fails_at(&bundle.verify(), "check signatures");
}

#[test]
fn too_few_cosignatures_fail_the_witness_quorum() {
    let bundle = bundle(1);
    let output = bundle.verify();
    assert_fails_at(&output, "witness quorum");
    assert!(
        stdout(&output).contains("quorum agencies not met: customs-A"),
        "{}",
        stdout(&output)
    );
}

#[test]
fn a_missing_file_is_unusable_input() {
    let bundle = bundle(2);
    fs::remove_file(bundle.path("entry.bin")).expect("remove");
    let output = bundle.verify();
    assert_eq!(output.status.code(), Some(2), "{}", stdout(&output));
    assert!(Path::new(&bundle.path("policy.txt")).exists());
}

#[test]
fn a_witness_name_cannot_inject_policy_lines() {
    let bundle = bundle(1);
    // With text-built policies, this name added a `quorum none` line of its own.
    let injected = format!("x {}\nquorum none\nwitness y", bundle.witness_vkeys[1]);
    let output = bundle.run(&[
        "--entry",
        &bundle.path("entry.bin").display().to_string(),
        "--proof",
        &bundle.path("entry.tlog-proof").display().to_string(),
        "--log-key",
        &bundle.log_vkey,
        "--witness",
        &format!("{injected}={}", bundle.witness_vkeys[0]),
    ]);
    assert_eq!(output.status.code(), Some(2), "{}", stdout(&output));
    assert!(
        stdout(&output).contains("load trust policy"),
        "{}",
        stdout(&output)
    );
}
