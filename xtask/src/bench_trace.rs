//! `cargo xtask bench-trace`: latency of `GET /trace/{lot}` for a lot with 50 events and a
//! shipment whose loggers recorded 10,000 readings, on a node whose store holds more than a
//! million committed readings, beside `GET /healthz` and `GET /epcis/events/{id}` of the same
//! node measured in the same run with the same client (the machine is shared, so only ratios
//! compare between runs).
//!
//! Steps: build `agritrace` and `agritrace-load` (release); write the load fleet's manifest
//! (1,000 devices whose keys derive from their index); start `agritrace serve` on a fresh data
//! directory with its in-process broker, import 998 of them with fast rounds, restart it with
//! its defaults; register an exporter, a customs authority and the shipment's two loggers
//! (fleet devices 0 and 1) through the API; fill the store with signed backlog uplinks from
//! the whole fleet through the broker until more than [`FILL_READINGS`] readings are committed
//! (a reading is counted when the node's device ack names it, which it publishes only after the
//! durable commit of its batch's `ReadingBatch` entry); then build one traced lot — a product
//! with a storage band, a plot, harvest and packed lots, [`TRACE_EVENTS`] EPCIS events naming
//! the harvest lot and what was made of it (harvest, cooling, transformation into four packed
//! lots, inspections, aggregation onto two pallets, storing, shipping, departing, arriving,
//! receiving) among [`OTHER_EVENTS`] events of other lots — and a shipment carrying it, declared
//! to the authority, departed, carrying the two loggers while they publish [`LOGGER_READINGS`]
//! readings, then arrived; more readings from the whole fleet follow the arrival. Once every
//! event is covered by a published checkpoint, each measure runs a fixed number of requests on
//! keep-alive connections, one at a time and then from [`CLIENTS`] clients at once: latency
//! p50/p99/max, requests/s, the node's CPU and the load average.
//!
//! `--keep` leaves the data directory and what the setup made in `target/bench-trace`;
//! `--reuse` measures such a directory again without rebuilding it (to compare a change).

use crate::bench_node::Guard;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::{cargo, free_port, release_dir, root, run, unlimited_rates};

/// Devices of the load fleet.
const DEVICES: u32 = 1_000;
/// Fleet devices travelling with the shipment (indices `0..LOGGERS`).
const LOGGERS: u32 = 2;
/// Committed readings the store must hold before the traced lot is built.
const FILL_READINGS: u64 = 1_050_000;
/// Readings the loggers publish between departure and arrival.
const LOGGER_READINGS: u64 = 10_000;
/// Readings of the whole fleet after the arrival (the loggers' next trip).
const AFTER_READINGS: u64 = 50_000;
/// EPCIS events naming the traced lot or what was made of it.
const TRACE_EVENTS: usize = 50;
/// EPCIS events of other lots in the store.
const OTHER_EVENTS: usize = 450;
/// Requests of each sequential measure, and of each client in a concurrent one.
const REQUESTS: usize = 300;
/// Requests before a measure that are not timed.
const WARMUP_REQUESTS: usize = 20;
/// Clients of the concurrent measures.
const CLIENTS: usize = 4;
/// Requests of each client in a concurrent measure.
const REQUESTS_PER_CLIENT: usize = 100;
/// Starts of the node whose first trace is timed.
const FIRST_TRACE_STARTS: usize = 10;
/// Seconds of each fill run of `agritrace-load`.
const FILL_RUN_SECONDS: u64 = 15;
/// Readings signed for the first fill run; later runs follow what the node took.
const FILL_FIRST_RUN: u64 = 300_000;
/// The target: p99 of a trace, sequential requests, in ms.
const TARGET_P99_MS: f64 = 20.0;
/// The traced product: its GTIN and storage band (°C).
const GTIN: &str = "06901234567892";
const BAND_C: (f64, f64) = (0.0, 4.0);
/// Organisations and the shipment.
const EXPORTER_ORG: &str = "bench-coop";
const CUSTOMS_ORG: &str = "cn-customs";
const SHIPMENT: &str = "s-bench-1";
/// The traced (harvest) lot.
const ROOT_LOT: &str = "H-2026-001";
/// Polls of something that arrives asynchronously, and their period.
const POLLS_MAX: u32 = 2_400;
const POLL: Duration = Duration::from_millis(50);
const MINUTE_MS: u64 = 60_000;

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// `YYYY-MM-DDTHH:MM:SSZ` of Unix ms (whole seconds; civil-from-days over the proleptic
/// Gregorian calendar).
fn iso(ms: u64) -> String {
    let secs = ms / 1_000;
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3_600,
        rem % 3_600 / 60,
        rem % 60
    )
}

/// `digits` with its GS1 mod-10 check digit appended (GS1 General Specifications §7.9).
fn with_check_digit(digits: &str) -> String {
    let sum: u32 = digits
        .bytes()
        .rev()
        .zip([3, 1].into_iter().cycle())
        .map(|(b, weight)| u32::from(b - b'0') * weight)
        .sum();
    format!("{digits}{}", (10 - sum % 10) % 10)
}

/// The 18 digits of the bench's SSCC number `n`.
fn sscc(n: u32) -> String {
    with_check_digit(&format!("00690123{n:09}"))
}

/// One answer: status, headers (lower-case names) and body.
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// A keep-alive HTTP/1.1 connection to the node: what every measure times.
pub(crate) struct Client {
    port: u16,
    reader: BufReader<TcpStream>,
}

