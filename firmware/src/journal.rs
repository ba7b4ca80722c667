//! The durable copy of the outbox: a ring of fixed-size records in NOR flash
//! ([`FlashJournal`], over the `embedded-storage` 0.3 [`NorFlash`] trait), so that a reboot or
//! a power cut loses no signed reading the backend has not acknowledged (DESIGN.md, data flow
//! step 1: "a bounded outbox (flash ring buffer on hardware)").
//!
//! # NOR flash rules
//!
//! Erasing a sector (`ERASE_SIZE` bytes) sets every bit to 1; a write can only clear bits, at
//! offsets and lengths that are multiples of `WRITE_SIZE`. The journal never writes a
//! write unit twice except to clear more bits of an ack mark it wrote itself, and writes each
//! separately written field in its own write units, so flash with ECC words (which forbid a
//! second write) works too.
//!
//! # Record layout
//!
//! The region is `sectors` erase sectors; each holds `ERASE_SIZE / slot` slots (the rest of
//! the sector stays unused). With `U = max(WRITE_SIZE, READ_SIZE)`, one slot is:
//!
//! ```text
//! offset        size              field
//! 0             round_up(4, U)    retired mark: 0xFF.. while the reading is live; written to
//!                                 0x00.. (bits cleared in place, no rewrite) once the backend
//!                                 acknowledged it or it was evicted. Any cleared bit = retired.
//! M             4                 magic "atj1"
//! M + 4         8                 sequence number, little-endian
//! M + 12        2                 length of the signed reading, little-endian (<= 130)
//! M + 14        4                 CRC-32 (ISO-HDLC, see crate::crc32) over bytes M..M+14 and
//!                                 the signed reading, little-endian
//! M + 18        length            the signed reading, exactly as published
//! ...           up to round_up(18 + 130, U)   0xFF padding
//! ```
//!
//! A slot is *blank* (all 0xFF), a *record* (magic, length and CRC check out), or *torn*
//! (anything else: a write cut by a power failure, or rot). The record body is one write, the
//! mark another.
//!
//! # Sector policy
//!
//! Records are appended at the *head*, slot after slot, sector after sector, around the
//! ring; sequence numbers grow along the ring. Before the head enters a sector that is not
//! blank, that sector (the oldest) is erased: its live readings are evicted, and the logger
//! counts them (with the counts they carried) in the `dropped_samples` of the reading being
//! appended (plan first with [`OutboxJournal::next_append_erases`]). A sector other than the head's whose records are
//! all retired is erased as soon as its last record is retired, so acknowledged data does not
//! linger and the head usually finds blank sectors.
//!
//! # Recovery rules ([`FlashJournal::open`], then [`OutboxJournal::restore`])
//!
//! - The head continues after the record with the highest sequence number (retired or not).
//!   If a slot after it in the same sector is not blank (a torn append), the head moves to the
//!   next sector, which is erased before use.
//! - Restoring walks the ring from the oldest sector and yields every record that is not
//!   retired, in ring order; torn slots are skipped, and so is a record whose sequence number
//!   is not above the previous record's (left over from a cut erase).
//! - A record whose append was cut is torn (its CRC fails) and never restored: it was never
//!   published, because the logger publishes a reading only after its append returned.
//! - A cut mark write leaves some bits cleared (retired) or none (live): the ack was in
//!   progress, and a live reading is simply sent again (the backend acknowledges repeats).
//!
//! Erases are taken as atomic. A cut erase can leave old records readable: they come back as
//! live and are sent again, which the backend's deduplication absorbs; the CRC keeps every
//! half-erased record out.

use core::ops::Range;

use embedded_storage::nor_flash::NorFlash;
use protocol::SequenceNumber;
use protocol::limits::SIGNED_READING_BYTES_MAX;

use crate::crc32::Crc32;

/// The first bytes of every record.
pub const RECORD_MAGIC: [u8; 4] = *b"atj1";
/// Magic, sequence, length, CRC.
const HEADER_BYTES: usize = 4 + 8 + 2 + 4;
/// Bytes of the mark that are significant (the mark field is rounded up to write units).
const MARK_BYTES: usize = 4;
/// Largest slot the journal handles (it reads one slot into a stack buffer).
pub const SLOT_BYTES_MAX: usize = 512;
/// Byte value of erased flash.
const ERASED: u8 = 0xFF;

