//! Project automation, in Rust so that it runs the same on every machine: `cargo xtask <task>`.
//!
//! * `test`  — the one command that checks everything: installs what the tests need when it is
//!   missing (Mosquitto, qemu-system-arm, the Cortex-M targets, a nightly toolchain and
//!   cargo-fuzz for the fuzzers, Go for the interop test), then runs formatting, clippy, every
//!   test of the workspace, the Cortex-M builds (the QEMU run is one of the tests), and every
//!   fuzz target for a bounded time. CI runs exactly this.
//! * `devices` — runs simulated devices against a local Mosquitto (installing it if missing).
//! * `bench` — runs the benchmarks whose figures BENCHMARKS.md records.
//! * `fuzz [seconds]` — only the fuzz targets.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};

/// Debian packages the tests start for real, with the program that shows they are installed.
const DEBIAN_PACKAGES: &[(&str, &str)] = &[
    ("mosquitto", "/usr/sbin/mosquitto"),
    ("qemu-system-arm", "/usr/bin/qemu-system-arm"),
];

/// Targets the firmware is built for: the CI target (Cortex-M4F) and the emulated board's.
const CORTEX_M_TARGETS: &[&str] = &["thumbv7em-none-eabihf", "thumbv7m-none-eabi"];

/// How long each fuzz target runs in `test`.
const FUZZ_SECONDS_IN_TEST: u32 = 20;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("test") => test(),
        Some("devices") => devices(&args[1..]),
        Some("bench") => bench(),
        Some("fuzz") => {
            let seconds = args
                .get(1)
                .map(|s| {
                    s.parse::<u32>()
                        .context("while reading the fuzz time in seconds")
                })
                .transpose();
            seconds.and_then(|s| fuzz(s.unwrap_or(60)))
        }
        _ => {
            eprintln!(
                "usage: cargo xtask <task>\n\n\
                 tasks:\n  \
                 test              install what the tests need, then run every check CI runs\n  \
                 devices [ARGS..]  run simulated devices against a local Mosquitto (ARGS go to agritrace-device)\n  \
                 bench             run the benchmarks recorded in BENCHMARKS.md\n  \
                 fuzz [SECONDS]    run every fuzz target for SECONDS each (default 60)"
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
    run("formatting", cargo().args(["fmt", "--all", "--check"]))?;
    run(
        "clippy, warnings denied",
        cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]),
    )?;
    run(
        "tests of the whole workspace",
        cargo().args(["test", "--workspace"]),
    )?;
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
    fuzz(FUZZ_SECONDS_IN_TEST)?;
    eprintln!("\nall checks passed");
    Ok(())
}

fn install_debian_packages() -> Result<()> {
    let missing: Vec<&str> = DEBIAN_PACKAGES
        .iter()
        .filter(|(_, program)| !Path::new(program).exists())
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
    if !succeeds("cargo", &["fuzz", "--version"]) {
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

fn fuzz(seconds: u32) -> Result<()> {
    install_fuzzing()?;
    let targets = fuzz_targets()?;
    if targets.is_empty() {
        bail!("no fuzz targets found under fuzz/fuzz_targets");
    }
    for target in targets {
        run(
            &format!("fuzzing {target} for {seconds} s"),
            cargo().args([
                "+nightly",
                "fuzz",
                "run",
                &target,
                "--",
                &format!("-max_total_time={seconds}"),
                "-max_len=70000",
            ]),
        )?;
    }
    Ok(())
}

fn bench() -> Result<()> {
    run(
        "signing and verification",
        cargo().args(["bench", "-p", "protocol", "--bench", "signing"]),
    )?;
    for bench in ["append", "proofs", "restart"] {
        run(
            &format!("ledger: {bench}"),
            cargo().args(["bench", "-p", "ledger", "--bench", bench]),
        )?;
    }
    Ok(())
}

fn devices(args: &[String]) -> Result<()> {
    install_debian_packages()?;
    let data = root().join("target").join("demo");
    std::fs::create_dir_all(&data).context("while creating target/demo")?;
    let config = data.join("mosquitto.conf");
    std::fs::write(
        &config,
        "listener 1883 127.0.0.1\nallow_anonymous true\npersistence false\n\
         max_queued_messages 0\nmax_inflight_messages 100\n",
    )
    .context("while writing the broker configuration")?;
    let mut broker = Command::new("/usr/sbin/mosquitto")
        .arg("-c")
        .arg(&config)
        .spawn()
        .context("while starting mosquitto")?;
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
                "127.0.0.1:1883",
                "--keys-dir",
            ])
            .arg(data.join("keys"))
            .args(args),
    );
    let _ = broker.kill();
    let _ = broker.wait();
    result
}
