//! The embedded sandbox, end to end through the gateway's real HTTP client.

use std::time::Duration;

use kgen_gateway::{
    proto::{CreateSessionRequest, CreateSessionResponse},
    sandbox::{self, SandboxConfig},
    Settings,
};
use serde_json::json;
use tonic::{Code, Request, Status};

use crate::support::{
    app::{settings_for, settings_from, single_attempt, TestApp, CLIENT_ID},
    assertions::{assert_status, upstream_status_of},
    fake_kgen::{Answer, FakeKgen},
    files::Scratch,
    wait::{bounded, within_5s},
};

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

/// A stand-in for a real upstream that would answer every call: a call reaching it would not fail, it would get
/// the wrong session.
async fn real_upstream() -> FakeKgen {
    let kgen = FakeKgen::start().await;
    kgen.answer(Answer::json(
        200,
        json!({ "session_id": "from-a-real-upstream" }),
    ));
    kgen
}

async fn call_as(
    app: &TestApp,
    tenant: Option<&str>,
    token: Option<&str>,
) -> Result<CreateSessionResponse, Status> {
    let mut request = Request::new(CreateSessionRequest {
        user_id: "player-1".into(),
    });
    if let Some(tenant) = tenant {
        request
            .metadata_mut()
            .insert("x-kgen-tenant", tenant.parse().expect("ASCII"));
    }
    if let Some(token) = token {
        request.metadata_mut().insert(
            "authorization",
            format!("Bearer {token}").parse().expect("ASCII"),
        );
    }
    bounded(
        "the gateway to answer CreateSession",
        app.client.clone().create_session(request),
    )
    .await
    .map(tonic::Response::into_inner)
}

#[track_caller]
fn assert_sandbox_session(result: Result<CreateSessionResponse, Status>, tenant: Option<&str>) {
    let session = result.unwrap_or_else(|status| panic!("{tenant:?}: {status:?}"));
    assert_eq!(
        session.third_party_client_name, "SANDBOX_SANDBOX_CLIENT",
        "{tenant:?} got a session of the sandbox, with the sandbox's client id: {session:?}"
    );
}

#[tokio::test]
async fn in_sandbox_mode_every_tenant_calls_the_sandbox_from_the_first_call_and_no_other_upstream_ever(
) {
    let fallback = real_upstream().await; // --upstream-url: where tenants without upstream_url would go
    let explicit = real_upstream().await; // a tenant's own upstream_url
    let scratch = Scratch::new("sandbox-tenants");
    scratch.write("alpha.secret", "alpha-real-secret\n");
    scratch.write("beta.secret", "beta-real-secret\n");
    let tenants = |extra: &str| {
        format!(
            "default_tenant = \"beta\"\n\
             [tenants.alpha]\nclient_id = \"alpha-id\"\nclient_secret_file = \"alpha.secret\"\n\
             [tenants.beta]\nclient_id = \"beta-id\"\nclient_secret_file = \"beta.secret\"\n\
             upstream_url = \"{}\"\n{extra}",
            explicit.url()
        )
    };
    let file = scratch.write("tenants.toml", &tenants(""));
    let callers = scratch.write(
        "callers",
        "alpha-svc:tok-alpha tenants=alpha\nops:tok-ops tenants=*\n",
    );
    // Real-looking credentials in the flags and the environment (settings_from sets KGEN_CLIENT_SECRET's value).
    let settings = settings_from(&[
        "--sandbox",
        "--upstream-url",
        &fallback.url(),
        "--client-id",
        CLIENT_ID,
        "--tenants-file",
        file.to_str().unwrap(),
        "--caller-tokens-file",
        callers.to_str().unwrap(),
    ]);
    let app = TestApp::spawn(settings).await;

    // The very first calls, before any reload of the file could have re-pointed anything.
    for tenant in ["alpha", "beta", "default"] {
        assert_sandbox_session(
            call_as(&app, Some(tenant), Some("tok-ops")).await,
            Some(tenant),
        );
    }
    // Tenant names, the default tenant and grants still work.
    assert_sandbox_session(call_as(&app, None, Some("tok-ops")).await, None);
    assert_sandbox_session(call_as(&app, None, Some("tok-alpha")).await, Some("alpha"));
    let denied = call_as(&app, Some("beta"), Some("tok-alpha"))
        .await
        .expect_err("not granted");
    assert_status(&denied, Code::PermissionDenied, "TENANT_NOT_ALLOWED");
    let unknown = call_as(&app, Some("gamma"), Some("tok-ops"))
        .await
        .expect_err("not listed");
    assert_status(&unknown, Code::PermissionDenied, "TENANT_NOT_ALLOWED");

    // A reload that adds a tenant with its own upstream_url: it calls the sandbox too.
    scratch.write(
        "tenants.toml",
        &tenants(&format!(
            "[tenants.gamma]\nclient_id = \"gamma-id\"\nclient_secret_file = \"alpha.secret\"\n\
             upstream_url = \"{}\"\n",
            explicit.url()
        )),
    );
    assert!(
        within_5s(|| async { call_as(&app, Some("gamma"), Some("tok-ops")).await.is_ok() }).await,
        "the added tenant is served within 5 s"
    );
    for tenant in ["gamma", "alpha", "beta"] {
        assert_sandbox_session(
            call_as(&app, Some(tenant), Some("tok-ops")).await,
            Some(tenant),
        );
    }

    assert_eq!(
        fallback.received().len(),
        0,
        "nothing went to --upstream-url"
    );
    assert_eq!(
        explicit.received().len(),
        0,
        "nothing went to a tenant's upstream_url"
    );
}
