//! The one place where a failed call becomes a `tonic::Status`.
//!
//! Every non-OK status carries a `google.rpc.ErrorInfo` (domain [`DOMAIN`], a stable `reason`, and
//! `upstream_status` metadata when KGeN answered), plus `RetryInfo` when KGeN said when to retry and `BadRequest`
//! when the caller's input was at fault. Messages are one line; KGeN's own words are cut to
//! [`MAX_UPSTREAM_MESSAGE_CHARS`] characters with control characters stripped, and the client secret is scrubbed
//! from them (after the stripping, so no character inserted into the secret can hide it) before they get here.

use std::{collections::HashMap, time::Duration};

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// `ErrorInfo.domain` of every error the gateway returns.
pub const DOMAIN: &str = "kgen-gateway";
/// Most characters of KGeN's own error message passed on to the caller.
pub const MAX_UPSTREAM_MESSAGE_CHARS: usize = 256;

/// Why a `CreateSession` call failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The caller's `user_id` cannot be sent upstream.
    #[error("invalid user_id: {0}")]
    InvalidUserId(&'static str),
    /// The caller's own deadline passed (or had already passed on arrival).
    #[error("the caller's deadline was exceeded")]
    DeadlineExceeded,
    /// KGeN did not answer within `--upstream-timeout`.
    #[error("KGeN did not answer within the upstream timeout of {0:?}")]
    UpstreamTimeout(Duration),
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
    /// KGeN answered with a non-2xx HTTP status.
    #[error("KGeN answered HTTP {}", .0.code)]
    Status(UpstreamStatus),
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
    /// KGeN's own error message, already sanitized with [`sanitize_upstream_message`] (may be empty).
    pub message: String,
    /// From `Retry-After`, when KGeN sent a valid one.
    pub retry_after: Option<Duration>,
}

/// How bad a failure is for the operator: callers' mistakes are not the operator's problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Severity {
    Caller,
    Upstream,
    Operator,
}

impl Error {
    /// The gRPC code, the `ErrorInfo.reason`, and how the failure is logged.
    fn classify(&self) -> (Code, &'static str, Severity) {
        use Severity::*;
        match self {
            Error::InvalidUserId(_) => (Code::InvalidArgument, "INVALID_USER_ID", Caller),
            Error::DeadlineExceeded => (Code::DeadlineExceeded, "DEADLINE_EXCEEDED", Caller),
            Error::UpstreamTimeout(_) => (Code::DeadlineExceeded, "UPSTREAM_TIMEOUT", Upstream),
            Error::Unreachable { .. } => (Code::Unavailable, "UPSTREAM_UNREACHABLE", Upstream),
            Error::Tls(_) => (Code::Unavailable, "UPSTREAM_TLS_ERROR", Operator),
            Error::ShuttingDown => (Code::Unavailable, "GATEWAY_SHUTTING_DOWN", Upstream),
            Error::CallerUnauthenticated(_) => {
                (Code::Unauthenticated, "CALLER_UNAUTHENTICATED", Caller)
            }
            Error::TenantNotAllowed { .. } => {
                (Code::PermissionDenied, "TENANT_NOT_ALLOWED", Caller)
            }
            Error::TenantRequired => (Code::InvalidArgument, "TENANT_REQUIRED", Caller),
            Error::Overloaded { .. } => (Code::Unavailable, "OVERLOADED", Upstream),
            Error::CircuitOpen { .. } => (Code::Unavailable, "UPSTREAM_CIRCUIT_OPEN", Upstream),
            Error::BadResponse(_) => (Code::Internal, "UPSTREAM_BAD_RESPONSE", Upstream),
            Error::TooLarge { .. } => (Code::Internal, "UPSTREAM_RESPONSE_TOO_LARGE", Upstream),
            Error::RequestBodyTimeout(_) => {
                (Code::DeadlineExceeded, "REQUEST_BODY_TIMEOUT", Caller)
            }
            Error::StreamIdle(_) => (Code::DeadlineExceeded, "STREAM_IDLE_TIMEOUT", Caller),
            Error::TooManyRequestMessages => (Code::Internal, "TOO_MANY_REQUEST_MESSAGES", Caller),
            Error::RequestBuffersFull => (Code::ResourceExhausted, "REQUEST_BUFFERS_FULL", Caller),
            Error::TooManyCalls => (Code::ResourceExhausted, "TOO_MANY_CALLS", Caller),
            Error::Status(status) => match status.code {
                400 | 422 => (Code::InvalidArgument, "UPSTREAM_REJECTED_REQUEST", Caller),
                401 | 403 => (Code::Internal, "UPSTREAM_CREDENTIALS_REJECTED", Operator),
                404 => (Code::NotFound, "UPSTREAM_NOT_FOUND", Caller),
                408 => (Code::DeadlineExceeded, "UPSTREAM_TIMEOUT", Upstream),
                409 => (Code::Aborted, "UPSTREAM_CONFLICT", Upstream),
                429 => (Code::ResourceExhausted, "UPSTREAM_RATE_LIMITED", Upstream),
                400..=499 => (
                    Code::FailedPrecondition,
                    "UPSTREAM_REJECTED_REQUEST",
                    Caller,
                ),
                500 => (Code::Internal, "UPSTREAM_INTERNAL_ERROR", Upstream),
                501 => (Code::Unimplemented, "UPSTREAM_UNIMPLEMENTED", Upstream),
                502..=599 => (Code::Unavailable, "UPSTREAM_UNAVAILABLE", Upstream),
                _ => (Code::Unknown, "UPSTREAM_UNEXPECTED_STATUS", Upstream),
            },
        }
    }

