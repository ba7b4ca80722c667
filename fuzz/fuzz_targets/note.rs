//! Fuzzes signed-note parsing and opening: never panics; a parsed note re-serialises to the
//! same bytes.
#![no_main]

use ledger::note::{KeyType, Note, NoteSigner, SigningKey};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(note) = Note::parse(data) {
        assert_eq!(note.to_text().as_bytes(), data, "parse/format round trip");
        let signer = NoteSigner::new(
            "fuzz.example/log",
            KeyType::Ed25519,
            SigningKey::from_bytes(&[1; 32]),
        )
        .expect("valid name");
        let _ = note.open(&[signer.verifier()]);
    }
});
