//! The witness: an agency's service that holds a log to account (C2SP tlog-witness).
//!
//! For each log it witnesses (an origin and the log's Ed25519 verifier key) it remembers the
//! latest checkpoint it cosigned, in [`state`]. An `add-checkpoint` request is accepted only if
//! the checkpoint is signed by the log's key, the `old` size is the size the witness holds, and
//! the consistency proof from that checkpoint verifies; then the new checkpoint is stored
//! durably and only then is a `cosignature/v1` line returned. Check and store happen under one
//! lock, so two concurrent requests can never roll the stored size back (the race the spec
//! describes).
//!
//! Status codes, exactly as C2SP tlog-witness "add-checkpoint" says: 400 malformed body or
//! `old` above the checkpoint size; 404 unknown origin; 403 no valid signature by the log key;
//! 409 (`text/x.tlog.size`, body `<size>\n`) when `old` is not the stored size or the same size
//! comes with another root; 422 bad consistency proof; 200 with cosignature lines.

pub mod state;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::Request;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use tokio::sync::Semaphore;

use crate::checkpoint::Checkpoint;
use crate::cosignature::cosign;
use crate::merkle::{Hash, TreeSize, empty_root};
use crate::note::{KeyType, Note, NoteError, NoteSigner, NoteVerifier};
use crate::proof::ConsistencyProof;
use state::{CosignedState, StateError, WitnessState};

pub use crate::tlog_witness::{
    AddCheckpointRequest, PROOF_LINES_MAX, REQUEST_BYTES_MAX, SIZE_CONTENT_TYPE,
};

/// A log the witness holds to account.
#[derive(Debug, Clone)]
pub struct WitnessedLog {
    /// Checkpoint origin line.
    pub origin: String,
    /// The log's Ed25519 note verifier key.
    pub key: NoteVerifier,
}

