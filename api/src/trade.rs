//! Lots and shipments (issue "Traceability API": lots and shipments).
//!
//! A **lot** is a GTIN and a batch/lot number (GS1 AI 10) harvested on one of the
//! organisation's plots on a date, of a product the organisation or a partner that shares with
//! it describes. A (GTIN, lot) pair names one lot on the whole node: the index
//! `gtin14 0x00 lot → owner` decides it, and [`Trade::lot_by_key`] answers from it.
//!
//! A **shipment** is an exporter's: consignee, origin and destination countries, the customs
//! authorities it is declared to, containers (ISO 6346 numbers, check digit validated) and
//! logistic units (SSCCs), the lots it carries and the devices travelling with it (its own or a
//! sharing partner's), and its planned departure. Departure and arrival are recorded once each,
//! arrival not before departure. An index by authority (`authority 0x00 org 0x00 id`) makes a
//! customs officer's list one scan; `GET /v1/shipments` lists what the caller may see through
//! [`crate::access::visibility`], merging the scans of its sources in shipment-key order.
//!
//! Records are JSON in the node's store; every write checks everything first and then writes
//! all its records in one durable transaction under one lock, so a refused request leaves
//! nothing behind.
//!
//! | route | action | answers |
//! |---|---|---|
//! | `POST /v1/orgs/{org}/lots` | `WriteLots` | 201, the lot; 409 if the (GTIN, lot) exists on the node |
//! | `GET /v1/orgs/{org}/lots?limit=&next=`, `GET .../lots/{gtin}/{lot}` | `ReadRecords` (owner, its partners, auditors) | lots |
//! | `POST /v1/orgs/{org}/shipments` | `WriteShipments` | 201, the shipment; 409 if its id exists in the organisation |
//! | `POST .../shipments/{id}/departure`, `.../arrival` | `WriteShipments` | 201, the shipment; 409 when recorded already (or arrival before departure is recorded) |
//! | `GET /v1/orgs/{org}/shipments?status=&limit=&next=` | `ReadRecords` (owner, its partners, auditors) | the organisation's shipments |
//! | `GET /v1/orgs/{org}/shipments/{id}` | `ReadRecords`, if [`Visibility`] sees it | the shipment |
//! | `GET /v1/shipments?declared_to=&status=&limit=&next=` | `ReadRecords` | every shipment the caller may see |

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use gs1::keys::Sscc;
use gs1::{Gln, Gtin};
use ingest::IngestStorage;
use ledger::storage::SidecarRecord;
use protocol::DeviceId;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::access::{Caller, require, require_visible, visibility};
use crate::auth::directory::{ORGS, org_key};
use crate::auth::model::is_country_code;
use crate::auth::{Action, OrgId, Visibility};
use crate::http::{ApiError, AppState, json_body, json_status};
use crate::master::{PLOTS, PRODUCTS};
use crate::paging::{Page, PageQuery, cursor, prefix_end, query, successor};

/// Lots by `org 0x00 gtin14 0x00 lot`.
pub const LOTS: &str = "api_lots";
/// The node-wide index of lots: `gtin14 0x00 lot` → the owner's id.
pub const LOT_KEYS: &str = "api_lot_keys";
/// Shipments by `org 0x00 id`.
pub const SHIPMENTS: &str = "api_shipments";
/// Index: `authority 0x00 org 0x00 id` → empty: the shipments declared to an authority.
pub const SHIPMENTS_BY_AUTHORITY: &str = "api_shipments_by_authority";
/// Index: `item 0x00 org 0x00 id` → empty: the shipments carrying a lot, a container or a
/// logistic unit, `item` being its trace node id ([`Shipment::items`]).
pub const SHIPMENTS_BY_ITEM: &str = "api_shipments_by_item";
/// Most shipments [`Trade::shipments_carrying`] returns for one item.
pub const CARRYING_MAX: usize = 1_000;
/// Longest name or location text, in characters.
pub const TEXT_CHARS_MAX: usize = 200;
/// Most authorities one shipment is declared to.
pub const DECLARED_TO_MAX: usize = 16;
/// Most containers (and, separately, SSCCs) of one shipment.
pub const CONTAINERS_MAX: usize = 1_000;
/// Most lots one shipment carries.
pub const SHIPMENT_LOTS_MAX: usize = 1_000;
/// Most devices travelling with one shipment.
pub const SHIPMENT_DEVICES_MAX: usize = 100;
/// How far ahead of the node's clock a recorded departure or arrival may be (clock skew).
pub const EVENT_SKEW_MS: u64 = 5 * 60 * 1_000;
/// Largest lot quantity accepted.
pub const QUANTITY_MAX: f64 = 1e12;
/// Most shipment records one listing request reads before it answers a short page with a
/// cursor (filters may skip records).
pub const EXAMINE_MAX: usize = 10_000;
const DAY_MS: u64 = 86_400_000;

/// A quantity with its UN/ECE Recommendation 20 unit code (`KGM`, `TNE`, `H87`, ...).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quantity {
    /// How much (above 0).
    pub amount: f64,
    /// UN/ECE Recommendation 20 common code: 2 or 3 upper-case letters or digits.
    pub unit: String,
}

/// A harvest lot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lot {
    /// Its owner.
    pub org: OrgId,
    /// The trade item (GTIN-14).
    pub gtin: Gtin,
    /// The batch/lot number, GS1 AI (10).
    pub lot: gs1::Lot,
    /// Whose product record describes the GTIN (the owner or a partner sharing with it).
    pub product_owner: OrgId,
    /// The owner's plot it was harvested on.
    pub plot: OrgId,
    /// Harvest date, ISO 8601 `YYYY-MM-DD`.
    pub harvest_date: String,
    /// How much, if given.
    pub quantity: Option<Quantity>,
    /// When it was created (Unix ms).
    pub created_ms: u64,
}

