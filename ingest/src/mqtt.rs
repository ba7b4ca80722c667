//! The MQTT edge: worker connections on the shared subscription and the device-ack publisher.
//!
//! Each connection is driven by [`session`]: a reader task that parses what the broker sends
//! and a writer task that sends, in one write, everything queued for it (acks, device acks,
//! pings). Nothing here awaits a write: acks and device acks are queued with `try_send` on the
//! connection's bounded request channel from other tasks. A message is acked through the
//! connection that received it, and only while that connection lives (each ack carries the
//! connection's generation; one queued for a replaced connection is dropped, never sent on
//! the new one, where its packet id means nothing).
//!
//! Backpressure: a worker takes a permit per message before forwarding it and the permit is
//! returned when the message is acked (or dropped). With all permits out the worker stops
//! reading the socket, so the broker holds the rest; nothing is dropped and no queue grows.
//! An ack that finds the request channel full is kept by the batcher and retried (never
//! dropped), and the connection's later acks wait behind it so they leave in receive order;
//! its permit is returned at once.
//!
//! Why the order matters: Mosquitto 2.0 finds the message a `PUBACK` names by walking the
//! connection's in-flight list from its oldest entry. One ack left behind (retried later)
//! made every later `PUBACK` of the connection walk past it; with thousands in flight the
//! broker spent 94% of its time in that walk (`db__message_delete_outgoing`, measured with
//! `perf`) and carried 2,400 readings a second.

mod session;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rumqttc::mqttbytes::v4::{Packet, Publish};
use tokio::sync::{Mutex, Notify, OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::task::JoinHandle;

use self::session::{Outbound, Reader, Session, SessionError, SessionOptions, Writer, WriterEnd};
use crate::clock::Clock;
use crate::config::IngestConfig;
use crate::metrics::{Metrics, add};

/// Device acks an ack connection keeps in flight (published, not yet acknowledged by the
/// broker). At tens of thousands of device acks a second, 100 in flight held the publisher to
/// one broker round trip per 100 acks; 1,000 keeps it ahead while the broker keeps up. Beyond
/// it the batcher holds acks and merges them (see [`AckPublisher`]).
pub const ACK_PUBLISHER_INFLIGHT: u16 = 1_000;
/// Request-channel room of an ack connection beyond its in-flight window (a race between a
/// `PUBACK` and the room check).
const ACK_CHANNEL_SLACK: usize = 64;
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
    /// another must not hold the permit the worker may be waiting for.
    pub fn release_permit(&mut self) {
        self.permit = None;
    }
}

/// A connection's request channel and close signal, shared by the tasks that queue on it
/// and the connection's successive writers.
#[derive(Debug, Clone)]
struct Requests {
    tx: mpsc::Sender<Outbound>,
    rx: Arc<Mutex<mpsc::Receiver<Outbound>>>,
    close: Arc<Notify>,
}

impl Requests {
    fn new(capacity: usize) -> Self {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        Self {
            tx,
            rx: Arc::new(Mutex::new(rx)),
            close: Arc::new(Notify::new()),
        }
    }
}

/// What the batcher needs to acknowledge a worker's messages.
#[derive(Debug, Clone)]
pub struct WorkerLink {
    requests: mpsc::Sender<Outbound>,
    close: Arc<Notify>,
    generation: Arc<AtomicU64>,
    /// The worker's message permits (see [`WorkerLink::saturated`]).
    permits: Arc<Semaphore>,
    permits_total: usize,
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
    /// even if the request channel is full (the worker must not wait on an ack to go on).
    pub fn ack(&self, mut delivery: Delivery, metrics: &Metrics) -> AckOutcome {
        delivery.permit = None;
        if self.generation.load(Ordering::Acquire) != delivery.generation {
            add(&metrics.mqtt_acks_stale, 1);
            return AckOutcome::Stale;
        }
        let request = Outbound::PubAck {
            pkid: delivery.publish.pkid,
            generation: delivery.generation,
        };
        match self.requests.try_send(request) {
            Ok(()) => {
                add(&metrics.mqtt_acks, 1);
                AckOutcome::Queued
            }
            Err(mpsc::error::TrySendError::Full(_)) => AckOutcome::Retry(delivery),
            Err(mpsc::error::TrySendError::Closed(_)) => {
                add(&metrics.mqtt_acks_stale, 1);
                AckOutcome::Stale
            }
        }
    }

    /// Asks the connection to close once what is queued is written (the worker task ends).
    pub fn disconnect(&self) {
        self.close.notify_one();
    }

    /// Whether the worker holds nearly all the messages it may (fewer than a quarter of its
    /// permits free): intake is running at the node's limit and the broker holds a backlog.
    #[must_use]
    pub fn saturated(&self) -> bool {
        self.permits.available_permits() < self.permits_total / 4
    }
}