/// Why a checkpoint was not cosigned; each maps to the status code the spec requires.
#[derive(Debug, thiserror::Error)]
pub enum AddCheckpointError {
    /// The body is not `old` line, proof lines, empty line, signed checkpoint.
    #[error("malformed request: {0}")]
    Malformed(String),
    /// `old` is larger than the checkpoint size.
    #[error("old size {old} is larger than the checkpoint size {size}")]
    OldAboveCheckpoint {
        /// Old size.
        old: u64,
        /// Checkpoint size.
        size: u64,
    },
    /// The origin is not a witnessed log.
    #[error("unknown log origin")]
    UnknownLog,
    /// No signature by the log's key verifies.
    #[error("checkpoint is not signed by the log key")]
    NotSigned,
    /// `old` is not the size of the latest cosigned checkpoint.
    #[error("old size does not match; the witness holds size {held}")]
    OldSizeMismatch {
        /// Size the witness holds.
        held: u64,
    },
    /// Same size as the held checkpoint, different root.
    #[error("checkpoint of size {held} has a different root than the one cosigned")]
    RootMismatch {
        /// Size the witness holds.
        held: u64,
    },
    /// The consistency proof does not verify (or a size-0 checkpoint has a root other than
    /// the empty tree's).
    #[error("consistency proof does not verify")]
    BadProof,
    /// The state could not be stored; nothing was cosigned.
    #[error("storing the witness state failed")]
    Storage(#[from] StateError),
    /// Cosigning failed (a bug: the checkpoint was parsed and the key checked at start).
    #[error("cosigning failed: {0}")]
    Cosign(String),
}

impl AddCheckpointError {
    /// The HTTP status code for this refusal (C2SP tlog-witness).
    #[must_use]
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Malformed(_) | Self::OldAboveCheckpoint { .. } => StatusCode::BAD_REQUEST,
            Self::UnknownLog => StatusCode::NOT_FOUND,
            Self::NotSigned => StatusCode::FORBIDDEN,
            Self::OldSizeMismatch { .. } | Self::RootMismatch { .. } => StatusCode::CONFLICT,
            Self::BadProof => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Storage(_) | Self::Cosign(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// Parses `old <size>\n`, up to 63 base64 hash lines, `\n`, then the signed note (see
/// [`crate::tlog_witness::parse_request`]).
///
/// # Errors
/// [`AddCheckpointError::Malformed`] saying what is wrong.
pub fn parse_request(body: &[u8]) -> Result<AddCheckpointRequest, AddCheckpointError> {
    crate::tlog_witness::parse_request(body)
        .map_err(|e| AddCheckpointError::Malformed(e.to_string()))
}

/// The witness: its cosigner key, the logs it witnesses and its durable state.
pub struct Witness {
    signer: NoteSigner,
    logs: HashMap<String, NoteVerifier>,
    state: Mutex<WitnessState>,
    clock: Box<dyn Fn() -> u64 + Send + Sync>,
}

impl std::fmt::Debug for Witness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Witness")
            .field("signer", &self.signer)
            .field("logs", &self.logs.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// Why the witness could not start.
#[derive(Debug, thiserror::Error)]
pub enum WitnessStartError {
    /// The witness key is not a `cosignature/v1` key.
    #[error("the witness key must be a cosignature/v1 (type 0x04) key")]
    SignerType,
    /// A log key is not an Ed25519 note key.
    #[error("log key for {0} must be an Ed25519 (type 0x01) note key")]
    LogKeyType(String),
    /// Two logs share an origin.
    #[error("origin {0} is configured twice")]
    DuplicateOrigin(String),
    /// The state directory could not be opened.
    #[error(transparent)]
    State(#[from] StateError),
}

/// POSIX seconds from the system clock (the cosignature timestamp).
#[must_use]
pub fn system_clock_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Witness {
    /// A witness signing with `signer`, witnessing `logs`, keeping its state in `state_dir`,
    /// timestamping cosignatures with `clock` (POSIX seconds).
    ///
    /// # Errors
    /// [`WitnessStartError`] for a wrong key type, a duplicate origin, or an unreadable state.
    pub fn open(
        signer: NoteSigner,
        logs: Vec<WitnessedLog>,
        state_dir: &Path,
        clock: Box<dyn Fn() -> u64 + Send + Sync>,
    ) -> Result<Self, WitnessStartError> {
        if signer.key_type() != KeyType::CosignatureV1 {
            return Err(WitnessStartError::SignerType);
        }
        let mut by_origin = HashMap::new();
        for log in logs {
            if log.key.key_type() != KeyType::Ed25519 {
                return Err(WitnessStartError::LogKeyType(log.origin));
            }
            if by_origin.insert(log.origin.clone(), log.key).is_some() {
                return Err(WitnessStartError::DuplicateOrigin(log.origin));
            }
        }
        Ok(Self {
            signer,
            logs: by_origin,
            state: Mutex::new(WitnessState::open(state_dir)?),
            clock,
        })
    }

    /// The witness's verifier key (what logs and verifiers configure).
    #[must_use]
    pub fn verifier(&self) -> NoteVerifier {
        self.signer.verifier()
    }

    /// The latest cosigned size and root for `origin`.
    #[must_use]
    pub fn cosigned(&self, origin: &str) -> Option<(TreeSize, Hash)> {
        self.lock_state().get(origin).map(|s| (s.size, s.root))
    }

    fn lock_state(&self) -> std::sync::MutexGuard<'_, WitnessState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Handles one `add-checkpoint` body: checks it, stores the new checkpoint durably, and
    /// returns the cosignature line(s) (each ending in a newline). Blocks on fsync.
    ///
    /// # Errors
    /// [`AddCheckpointError`], whose [`status`](AddCheckpointError::status) is the response
    /// code.
    pub fn add_checkpoint(&self, body: &[u8]) -> Result<String, AddCheckpointError> {
        let request = parse_request(body)?;
        let note = Note::parse(&request.note)
            .map_err(|e| AddCheckpointError::Malformed(format!("checkpoint note: {e}")))?;
        let checkpoint = Checkpoint::parse(&note.text)
            .map_err(|e| AddCheckpointError::Malformed(format!("checkpoint: {e}")))?;
        let key = self
            .logs
            .get(&checkpoint.origin)
            .ok_or(AddCheckpointError::UnknownLog)?;
        match note.open(std::slice::from_ref(key)) {
            Ok(_) => {}
            Err(NoteError::NoKnownSignature | NoteError::BadSignature { .. }) => {
                return Err(AddCheckpointError::NotSigned);
            }
            Err(e) => {
                return Err(AddCheckpointError::Malformed(format!(
                    "checkpoint note: {e}"
                )));
            }
        }
        let size = checkpoint.size.0;
        if request.old > size {
            return Err(AddCheckpointError::OldAboveCheckpoint {
                old: request.old,
                size,
            });
        }

        // Check and record under one lock (C2SP tlog-witness: atomically).
        let mut state = self.lock_state();
        let held = state.get(&checkpoint.origin).cloned();
        let held_size = held.as_ref().map_or(0, |h| h.size.0);
        if request.old != held_size {
            return Err(AddCheckpointError::OldSizeMismatch { held: held_size });
        }
        let unchanged = match &held {
            Some(h) if h.size.0 == size => {
                if h.root != checkpoint.root {
                    return Err(AddCheckpointError::RootMismatch { held: held_size });
                }
                if !request.proof.is_empty() {
                    return Err(AddCheckpointError::BadProof);
                }
                true
            }
            Some(h) => {
                let proof = ConsistencyProof {
                    old_size: h.size,
                    new_size: checkpoint.size,
                    path: request.proof.clone(),
                };
                proof
                    .verify(&h.root, &checkpoint.root)
                    .map_err(|_| AddCheckpointError::BadProof)?;
                false
            }
            None => {
                // Old size 0: nothing to be consistent with; the proof must be empty. The tree
                // of size 0 has exactly one root, SHA-256("") (RFC 9162 §2.1.1): a size-0
                // checkpoint with any other root cannot be the log's and is not cosigned.
                if !request.proof.is_empty() || (size == 0 && checkpoint.root != empty_root()) {
                    return Err(AddCheckpointError::BadProof);
                }
                false
            }
        };
        if !unchanged {
            state.record(
                &checkpoint.origin,
                CosignedState {
                    size: checkpoint.size,
                    root: checkpoint.root,
                    note: request.note.clone(),
                },
            )?;
        }
        drop(state);
        // The new state is durable: only now may a cosignature leave the witness.
        let line = cosign(&note.text, &self.signer, (self.clock)())
            .map_err(|e| AddCheckpointError::Cosign(e.to_string()))?;
        tracing::info!(origin = %checkpoint.origin, size, "checkpoint cosigned");
        Ok(line.to_line())
    }
}

/// Limits of the witness HTTP service (each from outside: configured, with a hard ceiling).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceLimits {
    /// Requests handled at once; more are answered `503` at once. 1..=4,096. Default 64.
    pub requests_in_flight_max: usize,
    /// Time for one request, body read included; slower ones are answered `408`.
    /// 100..=120,000 ms. Default 10,000.
    pub request_timeout_ms: u64,
    /// Largest request body, in bytes. 1..=[`REQUEST_BYTES_MAX`] (the largest valid request).
    /// Default [`REQUEST_BYTES_MAX`].
    pub body_bytes_max: usize,
}

impl Default for ServiceLimits {
    fn default() -> Self {
        Self {
            requests_in_flight_max: 64,
            request_timeout_ms: 10_000,
            body_bytes_max: REQUEST_BYTES_MAX,
        }
    }
}

impl ServiceLimits {
    /// Checks every field against its range.
    ///
    /// # Errors
    /// A sentence naming the first bad field.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=4_096).contains(&self.requests_in_flight_max) {
            return Err("requests_in_flight_max must be 1..=4096".into());
        }
        if !(100..=120_000).contains(&self.request_timeout_ms) {
            return Err("request_timeout_ms must be 100..=120000".into());
        }
        if !(1..=REQUEST_BYTES_MAX).contains(&self.body_bytes_max) {
            return Err(format!("body_bytes_max must be 1..={REQUEST_BYTES_MAX}"));
        }
        Ok(())
    }
}

/// The witness HTTP service with the default [`ServiceLimits`]: `POST /add-checkpoint` (mount
/// it under the submission prefix).
pub fn router(witness: Arc<Witness>) -> Router {
    router_with_limits(witness, ServiceLimits::default())
}

/// The witness HTTP service: `POST /add-checkpoint`, with at most `requests_in_flight_max`
/// requests at once (more get `503`, so a flood costs no memory), each given at most
/// `request_timeout_ms` including reading its body (a slow client gets `408`), and bodies
/// above `body_bytes_max` refused with `413`. Out-of-range limits are clamped into range.
pub fn router_with_limits(witness: Arc<Witness>, limits: ServiceLimits) -> Router {
    let permits = Arc::new(Semaphore::new(
        limits.requests_in_flight_max.clamp(1, 4_096),
    ));
    let timeout = Duration::from_millis(limits.request_timeout_ms.clamp(100, 120_000));
    let body_bytes_max = limits.body_bytes_max.clamp(1, REQUEST_BYTES_MAX);
    Router::new()
        .route("/add-checkpoint", post(add_checkpoint))
        .layer(DefaultBodyLimit::max(body_bytes_max))
        .layer(middleware::from_fn(move |request: Request, next: Next| {
            let permits = permits.clone();
            async move {
                let Ok(_permit) = permits.try_acquire_owned() else {
                    return (
                        StatusCode::SERVICE_UNAVAILABLE,
                        "witness busy; retry later\n",
                    )
                        .into_response();
                };
                match tokio::time::timeout(timeout, next.run(request)).await {
                    Ok(response) => response,
                    Err(_) => {
                        (StatusCode::REQUEST_TIMEOUT, "request took too long\n").into_response()
                    }
                }
            }
        }))
        .with_state(witness)
}

async fn add_checkpoint(State(witness): State<Arc<Witness>>, body: Bytes) -> Response {
    let answer = tokio::task::spawn_blocking(move || witness.add_checkpoint(&body)).await;
    let result = match answer {
        Ok(result) => result,
        Err(e) => {
            tracing::error!(error = %e, "add-checkpoint task failed");
            return (StatusCode::INTERNAL_SERVER_ERROR, "internal error\n").into_response();
        }
    };
    match result {
        Ok(lines) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            lines,
        )
            .into_response(),
        Err(
            AddCheckpointError::OldSizeMismatch { held }
            | AddCheckpointError::RootMismatch { held },
        ) => (
            StatusCode::CONFLICT,
            [(header::CONTENT_TYPE, SIZE_CONTENT_TYPE)],
            format!("{held}\n"),
        )
            .into_response(),
        Err(e) => {
            let status = e.status();
            if status == StatusCode::INTERNAL_SERVER_ERROR {
                tracing::error!(error = %e, "add-checkpoint failed");
                return (status, "internal error\n").into_response();
            }
            tracing::info!(error = %e, status = status.as_u16(), "add-checkpoint refused");
            (
                status,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                format!("{e}\n"),
            )
                .into_response()
        }
    }
}