/// The receiver of a shipment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Consignee {
    /// Its name.
    pub name: String,
    /// ISO 3166-1 alpha-2 country code.
    pub country: String,
    /// Its organisation on this node, if it has one.
    #[serde(default)]
    pub org: Option<OrgId>,
}

/// A place and a time: a planned or actual departure or arrival.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stop {
    /// Where (a port, a border post, a rail yard).
    pub location: String,
    /// Its GLN, where it has one.
    #[serde(default)]
    pub gln: Option<Gln>,
    /// When (Unix ms).
    pub time_ms: u64,
}

/// A lot named by its keys.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LotRef {
    /// GTIN-14.
    pub gtin: Gtin,
    /// Batch/lot number.
    pub lot: gs1::Lot,
}

/// Where a shipment is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShipmentStatus {
    /// Not departed.
    Planned,
    /// Departed, not arrived.
    Departed,
    /// Arrived.
    Arrived,
}

/// A shipment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shipment {
    /// The exporter.
    pub org: OrgId,
    /// Its id within the exporter.
    pub id: OrgId,
    /// Who receives it.
    pub consignee: Consignee,
    /// ISO 3166-1 alpha-2.
    pub origin_country: String,
    /// ISO 3166-1 alpha-2.
    pub destination_country: String,
    /// The customs authorities (organisations) it is declared to.
    pub declared_to: Vec<OrgId>,
    /// ISO 6346 container numbers.
    pub containers: Vec<String>,
    /// Serial Shipping Container Codes of its logistic units.
    pub ssccs: Vec<Sscc>,
    /// The lots it carries.
    pub lots: Vec<LotRef>,
    /// The devices travelling with it (16 hex digits each).
    pub devices: Vec<String>,
    /// The planned departure.
    pub planned_departure: Stop,
    /// The recorded departure.
    pub departure: Option<Stop>,
    /// The recorded arrival.
    pub arrival: Option<Stop>,
    /// When it was created (Unix ms).
    pub created_ms: u64,
}

impl Shipment {
    /// Where it is.
    #[must_use]
    pub fn status(&self) -> ShipmentStatus {
        match (&self.departure, &self.arrival) {
            (_, Some(_)) => ShipmentStatus::Arrived,
            (Some(_), None) => ShipmentStatus::Departed,
            (None, None) => ShipmentStatus::Planned,
        }
    }

    /// The trace node ids of what it carries: its lots and logistic units as canonical Digital
    /// Links, its containers as `container:{number}`.
    #[must_use]
    pub fn items(&self) -> Vec<String> {
        let lots = self.lots.iter().map(|l| {
            gs1::EpcKey::Lgtin {
                gtin: l.gtin,
                lot: l.lot.clone(),
            }
            .to_string()
        });
        let units = self.ssccs.iter().map(|s| gs1::EpcKey::Sscc(*s).to_string());
        let containers = self
            .containers
            .iter()
            .map(|c| crate::trace::container_node(c));
        lots.chain(units).chain(containers).collect()
    }

    /// The JSON answer: the record and its status.
    #[must_use]
    pub fn to_json(&self) -> Value {
        let mut value = json!(self);
        value["status"] = json!(self.status());
        value
    }
}

fn bad(reason: impl Into<String>) -> ApiError {
    ApiError::BadRequest(reason.into())
}

fn internal(error: impl std::fmt::Debug) -> ApiError {
    ApiError::Internal(format!("{error:#?}"))
}

fn check_text(what: &str, text: &str) -> Result<(), ApiError> {
    if text.trim().is_empty()
        || text.chars().count() > TEXT_CHARS_MAX
        || text.chars().any(char::is_control)
    {
        return Err(bad(format!(
            "{what} must be 1 to {TEXT_CHARS_MAX} characters without control characters"
        )));
    }
    Ok(())
}

fn check_country(what: &str, country: &str) -> Result<(), ApiError> {
    if is_country_code(country) {
        Ok(())
    } else {
        Err(bad(format!(
            "{what}: {country:?} is not an ISO 3166-1 alpha-2 country code (two upper-case letters)"
        )))
    }
}

/// An ISO 8601 calendar date `YYYY-MM-DD` (years 1900 to 9999) as days since 1970-01-01.
///
/// # Errors
/// 400 naming what is wrong.
pub fn parse_iso_date(what: &str, text: &str) -> Result<i64, ApiError> {
    let wrong = || {
        bad(format!(
            "{what}: {text:?} is not an ISO 8601 date YYYY-MM-DD"
        ))
    };
    let bytes = text.as_bytes();
    if bytes.len() != 10
        || bytes[4] != b'-'
        || bytes[7] != b'-'
        || !bytes
            .iter()
            .enumerate()
            .all(|(i, b)| i == 4 || i == 7 || b.is_ascii_digit())
    {
        return Err(wrong());
    }
    let number = |range: std::ops::Range<usize>| -> Result<i64, ApiError> {
        text.get(range)
            .and_then(|t| t.parse().ok())
            .ok_or_else(wrong)
    };
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return Err(wrong()),
    };
    if year < 1900 || !(1..=days_in_month).contains(&day) {
        return Err(wrong());
    }
    Ok(gs1::epcis::canon::days_from_civil(year, month, day))
}

/// The value of an ISO 6346 code character: digits are themselves; letters count from A = 10
/// upwards, skipping the multiples of 11 (11, 22 and 33), as ISO 6346's check digit
/// calculation assigns them.
fn iso6346_value(c: u8) -> Option<u32> {
    match c {
        b'0'..=b'9' => Some(u32::from(c - b'0')),
        b'A'..=b'Z' => {
            let mut value = 10 + u32::from(c - b'A');
            // Each multiple of 11 at or below the value is skipped.
            value += (value - 1) / 10;
            Some(value)
        }
        _ => None,
    }
}

