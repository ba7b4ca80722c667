//! Acks: the backend tells a device which of its sequence numbers are done.
//!
//! "Done" means committed to the ledger, or rejected for good (quarantined for a reason a
//! resend cannot cure). The device frees exactly those readings from its outbox. Naming
//! sequence numbers as ranges (instead of a cumulative "everything up to n") means that a gap
//! left by eviction, or a reading still waiting for a retryable reason, never stalls the
//! outbox.
//!
//! ```text
//! version: u8 = 1 | device: 8 bytes | count: u8 (1..=ACK_RANGES_MAX) | count x (first: varint u64 | last: varint u64)
//! ```
//! Ranges are inclusive, sorted, and neither overlap nor touch (the canonical form, so one set
//! of sequence numbers has one encoding).

use serde::{Deserialize, Serialize};

use crate::limits::{ACK_BYTES_MAX, ACK_RANGES_MAX};
use crate::{DeviceId, SequenceNumber};

const ACK_VERSION: u8 = 1;

/// An inclusive range of sequence numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeqRange {
    pub first: u64,
    pub last: u64,
}

impl SeqRange {
    pub fn contains(&self, sequence: SequenceNumber) -> bool {
        (self.first..=self.last).contains(&sequence.0)
    }
}

/// Why bytes are not a well-formed ack, or an ack could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AckError {
    #[error("the ack is {len} bytes, more than the {max} allowed")]
    TooLarge { len: usize, max: usize },
    #[error("unsupported ack version {0}")]
    UnsupportedVersion(u8),
    #[error("the ack is truncated or malformed")]
    Malformed,
    #[error("an ack holds 1 to {max} ranges, this one says {count}")]
    BadCount { count: usize, max: usize },
    #[error("range {0} is empty or not after the previous one with a gap")]
    NotCanonical(usize),
    #[error("{0} bytes follow the last range")]
    TrailingBytes(usize),
    #[error("more than {0} ranges")]
    TooManyRanges(usize),
    #[error("the output buffer is too small")]
    BufferTooSmall,
}

/// The sequence numbers of one device that the backend is done with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ack {
    pub device: DeviceId,
    ranges: heapless::Vec<SeqRange, ACK_RANGES_MAX>,
}

impl Ack {
    /// The ranges, sorted and disjoint.
    pub fn ranges(&self) -> &[SeqRange] {
        &self.ranges
    }

    /// Whether `sequence` is acknowledged.
    pub fn contains(&self, sequence: SequenceNumber) -> bool {
        // Few ranges; a binary search would not pay for itself.
        self.ranges.iter().any(|r| r.contains(sequence))
    }

    /// How many sequence numbers the ack covers.
    pub fn covered(&self) -> u64 {
        self.ranges
            .iter()
            // A range may span all of u64 (first 0, last u64::MAX): saturate, never overflow.
            .map(|r| (r.last - r.first).saturating_add(1))
            .fold(0u64, u64::saturating_add)
    }

    /// Encodes into `out`, returning the bytes written.
    pub fn encode<'o>(&self, out: &'o mut [u8]) -> Result<&'o [u8], AckError> {
        if out.len() < 10 {
            return Err(AckError::BufferTooSmall);
        }
        out[0] = ACK_VERSION;
        out[1..9].copy_from_slice(&self.device.0);
        out[9] =
            u8::try_from(self.ranges.len()).map_err(|_| AckError::TooManyRanges(ACK_RANGES_MAX))?;
        let mut len = 10;
        for range in &self.ranges {
            let free = out.get_mut(len..).ok_or(AckError::BufferTooSmall)?;
            len += postcard::to_slice(range, free)
                .map_err(|_| AckError::BufferTooSmall)?
                .len();
        }
        Ok(&out[..len])
    }

    /// Decodes exactly `bytes` and checks that the ranges are canonical.
    pub fn decode(bytes: &[u8]) -> Result<Self, AckError> {
        if bytes.len() > ACK_BYTES_MAX {
            return Err(AckError::TooLarge {
                len: bytes.len(),
                max: ACK_BYTES_MAX,
            });
        }
        let header = bytes.get(..10).ok_or(AckError::Malformed)?;
        if header[0] != ACK_VERSION {
            return Err(AckError::UnsupportedVersion(header[0]));
        }
        let mut device = [0u8; 8];
        device.copy_from_slice(&header[1..9]);
        let count = usize::from(header[9]);
        if count == 0 || count > ACK_RANGES_MAX {
            return Err(AckError::BadCount {
                count,
                max: ACK_RANGES_MAX,
            });
        }
        let mut ranges = heapless::Vec::new();
        let mut cursor = &bytes[10..];
        for i in 0..count {
            let (range, rest): (SeqRange, _) =
                postcard::take_from_bytes(cursor).map_err(|_| AckError::Malformed)?;
            cursor = rest;
            check_next(&ranges, range, i)?;
            ranges
                .push(range)
                .map_err(|_| AckError::TooManyRanges(ACK_RANGES_MAX))?;
        }
        if !cursor.is_empty() {
            return Err(AckError::TrailingBytes(cursor.len()));
        }
        let ack = Self {
            device: DeviceId(device),
            ranges,
        };
        // Canonical varints: re-encode and compare (postcard accepts over-long ones).
        let mut canonical = [0u8; ACK_BYTES_MAX];
        if ack.encode(&mut canonical)? != bytes {
            return Err(AckError::Malformed);
        }
        Ok(ack)
    }
}

fn check_next(ranges: &[SeqRange], range: SeqRange, index: usize) -> Result<(), AckError> {
    if range.first > range.last {
        return Err(AckError::NotCanonical(index));
    }
    if let Some(previous) = ranges.last()
        && previous
            .last
            .checked_add(1)
            .is_none_or(|next| range.first <= next)
    {
        return Err(AckError::NotCanonical(index));
    }
    Ok(())
}

