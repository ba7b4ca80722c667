//! The tiled log against a naive in-memory model of RFC 9162 §2.1.
//!
//! The model below is written straight from the RFC's recursive definitions (`MTH`, `PATH`,
//! `SUBPROOF`) over a slice of leaf hashes, independently of the library's iterative, tile-based
//! code. Every inclusion proof `(index, size)` and every consistency proof `(old, new)` is
//! checked exhaustively up to 770 leaves, and every pair with a side at a tile boundary
//! (256·k − 1 ..= 256·k + 2) up to 2,050 leaves, against tiles built one leaf at a time as the
//! sizes go; larger trees are sampled (across the level-2
//! boundary at 65,536). Small proofs and proofs at tile boundaries are also tampered with and
//! must then fail.

use ledger::merkle::{Hash, LeafIndex, TreeSize, leaf_hash, node_hash};
use ledger::proof::{
    ConsistencyProof, InclusionProof, consistency_proof, inclusion_proof, tree_root,
};
use ledger::tile::{InMemoryTiles, TileAppender, TileReader};
use proptest::prelude::*;
use sha2::{Digest, Sha256};

fn k_of(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

/// RFC 9162 §2.1.1 `MTH(D[n])` over leaf hashes.
fn mth(d: &[Hash]) -> Hash {
    match d.len() {
        0 => Hash(Sha256::digest([]).into()),
        1 => d[0],
        n => {
            let k = k_of(n);
            node_hash(&mth(&d[..k]), &mth(&d[k..]))
        }
    }
}

/// RFC 9162 §2.1.3.1 `PATH(m, D[n])`.
fn path(m: usize, d: &[Hash]) -> Vec<Hash> {
    let n = d.len();
    if n <= 1 {
        return vec![];
    }
    let k = k_of(n);
    if m < k {
        let mut p = path(m, &d[..k]);
        p.push(mth(&d[k..]));
        p
    } else {
        let mut p = path(m - k, &d[k..]);
        p.push(mth(&d[..k]));
        p
    }
}

/// RFC 9162 §2.1.4.1 `SUBPROOF(m, D[n], b)`.
fn subproof(m: usize, d: &[Hash], b: bool) -> Vec<Hash> {
    let n = d.len();
    if m == n {
        return if b { vec![] } else { vec![mth(d)] };
    }
    let k = k_of(n);
    if m <= k {
        let mut p = subproof(m, &d[..k], b);
        p.push(mth(&d[k..]));
        p
    } else {
        let mut p = subproof(m - k, &d[k..], false);
        p.push(mth(&d[..k]));
        p
    }
}

fn model_consistency(m: usize, d: &[Hash]) -> Vec<Hash> {
    if m == 0 || m == d.len() {
        vec![]
    } else {
        subproof(m, d, true)
    }
}

fn leaves(n: usize) -> Vec<Hash> {
    (0..n)
        .map(|i| leaf_hash(&u64::try_from(i).expect("fits").to_be_bytes()))
        .collect()
}

/// Builds tiles by appending in uneven batches, keeping every partial tile version.
fn tiles_for(leaves: &[Hash]) -> InMemoryTiles {
    let mut appender = TileAppender::new();
    let mut tiles = InMemoryTiles::new();
    let mut start = 0;
    let mut step = 1;
    while start < leaves.len() {
        let end = (start + step).min(leaves.len());
        tiles.store_all(&appender.append(&leaves[start..end]).changed_tiles);
        start = end;
        step = step % 97 + 13;
    }
    tiles
}

fn u(n: usize) -> u64 {
    u64::try_from(n).expect("fits")
}

fn flip(h: &Hash) -> Hash {
    let mut out = *h;
    out.0[0] ^= 0x10;
    out
}

fn assert_inclusion_tamper_fails(proof: &InclusionProof, leaf: &Hash, root: &Hash) {
    assert!(
        proof.verify(&flip(leaf), root).is_err(),
        "wrong leaf verified"
    );
    assert!(
        proof.verify(leaf, &flip(root)).is_err(),
        "wrong root verified"
    );
    for i in 0..proof.path.len() {
        let mut bad = proof.clone();
        bad.path[i] = flip(&bad.path[i]);
        assert!(
            bad.verify(leaf, root).is_err(),
            "flipped path[{i}] verified"
        );
    }
    let mut longer = proof.clone();
    longer.path.push(*root);
    assert!(longer.verify(leaf, root).is_err(), "extra hash verified");
    if !proof.path.is_empty() {
        let mut shorter = proof.clone();
        shorter.path.pop();
        assert!(
            shorter.verify(leaf, root).is_err(),
            "truncated path verified"
        );
    }
    let mut moved = proof.clone();
    moved.leaf_index = LeafIndex(proof.leaf_index.0 ^ 1);
    if moved.leaf_index.0 < proof.tree_size.0 && moved.leaf_index != proof.leaf_index {
        assert!(
            moved.verify(leaf, root).is_err(),
            "neighbouring index verified"
        );
    }
}

fn assert_consistency_tamper_fails(proof: &ConsistencyProof, old_root: &Hash, new_root: &Hash) {
    assert!(
        proof.verify(&flip(old_root), new_root).is_err(),
        "wrong old root verified"
    );
    assert!(
        proof.verify(old_root, &flip(new_root)).is_err(),
        "wrong new root verified"
    );
    for i in 0..proof.path.len() {
        let mut bad = proof.clone();
        bad.path[i] = flip(&bad.path[i]);
        assert!(
            bad.verify(old_root, new_root).is_err(),
            "flipped path[{i}] verified"
        );
    }
    let mut longer = proof.clone();
    longer.path.push(*new_root);
    assert!(
        longer.verify(old_root, new_root).is_err(),
        "extra hash verified"
    );
    if !proof.path.is_empty() {
        let mut shorter = proof.clone();
        shorter.path.pop();
        assert!(
            shorter.verify(old_root, new_root).is_err(),
            "truncated path verified"
        );
    }
}

/// Every `(index, size)` and every `(old, new)` pair is checked up to here (three full level-0
/// tiles and two leaves more). Proof generation recomputes the leaf's level-0 tile (up to 256
/// hashes) per proof, which makes the all-pairs check quadratic in hashing: 2,100 leaves took
/// about 200 s at the test profile's opt-level, this takes well under 30 s.
const EXHAUSTIVE_LEAVES: usize = 770;

/// Beyond [`EXHAUSTIVE_LEAVES`], up to here, every pair with a size next to a tile boundary
/// (255..=258, 511..=514, ..., 2047..=2050) is checked: all indexes and old sizes for such a
/// size, and such indexes and old sizes for every size.
const BOUNDARY_LEAVES: usize = 2_050;

/// Whether `n` is one of the sizes next to a tile boundary: 256·k − 1 ..= 256·k + 2.
fn at_tile_boundary(n: usize) -> bool {
    n >= 255 && matches!(n % 256, 0..=2 | 255)
}

/// Whether the pair `(m, n)` is checked: all pairs while `n` is small, else pairs where either
/// side sits at a tile boundary.
fn checked_pair(m: usize, n: usize) -> bool {
    n <= EXHAUSTIVE_LEAVES || at_tile_boundary(n) || at_tile_boundary(m)
}

/// The RFC model with `MTH` memoised by range, so that exhaustive checking stays cheap: the
/// recursion is the RFC's, over `(start, len)` ranges of one leaf vector instead of slices.
struct Model {
    d: Vec<Hash>,
    memo: std::cell::RefCell<std::collections::HashMap<(usize, usize), Hash>>,
}

impl Model {
    fn new(d: Vec<Hash>) -> Self {
        Self {
            d,
            memo: std::cell::RefCell::new(std::collections::HashMap::new()),
        }
    }

    /// `MTH(D[start..start + n])`.
    fn mth(&self, start: usize, n: usize) -> Hash {
        match n {
            0 => Hash(Sha256::digest([]).into()),
            1 => self.d[start],
            _ => {
                if let Some(hash) = self.memo.borrow().get(&(start, n)) {
                    return *hash;
                }
                let k = k_of(n);
                let hash = node_hash(&self.mth(start, k), &self.mth(start + k, n - k));
                self.memo.borrow_mut().insert((start, n), hash);
                hash
            }
        }
    }

    /// `PATH(m, D[start..start + n])`.
    fn path(&self, m: usize, start: usize, n: usize) -> Vec<Hash> {
        if n <= 1 {
            return vec![];
        }
        let k = k_of(n);
        if m < k {
            let mut p = self.path(m, start, k);
            p.push(self.mth(start + k, n - k));
            p
        } else {
            let mut p = self.path(m - k, start + k, n - k);
            p.push(self.mth(start, k));
            p
        }
    }

    /// `SUBPROOF(m, D[start..start + n], b)`.
    fn subproof(&self, m: usize, start: usize, n: usize, b: bool) -> Vec<Hash> {
        if m == n {
            return if b { vec![] } else { vec![self.mth(start, n)] };
        }
        let k = k_of(n);
        if m <= k {
            let mut p = self.subproof(m, start, k, b);
            p.push(self.mth(start + k, n - k));
            p
        } else {
            let mut p = self.subproof(m - k, start + k, n - k, false);
            p.push(self.mth(start, k));
            p
        }
    }

    /// `PROOF(m, D[0..n])`.
    fn consistency(&self, m: usize, n: usize) -> Vec<Hash> {
        if m == 0 || m == n {
            vec![]
        } else {
            self.subproof(m, 0, n, true)
        }
    }
}

/// Appends one leaf at a time to `tiles`, calling `check(n, tiles)` at every size `n`, so each
/// size is checked against the tiles exactly as stored at that size.
fn for_every_size(model: &Model, mut check: impl FnMut(usize, &InMemoryTiles)) {
    let mut appender = TileAppender::new();
    let mut tiles = InMemoryTiles::new();
    for n in 1..=model.d.len() {
        tiles.store_all(&appender.append(&model.d[n - 1..n]).changed_tiles);
        check(n, &tiles);
    }
}

#[test]
fn the_memoised_model_agrees_with_the_plain_rfc_recursion() {
    let d = leaves(300);
    let model = Model::new(d.clone());
    for n in [1, 2, 3, 7, 8, 9, 255, 256, 257, 300] {
        assert_eq!(model.mth(0, n), mth(&d[..n]));
        for m in 0..n {
            assert_eq!(model.path(m, 0, n), path(m, &d[..n]));
        }
        for m in 0..=n {
            assert_eq!(model.consistency(m, n), model_consistency(m, &d[..n]));
        }
    }
}

#[test]
fn every_inclusion_proof_verifies_up_to_770_leaves_and_at_tile_boundaries_to_2050() {
    let model = Model::new(leaves(BOUNDARY_LEAVES));
    for_every_size(&model, |n, tiles| {
        let root = model.mth(0, n);
        assert_eq!(
            tree_root(TreeSize(u(n)), tiles).unwrap(),
            root,
            "root of {n}"
        );
        for m in (0..n).filter(|m| checked_pair(*m, n)) {
            let proof = inclusion_proof(LeafIndex(u(m)), TreeSize(u(n)), tiles).unwrap();
            assert_eq!(proof.path, model.path(m, 0, n), "PATH({m}, D[{n}])");
            proof.verify(&model.d[m], &root).unwrap();
            if n <= 70 || (at_tile_boundary(n) && (m < 3 || m + 3 > n || m % 97 == 0)) {
                assert_inclusion_tamper_fails(&proof, &model.d[m], &root);
            }
        }
    });
}

#[test]
fn every_consistency_proof_verifies_up_to_770_leaves_and_at_tile_boundaries_to_2050() {
    let model = Model::new(leaves(BOUNDARY_LEAVES));
    let roots: Vec<Hash> = (0..=BOUNDARY_LEAVES).map(|n| model.mth(0, n)).collect();
    for_every_size(&model, |n, tiles| {
        for m in (0..=n).filter(|m| checked_pair(*m, n)) {
            let proof = consistency_proof(TreeSize(u(m)), TreeSize(u(n)), tiles).unwrap();
            assert_eq!(proof.path, model.consistency(m, n), "PROOF({m}, D[{n}])");
            proof.verify(&roots[m], &roots[n]).unwrap();
            let tamper = n <= 70 || (at_tile_boundary(n) && at_tile_boundary(m));
            if tamper && m > 0 && m < n {
                assert_consistency_tamper_fails(&proof, &roots[m], &roots[n]);
            }
        }
    });
}

#[test]
fn consistency_proof_rejects_a_shrinking_tree() {
    let d = leaves(10);
    let tiles = tiles_for(&d);
    assert!(consistency_proof(TreeSize(5), TreeSize(4), &tiles).is_err());
}

#[test]
fn proofs_fail_cleanly_when_a_tile_is_missing() {
    let d = leaves(600);
    let tiles = tiles_for(&d);
    /// Hides every tile at level 0 index 1.
    struct Holey<'a>(&'a InMemoryTiles);
    impl TileReader for Holey<'_> {
        type Error = core::convert::Infallible;
        fn read_tile(&self, level: u8, index: u64) -> Result<Option<Vec<u8>>, Self::Error> {
            if (level, index) == (0, 1) {
                Ok(None)
            } else {
                self.0.read_tile(level, index)
            }
        }
    }
    let err = inclusion_proof(LeafIndex(300), TreeSize(600), &Holey(&tiles)).unwrap_err();
    assert!(err.to_string().contains("0/1"), "{err}");
}

