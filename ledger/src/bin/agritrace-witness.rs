//! `agritrace-witness`: the witness service an agency runs to hold agritrace logs to account.
//!
//! It implements C2SP tlog-witness `add-checkpoint`: for every log it is configured with, it
//! cosigns a checkpoint only if the log signed it and it is consistent with the last checkpoint
//! the witness cosigned, which it keeps durably in its state directory.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};
use ed25519_dalek::SigningKey;
use ledger::note::{KeyType, NoteSigner, NoteVerifier};
use ledger::witness::{
    ServiceLimits, Witness, WitnessedLog, router_with_limits, system_clock_seconds,
};

const EXAMPLES: &str = "\
Typical first run:
  agritrace-witness generate-key --name customs.example/witness --key-file witness.key
  agritrace-witness serve --key-file witness.key --state-dir ./witness-state \\
      --log 'agritrace.example/log+1a2b3c4d+AXyz...'

Or put the settings in a file and run `agritrace-witness serve --config witness.toml`:
  listen = \"0.0.0.0:7380\"
  state_dir = \"/var/lib/agritrace-witness\"
  key_file = \"/etc/agritrace-witness/witness.key\"
  logs = [\"agritrace.example/log+1a2b3c4d+AXyz...\"]";

/// Witness service for agritrace transparency logs (C2SP tlog-witness).
///
/// A witness is run by an agency (customs, the agriculture ministry, a court) that wants to be
/// sure the log operator shows everybody the same history. The log sends each new checkpoint to
/// `POST <listen>/add-checkpoint`; the witness checks the log's signature and a consistency
/// proof from the last checkpoint it cosigned, records the new one durably, and answers with its
/// cosignature. It never cosigns a checkpoint that rewrites or forks what it has seen.
#[derive(Debug, Parser)]
#[command(name = "agritrace-witness", version, about, long_about, after_long_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the witness HTTP service.
    Serve(ServeArgs),
    /// Create a new witness key and write it to a file (readable by its owner only); prints the
    /// public verifier key to give to log operators and verifiers.
    GenerateKey {
        /// Name of the witness key, usually a domain-like name of your agency's witness, e.g.
        /// `customs.example/witness`.
        #[arg(long)]
        name: String,
        /// File to write the private key to. Refuses to overwrite an existing file.
        #[arg(long, value_name = "FILE")]
        key_file: PathBuf,
    },
    /// Print the public verifier key of an existing witness key file.
    ShowKey {
        /// The private key file written by `generate-key`.
        #[arg(long, value_name = "FILE")]
        key_file: PathBuf,
    },
}

/// `serve` options. Each may also come from the configuration file; the command line (or its
/// environment variable) wins over the file.
#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// TOML configuration file with any of: `listen`, `state_dir`, `key_file`, `logs` (a list of
    /// `[ORIGIN=]VKEY` strings).
    #[arg(long, env = "AGRITRACE_WITNESS_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address and port to listen on [default: 127.0.0.1:7380].
    #[arg(long, env = "AGRITRACE_WITNESS_LISTEN")]
    listen: Option<SocketAddr>,
    /// Directory where the latest cosigned checkpoint of every log is kept (created if missing).
    /// Back it up: losing it lets the witness be rolled back.
    #[arg(long, env = "AGRITRACE_WITNESS_STATE_DIR", value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// The witness's private key file (from `generate-key`).
    #[arg(long, env = "AGRITRACE_WITNESS_KEY_FILE", value_name = "FILE")]
    key_file: Option<PathBuf>,
    /// A log to witness, as its verifier key `name+hash+base64key` (the origin is then the key
    /// name), or `ORIGIN=VKEY` if the checkpoint origin differs from the key name. Repeat for
    /// several logs. Given here, it replaces the file's `logs`.
    #[arg(long = "log", value_name = "[ORIGIN=]VKEY")]
    logs: Vec<String>,
    /// Requests handled at once; more are answered 503 (1..=4096).
    #[arg(
        long,
        env = "AGRITRACE_WITNESS_REQUESTS_IN_FLIGHT_MAX",
        default_value_t = 64
    )]
    requests_in_flight_max: usize,
    /// Time allowed for one request, reading its body included; slower ones get 408
    /// (100..=120000 ms).
    #[arg(
        long,
        env = "AGRITRACE_WITNESS_REQUEST_TIMEOUT_MS",
        default_value_t = 10_000
    )]
    request_timeout_ms: u64,
    /// Largest request body in bytes; larger ones get 413 (1..=the largest valid request).
    #[arg(long, env = "AGRITRACE_WITNESS_BODY_BYTES_MAX", default_value_t = ledger::witness::REQUEST_BYTES_MAX)]
    body_bytes_max: usize,
}

