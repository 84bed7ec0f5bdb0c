//! What keeps a slow or failing KGeN from taking the gateway down, or the gateway from piling onto KGeN:
//! a bound on concurrent upstream calls with a short queue, retries with exponential backoff and full jitter
//! under a retry budget, and a circuit breaker ([`CircuitBreaker`]); [`RetryOn`] says which failed attempts are retried.

use std::{sync::Arc, time::Duration};

use tokio::{
    sync::{OwnedSemaphorePermit, Semaphore},
    time::Instant,
};
use tower::retry::budget::{Budget, TpsBudget};

mod breaker;
mod retry_policy;

pub use breaker::{BreakerSettings, BreakerState, CircuitBreaker};
pub use retry_policy::{Ambiguous, RetryOn, Verdict, DEFAULT_RETRY_ON};

use crate::core::Error;

/// How the gateway protects itself and KGeN when KGeN is slow or failing.
#[derive(Debug, Clone)]
pub struct ResilienceSettings {
    /// Most attempts per call (1 = no retries).
    pub max_attempts: u32,
    /// Retries allowed as a fraction of recent first attempts (0.2 = 20 %).
    pub retry_budget_ratio: f32,
    /// Retries allowed per second whatever the traffic.
    pub retry_budget_min_per_sec: u32,
    /// Most upstream calls in flight.
    pub max_concurrent_upstream: usize,
    /// Longest wait for a free upstream slot.
    pub queue_timeout: Duration,
    /// The circuit breaker.
    pub breaker: BreakerSettings,
    /// Which failed attempts are retried.
    pub retry_on: RetryOn,
}

impl Default for ResilienceSettings {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            retry_budget_ratio: 0.2,
            retry_budget_min_per_sec: 10,
            max_concurrent_upstream: 1024,
            queue_timeout: Duration::from_millis(100),
            breaker: BreakerSettings::default(),
            retry_on: RetryOn::default(),
        }
    }
}

/// First backoff step; step `n` waits a random time in `[0, min(MAX_BACKOFF, BASE_BACKOFF * 2^(n-1))]`.
pub const BASE_BACKOFF: Duration = Duration::from_millis(50);
/// Longest jittered backoff (a `Retry-After` may ask for more, within the caller's deadline).
pub const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// Longest wait before a retry when the caller set no deadline; a longer `Retry-After` goes back to the caller.
pub const MAX_WAIT_WITHOUT_DEADLINE: Duration = Duration::from_secs(2);
/// The retry budget's memory: deposits older than this no longer allow retries.
const BUDGET_TTL: Duration = Duration::from_secs(10);
/// `RetryInfo` hint sent with `OVERLOADED`.
pub const OVERLOADED_RETRY_IN: Duration = Duration::from_millis(500);

/// Shared by every call to one upstream.
pub struct Resilience {
    max_attempts: u32,
    retry_on: RetryOn,
    budget: TpsBudget,
    limiter: Arc<Semaphore>,
    max_concurrent: usize,
    queue_timeout: Duration,
    /// The circuit breaker in front of KGeN.
    pub breaker: CircuitBreaker,
}

impl std::fmt::Debug for Resilience {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resilience")
            .field("max_attempts", &self.max_attempts)
            .field("retry_on", &format_args!("{}", self.retry_on))
            .field("max_concurrent", &self.max_concurrent)
            .field("in_flight", &self.in_flight())
            .field("breaker", &self.breaker.state())
            .finish_non_exhaustive()
    }
}

/// What to do after a failed attempt.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// Wait `delay`, then try again; `ambiguous` when KGeN may have acted on the failed attempt (only when the
    /// retry policy includes such outcomes).
    RetryAfter {
        /// How long to wait.
        delay: Duration,
        /// The outcome retried although KGeN may have acted on it.
        ambiguous: Option<Ambiguous>,
    },
    /// Give up and return the failure.
    GiveUp(&'static str),
}

impl Resilience {
    /// Builds the limiter, budget and breaker from validated settings.
    pub fn new(settings: &ResilienceSettings) -> Self {
        Self {
            max_attempts: settings.max_attempts.max(1),
            retry_on: settings.retry_on.clone(),
            // Validated ranges (cli.rs) keep TpsBudget's assertions satisfied.
            budget: TpsBudget::new(
                BUDGET_TTL,
                settings.retry_budget_min_per_sec,
                settings.retry_budget_ratio,
            ),
            limiter: Arc::new(Semaphore::new(settings.max_concurrent_upstream)),
            max_concurrent: settings.max_concurrent_upstream,
            queue_timeout: settings.queue_timeout,
            breaker: CircuitBreaker::new(settings.breaker),
        }
    }

