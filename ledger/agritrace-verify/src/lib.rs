//! The offline verifier as a library: the reading proof file format ([`reading_proof`]), the
//! verification steps ([`steps`]) that the `agritrace-verify` binary runs and prints, and
//! evidence bundles ([`evidence`]: format, verification, report).
//!
//! The node depends on this crate to write reading proofs with the same code that parses
//! them; the format lives here, not in `ledger`, because the log's core knows entries and
//! proofs but nothing about readings, and not in `protocol`, which is the device's wire
//! contract. Like the binary, it uses only the `no_std` core of `ledger` and `protocol` (no
//! storage, no network, no clock), and `gs1` for EPCIS events (a pure library), so a verifier
//! build never pulls the node's dependencies.

pub mod evidence;
mod lines;
pub mod reading_proof;
pub mod steps;

pub use reading_proof::{ReadingProof, ReadingProofError};
pub use steps::{
    DeviceKeyError, Failure, Outcome, ProvenEntry, ProvenReading, Step, Steps, check_log_proof,
    check_reading_proof, parse_device_key, parse_reading_proof,
};
