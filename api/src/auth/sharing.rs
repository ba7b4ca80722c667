//! Partner sharing: an organisation shares its records with another (a cooperative with the
//! exporter that packs its mangoes), and may stop. Kept as JSON records in two tables, the
//! same record under both keys: `owner 0x00 partner` ("whom it shares with") and the reverse
//! index `partner 0x00 owner` ("who shares with it"), so the question every read asks —
//! which organisations shared with the caller's — is one range scan ([`Partners::shared_with`]).
//!
//! The store has no delete: ending a share rewrites both records with `ended_ms`, and sharing
//! again rewrites them active. Both records are written in one durable transaction, under one
//! lock, so the two directions never disagree. Each direction holds at most [`PARTNERS_MAX`]
//! organisations (ended shares included), which bounds the scan.

use std::sync::Arc;

use ingest::{Clock, IngestStorage};
use ledger::storage::SidecarRecord;
use serde::{Deserialize, Serialize};

use super::directory::{DirectoryError, ORGS, org_key};
use super::model::OrgId;

/// Shares by `owner 0x00 partner`.
pub const PARTNERS: &str = "api_partners";
/// The reverse index: the same records by `partner 0x00 owner`.
pub const PARTNERS_BY_PARTNER: &str = "api_partners_by_partner";
/// Most organisations one organisation has shared with, and most that have shared with one
/// organisation (ended shares included).
pub const PARTNERS_MAX: usize = 1_000;

/// One organisation sharing its records with another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Partnership {
    /// Whose records are shared.
    pub owner: OrgId,
    /// Who sees them.
    pub partner: OrgId,
    /// When the share (last) began (Unix ms).
    pub since_ms: u64,
    /// When it ended, if it did (Unix ms).
    pub ended_ms: Option<u64>,
}

impl Partnership {
    /// Whether the partner sees the owner's records now.
    #[must_use]
    pub fn is_active(&self) -> bool {
        self.ended_ms.is_none()
    }
}

/// The partner store over `S`.
#[derive(Debug)]
pub struct Partners<S> {
    storage: S,
    clock: Arc<dyn Clock>,
    write: Arc<tokio::sync::Mutex<()>>,
}

impl<S: Clone> Clone for Partners<S> {
    fn clone(&self) -> Self {
        Self {
            storage: self.storage.clone(),
            clock: self.clock.clone(),
            write: self.write.clone(),
        }
    }
}

fn corrupt(e: &serde_json::Error) -> DirectoryError {
    DirectoryError::Corrupt {
        table: PARTNERS,
        reason: e.to_string(),
    }
}

