//! `cargo xtask bench-evidence [--readings N] [--keep]`: how long the node takes to export
//! the evidence bundle of a shipment whose loggers recorded N readings (default 100,000), how
//! long `agritrace-verify evidence` takes to check that bundle offline, and how fast the
//! customs check (`POST /v1/verify/document`) answers, beside a baseline measured in the same
//! run: Ed25519 signature verifications per second on one thread of this machine
//! (`agritrace-load verify-ceiling`), the work an offline verifier of that bundle cannot
//! avoid. The machine is shared, so only ratios compare between runs.
//!
//! Steps: build `agritrace` and `agritrace-load` (release); start `agritrace serve` on a fresh
//! data directory with its in-process broker; register an exporter, a customs authority and
//! the shipment's two loggers (fleet devices 0 and 1 of `agritrace-load manifest`) through the
//! API, a product, a plot and a lot; create the shipment carrying the lot and the loggers,
//! declared to the authority, and record its departure; upload [`DOCUMENTS`] phytosanitary
//! certificates of the shipment, each signed by the exporter's node-held issuer key; publish
//! the loggers' N readings through the broker (backlogs of 16) until all are committed; record
//! the arrival; wait until a bundle exported by the customs officer holds all N readings; then
//! export it [`EXPORTS`] more times, one at a time on a keep-alive connection; run
//! `agritrace-verify evidence` on it [`VERIFICATIONS`] times (which must pass); and run
//! [`CHECKS`] customs checks by content hash as the officer, one at a time. Reported: time to
//! the last byte of an export (p50, max), bundle bytes, the offline verification's wall time
//! (p50, max), the customs check's latency (p50, p99), and the ratios to the baseline.
//!
//! `--keep` leaves the data directory and the last bundle in `target/bench-evidence`.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::bench_trace::{
    COMMITTED, Client, expect, load, load_args, load_average, metric, now_ms, organisation,
    start_node,
};
use crate::{cargo, release_dir, root, run};

/// Readings of the shipment's loggers, unless `--readings` says otherwise.
const READINGS_DEFAULT: u64 = 100_000;
/// Fleet devices travelling with the shipment (indices `0..LOGGERS`).
const LOGGERS: u32 = 2;
/// Timed exports.
const EXPORTS: usize = 5;
/// Timed offline verifications of the bundle.
const VERIFICATIONS: usize = 3;
/// Certificates of the shipment (each one anchored, all in the bundle).
const DOCUMENTS: usize = 50;
/// Timed customs checks.
const CHECKS: usize = 1_000;
/// Seconds of the baseline measurement.
const BASELINE_SECONDS: &str = "5";
const GTIN: &str = "06901234567892";
const EXPORTER_ORG: &str = "bench-coop";
const CUSTOMS_ORG: &str = "cn-customs";
const SHIPMENT: &str = "s-evidence-1";
/// Polls of something that arrives asynchronously, and their period.
const POLLS_MAX: u32 = 2_400;
const POLL: Duration = Duration::from_millis(50);

fn options(args: &[String]) -> Result<(u64, bool)> {
    let mut readings = READINGS_DEFAULT;
    let mut keep = false;
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--keep" => keep = true,
            "--readings" => {
                readings = rest
                    .next()
                    .context("--readings needs a number")?
                    .parse()
                    .context("--readings must be a whole number")?;
                if readings == 0 {
                    bail!("--readings must be at least 1");
                }
            }
            other => bail!("bench-evidence takes --readings N and --keep, not {other:?}"),
        }
    }
    Ok((readings, keep))
}

