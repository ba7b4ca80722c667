//! Harness of the end-to-end device tests: a stand-in for ingest that verifies and
//! acknowledges readings, the manifest reader, and the `agritrace-device` binary as a child
//! process. The broker, child processes and waits are the workspace's shared `test-support`.
//!
//! The stand-in does what ingest will do on the device-facing side (DESIGN.md, data flow step
//! 2): decode each uplink, verify every signed reading with the device key from the manifest,
//! deduplicate by (device, sequence), and publish an ack naming the done sequence numbers on
//! the device's acks topic, for duplicates and rejected readings too.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::fs;
use std::path::Path;
use std::process::ExitStatus;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use protocol::{AckBuilder, DeviceId, SequenceNumber, SignedReading, Uplink, VerifyingKey, topic};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use test_support::Process;

/// One device of the manifest.
#[derive(Clone, Debug)]
pub struct ManifestDevice {
    pub device: DeviceId,
    pub key_epoch: u32,
    pub public_key: VerifyingKey,
}

/// Reads `<keys-dir>/manifest.json` as the backend would import it.
pub fn read_manifest(keys_dir: &Path) -> Vec<ManifestDevice> {
    let path = keys_dir.join("manifest.json");
    let text = fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("read {}: {error}", path.display()));
    let manifest: serde_json::Value = serde_json::from_str(&text).expect("the manifest is JSON");
    assert_eq!(manifest["format"], "agritrace-device-manifest/v1");
    manifest["devices"]
        .as_array()
        .expect("the manifest lists devices")
        .iter()
        .map(|entry| {
            let device: DeviceId = entry["device_id"]
                .as_str()
                .expect("device_id")
                .parse()
                .expect("a device id");
            let key_hex = entry["public_key"].as_str().expect("public_key");
            let mut key = [0u8; 32];
            assert_eq!(key_hex.len(), 64, "public key length");
            for (i, byte) in key.iter_mut().enumerate() {
                *byte = u8::from_str_radix(&key_hex[2 * i..2 * i + 2], 16).expect("hex public key");
            }
            ManifestDevice {
                device,
                key_epoch: u32::try_from(entry["key_epoch"].as_u64().expect("key_epoch"))
                    .expect("u32 epoch"),
                public_key: VerifyingKey::from_bytes(&key).expect("a valid Ed25519 public key"),
            }
        })
        .collect()
}

/// What the stand-in for ingest has seen.
#[derive(Debug, Default)]
pub struct Collected {
    /// Accepted readings by device and sequence: the exact signed bytes.
    pub readings: BTreeMap<DeviceId, BTreeMap<u64, Vec<u8>>>,
    /// Exact repeats of accepted readings (acknowledged again and dropped).
    pub duplicates: u64,
    /// Uplink messages received.
    pub messages: u64,
    /// Readings that failed to decode or verify, or came on the wrong topic.
    pub rejected: Vec<String>,
    /// A different reading under a sequence number already used.
    pub conflicts: Vec<String>,
    /// Acks published.
    pub acks_sent: u64,
    /// Connections of the stand-in (1 + reconnects).
    pub connections: u64,
    /// Uplink messages still to be ignored (neither recorded nor acknowledged), as an ingest
    /// that lost them would: only the device's resend timeout can bring their readings back.
    pub ignore_next: u64,
    /// Uplink messages ignored so far.
    pub ignored: u64,
}

impl Collected {
    pub fn unique(&self) -> usize {
        self.readings.values().map(BTreeMap::len).sum()
    }

    pub fn sequences(&self, device: DeviceId) -> BTreeSet<u64> {
        self.readings
            .get(&device)
            .map(|r| r.keys().copied().collect())
            .unwrap_or_default()
    }
}

/// The stand-in for ingest: a rumqttc subscriber on every readings topic.
#[derive(Debug)]
pub struct AckingSubscriber {
    pub collected: Arc<Mutex<Collected>>,
    task: tokio::task::JoinHandle<()>,
}

impl AckingSubscriber {
    /// Connects to the broker on `port` and runs on `runtime`.
    pub fn start(runtime: &tokio::runtime::Handle, port: u16, devices: &[ManifestDevice]) -> Self {
        let keys: HashMap<DeviceId, ManifestDevice> =
            devices.iter().map(|d| (d.device, d.clone())).collect();
        let collected = Arc::new(Mutex::new(Collected::default()));
        let mut options = MqttOptions::new(format!("ingest-stand-in-{port}"), "127.0.0.1", port);
        options
            .set_keep_alive(Duration::from_secs(5))
            .set_max_packet_size(16 * 1024, 16 * 1024);
        // Bounded, and far larger than the acks of one test run, so try_publish never finds it
        // full; if it ever does, the ack waits in `unsent` for the next turn.
        let (client, mut event_loop) = AsyncClient::new(options, 4096);
        let state = collected.clone();
        let task = runtime.spawn(async move {
            let mut unsent: VecDeque<(String, Vec<u8>)> = VecDeque::new();
            loop {
                match event_loop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        state.lock().expect("collector lock").connections += 1;
                        // A clean session forgets subscriptions: subscribe after every ConnAck.
                        client
                            .try_subscribe(topic::READINGS_FILTER, QoS::AtLeastOnce)
                            .expect("queue the readings subscription");
                    }
                    Ok(Event::Incoming(Packet::Publish(publish))) => {
                        let acks = handle_uplink(&keys, &state, &publish.topic, &publish.payload);
                        unsent.extend(acks);
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
                while let Some((topic, payload)) = unsent.pop_front() {
                    if client
                        .try_publish(topic.clone(), QoS::AtLeastOnce, false, payload.clone())
                        .is_err()
                    {
                        unsent.push_front((topic, payload));
                        break;
                    }
                    state.lock().expect("collector lock").acks_sent += 1;
                }
            }
        });
        Self { collected, task }
    }

