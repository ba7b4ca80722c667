//! The GS1 Digital Link resolver of the node (GS1 Digital Link URI Syntax 1.2/1.4, GS1-Conformant
//! Resolver Standard 1.1), the QR codes of Digital Links, and scan counts of serialised items.
//!
//! | route | action | answers |
//! |---|---|---|
//! | `GET\|HEAD /01/{gtin}[/22/{cpv}][/10/{lot}][/21/{serial}][?{AI}=...]` | `ReadPublic` | 307 to the default link with `Link: <...>; rel="linkset"`; `?linkType=linkset` or `all` (or `Accept: application/linkset+json`): 200 RFC 9264 linkset; `?linkType=gs1:{term}`: 307 to that link, 404 if this node has none |
//! | `GET /01/{gtin}[/22/{cpv}]/10/{lot}[/21/{serial}]` with `Accept: text/html` and no `linkType` | `ReadPublic` | 200, the consumer page ([`crate::pages`]): a phone scanning the QR code gets the page, every other client the 307 above |
//! | `GET\|HEAD /{compressed}[?...]` | `ReadPublic` | a compressed Digital Link (one base64url path element, GS1 Digital Link 1.2 compression): answered exactly as its uncompressed form; 404 for a path element outside the base64url alphabet |
//! | `OPTIONS` on every route here but `/v1/scans` | — | 204, CORS preflight |
//! | `GET /.well-known/gs1resolver` | `ReadPublic` | the resolver description file |
//! | `GET /v1/public/01/...` | `ReadPublic` | the default link: a public JSON summary of the product (and lot/serial) |
//! | `GET /qr/01/...[.svg\|.png][?ec=L\|M\|Q\|H&module=1..32&base=https://...]` | `ReadPublic` | the QR code of the canonical Digital Link, SVG or PNG (suffix or `Accept`) |
//! | `GET /v1/scans/01/{gtin}/21/{serial}` | `ReadRecords` of the GTIN's owner (its partners, auditors) | scan count, first and last scan, address prefixes, countries, languages, the `suspicious` flag, the `reasons` that fired and the rule |
//!
//! Every resolver answer carries `Access-Control-Allow-Origin: *`. Bad syntax, a wrong check
//! digit, qualifiers out of order or a bad character answer 400 with a problem document naming
//! what is wrong (never a 200 error page); a GTIN no organisation registered on this node 404.
//! Key qualifiers must follow the order GS1 Digital Link gives them (22, 10, 21; any may be
//! left out); data attributes (e.g. `?17=261231`) are validated and passed on to the default
//! link. The path must start with the primary key: a resolver mounted under a path prefix is
//! not served here.
//!
//! A compressed Digital Link (`/AQnYUc1gmiCNV4JG` = `/01/05412345000013/10/ABC123`) is told
//! apart by the standard's rule — a single path element that is not a primary key AI — and
//! decompressed by `gs1` ([`gs1::digital_link::compression`]); the decoded link is then checked
//! and answered exactly as the uncompressed one (a stream that does not decode, an AI this
//! resolver does not serve or a wrong check digit is a 400).
//!
//! Links are written on the node's public base URL (`public_url` in the configuration, else
//! `http://{listen address}`). The resolver's hot path reads no storage for a known GTIN
//! ([`crate::master::MasterData::product_by_gtin`] caches products) and writes none: a GET of a
//! serialised key counts a scan in memory ([`scans`]), with the client's country when the
//! operator configured an IP-to-country table ([`geo`]).
//!
//! The client of a scan is the connection's peer, unless the peer is one of the configured
//! `trusted_proxies`: then it is the right-most `X-Forwarded-For` address that is not a trusted
//! proxy ([`client_address`]). The header is never read from anyone else, so a client cannot
//! pick the address (and country) it is counted under.

pub mod geo;
pub mod links;
pub mod qr;
pub mod scans;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use gs1::{DigitalLink, Gtin};
use serde_json::json;

