//! Uplink messages: what a device publishes on its readings topic.
//!
//! ```text
//! kind 0x01 (reading) | signed reading bytes
//! kind 0x02 (backlog) | count: u8 (1..=BACKLOG_READINGS_MAX) | count x (length: varint | signed reading bytes)
//! ```
//!
//! Decoding an uplink only splits it into the signed readings it carries; each one is then
//! decoded and verified on its own, so one bad reading in a backlog is quarantined without
//! losing the others.

use crate::limits::{BACKLOG_READINGS_MAX, SIGNED_READING_BYTES_MAX, UPLINK_BYTES_MAX};

/// The first byte of an uplink message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum UplinkKind {
    /// One signed reading.
    Reading = 0x01,
    /// A batch of readings from the outbox, oldest first.
    Backlog = 0x02,
}

/// Why bytes are not a well-formed uplink message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UplinkError {
    #[error("the message is empty")]
    Empty,
    #[error("the message is {len} bytes, more than the {max} allowed")]
    TooLarge { len: usize, max: usize },
    #[error("unknown uplink message kind {0:#04x}")]
    UnknownKind(u8),
    #[error("a backlog must hold 1 to {max} readings, this one says {count}")]
    BadCount { count: usize, max: usize },
    #[error("the message is truncated")]
    Truncated,
    #[error("a reading in the backlog is {len} bytes, more than the {max} allowed")]
    ReadingTooLarge { len: usize, max: usize },
    #[error("{0} bytes follow the last reading")]
    TrailingBytes(usize),
    #[error("a reading's length prefix is not in its shortest encoding")]
    NonCanonicalLength,
    #[error("the output buffer is full")]
    Full,
}

/// A split uplink message. Iterate it to get each signed reading's bytes.
#[derive(Clone, Copy, Debug)]
pub struct Uplink<'a> {
    kind: UplinkKind,
    count: usize,
    /// The readings part: for `Reading` the signed reading, for `Backlog` the framed list.
    payload: &'a [u8],
}

impl<'a> Uplink<'a> {
    /// Checks the framing of a whole message (sizes, count, lengths, no trailing bytes).
    pub fn decode(bytes: &'a [u8]) -> Result<Self, UplinkError> {
        if bytes.len() > UPLINK_BYTES_MAX {
            return Err(UplinkError::TooLarge {
                len: bytes.len(),
                max: UPLINK_BYTES_MAX,
            });
        }
        let (&kind, rest) = bytes.split_first().ok_or(UplinkError::Empty)?;
        match kind {
            0x01 => Ok(Self {
                kind: UplinkKind::Reading,
                count: 1,
                payload: rest,
            }),
            0x02 => {
                let (&count, framed) = rest.split_first().ok_or(UplinkError::Truncated)?;
                let count = usize::from(count);
                if count == 0 || count > BACKLOG_READINGS_MAX {
                    return Err(UplinkError::BadCount {
                        count,
                        max: BACKLOG_READINGS_MAX,
                    });
                }
                let uplink = Self {
                    kind: UplinkKind::Backlog,
                    count,
                    payload: framed,
                };
                // Walk the framing once so that iteration cannot fail later.
                let mut cursor = framed;
                for _ in 0..count {
                    cursor = split_framed(cursor)?.1;
                }
                if !cursor.is_empty() {
                    return Err(UplinkError::TrailingBytes(cursor.len()));
                }
                Ok(uplink)
            }
            other => Err(UplinkError::UnknownKind(other)),
        }
    }

    pub fn kind(&self) -> UplinkKind {
        self.kind
    }

    /// How many signed readings the message carries.
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The signed readings' bytes, in message order (oldest first for a backlog).
    pub fn readings(&self) -> UplinkReadings<'a> {
        UplinkReadings {
            kind: self.kind,
            remaining: self.count,
            cursor: self.payload,
        }
    }
}

