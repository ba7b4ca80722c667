//! A real Mosquitto broker (Debian's package) on a free loopback port, with a configuration
//! written for the test, that can be killed and started again on the same port.

use std::fs;
use std::net::TcpStream;
use std::path::{Path, PathBuf};

use crate::process::Process;

/// Where Debian installs the broker.
pub const MOSQUITTO: &str = "/usr/sbin/mosquitto";

/// A Mosquitto broker started for one test.
#[derive(Debug)]
pub struct Mosquitto {
    port: u16,
    dir: PathBuf,
    process: Option<Process>,
    starts: u32,
}

impl Mosquitto {
    /// Writes `mosquitto.conf` into `dir` and starts the broker on a free port.
    pub async fn start(dir: &Path) -> Self {
        assert!(
            Path::new(MOSQUITTO).exists(),
            "mosquitto is not installed at {MOSQUITTO}: run the README test command, which installs it"
        );
        let port = crate::free_port();
        // Mosquitto 2.0 drops QoS 1 messages beyond 1000 queued per client and allows 20 in
        // flight by default (REFERENCES.md); a test that claims no loss lifts both.
        let conf = format!(
            "listener {port} 127.0.0.1\n\
             allow_anonymous true\n\
             persistence false\n\
             max_queued_messages 0\n\
             max_inflight_messages 1000\n\
             log_dest stderr\n\
             log_type error\n\
             log_type warning\n\
             connection_messages false\n"
        );
        fs::write(dir.join("mosquitto.conf"), conf).expect("write mosquitto.conf");
        let mut broker = Self {
            port,
            dir: dir.to_owned(),
            process: None,
            starts: 0,
        };
        broker.restart().await;
        broker
    }

    /// The port it listens on (the same across restarts).
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Starts the broker (again) and waits until it accepts connections.
    pub async fn restart(&mut self) {
        assert!(self.process.is_none(), "the broker is already running");
        self.starts += 1;
        let mut process = Process::spawn(
            &self.dir,
            &format!("mosquitto-{}", self.starts),
            Path::new(MOSQUITTO),
            &[
                "-c".to_owned(),
                self.dir.join("mosquitto.conf").display().to_string(),
            ],
            &[],
        );
        let port = self.port;
        crate::wait_until("mosquitto to accept connections", || {
            if let Some(status) = process.try_wait() {
                panic!(
                    "mosquitto exited at start with {status} (is port {port} taken?)\n{}",
                    process.stderr_tail(20)
                );
            }
            let up = TcpStream::connect(("127.0.0.1", port)).is_ok();
            std::future::ready(up.then_some(()))
        })
        .await;
        self.process = Some(process);
    }

    /// SIGKILLs the broker: every connection drops, every message it held is gone.
    pub fn kill9(&mut self) {
        self.process.take().expect("the broker is running").kill9();
    }
}
