//! `cargo xtask cassandra [--keep]`: a real CQL node for the tests, Apache Cassandra 5.0 in a
//! child JVM on loopback, with no Docker engine.
//!
//! The node's lifecycle (jars from Maven Central, configuration, start, stop, kill9, restart)
//! and the little of the CQL native protocol that checks it live in the test-support crate
//! (`test_support::cassandra`), which the storage backend's tests use too; this command
//! installs Java 17 and Maven with apt when they are missing, then drives a node.
//!
//! The command starts a node on a fresh directory (`target/cassandra/node`), checks it
//! (`STARTUP` → `READY`, `SELECT release_version FROM system.local`), writes a row with a
//! lightweight transaction and advances it with conditional updates (a stale one refused), kills
//! the JVM with SIGKILL, restarts it on the same directory and ports, reads the last acknowledged
//! value back, and stops it (SIGTERM, then SIGKILL after a bound), printing how long each step
//! took and the JVM's resident memory. `--keep` stops after the first check and leaves the node
//! running: `CQL at 127.0.0.1:PORT` (its pid is in `node.pid`; the next run refuses to remove
//! the directory of a node still running).

use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};
use test_support::cassandra::{CqlConnection, CqlNode, HEAP, find_java_17, running_node, start};

use crate::{apt_install, find_program, root};

/// Conditional updates the command runs one after another (their mean latency is printed).
const LWT_ROUNDS: i64 = 200;

/// Installs what starting a node needs (Java 17, Maven) with apt when it is missing.
pub fn install_prerequisites() -> Result<()> {
    if find_java_17().is_none() {
        apt_install(&["openjdk-17-jre-headless"])?;
    }
    if find_program("mvn").is_none() {
        apt_install(&["maven"])?;
    }
    Ok(())
}

/// `cargo xtask cassandra [--keep]`.
pub fn cassandra(args: &[String]) -> Result<()> {
    let keep = match args {
        [] => false,
        [flag] if flag == "--keep" => true,
        _ => bail!("usage: cargo xtask cassandra [--keep]"),
    };
    install_prerequisites()?;
    let work = root().join("target").join("cassandra").join("node");
    if let Some(pid) = running_node(&work) {
        bail!(
            "a node left running with --keep still uses {} (pid {pid}); stop it first: kill {pid}",
            work.display()
        );
    }
    if work.exists() {
        std::fs::remove_dir_all(&work)
            .with_context(|| format!("while removing the last node at {}", work.display()))?;
    }
    let mut node = start(&work)?;
    let log = node.dir().join("node.log");
    eprintln!(
        "\n==> the node answered CQL OPTIONS on 127.0.0.1:{} after {:.1} s",
        node.port(),
        node.last_start().as_secs_f64()
    );
    let version = smoke_check(node.port())?;
    eprintln!("==> Apache Cassandra {version}: STARTUP answered READY");
    print_resident_memory(&node);
    if keep {
        let port = node.port();
        let pid = node.leave_running()?;
        eprintln!(
            "==> left running (pid {pid}; stop it with `kill {pid}`); its log: {}",
            log.display()
        );
        println!("CQL at 127.0.0.1:{port}");
        return Ok(());
    }
    lightweight_transaction_survives_kill9(&mut node)?;
    let stopping = Instant::now();
    node.stop()?;
    eprintln!(
        "==> stopped with SIGTERM in {:.1} s; log: {}",
        stopping.elapsed().as_secs_f64(),
        log.display()
    );
    Ok(())
}

/// `STARTUP`, then the node's release version from `system.local`.
fn smoke_check(port: u16) -> Result<String> {
    let mut cql = CqlConnection::connect(port)?;
    cql.startup()?;
    let rows = cql
        .query("SELECT release_version FROM system.local")?
        .into_rows()?;
    ensure!(
        rows.rows.len() == 1,
        "system.local has {} rows, not one",
        rows.rows.len()
    );
    rows.text(0, "release_version")?
        .context("system.local has no release_version")
}

