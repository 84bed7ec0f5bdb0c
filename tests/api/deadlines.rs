//! The caller's deadline and cancellation reach the upstream call.

use std::time::Duration;

use tonic::{Code, Request};
use wiremock::{matchers::method, Mock, MockServer, ResponseTemplate};

use crate::support::{
    app::{settings_for, TestApp},
    assertions::assert_status,
    upstreams::{slow_mock, ConnectionEvent, SilentUpstream},
};
use kgen_gateway::proto::CreateSessionRequest;

#[tokio::test]
async fn upstream_timeout_maps_to_deadline_exceeded_upstream_timeout() {
    let mock = slow_mock(Duration::from_secs(5)).await;
    let mut settings = settings_for(&mock.uri());
    settings.upstream.timeout = Duration::from_millis(200);
    let app = TestApp::spawn(settings).await;

    let status = app.create_session("FTC_User1").await.expect_err("too slow");

    assert_status(&status, Code::DeadlineExceeded, "UPSTREAM_TIMEOUT");
}

#[tokio::test]
async fn callers_deadline_shorter_than_the_upstream_timeout_wins() {
    let mock = slow_mock(Duration::from_secs(5)).await;
    let app = TestApp::with_upstream(&mock).await; // upstream timeout 5s

    let started = std::time::Instant::now();
    let status = app
        .create_session_within("FTC_User1", Duration::from_millis(300))
        .await
        .expect_err("deadline");

    assert_status(&status, Code::DeadlineExceeded, "DEADLINE_EXCEEDED");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "answered at the deadline, not the upstream timeout"
    );
}

#[tokio::test]
async fn callers_deadline_longer_than_the_upstream_timeout_is_cut_to_it() {
    let mock = slow_mock(Duration::from_secs(5)).await;
    let mut settings = settings_for(&mock.uri());
    settings.upstream.timeout = Duration::from_millis(200);
    let app = TestApp::spawn(settings).await;

    let status = app
        .create_session_within("FTC_User1", Duration::from_secs(30))
        .await
        .expect_err("upstream timeout");

    assert_status(&status, Code::DeadlineExceeded, "UPSTREAM_TIMEOUT");
}

#[tokio::test]
async fn an_already_expired_deadline_is_answered_without_calling_upstream() {
    let mock = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&mock)
        .await;
    let app = TestApp::with_upstream(&mock).await;

    let mut request = Request::new(CreateSessionRequest {
        user_id: "FTC_User1".into(),
    });
    request
        .metadata_mut()
        .insert("grpc-timeout", "0n".parse().unwrap());
    let status = app
        .raw_client()
        .create_session(request)
        .await
        .expect_err("expired");

    assert_status(&status, Code::DeadlineExceeded, "DEADLINE_EXCEEDED");
}

#[tokio::test]
async fn when_the_deadline_passes_the_upstream_request_is_dropped() {
    let mut upstream = SilentUpstream::start().await;
    let app = TestApp::spawn(settings_for(&upstream.url)).await;

    let status = app
        .create_session_within("FTC_User1", Duration::from_millis(300))
        .await
        .expect_err("deadline");

    assert_status(&status, Code::DeadlineExceeded, "DEADLINE_EXCEEDED");
    assert_eq!(
        upstream.next_event(Duration::from_secs(5)).await,
        Some(ConnectionEvent::Accepted)
    );
    assert_eq!(
        upstream.next_event(Duration::from_secs(5)).await,
        Some(ConnectionEvent::Closed),
        "the gateway closed the upstream connection instead of leaving the request running"
    );
}

#[tokio::test]
async fn when_the_caller_cancels_the_upstream_request_is_dropped() {
    let mut upstream = SilentUpstream::start().await;
    let app = TestApp::spawn(settings_for(&upstream.url)).await; // upstream timeout 5s, no caller deadline

    let mut call = Box::pin(app.create_session("FTC_User1"));
    tokio::select! {
        _ = &mut call => panic!("the silent upstream never answers"),
        event = upstream.next_event(Duration::from_secs(5)) => assert_eq!(event, Some(ConnectionEvent::Accepted)),
    }
    drop(call); // the client resets the HTTP/2 stream: a cancellation

    assert_eq!(
        upstream.next_event(Duration::from_secs(3)).await,
        Some(ConnectionEvent::Closed),
        "cancellation reached the upstream well before the 5s upstream timeout"
    );
}
