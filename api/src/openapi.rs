//! The OpenAPI 3.1 description of the node's HTTP API, served at `GET /openapi.json` (public).
//!
//! The document is written by hand, here and only here: every route of the node (the log's
//! tiles from `ledger::http`, and every module's `routes()`), its parameters with the limits the
//! handlers enforce, request bodies with an example each, response content types and schemas
//! (JSON Schema 2020-12, as OpenAPI 3.1 takes it), the bearer token scheme and which operations
//! need it. Errors are RFC 9457 problem documents (`application/problem+json`) everywhere.
//!
//! Two tests keep it true to the code (`api/tests/openapi.rs`): one reads every route literal
//! of `api/src` and `ledger/src/http.rs` and checks that the document names exactly those paths
//! and methods; one sends each request body example to a running node and checks it is not
//! refused for its shape. The same test runs an independent validator
//! (`openapi-spec-validator`) over the served document, and the authorisation matrix
//! (`api/tests/authorization.rs`) checks each answer's status and content type against it.
//!
//! Routes whose path continues over several segments (`/01/{*rest}`, `/log/tile/{*path}`) are
//! described by the concrete forms they take: a Digital Link with its qualifiers in GS1 order,
//! a tile or an entry bundle.

use axum::Router;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use serde_json::{Map, Value, json};

use crate::http::{AppState, json_status};

/// The routes of this module, on the node's state.
pub fn routes() -> Router<AppState> {
    Router::new().route("/openapi.json", get(serve))
}

async fn serve() -> Response {
    json_status(StatusCode::OK, &document())
}

/// Who may call an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    /// Anyone.
    Public,
    /// A bearer token; the action's roles and the caller's organisation decide (403).
    Token,
    /// The node's own host only (no token).
    Local,
    /// A bearer token, or no token from the node's own host.
    TokenOrLocal,
}

/// One operation being described.
#[derive(Debug)]
struct Op {
    method: &'static str,
    path: String,
    value: Map<String, Value>,
    responses: Map<String, Value>,
    params: Vec<Value>,
}

fn op(
    method: &'static str,
    path: impl Into<String>,
    id: impl Into<String>,
    tag: &str,
    access: Access,
    summary: &str,
) -> Op {
    let mut value = Map::new();
    value.insert("operationId".into(), json!(id.into()));
    value.insert("tags".into(), json!([tag]));
    value.insert("summary".into(), json!(summary));
    let mut responses = Map::new();
    match access {
        Access::Public => {
            value.insert("security".into(), json!([]));
        }
        Access::Token | Access::TokenOrLocal => {
            let security = if access == Access::Token {
                json!([{ "bearer": [] }])
            } else {
                json!([{ "bearer": [] }, {}])
            };
            value.insert("security".into(), security);
            responses.insert("401".into(), error_ref("Unauthorized"));
            responses.insert("403".into(), error_ref("Forbidden"));
        }
        Access::Local => {
            value.insert("security".into(), json!([]));
            value.insert(
                "description".into(),
                json!("Allowed from the node's own host (loopback) only; no token."),
            );
            responses.insert("403".into(), error_ref("Forbidden"));
        }
    }
    responses.insert("500".into(), error_ref("InternalError"));
    Op {
        method,
        path: path.into(),
        value,
        responses,
        params: Vec::new(),
    }
}

fn error_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/responses/{name}") })
}

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn param_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/parameters/{name}") })
}

impl Op {
    fn describe(mut self, text: &str) -> Self {
        self.value.insert("description".into(), json!(text));
        self
    }

    /// Path and query parameters by component name.
    fn params(mut self, names: &[&str]) -> Self {
        self.params.extend(names.iter().map(|n| param_ref(n)));
        self
    }

    /// An inline query parameter.
    fn query(mut self, name: &str, description: &str, schema: Value) -> Self {
        self.params.push(json!({
            "name": name, "in": "query", "required": false,
            "description": description, "schema": schema,
        }));
        self
    }

    /// A JSON request body with its schema and an example; adds 400 and 415.
    fn json_body(self, schema: &str, example: Value) -> Self {
        self.body(&["application/json"], schema, example)
    }

    fn body(mut self, types: &[&str], schema: &str, example: Value) -> Self {
        let content: Map<String, Value> = types
            .iter()
            .map(|t| {
                (
                    (*t).to_owned(),
                    json!({ "schema": schema_ref(schema), "example": example }),
                )
            })
            .collect();
        self.value.insert(
            "requestBody".into(),
            json!({ "required": true, "content": content }),
        );
        self.responses.insert("400".into(), error_ref("BadRequest"));
        self.responses
            .insert("413".into(), error_ref("PayloadTooLarge"));
        self.responses
            .insert("415".into(), error_ref("UnsupportedMediaType"));
        self
    }

    /// A successful JSON answer.
    fn ok(self, code: u16, description: &str, schema: Value) -> Self {
        self.answer(code, description, &[("application/json", schema)])
    }

    /// A successful answer in the given content types.
    fn answer(mut self, code: u16, description: &str, content: &[(&str, Value)]) -> Self {
        let mut response = json!({ "description": description });
        if !content.is_empty() {
            let content: Map<String, Value> = content
                .iter()
                .map(|(t, s)| ((*t).to_owned(), json!({ "schema": s })))
                .collect();
            response["content"] = Value::Object(content);
        }
        self.responses.insert(code.to_string(), response);
        self
    }

    /// Adds a response header to the answer `code` (already described).
    fn header(mut self, code: u16, name: &str, description: &str) -> Self {
        if let Some(response) = self.responses.get_mut(&code.to_string()) {
            response["headers"][name] = json!({
                "description": description, "schema": { "type": "string" },
            });
        }
        self
    }

    /// Problem answers by status (400, 404, 409, 413, 503).
    fn errors(mut self, codes: &[u16]) -> Self {
        for code in codes {
            let name = match code {
                400 => "BadRequest",
                403 => "Forbidden",
                404 => "NotFound",
                409 => "Conflict",
                413 => "PayloadTooLarge",
                422 => "UnprocessableContent",
                429 => "TooManyRequests",
                503 => "ServiceUnavailable",
                _ => "InternalError",
            };
            self.responses.insert(code.to_string(), error_ref(name));
        }
        self
    }

    fn finish(mut self) -> (String, &'static str, Value) {
        // Every route but the probes is rate limited (`crate::ratelimit`).
        if !crate::ratelimit::is_exempt(&self.path) {
            self.responses
                .insert("429".into(), error_ref("TooManyRequests"));
        }
        if !self.params.is_empty() {
            self.value
                .insert("parameters".into(), Value::Array(self.params));
        }
        self.value
            .insert("responses".into(), Value::Object(self.responses));
        (self.path, self.method, Value::Object(self.value))
    }
}

fn string(description: &str) -> Value {
    json!({ "type": "string", "description": description })
}

fn pattern(pattern: &str, description: &str) -> Value {
    json!({ "type": "string", "pattern": pattern, "description": description })
}

fn int(description: &str) -> Value {
    json!({ "type": "integer", "minimum": 0, "description": description })
}

fn nullable(schema: &Value) -> Value {
    json!({ "oneOf": [schema, { "type": "null" }] })
}

/// A closed object (request bodies: the handlers refuse unknown fields).
fn closed(required: &[&str], properties: Value) -> Value {
    json!({
        "type": "object", "required": required, "properties": properties,
        "additionalProperties": false,
    })
}

/// An open object (answers may grow fields).
fn open(required: &[&str], properties: Value) -> Value {
    json!({ "type": "object", "required": required, "properties": properties })
}

fn page_of(field: &str, item: &str) -> Value {
    open(
        &[field, "next"],
        json!({
            field: { "type": "array", "items": schema_ref(item) },
            "next": nullable(&pattern(CURSOR_PATTERN, "the cursor of the next page; null on the last")),
        }),
    )
}

const ORG_PATTERN: &str = "^[a-z0-9][a-z0-9._-]{0,61}[a-z0-9]$";
const GTIN_PATTERN: &str = "^([0-9]{8}|[0-9]{12,14})$";
const DEVICE_PATTERN: &str = "^[0-9a-f]{16}$";
const HEX32_PATTERN: &str = "^[0-9a-fA-F]{64}$";
const HEX64_PATTERN: &str = "^[0-9a-fA-F]{128}$";
const CURSOR_PATTERN: &str = "^([0-9a-f]{2}){1,512}$";
const COUNTRY_PATTERN: &str = "^[A-Z]{2}$";
const DATE_PATTERN: &str = "^[0-9]{4}-[0-9]{2}-[0-9]{2}$";
const CONTAINER_PATTERN: &str = "^[A-Z]{3}[UJZ][0-9]{7}$";
const SSCC_PATTERN: &str = "^[0-9]{18}$";
const GLN_PATTERN: &str = "^[0-9]{13}$";
const UNIT_PATTERN: &str = "^[A-Z0-9]{2,3}$";
/// GS1 AI 10/21/22 values: 1 to 20 characters of GS1 AI encodable character set 82.
const AI82_PATTERN: &str = "^[!\"%-?A-Z_a-z]{1,20}$";

fn org_id(description: &str) -> Value {
    json!({ "type": "string", "pattern": ORG_PATTERN, "description": description })
}

fn name_text(description: &str) -> Value {
    json!({ "type": "string", "minLength": 1, "maxLength": 200, "description": description })
}

/// Path and query parameters shared by several operations.
fn parameters() -> Value {
    let path = |name: &str, description: &str, schema: Value, example: &str| {
        json!({
            "name": name, "in": "path", "required": true, "description": description,
            "schema": schema, "example": example,
        })
    };
    let org_schema = json!({ "type": "string", "pattern": ORG_PATTERN });
    json!({
        "org": path("org", "An organisation id: 2 to 63 characters of a-z, 0-9, and '-', '.' or '_' between them.", org_schema.clone(), "menghai-coop"),
        "member": path("member", "A member id (same rule as organisation ids).", org_schema.clone(), "li.wei"),
        "partner": path("partner", "The partner organisation's id.", org_schema.clone(), "packer"),
        "location": path("id", "A location id within the organisation.", org_schema.clone(), "farm-1"),
        "plot": path("id", "A plot id within the organisation.", org_schema.clone(), "plot-1"),
        "shipment": path("id", "A shipment id within the organisation.", org_schema, "shp-2026-001"),
        "gtin": path("gtin", "GTIN-8, -12, -13 or -14 with a valid check digit.", json!({ "type": "string", "pattern": GTIN_PATTERN }), "06901234567892"),
        "lot": path("lot", "Batch/lot number, GS1 AI (10).", json!({ "type": "string", "pattern": AI82_PATTERN }), "MH-2026-001"),
        "serial": path("serial", "Serial number, GS1 AI (21).", json!({ "type": "string", "pattern": AI82_PATTERN }), "1001"),
        "cpv": path("cpv", "Consumer product variant, GS1 AI (22).", json!({ "type": "string", "pattern": AI82_PATTERN }), "2A"),
        "device": path("device", "A device id: 16 lowercase hex digits.", json!({ "type": "string", "pattern": DEVICE_PATTERN }), "a1b2c3d4e5f60718"),
        "sequence": path("sequence", "The reading's sequence number (u64).", json!({ "type": "string", "pattern": "^[0-9]{1,20}$" }), "0"),
        "tokenId": path("id", "A token id: 16 lowercase hex digits.", json!({ "type": "string", "pattern": DEVICE_PATTERN }), "0123456789abcdef"),
        "captureId": path("id", "A capture job id.", json!({ "type": "string", "minLength": 1, "maxLength": 128 }), "0123456789abcdef0123456789abcdef"),
        "eventId": path("id", "The event's `eventID`, its hash `ni:///sha-256;…?ver=CBV2.0`, or the hash's 64 hex digits (percent-encoded).", json!({ "type": "string", "minLength": 1, "maxLength": 2048 }), "ni:///sha-256;0a7f1c5e3b2d4f6a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a?ver=CBV2.0"),
        "tileLevel": path("level", "The tile level (0 to 63).", json!({ "type": "string", "pattern": "^[0-9]{1,2}$" }), "0"),
        "tileIndex": path("index", "C2SP tlog-tiles index: groups of three digits, `x` before every group but the last (`x001/x234/067`), then `.p/<W>` for a partial tile. The value spans path segments.", json!({ "type": "string", "pattern": "^(x[0-9]{3}/)*[0-9]{3}(\\.p/[0-9]{1,3})?$" }), "000"),
        "limit": { "name": "limit", "in": "query", "required": false, "description": "Records in the page (default 100).", "schema": { "type": "integer", "minimum": 1, "maximum": 1000 } },
        "next": { "name": "next", "in": "query", "required": false, "description": "The cursor the previous page answered.", "schema": { "type": "string", "pattern": CURSOR_PATTERN } },
        "perPage": { "name": "perPage", "in": "query", "required": false, "description": "Results per page (EPCIS REST binding; default 30).", "schema": { "type": "integer", "minimum": 1, "maximum": 1000 } },
        "nextPageToken": { "name": "nextPageToken", "in": "query", "required": false, "description": "The token of the next page (also in the `Link: <…>; rel=\"next\"` header).", "schema": { "type": "string", "maxLength": 2048 } },
        "linkType": { "name": "linkType", "in": "query", "required": false, "description": "`linkset` or `all`: the RFC 9264 linkset; `gs1:{term}`: a redirect to that link. GS1 data attributes (`?17=261231`) are also taken.", "schema": { "type": "string", "maxLength": 64 } },
    })
}

