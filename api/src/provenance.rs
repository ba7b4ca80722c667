//! The HTTP side of trace, recall and the FSMA 204 export (issue "Traceability API", items 5
//! and 7): [`crate::trace`] over the node's stores, each anchored event with its proof, and
//! [`crate::fsma`] over the stored EPCIS events.
//!
//! | route | action | answers |
//! |---|---|---|
//! | `GET /trace/{id}?direction=backward\|forward\|both` | `Trace` | the graph, custody windows with cold chains, events with proofs |
//! | `GET /recall/{gtin}/{lot}` | `Trace` | every downstream lot, container, shipment, organisation and location |
//! | `GET /exports/fsma204?from=&to=&product=&org=` | `ReadRecords` | the sortable spreadsheet (CSV) of the organisation's critical tracking events |
//!
//! `{id}` is a GS1 Digital Link (URI or path, e.g. `01/09506000134352/10/L1`), an EPC URI or
//! `shipment:{org}/{id}`. What a trace shows: everything to an auditor; to a customs officer,
//! the provenance of the goods it is asked to clear — the backward closure of every shipment
//! declared to its authority that the root is part of ([`declared_view`]), never what went
//! elsewhere — and a recall restricted to those goods; to anyone else (and to an officer whose
//! declared goods the root is not part of) the records of its organisation and of those
//! sharing with it ([`crate::access::visibility`]). A root the caller may not see answers 404, as
//! does one nothing is recorded for.
//!
//! Each event of a trace carries its log index and an RFC 9162 inclusion proof against a
//! published checkpoint (the checkpoints are listed once, by tree size); the salt that opens
//! its commitment is served by `GET /epcis/events/{eventID}/proof` to whoever may read it.
//! Excursions name the reading proofs (`/v1/devices/{id}/readings/{seq}/proof`) of their first
//! and last readings.
//!
//! A trace also lists the trade documents of its lots and shipments that the caller may read
//! ([`crate::documents::documents_for_trace`]): type, number, issuer, status, anchor leaf index.
//!
//! Repeated traces cost little: the cold chain of an arrived shipment comes from
//! [`crate::coldchain::ColdChainCache`] while no reading of its devices is committed, and the
//! event store remembers decoded events, located entries and inclusion proofs for the
//! published tree size ([`crate::epcis::EventStore`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::get;
use gs1::{EpcKey, Gtin};
use ledger::sequencer::ServeProofError;
use protocol::DeviceId;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::access::{Caller, require, visibility};
use crate::auth::{Action, OrgId, Role, Visibility};
use crate::coldchain::{Band, ColdChain};
use crate::epcis::store::{IndexKind, StoredEvent};
use crate::fsma::{self, Describe, StoredEvent as FsmaEvent};
use crate::http::{ApiError, AppState, json_status};
use crate::trace::{
    Direction, EventRecord, Everything, LotRecord, Root, ShipmentRecord, TraceSource,
    container_node, declared_view, recall, recall_of, trace,
};
use crate::trade::Shipment;

/// Most events one FSMA 204 export reads.
pub const EXPORT_EVENTS_MAX: usize = 100_000;

fn internal(error: impl std::fmt::Debug) -> ApiError {
    ApiError::Internal(format!("{error:#?}"))
}

/// The routes of this module, on the node's state.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/trace/{*id}", get(trace_route))
        .route("/recall/{gtin}/{lot}", get(recall_route))
        .route("/exports/fsma204", get(fsma_route))
}

/// [`TraceSource`] over the node's stores; remembers the events it read for their proofs.
pub(crate) struct NodeSource<'a> {
    pub(crate) state: &'a AppState,
    pub(crate) read: Mutex<HashMap<String, Arc<StoredEvent>>>,
}