/// Iterator over the signed readings of an [`Uplink`].
#[derive(Clone, Debug)]
pub struct UplinkReadings<'a> {
    kind: UplinkKind,
    remaining: usize,
    cursor: &'a [u8],
}

impl<'a> Iterator for UplinkReadings<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        match self.kind {
            UplinkKind::Reading => Some(core::mem::take(&mut self.cursor)),
            UplinkKind::Backlog => {
                // The framing was checked by `Uplink::decode`.
                let (reading, rest) = split_framed(self.cursor).ok()?;
                self.cursor = rest;
                Some(reading)
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

fn split_framed(bytes: &[u8]) -> Result<(&[u8], &[u8]), UplinkError> {
    let (reading, rest): (&[u8], _) =
        postcard::take_from_bytes(bytes).map_err(|_| UplinkError::Truncated)?;
    // postcard accepts over-long length varints; refuse them so a message has one encoding.
    let prefix_len = bytes.len() - rest.len() - reading.len();
    if prefix_len != varint_len(reading.len()) {
        return Err(UplinkError::NonCanonicalLength);
    }
    if reading.len() > SIGNED_READING_BYTES_MAX {
        return Err(UplinkError::ReadingTooLarge {
            len: reading.len(),
            max: SIGNED_READING_BYTES_MAX,
        });
    }
    Ok((reading, rest))
}

/// Bytes of the shortest varint (LEB128) encoding of `value`.
fn varint_len(value: usize) -> usize {
    let mut len = 1;
    let mut rest = value >> 7;
    while rest != 0 {
        len += 1;
        rest >>= 7;
    }
    len
}

/// Builds an uplink message in a caller-provided buffer without allocating.
#[derive(Debug)]
pub struct UplinkWriter<'b> {
    buf: &'b mut [u8],
    len: usize,
    count: usize,
}

impl<'b> UplinkWriter<'b> {
    /// Starts a backlog message in `buf` (at most `UPLINK_BYTES_MAX` of it is used).
    pub fn backlog(buf: &'b mut [u8]) -> Result<Self, UplinkError> {
        if buf.len() < 2 {
            return Err(UplinkError::Full);
        }
        buf[0] = UplinkKind::Backlog as u8;
        buf[1] = 0;
        Ok(Self {
            buf,
            len: 2,
            count: 0,
        })
    }

