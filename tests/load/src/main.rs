//! `agritrace-load`: the node's load generator. Many simulated devices (keys derived from
//! their index), every reading signed before the timed phase, offered through a real MQTT
//! broker at a fixed rate or as fast as a bounded window allows; readings count as anchored
//! when the node's device ack names them (it acks only after the durable, anchored commit).
//!
//! Each command prints one JSON object on stdout (what `cargo xtask bench-node` reads) and a
//! human summary on stderr.

mod ceiling;
mod cpu;
mod fleet;
mod measure;
mod run;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};

use crate::fleet::{Fleet, PlanShape, sign_plan, verification_inputs};
use crate::run::{Completion, RunReport, RunSpec};

const LONG_ABOUT: &str = "\
Load generator for the agritrace node. Devices a910ad00xxxxxxxx have keys derived from their \
index, so `manifest` (for `agritrace device import`) and every later run agree.

Examples:
  agritrace-load manifest --devices 1000 --chunks 20 --out fleet
  agritrace-load broker-baseline --broker 127.0.0.1:1883
  agritrace-load verify-ceiling
  agritrace-load node --broker 127.0.0.1:1883 --rate 10000
  agritrace-load node --broker 127.0.0.1:1883 --rate 0 --per-message 16 --watch node=4242";

/// Load generator for the agritrace node.
#[derive(Debug, Parser)]
#[command(name = "agritrace-load", version, about, long_about = LONG_ABOUT)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write the fleet's manifest, split into chunks that can be imported concurrently.
    Manifest {
        /// Devices in the fleet.
        #[arg(long, default_value_t = 1_000)]
        devices: u32,
        /// Files to split the manifest into (manifest-000.json, ...).
        #[arg(long, default_value_t = 1)]
        chunks: usize,
        /// Directory to write them to (created if missing).
        #[arg(long)]
        out: std::path::PathBuf,
    },
    /// Offer readings to a running node and time them until its device acks.
    Node {
        #[command(flatten)]
        common: Common,
        /// Readings per MQTT message: 1 is a single-reading message, 2..=50 a backlog.
        #[arg(long, default_value_t = 1)]
        per_message: u16,
    },
    /// The same publishers against a trivial shared-subscription subscriber (QoS 1) instead
    /// of the node: what the broker alone delivers. Run it while no node is subscribed.
    BrokerBaseline {
        #[command(flatten)]
        common: Common,
        /// Subscriber connections in the shared subscription.
        #[arg(long, default_value_t = 2)]
        subscribers: usize,
    },
    /// Ed25519 `verify_batch` over the same kind of pre-signed readings, on N threads.
    VerifyCeiling {
        /// Devices whose keys sign the readings.
        #[arg(long, default_value_t = 1_000)]
        devices: u32,
        /// Readings signed for the measurement.
        #[arg(long, default_value_t = 65_536)]
        readings: u64,
        /// Verifying threads.
        #[arg(long, default_value_t = 2)]
        threads: usize,
        /// Signatures per batch (ingest's `verify_readings_max` default).
        #[arg(long, default_value_t = 512)]
        batch: usize,
        /// Seconds of measurement.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Readings per message in the plan (consecutive readings of one device, as a
        /// backlog uplink carries them).
        #[arg(long, default_value_t = 1)]
        per_message: u16,
        /// The batch verifier.
        #[arg(long, value_enum, default_value_t = ceiling::Verifier::Dalek)]
        verifier: ceiling::Verifier,
    },
}

/// Settings shared by the runs over a broker.
#[derive(Debug, Args)]
struct Common {
    /// The broker, HOST:PORT.
    #[arg(long)]
    broker: String,
    /// Devices in the fleet (the node must have imported them).
    #[arg(long, default_value_t = 1_000)]
    devices: u32,
    /// Offered readings per second; 0 offers as fast as the window allows.
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Most readings published and not yet done.
    #[arg(long, default_value_t = 40_000)]
    window: u64,
    /// Readings to sign for a run with --rate 0 (a paced run signs rate x its length).
    #[arg(long, default_value_t = 1_000_000)]
    readings: u64,
    /// Publisher connections.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Seconds before the steady window.
    #[arg(long, default_value_t = 3)]
    warmup_secs: u64,
    /// Seconds of the steady window.
    #[arg(long, default_value_t = 12)]
    seconds: u64,
    /// Longest wait, in seconds, for the last acks after publishing stops.
    #[arg(long, default_value_t = 30)]
    drain_secs: u64,
    /// First sequence number of every device (default: the Unix time in ms x 1000, fresh
    /// for every run).
    #[arg(long)]
    sequence_base: Option<u64>,
    /// Signing threads.
    #[arg(long, default_value_t = 2)]
    sign_threads: usize,
    /// A process whose CPU use is reported, NAME=PID (repeatable).
    #[arg(long, value_parser = parse_watch)]
    watch: Vec<(String, u32)>,
    /// A label carried into the JSON output.
    #[arg(long, default_value = "")]
    label: String,
}

