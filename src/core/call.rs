//! One session creation, whatever RPC asked for it: validate the `user_id`, give each upstream attempt the
//! caller's remaining time, and attempt under the tenant's concurrency limit, circuit breaker and retry policy.

use std::{sync::Arc, time::Duration};

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{
    caller::Caller,
    error::{CallError, Error},
    resilience::{Ambiguous, Next},
    tenants::{Tenant, Tenants},
};
use crate::{
    observability::Metrics,
    proto::CreateSessionResponse,
    upstream::{Correlation, Session},
};

/// Longest accepted `user_id`, in bytes of UTF-8.
pub const MAX_USER_ID_BYTES: usize = 256;
/// Most `user_ids` one `CreateSessionBatch` call may hold (`CreateSessions` streams have no such cap).
pub const MAX_BATCH_SIZE: usize = 100;

/// A session created, and the first outcome retried on the way although KGeN may have acted on it.
#[derive(Debug)]
pub struct Created {
    /// The session.
    pub session: CreateSessionResponse,
    /// Set when the session came after retrying an outcome KGeN may have acted on.
    pub retried_after_ambiguous: Option<Ambiguous>,
    /// Upstream attempts made, the successful one included.
    pub attempts: u32,
    /// KGeN's HTTP status on the successful attempt (a 2xx).
    pub upstream_status: u16,
}

/// Creates sessions: the tenants (each with its upstream client and its own limit, retry budget and breaker), the
/// per-attempt timeout, and the token that cuts off calls still running when the shutdown grace period ends.
#[derive(Debug, Clone)]
pub struct Sessions {
    tenants: Arc<Tenants>,
    upstream_timeout: Duration,
    metrics: Arc<Metrics>,
    cut_off: CancellationToken,
}

impl Sessions {
    /// Sessions from the upstreams of `tenants`, waiting at most `upstream_timeout` for any one answer;
    /// cancelling `cut_off` ends every call in flight with [`Error::ShuttingDown`].
    pub fn new(
        tenants: Arc<Tenants>,
        upstream_timeout: Duration,
        metrics: Arc<Metrics>,
        cut_off: CancellationToken,
    ) -> Self {
        Self {
            tenants,
            upstream_timeout,
            metrics,
            cut_off,
        }
    }

    /// Cancelled when the shutdown grace period is over.
    pub fn cut_off(&self) -> &CancellationToken {
        &self.cut_off
    }

    /// The tenant a call is for: the one it names (`requested`), else its caller's grant, else the default.
    pub fn select_tenant(
        &self,
        requested: Option<&str>,
        caller: Option<&Caller>,
    ) -> Result<Arc<Tenant>, Error> {
        self.tenants.select(requested, caller.map(|c| &c.tenants))
    }

    /// Creates the session of `user_id` for `tenant`, for a caller that stops waiting at `deadline`.
    pub async fn create(
        &self,
        tenant: &Tenant,
        user_id: &str,
        deadline: Option<Instant>,
        correlation: &Correlation,
    ) -> Result<Created, CallError> {
        validate_user_id(user_id)?;
        if deadline.is_some_and(|d| d <= Instant::now()) {
            return Err(Error::DeadlineExceeded.into());
        }
        // Cut-off (end of the shutdown grace) or the caller going away (the RPC drops this future) drops the
        // HTTP request in flight too.
        let created = tokio::select! {
            biased;
            () = self.cut_off.cancelled() => Err(Error::ShuttingDown.into()),
            result = self.call_upstream(tenant, user_id, deadline, correlation) => result,
        }?;
        if let Some(outcome) = &created.retried_after_ambiguous {
            tracing::warn!(
                after = %outcome,
                "session created after retrying an outcome KGeN may have acted on: is_new_user may be false for a \
                 new player"
            );
            self.metrics.created_after_ambiguous_retry(tenant.name());
        }
        Ok(created)
    }

