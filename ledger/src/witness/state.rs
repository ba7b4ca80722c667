//! The witness's durable memory: for each log (by origin), the latest checkpoint it cosigned.
//!
//! One file per log in the state directory, named by the hex SHA-256 of the origin (origins are
//! free text). A write goes to a temporary file, is fsync'd, renamed over the old file, and the
//! directory is fsync'd: after [`WitnessState::record`] returns, the new checkpoint survives a
//! crash, and a crash at any point leaves either the old or the new file, never a mix. A state
//! directory created by [`WitnessState::open`] has its parent fsync'd too.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use crate::checkpoint::Checkpoint;
use crate::merkle::{Hash, TreeSize};
use crate::note::Note;

/// Largest state file read back.
const STATE_FILE_BYTES_MAX: u64 = 128 * 1024;

/// What the witness remembers about one log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CosignedState {
    /// Size of the latest cosigned checkpoint.
    pub size: TreeSize,
    /// Its root.
    pub root: Hash,
    /// The signed note as it was submitted (kept as evidence).
    pub note: Vec<u8>,
}

/// Why the state could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// File system failure.
    #[error("witness state I/O failed at {}", path.display())]
    Io {
        /// File or directory involved.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// A state file is not a signed checkpoint note.
    #[error("witness state file {} is corrupt", .0.display())]
    Corrupt(PathBuf),
}

/// The state directory and an in-memory copy of it.
#[derive(Debug)]
pub struct WitnessState {
    dir: PathBuf,
    logs: HashMap<String, CosignedState>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StateError + '_ {
    move |source| StateError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Fsyncs the directory that holds `path` (its parent, or `.` for a bare name).
pub(crate) fn sync_parent(path: &Path) -> Result<(), StateError> {
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    File::open(parent)
        .and_then(|d| d.sync_all())
        .map_err(io(parent))
}

fn file_name(origin: &str) -> String {
    let digest = Sha256::digest(origin.as_bytes());
    let mut name = String::with_capacity(80);
    for byte in digest {
        name.push_str(&format!("{byte:02x}"));
    }
    name.push_str(".checkpoint");
    name
}

fn parse_state(bytes: &[u8]) -> Option<(String, CosignedState)> {
    let note = Note::parse(bytes).ok()?;
    let checkpoint = Checkpoint::parse(&note.text).ok()?;
    Some((
        checkpoint.origin,
        CosignedState {
            size: checkpoint.size,
            root: checkpoint.root,
            note: bytes.to_vec(),
        },
    ))
}

impl WitnessState {
    /// Opens (creating if needed) the state directory and reads every log's state.
    ///
    /// # Errors
    /// [`StateError`] if the directory cannot be read or a state file is corrupt.
    pub fn open(dir: &Path) -> Result<Self, StateError> {
        if !dir.is_dir() {
            fs::create_dir_all(dir).map_err(io(dir))?;
            // The new directory's entry lives in its parent: fsync the parent so that the
            // directory (and the state files about to be created in it) survive a crash.
            sync_parent(dir)?;
        }
        let mut logs = HashMap::new();
        for item in fs::read_dir(dir).map_err(io(dir))? {
            let item = item.map_err(io(dir))?;
            let path = item.path();
            if path.extension().and_then(|e| e.to_str()) != Some("checkpoint") {
                // Temporary files of an interrupted write are ignored (and overwritten later).
                continue;
            }
            let length = item.metadata().map_err(io(&path))?.len();
            if length > STATE_FILE_BYTES_MAX {
                return Err(StateError::Corrupt(path));
            }
            let bytes = fs::read(&path).map_err(io(&path))?;
            let (origin, state) =
                parse_state(&bytes).ok_or_else(|| StateError::Corrupt(path.clone()))?;
            if path.file_name().and_then(|n| n.to_str()) != Some(file_name(&origin).as_str()) {
                return Err(StateError::Corrupt(path));
            }
            logs.insert(origin, state);
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            logs,
        })
    }

    /// The latest cosigned checkpoint of `origin`, if any.
    #[must_use]
    pub fn get(&self, origin: &str) -> Option<&CosignedState> {
        self.logs.get(origin)
    }

    /// Records `state` as the latest cosigned checkpoint of `origin`, durably (see the module
    /// doc), then in memory.
    ///
    /// # Errors
    /// [`StateError::Io`] if any step fails; the previous state is then still on disk.
    pub fn record(&mut self, origin: &str, state: CosignedState) -> Result<(), StateError> {
        let name = file_name(origin);
        let path = self.dir.join(&name);
        let temporary = self.dir.join(format!("{name}.tmp"));
        {
            let mut file = File::create(&temporary).map_err(io(&temporary))?;
            file.write_all(&state.note).map_err(io(&temporary))?;
            file.sync_all().map_err(io(&temporary))?;
        }
        // A crash before the rename leaves the old file in place; after it, the new one.
        fs::rename(&temporary, &path).map_err(io(&path))?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io(&self.dir))?;
        self.logs.insert(origin.to_owned(), state);
        Ok(())
    }
}
