//! `NodeConfig`: every setting of `agritrace serve`, documented field by field, read once from
//! one TOML file, then overridden by `AGRITRACE_*` environment variables, then validated.
//! Every default works on a laptop: data under `./agritrace-data`, HTTP on 127.0.0.1:8080, an
//! in-process MQTT broker on 127.0.0.1:1883.
//!
//! ```toml
//! data_dir = "agritrace-data"
//! origin = "agritrace.localhost/log"
//! http_listen = "127.0.0.1:8080"
//!
//! [broker]
//! embedded = true          # false: connect to an external broker at host:port
//! host = "127.0.0.1"
//! port = 1883
//! device_auth = false      # true: devices log in and use only their own topics
//! # ingest_password_file = "mqtt-auth/ingest.password"   # external broker with device_auth
//!
//! [[witnesses]]
//! url = "http://127.0.0.1:7380"
//! key = "customs.example/witness+1234abcd+BA..."
//! ```
//!
//! The resolver's scan warning (top-level keys, before any `[table]`):
//!
//! ```toml
//! ip_country_csv = "/var/lib/agritrace/dbip-country-lite.csv"  # optional
//! trusted_proxies = ["127.0.0.1"]                               # X-Forwarded-For from these
//! scans_unusual_count = 50
//! ```
//!
//! Rate limits of the HTTP API, per class (see [`crate::ratelimit`]; `per_minute = 0` turns a
//! class off):
//!
//! ```toml
//! [rate_limits]
//! public = { per_minute = 3000, burst = 1000 }   # resolver, consumer pages; per address
//! failed_auth = { per_minute = 6, burst = 20 }   # wrong tokens; per address
//! ```

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use ingest::IngestConfig;
use ledger::note::{KeyType, NoteVerifier, check_key_name};
use ledger::sequencer::SequencerConfig;
use ledger::witness_client::{WITNESSES_MAX, WitnessEndpoint};
use serde::Deserialize;

/// The embedded store's file name in the data directory.
pub const STORE_FILE: &str = "agritrace.redb";
/// The log key's file name in the data directory.
pub const LOG_KEY_FILE: &str = "log.key";
/// Largest configuration file read, in bytes.
pub const CONFIG_BYTES_MAX: usize = 1024 * 1024;
/// Hard ceiling on the in-process broker's connections.
pub const BROKER_CONNECTIONS_CEILING: usize = 100_000;
/// Most trusted proxies.
pub const TRUSTED_PROXIES_MAX: usize = 64;
/// Hard ceiling on `scans_unusual_count`.
pub const SCANS_UNUSUAL_COUNT_CEILING: u64 = 1_000_000_000;

/// Why the configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("reading the configuration file {path} failed")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is larger than [`CONFIG_BYTES_MAX`].
    #[error("the configuration file {0} is larger than {CONFIG_BYTES_MAX} bytes")]
    TooLarge(PathBuf),
    /// The file is not valid TOML for this structure.
    #[error("the configuration file is not valid: {0}")]
    Parse(String),
    /// An environment variable does not parse.
    #[error("environment variable {name}: {reason}")]
    Env {
        /// The variable.
        name: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A setting is out of its range.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// How the node writes its log lines (stderr).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines (the default).
    #[default]
    Text,
    /// One JSON object per line (tracing-subscriber's JSON format), for log collectors.
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            other => Err(format!("{other:?} is not a log format (text or json)")),
        }
    }
}

