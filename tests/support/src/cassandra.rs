//! A real CQL node for tests: Apache Cassandra 5.0 in a child JVM on loopback, with no Docker
//! engine, and just enough of the CQL native protocol (v4) to see it answer.
//!
//! The jars come from Maven Central through the project's own POM (`tests/cassandra/pom.xml`)
//! and are kept in `target/cassandra/lib` (resolved again only when the POM changes). The node
//! runs with the project's own `tests/cassandra/cassandra.yaml` (ports and directories filled
//! in at start) and `tests/cassandra/logback.xml`, as `java` + the JPMS flags Cassandra 5.0
//! needs on Java 17 + `org.apache.cassandra.service.CassandraDaemon`. It counts as up when its
//! native port answers a CQL `OPTIONS` request with `SUPPORTED`: this file speaks that much of
//! the native protocol (v4) itself, over std TCP, with no driver.
//!
//! [`start`] and [`CqlNode`] (`stop`, `kill9`, `restart`) serve `cargo xtask cassandra` and the
//! storage backend's tests; [`shared_node`] is one node per test process, started on first use
//! and killed (its directory removed) when the process exits. [`CqlConnection`] is only what
//! starting and checking a node needs, not a driver (the backend uses the `scylla` crate).
//! Java 17 and Maven must be installed (`cargo xtask test` installs them); a missing one is an
//! error naming the Debian package, never a skipped test.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};

/// The JVM's heap (`-Xms` = `-Xmx`, as Cassandra recommends); the node's memtables and caches
/// in `cassandra.yaml` are sized for it.
pub const HEAP: &str = "1G";
/// How long a node may take from `java` to a CQL answer (about 12 s on an idle 2-core machine;
/// CI may be busy building).
const START_PATIENCE: Duration = Duration::from_secs(180);
/// How long a node may take to exit on SIGTERM before it is killed (it flushes its memtables).
const STOP_PATIENCE: Duration = Duration::from_secs(60);
/// The running JVM's pid, in the node's directory (so that a kept node is not removed).
pub const PID_FILE: &str = "node.pid";
/// Read and write time-out of one CQL request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest response body accepted from the node; a longer length is a broken stream.
const RESPONSE_BODY_BYTES_MAX: usize = 16 << 20;
/// How deeply column types may nest (`list<map<text, frozen<tuple<...>>>>`) before a response
/// is refused, so that a hostile type cannot exhaust the stack.
const TYPE_DEPTH_MAX: u32 = 16;

/// The JPMS flags of Cassandra's `conf/jvm17-server.options` (5.0): the server reaches into
/// JDK internals (memory-mapped files, `Unsafe`, the attach API to measure object sizes, RMI
/// for JMX).
/// Without them the JVM exits at once (status 3): "FATAL: Cassandra is unable to access required
/// classes" (`IllegalAccessException` on `sun.nio.ch.DirectBuffer.cleaner`).
const JPMS_FLAGS: &[&str] = &[
    "-Djdk.attach.allowAttachSelf=true",
    "--add-exports=java.base/jdk.internal.misc=ALL-UNNAMED",
    "--add-exports=java.management.rmi/com.sun.jmx.remote.internal.rmi=ALL-UNNAMED",
    "--add-exports=java.rmi/sun.rmi.registry=ALL-UNNAMED",
    "--add-exports=java.rmi/sun.rmi.server=ALL-UNNAMED",
    "--add-exports=java.sql/java.sql=ALL-UNNAMED",
    "--add-exports=java.base/java.lang.ref=ALL-UNNAMED",
    "--add-exports=jdk.unsupported/sun.misc=ALL-UNNAMED",
    "--add-exports=jdk.compiler/com.sun.tools.javac.file=ALL-UNNAMED",
    "--add-exports=jdk.attach/sun.tools.attach=ALL-UNNAMED",
    "--add-opens=java.base/java.lang.module=ALL-UNNAMED",
    "--add-opens=java.base/jdk.internal.loader=ALL-UNNAMED",
    "--add-opens=java.base/jdk.internal.ref=ALL-UNNAMED",
    "--add-opens=java.base/jdk.internal.reflect=ALL-UNNAMED",
    "--add-opens=java.base/jdk.internal.math=ALL-UNNAMED",
    "--add-opens=java.base/jdk.internal.module=ALL-UNNAMED",
    "--add-opens=java.base/jdk.internal.util.jar=ALL-UNNAMED",
    "--add-opens=jdk.management/com.sun.management.internal=ALL-UNNAMED",
    "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED",
    "--add-opens=java.base/java.io=ALL-UNNAMED",
    "--add-opens=java.base/java.lang.reflect=ALL-UNNAMED",
    "--add-opens=jdk.compiler/com.sun.tools.javac=ALL-UNNAMED",
    "--add-opens=java.base/java.lang=ALL-UNNAMED",
    "--add-opens=java.base/java.util=ALL-UNNAMED",
    // Netty allocates direct buffers through `Unsafe` only when allowed to.
    "-Dio.netty.tryReflectionSetAccessible=true",
];

/// JVM options of our own, beyond the JPMS flags.
const JVM_OPTIONS: &[&str] = &[
    // Cassandra's start-up check asks for it: a node that ran out of heap must not go on.
    "-XX:+ExitOnOutOfMemoryError",
    "-XX:+UseG1GC",
    // A single seed needs no wait for gossip to settle (5 s or more at every start otherwise).
    "-Dcassandra.skip_wait_for_gossip_to_settle=0",
    // Logs to standard output (the node's log file), no log files of Cassandra's own.
    "-Dcassandra-foreground=true",
];

/// The JVM, killed when dropped.
struct Guard {
    child: Child,
}