impl Client {
    pub(crate) fn connect(port: u16) -> Result<Self> {
        let stream =
            TcpStream::connect(("127.0.0.1", port)).context("while connecting to the node")?;
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .context("while setting a timeout")?;
        stream.set_nodelay(true).context("while setting nodelay")?;
        Ok(Self {
            port,
            reader: BufReader::with_capacity(64 * 1024, stream),
        })
    }

    /// Sends one request and reads the whole answer (`Content-Length` or chunked).
    pub(crate) fn call(
        &mut self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Result<Answer> {
        let body = body.map(Value::to_string).unwrap_or_default();
        self.call_with(method, path, token, "application/json", body.as_bytes())
    }

    /// Sends one request with a body of any media type and reads the whole answer.
    pub(crate) fn call_with(
        &mut self,
        method: &str,
        path: &str,
        token: Option<&str>,
        content_type: &str,
        body: &[u8],
    ) -> Result<Answer> {
        let auth = token.map_or_else(String::new, |t| format!("Authorization: Bearer {t}\r\n"));
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n{auth}\
             Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
            self.port,
            body.len()
        );
        let stream = self.reader.get_mut();
        stream
            .write_all(head.as_bytes())
            .and_then(|()| stream.write_all(body))
            .with_context(|| format!("while sending {method} {path}"))?;
        self.read_answer()
            .with_context(|| format!("while reading the answer to {method} {path}"))
    }

    fn read_answer(&mut self) -> Result<Answer> {
        let mut line = String::new();
        self.reader.read_line(&mut line)?;
        let status = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("no HTTP status in {line:?}"))?;
        let mut length = None;
        let mut chunked = false;
        loop {
            line.clear();
            if self.reader.read_line(&mut line)? == 0 {
                bail!("the connection closed in the headers");
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                let value = value.trim();
                match name.to_ascii_lowercase().as_str() {
                    "content-length" => length = value.parse::<usize>().ok(),
                    "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
                    _ => {}
                }
            }
        }
        let mut body = Vec::new();
        if chunked {
            loop {
                line.clear();
                self.reader.read_line(&mut line)?;
                let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                    .with_context(|| format!("a chunk size {line:?}"))?;
                let start = body.len();
                body.resize(start + size, 0);
                self.reader.read_exact(&mut body[start..])?;
                line.clear();
                self.reader.read_line(&mut line)?;
                if size == 0 {
                    break;
                }
            }
        } else {
            body.resize(length.unwrap_or(0), 0);
            self.reader.read_exact(&mut body)?;
        }
        Ok(Answer { status, body })
    }
}

/// One setup request that must answer `want`; returns its JSON.
pub(crate) fn expect(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &Value,
    want: u16,
) -> Result<Value> {
    let body = (method != "GET").then_some(body);
    let answer = Client::connect(port)?.call(method, path, token, body)?;
    if answer.status != want {
        bail!(
            "{method} {path} answered {}, expected {want}: {}",
            answer.status,
            String::from_utf8_lossy(&answer.body)
        );
    }
    Ok(answer.json())
}

