//! The node as a process: `agritrace serve` on a data directory of the test, against an
//! external broker, killed with SIGKILL or stopped with SIGTERM and started again on the same
//! data directory and HTTP port; its HTTP API read the way an operator reads it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::process::{Process, binary};

/// Settings of the node under test (the rest are the defaults).
#[derive(Debug, Clone)]
pub struct NodeSettings {
    /// Ingest's MQTT connections on the shared subscription.
    pub ingest_workers: usize,
    /// Readings per batch at most.
    pub batch_readings_max: usize,
    /// A batch closes this long after its first reading.
    pub batch_window_ms: u64,
    /// Time between sequencer rounds.
    pub round_period_ms: u64,
    /// Log lines as JSON objects (`AGRITRACE_LOG_FORMAT=json`) instead of text.
    pub json_logs: bool,
    /// With a file: `broker.device_auth = true`, ingest logging in with the password in it
    /// (`broker.ingest_password_file`, written by `agritrace broker config`).
    pub ingest_password_file: Option<PathBuf>,
}

impl Default for NodeSettings {
    fn default() -> Self {
        Self {
            ingest_workers: 2,
            batch_readings_max: 64,
            batch_window_ms: 50,
            round_period_ms: 50,
            json_logs: false,
            ingest_password_file: None,
        }
    }
}

/// `agritrace serve` as a child process.
#[derive(Debug)]
pub struct NodeProcess {
    dir: PathBuf,
    http: SocketAddr,
    env: Vec<(&'static str, String)>,
    process: Option<Process>,
    starts: u32,
    client: reqwest::Client,
}

impl NodeProcess {
    /// Starts a node with its data directory under `dir`, reading from the broker on
    /// `broker_port`, and waits until `/healthz` answers.
    pub async fn start(dir: &Path, broker_port: u16, settings: &NodeSettings) -> Self {
        let http = SocketAddr::from(([127, 0, 0, 1], crate::free_port()));
        let mut env = vec![
            (
                "AGRITRACE_DATA_DIR",
                dir.join("node-data").display().to_string(),
            ),
            ("AGRITRACE_HTTP_LISTEN", http.to_string()),
            ("AGRITRACE_BROKER_EMBEDDED", "false".to_owned()),
            ("AGRITRACE_BROKER_HOST", "127.0.0.1".to_owned()),
            ("AGRITRACE_BROKER_PORT", broker_port.to_string()),
            (
                "AGRITRACE_INGEST_WORKERS",
                settings.ingest_workers.to_string(),
            ),
            (
                "AGRITRACE_BATCH_READINGS_MAX",
                settings.batch_readings_max.to_string(),
            ),
            (
                "AGRITRACE_BATCH_WINDOW_MS",
                settings.batch_window_ms.to_string(),
            ),
            (
                "AGRITRACE_ROUND_PERIOD_MS",
                settings.round_period_ms.to_string(),
            ),
            ("AGRITRACE_LOG", "info".to_owned()),
        ];
        if settings.json_logs {
            env.push(("AGRITRACE_LOG_FORMAT", "json".to_owned()));
        }
        if let Some(file) = &settings.ingest_password_file {
            env.push(("AGRITRACE_BROKER_DEVICE_AUTH", "true".to_owned()));
            env.push((
                "AGRITRACE_BROKER_INGEST_PASSWORD_FILE",
                file.display().to_string(),
            ));
        }
        let mut node = Self {
            dir: dir.to_owned(),
            http,
            env,
            process: None,
            starts: 0,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("an HTTP client"),
        };
        node.restart().await;
        node
    }

    /// The store the node keeps its log and records in (open it only while the node is
    /// stopped: one process at a time).
    #[must_use]
    pub fn store_path(&self) -> PathBuf {
        self.dir.join("node-data").join("agritrace.redb")
    }

    /// The data directory (`node-data` under the test's directory).
    #[must_use]
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("node-data")
    }

    /// The base URL of its HTTP API.
    #[must_use]
    pub fn url(&self) -> String {
        format!("http://{}", self.http)
    }

    /// Everything the node wrote to its log during its `start`-th start (1 is the first).
    #[must_use]
    pub fn log_of_start(&self, start: u32) -> String {
        std::fs::read_to_string(self.dir.join(format!("node-{start}.stderr"))).unwrap_or_default()
    }

    /// How many times the node was started.
    #[must_use]
    pub fn starts(&self) -> u32 {
        self.starts
    }

    /// Runs `agritrace <args>` with the node's environment (its data directory and HTTP
    /// address) as an operator on the node's host would, and waits for it to exit; its output
    /// is in `<dir>/<name>.stdout` and `.stderr`.
    pub async fn command(
        &self,
        name: &str,
        args: &[String],
    ) -> (std::process::ExitStatus, Process) {
        let mut process = Process::spawn(&self.dir, name, &binary("agritrace"), args, &self.env);
        let status = process.wait().await;
        (status, process)
    }

