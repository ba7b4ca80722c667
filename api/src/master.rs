//! Master data of an organisation (issue "Traceability API", item 2): products (GTIN-14 with its
//! check digit, names in Chinese and English, the storage temperature band), locations (farms,
//! packhouses, ports; GLN where given) and plots of land with their EU Deforestation Regulation
//! geolocation ([`crate::geo`]). Records are JSON in the node's store, keyed by organisation;
//! a record once created is not overwritten (a second create answers 409), and a refused
//! request writes nothing. A GTIN belongs to one organisation on the node: its owner is indexed
//! ([`GTIN_OWNERS`]) in the same transaction as the product, a second organisation creating it
//! gets 409, and [`MasterData::product_by_gtin`] finds a product by GTIN alone (the GS1 Digital
//! Link resolver's lookup, [`crate::resolver`]).
//!
//! Writes stay with the owner (`WriteMasterData` in its own organisation). Reads go through
//! [`crate::access::require_visible`]: the owner, the partners it shares its records with and
//! auditors read them. Lists are paged as [`crate::paging`] says (`limit`, `next`), in id order.
//!
//! | route | action | answers |
//! |---|---|---|
//! | `POST /v1/orgs/{org}/products`, `.../locations`, `.../plots` | `WriteMasterData` (owner) | 201, the record; 409 if it exists |
//! | `GET /v1/orgs/{org}/products?limit=&next=`, `GET .../products/{gtin}` | `ReadRecords` (owner, its partners, auditors) | a page of products (`{"products", "next"}`), a product |
//! | `GET /v1/orgs/{org}/locations?limit=&next=`, `GET .../locations/{id}` | `ReadRecords` (owner, its partners, auditors) | a page of locations, a location |
//! | `GET /v1/orgs/{org}/plots?limit=&next=`, `GET .../plots/{id}` | `ReadRecords` (owner, its partners, auditors) | a page of plots, a plot with its GeoJSON and area |

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use gs1::{Gln, Gtin};
use ingest::IngestStorage;
use ledger::storage::SidecarRecord;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::access::{Caller, require, require_visible};
use crate::auth::directory::org_key as key;
use crate::auth::model::is_country_code;
use crate::auth::{Action, OrgId};
use crate::geo::PlotGeometry;
use crate::http::{ApiError, AppState, json_body, json_status};
use crate::paging::{Page, PageQuery, cursor, prefix_end, query};

/// Products by `org 0x00 gtin14`.
pub const PRODUCTS: &str = "md_products";
/// The owner of each registered GTIN: `gtin14` -> organisation id (written with the product,
/// in the same transaction; a GTIN belongs to one organisation on a node).
pub const GTIN_OWNERS: &str = "md_gtin_owners";
/// Most products the GTIN lookup keeps in memory (the Digital Link resolver's hot path).
pub const GTIN_CACHE_ENTRIES_MAX: usize = 100_000;
/// Locations by `org 0x00 id`.
pub const LOCATIONS: &str = "md_locations";
/// Plots by `org 0x00 id`.
pub const PLOTS: &str = "md_plots";
/// Longest name, in characters.
pub const NAME_CHARS_MAX: usize = 200;
/// The widest storage band taken, in hundredths of a degree Celsius.
pub const STORAGE_CENTI_C: std::ops::RangeInclusive<i32> = -8_000..=6_000;

/// A product.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Product {
    /// Its owner.
    pub org: OrgId,
    /// GTIN-14.
    pub gtin: Gtin,
    /// Name in English.
    pub name_en: String,
    /// Name in Chinese.
    pub name_zh: String,
    /// Lowest storage temperature, hundredths of °C.
    pub storage_min_centi_c: i32,
    /// Highest storage temperature, hundredths of °C.
    pub storage_max_centi_c: i32,
    /// When it was created (Unix ms).
    pub created_ms: u64,
}

/// What a location is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LocationKind {
    /// A farm or orchard.
    Farm,
    /// A packhouse.
    Packhouse,
    /// A cold store or warehouse.
    Warehouse,
    /// A seaport, airport or inland port.
    Port,
    /// A border crossing.
    BorderPost,
    /// A market or a retailer's site.
    Market,
}