/// Where a record sits in the journal (its slot in the ring). Meaningful only for the
/// journal that returned it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RecordRef(pub u32);

/// What [`OutboxJournal::restore`] found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Restored {
    /// Live readings handed back, oldest first.
    pub restored: usize,
    /// Live readings beyond `keep_newest` that were retired instead (the oldest ones): the
    /// logger counts them as evicted, with the counts they carried.
    pub evicted: usize,
    /// Slots that hold neither a record nor blank flash (cut writes).
    pub torn: usize,
    /// Records skipped because their sequence number was not above the one before them.
    pub stale: usize,
}

/// The durable store behind the [`crate::Logger`]'s outbox.
///
/// Contract, which the logger relies on:
/// - [`OutboxJournal::append`] returning `Ok` means the record is durable: a power cut after
///   it returns brings it back with [`OutboxJournal::restore`], byte for byte. The logger
///   publishes a reading only after that. `Err` means the record may or may not have landed
///   (its sequence number is then never used again).
/// - [`OutboxJournal::retire`] returning `Ok` means the record is durably gone: `restore`
///   never yields it again. `Err` means it may come back (and be sent again).
/// - [`OutboxJournal::make_room`] erases exactly the records that
///   [`OutboxJournal::next_append_erases`] named; `append` calls it first if it was not.
/// - `restore` yields live records in the order they were appended, with strictly
///   increasing sequence numbers; the ones it evicts come first, the ones it keeps after.
pub trait OutboxJournal {
    /// What went wrong in the storage.
    type Error;

    /// The highest sequence number of any record in the journal, retired or not. The logger
    /// never hands out a number at or below it.
    fn newest_sequence(&self) -> Option<SequenceNumber>;

    /// The slots the next append erases first (their live records are evicted), if any.
    fn next_append_erases(&self) -> Option<Range<RecordRef>>;

    /// Erases what [`OutboxJournal::next_append_erases`] names (nothing if `None`).
    fn make_room(&mut self) -> Result<(), Self::Error>;

    /// Durably appends a signed reading (see the contract above).
    fn append(
        &mut self,
        sequence: SequenceNumber,
        signed_reading: &[u8],
    ) -> Result<RecordRef, Self::Error>;

    /// Durably marks a record as acknowledged or evicted.
    fn retire(&mut self, record: RecordRef) -> Result<(), Self::Error>;

    /// Hands every live record to `found`, oldest first; when there are more than
    /// `keep_newest`, retires the oldest ones instead, hands each to `evicted` once it is
    /// retired (so the logger can carry the eviction counts signed into them), and counts
    /// them in [`Restored::evicted`].
    fn restore(
        &mut self,
        keep_newest: usize,
        found: impl FnMut(RecordRef, SequenceNumber, &[u8]),
        evicted: impl FnMut(SequenceNumber, &[u8]),
    ) -> Result<Restored, Self::Error>;
}

/// No journal: the outbox lives in RAM only and a reboot loses what it held (the sequence
/// numbers are still never reused, so the backend sees the gap). For hosts without storage.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NoJournal;

impl OutboxJournal for NoJournal {
    type Error = core::convert::Infallible;

    fn newest_sequence(&self) -> Option<SequenceNumber> {
        None
    }

    fn next_append_erases(&self) -> Option<Range<RecordRef>> {
        None
    }

    fn make_room(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }

    fn append(&mut self, _: SequenceNumber, _: &[u8]) -> Result<RecordRef, Self::Error> {
        Ok(RecordRef(0))
    }

    fn retire(&mut self, _: RecordRef) -> Result<(), Self::Error> {
        Ok(())
    }

    fn restore(
        &mut self,
        _: usize,
        _: impl FnMut(RecordRef, SequenceNumber, &[u8]),
        _: impl FnMut(SequenceNumber, &[u8]),
    ) -> Result<Restored, Self::Error> {
        Ok(Restored::default())
    }
}

/// Why a flash region cannot hold a journal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GeometryError {
    /// `WRITE_SIZE`, `READ_SIZE` and `ERASE_SIZE` do not nest (each a multiple of the last).
    #[error("the flash's read, write and erase sizes do not nest")]
    SizesDoNotNest,
    /// A slot would be larger than [`SLOT_BYTES_MAX`] or than a sector.
    #[error("the flash's write or erase size leaves no room for a record slot")]
    SlotDoesNotFit,
    /// The region does not start and end on sector boundaries.
    #[error("the journal region is not aligned to erase sectors")]
    NotAligned,
    /// The region lies (partly) outside the flash.
    #[error("the journal region is outside the flash")]
    OutOfBounds,
    /// A ring needs at least two sectors: one to write while the oldest is erased.
    #[error("the journal region needs at least two erase sectors")]
    TooSmall,
}

