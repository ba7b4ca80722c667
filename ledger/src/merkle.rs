//! RFC 9162 §2.1 Merkle tree hashing: the leaf and node hash functions, the `Hash`,
//! `LeafIndex` and `TreeSize` newtypes, and small in-memory functions (the root and inclusion
//! path of a list of leaf hashes) used for reading batches, where the whole tree is in memory.
//!
//! The log itself never holds its whole tree in memory: see `tile` (layout and appender) and
//! `proof` (proofs read from tiles).

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};

/// Length in bytes of every hash in the tree (SHA-256).
pub const HASH_LEN: usize = 32;

/// Domain-separation prefix of a leaf hash (RFC 9162 §2.1.1).
const LEAF_PREFIX: u8 = 0x00;
/// Domain-separation prefix of an interior node hash (RFC 9162 §2.1.1).
const NODE_PREFIX: u8 = 0x01;

/// A SHA-256 hash in the tree: a leaf hash, a node hash or a root.
///
/// A newtype (not a bare `[u8; 32]`) so that a hash cannot be confused with a key or a
/// signature. `Debug` and `Display` print lowercase hex.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Hash(pub [u8; HASH_LEN]);

impl Hash {
    /// The hash as bytes.
    pub fn as_bytes(&self) -> &[u8; HASH_LEN] {
        &self.0
    }

    /// A hash from exactly 32 bytes; `None` for any other length.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        <[u8; HASH_LEN]>::try_from(bytes).ok().map(Self)
    }

    /// Standard (RFC 4648 §4, padded) base64, as used in checkpoints and proof files.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }

    /// Parses standard padded base64 of exactly 32 bytes. Non-canonical encodings (non-zero
    /// trailing bits) are rejected by the decoder.
    pub fn from_base64(text: &str) -> Result<Self, HashParseError> {
        // 32 bytes are always 44 base64 characters; checking first bounds the work.
        if text.len() != 44 {
            return Err(HashParseError::Length);
        }
        let bytes = STANDARD
            .decode(text.as_bytes())
            .map_err(|_| HashParseError::Base64)?;
        Self::from_slice(&bytes).ok_or(HashParseError::Length)
    }

    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        let mut out = String::with_capacity(HASH_LEN * 2);
        for byte in self.0 {
            push_hex_byte(&mut out, byte);
        }
        out
    }

    /// Parses 64 hex digits (either case).
    pub fn from_hex(text: &str) -> Result<Self, HashParseError> {
        let digits = text.as_bytes();
        if digits.len() != HASH_LEN * 2 {
            return Err(HashParseError::Length);
        }
        let mut out = [0u8; HASH_LEN];
        for (slot, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
            let high = hex_value(pair[0]).ok_or(HashParseError::Hex)?;
            let low = hex_value(pair[1]).ok_or(HashParseError::Hex)?;
            *slot = (high << 4) | low;
        }
        Ok(Self(out))
    }
}

/// Why a textual hash was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HashParseError {
    /// Not exactly 32 bytes once decoded (or not 44 base64 / 64 hex characters).
    #[error("a hash must be exactly 32 bytes")]
    Length,
    /// Not valid padded standard base64.
    #[error("a hash must be standard padded base64")]
    Base64,
    /// Not hex digits.
    #[error("a hash must be hex digits")]
    Hex,
}

pub(crate) fn push_hex_byte(out: &mut String, byte: u8) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    out.push(char::from(DIGITS[usize::from(byte >> 4)]));
    out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
}

pub(crate) fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({})", self.to_hex())
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl From<[u8; HASH_LEN]> for Hash {
    fn from(bytes: [u8; HASH_LEN]) -> Self {
        Self(bytes)
    }
}

/// The zero-based index of an entry (leaf) in the log.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub struct LeafIndex(pub u64);

/// The number of entries (leaves) in a tree.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub struct TreeSize(pub u64);

impl fmt::Display for LeafIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for TreeSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The leaf hash of an entry: `SHA-256(0x00 || entry)` (RFC 9162 §2.1.1). The entry is the exact
/// stored byte string; never re-encode before hashing.
pub fn leaf_hash(entry: &[u8]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([LEAF_PREFIX]);
    hasher.update(entry);
    Hash(hasher.finalize().into())
}

/// The hash of an interior node: `SHA-256(0x01 || left || right)` (RFC 9162 §2.1.1).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([NODE_PREFIX]);
    hasher.update(left.0);
    hasher.update(right.0);
    Hash(hasher.finalize().into())
}

/// The root of the empty tree: `SHA-256("")` (RFC 9162 §2.1.1).
pub fn empty_root() -> Hash {
    Hash(Sha256::digest([]).into())
}

/// The largest power of two strictly less than `n` (`n >= 2`): the split point `k` of
/// RFC 9162 §2.1.1.
pub(crate) fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1u64 << (63 - (n - 1).leading_zeros())
}