fn shipment_record(shipment: Shipment) -> ShipmentRecord {
    let lots = shipment
        .lots
        .iter()
        .map(|l| EpcKey::Lgtin {
            gtin: l.gtin,
            lot: l.lot.clone(),
        })
        .collect();
    let containers = shipment
        .ssccs
        .iter()
        .map(|s| EpcKey::Sscc(*s).to_string())
        .chain(shipment.containers.iter().map(|c| container_node(c)))
        .collect();
    let devices = shipment
        .devices
        .iter()
        .filter_map(|d| d.parse::<DeviceId>().ok())
        .collect();
    ShipmentRecord {
        owner: shipment.org.clone(),
        id: shipment.id.to_string(),
        declared_to: shipment.declared_to.clone(),
        lots,
        containers,
        devices,
        departure: shipment
            .departure
            .as_ref()
            .map(|s| (s.time_ms, s.location.clone())),
        arrival: shipment
            .arrival
            .as_ref()
            .map(|s| (s.time_ms, s.location.clone())),
        details: shipment.to_json(),
    }
}

impl TraceSource for NodeSource<'_> {
    fn events_of(&self, node: &str, limit: usize) -> Result<Vec<Arc<EventRecord>>, ApiError> {
        let events = self
            .state
            .epcis
            .events()
            .shared_events_for_epc(node, None, limit)
            .map_err(internal)?;
        let mut read = self.read.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(events
            .into_iter()
            .map(|stored| {
                let record = Arc::new(EventRecord {
                    id: stored.event_id.clone(),
                    owner: stored.owner.clone(),
                    log_index: None,
                    event: stored.event.clone(),
                });
                read.insert(stored.event_id.clone(), stored);
                record
            })
            .collect())
    }

    fn lot(&self, gtin: &Gtin, lot: &str) -> Result<Option<LotRecord>, ApiError> {
        Ok(self.state.trade.lot_by_key(gtin, lot)?.map(|l| LotRecord {
            owner: l.org,
            plot: Some(l.plot),
            harvest_date: Some(l.harvest_date),
        }))
    }

    fn shipments_carrying(&self, node: &str) -> Result<Vec<ShipmentRecord>, ApiError> {
        Ok(self
            .state
            .trade
            .shipments_carrying(node)?
            .into_iter()
            .map(shipment_record)
            .collect())
    }

    fn shipment(&self, owner: &OrgId, id: &str) -> Result<Option<ShipmentRecord>, ApiError> {
        let Ok(id) = id.parse::<OrgId>() else {
            return Ok(None);
        };
        Ok(self.state.trade.shipment(owner, &id)?.map(shipment_record))
    }

    fn band(&self, gtin: &Gtin) -> Option<Band> {
        self.state
            .master
            .product_by_gtin(*gtin)
            .ok()
            .flatten()
            .map(|p| Band {
                min_centi_c: p.storage_min_centi_c,
                max_centi_c: p.storage_max_centi_c,
            })
    }

    fn cold_chain(
        &self,
        devices: &[DeviceId],
        from_ms: u64,
        to_ms: u64,
        band: Option<Band>,
        closed: bool,
    ) -> Result<ColdChain, ApiError> {
        self.state
            .cold_chains
            .cold_chain(
                self.state.sequencer.storage(),
                devices,
                from_ms,
                to_ms,
                band,
                closed,
            )
            .map_err(internal)
    }
}

/// Whether a shipment's details (as [`Shipment::to_json`] writes them) say it is declared to
/// `authority`.
pub(crate) fn declared_to(details: &Value, authority: &OrgId) -> bool {
    details["declared_to"]
        .as_array()
        .is_some_and(|list| list.iter().any(|a| a.as_str() == Some(authority.as_str())))
}

/// What a caller may see of traces.
pub(crate) enum View {
    /// Everything (auditors).
    All,
    /// A customs officer: the provenance of shipments declared to its authority, else `seen`.
    Customs {
        /// Its authority.
        authority: OrgId,
        /// What it sees otherwise.
        seen: Visibility,
    },
    /// Its organisation's records and those of organisations sharing with it.
    Seen(Visibility),
}

