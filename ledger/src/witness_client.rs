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

/// Content type of a `409 Conflict` body (C2SP tlog-witness).
pub const SIZE_CONTENT_TYPE: &str = "text/x.tlog.size";
/// Attempts per witness per checkpoint (the first, plus retries after `409`).
pub const ATTEMPTS_PER_WITNESS: u32 = 3;
/// Largest response body read from a witness.
pub const RESPONSE_BYTES_MAX: usize = 16 * 1024;
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
/// or `None` if it cannot be produced.
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
        if self.witnesses.is_empty() {
            return Vec::new();
        }
        let text = Arc::new(checkpoint.to_text());
        let note = Arc::new(signed_note.to_owned());
        let mut tasks = JoinSet::new();
        for witness in self.witnesses.iter().cloned() {
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
                prove(TreeSize(old))?
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
            Ok(bytes) if bytes.len() <= RESPONSE_BYTES_MAX => bytes,
            Ok(_) => return Attempt::Failed("response too large".into()),
            Err(e) => return Attempt::Failed(format!("reading the response failed: {e}")),
        };
        let Ok(body) = std::str::from_utf8(&bytes) else {
            return Attempt::Failed("response is not UTF-8".into());
        };
        match status.as_u16() {
            200 => Attempt::Cosigned(body.lines().filter_map(NoteSignature::parse_line).collect()),
            409 if content_type.starts_with(SIZE_CONTENT_TYPE) => {
                match body.strip_suffix('\n').and_then(|s| s.parse::<u64>().ok()) {
                    Some(size) => Attempt::Conflict(size),
                    None => Attempt::Failed("409 with a malformed size".into()),
                }
            }
            code => Attempt::Failed(format!("status {code}: {}", body.trim_end())),
        }
    }
}

/// The `add-checkpoint` request body (C2SP tlog-witness): `old <size>`, the proof hashes in
/// base64 one per line, an empty line, then the signed checkpoint note.
#[must_use]
pub fn add_checkpoint_body(old: u64, proof: &[Hash], note: &str) -> String {
    let mut body = format!("old {old}\n");
    for hash in proof {
        body.push_str(&hash.to_base64());
        body.push('\n');
    }
    body.push('\n');
    body.push_str(note);
    body
}