    pub fn unique(&self) -> usize {
        self.collected.lock().expect("collector lock").unique()
    }

    /// The distinct sequence numbers of `device` received so far.
    pub fn sequences(&self, device: DeviceId) -> BTreeSet<u64> {
        self.collected
            .lock()
            .expect("collector lock")
            .sequences(device)
    }

    /// Ignores the next `messages` uplink messages.
    pub fn ignore_next(&self, messages: u64) {
        self.collected.lock().expect("collector lock").ignore_next = messages;
    }

    /// Connections so far (1 + reconnects).
    pub fn connections(&self) -> u64 {
        self.collected.lock().expect("collector lock").connections
    }

    /// Takes everything collected so far and starts afresh.
    pub fn take(&self) -> Collected {
        std::mem::take(&mut *self.collected.lock().expect("collector lock"))
    }
}

impl Drop for AckingSubscriber {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Verifies, deduplicates and records one uplink; returns the acks to publish.
fn handle_uplink(
    keys: &HashMap<DeviceId, ManifestDevice>,
    state: &Mutex<Collected>,
    topic_name: &str,
    payload: &[u8],
) -> Vec<(String, Vec<u8>)> {
    let mut state = state.lock().expect("collector lock");
    state.messages += 1;
    if state.ignore_next > 0 {
        state.ignore_next -= 1;
        state.ignored += 1;
        return Vec::new();
    }
    let Ok(device) = topic::parse_readings_topic(topic_name) else {
        state
            .rejected
            .push(format!("message on an unexpected topic {topic_name}"));
        return Vec::new();
    };
    let uplink = match Uplink::decode(payload) {
        Ok(uplink) => uplink,
        Err(error) => {
            state
                .rejected
                .push(format!("{device}: undecodable uplink: {error}"));
            return Vec::new();
        }
    };
    let mut done = BTreeSet::new();
    for bytes in uplink.readings() {
        let signed = match SignedReading::decode(bytes) {
            Ok(signed) => signed,
            Err(error) => {
                state
                    .rejected
                    .push(format!("{device}: undecodable reading: {error}"));
                continue;
            }
        };
        let reading = *signed.reading();
        let sequence = reading.sequence.0;
        // Rejected for good readings are acknowledged too, so they leave the outbox.
        done.insert(sequence);
        if reading.device != device {
            state.rejected.push(format!(
                "{device}: reading of {} on its topic",
                reading.device
            ));
            continue;
        }
        let Some(key) = keys.get(&device) else {
            state
                .rejected
                .push(format!("{device}: not in the manifest"));
            continue;
        };
        if reading.key_epoch.0 != key.key_epoch {
            state.rejected.push(format!(
                "{device}/{sequence}: key epoch {} is not the manifest's",
                reading.key_epoch.0
            ));
            continue;
        }
        if let Err(error) = signed.verify(&key.public_key) {
            state.rejected.push(format!("{device}/{sequence}: {error}"));
            continue;
        }
        let seen = state.readings.entry(device).or_default();
        match seen.get(&sequence) {
            None => {
                seen.insert(sequence, bytes.to_vec());
            }
            Some(first) if first.as_slice() == bytes => state.duplicates += 1,
            Some(_) => state.conflicts.push(format!(
                "{device}/{sequence}: a different reading under a used sequence number"
            )),
        }
    }
    // One ack holds ACK_RANGES_MAX ranges; scattered numbers go out in several acks.
    let mut builders = vec![AckBuilder::new(device)];
    for sequence in done {
        let builder = builders.last_mut().expect("at least one builder");
        if builder.push(SequenceNumber(sequence)).is_err() {
            let mut next = AckBuilder::new(device);
            next.push(SequenceNumber(sequence))
                .expect("a fresh ack takes one number");
            builders.push(next);
        }
    }
    let acks_topic = topic::acks_topic(device).to_string();
    builders
        .into_iter()
        .filter_map(AckBuilder::finish)
        .map(|ack| {
            let mut buf = [0u8; protocol::limits::ACK_BYTES_MAX];
            let bytes = ack.encode(&mut buf).expect("encode an ack").to_vec();
            (acks_topic.clone(), bytes)
        })
        .collect()
}

/// The `agritrace-device` binary of this package as a child process, its output in
/// `<dir>/<name>.stdout` and `<dir>/<name>.stderr`.
pub fn spawn_device(dir: &Path, name: &str, args: &[String]) -> Process {
    Process::spawn(
        dir,
        name,
        Path::new(env!("CARGO_BIN_EXE_agritrace-device")),
        args,
        &[("AGRITRACE_LOG", "info,rumqttc=warn".to_owned())],
    )
}

/// Runs the binary to completion with `args` (killed, and the test failed, if it takes longer
/// than `limit`) and returns its status and standard output.
pub fn run_device(
    dir: &Path,
    name: &str,
    args: &[String],
    limit: Duration,
) -> (ExitStatus, String) {
    let mut process = spawn_device(dir, name, args).with_patience(limit);
    let status = process.wait_blocking();
    (status, process.stdout())
}
