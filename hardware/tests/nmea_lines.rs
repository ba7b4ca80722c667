//! Table tests of NMEA sentence framing and decoding (`NmeaLineReader`, `parse_sentence`).
//!
//! Known-answer sentences: the GGA/RMC pair at 09:27:50 is the example of gpsd's "NMEA Revealed"
//! (GGA and RMC sections); the 12:35:19 GGA is the long-standing example of the NMEA 0183 GGA
//! description on gpsinformation.org. Their checksums are as published. The u-blox-style lines
//! (`GN` talker, no-fix forms) are written here, checksums computed by hand with XOR.

use hardware::{NmeaError, NmeaLineReader, Position, SentenceOutcome, gnss::parse_sentence};

fn fix(lat_e7: i32, lon_e7: i32) -> Result<SentenceOutcome, NmeaError> {
    Ok(SentenceOutcome::Fix(Position { lat_e7, lon_e7 }))
}

fn check(line: &str, expected: Result<SentenceOutcome, NmeaError>) {
    assert_eq!(
        parse_sentence(line.as_bytes()),
        expected,
        "sentence {line:?}"
    );
}

#[test]
fn decodes_fixes_from_gga_and_rmc() {
    // 53°21.6802' N = 53.361336667°, 6°30.3372' W = -6.50562°.
    check(
        "$GPGGA,092750.000,5321.6802,N,00630.3372,W,1,8,1.03,61.7,M,55.2,M,,*76",
        fix(533_613_367, -65_056_200),
    );
    check(
        "$GPRMC,092750.000,A,5321.6802,N,00630.3372,W,0.02,31.66,280511,,,A*43",
        fix(533_613_367, -65_056_200),
    );
    // 48°07.038' N = 48.1173°, 11°31.000' E = 11.516666667°.
    check(
        "$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*47",
        fix(481_173_000, 115_166_667),
    );
    // NMEA 4.11 RMC with the navigational status field, GN talker.
    check(
        "$GNRMC,083559.00,A,4717.11437,N,00833.91522,E,0.004,77.52,091202,,,A,V*33",
        fix(472_852_395, 85_652_537),
    );
}

#[test]
fn reports_no_fix_when_the_receiver_has_none() {
    check(
        "$GNGGA,001043.00,,,,,0,00,99.99,,,,,,*7E",
        Ok(SentenceOutcome::NoFix),
    );
    check(
        "$GNRMC,001043.00,V,,,,,,,010725,,,N,V*1E",
        Ok(SentenceOutcome::NoFix),
    );
}

#[test]
fn ignores_valid_sentences_of_other_types() {
    check(
        "$GPGSV,3,1,10,20,78,331,45,01,59,235,47,22,41,069,,13,32,252,45*70",
        Ok(SentenceOutcome::Ignored),
    );
    check(
        "$GNTXT,01,01,02,u-blox AG - www.u-blox.com*4E",
        Ok(SentenceOutcome::Ignored),
    );
}

#[test]
fn rejects_bad_checksums() {
    check(
        "$GPGGA,092750.000,5321.6802,N,00630.3372,W,1,8,1.03,61.7,M,55.2,M,,*77",
        Err(NmeaError::ChecksumMismatch {
            calculated: 0x76,
            found: 0x77,
        }),
    );
    // One flipped digit in the latitude changes the computed checksum.
    check(
        "$GPRMC,092750.000,A,5321.6812,N,00630.3372,W,0.02,31.66,280511,,,A*43",
        Err(NmeaError::ChecksumMismatch {
            calculated: 0x42,
            found: 0x43,
        }),
    );
    // A bad checksum on a type the logger ignores is still an error.
    check(
        "$GNTXT,01,01,02,u-blox AG - www.u-blox.com*4F",
        Err(NmeaError::ChecksumMismatch {
            calculated: 0x4E,
            found: 0x4F,
        }),
    );
}

