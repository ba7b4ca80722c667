//! `cargo xtask test-browser` (and the last step of `cargo xtask test`): the pages in a real
//! browser. Installs Debian's `chromium` (and `npm`) if missing, runs `npm ci` in
//! `tests/browser` (which pins `playwright-core`), starts a real node (`agritrace serve`, debug
//! build, in-process broker) on a fresh data directory, seeds it through its API — a
//! cooperative with a product (with its temperature band), a polygon plot, a lot with its
//! harvest and shipping events, a shipment carrying the lot with a logger whose signed readings
//! stream in over MQTT (`agritrace-load`, some above the band), departure and arrival, a
//! certificate of the lot and the shipment signed by the cooperative's node-held issuer key
//! (so the authority the shipment is declared to may read it); a customs authority the
//! shipment is declared to, with an officer; a clerk of the cooperative (producer role only) —
//! waits until every event is anchored, then runs the Node tests against it with
//! `/usr/bin/chromium`. What the tests need to know (the lot's path, the shipment, the
//! officer's and the clerk's tokens) is written to `seeded.json` beside the node's data and
//! handed to them as `AGRITRACE_SEED`; `AGRITRACE_BIN` names the debug binaries' directory
//! (the console's test checks a downloaded evidence bundle with `agritrace-verify`).
//!
//! Screenshots of each page state go to `target/browser-screenshots` (git-ignored). A missing
//! browser or npm after the install attempt is a failure, never a skip.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::bench_node::Guard;
use crate::bench_trace::{Client, expect, now_ms, organisation};
use crate::{apt_install, cargo, find_program, free_port, root, run};

/// The browser the tests drive (Debian's package).
const CHROMIUM: &str = "/usr/bin/chromium";
/// The seeded lot.
const GTIN: &str = "06901234567892";
const LOT: &str = "MH-2026-001";
const ORG: &str = "mango-coop";
/// The customs authority the seeded shipment is declared to.
const CUSTOMS: &str = "th-customs";
/// The seeded shipment.
const SHIPMENT: &str = "s-2026-001";
/// What a seeded node holds, for the browser tests and the demo (`seeded.json`).
const SEEDED_FILE: &str = "seeded.json";
/// Readings the logger sends during the trip.
const LOGGER_READINGS: u64 = 240;
/// How long the seeded node may take to anchor every event.
const ANCHOR_PATIENCE: Duration = Duration::from_secs(120);

fn debug_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| root().join("target"), PathBuf::from)
        .join("debug")
}

/// Installs what the browser tests need, or says clearly what is missing.
fn require_browser() -> Result<()> {
    let mut missing = Vec::new();
    if !Path::new(CHROMIUM).is_file() {
        missing.push("chromium");
    }
    if find_program("npm").is_none() {
        missing.push("npm");
    }
    if !missing.is_empty() {
        apt_install(&missing)?;
    }
    if !Path::new(CHROMIUM).is_file() {
        bail!("the browser tests need Debian's chromium at {CHROMIUM}; apt-get install chromium");
    }
    if find_program("npm").is_none() || find_program("node").is_none() {
        bail!("the browser tests need node and npm; apt-get install npm");
    }
    Ok(())
}

/// `cargo xtask test-browser`; `built` when the debug binaries are current already.
pub fn test_browser(built: bool) -> Result<()> {
    require_browser()?;
    let dir = root().join("tests").join("browser");
    run(
        "npm ci (tests/browser)",
        // `run` sets the working directory to the workspace root: npm is told where to work.
        Command::new("npm")
            .arg("--prefix")
            .arg(&dir)
            .args(["ci", "--no-audit", "--no-fund"]),
    )?;
    if !built {
        run(
            "building agritrace, agritrace-verify and agritrace-load (debug)",
            cargo().args([
                "build",
                "-p",
                "api",
                "-p",
                "agritrace-verify",
                "-p",
                "agritrace-load",
            ]),
        )?;
    }
    let work = root().join("target").join("browser-tests");
    if work.exists() {
        std::fs::remove_dir_all(&work)
            .with_context(|| format!("while clearing {}", work.display()))?;
    }
    std::fs::create_dir_all(&work).with_context(|| format!("while creating {}", work.display()))?;
    let shots = root().join("target").join("browser-screenshots");
    if shots.exists() {
        std::fs::remove_dir_all(&shots)
            .with_context(|| format!("while clearing {}", shots.display()))?;
    }
    std::fs::create_dir_all(&shots)
        .with_context(|| format!("while creating {}", shots.display()))?;
    let (node, port, broker_port) = start_node(&work)?;
    let seeded = seed(&debug_dir(), &work, node.pid(), port, broker_port);
    let result = seeded.and_then(|seeded| {
        run(
            "browser tests (Chromium, playwright-core)",
            Command::new("npm")
                .arg("--prefix")
                .arg(&dir)
                .arg("test")
                .env("AGRITRACE_URL", format!("http://127.0.0.1:{port}"))
                .env("AGRITRACE_LOT_PATH", &seeded.lot_path)
                .env("AGRITRACE_SEED", work.join(SEEDED_FILE))
                .env("AGRITRACE_CHROMIUM", CHROMIUM)
                .env("AGRITRACE_BIN", debug_dir())
                .env("AGRITRACE_SCREENSHOTS", &shots),
        )
    });
    node.stop(Duration::from_secs(30));
    result?;
    eprintln!("screenshots: {}", shots.display());
    Ok(())
}