fn wait_for_port(port: u16, guard: &mut Guard) -> Result<()> {
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Some(status) = guard
            .child
            .try_wait()
            .context("while checking on a process")?
        {
            bail!("{} exited at start ({status})", guard.name);
        }
        if start.elapsed() > Duration::from_secs(120) {
            bail!("{} did not listen on port {port} in time", guard.name);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// The node on `data` with its in-process broker; returns it, its HTTP and broker ports.
pub(crate) fn start_node(
    data: &Path,
    log: &Path,
    round_period_ms: Option<&str>,
) -> Result<(Guard, u16, u16)> {
    let http_port = free_port()?;
    let broker_port = free_port()?;
    let mut command = Command::new(release_dir().join("agritrace"));
    unlimited_rates(&mut command)
        .arg("serve")
        .env("AGRITRACE_DATA_DIR", data)
        .env("AGRITRACE_HTTP_LISTEN", format!("127.0.0.1:{http_port}"))
        .env("AGRITRACE_BROKER_EMBEDDED", "true")
        .env("AGRITRACE_BROKER_PORT", broker_port.to_string())
        .env("AGRITRACE_LOG", "warn,rumqttd=off")
        .stdout(Stdio::null())
        .stderr(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
                .context("while opening the node log")?,
        );
    if let Some(period) = round_period_ms {
        command.env("AGRITRACE_ROUND_PERIOD_MS", period);
    }
    let mut guard = Guard {
        name: "agritrace serve",
        child: command.spawn().context("while starting agritrace serve")?,
    };
    wait_for_port(http_port, &mut guard)?;
    wait_for_port(broker_port, &mut guard)?;
    Ok((guard, http_port, broker_port))
}

/// Runs the release `agritrace-load` with `args` and returns the JSON object it prints last.
pub(crate) fn load(description: &str, args: &[String]) -> Result<Value> {
    load_from(&release_dir(), description, args)
}

/// Runs `agritrace-load` of the binaries in `bin` with `args` and returns the JSON object it
/// prints last (each benchmark and the browser tests' seeding read their results this way).
pub(crate) fn load_from(bin: &Path, description: &str, args: &[String]) -> Result<Value> {
    eprintln!("\n==> {description}");
    let output = Command::new(bin.join("agritrace-load"))
        .args(args)
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("while starting agritrace-load for: {description}"))?;
    if !output.status.success() {
        bail!("agritrace-load failed ({}): {description}", output.status);
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let line = text
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .with_context(|| format!("agritrace-load printed no result for: {description}"))?;
    serde_json::from_str(line)
        .with_context(|| format!("while reading the result of: {description}"))
}

/// Arguments of a closed-loop run of backlog messages (16 readings each) from fleet devices
/// `0..devices`.
pub(crate) fn load_args(
    broker_port: u16,
    devices: u32,
    readings: u64,
    seconds: u64,
    pid: u32,
) -> Vec<String> {
    [
        "node",
        "--broker",
        &format!("127.0.0.1:{broker_port}"),
        "--devices",
        &devices.to_string(),
        "--readings",
        &readings.to_string(),
        "--per-message",
        "16",
        "--window",
        "8000",
        "--connections",
        "4",
        "--warmup-secs",
        "0",
        "--seconds",
        &seconds.to_string(),
        "--watch",
        &format!("node={pid}"),
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

/// A counter of the node's Prometheus text.
pub(crate) fn metric(port: u16, name: &str) -> Result<u64> {
    let answer = Client::connect(port)?.call("GET", "/metrics", None, None)?;
    let text = String::from_utf8_lossy(&answer.body);
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            let (key, value) = l.split_once(' ')?;
            (key == name).then(|| value.trim().parse::<f64>().ok())?
        })
        // Counters are whole numbers; Prometheus writes them as floats.
        .map(|v| {
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let whole = v as u64;
            whole
        })
        .with_context(|| format!("the node's /metrics has no {name}"))
}

/// Committed readings since the node started.
pub(crate) const COMMITTED: &str = "agritrace_ingest_readings_accepted_total";

/// What the setup made, saved for `--reuse`.
#[derive(Debug, Clone)]
struct Setup {
    customs_token: String,
    exporter_token: String,
    event_id: String,
    committed_readings: u64,
    fill_seconds: f64,
}

impl Setup {
    fn to_json(&self) -> Value {
        json!({
            "customs_token": self.customs_token,
            "exporter_token": self.exporter_token,
            "event_id": self.event_id,
            "committed_readings": self.committed_readings,
            "fill_seconds": self.fill_seconds,
        })
    }

    fn from_json(value: &Value) -> Option<Self> {
        Some(Self {
            customs_token: value["customs_token"].as_str()?.to_owned(),
            exporter_token: value["exporter_token"].as_str()?.to_owned(),
            event_id: value["event_id"].as_str()?.to_owned(),
            committed_readings: value["committed_readings"].as_u64()?,
            fill_seconds: value["fill_seconds"].as_f64()?,
        })
    }
}

/// `cargo xtask bench-trace [--keep | --reuse]`.
pub fn bench_trace(args: &[String]) -> Result<()> {
    let reuse = args.iter().any(|a| a == "--reuse");
    let keep = reuse || args.iter().any(|a| a == "--keep");
    if let Some(other) = args.iter().find(|a| *a != "--reuse" && *a != "--keep") {
        bail!("bench-trace takes --keep or --reuse, not {other:?}");
    }
    run(
        "building agritrace and agritrace-load (release)",
        cargo().args(["build", "--release", "-p", "api", "-p", "agritrace-load"]),
    )?;
    let dir = root().join("target").join("bench-trace");
    let setup_file = dir.join("setup.json");
    let data = dir.join("node");
    let log = dir.join("node.log");
    let load_before = load_average();
    let started = Instant::now();
    let (node, port, setup) = if reuse {
        let text = std::fs::read_to_string(&setup_file).with_context(|| {
            format!(
                "--reuse needs a directory a run with --keep left: {}",
                setup_file.display()
            )
        })?;
        let setup = serde_json::from_str(&text)
            .ok()
            .as_ref()
            .and_then(Setup::from_json)
            .context("setup.json does not say what the setup made")?;
        let (node, port, _) = start_node(&data, &log, None)?;
        (node, port, setup)
    } else {
        if dir.exists() {
            std::fs::remove_dir_all(&dir)
                .with_context(|| format!("while clearing {}", dir.display()))?;
        }
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("while creating {}", dir.display()))?;
        let (node, port, setup) = build(&dir, &data, &log)?;
        std::fs::write(&setup_file, setup.to_json().to_string())
            .context("while writing setup.json")?;
        (node, port, setup)
    };
    let setup_seconds = started.elapsed().as_secs_f64();
    let result = measure(&node, port, &setup);
    node.stop(Duration::from_secs(30));
    let mut report = result?;
    report.push_str(&first_traces(&data, &log, &setup)?);
    println!(
        "\n`cargo xtask bench-trace`{}: {} committed readings in the store (filled in {:.0} s), \
         setup and fill {setup_seconds:.0} s; load average before the run {load_before}.\n",
        if reuse { " --reuse" } else { "" },
        setup.committed_readings,
        setup.fill_seconds,
    );
    println!("{report}");
    if !keep {
        let _ = std::fs::remove_dir_all(&data);
    }
    Ok(())
}

/// The fleet's manifest split: the loggers' entries (registered through the API) and a
/// manifest of the others (imported by the operator).
fn split_manifest(fleet: &Path) -> Result<(Vec<Value>, PathBuf)> {
    let output = Command::new(release_dir().join("agritrace-load"))
        .args(["manifest", "--devices", &DEVICES.to_string(), "--out"])
        .arg(fleet)
        .output()
        .context("while writing the fleet manifest")?;
    if !output.status.success() {
        bail!("agritrace-load manifest failed");
    }
    let path = fleet.join("manifest-000.json");
    let mut manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(&path)
            .with_context(|| format!("while reading {}", path.display()))?,
    )
    .context("while parsing the fleet manifest")?;
    let devices = manifest["devices"]
        .as_array_mut()
        .context("the manifest lists no devices")?;
    let loggers: Vec<Value> = devices.drain(..LOGGERS as usize).collect();
    let rest = fleet.join("import.json");
    std::fs::write(&rest, manifest.to_string()).context("while writing the import manifest")?;
    Ok((loggers, rest))
}

