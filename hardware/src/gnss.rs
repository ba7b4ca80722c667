//! A GNSS receiver speaking NMEA 0183 over a UART.
//!
//! Bytes arrive one at a time through the non-blocking `embedded_hal_nb::serial::Read`. The
//! [`NmeaLineReader`] frames them into sentences (`$` ... `\r\n`, at most
//! [`NMEA_LINE_MAX`] bytes as the `nmea` crate allows, after NMEA 0183 v3.01 §5.3's 82 plus
//! room for receivers that exceed it) and hands each one to `nmea::parse_bytes`, which checks the
//! XOR checksum and decodes GGA and RMC. Anything else — a bad checksum, a truncated or
//! overlong line, non-ASCII noise — becomes an [`NmeaError`] and the reader resynchronises on the
//! next `$`; nothing in here can panic on input.
//!
//! [`GnssReceiver::poll`] drains whatever the UART holds (bounded by [`POLL_BYTES_MAX`] per call
//! so a chattering line cannot starve the caller) and remembers the last thing the receiver said
//! about its fix. [`GnssReceiver::take_fix`] hands that to the sample and forgets it, so a sample
//! only carries a position the receiver reported since the previous sample.

use embedded_hal_nb::nb;
use embedded_hal_nb::serial::{self, Read};
use heapless::Vec;
use nmea::{
    ParseResult,
    sentences::{FixType, rmc::RmcStatusOfFix},
};

use crate::sample::Position;

/// Longest sentence accepted, `$` included, line ending excluded (the `nmea` crate's limit).
pub const NMEA_LINE_MAX: usize = nmea::SENTENCE_MAX_LEN;

/// Most bytes one [`GnssReceiver::poll`] reads before returning.
pub const POLL_BYTES_MAX: u16 = 1024;

/// Why one NMEA sentence was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum NmeaError {
    /// The line grew past [`NMEA_LINE_MAX`] bytes without a line ending.
    #[error("NMEA line longer than {NMEA_LINE_MAX} bytes")]
    LineTooLong,
    /// A new `$` arrived before the previous sentence ended (bytes were lost on the line).
    #[error("NMEA sentence cut short by the start of the next one")]
    Truncated,
    /// The sentence holds bytes outside printable ASCII.
    #[error("NMEA sentence is not ASCII")]
    NotAscii,
    /// The XOR checksum after `*` does not match the sentence.
    #[error("NMEA checksum mismatch: sentence says {found:#04x}, content gives {calculated:#04x}")]
    ChecksumMismatch {
        /// Checksum computed over the received characters.
        calculated: u8,
        /// Checksum the sentence carried.
        found: u8,
    },
    /// The sentence does not follow the NMEA 0183 grammar for its type (missing `*hh`, bad field).
    #[error("malformed NMEA sentence")]
    Malformed,
    /// The sentence decoded, but its coordinates are outside WGS84 ranges.
    #[error("NMEA position out of range")]
    OutOfRange,
}

impl From<nmea::Error<'_>> for NmeaError {
    fn from(error: nmea::Error<'_>) -> Self {
        match error {
            nmea::Error::Utf8Decoding | nmea::Error::ASCII => Self::NotAscii,
            nmea::Error::ChecksumMismatch { calculated, found } => {
                Self::ChecksumMismatch { calculated, found }
            }
            nmea::Error::SentenceLength(_) => Self::LineTooLong,
            _ => Self::Malformed,
        }
    }
}

/// What a well-formed sentence said.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SentenceOutcome {
    /// A GGA or RMC with a valid fix at this position.
    Fix(Position),
    /// A GGA or RMC saying the receiver has no fix.
    NoFix,
    /// A valid sentence of a type the logger does not use (GSV, GSA, TXT, ...).
    Ignored,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// Waiting for a `$`.
    Hunting,
    /// Inside a sentence.
    InSentence,
    /// The sentence overflowed; dropping bytes until the next `$` or line end.
    Overlong,
}

/// Frames a byte stream into NMEA sentences and decodes them. No allocation, no panics.
#[derive(Debug, Clone)]
pub struct NmeaLineReader {
    line: Vec<u8, NMEA_LINE_MAX>,
    framing: Framing,
}

impl Default for NmeaLineReader {
    fn default() -> Self {
        Self::new()
    }
}

impl NmeaLineReader {
    /// A reader waiting for the start of a sentence.
    pub const fn new() -> Self {
        Self {
            line: Vec::new(),
            framing: Framing::Hunting,
        }
    }

    /// Drops any partial sentence (after a UART error, the bytes in flight are suspect).
    pub fn reset(&mut self) {
        self.line.clear();
        self.framing = Framing::Hunting;
    }

    /// Feeds one byte; returns the outcome when it completes (or breaks) a sentence.
    pub fn push(&mut self, byte: u8) -> Option<Result<SentenceOutcome, NmeaError>> {
        match (byte, self.framing) {
            (b'$', framing) => {
                let cut_short = framing == Framing::InSentence;
                self.line.clear();
                // Capacity is NMEA_LINE_MAX > 0 and the line was just cleared.
                let _ = self.line.push(b'$');
                self.framing = Framing::InSentence;
                cut_short.then_some(Err(NmeaError::Truncated))
            }
            (b'\r' | b'\n', Framing::InSentence) => {
                self.framing = Framing::Hunting;
                let outcome = parse_sentence(&self.line);
                self.line.clear();
                Some(outcome)
            }
            (b'\r' | b'\n', Framing::Overlong) => {
                self.framing = Framing::Hunting;
                None
            }
            (_, Framing::InSentence) => {
                if self.line.push(byte).is_err() {
                    self.line.clear();
                    self.framing = Framing::Overlong;
                    return Some(Err(NmeaError::LineTooLong));
                }
                None
            }
            (_, Framing::Hunting | Framing::Overlong) => None,
        }
    }
}