    /// Attempts the upstream call under the tenant's concurrency limit, breaker and retry policy.
    async fn call_upstream(
        &self,
        tenant: &Tenant,
        user_id: &str,
        deadline: Option<Instant>,
        correlation: &Correlation,
    ) -> Result<Created, CallError> {
        let resilience = tenant.resilience();
        let _slot = resilience.admit(deadline).await?;
        resilience.first_attempt();
        let mut attempt = 1;
        let mut retried_after_ambiguous = None;
        loop {
            let admission = match resilience.breaker.admit() {
                Ok(admission) => admission,
                Err(retry_in) => {
                    return Err(CallError {
                        error: Error::CircuitOpen { retry_in },
                        attempts: attempt - 1,
                    });
                }
            };
            let outcome = self.attempt(tenant, user_id, deadline, correlation).await;
            admission.record(match &outcome {
                Ok(_) => Some(false),
                Err(error) if error.is_upstream_failure() => Some(true),
                Err(_) => None,
            });
            let error = match outcome {
                Ok(session) => {
                    return Ok(Created {
                        upstream_status: session.http_status,
                        session: session.into(),
                        retried_after_ambiguous,
                        attempts: attempt,
                    })
                }
                Err(error) => error,
            };
            match resilience.after_failure(attempt, &error, deadline) {
                Next::RetryAfter { delay, ambiguous } => {
                    tracing::debug!(attempt, ?delay, error = %error, "retrying");
                    retried_after_ambiguous = retried_after_ambiguous.or(ambiguous);
                    self.metrics.upstream_retry();
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                Next::GiveUp(why) => {
                    if attempt > 1 || resilience.retries(&error) {
                        tracing::debug!(attempt, why, "not retrying");
                    }
                    return Err(CallError {
                        error,
                        attempts: attempt,
                    });
                }
            }
        }
    }

    /// One upstream attempt, given `min(caller's remaining time, --upstream-timeout)`.
    async fn attempt(
        &self,
        tenant: &Tenant,
        user_id: &str,
        deadline: Option<Instant>,
        correlation: &Correlation,
    ) -> Result<Session, Error> {
        let (budget, caller_bound) = match deadline {
            Some(deadline) => {
                let remaining = deadline.saturating_duration_since(Instant::now());
                if remaining.is_zero() {
                    return Err(Error::DeadlineExceeded);
                }
                (
                    remaining.min(self.upstream_timeout),
                    remaining <= self.upstream_timeout,
                )
            }
            None => (self.upstream_timeout, false),
        };
        let started = Instant::now();
        let call = tenant.upstream().create_session(user_id, correlation);
        let outcome = match tokio::time::timeout(budget, call).await {
            Ok(outcome) => outcome.map_err(Error::Upstream),
            Err(_elapsed) if caller_bound => Err(Error::DeadlineExceeded),
            Err(_elapsed) => Err(Error::UpstreamTimeout(self.upstream_timeout)),
        };
        self.metrics
            .upstream_attempt(tenant.label(), attempt_outcome(&outcome), started.elapsed());
        outcome
    }
}

/// The `status` label of `kgen_upstream_responses_total` for one attempt.
fn attempt_outcome(outcome: &Result<Session, Error>) -> &'static str {
    match outcome {
        Ok(_) => "2xx",
        Err(Error::Upstream(error)) => error.outcome_label(),
        Err(_) => "timeout",
    }
}

/// Checks `user_id` before anything is sent upstream.
pub fn validate_user_id(user_id: &str) -> Result<(), Error> {
    if user_id.trim().is_empty() {
        return Err(Error::InvalidUserId(
            "must not be empty or only white space",
        ));
    }
    if user_id.len() > MAX_USER_ID_BYTES {
        return Err(Error::InvalidUserId("must be at most 256 bytes of UTF-8"));
    }
    if user_id.chars().any(char::is_control) {
        return Err(Error::InvalidUserId("must not contain control characters"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_ids_are_validated_before_any_upstream_call() {
        for ok in [
            "FTC_User1",
            "ü",
            " padded ",
            "a#b",
            &"x".repeat(256),
            &"é".repeat(128),
        ] {
            assert!(validate_user_id(ok).is_ok(), "{ok:?}");
        }
        for bad in [
            "",
            "   ",
            "\t\n",
            "a\u{0}b",
            "line\nbreak",
            "esc\u{1b}",
            "del\u{7f}",
            "c1\u{85}",
            &"x".repeat(257),
            &"é".repeat(129),
        ] {
            assert!(
                matches!(validate_user_id(bad), Err(Error::InvalidUserId(_))),
                "{bad:?}"
            );
        }
    }
}
