//! How many requests one `HttpHandler` has in flight at once: a fixed
//! number, or adaptive — additive increase while answers come back fast and
//! fine, multiplicative decrease on the signs of an endpoint that cannot
//! keep up (429, 503, timeouts, connection errors, a round-trip time that
//! climbs), in the manner of TCP congestion control and Vector's adaptive
//! request concurrency.
//!
//! The limit is looked at once per window of about one round-trip time:
//! a window with a sign of trouble multiplies the limit by
//! [`DECREASE`]; one that used the whole limit with answers as fast as
//! before raises it (doubling until the first trouble, then by one).

use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio::time::Instant;
use tracing::debug;

use super::settings::Concurrency;
use super::setup_error::SetupError;

/// What a decrease multiplies the limit by.
const DECREASE: f64 = 0.9;

/// A window's mean round-trip time counts as climbing when it is this many
/// times the mean of past windows (a queue building at the endpoint).
const CLIMBING: f64 = 2.0;

/// Windows last at least this long, so that a fast endpoint's limit does
/// not swing on a handful of answers.
const MIN_WINDOW: Duration = Duration::from_millis(10);

/// The bounds a handler's limit stays within.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limits {
    Fixed(usize),
    Adaptive { min: usize, max: usize },
}

/// How one request went, as far as the limit is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Answered (any status but the ones below) after this long.
    Answered(Duration),
    /// 429, 503, a timeout or a connection error: back off.
    Overloaded,
}

/// The limit of one handler.
#[derive(Debug)]
pub struct Limiter {
    permits: Semaphore,
    state: Mutex<State>,
    limits: Limits,
}

#[derive(Debug)]
struct State {
    limit: usize,
    in_flight: usize,
    /// Permits to take out of circulation as they come back (a decrease).
    owed: usize,
    /// Doubling until the first sign of trouble.
    slow_start: bool,
    /// The mean round-trip time of past windows.
    past_rtt: Option<Duration>,
    window: Window,
}

#[derive(Debug)]
struct Window {
    started: Instant,
    rtt_total: Duration,
    answers: u32,
    overloaded: bool,
    /// The whole limit was in use at some point.
    full: bool,
}

impl Window {
    fn new() -> Window {
        Window {
            started: Instant::now(),
            rtt_total: Duration::ZERO,
            answers: 0,
            overloaded: false,
            full: false,
        }
    }
}

/// A request's place in the limit; give it back with [`Permit::done`].
#[derive(Debug)]
pub struct Permit<'a> {
    limiter: &'a Limiter,
    permit: Option<SemaphorePermit<'a>>,
}

impl Limits {
    /// The limits a handler's settings ask for; `min` above `max` is an
    /// error naming both.
    pub fn from_settings(
        concurrency: Concurrency,
        min: usize,
        max: usize,
    ) -> Result<Limits, SetupError> {
        match concurrency {
            Concurrency::Fixed(count) => Ok(Limits::Fixed(count)),
            Concurrency::Adaptive if min > max => Err(SetupError::Concurrency { min, max }),
            Concurrency::Adaptive => Ok(Limits::Adaptive { min, max }),
        }
    }
}

impl Limiter {
    pub fn new(limits: Limits) -> Limiter {
        let limit = match limits {
            Limits::Fixed(limit) => limit,
            Limits::Adaptive { min, .. } => min,
        }
        .max(1);
        Limiter {
            permits: Semaphore::new(limit),
            state: Mutex::new(State {
                limit,
                in_flight: 0,
                owed: 0,
                slow_start: true,
                past_rtt: None,
                window: Window::new(),
            }),
            limits,
        }
    }

