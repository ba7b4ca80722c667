//! Trace and recall (issue "Traceability API", item 5): the graph of a lot, an object, a
//! container or a shipment — where it came from (backward), where it went (forward), or both —
//! built from the EPCIS events that name it, the lots' plots of origin and the shipments that
//! carried it; the cold chain of each shipment's custody window; and the forward closure of a
//! lot as a recall list.
//!
//! How events connect objects (the roles of EPCIS 2.0 §7.4):
//!
//! | event | an object in the role | leads backward to | leads forward to |
//! |---|---|---|---|
//! | `TransformationEvent` | input | — | every output |
//! | `TransformationEvent` | output | every input | — |
//! | `AggregationEvent`, `AssociationEvent` | child | — | the parent (packed into) |
//! | `AggregationEvent`, `AssociationEvent` | parent | the children (its contents) | — |
//! | any | epcList / quantityList | (the event is part of its history) | |
//!
//! A Digital Link naming both a lot and a serial ties that instance to its lot. A lot record
//! leads backward to its plot of origin; a shipment leads backward to the lots and containers
//! it carries, and a lot or container leads forward to the shipments that carry it. "Both" is
//! the union of the backward and the forward closure from the root (never backward from
//! something reached forward, which would pull in every sibling sharing a container).
//!
//! Work is bounded: at most [`NODES_MAX`] nodes and [`EVENTS_MAX`] events; a trace that hits a
//! bound says so (`truncated`). What a caller may see is decided by the caller of [`trace`]
//! through [`Scope`].

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use gs1::{DigitalLink, EpcKey, Gtin, canonical_epc};
use protocol::DeviceId;
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::auth::OrgId;
use crate::coldchain::{Band, ColdChain};
use crate::http::ApiError;

/// Most nodes in one trace.
pub const NODES_MAX: usize = 5_000;
/// Most events in one trace.
pub const EVENTS_MAX: usize = 20_000;

/// Which way to walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Towards origins.
    Backward,
    /// Towards destinations.
    Forward,
    /// Both closures from the root.
    Both,
}

impl std::str::FromStr for Direction {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "backward" => Ok(Self::Backward),
            "forward" => Ok(Self::Forward),
            "both" => Ok(Self::Both),
            other => Err(format!(
                "direction must be backward, forward or both, not {other:?}"
            )),
        }
    }
}

/// A stored EPCIS event as the trace reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRecord {
    /// Its eventID (the client's, or its canonical hash).
    pub id: String,
    /// The organisation that captured it.
    pub owner: OrgId,
    /// Its `TraceEvent` entry's log index, once committed.
    pub log_index: Option<u64>,
    /// The event (EPCIS 2.0 JSON-LD).
    pub event: Map<String, Value>,
}

/// A lot as the trace reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct LotRecord {
    /// Its owner.
    pub owner: OrgId,
    /// Its plot of origin (an id of the owner's plots).
    pub plot: Option<OrgId>,
    /// Its harvest date (ISO 8601 date).
    pub harvest_date: Option<String>,
}

/// A shipment as the trace reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct ShipmentRecord {
    /// The exporter.
    pub owner: OrgId,
    /// Its id within the exporter.
    pub id: String,
    /// Customs authorities it is declared to.
    pub declared_to: Vec<OrgId>,
    /// Lots it carries.
    pub lots: Vec<EpcKey>,
    /// Containers (ISO 6346 numbers or SSCC URIs).
    pub containers: Vec<String>,
    /// Devices travelling with it.
    pub devices: Vec<DeviceId>,
    /// Departure: Unix ms and location, once recorded.
    pub departure: Option<(u64, String)>,
    /// Arrival: Unix ms and location, once recorded.
    pub arrival: Option<(u64, String)>,
    /// Everything else the API shows of it.
    pub details: Value,
}

impl ShipmentRecord {
    /// Its node id in a trace.
    #[must_use]
    pub fn node_id(&self) -> String {
        shipment_node(&self.owner, &self.id)
    }
}

/// The node id of a shipment.
#[must_use]
pub fn shipment_node(owner: &OrgId, id: &str) -> String {
    format!("shipment:{owner}/{id}")
}

/// The node id of a container that has no EPC (an ISO 6346 number).
#[must_use]
pub fn container_node(number: &str) -> String {
    format!("container:{number}")
}

/// What the trace reads; the node implements it over its store.
pub trait TraceSource {
    /// Events naming `node` (a canonical EPC node id) in any role, oldest first.
    ///
    /// # Errors
    /// [`ApiError`] if storage fails.
    fn events_of(&self, node: &str, limit: usize) -> Result<Vec<Arc<EventRecord>>, ApiError>;
    /// A lot by GTIN and lot number.
    ///
    /// # Errors
    /// [`ApiError`] if storage fails.
    fn lot(&self, gtin: &Gtin, lot: &str) -> Result<Option<LotRecord>, ApiError>;
    /// Shipments carrying a lot or container node.
    ///
    /// # Errors
    /// [`ApiError`] if storage fails.
    fn shipments_carrying(&self, node: &str) -> Result<Vec<ShipmentRecord>, ApiError>;
    /// A shipment by owner and id.
    ///
    /// # Errors
    /// [`ApiError`] if storage fails.
    fn shipment(&self, owner: &OrgId, id: &str) -> Result<Option<ShipmentRecord>, ApiError>;
    /// A product's storage band.
    fn band(&self, gtin: &Gtin) -> Option<Band>;
    /// The cold chain of `devices` in `from_ms..to_ms`; `closed` when `to_ms` is a recorded
    /// arrival (not "now"), so the answer may be remembered.
    ///
    /// # Errors
    /// [`ApiError`] if storage fails.
    fn cold_chain(
        &self,
        devices: &[DeviceId],
        from_ms: u64,
        to_ms: u64,
        band: Option<Band>,
        closed: bool,
    ) -> Result<ColdChain, ApiError>;
}

