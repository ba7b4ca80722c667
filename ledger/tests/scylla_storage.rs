//! The ScyllaDB backend against a real CQL node (Apache Cassandra 5.0, started once for this
//! test binary by `test_support::cassandra::shared_node`, each test in a keyspace of its own):
//! the storage contract suite, the lease and its fencing of two sequencers on one log, and the
//! crash points of a round (after its intent, after its transaction) followed by a resumed
//! sequencer whose consistency proofs verify.
//!
//! Needs Java 17 and Maven (`cargo xtask test` installs them); without them every test fails
//! saying which is missing.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::{config, entry, log_key};
use ledger::merkle::TreeSize;
use ledger::sequencer;
use ledger::storage::contract::{EMPTY_ROOT, Harness};
use ledger::storage::scylla::{CommitStep, LeaseError, ScyllaConfig, ScyllaStorage};
use ledger::storage::{CommitError, LogState, LogStorage, RoundCommit, SidecarRecord, TileKey};
use ledger::witness_client::WitnessClient;
use test_support::cassandra::shared_node;

/// A keyspace name no other test of this run uses.
fn fresh_keyspace() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "t{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    )
}

async fn connect(keyspace: &str) -> ScyllaStorage {
    let node = tokio::task::block_in_place(shared_node);
    let config = ScyllaConfig::new(vec![node.contact_point()], keyspace);
    ScyllaStorage::connect(&config, EMPTY_ROOT)
        .await
        .unwrap_or_else(|error| panic!("connect to keyspace {keyspace}: {error:?}"))
}

mod contract {
    use super::*;

    struct ScyllaHarness {
        keyspace: String,
    }

    impl Harness for ScyllaHarness {
        type Storage = ScyllaStorage;

        async fn fresh(&mut self) -> ScyllaStorage {
            self.keyspace = fresh_keyspace();
            connect(&self.keyspace).await
        }

        async fn reopen(&mut self, storage: ScyllaStorage) -> ScyllaStorage {
            drop(storage);
            connect(&self.keyspace).await
        }
    }

    ledger::storage_contract_suite!(ScyllaHarness {
        keyspace: String::new()
    });
}

fn state(size: u64, tag: u8) -> LogState {
    if size == 0 {
        return LogState::empty(EMPTY_ROOT);
    }
    let mut root = [tag; 32];
    root[..8].copy_from_slice(&size.to_be_bytes());
    LogState { size, root }
}

/// A round from `from` to `to` entries, on the history whose roots are tagged 0xA0, to a root
/// tagged `tag` (so that two writers' rounds of the same sizes differ), writing one tile, one bundle and one sidecar keyed by `to` and `tag`.
fn round(from: u64, to: u64, tag: u8) -> RoundCommit {
    let last = to - 1;
    let width = usize::try_from(last % 256 + 1).expect("small");
    RoundCommit {
        previous: state(from, 0xA0),
        next: state(to, tag),
        tiles: vec![(
            TileKey {
                level: 0,
                index: last / 256,
            },
            vec![tag; width * 32],
        )],
        bundles: vec![(last / 256, vec![tag; usize::try_from(to).expect("small")])],
        sidecars: vec![SidecarRecord {
            table: "ingest_readings".into(),
            key: [[tag; 8].as_slice(), &to.to_be_bytes()].concat(),
            value: vec![tag],
        }],
    }
}

async fn sidecar_of(storage: &ScyllaStorage, r: &RoundCommit) -> Option<Vec<u8>> {
    let record = &r.sidecars[0];
    storage
        .sidecar(&record.table, &record.key)
        .await
        .expect("sidecar read")
}

