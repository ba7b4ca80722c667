//! Inclusion and consistency proofs: generation from stored tiles (RFC 9162 §2.1.3.1 `PATH`
//! and §2.1.4.1 `SUBPROOF`) and verification (RFC 9162 §2.1.3.2 and §2.1.4.2).
//!
//! Generation reads only the tiles on the path: every subtree hash the proof needs is either a
//! stored hash or is recomputed from at most 128 hashes of one tile, so a proof touches at most
//! a few tiles per tile level and never the whole tree.
//!
//! Almost all of the time goes into that recomputation (about 250 node hashes per tile level:
//! the siblings at heights 0..7 inside a tile are disjoint subtrees, so no pass can share work
//! between them). The `_cached` variants keep the internal tree of a tile ([`TileInterior`])
//! in an [`InteriorCache`] instead: complete subtree hashes never change in an append-only log
//! (RFC 9162 §2.1.1; C2SP tlog-tiles prefix stability), so a cached internal tree gives exactly
//! the bytes a recomputation would. [`TileInteriorCache`] keeps full tiles of levels >= 1 (few,
//! and on every proof's path) in a bounded LRU, and the rightmost, partial tile of each level
//! (on every proof's path against one checkpoint) in one slot per level. Full level-0 tiles are
//! not cached: a random leaf's tile is almost never hot.

use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use alloc::vec;
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

/// Nodes of a tile's internal tree: its 256 hashes, then 128 at height 1, ... 1 at height 8.
const INTERIOR_NODES: usize = 2 * TILE_WIDTH as usize - 1;

/// Where the nodes of relative height `height` (0..=8) start in [`TileInterior`]'s array.
fn interior_offset(height: u32) -> usize {
    INTERIOR_NODES + 1 - ((INTERIOR_NODES + 1) >> height)
}

/// Every complete subtree hash inside the first `width` hashes of one tile: the tile's own
/// hashes (relative height 0) and every aligned subtree of relative height 1..=8 that lies
/// wholly within the prefix. 511 hashes (16,352 bytes) for a full tile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TileInterior {
    width: usize,
    nodes: Vec<Hash>,
}

impl TileInterior {
    /// Builds the internal tree of the tile prefix `bytes` (whole hashes; at most 256 are used).
    /// Costs `width - popcount(width)` node hashes, at most 255.
    #[must_use]
    pub fn build(bytes: &[u8]) -> Self {
        let mut nodes = vec![Hash::default(); INTERIOR_NODES];
        let mut width = 0usize;
        for (slot, chunk) in nodes
            .iter_mut()
            .zip(bytes.chunks_exact(HASH_LEN).take(usize::from(TILE_WIDTH)))
        {
            *slot = Hash::from_slice(chunk).unwrap_or_default();
            width += 1;
        }
        for height in 1..=u32::from(TILE_HEIGHT) {
            let below = interior_offset(height - 1);
            let here = interior_offset(height);
            for j in 0..(width >> height) {
                nodes[here + j] = node_hash(&nodes[below + 2 * j], &nodes[below + 2 * j + 1]);
            }
        }
        Self { width, nodes }
    }

    /// Number of tile hashes this internal tree covers (256 for a full tile).
    #[must_use]
    pub fn width(&self) -> usize {
        self.width
    }

    /// Whether it covers a full tile (and so can never change).
    #[must_use]
    pub fn is_full(&self) -> bool {
        self.width == usize::from(TILE_WIDTH)
    }

    /// The hash of the subtree of relative height `height` at aligned position `position`
    /// (its first tile hash is `position << height`), if it lies within the covered prefix.
    #[must_use]
    pub fn node(&self, height: u32, position: usize) -> Option<Hash> {
        if height > u32::from(TILE_HEIGHT) {
            return None;
        }
        let end = position.checked_add(1)?.checked_shl(height)?;
        if end > self.width {
            return None;
        }
        self.nodes.get(interior_offset(height) + position).copied()
    }
}