fn problem_schema() -> Value {
    open(
        &["type", "title", "status"],
        json!({
            "type": { "type": "string", "description": "`about:blank`, or an EPCIS exception type." },
            "title": string("The status's reason phrase."),
            "status": { "type": "integer", "minimum": 400, "maximum": 599 },
            "detail": string("What is wrong, for a person (causes of 5xx are logged, never sent)."),
        }),
    )
}

fn stop_schema(request: bool) -> Value {
    let properties = json!({
        "location": name_text("A port, border post or rail yard."),
        "gln": if request { pattern(GLN_PATTERN, "Its GLN, if it has one.") } else { nullable(&pattern(GLN_PATTERN, "Its GLN.")) },
        "time_ms": int("Unix ms."),
    });
    if request {
        closed(&["location", "time_ms"], properties)
    } else {
        open(&["location", "time_ms"], properties)
    }
}

/// The schemas of records and request bodies.
#[allow(clippy::too_many_lines)] // One table of schemas reads best in one place.
fn schemas() -> Value {
    let quantity = closed(
        &["amount", "unit"],
        json!({
            "amount": { "type": "number", "exclusiveMinimum": 0, "maximum": 1e12 },
            "unit": pattern(UNIT_PATTERN, "UN/ECE Recommendation 20 code (KGM, TNE, H87, ...)."),
        }),
    );
    let consignee = closed(
        &["name", "country"],
        json!({
            "name": name_text("Its name."),
            "country": pattern(COUNTRY_PATTERN, "ISO 3166-1 alpha-2."),
            "org": org_id("Its organisation on this node, if it has one."),
        }),
    );
    let lot_ref = closed(
        &["gtin", "lot"],
        json!({ "gtin": pattern(GTIN_PATTERN, "GTIN"), "lot": pattern(AI82_PATTERN, "Batch/lot number.") }),
    );
    let geometry = json!({
        "type": "object", "required": ["type", "coordinates"],
        "description": "GeoJSON Point or Polygon, WGS84, six decimals (EU Deforestation Regulation: a polygon for plots over 4 ha).",
        "properties": {
            "type": { "enum": ["Point", "Polygon"] },
            "coordinates": { "type": "array" },
        },
    });
    let job = open(
        &["captureID", "running", "success", "events"],
        json!({
            "captureID": string("The job id."),
            "createdAt": nullable(&string("RFC 3339 time.")),
            "running": { "type": "boolean" },
            "success": { "type": "boolean" },
            "captureErrorBehaviour": { "const": "proceed" },
            "errors": { "type": "array", "items": schema_ref("Problem") },
            "eventCount": int("Events in the document."),
            "events": { "type": "array", "items": open(&["eventHash", "status"], json!({
                "eventID": nullable(&string("The client's eventID.")),
                "eventHash": string("GS1 canonical event hash."),
                "logIndex": nullable(&int("The TraceEvent entry's log index once committed.")),
                "status": { "enum": ["pending", "captured", "already_captured", "failed"] },
            })) },
        }),
    );
    let key = open(
        &["key_epoch", "public_key", "status"],
        json!({
            "key_epoch": int("Key epoch (1 = first key)."),
            "public_key": pattern(HEX32_PATTERN, "Ed25519 public key."),
            "status": { "enum": ["active", "revoked"] },
            "effective_time_ms": int("When the key took effect."),
            "log_index": nullable(&int("The KeyEvent's log index.")),
            "revocation": { "type": ["object", "null"] },
        }),
    );
    merge([
        json!({
            "Problem": problem_schema(),
            "Whoami": open(&["org", "member", "roles", "token"], json!({
                "org": org_id("The caller's organisation."),
                "member": org_id("The caller's member id."),
                "roles": { "type": "array", "items": { "$ref": "#/components/schemas/Role" } },
                "token": pattern(DEVICE_PATTERN, "The token's id."),
            })),
            "Role": { "enum": ["admin", "producer", "exporter", "carrier", "inspector", "customs", "auditor"] },
            "Organisation": open(&["id", "name", "country", "created_ms"], json!({
                "id": org_id("Its id."), "name": string("Its name."),
                "country": pattern(COUNTRY_PATTERN, "ISO 3166-1 alpha-2."), "created_ms": int("Unix ms."),
            })),
            "NewOrganisation": closed(&["id", "name", "country"], json!({
                "id": org_id("Its id."), "name": name_text("Its name."),
                "country": pattern(COUNTRY_PATTERN, "ISO 3166-1 alpha-2."),
            })),
            "Member": open(&["org", "id", "name", "roles"], json!({
                "org": org_id("Its organisation."), "id": org_id("Its id."), "name": string("Its name."),
                "roles": { "type": "array", "items": { "$ref": "#/components/schemas/Role" } },
                "created_ms": int("Unix ms."),
            })),
            "NewMember": closed(&["id", "name", "roles"], json!({
                "id": org_id("Its id."), "name": name_text("Its name."),
                "roles": { "type": "array", "items": { "$ref": "#/components/schemas/Role" }, "minItems": 1 },
            })),
            "Token": open(&["id", "org", "member", "label", "created_ms"], json!({
                "id": pattern(DEVICE_PATTERN, "The token's id."), "org": org_id("Organisation."),
                "member": org_id("Member."), "label": string("Label."), "created_ms": int("Unix ms."),
                "revoked_ms": nullable(&int("When it was revoked.")),
                "token": string("The secret, only in the answer that issues it."),
            })),
            "NewToken": closed(&[], json!({ "label": { "type": "string", "maxLength": 200 } })),
        }),
        json!({
            "Partnership": open(&["owner", "partner", "since_ms"], json!({
                "owner": org_id("Whose records are shared."), "partner": org_id("Who sees them."),
                "since_ms": int("Unix ms."), "ended_ms": nullable(&int("When the share ended.")),
            })),
            "Partners": open(&["org", "shares_with", "shared_by"], json!({
                "org": org_id("The organisation."),
                "shares_with": { "type": "array", "items": open(&["org"], json!({ "org": org_id("Partner."), "since_ms": int("Unix ms.") })) },
                "shared_by": { "type": "array", "items": open(&["org"], json!({ "org": org_id("Owner."), "since_ms": int("Unix ms.") })) },
            })),
            "NewShare": closed(&["partner"], json!({ "partner": org_id("The organisation to share with.") })),
        }),
        json!({
            "Product": open(&["org", "gtin", "name_en", "name_zh"], json!({
                "org": org_id("Owner."), "gtin": pattern("^[0-9]{14}$", "GTIN-14."),
                "name_en": string("Name in English."), "name_zh": string("Name in Chinese."),
                "storage_min_centi_c": { "type": "integer" }, "storage_max_centi_c": { "type": "integer" },
                "created_ms": int("Unix ms."),
            })),
            "NewProduct": closed(&["gtin", "name_en", "name_zh", "storage_min_c", "storage_max_c"], json!({
                "gtin": pattern(GTIN_PATTERN, "GTIN with a valid check digit."),
                "name_en": name_text("Name in English."), "name_zh": name_text("Name in Chinese."),
                "storage_min_c": { "type": "number", "minimum": -80, "maximum": 60 },
                "storage_max_c": { "type": "number", "minimum": -80, "maximum": 60 },
            })),
            "LocationKind": { "enum": ["farm", "packhouse", "warehouse", "port", "border_post", "market"] },
            "Location": open(&["org", "id", "kind", "name", "country"], json!({
                "org": org_id("Owner."), "id": org_id("Id."), "kind": schema_ref("LocationKind"),
                "name": string("Name."), "country": pattern(COUNTRY_PATTERN, "ISO 3166-1 alpha-2."),
                "gln": nullable(&pattern(GLN_PATTERN, "GLN.")), "created_ms": int("Unix ms."),
            })),
            "NewLocation": closed(&["id", "kind", "name", "country"], json!({
                "id": org_id("Id."), "kind": schema_ref("LocationKind"), "name": name_text("Name."),
                "country": pattern(COUNTRY_PATTERN, "ISO 3166-1 alpha-2."),
                "gln": pattern(GLN_PATTERN, "GLN with a valid check digit."),
            })),
            "Plot": open(&["org", "id", "name", "country", "area_ha", "geometry"], json!({
                "org": org_id("Owner."), "id": org_id("Id."), "name": string("Name."),
                "country": pattern(COUNTRY_PATTERN, "Country of production."),
                "farm": nullable(&org_id("Its farm location.")), "area_ha": { "type": "number" },
                "geometry": geometry, "created_ms": int("Unix ms."),
            })),
            "NewPlot": closed(&["id", "name", "country", "geometry"], json!({
                "id": org_id("Id."), "name": name_text("Name."),
                "country": pattern(COUNTRY_PATTERN, "Country of production."),
                "farm": org_id("A farm location of the organisation."),
                "area_ha": { "type": "number", "exclusiveMinimum": 0, "description": "Required for a point." },
                "geometry": geometry,
            })),
        }),
        json!({
            "Device": open(&["device_id", "org", "keys"], json!({
                "device_id": pattern(DEVICE_PATTERN, "Device id."), "org": org_id("Owner."),
                "name": nullable(&string("Name.")), "since_ms": int("Unix ms."), "claimed": { "type": "boolean" },
                "keys": { "type": "array", "items": key },
                "last_seen": { "type": ["object", "null"] },
            })),
            "DeviceHealth": open(&["device_id", "org", "window", "readings_examined", "last_reading", "clock", "outbox", "keys"], json!({
                "device_id": pattern(DEVICE_PATTERN, "Device id."), "org": org_id("Owner."),
                "window": int("Sequence numbers looked back over, up to the last committed."),
                "readings_examined": int("Committed readings in the window."),
                "last_reading": { "type": ["object", "null"], "description": "sequence, device_time_ms, ingest_time_ms, battery_mv, clock_skewed; null before the first reading." },
                "clock": { "type": ["object", "null"], "description": "offset_ms, offset_min_ms, offset_max_ms (device time minus ingest time) and skewed_readings over the window." },
                "outbox": { "type": ["object", "null"], "description": "first_sequence, last_sequence, missing (sequence numbers absent from the window), gaps [{first, last}] (at most 100), gaps_listed_all, dropped_samples (the device's cumulative count) and dropped_samples_in_window." },
                "keys": { "type": "array", "items": key },
            })),
            "QuarantineRecord": open(&["id", "reason", "ingest_time_ms", "topic", "original_len", "bytes"], json!({
                "id": int("Arrival-ordered id."),
                "reason": { "type": "string", "enum": ["undecodable", "oversized", "topic_device_mismatch", "unknown_device", "revoked_key", "bad_signature", "conflicting_replay"] },
                "sequence": nullable(&int("The sequence number the reading claims, when it decoded.")),
                "ingest_time_ms": int("Unix ms."),
                "topic": string("The MQTT topic it came on."),
                "original_len": int("Bytes before cutting."),
                "bytes": string("The refused bytes, hex, cut at the node's quarantine limit."),
            })),
            "NewDevice": closed(&["device_id", "public_key"], json!({
                "device_id": pattern(DEVICE_PATTERN, "Device id."),
                "public_key": pattern(HEX32_PATTERN, "Ed25519 public key."),
                "name": name_text("A name."),
                "mqtt_password_hash": { "type": "string", "description": "Mosquitto `$7$` PBKDF2-SHA512 hash of the device's MQTT password (broker.device_auth); stored with the registration." },
            })),
            "Rotation": closed(&["key_epoch", "public_key", "signature"], json!({
                "key_epoch": { "type": "integer", "minimum": 0, "maximum": 4_294_967_295_u64 },
                "public_key": pattern(HEX32_PATTERN, "The new Ed25519 key."),
                "signature": pattern(HEX64_PATTERN, "The old key's signature over the key rotation message."),
            })),
            "Revocation": closed(&[], json!({
                "key_epoch": { "type": "integer", "minimum": 0, "maximum": 4_294_967_295_u64 },
                "effective_time_ms": int("Within 5 minutes of now (default: now)."),
            })),
            "Claim": closed(&["signature"], json!({
                "signature": pattern(HEX64_PATTERN, "The device key's signature over the claim message."),
                "name": name_text("A name."),
            })),
            "Quantity": quantity,
        }),
        json!({
            "Lot": open(&["org", "gtin", "lot", "product_owner", "plot", "harvest_date"], json!({
                "org": org_id("Owner."), "gtin": pattern("^[0-9]{14}$", "GTIN-14."),
                "lot": string("Batch/lot number."), "product_owner": org_id("Whose product record describes the GTIN."),
                "plot": org_id("Plot of harvest."), "harvest_date": pattern(DATE_PATTERN, "ISO 8601 date."),
                "quantity": nullable(&schema_ref("Quantity")), "created_ms": int("Unix ms."),
            })),
            "NewLot": closed(&["gtin", "lot", "plot", "harvest_date"], json!({
                "gtin": pattern(GTIN_PATTERN, "GTIN of a product of the organisation or a partner sharing with it."),
                "lot": pattern(AI82_PATTERN, "Batch/lot number, GS1 AI (10)."),
                "plot": org_id("A plot of the organisation."),
                "harvest_date": pattern(DATE_PATTERN, "ISO 8601 date, not in the future."),
                "product_owner": org_id("Whose product record to use."),
                "quantity": schema_ref("Quantity"),
            })),
            "Consignee": consignee,
            "LotRef": lot_ref,
            "NewStop": stop_schema(true),
            "Stop": stop_schema(false),
            "ShipmentStatus": { "enum": ["planned", "departed", "arrived"] },
        }),
        json!({
            "Shipment": open(&["org", "id", "consignee", "declared_to", "status"], json!({
                "org": org_id("The exporter."), "id": org_id("Id."), "consignee": { "type": "object" },
                "origin_country": pattern(COUNTRY_PATTERN, "ISO 3166-1 alpha-2."),
                "destination_country": pattern(COUNTRY_PATTERN, "ISO 3166-1 alpha-2."),
                "declared_to": { "type": "array", "items": org_id("A customs authority.") },
                "containers": { "type": "array", "items": pattern(CONTAINER_PATTERN, "ISO 6346.") },
                "ssccs": { "type": "array", "items": pattern(SSCC_PATTERN, "SSCC.") },
                "lots": { "type": "array", "items": { "type": "object" } },
                "devices": { "type": "array", "items": pattern(DEVICE_PATTERN, "Device id.") },
                "planned_departure": schema_ref("Stop"),
                "departure": nullable(&schema_ref("Stop")), "arrival": nullable(&schema_ref("Stop")),
                "created_ms": int("Unix ms."), "status": schema_ref("ShipmentStatus"),
            })),
            "NewShipment": closed(&["id", "consignee", "origin_country", "destination_country", "planned_departure"], json!({
                "id": org_id("Id within the organisation."), "consignee": schema_ref("Consignee"),
                "origin_country": pattern(COUNTRY_PATTERN, "ISO 3166-1 alpha-2."),
                "destination_country": pattern(COUNTRY_PATTERN, "ISO 3166-1 alpha-2."),
                "declared_to": { "type": "array", "maxItems": 16, "uniqueItems": true, "items": org_id("A customs authority on this node.") },
                "containers": { "type": "array", "maxItems": 1000, "uniqueItems": true, "items": pattern(CONTAINER_PATTERN, "ISO 6346 with check digit.") },
                "ssccs": { "type": "array", "maxItems": 1000, "uniqueItems": true, "items": pattern(SSCC_PATTERN, "SSCC with check digit.") },
                "lots": { "type": "array", "maxItems": 1000, "items": schema_ref("LotRef") },
                "devices": { "type": "array", "maxItems": 100, "uniqueItems": true, "items": pattern(DEVICE_PATTERN, "A device of the organisation or a sharing partner.") },
                "planned_departure": schema_ref("NewStop"),
            })),
        }),
        json!({
            "CaptureJob": job,
            "EPCISDocument": {
                "type": "object", "required": ["@context", "type", "schemaVersion", "creationDate", "epcisBody"],
                "description": "An EPCIS 2.0 JSON-LD document (GS1 EPCIS 2.0 JSON schema); at most 1,000 events and 8 MiB.",
                "properties": {
                    "@context": {}, "type": { "const": "EPCISDocument" }, "schemaVersion": { "type": "string" },
                    "creationDate": { "type": "string" },
                    "epcisBody": open(&["eventList"], json!({ "eventList": { "type": "array", "items": { "type": "object" } } })),
                },
            },
            "EPCISQueryDocument": open(&["@context", "type", "epcisBody"], json!({
                "@context": {}, "type": { "const": "EPCISQueryDocument" }, "schemaVersion": { "type": "string" },
                "creationDate": { "type": "string" },
                "epcisBody": { "type": "object" },
            })),
        }),
        json!({
            "EPCISEvent": open(&["type"], json!({ "type": { "enum": ["ObjectEvent", "AggregationEvent", "TransactionEvent", "TransformationEvent", "AssociationEvent"] } })),
            "EventProof": open(&["eventHash", "digest", "salt", "commitment", "entry", "leaf_index"], json!({
                "eventID": nullable(&string("The client's eventID.")), "eventHash": string("GS1 canonical event hash."),
                "digest": pattern(HEX32_PATTERN, "The hash's digest."), "salt": pattern(HEX32_PATTERN, "The salt."),
                "commitment": pattern(HEX32_PATTERN, "SHA-256(salt || digest), in the log."),
                "commitment_rule": string("How the commitment is computed."),
                "trace_event": { "type": "object" }, "entry": string("The TraceEvent entry, hex."),
                "entry_leaf_hash": pattern(HEX32_PATTERN, "RFC 9162 leaf hash."), "leaf_index": int("Log index."),
                "inclusion_proof": { "type": ["object", "null"] }, "checkpoint": nullable(&string("The signed checkpoint note.")),
            })),
            "SensorSummaryRequest": closed(&["devices", "from", "to"], json!({
                "devices": { "type": "array", "minItems": 1, "maxItems": 64, "items": pattern(DEVICE_PATTERN, "Device id.") },
                "from": string("RFC 3339 date-time with a time zone."),
                "to": string("RFC 3339 date-time, after `from`, within 400 days."),
                "epcList": { "type": "array", "items": { "type": "string" } },
                "quantityList": { "type": "array", "items": { "type": "object" } },
                "bizLocation": string("A location URI."), "readPoint": string("A read point URI."),
            })),
            "ShipmentSensorSummaryRequest": closed(&[], json!({
                "bizLocation": string("A location URI."), "readPoint": string("A read point URI."),
            })),
            "DeviceManifest": open(&["format", "devices"], json!({
                "format": { "const": "agritrace-device-manifest/v1" },
                "devices": { "type": "array", "items": open(&["device_id", "key_epoch", "algorithm", "public_key"], json!({
                    "device_id": pattern(DEVICE_PATTERN, "Device id."), "key_epoch": { "type": "integer", "minimum": 1 },
                    "algorithm": { "const": "ed25519" }, "public_key": pattern(HEX32_PATTERN, "Ed25519 public key."),
                })) },
            })),
            "ImportReport": open(&["registered", "already_registered", "devices"], json!({
                "registered": int("Newly registered."), "already_registered": int("Known already."),
                "devices": { "type": "array", "items": { "type": "object" } },
            })),
        }),
        json!({
            "ReadingAnchor": open(&["device_id", "sequence", "reading", "batch", "entry", "leaf_index", "inclusion_proof", "checkpoint"], json!({
                "device_id": pattern(DEVICE_PATTERN, "Device id."), "sequence": int("Sequence number."),
                "reading": string("The signed reading, hex."), "reading_leaf_hash": pattern(HEX32_PATTERN, "Leaf hash."),
                "ingest_time_ms": int("Unix ms."), "clock_skewed": { "type": "boolean" },
                "batch": { "type": "object" }, "entry": string("The ReadingBatch entry, hex."),
                "entry_leaf_hash": pattern(HEX32_PATTERN, "Leaf hash."), "leaf_index": int("Log index."),
                "inclusion_proof": { "type": "object" }, "checkpoint": string("Signed checkpoint note."),
                "tlog_proof": string("C2SP tlog-proof text."),
            })),
            "PublicSummary": open(&["digital_link", "gtin", "product", "links"], json!({
                "digital_link": string("The canonical Digital Link."), "gtin": pattern("^[0-9]{14}$", "GTIN-14."),
                "lot": nullable(&string("Lot.")), "serial": nullable(&string("Serial.")),
                "attributes": { "type": "object" }, "product": { "type": "object" },
                "owner": { "type": ["object", "null"] }, "links": { "type": "object" },
            })),
            "Linkset": open(&["linkset"], json!({ "linkset": { "type": "array", "items": { "type": "object" } } })),
            "ResolverDescription": open(&["name", "resolverRoot", "supportedPrimaryKeys"], json!({
                "name": string("Name."), "resolverRoot": string("Base URL."),
                "supportedPrimaryKeys": { "type": "array", "items": { "type": "string" } },
                "supportedLinkType": { "type": "array" },
                "linkTypeDefaultCanBeLinkset": { "type": "boolean" }, "linkTypeDefaultCanBeAll": { "type": "boolean" },
            })),
        }),
        json!({
            "ScanCounts": open(&["digital_link", "gtin", "serial", "count", "countries", "suspicious", "reasons"], json!({
                "digital_link": string("Digital Link."), "gtin": string("GTIN-14."), "serial": string("Serial."),
                "count": int("Scans."), "first_ms": nullable(&int("First scan.")), "last_ms": nullable(&int("Last scan.")),
                "address_prefixes": { "type": "array", "items": { "type": "string" } },
                "address_prefixes_capped": { "type": "boolean" },
                "languages": { "type": "array", "items": { "type": "string" } },
                "languages_capped": { "type": "boolean" },
                "country_table": { "type": "boolean", "description": "Whether the node has an IP-to-country table (`ip_country_csv`); without one `countries` stays empty." },
                "countries": { "type": "array", "items": { "type": "string", "pattern": "^[A-Z]{2}$" }, "description": "ISO 3166-1 alpha-2 codes of the countries the code was scanned in (at most 64)." },
                "countries_capped": { "type": "boolean" },
                "suspicious": { "type": "boolean" },
                "reasons": { "type": "array", "items": { "enum": ["countries", "prefixes", "count"] }, "description": "The rules that fired: more than one country; more than 5 address prefixes; more scans than `scans_unusual_count` from more than one prefix." },
                "rule": string("When a key counts as suspicious."),
            })),
            "Trace": open(&["root", "direction", "nodes", "edges"], json!({
                "root": { "type": "object" }, "direction": { "enum": ["backward", "forward", "both"] },
                "nodes": { "type": "array", "items": { "type": "object" } },
                "edges": { "type": "array", "items": { "type": "object" } },
                "truncated": { "type": "boolean" },
            })),
        }),
    ])
}