    /// When KGeN said to retry (`Retry-After`), if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Status(status) => status.retry_after,
            _ => None,
        }
    }

    /// Whether this outcome says KGeN itself is failing (for the circuit breaker): unreachable, 5xx, timeouts.
    pub fn is_upstream_failure(&self) -> bool {
        match self {
            Error::Unreachable { .. } | Error::UpstreamTimeout(_) => true,
            Error::Status(status) => status.code >= 500,
            _ => false,
        }
    }

    /// The gRPC code the caller receives.
    pub fn code(&self) -> Code {
        self.classify().0
    }

    /// The stable `ErrorInfo.reason` callers switch on.
    pub fn reason(&self) -> &'static str {
        self.classify().1
    }

    /// The one-line message the caller sees.
    fn caller_message(&self) -> String {
        match self {
            Error::Status(UpstreamStatus { code, message, .. }) if !message.is_empty() => {
                format!("KGeN answered HTTP {code}: {message}")
            }
            Error::Status(UpstreamStatus {
                code: 401 | 403, ..
            }) => "KGeN rejected the gateway's configured client credentials".to_owned(),
            other => other.to_string(),
        }
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

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        Status::from(CallError::from(error))
    }
}

impl From<CallError> for Status {
    fn from(CallError { error, attempts }: CallError) -> Self {
        let (code, reason, severity) = error.classify();
        let span = tracing::Span::current();
        span.record("grpc_code", crate::metrics::code_name(code));
        span.record("attempts", attempts);
        span.record("reason", reason);
        match severity {
            Severity::Caller => tracing::debug!(reason, attempts, error = %error, "call failed"),
            Severity::Upstream => tracing::warn!(reason, attempts, error = %error, "call failed"),
            Severity::Operator => {
                tracing::error!(reason, attempts, error = %error, "call failed; check the gateway's configuration")
            }
        }

        let mut metadata = HashMap::new();
        if attempts > 0 {
            metadata.insert("attempts".to_owned(), attempts.to_string());
        }
        let mut details = ErrorDetails::new();
        match &error {
            Error::InvalidUserId(description) => {
                details.add_bad_request_violation("user_id", *description);
            }
            Error::TenantNotAllowed {
                tenant: Some(tenant),
            } => {
                metadata.insert("tenant".to_owned(), tenant.clone());
            }
            Error::TenantRequired => {
                details.add_bad_request_violation(
                    crate::tenants::TENANT_HEADER,
                    "name the tenant to use: there is no default tenant",
                );
            }
            Error::Status(status) => {
                metadata.insert("upstream_status".to_owned(), status.code.to_string());
                if let Some(delay) = status.retry_after {
                    details.set_retry_info(Some(delay));
                }
            }
            Error::Overloaded { retry_in } | Error::CircuitOpen { retry_in } => {
                details.set_retry_info(Some(*retry_in));
            }
            Error::RequestBuffersFull | Error::TooManyCalls => {
                details.set_retry_info(Some(Duration::from_secs(1)));
            }
            _ => {}
        }
        details.set_error_info(reason, DOMAIN, metadata);
        Status::with_error_details(code, error.caller_message(), details)
    }
}

