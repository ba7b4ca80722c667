//! The contract suite every [`LogStorage`] backend must pass, as generic async functions.
//!
//! A backend's test file provides a [`Harness`] (how to make a fresh store and how to reopen one,
//! which for a durable backend means closing and opening the same files) and expands
//! [`storage_contract_suite!`](crate::storage_contract_suite), which makes one `#[tokio::test]` per
//! rule so that a failure names the rule broken. The suite uses made-up roots: storage treats
//! hashes as opaque bytes.

use std::future::Future;
use std::sync::Arc;

use super::{
    CheckpointError, CommitError, LogState, LogStorage, RoundCommit, SidecarRecord,
    StoredCheckpoint, TileKey,
};

/// The empty-tree root the suite's harnesses must pass to their backends (`SHA-256("")`).
pub const EMPTY_ROOT: [u8; 32] = [
    0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24,
    0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
];

/// How the suite gets stores of the backend under test.
pub trait Harness: Send {
    /// The backend under test.
    type Storage: LogStorage + Clone;
    /// A new, empty store (with [`EMPTY_ROOT`] as its empty root).
    fn fresh(&mut self) -> impl Future<Output = Self::Storage> + Send;
    /// Closes `storage` and opens the same store again, as a restarted process would.
    fn reopen(&mut self, storage: Self::Storage) -> impl Future<Output = Self::Storage> + Send;
}

fn state(size: u64) -> LogState {
    if size == 0 {
        return LogState::empty(EMPTY_ROOT);
    }
    let mut root = [0u8; 32];
    root[..8].copy_from_slice(&size.to_be_bytes());
    root[31] = 0xAA;
    LogState { size, root }
}

fn tile_bytes(hashes: usize, fill: u8) -> Vec<u8> {
    vec![fill; hashes * 32]
}

/// A well-formed round from `from` to `to` entries writing one tile, one bundle and one sidecar.
fn round(from: u64, to: u64) -> RoundCommit {
    let last = to - 1;
    let width = usize::try_from(last % 256 + 1).expect("width fits");
    RoundCommit {
        previous: state(from),
        next: state(to),
        tiles: vec![(
            TileKey {
                level: 0,
                index: last / 256,
            },
            tile_bytes(width, 7),
        )],
        bundles: vec![(last / 256, vec![0, 1, 0xEE])],
        sidecars: vec![SidecarRecord {
            table: "readings".into(),
            key: to.to_be_bytes().to_vec(),
            value: b"sidecar".to_vec(),
        }],
    }
}

fn checkpoint(size: u64) -> StoredCheckpoint {
    let s = state(size);
    StoredCheckpoint {
        size,
        root: s.root,
        note: format!("origin\n{size}\nroot\n\n— sig\n").into_bytes(),
    }
}

/// A new store holds the empty log and no checkpoint.
pub async fn new_store_is_empty<H: Harness>(h: &mut H) {
    let store = h.fresh().await;
    let restored = store.load().await.expect("load");
    assert_eq!(restored.state, state(0));
    assert_eq!(restored.checkpoint, None);
    assert_eq!(
        store
            .tile(TileKey { level: 0, index: 0 })
            .await
            .expect("tile"),
        None
    );
    assert_eq!(store.bundle(0).await.expect("bundle"), None);
}

/// Everything a round wrote is readable after it returns, and after a reopen.
pub async fn committed_round_is_durable<H: Harness>(h: &mut H) {
    let store = h.fresh().await;
    let r = round(0, 3);
    store
        .commit_round(Arc::new(r.clone()))
        .await
        .expect("commit");
    check_round_readable(&store, &r).await;
    let store = h.reopen(store).await;
    check_round_readable(&store, &r).await;
}

async fn check_round_readable<S: LogStorage>(store: &S, r: &RoundCommit) {
    {
        let restored = store.load().await.expect("load");
        assert_eq!(restored.state, r.next);
        let (key, tile) = &r.tiles[0];
        assert_eq!(store.tile(*key).await.expect("tile").as_ref(), Some(tile));
        assert_eq!(
            store.bundle(0).await.expect("bundle"),
            Some(r.bundles[0].1.clone())
        );
        let sidecar = &r.sidecars[0];
        assert_eq!(
            store
                .sidecar(&sidecar.table, &sidecar.key)
                .await
                .expect("sidecar"),
            Some(sidecar.value.clone())
        );
    }
}

