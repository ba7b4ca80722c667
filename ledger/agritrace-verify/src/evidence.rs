//! Evidence bundles: the file format ([`format`]), its verification ([`verify`]) and the
//! report a person reads, in English or Chinese, as text or as an HTML certificate
//! ([`report`]).

pub mod format;
pub mod report;
pub mod verify;

pub use format::{
    BundleBatch, BundleCheckpoint, BundleDocument, BundleEntry, BundleEvent, BundleLines,
    EVIDENCE_BUNDLE_BYTES_MAX, EVIDENCE_BUNDLE_HEADER, EVIDENCE_SEAL_HEADER, EvidenceBundle,
    EvidenceBundleError, Subject,
};