/// What the caller sees instead of KGeN's message when the client secret could not be scrubbed from it.
pub const WITHHELD_UPSTREAM_MESSAGE: &str =
    "[upstream message withheld: it contained the client secret]";
/// What replaces the client secret in KGeN's message.
const REDACTED: &str = "[redacted]";

/// Makes KGeN's own error text safe to hand to a caller, in this order: control characters and invisible
/// formatting characters removed (line breaks become spaces), white space collapsed to single spaces, then every
/// occurrence of the client secret replaced by `[redacted]`, then at most [`MAX_UPSTREAM_MESSAGE_CHARS`]
/// characters kept.
///
/// The secret is looked for in the text as the caller would read it: after the characters that could split it
/// are gone, ASCII case ignored (secrets are ASCII) and white space ignored (a line break inside the secret
/// becomes a space). If the result still contains the secret (the marker can combine with the text next to
/// it), the whole message is withheld ([`WITHHELD_UPSTREAM_MESSAGE`]).
pub fn sanitize_upstream_message(raw: &str, secret: &str) -> String {
    let text = collapse(raw);
    // The secret as it is matched: what survives the same cleaning, white space ignored.
    let key: Vec<char> = collapse(secret).chars().filter(|c| *c != ' ').collect();
    let scrubbed = if key.is_empty() {
        text
    } else {
        redact(&text, &key)
    };
    let mut out: String = scrubbed.chars().take(MAX_UPSTREAM_MESSAGE_CHARS).collect();
    out.truncate(out.trim_end().len());
    if key.is_empty() || find_secret(&out.chars().collect::<Vec<_>>(), &key, 0).is_none() {
        return out;
    }
    let withheld: Vec<char> = WITHHELD_UPSTREAM_MESSAGE.chars().collect();
    if find_secret(&withheld, &key, 0).is_none() {
        WITHHELD_UPSTREAM_MESSAGE.to_owned()
    } else {
        // A secret so short that even the notice contains it.
        String::new()
    }
}

/// Drops control and invisible formatting characters; runs of white space become one space, none at either end.
fn collapse(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut pending_space = false;
    for c in raw.chars() {
        if c.is_whitespace() {
            pending_space = !out.is_empty();
            continue;
        }
        if c.is_control() || is_invisible_format(c) {
            continue;
        }
        if pending_space {
            out.push(' ');
            pending_space = false;
        }
        out.push(c);
    }
    out
}

/// Unicode formatting characters that render as nothing (zero-width spaces and joiners, bidirectional controls,
/// the byte order mark, soft hyphens): inside a secret they would hide it from a plain search.
fn is_invisible_format(c: char) -> bool {
    matches!(
        c,
        '\u{ad}'
            | '\u{34f}'
            | '\u{61c}'
            | '\u{180b}'..='\u{180f}'
            | '\u{200b}'..='\u{200f}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2060}'..='\u{206f}'
            | '\u{feff}'
            | '\u{fff9}'..='\u{fffb}'
    )
}

/// `text` with every occurrence of `key` (see [`find_secret`]) replaced by [`REDACTED`].
fn redact(text: &str, key: &[char]) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    while let Some((start, end)) = find_secret(&chars, key, copied) {
        out.extend(&chars[copied..start]);
        out.push_str(REDACTED);
        copied = end;
    }
    out.extend(&chars[copied..]);
    out
}

/// The first occurrence of `key` in `text` at or after `from`, ASCII case ignored and spaces in `text` skipped
/// (`key` has none): the range of `text` it covers.
fn find_secret(text: &[char], key: &[char], from: usize) -> Option<(usize, usize)> {
    let (first, rest) = key.split_first()?;
    (from..text.len()).find_map(|start| {
        if !text[start].eq_ignore_ascii_case(first) {
            return None;
        }
        let mut at = start + 1;
        for wanted in rest {
            while text.get(at) == Some(&' ') {
                at += 1;
            }
            if !text.get(at)?.eq_ignore_ascii_case(wanted) {
                return None;
            }
            at += 1;
        }
        Some((start, at))
    })
}

