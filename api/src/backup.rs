//! Online backup and verified restore of the embedded store (`agritrace backup`,
//! `agritrace restore`), and the admin route a running node serves them through.
//!
//! redb lets one process open a database file, so a backup of a running node cannot open the
//! data directory: the CLI asks the node (`POST /v1/admin/backup`, the node's own host only,
//! like the bootstrap routes). The node copies the whole store as one redb read transaction
//! sees it ([`RedbStorage::snapshot_into`]) into a file of its data directory while ingest
//! and the sequencer go on committing, hashes it, unlinks it and streams it. Without a node on
//! the data directory, the CLI makes the same snapshot itself.
//!
//! A backup is one file:
//!
//! ```text
//! agritrace-backup/v1\n
//! {manifest JSON on one line}\n
//! the redb image (image_bytes bytes, SHA-256 image_sha256)
//! ```
//!
//! The manifest says what the image holds: origin and verifier key of the log, its size and
//! root, the published checkpoint (signed note), the rows of every table, and the image's
//! length and SHA-256. The log's private key is never in a backup (key custody keeps it):
//! `restore --log-key FILE` puts it back and checks it is the manifest's key.
//!
//! Restore proves the restored store is the backed-up log before it says so: the image hash
//! and length, the row counts of every table, the log state, the root recomputed from the
//! tiles, and the checkpoint's log signature and root. `restore --check --against URL` then
//! proves it is the same log as a live node's: the live checkpoint verifies under the same
//! key, and an RFC 9162 §2.1.4 consistency proof from the restored checkpoint to the live one,
//! built from the live node's tiles (C2SP tlog-tiles), verifies.

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::post;
use base64::Engine as _;
use hyper::body::Frame;
use ledger::checkpoint::open_checkpoint;
use ledger::merkle::TreeSize;
use ledger::note::{NoteSigner, NoteVerifier};
use ledger::proof::{ConsistencyProof, ProofError, consistency_proof, tree_root};
use ledger::storage::redb::{RedbStorage, StoreSummary};
use ledger::storage::{LogStorage as _, ReadError};
use ledger::tile::{InMemoryTiles, TileId};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use tokio::sync::{Semaphore, mpsc};

use crate::config::{LOG_KEY_FILE, STORE_FILE};
use crate::http::{ApiError, AppState};
use crate::node::Storage;

/// First line of every backup file.
pub const BACKUP_FORMAT: &str = "agritrace-backup/v1";
/// Largest manifest line read from a backup file, in bytes.
pub const MANIFEST_BYTES_MAX: usize = 1024 * 1024;
/// How long a backup request waits for the one being taken before it is refused.
const BACKUP_WAIT: std::time::Duration = std::time::Duration::from_secs(10);
/// Chunk of the image streamed or copied at a time.
const CHUNK_BYTES: usize = 256 * 1024;
/// Largest checkpoint or tile answer read from a live node.
const LIVE_ANSWER_BYTES_MAX: usize = 64 * 1024;
/// Most tiles fetched for one consistency proof (two per level of a 64-level tree suffice).
const PROOF_TILES_MAX: usize = 256;

/// What a backup holds (the second line of the file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Manifest {
    /// [`BACKUP_FORMAT`].
    pub format: String,
    /// The log's origin.
    pub origin: String,
    /// The log's verifier key (`name+hash+base64`).
    pub log_key: String,
    /// When the snapshot was taken (ms since the Unix epoch).
    pub created_ms: u64,
    /// Entries in the log at the snapshot.
    pub log_size: u64,
    /// The log's root at that size (base64, as in a checkpoint).
    pub log_root: String,
    /// Size of the published checkpoint in the snapshot (at most `log_size`).
    pub checkpoint_size: Option<u64>,
    /// The published checkpoint (C2SP signed note, with its cosignatures).
    pub checkpoint: Option<String>,
    /// Rows of every table of the store, by name.
    pub tables: BTreeMap<String, u64>,
    /// Length of the redb image that follows the manifest.
    pub image_bytes: u64,
    /// SHA-256 of that image (lower-case hex).
    pub image_sha256: String,
}

impl Manifest {
    /// The two header lines of the backup file.
    #[must_use]
    pub fn header(&self) -> Vec<u8> {
        let mut out = format!("{BACKUP_FORMAT}\n").into_bytes();
        // Serialising a struct of strings and integers cannot fail.
        out.extend_from_slice(serde_json::to_string(self).unwrap_or_default().as_bytes());
        out.push(b'\n');
        out
    }
}

