//! The tiled log against a naive in-memory model of RFC 9162 §2.1.
//!
//! The model below is written straight from the RFC's recursive definitions (`MTH`, `PATH`,
//! `SUBPROOF`) over a slice of leaf hashes, independently of the library's iterative, tile-based
//! code. Every inclusion and consistency proof is checked exhaustively for small trees (across
//! the first tile boundary at 256) and sampled for larger ones (across the level-2 boundary at
//! 65,536); every proof is also tampered with and must then fail.

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

/// Roots of every prefix, computed incrementally by the model's definition (MTH of the prefix).
fn model_roots(d: &[Hash]) -> Vec<Hash> {
    (0..=d.len()).map(|n| mth(&d[..n])).collect()
}

#[test]
fn every_inclusion_proof_verifies_exhaustively_up_to_300_leaves() {
    let d = leaves(300);
    let tiles = tiles_for(&d);
    let roots = model_roots(&d);
    for n in 1..=d.len() {
        assert_eq!(
            tree_root(TreeSize(u(n)), &tiles).unwrap(),
            roots[n],
            "root of {n}"
        );
        for m in 0..n {
            let proof = inclusion_proof(LeafIndex(u(m)), TreeSize(u(n)), &tiles).unwrap();
            assert_eq!(proof.path, path(m, &d[..n]), "PATH({m}, D[{n}])");
            proof.verify(&d[m], &roots[n]).unwrap();
            if n <= 70 {
                assert_inclusion_tamper_fails(&proof, &d[m], &roots[n]);
            }
        }
    }
}

#[test]
fn every_consistency_proof_verifies_exhaustively_up_to_300_leaves() {
    let d = leaves(300);
    let tiles = tiles_for(&d);
    let roots = model_roots(&d);
    for n in 1..=d.len() {
        for m in 0..=n {
            let proof = consistency_proof(TreeSize(u(m)), TreeSize(u(n)), &tiles).unwrap();
            assert_eq!(
                proof.path,
                model_consistency(m, &d[..n]),
                "PROOF({m}, D[{n}])"
            );
            proof.verify(&roots[m], &roots[n]).unwrap();
            if n <= 70 && m > 0 && m < n {
                assert_consistency_tamper_fails(&proof, &roots[m], &roots[n]);
            }
        }
    }
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
