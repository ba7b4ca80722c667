//! Runs the storage contract suite (`ledger::storage::contract`) against every backend in this
//! crate: redb on a real data directory, the in-memory reference, and the fault-injecting double
//! (with no fault planned it must behave exactly like the storage it wraps).

use ledger::storage::contract::{EMPTY_ROOT, Harness};
use ledger::storage::faulty::FaultyStorage;
use ledger::storage::memory::MemoryStorage;
use ledger::storage::redb::RedbStorage;

mod redb_backend {
    use super::*;

    /// Keeps the temporary directory alive for the whole test.
    struct RedbHarness {
        dir: tempfile::TempDir,
    }

    impl Harness for RedbHarness {
        type Storage = RedbStorage;

        async fn fresh(&mut self) -> RedbStorage {
            RedbStorage::open(&self.dir.path().join("log.redb"), EMPTY_ROOT).expect("open redb")
        }

        async fn reopen(&mut self, storage: RedbStorage) -> RedbStorage {
            drop(storage);
            RedbStorage::open(&self.dir.path().join("log.redb"), EMPTY_ROOT).expect("reopen redb")
        }
    }

    ledger::storage_contract_suite!(RedbHarness {
        dir: tempfile::tempdir().expect("tempdir"),
    });
}

mod memory_backend {
    use super::*;

    struct MemoryHarness;

    impl Harness for MemoryHarness {
        type Storage = MemoryStorage;

        async fn fresh(&mut self) -> MemoryStorage {
            MemoryStorage::new(EMPTY_ROOT)
        }

        async fn reopen(&mut self, storage: MemoryStorage) -> MemoryStorage {
            storage
        }
    }

    ledger::storage_contract_suite!(MemoryHarness);
}

mod faulty_double {
    use super::*;

    struct FaultyHarness;

    impl Harness for FaultyHarness {
        type Storage = FaultyStorage<MemoryStorage>;

        async fn fresh(&mut self) -> Self::Storage {
            FaultyStorage::new(MemoryStorage::new(EMPTY_ROOT))
        }

        async fn reopen(&mut self, storage: Self::Storage) -> Self::Storage {
            storage
        }
    }

    ledger::storage_contract_suite!(FaultyHarness);
}

/// The double itself: it must catch a caller that breaks its side of the contract.
mod double_catches_violations {
    use std::sync::Arc;

    use ledger::storage::contract::EMPTY_ROOT;
    use ledger::storage::faulty::{Fault, FaultyStorage};
    use ledger::storage::memory::MemoryStorage;
    use ledger::storage::{LogState, LogStorage, RoundCommit, StoredCheckpoint, TileKey};

    fn round(from: (u64, u8), to: (u64, u8), tile: Vec<u8>) -> RoundCommit {
        let state = |(size, fill): (u64, u8)| LogState {
            size,
            root: if size == 0 { EMPTY_ROOT } else { [fill; 32] },
        };
        RoundCommit {
            previous: state(from),
            next: state(to),
            tiles: vec![(TileKey { level: 0, index: 0 }, tile)],
            bundles: Vec::new(),
            sidecars: Vec::new(),
        }
    }

    #[tokio::test]
    async fn signing_a_size_never_acknowledged_is_a_violation() {
        let store = FaultyStorage::new(MemoryStorage::new(EMPTY_ROOT));
        store.fail_next_commit(Fault::AfterWrite);
        let result = store
            .commit_round(Arc::new(round((0, 0), (2, 2), vec![1; 64])))
            .await;
        assert!(result.is_err(), "the injected fault is reported");
        // The write landed, but the caller was never told: storing a checkpoint for it is a
        // violation (the storage itself accepts it, since the state is in fact durable).
        store
            .put_checkpoint(StoredCheckpoint {
                size: 2,
                root: [2; 32],
                note: b"note\n".to_vec(),
            })
            .await
            .expect("the inner storage accepts a durable size");
        assert_eq!(store.violations().len(), 1, "{:?}", store.violations());
    }

    #[tokio::test]
    async fn rewriting_a_tile_instead_of_growing_it_is_a_violation() {
        let store = FaultyStorage::new(MemoryStorage::new(EMPTY_ROOT));
        store
            .commit_round(Arc::new(round((0, 0), (2, 2), vec![1; 64])))
            .await
            .expect("commit");
        store
            .commit_round(Arc::new(round((2, 2), (3, 3), vec![9; 96])))
            .await
            .expect("the inner storage does not check");
        assert_eq!(store.violations().len(), 1, "{:?}", store.violations());
        store
            .commit_round(Arc::new(round((3, 3), (4, 4), {
                let mut grown = vec![9; 96];
                grown.extend_from_slice(&[4; 32]);
                grown
            })))
            .await
            .expect("commit");
        assert_eq!(store.violations().len(), 1, "growing is fine");
    }
}