use crate::access::{Caller, require, require_visible};
use crate::auth::Action;
use crate::http::{ApiError, AppState, json_status};
use crate::master::Product;
use geo::{CountryCode, GeoTable};
pub use links::BaseUrl;
use links::{LINKSET_JSON, LinkType, Wanted, paths};
use scans::{Scan, ScanCounter, ScanRule, address_prefix, primary_language};

/// The resolver's share of the node's state.
#[derive(Debug, Clone)]
pub struct Resolver {
    base: Arc<BaseUrl>,
    scans: ScanCounter,
    countries: Option<Arc<GeoTable>>,
    trusted_proxies: Arc<[IpAddr]>,
}

/// Most `X-Forwarded-For` hops examined (right to left) for the client's address.
pub const FORWARDED_HOPS_MAX: usize = 32;

/// The address a request is counted under: `peer`, unless `peer` is a trusted proxy; then the
/// right-most address of the `X-Forwarded-For` headers (taken in order as one list, RFC 9110
/// §5.3) that is not a trusted proxy. An entry that is not an address ends the walk: the
/// client is the trusted hop that wrote it. With every hop trusted, the left-most one.
/// IPv4-mapped IPv6 addresses compare as IPv4.
#[must_use]
pub fn client_address(peer: IpAddr, headers: &HeaderMap, trusted_proxies: &[IpAddr]) -> IpAddr {
    let trusted = |address: IpAddr| trusted_proxies.contains(&address.to_canonical());
    let mut client = peer.to_canonical();
    if !trusted(client) {
        return client;
    }
    let forwarded: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .collect();
    for hop in forwarded.iter().rev().take(FORWARDED_HOPS_MAX) {
        match hop.trim().parse::<IpAddr>() {
            Ok(address) => {
                client = address.to_canonical();
                if !trusted(client) {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    client
}

impl Resolver {
    /// A resolver writing links on `base`, with an empty scan counter (start its flush task
    /// with [`scans::start`]), the default rule, no IP-to-country table and no trusted proxy.
    #[must_use]
    pub fn new(base: BaseUrl) -> Self {
        Self::configured(base, ScanRule::default(), None, Vec::new())
    }

    /// A resolver with the node's scan settings: the rule, the operator's IP-to-country table
    /// and the proxies whose `X-Forwarded-For` is believed.
    #[must_use]
    pub fn configured(
        base: BaseUrl,
        rule: ScanRule,
        countries: Option<GeoTable>,
        trusted_proxies: Vec<IpAddr>,
    ) -> Self {
        let trusted_proxies: Vec<IpAddr> = trusted_proxies
            .into_iter()
            .map(|a| a.to_canonical())
            .collect();
        Self {
            base: Arc::new(base),
            scans: ScanCounter::new(rule),
            countries: countries.map(Arc::new),
            trusted_proxies: trusted_proxies.into(),
        }
    }

    /// Whether an IP-to-country table is configured.
    #[must_use]
    pub fn knows_countries(&self) -> bool {
        self.countries.is_some()
    }

    /// The country of `address` in the configured table.
    #[must_use]
    pub fn country(&self, address: IpAddr) -> Option<CountryCode> {
        self.countries.as_ref()?.lookup(address)
    }

    /// The address a request from `peer` is counted under ([`client_address`]).
    #[must_use]
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        client_address(peer, headers, &self.trusted_proxies)
    }

    /// The base URL links are written on.
    #[must_use]
    pub fn base(&self) -> &BaseUrl {
        &self.base
    }

    /// The scan counter.
    #[must_use]
    pub fn scans(&self) -> &ScanCounter {
        &self.scans
    }
}

/// The node's base URL: `public_url` if it is set, else `http://{listen}`.
///
/// # Errors
/// The reason `public_url` is not an `http`/`https` origin.
pub fn base_url(public_url: &str, listen: SocketAddr) -> Result<BaseUrl, links::BaseUrlError> {
    if public_url.is_empty() {
        BaseUrl::parse(&format!("http://{listen}"))
    } else {
        BaseUrl::parse(public_url)
    }
}

/// The routes of this module, on the node's state.
pub fn routes() -> Router<AppState> {
    // `get` also answers HEAD, without the body.
    Router::new()
        .route("/01/{*rest}", get(resolve).options(preflight))
        .route("/{compressed}", get(resolve_compressed).options(preflight))
        .route(
            "/.well-known/gs1resolver",
            get(description).options(preflight),
        )
        .route("/v1/public/01/{*rest}", get(public).options(preflight))
        .route("/qr/01/{*rest}", get(qr_code).options(preflight))
        .route("/v1/scans/01/{*rest}", get(scan_counts))
}

const ALLOWED_METHODS: &str = "GET, HEAD, OPTIONS";

/// Adds the CORS headers every resolver answer carries (GS1-Conformant Resolver Standard:
/// resolvers SHALL support CORS).
fn cors(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    headers.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("Link, Location, Content-Type, X-Digital-Link"),
    );
    response
}

fn answer(result: Result<Response, ApiError>) -> Response {
    cors(result.unwrap_or_else(IntoResponse::into_response))
}

/// CORS preflight: 204 whatever the path, so that a browser goes on to send the request and
/// can read its answer (a 400 problem for a bad link included).
async fn preflight() -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::NO_CONTENT;
    let headers = response.headers_mut();
    headers.insert(header::ALLOW, HeaderValue::from_static(ALLOWED_METHODS));
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(ALLOWED_METHODS),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("Accept, Accept-Language, Content-Type"),
    );
    headers.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("86400"),
    );
    cors(response)
}

