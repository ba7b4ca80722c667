//! C2SP tlog-tiles layout: tile and entry-bundle identifiers and paths, entry-bundle encoding,
//! the `TileReader` storage interface, an in-memory tile set, and the `TileAppender` that keeps
//! the right edge of the tree and says which tiles each append changed.
//!
//! Layout (C2SP tlog-tiles, "Merkle Tree"): a tile at level `L`, index `N` holds up to 256
//! consecutive hashes of complete subtrees of height `8L`: level 0 holds leaf hashes, level 1 the
//! roots of full level-0 tiles, and so on. A partial tile (`.p/<W>`, `1 <= W <= 255`) is a prefix
//! of the full tile it grows into, so storage may keep only the latest version of each tile.
//!
//! API notes for storage and the sequencer:
//! - `Hash` is a newtype `Hash(pub [u8; 32])` (see `merkle`), not a type alias.
//! - `TileId::path` and `BundleId::path` return the path relative to the log prefix, starting
//!   with `tile/` (e.g. `tile/0/x001/234.p/7`, `tile/entries/005`); `parse_path` takes the same.
//! - `TileAppender::append` takes leaf hashes and returns `AppendOutcome`; entry bundles are
//!   built by the caller with `BundleBuilder` (same tile index and width as the level-0 tile).
//! - `TileAppender::from_tiles(size, tiles)` accepts stored tiles wider than needed (a tile
//!   written ahead of a state commit) and uses their prefix.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write as _;

use crate::merkle::{CompactRange, HASH_LEN, Hash, TreeSize, node_hash};

/// Height of a tile: a tile spans 8 tree levels.
pub const TILE_HEIGHT: u8 = 8;
/// Number of hashes (or entries) in a full tile or bundle.
pub const TILE_WIDTH: u16 = 256;
/// Bytes in a full tile (256 hashes).
pub const FULL_TILE_BYTES: usize = TILE_WIDTH as usize * HASH_LEN;
/// Largest tile level allowed in a path (C2SP tlog-tiles: 0 to 63).
pub const MAX_TILE_LEVEL: u8 = 63;
/// Largest entry a bundle can carry: the length prefix is a big-endian `u16`.
pub const MAX_BUNDLE_ENTRY_BYTES: usize = u16::MAX as usize;

/// One tile: level, index within the level, and width in hashes (1..=256; 256 is full).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct TileId {
    /// Tile level `L`: its hashes are of subtrees of height `8L`.
    pub level: u8,
    /// Tile index `N` within the level.
    pub index: u64,
    /// Number of hashes, 1..=256.
    pub width: u16,
}

/// One entry bundle: index (same as the level-0 tile) and width in entries (1..=256).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct BundleId {
    /// Bundle index `N`.
    pub index: u64,
    /// Number of entries, 1..=256.
    pub width: u16,
}

/// Why a tile or bundle path was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// The path does not start with `tile/` (or `tile/entries/` for a bundle).
    #[error("path must start with tile/")]
    Prefix,
    /// The level is not a decimal 0..=63 without leading zeroes.
    #[error("tile level must be a decimal 0..=63 without leading zeroes")]
    Level,
    /// The index is not in canonical `x001/x234/067` form or does not fit 64 bits.
    #[error("tile index must be 3-digit groups, all but the last prefixed with x")]
    Index,
    /// The `.p/<W>` suffix is malformed or W is outside 1..=255.
    #[error("partial width must be .p/ followed by a decimal 1..=255")]
    Width,
}

/// Writes `index` as C2SP tlog-tiles path elements: 3-digit groups, `x` before all but the last.
fn push_index(out: &mut String, index: u64) {
    let mut groups = Vec::new();
    let mut rest = index;
    loop {
        groups.push(rest % 1000);
        rest /= 1000;
        if rest == 0 {
            break;
        }
    }
    let last = groups.len() - 1;
    for (i, group) in groups.iter().rev().enumerate() {
        if i < last {
            let _ = write!(out, "x{group:03}/");
        } else {
            let _ = write!(out, "{group:03}");
        }
    }
}

fn push_width(out: &mut String, width: u16) {
    if width < TILE_WIDTH {
        let _ = write!(out, ".p/{width}");
    }
}

