//! Known-answer tests for the RFC 9162 tree, tiles and proofs.
//!
//! Provenance: the eight leaf inputs, the node and root hashes and the inclusion and
//! consistency proofs below are the RFC 6962 test vectors published in the transparency-dev
//! Merkle library (github.com/transparency-dev/merkle, `testonly/constants.go` and
//! `proof/verify_test.go`), originally from the Certificate Transparency C++ reference code.
//! In `verify_test.go` the inclusion vectors number leaves from 1; here they are converted to
//! zero-based indexes.

use ledger::merkle::{Hash, LeafIndex, TreeSize, empty_root, leaf_hash, root_from_leaf_hashes};
use ledger::proof::{
    ConsistencyProof, InclusionProof, consistency_proof, inclusion_proof, tree_root,
};
use ledger::tile::{InMemoryTiles, TileAppender};

fn h(hex: &str) -> Hash {
    Hash::from_hex(hex).expect("vector is 64 hex digits")
}

fn leaf_inputs() -> Vec<Vec<u8>> {
    [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
    .iter()
    .map(|hex| {
        (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("vector is hex"))
            .collect()
    })
    .collect()
}

/// `testonly.RootHashes()`: roots for trees of 0 to 8 leaves.
fn roots() -> Vec<Hash> {
    [
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ]
    .iter()
    .map(|x| h(x))
    .collect()
}

/// `testonly.NodeHashes()[0]`: the leaf hashes.
fn expected_leaf_hashes() -> Vec<Hash> {
    [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
        "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
        "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
        "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
    ]
    .iter()
    .map(|x| h(x))
    .collect()
}

/// (zero-based leaf index, tree size, proof) from `verify_test.go` `inclusionProofs`.
fn inclusion_vectors() -> Vec<(u64, u64, Vec<Hash>)> {
    vec![
        (
            0,
            8,
            vec![
                h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
                h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
                h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
            ],
        ),
        (
            5,
            8,
            vec![
                h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
                h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
                h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
            ],
        ),
        (
            2,
            3,
            vec![h(
                "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
            )],
        ),
        (
            1,
            5,
            vec![
                h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
                h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
                h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
            ],
        ),
        (0, 1, vec![]),
    ]
}

/// (old size, new size, proof) from `verify_test.go` `consistencyProofs`.
fn consistency_vectors() -> Vec<(u64, u64, Vec<Hash>)> {
    vec![
        (1, 1, vec![]),
        (
            1,
            8,
            vec![
                h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
                h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
                h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
            ],
        ),
        (
            6,
            8,
            vec![
                h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
                h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
                h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
            ],
        ),
        (
            2,
            5,
            vec![
                h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
                h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
            ],
        ),
        (
            6,
            7,
            vec![
                h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
                h("b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f"),
                h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
            ],
        ),
    ]
}

/// Tiles for the eight-leaf tree, appended one leaf at a time, with every intermediate size.
fn eight_leaf_tiles() -> InMemoryTiles {
    let mut appender = TileAppender::new();
    let mut tiles = InMemoryTiles::new();
    for input in leaf_inputs() {
        let outcome = appender.append(&[leaf_hash(&input)]);
        tiles.store_all(&outcome.changed_tiles);
    }
    tiles
}

#[test]
fn empty_root_is_sha256_of_nothing() {
    assert_eq!(empty_root(), roots()[0]);
    assert_eq!(root_from_leaf_hashes(&[]), roots()[0]);
}

#[test]
fn leaf_hashes_match_rfc6962_vectors() {
    let got: Vec<Hash> = leaf_inputs().iter().map(|x| leaf_hash(x)).collect();
    assert_eq!(got, expected_leaf_hashes());
}

#[test]
fn roots_match_rfc6962_vectors_for_every_size() {
    let leaves = expected_leaf_hashes();
    let tiles = eight_leaf_tiles();
    let mut appender = TileAppender::new();
    for (size, want) in roots().into_iter().enumerate() {
        assert_eq!(
            root_from_leaf_hashes(&leaves[..size]),
            want,
            "in memory, size {size}"
        );
        let n = TreeSize(u64::try_from(size).unwrap());
        assert_eq!(
            tree_root(n, &tiles).unwrap(),
            want,
            "from tiles, size {size}"
        );
        if size > 0 {
            assert_eq!(
                appender.append(&leaves[size - 1..size]).root,
                want,
                "appender, size {size}"
            );
        }
    }
}

#[test]
fn inclusion_proofs_match_rfc6962_vectors() {
    let tiles = eight_leaf_tiles();
    let leaves = expected_leaf_hashes();
    let roots = roots();
    for (index, size, path) in inclusion_vectors() {
        let got = inclusion_proof(LeafIndex(index), TreeSize(size), &tiles).unwrap();
        assert_eq!(got.path, path, "leaf {index} in tree {size}");
        let leaf = leaves[usize::try_from(index).unwrap()];
        got.verify(&leaf, &roots[usize::try_from(size).unwrap()])
            .unwrap();
    }
}

#[test]
fn consistency_proofs_match_rfc6962_vectors() {
    let tiles = eight_leaf_tiles();
    let roots = roots();
    for (old, new, path) in consistency_vectors() {
        let got = consistency_proof(TreeSize(old), TreeSize(new), &tiles).unwrap();
        assert_eq!(got.path, path, "{old} -> {new}");
        got.verify(
            &roots[usize::try_from(old).unwrap()],
            &roots[usize::try_from(new).unwrap()],
        )
        .unwrap();
    }
}

#[test]
fn trivial_consistency_cases_follow_the_rules() {
    let roots = roots();
    let empty = ConsistencyProof {
        old_size: TreeSize(0),
        new_size: TreeSize(5),
        path: vec![],
    };
    assert!(empty.verify(&roots[0], &roots[5]).is_ok());
    assert!(
        empty.verify(&roots[1], &roots[5]).is_err(),
        "size 0 needs the empty root"
    );
    let same = ConsistencyProof {
        old_size: TreeSize(3),
        new_size: TreeSize(3),
        path: vec![],
    };
    assert!(same.verify(&roots[3], &roots[3]).is_ok());
    assert!(same.verify(&roots[3], &roots[4]).is_err());
    let not_empty = ConsistencyProof {
        path: vec![roots[0]],
        ..same
    };
    assert!(not_empty.verify(&roots[3], &roots[3]).is_err());
    let shrinking = ConsistencyProof {
        old_size: TreeSize(2),
        new_size: TreeSize(1),
        path: vec![],
    };
    assert!(shrinking.verify(&roots[2], &roots[1]).is_err());
}

#[test]
fn inclusion_proof_rejects_a_leaf_outside_the_tree() {
    let tiles = eight_leaf_tiles();
    assert!(inclusion_proof(LeafIndex(8), TreeSize(8), &tiles).is_err());
    let proof = InclusionProof {
        leaf_index: LeafIndex(1),
        tree_size: TreeSize(1),
        path: vec![],
    };
    assert!(proof.verify(&roots()[1], &roots()[1]).is_err());
}
