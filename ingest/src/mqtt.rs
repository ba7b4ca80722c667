//! The MQTT edge: worker connections on the shared subscription and the device-ack publisher.
//!
//! Following the rumqttc pitfalls (REFERENCES.md): each connection's event loop is polled by
//! its own task, which never awaits a publish or an ack (both go through `try_*` calls from
//! other tasks); manual acks are on, and a message is acked through the client of the
//! connection that received it, and only while that connection lives (a message from a
//! replaced connection is never acked on the new one: its packet id means nothing there).
//!
//! Backpressure: a worker takes a permit per message before forwarding it and the permit is
//! returned when the message is acked (or dropped). With all permits out the worker stops
//! reading the socket, so the broker holds the rest; nothing is dropped and no queue grows.
//! rumqttc's event loop takes one request per poll at most, so acks can find the request
//! channel full; such an ack is kept and retried (never dropped), and the connection's later
//! acks wait behind it so they leave in receive order. Its permit is returned at once, since
//! the worker must keep polling for the channel to drain; the acks kept are then bounded by
//! the broker's in-flight window for the connection (unacknowledged messages).
//!
//! Why the order matters: Mosquitto 2.0 finds the message a `PUBACK` names by walking the
//! connection's in-flight list from its oldest entry. One ack left behind (retried later)
//! made every later `PUBACK` of the connection walk past it; with thousands in flight the
//! broker spent 94% of its time in that walk (`db__message_delete_outgoing`, measured with
//! `perf`) and carried 2,400 readings a second.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Outgoing, Packet, Publish, QoS};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::task::JoinHandle;

use crate::clock::Clock;
use crate::config::IngestConfig;
use crate::metrics::{Metrics, add};

/// Device acks an ack connection keeps in flight (published, not yet acknowledged by the
/// broker). At tens of thousands of device acks a second, 100 in flight held the publisher to
/// one broker round trip per 100 acks; 1,000 keeps it ahead while the broker keeps up. Beyond
/// it the batcher holds acks and merges them (see [`AckPublisher`]).
pub const ACK_PUBLISHER_INFLIGHT: u16 = 1_000;
/// Request-channel room of an ack connection beyond its in-flight window (its subscription
/// and disconnect requests, and a race between a `PUBACK` and the room check).
const ACK_CHANNEL_SLACK: usize = 64;
/// Largest outgoing packet (acks and subscriptions are small).
const OUTGOING_PACKET_BYTES_MAX: usize = 16 * 1024;
/// First wait before a reconnection.
const RECONNECT_BACKOFF_MIN_MS: u64 = 100;

/// A message taken from the broker, with what it takes to acknowledge it.
#[derive(Debug)]
pub struct Delivery {
    /// The worker that received it.
    pub worker: usize,
    /// That worker's connection generation when it arrived.
    pub generation: u64,
    /// The message (its packet id acknowledges it).
    pub publish: Publish,
    /// Ingest's clock when it arrived (Unix ms).
    pub received_ms: u64,
    /// Returned to the worker when the delivery is decided (acked, or dropped).
    permit: Option<OwnedSemaphorePermit>,
}

impl Delivery {
    /// Returns the worker's permit now, before the ack is queued: an ack waiting behind
    /// another must not hold the permit the worker may be waiting for (while it waits it
    /// does not poll, and its request channel does not drain).
    pub fn release_permit(&mut self) {
        self.permit = None;
    }
}

/// What the batcher needs to acknowledge a worker's messages.
#[derive(Debug, Clone)]
pub struct WorkerLink {
    client: AsyncClient,
    generation: Arc<AtomicU64>,
}

/// Why an MQTT ack was not queued.
#[derive(Debug)]
pub enum AckOutcome {
    /// Queued for the broker.
    Queued,
    /// The connection that received the message is gone; nothing to ack.
    Stale,
    /// The request channel is full: retry later.
    Retry(Delivery),
}

impl WorkerLink {
    /// Queues the ack of `delivery` on its connection. The worker's permit is returned first,
    /// even if the request channel is full: the event loop drains that channel only while the
    /// worker polls, so holding the permit until the ack is queued could stop both.
    pub fn ack(&self, mut delivery: Delivery, metrics: &Metrics) -> AckOutcome {
        delivery.permit = None;
        if self.generation.load(Ordering::Acquire) != delivery.generation {
            add(&metrics.mqtt_acks_stale, 1);
            return AckOutcome::Stale;
        }
        match self.client.try_ack(&delivery.publish) {
            Ok(()) => {
                add(&metrics.mqtt_acks, 1);
                AckOutcome::Queued
            }
            Err(_) => AckOutcome::Retry(delivery),
        }
    }

