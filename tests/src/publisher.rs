//! A device the test holds the key of, and an MQTT client that publishes what the test wants
//! — good readings, and every kind of bad input — and collects the acks the node sends back.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use protocol::limits::{ACK_BYTES_MAX, SIGNED_READING_BYTES_MAX, UPLINK_BYTES_MAX};
use protocol::{
    Ack, DeviceId, DoorState, KeyEpoch, Reading, SequenceNumber, SigningKey, UplinkWriter,
    encode_signed_reading, topic,
};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::task::JoinHandle;

/// A simulated device whose key the test holds.
#[derive(Debug)]
pub struct TestDevice {
    /// Its id.
    pub id: DeviceId,
    key: SigningKey,
}

impl TestDevice {
    /// A device with id `id` and a key derived from `seed` (not secret: tests only).
    #[must_use]
    pub fn new(id: [u8; 8], seed: u8) -> Self {
        Self {
            id: DeviceId(id),
            key: SigningKey::from_bytes(&[seed; 32]),
        }
    }

    /// The manifest `agritrace device import` reads, naming this device's public key.
    #[must_use]
    pub fn manifest(&self) -> String {
        let public: String = self
            .key
            .verifying_key()
            .to_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        serde_json::json!({
            "format": "agritrace-device-manifest/v1",
            "devices": [{
                "device_id": self.id.to_string(),
                "key_epoch": 1,
                "algorithm": "ed25519",
                "public_key": public,
            }],
        })
        .to_string()
    }

    /// Reading `sequence`, signed; `temperature_centi_c` tells two readings of one sequence
    /// number apart.
    #[must_use]
    pub fn signed(&self, sequence: u64, temperature_centi_c: i16) -> Vec<u8> {
        let now_ms = u64::try_from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("a clock after 1970")
                .as_millis(),
        )
        .expect("milliseconds fit u64");
        let reading = Reading {
            device: self.id,
            key_epoch: KeyEpoch(1),
            sequence: SequenceNumber(sequence),
            device_time_ms: now_ms,
            temperature_centi_c,
            humidity_centi_pct: 8_800,
            position: None,
            door: DoorState::Closed,
            shock_events: 0,
            battery_mv: 3_650,
            dropped_samples: 0,
        };
        let mut out = [0u8; SIGNED_READING_BYTES_MAX];
        let len = encode_signed_reading(&reading, &self.key, &mut out).expect("sign a reading");
        out[..len].to_vec()
    }
}

/// An uplink carrying one signed reading.
#[must_use]
pub fn single(signed: &[u8]) -> Vec<u8> {
    let mut buf = [0u8; UPLINK_BYTES_MAX];
    UplinkWriter::single(&mut buf, signed)
        .expect("a single uplink")
        .to_vec()
}

/// An uplink carrying a backlog of signed readings.
#[must_use]
pub fn backlog(signed: &[Vec<u8>]) -> Vec<u8> {
    let mut buf = [0u8; UPLINK_BYTES_MAX];
    let mut writer = UplinkWriter::backlog(&mut buf).expect("a backlog uplink");
    for reading in signed {
        writer.push(reading).expect("the backlog takes the reading");
    }
    writer.finish().expect("a non-empty backlog").to_vec()
}

/// An MQTT client publishing at QoS 1 and collecting the acks of the devices it watches.
#[derive(Debug)]
pub struct Publisher {
    client: AsyncClient,
    acks: Arc<Mutex<BTreeMap<DeviceId, Vec<Ack>>>>,
    task: JoinHandle<()>,
}

impl Publisher {
    /// Connects to the broker on `port` and subscribes to the acks of `watch`.
    pub async fn connect(port: u16, name: &str, watch: &[DeviceId]) -> Self {
        let mut options = MqttOptions::new(name, "127.0.0.1", port);
        options
            .set_keep_alive(Duration::from_secs(5))
            .set_max_packet_size(256 * 1024, 256 * 1024);
        let (client, mut event_loop) = AsyncClient::new(options, 256);
        let acks: Arc<Mutex<BTreeMap<DeviceId, Vec<Ack>>>> = Arc::default();
        let (subscribed_tx, subscribed_rx) = tokio::sync::oneshot::channel();
        let topics: Vec<String> = watch
            .iter()
            .map(|d| topic::acks_topic(*d).to_string())
            .collect();
        let seen = acks.clone();
        let subscriber = client.clone();
        let task = tokio::spawn(async move {
            let mut subscribed = Some(subscribed_tx);
            let mut pending = topics.len();
            loop {
                match event_loop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        for t in &topics {
                            subscriber
                                .subscribe(t.clone(), QoS::AtLeastOnce)
                                .await
                                .expect("queue a subscription");
                        }
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        pending = pending.saturating_sub(1);
                        if pending == 0
                            && let Some(tx) = subscribed.take()
                        {
                            let _ = tx.send(());
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(publish))) => {
                        let device = topic::parse_acks_topic(&publish.topic)
                            .expect("an ack on an acks topic");
                        let ack = Ack::decode(&publish.payload).expect("the node's ack decodes");
                        assert!(publish.payload.len() <= ACK_BYTES_MAX);
                        seen.lock()
                            .expect("acks lock")
                            .entry(device)
                            .or_default()
                            .push(ack);
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        if !watch.is_empty() {
            tokio::time::timeout(crate::PATIENCE, subscribed_rx)
                .await
                .expect("the subscriptions are acknowledged")
                .expect("the client task runs");
        }
        Self { client, acks, task }
    }

    /// Publishes `payload` on `topic` at QoS 1.
    pub async fn publish(&self, topic: &str, payload: Vec<u8>) {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await
            .expect("queue a publication");
    }

    /// Whether an ack for `device` named `sequence`.
    #[must_use]
    pub fn acked(&self, device: DeviceId, sequence: u64) -> bool {
        self.acks
            .lock()
            .expect("acks lock")
            .get(&device)
            .is_some_and(|acks| acks.iter().any(|a| a.contains(SequenceNumber(sequence))))
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.task.abort();
    }
}
