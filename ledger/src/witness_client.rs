//! The sequencer's side of C2SP tlog-witness: posts a new checkpoint to every configured witness
//! in parallel (`POST <prefix>/add-checkpoint`), answers `409 Conflict` by retrying from the
//! size the witness reports, verifies the returned cosignature lines, and gives up on a witness
//! at the deadline. A witness that is slow, down or misbehaving costs at most the timeout and is
//! never on the append path.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinSet;

use crate::checkpoint::Checkpoint;
use crate::cosignature::verify_cosignature;
use crate::merkle::{Hash, TreeSize};
use crate::note::{KeyType, NoteSignature, NoteVerifier};

pub use crate::tlog_witness::{RESPONSE_BYTES_MAX, SIZE_CONTENT_TYPE, add_checkpoint_body};
use crate::tlog_witness::{parse_cosignature_response, parse_size_response};

/// Attempts per witness per checkpoint (the first, plus retries after `409`).
pub const ATTEMPTS_PER_WITNESS: u32 = 3;
/// Most witnesses one log may be configured with.
pub const WITNESSES_MAX: usize = 64;

/// One witness: where to reach it and the cosignature key it signs with.
#[derive(Debug, Clone)]
pub struct WitnessEndpoint {
    /// Submission prefix, e.g. `http://127.0.0.1:7380` (`/add-checkpoint` is appended).
    pub url: String,
    /// The witness's `cosignature/v1` verifier key; its name names the witness.
    pub verifier: NoteVerifier,
}

/// A consistency proof source: the proof hashes from `old` to the checkpoint being witnessed,
/// or `None` if it cannot be produced. It may block on storage reads: the client calls it on
/// the blocking thread pool (`spawn_blocking`), never on an async worker.
pub type ProofSource = Arc<dyn Fn(TreeSize) -> Option<Vec<Hash>> + Send + Sync>;

/// Why the client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum WitnessClientError {
    /// A key is not a `cosignature/v1` key.
    #[error("witness key {0} is not a cosignature/v1 key")]
    KeyType(String),
    /// Too many witnesses.
    #[error("at most {WITNESSES_MAX} witnesses")]
    TooMany,
    /// The HTTP client could not be built.
    #[error("building the HTTP client failed")]
    Http(#[source] reqwest::Error),
}

/// Posts checkpoints to witnesses. Cloning shares the connection pool and the sizes learned.
#[derive(Debug, Clone)]
pub struct WitnessClient {
    http: reqwest::Client,
    witnesses: Arc<Vec<WitnessEndpoint>>,
    /// Latest size each witness is known to have cosigned (learned from 200 and 409).
    known_sizes: Arc<Mutex<HashMap<String, u64>>>,
    timeout: Duration,
}

/// What one attempt at one witness came to.
enum Attempt {
    Cosigned(Vec<NoteSignature>),
    Conflict(u64),
    Failed(String),
}

impl WitnessClient {
    /// A client for `witnesses`, waiting at most `timeout` per checkpoint.
    ///
    /// # Errors
    /// [`WitnessClientError`] if a key is not a cosigner key or there are too many witnesses.
    pub fn new(
        witnesses: Vec<WitnessEndpoint>,
        timeout: Duration,
    ) -> Result<Self, WitnessClientError> {
        if witnesses.len() > WITNESSES_MAX {
            return Err(WitnessClientError::TooMany);
        }
        for witness in &witnesses {
            if witness.verifier.key_type() != KeyType::CosignatureV1 {
                return Err(WitnessClientError::KeyType(
                    witness.verifier.name().to_owned(),
                ));
            }
        }
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .pool_max_idle_per_host(2)
            .build()
            .map_err(WitnessClientError::Http)?;
        Ok(Self {
            http,
            witnesses: Arc::new(witnesses),
            known_sizes: Arc::new(Mutex::new(HashMap::new())),
            timeout,
        })
    }

    /// A client with no witness: checkpoints are published with the log signature only.
    ///
    /// # Errors
    /// [`WitnessClientError::Http`] if the HTTP client cannot be built.
    pub fn none() -> Result<Self, WitnessClientError> {
        Self::new(Vec::new(), Duration::from_secs(1))
    }

    /// Tells the client the size a witness last cosigned (e.g. from the stored checkpoint), to
    /// save a `409` round trip.
    pub fn assume_size(&self, witness: &str, size: u64) {
        self.lock_sizes().insert(witness.to_owned(), size);
    }

    /// The cosignature keys of the configured witnesses (their names name the witnesses).
    #[must_use]
    pub fn verifiers(&self) -> Vec<NoteVerifier> {
        self.witnesses.iter().map(|w| w.verifier.clone()).collect()
    }

    /// How many witnesses are configured.
    #[must_use]
    pub fn len(&self) -> usize {
        self.witnesses.len()
    }

