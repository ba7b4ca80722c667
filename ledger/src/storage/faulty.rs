//! A fault-injecting storage double for fault tests.
//!
//! [`FaultyStorage`] wraps any backend and, on demand, makes the next commit or checkpoint write
//! fail either *before* the write lands (nothing written) or *after* it lands (written, but the
//! caller sees an error — the case a careful caller must handle by retrying or reloading).
//!
//! It also enforces the caller's side of the contract and records violations: a checkpoint may
//! only be stored for a size the storage has acknowledged as durable (an `Ok` commit, or a
//! `load`), which is how "the sequencer never signs state that is not durable" is checked from
//! the outside; and a tile or bundle may only grow (every new version starts with the stored
//! one).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use super::{
    CheckpointError, CommitError, LogState, LogStorage, ReadError, Restored, RoundCommit,
    StoredCheckpoint, TileKey,
};

/// How an injected failure behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The operation fails and nothing is written.
    BeforeWrite,
    /// The operation is written durably, then reports a backend failure.
    AfterWrite,
}

#[derive(Debug, Default)]
struct Plan {
    commits: VecDeque<Fault>,
    checkpoints: VecDeque<Fault>,
    acknowledged_size: u64,
    violations: Vec<String>,
    commits_ok: u64,
    commits_failed: u64,
    loads_to_fail: u64,
}

/// The injected failure reported to the caller.
#[derive(Debug, thiserror::Error)]
#[error("injected storage fault ({0:?})")]
pub struct InjectedFault(pub Fault);

/// A storage double around `S`. Cloning shares the plan and the inner storage.
#[derive(Debug, Clone)]
pub struct FaultyStorage<S> {
    inner: S,
    plan: Arc<Mutex<Plan>>,
}

impl<S: LogStorage> FaultyStorage<S> {
    /// Wraps `inner`, with no fault planned.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            plan: Arc::new(Mutex::new(Plan::default())),
        }
    }

    fn plan(&self) -> MutexGuard<'_, Plan> {
        self.plan
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Makes the next commit (after those already planned) fail as `fault` says.
    pub fn fail_next_commit(&self, fault: Fault) {
        self.plan().commits.push_back(fault);
    }

    /// Makes the next `count` loads fail with a backend error (storage unreachable), so that a
    /// caller cannot tell at once whether a failed commit landed.
    pub fn fail_next_loads(&self, count: u64) {
        self.plan().loads_to_fail = count;
    }

    /// Records a violation if `size` was never acknowledged durable, and takes the next planned
    /// checkpoint-write fault.
    fn checkpoint_fault(&self, size: u64, what: &str) -> Option<Fault> {
        let mut plan = self.plan();
        if size > plan.acknowledged_size {
            let violation = format!(
                "{what} of size {size} stored while only size {} was acknowledged durable",
                plan.acknowledged_size
            );
            plan.violations.push(violation);
        }
        plan.checkpoints.pop_front()
    }

    /// Makes the next checkpoint write (a last-signed record or a published checkpoint, after
    /// those already planned) fail as `fault` says.
    pub fn fail_next_checkpoint(&self, fault: Fault) {
        self.plan().checkpoints.push_back(fault);
    }

    /// Contract violations seen so far (empty when the caller behaved).
    #[must_use]
    pub fn violations(&self) -> Vec<String> {
        self.plan().violations.clone()
    }

    /// Commits that returned `Ok`, and commits that returned an error.
    #[must_use]
    pub fn commit_counts(&self) -> (u64, u64) {
        let plan = self.plan();
        (plan.commits_ok, plan.commits_failed)
    }

    /// Records a violation for every tile or bundle the round would rewrite to something that
    /// does not start with its stored bytes (tiles and bundles only ever grow).
    async fn check_prefix_stability(&self, round: &RoundCommit) {
        let mut violations = Vec::new();
        for (key, tile) in &round.tiles {
            if let Ok(Some(stored)) = self.inner.tile(*key).await
                && !tile.starts_with(&stored)
            {
                violations.push(format!(
                    "tile {}/{} rewritten, not grown",
                    key.level, key.index
                ));
            }
        }
        for (index, bundle) in &round.bundles {
            if let Ok(Some(stored)) = self.inner.bundle(*index).await
                && !bundle.starts_with(&stored)
            {
                violations.push(format!("entry bundle {index} rewritten, not grown"));
            }
        }
        self.plan().violations.extend(violations);
    }

    /// The wrapped storage.
    pub fn inner(&self) -> &S {
        &self.inner
    }
}

