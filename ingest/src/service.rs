//! The running service: wiring of workers → verifiers → the batcher → the sequencer, and the
//! handle the node holds.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use ledger::merkle::{LeafIndex, leaf_hash};
use ledger::sequencer::{SequencerHandle, SubmitError};
use ledger::storage::{CommitError, ReadError};
use protocol::limits::ACK_BYTES_MAX;
use protocol::{DeviceId, SequenceNumber, Uplink, topic};
use tokio::sync::{mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use crate::batcher::{
    BatchCore, BatchLimits, ClosedUnit, Committed, Completion, UnitId, VerifiedMessage, device_acks,
};
use crate::clock::Clock;
use crate::config::{ConfigError, IngestConfig};
use crate::metrics::{Metrics, MetricsSnapshot, add};
use crate::mqtt::{AckOutcome, AckPublisher, Delivery, WorkerLink, spawn_worker};
use crate::query::{self, QuarantineList, QuarantinePage, QueryError, ReadingAnchor};
use crate::records::{
    BATCHES, META, META_QUARANTINE_NEXT, QUARANTINE_SEEN, READINGS, StoredReading, reading_key,
};
use crate::registry::DeviceRegistry;
use crate::store::IngestStorage;
use crate::verify::{MessageIn, Verdict, VerifyLimits, VerifyStats, verify_group};

/// How long shutdown waits for the connections to close before aborting their tasks.
const DISCONNECT_GRACE: Duration = Duration::from_secs(5);
/// How often MQTT acks that found a full request channel are tried again.
const ACK_RETRY_PERIOD: Duration = Duration::from_millis(10);
/// How often held device acks are offered again to a connection that had no room.
const DEVICE_ACK_RETRY_PERIOD: Duration = Duration::from_millis(5);
/// How long device acks are gathered while intake is saturated (a worker nearly out of
/// message permits) and no interval is configured: each device then gets one ack for a few
/// rounds instead of one per round, so the broker carries fewer acks exactly when it is
/// busiest; readings wait longer than this in the broker's backlog anyway.
const SATURATED_ACK_INTERVAL: Duration = Duration::from_millis(250);
/// Messages the batcher takes in one step (one storage read for all of them).
const TAKE_MESSAGES_MAX: usize = 1_024;

/// Why ingest could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A setting is out of range.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Storage could not be read.
    #[error("reading ingest state failed")]
    Storage(#[from] ReadError),
}

/// The handle the node keeps: metrics, the registry and the read side.
#[derive(Debug)]
pub struct IngestHandle<S> {
    sequencer: SequencerHandle<S>,
    registry: DeviceRegistry<S>,
    metrics: Arc<Metrics>,
    workers: usize,
}

impl<S: Clone> Clone for IngestHandle<S> {
    fn clone(&self) -> Self {
        Self {
            sequencer: self.sequencer.clone(),
            registry: self.registry.clone(),
            metrics: self.metrics.clone(),
            workers: self.workers,
        }
    }
}

impl<S: IngestStorage> IngestHandle<S> {
    /// The counters now.
    #[must_use]
    pub fn metrics(&self) -> MetricsSnapshot {
        self.metrics.snapshot()
    }

    /// The MQTT workers ingest runs (all of them connected is part of being ready).
    #[must_use]
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// The device registry ingest verifies with (register, rotate, revoke, import).
    #[must_use]
    pub fn registry(&self) -> &DeviceRegistry<S> {
        &self.registry
    }

    /// A committed reading.
    ///
    /// # Errors
    /// [`QueryError`] if storage fails.
    pub fn reading(
        &self,
        device: DeviceId,
        sequence: SequenceNumber,
    ) -> Result<Option<StoredReading>, QueryError> {
        query::reading(self.sequencer.storage(), device, sequence)
    }

    /// A committed reading with its batch path, entry and log index.
    ///
    /// # Errors
    /// [`QueryError`] if storage fails or records disagree with the log.
    pub async fn reading_anchor(
        &self,
        device: DeviceId,
        sequence: SequenceNumber,
    ) -> Result<Option<ReadingAnchor>, QueryError> {
        query::reading_anchor(&self.sequencer, device, sequence).await
    }

    /// A page of a device's quarantine (`None`: records whose topic named no device).
    ///
    /// # Errors
    /// [`QueryError`] if storage fails or the page size is out of range.
    pub fn quarantine(
        &self,
        device: Option<DeviceId>,
        page: QuarantinePage,
    ) -> Result<QuarantineList, QueryError> {
        query::quarantine(self.sequencer.storage(), device, page)
    }
}

/// The service's tasks; [`shutdown`](Self::shutdown) stops them in order.
#[derive(Debug)]
pub struct IngestTasks {
    stop: watch::Sender<bool>,
    links: Vec<WorkerLink>,
    acks: AckPublisher,
    workers: Vec<JoinHandle<()>>,
    verifiers: Vec<JoinHandle<()>>,
    batcher: JoinHandle<()>,
    ack_publisher: JoinHandle<()>,
}

impl IngestTasks {
    /// Stops taking messages, lets every message already taken finish (its batch committed
    /// and acked), then closes the connections. Messages still at the broker stay there.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for verifier in self.verifiers {
            let _ = verifier.await;
        }
        let _ = self.batcher.await;
        for link in &self.links {
            link.disconnect();
        }
        self.acks.disconnect();
        for mut task in self.workers.into_iter().chain([self.ack_publisher]) {
            if tokio::time::timeout(DISCONNECT_GRACE, &mut task)
                .await
                .is_err()
            {
                task.abort();
            }
        }
    }
}