    /// Upstream calls holding a slot right now.
    pub fn in_flight(&self) -> usize {
        self.max_concurrent - self.limiter.available_permits()
    }

    /// Takes an upstream slot, waiting at most the queue timeout (or until the caller's deadline, if sooner).
    pub async fn admit(&self, deadline: Option<Instant>) -> Result<OwnedSemaphorePermit, Error> {
        if let Ok(permit) = self.limiter.clone().try_acquire_owned() {
            return Ok(permit);
        }
        let now = Instant::now();
        let queue_until = now + self.queue_timeout;
        let (until, caller_bound) = match deadline {
            Some(deadline) if deadline < queue_until => (deadline, true),
            _ => (queue_until, false),
        };
        match tokio::time::timeout_at(until, self.limiter.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            // Closed semaphores do not happen (it is never closed); treat it as overload all the same.
            Ok(Err(_)) => Err(Error::Overloaded {
                retry_in: OVERLOADED_RETRY_IN,
            }),
            Err(_) if caller_bound => Err(Error::DeadlineExceeded),
            Err(_) => Err(Error::Overloaded {
                retry_in: OVERLOADED_RETRY_IN,
            }),
        }
    }

    /// Counts a first attempt: it earns the budget a fraction of a retry.
    pub fn first_attempt(&self) {
        self.budget.deposit();
    }

    /// Decides whether attempt number `attempt` (1-based), which failed with `error`, is followed by another.
    pub fn after_failure(&self, attempt: u32, error: &Error, deadline: Option<Instant>) -> Next {
        if attempt >= self.max_attempts {
            return Next::GiveUp("attempts exhausted");
        }
        let ambiguous = match self.retry_on.verdict(error) {
            Verdict::Final => return Next::GiveUp("not retried (--retry-on)"),
            Verdict::RetrySafe => None,
            Verdict::RetryAmbiguous(outcome) => Some(outcome),
        };
        let jitter = full_jitter(attempt);
        let delay = match error.retry_after() {
            Some(asked) => asked.max(jitter),
            None => jitter,
        };
        // Never retry past the caller's deadline; a caller without one is not kept waiting long either.
        let fits = match deadline {
            Some(deadline) => Instant::now() + delay < deadline,
            None => delay <= MAX_WAIT_WITHOUT_DEADLINE,
        };
        if !fits {
            return Next::GiveUp("retry would not fit in the deadline");
        }
        if !self.budget.withdraw() {
            tracing::debug!("retry budget exhausted: not retrying");
            return Next::GiveUp("retry budget exhausted");
        }
        Next::RetryAfter { delay, ambiguous }
    }

    /// Whether an attempt that failed with `error` would be retried by the policy (attempts, budget and
    /// deadline aside).
    pub fn retries(&self, error: &Error) -> bool {
        self.retry_on.verdict(error) != Verdict::Final
    }
}