/// Parses the Digital Link in `path` (which must start with the primary key) and `query`.
fn parse_link(path: &str, query: Option<&str>) -> Result<(DigitalLink, Gtin), ApiError> {
    let bad = |why: String| {
        ApiError::BadRequest(format!(
            "not a GS1 Digital Link this resolver serves: {why}"
        ))
    };
    let uri = match query {
        Some(q) => format!("https://resolver{path}?{q}"),
        None => format!("https://resolver{path}"),
    };
    let link = DigitalLink::parse(&uri).map_err(|e| bad(e.to_string()))?;
    if link.stem().is_some_and(|s| !s.prefix().is_empty()) {
        return Err(bad(
            "the path must start with the primary key, /01/{gtin}, with its qualifiers after it"
                .to_owned(),
        ));
    }
    let gtin = link
        .gtin()
        .ok_or_else(|| bad("this resolver serves GTINs, /01/{gtin}".to_owned()))?;
    Ok((link, gtin))
}

/// The product of a parsed link, or 404.
fn product_of(state: &AppState, gtin: Gtin) -> Result<Arc<Product>, ApiError> {
    state.master.product_by_gtin(gtin)?.ok_or_else(|| {
        ApiError::NotFound(format!(
            "no organisation registered GTIN {} on this node",
            gtin.digits()
        ))
    })
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn redirect(location: &str, link_header: &str) -> Result<Response, ApiError> {
    let value = |text: &str| {
        HeaderValue::from_str(text).map_err(|e| ApiError::Internal(format!("header {text:?}: {e}")))
    };
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::TEMPORARY_REDIRECT;
    let headers = response.headers_mut();
    headers.insert(header::LOCATION, value(location)?);
    headers.insert(header::LINK, value(link_header)?);
    headers.insert(header::VARY, HeaderValue::from_static("Accept"));
    Ok(response)
}

async fn resolve(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    answer(resolve_or_page(&state, peer, &method, &uri, &headers).await)
}

/// What a resolver request is answered with.
enum Resolved {
    /// A resolver answer (redirect, linkset, error).
    Answer(Response),
    /// A browser asking for the default link of a lot: the consumer page ([`crate::pages`]).
    Page(DigitalLink, Arc<Product>),
}

async fn resolve_or_page(
    state: &AppState,
    peer: SocketAddr,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    match resolve_key(state, peer, method, uri, headers)? {
        Resolved::Answer(response) => Ok(response),
        Resolved::Page(link, product) => {
            crate::pages::consumer_page(state, &link, &product, headers).await
        }
    }
}

/// A compressed Digital Link at the root. Static routes (`/healthz`, `/metrics`, ...) win over
/// this one; a path element outside the base64url alphabet (`/favicon.ico`) is not a link: 404.
async fn resolve_compressed(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let segment = uri.path().trim_start_matches('/');
    let base64url = segment
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !base64url {
        return cors(
            ApiError::NotFound(format!(
                "no resource at /{segment}; a GS1 Digital Link is /01/{{gtin}}/... or its compressed form"
            ))
            .into_response(),
        );
    }
    answer(resolve_or_page(&state, peer, &method, &uri, &headers).await)
}

/// Whether an EPCIS event on this node names the serialised item: only those are counted,
/// so that requests for made-up serials cannot fill the store.
fn known_item(state: &AppState, gtin: Gtin, serial: &gs1::Serial) -> Result<bool, ApiError> {
    let item = gs1::EpcKey::Sgtin {
        gtin,
        serial: serial.clone(),
    }
    .to_string();
    let rows = state
        .epcis
        .events()
        .index_rows(
            crate::epcis::store::IndexKind::Epc,
            &item,
            None,
            None,
            None,
            1,
        )
        .map_err(|e| ApiError::Internal(format!("{e:#?}")))?;
    Ok(!rows.is_empty())
}

fn resolve_key(
    state: &AppState,
    peer: SocketAddr,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<Resolved, ApiError> {
    let (link, gtin) = parse_link(uri.path(), uri.query())?;
    let wanted = links::wanted(link.link_type(), header_str(headers, header::ACCEPT))
        .map_err(ApiError::BadRequest)?;
    let product = product_of(state, gtin)?;
    let base = state.resolver.base();
    if let (true, Some(serial)) = (method == Method::GET, link.serial())
        && known_item(state, gtin, serial)?
    {
        let client = state.resolver.client(peer.ip(), headers);
        state.resolver.scans.record(
            gtin,
            serial,
            &Scan {
                at_ms: state.clock.now_ms(),
                prefix: address_prefix(client),
                language: header_str(headers, header::ACCEPT_LANGUAGE).and_then(primary_language),
                country: state.resolver.country(client),
            },
        );
    }
    let link_header = links::linkset_header(base, &link);
    let target = |t: LinkType| {
        links::links_for(base, &link)
            .into_iter()
            .find(|l| l.link_type == t)
            .map(|l| l.href)
            .ok_or_else(|| ApiError::Internal(format!("no {} link built", t.term())))
    };
    if matches!(wanted, Wanted::Default) && crate::pages::wants_page(&link, headers) {
        return Ok(Resolved::Page(link, product));
    }
    let answer = match wanted {
        Wanted::Linkset => {
            let mut response = json_status(StatusCode::OK, &links::linkset(base, &link, &product));
            let headers = response.headers_mut();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(LINKSET_JSON));
            headers.insert(header::VARY, HeaderValue::from_static("Accept"));
            Ok(response)
        }
        Wanted::Default => redirect(&target(LinkType::DefaultLink)?, &link_header),
        Wanted::One(t) => redirect(&target(t)?, &link_header),
        Wanted::NotServed(t) => Err(ApiError::NotFound(format!(
            "this node has no {t} link for {}; ?linkType=linkset lists the links it has",
            links::anchor(base, &link)
        ))),
    };
    answer.map(Resolved::Answer)
}

/// The resolver description file (GS1-Conformant Resolver Standard 1.1, `/.well-known/
/// gs1resolver`, checked against its description-file JSON schema's fields).
async fn description(State(state): State<AppState>) -> Response {
    cors(json_status(
        StatusCode::OK,
        &json!({
            "name": "agritrace GS1 Digital Link resolver / agritrace GS1 数字链接解析器",
            "resolverRoot": state.resolver.base().as_str(),
            "supportedPrimaryKeys": ["01"],
            "supportedLinkType": [{ "namespace": links::GS1_VOC, "prefix": "gs1:" }],
            "linkTypeDefaultCanBeLinkset": false,
            "linkTypeDefaultCanBeAll": false,
        }),
    ))
}

/// The part of a request path after a route prefix (`/v1/public`, `/qr`, `/v1/scans`).
fn after<'a>(uri: &'a Uri, prefix: &str) -> &'a str {
    uri.path().strip_prefix(prefix).unwrap_or(uri.path())
}

