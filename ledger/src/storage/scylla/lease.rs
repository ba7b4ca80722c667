//! The sequencer's lease and its epoch, the fencing token of every round.
//!
//! The lease lives in the log's state row (`epoch`, `holder`, `lease_until_ms`), so that a
//! takeover and a round's transaction are serialised by the same Paxos instance: there is no
//! moment when a round could pass its check against one epoch while a takeover installs
//! another.
//!
//! - **Take** ([`ScyllaStorage::try_acquire_lease`]): read the row; if the lease has expired
//!   (or was released, or never taken), `UPDATE ... SET epoch = e + 1, holder, lease_until_ms
//!   IF epoch = e AND holder = h AND lease_until_ms = u` with the values read. Every takeover
//!   increments the epoch, also when the same holder name comes back (its previous
//!   incarnation may still be running). The handle then conditions its rounds on `e + 1`.
//! - **Renew** ([`ScyllaStorage::renew_lease`]): `SET lease_until_ms IF epoch = ? AND holder
//!   = ?`; refused, the lease is lost ([`LeaseError::Lost`]).
//! - **Wait** ([`ScyllaStorage::acquire_lease`]): a standby sequencer polls until the holder's
//!   lease expires, then takes it and continues from the durable state (`load`, which also
//!   finishes a round the previous holder left half applied).
//!
//! Safety does not rest on clocks: a holder whose lease expired keeps committing only until
//! someone takes over, and from then on every round it sends is refused by the epoch
//! condition. Clocks only decide *when* a standby may take over; with skew between machines
//! well under the lease time, a live holder that renews in time is not displaced.

use std::time::Duration;

use super::{ScyllaStorage, applied, backend, now_ms, to_i64};
use crate::storage::{BackendError, ReadError};

/// Shortest lease accepted: shorter ones expire between two rounds.
pub const LEASE_TTL_MIN: Duration = Duration::from_millis(200);

/// Longest lease accepted.
pub const LEASE_TTL_MAX: Duration = Duration::from_secs(3_600);

/// A lease held by this process: its epoch fences the storage handle's rounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    holder: String,
    epoch: u64,
    until_ms: i64,
    ttl: Duration,
}

impl Lease {
    /// The holder's name.
    #[must_use]
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// The fencing epoch (1 for the first lease of a log).
    #[must_use]
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// When the lease expires unless renewed (milliseconds since the Unix epoch, by this
    /// machine's clock).
    #[must_use]
    pub fn until_ms(&self) -> i64 {
        self.until_ms
    }

    /// How long each take or renewal lasts.
    #[must_use]
    pub fn ttl(&self) -> Duration {
        self.ttl
    }
}

/// Why a lease operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// Another holder's lease is live.
    #[error("the log's lease is held by {holder:?} (epoch {epoch}) for {remaining_ms} ms more")]
    Held {
        /// The current holder.
        holder: String,
        /// Its epoch.
        epoch: u64,
        /// Milliseconds until it expires, by this machine's clock.
        remaining_ms: i64,
    },
    /// The lease was taken over (or its row changed): this holder's epoch is stale.
    #[error("the lease of epoch {epoch} was lost to a takeover")]
    Lost {
        /// The epoch that was lost.
        epoch: u64,
    },
    /// The holder name or time-to-live is not acceptable.
    #[error("invalid lease request: {0}")]
    Invalid(String),
    /// The backend failed; the outcome is unknown (read the row again before acting).
    #[error("storage backend failed during a lease operation")]
    Backend(#[source] BackendError),
}

fn lease_backend(error: ReadError) -> LeaseError {
    match error {
        ReadError::Backend(e) => LeaseError::Backend(e),
        ReadError::Corrupt(reason) => LeaseError::Backend(reason.into()),
    }
}

fn ttl_ms(ttl: Duration) -> Result<i64, LeaseError> {
    if !(LEASE_TTL_MIN..=LEASE_TTL_MAX).contains(&ttl) {
        return Err(LeaseError::Invalid(format!(
            "time-to-live {ttl:?} outside {LEASE_TTL_MIN:?}..={LEASE_TTL_MAX:?}"
        )));
    }
    i64::try_from(ttl.as_millis()).map_err(|_| LeaseError::Invalid("time-to-live".into()))
}

