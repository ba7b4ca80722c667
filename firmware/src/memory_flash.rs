//! [`MemoryFlash`]: NOR flash in RAM, for the emulated image (which has no flash driver) and
//! for tests. It enforces the NOR rules a real part enforces, so a journal that passes its
//! tests on it does not rely on anything real flash would refuse, and it can cut the power in
//! the middle of a write, as a brown-out on a real board does.
//!
//! Rules: reads at any offset (`READ_SIZE` 1); writes at multiples of `WRITE` bytes, and only
//! clearing bits (setting a bit from 0 to 1 is a bug in the caller and panics); erases whole
//! `ERASE`-byte sectors to 0xFF. Out-of-bounds and misaligned calls are errors.

use embedded_storage::nor_flash::{
    ErrorType, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};

/// Why a [`MemoryFlash`] operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MemoryFlashError {
    /// Offset or length not a multiple of the write or erase size.
    #[error("misaligned flash access")]
    NotAligned,
    /// Beyond the end of the flash.
    #[error("flash access out of bounds")]
    OutOfBounds,
    /// The power was cut (see [`MemoryFlash::cut_power_after`]); nothing works until
    /// [`MemoryFlash::restore_power`].
    #[error("the power is cut")]
    PowerCut,
}

impl NorFlashError for MemoryFlashError {
    fn kind(&self) -> NorFlashErrorKind {
        match self {
            Self::NotAligned => NorFlashErrorKind::NotAligned,
            Self::OutOfBounds => NorFlashErrorKind::OutOfBounds,
            Self::PowerCut => NorFlashErrorKind::Other,
        }
    }
}

/// `BYTES` bytes of NOR flash in RAM with `WRITE`-byte write units and `ERASE`-byte sectors,
/// erased (0xFF) when created.
#[derive(Clone, Debug)]
pub struct MemoryFlash<const BYTES: usize, const WRITE: usize, const ERASE: usize> {
    bytes: [u8; BYTES],
    /// Bytes that may still be programmed before the power goes (`None`: no cut planned).
    budget: Option<usize>,
    cut: bool,
    writes: u64,
    erases: u64,
}

impl<const BYTES: usize, const WRITE: usize, const ERASE: usize> Default
    for MemoryFlash<BYTES, WRITE, ERASE>
{
    fn default() -> Self {
        Self::new()
    }
}

impl<const BYTES: usize, const WRITE: usize, const ERASE: usize> MemoryFlash<BYTES, WRITE, ERASE> {
    /// Erased flash.
    pub const fn new() -> Self {
        const {
            assert!(
                WRITE > 0 && ERASE > 0,
                "write and erase sizes must be positive"
            );
            assert!(
                ERASE.is_multiple_of(WRITE),
                "sectors hold whole write units"
            );
            assert!(BYTES.is_multiple_of(ERASE), "the flash holds whole sectors");
        };
        Self {
            bytes: [0xFF; BYTES],
            budget: None,
            cut: false,
            writes: 0,
            erases: 0,
        }
    }

    /// Plans a power cut: the writes from now on program `bytes` more bytes in total, then
    /// the write in progress stops there (its first bytes landed, the rest did not) and
    /// returns [`MemoryFlashError::PowerCut`], as does every later operation. An erase is
    /// atomic: it happens entirely while the power lasts.
    pub fn cut_power_after(&mut self, bytes: usize) {
        self.budget = Some(bytes);
    }

    /// Whether the power has been cut.
    pub fn power_cut(&self) -> bool {
        self.cut
    }

    /// Powers the flash up again (a reboot) with its contents as the cut left them.
    pub fn restore_power(&mut self) {
        self.cut = false;
        self.budget = None;
    }

    /// The raw contents.
    pub fn contents(&self) -> &[u8] {
        &self.bytes
    }

    /// Completed and cut writes so far.
    pub fn writes(&self) -> u64 {
        self.writes
    }

    /// Erases so far.
    pub fn erases(&self) -> u64 {
        self.erases
    }

    fn range(
        offset: u32,
        len: usize,
        align: usize,
    ) -> Result<core::ops::Range<usize>, MemoryFlashError> {
        let start = usize::try_from(offset).map_err(|_| MemoryFlashError::OutOfBounds)?;
        let end = start
            .checked_add(len)
            .filter(|&end| end <= BYTES)
            .ok_or(MemoryFlashError::OutOfBounds)?;
        if !start.is_multiple_of(align) || !len.is_multiple_of(align) {
            return Err(MemoryFlashError::NotAligned);
        }
        Ok(start..end)
    }
}

impl<const BYTES: usize, const WRITE: usize, const ERASE: usize> ErrorType
    for MemoryFlash<BYTES, WRITE, ERASE>
{
    type Error = MemoryFlashError;
}

impl<const BYTES: usize, const WRITE: usize, const ERASE: usize> ReadNorFlash
    for MemoryFlash<BYTES, WRITE, ERASE>
{
    const READ_SIZE: usize = 1;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        if self.cut {
            return Err(MemoryFlashError::PowerCut);
        }
        let range = Self::range(offset, bytes.len(), 1)?;
        bytes.copy_from_slice(&self.bytes[range]);
        Ok(())
    }

    fn capacity(&self) -> usize {
        BYTES
    }
}

impl<const BYTES: usize, const WRITE: usize, const ERASE: usize> NorFlash
    for MemoryFlash<BYTES, WRITE, ERASE>
{
    const WRITE_SIZE: usize = WRITE;
    const ERASE_SIZE: usize = ERASE;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
        if self.cut {
            return Err(MemoryFlashError::PowerCut);
        }
        let len = usize::try_from(to.checked_sub(from).ok_or(MemoryFlashError::OutOfBounds)?)
            .map_err(|_| MemoryFlashError::OutOfBounds)?;
        let range = Self::range(from, len, ERASE)?;
        self.bytes[range].fill(0xFF);
        self.erases += 1;
        Ok(())
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
        if self.cut {
            return Err(MemoryFlashError::PowerCut);
        }
        let range = Self::range(offset, bytes.len(), WRITE)?;
        for (index, (old, new)) in self.bytes[range.clone()].iter().zip(bytes).enumerate() {
            assert!(
                new & !old == 0,
                "NOR flash violation: writing {new:#04x} over {old:#04x} at byte {} would set \
                 bits from 0 to 1 (erase first)",
                range.start + index
            );
        }
        self.writes += 1;
        let landing = match self.budget {
            Some(budget) if budget < bytes.len() => budget,
            _ => bytes.len(),
        };
        for (old, new) in self.bytes[range].iter_mut().zip(&bytes[..landing]) {
            *old &= new;
        }
        if let Some(budget) = self.budget.as_mut() {
            *budget -= landing;
            if landing < bytes.len() {
                self.cut = true;
                return Err(MemoryFlashError::PowerCut);
            }
        }
        Ok(())
    }
}
