//! `agritrace-device`: simulated cold-chain loggers publishing signed readings over MQTT.
//!
//! Each device is a [`firmware::Logger`] (the same sans-IO state machine that runs on the
//! microcontroller) on a simulated board from [`hardware::sim`], with its own MQTT client
//! (client id = device id) whose event loop runs in its own task. Keys, sequence reservation
//! marks and the manifest the backend imports live in the keys directory (see [`keys`]), which
//! one process at a time may use: the first thing the binary does is lock it.
//!
//! Exit status: 0 when every device stopped with an empty outbox, 1 on an error, 2 when the
//! exit timeout passed with readings still unacknowledged, 130 on a second Ctrl-C.

mod atomic_file;
mod backoff;
mod cli;
mod device;
mod keys;
mod mqtt;

use std::fmt::Write as _;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::Parser;
use tokio::sync::watch;
use tracing::{debug, error, info, warn};
use tracing_subscriber::EnvFilter;

use crate::backoff::{Backoff, SplitMix64};
use crate::cli::Args;
use crate::device::{DeviceSetup, DeviceStats};
use crate::keys::{DeviceKey, KeyOrigin};
use crate::mqtt::LinkConfig;

/// Reconnect backoff: first retry within 250 ms, doubling up to 30 s, never below 50 ms.
const BACKOFF_BASE_MS: u64 = 250;
const BACKOFF_CAP_MS: u64 = 30_000;
const BACKOFF_FLOOR_MS: u64 = 50;
/// MQTT keep-alive: how soon a silently dead connection is noticed.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

const EXIT_UNACKNOWLEDGED: u8 = 2;
const EXIT_INTERRUPTED: u8 = 130;