/// A location.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Location {
    /// Its owner.
    pub org: OrgId,
    /// Its id within the organisation.
    pub id: OrgId,
    /// What it is.
    pub kind: LocationKind,
    /// Its name.
    pub name: String,
    /// ISO 3166-1 alpha-2 country code.
    pub country: String,
    /// Its GLN, where it has one.
    pub gln: Option<Gln>,
    /// When it was created (Unix ms).
    pub created_ms: u64,
}

/// A plot of land.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plot {
    /// Its owner.
    pub org: OrgId,
    /// Its id within the organisation.
    pub id: OrgId,
    /// Its name.
    pub name: String,
    /// ISO 3166-1 alpha-2 country code of production.
    pub country: String,
    /// The farm location it belongs to, if given.
    pub farm: Option<OrgId>,
    /// Its area in hectares: computed from the polygon, or declared for a point.
    pub area_ha: f64,
    /// GeoJSON, six decimals.
    pub geometry: Value,
    /// When it was created (Unix ms).
    pub created_ms: u64,
}

fn bad(reason: impl Into<String>) -> ApiError {
    ApiError::BadRequest(reason.into())
}

fn check_name(what: &str, text: &str) -> Result<(), ApiError> {
    if text.trim().is_empty()
        || text.chars().count() > NAME_CHARS_MAX
        || text.chars().any(char::is_control)
    {
        return Err(bad(format!(
            "{what} must be 1 to {NAME_CHARS_MAX} characters without control characters"
        )));
    }
    Ok(())
}

fn check_country(country: &str) -> Result<(), ApiError> {
    if is_country_code(country) {
        Ok(())
    } else {
        Err(bad(format!(
            "{country:?} is not an ISO 3166-1 alpha-2 country code (two upper-case letters)"
        )))
    }
}

/// The master-data store: one lock serialises "create if absent".
///
/// Products by GTIN are cached in memory, positive answers only and at most
/// [`GTIN_CACHE_ENTRIES_MAX`] of them: a product is never changed or deleted once created, so
/// a cached one is never stale, and a GTIN not yet registered is always read from the store,
/// so it is found the moment its product is created.
#[derive(Debug, Clone)]
pub struct MasterData<S> {
    storage: S,
    write: Arc<tokio::sync::Mutex<()>>,
    by_gtin: Arc<std::sync::RwLock<std::collections::HashMap<Gtin, Arc<Product>>>>,
}

impl<S: IngestStorage> MasterData<S> {
    /// The store over `storage`.
    pub fn new(storage: S) -> Self {
        Self {
            storage,
            write: Arc::new(tokio::sync::Mutex::new(())),
            by_gtin: Arc::default(),
        }
    }