/// Why a journal operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JournalError<E> {
    /// The flash driver failed (the operation may have partly landed).
    #[error("the flash failed: {0:?}")]
    Flash(E),
    /// The region is unusable.
    #[error("unusable journal region: {0}")]
    Geometry(#[from] GeometryError),
    /// A signed reading longer than [`SIGNED_READING_BYTES_MAX`].
    #[error("a signed reading of {len} bytes does not fit a record")]
    TooLong {
        /// Its length.
        len: usize,
    },
    /// A sequence number not above the newest record's (a caller bug; nothing was written).
    #[error("sequence {sequence} is not above the journal's newest {newest}")]
    OutOfOrder {
        /// The refused number.
        sequence: u64,
        /// The newest in the journal.
        newest: u64,
    },
    /// A [`RecordRef`] outside the ring.
    #[error("no slot {0} in the journal")]
    NoSuchRecord(u32),
}

/// What a slot holds.
enum SlotState<'b> {
    Blank,
    Record {
        sequence: u64,
        retired: bool,
        signed_reading: &'b [u8],
    },
    Torn,
}

/// The outbox journal in a region of NOR flash (see the module documentation for the layout
/// and the recovery rules).
#[derive(Debug)]
pub struct FlashJournal<F> {
    flash: F,
    /// Byte offset of the region in the flash.
    region_start: u32,
    sectors: u32,
    sector_bytes: u32,
    slots_per_sector: u32,
    slot_bytes: u32,
    mark_bytes: u32,
    body_bytes: u32,
    /// The slot the next record goes to.
    head: u32,
    /// Whether the head's sector must be erased before the next append (the head is then at
    /// the sector's first slot). Otherwise every slot from the head to the sector's end is
    /// blank.
    erase_before_append: bool,
    newest: Option<u64>,
    torn_at_open: usize,
}

fn round_up(value: usize, unit: usize) -> usize {
    value.div_ceil(unit) * unit
}

impl<F: NorFlash> FlashJournal<F> {
    /// Opens the journal in `region` (byte offsets, on sector boundaries, at least two
    /// sectors) of `flash`, scanning it to find the head. Nothing is written.
    pub fn open(flash: F, region: Range<u32>) -> Result<Self, JournalError<F::Error>> {
        let unit = F::WRITE_SIZE.max(F::READ_SIZE).max(1);
        let nests = F::WRITE_SIZE > 0
            && F::READ_SIZE > 0
            && unit.is_multiple_of(F::WRITE_SIZE)
            && unit.is_multiple_of(F::READ_SIZE)
            && F::ERASE_SIZE.is_multiple_of(unit);
        if !nests {
            return Err(GeometryError::SizesDoNotNest.into());
        }
        let mark_bytes = round_up(MARK_BYTES, unit);
        let body_bytes = round_up(HEADER_BYTES + SIGNED_READING_BYTES_MAX, unit);
        let slot_bytes = mark_bytes + body_bytes;
        if slot_bytes > SLOT_BYTES_MAX || slot_bytes > F::ERASE_SIZE {
            return Err(GeometryError::SlotDoesNotFit.into());
        }
        let sector_bytes = u32::try_from(F::ERASE_SIZE).map_err(|_| GeometryError::OutOfBounds)?;
        if region.start > region.end
            || usize::try_from(region.end).map_or(true, |end| end > flash.capacity())
        {
            return Err(GeometryError::OutOfBounds.into());
        }
        if !region.start.is_multiple_of(sector_bytes) || !region.end.is_multiple_of(sector_bytes) {
            return Err(GeometryError::NotAligned.into());
        }
        let sectors = (region.end - region.start) / sector_bytes;
        if sectors < 2 {
            return Err(GeometryError::TooSmall.into());
        }
        // All below SLOT_BYTES_MAX or the sector size, which fits u32.
        let as_u32 = |v: usize| u32::try_from(v).map_err(|_| GeometryError::SlotDoesNotFit);
        let slots_per_sector = as_u32(F::ERASE_SIZE / slot_bytes)?;
        sectors
            .checked_mul(slots_per_sector)
            .ok_or(GeometryError::OutOfBounds)?;
        let mut journal = Self {
            flash,
            region_start: region.start,
            sectors,
            sector_bytes,
            slots_per_sector,
            slot_bytes: as_u32(slot_bytes)?,
            mark_bytes: as_u32(mark_bytes)?,
            body_bytes: as_u32(body_bytes)?,
            head: 0,
            erase_before_append: false,
            newest: None,
            torn_at_open: 0,
        };
        journal.scan()?;
        Ok(journal)
    }