/// Settings of the MQTT broker the node's ingest reads from.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BrokerConfig {
    /// Run an MQTT broker (rumqttd, MQTT 3.1.1, plain TCP) inside the node, listening on
    /// `host:port`; `false` connects ingest to an external broker (Mosquitto, EMQX) there.
    /// The in-process broker keeps messages in memory only, which is enough because devices
    /// keep every reading until the end-to-end ack. Default `true`. Env `AGRITRACE_BROKER_EMBEDDED`.
    pub embedded: bool,
    /// Broker host (listen address of the in-process broker: an IP address). Default
    /// `127.0.0.1`. Env `AGRITRACE_BROKER_HOST`.
    pub host: String,
    /// Broker port; with the in-process broker, 0 picks a free port. Default 1883. Env
    /// `AGRITRACE_BROKER_PORT`.
    pub port: u16,
    /// In-process broker: most client connections. 1..=100,000. Default 10,000.
    pub connections_max: usize,
    /// In-process broker: largest publish payload in bytes (the uplink limit is well
    /// below). 1,024..=1 MiB. Default 20,480.
    pub payload_bytes_max: usize,
    /// In-process broker: unacknowledged QoS 1 messages per connection. 1..=65,535. Default 100.
    pub inflight_max: usize,
    /// Devices and ingest must log in to the broker, and each device may publish only its own
    /// readings and read only its own acks (`crate::broker_auth`). In-process broker: the
    /// node checks logins and topics itself; external broker: configure it with the files of
    /// `agritrace broker config`, and ingest logs in with `ingest_password_file`. Default
    /// `false`, because the default in-process broker listens on the loopback address only,
    /// where only this host's programs reach it (and devices provisioned before this setting
    /// have no credential); an in-process broker on any other address requires `true`. Env
    /// `AGRITRACE_BROKER_DEVICE_AUTH`.
    pub device_auth: bool,
    /// External broker with `device_auth`: the file holding ingest's broker password (one
    /// line; written by `agritrace broker config`). Env `AGRITRACE_BROKER_INGEST_PASSWORD_FILE`.
    pub ingest_password_file: Option<PathBuf>,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        Self {
            embedded: true,
            host: "127.0.0.1".to_owned(),
            port: 1883,
            connections_max: 10_000,
            payload_bytes_max: 20_480,
            inflight_max: 100,
            device_auth: false,
            ingest_password_file: None,
        }
    }
}

/// A witness the sequencer asks to cosign every checkpoint (C2SP tlog-witness).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WitnessConfig {
    /// Submission prefix, e.g. `http://127.0.0.1:7380` (`/add-checkpoint` is appended).
    pub url: String,
    /// The witness's `cosignature/v1` verifier key (`name+hash+base64`).
    pub key: String,
}

