//! Subset proofs: one proof that several leaves are in an RFC 9162 tree, smaller than one
//! inclusion path per leaf (an evidence bundle proves thousands of readings of one batch).
//!
//! The proof is defined by the tree's own recursion (RFC 9162 §2.1.1: a range of `n > 1` leaves
//! splits at `k`, the largest power of two below `n`). Walking the tree depth first, left before
//! right, from the whole range `[0, size)`:
//! - a range holding none of the proven leaves contributes its Merkle Tree Hash to the proof and
//!   is not entered;
//! - a single proven leaf contributes nothing (the verifier knows its hash);
//! - any other range is split and both halves are walked.
//!
//! The proof is the hashes in the order the walk emits them. For a given tree size and set of
//! positions there is exactly one proof, and a verifier that walks the same way either consumes
//! every hash and reaches the root or fails. One proven leaf gives the hashes of its inclusion
//! path, in walk order.

use alloc::vec::Vec;

use crate::merkle::{Hash, LeafIndex, TreeSize, node_hash, root_from_leaf_hashes, split_point};

/// Why a subset proof could not be made or checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SubsetProofError {
    /// No leaf to prove.
    #[error("a subset proof proves at least one leaf")]
    Empty,
    /// Positions not strictly ascending, or one outside the tree.
    #[error("leaf positions must be strictly ascending and inside the tree")]
    Positions,
    /// The proof ran out of hashes.
    #[error("the subset proof has too few hashes")]
    TooShort,
    /// Hashes were left over after the walk.
    #[error("the subset proof has too many hashes")]
    TooLong,
}

/// The subset proof of the leaves at `positions` (strictly ascending) in the tree over `leaves`.
///
/// # Errors
/// `Empty` or `Positions` when the positions are not a non-empty ascending subset.
pub fn subset_proof(
    leaves: &[Hash],
    positions: &[LeafIndex],
) -> Result<Vec<Hash>, SubsetProofError> {
    let size = u64::try_from(leaves.len()).map_err(|_| SubsetProofError::Positions)?;
    check_positions(TreeSize(size), positions.iter().copied())?;
    let mut proof = Vec::new();
    prove(leaves, 0, positions, &mut proof);
    Ok(proof)
}

/// Recomputes the root of a tree of `size` leaves from the proven leaves (`(position, leaf
/// hash)`, positions strictly ascending) and their subset proof.
///
/// # Errors
/// `Empty` or `Positions` for a bad leaf list, `TooShort` or `TooLong` when the proof does not
/// have exactly the hashes the walk needs.
pub fn root_from_subset(
    size: TreeSize,
    known: &[(LeafIndex, Hash)],
    proof: &[Hash],
) -> Result<Hash, SubsetProofError> {
    check_positions(size, known.iter().map(|(position, _)| *position))?;
    let mut hashes = proof.iter();
    let root = walk(0, size.0, known, &mut hashes)?;
    if hashes.next().is_some() {
        return Err(SubsetProofError::TooLong);
    }
    Ok(root)
}

fn check_positions(
    size: TreeSize,
    mut positions: impl Iterator<Item = LeafIndex>,
) -> Result<(), SubsetProofError> {
    let Some(first) = positions.next() else {
        return Err(SubsetProofError::Empty);
    };
    let mut last = first;
    if last.0 >= size.0 {
        return Err(SubsetProofError::Positions);
    }
    for position in positions {
        if position <= last || position.0 >= size.0 {
            return Err(SubsetProofError::Positions);
        }
        last = position;
    }
    Ok(())
}

/// Emits the proof hashes of `leaves` (the range starting at `offset`); `positions` are the
/// proven positions inside that range, ascending.
fn prove(leaves: &[Hash], offset: u64, positions: &[LeafIndex], proof: &mut Vec<Hash>) {
    if positions.is_empty() {
        proof.push(root_from_leaf_hashes(leaves));
        return;
    }
    let n = leaves.len() as u64;
    if n == 1 {
        return;
    }
    let k = split_point(n);
    let middle = offset + k;
    let split = positions.partition_point(|p| p.0 < middle);
    // `k < n = leaves.len()`, so the cast back is lossless.
    #[allow(clippy::cast_possible_truncation)]
    let (left, right) = leaves.split_at(k as usize);
    prove(left, offset, &positions[..split], proof);
    prove(right, middle, &positions[split..], proof);
}