/// Why a backup, a restore or a restore check failed.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// A file operation failed.
    #[error("{what}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The store could not be read or copied.
    #[error("{what}")]
    Store {
        /// What was being done.
        what: String,
        /// The cause.
        #[source]
        source: ReadError,
    },
    /// The file is not an agritrace backup (bad first line or manifest).
    #[error("not an agritrace backup: {0}")]
    NotABackup(String),
    /// The image is shorter than the manifest says.
    #[error("the backup is truncated: the image has {found} of {expected} bytes")]
    Truncated {
        /// Bytes the manifest announces.
        expected: u64,
        /// Bytes present.
        found: u64,
    },
    /// The image is corrupt.
    #[error("the backup is corrupt: {0}")]
    Corrupt(String),
    /// Restoring into a directory that already holds a store.
    #[error(
        "{0} is not empty: restore only into an empty data directory (or pass --force to replace its store)"
    )]
    NotEmpty(PathBuf),
    /// The restored store is not what the manifest describes.
    #[error("the restored store does not match the backup: {0}")]
    Mismatch(String),
    /// A checkpoint does not verify, or the logs are not consistent.
    #[error("{0}")]
    NotTheSameLog(String),
    /// The log key given is not the backed-up log's.
    #[error("the log key: {0}")]
    LogKey(String),
    /// No node answers at the URL.
    #[error("no node answers at {0}")]
    Unreachable(String),
    /// The live node could not be asked, or refused.
    #[error("{0}")]
    Http(String),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> BackupError {
    let what = what.into();
    move |source| BackupError::Io { what, source }
}

fn store(what: impl Into<String>) -> impl FnOnce(ReadError) -> BackupError {
    let what = what.into();
    move |source| BackupError::Store { what, source }
}

fn root_text(root: &[u8; 32]) -> String {
    base64::engine::general_purpose::STANDARD.encode(root)
}

/// Lower-case hex of `bytes`.
fn hex(bytes: &[u8]) -> String {
    crate::http::hex(bytes)
}

/// A snapshot of the store in a file, with its manifest. The file is removed when this is
/// dropped.
#[derive(Debug)]
pub struct Snapshot {
    path: PathBuf,
    /// What it holds.
    pub manifest: Manifest,
}

impl Snapshot {
    /// The redb image.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Snapshot {
    fn drop(&mut self) {
        // Unlinked already when streamed; otherwise a leftover in the data directory.
        let _ = std::fs::remove_file(&self.path);
    }
}

fn unique_suffix() -> String {
    let mut random = [0u8; 8];
    if getrandom::fill(&mut random).is_err() {
        // Only uniqueness matters here; the process id and the time are enough then.
        random = u64::from(std::process::id())
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .wrapping_add(now_ms())
            .to_be_bytes();
    }
    hex(&random)
}

/// Milliseconds since the Unix epoch (for the manifest's `createdMs`).
#[must_use]
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// SHA-256 and length of `reader`'s remaining bytes.
fn hash_reader(reader: &mut impl std::io::Read, what: &str) -> Result<(String, u64), BackupError> {
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; CHUNK_BYTES];
    let mut total = 0u64;
    loop {
        let read = reader.read(&mut buffer).map_err(io(what.to_owned()))?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
        total += u64::try_from(read).unwrap_or(u64::MAX);
    }
    Ok((hex(&hasher.finalize()), total))
}

/// Takes a snapshot of `storage` into a new file of `work_dir` (same file system as the store:
/// the data directory) and describes it. Blocking; rounds keep committing meanwhile.
///
/// # Errors
/// [`BackupError`] if the store cannot be copied or the file cannot be written.
pub fn snapshot(
    storage: &RedbStorage,
    log_key: &str,
    work_dir: &Path,
) -> Result<Snapshot, BackupError> {
    let verifier = NoteVerifier::parse(log_key).map_err(|e| BackupError::LogKey(e.to_string()))?;
    let path = work_dir.join(format!(".backup-{}.redb", unique_suffix()));
    // Owns the file from here on, so an error below removes it.
    let mut snapshot = Snapshot {
        path,
        manifest: Manifest {
            format: BACKUP_FORMAT.to_owned(),
            origin: verifier.name().to_owned(),
            log_key: log_key.to_owned(),
            created_ms: now_ms(),
            log_size: 0,
            log_root: String::new(),
            checkpoint_size: None,
            checkpoint: None,
            tables: BTreeMap::new(),
            image_bytes: 0,
            image_sha256: String::new(),
        },
    };
    let summary = storage
        .snapshot_into(&snapshot.path)
        .map_err(store("copying the store into a snapshot"))?;
    let mut file = std::fs::File::open(&snapshot.path).map_err(io("opening the snapshot"))?;
    let (sha256, bytes) = hash_reader(&mut file, "reading the snapshot")?;
    let manifest = &mut snapshot.manifest;
    manifest.log_size = summary.state.size;
    manifest.log_root = root_text(&summary.state.root);
    if let Some(checkpoint) = summary.checkpoint {
        manifest.checkpoint_size = Some(checkpoint.size);
        manifest.checkpoint =
            Some(String::from_utf8(checkpoint.note).map_err(|_| {
                BackupError::Corrupt("the stored checkpoint is not UTF-8".to_owned())
            })?);
    }
    manifest.tables = summary.tables;
    manifest.image_bytes = bytes;
    manifest.image_sha256 = sha256;
    tracing::info!(
        log_size = manifest.log_size,
        image_bytes = bytes,
        tables = manifest.tables.len(),
        "snapshot of the store taken"
    );
    Ok(snapshot)
}