/// Which records a trace may show.
pub trait Scope {
    /// Whether a record owned by `owner` (for a shipment: declared to `declared_to`) is shown.
    fn sees(&self, owner: &OrgId, declared_to: &[OrgId]) -> bool;
}

impl Scope for crate::auth::Visibility {
    fn sees(&self, owner: &OrgId, declared_to: &[OrgId]) -> bool {
        crate::auth::Visibility::sees(self, owner, declared_to)
    }
}

/// Everything (auditors, and a customs officer inside a shipment declared to its authority).
#[derive(Debug, Clone, Copy)]
pub struct Everything;

impl Scope for Everything {
    fn sees(&self, _: &OrgId, _: &[OrgId]) -> bool {
        true
    }
}

/// What a trace starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Root {
    /// A lot, an object or a container, by its canonical key.
    Object(EpcKey),
    /// A shipment.
    Shipment {
        /// Its exporter.
        owner: OrgId,
        /// Its id.
        id: String,
    },
}

impl Root {
    /// A root from what `/trace/{id}` was given: a Digital Link URI (any host) or its path
    /// (`01/{gtin}/10/{lot}`), an EPC URI, or `shipment:{org}/{id}`.
    ///
    /// # Errors
    /// A message saying what is wrong.
    pub fn parse(text: &str) -> Result<Self, String> {
        if let Some(rest) = text.strip_prefix("shipment:") {
            let (owner, id) = rest
                .split_once('/')
                .ok_or("a shipment is named shipment:{organisation}/{id}")?;
            let owner: OrgId = owner.parse().map_err(|e| format!("organisation: {e}"))?;
            if id.is_empty() || id.len() > 64 {
                return Err("a shipment id has 1 to 64 characters".to_owned());
            }
            return Ok(Self::Shipment {
                owner,
                id: id.to_owned(),
            });
        }
        let key = if text.starts_with("urn:") || text.contains("://") {
            canonical_epc(text).map_err(|e| format!("{e}"))?
        } else {
            let path = format!("/{}", text.trim_start_matches('/'));
            let (path, query) = path
                .split_once('?')
                .map_or((path.as_str(), None), |(p, q)| (p, Some(q)));
            let link =
                DigitalLink::parse_path_and_query(path, query).map_err(|e| format!("{e}"))?;
            EpcKey::from_digital_link(&link).map_err(|e| format!("{e}"))?
        };
        match key {
            EpcKey::Sgln { .. } | EpcKey::Product(_) | EpcKey::Gsrn(_) => {
                Err("a trace starts from a lot, an object, a container or a shipment".to_owned())
            }
            key => Ok(Self::Object(key)),
        }
    }
}

/// A node of the graph.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Node {
    /// Its id: a canonical Digital Link URI, `shipment:…`, `container:…` or `plot:…`.
    pub id: String,
    /// lot, object, container, shipment or plot.
    pub kind: &'static str,
    /// What the store knows of it.
    #[serde(skip_serializing_if = "Value::is_null")]
    pub details: Value,
}

/// An edge, from upstream to downstream.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Edge {
    /// Upstream node.
    pub from: String,
    /// Downstream node.
    pub to: String,
    /// transformed_into, packed_into, instance_of, carried_by or origin_of.
    pub kind: &'static str,
    /// The event that made it, if one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
}

/// A shipment's custody window and its cold chain.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Custody {
    /// The shipment's node id.
    pub shipment: String,
    /// From departure (Unix ms).
    pub from_ms: u64,
    /// To arrival, or now while it travels (Unix ms).
    pub to_ms: u64,
    /// Whether it has arrived.
    pub arrived: bool,
    /// Where it left from and arrived at.
    pub from_location: String,
    /// See `from_location`.
    pub to_location: Option<String>,
    /// The devices that travelled with it.
    pub devices: Vec<String>,
    /// The GTIN whose storage band the cold chain is measured against.
    pub product: Option<String>,
    /// The cold chain.
    pub cold_chain: ColdChain,
}

/// A trace.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Trace {
    /// The root's node id.
    pub root: String,
    /// Which way it walked.
    pub direction: Direction,
    /// Nodes, by id.
    pub nodes: Vec<Node>,
    /// Edges, upstream to downstream.
    pub edges: Vec<Edge>,
    /// Events, by time: each with its id, owner, log index and the event itself.
    pub events: Vec<Value>,
    /// Custody windows of the shipments, with their cold chains.
    pub custody: Vec<Custody>,
    /// Organisations owning something in the graph.
    pub organisations: Vec<OrgId>,
    /// Locations where its events happened (bizLocation, else readPoint).
    pub locations: Vec<String>,
    /// Whether a bound cut it short.
    pub truncated: bool,
}