/// A conditional insert is applied once and refused the second time; conditional updates
/// advance an epoch one step at a time and one from a stale epoch is refused; after a SIGKILL
/// and a restart on the same directory, the last acknowledged epoch is there (what the fault
/// tests rely on).
fn lightweight_transaction_survives_kill9(node: &mut CqlNode) -> Result<()> {
    let mut cql = CqlConnection::connect(node.port())?;
    cql.startup()?;
    cql.query(
        "CREATE KEYSPACE IF NOT EXISTS smoke WITH replication = \
         {'class': 'SimpleStrategy', 'replication_factor': 1}",
    )?;
    cql.query("CREATE TABLE IF NOT EXISTS smoke.lease (name text PRIMARY KEY, epoch bigint)")?;
    let insert = "INSERT INTO smoke.lease (name, epoch) VALUES ('sequencer', 1) IF NOT EXISTS";
    let first = cql.query(insert)?.into_rows()?;
    ensure!(
        first.boolean(0, "[applied]")? == Some(true),
        "the first conditional insert was not applied"
    );
    let second = cql.query(insert)?.into_rows()?;
    ensure!(
        second.boolean(0, "[applied]")? == Some(false),
        "the second conditional insert was applied: the lightweight transaction did not hold"
    );
    eprintln!(
        "==> a lightweight transaction (INSERT ... IF NOT EXISTS) applied once, then refused"
    );
    // The fenced sequencer's pattern: advance a value only from the one it was last seen at.
    let started = Instant::now();
    for epoch in 1..=LWT_ROUNDS {
        let advance = cql
            .query(&format!(
                "UPDATE smoke.lease SET epoch = {} WHERE name = 'sequencer' IF epoch = {epoch}",
                epoch + 1
            ))?
            .into_rows()?;
        ensure!(
            advance.boolean(0, "[applied]")? == Some(true),
            "the conditional update from epoch {epoch} was refused"
        );
    }
    let per_round = started.elapsed() / u32::try_from(LWT_ROUNDS)?;
    let stale = cql
        .query("UPDATE smoke.lease SET epoch = 0 WHERE name = 'sequencer' IF epoch = 1")?
        .into_rows()?;
    ensure!(
        stale.boolean(0, "[applied]")? == Some(false),
        "a conditional update from a stale epoch was applied"
    );
    eprintln!(
        "==> {LWT_ROUNDS} conditional updates one after another: {:.2} ms each; \
         one from a stale epoch refused",
        per_round.as_secs_f64() * 1e3
    );
    drop(cql);
    node.kill9()?;
    eprintln!("==> killed the node with SIGKILL; restarting it on the same directory");
    node.restart()?;
    eprintln!(
        "==> restarted: CQL answered after {:.1} s",
        node.last_start().as_secs_f64()
    );
    let mut cql = CqlConnection::connect(node.port())?;
    cql.startup()?;
    let rows = cql
        .query("SELECT epoch FROM smoke.lease WHERE name = 'sequencer'")?
        .into_rows()?;
    ensure!(
        rows.rows.len() == 1,
        "the row written before the SIGKILL is gone"
    );
    let epoch = rows.bigint(0, "epoch")?;
    ensure!(
        epoch == Some(LWT_ROUNDS + 1),
        "after the SIGKILL the epoch is {epoch:?}, not the acknowledged {}",
        LWT_ROUNDS + 1
    );
    eprintln!("==> every acknowledged conditional update survived the SIGKILL");
    print_resident_memory(node);
    Ok(())
}

fn print_resident_memory(node: &CqlNode) {
    match node.resident_bytes() {
        Some(bytes) => eprintln!(
            "==> the JVM's resident memory: {} MiB (heap {HEAP})",
            bytes >> 20
        ),
        None => eprintln!("==> the JVM's resident memory could not be read"),
    }
}
