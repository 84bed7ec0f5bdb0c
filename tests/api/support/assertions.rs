//! Assertions on the gRPC statuses the gateway answers with, and on the calls its metrics count.

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use super::app::{TestApp, CLIENT_SECRET};

/// Asserts the gateway's `/metrics` count two `CreateSession` calls under the gRPC method labels, whatever protocol
/// carried them: one answered `OK`, one `InvalidArgument`.
pub async fn assert_one_ok_and_one_invalid_create_session_counted(app: &TestApp) {
    let (_, text) = app.admin_get("/metrics").await;
    let labels = r#"grpc_type="unary",grpc_service="kgen.session.v1.SessionService",grpc_method="CreateSession""#;
    for series in [
        format!("grpc_server_started_total{{{labels}}} 2"),
        format!("grpc_server_handled_total{{{labels},grpc_code=\"OK\"}} 1"),
        format!("grpc_server_handled_total{{{labels},grpc_code=\"InvalidArgument\"}} 1"),
    ] {
        assert!(
            text.lines().any(|line| line == series),
            "{series} missing from\n{text}"
        );
    }
}

/// Asserts `status` has `code` and an `ErrorInfo` with `reason` in our domain; returns its details.
#[track_caller]
pub fn assert_status(status: &Status, code: Code, reason: &str) -> ErrorDetails {
    assert_eq!(status.code(), code, "unexpected status: {status:?}");
    let details = status.check_error_details().expect("details decode");
    let info = details.error_info().expect("every error carries ErrorInfo");
    assert_eq!(info.reason, reason, "message: {}", status.message());
    assert_eq!(info.domain, "kgen-gateway");
    assert!(
        !status.message().contains('\n'),
        "one-line message: {:?}",
        status.message()
    );
    assert!(
        !status.message().contains(CLIENT_SECRET),
        "secret leaked: {:?}",
        status.message()
    );
    details
}

#[track_caller]
pub fn upstream_status_of(details: &ErrorDetails) -> Option<String> {
    details
        .error_info()
        .and_then(|i| i.metadata.get("upstream_status").cloned())
}

/// Asserts that `secret` appears nowhere in what the caller got: `grpc-message`, nor `grpc-status-details-bin`
/// (the `google.rpc.Status` it encodes: message and every detail, `ErrorInfo` metadata included), ASCII case and
/// spaces ignored.
#[track_caller]
pub fn assert_secret_absent(status: &Status, secret: &str) {
    use prost::Message as _;
    let squeezed = |s: &str| {
        s.chars()
            .filter(|c| !c.is_whitespace() && !c.is_control())
            .collect::<String>()
            .to_ascii_lowercase()
    };
    let secret = squeezed(secret);
    assert!(
        !squeezed(status.message()).contains(&secret),
        "secret in grpc-message: {:?}",
        status.message()
    );
    let raw = squeezed(&String::from_utf8_lossy(status.details()));
    assert!(!raw.contains(&secret), "secret in grpc-status-details-bin");
    let decoded =
        tonic_types::Status::decode(status.details()).expect("details are a google.rpc.Status");
    assert!(!squeezed(&decoded.message).contains(&secret), "{decoded:?}");
    let details = status.check_error_details().expect("details decode");
    assert!(
        !squeezed(&format!("{details:?}")).contains(&secret),
        "{details:?}"
    );
    let info = details.error_info().expect("ErrorInfo");
    for (key, value) in &info.metadata {
        assert!(!squeezed(key).contains(&secret) && !squeezed(value).contains(&secret));
    }
}
