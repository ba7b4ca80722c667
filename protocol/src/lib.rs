//! The wire contract between agritrace devices and the backend.
//!
//! A device builds a [`Reading`], encodes it with postcard, signs
//! `SIGNING_DOMAIN || body` with its Ed25519 key and publishes the resulting
//! [`SignedReading`] (alone or in a backlog [`Uplink`]) on its readings topic. The backend
//! answers on the device's acks topic with an [`Ack`] naming which sequence numbers are done.
//!
//! Everything here is `no_std` and allocation-free, takes bytes in and gives typed values or
//! typed errors out: no I/O, no clock, no randomness. Verification always works on the exact
//! received bytes (postcard does not enforce canonical encodings on its own, so decoding
//! re-encodes and refuses anything that is not byte-identical). The one exception is the
//! backend-only [`batch`] module (feature `batch`, with `std`): batch verification of many
//! signatures that share keys.
#![no_std]

#[cfg(any(feature = "std", test))]
extern crate std;

#[cfg(feature = "credential")]
extern crate alloc;

mod ack;
#[cfg(feature = "batch")]
pub mod batch;
#[cfg(feature = "credential")]
pub mod credential;
mod device;
pub mod limits;
mod reading;
mod signed;
pub mod topic;
mod uplink;

pub use ack::{Ack, AckBuilder, AckError, SeqRange};
pub use device::{DeviceId, DeviceIdError};
pub use reading::{DoorState, GeoPosition, KeyEpoch, Reading, SequenceNumber};
pub use signed::{
    DecodeError, EncodeError, SIGNING_DOMAIN, SMALL_ORDER_ENCODINGS, SignedReading, VerifyError,
    WIRE_VERSION, encode_signed_reading, r_is_strict, verify_signed_reading,
};
pub use uplink::{Uplink, UplinkError, UplinkKind, UplinkReadings, UplinkWriter};

/// Re-exported so that users name the same key types as this crate.
pub use ed25519_dalek::{Signature, SigningKey, VerifyingKey};
