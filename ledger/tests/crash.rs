//! Crash safety, for real: a sequencer appending under load in a child process is killed with
//! SIGKILL at random moments, restarted on the same data directory, and checked.
//!
//! The child is this test binary re-executed with `LEDGER_CRASH_CHILD_DIR` set: it runs the
//! sequencer on redb with several submitting tasks and prints `index <i> <leaf hash hex>` for
//! every answered entry and `checkpoint <size> <root hex>` for every published checkpoint. After
//! each kill the parent restarts the sequencer on the same directory and checks that
//!   1. every answered entry is at its index with the same bytes (same leaf hash),
//!   2. the new checkpoint is consistent with every checkpoint published before (a verified
//!      consistency proof), and
//!   3. a real witness (the witness logic served over loopback HTTP, whose state persists
//!      across all iterations) accepts and cosigns the next checkpoint.
//!
//! Every kill lands during work: the child also prints `rounds <n>` as its committed-round count
//! grows, and the parent waits for the first committed round before it starts the random delay
//! to the kill (and asserts that the child had committed rounds when it was killed).
//!
//! Kill timings come from a seeded RNG (`LEDGER_CRASH_SEED` overrides the seed);
//! `LEDGER_CRASH_ITERATIONS` sets the number of kills (default 25, what CI runs).

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ledger::merkle::{Hash, TreeSize, empty_root, leaf_hash};
use ledger::sequencer;
use ledger::storage::LogStorage;
use ledger::storage::redb::RedbStorage;
use ledger::tile::parse_bundle;
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore as _, SeedableRng as _};

const CHILD_DIR: &str = "LEDGER_CRASH_CHILD_DIR";
const CHILD_WITNESS: &str = "LEDGER_CRASH_WITNESS_URL";
const CHILD_TAG: &str = "LEDGER_CRASH_TAG";
const ITERATIONS_ENV: &str = "LEDGER_CRASH_ITERATIONS";
const ITERATIONS_DEFAULT: u64 = 25;
/// How long a child may take to commit its first round before the test fails.
const FIRST_ROUND_WAIT: Duration = Duration::from_secs(60);
const SUBMITTERS: u64 = 6;
const BATCH: u64 = 64;

