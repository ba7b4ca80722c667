//! Evidence bundles (DESIGN.md "The log": evidence bundle; "Data flow" 5-6): one sealed text
//! file per shipment or lot holding what a court or a customs office needs to check its story
//! with no network, in the `agritrace/evidence-bundle/v1` format of
//! [`agritrace_verify::evidence`] (written only through its types).
//!
//! | route | action | answers |
//! |---|---|---|
//! | `GET /v1/orgs/{org}/shipments/{id}/evidence?since=` | `Trace`, filtered like the trace | the bundle of the shipment |
//! | `GET /v1/orgs/{org}/lots/{gtin}/{lot}/evidence?since=` | `Trace`, filtered like the trace | the bundle of the lot |
//!
//! A bundle covers the records of the trace the caller may see ([`crate::provenance`]: the
//! owner and its partners per visibility, a customs officer the provenance of the goods
//! declared to its authority, an auditor everything; anyone else gets 404), walked both ways
//! from the subject:
//! - every EPCIS event of the trace with the salt that opens its `TraceEvent` commitment;
//! - the signed readings of the devices that travelled with each shipment of the trace, in
//!   its custody window (departure to arrival, or to now), grouped by batch, each batch with
//!   its `ReadingBatch` entry and one subset proof ([`ledger::subset_proof`]) from the batch
//!   record's reading leaf hashes;
//! - every `KeyEvent` of those devices (registration, rotations, revocations), so that the
//!   verifier checks each reading's signature against a key the log shows valid at the time;
//! - trade documents with their `DocumentAnchor` entries and the `IssuerKeyEvent` entries of
//!   their issuers' keys, which go in the same way as device keys ([`documents_for`]);
//! - each entry's RFC 9162 inclusion proof in the tree of the latest published checkpoint,
//!   which must satisfy the node's trust policy (503 while the witnesses it needs have not
//!   cosigned); with `?since=<tree size>`, also the earlier checkpoint of that size and the
//!   consistency proof from it;
//! - the policy text, the subject, the export time, and the seal: a C2SP signed note by the
//!   log key over the SHA-256 of everything before the seal line.
//!
//! Only entries the checkpoint covers go in: readings, events, documents and key events not
//! yet covered are left out and counted in `Agritrace-Evidence-Pending`. A trace or a window
//! cut short by a bound ([`crate::trace::EVENTS_MAX`], [`EVIDENCE_READINGS_MAX`]) is said in
//! `Agritrace-Evidence-Truncated`. `Agritrace-Evidence-Tree-Size` names the checkpoint's
//! size, for the next export's `since`.
//!
//! What the node keeps of checkpoints: the log store keeps only the latest published one, so
//! this module keeps every checkpoint it puts into a bundle (table `evidence_checkpoints`,
//! tree size (8, BE) → signed note). `since` names one of those — the checkpoint of a bundle
//! the node exported before — or the latest; any other size answers 404. The consistency
//! proof itself comes from the tiles, which hold every size.
//!
//! A bundle is built off the async threads, at most [`EXPORTS_AT_ONCE`] at a time (more
//! answer 503 with `Retry-After`), and moved into the response without a copy.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use agritrace_verify::evidence::{
    BundleBatch, BundleCheckpoint, BundleDocument, BundleEntry, BundleEvent,
    EVIDENCE_BUNDLE_BYTES_MAX, EvidenceBundle, Subject,
};
use axum::Router;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::Response;
use axum::routing::get;
use gs1::{EpcKey, Gtin};
use ingest::query::{WINDOW_READINGS_MAX, readings_between};
use ingest::{EntryLocator, IngestStorage, KeyStatus, StoredBatch};
use ledger::checkpoint::Checkpoint;
use ledger::entry::{Entry, Token};
use ledger::merkle::{Hash, LeafIndex, TreeSize, leaf_hash};
use ledger::note::{Note, NoteSigner, NoteVerifier, sign_note};
use ledger::policy::{Policy, PolicyCheckError, PolicyError};
use ledger::proof::{TileInteriorCache, consistency_proof, inclusion_proof_cached, tree_root};
use ledger::sequencer::PublishedCheckpoint;
use ledger::storage::{LogStorage, SidecarRecord};
use ledger::subset_proof::subset_proof;
use ledger::witness_client::WitnessEndpoint;
use protocol::DeviceId;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::access::{Caller, require};
use crate::auth::{Action, OrgId};
use crate::epcis::EPCIS_CONTEXT;
use crate::epcis::store::{EventProof, StoredEvent, locate_in_bundles};
use crate::http::{ApiError, AppState};
use crate::provenance::{NodeSource, View, declared_to, view_of};
use crate::trace::{Direction, Everything, Root, Trace, declared_view, trace};