/// Parses a decimal without sign or leading zeroes (except "0").
fn parse_canonical_decimal(text: &str) -> Option<u64> {
    let bytes = text.as_bytes();
    if bytes.is_empty() || bytes.len() > 20 || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    if bytes.len() > 1 && bytes[0] == b'0' {
        return None;
    }
    text.parse().ok()
}

/// Parses `<N>[.p/<W>]` (the part after `tile/<L>/` or `tile/entries/`).
fn parse_index_and_width(text: &str) -> Result<(u64, u16), PathError> {
    let (index_text, width) = match text.split_once(".p/") {
        Some((index_text, width_text)) => {
            let width = parse_canonical_decimal(width_text)
                .filter(|w| (1..u64::from(TILE_WIDTH)).contains(w))
                .ok_or(PathError::Width)?;
            // The filter above bounds the width below 256.
            (
                index_text,
                u16::try_from(width).map_err(|_| PathError::Width)?,
            )
        }
        None => (text, TILE_WIDTH),
    };
    let elements: Vec<&str> = index_text.split('/').collect();
    // u64::MAX has 20 digits: at most 7 groups of 3.
    if elements.is_empty() || elements.len() > 7 {
        return Err(PathError::Index);
    }
    let last = elements.len() - 1;
    let mut index: u64 = 0;
    for (i, element) in elements.iter().enumerate() {
        let digits = if i < last {
            element.strip_prefix('x').ok_or(PathError::Index)?
        } else {
            element
        };
        let digits = digits.as_bytes();
        if digits.len() != 3 || !digits.iter().all(u8::is_ascii_digit) {
            return Err(PathError::Index);
        }
        let group = digits
            .iter()
            .fold(0u64, |acc, d| acc * 10 + u64::from(d - b'0'));
        index = index
            .checked_mul(1000)
            .and_then(|v| v.checked_add(group))
            .ok_or(PathError::Index)?;
    }
    // Canonical form only: `x000/005` is not 5. Re-encoding must give back the input.
    let mut canonical = String::new();
    push_index(&mut canonical, index);
    if canonical != index_text {
        return Err(PathError::Index);
    }
    Ok((index, width))
}

impl TileId {
    /// The tile's path relative to the log prefix: `tile/<L>/<N>[.p/<W>]`.
    pub fn path(&self) -> String {
        let mut out = String::with_capacity(32);
        let _ = write!(out, "tile/{}/", self.level);
        push_index(&mut out, self.index);
        push_width(&mut out, self.width);
        out
    }

    /// Parses `tile/<L>/<N>[.p/<W>]` in canonical form only (so one tile has one path).
    pub fn parse_path(path: &str) -> Result<Self, PathError> {
        let rest = path.strip_prefix("tile/").ok_or(PathError::Prefix)?;
        let (level_text, rest) = rest.split_once('/').ok_or(PathError::Level)?;
        let level = parse_canonical_decimal(level_text)
            .filter(|l| *l <= u64::from(MAX_TILE_LEVEL))
            .and_then(|l| u8::try_from(l).ok())
            .ok_or(PathError::Level)?;
        let (index, width) = parse_index_and_width(rest)?;
        Ok(Self {
            level,
            index,
            width,
        })
    }

    /// Whether this is a partial tile (fewer than 256 hashes).
    pub fn is_partial(&self) -> bool {
        self.width < TILE_WIDTH
    }

    /// The tile at `level`, `index` as it is in a tree of `size` leaves, or `None` if that tile
    /// has no hash yet at that size (C2SP tlog-tiles "Partial Tiles": width is
    /// `floor(s / 256**l) mod 256` for the rightmost tile).
    pub fn in_tree(level: u8, index: u64, size: TreeSize) -> Option<Self> {
        let hashes_at_level = hashes_at_level(size.0, level);
        let start = index.checked_mul(u64::from(TILE_WIDTH))?;
        let available = hashes_at_level.checked_sub(start)?;
        if available == 0 {
            return None;
        }
        let width = u16::try_from(available.min(u64::from(TILE_WIDTH))).ok()?;
        Some(Self {
            level,
            index,
            width,
        })
    }

    /// Number of bytes of this tile (`width * 32`).
    pub fn byte_len(&self) -> usize {
        usize::from(self.width) * HASH_LEN
    }
}