/// Every setting of `agritrace serve`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeConfig {
    /// Directory of the embedded store (`agritrace.redb`) and the log key (`log.key`,
    /// generated on first start, mode 0600). Created if missing. Default `agritrace-data`.
    /// Env `AGRITRACE_DATA_DIR`.
    pub data_dir: PathBuf,
    /// The log's origin (C2SP tlog-checkpoint first line, and the log key's name): one line,
    /// no spaces or `+`. It must not change once the log key exists. Default
    /// `agritrace.localhost/log`. Env `AGRITRACE_ORIGIN`.
    pub origin: String,
    /// HTTP listen address (tile endpoints, `/healthz`, `/metrics`, `/v1/...`); port 0 picks
    /// a free port. Device import (`POST /v1/devices/import`) answers only loopback clients.
    /// Default `127.0.0.1:8080`. Env `AGRITRACE_HTTP_LISTEN`.
    pub http_listen: SocketAddr,
    /// The MQTT broker.
    pub broker: BrokerConfig,
    /// MQTT worker connections of ingest on the shared subscription. 1..=64. Default 2. Env
    /// `AGRITRACE_INGEST_WORKERS`.
    pub ingest_workers: usize,
    /// A batch of readings closes at this many readings. 1..=800. Default 500. Env
    /// `AGRITRACE_BATCH_READINGS_MAX`.
    pub batch_readings_max: usize,
    /// A batch closes this long after its first reading at the latest. 1..=60,000. Default
    /// 200. Env `AGRITRACE_BATCH_WINDOW_MS`.
    pub batch_window_ms: u64,
    /// Time between sequencer rounds. 10..=10,000. Default 100. Env
    /// `AGRITRACE_ROUND_PERIOD_MS`.
    pub round_period_ms: u64,
    /// How long a checkpoint waits for the witnesses. 1..=120,000. Default 5,000.
    pub witness_timeout_ms: u64,
    /// Witnesses asked to cosign each checkpoint; none by default (at most 64).
    pub witnesses: Vec<WitnessConfig>,
    /// Largest request body of the HTTP API (a device manifest is the largest), bytes.
    /// 1,024..=16 MiB. Default 16 MiB.
    pub http_body_bytes_max: usize,
    /// Largest trade document file (`POST /v1/documents`), bytes: 1..=64 MiB. Default 10 MiB.
    /// Env `AGRITRACE_DOCUMENT_BYTES_MAX`.
    pub document_bytes_max: usize,
    /// The node's public origin (`https://trace.example.cn`): the stem of the GS1 Digital
    /// Links it resolves and prints in QR codes. Empty: `http://{http_listen}`. Env
    /// `AGRITRACE_PUBLIC_URL`.
    pub public_url: String,
    /// The operator's IP-to-country table: a CSV file of `first_address,last_address,country`
    /// lines (DB-IP "IP to Country Lite", IP2Location LITE DB1 / DB1 IPv6; see
    /// [`crate::resolver::geo`]), read once at start. With it, the resolver keeps the countries a
    /// serialised code was scanned in and flags one scanned in more than one; without it
    /// (the default), only address prefixes and counts. A malformed line or overlapping
    /// ranges stop the node with an error naming the line. Env `AGRITRACE_IP_COUNTRY_CSV`
    /// (empty: none).
    pub ip_country_csv: Option<PathBuf>,
    /// Reverse proxies in front of the node whose `X-Forwarded-For` header names the client
    /// a scan is counted under (IP addresses, at most 64). The header of any other peer is
    /// ignored. None by default. Env `AGRITRACE_TRUSTED_PROXIES` (comma separated).
    pub trusted_proxies: Vec<IpAddr>,
    /// A serialised code scanned more times than this from more than one address prefix is
    /// flagged as scanned unusually often. 1..=1,000,000,000. Default 50. Env
    /// `AGRITRACE_SCANS_UNUSUAL_COUNT`.
    pub scans_unusual_count: u64,
    /// Rate limits of the HTTP API, per class (`public`, `log`, `read`, `write`,
    /// `failed_auth`), each `{ per_minute, burst }` (`per_minute = 0`: off), and `keys_max`;
    /// see [`crate::ratelimit::RateLimitConfig`] for the defaults. Env
    /// `AGRITRACE_RATE_LIMIT_<CLASS>` (`PER_MINUTE/BURST` or `off`),
    /// `AGRITRACE_RATE_LIMIT_KEYS_MAX`.
    pub rate_limits: crate::ratelimit::RateLimitConfig,
    /// Log lines as `"text"` (default) or `"json"` (one object per line). The `--log-format`
    /// flag and `AGRITRACE_LOG_FORMAT` override it.
    pub log_format: LogFormat,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("agritrace-data"),
            origin: "agritrace.localhost/log".to_owned(),
            http_listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            broker: BrokerConfig::default(),
            ingest_workers: 2,
            batch_readings_max: 500,
            batch_window_ms: 200,
            round_period_ms: 100,
            witness_timeout_ms: 5_000,
            witnesses: Vec::new(),
            http_body_bytes_max: ingest::registry::MANIFEST_BYTES_MAX,
            public_url: String::new(),
            document_bytes_max: crate::documents::DOCUMENT_BYTES_DEFAULT,
            ip_country_csv: None,
            trusted_proxies: Vec::new(),
            scans_unusual_count: crate::resolver::scans::UNUSUAL_COUNT_DEFAULT,
            rate_limits: crate::ratelimit::RateLimitConfig::default(),
            log_format: LogFormat::Text,
        }
    }
}

