//! Property tests: no byte stream makes the GNSS line reader or receiver panic, and a good
//! sentence after any garbage is still found.

use embedded_hal_nb::{nb, serial};
use hardware::{GnssReceiver, NmeaLineReader, Position, SentenceOutcome, gnss::parse_sentence};
use proptest::prelude::*;

const GGA: &[u8] = b"$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*47\r\n";

/// Bytes biased towards NMEA's alphabet so the parser's deeper paths are reached.
fn nmea_ish_bytes(max_len: usize) -> impl Strategy<Value = Vec<u8>> {
    let alphabet = b"$GPGNGGARMCTXTGSV,.*0123456789ABCDEFNSEWAVM-\r\n".to_vec();
    prop::collection::vec(
        prop_oneof![any::<u8>(), prop::sample::select(alphabet)],
        0..max_len,
    )
}

/// A sentence body of NMEA-ish fields with a *correct* checksum: reaches the field decoders.
fn checksummed_sentence() -> impl Strategy<Value = Vec<u8>> {
    let types = prop::sample::select(vec!["GPGGA", "GNGGA", "GPRMC", "GNRMC", "GPGSV", "GNTXT"]);
    let field_chars = b"0123456789.-NSEWAVM".to_vec();
    let field = prop::collection::vec(prop::sample::select(field_chars), 0..12);
    (types, prop::collection::vec(field, 0..16)).prop_map(|(kind, fields)| {
        let mut body = kind.as_bytes().to_vec();
        for field in fields {
            body.push(b',');
            body.extend(field);
        }
        let sum = body.iter().fold(0u8, |acc, b| acc ^ b);
        let mut line = b"$".to_vec();
        line.extend(body);
        line.extend(format!("*{sum:02X}").bytes());
        line
    })
}

/// A UART replaying bytes, with errors where the script says.
struct ScriptUart(std::collections::VecDeque<Result<u8, serial::ErrorKind>>);

impl serial::ErrorType for ScriptUart {
    type Error = serial::ErrorKind;
}

impl serial::Read<u8> for ScriptUart {
    fn read(&mut self) -> nb::Result<u8, Self::Error> {
        match self.0.pop_front() {
            Some(Ok(byte)) => Ok(byte),
            Some(Err(error)) => Err(nb::Error::Other(error)),
            None => Err(nb::Error::WouldBlock),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic_the_line_reader(bytes in nmea_ish_bytes(800)) {
        let mut reader = NmeaLineReader::new();
        for byte in bytes {
            let _ = reader.push(byte);
        }
    }

    #[test]
    fn arbitrary_lines_never_panic_the_sentence_parser(bytes in nmea_ish_bytes(140)) {
        let _ = parse_sentence(&bytes);
    }

    #[test]
    fn checksummed_nonsense_never_panics_and_never_yields_an_impossible_position(
        line in checksummed_sentence()
    ) {
        if let Ok(SentenceOutcome::Fix(p)) = parse_sentence(&line) {
            prop_assert!(Position::from_e7(p.lat_e7, p.lon_e7).is_some());
        }
    }

    #[test]
    fn a_good_sentence_after_garbage_is_still_decoded(garbage in nmea_ish_bytes(300)) {
        let mut reader = NmeaLineReader::new();
        let mut stream = garbage;
        stream.extend_from_slice(b"\r\n");
        stream.extend_from_slice(GGA);
        let last = stream.iter().filter_map(|&b| reader.push(b)).last();
        prop_assert_eq!(
            last,
            Some(Ok(SentenceOutcome::Fix(Position { lat_e7: 481_173_000, lon_e7: 115_166_667 })))
        );
    }

    #[test]
    fn the_receiver_survives_any_mix_of_bytes_and_uart_errors(
        script in prop::collection::vec(
            prop_oneof![
                9 => any::<u8>().prop_map(Ok),
                1 => prop::sample::select(vec![
                    serial::ErrorKind::Overrun,
                    serial::ErrorKind::FrameFormat,
                    serial::ErrorKind::Parity,
                    serial::ErrorKind::Noise,
                ]).prop_map(Err),
            ],
            0..3000,
        )
    ) {
        let total = script.len();
        let mut receiver = GnssReceiver::new(ScriptUart(script.into()));
        let mut read = 0usize;
        // Each poll reads a bounded number of bytes; every poll makes progress until empty.
        for _ in 0..=total {
            match receiver.poll() {
                Ok(poll) => {
                    prop_assert!(poll.bytes <= hardware::gnss::POLL_BYTES_MAX);
                    read += usize::from(poll.bytes);
                    if poll.bytes == 0 {
                        break;
                    }
                }
                Err(_) => read += 1,
            }
        }
        prop_assert!(read <= total);
        let _ = receiver.take_fix();
    }
}