impl Guard {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then SIGKILL (on drop) if it has not exited within `patience`.
    fn stop(mut self, patience: Duration) {
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
        eprintln!("the Cassandra node did not stop on SIGTERM; killing it");
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The workspace root (this crate is `tests/support`).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// Finds `program` on `PATH`, or in `/usr/sbin` and `/sbin`.
fn find_program(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// The pid of a Cassandra JVM still running from `work` (its `node.pid`), if any.
#[must_use]
pub fn running_node(work: &Path) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(work.join(PID_FILE))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let needle = b"org.apache.cassandra.service.CassandraDaemon";
    cmdline
        .windows(needle.len())
        .any(|w| w == needle)
        .then_some(pid)
}

/// The node this test process shares between its tests: started on first use in a directory
/// of its own under the system's temporary directory; when the process exits, a watcher kills
/// the JVM and removes the directory (statics are never dropped). Tests isolate themselves by
/// keyspace. Panics, saying why, if the node cannot start (Java 17 or Maven missing, a port
/// taken, the JVM failing).
pub fn shared_node() -> &'static SharedNode {
    static NODE: OnceLock<SharedNode> = OnceLock::new();
    NODE.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("cql-node-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let node = start(&dir).unwrap_or_else(|error| {
            panic!("cannot start the Cassandra node for the tests: {error:#}")
        });
        let pid = node
            .pid()
            .unwrap_or_else(|| panic!("the node started without a process"));
        // Polls the test process once a second; once it is gone, kills the JVM and removes
        // the node's directory.
        let watcher = Command::new("sh")
            .args([
                "-c",
                "while kill -0 \"$0\" 2>/dev/null; do sleep 1; done; \
                 kill -9 \"$1\" 2>/dev/null; sleep 1; rm -rf \"$2\"",
            ])
            .arg(std::process::id().to_string())
            .arg(pid.to_string())
            .arg(node.dir())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        if let Err(error) = watcher {
            panic!("cannot start the watcher of the Cassandra node: {error}");
        }
        eprintln!(
            "the Cassandra node for these tests answers CQL on 127.0.0.1:{} (started in {:.1} s)",
            node.port(),
            node.last_start().as_secs_f64()
        );
        let port = node.port();
        node.leave_running()
            .unwrap_or_else(|error| panic!("the shared node: {error:#}"));
        SharedNode { port }
    })
}

/// The node of [`shared_node`].
#[derive(Debug)]
pub struct SharedNode {
    port: u16,
}

impl SharedNode {
    /// The CQL native transport port on 127.0.0.1.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:PORT`, a driver's contact point.
    #[must_use]
    pub fn contact_point(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

/// A Cassandra node in a child JVM, on loopback, with its directory. Dropped, it is killed.
pub struct CqlNode {
    /// The CQL native transport port on 127.0.0.1.
    port: u16,
    /// Data, commit log, caches, hints, the configuration and `node.log`.
    dir: PathBuf,
    java: PathBuf,
    lib: PathBuf,
    /// `None` while the node is stopped (after `stop` or `kill9`, before `restart`).
    guard: Option<Guard>,
    /// From `java` to the first CQL answer, at the last (re)start.
    last_start: Duration,
}

impl fmt::Debug for CqlNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CqlNode")
            .field("port", &self.port)
            .field("dir", &self.dir)
            .field("pid", &self.guard.as_ref().map(Guard::pid))
            .finish_non_exhaustive()
    }
}

/// Starts a node in `work` (created; it must not hold a node already): obtains Java 17 and the
/// jars if missing, writes the configuration with free ports, starts the JVM and waits until
/// CQL answers.
pub fn start(work: &Path) -> Result<CqlNode> {
    let java = require_java()?;
    let lib = require_jars()?;
    let config = work.join("cassandra.yaml");
    ensure!(
        !config.exists(),
        "{} holds a node already; restart it, or start on a fresh directory",
        work.display()
    );
    std::fs::create_dir_all(work).with_context(|| format!("while creating {}", work.display()))?;
    let dir = work
        .canonicalize()
        .with_context(|| format!("while resolving {}", work.display()))?;
    let port = crate::free_port();
    let storage_port = loop {
        let candidate = crate::free_port();
        if candidate != port {
            break candidate;
        }
    };
    let template = root()
        .join("tests")
        .join("cassandra")
        .join("cassandra.yaml");
    let template = std::fs::read_to_string(&template)
        .with_context(|| format!("while reading {}", template.display()))?;
    let text = configuration(&template, &dir, port, storage_port)?;
    std::fs::write(&config, text).with_context(|| format!("while writing {}", config.display()))?;
    let mut node = CqlNode {
        port,
        dir,
        java,
        lib,
        guard: None,
        last_start: Duration::ZERO,
    };
    node.launch()?;
    Ok(node)
}

/// The project's `cassandra.yaml` with the node's ports and directory filled in.
fn configuration(template: &str, dir: &Path, port: u16, storage_port: u16) -> Result<String> {
    let dir = dir
        .to_str()
        .with_context(|| format!("the node's directory {} is not UTF-8", dir.display()))?;
    // The directory goes into YAML unquoted: only characters that need no quoting.
    ensure!(
        dir.starts_with('/')
            && dir
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "/._-+".contains(c)),
        "the node's directory {dir} must be absolute and use only letters, digits and /._-+"
    );
    let text = template
        .replace("@NATIVE_PORT@", &port.to_string())
        .replace("@STORAGE_PORT@", &storage_port.to_string())
        .replace("@DIR@", dir);
    if let Some(left) = leftover_placeholder(&text) {
        bail!("tests/cassandra/cassandra.yaml has a placeholder this code does not fill: {left}");
    }
    Ok(text)
}