/// Checks an ISO 6346 container number: owner code (3 letters), category identifier (U, J or
/// Z), serial number (6 digits) and check digit, as in `CSQU3054383`. The check digit is the
/// sum of each character's value times 2^position, modulo 11, with 10 written as 0.
///
/// # Errors
/// 400 naming what is wrong.
pub fn check_container(text: &str) -> Result<(), ApiError> {
    let bytes = text.as_bytes();
    let shape = bytes.len() == 11
        && bytes[..3].iter().all(u8::is_ascii_uppercase)
        && matches!(bytes[3], b'U' | b'J' | b'Z')
        && bytes[4..].iter().all(u8::is_ascii_digit);
    if !shape {
        return Err(bad(format!(
            "container {text:?} is not an ISO 6346 number: 3 upper-case letters of the owner \
             code, U, J or Z, 6 digits and the check digit"
        )));
    }
    let mut sum = 0u32;
    for (position, &c) in bytes[..10].iter().enumerate() {
        sum += iso6346_value(c).unwrap_or(0) << position;
    }
    let expected = (sum % 11) % 10;
    let found = u32::from(bytes[10] - b'0');
    if found != expected {
        return Err(bad(format!(
            "container {text:?}: the ISO 6346 check digit is {found}, expected {expected}"
        )));
    }
    Ok(())
}

/// The node-wide key of a lot.
fn lot_key(gtin: &Gtin, lot: &str) -> Vec<u8> {
    let mut key = gtin.digits().into_bytes();
    key.push(0);
    key.extend_from_slice(lot.as_bytes());
    key
}

/// The store key of a lot under its owner.
fn owned_lot_key(org: &OrgId, gtin: &Gtin, lot: &str) -> Vec<u8> {
    let mut key = org_key(org, &gtin.digits());
    key.push(0);
    key.extend_from_slice(lot.as_bytes());
    key
}

/// Where the shipments of a listing come from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    /// One organisation's shipments.
    Owner(OrgId),
    /// The shipments declared to one authority.
    Authority(OrgId),
    /// Every shipment.
    All,
}

/// A listing: where from, and which to keep.
#[derive(Debug, Clone)]
struct Listing {
    sources: Vec<Source>,
    visibility: Visibility,
    status: Option<ShipmentStatus>,
}

/// Lots and shipments over the node's store.
#[derive(Debug, Clone)]
pub struct Trade<S> {
    storage: S,
    write: Arc<tokio::sync::Mutex<()>>,
}