    /// The product registered under `gtin` on this node, whichever organisation owns it
    /// (through [`GTIN_OWNERS`]; cached).
    ///
    /// # Errors
    /// 500 if the store fails or holds a record that does not decode.
    pub fn product_by_gtin(&self, gtin: Gtin) -> Result<Option<Arc<Product>>, ApiError> {
        // A poisoned lock only means a panic elsewhere while it was held; the map is still a
        // valid cache of immutable records.
        if let Some(found) = self
            .by_gtin
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&gtin)
        {
            return Ok(Some(found.clone()));
        }
        let digits = gtin.digits();
        let internal = |e: String| ApiError::Internal(e);
        let Some(owner) = self
            .storage
            .read(GTIN_OWNERS, digits.as_bytes())
            .map_err(|e| internal(format!("{e:#?}")))?
        else {
            return Ok(None);
        };
        let owner: OrgId = String::from_utf8(owner)
            .map_err(|e| internal(e.to_string()))?
            .parse()
            .map_err(|e| internal(format!("GTIN owner record: {e}")))?;
        let Some(bytes) = self
            .storage
            .read(PRODUCTS, &key(&owner, &digits))
            .map_err(|e| internal(format!("{e:#?}")))?
        else {
            return Err(internal(format!(
                "GTIN {digits} is owned by {owner} but its product record is missing"
            )));
        };
        let product: Arc<Product> =
            Arc::new(serde_json::from_slice(&bytes).map_err(|e| internal(e.to_string()))?);
        let mut cache = self
            .by_gtin
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if cache.len() >= GTIN_CACHE_ENTRIES_MAX {
            // Bounded: start over rather than track recency; the store answers the misses.
            cache.clear();
        }
        cache.insert(gtin, product.clone());
        Ok(Some(product))
    }

    /// Stores a new product and its GTIN's owner in one transaction, unless the organisation
    /// already has it or another organisation registered the GTIN (409 either way).
    async fn create_product(&self, product: &Product) -> Result<(), ApiError> {
        let digits = product.gtin.digits();
        let _guard = self.write.lock().await;
        let owner = self
            .storage
            .read(GTIN_OWNERS, digits.as_bytes())
            .map_err(|e| ApiError::Internal(format!("{e:#?}")))?;
        if let Some(owner) = owner {
            let owner = String::from_utf8_lossy(&owner);
            return Err(ApiError::Conflict(if owner == product.org.as_str() {
                format!("product {digits} of {} already exists", product.org)
            } else {
                format!("GTIN {digits} is already registered on this node by another organisation")
            }));
        }
        let value = serde_json::to_vec(product).map_err(|e| ApiError::Internal(e.to_string()))?;
        self.storage
            .put_records(vec![
                SidecarRecord {
                    table: PRODUCTS.to_owned(),
                    key: key(&product.org, &digits),
                    value,
                },
                SidecarRecord {
                    table: GTIN_OWNERS.to_owned(),
                    key: digits.into_bytes(),
                    value: product.org.as_str().as_bytes().to_vec(),
                },
            ])
            .await
            .map_err(|e| ApiError::Internal(format!("{e:#?}")))
    }

    /// Stores `value` under `key` in `table` unless the key is taken.
    async fn create<T: Serialize>(
        &self,
        table: &str,
        key: Vec<u8>,
        value: &T,
        what: String,
    ) -> Result<(), ApiError> {
        let _guard = self.write.lock().await;
        if self
            .storage
            .read(table, &key)
            .map_err(|e| ApiError::Internal(format!("{e:#?}")))?
            .is_some()
        {
            return Err(ApiError::Conflict(format!("{what} already exists")));
        }
        let value = serde_json::to_vec(value).map_err(|e| ApiError::Internal(e.to_string()))?;
        self.storage
            .put_records(vec![SidecarRecord {
                table: table.to_owned(),
                key,
                value,
            }])
            .await
            .map_err(|e| ApiError::Internal(format!("{e:#?}")))
    }

    /// A plot of `org` by its id (for the public journey of a lot harvested on it).
    ///
    /// # Errors
    /// [`ApiError::Internal`] if storage fails or the record does not decode.
    pub fn plot(&self, org: &OrgId, id: &OrgId) -> Result<Option<Plot>, ApiError> {
        self.get(PLOTS, &key(org, id.as_str()))?
            .map(|v| serde_json::from_value(v).map_err(|e| ApiError::Internal(e.to_string())))
            .transpose()
    }

    fn get(&self, table: &str, key: &[u8]) -> Result<Option<Value>, ApiError> {
        self.storage
            .read(table, key)
            .map_err(|e| ApiError::Internal(format!("{e:#?}")))?
            .map(|bytes| {
                serde_json::from_slice(&bytes).map_err(|e| ApiError::Internal(e.to_string()))
            })
            .transpose()
    }

    /// A page of an organisation's records of `table` in key (id) order, and the cursor of
    /// the next page.
    fn list(
        &self,
        table: &str,
        org: &OrgId,
        page: &Page,
    ) -> Result<(Vec<Value>, Option<String>), ApiError> {
        let prefix = key(org, "");
        let rows = self
            .storage
            .scan(
                table,
                &page.start(&prefix),
                &prefix_end(&prefix),
                page.limit + 1,
            )
            .map_err(|e| ApiError::Internal(format!("{e:#?}")))?;
        let more = rows.len() > page.limit;
        let rows = &rows[..rows.len().min(page.limit)];
        let records = rows
            .iter()
            .map(|(_, bytes)| {
                serde_json::from_slice(bytes).map_err(|e| ApiError::Internal(e.to_string()))
            })
            .collect::<Result<Vec<Value>, _>>()?;
        let next = if more {
            rows.last().map(|(key, _)| cursor(key))
        } else {
            None
        };
        Ok((records, next))
    }
}