/// An organisation with one member holding `roles`; returns the member's token.
pub(crate) fn organisation(port: u16, org: &str, name: &str, roles: &[&str]) -> Result<String> {
    expect(
        port,
        "POST",
        "/v1/admin/orgs",
        None,
        &json!({ "id": org, "name": name, "country": "CN" }),
        201,
    )?;
    expect(
        port,
        "POST",
        &format!("/v1/admin/orgs/{org}/members"),
        None,
        &json!({ "id": "member-1", "name": "Bench member", "roles": roles }),
        201,
    )?;
    expect(
        port,
        "POST",
        &format!("/v1/admin/orgs/{org}/members/member-1/tokens"),
        None,
        &json!({ "label": "bench" }),
        201,
    )?["token"]
        .as_str()
        .map(str::to_owned)
        .context("no token in the answer")
}

/// Fills the store through the broker until at least `target` readings are committed in all.
fn fill(port: u16, broker_port: u16, pid: u32, target: u64) -> Result<()> {
    let mut readings = FILL_FIRST_RUN;
    loop {
        let committed = metric(port, COMMITTED)?;
        if committed >= target {
            return Ok(());
        }
        let want = (target - committed).min(readings);
        let result = load(
            &format!("filling the store: {committed} readings committed, {want} more offered"),
            &load_args(broker_port, DEVICES, want, FILL_RUN_SECONDS, pid),
        )?;
        let done = result["done"].as_u64().unwrap_or(0);
        // A run that published its whole plan before its end could take more; one that did
        // not shows what the node takes in a run.
        readings = if result["plan_exhausted"] == true {
            readings + readings / 2
        } else {
            done.max(50_000)
        };
    }
}

/// The EPCIS events of the traced lot: harvest, cooling, packing into four lots,
/// inspections, two pallets, storing, shipping, departing, arriving, receiving — and storing
/// observations until there are [`TRACE_EVENTS`].
fn traced_events(t0: u64) -> Vec<Value> {
    let lot = |l: &str| format!("https://id.gs1.org/01/{GTIN}/10/{l}");
    let class = |l: &str, kg: u32| json!({ "epcClass": lot(l), "quantity": kg, "uom": "KGM" });
    let pallet = |n: u32| format!("https://id.gs1.org/00/{}", sscc(n));
    let farm = "urn:epc:id:sgln:0690123.00001.0";
    let packhouse = "urn:epc:id:sgln:0690123.00002.0";
    let port = "urn:epc:id:sgln:0690123.00003.0";
    let importer = "urn:epc:id:sgln:0690123.00004.0";
    let at = |minutes: u64| iso(t0 + minutes * MINUTE_MS);
    let sensor = |celsius: f64| {
        json!([{
            "sensorMetadata": { "time": "2026-06-01T08:00:00Z" },
            "sensorReport": [{ "type": "gs1:Temperature", "value": celsius, "uom": "CEL" }]
        }])
    };
    let packed = ["P-2026-001", "P-2026-002", "P-2026-003", "P-2026-004"];
    let mut events = vec![json!({
        "type": "ObjectEvent", "action": "ADD", "bizStep": "commissioning",
        "eventTime": at(0), "eventTimeZoneOffset": "+08:00",
        "quantityList": [class(ROOT_LOT, 2_000)],
        "bizLocation": { "id": farm },
        "ilmd": { "cbvmda:harvestStartDate": "2026-06-01" }
    })];
    for i in 0..8_u32 {
        events.push(json!({
            "type": "ObjectEvent", "action": "OBSERVE",
            "bizStep": "urn:agritrace:bizstep:cooling",
            "eventTime": at(10 + u64::from(i) * 5), "eventTimeZoneOffset": "+08:00",
            "quantityList": [class(ROOT_LOT, 2_000)],
            "readPoint": { "id": packhouse },
            "sensorElementList": sensor(12.0 - f64::from(i))
        }));
    }
    events.push(json!({
        "type": "TransformationEvent", "bizStep": "packing",
        "eventTime": at(60), "eventTimeZoneOffset": "+08:00",
        "inputQuantityList": [class(ROOT_LOT, 2_000), class("H-2026-002", 1_000)],
        "outputQuantityList": packed.iter().map(|p| class(p, 700)).collect::<Vec<_>>(),
        "bizLocation": { "id": packhouse }
    }));
    for (i, p) in (0_u64..).zip(packed) {
        for j in 0..2 {
            events.push(json!({
                "type": "ObjectEvent", "action": "OBSERVE", "bizStep": "inspecting",
                "eventTime": at(70 + i * 2 + j), "eventTimeZoneOffset": "+08:00",
                "quantityList": [class(p, 700)],
                "readPoint": { "id": packhouse }
            }));
        }
    }
    for (n, children) in [(1, &packed[..2]), (2, &packed[2..])] {
        events.push(json!({
            "type": "AggregationEvent", "action": "ADD", "bizStep": "packing",
            "eventTime": at(90 + u64::from(n)), "eventTimeZoneOffset": "+08:00",
            "parentID": pallet(n),
            "childQuantityList": children.iter().map(|p| class(p, 700)).collect::<Vec<_>>(),
            "bizLocation": { "id": packhouse }
        }));
    }
    let both = json!([pallet(1), pallet(2)]);
    for (minutes, step, place) in [
        (400, "shipping", packhouse),
        (420, "departing", port),
        (2_000, "arriving", importer),
        (2_030, "receiving", importer),
    ] {
        events.push(json!({
            "type": "ObjectEvent", "action": "OBSERVE", "bizStep": step,
            "eventTime": at(minutes), "eventTimeZoneOffset": "+08:00",
            "epcList": both,
            "bizLocation": { "id": place },
            "bizTransactionList": [{ "type": "bol", "bizTransaction": "urn:epcglobal:cbv:bt:0690123000007:BOL-BENCH-1" }]
        }));
    }
    let mut n = 0_u64;
    while events.len() < TRACE_EVENTS {
        events.push(json!({
            "type": "ObjectEvent", "action": "OBSERVE", "bizStep": "storing",
            "eventTime": at(100 + n * 10), "eventTimeZoneOffset": "+08:00",
            "epcList": [pallet(1 + u32::from(n % 2 == 1))],
            "readPoint": { "id": packhouse },
            "sensorElementList": sensor(3.0)
        }));
        n += 1;
    }
    events
}

