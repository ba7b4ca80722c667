//! Fixtures of the ingest tests against real parts: the real sequencer on redb in a temporary
//! directory, and simulated devices that sign readings with `protocol` and collect their acks.
//! The Mosquitto broker they talk through and the waits are the workspace's `test-support`.
#![allow(dead_code)] // Each test file uses a different subset.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ingest::{IngestConfig, IngestHandle, IngestTasks, SystemClock};
use ledger::entry::Entry;
use ledger::merkle::{LeafIndex, empty_root};
use ledger::note::{KeyType, NoteSigner};
use ledger::sequencer::{self, SequencerConfig, SequencerHandle, SequencerTasks};
use ledger::storage::redb::RedbStorage;
use ledger::witness_client::WitnessClient;
use protocol::limits::{SIGNED_READING_BYTES_MAX, UPLINK_BYTES_MAX};
use protocol::{
    Ack, DeviceId, DoorState, KeyEpoch, Reading, SequenceNumber, SigningKey, UplinkWriter,
    encode_signed_reading, topic,
};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

pub const ORIGIN: &str = "agritrace.test/ingest";
/// Guard against hangs in waits (not a timing assertion).
pub const PATIENCE: Duration = Duration::from_secs(120);

/// The node side: sequencer on redb, ingest on the broker.
pub struct Node {
    pub sequencer: SequencerHandle<RedbStorage>,
    pub ingest: IngestHandle<RedbStorage>,
    sequencer_tasks: SequencerTasks,
    ingest_tasks: IngestTasks,
}

impl Node {
    pub async fn start(dir: &Path, port: u16, configure: impl FnOnce(&mut IngestConfig)) -> Self {
        let storage = RedbStorage::open(&dir.join("log.redb"), empty_root().0).expect("open redb");
        let log_key = NoteSigner::new(ORIGIN, KeyType::Ed25519, SigningKey::from_bytes(&[1; 32]))
            .expect("log key");
        let mut config = SequencerConfig::new(ORIGIN);
        config.round_period_ms = 20;
        let (sequencer, sequencer_tasks) = sequencer::start(
            storage,
            log_key,
            config,
            WitnessClient::none().expect("no witnesses"),
        )
        .await
        .expect("start the sequencer");
        let mut config = IngestConfig {
            broker_port: port,
            client_id_prefix: format!("ingest-test-{port}"),
            batch_window_ms: 30,
            ..IngestConfig::default()
        };
        configure(&mut config);
        let (ingest, ingest_tasks) =
            ingest::start(config, sequencer.clone(), Arc::new(SystemClock)).expect("start ingest");
        Self {
            sequencer,
            ingest,
            sequencer_tasks,
            ingest_tasks,
        }
    }

    pub async fn stop(self) {
        self.ingest_tasks.shutdown().await;
        self.sequencer_tasks.shutdown().await;
    }

    /// Every `ReadingBatch` entry in the log.
    pub async fn batches(&self) -> Vec<(LeafIndex, ledger::entry::ReadingBatch)> {
        let size = self.sequencer.durable_state().size;
        let mut out = Vec::new();
        for index in 0..size {
            let bytes = self
                .sequencer
                .entry(LeafIndex(index))
                .await
                .expect("read entry")
                .expect("entry exists");
            if let Entry::ReadingBatch(batch) = Entry::decode(&bytes).expect("decode entry") {
                out.push((LeafIndex(index), batch));
            }
        }
        out
    }
}

pub fn device(n: u8) -> DeviceId {
    DeviceId([0xa9, 0, 0, 1, 0, 0, 0, n])
}

pub fn device_key(n: u8) -> SigningKey {
    SigningKey::from_bytes(&[0x30 + n; 32])
}

/// The wall clock in Unix ms.
pub fn now_ms() -> u64 {
    u64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970")
            .as_millis(),
    )
    .expect("ms fit u64")
}

/// The test run's start (Unix ms), so that signing a reading twice gives the same bytes.
pub fn run_start_ms() -> u64 {
    static START: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *START.get_or_init(now_ms)
}

