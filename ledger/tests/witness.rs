//! The witness against C2SP tlog-witness `add-checkpoint`: every status code the spec names, the
//! `409` body and content type, durability of the cosigned state across a reopen, refusal of
//! forks and rollbacks, and the `agritrace-witness` binary end to end.

mod common;

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::{ORIGIN, log_key, open_witness, witness_key};
use ed25519_dalek::SigningKey;
use ledger::checkpoint::Checkpoint;
use ledger::cosignature::verify_cosignature;
use ledger::merkle::{Hash, TreeSize, leaf_hash};
use ledger::note::{KeyType, NoteSignature, NoteSigner};
use ledger::proof::consistency_proof;
use ledger::tile::{InMemoryTiles, TileAppender};
use ledger::witness_client::add_checkpoint_body;
use tower::ServiceExt as _;

/// A log held in memory, growing by `append`, signing checkpoints with `key`.
struct TestLog {
    appender: TileAppender,
    tiles: InMemoryTiles,
    key: NoteSigner,
}

impl TestLog {
    fn new(key: NoteSigner) -> Self {
        Self {
            appender: TileAppender::new(),
            tiles: InMemoryTiles::new(),
            key,
        }
    }

    fn append(&mut self, count: u64, tag: u64) {
        let leaves: Vec<Hash> = (0..count)
            .map(|n| leaf_hash(&common::entry(tag, n)))
            .collect();
        let outcome = self.appender.append(&leaves);
        self.tiles.store_all(&outcome.changed_tiles);
    }

    fn size(&self) -> u64 {
        self.appender.size().0
    }

    fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            origin: self.key.name().to_owned(),
            size: self.appender.size(),
            root: self.appender.root(),
            extensions: Vec::new(),
        }
    }

    fn signed(&self) -> String {
        self.checkpoint().sign(&self.key).expect("sign")
    }

    fn proof_from(&self, old: u64) -> Vec<Hash> {
        consistency_proof(TreeSize(old), self.appender.size(), &self.tiles)
            .expect("proof")
            .path
    }

    fn body_from(&self, old: u64) -> String {
        add_checkpoint_body(old, &self.proof_from(old), &self.signed())
    }
}

async fn post(app: &axum::Router, body: String) -> (StatusCode, String, String) {
    let response = app
        .clone()
        .oneshot(
            Request::post("/add-checkpoint")
                .body(Body::from(body))
                .expect("request"),
        )
        .await
        .expect("response");
    let status = response.status();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .expect("body");
    (
        status,
        content_type,
        String::from_utf8(bytes.to_vec()).expect("utf-8"),
    )
}

fn check_cosignature(log: &TestLog, body: &str) {
    let line = NoteSignature::parse_line(body.strip_suffix('\n').expect("newline"))
        .expect("one signature line");
    let timestamp = verify_cosignature(
        &log.checkpoint().to_text(),
        &line,
        &witness_key(1).verifier(),
    )
    .expect("cosignature verifies");
    assert_eq!(timestamp, 1_780_000_000);
}

