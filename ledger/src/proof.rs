//! Inclusion and consistency proofs: generation from stored tiles (RFC 9162 §2.1.3.1 `PATH`
//! and §2.1.4.1 `SUBPROOF`) and verification (RFC 9162 §2.1.3.2 and §2.1.4.2).
//!
//! Generation reads only the tiles on the path: every subtree hash the proof needs is either a
//! stored hash or is recomputed from at most 128 hashes of one tile, so a proof touches at most
//! a few tiles per tile level and never the whole tree.

use alloc::vec::Vec;

use crate::merkle::{HASH_LEN, Hash, LeafIndex, TreeSize, empty_root, node_hash, split_point};
use crate::tile::{TILE_HEIGHT, TILE_WIDTH, TileId, TileReader, complete_subtree_root};

/// Longest proof path accepted: a tree of at most 2^64 leaves has at most 64 levels.
pub const MAX_PROOF_HASHES: usize = 64;

/// A proof that leaf `leaf_index` is in the tree of size `tree_size` (RFC 9162 §2.1.3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InclusionProof {
    /// Index of the proven leaf.
    pub leaf_index: LeafIndex,
    /// Size of the tree the proof is for.
    pub tree_size: TreeSize,
    /// Sibling hashes from the leaf's sibling up to the root's child.
    pub path: Vec<Hash>,
}

/// A proof that the tree of size `old_size` is a prefix of the tree of size `new_size`
/// (RFC 9162 §2.1.4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsistencyProof {
    /// Size of the older tree.
    pub old_size: TreeSize,
    /// Size of the newer tree.
    pub new_size: TreeSize,
    /// The proof hashes.
    pub path: Vec<Hash>,
}

/// Why a proof could not be generated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError<E> {
    /// Reading a tile from storage failed.
    #[error("reading a tile failed: {0}")]
    Storage(E),
    /// A tile the proof needs is not stored.
    #[error("tile {level}/{index} is needed but not stored")]
    MissingTile {
        /// Tile level.
        level: u8,
        /// Tile index.
        index: u64,
    },
    /// A stored tile is narrower than the tree size needs, or is not whole hashes.
    #[error("tile {level}/{index} has {len} bytes, needs at least {needed}")]
    ShortTile {
        /// Tile level.
        level: u8,
        /// Tile index.
        index: u64,
        /// Bytes stored.
        len: usize,
        /// Bytes needed.
        needed: usize,
    },
    /// The leaf is not in the tree (`leaf_index >= tree_size`).
    #[error("leaf {leaf} is not in a tree of size {size}")]
    LeafOutOfRange {
        /// Requested leaf.
        leaf: u64,
        /// Requested tree size.
        size: u64,
    },
    /// The old size is larger than the new size.
    #[error("old size {old} is larger than new size {new}")]
    ShrinkingTree {
        /// Requested old size.
        old: u64,
        /// Requested new size.
        new: u64,
    },
}

/// Why a proof did not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The leaf index is not below the tree size.
    #[error("leaf index {leaf} is not below tree size {size}")]
    LeafOutOfRange {
        /// Leaf index.
        leaf: u64,
        /// Tree size.
        size: u64,
    },
    /// The old tree is larger than the new one.
    #[error("old size {old} is larger than new size {new}")]
    ShrinkingTree {
        /// Old size.
        old: u64,
        /// New size.
        new: u64,
    },
    /// The path has the wrong number of hashes for these sizes.
    #[error("proof has the wrong number of hashes")]
    WrongPathLength,
    /// The hashes do not lead to the expected root.
    #[error("proof does not lead to the expected root")]
    RootMismatch,
}

/// Reads complete-subtree hashes from tiles for one tree size, caching the tiles it read.
struct SubtreeHashes<'r, R> {
    reader: &'r R,
    size: u64,
    cache: Vec<((u8, u64), Vec<u8>)>,
}

impl<'r, R: TileReader> SubtreeHashes<'r, R> {
    fn new(reader: &'r R, size: u64) -> Self {
        Self {
            reader,
            size,
            cache: Vec::new(),
        }
    }