/// The Merkle Tree Hash (RFC 9162 §2.1.1) of a list of leaf hashes held in memory, in O(n)
/// node hashes and O(log n) extra space.
pub fn root_from_leaf_hashes(leaves: &[Hash]) -> Hash {
    let mut range = CompactRange::default();
    for leaf in leaves {
        range.push(*leaf);
    }
    range.root()
}

/// The inclusion path (RFC 9162 §2.1.3.1 `PATH(m, D[n])`) of leaf `index` in a tree made of
/// `leaves` held in memory, or `None` if `index` is out of range. Used for reading → batch-root
/// paths; log proofs come from tiles (`proof::inclusion_proof`).
pub fn inclusion_path_in(leaves: &[Hash], index: usize) -> Option<Vec<Hash>> {
    if index >= leaves.len() {
        return None;
    }
    let mut path = Vec::new();
    let mut lo = 0usize;
    let mut hi = leaves.len();
    // Walk down from the root, collecting the sibling subtree at each split, then reverse so
    // the path starts at the leaf's sibling.
    while hi - lo > 1 {
        let k = usize::try_from(split_point(u64::try_from(hi - lo).ok()?)).ok()?;
        if index < lo + k {
            path.push(root_from_leaf_hashes(&leaves[lo + k..hi]));
            hi = lo + k;
        } else {
            path.push(root_from_leaf_hashes(&leaves[lo..lo + k]));
            lo += k;
        }
    }
    path.reverse();
    Some(path)
}

/// The right edge of a tree being built leaf by leaf: one complete-subtree hash per set bit of
/// the size ("compact range" of the tree prefix). Appending costs one leaf push and, amortised,
/// one node hash; the root costs O(log n) node hashes.
#[derive(Clone, Debug, Default)]
pub struct CompactRange {
    size: u64,
    /// (height, hash) of the complete subtrees, heights strictly decreasing.
    stack: Vec<(u8, Hash)>,
}

impl CompactRange {
    /// Number of leaves pushed so far.
    pub fn size(&self) -> TreeSize {
        TreeSize(self.size)
    }

    /// Appends one leaf hash.
    pub fn push(&mut self, leaf: Hash) {
        self.push_with(leaf, |_, _| {});
    }

    /// Appends one leaf hash and calls `on_node(height, hash)` for every complete subtree this
    /// leaf completes, from height 0 (the leaf itself) upward.
    pub(crate) fn push_with(&mut self, leaf: Hash, mut on_node: impl FnMut(u8, &Hash)) {
        let mut height = 0u8;
        let mut hash = leaf;
        on_node(height, &hash);
        while let Some(&(top_height, top_hash)) = self.stack.last() {
            if top_height != height {
                break;
            }
            self.stack.pop();
            hash = node_hash(&top_hash, &hash);
            height += 1;
            on_node(height, &hash);
        }
        self.stack.push((height, hash));
        // The tree cannot hold 2^64 leaves: a caller would need more storage than exists.
        self.size = self.size.saturating_add(1);
    }

    /// The Merkle Tree Hash of the leaves pushed so far.
    pub fn root(&self) -> Hash {
        let mut iter = self.stack.iter().rev();
        let Some(&(_, mut acc)) = iter.next() else {
            return empty_root();
        };
        for (_, left) in iter {
            acc = node_hash(left, &acc);
        }
        acc
    }

    /// Restores a range from its complete-subtree hashes (one per set bit of `size`, from the
    /// highest bit down). Returns `None` if the count does not match.
    pub(crate) fn from_parts(size: u64, hashes: Vec<Hash>) -> Option<Self> {
        let heights: Vec<u8> = (0..64u8).rev().filter(|h| size >> h & 1 == 1).collect();
        if heights.len() != hashes.len() {
            return None;
        }
        Some(Self {
            size,
            stack: heights.into_iter().zip(hashes).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_point_is_largest_power_of_two_below() {
        for (n, k) in [
            (2, 1),
            (3, 2),
            (4, 2),
            (5, 4),
            (8, 4),
            (9, 8),
            (1 << 40, 1 << 39),
        ] {
            assert_eq!(split_point(n), k, "n = {n}");
        }
    }

    #[test]
    fn hash_text_round_trips() {
        let h = leaf_hash(b"x");
        assert_eq!(Hash::from_hex(&h.to_hex()), Ok(h));
        assert_eq!(Hash::from_base64(&h.to_base64()), Ok(h));
        assert_eq!(Hash::from_base64("AAAA"), Err(HashParseError::Length));
        assert_eq!(Hash::from_hex("zz"), Err(HashParseError::Length));
    }

    #[test]
    fn compact_range_restores_from_parts() {
        let leaves: Vec<Hash> = (0u32..77).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        let mut range = CompactRange::default();
        for leaf in &leaves {
            range.push(*leaf);
        }
        let parts: Vec<Hash> = range.stack.iter().map(|(_, h)| *h).collect();
        let restored = CompactRange::from_parts(77, parts).expect("parts match the size");
        assert_eq!(restored.root(), root_from_leaf_hashes(&leaves));
    }
}
