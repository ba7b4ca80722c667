//! Fuzzes evidence bundle parsing and verification (`agritrace/evidence-bundle/v1`): never
//! panics; an accepted file formats back to exactly its bytes (one spelling per bundle); and
//! verification runs on whatever parses, under its own policy, without panicking (a failure is
//! a value naming the item), and the report renders in both languages and as HTML.
#![no_main]

use agritrace_verify::evidence::EvidenceBundle;
use agritrace_verify::evidence::report::{Lang, render_html, render_text};
use agritrace_verify::evidence::verify::{Trust, verify_bundle};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(bundle) = EvidenceBundle::parse(data) else {
        return;
    };
    assert_eq!(
        bundle.to_text().as_bytes(),
        data,
        "evidence bundle round trip"
    );
    let report = verify_bundle(&bundle, &Trust::BundlePolicy, &mut |_| {});
    for lang in [Lang::En, Lang::Zh] {
        let _text = render_text(&report, lang);
        let _html = render_html(&report, lang);
    }
});
