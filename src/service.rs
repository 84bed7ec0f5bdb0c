//! `kgen.session.v1.SessionService`: validate the request, give the upstream call the caller's remaining time,
//! and map the session. Failures are [`Error`]s; `?` turns them into statuses in [`crate::error`].

use std::{sync::Arc, time::Duration};

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument;

use crate::{
    batch,
    correlation::Correlation,
    deadline,
    error::{CallError, Error},
    metrics::Metrics,
    proto::{
        session_service_server::SessionService, CreateSessionBatchRequest,
        CreateSessionBatchResponse, CreateSessionRequest, CreateSessionResponse,
    },
    resilience::Next,
    retry_policy::Ambiguous,
    tenants::{Tenant, TenantGrant, Tenants, TENANT_HEADER},
};

/// Response metadata on a session created after a retry of an outcome KGeN may have acted on (a 502, a reset…,
/// only when `--retry-on` includes one): its value is that outcome, and `is_new_user` may be false for a new player.
pub const RETRIED_AFTER_AMBIGUOUS: &str = "kgen-retried-after-ambiguous";

/// A session created, and the first outcome retried on the way although KGeN may have acted on it.
#[derive(Debug)]
pub struct Created {
    /// The session.
    pub session: CreateSessionResponse,
    /// Set when the session came after retrying an ambiguous outcome (see [`RETRIED_AFTER_AMBIGUOUS`]).
    pub retried_after_ambiguous: Option<Ambiguous>,
}

/// Longest accepted `user_id`, in bytes of UTF-8.
pub const MAX_USER_ID_BYTES: usize = 256;

/// The session service: the tenants (each with its upstream client and its own limit, retry budget and breaker),
/// the per-call timeout, the token that cuts off calls still running when the shutdown grace period ends, and how
/// many upstream calls one batch RPC may have in flight.
#[derive(Debug, Clone)]
pub struct SessionGateway {
    tenants: Arc<Tenants>,
    upstream_timeout: Duration,
    metrics: Arc<Metrics>,
    cut_off: CancellationToken,
    batch_concurrency: usize,
}

impl SessionGateway {
    /// A gateway calling the upstreams of `tenants`, waiting at most `upstream_timeout` for any one answer;
    /// cancelling `cut_off` ends every call in flight with `UNAVAILABLE`.
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
            batch_concurrency: batch::DEFAULT_BATCH_CONCURRENCY,
        }
    }

    /// Lets each `CreateSessions` stream or `CreateSessionBatch` call have at most `concurrency` (at least 1)
    /// upstream calls in flight.
    pub fn with_batch_concurrency(mut self, concurrency: usize) -> Self {
        self.batch_concurrency = concurrency.max(1);
        self
    }

    /// Upstream calls one batch RPC may have in flight.
    pub fn batch_concurrency(&self) -> usize {
        self.batch_concurrency
    }

    /// Cancelled when the shutdown grace period is over.
    pub(crate) fn cut_off(&self) -> &CancellationToken {
        &self.cut_off
    }

    /// The tenant a call is for: its `x-kgen-tenant` metadata, the caller's grant, or the default.
    pub fn select_tenant(
        &self,
        metadata: &tonic::metadata::MetadataMap,
        caller: Option<&Caller>,
    ) -> Result<Arc<Tenant>, Error> {
        // A value that is not ASCII is no tenant name: refused like an unknown one.
        let requested = metadata
            .get(TENANT_HEADER)
            .map(|value| value.to_str().unwrap_or(""));
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
        let result = self
            .create_inner(tenant, user_id, deadline, correlation)
            .await;
        let code = result
            .as_ref()
            .map_or_else(|e| e.error.code(), |_| tonic::Code::Ok);
        self.metrics.tenant_call(tenant.name(), code);
        if let Ok(Created {
            retried_after_ambiguous: Some(outcome),
            ..
        }) = &result
        {
            tracing::warn!(
                after = %outcome,
                "session created after retrying an outcome KGeN may have acted on: is_new_user may be false for a \
                 new player"
            );
            self.metrics.created_after_ambiguous_retry(tenant.name());
        }
        result
    }

    async fn create_inner(
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
        // Cut-off (end of the shutdown grace) or the caller going away (tonic drops this future) drops the
        // HTTP request in flight too.
        tokio::select! {
            biased;
            () = self.cut_off.cancelled() => Err(Error::ShuttingDown.into()),
            result = self.call_upstream(tenant, user_id, deadline, correlation) => result,
        }
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
                        session: session.into(),
                        retried_after_ambiguous,
                    })
                }
                Err(error) => error,
            };
            match resilience.after_failure(attempt, &error, deadline) {
                Next::RetryAfter { delay, ambiguous } => {
                    tracing::debug!(attempt, ?delay, reason = error.reason(), "retrying");
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
    ) -> Result<crate::upstream::Session, Error> {
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
            Ok(outcome) => outcome,
            Err(_elapsed) if caller_bound => Err(Error::DeadlineExceeded),
            Err(_elapsed) => Err(Error::UpstreamTimeout(self.upstream_timeout)),
        };
        self.metrics
            .upstream_attempt(tenant.name(), attempt_outcome(&outcome), started.elapsed());
        outcome
    }
}