/// Number of complete subtrees of height `8 * level` in a tree of `size` leaves.
fn hashes_at_level(size: u64, level: u8) -> u64 {
    let shift = u32::from(level) * u32::from(TILE_HEIGHT);
    size.checked_shr(shift).unwrap_or(0)
}

impl BundleId {
    /// The bundle's path relative to the log prefix: `tile/entries/<N>[.p/<W>]`.
    pub fn path(&self) -> String {
        let mut out = String::with_capacity(32);
        out.push_str("tile/entries/");
        push_index(&mut out, self.index);
        push_width(&mut out, self.width);
        out
    }

    /// Parses `tile/entries/<N>[.p/<W>]` in canonical form only.
    pub fn parse_path(path: &str) -> Result<Self, PathError> {
        let rest = path
            .strip_prefix("tile/entries/")
            .ok_or(PathError::Prefix)?;
        let (index, width) = parse_index_and_width(rest)?;
        Ok(Self { index, width })
    }

    /// The bundle holding entry `index`'s neighbours as it is in a tree of `size` leaves, or
    /// `None` if it has no entry at that size.
    pub fn in_tree(index: u64, size: TreeSize) -> Option<Self> {
        TileId::in_tree(0, index, size).map(|tile| Self {
            index,
            width: tile.width,
        })
    }
}

/// Why an entry bundle was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    /// An entry is longer than the 65,535 bytes a `u16` length prefix can say.
    #[error("entry of {len} bytes does not fit a bundle (max 65535)")]
    EntryTooLong {
        /// Length of the rejected entry.
        len: usize,
    },
    /// The bundle already holds 256 entries.
    #[error("bundle already holds 256 entries")]
    Full,
    /// A length prefix or entry runs past the end of the bytes.
    #[error("bundle is truncated at byte {offset}")]
    Truncated {
        /// Offset of the entry whose prefix or body is cut short.
        offset: usize,
    },
    /// The bundle holds more than 256 entries.
    #[error("bundle holds more than 256 entries")]
    TooManyEntries,
    /// The bundle holds a different number of entries than its width says.
    #[error("bundle holds {found} entries, expected {expected}")]
    WidthMismatch {
        /// Width from the bundle id.
        expected: u16,
        /// Entries found.
        found: usize,
    },
}

/// Builds an entry bundle: entries each prefixed by a big-endian `u16` length
/// (C2SP tlog-tiles "Log entries"). A partial bundle is a prefix of the full one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BundleBuilder {
    bytes: Vec<u8>,
    count: u16,
}

impl BundleBuilder {
    /// An empty bundle.
    pub fn new() -> Self {
        Self::default()
    }

    /// Continues an existing (partial) bundle, checking its encoding.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, BundleError> {
        let count = parse_bundle(&bytes)?.len();
        let count = u16::try_from(count).map_err(|_| BundleError::TooManyEntries)?;
        Ok(Self { bytes, count })
    }

    /// Appends one entry.
    pub fn push(&mut self, entry: &[u8]) -> Result<(), BundleError> {
        if self.count >= TILE_WIDTH {
            return Err(BundleError::Full);
        }
        let len = u16::try_from(entry.len())
            .map_err(|_| BundleError::EntryTooLong { len: entry.len() })?;
        self.bytes.extend_from_slice(&len.to_be_bytes());
        self.bytes.extend_from_slice(entry);
        self.count += 1;
        Ok(())
    }

    /// Number of entries so far (the bundle's width).
    pub fn width(&self) -> u16 {
        self.count
    }

    /// Whether the bundle holds 256 entries.
    pub fn is_full(&self) -> bool {
        self.count == TILE_WIDTH
    }

    /// The encoded bundle.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The encoded bundle, consuming the builder.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

/// Splits an entry bundle into its entries (borrowed). Rejects truncation, trailing bytes and
/// more than 256 entries.
pub fn parse_bundle(bytes: &[u8]) -> Result<Vec<&[u8]>, BundleError> {
    let mut entries = Vec::new();
    let mut offset = 0usize;
    while offset < bytes.len() {
        if entries.len() == usize::from(TILE_WIDTH) {
            return Err(BundleError::TooManyEntries);
        }
        let prefix = bytes
            .get(offset..offset + 2)
            .ok_or(BundleError::Truncated { offset })?;
        let len = usize::from(u16::from_be_bytes([prefix[0], prefix[1]]));
        let entry = bytes
            .get(offset + 2..offset + 2 + len)
            .ok_or(BundleError::Truncated { offset })?;
        entries.push(entry);
        offset += 2 + len;
    }
    Ok(entries)
}

