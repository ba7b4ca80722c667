//! `agritrace`: the node's command line — run the node, register devices, bootstrap organisations, members and API tokens, show the log key, back up and restore the store, check a configuration file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use std::sync::Arc;

use api::access::AdminOp;
use api::auth::Directory;
use api::config::LogFormat;
use api::{Node, NodeConfig};
use clap::{Parser, Subcommand};
use ingest::SystemClock;
use ledger::storage::redb::RedbStorage;

const LONG_ABOUT: &str = "\
The agritrace node: an MQTT broker (in-process by default), ingest, the transparency log's \
sequencer and the HTTP API in one process over one data directory.

Configuration: one TOML file (--config; every field is optional and documented in \
api/src/config.rs), then AGRITRACE_* environment variables (AGRITRACE_DATA_DIR, \
AGRITRACE_ORIGIN, AGRITRACE_HTTP_LISTEN, AGRITRACE_BROKER_EMBEDDED, AGRITRACE_BROKER_HOST, \
AGRITRACE_BROKER_PORT, AGRITRACE_BROKER_DEVICE_AUTH, AGRITRACE_BROKER_INGEST_PASSWORD_FILE, \
AGRITRACE_INGEST_WORKERS, AGRITRACE_BATCH_READINGS_MAX, \
AGRITRACE_BATCH_WINDOW_MS, AGRITRACE_ROUND_PERIOD_MS), then the flags below.

Examples:
  agritrace serve
  agritrace-device --provision-only --devices 30
  agritrace device import agritrace-device-keys/manifest.json
  curl http://127.0.0.1:8080/metrics
  agritrace config check agritrace.toml
  agritrace backup --out agritrace-2026-11-27.backup
  agritrace restore --from agritrace-2026-11-27.backup --data-dir restored --log-key agritrace-data/log.key
  agritrace restore --check --data-dir restored --against http://127.0.0.1:8080
  AGRITRACE_BROKER_DEVICE_AUTH=true agritrace serve    (devices log in, own topics only)
  agritrace broker config --out mqtt-auth             (Mosquitto password and ACL files)";

/// The agritrace node.
#[derive(Debug, Parser)]
#[command(name = "agritrace", version, about, long_about = LONG_ABOUT)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log filter, e.g. info, debug, or api=debug,ingest=debug,rumqttd=warn. The in-process
    /// broker's own log is off by default: rumqttd 0.20 reports every ordinary client
    /// disconnect as an error (the node reports a broker that does not come up itself).
    #[arg(
        long,
        global = true,
        env = "AGRITRACE_LOG",
        default_value = "info,rumqttd=off"
    )]
    log: String,
    /// Log line format: text (default) or json (one JSON object per line). Overrides
    /// `log_format` of the configuration file.
    #[arg(
        long,
        global = true,
        env = "AGRITRACE_LOG_FORMAT",
        value_name = "FORMAT"
    )]
    log_format: Option<LogFormat>,
}

/// Where the configuration comes from (shared by every subcommand).
#[derive(Debug, clap::Args)]
struct ConfigArgs {
    /// The TOML configuration file (defaults for every missing field).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The data directory (overrides the file and AGRITRACE_DATA_DIR).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// HTTP listen address (overrides the file and AGRITRACE_HTTP_LISTEN).
    #[arg(long, value_name = "ADDR")]
    http_listen: Option<SocketAddr>,
}

