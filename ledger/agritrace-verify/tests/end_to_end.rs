//! End to end: the real sequencer (in-memory storage) with a real witness served over loopback
//! HTTP appends entries and publishes a cosigned checkpoint; the sequencer's `tlog_proof` file
//! for one entry is then checked by the `agritrace-verify` binary with a quorum policy (exit 0),
//! and tampered copies fail (exit 1) at the step that names the problem.

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

const ORIGIN: &str = "agritrace.e2e/log";

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

fn assert_fails_at(output: &Output, step: &str) {
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(&format!("RESULT: NOT VERIFIED (step \"{step}\" failed)")),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sequencer_proof_cosigned_by_a_real_witness_verifies_offline() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log_key = || {
        NoteSigner::new(ORIGIN, KeyType::Ed25519, SigningKey::from_bytes(&[5; 32]))
            .expect("log key")
    };
    let witness_key = || {
        NoteSigner::new(
            "customs.e2e/witness",
            KeyType::CosignatureV1,
            SigningKey::from_bytes(&[6; 32]),
        )
        .expect("witness key")
    };
    let witness = Witness::open(
        witness_key(),
        vec![WitnessedLog {
            origin: ORIGIN.to_owned(),
            key: log_key().verifier(),
        }],
        &dir.path().join("witness-state"),
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
    let entries: Vec<Vec<u8>> = (0..300).map(entry).collect();
    let pending: Vec<_> = entries
        .iter()
        .map(|e| handle.try_submit(e.clone(), Vec::new()).expect("submit"))
        .collect();
    for p in pending {
        p.wait().await.expect("appended");
    }
    let published = handle
        .wait_for_checkpoint(TreeSize(300))
        .await
        .expect("checkpoint");
    assert_eq!(
        published.cosigned_by,
        vec!["customs.e2e/witness".to_owned()]
    );
    let proof = handle.tlog_proof(LeafIndex(257)).expect("tlog proof");
    tasks.shutdown().await;

    std::fs::write(dir.path().join("entry.bin"), &entries[257]).expect("write entry");
    std::fs::write(dir.path().join("entry.tlog-proof"), proof.to_text()).expect("write proof");
    let policy = format!(
        "log {}\nwitness customs {}\nquorum customs\n",
        log_key().verifier().to_vkey(),
        witness_key().verifier().to_vkey()
    );
    std::fs::write(dir.path().join("agencies.policy"), policy).expect("write policy");

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
        .filter(|line| !line.contains("customs.e2e/witness"))
        .map(|line| format!("{line}\n"))
        .collect::<String>();
    uncosigned.checkpoint = cut;
    std::fs::write(dir.path().join("quorum.tlog-proof"), uncosigned.to_text()).expect("write");
    assert_fails_at(
        &verify(dir.path(), "quorum.tlog-proof", "agencies.policy"),
        "witness quorum",
    );
}