/// fsync of the directory holding `path` (so a rename or a new file survives a crash).
fn sync_parent(path: &Path) -> Result<(), BackupError> {
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    std::fs::File::open(parent)
        .and_then(|d| d.sync_all())
        .map_err(io(format!("syncing {}", parent.display())))
}

/// The temporary name `path` is written under before the rename.
fn temporary_for(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp-{}", unique_suffix()));
    path.with_file_name(name)
}

/// Writes `snapshot` as a backup file at `out` atomically (temporary file, fsync, rename,
/// fsync of the directory): a crash leaves either no file at `out` or the whole backup.
///
/// # Errors
/// [`BackupError::Io`] if a write fails.
pub fn write_backup(snapshot: &Snapshot, out: &Path) -> Result<(), BackupError> {
    let temporary = temporary_for(out);
    let written = (|| {
        let mut file = std::fs::File::create(&temporary)
            .map_err(io(format!("creating {}", temporary.display())))?;
        file.write_all(&snapshot.manifest.header())
            .map_err(io("writing the backup"))?;
        let mut image = std::fs::File::open(&snapshot.path).map_err(io("opening the snapshot"))?;
        std::io::copy(&mut image, &mut file).map_err(io("writing the backup"))?;
        file.sync_all().map_err(io("syncing the backup"))?;
        Ok(())
    })();
    if let Err(error) = written {
        let _ = std::fs::remove_file(&temporary);
        return Err(error);
    }
    finish_file(&temporary, out)
}

/// Checks the backup at `temporary` and renames it to `out` (then fsyncs the directory); the
/// temporary file is removed if it is not a whole backup.
fn finish_file(temporary: &Path, out: &Path) -> Result<(), BackupError> {
    if let Err(error) = read_backup(temporary) {
        let _ = std::fs::remove_file(temporary);
        return Err(error);
    }
    std::fs::rename(temporary, out)
        .map_err(io(format!("renaming the backup to {}", out.display())))?;
    // A crash before this line may lose the rename, never leave a partial file at `out`.
    sync_parent(out)
}

/// Reads and checks a backup file: the first line, the manifest, the image's length and
/// SHA-256. Returns the manifest and the offset of the image.
///
/// # Errors
/// [`BackupError::NotABackup`], [`BackupError::Truncated`] or [`BackupError::Corrupt`] saying
/// what is wrong, [`BackupError::Io`] if the file cannot be read.
pub fn read_backup(path: &Path) -> Result<(Manifest, u64), BackupError> {
    let file = std::fs::File::open(path).map_err(io(format!("opening {}", path.display())))?;
    let mut reader = BufReader::new(file);
    let first = read_line(&mut reader, BACKUP_FORMAT.len() + 1)?;
    if first != BACKUP_FORMAT {
        return Err(BackupError::NotABackup(format!(
            "the first line is {:?}, not {BACKUP_FORMAT:?}",
            first.chars().take(40).collect::<String>()
        )));
    }
    let line = read_line(&mut reader, MANIFEST_BYTES_MAX)?;
    let manifest: Manifest = serde_json::from_str(&line)
        .map_err(|e| BackupError::NotABackup(format!("the manifest does not parse: {e}")))?;
    if manifest.format != BACKUP_FORMAT {
        return Err(BackupError::NotABackup(format!(
            "manifest format {:?}",
            manifest.format
        )));
    }
    let offset = u64::try_from(BACKUP_FORMAT.len() + 2 + line.len()).unwrap_or(u64::MAX);
    let (sha256, bytes) = hash_reader(&mut reader, "reading the backup")?;
    if bytes < manifest.image_bytes {
        return Err(BackupError::Truncated {
            expected: manifest.image_bytes,
            found: bytes,
        });
    }
    if bytes > manifest.image_bytes {
        return Err(BackupError::Corrupt(format!(
            "{} bytes follow the image",
            bytes - manifest.image_bytes
        )));
    }
    if sha256 != manifest.image_sha256 {
        return Err(BackupError::Corrupt(format!(
            "the image's SHA-256 is {sha256}, the manifest says {}",
            manifest.image_sha256
        )));
    }
    Ok((manifest, offset))
}