/// The routes of this module, on the node's state.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/orgs/{org}/products",
            get(list_products).post(create_product),
        )
        .route("/v1/orgs/{org}/products/{gtin}", get(product))
        .route(
            "/v1/orgs/{org}/locations",
            get(list_locations).post(create_location),
        )
        .route("/v1/orgs/{org}/locations/{id}", get(location))
        .route("/v1/orgs/{org}/plots", get(list_plots).post(create_plot))
        .route("/v1/orgs/{org}/plots/{id}", get(plot))
}

fn org_of(text: &str) -> Result<OrgId, ApiError> {
    text.parse().map_err(|e| bad(format!("organisation: {e}")))
}

/// A new product.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewProduct {
    gtin: String,
    name_en: String,
    name_zh: String,
    storage_min_c: f64,
    storage_max_c: f64,
}

fn centi(what: &str, celsius: f64) -> Result<i32, ApiError> {
    let centi = (celsius * 100.0).round();
    if !celsius.is_finite()
        || !(f64::from(*STORAGE_CENTI_C.start())..=f64::from(*STORAGE_CENTI_C.end()))
            .contains(&centi)
    {
        return Err(bad(format!("{what} {celsius} °C is outside -80..=60 °C")));
    }
    // In range: the conversion is exact.
    #[allow(clippy::cast_possible_truncation)]
    Ok(centi as i32)
}

async fn create_product(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let org = org_of(&org)?;
    require(&caller, Action::WriteMasterData, Some(&org))?;
    let new: NewProduct = json_body(&bytes)?;
    let gtin: Gtin = new.gtin.parse().map_err(|e| bad(format!("gtin: {e}")))?;
    check_name("name_en", &new.name_en)?;
    check_name("name_zh", &new.name_zh)?;
    let (min, max) = (
        centi("storage_min_c", new.storage_min_c)?,
        centi("storage_max_c", new.storage_max_c)?,
    );
    if min >= max {
        return Err(bad("storage_min_c must be below storage_max_c"));
    }
    let product = Product {
        org: org.clone(),
        gtin,
        name_en: new.name_en,
        name_zh: new.name_zh,
        storage_min_centi_c: min,
        storage_max_centi_c: max,
        created_ms: state.clock.now_ms(),
    };
    state.master.create_product(&product).await?;
    Ok(json_status(StatusCode::CREATED, &json!(product)))
}

async fn list_products(
    state: State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
    paging: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    list_of(state, &caller, &org, paging, PRODUCTS, "products")
}

async fn product(
    state: State<AppState>,
    caller: Caller,
    Path((org, gtin)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let gtin: Gtin = gtin.parse().map_err(|e| bad(format!("gtin: {e}")))?;
    one_of(state, &caller, &org, PRODUCTS, "product", &gtin.digits())
}

/// A new location.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewLocation {
    id: String,
    kind: LocationKind,
    name: String,
    country: String,
    #[serde(default)]
    gln: Option<String>,
}

async fn create_location(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let org = org_of(&org)?;
    require(&caller, Action::WriteMasterData, Some(&org))?;
    let new: NewLocation = json_body(&bytes)?;
    let id: OrgId = new.id.parse().map_err(|e| bad(format!("id: {e}")))?;
    check_name("name", &new.name)?;
    check_country(&new.country)?;
    let gln = new
        .gln
        .map(|g| g.parse::<Gln>().map_err(|e| bad(format!("gln: {e}"))))
        .transpose()?;
    let location = Location {
        org: org.clone(),
        id: id.clone(),
        kind: new.kind,
        name: new.name,
        country: new.country,
        gln,
        created_ms: state.clock.now_ms(),
    };
    state
        .master
        .create(
            LOCATIONS,
            key(&org, id.as_str()),
            &location,
            format!("location {id} of {org}"),
        )
        .await?;
    Ok(json_status(StatusCode::CREATED, &json!(location)))
}