fn main() -> ExitCode {
    let args = Args::parse();
    let filter = EnvFilter::try_new(&args.log).unwrap_or_else(|error| {
        eprintln!(
            "invalid --log filter {:?} ({error}); using \"info\"",
            args.log
        );
        EnvFilter::new("info")
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    match run(args) {
        Ok(code) => code,
        Err(error) => {
            error!("{error:#}");
            eprintln!("agritrace-device: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(&args.keys_dir).with_context(|| {
        format!(
            "while creating the keys directory {}",
            args.keys_dir.display()
        )
    })?;
    // Held until the process ends: a second process on these keys would reuse sequence
    // numbers.
    let _lock = keys::lock_keys_dir(&args.keys_dir)?;
    let keys = provision(&args)?;
    if args.provision_only {
        println!("{}", args.keys_dir.join("manifest.json").display());
        return Ok(ExitCode::SUCCESS);
    }
    let (host, port) = args.broker_address()?;
    let sample_period_ms = u32::try_from(args.sample_period.as_millis())
        .ok()
        .context("--sample-period must be at most about 49 days")?;
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss,
        reason = "a positive float clamped to the u32 range below; the float to int cast saturates"
    )]
    let resend_after_ms = (args.resend_after.as_millis() as f64 * args.time_scale)
        .clamp(1.0, f64::from(u32::MAX)) as u32;
    let run_seed = match args.seed {
        Some(seed) => seed,
        None => {
            let mut bytes = [0u8; 8];
            getrandom::fill(&mut bytes).map_err(|error| {
                anyhow::anyhow!("the OS random number generator failed: {error}")
            })?;
            u64::from_le_bytes(bytes)
        }
    };
    let start_unix_ms = u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .context("the system clock is before 1970")?
            .as_millis(),
    )
    .unwrap_or(u64::MAX);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("while starting the async runtime")?;
    info!(
        broker = %args.broker,
        devices = args.devices,
        sample_period_ms,
        time_scale = args.time_scale,
        readings = ?args.readings,
        keys_dir = %args.keys_dir.display(),
        "starting"
    );
    runtime.block_on(async {
        let start = tokio::time::Instant::now();
        let (stop_tx, stop_rx) = watch::channel(false);
        let link = LinkConfig {
            host,
            port,
            keep_alive: KEEP_ALIVE,
        };
        let mut seeds = SplitMix64::new(run_seed);
        let mut tasks = tokio::task::JoinSet::new();
        let mut fleet = Vec::with_capacity(keys.len());
        for key in keys {
            let stats = Arc::new(DeviceStats::default());
            let setup = DeviceSetup {
                key,
                sample_period_ms,
                resend_after_ms,
                time_scale: args.time_scale,
                readings: args.readings,
                exit_timeout: args.exit_timeout,
                sim_seed: seeds.next_u64(),
                start_unix_ms,
                start,
                link: link.clone(),
                print_persisted: args.print_persisted,
                backoff: Backoff::new(
                    BACKOFF_BASE_MS,
                    BACKOFF_CAP_MS,
                    BACKOFF_FLOOR_MS,
                    SplitMix64::new(seeds.next_u64()),
                ),
            };
            fleet.push((setup.key.device, stats.clone()));
            let keys_dir = args.keys_dir.clone();
            let stop = stop_rx.clone();
            tasks.spawn(async move { device::run(setup, &keys_dir, stats, stop).await });
        }
        drop(stop_rx);

        let mut signals = Signals::new().context("while listening for Ctrl-C and SIGTERM")?;
        let mut interrupts = 0u32;
        let mut failure = None;
        let mut all_drained = true;
        loop {
            tokio::select! {
                joined = tasks.join_next() => match joined {
                    None => break,
                    Some(Ok(Ok(drained))) => all_drained &= drained,
                    Some(Ok(Err(error))) => {
                        error!("{error:#}");
                        failure.get_or_insert(error);
                        all_drained = false;
                        // One device failing to start stops the run: the operator must fix it.
                        let _ = stop_tx.send(true);
                    }
                    Some(Err(join_error)) => {
                        let error = anyhow::anyhow!("a device task failed: {join_error}");
                        failure.get_or_insert(error);
                        all_drained = false;
                        let _ = stop_tx.send(true);
                    }
                },
                _ = signals.next() => {
                    interrupts += 1;
                    if interrupts == 1 {
                        info!(
                            exit_timeout_s = args.exit_timeout.as_secs(),
                            "stop requested: no new readings; waiting for the last acks \
                             (interrupt again to quit now)"
                        );
                        let _ = stop_tx.send(true);
                    } else {
                        print!("{}", summary(&fleet));
                        return Ok(ExitCode::from(EXIT_INTERRUPTED));
                    }
                }
            }
        }
        print!("{}", summary(&fleet));
        if let Some(error) = failure {
            return Err(error);
        }
        if all_drained {
            info!("every outbox is empty");
            Ok(ExitCode::SUCCESS)
        } else {
            warn!("some readings were not acknowledged before the exit timeout");
            Ok(ExitCode::from(EXIT_UNACKNOWLEDGED))
        }
    })
}

/// Loads or creates the key of every device and writes the manifest.
fn provision(args: &Args) -> anyhow::Result<Vec<DeviceKey>> {
    let mut keys = Vec::with_capacity(usize::try_from(args.devices).unwrap_or(0));
    let mut created = 0u32;
    for index in 0..args.devices {
        let device = keys::device_id(args.fleet_prefix, index);
        let key = keys::load_or_create(&args.keys_dir, device, args.seed)?;
        if key.origin != KeyOrigin::Existing {
            created += 1;
            debug!(
                device_id = %device,
                key_file = %key.key_file.display(),
                origin = ?key.origin,
                "key created"
            );
        }
        keys.push(key);
    }
    let manifest = keys::write_manifest(&args.keys_dir, &keys)?;
    info!(
        devices = keys.len(),
        created,
        seeded = args.seed.is_some(),
        manifest = %manifest.display(),
        "keys ready"
    );
    if created > 0 && args.seed.is_some() {
        warn!(
            "keys created from --seed are reproducible by anyone who knows the seed: \
             use them for tests only"
        );
    }
    Ok(keys)
}

