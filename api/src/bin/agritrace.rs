//! `agritrace`: the node's command line — run the node, register devices, bootstrap organisations, members and API tokens, show the log key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use std::sync::Arc;

use api::access::AdminOp;
use api::auth::Directory;
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
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
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

async fn run(command: Command) -> Result<()> {
    match command {
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
