//! How long to wait before the next attempt, the same for every handler.

use std::time::Duration;

use crate::config::{Backoff, CommonSettings};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Extra attempts after the first.
    pub retries: u32,
    interval: Duration,
    backoff: Backoff,
    max_interval: Duration,
}

impl RetryPolicy {
    pub fn from_settings(settings: &CommonSettings) -> RetryPolicy {
        RetryPolicy {
            retries: settings.retries,
            interval: settings.retry_interval.0,
            backoff: settings.backoff,
            max_interval: settings.max_retry_interval.0,
        }
    }

    /// The wait after `failed` attempts (1 after the first failure). A wait the
    /// server asked for (`Retry-After`) wins, capped at `max_retry_interval`;
    /// asking for none (zero, a past date) is not a reason to retry at once.
    pub fn delay(&self, failed: u32, asked: Option<Duration>) -> Duration {
        if let Some(asked) = asked.filter(|asked| !asked.is_zero()) {
            return asked.min(self.max_interval);
        }
        match self.backoff {
            Backoff::Fixed => self.interval,
            Backoff::Exponential => {
                let doublings = failed.saturating_sub(1);
                let ceiling = self
                    .interval
                    .saturating_mul(2u32.saturating_pow(doublings))
                    .min(self.max_interval);
                // Full jitter: spreads out retries of many events that failed together.
                ceiling.mul_f64(fastrand::f64())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(backoff: Backoff) -> RetryPolicy {
        RetryPolicy {
            retries: 5,
            interval: Duration::from_secs(2),
            backoff,
            max_interval: Duration::from_secs(10),
        }
    }

    #[test]
    fn fixed_waits_the_interval() {
        let p = policy(Backoff::Fixed);
        assert_eq!(p.delay(1, None), Duration::from_secs(2));
        assert_eq!(p.delay(4, None), Duration::from_secs(2));
    }

    #[test]
    fn exponential_doubles_within_the_cap_with_jitter() {
        let p = policy(Backoff::Exponential);
        for (failed, ceiling) in [(1, 2), (2, 4), (3, 8), (4, 10), (40, 10)] {
            let delays: Vec<Duration> = (0..200).map(|_| p.delay(failed, None)).collect();
            assert!(delays.iter().all(|d| *d <= Duration::from_secs(ceiling)));
            assert!(delays.iter().any(|d| *d > Duration::from_secs(ceiling) / 2));
            assert!(delays.iter().any(|d| *d < Duration::from_secs(ceiling) / 2));
        }
    }

    #[test]
    fn a_requested_wait_wins_but_is_capped() {
        let p = policy(Backoff::Fixed);
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(7))),
            Duration::from_secs(7)
        );
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(70))),
            Duration::from_secs(10)
        );
        assert_eq!(p.delay(1, Some(Duration::MAX)), Duration::from_secs(10));
        assert_eq!(p.delay(1, Some(Duration::ZERO)), Duration::from_secs(2));
    }
}