/// Retrying a round that already landed returns `Ok` and changes nothing.
pub async fn retried_round_is_idempotent<H: Harness>(h: &mut H) {
    let store = h.fresh().await;
    let first = Arc::new(round(0, 3));
    store.commit_round(first.clone()).await.expect("commit");
    store
        .commit_round(first.clone())
        .await
        .expect("retry of a landed round");
    assert_eq!(store.load().await.expect("load").state, first.next);
    let second = Arc::new(round(3, 10));
    store.commit_round(second.clone()).await.expect("commit");
    store.commit_round(second.clone()).await.expect("retry");
    assert_eq!(store.load().await.expect("load").state, second.next);
}

/// A round built on a state that is not the durable one is refused and writes nothing.
pub async fn round_on_stale_state_conflicts_and_writes_nothing<H: Harness>(h: &mut H) {
    let store = h.fresh().await;
    store
        .commit_round(Arc::new(round(0, 5)))
        .await
        .expect("commit");
    let mut stale = round(2, 9);
    stale.sidecars[0].key = b"stale".to_vec();
    stale.bundles = vec![(1, vec![9])];
    stale.next.size = 300;
    let result = store.commit_round(Arc::new(stale.clone())).await;
    assert!(
        matches!(
            result,
            Err(CommitError::Conflict {
                stored_size: 5,
                expected_size: 2
            })
        ),
        "expected a conflict, got {result:?}"
    );
    assert_eq!(store.load().await.expect("load").state, state(5));
    assert_eq!(store.bundle(1).await.expect("bundle"), None);
    assert_eq!(
        store.sidecar("readings", b"stale").await.expect("sidecar"),
        None
    );
}

/// Two rounds racing from the same state: exactly one lands.
pub async fn racing_rounds_land_exactly_once<H: Harness>(h: &mut H) {
    let store = h.fresh().await;
    let a = Arc::new(round(0, 4));
    let b = Arc::new(round(0, 6));
    let (ra, rb) = tokio::join!(store.commit_round(a.clone()), store.commit_round(b.clone()));
    assert!(
        ra.is_ok() != rb.is_ok(),
        "exactly one round must land: {ra:?} / {rb:?}"
    );
    let winner = if ra.is_ok() { a } else { b };
    assert_eq!(store.load().await.expect("load").state, winner.next);
}

/// Malformed rounds are refused before anything is written.
pub async fn malformed_rounds_are_refused<H: Harness>(h: &mut H) {
    let store = h.fresh().await;
    let mut not_growing = round(0, 3);
    not_growing.next = state(0);
    let mut ragged_tile = round(0, 3);
    ragged_tile.tiles[0].1.push(1);
    let mut wide_tile = round(0, 3);
    wide_tile.tiles[0].1 = tile_bytes(257, 1);
    let mut far_bundle = round(0, 3);
    far_bundle.bundles[0].0 = 1;
    let mut reserved = round(0, 3);
    reserved.sidecars[0].table = "log_tiles".into();
    let mut odd_name = round(0, 3);
    odd_name.sidecars[0].table = "Readings/x".into();
    for bad in [
        not_growing,
        ragged_tile,
        wide_tile,
        far_bundle,
        reserved,
        odd_name,
    ] {
        let result = store.commit_round(Arc::new(bad)).await;
        assert!(
            matches!(result, Err(CommitError::Invalid(_))),
            "expected Invalid, got {result:?}"
        );
    }
    assert_eq!(store.load().await.expect("load").state, state(0));
    assert_eq!(
        store
            .sidecar("readings", &3u64.to_be_bytes())
            .await
            .expect("sidecar"),
        None
    );
}

/// A tile rewritten by a later round reads back in its latest (wider) version.
pub async fn tiles_read_back_latest_version<H: Harness>(h: &mut H) {
    let store = h.fresh().await;
    store
        .commit_round(Arc::new(round(0, 3)))
        .await
        .expect("commit");
    store
        .commit_round(Arc::new(round(3, 200)))
        .await
        .expect("commit");
    let tile = store
        .tile(TileKey { level: 0, index: 0 })
        .await
        .expect("tile")
        .expect("present");
    assert_eq!(tile.len(), 200 * 32);
}

