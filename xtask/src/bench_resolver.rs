//! `cargo xtask bench-resolver`: requests per second of the GS1 Digital Link resolver's
//! consumer path, driven by `wrk` against a release `agritrace serve`, beside `/healthz` of the
//! same node measured in the same run (the machine is shared, so only ratios compare between
//! runs).
//!
//! Steps: install `wrk` if missing (Debian package); build `agritrace` (release); start it on a
//! fresh data directory; register an organisation, a member with a token and one product
//! through the node's local admin routes; then, for each connection count, run `wrk` for a
//! fixed duration on `/healthz` (the baseline: routing, HTTP and nothing else), on a lot's
//! Digital Link (307 to the default link), on a serialised item's (307, and a scan counted),
//! and on the linkset (200, RFC 9264 JSON). Every answer must be the expected one (`wrk`
//! reports other statuses); the scans counted must equal the serialised requests `wrk` made.
//! Prints a markdown table with the node's CPU and the machine's load average for each run.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::{apt_install, cargo, find_program, free_port, release_dir, root, run, unlimited_rates};

/// Connection counts of the runs (`wrk -c`).
const CONNECTIONS: &[u32] = &[16, 64, 256];
/// `wrk` threads (the machine has 2 cores; the node shares them).
const THREADS: &str = "2";
/// Steady duration of every run.
const SECONDS: u32 = 10;
/// The product registered for the runs.
const GTIN: &str = "06901234567892";
/// The target: resolver requests per second on the consumer path.
const TARGET_RPS: f64 = 10_000.0;

/// The node, stopped when dropped however the benchmark ends.
struct Node(Child);

impl Drop for Node {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One HTTP/1.1 request on a new connection; returns the status and the body.
fn http(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &Value,
) -> Result<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .with_context(|| format!("while connecting to the node for {method} {path}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .context("while setting a timeout")?;
    let body = body.to_string();
    let auth = token.map_or_else(String::new, |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n{auth}\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .with_context(|| format!("while sending {method} {path}"))?;
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .with_context(|| format!("while reading the answer to {method} {path}"))?;
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("no HTTP status in the answer to {method} {path}"))?;
    let body = answer
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    Ok((status, body))
}

fn expect(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &Value,
    want: u16,
) -> Result<Value> {
    let (status, text) = http(port, method, path, token, body)?;
    if status != want {
        bail!("{method} {path} answered {status}, expected {want}: {text}");
    }
    // Chunked bodies carry a size line first; the JSON is between the outer braces.
    let json = text
        .find('{')
        .zip(text.rfind('}'))
        .and_then(|(a, b)| serde_json::from_str(&text[a..=b]).ok())
        .unwrap_or(Value::Null);
    Ok(json)
}

fn wait_for_port(port: u16, node: &mut Node) -> Result<()> {
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Some(status) = node.0.try_wait().context("while checking on the node")? {
            bail!("agritrace serve exited at start ({status})");
        }
        if start.elapsed() > Duration::from_secs(60) {
            bail!("agritrace serve did not listen on port {port} within a minute");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// CPU time of process `pid` so far, in seconds (utime + stime of `/proc/<pid>/stat`).
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // USER_HZ is 100 on Linux for every architecture this runs on.
    Some(ticks / 100.0)
}

/// The 1-minute load average.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned())
}

/// What one `wrk` run reports.
#[derive(Debug, Clone, PartialEq)]
struct WrkResult {
    requests: u64,
    rate: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// Answers other than 2xx/3xx, and socket errors.
    bad: u64,
}

/// A `wrk` duration (`812.00us`, `1.23ms`, `2.01s`) in milliseconds.
fn millis(text: &str) -> Option<f64> {
    let (number, unit) = text
        .find(|c: char| c.is_ascii_alphabetic())
        .map(|i| text.split_at(i))?;
    let value: f64 = number.parse().ok()?;
    Some(match unit {
        "us" => value / 1_000.0,
        "ms" => value,
        "s" => value * 1_000.0,
        "m" => value * 60_000.0,
        _ => return None,
    })
}

/// Reads `wrk --latency` output.
fn parse_wrk(output: &str) -> Option<WrkResult> {
    let mut result = WrkResult {
        requests: 0,
        rate: 0.0,
        p50_ms: 0.0,
        p99_ms: 0.0,
        bad: 0,
    };
    for line in output.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["Requests/sec:", rate] => result.rate = rate.parse().ok()?,
            [requests, "requests", "in", ..] => result.requests = requests.parse().ok()?,
            ["50%", latency] => result.p50_ms = millis(latency)?,
            ["99%", latency] => result.p99_ms = millis(latency)?,
            ["Non-2xx", "or", "3xx", "responses:", n] => result.bad += n.parse::<u64>().ok()?,
            ["Socket", "errors:", rest @ ..] => {
                // connect 0, read 0, write 0, timeout 0
                result.bad += rest
                    .iter()
                    .filter_map(|w| w.trim_end_matches(',').parse::<u64>().ok())
                    .sum::<u64>();
            }
            _ => {}
        }
    }
    (result.rate > 0.0).then_some(result)
}

