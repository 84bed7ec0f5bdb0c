//! Why a call to KGeN failed, in KGeN's terms: no answer (and how far the request went), a TLS failure, an answer
//! that is not a session, or a non-2xx HTTP status. The gateway's own reasons (deadlines, overload, tenants) are
//! the core's; what a caller is told is the gRPC layer's.

use std::time::Duration;

/// A failed call to KGeN.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// No HTTP response: connection refused, DNS failure, reset before or while the response arrived.
    #[error("KGeN could not be reached: {cause}")]
    Unreachable {
        /// The innermost cause, e.g. "Connection refused (os error 111)".
        cause: String,
        /// Whether KGeN may have received the request.
        delivery: Delivery,
    },
    /// The TLS handshake failed or KGeN's certificate was not trusted.
    #[error("TLS with KGeN failed: {0}")]
    Tls(String),
    /// A 2xx whose body is not a session.
    #[error("KGeN answered with a body that is not a session: {0}")]
    BadResponse(String),
    /// The response body was larger than `--max-upstream-body`.
    #[error("KGeN's response body exceeded the {limit}-byte limit")]
    TooLarge {
        /// The configured cap.
        limit: usize,
    },
    /// KGeN answered with a non-2xx HTTP status.
    #[error("KGeN answered HTTP {}", .0.code)]
    HttpStatus(UpstreamStatus),
}

/// How far a request that got no answer went: what decides whether retrying it may create a second session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// No connection was made (refused, DNS, a connect timeout): the request was never written.
    NotSent,
    /// KGeN refused the HTTP/2 stream (`REFUSED_STREAM`, or a GOAWAY excluding it): it did not process it.
    Refused,
    /// The connection failed after the request may have been written (a reset, an early close), or while the
    /// answer was read: KGeN may have acted on it.
    MaybeSent,
}

/// A non-2xx answer from KGeN, reduced to what the caller may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamStatus {
    /// The HTTP status code.
    pub code: u16,
    /// KGeN's own error message, already sanitized with [`super::sanitize_upstream_message`] (may be empty).
    pub message: String,
    /// From `Retry-After`, when KGeN sent a valid one.
    pub retry_after: Option<Duration>,
}

impl Error {
    /// When KGeN said to retry (`Retry-After`), if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::HttpStatus(status) => status.retry_after,
            _ => None,
        }
    }

    /// Whether this outcome says KGeN itself is failing (for the circuit breaker): unreachable or a 5xx.
    pub fn is_upstream_failure(&self) -> bool {
        match self {
            Error::Unreachable { .. } => true,
            Error::HttpStatus(status) => status.code >= 500,
            _ => false,
        }
    }

    /// The `status` label of `kgen_upstream_responses_total` for an attempt that failed this way.
    pub fn outcome_label(&self) -> &'static str {
        match self {
            Error::BadResponse(_) | Error::TooLarge { .. } => "2xx",
            Error::HttpStatus(status) => status_label(status.code),
            Error::Unreachable { .. } => "unreachable",
            Error::Tls(_) => "tls_error",
        }
    }
}

/// The label of an HTTP status: the codes KGeN documents by number, the rest by class.
fn status_label(code: u16) -> &'static str {
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
    match NAMED.iter().find(|(named, _)| *named == code) {
        Some((_, name)) => name,
        None if code < 400 => "3xx",
        None if code < 500 => "4xx",
        None => "5xx",
    }
}

/// A bare upstream status, for tests across the crate.
#[cfg(test)]
pub(crate) fn status(code: u16) -> Error {
    Error::HttpStatus(UpstreamStatus {
        code,
        message: String::new(),
        retry_after: None,
    })
}
