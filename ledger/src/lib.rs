//! The system of record: a verifiable append-only log (RFC 9162 Merkle tree laid out as C2SP
//! tlog-tiles, signed checkpoints, witness cosignatures, proofs) and its storage.
//!
//! The hashing, proof and note code is `no_std` + `alloc` so that the offline verifier and
//! devices can use it; storage, the sequencer, the witness and the HTTP read side need `std`.
#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

// --- core (no_std + alloc) modules: owned by the core work ---
//
// `Hash` is a newtype `Hash(pub [u8; 32])` (not a type alias): see `merkle`.
pub mod checkpoint;
pub mod cosignature;
pub mod entry;
pub mod merkle;
pub mod note;
pub mod policy;
pub mod proof;
pub mod subset_proof;
pub mod tile;
pub mod tlog_proof;
pub mod tlog_witness;

pub use merkle::{Hash, LeafIndex, TreeSize, empty_root, leaf_hash, node_hash};
pub use proof::{ConsistencyProof, InclusionProof, consistency_proof, inclusion_proof, tree_root};
pub use tile::{AppendOutcome, BundleId, TileAppender, TileId, TileReader};

// --- std modules (storage, sequencer, witness, http): owned by the node work ---
#[cfg(feature = "std")]
pub mod http;
#[cfg(feature = "std")]
pub mod sequencer;
#[cfg(feature = "std")]
pub mod storage;
#[cfg(feature = "std")]
pub mod witness;
#[cfg(feature = "std")]
pub mod witness_client;