fn session_options(config: &IngestConfig, client_id: String) -> SessionOptions {
    SessionOptions {
        host: config.broker_host.clone(),
        port: config.broker_port,
        client_id,
        keep_alive: Duration::from_secs(config.keep_alive_secs),
        incoming_bytes_max: config.incoming_packet_bytes_max,
        credentials: config
            .broker_login
            .as_ref()
            .map(|login| (login.username.clone(), login.password.clone())),
    }
}

/// Waits before the next connection attempt, doubling up to the configured maximum.
async fn back_off(backoff_ms: &mut u64, max_ms: u64) {
    tokio::time::sleep(Duration::from_millis(*backoff_ms)).await;
    *backoff_ms = (*backoff_ms * 2).min(max_ms);
}

/// Starts worker `index`: its connection, subscription and reading task.
pub fn spawn_worker(
    index: usize,
    config: &IngestConfig,
    forward: mpsc::Sender<Delivery>,
    stop: watch::Receiver<bool>,
    metrics: Arc<Metrics>,
    clock: Arc<dyn Clock>,
) -> (WorkerLink, JoinHandle<()>) {
    let permits = config.worker_messages_in_flight_max;
    let requests = Requests::new(permits + 16);
    let permits_shared = Arc::new(Semaphore::new(permits));
    let link = WorkerLink {
        requests: requests.tx.clone(),
        close: requests.close.clone(),
        generation: Arc::new(AtomicU64::new(0)),
        permits: permits_shared.clone(),
        permits_total: permits,
    };
    let worker = Worker {
        index,
        options: session_options(config, format!("{}-{index}", config.client_id_prefix)),
        requests,
        generation: link.generation.clone(),
        permits: permits_shared,
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
    options: SessionOptions,
    requests: Requests,
    generation: Arc<AtomicU64>,
    permits: Arc<Semaphore>,
    forward: Option<mpsc::Sender<Delivery>>,
    stop: watch::Receiver<bool>,
    metrics: Arc<Metrics>,
    clock: Arc<dyn Clock>,
    subscription: String,
    backoff_max_ms: u64,
}

/// How one connection of a worker ended.
enum Ended {
    /// Closed on request: the worker is done.
    Closed,
    /// Failed: reconnect (unless shutting down).
    Failed(SessionError),
}

impl Worker {
    async fn run(mut self) {
        let mut backoff_ms = RECONNECT_BACKOFF_MIN_MS;
        loop {
            let session = tokio::select! {
                session = Session::open(&self.options) => session,
                _ = self.stop.changed(), if self.forward.is_some() => {
                    // Until shutdown begins, also wake on the stop signal: the forwarding side
                    // must close promptly so the pipeline can drain.
                    self.forward = None;
                    continue;
                }
            };
            let ended = match session {
                Ok(session) => {
                    backoff_ms = RECONNECT_BACKOFF_MIN_MS;
                    self.connected(session).await
                }
                Err(error) => Ended::Failed(error),
            };
            match ended {
                Ended::Closed => return,
                Ended::Failed(error) => {
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

    /// Runs one connection until it ends.
    async fn connected(&mut self, session: Session) -> Ended {
        // A new connection: packet ids of the old one mean nothing now.
        let generation = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        add(&self.metrics.connections, 1);
        add(&self.metrics.workers_connected, 1);
        tracing::info!(worker = self.index, "connected to the broker");
        let (mut reader, half) = session.split();
        let stale_metrics = self.metrics.clone();
        let writer = Writer {
            generation,
            ping_every: self.options.keep_alive / 2,
            on_stale: Box::new(move || add(&stale_metrics.mqtt_acks_stale, 1)),
        };
        // A clean start forgets subscriptions: subscribe on every connection.
        let mut writing = tokio::spawn(writer.run(
            half,
            self.requests.rx.clone(),
            Some(session::subscription(&self.subscription)),
            self.requests.close.clone(),
        ));
        let ended = tokio::select! {
            error = self.read(&mut reader, generation) => Ended::Failed(error),
            written = &mut writing => match written {
                Ok(Ok(WriterEnd::Closed)) => Ended::Closed,
                Ok(Err(error)) => Ended::Failed(error),
                Err(_) => Ended::Failed(SessionError::Closed),
            },
        };
        writing.abort();
        self.metrics
            .workers_connected
            .fetch_sub(1, Ordering::Relaxed);
        ended
    }

    /// Reads the connection until it fails.
    async fn read(&mut self, reader: &mut Reader, generation: u64) -> SessionError {
        loop {
            let packet = if self.forward.is_some() {
                tokio::select! {
                    packet = reader.next() => packet,
                    _ = self.stop.changed() => {
                        self.forward = None;
                        continue;
                    }
                }
            } else {
                reader.next().await
            };
            match packet {
                Ok(Packet::Publish(publish)) => {
                    if !self.take(publish, generation).await {
                        // Shutting down: the message stays unacked; the broker or the device
                        // offers it again.
                        self.forward = None;
                    }
                }
                Ok(Packet::SubAck(suback)) => {
                    if !session::granted(&suback) {
                        return SessionError::SubscriptionRefused(self.subscription.clone());
                    }
                }
                Ok(_) => {}
                Err(error) => return error,
            }
        }
    }

    /// Forwards one message once a permit is free. False when shutting down.
    async fn take(&mut self, publish: Publish, generation: u64) -> bool {
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
            generation,
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
/// One connection per worker; a device's acks always go through the same connection (chosen
/// by its topic), so they stay in order.
///
/// Each connection counts the acks it queued that the broker has not yet acknowledged
/// (`PUBACK`). The batcher publishes a device's ack only while its connection has
/// [`room`](Self::has_room) (fewer than [`ACK_PUBLISHER_INFLIGHT`] outstanding); otherwise it
/// holds the ack and merges later ones into it. So nothing is ever queued behind a full
/// request channel, an ack leaves at once while the broker keeps up, and when the broker
/// falls behind each ack covers more readings (coalescing by load).
#[derive(Debug, Clone)]
pub struct AckPublisher {
    connections: Vec<AckConnection>,
}

#[derive(Debug, Clone)]
struct AckConnection {
    requests: mpsc::Sender<Outbound>,
    close: Arc<Notify>,
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
    /// all of their tasks end.
    pub fn spawn(config: &IngestConfig, metrics: Arc<Metrics>) -> (Self, JoinHandle<()>) {
        let mut connections = Vec::with_capacity(config.workers);
        let mut tasks = Vec::with_capacity(config.workers);
        for index in 0..config.workers.max(1) {
            // The first keeps the historical client id.
            let id = match index {
                0 => format!("{}-acks", config.client_id_prefix),
                _ => format!("{}-acks-{index}", config.client_id_prefix),
            };
            // At most ACK_PUBLISHER_INFLIGHT acks are outstanding when one is queued (see
            // `has_room`), so the channel never holds more than that.
            let requests = Requests::new(usize::from(ACK_PUBLISHER_INFLIGHT) + ACK_CHANNEL_SLACK);
            let outstanding = Arc::new(AtomicU64::new(0));
            connections.push(AckConnection {
                requests: requests.tx.clone(),
                close: requests.close.clone(),
                outstanding: outstanding.clone(),
            });
            tasks.push(tokio::spawn(run_ack_connection(
                session_options(config, id),
                requests,
                outstanding,
                config.reconnect_backoff_max_ms,
                metrics.clone(),
            )));
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
            .requests
            .try_send(Outbound::Publish {
                topic: topic.to_owned(),
                payload,
            })
            .map_err(|_| AckPublishError::Refused)?;
        connection.outstanding.fetch_add(1, Ordering::AcqRel);
        add(&metrics.device_acks_published, 1);
        Ok(())
    }

    /// Asks the connections to close once what is queued is written.
    pub fn disconnect(&self) {
        for connection in &self.connections {
            connection.close.notify_one();
        }
    }
}

/// One ack connection: connects, writes what is queued, counts the broker's `PUBACK`s, and
/// reconnects with backoff until asked to close.
async fn run_ack_connection(
    options: SessionOptions,
    requests: Requests,
    outstanding: Arc<AtomicU64>,
    backoff_max_ms: u64,
    metrics: Arc<Metrics>,
) {
    let mut backoff_ms = RECONNECT_BACKOFF_MIN_MS;
    let mut generation = 0_u64;
    loop {
        let error = match Session::open(&options).await {
            Ok(session) => {
                backoff_ms = RECONNECT_BACKOFF_MIN_MS;
                generation += 1;
                // A clean start forgets what was in flight. A lost ack costs the device a
                // resend, acked then as a duplicate.
                outstanding.store(0, Ordering::Release);
                let (mut reader, half) = session.split();
                let writer = Writer {
                    generation,
                    ping_every: options.keep_alive / 2,
                    on_stale: Box::new(|| {}),
                };
                let mut writing = tokio::spawn(writer.run(
                    half,
                    requests.rx.clone(),
                    None,
                    requests.close.clone(),
                ));
                let settled = outstanding.clone();
                let reading = async move {
                    loop {
                        match reader.next().await {
                            Ok(Packet::PubAck(_)) => settle_one(&settled),
                            Ok(_) => {}
                            Err(error) => return error,
                        }
                    }
                };
                let ended = tokio::select! {
                    error = reading => Ended::Failed(error),
                    written = &mut writing => match written {
                        Ok(Ok(WriterEnd::Closed)) => Ended::Closed,
                        Ok(Err(error)) => Ended::Failed(error),
                        Err(_) => Ended::Failed(SessionError::Closed),
                    },
                };
                writing.abort();
                match ended {
                    Ended::Closed => return,
                    Ended::Failed(error) => error,
                }
            }
            Err(error) => error,
        };
        add(&metrics.connection_errors, 1);
        tracing::warn!(%error, "ack publisher connection failed; reconnecting");
        back_off(&mut backoff_ms, backoff_max_ms).await;
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
