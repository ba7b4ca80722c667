//! Project automation, in Rust so that it runs the same on every machine: `cargo xtask <task>`.
//!
//! * `test`  — the one command that checks everything: installs what the tests need when it is
//!   missing (Mosquitto, qemu-system-arm, the Cortex-M targets, a nightly toolchain and
//!   cargo-fuzz for the fuzzers, Go for the interop test, `openapi-spec-validator` for the
//!   API description, Debian's Chromium and npm for the browser tests), then runs formatting,
//!   clippy, every test of the workspace, the ScyllaDB backend's tests against a real
//!   Cassandra node ([`cassandra`]), the browser tests ([`browser`]), the Cortex-M builds (the QEMU run is one of the tests), and every
//!   fuzz target for a bounded time. CI runs exactly this.
//! * `devices` — runs simulated devices against a local Mosquitto (installing it if missing).
//! * `test-browser` — only the browser tests: a seeded node and its pages in Chromium.
//! * `demo` — builds and starts the node (`agritrace serve`, in-process broker) on a data
//!   directory under `target/demo`, seeds a demo lot (the browser tests' seed), registers 30
//!   simulated devices and streams their readings, printing where to look (the lot's consumer
//!   page among them), until Ctrl-C.
//! * `cassandra [--keep]` — a real single-node Apache Cassandra 5.0 (jars from Maven Central) on
//!   loopback: started, checked over the CQL native protocol, stopped ([`cassandra`]).
//! * `bench` — runs the benchmarks whose figures BENCHMARKS.md records.
//! * `bench-node` — the node's readings through Mosquitto to the log: throughput and latency
//!   beside a broker-only baseline and the verification ceiling ([`bench_node`]).
//! * `bench-resolver` — the GS1 Digital Link resolver's requests/s with `wrk`, beside
//!   `/healthz` of the same node ([`bench_resolver`]).
//! * `bench-trace [--keep|--reuse]` — trace and recall latency of a lot with 50 events and
//!   10,000 readings in a store of over a million, beside `/healthz` ([`bench_trace`]).
//! * `bench-evidence [--readings N] [--keep]` — export time of a shipment's evidence bundle
//!   with 100,000 readings, beside Ed25519 verifications per second ([`bench_evidence`]).
//! * `fuzz [seconds]` — only the fuzz targets.

mod bench_evidence;
mod bench_node;
mod bench_resolver;
mod bench_trace;
mod browser;
mod cassandra;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};

/// Debian packages the tests start for real, with the program that shows they are installed.
const DEBIAN_PACKAGES: &[(&str, &str)] = &[
    ("mosquitto", "mosquitto"),
    ("qemu-system-arm", "qemu-system-arm"),
];

/// Targets the firmware is built for: the CI target (Cortex-M4F) and the emulated board's.
const CORTEX_M_TARGETS: &[&str] = &["thumbv7em-none-eabihf", "thumbv7m-none-eabi"];

