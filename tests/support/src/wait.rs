//! Waiting for a condition: poll it until it holds, and panic naming what was awaited once a
//! guard limit has passed. The limit only stops a hung test; how long the wait took is never
//! asserted.

use std::time::{Duration, Instant};

/// How often a condition is polled: short next to the work a test waits for, long enough that
/// polling costs next to nothing.
pub const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// What a polled condition answers: `true` or `Some(value)` once it holds.
pub trait Outcome {
    /// What the wait returns once the condition holds.
    type Value;

    /// `Some` once the condition holds.
    fn ready(self) -> Option<Self::Value>;
}

impl Outcome for bool {
    type Value = ();

    fn ready(self) -> Option<()> {
        self.then_some(())
    }
}

impl<T> Outcome for Option<T> {
    type Value = T;

    fn ready(self) -> Option<T> {
        self
    }
}

/// Polls `condition` every [`POLL_INTERVAL`], blocking the thread, until it holds; panics
/// naming `what` after `limit`.
pub fn wait_until<O: Outcome>(
    what: &str,
    limit: Duration,
    condition: impl FnMut() -> O,
) -> O::Value {
    poll(limit, condition).unwrap_or_else(|| gave_up(what, limit))
}

/// Polls `condition` every [`POLL_INTERVAL`], sleeping on the tokio timer in between, until it
/// holds; panics naming `what` after `limit`.
pub async fn wait_until_async<O, F, Fut>(what: &str, limit: Duration, condition: F) -> O::Value
where
    O: Outcome,
    F: FnMut() -> Fut,
    Fut: Future<Output = O>,
{
    poll_async(limit, condition)
        .await
        .unwrap_or_else(|| gave_up(what, limit))
}

/// The value of `condition` once it holds, or `None` once `limit` has passed.
pub(crate) fn poll<O: Outcome>(
    limit: Duration,
    mut condition: impl FnMut() -> O,
) -> Option<O::Value> {
    let start = Instant::now();
    loop {
        if let Some(value) = condition().ready() {
            return Some(value);
        }
        if start.elapsed() >= limit {
            return None;
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// [`poll`] for an async condition, sleeping on the tokio timer.
pub(crate) async fn poll_async<O, F, Fut>(limit: Duration, mut condition: F) -> Option<O::Value>
where
    O: Outcome,
    F: FnMut() -> Fut,
    Fut: Future<Output = O>,
{
    let start = Instant::now();
    loop {
        if let Some(value) = condition().await.ready() {
            return Some(value);
        }
        if start.elapsed() >= limit {
            return None;
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

fn gave_up(what: &str, limit: Duration) -> ! {
    panic!("gave up after {limit:?} waiting for {what}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blocking_wait_returns_the_value_the_condition_found() {
        let mut polls = 0;
        let found = wait_until("the third poll", Duration::from_secs(60), || {
            polls += 1;
            (polls == 3).then_some(polls * 10)
        });
        assert_eq!((found, polls), (30, 3));
    }

    #[test]
    fn a_condition_that_never_holds_gives_up_once_the_limit_has_passed() {
        let mut polls = 0;
        let found = poll(Duration::ZERO, || {
            polls += 1;
            false
        });
        assert_eq!((found, polls), (None, 1), "polled once, then gave up");
    }

    #[test]
    fn giving_up_names_what_was_awaited() {
        let panic =
            std::panic::catch_unwind(|| wait_until("the sky to fall", Duration::ZERO, || false))
                .expect_err("the wait gives up");
        let message = panic
            .downcast_ref::<String>()
            .expect("a formatted panic message");
        assert!(message.contains("waiting for the sky to fall"), "{message}");
    }

    #[tokio::test]
    async fn an_async_wait_polls_until_the_condition_holds() {
        let mut polls = 0;
        wait_until_async("the second poll", Duration::from_secs(60), || {
            polls += 1;
            std::future::ready(polls == 2)
        })
        .await;
        assert_eq!(polls, 2);
        let never = poll_async(Duration::ZERO, || std::future::ready(None::<u8>)).await;
        assert_eq!(never, None);
    }
}
