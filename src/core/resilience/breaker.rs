//! A circuit breaker around KGeN: after a run of upstream failures it fails calls fast for a cool-down, then lets
//! a few probe calls through (half-open) and closes again once they succeed.
//!
//! Only outcomes that say KGeN itself is failing count (unreachable, 5xx, upstream timeouts, see
//! [`crate::core::Error::is_upstream_failure`]); a caller's bad request or a rate limit neither trips nor heals it.

use std::{
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use tokio::time::Instant;

/// When the breaker trips and how it recovers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerSettings {
    /// Consecutive upstream failures that open the circuit.
    pub failure_threshold: u32,
    /// A run of failures only counts if each came within this long of the previous one.
    pub window: Duration,
    /// How long the circuit stays open before probing.
    pub cool_down: Duration,
    /// Probe calls let through while half-open; this many successes close the circuit.
    pub probes: u32,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            window: Duration::from_secs(10),
            cool_down: Duration::from_secs(5),
            probes: 3,
        }
    }
}

/// The breaker's state, as logs and metrics show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls flow.
    Closed,
    /// Calls fail fast.
    Open,
    /// A few probe calls flow.
    HalfOpen,
}

#[derive(Debug)]
enum State {
    Closed {
        failures: u32,
        last_failure: Option<Instant>,
    },
    Open {
        until: Instant,
    },
    HalfOpen {
        in_flight: u32,
        successes: u32,
    },
}

/// Shared by every call to one upstream.
#[derive(Debug, Clone)]
pub struct CircuitBreaker {
    settings: BreakerSettings,
    state: Arc<Mutex<State>>,
}

/// Permission to make one upstream attempt; report its outcome with [`Admission::record`]. Dropped without a
/// report (the caller went away, or the outcome says nothing about KGeN's health), it frees its probe slot.
#[derive(Debug)]
pub struct Admission {
    breaker: CircuitBreaker,
    probe: bool,
    recorded: bool,
}

impl CircuitBreaker {
    /// A closed breaker.
    pub fn new(settings: BreakerSettings) -> Self {
        Self {
            settings,
            state: Arc::new(Mutex::new(State::Closed {
                failures: 0,
                last_failure: None,
            })),
        }
    }

