//! EPCIS 2.0 capture (EPCIS 2.0 §8.2, REST binding `POST /capture`): a document is parsed and
//! every event validated, hashed and checked for duplicates before anything is written; then a
//! capture job (stored, so it survives a restart) anchors each event as one `TraceEvent` entry
//! committed with its records.
//!
//! Decisions:
//! - **Duplicates are decided at one place per node.** Every event a job will write is
//!   *claimed* (its digest and `eventID`) under one lock, after the store is checked and before
//!   the job starts, and released when the job ends (by then the event is stored or failed).
//!   A second capture of the same event, concurrent or later, meets the claim or the stored
//!   record and is refused with 409. One node owns its store (redb allows one process), so
//!   this is the whole story; a scale-out store would need the check where the record commits.
//! - **A failed job can be finished by sending the same document again.** Events stored by a
//!   job that did not succeed (a storage failure, or a restart while it ran) are not
//!   duplicates for a capture of the same document (same event hashes and ids in the same
//!   order, [`fingerprint`]): that capture writes only what is missing. Any other capture that
//!   repeats a stored event is refused.
//! - **No rollback after the fact.** Validation is all-or-nothing (nothing is written for a
//!   refused document); once events are anchored in the append-only log they stay, so the job
//!   reports `captureErrorBehaviour: proceed` and lists what landed.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use gs1::epcis::canon::parse_timestamp;
use gs1::epcis::{DocumentError, parse_document_value};
use ingest::{Clock, IngestStorage};
use ledger::merkle::LeafIndex;
use ledger::sequencer::{SequencerHandle, SubmitError};
use ledger::storage::{LogStorage, SidecarRecord};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use tokio::task::JoinSet;

use super::store::{
    EVENTS, EventCursor, EventStore, INDEXED_IDENTIFIERS_MAX, PreparedEvent, StoreError,
    StoredEvent, biz_step_token, log_event_type, terms_of,
};
use crate::auth::OrgId;
use crate::http::hex;

/// Capture jobs by id.
pub const JOBS: &str = "epcis_capture_jobs";
/// Capture jobs of an organisation: `org 0x00 created ms(8) id` -> empty.
pub const JOBS_BY_ORG: &str = "epcis_capture_jobs_by_org";
/// Most events one capture takes (`GS1-EPCIS-Capture-Limit`); more answers 413.
pub const CAPTURE_EVENTS_MAX: usize = 1_000;
/// Entries a job has in flight at once (they share sequencer rounds).
const SUBMIT_CHUNK: usize = 256;
/// Attempts of a retryable submission before the job reports the failure.
const SUBMIT_ATTEMPTS: u32 = 3;
/// Pause between attempts.
const SUBMIT_BACKOFF_MS: u64 = 200;

/// Where entries go: the sequencer, or a double in tests.
pub trait Anchor: Clone + Send + Sync + 'static {
    /// The durable log size (a lower bound of the index of an entry submitted now).
    fn log_size(&self) -> u64;
    /// Submits an entry with its records; the index once durable.
    fn submit(
        &self,
        entry: Vec<u8>,
        sidecars: Vec<SidecarRecord>,
    ) -> impl Future<Output = Result<LeafIndex, SubmitError>> + Send;
}

impl<S: LogStorage + Clone + Send + Sync + 'static> Anchor for SequencerHandle<S> {
    fn log_size(&self) -> u64 {
        self.durable_state().size
    }

    fn submit(
        &self,
        entry: Vec<u8>,
        sidecars: Vec<SidecarRecord>,
    ) -> impl Future<Output = Result<LeafIndex, SubmitError>> + Send {
        SequencerHandle::submit(self, entry, sidecars)
    }
}

/// Why a capture was refused (nothing was written).
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// The document or an event is invalid (400); the message names the JSON path.
    #[error("{0}")]
    Invalid(String),
    /// More events or bytes than accepted (413).
    #[error("{0}")]
    TooLarge(String),
    /// An event is already stored or being captured, or is twice in the document (409).
    #[error("{0}")]
    Duplicate(String),
    /// Too many capture jobs of the organisation are running (429).
    #[error("{0}")]
    Busy(String),
    /// A failure of ours (500).
    #[error("{0}")]
    Internal(String),
}