/// Events of other lots: harvest and observations, [`OTHER_EVENTS`] in all.
fn other_events(t0: u64) -> Vec<Value> {
    (0..OTHER_EVENTS)
        .map(|i| {
            let lot = format!("https://id.gs1.org/01/{GTIN}/10/X-{:03}", i / 15);
            let minutes = u64::try_from(i).unwrap_or(0);
            json!({
                "type": "ObjectEvent",
                "action": if i % 15 == 0 { "ADD" } else { "OBSERVE" },
                "bizStep": if i % 15 == 0 { "commissioning" } else { "inspecting" },
                "eventTime": iso(t0 + minutes * MINUTE_MS),
                "eventTimeZoneOffset": "+08:00",
                "quantityList": [{ "epcClass": lot, "quantity": 100, "uom": "KGM" }],
                "readPoint": { "id": "urn:epc:id:sgln:0690123.00009.0" }
            })
        })
        .collect()
}

/// Captures `events` as EPCIS documents of `per_document` events and waits for every job to
/// succeed; returns the events' hash digests (hex), in order.
fn capture(port: u16, token: &str, events: &[Value], per_document: usize) -> Result<Vec<String>> {
    let mut ids = Vec::new();
    for chunk in events.chunks(per_document) {
        let document = json!({
            "@context": ["https://ref.gs1.org/standards/epcis/epcis-context.jsonld"],
            "type": "EPCISDocument",
            "schemaVersion": "2.0",
            "creationDate": iso(now_ms()),
            "epcisBody": { "eventList": chunk },
        });
        let job = expect(port, "POST", "/epcis/capture", Some(token), &document, 202)?;
        let id = job["captureID"]
            .as_str()
            .context("no captureID in the answer")?
            .to_owned();
        let mut finished = None;
        for _ in 0..POLLS_MAX {
            let job = expect(
                port,
                "GET",
                &format!("/epcis/capture/{id}"),
                Some(token),
                &Value::Null,
                200,
            )?;
            if job["running"] == false {
                finished = Some(job);
                break;
            }
            std::thread::sleep(POLL);
        }
        let job = finished.with_context(|| format!("capture job {id} never finished"))?;
        if job["success"] != true {
            bail!("capture job {id} failed: {job}");
        }
        // The 64 hex digits of each event hash: an id the event routes take unencoded.
        ids.extend(
            job["events"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|e| e["eventHash"].as_str())
                .filter_map(|h| h.split(';').nth(1)?.split('?').next().map(str::to_owned)),
        );
    }
    Ok(ids)
}