/// One row of the table.
struct Row {
    measure: &'static str,
    connections: u32,
    result: WrkResult,
    node_cores: f64,
    load: String,
}

fn run_wrk(
    wrk: &Path,
    url: &str,
    connections: u32,
    node_pid: u32,
) -> Result<(WrkResult, f64, String)> {
    let before = cpu_seconds(node_pid);
    let started = Instant::now();
    let output = Command::new(wrk)
        .args([
            "-t",
            THREADS,
            "-c",
            &connections.to_string(),
            "-d",
            &format!("{SECONDS}s"),
            "--latency",
            url,
        ])
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("while running wrk on {url}"))?;
    let elapsed = started.elapsed().as_secs_f64();
    let load = load_average();
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!("wrk failed ({}) on {url}: {text}", output.status);
    }
    let result =
        parse_wrk(&text).with_context(|| format!("wrk printed no result for {url}: {text}"))?;
    let cores = match (before, cpu_seconds(node_pid)) {
        (Some(a), Some(b)) => (b - a) / elapsed,
        _ => f64::NAN,
    };
    Ok((result, cores, load))
}

fn table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| measure | connections | requests/s | ratio to /healthz | p50 ms | p99 ms | \
         other answers | node CPU cores | load average |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for row in rows {
        let baseline = rows
            .iter()
            .find(|r| r.measure == BASELINE && r.connections == row.connections)
            .map_or(f64::NAN, |r| r.result.rate);
        out.push_str(&format!(
            "| {} | {} | {:.0} | {:.3} | {:.2} | {:.2} | {} | {:.2} | {} |\n",
            row.measure,
            row.connections,
            row.result.rate,
            row.result.rate / baseline,
            row.result.p50_ms,
            row.result.p99_ms,
            row.result.bad,
            row.node_cores,
            row.load,
        ));
    }
    out
}

const BASELINE: &str = "baseline: `GET /healthz`";