/// The roles one node plays in one event.
#[derive(Debug, Default)]
struct Roles {
    input: bool,
    output: bool,
    child: bool,
    parent: bool,
}

/// Objects an event names, each with the field naming it.
type Named = Vec<(&'static str, String)>;
/// (instance, lot) pairs.
type Instances = Vec<(String, String)>;

/// Every object named in `event`, with its field, as canonical node ids; Digital Links naming
/// a lot and a serial also give the (instance, lot) pair.
fn objects(event: &Map<String, Value>) -> (Named, Instances) {
    let mut out = Vec::new();
    let mut instances = Vec::new();
    let mut add = |field: &'static str, text: &str| {
        if let Ok(key) = canonical_epc(text) {
            if let (EpcKey::Sgtin { .. }, Ok(link)) = (&key, DigitalLink::parse(text))
                && let (Some(gtin), Some(lot)) = (link.gtin(), link.lot())
            {
                let lot_key = EpcKey::Lgtin {
                    gtin,
                    lot: lot.clone(),
                };
                instances.push((key.to_string(), lot_key.to_string()));
            }
            out.push((field, key.to_string()));
        }
    };
    for field in ["epcList", "childEPCs", "inputEPCList", "outputEPCList"] {
        if let Some(list) = event.get(field).and_then(Value::as_array) {
            for item in list.iter().filter_map(Value::as_str) {
                add(field, item);
            }
        }
    }
    for field in [
        "quantityList",
        "childQuantityList",
        "inputQuantityList",
        "outputQuantityList",
    ] {
        if let Some(list) = event.get(field).and_then(Value::as_array) {
            for class in list
                .iter()
                .filter_map(|q| q.get("epcClass").and_then(Value::as_str))
            {
                add(field, class);
            }
        }
    }
    if let Some(parent) = event.get("parentID").and_then(Value::as_str) {
        add("parentID", parent);
    }
    (out, instances)
}

fn roles_of(node: &str, named: &[(&'static str, String)]) -> Roles {
    let mut roles = Roles::default();
    for (field, id) in named {
        if id != node {
            continue;
        }
        match *field {
            "inputEPCList" | "inputQuantityList" => roles.input = true,
            "outputEPCList" | "outputQuantityList" => roles.output = true,
            "childEPCs" | "childQuantityList" => roles.child = true,
            "parentID" => roles.parent = true,
            _ => {}
        }
    }
    roles
}

fn in_fields<'a>(
    named: &'a [(&'static str, String)],
    fields: &'a [&'static str],
) -> impl Iterator<Item = &'a String> {
    named
        .iter()
        .filter(|(f, _)| fields.contains(f))
        .map(|(_, id)| id)
}

const INPUTS: &[&str] = &["inputEPCList", "inputQuantityList"];
const OUTPUTS: &[&str] = &["outputEPCList", "outputQuantityList"];
const CHILDREN: &[&str] = &["childEPCs", "childQuantityList"];

fn kind_of(id: &str) -> &'static str {
    if id.starts_with("shipment:") {
        "shipment"
    } else if id.starts_with("container:") {
        "container"
    } else if id.starts_with("plot:") {
        "plot"
    } else {
        match canonical_epc(id) {
            Ok(EpcKey::Lgtin { .. }) => "lot",
            Ok(EpcKey::Sscc(_)) => "container",
            _ => "object",
        }
    }
}

/// The walk's state.
struct Walk<'a, S: TraceSource + ?Sized> {
    source: &'a S,
    scope: &'a dyn Scope,
    nodes: BTreeMap<String, Value>,
    edges: BTreeSet<Edge>,
    events: BTreeMap<String, Arc<EventRecord>>,
    shipments: BTreeMap<String, ShipmentRecord>,
    lots: BTreeMap<String, (Gtin, LotRecord)>,
    truncated: bool,
}