/// The node on a fresh data directory under `work`; it, its HTTP and broker ports.
fn start_node(work: &Path) -> Result<(Guard, u16, u16)> {
    let http_port = free_port()?;
    let broker_port = free_port()?;
    let log = std::fs::File::create(work.join("node.log")).context("while creating node.log")?;
    let mut guard = Guard {
        name: "agritrace serve",
        child: Command::new(debug_dir().join("agritrace"))
            .arg("serve")
            .env("AGRITRACE_DATA_DIR", work.join("node"))
            .env("AGRITRACE_HTTP_LISTEN", format!("127.0.0.1:{http_port}"))
            .env("AGRITRACE_BROKER_EMBEDDED", "true")
            .env("AGRITRACE_BROKER_PORT", broker_port.to_string())
            .env("AGRITRACE_LOG", "warn,rumqttd=off")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("while starting agritrace serve (debug)")?,
    };
    let start = Instant::now();
    for port in [http_port, broker_port] {
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = guard.child.try_wait().context("while checking the node")? {
                bail!(
                    "agritrace serve exited at start ({status}); see target/browser-tests/node.log"
                );
            }
            if start.elapsed() > Duration::from_secs(120) {
                bail!("agritrace serve did not listen on port {port} in time");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    Ok((guard, http_port, broker_port))
}

/// `YYYY-MM-DDTHH:MM:SSZ` of Unix ms.
fn iso(ms: u64) -> String {
    let secs = ms / 1_000;
    let days = secs / 86_400;
    // Civil from days (H. Hinnant's algorithm), for dates after 1970.
    let z = i64::try_from(days).unwrap_or(0) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let rem = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3_600,
        rem % 3_600 / 60,
        rem % 60
    )
}

/// Captures `events` and waits for the job to succeed.
fn capture(port: u16, token: &str, events: Vec<Value>) -> Result<()> {
    let document = json!({
        "@context": ["https://ref.gs1.org/standards/epcis/epcis-context.jsonld"],
        "type": "EPCISDocument", "schemaVersion": "2.0", "creationDate": iso(now_ms()),
        "epcisBody": { "eventList": events },
    });
    let job = expect(port, "POST", "/epcis/capture", Some(token), &document, 202)?;
    let id = job["captureID"].as_str().context("no captureID")?;
    let start = Instant::now();
    loop {
        let job = expect(
            port,
            "GET",
            &format!("/epcis/capture/{id}"),
            Some(token),
            &Value::Null,
            200,
        )?;
        if job["running"] == false {
            if job["success"] != true {
                bail!("capture job {id} failed: {job}");
            }
            return Ok(());
        }
        if start.elapsed() > ANCHOR_PATIENCE {
            bail!("capture job {id} never finished");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A `multipart/form-data` body of text parts.
fn multipart(parts: &[(&str, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "agritrace-browser-seed-boundary";
    let mut body = Vec::new();
    for (name, value) in parts {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"").as_bytes(),
        );
        if *name == "file" {
            body.extend_from_slice(
                b"; filename=\"certificate.pdf\"\r\nContent-Type: application/pdf",
            );
        }
        body.extend_from_slice(b"\r\n\r\n");
        body.extend_from_slice(value);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// The seeded lot's Digital Link path.
pub fn lot_path() -> String {
    format!("/01/{GTIN}/10/{LOT}")
}

/// What a seeded node holds: where its lot's page is, its shipment, and tokens to sign in
/// with (an API token is shown once, so they are kept beside the node's data).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Seeded {
    /// The lot's Digital Link path (its consumer page).
    pub lot_path: String,
    /// The lot: GTIN and lot number.
    pub gtin: String,
    pub lot: String,
    /// The cooperative that owns it.
    pub org: String,
    /// The shipment carrying it, declared to `customs_org`.
    pub shipment: String,
    /// The customs authority.
    pub customs_org: String,
    /// A customs officer of `customs_org`.
    pub customs_token: String,
    /// A clerk of `org` (producer role only).
    pub clerk_token: String,
    /// An administrator of `org` (admin, producer, exporter).
    pub exporter_token: String,
}

/// What the node on `port` was seeded with under `work`, if it has the seeded lot and the
/// file that says so (a demo directory run before).
pub fn seeded_already(port: u16, work: &Path) -> Option<Seeded> {
    let has_lot = Client::connect(port)
        .and_then(|mut c| {
            c.call(
                "GET",
                &format!("/v1/public/lots/{GTIN}/{LOT}/journey"),
                None,
                None,
            )
        })
        .is_ok_and(|a| a.status == 200);
    if !has_lot {
        return None;
    }
    let text = std::fs::read_to_string(work.join(SEEDED_FILE)).ok()?;
    serde_json::from_str(&text).ok()
}

/// A new member of `org` with `roles`, made by the operator; its token.
fn member(port: u16, org: &str, id: &str, name: &str, roles: &[&str]) -> Result<String> {
    expect(
        port,
        "POST",
        &format!("/v1/admin/orgs/{org}/members"),
        None,
        &json!({ "id": id, "name": name, "roles": roles }),
        201,
    )?;
    expect(
        port,
        "POST",
        &format!("/v1/admin/orgs/{org}/members/{id}/tokens"),
        None,
        &json!({ "label": "pages" }),
        201,
    )?["token"]
        .as_str()
        .map(str::to_owned)
        .context("no token in the answer")
}

/// Seeds the node on `port` through its API, with the binaries of `bin` (`agritrace-load`
/// for the logger) and files under `work` (where `seeded.json` is written).
pub fn seed(bin: &Path, work: &Path, node_pid: u32, port: u16, broker_port: u16) -> Result<Seeded> {
    eprintln!("\n==> seeding the node through its API");
    let token = organisation(
        port,
        ORG,
        "Mohan Mango Cooperative 勐腊芒果合作社",
        &["admin", "producer", "exporter"],
    )?;
    let customs_token = organisation(
        port,
        CUSTOMS,
        "Thai Customs, Bangkok Port 泰国海关",
        &["customs"],
    )?;
    let clerk_token = member(port, ORG, "clerk-1", "Li Wen 李文", &["producer"])?;
    let post = |path: &str, body: Value| expect(port, "POST", path, Some(&token), &body, 201);
    post(
        &format!("/v1/orgs/{ORG}/products"),
        json!({ "gtin": GTIN, "name_en": "Alphonso mango", "name_zh": "阿方索芒果",
                "storage_min_c": 0.0, "storage_max_c": 4.0 }),
    )?;
    post(
        &format!("/v1/orgs/{ORG}/plots"),
        json!({ "id": "hillside-7", "name": "Hillside 7", "country": "CN",
                "geometry": { "type": "Polygon", "coordinates": [[
                    [101.5631, 21.4702], [101.5652, 21.4705], [101.5657, 21.4689],
                    [101.5640, 21.4681], [101.5628, 21.4690], [101.5631, 21.4702]
                ]] } }),
    )?;
    post(
        &format!("/v1/orgs/{ORG}/lots"),
        json!({ "gtin": GTIN, "lot": LOT, "plot": "hillside-7", "harvest_date": "2026-06-01" }),
    )?;
    let t0 = now_ms() - 6 * 3_600_000;
    let class = json!({ "epcClass": format!("https://id.gs1.org/01/{GTIN}/10/{LOT}"), "quantity": 800, "uom": "KGM" });
    capture(
        port,
        &token,
        vec![
            json!({ "type": "ObjectEvent", "action": "ADD", "bizStep": "commissioning",
                    "eventTime": iso(t0), "eventTimeZoneOffset": "+08:00",
                    "quantityList": [class.clone()],
                    "bizLocation": { "id": "urn:epc:id:sgln:0690123.00001.0" } }),
            json!({ "type": "ObjectEvent", "action": "OBSERVE", "bizStep": "packing",
                    "eventTime": iso(t0 + 3_600_000), "eventTimeZoneOffset": "+08:00",
                    "quantityList": [class.clone()],
                    "bizLocation": { "id": "urn:epc:id:sgln:0690123.00002.0" } }),
            json!({ "type": "ObjectEvent", "action": "OBSERVE", "bizStep": "shipping",
                    "eventTime": iso(t0 + 2 * 3_600_000), "eventTimeZoneOffset": "+08:00",
                    "quantityList": [class],
                    "bizLocation": { "id": "urn:epc:id:sgln:0690123.00002.0" } }),
        ],
    )?;
    // The logger: the load tool's fleet device 0 (its key derives from its index).
    let fleet = work.join("fleet");
    let output = Command::new(bin.join("agritrace-load"))
        .args(["manifest", "--devices", "1", "--out"])
        .arg(&fleet)
        .output()
        .context("while writing the logger's manifest")?;
    if !output.status.success() {
        bail!("agritrace-load manifest failed");
    }
    let manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(fleet.join("manifest-000.json"))
            .context("while reading the logger's manifest")?,
    )
    .context("while parsing the logger's manifest")?;
    let logger = manifest["devices"][0].clone();
    post(
        &format!("/v1/orgs/{ORG}/devices"),
        json!({ "device_id": logger["device_id"], "public_key": logger["public_key"],
                "name": "Reefer logger" }),
    )?;
    let departed = now_ms();
    post(
        &format!("/v1/orgs/{ORG}/shipments"),
        json!({
            "id": SHIPMENT,
            "consignee": { "name": "Bangkok Fresh Co.", "country": "TH" },
            "origin_country": "CN", "destination_country": "TH",
            "declared_to": [CUSTOMS],
            "lots": [{ "gtin": GTIN, "lot": LOT }],
            "devices": [logger["device_id"]],
            "planned_departure": { "location": "Mohan", "time_ms": departed },
        }),
    )?;
    post(
        &format!("/v1/orgs/{ORG}/shipments/{SHIPMENT}/departure"),
        json!({ "location": "Mohan", "time_ms": departed }),
    )?;
    let result = crate::bench_trace::load_from(
        bin,
        &format!("the logger's {LOGGER_READINGS} readings over MQTT"),
        &[
            "node",
            "--broker",
            &format!("127.0.0.1:{broker_port}"),
            "--devices",
            "1",
            "--readings",
            &LOGGER_READINGS.to_string(),
            "--per-message",
            "16",
            "--window",
            "64",
            "--connections",
            "1",
            "--warmup-secs",
            "0",
            "--seconds",
            "5",
            "--watch",
            &format!("node={node_pid}"),
        ]
        .map(str::to_owned),
    )?;
    if result["done"].as_u64() != Some(LOGGER_READINGS) {
        bail!("the logger's readings were not all committed: {result}");
    }
    post(
        &format!("/v1/orgs/{ORG}/shipments/{SHIPMENT}/arrival"),
        json!({ "location": "Bangkok", "time_ms": now_ms().max(departed + 1) }),
    )?;
    post(
        &format!("/v1/orgs/{ORG}/issuer-keys"),
        json!({ "custody": "node" }),
    )?;
    let (content_type, body) = multipart(&[
        ("file", b"%PDF-1.7\nphytosanitary certificate\n%%EOF\n"),
        ("type", b"phytosanitary_certificate"),
        ("number", b"KM-2026-0001"),
        ("lot", format!("{GTIN}/{LOT}").as_bytes()),
        ("shipment", format!("{ORG}/{SHIPMENT}").as_bytes()),
        ("media_type", b"application/pdf"),
        ("sign", b"node"),
    ]);
    let answer = Client::connect(port)?.call_with(
        "POST",
        "/v1/documents",
        Some(&token),
        &content_type,
        &body,
    )?;
    if answer.status != 201 {
        bail!(
            "the certificate upload answered {}: {}",
            answer.status,
            String::from_utf8_lossy(&answer.body)
        );
    }
    // Every event anchored in a published checkpoint before the browser looks.
    let start = Instant::now();
    loop {
        let journey = expect(
            port,
            "GET",
            &format!("/v1/public/lots/{GTIN}/{LOT}/journey"),
            None,
            &Value::Null,
            200,
        )?;
        let events = journey["events"].as_array().map_or(&[][..], Vec::as_slice);
        if events.len() == 3 && events.iter().all(|e| e["proof"].is_object()) {
            break;
        }
        if start.elapsed() > ANCHOR_PATIENCE {
            bail!("the seeded events were not anchored in time: {journey}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let seeded = Seeded {
        lot_path: lot_path(),
        gtin: GTIN.to_owned(),
        lot: LOT.to_owned(),
        org: ORG.to_owned(),
        shipment: SHIPMENT.to_owned(),
        customs_org: CUSTOMS.to_owned(),
        customs_token,
        clerk_token,
        exporter_token: token,
    };
    let file = work.join(SEEDED_FILE);
    std::fs::write(&file, serde_json::to_string_pretty(&seeded)?)
        .with_context(|| format!("while writing {}", file.display()))?;
    Ok(seeded)
}
