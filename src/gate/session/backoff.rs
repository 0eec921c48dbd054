//! How long the gate waits before starting a new session after one failed (plain state,
//! unit-tested): doubling while sessions keep failing fast, and back to the first wait after a
//! session that ran healthy for a while, since a failure an hour later is a new incident, not
//! the next retry of the last one.

use std::time::Duration;

/// The first wait, and the wait after a session that ran at least [`HEALTHY_RUN`].
pub const FIRST_WAIT: Duration = Duration::from_millis(200);
/// The longest wait.
pub const MAX_WAIT: Duration = Duration::from_secs(10);
/// A session that ran this long before failing counts as healthy: the next wait starts over.
pub const HEALTHY_RUN: Duration = Duration::from_secs(60);

/// The wait before the next session, as failures come.
#[derive(Debug, Clone)]
pub struct SessionBackoff {
    next: Duration,
}

impl Default for SessionBackoff {
    fn default() -> Self {
        SessionBackoff { next: FIRST_WAIT }
    }
}

impl SessionBackoff {
    /// After a session that failed having run for `ran_for`: how long to wait before the next.
    pub fn after_failure(&mut self, ran_for: Duration) -> Duration {
        if ran_for >= HEALTHY_RUN {
            self.next = FIRST_WAIT;
        }
        let wait = self.next;
        self.next = (self.next * 2).min(MAX_WAIT);
        wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAST: Duration = Duration::from_millis(300);

    #[test]
    fn fast_failures_double_the_wait_up_to_the_cap() {
        let mut b = SessionBackoff::default();
        let waits: Vec<u128> = (0..9).map(|_| b.after_failure(FAST).as_millis()).collect();
        assert_eq!(
            waits,
            [200, 400, 800, 1600, 3200, 6400, 10_000, 10_000, 10_000]
        );
    }

    #[test]
    fn a_session_that_ran_healthy_starts_the_waits_over() {
        let mut b = SessionBackoff::default();
        for _ in 0..8 {
            b.after_failure(FAST);
        }
        assert_eq!(b.after_failure(FAST), MAX_WAIT);
        assert_eq!(b.after_failure(HEALTHY_RUN), FIRST_WAIT);
        assert_eq!(b.after_failure(FAST), FIRST_WAIT * 2);
        assert_eq!(
            b.after_failure(HEALTHY_RUN - Duration::from_millis(1)),
            FIRST_WAIT * 4,
            "just short of healthy still counts as the same incident"
        );
    }
}