const TTL: Duration = Duration::from_millis(1_500);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lease_fences_a_stale_sequencer_even_when_its_size_and_root_match() {
    let keyspace = fresh_keyspace();
    let a = connect(&keyspace).await;
    let b = connect(&keyspace).await;
    let lease_a = a
        .try_acquire_lease("sequencer-a", TTL)
        .await
        .expect("a takes the lease");
    assert_eq!(lease_a.epoch(), 1);
    assert_eq!(a.fencing_epoch(), 1);
    a.commit_round(Arc::new(round(0, 3, 0xA0)))
        .await
        .expect("a commits under its lease");

    // While a's lease is live, b cannot take it.
    let held = b.try_acquire_lease("sequencer-b", TTL).await;
    assert!(
        matches!(&held, Err(LeaseError::Held { holder, epoch: 1, .. }) if holder == "sequencer-a"),
        "{held:?}"
    );
    // An unleased handle (epoch 0) is fenced out as well.
    let unleased = b.commit_round(Arc::new(round(3, 4, 0xB0))).await;
    assert!(
        matches!(unleased, Err(CommitError::Conflict { .. })),
        "{unleased:?}"
    );

    // a stops renewing; b waits for the lease, takes it with the next epoch and resumes from
    // the durable state.
    let lease_b = b
        .acquire_lease("sequencer-b", TTL)
        .await
        .expect("b waits, then takes");
    assert_eq!(lease_b.epoch(), 2);
    assert_eq!(b.load().await.expect("load").state, state(3, 0xA0));

    // a's next round builds on exactly the durable state: refused by the epoch alone, and
    // nothing it wrote is visible.
    let stale = round(3, 5, 0xAA);
    let refused = a.commit_round(Arc::new(stale.clone())).await;
    assert!(
        matches!(
            refused,
            Err(CommitError::Conflict {
                stored_size: 3,
                expected_size: 3
            })
        ),
        "{refused:?}"
    );
    assert_eq!(sidecar_of(&b, &stale).await, None);
    assert_eq!(b.bundle(0).await.expect("bundle").map(|b| b.len()), Some(3));
    let renewed = a.renew_lease(&lease_a).await;
    assert!(
        matches!(renewed, Err(LeaseError::Lost { epoch: 1 })),
        "{renewed:?}"
    );

    // b's round on the same state lands.
    let next = round(3, 5, 0xB0);
    b.commit_round(Arc::new(next.clone()))
        .await
        .expect("b commits");
    assert_eq!(sidecar_of(&a, &next).await, Some(vec![0xB0]));
    let lease_b = b.renew_lease(&lease_b).await.expect("b renews");
    b.release_lease(lease_b).await.expect("b releases");
    // Released, the lease is free at once: a takes it back with epoch 3.
    let again = a
        .try_acquire_lease("sequencer-a", TTL)
        .await
        .expect("free after release");
    assert_eq!(again.epoch(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sequencers_racing_for_one_round_land_exactly_one() {
    let keyspace = fresh_keyspace();
    let a = connect(&keyspace).await;
    let b = connect(&keyspace).await;
    let ra = Arc::new(round(0, 4, 0xA1));
    let rb = Arc::new(round(0, 4, 0xB1));
    let (outcome_a, outcome_b) =
        tokio::join!(a.commit_round(ra.clone()), b.commit_round(rb.clone()));
    assert!(
        outcome_a.is_ok() != outcome_b.is_ok(),
        "exactly one lands: {outcome_a:?} / {outcome_b:?}"
    );
    let (winner, loser) = if outcome_a.is_ok() {
        (ra, rb)
    } else {
        (rb, ra)
    };
    assert_eq!(a.load().await.expect("load").state, winner.next);
    assert_eq!(
        sidecar_of(&a, &loser).await,
        None,
        "the lost round left no record"
    );
    assert_eq!(
        sidecar_of(&a, &winner).await,
        Some(winner.sidecars[0].value.clone())
    );
    let tile = a.tile(TileKey { level: 0, index: 0 }).await.expect("tile");
    assert_eq!(
        tile,
        Some(winner.tiles[0].1.clone()),
        "the winner's tile, not the loser's"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_after_the_intent_leaves_the_previous_state_and_the_round_can_be_retried() {
    let keyspace = fresh_keyspace();
    let a = connect(&keyspace).await;
    a.commit_round(Arc::new(round(0, 2, 0xA0)))
        .await
        .expect("first round");
    let r = Arc::new(round(2, 6, 0xC0));
    a.halt_next_commit(CommitStep::AfterIntent);
    let halted = a.commit_round(r.clone()).await;
    assert!(matches!(halted, Err(CommitError::Backend(_))), "{halted:?}");
    drop(a);
    // A restarted process sees the previous state, and nothing of the round.
    let b = connect(&keyspace).await;
    assert_eq!(b.load().await.expect("load").state, state(2, 0xA0));
    assert_eq!(sidecar_of(&b, &r).await, None);
    assert_eq!(b.bundle(0).await.expect("bundle").map(|b| b.len()), Some(2));
    b.commit_round(r.clone()).await.expect("the round again");
    assert_eq!(b.load().await.expect("load").state, r.next);
    assert_eq!(sidecar_of(&b, &r).await, Some(vec![0xC0]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_after_the_transaction_is_rolled_forward_by_the_next_load() {
    let keyspace = fresh_keyspace();
    let a = connect(&keyspace).await;
    let lease = a.try_acquire_lease("a", TTL).await.expect("lease");
    let r = Arc::new(round(0, 7, 0xD0));
    a.halt_next_commit(CommitStep::AfterTransaction);
    let halted = a.commit_round(r.clone()).await;
    assert!(matches!(halted, Err(CommitError::Backend(_))), "{halted:?}");
    // Committed, not applied yet: the records are not there.
    assert_eq!(sidecar_of(&a, &r).await, None);
    drop(a);
    // Another process takes over once the lease expires; its load finishes the round.
    let b = connect(&keyspace).await;
    let taken = b.acquire_lease("b", TTL).await.expect("takeover");
    assert_eq!(taken.epoch(), lease.epoch() + 1);
    assert_eq!(b.load().await.expect("load").state, r.next);
    assert_eq!(sidecar_of(&b, &r).await, Some(vec![0xD0]));
    assert_eq!(
        b.tile(TileKey { level: 0, index: 0 }).await.expect("tile"),
        Some(r.tiles[0].1.clone())
    );
    assert_eq!(
        b.bundle(0).await.expect("bundle"),
        Some(r.bundles[0].1.clone())
    );
    // And the log goes on from there.
    let mut next = round(7, 9, 0xD1);
    next.previous = r.next;
    b.commit_round(Arc::new(next)).await.expect("next round");
}

fn no_witness() -> WitnessClient {
    WitnessClient::none().expect("client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sequencer_resumes_after_a_takeover_mid_round_with_consistent_checkpoints() {
    let keyspace = fresh_keyspace();
    let a = connect(&keyspace).await;
    a.try_acquire_lease("a", TTL).await.expect("lease");
    let (handle, tasks) = sequencer::start(a.clone(), log_key(), config(10), no_witness())
        .await
        .expect("start on a");
    let mut pending = Vec::new();
    for n in 0..300 {
        pending.push(handle.try_submit(entry(1, n), Vec::new()).expect("submit"));
    }
    for wait in pending {
        wait.wait().await.expect("index");
    }
    let first = handle
        .wait_for_checkpoint(TreeSize(300))
        .await
        .expect("checkpoint");
    // The next round stops after its transaction (as a crash would); the sequencer retries
    // the round, which finishes it.
    a.halt_next_commit(CommitStep::AfterTransaction);
    let index = handle
        .try_submit(entry(1, 300), Vec::new())
        .expect("submit")
        .wait()
        .await
        .expect("index of the halted round");
    assert_eq!(index.0, 300);
    tasks.shutdown().await;
    drop(handle);

    // b takes over after a's lease expires and continues the same log.
    let b = connect(&keyspace).await;
    b.acquire_lease("b", TTL).await.expect("takeover");
    let (handle, tasks) = sequencer::start(b.clone(), log_key(), config(10), no_witness())
        .await
        .expect("start on b");
    assert_eq!(handle.durable_state().size, 301);
    let mut pending = Vec::new();
    for n in 0..100 {
        pending.push(handle.try_submit(entry(2, n), Vec::new()).expect("submit"));
    }
    for wait in pending {
        wait.wait().await.expect("index");
    }
    let published = handle
        .wait_for_checkpoint(TreeSize(401))
        .await
        .expect("checkpoint");
    let (proof, against) = handle
        .consistency_proof(first.size)
        .expect("consistency proof");
    assert_eq!(against.size, published.size);
    proof
        .verify(&first.root, &against.root)
        .expect("b's checkpoint is consistent with a's");
    // The stale handle cannot append.
    let stale = a.commit_round(Arc::new(round(401, 402, 0xEE))).await;
    assert!(
        matches!(stale, Err(CommitError::Conflict { .. })),
        "{stale:?}"
    );
    tasks.shutdown().await;
}
