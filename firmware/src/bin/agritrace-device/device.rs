//! One simulated device: a [`firmware::Logger`] on a simulated board, wired to its MQTT link.
//!
//! The logger is the engine (sample, sign, outbox, what to publish, what an ack frees); this
//! task only moves time, feeds it samples, publishes what it hands out and passes acks and
//! connection changes back in. Simulated time is `elapsed real time x time scale` since the
//! start of the run, used for the logger's clock, the board's physics and the readings'
//! timestamps alike, so the logger's resend timeout is configured in simulated milliseconds.
//!
//! Samples are taken exactly at the logger's schedule (the board is advanced to the due
//! instant, not to "now"), so a run with `--seed` signs the same readings every time it takes
//! them at the same simulated instants; if the host falls behind, the missed samples are taken
//! in a bounded burst, at their own instants.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use firmware::{
    DeviceConfig, FILE_FLASH_SECTOR_BYTES, FileFlash, FileFlashError, FileSequenceStore,
    FlashJournal, JournalError, Logger, OutboxJournal, SequenceStore,
};
use hardware::sim::{SimulatedLogger, VoyageProfile};
use protocol::limits::UPLINK_BYTES_MAX;
use rumqttc::QoS;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::backoff::Backoff;
use crate::keys::DeviceKey;
use crate::mqtt::{Link, LinkConfig, LinkEvent, PUBLISH_WINDOW};

/// Readings the outbox of one simulated device holds before it evicts the oldest: about 17
/// hours of broker outage at one reading a minute, about 140 KiB of memory per device.
pub const OUTBOX_READINGS: usize = 1024;

/// Erase sectors of a device's journal file (`<device-id>.outbox`, 4 KiB each, 26 records
/// per sector): enough for a full outbox plus the sector being written, so the RAM outbox,
/// not the ring, decides what is evicted. The file grows as it is written, up to 192 KiB.
const JOURNAL_SECTORS: u32 = 48;

/// Most samples taken in one turn of the loop when the host fell behind schedule, so that
/// acks and connection events are still handled in between.
const SAMPLES_PER_TURN_MAX: u32 = 64;

/// Longest real time the loop sleeps, so that resend timeouts are noticed.
const IDLE_WAKE: Duration = Duration::from_millis(200);

/// Counters of one device, readable while it runs (for the summary and on Ctrl-C).
#[derive(Debug, Default)]
pub struct DeviceStats {
    /// Readings signed and put in the outbox in this run.
    pub recorded: AtomicU64,
    /// Sequence number of the first reading of this run (valid when `recorded > 0`).
    pub first_sequence: AtomicU64,
    /// Sequence number of the last reading of this run.
    pub last_sequence: AtomicU64,
    /// Readings handed to MQTT, resends included.
    pub sent: AtomicU64,
    /// Uplink messages handed to MQTT.
    pub messages: AtomicU64,
    /// Readings freed by end-to-end acks.
    pub acked: AtomicU64,
    /// Readings evicted from the full outbox before they were acknowledged.
    pub dropped: AtomicU64,
    /// Readings still in the outbox.
    pub pending: AtomicU64,
    /// Samples the board failed to take.
    pub sample_failures: AtomicU64,
    /// Times the link came up.
    pub connections: AtomicU64,
    /// Acks refused (malformed, or for another device).
    pub acks_refused: AtomicU64,
    /// Readings restored from the journal at start.
    pub restored: AtomicU64,
    /// Journal writes that failed (readings not recorded; acknowledged or evicted readings
    /// not retired).
    pub journal_failures: AtomicU64,
    /// Whether the device stopped with an empty outbox.
    pub drained: AtomicBool,
}

/// Everything one device needs to run.
#[derive(Debug)]
pub struct DeviceSetup {
    pub key: DeviceKey,
    pub sample_period_ms: u32,
    /// Resend timeout in simulated milliseconds.
    pub resend_after_ms: u32,
    pub time_scale: f64,
    /// Readings to take before stopping; `None` runs until told to stop.
    pub readings: Option<u64>,
    pub exit_timeout: Duration,
    /// Seed of this device's simulated voyage.
    pub sim_seed: u64,
    /// Unix time of simulated time zero, ms.
    pub start_unix_ms: u64,
    /// Real instant of simulated time zero (shared by the fleet).
    pub start: Instant,
    pub link: LinkConfig,
    pub backoff: Backoff,
    /// Print `persisted <device-id> <sequence>` on standard output once a reading is durable
    /// in the journal, and `restored <device-id> <sequence>` for each reading restored at start.
    pub print_persisted: bool,
}