/// Starts ingest on a running sequencer: the ack publisher, `config.workers` MQTT workers
/// with a verifier each, and the batcher.
///
/// # Errors
/// [`StartError`] if the configuration is invalid or storage cannot be read.
pub fn start<S: IngestStorage>(
    config: IngestConfig,
    sequencer: SequencerHandle<S>,
    clock: Arc<dyn Clock>,
) -> Result<(IngestHandle<S>, IngestTasks), StartError> {
    config.validate()?;
    let storage = sequencer.storage().clone();
    let next_quarantine_id = match storage.read(META, META_QUARANTINE_NEXT)? {
        Some(bytes) => u64::from_be_bytes(
            <[u8; 8]>::try_from(bytes.as_slice())
                .map_err(|_| ReadError::Corrupt("quarantine_next is not 8 bytes".to_owned()))?,
        ),
        None => 0,
    };
    let metrics = Arc::new(Metrics::default());
    let registry = DeviceRegistry::with_metrics(
        sequencer.clone(),
        clock.clone(),
        config.key_cache_entries_max,
        config.key_cache_ttl_ms,
        metrics.clone(),
    );
    let (stop, stop_rx) = watch::channel(false);
    let (acks, ack_publisher) = AckPublisher::spawn(&config, metrics.clone());
    let (verified_tx, verified_rx) = mpsc::channel(config.batcher_queue_depth);
    let limits = VerifyLimits {
        clock_skew_max_ms: config.clock_skew_max_ms,
        quarantine_bytes_max: config.quarantine_bytes_max,
    };
    let mut links = Vec::new();
    let mut workers = Vec::new();
    let mut verifiers = Vec::new();
    for index in 0..config.workers {
        let (delivery_tx, delivery_rx) = mpsc::channel(config.verifier_queue_depth);
        let (link, worker) = spawn_worker(
            index,
            &config,
            delivery_tx,
            stop_rx.clone(),
            metrics.clone(),
            clock.clone(),
        );
        links.push(link);
        workers.push(worker);
        verifiers.push(tokio::spawn(run_verifier(
            delivery_rx,
            verified_tx.clone(),
            registry.clone(),
            limits,
            config.verify_readings_max,
            metrics.clone(),
        )));
    }
    drop(verified_tx);
    let batcher = BatcherTask {
        core: BatchCore::new(
            BatchLimits::new(config.batch_readings_max),
            next_quarantine_id,
        ),
        input: verified_rx,
        sequencer: sequencer.clone(),
        links: links.clone(),
        acks: acks.clone(),
        metrics: metrics.clone(),
        clock,
        window: Duration::from_millis(config.batch_window_ms),
        retry_backoff: Duration::from_millis(config.retry_backoff_ms),
        in_flight_max: config.batches_in_flight_max,
        units: HashMap::new(),
        retries: Vec::new(),
        unsent: (0..config.workers).map(|_| VecDeque::new()).collect(),
        unsent_retry_at: None,
        durable_held: BTreeSet::new(),
        acks_held: HashMap::new(),
        acks_order: VecDeque::new(),
        acks_held_count: 0,
        acks_held_max: config.device_ack_held_max,
        ack_interval: Duration::from_millis(config.device_ack_interval_ms),
        ack_flush_at: None,
    };
    let batcher = tokio::spawn(batcher.run());
    Ok((
        IngestHandle {
            sequencer,
            registry,
            metrics,
            workers: config.workers,
        },
        IngestTasks {
            stop,
            links,
            acks,
            workers,
            verifiers,
            batcher,
            ack_publisher,
        },
    ))
}