impl<S: TraceSource + ?Sized> Walk<'_, S> {
    fn visit(&mut self, node: &str) -> bool {
        if self.nodes.contains_key(node) {
            return false;
        }
        if self.nodes.len() >= NODES_MAX {
            self.truncated = true;
            return false;
        }
        self.nodes.insert(node.to_owned(), Value::Null);
        true
    }

    fn edge(&mut self, from: &str, to: &str, kind: &'static str, event: Option<&str>) {
        self.edges.insert(Edge {
            from: from.to_owned(),
            to: to.to_owned(),
            kind,
            event: event.map(str::to_owned),
        });
    }

    /// Walks one closure from `root`; `forward` chooses the way.
    fn closure(&mut self, root: &str, forward: bool) -> Result<(), ApiError> {
        let mut queue = VecDeque::from([root.to_owned()]);
        let mut seen = BTreeSet::from([root.to_owned()]);
        while let Some(node) = queue.pop_front() {
            let mut next = Vec::new();
            if let Some(rest) = node.strip_prefix("shipment:") {
                let (owner, id) = rest.split_once('/').unwrap_or((rest, ""));
                let Ok(owner) = owner.parse::<OrgId>() else {
                    continue;
                };
                let Some(shipment) = self.source.shipment(&owner, id)? else {
                    continue;
                };
                if !self.scope.sees(&shipment.owner, &shipment.declared_to) {
                    continue;
                }
                // What it carries is upstream of it: walked backward; shown (not walked)
                // when the shipment is reached forward, so a trace names the containers.
                let carried = shipment
                    .lots
                    .iter()
                    .map(ToString::to_string)
                    .chain(shipment.containers.iter().cloned());
                for item in carried {
                    self.edge(&item, &node, "carried_by", None);
                    if forward {
                        self.visit(&item);
                    } else {
                        next.push(item);
                    }
                }
                self.shipments.insert(node.clone(), shipment);
            } else if node.starts_with("plot:") {
                // A plot is where things begin.
            } else {
                self.object(&node, forward, &mut next)?;
            }
            for n in next {
                if seen.insert(n.clone()) {
                    self.visit(&n);
                    queue.push_back(n);
                }
            }
            if self.truncated {
                break;
            }
        }
        Ok(())
    }

    fn object(
        &mut self,
        node: &str,
        forward: bool,
        next: &mut Vec<String>,
    ) -> Result<(), ApiError> {
        let key = canonical_epc(node).ok();
        // The lot record: its plot of origin.
        if let Some(EpcKey::Lgtin { gtin, lot }) = &key
            && let Some(record) = self.source.lot(gtin, lot.as_str())?
            && self.scope.sees(&record.owner, &[])
        {
            if !forward && let Some(plot) = &record.plot {
                let plot_node = format!("plot:{}/{plot}", record.owner);
                self.edge(&plot_node, node, "origin_of", None);
                next.push(plot_node);
            }
            self.lots.insert(node.to_owned(), (*gtin, record));
        }
        if forward {
            for shipment in self.source.shipments_carrying(node)? {
                if self.scope.sees(&shipment.owner, &shipment.declared_to) {
                    let id = shipment.node_id();
                    self.edge(node, &id, "carried_by", None);
                    next.push(id);
                }
            }
        }
        let room = EVENTS_MAX.saturating_sub(self.events.len());
        if room == 0 {
            self.truncated = true;
            return Ok(());
        }
        let events = self.source.events_of(node, room.min(10_000) + 1)?;
        if events.len() > room.min(10_000) {
            self.truncated = true;
        }
        for record in events.iter().take(room.min(10_000)) {
            if !self.scope.sees(&record.owner, &[]) {
                continue;
            }
            let (named, instances) = objects(&record.event);
            let roles = roles_of(node, &named);
            let id = record.id.as_str();
            for (instance, lot) in &instances {
                if instance == node && !forward {
                    self.edge(lot, instance, "instance_of", None);
                    next.push(lot.clone());
                }
            }
            if forward && roles.input {
                for output in in_fields(&named, OUTPUTS) {
                    self.edge(node, output, "transformed_into", Some(id));
                    next.push(output.clone());
                }
            }
            if !forward && roles.output {
                for input in in_fields(&named, INPUTS) {
                    self.edge(input, node, "transformed_into", Some(id));
                    next.push(input.clone());
                }
            }
            if forward && roles.child {
                for parent in in_fields(&named, &["parentID"]) {
                    self.edge(node, parent, "packed_into", Some(id));
                    next.push(parent.clone());
                }
            }
            if !forward && roles.parent {
                for child in in_fields(&named, CHILDREN) {
                    self.edge(child, node, "packed_into", Some(id));
                    next.push(child.clone());
                }
            }
            self.events.insert(record.id.clone(), Arc::clone(record));
        }
        Ok(())
    }
}

fn event_time(event: &Map<String, Value>) -> i64 {
    event
        .get("eventTime")
        .and_then(Value::as_str)
        .and_then(gs1::epcis::canon::parse_timestamp)
        .map_or(i64::MIN, |t| t.unix_ms)
}

