//! Fuzzes cosignature lines: parsing a witness's `add-checkpoint` answer line and verifying it
//! against a fixed checkpoint never panics, and random bytes never verify.
#![no_main]

use ledger::cosignature::verify_cosignature;
use ledger::note::{KeyType, NoteSignature, NoteSigner, SigningKey};
use libfuzzer_sys::fuzz_target;

const CHECKPOINT: &str = "fuzz.example/log\n5\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";

fuzz_target!(|data: &[u8]| {
    let Ok(line) = core::str::from_utf8(data) else {
        return;
    };
    let Some(signature) = NoteSignature::parse_line(line) else {
        return;
    };
    let witness = NoteSigner::new(
        "fuzz.example/w",
        KeyType::CosignatureV1,
        SigningKey::from_bytes(&[2; 32]),
    )
    .expect("valid name");
    let verifier = witness.verifier();
    // Only a line copied from a real signature could verify; fuzzed bytes must not.
    let real = witness.sign(CHECKPOINT, 1).expect("sign");
    if signature != real {
        assert!(verify_cosignature(CHECKPOINT, &signature, &verifier).is_err());
    }
});