impl<S: IngestStorage> Trade<S> {
    /// The store over `storage`.
    pub fn new(storage: S) -> Self {
        Self {
            storage,
            write: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    fn get<T: serde::de::DeserializeOwned>(
        &self,
        table: &str,
        key: &[u8],
    ) -> Result<Option<T>, ApiError> {
        self.storage
            .read(table, key)
            .map_err(internal)?
            .map(|value| serde_json::from_slice(&value).map_err(internal))
            .transpose()
    }

    fn exists(&self, table: &str, key: &[u8]) -> Result<bool, ApiError> {
        Ok(self.storage.read(table, key).map_err(internal)?.is_some())
    }

    /// The lot `(gtin, lot)`, whoever owns it (for the resolver and the trace; callers decide
    /// what the reader may see).
    ///
    /// # Errors
    /// 500 if the store fails.
    pub fn lot_by_key(&self, gtin: &Gtin, lot: &str) -> Result<Option<Lot>, ApiError> {
        let Some(owner) = self
            .storage
            .read(LOT_KEYS, &lot_key(gtin, lot))
            .map_err(internal)?
        else {
            return Ok(None);
        };
        let owner: OrgId = std::str::from_utf8(&owner)
            .ok()
            .and_then(|text| text.parse().ok())
            .ok_or_else(|| internal("a corrupt lot index value"))?;
        self.get(LOTS, &owned_lot_key(&owner, gtin, lot))
    }

    /// A shipment of `org`.
    ///
    /// # Errors
    /// 500 if the store fails.
    pub fn shipment(&self, org: &OrgId, id: &OrgId) -> Result<Option<Shipment>, ApiError> {
        self.get(SHIPMENTS, &org_key(org, id.as_str()))
    }

    /// Stores a new lot unless its (GTIN, lot) is taken anywhere on the node.
    async fn create_lot(&self, lot: &Lot) -> Result<(), ApiError> {
        let index = lot_key(&lot.gtin, lot.lot.as_str());
        let _guard = self.write.lock().await;
        if self.exists(LOT_KEYS, &index)? {
            return Err(ApiError::Conflict(format!(
                "lot {} of GTIN {} already exists on this node",
                lot.lot,
                lot.gtin.digits()
            )));
        }
        let value = serde_json::to_vec(lot).map_err(internal)?;
        self.storage
            .put_records(vec![
                SidecarRecord {
                    table: LOTS.to_owned(),
                    key: owned_lot_key(&lot.org, &lot.gtin, lot.lot.as_str()),
                    value,
                },
                SidecarRecord {
                    table: LOT_KEYS.to_owned(),
                    key: index,
                    value: lot.org.as_str().as_bytes().to_vec(),
                },
            ])
            .await
            .map_err(internal)
    }

    fn shipment_record(shipment: &Shipment) -> Result<SidecarRecord, ApiError> {
        Ok(SidecarRecord {
            table: SHIPMENTS.to_owned(),
            key: org_key(&shipment.org, shipment.id.as_str()),
            value: serde_json::to_vec(shipment).map_err(internal)?,
        })
    }

    /// The shipments carrying `item` (a trace node id, see [`Shipment::items`]), at most
    /// [`CARRYING_MAX`].
    ///
    /// # Errors
    /// 500 if storage fails or a record is corrupt.
    pub fn shipments_carrying(&self, item: &str) -> Result<Vec<Shipment>, ApiError> {
        let mut from = item.as_bytes().to_vec();
        from.push(0);
        let mut to = item.as_bytes().to_vec();
        to.push(1);
        let keys: Vec<Vec<u8>> = self
            .storage
            .scan(SHIPMENTS_BY_ITEM, &from, &to, CARRYING_MAX)
            .map_err(internal)?
            .into_iter()
            .map(|(key, _)| key[from.len()..].to_vec())
            .collect();
        self.storage
            .read_many(SHIPMENTS, &keys)
            .map_err(internal)?
            .into_iter()
            .flatten()
            .map(|bytes| serde_json::from_slice(&bytes).map_err(internal))
            .collect()
    }

    /// Stores a new shipment and its authority and item index rows unless its id is taken.
    async fn create_shipment(&self, shipment: &Shipment) -> Result<(), ApiError> {
        let _guard = self.write.lock().await;
        if self.exists(SHIPMENTS, &org_key(&shipment.org, shipment.id.as_str()))? {
            return Err(ApiError::Conflict(format!(
                "shipment {} of {} already exists",
                shipment.id, shipment.org
            )));
        }
        let shipment_key = org_key(&shipment.org, shipment.id.as_str());
        let mut records = vec![Self::shipment_record(shipment)?];
        for authority in &shipment.declared_to {
            let mut key = org_key(authority, "");
            key.extend_from_slice(&shipment_key);
            records.push(SidecarRecord {
                table: SHIPMENTS_BY_AUTHORITY.to_owned(),
                key,
                value: Vec::new(),
            });
        }
        for item in shipment.items() {
            let mut key = item.into_bytes();
            key.push(0);
            key.extend_from_slice(&shipment_key);
            records.push(SidecarRecord {
                table: SHIPMENTS_BY_ITEM.to_owned(),
                key,
                value: Vec::new(),
            });
        }
        self.storage.put_records(records).await.map_err(internal)
    }

    /// Records a departure or an arrival (once each; an arrival after the departure, never
    /// before it).
    async fn record_stop(
        &self,
        org: &OrgId,
        id: &OrgId,
        arrival: bool,
        stop: Stop,
    ) -> Result<Shipment, ApiError> {
        let _guard = self.write.lock().await;
        let mut shipment = self
            .shipment(org, id)?
            .ok_or_else(|| ApiError::NotFound(format!("{org} has no shipment {id}")))?;
        if arrival {
            if shipment.arrival.is_some() {
                return Err(ApiError::Conflict(format!(
                    "shipment {id}: its arrival is recorded already"
                )));
            }
            let Some(departure) = &shipment.departure else {
                return Err(ApiError::Conflict(format!(
                    "shipment {id} has not departed; record its departure first"
                )));
            };
            if stop.time_ms < departure.time_ms {
                return Err(bad(format!(
                    "time_ms: the arrival ({}) is before the departure ({})",
                    stop.time_ms, departure.time_ms
                )));
            }
            shipment.arrival = Some(stop);
        } else {
            if shipment.departure.is_some() {
                return Err(ApiError::Conflict(format!(
                    "shipment {id}: its departure is recorded already"
                )));
            }
            shipment.departure = Some(stop);
        }
        self.storage
            .put_records(vec![Self::shipment_record(&shipment)?])
            .await
            .map_err(internal)?;
        Ok(shipment)
    }

    /// The first `count` shipment keys after `after` over all `sources`, in key order.
    fn merged_keys(
        &self,
        sources: &[Source],
        after: Option<&[u8]>,
        count: usize,
    ) -> Result<Vec<Vec<u8>>, ApiError> {
        let mut keys = BTreeSet::new();
        for source in sources {
            let (table, prefix) = match source {
                Source::Owner(org) => (SHIPMENTS, org_key(org, "")),
                Source::Authority(authority) => (SHIPMENTS_BY_AUTHORITY, org_key(authority, "")),
                Source::All => (SHIPMENTS, Vec::new()),
            };
            // Shipment keys in this source are the store keys less `strip` leading bytes.
            let strip = if matches!(source, Source::Authority(_)) {
                prefix.len()
            } else {
                0
            };
            let mut from = prefix.clone();
            if let Some(after) = after {
                let next = successor(after);
                if strip > 0 {
                    from.extend_from_slice(&next);
                } else if next > from {
                    from = next;
                }
            }
            let to = if prefix.is_empty() {
                vec![0xff]
            } else {
                prefix_end(&prefix)
            };
            for (key, _) in self
                .storage
                .scan(table, &from, &to, count)
                .map_err(internal)?
            {
                keys.insert(key[strip..].to_vec());
            }
        }
        Ok(keys.into_iter().take(count).collect())
    }

    /// A page of `listing`, and the cursor of the next page.
    fn list(
        &self,
        listing: &Listing,
        page: &Page,
    ) -> Result<(Vec<Shipment>, Option<String>), ApiError> {
        let batch = page.limit + 1;
        let mut out = Vec::new();
        let mut after = page.after.clone();
        let mut examined = 0;
        loop {
            let keys = self.merged_keys(&listing.sources, after.as_deref(), batch)?;
            let exhausted = keys.len() < batch;
            let values = self.storage.read_many(SHIPMENTS, &keys).map_err(internal)?;
            for (key, value) in keys.into_iter().zip(values) {
                if out.len() == page.limit {
                    return Ok((out, after.as_deref().map(cursor)));
                }
                after = Some(key);
                examined += 1;
                let Some(value) = value else {
                    return Err(internal("an indexed shipment has no record"));
                };
                let shipment: Shipment = serde_json::from_slice(&value).map_err(internal)?;
                if listing
                    .visibility
                    .sees(&shipment.org, &shipment.declared_to)
                    && listing.status.is_none_or(|s| s == shipment.status())
                {
                    out.push(shipment);
                }
            }
            if exhausted {
                return Ok((out, None));
            }
            if examined >= EXAMINE_MAX {
                return Ok((out, after.as_deref().map(cursor)));
            }
        }
    }
}

/// The routes of this module, on the node's state.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/orgs/{org}/lots", get(list_lots).post(create_lot))
        .route("/v1/orgs/{org}/lots/{gtin}/{lot}", get(lot))
        .route(
            "/v1/orgs/{org}/shipments",
            get(list_org_shipments).post(create_shipment),
        )
        .route("/v1/orgs/{org}/shipments/{id}", get(shipment))
        .route("/v1/orgs/{org}/shipments/{id}/departure", post(depart))
        .route("/v1/orgs/{org}/shipments/{id}/arrival", post(arrive))
        .route("/v1/shipments", get(list_shipments))
}

fn org_of(what: &str, text: &str) -> Result<OrgId, ApiError> {
    text.parse().map_err(|e| bad(format!("{what}: {e}")))
}

/// The organisations whose records `org` may build on: itself, then the partners that share
/// with it.
fn scope_of(state: &AppState, org: &OrgId) -> Result<Vec<OrgId>, ApiError> {
    let mut scope = vec![org.clone()];
    scope.extend(state.partners.shared_with(org).map_err(internal)?);
    Ok(scope)
}

/// A new lot.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewLot {
    gtin: String,
    lot: String,
    plot: String,
    harvest_date: String,
    #[serde(default)]
    product_owner: Option<String>,
    #[serde(default)]
    quantity: Option<Quantity>,
}