fn location_of(event: &Map<String, Value>) -> Option<String> {
    event
        .get("bizLocation")
        .or_else(|| event.get("readPoint"))
        .and_then(|l| l.get("id"))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// Traces from `root` in `direction`, showing what `scope` lets the caller see; `now_ms`
/// closes the custody window of a shipment still travelling.
///
/// # Errors
/// [`ApiError::NotFound`] when the root is unknown or not visible; storage failures.
pub fn trace<S: TraceSource + ?Sized>(
    source: &S,
    scope: &dyn Scope,
    root: &Root,
    direction: Direction,
    now_ms: u64,
) -> Result<Trace, ApiError> {
    let root_id = match root {
        Root::Object(key) => key.to_string(),
        Root::Shipment { owner, id } => shipment_node(owner, id),
    };
    let mut walk = Walk {
        source,
        scope,
        nodes: BTreeMap::new(),
        edges: BTreeSet::new(),
        events: BTreeMap::new(),
        shipments: BTreeMap::new(),
        lots: BTreeMap::new(),
        truncated: false,
    };
    walk.visit(&root_id);
    if matches!(direction, Direction::Backward | Direction::Both) {
        walk.closure(&root_id, false)?;
    }
    if matches!(direction, Direction::Forward | Direction::Both) {
        walk.closure(&root_id, true)?;
    }
    if walk.events.is_empty() && walk.shipments.is_empty() && walk.lots.is_empty() {
        return Err(ApiError::NotFound(format!(
            "nothing you may see is recorded for {root_id}"
        )));
    }
    let Walk {
        nodes,
        edges,
        events,
        shipments,
        lots,
        truncated,
        ..
    } = walk;

    let mut organisations = BTreeSet::new();
    let mut locations = BTreeSet::new();
    let mut timeline: Vec<&Arc<EventRecord>> = events.values().collect();
    timeline.sort_by_key(|r| (event_time(&r.event), r.id.clone()));
    let events_json: Vec<Value> = timeline
        .iter()
        .map(|r| {
            organisations.insert(r.owner.clone());
            if let Some(location) = location_of(&r.event) {
                locations.insert(location);
            }
            json!({
                "eventID": r.id,
                "owner": r.owner,
                "log_index": r.log_index,
                "event": r.event,
            })
        })
        .collect();
    for (_, lot) in lots.values() {
        organisations.insert(lot.owner.clone());
    }

    let mut custody = Vec::new();
    for (id, shipment) in &shipments {
        organisations.insert(shipment.owner.clone());
        let Some((departed_ms, from_location)) = shipment.departure.clone() else {
            continue;
        };
        let (to_ms, arrived, to_location) = match &shipment.arrival {
            Some((ms, location)) => (*ms, true, Some(location.clone())),
            None => (now_ms.max(departed_ms), false, None),
        };
        // The band of the first of its lots with a product band.
        let product = shipment.lots.iter().find_map(EpcKey::gtin);
        let band = product.as_ref().and_then(|g| source.band(g));
        let cold_chain = source.cold_chain(&shipment.devices, departed_ms, to_ms, band, arrived)?;
        custody.push(Custody {
            shipment: id.clone(),
            from_ms: departed_ms,
            to_ms,
            arrived,
            from_location,
            to_location,
            devices: shipment.devices.iter().map(ToString::to_string).collect(),
            product: product.map(|g| g.digits()),
            cold_chain,
        });
    }

    let nodes = nodes
        .into_keys()
        .map(|id| {
            let details = if let Some(shipment) = shipments.get(&id) {
                shipment.details.clone()
            } else if let Some((gtin, lot)) = lots.get(&id) {
                json!({
                    "owner": lot.owner,
                    "gtin": gtin.digits(),
                    "plot": lot.plot,
                    "harvest_date": lot.harvest_date,
                })
            } else {
                Value::Null
            };
            Node {
                kind: kind_of(&id),
                id,
                details,
            }
        })
        .collect();
    Ok(Trace {
        root: root_id,
        direction,
        nodes,
        edges: edges.into_iter().collect(),
        events: events_json,
        custody,
        organisations: organisations.into_iter().collect(),
        locations: locations.into_iter().collect(),
        truncated,
    })
}

/// What a recall of a lot reaches: every downstream lot, object, container and shipment, the
/// organisations involved and the locations its events happened at.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recall {
    /// The recalled lot.
    pub lot: String,
    /// Downstream lots (the recalled one excluded).
    pub lots: Vec<String>,
    /// Downstream serialised objects.
    pub objects: Vec<String>,
    /// Containers it went into.
    pub containers: Vec<String>,
    /// Shipments that carried it or what was made of it.
    pub shipments: Vec<Value>,
    /// Organisations holding or having handled it: owners of events, lots and shipments,
    /// consignees and the customs authorities shipments were declared to.
    pub organisations: Vec<String>,
    /// Locations of its events and its shipments' arrival points.
    pub locations: Vec<String>,
    /// Whether a bound cut it short.
    pub truncated: bool,
}

/// The recall of a lot: the forward closure of [`trace`].
///
/// # Errors
/// As [`trace`].
pub fn recall<S: TraceSource + ?Sized>(
    source: &S,
    scope: &dyn Scope,
    lot: &EpcKey,
    now_ms: u64,
) -> Result<Recall, ApiError> {
    let graph = trace(
        source,
        scope,
        &Root::Object(lot.clone()),
        Direction::Forward,
        now_ms,
    )?;
    Ok(recall_of(graph))
}

/// The recall a forward trace amounts to.
#[must_use]
pub fn recall_of(graph: Trace) -> Recall {
    let mut lots = Vec::new();
    let mut objects = Vec::new();
    let mut containers = Vec::new();
    let mut shipments = Vec::new();
    let mut organisations: BTreeSet<String> = graph
        .organisations
        .iter()
        .map(ToString::to_string)
        .collect();
    let mut locations: BTreeSet<String> = graph.locations.iter().cloned().collect();
    for node in &graph.nodes {
        if node.id == graph.root {
            continue;
        }
        match node.kind {
            "lot" => lots.push(node.id.clone()),
            "container" => containers.push(node.id.clone()),
            "shipment" => {
                for field in ["declared_to"] {
                    if let Some(list) = node.details.get(field).and_then(Value::as_array) {
                        organisations
                            .extend(list.iter().filter_map(Value::as_str).map(str::to_owned));
                    }
                }
                if let Some(consignee) = node.details.get("consignee") {
                    let name = consignee
                        .get("org")
                        .and_then(Value::as_str)
                        .or_else(|| consignee.get("name").and_then(Value::as_str));
                    organisations.extend(name.map(str::to_owned));
                }
                shipments.push(json!({ "id": node.id, "details": node.details }));
            }
            "object" => objects.push(node.id.clone()),
            _ => {}
        }
    }
    for custody in &graph.custody {
        locations.insert(custody.from_location.clone());
        locations.extend(custody.to_location.clone());
    }
    Recall {
        lot: graph.root,
        lots,
        objects,
        containers,
        shipments,
        organisations: organisations.into_iter().collect(),
        locations: locations.into_iter().collect(),
        truncated: graph.truncated,
    }
}