/// Builds the data directory: fleet, fill, master data, events, the shipment and its
/// loggers' readings. Returns the node (left running) and what the measures need.
#[allow(clippy::too_many_lines)] // The setup's steps, in order.
fn build(dir: &Path, data: &Path, log: &Path) -> Result<(Guard, u16, Setup)> {
    let (loggers, import) = split_manifest(&dir.join("fleet"))?;
    // The fleet's key events, one per round: fast rounds while they register.
    let (node, port, _) = start_node(data, log, Some("10"))?;
    run(
        &format!("importing {} devices", DEVICES - LOGGERS),
        Command::new(release_dir().join("agritrace"))
            .args(["device", "import"])
            .arg(&import)
            .env("AGRITRACE_HTTP_LISTEN", format!("127.0.0.1:{port}"))
            .env("AGRITRACE_DATA_DIR", data)
            .stdout(Stdio::null()),
    )?;
    node.stop(Duration::from_secs(30));
    let (node, port, broker_port) = start_node(data, log, None)?;
    let pid = node.pid();

    let exporter = organisation(
        port,
        EXPORTER_ORG,
        "Bench 合作社",
        &["producer", "exporter"],
    )?;
    let customs = organisation(port, CUSTOMS_ORG, "Bench 海关", &["customs"])?;
    for logger in &loggers {
        expect(
            port,
            "POST",
            &format!("/v1/orgs/{EXPORTER_ORG}/devices"),
            Some(&exporter),
            &json!({
                "device_id": logger["device_id"],
                "public_key": logger["public_key"],
                "name": "Reefer logger",
            }),
            201,
        )?;
    }

    // Master data and lots.
    expect(
        port,
        "POST",
        &format!("/v1/orgs/{EXPORTER_ORG}/products"),
        Some(&exporter),
        &json!({
            "gtin": GTIN, "name_en": "Blueberries", "name_zh": "蓝莓",
            "storage_min_c": BAND_C.0, "storage_max_c": BAND_C.1,
        }),
        201,
    )?;
    expect(
        port,
        "POST",
        &format!("/v1/orgs/{EXPORTER_ORG}/plots"),
        Some(&exporter),
        &json!({
            "id": "plot-7", "name": "Hillside 7", "country": "CN", "area_ha": 3.2,
            "geometry": { "type": "Point", "coordinates": [100.45, 21.95] }
        }),
        201,
    )?;
    let other_lots = (0..OTHER_EVENTS.div_ceil(15)).map(|i| format!("X-{i:03}"));
    let lots = [
        ROOT_LOT,
        "H-2026-002",
        "P-2026-001",
        "P-2026-002",
        "P-2026-003",
        "P-2026-004",
    ]
    .into_iter()
    .map(str::to_owned)
    .chain(other_lots);
    for lot in lots {
        expect(
            port,
            "POST",
            &format!("/v1/orgs/{EXPORTER_ORG}/lots"),
            Some(&exporter),
            &json!({ "gtin": GTIN, "lot": lot, "plot": "plot-7", "harvest_date": "2026-06-01" }),
            201,
        )?;
    }

    // The fill, and meanwhile the events: captured a few at a time while readings flow, as
    // they would be over a season, so their log entries sit among `ReadingBatch` entries.
    let t0 = now_ms() - 2 * 24 * 60 * MINUTE_MS;
    let fill_started = Instant::now();
    let (filled, captured) = std::thread::scope(|scope| {
        let filling = scope.spawn(|| fill(port, broker_port, pid, FILL_READINGS));
        std::thread::sleep(Duration::from_secs(5));
        let captured = (|| -> Result<Vec<String>> {
            let traced = traced_events(t0);
            let others = other_events(t0);
            let mut ids = Vec::new();
            for (mine, theirs) in traced.chunks(2).zip(others.chunks(18)) {
                ids.extend(capture(port, &exporter, mine, 2)?);
                capture(port, &exporter, theirs, 18)?;
            }
            Ok(ids)
        })();
        let filled = filling
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("the fill thread panicked")));
        (filled, captured)
    });
    filled?;
    let fill_seconds = fill_started.elapsed().as_secs_f64();
    let event_id = captured?
        .first()
        .context("the capture job listed no event ids")?
        .clone();

    // The shipment: created, departed, loggers publishing, arrived.
    let logger_ids: Vec<&Value> = loggers.iter().map(|l| &l["device_id"]).collect();
    let shipped_lots: Vec<Value> = ["P-2026-001", "P-2026-002", "P-2026-003", "P-2026-004"]
        .iter()
        .map(|l| json!({ "gtin": GTIN, "lot": l }))
        .collect();
    expect(
        port,
        "POST",
        &format!("/v1/orgs/{EXPORTER_ORG}/shipments"),
        Some(&exporter),
        &json!({
            "id": SHIPMENT,
            "consignee": { "name": "Bangkok Fresh Co.", "country": "TH" },
            "origin_country": "CN",
            "destination_country": "TH",
            "declared_to": [CUSTOMS_ORG],
            "containers": ["CSQU3054383"],
            "ssccs": [sscc(1), sscc(2)],
            "lots": shipped_lots,
            "devices": logger_ids,
            "planned_departure": { "location": "Mohan", "time_ms": now_ms() },
        }),
        201,
    )?;
    let departed = now_ms();
    expect(
        port,
        "POST",
        &format!("/v1/orgs/{EXPORTER_ORG}/shipments/{SHIPMENT}/departure"),
        Some(&exporter),
        &json!({ "location": "Mohan", "time_ms": departed }),
        201,
    )?;
    let before = metric(port, COMMITTED)?;
    let result = load(
        &format!("the shipment's {LOGGERS} loggers: {LOGGER_READINGS} readings"),
        &load_args(broker_port, LOGGERS, LOGGER_READINGS, 10, pid),
    )?;
    let done = result["done"].as_u64().unwrap_or(0);
    if done != LOGGER_READINGS || metric(port, COMMITTED)? - before != LOGGER_READINGS {
        bail!("the loggers' {LOGGER_READINGS} readings were not all committed: {result}");
    }
    // Device time of the last reading: the signing instant plus at most one ms per reading
    // of a logger, all before the run ended.
    let arrived = now_ms().max(departed + 1);
    expect(
        port,
        "POST",
        &format!("/v1/orgs/{EXPORTER_ORG}/shipments/{SHIPMENT}/arrival"),
        Some(&exporter),
        &json!({ "location": "Bangkok", "time_ms": arrived }),
        201,
    )?;
    // The loggers' next trip, and everyone else's readings, after the window.
    std::thread::sleep(Duration::from_millis(50));
    load(
        &format!("{AFTER_READINGS} readings of the fleet after the arrival"),
        &load_args(broker_port, DEVICES, AFTER_READINGS, 10, pid),
    )?;
    let committed_readings = metric(port, COMMITTED)?;
    Ok((
        node,
        port,
        Setup {
            customs_token: customs,
            exporter_token: exporter,
            event_id,
            committed_readings,
            fill_seconds,
        },
    ))
}