fn check_quantity(quantity: &Quantity) -> Result<(), ApiError> {
    if !quantity.amount.is_finite() || quantity.amount <= 0.0 || quantity.amount > QUANTITY_MAX {
        return Err(bad(format!(
            "quantity.amount must be above 0 and at most {QUANTITY_MAX}"
        )));
    }
    let unit = quantity.unit.as_bytes();
    if !(2..=3).contains(&unit.len())
        || !unit
            .iter()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    {
        return Err(bad(format!(
            "quantity.unit {:?} is not a UN/ECE Recommendation 20 code (e.g. KGM, TNE, H87)",
            quantity.unit
        )));
    }
    Ok(())
}

async fn create_lot(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let org = org_of("organisation", &org)?;
    require(&caller, Action::WriteLots, Some(&org))?;
    let new: NewLot = json_body(&body)?;
    let gtin: Gtin = new.gtin.parse().map_err(|e| bad(format!("gtin: {e}")))?;
    let lot = gs1::Lot::new(&new.lot).map_err(|e| bad(format!("lot: {e}")))?;
    let plot = org_of("plot", &new.plot)?;
    if !state.trade.exists(PLOTS, &org_key(&org, plot.as_str()))? {
        return Err(bad(format!("plot: {org} has no plot {plot}")));
    }
    let harvest = parse_iso_date("harvest_date", &new.harvest_date)?;
    let today = i64::try_from(state.clock.now_ms() / DAY_MS).map_err(internal)?;
    if harvest > today {
        return Err(bad(format!(
            "harvest_date {} is in the future",
            new.harvest_date
        )));
    }
    if let Some(quantity) = &new.quantity {
        check_quantity(quantity)?;
    }
    let scope = scope_of(&state, &org)?;
    let candidates = match new.product_owner {
        Some(owner) => {
            let owner = org_of("product_owner", &owner)?;
            if !scope.contains(&owner) {
                return Err(bad(format!(
                    "product_owner: {owner} does not share its records with {org}"
                )));
            }
            vec![owner]
        }
        None => scope,
    };
    let keys: Vec<Vec<u8>> = candidates
        .iter()
        .map(|owner| org_key(owner, &gtin.digits()))
        .collect();
    let found = state
        .trade
        .storage
        .read_many(PRODUCTS, &keys)
        .map_err(internal)?;
    let product_owner = candidates
        .into_iter()
        .zip(found)
        .find_map(|(owner, product)| product.map(|_| owner))
        .ok_or_else(|| {
            bad(format!(
                "gtin: no product {} of {org} or of a partner sharing with it",
                gtin.digits()
            ))
        })?;
    let lot = Lot {
        org,
        gtin,
        lot,
        product_owner,
        plot,
        harvest_date: new.harvest_date,
        quantity: new.quantity,
        created_ms: state.clock.now_ms(),
    };
    state.trade.create_lot(&lot).await?;
    Ok(json_status(StatusCode::CREATED, &json!(lot)))
}

async fn list_lots(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
    paging: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let org = org_of("organisation", &org)?;
    require_visible(&state, &caller, Action::ReadRecords, &org)?;
    let paging = query(paging)?;
    let page = Page::of(paging.limit, paging.next.as_deref())?;
    let prefix = org_key(&org, "");
    let rows = state
        .trade
        .storage
        .scan(
            LOTS,
            &page.start(&prefix),
            &prefix_end(&prefix),
            page.limit + 1,
        )
        .map_err(internal)?;
    let more = rows.len() > page.limit;
    let rows = &rows[..rows.len().min(page.limit)];
    let lots = rows
        .iter()
        .map(|(_, value)| serde_json::from_slice::<Value>(value).map_err(internal))
        .collect::<Result<Vec<_>, _>>()?;
    let next = if more {
        rows.last().map(|(key, _)| cursor(key))
    } else {
        None
    };
    Ok(json_status(
        StatusCode::OK,
        &json!({ "lots": lots, "next": next }),
    ))
}

async fn lot(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, gtin, lot)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let org = org_of("organisation", &org)?;
    require_visible(&state, &caller, Action::ReadRecords, &org)?;
    let gtin: Gtin = gtin.parse().map_err(|e| bad(format!("gtin: {e}")))?;
    let lot = gs1::Lot::new(&lot).map_err(|e| bad(format!("lot: {e}")))?;
    let found: Lot = state
        .trade
        .get(LOTS, &owned_lot_key(&org, &gtin, lot.as_str()))?
        .ok_or_else(|| {
            ApiError::NotFound(format!("{org} has no lot {lot} of GTIN {}", gtin.digits()))
        })?;
    Ok(json_status(StatusCode::OK, &json!(found)))
}