/// Parses a bundle and checks it holds exactly `id.width` entries.
pub fn parse_bundle_for(id: BundleId, bytes: &[u8]) -> Result<Vec<&[u8]>, BundleError> {
    let entries = parse_bundle(bytes)?;
    if entries.len() != usize::from(id.width) {
        return Err(BundleError::WidthMismatch {
            expected: id.width,
            found: entries.len(),
        });
    }
    Ok(entries)
}

/// Why tile bytes were rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TileBytesError {
    /// Not a whole number of 32-byte hashes between 1 and 256.
    #[error("tile of {len} bytes is not 1 to 256 whole hashes")]
    Length {
        /// Length of the rejected bytes.
        len: usize,
    },
}

/// Splits tile bytes into hashes, checking they are 1..=256 whole hashes.
pub fn parse_tile(bytes: &[u8]) -> Result<Vec<Hash>, TileBytesError> {
    if bytes.is_empty() || !bytes.len().is_multiple_of(HASH_LEN) || bytes.len() > FULL_TILE_BYTES {
        return Err(TileBytesError::Length { len: bytes.len() });
    }
    Ok(bytes
        .chunks_exact(HASH_LEN)
        .filter_map(Hash::from_slice)
        .collect())
}

/// Read access to stored tiles, as the proof code needs it.
///
/// Contract: `read_tile(level, index)` returns the latest stored version of that tile (full or
/// partial), or `None` if none is stored. A partial tile is always a prefix of the full tile, so
/// a caller that needs a narrower tile uses the prefix; an implementation must never return
/// bytes that are not a prefix of the final full tile.
pub trait TileReader {
    /// Storage failure.
    type Error;
    /// The latest stored version of tile (`level`, `index`), if any.
    fn read_tile(&self, level: u8, index: u64) -> Result<Option<Vec<u8>>, Self::Error>;
}

impl<R: TileReader + ?Sized> TileReader for &R {
    type Error = R::Error;
    fn read_tile(&self, level: u8, index: u64) -> Result<Option<Vec<u8>>, Self::Error> {
        (**self).read_tile(level, index)
    }
}

/// Tiles held in memory (latest version per tile). Used by tests, the offline verifier and
/// anything that has a small tree at hand.
#[derive(Clone, Debug, Default)]
pub struct InMemoryTiles {
    tiles: BTreeMap<(u8, u64), Vec<u8>>,
}

impl InMemoryTiles {
    /// No tiles.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stores a tile version, replacing any narrower one. A narrower version than the stored
    /// one is ignored (tiles only grow).
    pub fn store(&mut self, id: TileId, bytes: Vec<u8>) {
        let key = (id.level, id.index);
        let keep_old = self
            .tiles
            .get(&key)
            .is_some_and(|old| old.len() >= bytes.len());
        if !keep_old {
            self.tiles.insert(key, bytes);
        }
    }

    /// Stores every tile of an append outcome.
    pub fn store_all(&mut self, tiles: &[(TileId, Vec<u8>)]) {
        for (id, bytes) in tiles {
            self.store(*id, bytes.clone());
        }
    }

    /// Number of distinct tiles stored.
    pub fn len(&self) -> usize {
        self.tiles.len()
    }

    /// Whether no tile is stored.
    pub fn is_empty(&self) -> bool {
        self.tiles.is_empty()
    }
}

impl TileReader for InMemoryTiles {
    type Error = core::convert::Infallible;
    fn read_tile(&self, level: u8, index: u64) -> Result<Option<Vec<u8>>, Self::Error> {
        Ok(self.tiles.get(&(level, index)).cloned())
    }
}

/// What an append changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppendOutcome {
    /// Every tile whose content changed, with its new bytes: full tiles completed by this append
    /// and the new partial tile of each level touched. Write them all in the same durable
    /// transaction as the new size.
    pub changed_tiles: Vec<(TileId, Vec<u8>)>,
    /// Tree size after the append.
    pub size: TreeSize,
    /// Root after the append.
    pub root: Hash,
}