/// Most capture jobs one organisation may have running at once (each holds its prepared
/// events in memory until it has committed them).
pub const JOBS_RUNNING_MAX: usize = 4;

impl From<StoreError> for CaptureError {
    fn from(e: StoreError) -> Self {
        Self::Internal(format!("{e:#?}"))
    }
}

/// What became of one event of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventStatus {
    /// Not yet committed.
    Pending,
    /// Committed by this job.
    Captured,
    /// Stored by an earlier, unfinished capture of the same document.
    AlreadyCaptured,
    /// Not committed (see the job's errors).
    Failed,
}

/// One event of a capture job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobEvent {
    /// Its `eventID`.
    pub event_id: String,
    /// Its GS1 canonical event hash.
    pub event_hash: String,
    /// Its entry's index in the log, once known.
    pub log_index: Option<u64>,
    /// What became of it.
    pub status: EventStatus,
}

/// A capture job (EPCIS 2.0 REST binding, capture job resource).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaptureJob {
    /// Its id (32 hex digits).
    pub capture_id: String,
    /// The organisation that captured.
    pub owner: OrgId,
    /// When it was accepted (Unix ms).
    pub created_ms: u64,
    /// When it ended (Unix ms).
    pub finished_ms: Option<u64>,
    /// Whether it still runs.
    pub running: bool,
    /// Whether every event is stored.
    pub success: bool,
    /// What went wrong.
    pub errors: Vec<String>,
    /// The document's [`fingerprint`].
    pub fingerprint: String,
    /// Its events, in document order.
    pub events: Vec<JobEvent>,
}

impl CaptureJob {
    /// The job as the REST binding shows it (plus the events with their hashes and log
    /// indexes).
    #[must_use]
    pub fn to_json(&self) -> Value {
        let time = |ms: u64| {
            i64::try_from(ms)
                .ok()
                .and_then(|unix_ms| gs1::epcis::canon::Timestamp { unix_ms }.to_utc_millis_string())
                .map_or(Value::Null, Value::String)
        };
        let errors: Vec<Value> = self
            .errors
            .iter()
            .map(|detail| {
                json!({
                    "type": "epcisException:ImplementationException",
                    "title": "Capture failed",
                    "status": 500,
                    "detail": detail,
                })
            })
            .collect();
        let events: Vec<Value> = self
            .events
            .iter()
            .map(|e| {
                json!({
                    "eventID": e.event_id,
                    "eventHash": e.event_hash,
                    "logIndex": e.log_index,
                    "status": e.status,
                })
            })
            .collect();
        let mut job = json!({
            "captureID": self.capture_id,
            "createdAt": time(self.created_ms),
            "running": self.running,
            "success": self.success,
            "captureErrorBehaviour": "proceed",
            "errors": errors,
            "eventCount": self.events.len(),
            "events": events,
        });
        if let Some(finished) = self.finished_ms {
            job["finishedAt"] = time(finished);
        }
        job
    }
}

/// SHA-256 over the event hashes and ids of a document, in order: what makes a capture "the
/// same document again".
#[must_use]
pub fn fingerprint(events: &[(String, String)]) -> String {
    let mut hasher = Sha256::new();
    for (hash, id) in events {
        hasher.update(hash.as_bytes());
        hasher.update([0]);
        hasher.update(id.as_bytes());
        hasher.update([0]);
    }
    hex(&hasher.finalize())
}

#[derive(Debug, Default)]
struct Claims {
    digests: HashSet<[u8; 32]>,
    ids: HashSet<String>,
}