/// One `\n`-terminated UTF-8 line of at most `max` bytes (without the newline).
fn read_line(reader: &mut impl std::io::BufRead, max: usize) -> Result<String, BackupError> {
    let mut line = Vec::new();
    let limit = u64::try_from(max + 1).unwrap_or(u64::MAX);
    reader
        .by_ref()
        .take(limit)
        .read_until(b'\n', &mut line)
        .map_err(io("reading the backup's header"))?;
    if line.pop() != Some(b'\n') {
        return Err(BackupError::NotABackup(
            "the header lines are missing or too long".to_owned(),
        ));
    }
    String::from_utf8(line).map_err(|_| BackupError::NotABackup("the header is not UTF-8".into()))
}

/// What a restore or a check of a restored store found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreReport {
    /// The log's origin.
    pub origin: String,
    /// Entries in the restored log.
    pub log_size: u64,
    /// Its root (base64).
    pub log_root: String,
    /// Size of its checkpoint, whose log signature verified.
    pub checkpoint_size: Option<u64>,
    /// Rows of every table, equal to the manifest's.
    pub tables: BTreeMap<String, u64>,
    /// Whether the log key was put in place.
    pub log_key_restored: bool,
}

/// Restores the backup `from` into `data_dir` (created if missing; it must hold no store and
/// no log key unless `force`), puts the log key `log_key` in place if given (it must be the
/// backup's), and checks the restored store against the manifest. Blocking.
///
/// # Errors
/// [`BackupError`] saying what is wrong with the backup, the directory, the key or the
/// restored store. Nothing is left at the store's path when the image cannot be written or
/// the restored store does not verify.
pub fn restore(
    from: &Path,
    data_dir: &Path,
    log_key: Option<&Path>,
    force: bool,
) -> Result<RestoreReport, BackupError> {
    let (manifest, offset) = read_backup(from)?;
    let signer = match log_key {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(io(format!("reading the log key {}", path.display())))?;
            let signer = NoteSigner::parse(text.trim())
                .map_err(|e| BackupError::LogKey(format!("{}: {e}", path.display())))?;
            let vkey = signer.verifier().to_vkey();
            if vkey != manifest.log_key {
                return Err(BackupError::LogKey(format!(
                    "{} is the key {vkey}, the backup's log is signed by {}",
                    path.display(),
                    manifest.log_key
                )));
            }
            Some(text)
        }
        None => None,
    };
    std::fs::create_dir_all(data_dir).map_err(io(format!("creating {}", data_dir.display())))?;
    let store_path = data_dir.join(STORE_FILE);
    let key_path = data_dir.join(LOG_KEY_FILE);
    let occupied = std::fs::read_dir(data_dir)
        .map_err(io(format!("reading {}", data_dir.display())))?
        .next()
        .is_some();
    if occupied && !force {
        return Err(BackupError::NotEmpty(data_dir.to_owned()));
    }
    if store_path.exists() {
        // Never replace the store under a running node: redb locks an open file.
        drop(
            RedbStorage::open(&store_path, ledger::empty_root().0).map_err(store(format!(
                "opening the store {} to replace it (is a node running on it?)",
                store_path.display()
            )))?,
        );
    }
    let temporary = temporary_for(&store_path);
    let copied = (|| {
        let mut source =
            std::fs::File::open(from).map_err(io(format!("opening {}", from.display())))?;
        std::io::Seek::seek(&mut source, std::io::SeekFrom::Start(offset))
            .map_err(io("reading the backup"))?;
        let mut target = std::fs::File::create(&temporary)
            .map_err(io(format!("creating {}", temporary.display())))?;
        std::io::copy(&mut source.take(manifest.image_bytes), &mut target)
            .map_err(io("writing the store"))?;
        target.sync_all().map_err(io("syncing the store"))?;
        Ok(())
    })();
    if let Err(error) = copied {
        let _ = std::fs::remove_file(&temporary);
        return Err(error);
    }
    std::fs::rename(&temporary, &store_path)
        .map_err(io(format!("renaming to {}", store_path.display())))?;
    sync_parent(&store_path)?;
    if let Some(text) = &signer {
        write_key(&key_path, text)?;
    }
    match verify_restored(&store_path, &manifest) {
        Ok(mut report) => {
            report.log_key_restored = signer.is_some();
            Ok(report)
        }
        Err(error) => {
            // Nobody may start a node on a store that is not the backed-up log.
            let _ = std::fs::remove_file(&store_path);
            if signer.is_some() {
                let _ = std::fs::remove_file(&key_path);
            }
            Err(error)
        }
    }
}

