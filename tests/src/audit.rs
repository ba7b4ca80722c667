//! The audit of a node's store after the node stopped: every entry of the log read back in
//! order, every `ReadingBatch` matched with its batch record and its readings, the tree
//! recomputed from the tiles, and every checkpoint seen during the run checked against it.
//! This is what a court's expert or a second operator would check; it trusts nothing the
//! node said while it ran.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use ingest::{QuarantinePage, QuarantineRecord, query};
use ledger::checkpoint::open_checkpoint;
use ledger::entry::Entry;
use ledger::merkle::{Hash, TreeSize, empty_root, leaf_hash, root_from_leaf_hashes};
use ledger::note::NoteVerifier;
use ledger::proof::{consistency_proof, tree_root};
use ledger::storage::redb::RedbStorage;
use ledger::storage::{LogStorage, TILE_WIDTH};
use ledger::tile::parse_bundle;
use protocol::{DeviceId, SequenceNumber};

/// What the log holds, read back from a stopped node's store.
#[derive(Debug)]
pub struct LogAudit {
    storage: RedbStorage,
    /// Entries in the log.
    pub size: u64,
    /// The root of the log recomputed from its tiles (equal to the durable log state's).
    pub root: Hash,
    /// How many `ReadingBatch` entries name each batch root.
    pub batch_entries: HashMap<Hash, u32>,
    /// How many of the log's batches hold each reading leaf hash.
    pub reading_occurrences: HashMap<Hash, u32>,
    /// Entries by kind name.
    pub kinds: BTreeMap<&'static str, u64>,
}

impl LogAudit {
    /// Opens the store at `path` (no node may be running on it) and reads the whole log.
    ///
    /// Panics if an entry does not decode, a batch record is missing or does not hash to its
    /// entry's root, or the tiles do not give the durable root.
    pub async fn read(path: &Path) -> Self {
        let storage = RedbStorage::open(path, empty_root().0).expect("open the node's store");
        let restored = storage.load().await.expect("load the log state");
        let size = restored.state.size;
        let reader = storage.tile_reader().expect("a tile reader");
        let root = tree_root(TreeSize(size), &reader).expect("the root from the tiles");
        assert_eq!(
            root.0, restored.state.root,
            "the tiles do not give the durable root"
        );
        let mut audit = Self {
            storage,
            size,
            root,
            batch_entries: HashMap::new(),
            reading_occurrences: HashMap::new(),
            kinds: BTreeMap::new(),
        };
        let mut index = 0u64;
        while index < size {
            let bundle_index = index / TILE_WIDTH;
            let bytes = audit
                .storage
                .bundle(bundle_index)
                .await
                .expect("read an entry bundle")
                .unwrap_or_else(|| panic!("entry bundle {bundle_index} is missing"));
            let entries = parse_bundle(&bytes).expect("a well-formed entry bundle");
            let first = usize::try_from(index % TILE_WIDTH).expect("small");
            assert!(
                entries.len() > first,
                "entry bundle {bundle_index} does not hold entry {index}"
            );
            let wanted = usize::try_from((size - index).min(TILE_WIDTH)).expect("small");
            for bytes in entries.iter().skip(first).take(wanted) {
                audit.entry(index, bytes);
                index += 1;
            }
        }
        audit
    }

    fn entry(&mut self, index: u64, bytes: &[u8]) {
        let entry =
            Entry::decode(bytes).unwrap_or_else(|e| panic!("entry {index} does not decode: {e}"));
        let kind = match &entry {
            Entry::ReadingBatch(batch) => {
                *self.batch_entries.entry(batch.batch_root).or_default() += 1;
                let record = query::batch(&self.storage, &batch.batch_root)
                    .expect("read a batch record")
                    .unwrap_or_else(|| {
                        panic!("entry {index}: no batch record for {}", batch.batch_root)
                    });
                assert_eq!(
                    root_from_leaf_hashes(&record.reading_leaves),
                    batch.batch_root,
                    "entry {index}: the batch's readings do not hash to its root"
                );
                assert_eq!(
                    u64::try_from(record.reading_leaves.len()).expect("small"),
                    u64::from(batch.reading_count),
                    "entry {index}: reading count"
                );
                assert_eq!(
                    record.entry.leaf_hash,
                    leaf_hash(bytes),
                    "entry {index}: the batch record names another entry"
                );
                // A batch named twice in the log counts its readings twice: that is the
                // duplicate this audit exists to catch.
                for leaf in record.reading_leaves {
                    *self.reading_occurrences.entry(leaf).or_default() += 1;
                }
                "reading_batch"
            }
            Entry::TraceEvent(_) => "trace_event",
            Entry::DocumentAnchor(_) => "document_anchor",
            Entry::KeyEvent(_) => "key_event",
            Entry::IssuerKeyEvent(_) => "issuer_key_event",
            Entry::Unknown { .. } => "unknown",
        };
        *self.kinds.entry(kind).or_default() += 1;
    }

