//! Signed notes, checkpoints, cosignatures, witness policies and proof files.
//!
//! Provenance of the known-answer vector: the `PeterNeumann` key pair, text and signed note are
//! the example in the package documentation of Go's `golang.org/x/mod/sumdb/note`
//! (`note.go`, "# Example"). The checkpoint example text is from C2SP tlog-checkpoint; the
//! `cosignature/v1` message layout from C2SP tlog-cosignature; the policy example from C2SP
//! tlog-policy.

use ed25519_dalek::SigningKey;
use ledger::checkpoint::{Checkpoint, CheckpointError, OpenCheckpointError, open_checkpoint};
use ledger::cosignature::{cosign, verify_cosignature};
use ledger::merkle::{Hash, LeafIndex, TreeSize, leaf_hash};
use ledger::note::{
    KeyError, KeyType, Note, NoteError, NoteSigner, NoteVerifier, cosignature_message, open_note,
    sign_note,
};
use ledger::policy::{Policy, PolicyCheckError, PolicyError};
use ledger::tlog_proof::{TlogProof, TlogProofError};

const GO_SKEY: &str =
    "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
const GO_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
const GO_TEXT: &str = "If you think cryptography is the answer to your problem,\n\
                       then you don't know what your problem is.\n";
const GO_SIGNED: &str = "If you think cryptography is the answer to your problem,\n\
    then you don't know what your problem is.\n\
    \n\
    \u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";

fn signer(name: &str, key_type: KeyType, seed: u8) -> NoteSigner {
    NoteSigner::new(name, key_type, SigningKey::from_bytes(&[seed; 32])).expect("valid name")
}

#[test]
fn go_note_example_is_reproduced_byte_for_byte() {
    let signer = NoteSigner::parse(GO_SKEY).unwrap();
    assert_eq!(signer.to_skey(), GO_SKEY);
    assert_eq!(signer.verifier().to_vkey(), GO_VKEY);
    assert_eq!(sign_note(GO_TEXT, &[&signer], 0).unwrap(), GO_SIGNED);
    let verifier = NoteVerifier::parse(GO_VKEY).unwrap();
    let opened = open_note(GO_SIGNED.as_bytes(), &[verifier]).unwrap();
    assert_eq!(opened.text, GO_TEXT);
    assert_eq!(opened.verified.len(), 1);
    assert_eq!(opened.verified[0].key_id, 0xc74f20a3);
}

#[test]
fn verifier_keys_reject_manglings() {
    assert_eq!(
        NoteVerifier::parse("PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"),
        Err(KeyError::HashMismatch)
    );
    assert_eq!(
        NoteVerifier::parse("PeterNeumann+c74f20a3"),
        Err(KeyError::Format)
    );
    assert_eq!(
        NoteVerifier::parse("Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"),
        Err(KeyError::Name)
    );
    assert_eq!(
        NoteVerifier::parse("PeterNeumann+c74f20a+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"),
        Err(KeyError::Hash)
    );
    // Unknown algorithm byte.
    assert_eq!(
        NoteVerifier::parse("PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"),
        Err(KeyError::Key)
    );
    assert!(matches!(
        NoteVerifier::parse_typed(GO_VKEY, KeyType::CosignatureV1),
        Err(KeyError::WrongType {
            expected: 4,
            found: 1
        })
    ));
}

#[test]
fn unknown_signers_are_ignored_and_known_bad_ones_reject_the_note() {
    let a = signer("a.example/log", KeyType::Ed25519, 1);
    let b = signer("b.example/log", KeyType::Ed25519, 2);
    let text = "hello\n";
    let signed = sign_note(text, &[&a, &b], 0).unwrap();
    let opened = open_note(signed.as_bytes(), &[a.verifier()]).unwrap();
    assert_eq!(opened.verified.len(), 1);
    assert_eq!(opened.unknown.len(), 1);
    assert_eq!(
        open_note(
            signed.as_bytes(),
            &[signer("c", KeyType::Ed25519, 3).verifier()]
        ),
        Err(NoteError::NoKnownSignature)
    );
    // Same name, other key: the key ID differs, so the signature is unknown, not bad.
    let imposter = signer("a.example/log", KeyType::Ed25519, 9);
    assert_eq!(
        open_note(signed.as_bytes(), &[imposter.verifier()]),
        Err(NoteError::NoKnownSignature)
    );
    // A known signature over other text is bad and rejects the whole note.
    let mut note = Note::parse(signed.as_bytes()).unwrap();
    note.text = String::from("hellO\n");
    assert_eq!(
        note.open(&[a.verifier(), b.verifier()]),
        Err(NoteError::BadSignature {
            name: String::from("a.example/log")
        })
    );
}