#[tokio::test]
async fn add_checkpoint_answers_every_case_with_the_specified_status() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = ledger::witness::router(Arc::new(open_witness(1, dir.path())));
    let mut log = TestLog::new(log_key());
    log.append(300, 0);

    // First contact: old 0, empty proof.
    let (status, _, body) = post(&app, log.body_from(0)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    check_cosignature(&log, &body);

    // The same checkpoint again is cosigned again.
    let (status, _, body) = post(&app, log.body_from(300)).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    log.append(1000, 1);
    // Wrong old size: 409 with the held size, as text/x.tlog.size.
    let (status, content_type, body) = post(&app, log.body_from(0)).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(content_type, "text/x.tlog.size");
    assert_eq!(body, "300\n");
    let (status, _, body) = post(&app, log.body_from(299)).await;
    assert_eq!((status, body.as_str()), (StatusCode::CONFLICT, "300\n"));

    // A tampered proof: 422.
    let mut proof = log.proof_from(300);
    proof[0].0[0] ^= 1;
    let (status, _, _) = post(&app, add_checkpoint_body(300, &proof, &log.signed())).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    // A missing proof: 422.
    let (status, _, _) = post(&app, add_checkpoint_body(300, &[], &log.signed())).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    // The right proof: 200, and the witness now holds 1300.
    let (status, _, body) = post(&app, log.body_from(300)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    check_cosignature(&log, &body);

    // old above the checkpoint size: 400.
    let (status, _, _) = post(&app, add_checkpoint_body(5000, &[], &log.signed())).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // A fork at the same size (another log history signed by the same key): 409.
    let mut fork = TestLog::new(log_key());
    fork.append(1300, 99);
    let (status, content_type, body) = post(&app, fork.body_from(1300)).await;
    assert_eq!((status, body.as_str()), (StatusCode::CONFLICT, "1300\n"));
    assert_eq!(content_type, "text/x.tlog.size");

    // A rollback to a smaller tree: 409 (old does not match), never cosigned.
    let mut smaller = TestLog::new(log_key());
    smaller.append(300, 0);
    let (status, _, _) = post(&app, smaller.body_from(300)).await;
    assert_eq!(status, StatusCode::CONFLICT);

    // Signed by another key under the log's name: 403.
    let impostor_key =
        NoteSigner::new(ORIGIN, KeyType::Ed25519, SigningKey::from_bytes(&[9; 32])).expect("key");
    let mut impostor = TestLog::new(impostor_key);
    impostor.append(1400, 1);
    let (status, _, _) = post(&app, impostor.body_from(1300)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Unknown origin: 404.
    let stranger_key = NoteSigner::new(
        "stranger.test/log",
        KeyType::Ed25519,
        SigningKey::from_bytes(&[8; 32]),
    )
    .expect("key");
    let mut stranger = TestLog::new(stranger_key);
    stranger.append(3, 0);
    let (status, _, _) = post(&app, stranger.body_from(0)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Malformed bodies: 400.
    for bad in [
        String::new(),
        "old 01\n\n".to_owned() + &log.signed(),
        "old x\n\n".to_owned() + &log.signed(),
        "old 1300\nnot-base64\n\n".to_owned() + &log.signed(),
        "old 1300\n".to_owned() + &log.signed(),
        "old 1300\n\nnot a note\n".to_owned(),
        format!(
            "old 1300\n{}\n{}",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n".repeat(64),
            log.signed()
        ),
    ] {
        let (status, _, body) = post(&app, bad.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad:?} -> {body}");
    }
}

#[tokio::test]
async fn the_cosigned_state_survives_a_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = TestLog::new(log_key());
    log.append(10, 0);
    {
        let witness = open_witness(1, dir.path());
        witness
            .add_checkpoint(log.body_from(0).as_bytes())
            .expect("cosigned");
    }
    let witness = open_witness(1, dir.path());
    assert_eq!(
        witness.cosigned(ORIGIN),
        Some((TreeSize(10), log.appender.root()))
    );
    log.append(7, 1);
    let refused = witness.add_checkpoint(log.body_from(0).as_bytes());
    assert!(refused.is_err(), "the reopened witness still holds size 10");
    witness
        .add_checkpoint(log.body_from(10).as_bytes())
        .expect("consistent growth is cosigned");
    assert_eq!(witness.cosigned(ORIGIN).map(|(s, _)| s), Some(TreeSize(17)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_never_roll_the_witness_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let witness = Arc::new(open_witness(1, dir.path()));
    let mut log = TestLog::new(log_key());
    log.append(5, 0);
    witness
        .add_checkpoint(log.body_from(0).as_bytes())
        .expect("first");
    // Many bodies, all from old size 5, to different sizes: exactly one can win.
    let mut bodies = Vec::new();
    for _ in 0..8 {
        log.append(3, 1);
        bodies.push((log.size(), log.body_from(5)));
    }
    let mut joins = Vec::new();
    for (size, body) in bodies {
        let witness = witness.clone();
        joins.push(tokio::task::spawn_blocking(move || {
            (size, witness.add_checkpoint(body.as_bytes()).is_ok())
        }));
    }
    let mut winners = Vec::new();
    for join in joins {
        let (size, ok) = join.await.expect("join");
        if ok {
            winners.push(size);
        }
    }
    assert_eq!(
        winners.len(),
        1,
        "exactly one request from old size 5 wins: {winners:?}"
    );
    assert_eq!(witness.cosigned(ORIGIN).map(|(s, _)| s.0), Some(winners[0]));
}

/// Kills the child on drop so a failing assertion never leaves a server behind.
struct ChildGuard(std::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_witness_binary_serves_add_checkpoint() {
    let binary = env!("CARGO_BIN_EXE_agritrace-witness");
    let dir = tempfile::tempdir().expect("tempdir");
    let key_file = dir.path().join("witness.key");
    let generated = Command::new(binary)
        .args([
            "generate-key",
            "--name",
            "agency.test/witness",
            "--key-file",
        ])
        .arg(&key_file)
        .output()
        .expect("run generate-key");
    assert!(generated.status.success(), "{generated:?}");
    let vkey = String::from_utf8(generated.stdout).expect("utf-8");
    let witness_verifier =
        ledger::note::NoteVerifier::parse_typed(vkey.trim(), KeyType::CosignatureV1).expect("vkey");
    let again = Command::new(binary)
        .args([
            "generate-key",
            "--name",
            "agency.test/witness",
            "--key-file",
        ])
        .arg(&key_file)
        .output()
        .expect("run generate-key");
    assert!(
        !again.status.success(),
        "an existing key file is never overwritten"
    );
    let help = Command::new(binary)
        .args(["serve", "--help"])
        .output()
        .expect("help");
    let help = String::from_utf8(help.stdout).expect("utf-8");
    for flag in ["--listen", "--state-dir", "--key-file", "--log"] {
        assert!(help.contains(flag), "serve --help mentions {flag}");
    }

    // Settings from a TOML file; the listen address from the command line.
    let config = dir.path().join("witness.toml");
    std::fs::write(
        &config,
        format!(
            "state_dir = {:?}\nkey_file = {:?}\nlogs = [{:?}]\n",
            dir.path().join("state").display().to_string(),
            key_file.display().to_string(),
            log_key().verifier().to_vkey()
        ),
    )
    .expect("write config");
    let child = Command::new(binary)
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn witness");
    let mut guard = ChildGuard(child);
    let stdout = guard.0.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).expect("read");
    let address = line
        .trim()
        .strip_prefix("listening on ")
        .expect("the binary prints its address")
        .to_owned();

    let mut log = TestLog::new(log_key());
    log.append(42, 0);
    let client = reqwest::Client::new();
    let response = client
        .post(format!("http://{address}/add-checkpoint"))
        .body(log.body_from(0))
        .send()
        .await
        .expect("post");
    assert_eq!(response.status().as_u16(), 200);
    let body = response.text().await.expect("body");
    let line = NoteSignature::parse_line(body.trim_end()).expect("cosignature line");
    verify_cosignature(&log.checkpoint().to_text(), &line, &witness_verifier)
        .expect("cosignature by the generated key");
    let response = client
        .post(format!("http://{address}/add-checkpoint"))
        .body(log.body_from(0))
        .send()
        .await
        .expect("post");
    assert_eq!(response.status().as_u16(), 409);
    assert_eq!(response.text().await.expect("body"), "42\n");
}

#[tokio::test]
async fn a_size_zero_checkpoint_is_cosigned_only_with_the_empty_root() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = ledger::witness::router(Arc::new(open_witness(1, dir.path())));
    let log = TestLog::new(log_key());
    let mut wrong = log.checkpoint();
    wrong.root = Hash([7; 32]);
    let body = add_checkpoint_body(0, &[], &wrong.sign(&log.key).expect("sign"));
    let (status, _, _) = post(&app, body).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _, body) = post(&app, log.body_from(0)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn the_service_limits_refuse_floods_and_large_bodies() {
    use ledger::witness::{ServiceLimits, router_with_limits};
    let dir = tempfile::tempdir().expect("tempdir");
    let witness = Arc::new(open_witness(1, dir.path()));
    let limits = ServiceLimits {
        body_bytes_max: 1_000,
        ..ServiceLimits::default()
    };
    assert_eq!(limits.validate(), Ok(()));
    let app = router_with_limits(witness.clone(), limits);
    let (status, _, _) = post(&app, format!("old 0\n\n{}", "x".repeat(2_000))).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    // Zero requests in flight would refuse everything: validation refuses the setting.
    let invalid = ServiceLimits {
        requests_in_flight_max: 0,
        ..ServiceLimits::default()
    };
    assert!(invalid.validate().is_err());
    let mut log = TestLog::new(log_key());
    log.append(3, 1);
    let (status, _, body) = post(&app, log.body_from(0)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}