/// The first `@NAME@` (capitals and underscores between two `@`) left in `text`.
fn leftover_placeholder(text: &str) -> Option<&str> {
    text.match_indices('@').find_map(|(start, _)| {
        let rest = &text[start + 1..];
        let end = rest.find('@')?;
        let name = &rest[..end];
        (!name.is_empty() && name.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
            .then(|| &text[start..start + end + 2])
    })
}

impl CqlNode {
    /// The CQL native transport port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The node's directory (data, commit log, `cassandra.yaml`, `node.log`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The JVM's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.guard.as_ref().map(Guard::pid)
    }

    /// From `java` to the first CQL answer, at the last (re)start.
    pub fn last_start(&self) -> Duration {
        self.last_start
    }

    /// The JVM's resident set size, from `/proc` (Linux), while it runs.
    pub fn resident_bytes(&self) -> Option<u64> {
        let pid = self.guard.as_ref()?.pid();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let kib = status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))?
            .trim()
            .strip_suffix("kB")?
            .trim()
            .parse::<u64>()
            .ok()?;
        Some(kib * 1024)
    }

    /// Stops the node: SIGTERM (it flushes and exits), SIGKILL if it has not exited within a
    /// bound. Stopping a stopped node does nothing.
    pub fn stop(&mut self) -> Result<()> {
        if let Some(guard) = self.guard.take() {
            guard.stop(STOP_PATIENCE);
        }
        Ok(())
    }

    /// Kills the JVM with SIGKILL, as a crash would: no flush, no clean shutdown. The data
    /// directory stays for [`CqlNode::restart`].
    pub fn kill9(&mut self) -> Result<()> {
        let Some(mut guard) = self.guard.take() else {
            bail!("the node is not running");
        };
        // `Child::kill` is SIGKILL on Unix.
        guard
            .child
            .kill()
            .context("while killing the node with SIGKILL")?;
        guard
            .child
            .wait()
            .context("while waiting for the killed node")?;
        Ok(())
    }

    /// Starts the node again on the same directory and ports (clients reconnect to the same
    /// address), stopping it first if it runs, and waits until CQL answers.
    pub fn restart(&mut self) -> Result<()> {
        self.stop()?;
        self.launch()
    }

    /// Leaves the JVM running after this handle is dropped (`--keep`); returns its pid.
    pub fn leave_running(mut self) -> Result<u32> {
        let guard = self.guard.take().context("the node is not running")?;
        let pid = guard.pid();
        // The guard would kill the node when dropped: it is forgotten instead, on purpose.
        std::mem::forget(guard);
        Ok(pid)
    }

    fn launch(&mut self) -> Result<()> {
        ensure!(self.guard.is_none(), "the node runs already");
        let log_path = self.dir.join("node.log");
        // Appended: a restart's log follows the killed run's.
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("while opening {}", log_path.display()))?;
        let stderr = log.try_clone().context("while sharing the node's log")?;
        let logback = root().join("tests").join("cassandra").join("logback.xml");
        let mut command = Command::new(&self.java);
        command
            .args(JPMS_FLAGS)
            .args(JVM_OPTIONS)
            .arg(format!("-Xms{HEAP}"))
            .arg(format!("-Xmx{HEAP}"))
            .arg(format!(
                "-Dcassandra.config=file://{}",
                self.dir.join("cassandra.yaml").display()
            ))
            .arg(format!("-Dcassandra.storagedir={}", self.dir.display()))
            .arg(format!("-Dlogback.configurationFile={}", logback.display()))
            // Java expands `DIR/*` to the jars in DIR itself.
            .arg("-cp")
            .arg(format!("{}/*", self.lib.display()))
            .arg("org.apache.cassandra.service.CassandraDaemon")
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(stderr);
        let started = Instant::now();
        let child = command
            .spawn()
            .with_context(|| format!("while starting {}", self.java.display()))?;
        let mut guard = Guard { child };
        std::fs::write(self.dir.join(PID_FILE), guard.pid().to_string())
            .context("while writing the node's pid file")?;
        wait_for_cql(self.port, &mut guard, &log_path)?;
        self.last_start = started.elapsed();
        self.guard = Some(guard);
        Ok(())
    }
}

/// Waits until the node's native port answers `OPTIONS` with `SUPPORTED` (the native transport
/// is the last service Cassandra starts, so a node that answers is ready for queries).
fn wait_for_cql(port: u16, guard: &mut Guard, log: &Path) -> Result<()> {
    let started = Instant::now();
    loop {
        if let Some(status) = guard
            .child
            .try_wait()
            .context("while checking on the node")?
        {
            bail!(
                "the Cassandra node exited at start ({status}); its log: {}{}",
                log.display(),
                log_tail(log)
            );
        }
        match CqlConnection::connect(port).and_then(|mut c| c.options()) {
            Ok(supported) => {
                ensure!(
                    supported.contains_key("CQL_VERSION"),
                    "the node's SUPPORTED lacks CQL_VERSION: {supported:?}"
                );
                return Ok(());
            }
            Err(error) => {
                if started.elapsed() > START_PATIENCE {
                    return Err(error.context(format!(
                        "the Cassandra node did not answer CQL on port {port} within {} s; \
                         its log: {}{}",
                        START_PATIENCE.as_secs(),
                        log.display(),
                        log_tail(log)
                    )));
                }
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The last lines of the node's log, to put in an error.
fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = &lines[lines.len().saturating_sub(20)..];
    format!("\n  {}", tail.join("\n  "))
}

/// Java 17 (`java-17-openjdk` from Debian, `JAVA_HOME`, or `java` on `PATH`). Cassandra 5.0
/// runs on 11 and 17; the JPMS flags above are 17's.
fn require_java() -> Result<PathBuf> {
    find_java_17().context(
        "no Java 17 found (JAVA_HOME, /usr/lib/jvm/java-17-openjdk*, PATH): install the Debian \
         package openjdk-17-jre-headless, as `cargo xtask test` does",
    )
}

/// Java 17, if installed.
#[must_use]
pub fn find_java_17() -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(home) = std::env::var_os("JAVA_HOME") {
        candidates.push(PathBuf::from(home).join("bin").join("java"));
    }
    if let Ok(entries) = std::fs::read_dir("/usr/lib/jvm") {
        let mut debian: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("java-17-openjdk"))
            })
            .map(|p| p.join("bin").join("java"))
            .collect();
        debian.sort();
        candidates.extend(debian);
    }
    candidates.extend(find_program("java"));
    candidates
        .into_iter()
        .find(|java| java.is_file() && java_major_version(java) == Some(17))
}

/// The major version `java -version` reports (`openjdk version "17.0.15" 2025-04-15`).
fn java_major_version(java: &Path) -> Option<u32> {
    let output = Command::new(java).arg("-version").output().ok()?;
    major_version_of_banner(&String::from_utf8_lossy(&output.stderr))
}

fn major_version_of_banner(banner: &str) -> Option<u32> {
    let quoted = banner.split('"').nth(1)?;
    quoted.split(['.', '-', '+']).next()?.parse().ok()
}

