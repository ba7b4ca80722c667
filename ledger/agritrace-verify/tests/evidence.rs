//! Evidence bundles built from real logs and checked by the verifier (library and binary): the
//! real sequencer with two real witnesses over loopback HTTP, and an in-memory log for the
//! variants a real node would refuse to write (a forked log, a revoked key still used).
//!
//! The story: two reefer loggers register their keys, a plant-health authority and a chamber of
//! commerce register issuer keys, a batch of readings, a shipping event and two certificates
//! are logged (first checkpoint); then logger A rotates its key, a second batch is logged, the
//! certificate of origin is revoked, the phytosanitary certificate is superseded by a new
//! version, and logger B's key is revoked (second checkpoint).

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use agritrace_verify::evidence::report::{Lang, render_html, render_text};
use agritrace_verify::evidence::verify::{
    CheckName, DocumentStatus, Item, Report, Trust, verify_bundle, verify_file,
};
use agritrace_verify::evidence::{BundleCheckpoint, BundleEntry, EvidenceBundle, Subject};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use gs1::epcis::{event_hash, parse_document};
use ledger::entry::{Entry, EpcisEventType, Replaces, Token, TraceEvent, salted_commitment};
use ledger::merkle::{LeafIndex, TreeSize, empty_root};
use ledger::sequencer::{self, SequencerConfig};
use ledger::storage::memory::MemoryStorage;
use ledger::witness::{Witness, WitnessedLog};
use ledger::witness_client::{WitnessClient, WitnessEndpoint};
use protocol::{DeviceId, KeyEpoch};
use support::bundle::{
    Batch, Document, MemoryLog, ORIGIN, anchor, batch, bundled_document, bundled_event, log_key,
    policy, register_device, register_issuer, reseal, revoke_device, rotate_device, sealed,
    signed_reading, witness_key,
};
use support::stdout;

const DEVICE_A: DeviceId = DeviceId([0xa1, 0, 0, 0, 0, 0, 0, 1]);
const DEVICE_B: DeviceId = DeviceId([0xb2, 0, 0, 0, 0, 0, 0, 2]);
const PLANT_HEALTH: &str = "cn-plant-health";
const CHAMBER: &str = "cn-chamber-of-commerce";
const T0: u64 = 1_780_000_000_000;

const EVENT_JSON: &str = r#"{"@context":["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld",{"example":"https://ns.example.com/epcis/"}],"type":"ObjectEvent","eventTime":"2026-05-28T08:00:00.000+08:00","eventTimeZoneOffset":"+08:00","epcList":["urn:epc:id:sgtin:0614141.107346.2018"],"action":"OBSERVE","bizStep":"shipping","disposition":"in_transit","readPoint":{"id":"urn:epc:id:sgln:0614141.00777.0"},"example:reefer":"TCNU1234567"}"#;

/// The log of the story and where its parts are.
struct Story {
    log: MemoryLog,
    /// Entries covered by the first checkpoint.
    first_size: usize,
    batches: Vec<(LeafIndex, Batch, Vec<usize>)>,
    event: (LeafIndex, [u8; 32]),
    documents: Vec<(LeafIndex, Document)>,
}

fn document(n: u8, document_type: &str, number: &str) -> Document {
    Document {
        salt: [n; 32],
        document_type: document_type.to_owned(),
        number: number.to_owned(),
        content: format!("%PDF-1.7 {document_type} {number} <content {n}>").into_bytes(),
    }
}

fn trace_event(salt: &[u8; 32]) -> Entry {
    let document = parse_document(EVENT_JSON.as_bytes()).expect("a valid event");
    let event = &document.events()[0];
    let hash = event_hash(event, document.context());
    Entry::TraceEvent(TraceEvent {
        commitment: salted_commitment(salt, hash.digest()),
        event_type: EpcisEventType::Object,
        biz_step: Token::new("shipping").expect("token"),
        // 2026-05-28T00:00:00Z
        event_time_ms: 1_779_926_400_000,
    })
}