/// Exponential backoff with full jitter (AWS architecture blog): uniform in `[0, min(cap, base * 2^(n-1))]`.
pub fn full_jitter(attempt: u32) -> Duration {
    let exponent = attempt.saturating_sub(1).min(16);
    let ceiling = BASE_BACKOFF.saturating_mul(1 << exponent).min(MAX_BACKOFF);
    let millis = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(fastrand::u64(0..=millis))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::{self, UpstreamStatus};

    fn resilience(max_attempts: u32, ratio: f32, floor: u32) -> Resilience {
        Resilience::new(&ResilienceSettings {
            max_attempts,
            retry_budget_ratio: ratio,
            retry_budget_min_per_sec: floor,
            ..ResilienceSettings::default()
        })
    }

    fn http(code: u16, retry_after: Option<Duration>) -> Error {
        Error::Upstream(upstream::Error::HttpStatus(UpstreamStatus {
            code,
            message: String::new(),
            retry_after,
        }))
    }

    #[test]
    fn jitter_grows_exponentially_and_is_capped() {
        for _ in 0..1000 {
            assert!(full_jitter(1) <= Duration::from_millis(50));
            assert!(full_jitter(3) <= Duration::from_millis(200));
            assert!(full_jitter(30) <= MAX_BACKOFF);
        }
        let spread: std::collections::HashSet<_> = (0..100).map(|_| full_jitter(5)).collect();
        assert!(spread.len() > 10, "jittered, not fixed");
    }

    #[tokio::test]
    async fn retryable_failures_are_retried_until_attempts_run_out() {
        let r = resilience(3, 0.2, 10);
        r.first_attempt();
        assert!(matches!(
            r.after_failure(1, &http(503, None), None),
            Next::RetryAfter { .. }
        ));
        assert!(matches!(
            r.after_failure(
                2,
                &Error::Upstream(upstream::Error::Unreachable {
                    cause: "refused".into(),
                    delivery: upstream::Delivery::NotSent,
                }),
                None
            ),
            Next::RetryAfter { .. }
        ));
        assert_eq!(
            r.after_failure(3, &http(503, None), None),
            Next::GiveUp("attempts exhausted")
        );
        assert_eq!(
            r.after_failure(1, &http(400, None), None),
            Next::GiveUp("not retried (--retry-on)")
        );
        assert_eq!(
            r.after_failure(1, &Error::Upstream(upstream::Error::Tls("x".into())), None),
            Next::GiveUp("not retried (--retry-on)")
        );
        assert_eq!(
            r.after_failure(1, &http(502, None), None),
            Next::GiveUp("not retried (--retry-on)"),
            "ambiguous outcomes are not retried by default"
        );
        assert_eq!(
            resilience(1, 0.2, 10).after_failure(1, &http(503, None), None),
            Next::GiveUp("attempts exhausted")
        );
    }

    #[tokio::test]
    async fn an_ambiguous_outcome_the_policy_adds_is_retried_and_marked() {
        let r = Resilience::new(&ResilienceSettings {
            retry_on: RetryOn::parse("5xx").unwrap(),
            ..ResilienceSettings::default()
        });
        r.first_attempt();
        assert!(matches!(
            r.after_failure(1, &http(502, None), None),
            Next::RetryAfter {
                ambiguous: Some(Ambiguous::Status(502)),
                ..
            }
        ));
        assert!(matches!(
            r.after_failure(1, &http(503, None), None),
            Next::RetryAfter {
                ambiguous: None,
                ..
            }
        ));
    }

    #[tokio::test]
    async fn retry_after_is_honoured_but_never_past_the_deadline() {
        let r = resilience(3, 0.2, 10);
        let soon = Some(Instant::now() + Duration::from_secs(2));
        let later = Some(Instant::now() + Duration::from_secs(60));
        assert_eq!(
            r.after_failure(1, &http(429, Some(Duration::from_secs(1))), soon),
            Next::RetryAfter {
                delay: Duration::from_secs(1),
                ambiguous: None
            }
        );
        assert_eq!(
            r.after_failure(1, &http(429, Some(Duration::from_secs(5))), soon),
            Next::GiveUp("retry would not fit in the deadline")
        );
        assert_eq!(
            r.after_failure(1, &http(503, Some(Duration::from_secs(30))), later),
            Next::RetryAfter {
                delay: Duration::from_secs(30),
                ambiguous: None
            }
        );
        assert_eq!(
            r.after_failure(1, &http(503, Some(Duration::from_secs(30))), None),
            Next::GiveUp("retry would not fit in the deadline"),
            "without a deadline, a long Retry-After is handed to the caller"
        );
    }

    #[tokio::test]
    async fn the_budget_caps_retries_at_a_fraction_of_first_attempts() {
        // No floor: only deposits earn retries; 20 % of 100 first attempts = 20 retries.
        let r = resilience(3, 0.2, 0);
        for _ in 0..100 {
            r.first_attempt();
        }
        let allowed = (0..100)
            .filter(|_| {
                matches!(
                    r.after_failure(1, &http(503, None), None),
                    Next::RetryAfter { .. }
                )
            })
            .count();
        assert!((18..=22).contains(&allowed), "{allowed} retries allowed");
    }

    #[tokio::test]
    async fn a_full_limiter_answers_overloaded_after_the_queue_timeout() {
        let r = Resilience::new(&ResilienceSettings {
            max_concurrent_upstream: 1,
            queue_timeout: Duration::from_millis(20),
            ..ResilienceSettings::default()
        });
        let held = r.admit(None).await.expect("free slot");
        assert_eq!(r.in_flight(), 1);
        assert!(matches!(r.admit(None).await, Err(Error::Overloaded { .. })));
        let short = Some(Instant::now() + Duration::from_millis(5));
        assert!(
            matches!(r.admit(short).await, Err(Error::DeadlineExceeded)),
            "a shorter deadline wins"
        );
        drop(held);
        assert!(r.admit(None).await.is_ok());
    }
}
