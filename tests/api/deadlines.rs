//! The caller's deadline and cancellation reach the upstream call.

use std::time::Duration;

use tonic::{Code, Request};

use crate::support::{
    app::{settings_for, TestApp},
    assertions::assert_status,
    fake_kgen::{FakeKgen, HeldRequest},
};
use kgen_gateway::proto::CreateSessionRequest;

#[tokio::test]
async fn upstream_timeout_maps_to_deadline_exceeded_upstream_timeout() {
    let kgen = FakeKgen::start().await;
    let mut settings = settings_for(&kgen.url());
    settings.upstream.timeout = Duration::from_millis(200);
    let app = TestApp::spawn(settings).await;

    let status = app
        .create_session("fault:delay:5000")
        .await
        .expect_err("too slow");

    assert_status(&status, Code::DeadlineExceeded, "UPSTREAM_TIMEOUT");
}

#[tokio::test]
async fn callers_deadline_shorter_than_the_upstream_timeout_wins() {
    let kgen = FakeKgen::start().await;
    let app = TestApp::with_upstream(&kgen).await; // upstream timeout 5s

    let started = std::time::Instant::now();
    let status = app
        .create_session_within("fault:delay:5000", Duration::from_millis(300))
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
    let kgen = FakeKgen::start().await;
    let mut settings = settings_for(&kgen.url());
    settings.upstream.timeout = Duration::from_millis(200);
    let app = TestApp::spawn(settings).await;

    let status = app
        .create_session_within("fault:delay:5000", Duration::from_secs(30))
        .await
        .expect_err("upstream timeout");

    assert_status(&status, Code::DeadlineExceeded, "UPSTREAM_TIMEOUT");
}

#[tokio::test]
async fn an_already_expired_deadline_is_answered_without_calling_upstream() {
    let kgen = FakeKgen::start().await;
    let app = TestApp::with_upstream(&kgen).await;

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
    assert!(kgen.received().is_empty(), "KGeN was not called");
}

#[tokio::test]
async fn when_the_deadline_passes_the_upstream_request_is_dropped() {
    let mut upstream = FakeKgen::start().await;
    let app = TestApp::spawn(settings_for(&upstream.url())).await;

    let status = app
        .create_session_within("fault:hold", Duration::from_millis(300))
        .await
        .expect_err("deadline");

    assert_status(&status, Code::DeadlineExceeded, "DEADLINE_EXCEEDED");
    assert_eq!(
        upstream.next_held_event(Duration::from_secs(5)).await,
        Some(HeldRequest::Arrived)
    );
    assert_eq!(
        upstream.next_held_event(Duration::from_secs(5)).await,
        Some(HeldRequest::Closed),
        "the gateway closed the upstream connection instead of leaving the request running"
    );
}

#[tokio::test]
async fn when_the_caller_cancels_the_upstream_request_is_dropped() {
    let mut upstream = FakeKgen::start().await;
    let app = TestApp::spawn(settings_for(&upstream.url())).await; // upstream timeout 5s, no caller deadline

    let mut call = Box::pin(app.create_session("fault:hold"));
    tokio::select! {
        _ = &mut call => panic!("the silent upstream never answers"),
        event = upstream.next_held_event(Duration::from_secs(5)) => assert_eq!(event, Some(HeldRequest::Arrived)),
    }
    drop(call); // the client resets the HTTP/2 stream: a cancellation

    assert_eq!(
        upstream.next_held_event(Duration::from_secs(3)).await,
        Some(HeldRequest::Closed),
        "cancellation reached the upstream well before the 5s upstream timeout"
    );
}