impl ScyllaStorage {
    /// Takes the lease if it is free or expired, incrementing the epoch; this handle (and its
    /// clones) then condition their rounds on the new epoch. Call `load` afterwards and
    /// continue from the state it returns.
    ///
    /// # Errors
    /// [`LeaseError::Held`] if another holder's lease is live (also if a concurrent contender
    /// won), `Invalid` for an empty holder or a time-to-live out of bounds, `Backend`.
    pub async fn try_acquire_lease(
        &self,
        holder: &str,
        ttl: Duration,
    ) -> Result<Lease, LeaseError> {
        if holder.is_empty() || holder.len() > 256 {
            return Err(LeaseError::Invalid(
                "holder name must be 1..=256 bytes".into(),
            ));
        }
        let ttl_ms = ttl_ms(ttl)?;
        let row = self.read_row().await.map_err(lease_backend)?;
        let now = now_ms();
        if !row.holder.is_empty() && row.lease_until_ms > now {
            return Err(LeaseError::Held {
                holder: row.holder,
                epoch: row.epoch,
                remaining_ms: row.lease_until_ms - now,
            });
        }
        let epoch = row.epoch + 1;
        let until_ms = now.saturating_add(ttl_ms);
        let values = (
            to_i64(epoch, "epoch").map_err(LeaseError::Backend)?,
            holder,
            until_ms,
            to_i64(row.epoch, "epoch").map_err(LeaseError::Backend)?,
            row.holder.as_str(),
            row.lease_until_ms,
        );
        let result = self
            .cql()
            .execute_unpaged(&self.statements().take_lease, values)
            .await
            .map_err(|e| LeaseError::Backend(backend(e)))?;
        if !applied(result).map_err(LeaseError::Backend)? {
            // A contender (or a renewal) changed the row since it was read.
            let row = self.read_row().await.map_err(lease_backend)?;
            return Err(LeaseError::Held {
                holder: row.holder,
                epoch: row.epoch,
                remaining_ms: row.lease_until_ms - now_ms(),
            });
        }
        self.set_fencing_epoch(epoch);
        tracing::info!(holder, epoch, "took the log's lease");
        Ok(Lease {
            holder: holder.to_owned(),
            epoch,
            until_ms,
            ttl,
        })
    }

    /// Takes the lease, waiting for the current holder's to expire (polling at a quarter of
    /// `ttl`); waits as long as another holder keeps renewing.
    ///
    /// # Errors
    /// As [`Self::try_acquire_lease`], except `Held`.
    pub async fn acquire_lease(&self, holder: &str, ttl: Duration) -> Result<Lease, LeaseError> {
        loop {
            match self.try_acquire_lease(holder, ttl).await {
                Err(LeaseError::Held { remaining_ms, .. }) => {
                    let remaining = Duration::from_millis(u64::try_from(remaining_ms).unwrap_or(0));
                    let pause = remaining.clamp(Duration::from_millis(20), ttl / 4);
                    tokio::time::sleep(pause).await;
                }
                other => return other,
            }
        }
    }

    /// Extends the lease by its time-to-live from now.
    ///
    /// # Errors
    /// [`LeaseError::Lost`] if another holder took over, `Backend`.
    pub async fn renew_lease(&self, lease: &Lease) -> Result<Lease, LeaseError> {
        let until_ms = now_ms().saturating_add(ttl_ms(lease.ttl)?);
        let values = (
            until_ms,
            to_i64(lease.epoch, "epoch").map_err(LeaseError::Backend)?,
            lease.holder.as_str(),
        );
        let result = self
            .cql()
            .execute_unpaged(&self.statements().renew_lease, values)
            .await
            .map_err(|e| LeaseError::Backend(backend(e)))?;
        if !applied(result).map_err(LeaseError::Backend)? {
            return Err(LeaseError::Lost { epoch: lease.epoch });
        }
        Ok(Lease {
            until_ms,
            ..lease.clone()
        })
    }

    /// Gives the lease up (a clean shutdown): a standby may take it at once. The epoch stays
    /// until the next takeover increments it.
    ///
    /// # Errors
    /// [`LeaseError::Lost`] if it was already taken over, `Backend`.
    pub async fn release_lease(&self, lease: Lease) -> Result<(), LeaseError> {
        let values = (
            to_i64(lease.epoch, "epoch").map_err(LeaseError::Backend)?,
            lease.holder.as_str(),
        );
        let result = self
            .cql()
            .execute_unpaged(&self.statements().release_lease, values)
            .await
            .map_err(|e| LeaseError::Backend(backend(e)))?;
        if !applied(result).map_err(LeaseError::Backend)? {
            return Err(LeaseError::Lost { epoch: lease.epoch });
        }
        Ok(())
    }
}
