//! Fuzzes C2SP tlog-proof parsing: never panics; accepted files format back to themselves.
#![no_main]

use ledger::tlog_proof::TlogProof;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(proof) = TlogProof::parse(data) {
        assert_eq!(proof.to_text().as_bytes(), data, "proof file round trip");
    }
});
