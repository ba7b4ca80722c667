//! The directory of organisations, members and tokens, kept in the node's store as JSON
//! records in three tables (plus an index of each member's tokens). Writes are serialised by
//! one lock, so "create if absent" is decided once even under concurrent requests; each write
//! is durable when it returns. Token checks read the store every time: a revocation takes
//! effect on the next request.

use crate::paging::{Page, cursor};
use std::collections::BTreeSet;
use std::sync::Arc;

use ingest::{Clock, IngestStorage};
use ledger::storage::{CommitError, ReadError, SidecarRecord};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::model::{
    Member, MemberId, OrgId, Organisation, Principal, Role, TokenRecord, is_country_code,
};
use super::token::{ApiToken, TokenId};

/// Organisations by id.
pub const ORGS: &str = "api_orgs";
/// Members by `org 0x00 member`.
pub const MEMBERS: &str = "api_members";
/// Token records by the 8 id bytes.
pub const TOKENS: &str = "api_tokens";
/// Index: `org 0x00 member 0x00 token id` → empty.
pub const MEMBER_TOKENS: &str = "api_member_tokens";
/// Longest display name or label, in characters.
pub const NAME_CHARS_MAX: usize = 200;
/// Most records one list returns.
pub const LIST_MAX: usize = 1_000;