/// Decodes one sentence (`$` included, line ending excluded).
pub fn parse_sentence(line: &[u8]) -> Result<SentenceOutcome, NmeaError> {
    match nmea::parse_bytes(line) {
        Ok(ParseResult::GGA(gga)) => {
            let valid = !matches!(gga.fix_type, None | Some(FixType::Invalid));
            fix_outcome(valid, gga.latitude, gga.longitude)
        }
        Ok(ParseResult::RMC(rmc)) => {
            let valid = rmc.status_of_fix != RmcStatusOfFix::Invalid;
            fix_outcome(valid, rmc.lat, rmc.lon)
        }
        Ok(_) => Ok(SentenceOutcome::Ignored),
        // A well-formed sentence of a type this build does not decode is normal traffic.
        Err(nmea::Error::Unsupported(_) | nmea::Error::DisabledSentence) => {
            Ok(SentenceOutcome::Ignored)
        }
        Err(error) => Err(NmeaError::from(error)),
    }
}

fn fix_outcome(
    valid: bool,
    lat: Option<f64>,
    lon: Option<f64>,
) -> Result<SentenceOutcome, NmeaError> {
    match (valid, lat, lon) {
        (true, Some(lat), Some(lon)) => Position::from_degrees(lat, lon)
            .map(SentenceOutcome::Fix)
            .ok_or(NmeaError::OutOfRange),
        // "Valid" without coordinates, or coordinates without a valid fix: not a position.
        _ => Ok(SentenceOutcome::NoFix),
    }
}

/// Why a GNSS poll stopped early.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum GnssError {
    /// The UART reported an error; the partial sentence was dropped, the next poll resumes.
    #[error("GNSS UART error: {0}")]
    Uart(serial::ErrorKind),
}

/// What one [`GnssReceiver::poll`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct GnssPoll {
    /// Bytes read from the UART.
    pub bytes: u16,
    /// Sentences decoded (fix, no fix or ignored type).
    pub sentences_accepted: u16,
    /// Sentences rejected.
    pub sentences_rejected: u16,
    /// Why the last rejected sentence was rejected.
    pub last_rejection: Option<NmeaError>,
}

/// Running totals since the receiver was created (wrapping counters, for diagnostics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct GnssStats {
    /// Sentences decoded.
    pub sentences_accepted: u32,
    /// Sentences rejected.
    pub sentences_rejected: u32,
    /// UART errors seen.
    pub uart_errors: u32,
    /// The last rejection.
    pub last_rejection: Option<NmeaError>,
}

/// A GNSS receiver on a UART.
#[derive(Debug)]
pub struct GnssReceiver<U> {
    uart: U,
    reader: NmeaLineReader,
    /// What the receiver said last about its fix since [`Self::take_fix`]: `None` = nothing.
    latest: Option<Option<Position>>,
    last_fix: Option<Position>,
    stats: GnssStats,
}

impl<U: Read<u8>> GnssReceiver<U> {
    /// A receiver on `uart`, with nothing heard yet.
    pub fn new(uart: U) -> Self {
        Self {
            uart,
            reader: NmeaLineReader::new(),
            latest: None,
            last_fix: None,
            stats: GnssStats::default(),
        }
    }

    /// Reads the bytes the UART has (at most [`POLL_BYTES_MAX`]) and decodes complete sentences.
    ///
    /// Rejected sentences are counted, not returned as errors: a noisy line must not stop the
    /// drain. A UART error drops the partial sentence and ends the poll with [`GnssError::Uart`];
    /// what was decoded before it is kept.
    pub fn poll(&mut self) -> Result<GnssPoll, GnssError> {
        let mut report = GnssPoll::default();
        while report.bytes < POLL_BYTES_MAX {
            let byte = match self.uart.read() {
                Ok(byte) => byte,
                Err(nb::Error::WouldBlock) => break,
                Err(nb::Error::Other(error)) => {
                    self.reader.reset();
                    self.stats.uart_errors = self.stats.uart_errors.wrapping_add(1);
                    return Err(GnssError::Uart(serial::Error::kind(&error)));
                }
            };
            report.bytes += 1;
            match self.reader.push(byte) {
                None => {}
                Some(Ok(outcome)) => {
                    report.sentences_accepted = report.sentences_accepted.saturating_add(1);
                    self.stats.sentences_accepted = self.stats.sentences_accepted.wrapping_add(1);
                    match outcome {
                        SentenceOutcome::Fix(position) => {
                            self.latest = Some(Some(position));
                            self.last_fix = Some(position);
                        }
                        SentenceOutcome::NoFix => self.latest = Some(None),
                        SentenceOutcome::Ignored => {}
                    }
                }
                Some(Err(rejection)) => {
                    report.sentences_rejected = report.sentences_rejected.saturating_add(1);
                    report.last_rejection = Some(rejection);
                    self.stats.sentences_rejected = self.stats.sentences_rejected.wrapping_add(1);
                    self.stats.last_rejection = Some(rejection);
                }
            }
        }
        Ok(report)
    }

    /// The position the receiver reported last since the previous call, if that report was a
    /// fix; forgets it.
    pub fn take_fix(&mut self) -> Option<Position> {
        self.latest.take().flatten()
    }

    /// The last valid fix ever received (it may be old).
    pub fn last_fix(&self) -> Option<Position> {
        self.last_fix
    }

    /// Running totals.
    pub fn stats(&self) -> GnssStats {
        self.stats
    }

    /// Gives the UART back.
    pub fn release(self) -> U {
        self.uart
    }
}