/// Runs one device until it has taken its readings (or `stop` turns true) and its outbox is
/// empty, or until the exit timeout passes after sampling stopped. Returns whether the outbox
/// drained; failures to start (key, sequence file, simulation) are errors.
pub async fn run(
    setup: DeviceSetup,
    keys_dir: &Path,
    stats: Arc<DeviceStats>,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<bool> {
    let device = setup.key.device;
    let device_id = device.to_string();
    let config = DeviceConfig {
        device,
        key_epoch: setup.key.key_epoch,
        sample_period_ms: setup.sample_period_ms,
        resend_after_ms: setup.resend_after_ms,
    };
    let mut store = FileSequenceStore::new(crate::keys::sequence_file(keys_dir, device));
    let journal_path = keys_dir.join(format!("{device_id}.outbox"));
    let journal_bytes = JOURNAL_SECTORS * u32::try_from(FILE_FLASH_SECTOR_BYTES)?;
    let journal = FileFlash::open(&journal_path, usize::try_from(journal_bytes)?)
        .map_err(|error| journal_error(JournalError::Flash(error)))
        .and_then(|flash| FlashJournal::open(flash, 0..journal_bytes).map_err(journal_error))
        .with_context(|| {
            format!(
                "while opening the outbox journal {} of device {device_id}",
                journal_path.display()
            )
        })?;
    let usable = journal.capacity_records() - journal.records_per_sector();
    anyhow::ensure!(
        usize::try_from(usable).is_ok_and(|usable| usable >= OUTBOX_READINGS),
        "the outbox journal holds {usable} readings, fewer than the outbox's {OUTBOX_READINGS}"
    );
    refuse_unknown_sequence(&mut store, &journal, &setup.key.key_file, &journal_path)
        .with_context(|| format!("device {device_id} cannot start"))?;
    let torn = journal.torn_at_open();
    // Boxed: the outbox is ~140 KiB and the future holding it moves onto the heap anyway.
    let mut logger: Box<Logger<OUTBOX_READINGS, FlashJournal<FileFlash>>> = Box::new(
        Logger::boot_with_journal(config, setup.key.signing_key.clone(), &mut store, journal)
            .map_err(boot_error)
            .with_context(|| {
                format!(
                    "while starting device {device_id} (sequence file {}, journal {})",
                    store.path().display(),
                    journal_path.display()
                )
            })?,
    );
    let restored = logger.restored();
    stats.restored.store(
        u64::try_from(restored.restored).unwrap_or(u64::MAX),
        Ordering::Relaxed,
    );
    if setup.print_persisted {
        for entry in logger.outbox() {
            println!("restored {device_id} {}", entry.sequence.0);
        }
    }
    if restored != firmware::Restored::default() || torn > 0 {
        info!(
            device_id = %device_id,
            restored = restored.restored,
            evicted = restored.evicted,
            torn,
            stale = restored.stale,
            "outbox restored from the journal"
        );
    }
    let profile = VoyageProfile {
        start_unix_s: setup.start_unix_ms / 1000,
        ..VoyageProfile::mangoes_yunnan_to_rotterdam()
    };
    let (mut board, clock) = SimulatedLogger::new(setup.sim_seed, profile)
        .with_context(|| format!("while building the simulated board of device {device_id}"))?;
    let readings_topic = logger.readings_topic().to_string();
    let mut link = Link::spawn(
        device_id.clone(),
        setup.key.mqtt_secret.clone(),
        logger.acks_topic().to_string(),
        &setup.link,
        setup.backoff.clone(),
    );
    info!(device_id = %device_id, next_sequence = logger.next_sequence().0, "device started");

    let sim_now = |at: Instant| -> u64 {
        let elapsed = at.saturating_duration_since(setup.start).as_secs_f64();
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "non-negative and far below 2^64 ms for any run length; float to int saturates"
        )]
        let ms = (elapsed * setup.time_scale * 1000.0) as u64;
        ms
    };
    let real_at = |sim_ms: u64| -> Instant {
        #[allow(clippy::cast_precision_loss, reason = "ms counts far below 2^52")]
        let seconds = sim_ms as f64 / 1000.0 / setup.time_scale;
        setup.start + Duration::try_from_secs_f64(seconds).unwrap_or(Duration::MAX / 4)
    };

    let mut buf = vec![0u8; UPLINK_BYTES_MAX];
    let mut up = false;
    // Uplink messages handed to MQTT whose PUBACK has not come back yet.
    let mut unconfirmed = 0usize;
    let mut sampling = setup.readings != Some(0) && !*stop.borrow();
    let mut sampling_stopped_at = (!sampling).then(Instant::now);
    let mut recorded = 0u64;
    // Records that could not be appended; the logger counts the retires that failed.
    let mut record_journal_failures = 0u64;

    let drained = loop {
        let now_real = Instant::now();
        let now = sim_now(now_real);

        // 1. Samples due by now, each at its own instant.
        let mut taken = 0;
        while sampling && taken < SAMPLES_PER_TURN_MAX && logger.sample_due(now) {
            taken += 1;
            let due = logger.next_sample_at_ms();
            let sample = clock
                .advance_to(due)
                .map_err(|error| anyhow::anyhow!("simulation: {error}"))
                .and_then(|()| {
                    board
                        .sample()
                        .map_err(|error| anyhow::anyhow!("board: {error}"))
                });
            match sample {
                Ok(sample) => match logger.record(
                    due,
                    setup.start_unix_ms.saturating_add(due),
                    &sample,
                    &mut store,
                ) {
                    Ok(sequence) => {
                        if recorded == 0 {
                            stats.first_sequence.store(sequence.0, Ordering::Relaxed);
                        }
                        recorded += 1;
                        stats.recorded.store(recorded, Ordering::Relaxed);
                        stats.last_sequence.store(sequence.0, Ordering::Relaxed);
                        if setup.print_persisted {
                            // Printed only once `record` returned: the reading is durable.
                            println!("persisted {device_id} {}", sequence.0);
                        }
                        debug!(
                            device_id = %device_id,
                            sequence = sequence.0,
                            sim_ms = due,
                            "reading recorded"
                        );
                        if setup.readings == Some(recorded) {
                            sampling = false;
                            sampling_stopped_at = Some(Instant::now());
                            info!(
                                device_id = %device_id,
                                readings = recorded,
                                "all readings taken; waiting for acks"
                            );
                        }
                    }
                    Err(error) => {
                        stats.sample_failures.fetch_add(1, Ordering::Relaxed);
                        if let firmware::RecordError::Journal(cause) = &error {
                            record_journal_failures += 1;
                            warn!(device_id = %device_id, sim_ms = due, %cause, "journal write failed");
                        }
                        warn!(device_id = %device_id, sim_ms = due, %error, "reading not recorded");
                        logger.skip_sample(due);
                    }
                },
                Err(error) => {
                    stats.sample_failures.fetch_add(1, Ordering::Relaxed);
                    warn!(device_id = %device_id, sim_ms = due, %error, "sample failed");
                    logger.skip_sample(due);
                }
            }
        }
        stats
            .dropped
            .store(logger.dropped_total(), Ordering::Relaxed);
        stats.journal_failures.store(
            record_journal_failures.saturating_add(logger.journal_failures()),
            Ordering::Relaxed,
        );

        // 2. Publish what the logger hands out, within the window of unconfirmed messages.
        while up && unconfirmed < PUBLISH_WINDOW {
            let Some(message) = logger.next_uplink(now, &mut buf) else {
                break;
            };
            let readings = protocol::Uplink::decode(message).map_or(0, |uplink| uplink.len());
            match link.client.try_publish(
                readings_topic.as_str(),
                QoS::AtLeastOnce,
                false,
                message.to_vec(),
            ) {
                Ok(()) => {
                    unconfirmed += 1;
                    stats.messages.fetch_add(1, Ordering::Relaxed);
                    stats.sent.fetch_add(
                        u64::try_from(readings).unwrap_or(u64::MAX),
                        Ordering::Relaxed,
                    );
                    debug!(
                        device_id = %device_id,
                        readings,
                        in_flight = logger.in_flight(),
                        "uplink published"
                    );
                }
                Err(error) => {
                    // The request channel is full (requests queued across a reconnect): put
                    // everything in flight back to pending and wait for the next PUBACK.
                    warn!(device_id = %device_id, %error, "publish queue full; retrying later");
                    logger.on_connection_lost();
                    unconfirmed = PUBLISH_WINDOW;
                    break;
                }
            }
        }
        stats.pending.store(
            u64::try_from(logger.outbox_len()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );

        // 3. Done?
        if let Some(stopped_at) = sampling_stopped_at {
            if logger.outbox_len() == 0 {
                break true;
            }
            if stopped_at.elapsed() >= setup.exit_timeout {
                warn!(
                    device_id = %device_id,
                    pending = logger.outbox_len(),
                    "exit timeout passed with readings still unacknowledged"
                );
                break false;
            }
        }

        // 4. Wait for the next sample, an event, or the idle tick.
        let mut wake = now_real + IDLE_WAKE;
        if sampling {
            wake = wake.min(real_at(logger.next_sample_at_ms()));
        }
        if let Some(stopped_at) = sampling_stopped_at {
            wake = wake.min(stopped_at + setup.exit_timeout);
        }
        tokio::select! {
            event = link.events.recv() => match event {
                Some(LinkEvent::Up) => {
                    up = true;
                    unconfirmed = 0;
                    stats.connections.fetch_add(1, Ordering::Relaxed);
                }
                Some(LinkEvent::Down { reason }) => {
                    up = false;
                    unconfirmed = 0;
                    // Whatever was in flight may not have arrived: the logger sends it again.
                    logger.on_connection_lost();
                    debug!(
                        device_id = %device_id,
                        %reason,
                        outbox = logger.outbox_len(),
                        "link down; readings kept"
                    );
                }
                Some(LinkEvent::PublishAcked) => unconfirmed = unconfirmed.saturating_sub(1),
                Some(LinkEvent::Ack(payload)) => match logger.on_ack(&payload) {
                    Ok(outcome) => {
                        let freed = u64::try_from(outcome.freed).unwrap_or(u64::MAX);
                        stats.acked.fetch_add(freed, Ordering::Relaxed);
                        if outcome.journal_failures > 0 {
                            warn!(
                                device_id = %device_id,
                                failures = outcome.journal_failures,
                                "acknowledged readings not retired in the journal; \
                                 they are sent again after a restart"
                            );
                        }
                        debug!(
                            device_id = %device_id,
                            freed = outcome.freed,
                            not_in_outbox = outcome.not_in_outbox,
                            outbox = logger.outbox_len(),
                            "ack applied"
                        );
                    }
                    Err(error) => {
                        stats.acks_refused.fetch_add(1, Ordering::Relaxed);
                        warn!(device_id = %device_id, %error, "ack refused");
                    }
                },
                None => anyhow::bail!("the MQTT connection task of device {device_id} stopped"),
            },
            changed = stop.changed(), if sampling => {
                if changed.is_err() || *stop.borrow() {
                    sampling = false;
                    sampling_stopped_at = Some(Instant::now());
                    info!(
                        device_id = %device_id,
                        readings = recorded,
                        outbox = logger.outbox_len(),
                        "stopping; waiting for acks"
                    );
                }
            }
            () = tokio::time::sleep_until(wake) => {}
        }
    };
    stats.pending.store(
        u64::try_from(logger.outbox_len()).unwrap_or(u64::MAX),
        Ordering::Relaxed,
    );
    stats
        .dropped
        .store(logger.dropped_total(), Ordering::Relaxed);
    stats.journal_failures.store(
        record_journal_failures.saturating_add(logger.journal_failures()),
        Ordering::Relaxed,
    );
    stats.drained.store(drained, Ordering::Relaxed);
    link.close(Duration::from_secs(1)).await;
    Ok(drained)
}