/// Iterations of each fuzz target in `test`, and a time guard in case a target is slow.
const FUZZ_RUNS_IN_TEST: u32 = 100_000;
const FUZZ_SECONDS_GUARD: u32 = 60;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("test") => test(),
        Some("devices") => devices(&args[1..]),
        Some("demo") => demo(),
        Some("test-browser") => browser::test_browser(false),
        Some("bench") => bench(),
        Some("bench-node") => bench_node::bench_node(),
        Some("bench-resolver") => bench_resolver::bench_resolver(),
        Some("bench-trace") => bench_trace::bench_trace(&args[1..]),
        Some("bench-evidence") => bench_evidence::bench_evidence(&args[1..]),
        Some("cassandra") => cassandra::cassandra(&args[1..]),
        Some("fuzz") => {
            let runs = args
                .get(1)
                .map(|s| {
                    s.parse::<u32>()
                        .context("while reading the number of fuzz runs")
                })
                .transpose();
            runs.and_then(|r| fuzz(r.unwrap_or(1_000_000), 600))
        }
        _ => {
            eprintln!(
                "usage: cargo xtask <task>\n\n\
                 tasks:\n  \
                 test              install what the tests need, then run every check CI runs\n  \
                 devices [ARGS..]  run simulated devices against a local Mosquitto (ARGS go to agritrace-device)\n  \
                 test-browser      the pages in Debian's Chromium (playwright-core) against a seeded node\n  \
                 demo              run the node with 30 simulated devices streaming; prints where to look\n  \
                 bench             run the benchmarks recorded in BENCHMARKS.md\n  \
                 bench-node        the node through Mosquitto: readings/s and latency beside a broker baseline\n  \
                 bench-resolver    the Digital Link resolver with wrk: requests/s beside /healthz\n  \
                 bench-trace       trace latency over a million readings, beside /healthz (--keep, --reuse)\n  \
                 bench-evidence    evidence bundle export of 100,000 readings, beside Ed25519 verifications/s (--readings N, --keep)\n  \
                 cassandra [--keep] a real Cassandra 5.0 node (Maven Central) on loopback: start, check over CQL, stop\n  \
                 fuzz [RUNS]       run every fuzz target for RUNS iterations (default 1000000)"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("xtask: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn root() -> PathBuf {
    // xtask/ is one level below the workspace root.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

fn run(description: &str, command: &mut Command) -> Result<()> {
    eprintln!("\n==> {description}");
    let status = command
        .current_dir(root())
        .status()
        .with_context(|| format!("while starting: {description}"))?;
    if !status.success() {
        bail!("failed ({status}): {description}");
    }
    Ok(())
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()))
}

fn succeeds(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}

fn test() -> Result<()> {
    install_debian_packages()?;
    install_rust_targets()?;
    require_go()?;
    require_openapi_validator()?;
    run("formatting", cargo().args(["fmt", "--all", "--check"]))?;
    // The Cortex-M image and the fuzz targets are workspaces of their own.
    for manifest in ["firmware/lm3s6965evb/Cargo.toml", "fuzz/Cargo.toml"] {
        run(
            &format!("formatting of {manifest}"),
            cargo().args(["fmt", "--check", "--manifest-path", manifest]),
        )?;
    }
    run(
        "clippy, warnings denied",
        cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
            // The ScyllaDB backend is behind features; lint it too.
            "--features",
            "ledger/scylla,ledger/contract-tests,ingest/scylla",
            "--",
            "-D",
            "warnings",
        ]),
    )?;
    // The system tests (tests/) run the node and the devices as processes: the binaries must
    // be current before any test starts.
    run(
        "the binaries the system tests run",
        cargo().args(["build", "--workspace", "--bins"]),
    )?;
    run(
        "tests of the whole workspace",
        cargo().args(["test", "--workspace"]),
    )?;
    // The ScyllaDB backend against a real CQL node (Apache Cassandra from Maven Central, one
    // node per test binary): its tests need the `scylla` features, which the workspace run
    // leaves off, so they run here, in one invocation sharing one build.
    cassandra::install_prerequisites()?;
    run(
        "the ScyllaDB backend against a real Cassandra node",
        cargo().args([
            "test",
            "-p",
            "ledger",
            "-p",
            "ingest",
            "--features",
            "ledger/scylla,ledger/contract-tests,ingest/scylla",
            "--test",
            "scylla_storage",
            "--test",
            "scylla_ingest",
        ]),
    )?;
    // The pages in a real browser, on the binaries built above.
    browser::test_browser(true)?;
    run(
        "no_std crates for a Cortex-M4F (thumbv7em-none-eabihf)",
        cargo().args([
            "build",
            "--target",
            "thumbv7em-none-eabihf",
            "-p",
            "protocol",
            "-p",
            "firmware",
            "-p",
            "hardware",
            "--features",
            "hardware/sim",
            "-p",
            "ledger",
            "--no-default-features",
        ]),
    )?;
    fuzz(FUZZ_RUNS_IN_TEST, FUZZ_SECONDS_GUARD)?;
    eprintln!("\nall checks passed");
    Ok(())
}

fn install_debian_packages() -> Result<()> {
    let missing: Vec<&str> = DEBIAN_PACKAGES
        .iter()
        .filter(|(_, program)| find_program(program).is_none())
        .map(|(package, _)| *package)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    apt_install(&missing)
}