#[test]
fn rejects_garbage_and_malformed_sentences() {
    check(
        "$GPGGA,092750.000,5321.6802,N,00630.3372,W,1,8,1.03,61.7,M,55.2,M,,",
        Err(NmeaError::Malformed),
    );
    check(
        "$GPGGA,092750.000,5321.6802,N,00630.3372,W,1,8,1.03,61.7,M,55.2,M,,*ZZ",
        Err(NmeaError::Malformed),
    );
    check("$", Err(NmeaError::Malformed));
    check("$GP", Err(NmeaError::Malformed));
    check("$XXXXX,1,2,3*00", Err(NmeaError::Malformed));
    check("hello world", Err(NmeaError::Malformed));
    check("$GPGGA,\u{e9}*00", Err(NmeaError::NotAscii));
    assert_eq!(
        parse_sentence(&[b'$', 0xFF, 0xFE, b'*', b'0', b'0']),
        Err(NmeaError::NotAscii)
    );
}

#[test]
fn rejects_out_of_range_coordinates_with_a_valid_checksum() {
    // 95°N: decodes, but is no place on Earth.
    let body = "GPGGA,123519,9507.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,";
    let sum = body.bytes().fold(0u8, |acc, b| acc ^ b);
    let line = format!("${body}*{sum:02X}");
    let outcome = parse_sentence(line.as_bytes());
    assert!(
        matches!(outcome, Err(NmeaError::OutOfRange)),
        "got {outcome:?}"
    );
}

/// Feeds `bytes` and collects every outcome.
fn feed(reader: &mut NmeaLineReader, bytes: &[u8]) -> Vec<Result<SentenceOutcome, NmeaError>> {
    bytes.iter().filter_map(|&b| reader.push(b)).collect()
}

#[test]
fn reader_frames_sentences_between_dollar_and_line_end() {
    let mut reader = NmeaLineReader::new();
    let stream = b"noise before\r\n$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*47\r\n$GNGGA,001043.00,,,,,0,00,99.99,,,,,,*7E\n";
    assert_eq!(
        feed(&mut reader, stream),
        vec![fix(481_173_000, 115_166_667), Ok(SentenceOutcome::NoFix)]
    );
}

#[test]
fn reader_reports_a_sentence_cut_short_by_the_next_dollar() {
    let mut reader = NmeaLineReader::new();
    let stream = b"$GPGGA,123519,4807.0$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*47\r\n";
    assert_eq!(
        feed(&mut reader, stream),
        vec![Err(NmeaError::Truncated), fix(481_173_000, 115_166_667)]
    );
}

#[test]
fn reader_drops_overlong_lines_once_and_resynchronises() {
    let mut reader = NmeaLineReader::new();
    let mut stream = b"$GPGGA,".to_vec();
    stream.extend(std::iter::repeat_n(b'1', 300));
    stream.extend_from_slice(b"\r\n$GNGGA,001043.00,,,,,0,00,99.99,,,,,,*7E\r\n");
    assert_eq!(
        feed(&mut reader, &stream),
        vec![Err(NmeaError::LineTooLong), Ok(SentenceOutcome::NoFix)]
    );
}

#[test]
fn reader_accepts_a_sentence_of_exactly_the_maximum_length() {
    let max = hardware::gnss::NMEA_LINE_MAX;
    // $GNTXT,01,01,02,<text>*hh is 19 bytes plus the text.
    let text = "x".repeat(max - 19);
    let body = format!("GNTXT,01,01,02,{text}");
    let sum = body.bytes().fold(0u8, |acc, b| acc ^ b);
    let line = format!("${body}*{sum:02X}\r\n");
    assert_eq!(line.len() - 2, max);
    let mut reader = NmeaLineReader::new();
    assert_eq!(
        feed(&mut reader, line.as_bytes()),
        vec![Ok(SentenceOutcome::Ignored)]
    );
    // One byte more is too long.
    let body = format!("GNTXT,01,01,02,{text}x");
    let sum = body.bytes().fold(0u8, |acc, b| acc ^ b);
    let line = format!("${body}*{sum:02X}\r\n");
    assert_eq!(
        feed(&mut reader, line.as_bytes()),
        vec![Err(NmeaError::LineTooLong)]
    );
}

#[test]
fn reader_reset_forgets_the_partial_sentence() {
    let mut reader = NmeaLineReader::new();
    assert!(feed(&mut reader, b"$GPGGA,1235").is_empty());
    reader.reset();
    // The rest of the broken sentence is ignored until the next `$`.
    assert!(feed(&mut reader, b"19,4807.038,N*47\r\n").is_empty());
    assert_eq!(
        feed(&mut reader, b"$GNGGA,001043.00,,,,,0,00,99.99,,,,,,*7E\r\n"),
        vec![Ok(SentenceOutcome::NoFix)]
    );
}