/// Refuses a device whose sequence position is unknown: its sequence file is missing (a new
/// key always gets one, see [`crate::keys::load_or_create`]) and its journal holds no record
/// to continue above. Starting at 0 would sign new readings under numbers the backend may
/// already hold.
fn refuse_unknown_sequence(
    store: &mut FileSequenceStore,
    journal: &FlashJournal<FileFlash>,
    key_file: &Path,
    journal_path: &Path,
) -> anyhow::Result<()> {
    let mark = store
        .load()
        .with_context(|| format!("while reading the sequence file {}", store.path().display()))?;
    if mark.is_none() && journal.newest_sequence().is_none() {
        anyhow::bail!(
            "its key file {} exists but its sequence file {} is missing and its outbox journal \
             {} holds no reading, so the sequence number it stopped at is unknown; starting \
             again at 0 could sign new readings under numbers the backend already holds. To \
             recover: if the device never sent a reading, write 0 into the sequence file \
             (`echo 0 > {}`); if it did, write a number above the highest sequence number the \
             backend holds for it; or provision a new device (another --fleet-prefix) and \
             retire this one",
            key_file.display(),
            store.path().display(),
            journal_path.display(),
            store.path().display(),
        );
    }
    Ok(())
}

/// A boot error with the sequence file's or the journal's error in its cause chain.
fn boot_error(
    error: firmware::BootError<std::io::Error, JournalError<FileFlashError>>,
) -> anyhow::Error {
    match error {
        firmware::BootError::Store(io) => {
            anyhow::Error::new(io).context("the sequence reservation file cannot be used")
        }
        firmware::BootError::Journal(error) => {
            journal_error(error).context("the outbox journal cannot be read")
        }
        other => anyhow::anyhow!("{other}"),
    }
}

/// A journal error with the file's I/O error in its cause chain.
fn journal_error(error: JournalError<FileFlashError>) -> anyhow::Error {
    match error {
        JournalError::Flash(FileFlashError::Io(io)) => {
            anyhow::Error::new(io).context("the journal file failed")
        }
        other => anyhow::anyhow!("{other}"),
    }
}
