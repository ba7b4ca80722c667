//! Evidence bundles: the file format ([`format`]).

pub mod format;

pub use format::{
    BundleBatch, BundleCheckpoint, BundleDocument, BundleEntry, BundleEvent,
    EVIDENCE_BUNDLE_BYTES_MAX, EVIDENCE_BUNDLE_HEADER, EVIDENCE_SEAL_HEADER, EvidenceBundle,
    Subject,
};