/// The EPCIS service of a node: the event store and the capture jobs.
#[derive(Debug, Clone)]
pub struct Epcis<S> {
    events: EventStore<S>,
    clock: Arc<dyn Clock>,
    jobs: Arc<Mutex<HashMap<String, CaptureJob>>>,
    claims: Arc<Mutex<Claims>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn jobs_by_org_key(org: &OrgId, created_ms: u64, id: &str) -> Vec<u8> {
    let mut key = org.as_str().as_bytes().to_vec();
    key.push(0);
    key.extend_from_slice(&created_ms.to_be_bytes());
    key.extend_from_slice(id.as_bytes());
    key
}

/// The namespace prefixes an `@context` declares (object entries with string values).
#[must_use]
pub fn context_prefixes(context: Option<&Value>) -> Map<String, Value> {
    let mut out = Map::new();
    let mut add = |o: &Map<String, Value>| {
        for (k, v) in o {
            if v.is_string() && !k.starts_with('@') {
                out.insert(k.clone(), v.clone());
            }
        }
    };
    match context {
        Some(Value::Object(o)) => add(o),
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_object).for_each(add),
        _ => {}
    }
    out
}

fn document_error(e: DocumentError) -> CaptureError {
    match e {
        DocumentError::TooLarge { .. } | DocumentError::TooManyEvents { .. } => {
            CaptureError::TooLarge(e.to_string())
        }
        other => CaptureError::Invalid(other.to_string()),
    }
}

/// A document checked and prepared, with the events a job must write.
struct Accepted {
    job: CaptureJob,
    to_write: Vec<(usize, PreparedEvent)>,
}