impl Trace {
    /// The union of two traces (the root and direction of `self`).
    #[must_use]
    pub fn merge(mut self, other: Self) -> Self {
        let mut nodes: BTreeMap<String, Node> =
            self.nodes.into_iter().map(|n| (n.id.clone(), n)).collect();
        for node in other.nodes {
            nodes.entry(node.id.clone()).or_insert(node);
        }
        self.nodes = nodes.into_values().collect();
        let edges: BTreeSet<Edge> = self.edges.into_iter().chain(other.edges).collect();
        self.edges = edges.into_iter().collect();
        let mut seen: BTreeSet<String> = self
            .events
            .iter()
            .filter_map(|e| e["eventID"].as_str().map(str::to_owned))
            .collect();
        for event in other.events {
            if event["eventID"]
                .as_str()
                .is_some_and(|id| seen.insert(id.to_owned()))
            {
                self.events.push(event);
            }
        }
        self.events.sort_by_key(|e| {
            (
                e["event"].as_object().map_or(i64::MIN, event_time),
                e["eventID"].as_str().unwrap_or_default().to_owned(),
            )
        });
        for custody in other.custody {
            if !self.custody.iter().any(|c| c.shipment == custody.shipment) {
                self.custody.push(custody);
            }
        }
        let organisations: BTreeSet<OrgId> = self
            .organisations
            .into_iter()
            .chain(other.organisations)
            .collect();
        self.organisations = organisations.into_iter().collect();
        let locations: BTreeSet<String> =
            self.locations.into_iter().chain(other.locations).collect();
        self.locations = locations.into_iter().collect();
        self.truncated |= other.truncated;
        self
    }

    /// This trace restricted to the nodes in `keep`: edges between them, the events naming
    /// one of them, their custody windows; organisations and locations recounted from what
    /// remains.
    #[must_use]
    pub fn restrict_to(mut self, keep: &BTreeSet<String>) -> Self {
        self.nodes.retain(|n| keep.contains(&n.id));
        self.edges
            .retain(|e| keep.contains(&e.from) && keep.contains(&e.to));
        self.events.retain(|e| {
            e["event"]
                .as_object()
                .is_some_and(|event| objects(event).0.iter().any(|(_, id)| keep.contains(id)))
        });
        self.custody.retain(|c| keep.contains(&c.shipment));
        let mut organisations = BTreeSet::new();
        let mut locations = BTreeSet::new();
        for event in &self.events {
            if let Some(owner) = event["owner"].as_str().and_then(|o| o.parse().ok()) {
                organisations.insert(owner);
            }
            if let Some(location) = event["event"].as_object().and_then(location_of) {
                locations.insert(location);
            }
        }
        for node in &self.nodes {
            let owner = node
                .details
                .get("owner")
                .or_else(|| node.details.get("org"));
            if let Some(owner) = owner.and_then(Value::as_str).and_then(|o| o.parse().ok()) {
                organisations.insert(owner);
            }
        }
        self.organisations = organisations.into_iter().collect();
        self.locations = locations.into_iter().collect();
        self
    }
}

