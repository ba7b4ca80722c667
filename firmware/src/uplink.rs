//! The uplink seen from the device (publish messages, receive acks) and [`step`], one turn of
//! a simple main loop that wires a [`Logger`] to an [`Uplink`], a [`SequenceStore`] and a
//! sensor.
//!
//! Hosts with their own event loop (the `agritrace-device` binary) can call the logger's
//! methods directly instead; `step` is the reference order: acks first (they free room), then
//! the sample, then publishing.

use hardware::Sample;
use protocol::SequenceNumber;
use protocol::limits::ACK_BYTES_MAX;

use crate::journal::OutboxJournal;
use crate::logger::{AckRefused, Logger, RecordError};
use crate::sequence::SequenceStore;

/// Most acks [`step`] applies in one call, so one call's work stays bounded.
pub const ACKS_PER_STEP_MAX: usize = 16;

/// Most uplink messages [`step`] publishes in one call (each carries up to
/// [`protocol::limits::BACKLOG_READINGS_MAX`] readings).
pub const MESSAGES_PER_STEP_MAX: usize = 8;

/// The device's connection to the backend (MQTT on a real device: QoS 1 publishes on the
/// readings topic, a subscription to the acks topic). Neither method may block for long.
pub trait Uplink {
    /// What went wrong in the transport.
    type Error;

    /// Publishes one uplink message on `topic`. `Ok` means handed to the transport, not that
    /// it arrived: the reading stays in the outbox until an ack names it.
    fn publish(&mut self, topic: &str, payload: &[u8]) -> Result<(), Self::Error>;

    /// Copies the next message received on the device's acks topic into `buf` (which is
    /// [`ACK_BYTES_MAX`] long in [`step`]) and returns its length, or `Ok(None)` when none is
    /// waiting. A message longer than `buf` should be dropped, not truncated.
    fn receive_ack(&mut self, buf: &mut [u8]) -> Result<Option<usize>, Self::Error>;
}

/// What happened to the sample in one [`step`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SampleOutcome<SampleE, StoreE, JournalE = core::convert::Infallible> {
    /// No sample was due.
    NotDue,
    /// The sample was signed and appended to the outbox under this sequence number.
    Recorded(SequenceNumber),
    /// The sensors could not be read; the sample was skipped.
    SensorFailed(SampleE),
    /// The sample was read but could not be recorded; it was skipped.
    RecordFailed(RecordError<StoreE, JournalE>),
}

/// What one [`step`] did. A failure in one phase does not stop the others, except that a
/// failing uplink stops the uplink phases.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StepReport<SampleE, StoreE, UplinkE, JournalE = core::convert::Infallible> {
    /// Acks applied.
    pub acks_applied: usize,
    /// Readings those acks freed.
    pub readings_freed: usize,
    /// Acks refused (malformed, or for another device); the last reason is in `last_refusal`.
    pub acks_refused: usize,
    /// Why the last refused ack was refused.
    pub last_refusal: Option<AckRefused>,
    /// The sample of this step.
    pub sample: SampleOutcome<SampleE, StoreE, JournalE>,
    /// Uplink messages published.
    pub messages_published: usize,
    /// Readings in those messages.
    pub readings_published: usize,
    /// The transport error that ended the uplink phase; everything in flight was made pending
    /// again.
    pub uplink_error: Option<UplinkE>,
}

/// One turn of the main loop at `now_ms` (monotonic) / `unix_time_ms` (wall clock):
/// 1. apply the acks waiting on the uplink (at most [`ACKS_PER_STEP_MAX`]),
/// 2. if a sample is due, call `sample` and record the result (signing it),
/// 3. publish the due readings (at most [`MESSAGES_PER_STEP_MAX`] messages built in
///    `uplink_buf`, which should be [`protocol::limits::UPLINK_BYTES_MAX`] long).
///
/// A transport error makes every reading in flight pending again (the connection is
/// presumed lost) and skips the rest of the uplink work; the next step tries again.
pub fn step<const OUTBOX: usize, J, U, S, E>(
    logger: &mut Logger<OUTBOX, J>,
    uplink: &mut U,
    store: &mut S,
    now_ms: u64,
    unix_time_ms: u64,
    sample: impl FnOnce() -> Result<Sample, E>,
    uplink_buf: &mut [u8],
) -> StepReport<E, S::Error, U::Error, J::Error>
where
    J: OutboxJournal,
    U: Uplink,
    S: SequenceStore,
{
    let mut report = StepReport {
        acks_applied: 0,
        readings_freed: 0,
        acks_refused: 0,
        last_refusal: None,
        sample: SampleOutcome::NotDue,
        messages_published: 0,
        readings_published: 0,
        uplink_error: None,
    };

    let mut ack_buf = [0u8; ACK_BYTES_MAX];
    for _ in 0..ACKS_PER_STEP_MAX {
        match uplink.receive_ack(&mut ack_buf) {
            Ok(None) => break,
            Ok(Some(len)) => {
                // A length beyond the buffer is a transport bug; refuse it like a bad ack.
                let result = ack_buf
                    .get(..len)
                    .ok_or(AckRefused::Malformed(protocol::AckError::TooLarge {
                        len,
                        max: ACK_BYTES_MAX,
                    }))
                    .and_then(|payload| logger.on_ack(payload));
                match result {
                    Ok(outcome) => {
                        report.acks_applied += 1;
                        report.readings_freed += outcome.freed;
                    }
                    Err(refusal) => {
                        report.acks_refused += 1;
                        report.last_refusal = Some(refusal);
                    }
                }
            }
            Err(error) => {
                report.uplink_error = Some(error);
                break;
            }
        }
    }

    if logger.sample_due(now_ms) {
        report.sample = match sample() {
            Ok(reading) => match logger.record(now_ms, unix_time_ms, &reading, store) {
                Ok(sequence) => SampleOutcome::Recorded(sequence),
                Err(error) => {
                    logger.skip_sample(now_ms);
                    SampleOutcome::RecordFailed(error)
                }
            },
            Err(error) => {
                logger.skip_sample(now_ms);
                SampleOutcome::SensorFailed(error)
            }
        };
    }

    if report.uplink_error.is_none() {
        let topic = logger.readings_topic();
        for _ in 0..MESSAGES_PER_STEP_MAX {
            let Some(message) = logger.next_uplink(now_ms, uplink_buf) else {
                break;
            };
            let readings = protocol::Uplink::decode(message).map_or(0, |m| m.len());
            match uplink.publish(&topic, message) {
                Ok(()) => {
                    report.messages_published += 1;
                    report.readings_published += readings;
                }
                Err(error) => {
                    report.uplink_error = Some(error);
                    break;
                }
            }
        }
    }
    if report.uplink_error.is_some() {
        logger.on_connection_lost();
    }
    report
}