    /// Bytes of tile (`level`, `index`), at least as wide as the tree size needs.
    fn tile(&mut self, level: u8, index: u64) -> Result<&[u8], ProofError<R::Error>> {
        let position = match self
            .cache
            .iter()
            .position(|(key, _)| *key == (level, index))
        {
            Some(position) => position,
            None => {
                let needed = TileId::in_tree(level, index, TreeSize(self.size))
                    .map(|t| t.byte_len())
                    .ok_or(ProofError::MissingTile { level, index })?;
                let bytes = self
                    .reader
                    .read_tile(level, index)
                    .map_err(ProofError::Storage)?
                    .ok_or(ProofError::MissingTile { level, index })?;
                if bytes.len() < needed || !bytes.len().is_multiple_of(HASH_LEN) {
                    return Err(ProofError::ShortTile {
                        level,
                        index,
                        len: bytes.len(),
                        needed,
                    });
                }
                self.cache.push(((level, index), bytes));
                self.cache.len() - 1
            }
        };
        Ok(&self.cache[position].1)
    }

    /// Hash of the complete subtree of height `height` whose leftmost leaf is `start`
    /// (`start` is a multiple of `2^height`, and the subtree lies inside the tree).
    fn complete(&mut self, height: u32, start: u64) -> Result<Hash, ProofError<R::Error>> {
        let tile_height = u32::from(TILE_HEIGHT);
        let level = u8::try_from(height / tile_height).unwrap_or(u8::MAX);
        let sub = height % tile_height;
        // Index of the subtree's first hash at the tile's base level (height 8 * level).
        let first = start >> (u32::from(level) * tile_height);
        let index = first / u64::from(TILE_WIDTH);
        let offset = usize::try_from(first % u64::from(TILE_WIDTH)).unwrap_or(0);
        let count = 1usize << sub;
        let tile = self.tile(level, index)?;
        let bytes = &tile[offset * HASH_LEN..(offset + count) * HASH_LEN];
        Ok(complete_subtree_root(bytes))
    }

    /// `MTH(D[start:end])` for `start < end <= size`, where `start` is a multiple of the
    /// largest power of two not above `end - start` (true of every range RFC 9162 proofs use).
    fn range(&mut self, start: u64, end: u64) -> Result<Hash, ProofError<R::Error>> {
        let n = end - start;
        if n.is_power_of_two() && start.is_multiple_of(n) {
            return self.complete(n.trailing_zeros(), start);
        }
        let k = split_point(n);
        let left = self.range(start, start + k)?;
        let right = self.range(start + k, end)?;
        Ok(node_hash(&left, &right))
    }
}

/// The root of the tree of `size` leaves, from tiles.
pub fn tree_root<R: TileReader>(size: TreeSize, reader: &R) -> Result<Hash, ProofError<R::Error>> {
    if size.0 == 0 {
        return Ok(empty_root());
    }
    SubtreeHashes::new(reader, size.0).range(0, size.0)
}

/// The inclusion proof of leaf `index` in the tree of `size` leaves, from tiles
/// (RFC 9162 §2.1.3.1).
pub fn inclusion_proof<R: TileReader>(
    index: LeafIndex,
    size: TreeSize,
    reader: &R,
) -> Result<InclusionProof, ProofError<R::Error>> {
    if index.0 >= size.0 {
        return Err(ProofError::LeafOutOfRange {
            leaf: index.0,
            size: size.0,
        });
    }
    let mut hashes = SubtreeHashes::new(reader, size.0);
    let mut path = Vec::new();
    // PATH(m, D[lo:hi]) walked from the root down; reversed at the end.
    let (mut lo, mut hi) = (0u64, size.0);
    while hi - lo > 1 {
        let k = split_point(hi - lo);
        if index.0 < lo + k {
            path.push(hashes.range(lo + k, hi)?);
            hi = lo + k;
        } else {
            path.push(hashes.range(lo, lo + k)?);
            lo += k;
        }
    }
    path.reverse();
    Ok(InclusionProof {
        leaf_index: index,
        tree_size: size,
        path,
    })
}

/// The consistency proof between trees of `old` and `new` leaves, from tiles
/// (RFC 9162 §2.1.4.1). Empty when `old` is 0 or equal to `new`.
pub fn consistency_proof<R: TileReader>(
    old: TreeSize,
    new: TreeSize,
    reader: &R,
) -> Result<ConsistencyProof, ProofError<R::Error>> {
    if old.0 > new.0 {
        return Err(ProofError::ShrinkingTree {
            old: old.0,
            new: new.0,
        });
    }
    let mut path = Vec::new();
    if old.0 != 0 && old.0 != new.0 {
        let mut hashes = SubtreeHashes::new(reader, new.0);
        // SUBPROOF(m, D[lo:hi], complete) walked from the root down.
        let (mut m, mut lo, mut hi, mut complete) = (old.0, 0u64, new.0, true);
        while m != hi - lo {
            let n = hi - lo;
            let k = split_point(n);
            if m <= k {
                path.push(hashes.range(lo + k, hi)?);
                hi = lo + k;
            } else {
                path.push(hashes.range(lo, lo + k)?);
                lo += k;
                m -= k;
                complete = false;
            }
        }
        if !complete {
            path.push(hashes.range(lo, hi)?);
        }
        path.reverse();
    }
    Ok(ConsistencyProof {
        old_size: old,
        new_size: new,
        path,
    })
}

