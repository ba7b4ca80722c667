//! Fuzzes reading proof parsing (`agritrace/reading-proof/v1`): never panics; an accepted
//! file formats back to exactly its bytes (one spelling per proof); and the verification
//! steps run on whatever parses without panicking (a failure is a value naming its step).
#![no_main]

use agritrace_verify::{ReadingProof, Steps, check_reading_proof};
use ledger::note::{KeyType, NoteVerifier};
use ledger::policy::Policy;
use libfuzzer_sys::fuzz_target;
use protocol::VerifyingKey;

fuzz_target!(|data: &[u8]| {
    let Ok(proof) = ReadingProof::parse(data) else {
        return;
    };
    assert_eq!(proof.to_text().as_bytes(), data, "reading proof round trip");
    // A fixed key (RFC 8032 §7.1 test 1, whose secret is public) as log and device key, so a
    // seed signed with it can reach every step.
    let Ok(key) = VerifyingKey::from_bytes(&[
        0xd7, 0x5a, 0x98, 0x01, 0x82, 0xb1, 0x0a, 0xb7, 0xd5, 0x4b, 0xfe, 0xd3, 0xc9, 0x64, 0x07,
        0x3a, 0x0e, 0xe1, 0x72, 0xf3, 0xda, 0xa6, 0x23, 0x25, 0xaf, 0x02, 0x1a, 0x68, 0xf7, 0x07,
        0x51, 0x1a,
    ]) else {
        return;
    };
    let Ok(log) = NoteVerifier::new("agritrace.fuzz/log", KeyType::Ed25519, key) else {
        return;
    };
    let Ok(policy) = Policy::from_keys(log, Vec::new(), None) else {
        return;
    };
    let mut steps = Steps::new();
    let _verdict = check_reading_proof(&proof, &policy, Some(&key), &mut steps);
});