/// The trace path of the measures.
fn trace_path() -> String {
    format!("/trace/01/{GTIN}/10/{ROOT_LOT}?direction=both")
}

/// Checks the trace answers what the bench built; returns a one-line description.
fn check_trace(trace: &Value) -> Result<String> {
    let events = trace["events"].as_array().map_or(0, Vec::len);
    let proven = trace["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["proof"].is_object())
        .count();
    let chain = &trace["custody"][0]["cold_chain"];
    let readings = chain["readings"].as_u64().unwrap_or(0);
    let excursions = chain["excursions"].as_array().map_or(0, Vec::len);
    let nodes = trace["nodes"].as_array().map_or(0, Vec::len);
    if events != TRACE_EVENTS
        || proven != TRACE_EVENTS
        || readings != LOGGER_READINGS
        || excursions == 0
    {
        bail!(
            "the trace is not the one built: {events} events ({proven} proven), {readings} \
             readings, {excursions} excursions"
        );
    }
    Ok(format!(
        "{nodes} nodes, {events} events each with its inclusion proof, one custody window with \
         {readings} readings from {} devices, {excursions} excursions, {} ms outside the band",
        chain["devices"].as_array().map_or(0, Vec::len),
        chain["outside_ms"]
    ))
}

/// Latencies of one measure.
#[derive(Debug, Clone, PartialEq)]
struct Figures {
    requests: usize,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    per_second: f64,
}

/// Nearest-rank percentiles of `latencies` (ms) over `wall` seconds.
fn figures(mut latencies: Vec<f64>, wall: f64) -> Figures {
    latencies.sort_by(f64::total_cmp);
    let rank = |p: f64| -> f64 {
        if latencies.is_empty() {
            return f64::NAN;
        }
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let index = ((p * latencies.len() as f64).ceil() as usize).clamp(1, latencies.len()) - 1;
        latencies[index]
    };
    #[allow(clippy::cast_precision_loss)]
    let per_second = latencies.len() as f64 / wall;
    Figures {
        requests: latencies.len(),
        p50_ms: rank(0.50),
        p99_ms: rank(0.99),
        max_ms: latencies.last().copied().unwrap_or(f64::NAN),
        per_second,
    }
}

/// One measure's request.
#[derive(Debug, Clone)]
struct Probe {
    name: &'static str,
    path: String,
    token: String,
}

/// `requests` requests of `probe` from each of `clients` connections at once (after a
/// warm-up); every answer must be 200.
fn time_probe(
    port: u16,
    probe: &Probe,
    clients: usize,
    requests: usize,
) -> Result<(Figures, usize)> {
    let mut warm = Client::connect(port)?;
    let mut bytes = 0;
    for _ in 0..WARMUP_REQUESTS {
        let answer = warm.call("GET", &probe.path, Some(&probe.token), None)?;
        if answer.status != 200 {
            bail!(
                "{} answered {}: {}",
                probe.path,
                answer.status,
                String::from_utf8_lossy(&answer.body)
            );
        }
        bytes = answer.body.len();
    }
    let started = Instant::now();
    let results: Vec<Result<Vec<f64>>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..clients)
            .map(|_| {
                scope.spawn(|| -> Result<Vec<f64>> {
                    let mut client = Client::connect(port)?;
                    let mut latencies = Vec::with_capacity(requests);
                    for _ in 0..requests {
                        let sent = Instant::now();
                        let answer = client.call("GET", &probe.path, Some(&probe.token), None)?;
                        latencies.push(sent.elapsed().as_secs_f64() * 1_000.0);
                        if answer.status != 200 {
                            bail!("{} answered {}", probe.path, answer.status);
                        }
                    }
                    Ok(latencies)
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a client thread panicked")))
            })
            .collect()
    });
    let wall = started.elapsed().as_secs_f64();
    let mut all = Vec::new();
    for result in results {
        all.extend(result?);
    }
    Ok((figures(all, wall), bytes))
}

/// CPU time of process `pid` so far, in seconds (utime + stime of `/proc/<pid>/stat`).
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // USER_HZ is 100 on Linux for every architecture this runs on.
    Some(ticks / 100.0)
}

/// The 1-minute load average.
pub(crate) fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned())
}

/// One row of the table.
struct Row {
    name: &'static str,
    clients: usize,
    figures: Figures,
    bytes: usize,
    node_cores: f64,
    load: String,
}

fn table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| measure | clients | requests | answer bytes | p50 ms | p99 ms | max ms | requests/s | \
         p50 / baseline p50 | p99 / baseline p99 | node CPU cores | load average |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for row in rows {
        let baseline = rows
            .iter()
            .find(|r| r.name == BASELINE && r.clients == row.clients)
            .map(|r| &r.figures);
        let ratio = |value: f64, base: Option<f64>| {
            base.map_or_else(|| "—".to_owned(), |b| format!("{:.1}", value / b))
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {:.2} | {:.2} | {:.2} | {:.0} | {} | {} | {:.2} | {} |\n",
            row.name,
            row.clients,
            row.figures.requests,
            row.bytes,
            row.figures.p50_ms,
            row.figures.p99_ms,
            row.figures.max_ms,
            row.figures.per_second,
            ratio(row.figures.p50_ms, baseline.map(|b| b.p50_ms)),
            ratio(row.figures.p99_ms, baseline.map(|b| b.p99_ms)),
            row.node_cores,
            row.load,
        ));
    }
    out
}

