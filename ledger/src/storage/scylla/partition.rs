//! How sidecar records are laid out in CQL partitions.
//!
//! All sidecar tables share one CQL table, `sidecars`, keyed `((tbl, part), key)`: the
//! partition is the table name and a part of the record's key chosen per table by a
//! [`PartitionRule`], and the key is the clustering column, so rows of one partition are
//! stored in key order (blobs compare as unsigned bytes, as redb's `&[u8]` keys do). A range
//! scan is one CQL query inside one partition; a scan whose range would leave its partition is
//! refused with an error rather than answered from one partition only.
//!
//! The rules the node uses ([`PartitionRules::default`]), table by table, with the callers'
//! scans they keep inside one partition:
//!
//! | table | rule | why |
//! |---|---|---|
//! | `ingest_readings` | first 8 bytes (device) | key = device ‖ sequence; every scan is one device's sequence range. The key has no day, so readings are partitioned by device only |
//! | `ingest_quarantine` | first 8 bytes (device) | key = device ‖ id; scans list one device's quarantine |
//! | `device_keys` | first 8 bytes (device) | key = device ‖ epoch; scans list one device's keys |
//! | `epcis_index` | through the first `0x00` (kind ‖ value ‖ 0) | events by EPC, lot, location, business step: one index value per scan |
//! | every other table | the whole table | correct for every scan; small tables (organisations, members, master data) and tables scanned from end to end |

use std::collections::BTreeMap;

/// How the partition of a record is taken from its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartitionRule {
    /// One partition for the whole table (the partition part is empty).
    Table,
    /// The first `n` bytes of the key (a shorter key is its own partition).
    Prefix(usize),
    /// The key up to and including the first occurrence of the byte (the whole key if it has
    /// none).
    Through(u8),
}

impl PartitionRule {
    /// The partition part of `key`.
    #[must_use]
    pub fn partition<'k>(&self, key: &'k [u8]) -> &'k [u8] {
        match *self {
            Self::Table => &[],
            Self::Prefix(n) => &key[..n.min(key.len())],
            Self::Through(byte) => match key.iter().position(|&b| b == byte) {
                Some(at) => &key[..=at],
                None => key,
            },
        }
    }

    /// Whether `partition` is complete: every key that starts with it belongs to it.
    fn is_complete(&self, partition: &[u8]) -> bool {
        match *self {
            Self::Table => true,
            Self::Prefix(n) => partition.len() == n,
            Self::Through(byte) => partition.last() == Some(&byte),
        }
    }

    /// The partition holding every key of `from..to`, or `None` if the range may cross
    /// partitions. An empty range is `Some` of `from`'s partition.
    #[must_use]
    pub fn scan_partition<'k>(&self, from: &'k [u8], to: &[u8]) -> Option<&'k [u8]> {
        let partition = self.partition(from);
        if from >= to {
            return Some(partition);
        }
        if !self.is_complete(partition) {
            return None;
        }
        // Keys of the partition are exactly the keys starting with it (a complete partition):
        // the range stays inside if `to` is at most the first string after all of them.
        match successor(partition) {
            Some(bound) => (to <= bound.as_slice()).then_some(partition),
            None => Some(partition),
        }
    }
}

/// The smallest byte string greater than every string that starts with `prefix`, or `None`
/// if there is none (the prefix is empty or all `0xff`).
fn successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut out = prefix.to_vec();
    while let Some(last) = out.pop() {
        if last < 0xff {
            out.push(last + 1);
            return Some(out);
        }
    }
    None
}

/// The rule of every sidecar table: named ones, and [`PartitionRule::Table`] for the rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionRules {
    rules: BTreeMap<String, PartitionRule>,
}

impl PartitionRules {
    /// No named table: every table is one partition.
    #[must_use]
    pub fn whole_tables() -> Self {
        Self {
            rules: BTreeMap::new(),
        }
    }

    /// Sets the rule of `table`.
    #[must_use]
    pub fn with(mut self, table: &str, rule: PartitionRule) -> Self {
        self.rules.insert(table.to_owned(), rule);
        self
    }

    /// The rule of `table`.
    #[must_use]
    pub fn rule(&self, table: &str) -> PartitionRule {
        self.rules
            .get(table)
            .copied()
            .unwrap_or(PartitionRule::Table)
    }
}

impl Default for PartitionRules {
    /// The node's tables (see the module documentation).
    fn default() -> Self {
        Self::whole_tables()
            .with("ingest_readings", PartitionRule::Prefix(8))
            .with("ingest_quarantine", PartitionRule::Prefix(8))
            .with("device_keys", PartitionRule::Prefix(8))
            .with("epcis_index", PartitionRule::Through(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(rule: PartitionRule, from: &[u8], to: &[u8], expected: Option<&[u8]>) {
        assert_eq!(
            rule.scan_partition(from, to),
            expected,
            "{rule:?} {from:?}..{to:?}"
        );
    }

    #[test]
    fn partitions_follow_their_rule() {
        assert_eq!(PartitionRule::Table.partition(b"abc"), b"");
        assert_eq!(PartitionRule::Prefix(2).partition(b"abc"), b"ab");
        assert_eq!(PartitionRule::Prefix(8).partition(b"abc"), b"abc");
        assert_eq!(
            PartitionRule::Through(0).partition(b"\x01lot\x00\x09"),
            b"\x01lot\x00"
        );
        assert_eq!(PartitionRule::Through(0).partition(b"\x01lot"), b"\x01lot");
    }

    #[test]
    fn scans_inside_one_partition_are_found_and_crossing_ones_refused() {
        let device = [7u8; 8];
        let key = |seq: u64| [device.as_slice(), &seq.to_be_bytes()].concat();
        let p8 = PartitionRule::Prefix(8);
        // One device's sequence range, up to its last key, and to the prefix's successor.
        check(p8, &key(0), &key(u64::MAX), Some(&device));
        check(
            p8,
            &key(5),
            &[device.as_slice(), &[0xff; 9]].concat(),
            Some(&device),
        );
        check(p8, &key(5), &[7, 7, 7, 7, 7, 7, 7, 8], Some(&device));
        // Past the device, or from a key shorter than the partition: refused.
        check(p8, &key(5), &[7, 7, 7, 7, 7, 7, 7, 8, 0], None);
        check(p8, &[7, 7], &key(5), None);
        // An empty range is answered (empty) from any partition.
        check(p8, &key(5), &key(5), Some(&device));
        // The whole table is one partition: everything is inside.
        check(PartitionRule::Table, b"", &[0xff], Some(b""));
        // Index values end with 0: one value's range.
        let through = PartitionRule::Through(0);
        check(
            through,
            b"\x01lot\x00\x00\x05",
            b"\x01lot\x00\xff\xff",
            Some(b"\x01lot\x00"),
        );
        check(
            through,
            b"\x01lot\x00",
            b"\x01lot\x01",
            Some(b"\x01lot\x00"),
        );
        check(through, b"\x01lot\x00", b"\x01lou", None);
        check(through, b"\x01lot", b"\x01lou", None);
        // An all-0xff partition has no successor: every larger key starts with it.
        check(
            PartitionRule::Prefix(1),
            &[0xff, 1],
            &[0xff, 0xff, 0xff],
            Some(&[0xff]),
        );
    }

    #[test]
    fn unnamed_tables_are_whole_partitions() {
        let rules = PartitionRules::default();
        assert_eq!(rules.rule("ingest_readings"), PartitionRule::Prefix(8));
        assert_eq!(rules.rule("api_orgs"), PartitionRule::Table);
    }
}
