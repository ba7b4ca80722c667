//! Simulated devices: `agritrace-device` processes over one keys directory, and what they
//! report — every reading made durable in a device's outbox journal (`--print-persisted`) and
//! the per-device table printed on exit.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use protocol::DeviceId;

use crate::process::{Process, binary};

/// A fleet of simulated devices sharing one keys directory.
#[derive(Debug, Clone)]
pub struct Fleet {
    keys_dir: PathBuf,
    devices: u32,
    prefix: String,
    seed: u64,
}

/// One line of the table `agritrace-device` prints on exit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceSummary {
    /// The device.
    pub device: DeviceId,
    /// First and last sequence number of this run, if it recorded any.
    pub sequences: Option<(u64, u64)>,
    /// Readings recorded, sent, acknowledged, dropped (evicted), still pending.
    pub recorded: u64,
    /// Publications, resends included.
    pub sent: u64,
    /// Readings acknowledged by the backend.
    pub acked: u64,
    /// Readings evicted from a full outbox.
    pub dropped: u64,
    /// Readings not yet acknowledged at exit.
    pub pending: u64,
    /// Connections to the broker (1 + reconnections).
    pub connects: u64,
}

impl Fleet {
    /// Creates the keys of `devices` devices with ids `<prefix><i>` (keys derived from `seed`)
    /// and their manifest, without connecting anywhere.
    pub async fn provision(dir: &Path, devices: u32, prefix: &str, seed: u64) -> Self {
        let fleet = Self {
            keys_dir: dir.join(format!("keys-{prefix}")),
            devices,
            prefix: prefix.to_owned(),
            seed,
        };
        let mut args = fleet.common_args();
        args.push("--provision-only".to_owned());
        let mut process = Process::spawn(
            dir,
            &format!("provision-{prefix}"),
            &binary("agritrace-device"),
            &args,
            &[],
        );
        let status = process.wait().await;
        assert!(
            status.success(),
            "provisioning failed: {status}\n{}",
            process.stderr_tail(20)
        );
        assert!(fleet.manifest().exists(), "no manifest was written");
        fleet
    }

    /// `manifest.json`, for `agritrace device import`.
    #[must_use]
    pub fn manifest(&self) -> PathBuf {
        self.keys_dir.join("manifest.json")
    }

    fn common_args(&self) -> Vec<String> {
        vec![
            "--devices".to_owned(),
            self.devices.to_string(),
            "--fleet-prefix".to_owned(),
            self.prefix.clone(),
            "--keys-dir".to_owned(),
            self.keys_dir.display().to_string(),
            "--seed".to_owned(),
            self.seed.to_string(),
        ]
    }

    /// Starts the devices against the broker on `port`, printing every persisted reading;
    /// `args` adds flags (`--readings`, `--sample-period`, ...).
    #[must_use]
    pub fn spawn(&self, dir: &Path, name: &str, port: u16, args: &[&str]) -> Process {
        let mut all = self.common_args();
        all.extend([
            "--broker".to_owned(),
            format!("127.0.0.1:{port}"),
            "--print-persisted".to_owned(),
            "--log".to_owned(),
            "info,rumqttc=warn".to_owned(),
        ]);
        all.extend(args.iter().map(|&a| a.to_owned()));
        Process::spawn(dir, name, &binary("agritrace-device"), &all, &[])
    }

    /// The devices as the load tests run them: `readings` each, one a second of device time
    /// run `time_scale` times faster, a reading unacknowledged for `resend_after` sent again,
    /// and four minutes for the outboxes to drain at the end.
    #[must_use]
    pub fn stream(
        &self,
        dir: &Path,
        port: u16,
        readings: u64,
        time_scale: u32,
        resend_after: &str,
    ) -> Process {
        self.spawn(
            dir,
            "devices",
            port,
            &[
                "--readings",
                &readings.to_string(),
                "--sample-period",
                "1s",
                "--time-scale",
                &time_scale.to_string(),
                "--resend-after",
                resend_after,
                "--exit-timeout",
                "240s",
            ],
        )
    }
}

/// Every reading the devices printed as durable in their outbox journals: the readings that
/// exist and that the backend must end up holding once the outboxes drain.
#[must_use]
pub fn persisted(stdout: &str) -> BTreeMap<DeviceId, BTreeSet<u64>> {
    let mut out: BTreeMap<DeviceId, BTreeSet<u64>> = BTreeMap::new();
    for line in stdout.lines() {
        let mut words = line.split_whitespace();
        if words.next() != Some("persisted") {
            continue;
        }
        let device: DeviceId = words
            .next()
            .and_then(|w| w.parse().ok())
            .unwrap_or_else(|| panic!("a persisted line without a device: {line:?}"));
        let sequence: u64 = words
            .next()
            .and_then(|w| w.parse().ok())
            .unwrap_or_else(|| panic!("a persisted line without a sequence: {line:?}"));
        out.entry(device).or_default().insert(sequence);
    }
    out
}

/// The per-device table `agritrace-device` prints on exit.
#[must_use]
pub fn summary(stdout: &str) -> Vec<DeviceSummary> {
    let number = |word: &str| -> u64 {
        word.parse()
            .unwrap_or_else(|_| panic!("not a number in the device table: {word:?}"))
    };
    stdout
        .lines()
        .filter_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            let device: DeviceId = words.first()?.parse().ok()?;
            if words.len() < 9 {
                return None;
            }
            let sequences = (words[1] != "-").then(|| (number(words[1]), number(words[2])));
            Some(DeviceSummary {
                device,
                sequences,
                recorded: number(words[3]),
                sent: number(words[4]),
                acked: number(words[5]),
                dropped: number(words[6]),
                pending: number(words[7]),
                connects: number(words[8]),
            })
        })
        .collect()
}