/// Writes the log key with mode 0600 (replacing one that `--force` allowed), fsync'd with its
/// directory.
fn write_key(path: &Path, text: &str) -> Result<(), BackupError> {
    let temporary = temporary_for(path);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options
        .open(&temporary)
        .map_err(io(format!("creating {}", temporary.display())))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(io("writing the log key"))?;
    std::fs::rename(&temporary, path).map_err(io(format!("renaming to {}", path.display())))?;
    sync_parent(path)
}

/// Opens the restored store at `store_path` and checks it is what `manifest` describes: rows of
/// every table, log state, the root recomputed from the tiles, and the checkpoint's log
/// signature and root. Blocking.
///
/// # Errors
/// [`BackupError::Mismatch`] or [`BackupError::NotTheSameLog`] saying what differs.
pub fn verify_restored(
    store_path: &Path,
    manifest: &Manifest,
) -> Result<RestoreReport, BackupError> {
    let storage = RedbStorage::open(store_path, ledger::empty_root().0).map_err(store(format!(
        "opening the restored store {}",
        store_path.display()
    )))?;
    let summary = storage
        .summary()
        .map_err(store("reading the restored store"))?;
    if summary.tables != manifest.tables {
        return Err(BackupError::Mismatch(format!(
            "rows per table {:?}, the manifest says {:?}",
            summary.tables, manifest.tables
        )));
    }
    if summary.state.size != manifest.log_size
        || root_text(&summary.state.root) != manifest.log_root
    {
        return Err(BackupError::Mismatch(format!(
            "log of size {} and root {}, the manifest says size {} and root {}",
            summary.state.size,
            root_text(&summary.state.root),
            manifest.log_size,
            manifest.log_root
        )));
    }
    let verifier = NoteVerifier::parse(&manifest.log_key)
        .map_err(|e| BackupError::LogKey(format!("the manifest's key: {e}")))?;
    let checkpoint_size = check_store(&storage, &summary, &verifier)?;
    Ok(RestoreReport {
        origin: manifest.origin.clone(),
        log_size: summary.state.size,
        log_root: manifest.log_root.clone(),
        checkpoint_size,
        tables: summary.tables,
        log_key_restored: false,
    })
}

/// The tiles give the stored root, and the stored checkpoint (if any) is signed by `verifier`
/// and commits to the root the tiles give at its size. Returns the checkpoint's size.
fn check_store(
    storage: &RedbStorage,
    summary: &StoreSummary,
    verifier: &NoteVerifier,
) -> Result<Option<u64>, BackupError> {
    let tiles = storage
        .tile_reader()
        .map_err(store("reading the restored tiles"))?;
    let root = tree_root(TreeSize(summary.state.size), &tiles)
        .map_err(|e| BackupError::Mismatch(format!("the tiles do not give a root: {e}")))?;
    if root.0 != summary.state.root {
        return Err(BackupError::Mismatch(
            "the tiles do not give the stored root".to_owned(),
        ));
    }
    let Some(stored) = &summary.checkpoint else {
        return Ok(None);
    };
    let opened = open_checkpoint(&stored.note, verifier, &[]).map_err(|e| {
        BackupError::NotTheSameLog(format!("the restored checkpoint does not verify: {e}"))
    })?;
    let size = opened.checkpoint.size;
    if size.0 > summary.state.size {
        return Err(BackupError::Mismatch(format!(
            "the checkpoint of size {} is ahead of the log of size {}",
            size.0, summary.state.size
        )));
    }
    let at_size = tree_root(size, &tiles)
        .map_err(|e| BackupError::Mismatch(format!("the tiles at the checkpoint's size: {e}")))?;
    if at_size != opened.checkpoint.root {
        return Err(BackupError::NotTheSameLog(format!(
            "the restored checkpoint's root at size {} is not the root of the restored tiles",
            size.0
        )));
    }
    Ok(Some(size.0))
}

/// What `restore --check --against URL` proved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsistencyReport {
    /// The log key both checkpoints verify under.
    pub log_key: String,
    /// Size of the restored checkpoint.
    pub restored_size: u64,
    /// Size of the live node's checkpoint.
    pub live_size: u64,
    /// Hashes in the consistency proof that verified.
    pub proof_hashes: usize,
}