/// Why the appender could not be restored from stored tiles.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestoreError {
    /// A right-edge tile needed at this size was not given.
    #[error("right-edge tile {path} is missing")]
    MissingTile {
        /// Path of the missing tile.
        path: String,
    },
    /// A right-edge tile is narrower than the size needs, or not whole hashes.
    #[error("right-edge tile {path} has {len} bytes, needs at least {needed}")]
    ShortTile {
        /// Path of the tile as needed.
        path: String,
        /// Bytes given.
        len: usize,
        /// Bytes needed.
        needed: usize,
    },
}

/// The right edge of the log's tree, kept in memory by the sequencer.
///
/// Holds the compact range (one hash per set bit of the size) and the bytes of the partial tile
/// of every level, so that an append costs one copy of each leaf hash plus, amortised, one node
/// hash per leaf, and never rehashes a whole tile.
#[derive(Clone, Debug, Default)]
pub struct TileAppender {
    range: CompactRange,
    /// `edge[L]`: bytes of the partial tile at level `L` (a multiple of 32, < 8192 bytes).
    edge: Vec<Vec<u8>>,
}

impl TileAppender {
    /// An appender for the empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// The tiles to load from storage to restart at `size`: the partial tile of each level
    /// that has one (C2SP tlog-tiles: `floor(size / 256**L) mod 256` hashes wide).
    pub fn right_edge_tiles(size: TreeSize) -> Vec<TileId> {
        let mut tiles = Vec::new();
        for level in 0..=MAX_TILE_LEVEL {
            let count = hashes_at_level(size.0, level);
            if count == 0 {
                break;
            }
            let width = count % u64::from(TILE_WIDTH);
            if width != 0 {
                tiles.push(TileId {
                    level,
                    index: count / u64::from(TILE_WIDTH),
                    // width < 256 by the modulo above.
                    width: u16::try_from(width).unwrap_or(TILE_WIDTH),
                });
            }
        }
        tiles
    }

    /// Restores the appender at `size` from the tiles named by `right_edge_tiles(size)` (in
    /// any order; extra tiles are ignored). A stored tile wider than needed is accepted and
    /// its prefix used, since tiles only grow.
    pub fn from_tiles(size: TreeSize, tiles: &[(TileId, Vec<u8>)]) -> Result<Self, RestoreError> {
        let mut edge: Vec<Vec<u8>> = Vec::new();
        for needed in Self::right_edge_tiles(size) {
            let found = tiles
                .iter()
                .find(|(id, _)| id.level == needed.level && id.index == needed.index)
                .ok_or_else(|| RestoreError::MissingTile {
                    path: needed.path(),
                })?;
            let bytes = &found.1;
            if bytes.len() < needed.byte_len() || !bytes.len().is_multiple_of(HASH_LEN) {
                return Err(RestoreError::ShortTile {
                    path: needed.path(),
                    len: bytes.len(),
                    needed: needed.byte_len(),
                });
            }
            let level = usize::from(needed.level);
            if edge.len() <= level {
                edge.resize(level + 1, Vec::new());
            }
            let mut partial = Vec::with_capacity(FULL_TILE_BYTES);
            partial.extend_from_slice(&bytes[..needed.byte_len()]);
            edge[level] = partial;
        }
        // One complete-subtree hash per set bit of the size, highest first. The subtree of
        // height h (the last one of that height on the right edge) has its level-8⌊h/8⌋ hashes
        // inside the partial tile of that level (the binary decomposition of the partial
        // width covers it exactly).
        let mut parts = Vec::new();
        for height in (0..64u32).rev() {
            if size.0 >> height & 1 == 0 {
                continue;
            }
            let level = usize::try_from(height / 8).unwrap_or(usize::MAX);
            let sub = height % 8;
            let node = (size.0 >> height) - 1;
            let first = usize::try_from((node << sub) % u64::from(TILE_WIDTH)).unwrap_or(0);
            let count = 1usize << sub;
            let tile = edge.get(level).map(Vec::as_slice).unwrap_or(&[]);
            let hashes = tile
                .get(first * HASH_LEN..(first + count) * HASH_LEN)
                .ok_or_else(|| RestoreError::MissingTile {
                    path: String::from("right edge"),
                })?;
            parts.push(complete_subtree_root(hashes));
        }
        let range = CompactRange::from_parts(size.0, parts).ok_or(RestoreError::MissingTile {
            path: String::from("right edge"),
        })?;
        Ok(Self { range, edge })
    }