/// Where proof generation keeps and finds [`TileInterior`]s. Methods take `&self` so that a
/// shared cache can lock only around a lookup, never around a whole proof.
///
/// Contract: `get(level, index)` returns only an interior built from the bytes of that tile
/// (any stored version: versions are prefixes of one another, so their complete subtrees agree).
pub trait InteriorCache {
    /// Whether this cache keeps anything. When it does not, proofs hash straight from tiles.
    fn enabled(&self) -> bool {
        true
    }
    /// The cached internal tree of tile (`level`, `index`), if any.
    fn get(&self, level: u8, index: u64) -> Option<Arc<TileInterior>>;
    /// Offers an internal tree just built; the cache may keep it or not.
    fn put(&self, level: u8, index: u64, interior: &Arc<TileInterior>);
}

/// No cache: every proof recomputes from tiles.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoCache;

impl InteriorCache for NoCache {
    fn enabled(&self) -> bool {
        false
    }
    fn get(&self, _level: u8, _index: u64) -> Option<Arc<TileInterior>> {
        None
    }
    fn put(&self, _level: u8, _index: u64, _interior: &Arc<TileInterior>) {}
}

/// Default number of full tiles a [`TileInteriorCache`] keeps (about 16 MiB): every level-1
/// tile of a log of up to 67 million entries.
pub const INTERIOR_CACHE_TILES_DEFAULT: usize = 1024;
/// Hard ceiling on the full tiles a [`TileInteriorCache`] keeps (about 1 GiB).
pub const INTERIOR_CACHE_TILES_CEILING: usize = 65_536;
/// Levels a tree of at most 2^64 leaves has tiles at (heights 0..=63, 8 per level).
const LEVELS: usize = 8;

/// A bounded cache of tile internal trees: full tiles of levels >= 1 in an LRU of at most
/// `tiles_max` entries, plus one slot per level for the rightmost partial tile (the widest seen
/// of the rightmost index seen). Memory is at most `(tiles_max + 8) * 16,352` bytes of hashes.
#[derive(Debug)]
pub struct TileInteriorCache {
    tiles_max: usize,
    full: BTreeMap<(u8, u64), (u64, Arc<TileInterior>)>,
    recency: BTreeMap<u64, (u8, u64)>,
    clock: u64,
    edge: [Option<(u64, Arc<TileInterior>)>; LEVELS],
}

impl TileInteriorCache {
    /// A cache of at most `tiles_max` full tiles (capped at [`INTERIOR_CACHE_TILES_CEILING`];
    /// 0 keeps only the partial right-edge tiles).
    #[must_use]
    pub fn new(tiles_max: usize) -> Self {
        Self {
            tiles_max: tiles_max.min(INTERIOR_CACHE_TILES_CEILING),
            full: BTreeMap::new(),
            recency: BTreeMap::new(),
            clock: 0,
            edge: Default::default(),
        }
    }

    /// Number of full tiles held.
    #[must_use]
    pub fn full_tiles(&self) -> usize {
        self.full.len()
    }

    /// Number of partial right-edge tiles held (at most one per level).
    #[must_use]
    pub fn partial_tiles(&self) -> usize {
        self.edge.iter().flatten().count()
    }

    /// The internal tree of tile (`level`, `index`), marking it recently used.
    pub fn get(&mut self, level: u8, index: u64) -> Option<Arc<TileInterior>> {
        self.clock += 1;
        let now = self.clock;
        if let Some((used, interior)) = self.full.get_mut(&(level, index)) {
            self.recency.remove(used);
            *used = now;
            self.recency.insert(now, (level, index));
            return Some(interior.clone());
        }
        match self.edge.get(usize::from(level)) {
            Some(Some((edge_index, interior))) if *edge_index == index => Some(interior.clone()),
            _ => None,
        }
    }