async fn list_locations(
    state: State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
    paging: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    list_of(state, &caller, &org, paging, LOCATIONS, "locations")
}

async fn location(
    state: State<AppState>,
    caller: Caller,
    Path((org, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    one_of(state, &caller, &org, LOCATIONS, "location", &id)
}

/// A new plot.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewPlot {
    id: String,
    name: String,
    country: String,
    #[serde(default)]
    farm: Option<String>,
    /// Required for a point; for a polygon the area is computed.
    #[serde(default)]
    area_ha: Option<f64>,
    geometry: Value,
}

async fn create_plot(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let org = org_of(&org)?;
    require(&caller, Action::WriteMasterData, Some(&org))?;
    let new: NewPlot = json_body(&bytes)?;
    let id: OrgId = new.id.parse().map_err(|e| bad(format!("id: {e}")))?;
    check_name("name", &new.name)?;
    check_country(&new.country)?;
    let farm = match new.farm {
        Some(farm) => {
            let farm: OrgId = farm.parse().map_err(|e| bad(format!("farm: {e}")))?;
            if state
                .master
                .get(LOCATIONS, &key(&org, farm.as_str()))?
                .is_none()
            {
                return Err(bad(format!("farm: {org} has no location {farm}")));
            }
            Some(farm)
        }
        None => None,
    };
    let geometry =
        PlotGeometry::from_geojson(&new.geometry).map_err(|e| bad(format!("geometry: {e}")))?;
    let area_ha = match (&geometry, new.area_ha) {
        (PlotGeometry::Point(_), Some(area)) if area.is_finite() && area > 0.0 => area,
        (PlotGeometry::Point(_), _) => {
            return Err(bad(
                "area_ha: a plot given as a point needs its area in hectares (above 0)",
            ));
        }
        (PlotGeometry::Polygon(_), _) => geometry.area_m2() / 10_000.0,
    };
    geometry
        .check_plot_area(area_ha)
        .map_err(|e| bad(format!("geometry: {e}")))?;
    let plot = Plot {
        org: org.clone(),
        id: id.clone(),
        name: new.name,
        country: new.country,
        farm,
        area_ha,
        geometry: geometry.to_geojson(),
        created_ms: state.clock.now_ms(),
    };
    state
        .master
        .create(
            PLOTS,
            key(&org, id.as_str()),
            &plot,
            format!("plot {id} of {org}"),
        )
        .await?;
    Ok(json_status(StatusCode::CREATED, &json!(plot)))
}

async fn list_plots(
    state: State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
    paging: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    list_of(state, &caller, &org, paging, PLOTS, "plots")
}

async fn plot(
    state: State<AppState>,
    caller: Caller,
    Path((org, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    one_of(state, &caller, &org, PLOTS, "plot", &id)
}

/// A page of an organisation's records of `table`, as `{"<plural>": [...], "next": ...}`;
/// the owner, the partners it shares with and auditors may read it.
fn list_of(
    State(state): State<AppState>,
    caller: &Caller,
    org: &str,
    paging: Result<Query<PageQuery>, QueryRejection>,
    table: &str,
    plural: &str,
) -> Result<Response, ApiError> {
    let org = org_of(org)?;
    require_visible(&state, caller, Action::ReadRecords, &org)?;
    let paging = query(paging)?;
    let page = Page::of(paging.limit, paging.next.as_deref())?;
    let (records, next) = state.master.list(table, &org, &page)?;
    Ok(json_status(
        StatusCode::OK,
        &json!({ plural: records, "next": next }),
    ))
}

/// One record of `table` by its id within the organisation; the owner, the partners it shares
/// with and auditors may read it.
fn one_of(
    State(state): State<AppState>,
    caller: &Caller,
    org: &str,
    table: &str,
    singular: &str,
    id: &str,
) -> Result<Response, ApiError> {
    let org = org_of(org)?;
    require_visible(&state, caller, Action::ReadRecords, &org)?;
    let found = state
        .master
        .get(table, &key(&org, id))?
        .ok_or_else(|| ApiError::NotFound(format!("no {singular} {id} of {org}")))?;
    Ok(json_status(StatusCode::OK, &found))
}