fn story() -> Story {
    let mut log = MemoryLog::default();
    log.push(&register_device(DEVICE_A));
    log.push(&register_device(DEVICE_B));
    log.push(&register_issuer(PLANT_HEALTH));
    log.push(&register_issuer(CHAMBER));
    let first: Vec<Vec<u8>> = (0..12u64)
        .map(|i| {
            let device = if i % 3 == 2 { DEVICE_B } else { DEVICE_A };
            signed_reading(device, KeyEpoch(1), i, T0 + 60_000 * i)
        })
        .collect();
    let first = batch(first, T0 + 800_000);
    let first_at = log.push(&first.entry);
    let salt = [42; 32];
    let event_at = log.push(&trace_event(&salt));
    let phyto = document(1, "phytosanitary_certificate", "PC-2026-0042");
    let origin = document(2, "certificate_of_origin", "CO/2026/0042");
    let phyto_at = log.push(&anchor(PLANT_HEALTH, &phyto, None));
    let origin_at = log.push(&anchor(CHAMBER, &origin, None));
    let first_size = log.size();

    log.push(&rotate_device(DEVICE_A, KeyEpoch(2)));
    let second: Vec<Vec<u8>> = (0..9u64)
        .map(|i| {
            if i % 3 == 1 {
                signed_reading(DEVICE_B, KeyEpoch(1), 100 + i, T0 + 1_000_000 + 60_000 * i)
            } else {
                signed_reading(DEVICE_A, KeyEpoch(2), 100 + i, T0 + 1_000_000 + 60_000 * i)
            }
        })
        .collect();
    let second = batch(second, T0 + 2_000_000);
    let second_at = log.push(&second.entry);
    let revocation = document(3, "certificate_of_origin", "CO/2026/0042-R");
    log.push(&anchor(
        CHAMBER,
        &revocation,
        Some(Replaces::Revokes(origin_at)),
    ));
    let phyto2 = document(4, "phytosanitary_certificate", "PC-2026-0042/2");
    let phyto2_at = log.push(&anchor(
        PLANT_HEALTH,
        &phyto2,
        Some(Replaces::Supersedes(phyto_at)),
    ));
    log.push(&revoke_device(DEVICE_B, KeyEpoch(1)));
    Story {
        log,
        first_size,
        batches: vec![
            (first_at, first, vec![0, 1, 2, 5, 8, 11]),
            (second_at, second, vec![0, 1, 2, 3, 4, 5, 6, 7, 8]),
        ],
        event: (event_at, salt),
        documents: vec![(phyto_at, phyto), (origin_at, origin), (phyto2_at, phyto2)],
    }
}

fn subject() -> Subject {
    Subject::Shipment {
        exporter: "menghai-mango-coop".into(),
        id: "SHP-2026-0042".into(),
    }
}

/// The story's bundle from two checkpoint notes, the consistency proof between them, and the
/// entries with their inclusion paths.
fn assemble(
    story: &Story,
    notes: [String; 2],
    consistency: Vec<ledger::merkle::Hash>,
    entries: Vec<BundleEntry>,
) -> EvidenceBundle {
    let [first, second] = notes;
    sealed(
        subject(),
        vec![
            BundleCheckpoint {
                signed_note: first,
                consistency: vec![],
            },
            BundleCheckpoint {
                signed_note: second,
                consistency,
            },
        ],
        entries,
        story
            .batches
            .iter()
            .map(|(at, batch, positions)| batch.bundled(*at, positions))
            .collect(),
        vec![bundled_event(story.event.0, story.event.1, EVENT_JSON)],
        story
            .documents
            .iter()
            .map(|(at, d)| bundled_document(*at, d, "application/pdf"))
            .collect(),
    )
}

/// The story's bundle from the in-memory log.
fn memory_bundle(story: &Story) -> EvidenceBundle {
    let size = story.log.size();
    assemble(
        story,
        [
            story.log.cosigned(story.first_size),
            story.log.cosigned(size),
        ],
        story.log.consistency(story.first_size, size),
        story.log.bundled_entries(size),
    )
}

fn verify(bundle: &EvidenceBundle, trust: &Trust) -> Report {
    verify_bundle(bundle, trust, &mut |_| {})
}

fn pinned() -> Trust {
    Trust::Pinned(policy().into_bytes())
}

/// The report failed at `item` in `check`.
#[track_caller]
fn assert_fails_at(report: &Report, check: CheckName, item: Item) {
    let failure = report
        .failure
        .as_ref()
        .unwrap_or_else(|| panic!("expected a failure at {item:?}: {report:#?}"));
    assert_eq!(
        (failure.check, failure.item),
        (check, item),
        "{}",
        failure.reason.en
    );
    assert!(!report.verified());
}

/// The bundle with one bit of checkpoint `i`'s root changed.
fn with_root_changed(bundle: &EvidenceBundle, i: usize) -> EvidenceBundle {
    let mut changed = bundle.clone();
    let note = &changed.checkpoints[i].signed_note;
    let root_line = note.lines().nth(2).expect("root").to_owned();
    let mut root = STANDARD.decode(&root_line).expect("root");
    root[0] ^= 1;
    changed.checkpoints[i].signed_note = note.replacen(&root_line, &STANDARD.encode(root), 1);
    changed
}