/// Proves that the store in `data_dir` holds a prefix of the log a live node at `base_url`
/// serves: its checkpoint verifies under the log key of `data_dir` (`log.key`) or, without one,
/// `log_key`; the live checkpoint verifies under the same key; and the consistency proof from
/// the restored size to the live size, built from the live node's tiles, verifies. No node
/// may be running on `data_dir`.
///
/// # Errors
/// [`BackupError::NotTheSameLog`] when they are not the same log, others when a part cannot be
/// read.
pub async fn check_against(
    data_dir: &Path,
    base_url: &str,
    log_key: Option<&str>,
) -> Result<ConsistencyReport, BackupError> {
    let key_path = data_dir.join(LOG_KEY_FILE);
    let verifier = if key_path.exists() {
        let text = std::fs::read_to_string(&key_path)
            .map_err(io(format!("reading {}", key_path.display())))?;
        NoteSigner::parse(text.trim())
            .map_err(|e| BackupError::LogKey(format!("{}: {e}", key_path.display())))?
            .verifier()
    } else if let Some(vkey) = log_key {
        NoteVerifier::parse(vkey).map_err(|e| BackupError::LogKey(e.to_string()))?
    } else {
        return Err(BackupError::LogKey(format!(
            "{} is missing: pass the log's verifier key with --log-key",
            key_path.display()
        )));
    };
    let store_path = data_dir.join(STORE_FILE);
    let (restored, summary) = {
        let store_path = store_path.clone();
        let verifier = verifier.clone();
        tokio::task::spawn_blocking(move || {
            let storage =
                RedbStorage::open(&store_path, ledger::empty_root().0).map_err(store(format!(
                    "opening {} (is a node running on it?)",
                    store_path.display()
                )))?;
            let summary = storage.summary().map_err(store("reading the store"))?;
            check_store(&storage, &summary, &verifier)?;
            Ok::<_, BackupError>((storage, summary))
        })
        .await
        .map_err(|e| BackupError::Http(format!("the check stopped: {e}")))??
    };
    drop(restored);
    let Some(stored) = summary.checkpoint else {
        return Err(BackupError::NotTheSameLog(
            "the restored store has no checkpoint to prove anything from".to_owned(),
        ));
    };
    let mine = open_checkpoint(&stored.note, &verifier, &[])
        .map_err(|e| BackupError::NotTheSameLog(format!("the restored checkpoint: {e}")))?
        .checkpoint;
    let live = Live::new(base_url)?;
    let note = live.get("/log/checkpoint").await?;
    let theirs = open_checkpoint(&note, &verifier, &[])
        .map_err(|e| {
            BackupError::NotTheSameLog(format!(
                "the live checkpoint does not verify under the restored log's key: {e}"
            ))
        })?
        .checkpoint;
    if theirs.size.0 < mine.size.0 {
        return Err(BackupError::NotTheSameLog(format!(
            "the live log has {} entries, fewer than the restored checkpoint's {}",
            theirs.size.0, mine.size.0
        )));
    }
    let proof = live.consistency_proof(mine.size, theirs.size).await?;
    proof.verify(&mine.root, &theirs.root).map_err(|e| {
        BackupError::NotTheSameLog(format!(
            "the consistency proof from size {} to size {} does not verify: {e}",
            mine.size.0, theirs.size.0
        ))
    })?;
    Ok(ConsistencyReport {
        log_key: verifier.to_vkey(),
        restored_size: mine.size.0,
        live_size: theirs.size.0,
        proof_hashes: proof.path.len(),
    })
}

/// A live node's read-only log endpoints.
struct Live {
    base: String,
    client: reqwest::Client,
}

