//! Batch verification of Ed25519 signatures in which many signatures share a key — a device's
//! backlog uplink carries up to 16 readings signed by the same key, and a verification group
//! holds a few devices' backlogs.
//!
//! The check is the one `ed25519_dalek::verify_batch` makes (cofactorless, so it accepts
//! exactly the batches of signatures `verify_strict` accepts one by one, once the caller has
//! put only signatures whose `R` passes [`crate::r_is_strict`] in the batch): with random
//! 128-bit `z_i`,
//!
//! ```text
//! [-Σ z_i·s_i] B + Σ [z_i] R_i + Σ_A [Σ_{i: A_i = A} z_i·k_i] A  =  identity
//! ```
//!
//! where `k_i = SHA-512(R_i ‖ A_i ‖ M_i) mod ℓ` (RFC 8032, section 5.1.7). The only change is the
//! last sum: terms of one key are added as scalars first, so the multiscalar multiplication
//! has one point per distinct key instead of one per signature. With 16 signatures per key
//! that is `n + n/16 + 1` points instead of `2n + 1`; the multiplication is most of the cost.
//! The same coalescing is what `ed25519-zebra`'s batch verifier does (by key) — here on the
//! strict acceptance rules above.
//!
//! The `z_i` are derived, as `ed25519_dalek` derives its own, from a hash of the whole batch
//! (every `k_i`, which binds `R_i`, `A_i` and `M_i`, and every `s_i`): a forger who fixes a
//! batch fixes its `z_i` with it and cannot aim at them, so a batch with an invalid signature
//! passes with probability about 2^-128 per attempt.

use std::collections::HashMap;
use std::iter::once;
use std::prelude::v1::*;

use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{IsIdentity, VartimeMultiscalarMul};
use ed25519_dalek::{Signature, VerifyingKey};
use sha2::{Digest, Sha512};

/// Why a batch did not verify (the batch as a whole: find the bad signature one by one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// The three slices differ in length.
    #[error("{messages} messages, {signatures} signatures and {keys} keys")]
    Lengths {
        messages: usize,
        signatures: usize,
        keys: usize,
    },
    /// A signature's `s` is not a canonical scalar (`s ≥ ℓ`).
    #[error("signature {0}: s is not reduced")]
    NonCanonicalS(usize),
    /// A signature's `R` is not a point's encoding.
    #[error("signature {0}: R is not a curve point")]
    BadR(usize),
    /// The combined equation does not hold: at least one signature is invalid.
    #[error("the batch equation does not hold")]
    Equation,
}

/// Domain separation of the batch's `z` derivation.
const Z_DOMAIN: &[u8] = b"agritrace ed25519 coalesced batch v1";