/// A bare upstream status, for tests across the crate.
#[cfg(test)]
pub(crate) fn status(code: u16) -> Error {
    Error::Status(UpstreamStatus {
        code,
        message: String::new(),
        retry_after: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_upstream_status_maps_to_its_row() {
        let rows = [
            (400, Code::InvalidArgument, "UPSTREAM_REJECTED_REQUEST"),
            (422, Code::InvalidArgument, "UPSTREAM_REJECTED_REQUEST"),
            (401, Code::Internal, "UPSTREAM_CREDENTIALS_REJECTED"),
            (403, Code::Internal, "UPSTREAM_CREDENTIALS_REJECTED"),
            (404, Code::NotFound, "UPSTREAM_NOT_FOUND"),
            (408, Code::DeadlineExceeded, "UPSTREAM_TIMEOUT"),
            (409, Code::Aborted, "UPSTREAM_CONFLICT"),
            (429, Code::ResourceExhausted, "UPSTREAM_RATE_LIMITED"),
            (418, Code::FailedPrecondition, "UPSTREAM_REJECTED_REQUEST"),
            (451, Code::FailedPrecondition, "UPSTREAM_REJECTED_REQUEST"),
            (500, Code::Internal, "UPSTREAM_INTERNAL_ERROR"),
            (501, Code::Unimplemented, "UPSTREAM_UNIMPLEMENTED"),
            (502, Code::Unavailable, "UPSTREAM_UNAVAILABLE"),
            (503, Code::Unavailable, "UPSTREAM_UNAVAILABLE"),
            (504, Code::Unavailable, "UPSTREAM_UNAVAILABLE"),
            (599, Code::Unavailable, "UPSTREAM_UNAVAILABLE"),
            (101, Code::Unknown, "UPSTREAM_UNEXPECTED_STATUS"),
            (302, Code::Unknown, "UPSTREAM_UNEXPECTED_STATUS"),
        ];
        for (http, code, reason) in rows {
            let status = Status::from(status(http));
            assert_eq!(status.code(), code, "HTTP {http}");
            let info = status
                .get_error_details()
                .error_info()
                .cloned()
                .expect("ErrorInfo");
            assert_eq!(info.reason, reason, "HTTP {http}");
            assert_eq!(info.domain, DOMAIN);
            assert_eq!(
                info.metadata.get("upstream_status"),
                Some(&http.to_string())
            );
        }
    }

    #[test]
    fn transport_failures_map_to_their_rows_without_upstream_status() {
        let rows = [
            (
                Error::DeadlineExceeded,
                Code::DeadlineExceeded,
                "DEADLINE_EXCEEDED",
            ),
            (
                Error::UpstreamTimeout(Duration::from_secs(5)),
                Code::DeadlineExceeded,
                "UPSTREAM_TIMEOUT",
            ),
            (
                Error::Unreachable {
                    cause: "refused".into(),
                    delivery: Delivery::NotSent,
                },
                Code::Unavailable,
                "UPSTREAM_UNREACHABLE",
            ),
            (
                Error::Tls("bad cert".into()),
                Code::Unavailable,
                "UPSTREAM_TLS_ERROR",
            ),
            (
                Error::BadResponse("not JSON".into()),
                Code::Internal,
                "UPSTREAM_BAD_RESPONSE",
            ),
            (
                Error::TooLarge { limit: 1024 },
                Code::Internal,
                "UPSTREAM_RESPONSE_TOO_LARGE",
            ),
            (
                Error::InvalidUserId("empty"),
                Code::InvalidArgument,
                "INVALID_USER_ID",
            ),
        ];
        for (error, code, reason) in rows {
            let status = Status::from(error);
            assert_eq!(status.code(), code);
            let info = status
                .get_error_details()
                .error_info()
                .cloned()
                .expect("ErrorInfo");
            assert_eq!(info.reason, reason);
            assert!(!info.metadata.contains_key("upstream_status"));
        }
    }

    #[test]
    fn retry_info_is_sent_exactly_when_kgen_said_when_to_retry() {
        let with = Status::from(Error::Status(UpstreamStatus {
            code: 429,
            message: "slow down".into(),
            retry_after: Some(Duration::from_secs(7)),
        }));
        let retry = with
            .get_error_details()
            .retry_info()
            .cloned()
            .expect("RetryInfo");
        assert_eq!(retry.retry_delay, Some(Duration::from_secs(7)));
        assert_eq!(with.message(), "KGeN answered HTTP 429: slow down");

        assert!(Status::from(status(429))
            .get_error_details()
            .retry_info()
            .is_none());
        let unavailable = Status::from(Error::Status(UpstreamStatus {
            code: 503,
            message: String::new(),
            retry_after: Some(Duration::from_secs(2)),
        }));
        assert_eq!(unavailable.code(), Code::Unavailable);
        let retry = unavailable
            .get_error_details()
            .retry_info()
            .cloned()
            .expect("RetryInfo");
        assert_eq!(retry.retry_delay, Some(Duration::from_secs(2)));
    }

    #[test]
    fn attempts_and_fail_fast_retry_hints_reach_the_details() {
        let status = Status::from(CallError {
            error: status(503),
            attempts: 3,
        });
        let info = status
            .get_error_details()
            .error_info()
            .cloned()
            .expect("ErrorInfo");
        assert_eq!(info.metadata.get("attempts").map(String::as_str), Some("3"));
        let open = Status::from(Error::CircuitOpen {
            retry_in: Duration::from_secs(4),
        });
        let retry = open
            .get_error_details()
            .retry_info()
            .cloned()
            .expect("RetryInfo");
        assert_eq!(retry.retry_delay, Some(Duration::from_secs(4)));
        let info = open
            .get_error_details()
            .error_info()
            .cloned()
            .expect("ErrorInfo");
        assert!(
            !info.metadata.contains_key("attempts"),
            "no attempt was made"
        );
    }

    #[test]
    fn tenant_errors_map_to_permission_denied_and_invalid_argument() {
        let denied = Status::from(Error::TenantNotAllowed {
            tenant: Some("ludo".into()),
        });
        assert_eq!(denied.code(), Code::PermissionDenied);
        let info = denied
            .get_error_details()
            .error_info()
            .cloned()
            .expect("ErrorInfo");
        assert_eq!(info.reason, "TENANT_NOT_ALLOWED");
        assert_eq!(
            info.metadata.get("tenant").map(String::as_str),
            Some("ludo")
        );
        let required = Status::from(Error::TenantRequired);
        assert_eq!(required.code(), Code::InvalidArgument);
        let bad = required
            .get_error_details()
            .bad_request()
            .cloned()
            .expect("BadRequest");
        assert_eq!(bad.field_violations[0].field, "x-kgen-tenant");
    }

    #[test]
    fn invalid_user_id_names_the_field_in_bad_request() {
        let status = Status::from(Error::InvalidUserId("must not be empty"));
        let bad = status
            .get_error_details()
            .bad_request()
            .cloned()
            .expect("BadRequest");
        assert_eq!(bad.field_violations.len(), 1);
        assert_eq!(bad.field_violations[0].field, "user_id");
        assert_eq!(bad.field_violations[0].description, "must not be empty");
    }

    #[test]
    fn upstream_messages_are_one_short_line_without_the_secret() {
        let raw = format!(
            "bad\r\n  secret s3cr3t\u{0}\u{1b}[31m! {}",
            "x".repeat(1000)
        );
        let clean = sanitize_upstream_message(&raw, "s3cr3t");
        assert!(clean.starts_with("bad secret [redacted]"), "{clean}");
        assert!(!clean.contains("s3cr3t"));
        assert!(!clean.chars().any(char::is_control));
        assert_eq!(clean.chars().count(), MAX_UPSTREAM_MESSAGE_CHARS);
        assert_eq!(sanitize_upstream_message("  fine  ", ""), "fine");
    }

    const SECRET: &str = "s3cr3t-Value";

    /// Asserts `clean` is fit for a caller: the secret nowhere in it (ASCII case and spaces ignored), no control
    /// characters, not longer than the limit.
    #[track_caller]
    fn assert_fit_for_a_caller(clean: &str, secret: &str) {
        let squeezed = |s: &str| s.replace(' ', "").to_ascii_lowercase();
        assert!(
            !squeezed(clean).contains(&squeezed(secret)),
            "secret {secret:?} in {clean:?}"
        );
        assert!(!clean.chars().any(char::is_control), "{clean:?}");
        assert!(clean.chars().count() <= MAX_UPSTREAM_MESSAGE_CHARS);
    }

    #[test]
    fn a_secret_split_by_a_nul_is_scrubbed_instead_of_reaching_the_caller_whole() {
        let clean = sanitize_upstream_message("bad secret s3cr3t\u{0}-Value given", SECRET);
        assert_eq!(clean, "bad secret [redacted] given");
        let clean = sanitize_upstream_message("s\u{0}3\u{0}c\u{0}r3t-Valu\u{0}e", SECRET);
        assert_eq!(clean, "[redacted]");
    }

    #[test]
    fn a_secret_split_by_an_escape_sequence_or_a_del_is_scrubbed() {
        for raw in [
            "x s3cr\u{1b}3t-Value y",
            "x s3cr3t\u{7f}-Value y",
            "x s3\u{9b}cr3t-Value y",
        ] {
            let clean = sanitize_upstream_message(raw, SECRET);
            assert_fit_for_a_caller(&clean, SECRET);
            assert!(clean.starts_with("x ") && clean.ends_with(" y"), "{clean}");
        }
    }

    #[test]
    fn a_secret_split_by_a_line_break_is_scrubbed_not_passed_on_with_a_space_inside() {
        for raw in [
            "x s3cr3t\r\n-Value y",
            "x s3cr3t\n-Value y",
            "x s3cr3t\r-Value y",
            "x s3\tcr3t  -Va\u{2028}lue y",
        ] {
            let clean = sanitize_upstream_message(raw, SECRET);
            assert_eq!(clean, "x [redacted] y", "{raw:?}");
        }
    }

    #[test]
    fn a_secret_in_another_case_is_scrubbed() {
        for raw in [
            "x S3CR3T-VALUE y",
            "x s3cr3t-value y",
            "x S3Cr3T\u{0}-vAlUe y",
        ] {
            let clean = sanitize_upstream_message(raw, SECRET);
            assert_eq!(clean, "x [redacted] y", "{raw:?}");
        }
    }

    #[test]
    fn a_secret_split_by_an_invisible_formatting_character_is_scrubbed() {
        for raw in [
            "x s3cr3t\u{200b}-Value y",
            "x s3cr3t\u{feff}-Value y",
            "x s3cr3t\u{202e}-Value y",
            "x s3cr3t\u{ad}-Value y",
        ] {
            let clean = sanitize_upstream_message(raw, SECRET);
            assert_eq!(clean, "x [redacted] y", "{raw:?}");
        }
    }

    #[test]
    fn a_secret_with_spaces_inside_is_scrubbed_in_its_collapsed_form_too() {
        let secret = "pass  word with\tspaces";
        for raw in [
            "x pass  word with\tspaces y",
            "x pass word with spaces y",
            "x PASS\u{0} WORD with\r\nspaces y",
        ] {
            let clean = sanitize_upstream_message(raw, secret);
            assert_eq!(clean, "x [redacted] y", "{raw:?}");
        }
    }

    #[test]
    fn a_secret_that_the_marker_completes_withholds_the_whole_message() {
        // "d]x" right after a scrubbed "d]x": "[redacted]" + "x" reads "…d]x" again.
        let clean = sanitize_upstream_message("key d]xx was wrong", "d]x");
        assert_eq!(clean, WITHHELD_UPSTREAM_MESSAGE);
        assert_fit_for_a_caller(&clean, "d]x");
        // The marker next to the secret's own text, split by a control character.
        let clean = sanitize_upstream_message("[redacte\u{0}d]xx", "d]x");
        assert_fit_for_a_caller(&clean, "d]x");
    }

    #[test]
    fn a_secret_so_short_that_the_notice_contains_it_leaves_an_empty_message() {
        let clean = sanitize_upstream_message("key e", "e");
        assert_eq!(clean, "");
    }

    #[test]
    fn the_secret_scrub_runs_before_the_message_is_cut_to_its_limit() {
        let raw = format!(
            "{} s3cr\u{0}3t-Value",
            "a".repeat(MAX_UPSTREAM_MESSAGE_CHARS - 8)
        );
        let clean = sanitize_upstream_message(&raw, SECRET);
        assert_fit_for_a_caller(&clean, SECRET);
        assert!(clean.ends_with(" [redact"), "{clean}");
        assert!(!clean.contains("s3cr"), "no prefix of the secret: {clean}");
    }

    #[test]
    fn a_message_without_the_secret_is_only_cleaned() {
        assert_eq!(
            sanitize_upstream_message("\u{0} user\n\n  not found \u{1b}", SECRET),
            "user not found"
        );
        assert_eq!(
            sanitize_upstream_message("s3cr3t is not the whole secret", SECRET),
            "s3cr3t is not the whole secret"
        );
    }
}
