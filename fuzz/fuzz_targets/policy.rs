//! Fuzzes tlog-policy parsing and quorum evaluation: never panics.
#![no_main]

use ledger::policy::Policy;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(policy) = Policy::parse(data) {
        let names: Vec<&str> = policy.witnesses().map(|(name, _)| name).collect();
        // Every witness cosigning always meets the quorum.
        assert!(policy.quorum_met(&names));
    }
});