    /// Writes a single-reading message into `buf` and returns its bytes.
    pub fn single<'o>(buf: &'o mut [u8], signed_reading: &[u8]) -> Result<&'o [u8], UplinkError> {
        let len = 1 + signed_reading.len();
        if signed_reading.len() > SIGNED_READING_BYTES_MAX {
            return Err(UplinkError::ReadingTooLarge {
                len: signed_reading.len(),
                max: SIGNED_READING_BYTES_MAX,
            });
        }
        let out = buf.get_mut(..len).ok_or(UplinkError::Full)?;
        out[0] = UplinkKind::Reading as u8;
        out[1..].copy_from_slice(signed_reading);
        Ok(out)
    }

    /// Appends one signed reading; `Full` when the count or the size limit would be passed
    /// (the message built so far stays valid).
    pub fn push(&mut self, signed_reading: &[u8]) -> Result<(), UplinkError> {
        if signed_reading.len() > SIGNED_READING_BYTES_MAX {
            return Err(UplinkError::ReadingTooLarge {
                len: signed_reading.len(),
                max: SIGNED_READING_BYTES_MAX,
            });
        }
        if self.count == BACKLOG_READINGS_MAX {
            return Err(UplinkError::Full);
        }
        let limit = self.buf.len().min(UPLINK_BYTES_MAX);
        let free = self.buf.get_mut(self.len..limit).ok_or(UplinkError::Full)?;
        let written = postcard::to_slice(signed_reading, free)
            .map_err(|_| UplinkError::Full)?
            .len();
        self.len += written;
        self.count += 1;
        // count <= BACKLOG_READINGS_MAX < 128.
        self.buf[1] = u8::try_from(self.count).map_err(|_| UplinkError::Full)?;
        Ok(())
    }

    /// Readings pushed so far.
    pub fn count(&self) -> usize {
        self.count
    }

    /// The finished message; `None` if no reading was pushed (an empty backlog is invalid).
    pub fn finish(self) -> Option<&'b [u8]> {
        if self.count == 0 {
            return None;
        }
        let len = self.len;
        Some(&self.buf[..len])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(bytes: &[u8], expected: Result<usize, UplinkError>) {
        assert_eq!(
            Uplink::decode(bytes).map(|u| u.len()),
            expected,
            "{bytes:?}"
        );
    }

    #[test]
    fn framing_errors_are_named() {
        check(&[], Err(UplinkError::Empty));
        check(&[0x07, 1, 2], Err(UplinkError::UnknownKind(0x07)));
        check(&[0x02], Err(UplinkError::Truncated));
        check(
            &[0x02, 0],
            Err(UplinkError::BadCount {
                count: 0,
                max: BACKLOG_READINGS_MAX,
            }),
        );
        check(
            &[0x02, 51],
            Err(UplinkError::BadCount {
                count: 51,
                max: BACKLOG_READINGS_MAX,
            }),
        );
        check(&[0x02, 2, 1, 0xaa], Err(UplinkError::Truncated));
        check(&[0x02, 1, 3, 0xaa], Err(UplinkError::Truncated));
        check(
            &[0x02, 1, 1, 0xaa, 0xbb],
            Err(UplinkError::TrailingBytes(1)),
        );
        check(
            &[0x02, 1, 0x81, 0x00, 0xaa],
            Err(UplinkError::NonCanonicalLength),
        );
        let mut oversized = [0u8; 4 + SIGNED_READING_BYTES_MAX + 1];
        oversized[..4].copy_from_slice(&[0x02, 1, 0x83, 0x01]);
        check(
            &oversized,
            Err(UplinkError::ReadingTooLarge {
                len: SIGNED_READING_BYTES_MAX + 1,
                max: SIGNED_READING_BYTES_MAX,
            }),
        );
        check(
            &[0u8; UPLINK_BYTES_MAX + 1],
            Err(UplinkError::TooLarge {
                len: UPLINK_BYTES_MAX + 1,
                max: UPLINK_BYTES_MAX,
            }),
        );
    }

    #[test]
    fn a_backlog_round_trips_in_order_and_stops_at_its_limit() {
        let mut buf = [0u8; UPLINK_BYTES_MAX];
        let mut writer = UplinkWriter::backlog(&mut buf).unwrap();
        let reading = [0x5au8; SIGNED_READING_BYTES_MAX];
        for i in 0..BACKLOG_READINGS_MAX {
            writer.push(&reading[..100 + i % 30]).unwrap();
        }
        assert_eq!(writer.push(&reading), Err(UplinkError::Full));
        let message = writer.finish().unwrap();
        let uplink = Uplink::decode(message).unwrap();
        assert_eq!(uplink.kind(), UplinkKind::Backlog);
        let lengths: heapless::Vec<usize, 64> = uplink.readings().map(<[u8]>::len).collect();
        assert_eq!(lengths.len(), BACKLOG_READINGS_MAX);
        for (i, len) in lengths.iter().enumerate() {
            assert_eq!(*len, 100 + i % 30);
        }
    }

    #[test]
    fn a_single_reading_message_carries_its_bytes_unchanged() {
        let mut buf = [0u8; 200];
        let message = UplinkWriter::single(&mut buf, &[9, 8, 7]).unwrap();
        let uplink = Uplink::decode(message).unwrap();
        assert_eq!(uplink.kind(), UplinkKind::Reading);
        let mut readings = uplink.readings();
        assert_eq!(readings.next(), Some(&[9u8, 8, 7][..]));
        assert_eq!(readings.next(), None);
    }
}