    /// The signed bytes stored for `device`'s reading `sequence`.
    #[must_use]
    pub fn stored(&self, device: DeviceId, sequence: u64) -> Option<Vec<u8>> {
        query::reading(&self.storage, device, SequenceNumber(sequence))
            .expect("read a reading")
            .map(|r| r.signed)
    }

    /// Every quarantine record of `device`, oldest first.
    #[must_use]
    pub fn quarantine(&self, device: DeviceId) -> Vec<QuarantineRecord> {
        let mut records = Vec::new();
        let mut after_id = None;
        loop {
            let page = query::quarantine(
                &self.storage,
                Some(device),
                QuarantinePage {
                    after_id,
                    limit: query::QUARANTINE_PAGE_MAX,
                },
            )
            .expect("read the quarantine");
            records.extend(page.records);
            match page.next_after {
                Some(next) => after_id = Some(next),
                None => return records,
            }
        }
    }

    /// Checks that every reading in `expected` is stored, is in the log exactly once, and that
    /// the log holds no other reading. Returns the problems found (empty when all is well).
    #[must_use]
    pub fn check_readings(&self, expected: &BTreeMap<DeviceId, BTreeSet<u64>>) -> Vec<String> {
        let mut problems = Vec::new();
        let mut leaves = BTreeSet::new();
        for (device, sequences) in expected {
            for &sequence in sequences {
                let stored = query::reading(&self.storage, *device, SequenceNumber(sequence))
                    .expect("read a reading");
                let Some(stored) = stored else {
                    problems.push(format!("{device}/{sequence}: not stored"));
                    continue;
                };
                let leaf = leaf_hash(&stored.signed);
                leaves.insert(leaf);
                match self.reading_occurrences.get(&leaf).copied().unwrap_or(0) {
                    1 => {}
                    n => problems.push(format!("{device}/{sequence}: in {n} batches of the log")),
                }
            }
        }
        let extra = self
            .reading_occurrences
            .keys()
            .filter(|leaf| !leaves.contains(*leaf))
            .count();
        if extra > 0 {
            problems.push(format!("{extra} readings in the log that no device made"));
        }
        for (root, count) in &self.batch_entries {
            if *count != 1 {
                problems.push(format!("batch {root} has {count} entries in the log"));
            }
        }
        problems
    }

    /// Checks each checkpoint note seen during the run: signed by `log_key`, its root the
    /// log's root at its size, and consistent with the log now (RFC 9162 consistency proof
    /// from the tiles, verified). Returns the largest size checked.
    ///
    /// Panics on the first checkpoint that fails.
    #[must_use]
    pub fn check_checkpoints(&self, log_key: &str, notes: &[String]) -> u64 {
        let verifier = NoteVerifier::parse(log_key).expect("the log's verifier key");
        let reader = self.storage.tile_reader().expect("a tile reader");
        let mut largest = 0;
        for note in notes {
            let opened = open_checkpoint(note.as_bytes(), &verifier, &[]).unwrap_or_else(|e| {
                panic!("a checkpoint the node served does not open: {e}\n{note}")
            });
            let checkpoint = opened.checkpoint;
            assert!(
                checkpoint.size.0 <= self.size,
                "a checkpoint of size {} is beyond the log ({})",
                checkpoint.size.0,
                self.size
            );
            let root = tree_root(checkpoint.size, &reader).expect("a root from the tiles");
            assert_eq!(
                root, checkpoint.root,
                "the checkpoint of size {} names another root than the log's (a fork)",
                checkpoint.size.0
            );
            consistency_proof(checkpoint.size, TreeSize(self.size), &reader)
                .expect("a consistency proof")
                .verify(&checkpoint.root, &self.root)
                .unwrap_or_else(|e| {
                    panic!(
                        "the checkpoint of size {} is not consistent with the log: {e:?}",
                        checkpoint.size.0
                    )
                });
            largest = largest.max(checkpoint.size.0);
        }
        largest
    }
}
