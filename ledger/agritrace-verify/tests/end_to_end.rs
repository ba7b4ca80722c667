//! End to end: the real sequencer (in-memory storage) with a real witness served over loopback
//! HTTP appends entries and publishes a cosigned checkpoint; the sequencer's `tlog_proof` file
//! for one entry is then checked by the `agritrace-verify` binary with a quorum policy (exit 0),
//! and tampered copies fail (exit 1) at the step that names the problem. The same for a
//! reading proof: signed readings batched into a `ReadingBatch` entry the sequencer logs.

mod support;

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use ledger::entry::{Entry, EpcisEventType, Token, TraceEvent, salted_commitment};
use ledger::merkle::{LeafIndex, TreeSize, empty_root, leaf_hash};
use ledger::note::{KeyType, NoteSigner, SigningKey};
use ledger::sequencer::{self, SequencerConfig};
use ledger::storage::memory::MemoryStorage;
use ledger::tlog_proof::TlogProof;
use ledger::witness::{Witness, WitnessedLog};
use ledger::witness_client::{WitnessClient, WitnessEndpoint};
use support::{DEVICE_A, DEVICE_B, POSITION, assert_fails_at, device_key_hex, run, stdout, write};

const ORIGIN: &str = "agritrace.e2e/log";
const WITNESS: &str = "customs.e2e/witness";

fn entry(i: u64) -> Vec<u8> {
    Entry::TraceEvent(TraceEvent {
        commitment: salted_commitment(&[9; 32], &leaf_hash(&i.to_be_bytes()).0),
        event_type: EpcisEventType::Object,
        biz_step: Token::new("shipping").expect("valid token"),
        event_time_ms: 1_700_000_000_000 + i,
    })
    .encode()
    .expect("valid entry")
}

fn verify(dir: &Path, proof_file: &str, policy: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_agritrace-verify"))
        .arg("--entry")
        .arg(dir.join("entry.bin"))
        .arg("--proof")
        .arg(dir.join(proof_file))
        .arg("--policy")
        .arg(dir.join(policy))
        .output()
        .expect("run agritrace-verify")
}

fn log_key() -> NoteSigner {
    NoteSigner::new(ORIGIN, KeyType::Ed25519, SigningKey::from_bytes(&[5; 32])).expect("log key")
}

fn witness_key() -> NoteSigner {
    NoteSigner::new(
        WITNESS,
        KeyType::CosignatureV1,
        SigningKey::from_bytes(&[6; 32]),
    )
    .expect("witness key")
}

/// The policy: this log, and the one witness must cosign.
fn policy() -> String {
    format!(
        "log {}\nwitness customs {}\nquorum customs\n",
        log_key().verifier().to_vkey(),
        witness_key().verifier().to_vkey()
    )
}

