//! The Ed25519 batch-verification ceiling: `verify_batch` over the run's own pre-signed
//! readings on N threads, nothing else. It bounds what any ingest on this machine could
//! anchor (every reading must be verified once), so the node's rate is reported against it.
//! Two verifiers: `ed25519_dalek::verify_batch` (the reference), and ingest's own
//! `protocol::batch::verify_batch`, which combines the terms of readings signed by one key
//! (it gains when readings come in backlogs: `--per-message`).

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use ed25519_dalek::{Signature, VerifyingKey};

/// Which batch verifier the ceiling runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Verifier {
    /// `ed25519_dalek::verify_batch`.
    Dalek,
    /// `protocol::batch::verify_batch` (ingest's: one point per distinct key).
    Coalesced,
}

impl Verifier {
    fn verifies(self, messages: &[&[u8]], signatures: &[Signature], keys: &[VerifyingKey]) -> bool {
        match self {
            Self::Dalek => ed25519_dalek::verify_batch(messages, signatures, keys).is_ok(),
            Self::Coalesced => protocol::batch::verify_batch(messages, signatures, keys).is_ok(),
        }
    }
}

/// Readings per second verified by `threads` threads for `run`, in batches of `batch`.
///
/// # Errors
/// If there are fewer inputs than one batch per thread, or a batch does not verify (the
/// plan is broken).
pub fn measure(
    inputs: &[(Vec<u8>, Signature, VerifyingKey)],
    threads: usize,
    batch: usize,
    run: Duration,
    verifier: Verifier,
) -> Result<f64> {
    let threads = threads.max(1);
    let batch = batch.max(1);
    if inputs.len() < threads * batch {
        bail!(
            "the ceiling needs at least {} readings, the plan has {}",
            threads * batch,
            inputs.len()
        );
    }
    // Arrange every batch before timing, so the timed loop is verify_batch alone.
    type Batch<'a> = (Vec<&'a [u8]>, Vec<Signature>, Vec<VerifyingKey>);
    let batches: Vec<Batch<'_>> = inputs
        .chunks_exact(batch)
        .map(|chunk| {
            (
                chunk.iter().map(|(m, _, _)| m.as_slice()).collect(),
                chunk.iter().map(|(_, s, _)| *s).collect(),
                chunk.iter().map(|(_, _, k)| *k).collect(),
            )
        })
        .collect();
    for (messages, signatures, keys) in batches.iter().take(1) {
        if !verifier.verifies(messages, signatures, keys) {
            bail!("a batch of the plan does not verify");
        }
    }
    let verified: Vec<u64> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let batches = &batches;
                scope.spawn(move || {
                    let start = Instant::now();
                    let mut next = t * batches.len() / threads;
                    let mut done = 0u64;
                    while start.elapsed() < run {
                        let (messages, signatures, keys) = &batches[next % batches.len()];
                        // Every batch verified above or is of the same plan; the result is
                        // only kept from being optimised away.
                        let ok = verifier.verifies(messages, signatures, keys);
                        std::hint::black_box(ok);
                        done += u64::try_from(messages.len()).unwrap_or(0);
                        next += 1;
                    }
                    done
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or(0)).collect()
    });
    #[expect(clippy::cast_precision_loss, reason = "counts far below 2^52")]
    let rate = verified.iter().sum::<u64>() as f64 / run.as_secs_f64();
    Ok(rate)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::{Fleet, PlanShape, sign_plan, verification_inputs};

    #[test]
    fn the_ceiling_verifies_the_plan_and_refuses_a_small_one() {
        let fleet = Fleet::new(4).unwrap();
        let plan = sign_plan(
            &fleet,
            PlanShape {
                readings: 64,
                per_message: 1,
                sequence_base: 0,
                device_time_ms: 0,
                threads: 1,
            },
        )
        .unwrap();
        let inputs = verification_inputs(&fleet, &plan).unwrap();
        for verifier in [Verifier::Dalek, Verifier::Coalesced] {
            let rate = measure(&inputs, 2, 16, Duration::from_millis(50), verifier).unwrap();
            assert!(rate > 0.0);
            assert!(measure(&inputs, 2, 64, Duration::from_millis(10), verifier).is_err());
            let mut broken = inputs.clone();
            broken[0].1 = broken[1].1;
            assert!(measure(&broken, 1, 16, Duration::from_millis(10), verifier).is_err());
        }
    }
}