    /// Keeps `interior` if it is a full tile of level >= 1 (evicting the least recently used
    /// full tile beyond the limit) or a partial tile at least as far right and as wide as the
    /// level's slot holds.
    pub fn put(&mut self, level: u8, index: u64, interior: &Arc<TileInterior>) {
        if interior.is_full() {
            if level == 0 || self.tiles_max == 0 {
                return;
            }
            self.clock += 1;
            let now = self.clock;
            if let Some((used, _)) = self.full.insert((level, index), (now, interior.clone())) {
                self.recency.remove(&used);
            }
            self.recency.insert(now, (level, index));
            while self.full.len() > self.tiles_max {
                let Some((_, oldest)) = self.recency.pop_first() else {
                    break;
                };
                self.full.remove(&oldest);
            }
            // The level's slot may hold this tile's narrower version: no longer needed.
            if let Some(slot) = self.edge.get_mut(usize::from(level))
                && slot.as_ref().is_some_and(|(i, _)| *i == index)
            {
                *slot = None;
            }
            return;
        }
        let Some(slot) = self.edge.get_mut(usize::from(level)) else {
            return;
        };
        let newer = match slot {
            Some((held, old)) => index > *held || (index == *held && interior.width > old.width),
            None => true,
        };
        if newer {
            *slot = Some((index, interior.clone()));
        }
    }
}

impl InteriorCache for core::cell::RefCell<TileInteriorCache> {
    fn get(&self, level: u8, index: u64) -> Option<Arc<TileInterior>> {
        self.borrow_mut().get(level, index)
    }
    fn put(&self, level: u8, index: u64, interior: &Arc<TileInterior>) {
        self.borrow_mut().put(level, index, interior);
    }
}

#[cfg(feature = "std")]
impl InteriorCache for std::sync::Mutex<TileInteriorCache> {
    fn get(&self, level: u8, index: u64) -> Option<Arc<TileInterior>> {
        // A panic while holding the lock cannot leave the maps inconsistent in a way that
        // matters: an entry is either present and correct or absent.
        self.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(level, index)
    }
    fn put(&self, level: u8, index: u64, interior: &Arc<TileInterior>) {
        self.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .put(level, index, interior);
    }
}

/// Reads complete-subtree hashes from tiles for one tree size, keeping the tiles and internal
/// trees it used for the rest of the proof.
struct SubtreeHashes<'r, R, C> {
    reader: &'r R,
    interiors: &'r C,
    size: u64,
    cache: Vec<((u8, u64), Vec<u8>)>,
    built: Vec<((u8, u64), Arc<TileInterior>)>,
}

impl<'r, R: TileReader, C: InteriorCache> SubtreeHashes<'r, R, C> {
    fn new(reader: &'r R, interiors: &'r C, size: u64) -> Self {
        Self {
            reader,
            interiors,
            size,
            cache: Vec::new(),
            built: Vec::new(),
        }
    }

