//! [`FileFlash`]: a [`NorFlash`] in a file, so that hosts (the simulated devices of
//! `agritrace-device`) keep their outbox journal with the same ring code as a device.
//!
//! The file holds the flash image from offset 0; bytes beyond its end read as erased (0xFF),
//! so a new journal costs no disk space until it is written. NOR rules are checked as on
//! [`crate::MemoryFlash`], but a violation is an error here, not a panic.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use embedded_storage::nor_flash::{
    ErrorType, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};

/// Write unit of a [`FileFlash`] (as a typical 32-bit-word NOR part).
pub const FILE_FLASH_WRITE_BYTES: usize = 4;
/// Sector of a [`FileFlash`] (as a typical 4 KiB-sector serial NOR part).
pub const FILE_FLASH_SECTOR_BYTES: usize = 4096;

/// Why a [`FileFlash`] operation failed.
#[derive(Debug, thiserror::Error)]
pub enum FileFlashError {
    /// Reading, writing or syncing the file failed.
    #[error("flash file I/O failed: {0}")]
    Io(#[from] io::Error),
    /// Offset or length not a multiple of the write or erase size.
    #[error("misaligned flash access")]
    NotAligned,
    /// Beyond the flash's capacity.
    #[error("flash access out of bounds")]
    OutOfBounds,
    /// A write would set a bit from 0 to 1 without an erase (a bug in the caller).
    #[error("a write at byte {offset} would set bits that are not erased")]
    NotErased {
        /// Where.
        offset: u64,
    },
}

impl NorFlashError for FileFlashError {
    fn kind(&self) -> NorFlashErrorKind {
        match self {
            Self::NotAligned => NorFlashErrorKind::NotAligned,
            Self::OutOfBounds => NorFlashErrorKind::OutOfBounds,
            Self::Io(_) | Self::NotErased { .. } => NorFlashErrorKind::Other,
        }
    }
}

/// NOR flash of `capacity` bytes in a file, with [`FILE_FLASH_WRITE_BYTES`] write units and
/// [`FILE_FLASH_SECTOR_BYTES`] sectors.
///
/// Durability contract (what [`crate::FlashJournal`] needs from a flash): when
/// [`NorFlash::write`] or [`NorFlash::erase`] returns `Ok`, the bytes are in the file *and*
/// on the disk (`fdatasync`): a power cut or a `kill -9` after it returns cannot undo them.
/// When it returns `Err`, any prefix of the write may have landed. The journal publishes a
/// reading only after the write of its record returned `Ok`, so a device's record is durable
/// before it is published.
#[derive(Debug)]
pub struct FileFlash {
    file: File,
    path: PathBuf,
    capacity: usize,
}

impl FileFlash {
    /// Opens (or creates, erased) the flash file at `path` with room for `capacity` bytes,
    /// a multiple of [`FILE_FLASH_SECTOR_BYTES`]. An existing file longer than `capacity` is
    /// refused (it was made for a larger journal).
    pub fn open(path: impl Into<PathBuf>, capacity: usize) -> Result<Self, FileFlashError> {
        let path = path.into();
        if !capacity.is_multiple_of(FILE_FLASH_SECTOR_BYTES) {
            return Err(FileFlashError::NotAligned);
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;
        let len = file.metadata()?.len();
        // The file's directory entry must be durable too, or a new journal could vanish.
        if let Some(directory) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            File::open(directory)?.sync_all()?;
        }
        if u64::try_from(capacity).map_or(true, |capacity| len > capacity) {
            return Err(FileFlashError::OutOfBounds);
        }
        Ok(Self {
            file,
            path,
            capacity,
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn check(&self, offset: u32, len: usize, align: usize) -> Result<u64, FileFlashError> {
        let start = usize::try_from(offset).map_err(|_| FileFlashError::OutOfBounds)?;
        if start.checked_add(len).is_none_or(|end| end > self.capacity) {
            return Err(FileFlashError::OutOfBounds);
        }
        if !start.is_multiple_of(align) || !len.is_multiple_of(align) {
            return Err(FileFlashError::NotAligned);
        }
        Ok(u64::from(offset))
    }

    /// Reads `bytes.len()` bytes at `offset`; what lies beyond the end of the file is erased.
    fn read_at(&self, offset: u64, bytes: &mut [u8]) -> io::Result<()> {
        bytes.fill(0xFF);
        let mut done = 0;
        while done < bytes.len() {
            let at = offset + u64::try_from(done).unwrap_or(u64::MAX);
            match self.file.read_at(&mut bytes[done..], at) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error),
            }
        }
        // A short read leaves zeros nowhere: `fill` above made the tail 0xFF, and read_at
        // overwrote only what it returned.
        Ok(())
    }
}

impl ErrorType for FileFlash {
    type Error = FileFlashError;
}

impl ReadNorFlash for FileFlash {
    const READ_SIZE: usize = 1;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        let at = self.check(offset, bytes.len(), 1)?;
        self.read_at(at, bytes)?;
        Ok(())
    }