fn parse_watch(text: &str) -> Result<(String, u32), String> {
    let (name, pid) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not NAME=PID"))?;
    let pid = pid
        .parse()
        .map_err(|e| format!("{text:?}: the pid does not parse: {e}"))?;
    Ok((name.to_owned(), pid))
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("agritrace-load: starting the async runtime failed: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(command(cli.command)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("agritrace-load: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn command(command: Command) -> Result<()> {
    match command {
        Command::Manifest {
            devices,
            chunks,
            out,
        } => manifest(devices, chunks, &out),
        Command::Node {
            common,
            per_message,
        } => broker_run(common, per_message, Completion::DeviceAcks, "node").await,
        Command::BrokerBaseline {
            common,
            subscribers,
        } => {
            broker_run(
                common,
                1,
                Completion::Deliveries { subscribers },
                "broker-baseline",
            )
            .await
        }
        Command::VerifyCeiling {
            devices,
            readings,
            threads,
            batch,
            seconds,
            per_message,
            verifier,
        } => verify_ceiling(
            devices,
            readings,
            threads,
            batch,
            seconds,
            per_message,
            verifier,
        ),
    }
}

fn manifest(devices: u32, chunks: usize, out: &std::path::Path) -> Result<()> {
    let fleet = Fleet::new(devices)?;
    let chunks = chunks.clamp(1, fleet.devices().len());
    std::fs::create_dir_all(out).with_context(|| format!("while creating {}", out.display()))?;
    let per_chunk = fleet.devices().len().div_ceil(chunks);
    for (i, start) in (0..fleet.devices().len()).step_by(per_chunk).enumerate() {
        let end = (start + per_chunk).min(fleet.devices().len());
        let path = out.join(format!("manifest-{i:03}.json"));
        std::fs::write(&path, fleet.manifest(start..end))
            .with_context(|| format!("while writing {}", path.display()))?;
        println!("{}", path.display());
    }
    Ok(())
}

fn verify_ceiling(
    devices: u32,
    readings: u64,
    threads: usize,
    batch: usize,
    seconds: u64,
    per_message: u16,
    verifier: ceiling::Verifier,
) -> Result<()> {
    let fleet = Fleet::new(devices)?;
    let plan = sign_plan(
        &fleet,
        PlanShape {
            readings,
            per_message,
            sequence_base: 0,
            device_time_ms: unix_ms(),
            threads,
        },
    )?;
    let inputs = verification_inputs(&fleet, &plan)?;
    let rate = ceiling::measure(
        &inputs,
        threads,
        batch,
        Duration::from_secs(seconds),
        verifier,
    )?;
    eprintln!(
        "verify ceiling ({verifier:?}): {rate:.0} readings/s ({threads} threads, batches of \
         {batch}, {per_message} per message, {seconds} s)"
    );
    println!(
        "{}",
        serde_json::json!({
            "mode": "verify-ceiling",
            "verifier": format!("{verifier:?}").to_lowercase(),
            "per_message": per_message,
            "threads": threads,
            "batch": batch,
            "seconds": seconds,
            "rate": rate,
        })
    );
    Ok(())
}

async fn broker_run(
    common: Common,
    per_message: u16,
    completion: Completion,
    mode: &str,
) -> Result<()> {
    let (host, port) = common
        .broker
        .rsplit_once(':')
        .context("--broker must be HOST:PORT")?;
    let port: u16 = port.parse().context("the broker port does not parse")?;
    if !(common.rate >= 0.0 && common.rate.is_finite()) {
        bail!("--rate must be a non-negative number");
    }
    let fleet = Fleet::new(common.devices)?;
    let warmup = Duration::from_secs(common.warmup_secs);
    let duration = Duration::from_secs(common.seconds);
    let readings = if common.rate > 0.0 {
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "a positive, finite rate times seconds; saturates"
        )]
        // One second more than the run, so the plan lasts until the window closes.
        let paced = (common.rate * (warmup + duration + Duration::from_secs(1)).as_secs_f64())
            .ceil() as u64;
        paced
    } else {
        common.readings
    };
    let sequence_base = common
        .sequence_base
        .unwrap_or_else(|| unix_ms().saturating_mul(1_000));
    let signing = std::time::Instant::now();
    let plan = Arc::new(sign_plan(
        &fleet,
        PlanShape {
            readings,
            per_message,
            sequence_base,
            device_time_ms: unix_ms(),
            threads: common.sign_threads,
        },
    )?);
    eprintln!(
        "agritrace-load: {mode}: signed {} readings in {} messages in {:.1} s",
        plan.readings(),
        plan.messages.len(),
        signing.elapsed().as_secs_f64()
    );
    let spec = RunSpec {
        host: host.to_owned(),
        port,
        rate: common.rate,
        window: common.window,
        connections: common.connections,
        warmup,
        duration,
        drain: Duration::from_secs(common.drain_secs),
        client_prefix: format!("agritrace-load-{}", std::process::id()),
        watch: common.watch.clone(),
    };
    let report = run::run(&fleet, plan, &spec, completion).await?;
    print_report(mode, &common.label, &common, per_message, &report);
    Ok(())
}

