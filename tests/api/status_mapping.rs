//! Every row of the error table, driven through the real server against the fake KGeN.

use std::time::{Duration, SystemTime};

use serde_json::json;
use tonic::Code;

use crate::support::{
    app::{settings_for, single_attempt, TestApp, CLIENT_SECRET},
    assertions::{assert_secret_absent, assert_status, upstream_status_of},
    fake_kgen::{Answer, FakeKgen},
    upstreams::secret_echoing_upstream,
};

#[tokio::test]
async fn every_upstream_http_status_maps_to_its_code_and_reason() {
    let rows = [
        (400, Code::InvalidArgument, "UPSTREAM_REJECTED_REQUEST"),
        (422, Code::InvalidArgument, "UPSTREAM_REJECTED_REQUEST"),
        (401, Code::Internal, "UPSTREAM_CREDENTIALS_REJECTED"),
        (403, Code::Internal, "UPSTREAM_CREDENTIALS_REJECTED"),
        (404, Code::NotFound, "UPSTREAM_NOT_FOUND"),
        (408, Code::DeadlineExceeded, "UPSTREAM_TIMEOUT"),
        (409, Code::Aborted, "UPSTREAM_CONFLICT"),
        (429, Code::ResourceExhausted, "UPSTREAM_RATE_LIMITED"),
        (402, Code::FailedPrecondition, "UPSTREAM_REJECTED_REQUEST"),
        (410, Code::FailedPrecondition, "UPSTREAM_REJECTED_REQUEST"),
        (500, Code::Internal, "UPSTREAM_INTERNAL_ERROR"),
        (501, Code::Unimplemented, "UPSTREAM_UNIMPLEMENTED"),
        (502, Code::Unavailable, "UPSTREAM_UNAVAILABLE"),
        (503, Code::Unavailable, "UPSTREAM_UNAVAILABLE"),
        (504, Code::Unavailable, "UPSTREAM_UNAVAILABLE"),
        (507, Code::Unavailable, "UPSTREAM_UNAVAILABLE"),
        (300, Code::Unknown, "UPSTREAM_UNEXPECTED_STATUS"),
        (304, Code::Unknown, "UPSTREAM_UNEXPECTED_STATUS"),
    ];
    let kgen = FakeKgen::start().await;
    let app = TestApp::spawn(single_attempt(settings_for(&kgen.url()))).await;

    for (http, code, reason) in rows {
        kgen.answer(Answer::json(
            http,
            json!({ "message": format!("said {http}") }),
        ));
        let status = app
            .create_session("FTC_User1")
            .await
            .expect_err("upstream failed");
        let details = assert_status(&status, code, reason);
        assert_eq!(
            upstream_status_of(&details),
            Some(http.to_string()),
            "HTTP {http}"
        );
        if http != 304 {
            assert!(
                status.message().contains(&format!("said {http}")),
                "HTTP {http}: {}",
                status.message()
            );
        }
    }
}

#[tokio::test]
async fn redirects_are_not_followed_so_the_secret_never_leaves_for_another_host() {
    let elsewhere = FakeKgen::start().await;
    let kgen = FakeKgen::start().await;
    kgen.answer(
        Answer::empty(307).with_header("location", &format!("{}/s2s/session/", elsewhere.url())),
    );
    let app = TestApp::with_upstream(&kgen).await;

    let status = app
        .create_session("FTC_User1")
        .await
        .expect_err("3xx is an error");

    let details = assert_status(&status, Code::Unknown, "UPSTREAM_UNEXPECTED_STATUS");
    assert_eq!(upstream_status_of(&details).as_deref(), Some("307"));
    assert!(
        elsewhere.received().is_empty(),
        "the redirect was not followed"
    );
}

#[tokio::test]
async fn upstream_429_maps_to_resource_exhausted_with_retry_info_from_seconds() {
    let kgen = FakeKgen::start().await;
    let app = TestApp::with_upstream(&kgen).await;

    let status = app
        .create_session("fault:status:429:7")
        .await
        .expect_err("rate limited");

    let details = assert_status(&status, Code::ResourceExhausted, "UPSTREAM_RATE_LIMITED");
    assert_eq!(
        details.retry_info().and_then(|r| r.retry_delay),
        Some(Duration::from_secs(7))
    );
}