impl Live {
    fn new(base_url: &str) -> Result<Self, BackupError> {
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(60))
            .build()
            .map_err(|e| BackupError::Http(format!("an HTTP client: {e}")))?;
        Ok(Self {
            base: base_url.trim_end_matches('/').to_owned(),
            client,
        })
    }

    async fn get(&self, path: &str) -> Result<Vec<u8>, BackupError> {
        let url = format!("{}{path}", self.base);
        let mut response = self
            .client
            .get(&url)
            .send()
            .await
            .map_err(|e| BackupError::Http(format!("GET {url}: {e}")))?;
        if !response.status().is_success() {
            return Err(BackupError::Http(format!(
                "GET {url}: {}",
                response.status()
            )));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| BackupError::Http(format!("GET {url}: {e}")))?
        {
            if body.len() + chunk.len() > LIVE_ANSWER_BYTES_MAX {
                return Err(BackupError::Http(format!(
                    "GET {url}: the answer is larger than {LIVE_ANSWER_BYTES_MAX} bytes"
                )));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    /// The consistency proof from `old` to `new`, from the tiles of the tree of size `new`,
    /// fetching each tile the proof asks for.
    async fn consistency_proof(
        &self,
        old: TreeSize,
        new: TreeSize,
    ) -> Result<ConsistencyProof, BackupError> {
        let mut tiles = InMemoryTiles::new();
        for _ in 0..=PROOF_TILES_MAX {
            match consistency_proof(old, new, &tiles) {
                Ok(proof) => return Ok(proof),
                Err(ProofError::MissingTile { level, index }) => {
                    let id = TileId::in_tree(level, index, new).ok_or_else(|| {
                        BackupError::NotTheSameLog(format!(
                            "tile {level}/{index} is not in a tree of size {}",
                            new.0
                        ))
                    })?;
                    let bytes = self.get(&format!("/log/{}", id.path())).await?;
                    if bytes.len() != id.byte_len() {
                        return Err(BackupError::NotTheSameLog(format!(
                            "the live tile {} has {} bytes, not {}",
                            id.path(),
                            bytes.len(),
                            id.byte_len()
                        )));
                    }
                    tiles.store(id, bytes);
                }
                Err(e) => {
                    return Err(BackupError::NotTheSameLog(format!(
                        "building the consistency proof from the live tiles: {e}"
                    )));
                }
            }
        }
        Err(BackupError::NotTheSameLog(format!(
            "the consistency proof needed more than {PROOF_TILES_MAX} tiles"
        )))
    }
}

/// Asks the node at `base_url` for a backup and writes it to `out` atomically (temporary
/// file, fsync, check of the manifest, length and SHA-256, rename, fsync of the directory).
///
/// # Errors
/// [`BackupError::Http`] if the node cannot be reached or refuses (the problem's detail), the
/// others if the file cannot be written or is not a whole backup.
pub async fn fetch_backup(base_url: &str, out: &Path) -> Result<Manifest, BackupError> {
    let url = format!("{}/v1/admin/backup", base_url.trim_end_matches('/'));
    let client = reqwest::Client::new();
    let mut response = client.post(&url).send().await.map_err(|e| {
        if e.is_connect() {
            BackupError::Unreachable(url.clone())
        } else {
            BackupError::Http(format!("POST {url}: {e}"))
        }
    })?;
    if !response.status().is_success() {
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        return Err(BackupError::Http(format!(
            "the node refused ({status}): {text}"
        )));
    }
    let temporary = temporary_for(out);
    let written = async {
        let mut file = tokio::fs::File::create(&temporary)
            .await
            .map_err(io(format!("creating {}", temporary.display())))?;
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| BackupError::Http(format!("receiving the backup: {e}")))?
        {
            tokio::io::AsyncWriteExt::write_all(&mut file, &chunk)
                .await
                .map_err(io("writing the backup"))?;
        }
        file.sync_all().await.map_err(io("syncing the backup"))?;
        Ok::<_, BackupError>(())
    }
    .await;
    if let Err(error) = written {
        let _ = std::fs::remove_file(&temporary);
        return Err(error);
    }
    let out = out.to_owned();
    tokio::task::spawn_blocking(move || {
        finish_file(&temporary, &out)?;
        read_backup(&out).map(|(manifest, _)| manifest)
    })
    .await
    .map_err(|e| BackupError::Http(format!("the check stopped: {e}")))?
}

/// The node's side of backups: where snapshots are made, and one at a time.
#[derive(Debug, Clone)]
pub struct Backups {
    work_dir: PathBuf,
    running: Arc<Semaphore>,
}

impl Backups {
    /// Snapshots go to files of `data_dir` (the store's file system), one at a time.
    #[must_use]
    pub fn new(data_dir: &Path) -> Self {
        Self {
            work_dir: data_dir.to_owned(),
            running: Arc::new(Semaphore::new(1)),
        }
    }
}

/// `POST /v1/admin/backup`.
pub fn routes() -> Router<AppState> {
    Router::new().route("/v1/admin/backup", post(backup))
}

/// A body fed chunk by chunk from a channel (the snapshot file read on a blocking thread).
struct ChannelBody {
    chunks: mpsc::Receiver<Result<Bytes, std::io::Error>>,
}

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        self.chunks
            .poll_recv(cx)
            .map(|chunk| chunk.map(|c| c.map(Frame::data)))
    }
}

