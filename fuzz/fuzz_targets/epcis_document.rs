//! Fuzz target: EPCIS 2.0 capture documents from outside. Parsing and validation must never
//! panic, and every accepted event must hash (twice to the same value).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(doc) = gs1::epcis::parse_document(data) {
        for event in doc.events() {
            let a = gs1::epcis::event_hash(event, doc.context());
            let b = gs1::epcis::event_hash(event, doc.context());
            assert_eq!(a, b);
            assert!(a.as_str().starts_with("ni:///sha-256;"));
        }
    }
});