/// Checks everything a good story bundle's report must say.
fn assert_good_report(report: &Report) {
    assert!(report.verified(), "{:#?}", report.failure);
    assert!(report.trust_pinned);
    assert_eq!(report.checkpoints.len(), 2);
    assert_eq!(report.checkpoints[0].size, TreeSize(8));
    assert_eq!(report.checkpoints[1].size, TreeSize(13));
    for checkpoint in &report.checkpoints {
        let names: Vec<&str> = checkpoint
            .cosigned
            .iter()
            .map(|(n, _)| n.as_str())
            .collect();
        assert_eq!(names, ["customs-cn", "customs-th"]);
    }
    let c = report.counts;
    assert_eq!(
        (
            c.entries,
            c.batches,
            c.readings,
            c.events,
            c.documents,
            c.anchors
        ),
        (13, 2, 15, 1, 3, 4)
    );
    let statuses: Vec<DocumentStatus> = report.documents.iter().map(|d| d.status).collect();
    assert_eq!(
        statuses,
        [
            DocumentStatus::Superseded(LeafIndex(11)),
            DocumentStatus::Revoked(LeafIndex(10)),
            DocumentStatus::Valid
        ]
    );
    assert!(report.documents.iter().all(|d| d.signature_valid));
    assert_eq!(report.documents[1].number, "CO/2026/0042");
    let a = &report.devices[0];
    assert_eq!(a.device, DEVICE_A);
    assert_eq!(a.keys.len(), 2);
    assert!(a.keys[1].rotated);
    let b = &report.devices[1];
    assert_eq!(b.keys[0].revoked, Some(LeafIndex(12)));
    assert_eq!(a.readings + b.readings, 15);
    assert_eq!(report.issuers.len(), 2);
    assert_eq!(report.events[0].event_type, "ObjectEvent");
    assert!(report.events[0].event_hash.starts_with("ni:///sha-256;"));
    let checks: Vec<CheckName> = report.checks.iter().map(|c| c.name).collect();
    assert_eq!(checks.last(), Some(&CheckName::Seal));
    assert!(checks.contains(&CheckName::ReadingSignatures));
}

#[test]
fn the_story_bundle_from_a_memory_log_verifies() {
    let bundle = memory_bundle(&story());
    let report = verify(&bundle, &pinned());
    assert_good_report(&report);
    // Through the file, too.
    let text = bundle.to_text();
    assert_good_report(&verify_file(text.as_bytes(), &pinned(), &mut |_| {}));
}

#[test]
fn flipping_any_byte_of_the_bundle_is_caught() {
    let text = memory_bundle(&story()).to_text().into_bytes();
    // 0x01 changes a digit into another, 0x20 the case of a letter: both keep most base64
    // and decimals valid, so most changed files still parse and the checks must catch them.
    for xor in [0x01u8, 0x20] {
        let mut parsed_and_checked = 0;
        for i in 0..text.len() {
            let mut bytes = text.clone();
            bytes[i] ^= xor;
            let report = verify_file(&bytes, &Trust::BundlePolicy, &mut |_| {});
            assert!(
                !report.verified(),
                "changing byte {i} ({:?}) with {xor:#04x} went unnoticed",
                char::from(text[i])
            );
            if report.subject.is_some() {
                parsed_and_checked += 1;
            }
        }
        assert!(
            parsed_and_checked > text.len() / 4,
            "{parsed_and_checked} of {}",
            text.len()
        );
    }
}

/// The bundle with one base64 character of line `line` changed (to the next base64 digit) at
/// `offset` characters into its value: another canonical file, with other bytes.
fn with_char_changed(bundle: &EvidenceBundle, line: usize, column: usize) -> Vec<u8> {
    const DIGITS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let text = bundle.to_text();
    let start: usize = text
        .split_inclusive('\n')
        .take(line - 1)
        .map(str::len)
        .sum();
    let mut bytes = text.into_bytes();
    let at = start + column;
    let digit = DIGITS
        .iter()
        .position(|d| *d == bytes[at])
        .expect("a base64 digit");
    bytes[at] = DIGITS[(digit + 1) % 64];
    bytes
}