/// Runs a real witness on loopback and the real sequencer, appends `entries`, waits for the
/// checkpoint of all of them (cosigned by the witness), and returns the tlog-proof of
/// `proven`.
async fn witnessed_log_proof(dir: &Path, entries: &[Vec<u8>], proven: LeafIndex) -> TlogProof {
    let witness = Witness::open(
        witness_key(),
        vec![WitnessedLog {
            origin: ORIGIN.to_owned(),
            key: log_key().verifier(),
        }],
        &dir.join("witness-state"),
        Box::new(|| 1_780_000_000),
    )
    .expect("witness");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move {
        axum::serve(listener, ledger::witness::router(Arc::new(witness)))
            .await
            .expect("witness server");
    });
    let client = WitnessClient::new(
        vec![WitnessEndpoint {
            url: format!("http://{address}"),
            verifier: witness_key().verifier(),
        }],
        Duration::from_secs(10),
    )
    .expect("client");
    let mut config = SequencerConfig::new(ORIGIN);
    config.round_period_ms = 10;
    let (handle, tasks) = sequencer::start(
        MemoryStorage::new(empty_root().0),
        log_key(),
        config,
        client,
    )
    .await
    .expect("start");
    let pending: Vec<_> = entries
        .iter()
        .map(|e| handle.try_submit(e.clone(), Vec::new()).expect("submit"))
        .collect();
    for p in pending {
        p.wait().await.expect("appended");
    }
    let size = u64::try_from(entries.len()).expect("small");
    let published = handle
        .wait_for_checkpoint(TreeSize(size))
        .await
        .expect("checkpoint");
    assert_eq!(published.cosigned_by, vec![WITNESS.to_owned()]);
    let proof = handle.tlog_proof(proven).expect("tlog proof");
    tasks.shutdown().await;
    proof
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sequencer_proof_cosigned_by_a_real_witness_verifies_offline() {
    let dir = tempfile::tempdir().expect("tempdir");
    let entries: Vec<Vec<u8>> = (0..300).map(entry).collect();
    let proof = witnessed_log_proof(dir.path(), &entries, LeafIndex(257)).await;

    std::fs::write(dir.path().join("entry.bin"), &entries[257]).expect("write entry");
    std::fs::write(dir.path().join("entry.tlog-proof"), proof.to_text()).expect("write proof");
    std::fs::write(dir.path().join("agencies.policy"), policy()).expect("write policy");

    let good = verify(dir.path(), "entry.tlog-proof", "agencies.policy");
    let stdout = String::from_utf8_lossy(&good.stdout);
    assert_eq!(good.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("RESULT: VERIFIED"), "{stdout}");
    assert!(stdout.contains("quorum customs met"), "{stdout}");

    // Tampering: a proof hash changed fails the inclusion proof ...
    let mut tampered = TlogProof::parse(proof.to_text().as_bytes()).expect("parse");
    tampered.path[3].0[0] ^= 1;
    std::fs::write(dir.path().join("hash.tlog-proof"), tampered.to_text()).expect("write");
    assert_fails_at(
        &verify(dir.path(), "hash.tlog-proof", "agencies.policy"),
        "inclusion proof",
    );
    // ... and a checkpoint without the witness line fails the quorum.
    let mut uncosigned = proof.clone();
    let cut = uncosigned
        .checkpoint
        .lines()
        .filter(|line| !line.contains(WITNESS))
        .map(|line| format!("{line}\n"))
        .collect::<String>();
    uncosigned.checkpoint = cut;
    std::fs::write(dir.path().join("quorum.tlog-proof"), uncosigned.to_text()).expect("write");
    assert_fails_at(
        &verify(dir.path(), "quorum.tlog-proof", "agencies.policy"),
        "witness quorum",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reading_proof_from_a_sequencer_log_verifies_offline() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The batch entry among other entries, past the first tile.
    let batch = support::batch();
    let mut entries: Vec<Vec<u8>> = (0..260).map(entry).collect();
    entries.insert(258, batch.entry.clone());
    let log_proof = witnessed_log_proof(dir.path(), &entries, LeafIndex(258)).await;
    let proof = batch.reading_proof(POSITION, log_proof);
    let policy = write(dir.path(), "agencies.policy", policy().as_bytes());

    let run_on = |proof: &agritrace_verify::ReadingProof, key: &str| {
        let file = write(dir.path(), "reading.proof", proof.to_text().as_bytes());
        run([
            "--reading-proof",
            &file,
            "--policy",
            &policy,
            "--device-key",
            key,
        ])
    };
    let good = run_on(&proof, &device_key_hex(DEVICE_A));
    let text = stdout(&good);
    assert_eq!(good.status.code(), Some(0), "{text}");
    assert!(text.contains("RESULT: VERIFIED"), "{text}");
    assert!(
        text.contains("entry is leaf 258 of the 261-entry tree"),
        "{text}"
    );
    assert!(text.contains("quorum customs met"), "{text}");

    // Another device's key, a changed batch hash, and a checkpoint without the witness.
    assert_fails_at(
        &run_on(&proof, &device_key_hex(DEVICE_B)),
        "device signature",
    );
    let mut tampered = proof.clone();
    tampered.batch_path[1].0[7] ^= 1;
    assert_fails_at(&run_on(&tampered, &device_key_hex(DEVICE_A)), "batch entry");
    let mut uncosigned = proof.clone();
    uncosigned.log_proof.checkpoint = proof
        .log_proof
        .checkpoint
        .lines()
        .filter(|line| !line.contains(WITNESS))
        .map(|line| format!("{line}\n"))
        .collect();
    assert_fails_at(
        &run_on(&uncosigned, &device_key_hex(DEVICE_A)),
        "witness quorum",
    );
}