#[test]
fn malformed_notes_are_rejected() {
    let a = signer("a", KeyType::Ed25519, 1);
    let signed = sign_note("x\n", &[&a], 0).unwrap();
    for (bytes, why) in [
        (String::from("x\n\u{2014} a AAAA\n"), "no blank line"),
        (signed.replace('\u{2014}', "-"), "hyphen instead of em dash"),
        (signed.trim_end().to_string(), "no final newline"),
        (signed.replace("x\n", "x\u{7}\n"), "control character"),
        (format!("{signed}\n"), "blank line after signatures"),
        (
            signed.replace("\u{2014} a ", "\u{2014} a  "),
            "double space",
        ),
    ] {
        assert!(Note::parse(bytes.as_bytes()).is_err(), "{why}");
    }
    assert_eq!(Note::new("no newline"), Err(NoteError::Layout));
    let many = (0..65).map(|_| "\u{2014} a AAAAAAAA\n").collect::<String>();
    assert_eq!(
        Note::parse(format!("x\n\n{many}").as_bytes()),
        Err(NoteError::TooManySignatures)
    );
}

fn check_checkpoint_error(text: &str, want: CheckpointError) {
    assert_eq!(Checkpoint::parse(text), Err(want), "{text:?}");
}

#[test]
fn checkpoint_text_follows_c2sp() {
    let text =
        "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";
    let checkpoint = Checkpoint::parse(text).unwrap();
    assert_eq!(checkpoint.origin, "example.com/behind-the-sofa");
    assert_eq!(checkpoint.size, TreeSize(20_852_163));
    assert_eq!(checkpoint.to_text(), text);
    let with_ext = format!("{text}ext one\n");
    assert_eq!(
        Checkpoint::parse(&with_ext).unwrap().extensions,
        vec!["ext one"]
    );
    let root = "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=";
    check_checkpoint_error(&format!("o\n01\n{root}\n"), CheckpointError::Size);
    check_checkpoint_error(&format!("o\n-1\n{root}\n"), CheckpointError::Size);
    check_checkpoint_error(
        &format!("o\n18446744073709551616\n{root}\n"),
        CheckpointError::Size,
    );
    check_checkpoint_error("o\n1\nAAAA\n", CheckpointError::Root);
    check_checkpoint_error(&format!("o\n1\n{root}"), CheckpointError::Lines);
    check_checkpoint_error(&format!("o\n1\n{root}\n\n"), CheckpointError::Lines);
    check_checkpoint_error("o\n1\n", CheckpointError::Lines);
    assert!(
        Checkpoint::parse(&format!("o\n0\n{root}\n")).is_ok(),
        "empty tree is size 0"
    );
}

fn sample_checkpoint(origin: &str) -> Checkpoint {
    Checkpoint {
        origin: String::from(origin),
        size: TreeSize(42),
        root: leaf_hash(b"root"),
        extensions: vec![],
    }
}