/// Verifies `signatures[i]` over `messages[i]` under `keys[i]` for every `i`, as one batch
/// equation with the terms of each distinct key combined. `Ok` means every signature is valid
/// (with the strict rules when the caller filtered `R` with [`crate::r_is_strict`]); an error
/// means at least one is not.
///
/// # Errors
/// [`BatchError`] when the batch does not verify.
pub fn verify_batch(
    messages: &[&[u8]],
    signatures: &[Signature],
    keys: &[VerifyingKey],
) -> Result<(), BatchError> {
    let n = signatures.len();
    if messages.len() != n || keys.len() != n {
        return Err(BatchError::Lengths {
            messages: messages.len(),
            signatures: n,
            keys: keys.len(),
        });
    }
    if n == 0 {
        return Ok(());
    }
    let mut rs: Vec<EdwardsPoint> = Vec::with_capacity(n);
    let mut ss: Vec<Scalar> = Vec::with_capacity(n);
    let mut ks: Vec<Scalar> = Vec::with_capacity(n);
    let mut seed = Sha512::new_with_prefix(Z_DOMAIN);
    for (i, ((message, signature), key)) in messages.iter().zip(signatures).zip(keys).enumerate() {
        let s = Option::<Scalar>::from(Scalar::from_canonical_bytes(*signature.s_bytes()))
            .ok_or(BatchError::NonCanonicalS(i))?;
        let r = CompressedEdwardsY(*signature.r_bytes())
            .decompress()
            .ok_or(BatchError::BadR(i))?;
        let hram: [u8; 64] = Sha512::new()
            .chain_update(signature.r_bytes())
            .chain_update(key.as_bytes())
            .chain_update(message)
            .finalize()
            .into();
        seed.update(hram);
        seed.update(signature.s_bytes());
        rs.push(r);
        ss.push(s);
        ks.push(Scalar::from_bytes_mod_order_wide(&hram));
    }
    let seed = seed.finalize();

    // z_i: four 128-bit values per SHA-512 block of (seed ‖ block number).
    let mut zs: Vec<Scalar> = Vec::with_capacity(n);
    let mut block = 0u64;
    while zs.len() < n {
        let bytes = Sha512::new()
            .chain_update(seed)
            .chain_update(block.to_le_bytes())
            .finalize();
        for chunk in bytes.chunks_exact(16) {
            if zs.len() == n {
                break;
            }
            let mut z = [0u8; 16];
            z.copy_from_slice(chunk);
            zs.push(Scalar::from(u128::from_le_bytes(z)));
        }
        block += 1;
    }

    // One coefficient per distinct key, in order of first appearance.
    let mut slot_of: HashMap<[u8; 32], usize> = HashMap::new();
    let mut key_points: Vec<EdwardsPoint> = Vec::new();
    let mut key_coefficients: Vec<Scalar> = Vec::new();
    let mut b_coefficient = Scalar::ZERO;
    let mut last: Option<([u8; 32], usize)> = None;
    for i in 0..n {
        b_coefficient += zs[i] * ss[i];
        let key = keys[i].as_bytes();
        // Readings of one device come together: check the previous key before the map.
        let slot = match last {
            Some((bytes, slot)) if &bytes == key => slot,
            _ => *slot_of.entry(*key).or_insert_with(|| {
                key_points.push(keys[i].to_edwards());
                key_coefficients.push(Scalar::ZERO);
                key_points.len() - 1
            }),
        };
        last = Some((*key, slot));
        key_coefficients[slot] += zs[i] * ks[i];
    }

    let sum = EdwardsPoint::vartime_multiscalar_mul(
        once(-b_coefficient).chain(zs).chain(key_coefficients),
        once(ED25519_BASEPOINT_POINT).chain(rs).chain(key_points),
    );
    if sum.is_identity() {
        Ok(())
    } else {
        Err(BatchError::Equation)
    }
}

#[cfg(test)]
mod tests {
    use std::format;

    use ed25519_dalek::{Signer, SigningKey};

    use super::*;

    /// `n` signatures by `keys` keys, key `i % keys` signing message `i`.
    fn batch(n: usize, keys: usize) -> (Vec<Vec<u8>>, Vec<Signature>, Vec<VerifyingKey>) {
        let signers: Vec<SigningKey> = (0..keys)
            .map(|k| SigningKey::from_bytes(&[u8::try_from(k + 1).expect("few keys"); 32]))
            .collect();
        let messages: Vec<Vec<u8>> = (0..n)
            .map(|i| format!("reading {i}").into_bytes())
            .collect();
        let signatures = messages
            .iter()
            .enumerate()
            .map(|(i, m)| signers[i % keys].sign(m))
            .collect();
        let verifying = (0..n).map(|i| signers[i % keys].verifying_key()).collect();
        (messages, signatures, verifying)
    }

    fn refs(messages: &[Vec<u8>]) -> Vec<&[u8]> {
        messages.iter().map(Vec::as_slice).collect()
    }

    #[test]
    fn valid_batches_verify_and_agree_with_ed25519_dalek() {
        for (n, keys) in [
            (1, 1),
            (2, 1),
            (3, 2),
            (16, 1),
            (64, 4),
            (256, 16),
            (257, 255),
        ] {
            let (messages, signatures, verifying) = batch(n, keys);
            let messages = refs(&messages);
            assert_eq!(
                verify_batch(&messages, &signatures, &verifying),
                Ok(()),
                "{n}/{keys}"
            );
            assert!(ed25519_dalek::verify_batch(&messages, &signatures, &verifying).is_ok());
        }
        assert_eq!(verify_batch(&[], &[], &[]), Ok(()));
    }

    #[test]
    fn one_bad_signature_anywhere_fails_the_batch() {
        let (messages, signatures, verifying) = batch(48, 3);
        for bad in [0, 17, 47] {
            // A changed message.
            let mut changed = messages.clone();
            changed[bad][0] ^= 1;
            assert_eq!(
                verify_batch(&refs(&changed), &signatures, &verifying),
                Err(BatchError::Equation)
            );
            // A signature under the wrong key (valid for another key of the batch).
            let mut swapped = verifying.clone();
            swapped[bad] = verifying[(bad + 1) % 48];
            assert_eq!(
                verify_batch(&refs(&messages), &signatures, &swapped),
                Err(BatchError::Equation)
            );
            // s changed but still canonical.
            let mut sigs = signatures.clone();
            let mut bytes = sigs[bad].to_bytes();
            bytes[32] ^= 1;
            sigs[bad] = Signature::from_bytes(&bytes);
            assert_eq!(
                verify_batch(&refs(&messages), &sigs, &verifying),
                Err(BatchError::Equation)
            );
        }
    }