    /// Whether no witness is configured.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.witnesses.is_empty()
    }

    fn lock_sizes(&self) -> std::sync::MutexGuard<'_, HashMap<String, u64>> {
        self.known_sizes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Asks every witness to cosign `signed_note` (the log-signed `checkpoint`), in parallel,
    /// and returns the verified cosignature lines gathered before the timeout, with the name of
    /// the witness of each.
    pub async fn gather(
        &self,
        checkpoint: &Checkpoint,
        signed_note: &str,
        prove: ProofSource,
    ) -> Vec<(String, NoteSignature)> {
        self.gather_missing(checkpoint, signed_note, prove, &[])
            .await
    }

    /// As [`gather`](Self::gather), but skips the witnesses named in `already` (those that have
    /// cosigned this checkpoint before): used to re-ask only the missing ones. A witness that
    /// already holds this checkpoint accepts it again (`old` equal to the size, empty proof).
    pub async fn gather_missing(
        &self,
        checkpoint: &Checkpoint,
        signed_note: &str,
        prove: ProofSource,
        already: &[String],
    ) -> Vec<(String, NoteSignature)> {
        if self.witnesses.is_empty() {
            return Vec::new();
        }
        let text = Arc::new(checkpoint.to_text());
        let note = Arc::new(signed_note.to_owned());
        let mut tasks = JoinSet::new();
        for witness in self.witnesses.iter().cloned() {
            if already.iter().any(|name| name == witness.verifier.name()) {
                continue;
            }
            let client = self.clone();
            let text = text.clone();
            let note = note.clone();
            let prove = prove.clone();
            let size = checkpoint.size;
            tasks.spawn(async move {
                let lines = client
                    .witness_one(&witness, size, &text, &note, &prove)
                    .await;
                (witness.verifier.name().to_owned(), lines)
            });
        }
        let deadline = tokio::time::Instant::now() + self.timeout;
        let mut gathered = Vec::new();
        loop {
            match tokio::time::timeout_at(deadline, tasks.join_next()).await {
                Ok(Some(Ok((name, Some(line))))) => gathered.push((name, line)),
                Ok(Some(Ok((_, None)) | Err(_))) => {}
                Ok(None) => break,
                Err(_) => {
                    tracing::warn!(
                        pending = tasks.len(),
                        "witness deadline passed; publishing without the rest"
                    );
                    tasks.abort_all();
                    break;
                }
            }
        }
        gathered
    }

    async fn witness_one(
        &self,
        witness: &WitnessEndpoint,
        size: TreeSize,
        text: &str,
        note: &str,
        prove: &ProofSource,
    ) -> Option<NoteSignature> {
        let name = witness.verifier.name().to_owned();
        let mut old = self
            .lock_sizes()
            .get(&name)
            .copied()
            .unwrap_or(0)
            .min(size.0);
        for _ in 0..ATTEMPTS_PER_WITNESS {
            let proof = if old == 0 || old == size.0 {
                Vec::new()
            } else {
                let prove = prove.clone();
                // Proof generation reads tiles synchronously (a file-backed backend blocks).
                tokio::task::spawn_blocking(move || prove(TreeSize(old)))
                    .await
                    .ok()
                    .flatten()?
            };
            match self.post(witness, old, &proof, note).await {
                Attempt::Cosigned(lines) => {
                    let line = lines.into_iter().find(|line| {
                        witness.verifier.matches(line)
                            && verify_cosignature(text, line, &witness.verifier).is_ok()
                    });
                    if line.is_some() {
                        self.lock_sizes().insert(name.clone(), size.0);
                    } else {
                        tracing::warn!(witness = %name, "witness answered without a valid cosignature");
                    }
                    return line;
                }
                Attempt::Conflict(witness_size) => {
                    self.lock_sizes().insert(name.clone(), witness_size);
                    if witness_size > size.0 {
                        tracing::error!(
                            witness = %name,
                            witness_size,
                            size = size.0,
                            "witness has cosigned a larger tree than this log has signed"
                        );
                        return None;
                    }
                    if witness_size == old {
                        // Same size, different root at the witness: never retry into a fork.
                        tracing::error!(witness = %name, size = old, "witness holds another root");
                        return None;
                    }
                    old = witness_size;
                }
                Attempt::Failed(reason) => {
                    tracing::warn!(witness = %name, reason = %reason, "witness did not cosign");
                    return None;
                }
            }
        }
        None
    }

    async fn post(
        &self,
        witness: &WitnessEndpoint,
        old: u64,
        proof: &[Hash],
        note: &str,
    ) -> Attempt {
        let body = add_checkpoint_body(old, proof, note);
        let url = format!("{}/add-checkpoint", witness.url.trim_end_matches('/'));
        let response = match self.http.post(&url).body(body).send().await {
            Ok(response) => response,
            Err(e) => return Attempt::Failed(format!("request failed: {e}")),
        };
        let status = response.status();
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let bytes = match response.bytes().await {
            Ok(bytes) => bytes,
            Err(e) => return Attempt::Failed(format!("reading the response failed: {e}")),
        };
        match status.as_u16() {
            200 => match parse_cosignature_response(&bytes) {
                Ok(lines) => Attempt::Cosigned(lines),
                Err(e) => Attempt::Failed(e.to_string()),
            },
            409 if content_type.starts_with(SIZE_CONTENT_TYPE) => {
                match parse_size_response(&bytes) {
                    Ok(size) => Attempt::Conflict(size),
                    Err(e) => Attempt::Failed(format!("409 with a malformed size: {e}")),
                }
            }
            code => {
                let shown = bytes.get(..bytes.len().min(512)).unwrap_or_default();
                Attempt::Failed(format!(
                    "status {code}: {}",
                    String::from_utf8_lossy(shown).trim_end()
                ))
            }
        }
    }
}