    fn capacity(&self) -> usize {
        self.capacity
    }
}

impl NorFlash for FileFlash {
    const WRITE_SIZE: usize = FILE_FLASH_WRITE_BYTES;
    const ERASE_SIZE: usize = FILE_FLASH_SECTOR_BYTES;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
        let len = usize::try_from(to.checked_sub(from).ok_or(FileFlashError::OutOfBounds)?)
            .map_err(|_| FileFlashError::OutOfBounds)?;
        let at = self.check(from, len, FILE_FLASH_SECTOR_BYTES)?;
        let file_len = self.file.metadata()?.len();
        if at < file_len {
            // Only the part inside the file needs writing: beyond it reads as erased already.
            let inside = usize::try_from(file_len - at).map_or(len, |inside| inside.min(len));
            self.file.write_all_at(&vec_of(0xFF, inside), at)?;
            self.file.sync_data()?;
        }
        Ok(())
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
        let at = self.check(offset, bytes.len(), FILE_FLASH_WRITE_BYTES)?;
        let mut old = vec_of(0, bytes.len());
        self.read_at(at, &mut old)?;
        if let Some(index) = old.iter().zip(bytes).position(|(old, new)| new & !old != 0) {
            return Err(FileFlashError::NotErased {
                offset: at + u64::try_from(index).unwrap_or(u64::MAX),
            });
        }
        let file_len = self.file.metadata()?.len();
        if at > file_len {
            // Growing the file must not leave a hole: a hole reads as zeros, not as erased.
            let gap = usize::try_from(at - file_len).map_err(|_| FileFlashError::OutOfBounds)?;
            self.file.write_all_at(&vec_of(0xFF, gap), file_len)?;
        }
        self.file.write_all_at(bytes, at)?;
        // A crash after this line is safe: the bytes are on the disk.
        self.file.sync_data()?;
        Ok(())
    }
}

fn vec_of(byte: u8, len: usize) -> std::vec::Vec<u8> {
    std::vec![byte; len]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_file_flash_reads_erased_and_keeps_what_was_written() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("outbox");
        let mut flash = FileFlash::open(&path, 2 * FILE_FLASH_SECTOR_BYTES).unwrap();
        let mut buf = [0u8; 8];
        flash.read(4096, &mut buf).unwrap();
        assert_eq!(buf, [0xFF; 8]);
        flash.write(4100, &[0x12, 0x34, 0x56, 0x78]).unwrap();
        drop(flash);
        let mut flash = FileFlash::open(&path, 2 * FILE_FLASH_SECTOR_BYTES).unwrap();
        flash.read(4096, &mut buf).unwrap();
        assert_eq!(buf, [0xFF, 0xFF, 0xFF, 0xFF, 0x12, 0x34, 0x56, 0x78]);
        flash.erase(4096, 8192).unwrap();
        flash.read(4096, &mut buf).unwrap();
        assert_eq!(buf, [0xFF; 8]);
    }

    #[test]
    fn a_file_flash_refuses_what_nor_flash_refuses() {
        let directory = tempfile::tempdir().unwrap();
        let mut flash =
            FileFlash::open(directory.path().join("outbox"), FILE_FLASH_SECTOR_BYTES).unwrap();
        flash.write(0, &[0x0F; 4]).unwrap();
        assert!(matches!(
            flash.write(0, &[0xF0; 4]),
            Err(FileFlashError::NotErased { offset: 0 })
        ));
        // Clearing more bits is allowed.
        flash.write(0, &[0x00; 4]).unwrap();
        assert!(matches!(
            flash.write(2, &[0; 4]),
            Err(FileFlashError::NotAligned)
        ));
        assert!(matches!(
            flash.write(4096, &[0; 4]),
            Err(FileFlashError::OutOfBounds)
        ));
        assert!(matches!(
            flash.erase(0, 100),
            Err(FileFlashError::NotAligned)
        ));
        assert!(matches!(
            FileFlash::open(directory.path().join("other"), 100),
            Err(FileFlashError::NotAligned)
        ));
    }
}