    /// Asks the connection to close (the worker task ends once it is sent).
    pub fn disconnect(&self) {
        let _ = self.client.try_disconnect();
    }
}

fn options(config: &IngestConfig, client_id: String) -> MqttOptions {
    let mut options = MqttOptions::new(client_id, config.broker_host.clone(), config.broker_port);
    options
        .set_keep_alive(Duration::from_secs(config.keep_alive_secs))
        .set_clean_session(true)
        .set_max_packet_size(config.incoming_packet_bytes_max, OUTGOING_PACKET_BYTES_MAX);
    if let Some(login) = &config.broker_login {
        options.set_credentials(login.username.clone(), login.password.clone());
    }
    options
}

/// Waits before the next connection attempt, doubling up to the configured maximum.
async fn back_off(backoff_ms: &mut u64, max_ms: u64) {
    tokio::time::sleep(Duration::from_millis(*backoff_ms)).await;
    *backoff_ms = (*backoff_ms * 2).min(max_ms);
}

/// Starts worker `index`: its connection, subscription and polling task.
pub fn spawn_worker(
    index: usize,
    config: &IngestConfig,
    forward: mpsc::Sender<Delivery>,
    stop: watch::Receiver<bool>,
    metrics: Arc<Metrics>,
    clock: Arc<dyn Clock>,
) -> (WorkerLink, JoinHandle<()>) {
    let mut mqtt = options(config, format!("{}-{index}", config.client_id_prefix));
    mqtt.set_manual_acks(true);
    let permits = config.worker_messages_in_flight_max;
    let (client, event_loop) = AsyncClient::new(mqtt, permits + 16);
    let link = WorkerLink {
        client: client.clone(),
        generation: Arc::new(AtomicU64::new(0)),
    };
    let worker = Worker {
        index,
        client,
        event_loop,
        generation: link.generation.clone(),
        permits: Arc::new(Semaphore::new(permits)),
        forward: Some(forward),
        stop,
        metrics,
        clock,
        subscription: config.subscription.clone(),
        backoff_max_ms: config.reconnect_backoff_max_ms,
    };
    (link, tokio::spawn(worker.run()))
}

struct Worker {
    index: usize,
    client: AsyncClient,
    event_loop: EventLoop,
    generation: Arc<AtomicU64>,
    permits: Arc<Semaphore>,
    forward: Option<mpsc::Sender<Delivery>>,
    stop: watch::Receiver<bool>,
    metrics: Arc<Metrics>,
    clock: Arc<dyn Clock>,
    subscription: String,
    backoff_max_ms: u64,
}