impl<S: IngestStorage + Send + Sync + 'static> Epcis<S> {
    /// The service over `storage`.
    pub fn new(storage: S, clock: Arc<dyn Clock>) -> Self {
        Self {
            events: EventStore::new(storage),
            clock,
            jobs: Arc::new(Mutex::new(HashMap::new())),
            claims: Arc::new(Mutex::new(Claims::default())),
        }
    }

    /// The event store (reads, proofs, `events_for_epc`).
    pub fn events(&self) -> &EventStore<S> {
        &self.events
    }

    /// A capture job: the running one from memory, or the stored one; a stored job that was
    /// running when its node stopped is shown as failed (interrupted).
    ///
    /// # Errors
    /// [`StoreError`] if storage fails or the record is corrupt.
    pub fn job(&self, capture_id: &str) -> Result<Option<CaptureJob>, StoreError> {
        if let Some(job) = lock(&self.jobs).get(capture_id) {
            return Ok(Some(job.clone()));
        }
        let Some(bytes) = self.events.storage().read(JOBS, capture_id.as_bytes())? else {
            return Ok(None);
        };
        let mut job: CaptureJob =
            serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        if job.running {
            job.running = false;
            job.success = false;
            job.errors.push(
                "the node stopped while this job ran; capture the same document again to add \
                 the events that are missing"
                    .to_owned(),
            );
        }
        Ok(Some(job))
    }

    /// Capture jobs of `org`, oldest first, after the position `after` (from a previous page),
    /// at most `limit`; the position to continue from when there may be more.
    ///
    /// # Errors
    /// [`StoreError`] if storage fails or a record is corrupt.
    pub fn jobs_of(
        &self,
        org: &OrgId,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<(Vec<CaptureJob>, Option<Vec<u8>>), StoreError> {
        let prefix = jobs_by_org_key(org, 0, "");
        let prefix = &prefix[..prefix.len() - 8];
        let mut from = prefix.to_vec();
        if let Some(position) = after {
            from.extend_from_slice(position);
            from.push(0);
        }
        let mut to = prefix.to_vec();
        to.push(0xff);
        let rows = self.events.storage().scan(JOBS_BY_ORG, &from, &to, limit)?;
        let mut jobs = Vec::with_capacity(rows.len());
        for (key, _) in &rows {
            let id = key
                .get(prefix.len() + 8..)
                .and_then(|b| std::str::from_utf8(b).ok())
                .ok_or_else(|| StoreError::Corrupt("capture job list row".to_owned()))?;
            if let Some(job) = self.job(id)? {
                jobs.push(job);
            }
        }
        let next = (rows.len() == limit)
            .then(|| rows.last().map(|(key, _)| key[prefix.len()..].to_vec()))
            .flatten();
        Ok((jobs, next))
    }

    /// Validates `document` (an EPCIS 2.0 JSON-LD document, query document, event list or
    /// single event) as `owner`, refuses duplicates, stores a running capture job and starts
    /// it on `anchor`. Nothing is written when it answers an error.
    ///
    /// # Errors
    /// [`CaptureError`] saying why the document was refused.
    pub async fn capture<A: Anchor>(
        &self,
        anchor: &A,
        owner: &OrgId,
        document: Value,
    ) -> Result<CaptureJob, CaptureError> {
        let now_ms = self.clock.now_ms();
        let running = lock(&self.jobs)
            .values()
            .filter(|job| job.running && job.owner == *owner)
            .count();
        if running >= JOBS_RUNNING_MAX {
            return Err(CaptureError::Busy(format!(
                "{owner} has {running} capture jobs running, the most one organisation may; \
                 retry when one has finished"
            )));
        }
        let accepted = self.accept(owner, document, now_ms)?;
        let job = accepted.job.clone();
        let records = match job_records(&job) {
            Ok(records) => records,
            Err(e) => {
                self.release(&accepted.to_write);
                return Err(e);
            }
        };
        if let Err(e) = self.events.storage().put_records(records).await {
            self.release(&accepted.to_write);
            return Err(CaptureError::Internal(format!("{e:#?}")));
        }
        lock(&self.jobs).insert(job.capture_id.clone(), job.clone());
        let this = self.clone();
        let anchor = anchor.clone();
        tokio::spawn(async move { this.run(anchor, accepted).await });
        Ok(job)
    }

    /// Everything before the first write: parse, validate, prepare, detect duplicates, claim.
    fn accept(
        &self,
        owner: &OrgId,
        document: Value,
        now_ms: u64,
    ) -> Result<Accepted, CaptureError> {
        let context = context_prefixes(document.get("@context"));
        let mut doc = parse_document_value(document).map_err(document_error)?;
        if doc.events().len() > CAPTURE_EVENTS_MAX {
            return Err(CaptureError::TooLarge(format!(
                "{} events, more than the {CAPTURE_EVENTS_MAX} one capture takes",
                doc.events().len()
            )));
        }
        let hashes = doc.event_hashes();
        for (event, hash) in doc.events_mut().iter_mut().zip(&hashes) {
            if event.event_id().is_none() {
                event.set_event_id(hash.as_str());
            }
        }
        let record_time = i64::try_from(now_ms)
            .ok()
            .and_then(|unix_ms| gs1::epcis::canon::Timestamp { unix_ms }.to_utc_millis_string())
            .ok_or_else(|| CaptureError::Internal("the clock is out of range".to_owned()))?;
        let capture_id = random_id()?;
        let mut prepared = Vec::with_capacity(hashes.len());
        for (event, hash) in doc.events().iter().zip(&hashes) {
            let path = event.path().to_string();
            let time_ms = parse_timestamp(event.event_time())
                .and_then(|t| u64::try_from(t.unix_ms).ok())
                .ok_or_else(|| {
                    CaptureError::Invalid(format!(
                        "{path}.eventTime: events before 1970-01-01T00:00:00Z are not taken"
                    ))
                })?;
            let terms = terms_of(event);
            if terms.identifiers().len() > INDEXED_IDENTIFIERS_MAX {
                return Err(CaptureError::Invalid(format!(
                    "{path}: more than {INDEXED_IDENTIFIERS_MAX} distinct EPCs and classes in \
                     one event; split it"
                )));
            }
            let mut fields = event.fields().clone();
            fields.remove("@context");
            fields.insert("recordTime".to_owned(), Value::String(record_time.clone()));
            let event_id = event.event_id().unwrap_or(hash.as_str()).to_owned();

            let biz_step = biz_step_token(terms.biz_step.as_deref());
            prepared.push((
                path,
                PreparedEvent {
                    stored: StoredEvent {
                        event: fields,
                        context: context.clone(),
                        event_id,
                        event_hash: hash.as_str().to_owned(),
                        owner: owner.clone(),
                        capture_id: capture_id.clone(),
                        salt: String::new(),
                        event_time_ms: time_ms,
                        record_time_ms: now_ms,
                        event_type: event.event_type().as_str().to_owned(),
                        terms,
                        entry_leaf_hash: String::new(),
                        log_size_before: 0,
                    },
                    cursor: EventCursor {
                        time_ms,
                        digest: *hash.digest(),
                    },
                    event_type: log_event_type(event.event_type()),
                    biz_step,
                },
            ));
        }
        let ids: Vec<(String, String)> = prepared
            .iter()
            .map(|(_, p)| (p.stored.event_hash.clone(), p.stored.event_id.clone()))
            .collect();
        let fingerprint = fingerprint(&ids);
        // Twice within the document.
        let mut seen_digest: HashMap<[u8; 32], &str> = HashMap::new();
        let mut seen_id: HashMap<&str, &str> = HashMap::new();
        for (path, p) in &prepared {
            if let Some(first) = seen_digest.insert(p.cursor.digest, path) {
                return Err(CaptureError::Duplicate(format!(
                    "{path}: the same event (hash {}) as {first}",
                    p.stored.event_hash
                )));
            }
            if let Some(first) = seen_id.insert(&p.stored.event_id, path) {
                return Err(CaptureError::Duplicate(format!(
                    "{path}: eventID {} is also the eventID of {first}",
                    p.stored.event_id
                )));
            }
        }
        // Against the store and the running jobs, under the claims lock.
        let mut claims = lock(&self.claims);
        let mut events = Vec::with_capacity(prepared.len());
        let mut to_write = Vec::new();
        for (position, (path, p)) in prepared.into_iter().enumerate() {
            let id = &p.stored.event_id;
            if claims.digests.contains(&p.cursor.digest) || claims.ids.contains(id) {
                return Err(CaptureError::Duplicate(format!(
                    "{path}: event {id} is being captured by another capture job"
                )));
            }
            // The same content first; then the same eventID, unless the eventID is the event's
            // own hash (then the content decides, so nobody can squat another event's hash by
            // using it as an eventID).
            let by_content = self.events.by_digest(&p.cursor.digest)?;
            let stored = if by_content.is_some() || *id == p.stored.event_hash {
                by_content
            } else {
                match self.events.digest_of_id(id)? {
                    Some(digest) => self.events.by_digest(&digest)?,
                    None => None,
                }
            };
            match stored {
                Some(stored) if self.resumable(&stored, &p, &fingerprint)? => {
                    events.push(JobEvent {
                        event_id: stored.event_id,
                        event_hash: stored.event_hash,
                        log_index: None,
                        status: EventStatus::AlreadyCaptured,
                    });
                }
                Some(stored) if stored.owner == *owner => {
                    return Err(CaptureError::Duplicate(format!(
                        "{path}: event {id} is already captured (as {} with hash {})",
                        stored.event_id, stored.event_hash
                    )));
                }
                Some(_) => {
                    // Another organisation's event: say no more than that it exists.
                    return Err(CaptureError::Duplicate(format!(
                        "{path}: an event with this eventID or this content is already captured \
                         on this node"
                    )));
                }
                None => {
                    events.push(JobEvent {
                        event_id: id.clone(),
                        event_hash: p.stored.event_hash.clone(),
                        log_index: None,
                        status: EventStatus::Pending,
                    });
                    to_write.push((position, p));
                }
            }
        }
        for (_, p) in &to_write {
            claims.digests.insert(p.cursor.digest);
            claims.ids.insert(p.stored.event_id.clone());
        }
        drop(claims);
        let job = CaptureJob {
            capture_id,
            owner: owner.clone(),
            created_ms: now_ms,
            finished_ms: None,
            running: true,
            success: false,
            errors: Vec::new(),
            fingerprint,
            events,
        };
        Ok(Accepted { job, to_write })
    }

    /// Whether `stored` was written by an unfinished capture of the same document.
    fn resumable(
        &self,
        stored: &StoredEvent,
        new: &PreparedEvent,
        fingerprint: &str,
    ) -> Result<bool, StoreError> {
        if stored.owner != new.stored.owner
            || stored.event_hash != new.stored.event_hash
            || stored.event_id != new.stored.event_id
        {
            return Ok(false);
        }
        Ok(self
            .job(&stored.capture_id)?
            .is_some_and(|job| !job.running && !job.success && job.fingerprint == fingerprint))
    }

    fn release(&self, written: &[(usize, PreparedEvent)]) {
        let mut claims = lock(&self.claims);
        for (_, p) in written {
            claims.digests.remove(&p.cursor.digest);
            claims.ids.remove(&p.stored.event_id);
        }
    }

    fn update(&self, capture_id: &str, change: impl FnOnce(&mut CaptureJob)) -> Option<CaptureJob> {
        let mut jobs = lock(&self.jobs);
        let job = jobs.get_mut(capture_id)?;
        change(job);
        Some(job.clone())
    }

    /// Runs a job: commits its events chunk by chunk, records what landed, stores the result.
    async fn run<A: Anchor>(self, anchor: A, accepted: Accepted) {
        let capture_id = accepted.job.capture_id.clone();
        let mut failed = false;
        for chunk in accepted.to_write.chunks(SUBMIT_CHUNK) {
            if failed {
                break;
            }
            let log_size = anchor.log_size();
            let mut set = JoinSet::new();
            for (position, prepared) in chunk {
                let position = *position;
                let records = random_salt().and_then(|salt| {
                    prepared
                        .commit_records(&salt, log_size)
                        .map_err(CaptureError::Internal)
                });
                let (entry, sidecars, _) = match records {
                    Ok(r) => r,
                    Err(e) => {
                        set.spawn(async move { (position, Err(e.to_string())) });
                        continue;
                    }
                };
                let anchor = anchor.clone();
                let storage = self.events.storage().clone();
                let digest = prepared.cursor.digest;
                set.spawn(async move {
                    let outcome = submit(&anchor, &storage, &digest, entry, sidecars).await;
                    (position, outcome)
                });
            }
            while let Some(joined) = set.join_next().await {
                let (position, outcome) = match joined {
                    Ok(result) => result,
                    Err(e) => {
                        failed = true;
                        self.update(&capture_id, |job| {
                            job.errors.push(format!("a submission task failed: {e}"));
                        });
                        continue;
                    }
                };
                let mut this_failed = false;
                self.update(&capture_id, |job| {
                    let Some(event) = job.events.get_mut(position) else {
                        return;
                    };
                    match outcome {
                        Ok(index) => {
                            event.status = EventStatus::Captured;
                            event.log_index = index.map(|i| i.0);
                        }
                        Err(reason) => {
                            this_failed = true;
                            event.status = EventStatus::Failed;
                            job.errors
                                .push(format!("event {} was not stored: {reason}", event.event_id));
                        }
                    }
                });
                failed |= this_failed;
            }
        }
        self.release(&accepted.to_write);
        let now = self.clock.now_ms();
        let Some(job) = self.update(&capture_id, |job| {
            for event in &mut job.events {
                if event.status == EventStatus::Pending {
                    event.status = EventStatus::Failed;
                }
            }
            job.running = false;
            job.success =
                job.errors.is_empty() && job.events.iter().all(|e| e.status != EventStatus::Failed);
            job.finished_ms = Some(now);
        }) else {
            return;
        };
        tracing::info!(
            capture_id = %job.capture_id,
            events = job.events.len(),
            success = job.success,
            "capture job finished"
        );
        match job_records(&job) {
            Ok(records) => {
                if let Err(e) = self.events.storage().put_records(records).await {
                    tracing::error!(capture_id = %job.capture_id, error = ?e, "storing a finished capture job failed");
                    return;
                }
            }
            Err(e) => tracing::error!(capture_id = %job.capture_id, %e, "encoding a capture job"),
        }
        // The stored record now says what memory says; memory keeps only running jobs.
        lock(&self.jobs).remove(&capture_id);
    }
}