fn centi_to_c(centi: i32) -> f64 {
    f64::from(centi) / 100.0
}

async fn public(State(state): State<AppState>, uri: Uri) -> Response {
    answer(public_summary(&state, &uri))
}

fn public_summary(state: &AppState, uri: &Uri) -> Result<Response, ApiError> {
    let (link, gtin) = parse_link(after(uri, paths::PUBLIC), uri.query())?;
    let product = product_of(state, gtin)?;
    let owner = state
        .directory
        .org(&product.org)
        .map_err(|e| ApiError::Internal(format!("{e:#?}")))?;
    let base = state.resolver.base();
    let anchor = links::anchor(base, &link);
    let mut onward = serde_json::Map::new();
    onward.insert(
        "linkset".to_owned(),
        json!(format!("{anchor}?linkType=linkset")),
    );
    for target in links::links_for(base, &link) {
        if !matches!(target.link_type, LinkType::DefaultLink | LinkType::Pip) {
            onward.insert(target.link_type.term().to_owned(), json!(target.href));
        }
    }
    let qr = format!("{base}{}{}", paths::QR, link.path());
    onward.insert("qr_svg".to_owned(), json!(format!("{qr}.svg")));
    onward.insert("qr_png".to_owned(), json!(format!("{qr}.png")));
    let attributes: serde_json::Map<String, serde_json::Value> = link
        .attributes()
        .map(|(ai, value)| (ai.to_owned(), json!(value)))
        .collect();
    Ok(json_status(
        StatusCode::OK,
        &json!({
            "digital_link": anchor,
            "gtin": gtin.digits(),
            "lot": link.lot().map(|l| l.as_str()),
            "serial": link.serial().map(|s| s.as_str()),
            "attributes": attributes,
            "product": {
                "name": { "en": product.name_en, "zh": product.name_zh },
                "storage_c": {
                    "min": centi_to_c(product.storage_min_centi_c),
                    "max": centi_to_c(product.storage_max_centi_c),
                },
            },
            "owner": owner.map(|o| json!({ "id": o.id, "name": o.name, "country": o.country })),
            "links": onward,
        }),
    ))
}