/// The jars in `target/cassandra/lib`, resolved with Maven from `tests/cassandra/pom.xml` unless
/// they were resolved from the same POM before (a copy of it is kept beside them).
fn require_jars() -> Result<PathBuf> {
    let pom = root().join("tests").join("cassandra").join("pom.xml");
    let pom_text =
        std::fs::read(&pom).with_context(|| format!("while reading {}", pom.display()))?;
    let cache = root().join("target").join("cassandra");
    let lib = cache.join("lib");
    let stamp = lib.join("pom.xml");
    if std::fs::read(&stamp).is_ok_and(|resolved| resolved == pom_text) {
        return Ok(lib);
    }
    let mvn = find_program("mvn").context(
        "Maven (mvn) is not installed, and the Cassandra jars are not in target/cassandra/lib: \
         install the Debian package maven, as `cargo xtask test` does",
    )?;
    // Resolved into a directory of its own, renamed when complete: an interrupted download
    // never passes for the cache.
    let partial = cache.join("lib.partial");
    if partial.exists() {
        std::fs::remove_dir_all(&partial)
            .with_context(|| format!("while removing {}", partial.display()))?;
    }
    std::fs::create_dir_all(&partial)
        .with_context(|| format!("while creating {}", partial.display()))?;
    eprintln!(
        "==> resolving Apache Cassandra and its dependencies with Maven ({})",
        pom.display()
    );
    let status = Command::new(mvn)
        .args(["-q", "-B", "-f"])
        .arg(&pom)
        .arg("dependency:copy-dependencies")
        .arg(format!("-Dcassandra.lib={}", partial.display()))
        .status()
        .context("while running mvn")?;
    ensure!(
        status.success(),
        "mvn failed ({status}) resolving {}",
        pom.display()
    );
    let (jars, bytes) = jar_count_and_size(&partial)?;
    ensure!(jars > 0, "Maven copied no jars into {}", partial.display());
    eprintln!("==> {jars} jars, {} MiB", bytes >> 20);
    std::fs::write(partial.join("pom.xml"), &pom_text)
        .context("while recording which POM the jars came from")?;
    if lib.exists() {
        std::fs::remove_dir_all(&lib)
            .with_context(|| format!("while removing {}", lib.display()))?;
    }
    std::fs::rename(&partial, &lib)
        .with_context(|| format!("while moving the jars to {}", lib.display()))?;
    Ok(lib)
}

fn jar_count_and_size(dir: &Path) -> Result<(usize, u64)> {
    let mut jars = 0;
    let mut bytes = 0;
    for entry in
        std::fs::read_dir(dir).with_context(|| format!("while listing {}", dir.display()))?
    {
        let entry = entry?;
        if entry.path().extension().is_some_and(|e| e == "jar") {
            jars += 1;
            bytes += entry.metadata()?.len();
        }
    }
    Ok((jars, bytes))
}

// ---------------------------------------------------------------------------------------------
// The CQL native protocol, version 4 (Apache Cassandra's `native_protocol_v4.spec`): just enough
// to see a node answer and to check it. v4 rather than v5, because v5 wraps frames in
// checksummed segments after STARTUP; Cassandra 5.0 speaks both.

/// Protocol version 4; responses set the high bit (§2.1).
const VERSION_REQUEST: u8 = 0x04;
const VERSION_RESPONSE: u8 = 0x84;
/// The frame header: version, flags, stream (i16), opcode, body length (i32) (§2).
const HEADER_BYTES: usize = 9;

/// Frame flags (§2.2).
const FLAG_COMPRESSION: u8 = 0x01;
const FLAG_TRACING: u8 = 0x02;
const FLAG_CUSTOM_PAYLOAD: u8 = 0x04;
const FLAG_WARNING: u8 = 0x08;

/// Opcodes (§2.4).
const OP_ERROR: u8 = 0x00;
const OP_STARTUP: u8 = 0x01;
const OP_READY: u8 = 0x02;
const OP_AUTHENTICATE: u8 = 0x03;
const OP_OPTIONS: u8 = 0x05;
const OP_SUPPORTED: u8 = 0x06;
const OP_QUERY: u8 = 0x07;
const OP_RESULT: u8 = 0x08;

/// Consistency ONE (§3): a single node is every replica.
const CONSISTENCY_ONE: u16 = 0x0001;

/// RESULT kinds (§4.2.5).
const RESULT_VOID: i32 = 0x0001;
const RESULT_ROWS: i32 = 0x0002;
const RESULT_SET_KEYSPACE: i32 = 0x0003;
const RESULT_PREPARED: i32 = 0x0004;
const RESULT_SCHEMA_CHANGE: i32 = 0x0005;

/// Rows metadata flags (§4.2.5.2).
const ROWS_GLOBAL_TABLES_SPEC: i32 = 0x0001;
const ROWS_HAS_MORE_PAGES: i32 = 0x0002;
const ROWS_NO_METADATA: i32 = 0x0004;

/// Type ids of the `[option]`s that carry more than their id (§4.2.5.2).
const TYPE_CUSTOM: u16 = 0x0000;
const TYPE_ASCII: u16 = 0x0001;
const TYPE_BIGINT: u16 = 0x0002;
const TYPE_BOOLEAN: u16 = 0x0004;
const TYPE_VARCHAR: u16 = 0x000D;
const TYPE_LIST: u16 = 0x0020;
const TYPE_MAP: u16 = 0x0021;
const TYPE_SET: u16 = 0x0022;
const TYPE_UDT: u16 = 0x0030;
const TYPE_TUPLE: u16 = 0x0031;

/// A frame: `[version][flags][stream: i16][opcode][length: i32][body]`, big-endian (§1, §2).
fn encode_frame(stream: i16, opcode: u8, body: &[u8]) -> Result<Vec<u8>> {
    let length = i32::try_from(body.len()).context("a CQL request body over 2 GiB")?;
    let mut frame = Vec::with_capacity(HEADER_BYTES + body.len());
    frame.push(VERSION_REQUEST);
    frame.push(0);
    frame.extend_from_slice(&stream.to_be_bytes());
    frame.push(opcode);
    frame.extend_from_slice(&length.to_be_bytes());
    frame.extend_from_slice(body);
    Ok(frame)
}

/// The header of a response frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Header {
    flags: u8,
    stream: i16,
    opcode: u8,
    body_bytes: usize,
}

