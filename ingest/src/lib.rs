//! The ingest service (DESIGN.md, data flow steps 2 and 3): signed readings arrive over MQTT,
//! are verified, deduplicated, batched into a Merkle tree, anchored as one `ReadingBatch` log
//! entry per batch, and acknowledged only after the durable commit.
//!
//! # Pipeline
//!
//! ```text
//!  broker ──$share/ingest/…/+/readings──▶ worker 0..N ──▶ verifier 0..N ──▶ batcher ──▶ sequencer
//!     ▲         (own connection each,        (bounded)      (one per          (one round,
//!     │          manual QoS 1 acks)                         sequencer)         durable)
//!     └──────── MQTT acks (via the receiving connection) + device acks (ack publisher) ◀──┘
//! ```
//!
//! - **Workers** ([`mqtt`]): one MQTT connection each on the shared subscription, QoS 1,
//!   acks sent by ingest after the commit (written in batches: one write carries every ack
//!   queued at that moment). A worker holds a permit per unacknowledged message; with none left it stops
//!   reading, so the broker holds the backlog.
//! - **Verifiers** ([`verify`], pure): size limits, uplink and reading decoding, topic/device
//!   match, key lookup by (device, key epoch) in the [`registry`] (cached), Ed25519 batch
//!   verification with one-by-one fallback, the ingest time recorded beside the device time and
//!   a clock-skew flag (flagged, never refused). Time comes from an injected [`Clock`].
//! - **Batcher** ([`batcher`], pure core + task): one per sequencer, so deduplication by
//!   (device, sequence) is decided where readings commit, against the readings not yet durable
//!   and the committed readings table. Units close on a count bound, a time bound, or the
//!   sequencer's per-entry record limit. A unit with readings becomes a `ReadingBatch` whose
//!   `batch_root` is the RFC 9162 root over `leaf_hash(signed reading bytes)` in batch order,
//!   submitted with its sidecar records (readings, batch, devices last seen, quarantine) so the
//!   readings, the entry and the log state commit in one durable transaction.
//! - **Acks**: after a unit is durable, every message depending on it is acked to the broker
//!   through the connection that received it, in receive order (an ack that finds the
//!   connection's request channel full waits, and every later ack of that connection waits
//!   behind it), and each device gets one ack (as ranges) naming its committed, duplicate
//!   and refused-for-good readings. Retryable refusals (unknown device) are MQTT-acked (an
//!   MQTT ack is hop-by-hop) but never named in a device ack, so the device offers them
//!   again.
//! - **Ack coalescing and overload.** Device acks that came due are held per device and leave
//!   as soon as the device's ack connection has room (fewer than
//!   [`mqtt::ACK_PUBLISHER_INFLIGHT`] acks unacknowledged by the broker), or after
//!   `device_ack_interval_ms` if configured; acks that come due meanwhile merge into the held
//!   one. So a broker that keeps up gets one ack per device per round at once, and one that
//!   falls behind gets fewer acks covering more readings each. When `device_ack_held_max`
//!   sequence numbers are held the batcher takes no new message: the verifier queues fill,
//!   the workers stop reading, and the broker holds the backlog. An ack is never dropped for
//!   want of room (only one still held when shutdown's grace period ends).
//!
//! # Decisions
//!
//! - **Deduplication.** Exact repeat (same signed bytes) = duplicate: acked, dropped, counted. A
//!   different reading under a used (device, sequence) = `ConflictingReplay`: quarantined for
//!   good, and acked after the original is durable. A repeat of an original still in flight is
//!   acked only once the original's unit is durable. Two workers, or a redelivery on another
//!   worker, meet the same batcher, so every reading is anchored once.
//! - **Quarantine durability.** Quarantine records ride in the unit's sidecar records (with a
//!   batch: in the sequencer's round; without readings: in their own durable storage
//!   transaction, [`store::IngestStorage::put_records`]). Either way they are durable before any
//!   ack depending on them. A repeat of an already quarantined payload is counted, not stored
//!   twice (`ingest_quarantine_seen`).
//! - **Index resolution.** The sequencer answers the log index only after the round commits,
//!   so the records committed with the entry cannot hold it. The batch record holds the
//!   entry's leaf hash and the durable log size at submission, a lower bound of its index;
//!   [`store::locate_entry`] reads the few entries appended since (one or two rounds) to find
//!   the index. This needs no second write and no change to the sequencer, and a crash between
//!   commit and answer loses nothing.
//! - **Submission failures.** Retryable refusals (full pool, round not committed) are
//!   resubmitted after `retry_backoff_ms`. A round whose commit outcome is unknown is settled
//!   by the sequencer (it asks storage until storage answers) before its submitters hear
//!   anything, so they hear their index or `NotCommitted`, and a resubmission never puts a
//!   batch in the log twice. `OutcomeUnknown` comes only from a sequencer that stopped before
//!   settling; the batch record then tells whether the round landed, and a batch is resubmitted
//!   only if it is absent.
//! - **Scale-out.** One batcher per sequencer. Several ingest processes on one sequencer would
//!   need the deduplication check inside the sequencer's round; today run one ingest per log,
//!   with as many workers as needed.
//!
//! Tables and encodings: [`records`]. Trust assumption: only the backend may publish on acks
//! topics and only a device on its readings topic (broker ACLs); acks are not signed yet.

pub mod batcher;
pub mod clock;
pub mod config;
pub mod metrics;
pub mod mqtt;
pub mod quarantine;
pub mod query;
pub mod records;
pub mod registry;
mod service;
pub mod store;
#[cfg(feature = "scylla")]
pub mod store_scylla;
pub mod verify;

#[cfg(test)]
mod test_support;

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{BrokerLogin, ConfigError, IngestConfig};
pub use metrics::{HistogramSnapshot, MetricsSnapshot};
pub use quarantine::{QuarantineRecord, RejectReason};
pub use query::{QuarantineList, QuarantinePage, QueryError, ReadingAnchor};
pub use records::{DeviceSeen, EntryLocator, KeyRecord, KeyStatus, StoredBatch, StoredReading};
pub use registry::{DeviceRegistry, KeyLookup, RegisterOutcome, RegistryError};
pub use service::{IngestHandle, IngestTasks, StartError, start};
pub use store::IngestStorage;