/// Readings a message carries, for sizing verification groups (1 if it does not split).
fn readings_in(payload: &[u8]) -> usize {
    Uplink::decode(payload).map_or(1, |u| u.len().max(1))
}

/// Takes messages from one worker, verifies them in groups, hands them to the batcher.
async fn run_verifier<S: IngestStorage>(
    mut input: mpsc::Receiver<Delivery>,
    output: mpsc::Sender<Vec<VerifiedMessage<Delivery>>>,
    registry: DeviceRegistry<S>,
    limits: VerifyLimits,
    readings_max: usize,
    metrics: Arc<Metrics>,
) {
    while let Some(first) = input.recv().await {
        let mut readings = readings_in(&first.publish.payload);
        let mut group = vec![first];
        while readings < readings_max {
            match input.try_recv() {
                Ok(next) => {
                    readings += readings_in(&next.publish.payload);
                    group.push(next);
                }
                Err(_) => break,
            }
        }
        add(
            &metrics.messages_received,
            u64::try_from(group.len()).unwrap_or(u64::MAX),
        );
        add(
            &metrics.readings_received,
            u64::try_from(readings).unwrap_or(u64::MAX),
        );
        let registry = registry.clone();
        // Signature checks are CPU work: off the async threads.
        let judged = tokio::task::spawn_blocking(move || {
            let messages: Vec<MessageIn<'_>> = group
                .iter()
                .map(|d| MessageIn {
                    topic: &d.publish.topic,
                    payload: &d.publish.payload,
                    ingest_time_ms: d.received_ms,
                })
                .collect();
            let mut stats = VerifyStats::default();
            let verdicts = verify_group(
                &messages,
                |device, epoch| {
                    registry.lookup(device, epoch).inspect_err(|error| {
                        tracing::error!(%device, %error, "device key lookup failed; deferring the reading");
                    })
                },
                &limits,
                &mut stats,
            );
            (group, verdicts, stats)
        })
        .await;
        let Ok((group, verdicts, stats)) = judged else {
            tracing::error!("the verification task failed; its messages stay unacknowledged");
            continue;
        };
        add(&metrics.verify_batches, stats.batches);
        add(&metrics.verify_fallbacks, stats.fallbacks);
        // One channel send per group, not per message: the batcher then reads storage
        // once for the whole group.
        let verified: Vec<VerifiedMessage<Delivery>> = group
            .into_iter()
            .zip(verdicts)
            .map(|(token, verdicts)| VerifiedMessage { token, verdicts })
            .collect();
        if output.send(verified).await.is_err() {
            return;
        }
    }
}

/// How a unit's write ended.
enum UnitResult {
    Durable(Option<LeafIndex>),
    Retry,
    Unknown,
    Fatal(String),
}