fn decode_header(bytes: &[u8; HEADER_BYTES]) -> Result<Header> {
    ensure!(
        bytes[0] == VERSION_RESPONSE,
        "not a CQL v4 response (version byte {:#04x}); is this port a CQL node?",
        bytes[0]
    );
    let length = i32::from_be_bytes([bytes[5], bytes[6], bytes[7], bytes[8]]);
    let body_bytes = usize::try_from(length)
        .ok()
        .filter(|&n| n <= RESPONSE_BODY_BYTES_MAX)
        .with_context(|| {
            format!("a CQL response body of {length} bytes (at most {RESPONSE_BODY_BYTES_MAX})")
        })?;
    Ok(Header {
        flags: bytes[1],
        stream: i16::from_be_bytes([bytes[2], bytes[3]]),
        opcode: bytes[4],
        body_bytes,
    })
}

/// `[string map]`: a `[short]` count of `[string]` key and value pairs (§3).
fn encode_string_map(map: &[(&str, &str)]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    out.extend_from_slice(&u16::try_from(map.len())?.to_be_bytes());
    for (key, value) in map {
        put_string(&mut out, key)?;
        put_string(&mut out, value)?;
    }
    Ok(out)
}

fn put_string(out: &mut Vec<u8>, s: &str) -> Result<()> {
    let length = u16::try_from(s.len()).context("a CQL [string] over 65,535 bytes")?;
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

/// A QUERY body: `[long string]` query, consistency, flags 0 (no values, default paging).
fn encode_query(cql: &str) -> Result<Vec<u8>> {
    let length = i32::try_from(cql.len()).context("a CQL query over 2 GiB")?;
    let mut out = Vec::with_capacity(cql.len() + 7);
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(cql.as_bytes());
    out.extend_from_slice(&CONSISTENCY_ONE.to_be_bytes());
    out.push(0);
    Ok(out)
}

/// A response, decoded as far as these checks need.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Response {
    Error { code: i32, message: String },
    Ready,
    Authenticate { authenticator: String },
    Supported(BTreeMap<String, Vec<String>>),
    Result(QueryResult),
    Other { opcode: u8 },
}

/// The result of a QUERY.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryResult {
    Void,
    Rows(Rows),
    SetKeyspace(String),
    SchemaChange { change: String, target: String },
    Prepared,
}

impl QueryResult {
    /// The rows, or an error naming what came instead.
    pub fn into_rows(self) -> Result<Rows> {
        match self {
            Self::Rows(rows) => Ok(rows),
            other => bail!("expected rows from the query, got {other:?}"),
        }
    }
}

/// Rows of a RESULT: the columns' names and types, and each cell's bytes (`None` for null).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rows {
    pub columns: Vec<(String, ColumnType)>,
    pub rows: Vec<Vec<Option<Vec<u8>>>>,
}

/// A column's type (§4.2.5.2 `[option]`): the native types by id, collections, UDTs, tuples.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnType {
    Native(u16),
    Custom(String),
    List(Box<ColumnType>),
    Set(Box<ColumnType>),
    Map(Box<ColumnType>, Box<ColumnType>),
    Udt {
        keyspace: String,
        name: String,
        fields: Vec<(String, ColumnType)>,
    },
    Tuple(Vec<ColumnType>),
}

impl Rows {
    fn cell(&self, row: usize, column: &str) -> Result<(&ColumnType, Option<&[u8]>)> {
        let index = self
            .columns
            .iter()
            .position(|(name, _)| name == column)
            .with_context(|| format!("no column {column} in the result"))?;
        let cells = self
            .rows
            .get(row)
            .with_context(|| format!("no row {row} in the result"))?;
        let cell = cells
            .get(index)
            .with_context(|| format!("row {row} has no cell for {column}"))?;
        Ok((&self.columns[index].1, cell.as_deref()))
    }

    /// A `text`/`varchar` or `ascii` cell.
    pub fn text(&self, row: usize, column: &str) -> Result<Option<String>> {
        match self.cell(row, column)? {
            (ColumnType::Native(TYPE_VARCHAR | TYPE_ASCII), value) => value
                .map(|bytes| {
                    String::from_utf8(bytes.to_vec())
                        .with_context(|| format!("column {column} is not UTF-8"))
                })
                .transpose(),
            (other, _) => bail!("column {column} is {other:?}, not text"),
        }
    }

    /// A `bigint` cell (8 bytes, big-endian two's complement).
    pub fn bigint(&self, row: usize, column: &str) -> Result<Option<i64>> {
        match self.cell(row, column)? {
            (ColumnType::Native(TYPE_BIGINT), None) => Ok(None),
            (ColumnType::Native(TYPE_BIGINT), Some(bytes)) => {
                let bytes: [u8; 8] = bytes.try_into().with_context(|| {
                    format!("column {column}: a bigint of {} bytes", bytes.len())
                })?;
                Ok(Some(i64::from_be_bytes(bytes)))
            }
            (other, _) => bail!("column {column} is {other:?}, not bigint"),
        }
    }

    /// A `boolean` cell (one byte, non-zero is true).
    pub fn boolean(&self, row: usize, column: &str) -> Result<Option<bool>> {
        match self.cell(row, column)? {
            (ColumnType::Native(TYPE_BOOLEAN), None) => Ok(None),
            (ColumnType::Native(TYPE_BOOLEAN), Some([byte])) => Ok(Some(*byte != 0)),
            (ColumnType::Native(TYPE_BOOLEAN), Some(other)) => {
                bail!("column {column}: a boolean of {} bytes", other.len())
            }
            (other, _) => bail!("column {column} is {other:?}, not boolean"),
        }
    }
}

