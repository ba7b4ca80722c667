//! The sequencer against real storage (redb in a temporary directory), the fault-injecting
//! double, and real witnesses over loopback HTTP: indexes, durability before answers, pool
//! limits, failure handling, restart, checkpoints and proofs.

mod common;

use std::sync::Arc;

use common::{ORIGIN, config, entry, log_key, open_witness, serve_witness, witness_client};
use ledger::checkpoint::open_checkpoint;
use ledger::entry::Entry;
use ledger::merkle::{LeafIndex, TreeSize, empty_root, leaf_hash};
use ledger::sequencer::{self, SubmitError};
use ledger::storage::faulty::{Fault, FaultyStorage};
use ledger::storage::memory::MemoryStorage;
use ledger::storage::redb::RedbStorage;
use ledger::storage::{LogStorage, SidecarRecord};
use ledger::witness_client::WitnessClient;

fn no_witness() -> WitnessClient {
    WitnessClient::none().expect("client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_submitters_get_distinct_indexes_and_provable_entries() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = RedbStorage::open(&dir.path().join("log.redb"), empty_root().0).expect("open");
    let (handle, tasks) = sequencer::start(storage, log_key(), config(20), no_witness())
        .await
        .expect("start");
    let mut joins = Vec::new();
    for task in 0..4u64 {
        let handle = handle.clone();
        joins.push(tokio::spawn(async move {
            let mut answered = Vec::new();
            for n in 0..150u64 {
                let bytes = entry(task, n);
                let index = handle
                    .submit(bytes.clone(), Vec::new())
                    .await
                    .expect("submit");
                answered.push((index, bytes));
            }
            answered
        }));
    }
    let mut all = Vec::new();
    for join in joins {
        all.extend(join.await.expect("task"));
    }
    let mut indexes: Vec<u64> = all.iter().map(|(i, _)| i.0).collect();
    indexes.sort_unstable();
    assert_eq!(
        indexes,
        (0..600).collect::<Vec<_>>(),
        "indexes are 0..600 exactly once"
    );

    let published = handle
        .wait_for_checkpoint(TreeSize(600))
        .await
        .expect("checkpoint");
    let opened = open_checkpoint(published.note.as_bytes(), &log_key().verifier(), &[])
        .expect("checkpoint signed by the log key");
    assert_eq!(opened.checkpoint.origin, ORIGIN);
    assert_eq!(opened.checkpoint.size, published.size);
    for (index, bytes) in &all {
        assert_eq!(
            handle.entry(*index).await.expect("read").as_ref(),
            Some(bytes)
        );
        let (proof, against) = handle.inclusion_proof(*index).expect("proof");
        proof
            .verify(&leaf_hash(bytes), &against.root)
            .expect("inclusion proof verifies");
    }
    tasks.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sidecar_records_commit_with_their_entry() {
    let storage = MemoryStorage::new(empty_root().0);
    let (handle, tasks) = sequencer::start(storage.clone(), log_key(), config(10), no_witness())
        .await
        .expect("start");
    let record = SidecarRecord {
        table: "readings".into(),
        key: b"device-7/42".to_vec(),
        value: b"reading bytes".to_vec(),
    };
    let index = handle
        .submit(entry(0, 0), vec![record.clone()])
        .await
        .expect("submit");
    assert_eq!(index, LeafIndex(0));
    assert_eq!(
        storage
            .sidecar("readings", b"device-7/42")
            .await
            .expect("read"),
        Some(b"reading bytes".to_vec())
    );
    let reserved = SidecarRecord {
        table: "log_tiles".into(),
        ..record
    };
    assert!(matches!(
        handle.try_submit(entry(0, 1), vec![reserved]),
        Err(SubmitError::Sidecar(_))
    ));
    tasks.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_pool_refuses_with_a_retryable_error() {
    let mut cfg = config(10_000);
    cfg.pool_entries_max = 8;
    let (handle, tasks) = sequencer::start(
        MemoryStorage::new(empty_root().0),
        log_key(),
        cfg,
        no_witness(),
    )
    .await
    .expect("start");
    let mut refused = None;
    let mut pending = Vec::new();
    for n in 0..64 {
        match handle.try_submit(entry(0, n), Vec::new()) {
            Ok(p) => pending.push(p),
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
    }
    let refused = refused.expect("the pool filled up");
    assert_eq!(refused, SubmitError::PoolFull);
    assert!(refused.is_retryable());
    assert!(
        pending.len() <= 16,
        "accepted {} with a pool of 8",
        pending.len()
    );
    assert!(matches!(
        handle.try_submit(vec![0; 70_000], Vec::new()),
        Err(SubmitError::EntrySize { .. })
    ));
    assert!(matches!(
        handle.try_submit(b"not an entry".to_vec(), Vec::new()),
        Err(SubmitError::NotAnEntry(_))
    ));
    tasks.shutdown().await;
    for p in pending {
        // Entries still pooled at shutdown are answered, never left hanging.
        let answer = p.wait().await;
        assert!(
            matches!(answer, Ok(_) | Err(SubmitError::Stopped)),
            "{answer:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_that_fails_before_landing_answers_not_committed_and_the_log_goes_on() {
    let storage = FaultyStorage::new(MemoryStorage::new(empty_root().0));
    let mut cfg = config(10);
    cfg.commit_attempts = 1;
    let (handle, tasks) = sequencer::start(storage.clone(), log_key(), cfg, no_witness())
        .await
        .expect("start");
    assert_eq!(
        handle.submit(entry(1, 0), Vec::new()).await,
        Ok(LeafIndex(0))
    );
    storage.fail_next_commit(Fault::BeforeWrite);
    assert_eq!(
        handle.submit(entry(1, 1), Vec::new()).await,
        Err(SubmitError::NotCommitted)
    );
    assert_eq!(handle.durable_state().size, 1);
    assert_eq!(
        handle.submit(entry(1, 2), Vec::new()).await,
        Ok(LeafIndex(1))
    );
    assert_eq!(
        handle.entry(LeafIndex(1)).await.expect("read"),
        Some(entry(1, 2))
    );
    handle
        .wait_for_checkpoint(TreeSize(2))
        .await
        .expect("checkpoint");
    tasks.shutdown().await;
    assert_eq!(storage.violations(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_that_lands_but_reports_failure_still_answers_the_index() {
    for attempts in [1, 3] {
        let storage = FaultyStorage::new(MemoryStorage::new(empty_root().0));
        let mut cfg = config(10);
        cfg.commit_attempts = attempts;
        let (handle, tasks) = sequencer::start(storage.clone(), log_key(), cfg, no_witness())
            .await
            .expect("start");
        storage.fail_next_commit(Fault::AfterWrite);
        // With retries the idempotent retry says Ok; without, reloading the state shows it landed.
        assert_eq!(
            handle.submit(entry(2, 0), Vec::new()).await,
            Ok(LeafIndex(0))
        );
        assert_eq!(
            handle.submit(entry(2, 1), Vec::new()).await,
            Ok(LeafIndex(1))
        );
        handle
            .wait_for_checkpoint(TreeSize(2))
            .await
            .expect("checkpoint");
        tasks.shutdown().await;
        assert_eq!(storage.violations(), Vec::<String>::new());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_outcome_is_settled_before_submitters_hear_it_so_nothing_is_appended_twice() {
    for fault in [Fault::AfterWrite, Fault::BeforeWrite] {
        let storage = FaultyStorage::new(MemoryStorage::new(empty_root().0));
        let mut cfg = config(10);
        cfg.commit_attempts = 1;
        let (handle, tasks) = sequencer::start(storage.clone(), log_key(), cfg, no_witness())
            .await
            .expect("start");
        // The commit fails, and storage cannot say at once whether it landed.
        storage.fail_next_commit(fault);
        storage.fail_next_loads(3);
        let answer = handle.submit(entry(3, 0), Vec::new()).await;
        // A careful submitter resubmits on every retryable answer; with the outcome settled
        // first, that never puts the entry in the log twice.
        match (fault, answer) {
            (Fault::AfterWrite, Ok(index)) => assert_eq!(index, LeafIndex(0)),
            (Fault::BeforeWrite, Err(SubmitError::NotCommitted)) => {
                let index = handle
                    .submit(entry(3, 0), Vec::new())
                    .await
                    .expect("resubmitted");
                assert_eq!(index, LeafIndex(0));
            }
            (fault, answer) => panic!("{fault:?}: unexpected answer {answer:?}"),
        }
        assert_eq!(
            handle.submit(entry(3, 1), Vec::new()).await,
            Ok(LeafIndex(1))
        );
        assert_eq!(
            handle.durable_state().size,
            2,
            "{fault:?}: one copy of each"
        );
        assert_eq!(
            handle.entry(LeafIndex(0)).await.expect("read"),
            Some(entry(3, 0))
        );
        tasks.shutdown().await;
        assert_eq!(storage.violations(), Vec::<String>::new());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoint_store_failures_are_retried_and_never_sign_ahead() {
    let storage = FaultyStorage::new(MemoryStorage::new(empty_root().0));
    storage.fail_next_checkpoint(Fault::BeforeWrite);
    storage.fail_next_checkpoint(Fault::AfterWrite);
    let (handle, tasks) = sequencer::start(storage.clone(), log_key(), config(10), no_witness())
        .await
        .expect("start");
    for n in 0..5 {
        handle
            .submit(entry(3, n), Vec::new())
            .await
            .expect("submit");
    }
    let published = handle
        .wait_for_checkpoint(TreeSize(5))
        .await
        .expect("checkpoint");
    assert_eq!(published.size, TreeSize(5));
    let stored = storage.checkpoint().await.expect("read").expect("stored");
    assert_eq!(stored.size, 5);
    tasks.shutdown().await;
    assert_eq!(storage.violations(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_continues_from_the_durable_state_with_consistent_checkpoints() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("log.redb");
    let mut old_checkpoints = Vec::new();
    let mut written = Vec::new();
    for run in 0..3u64 {
        let storage = RedbStorage::open(&path, empty_root().0).expect("open");
        let (handle, tasks) = sequencer::start(storage, log_key(), config(10), no_witness())
            .await
            .expect("start");
        // Uneven counts so that restarts land in the middle of tiles and bundles.
        let mut pending = Vec::new();
        for n in 0..(300 + 77 * run) {
            let bytes = entry(10 + run, n);
            pending.push((
                handle
                    .try_submit(bytes.clone(), Vec::new())
                    .expect("submit"),
                bytes,
            ));
        }
        let mut answered = Vec::new();
        for (wait, bytes) in pending {
            answered.push((wait.wait().await.expect("index"), bytes));
        }
        answered.sort_by_key(|(index, _)| index.0);
        for (index, bytes) in answered {
            assert_eq!(
                index.0,
                written.len() as u64,
                "indexes continue after a restart"
            );
            written.push(bytes);
        }
        let published = handle
            .wait_for_checkpoint(TreeSize(written.len() as u64))
            .await
            .expect("checkpoint");
        for (size, root) in &old_checkpoints {
            let (proof, against) = handle.consistency_proof(*size).expect("consistency proof");
            proof
                .verify(root, &against.root)
                .expect("new checkpoint is consistent with an earlier one");
        }
        old_checkpoints.push((published.size, published.root));
        tasks.shutdown().await;
        drop(handle);
    }
    let storage = RedbStorage::open(&path, empty_root().0).expect("open");
    let (handle, tasks) = sequencer::start(storage, log_key(), config(10), no_witness())
        .await
        .expect("start");
    for (i, bytes) in written.iter().enumerate() {
        assert_eq!(
            handle
                .entry(LeafIndex(i as u64))
                .await
                .expect("read")
                .as_ref(),
            Some(bytes)
        );
    }
    tasks.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn witnesses_cosign_and_an_absent_witness_does_not_block_publication() {
    let dir = tempfile::tempdir().expect("tempdir");
    let witness_one = serve_witness(Arc::new(open_witness(1, &dir.path().join("w1")))).await;
    let witness_two = serve_witness(Arc::new(open_witness(2, &dir.path().join("w2")))).await;
    // Nothing listens here: a bound-then-dropped port refuses connections.
    let absent = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        format!("http://{}", listener.local_addr().expect("address"))
    };
    let client = witness_client(vec![(witness_one, 1), (witness_two, 2), (absent, 3)], 2_000);
    let (handle, tasks) = sequencer::start(
        MemoryStorage::new(empty_root().0),
        log_key(),
        config(10),
        client,
    )
    .await
    .expect("start");
    for round in 0..3u64 {
        for n in 0..10 {
            handle
                .submit(entry(20 + round, n), Vec::new())
                .await
                .expect("submit");
        }
        let size = handle.durable_state().size;
        let published = handle
            .wait_for_checkpoint(TreeSize(size))
            .await
            .expect("checkpoint");
        let witness_keys = [
            common::witness_key(1).verifier(),
            common::witness_key(2).verifier(),
        ];
        let opened = open_checkpoint(
            published.note.as_bytes(),
            &log_key().verifier(),
            &witness_keys,
        )
        .expect("cosigned checkpoint opens");
        assert_eq!(opened.cosignatures.len(), 2, "both live witnesses cosigned");
        let mut names = published.cosigned_by.clone();
        names.sort();
        assert_eq!(
            names,
            vec!["witness1.test".to_owned(), "witness2.test".to_owned()]
        );
    }
    tasks.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_witness_that_never_answers_does_not_delay_appends() {
    // A server that accepts connections and never responds.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    let (release_tx, release_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let mut held = Vec::new();
        let accept = async {
            loop {
                if let Ok((socket, _)) = listener.accept().await {
                    held.push(socket);
                }
            }
        };
        tokio::select! {
            () = accept => {}
            _ = release_rx => {}
        }
    });
    let mut cfg = config(10);
    cfg.witness_timeout_ms = 120_000;
    let client = witness_client(vec![(url, 1)], 120_000);
    let (handle, tasks) =
        sequencer::start(MemoryStorage::new(empty_root().0), log_key(), cfg, client)
            .await
            .expect("start");
    // The checkpointer is stuck on the silent witness for the first checkpoint; appends go on.
    for n in 0..200 {
        let index = handle
            .submit(entry(30, n), Vec::new())
            .await
            .expect("submit");
        assert_eq!(index, LeafIndex(n));
    }
    assert_eq!(handle.durable_state().size, 200);
    assert!(
        handle.checkpoint().is_none_or(|c| c.size.0 < 200),
        "publication waits for the witness, appends do not"
    );
    let _ = release_tx.send(());
    drop(tasks);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_storage_faults_under_load_never_lose_an_answered_entry() {
    use rand_chacha::ChaCha8Rng;
    use rand_core::{RngCore as _, SeedableRng as _};

    let storage = FaultyStorage::new(MemoryStorage::new(empty_root().0));
    let mut cfg = config(10);
    cfg.commit_attempts = 2;
    let (handle, tasks) = sequencer::start(storage.clone(), log_key(), cfg, no_witness())
        .await
        .expect("start");
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    let mut outcomes = Vec::new();
    for round in 0..40u64 {
        // Plan a few faults of either kind, for commits and checkpoint writes.
        for _ in 0..rng.next_u64() % 3 {
            let fault = if rng.next_u64() % 2 == 0 {
                Fault::BeforeWrite
            } else {
                Fault::AfterWrite
            };
            if rng.next_u64() % 3 == 0 {
                storage.fail_next_checkpoint(fault);
            } else {
                storage.fail_next_commit(fault);
            }
        }
        let pending: Vec<_> = (0..25)
            .map(|n| {
                let bytes = entry(40 + round, n);
                (
                    handle
                        .try_submit(bytes.clone(), Vec::new())
                        .expect("submit"),
                    bytes,
                )
            })
            .collect();
        for (p, bytes) in pending {
            outcomes.push((p.wait().await, bytes));
        }
    }
    let mut committed = 0;
    for (outcome, bytes) in &outcomes {
        match outcome {
            Ok(index) => {
                committed += 1;
                assert_eq!(
                    handle.entry(*index).await.expect("read").as_ref(),
                    Some(bytes),
                    "an answered entry is at its index"
                );
            }
            Err(SubmitError::NotCommitted | SubmitError::OutcomeUnknown) => {}
            Err(e) => panic!("unexpected answer {e}"),
        }
    }
    assert!(committed > 0, "most rounds commit");
    let stats = handle.stats();
    assert_eq!(stats.entries_committed, committed);
    let size = handle.durable_state().size;
    handle
        .wait_for_checkpoint(TreeSize(size))
        .await
        .expect("checkpoint");
    tasks.shutdown().await;
    assert_eq!(storage.violations(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_is_bounded_in_bytes_too() {
    let mut cfg = config(10_000);
    cfg.pool_bytes_max = 65_536;
    let (handle, tasks) = sequencer::start(
        MemoryStorage::new(empty_root().0),
        log_key(),
        cfg,
        no_witness(),
    )
    .await
    .expect("start");
    let mut refused = None;
    let mut accepted = 0;
    for _ in 0..8 {
        let big = Entry::Unknown {
            kind: 200,
            body: vec![7; 39_998],
        }
        .encode()
        .expect("entry");
        match handle.try_submit(big, Vec::new()) {
            Ok(_) => accepted += 1,
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
    }
    assert_eq!(refused, Some(SubmitError::PoolFull));
    assert!(
        accepted <= 3,
        "at most one drain at start plus one pooled: {accepted}"
    );
    assert!(handle.stats().pool_refusals >= 1);
    tasks.shutdown().await;
}

/// Polls `check` every 20 ms until it holds; panics after `limit` (a hang guard, not a timing
/// assertion: the behaviour under test has no deadline of its own).
async fn eventually(limit: std::time::Duration, what: &str, mut check: impl FnMut() -> bool) {
    let started = std::time::Instant::now();
    while !check() {
        assert!(started.elapsed() < limit, "never happened: {what}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_writer_fails_the_sequencer_loudly_and_submitters_hear_why() {
    let storage = MemoryStorage::new(empty_root().0);
    let (first, first_tasks) =
        sequencer::start(storage.clone(), log_key(), config(10), no_witness())
            .await
            .expect("start first");
    first
        .submit(entry(40, 0), Vec::new())
        .await
        .expect("append");
    // A second sequencer on the same storage advances the log behind the first one's back.
    let (second, second_tasks) =
        sequencer::start(storage.clone(), log_key(), config(10), no_witness())
            .await
            .expect("start second");
    second
        .submit(entry(41, 0), Vec::new())
        .await
        .expect("append");
    assert_eq!(first.health(), sequencer::Health::Healthy);
    let answer = first.submit(entry(40, 1), Vec::new()).await;
    assert_eq!(answer, Err(SubmitError::NotCommitted), "{answer:?}");
    let reason = first.wait_for_failure().await.expect("failed");
    assert!(reason.contains("another writer"), "{reason}");
    assert!(matches!(first.health(), sequencer::Health::Failed(_)));
    assert!(matches!(
        first.try_submit(entry(40, 2), Vec::new()),
        Err(SubmitError::Failed(_))
    ));
    first_tasks.shutdown().await;
    second_tasks.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_log_still_gets_its_checkpoint_after_storage_recovers() {
    let storage = FaultyStorage::new(MemoryStorage::new(empty_root().0));
    let (handle, tasks) = sequencer::start(storage.clone(), log_key(), config(10), no_witness())
        .await
        .expect("start");
    // More consecutive failures than the checkpointer's immediate retries used to absorb (5).
    for _ in 0..6 {
        storage.fail_next_checkpoint(Fault::BeforeWrite);
    }
    handle
        .submit(entry(42, 0), Vec::new())
        .await
        .expect("append");
    // No further entries: only the checkpointer's own timer can get the checkpoint out.
    let published = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        handle.wait_for_checkpoint(TreeSize(1)),
    )
    .await
    .expect("the checkpoint is retried on a quiet log")
    .expect("checkpoint");
    assert_eq!(published.size, TreeSize(1));
    assert_eq!(handle.health(), sequencer::Health::Healthy);
    assert!(
        storage.violations().is_empty(),
        "{:?}",
        storage.violations()
    );
    tasks.shutdown().await;
}

/// A witness endpoint that accepts connections and never answers.
async fn silent_witness() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    format!("http://{address}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_checkpoint_is_published_only_after_the_witnesses_had_their_chance() {
    let storage = MemoryStorage::new(empty_root().0);
    let client = witness_client(vec![(silent_witness().await, 1)], 1_500);
    let (handle, tasks) = sequencer::start(storage.clone(), log_key(), config(10), client)
        .await
        .expect("start");
    handle
        .submit(entry(43, 0), Vec::new())
        .await
        .expect("append");
    // The signed state is recorded before the witnesses are asked ...
    let mut signed = None;
    for _ in 0..100 {
        signed = storage.load().await.expect("load").signed;
        if signed.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(signed.map(|s| s.size), Some(1));
    // ... but nothing is published (stored or served) while the witness may still answer.
    if handle.checkpoint().is_none() {
        assert_eq!(storage.checkpoint().await.expect("read"), None);
    }
    let published = handle
        .wait_for_checkpoint(TreeSize(1))
        .await
        .expect("published after the witness timeout");
    assert!(published.cosigned_by.is_empty());
    let stored = storage.checkpoint().await.expect("read").expect("stored");
    assert_eq!(stored.note, published.note.as_bytes());
    tasks.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_cosignatures_are_gathered_later_and_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Reserve a port for a witness that is down at first.
    let reserved = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = reserved.local_addr().expect("address");
    drop(reserved);
    let storage = MemoryStorage::new(empty_root().0);
    let mut cfg = config(10);
    cfg.witness_retry_ms = 100;
    let client = witness_client(vec![(format!("http://{address}"), 1)], 1_000);
    let (handle, tasks) = sequencer::start(storage.clone(), log_key(), cfg.clone(), client)
        .await
        .expect("start");
    handle
        .submit(entry(44, 0), Vec::new())
        .await
        .expect("append");
    let first = handle
        .wait_for_checkpoint(TreeSize(1))
        .await
        .expect("published without the witness");
    assert!(first.cosigned_by.is_empty());
    // The witness comes up; the log stays quiet.
    let witness = Arc::new(open_witness(1, &dir.path().join("w1")));
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .expect("rebind the reserved port");
    tokio::spawn(async move {
        axum::serve(listener, ledger::witness::router(witness))
            .await
            .expect("witness server");
    });
    eventually(
        std::time::Duration::from_secs(30),
        "the witness cosigns the quiet log's checkpoint",
        || {
            handle
                .checkpoint()
                .is_some_and(|c| c.cosigned_by == ["witness1.test"])
        },
    )
    .await;
    let stored = storage.checkpoint().await.expect("read").expect("stored");
    tasks.shutdown().await;
    // After a restart, the stored cosignature is recognised again.
    let client = witness_client(vec![(format!("http://{address}"), 1)], 1_000);
    let (restarted, tasks) = sequencer::start(storage.clone(), log_key(), cfg, client)
        .await
        .expect("restart");
    let resumed = restarted.checkpoint().expect("resumed checkpoint");
    assert_eq!(resumed.cosigned_by, vec!["witness1.test".to_owned()]);
    assert_eq!(resumed.note.as_bytes(), stored.note.as_slice());
    tasks.shutdown().await;
}