/// A big tree shared by the sampled properties (crosses the level-2 tile boundary).
fn big() -> &'static (Vec<Hash>, InMemoryTiles) {
    use std::sync::OnceLock;
    static BIG: OnceLock<(Vec<Hash>, InMemoryTiles)> = OnceLock::new();
    BIG.get_or_init(|| {
        let d = leaves(70_000);
        let tiles = tiles_for(&d);
        (d, tiles)
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn sampled_inclusion_proofs_match_the_model(n in 1usize..=5_000, m_seed in any::<u64>()) {
        let (d, tiles) = big();
        let m = usize::try_from(m_seed % u(n)).unwrap();
        let root = mth(&d[..n]);
        let proof = inclusion_proof(LeafIndex(u(m)), TreeSize(u(n)), tiles).unwrap();
        prop_assert_eq!(&proof.path, &path(m, &d[..n]));
        prop_assert!(proof.verify(&d[m], &root).is_ok());
        assert_inclusion_tamper_fails(&proof, &d[m], &root);
    }

    #[test]
    fn sampled_consistency_proofs_match_the_model(n in 1usize..=5_000, m_seed in any::<u64>()) {
        let (d, tiles) = big();
        let m = usize::try_from(m_seed % (u(n) + 1)).unwrap();
        let (old_root, new_root) = (mth(&d[..m]), mth(&d[..n]));
        let proof = consistency_proof(TreeSize(u(m)), TreeSize(u(n)), tiles).unwrap();
        prop_assert_eq!(&proof.path, &model_consistency(m, &d[..n]));
        prop_assert!(proof.verify(&old_root, &new_root).is_ok());
        if m > 0 && m < n {
            assert_consistency_tamper_fails(&proof, &old_root, &new_root);
        }
    }

    #[test]
    fn large_tree_proofs_verify_across_level_two(n in 65_000usize..=70_000, m_seed in any::<u64>(), o_seed in any::<u64>()) {
        let (d, tiles) = big();
        let m = usize::try_from(m_seed % u(n)).unwrap();
        let old = usize::try_from(o_seed % (u(n) + 1)).unwrap();
        let root = mth(&d[..n]);
        prop_assert_eq!(tree_root(TreeSize(u(n)), tiles).unwrap(), root);
        let proof = inclusion_proof(LeafIndex(u(m)), TreeSize(u(n)), tiles).unwrap();
        prop_assert!(proof.verify(&d[m], &root).is_ok());
        assert_inclusion_tamper_fails(&proof, &d[m], &root);
        let cons = consistency_proof(TreeSize(u(old)), TreeSize(u(n)), tiles).unwrap();
        let old_root = mth(&d[..old]);
        prop_assert!(cons.verify(&old_root, &root).is_ok());
        if old > 0 && old < n {
            assert_consistency_tamper_fails(&cons, &old_root, &root);
        }
    }

    #[test]
    fn appender_in_random_batches_matches_model_roots(batches in proptest::collection::vec(1usize..600, 1..12)) {
        let total: usize = batches.iter().sum();
        let d = leaves(total);
        let mut appender = TileAppender::new();
        let mut tiles = InMemoryTiles::new();
        let mut start = 0;
        for batch in batches {
            let outcome = appender.append(&d[start..start + batch]);
            start += batch;
            tiles.store_all(&outcome.changed_tiles);
            prop_assert_eq!(outcome.size, TreeSize(u(start)));
            prop_assert_eq!(outcome.root, mth(&d[..start]));
            prop_assert_eq!(tree_root(outcome.size, &tiles).unwrap(), outcome.root);
            // Restart from storage at this size and keep going.
            let edge: Vec<_> = TileAppender::right_edge_tiles(outcome.size)
                .into_iter()
                .map(|id| (id, tiles.read_tile(id.level, id.index).unwrap().unwrap()))
                .collect();
            appender = TileAppender::from_tiles(outcome.size, &edge).unwrap();
            prop_assert_eq!(appender.root(), outcome.root);
        }
    }
}