#[test]
fn a_changed_byte_is_named_as_the_item_it_belongs_to() {
    let bundle = memory_bundle(&story());
    let lines = bundle.lines();
    let check = |bytes: &[u8], check: CheckName, item: Item| {
        let report = verify_file(bytes, &pinned(), &mut |_| {});
        assert_fails_at(&report, check, item);
    };

    // Every character of a reading's base64 but its last (whose low bits are padding): the
    // reading is named, whether it no longer decodes, names another device or time, or its
    // signature fails.
    let line = lines.first_readings[1] + 3;
    let value = bundle
        .to_text()
        .lines()
        .nth(line - 1)
        .expect("line")
        .to_owned();
    let start = value.rfind(' ').expect("space") + 1;
    let item = Item::Reading {
        entry: bundle.batches[1].entry,
        position: LeafIndex(3),
        line,
    };
    for column in start..value.trim_end_matches('=').len() - 1 {
        let report = verify_file(
            &with_char_changed(&bundle, line, column),
            &pinned(),
            &mut |_| {},
        );
        let failure = report.failure.as_ref().expect("a failure");
        assert_eq!(failure.item, item, "column {column}: {}", failure.reason.en);
        assert!(
            matches!(
                failure.check,
                CheckName::Readings | CheckName::ReadingSignatures
            ),
            "{:?}",
            failure.check
        );
    }

    // A byte of a document's content.
    let document = &bundle.documents[2];
    let mut changed = bundle.clone();
    changed.documents[2].content[9] ^= 0x20;
    check(
        changed.to_text().as_bytes(),
        CheckName::Documents,
        Item::Document {
            entry: document.entry,
            line: lines.documents[2],
        },
    );

    // A byte of a checkpoint (its root line), and of one of its cosignatures.
    let changed = with_root_changed(&bundle, 1);
    let second = Item::Checkpoint {
        number: 2,
        line: lines.checkpoints[1],
    };
    check(changed.to_text().as_bytes(), CheckName::Checkpoints, second);
    let last_line = bundle.checkpoints[0]
        .signed_note
        .lines()
        .last()
        .expect("cosignature")
        .to_owned();
    let mut cosignature = STANDARD
        .decode(last_line.rsplit(' ').next().expect("signature"))
        .expect("base64");
    cosignature[20] ^= 1;
    let mut changed = bundle.clone();
    changed.checkpoints[0].signed_note = bundle.checkpoints[0].signed_note.replacen(
        last_line.rsplit(' ').next().expect("signature"),
        &STANDARD.encode(cosignature),
        1,
    );
    check(
        changed.to_text().as_bytes(),
        CheckName::Checkpoints,
        Item::Checkpoint {
            number: 1,
            line: lines.checkpoints[0],
        },
    );

    // A consistency hash, an inclusion hash, an entry byte, a batch proof hash.
    let mut changed = bundle.clone();
    changed.checkpoints[1].consistency[0].0[3] ^= 1;
    check(
        changed.to_text().as_bytes(),
        CheckName::Consistency,
        Item::Consistency {
            number: 2,
            line: lines.checkpoints[1],
        },
    );
    let mut changed = bundle.clone();
    changed.entries[6].inclusion[1].0[3] ^= 1;
    let entry6 = Item::Entry {
        index: LeafIndex(6),
        line: lines.entries[6],
    };
    check(changed.to_text().as_bytes(), CheckName::Inclusion, entry6);
    let mut changed = bundle.clone();
    let last = changed.entries[6].bytes.len() - 1;
    changed.entries[6].bytes[last] ^= 1;
    check(changed.to_text().as_bytes(), CheckName::Inclusion, entry6);
    let mut changed = bundle.clone();
    changed.batches[0].proof[0].0[0] ^= 1;
    check(
        changed.to_text().as_bytes(),
        CheckName::BatchProofs,
        Item::Batch {
            entry: bundle.batches[0].entry,
            line: lines.batches[0],
        },
    );

    // The event's JSON and salt.
    let event = Item::Event {
        entry: bundle.events[0].entry,
        line: lines.events[0],
    };
    let mut changed = bundle.clone();
    changed.events[0].event_json = EVENT_JSON
        .replace("TCNU1234567", "TCNU7654321")
        .into_bytes();
    check(changed.to_text().as_bytes(), CheckName::Events, event);
    let mut changed = bundle.clone();
    changed.events[0].salt[0] ^= 1;
    check(changed.to_text().as_bytes(), CheckName::Events, event);

    // What only the seal covers: the subject, the export time, a document number.
    let seal = Item::Seal { line: lines.seal };
    let mut changed = bundle.clone();
    changed.subject = Subject::Shipment {
        exporter: "menghai-mango-coop".into(),
        id: "SHP-2026-0043".into(),
    };
    check(changed.to_text().as_bytes(), CheckName::Seal, seal);
    let mut changed = bundle.clone();
    changed.exported_ms += 1;
    check(changed.to_text().as_bytes(), CheckName::Seal, seal);
    let mut changed = bundle.clone();
    changed.documents[0].number = "PC-2026-0043".into();
    let report = verify(&changed, &pinned());
    assert_fails_at(&report, CheckName::Seal, seal);
    assert!(
        render_text(&report, Lang::En).contains("the bundle was changed after export"),
        "{}",
        render_text(&report, Lang::En)
    );
    // A seal by another key.
    let mut changed = bundle.clone();
    changed.seal = ledger::note::sign_note(
        &EvidenceBundle::seal_text(&bundle.body_text()),
        &[&witness_key(0)],
        1,
    )
    .expect("sign");
    check(changed.to_text().as_bytes(), CheckName::Seal, seal);
}