    #[test]
    fn two_bad_signatures_that_cancel_in_an_unweighted_sum_still_fail() {
        // Move the same amount from one signature's s to another's: the plain sum of the
        // equations still holds, the random weights catch it.
        let (messages, signatures, verifying) = batch(4, 1);
        let delta = Scalar::from(12_345u64);
        let mut sigs = signatures.clone();
        let shift = |sig: &Signature, by: Scalar| {
            let mut bytes = sig.to_bytes();
            let s = Option::<Scalar>::from(Scalar::from_canonical_bytes(
                bytes[32..].try_into().expect("32 bytes"),
            ))
            .expect("canonical");
            bytes[32..].copy_from_slice((s + by).as_bytes());
            Signature::from_bytes(&bytes)
        };
        sigs[0] = shift(&signatures[0], delta);
        sigs[1] = shift(&signatures[1], -delta);
        assert_eq!(
            verify_batch(&refs(&messages), &sigs, &verifying),
            Err(BatchError::Equation)
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        /// The batch accepts exactly when every signature passes `verify_strict` on its own
        /// (for signatures whose `R` passes `r_is_strict`, as callers ensure).
        #[test]
        fn the_batch_agrees_with_strict_verification_one_by_one(
            n in 1usize..40,
            keys in 1usize..6,
            faults in proptest::collection::vec((0usize..40, 0u8..4), 0..3),
        ) {
            let (mut messages, mut signatures, mut verifying) = batch(n, keys);
            for (at, kind) in faults {
                let at = at % n;
                match kind {
                    0 => messages[at].push(b'!'),
                    1 => verifying[at] = SigningKey::from_bytes(&[99; 32]).verifying_key(),
                    2 => {
                        let mut bytes = signatures[at].to_bytes();
                        bytes[32] ^= 0x10;
                        signatures[at] = Signature::from_bytes(&bytes);
                    }
                    _ => {
                        // Another signature's R (a valid point, the wrong one).
                        let other = signatures[(at + 1) % n].to_bytes();
                        let mut bytes = signatures[at].to_bytes();
                        bytes[..32].copy_from_slice(&other[..32]);
                        signatures[at] = Signature::from_bytes(&bytes);
                    }
                }
            }
            let strict = messages
                .iter()
                .zip(&signatures)
                .zip(&verifying)
                .all(|((m, s), k)| k.verify_strict(m, s).is_ok());
            let batched = verify_batch(&refs(&messages), &signatures, &verifying).is_ok();
            proptest::prop_assert_eq!(batched, strict);
        }
    }

    #[test]
    fn malformed_signatures_are_named() {
        let (messages, signatures, verifying) = batch(3, 1);
        let mut sigs = signatures.clone();
        let mut bytes = sigs[1].to_bytes();
        bytes[32..].copy_from_slice(&[0xff; 32]);
        sigs[1] = Signature::from_bytes(&bytes);
        assert_eq!(
            verify_batch(&refs(&messages), &sigs, &verifying),
            Err(BatchError::NonCanonicalS(1))
        );
        // y = 2 is not on the curve: 2^2 - 1 over 1 + d*2^2 has no square root.
        let mut sigs = signatures.clone();
        let mut bytes = sigs[2].to_bytes();
        bytes[..32].copy_from_slice(&{
            let mut r = [0u8; 32];
            r[0] = 2;
            r
        });
        sigs[2] = Signature::from_bytes(&bytes);
        assert_eq!(
            CompressedEdwardsY(*sigs[2].r_bytes()).decompress(),
            None,
            "the test needs an R that is not a point"
        );
        assert_eq!(
            verify_batch(&refs(&messages), &sigs, &verifying),
            Err(BatchError::BadR(2))
        );
        assert_eq!(
            verify_batch(&refs(&messages[..2]), &signatures, &verifying),
            Err(BatchError::Lengths {
                messages: 2,
                signatures: 3,
                keys: 3
            })
        );
    }
}
