//! Server limits: request size, connection age.

use std::time::Duration;

use tonic::Code;

use crate::support::{
    app::{bare_h2, settings_for, TestApp},
    fake_kgen::FakeKgen,
};

#[tokio::test]
async fn requests_over_the_size_limit_are_refused_before_any_upstream_call() {
    let kgen = FakeKgen::start().await;
    let mut settings = settings_for(&kgen.url());
    settings.server.max_request_size = 4 * 1024;
    let app = TestApp::spawn(settings).await;

    let status = app
        .create_session(&"x".repeat(8 * 1024))
        .await
        .expect_err("too large");

    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
    assert!(kgen.received().is_empty(), "KGeN was not called");
}

#[tokio::test]
async fn connections_older_than_the_max_age_are_asked_to_go_away() {
    let kgen = FakeKgen::start().await;
    let mut settings = settings_for(&kgen.url());
    settings.server.max_connection_age = Duration::from_millis(200);
    settings.server.max_connection_age_grace = Duration::from_millis(500);
    let app = TestApp::spawn(settings).await;

    // A bare HTTP/2 connection: its driver future ends when the server closes the connection.
    let (_sender, connection) = bare_h2::<tonic::body::Body>(app.addr).await;
    let closed = tokio::time::timeout(Duration::from_secs(5), connection).await;

    assert!(
        closed.is_ok(),
        "the server closed a connection past its max age (about 200 ms ± 10 %)"
    );
}