pub(crate) fn view_of(state: &AppState, caller: &Caller) -> Result<View, ApiError> {
    let seen = visibility(state, caller)?;
    if seen == Visibility::All {
        return Ok(View::All);
    }
    Ok(match caller.0.as_ref().filter(|p| p.has(Role::Customs)) {
        Some(principal) => View::Customs {
            authority: principal.org.clone(),
            seen,
        },
        None => View::Seen(seen),
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TraceQuery {
    #[serde(default)]
    direction: Option<String>,
}

fn now_ms(state: &AppState) -> u64 {
    state.clock.now_ms()
}

/// Log index and inclusion proof of every event of a trace, with the checkpoints they verify
/// against: the entries located in one pass ([`crate::epcis::EventStore::proofs`]), the
/// inclusion proofs computed in one blocking task.
pub(crate) async fn attach_proofs(
    state: &AppState,
    events: &mut [Value],
    read: &HashMap<String, Arc<StoredEvent>>,
) -> Result<BTreeMap<u64, String>, ApiError> {
    let mut checkpoints = BTreeMap::new();
    let stored: Vec<Option<&StoredEvent>> = events
        .iter()
        .map(|event| {
            event["eventID"]
                .as_str()
                .and_then(|id| read.get(id))
                .map(AsRef::as_ref)
        })
        .collect();
    let present: Vec<&StoredEvent> = stored.iter().flatten().copied().collect();
    let mut proofs = state
        .epcis
        .events()
        .proofs(&state.sequencer, &present)
        .await
        .map_err(internal)?
        .into_iter();
    let located: Vec<Option<ledger::merkle::LeafIndex>> = stored
        .iter()
        .map(|s| s.and_then(|_| proofs.next().flatten().map(|p| p.leaf_index)))
        .collect();
    let sequencer = state.sequencer.clone();
    let store = state.epcis.events().clone();
    let wanted: Vec<ledger::merkle::LeafIndex> = located.iter().flatten().copied().collect();
    let mut inclusions = tokio::task::spawn_blocking(move || {
        store.inclusion_proofs(&sequencer, &wanted).into_iter()
    })
    .await
    .map_err(internal)?;
    let inclusions: Vec<_> = located
        .iter()
        .map(|index| index.and_then(|_| inclusions.next()))
        .collect();
    for ((event, stored), (index, inclusion)) in events
        .iter_mut()
        .zip(stored)
        .zip(located.into_iter().zip(inclusions))
    {
        let Some(stored) = stored else {
            continue;
        };
        let (Some(index), Some(inclusion)) = (index, inclusion) else {
            event["proof"] = Value::Null;
            continue;
        };
        event["log_index"] = json!(index.0);
        event["proof"] = match inclusion {
            Ok((p, checkpoint)) => {
                checkpoints.insert(p.tree_size.0, checkpoint.note.clone());
                json!({
                    "entry_leaf_hash": stored.entry_leaf_hash,
                    "leaf_index": index.0,
                    "tree_size": p.tree_size.0,
                    "path": p.path.iter().map(ledger::merkle::Hash::to_hex).collect::<Vec<_>>(),
                    "opening": format!("/epcis/events/{}/proof", stored.event_hash.split(';').nth(1).and_then(|h| h.split('?').next()).unwrap_or_default()),
                })
            }
            Err(ServeProofError::NoCheckpoint | ServeProofError::NotYetPublished { .. }) => {
                Value::Null
            }
            Err(e) => return Err(internal(e)),
        };
    }
    Ok(checkpoints)
}

fn reading_proof_links(custody: &mut Value) {
    let Some(windows) = custody.as_array_mut() else {
        return;
    };
    for window in windows {
        let Some(excursions) = window["cold_chain"]["excursions"].as_array_mut() else {
            continue;
        };
        for excursion in excursions {
            let device = excursion["device"].as_str().unwrap_or_default().to_owned();
            let links: Vec<String> = excursion["sequences"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_u64)
                .map(|seq| format!("/v1/devices/{device}/readings/{seq}/proof"))
                .collect();
            excursion["reading_proofs"] = json!(links);
        }
    }
}

async fn trace_route(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    query: Result<Query<TraceQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    require(&caller, Action::Trace, None)?;
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let direction: Direction = query
        .direction
        .as_deref()
        .unwrap_or("both")
        .parse()
        .map_err(ApiError::BadRequest)?;
    let root = Root::parse(&id).map_err(|e| ApiError::BadRequest(format!("{id:?}: {e}")))?;
    let worker = state.clone();
    let reader = caller.clone();
    let (mut graph, read) = tokio::task::spawn_blocking(move || {
        let source = NodeSource {
            state: &worker,
            read: Mutex::default(),
        };
        let now = now_ms(&worker);
        let graph = match view_of(&worker, &caller)? {
            View::All => trace(&source, &Everything, &root, direction, now)?,
            View::Customs { authority, seen } => {
                match declared_view(&source, &root, now, |d| declared_to(d, &authority))? {
                    Some(view) => view,
                    None => trace(&source, &seen, &root, direction, now)?,
                }
            }
            View::Seen(seen) => trace(&source, &seen, &root, direction, now)?,
        };
        let read = source
            .read
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
        Ok::<_, ApiError>((graph, read))
    })
    .await
    .map_err(internal)??;
    // The events are the bulk of the answer: moved into the body, not copied.
    let mut events = std::mem::take(&mut graph.events);
    let checkpoints = attach_proofs(&state, &mut events, &read).await?;
    let mut body = serde_json::to_value(&graph).map_err(internal)?;
    body["events"] = Value::Array(events);
    reading_proof_links(&mut body["custody"]);
    body["checkpoints"] = json!(
        checkpoints
            .into_iter()
            .map(|(size, note)| json!({ "tree_size": size, "checkpoint": note }))
            .collect::<Vec<_>>()
    );
    body["log_key"] = json!(state.verifier_key.as_ref());
    // The trade documents of the lots and shipments shown, as the caller may read them.
    let items: Vec<String> = graph
        .nodes
        .iter()
        .filter(|n| n.kind == "lot" || n.kind == "shipment")
        .map(|n| n.id.clone())
        .collect();
    body["documents"] = json!(crate::documents::documents_for_trace(
        &state, &reader, &items
    )?);
    Ok(json_status(StatusCode::OK, &body))
}

async fn recall_route(
    State(state): State<AppState>,
    caller: Caller,
    Path((gtin, lot)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    require(&caller, Action::Trace, None)?;
    let root = Root::parse(&format!("01/{gtin}/10/{lot}"))
        .map_err(|e| ApiError::BadRequest(format!("lot {gtin}/{lot}: {e}")))?;
    let Root::Object(key) = root.clone() else {
        return Err(ApiError::BadRequest("a recall names a lot".to_owned()));
    };
    let worker = state.clone();
    let answer = tokio::task::spawn_blocking(move || {
        let source = NodeSource {
            state: &worker,
            read: Mutex::default(),
        };
        let now = now_ms(&worker);
        match view_of(&worker, &caller)? {
            View::All => recall(&source, &Everything, &key, now),
            View::Customs { authority, seen } => {
                match declared_view(&source, &root, now, |d| declared_to(d, &authority))? {
                    // What of the lot's downstream is in the goods declared to the officer.
                    Some(view) => {
                        let keep: BTreeSet<String> =
                            view.nodes.iter().map(|n| n.id.clone()).collect();
                        let forward = trace(&source, &Everything, &root, Direction::Forward, now)?;
                        Ok(recall_of(forward.restrict_to(&keep)))
                    }
                    None => recall(&source, &seen, &key, now),
                }
            }
            View::Seen(seen) => recall(&source, &seen, &key, now),
        }
    })
    .await
    .map_err(internal)??;
    Ok(json_status(
        StatusCode::OK,
        &serde_json::to_value(&answer).map_err(internal)?,
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportQuery {
    from: String,
    to: String,
    #[serde(default)]
    product: Option<String>,
    #[serde(default)]
    org: Option<String>,
}

/// Product and lot descriptions for the spreadsheet, from the node's master data and lots
/// (a lot's origin only where the caller may see the lot's owner).
struct NodeDescriptions<'a> {
    state: &'a AppState,
    visibility: Visibility,
}

impl Describe for NodeDescriptions<'_> {
    fn product(&self, gtin: &Gtin) -> Option<String> {
        let product = self.state.master.product_by_gtin(*gtin).ok()??;
        Some(format!("{} / {}", product.name_en, product.name_zh))
    }

    fn location(&self, _: &str) -> Option<String> {
        None
    }

    fn tlc_source(&self, gtin: &Gtin, lot: &str) -> Option<String> {
        let lot = self.state.trade.lot_by_key(gtin, lot).ok()??;
        if !self.visibility.sees(&lot.org, &[]) {
            return None;
        }
        Some(format!(
            "plot {} of {} (harvested {})",
            lot.plot, lot.org, lot.harvest_date
        ))
    }
}

/// A bound of an export window: an RFC 3339 date-time, or an ISO 8601 date meaning the start
/// of that day (UTC) — or, for the end of the window (`end_of_day`), the end of that day, so
/// that `to=2026-06-30` includes the 30th.
fn time_bound(what: &str, text: &str, end_of_day: bool) -> Result<u64, ApiError> {
    let ms = match gs1::epcis::canon::parse_timestamp(text) {
        Some(stamp) => stamp.unix_ms,
        None => {
            let days = crate::trade::parse_iso_date(what, text).map_err(|_| {
                ApiError::BadRequest(format!(
                    "{what}: {text:?} is neither an ISO 8601 date nor a date-time with offset"
                ))
            })?;
            (days + i64::from(end_of_day)) * 86_400_000
        }
    };
    u64::try_from(ms).map_err(|_| ApiError::BadRequest(format!("{what}: before 1970")))
}

async fn fsma_route(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<ExportQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    require(&caller, Action::ReadRecords, None)?;
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let principal = caller.0.clone().ok_or(ApiError::Unauthorized(
        "this needs an API token (Authorization: Bearer <token>)",
    ))?;
    let org: OrgId = match &query.org {
        Some(org) => org
            .parse()
            .map_err(|e| ApiError::BadRequest(format!("org: {e}")))?,
        None => principal.org.clone(),
    };
    let seen = visibility(&state, &caller)?;
    if !seen.sees(&org, &[]) {
        return Err(ApiError::Forbidden(format!(
            "{org} does not share its records with {}",
            principal.org
        )));
    }
    let from_ms = time_bound("from", &query.from, false)?;
    let to_ms = time_bound("to", &query.to, true)?;
    if to_ms <= from_ms {
        return Err(ApiError::BadRequest("to must be after from".to_owned()));
    }
    let product: Option<Gtin> = query
        .product
        .as_deref()
        .map(|g| {
            g.parse()
                .map_err(|e| ApiError::BadRequest(format!("product: {e}")))
        })
        .transpose()?;
    let worker = state.clone();
    let (csv, truncated) = tokio::task::spawn_blocking(move || {
        let store = worker.epcis.events();
        let cursors = store
            .index_rows(
                IndexKind::Owner,
                org.as_str(),
                None,
                Some(to_ms),
                Some(from_ms),
                EXPORT_EVENTS_MAX + 1,
            )
            .map_err(internal)?;
        let truncated = cursors.len() > EXPORT_EVENTS_MAX;
        let digests: Vec<[u8; 32]> = cursors
            .iter()
            .take(EXPORT_EVENTS_MAX)
            .map(|c| c.digest)
            .collect();
        let describe = NodeDescriptions {
            state: &worker,
            visibility: seen,
        };
        let mut rows = Vec::new();
        for chunk in digests.chunks(1_000) {
            for stored in store.by_digests(chunk).map_err(internal)? {
                let event = FsmaEvent {
                    event: &stored.event,
                    event_id: &stored.event_id,
                    anchor: Some(&stored.entry_leaf_hash),
                };
                rows.extend(
                    fsma::rows_of(event, &describe)
                        .into_iter()
                        .filter(|row| product.as_ref().is_none_or(|g| fsma::row_mentions(row, g))),
                );
            }
        }
        fsma::sort(&mut rows);
        Ok::<_, ApiError>((fsma::to_csv(&rows), truncated))
    })
    .await
    .map_err(internal)??;
    let mut response = Response::new(Body::from(csv));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8; header=present"),
    );
    headers.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"fsma204.csv\""),
    );
    if truncated {
        headers.insert(
            "agritrace-truncated",
            HeaderValue::from_static("more events than one export holds; narrow the window"),
        );
    }
    Ok(response)
}