/// `cargo xtask bench-evidence [--readings N] [--keep]`.
pub fn bench_evidence(args: &[String]) -> Result<()> {
    let (readings, keep) = options(args)?;
    run(
        "building agritrace, agritrace-verify and agritrace-load (release)",
        cargo().args([
            "build",
            "--release",
            "-p",
            "api",
            "-p",
            "agritrace-verify",
            "-p",
            "agritrace-load",
        ]),
    )?;
    let dir = root().join("target").join("bench-evidence");
    if dir.exists() {
        std::fs::remove_dir_all(&dir)
            .with_context(|| format!("while clearing {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("while creating {}", dir.display()))?;
    let load_before = load_average();
    let baseline = load(
        "baseline: Ed25519 verify_batch on one thread",
        &[
            "verify-ceiling".to_owned(),
            "--devices".to_owned(),
            LOGGERS.to_string(),
            "--threads".to_owned(),
            "1".to_owned(),
            "--seconds".to_owned(),
            BASELINE_SECONDS.to_owned(),
        ],
    )?;
    let verify_rate = baseline["rate"]
        .as_f64()
        .context("verify-ceiling printed no rate")?;

    let data = dir.join("node");
    let (node, port, broker_port) = start_node(&data, &dir.join("node.log"), None)?;
    let (customs, hashes) = set_up(&dir, port, broker_port, node.pid(), readings)?;
    let path = format!("/v1/orgs/{EXPORTER_ORG}/shipments/{SHIPMENT}/evidence");
    let result = measure(port, &path, &customs, readings)
        .and_then(|exports| Ok((exports, customs_checks(port, &customs, &hashes)?)));
    node.stop(Duration::from_secs(30));
    let ((times, bytes, text), checks) = result?;
    let bundle = dir.join("shipment.evidence.txt");
    std::fs::write(&bundle, &text).context("while writing the bundle")?;
    let verifications = verify_offline(&bundle)?;
    if !keep {
        let _ = std::fs::remove_dir_all(&data);
        let _ = std::fs::remove_file(&bundle);
    }
    println!(
        "{}",
        report(
            readings,
            &Timings {
                exports: times,
                verifications,
                checks,
            },
            bytes,
            verify_rate,
            &load_before
        )
    );
    Ok(())
}

/// Runs `agritrace-verify evidence` on the bundle [`VERIFICATIONS`] times (under the policy
/// the bundle carries; pinning it changes nothing of the work); wall times in ms.
fn verify_offline(bundle: &Path) -> Result<Vec<f64>> {
    let mut times = Vec::with_capacity(VERIFICATIONS);
    for _ in 0..VERIFICATIONS {
        let started = Instant::now();
        let output = Command::new(release_dir().join("agritrace-verify"))
            .arg("evidence")
            .arg(bundle)
            .output()
            .context("while running agritrace-verify")?;
        times.push(started.elapsed().as_secs_f64() * 1_000.0);
        if !output.status.success() {
            bail!(
                "agritrace-verify refused the bundle: {}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }
    Ok(times)
}

/// [`CHECKS`] customs checks by content hash, cycling through the certificates, one at a time
/// on a keep-alive connection; each must find its document with its proofs. Latencies in ms.
fn customs_checks(port: u16, token: &str, hashes: &[String]) -> Result<Vec<f64>> {
    let mut client = Client::connect(port)?;
    let mut times = Vec::with_capacity(CHECKS);
    for i in 0..CHECKS {
        let body = json!({ "sha256": hashes[i % hashes.len()] });
        let sent = Instant::now();
        let answer = client.call("POST", "/v1/verify/document", Some(token), Some(&body))?;
        times.push(sent.elapsed().as_secs_f64() * 1_000.0);
        let found: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
        if answer.status != 200 || found["match"] != true {
            bail!("a customs check answered {}: {found}", answer.status);
        }
    }
    Ok(times)
}

/// One multipart/form-data upload of a certificate of the shipment, signed by the node's key
/// of the exporter; returns the file's SHA-256 (hex) as the node computed it.
fn upload_certificate(client: &mut Client, token: &str, number: usize) -> Result<String> {
    const BOUNDARY: &str = "bench-evidence-boundary-7d1f";
    let file = format!(
        "%PDF-1.7\nPhytosanitary certificate {number}\nConsignment {SHIPMENT}\n{}\n%%EOF\n",
        "lorem ipsum ".repeat(300)
    );
    let mut body = Vec::new();
    for (name, value, filename) in [
        ("file", file.as_str(), Some("certificate.pdf")),
        ("type", "phytosanitary_certificate", None),
        ("number", &format!("PC-2026-{number:05}"), None),
        ("shipment", &format!("{EXPORTER_ORG}/{SHIPMENT}"), None),
        ("media_type", "application/pdf", None),
        ("sign", "node", None),
    ] {
        body.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        let disposition = filename.map_or_else(
            || format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n"),
            |f| {
                format!(
                    "Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\n\
                     Content-Type: application/pdf\r\n\r\n"
                )
            },
        );
        body.extend_from_slice(disposition.as_bytes());
        body.extend_from_slice(value.as_bytes());
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    let answer = client.call_with(
        "POST",
        "/v1/documents",
        Some(token),
        &format!("multipart/form-data; boundary={BOUNDARY}"),
        &body,
    )?;
    let document: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
    if answer.status != 201 {
        bail!(
            "a certificate upload answered {}: {document}",
            answer.status
        );
    }
    document["sha256"]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("no sha256 in {document}"))
}

/// Organisations, loggers, master data, the shipment, its certificates and its readings;
/// returns the customs officer's token and the certificates' SHA-256s.
fn set_up(
    dir: &Path,
    port: u16,
    broker_port: u16,
    pid: u32,
    readings: u64,
) -> Result<(String, Vec<String>)> {
    let fleet = dir.join("fleet");
    let output = Command::new(release_dir().join("agritrace-load"))
        .args(["manifest", "--devices", &LOGGERS.to_string(), "--out"])
        .arg(&fleet)
        .output()
        .context("while writing the loggers' manifest")?;
    if !output.status.success() {
        bail!("agritrace-load manifest failed");
    }
    let manifest_path = fleet.join("manifest-000.json");
    let manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(&manifest_path)
            .with_context(|| format!("while reading {}", manifest_path.display()))?,
    )
    .context("while parsing the loggers' manifest")?;
    let loggers = manifest["devices"]
        .as_array()
        .context("the manifest lists no devices")?;

    let exporter = organisation(
        port,
        EXPORTER_ORG,
        "Bench 合作社",
        &["admin", "producer", "exporter"],
    )?;
    let customs = organisation(port, CUSTOMS_ORG, "Bench 海关", &["customs"])?;
    let post = |path: String, body: Value| {
        expect(port, "POST", &path, Some(&exporter), &body, 201).map(|_| ())
    };
    for logger in loggers {
        post(
            format!("/v1/orgs/{EXPORTER_ORG}/devices"),
            json!({ "device_id": logger["device_id"], "public_key": logger["public_key"],
                    "name": "Reefer logger" }),
        )?;
    }
    post(
        format!("/v1/orgs/{EXPORTER_ORG}/products"),
        json!({ "gtin": GTIN, "name_en": "Blueberries", "name_zh": "蓝莓",
                "storage_min_c": 0.0, "storage_max_c": 4.0 }),
    )?;
    post(
        format!("/v1/orgs/{EXPORTER_ORG}/plots"),
        json!({ "id": "plot-7", "name": "Hillside 7", "country": "CN", "area_ha": 3.2,
                "geometry": { "type": "Point", "coordinates": [100.45, 21.95] } }),
    )?;
    post(
        format!("/v1/orgs/{EXPORTER_ORG}/lots"),
        json!({ "gtin": GTIN, "lot": "P-2026-001", "plot": "plot-7",
                "harvest_date": "2026-06-01" }),
    )?;
    let devices: Vec<&Value> = loggers.iter().map(|l| &l["device_id"]).collect();
    post(
        format!("/v1/orgs/{EXPORTER_ORG}/shipments"),
        json!({
            "id": SHIPMENT,
            "consignee": { "name": "Bangkok Fresh Co.", "country": "TH" },
            "origin_country": "CN", "destination_country": "TH",
            "declared_to": [CUSTOMS_ORG],
            "lots": [{ "gtin": GTIN, "lot": "P-2026-001" }],
            "devices": devices,
            "planned_departure": { "location": "Mohan", "time_ms": now_ms() },
        }),
    )?;
    post(
        format!("/v1/orgs/{EXPORTER_ORG}/issuer-keys"),
        json!({ "custody": "node" }),
    )?;
    let mut client = Client::connect(port)?;
    let hashes = (0..DOCUMENTS)
        .map(|number| upload_certificate(&mut client, &exporter, number))
        .collect::<Result<Vec<_>>>()?;
    let departed = now_ms();
    post(
        format!("/v1/orgs/{EXPORTER_ORG}/shipments/{SHIPMENT}/departure"),
        json!({ "location": "Mohan", "time_ms": departed }),
    )?;
    let before = metric(port, COMMITTED)?;
    // At least 10 s, and about 5,000 readings a second of steady window beyond that.
    let seconds = (readings / 5_000).clamp(10, 300);
    let result = load(
        &format!("the shipment's {LOGGERS} loggers: {readings} readings"),
        &load_args(broker_port, LOGGERS, readings, seconds, pid),
    )?;
    let done = result["done"].as_u64().unwrap_or(0);
    if done != readings || metric(port, COMMITTED)? - before != readings {
        bail!("the loggers' {readings} readings were not all committed: {result}");
    }
    // A logger stamps its k-th reading of the run at the run's start plus k ms: the window
    // closes once the last of them is in the past.
    let last_stamp = departed + readings.div_ceil(u64::from(LOGGERS)) + 1_000;
    while now_ms() <= last_stamp {
        std::thread::sleep(Duration::from_millis(200));
    }
    post(
        format!("/v1/orgs/{EXPORTER_ORG}/shipments/{SHIPMENT}/arrival"),
        json!({ "location": "Bangkok", "time_ms": now_ms() }),
    )?;
    Ok((customs, hashes))
}

/// Waits until the bundle holds every reading, then times [`EXPORTS`] exports; returns their
/// times (ms), the bundle's bytes and its text.
fn measure(port: u16, path: &str, token: &str, readings: u64) -> Result<(Vec<f64>, usize, String)> {
    let mut client = Client::connect(port)?;
    let count = |body: &[u8]| -> u64 {
        let text = String::from_utf8_lossy(body);
        u64::try_from(text.matches("\nreading ").count()).unwrap_or(0)
    };
    let mut complete = false;
    for _ in 0..POLLS_MAX {
        let answer = client.call("GET", path, Some(token), None)?;
        match answer.status {
            200 if count(&answer.body) == readings => {
                complete = true;
                break;
            }
            200 | 503 => std::thread::sleep(POLL),
            other => bail!(
                "the export answered {other}: {}",
                String::from_utf8_lossy(&answer.body)
            ),
        }
    }
    if !complete {
        bail!("the bundle never held all {readings} readings");
    }
    let mut times = Vec::with_capacity(EXPORTS);
    let mut last = Vec::new();
    for _ in 0..EXPORTS {
        let sent = Instant::now();
        let answer = client.call("GET", path, Some(token), None)?;
        times.push(sent.elapsed().as_secs_f64() * 1_000.0);
        if answer.status != 200 || count(&answer.body) != readings {
            bail!("an export answered {} without every reading", answer.status);
        }
        last = answer.body;
    }
    let bytes = last.len();
    let text = String::from_utf8(last).context("the bundle is not UTF-8")?;
    Ok((times, bytes, text))
}

/// What was timed, in ms.
struct Timings {
    exports: Vec<f64>,
    verifications: Vec<f64>,
    checks: Vec<f64>,
}

/// The value at quantile `q` (0..=1) of `times`, nearest rank.
fn quantile(times: &[f64], q: f64) -> f64 {
    let mut sorted = times.to_vec();
    sorted.sort_by(f64::total_cmp);
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )] // A rank among at most a few thousand.
    let rank = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len().max(1));
    sorted.get(rank - 1).copied().unwrap_or(f64::NAN)
}

fn report(readings: u64, t: &Timings, bytes: usize, verify_rate: f64, load: &str) -> String {
    let (export_p50, export_max) = (quantile(&t.exports, 0.5), quantile(&t.exports, 1.0));
    let (verify_p50, verify_max) = (
        quantile(&t.verifications, 0.5),
        quantile(&t.verifications, 1.0),
    );
    let (check_p50, check_p99) = (quantile(&t.checks, 0.5), quantile(&t.checks, 0.99));
    #[allow(clippy::cast_precision_loss)] // A reading count, far below 2^52.
    let verify_ms = readings as f64 / verify_rate * 1_000.0;
    let one_verify_ms = 1_000.0 / verify_rate;
    format!(
        "\n`cargo xtask bench-evidence --readings {readings}` (load average before the run \
         {load}, after {}):\n\n\
         | measure | value |\n|---|---:|\n\
         | readings in the bundle | {readings} |\n\
         | certificates in the bundle | {DOCUMENTS} |\n\
         | bundle bytes | {bytes} |\n\
         | baseline: Ed25519 verifications/s, one thread (`verify_batch`) | {verify_rate:.0} |\n\
         | the bundle's signatures verified at that rate | {verify_ms:.0} ms |\n\
         | export, time to the last byte, p50 of {EXPORTS} (max) | {export_p50:.0} ms ({export_max:.0}) |\n\
         | export p50 / verifying its signatures | {:.2} |\n\
         | `agritrace-verify evidence`, wall, p50 of {VERIFICATIONS} (max) | {verify_p50:.0} ms ({verify_max:.0}) |\n\
         | offline verification p50 / verifying its signatures | {:.2} |\n\
         | customs check by hash, p50 / p99 of {CHECKS} | {check_p50:.2} ms / {check_p99:.2} ms |\n\
         | customs check p99 / one Ed25519 verification | {:.0} |\n",
        load_average(),
        export_p50 / verify_ms,
        verify_p50 / verify_ms,
        check_p99 / one_verify_ms,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn options_default_to_100000_readings_and_refuse_what_they_do_not_know() {
        assert_eq!(options(&[]).expect("defaults"), (READINGS_DEFAULT, false));
        assert_eq!(
            options(&args(&["--readings", "2000", "--keep"])).expect("options"),
            (2_000, true)
        );
        assert!(options(&args(&["--readings"])).is_err());
        assert!(options(&args(&["--readings", "0"])).is_err());
        assert!(options(&args(&["--reuse"])).is_err());
    }
}