/// Device `n`'s reading `sequence` with `temperature`, signed by `key` (deterministic).
pub fn signed_reading(n: u8, sequence: u64, temperature: i16, key: &SigningKey) -> Vec<u8> {
    let reading = Reading {
        device: device(n),
        key_epoch: KeyEpoch(1),
        sequence: SequenceNumber(sequence),
        device_time_ms: run_start_ms() + sequence * 1_000,
        temperature_centi_c: temperature,
        humidity_centi_pct: 8_000,
        position: None,
        door: DoorState::Closed,
        shock_events: 0,
        battery_mv: 3_300,
        dropped_samples: 0,
    };
    let mut out = [0u8; SIGNED_READING_BYTES_MAX];
    let len = encode_signed_reading(&reading, key, &mut out).expect("encode a reading");
    out[..len].to_vec()
}

pub fn good(n: u8, sequence: u64) -> Vec<u8> {
    signed_reading(n, sequence, 450, &device_key(n))
}

pub fn single(signed: &[u8]) -> Vec<u8> {
    let mut buf = [0u8; UPLINK_BYTES_MAX];
    UplinkWriter::single(&mut buf, signed)
        .expect("single")
        .to_vec()
}

pub fn backlog(readings: &[Vec<u8>]) -> Vec<u8> {
    let mut buf = [0u8; UPLINK_BYTES_MAX];
    let mut writer = UplinkWriter::backlog(&mut buf).expect("backlog");
    for reading in readings {
        writer.push(reading).expect("push");
    }
    writer.finish().expect("a reading").to_vec()
}

/// Simulated devices: one MQTT connection publishing on device topics and collecting acks.
pub struct Devices {
    client: AsyncClient,
    acked: Arc<Mutex<BTreeMap<DeviceId, BTreeSet<u64>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Devices {
    pub async fn connect(port: u16) -> Self {
        let mut options = MqttOptions::new(format!("devices-{port}"), "127.0.0.1", port);
        options
            .set_keep_alive(Duration::from_secs(10))
            .set_max_packet_size(64 * 1024, 64 * 1024);
        let (client, mut event_loop) = AsyncClient::new(options, 4096);
        let acked: Arc<Mutex<BTreeMap<DeviceId, BTreeSet<u64>>>> = Arc::default();
        let subscribed = Arc::new(tokio::sync::Notify::new());
        let (state, ready, subscriber) = (acked.clone(), subscribed.clone(), client.clone());
        let task = tokio::spawn(async move {
            loop {
                match event_loop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        subscriber
                            .try_subscribe("agritrace/v1/devices/+/acks", QoS::AtLeastOnce)
                            .expect("queue the acks subscription");
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => ready.notify_one(),
                    Ok(Event::Incoming(Packet::Publish(publish))) => {
                        let device =
                            topic::parse_acks_topic(&publish.topic).expect("an acks topic");
                        let ack = Ack::decode(&publish.payload).expect("a well-formed ack");
                        assert_eq!(ack.device, device, "an ack names its topic's device");
                        let mut acked = state.lock().expect("acks lock");
                        let set = acked.entry(device).or_default();
                        for range in ack.ranges() {
                            set.extend(range.first..=range.last);
                        }
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        });
        subscribed.notified().await;
        Self {
            client,
            acked,
            task,
        }
    }

    /// Publishes `payload` at QoS 1 on device `n`'s readings topic.
    pub async fn publish(&self, n: u8, payload: Vec<u8>) {
        self.client
            .publish(
                topic::readings_topic(device(n)).as_str(),
                QoS::AtLeastOnce,
                false,
                payload,
            )
            .await
            .expect("queue a publish");
    }

    pub fn acked(&self, n: u8) -> BTreeSet<u64> {
        self.acked
            .lock()
            .expect("acks lock")
            .get(&device(n))
            .cloned()
            .unwrap_or_default()
    }

    pub fn acked_all(&self, n: u8, sequences: impl IntoIterator<Item = u64>) -> bool {
        let acked = self.acked(n);
        sequences.into_iter().all(|s| acked.contains(&s))
    }
}

impl Drop for Devices {
    fn drop(&mut self) {
        self.task.abort();
    }
}