/// The image format of a QR code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Svg,
    Png,
}

async fn qr_code(State(state): State<AppState>, uri: Uri, headers: HeaderMap) -> Response {
    answer(render_qr(&state, &uri, &headers))
}

fn render_qr(state: &AppState, uri: &Uri, headers: &HeaderMap) -> Result<Response, ApiError> {
    let bad = |e: &dyn std::fmt::Display| ApiError::BadRequest(e.to_string());
    let path = after(uri, paths::QR);
    // A suffix names the format; a value that really ends in `.svg` or `.png` is written with
    // its dot percent-encoded (`%2Epng`), which is the same Digital Link.
    let (path, format) = if let Some(p) = path.strip_suffix(".svg") {
        (p, Some(Format::Svg))
    } else if let Some(p) = path.strip_suffix(".png") {
        (p, Some(Format::Png))
    } else {
        (path, None)
    };
    let format = format.unwrap_or_else(|| {
        let accept = header_str(headers, header::ACCEPT).unwrap_or("");
        if accept.contains("image/png") && !accept.contains("image/svg+xml") {
            Format::Png
        } else {
            Format::Svg
        }
    });
    let (link, gtin) = parse_link(path, uri.query())?;
    let mut level = qr::Level::DEFAULT;
    let mut module = qr::ModulePx::DEFAULT;
    let mut base = state.resolver.base().clone();
    for (name, value) in link.params() {
        match name.as_str() {
            "ec" => level = qr::Level::parse(value).map_err(|e| bad(&e))?,
            "module" => module = qr::ModulePx::parse(value).map_err(|e| bad(&e))?,
            "base" => {
                base = BaseUrl::parse_https(value).map_err(|e| bad(&format!("base: {e}")))?;
            }
            other => {
                return Err(ApiError::BadRequest(format!(
                    "unknown parameter {other:?}: a QR code takes ec, module, base and GS1 data \
                     attributes"
                )));
            }
        }
    }
    product_of(state, gtin)?;
    let data = format!(
        "{}{}",
        links::anchor(&base, &link),
        links::attribute_query(&link)
    );
    let matrix = qr::Matrix::encode(&data, level).map_err(|e| bad(&e))?;
    let (content_type, body) = match format {
        Format::Svg => ("image/svg+xml", matrix.to_svg(module).into_bytes()),
        Format::Png => (
            "image/png",
            matrix.to_png(module).map_err(|e| match e {
                qr::QrError::Png(cause) => ApiError::Internal(cause),
                other => bad(&other),
            })?,
        ),
    };
    let mut response = Response::new(Body::from(body));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::VARY, HeaderValue::from_static("Accept"));
    if let Ok(value) = HeaderValue::from_str(&data) {
        headers.insert("x-digital-link", value);
    }
    Ok(response)
}