/// SIGINT (Ctrl-C) and SIGTERM, registered once so that no signal is missed between two waits.
#[derive(Debug)]
struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> std::io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    /// The next SIGINT or SIGTERM.
    async fn next(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }
}

/// Columns of the per-device table after the device id and the sequence range.
const SUMMARY_COLUMNS: [&str; 8] = [
    "recorded",
    "sent",
    "acked",
    "dropped",
    "pending",
    "connects",
    "restored",
    "journal_failures",
];

/// One line of the per-device table.
fn summary_line(out: &mut String, device: &str, first: &str, last: &str, row: &[String]) {
    let _ = write!(out, "{device:<16}  {first:>10}  {last:>10}");
    for (value, name) in row.iter().zip(SUMMARY_COLUMNS) {
        let _ = write!(out, "  {value:>width$}", width = name.len().max(8));
    }
    out.push('\n');
}

/// The per-device table printed on exit: one line per device, then the totals. Tests parse
/// it (`tests/broker_restart.rs`): keep the columns in step with [`SUMMARY_COLUMNS`].
fn summary(fleet: &[(protocol::DeviceId, Arc<DeviceStats>)]) -> String {
    let mut out = String::new();
    let header: Vec<String> = SUMMARY_COLUMNS.iter().map(|&n| n.to_owned()).collect();
    summary_line(&mut out, "device", "first_seq", "last_seq", &header);
    let mut totals = [0u64; SUMMARY_COLUMNS.len()];
    for (device, stats) in fleet {
        let recorded = stats.recorded.load(Ordering::Relaxed);
        let (first, last) = if recorded == 0 {
            ("-".to_owned(), "-".to_owned())
        } else {
            (
                stats.first_sequence.load(Ordering::Relaxed).to_string(),
                stats.last_sequence.load(Ordering::Relaxed).to_string(),
            )
        };
        let row = [
            recorded,
            stats.sent.load(Ordering::Relaxed),
            stats.acked.load(Ordering::Relaxed),
            stats.dropped.load(Ordering::Relaxed),
            stats.pending.load(Ordering::Relaxed),
            stats.connections.load(Ordering::Relaxed),
            stats.restored.load(Ordering::Relaxed),
            stats.journal_failures.load(Ordering::Relaxed),
        ];
        for (total, value) in totals.iter_mut().zip(row) {
            *total = total.saturating_add(value);
        }
        let row: Vec<String> = row.iter().map(u64::to_string).collect();
        summary_line(&mut out, &device.to_string(), &first, &last, &row);
    }
    let totals: Vec<String> = totals.iter().map(u64::to_string).collect();
    summary_line(
        &mut out,
        &format!("total ({})", fleet.len()),
        "",
        "",
        &totals,
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_has_a_column_for_every_counter_and_a_total_line() {
        let stats = Arc::new(DeviceStats::default());
        stats.recorded.store(5, Ordering::Relaxed);
        stats.first_sequence.store(256, Ordering::Relaxed);
        stats.last_sequence.store(260, Ordering::Relaxed);
        stats.restored.store(3, Ordering::Relaxed);
        stats.journal_failures.store(1, Ordering::Relaxed);
        let device = keys::device_id([1, 2, 3, 4], 0);
        let table = summary(&[(device, stats)]);
        let lines: Vec<Vec<&str>> = table
            .lines()
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(
            lines[0],
            [
                "device",
                "first_seq",
                "last_seq",
                "recorded",
                "sent",
                "acked",
                "dropped",
                "pending",
                "connects",
                "restored",
                "journal_failures"
            ]
        );
        assert_eq!(
            lines[1],
            [
                "0102030400000000",
                "256",
                "260",
                "5",
                "0",
                "0",
                "0",
                "0",
                "0",
                "3",
                "1"
            ]
        );
        assert_eq!(
            lines[2],
            ["total", "(1)", "5", "0", "0", "0", "0", "0", "3", "1"]
        );
    }
}