/// The hash of the range `[lo, hi)` from the known leaves inside it and the proof's hashes.
fn walk<'a>(
    lo: u64,
    hi: u64,
    known: &[(LeafIndex, Hash)],
    hashes: &mut impl Iterator<Item = &'a Hash>,
) -> Result<Hash, SubsetProofError> {
    if known.is_empty() {
        return hashes.next().copied().ok_or(SubsetProofError::TooShort);
    }
    if hi - lo == 1 {
        // `known` is non-empty, ascending and inside `[lo, hi)`: exactly this leaf.
        return Ok(known[0].1);
    }
    let middle = lo + split_point(hi - lo);
    let split = known.partition_point(|(p, _)| p.0 < middle);
    let left = walk(lo, middle, &known[..split], hashes)?;
    let right = walk(middle, hi, &known[split..], hashes)?;
    Ok(node_hash(&left, &right))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::{inclusion_path_in, leaf_hash};

    fn leaves(n: u64) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect()
    }

    #[test]
    fn every_subset_of_small_trees_proves_the_root() {
        for n in 1..=13u64 {
            let tree = leaves(n);
            let root = root_from_leaf_hashes(&tree);
            for mask in 1u32..(1 << n) {
                let positions: Vec<LeafIndex> = (0..n)
                    .filter(|i| mask & (1 << i) != 0)
                    .map(LeafIndex)
                    .collect();
                let proof = subset_proof(&tree, &positions).expect("valid positions");
                let known: Vec<(LeafIndex, Hash)> = positions
                    .iter()
                    .map(|p| (*p, tree[usize::try_from(p.0).expect("small")]))
                    .collect();
                assert_eq!(root_from_subset(TreeSize(n), &known, &proof), Ok(root));
                // Every proof hash matters: dropping or adding one fails.
                if !proof.is_empty() {
                    assert_eq!(
                        root_from_subset(TreeSize(n), &known, &proof[1..]),
                        Err(SubsetProofError::TooShort)
                    );
                }
                let mut longer = proof.clone();
                longer.push(root);
                assert_eq!(
                    root_from_subset(TreeSize(n), &known, &longer),
                    Err(SubsetProofError::TooLong)
                );
            }
        }
    }

    #[test]
    fn one_leaf_gives_the_hashes_of_its_inclusion_path() {
        let tree = leaves(11);
        for i in 0..11u64 {
            let mut path =
                inclusion_path_in(&tree, usize::try_from(i).expect("small")).expect("in range");
            let mut proof = subset_proof(&tree, &[LeafIndex(i)]).expect("in range");
            path.sort();
            proof.sort();
            assert_eq!(proof, path, "leaf {i}");
        }
    }

    #[test]
    fn a_wrong_leaf_or_position_changes_the_root() {
        let tree = leaves(9);
        let root = root_from_leaf_hashes(&tree);
        let positions = [LeafIndex(2), LeafIndex(5)];
        let proof = subset_proof(&tree, &positions).expect("valid");
        let wrong_leaf = [(LeafIndex(2), tree[2]), (LeafIndex(5), tree[6])];
        assert_ne!(root_from_subset(TreeSize(9), &wrong_leaf, &proof), Ok(root));
        let moved = [(LeafIndex(2), tree[2]), (LeafIndex(6), tree[5])];
        assert_ne!(root_from_subset(TreeSize(9), &moved, &proof), Ok(root));
    }

    #[test]
    fn bad_position_lists_are_refused() {
        let tree = leaves(4);
        assert_eq!(subset_proof(&tree, &[]), Err(SubsetProofError::Empty));
        for positions in [
            &[LeafIndex(1), LeafIndex(1)][..],
            &[LeafIndex(2), LeafIndex(1)][..],
            &[LeafIndex(4)][..],
        ] {
            assert_eq!(
                subset_proof(&tree, positions),
                Err(SubsetProofError::Positions)
            );
        }
        assert_eq!(
            root_from_subset(TreeSize(4), &[], &[]),
            Err(SubsetProofError::Empty)
        );
    }
}
