//! Fuzzes the compressed form of GS1 Digital Link URIs: decompression never panics, and a
//! compressed link that decodes compresses again (plain and optimised) to a form that decodes
//! to the same link. The compressed path holds the key, its qualifiers and the data attributes
//! only (not a resolver's path prefix, nor the non-GS1 query parameters), so the links are
//! compared in their canonical form, which holds exactly those.
#![no_main]

use gs1::DigitalLink;
use gs1::digital_link::compression::{self, Sequences};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(segment) = core::str::from_utf8(data) else {
        return;
    };
    let _entries = compression::decompress(segment);
    let Ok(link) = DigitalLink::parse(&format!("https://id.gs1.org/{segment}")) else {
        return;
    };
    for sequences in [Sequences::Plain, Sequences::Optimised] {
        let path = link
            .compressed_path_with(sequences)
            .expect("a decompressed link compresses");
        let again = DigitalLink::parse(&format!("https://id.gs1.org{path}"))
            .expect("a compressed link decompresses");
        assert_eq!(
            again.to_canonical_uri(),
            link.to_canonical_uri(),
            "compress then decompress is the identity"
        );
    }
});