#[test]
fn a_forked_log_fails_at_the_consistency_check() {
    let story = story();
    // Another log under the same key: the same story with the first batch's entry replaced.
    let mut other = MemoryLog::default();
    for (i, entry) in story.log.entries.iter().enumerate() {
        if i == 4 {
            let readings = vec![signed_reading(DEVICE_A, KeyEpoch(1), 999, T0)];
            other.push(&batch(readings, T0).entry);
        } else {
            other.entries.push(entry.clone());
        }
    }
    let size = story.log.size();
    // The first checkpoint from the other log, the second (and every proof) from the story's.
    let bundle = assemble(
        &story,
        [other.cosigned(story.first_size), story.log.cosigned(size)],
        story.log.consistency(story.first_size, size),
        story.log.bundled_entries(size),
    );
    let lines = bundle.lines();
    let report = verify(&bundle, &pinned());
    assert_fails_at(
        &report,
        CheckName::Consistency,
        Item::Consistency {
            number: 2,
            line: lines.checkpoints[1],
        },
    );
    assert!(
        report
            .failure
            .expect("failure")
            .reason
            .en
            .contains("not of one append-only log")
    );

    // The same log rewritten: the second checkpoint and proofs from the other log.
    let bundle = assemble(
        &story,
        [story.log.cosigned(story.first_size), other.cosigned(size)],
        other.consistency(story.first_size, size),
        other.bundled_entries(size),
    );
    assert_fails_at(
        &verify(&bundle, &pinned()),
        CheckName::Consistency,
        Item::Consistency {
            number: 2,
            line: lines.checkpoints[1],
        },
    );
}

#[test]
fn readings_of_a_missing_or_revoked_device_key_fail_naming_it() {
    let story = story();
    let good = memory_bundle(&story);

    // Without device B's registration (entry 1): its first reading in the first batch.
    let mut missing = good.clone();
    missing.entries.remove(1);
    let lines_missing = missing.lines();
    let report = verify(&missing, &pinned());
    assert_fails_at(
        &report,
        CheckName::Readings,
        Item::Reading {
            entry: LeafIndex(4),
            position: LeafIndex(2),
            line: lines_missing.first_readings[0] + 2,
        },
    );
    let reason = report.failure.expect("failure").reason;
    assert!(
        reason
            .en
            .contains("device b200000000000002 has no key of epoch 1"),
        "{}",
        reason.en
    );
    assert!(reason.zh.contains("设备密钥"), "{}", reason.zh);

    // Device B's key revoked, then a batch with one of its readings.
    let mut log = story.log.clone();
    let batch_b = batch(
        vec![
            signed_reading(DEVICE_A, KeyEpoch(2), 500, T0 + 3_000_000),
            signed_reading(DEVICE_B, KeyEpoch(1), 501, T0 + 3_060_000),
        ],
        T0 + 3_100_000,
    );
    let at = log.push(&batch_b.entry);
    let size = log.size();
    let mut bundle = assemble(
        &story,
        [log.cosigned(story.first_size), log.cosigned(size)],
        log.consistency(story.first_size, size),
        log.bundled_entries(size),
    );
    bundle.batches.push(batch_b.bundled(at, &[0, 1]));
    reseal(&mut bundle);
    let report = verify(&bundle, &pinned());
    assert_fails_at(
        &report,
        CheckName::Readings,
        Item::Reading {
            entry: at,
            position: LeafIndex(1),
            line: bundle.lines().first_readings[2] + 1,
        },
    );
    let reason = report.failure.expect("failure").reason;
    assert!(
        reason
            .en
            .contains("device b200000000000002 key epoch 1 was revoked at entry 12"),
        "{}",
        reason.en
    );

    // A reading whose signature was changed.
    let mut forged = good.clone();
    let len = forged.batches[0].readings[3].1.len();
    forged.batches[0].readings[3].1[len - 40] ^= 1;
    assert_fails_at(
        &verify(&forged, &pinned()),
        CheckName::ReadingSignatures,
        Item::Reading {
            entry: LeafIndex(4),
            position: LeafIndex(5),
            line: good.lines().first_readings[0] + 3,
        },
    );
}