#[tokio::test]
async fn upstream_429_maps_to_resource_exhausted_with_retry_info_from_an_http_date() {
    let kgen = FakeKgen::start().await;
    let at = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(120));
    kgen.answer(Answer::empty(429).with_header("retry-after", &at));
    let app = TestApp::with_upstream(&kgen).await;

    let status = app
        .create_session("FTC_User1")
        .await
        .expect_err("rate limited");

    let details = assert_status(&status, Code::ResourceExhausted, "UPSTREAM_RATE_LIMITED");
    let delay = details
        .retry_info()
        .and_then(|r| r.retry_delay)
        .expect("RetryInfo delay");
    assert!(
        (Duration::from_secs(115)..=Duration::from_secs(120)).contains(&delay),
        "{delay:?}"
    );
}

#[tokio::test]
async fn upstream_503_with_retry_after_is_unavailable_with_retry_info() {
    let kgen = FakeKgen::start().await;
    let app = TestApp::with_upstream(&kgen).await;

    let status = app
        .create_session("fault:status:503:3")
        .await
        .expect_err("unavailable");

    let details = assert_status(&status, Code::Unavailable, "UPSTREAM_UNAVAILABLE");
    assert_eq!(
        details.retry_info().and_then(|r| r.retry_delay),
        Some(Duration::from_secs(3))
    );
}

#[tokio::test]
async fn upstream_messages_are_cut_to_one_clean_line_without_the_secret() {
    let kgen = FakeKgen::start().await;
    let noisy = format!(
        "line one\r\nline two\u{1b}[31m echo of {CLIENT_SECRET} {}",
        "x".repeat(2000)
    );
    kgen.answer(Answer::json(400, json!({ "error": noisy })));
    let app = TestApp::with_upstream(&kgen).await;

    let status = app.create_session("FTC_User1").await.expect_err("rejected");

    assert_status(&status, Code::InvalidArgument, "UPSTREAM_REJECTED_REQUEST");
    assert!(
        status
            .message()
            .contains("line one line two[31m echo of [redacted]"),
        "{}",
        status.message()
    );
    assert!(!status.message().chars().any(char::is_control));
    let quoted = status
        .message()
        .split_once(": ")
        .map(|(_, upstream)| upstream)
        .unwrap_or_default();
    assert!(
        quoted.chars().count() <= 256,
        "{} chars",
        quoted.chars().count()
    );
}

#[tokio::test]
async fn the_client_secret_split_by_control_characters_or_upper_cased_never_reaches_the_caller() {
    let kgen = secret_echoing_upstream().await;
    let app = TestApp::with_upstream(&kgen).await;

    let status = app.create_session("FTC_User1").await.expect_err("rejected");

    assert_status(&status, Code::InvalidArgument, "UPSTREAM_REJECTED_REQUEST");
    assert_secret_absent(&status, CLIENT_SECRET);
    assert_eq!(
        status.message(),
        "KGeN answered HTTP 400: client secret [redacted] or [redacted] or [redacted] or [redacted] or \
         [redacted] rejected",
        "every disguise scrubbed, the rest of the message kept"
    );
    let requests = kgen.received();
    assert_eq!(requests[0].headers["x-client-secret"], CLIENT_SECRET);
}

#[tokio::test]
async fn success_bodies_that_are_not_sessions_are_bad_responses() {
    let kgen = FakeKgen::start().await;
    let app = TestApp::with_upstream(&kgen).await;
    let bodies = [
        Answer::raw(200, "text/html", "<html><body>Bad Gateway</body></html>"),
        Answer::json(200, json!({ "user_id": "FTC_User1" })),
        Answer::json(200, json!({ "session_id": "" })),
        Answer::json(200, json!({ "session_id": "s", "level": "high" })),
        Answer::json(200, json!(["session_id"])),
        Answer::raw(201, "application/json", vec![0xff, 0xfe, b'{', b'}']),
        Answer::raw(
            200,
            "application/json",
            format!("{{\"session_id\":{}", "[".repeat(50_000)),
        ),
        Answer::empty(200),
    ];
    for (i, body) in bodies.into_iter().enumerate() {
        kgen.answer(body);
        let status = app
            .create_session("FTC_User1")
            .await
            .expect_err("not a session");
        let details = assert_status(&status, Code::Internal, "UPSTREAM_BAD_RESPONSE");
        assert_eq!(upstream_status_of(&details), None, "body {i}");
    }
}

#[tokio::test]
async fn oversized_bodies_are_refused() {
    let kgen = FakeKgen::start().await;
    let app = TestApp::with_upstream(&kgen).await;

    let status = app
        .create_session("fault:oversized")
        .await
        .expect_err("too large");

    assert_status(&status, Code::Internal, "UPSTREAM_RESPONSE_TOO_LARGE");
}