/// Reads the notations of §3 from a response body; running out of bytes is an error.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        ensure!(
            n <= self.bytes.len(),
            "a CQL response ends early ({n} bytes wanted, {} left)",
            self.bytes.len()
        );
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn u16(&mut self) -> Result<u16> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn i32(&mut self) -> Result<i32> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A non-negative `[int]` count or length.
    fn count(&mut self) -> Result<usize> {
        let n = self.i32()?;
        usize::try_from(n).with_context(|| format!("a negative count ({n}) in a CQL response"))
    }

    fn string(&mut self) -> Result<String> {
        let n = usize::from(self.u16()?);
        let bytes = self.take(n)?;
        String::from_utf8(bytes.to_vec()).context("a CQL [string] that is not UTF-8")
    }

    fn string_list(&mut self) -> Result<Vec<String>> {
        let n = self.u16()?;
        (0..n).map(|_| self.string()).collect()
    }

    /// `[bytes]`: an `[int]` length, negative for null.
    fn bytes(&mut self) -> Result<Option<Vec<u8>>> {
        let n = self.i32()?;
        match usize::try_from(n) {
            Ok(n) => Ok(Some(self.take(n)?.to_vec())),
            Err(_) => Ok(None),
        }
    }

    fn option(&mut self, depth: u32) -> Result<ColumnType> {
        ensure!(
            depth < TYPE_DEPTH_MAX,
            "a CQL column type nested deeper than {TYPE_DEPTH_MAX}"
        );
        let id = self.u16()?;
        Ok(match id {
            TYPE_CUSTOM => ColumnType::Custom(self.string()?),
            TYPE_LIST => ColumnType::List(Box::new(self.option(depth + 1)?)),
            TYPE_SET => ColumnType::Set(Box::new(self.option(depth + 1)?)),
            TYPE_MAP => ColumnType::Map(
                Box::new(self.option(depth + 1)?),
                Box::new(self.option(depth + 1)?),
            ),
            TYPE_UDT => {
                let keyspace = self.string()?;
                let name = self.string()?;
                let n = self.u16()?;
                let fields = (0..n)
                    .map(|_| Ok((self.string()?, self.option(depth + 1)?)))
                    .collect::<Result<_>>()?;
                ColumnType::Udt {
                    keyspace,
                    name,
                    fields,
                }
            }
            TYPE_TUPLE => {
                let n = self.u16()?;
                ColumnType::Tuple(
                    (0..n)
                        .map(|_| self.option(depth + 1))
                        .collect::<Result<_>>()?,
                )
            }
            native => ColumnType::Native(native),
        })
    }
}

fn decode_body(header: Header, body: &[u8]) -> Result<Response> {
    ensure!(
        header.flags & FLAG_COMPRESSION == 0,
        "a compressed CQL response, though no compression was agreed"
    );
    let mut r = Reader { bytes: body };
    // What the flags announce comes first, in this order (§2.2).
    if header.flags & FLAG_TRACING != 0 {
        r.take(16)?;
    }
    if header.flags & FLAG_WARNING != 0 {
        for warning in r.string_list()? {
            eprintln!("CQL warning: {warning}");
        }
    }
    if header.flags & FLAG_CUSTOM_PAYLOAD != 0 {
        let n = r.u16()?;
        for _ in 0..n {
            r.string()?;
            r.bytes()?;
        }
    }
    Ok(match header.opcode {
        OP_ERROR => Response::Error {
            code: r.i32()?,
            message: r.string()?,
        },
        OP_READY => Response::Ready,
        OP_AUTHENTICATE => Response::Authenticate {
            authenticator: r.string()?,
        },
        OP_SUPPORTED => {
            let n = r.u16()?;
            let mut map = BTreeMap::new();
            for _ in 0..n {
                let key = r.string()?;
                map.insert(key, r.string_list()?);
            }
            Response::Supported(map)
        }
        OP_RESULT => Response::Result(decode_result(&mut r)?),
        opcode => Response::Other { opcode },
    })
}

fn decode_result(r: &mut Reader<'_>) -> Result<QueryResult> {
    Ok(match r.i32()? {
        RESULT_VOID => QueryResult::Void,
        RESULT_ROWS => QueryResult::Rows(decode_rows(r)?),
        RESULT_SET_KEYSPACE => QueryResult::SetKeyspace(r.string()?),
        RESULT_PREPARED => QueryResult::Prepared,
        RESULT_SCHEMA_CHANGE => QueryResult::SchemaChange {
            change: r.string()?,
            target: r.string()?,
        },
        kind => bail!("an unknown CQL result kind {kind}"),
    })
}

fn decode_rows(r: &mut Reader<'_>) -> Result<Rows> {
    let flags = r.i32()?;
    let column_count = r.count()?;
    if flags & ROWS_HAS_MORE_PAGES != 0 {
        r.bytes()?;
    }
    let mut columns = Vec::new();
    if flags & ROWS_NO_METADATA == 0 {
        let global = flags & ROWS_GLOBAL_TABLES_SPEC != 0;
        if global {
            r.string()?;
            r.string()?;
        }
        for _ in 0..column_count {
            if !global {
                r.string()?;
                r.string()?;
            }
            let name = r.string()?;
            columns.push((name, r.option(0)?));
        }
    }
    let row_count = r.count()?;
    // No capacity from the counts: they come from outside; the cells must really be there.
    let mut rows = Vec::new();
    for _ in 0..row_count {
        let mut cells = Vec::new();
        for _ in 0..column_count {
            cells.push(r.bytes()?);
        }
        rows.push(cells);
    }
    ensure!(
        r.bytes.is_empty(),
        "{} bytes after the last row of a CQL result",
        r.bytes.len()
    );
    Ok(Rows { columns, rows })
}

/// One connection to a CQL node: requests one at a time, each answered before the next.
#[derive(Debug)]
pub struct CqlConnection {
    stream: TcpStream,
    next_stream: i16,
}