    /// Waits for room for one more request.
    pub async fn acquire(&self) -> Permit<'_> {
        let permit = self.permits.acquire().await.ok();
        let mut state = self.state.lock();
        state.in_flight += 1;
        if state.in_flight >= state.limit {
            state.window.full = true;
        }
        Permit {
            limiter: self,
            permit,
        }
    }

    /// The current limit and the requests in flight (what metrics will
    /// show; the tests read it today).
    #[cfg(test)]
    pub fn load(&self) -> (usize, usize) {
        let state = self.state.lock();
        (state.limit, state.in_flight)
    }

    fn release(&self, permit: Option<SemaphorePermit<'_>>, signal: Option<Signal>) {
        let mut state = self.state.lock();
        state.in_flight -= 1;
        if let Some(permit) = permit
            && state.owed > 0
        {
            state.owed -= 1;
            permit.forget();
        }
        let Limits::Adaptive { min, max } = self.limits else {
            return;
        };
        match signal {
            Some(Signal::Answered(rtt)) => {
                state.window.rtt_total += rtt;
                state.window.answers += 1;
            }
            Some(Signal::Overloaded) => state.window.overloaded = true,
            None => {}
        }
        let length = state.past_rtt.unwrap_or(Duration::ZERO).max(MIN_WINDOW);
        if state.window.started.elapsed() >= length {
            self.adjust(&mut state, min.max(1), max.max(1));
        }
    }

    /// Closes a window: the new limit from what it saw.
    fn adjust(&self, state: &mut State, min: usize, max: usize) {
        let window = std::mem::replace(&mut state.window, Window::new());
        let mean = (window.answers > 0).then(|| window.rtt_total / window.answers);
        let climbing = match (mean, state.past_rtt) {
            (Some(mean), Some(past)) => mean.as_secs_f64() > past.as_secs_f64() * CLIMBING,
            _ => false,
        };
        let old = state.limit;
        let new = if window.overloaded || climbing {
            state.slow_start = false;
            ((old as f64 * DECREASE) as usize).max(min)
        } else if window.full {
            match state.slow_start {
                true => old.saturating_mul(2),
                false => old + 1,
            }
            .min(max)
        } else {
            old
        };
        if let Some(mean) = mean.filter(|_| !window.overloaded) {
            state.past_rtt = Some(match state.past_rtt {
                Some(past) => past.mul_f64(0.6) + mean.mul_f64(0.4),
                None => mean,
            });
        }
        if new > old {
            let raise = new - old;
            let repaid = raise.min(state.owed);
            state.owed -= repaid;
            self.permits.add_permits(raise - repaid);
        } else {
            // Permits not lent out go at once, the others as they return.
            let lower = old - new;
            state.owed += lower - self.permits.forget_permits(lower);
        }
        state.limit = new;
        if new != old {
            debug!(
                limit = new,
                in_flight = state.in_flight,
                "HTTP concurrency limit changed"
            );
        }
    }
}

impl Permit<'_> {
    /// Gives the place back, with how the request went (`None`: it did not
    /// say anything about the endpoint's load).
    pub fn done(mut self, signal: Option<Signal>) {
        self.limiter.release(self.permit.take(), signal);
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if let Some(permit) = self.permit.take() {
            // Cancelled before `done`: says nothing of the endpoint.
            self.limiter.release(Some(permit), None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `windows` windows in which every one of `limit` requests
    /// answers with `signal`; the last answer closes the window.
    async fn windows(limiter: &Limiter, windows: usize, signal: Signal) {
        for _ in 0..windows {
            let (limit, _) = limiter.load();
            let mut permits = Vec::new();
            for _ in 0..limit {
                permits.push(limiter.acquire().await);
            }
            let last = permits.pop().unwrap();
            for permit in permits {
                permit.done(Some(signal));
            }
            tokio::time::advance(MIN_WINDOW).await;
            last.done(Some(signal));
        }
    }

    const FAST: Signal = Signal::Answered(Duration::from_millis(5));

    #[tokio::test(start_paused = true)]
    async fn grows_while_answers_are_fast_and_full_and_stays_within_max() {
        let limiter = Limiter::new(Limits::Adaptive { min: 1, max: 100 });
        windows(&limiter, 3, FAST).await;
        assert_eq!(limiter.load().0, 8, "doubles in slow start");
        windows(&limiter, 10, FAST).await;
        assert_eq!(limiter.load().0, 100);
    }

    #[tokio::test(start_paused = true)]
    async fn backs_off_on_overload_then_grows_by_one() {
        let limiter = Limiter::new(Limits::Adaptive { min: 2, max: 256 });
        windows(&limiter, 5, FAST).await;
        assert_eq!(limiter.load().0, 64);
        windows(&limiter, 1, Signal::Overloaded).await;
        assert_eq!(limiter.load().0, 57);
        windows(&limiter, 2, FAST).await;
        assert_eq!(limiter.load().0, 59, "additive after the first trouble");
        windows(&limiter, 100, Signal::Overloaded).await;
        assert_eq!(limiter.load().0, 2, "never below min");
    }

    #[tokio::test(start_paused = true)]
    async fn a_climbing_round_trip_time_backs_off() {
        let limiter = Limiter::new(Limits::Adaptive { min: 1, max: 256 });
        windows(&limiter, 4, FAST).await;
        assert_eq!(limiter.load().0, 16);
        windows(&limiter, 1, Signal::Answered(Duration::from_millis(50))).await;
        assert_eq!(limiter.load().0, 14);
    }

    #[tokio::test(start_paused = true)]
    async fn a_lowered_limit_holds_back_new_requests_and_a_fixed_one_never_moves() {
        let limiter = Limiter::new(Limits::Adaptive { min: 1, max: 256 });
        windows(&limiter, 4, FAST).await;
        windows(&limiter, 1, Signal::Overloaded).await;
        assert_eq!(limiter.load().0, 14);
        let mut held = Vec::new();
        for _ in 0..14 {
            held.push(limiter.acquire().await);
        }
        let more = tokio::time::timeout(Duration::from_millis(10), limiter.acquire()).await;
        assert!(more.is_err(), "a 15th request got in under a limit of 14");
        drop(held);

        let fixed = Limiter::new(Limits::Fixed(3));
        windows(&fixed, 3, Signal::Overloaded).await;
        windows(&fixed, 3, FAST).await;
        assert_eq!(fixed.load().0, 3);
    }
}