/// One submission with retries; `Ok(None)` when it landed but its index was lost.
async fn submit<A: Anchor, S: IngestStorage>(
    anchor: &A,
    storage: &S,
    digest: &[u8; 32],
    entry: Vec<u8>,
    sidecars: Vec<SidecarRecord>,
) -> Result<Option<LeafIndex>, String> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match anchor.submit(entry.clone(), sidecars.clone()).await {
            Ok(index) => return Ok(Some(index)),
            Err(SubmitError::OutcomeUnknown)
                if storage
                    .read(EVENTS, digest)
                    .map_err(|e| format!("{e:#?}"))?
                    .is_some() =>
            {
                return Ok(None);
            }
            Err(e) if e.is_retryable() && attempt < SUBMIT_ATTEMPTS => {
                tokio::time::sleep(Duration::from_millis(SUBMIT_BACKOFF_MS)).await;
            }
            Err(e) => return Err(e.to_string()),
        }
    }
}

fn job_records(job: &CaptureJob) -> Result<Vec<SidecarRecord>, CaptureError> {
    let value = serde_json::to_vec(job).map_err(|e| CaptureError::Internal(e.to_string()))?;
    Ok(vec![
        SidecarRecord {
            table: JOBS.to_owned(),
            key: job.capture_id.as_bytes().to_vec(),
            value,
        },
        SidecarRecord {
            table: JOBS_BY_ORG.to_owned(),
            key: jobs_by_org_key(&job.owner, job.created_ms, &job.capture_id),
            value: Vec::new(),
        },
    ])
}