    /// Current tree size.
    pub fn size(&self) -> TreeSize {
        self.range.size()
    }

    /// Current root (O(log n) node hashes).
    pub fn root(&self) -> Hash {
        self.range.root()
    }

    /// Appends leaf hashes in order and returns the changed tiles, new size and root.
    pub fn append(&mut self, leaf_hashes: &[Hash]) -> AppendOutcome {
        let mut changed_tiles = Vec::new();
        let mut touched: Vec<bool> = Vec::new();
        let start_size = self.range.size().0;
        for (offset, leaf) in leaf_hashes.iter().enumerate() {
            let leaf_number = start_size + u64::try_from(offset).unwrap_or(u64::MAX);
            let edge = &mut self.edge;
            let touched = &mut touched;
            let changed = &mut changed_tiles;
            self.range.push_with(*leaf, |height, hash| {
                if height % TILE_HEIGHT != 0 {
                    return;
                }
                let level = height / TILE_HEIGHT;
                let slot = usize::from(level);
                if edge.len() <= slot {
                    edge.resize(slot + 1, Vec::new());
                }
                if touched.len() <= slot {
                    touched.resize(slot + 1, false);
                }
                let tile = &mut edge[slot];
                if tile.capacity() < FULL_TILE_BYTES {
                    tile.reserve_exact(FULL_TILE_BYTES - tile.len());
                }
                tile.extend_from_slice(&hash.0);
                touched[slot] = true;
                if tile.len() == FULL_TILE_BYTES {
                    // The node just completed covers leaves up to `leaf_number`; its index at
                    // this level is (leaf_number + 1) >> height, minus one.
                    let node_count = (leaf_number + 1) >> height;
                    let index = (node_count - 1) / u64::from(TILE_WIDTH);
                    changed.push((
                        TileId {
                            level,
                            index,
                            width: TILE_WIDTH,
                        },
                        core::mem::replace(tile, Vec::with_capacity(FULL_TILE_BYTES)),
                    ));
                }
            });
        }
        let size = self.range.size();
        for (slot, was_touched) in touched.iter().enumerate() {
            let Some(tile) = self.edge.get(slot) else {
                continue;
            };
            if !was_touched || tile.is_empty() {
                continue;
            }
            let level = u8::try_from(slot).unwrap_or(u8::MAX);
            let count = hashes_at_level(size.0, level);
            let width = u16::try_from(tile.len() / HASH_LEN).unwrap_or(TILE_WIDTH);
            changed_tiles.push((
                TileId {
                    level,
                    index: count / u64::from(TILE_WIDTH),
                    width,
                },
                tile.clone(),
            ));
        }
        AppendOutcome {
            changed_tiles,
            size,
            root: self.range.root(),
        }
    }
}