/// The witness configuration, resolved from defaults, the TOML file, the environment and the
/// command line (later wins).
#[derive(Debug, Clone, PartialEq)]
struct WitnessConfig {
    /// Listen address.
    listen: SocketAddr,
    /// State directory.
    state_dir: PathBuf,
    /// Private key file.
    key_file: PathBuf,
    /// Witnessed logs, `[ORIGIN=]VKEY` each; at least one, at most 1,024.
    logs: Vec<String>,
}

/// Most logs one witness is configured with.
const LOGS_MAX: usize = 1024;
/// Largest configuration file read.
const CONFIG_BYTES_MAX: u64 = 1024 * 1024;

fn resolve_config(args: ServeArgs) -> anyhow::Result<WitnessConfig> {
    let mut file = toml::Table::new();
    if let Some(path) = &args.config {
        let length = std::fs::metadata(path)
            .with_context(|| format!("while reading the configuration {}", path.display()))?
            .len();
        if length > CONFIG_BYTES_MAX {
            bail!("configuration {} is larger than 1 MiB", path.display());
        }
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("while reading the configuration {}", path.display()))?;
        file = text
            .parse()
            .with_context(|| format!("while parsing the configuration {}", path.display()))?;
        for key in file.keys() {
            if !["listen", "state_dir", "key_file", "logs"].contains(&key.as_str()) {
                bail!("unknown setting {key:?} in {}", path.display());
            }
        }
    }
    let text = |key: &str| -> anyhow::Result<Option<String>> {
        match file.get(key) {
            None => Ok(None),
            Some(toml::Value::String(value)) => Ok(Some(value.clone())),
            Some(_) => bail!("setting {key:?} must be a string"),
        }
    };
    let listen = match (args.listen, text("listen")?) {
        (Some(listen), _) => listen,
        (None, Some(listen)) => listen
            .parse()
            .with_context(|| format!("while parsing listen = {listen:?}"))?,
        (None, None) => SocketAddr::from(([127, 0, 0, 1], 7380)),
    };
    let state_dir = args
        .state_dir
        .or(text("state_dir")?.map(PathBuf::from))
        .context("no state directory: pass --state-dir or set state_dir")?;
    let key_file = args
        .key_file
        .or(text("key_file")?.map(PathBuf::from))
        .context("no key file: pass --key-file or set key_file")?;
    let logs = if args.logs.is_empty() {
        match file.get("logs") {
            None => Vec::new(),
            Some(toml::Value::Array(items)) => items
                .iter()
                .map(|item| match item {
                    toml::Value::String(spec) => Ok(spec.clone()),
                    _ => bail!("every entry of logs must be a string"),
                })
                .collect::<anyhow::Result<_>>()?,
            Some(_) => bail!("setting \"logs\" must be a list of strings"),
        }
    } else {
        args.logs
    };
    if logs.is_empty() || logs.len() > LOGS_MAX {
        bail!("configure 1 to {LOGS_MAX} logs to witness (--log or logs = [...])");
    }
    Ok(WitnessConfig {
        listen,
        state_dir,
        key_file,
        logs,
    })
}

fn parse_log(spec: &str) -> anyhow::Result<WitnessedLog> {
    let (origin, vkey) = match spec.split_once('=') {
        // A vkey's base64 may end in '=': only a '=' before the first '+' separates an origin.
        Some((origin, vkey)) if !origin.contains('+') => (Some(origin), vkey),
        _ => (None, spec),
    };
    let key = NoteVerifier::parse_typed(vkey, KeyType::Ed25519)
        .with_context(|| format!("while parsing the log verifier key {vkey:?}"))?;
    let origin = origin.unwrap_or(key.name()).to_owned();
    Ok(WitnessedLog { origin, key })
}

fn read_key(path: &Path) -> anyhow::Result<NoteSigner> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("while reading the key file {}", path.display()))?;
    let signer = NoteSigner::parse(text.trim())
        .with_context(|| format!("while parsing the key file {}", path.display()))?;
    if signer.key_type() != KeyType::CosignatureV1 {
        bail!("{} is not a witness (cosignature/v1) key", path.display());
    }
    Ok(signer)
}