struct BatcherTask<S> {
    core: BatchCore<Delivery>,
    input: mpsc::Receiver<Vec<VerifiedMessage<Delivery>>>,
    sequencer: SequencerHandle<S>,
    links: Vec<WorkerLink>,
    acks: AckPublisher,
    metrics: Arc<Metrics>,
    clock: Arc<dyn Clock>,
    window: Duration,
    retry_backoff: Duration,
    in_flight_max: usize,
    /// Closed units not yet durable, kept for resubmission.
    units: HashMap<UnitId, ClosedUnit>,
    /// Units waiting to be submitted again, and when.
    retries: Vec<(Instant, UnitId)>,
    /// Per worker, MQTT acks that found its request channel full, and every later ack of
    /// that worker behind them: acks leave each connection in receive order (Mosquitto
    /// looks a PUBACK up by walking the connection's in-flight list from the oldest message,
    /// so one ack left behind made every later PUBACK walk thousands of entries).
    unsent: Vec<VecDeque<Delivery>>,
    /// When `unsent` is tried again (a fixed instant: a timer re-armed on every loop turn
    /// would never fire under load).
    unsent_retry_at: Option<Instant>,
    /// Durable units waiting for an older unit's write (see `on_durable`).
    durable_held: BTreeSet<UnitId>,
    /// Sequence numbers due in device acks and not yet published, by device (see
    /// `flush_device_acks`).
    acks_held: HashMap<DeviceId, Vec<SequenceNumber>>,
    /// The devices of `acks_held`, oldest first: a connection's room goes to the device that
    /// has waited longest, so no device starves behind others.
    acks_order: VecDeque<DeviceId>,
    /// How many sequence numbers `acks_held` holds.
    acks_held_count: usize,
    /// Above this many held, no new message is taken.
    acks_held_max: usize,
    /// Least time between two publications of held acks (zero: at once).
    ack_interval: Duration,
    /// When held acks are next published.
    ack_flush_at: Option<Instant>,
}