impl Worker {
    async fn run(mut self) {
        let mut backoff_ms = RECONNECT_BACKOFF_MIN_MS;
        // Whether this worker counts in `workers_connected` (readiness).
        let mut connected = false;
        let metrics = self.metrics.clone();
        let disconnected = |connected: &mut bool| {
            if std::mem::take(connected) {
                metrics.workers_connected.fetch_sub(1, Ordering::Relaxed);
            }
        };
        loop {
            let event = if self.forward.is_some() {
                // Until shutdown begins, also wake on the stop signal: the forwarding side must
                // close promptly so the pipeline can drain. (Dropping the poll future once, at
                // that moment, keeps its buffers: rumqttc reads into the connection's buffer.)
                tokio::select! {
                    event = self.event_loop.poll() => event,
                    _ = self.stop.changed() => {
                        self.forward = None;
                        continue;
                    }
                }
            } else {
                self.event_loop.poll().await
            };
            match event {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    backoff_ms = RECONNECT_BACKOFF_MIN_MS;
                    // A new connection: packet ids of the old one mean nothing now.
                    self.generation.fetch_add(1, Ordering::AcqRel);
                    add(&self.metrics.connections, 1);
                    if !std::mem::replace(&mut connected, true) {
                        add(&self.metrics.workers_connected, 1);
                    }
                    // A clean start forgets subscriptions: subscribe after every ConnAck.
                    if let Err(error) = self
                        .client
                        .try_subscribe(self.subscription.clone(), QoS::AtLeastOnce)
                    {
                        tracing::error!(worker = self.index, %error, "could not queue the subscription");
                    }
                    tracing::info!(worker = self.index, "connected to the broker");
                }
                Ok(Event::Incoming(Packet::Publish(publish))) => {
                    if !self.take(publish).await {
                        // Shutting down: the message stays unacked; the broker or the device
                        // offers it again.
                        self.forward = None;
                    }
                }
                Ok(Event::Outgoing(Outgoing::Disconnect)) => {
                    disconnected(&mut connected);
                    return;
                }
                Ok(_) => {}
                Err(error) => {
                    disconnected(&mut connected);
                    if self.forward.is_none() && *self.stop.borrow() {
                        return;
                    }
                    add(&self.metrics.connection_errors, 1);
                    tracing::warn!(worker = self.index, %error, "broker connection failed; reconnecting");
                    back_off(&mut backoff_ms, self.backoff_max_ms).await;
                }
            }
        }
    }

    /// Forwards one message once a permit is free. False when shutting down.
    async fn take(&mut self, publish: Publish) -> bool {
        let Some(forward) = &self.forward else {
            return false;
        };
        let permit = tokio::select! {
            permit = self.permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return false,
            },
            _ = self.stop.changed() => return false,
        };
        let delivery = Delivery {
            worker: self.index,
            generation: self.generation.load(Ordering::Acquire),
            publish,
            received_ms: self.clock.now_ms(),
            permit: Some(permit),
        };
        // The verifier's queue is bounded; waiting here is the backpressure.
        forward.send(delivery).await.is_ok()
    }
}

/// Publishes device acks on connections of their own, so a slow ack path never delays an
/// MQTT ack and an MQTT ack never waits for a device ack.
///
/// One connection per worker: one rumqttc connection publishes QoS 1 at about 10,000–15,000
/// messages a second (one request per event-loop poll, one write each), below the readings
/// rate of a busy node. A device's acks always go through the same connection (chosen by its
/// topic), so they stay in order.
///
/// Each connection counts the acks it queued that the broker has not yet acknowledged
/// (`PUBACK`). The batcher publishes a device's ack only while its connection has
/// [`room`](Self::has_room) (fewer than [`ACK_PUBLISHER_INFLIGHT`] outstanding); otherwise it
/// holds the ack and merges later ones into it. So nothing is ever queued behind a full
/// request channel (where it was once dropped), an ack leaves at once while the broker keeps
/// up, and when the broker falls behind each ack covers more readings (coalescing by load).
#[derive(Debug, Clone)]
pub struct AckPublisher {
    connections: Vec<AckConnection>,
}

#[derive(Debug, Clone)]
struct AckConnection {
    client: AsyncClient,
    /// Acks queued on this connection and not yet acknowledged by the broker.
    outstanding: Arc<AtomicU64>,
}

/// FNV-1a over the topic: spreads devices over the ack connections, the same way every time.
fn connection_for(topic: &str, connections: usize) -> usize {
    let hash = topic.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    usize::try_from(hash % u64::try_from(connections.max(1)).unwrap_or(1)).unwrap_or(0)
}

/// Decrements without wrapping (a `PUBACK` after a reconnection reset the count).
fn settle_one(outstanding: &AtomicU64) {
    let _ = outstanding.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
}

/// Why a device ack was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckPublishError {
    /// The connection has [`ACK_PUBLISHER_INFLIGHT`] acks outstanding: hold it, try later.
    Busy,
    /// The connection's request channel refused it (full, or the connection task is gone).
    Refused,
}