fn generate_key(name: &str, path: &Path) -> anyhow::Result<()> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| anyhow::anyhow!("no system randomness: {e}"))?;
    let signer = NoteSigner::new(name, KeyType::CosignatureV1, SigningKey::from_bytes(&seed))
        .with_context(|| format!("while making a key named {name:?}"))?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("while creating {} (it must not exist)", path.display()))?;
    use std::io::Write as _;
    writeln!(file, "{}", signer.to_skey())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("while writing {}", path.display()))?;
    println!("{}", signer.verifier().to_vkey());
    Ok(())
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let limits = ServiceLimits {
        requests_in_flight_max: args.requests_in_flight_max,
        request_timeout_ms: args.request_timeout_ms,
        body_bytes_max: args.body_bytes_max,
    };
    limits
        .validate()
        .map_err(|e| anyhow::anyhow!("invalid service limits: {e}"))?;
    let config = resolve_config(args)?;
    let signer = read_key(&config.key_file)?;
    let logs = config
        .logs
        .iter()
        .map(|spec| parse_log(spec))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let origins: Vec<String> = logs.iter().map(|l| l.origin.clone()).collect();
    let witness = Witness::open(
        signer,
        logs,
        &config.state_dir,
        Box::new(system_clock_seconds),
    )
    .with_context(|| format!("while opening the state in {}", config.state_dir.display()))?;
    let verifier = witness.verifier().to_vkey();
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("while binding {}", config.listen))?;
    let local = listener
        .local_addr()
        .context("while reading the bound address")?;
    tracing::info!(listen = %local, witness = %verifier, logs = ?origins, "witness serving");
    // Printed for scripts and tests that start the witness on port 0.
    println!("listening on {local}");
    axum::serve(listener, router_with_limits(Arc::new(witness), limits))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .context("while serving HTTP")
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::GenerateKey { name, key_file } => generate_key(&name, &key_file),
        Command::ShowKey { key_file } => {
            println!("{}", read_key(&key_file)?.verifier().to_vkey());
            Ok(())
        }
        Command::Serve(args) => tokio::runtime::Runtime::new()
            .context("while starting the async runtime")?
            .block_on(serve(args)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Any string: resolving the configuration does not parse keys.
    const VKEY: &str = "example.test/log+00000000+AQ==";

    fn args(config: Option<PathBuf>, listen: Option<&str>, logs: &[&str]) -> ServeArgs {
        ServeArgs {
            config,
            listen: listen.map(|l| l.parse().expect("address")),
            state_dir: None,
            key_file: None,
            logs: logs.iter().map(|l| (*l).to_owned()).collect(),
            requests_in_flight_max: 64,
            request_timeout_ms: 10_000,
            body_bytes_max: ledger::witness::REQUEST_BYTES_MAX,
        }
    }

    fn file(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("witness.toml");
        std::fs::write(&path, text).expect("write");
        (dir, path)
    }

    #[test]
    fn the_command_line_wins_over_the_file() {
        let (_dir, path) = file(&format!(
            "listen = \"0.0.0.0:9000\"\nstate_dir = \"/s\"\nkey_file = \"/k\"\nlogs = [\"{VKEY}\"]\n"
        ));
        let from_file = resolve_config(args(Some(path.clone()), None, &[])).expect("resolve");
        assert_eq!(from_file.listen.port(), 9000);
        assert_eq!(from_file.logs, vec![VKEY.to_owned()]);
        let overridden =
            resolve_config(args(Some(path), Some("127.0.0.1:1"), &["o=x"])).expect("resolve");
        assert_eq!(overridden.listen.port(), 1);
        assert_eq!(overridden.logs, vec!["o=x".to_owned()]);
        assert_eq!(overridden.state_dir, PathBuf::from("/s"));
    }

    #[test]
    fn bad_configurations_are_refused_with_a_reason() {
        let check = |text: &str, needle: &str| {
            let (_dir, path) = file(text);
            let error = resolve_config(args(Some(path), None, &[])).expect_err("refused");
            assert!(format!("{error:#}").contains(needle), "{error:#}");
        };
        check("state_dir = \"/s\"\nkey_file = \"/k\"\n", "logs");
        check("key_file = \"/k\"\nlogs = [\"x\"]\n", "state directory");
        check(
            "state_dir = \"/s\"\nkey_file = \"/k\"\nlogs = [\"x\"]\nport = 1\n",
            "unknown",
        );
        check("state_dir = 5\n", "must be a string");
        check("not toml at all [", "parsing");
    }

    #[test]
    fn log_specs_take_an_optional_origin() {
        let key = NoteSigner::new(
            "example.test/log",
            KeyType::Ed25519,
            SigningKey::from_bytes(&[3; 32]),
        )
        .expect("key");
        let vkey = key.verifier().to_vkey();
        let plain = parse_log(&vkey).expect("vkey");
        assert_eq!(plain.origin, "example.test/log");
        let named = parse_log(&format!("other.test/log={vkey}")).expect("origin=vkey");
        assert_eq!(named.origin, "other.test/log");
        assert!(parse_log("not a key").is_err());
    }
}
