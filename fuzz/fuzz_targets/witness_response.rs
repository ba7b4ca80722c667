//! Fuzzes the log's parsers of witness answers (C2SP tlog-witness): cosignature lines of a
//! `200` and the size of a `409`. Any bytes must parse or be refused without panicking; an
//! accepted size must be written back exactly as received.
#![no_main]

use ledger::tlog_witness::{parse_cosignature_response, parse_size_response};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(lines) = parse_cosignature_response(data) {
        for line in lines {
            let text = line.to_line();
            let reparsed = ledger::note::NoteSignature::parse_line(text.trim_end_matches('\n'));
            assert_eq!(reparsed, Some(line));
        }
    }
    if let Ok(size) = parse_size_response(data) {
        assert_eq!(format!("{size}\n").as_bytes(), data);
    }
});