    /// Finds the newest record and places the head after it.
    fn scan(&mut self) -> Result<(), JournalError<F::Error>> {
        let mut buf = [0u8; SLOT_BYTES_MAX];
        let mut newest: Option<(u64, u32)> = None;
        let mut torn = 0;
        for slot in 0..self.slots() {
            match self.read_slot(slot, &mut buf)? {
                SlotState::Record { sequence, .. } => {
                    if newest.is_none_or(|(s, _)| sequence > s) {
                        newest = Some((sequence, slot));
                    }
                }
                SlotState::Torn => torn += 1,
                SlotState::Blank => {}
            }
        }
        self.torn_at_open = torn;
        self.newest = newest.map(|(sequence, _)| sequence);
        let candidate = newest.map_or(0, |(_, slot)| self.after(slot));
        self.place_head(candidate)
    }

    /// The slot after `slot` around the ring.
    fn after(&self, slot: u32) -> u32 {
        let next = slot + 1;
        if next >= self.slots() { 0 } else { next }
    }

    /// Puts the head at `candidate` if it and the rest of its sector are blank, else at the
    /// start of the next sector; decides whether that sector needs erasing.
    fn place_head(&mut self, candidate: u32) -> Result<(), JournalError<F::Error>> {
        let mut head = candidate;
        if !head.is_multiple_of(self.slots_per_sector) {
            let sector_end = (head / self.slots_per_sector + 1) * self.slots_per_sector;
            let mut buf = [0u8; SLOT_BYTES_MAX];
            let mut blank = true;
            for slot in head..sector_end {
                if !matches!(self.read_slot(slot, &mut buf)?, SlotState::Blank) {
                    blank = false;
                    break;
                }
            }
            if blank {
                self.head = head;
                self.erase_before_append = false;
                return Ok(());
            }
            head = if sector_end >= self.slots() {
                0
            } else {
                sector_end
            };
        }
        self.head = head;
        self.erase_before_append = !self.sector_is_blank(head / self.slots_per_sector)?;
        Ok(())
    }

    fn slots(&self) -> u32 {
        self.sectors * self.slots_per_sector
    }

    fn sector_of(&self, slot: u32) -> u32 {
        slot / self.slots_per_sector
    }

    fn sector_offset(&self, sector: u32) -> u32 {
        self.region_start + sector * self.sector_bytes
    }

    fn slot_offset(&self, slot: u32) -> u32 {
        self.sector_offset(self.sector_of(slot)) + (slot % self.slots_per_sector) * self.slot_bytes
    }