/// The media type of a bundle (the node's other proof files are served the same way).
pub const MEDIA_TYPE: &str = "text/plain; charset=utf-8";
/// Records left out because the checkpoint does not cover their entries yet.
pub const PENDING_HEADER: &str = "agritrace-evidence-pending";
/// Present when a bound cut the bundle short: what was cut.
pub const TRUNCATED_HEADER: &str = "agritrace-evidence-truncated";
/// The tree size of the checkpoint the bundle's proofs are for.
pub const TREE_SIZE_HEADER: &str = "agritrace-evidence-tree-size";
/// Checkpoints put into bundles: tree size (8 bytes, big-endian) → the signed note.
pub const CHECKPOINTS: &str = "evidence_checkpoints";
/// Most readings in one bundle (about 100 MiB of memory while it is built, 80 MiB of file).
pub const EVIDENCE_READINGS_MAX: usize = 500_000;
/// Bundles built at once; more requests answer 503 with `Retry-After`.
pub const EXPORTS_AT_ONCE: usize = 2;
/// Full tiles whose internal trees one export keeps while it makes inclusion proofs.
const PROOF_CACHE_TILES: usize = 256;
/// Name of the one witness group of the node's policy.
const WITNESS_GROUP: &str = "witnesses";

fn internal(error: impl std::fmt::Debug) -> ApiError {
    ApiError::Internal(format!("{error:#?}"))
}

fn bad(reason: impl Into<String>) -> ApiError {
    ApiError::BadRequest(reason.into())
}

/// What the node seals bundles with and the trust policy it exports them under.
#[derive(Debug, Clone)]
pub struct Evidence {
    seal_key: Arc<NoteSigner>,
    policy: Arc<Policy>,
    policy_text: Arc<str>,
    exports: Arc<Semaphore>,
}

/// The C2SP tlog-policy text of a node: its log key, each witness it asks for cosignatures
/// (named by its key name), and all of them as the quorum (`quorum none` without witnesses).
#[must_use]
pub fn policy_text(log: &NoteVerifier, witnesses: &[NoteVerifier]) -> String {
    let mut text = format!("log {}\n", log.to_vkey());
    for witness in witnesses {
        text.push_str(&format!(
            "witness {} {}\n",
            witness.name(),
            witness.to_vkey()
        ));
    }
    if witnesses.is_empty() {
        text.push_str("quorum none\n");
    } else {
        let names: Vec<&str> = witnesses.iter().map(NoteVerifier::name).collect();
        text.push_str(&format!(
            "group {WITNESS_GROUP} {} {}\nquorum {WITNESS_GROUP}\n",
            names.len(),
            names.join(" ")
        ));
    }
    text
}

impl Evidence {
    /// Seals with `seal_key` (the log key) under the policy of [`policy_text`] for the
    /// configured witnesses.
    ///
    /// # Errors
    /// [`PolicyError`] if the keys do not make a valid policy (two witnesses of one name, a
    /// witness named like the group).
    pub fn new(seal_key: NoteSigner, witnesses: &[WitnessEndpoint]) -> Result<Self, PolicyError> {
        let log = seal_key.verifier();
        let verifiers: Vec<NoteVerifier> = witnesses.iter().map(|w| w.verifier.clone()).collect();
        let text = policy_text(&log, &verifiers);
        let policy = Policy::parse(text.as_bytes())?;
        // The text says exactly what the keys say: nothing in a name added a line.
        let built = Policy::from_keys(
            log,
            verifiers
                .iter()
                .map(|v| (v.name().to_owned(), v.clone()))
                .collect(),
            None,
        )?;
        if built != policy {
            return Err(PolicyError::Built(
                "the policy text does not match its keys".to_owned(),
            ));
        }
        Ok(Self {
            seal_key: Arc::new(seal_key),
            policy: Arc::new(policy),
            policy_text: Arc::from(text.as_str()),
            exports: Arc::new(Semaphore::new(EXPORTS_AT_ONCE)),
        })
    }

    /// The policy text bundles carry.
    #[must_use]
    pub fn policy_text(&self) -> &str {
        &self.policy_text
    }

    /// Whether `checkpoint` satisfies the policy (signed by the log, cosigned by the quorum).
    fn check(&self, checkpoint: &PublishedCheckpoint) -> Result<(), ApiError> {
        match self.policy.verify_checkpoint(checkpoint.note.as_bytes()) {
            Ok(_) => Ok(()),
            Err(PolicyCheckError::QuorumNotMet { cosigned, needed }) => {
                Err(ApiError::NotYet(format!(
                    "the latest checkpoint (tree size {}) lacks the cosignatures the node's \
                     policy needs ({needed}; cosigned by: {}); retry shortly",
                    checkpoint.size.0,
                    if cosigned.is_empty() {
                        "none".to_owned()
                    } else {
                        cosigned.join(", ")
                    }
                )))
            }
            Err(other) => Err(internal(other)),
        }
    }
}

/// A trade document for a bundle, as the documents module finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvidenceDocument {
    /// Where its `DocumentAnchor` entry is.
    pub anchor: EntryLocator,
    /// What opens the anchor, if the caller may read the document; `None` puts the anchor in
    /// without its document.
    pub opening: Option<DocumentOpening>,
    /// The `IssuerKeyEvent` entries of the key that signed the anchor (registration and any
    /// revocation): they go in like the devices' `KeyEvent` entries.
    pub issuer_keys: Vec<EntryLocator>,
}

/// What opens a `DocumentAnchor` commitment: `SHA-256(salt ‖ SHA-256(content))`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentOpening {
    /// The commitment's salt.
    pub salt: [u8; 32],
    /// The issuer's document number.
    pub number: String,
    /// The media type, e.g. `application/pdf`.
    pub media_type: String,
    /// The document file, exact bytes.
    pub content: Vec<u8>,
}