/// The root an inclusion path leads to (RFC 9162 §2.1.3.2 steps 1-3), or an error if the
/// path length does not fit the index and size.
pub fn root_from_inclusion_path(
    index: LeafIndex,
    size: TreeSize,
    leaf: &Hash,
    path: &[Hash],
) -> Result<Hash, VerifyError> {
    if index.0 >= size.0 {
        return Err(VerifyError::LeafOutOfRange {
            leaf: index.0,
            size: size.0,
        });
    }
    if path.len() > MAX_PROOF_HASHES {
        return Err(VerifyError::WrongPathLength);
    }
    let (mut fn_, mut sn) = (index.0, size.0 - 1);
    let mut r = *leaf;
    for p in path {
        if sn == 0 {
            return Err(VerifyError::WrongPathLength);
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err(VerifyError::WrongPathLength);
    }
    Ok(r)
}

impl InclusionProof {
    /// Checks that the leaf with hash `leaf` is at `leaf_index` in the tree of `tree_size`
    /// with root `root` (RFC 9162 §2.1.3.2).
    pub fn verify(&self, leaf: &Hash, root: &Hash) -> Result<(), VerifyError> {
        let computed = root_from_inclusion_path(self.leaf_index, self.tree_size, leaf, &self.path)?;
        if computed == *root {
            Ok(())
        } else {
            Err(VerifyError::RootMismatch)
        }
    }
}

impl ConsistencyProof {
    /// Checks that the tree of `old_size` with root `old_root` is a prefix of the tree of
    /// `new_size` with root `new_root` (RFC 9162 §2.1.4.2).
    ///
    /// Edge cases: equal sizes need an empty proof and equal roots; an old size of 0 needs an
    /// empty proof and `old_root` equal to the empty-tree root (stricter than some libraries,
    /// which ignore the old root then).
    pub fn verify(&self, old_root: &Hash, new_root: &Hash) -> Result<(), VerifyError> {
        let (first, second) = (self.old_size.0, self.new_size.0);
        if first > second {
            return Err(VerifyError::ShrinkingTree {
                old: first,
                new: second,
            });
        }
        if first == 0 || first == second {
            if !self.path.is_empty() {
                return Err(VerifyError::WrongPathLength);
            }
            let expected_old = if first == 0 { empty_root() } else { *new_root };
            return if *old_root == expected_old {
                Ok(())
            } else {
                Err(VerifyError::RootMismatch)
            };
        }
        // Step 1: a non-trivial proof is never empty.
        if self.path.is_empty() || self.path.len() > MAX_PROOF_HASHES {
            return Err(VerifyError::WrongPathLength);
        }
        // Step 2: if first is a power of two, the old root itself starts the path.
        let mut hashes = self.path.iter();
        let seed = if first.is_power_of_two() {
            *old_root
        } else {
            *hashes.next().ok_or(VerifyError::WrongPathLength)?
        };
        // Steps 3-4.
        let (mut fn_, mut sn) = (first - 1, second - 1);
        while fn_ & 1 == 1 {
            fn_ >>= 1;
            sn >>= 1;
        }
        // Step 5.
        let (mut fr, mut sr) = (seed, seed);
        // Step 6.
        for c in hashes {
            if sn == 0 {
                return Err(VerifyError::WrongPathLength);
            }
            if fn_ & 1 == 1 || fn_ == sn {
                fr = node_hash(c, &fr);
                sr = node_hash(c, &sr);
                if fn_ & 1 == 0 {
                    while fn_ & 1 == 0 && fn_ != 0 {
                        fn_ >>= 1;
                        sn >>= 1;
                    }
                }
            } else {
                sr = node_hash(&sr, c);
            }
            fn_ >>= 1;
            sn >>= 1;
        }
        // Step 7.
        if sn != 0 {
            return Err(VerifyError::WrongPathLength);
        }
        if fr == *old_root && sr == *new_root {
            Ok(())
        } else {
            Err(VerifyError::RootMismatch)
        }
    }
}