async fn scan_counts(State(state): State<AppState>, caller: Caller, uri: Uri) -> Response {
    answer(read_scans(&state, &caller, &uri).await)
}

async fn read_scans(state: &AppState, caller: &Caller, uri: &Uri) -> Result<Response, ApiError> {
    let (link, gtin) = parse_link(after(uri, "/v1/scans"), uri.query())?;
    let serial = link.serial().ok_or_else(|| {
        ApiError::BadRequest("scans are counted for serialised keys: /01/{gtin}/21/{serial}".into())
    })?;
    let Some(product) = state.master.product_by_gtin(gtin)? else {
        // Whether a GTIN is registered is public (the resolver says so); the token is still
        // required first so an anonymous caller learns nothing more here.
        require(caller, Action::ReadRecords, None)?;
        return Err(ApiError::NotFound(format!(
            "no organisation registered GTIN {} on this node",
            gtin.digits()
        )));
    };
    require_visible(state, caller, Action::ReadRecords, &product.org)?;
    let report = state
        .resolver
        .scans
        .read(state.sequencer.storage(), gtin, serial)
        .await
        .map_err(|e| ApiError::Internal(format!("{e:#?}")))?;
    let record = &report.record;
    Ok(json_status(
        StatusCode::OK,
        &json!({
            "digital_link": links::anchor(state.resolver.base(), &link),
            "gtin": gtin.digits(),
            "serial": serial.as_str(),
            "count": record.count,
            "first_ms": (record.count > 0).then_some(record.first_ms),
            "last_ms": (record.count > 0).then_some(record.last_ms),
            "address_prefixes": record.prefixes,
            "address_prefixes_capped": record.prefixes_capped,
            "languages": record.languages,
            "languages_capped": record.languages_capped,
            "country_table": state.resolver.knows_countries(),
            "countries": record.countries,
            "countries_capped": record.countries_capped,
            "suspicious": report.suspicious(),
            "reasons": report.reasons,
            "rule": state.resolver.scans.rule().text(),
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NodeConfig;

    #[test]
    fn the_base_url_is_the_public_url_or_the_listen_address() {
        let listen: SocketAddr = "127.0.0.1:8080".parse().expect("addr");
        assert_eq!(
            base_url("", listen).expect("base").as_str(),
            "http://127.0.0.1:8080"
        );
        assert_eq!(
            base_url("https://Trace.Example.cn/", listen)
                .expect("base")
                .as_str(),
            "https://trace.example.cn"
        );
        let config = |public_url: &str| NodeConfig {
            public_url: public_url.to_owned(),
            ..NodeConfig::default()
        };
        assert!(config("https://trace.example.cn").validate().is_ok());
        assert!(config("").validate().is_ok());
        for bad in ["trace.example.cn", "https://trace.example.cn/dl", "ftp://x"] {
            assert!(config(bad).validate().is_err(), "{bad}");
        }
        let mut env = NodeConfig::default();
        env.apply_env(&|name| {
            (name == "AGRITRACE_PUBLIC_URL").then(|| "https://trace.example.cn".to_owned())
        })
        .expect("env");
        assert_eq!(env.public_url, "https://trace.example.cn");
    }

    #[test]
    fn forwarded_addresses_are_believed_only_from_trusted_proxies() {
        let proxies: Vec<IpAddr> = ["127.0.0.1", "10.0.0.2"]
            .iter()
            .map(|a| a.parse().expect("ip"))
            .collect();
        let check = |peer: &str, forwarded: &[&str], expected: &str| {
            let mut headers = HeaderMap::new();
            for value in forwarded {
                headers.append(
                    "x-forwarded-for",
                    HeaderValue::from_str(value).expect("value"),
                );
            }
            let peer: IpAddr = peer.parse().expect("peer");
            assert_eq!(
                client_address(peer, &headers, &proxies).to_string(),
                expected,
                "{peer} {forwarded:?}"
            );
        };
        // No header, or a peer that is no trusted proxy: the peer.
        check("127.0.0.1", &[], "127.0.0.1");
        check("203.0.113.9", &["198.51.100.1"], "203.0.113.9");
        check("127.0.0.2", &["198.51.100.1"], "127.0.0.2");
        // A trusted proxy: the right-most hop it did not add itself.
        check("127.0.0.1", &["198.51.100.1"], "198.51.100.1");
        check("::ffff:127.0.0.1", &["198.51.100.1"], "198.51.100.1");
        check("127.0.0.1", &["6.6.6.6, 198.51.100.1"], "198.51.100.1");
        check(
            "127.0.0.1",
            &["6.6.6.6, 198.51.100.1, 10.0.0.2"],
            "198.51.100.1",
        );
        check(
            "127.0.0.1",
            &["6.6.6.6", "198.51.100.1 , 10.0.0.2"],
            "198.51.100.1",
        );
        check("127.0.0.1", &["2001:db8::7"], "2001:db8::7");
        check("127.0.0.1", &["::ffff:198.51.100.1"], "198.51.100.1");
        // Every hop trusted: the left-most; garbage ends the walk at the hop that wrote it.
        check("127.0.0.1", &["10.0.0.2"], "10.0.0.2");
        check("127.0.0.1", &["198.51.100.1, unknown"], "127.0.0.1");
        check(
            "127.0.0.1",
            &["198.51.100.1, nonsense, 10.0.0.2"],
            "10.0.0.2",
        );
        check("127.0.0.1", &["198.51.100.1:4431"], "127.0.0.1");
    }

    #[test]
    fn links_must_start_with_the_gtin() {
        let check = |path: &str, ok: bool| {
            assert_eq!(parse_link(path, None).is_ok(), ok, "{path}");
        };
        check("/01/09520123456788/22/2A/10/ABC/21/1", true);
        check("/01/09520123456788/21/1", true);
        check("/01/09520123456788/21/1/01/09520123456788", false);
        check("/00/106141411234567897", false);
        check("/01/09520123456788/235/X", false);
    }
}