/// The trade documents of the shipments and lots of `graph` (a trace `caller` may see) that
/// the caller may read: each anchor of their histories with its `DocumentAnchor` entry, what
/// opens it, and the `IssuerKeyEvent` entries of its issuer's key
/// ([`crate::documents::for_bundle`]).
///
/// # Errors
/// [`ApiError`] if storage fails.
pub(crate) fn documents_for(
    state: &AppState,
    caller: &Caller,
    graph: &Trace,
) -> Result<Vec<EvidenceDocument>, ApiError> {
    let items: Vec<String> = graph
        .nodes
        .iter()
        .filter(|n| n.kind == "lot" || n.kind == "shipment")
        .map(|n| n.id.clone())
        .collect();
    crate::documents::for_bundle(state, caller, &items)
}

/// The routes of this module, on the node's state.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/orgs/{org}/shipments/{id}/evidence",
            get(shipment_evidence),
        )
        .route(
            "/v1/orgs/{org}/lots/{gtin}/{lot}/evidence",
            get(lot_evidence),
        )
        .route("/v1/log/policy", get(policy))
}

/// `GET /v1/log/policy`: the trust policy evidence bundles are exported under (C2SP
/// tlog-policy: the log key, the witnesses, the quorum), public, so that whoever checks a
/// bundle can compare it with the policy the agencies publish and pin it
/// (`agritrace-verify evidence --policy`).
async fn policy(State(state): State<AppState>) -> Response {
    let mut response = Response::new(Body::from(state.evidence.policy_text().to_owned()));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportQuery {
    #[serde(default)]
    since: Option<String>,
}

fn since_of(query: Result<Query<ExportQuery>, QueryRejection>) -> Result<Option<u64>, ApiError> {
    let Query(query) = query.map_err(|e| bad(e.body_text()))?;
    query
        .since
        .map(|s| {
            s.parse::<u64>()
                .map_err(|_| bad(format!("since: {s:?} is not a tree size (a u64)")))
        })
        .transpose()
}

/// One export at a time per permit; none left answers 503 with `Retry-After`.
fn permit(state: &AppState) -> Result<OwnedSemaphorePermit, ApiError> {
    Arc::clone(&state.evidence.exports)
        .try_acquire_owned()
        .map_err(|_| {
            ApiError::NotYet(format!(
                "the node is building {EXPORTS_AT_ONCE} evidence bundles already; retry shortly"
            ))
        })
}

async fn shipment_evidence(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, id)): Path<(String, String)>,
    query: Result<Query<ExportQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    require(&caller, Action::Trace, None)?;
    let since = since_of(query)?;
    let org: OrgId = org.parse().map_err(|e| bad(format!("organisation: {e}")))?;
    let id: OrgId = id.parse().map_err(|e| bad(format!("shipment id: {e}")))?;
    let export = Export {
        root: Root::Shipment {
            owner: org.clone(),
            id: id.to_string(),
        },
        subject: Subject::Shipment {
            exporter: org.to_string(),
            id: id.to_string(),
        },
        file_name: format!("shipment-{org}-{id}"),
        since,
    };
    export.run(state, caller).await
}

async fn lot_evidence(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, gtin, lot)): Path<(String, String, String)>,
    query: Result<Query<ExportQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    require(&caller, Action::Trace, None)?;
    let since = since_of(query)?;
    let org: OrgId = org.parse().map_err(|e| bad(format!("organisation: {e}")))?;
    let gtin: Gtin = gtin.parse().map_err(|e| bad(format!("gtin: {e}")))?;
    let lot = gs1::Lot::new(&lot).map_err(|e| bad(format!("lot: {e}")))?;
    // The bundle names its subject in a token (a-z A-Z 0-9 . _ - : /).
    Token::new(lot.as_str()).map_err(|_| {
        bad(format!(
            "lot {lot}: an evidence bundle names lots of the characters a-z A-Z 0-9 . _ - : / \
             only"
        ))
    })?;
    let owned = state
        .trade
        .lot_by_key(&gtin, lot.as_str())?
        .is_some_and(|found| found.org == org);
    if !owned {
        return Err(ApiError::NotFound(format!(
            "{org} has no lot {lot} of GTIN {}",
            gtin.digits()
        )));
    }
    let export = Export {
        subject: Subject::Lot {
            gtin: gtin.digits(),
            lot: lot.as_str().to_owned(),
        },
        file_name: format!("lot-{}-{lot}", gtin.digits()),
        root: Root::Object(EpcKey::Lgtin { gtin, lot }),
        since,
    };
    export.run(state, caller).await
}

/// One export request, checked.
struct Export {
    root: Root,
    subject: Subject,
    file_name: String,
    since: Option<u64>,
}

/// The signed readings of one batch that go into a bundle.
struct GatheredBatch {
    record: StoredBatch,
    /// Position in the batch → the signed reading's exact bytes.
    readings: BTreeMap<u32, Vec<u8>>,
}