impl ConfigArgs {
    fn load(&self) -> Result<NodeConfig> {
        let mut config =
            NodeConfig::load(self.config.as_deref()).context("while loading the configuration")?;
        if let Some(dir) = &self.data_dir {
            config.data_dir.clone_from(dir);
        }
        if let Some(listen) = self.http_listen {
            config.http_listen = listen;
        }
        config
            .validate()
            .context("while checking the configuration")?;
        Ok(config)
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the node until Ctrl-C or SIGTERM.
    Serve {
        #[command(flatten)]
        config: ConfigArgs,
        /// Port of the MQTT broker (in-process: 0 picks a free one), overriding the rest.
        #[arg(long, value_name = "PORT")]
        broker_port: Option<u16>,
    },
    /// Manage devices.
    Device {
        #[command(subcommand)]
        command: DeviceCommand,
    },
    /// Bootstrap organisations, members and API tokens. Goes through the running node's HTTP
    /// API on this host when one answers at http_listen; otherwise opens the data directory
    /// itself. Prints the result as JSON (an issued token is shown this once).
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// The MQTT broker's device authentication.
    Broker {
        #[command(subcommand)]
        command: BrokerCommand,
    },
    /// Create the log key in the data directory if missing, and print its verifier key.
    Keygen {
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Write a backup of the whole store to FILE, online: the running node (at --url, or at
    /// http_listen on this host) takes a consistent snapshot while it keeps ingesting, and
    /// streams it (POST /v1/admin/backup, the node's own host only). With no node answering,
    /// the data directory is copied directly. The file holds a manifest (origin, log key,
    /// size, root, checkpoint, rows per table, SHA-256 of the image) and the image; it is
    /// written to a temporary name, fsync'd, checked and renamed. The log's private key is
    /// never in a backup: keep log.key safe separately.
    Backup {
        /// The backup file to write.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// The running node's base URL (default: http://<http_listen>).
        #[arg(long, value_name = "URL")]
        url: Option<String>,
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Restore a backup into an empty data directory and prove it is the backed-up log (image
    /// hash, rows of every table, root from the tiles, the checkpoint's signature), and with
    /// --against that it is the same log as a live node's (a consistency proof from the
    /// restored checkpoint to the live one, from the live node's tiles). With --check, only
    /// the proofs, on a data directory restored before. Prints a JSON report; exit 1 on any
    /// failure.
    Restore {
        /// The backup file.
        #[arg(long, value_name = "FILE", required_unless_present = "check")]
        from: Option<PathBuf>,
        /// The data directory to restore into (or to check).
        #[arg(long, value_name = "DIR")]
        data_dir: PathBuf,
        /// The log's key file (log.key of the backed-up node), put in place after checking it
        /// is the backup's. With --check and no log.key in DIR: the log's verifier key.
        #[arg(long, value_name = "KEY")]
        log_key: Option<String>,
        /// Replace the store of a data directory that is not empty.
        #[arg(long)]
        force: bool,
        /// Only check an already restored data directory (needs --against).
        #[arg(long, requires = "against", conflicts_with_all = ["from", "force"])]
        check: bool,
        /// A live node of the same log (base URL) to prove consistency with.
        #[arg(long, value_name = "URL")]
        against: Option<String>,
    },
    /// Check configuration files.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Load FILE as the node would and explain every problem with its line: unknown keys
    /// (with the nearest known one), wrong types, values out of range, a data directory that
    /// cannot be created, witness keys that do not parse, a log key of another origin.
    /// Environment overrides are not applied. Exit 0 when the node would start with it, 1
    /// otherwise.
    Check {
        /// The TOML configuration file.
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Create an organisation, e.g. `create-org menghai-coop --name "勐海芒果合作社" --country CN`.
    CreateOrg {
        /// Its id: 2 to 63 characters of a-z, 0-9 and inner '-', '.' or '_'.
        id: String,
        /// Its name as people write it.
        #[arg(long)]
        name: String,
        /// ISO 3166-1 alpha-2 country code (upper case).
        #[arg(long)]
        country: String,
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Add a member to an organisation, e.g. `add-member menghai-coop li.wei --name "Li Wei"
    /// --role producer --role admin`.
    AddMember {
        /// The organisation.
        org: String,
        /// The member's id within it.
        id: String,
        /// Its name as people write it.
        #[arg(long)]
        name: String,
        /// A role (admin, producer, exporter, carrier, inspector, customs, auditor); repeat
        /// for several.
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Issue an API token for a member and print it (this once: only its hash is stored).
    IssueToken {
        /// The organisation.
        org: String,
        /// The member.
        member: String,
        /// A label to recognise the token by later ("laptop", "packhouse scanner").
        #[arg(long, default_value = "")]
        label: String,
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Revoke an API token by its id (the 16 hex digits after `agt_`).
    RevokeToken {
        /// The token id.
        id: String,
        #[command(flatten)]
        config: ConfigArgs,
    },
}

#[derive(Debug, Subcommand)]
enum BrokerCommand {
    /// Write Mosquitto 2.0 configuration for device authentication into DIR: `passwords`
    /// (password_file: every imported device's hash and ingest's), `acl` (acl_file: each device
    /// writes only agritrace/v1/devices/<id>/readings and reads only .../<id>/acks),
    /// `agritrace.conf` (allow_anonymous false and both files: `include_dir` it or copy its
    /// lines into mosquitto.conf) and `ingest.password` (kept if present; point
    /// broker.ingest_password_file at it and set broker.device_auth = true). Reads the data
    /// directory: run it while the node is stopped, after each import, then send Mosquitto
    /// SIGHUP to reload.
    Config {
        /// Directory to write the files into (created if missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        #[command(flatten)]
        config: ConfigArgs,
    },
}

#[derive(Debug, Subcommand)]
enum DeviceCommand {
    /// Register the devices of an agritrace-device manifest (manifest.json) as KeyEvent
    /// entries. Goes through the running node's HTTP API when one answers at http_listen;
    /// otherwise opens the data directory itself.
    Import {
        /// The manifest written by `agritrace-device --provision-only`.
        manifest: PathBuf,
        #[command(flatten)]
        config: ConfigArgs,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_new(&cli.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let format = cli
        .log_format
        .unwrap_or_else(|| configured_log_format(&cli.command));
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => subscriber.init(),
        LogFormat::Json => subscriber.json().init(),
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("agritrace: starting the async runtime failed: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("agritrace: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// `log_format` of the configuration file the command names, if it has one that parses (a
/// file that does not is reported once the command loads it).
fn configured_log_format(command: &Command) -> LogFormat {
    let config = match command {
        Command::Serve { config, .. }
        | Command::Keygen { config }
        | Command::Backup { config, .. } => config,
        _ => return LogFormat::default(),
    };
    config
        .config
        .as_deref()
        .and_then(|path| std::fs::read_to_string(path).ok())
        .and_then(|text| NodeConfig::from_toml(&text).ok())
        .map(|c| c.log_format)
        .unwrap_or_default()
}

async fn run(command: Command) -> Result<()> {
    match command {
        Command::Backup { out, url, config } => backup(&out, url, &config.load()?).await,
        Command::Restore {
            from,
            data_dir,
            log_key,
            force,
            check,
            against,
        } => restore(from, &data_dir, log_key, force, check, against).await,
        Command::Config {
            command: ConfigCommand::Check { file },
        } => {
            let problems = api::config_check::check_file(&file);
            for problem in &problems {
                match problem.line {
                    Some(line) => println!("{}:{line}: {}", file.display(), problem.message),
                    None => println!("{}: {}", file.display(), problem.message),
                }
            }
            if problems.is_empty() {
                println!("{}: ok", file.display());
                Ok(())
            } else {
                bail!(
                    "{} problem{} in {}",
                    problems.len(),
                    if problems.len() == 1 { "" } else { "s" },
                    file.display()
                )
            }
        }
        Command::Serve {
            config,
            broker_port,
        } => {
            let mut config = config.load()?;
            if let Some(port) = broker_port {
                config.broker.port = port;
            }
            serve(config).await
        }
        Command::Device {
            command: DeviceCommand::Import { manifest, config },
        } => import(&manifest, &config.load()?).await,
        Command::Broker {
            command: BrokerCommand::Config { out, config },
        } => {
            let report = api::broker_auth::write_mosquitto_config(&config.load()?, &out)
                .context("while writing the Mosquitto configuration")?;
            println!(
                "{}",
                serde_json::json!({
                    "conf": report.conf,
                    "ingest_password_file": report.ingest_password_file,
                    "ingest_password_created": report.ingest_password_created,
                    "devices": report.devices,
                })
            );
            Ok(())
        }
        Command::Admin { command } => {
            let (op, config) = match command {
                AdminCommand::CreateOrg {
                    id,
                    name,
                    country,
                    config,
                } => (AdminOp::CreateOrg { id, name, country }, config),
                AdminCommand::AddMember {
                    org,
                    id,
                    name,
                    roles,
                    config,
                } => (
                    AdminOp::AddMember {
                        org,
                        id,
                        name,
                        roles,
                    },
                    config,
                ),
                AdminCommand::IssueToken {
                    org,
                    member,
                    label,
                    config,
                } => (AdminOp::IssueToken { org, member, label }, config),
                AdminCommand::RevokeToken { id, config } => (AdminOp::RevokeToken { id }, config),
            };
            admin(&op, &config.load()?).await
        }
        Command::Keygen { config } => {
            let config = config.load()?;
            std::fs::create_dir_all(&config.data_dir)
                .with_context(|| format!("while creating {}", config.data_dir.display()))?;
            let signer = api::load_or_create_log_key(&config.log_key_path(), &config.origin)?;
            println!("{}", signer.verifier().to_vkey());
            Ok(())
        }
    }
}

async fn serve(config: NodeConfig) -> Result<()> {
    let mut node = Node::start(config)
        .await
        .context("while starting the node")?;
    let http = node.http_addr();
    eprintln!(
        "agritrace: serving http://{http} (metrics http://{http}/metrics, checkpoint \
         http://{http}/log/checkpoint); MQTT broker at {}; log key {}",
        node.broker_addr(),
        node.verifier_key()
    );
    let failure = tokio::select! {
        () = shutdown_signal() => None,
        reason = node.wait_for_failure() => Some(reason),
    };
    eprintln!("agritrace: stopping");
    node.shutdown().await;
    match failure {
        None => Ok(()),
        Some(reason) => bail!("{reason}"),
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Where this host reaches the node's HTTP API (a node bound to every interface still answers
/// on loopback).
fn local_http(config: &NodeConfig) -> SocketAddr {
    let mut target = config.http_listen;
    if target.ip().is_unspecified() {
        target.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    target
}

async fn admin(op: &AdminOp, config: &NodeConfig) -> Result<()> {
    let target = local_http(config);
    let (method, path, body) = op.request();
    let url = format!("http://{target}{path}");
    let client = reqwest::Client::new();
    let request = match method {
        "DELETE" => client.delete(&url),
        _ => client.post(&url),
    };
    match request
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
    {
        Ok(response) => {
            let status = response.status();
            let text = response
                .text()
                .await
                .with_context(|| format!("while reading the answer of {url}"))?;
            if !status.is_success() {
                bail!("the node refused ({status}): {text}");
            }
            println!("{text}");
            Ok(())
        }
        Err(error) if error.is_connect() => {
            eprintln!(
                "agritrace: no node answers at {target}; working directly in {}",
                config.data_dir.display()
            );
            std::fs::create_dir_all(&config.data_dir)
                .with_context(|| format!("while creating {}", config.data_dir.display()))?;
            let path = config.store_path();
            let storage = RedbStorage::open(&path, ledger::empty_root().0).with_context(|| {
                format!(
                    "while opening {} (is another agritrace process using it?)",
                    path.display()
                )
            })?;
            let directory = Directory::new(storage, Arc::new(SystemClock));
            match op.apply(&directory).await {
                Ok(value) => {
                    println!("{value}");
                    Ok(())
                }
                Err(error) => bail!("{}", error.detail()),
            }
        }
        Err(error) => Err(error).with_context(|| format!("while sending to {url}")),
    }
}

async fn backup(out: &Path, url: Option<String>, config: &NodeConfig) -> Result<()> {
    let explicit = url.is_some();
    let base = url.unwrap_or_else(|| format!("http://{}", local_http(config)));
    let manifest = match api::backup::fetch_backup(&base, out).await {
        Ok(manifest) => manifest,
        Err(api::backup::BackupError::Unreachable(url)) if !explicit => {
            eprintln!(
                "agritrace: no node answers at {url}; copying {} directly",
                config.data_dir.display()
            );
            offline_backup(out, config).await?
        }
        Err(error) => {
            return Err(error).with_context(|| format!("while backing up through {base}"));
        }
    };
    println!(
        "{}",
        serde_json::json!({
            "file": out.display().to_string(),
            "logSize": manifest.log_size,
            "checkpointSize": manifest.checkpoint_size,
            "imageBytes": manifest.image_bytes,
            "imageSha256": manifest.image_sha256,
            "tables": manifest.tables,
        })
    );
    Ok(())
}

async fn offline_backup(out: &Path, config: &NodeConfig) -> Result<api::backup::Manifest> {
    let store_path = config.store_path();
    if !store_path.exists() {
        bail!("{} holds no store", config.data_dir.display());
    }
    let key = api::load_or_create_log_key(&config.log_key_path(), &config.origin)?
        .verifier()
        .to_vkey();
    let data_dir = config.data_dir.clone();
    let out = out.to_owned();
    tokio::task::spawn_blocking(move || {
        let storage =
            RedbStorage::open(&store_path, ledger::empty_root().0).with_context(|| {
                format!(
                    "while opening {} (is another agritrace process using it?)",
                    store_path.display()
                )
            })?;
        let snapshot = api::backup::snapshot(&storage, &key, &data_dir)?;
        api::backup::write_backup(&snapshot, &out)?;
        Ok(snapshot.manifest.clone())
    })
    .await
    .context("while backing up")?
}

async fn restore(
    from: Option<PathBuf>,
    data_dir: &Path,
    log_key: Option<String>,
    force: bool,
    check: bool,
    against: Option<String>,
) -> Result<()> {
    let mut report = serde_json::Map::new();
    if !check {
        let from = from.context("--from names the backup to restore")?;
        let target = data_dir.to_owned();
        let key = log_key.clone().map(PathBuf::from);
        let restored = tokio::task::spawn_blocking(move || {
            api::backup::restore(&from, &target, key.as_deref(), force)
        })
        .await
        .context("while restoring")?
        .with_context(|| format!("while restoring into {}", data_dir.display()))?;
        if !restored.log_key_restored {
            eprintln!(
                "agritrace: no --log-key: put the log's key at {}/log.key before starting a                  node on it (a node would otherwise create a new key and sign checkpoints                  nobody can link to this log)",
                data_dir.display()
            );
        }
        report.insert("restored".to_owned(), serde_json::to_value(&restored)?);
    }
    if let Some(url) = against {
        // With --check, --log-key is the verifier key when the directory has no log.key.
        let vkey = if check { log_key.as_deref() } else { None };
        let consistent = api::backup::check_against(data_dir, &url, vkey)
            .await
            .with_context(|| format!("while proving {} against {url}", data_dir.display()))?;
        report.insert("consistent".to_owned(), serde_json::to_value(&consistent)?);
    }
    println!("{}", serde_json::Value::Object(report));
    Ok(())
}

async fn import(manifest: &Path, config: &NodeConfig) -> Result<()> {
    let text = std::fs::read_to_string(manifest)
        .with_context(|| format!("while reading {}", manifest.display()))?;
    let target = local_http(config);
    let url = format!("http://{target}/v1/devices/import");
    let client = reqwest::Client::new();
    match client.post(&url).body(text.clone()).send().await {
        Ok(response) => {
            let status = response.status();
            let body = response
                .text()
                .await
                .with_context(|| format!("while reading the answer of {url}"))?;
            if !status.is_success() {
                bail!("the node refused the import ({status}): {body}");
            }
            println!("{body}");
            Ok(())
        }
        Err(error) if error.is_connect() => {
            eprintln!(
                "agritrace: no node answers at {target}; registering directly in {}",
                config.data_dir.display()
            );
            let outcomes = api::import_offline(config, &text)
                .await
                .context("while registering the devices")?;
            println!("{}", api::http::import_report(&outcomes));
            Ok(())
        }
        Err(error) => Err(error).with_context(|| format!("while posting to {url}")),
    }
}
