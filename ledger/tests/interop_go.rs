//! Interop with an implementation written independently of ours: Go's
//! `golang.org/x/mod/sumdb/tlog` and `golang.org/x/mod/sumdb/note`.
//!
//! The log under test is the one production writes: the real sequencer (on `MemoryStorage`)
//! appends entries in uneven batches, two real witnesses (served over loopback HTTP) cosign its
//! checkpoints, and everything the Go program reads is fetched through the HTTP read side
//! (`http::router`) exactly as a mirror or auditor would: `checkpoint`, every `tile/<L>/<N>` and
//! `tile/entries/<N>` of the final tree, and the `.p/<W>` partial tiles and bundles of every
//! earlier checkpointed size (served as prefixes of the widest stored tile). Inclusion and
//! consistency proofs come from the library over the stored tiles. Then `tests/interop-go`
//! (`go run .`) checks it all with the Go packages and crypto/ed25519.
//! Requires the `go` command (and the Go module proxy, or a warm module cache, for
//! `golang.org/x/mod` pinned in `go.sum`); fails with a clear message without it.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{log_key, open_witness, serve_witness, witness_client, witness_key};
use ledger::entry::{Entry, EpcisEventType, ReadingBatch, Token, TraceEvent, salted_commitment};
use ledger::merkle::{Hash, LeafIndex, TreeSize, empty_root, leaf_hash};
use ledger::proof::{consistency_proof, inclusion_proof};
use ledger::sequencer;
use ledger::storage::LogStorage as _;
use ledger::storage::memory::MemoryStorage;
use ledger::tile::{BundleId, TileId};
use protocol::DeviceId;
use tower::ServiceExt as _;

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

/// GETs `/log/<path>` from the read side and writes the body to `<out>/<path>`.
async fn fetch(app: &axum::Router, out: &Path, path: &str) {
    let response = app
        .clone()
        .oneshot(
            Request::get(format!("/log/{path}"))
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("response");
    assert_eq!(response.status(), StatusCode::OK, "GET /log/{path}");
    let body = axum::body::to_bytes(response.into_body(), 1 << 24)
        .await
        .expect("body");
    write(out, path, &body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn go_sumdb_tlog_and_note_accept_what_the_sequencer_wrote_and_serves() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("served");
    fs::create_dir_all(&out).expect("out dir");

    let witness_one = serve_witness(Arc::new(open_witness(1, &dir.path().join("w1")))).await;
    let witness_two = serve_witness(Arc::new(open_witness(2, &dir.path().join("w2")))).await;
    let client = witness_client(vec![(witness_one, 1), (witness_two, 2)], 5_000);
    let storage = MemoryStorage::new(empty_root().0);
    let (handle, tasks) = sequencer::start(storage.clone(), log_key(), common::config(10), client)
        .await
        .expect("start");

    // Uneven batches (crossing level-0 and level-1 tile boundaries); each ends checkpointed.
    let mut rounds: Vec<(TreeSize, Hash)> = Vec::new();
    let mut next = 0u64;
    for batch_len in [1u64, 2, 5, 250, 1, 255, 300, 7, 479] {
        let pending: Vec<_> = (next..next + batch_len)
            .map(|i| handle.try_submit(entry(i), Vec::new()).expect("submit"))
            .collect();
        for p in pending {
            p.wait().await.expect("appended");
        }
        next += batch_len;
        let published = handle
            .wait_for_checkpoint(TreeSize(next))
            .await
            .expect("checkpoint");
        assert_eq!(published.size, TreeSize(next));
        assert_eq!(published.cosigned_by.len(), 2, "both witnesses cosigned");
        rounds.push((published.size, published.root));
    }
    tasks.shutdown().await;
    let (size, _) = *rounds.last().expect("rounds ran");
    assert_eq!(size, TreeSize(1300));

    // Everything the Go program reads, fetched from the read side.
    let app = ledger::http::router(storage.clone());
    fetch(&app, &out, "checkpoint").await;
    for (size, _) in &rounds {
        for level in 0..=2u8 {
            for index in 0.. {
                let Some(id) = TileId::in_tree(level, index, *size) else {
                    break;
                };
                fetch(&app, &out, &id.path()).await;
            }
        }
        for index in 0.. {
            let Some(id) = BundleId::in_tree(index, *size) else {
                break;
            };
            fetch(&app, &out, &id.path()).await;
        }
    }
    assert!(
        out.join(
            TileId {
                level: 1,
                index: 0,
                width: 5
            }
            .path()
        )
        .exists(),
        "the partial level-1 tile of an earlier checkpoint was served"
    );
    write(&out, "log.vkey", log_key().verifier().to_vkey().as_bytes());
    let witness_keys: Vec<String> = [1u8, 2]
        .iter()
        .map(|n| witness_key(*n).verifier().to_vkey())
        .collect();
    write(&out, "witnesses.vkeys", witness_keys.join("\n").as_bytes());

    // Proofs for every checkpointed size, from the stored tiles.
    let tiles = storage.tile_reader().expect("tile reader");
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
        for (new, _) in &rounds[i + 1..] {
            let proof = consistency_proof(*old, *new, &tiles).expect("consistency proof");
            cases.push_str(&format!(
                "consistency {} {} {}\n",
                old.0,
                new.0,
                b64(&proof.path)
            ));
        }
    }
    write(&out, "cases.txt", cases.as_bytes());

    let program = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop-go");
    let result = Command::new("go")
        .arg("run")
        .arg(".")
        .arg(&out)
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