fn apt_install(packages: &[&str]) -> Result<()> {
    let as_root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    let mut prefix: Vec<&str> = Vec::new();
    if !as_root {
        if !succeeds("sudo", &["-n", "true"]) {
            bail!(
                "the tests need the Debian packages {packages:?}; install them as root \
                 (apt-get install {}) or run this command as root",
                packages.join(" ")
            );
        }
        prefix.push("sudo");
    }
    let command = |args: &[&str]| {
        let mut all = prefix.clone();
        all.extend_from_slice(args);
        let mut c = Command::new(all[0]);
        c.args(&all[1..]).env("DEBIAN_FRONTEND", "noninteractive");
        c
    };
    run("apt-get update", &mut command(&["apt-get", "update"]))?;
    let mut install = vec!["apt-get", "install", "-y", "--no-install-recommends"];
    install.extend_from_slice(packages);
    run(
        &format!("installing {}", packages.join(", ")),
        &mut command(&install),
    )?;
    // Debian may start a system-wide broker on port 1883; the tests start their own on free
    // ports, so it is only stopped to keep the machine as it was.
    if packages.contains(&"mosquitto") {
        let _ = command(&["service", "mosquitto", "stop"]).output();
    }
    Ok(())
}

fn install_rust_targets() -> Result<()> {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .context("while asking rustup for the installed targets (is rustup installed?)")?;
    let installed = String::from_utf8_lossy(&installed.stdout);
    for target in CORTEX_M_TARGETS {
        if !installed.lines().any(|line| line.trim() == *target) {
            run(
                &format!("adding the {target} target"),
                Command::new("rustup").args(["target", "add", target]),
            )?;
        }
    }
    Ok(())
}

fn require_go() -> Result<()> {
    if succeeds("go", &["version"]) {
        return Ok(());
    }
    apt_install(&["golang-go"])
}

/// The independent OpenAPI validator the API's tests run over `/openapi.json`, from PyPI.
fn require_openapi_validator() -> Result<()> {
    if succeeds("openapi-spec-validator", &["--version"]) {
        return Ok(());
    }
    let pip = ["-m", "pip", "install", "--quiet", "openapi-spec-validator"];
    if succeeds("python3", &pip) {
        return Ok(());
    }
    // Debian's own Python refuses system-wide pip installs unless told.
    let mut forced = pip.to_vec();
    forced.push("--break-system-packages");
    run(
        "installing openapi-spec-validator",
        Command::new("python3").args(&forced),
    )
}

fn install_fuzzing() -> Result<()> {
    if !succeeds("rustup", &["run", "nightly", "rustc", "--version"]) {
        run(
            "installing a nightly toolchain for cargo fuzz",
            Command::new("rustup").args([
                "toolchain",
                "install",
                "nightly",
                "--profile",
                "minimal",
            ]),
        )?;
    }
    if !succeeds("rustup", &["run", "nightly", "cargo", "fuzz", "--version"]) {
        run(
            "installing cargo-fuzz",
            cargo().args(["install", "--locked", "cargo-fuzz"]),
        )?;
    }
    Ok(())
}

fn fuzz_targets() -> Result<Vec<String>> {
    let dir = root().join("fuzz").join("fuzz_targets");
    let mut targets = Vec::new();
    for entry in
        std::fs::read_dir(&dir).with_context(|| format!("while listing {}", dir.display()))?
    {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "rs")
            && let Some(stem) = path.file_stem()
        {
            targets.push(stem.to_string_lossy().into_owned());
        }
    }
    targets.sort();
    Ok(targets)
}

/// Runs every fuzz target for `runs` iterations (or `seconds`, whichever comes first).
/// `cargo +nightly` only works through the rustup proxy, and under `cargo xtask` the `CARGO`
/// variable names the toolchain's own cargo, so nightly is selected with `rustup run`.
fn fuzz(runs: u32, seconds: u32) -> Result<()> {
    install_fuzzing()?;
    let targets = fuzz_targets()?;
    if targets.is_empty() {
        bail!("no fuzz targets found under fuzz/fuzz_targets");
    }
    for target in targets {
        let mut command = Command::new("rustup");
        command.args(["run", "nightly", "cargo", "fuzz", "run", &target]);
        // Committed seeds (`fuzz/seeds/<target>/`: valid inputs a mutator would take long to
        // find, such as a whole evidence bundle) are read beside the working corpus, which
        // `cargo fuzz` keeps in `fuzz/corpus/<target>/` and which stays uncommitted.
        let seeds = root().join("fuzz").join("seeds").join(&target);
        if seeds.is_dir() {
            let corpus = root().join("fuzz").join("corpus").join(&target);
            std::fs::create_dir_all(&corpus)
                .with_context(|| format!("while creating {}", corpus.display()))?;
            command.arg(corpus).arg(seeds);
        }
        command.args([
            "--",
            &format!("-runs={runs}"),
            &format!("-max_total_time={seconds}"),
            "-max_len=70000",
        ]);
        run(&format!("fuzzing {target}: {runs} runs"), &mut command)?;
    }
    Ok(())
}