impl AckPublisher {
    /// Starts the publisher's connections (as many as workers) and one task that ends when
    /// all of their polling tasks end.
    pub fn spawn(config: &IngestConfig, metrics: Arc<Metrics>) -> (Self, JoinHandle<()>) {
        let mut connections = Vec::with_capacity(config.workers);
        let mut tasks = Vec::with_capacity(config.workers);
        for index in 0..config.workers.max(1) {
            // The first keeps the historical client id.
            let id = match index {
                0 => format!("{}-acks", config.client_id_prefix),
                _ => format!("{}-acks-{index}", config.client_id_prefix),
            };
            let mut mqtt = options(config, id);
            mqtt.set_inflight(ACK_PUBLISHER_INFLIGHT);
            // At most ACK_PUBLISHER_INFLIGHT acks are outstanding when one is queued (see
            // `has_room`), so the channel never holds more than that.
            let (client, mut event_loop) = AsyncClient::new(
                mqtt,
                usize::from(ACK_PUBLISHER_INFLIGHT) + ACK_CHANNEL_SLACK,
            );
            let outstanding = Arc::new(AtomicU64::new(0));
            let backoff_max_ms = config.reconnect_backoff_max_ms;
            let metrics = metrics.clone();
            let settled = outstanding.clone();
            tasks.push(tokio::spawn(async move {
                let mut backoff_ms = RECONNECT_BACKOFF_MIN_MS;
                loop {
                    match event_loop.poll().await {
                        Ok(Event::Incoming(Packet::PubAck(_))) => settle_one(&settled),
                        Ok(Event::Incoming(Packet::ConnAck(_))) => {
                            backoff_ms = RECONNECT_BACKOFF_MIN_MS;
                            // A clean start forgets what was in flight; what rumqttc sends
                            // again is counted down without wrapping. A lost ack costs the
                            // device a resend, acked then as a duplicate.
                            settled.store(0, Ordering::Release);
                        }
                        Ok(Event::Outgoing(Outgoing::Disconnect)) => return,
                        Ok(_) => {}
                        Err(rumqttc::ConnectionError::RequestsDone) => return,
                        Err(error) => {
                            add(&metrics.connection_errors, 1);
                            tracing::warn!(%error, "ack publisher connection failed; reconnecting");
                            back_off(&mut backoff_ms, backoff_max_ms).await;
                        }
                    }
                }
            }));
            connections.push(AckConnection {
                client,
                outstanding,
            });
        }
        let task = tokio::spawn(async move {
            for task in tasks {
                let _ = task.await;
            }
        });
        (Self { connections }, task)
    }

    /// The connection a device's acks go through (by its acks topic).
    #[must_use]
    pub fn connection_of(&self, topic: &str) -> usize {
        connection_for(topic, self.connections.len())
    }

    /// Whether `connection` can take an ack now.
    #[must_use]
    pub fn has_room(&self, connection: usize) -> bool {
        self.connections.get(connection).is_some_and(|c| {
            c.outstanding.load(Ordering::Acquire) < u64::from(ACK_PUBLISHER_INFLIGHT)
        })
    }

    /// Queues an ack on the device's connection if it has room. Nothing is dropped here: on
    /// an error the caller still holds the ack.
    ///
    /// # Errors
    /// [`AckPublishError::Busy`] while the connection has no room,
    /// [`AckPublishError::Refused`] if its request channel does not take it.
    pub fn publish(
        &self,
        topic: &str,
        payload: Vec<u8>,
        metrics: &Metrics,
    ) -> Result<(), AckPublishError> {
        let index = self.connection_of(topic);
        let Some(connection) = self.connections.get(index) else {
            return Err(AckPublishError::Refused);
        };
        if !self.has_room(index) {
            return Err(AckPublishError::Busy);
        }
        connection
            .client
            .try_publish(topic, QoS::AtLeastOnce, false, payload)
            .map_err(|_| AckPublishError::Refused)?;
        connection.outstanding.fetch_add(1, Ordering::AcqRel);
        add(&metrics.device_acks_published, 1);
        Ok(())
    }

    /// Asks the connections to close.
    pub fn disconnect(&self) {
        for connection in &self.connections {
            let _ = connection.client.try_disconnect();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::connection_for;

    #[test]
    fn a_device_always_gets_the_same_ack_connection_and_devices_spread() {
        let topics: Vec<String> = (0..1_000)
            .map(|i| format!("agritrace/v1/devices/a910ad00{i:08x}/acks"))
            .collect();
        let mut counts = [0usize; 4];
        for topic in &topics {
            let connection = connection_for(topic, 4);
            assert_eq!(connection, connection_for(topic, 4));
            counts[connection] += 1;
        }
        // Each of 4 connections gets a fair share (250 expected).
        assert!(counts.iter().all(|c| (150..350).contains(c)), "{counts:?}");
        assert_eq!(connection_for("any", 1), 0);
        assert_eq!(connection_for("any", 0), 0);
    }
}
