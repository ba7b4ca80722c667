//! The agritrace node (DESIGN.md, "Components"): one process that runs the MQTT broker
//! (in-process by default), ingest, the sequencer of the log and the HTTP API over one embedded
//! store in a data directory. The `agritrace` binary (`src/bin/agritrace.rs`) is its command
//! line: `serve`, `device import`, `keygen`.
//!
//! - [`config`]: `NodeConfig`, one TOML file with `AGRITRACE_*` environment overrides.
//! - [`config_check`]: `agritrace config check`, every problem of a configuration file
//!   explained with its line.
//! - [`node`]: start and stop order, the log key, offline device import.
//! - [`broker`]: the in-process rumqttd broker.
//! - [`broker_auth`]: device and ingest MQTT credentials, topic permissions, the gateway in
//!   front of the in-process broker, Mosquitto password and ACL files.
//! - [`http`]: the routes (log tiles, `/healthz`, `/metrics`, reading anchors, device import).
//! - [`metrics`]: Prometheus text rendering.
//! - [`auth`]: organisations, members, roles, API tokens and the one authorisation policy.
//! - [`geo`]: plot geolocation as the EU Deforestation Regulation asks for it.
//! - [`master`]: products, locations and plots of an organisation.
//! - [`access`]: the HTTP side of accounts (the caller extractor, `require`, account routes).
//! - [`coldchain`]: the cold chain of a custody window from the devices' committed readings.
//! - [`fsma`]: the FSMA 204 sortable spreadsheet from stored EPCIS events.
//! - [`trace`]: the trace graph (backward, forward) and the recall of a lot.
//! - [`provenance`]: the routes of trace, recall and the FSMA 204 export.
//! - [`resolver`]: the GS1 Digital Link resolver, QR codes and scan counts of serialised items.
//! - [`epcis`]: EPCIS 2.0 capture and query, each event anchored as a `TraceEvent`; sensor
//!   summaries of devices and of a shipment's journey.
//! - [`documents`]: organisations' document-signing (issuer) keys, trade documents anchored
//!   as `DocumentAnchor` entries (sign, revoke, supersede), and the customs check by content.
//! - [`evidence`]: evidence bundles of a shipment or a lot, sealed by the log key, for
//!   `agritrace-verify`.
//! - [`pages`]: the consumer's page a QR code opens (server-rendered HTML, a proof checked in
//!   the browser) and the public journey of a lot it is drawn from.
//! - [`backup`]: online backup of the embedded store (`POST /v1/admin/backup`), verified
//!   restore, and the consistency check of a restored log against a live node.
//! - [`openapi`]: the OpenAPI 3.1 description of every route, served at `/openapi.json`.
//! - [`ratelimit`]: token-bucket rate limits per client address and per caller, 429 with
//!   `Retry-After`.
//! - [`partners`], [`devices`], [`trade`] (with [`paging`]): partner sharing, an organisation's
//!   devices (key events on the log; their health and quarantine in [`device_health`]), lots and
//!   shipments, read through `access::visibility`.

pub mod access;
pub mod auth;
pub mod backup;
pub mod broker;
pub mod broker_auth;
pub mod coldchain;
pub mod config;
pub mod config_check;
pub mod device_health;
pub mod devices;
pub mod documents;
pub mod epcis;
pub mod evidence;
pub mod fsma;
pub mod geo;
pub mod http;
pub mod master;
pub mod metrics;
pub mod node;
pub mod openapi;
pub mod pages;
pub mod paging;
pub mod partners;
pub mod provenance;
pub mod ratelimit;
pub mod resolver;
pub mod trace;
pub mod trade;

pub use config::{BrokerConfig, ConfigError, NodeConfig, WitnessConfig};
pub use node::{Node, NodeError, import_offline, load_or_create_log_key, open_log};