/// A new shipment.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewShipment {
    id: String,
    consignee: Consignee,
    origin_country: String,
    destination_country: String,
    #[serde(default)]
    declared_to: Vec<String>,
    #[serde(default)]
    containers: Vec<String>,
    #[serde(default)]
    ssccs: Vec<String>,
    #[serde(default)]
    lots: Vec<NewLotRef>,
    #[serde(default)]
    devices: Vec<String>,
    planned_departure: NewStop,
}

/// A lot named in a request (parsed with the field named in errors).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewLotRef {
    gtin: String,
    lot: String,
}

/// A place and time in a request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewStop {
    location: String,
    #[serde(default)]
    gln: Option<String>,
    time_ms: u64,
}

fn stop_of(what: &str, stop: NewStop) -> Result<Stop, ApiError> {
    check_text(&format!("{what}.location"), &stop.location)?;
    let gln = stop
        .gln
        .map(|g| {
            g.parse::<Gln>()
                .map_err(|e| bad(format!("{what}.gln: {e}")))
        })
        .transpose()?;
    Ok(Stop {
        location: stop.location,
        gln,
        time_ms: stop.time_ms,
    })
}

/// Refuses a list longer than `max` or holding one item twice.
fn check_list<T: std::hash::Hash + Eq + std::fmt::Debug>(
    what: &str,
    items: &[T],
    max: usize,
) -> Result<(), ApiError> {
    if items.len() > max {
        return Err(bad(format!("{what}: at most {max} entries")));
    }
    let mut seen = HashSet::new();
    for item in items {
        if !seen.insert(item) {
            return Err(bad(format!("{what}: {item:?} is named twice")));
        }
    }
    Ok(())
}

async fn create_shipment(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let org = org_of("organisation", &org)?;
    require(&caller, Action::WriteShipments, Some(&org))?;
    let new: NewShipment = json_body(&body)?;
    let id = org_of("id", &new.id)?;
    check_text("consignee.name", &new.consignee.name)?;
    check_country("consignee.country", &new.consignee.country)?;
    check_country("origin_country", &new.origin_country)?;
    check_country("destination_country", &new.destination_country)?;
    let trade = &state.trade;
    if let Some(consignee) = &new.consignee.org
        && !trade.exists(ORGS, consignee.as_str().as_bytes())?
    {
        return Err(bad(format!(
            "consignee.org: organisation {consignee} does not exist"
        )));
    }

    let declared_to = new
        .declared_to
        .iter()
        .map(|a| org_of("declared_to", a))
        .collect::<Result<Vec<OrgId>, _>>()?;
    check_list("declared_to", &declared_to, DECLARED_TO_MAX)?;
    for authority in &declared_to {
        if !trade.exists(ORGS, authority.as_str().as_bytes())? {
            return Err(bad(format!(
                "declared_to: organisation {authority} does not exist"
            )));
        }
    }

    check_list("containers", &new.containers, CONTAINERS_MAX)?;
    for container in &new.containers {
        check_container(container).map_err(|e| bad(format!("containers: {}", e.detail())))?;
    }
    let ssccs = new
        .ssccs
        .iter()
        .map(|s| {
            s.parse::<Sscc>()
                .map_err(|e| bad(format!("ssccs: {s:?}: {e}")))
        })
        .collect::<Result<Vec<Sscc>, _>>()?;
    check_list("ssccs", &ssccs, CONTAINERS_MAX)?;

    let scope = scope_of(&state, &org)?;
    let mut lots = Vec::with_capacity(new.lots.len());
    for named in &new.lots {
        let gtin: Gtin = named
            .gtin
            .parse()
            .map_err(|e| bad(format!("lots: gtin {:?}: {e}", named.gtin)))?;
        let lot = gs1::Lot::new(&named.lot).map_err(|e| bad(format!("lots: {e}")))?;
        lots.push(LotRef { gtin, lot });
    }
    check_list("lots", &lots, SHIPMENT_LOTS_MAX)?;
    for named in &lots {
        let visible = trade
            .lot_by_key(&named.gtin, named.lot.as_str())?
            .is_some_and(|lot| scope.contains(&lot.org));
        if !visible {
            return Err(bad(format!(
                "lots: no lot {} of GTIN {} of {org} or of a partner sharing with it",
                named.lot,
                named.gtin.digits()
            )));
        }
    }

    let devices = new
        .devices
        .iter()
        .map(|d| {
            d.parse::<DeviceId>()
                .map_err(|e| bad(format!("devices: {d:?}: {e}")))
        })
        .collect::<Result<Vec<DeviceId>, _>>()?;
    check_list("devices", &devices, SHIPMENT_DEVICES_MAX)?;
    for device in &devices {
        let usable = state
            .devices
            .owner(*device)?
            .is_some_and(|owner| scope.contains(&owner.org));
        if !usable {
            return Err(bad(format!(
                "devices: device {device} is neither {org}'s nor a partner's that shares with it"
            )));
        }
    }

    let shipment = Shipment {
        org,
        id,
        consignee: new.consignee,
        origin_country: new.origin_country,
        destination_country: new.destination_country,
        declared_to,
        containers: new.containers,
        ssccs,
        lots,
        devices: devices.iter().map(DeviceId::to_string).collect(),
        planned_departure: stop_of("planned_departure", new.planned_departure)?,
        departure: None,
        arrival: None,
        created_ms: state.clock.now_ms(),
    };
    state.trade.create_shipment(&shipment).await?;
    Ok(json_status(StatusCode::CREATED, &shipment.to_json()))
}