/// What a customs officer sees of a trace from `root`: the provenance of the goods it is asked
/// to clear — the union of the backward closures of the shipments, declared to its
/// authority (`declared(details)`), that the root's forward closure reaches — if the root is
/// part of it; `None` otherwise (the officer then sees what anyone sees).
///
/// # Errors
/// Storage failures.
pub fn declared_view<S: TraceSource + ?Sized>(
    source: &S,
    root: &Root,
    now_ms: u64,
    declared: impl Fn(&Value) -> bool,
) -> Result<Option<Trace>, ApiError> {
    let forward = match trace(source, &Everything, root, Direction::Forward, now_ms) {
        Ok(graph) => graph,
        Err(ApiError::NotFound(_)) => return Ok(None),
        Err(other) => return Err(other),
    };
    let mut view: Option<Trace> = None;
    for node in &forward.nodes {
        if node.kind != "shipment" || !declared(&node.details) {
            continue;
        }
        let Ok(shipment) = Root::parse(&node.id) else {
            continue;
        };
        let provenance = trace(source, &Everything, &shipment, Direction::Backward, now_ms)?;
        view = Some(match view {
            None => provenance,
            Some(so_far) => so_far.merge(provenance),
        });
    }
    Ok(view
        .filter(|v| v.nodes.iter().any(|n| n.id == forward.root))
        .map(|mut v| {
            v.root = forward.root;
            v.direction = Direction::Backward;
            v
        }))
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;

    /// An in-memory source: events indexed by every object they name.
    #[derive(Default)]
    struct Memory {
        events: Vec<Arc<EventRecord>>,
        lots: BTreeMap<(String, String), LotRecord>,
        shipments: Vec<ShipmentRecord>,
        cold_chain_calls: RefCell<Vec<(Vec<DeviceId>, u64, u64)>>,
    }

    impl TraceSource for Memory {
        fn events_of(&self, node: &str, limit: usize) -> Result<Vec<Arc<EventRecord>>, ApiError> {
            Ok(self
                .events
                .iter()
                .filter(|r| objects(&r.event).0.iter().any(|(_, id)| id == node))
                .take(limit)
                .cloned()
                .collect())
        }
        fn lot(&self, gtin: &Gtin, lot: &str) -> Result<Option<LotRecord>, ApiError> {
            Ok(self.lots.get(&(gtin.digits(), lot.to_owned())).cloned())
        }
        fn shipments_carrying(&self, node: &str) -> Result<Vec<ShipmentRecord>, ApiError> {
            Ok(self
                .shipments
                .iter()
                .filter(|s| {
                    s.lots.iter().any(|l| l.to_string() == node)
                        || s.containers.iter().any(|c| c == node)
                })
                .cloned()
                .collect())
        }
        fn shipment(&self, owner: &OrgId, id: &str) -> Result<Option<ShipmentRecord>, ApiError> {
            Ok(self
                .shipments
                .iter()
                .find(|s| &s.owner == owner && s.id == id)
                .cloned())
        }
        fn band(&self, _: &Gtin) -> Option<Band> {
            Some(Band {
                min_centi_c: 1_000,
                max_centi_c: 1_300,
            })
        }
        fn cold_chain(
            &self,
            devices: &[DeviceId],
            from_ms: u64,
            to_ms: u64,
            band: Option<Band>,
            _: bool,
        ) -> Result<ColdChain, ApiError> {
            self.cold_chain_calls
                .borrow_mut()
                .push((devices.to_vec(), from_ms, to_ms));
            Ok(crate::coldchain::summarise(
                from_ms,
                to_ms,
                band,
                &BTreeMap::new(),
            ))
        }
    }

    fn org(s: &str) -> OrgId {
        s.parse().expect("org")
    }

    fn lot(l: &str) -> String {
        format!("https://id.gs1.org/01/09506000134352/10/{l}")
    }

    const SSCC: &str = "urn:epc:id:sscc:9506000.0000000001";

    fn sscc_node() -> String {
        canonical_epc(SSCC).expect("sscc").to_string()
    }

    fn event(id: &str, owner: &str, time: &str, body: Value) -> Arc<EventRecord> {
        let mut event = body.as_object().expect("object").clone();
        event.insert("eventTime".to_owned(), json!(time));
        Arc::new(EventRecord {
            id: id.to_owned(),
            owner: org(owner),
            log_index: Some(7),
            event,
        })
    }

    /// Harvest of L1 and L2 at the farm, packing of both into P1, P1 aggregated onto a pallet
    /// (SSCC), the pallet shipped in shipment S1; an unrelated lot L9 elsewhere.
    fn chain() -> Memory {
        let q = |l: &str| json!({"epcClass": lot(l), "quantity": 100, "uom": "KGM"});
        let mut memory = Memory {
            events: vec![
                event(
                    "e-harvest",
                    "farm",
                    "2026-06-01T08:00:00Z",
                    json!({
                        "type": "ObjectEvent", "action": "ADD", "bizStep": "commissioning",
                        "quantityList": [q("L1"), q("L2")],
                        "bizLocation": {"id": "urn:epc:id:sgln:9506000.00001.0"}
                    }),
                ),
                event(
                    "e-pack",
                    "packer",
                    "2026-06-02T08:00:00Z",
                    json!({
                        "type": "TransformationEvent", "bizStep": "packing",
                        "inputQuantityList": [q("L1"), q("L2")],
                        "outputQuantityList": [q("P1")],
                        "bizLocation": {"id": "urn:epc:id:sgln:9506000.00002.0"}
                    }),
                ),
                event(
                    "e-pallet",
                    "packer",
                    "2026-06-02T09:00:00Z",
                    json!({
                        "type": "AggregationEvent", "action": "ADD", "bizStep": "packing",
                        "parentID": SSCC, "childQuantityList": [q("P1")]
                    }),
                ),
                event(
                    "e-other",
                    "stranger",
                    "2026-06-02T10:00:00Z",
                    json!({
                        "type": "ObjectEvent", "action": "OBSERVE", "bizStep": "inspecting",
                        "quantityList": [q("L9")]
                    }),
                ),
            ],
            ..Memory::default()
        };
        memory.lots.insert(
            ("09506000134352".to_owned(), "L1".to_owned()),
            LotRecord {
                owner: org("farm"),
                plot: Some(org("plot-7")),
                harvest_date: Some("2026-06-01".to_owned()),
            },
        );
        memory.shipments.push(ShipmentRecord {
            owner: org("packer"),
            id: "S1".to_owned(),
            declared_to: vec![org("cn-customs")],
            lots: vec![canonical_epc(&lot("P1")).expect("lot")],
            containers: vec![sscc_node()],
            devices: vec![DeviceId([0, 0, 0, 1, 0, 0, 0, 1])],
            departure: Some((1_000, "port-a".to_owned())),
            arrival: None,
            details: json!({"consignee": {"name": "Fresh Ltd", "country": "GB"}, "declared_to": ["cn-customs"]}),
        });
        memory
    }

    fn root(l: &str) -> Root {
        Root::parse(&lot(l)).expect("root")
    }

    #[test]
    fn backward_from_a_packed_lot_reaches_its_inputs_their_harvest_and_the_plot() {
        let memory = chain();
        let trace = trace(
            &memory,
            &Everything,
            &root("P1"),
            Direction::Backward,
            5_000,
        )
        .expect("trace");
        let ids: BTreeSet<&str> = trace.nodes.iter().map(|n| n.id.as_str()).collect();
        let l1 = lot("L1");
        assert!(ids.contains(l1.as_str()) && ids.contains(lot("L2").as_str()));
        assert!(ids.contains("plot:farm/plot-7"));
        assert!(!ids.contains(lot("L9").as_str()));
        assert!(!ids.contains(sscc_node().as_str()), "forward only");
        let event_ids: Vec<&str> = trace
            .events
            .iter()
            .filter_map(|e| e["eventID"].as_str())
            .collect();
        assert_eq!(event_ids, ["e-harvest", "e-pack", "e-pallet"], "by time");
        assert!(trace.edges.contains(&Edge {
            from: l1.clone(),
            to: lot("P1"),
            kind: "transformed_into",
            event: Some("e-pack".to_owned()),
        }));
        assert!(trace.custody.is_empty());
    }

    #[test]
    fn forward_from_a_harvested_lot_reaches_the_pallet_the_shipment_and_its_cold_chain() {
        let memory = chain();
        let trace =
            trace(&memory, &Everything, &root("L1"), Direction::Forward, 5_000).expect("trace");
        let ids: BTreeSet<&str> = trace.nodes.iter().map(|n| n.id.as_str()).collect();
        assert!(ids.contains(lot("P1").as_str()));
        assert!(ids.contains(sscc_node().as_str()));
        assert!(ids.contains("shipment:packer/S1"));
        assert!(
            !ids.contains(lot("L2").as_str()),
            "a sibling input is not downstream"
        );
        assert_eq!(trace.custody.len(), 1);
        assert_eq!(
            (trace.custody[0].from_ms, trace.custody[0].to_ms),
            (1_000, 5_000)
        );
        assert!(!trace.custody[0].arrived);
        assert_eq!(memory.cold_chain_calls.borrow().len(), 1);
        let recall = recall(
            &memory,
            &Everything,
            &canonical_epc(&lot("L1")).expect("lot"),
            5_000,
        )
        .expect("recall");
        assert_eq!(recall.lots, vec![lot("P1")]);
        assert_eq!(recall.containers, vec![sscc_node()]);
        assert_eq!(recall.shipments.len(), 1);
        assert!(recall.organisations.contains(&"cn-customs".to_owned()));
        assert!(recall.organisations.contains(&"Fresh Ltd".to_owned()));
        assert!(recall.locations.contains(&"port-a".to_owned()));
    }

    #[test]
    fn a_shipment_traced_backward_reaches_the_farm_through_its_pallet() {
        let memory = chain();
        let shipment = Root::parse("shipment:packer/S1").expect("root");
        let trace =
            trace(&memory, &Everything, &shipment, Direction::Backward, 5_000).expect("trace");
        let ids: BTreeSet<&str> = trace.nodes.iter().map(|n| n.id.as_str()).collect();
        assert!(ids.contains("plot:farm/plot-7"));
        assert!(ids.contains(lot("L2").as_str()));
        assert!(trace.organisations.contains(&org("farm")));
    }

    #[test]
    fn what_the_scope_hides_is_neither_shown_nor_walked_through() {
        struct Only(Vec<OrgId>);
        impl Scope for Only {
            fn sees(&self, owner: &OrgId, _: &[OrgId]) -> bool {
                self.0.contains(owner)
            }
        }
        let memory = chain();
        let farm_only = Only(vec![org("farm")]);
        let trace =
            trace(&memory, &farm_only, &root("L1"), Direction::Forward, 5_000).expect("trace");
        let ids: BTreeSet<&str> = trace.nodes.iter().map(|n| n.id.as_str()).collect();
        assert!(
            !ids.contains(lot("P1").as_str()),
            "the packer's events are not the farm's"
        );
        assert!(trace.custody.is_empty());
        let nobody = Only(vec![]);
        assert!(matches!(
            super::trace(&memory, &nobody, &root("L1"), Direction::Both, 5_000),
            Err(ApiError::NotFound(_))
        ));
    }

    #[test]
    fn roots_parse_from_links_paths_epcs_and_shipments_and_bad_ones_say_why() {
        assert_eq!(
            root("L1"),
            Root::parse("01/09506000134352/10/L1").expect("path")
        );
        assert_eq!(
            Root::parse("urn:epc:class:lgtin:9506000.013435.L1").expect("epc"),
            root("L1")
        );
        assert!(matches!(
            Root::parse(SSCC),
            Ok(Root::Object(EpcKey::Sscc(_)))
        ));
        assert!(
            Root::parse("01/09506000134353/10/L1").is_err(),
            "check digit"
        );
        assert!(
            Root::parse("414/9506000000015").is_err(),
            "a location is no trace root"
        );
        assert!(Root::parse("shipment:packer").is_err());
        assert!("sideways".parse::<Direction>().is_err());
    }
}
