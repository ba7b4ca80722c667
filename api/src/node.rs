//! The node: one process holding the embedded store, the log key, the sequencer, the MQTT
//! broker (in-process by default), ingest and the HTTP server, started in that order and
//! stopped in the reverse order.
//!
//! The data directory holds `agritrace.redb` (the log and every record) and `log.key` (the
//! log's Ed25519 signed-note key, created on first start with mode 0600). redb allows one
//! process per file, so everything that writes — including `agritrace device import` while a
//! node runs — goes through the running node.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ingest::{Clock, DeviceRegistry, IngestHandle, IngestTasks, RegisterOutcome, SystemClock};
use ledger::note::{KeyType, NoteSigner};
use ledger::sequencer::{SequencerHandle, SequencerTasks};
use ledger::storage::redb::RedbStorage;
use ledger::witness_client::WitnessClient;
use protocol::{DeviceId, SigningKey};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::{ConfigError, NodeConfig};

/// The storage backend of the node.
pub type Storage = RedbStorage;

/// Why the node (or an offline command on its data directory) could not start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The data directory or the log key file could not be used.
    #[error("{what}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The log key file is not a usable key for the configured origin.
    #[error("the log key {path}: {reason}")]
    LogKey {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The store could not be opened (another process may hold it).
    #[error("opening the store {path} failed (is another agritrace process using it?)")]
    Store {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: ledger::storage::ReadError,
    },
    /// The witness client could not be built.
    #[error("setting up the witnesses failed")]
    Witnesses(#[from] ledger::witness_client::WitnessClientError),
    /// The sequencer did not start.
    #[error("starting the sequencer failed")]
    Sequencer(#[from] ledger::sequencer::StartError),
    /// The in-process broker did not start.
    #[error(transparent)]
    Broker(#[from] crate::broker::BrokerError),
    /// Ingest did not start.
    #[error("starting ingest failed")]
    Ingest(#[from] ingest::StartError),
    /// Registering devices failed.
    #[error("registering devices failed")]
    Import(#[from] ingest::RegistryError),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> NodeError {
    let what = what.into();
    move |source| NodeError::Io { what, source }
}

/// Reads the log key at `path`, or creates one named `origin` if the file does not exist
/// (mode 0600, fsync'd with its directory before it is used: a checkpoint signed with a key
/// that a crash then loses could never be extended).
///
/// # Errors
/// [`NodeError`] if the file cannot be read or written, or holds a key of another name or type.
pub fn load_or_create_log_key(path: &Path, origin: &str) -> Result<NoteSigner, NodeError> {
    let shown = path.display().to_string();
    let bad = |reason: String| NodeError::LogKey {
        path: shown.clone(),
        reason,
    };
    if path.exists() {
        let text = std::fs::read_to_string(path).map_err(io(format!("reading {shown}")))?;
        let signer = NoteSigner::parse(text.trim()).map_err(|e| bad(e.to_string()))?;
        if signer.key_type() != KeyType::Ed25519 {
            return Err(bad("not an Ed25519 log key".to_owned()));
        }
        if signer.name() != origin {
            return Err(bad(format!(
                "it is named {:?} but the configured origin is {origin:?}",
                signer.name()
            )));
        }
        return Ok(signer);
    }
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| bad(format!("no system randomness: {e}")))?;
    let signer = NoteSigner::new(origin, KeyType::Ed25519, SigningKey::from_bytes(&seed))
        .map_err(|e| bad(e.to_string()))?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .map_err(io(format!("creating {shown}")))?;
    writeln!(file, "{}", signer.to_skey())
        .and_then(|()| file.sync_all())
        .map_err(io(format!("writing {shown}")))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io(format!("syncing {}", dir.display())))?;
    }
    tracing::info!(path = %shown, key = %signer.verifier().to_vkey(), "created the log key");
    Ok(signer)
}

/// The open log: store, key, running sequencer.
#[derive(Debug)]
pub struct OpenLog {
    /// The sequencer.
    pub sequencer: SequencerHandle<Storage>,
    /// Its tasks.
    pub tasks: SequencerTasks,
    /// The log's verifier key (`name+hash+base64`).
    pub verifier_key: String,
    /// The log key again, for what the node signs besides checkpoints (evidence seals).
    pub seal_key: NoteSigner,
}

/// Opens the data directory (creating it), the log key and the store, and starts the
/// sequencer with the configured witnesses.
///
/// # Errors
/// [`NodeError`] if any of them fails.
pub async fn open_log(config: &NodeConfig) -> Result<OpenLog, NodeError> {
    std::fs::create_dir_all(&config.data_dir).map_err(io(format!(
        "creating the data directory {}",
        config.data_dir.display()
    )))?;
    let log_key = load_or_create_log_key(&config.log_key_path(), &config.origin)?;
    let verifier_key = log_key.verifier().to_vkey();
    // The sequencer owns the key it signs checkpoints with; a second handle signs seals.
    let seal_key = NoteSigner::parse(&log_key.to_skey()).map_err(|e| NodeError::LogKey {
        path: config.log_key_path().display().to_string(),
        reason: e.to_string(),
    })?;
    let store_path = config.store_path();
    let storage = RedbStorage::open(&store_path, ledger::empty_root().0).map_err(|source| {
        NodeError::Store {
            path: store_path.display().to_string(),
            source,
        }
    })?;
    let witnesses = WitnessClient::new(
        config.witness_endpoints()?,
        Duration::from_millis(config.witness_timeout_ms),
    )?;
    let (sequencer, tasks) =
        ledger::sequencer::start(storage, log_key, config.sequencer_config(), witnesses).await?;
    Ok(OpenLog {
        sequencer,
        tasks,
        verifier_key,
        seal_key,
    })
}

/// Registers the devices of an `agritrace-device` manifest directly in the data directory (no
/// node may be running on it), waits until the key events are durable and checkpointed, and
/// stops.
///
/// # Errors
/// [`NodeError`] if the log cannot be opened or a registration fails.
pub async fn import_offline(
    config: &NodeConfig,
    manifest_json: &str,
) -> Result<Vec<(DeviceId, RegisterOutcome)>, NodeError> {
    // A malformed broker credential refuses the manifest before anything is registered.
    crate::broker_auth::manifest_credentials(manifest_json)
        .map_err(|e| NodeError::from(ConfigError::Invalid(format!("the manifest: {e}"))))?;
    let log = open_log(config).await?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let ingest = config.ingest_config();
    let registry = DeviceRegistry::new(
        log.sequencer.clone(),
        clock.clone(),
        ingest.key_cache_entries_max,
        ingest.key_cache_ttl_ms,
    );
    let mut outcome = registry
        .import_manifest(manifest_json, clock.now_ms())
        .await;
    if outcome.is_ok() {
        // The devices' broker credentials (`mqtt_password_hash`), once their keys are in.
        if let Err(error) =
            crate::broker_auth::store_manifest_credentials(log.sequencer.storage(), manifest_json)
                .await
        {
            outcome = Err(ingest::RegistryError::Manifest(error));
        }
    }
    // Shutdown checkpoints the last durable state before it returns.
    log.tasks.shutdown().await;
    Ok(outcome?)
}

/// Ingest's broker login with `broker.device_auth`: a fresh random password for the
/// in-process broker (the node holds both ends), the first line of `ingest_password_file` for
/// an external one.
fn ingest_broker_login(config: &NodeConfig) -> Result<Option<ingest::BrokerLogin>, NodeError> {
    if !config.broker.device_auth {
        return Ok(None);
    }
    let password = match &config.broker.ingest_password_file {
        Some(path) if !config.broker.embedded => std::fs::read_to_string(path)
            .map_err(|e| {
                ConfigError::Invalid(format!(
                    "broker.ingest_password_file {}: {e}",
                    path.display()
                ))
            })?
            .lines()
            .next()
            .unwrap_or_default()
            .trim()
            .to_owned(),
        _ => crate::broker_auth::new_secret()
            .map_err(|e| ConfigError::Invalid(format!("broker: {e}")))?,
    };
    if password.is_empty() {
        return Err(ConfigError::Invalid("broker.ingest_password_file is empty".to_owned()).into());
    }
    Ok(Some(ingest::BrokerLogin {
        username: crate::broker_auth::INGEST_USERNAME.to_owned(),
        password,
    }))
}

/// A running node.
#[derive(Debug)]
pub struct Node {
    http_addr: SocketAddr,
    broker_addr: SocketAddr,
    verifier_key: String,
    sequencer: SequencerHandle<Storage>,
    ingest: IngestHandle<Storage>,
    ingest_tasks: IngestTasks,
    sequencer_tasks: SequencerTasks,
    http_stop: watch::Sender<bool>,
    http: JoinHandle<std::io::Result<()>>,
    scan_tasks: crate::resolver::scans::ScanTasks,
}

impl Node {
    /// Starts everything `config` describes. Port 0 (HTTP, or the in-process broker) picks a
    /// free port; [`http_addr`](Self::http_addr) and [`broker_addr`](Self::broker_addr) say
    /// which.
    ///
    /// # Errors
    /// [`NodeError`] naming the part that did not start.
    pub async fn start(config: NodeConfig) -> Result<Self, NodeError> {
        config.validate()?;
        // Read first, so a bad table stops the node before anything runs; up to a few
        // hundred thousand lines, read off the async workers.
        let countries = {
            let config = config.clone();
            tokio::task::spawn_blocking(move || config.ip_country_table())
                .await
                .map_err(|e| ConfigError::Invalid(format!("ip_country_csv: {e}")))??
        };
        if let Some(table) = &countries {
            tracing::info!(
                ranges = table.len(),
                unassigned = table.unassigned(),
                "IP-to-country table loaded"
            );
        }
        let log = open_log(&config).await?;
        let ingest_login = ingest_broker_login(&config)?;
        let broker_addr = if config.broker.embedded {
            let broker = config.broker.clone();
            let authority = match &ingest_login {
                Some(login) => {
                    let ingest = config.ingest_config();
                    let registry = DeviceRegistry::new(
                        log.sequencer.clone(),
                        Arc::new(SystemClock),
                        ingest.key_cache_entries_max,
                        ingest.key_cache_ttl_ms,
                    );
                    Some(
                        crate::broker_auth::Authority::new(registry, &login.password)
                            .map_err(|e| ConfigError::Invalid(format!("broker: {e}")))?,
                    )
                }
                None => None,
            };
            tokio::task::spawn_blocking(move || match authority {
                Some(authority) => crate::broker::start_with_gateway(&broker, authority),
                None => crate::broker::start(&broker),
            })
            .await
            .map_err(|e| {
                crate::broker::BrokerError::Thread(std::io::Error::other(e.to_string()))
            })??
        } else {
            resolve(&config.broker.host, config.broker.port).await?
        };
        let mut ingest_config = config.ingest_config();
        ingest_config.broker_port = broker_addr.port();
        ingest_config.broker_login = ingest_login;
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let (ingest, ingest_tasks) =
            ingest::start(ingest_config, log.sequencer.clone(), clock.clone())?;
        let listener = tokio::net::TcpListener::bind(config.http_listen)
            .await
            .map_err(io(format!("listening on {}", config.http_listen)))?;
        let http_addr = listener
            .local_addr()
            .map_err(io("reading the HTTP listen address"))?;
        let base = crate::resolver::base_url(&config.public_url, http_addr)
            .map_err(|e| ConfigError::Invalid(format!("public_url: {e}")))?;
        let resolver = crate::resolver::Resolver::configured(
            base,
            crate::resolver::scans::ScanRule {
                unusual_count: config.scans_unusual_count,
            },
            countries,
            config.trusted_proxies.clone(),
        );
        let scan_tasks = crate::resolver::scans::start(
            resolver.scans().clone(),
            log.sequencer.storage().clone(),
        );
        let state = crate::http::AppState {
            ingest: ingest.clone(),
            sequencer: log.sequencer.clone(),
            verifier_key: Arc::from(log.verifier_key.as_str()),
            directory: crate::auth::Directory::new(log.sequencer.storage().clone(), clock.clone()),
            master: crate::master::MasterData::new(log.sequencer.storage().clone()),
            resolver,
            epcis: crate::epcis::Epcis::new(log.sequencer.storage().clone(), clock.clone()),
            partners: crate::auth::Partners::new(log.sequencer.storage().clone(), clock.clone()),
            devices: crate::devices::Devices::new(
                ingest.registry().clone(),
                log.sequencer.clone(),
                clock.clone(),
            ),
            trade: crate::trade::Trade::new(log.sequencer.storage().clone()),
            cold_chains: crate::coldchain::ColdChainCache::default(),
            documents: crate::documents::Documents::new(
                log.sequencer.clone(),
                clock.clone(),
                config.document_bytes_max,
            ),
            evidence: crate::evidence::Evidence::new(log.seal_key, &config.witness_endpoints()?)
                .map_err(|e| ConfigError::Invalid(format!("the evidence trust policy: {e}")))?,
            rate_limits: crate::ratelimit::RateLimiter::new(&config.rate_limits),
            backups: crate::backup::Backups::new(&config.data_dir),
            clock,
        };
        let app = crate::http::router(state, config.http_body_bytes_max);
        let (http_stop, mut stop_rx) = watch::channel(false);
        let http = tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async move {
                let _ = stop_rx.wait_for(|stop| *stop).await;
            })
            .await
        });
        tracing::info!(%http_addr, %broker_addr, origin = %config.origin, "node started");
        Ok(Self {
            http_addr,
            broker_addr,
            verifier_key: log.verifier_key,
            sequencer: log.sequencer,
            ingest,
            ingest_tasks,
            sequencer_tasks: log.tasks,
            http_stop,
            http,
            scan_tasks,
        })
    }

    /// Where the HTTP server listens.
    #[must_use]
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// Where the MQTT broker is (in-process or external).
    #[must_use]
    pub fn broker_addr(&self) -> SocketAddr {
        self.broker_addr
    }

    /// The log's verifier key (`name+hash+base64`), for `agritrace-verify --log-key`.
    #[must_use]
    pub fn verifier_key(&self) -> &str {
        &self.verifier_key
    }

    /// The sequencer.
    #[must_use]
    pub fn sequencer(&self) -> &SequencerHandle<Storage> {
        &self.sequencer
    }

    /// Ingest.
    #[must_use]
    pub fn ingest(&self) -> &IngestHandle<Storage> {
        &self.ingest
    }

    /// Waits until the sequencer fails (the reason) or the HTTP server ends; the node should
    /// exit then.
    pub async fn wait_for_failure(&mut self) -> String {
        tokio::select! {
            reason = self.sequencer.wait_for_failure() => reason.map_or_else(
                || "the sequencer stopped".to_owned(),
                |r| format!("the sequencer failed: {r}"),
            ),
            ended = &mut self.http => match ended {
                Ok(Ok(())) => "the HTTP server stopped".to_owned(),
                Ok(Err(e)) => format!("the HTTP server failed: {e}"),
                Err(e) => format!("the HTTP server task failed: {e}"),
            },
        }
    }

    /// Stops taking HTTP requests and MQTT messages, lets the messages taken commit and be
    /// acknowledged, then stops the sequencer after its last checkpoint.
    pub async fn shutdown(self) {
        let _ = self.http_stop.send(true);
        self.ingest_tasks.shutdown().await;
        if !self.http.is_finished() {
            let _ = tokio::time::timeout(Duration::from_secs(5), self.http).await;
        }
        // No request counts a scan any more: write the last ones.
        self.scan_tasks.shutdown().await;
        self.sequencer_tasks.shutdown().await;
    }
}

async fn resolve(host: &str, port: u16) -> Result<SocketAddr, NodeError> {
    let mut addresses = tokio::net::lookup_host((host, port))
        .await
        .map_err(io(format!("resolving the broker host {host:?}")))?;
    addresses.next().ok_or_else(|| NodeError::Io {
        what: format!("resolving the broker host {host:?}"),
        source: std::io::Error::other("no address"),
    })
}