/// Checkpoint rules: never ahead of the durable log, never smaller, never a fork; idempotent;
/// durable.
pub async fn checkpoints_follow_the_rules<H: Harness>(h: &mut H) {
    let store = h.fresh().await;
    let ahead = store.put_checkpoint(checkpoint(1)).await;
    assert!(
        matches!(ahead, Err(CheckpointError::Ahead { .. })),
        "checkpoint ahead of an empty log: {ahead:?}"
    );
    store
        .commit_round(Arc::new(round(0, 10)))
        .await
        .expect("commit");
    let mut forked = checkpoint(10);
    forked.root = [1; 32];
    let fork = store.put_checkpoint(forked).await;
    assert!(
        matches!(fork, Err(CheckpointError::Fork { size: 10 })),
        "fork at durable size: {fork:?}"
    );
    store.put_checkpoint(checkpoint(5)).await.expect("size 5");
    store.put_checkpoint(checkpoint(10)).await.expect("size 10");
    store
        .put_checkpoint(checkpoint(10))
        .await
        .expect("same checkpoint again");
    let mut cosigned = checkpoint(10);
    cosigned
        .note
        .extend_from_slice(b"\xe2\x80\x94 witness sig\n");
    store
        .put_checkpoint(cosigned.clone())
        .await
        .expect("same size with more signatures");
    let stale = store.put_checkpoint(checkpoint(5)).await;
    assert!(
        matches!(
            stale,
            Err(CheckpointError::Stale {
                stored_size: 10,
                offered_size: 5
            })
        ),
        "smaller checkpoint: {stale:?}"
    );
    let store = h.reopen(store).await;
    assert_eq!(
        store.checkpoint().await.expect("checkpoint"),
        Some(cosigned.clone())
    );
    assert_eq!(store.load().await.expect("load").checkpoint, Some(cosigned));
}

/// The last-signed record follows the checkpoint rules, is separate from the published
/// checkpoint, and survives a reopen.
pub async fn signed_state_follows_the_rules<H: Harness>(h: &mut H) {
    let store = h.fresh().await;
    let ahead = store.put_signed(state(1)).await;
    assert!(
        matches!(ahead, Err(CheckpointError::Ahead { .. })),
        "signed state ahead of an empty log: {ahead:?}"
    );
    store
        .commit_round(Arc::new(round(0, 10)))
        .await
        .expect("commit");
    let mut forked = state(10);
    forked.root = [1; 32];
    let fork = store.put_signed(forked).await;
    assert!(
        matches!(fork, Err(CheckpointError::Fork { size: 10 })),
        "fork at durable size: {fork:?}"
    );
    store.put_signed(state(5)).await.expect("size 5");
    store.put_signed(state(10)).await.expect("size 10");
    store.put_signed(state(10)).await.expect("same state again");
    let stale = store.put_signed(state(5)).await;
    assert!(
        matches!(
            stale,
            Err(CheckpointError::Stale {
                stored_size: 10,
                offered_size: 5
            })
        ),
        "smaller signed state: {stale:?}"
    );
    // The published checkpoint is a separate record: storing the signed state publishes
    // nothing, and a smaller published checkpoint is still accepted.
    assert_eq!(store.checkpoint().await.expect("checkpoint"), None);
    store
        .put_checkpoint(checkpoint(5))
        .await
        .expect("publish 5");
    let store = h.reopen(store).await;
    let restored = store.load().await.expect("load");
    assert_eq!(restored.signed, Some(state(10)));
    assert_eq!(restored.checkpoint, Some(checkpoint(5)));
    assert_eq!(restored.last_signed(), Some(state(10)));
}

/// Expands to one `#[tokio::test]` per contract rule, each calling `$harness` for a fresh
/// [`Harness`](crate::storage::contract::Harness).
#[macro_export]
macro_rules! storage_contract_suite {
    ($harness:expr) => {
        $crate::storage_contract_suite!(@tests $harness;
            new_store_is_empty,
            committed_round_is_durable,
            retried_round_is_idempotent,
            round_on_stale_state_conflicts_and_writes_nothing,
            racing_rounds_land_exactly_once,
            malformed_rounds_are_refused,
            tiles_read_back_latest_version,
            checkpoints_follow_the_rules,
            signed_state_follows_the_rules,
        );
    };
    (@tests $harness:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let mut harness = $harness;
                $crate::storage::contract::$name(&mut harness).await;
            }
        )*
    };
}