    /// The internal tree of tile (`level`, `index`) covering at least `needed` hashes: from
    /// this proof's own, from the cache, or built from the tile (and offered to the cache).
    fn interior(
        &mut self,
        level: u8,
        index: u64,
        needed: usize,
    ) -> Result<Arc<TileInterior>, ProofError<R::Error>> {
        if let Some((_, interior)) = self.built.iter().find(|(key, _)| *key == (level, index)) {
            return Ok(interior.clone());
        }
        let interior = match self.interiors.get(level, index) {
            Some(interior) if interior.width() >= needed => interior,
            _ => {
                let interior = Arc::new(TileInterior::build(self.tile(level, index)?));
                self.interiors.put(level, index, &interior);
                interior
            }
        };
        self.built.push(((level, index), interior.clone()));
        Ok(interior)
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
        if self.interiors.enabled() {
            let width = TileId::in_tree(level, index, TreeSize(self.size))
                .map(|t| usize::from(t.width))
                .ok_or(ProofError::MissingTile { level, index })?;
            // Full level-0 tiles are hashed directly: see the module comment.
            if level > 0 || width < usize::from(TILE_WIDTH) {
                let interior = self.interior(level, index, width)?;
                if let Some(hash) = interior.node(sub, offset >> sub) {
                    return Ok(hash);
                }
            }
        }
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
    SubtreeHashes::new(reader, &NoCache, size.0).range(0, size.0)
}

/// The inclusion proof of leaf `index` in the tree of `size` leaves, from tiles
/// (RFC 9162 §2.1.3.1).
pub fn inclusion_proof<R: TileReader>(
    index: LeafIndex,
    size: TreeSize,
    reader: &R,
) -> Result<InclusionProof, ProofError<R::Error>> {
    inclusion_proof_cached(index, size, reader, &NoCache)
}

/// As [`inclusion_proof`], taking and keeping tile internal trees in `cache`. Gives the same
/// proof; may succeed without reading a tile the cache already covers.
pub fn inclusion_proof_cached<R: TileReader, C: InteriorCache>(
    index: LeafIndex,
    size: TreeSize,
    reader: &R,
    cache: &C,
) -> Result<InclusionProof, ProofError<R::Error>> {
    if index.0 >= size.0 {
        return Err(ProofError::LeafOutOfRange {
            leaf: index.0,
            size: size.0,
        });
    }
    let mut hashes = SubtreeHashes::new(reader, cache, size.0);
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
    consistency_proof_cached(old, new, reader, &NoCache)
}

/// As [`consistency_proof`], taking and keeping tile internal trees in `cache`. Gives the same
/// proof; may succeed without reading a tile the cache already covers.
pub fn consistency_proof_cached<R: TileReader, C: InteriorCache>(
    old: TreeSize,
    new: TreeSize,
    reader: &R,
    cache: &C,
) -> Result<ConsistencyProof, ProofError<R::Error>> {
    if old.0 > new.0 {
        return Err(ProofError::ShrinkingTree {
            old: old.0,
            new: new.0,
        });
    }
    let mut path = Vec::new();
    if old.0 != 0 && old.0 != new.0 {
        let mut hashes = SubtreeHashes::new(reader, cache, new.0);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::leaf_hash;
    use crate::tile::{InMemoryTiles, TileAppender};
    use core::cell::RefCell;

    /// A tiled tree grown leaf by leaf; leaf `i` is `leaf_hash(i as big-endian bytes)`.
    struct Grower {
        appender: TileAppender,
        tiles: InMemoryTiles,
    }

    impl Grower {
        fn new() -> Self {
            Self {
                appender: TileAppender::new(),
                tiles: InMemoryTiles::new(),
            }
        }

        fn grow_to(&mut self, size: u64) {
            let from = self.appender.size().0;
            let leaves: Vec<Hash> = (from..size).map(|i| leaf_hash(&i.to_be_bytes())).collect();
            for chunk in leaves.chunks(1000) {
                let outcome = self.appender.append(chunk);
                self.tiles.store_all(&outcome.changed_tiles);
            }
        }
    }

    /// Leaf indexes worth checking in a tree of `size`: both ends, tile edges, and a stride.
    fn indexes(size: u64) -> Vec<u64> {
        let mut picked: Vec<u64> = (0..size).step_by(997).collect();
        for edge in [0, 1, 255, 256, 257, 65_535, 65_536, 65_537, size / 2] {
            if edge < size {
                picked.push(edge);
            }
        }
        picked.extend(size.saturating_sub(3)..size);
        picked
    }

    /// Every proof `cache` gives at `size` equals the proof without a cache.
    fn check_same_proofs(tiles: &InMemoryTiles, size: u64, cache: &RefCell<TileInteriorCache>) {
        let size = TreeSize(size);
        for index in indexes(size.0) {
            let plain = inclusion_proof(LeafIndex(index), size, tiles);
            let cached = inclusion_proof_cached(LeafIndex(index), size, tiles, cache);
            assert_eq!(plain, cached, "inclusion of {index} in {}", size.0);
        }
        for old in indexes(size.0 + 1) {
            let plain = consistency_proof(TreeSize(old), size, tiles);
            let cached = consistency_proof_cached(TreeSize(old), size, tiles, cache);
            assert_eq!(plain, cached, "consistency {old} -> {}", size.0);
        }
    }

    #[test]
    fn cached_proofs_equal_uncached_proofs_as_tiles_become_full() {
        // Sizes cross a level-0 tile filling (256, 512), the level-1 tile 0 filling (65,536)
        // and a second one (131,072), with stops just before each so that the same cache first
        // holds a tile as partial and then sees it full.
        let sizes = [
            1, 2, 3, 255, 256, 257, 300, 511, 512, 513, 65_535, 65_536, 65_537, 66_000, 131_071,
            131_072, 131_073, 140_000,
        ];
        let mut tree = Grower::new();
        let roomy = RefCell::new(TileInteriorCache::new(INTERIOR_CACHE_TILES_DEFAULT));
        // A limit of one full tile forces evictions once two level-1 tiles are full.
        let tight = RefCell::new(TileInteriorCache::new(1));
        let mut done = Vec::new();
        for size in sizes {
            tree.grow_to(size);
            check_same_proofs(&tree.tiles, size, &roomy);
            check_same_proofs(&tree.tiles, size, &tight);
            // Older sizes again, now that the cache holds wider right-edge tiles than they need.
            if let Some(&older) = done.last() {
                check_same_proofs(&tree.tiles, older, &roomy);
            }
            done.push(size);
        }
        assert!(roomy.borrow().full_tiles() >= 2);
        assert_eq!(tight.borrow().full_tiles(), 1);
        assert!(roomy.borrow().partial_tiles() <= LEVELS);
    }

    #[test]
    fn tile_interior_nodes_are_the_complete_subtree_roots() {
        let bytes: Vec<u8> = (0u64..256)
            .flat_map(|i| leaf_hash(&i.to_be_bytes()).0)
            .collect();
        for width in [1usize, 2, 3, 128, 200, 255, 256] {
            let interior = TileInterior::build(&bytes[..width * HASH_LEN]);
            assert_eq!(interior.width(), width);
            assert_eq!(interior.is_full(), width == 256);
            for height in 0..=8u32 {
                let count = 1usize << height;
                for position in 0..(256 / count) {
                    let end = (position + 1) * count;
                    let expected = (end <= width).then(|| {
                        complete_subtree_root(&bytes[position * count * HASH_LEN..end * HASH_LEN])
                    });
                    assert_eq!(
                        interior.node(height, position),
                        expected,
                        "{height}/{position}"
                    );
                }
            }
            assert_eq!(interior.node(9, 0), None);
        }
    }

    #[test]
    fn interior_cache_keeps_full_upper_tiles_up_to_its_limit_and_one_edge_per_level() {
        let full = Arc::new(TileInterior::build(&[7u8; 256 * HASH_LEN]));
        let narrow = Arc::new(TileInterior::build(&[7u8; 10 * HASH_LEN]));
        let wide = Arc::new(TileInterior::build(&[7u8; 20 * HASH_LEN]));
        let mut cache = TileInteriorCache::new(2);

        // Full level-0 tiles are never kept.
        cache.put(0, 5, &full);
        assert_eq!(cache.get(0, 5), None);

        // Least recently used full tile goes first.
        cache.put(1, 0, &full);
        cache.put(1, 1, &full);
        assert!(cache.get(1, 0).is_some());
        cache.put(1, 2, &full);
        assert_eq!(cache.full_tiles(), 2);
        assert!(cache.get(1, 0).is_some());
        assert_eq!(cache.get(1, 1), None);
        assert!(cache.get(1, 2).is_some());

        // One partial slot per level: wider or further right replaces, narrower does not.
        cache.put(0, 9, &wide);
        cache.put(0, 9, &narrow);
        assert_eq!(cache.get(0, 9).map(|i| i.width()), Some(20));
        cache.put(0, 8, &wide);
        assert_eq!(cache.get(0, 8), None);
        cache.put(0, 10, &narrow);
        assert_eq!(cache.get(0, 9), None);
        assert_eq!(cache.get(0, 10).map(|i| i.width()), Some(10));
        assert_eq!(cache.partial_tiles(), 1);

        // A tile that becomes full leaves its level's partial slot for the LRU.
        cache.put(2, 0, &narrow);
        cache.put(2, 0, &full);
        assert_eq!(cache.partial_tiles(), 1);
        assert!(cache.get(2, 0).is_some_and(|i| i.is_full()));

        // A limit of zero keeps no full tile.
        let mut off = TileInteriorCache::new(0);
        off.put(1, 0, &full);
        assert_eq!(off.full_tiles(), 0);
    }
}