async fn backup(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
) -> Result<Response, ApiError> {
    crate::access::local_only(peer)?;
    // One at a time: a second request waits for the first a while, then gets 409.
    let permit = tokio::time::timeout(BACKUP_WAIT, state.backups.running.clone().acquire_owned())
        .await
        .ok()
        .and_then(Result::ok)
        .ok_or_else(|| ApiError::Conflict("a backup is being taken already".to_owned()))?;
    let storage: Storage = state.sequencer.storage().clone();
    let key = state.verifier_key.to_string();
    let work_dir = state.backups.work_dir.clone();
    let (snapshot, file) = tokio::task::spawn_blocking(move || {
        let snapshot = snapshot(&storage, &key, &work_dir)?;
        let file = std::fs::File::open(snapshot.path()).map_err(io("opening the snapshot"))?;
        Ok::<_, BackupError>((snapshot, file))
    })
    .await
    .map_err(|e| ApiError::Internal(format!("the backup task: {e}")))?
    .map_err(|e| ApiError::Internal(format!("{:#}", anyhow::Error::from(e))))?;
    // The open file keeps the image readable; dropping the snapshot unlinks its name, so a
    // client that goes away leaves nothing behind.
    let header = snapshot.manifest.header();
    let sha256 = snapshot.manifest.image_sha256.clone();
    let length = u64::try_from(header.len()).unwrap_or(u64::MAX) + snapshot.manifest.image_bytes;
    drop(snapshot);
    let (sender, chunks) = mpsc::channel(4);
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        if sender.blocking_send(Ok(Bytes::from(header))).is_err() {
            return;
        }
        let mut file = file;
        loop {
            let mut buffer = vec![0u8; CHUNK_BYTES];
            match file.read(&mut buffer) {
                Ok(0) => return,
                Ok(read) => {
                    buffer.truncate(read);
                    if sender.blocking_send(Ok(Bytes::from(buffer))).is_err() {
                        return;
                    }
                }
                Err(error) => {
                    let _ = sender.blocking_send(Err(error));
                    return;
                }
            }
        }
    });
    let mut response = Response::new(Body::new(ChannelBody { chunks }));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/vnd.agritrace.backup"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(value) = HeaderValue::from_str(&sha256) {
        headers.insert("agritrace-backup-sha256", value);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_refused(bytes: &[u8], needle: &str) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("b");
        std::fs::write(&path, bytes).expect("write");
        let error = read_backup(&path).expect_err("refused").to_string();
        assert!(error.contains(needle), "{error:?} names {needle:?}");
    }

    #[test]
    fn malformed_backup_files_are_refused_with_their_fault() {
        check_refused(b"", "header lines are missing");
        check_refused(b"something else\n{}\n", "not \"agritrace-backup/v1\"");
        check_refused(
            b"agritrace-backup/v1\n{\"format\":1}\n",
            "manifest does not parse",
        );
        check_refused(
            b"agritrace-backup/v1\nno newline",
            "header lines are missing",
        );
    }

    #[test]
    fn a_snapshot_round_trips_and_any_damage_is_found() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).expect("mkdir");
        let signer =
            crate::load_or_create_log_key(&data.join("log.key"), "test.example/log").expect("key");
        let storage =
            RedbStorage::open(&data.join("agritrace.redb"), ledger::empty_root().0).expect("open");
        let txn = storage.database().begin_write().expect("write");
        txn.open_table(redb::TableDefinition::<&[u8], &[u8]>::new("things"))
            .expect("table")
            .insert(b"k".as_slice(), b"v".as_slice())
            .expect("insert");
        txn.commit().expect("commit");
        let snapshot = snapshot(&storage, &signer.verifier().to_vkey(), &data).expect("snapshot");
        assert_eq!(snapshot.manifest.tables.get("things"), Some(&1));
        let out = dir.path().join("backup");
        write_backup(&snapshot, &out).expect("write");
        drop(snapshot);
        assert_eq!(
            std::fs::read_dir(&data).expect("list").count(),
            2,
            "the snapshot file is gone"
        );
        let bytes = std::fs::read(&out).expect("read");

        // Restoring needs an empty directory, and the backup's own key.
        let error = restore(&out, &data, None, false).expect_err("occupied");
        assert!(matches!(error, BackupError::NotEmpty(_)), "{error}");
        // --force never replaces a store that is open (the node running on it).
        let error = restore(&out, &data, None, true).expect_err("in use");
        assert!(
            error.to_string().contains("is a node running on it?"),
            "{error}"
        );
        let other = dir.path().join("other.key");
        crate::load_or_create_log_key(&other, "test.example/log").expect("key");
        let target = dir.path().join("restored");
        let error = restore(&out, &target, Some(&other), false).expect_err("wrong key");
        assert!(matches!(error, BackupError::LogKey(_)), "{error}");
        let report = restore(&out, &target, Some(&data.join("log.key")), false).expect("restore");
        assert_eq!(report.tables.get("things"), Some(&1));
        assert!(report.log_key_restored);

        let mut flipped = bytes.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        check_refused(&flipped, "SHA-256");
        check_refused(&bytes[..bytes.len() - 10], "truncated");
        let mut longer = bytes;
        longer.push(0);
        check_refused(&longer, "bytes follow the image");
    }
}
