//! Fuzzes the witness's `add-checkpoint` request parser (C2SP tlog-witness): any bytes must
//! parse or be refused without panicking, and an accepted request must survive a round trip
//! through the log-side body formatter.
#![no_main]

use ledger::tlog_witness::{add_checkpoint_body, parse_request};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(request) = parse_request(data) else {
        return;
    };
    assert!(request.proof.len() <= ledger::tlog_witness::PROOF_LINES_MAX);
    if let Ok(note) = core::str::from_utf8(&request.note) {
        let body = add_checkpoint_body(request.old, &request.proof, note);
        let again = parse_request(body.as_bytes()).expect("a formatted body parses");
        assert_eq!(again, request);
    }
});