#[test]
fn a_pinned_policy_must_be_the_bundles_and_an_unpinned_one_is_said() {
    let bundle = memory_bundle(&story());
    let other_policy = policy().replace("group customs all", "group customs 1");
    let report = verify(&bundle, &Trust::Pinned(other_policy.into_bytes()));
    assert_fails_at(
        &report,
        CheckName::Policy,
        Item::Policy {
            line: bundle.lines().policy,
        },
    );
    let unpinned = verify(&bundle, &Trust::BundlePolicy);
    assert!(unpinned.verified());
    assert!(!unpinned.trust_pinned);
    let text = render_text(&unpinned, Lang::En);
    assert!(text.contains("WARNING: trust was not pinned"), "{text}");
    assert!(render_text(&unpinned, Lang::Zh).contains("警告：未指定信任策略"));
    assert!(render_html(&unpinned, Lang::En).contains("class=\"warning\""));

    // A bundle whose own policy needs no witness, with uncosigned checkpoints: verifies only
    // unpinned, and the pinned policy refuses it.
    let story = story();
    let size = story.log.size();
    let mut lax = assemble(
        &story,
        [
            story.log.checkpoint(story.first_size, &[]),
            story.log.checkpoint(size, &[]),
        ],
        story.log.consistency(story.first_size, size),
        story.log.bundled_entries(size),
    );
    lax.policy = format!("log {}\nquorum none\n", log_key().verifier().to_vkey()).into_bytes();
    reseal(&mut lax);
    assert!(verify(&lax, &Trust::BundlePolicy).verified());
    assert_fails_at(
        &verify(&lax, &pinned()),
        CheckName::Policy,
        Item::Policy { line: 4 },
    );
    // The pinned policy in the lax bundle: the checkpoints lack the quorum.
    lax.policy = policy().into_bytes();
    reseal(&mut lax);
    let report = verify(&lax, &pinned());
    assert_fails_at(
        &report,
        CheckName::Checkpoints,
        Item::Checkpoint {
            number: 1,
            line: lax.lines().checkpoints[0],
        },
    );
    assert!(
        report
            .failure
            .expect("failure")
            .reason
            .en
            .contains("witness quorum customs not met")
    );
}

#[test]
fn key_and_anchor_rules_follow_log_order() {
    let story = story();
    // The chamber's key revoked before its revocation anchor (entry 11): that anchor fails.
    let mut log = MemoryLog::default();
    for (i, entry) in story.log.entries.iter().enumerate() {
        if i == 10 {
            log.push(&support::bundle::revoke_issuer(CHAMBER));
        }
        log.entries.push(entry.clone());
    }
    let size = log.size();
    let mut bundle = assemble(
        &story,
        [log.cosigned(story.first_size), log.cosigned(size)],
        log.consistency(story.first_size, size),
        log.bundled_entries(size),
    );
    // The document after the inserted entry moved by one.
    bundle.documents[2].entry = LeafIndex(12);
    reseal(&mut bundle);
    let report = verify(&bundle, &pinned());
    assert_fails_at(
        &report,
        CheckName::AnchorSignatures,
        Item::Entry {
            index: LeafIndex(11),
            line: bundle.lines().entries[11],
        },
    );
    assert!(
        report
            .failure
            .expect("failure")
            .reason
            .en
            .contains("was revoked at entry 10")
    );

    // A rotation signed by a key that is not the previous epoch's.
    let mut log = story.log.clone();
    let Entry::KeyEvent(mut rotation) = rotate_device(DEVICE_B, KeyEpoch(2)) else {
        unreachable!("a key event")
    };
    rotation.rotation_signature = Some([7; 64]);
    let at = log.push(&Entry::KeyEvent(rotation));
    let size = log.size();
    let bundle = assemble(
        &story,
        [log.cosigned(story.first_size), log.cosigned(size)],
        log.consistency(story.first_size, size),
        log.bundled_entries(size),
    );
    assert_fails_at(
        &verify(&bundle, &pinned()),
        CheckName::DeviceKeys,
        Item::Entry {
            index: at,
            line: bundle.lines().entries[13],
        },
    );
}

