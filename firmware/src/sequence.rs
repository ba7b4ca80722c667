//! Sequence numbers that are never reused, also across reboots: reserve-ahead in a small
//! non-volatile store.
//!
//! The store holds one number, the *reservation mark*: every sequence number below it may
//! already have been used, none at or above it has. At boot the logger continues at the
//! stored mark and, before it uses any number, durably moves the mark [`SEQUENCE_RESERVE`]
//! further. When the numbers run out it reserves the next block the same way. A crash at any
//! point therefore only skips numbers (at most one block), never repeats one; the backend sees
//! the skipped numbers as a gap after the reboot.
//!
//! One write per block keeps flash wear low: at one reading a minute and a block of 256, the
//! mark is written about six times a day.

use protocol::SequenceNumber;

/// How many sequence numbers one store write reserves.
pub const SEQUENCE_RESERVE: u64 = 256;

/// The non-volatile storage of the reservation mark (a flash page, an EEPROM cell, a file).
///
/// Contract, which [`crate::Logger`] relies on:
/// - [`SequenceStore::store`] returning `Ok` means the mark is durable: a power cut after it
///   returns cannot bring an older value back.
/// - [`SequenceStore::store`] returning `Err` means nothing: the new mark may or may not have
///   landed. The logger then uses no number at or above the mark it held before the call.
/// - [`SequenceStore::load`] returns the last mark that was stored (one that landed), or
///   `None` if none ever was.
/// - Marks only grow: the logger never stores a mark below one it loaded or stored.
pub trait SequenceStore {
    /// What went wrong in the storage.
    type Error;

    /// The stored reservation mark, `None` on a device that never stored one.
    fn load(&mut self) -> Result<Option<u64>, Self::Error>;

    /// Durably replaces the reservation mark with `reserved_until` (durable when it returns
    /// `Ok`).
    fn store(&mut self, reserved_until: u64) -> Result<(), Self::Error>;
}

/// A [`SequenceStore`] in RAM: survives a [`crate::Logger`] being dropped and booted again,
/// not a power cut. For tests, simulations and the emulated image, which have no flash.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemorySequenceStore {
    mark: Option<u64>,
}

impl MemorySequenceStore {
    /// An empty store (a device that never stored a mark).
    pub const fn new() -> Self {
        Self { mark: None }
    }

    /// The mark stored last.
    pub fn mark(&self) -> Option<u64> {
        self.mark
    }
}

impl SequenceStore for MemorySequenceStore {
    type Error = core::convert::Infallible;

    fn load(&mut self) -> Result<Option<u64>, Self::Error> {
        Ok(self.mark)
    }

    fn store(&mut self, reserved_until: u64) -> Result<(), Self::Error> {
        self.mark = Some(reserved_until);
        Ok(())
    }
}

/// Why no sequence number could be reserved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReserveError<E> {
    /// The store failed; no number of the new block is used.
    #[error("the sequence store failed")]
    Store(E),
    /// Every `u64` sequence number has been used; the device needs a new identity.
    #[error("the sequence numbers are exhausted")]
    Exhausted,
}

/// Hands out sequence numbers from the block reserved in the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SequenceAllocator {
    /// The next number to use.
    next: u64,
    /// Exclusive end of the durable reservation: `next < reserved_until` means `next` may be
    /// used without writing the store.
    reserved_until: u64,
}

impl SequenceAllocator {
    /// Continues at the stored mark, or at `floor` if that is higher (numbers below it are
    /// known to be used), and reserves the first block.
    pub(crate) fn boot<S: SequenceStore>(
        store: &mut S,
        floor: u64,
    ) -> Result<Self, ReserveError<S::Error>> {
        let mark = store
            .load()
            .map_err(ReserveError::Store)?
            .unwrap_or(0)
            .max(floor);
        let mut allocator = Self {
            next: mark,
            reserved_until: mark,
        };
        allocator.reserve(store)?;
        Ok(allocator)
    }

    /// The number the next reading gets, reserving a new block first if needed. Does not use
    /// it up: [`SequenceAllocator::commit`] does.
    pub(crate) fn reserve<S: SequenceStore>(
        &mut self,
        store: &mut S,
    ) -> Result<SequenceNumber, ReserveError<S::Error>> {
        if self.next >= self.reserved_until {
            let mark = self.next.saturating_add(SEQUENCE_RESERVE);
            if mark == self.next {
                return Err(ReserveError::Exhausted);
            }
            store.store(mark).map_err(ReserveError::Store)?;
            // A crash after this line is safe: the numbers below `mark` are never handed out
            // again, the unused ones are only skipped.
            self.reserved_until = mark;
        }
        Ok(SequenceNumber(self.next))
    }

    /// Uses up the number [`SequenceAllocator::reserve`] returned.
    pub(crate) fn commit(&mut self) {
        assert!(
            self.next < self.reserved_until,
            "a sequence number was committed without a reservation"
        );
        self.next += 1;
    }

    /// The number the next reading gets (if its block is reserved by then).
    pub(crate) fn next(&self) -> SequenceNumber {
        SequenceNumber(self.next)
    }
}