/// Everything a bundle covers, read from the stores.
struct Gathered {
    events: Vec<Arc<StoredEvent>>,
    batches: Vec<GatheredBatch>,
    key_events: Vec<EntryLocator>,
    documents: Vec<EvidenceDocument>,
    /// What a bound cut short, if anything.
    truncated: Vec<&'static str>,
}

/// Where each gathered record's entry is in the durable log (`None`: not there yet).
struct Located {
    events: Vec<Option<EventProof>>,
    batches: Vec<Option<(LeafIndex, Vec<u8>)>>,
    key_events: Vec<Option<(LeafIndex, Vec<u8>)>>,
    documents: Vec<Option<(LeafIndex, Vec<u8>)>>,
    issuer_keys: Vec<Option<(LeafIndex, Vec<u8>)>>,
}

/// A bundle's text and what its headers say.
struct Built {
    text: String,
    pending: usize,
    tree_size: TreeSize,
    readings: usize,
    entries: usize,
}

impl Export {
    async fn run(self, state: AppState, caller: Caller) -> Result<Response, ApiError> {
        let _permit = permit(&state)?;
        let started = std::time::Instant::now();
        let Self {
            root,
            subject,
            file_name,
            since,
        } = self;
        // Store reads: off the async threads.
        let worker = state.clone();
        let gathered = tokio::task::spawn_blocking(move || gather(&worker, &caller, &root))
            .await
            .map_err(internal)??;
        let located = locate(&state, &gathered).await?;
        let checkpoint = state.sequencer.checkpoint().ok_or_else(|| {
            ApiError::NotYet("no checkpoint is published yet; retry shortly".to_owned())
        })?;
        state.evidence.check(&checkpoint)?;
        let earlier = earlier_checkpoint(&state, &checkpoint, since)?;
        keep_checkpoint(&state, &checkpoint).await?;
        let worker = state.clone();
        let truncated = gathered.truncated.join(", ");
        let built = tokio::task::spawn_blocking(move || {
            build(&worker, subject, gathered, located, &checkpoint, earlier)
        })
        .await
        .map_err(internal)??;
        tracing::info!(
            bundle = %file_name,
            readings = built.readings,
            entries = built.entries,
            bytes = built.text.len(),
            pending = built.pending,
            tree_size = built.tree_size.0,
            elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            "evidence bundle exported"
        );
        respond(built, &file_name, &truncated)
    }
}

/// The trace of `root` that `caller` may see, walked both ways, as `GET /trace` shows it
/// ([`crate::provenance`]), with the stored events it read.
fn visible_trace(
    state: &AppState,
    caller: &Caller,
    root: &Root,
) -> Result<(Trace, HashMap<String, Arc<StoredEvent>>), ApiError> {
    let source = NodeSource {
        state,
        read: Mutex::default(),
    };
    let now = state.clock.now_ms();
    let graph = match view_of(state, caller)? {
        View::All => trace(&source, &Everything, root, Direction::Both, now)?,
        View::Customs { authority, seen } => {
            match declared_view(&source, root, now, |d| declared_to(d, &authority))? {
                Some(view) => view,
                None => trace(&source, &seen, root, Direction::Both, now)?,
            }
        }
        View::Seen(seen) => trace(&source, &seen, root, Direction::Both, now)?,
    };
    let read = source
        .read
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner);
    Ok((graph, read))
}

/// Reads what the bundle covers: the trace's events, its custody windows' readings by batch,
/// the devices' key events, the documents.
fn gather(state: &AppState, caller: &Caller, root: &Root) -> Result<Gathered, ApiError> {
    let (graph, read) = visible_trace(state, caller, root)?;
    let mut truncated = Vec::new();
    if graph.truncated {
        truncated.push("trace");
    }
    let events: Vec<Arc<StoredEvent>> = graph
        .events
        .iter()
        .filter_map(|e| e["eventID"].as_str().and_then(|id| read.get(id)))
        .cloned()
        .collect();
    let storage = state.sequencer.storage();
    let mut by_batch: BTreeMap<Hash, BTreeMap<u32, Vec<u8>>> = BTreeMap::new();
    let mut devices = BTreeSet::new();
    let mut readings = 0_usize;
    for custody in &graph.custody {
        for device in &custody.devices {
            let Ok(device) = device.parse::<DeviceId>() else {
                continue;
            };
            devices.insert(device);
            let complete = window_readings(
                storage,
                device,
                (custody.from_ms, custody.to_ms),
                &mut by_batch,
                &mut readings,
            )?;
            if !complete && !truncated.contains(&"readings") {
                truncated.push("readings");
            }
        }
    }
    let mut batches = Vec::with_capacity(by_batch.len());
    for (root, readings) in by_batch {
        let record = ingest::query::batch(storage, &root)
            .map_err(internal)?
            .ok_or_else(|| internal(format!("the record of committed batch {root} is missing")))?;
        for (position, signed) in &readings {
            let leaf = usize::try_from(*position)
                .ok()
                .and_then(|p| record.reading_leaves.get(p));
            if leaf != Some(&leaf_hash(signed)) {
                return Err(internal(format!(
                    "a reading at position {position} is not the leaf of batch {root}"
                )));
            }
        }
        batches.push(GatheredBatch { record, readings });
    }
    let mut key_events = Vec::new();
    for device in devices {
        for key in state.ingest.registry().keys(device).map_err(internal)? {
            key_events.push(key.event);
            if let KeyStatus::Revoked { event, .. } = key.status {
                key_events.push(event);
            }
        }
    }
    let documents = documents_for(state, caller, &graph)?;
    Ok(Gathered {
        events,
        batches,
        key_events,
        documents,
        truncated,
    })
}

