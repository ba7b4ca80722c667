//! Reconnect backoff: exponential, capped, with full jitter.
//!
//! When a broker restarts, every simulated device loses its connection at the same instant.
//! Without jitter they would all reconnect in lockstep and hit the broker together on every
//! retry; "full jitter" (sleep a uniformly random time between zero and the exponential bound)
//! spreads them out. The random numbers come from a [`SplitMix64`] seeded by the caller, so a
//! run with `--seed` is reproducible.

use std::time::Duration;

/// A small, fast, seedable pseudo-random generator (Steele, Lea and Flood, "Fast splittable
/// pseudorandom number generators", OOPSLA 2014). Used for jitter and simulation seeds only,
/// never for keys.
#[derive(Clone, Debug)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A uniformly distributed value in `0..=bound` (the modulo bias is below 2^-40 for the
    /// millisecond bounds used here, irrelevant for jitter).
    pub fn below_or_equal(&mut self, bound: u64) -> u64 {
        match bound.checked_add(1) {
            Some(range) => self.next_u64() % range,
            None => self.next_u64(),
        }
    }
}

/// Exponential backoff with full jitter: attempt `n` (counting from 0) sleeps a random time in
/// `0..=min(cap, base * 2^n)`, but at least `floor`, so that a refused connection never spins.
#[derive(Clone, Debug)]
pub struct Backoff {
    base_ms: u64,
    cap_ms: u64,
    floor_ms: u64,
    attempt: u32,
    rng: SplitMix64,
}

impl Backoff {
    /// Panics (a configuration bug, not input) unless `floor_ms <= base_ms <= cap_ms`.
    pub fn new(base_ms: u64, cap_ms: u64, floor_ms: u64, rng: SplitMix64) -> Self {
        assert!(
            floor_ms <= base_ms && base_ms <= cap_ms,
            "backoff bounds out of order: floor {floor_ms} base {base_ms} cap {cap_ms}"
        );
        Self {
            base_ms,
            cap_ms,
            floor_ms,
            attempt: 0,
            rng,
        }
    }

    /// The delay before the next attempt; each call doubles the bound until the cap.
    pub fn next_delay(&mut self) -> Duration {
        let bound = self.bound_ms();
        self.attempt = self.attempt.saturating_add(1);
        Duration::from_millis(self.rng.below_or_equal(bound).max(self.floor_ms))
    }

    /// The upper bound of the next delay.
    pub fn bound_ms(&self) -> u64 {
        let factor = 1u64.checked_shl(self.attempt).unwrap_or(u64::MAX);
        self.base_ms.saturating_mul(factor).min(self.cap_ms)
    }

    /// Called after a successful connection: the next failure starts from the base again.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bound_doubles_up_to_the_cap_and_resets() {
        let mut backoff = Backoff::new(100, 1_000, 10, SplitMix64::new(7));
        let mut bounds = Vec::new();
        for _ in 0..7 {
            bounds.push(backoff.bound_ms());
            let delay = backoff.next_delay();
            assert!(delay <= Duration::from_millis(*bounds.last().unwrap_or(&0)));
            assert!(delay >= Duration::from_millis(10));
        }
        assert_eq!(bounds, [100, 200, 400, 800, 1_000, 1_000, 1_000]);
        backoff.reset();
        assert_eq!(backoff.bound_ms(), 100);
    }

    #[test]
    fn the_bound_never_overflows() {
        let mut backoff = Backoff::new(1, u64::MAX, 0, SplitMix64::new(1));
        for _ in 0..200 {
            let _ = backoff.next_delay();
        }
        assert_eq!(backoff.bound_ms(), u64::MAX);
    }

    #[test]
    fn jitter_is_reproducible_from_the_seed_and_differs_between_seeds() {
        let delays = |seed| {
            let mut backoff = Backoff::new(100, 10_000, 0, SplitMix64::new(seed));
            (0..8).map(|_| backoff.next_delay()).collect::<Vec<_>>()
        };
        assert_eq!(delays(1), delays(1));
        assert_ne!(delays(1), delays(2));
    }
}