async fn record_stop(
    state: &AppState,
    caller: &Caller,
    org: &str,
    id: &str,
    body: &[u8],
    arrival: bool,
) -> Result<Response, ApiError> {
    let org = org_of("organisation", org)?;
    require(caller, Action::WriteShipments, Some(&org))?;
    let id = org_of("shipment id", id)?;
    let stop = stop_of(
        if arrival { "arrival" } else { "departure" },
        json_body(body)?,
    )?;
    let now = state.clock.now_ms();
    if stop.time_ms > now.saturating_add(EVENT_SKEW_MS) {
        return Err(bad(format!(
            "time_ms {} is in the future (now {now})",
            stop.time_ms
        )));
    }
    let shipment = state.trade.record_stop(&org, &id, arrival, stop).await?;
    Ok(json_status(StatusCode::CREATED, &shipment.to_json()))
}

async fn depart(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, id)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    record_stop(&state, &caller, &org, &id, &body, false).await
}

async fn arrive(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, id)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    record_stop(&state, &caller, &org, &id, &body, true).await
}

async fn shipment(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let org = org_of("organisation", &org)?;
    let id = org_of("shipment id", &id)?;
    require(&caller, Action::ReadRecords, None)?;
    let visibility = visibility(&state, &caller)?;
    let found = state.trade.shipment(&org, &id)?;
    match found {
        Some(shipment) if visibility.sees(&shipment.org, &shipment.declared_to) => {
            Ok(json_status(StatusCode::OK, &shipment.to_json()))
        }
        None if visibility.sees(&org, &[]) => {
            Err(ApiError::NotFound(format!("{org} has no shipment {id}")))
        }
        _ => Err(ApiError::Forbidden(format!(
            "{org} does not share this shipment with the caller"
        ))),
    }
}

/// A listing's query string.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ShipmentQuery {
    #[serde(default)]
    declared_to: Option<String>,
    #[serde(default)]
    status: Option<ShipmentStatus>,
    #[serde(default)]
    limit: Option<usize>,
    #[serde(default)]
    next: Option<String>,
}

fn shipments_page(
    state: &AppState,
    listing: &Listing,
    limit: Option<usize>,
    next: Option<&str>,
) -> Result<Response, ApiError> {
    let page = Page::of(limit, next)?;
    let (shipments, next) = state.trade.list(listing, &page)?;
    let shipments: Vec<Value> = shipments.iter().map(Shipment::to_json).collect();
    Ok(json_status(
        StatusCode::OK,
        &json!({ "shipments": shipments, "next": next }),
    ))
}

async fn list_org_shipments(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
    params: Result<Query<ShipmentQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let org = org_of("organisation", &org)?;
    require_visible(&state, &caller, Action::ReadRecords, &org)?;
    let params = query(params)?;
    if params.declared_to.is_some() {
        return Err(bad(
            "declared_to filters GET /v1/shipments, not an organisation's own list",
        ));
    }
    let listing = Listing {
        sources: vec![Source::Owner(org)],
        visibility: Visibility::All,
        status: params.status,
    };
    shipments_page(&state, &listing, params.limit, params.next.as_deref())
}

