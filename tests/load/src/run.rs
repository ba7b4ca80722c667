//! A timed run over a real broker: publisher connections offer the pre-signed plan (paced by
//! a token bucket, or closed-loop with a bounded number of readings outstanding), and a
//! completion side records when each reading is done: the node's device acks on one wildcard
//! subscription, or — for the broker baseline — deliveries to a trivial subscriber.
//!
//! Following the rumqttc notes (REFERENCES.md): every event loop is polled by its own task,
//! and publishing tasks only queue requests.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use protocol::Ack;
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::cpu;
use crate::fleet::{Fleet, Plan, device_index};
use crate::measure::{Ledger, LedgerSummary, next_token_at, tokens_by};

/// The acks of every device, in one subscription.
pub const ACKS_FILTER: &str = "agritrace/v1/devices/+/acks";
/// The baseline subscriber's filter: a shared subscription of its own group, as ingest's.
pub const BASELINE_FILTER: &str = "$share/baseline/agritrace/v1/devices/+/readings";
/// QoS 1 messages a publisher keeps unacknowledged by the broker.
const PUBLISHER_INFLIGHT: u16 = 1_000;
/// Requests queued towards a connection's event loop.
const REQUEST_CHANNEL: usize = 2_000;
/// Largest packet in either direction (a backlog message is at most 8 KiB).
const PACKET_BYTES_MAX: usize = 64 * 1024;
/// How long a connection may take to be accepted.
const CONNECT_PATIENCE: Duration = Duration::from_secs(30);

/// How readings are declared done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completion {
    /// By the node's device acks (published after the durable, anchored commit).
    DeviceAcks,
    /// By delivery to `subscribers` connections of a trivial shared subscription.
    Deliveries {
        /// Subscriber connections.
        subscribers: usize,
    },
}

/// How a run offers its plan.
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// Broker host.
    pub host: String,
    /// Broker port.
    pub port: u16,
    /// Offered readings per second; 0 offers as fast as the window allows.
    pub rate: f64,
    /// Most readings published and not yet done (closed loop); also bounds a paced run.
    pub window: u64,
    /// Publisher connections (a device always publishes on the same one).
    pub connections: usize,
    /// Time before the steady window (excluded from the figures).
    pub warmup: Duration,
    /// The steady window.
    pub duration: Duration,
    /// Longest wait for the last completions after publishing stops.
    pub drain: Duration,
    /// Prefix of the MQTT client ids.
    pub client_prefix: String,
    /// Processes whose CPU time is reported (name, pid); the load generator is added.
    pub watch: Vec<(String, u32)>,
}

/// What a run measured.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// The ledger's figures over the steady window.
    pub summary: LedgerSummary,
    /// Readings published per second in the steady window.
    pub published_rate: f64,
    /// CPU cores used in the steady window, per watched process.
    pub cpu: Vec<(String, f64)>,
    /// Whether the plan ran out before the window ended (the run was too short).
    pub plan_exhausted: bool,
}

fn options(spec: &RunSpec, id: String) -> MqttOptions {
    let mut options = MqttOptions::new(id, spec.host.clone(), spec.port);
    options
        .set_keep_alive(Duration::from_secs(30))
        .set_clean_session(true)
        .set_inflight(PUBLISHER_INFLIGHT)
        .set_request_channel_capacity(REQUEST_CHANNEL)
        .set_max_packet_size(PACKET_BYTES_MAX, PACKET_BYTES_MAX);
    options
}

