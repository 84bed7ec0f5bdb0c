//! The one edge from a failed call to what a gRPC caller receives, and the one place a failed call is logged.
//!
//! Every non-OK status carries a `google.rpc.ErrorInfo` (domain [`DOMAIN`], a stable `reason`, and
//! `upstream_status` metadata when KGeN answered), plus `RetryInfo` when KGeN (or the gateway) said when to retry
//! and `BadRequest` when the caller's input was at fault. [`rpc_status`] builds the `google.rpc.Status`; the unary
//! call sends it as `grpc-status-details-bin` ([`status`]), a batch item carries it as it is. Messages are one
//! line; KGeN's own words were cut and scrubbed of the client secret by the upstream client.

use std::{collections::HashMap, time::Duration};

use bytes::Bytes;
use prost::Message;
use prost_types::Any;
use tonic::{Code, Status};
use tonic_types::{pb, BadRequest, ErrorInfo, RetryInfo};

use crate::{
    core::{CallError, Error},
    observability::code_name,
    support::{headers, throttle::Throttle},
    upstream::{self, UpstreamStatus},
};

/// `ErrorInfo.domain` of every error the gateway returns.
pub const DOMAIN: &str = "kgen-gateway";
/// `ErrorInfo.reason` of a `CreateSessionBatch` call with no `user_ids`, or more than
/// [`crate::core::MAX_BATCH_SIZE`].
pub const INVALID_BATCH_SIZE: &str = "INVALID_BATCH_SIZE";

/// How bad a failure is for the operator: callers' mistakes are not the operator's problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Severity {
    Caller,
    Upstream,
    Operator,
}

/// The gRPC code, the `ErrorInfo.reason`, and how the failure is logged: the table of `docs/errors.md`.
fn classify(error: &Error) -> (Code, &'static str, Severity) {
    use Severity::*;
    match error {
        Error::InvalidUserId(_) => (Code::InvalidArgument, "INVALID_USER_ID", Caller),
        Error::InvalidBatchSize(_) => (Code::InvalidArgument, INVALID_BATCH_SIZE, Caller),
        Error::DeadlineExceeded => (Code::DeadlineExceeded, "DEADLINE_EXCEEDED", Caller),
        Error::UpstreamTimeout(_) => (Code::DeadlineExceeded, "UPSTREAM_TIMEOUT", Upstream),
        Error::ShuttingDown => (Code::Unavailable, "GATEWAY_SHUTTING_DOWN", Upstream),
        Error::CallerUnauthenticated(_) => {
            (Code::Unauthenticated, "CALLER_UNAUTHENTICATED", Caller)
        }
        Error::TenantNotAllowed { .. } => (Code::PermissionDenied, "TENANT_NOT_ALLOWED", Caller),
        Error::TenantRequired => (Code::InvalidArgument, "TENANT_REQUIRED", Caller),
        Error::Overloaded { .. } => (Code::Unavailable, "OVERLOADED", Upstream),
        Error::CircuitOpen { .. } => (Code::Unavailable, "UPSTREAM_CIRCUIT_OPEN", Upstream),
        Error::RequestBodyTimeout(_) => (Code::DeadlineExceeded, "REQUEST_BODY_TIMEOUT", Caller),
        Error::StreamIdle(_) => (Code::DeadlineExceeded, "STREAM_IDLE_TIMEOUT", Caller),
        Error::TooManyRequestMessages => (Code::Internal, "TOO_MANY_REQUEST_MESSAGES", Caller),
        Error::RequestBuffersFull => (Code::ResourceExhausted, "REQUEST_BUFFERS_FULL", Caller),
        Error::TooManyCalls => (Code::ResourceExhausted, "TOO_MANY_CALLS", Caller),
        Error::Upstream(error) => classify_upstream(error),
    }
}