/// Why a directory operation failed.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    /// The thing to create exists already.
    #[error("{0} already exists")]
    Exists(String),
    /// The thing named does not exist.
    #[error("{0} does not exist")]
    NotFound(String),
    /// A field is out of its range.
    #[error("{0}")]
    Invalid(String),
    /// The store could not be read.
    #[error("reading the directory failed")]
    Read(#[from] ReadError),
    /// The store could not be written (nothing was written, or the outcome is unknown and a
    /// retry is safe: every write is a whole-record put).
    #[error("writing the directory failed")]
    Write(#[from] CommitError),
    /// A stored record does not decode.
    #[error("a stored {table} record is corrupt: {reason}")]
    Corrupt {
        /// The table.
        table: &'static str,
        /// Why.
        reason: String,
    },
    /// No randomness for a new token.
    #[error("no system randomness for a token: {0}")]
    Random(String),
}

/// Why a presented token was not accepted. The HTTP layer answers all of these alike (401),
/// so a caller learns nothing about which tokens exist.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Not in the token format.
    #[error("malformed token")]
    Malformed,
    /// No such token, or the secret does not match.
    #[error("unknown token")]
    Unknown,
    /// The token was revoked.
    #[error("revoked token")]
    Revoked,
    /// Its member no longer exists.
    #[error("the token's member does not exist")]
    NoMember,
    /// The store failed: not the caller's fault (503).
    #[error(transparent)]
    Directory(#[from] DirectoryError),
}

/// The directory over a store `S`.
#[derive(Debug)]
pub struct Directory<S> {
    storage: S,
    clock: Arc<dyn Clock>,
    write: Arc<tokio::sync::Mutex<()>>,
}

impl<S: Clone> Clone for Directory<S> {
    fn clone(&self) -> Self {
        Self {
            storage: self.storage.clone(),
            clock: self.clock.clone(),
            write: self.write.clone(),
        }
    }
}

/// The store key of a record `id` owned by `org`: `org 0x00 id` (identifiers never hold 0x00,
/// so an organisation's records are one key range).
#[must_use]
pub fn org_key(org: &OrgId, id: &str) -> Vec<u8> {
    let mut key = org.as_str().as_bytes().to_vec();
    key.push(0);
    key.extend_from_slice(id.as_bytes());
    key
}

fn member_key(org: &OrgId, member: &MemberId) -> Vec<u8> {
    org_key(org, member.as_str())
}

/// `[prefix, prefix + 0xff)`: every key that starts with `prefix` (identifiers are ASCII).
fn prefix_range(prefix: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let mut to = prefix.to_vec();
    to.push(0xff);
    (prefix.to_vec(), to)
}

fn check_text(what: &str, text: &str, allow_empty: bool) -> Result<(), DirectoryError> {
    let chars = text.chars().count();
    if (!allow_empty && text.trim().is_empty())
        || chars > NAME_CHARS_MAX
        || text.chars().any(char::is_control)
    {
        return Err(DirectoryError::Invalid(format!(
            "{what} must be {} to {NAME_CHARS_MAX} characters without control characters",
            usize::from(!allow_empty)
        )));
    }
    Ok(())
}

impl<S: IngestStorage> Directory<S> {
    /// The directory over `storage`.
    pub fn new(storage: S, clock: Arc<dyn Clock>) -> Self {
        Self {
            storage,
            clock,
            write: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    fn get<T: DeserializeOwned>(
        &self,
        table: &'static str,
        key: &[u8],
    ) -> Result<Option<T>, DirectoryError> {
        self.storage
            .read(table, key)?
            .map(|bytes| {
                serde_json::from_slice(&bytes).map_err(|e| DirectoryError::Corrupt {
                    table,
                    reason: e.to_string(),
                })
            })
            .transpose()
    }

    fn list<T: DeserializeOwned>(
        &self,
        table: &'static str,
        from: &[u8],
        to: &[u8],
    ) -> Result<Vec<T>, DirectoryError> {
        self.storage
            .scan(table, from, to, LIST_MAX)?
            .into_iter()
            .map(|(_, bytes)| {
                serde_json::from_slice(&bytes).map_err(|e| DirectoryError::Corrupt {
                    table,
                    reason: e.to_string(),
                })
            })
            .collect()
    }

    fn record<T: Serialize>(table: &str, key: Vec<u8>, value: &T) -> SidecarRecord {
        SidecarRecord {
            table: table.to_owned(),
            key,
            // Serialising these plain structs cannot fail.
            value: serde_json::to_vec(value).unwrap_or_default(),
        }
    }

    /// Creates an organisation.
    ///
    /// # Errors
    /// [`DirectoryError::Exists`] if the id is taken, `Invalid` for a bad name or country.
    pub async fn create_org(
        &self,
        id: OrgId,
        name: &str,
        country: &str,
    ) -> Result<Organisation, DirectoryError> {
        check_text("an organisation's name", name, false)?;
        if !is_country_code(country) {
            return Err(DirectoryError::Invalid(format!(
                "{country:?} is not an ISO 3166-1 alpha-2 country code (two upper-case letters)"
            )));
        }
        let _guard = self.write.lock().await;
        if self.org(&id)?.is_some() {
            return Err(DirectoryError::Exists(format!("organisation {id}")));
        }
        let org = Organisation {
            id,
            name: name.to_owned(),
            country: country.to_owned(),
            created_ms: self.clock.now_ms(),
        };
        let key = org.id.as_str().as_bytes().to_vec();
        self.storage
            .put_records(vec![Self::record(ORGS, key, &org)])
            .await?;
        Ok(org)
    }

    /// An organisation.
    ///
    /// # Errors
    /// [`DirectoryError`] if the store fails.
    pub fn org(&self, id: &OrgId) -> Result<Option<Organisation>, DirectoryError> {
        self.get(ORGS, id.as_str().as_bytes())
    }

    /// Organisations in id order, after `after`, at most [`LIST_MAX`].
    ///
    /// # Errors
    /// [`DirectoryError`] if the store fails.
    pub fn orgs(&self, after: Option<&OrgId>) -> Result<Vec<Organisation>, DirectoryError> {
        let from = after.map_or_else(Vec::new, |a| {
            let mut key = a.as_str().as_bytes().to_vec();
            key.push(0);
            key
        });
        self.list(ORGS, &from, &[0xff])
    }

    /// Adds a member to an existing organisation.
    ///
    /// # Errors
    /// `NotFound` for an unknown organisation, `Exists` for a taken member id, `Invalid` for no
    /// role or a bad name.
    pub async fn add_member(
        &self,
        org: &OrgId,
        id: MemberId,
        name: &str,
        roles: BTreeSet<Role>,
    ) -> Result<Member, DirectoryError> {
        check_text("a member's name", name, false)?;
        if roles.is_empty() {
            return Err(DirectoryError::Invalid(
                "a member holds at least one role".to_owned(),
            ));
        }
        let _guard = self.write.lock().await;
        if self.org(org)?.is_none() {
            return Err(DirectoryError::NotFound(format!("organisation {org}")));
        }
        if self.member(org, &id)?.is_some() {
            return Err(DirectoryError::Exists(format!("member {id} of {org}")));
        }
        let member = Member {
            org: org.clone(),
            id,
            name: name.to_owned(),
            roles,
            created_ms: self.clock.now_ms(),
        };
        let key = member_key(org, &member.id);
        self.storage
            .put_records(vec![Self::record(MEMBERS, key, &member)])
            .await?;
        Ok(member)
    }

    /// A member.
    ///
    /// # Errors
    /// [`DirectoryError`] if the store fails.
    pub fn member(&self, org: &OrgId, id: &MemberId) -> Result<Option<Member>, DirectoryError> {
        self.get(MEMBERS, &member_key(org, id))
    }

    /// A page of an organisation's members in id order, and the cursor of the next page.
    ///
    /// # Errors
    /// [`DirectoryError`] if the store fails.
    pub fn members(
        &self,
        org: &OrgId,
        page: &Page,
    ) -> Result<(Vec<Member>, Option<String>), DirectoryError> {
        let mut prefix = org.as_str().as_bytes().to_vec();
        prefix.push(0);
        let (_, to) = prefix_range(&prefix);
        let rows = self
            .storage
            .scan(MEMBERS, &page.start(&prefix), &to, page.limit + 1)?;
        let more = rows.len() > page.limit;
        let rows = &rows[..rows.len().min(page.limit)];
        let members = rows
            .iter()
            .map(|(_, bytes)| {
                serde_json::from_slice(bytes).map_err(|e| DirectoryError::Corrupt {
                    table: MEMBERS,
                    reason: e.to_string(),
                })
            })
            .collect::<Result<Vec<Member>, _>>()?;
        let next = more
            .then(|| rows.last().map(|(key, _)| cursor(key)))
            .flatten();
        Ok((members, next))
    }

    /// Issues a token for a member; the returned [`ApiToken`] is the only time its secret
    /// exists outside its holder.
    ///
    /// # Errors
    /// `NotFound` for an unknown member, `Invalid` for a bad label.
    pub async fn issue_token(
        &self,
        org: &OrgId,
        member: &MemberId,
        label: &str,
    ) -> Result<(TokenRecord, ApiToken), DirectoryError> {
        check_text("a token's label", label, true)?;
        let _guard = self.write.lock().await;
        if self.member(org, member)?.is_none() {
            return Err(DirectoryError::NotFound(format!(
                "member {member} of {org}"
            )));
        }
        let token = loop {
            let token = ApiToken::generate().map_err(|e| DirectoryError::Random(e.to_string()))?;
            // 64 random bits: a collision is all but impossible, and checked anyway.
            if self.storage.read(TOKENS, &token.id.0)?.is_none() {
                break token;
            }
        };
        let record = TokenRecord {
            id: token.id,
            org: org.clone(),
            member: member.clone(),
            label: label.to_owned(),
            secret_hash: token.secret_hash(),
            created_ms: self.clock.now_ms(),
            revoked_ms: None,
        };
        let mut index = member_key(org, member);
        index.push(0);
        index.extend_from_slice(&token.id.0);
        self.storage
            .put_records(vec![
                Self::record(TOKENS, token.id.0.to_vec(), &record),
                SidecarRecord {
                    table: MEMBER_TOKENS.to_owned(),
                    key: index,
                    value: Vec::new(),
                },
            ])
            .await?;
        Ok((record, token))
    }

    /// A token's record.
    ///
    /// # Errors
    /// [`DirectoryError`] if the store fails.
    pub fn token(&self, id: TokenId) -> Result<Option<TokenRecord>, DirectoryError> {
        self.get(TOKENS, &id.0)
    }

    /// A page of a member's tokens (revoked ones included) in id order, and the cursor of the
    /// next page.
    ///
    /// # Errors
    /// [`DirectoryError`] if the store fails.
    pub fn tokens(
        &self,
        org: &OrgId,
        member: &MemberId,
        page: &Page,
    ) -> Result<(Vec<TokenRecord>, Option<String>), DirectoryError> {
        let mut prefix = member_key(org, member);
        prefix.push(0);
        let (_, to) = prefix_range(&prefix);
        let rows = self
            .storage
            .scan(MEMBER_TOKENS, &page.start(&prefix), &to, page.limit + 1)?;
        let more = rows.len() > page.limit;
        let rows = &rows[..rows.len().min(page.limit)];
        let mut out = Vec::with_capacity(rows.len());
        for (key, _) in rows {
            if let Some(record) = self.get::<TokenRecord>(TOKENS, &key[prefix.len()..])? {
                out.push(record);
            }
        }
        let next = more
            .then(|| rows.last().map(|(key, _)| cursor(key)))
            .flatten();
        Ok((out, next))
    }

    /// Revokes a token (revoking it again changes nothing).
    ///
    /// # Errors
    /// `NotFound` for an unknown token.
    pub async fn revoke_token(&self, id: TokenId) -> Result<TokenRecord, DirectoryError> {
        let _guard = self.write.lock().await;
        let mut record = self
            .token(id)?
            .ok_or_else(|| DirectoryError::NotFound(format!("token {id}")))?;
        if record.revoked_ms.is_none() {
            record.revoked_ms = Some(self.clock.now_ms());
            self.storage
                .put_records(vec![Self::record(TOKENS, id.0.to_vec(), &record)])
                .await?;
        }
        Ok(record)
    }

    /// Who presents `token` (the text after `Bearer `).
    ///
    /// # Errors
    /// [`AuthError`] saying why it is not accepted.
    pub fn authenticate(&self, token: &str) -> Result<Principal, AuthError> {
        let token: ApiToken = token.parse().map_err(|_| AuthError::Malformed)?;
        let record = self.token(token.id)?.ok_or(AuthError::Unknown)?;
        if !token.matches(&record.secret_hash) {
            return Err(AuthError::Unknown);
        }
        if record.revoked_ms.is_some() {
            return Err(AuthError::Revoked);
        }
        let member = self
            .member(&record.org, &record.member)?
            .ok_or(AuthError::NoMember)?;
        Ok(Principal {
            org: record.org,
            member: record.member,
            roles: member.roles,
            token: record.id,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use ingest::ManualClock;
    use ledger::merkle::empty_root;
    use ledger::storage::redb::RedbStorage;

    use super::*;

    fn directory() -> (tempfile::TempDir, Directory<RedbStorage>) {
        let dir = tempfile::tempdir().expect("temp dir");
        let storage =
            RedbStorage::open(&dir.path().join("store.redb"), empty_root().0).expect("store");
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(1_000));
        (dir, Directory::new(storage, clock))
    }

    fn id<T: std::str::FromStr>(text: &str) -> T
    where
        T::Err: std::fmt::Debug,
    {
        text.parse().expect("identifier")
    }

    #[tokio::test]
    async fn a_token_authenticates_its_member_until_it_is_revoked() {
        let (_dir, directory) = directory();
        let coop: OrgId = id("menghai-coop");
        directory
            .create_org(coop.clone(), "勐海芒果合作社", "CN")
            .await
            .expect("create");
        let li: MemberId = id("li.wei");
        directory
            .add_member(
                &coop,
                li.clone(),
                "Li Wei",
                BTreeSet::from([Role::Producer]),
            )
            .await
            .expect("member");
        let (record, token) = directory
            .issue_token(&coop, &li, "laptop")
            .await
            .expect("token");
        let principal = directory.authenticate(&token.reveal()).expect("valid");
        assert_eq!(principal.org, coop);
        assert!(principal.has(Role::Producer) && !principal.has(Role::Admin));
        assert_eq!(
            directory
                .tokens(&coop, &li, &Page::of(None, None).expect("page"))
                .expect("list")
                .0,
            vec![record.clone()]
        );

        // A forged secret under a real id, a malformed token.
        let forged = ApiToken::from_parts(token.id, [0; 32]).reveal();
        assert!(matches!(
            directory.authenticate(&forged),
            Err(AuthError::Unknown)
        ));
        assert!(matches!(
            directory.authenticate("Bearer x"),
            Err(AuthError::Malformed)
        ));

        directory.revoke_token(record.id).await.expect("revoke");
        assert!(matches!(
            directory.authenticate(&token.reveal()),
            Err(AuthError::Revoked)
        ));
        // Revoking again keeps the first revocation time.
        let again = directory.revoke_token(record.id).await.expect("revoke");
        assert_eq!(again.revoked_ms, Some(1_000));
    }

    #[tokio::test]
    async fn creation_refuses_duplicates_unknown_parents_and_bad_fields() {
        let (_dir, directory) = directory();
        let coop: OrgId = id("coop");
        directory
            .create_org(coop.clone(), "Coop", "TH")
            .await
            .expect("create");
        assert!(matches!(
            directory.create_org(coop.clone(), "Again", "TH").await,
            Err(DirectoryError::Exists(_))
        ));
        for (name, country) in [
            ("", "TH"),
            ("Coop", "th"),
            ("Coop", "THA"),
            ("a\u{7}", "TH"),
        ] {
            assert!(
                matches!(
                    directory.create_org(id("other"), name, country).await,
                    Err(DirectoryError::Invalid(_))
                ),
                "{name:?} {country:?}"
            );
        }
        assert!(matches!(
            directory
                .add_member(
                    &id("nobody"),
                    id("x1"),
                    "X",
                    BTreeSet::from([Role::Auditor])
                )
                .await,
            Err(DirectoryError::NotFound(_))
        ));
        assert!(matches!(
            directory
                .add_member(&coop, id("x1"), "X", BTreeSet::new())
                .await,
            Err(DirectoryError::Invalid(_))
        ));
        assert!(matches!(
            directory.issue_token(&coop, &id("ghost"), "").await,
            Err(DirectoryError::NotFound(_))
        ));
        assert_eq!(directory.orgs(None).expect("list").len(), 1);
        assert!(directory.org(&id("other")).expect("read").is_none());
    }
}
