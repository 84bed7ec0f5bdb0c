//! Upstreams that fail below HTTP: closed ports, resets, TLS, endless bodies.

use tonic::Code;

use crate::support::{
    app::{settings_for, TestApp},
    assertions::assert_status,
    fake_kgen::FakeKgen,
    upstreams::{example_kgen, DeadPort},
};

#[tokio::test]
async fn closed_port_is_unavailable_unreachable() {
    let dead = DeadPort::new();
    let app = TestApp::spawn(settings_for(&dead.url())).await;

    let status = app
        .create_session("FTC_User1")
        .await
        .expect_err("nothing listens");

    assert_status(&status, Code::Unavailable, "UPSTREAM_UNREACHABLE");
}

#[tokio::test]
async fn unresolvable_host_is_unavailable_unreachable() {
    let app = TestApp::spawn(settings_for("http://kgen-upstream.invalid")).await;

    let status = app
        .create_session("FTC_User1")
        .await
        .expect_err("no such host");

    assert_status(&status, Code::Unavailable, "UPSTREAM_UNREACHABLE");
}

#[tokio::test]
async fn connection_reset_before_a_response_is_unavailable_unreachable() {
    let kgen = FakeKgen::start().await;
    let app = TestApp::with_upstream(&kgen).await;

    let status = app
        .create_session("fault:hang-up")
        .await
        .expect_err("reset");

    assert_status(&status, Code::Unavailable, "UPSTREAM_UNREACHABLE");
}

#[tokio::test]
async fn tls_handshake_failure_is_unavailable_tls_error() {
    // A plain-HTTP server spoken to over https: the TLS handshake cannot succeed.
    let kgen = FakeKgen::start().await;
    let https = kgen.url().replace("http://", "https://");
    let app = TestApp::spawn(settings_for(&https)).await;

    let status = app
        .create_session("FTC_User1")
        .await
        .expect_err("no TLS there");

    assert_status(&status, Code::Unavailable, "UPSTREAM_TLS_ERROR");
    assert!(kgen.received().is_empty(), "nothing readable was sent");
}

#[tokio::test]
async fn endless_chunked_body_is_cut_off_at_the_cap_without_buffering_it() {
    let mut kgen = FakeKgen::start().await;
    let app = TestApp::with_upstream(&kgen).await;

    let status = app
        .create_session("fault:endless")
        .await
        .expect_err("too large");

    assert_status(&status, Code::Internal, "UPSTREAM_RESPONSE_TOO_LARGE");
    let sent = kgen.endless_written().await.expect("upstream reports");
    assert!(
        sent < 30 * 1024 * 1024,
        "gateway hung up after {sent} bytes, not after reading 30 MiB"
    );
}

#[tokio::test]
async fn connection_lost_mid_body_is_unavailable_unreachable() {
    // Declares 1000 bytes, sends 10 and hangs up.
    let kgen = FakeKgen::start().await;
    let app = TestApp::with_upstream(&kgen).await;

    let status = app
        .create_session("fault:truncated")
        .await
        .expect_err("truncated");

    assert_status(&status, Code::Unavailable, "UPSTREAM_UNREACHABLE");
}

#[tokio::test]
async fn a_session_body_arriving_in_many_small_pieces_is_decoded_whole() {
    // 64-byte chunks, each flushed on its own and a moment apart, so they reach the gateway separately.
    let kgen = example_kgen().await;
    let app = TestApp::with_upstream(&kgen).await;

    let session = app.create_session("fault:chunked").await.expect("decoded");

    let expected = crate::support::upstreams::example_session();
    assert_eq!(session.session_id, expected["session_id"].as_str().unwrap());
    assert_eq!(session.email, expected["email"].as_str().unwrap());
    assert!(session.session_started_at.is_some());
}