fn classify_upstream(error: &upstream::Error) -> (Code, &'static str, Severity) {
    use Severity::*;
    match error {
        upstream::Error::Unreachable { .. } => {
            (Code::Unavailable, "UPSTREAM_UNREACHABLE", Upstream)
        }
        upstream::Error::Tls(_) => (Code::Unavailable, "UPSTREAM_TLS_ERROR", Operator),
        upstream::Error::BadResponse(_) => (Code::Internal, "UPSTREAM_BAD_RESPONSE", Upstream),
        upstream::Error::TooLarge { .. } => {
            (Code::Internal, "UPSTREAM_RESPONSE_TOO_LARGE", Upstream)
        }
        upstream::Error::HttpStatus(status) => match status.code {
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

/// The gRPC code a caller receives for `error`.
pub fn code(error: &Error) -> Code {
    classify(error).0
}

/// The gRPC code and the `ErrorInfo.reason` a caller receives for `error`.
pub fn code_and_reason(error: &Error) -> (Code, &'static str) {
    let (code, reason, _) = classify(error);
    (code, reason)
}

/// The one-line message the caller sees.
fn caller_message(error: &Error) -> String {
    match error.upstream_status() {
        Some(UpstreamStatus { code, message, .. }) if !message.is_empty() => {
            format!("KGeN answered HTTP {code}: {message}")
        }
        Some(UpstreamStatus {
            code: 401 | 403, ..
        }) => "KGeN rejected the gateway's configured client credentials".to_owned(),
        _ => error.to_string(),
    }
}

/// The `google.rpc.Status` of a failed call: its code, its message and its details (`RetryInfo`, `ErrorInfo`,
/// `BadRequest`, in that order).
pub fn rpc_status(CallError { error, attempts }: &CallError) -> pb::Status {
    let (code, reason, _) = classify(error);
    let mut metadata = HashMap::new();
    if *attempts > 0 {
        metadata.insert("attempts".to_owned(), attempts.to_string());
    }
    let mut retry_in = None;
    let mut violation = None;
    match error {
        Error::InvalidUserId(description) => {
            violation = Some(("user_id", (*description).to_owned()))
        }
        Error::InvalidBatchSize(_) => {
            violation = error
                .batch_size_problem()
                .map(|problem| ("user_ids", problem));
        }
        Error::TenantNotAllowed {
            tenant: Some(tenant),
        } => {
            metadata.insert("tenant".to_owned(), tenant.clone());
        }
        Error::TenantRequired => {
            violation = Some((
                headers::TENANT,
                "name the tenant to use: there is no default tenant".to_owned(),
            ));
        }
        Error::Upstream(upstream::Error::HttpStatus(status)) => {
            metadata.insert("upstream_status".to_owned(), status.code.to_string());
            retry_in = status.retry_after;
        }
        Error::Overloaded { retry_in: hint } | Error::CircuitOpen { retry_in: hint } => {
            retry_in = Some(*hint);
        }
        Error::RequestBuffersFull | Error::TooManyCalls => retry_in = Some(Duration::from_secs(1)),
        _ => {}
    }
    let mut details = Vec::with_capacity(3);
    if let Some(delay) = retry_in {
        details.push(any(
            RetryInfo::TYPE_URL,
            pb::RetryInfo::from(RetryInfo::new(Some(delay))),
        ));
    }
    details.push(any(
        ErrorInfo::TYPE_URL,
        pb::ErrorInfo::from(ErrorInfo::new(reason, DOMAIN, metadata)),
    ));
    if let Some((field, description)) = violation {
        details.push(any(
            BadRequest::TYPE_URL,
            pb::BadRequest::from(BadRequest::with_violation(field, description)),
        ));
    }
    pb::Status {
        code: code.into(),
        message: caller_message(error),
        details,
    }
}

fn any(type_url: &str, message: impl Message) -> Any {
    Any {
        type_url: type_url.to_owned(),
        value: message.encode_to_vec(),
    }
}

/// The `tonic::Status` of a failed call, its details in `grpc-status-details-bin`.
pub fn status(error: &CallError) -> Status {
    let rpc = rpc_status(error);
    let code = Code::from_i32(rpc.code);
    let message = rpc.message.clone();
    Status::with_details(code, message, Bytes::from(rpc.encode_to_vec()))
}

impl From<CallError> for Status {
    fn from(error: CallError) -> Self {
        status(&error)
    }
}

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        status(&CallError::from(error))
    }
}

/// The status refusing a call for a reason of its own (its request, or the gateway's limits), logged as any
/// failed call.
pub fn refusal(error: Error) -> Status {
    let error = CallError::from(error);
    log_failure(&error);
    status(&error)
}

/// Records the outcome of a failed call in the current span (`grpc_code`, `attempts`, `reason`, and KGeN's
/// `upstream_status`) and logs it once, at a level by whose problem it is: debug for the caller's mistakes, warn for
/// KGeN's failures, error for the operator's (rejected credentials, TLS). The one place a failed call is logged.
///
/// Each field appears once on the line: `reason` and `attempts` are event fields only when the current span cannot
/// hold them (a refusal before the call's span opens); text logs print a span's fields and the event's side by side.
pub fn log_failure(CallError { error, attempts }: &CallError) {
    let (code, reason, severity) = classify(error);
    let span = tracing::Span::current();
    let in_call_span = span
        .metadata()
        .is_some_and(|span| span.fields().field("reason").is_some());
    span.record("grpc_code", code_name(code));
    span.record("attempts", attempts);
    span.record("reason", reason);
    // KGeN's status of the last attempt, recorded once here (not per attempt, which text logs would repeat);
    // earlier attempts' statuses are in the metrics.
    if let Some(status) = error.upstream_status() {
        span.record("upstream_status", status.code);
    }
    if reason == "UPSTREAM_NOT_FOUND" {
        warn_upstream_not_found();
    }
    macro_rules! failed {
        ($level:ident, $message:literal) => {
            if in_call_span {
                tracing::$level!(error = %error, $message)
            } else {
                tracing::$level!(reason, attempts, error = %error, $message)
            }
        };
    }
    match severity {
        Severity::Caller => failed!(debug, "call failed"),
        Severity::Upstream => failed!(warn, "call failed"),
        Severity::Operator => failed!(error, "call failed; check the gateway's configuration"),
    }
}

/// KGeN answering 404 on its one documented endpoint means the upstream URL is wrong, not the caller's request: a
/// run of them is one warning every 30 s (each call's own line stays at debug, as for other caller-facing codes).
fn warn_upstream_not_found() {
    static THROTTLE: Throttle = Throttle::new(Duration::from_secs(30));
    if let Some(held_back) = THROTTLE.admit() {
        tracing::warn!(
            held_back,
            "KGeN answered 404 Not Found on its session endpoint: check --upstream-url (or a tenant's upstream_url); \
             it is the base URL, without /s2s/session/, and the endpoint in use is logged at start-up as \
             \"upstream configured\""
        );
    }
}

#[cfg(test)]
mod tests {
    use tonic_types::{RpcStatusExt, StatusExt};

    use super::*;
    use crate::{core::error::status as http, upstream::Delivery};

    fn error_info(status: &Status) -> ErrorInfo {
        status
            .get_error_details()
            .error_info()
            .cloned()
            .expect("ErrorInfo")
    }

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
        for (code, grpc, reason) in rows {
            let status = Status::from(http(code));
            assert_eq!(status.code(), grpc, "HTTP {code}");
            let info = error_info(&status);
            assert_eq!(info.reason, reason, "HTTP {code}");
            assert_eq!(info.domain, DOMAIN);
            assert_eq!(
                info.metadata.get("upstream_status"),
                Some(&code.to_string())
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
                Error::Upstream(upstream::Error::Unreachable {
                    cause: "refused".into(),
                    delivery: Delivery::NotSent,
                }),
                Code::Unavailable,
                "UPSTREAM_UNREACHABLE",
            ),
            (
                Error::Upstream(upstream::Error::Tls("bad cert".into())),
                Code::Unavailable,
                "UPSTREAM_TLS_ERROR",
            ),
            (
                Error::Upstream(upstream::Error::BadResponse("not JSON".into())),
                Code::Internal,
                "UPSTREAM_BAD_RESPONSE",
            ),
            (
                Error::Upstream(upstream::Error::TooLarge { limit: 1024 }),
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
            let info = error_info(&status);
            assert_eq!(info.reason, reason);
            assert!(!info.metadata.contains_key("upstream_status"));
        }
    }

    #[test]
    fn retry_info_is_sent_exactly_when_kgen_said_when_to_retry() {
        let with = Status::from(Error::Upstream(upstream::Error::HttpStatus(
            UpstreamStatus {
                code: 429,
                message: "slow down".into(),
                retry_after: Some(Duration::from_secs(7)),
            },
        )));
        let retry = with
            .get_error_details()
            .retry_info()
            .cloned()
            .expect("RetryInfo");
        assert_eq!(retry.retry_delay, Some(Duration::from_secs(7)));
        assert_eq!(with.message(), "KGeN answered HTTP 429: slow down");

        assert!(Status::from(http(429))
            .get_error_details()
            .retry_info()
            .is_none());
        let unavailable = Status::from(Error::Upstream(upstream::Error::HttpStatus(
            UpstreamStatus {
                code: 503,
                message: String::new(),
                retry_after: Some(Duration::from_secs(2)),
            },
        )));
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
            error: http(503),
            attempts: 3,
        });
        let info = error_info(&status);
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
        assert!(
            !error_info(&open).metadata.contains_key("attempts"),
            "no attempt was made"
        );
    }

    #[test]
    fn tenant_errors_map_to_permission_denied_and_invalid_argument() {
        let denied = Status::from(Error::TenantNotAllowed {
            tenant: Some("ludo".into()),
        });
        assert_eq!(denied.code(), Code::PermissionDenied);
        let info = error_info(&denied);
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
    fn a_batch_item_carries_exactly_the_status_a_unary_call_would_send() {
        let error = CallError {
            error: Error::Upstream(upstream::Error::HttpStatus(UpstreamStatus {
                code: 429,
                message: "slow down".into(),
                retry_after: Some(Duration::from_secs(3)),
            })),
            attempts: 2,
        };
        let unary = status(&error);
        let item = rpc_status(&error);
        assert_eq!(item.code, i32::from(unary.code()));
        assert_eq!(item.message, unary.message());
        let sent = pb::Status::decode(unary.details()).expect("grpc-status-details-bin");
        let type_urls = |status: &pb::Status| -> Vec<String> {
            status.details.iter().map(|d| d.type_url.clone()).collect()
        };
        assert_eq!(
            type_urls(&sent),
            type_urls(&item),
            "RetryInfo, then ErrorInfo"
        );
        let carried = item.check_error_details().expect("item details decode");
        let unary_details = unary.get_error_details();
        let info = |details: &tonic_types::ErrorDetails| {
            details
                .error_info()
                .map(|i| (i.reason.clone(), i.domain.clone(), i.metadata.clone()))
        };
        assert_eq!(info(&carried), info(&unary_details));
        let delay =
            |details: &tonic_types::ErrorDetails| details.retry_info().and_then(|r| r.retry_delay);
        assert_eq!(delay(&carried), Some(Duration::from_secs(3)));
        assert_eq!(delay(&carried), delay(&unary_details));
        assert_eq!(
            carried
                .error_info()
                .and_then(|info| info.metadata.get("attempts"))
                .map(String::as_str),
            Some("2")
        );
    }

    #[test]
    fn an_invalid_batch_size_names_user_ids_in_bad_request() {
        for (len, description) in [
            (0, "must not be empty"),
            (101, "must hold at most 100 entries, not 101"),
        ] {
            let status = Status::from(Error::InvalidBatchSize(len));
            assert_eq!(status.code(), Code::InvalidArgument);
            assert_eq!(status.message(), format!("invalid user_ids: {description}"));
            assert_eq!(error_info(&status).reason, INVALID_BATCH_SIZE);
            let bad = status
                .get_error_details()
                .bad_request()
                .cloned()
                .expect("BadRequest");
            assert_eq!(bad.field_violations[0].field, "user_ids");
            assert_eq!(bad.field_violations[0].description, description);
        }
    }
}
