//! Fuzzes checkpoint text parsing: never panics; accepted text formats back to itself.
#![no_main]

use ledger::checkpoint::Checkpoint;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = core::str::from_utf8(data) {
        if let Ok(checkpoint) = Checkpoint::parse(text) {
            assert_eq!(checkpoint.to_text(), text, "checkpoint text is canonical");
        }
    }
});