fn print_report(mode: &str, label: &str, common: &Common, per_message: u16, report: &RunReport) {
    let s = &report.summary;
    let cpu: serde_json::Map<String, serde_json::Value> = report
        .cpu
        .iter()
        .map(|(name, cores)| (name.clone(), serde_json::json!(cores)))
        .collect();
    let cpu_text: Vec<String> = report
        .cpu
        .iter()
        .map(|(name, cores)| format!("{name} {cores:.2}"))
        .collect();
    eprintln!(
        "agritrace-load: {mode} {label}: offered {:.0}/s, published {:.0}/s, done {:.0}/s in the \
         steady window; latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} samples); \
         published {}, done {}, missing {}, repeated {}, stray {}; CPU cores: {}{}",
        common.rate,
        report.published_rate,
        s.window_rate,
        s.p50_ms,
        s.p99_ms,
        s.max_ms,
        s.samples,
        s.published,
        s.completed,
        s.missing,
        s.repeated,
        s.stray,
        cpu_text.join(", "),
        if report.plan_exhausted {
            " (the plan ran out before the window ended: sign more readings)"
        } else {
            ""
        },
    );
    println!(
        "{}",
        serde_json::json!({
            "mode": mode,
            "label": label,
            "devices": common.devices,
            "per_message": per_message,
            "connections": common.connections,
            "offered_rate": common.rate,
            "window": common.window,
            "seconds": common.seconds,
            "published_rate": report.published_rate,
            "rate": s.window_rate,
            "p50_ms": s.p50_ms,
            "p99_ms": s.p99_ms,
            "max_ms": s.max_ms,
            "samples": s.samples,
            "published": s.published,
            "done": s.completed,
            "missing": s.missing,
            "repeated": s.repeated,
            "stray": s.stray,
            "plan_exhausted": report.plan_exhausted,
            "cpu": cpu,
        })
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watched_processes_are_name_equals_pid() {
        assert_eq!(parse_watch("node=42"), Ok(("node".to_owned(), 42)));
        assert!(parse_watch("node").is_err());
        assert!(parse_watch("node=x").is_err());
    }

    #[test]
    fn the_command_line_parses() {
        use clap::CommandFactory as _;
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from([
            "agritrace-load",
            "node",
            "--broker",
            "127.0.0.1:1883",
            "--rate",
            "10000",
            "--per-message",
            "16",
            "--watch",
            "node=7",
        ])
        .unwrap();
        match cli.command {
            Command::Node {
                common,
                per_message,
            } => {
                assert_eq!(per_message, 16);
                assert!((common.rate - 10_000.0).abs() < f64::EPSILON);
                assert_eq!(common.watch, [("node".to_owned(), 7)]);
            }
            other => panic!("{other:?}"),
        }
    }
}
