//! Shared fixtures for the node-side tests: deterministic keys, an in-process witness served
//! over real HTTP on loopback, and a sequencer configuration with short rounds.
#![allow(dead_code)] // Each test file uses a different subset.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ed25519_dalek::SigningKey;
use ledger::entry::Entry;
use ledger::note::{KeyType, NoteSigner};
use ledger::sequencer::SequencerConfig;
use ledger::witness::{Witness, WitnessedLog};
use ledger::witness_client::{WitnessClient, WitnessEndpoint};

pub const ORIGIN: &str = "agritrace.test/log";

pub fn log_key() -> NoteSigner {
    NoteSigner::new(ORIGIN, KeyType::Ed25519, SigningKey::from_bytes(&[1; 32])).expect("log key")
}

pub fn witness_key(n: u8) -> NoteSigner {
    NoteSigner::new(
        &format!("witness{n}.test"),
        KeyType::CosignatureV1,
        SigningKey::from_bytes(&[0x40 + n; 32]),
    )
    .expect("witness key")
}

pub fn config(round_period_ms: u64) -> SequencerConfig {
    let mut config = SequencerConfig::new(ORIGIN);
    config.round_period_ms = round_period_ms;
    config.witness_timeout_ms = 3_000;
    config
}

/// A fixed clock for cosignature timestamps.
pub fn clock() -> Box<dyn Fn() -> u64 + Send + Sync> {
    Box::new(|| 1_780_000_000)
}

pub fn open_witness(n: u8, state_dir: &Path) -> Witness {
    Witness::open(
        witness_key(n),
        vec![WitnessedLog {
            origin: ORIGIN.to_owned(),
            key: log_key().verifier(),
        }],
        state_dir,
        clock(),
    )
    .expect("open witness")
}

/// Serves `witness` on 127.0.0.1 (ephemeral port); returns its base URL.
pub async fn serve_witness(witness: Arc<Witness>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let address = listener.local_addr().expect("local address");
    tokio::spawn(async move {
        axum::serve(listener, ledger::witness::router(witness))
            .await
            .expect("witness server");
    });
    format!("http://{address}")
}

pub fn witness_client(endpoints: Vec<(String, u8)>, timeout_ms: u64) -> WitnessClient {
    WitnessClient::new(
        endpoints
            .into_iter()
            .map(|(url, n)| WitnessEndpoint {
                url,
                verifier: witness_key(n).verifier(),
            })
            .collect(),
        Duration::from_millis(timeout_ms),
    )
    .expect("witness client")
}

/// A log entry of about 200 bytes, distinct per `(tag, n)`: an `Unknown`-kind entry (kind 200)
/// whose body is the text `entry <tag> <n>` padded with dots (the log holds only entries).
pub fn entry(tag: u64, n: u64) -> Vec<u8> {
    let mut body = format!("entry {tag} {n} ").into_bytes();
    body.resize(198, b'.');
    Entry::Unknown { kind: 200, body }
        .encode()
        .expect("an unknown-kind entry encodes")
}