#[test]
fn cosignature_message_and_layout_follow_c2sp() {
    let body =
        "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";
    assert_eq!(
        cosignature_message(body, 1_679_315_147),
        "cosignature/v1\ntime 1679315147\nexample.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    );
    let witness = signer("witness.example.com/w1", KeyType::CosignatureV1, 7);
    let line = cosign(body, &witness, 1_679_315_147).unwrap();
    // key ID is over name || "\n" || 0x04 || key.
    let public = SigningKey::from_bytes(&[7; 32]).verifying_key();
    assert_eq!(
        line.key_id,
        ledger::note::key_id(
            "witness.example.com/w1",
            KeyType::CosignatureV1,
            public.as_bytes()
        )
    );
    assert_eq!(line.signature.len(), 8 + 64);
    assert_eq!(&line.signature[..8], &1_679_315_147u64.to_be_bytes());
    let verifier = witness.verifier();
    assert_eq!(
        verify_cosignature(body, &line, &verifier),
        Ok(1_679_315_147)
    );
    // Changing the timestamp breaks the signature.
    let mut moved = line.clone();
    moved.signature[7] ^= 1;
    assert!(verify_cosignature(body, &moved, &verifier).is_err());
    // A note signer cannot cosign.
    assert!(cosign(body, &signer("log", KeyType::Ed25519, 1), 1).is_err());
    // Parsing the line back gives the same signature.
    let text_line = line.to_line();
    let parsed = ledger::note::NoteSignature::parse_line(text_line.trim_end_matches('\n')).unwrap();
    assert_eq!(parsed, line);
}

#[test]
fn signed_checkpoints_open_with_log_and_witness_keys() {
    let log = signer("agritrace.example/log", KeyType::Ed25519, 1);
    let w1 = signer("w1.example", KeyType::CosignatureV1, 2);
    let w2 = signer("w2.example", KeyType::CosignatureV1, 3);
    let checkpoint = sample_checkpoint("agritrace.example/log");
    let signed = checkpoint.sign(&log).unwrap();
    let mut note = Note::parse(signed.as_bytes()).unwrap();
    note.signatures.push(cosign(&note.text, &w1, 1000).unwrap());
    note.signatures.push(cosign(&note.text, &w2, 1001).unwrap());
    let bytes = note.to_text();
    let opened = open_checkpoint(
        bytes.as_bytes(),
        &log.verifier(),
        &[w1.verifier(), w2.verifier()],
    )
    .unwrap();
    assert_eq!(opened.checkpoint, checkpoint);
    assert_eq!(opened.cosignatures.len(), 2);
    assert_eq!(opened.cosignatures[1].timestamp, Some(1001));
    // Only witnesses: no log signature.
    let other_log = signer("agritrace.example/log", KeyType::Ed25519, 9);
    assert!(matches!(
        open_checkpoint(bytes.as_bytes(), &other_log.verifier(), &[w1.verifier()]),
        Err(OpenCheckpointError::NoLogSignature(_))
    ));
    // The log key's name must be the origin.
    let misnamed = signer("other.example/log", KeyType::Ed25519, 1);
    let signed_by_misnamed = checkpoint.sign(&misnamed).unwrap();
    assert!(matches!(
        open_checkpoint(signed_by_misnamed.as_bytes(), &misnamed.verifier(), &[]),
        Err(OpenCheckpointError::OriginMismatch { .. })
    ));
}

fn policy_text(log: &NoteSigner, witnesses: &[(&str, &NoteSigner)], extra: &str) -> String {
    let mut text = format!("# agencies\nlog {}\n", log.verifier().to_vkey());
    for (name, w) in witnesses {
        text.push_str(&format!(
            "witness {name}\t{} https://{name}.example/\n",
            w.verifier().to_vkey()
        ));
    }
    text.push_str(extra);
    text
}

#[test]
fn policy_quorum_is_k_of_n_over_verified_cosignatures() {
    let log = signer("agritrace.example/log", KeyType::Ed25519, 1);
    let agencies: Vec<NoteSigner> = (0..4)
        .map(|i| {
            signer(
                &format!("agency{i}.example/w"),
                KeyType::CosignatureV1,
                10 + i,
            )
        })
        .collect();
    let names = ["customs-A", "customs-B", "agriculture", "court"];
    let pairs: Vec<(&str, &NoteSigner)> = names.iter().copied().zip(agencies.iter()).collect();
    let text = policy_text(
        &log,
        &pairs,
        "group agencies 3 customs-A customs-B agriculture court\n  quorum agencies  \n",
    );
    let policy = Policy::parse(text.as_bytes()).unwrap();
    assert_eq!(policy.quorum_name(), "agencies");
    assert!(policy.quorum_met(&["customs-A", "court", "agriculture"]));
    assert!(!policy.quorum_met(&["customs-A", "court"]));

    let checkpoint = sample_checkpoint("agritrace.example/log");
    let mut note = Note::parse(checkpoint.sign(&log).unwrap().as_bytes()).unwrap();
    for agency in &agencies[..2] {
        note.signatures.push(cosign(&note.text, agency, 5).unwrap());
    }
    match policy.verify_checkpoint(note.to_text().as_bytes()) {
        Err(PolicyCheckError::QuorumNotMet { cosigned, needed }) => {
            assert_eq!(cosigned, vec!["customs-A", "customs-B"]);
            assert_eq!(needed, "agencies");
        }
        other => panic!("expected quorum failure, got {other:?}"),
    }
    note.signatures
        .push(cosign(&note.text, &agencies[3], 6).unwrap());
    let verdict = policy.verify_checkpoint(note.to_text().as_bytes()).unwrap();
    assert_eq!(verdict.cosigned.len(), 3);
    assert_eq!(verdict.log, "agritrace.example/log");
    // A forged cosignature by a known witness rejects the checkpoint outright.
    let mut forged = note.clone();
    forged.signatures[1].signature[20] ^= 1;
    assert!(matches!(
        policy.verify_checkpoint(forged.to_text().as_bytes()),
        Err(PolicyCheckError::Note(NoteError::BadSignature { .. }))
    ));
}

#[test]
fn nested_groups_and_quorum_none_follow_c2sp() {
    let log = signer("l", KeyType::Ed25519, 1);
    let ws: Vec<NoteSigner> = (0..6)
        .map(|i| signer(&format!("w{i}"), KeyType::CosignatureV1, 20 + i))
        .collect();
    let names = ["X1", "X2", "X3", "Y1", "Y2", "Y3"];
    let pairs: Vec<(&str, &NoteSigner)> = names.iter().copied().zip(ws.iter()).collect();
    let text = policy_text(
        &log,
        &pairs,
        "group X 2 X1 X2 X3\ngroup Y any Y1 Y2 Y3\ngroup XY all X Y\nquorum XY\n",
    );
    let policy = Policy::parse(text.as_bytes()).unwrap();
    assert!(policy.quorum_met(&["X1", "X3", "Y2"]));
    assert!(!policy.quorum_met(&["X1", "Y1", "Y2", "Y3"]));
    let none = Policy::parse(format!("log {}\nquorum none\n", log.verifier().to_vkey()).as_bytes())
        .unwrap();
    assert!(none.quorum_met(&[]));
}

#[test]
fn bad_policies_are_rejected_with_the_line() {
    let log = signer("l", KeyType::Ed25519, 1);
    let w = signer("w", KeyType::CosignatureV1, 2);
    let base = format!(
        "log {}\nwitness A {}\n",
        log.verifier().to_vkey(),
        w.verifier().to_vkey()
    );
    let cases: Vec<(String, PolicyError)> = vec![
        (
            format!("{base}group g 0 A\nquorum g\n"),
            PolicyError::Threshold { line: 3 },
        ),
        (
            format!("{base}group g 2 A\nquorum g\n"),
            PolicyError::Threshold { line: 3 },
        ),
        (
            format!("{base}group g 1 A A\nquorum g\n"),
            PolicyError::UnknownName {
                line: 3,
                name: "A".into(),
            },
        ),
        (
            format!("{base}group g 1 B\nquorum g\n"),
            PolicyError::UnknownName {
                line: 3,
                name: "B".into(),
            },
        ),
        (format!("{base}quorum A\nquorum A\n"), PolicyError::Quorum),
        (base.clone(), PolicyError::Quorum),
        (
            format!(
                "{base}witness A {}\nquorum A\n",
                signer("v", KeyType::CosignatureV1, 3).verifier().to_vkey()
            ),
            PolicyError::DuplicateName {
                line: 3,
                name: "A".into(),
            },
        ),
        (
            format!(
                "{base}witness none {}\nquorum A\n",
                signer("v", KeyType::CosignatureV1, 3).verifier().to_vkey()
            ),
            PolicyError::DuplicateName {
                line: 3,
                name: "none".into(),
            },
        ),
        (
            format!(
                "{base}witness B {}\nquorum A\n",
                signer("v", KeyType::CosignatureV1, 2).verifier().to_vkey()
            ),
            PolicyError::DuplicateKey { line: 3 },
        ),
        (
            format!("{base}frobnicate\nquorum A\n"),
            PolicyError::Malformed {
                line: 3,
                what: "unknown keyword",
            },
        ),
        (
            format!("log {}\nquorum none\n", w.verifier().to_vkey()),
            PolicyError::Key {
                line: 1,
                source: KeyError::WrongType {
                    expected: 1,
                    found: 4,
                },
            },
        ),
    ];
    for (text, want) in cases {
        assert_eq!(Policy::parse(text.as_bytes()), Err(want), "{text}");
    }
}

#[test]
fn tlog_proof_files_round_trip_and_reject_garbage() {
    let log = signer("agritrace.example/log", KeyType::Ed25519, 1);
    let checkpoint = sample_checkpoint("agritrace.example/log")
        .sign(&log)
        .unwrap();
    let proof = TlogProof {
        extra: Some(b"hello".to_vec()),
        index: LeafIndex(73_894),
        path: vec![leaf_hash(b"a"), leaf_hash(b"b")],
        checkpoint: checkpoint.clone(),
    };
    let text = proof.to_text();
    assert!(text.starts_with("c2sp.org/tlog-proof@v1\nextra aGVsbG8=\nindex 73894\n"));
    assert_eq!(TlogProof::parse(text.as_bytes()), Ok(proof.clone()));
    let no_extra = TlogProof {
        extra: None,
        path: vec![],
        ..proof
    };
    assert_eq!(
        TlogProof::parse(no_extra.to_text().as_bytes()),
        Ok(no_extra.clone())
    );
    let good = no_extra.to_text();
    assert_eq!(
        TlogProof::parse(good.replace("@v1", "@v2").as_bytes()),
        Err(TlogProofError::Header)
    );
    assert_eq!(
        TlogProof::parse(good.replace("index 73894", "index 073894").as_bytes()),
        Err(TlogProofError::Index)
    );
    let bad_hash = text.replace(&leaf_hash(b"a").to_base64(), "AAAA");
    assert_eq!(
        TlogProof::parse(bad_hash.as_bytes()),
        Err(TlogProofError::ProofLine { line: 4 })
    );
    assert_eq!(
        TlogProof::parse(
            format!(
                "c2sp.org/tlog-proof@v1\nindex 1\n{}\n",
                Hash::default().to_base64()
            )
            .as_bytes()
        ),
        Err(TlogProofError::Checkpoint)
    );
}
