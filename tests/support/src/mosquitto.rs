//! A real Mosquitto broker (Debian's package) for one test: on a free loopback port, with a
//! configuration written into the test's directory, killed with SIGKILL and started again on
//! the same port, each start's output in its own files (`mosquitto-<n>.stderr`).

use std::ffi::OsStr;
use std::fs;
use std::net::TcpStream;
use std::path::{Path, PathBuf};

use crate::Process;

/// Where Debian installs the broker.
pub const MOSQUITTO: &str = "/usr/sbin/mosquitto";

/// A Mosquitto broker started for one test; dropping it SIGKILLs it.
#[derive(Debug)]
pub struct Mosquitto {
    port: u16,
    dir: PathBuf,
    process: Option<Process>,
    starts: u32,
}

impl Mosquitto {
    /// Writes `mosquitto.conf` into `dir`, starts the broker on a free port and waits until it
    /// accepts connections. Blocks the thread for the moment that takes.
    #[must_use]
    pub fn start(dir: &Path) -> Self {
        Self::start_with(dir, None)
    }

    /// [`Mosquitto::start`] with `auth`, the lines of a `mosquitto.conf` fragment turning
    /// authentication on (`allow_anonymous false`, `password_file`, `acl_file`: what
    /// `agritrace broker config` writes), instead of anonymous access.
    #[must_use]
    pub fn start_with(dir: &Path, auth: Option<&str>) -> Self {
        assert!(
            Path::new(MOSQUITTO).exists(),
            "mosquitto is not installed at {MOSQUITTO} (Debian package `mosquitto`): run the \
             README test command, which installs it"
        );
        let port = crate::free_port();
        // Mosquitto 2.0 drops QoS 1 messages beyond 1000 queued per client and allows 20 in
        // flight by default (REFERENCES.md); a test that claims no loss lifts both. Started as
        // root it would switch to the `mosquitto` user, which cannot read the test's files.
        let conf = format!(
            "listener {port} 127.0.0.1\n\
             user root\n\
             {access}\n\
             persistence false\n\
             max_queued_messages 0\n\
             max_inflight_messages 1000\n\
             log_dest stderr\n\
             log_type error\n\
             log_type warning\n\
             log_type notice\n\
             connection_messages false\n",
            access = auth.unwrap_or("allow_anonymous true"),
        );
        let path = dir.join("mosquitto.conf");
        fs::write(&path, conf).unwrap_or_else(|error| panic!("write {}: {error}", path.display()));
        let mut broker = Self {
            port,
            dir: dir.to_owned(),
            process: None,
            starts: 0,
        };
        broker.restart();
        broker
    }

    /// The port it listens on (the same across restarts).
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Starts the broker again (after [`Mosquitto::kill9`]) and waits until it accepts
    /// connections. Blocks the thread for the moment that takes.
    pub fn restart(&mut self) {
        assert!(self.process.is_none(), "the broker is already running");
        self.starts += 1;
        let conf = self.dir.join("mosquitto.conf");
        let mut process = Process::spawn(
            &self.dir,
            &format!("mosquitto-{}", self.starts),
            Path::new(MOSQUITTO),
            &[OsStr::new("-c"), conf.as_os_str()],
            &[],
        );
        let port = self.port;
        crate::wait_until("mosquitto to accept connections", crate::PATIENCE, || {
            if let Some(status) = process.try_wait() {
                panic!(
                    "mosquitto exited at start with {status} (is port {port} taken?)\n{}",
                    process.stderr_tail(20)
                );
            }
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        self.process = Some(process);
    }

    /// SIGKILLs the broker: every connection drops, every message it held is gone.
    pub fn kill9(&mut self) {
        self.process
            .take()
            .expect("kill9 needs a running broker")
            .kill9();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scratch::Scratch;

    #[test]
    fn a_killed_broker_comes_back_on_the_same_port() {
        let dir = Scratch::new("broker");
        let mut broker = Mosquitto::start(dir.path());
        let port = broker.port();
        let mut client = TcpStream::connect(("127.0.0.1", port)).expect("the broker listens");
        broker.kill9();
        // Its connections die with it. (Checking that nothing listens on the port would race
        // with other tests, which may be given the freed port at once.)
        client
            .set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .expect("a read timeout");
        let mut byte = [0u8; 1];
        match std::io::Read::read(&mut client, &mut byte) {
            Ok(0) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            other => panic!("the killed broker's connection is still open: {other:?}"),
        }
        broker.restart();
        assert_eq!(broker.port(), port);
        assert!(TcpStream::connect(("127.0.0.1", port)).is_ok());
        assert!(
            dir.path().join("mosquitto-2.stderr").exists(),
            "each start has its own log"
        );
    }
}