async fn list_shipments(
    State(state): State<AppState>,
    caller: Caller,
    params: Result<Query<ShipmentQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    require(&caller, Action::ReadRecords, None)?;
    let params = query(params)?;
    let visibility = visibility(&state, &caller)?;
    let sources = match (&params.declared_to, &visibility) {
        (Some(authority), _) => vec![Source::Authority(org_of("declared_to", authority)?)],
        (None, Visibility::All) => vec![Source::All],
        (None, Visibility::Scoped { orgs, authorities }) => orgs
            .iter()
            .cloned()
            .map(Source::Owner)
            .chain(authorities.iter().cloned().map(Source::Authority))
            .collect(),
    };
    let listing = Listing {
        sources,
        visibility,
        status: params.status,
    };
    shipments_page(&state, &listing, params.limit, params.next.as_deref())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use ledger::merkle::empty_root;
    use ledger::storage::redb::RedbStorage;

    use super::*;

    fn org(text: &str) -> OrgId {
        text.parse().expect("identifier")
    }

    fn shipment(owner: &str, id: &str, declared_to: &[&str], departed: bool) -> Shipment {
        let stop = Stop {
            location: "Mohan".to_owned(),
            gln: None,
            time_ms: 1,
        };
        Shipment {
            org: org(owner),
            id: org(id),
            consignee: Consignee {
                name: "Consignee".to_owned(),
                country: "TH".to_owned(),
                org: None,
            },
            origin_country: "CN".to_owned(),
            destination_country: "TH".to_owned(),
            declared_to: declared_to.iter().map(|a| org(a)).collect(),
            containers: Vec::new(),
            ssccs: Vec::new(),
            lots: Vec::new(),
            devices: Vec::new(),
            planned_departure: stop.clone(),
            departure: departed.then_some(stop),
            arrival: None,
            created_ms: 0,
        }
    }

    /// Every page of `listing` at `limit`, followed to the end.
    fn all_pages(trade: &Trade<RedbStorage>, listing: &Listing, limit: usize) -> Vec<String> {
        let mut seen = Vec::new();
        let mut next: Option<String> = None;
        for _ in 0..1_000 {
            let page = Page::of(Some(limit), next.as_deref()).expect("page");
            let (shipments, cursor) = trade.list(listing, &page).expect("list");
            assert!(shipments.len() <= limit);
            seen.extend(shipments.iter().map(|s| format!("{}/{}", s.org, s.id)));
            match cursor {
                Some(cursor) => next = Some(cursor),
                None => return seen,
            }
        }
        panic!("the pages never ended: {seen:?}");
    }

    #[tokio::test]
    async fn listings_merge_their_sources_and_page_through_each_visible_shipment_once() {
        let dir = tempfile::tempdir().expect("temp dir");
        let storage =
            RedbStorage::open(&dir.path().join("store.redb"), empty_root().0).expect("store");
        let trade = Trade::new(storage);
        let owners = ["aa", "bb", "cc"];
        let authorities = [
            &[][..],
            &["cn-customs"][..],
            &["th-customs"][..],
            &["cn-customs", "th-customs"][..],
        ];
        let mut model = BTreeMap::new();
        for n in 0..40_usize {
            let owner = owners[n % 3];
            let declared = authorities[n % 4];
            let record = shipment(owner, &format!("s{n:02}"), declared, n % 5 == 0);
            trade.create_shipment(&record).await.expect("create");
            model.insert(format!("{owner}/s{n:02}"), record);
        }
        let officer = Visibility::Scoped {
            orgs: BTreeSet::from([org("cn-customs")]),
            authorities: BTreeSet::from([org("cn-customs")]),
        };
        let partner = Visibility::Scoped {
            orgs: BTreeSet::from([org("aa"), org("cc")]),
            authorities: BTreeSet::new(),
        };
        let cases = [
            (
                Listing {
                    sources: vec![
                        Source::Owner(org("cn-customs")),
                        Source::Authority(org("cn-customs")),
                    ],
                    visibility: officer.clone(),
                    status: None,
                },
                officer.clone(),
                None,
            ),
            (
                Listing {
                    sources: vec![Source::Owner(org("aa")), Source::Owner(org("cc"))],
                    visibility: partner.clone(),
                    status: Some(ShipmentStatus::Departed),
                },
                partner.clone(),
                Some(ShipmentStatus::Departed),
            ),
            (
                Listing {
                    sources: vec![Source::Authority(org("th-customs"))],
                    visibility: partner.clone(),
                    status: None,
                },
                partner,
                None,
            ),
            (
                Listing {
                    sources: vec![Source::All],
                    visibility: Visibility::All,
                    status: Some(ShipmentStatus::Planned),
                },
                Visibility::All,
                Some(ShipmentStatus::Planned),
            ),
        ];
        for (index, (listing, visibility, status)) in cases.iter().enumerate() {
            let expected: Vec<String> = model
                .iter()
                .filter(|(_, s)| {
                    visibility.sees(&s.org, &s.declared_to)
                        && status.is_none_or(|st| st == s.status())
                        && listing.sources.iter().any(|source| match source {
                            Source::Owner(o) => s.org == *o,
                            Source::Authority(a) => s.declared_to.contains(a),
                            Source::All => true,
                        })
                })
                .map(|(key, _)| key.clone())
                .collect();
            assert!(!expected.is_empty(), "case {index} tests something");
            for limit in [1, 2, 3, 7, 100] {
                assert_eq!(
                    all_pages(&trade, listing, limit),
                    expected,
                    "case {index}, limit {limit}"
                );
            }
        }
    }

    fn check_date(text: &str, expected: Option<i64>) {
        assert_eq!(parse_iso_date("d", text).ok(), expected, "{text:?}");
    }

    #[test]
    fn iso_dates_are_calendar_dates() {
        // Expected day numbers from Python's `datetime.date(...) - date(1970, 1, 1)`.
        check_date("1970-01-01", Some(0));
        check_date("2000-03-01", Some(11_017));
        check_date("2024-02-29", Some(19_782));
        check_date("2026-11-27", Some(20_784));
        check_date("2023-02-29", None);
        check_date("1900-02-29", None);
        check_date("2024-13-01", None);
        check_date("2024-00-10", None);
        check_date("2024-04-31", None);
        check_date("2024-4-30", None);
        check_date("2024/04/30", None);
        check_date("+024-04-30", None);
        check_date("1899-12-31", None);
        check_date("2024-04-30T00:00", None);
    }

    fn check_iso6346(text: &str, expected: Result<(), &str>) {
        match (check_container(text), expected) {
            (Ok(()), Ok(())) => {}
            (Err(ApiError::BadRequest(detail)), Err(part)) => {
                assert!(detail.contains(part), "{detail:?} mentions {part:?}");
            }
            (got, want) => panic!("{text}: {got:?}, expected {want:?}"),
        }
    }

    #[test]
    fn container_numbers_follow_iso_6346() {
        // The example commonly used to explain the ISO 6346 check digit (e.g. the standard's
        // Wikipedia article): remainder 3.
        check_iso6346("CSQU3054383", Ok(()));
        check_iso6346("CSQU3054384", Err("check digit is 4, expected 3"));
        // A remainder of 10 is written 0 (and 0 is 0).
        check_iso6346("ABCU1234540", Ok(()));
        check_iso6346("ABCU1234560", Ok(()));
        check_iso6346("csqu3054383", Err("ISO 6346"));
        check_iso6346("CSQX3054383", Err("ISO 6346"));
        check_iso6346("CSQU305438", Err("ISO 6346"));
        check_iso6346("CSQU 305438 3", Err("ISO 6346"));
    }

    #[test]
    fn letters_skip_the_multiples_of_eleven() {
        let values: Vec<u32> = (b'A'..=b'Z').filter_map(iso6346_value).collect();
        assert_eq!(values.first(), Some(&10));
        assert_eq!(values[10], 21, "K");
        assert_eq!(values[11], 23, "L");
        assert_eq!(values[20], 32, "U");
        assert_eq!(values[21], 34, "V");
        assert_eq!(values.last(), Some(&38), "Z");
        assert!(values.iter().all(|v| v % 11 != 0));
    }

    #[test]
    fn quantities_need_a_positive_amount_and_a_unit_code() {
        let q = |amount: f64, unit: &str| Quantity {
            amount,
            unit: unit.to_owned(),
        };
        assert!(check_quantity(&q(12.5, "KGM")).is_ok());
        assert!(check_quantity(&q(1.0, "H87")).is_ok());
        assert!(check_quantity(&q(0.0, "KGM")).is_err());
        assert!(check_quantity(&q(f64::NAN, "KGM")).is_err());
        assert!(check_quantity(&q(1.0, "kg")).is_err());
        assert!(check_quantity(&q(1.0, "KGMS")).is_err());
    }
}