impl CqlConnection {
    /// Connects to 127.0.0.1:`port`, with time-outs on every read and write.
    pub fn connect(port: u16) -> Result<Self> {
        let stream = TcpStream::connect(("127.0.0.1", port))
            .with_context(|| format!("while connecting to CQL on 127.0.0.1:{port}"))?;
        stream.set_read_timeout(Some(REQUEST_TIMEOUT))?;
        stream.set_write_timeout(Some(REQUEST_TIMEOUT))?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            next_stream: 0,
        })
    }

    fn request(&mut self, opcode: u8, body: &[u8]) -> Result<Response> {
        let stream = self.next_stream;
        self.next_stream = stream.checked_add(1).unwrap_or(0);
        self.stream
            .write_all(&encode_frame(stream, opcode, body)?)
            .context("while sending a CQL request")?;
        let mut head = [0u8; HEADER_BYTES];
        self.stream
            .read_exact(&mut head)
            .context("while reading a CQL response header")?;
        let header = decode_header(&head)?;
        ensure!(
            header.stream == stream,
            "a CQL response on stream {} to a request on stream {stream}",
            header.stream
        );
        let mut body = vec![0u8; header.body_bytes];
        self.stream
            .read_exact(&mut body)
            .context("while reading a CQL response body")?;
        match decode_body(header, &body)? {
            Response::Error { code, message } => {
                bail!("the CQL node answered error {code:#06x}: {message}")
            }
            response => Ok(response),
        }
    }

    /// OPTIONS → SUPPORTED: what the node offers (CQL and protocol versions, compression).
    pub fn options(&mut self) -> Result<BTreeMap<String, Vec<String>>> {
        match self.request(OP_OPTIONS, &[])? {
            Response::Supported(map) => Ok(map),
            other => bail!("expected SUPPORTED to OPTIONS, got {other:?}"),
        }
    }

    /// STARTUP with CQL 3.0.0 and no compression → READY.
    pub fn startup(&mut self) -> Result<()> {
        let body = encode_string_map(&[("CQL_VERSION", "3.0.0")])?;
        match self.request(OP_STARTUP, &body)? {
            Response::Ready => Ok(()),
            Response::Authenticate { authenticator } => {
                bail!("the node asks for authentication ({authenticator})")
            }
            other => bail!("expected READY to STARTUP, got {other:?}"),
        }
    }

    /// QUERY at consistency ONE, no bound values, the node's default page size.
    pub fn query(&mut self, cql: &str) -> Result<QueryResult> {
        match self.request(OP_QUERY, &encode_query(cql)?)? {
            Response::Result(result) => Ok(result),
            other => bail!("expected RESULT to QUERY, got {other:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    //! The frames here are written out by hand from `native_protocol_v4.spec` (§2 header, §3
    //! notations, §4.1 requests, §4.2 responses), not produced by the encoder under test.

    use super::*;

    fn response(flags: u8, stream: i16, opcode: u8, body: &[u8]) -> Result<Response> {
        let mut head = [0u8; HEADER_BYTES];
        head[0] = VERSION_RESPONSE;
        head[1] = flags;
        head[2..4].copy_from_slice(&stream.to_be_bytes());
        head[4] = opcode;
        head[5..9].copy_from_slice(&i32::try_from(body.len())?.to_be_bytes());
        let header = decode_header(&head)?;
        assert_eq!(header.body_bytes, body.len());
        decode_body(header, body)
    }

    fn check_request(stream: i16, opcode: u8, body: &[u8], expected: &[u8]) {
        assert_eq!(
            encode_frame(stream, opcode, body).expect("encodes"),
            expected
        );
    }

    /// `select release_version from system.local`'s answer: global table spec, one varchar
    /// column, one row "5.0.9".
    fn release_version_rows() -> Vec<u8> {
        let mut body = vec![0, 0, 0, 2]; // kind: Rows
        body.extend_from_slice(&[0, 0, 0, 1]); // flags: Global_tables_spec
        body.extend_from_slice(&[0, 0, 0, 1]); // one column
        body.extend_from_slice(b"\x00\x06system\x00\x05local");
        body.extend_from_slice(b"\x00\x0frelease_version\x00\x0d");
        body.extend_from_slice(&[0, 0, 0, 1]); // one row
        body.extend_from_slice(b"\x00\x00\x00\x055.0.9");
        body
    }

    #[test]
    fn requests_are_framed_as_the_v4_spec_says() {
        check_request(0, OP_OPTIONS, &[], &[0x04, 0, 0, 0, 0x05, 0, 0, 0, 0]);
        check_request(
            0x0102,
            OP_STARTUP,
            &encode_string_map(&[("CQL_VERSION", "3.0.0")]).expect("encodes"),
            b"\x04\x00\x01\x02\x01\x00\x00\x00\x16\
              \x00\x01\x00\x0bCQL_VERSION\x00\x053.0.0",
        );
        check_request(
            -1,
            OP_QUERY,
            &encode_query("SELECT 1").expect("encodes"),
            b"\x04\x00\xff\xff\x07\x00\x00\x00\x0f\x00\x00\x00\x08SELECT 1\x00\x01\x00",
        );
    }

    #[test]
    fn supported_is_a_string_multimap() {
        let body = b"\x00\x02\
            \x00\x0bCQL_VERSION\x00\x01\x00\x053.4.7\
            \x00\x0bCOMPRESSION\x00\x02\x00\x06snappy\x00\x03lz4";
        let Response::Supported(map) = response(0, 0, OP_SUPPORTED, body).expect("decodes") else {
            panic!("not SUPPORTED");
        };
        assert_eq!(map["CQL_VERSION"], ["3.4.7"]);
        assert_eq!(map["COMPRESSION"], ["snappy", "lz4"]);
    }

    #[test]
    fn ready_error_and_authenticate_decode() {
        assert_eq!(
            response(0, 1, OP_READY, &[]).expect("decodes"),
            Response::Ready
        );
        assert_eq!(
            response(0, 1, OP_ERROR, b"\x00\x00\x22\x00\x00\x03bad").expect("decodes"),
            Response::Error {
                code: 0x2200,
                message: "bad".into()
            }
        );
        assert_eq!(
            response(0, 1, OP_AUTHENTICATE, b"\x00\x01A").expect("decodes"),
            Response::Authenticate {
                authenticator: "A".into()
            }
        );
    }

    #[test]
    fn rows_give_their_text_and_booleans() {
        let Response::Result(result) =
            response(0, 2, OP_RESULT, &release_version_rows()).expect("decodes")
        else {
            panic!("not RESULT");
        };
        let rows = result.into_rows().expect("rows");
        assert_eq!(
            rows.text(0, "release_version").expect("text"),
            Some("5.0.9".to_owned())
        );
        assert!(rows.boolean(0, "release_version").is_err());
        assert!(rows.text(1, "release_version").is_err());
        assert!(rows.text(0, "nothing").is_err());

        // A conditional insert's answer: per-column table specs, `[applied]` false, then the
        // existing row's text column with a null.
        let mut body = vec![0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 2];
        body.extend_from_slice(b"\x00\x02ks\x00\x01t\x00\x09[applied]\x00\x04");
        body.extend_from_slice(b"\x00\x02ks\x00\x01t\x00\x04name\x00\x0d");
        body.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 1, 0, 0xff, 0xff, 0xff, 0xff]);
        let Response::Result(QueryResult::Rows(rows)) =
            response(0, 3, OP_RESULT, &body).expect("decodes")
        else {
            panic!("not rows");
        };
        assert_eq!(rows.boolean(0, "[applied]").expect("boolean"), Some(false));
        assert!(rows.bigint(0, "[applied]").is_err());
        assert_eq!(rows.text(0, "name").expect("text"), None);
    }

    #[test]
    fn bigints_are_eight_big_endian_bytes() {
        let rows = |cell: &[u8]| {
            let mut body = vec![0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 1];
            body.extend_from_slice(b"\x00\x02ks\x00\x01t\x00\x05epoch\x00\x02");
            body.extend_from_slice(&[0, 0, 0, 1]);
            body.extend_from_slice(&i32::try_from(cell.len()).expect("short").to_be_bytes());
            body.extend_from_slice(cell);
            let Response::Result(QueryResult::Rows(rows)) =
                response(0, 0, OP_RESULT, &body).expect("decodes")
            else {
                panic!("not rows");
            };
            rows.bigint(0, "epoch")
        };
        assert_eq!(
            rows(&[0, 0, 0, 0, 0, 0, 0, 201]).expect("bigint"),
            Some(201)
        );
        assert_eq!(rows(&[0xff; 8]).expect("bigint"), Some(-1));
        assert!(rows(&[0, 0, 0, 201]).is_err());
    }

    #[test]
    fn nested_column_types_decode() {
        let mut body = vec![0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 1];
        body.extend_from_slice(b"\x00\x02ks\x00\x01t\x00\x01c");
        // map<text, frozen<tuple<int, list<blob>>>>
        body.extend_from_slice(b"\x00\x21\x00\x0d\x00\x31\x00\x02\x00\x09\x00\x20\x00\x03");
        body.extend_from_slice(&[0, 0, 0, 0]);
        let Response::Result(QueryResult::Rows(rows)) =
            response(0, 0, OP_RESULT, &body).expect("decodes")
        else {
            panic!("not rows");
        };
        assert_eq!(
            rows.columns[0].1,
            ColumnType::Map(
                Box::new(ColumnType::Native(TYPE_VARCHAR)),
                Box::new(ColumnType::Tuple(vec![
                    ColumnType::Native(0x0009),
                    ColumnType::List(Box::new(ColumnType::Native(0x0003))),
                ])),
            )
        );
    }

    #[test]
    fn warnings_and_tracing_ids_are_skipped() {
        let mut body = vec![7; 16]; // tracing id
        body.extend_from_slice(b"\x00\x01\x00\x04warn"); // one warning
        body.extend_from_slice(&[0, 0, 0, 1]); // kind: Void
        assert_eq!(
            response(FLAG_TRACING | FLAG_WARNING, 0, OP_RESULT, &body).expect("decodes"),
            Response::Result(QueryResult::Void)
        );
    }

    #[test]
    fn every_truncated_response_is_an_error_not_a_panic() {
        let body = release_version_rows();
        for cut in 0..body.len() {
            assert!(
                response(0, 0, OP_RESULT, &body[..cut]).is_err(),
                "a body cut at {cut} bytes decoded"
            );
        }
        let supported = b"\x00\x01\x00\x0bCQL_VERSION\x00\x01\x00\x053.4.7";
        for cut in 0..supported.len() {
            assert!(response(0, 0, OP_SUPPORTED, &supported[..cut]).is_err());
        }
    }

    #[test]
    fn hostile_headers_and_types_are_refused() {
        // A request frame where a response belongs, and a body length beyond the limit.
        assert!(decode_header(&[0x04, 0, 0, 0, 0x06, 0, 0, 0, 0]).is_err());
        assert!(decode_header(&[0x84, 0, 0, 0, 0x08, 0x7f, 0xff, 0xff, 0xff]).is_err());
        assert!(decode_header(&[0x84, 0, 0, 0, 0x08, 0xff, 0xff, 0xff, 0xff]).is_err());
        // A list of lists nested past the limit.
        let mut body = vec![0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 1];
        body.extend_from_slice(b"\x00\x02ks\x00\x01t\x00\x01c");
        for _ in 0..=TYPE_DEPTH_MAX {
            body.extend_from_slice(&[0x00, 0x20]);
        }
        body.extend_from_slice(&[0x00, 0x09, 0, 0, 0, 0]);
        assert!(response(0, 0, OP_RESULT, &body).is_err());
        // A negative row count, and a compressed frame nobody asked for.
        let negative = [0, 0, 0, 2, 0, 0, 0, 4, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff];
        assert!(response(0, 0, OP_RESULT, &negative).is_err());
        assert!(response(FLAG_COMPRESSION, 0, OP_READY, &[]).is_err());
    }

    #[test]
    fn the_configuration_fills_every_placeholder() {
        let template = std::fs::read_to_string(
            root()
                .join("tests")
                .join("cassandra")
                .join("cassandra.yaml"),
        )
        .expect("the project's cassandra.yaml");
        let text =
            configuration(&template, Path::new("/srv/node-1"), 19042, 17000).expect("fills in");
        assert!(text.contains("native_transport_port: 19042"));
        assert!(text.contains("seeds: \"127.0.0.1:17000\""));
        assert!(text.contains("commitlog_directory: /srv/node-1/commitlog"));
        assert!(configuration(&template, Path::new("/a b"), 1, 2).is_err());
        assert!(configuration(&template, Path::new("relative"), 1, 2).is_err());
        assert_eq!(leftover_placeholder("a @DIR@ b"), Some("@DIR@"));
        assert_eq!(leftover_placeholder("user@host and @x@ and a@b"), None);
        assert!(configuration("x: @OTHER_PORT@", Path::new("/d"), 1, 2).is_err());
    }

    #[test]
    fn java_versions_are_read_from_their_banner() {
        let check = |banner: &str, expected: Option<u32>| {
            assert_eq!(major_version_of_banner(banner), expected, "{banner}");
        };
        check("openjdk version \"17.0.15\" 2025-04-15", Some(17));
        check("openjdk version \"25\" 2025-09-16", Some(25));
        check("openjdk version \"11.0.2+9\"", Some(11));
        check("no version here", None);
    }
}