fn bench() -> Result<()> {
    run(
        "signing and verification",
        cargo().args([
            "bench",
            "-p",
            "protocol",
            "--features",
            "batch",
            "--bench",
            "signing",
        ]),
    )?;
    for bench in ["append", "proofs", "restart"] {
        run(
            &format!("ledger: {bench}"),
            cargo().args(["bench", "-p", "ledger", "--bench", bench]),
        )?;
    }
    install_debian_packages()?;
    bench_node::bench_node()?;
    bench_resolver::bench_resolver()?;
    bench_trace::bench_trace(&[])?;
    run(
        "offline verification of an evidence bundle",
        cargo().args(["bench", "-p", "agritrace-verify", "--bench", "evidence"]),
    )?;
    bench_evidence::bench_evidence(&[])
}

fn devices(args: &[String]) -> Result<()> {
    install_debian_packages()?;
    // `cargo xtask devices -- ARGS` and `cargo xtask devices ARGS` both work.
    let args = match args.first() {
        Some(first) if first == "--" => &args[1..],
        _ => args,
    };
    let mosquitto = find_program("mosquitto").context("mosquitto is not installed")?;
    let port = free_port()?;
    let data = root().join("target").join("demo");
    std::fs::create_dir_all(&data).context("while creating target/demo")?;
    let config = data.join("mosquitto.conf");
    std::fs::write(
        &config,
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n\
             max_queued_messages 0\nmax_inflight_messages 100\n"
        ),
    )
    .context("while writing the broker configuration")?;
    let mut broker = Command::new(mosquitto)
        .arg("-c")
        .arg(&config)
        .spawn()
        .context("while starting mosquitto")?;
    std::thread::sleep(std::time::Duration::from_millis(300));
    if let Some(status) = broker.try_wait().context("while checking on mosquitto")? {
        bail!("mosquitto exited at start ({status})");
    }
    eprintln!("mosquitto listens on 127.0.0.1:{port}");
    let result = run(
        "simulated devices (Ctrl-C to stop)",
        cargo()
            .args([
                "run",
                "--release",
                "-p",
                "firmware",
                "--features",
                "host",
                "--bin",
                "agritrace-device",
                "--",
                "--broker",
                &format!("127.0.0.1:{port}"),
                "--keys-dir",
            ])
            .arg(data.join("keys"))
            .args(args),
    );
    let _ = broker.kill();
    let _ = broker.wait();
    result
}

/// Finds `program` on `PATH`, or in `/usr/sbin` and `/sbin` where Debian installs daemons.
fn find_program(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// Rate limits a benchmark's client never reaches: one address makes every request of a
/// benchmark, which the node's default limits would refuse; the limiter still runs, so its
/// cost is part of what is measured.
fn unlimited_rates(command: &mut Command) -> &mut Command {
    for class in ["PUBLIC", "LOG", "READ", "WRITE", "FAILED_AUTH"] {
        command.env(format!("AGRITRACE_RATE_LIMIT_{class}"), "6000000/1000000");
    }
    command
}

/// A TCP port on loopback that nothing listens on right now.
fn free_port() -> Result<u16> {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").context("while finding a free port")?;
    Ok(listener
        .local_addr()
        .context("while finding a free port")?
        .port())
}

/// Simulated devices of the demo, and the id of the first (fleet prefix `a9000000`, index 0).
const DEMO_DEVICES: &str = "30";
const DEMO_FIRST_DEVICE: &str = "a900000000000000";

/// The public key (hex) of `device` in an `agritrace-device` manifest.
fn demo_device_key(manifest: &Path, device: &str) -> Result<String> {
    let text = std::fs::read_to_string(manifest)
        .with_context(|| format!("while reading {}", manifest.display()))?;
    let manifest: serde_json::Value =
        serde_json::from_str(&text).context("while parsing the device manifest")?;
    manifest["devices"]
        .as_array()
        .and_then(|devices| devices.iter().find(|d| d["device_id"] == device))
        .and_then(|d| d["public_key"].as_str())
        .map(str::to_owned)
        .with_context(|| format!("device {device} is not in the manifest"))
}

/// Where cargo puts the release binaries.
fn release_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| root().join("target"), PathBuf::from)
        .join("release")
}

