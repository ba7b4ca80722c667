//! Fuzzes entry decoding: never panics; decoding is canonical (re-encoding gives the input).
#![no_main]

use ledger::entry::Entry;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(entry) = Entry::decode(data) {
        assert_eq!(
            entry.encode().expect("decoded entries encode"),
            data,
            "canonical encoding"
        );
    }
});