/// Adds the committed readings of `device` with device time in `from..to` to `by_batch`
/// (batch root → position → signed bytes), counting new ones in `readings` up to
/// [`EVIDENCE_READINGS_MAX`]; `false` if that bound cut the window short.
fn window_readings<S: IngestStorage>(
    storage: &S,
    device: DeviceId,
    (from_ms, to_ms): (u64, u64),
    by_batch: &mut BTreeMap<Hash, BTreeMap<u32, Vec<u8>>>,
    readings: &mut usize,
) -> Result<bool, ApiError> {
    let page = |from: u64, limit: usize| {
        let (page, more) =
            readings_between(storage, device, from, to_ms, limit).map_err(internal)?;
        let page = page
            .into_iter()
            .map(|(stored, reading)| WindowReading {
                sequence: stored.sequence.0,
                time_ms: reading.device_time_ms,
                batch_root: stored.batch_root,
                position: stored.position,
                signed: stored.signed,
            })
            .collect();
        Ok((page, more))
    };
    let bounds = Bounds {
        page_max: WINDOW_READINGS_MAX,
        readings_max: EVIDENCE_READINGS_MAX,
    };
    collect_window(page, from_ms, bounds, by_batch, readings)
}

/// A committed reading as a bundle takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct WindowReading {
    sequence: u64,
    time_ms: u64,
    batch_root: Hash,
    position: u32,
    signed: Vec<u8>,
}

/// Most readings one read of a window returns, and in one bundle.
#[derive(Debug, Clone, Copy)]
struct Bounds {
    page_max: usize,
    readings_max: usize,
}

/// The readings of one window read page by page with `page(from_ms, limit)` (readings with
/// device time at or after `from_ms`, in sequence order, at most `limit`, and whether more
/// remained, as [`readings_between`] answers): a window longer than a page continues from the
/// device time of the last reading taken, past the readings already taken. Adds them to
/// `by_batch`, counting new ones in `readings` up to `bounds.readings_max`; `false` if a bound
/// cut the window short.
fn collect_window(
    mut page: impl FnMut(u64, usize) -> Result<(Vec<WindowReading>, bool), ApiError>,
    from_ms: u64,
    bounds: Bounds,
    by_batch: &mut BTreeMap<Hash, BTreeMap<u32, Vec<u8>>>,
    readings: &mut usize,
) -> Result<bool, ApiError> {
    let mut from = from_ms;
    // The last sequence number taken, and how many readings taken have the device time the
    // next read starts from (it reads them again before the new ones).
    let mut taken: Option<u64> = None;
    let mut again = 0_usize;
    loop {
        let room = bounds.readings_max.saturating_sub(*readings);
        if room == 0 {
            return Ok(false);
        }
        let limit = room.saturating_add(again).min(bounds.page_max);
        let (readings_read, more) = page(from, limit)?;
        let mut last = None;
        let mut run: Option<(u64, usize)> = None;
        for reading in readings_read {
            run = match run {
                Some((time_ms, count)) if time_ms == reading.time_ms => Some((time_ms, count + 1)),
                _ => Some((reading.time_ms, 1)),
            };
            if taken.is_some_and(|t| reading.sequence <= t) {
                continue;
            }
            last = Some((reading.sequence, reading.time_ms));
            let batch = by_batch.entry(reading.batch_root).or_default();
            if batch.insert(reading.position, reading.signed).is_none() {
                *readings += 1;
            }
        }
        if !more {
            return Ok(true);
        }
        match (last, run) {
            (Some((sequence, time_ms)), Some((_, count))) => {
                taken = Some(sequence);
                from = time_ms;
                again = count;
            }
            // A whole page of one device time already taken: no way forward.
            _ => return Ok(false),
        }
    }
}

/// Finds the entries of everything gathered in the durable log, reading each entry bundle
/// once.
async fn locate(state: &AppState, gathered: &Gathered) -> Result<Located, ApiError> {
    let refs: Vec<&StoredEvent> = gathered.events.iter().map(AsRef::as_ref).collect();
    let events = state
        .epcis
        .events()
        .proofs(&state.sequencer, &refs)
        .await
        .map_err(internal)?;
    let storage = state.sequencer.storage();
    let durable = state.sequencer.durable_state().size;
    let mut bundles = HashMap::new();
    let mut find = Vec::new();
    let lists: [Vec<&EntryLocator>; 4] = [
        gathered.batches.iter().map(|b| &b.record.entry).collect(),
        gathered.key_events.iter().collect(),
        gathered.documents.iter().map(|d| &d.anchor).collect(),
        gathered
            .documents
            .iter()
            .flat_map(|d| &d.issuer_keys)
            .collect(),
    ];
    for list in lists {
        let mut found = Vec::with_capacity(list.len());
        for locator in list {
            found.push(
                locate_in_bundles(storage, locator, durable, &mut bundles)
                    .await
                    .map_err(internal)?,
            );
        }
        find.push(found);
    }
    let [batches, key_events, documents, issuer_keys]: [Vec<_>; 4] = find
        .try_into()
        .map_err(|_| internal("four lists located, not four"))?;
    Ok(Located {
        events,
        batches,
        key_events,
        documents,
        issuer_keys,
    })
}

