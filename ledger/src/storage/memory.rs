//! An in-memory [`LogStorage`]: the reference backend for tests and the "disk" under the
//! fault-injecting double. Not durable across a process exit; everything else in the contract
//! holds.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::tile::TileReader;

use super::{
    CheckpointError, CommitError, LogState, LogStorage, ReadError, Restored, RoundCommit,
    StoredCheckpoint, TileKey,
};

#[derive(Debug, Default)]
struct Inner {
    state: Option<LogState>,
    checkpoint: Option<StoredCheckpoint>,
    signed: Option<LogState>,
    tiles: BTreeMap<TileKey, Vec<u8>>,
    bundles: BTreeMap<u64, Vec<u8>>,
    sidecars: BTreeMap<(String, Vec<u8>), Vec<u8>>,
}

/// In-memory storage. Cloning shares the same data.
#[derive(Debug, Clone)]
pub struct MemoryStorage {
    inner: Arc<Mutex<Inner>>,
    empty_root: [u8; 32],
}

impl MemoryStorage {
    /// An empty log whose empty-tree root is `empty_root` (`SHA-256("")`).
    #[must_use]
    pub fn new(empty_root: [u8; 32]) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner::default())),
            empty_root,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A poisoned lock means a panic while holding it, in a test; the data is still usable
        // because every mutation below is applied only after all checks passed.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn state(&self, inner: &Inner) -> LogState {
        inner
            .state
            .unwrap_or_else(|| LogState::empty(self.empty_root))
    }

    pub(crate) fn commit_sync(&self, round: &RoundCommit) -> Result<(), CommitError> {
        round.validate()?;
        let mut inner = self.lock();
        let stored = self.state(&inner);
        if stored == round.next {
            return Ok(());
        }
        if stored != round.previous {
            return Err(CommitError::Conflict {
                stored_size: stored.size,
                expected_size: round.previous.size,
            });
        }
        for (key, tile) in &round.tiles {
            inner.tiles.insert(*key, tile.clone());
        }
        for (index, bundle) in &round.bundles {
            inner.bundles.insert(*index, bundle.clone());
        }
        for record in &round.sidecars {
            inner.sidecars.insert(
                (record.table.clone(), record.key.clone()),
                record.value.clone(),
            );
        }
        inner.state = Some(round.next);
        Ok(())
    }

    pub(crate) fn put_signed_sync(&self, state: LogState) -> Result<(), CheckpointError> {
        let mut inner = self.lock();
        let durable = self.state(&inner);
        check_signed(durable, inner.signed, state)?;
        inner.signed = Some(state);
        Ok(())
    }

    pub(crate) fn put_checkpoint_sync(
        &self,
        checkpoint: StoredCheckpoint,
    ) -> Result<(), CheckpointError> {
        let mut inner = self.lock();
        let durable = self.state(&inner);
        check_checkpoint(durable, inner.checkpoint.as_ref(), &checkpoint)?;
        inner.checkpoint = Some(checkpoint);
        Ok(())
    }
}

/// The last-signed record's rules: those of [`check_checkpoint`] against the previous record.
pub(crate) fn check_signed(
    durable: LogState,
    stored: Option<LogState>,
    offered: LogState,
) -> Result<(), CheckpointError> {
    let as_checkpoint = |state: LogState| StoredCheckpoint {
        size: state.size,
        root: state.root,
        note: Vec::new(),
    };
    check_checkpoint(
        durable,
        stored.map(as_checkpoint).as_ref(),
        &as_checkpoint(offered),
    )
}

/// The checkpoint rules of the contract, shared by backends that can read their state and
/// stored checkpoint inside the write.
pub(crate) fn check_checkpoint(
    durable: LogState,
    stored: Option<&StoredCheckpoint>,
    offered: &StoredCheckpoint,
) -> Result<(), CheckpointError> {
    if offered.size > durable.size {
        return Err(CheckpointError::Ahead {
            durable_size: durable.size,
            offered_size: offered.size,
        });
    }
    if offered.size == durable.size && offered.root != durable.root {
        return Err(CheckpointError::Fork { size: offered.size });
    }
    if let Some(stored) = stored {
        if offered.size < stored.size {
            return Err(CheckpointError::Stale {
                stored_size: stored.size,
                offered_size: offered.size,
            });
        }
        if offered.size == stored.size && offered.root != stored.root {
            return Err(CheckpointError::Fork { size: offered.size });
        }
    }
    Ok(())
}

/// A tile reader over a [`MemoryStorage`] (reads the latest data under the lock).
#[derive(Debug, Clone)]
pub struct MemoryTiles(MemoryStorage);

impl TileReader for MemoryTiles {
    type Error = ReadError;

    fn read_tile(&self, level: u8, index: u64) -> Result<Option<Vec<u8>>, ReadError> {
        Ok(self.0.lock().tiles.get(&TileKey { level, index }).cloned())
    }
}

impl LogStorage for MemoryStorage {
    type Tiles = MemoryTiles;

    fn tile_reader(&self) -> Result<MemoryTiles, ReadError> {
        Ok(MemoryTiles(self.clone()))
    }

    async fn load(&self) -> Result<Restored, ReadError> {
        let inner = self.lock();
        Ok(Restored {
            state: self.state(&inner),
            checkpoint: inner.checkpoint.clone(),
            signed: inner.signed,
        })
    }

    async fn commit_round(&self, round: Arc<RoundCommit>) -> Result<(), CommitError> {
        self.commit_sync(&round)
    }

    async fn put_signed(&self, state: LogState) -> Result<(), CheckpointError> {
        self.put_signed_sync(state)
    }

    async fn put_checkpoint(&self, checkpoint: StoredCheckpoint) -> Result<(), CheckpointError> {
        self.put_checkpoint_sync(checkpoint)
    }

    async fn checkpoint(&self) -> Result<Option<StoredCheckpoint>, ReadError> {
        Ok(self.lock().checkpoint.clone())
    }

    async fn tile(&self, key: TileKey) -> Result<Option<Vec<u8>>, ReadError> {
        Ok(self.lock().tiles.get(&key).cloned())
    }

    async fn bundle(&self, index: u64) -> Result<Option<Vec<u8>>, ReadError> {
        Ok(self.lock().bundles.get(&index).cloned())
    }

    async fn sidecar(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>, ReadError> {
        Ok(self
            .lock()
            .sidecars
            .get(&(table.to_owned(), key.to_vec()))
            .cloned())
    }
}