    fn read_slot<'b>(
        &mut self,
        slot: u32,
        buf: &'b mut [u8; SLOT_BYTES_MAX],
    ) -> Result<SlotState<'b>, JournalError<F::Error>> {
        let len = self.slot_bytes as usize;
        let offset = self.slot_offset(slot);
        let bytes = &mut buf[..len];
        self.flash
            .read(offset, bytes)
            .map_err(JournalError::Flash)?;
        Ok(self.parse_slot(bytes))
    }

    fn parse_slot<'b>(&self, bytes: &'b [u8]) -> SlotState<'b> {
        if bytes.iter().all(|&b| b == ERASED) {
            return SlotState::Blank;
        }
        let (mark, body) = bytes.split_at(self.mark_bytes as usize);
        let retired = mark[..MARK_BYTES].iter().any(|&b| b != ERASED);
        let Some((header, rest)) = body.split_first_chunk::<HEADER_BYTES>() else {
            return SlotState::Torn;
        };
        let [
            m0,
            m1,
            m2,
            m3,
            s0,
            s1,
            s2,
            s3,
            s4,
            s5,
            s6,
            s7,
            l0,
            l1,
            c0,
            c1,
            c2,
            c3,
        ] = *header;
        let len = usize::from(u16::from_le_bytes([l0, l1]));
        if [m0, m1, m2, m3] != RECORD_MAGIC || len > SIGNED_READING_BYTES_MAX {
            return SlotState::Torn;
        }
        let Some(signed_reading) = rest.get(..len) else {
            return SlotState::Torn;
        };
        let crc = Crc32::new()
            .update(&header[..HEADER_BYTES - 4])
            .update(signed_reading)
            .finish();
        if crc != u32::from_le_bytes([c0, c1, c2, c3]) {
            return SlotState::Torn;
        }
        SlotState::Record {
            sequence: u64::from_le_bytes([s0, s1, s2, s3, s4, s5, s6, s7]),
            retired,
            signed_reading,
        }
    }

    fn sector_is_blank(&mut self, sector: u32) -> Result<bool, JournalError<F::Error>> {
        let mut buf = [0u8; SLOT_BYTES_MAX];
        let first = sector * self.slots_per_sector;
        for slot in first..first + self.slots_per_sector {
            if !matches!(self.read_slot(slot, &mut buf)?, SlotState::Blank) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn sector_has_live_records(&mut self, sector: u32) -> Result<bool, JournalError<F::Error>> {
        let mut buf = [0u8; SLOT_BYTES_MAX];
        let first = sector * self.slots_per_sector;
        for slot in first..first + self.slots_per_sector {
            if matches!(
                self.read_slot(slot, &mut buf)?,
                SlotState::Record { retired: false, .. }
            ) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn erase_sector(&mut self, sector: u32) -> Result<(), JournalError<F::Error>> {
        let from = self.sector_offset(sector);
        self.flash
            .erase(from, from + self.sector_bytes)
            .map_err(JournalError::Flash)
    }

    /// Every slot of the ring, oldest sector first.
    fn ring_order(&self) -> impl Iterator<Item = u32> + use<F> {
        let first_sector = if self.head.is_multiple_of(self.slots_per_sector) {
            self.sector_of(self.head)
        } else {
            (self.sector_of(self.head) + 1) % self.sectors
        };
        let (sectors, per_sector) = (self.sectors, self.slots_per_sector);
        (0..sectors).flat_map(move |i| {
            let sector = (first_sector + i) % sectors;
            (sector * per_sector)..((sector + 1) * per_sector)
        })
    }

    /// How many records the ring holds when every slot is used.
    pub fn capacity_records(&self) -> u32 {
        self.slots()
    }

    /// Records one erase sector holds.
    pub fn records_per_sector(&self) -> u32 {
        self.slots_per_sector
    }

    /// Slots found torn when the journal was opened (cut writes).
    pub fn torn_at_open(&self) -> usize {
        self.torn_at_open
    }

    /// The flash, for inspection.
    pub fn flash(&self) -> &F {
        &self.flash
    }

    /// The flash, e.g. to inject faults in tests.
    pub fn flash_mut(&mut self) -> &mut F {
        &mut self.flash
    }

    /// Gives the flash back (to reopen it after a simulated reboot).
    pub fn into_flash(self) -> F {
        self.flash
    }
}

impl<F: NorFlash> OutboxJournal for FlashJournal<F> {
    type Error = JournalError<F::Error>;

    fn newest_sequence(&self) -> Option<SequenceNumber> {
        self.newest.map(SequenceNumber)
    }

    fn next_append_erases(&self) -> Option<Range<RecordRef>> {
        self.erase_before_append.then(|| {
            let first = self.head - self.head % self.slots_per_sector;
            RecordRef(first)..RecordRef(first + self.slots_per_sector)
        })
    }

    fn make_room(&mut self) -> Result<(), Self::Error> {
        if self.erase_before_append {
            self.erase_sector(self.sector_of(self.head))?;
            // A crash after this line is safe: the head's sector is blank, and the scan at the
            // next boot puts the head at its start again (or after a newer record).
            self.erase_before_append = false;
        }
        Ok(())
    }

    fn append(
        &mut self,
        sequence: SequenceNumber,
        signed_reading: &[u8],
    ) -> Result<RecordRef, Self::Error> {
        let len = signed_reading.len();
        let len_u16 = u16::try_from(len)
            .ok()
            .filter(|_| len <= SIGNED_READING_BYTES_MAX)
            .ok_or(JournalError::TooLong { len })?;
        if let Some(newest) = self.newest.filter(|&n| sequence.0 <= n) {
            return Err(JournalError::OutOfOrder {
                sequence: sequence.0,
                newest,
            });
        }
        self.make_room()?;

        let mut body = [ERASED; SLOT_BYTES_MAX];
        body[..4].copy_from_slice(&RECORD_MAGIC);
        body[4..12].copy_from_slice(&sequence.0.to_le_bytes());
        body[12..14].copy_from_slice(&len_u16.to_le_bytes());
        body[HEADER_BYTES..HEADER_BYTES + len].copy_from_slice(signed_reading);
        let crc = Crc32::new()
            .update(&body[..HEADER_BYTES - 4])
            .update(signed_reading)
            .finish();
        body[14..HEADER_BYTES].copy_from_slice(&crc.to_le_bytes());

        let record = self.head;
        let offset = self.slot_offset(record) + self.mark_bytes;
        // Whatever happens to the write, the slot is used: never write it twice, never reuse
        // the number (a record that landed before an error report must stay unique).
        self.newest = Some(sequence.0);
        let written = self
            .flash
            .write(offset, &body[..self.body_bytes as usize])
            .map_err(JournalError::Flash);
        // A crash after the write is safe: the record is complete (found at boot) or torn
        // (CRC fails, skipped; the logger never published it).
        let next = self.after(record);
        let advanced = if next.is_multiple_of(self.slots_per_sector) {
            self.head = next;
            // Unknown state counts as "needs erasing": erasing a blank sector is harmless.
            self.erase_before_append = true;
            self.sector_is_blank(self.sector_of(next)).map(|blank| {
                self.erase_before_append = !blank;
            })
        } else {
            self.head = next;
            Ok(())
        };
        written?;
        advanced?;
        Ok(RecordRef(record))
    }

    fn retire(&mut self, record: RecordRef) -> Result<(), Self::Error> {
        let slot = record.0;
        if slot >= self.slots() {
            return Err(JournalError::NoSuchRecord(slot));
        }
        let zeros = [0u8; SLOT_BYTES_MAX];
        let offset = self.slot_offset(slot);
        self.flash
            .write(offset, &zeros[..self.mark_bytes as usize])
            .map_err(JournalError::Flash)?;
        // A crash after this line is safe: the record is retired whether or not its sector is
        // erased below.
        let sector = self.sector_of(slot);
        let head_writes_here = sector == self.sector_of(self.head) && !self.erase_before_append;
        if !head_writes_here && !self.sector_has_live_records(sector)? {
            self.erase_sector(sector)?;
            if sector == self.sector_of(self.head) {
                self.erase_before_append = false;
            }
        }
        Ok(())
    }

    fn restore(
        &mut self,
        keep_newest: usize,
        mut found: impl FnMut(RecordRef, SequenceNumber, &[u8]),
        mut evicted: impl FnMut(SequenceNumber, &[u8]),
    ) -> Result<Restored, Self::Error> {
        let mut buf = [0u8; SLOT_BYTES_MAX];
        let mut report = Restored::default();
        // Pass 1: count the live records that will be restored.
        let mut live = 0usize;
        let mut last: Option<u64> = None;
        for slot in self.ring_order() {
            match self.read_slot(slot, &mut buf)? {
                SlotState::Record {
                    sequence, retired, ..
                } => {
                    if last.is_some_and(|l| sequence <= l) {
                        report.stale += 1;
                        continue;
                    }
                    last = Some(sequence);
                    live += usize::from(!retired);
                }
                SlotState::Torn => report.torn += 1,
                SlotState::Blank => {}
            }
        }
        let excess = live.saturating_sub(keep_newest);
        // Pass 2: retire the excess oldest, hand back the rest.
        let mut index = 0usize;
        let mut last: Option<u64> = None;
        for slot in self.ring_order() {
            let SlotState::Record {
                sequence,
                retired,
                signed_reading,
            } = self.read_slot(slot, &mut buf)?
            else {
                continue;
            };
            if last.is_some_and(|l| sequence <= l) {
                continue;
            }
            last = Some(sequence);
            if retired {
                continue;
            }
            if index < excess {
                // `signed_reading` borrows `buf`, not the journal.
                self.retire(RecordRef(slot))?;
                evicted(SequenceNumber(sequence), signed_reading);
                report.evicted += 1;
            } else {
                found(RecordRef(slot), SequenceNumber(sequence), signed_reading);
                report.restored += 1;
            }
            index += 1;
        }
        Ok(report)
    }
}
