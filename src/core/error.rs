//! Why a call failed, in the gateway's own terms. No transport type appears here: the gRPC layer's one edge
//! (`grpc::status`) turns an [`Error`] into the status and details a caller receives.

use std::time::Duration;

use crate::upstream;

/// Why a `CreateSession` call (or one item of a batch) failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The caller's `user_id` cannot be sent upstream.
    #[error("invalid user_id: {0}")]
    InvalidUserId(&'static str),
    /// A `CreateSessionBatch` call with no `user_ids`, or more than [`super::MAX_BATCH_SIZE`].
    #[error("invalid user_ids: {}", batch_size_problem(*.0))]
    InvalidBatchSize(usize),
    /// The caller's own deadline passed (or had already passed on arrival).
    #[error("the caller's deadline was exceeded")]
    DeadlineExceeded,
    /// KGeN did not answer within `--upstream-timeout`.
    #[error("KGeN did not answer within the upstream timeout of {0:?}")]
    UpstreamTimeout(Duration),
    /// KGeN failed: no answer, TLS, a body that is not a session, or a non-2xx status.
    #[error(transparent)]
    Upstream(#[from] upstream::Error),
    /// Too many calls are waiting on KGeN: `--max-concurrent-upstream` was full for the whole queue wait.
    #[error("the gateway is overloaded: too many calls to KGeN in flight")]
    Overloaded {
        /// Hint for the caller's `RetryInfo`.
        retry_in: Duration,
    },
    /// The circuit breaker is open after a run of upstream failures: failing fast instead of calling KGeN.
    #[error("KGeN is failing; calls are paused (circuit breaker open)")]
    CircuitOpen {
        /// When the breaker lets probe calls through again.
        retry_in: Duration,
    },
    /// Caller authentication is on and the call had no valid `authorization: Bearer` token.
    #[error("caller not authenticated: {0}")]
    CallerUnauthenticated(String),
    /// The call named a tenant (`x-kgen-tenant`) that is not configured, or that its caller may not use.
    #[error("tenant not allowed: {}", tenant.as_deref().unwrap_or("(not a tenant name)"))]
    TenantNotAllowed {
        /// The tenant named, when it is a well-formed tenant name (anything else is not echoed).
        tenant: Option<String>,
    },
    /// The call named no tenant and there is no default tenant to use.
    #[error("no tenant: set the x-kgen-tenant metadata key (there is no default tenant)")]
    TenantRequired,
    /// The gateway is shutting down and its grace period ended before this call finished.
    #[error("the gateway is shutting down; retry on another instance")]
    ShuttingDown,
    /// The request message of a call that takes one did not arrive (with its end of stream) in time.
    #[error("the request did not arrive within {0:?} (--request-body-timeout)")]
    RequestBodyTimeout(Duration),
    /// A streaming call sent nothing for too long while the gateway waited for its next message.
    #[error("the request stream sent nothing for {0:?} (--stream-idle-timeout)")]
    StreamIdle(Duration),
    /// A call that takes one request message sent a second one.
    #[error("this method takes exactly one request message; a second one was sent")]
    TooManyRequestMessages,
    /// The gateway already has `--max-concurrent-calls` calls in flight.
    #[error("the gateway has too many calls in flight (--max-concurrent-calls); retry shortly")]
    TooManyCalls,
    /// The gateway already holds `--max-buffered-request-bytes` of request messages that have not fully arrived.
    #[error("the gateway holds too many partly received requests; retry shortly")]
    RequestBuffersFull,
}

impl Error {
    /// When KGeN said to retry (`Retry-After`), if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Upstream(error) => error.retry_after(),
            _ => None,
        }
    }

    /// Whether this outcome says KGeN itself is failing (for the circuit breaker): unreachable, 5xx, timeouts.
    pub fn is_upstream_failure(&self) -> bool {
        match self {
            Error::UpstreamTimeout(_) => true,
            Error::Upstream(error) => error.is_upstream_failure(),
            _ => false,
        }
    }

    /// KGeN's answer, when the failure is a non-2xx HTTP status.
    pub fn upstream_status(&self) -> Option<&upstream::UpstreamStatus> {
        match self {
            Error::Upstream(upstream::Error::HttpStatus(status)) => Some(status),
            _ => None,
        }
    }

    /// The description of the `user_ids` problem of [`Error::InvalidBatchSize`].
    pub fn batch_size_problem(&self) -> Option<String> {
        match self {
            Error::InvalidBatchSize(len) => Some(batch_size_problem(*len)),
            _ => None,
        }
    }
}

fn batch_size_problem(len: usize) -> String {
    if len == 0 {
        "must not be empty".to_owned()
    } else {
        format!(
            "must hold at most {} entries, not {len}",
            super::MAX_BATCH_SIZE
        )
    }
}

/// A failed call and how many upstream attempts it made (0 when it failed before calling KGeN).
#[derive(Debug)]
pub struct CallError {
    /// The last failure.
    pub error: Error,
    /// Upstream attempts made, reported as `ErrorInfo.metadata["attempts"]`.
    pub attempts: u32,
}

impl From<Error> for CallError {
    fn from(error: Error) -> Self {
        CallError { error, attempts: 0 }
    }
}

impl From<upstream::Error> for CallError {
    fn from(error: upstream::Error) -> Self {
        CallError::from(Error::Upstream(error))
    }
}

/// A bare upstream status, for tests across the crate.
#[cfg(test)]
pub(crate) fn status(code: u16) -> Error {
    Error::Upstream(upstream::status(code))
}
