//! `cargo xtask bench-node`: the node's throughput and latency through a real broker, beside
//! what the same broker delivers alone and what Ed25519 batch verification allows, all
//! measured in one run (the machine is shared, so only ratios compare between runs).
//!
//! Steps: build `agritrace` and `agritrace-load` (release); start Mosquitto on a free
//! loopback port with a generated configuration; measure the broker alone (publishers to a
//! trivial shared-subscription subscriber) and the verification ceiling; start the node on a
//! fresh data directory against the broker and register the fleet; offer 1,000/s and
//! 10,000/s single-reading messages, then as many as the node takes, single and in backlogs
//! of 16; restart the node on its in-process broker and measure that path; print a markdown
//! table.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::{cargo, find_program, free_port, release_dir, root, run};

/// Simulated devices.
const DEVICES: u32 = 1_000;
/// Publisher connections of the load generator.
const CONNECTIONS: &str = "8";
/// Readings signed for a run that offers single-reading messages as fast as the node takes
/// them (the broker alone carries ~48,000/s here: 15 s of that).
const READINGS_UNPACED: &str = "900000";
/// Readings signed for a run of backlog messages (15 s at up to 160,000/s). A run whose plan
/// runs out before its window ends measures a lower bound, marked in the table.
const READINGS_UNPACED_BACKLOG: &str = "2400000";
/// Readings signed for the broker baseline (15 s at up to 130,000/s).
const READINGS_BASELINE: &str = "2000000";
/// Steady window and warm-up of every run, seconds.
const SECONDS: &str = "12";
const WARMUP_SECONDS: &str = "3";
/// Round period while the fleet registers (one key event per round), then back to the
/// default for the measurements.
const IMPORT_ROUND_PERIOD_MS: &str = "10";
/// Ingest workers of the last in-process broker run.
const EMBEDDED_WORKERS: &str = "32";

/// A process stopped when dropped, however the benchmark ends (also used by `bench_trace`).
pub(crate) struct Guard {
    pub(crate) name: &'static str,
    pub(crate) child: Child,
}