/// The checkpoint of size `since` the node put into an earlier bundle, if `since` names an
/// earlier one.
fn earlier_checkpoint(
    state: &AppState,
    latest: &PublishedCheckpoint,
    since: Option<u64>,
) -> Result<Option<(String, TreeSize)>, ApiError> {
    let Some(since) = since else {
        return Ok(None);
    };
    if since > latest.size.0 {
        return Err(bad(format!(
            "since: {since} is beyond the latest checkpoint's tree size {}",
            latest.size.0
        )));
    }
    if since == latest.size.0 {
        return Ok(None);
    }
    let note = state
        .sequencer
        .storage()
        .read(CHECKPOINTS, &since.to_be_bytes())
        .map_err(internal)?
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "since: this node has no checkpoint of tree size {since}; it keeps the \
                 checkpoints of the bundles it exported and the latest ({})",
                latest.size.0
            ))
        })?;
    let note = String::from_utf8(note).map_err(internal)?;
    Ok(Some((note, TreeSize(since))))
}

/// Keeps `checkpoint` for a later export's `since` (durable before the bundle leaves).
async fn keep_checkpoint(
    state: &AppState,
    checkpoint: &PublishedCheckpoint,
) -> Result<(), ApiError> {
    let key = checkpoint.size.0.to_be_bytes();
    let storage = state.sequencer.storage();
    if storage.read(CHECKPOINTS, &key).map_err(internal)?.is_some() {
        return Ok(());
    }
    storage
        .put_records(vec![SidecarRecord {
            table: CHECKPOINTS.to_owned(),
            key: key.to_vec(),
            value: checkpoint.note.clone().into_bytes(),
        }])
        .await
        .map_err(internal)
}

/// An event as `GET /epcis/events/{id}` answers it: the stored JSON with its `@context` (the
/// namespace prefixes its GS1 event hash was computed with).
fn event_json(stored: &StoredEvent) -> Result<Vec<u8>, ApiError> {
    let mut event = Value::Object(stored.event.clone());
    event["@context"] = if stored.context.is_empty() {
        json!([EPCIS_CONTEXT])
    } else {
        json!([EPCIS_CONTEXT, stored.context])
    };
    serde_json::to_vec(&event).map_err(internal)
}