const BASELINE: &str = "baseline: `GET /healthz`";

/// Waits for the trace to be complete (every event covered by a published checkpoint), then
/// runs the measures; returns the report.
fn measure(node: &Guard, port: u16, setup: &Setup) -> Result<String> {
    let mut client = Client::connect(port)?;
    let mut described = Err(anyhow::anyhow!("the trace was never complete"));
    for _ in 0..POLLS_MAX {
        let answer = client.call("GET", &trace_path(), Some(&setup.customs_token), None)?;
        if answer.status != 200 {
            bail!(
                "the trace answered {}: {}",
                answer.status,
                String::from_utf8_lossy(&answer.body)
            );
        }
        described = check_trace(&answer.json());
        if described.is_ok() {
            break;
        }
        std::thread::sleep(POLL);
    }
    let described = described?;
    let probes = [
        Probe {
            name: BASELINE,
            path: "/healthz".to_owned(),
            token: setup.customs_token.clone(),
        },
        Probe {
            name: "one stored event: `GET /epcis/events/{id}`",
            path: format!("/epcis/events/{}", setup.event_id),
            token: setup.exporter_token.clone(),
        },
        Probe {
            name: "trace of the lot, `direction=both`",
            path: trace_path(),
            token: setup.customs_token.clone(),
        },
        Probe {
            name: "recall of the lot: `GET /recall/{gtin}/{lot}`",
            path: format!("/recall/{GTIN}/{ROOT_LOT}"),
            token: setup.customs_token.clone(),
        },
    ];
    let pid = node.pid();
    let mut rows = Vec::new();
    for (clients, requests) in [(1, REQUESTS), (CLIENTS, REQUESTS_PER_CLIENT)] {
        for probe in &probes {
            eprintln!("\n==> {}, {clients} client(s)", probe.name);
            let before = cpu_seconds(pid);
            let started = Instant::now();
            let (figures, bytes) = time_probe(port, probe, clients, requests)?;
            let elapsed = started.elapsed().as_secs_f64();
            let node_cores = match (before, cpu_seconds(pid)) {
                (Some(a), Some(b)) => (b - a) / elapsed,
                _ => f64::NAN,
            };
            eprintln!(
                "    p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms, {:.0}/s",
                figures.p50_ms, figures.p99_ms, figures.max_ms, figures.per_second
            );
            rows.push(Row {
                name: probe.name,
                clients,
                figures,
                bytes,
                node_cores,
                load: load_average(),
            });
        }
    }
    let trace_p99 = rows
        .iter()
        .find(|r| r.clients == 1 && r.name.starts_with("trace"))
        .map_or(f64::NAN, |r| r.figures.p99_ms);
    Ok(format!(
        "The traced lot: {described}.\n\n{}\nTrace p99, one client at a time: {trace_p99:.2} ms; \
         target under {TARGET_P99_MS:.0} ms: {}.",
        table(&rows),
        if trace_p99 < TARGET_P99_MS {
            "met"
        } else {
            "not met"
        }
    ))
}

/// Latency of the first trace after the node starts (nothing in its memory: no located
/// entries, no cold chain, redb's cache empty), over [`FIRST_TRACE_STARTS`] starts.
fn first_traces(data: &Path, log: &Path, setup: &Setup) -> Result<String> {
    let mut latencies = Vec::new();
    let mut bytes = 0;
    for _ in 0..FIRST_TRACE_STARTS {
        let (node, port, _) = start_node(data, log, None)?;
        let mut client = Client::connect(port)?;
        let sent = Instant::now();
        let answer = client.call("GET", &trace_path(), Some(&setup.customs_token), None);
        latencies.push(sent.elapsed().as_secs_f64() * 1_000.0);
        node.stop(Duration::from_secs(30));
        let answer = answer?;
        check_trace(&answer.json())?;
        bytes = answer.body.len();
    }
    let wall = latencies.iter().sum::<f64>() / 1_000.0;
    let f = figures(latencies, wall);
    Ok(format!(
        "\nFirst trace after a start of the node, {} starts ({bytes} bytes): p50 {:.2} ms, \
         max {:.2} ms; load average {}.",
        f.requests,
        f.p50_ms,
        f.max_ms,
        load_average()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_digits_follow_gs1() {
        // The SSCC of the trace test and the mango GTIN-14.
        assert_eq!(with_check_digit("00690123000000017"), "006901230000000171");
        assert_eq!(with_check_digit("0690123456789"), "06901234567892");
        assert_eq!(sscc(17), "006901230000000171");
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let latencies: Vec<f64> = (1..=200).map(f64::from).collect();
        let f = figures(latencies, 2.0);
        assert_eq!(f.requests, 200);
        assert!((f.p50_ms - 100.0).abs() < f64::EPSILON);
        assert!((f.p99_ms - 198.0).abs() < f64::EPSILON);
        assert!((f.max_ms - 200.0).abs() < f64::EPSILON);
        assert!((f.per_second - 100.0).abs() < f64::EPSILON);
    }

    #[test]
    fn timestamps_are_iso_8601_utc() {
        assert_eq!(iso(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso(1_780_000_000_000), "2026-05-28T20:26:40Z");
    }

    #[test]
    fn the_traced_lot_has_its_events() {
        let events = traced_events(1_780_000_000_000);
        assert_eq!(events.len(), TRACE_EVENTS);
        assert_eq!(other_events(0).len(), OTHER_EVENTS);
    }
}