impl Guard {
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then SIGKILL (on drop) if it has not exited within `patience`.
    pub(crate) fn stop(mut self, patience: Duration) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let start = Instant::now();
        while start.elapsed() < patience {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("{} did not stop on SIGTERM; killing it", self.name);
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_for_port(port: u16, guard: &mut Guard) -> Result<()> {
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Some(status) = guard
            .child
            .try_wait()
            .context("while checking on a process")?
        {
            bail!("{} exited at start ({status})", guard.name);
        }
        if start.elapsed() > Duration::from_secs(60) {
            bail!(
                "{} did not listen on port {port} within a minute",
                guard.name
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

fn start_mosquitto(dir: &Path) -> Result<(Guard, u16)> {
    let mosquitto = find_program("mosquitto")
        .context("mosquitto is not installed (cargo xtask test installs it)")?;
    let port = free_port()?;
    let config = dir.join("mosquitto.conf");
    // Mosquitto 2.0 drops QoS 1 messages beyond 1,000 queued per client and keeps 20 in
    // flight by default (REFERENCES.md); ingest holds each message until its batch is
    // durable, so the in-flight limit per connection must cover a few hundred ms of traffic.
    std::fs::write(
        &config,
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n\
             max_queued_messages 0\nmax_inflight_messages 20000\nlog_dest stderr\n\
             log_type error\nlog_type warning\nconnection_messages false\n"
        ),
    )
    .context("while writing the broker configuration")?;
    let log = std::fs::File::create(dir.join("mosquitto.log"))
        .context("while creating the broker log")?;
    let child = Command::new(mosquitto)
        .arg("-c")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .context("while starting mosquitto")?;
    let mut guard = Guard {
        name: "mosquitto",
        child,
    };
    wait_for_port(port, &mut guard)?;
    Ok((guard, port))
}

/// How the node is started.
struct NodeSetup<'a> {
    data: &'a Path,
    http_port: u16,
    /// `Some(port)`: the external broker there; `None`: the in-process broker.
    external_broker: Option<u16>,
    round_period_ms: Option<&'a str>,
    /// Ingest worker connections, if not the default.
    workers: Option<&'a str>,
    log: &'a Path,
}

/// Starts the node; returns it and the port of its broker.
fn start_node(setup: &NodeSetup<'_>) -> Result<(Guard, u16)> {
    let mut command = Command::new(release_dir().join("agritrace"));
    command
        .arg("serve")
        .env("AGRITRACE_DATA_DIR", setup.data)
        .env(
            "AGRITRACE_HTTP_LISTEN",
            format!("127.0.0.1:{}", setup.http_port),
        )
        .env("AGRITRACE_LOG", "warn,rumqttd=off")
        .stdout(Stdio::null())
        .stderr(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(setup.log)
                .context("while opening the node log")?,
        );
    let broker_port = match setup.external_broker {
        Some(port) => {
            command
                .env("AGRITRACE_BROKER_EMBEDDED", "false")
                .env("AGRITRACE_BROKER_PORT", port.to_string());
            port
        }
        None => {
            let port = free_port()?;
            command
                .env("AGRITRACE_BROKER_EMBEDDED", "true")
                .env("AGRITRACE_BROKER_PORT", port.to_string());
            port
        }
    };
    if let Some(period) = setup.round_period_ms {
        command.env("AGRITRACE_ROUND_PERIOD_MS", period);
    }
    if let Some(workers) = setup.workers {
        command.env("AGRITRACE_INGEST_WORKERS", workers);
    }
    let child = command.spawn().context("while starting agritrace serve")?;
    let mut guard = Guard {
        name: "agritrace serve",
        child,
    };
    wait_for_port(setup.http_port, &mut guard)?;
    if setup.external_broker.is_none() {
        wait_for_port(broker_port, &mut guard)?;
    }
    Ok((guard, broker_port))
}

/// Runs `agritrace-load` with `args` and returns the JSON object it prints.
fn load(description: &str, args: &[String]) -> Result<Value> {
    let mut result = crate::bench_trace::load(description, args)?;
    // The machine is shared: what else ran says how far to trust the row.
    if let Some(load) = load_average_1m() {
        result["load_average_1m"] = serde_json::json!(load);
    }
    Ok(result)
}

/// The one-minute load average (`/proc/loadavg`), if readable.
fn load_average_1m() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| (*s).to_owned()).collect()
}

/// Arguments of a run through a broker.
fn broker_args(mode: &str, port: u16, extra: &[&str], watch: &[(&str, u32)]) -> Vec<String> {
    let mut args = strings(&[
        mode,
        "--broker",
        &format!("127.0.0.1:{port}"),
        "--devices",
        &DEVICES.to_string(),
        "--connections",
        CONNECTIONS,
        "--seconds",
        SECONDS,
        "--warmup-secs",
        WARMUP_SECONDS,
    ]);
    args.extend(strings(extra));
    for (name, pid) in watch {
        args.push("--watch".to_owned());
        args.push(format!("{name}={pid}"));
    }
    args
}

fn number(value: &Value, key: &str) -> f64 {
    value[key].as_f64().unwrap_or(f64::NAN)
}

/// One row of the table.
struct Row {
    measure: String,
    result: Value,
}

fn cpu_text(result: &Value) -> String {
    let Some(cpu) = result["cpu"].as_object() else {
        return String::new();
    };
    let order = ["mosquitto", "node", "load"];
    let mut parts: Vec<String> = order
        .iter()
        .filter_map(|name| {
            cpu.get(*name)
                .and_then(Value::as_f64)
                .map(|c| format!("{name} {c:.2}"))
        })
        .collect();
    if let Some(load) = result["load_average_1m"].as_f64() {
        parts.push(format!("load average {load:.1}"));
    }
    parts.join(", ")
}

/// The verification ceilings of a run: `ed25519_dalek::verify_batch` over single readings
/// (the reference), and ingest's coalescing verifier over readings shaped as each row sends
/// them (1 per message, or backlogs of 16).
#[derive(Debug, Clone, Copy)]
struct Ceilings {
    dalek: f64,
    coalesced_single: f64,
    coalesced_backlog: f64,
}

impl Ceilings {
    /// Ingest's own ceiling for a row's message shape.
    fn same_shape(&self, result: &Value) -> f64 {
        if result["per_message"].as_u64().unwrap_or(1) > 1 {
            self.coalesced_backlog
        } else {
            self.coalesced_single
        }
    }
}

fn table(rows: &[Row], baseline: f64, ceilings: Ceilings) -> String {
    let mut out = String::from(
        "| measure | readings/s | ratio to broker baseline | ratio to verify ceiling | \
         ratio to ingest's verifier, same shape | \
         p50 ms | p99 ms | max ms | missing | CPU cores (steady window), machine load average |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---|\n",
    );
    for row in rows {
        let rate = number(&row.result, "rate");
        let latency = |key: &str| {
            let v = number(&row.result, key);
            if v > 0.0 {
                format!("{v:.1}")
            } else {
                "—".to_owned()
            }
        };
        let missing = row.result["missing"]
            .as_u64()
            .map_or_else(|| "—".to_owned(), |m| m.to_string());
        let measure = if row.result["plan_exhausted"].as_bool() == Some(true) {
            format!(
                "{} (the plan ran out in the window: a lower bound)",
                row.measure
            )
        } else {
            row.measure.clone()
        };
        out.push_str(&format!(
            "| {} | {:.0} | {:.3} | {:.3} | {:.3} | {} | {} | {} | {} | {} |\n",
            measure,
            rate,
            rate / baseline,
            rate / ceilings.dalek,
            rate / ceilings.same_shape(&row.result),
            latency("p50_ms"),
            latency("p99_ms"),
            latency("max_ms"),
            missing,
            cpu_text(&row.result),
        ));
    }
    out
}

/// `cargo xtask bench-node`.
pub fn bench_node() -> Result<()> {
    run(
        "building agritrace and agritrace-load (release)",
        cargo().args(["build", "--release", "-p", "api", "-p", "agritrace-load"]),
    )?;
    let dir = root().join("target").join("bench-node");
    if dir.exists() {
        std::fs::remove_dir_all(&dir)
            .with_context(|| format!("while clearing {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("while creating {}", dir.display()))?;
    let result = measure(&dir);
    if result.is_ok() {
        // The data directories are large; the logs stay for a look.
        for name in ["node", "fleet"] {
            let _ = std::fs::remove_dir_all(dir.join(name));
        }
    }
    result
}

#[allow(clippy::too_many_lines)] // The benchmark's steps, in order.
fn measure(dir: &Path) -> Result<()> {
    let (mosquitto, mqtt_port) = start_mosquitto(dir)?;
    let mosquitto_pid = mosquitto.pid();

    // The broker alone, before any node subscribes.
    let baseline = load(
        "broker baseline: publishers to a trivial shared-subscription subscriber, QoS 1",
        &broker_args(
            "broker-baseline",
            mqtt_port,
            &["--readings", READINGS_BASELINE],
            &[("mosquitto", mosquitto_pid)],
        ),
    )?;
    let ceiling = load(
        "Ed25519 verify_batch ceiling on 2 threads",
        &strings(&["verify-ceiling", "--devices", &DEVICES.to_string()]),
    )?;
    let coalesced = |per_message: &str| {
        load(
            &format!("ingest's coalescing verifier on 2 threads, {per_message} per message"),
            &strings(&[
                "verify-ceiling",
                "--devices",
                &DEVICES.to_string(),
                "--verifier",
                "coalesced",
                "--per-message",
                per_message,
            ]),
        )
    };
    let coalesced_single = coalesced("1")?;
    let coalesced_backlog = coalesced("16")?;
    let baseline_rate = number(&baseline, "rate");
    let ceiling_rate = number(&ceiling, "rate");
    let ceilings = Ceilings {
        dalek: ceiling_rate,
        coalesced_single: number(&coalesced_single, "rate"),
        coalesced_backlog: number(&coalesced_backlog, "rate"),
    };

    // The node on a fresh data directory, the fleet registered with fast rounds.
    let fleet = dir.join("fleet");
    let manifests = Command::new(release_dir().join("agritrace-load"))
        .args(["manifest", "--devices", &DEVICES.to_string(), "--out"])
        .arg(&fleet)
        .output()
        .context("while writing the fleet manifest")?;
    if !manifests.status.success() {
        bail!("agritrace-load manifest failed");
    }
    let data = dir.join("node");
    let node_log = dir.join("node.log");
    let http_port = free_port()?;
    let mut setup = NodeSetup {
        data: &data,
        http_port,
        external_broker: Some(mqtt_port),
        round_period_ms: Some(IMPORT_ROUND_PERIOD_MS),
        workers: None,
        log: &node_log,
    };
    let (node, _) = start_node(&setup)?;
    run(
        &format!("registering {DEVICES} devices"),
        Command::new(release_dir().join("agritrace"))
            .args(["device", "import"])
            .arg(fleet.join("manifest-000.json"))
            .env("AGRITRACE_HTTP_LISTEN", format!("127.0.0.1:{http_port}"))
            .env("AGRITRACE_DATA_DIR", &data)
            .stdout(Stdio::null()),
    )?;
    node.stop(Duration::from_secs(30));
    setup.round_period_ms = None;
    let (node, _) = start_node(&setup)?;
    let watch = [("mosquitto", mosquitto_pid), ("node", node.pid())];
    let mut rows = vec![Row {
        measure: "broker baseline: Mosquitto to a trivial subscriber, QoS 1, max rate".to_owned(),
        result: baseline.clone(),
    }];
    let runs: [(&str, Vec<&str>); 4] = [
        (
            "node via Mosquitto, 1,000/s offered, 1 reading/message",
            vec!["--rate", "1000"],
        ),
        (
            "node via Mosquitto, 10,000/s offered, 1 reading/message",
            vec!["--rate", "10000"],
        ),
        (
            "node via Mosquitto, max sustained, 1 reading/message",
            vec!["--readings", READINGS_UNPACED],
        ),
        (
            "node via Mosquitto, max sustained, backlog of 16/message",
            vec![
                "--readings",
                READINGS_UNPACED_BACKLOG,
                "--per-message",
                "16",
            ],
        ),
    ];
    for (measure, extra) in runs {
        let result = load(measure, &broker_args("node", mqtt_port, &extra, &watch))?;
        rows.push(Row {
            measure: measure.to_owned(),
            result,
        });
    }
    node.stop(Duration::from_secs(30));
    drop(mosquitto);

    // The same node on its in-process broker (rumqttd).
    setup.external_broker = None;
    let (node, embedded_port) = start_node(&setup)?;
    let watch = [("node", node.pid())];
    // A window near what the node can hold (2 workers x 100 messages, see below), so that
    // what is still queued in the broker when the run ends can drain.
    for (measure, extra) in [
        (
            "node, in-process broker, max sustained, 1 reading/message",
            vec!["--readings", READINGS_UNPACED, "--window", "2000"],
        ),
        (
            "node, in-process broker, max sustained, backlog of 16/message",
            vec![
                "--readings",
                READINGS_UNPACED_BACKLOG,
                "--per-message",
                "16",
                "--window",
                "8000",
            ],
        ),
    ] {
        let result = load(measure, &broker_args("node", embedded_port, &extra, &watch))?;
        rows.push(Row {
            measure: measure.to_owned(),
            result,
        });
    }
    node.stop(Duration::from_secs(30));
    // rumqttd keeps at most 100 unacknowledged messages per connection and ingest acks a
    // message only once its batch is durable, so on this path a worker takes at most 100
    // messages per batch latency: more workers, more messages in flight.
    setup.workers = Some(EMBEDDED_WORKERS);
    let (node, embedded_port) = start_node(&setup)?;
    let measure = format!(
        "node, in-process broker, {EMBEDDED_WORKERS} ingest workers, max sustained, 1 reading/message"
    );
    let result = load(
        &measure,
        &broker_args(
            "node",
            embedded_port,
            &["--readings", READINGS_UNPACED, "--window", "20000"],
            &[("node", node.pid())],
        ),
    )?;
    rows.push(Row { measure, result });
    node.stop(Duration::from_secs(30));

    println!(
        "\nBroker baseline {baseline_rate:.0} messages/s; Ed25519 verify_batch ceiling \
         {ceiling_rate:.0} readings/s (2 threads, batches of 512); ingest's coalescing verifier \
         {single:.0} readings/s with 1 reading per message, {backlog:.0} with backlogs of 16; \
         {DEVICES} devices, \
         {CONNECTIONS} publisher connections, {SECONDS} s steady window after \
         {WARMUP_SECONDS} s warm-up.\n",
        single = ceilings.coalesced_single,
        backlog = ceilings.coalesced_backlog,
    );
    println!("{}", table(&rows, baseline_rate, ceilings));
    let raw: Vec<&Value> = rows.iter().map(|r| &r.result).collect();
    let raw_path = dir.join("results.json");
    std::fs::write(
        &raw_path,
        serde_json::to_string_pretty(&serde_json::json!({
            "baseline": baseline,
            "ceiling": ceiling,
            "coalesced_single": coalesced_single,
            "coalesced_backlog": coalesced_backlog,
            "runs": raw,
        }))
        .context("while encoding the results")?,
    )
    .with_context(|| format!("while writing {}", raw_path.display()))?;
    eprintln!("raw results: {}", raw_path.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_reports_ratios_to_both_baselines() {
        let rows = [Row {
            measure: "m".to_owned(),
            result: serde_json::json!({
                "rate": 20_000.0, "p50_ms": 100.0, "p99_ms": 200.5, "max_ms": 0.0,
                "missing": 0, "cpu": {"node": 1.25, "mosquitto": 0.5}, "load_average_1m": 2.74,
                "per_message": 16
            }),
        }];
        let ceilings = Ceilings {
            dalek: 100_000.0,
            coalesced_single: 100_000.0,
            coalesced_backlog: 160_000.0,
        };
        let text = table(&rows, 40_000.0, ceilings);
        assert!(
            text.contains(
                "| m | 20000 | 0.500 | 0.200 | 0.125 | 100.0 | 200.5 | — | 0 | mosquitto 0.50, node 1.25, load average 2.7 |"
            ),
            "{text}"
        );
    }
}