#[test]
fn the_report_is_written_in_both_languages_and_as_escaped_html() {
    let mut bundle = memory_bundle(&story());
    bundle.documents[2].number = "<script>alert('x')</script> & \"co\"".into();
    reseal(&mut bundle);
    let report = verify(&bundle, &pinned());
    assert!(report.verified());
    let en = render_text(&report, Lang::En);
    for expected in [
        "RESULT: VERIFIED",
        "Checkpoints",
        "cosigned by: customs-cn",
        "Sensor readings  15",
        "revoked (by entry 10)",
        "superseded (by entry 11)",
        "issuer signature valid",
        "What this bundle cannot prove",
    ] {
        assert!(en.contains(expected), "{expected:?} not in\n{en}");
    }
    let zh = render_text(&report, Lang::Zh);
    for expected in [
        "结论：验证通过",
        "证据包",
        "检查点",
        "见证签名",
        "包含证明",
        "一致性证明",
        "传感器读数",
        "设备密钥",
        "签发机构",
        "已撤销",
        "已被取代",
        "有效",
        "无法证明",
    ] {
        assert!(zh.contains(expected), "{expected:?} not in\n{zh}");
    }
    for (lang, tag) in [(Lang::En, "en"), (Lang::Zh, "zh-Hans")] {
        let html = render_html(&report, lang);
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.contains(&format!("<html lang=\"{tag}\">")));
        assert!(
            html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;co&quot;")
        );
        assert!(!html.contains("<script"), "{html}");
        assert!(
            !html.contains("http://") && !html.contains("src="),
            "{html}"
        );
        assert!(!html.contains("https://"), "no external resource: {html}");
    }
}