fn env_value<T: std::str::FromStr>(
    name: &'static str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<T>, ConfigError>
where
    T::Err: std::fmt::Display,
{
    match lookup(name) {
        None => Ok(None),
        Some(text) => text
            .trim()
            .parse()
            .map(Some)
            .map_err(|e: T::Err| ConfigError::Env {
                name,
                reason: e.to_string(),
            }),
    }
}

fn range<T: PartialOrd + std::fmt::Display>(
    name: &str,
    value: T,
    min: T,
    max: T,
) -> Result<(), ConfigError> {
    if value < min || value > max {
        return Err(ConfigError::Invalid(format!(
            "{name} is {value}, it must be {min}..={max}"
        )));
    }
    Ok(())
}

impl NodeConfig {
    /// Parses TOML text (missing fields take their defaults; unknown fields are refused).
    ///
    /// # Errors
    /// [`ConfigError::Parse`] naming the problem.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))
    }

    /// Reads `path` (or the defaults without one), applies the `AGRITRACE_*` environment
    /// overrides and validates the result.
    ///
    /// # Errors
    /// [`ConfigError`] if the file cannot be read or parsed, a variable does not parse, or a
    /// setting is out of range.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let mut config = match path {
            Some(path) => {
                let read = |source| ConfigError::Read {
                    path: path.to_owned(),
                    source,
                };
                let len = std::fs::metadata(path).map_err(read)?.len();
                if len > u64::try_from(CONFIG_BYTES_MAX).unwrap_or(u64::MAX) {
                    return Err(ConfigError::TooLarge(path.to_owned()));
                }
                Self::from_toml(&std::fs::read_to_string(path).map_err(read)?)?
            }
            None => Self::default(),
        };
        config.apply_env(&|name| std::env::var(name).ok())?;
        config.validate()?;
        Ok(config)
    }

    /// Applies the environment overrides found by `lookup` (named in each field's doc).
    ///
    /// # Errors
    /// [`ConfigError::Env`] naming the first variable that does not parse.
    pub fn apply_env(
        &mut self,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(), ConfigError> {
        if let Some(v) = env_value::<PathBuf>("AGRITRACE_DATA_DIR", lookup)? {
            self.data_dir = v;
        }
        if let Some(v) = env_value::<String>("AGRITRACE_ORIGIN", lookup)? {
            self.origin = v;
        }
        if let Some(v) = env_value("AGRITRACE_HTTP_LISTEN", lookup)? {
            self.http_listen = v;
        }
        if let Some(v) = env_value("AGRITRACE_BROKER_EMBEDDED", lookup)? {
            self.broker.embedded = v;
        }
        if let Some(v) = env_value::<String>("AGRITRACE_BROKER_HOST", lookup)? {
            self.broker.host = v;
        }
        if let Some(v) = env_value("AGRITRACE_BROKER_PORT", lookup)? {
            self.broker.port = v;
        }
        if let Some(v) = env_value("AGRITRACE_BROKER_DEVICE_AUTH", lookup)? {
            self.broker.device_auth = v;
        }
        if let Some(v) = env_value::<PathBuf>("AGRITRACE_BROKER_INGEST_PASSWORD_FILE", lookup)? {
            self.broker.ingest_password_file = Some(v);
        }
        if let Some(v) = env_value("AGRITRACE_INGEST_WORKERS", lookup)? {
            self.ingest_workers = v;
        }
        if let Some(v) = env_value("AGRITRACE_BATCH_READINGS_MAX", lookup)? {
            self.batch_readings_max = v;
        }
        if let Some(v) = env_value("AGRITRACE_BATCH_WINDOW_MS", lookup)? {
            self.batch_window_ms = v;
        }
        if let Some(v) = env_value("AGRITRACE_ROUND_PERIOD_MS", lookup)? {
            self.round_period_ms = v;
        }
        if let Some(v) = env_value::<String>("AGRITRACE_PUBLIC_URL", lookup)? {
            self.public_url = v;
        }
        if let Some(v) = env_value("AGRITRACE_DOCUMENT_BYTES_MAX", lookup)? {
            self.document_bytes_max = v;
        }
        if let Some(v) = env_value::<PathBuf>("AGRITRACE_IP_COUNTRY_CSV", lookup)? {
            self.ip_country_csv = (!v.as_os_str().is_empty()).then_some(v);
        }
        if let Some(list) = lookup("AGRITRACE_TRUSTED_PROXIES") {
            self.trusted_proxies = list
                .split(',')
                .map(str::trim)
                .filter(|a| !a.is_empty())
                .map(|a| {
                    a.parse().map_err(|e| ConfigError::Env {
                        name: "AGRITRACE_TRUSTED_PROXIES",
                        reason: format!("{a:?}: {e}"),
                    })
                })
                .collect::<Result<_, _>>()?;
        }
        if let Some(v) = env_value("AGRITRACE_SCANS_UNUSUAL_COUNT", lookup)? {
            self.scans_unusual_count = v;
        }
        self.rate_limits.apply_env(lookup)?;
        Ok(())
    }

    /// Checks every field against its range (and the ingest and sequencer settings derived
    /// from them).
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the first bad field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.data_dir.as_os_str().is_empty() {
            return Err(ConfigError::Invalid("data_dir is empty".to_owned()));
        }
        check_key_name(&self.origin).map_err(|_| {
            ConfigError::Invalid("origin must be one line without spaces or '+'".to_owned())
        })?;
        if self.broker.embedded && self.broker.host.parse::<std::net::IpAddr>().is_err() {
            return Err(ConfigError::Invalid(
                "broker.host must be an IP address for the in-process broker".to_owned(),
            ));
        }
        if self.broker.embedded
            && !self.broker.device_auth
            && self
                .broker
                .host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| !ip.is_loopback())
        {
            return Err(ConfigError::Invalid(
                "broker.device_auth must be true for an in-process broker listening on a \
                 non-loopback address (broker.host)"
                    .to_owned(),
            ));
        }
        if !self.broker.embedded
            && self.broker.device_auth
            && self.broker.ingest_password_file.is_none()
        {
            return Err(ConfigError::Invalid(
                "broker.ingest_password_file is required with an external broker and \
                 broker.device_auth (write it with `agritrace broker config`)"
                    .to_owned(),
            ));
        }
        if !self.broker.embedded && self.broker.port == 0 {
            return Err(ConfigError::Invalid(
                "broker.port 0 is only for the in-process broker".to_owned(),
            ));
        }
        range(
            "broker.connections_max",
            self.broker.connections_max,
            1,
            BROKER_CONNECTIONS_CEILING,
        )?;
        range(
            "broker.payload_bytes_max",
            self.broker.payload_bytes_max,
            1024,
            1024 * 1024,
        )?;
        range("broker.inflight_max", self.broker.inflight_max, 1, 65_535)?;
        range(
            "http_body_bytes_max",
            self.http_body_bytes_max,
            1024,
            ingest::registry::MANIFEST_BYTES_MAX,
        )?;
        range(
            "document_bytes_max",
            self.document_bytes_max,
            1,
            crate::documents::DOCUMENT_BYTES_CEILING,
        )?;
        if !self.public_url.is_empty() {
            crate::resolver::BaseUrl::parse(&self.public_url)
                .map_err(|e| ConfigError::Invalid(format!("public_url: {e}")))?;
        }
        if let Some(path) = &self.ip_country_csv
            && !path.is_file()
        {
            return Err(ConfigError::Invalid(format!(
                "ip_country_csv: {} is not a file",
                path.display()
            )));
        }
        if self.trusted_proxies.len() > TRUSTED_PROXIES_MAX {
            return Err(ConfigError::Invalid(format!(
                "trusted_proxies: at most {TRUSTED_PROXIES_MAX} addresses"
            )));
        }
        if let Some(any) = self.trusted_proxies.iter().find(|a| a.is_unspecified()) {
            return Err(ConfigError::Invalid(format!(
                "trusted_proxies: {any} is not a proxy's address"
            )));
        }
        range(
            "scans_unusual_count",
            self.scans_unusual_count,
            1,
            SCANS_UNUSUAL_COUNT_CEILING,
        )?;
        self.rate_limits.validate()?;
        if self.witnesses.len() > WITNESSES_MAX {
            return Err(ConfigError::Invalid(format!(
                "at most {WITNESSES_MAX} witnesses"
            )));
        }
        self.witness_endpoints()?;
        self.ingest_config()
            .validate()
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        self.sequencer_config()
            .validate()
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        Ok(())
    }

    /// The embedded store's file.
    #[must_use]
    pub fn store_path(&self) -> PathBuf {
        self.data_dir.join(STORE_FILE)
    }

    /// The log key's file.
    #[must_use]
    pub fn log_key_path(&self) -> PathBuf {
        self.data_dir.join(LOG_KEY_FILE)
    }

    /// The ingest settings (broker port 0 must be resolved by the caller first).
    #[must_use]
    pub fn ingest_config(&self) -> IngestConfig {
        IngestConfig {
            broker_host: self.broker.host.clone(),
            broker_port: self.broker.port,
            workers: self.ingest_workers,
            batch_readings_max: self.batch_readings_max,
            batch_window_ms: self.batch_window_ms,
            ..IngestConfig::default()
        }
    }

    /// The sequencer settings.
    #[must_use]
    pub fn sequencer_config(&self) -> SequencerConfig {
        SequencerConfig {
            round_period_ms: self.round_period_ms,
            witness_timeout_ms: self.witness_timeout_ms,
            ..SequencerConfig::new(&self.origin)
        }
    }

    /// The operator's IP-to-country table, read from `ip_country_csv` (none without it).
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the file and the line that is wrong.
    pub fn ip_country_table(&self) -> Result<Option<crate::resolver::geo::GeoTable>, ConfigError> {
        let Some(path) = &self.ip_country_csv else {
            return Ok(None);
        };
        crate::resolver::geo::GeoTable::load(path)
            .map(Some)
            .map_err(|e| {
                let cause = std::error::Error::source(&e)
                    .map(|c| format!(": {c}"))
                    .unwrap_or_default();
                ConfigError::Invalid(format!("ip_country_csv {}: {e}{cause}", path.display()))
            })
    }

    /// The configured witnesses with their parsed keys.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] if a key is not a `cosignature/v1` verifier key.
    pub fn witness_endpoints(&self) -> Result<Vec<WitnessEndpoint>, ConfigError> {
        self.witnesses
            .iter()
            .map(|w| {
                let verifier =
                    NoteVerifier::parse_typed(&w.key, KeyType::CosignatureV1).map_err(|e| {
                        ConfigError::Invalid(format!("witness {}: bad key: {e}", w.url))
                    })?;
                if !(w.url.starts_with("http://") || w.url.starts_with("https://")) {
                    return Err(ConfigError::Invalid(format!(
                        "witness url {:?} is not http(s)",
                        w.url
                    )));
                }
                Ok(WitnessEndpoint {
                    url: w.url.clone(),
                    verifier,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(toml: &str, env: &[(&str, &str)], expected_error: Option<&str>) {
        let outcome = NodeConfig::from_toml(toml).and_then(|mut config| {
            config.apply_env(&|name| {
                env.iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| (*v).to_owned())
            })?;
            config.validate()
        });
        match (outcome, expected_error) {
            (Ok(()), None) => {}
            (Err(error), Some(needle)) => {
                let message = error.to_string();
                assert!(message.contains(needle), "{message:?} names {needle:?}");
            }
            (outcome, expected) => panic!("{outcome:?}, expected an error naming {expected:?}"),
        }
    }

    #[test]
    fn defaults_and_each_bound_are_checked() {
        check("", &[], None);
        check("origin = \"a b\"", &[], Some("origin"));
        check("ingest_workers = 0", &[], Some("workers"));
        check("batch_readings_max = 801", &[], Some("batch_readings_max"));
        check("round_period_ms = 5", &[], Some("round_period_ms"));
        check(
            "[broker]\nconnections_max = 0",
            &[],
            Some("connections_max"),
        );
        check(
            "[broker]\nembedded = false\nport = 0",
            &[],
            Some("broker.port"),
        );
        check("[broker]\nhost = \"localhost\"", &[], Some("broker.host"));
        check(
            "[broker]\nhost = \"192.0.2.1\"",
            &[],
            Some("broker.device_auth"),
        );
        check(
            "[broker]\nhost = \"192.0.2.1\"\ndevice_auth = true",
            &[],
            None,
        );
        check(
            "[broker]\nembedded = false\ndevice_auth = true",
            &[],
            Some("broker.ingest_password_file"),
        );
        check(
            "[broker]\nembedded = false",
            &[
                ("AGRITRACE_BROKER_DEVICE_AUTH", "true"),
                ("AGRITRACE_BROKER_INGEST_PASSWORD_FILE", "/p"),
            ],
            None,
        );
        check("unknown_field = 1", &[], Some("unknown"));
        check("document_bytes_max = 0", &[], Some("document_bytes_max"));
        check(
            "document_bytes_max = 67108865",
            &[],
            Some("document_bytes_max"),
        );
        check("document_bytes_max = 67108864", &[], None);
        check(
            "",
            &[("AGRITRACE_DOCUMENT_BYTES_MAX", "0")],
            Some("document_bytes_max"),
        );
        check(
            "[[witnesses]]\nurl = \"http://x\"\nkey = \"nope\"",
            &[],
            Some("witness"),
        );
    }

    #[test]
    fn environment_overrides_the_file() {
        let mut config = NodeConfig::from_toml("batch_window_ms = 50").expect("toml");
        config
            .apply_env(&|name| match name {
                "AGRITRACE_BATCH_WINDOW_MS" => Some("75".to_owned()),
                "AGRITRACE_BROKER_EMBEDDED" => Some("false".to_owned()),
                "AGRITRACE_HTTP_LISTEN" => Some("127.0.0.1:9999".to_owned()),
                _ => None,
            })
            .expect("env");
        assert_eq!(config.batch_window_ms, 75);
        assert!(!config.broker.embedded);
        assert_eq!(config.http_listen.port(), 9999);
        check(
            "",
            &[("AGRITRACE_BROKER_PORT", "x")],
            Some("AGRITRACE_BROKER_PORT"),
        );
        check("", &[("AGRITRACE_INGEST_WORKERS", "65")], Some("workers"));
    }

    #[test]
    fn the_scan_settings_are_checked() {
        check("trusted_proxies = [\"127.0.0.1\", \"::1\"]", &[], None);
        check(
            "trusted_proxies = [\"proxy\"]",
            &[],
            Some("trusted_proxies"),
        );
        check(
            "trusted_proxies = [\"0.0.0.0\"]",
            &[],
            Some("trusted_proxies"),
        );
        check(
            "",
            &[("AGRITRACE_TRUSTED_PROXIES", "127.0.0.1, x")],
            Some("AGRITRACE_TRUSTED_PROXIES"),
        );
        check("scans_unusual_count = 0", &[], Some("scans_unusual_count"));
        check(
            "",
            &[("AGRITRACE_SCANS_UNUSUAL_COUNT", "1000000001")],
            Some("scans_unusual_count"),
        );
        check(
            "ip_country_csv = \"no-such-dir/ip.csv\"",
            &[],
            Some("ip_country_csv: no-such-dir/ip.csv is not a file"),
        );
        check(
            "ip_country_csv = \"no-such-dir/ip.csv\"",
            &[("AGRITRACE_IP_COUNTRY_CSV", "")],
            None,
        );

        let dir = tempfile::tempdir().expect("tempdir");
        let good = dir.path().join("good.csv");
        std::fs::write(&good, "1.0.0.0,1.0.0.255,AU\n").expect("write");
        let bad = dir.path().join("bad.csv");
        std::fs::write(&bad, "1.0.0.0,1.0.0.255,AU\n1.0.1.0,x,CN\n").expect("write");
        let mut config = NodeConfig::default();
        config
            .apply_env(&|name| {
                (name == "AGRITRACE_IP_COUNTRY_CSV").then(|| good.display().to_string())
            })
            .expect("env");
        config.validate().expect("valid");
        let table = config.ip_country_table().expect("loads").expect("a table");
        assert_eq!(table.len(), 1);
        config.ip_country_csv = Some(bad);
        config.validate().expect("the file exists");
        let error = config.ip_country_table().expect_err("line 2 is bad");
        assert!(error.to_string().contains("line 2"), "{error}");
        assert!(
            NodeConfig::default()
                .ip_country_table()
                .expect("none")
                .is_none()
        );
    }

    #[test]
    fn the_rate_limits_are_read_and_checked() {
        use crate::ratelimit::Budget;
        let config = NodeConfig::from_toml(
            "[rate_limits]\nkeys_max = 1000\npublic = { per_minute = 0 }\n\
             failed_auth = { per_minute = 2, burst = 5 }",
        )
        .expect("toml");
        assert_eq!(config.rate_limits.keys_max, 1000);
        assert_eq!(config.rate_limits.public, Budget::OFF);
        assert_eq!(config.rate_limits.failed_auth, Budget::new(2, 5));
        assert_eq!(
            config.rate_limits.read,
            Budget::new(3_000, 1_000),
            "default"
        );
        config.validate().expect("valid");
        check(
            "[rate_limits]\nread = { per_minute = 60 }",
            &[],
            Some("rate_limits.read.burst"),
        );
        check(
            "[rate_limits]\nwrite = { per_minute = 6000001, burst = 1 }",
            &[],
            Some("rate_limits.write.per_minute"),
        );
        check("[rate_limits]\nkeys_max = 15", &[], Some("keys_max"));
        check(
            "[rate_limits]\nlog = { per_minute = 1, burst = 1, extra = 1 }",
            &[],
            Some("unknown"),
        );
        check("", &[("AGRITRACE_RATE_LIMIT_LOG", "off")], None);
        check(
            "",
            &[("AGRITRACE_RATE_LIMIT_PUBLIC", "600")],
            Some("AGRITRACE_RATE_LIMIT_PUBLIC"),
        );
        check(
            "",
            &[("AGRITRACE_RATE_LIMIT_KEYS_MAX", "x")],
            Some("AGRITRACE_RATE_LIMIT_KEYS_MAX"),
        );
        let mut config = NodeConfig::default();
        config
            .apply_env(&|name| match name {
                "AGRITRACE_RATE_LIMIT_FAILED_AUTH" => Some("1/3".to_owned()),
                "AGRITRACE_RATE_LIMIT_WRITE" => Some("0".to_owned()),
                _ => None,
            })
            .expect("env");
        assert_eq!(config.rate_limits.failed_auth, Budget::new(1, 3));
        assert_eq!(config.rate_limits.write, Budget::OFF);
    }
}
