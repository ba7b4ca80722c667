//! A [`SequenceStore`] in a file, for hosts (the simulated devices of `agritrace-device`).
//!
//! The mark is written as decimal text to a temporary file beside the target, flushed to
//! disk, renamed over the target, and the directory is synced, so the file always holds
//! either the old or the new mark, never a torn one.

use std::format;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::sequence::SequenceStore;

/// A reservation mark kept in one small text file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileSequenceStore {
    path: PathBuf,
}

impl FileSequenceStore {
    /// A store at `path` (created on the first [`SequenceStore::store`]; its directory must
    /// exist).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// Where the mark is kept.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn temporary_path(&self) -> PathBuf {
        let mut name = self.path.file_name().unwrap_or_default().to_os_string();
        name.push(".tmp");
        self.path.with_file_name(name)
    }
}

impl SequenceStore for FileSequenceStore {
    type Error = io::Error;

    fn load(&mut self) -> Result<Option<u64>, io::Error> {
        let text = match fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(error),
        };
        text.trim().parse().map(Some).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{} does not hold a sequence mark", self.path.display()),
            )
        })
    }

    fn store(&mut self, reserved_until: u64) -> Result<(), io::Error> {
        let temporary = self.temporary_path();
        let mut file = fs::File::create(&temporary)?;
        writeln!(file, "{reserved_until}")?;
        file.sync_all()?;
        drop(file);
        fs::rename(&temporary, &self.path)?;
        // The rename is durable once the directory entry is.
        if let Some(directory) = self.path.parent() {
            let directory = if directory.as_os_str().is_empty() {
                Path::new(".")
            } else {
                directory
            };
            fs::File::open(directory)?.sync_all()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mark_survives_a_new_store_on_the_same_file() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("sequence");
        let mut store = FileSequenceStore::new(&path);
        assert_eq!(store.load().unwrap(), None);
        store.store(256).unwrap();
        store.store(512).unwrap();
        assert_eq!(FileSequenceStore::new(&path).load().unwrap(), Some(512));
    }

    #[test]
    fn a_garbled_file_is_an_error_not_a_fresh_start() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("sequence");
        fs::write(&path, "twelve\n").unwrap();
        let error = FileSequenceStore::new(&path).load().unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
    }
}
