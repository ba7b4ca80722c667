//! The running service: wiring of workers → verifiers → the batcher → the sequencer, and the
//! handle the node holds.

use std::collections::{BTreeSet, HashMap};
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
    BatchCore, BatchLimits, ClosedUnit, Committed, Completion, UnitId, VerifiedMessage,
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
}

impl<S: Clone> Clone for IngestHandle<S> {
    fn clone(&self) -> Self {
        Self {
            sequencer: self.sequencer.clone(),
            registry: self.registry.clone(),
            metrics: self.metrics.clone(),
        }
    }
}

impl<S: IngestStorage> IngestHandle<S> {
    /// The counters now.
    #[must_use]
    pub fn metrics(&self) -> MetricsSnapshot {
        self.metrics.snapshot()
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
        unsent: Vec::new(),
        durable_held: BTreeSet::new(),
    };
    let batcher = tokio::spawn(batcher.run());
    Ok((
        IngestHandle {
            sequencer,
            registry,
            metrics,
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
    output: mpsc::Sender<VerifiedMessage<Delivery>>,
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
        for (token, verdicts) in group.into_iter().zip(verdicts) {
            if output
                .send(VerifiedMessage { token, verdicts })
                .await
                .is_err()
            {
                return;
            }
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
    input: mpsc::Receiver<VerifiedMessage<Delivery>>,
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
    /// MQTT acks that found a full request channel.
    unsent: Vec<Delivery>,
    /// Durable units waiting for an older unit's write (see `on_durable`).
    durable_held: BTreeSet<UnitId>,
}

impl<S: IngestStorage> BatcherTask<S> {
    async fn run(mut self) {
        let mut writes: JoinSet<(UnitId, UnitResult)> = JoinSet::new();
        let mut input_open = true;
        let mut deadline: Option<Instant> = None;
        loop {
            self.metrics.readings_pending.store(
                u64::try_from(self.core.readings_pending()).unwrap_or(u64::MAX),
                Ordering::Relaxed,
            );
            self.metrics.batches_in_flight.store(
                u64::try_from(self.core.units_in_flight()).unwrap_or(u64::MAX),
                Ordering::Relaxed,
            );
            if !input_open && self.core.units_in_flight() == 0 && self.core.open_is_empty() {
                return;
            }
            let retry_at = self.retries.iter().map(|(at, _)| *at).min();
            let can_take = input_open && self.core.units_in_flight() < self.in_flight_max;
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
                () = tokio::time::sleep(ACK_RETRY_PERIOD), if !self.unsent.is_empty() => {
                    let unsent = std::mem::take(&mut self.unsent);
                    for delivery in unsent {
                        self.ack(delivery);
                    }
                }
                message = self.input.recv(), if can_take => match message {
                    Some(message) => {
                        let was_empty = self.core.open_is_empty();
                        self.take(message, &mut writes);
                        if self.core.open_is_empty() {
                            deadline = None;
                        } else if was_empty || deadline.is_none() {
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

    /// Reads what storage knows about the message's readings, then hands it to the core.
    fn take(
        &mut self,
        message: VerifiedMessage<Delivery>,
        writes: &mut JoinSet<(UnitId, UnitResult)>,
    ) {
        let storage = self.sequencer.storage();
        let (keys, digests) = self.core.lookups(&message);
        let lookup = || -> Result<Committed, QueryError> {
            let mut committed = Committed::default();
            let encoded: Vec<Vec<u8>> = keys.iter().map(|(d, s)| reading_key(*d, *s)).collect();
            for (key, value) in encoded.iter().zip(storage.read_many(READINGS, &encoded)?) {
                if let Some(value) = value {
                    let stored = StoredReading::decode(key, &value)?;
                    committed
                        .readings
                        .insert((stored.device, stored.sequence), leaf_hash(&stored.signed));
                }
            }
            let mut digests = digests;
            digests.extend(self.core.conflict_lookups(&message, &committed.readings));
            if digests.is_empty() {
                // The usual message: new readings, nothing refused.
                return Ok(committed);
            }
            let encoded: Vec<Vec<u8>> = digests.iter().map(|d| d.to_vec()).collect();
            for (digest, value) in digests
                .iter()
                .zip(storage.read_many(QUARANTINE_SEEN, &encoded)?)
            {
                if value.is_some() {
                    committed.quarantined.insert(*digest);
                }
            }
            Ok(committed)
        };
        let committed = match lookup() {
            Ok(committed) => committed,
            Err(error) => {
                // Undecidable now: acknowledge the hop, not the readings; the device offers
                // them again.
                tracing::error!(%error, "reading the committed readings failed; deferring a message");
                let deferred = VerifiedMessage {
                    token: message.token,
                    verdicts: vec![Verdict::Deferred],
                };
                self.add(deferred, &Committed::default(), writes);
                return;
            }
        };
        self.add(message, &committed, writes);
    }

    fn add(
        &mut self,
        message: VerifiedMessage<Delivery>,
        committed: &Committed,
        writes: &mut JoinSet<(UnitId, UnitResult)>,
    ) {
        let now = self.clock.now_ms();
        let size = self.sequencer.durable_state().size;
        match self.core.add(message, committed, now, size, &self.metrics) {
            Ok((closed, completion)) => {
                self.dispatch(completion);
                for unit in closed {
                    self.launch(unit, writes);
                }
            }
            Err(error) => tracing::error!(%error, "a batch could not be encoded"),
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

    /// Sends what became due: MQTT acks through the receiving connections, device acks on
    /// the acks topics.
    fn dispatch(&mut self, completion: Completion<Delivery>) {
        for delivery in completion.tokens {
            self.ack(delivery);
        }
        for ack in completion.device_acks {
            let mut buffer = [0u8; ACK_BYTES_MAX];
            match ack.encode(&mut buffer) {
                Ok(bytes) => {
                    self.acks.publish(
                        &topic::acks_topic(ack.device),
                        bytes.to_vec(),
                        &self.metrics,
                    );
                }
                Err(error) => {
                    tracing::error!(%error, device = %ack.device, "an ack could not be encoded")
                }
            }
        }
    }

    fn ack(&mut self, delivery: Delivery) {
        let Some(link) = self.links.get(delivery.worker) else {
            return;
        };
        if let AckOutcome::Retry(delivery) = link.ack(delivery, &self.metrics) {
            self.unsent.push(delivery);
        }
    }
}