/// Builds an ack from sequence numbers given in increasing order, merging neighbours into
/// ranges. When the ack is full, further numbers are refused (the caller sends another ack).
#[derive(Clone, Debug)]
pub struct AckBuilder {
    device: DeviceId,
    ranges: heapless::Vec<SeqRange, ACK_RANGES_MAX>,
}

impl AckBuilder {
    pub fn new(device: DeviceId) -> Self {
        Self {
            device,
            ranges: heapless::Vec::new(),
        }
    }

    /// Adds one sequence number, which must be greater than every one added before.
    /// `TooManyRanges` when it would need a new range and the ack is full.
    pub fn push(&mut self, sequence: SequenceNumber) -> Result<(), AckError> {
        let n = sequence.0;
        if let Some(last) = self.ranges.last_mut() {
            if n <= last.last {
                return Err(AckError::NotCanonical(self.ranges.len() - 1));
            }
            if n == last.last + 1 {
                last.last = n;
                return Ok(());
            }
        }
        self.ranges
            .push(SeqRange { first: n, last: n })
            .map_err(|_| AckError::TooManyRanges(ACK_RANGES_MAX))
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// The ack, or `None` if nothing was added.
    pub fn finish(self) -> Option<Ack> {
        if self.ranges.is_empty() {
            return None;
        }
        Some(Ack {
            device: self.device,
            ranges: self.ranges,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEVICE: DeviceId = DeviceId([1, 2, 3, 4, 5, 6, 7, 8]);

    fn ack_of(sequences: &[u64]) -> Ack {
        let mut builder = AckBuilder::new(DEVICE);
        for &s in sequences {
            builder.push(SequenceNumber(s)).unwrap();
        }
        builder.finish().unwrap()
    }

    fn check_decode(bytes: &[u8], expected: AckError) {
        assert_eq!(Ack::decode(bytes), Err(expected), "{bytes:?}");
    }

    #[test]
    fn neighbours_merge_and_gaps_split() {
        let ack = ack_of(&[3, 4, 5, 9, 11, 12]);
        assert_eq!(
            ack.ranges(),
            &[
                SeqRange { first: 3, last: 5 },
                SeqRange { first: 9, last: 9 },
                SeqRange {
                    first: 11,
                    last: 12
                }
            ]
        );
        assert!(ack.contains(SequenceNumber(4)));
        assert!(!ack.contains(SequenceNumber(10)));
        assert_eq!(ack.covered(), 6);
        let mut buf = [0u8; ACK_BYTES_MAX];
        let bytes = ack.encode(&mut buf).unwrap();
        assert_eq!(Ack::decode(bytes), Ok(ack));
    }

    #[test]
    fn an_ack_of_every_sequence_number_counts_without_overflow() {
        let mut builder = AckBuilder::new(DEVICE);
        builder.push(SequenceNumber(0)).unwrap();
        let mut ack = builder.finish().unwrap();
        ack.ranges[0].last = u64::MAX;
        let mut buf = [0u8; ACK_BYTES_MAX];
        let decoded = Ack::decode(ack.encode(&mut buf).unwrap()).unwrap();
        assert_eq!(decoded.covered(), u64::MAX);
        assert!(decoded.contains(SequenceNumber(u64::MAX)));
    }

    #[test]
    fn a_full_builder_refuses_a_new_range_but_extends_the_last() {
        let mut builder = AckBuilder::new(DEVICE);
        for i in 0..ACK_RANGES_MAX as u64 {
            builder.push(SequenceNumber(i * 10)).unwrap();
        }
        builder
            .push(SequenceNumber((ACK_RANGES_MAX as u64 - 1) * 10 + 1))
            .unwrap();
        assert_eq!(
            builder.push(SequenceNumber(100_000)),
            Err(AckError::TooManyRanges(ACK_RANGES_MAX))
        );
        assert_eq!(
            builder.push(SequenceNumber(0)),
            Err(AckError::NotCanonical(31))
        );
    }

    #[test]
    fn malformed_acks_get_the_error_that_names_them() {
        let mut header = [1u8, 1, 2, 3, 4, 5, 6, 7, 8, 1];
        check_decode(&header[..5], AckError::Malformed);
        check_decode(&[&header[..], &[5]].concat(), AckError::Malformed);
        header[9] = 0;
        check_decode(
            &header,
            AckError::BadCount {
                count: 0,
                max: ACK_RANGES_MAX,
            },
        );
        header[9] = 2;
        // Overlapping and touching ranges are not canonical.
        check_decode(
            &[&header[..], &[1, 5, 5, 7]].concat(),
            AckError::NotCanonical(1),
        );
        check_decode(
            &[&header[..], &[1, 5, 6, 7]].concat(),
            AckError::NotCanonical(1),
        );
        check_decode(
            &[&header[..], &[5, 1, 7, 8]].concat(),
            AckError::NotCanonical(0),
        );
        header[9] = 1;
        check_decode(
            &[&header[..], &[1, 5, 0]].concat(),
            AckError::TrailingBytes(1),
        );
        // Over-long varint for 1: 0x81 0x00.
        check_decode(
            &[&header[..], &[0x81, 0x00, 5]].concat(),
            AckError::Malformed,
        );
        header[0] = 9;
        check_decode(&header, AckError::UnsupportedVersion(9));
        check_decode(
            &[0u8; ACK_BYTES_MAX + 1],
            AckError::TooLarge {
                len: ACK_BYTES_MAX + 1,
                max: ACK_BYTES_MAX,
            },
        );
    }
}
