//! Retries that cannot create a session twice: by default only outcomes KGeN provably did not act on are retried;
//! an operator may add ambiguous ones (`--retry-on`), and a session that came after such a retry says so.

use std::time::Duration;

use kgen_gateway::{proto::CreateSessionRequest, RetryOn, Settings, RETRIED_AFTER_AMBIGUOUS};
use tokio::net::TcpListener;
use tonic::Code;
use tonic_types::StatusExt;

use crate::support::{
    app::{settings_for, settings_from, TestApp},
    assertions::assert_status,
    fake_kgen::FakeKgen,
    files::Scratch,
    upstreams::DeadPort,
};

async fn gateway_with(upstream: &FakeKgen, retry_on: Option<&str>) -> TestApp {
    let mut settings: Settings = settings_for(&upstream.url());
    if let Some(policy) = retry_on {
        settings.resilience.retry_on = RetryOn::parse(policy).expect("policy");
    }
    TestApp::spawn(settings).await
}

fn attempts_of(status: &tonic::Status) -> Option<String> {
    status
        .get_error_details()
        .error_info()
        .and_then(|info| info.metadata.get("attempts").cloned())
}

#[tokio::test]
async fn by_default_a_500_502_504_or_409_is_sent_to_kgen_exactly_once() {
    let upstream = FakeKgen::start().await;
    let app = gateway_with(&upstream, None).await;

    for code in [500, 502, 504, 409] {
        let user_id = format!("fault:status:{code}");
        let status = app.create_session(&user_id).await.expect_err("fails");

        assert_eq!(
            upstream.requests_for(&user_id),
            1,
            "HTTP {code} is ambiguous"
        );
        assert_eq!(attempts_of(&status).as_deref(), Some("1"), "HTTP {code}");
    }
}

#[tokio::test]
async fn by_default_a_503_a_429_and_a_408_are_retried() {
    let upstream = FakeKgen::start().await;
    let app = gateway_with(&upstream, None).await;

    for code in [503, 429, 408] {
        let user_id = format!("fault:status:{code}");
        let status = app.create_session(&user_id).await.expect_err("fails");

        assert_eq!(
            upstream.requests_for(&user_id),
            3,
            "HTTP {code} was not processed"
        );
        assert_eq!(attempts_of(&status).as_deref(), Some("3"), "HTTP {code}");
    }
}

#[tokio::test]
async fn by_default_a_refused_connection_is_retried() {
    let dead = DeadPort::new();
    let app = TestApp::spawn(settings_for(&dead.url())).await;

    let status = app.create_session("player-1").await.expect_err("refused");

    assert_status(&status, Code::Unavailable, "UPSTREAM_UNREACHABLE");
    assert_eq!(attempts_of(&status).as_deref(), Some("3"));
}

#[tokio::test]
async fn by_default_a_reset_after_kgen_read_the_request_is_not_retried() {
    let upstream = FakeKgen::start().await;
    let app = gateway_with(&upstream, None).await;

    let status = app
        .create_session("fault:reset-headers")
        .await
        .expect_err("reset");

    assert_status(&status, Code::Unavailable, "UPSTREAM_UNREACHABLE");
    assert_eq!(upstream.requests_for("fault:reset-headers"), 1);
    assert_eq!(attempts_of(&status).as_deref(), Some("1"));
}

#[tokio::test]
async fn with_retry_on_reset_a_reset_is_retried() {
    let upstream = FakeKgen::start().await;
    let app = gateway_with(&upstream, Some("connect-failure,reset")).await;

    let status = app
        .create_session("fault:reset-headers")
        .await
        .expect_err("reset");

    assert_eq!(upstream.requests_for("fault:reset-headers"), 3);
    assert_eq!(attempts_of(&status).as_deref(), Some("3"));
}

#[tokio::test]
async fn a_safe_retry_into_success_carries_no_staleness_metadata() {
    let upstream = FakeKgen::start().await;
    let app = gateway_with(&upstream, None).await;

    let response = app
        .client
        .clone()
        .create_session(CreateSessionRequest {
            user_id: "fault:flaky:1:safe".to_owned(),
        })
        .await
        .expect("the retry succeeds");

    assert_eq!(upstream.requests_for("safe"), 2, "a 503, then the 200");
    assert!(response.metadata().get(RETRIED_AFTER_AMBIGUOUS).is_none());
}