/// The root of a complete subtree given its leaves at the tile's base level (a power-of-two
/// count of 32-byte hashes, at most 256).
pub(crate) fn complete_subtree_root(hashes: &[u8]) -> Hash {
    debug_assert!(hashes.len().is_multiple_of(HASH_LEN));
    let count = hashes.len() / HASH_LEN;
    debug_assert!(count.is_power_of_two() && count <= usize::from(TILE_WIDTH));
    if count == 1 {
        return Hash::from_slice(hashes).unwrap_or_default();
    }
    // Hash pairs straight from the tile bytes into a fixed buffer, then reduce in place: no
    // allocation on the proof path.
    let mut level = [Hash::default(); 128];
    let mut width = 0usize;
    for (slot, pair) in level.iter_mut().zip(hashes.chunks_exact(2 * HASH_LEN)) {
        let (left, right) = pair.split_at(HASH_LEN);
        let left = Hash::from_slice(left).unwrap_or_default();
        let right = Hash::from_slice(right).unwrap_or_default();
        *slot = node_hash(&left, &right);
        width += 1;
    }
    while width > 1 {
        for i in 0..width / 2 {
            level[i] = node_hash(&level[2 * i], &level[2 * i + 1]);
        }
        width /= 2;
    }
    level[0]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::{leaf_hash, root_from_leaf_hashes};
    use alloc::vec;

    fn check_path(id: TileId, path: &str) {
        assert_eq!(id.path(), path);
        assert_eq!(TileId::parse_path(path), Ok(id));
    }

    #[test]
    fn tile_paths_follow_c2sp_examples() {
        check_path(
            TileId {
                level: 0,
                index: 1_234_067,
                width: 256,
            },
            "tile/0/x001/x234/067",
        );
        check_path(
            TileId {
                level: 1,
                index: 0,
                width: 17,
            },
            "tile/1/000.p/17",
        );
        check_path(
            TileId {
                level: 2,
                index: 1000,
                width: 1,
            },
            "tile/2/x001/000.p/1",
        );
        check_path(
            TileId {
                level: 0,
                index: u64::MAX,
                width: 256,
            },
            "tile/0/x018/x446/x744/x073/x709/x551/615",
        );
        let bundle = BundleId { index: 5, width: 7 };
        assert_eq!(bundle.path(), "tile/entries/005.p/7");
        assert_eq!(BundleId::parse_path("tile/entries/005.p/7"), Ok(bundle));
    }

    #[test]
    fn non_canonical_paths_are_rejected() {
        for (path, err) in [
            ("tile/00/000", PathError::Level),
            ("tile/64/000", PathError::Level),
            ("tile/0/x000/005", PathError::Index),
            ("tile/0/5", PathError::Index),
            ("tile/0/x001/02", PathError::Index),
            ("tile/0/001/002", PathError::Index),
            ("tile/0/000.p/0", PathError::Width),
            ("tile/0/000.p/256", PathError::Width),
            ("tile/0/000.p/07", PathError::Width),
            ("tile/0/x018/x446/x744/x073/x709/x551/616", PathError::Index),
            ("tiles/0/000", PathError::Prefix),
        ] {
            assert_eq!(TileId::parse_path(path), Err(err), "{path}");
        }
    }

    #[test]
    fn right_edge_tiles_match_c2sp_example_of_70000() {
        // C2SP tlog-tiles: size 70,000 has a partial level-0 tile of width 112, a partial
        // level-1 tile of width 17, and a partial level-2 tile of width 1.
        let tiles = TileAppender::right_edge_tiles(TreeSize(70_000));
        assert_eq!(
            tiles,
            vec![
                TileId {
                    level: 0,
                    index: 273,
                    width: 112
                },
                TileId {
                    level: 1,
                    index: 1,
                    width: 17
                },
                TileId {
                    level: 2,
                    index: 0,
                    width: 1
                },
            ]
        );
        assert_eq!(
            TileAppender::right_edge_tiles(TreeSize(256)),
            vec![TileId {
                level: 1,
                index: 0,
                width: 1
            }]
        );
    }

    #[test]
    fn appender_root_matches_in_memory_root_and_restores() {
        let leaves: Vec<Hash> = (0u32..1000).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        let mut appender = TileAppender::new();
        let mut tiles = InMemoryTiles::new();
        for chunk in leaves.chunks(37) {
            let outcome = appender.append(chunk);
            tiles.store_all(&outcome.changed_tiles);
            let n = usize::try_from(outcome.size.0).unwrap();
            assert_eq!(outcome.root, root_from_leaf_hashes(&leaves[..n]));
            let edge: Vec<(TileId, Vec<u8>)> = TileAppender::right_edge_tiles(outcome.size)
                .into_iter()
                .map(|id| (id, tiles.read_tile(id.level, id.index).unwrap().unwrap()))
                .collect();
            let restored = TileAppender::from_tiles(outcome.size, &edge).unwrap();
            assert_eq!(restored.root(), outcome.root);
        }
    }

    #[test]
    fn bundles_round_trip_and_reject_truncation() {
        let mut builder = BundleBuilder::new();
        builder.push(b"").unwrap();
        builder.push(b"abc").unwrap();
        let bytes = builder.into_bytes();
        assert_eq!(bytes, [0, 0, 0, 3, b'a', b'b', b'c']);
        assert_eq!(parse_bundle(&bytes).unwrap(), vec![&b""[..], &b"abc"[..]]);
        assert_eq!(
            parse_bundle(&bytes[..6]),
            Err(BundleError::Truncated { offset: 2 })
        );
        assert_eq!(
            parse_bundle(&bytes[..1]),
            Err(BundleError::Truncated { offset: 0 })
        );
        let long = vec![0u8; 65_536];
        assert_eq!(
            BundleBuilder::new().push(&long),
            Err(BundleError::EntryTooLong { len: 65_536 })
        );
    }
}
