//! The bounded store-and-forward outbox: signed readings kept in sequence order until the
//! backend acknowledges them end to end.
//!
//! A ring of `N` fixed-size slots, oldest first. Slots are freed in any order (an ack names
//! exactly the sequence numbers it covers); freeing compacts the ring so that the remaining
//! readings stay contiguous and in order. When the ring is full, appending evicts the oldest
//! reading, whatever its state.

use protocol::SequenceNumber;
use protocol::limits::SIGNED_READING_BYTES_MAX;

use crate::journal::RecordRef;

/// Where a reading stands in the uplink cycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryState {
    /// Waiting to be published.
    Pending,
    /// Published at `since_ms` (device monotonic time), waiting for its acknowledgement.
    InFlight {
        /// When it was last published.
        since_ms: u64,
    },
}

/// One signed reading in the outbox.
#[derive(Clone, Copy)]
pub(crate) struct Slot {
    bytes: [u8; SIGNED_READING_BYTES_MAX],
    len: u8,
    pub(crate) sequence: SequenceNumber,
    pub(crate) state: DeliveryState,
    /// Where the reading's record is in the journal.
    pub(crate) record: RecordRef,
    /// The `dropped_samples` signed into the reading: if it is evicted too, this count moves
    /// on to the next reading recorded, so that it is not lost with it.
    pub(crate) carried: u32,
}

impl Slot {
    const EMPTY: Self = Self {
        bytes: [0; SIGNED_READING_BYTES_MAX],
        len: 0,
        sequence: SequenceNumber(0),
        state: DeliveryState::Pending,
        record: RecordRef(0),
        carried: 0,
    };

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// Whether the reading should be published at `now_ms`.
    pub(crate) fn sendable(&self, now_ms: u64, resend_after_ms: u32) -> bool {
        match self.state {
            DeliveryState::Pending => true,
            DeliveryState::InFlight { since_ms } => {
                now_ms.saturating_sub(since_ms) >= u64::from(resend_after_ms)
            }
        }
    }
}

impl core::fmt::Debug for Slot {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Slot")
            .field("sequence", &self.sequence.0)
            .field("len", &self.len)
            .field("state", &self.state)
            .field("record", &self.record.0)
            .field("carried", &self.carried)
            .finish()
    }
}

/// A ring of `N` slots holding `len` readings from `head` on, in sequence order.
#[derive(Debug)]
pub(crate) struct Outbox<const N: usize> {
    slots: [Slot; N],
    head: usize,
    len: usize,
}

impl<const N: usize> Outbox<N> {
    pub(crate) const fn new() -> Self {
        const { assert!(N > 0, "an outbox needs at least one slot") };
        Self {
            slots: [Slot::EMPTY; N],
            head: 0,
            len: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_full(&self) -> bool {
        self.len == N
    }

    fn physical(&self, index: usize) -> usize {
        (self.head + index) % N
    }

    /// The `index`-th oldest reading.
    pub(crate) fn get(&self, index: usize) -> Option<&Slot> {
        (index < self.len).then(|| &self.slots[self.physical(index)])
    }

    pub(crate) fn get_mut(&mut self, index: usize) -> Option<&mut Slot> {
        if index < self.len {
            let physical = self.physical(index);
            Some(&mut self.slots[physical])
        } else {
            None
        }
    }

    /// The readings, oldest first.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Slot> + '_ {
        (0..self.len).map(|i| &self.slots[self.physical(i)])
    }

    /// Appends a reading as pending, evicting the oldest one when full; returns the evicted
    /// reading's sequence number. `bytes` must fit a slot and `sequence` must be above every
    /// sequence in the outbox (the logger's allocator guarantees both). `carried` is the
    /// `dropped_samples` signed into `bytes`.
    pub(crate) fn push(
        &mut self,
        sequence: SequenceNumber,
        bytes: &[u8],
        record: RecordRef,
        carried: u32,
    ) -> Option<SequenceNumber> {
        assert!(
            bytes.len() <= SIGNED_READING_BYTES_MAX,
            "a signed reading is too long"
        );
        if let Some(newest) = self.len.checked_sub(1).and_then(|i| self.get(i)) {
            assert!(
                newest.sequence < sequence,
                "the outbox must stay in sequence order"
            );
        }
        let evicted = if self.is_full() {
            let oldest = self.slots[self.head].sequence;
            self.head = (self.head + 1) % N;
            self.len -= 1;
            Some(oldest)
        } else {
            None
        };
        let tail = self.physical(self.len);
        let slot = &mut self.slots[tail];
        slot.bytes[..bytes.len()].copy_from_slice(bytes);
        // SIGNED_READING_BYTES_MAX < 256, checked at compile time below.
        slot.len = u8::try_from(bytes.len()).unwrap_or(u8::MAX);
        slot.sequence = sequence;
        slot.state = DeliveryState::Pending;
        slot.record = record;
        slot.carried = carried;
        self.len += 1;
        evicted
    }

    /// Frees every reading for which `done` says so, keeping the others in order; returns how
    /// many were freed.
    pub(crate) fn free_where(&mut self, mut done: impl FnMut(&Slot) -> bool) -> usize {
        let mut kept = 0;
        for index in 0..self.len {
            let physical = self.physical(index);
            if !done(&self.slots[physical]) {
                let target = self.physical(kept);
                // `target` trails `physical`, so it holds a reading already moved or freed.
                self.slots.swap(target, physical);
                kept += 1;
            }
        }
        let freed = self.len - kept;
        self.len = kept;
        freed
    }

    /// Removes the oldest reading; returns its record.
    pub(crate) fn pop_oldest(&mut self) -> Option<RecordRef> {
        let oldest = self.get(0).map(|slot| slot.record)?;
        self.head = (self.head + 1) % N;
        self.len -= 1;
        Some(oldest)
    }

    /// Marks every reading in flight as pending again.
    pub(crate) fn all_pending(&mut self) {
        for index in 0..self.len {
            let physical = self.physical(index);
            self.slots[physical].state = DeliveryState::Pending;
        }
    }
}

const _: () = assert!(SIGNED_READING_BYTES_MAX <= u8::MAX as usize);