#[tokio::test]
async fn with_retry_on_5xx_a_502_is_retried_and_the_session_says_it_may_be_stale() {
    let upstream = FakeKgen::start().await;
    let app = gateway_with(&upstream, Some("connect-failure,refused-stream,5xx")).await;

    let response = app
        .client
        .clone()
        .create_session(CreateSessionRequest {
            user_id: "fault:flaky:1:lb:502".to_owned(),
        })
        .await
        .expect("the retry succeeds");

    assert_eq!(upstream.requests_for("lb"), 2, "a 502, then the 200");
    assert_eq!(
        response
            .metadata()
            .get(RETRIED_AFTER_AMBIGUOUS)
            .and_then(|v| v.to_str().ok()),
        Some("502")
    );
    let (_, metrics) = app.admin_get("/metrics").await;
    assert!(
        metrics.contains(r#"kgen_sessions_after_ambiguous_retry_total{tenant="default"} 1"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_tenant_may_have_its_own_retry_policy() {
    let upstream = FakeKgen::start().await;
    let scratch = Scratch::new("retry-on-tenant");
    scratch.write("bold.secret", "bold-secret");
    let file = scratch.write(
        "tenants.toml",
        &format!(
            "[tenants.bold]\nclient_id = \"bold\"\nclient_secret_file = \"bold.secret\"\nupstream_url = \"{}\"\nretry_on = \"5xx\"\n",
            upstream.url()
        ),
    );
    let settings = settings_from(&[
        "--upstream-url",
        &upstream.url(),
        "--client-id",
        "flags",
        "--tenants-file",
        file.to_str().unwrap(),
    ]);
    let app = TestApp::spawn(settings).await;

    let mut request = tonic::Request::new(CreateSessionRequest {
        user_id: "fault:flaky:1:bold:502".to_owned(),
    });
    request
        .metadata_mut()
        .insert("x-kgen-tenant", "bold".parse().unwrap());
    let bold = app.client.clone().create_session(request).await;
    let plain = app.create_session("fault:status:502").await;

    assert!(bold.is_ok(), "the tenant retries 5xx: {bold:?}");
    assert_eq!(upstream.requests_for("bold"), 2);
    assert!(plain.is_err());
    assert_eq!(
        upstream.requests_for("fault:status:502"),
        1,
        "the flags' tenant keeps the default"
    );
}

#[tokio::test]
async fn an_invalid_retry_on_is_refused_naming_the_setting() {
    let error = <kgen_gateway::Cli as clap::Parser>::try_parse_from([
        "kgen-gateway",
        "--sandbox",
        "--retry-on",
        "502,sometimes",
    ]);

    let message = error.expect_err("invalid").to_string();
    assert!(message.contains("--retry-on"), "{message}");
    assert!(message.contains("sometimes"), "{message}");
}

/// An h2c upstream that refuses the first `refusals` streams with `REFUSED_STREAM`, then answers a session.
async fn refusing_h2_upstream(
    refusals: usize,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let streams = Arc::new(AtomicUsize::new(0));
    let seen = streams.clone();
    let body = bytes::Bytes::from(crate::support::upstreams::example_session().to_string());
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let seen = seen.clone();
            let body = body.clone();
            tokio::spawn(async move {
                let Ok(mut connection) = h2::server::handshake(socket).await else {
                    return;
                };
                while let Some(Ok((_request, mut respond))) = connection.accept().await {
                    if seen.fetch_add(1, Ordering::SeqCst) < refusals {
                        respond.send_reset(h2::Reason::REFUSED_STREAM);
                        continue;
                    }
                    let response = http::Response::builder()
                        .header("content-type", "application/json")
                        .body(())
                        .expect("response");
                    if let Ok(mut send) = respond.send_response(response, false) {
                        let _ = send.send_data(body.clone(), true);
                    }
                }
            });
        }
    });
    (url, streams)
}

#[tokio::test]
async fn by_default_a_refused_http2_stream_is_retried() {
    let (url, streams) = refusing_h2_upstream(1).await;
    let mut settings = settings_for(&url);
    settings.upstream.http2_prior_knowledge = true;
    let app = TestApp::spawn(settings).await;

    let session = tokio::time::timeout(Duration::from_secs(5), app.create_session("player-1"))
        .await
        .expect("answered");

    assert!(session.is_ok(), "{session:?}");
    assert_eq!(
        streams.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "refused, then answered"
    );
}

#[tokio::test]
async fn with_retry_on_none_a_refused_http2_stream_is_tried_once_and_is_unavailable() {
    let (url, streams) = refusing_h2_upstream(usize::MAX).await;
    let mut settings = settings_for(&url);
    settings.upstream.http2_prior_knowledge = true;
    settings.resilience.retry_on = RetryOn::none();
    let app = TestApp::spawn(settings).await;

    let status = tokio::time::timeout(Duration::from_secs(5), app.create_session("player-1"))
        .await
        .expect("answered")
        .expect_err("refused");

    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    assert_eq!(
        streams.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "the gateway's retry policy is the only one: no hidden retry inside the HTTP client"
    );
}