/// The union of JSON objects.
fn merge<const N: usize>(parts: [Value; N]) -> Value {
    let mut all = Map::new();
    for part in parts {
        if let Value::Object(map) = part {
            all.extend(map);
        }
    }
    Value::Object(all)
}

fn responses() -> Value {
    let problem = |description: &str| {
        json!({
            "description": description,
            "content": { "application/problem+json": { "schema": schema_ref("Problem") } },
        })
    };
    let mut unauthorized = problem("No valid API token (`WWW-Authenticate: Bearer`).");
    unauthorized["headers"] = json!({ "WWW-Authenticate": { "schema": { "type": "string" } } });
    let mut unavailable = problem("Not ready yet; retry (`Retry-After`).");
    unavailable["headers"] = json!({ "Retry-After": { "schema": { "type": "string" } } });
    let mut too_many = problem(
        "Over the rate limit of the request's class (per client address, or per caller with a token; wrong tokens from an address have a small budget of their own, and once it is spent every request with a token from that address is refused), or too many of the caller's capture jobs or uploads in progress; retry after `Retry-After` seconds.",
    );
    too_many["headers"] = json!({ "Retry-After": {
        "description": "Seconds until a request of this class would be served (rounded up).",
        "schema": { "type": "integer", "minimum": 1 },
    } });
    json!({
        "BadRequest": problem("The request is not valid; `detail` says what is wrong."),
        "Unauthorized": unauthorized,
        "Forbidden": problem("The caller may not do this."),
        "NotFound": problem("Nothing there (or not visible to the caller)."),
        "Conflict": problem("Conflicts with what is stored."),
        "PayloadTooLarge": problem("The body is over the node's limit."),
        "UnprocessableContent": problem("Well-formed, but refused for what it says; `detail` says why."),
        "UnsupportedMediaType": problem("The body's content type is not JSON."),
        "ServiceUnavailable": unavailable,
        "TooManyRequests": too_many,
        "InternalError": problem("A failure of the node; the cause is in its log."),
    })
}