impl<S: IngestStorage> Partners<S> {
    /// The store over `storage`.
    pub fn new(storage: S, clock: Arc<dyn Clock>) -> Self {
        Self {
            storage,
            clock,
            write: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    /// Every share record of one direction for `org` (`table` [`PARTNERS`]: whom it shares
    /// with; [`PARTNERS_BY_PARTNER`]: who shares with it), ended ones included.
    fn rows(&self, table: &str, org: &OrgId) -> Result<Vec<Partnership>, DirectoryError> {
        let from = org_key(org, "");
        let mut to = from.clone();
        to.push(0xff);
        self.storage
            .scan(table, &from, &to, PARTNERS_MAX)?
            .iter()
            .map(|(_, value)| serde_json::from_slice(value).map_err(|e| corrupt(&e)))
            .collect()
    }

    fn get(&self, owner: &OrgId, partner: &OrgId) -> Result<Option<Partnership>, DirectoryError> {
        self.storage
            .read(PARTNERS, &org_key(owner, partner.as_str()))?
            .map(|value| serde_json::from_slice(&value).map_err(|e| corrupt(&e)))
            .transpose()
    }

    /// Writes `share` under both keys in one durable transaction.
    async fn put(&self, share: &Partnership) -> Result<(), DirectoryError> {
        // Serialising this plain struct cannot fail.
        let value = serde_json::to_vec(share).unwrap_or_default();
        self.storage
            .put_records(vec![
                SidecarRecord {
                    table: PARTNERS.to_owned(),
                    key: org_key(&share.owner, share.partner.as_str()),
                    value: value.clone(),
                },
                SidecarRecord {
                    table: PARTNERS_BY_PARTNER.to_owned(),
                    key: org_key(&share.partner, share.owner.as_str()),
                    value,
                },
            ])
            .await?;
        Ok(())
    }

    /// `owner` shares its records with `partner` from now on.
    ///
    /// # Errors
    /// `Invalid` for sharing with itself or beyond [`PARTNERS_MAX`], `NotFound` for an unknown
    /// partner, `Exists` if it shares with `partner` already.
    pub async fn share(
        &self,
        owner: &OrgId,
        partner: &OrgId,
    ) -> Result<Partnership, DirectoryError> {
        if owner == partner {
            return Err(DirectoryError::Invalid(
                "an organisation sees its own records; it cannot share with itself".to_owned(),
            ));
        }
        let _guard = self.write.lock().await;
        if self
            .storage
            .read(ORGS, partner.as_str().as_bytes())?
            .is_none()
        {
            return Err(DirectoryError::NotFound(format!("organisation {partner}")));
        }
        match self.get(owner, partner)? {
            Some(share) if share.is_active() => {
                return Err(DirectoryError::Exists(format!(
                    "{owner}'s share with {partner}"
                )));
            }
            Some(_) => {}
            None => {
                if self.rows(PARTNERS, owner)?.len() >= PARTNERS_MAX {
                    return Err(DirectoryError::Invalid(format!(
                        "{owner} has shared with {PARTNERS_MAX} organisations, the most allowed"
                    )));
                }
                if self.rows(PARTNERS_BY_PARTNER, partner)?.len() >= PARTNERS_MAX {
                    return Err(DirectoryError::Invalid(format!(
                        "{PARTNERS_MAX} organisations share with {partner}, the most allowed"
                    )));
                }
            }
        }
        let share = Partnership {
            owner: owner.clone(),
            partner: partner.clone(),
            since_ms: self.clock.now_ms(),
            ended_ms: None,
        };
        self.put(&share).await?;
        Ok(share)
    }

    /// `owner` stops sharing with `partner`; the partner's next read no longer sees its records.
    ///
    /// # Errors
    /// `NotFound` if `owner` does not share with `partner`.
    pub async fn unshare(
        &self,
        owner: &OrgId,
        partner: &OrgId,
    ) -> Result<Partnership, DirectoryError> {
        let _guard = self.write.lock().await;
        let mut share = self
            .get(owner, partner)?
            .filter(Partnership::is_active)
            .ok_or_else(|| DirectoryError::NotFound(format!("{owner}'s share with {partner}")))?;
        share.ended_ms = Some(self.clock.now_ms());
        self.put(&share).await?;
        Ok(share)
    }

    /// The active shares `owner` gives, in partner order.
    ///
    /// # Errors
    /// [`DirectoryError`] if the store fails.
    pub fn shares_of(&self, owner: &OrgId) -> Result<Vec<Partnership>, DirectoryError> {
        let mut rows = self.rows(PARTNERS, owner)?;
        rows.retain(Partnership::is_active);
        Ok(rows)
    }

    /// The active shares given to `partner`, in owner order.
    ///
    /// # Errors
    /// [`DirectoryError`] if the store fails.
    pub fn shares_to(&self, partner: &OrgId) -> Result<Vec<Partnership>, DirectoryError> {
        let mut rows = self.rows(PARTNERS_BY_PARTNER, partner)?;
        rows.retain(Partnership::is_active);
        Ok(rows)
    }

    /// The organisations that share their records with `org` now (one range scan).
    ///
    /// # Errors
    /// [`DirectoryError`] if the store fails.
    pub fn shared_with(&self, org: &OrgId) -> Result<Vec<OrgId>, DirectoryError> {
        Ok(self.shares_to(org)?.into_iter().map(|s| s.owner).collect())
    }
}

#[cfg(test)]
mod tests {
    use ingest::ManualClock;
    use ledger::merkle::empty_root;
    use ledger::storage::redb::RedbStorage;

    use super::*;
    use crate::auth::Directory;

    fn id(text: &str) -> OrgId {
        text.parse().expect("organisation id")
    }

    #[tokio::test]
    async fn a_share_is_seen_from_both_sides_until_it_ends_and_can_begin_again() {
        let dir = tempfile::tempdir().expect("temp dir");
        let storage =
            RedbStorage::open(&dir.path().join("store.redb"), empty_root().0).expect("store");
        let clock = Arc::new(ManualClock::new(1_000));
        let directory = Directory::new(storage.clone(), clock.clone());
        for org in ["coop", "packer", "trader"] {
            directory
                .create_org(id(org), org, "CN")
                .await
                .expect("organisation");
        }
        let partners = Partners::new(storage, clock.clone());
        let (coop, packer, trader) = (id("coop"), id("packer"), id("trader"));

        partners.share(&coop, &packer).await.expect("share");
        partners.share(&trader, &packer).await.expect("share");
        assert_eq!(
            partners.shared_with(&packer).expect("scan"),
            vec![coop.clone(), trader.clone()]
        );
        assert_eq!(partners.shares_of(&coop).expect("scan").len(), 1);
        assert!(partners.shared_with(&coop).expect("scan").is_empty());
        assert!(matches!(
            partners.share(&coop, &packer).await,
            Err(DirectoryError::Exists(_))
        ));
        assert!(matches!(
            partners.share(&coop, &coop).await,
            Err(DirectoryError::Invalid(_))
        ));
        assert!(matches!(
            partners.share(&coop, &id("nobody")).await,
            Err(DirectoryError::NotFound(_))
        ));

        clock.set(2_000);
        let ended = partners.unshare(&coop, &packer).await.expect("unshare");
        assert_eq!(ended.ended_ms, Some(2_000));
        assert_eq!(partners.shared_with(&packer).expect("scan"), vec![trader]);
        assert!(partners.shares_of(&coop).expect("scan").is_empty());
        assert!(matches!(
            partners.unshare(&coop, &packer).await,
            Err(DirectoryError::NotFound(_))
        ));

        clock.set(3_000);
        let again = partners.share(&coop, &packer).await.expect("share again");
        assert_eq!((again.since_ms, again.ended_ms), (3_000, None));
        assert!(partners.shared_with(&packer).expect("scan").contains(&coop));
    }
}