fn random_bytes<const N: usize>() -> Result<[u8; N], CaptureError> {
    let mut out = [0u8; N];
    getrandom::fill(&mut out)
        .map_err(|e| CaptureError::Internal(format!("no system randomness: {e}")))?;
    Ok(out)
}

fn random_salt() -> Result<[u8; 32], CaptureError> {
    random_bytes::<32>()
}

fn random_id() -> Result<String, CaptureError> {
    Ok(hex(&random_bytes::<16>()?))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use ingest::SystemClock;
    use ledger::storage::redb::RedbStorage;

    use super::*;

    /// Commits the records through the store (no log), failing the submissions numbered in
    /// `fail` (counted from 1) for good.
    #[derive(Clone)]
    struct FakeAnchor {
        storage: RedbStorage,
        submitted: Arc<AtomicU64>,
        fail: Arc<Mutex<HashSet<u64>>>,
    }

    impl std::fmt::Debug for FakeAnchor {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("FakeAnchor")
        }
    }

    impl Anchor for FakeAnchor {
        fn log_size(&self) -> u64 {
            self.submitted.load(Ordering::SeqCst)
        }

        fn submit(
            &self,
            _entry: Vec<u8>,
            sidecars: Vec<SidecarRecord>,
        ) -> impl Future<Output = Result<LeafIndex, SubmitError>> + Send {
            let this = self.clone();
            async move {
                let n = this.submitted.fetch_add(1, Ordering::SeqCst) + 1;
                if lock(&this.fail).contains(&n) {
                    return Err(SubmitError::Failed("injected".to_owned()));
                }
                this.storage
                    .put_records(sidecars)
                    .await
                    .map_err(|_| SubmitError::NotCommitted)?;
                Ok(LeafIndex(n - 1))
            }
        }
    }

    fn document(count: usize) -> Value {
        let events: Vec<Value> = (0..count)
            .map(|i| {
                json!({
                    "type": "ObjectEvent",
                    "eventTime": format!("2024-05-01T08:00:{:02}Z", i % 60),
                    "eventTimeZoneOffset": "+08:00",
                    "epcList": [format!("urn:epc:id:sgtin:0614141.107346.{i}")],
                    "action": "OBSERVE",
                    "bizStep": "shipping",
                })
            })
            .collect();
        json!({
            "@context": ["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"],
            "type": "EPCISDocument",
            "schemaVersion": "2.0",
            "creationDate": "2024-05-01T08:00:00Z",
            "epcisBody": {"eventList": events},
        })
    }

    async fn finished(epcis: &Epcis<RedbStorage>, id: &str) -> CaptureJob {
        for _ in 0..2_000 {
            let job = epcis.job(id).expect("read").expect("job");
            if !job.running {
                return job;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("job {id} never finished");
    }

    #[tokio::test]
    async fn a_failed_job_is_reported_and_the_same_document_then_adds_only_what_is_missing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage =
            RedbStorage::open(&dir.path().join("s.redb"), ledger::empty_root().0).expect("open");
        let anchor = FakeAnchor {
            storage: storage.clone(),
            submitted: Arc::new(AtomicU64::new(0)),
            fail: Arc::new(Mutex::new(HashSet::from([2]))),
        };
        let epcis = Epcis::new(storage, Arc::new(SystemClock));
        let org: OrgId = "coop".parse().expect("org");

        let first = epcis
            .capture(&anchor, &org, document(3))
            .await
            .expect("accepted");
        let first = finished(&epcis, &first.capture_id).await;
        assert!(!first.success, "{first:?}");
        assert_eq!(first.errors.len(), 1, "{first:?}");
        let statuses: Vec<EventStatus> = first.events.iter().map(|e| e.status).collect();
        assert_eq!(
            statuses
                .iter()
                .filter(|s| **s == EventStatus::Failed)
                .count(),
            1
        );
        assert_eq!(
            statuses
                .iter()
                .filter(|s| **s == EventStatus::Captured)
                .count(),
            2
        );

        // Another document repeating a stored event is a duplicate.
        let mut other = document(3);
        other["epcisBody"]["eventList"]
            .as_array_mut()
            .expect("list")
            .truncate(1);
        assert!(matches!(
            epcis.capture(&anchor, &org, other).await,
            Err(CaptureError::Duplicate(_))
        ));

        // The same document again writes only the missing event.
        let before = anchor.submitted.load(Ordering::SeqCst);
        let second = epcis
            .capture(&anchor, &org, document(3))
            .await
            .expect("accepted");
        let second = finished(&epcis, &second.capture_id).await;
        assert!(second.success, "{second:?}");
        assert_eq!(anchor.submitted.load(Ordering::SeqCst), before + 1);
        let already = second
            .events
            .iter()
            .filter(|e| e.status == EventStatus::AlreadyCaptured)
            .count();
        assert_eq!(already, 2, "{second:?}");

        // And now the document is complete: a third capture is a duplicate.
        assert!(matches!(
            epcis.capture(&anchor, &org, document(3)).await,
            Err(CaptureError::Duplicate(_))
        ));
    }

    #[tokio::test]
    async fn refused_documents_write_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage =
            RedbStorage::open(&dir.path().join("s.redb"), ledger::empty_root().0).expect("open");
        let anchor = FakeAnchor {
            storage: storage.clone(),
            submitted: Arc::new(AtomicU64::new(0)),
            fail: Arc::new(Mutex::new(HashSet::new())),
        };
        let epcis = Epcis::new(storage.clone(), Arc::new(SystemClock));
        let org: OrgId = "coop".parse().expect("org");
        let mut twice = document(2);
        let first = twice["epcisBody"]["eventList"][0].clone();
        twice["epcisBody"]["eventList"][1] = first;
        assert!(matches!(
            epcis.capture(&anchor, &org, twice).await,
            Err(CaptureError::Duplicate(_))
        ));
        let mut old = document(1);
        old["epcisBody"]["eventList"][0]["eventTime"] = json!("1969-12-31T23:59:59Z");
        assert!(matches!(
            epcis.capture(&anchor, &org, old).await,
            Err(CaptureError::Invalid(_))
        ));
        assert!(matches!(
            epcis
                .capture(&anchor, &org, document(CAPTURE_EVENTS_MAX + 1))
                .await,
            Err(CaptureError::TooLarge(_))
        ));
        for table in [JOBS, JOBS_BY_ORG, EVENTS] {
            assert!(
                storage
                    .scan(table, &[], &[0xff], 10)
                    .expect("scan")
                    .is_empty(),
                "{table} has records"
            );
        }
        assert_eq!(anchor.submitted.load(Ordering::SeqCst), 0);
    }
}
