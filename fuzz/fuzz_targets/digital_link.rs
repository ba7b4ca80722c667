//! Fuzzes GS1 Digital Link and EPC URI parsing: never panics; whatever parses formats to a
//! canonical URI that parses back to the same key (a fixed point), and both URI forms of an
//! object reduce to the same canonical key.
#![no_main]

use gs1::{DigitalLink, EpcUri, canonical_epc};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = core::str::from_utf8(data) else {
        return;
    };
    if let Ok(link) = DigitalLink::parse(text) {
        let uri = link.to_uri();
        let again = DigitalLink::parse(&uri).expect("a formatted Digital Link parses");
        assert_eq!(
            again.to_uri(),
            uri,
            "Digital Link formatting is a fixed point"
        );
        assert_eq!(again.key(), link.key());
    }
    let (path, query) = match text.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (text, None),
    };
    if let Ok(link) = DigitalLink::parse_path_and_query(path, query) {
        let again = DigitalLink::parse(&link.to_uri()).expect("a formatted path parses");
        assert_eq!(again.key(), link.key());
    }
    if let Ok(epc) = EpcUri::parse(text) {
        assert_eq!(
            epc.to_string().parse::<EpcUri>().as_ref(),
            Ok(&epc),
            "EPC URI round trip"
        );
        let link = epc.to_digital_link();
        let back = EpcUri::from_digital_link(&link, epc.company_prefix_length())
            .expect("an EPC's Digital Link converts back");
        assert_eq!(back, epc);
    }
    if let Ok(key) = canonical_epc(text) {
        assert_eq!(
            canonical_epc(&key.to_string()).as_ref(),
            Ok(&key),
            "canonical key is stable"
        );
    }
});