/// Polls an event loop until `stop`, handing incoming publishes to `on_publish`; reports the
/// first ConnAck (and SubAck, when subscribing) on `ready`.
fn spawn_event_loop(
    mut event_loop: EventLoop,
    client: AsyncClient,
    subscription: Option<&'static str>,
    ready: watch::Sender<bool>,
    stop: Arc<AtomicBool>,
    name: String,
    mut on_publish: impl FnMut(rumqttc::Publish) + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match event_loop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => match subscription {
                    Some(filter) => {
                        if let Err(error) = client.try_subscribe(filter, QoS::AtLeastOnce) {
                            eprintln!("agritrace-load: {name}: subscribing failed: {error}");
                        }
                    }
                    None => {
                        let _ = ready.send(true);
                    }
                },
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    let _ = ready.send(true);
                }
                Ok(Event::Incoming(Packet::Publish(publish))) => on_publish(publish),
                Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) => return,
                Ok(_) => {}
                Err(error) => {
                    if stop.load(Ordering::Acquire) {
                        return;
                    }
                    eprintln!("agritrace-load: {name}: connection failed ({error}); reconnecting");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    })
}

async fn wait_ready(mut ready: watch::Receiver<bool>, what: &str) -> Result<()> {
    tokio::time::timeout(CONNECT_PATIENCE, ready.wait_for(|r| *r))
        .await
        .with_context(|| format!("{what} was not accepted by the broker in time"))?
        .with_context(|| format!("{what} stopped before it was accepted"))?;
    Ok(())
}

/// The ranges of an ack as `(first, last)` pairs, and the device's index.
fn ack_ranges(payload: &[u8]) -> Option<(u32, Vec<(u64, u64)>)> {
    let ack = Ack::decode(payload).ok()?;
    let device = device_index(ack.device)?;
    Some((
        device,
        ack.ranges().iter().map(|r| (r.first, r.last)).collect(),
    ))
}

/// The readings a delivered message carries, as `(sequence, sequence)` ranges of its device
/// (decoding only: the baseline subscriber checks no signature).
fn delivered_readings(payload: &[u8]) -> Option<(u32, Vec<(u64, u64)>)> {
    let uplink = protocol::Uplink::decode(payload).ok()?;
    let mut device = None;
    let mut ranges = Vec::with_capacity(uplink.len());
    for bytes in uplink.readings() {
        let reading = *protocol::SignedReading::decode(bytes).ok()?.reading();
        device = Some(device_index(reading.device)?);
        ranges.push((reading.sequence.0, reading.sequence.0));
    }
    Some((device?, ranges))
}

struct Cpu {
    names: Vec<String>,
    pids: Vec<u32>,
}

impl Cpu {
    fn sample(&self) -> Vec<Option<u64>> {
        self.pids
            .iter()
            .map(|pid| cpu::process_ticks(*pid).ok())
            .collect()
    }
}