/// `cargo xtask bench-resolver`.
pub fn bench_resolver() -> Result<()> {
    if find_program("wrk").is_none() {
        apt_install(&["wrk"])?;
    }
    let wrk = find_program("wrk").context("wrk is not installed (apt-get install wrk)")?;
    run(
        "building agritrace (release)",
        cargo().args(["build", "--release", "-p", "api", "--bin", "agritrace"]),
    )?;
    let dir = root().join("target").join("bench-resolver");
    if dir.exists() {
        std::fs::remove_dir_all(&dir)
            .with_context(|| format!("while clearing {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("while creating {}", dir.display()))?;
    let port = free_port()?;
    let log = std::fs::File::create(dir.join("node.log")).context("while creating the node log")?;
    let child = unlimited_rates(&mut Command::new(release_dir().join("agritrace")))
        .arg("serve")
        .env("AGRITRACE_DATA_DIR", dir.join("node"))
        .env("AGRITRACE_HTTP_LISTEN", format!("127.0.0.1:{port}"))
        .env("AGRITRACE_BROKER_PORT", free_port()?.to_string())
        .env("AGRITRACE_LOG", "warn,rumqttd=off")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .context("while starting agritrace serve")?;
    let mut node = Node(child);
    wait_for_port(port, &mut node)?;
    let pid = node.0.id();

    // One organisation, one producer with a token, one product.
    expect(
        port,
        "POST",
        "/v1/admin/orgs",
        None,
        &json!({ "id": "bench-coop", "name": "Bench 合作社", "country": "CN" }),
        201,
    )?;
    expect(
        port,
        "POST",
        "/v1/admin/orgs/bench-coop/members",
        None,
        &json!({ "id": "producer-1", "name": "Producer", "roles": ["producer"] }),
        201,
    )?;
    let token = expect(
        port,
        "POST",
        "/v1/admin/orgs/bench-coop/members/producer-1/tokens",
        None,
        &json!({ "label": "bench" }),
        201,
    )?["token"]
        .as_str()
        .context("no token in the answer")?
        .to_owned();
    expect(
        port,
        "POST",
        "/v1/orgs/bench-coop/products",
        Some(&token),
        &json!({
            "gtin": GTIN, "name_en": "Mango", "name_zh": "芒果",
            "storage_min_c": 10.0, "storage_max_c": 13.0,
        }),
        201,
    )?;

    let base = format!("http://127.0.0.1:{port}");
    let serial_path = format!("/01/{GTIN}/10/LOT-2026-07/21/SN-000001");
    let measures: [(&'static str, String); 4] = [
        (BASELINE, "/healthz".to_owned()),
        (
            "resolver: lot, 307 to the default link",
            format!("/01/{GTIN}/10/LOT-2026-07"),
        ),
        (
            "resolver: serialised, 307 and a scan counted",
            serial_path.clone(),
        ),
        (
            "resolver: lot, `?linkType=linkset` (200 JSON)",
            format!("/01/{GTIN}/10/LOT-2026-07?linkType=linkset"),
        ),
    ];
    let load_before = load_average();
    let mut rows = Vec::new();
    let mut scans_made = 0;
    for &connections in CONNECTIONS {
        for (measure, path) in &measures {
            eprintln!("\n==> {measure}, {connections} connections, {SECONDS} s");
            let (result, node_cores, load) =
                run_wrk(&wrk, &format!("{base}{path}"), connections, pid)?;
            if *path == serial_path {
                scans_made += result.requests;
            }
            rows.push(Row {
                measure,
                connections,
                result,
                node_cores,
                load,
            });
        }
    }
    let scans = expect(
        port,
        "GET",
        &format!("/v1/scans/01/{GTIN}/21/SN-000001"),
        Some(&token),
        &json!({}),
        200,
    )?;
    drop(node);

    println!(
        "\n`cargo xtask bench-resolver`: wrk {THREADS} threads, {SECONDS} s per run, \
         connection counts {CONNECTIONS:?}; load average before the runs {load_before}.\n"
    );
    println!("{}", table(&rows));
    let counted = scans["count"].as_u64().unwrap_or(0);
    println!(
        "Scans counted for the serialised key: {counted}; requests wrk completed on it: \
         {scans_made} (wrk counts only answered requests; the node may have answered a few \
         more as wrk stopped)."
    );
    let worst = rows
        .iter()
        .filter(|r| r.measure != BASELINE)
        .map(|r| r.result.rate)
        .fold(f64::INFINITY, f64::min);
    println!(
        "Slowest resolver run: {worst:.0} requests/s; target above {TARGET_RPS:.0}: {}.",
        if worst > TARGET_RPS { "met" } else { "not met" }
    );
    if rows.iter().any(|r| r.result.bad > 0) {
        bail!("some answers were not the expected ones (see 'other answers')");
    }
    if counted < scans_made {
        bail!("{counted} scans counted for {scans_made} serialised requests");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrk_output_is_read() {
        let output = "Running 10s test @ http://127.0.0.1:1/healthz
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.10ms    1.01ms  30.00ms   90.00%
    Req/Sec    15.20k     1.10k   17.00k    70.00%
  Latency Distribution
     50%  812.00us
     75%    2.50ms
     90%    3.00ms
     99%    1.20s
  302400 requests in 10.00s, 40.10MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:  30240.50
Transfer/sec:      4.01MB
";
        assert_eq!(
            parse_wrk(output),
            Some(WrkResult {
                requests: 302_400,
                rate: 30_240.5,
                p50_ms: 0.812,
                p99_ms: 1_200.0,
                bad: 7,
            })
        );
        assert_eq!(parse_wrk("wrk: connection refused"), None);
    }
}
