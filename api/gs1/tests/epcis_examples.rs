//! Every EPCIS 2.0 example document under `tests/fixtures/epcis/` parses, validates and
//! hashes; where a `<name>.hashes` file sits next to a document, every event's canonical hash
//! equals the expected one, in order (`hash-vectors/`: GS1's published event-hash vectors;
//! `standard/`: hashes GS1's reference implementation computes for the standard's examples).
//! Sources are listed in `tests/fixtures/epcis/README.md`.

use std::path::{Path, PathBuf};

use gs1::epcis::{event_hash, parse_document, pre_hash_string};

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/epcis")
}

fn documents(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("fixture directory is readable") {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("json" | "jsonld")
            ) {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

#[test]
fn every_example_document_parses_validates_and_hashes() {
    let docs = documents(&fixture_dir());
    assert!(
        docs.len() >= 10,
        "expected the example documents, found {}",
        docs.len()
    );
    let mut failures = Vec::new();
    let mut events = 0;
    for path in &docs {
        let bytes = std::fs::read(path).expect("fixture is readable");
        match parse_document(&bytes) {
            Ok(doc) => {
                assert!(!doc.events().is_empty(), "{}: no events", path.display());
                for hash in doc.event_hashes() {
                    assert!(hash.as_str().starts_with("ni:///sha-256;"));
                    assert!(hash.as_str().ends_with("?ver=CBV2.0"));
                    events += 1;
                }
            }
            Err(e) => failures.push(format!("{}: {e}", path.display())),
        }
    }
    assert!(
        failures.is_empty(),
        "documents refused:\n{}",
        failures.join("\n")
    );
    assert!(events >= docs.len());
}

#[test]
fn published_gs1_event_hash_vectors_match() {
    let mut checked = 0;
    let mut mismatches = Vec::new();
    for path in documents(&fixture_dir()) {
        let Ok(expected) = std::fs::read_to_string(path.with_extension("hashes")) else {
            assert!(
                !path.starts_with(fixture_dir().join("hash-vectors")),
                "{} has no .hashes file",
                path.display()
            );
            continue;
        };
        let expected: Vec<&str> = expected.lines().filter(|l| !l.is_empty()).collect();
        let doc =
            parse_document(&std::fs::read(&path).expect("readable")).expect("vector validates");
        assert_eq!(
            doc.events().len(),
            expected.len(),
            "{}: event count",
            path.display()
        );
        for (i, (event, want)) in doc.events().iter().zip(&expected).enumerate() {
            let got = event_hash(event, doc.context());
            if got.as_str() != *want {
                mismatches.push(format!(
                    "{} event {i}: got {got}, want {want}\n  pre-hash: {}",
                    path.display(),
                    pre_hash_string(event, doc.context())
                ));
            }
            checked += 1;
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of {checked} vectors differ:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
    assert!(checked >= 25, "only {checked} vectors checked");
}
