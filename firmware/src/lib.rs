//! The agritrace cold-chain logger application, `no_std` and without allocation.
//!
//! A sans-IO state machine ([`Logger`]): every sampling period the caller hands it a sensor
//! [`hardware::Sample`]; it builds a [`protocol::Reading`] with the next sequence number,
//! signs it with the device key through [`protocol::encode_signed_reading`] and appends it to
//! a bounded outbox. [`Logger::next_uplink`] hands out the oldest readings due for publishing
//! as one uplink message; [`Logger::on_ack`] frees exactly the sequence numbers the backend's
//! end-to-end ack names. Sequence numbers are reserved ahead in a [`SequenceStore`] so a
//! reboot never reuses one. The outbox is kept durable in a [`FlashJournal`], a ring of
//! records in NOR flash over the `embedded-storage` [`NorFlash`](embedded_storage::nor_flash::NorFlash)
//! trait, so a reboot or a power cut loses no reading the backend has not acknowledged. The core takes time, samples and bytes as inputs and returns
//! decisions and bytes; [`step`] drives it over an [`Uplink`] for simple main loops (the
//! emulated Cortex-M image, tests).
#![no_std]

#[cfg(any(feature = "std", test))]
extern crate std;

mod config;
mod crc32;
#[cfg(feature = "std")]
mod file_flash;
#[cfg(feature = "std")]
mod file_store;
pub mod journal;
mod logger;
mod memory_flash;
mod outbox;
pub mod sequence;
mod uplink;

#[cfg(test)]
mod tests;

pub use config::{ConfigError, DeviceConfig};
#[cfg(feature = "std")]
pub use file_flash::{FILE_FLASH_SECTOR_BYTES, FILE_FLASH_WRITE_BYTES, FileFlash, FileFlashError};
#[cfg(feature = "std")]
pub use file_store::FileSequenceStore;
pub use journal::{
    FlashJournal, GeometryError, JournalError, NoJournal, OutboxJournal, RecordRef, Restored,
};
pub use logger::{
    AckOutcome, AckRefused, BootError, Logger, OutboxEntry, RecordError, UPLINK_BUFFER_BYTES_MIN,
};
pub use memory_flash::{MemoryFlash, MemoryFlashError};
pub use outbox::DeliveryState;
pub use sequence::{MemorySequenceStore, ReserveError, SEQUENCE_RESERVE, SequenceStore};
pub use uplink::{
    ACKS_PER_STEP_MAX, MESSAGES_PER_STEP_MAX, SampleOutcome, StepReport, Uplink, step,
};

/// Re-exported so that users name the same types as this crate.
pub use protocol::{DeviceId, KeyEpoch, SequenceNumber, SigningKey};