impl<S: LogStorage> LogStorage for FaultyStorage<S> {
    type Tiles = S::Tiles;

    fn tile_reader(&self) -> Result<S::Tiles, ReadError> {
        self.inner.tile_reader()
    }

    async fn load(&self) -> Result<Restored, ReadError> {
        {
            let mut plan = self.plan();
            if plan.loads_to_fail > 0 {
                plan.loads_to_fail -= 1;
                return Err(ReadError::Backend(Box::new(InjectedFault(
                    Fault::BeforeWrite,
                ))));
            }
        }
        let restored = self.inner.load().await?;
        let mut plan = self.plan();
        plan.acknowledged_size = plan.acknowledged_size.max(restored.state.size);
        Ok(restored)
    }

    async fn commit_round(&self, round: Arc<RoundCommit>) -> Result<(), CommitError> {
        self.check_prefix_stability(&round).await;
        let fault = self.plan().commits.pop_front();
        let next_size = round.next.size;
        let result = match fault {
            Some(Fault::BeforeWrite) => Err(CommitError::Backend(Box::new(InjectedFault(
                Fault::BeforeWrite,
            )))),
            Some(Fault::AfterWrite) => match self.inner.commit_round(round).await {
                Ok(()) => Err(CommitError::Backend(Box::new(InjectedFault(
                    Fault::AfterWrite,
                )))),
                Err(e) => Err(e),
            },
            None => self.inner.commit_round(round).await,
        };
        let mut plan = self.plan();
        if result.is_ok() {
            plan.commits_ok += 1;
            plan.acknowledged_size = plan.acknowledged_size.max(next_size);
        } else {
            plan.commits_failed += 1;
        }
        result
    }

    async fn put_signed(&self, state: LogState) -> Result<(), CheckpointError> {
        match self.checkpoint_fault(state.size, "signed state") {
            Some(Fault::BeforeWrite) => Err(CheckpointError::Backend(Box::new(InjectedFault(
                Fault::BeforeWrite,
            )))),
            Some(Fault::AfterWrite) => {
                self.inner.put_signed(state).await?;
                Err(CheckpointError::Backend(Box::new(InjectedFault(
                    Fault::AfterWrite,
                ))))
            }
            None => self.inner.put_signed(state).await,
        }
    }

    async fn put_checkpoint(&self, checkpoint: StoredCheckpoint) -> Result<(), CheckpointError> {
        let fault = self.checkpoint_fault(checkpoint.size, "checkpoint");
        match fault {
            Some(Fault::BeforeWrite) => Err(CheckpointError::Backend(Box::new(InjectedFault(
                Fault::BeforeWrite,
            )))),
            Some(Fault::AfterWrite) => {
                self.inner.put_checkpoint(checkpoint).await?;
                Err(CheckpointError::Backend(Box::new(InjectedFault(
                    Fault::AfterWrite,
                ))))
            }
            None => self.inner.put_checkpoint(checkpoint).await,
        }
    }

    async fn checkpoint(&self) -> Result<Option<StoredCheckpoint>, ReadError> {
        self.inner.checkpoint().await
    }

    async fn tile(&self, key: TileKey) -> Result<Option<Vec<u8>>, ReadError> {
        self.inner.tile(key).await
    }

    async fn bundle(&self, index: u64) -> Result<Option<Vec<u8>>, ReadError> {
        self.inner.bundle(index).await
    }

    async fn sidecar(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>, ReadError> {
        self.inner.sidecar(table, key).await
    }
}