/// Kills the node when the demo ends, however it ends.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn demo() -> Result<()> {
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
    // Its own command: `required-features` of a binary are only met by the package's own
    // `--features`.
    run(
        "building agritrace-device (release)",
        cargo().args([
            "build",
            "--release",
            "-p",
            "firmware",
            "--features",
            "host",
            "--bin",
            "agritrace-device",
        ]),
    )?;
    let bin = release_dir();
    let demo = root().join("target").join("demo");
    let data = demo.join("node");
    let keys = demo.join("node-keys");
    std::fs::create_dir_all(&demo).context("while creating target/demo")?;
    let http_port = free_port()?;
    let broker_port = free_port()?;
    let http = format!("127.0.0.1:{http_port}");
    let mut node = Child(
        Command::new(bin.join("agritrace"))
            .args(["serve", "--http-listen", &http, "--broker-port"])
            .arg(broker_port.to_string())
            .arg("--data-dir")
            .arg(&data)
            .spawn()
            .context("while starting agritrace serve")?,
    );
    // The node is up once its HTTP port accepts connections.
    let mut attempts = 0;
    while std::net::TcpStream::connect(&http).is_err() {
        if let Some(status) = node.0.try_wait().context("while checking on the node")? {
            bail!("agritrace serve exited at start ({status})");
        }
        attempts += 1;
        if attempts > 600 {
            bail!("agritrace serve did not listen on {http} within a minute");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let device = |extra: &[&str]| {
        let mut command = Command::new(bin.join("agritrace-device"));
        command
            .args(["--devices", DEMO_DEVICES, "--keys-dir"])
            .arg(&keys)
            .args(extra);
        command
    };
    run(
        "provisioning the simulated devices",
        &mut device(&["--provision-only"]),
    )?;
    run(
        "registering their keys with the node",
        Command::new(bin.join("agritrace"))
            .args(["device", "import"])
            .arg(keys.join("manifest.json"))
            .args(["--http-listen", &http, "--data-dir"])
            .arg(&data),
    )?;
    // A demo lot with its journey, logger readings and a certificate, for the consumer page.
    // The demo goes on without it if seeding fails (the devices still stream); it says why.
    let seed_dir = demo.join("seed");
    let seeded = browser::seeded_already(http_port, &seed_dir).or_else(|| {
        browser::seed(&bin, &seed_dir, node.0.id(), http_port, broker_port)
            .map_err(|e| eprintln!("xtask: the demo lot was not seeded: {e:#}"))
            .ok()
    });
    let pages = seeded.map_or_else(
        || "  (the demo lot was not seeded, see above)\n  ".to_owned(),
        |s| {
            format!(
                "a lot's consumer page (open it in a browser): http://{http}{page}\n  \
                 customs console:     http://{http}/login?next=/console \
                 (sign in with the officer's token {customs})\n  \
                 data entry:          http://{http}/login?next=/entry \
                 (sign in with the clerk's token {clerk})\n  ",
                page = s.lot_path,
                customs = s.customs_token,
                clerk = s.clerk_token,
            )
        },
    );
    let anchor = format!("http://{http}/v1/devices/{DEMO_FIRST_DEVICE}/readings/0");
    let device_key = demo_device_key(&keys.join("manifest.json"), DEMO_FIRST_DEVICE)?;
    eprintln!(
        "\n==> the node runs; look at:\n  \
         {pages}metrics:             curl http://{http}/metrics\n  \
         latest checkpoint:   curl http://{http}/log/checkpoint\n  \
         a reading's anchor:  curl {anchor}/anchor\n  \
         verify it offline:   curl -so reading.proof {anchor}/proof && \
         {verify} --reading-proof reading.proof --device-key {device_key} \
         --log-key \"$(curl -s http://{http}/v1/log/key)\"\n  \
         (the first readings are anchored within a few seconds; Ctrl-C stops everything)",
        verify = bin.join("agritrace-verify").display(),
    );
    let result = run(
        "30 simulated devices streaming (Ctrl-C to stop)",
        &mut device(&[
            "--broker",
            &format!("127.0.0.1:{broker_port}"),
            "--sample-period",
            "10s",
            "--time-scale",
            "10",
        ]),
    );
    drop(node);
    result
}