impl<S: IngestStorage> BatcherTask<S> {
    async fn run(mut self) {
        let mut writes: JoinSet<(UnitId, UnitResult)> = JoinSet::new();
        let mut input_open = true;
        let mut deadline: Option<Instant> = None;
        let mut paused_for_acks = false;
        loop {
            self.metrics.readings_pending.store(
                u64::try_from(self.core.readings_pending()).unwrap_or(u64::MAX),
                Ordering::Relaxed,
            );
            self.metrics.batches_in_flight.store(
                u64::try_from(self.core.units_in_flight()).unwrap_or(u64::MAX),
                Ordering::Relaxed,
            );
            self.metrics.device_acks_held.store(
                u64::try_from(self.acks_held_count).unwrap_or(u64::MAX),
                Ordering::Relaxed,
            );
            if !input_open && self.core.units_in_flight() == 0 && self.core.open_is_empty() {
                self.drain_device_acks().await;
                return;
            }
            let retry_at = self.retries.iter().map(|(at, _)| *at).min();
            // Backpressure: with too many acks held (the broker is not taking them), take
            // nothing new; the verifiers' queues fill, the workers stop reading, and the
            // broker holds the backlog. Acks are never dropped for want of room.
            let acks_room = self.acks_held_count < self.acks_held_max;
            if !acks_room && !paused_for_acks {
                add(&self.metrics.intake_paused_for_acks, 1);
            }
            paused_for_acks = !acks_room;
            let can_take =
                input_open && acks_room && self.core.units_in_flight() < self.in_flight_max;
            tokio::select! {
                Some(joined) = writes.join_next(), if !writes.is_empty() => {
                    // The batches of one round finish together: let the other answers of
                    // the round arrive, then take every finished write at once, so each
                    // device gets one ack for all of them.
                    tokio::task::yield_now().await;
                    let mut durable = Vec::new();
                    let mut next = Some(joined);
                    while let Some(joined) = next {
                        match joined {
                            Ok((unit, UnitResult::Durable(index))) => {
                                tracing::debug!(unit, leaf_index = index.map(|i| i.0), "batch durable");
                                durable.push(unit);
                            }
                            Ok((unit, result)) => self.on_result(unit, result, &mut writes),
                            Err(error) => tracing::error!(%error, "a batch write task failed"),
                        }
                        next = writes.try_join_next();
                    }
                    self.on_durable(&durable);
                }
                () = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                    deadline = None;
                    self.close_open(&mut writes);
                }
                () = tokio::time::sleep_until(retry_at.unwrap_or_else(Instant::now)), if retry_at.is_some() => {
                    let now = Instant::now();
                    let due: Vec<UnitId> = self.retries.iter().filter(|(at, _)| *at <= now).map(|(_, u)| *u).collect();
                    self.retries.retain(|(at, _)| *at > now);
                    for unit in due {
                        self.submit(unit, &mut writes);
                    }
                }
                () = tokio::time::sleep_until(self.unsent_retry_at.unwrap_or_else(Instant::now)), if self.unsent_retry_at.is_some() => {
                    self.unsent_retry_at = None;
                    self.retry_unsent();
                }
                () = tokio::time::sleep_until(self.ack_flush_at.unwrap_or_else(Instant::now)), if self.ack_flush_at.is_some() => {
                    self.ack_flush_at = None;
                    self.flush_device_acks();
                }
                group = self.input.recv(), if can_take => match group {
                    Some(mut group) => {
                        // Whatever else is queued, in one step (one storage read).
                        while group.len() < TAKE_MESSAGES_MAX {
                            match self.input.try_recv() {
                                Ok(more) => group.extend(more),
                                Err(_) => break,
                            }
                        }
                        let was_empty = self.core.open_is_empty();
                        let closed = self.take(group, &mut writes);
                        if self.core.open_is_empty() {
                            deadline = None;
                        } else if was_empty || closed || deadline.is_none() {
                            deadline = Some(Instant::now() + self.window);
                        }
                    }
                    None => {
                        input_open = false;
                        deadline = None;
                        self.close_open(&mut writes);
                    }
                },
            }
        }
    }

    /// Reads what storage knows about a group of messages' readings (one read of the
    /// readings table for the whole group), then hands them to the core in order. Returns
    /// whether a unit closed.
    ///
    /// One snapshot serves every message of the group: nothing is reported durable while
    /// the group is handed over (no await), so a reading is always found either pending
    /// here or committed in the snapshot. Quarantine digests depend on what the earlier
    /// messages of the group left pending, so they are read per message, and only for the
    /// rare message that has any.
    fn take(
        &mut self,
        group: Vec<VerifiedMessage<Delivery>>,
        writes: &mut JoinSet<(UnitId, UnitResult)>,
    ) -> bool {
        let storage = self.sequencer.storage().clone();
        let mut keys = Vec::new();
        for message in &group {
            keys.extend(self.core.lookups_of_readings(message));
        }
        let read_committed = || -> Result<Committed, QueryError> {
            let mut committed = Committed::default();
            if keys.is_empty() {
                return Ok(committed);
            }
            let encoded: Vec<Vec<u8>> = keys.iter().map(|(d, s)| reading_key(*d, *s)).collect();
            for (key, value) in encoded.iter().zip(storage.read_many(READINGS, &encoded)?) {
                if let Some(value) = value {
                    let stored = StoredReading::decode(key, &value)?;
                    committed
                        .readings
                        .insert((stored.device, stored.sequence), leaf_hash(&stored.signed));
                }
            }
            Ok(committed)
        };
        let mut committed = match read_committed() {
            Ok(committed) => Some(committed),
            Err(error) => {
                tracing::error!(%error, "reading the committed readings failed; deferring messages");
                None
            }
        };
        let mut closed_any = false;
        for message in group {
            let Some(known) = committed.as_mut() else {
                closed_any |= self.defer(message, writes);
                continue;
            };
            let mut digests = self.core.rejection_lookups(&message);
            digests.extend(self.core.conflict_lookups(&message, &known.readings));
            if !digests.is_empty() {
                let encoded: Vec<Vec<u8>> = digests.iter().map(|d| d.to_vec()).collect();
                match storage.read_many(QUARANTINE_SEEN, &encoded) {
                    Ok(values) => {
                        for (digest, value) in digests.iter().zip(values) {
                            if value.is_some() {
                                known.quarantined.insert(*digest);
                            }
                        }
                    }
                    Err(error) => {
                        tracing::error!(%error, "reading the quarantine failed; deferring a message");
                        closed_any |= self.defer(message, writes);
                        continue;
                    }
                }
            }
            closed_any |= self.add(message, known, writes);
        }
        closed_any
    }

    /// Undecidable now: acknowledge the hop, not the readings; the device offers them again.
    fn defer(
        &mut self,
        message: VerifiedMessage<Delivery>,
        writes: &mut JoinSet<(UnitId, UnitResult)>,
    ) -> bool {
        let deferred = VerifiedMessage {
            token: message.token,
            verdicts: vec![Verdict::Deferred],
        };
        self.add(deferred, &Committed::default(), writes)
    }

    fn add(
        &mut self,
        message: VerifiedMessage<Delivery>,
        committed: &Committed,
        writes: &mut JoinSet<(UnitId, UnitResult)>,
    ) -> bool {
        let now = self.clock.now_ms();
        let size = self.sequencer.durable_state().size;
        match self.core.add(message, committed, now, size, &self.metrics) {
            Ok((closed, completion)) => {
                self.dispatch(completion);
                let closed_any = !closed.is_empty();
                for unit in closed {
                    self.launch(unit, writes);
                }
                closed_any
            }
            Err(error) => {
                tracing::error!(%error, "a batch could not be encoded");
                false
            }
        }
    }

    fn close_open(&mut self, writes: &mut JoinSet<(UnitId, UnitResult)>) {
        let now = self.clock.now_ms();
        let size = self.sequencer.durable_state().size;
        match self.core.close(now, size) {
            Ok(Some(unit)) => self.launch(unit, writes),
            Ok(None) => {}
            Err(error) => tracing::error!(%error, "a batch could not be encoded"),
        }
    }

    fn launch(&mut self, unit: ClosedUnit, writes: &mut JoinSet<(UnitId, UnitResult)>) {
        let id = unit.id;
        self.units.insert(id, unit);
        self.submit(id, writes);
    }

    /// Starts (or restarts) the durable write of a unit.
    fn submit(&mut self, id: UnitId, writes: &mut JoinSet<(UnitId, UnitResult)>) {
        let Some(unit) = self.units.get(&id) else {
            return;
        };
        let records = unit.records.clone();
        match unit.entry.clone() {
            Some(entry) => {
                let sequencer = self.sequencer.clone();
                writes.spawn(async move {
                    let result = match sequencer.submit(entry, records).await {
                        Ok(index) => UnitResult::Durable(Some(index)),
                        Err(SubmitError::OutcomeUnknown) => UnitResult::Unknown,
                        Err(error) if error.is_retryable() => UnitResult::Retry,
                        Err(error) => UnitResult::Fatal(error.to_string()),
                    };
                    (id, result)
                });
            }
            None => {
                let storage = self.sequencer.storage().clone();
                writes.spawn(async move {
                    let result = match storage.put_records(records).await {
                        Ok(()) => UnitResult::Durable(None),
                        // Rewriting the same records is idempotent.
                        Err(CommitError::Backend(_)) => UnitResult::Retry,
                        Err(error) => UnitResult::Fatal(error.to_string()),
                    };
                    (id, result)
                });
            }
        }
    }

    fn on_result(
        &mut self,
        id: UnitId,
        result: UnitResult,
        writes: &mut JoinSet<(UnitId, UnitResult)>,
    ) {
        let result = match result {
            UnitResult::Unknown => {
                // The round's fate is unknown: its batch record says whether it landed.
                let landed = self.units.get(&id).and_then(|unit| {
                    let root = unit.batch_root?;
                    let expected = unit.records.iter().find(|r| r.table == BATCHES)?;
                    let stored = self.sequencer.storage().read(BATCHES, &root.0).ok()??;
                    Some(stored == expected.value)
                });
                if landed == Some(true) {
                    UnitResult::Durable(None)
                } else {
                    UnitResult::Retry
                }
            }
            other => other,
        };
        match result {
            UnitResult::Durable(index) => {
                tracing::debug!(unit = id, leaf_index = index.map(|i| i.0), "batch durable");
                self.on_durable(&[id]);
            }
            UnitResult::Retry | UnitResult::Unknown => {
                add(&self.metrics.submit_retries, 1);
                self.retries.push((Instant::now() + self.retry_backoff, id));
                let _ = writes;
            }
            UnitResult::Fatal(reason) => {
                tracing::error!(unit = id, %reason, "a batch can never be committed; its devices will offer the readings again");
                self.units.remove(&id);
                for delivery in self.core.abandon(id) {
                    self.ack(delivery);
                }
                self.release_durable();
            }
        }
    }

    /// Units became durable: forget them and send what became due, one device ack per device.
    ///
    /// Units are released in the order they closed: a unit whose write finished before an
    /// older one's waits for it. Messages then complete in the order the batcher took them,
    /// which is each connection's receive order, so MQTT acks leave in order (but for a
    /// message decided at once, such as a repeat of committed readings, and an ack retried
    /// after a full request channel). rumqttd (the in-process broker) closes a connection
    /// on an out-of-order PUBACK, which the order in which write tasks happened to finish
    /// caused under load.
    fn on_durable(&mut self, ids: &[UnitId]) {
        for id in ids {
            self.units.remove(id);
            self.durable_held.insert(*id);
        }
        self.release_durable();
    }

    /// Completes the durable units older than every unit still being written.
    fn release_durable(&mut self) {
        let oldest_in_flight = self.units.keys().min().copied();
        let mut ready = Vec::new();
        while let Some(&id) = self.durable_held.first() {
            if oldest_in_flight.is_some_and(|oldest| oldest < id) {
                break;
            }
            self.durable_held.remove(&id);
            ready.push(id);
        }
        if ready.is_empty() {
            return;
        }
        let now = self.clock.now_ms();
        self.metrics.last_commit_ms.store(now, Ordering::Relaxed);
        let completion = self.core.durable_all(&ready, now, &self.metrics);
        self.dispatch(completion);
    }

    /// Sends what became due: MQTT acks through the receiving connections at once; device
    /// acks join the held ones and leave by `flush_device_acks`.
    fn dispatch(&mut self, completion: Completion<Delivery>) {
        for delivery in completion.tokens {
            self.ack(delivery);
        }
        if completion.device_acks.is_empty() {
            return;
        }
        for ack in completion.device_acks {
            let held = self.acks_held.entry(ack.device).or_insert_with(|| {
                self.acks_order.push_back(ack.device);
                Vec::new()
            });
            for range in ack.ranges() {
                for sequence in range.first..=range.last {
                    held.push(SequenceNumber(sequence));
                    self.acks_held_count += 1;
                }
            }
        }
        let interval =
            if self.ack_interval.is_zero() && self.links.iter().any(WorkerLink::saturated) {
                SATURATED_ACK_INTERVAL
            } else {
                self.ack_interval
            };
        if interval.is_zero() {
            self.flush_device_acks();
        } else if self.ack_flush_at.is_none() {
            self.ack_flush_at = Some(Instant::now() + interval);
        }
    }

    /// Publishes the held acks of every device whose ack connection has room: one ack per
    /// device for everything due (more only past `ACK_RANGES_MAX` ranges). A device whose
    /// connection is busy keeps its acks, merged with any that come due meanwhile, and is
    /// offered again shortly. A device's acks leave in the order they became due.
    fn flush_device_acks(&mut self) {
        let order = std::mem::take(&mut self.acks_order);
        let mut buffer = [0u8; ACK_BYTES_MAX];
        for device in order {
            let topic = topic::acks_topic(device);
            let connection = self.acks.connection_of(topic.as_str());
            if !self.acks.has_room(connection) {
                self.acks_order.push_back(device);
                continue;
            }
            let Some(sequences) = self.acks_held.remove(&device) else {
                continue;
            };
            let count = sequences.len();
            let mut left: Vec<SequenceNumber> = Vec::new();
            for ack in device_acks(BTreeMap::from([(device, sequences)])) {
                if !left.is_empty() {
                    push_ranges(&ack, &mut left);
                    continue;
                }
                match ack.encode(&mut buffer) {
                    Ok(bytes) => {
                        if self
                            .acks
                            .publish(topic.as_str(), bytes.to_vec(), &self.metrics)
                            .is_err()
                        {
                            push_ranges(&ack, &mut left);
                        }
                    }
                    Err(error) => {
                        // A bug (the builder bounds an ack's size); the device offers the
                        // readings again and gets them acked as duplicates.
                        tracing::error!(%error, %device, "an ack could not be encoded");
                        add(&self.metrics.device_acks_dropped, 1);
                    }
                }
            }
            self.acks_held_count -= count - left.len();
            if !left.is_empty() {
                self.acks_held.insert(device, left);
                self.acks_order.push_back(device);
            }
        }
        if !self.acks_held.is_empty() {
            let retry = Instant::now() + DEVICE_ACK_RETRY_PERIOD.max(self.ack_interval);
            self.ack_flush_at = Some(self.ack_flush_at.map_or(retry, |at| at.min(retry)));
        }
    }

    /// At shutdown: offers the held acks until they leave or the grace period ends (a
    /// broker that is gone cannot take them; the devices then offer the readings again).
    async fn drain_device_acks(&mut self) {
        let give_up = Instant::now() + DISCONNECT_GRACE;
        self.flush_device_acks();
        while !self.acks_held.is_empty() && Instant::now() < give_up {
            tokio::time::sleep(DEVICE_ACK_RETRY_PERIOD).await;
            self.flush_device_acks();
        }
        if !self.acks_held.is_empty() {
            tracing::warn!(
                devices = self.acks_held.len(),
                "device acks still held at shutdown; those devices will offer the readings again"
            );
            add(
                &self.metrics.device_acks_dropped,
                u64::try_from(self.acks_held.len()).unwrap_or(u64::MAX),
            );
        }
    }

    /// Acknowledges a message to the broker through the connection that received it, after
    /// any of that connection's acks still waiting (so they leave in order).
    fn ack(&mut self, mut delivery: Delivery) {
        delivery.release_permit();
        let worker = delivery.worker;
        let (Some(link), Some(waiting)) = (self.links.get(worker), self.unsent.get_mut(worker))
        else {
            return;
        };
        if !waiting.is_empty() {
            waiting.push_back(delivery);
            return;
        }
        if let AckOutcome::Retry(delivery) = link.ack(delivery, &self.metrics) {
            waiting.push_back(delivery);
            self.unsent_retry_at
                .get_or_insert_with(|| Instant::now() + ACK_RETRY_PERIOD);
        }
    }

    /// Queues the waiting MQTT acks of every connection, oldest first, until one finds its
    /// request channel full again.
    fn retry_unsent(&mut self) {
        for (link, waiting) in self.links.iter().zip(self.unsent.iter_mut()) {
            while let Some(delivery) = waiting.pop_front() {
                if let AckOutcome::Retry(delivery) = link.ack(delivery, &self.metrics) {
                    waiting.push_front(delivery);
                    break;
                }
            }
        }
        if self.unsent.iter().any(|waiting| !waiting.is_empty()) {
            self.unsent_retry_at = Some(Instant::now() + ACK_RETRY_PERIOD);
        }
    }
}

/// Appends the sequence numbers an ack names (the ranges of an ack built from held numbers,
/// so their sizes are bounded by what was held).
fn push_ranges(ack: &protocol::Ack, into: &mut Vec<SequenceNumber>) {
    for range in ack.ranges() {
        into.extend((range.first..=range.last).map(SequenceNumber));
    }
}