fn node_ops() -> Vec<Op> {
    let text = |s: &str| json!({ "type": "string", "description": s });
    let readiness = json!({
        "type": "object",
        "required": ["ready", "checks"],
        "properties": {
            "ready": { "type": "boolean" },
            "checks": { "type": "array", "items": {
                "type": "object",
                "required": ["name", "ok", "detail"],
                "properties": {
                    "name": { "type": "string", "enum": ["sequencer", "checkpoint", "broker"] },
                    "ok": { "type": "boolean" },
                    "detail": { "type": "string" }
                }
            } }
        }
    });
    vec![
        op("get", "/openapi.json", "openapi", "node", Access::Public, "This document")
            .ok(200, "The OpenAPI 3.1 description of the node.", json!({ "type": "object" })),
        op("get", "/healthz", "healthz", "node", Access::Public, "Liveness: the node runs and its sequencer has not failed")
            .answer(200, "`ok`", &[("text/plain", text("ok"))])
            .errors(&[503]),
        op("get", "/readyz", "readyz", "node", Access::Public, "Readiness: the sequencer is healthy, a checkpoint is published, every ingest worker is connected to the broker")
            .answer(200, "Ready; each check with its detail.", &[("application/json", readiness)])
            .describe("Not ready (alive or not: see `/healthz`) answers 503 with an RFC 9457 problem document whose `detail` names the failing checks and whose extension members `ready` and `checks` are those of the 200 answer.")
            .errors(&[503]),
        op("get", "/metrics", "metrics", "node", Access::Public, "Prometheus metrics")
            .answer(200, "Prometheus text exposition format 0.0.4.", &[("text/plain", text("Metrics."))]),
        op("get", "/v1/log/key", "logKey", "log", Access::Public, "The log's verifier key")
            .answer(200, "`name+hash+base64` (C2SP signed-note verifier key).", &[("text/plain", text("Verifier key."))]),
        op("get", "/v1/log/policy", "logPolicy", "log", Access::Public, "The trust policy of evidence bundles")
            .answer(200, "C2SP tlog-policy text: the log key, the witnesses and the quorum a checkpoint must meet to go into an evidence bundle (pin it with `agritrace-verify evidence --policy`).", &[("text/plain", text("Policy."))]),
        op("get", "/log/checkpoint", "logCheckpoint", "log", Access::Public, "The latest checkpoint (C2SP tlog-checkpoint, signed note)")
            .answer(200, "The signed checkpoint.", &[("text/plain", text("Signed note."))])
            .errors(&[404]),
        op("get", "/log/tile/{level}/{index}", "logTile", "log", Access::Public, "A tile of hashes (C2SP tlog-tiles)")
            .params(&["tileLevel", "tileIndex"])
            .answer(200, "256 hashes (or the first W of a partial tile).", &[("application/octet-stream", json!({ "type": "string", "contentEncoding": "binary" }))])
            .errors(&[400, 404]),
        op("get", "/log/tile/entries/{index}", "logEntryBundle", "log", Access::Public, "An entry bundle (C2SP tlog-tiles)")
            .params(&["tileIndex"])
            .answer(200, "Entries, each prefixed by a big-endian uint16 length.", &[("application/octet-stream", json!({ "type": "string", "contentEncoding": "binary" }))])
            .errors(&[400, 404]),
        op("post", "/v1/devices/import", "importDevices", "devices", Access::Local, "Register devices from an `agritrace-device` manifest")
            .json_body("DeviceManifest", json!({
                "format": "agritrace-device-manifest/v1",
                "devices": [{ "device_id": "b100000000000001", "key_epoch": 1, "algorithm": "ed25519",
                              "public_key": "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a" }],
            }))
            .ok(200, "What was registered.", schema_ref("ImportReport"))
            .errors(&[409]),
    ]
}

fn reading_ops() -> Vec<Op> {
    let base = "/v1/devices/{device}/readings/{sequence}";
    let reading = |suffix: &str, id: &str, summary: &str| {
        op("get", format!("{base}/{suffix}"), id, "readings", Access::TokenOrLocal, summary)
            .describe("A reading of an organisation's device is its record: `ReadRecords` for the owner, its partners and auditors. A device imported by the operator and not claimed is readable from the node's own host only.")
            .params(&["device", "sequence"])
            .errors(&[400, 404])
    };
    let text = json!({ "type": "string" });
    vec![
        reading(
            "anchor",
            "readingAnchor",
            "Where a reading is anchored, with every proof",
        )
        .ok(
            200,
            "Reading, batch path, entry, inclusion proof, checkpoint.",
            schema_ref("ReadingAnchor"),
        )
        .errors(&[503]),
        reading(
            "entry",
            "readingEntry",
            "The ReadingBatch entry's exact bytes",
        )
        .answer(
            200,
            "The entry.",
            &[(
                "application/octet-stream",
                json!({ "type": "string", "contentEncoding": "binary" }),
            )],
        ),
        reading(
            "tlog-proof",
            "readingTlogProof",
            "C2SP tlog-proof of the reading's entry",
        )
        .answer(200, "tlog-proof text.", &[("text/plain", text.clone())])
        .errors(&[503]),
        reading(
            "proof",
            "readingProof",
            "The reading proof file for `agritrace-verify --reading-proof`",
        )
        .answer(
            200,
            "`agritrace/reading-proof/v1` text.",
            &[("text/plain", text)],
        )
        .errors(&[503]),
    ]
}

#[allow(clippy::too_many_lines)] // One operation per route, in route order.
fn account_ops() -> Vec<Op> {
    let member = json!({ "id": "li.wei", "name": "Li Wei 李伟", "roles": ["producer"] });
    vec![
        op(
            "get",
            "/v1/whoami",
            "whoami",
            "accounts",
            Access::Token,
            "Who the token belongs to",
        )
        .ok(200, "The caller.", schema_ref("Whoami")),
        op(
            "get",
            "/v1/orgs/{org}",
            "getOrg",
            "accounts",
            Access::Token,
            "An organisation (`ReadOrg`)",
        )
        .params(&["org"])
        .ok(200, "The organisation.", schema_ref("Organisation"))
        .errors(&[400, 404]),
        op(
            "get",
            "/v1/orgs/{org}/members",
            "listMembers",
            "accounts",
            Access::Token,
            "Its members (`ReadOrg`)",
        )
        .params(&["org", "limit", "next"])
        .ok(200, "A page of members.", page_of("members", "Member"))
        .errors(&[400]),
        op(
            "post",
            "/v1/orgs/{org}/members",
            "addMember",
            "accounts",
            Access::Token,
            "Add a member (`ManageOrg`)",
        )
        .params(&["org"])
        .json_body("NewMember", member.clone())
        .ok(201, "The member.", schema_ref("Member"))
        .errors(&[404, 409]),
        op(
            "get",
            "/v1/orgs/{org}/members/{member}/tokens",
            "listTokens",
            "accounts",
            Access::Token,
            "A member's tokens, never secrets (`ManageOrg`, or the member itself)",
        )
        .params(&["org", "member", "limit", "next"])
        .ok(200, "A page of tokens.", page_of("tokens", "Token"))
        .errors(&[400, 404]),
        op(
            "post",
            "/v1/orgs/{org}/members/{member}/tokens",
            "issueToken",
            "accounts",
            Access::Token,
            "Issue a token, shown this once (`ManageOrg`)",
        )
        .params(&["org", "member"])
        .json_body("NewToken", json!({ "label": "laptop" }))
        .ok(201, "The token with its secret.", schema_ref("Token"))
        .errors(&[404]),
        op(
            "delete",
            "/v1/tokens/{id}",
            "revokeToken",
            "accounts",
            Access::Token,
            "Revoke a token (its holder, or `ManageOrg` of its organisation)",
        )
        .params(&["tokenId"])
        .ok(200, "The revoked token.", schema_ref("Token"))
        .errors(&[400, 404]),
        op(
            "post",
            "/v1/admin/orgs",
            "adminCreateOrg",
            "admin",
            Access::Local,
            "Create an organisation (bootstrap)",
        )
        .json_body(
            "NewOrganisation",
            json!({ "id": "th-customs", "name": "Thai Customs 泰国海关", "country": "TH" }),
        )
        .ok(201, "The organisation.", schema_ref("Organisation"))
        .errors(&[409]),
        op(
            "post",
            "/v1/admin/orgs/{org}/members",
            "adminAddMember",
            "admin",
            Access::Local,
            "Add a member (bootstrap)",
        )
        .params(&["org"])
        .json_body(
            "NewMember",
            json!({ "id": "somchai", "name": "Somchai", "roles": ["admin"] }),
        )
        .ok(201, "The member.", schema_ref("Member"))
        .errors(&[404, 409]),
        op(
            "post",
            "/v1/admin/orgs/{org}/members/{member}/tokens",
            "adminIssueToken",
            "admin",
            Access::Local,
            "Issue a token (bootstrap)",
        )
        .params(&["org", "member"])
        .json_body("NewToken", json!({ "label": "bootstrap" }))
        .ok(201, "The token with its secret.", schema_ref("Token"))
        .errors(&[404]),
        op(
            "delete",
            "/v1/admin/tokens/{id}",
            "adminRevokeToken",
            "admin",
            Access::Local,
            "Revoke a token (bootstrap)",
        )
        .params(&["tokenId"])
        .ok(200, "The revoked token.", schema_ref("Token"))
        .errors(&[400, 404]),
        op(
            "post",
            "/v1/admin/backup",
            "adminBackup",
            "admin",
            Access::Local,
            "An online backup of the whole store (`agritrace backup`)",
        )
        .describe(
            "Allowed from the node's own host (loopback) only; no token. The node copies its \
             embedded store as one read transaction sees it while ingest goes on, and streams \
             an `agritrace-backup/v1` file: that first line, a JSON manifest on one line \
             (origin, logKey, logSize, logRoot, checkpointSize, checkpoint, tables, imageBytes, \
             imageSha256), then the redb image. One backup at a time: a request waits up to 10 s for the one being taken, then gets 409. \
             The log's private key is never included.",
        )
        .answer(
            200,
            "The backup file.",
            &[(
                "application/vnd.agritrace.backup",
                json!({ "type": "string", "contentEncoding": "binary" }),
            )],
        )
        .header(200, "Agritrace-Backup-Sha256", "SHA-256 of the image (hex), as in the manifest.")
        .errors(&[409]),
        op(
            "post",
            "/v1/orgs/{org}/partners",
            "share",
            "partners",
            Access::Token,
            "Share the organisation's records with another (`ManageOrg`)",
        )
        .params(&["org"])
        .json_body("NewShare", json!({ "partner": "packer" }))
        .ok(201, "The share.", schema_ref("Partnership"))
        .errors(&[409]),
        op(
            "get",
            "/v1/orgs/{org}/partners",
            "listPartners",
            "partners",
            Access::Token,
            "Whom it shares with and who shares with it (`ReadOrg`)",
        )
        .params(&["org"])
        .ok(200, "Both directions.", schema_ref("Partners"))
        .errors(&[400]),
        op(
            "delete",
            "/v1/orgs/{org}/partners/{partner}",
            "unshare",
            "partners",
            Access::Token,
            "Stop sharing (`ManageOrg`)",
        )
        .params(&["org", "partner"])
        .ok(200, "The ended share.", schema_ref("Partnership"))
        .errors(&[400, 404]),
    ]
}

fn master_ops() -> Vec<Op> {
    let read = "`ReadRecords`: the owner, the partners it shares with, auditors.";
    vec![
        op("post", "/v1/orgs/{org}/products", "createProduct", "master data", Access::Token, "Create a product (`WriteMasterData`)")
            .params(&["org"])
            .json_body("NewProduct", json!({ "gtin": "06901234567892", "name_en": "Mango", "name_zh": "芒果", "storage_min_c": 10.0, "storage_max_c": 13.0 }))
            .ok(201, "The product.", schema_ref("Product"))
            .errors(&[409]),
        op("get", "/v1/orgs/{org}/products", "listProducts", "master data", Access::Token, "Its products")
            .describe(read).params(&["org", "limit", "next"])
            .ok(200, "A page of products.", page_of("products", "Product"))
            .errors(&[400]),
        op("get", "/v1/orgs/{org}/products/{gtin}", "getProduct", "master data", Access::Token, "A product")
            .describe(read).params(&["org", "gtin"])
            .ok(200, "The product.", schema_ref("Product"))
            .errors(&[400, 404]),
        op("post", "/v1/orgs/{org}/locations", "createLocation", "master data", Access::Token, "Create a location (`WriteMasterData`)")
            .params(&["org"])
            .json_body("NewLocation", json!({ "id": "farm-1", "kind": "farm", "name": "Menghai farm 勐海农场", "country": "CN" }))
            .ok(201, "The location.", schema_ref("Location"))
            .errors(&[409]),
        op("get", "/v1/orgs/{org}/locations", "listLocations", "master data", Access::Token, "Its locations")
            .describe(read).params(&["org", "limit", "next"])
            .ok(200, "A page of locations.", page_of("locations", "Location"))
            .errors(&[400]),
        op("get", "/v1/orgs/{org}/locations/{id}", "getLocation", "master data", Access::Token, "A location")
            .describe(read).params(&["org", "location"])
            .ok(200, "The location.", schema_ref("Location"))
            .errors(&[400, 404]),
        op("post", "/v1/orgs/{org}/plots", "createPlot", "master data", Access::Token, "Create a plot with its EUDR geolocation (`WriteMasterData`)")
            .params(&["org"])
            .json_body("NewPlot", json!({ "id": "plot-1", "name": "Plot 1", "country": "CN", "farm": "farm-1", "area_ha": 3.2,
                                          "geometry": { "type": "Point", "coordinates": [100.452311, 21.951873] } }))
            .ok(201, "The plot.", schema_ref("Plot"))
            .errors(&[409]),
        op("get", "/v1/orgs/{org}/plots", "listPlots", "master data", Access::Token, "Its plots")
            .describe(read).params(&["org", "limit", "next"])
            .ok(200, "A page of plots.", page_of("plots", "Plot"))
            .errors(&[400]),
        op("get", "/v1/orgs/{org}/plots/{id}", "getPlot", "master data", Access::Token, "A plot")
            .describe(read).params(&["org", "plot"])
            .ok(200, "The plot.", schema_ref("Plot"))
            .errors(&[400, 404]),
    ]
}