fn main() {
    if let Ok(dir) = std::env::var(CHILD_DIR) {
        child(&dir);
        return;
    }
    let started = Instant::now();
    parent();
    eprintln!(
        "crash test finished in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    println!("crash: 1 passed, 0 failed");
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Hash> {
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(Hash(out))
}

/// The child: append under load until killed (or, as a safety net, for 60 s).
fn child(dir: &str) {
    let witness_url = std::env::var(CHILD_WITNESS).expect("witness url");
    let tag: u64 = std::env::var(CHILD_TAG)
        .expect("tag")
        .parse()
        .expect("numeric tag");
    runtime().block_on(async move {
        let storage =
            RedbStorage::open(&std::path::Path::new(dir).join("log.redb"), empty_root().0)
                .expect("open storage");
        let client = common::witness_client(vec![(witness_url, 1)], 2_000);
        let (handle, _tasks) =
            sequencer::start(storage, common::log_key(), common::config(20), client)
                .await
                .expect("start sequencer");
        let counter = handle.clone();
        tokio::spawn(async move {
            let mut reported = 0;
            loop {
                let rounds = counter.stats().rounds_committed;
                if rounds > reported {
                    println!("rounds {rounds}");
                    reported = rounds;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        });
        let watcher = handle.clone();
        tokio::spawn(async move {
            let mut next = 1;
            while let Ok(published) = watcher.wait_for_checkpoint(TreeSize(next)).await {
                println!("checkpoint {} {}", published.size.0, hex(&published.root.0));
                next = published.size.0 + 1;
            }
        });
        for task in 0..SUBMITTERS {
            let handle = handle.clone();
            tokio::spawn(async move {
                let mut n = 0u64;
                loop {
                    let mut pending = Vec::new();
                    for _ in 0..BATCH {
                        let bytes = common::entry(tag * 1000 + task, n);
                        n += 1;
                        let hash = leaf_hash(&bytes);
                        if let Ok(p) = handle.try_submit(bytes, Vec::new()) {
                            pending.push((p, hash));
                        }
                    }
                    for (p, hash) in pending {
                        if let Ok(index) = p.wait().await {
                            println!("index {} {}", index.0, hex(&hash.0));
                        }
                    }
                }
            });
        }
        tokio::time::sleep(Duration::from_secs(60)).await;
    });
}

#[derive(Default)]
struct Seen {
    answered: BTreeMap<u64, Hash>,
    checkpoints: Vec<(u64, Hash)>,
    /// Highest committed-round count the child reported.
    rounds: u64,
}

fn parse_line(line: &str, seen: &mut Seen) {
    if let Some(rounds) = line
        .strip_prefix("rounds ")
        .and_then(|n| n.parse::<u64>().ok())
    {
        seen.rounds = seen.rounds.max(rounds);
        return;
    }
    let mut parts = line.split(' ');
    let (Some(kind), Some(number), Some(hash), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return; // a line cut by the kill, or harness noise
    };
    let (Ok(number), Some(hash)) = (number.parse::<u64>(), unhex(hash)) else {
        return;
    };
    match kind {
        "index" => {
            let previous = seen.answered.insert(number, hash);
            assert!(
                previous.is_none_or(|p| p == hash),
                "index {number} was answered to two different entries"
            );
        }
        "checkpoint" => seen.checkpoints.push((number, hash)),
        _ => {}
    }
}

/// Runs one child until it has committed a round, then for `kill_after` more, kills it with
/// SIGKILL, and returns what it printed.
fn run_child_until_killed(
    dir: &std::path::Path,
    witness_url: &str,
    tag: u64,
    kill_after: Duration,
) -> Seen {
    let mut child = Command::new(std::env::current_exe().expect("own path"))
        .env(CHILD_DIR, dir)
        .env(CHILD_WITNESS, witness_url)
        .env(CHILD_TAG, tag.to_string())
        .env("RUST_LOG", "off")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("stdout");
    let (lines_tx, lines_rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Seen::default();
    let waiting_since = Instant::now();
    while seen.rounds == 0 {
        let Some(left) = FIRST_ROUND_WAIT.checked_sub(waiting_since.elapsed()) else {
            let _ = child.kill();
            panic!("the child committed no round within {FIRST_ROUND_WAIT:?}");
        };
        match lines_rx.recv_timeout(left) {
            Ok(line) => parse_line(&line, &mut seen),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                panic!("the child exited before committing a round")
            }
        }
    }
    std::thread::sleep(kill_after);
    // std's Child::kill sends SIGKILL on Unix: no destructor, no flush, no graceful anything.
    child.kill().expect("SIGKILL the child");
    child.wait().expect("reap the child");
    reader.join().expect("reader thread");
    for line in lines_rx.try_iter() {
        parse_line(&line, &mut seen);
    }
    seen
}

/// Reads every answered index from storage, bundle by bundle, and compares leaf hashes.
async fn check_answered_entries(storage: &RedbStorage, answered: &BTreeMap<u64, Hash>) {
    // `answered` is sorted by index, so each bundle is read once.
    let mut current: Option<(u64, Vec<u8>)> = None;
    for (index, hash) in answered {
        let bundle_index = index / 256;
        if current.as_ref().is_none_or(|(i, _)| *i != bundle_index) {
            let bytes = storage
                .bundle(bundle_index)
                .await
                .expect("read bundle")
                .unwrap_or_else(|| {
                    panic!("bundle {bundle_index} holding answered entry {index} is missing")
                });
            current = Some((bundle_index, bytes));
        }
        let Some((_, bundle)) = &current else {
            unreachable!("set above");
        };
        let entries = parse_bundle(bundle).expect("bundle parses");
        let offset = usize::try_from(index % 256).expect("offset");
        let stored = entries
            .get(offset)
            .unwrap_or_else(|| panic!("answered entry {index} is not in its bundle"));
        assert_eq!(
            leaf_hash(stored),
            *hash,
            "entry {index} does not have the bytes that were answered"
        );
    }
}

fn parent() {
    let seed = std::env::var("LEDGER_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x0A61_7261_u64);
    eprintln!("crash test seed {seed} (set LEDGER_CRASH_SEED to replay)");
    let iterations: u64 = std::env::var(ITERATIONS_ENV)
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(ITERATIONS_DEFAULT);
    eprintln!("crash test: {iterations} kills (set {ITERATIONS_ENV} for more)");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let root = tempfile::tempdir().expect("tempdir");
    let log_dir = root.path().join("log");
    std::fs::create_dir_all(&log_dir).expect("log dir");
    let rt = runtime();
    let witness = Arc::new(common::open_witness(1, &root.path().join("witness")));
    let witness_url = rt.block_on(common::serve_witness(witness.clone()));

    let mut all = Seen::default();
    let mut kills_with_answers = 0;
    for iteration in 0..iterations {
        // From "right after the first committed round" to "well into appending".
        let kill_after = Duration::from_millis(rng.next_u64() % 400);
        let seen = run_child_until_killed(&log_dir, &witness_url, iteration, kill_after);
        assert!(
            seen.rounds > 0,
            "iteration {iteration}: the kill must land while the child commits rounds"
        );
        if !seen.answered.is_empty() {
            kills_with_answers += 1;
        }
        eprintln!(
            "iteration {iteration}: killed {} ms after the first round, at {} rounds, with {} answered, {} checkpoints",
            kill_after.as_millis(),
            seen.rounds,
            seen.answered.len(),
            seen.checkpoints.len()
        );
        for (index, hash) in &seen.answered {
            let previous = all.answered.insert(*index, *hash);
            assert!(
                previous.is_none_or(|p| p == *hash),
                "index {index} was answered to different entries in two runs"
            );
        }
        all.checkpoints.extend(seen.checkpoints.iter().copied());

        rt.block_on(async {
            let storage = RedbStorage::open(&log_dir.join("log.redb"), empty_root().0)
                .expect("reopen after SIGKILL");
            check_answered_entries(&storage, &seen.answered).await;
            let client = common::witness_client(vec![(witness_url.clone(), 1)], 5_000);
            let (handle, tasks) = sequencer::start(
                storage.clone(),
                common::log_key(),
                common::config(20),
                client,
            )
            .await
            .expect("restart on the same data directory");
            let resumed = handle.durable_state().size;
            let highest_answered = all.answered.keys().next_back().map_or(0, |i| i + 1);
            assert!(
                resumed >= highest_answered,
                "restart at size {resumed} lost answered entries up to {highest_answered}"
            );
            let index = handle
                .submit(common::entry(999_000 + iteration, 0), Vec::new())
                .await
                .expect("append after restart");
            assert_eq!(index.0, resumed, "appends continue at the durable size");
            let published = handle
                .wait_for_checkpoint(TreeSize(resumed + 1))
                .await
                .expect("checkpoint after restart");
            assert_eq!(
                published.cosigned_by,
                vec!["witness1.test".to_owned()],
                "the witness accepted the first checkpoint after the crash"
            );
            for (size, root) in &all.checkpoints {
                let (proof, against) = handle
                    .consistency_proof(TreeSize(*size))
                    .expect("consistency proof");
                proof.verify(root, &against.root).unwrap_or_else(|e| {
                    panic!("checkpoint {size} published before a crash is inconsistent: {e}")
                });
            }
            all.checkpoints.push((published.size.0, published.root));
            tasks.shutdown().await;
        });
    }
    assert!(
        kills_with_answers >= iterations / 2,
        "most kills must land while entries are being answered ({kills_with_answers})"
    );
    rt.block_on(async {
        let storage = RedbStorage::open(&log_dir.join("log.redb"), empty_root().0).expect("open");
        check_answered_entries(&storage, &all.answered).await;
    });
    eprintln!(
        "{} answered entries survived {iterations} SIGKILLs; {} checkpoints all consistent; witness at {:?}",
        all.answered.len(),
        all.checkpoints.len(),
        witness.cosigned(common::ORIGIN).map(|(s, _)| s.0)
    );
}