    /// The current state (an open breaker past its cool-down still reads `Open` until the next call probes).
    pub fn state(&self) -> BreakerState {
        match *self.lock() {
            State::Closed { .. } => BreakerState::Closed,
            State::Open { .. } => BreakerState::Open,
            State::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// Lets an attempt through, or says how long until the breaker probes again.
    pub fn admit(&self) -> Result<Admission, Duration> {
        let mut state = self.lock();
        let now = Instant::now();
        let probe = match *state {
            State::Closed { .. } => false,
            State::Open { until } if now < until => return Err(until - now),
            State::Open { .. } => {
                tracing::info!(
                    probes = self.settings.probes,
                    "circuit breaker half-open: probing KGeN"
                );
                *state = State::HalfOpen {
                    in_flight: 1,
                    successes: 0,
                };
                true
            }
            State::HalfOpen {
                ref mut in_flight,
                successes,
            } => {
                if *in_flight + successes >= self.settings.probes {
                    // Enough probes are out; the rest wait for their verdict.
                    return Err(self.settings.cool_down.min(Duration::from_secs(1)));
                }
                *in_flight += 1;
                true
            }
        };
        Ok(Admission {
            breaker: self.clone(),
            probe,
            recorded: false,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is plain data, valid after any panic: recover it rather than propagate the poison.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn on_success(&self, probe: bool) {
        let mut state = self.lock();
        match *state {
            State::Closed {
                ref mut failures, ..
            } => *failures = 0,
            State::HalfOpen {
                ref mut in_flight,
                ref mut successes,
            } if probe => {
                *in_flight = in_flight.saturating_sub(1);
                *successes += 1;
                if *successes >= self.settings.probes {
                    tracing::info!("circuit breaker closed: KGeN answers again");
                    *state = State::Closed {
                        failures: 0,
                        last_failure: None,
                    };
                }
            }
            _ => {}
        }
    }

    fn on_failure(&self, probe: bool) {
        let mut state = self.lock();
        let now = Instant::now();
        match *state {
            State::Closed {
                ref mut failures,
                ref mut last_failure,
            } => {
                let in_run =
                    last_failure.is_some_and(|at| now.duration_since(at) <= self.settings.window);
                *failures = if in_run { *failures + 1 } else { 1 };
                *last_failure = Some(now);
                if *failures >= self.settings.failure_threshold {
                    tracing::warn!(
                        failures = *failures,
                        cool_down = ?self.settings.cool_down,
                        "circuit breaker opened: failing calls fast"
                    );
                    *state = State::Open {
                        until: now + self.settings.cool_down,
                    };
                }
            }
            State::HalfOpen { .. } if probe => {
                tracing::warn!(cool_down = ?self.settings.cool_down, "circuit breaker re-opened: a probe failed");
                *state = State::Open {
                    until: now + self.settings.cool_down,
                };
            }
            _ => {}
        }
    }

    fn release_probe(&self) {
        if let State::HalfOpen {
            ref mut in_flight, ..
        } = *self.lock()
        {
            *in_flight = in_flight.saturating_sub(1);
        }
    }
}

impl Admission {
    /// Reports the attempt: `Some(true)` KGeN failed, `Some(false)` it answered well, `None` says nothing.
    pub fn record(mut self, upstream_failed: Option<bool>) {
        match upstream_failed {
            Some(true) => self.breaker.on_failure(self.probe),
            Some(false) => self.breaker.on_success(self.probe),
            None => return,
        }
        self.recorded = true;
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        if self.probe && !self.recorded {
            self.breaker.release_probe();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> CircuitBreaker {
        CircuitBreaker::new(BreakerSettings {
            failure_threshold: 3,
            window: Duration::from_secs(10),
            cool_down: Duration::from_secs(5),
            probes: 2,
        })
    }

    fn fail(b: &CircuitBreaker) {
        b.admit().expect("admitted").record(Some(true));
    }

    #[tokio::test(start_paused = true)]
    async fn a_run_of_failures_opens_it_and_it_fails_fast_for_the_cool_down() {
        let b = breaker();
        fail(&b);
        fail(&b);
        assert_eq!(b.state(), BreakerState::Closed);
        fail(&b);
        assert_eq!(b.state(), BreakerState::Open);
        let wait = b.admit().expect_err("fails fast");
        assert_eq!(wait, Duration::from_secs(5));
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(b.admit().expect_err("still open"), Duration::from_secs(3));
    }

    #[tokio::test(start_paused = true)]
    async fn successes_and_neutral_outcomes_reset_or_keep_the_run() {
        let b = breaker();
        fail(&b);
        fail(&b);
        b.admit().unwrap().record(Some(false));
        fail(&b);
        fail(&b);
        assert_eq!(b.state(), BreakerState::Closed, "a success ended the run");
        b.admit().unwrap().record(None);
        fail(&b);
        assert_eq!(
            b.state(),
            BreakerState::Open,
            "neutral outcomes do not end it"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn failures_spread_wider_than_the_window_do_not_trip_it() {
        let b = breaker();
        for _ in 0..10 {
            fail(&b);
            fail(&b);
            tokio::time::advance(Duration::from_secs(11)).await;
        }
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn after_the_cool_down_probes_close_it_again() {
        let b = breaker();
        (0..3).for_each(|_| fail(&b));
        tokio::time::advance(Duration::from_secs(5)).await;

        let p1 = b.admit().expect("first probe");
        assert_eq!(b.state(), BreakerState::HalfOpen);
        let p2 = b.admit().expect("second probe");
        assert!(b.admit().is_err(), "only two probes at a time");
        p1.record(Some(false));
        assert_eq!(b.state(), BreakerState::HalfOpen);
        p2.record(Some(false));
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(b.admit().is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_probe_reopens_it_and_an_abandoned_probe_frees_its_slot() {
        let b = breaker();
        (0..3).for_each(|_| fail(&b));
        tokio::time::advance(Duration::from_secs(5)).await;

        let abandoned = b.admit().expect("probe");
        let _second = b.admit().expect("probe");
        drop(abandoned);
        let third = b.admit().expect("the abandoned probe's slot is free again");
        third.record(Some(true));
        assert_eq!(b.state(), BreakerState::Open);
        assert!(b.admit().is_err());
    }
}