/// Runs a real witness for `key` on loopback; returns its URL.
async fn witness(dir: &Path, i: usize) -> String {
    let witness = Witness::open(
        witness_key(i),
        vec![WitnessedLog {
            origin: ORIGIN.to_owned(),
            key: log_key().verifier(),
        }],
        &dir.join(format!("witness-{i}")),
        Box::new(|| 1_780_000_500),
    )
    .expect("witness");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move {
        axum::serve(listener, ledger::witness::router(Arc::new(witness)))
            .await
            .expect("witness server");
    });
    format!("http://{address}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bundle_from_the_real_sequencer_and_witnesses_verifies_with_the_binary() {
    let dir = tempfile::tempdir().expect("tempdir");
    let story = story();
    let endpoints = vec![
        WitnessEndpoint {
            url: witness(dir.path(), 0).await,
            verifier: witness_key(0).verifier(),
        },
        WitnessEndpoint {
            url: witness(dir.path(), 1).await,
            verifier: witness_key(1).verifier(),
        },
    ];
    let client = WitnessClient::new(endpoints, Duration::from_secs(10)).expect("client");
    let mut config = SequencerConfig::new(ORIGIN);
    config.round_period_ms = 10;
    let (handle, tasks) = sequencer::start(
        MemoryStorage::new(empty_root().0),
        log_key(),
        config,
        client,
    )
    .await
    .expect("start");
    let mut notes = Vec::new();
    for range in [0..story.first_size, story.first_size..story.log.size()] {
        let end = range.end;
        let pending: Vec<_> = story.log.entries[range]
            .iter()
            .map(|e| handle.try_submit(e.clone(), Vec::new()).expect("submit"))
            .collect();
        for p in pending {
            p.wait().await.expect("appended");
        }
        let published = handle
            .wait_for_checkpoint(TreeSize(u64::try_from(end).expect("small")))
            .await
            .expect("checkpoint");
        assert_eq!(published.cosigned_by.len(), 2, "both witnesses cosigned");
        notes.push(published.note.clone());
    }
    let (consistency, _) = handle
        .consistency_proof(TreeSize(u64::try_from(story.first_size).expect("small")))
        .expect("consistency proof");
    let entries: Vec<BundleEntry> = story
        .log
        .entries
        .iter()
        .enumerate()
        .map(|(i, bytes)| {
            let index = LeafIndex(u64::try_from(i).expect("small"));
            let (proof, _) = handle.inclusion_proof(index).expect("inclusion proof");
            BundleEntry {
                index,
                bytes: bytes.clone(),
                inclusion: proof.path,
            }
        })
        .collect();
    tasks.shutdown().await;
    let [first, second]: [String; 2] = notes.try_into().expect("two checkpoints");
    let bundle = assemble(&story, [first, second], consistency.path, entries);
    assert_good_report(&verify(&bundle, &pinned()));

    let file = support::write(dir.path(), "shipment.evidence", bundle.to_text().as_bytes());
    let policy_file = support::write(dir.path(), "agencies.policy", policy().as_bytes());
    let html = dir.path().join("certificate.html");
    let run = support::run([
        "evidence",
        &file,
        "--policy",
        &policy_file,
        "--html",
        html.to_str().expect("utf-8 path"),
    ]);
    let text = stdout(&run);
    assert_eq!(run.status.code(), Some(0), "{text}");
    assert!(text.contains("RESULT: VERIFIED"), "{text}");
    assert!(!text.contains("WARNING"), "{text}");
    let certificate = std::fs::read_to_string(&html).expect("html written");
    assert!(certificate.contains("<html lang=\"en\">"));
    assert!(certificate.contains("RESULT: VERIFIED"));

    let run = support::run(["evidence", &file, "--policy", &policy_file, "--lang", "zh"]);
    let text = stdout(&run);
    assert_eq!(run.status.code(), Some(0), "{text}");
    assert!(text.contains("结论：验证通过"), "{text}");
    assert!(text.contains("已撤销"), "{text}");

    // Unpinned: verified, with the warning.
    let run = support::run(["evidence", &file]);
    assert_eq!(run.status.code(), Some(0));
    assert!(stdout(&run).contains("WARNING: trust was not pinned"));

    // A few flipped bytes through the binary: exit 1, naming the item.
    let lines = bundle.lines();
    let reading_line = lines.first_readings[0] + 1;
    for (bytes, named) in [
        (
            with_char_changed(&bundle, reading_line, 12),
            format!("reading 1 of the batch at entry 4 (line {reading_line})"),
        ),
        (
            with_char_changed(&bundle, lines.documents[1], 120),
            format!("document at entry 7 (line {})", lines.documents[1]),
        ),
        (
            with_root_changed(&bundle, 0).to_text().into_bytes(),
            format!("checkpoint 1 (line {})", lines.checkpoints[0]),
        ),
    ] {
        let file = support::write(dir.path(), "changed.evidence", &bytes);
        let run = support::run(["evidence", &file, "--policy", &policy_file]);
        let text = stdout(&run);
        assert_eq!(run.status.code(), Some(1), "{text}");
        assert!(
            text.contains(&format!("RESULT: NOT VERIFIED, failed item: {named}")),
            "{named} not named in\n{text}"
        );
    }
    let mut changed = bundle.to_text().into_bytes();
    let subject_at = bundle.to_text().find("SHP-2026-0042").expect("subject");
    changed[subject_at + 12] = b'3';
    let file = support::write(dir.path(), "changed.evidence", &changed);
    let run = support::run(["evidence", &file, "--policy", &policy_file]);
    assert_eq!(run.status.code(), Some(1));
    assert!(stdout(&run).contains(&format!("failed item: seal (line {})", lines.seal)));

    // A pinned policy other than the bundle's; unusable inputs exit 2.
    let other = support::write(
        dir.path(),
        "other.policy",
        policy()
            .replace("group customs all", "group customs 1")
            .as_bytes(),
    );
    let run = support::run(["evidence", &file, "--policy", &other]);
    assert_eq!(run.status.code(), Some(1));
    assert!(stdout(&run).contains("failed item: policy (line 4)"));
    // A file that is not a bundle fails naming its line; one that cannot be read is unusable.
    let broken = support::write(
        dir.path(),
        "broken.evidence",
        b"agritrace/evidence-bundle/v1\nsubject shipment a/b\nexported 01\n",
    );
    let run = support::run(["evidence", &broken]);
    assert_eq!(run.status.code(), Some(1));
    assert!(
        stdout(&run).contains("failed item: line 3 (`exported`)"),
        "{}",
        stdout(&run)
    );
    let missing = dir.path().join("missing.evidence");
    let run = support::run(["evidence", missing.to_str().expect("utf-8")]);
    assert_eq!(run.status.code(), Some(2));
    let not_policy = support::write(dir.path(), "not.policy", b"hello\n");
    assert_eq!(
        support::run(["evidence", &file, "--policy", &not_policy])
            .status
            .code(),
        Some(2)
    );
}