/// Builds and seals the bundle: the entries `checkpoint` covers with their inclusion proofs,
/// the batches' subset proofs, the checkpoints.
#[allow(clippy::too_many_lines)] // One section of the file after the other.
fn build(
    state: &AppState,
    subject: Subject,
    gathered: Gathered,
    located: Located,
    checkpoint: &PublishedCheckpoint,
    earlier: Option<(String, TreeSize)>,
) -> Result<Built, ApiError> {
    let size = checkpoint.size;
    let covered = |index: LeafIndex| index.0 < size.0;
    let mut entries: BTreeMap<LeafIndex, Vec<u8>> = BTreeMap::new();
    let mut pending = 0_usize;

    let mut events = Vec::new();
    for (stored, proof) in gathered.events.iter().zip(located.events) {
        match proof {
            Some(proof) if covered(proof.leaf_index) => {
                events.push(BundleEvent {
                    entry: proof.leaf_index,
                    salt: proof.salt,
                    event_json: event_json(stored)?,
                });
                entries.insert(proof.leaf_index, proof.entry);
            }
            _ => pending += 1,
        }
    }
    events.sort_by_key(|e| e.entry);

    let mut batches = Vec::new();
    for (batch, found) in gathered.batches.into_iter().zip(located.batches) {
        let Some((index, entry)) = found.filter(|(index, _)| covered(*index)) else {
            pending += batch.readings.len();
            continue;
        };
        match Entry::decode(&entry) {
            Ok(Entry::ReadingBatch(anchored)) if anchored.batch_root == batch.record.root => {}
            _ => {
                return Err(internal(format!(
                    "entry {index} is not the ReadingBatch of batch {}",
                    batch.record.root
                )));
            }
        }
        let positions: Vec<LeafIndex> = batch
            .readings
            .keys()
            .map(|p| LeafIndex(u64::from(*p)))
            .collect();
        let proof = subset_proof(&batch.record.reading_leaves, &positions).map_err(internal)?;
        let batch_size = u64::try_from(batch.record.reading_leaves.len()).map_err(internal)?;
        batches.push(BundleBatch {
            entry: index,
            size: TreeSize(batch_size),
            readings: batch
                .readings
                .into_iter()
                .map(|(p, signed)| (LeafIndex(u64::from(p)), signed))
                .collect(),
            proof,
        });
        entries.insert(index, entry);
    }
    batches.sort_by_key(|b| b.entry);

    let mut documents = Vec::new();
    for (document, found) in gathered.documents.into_iter().zip(located.documents) {
        let Some((index, entry)) = found.filter(|(index, _)| covered(*index)) else {
            pending += 1;
            continue;
        };
        if let Some(opening) = document.opening {
            documents.push(BundleDocument {
                entry: index,
                salt: opening.salt,
                number: opening.number,
                media_type: opening.media_type,
                content: opening.content,
            });
        }
        entries.insert(index, entry);
    }
    documents.sort_by_key(|d| d.entry);

    // Device and issuer keys: ordinary entries, proven like the rest.
    for found in located.key_events.into_iter().chain(located.issuer_keys) {
        match found {
            Some((index, entry)) if covered(index) => {
                entries.insert(index, entry);
            }
            _ => pending += 1,
        }
    }

    let storage = state.sequencer.storage();
    let tiles = storage.tile_reader().map_err(internal)?;
    let cache = Mutex::new(TileInteriorCache::new(PROOF_CACHE_TILES));
    let entries = entries
        .into_iter()
        .map(|(index, bytes)| {
            let proof = inclusion_proof_cached(index, size, &tiles, &cache).map_err(internal)?;
            Ok(BundleEntry {
                index,
                bytes,
                inclusion: proof.path,
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;

    let mut checkpoints = Vec::with_capacity(2);
    if let Some((note, old)) = earlier {
        // The kept note must be of this log's tree at that size.
        let text = Note::parse(note.as_bytes()).map_err(internal)?.text;
        let kept = Checkpoint::parse(&text).map_err(internal)?;
        if kept.size != old || kept.root != tree_root(old, &tiles).map_err(internal)? {
            return Err(internal(format!(
                "the kept checkpoint of size {} is not of this log's tree",
                old.0
            )));
        }
        checkpoints.push(BundleCheckpoint {
            signed_note: note,
            consistency: Vec::new(),
        });
        checkpoints.push(BundleCheckpoint {
            signed_note: checkpoint.note.clone(),
            consistency: consistency_proof(old, size, &tiles).map_err(internal)?.path,
        });
    } else {
        checkpoints.push(BundleCheckpoint {
            signed_note: checkpoint.note.clone(),
            consistency: Vec::new(),
        });
    }

    let readings = batches.iter().map(|b| b.readings.len()).sum();
    let entry_count = entries.len();
    let mut bundle = EvidenceBundle {
        subject,
        exported_ms: state.clock.now_ms(),
        policy: state.evidence.policy_text.as_bytes().to_vec(),
        checkpoints,
        entries,
        batches,
        events,
        documents,
        seal: String::new(),
    };
    let body = bundle.body_text();
    bundle.seal = sign_note(
        &EvidenceBundle::seal_text(&body),
        &[&state.evidence.seal_key],
        0,
    )
    .map_err(internal)?;
    let text = bundle.to_text();
    // The seal covers exactly the bytes before its line.
    if text.as_bytes().get(..body.len()) != Some(body.as_bytes()) {
        return Err(internal(
            "the bundle's text does not start with its sealed body",
        ));
    }
    if text.len() > EVIDENCE_BUNDLE_BYTES_MAX {
        return Err(internal(format!(
            "a bundle of {} bytes, over the format's {EVIDENCE_BUNDLE_BYTES_MAX}",
            text.len()
        )));
    }
    Ok(Built {
        text,
        pending,
        tree_size: size,
        readings,
        entries: entry_count,
    })
}

/// `name` with every character outside `A-Z a-z 0-9 . _ -` replaced by `_` (a file name that
/// needs no quoting rules).
fn file_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn respond(built: Built, name: &str, truncated: &str) -> Result<Response, ApiError> {
    let mut response = Response::new(Body::from(built.text));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(MEDIA_TYPE));
    headers.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_str(&format!(
            "attachment; filename=\"{}.evidence.txt\"",
            file_name(name)
        ))
        .map_err(internal)?,
    );
    headers.insert(
        HeaderName::from_static(PENDING_HEADER),
        HeaderValue::from(built.pending),
    );
    headers.insert(
        HeaderName::from_static(TREE_SIZE_HEADER),
        HeaderValue::from(built.tree_size.0),
    );
    if !truncated.is_empty() {
        headers.insert(
            HeaderName::from_static(TRUNCATED_HEADER),
            HeaderValue::from_str(truncated).map_err(internal)?,
        );
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use ledger::note::KeyType;
    use protocol::SigningKey;

    use super::*;

    fn signer(name: &str, key_type: KeyType, seed: u8) -> NoteSigner {
        NoteSigner::new(name, key_type, SigningKey::from_bytes(&[seed; 32])).expect("key")
    }

    #[test]
    fn a_node_without_witnesses_needs_no_cosignature() {
        let log = signer("agritrace.test/log", KeyType::Ed25519, 1);
        let text = policy_text(&log.verifier(), &[]);
        assert_eq!(
            text,
            format!("log {}\nquorum none\n", log.verifier().to_vkey())
        );
        let evidence = Evidence::new(log, &[]).expect("a policy");
        assert_eq!(evidence.policy_text(), text);
        assert_eq!(evidence.policy.quorum_name(), "none");
    }

    #[test]
    fn every_configured_witness_must_cosign() {
        let log = signer("agritrace.test/log", KeyType::Ed25519, 1);
        let witnesses: Vec<WitnessEndpoint> = [("customs.test/w", 2), ("court.test/w", 3)]
            .into_iter()
            .map(|(name, seed)| WitnessEndpoint {
                url: "http://127.0.0.1:1".to_owned(),
                verifier: signer(name, KeyType::CosignatureV1, seed).verifier(),
            })
            .collect();
        let evidence = Evidence::new(log, &witnesses).expect("a policy");
        let text = evidence.policy_text();
        assert!(
            text.contains("\ngroup witnesses 2 customs.test/w court.test/w\n"),
            "{text}"
        );
        assert!(text.ends_with("quorum witnesses\n"), "{text}");
        assert!(!evidence.policy.quorum_met(&["customs.test/w"]));
        assert!(
            evidence
                .policy
                .quorum_met(&["customs.test/w", "court.test/w"])
        );
    }

    #[test]
    fn a_witness_named_like_the_group_is_refused() {
        let log = signer("agritrace.test/log", KeyType::Ed25519, 1);
        let witness = WitnessEndpoint {
            url: "http://127.0.0.1:1".to_owned(),
            verifier: signer(WITNESS_GROUP, KeyType::CosignatureV1, 2).verifier(),
        };
        assert!(Evidence::new(log, &[witness]).is_err());
    }

    /// A device's readings: sequence `i` at device time `i / 3` (three readings per ms),
    /// seven per batch.
    fn history(count: u64) -> Vec<WindowReading> {
        (0..count)
            .map(|i| WindowReading {
                sequence: i,
                time_ms: i / 3,
                batch_root: Hash([u8::try_from(i / 7).expect("small"); 32]),
                position: u32::try_from(i % 7).expect("small"),
                signed: i.to_be_bytes().to_vec(),
            })
            .collect()
    }

    /// `readings_between` over `history`: device time in `from..to`, sequence order, at most
    /// `limit`, whether more remained.
    fn pager(
        history: &[WindowReading],
        to_ms: u64,
    ) -> impl FnMut(u64, usize) -> Result<(Vec<WindowReading>, bool), ApiError> + '_ {
        move |from, limit| {
            let window: Vec<WindowReading> = history
                .iter()
                .filter(|r| r.time_ms >= from && r.time_ms < to_ms)
                .cloned()
                .collect();
            let more = window.len() > limit;
            Ok((window.into_iter().take(limit).collect(), more))
        }
    }

    fn taken(by_batch: &BTreeMap<Hash, BTreeMap<u32, Vec<u8>>>) -> Vec<u64> {
        let mut all: Vec<u64> = by_batch
            .values()
            .flat_map(|b| b.values())
            .map(|s| u64::from_be_bytes(s.as_slice().try_into().expect("8 bytes")))
            .collect();
        all.sort_unstable();
        all
    }

    fn check_window(
        count: u64,
        (from_ms, to_ms): (u64, u64),
        bounds: Bounds,
        expected: (std::ops::Range<u64>, bool),
    ) {
        let history = history(count);
        let mut by_batch = BTreeMap::new();
        let mut readings = 0;
        let complete = collect_window(
            pager(&history, to_ms),
            from_ms,
            bounds,
            &mut by_batch,
            &mut readings,
        )
        .expect("no storage to fail");
        let want: Vec<u64> = expected.0.collect();
        assert_eq!(taken(&by_batch), want, "{count} readings, {bounds:?}");
        assert_eq!(readings, want.len());
        assert_eq!(complete, expected.1, "{count} readings, {bounds:?}");
    }

    #[test]
    fn a_window_longer_than_a_page_is_read_once_each_across_equal_device_times() {
        let wide = Bounds {
            page_max: 1_000,
            readings_max: 1_000,
        };
        let paged = Bounds {
            page_max: 4,
            readings_max: 1_000,
        };
        check_window(60, (0, 100), wide, (0..60, true));
        check_window(60, (0, 100), paged, (0..60, true));
        check_window(60, (5, 12), paged, (15..36, true));
        check_window(60, (50, 100), paged, (0..0, true));
        let capped = Bounds {
            page_max: 4,
            readings_max: 10,
        };
        check_window(60, (0, 100), capped, (0..10, false));
        // A page smaller than the readings sharing one device time cannot move on: cut short.
        let tiny = Bounds {
            page_max: 2,
            readings_max: 1_000,
        };
        check_window(60, (0, 100), tiny, (0..2, false));
        let three = Bounds {
            page_max: 3,
            readings_max: 1_000,
        };
        check_window(60, (0, 100), three, (0..3, false));
        check_window(
            60,
            (0, 100),
            Bounds {
                page_max: 5,
                readings_max: 1_000,
            },
            (0..60, true),
        );
    }

    #[test]
    fn file_names_keep_safe_characters_only() {
        assert_eq!(
            file_name("lot-06901234567892-MH/2026-1"),
            "lot-06901234567892-MH_2026-1"
        );
        assert_eq!(file_name("shipment-coop-s.1_a"), "shipment-coop-s.1_a");
        assert_eq!(file_name("a\"b;c d"), "a_b_c_d");
    }
}