fn device_ops() -> Vec<Op> {
    let base = "/v1/orgs/{org}/devices";
    let read = "`ReadRecords`: the owner, the partners it shares with, auditors.";
    vec![
        op("post", base, "registerDevice", "devices", Access::Token, "Register a device's key (`ManageDevices`); a KeyEvent on the log")
            .params(&["org"])
            .json_body("NewDevice", json!({ "device_id": "a1b2c3d4e5f60718", "public_key": "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "name": "Reefer logger 1" }))
            .ok(201, "The device.", schema_ref("Device"))
            .answer(200, "It was this organisation's already, with that key.", &[("application/json", schema_ref("Device"))])
            .errors(&[409]),
        op("get", base, "listDevices", "devices", Access::Token, "A page of its devices")
            .describe(read).params(&["org", "limit", "next"])
            .ok(200, "Devices.", page_of("devices", "Device"))
            .errors(&[400]),
        op("get", format!("{base}/{{device}}"), "getDevice", "devices", Access::Token, "A device: owner, key history with log indexes, last seen")
            .describe(read).params(&["org", "device"])
            .ok(200, "The device.", schema_ref("Device"))
            .errors(&[400, 404]),
        op("get", format!("{base}/{{device}}/health"), "getDeviceHealth", "devices", Access::Token, "A device's health: last reading, clock offset, outbox gaps and dropped samples, key history")
            .describe(read).params(&["org", "device"])
            .query("window", "Sequence numbers to look back over, up to the last committed (default 1,000).", json!({ "type": "integer", "minimum": 1, "maximum": 10_000 }))
            .ok(200, "The device's health.", schema_ref("DeviceHealth"))
            .errors(&[400, 404]),
        op("get", format!("{base}/{{device}}/quarantine"), "listDeviceQuarantine", "devices", Access::Token, "What ingest refused from a device, oldest first, with the reason")
            .describe(read).params(&["org", "device", "limit", "next"])
            .ok(200, "A page of quarantine records.", page_of("quarantine", "QuarantineRecord"))
            .errors(&[400, 404]),
        op("post", format!("{base}/{{device}}/rotation"), "rotateDeviceKey", "devices", Access::Token, "Rotate its key, signed by the old key (`ManageDevices`)")
            .params(&["org", "device"])
            .json_body("Rotation", json!({ "key_epoch": 2, "public_key": "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
                                           "signature": "0".repeat(128) }))
            .ok(201, "The device.", schema_ref("Device"))
            .errors(&[404, 409]),
        op("post", format!("{base}/{{device}}/revocation"), "revokeDeviceKey", "devices", Access::Token, "Revoke its key (`ManageDevices`)")
            .params(&["org", "device"])
            .json_body("Revocation", json!({ "key_epoch": 1 }))
            .ok(201, "The device.", schema_ref("Device"))
            .errors(&[404, 409]),
        op("post", format!("{base}/{{device}}/claim"), "claimDevice", "devices", Access::Token, "Claim a device the operator imported, proving its key (`ManageDevices`)")
            .params(&["org", "device"])
            .json_body("Claim", json!({ "signature": "0".repeat(128), "name": "Reefer logger 2" }))
            .ok(201, "The device.", schema_ref("Device"))
            .errors(&[404, 409]),
    ]
}

fn trade_ops() -> Vec<Op> {
    let read = "`ReadRecords`: the owner, the partners it shares with, auditors.";
    let status = json!({ "$ref": "#/components/schemas/ShipmentStatus" });
    let stop =
        json!({ "location": "Mohan border post 磨憨口岸", "time_ms": 1_750_000_000_000_u64 });
    vec![
        op("post", "/v1/orgs/{org}/lots", "createLot", "lots and shipments", Access::Token, "Create a harvest lot (`WriteLots`)")
            .params(&["org"])
            .json_body("NewLot", json!({ "gtin": "06901234567892", "lot": "MH-2026-001", "plot": "plot-1", "harvest_date": "2025-06-01",
                                         "quantity": { "amount": 1200.0, "unit": "KGM" } }))
            .ok(201, "The lot.", schema_ref("Lot"))
            .errors(&[409]),
        op("get", "/v1/orgs/{org}/lots", "listLots", "lots and shipments", Access::Token, "A page of its lots")
            .describe(read).params(&["org", "limit", "next"])
            .ok(200, "Lots.", page_of("lots", "Lot"))
            .errors(&[400]),
        op("get", "/v1/orgs/{org}/lots/{gtin}/{lot}", "getLot", "lots and shipments", Access::Token, "A lot")
            .describe(read).params(&["org", "gtin", "lot"])
            .ok(200, "The lot.", schema_ref("Lot"))
            .errors(&[400, 404]),
        op("post", "/v1/orgs/{org}/shipments", "createShipment", "lots and shipments", Access::Token, "Create a shipment (`WriteShipments`)")
            .params(&["org"])
            .json_body("NewShipment", json!({
                "id": "shp-2026-001",
                "consignee": { "name": "Bangkok Fresh Co.", "country": "TH" },
                "origin_country": "CN", "destination_country": "TH",
                "declared_to": ["th-customs"], "containers": ["CSQU3054383"],
                "ssccs": ["106901234000000008"],
                "lots": [{ "gtin": "06901234567892", "lot": "MH-2026-001" }],
                "planned_departure": stop,
            }))
            .ok(201, "The shipment.", schema_ref("Shipment"))
            .errors(&[409]),
        op("get", "/v1/orgs/{org}/shipments", "listOrgShipments", "lots and shipments", Access::Token, "A page of its shipments")
            .describe(read).params(&["org", "limit", "next"])
            .query("status", "Only shipments in this state.", status.clone())
            .ok(200, "Shipments.", page_of("shipments", "Shipment"))
            .errors(&[400]),
        op("get", "/v1/orgs/{org}/shipments/{id}", "getShipment", "lots and shipments", Access::Token, "A shipment")
            .describe("`ReadRecords`: the owner, its partners, auditors, and customs officers of an authority it is declared to.")
            .params(&["org", "shipment"])
            .ok(200, "The shipment.", schema_ref("Shipment"))
            .errors(&[400, 404]),
        op("post", "/v1/orgs/{org}/shipments/{id}/departure", "recordDeparture", "lots and shipments", Access::Token, "Record its departure, once (`WriteShipments`)")
            .params(&["org", "shipment"])
            .json_body("NewStop", stop.clone())
            .ok(201, "The shipment.", schema_ref("Shipment"))
            .errors(&[404, 409]),
        op("post", "/v1/orgs/{org}/shipments/{id}/arrival", "recordArrival", "lots and shipments", Access::Token, "Record its arrival, once, after the departure (`WriteShipments`)")
            .params(&["org", "shipment"])
            .json_body("NewStop", json!({ "location": "Bangkok 曼谷", "time_ms": 1_750_100_000_000_u64 }))
            .ok(201, "The shipment.", schema_ref("Shipment"))
            .errors(&[404, 409]),
        op("get", "/v1/shipments", "listShipments", "lots and shipments", Access::Token, "Every shipment the caller may see (`ReadRecords`, filtered)")
            .describe("Its own organisation's, its partners', those declared to its customs authority; everything for an auditor.")
            .params(&["limit", "next"])
            .query("declared_to", "Only shipments declared to this authority.", json!({ "type": "string", "pattern": ORG_PATTERN }))
            .query("status", "Only shipments in this state.", status)
            .ok(200, "Shipments.", page_of("shipments", "Shipment"))
            .errors(&[400]),
    ]
}

fn epcis_document_example() -> Value {
    json!({
        "@context": ["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"],
        "type": "EPCISDocument", "schemaVersion": "2.0", "creationDate": "2025-06-01T08:00:00Z",
        "epcisBody": { "eventList": [{
            "type": "ObjectEvent", "eventID": "urn:uuid:6a1f3c9e-5b7d-4e2a-9c8b-1d2e3f4a5b6c",
            "eventTime": "2025-06-01T08:00:00Z", "eventTimeZoneOffset": "+08:00",
            "epcList": ["https://id.gs1.org/01/06901234567892/21/1001"],
            "action": "OBSERVE", "bizStep": "inspecting",
        }] },
    })
}

fn epcis_ops() -> Vec<Op> {
    let read = "`ReadRecords`; events of organisations the caller may not see are not found.";
    let query = |op: Op| {
        let mut op = op;
        for (name, description) in [
            ("eventType", "Event types, `|`-separated."),
            ("GE_eventTime", "Events at or after (RFC 3339)."),
            ("LT_eventTime", "Events before (RFC 3339)."),
            ("GE_recordTime", "Recorded at or after."),
            ("LT_recordTime", "Recorded before."),
            ("EQ_action", "ADD, OBSERVE or DELETE."),
            ("EQ_bizStep", "CBV business steps."),
            ("EQ_disposition", "CBV dispositions."),
            ("EQ_bizLocation", "Business locations."),
            ("EQ_readPoint", "Read points."),
            ("EQ_eventID", "Event ids."),
            (
                "MATCH_epc",
                "EPCs (epcList, childEPCs); patterns ending in `*` or `.*`.",
            ),
            ("MATCH_parentID", "Parent ids."),
            ("MATCH_inputEPC", "Input EPCs."),
            ("MATCH_outputEPC", "Output EPCs."),
            ("MATCH_anyEPC", "Any EPC field."),
            ("MATCH_epcClass", "Classes in quantity lists."),
            ("MATCH_anyEPCClass", "Classes in any quantity list."),
        ] {
            op = op.query(
                name,
                description,
                json!({ "type": "string", "maxLength": 8192 }),
            );
        }
        op.params(&["perPage", "nextPageToken"])
    };
    let epcis_types: &[&str] = &["application/ld+json", "application/json"];
    vec![
        op("post", "/epcis/capture", "capture", "EPCIS", Access::Token, "Capture an EPCIS 2.0 document (`CaptureEvents`, as the caller's organisation)")
            .body(epcis_types, "EPCISDocument", epcis_document_example())
            .ok(202, "The capture job (`Location: /epcis/capture/{captureID}`).", schema_ref("CaptureJob"))
            .header(202, "Location", "The capture job.")
            .header(202, "GS1-EPCIS-Capture-Limit", "Most events per capture.")
            .errors(&[409]),
        op("get", "/epcis/capture", "listCaptureJobs", "EPCIS", Access::Token, "The caller's organisation's capture jobs (`ReadRecords`)")
            .params(&["perPage", "nextPageToken"])
            .ok(200, "Jobs, newest pages by `Link: rel=next`.", json!({ "type": "array", "items": schema_ref("CaptureJob") }))
            .errors(&[400]),
        op("get", "/epcis/capture/{id}", "getCaptureJob", "EPCIS", Access::Token, "A capture job")
            .describe(read).params(&["captureId"])
            .ok(200, "The job.", schema_ref("CaptureJob"))
            .errors(&[404]),
        query(op("get", "/epcis/events", "queryEvents", "EPCIS", Access::Token, "The simple event query (`ReadRecords`, filtered by visibility)"))
            .ok(200, "An EPCISQueryDocument; the next page in `Link: <…>; rel=\"next\"`.", schema_ref("EPCISQueryDocument"))
            .errors(&[400]),
        op("get", "/epcis/events/{id}", "getEvent", "EPCIS", Access::Token, "An event (its hash in `Agritrace-Event-Hash`)")
            .describe(read).params(&["eventId"])
            .ok(200, "The event.", schema_ref("EPCISEvent"))
            .errors(&[404]),
        op("get", "/epcis/events/{id}/proof", "getEventProof", "EPCIS", Access::Token, "An event's salted commitment, TraceEvent entry and inclusion proof")
            .describe(read).params(&["eventId"])
            .ok(200, "The proof (inclusion proof and checkpoint null until published).", schema_ref("EventProof"))
            .errors(&[404, 503]),
        op("post", "/epcis/sensor-summaries", "captureSensorSummary", "EPCIS", Access::Token, "Capture an ObjectEvent summarising devices' committed readings (`CaptureEvents`; devices the caller may see)")
            .json_body("SensorSummaryRequest", json!({
                "devices": ["a1b2c3d4e5f60718"], "from": "2025-06-01T00:00:00Z", "to": "2025-06-02T00:00:00Z",
                "quantityList": [{ "epcClass": "https://id.gs1.org/01/06901234567892/10/MH-2026-001", "quantity": 1200, "uom": "KGM" }],
            }))
            .ok(202, "The capture job.", schema_ref("CaptureJob"))
            .header(202, "Location", "The capture job.")
            .errors(&[409]),
        op("post", "/v1/orgs/{org}/shipments/{id}/sensor-summary", "captureShipmentSensorSummary", "EPCIS", Access::Token, "Capture an ObjectEvent summarising the readings of the shipment's devices from departure to arrival (or now) for its lots and SSCCs (`CaptureEvents`: the exporter, or a carrier partner it shares with)")
            .params(&["org", "shipment"])
            .json_body("ShipmentSensorSummaryRequest", json!({ "bizLocation": "urn:epc:id:sgln:0690123.00002.0" }))
            .ok(202, "The capture job.", schema_ref("CaptureJob"))
            .header(202, "Location", "The capture job.")
            .errors(&[404, 409]),
    ]
}

/// Every Digital Link path form under `prefix`: `/01/{gtin}` and the key qualifiers 22, 10,
/// 21 in that order, any of them left out; `serial_only` keeps the forms with a serial.
fn link_forms(prefix: &str, serial_only: bool) -> Vec<(String, Vec<&'static str>, String)> {
    const QUALIFIERS: [(&str, &str); 3] = [("22", "cpv"), ("10", "lot"), ("21", "serial")];
    let mut forms = Vec::new();
    for mask in 0..8_u8 {
        if serial_only && mask & 4 == 0 {
            continue;
        }
        let mut path = format!("{prefix}/01/{{gtin}}");
        let mut params = vec!["gtin"];
        let mut suffix = String::new();
        for (bit, (ai, name)) in QUALIFIERS.iter().enumerate() {
            if mask & (1 << bit) != 0 {
                path.push_str(&format!("/{ai}/{{{name}}}"));
                params.push(name);
                suffix.push_str(&format!("_{name}"));
            }
        }
        forms.push((path, params, suffix));
    }
    forms
}

fn resolver_ops() -> Vec<Op> {
    let preflight = |path: &str, id: String, params: &[&str]| {
        op(
            "options",
            path,
            id,
            "resolver",
            Access::Public,
            "CORS preflight",
        )
        .params(params)
        .answer(204, "Allowed methods and headers.", &[])
    };
    let mut ops = vec![
        op(
            "get",
            "/.well-known/gs1resolver",
            "resolverDescription",
            "resolver",
            Access::Public,
            "The resolver description file (GS1-Conformant Resolver Standard)",
        )
        .ok(200, "The description.", schema_ref("ResolverDescription")),
        preflight(
            "/.well-known/gs1resolver",
            "resolverDescriptionPreflight".to_owned(),
            &[],
        ),
    ];
    for (path, params, suffix) in link_forms("", false) {
        ops.push(
            op("get", &path, format!("resolve{suffix}"), "resolver", Access::Public, "Resolve a GS1 Digital Link (also HEAD)")
                .describe("307 to the default link with `Link: <…>; rel=\"linkset\"`; `?linkType=linkset` or `all` (or `Accept: application/linkset+json`): the RFC 9264 linkset; `?linkType=gs1:{term}`: 307 to that link. A browser (`Accept` naming `text/html`, no `linkType`) asking for a lot gets 200, the consumer page (HTML, Chinese or English by `?lang=zh|en` else `Accept-Language`); every other client the 307.")
                .params(&params).params(&["linkType"])
                .answer(200, "The linkset, or the consumer page for a browser.", &[("application/linkset+json", schema_ref("Linkset")), ("text/html", json!({ "type": "string" }))])
                .answer(307, "To the default (or asked-for) link.", &[])
                .header(307, "Location", "The link.")
                .errors(&[400, 404]),
        );
        ops.push(preflight(
            &path,
            format!("resolvePreflight{suffix}"),
            &params,
        ));
    }
    // A compressed Digital Link at the root (GS1 Digital Link 1.2 compression).
    let compressed = json!({
        "name": "compressed", "in": "path", "required": true,
        "description": "A compressed GS1 Digital Link: one path element in the URI-safe base64 alphabet.",
        "schema": { "type": "string", "pattern": "^[A-Za-z0-9_-]+$", "maxLength": 2048 },
        "example": "AQyNo0UVqCDWWcn9tpt19p2",
    });
    let mut resolve_compressed = op("get", "/{compressed}", "resolveCompressed", "resolver", Access::Public, "Resolve a compressed GS1 Digital Link (also HEAD)")
        .describe("Decompressed, then answered exactly as the uncompressed link; 404 for a path element outside the base64url alphabet.")
        .params(&["linkType"])
        .answer(200, "The linkset.", &[("application/linkset+json", schema_ref("Linkset"))])
        .answer(307, "To the default (or asked-for) link.", &[])
        .header(307, "Location", "The link.")
        .errors(&[400, 404]);
    resolve_compressed.params.push(compressed.clone());
    ops.push(resolve_compressed);
    let mut compressed_preflight = preflight(
        "/{compressed}",
        "resolveCompressedPreflight".to_owned(),
        &[],
    );
    compressed_preflight.params.push(compressed);
    ops.push(compressed_preflight);
    for (key, params, suffix) in link_forms("", false) {
        let path = format!("/v1/public{key}");
        ops.push(
            op(
                "get",
                &path,
                format!("publicSummary{suffix}"),
                "resolver",
                Access::Public,
                "The default link: a public summary of the product (and lot/serial)",
            )
            .params(&params)
            .ok(200, "The summary.", schema_ref("PublicSummary"))
            .errors(&[400, 404]),
        );
        ops.push(preflight(
            &path,
            format!("publicSummaryPreflight{suffix}"),
            &params,
        ));
    }
    for (key, params, suffix) in link_forms("", false) {
        let path = format!("/qr{key}");
        ops.push(
            op("get", &path, format!("qrCode{suffix}"), "resolver", Access::Public, "The QR code of the canonical Digital Link")
                .describe("SVG or PNG: a `.svg` or `.png` suffix on the last segment, else `Accept`. GS1 data attributes in the query are encoded too.")
                .params(&params)
                .query("ec", "Error correction level.", json!({ "enum": ["L", "M", "Q", "H", "l", "m", "q", "h"] }))
                .query("module", "Pixels per module.", json!({ "type": "integer", "minimum": 1, "maximum": 32 }))
                .query("base", "An https origin to write the link on.", json!({ "type": "string", "maxLength": 256 }))
                .answer(200, "The QR code.", &[
                    ("image/svg+xml", json!({ "type": "string" })),
                    ("image/png", json!({ "type": "string", "contentEncoding": "binary" })),
                ])
                .errors(&[400, 404]),
        );
        ops.push(preflight(
            &path,
            format!("qrCodePreflight{suffix}"),
            &params,
        ));
    }
    for (key, params, suffix) in link_forms("", true) {
        ops.push(
            op(
                "get",
                format!("/v1/scans{key}"),
                format!("scanCounts{suffix}"),
                "resolver",
                Access::Token,
                "Scan counts of a serialised item",
            )
            .describe("`ReadRecords`: the GTIN's owner, the partners it shares with, auditors.")
            .params(&params)
            .ok(
                200,
                "The counts and the `suspicious` flag.",
                schema_ref("ScanCounts"),
            )
            .errors(&[400, 404]),
        );
    }
    ops
}

/// Trace, recall and the FSMA 204 export.
fn trace_ops() -> Vec<Op> {
    vec![
        op("get", "/trace/{id}", "trace", "trace", Access::Token, "The trace graph of a lot, an object, a container or a shipment (`Trace`, filtered by visibility)")
            .params(&[])
            .query("direction", "Which way to walk (default both).", json!({ "enum": ["backward", "forward", "both"] }))
            .ok(200, "Nodes, edges, cold chain and proofs.", schema_ref("Trace"))
            .errors(&[400, 404]),
        op("get", "/recall/{gtin}/{lot}", "recall", "trace", Access::Token, "The forward closure of a lot: what to recall (`Trace`)")
            .params(&["gtin", "lot"])
            .ok(200, "Everything the lot reached.", json!({ "type": "object" }))
            .errors(&[400, 404]),
        op("get", "/exports/fsma204", "exportFsma204", "trace", Access::Token, "The FSMA 204 electronic sortable spreadsheet (`ReadRecords`)")
            .query("from", "First day (ISO 8601 date).", pattern(DATE_PATTERN, "Date."))
            .query("to", "Last day (ISO 8601 date).", pattern(DATE_PATTERN, "Date."))
            .query("product", "Only this GTIN.", pattern(GTIN_PATTERN, "GTIN."))
            .answer(200, "RFC 4180 CSV, one row per critical tracking event and lot.", &[("text/csv", json!({ "type": "string" }))])
            .errors(&[400]),
    ]
}

/// Evidence bundles of a shipment or a lot.
fn evidence_ops() -> Vec<Op> {
    let describe = "`Trace`, filtered as the trace is: the owner and the partners it shares with, \
        customs officers of an authority a shipment of the trace is declared to, auditors; anyone \
        else gets 404. The bundle (`agritrace/evidence-bundle/v1`) holds the trace's EPCIS events \
        with their salts, the signed readings of the shipments' devices in their custody windows \
        with subset proofs into their batches, the devices' key events, every entry's inclusion \
        proof in the latest published checkpoint (which must meet the node's trust policy: 503 \
        until the witnesses have cosigned), the policy, and a seal signed by the log key. Records \
        the checkpoint does not cover yet are left out and counted in `Agritrace-Evidence-Pending`.";
    let since = json!({ "type": "integer", "minimum": 0 });
    let text = json!({ "type": "string" });
    let headers = |op: Op| {
        op.header(200, "Content-Disposition", "`attachment; filename=\"….evidence.txt\"`.")
            .header(200, "Agritrace-Evidence-Pending", "Readings, events, documents and key events left out because no published checkpoint covers them yet.")
            .header(200, "Agritrace-Evidence-Tree-Size", "The tree size of the checkpoint the proofs are for (the next export's `since`).")
            .header(200, "Agritrace-Evidence-Truncated", "Present when a bound cut the bundle short: `trace`, `readings`.")
    };
    let since_text = "The tree size of a checkpoint seen before (that of an earlier bundle of this node): the bundle adds it and the consistency proof from it; 404 if the node does not keep a checkpoint of that size.";
    vec![
        headers(
            op(
                "get",
                "/v1/orgs/{org}/shipments/{id}/evidence",
                "exportShipmentEvidence",
                "trace",
                Access::Token,
                "The sealed evidence bundle of a shipment, for `agritrace-verify`",
            )
            .describe(describe)
            .params(&["org", "shipment"])
            .query("since", since_text, since.clone())
            .answer(
                200,
                "The bundle (UTF-8 text).",
                &[("text/plain", text.clone())],
            ),
        )
        .errors(&[400, 404, 503]),
        headers(
            op(
                "get",
                "/v1/orgs/{org}/lots/{gtin}/{lot}/evidence",
                "exportLotEvidence",
                "trace",
                Access::Token,
                "The sealed evidence bundle of a lot, for `agritrace-verify`",
            )
            .describe(describe)
            .params(&["org", "gtin", "lot"])
            .query("since", since_text, since)
            .answer(200, "The bundle (UTF-8 text).", &[("text/plain", text)]),
        )
        .errors(&[400, 404, 503]),
    ]
}

fn trace_id_param() -> Value {
    json!({
        "name": "id", "in": "path", "required": true,
        "description": "A Digital Link path or URI, an EPC URI, or `shipment:{org}/{id}` (percent-encoded).",
        "schema": { "type": "string", "minLength": 1, "maxLength": 2048 },
        "example": "shipment:menghai-coop/shp-2026-001",
    })
}

/// Path parameters of the document routes.
fn document_parameters() -> Value {
    json!({
        "keyId": {
            "name": "key_id", "in": "path", "required": true,
            "description": "An issuer key id: the hex SHA-256 of its Ed25519 public key.",
            "schema": { "type": "string", "pattern": HEX32_PATTERN },
            "example": "3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29",
        },
        "documentId": {
            "name": "id", "in": "path", "required": true,
            "description": "A document id (32 hex digits).",
            "schema": { "type": "string", "pattern": "^[0-9a-f]{32}$" },
            "example": "0123456789abcdef0123456789abcdef",
        },
    })
}

/// Schemas of the document routes.
fn document_schemas() -> Value {
    let status = json!({ "enum": ["pending", "valid", "revoked", "superseded"] });
    let types = json!({ "enum": [
        "certificate_of_origin", "phytosanitary_certificate", "commercial_invoice", "packing_list",
        "bill_of_lading", "fsma204_record", "eudr_due_diligence_statement", "other",
    ] });
    let event = open(
        &["leaf_index", "time_ms"],
        json!({
            "leaf_index": nullable(&int("The IssuerKeyEvent's leaf index.")),
            "time_ms": int("Unix ms."),
            "entry_leaf_hash": pattern(HEX32_PATTERN, "RFC 9162 leaf hash of the entry."),
        }),
    );
    let file = json!({ "type": "string", "contentMediaType": "application/octet-stream", "description": "The file." });
    let text = |d: &str| string(d);
    json!({
        "NewIssuerKey": {
            "type": "object", "additionalProperties": false,
            "description": "`{\"custody\":\"node\"}`: the node makes and holds the key; or a key the organisation holds, with its Ed25519 signature over `\"agritrace/issuer-key/v1\\n\" || len:u8 || org || public_key`.",
            "properties": {
                "custody": { "enum": ["node", "client"] },
                "public_key": pattern(HEX32_PATTERN, "Ed25519 public key."),
                "possession_signature": pattern(HEX64_PATTERN, "Proof of possession."),
            },
        },
        "IssuerKey": open(&["key_id", "org", "public_key", "custody", "status", "registered"], json!({
            "key_id": pattern(HEX32_PATTERN, "SHA-256 of the public key."),
            "org": org_id("Its organisation."),
            "public_key": pattern(HEX32_PATTERN, "Ed25519 public key."),
            "custody": { "enum": ["node", "client"] },
            "status": { "enum": ["active", "revoked"] },
            "registered": event.clone(),
            "revoked": nullable(&event),
        })),
        "DocumentUpload": {
            "type": "object", "required": ["file", "type", "number"],
            "properties": {
                "file": file.clone(),
                "type": types.clone(),
                "number": { "type": "string", "minLength": 1, "maxLength": 64, "description": "The issuer's document number." },
                "issuer": org_id("The issuing organisation (default: the caller's)."),
                "shipment": text("`{exporter}/{id}` of a shipment the caller sees."),
                "lot": text("`{gtin}/{lot}` of a lot the caller sees; repeat the part for several."),
                "media_type": text("The file's media type (default: the part's Content-Type)."),
                "sign": { "const": "node", "description": "Sign at once with the issuer's node-held key (the caller must be a signer of the issuer)." },
            },
        },
        "DocumentSupersede": {
            "type": "object", "required": ["file"],
            "properties": {
                "file": file.clone(),
                "number": { "type": "string", "minLength": 1, "maxLength": 64 },
                "media_type": text("The file's media type."),
                "sign": { "const": "node" },
            },
        },
        "DocumentSignature": {
            "type": "object", "additionalProperties": false,
            "description": "`{\"custody\":\"node\"}`, or a detached Ed25519 signature over the document's `to_sign` bytes by a registered, unrevoked key of the issuer.",
            "properties": {
                "custody": { "enum": ["node", "client"] },
                "key_id": pattern(HEX32_PATTERN, "The issuer key."),
                "signature": pattern(HEX64_PATTERN, "Ed25519 signature."),
            },
        },
        "DocumentRevocation": closed(&["reason"], json!({
            "reason": { "type": "string", "minLength": 1, "maxLength": 500 },
            "sign": { "const": "node" },
        })),
        "DocumentCheck": {
            "type": "object",
            "description": "`{\"sha256\": \"<64 hex>\"}` as JSON, or the file as multipart/form-data part `file`.",
            "properties": {
                "sha256": pattern(HEX32_PATTERN, "SHA-256 of the file."),
                "file": file,
            },
        },
        "Document": open(&["id", "type", "number", "issuer", "sha256", "status", "history", "pending"], json!({
            "id": string("Document id."),
            "type": types.clone(),
            "number": string("The issuer's number."),
            "issuer": org_id("The issuer."),
            "uploader": org_id("Who uploaded it."),
            "shipment": nullable(&string("`{exporter}/{id}`.")),
            "lots": { "type": "array", "items": { "type": "string" } },
            "media_type": string("Media type."),
            "sha256": pattern(HEX32_PATTERN, "SHA-256 of the file."),
            "size_bytes": int("Bytes."),
            "status": status.clone(),
            "supersedes": nullable(&string("The previous version.")),
            "superseded_by": nullable(&string("The next version.")),
            "history": { "type": "array", "items": open(&["action", "leaf_index", "signature"], json!({
                "action": { "enum": ["issue", "supersede", "revoke"] },
                "leaf_index": nullable(&int("The DocumentAnchor's leaf index.")),
                "salt": pattern(HEX32_PATTERN, "The commitment's salt."),
                "commitment": pattern(HEX32_PATTERN, "SHA-256(salt || SHA-256(file))."),
                "signature": { "type": "object" },
                "entry": string("The entry's bytes, hex (customs check only)."),
                "tlog_proof": nullable(&string("C2SP tlog-proof of the entry (customs check only).")),
            })) },
            "pending": { "type": ["object", "null"], "description": "An anchor waiting for the issuer: `to_sign` is the hex of the exact bytes to sign." },
        })),
        "DocumentSummary": open(&["id", "type", "number", "issuer", "status"], json!({
            "id": string("Document id."), "type": types.clone(), "number": string("Number."),
            "issuer": org_id("Issuer."), "status": status.clone(),
            "leaf_index": nullable(&int("Its anchor's leaf index.")),
        })),
        "DocumentCheckResult": open(&["sha256", "match", "documents"], json!({
            "sha256": pattern(HEX32_PATTERN, "The hash checked."),
            "match": { "type": "boolean" },
            "documents": { "type": "array", "items": { "type": "object", "description": "A Document with `entry` and `tlog_proof` per anchor where the caller may read it; else only type, issuer and status." } },
        })),
        "Certificates": open(&["gtin", "lot", "certificates"], json!({
            "gtin": string("GTIN-14."), "lot": string("Lot."),
            "certificates": { "type": "array", "items": open(&["type", "issuer", "status", "issuer_signature_verifies"], json!({
                "type": types, "issuer": string("The issuer's name."), "status": status,
                "issuer_signature_verifies": { "type": "boolean" },
            })) },
        })),
    })
}

/// Issuer keys, trade documents, the customs check, a lot's certificates for consumers.
fn document_ops() -> Vec<Op> {
    let keys = "/v1/orgs/{org}/issuer-keys";
    let read = "Readers: the issuer, the uploader, the shipment's exporter and consignee, the customs authorities it is declared to, the lots' owners, auditors; anyone else gets 404.";
    let form =
        |op: Op, schema: &str, example: Value| op.body(&["multipart/form-data"], schema, example);
    vec![
        op("post", keys, "registerIssuerKey", "documents", Access::Token, "Register a document-signing key (`ManageOrg`), as an IssuerKeyEvent")
            .params(&["org"])
            .json_body("NewIssuerKey", json!({ "custody": "node" }))
            .ok(201, "The key.", schema_ref("IssuerKey"))
            .errors(&[404, 409, 422]),
        op("get", keys, "listIssuerKeys", "documents", Access::Token, "Its issuer keys (`ReadOrg`: members, auditors)")
            .params(&["org", "limit", "next"])
            .ok(200, "A page of keys.", page_of("keys", "IssuerKey"))
            .errors(&[400]),
        op("post", format!("{keys}/{{key_id}}/revoke"), "revokeIssuerKey", "documents", Access::Token, "Revoke an issuer key (`ManageOrg`); a node-held secret is erased")
            .params(&["org", "keyId"])
            .ok(200, "The revoked key.", schema_ref("IssuerKey"))
            .errors(&[400, 404, 409]),
        op("get", "/v1/issuer-keys/{key_id}", "getIssuerKey", "documents", Access::Public, "An issuer key and the log positions of its events (public)")
            .params(&["keyId"])
            .ok(200, "The key.", schema_ref("IssuerKey"))
            .errors(&[400, 404]),
        form(op("post", "/v1/documents", "uploadDocument", "documents", Access::Token, "Upload a trade document (`UploadDocuments`)")
            .describe("Stored by content; pending until its issuer signs (`sign=node` signs at once when the caller may sign for the issuer). The file is limited by `document_bytes_max` (413)."),
            "DocumentUpload", json!({ "file": "(the PDF)", "type": "phytosanitary_certificate", "number": "KM-2026-0001",
                                       "shipment": "menghai-coop/shp-2026-001", "lot": "06901234567892/MH-2026-001", "sign": "node" }))
            .ok(201, "The document.", schema_ref("Document"))
            .errors(&[404, 422]),
        op("get", "/v1/documents", "listDocuments", "documents", Access::Token, "The documents of a shipment or a lot that the caller may read")
            .params(&["limit", "next"])
            .query("shipment", "`{exporter}/{id}`.", json!({ "type": "string" }))
            .query("lot", "`{gtin}/{lot}`.", json!({ "type": "string" }))
            .ok(200, "A page of documents.", page_of("documents", "DocumentSummary"))
            .errors(&[400]),
        op("get", "/v1/documents/{id}", "getDocument", "documents", Access::Token, "A document: status, history of anchors, signatures and key validity")
            .describe(read).params(&["documentId"])
            .ok(200, "The document.", schema_ref("Document"))
            .errors(&[404]),
        op("get", "/v1/documents/{id}/content", "getDocumentContent", "documents", Access::Token, "The document's file")
            .describe(read).params(&["documentId"])
            .answer(200, "The file, served in the media type it was uploaded with.", &[("*/*", json!({ "type": "string", "contentEncoding": "binary" }))])
            .errors(&[404]),
        op("post", "/v1/documents/{id}/signature", "signDocument", "documents", Access::Token, "Sign the pending anchor as the issuer (`SignDocuments`)")
            .params(&["documentId"])
            .json_body("DocumentSignature", json!({ "custody": "node" }))
            .ok(200, "The document.", schema_ref("Document"))
            .errors(&[404, 409, 422]),
        op("post", "/v1/documents/{id}/revoke", "revokeDocument", "documents", Access::Token, "Revoke: a new anchor that revokes the document (`SignDocuments` of the issuer)")
            .params(&["documentId"])
            .json_body("DocumentRevocation", json!({ "reason": "issued for the wrong consignment", "sign": "node" }))
            .ok(200, "The document.", schema_ref("Document"))
            .errors(&[404, 409, 422, 503]),
        form(op("post", "/v1/documents/{id}/supersede", "supersedeDocument", "documents", Access::Token, "A new version superseding the document (its issuer signs)")
            .params(&["documentId"]),
            "DocumentSupersede", json!({ "file": "(the corrected PDF)", "number": "KM-2026-0001-R1", "sign": "node" }))
            .ok(201, "The new version.", schema_ref("Document"))
            .errors(&[404, 409, 422, 503]),
        op("post", "/v1/verify/document", "verifyDocument", "documents", Access::Token, "The customs check: which documents have this content (`ReadRecords`)")
            .describe("For the documents the caller may read: everything, with each anchor's salt, commitment, entry and C2SP tlog-proof; for the others only type, issuer and status. A file changed by one byte matches nothing (`match: false`).")
            .body(&["application/json", "multipart/form-data"], "DocumentCheck",
                  json!({ "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08" }))
            .ok(200, "The matches.", schema_ref("DocumentCheckResult")),
        op("get", "/v1/public/lots/{gtin}/{lot}/certificates", "getLotCertificates", "documents", Access::Public, "A lot's certificates for consumers: type, issuer, status, whether the signature verifies")
            .params(&["gtin", "lot"])
            .ok(200, "The certificates.", schema_ref("Certificates"))
            .errors(&[400, 404]),
    ]
}

/// The public data of the consumer page and its script ([`crate::pages`]).
fn pages_ops() -> Vec<Op> {
    let centi = |d: &str| json!({ "type": "integer", "description": d });
    let journey = open(
        &[
            "gtin",
            "lot",
            "harvest_date",
            "events",
            "custody",
            "checkpoints",
            "log_key",
        ],
        json!({
            "gtin": string("GTIN-14."), "lot": string("Lot."),
            "harvest_date": string("Harvest date, YYYY-MM-DD."),
            "product": nullable(&json!({ "type": "object", "description": "Names (`en`, `zh`) and storage band (hundredths of °C)." })),
            "plot": nullable(&json!({ "type": "object", "description": "The plot of origin: name, country, area (ha), GeoJSON geometry (WGS84)." })),
            "events": { "type": "array", "items": open(&["type", "event_time"], json!({
                "type": string("EPCIS event type."), "action": nullable(&string("ADD, OBSERVE or DELETE.")),
                "biz_step": nullable(&string("CBV business step, last segment.")),
                "event_time": string("eventTime."), "location": nullable(&string("bizLocation, else readPoint.")),
                "log_index": nullable(&int("Leaf index of its TraceEvent entry.")),
                "proof": nullable(&json!({ "type": "object", "description": "RFC 9162 inclusion proof: entry_leaf_hash, leaf_index, tree_size, path (hex)." })),
            })) },
            "custody": { "type": "array", "items": open(&["from_ms", "to_ms", "arrived", "points"], json!({
                "from_location": string("Departure place."), "to_location": nullable(&string("Arrival place.")),
                "from_ms": int("Departure (Unix ms)."), "to_ms": int("Arrival, or now (Unix ms)."),
                "arrived": { "type": "boolean" },
                "band_centi_c": nullable(&json!({ "type": "array", "items": centi("°C × 100") })),
                "readings": int("Readings in the window."),
                "min_centi_c": nullable(&centi("Lowest.")), "max_centi_c": nullable(&centi("Highest.")),
                "outside_ms": int("Time outside the band."),
                "excursions": { "type": "array", "items": { "type": "object" } },
                "points": { "type": "array", "description": "At most 400 `[time_ms, centi_c]` pairs for the chart.", "items": { "type": "array", "items": { "type": "integer" } } },
            })) },
            "checkpoints": { "type": "array", "items": { "type": "object", "description": "`tree_size` and the signed checkpoint note." } },
            "log_key": string("The log's verifier key (`name+hash+base64`)."),
            "truncated": { "type": "boolean" },
        }),
    );
    vec![
        op("get", "/v1/public/lots/{gtin}/{lot}/journey", "getLotJourney", "pages", Access::Public, "A lot's public journey, as the consumer page draws it")
            .describe("The lot's trace over its owner's records only (never a partner's or another organisation's): product names and band, plot, each event's type, step, time, place and inclusion proof (no quantities, ILMD, transactions or salts), each shipment's places, times and cold chain; the checkpoints the proofs verify against and the log key.")
            .params(&["gtin", "lot"])
            .ok(200, "The journey.", journey)
            .errors(&[400, 404]),
        op("get", "/pages/verify.js", "getPageScript", "pages", Access::Public, "The consumer page's script: checks a proof in the browser with WebCrypto")
            .answer(200, "The script.", &[("text/javascript", json!({ "type": "string" }))]),
        op("get", "/login", "getSignInPage", "pages", Access::Public, "The signed-in pages' sign-in page (`?lang=zh|en`, `?next=` a same-origin path)")
            .describe("Takes an API token, checks it with `GET /v1/whoami` and keeps it in the browser tab's sessionStorage; the console and data-entry pages call this API with it as a bearer token.")
            .answer(200, "The page.", &[("text/html", json!({ "type": "string" }))]),
        op("get", "/pages/app.js", "getAppScript", "pages", Access::Public, "The signed-in pages' shared script: token, API calls, errors in plain words")
            .answer(200, "The script.", &[("text/javascript", json!({ "type": "string" }))]),
        op("get", "/entry", "getEntryPage", "pages", Access::Public, "Data entry: the caller's organisation at a glance (`?lang=zh|en`)")
            .describe("Server-rendered in the caller's language, holding no data: its script lists the organisation's plots, lots, shipments and devices through this API with the signed-in caller's token, and links to each form.")
            .answer(200, "The page.", &[("text/html", json!({ "type": "string" }))]),
        op("get", "/entry/plots/new", "getPlotForm", "pages", Access::Public, "Data entry: register a plot (coordinates pasted or drawn, live preview and area)")
            .describe("Submits `POST /v1/orgs/{org}/plots`.")
            .answer(200, "The page.", &[("text/html", json!({ "type": "string" }))]),
        op("get", "/entry/harvest", "getHarvestForm", "pages", Access::Public, "Data entry: record a harvest (the lot, then its commissioning event)")
            .describe("Submits `POST /v1/orgs/{org}/lots`, then `POST /epcis/capture` (ObjectEvent ADD, commissioning) and follows the capture job. `?plot=` preselects a plot.")
            .answer(200, "The page.", &[("text/html", json!({ "type": "string" }))]),
        op("get", "/entry/packing", "getPackingForm", "pages", Access::Public, "Data entry: record a packing event of a lot")
            .describe("Submits `POST /epcis/capture` (ObjectEvent OBSERVE, packing).")
            .answer(200, "The page.", &[("text/html", json!({ "type": "string" }))]),
        op("get", "/entry/shipments/new", "getShipmentForm", "pages", Access::Public, "Data entry: a new shipment (containers' ISO 6346 check digits checked as typed)")
            .describe("Submits `POST /v1/orgs/{org}/shipments`.")
            .answer(200, "The page.", &[("text/html", json!({ "type": "string" }))]),
        op("get", "/entry/documents/new", "getDocumentForm", "pages", Access::Public, "Data entry: attach a document to a lot or shipment")
            .describe("Submits `POST /v1/documents` (multipart); the file's size is checked against the node's `document_bytes_max`, which the page carries, before it is sent.")
            .answer(200, "The page.", &[("text/html", json!({ "type": "string" }))]),
        op("get", "/entry/devices/new", "getDeviceForm", "pages", Access::Public, "Data entry: register a device and its Ed25519 public key")
            .describe("Submits `POST /v1/orgs/{org}/devices`.")
            .answer(200, "The page.", &[("text/html", json!({ "type": "string" }))]),
        op("get", "/entry/devices/{device}", "getDevicePage", "pages", Access::Public, "Data entry: a device's health and refused readings (`?lang=zh|en`)")
            .describe("A page with no data in it: its script shows `GET /v1/orgs/{org}/devices/{device}/health` (last reading, clock offset, missing sequence numbers, dropped samples, keys) and the pages of `.../quarantine`, with the token `/login` keeps in the tab.")
            .params(&["device"])
            .answer(200, "The page.", &[("text/html", json!({ "type": "string" }))])
            .errors(&[400]),
        op("get", "/pages/entry.js", "getEntryScript", "pages", Access::Public, "The data-entry forms' script: checks as you type, submits through this API")
            .answer(200, "The script.", &[("text/javascript", json!({ "type": "string" }))]),
        op("get", "/console", "getConsole", "pages", Access::Public, "The customs console: the shipments declared to the signed-in officer's authority (`?lang=zh|en`)")
            .describe("A page with no data in it: its script lists the shipments with `GET /v1/shipments?declared_to=` (an auditor: every shipment), with the token `/login` keeps in the tab, and tells a caller who is neither a customs officer nor an auditor in plain words that the console is not for its role.")
            .answer(200, "The page.", &[("text/html", json!({ "type": "string" }))]),
        op("get", "/console/shipments/{org}/{id}", "getConsoleShipment", "pages", Access::Public, "The customs console's page of one shipment (`?lang=zh|en`)")
            .describe("A page with no data in it: its script shows the shipment, its trace graph (`GET /trace/shipment:…`), the cold chain of each custody window (with `…/temperatures`), its documents with their signatures and history, a check of a document the officer was handed (`POST /v1/verify/document`) and the export of the evidence bundle.")
            .params(&["org", "shipment"])
            .answer(200, "The page.", &[("text/html", json!({ "type": "string" }))])
            .errors(&[400]),
        op("get", "/pages/console.js", "getConsoleScript", "pages", Access::Public, "The customs console's script")
            .answer(200, "The script.", &[("text/javascript", json!({ "type": "string" }))]),
        op("get", "/v1/orgs/{org}/shipments/{id}/temperatures", "getShipmentTemperatures", "pages", Access::Token, "The temperatures of a shipment's custody window, for a chart")
            .describe("`ReadRecords`, to whoever may read the shipment (as `GET /v1/orgs/{org}/shipments/{id}`: 403 when it is not shared with the caller). The readings of its devices from departure to arrival (or now) — the ones its evidence bundle carries — thinned evenly to at most `points_max` `[time_ms, centi_c]` points, with the band of its first lot's product. Before departure: no points.")
            .params(&["org", "shipment"])
            .ok(200, "The points.", open(
                &["shipment", "departed", "arrived", "devices", "points", "points_max"],
                json!({
                    "shipment": string("The shipment's trace node id, `shipment:{org}/{id}`."),
                    "departed": { "type": "boolean" },
                    "arrived": { "type": "boolean" },
                    "from_ms": int("Departure (Unix ms); absent before departure."),
                    "to_ms": int("Arrival, or now (Unix ms); absent before departure."),
                    "devices": { "type": "array", "items": pattern(DEVICE_PATTERN, "A device that travelled with it.") },
                    "band_centi_c": nullable(&json!({ "type": "array", "items": centi("°C × 100"), "minItems": 2, "maxItems": 2 })),
                    "points": { "type": "array", "description": "`[time_ms, centi_c]` pairs by device time.", "items": { "type": "array", "items": { "type": "integer" } } },
                    "points_max": int("Most points answered."),
                }),
            ))
            .errors(&[400, 404]),
    ]
}

/// The OpenAPI 3.1 document.
#[must_use]
pub fn document() -> Value {
    let mut paths = Map::new();
    let all = [
        node_ops(),
        reading_ops(),
        account_ops(),
        master_ops(),
        device_ops(),
        trade_ops(),
        epcis_ops(),
        resolver_ops(),
        trace_ops(),
        document_ops(),
        evidence_ops(),
        pages_ops(),
    ];
    for op in all.into_iter().flatten() {
        let (path, method, mut value) = op.finish();
        if path == "/trace/{id}"
            && let Some(parameters) = value["parameters"].as_array_mut()
        {
            parameters.insert(0, trace_id_param());
        }
        let item = paths
            .entry(path)
            .or_insert_with(|| Value::Object(Map::new()));
        item[method] = value;
    }
    json!({
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
        "info": {
            "title": "agritrace node API",
            "version": env!("CARGO_PKG_VERSION"),
            "summary": "Traceability of agricultural goods: accounts, master data, devices, lots and shipments, EPCIS 2.0, the GS1 Digital Link resolver and the verifiable log.",
            "description": "Errors are RFC 9457 problem documents (`application/problem+json`). Lists that can grow are paged: `limit` and an opaque `next` cursor, or `perPage` and `nextPageToken` for EPCIS. Request bodies are JSON (EPCIS also `application/ld+json`) within the node's body limit (413 over it, 415 for another content type). Every route but `/healthz`, `/readyz` and `/metrics` is rate limited: 429 with `Retry-After`. Authorisation is one policy: each operation names the action it needs, and a caller's roles and organisation decide.",
            "license": { "name": "Apache-2.0", "identifier": "Apache-2.0" },
        },
        "servers": [{ "url": "/" }],
        "tags": [
            { "name": "node", "description": "Health, metrics, this document." },
            { "name": "pages", "description": "The consumer page's public data and script; the signed-in pages' shell." },
            { "name": "log", "description": "The verifiable log (C2SP tlog-tiles)." },
            { "name": "readings", "description": "Where a device reading is anchored, with proofs." },
            { "name": "accounts", "description": "Organisations, members, tokens." },
            { "name": "admin", "description": "Bootstrap from the node's own host." },
            { "name": "partners", "description": "Sharing records between organisations." },
            { "name": "master data", "description": "Products, locations, plots." },
            { "name": "devices", "description": "An organisation's devices and their keys." },
            { "name": "lots and shipments", "description": "Harvest lots and shipments." },
            { "name": "EPCIS", "description": "EPCIS 2.0 capture and query." },
            { "name": "resolver", "description": "GS1 Digital Link resolver, QR codes, scan counts." },
            { "name": "trace", "description": "Trace, recall, FSMA 204 export." },
            { "name": "documents", "description": "Issuer keys, trade documents, the customs check." },
        ],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": { "type": "http", "scheme": "bearer", "description": "An API token (`agt_…`) issued to a member." },
            },
            "parameters": merge([parameters(), document_parameters()]),
            "schemas": merge([schemas(), document_schemas()]),
            "responses": responses(),
        },
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn every_operation_has_a_unique_id_responses_and_problem_errors() {
        let doc = document();
        let mut ids = BTreeSet::new();
        let paths = doc["paths"].as_object().expect("paths");
        for (path, item) in paths {
            for (method, op) in item.as_object().expect("path item") {
                let id = op["operationId"].as_str().expect("operationId");
                assert!(ids.insert(id.to_owned()), "{id} twice");
                let responses = op["responses"].as_object().expect("responses");
                assert!(
                    responses.keys().any(|c| c.starts_with('2')),
                    "{method} {path}: no success answer"
                );
                for (code, response) in responses {
                    if code.starts_with('4') || code.starts_with('5') {
                        let name = response["$ref"].as_str().unwrap_or("");
                        let name = name.trim_start_matches("#/components/responses/");
                        let problem = &doc["components"]["responses"][name]["content"]["application/problem+json"];
                        assert!(
                            problem.is_object(),
                            "{method} {path} {code}: not a problem document"
                        );
                    }
                }
                let templated: BTreeSet<&str> = path
                    .split('/')
                    .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
                    .collect();
                let declared: BTreeSet<String> = op["parameters"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|p| {
                        let p = match p["$ref"].as_str() {
                            Some(r) => {
                                &doc["components"]["parameters"]
                                    [r.trim_start_matches("#/components/parameters/")]
                            }
                            None => p,
                        };
                        (p["in"] == "path").then(|| p["name"].as_str().unwrap_or("").to_owned())
                    })
                    .collect();
                let declared: BTreeSet<&str> = declared.iter().map(String::as_str).collect();
                assert_eq!(templated, declared, "{method} {path}: path parameters");
            }
        }
        assert!(ids.len() > 100, "{} operations", ids.len());
    }

    #[test]
    fn every_operation_but_the_probes_documents_the_rate_limit() {
        let doc = document();
        let limited = &doc["components"]["responses"]["TooManyRequests"];
        assert!(limited["headers"]["Retry-After"].is_object());
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().expect("path item") {
                let documented = op["responses"].get("429").is_some();
                let exempt = ["/healthz", "/readyz", "/metrics"].contains(&path.as_str());
                assert_eq!(documented, !exempt, "{method} {path}: 429");
            }
        }
    }
}