    /// Starts the node (again) on the same data directory and port, and waits until
    /// `/healthz` answers 200.
    pub async fn restart(&mut self) {
        assert!(self.process.is_none(), "the node is already running");
        self.starts += 1;
        let mut process = Process::spawn(
            &self.dir,
            &format!("node-{}", self.starts),
            &binary("agritrace"),
            &["serve".to_owned()],
            &self.env,
        );
        let url = format!("http://{}/healthz", self.http);
        let client = self.client.clone();
        crate::wait_until("the node to answer /healthz", || {
            if let Some(status) = process.try_wait() {
                panic!(
                    "the node exited at start with {status}\n{}",
                    process.stderr_tail(40)
                );
            }
            let client = client.clone();
            let url = url.clone();
            async move {
                let response = client.get(&url).send().await.ok()?;
                response.status().is_success().then_some(())
            }
        })
        .await;
        self.process = Some(process);
    }

    /// SIGKILL: whatever the node was doing is cut off mid-way.
    pub fn kill9(&mut self) {
        self.process.take().expect("the node is running").kill9();
    }

    /// SIGTERM, and the clean exit it must lead to.
    pub async fn stop(&mut self) {
        let mut process = self.process.take().expect("the node is running");
        let status = process.terminate().await;
        assert!(
            status.success(),
            "the node did not stop cleanly: {status}\n{}",
            process.stderr_tail(40)
        );
    }

    /// The last lines of the running node's log.
    #[must_use]
    pub fn log_tail(&self, lines: usize) -> String {
        self.process
            .as_ref()
            .map(|p| p.stderr_tail(lines))
            .unwrap_or_default()
    }

    /// Registers the devices of `manifest` through the running node (`agritrace device
    /// import`, as an operator does).
    pub async fn import(&self, manifest: &Path) {
        let mut process = Process::spawn(
            &self.dir,
            &format!("import-{}", self.starts),
            &binary("agritrace"),
            &[
                "device".to_owned(),
                "import".to_owned(),
                manifest.display().to_string(),
            ],
            &self.env,
        );
        let status = process.wait().await;
        assert!(
            status.success(),
            "agritrace device import failed: {status}\n{}",
            process.stderr_tail(20)
        );
    }

    /// GET `path`: the status and body, or `None` if the node did not answer.
    pub async fn get(&self, path: &str) -> Option<(u16, String)> {
        let response = self
            .client
            .get(format!("http://{}{path}", self.http))
            .send()
            .await
            .ok()?;
        let status = response.status().as_u16();
        Some((status, response.text().await.ok()?))
    }

    /// The unlabelled samples of `/metrics`, and labelled ones under their full name
    /// (`name{label="value"}`).
    pub async fn metrics(&self) -> BTreeMap<String, f64> {
        let (status, text) = self
            .get("/metrics")
            .await
            .expect("the node answers /metrics");
        assert_eq!(status, 200, "/metrics: {text}");
        text.lines()
            .filter(|line| !line.starts_with('#'))
            .filter_map(|line| {
                let (name, value) = line.rsplit_once(' ')?;
                Some((name.to_owned(), value.parse().ok()?))
            })
            .collect()
    }

    /// A counter or gauge of `/metrics` (0 when absent).
    pub async fn metric(&self, name: &str) -> f64 {
        self.metrics().await.get(name).copied().unwrap_or(0.0)
    }

    /// Waits for `devices` to exit, asserts they drained their outboxes (with their log and
    /// this node's on failure), and returns what they printed.
    pub async fn drained(&self, devices: &mut Process) -> String {
        let status = devices.wait().await;
        assert!(
            status.success(),
            "the devices did not drain their outboxes: {status}\n{}\n--- node log\n{}",
            devices.stderr_tail(40),
            self.log_tail(40)
        );
        devices.stdout()
    }

    /// Waits until the node has accepted at least `at_least` readings; returns how many.
    /// Panics after [`crate::PATIENCE`], with the node's log.
    pub async fn accepted_at_least(&self, at_least: f64) -> f64 {
        let started = std::time::Instant::now();
        loop {
            let accepted = self
                .metric("agritrace_ingest_readings_accepted_total")
                .await;
            if accepted >= at_least {
                return accepted;
            }
            assert!(
                started.elapsed() < crate::PATIENCE,
                "the node accepted only {accepted} readings\n{}",
                self.log_tail(40)
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// The latest published checkpoint (signed note text), if there is one yet.
    pub async fn checkpoint(&self) -> Option<String> {
        match self.get("/log/checkpoint").await? {
            (200, text) => Some(text),
            _ => None,
        }
    }

    /// The log's verifier key.
    pub async fn log_key(&self) -> String {
        let (status, text) = self.get("/v1/log/key").await.expect("the node answers");
        assert_eq!(status, 200, "/v1/log/key: {text}");
        text.trim().to_owned()
    }
}
