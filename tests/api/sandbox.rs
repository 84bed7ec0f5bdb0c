//! The embedded sandbox, end to end through the gateway's real HTTP client.

use std::time::Duration;

use kgen_gateway::{
    config::Settings,
    sandbox::{self, SandboxConfig},
};
use tonic::Code;

use crate::helpers::{assert_status, settings_for, single_attempt, upstream_status_of, TestApp};

async fn sandboxed() -> TestApp {
    let mut settings: Settings = settings_for("http://unused.invalid");
    settings.sandbox = true;
    TestApp::spawn(settings).await
}

#[tokio::test]
async fn sandbox_returns_realistic_sessions_and_remembers_users() {
    let app = sandboxed().await;

    let first = app.create_session("player-42").await.expect("session");
    let second = app.create_session("player-42").await.expect("session");
    let other = app.create_session("player-43").await.expect("session");

    assert!(first.is_new_user, "first call creates the user");
    assert!(!second.is_new_user, "second call retrieves it");
    assert_ne!(first.session_id, second.session_id, "fresh session ids");
    assert_eq!(
        first.session_id.len(),
        36,
        "uuid-shaped: {}",
        first.session_id
    );
    assert_eq!(first.user_id, "player-42");
    assert_eq!(
        first.namespaced_third_party_user_id,
        format!("{}#player-42", first.third_party_client_id)
    );
    assert!(first.third_party_client_id.parse::<u64>().is_ok());
    assert_eq!(
        first.wallet_address, second.wallet_address,
        "wallet derived from the user id"
    );
    assert_ne!(first.wallet_address, other.wallet_address);
    assert!(first.wallet_address.starts_with("0x") && first.wallet_address.len() == 42);
    for token in [&first.access_token, &first.refresh_token] {
        assert_eq!(token.split('.').count(), 3, "JWT-shaped");
    }
    assert!(
        first.session_start_time.ends_with(" +0000 UTC"),
        "{}",
        first.session_start_time
    );
    let started = first.session_started_at.expect("Go-format time parsed");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((now - 60..=now + 1).contains(&started.seconds));
    assert_eq!(first.indigg_id, None);
}

#[tokio::test]
async fn sandbox_magic_user_ids_inject_upstream_faults() {
    let mut settings = single_attempt(settings_for("http://unused.invalid"));
    settings.sandbox = true;
    let app = TestApp::spawn(settings).await;

    let limited = app
        .create_session("fault:status:429")
        .await
        .expect_err("429");
    let details = assert_status(&limited, Code::ResourceExhausted, "UPSTREAM_RATE_LIMITED");
    assert_eq!(
        details.retry_info().and_then(|r| r.retry_delay),
        Some(Duration::from_secs(1))
    );

    let down = app
        .create_session("fault:status:503:9")
        .await
        .expect_err("503");
    let details = assert_status(&down, Code::Unavailable, "UPSTREAM_UNAVAILABLE");
    assert_eq!(
        details.retry_info().and_then(|r| r.retry_delay),
        Some(Duration::from_secs(9))
    );

    let internal = app
        .create_session("fault:status:500")
        .await
        .expect_err("500");
    assert_eq!(
        upstream_status_of(&assert_status(
            &internal,
            Code::Internal,
            "UPSTREAM_INTERNAL_ERROR"
        ))
        .as_deref(),
        Some("500")
    );

    let html = app
        .create_session("fault:malformed")
        .await
        .expect_err("html");
    assert_status(&html, Code::Internal, "UPSTREAM_BAD_RESPONSE");

    let no_id = app
        .create_session("fault:no-session-id")
        .await
        .expect_err("no id");
    assert_status(&no_id, Code::Internal, "UPSTREAM_BAD_RESPONSE");

    let huge = app
        .create_session("fault:oversized")
        .await
        .expect_err("2 MiB");
    assert_status(&huge, Code::Internal, "UPSTREAM_RESPONSE_TOO_LARGE");

    let slow = app
        .create_session_within("fault:delay:3000", Duration::from_millis(200))
        .await
        .expect_err("slower than the deadline");
    assert_status(&slow, Code::DeadlineExceeded, "DEADLINE_EXCEEDED");

    let delayed = app
        .create_session("fault:delay:50")
        .await
        .expect("a short delay still succeeds");
    assert_eq!(delayed.user_id, "fault:delay:50");

    let unknown = app
        .create_session("fault:bogus")
        .await
        .expect_err("unknown fault");
    assert_status(&unknown, Code::InvalidArgument, "UPSTREAM_REJECTED_REQUEST");
}

#[tokio::test]
async fn sandbox_rejects_credentials_it_was_not_given() {
    let upstream = sandbox::spawn(SandboxConfig::default())
        .await
        .expect("sandbox starts");
    let mut settings = settings_for(upstream.url().as_str());
    settings.upstream.client_id = "sandbox-client".into();
    let app = TestApp::spawn(settings).await; // secret is the test secret, not sandbox-secret

    let status = app.create_session("player-1").await.expect_err("401");

    let details = assert_status(&status, Code::Internal, "UPSTREAM_CREDENTIALS_REJECTED");
    assert_eq!(upstream_status_of(&details).as_deref(), Some("401"));
}

#[tokio::test]
async fn standalone_sandbox_speaks_http1_and_h2c() {
    let upstream = sandbox::spawn(SandboxConfig::default())
        .await
        .expect("sandbox starts");
    let url = format!("{}s2s/session/", upstream.url());
    let body = r#"{"user_id":"curl-user"}"#;
    for client in [
        reqwest::Client::builder().http1_only().build().unwrap(),
        reqwest::Client::builder()
            .http2_prior_knowledge()
            .build()
            .unwrap(),
    ] {
        let response = client
            .post(&url)
            .header("x-client-id", "sandbox-client")
            .header("x-client-secret", "sandbox-secret")
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("sandbox answers");
        let version = response.version();
        assert_eq!(response.status(), 200, "{version:?}");
        let json: serde_json::Value = response.json().await.expect("JSON");
        assert_eq!(json["user_id"], "curl-user", "{version:?}");
        assert_eq!(
            json.as_object().map(|o| o.len()),
            Some(30),
            "all 30 documented fields"
        );
    }
}