/// The `status` label of `kgen_upstream_responses_total` for one attempt.
fn attempt_outcome(outcome: &Result<crate::upstream::Session, Error>) -> &'static str {
    match outcome {
        Ok(_) | Err(Error::BadResponse(_) | Error::TooLarge { .. }) => "2xx",
        Err(Error::Status(status)) => {
            const NAMED: [(u16, &str); 13] = [
                (400, "400"),
                (401, "401"),
                (403, "403"),
                (404, "404"),
                (408, "408"),
                (409, "409"),
                (422, "422"),
                (429, "429"),
                (500, "500"),
                (501, "501"),
                (502, "502"),
                (503, "503"),
                (504, "504"),
            ];
            match NAMED.iter().find(|(code, _)| *code == status.code) {
                Some((_, name)) => name,
                None if status.code < 400 => "3xx",
                None if status.code < 500 => "4xx",
                None => "5xx",
            }
        }
        Err(Error::Unreachable { .. }) => "unreachable",
        Err(Error::Tls(_)) => "tls_error",
        Err(_) => "timeout",
    }
}

#[tonic::async_trait]
impl SessionService for SessionGateway {
    async fn create_session(
        &self,
        request: Request<CreateSessionRequest>,
    ) -> Result<Response<CreateSessionResponse>, Status> {
        let started = Instant::now();
        let deadline = deadline::from_metadata(request.metadata(), started);
        let correlation = Correlation::from_headers(request.metadata().as_ref());
        let caller = request.extensions().get::<Caller>().cloned();
        let tenant = self.select_tenant(request.metadata(), caller.as_ref());
        let user_id = request.into_inner().user_id;
        // Only a valid `user_id` goes into the span: an invalid one may be huge or hold control characters. The
        // outcome fields stay empty on success (nothing is logged then at `info`, and each record re-serialises
        // the span's JSON); a failure records them for its `call failed` line.
        let span = tracing::info_span!(
            "call",
            method = "CreateSession",
            request_id = correlation.request_id(),
            caller = caller.as_ref().map_or("", |c| c.name.as_str()),
            tenant = tenant.as_ref().map_or("", |t| t.name()),
            user_id = validate_user_id(&user_id)
                .is_ok()
                .then_some(user_id.as_str()),
            upstream_status = tracing::field::Empty,
            attempts = tracing::field::Empty,
            grpc_code = tracing::field::Empty,
            reason = tracing::field::Empty,
            latency_ms = tracing::field::Empty,
        );
        let result = match tenant {
            Ok(tenant) => {
                self.create(&tenant, &user_id, deadline, &correlation)
                    .instrument(span.clone())
                    .await
            }
            // Unknown tenants are not counted per tenant (only configured names become label values).
            Err(error) => Err(CallError::from(error)),
        };
        // The outcome is logged (by the status mapping) inside the span, so its line carries the call's fields.
        let _entered = span.enter();
        let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
        if result.is_err() {
            span.record("latency_ms", latency_ms);
        }
        let result = result.map_err(Status::from);
        if let Some(caller) = &caller {
            let code = result
                .as_ref()
                .map_or_else(Status::code, |_| tonic::Code::Ok);
            self.metrics.caller_call(&caller.name, code);
        }
        let created = result?;
        tracing::debug!(grpc_code = "OK", latency_ms, "session created");
        let mut response = Response::new(created.session);
        if let Some(outcome) = created.retried_after_ambiguous {
            // Always a status code or "reset": valid metadata.
            if let Ok(value) = outcome.to_string().parse() {
                response
                    .metadata_mut()
                    .insert(RETRIED_AFTER_AMBIGUOUS, value);
            }
        }
        Ok(response)
    }

    async fn create_sessions(
        &self,
        request: Request<Streaming<CreateSessionRequest>>,
    ) -> Result<Response<batch::CreateSessionsStream>, Status> {
        batch::create_sessions(self.clone(), request).map(Response::new)
    }

    async fn create_session_batch(
        &self,
        request: Request<CreateSessionBatchRequest>,
    ) -> Result<Response<CreateSessionBatchResponse>, Status> {
        batch::create_session_batch(self.clone(), request)
            .await
            .map(Response::new)
    }
}

/// The authenticated calling service, put in the request extensions by caller authentication.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The caller's name in the tokens file.
    pub name: String,
    /// The tenants it may use.
    pub tenants: TenantGrant,
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
