//! Fuzzes tile and entry-bundle bytes: never panics; a parsed bundle re-encodes to its bytes.
#![no_main]

use ledger::tile::{BundleBuilder, parse_bundle, parse_tile};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = parse_tile(data);
    if let Ok(entries) = parse_bundle(data) {
        let mut builder = BundleBuilder::new();
        for entry in &entries {
            builder.push(entry).expect("a parsed entry fits");
        }
        assert_eq!(builder.as_bytes(), data, "bundle round trip");
        assert!(BundleBuilder::from_bytes(data.to_vec()).is_ok());
    }
});