/// Runs `plan` against the broker and returns what it measured.
///
/// # Errors
/// If a connection is not accepted, or the spec is unusable.
#[allow(clippy::too_many_lines)] // One run, read top to bottom.
pub async fn run(
    fleet: &Fleet,
    plan: Arc<Plan>,
    spec: &RunSpec,
    completion: Completion,
) -> Result<RunReport> {
    if spec.connections == 0 {
        bail!("at least one publisher connection is needed");
    }
    let span = spec.warmup + spec.duration + spec.drain + Duration::from_secs(5);
    let ledger = Arc::new(Ledger::new(
        fleet.count(),
        plan.offsets_per_device,
        plan.sequence_base,
        span,
    ));
    let stop = Arc::new(AtomicBool::new(false));
    // Set once the publishers start; completions are timed from it.
    let (start_tx, start_rx) = watch::channel::<Option<Instant>>(None);
    let elapsed = move |start: &watch::Receiver<Option<Instant>>| -> Duration {
        start.borrow().map_or(Duration::ZERO, |s| s.elapsed())
    };

    // The completion side first, so no completion is missed.
    let mut completion_clients = Vec::new();
    let mut tasks = Vec::new();
    let subscribers = match completion {
        Completion::DeviceAcks => 1,
        Completion::Deliveries { subscribers } => subscribers.max(1),
    };
    for i in 0..subscribers {
        let name = format!("{}-done-{i}", spec.client_prefix);
        let (client, event_loop) = AsyncClient::new(options(spec, name.clone()), REQUEST_CHANNEL);
        let (ready_tx, ready_rx) = watch::channel(false);
        let ledger = ledger.clone();
        let start = start_rx.clone();
        let (filter, handler): (&'static str, Box<dyn FnMut(rumqttc::Publish) + Send>) =
            match completion {
                Completion::DeviceAcks => (
                    ACKS_FILTER,
                    Box::new(move |publish: rumqttc::Publish| {
                        let at = elapsed(&start);
                        match ack_ranges(&publish.payload) {
                            Some((device, ranges)) => {
                                ledger.acked(device, &ranges, at);
                            }
                            None => eprintln!(
                                "agritrace-load: an ack on {} does not decode or names no fleet device",
                                publish.topic
                            ),
                        }
                    }),
                ),
                Completion::Deliveries { .. } => (
                    BASELINE_FILTER,
                    Box::new(move |publish: rumqttc::Publish| {
                        let at = elapsed(&start);
                        match delivered_readings(&publish.payload) {
                            Some((device, ranges)) => {
                                ledger.acked(device, &ranges, at);
                            }
                            None => ledger.completed_anonymously(1, at),
                        }
                    }),
                ),
            };
        tasks.push(spawn_event_loop(
            event_loop,
            client.clone(),
            Some(filter),
            ready_tx,
            stop.clone(),
            name.clone(),
            handler,
        ));
        wait_ready(ready_rx, &name).await?;
        completion_clients.push(client);
    }

    // Publisher connections; device d publishes on connection d % connections.
    let mut publishers = Vec::new();
    for c in 0..spec.connections {
        let name = format!("{}-pub-{c}", spec.client_prefix);
        let (client, event_loop) = AsyncClient::new(options(spec, name.clone()), REQUEST_CHANNEL);
        let (ready_tx, ready_rx) = watch::channel(false);
        tasks.push(spawn_event_loop(
            event_loop,
            client.clone(),
            None,
            ready_tx,
            stop.clone(),
            name.clone(),
            |_| {},
        ));
        wait_ready(ready_rx, &name).await?;
        publishers.push(client);
    }
    let connections = spec.connections;
    let per_connection: Vec<Arc<Vec<usize>>> = (0..connections)
        .map(|c| {
            Arc::new(
                plan.messages
                    .iter()
                    .enumerate()
                    .filter(|(_, m)| usize::try_from(m.device).unwrap_or(0) % connections == c)
                    .map(|(i, _)| i)
                    .collect(),
            )
        })
        .collect();
    #[expect(clippy::cast_precision_loss, reason = "small counts")]
    let messages_per_s_per_connection =
        spec.rate / f64::from(plan.per_message) / connections as f64;
    let topics: Arc<Vec<String>> =
        Arc::new(fleet.devices().iter().map(|d| d.topic.clone()).collect());
    let exhausted = Arc::new(AtomicBool::new(false));

    let start = Instant::now();
    let window_start = start + spec.warmup;
    let window_end = window_start + spec.duration;
    let _ = start_tx.send(Some(start));
    let mut publishing = Vec::new();
    for (client, mine) in publishers.iter().cloned().zip(per_connection) {
        let plan = plan.clone();
        let ledger = ledger.clone();
        let topics = topics.clone();
        let exhausted = exhausted.clone();
        let window = spec.window.max(1);
        let rate = messages_per_s_per_connection;
        publishing.push(tokio::spawn(async move {
            for (sent, &index) in (0u64..).zip(mine.iter()) {
                let now = Instant::now();
                if now >= window_end {
                    return;
                }
                if rate > 0.0 && sent >= tokens_by(now - start, rate) {
                    tokio::time::sleep_until(start + next_token_at(sent, rate)).await;
                }
                // Closed loop (and a bound on a paced run that the node cannot follow).
                while ledger
                    .published_count()
                    .saturating_sub(ledger.completed_count())
                    >= window
                {
                    if Instant::now() >= window_end {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                let message = &plan.messages[index];
                let topic = &topics[usize::try_from(message.device).unwrap_or(0)];
                ledger.published(
                    message.device,
                    message.first,
                    message.count,
                    start.elapsed(),
                );
                if client
                    .publish(
                        topic.as_str(),
                        QoS::AtLeastOnce,
                        false,
                        message.payload.clone(),
                    )
                    .await
                    .is_err()
                {
                    eprintln!("agritrace-load: a publisher's event loop is gone");
                    return;
                }
            }
            if Instant::now() < window_end {
                exhausted.store(true, Ordering::Release);
            }
        }));
    }

    let mut watched: Vec<(String, u32)> = spec.watch.clone();
    watched.push(("load".to_owned(), std::process::id()));
    let cpu = Cpu {
        names: watched.iter().map(|(n, _)| n.clone()).collect(),
        pids: watched.iter().map(|(_, p)| *p).collect(),
    };
    tokio::time::sleep_until(window_start).await;
    let cpu_before = cpu.sample();
    let published_before = ledger.published_count();
    tokio::time::sleep_until(window_end).await;
    let cpu_after = cpu.sample();
    let published_after = ledger.published_count();
    for task in publishing {
        let _ = task.await;
    }
    // Drain: until every published reading is done, or the drain time passes.
    let drain_end = Instant::now() + spec.drain;
    while ledger.completed_count() < ledger.published_count() && Instant::now() < drain_end {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Late repeats of acks would show up here.
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Release);
    for client in publishers.iter().chain(&completion_clients) {
        let _ = client.try_disconnect();
    }
    for task in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    }

    let ticks = cpu::ticks_per_second();
    let seconds = spec.duration.as_secs_f64();
    #[expect(clippy::cast_precision_loss, reason = "tick counts far below 2^52")]
    let cores = |before: Option<u64>, after: Option<u64>| match (before, after) {
        (Some(b), Some(a)) => (a.saturating_sub(b)) as f64 / ticks as f64 / seconds,
        _ => f64::NAN,
    };
    let cpu = cpu
        .names
        .into_iter()
        .zip(cpu_before.into_iter().zip(cpu_after))
        .map(|(name, (before, after))| (name, cores(before, after)))
        .collect();
    let summary = ledger.summary(spec.warmup, spec.warmup + spec.duration);
    #[expect(clippy::cast_precision_loss, reason = "counts far below 2^52")]
    let published_rate = published_after.saturating_sub(published_before) as f64 / seconds;
    Ok(RunReport {
        summary,
        published_rate,
        cpu,
        plan_exhausted: exhausted.load(Ordering::Acquire),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::{AckBuilder, SequenceNumber};

    #[test]
    fn acks_are_read_as_ranges_of_a_fleet_device() {
        let mut builder = AckBuilder::new(crate::fleet::device_id(9));
        for sequence in [5, 6, 7, 10] {
            builder.push(SequenceNumber(sequence)).unwrap();
        }
        let ack = builder.finish().unwrap();
        let mut buffer = [0u8; protocol::limits::ACK_BYTES_MAX];
        let bytes = ack.encode(&mut buffer).unwrap();
        assert_eq!(ack_ranges(bytes), Some((9, vec![(5, 7), (10, 10)])));
        assert_eq!(ack_ranges(&bytes[..5]), None);
        let other = AckBuilder::new(protocol::DeviceId([1; 8]));
        let mut other = other;
        other.push(SequenceNumber(1)).unwrap();
        let bytes = other
            .finish()
            .unwrap()
            .encode(&mut buffer)
            .unwrap()
            .to_vec();
        assert_eq!(ack_ranges(&bytes), None);
    }

    #[test]
    fn deliveries_name_the_readings_they_carry() {
        let fleet = crate::fleet::Fleet::new(3).unwrap();
        let plan = crate::fleet::sign_plan(
            &fleet,
            crate::fleet::PlanShape {
                readings: 8,
                per_message: 4,
                sequence_base: 50,
                device_time_ms: 0,
                threads: 1,
            },
        )
        .unwrap();
        assert_eq!(
            delivered_readings(&plan.messages[1].payload),
            Some((1, vec![(50, 50), (51, 51), (52, 52), (53, 53)]))
        );
        assert_eq!(delivered_readings(b"junk"), None);
    }
}
